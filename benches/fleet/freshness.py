#!/usr/bin/env python3
"""End-to-end freshness: a GPU reading changes in the fake NVML; how long
until a VictoriaMetrics query returns the new value?

    python3 benches/fleet/freshness.py --changes 30 --json target/freshness.json
    python3 benches/fleet/freshness.py --changes 3      # a quick look

A real algalon-exporter (release build, compose/worker's settings: 5 s sample
interval, processes, compose/worker/collectors.csv) runs on the fake NVML with
a clock file; victoria-metrics and vmagent run with compose/host's flags at a
5 s scrape interval (fleet_host.py). GPU 0's temperature is a step function of
scenario time (30 °C, 31 °C, …), so each change is one atomic rewrite of the
clock file. Before each change the script waits a random 0-5 s, so changes
fall at every phase of the exporter's and vmagent's intervals. Then it polls
every 100 ms, until each returns the new value:

* the exporter's /metrics (the sample that read it),
* an instant query at "now" with nocache=1 (the pipeline's own delay),
* for the first --default-query-changes changes, also the instant query a
  dashboard's stat panel sends (no nocache) and the last point of a
  query_range over the last 5 minutes, which VictoriaMetrics answers with
  -search.latencyOffset (30 s by default) taken off "now".

Goal: p99 of the nocache query <= 2 x the scrape interval.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import statistics
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

from fleet_host import REPO, Host, Processes, free_ports, http_get, wait_until

BASE = REPO / "testing/scenarios/scaling.json"
COLLECTORS = REPO / "compose/worker/collectors.csv"
NVML = REPO / "target/fake-nvml/libnvidia-ml.so.1"
EXPORTER = REPO / "target/release/algalon-exporter"
SERIES = "DCGM_FI_DEV_GPU_TEMP"
FIRST = 30  # °C at step 0
STEP_S = 1000  # scenario seconds between two temperature steps


def fail(msg: str) -> None:
    print(f"freshness: {msg}", file=sys.stderr)
    sys.exit(1)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def scenario(dst: Path, changes: int) -> None:
    doc = json.loads(BASE.read_text())
    doc["description"] = (
        "freshness: one H100 whose temperature steps by 1 °C every 1000 scenario seconds"
    )
    gpu = doc["gpus"][0]
    gpu["count"] = 1
    gpu["temperature_c"] = {
        "steps": [[k * STEP_S, FIRST + k] for k in range(changes + 1)]
    }
    dst.write_text(json.dumps(doc, indent=1))


def exporter_value(url: str, instance_gpu: str = 'gpu="0"') -> float | None:
    status, body = http_get(f"{url}/metrics", timeout=5)
    if status != 200:
        return None
    for line in body.decode().splitlines():
        if line.startswith(SERIES + "{") and instance_gpu in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def vm_instant(host: Host, expr: str, nocache: bool) -> float | None:
    params = {"query": expr}
    if nocache:
        params["nocache"] = "1"
    status, body = http_get(
        f"{host.vm_url}/api/v1/query?{urllib.parse.urlencode(params)}", timeout=10
    )
    result = json.loads(body)["data"]["result"] if status == 200 else []
    return float(result[0]["value"][1]) if result else None


def vm_range_last(host: Host, expr: str) -> float | None:
    end = time.time()
    params = {
        "query": expr,
        "start": f"{end - 300:.3f}",
        "end": f"{end:.3f}",
        "step": "5s",
    }
    status, body = http_get(
        f"{host.vm_url}/api/v1/query_range?{urllib.parse.urlencode(params)}", timeout=10
    )
    result = json.loads(body)["data"]["result"] if status == 200 else []
    return float(result[0]["values"][-1][1]) if result and result[0]["values"] else None


def quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile."""
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--changes", type=int, default=30)
    ap.add_argument(
        "--interval",
        type=int,
        default=5,
        help="scrape and sample interval, seconds (5)",
    )
    ap.add_argument(
        "--default-query-changes",
        type=int,
        default=2,
        help="changes also timed with plain queries",
    )
    ap.add_argument("--exporter", type=Path, default=EXPORTER)
    ap.add_argument("--work", type=Path, default=REPO / "target/fleet/freshness")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--vm-flag",
        action="append",
        default=[],
        help="extra victoria-metrics flag, e.g. -search.latencyOffset=5s (repeatable)",
    )
    args = ap.parse_args()
    args.work = args.work.resolve()
    for path, how in (
        (args.exporter, "cargo build --release -p algalon-exporter"),
        (NVML, "make fake-nvml"),
    ):
        if not path.exists():
            fail(f"{path} missing: run `{how}`")
    if args.work.exists():
        shutil.rmtree(args.work)
    (args.work / "logs").mkdir(parents=True)
    rng = random.Random(args.seed)
    scen = args.work / "scenario.json"
    clock = args.work / "clock"
    scenario(scen, args.changes)
    write_atomic(clock, "0.5\n")
    started = time.time()
    host = Host.start(args.work, args.interval, args.vm_flag)
    procs = Processes(args.work / "logs")
    (port,) = free_ports(1)
    exporter_url = f"http://127.0.0.1:{port}"
    rows: list[dict[str, Any]] = []
    try:
        procs.start(
            "algalon-exporter",
            [
                str(args.exporter),
                "--nvml-lib",
                str(NVML),
                "-a",
                f"127.0.0.1:{port}",
                "-c",
                str(args.interval * 1000),
                "--processes",
                "-f",
                str(COLLECTORS),
            ],
            env={
                "ALGALON_FAKE_NVML_SCENARIO": str(scen),
                "ALGALON_FAKE_NVML_CLOCK_FILE": str(clock),
                "ALGALON_LOG_FORMAT": "text",
            },
        )
        write_atomic(
            host.targets / "fresh.yml",
            f"- labels: {{cluster: freshness}}\n  targets: ['127.0.0.1:{port}']\n",
        )
        expr = f'{SERIES}{{instance="127.0.0.1:{port}", gpu="0"}}'
        wait_until(
            "the first reading in VictoriaMetrics",
            lambda: vm_instant(host, expr, True) == FIRST,
            60,
            on_wait=procs.check_alive,
        )
        for k in range(1, args.changes + 1):
            time.sleep(rng.uniform(0, args.interval))
            want = FIRST + k
            write_atomic(clock, f"{k * STEP_S + 0.5}\n")
            t0 = time.monotonic()
            seen: dict[str, float] = {}
            probes = {
                "exporter": lambda: exporter_value(exporter_url),
                "query_nocache": lambda: vm_instant(host, expr, True),
            }
            if k <= args.default_query_changes:
                probes["query_default"] = lambda: vm_instant(host, expr, False)
                probes["query_range_default"] = lambda: vm_range_last(host, expr)
            while len(seen) < len(probes) and time.monotonic() - t0 < 90:
                for name, probe in probes.items():
                    if name not in seen and probe() == want:
                        seen[name] = time.monotonic() - t0
                time.sleep(0.1)
            procs.check_alive()
            host.procs.check_alive()
            if "query_nocache" not in seen:
                fail(f"change {k}: VictoriaMetrics did not return {want} within 90 s")
            rows.append({"change": k, **seen})
            print(
                f"change {k:2d}: "
                + ", ".join(f"{n} {v:.2f} s" for n, v in seen.items()),
                flush=True,
            )
    finally:
        procs.stop_all()
        host.stop()
    lat = [r["query_nocache"] for r in rows]
    exp = [r["exporter"] for r in rows if "exporter" in r]
    summary = {
        "changes": len(rows),
        "interval_s": args.interval,
        "query_nocache_p50_s": statistics.median(lat),
        "query_nocache_p99_s": quantile(lat, 0.99),
        "query_nocache_max_s": max(lat),
        "exporter_p50_s": statistics.median(exp),
        "exporter_p99_s": quantile(exp, 0.99),
        "default_query_s": [
            r.get("query_default") for r in rows if "query_default" in r
        ],
        "default_range_last_point_s": [
            r.get("query_range_default") for r in rows if "query_range_default" in r
        ],
        "vm_flags_added": args.vm_flag,
        "goal_s": 2 * args.interval,
        "met": quantile(lat, 0.99) <= 2 * args.interval,
        "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "nproc": os.cpu_count(),
        "seconds": time.time() - started,
        "rows": rows,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
