#!/usr/bin/env python3
"""One VMAgent + one single-node VictoriaMetrics against a simulated GPU fleet.

    python3 benches/fleet/fleet.py                 # the curve: 1k … 24k GPUs (~20 min)
    python3 benches/fleet/fleet.py --quick         # smoke (CI): 2 small steps, asserts
    python3 benches/fleet/fleet.py --steps 1000,4000 --window 60 --json out.json

`fleet-sim` (fleet_sim.rs beside this file) serves N 8-GPU workers, each on
its own loopback address, with bodies from Algalon's encoder; victoria-metrics
and vmagent run with compose/host's flags and scrape config at a 5 s interval
(fleet_host.py). The GPU count steps up; at each step, after every target is up
and two intervals of warm-up (one in --quick), a measurement window of WINDOW seconds gives:

* samples/s VictoriaMetrics inserted (vm_rows_inserted_total) against the
  expected N x series per target / interval, and the samples stored in the
  window (count_over_time, read after it settled; every series up to
  100,000 of them, above that one per GPU, DCGM_FI_DEV_GPU_UTIL) against
  the expected count;
* scrapes stored per target (count_over_time(up)) against WINDOW / interval,
  vmagent's failed and timed-out scrapes, scrape_duration_seconds p50/p99/max;
* CPU (utime + stime from /proc/PID/stat) and RSS of victoria-metrics,
  vmagent and fleet-sim, per 1,000 GPUs; active series; load average;
* after the window, the query time of every panel of the fleet dashboard
  (compose/host/grafana/dashboards/algalon-fleet.json, all clusters,
  instances and GPUs selected) through /api/v1/query_range over the last
  15 minutes, and its template variables' label queries.

A step *keeps up* when all of: every target up; no failed or timed-out
scrape; scrapes stored >= 99.5 % of N x WINDOW / interval (a scrape whose
timestamp jitters across the window's edge is the 0.5 %); samples stored
>= 98 % of expected, both inserted (not checked in --quick: 10 s of
counters are too short) and stored; scrape duration p99 < the interval; vmagent's
remote-write backlog (vmagent_remotewrite_pending_data_bytes) under 1 MB at
the window's end. Before the window the run waits for the backlog a new step
leaves (every new series is indexed once) to drain, and reports how long it
took. The run stops after the first step that does not keep up
(--keep-going runs them all).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

from fleet_host import (
    REPO,
    Host,
    proc_cpu_seconds,
    proc_rss_mib,
    timed_get,
    wait_until,
)
from fleet_host import metric_sum as msum
from fleet_host import metrics as read_metrics

DASHBOARD = REPO / "compose/host/grafana/dashboards/algalon-fleet.json"
DATASOURCE = REPO / "compose/host/grafana/provisioning/datasources/victoriametrics.yml"
SCENARIO = REPO / "testing/scenarios/h100x8.json"
SIM = REPO / "target/release/fleet-sim"
NVML = REPO / "target/fake-nvml/libnvidia-ml.so.1"
JOB = "algalon"
# What Grafana asks for: a 15-minute range at the datasource's timeInterval
# (maxDataPoints of a ~1000 px panel gives a smaller step, so the floor wins).
RANGE_S = 900
QUICK_STEPS = [80, 400]
FULL_STEPS = [1000, 2000, 4000, 8000, 12000, 16000, 24000]


def fail(msg: str) -> None:
    print(f"fleet: {msg}", file=sys.stderr)
    sys.exit(1)


def datasource_interval() -> int:
    text = DATASOURCE.read_text()
    m = re.search(r"timeInterval:\s*(\d+)s", text)
    if m:
        return int(m.group(1))
    # compose/host fills it from SCRAPE_INTERVAL (default 5s): Grafana steps
    # at the scrape interval, which is this benchmark's 5 s.
    if re.search(r"timeInterval:\s*\$\{ALGALON_SCRAPE_INTERVAL\}", text):
        return 5
    fail(f"{DATASOURCE}: no `timeInterval` in the VictoriaMetrics datasource")


def panel_queries(step_s: int, scrape_s: int) -> list[tuple[str, str]]:
    """(panel title, expression) of every panel target, variables set to All."""
    doc = json.loads(DASHBOARD.read_text())
    # Grafana's $__rate_interval: max($__interval + scrape interval, 4 x scrape interval).
    rate = max(step_s + scrape_s, 4 * scrape_s)
    subst = {
        "$cluster": ".*",
        "$instance": ".*",
        "$gpu": ".*",
        "$__range": f"{RANGE_S}s",
        "$__rate_interval": f"{rate}s",
        "$__interval": f"{step_s}s",
    }
    out = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for p in panels:
            walk(p.get("panels", []))
            for t in p.get("targets", []):
                expr = t.get("expr")
                if not expr:
                    continue
                for k in sorted(subst, key=len, reverse=True):
                    expr = expr.replace(k, subst[k])
                # $1…$9 are label_replace's capture groups, not variables.
                if re.search(r"\$(?![0-9])", expr):
                    fail(f"{DASHBOARD}: unknown variable left in {expr!r}")
                out.append((p.get("title", "?"), expr))

    walk(doc["panels"])
    return out


def variable_queries() -> list[tuple[str, str, str]]:
    """(variable, label, match[]) of the dashboard's label_values() variables."""
    doc = json.loads(DASHBOARD.read_text())
    out = []
    for v in doc.get("templating", {}).get("list", []):
        q = v.get("query")
        text = q.get("query", "") if isinstance(q, dict) else str(q or "")
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", text.strip())
        if m:
            match = m.group(1).replace("$cluster", ".*").replace("$instance", ".*")
            out.append((v["name"], m.group(2), match))
    return out


class Sim:
    """fleet-sim, driven over stdin/stdout."""

    def __init__(self, args: argparse.Namespace, max_workers: int, targets: Path):
        env = {
            **os.environ,
            "ALGALON_FAKE_NVML_SCENARIO": str(SCENARIO),
            "ALGALON_TEST_NVML_LIB": str(NVML),
        }
        self.log = open(args.work / "logs" / "fleet-sim.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                str(args.sim),
                "--max-workers",
                str(max_workers),
                "--targets-file",
                str(targets / "fleet.yml"),
                "--interval-ms",
                str(args.interval * 1000),
                "--gzip-level",
                str(args.gzip_level),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            cwd=REPO,
            env=env,
            text=True,
        )
        self.ask(None)

    def ask(self, command: str | None) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        if command:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            fail(f"fleet-sim exited ({self.proc.wait()}); see its log")
        return json.loads(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def run_queries(host: Host, interval: int, budget_s: float) -> dict[str, Any]:
    ds = datasource_interval()
    step = max(ds, RANGE_S // 1000 or 1)
    end = time.time()
    start = end - RANGE_S
    rows = []
    spent = 0.0
    for name, label, match in variable_queries():
        params = {"match[]": match, "start": f"{start:.0f}", "end": f"{end:.0f}"}
        url = f"{host.vm_url}/api/v1/label/{label}/values?{urllib.parse.urlencode(params)}"
        secs, status, body, err = timed_get(url, timeout=60)
        spent += secs
        n = len(json.loads(body)["data"]) if status == 200 and body else 0
        rows.append(
            {
                "panel": f"variable ${name}",
                "seconds": secs,
                "bytes": len(body or b""),
                "series": n,
                "error": err,
            }
        )
    for title, expr in panel_queries(step, interval):
        if spent > budget_s:
            rows.append(
                {
                    "panel": title,
                    "expr": expr,
                    "seconds": None,
                    "error": "skipped: budget",
                }
            )
            continue
        params = {
            "query": expr,
            "start": f"{start:.0f}",
            "end": f"{end:.0f}",
            "step": f"{step}s",
        }
        url = f"{host.vm_url}/api/v1/query_range?{urllib.parse.urlencode(params)}"
        secs, status, body, err = timed_get(url, timeout=min(60, budget_s - spent + 1))
        spent += secs
        n = 0
        if status == 200 and body:
            n = len(json.loads(body)["data"]["result"])
        elif not err:
            err = f"HTTP {status}"
        rows.append(
            {
                "panel": title,
                "expr": expr,
                "seconds": secs,
                "bytes": len(body or b""),
                "series": n,
                "error": err,
            }
        )
    done = [r for r in rows if r.get("seconds") is not None and not r["error"]]
    slow = max(done, key=lambda r: r["seconds"]) if done else None
    return {
        "step_s": step,
        "queries": rows,
        "total_s": sum(r["seconds"] for r in done),
        "median_s": statistics.median([r["seconds"] for r in done]) if done else None,
        "max_s": slow["seconds"] if slow else None,
        "slowest": slow["panel"] if slow else None,
        "bytes": sum(r["bytes"] for r in done),
        "errors": [f"{r['panel']}: {r['error']}" for r in rows if r["error"]],
    }


def measure_step(
    host: Host, sim: Sim, gpus: int, args: argparse.Namespace
) -> dict[str, Any]:
    workers = gpus // 8
    info = sim.ask(f"workers {workers}")
    gpus = info["gpus"]
    t0 = time.time()
    wait_until(
        f"{workers} fleet targets up in vmagent",
        lambda: host.targets_up(JOB) == (workers, workers),
        60,
        interval=1,
        on_wait=host.procs.check_alive,
    )
    up_after = time.time() - t0
    time.sleep(args.warmup * args.interval)
    # A step adds workers x ~330 new series at once; VictoriaMetrics indexes
    # them more slowly than it stores samples of known ones, so vmagent holds
    # a backlog for a while. Measure the steady state, after it drained.
    caught_up: float | None = None
    try:
        wait_until(
            "vmagent's remote-write backlog to drain",
            lambda: (
                msum(
                    read_metrics(host.vmagent_url),
                    "vmagent_remotewrite_pending_data_bytes",
                )
                < 1e6
            ),
            180,
            interval=1,
            on_wait=host.procs.check_alive,
        )
    except AssertionError as e:
        # Measured anyway: the window's checks then say what falls behind.
        print(f"fleet: {gpus} GPUs: {e}", flush=True)
    else:
        caught_up = time.time() - t0
    pids = {
        "victoria-metrics": host.pid("victoria-metrics"),
        "vmagent": host.pid("vmagent"),
        "fleet-sim": sim.proc.pid,
    }
    cpu0 = {k: proc_cpu_seconds(p) for k, p in pids.items()}
    vm0, ag0 = read_metrics(host.vm_url), read_metrics(host.vmagent_url)
    sim0 = sim.ask("stats")
    t_start = time.time()
    time.sleep(args.window)
    t_end = time.time()
    cpu1 = {k: proc_cpu_seconds(p) for k, p in pids.items()}
    vm1, ag1 = read_metrics(host.vm_url), read_metrics(host.vmagent_url)
    sim1 = sim.ask("stats")
    load = loadavg()
    rss = {k: proc_rss_mib(p) for k, p in pids.items()}
    dt = t_end - t_start
    host.procs.check_alive()

    def delta(
        a: dict[str, float], b: dict[str, float], name: str, **labels: str
    ) -> float:
        return msum(b, name, **labels) - msum(a, name, **labels)

    rows_rate = delta(vm0, vm1, "vm_rows_inserted_total", type="promremotewrite") / dt
    # Read the window back once it has settled: vmagent flushes every second,
    # VictoriaMetrics makes new rows searchable within a second or two more.
    time.sleep(3)
    w = f"{args.window}s"
    at = t_end
    # Read-back queries touch one series per target or per GPU, never every
    # series of the fleet (that takes longer than -search.maxQueryDuration
    # on this machine from 12,000 GPUs on).
    first = info["first"]
    one = host.query(f'count({{job="{JOB}", instance="{first}"}})', at=at)
    series_per_target = float(one[0]["value"][1]) if one else 0.0
    scraped = host.query(f'sum(scrape_samples_scraped{{job="{JOB}"}})', at=at)
    series_total = (float(scraped[0]["value"][1]) if scraped else 0.0) + workers * (
        series_per_target - info["samples_per_scrape"] / max(workers, 1)
    )
    # Every series while that stays cheap (the smoke run), else one per GPU.
    everything = series_total <= 100_000
    probe = "" if everything else "DCGM_FI_DEV_GPU_UTIL"
    stored = host.query(
        f'sum(count_over_time({probe}{{job="{JOB}"}}[{w}]))', at=at, timeout=120
    )
    stored_samples = float(stored[0]["value"][1]) if stored else 0.0
    scrapes = host.query(f'count_over_time(up{{job="{JOB}"}}[{w}])', at=at)
    per_scrapes = [float(r["value"][1]) for r in scrapes]
    durations = host.query(
        f'scrape_duration_seconds{{job="{JOB}"}}[{w}]', at=at, timeout=120
    )
    dur = [float(v[1]) for r in durations for v in r["values"]]

    scrapes_expected = workers * args.window / args.interval
    samples_expected = scrapes_expected * (
        series_per_target if everything else info["gpus_per_worker"]
    )
    expected_rate = workers * series_per_target / args.interval
    scrapes_failed = delta(ag0, ag1, "vm_promscrape_scrapes_failed_total")
    scrapes_timed_out = delta(ag0, ag1, "vm_promscrape_scrapes_timed_out_total")
    cpu = {k: (cpu1[k] - cpu0[k]) / dt for k in pids}
    result: dict[str, Any] = {
        "gpus": gpus,
        "workers": workers,
        "series_per_target": series_per_target,
        "body_samples_per_worker": info["samples_per_scrape"] / max(workers, 1),
        "body_bytes": info["body_bytes"],
        "gzip_bytes": info["gzip_bytes"],
        "targets_up_after_s": up_after,
        "backlog_drained_after_s": caught_up,
        "remote_write_pending_bytes_start": msum(
            ag0, "vmagent_remotewrite_pending_data_bytes"
        ),
        "remote_write_pending_bytes_end": msum(
            ag1, "vmagent_remotewrite_pending_data_bytes"
        ),
        "window_s": dt,
        "active_series": series_total,
        "expected_samples_per_s": expected_rate,
        "inserted_samples_per_s": rows_rate,
        "stored_probe": probe or "every series",
        "stored_samples": stored_samples,
        "expected_samples": samples_expected,
        "stored_ratio": stored_samples / samples_expected if samples_expected else 0,
        "scrapes_stored": sum(per_scrapes),
        "scrapes_expected": scrapes_expected,
        "targets_short_of_scrapes": sum(
            1 for s in per_scrapes if s < args.window / args.interval
        ),
        "scrapes_failed": scrapes_failed,
        "scrapes_timed_out": scrapes_timed_out,
        "vmagent_scrapes_per_s": delta(ag0, ag1, "vm_promscrape_scrapes_total") / dt,
        "sim_scrapes_served_per_s": (sim1["scrapes"] - sim0["scrapes"]) / dt,
        "sim_late_encodes": sim1["late"] - sim0["late"],
        "scrape_duration_p50_s": quantile(dur, 0.5),
        "scrape_duration_p99_s": quantile(dur, 0.99),
        "scrape_duration_max_s": max(dur) if dur else float("nan"),
        "remote_write_disk_queue_bytes": msum(ag1, "vm_persistentqueue_bytes_pending"),
        "cpu_cores": cpu,
        "rss_mib": {k: v[0] for k, v in rss.items()},
        "hwm_mib": {k: v[1] for k, v in rss.items()},
        "loadavg": load,
    }
    checks = {
        "all targets up": host.targets_up(JOB) == (workers, workers),
        "no failed or timed-out scrape": scrapes_failed == 0 and scrapes_timed_out == 0,
        "scrapes stored >= 99.5 %": sum(per_scrapes) >= 0.995 * scrapes_expected,
        "samples stored >= 98 %": result["stored_ratio"] >= 0.98,
        # Counters read at the window's edges: exact enough over 60 s and
        # thousands of targets, not over the smoke run's 10 s and 10 targets.
        "samples inserted >= 98 %": rows_rate >= 0.98 * expected_rate or args.quick,
        "scrape p99 < interval": result["scrape_duration_p99_s"] < args.interval,
        "remote-write backlog < 1 MB": result["remote_write_pending_bytes_end"] < 1e6,
    }
    result["checks"] = checks
    result["keeps_up"] = all(checks.values())
    result["dashboard"] = run_queries(host, args.interval, args.query_budget)
    return result


def fmt_table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| GPUs | targets | active series | samples/s expected | inserted | stored / expected | scrapes stored / expected | scrape p99 | VM CPU | VM RSS | vmagent CPU | vmagent RSS | sim CPU | dashboard: slowest panel / all panels | load avg | keeps up |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        c, m = r["cpu_cores"], r["rss_mib"]
        k = r["gpus"] / 1000
        d = r["dashboard"]
        dash = (
            f"{d['max_s']:.2f} s / {d['total_s']:.1f} s"
            if d["max_s"] is not None
            else "—"
        )
        if d["errors"]:
            dash += f" ({len(d['errors'])} not answered)"
        failed = [n for n, ok in r["checks"].items() if not ok]
        lines.append(
            f"| {r['gpus']:,} | {r['workers']:,} | {r['active_series']:,.0f} "
            f"| {r['expected_samples_per_s']:,.0f} | {r['inserted_samples_per_s']:,.0f} "
            f"| {100 * r['stored_ratio']:.1f} % | {r['scrapes_stored']:,.0f} / {r['scrapes_expected']:,.0f} "
            f"| {1000 * r['scrape_duration_p99_s']:.0f} ms "
            f"| {100 * c['victoria-metrics']:.0f} % ({100 * c['victoria-metrics'] / k:.1f} %/1k) "
            f"| {m['victoria-metrics']:.0f} MiB ({m['victoria-metrics'] / k:.1f}/1k) "
            f"| {100 * c['vmagent']:.0f} % ({100 * c['vmagent'] / k:.1f} %/1k) "
            f"| {m['vmagent']:.0f} MiB ({m['vmagent'] / k:.1f}/1k) "
            f"| {100 * c['fleet-sim']:.0f} % "
            f"| {dash} | {r['loadavg']} "
            f"| {'yes' if r['keeps_up'] else 'no: ' + ', '.join(failed)} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 2 small steps, short windows, asserts",
    )
    ap.add_argument("--steps", help="comma-separated GPU counts (multiples of 8)")
    ap.add_argument(
        "--window",
        type=int,
        help="measurement window per step, seconds (multiple of the interval)",
    )
    ap.add_argument(
        "--interval",
        type=int,
        default=5,
        help="scrape and sample interval, seconds (5)",
    )
    ap.add_argument(
        "--query-budget",
        type=float,
        default=120,
        help="seconds of dashboard queries per step",
    )
    ap.add_argument(
        "--gzip-level",
        type=int,
        default=1,
        help="fleet-sim's gzip level (1: 0.4 of the CPU of the exporter's 6, bodies 5.9 instead of 4.5 KB)",
    )
    ap.add_argument(
        "--keep-going",
        action="store_true",
        help="run every step even after one falls behind",
    )
    ap.add_argument(
        "--sim",
        type=Path,
        default=SIM,
        help="fleet-sim binary (default: the release build)",
    )
    ap.add_argument(
        "--work",
        type=Path,
        default=REPO / "target/fleet/run",
        help="data and logs of the run",
    )
    ap.add_argument("--json", type=Path, help="write every figure here")
    args = ap.parse_args()
    args.work = args.work.resolve()
    steps = (
        [int(s) for s in args.steps.split(",")]
        if args.steps
        else (QUICK_STEPS if args.quick else FULL_STEPS)
    )
    if args.window is None:
        args.window = 10 if args.quick else 60
    args.warmup = 1 if args.quick else 2
    if args.window % args.interval:
        fail(f"--window {args.window} is not a multiple of --interval {args.interval}")
    bad = [s for s in steps if s <= 0 or s % 8]
    if bad:
        fail(f"--steps: {bad} are not positive multiples of 8 (GPUs per worker)")
    for path, how in (
        (args.sim, "cargo build --release -p algalon-benches --bin fleet-sim"),
        (NVML, "make fake-nvml"),
    ):
        if not path.exists():
            fail(f"{path} missing: run `{how}`")
    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    started = time.time()
    # Not compose's: the run's own read-back queries (count_over_time over
    # every series of the fleet) touch more than the default 300,000 series
    # from 8,000 GPUs on. The dashboard's panels query one metric at a time.
    host = Host.start(args.work, args.interval, ["-search.maxUniqueTimeseries=5000000"])
    sim = None
    results = []
    try:
        sim = Sim(args, max(steps) // 8, host.targets)
        print(
            f"fleet: victoria-metrics {host.vm_url}, vmagent {host.vmagent_url}, scrape config changes {host.changed}; "
            f"nproc {os.cpu_count()}, load {loadavg()}",
            flush=True,
        )
        for gpus in steps:
            r = measure_step(host, sim, gpus, args)
            results.append(r)
            if args.json:
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps({"steps": results}, indent=1))
            print(fmt_table([r]).splitlines()[-1], flush=True)
            if not r["keeps_up"] and not args.keep_going:
                break
    finally:
        if sim:
            sim.stop()
        host.stop()
    print(fmt_table(results))
    doc = {
        "steps": results,
        "interval_s": args.interval,
        "window_s": args.window,
        "scrape_config_changes": host.changed,
        "nproc": os.cpu_count(),
        "mem_total_gib": round(
            os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1
        ),
        "seconds": time.time() - started,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1))
    if args.quick:
        failed = [
            f"{r['gpus']} GPUs: {n}"
            for r in results
            for n, ok in r["checks"].items()
            if not ok
        ]
        failed += [
            f"{r['gpus']} GPUs: dashboard {e}"
            for r in results
            for e in r["dashboard"]["errors"]
        ]
        if failed:
            fail("smoke run failed: " + "; ".join(failed))
        print(f"fleet: smoke run passed in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
