#!/usr/bin/env python3
"""Scrape cost on real NVIDIA GPUs: Algalon's exporter beside the exporter
people write by hand (pynvml_exporter.py, NVML queried on every scrape) and
nvidia_gpu_exporter's way (one ``nvidia-smi --query-gpu`` process per scrape).

    python3 benches/compare/real_gpu.py [--scrapes 300] [--json out.json]

Needs the NVIDIA driver, nvidia-ml-py and prometheus_client, and a release
exporter (``ALGALON_EXPORTER_BIN``, default target/release/algalon-exporter).
Scrapes are sequential on one connection-per-request, interleaved one of each
per round so that machine load hits all alike. Algalon samples every second
on its own thread (dcgm-exporter's default collectors), so its scrape serves
the last sample; its sample time, NVML included, is read from
``algalon_sample_duration_seconds`` and shown beside it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SMI_QUERY = (
    "index,uuid,name,pci.bus_id,utilization.gpu,utilization.memory,memory.used,memory.free,"
    "memory.total,temperature.gpu,temperature.memory,power.draw,clocks.sm,clocks.mem,"
    "enforced.power.limit,pcie.link.gen.current"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    body = conn.getresponse().read()
    conn.close()
    return time.perf_counter() - t0, body


def wait_up(port: int, proc: subprocess.Popen) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            sys.exit(f"real_gpu: {proc.args} exited with {proc.returncode}")
        try:
            scrape(port)
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"real_gpu: {proc.args} did not answer within 30 s")


def summary(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {
        "p50_ms": 1000 * statistics.median(xs),
        "p99_ms": 1000 * xs[min(len(xs) - 1, int(0.99 * len(xs)))],
        "mean_ms": 1000 * statistics.fmean(xs),
    }


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scrapes", type=int, default=300)
    ap.add_argument("--smi-runs", type=int, default=30)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    exporter = os.environ.get(
        "ALGALON_EXPORTER_BIN", str(REPO / "target/release/algalon-exporter")
    )

    a_port, p_port = free_port(), free_port()
    procs = [
        subprocess.Popen(
            [exporter, "-a", f"127.0.0.1:{a_port}", "-c", "1000"],
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [sys.executable, str(HERE / "pynvml_exporter.py"), "--port", str(p_port)],
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        wait_up(a_port, procs[0])
        wait_up(p_port, procs[1])
        time.sleep(2.5)
        lat: dict[str, list[float]] = {"algalon": [], "pynvml": [], "nvidia-smi": []}
        sizes: dict[str, int] = {}
        sample_s: list[float] = []
        smi_every = max(1, args.scrapes // args.smi_runs)
        for i in range(args.scrapes):
            t, body = scrape(a_port)
            lat["algalon"].append(t)
            sizes["algalon"] = len(body)
            m = re.search(
                rb"^algalon_sample_duration_seconds ([0-9.e-]+)$", body, re.MULTILINE
            )
            if m:
                sample_s.append(float(m.group(1)))
            t, body = scrape(p_port)
            lat["pynvml"].append(t)
            sizes["pynvml"] = len(body)
            if i % smi_every == 0:
                t0 = time.perf_counter()
                out = subprocess.run(
                    [
                        "nvidia-smi",
                        f"--query-gpu={SMI_QUERY}",
                        "--format=csv,noheader,nounits",
                    ],
                    capture_output=True,
                    check=True,
                )
                lat["nvidia-smi"].append(time.perf_counter() - t0)
                sizes["nvidia-smi"] = len(out.stdout)
        result = {
            name: {**summary(xs), "n": len(xs), "bytes": sizes[name]}
            for name, xs in lat.items()
        }
        result["algalon"]["sample_ms_p50"] = (
            1000 * statistics.median(sample_s) if sample_s else None
        )
        result["algalon"]["peak_rss_kib"] = rss_kib(procs[0].pid)
        result["pynvml"]["peak_rss_kib"] = rss_kib(procs[1].pid)
        gpus = subprocess.run(
            ["nvidia-smi", "-L"], check=False, capture_output=True, text=True
        ).stdout.strip()
        result["gpus"] = gpus
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)
    base = result["algalon"]["p50_ms"]
    print(
        f"{gpus}\n{'exporter':<12} {'p50 ms':>9} {'p99 ms':>9} {'x algalon p50':>14} {'bytes':>8} {'peak RSS MiB':>13}"
    )
    for name in ("algalon", "pynvml", "nvidia-smi"):
        r = result[name]
        rss = f"{r['peak_rss_kib'] / 1024:.1f}" if "peak_rss_kib" in r else "-"
        print(
            f"{name:<12} {r['p50_ms']:9.3f} {r['p99_ms']:9.3f} {r['p50_ms'] / base:14.1f} {r['bytes']:8d} {rss:>13}"
        )
    if result["algalon"]["sample_ms_p50"] is not None:
        print(
            f"algalon sample (background, NVML included): p50 {result['algalon']['sample_ms_p50']:.3f} ms"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
