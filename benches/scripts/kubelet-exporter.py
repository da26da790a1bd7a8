#!/usr/bin/env python3
"""The release exporter with --kubernetes on a crowded, slow node: the
kubelet stand-in serves N pods (the first 64 each holding one time-sliced
replica of one of h100x8.json's 8 GPUs, every pod with two containers), and
answers every List after --latency-ms. Measures /metrics latency with
--kubernetes (--kubernetes-virtual-gpus: 8 series per GPU field) against the
same exporter without it, and the exporter's RSS in both.

    python3 benches/scripts/kubelet-exporter.py --pods 500 --latency-ms 2000

Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kubelet_node import node_pods

REPO = Path(__file__).resolve().parents[2]
EXPORTER = REPO / "target/release/algalon-exporter"
NVML = REPO / "target/fake-nvml/libnvidia-ml.so.1"
GPU_SCENARIO = REPO / "testing/scenarios/h100x8.json"
SHARED = 64


def pods_scenario(pods: int, gpus: list[str], latency_ms: int) -> dict:
    out = node_pods(pods, SHARED, gpus)
    return {
        "description": f"{pods} pods, {SHARED} sharing 8 GPUs; List after {latency_ms} ms",
        "pods": out,
        "states": {
            "slow": {"pods": list(out), "latency_ms": latency_ms},
            "fast": {"pods": list(out)},
        },
    }


def scrape(port: int) -> tuple[float, bytes]:
    t = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics")
    body = conn.getresponse().read()
    conn.close()
    return time.perf_counter() - t, body


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(args: list[str], scrapes: int, port: int, want: bytes) -> dict:
    env = {"ALGALON_FAKE_NVML_SCENARIO": str(GPU_SCENARIO), "PATH": "/usr/bin:/bin"}
    cmd = [str(EXPORTER), "--nvml-lib", str(NVML), "-a", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(cmd + args, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while True:
            try:
                _, body = scrape(port)
                if want in body:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise SystemExit(f"exporter never served {want!r}")
            time.sleep(0.2)
        times, size = [], 0
        for _ in range(scrapes):
            took, body = scrape(port)
            times.append(took * 1000)
            size = len(body)
            time.sleep(0.02)
        times.sort()
        return {
            "p50": statistics.median(times),
            "p99": times[int(len(times) * 0.99) - 1],
            "max": times[-1],
            "bytes": size,
            "rss": rss_mib(proc.pid),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pods", type=int, default=500)
    p.add_argument("--latency-ms", type=int, default=2000)
    p.add_argument("--scrapes", type=int, default=300)
    p.add_argument("--port", type=int, default=19455)
    a = p.parse_args()
    for f in (EXPORTER, NVML):
        if not f.exists():
            print(
                f"{f} missing: cargo build --release -p algalon-exporter; make fake-nvml"
            )
            return 1
    gpus = [g["uuid"] for g in json.loads(GPU_SCENARIO.read_text())["gpus"]]
    with tempfile.TemporaryDirectory() as tmp:
        scen = Path(tmp) / "pods.json"
        scen.write_text(json.dumps(pods_scenario(a.pods, gpus, a.latency_ms)))
        sock = Path(tmp) / "kubelet.sock"
        standin = subprocess.Popen(
            [
                sys.executable,
                REPO / "testing/kubelet/standin.py",
                "--scenario",
                scen,
                "--socket",
                sock,
                "--state",
                "slow",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert json.loads(standin.stdout.readline())["ready"]
            base = ["-c", "1000"]
            without = run(base, a.scrapes, a.port, b"DCGM_FI_DEV_GPU_UTIL")
            k8s = base + [
                "--kubernetes",
                "--kubernetes-virtual-gpus",
                "--pod-resources-kubelet-socket",
                str(sock),
            ]
            with_k8s = run(k8s, a.scrapes, a.port, b'pod="job-')
            # The same labels from a kubelet that answers at once: the
            # difference from the slow run is the kubelet's alone.
            standin.stdin.write('{"state": "fast"}\n')
            standin.stdin.flush()
            assert json.loads(standin.stdout.readline())["ok"]
            fast = run(k8s, a.scrapes, a.port, b'pod="job-')
        finally:
            standin.stdin.close()
            standin.wait(timeout=10)
    runs = {"without": without, "kubernetes": with_k8s, "fast": fast}
    print(json.dumps(runs, indent=1))
    print(
        "\n| figure | without --kubernetes | --kubernetes, List takes "
        f"{a.latency_ms} ms | --kubernetes, List at once |"
    )
    print("|---|---|---|---|")
    for key, label, fmt in [
        ("p50", "/metrics latency p50", "{:.2f} ms"),
        ("p99", "/metrics latency p99", "{:.2f} ms"),
        ("max", "/metrics latency max", "{:.2f} ms"),
        ("bytes", "/metrics body", "{:,} bytes"),
        ("rss", "exporter RSS after the scrapes", "{:.1f} MiB"),
    ]:
        cells = " | ".join(fmt.format(r[key]) for r in (without, with_k8s, fast))
        print(f"| {label} | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
