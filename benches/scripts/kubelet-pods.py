#!/usr/bin/env python3
"""Algalon's Kubernetes attribution on a crowded node: the kubelet stand-in
serves N pods (8 GPUs, each time-sliced into replicas held by one pod each,
the rest of the pods without devices; every pod with two containers and
five labels, served by the API server stand-in too), and the
pod_resources example measures List calls, map builds, the background
refresher and its memory.

    python3 benches/scripts/kubelet-pods.py --pods 500 --measure 200

Prints the example's JSON and a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from kubelet_node import node_pods

REPO = Path(__file__).resolve().parents[2]
GPUS = [f"GPU-{i:08x}-1111-4222-8333-{i:012x}" for i in range(8)]


def scenario(pods: int, shared: int) -> dict:
    """pods pods; the first `shared` hold one replica of a GPU each."""
    out = node_pods(pods, shared, GPUS, labels=True)
    return {
        "description": f"{pods} pods, {shared} holding a time-sliced GPU replica",
        "pods": out,
        "states": {"node": {"pods": list(out)}},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument(
        "--shared", type=int, default=384, help="pods holding a GPU replica"
    )
    parser.add_argument(
        "--measure", type=int, default=200, help="Lists and refreshes to time"
    )
    parser.add_argument(
        "--debug", action="store_true", help="debug build (default: release)"
    )
    args = parser.parse_args()
    profile = [] if args.debug else ["--release"]
    subprocess.run(
        [
            "cargo",
            "build",
            "-q",
            *profile,
            "-p",
            "algalon-kubernetes",
            "--example",
            "pod_resources",
        ],
        cwd=REPO,
        check=True,
    )
    example = (
        REPO
        / "target"
        / ("debug" if args.debug else "release")
        / "examples"
        / "pod_resources"
    )
    with tempfile.TemporaryDirectory(prefix="kubelet-pods-") as tmp:
        tmp = Path(tmp)
        (tmp / "scenario.json").write_text(json.dumps(scenario(args.pods, args.shared)))
        standin = subprocess.Popen(
            [
                sys.executable,
                REPO / "testing/kubelet/standin.py",
                "--scenario",
                tmp / "scenario.json",
                "--socket",
                tmp / "kubelet.sock",
                "--apiserver",
                tmp / "sa",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            ready = json.loads(standin.stdout.readline())
            run = subprocess.run(
                [
                    example,
                    "--socket",
                    tmp / "kubelet.sock",
                    "--virtual-gpus",
                    "--apiserver",
                    ready["apiserver"],
                    "--token",
                    ready["token"],
                    "--ca",
                    ready["ca"],
                    "--pod-label-allowlist-regex",
                    "^app\\.kubernetes\\.io/,^team$",
                    "--measure",
                    str(args.measure),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            standin.stdin.close()
            standin.wait(timeout=10)
    if run.returncode != 0:
        print(run.stderr, file=sys.stderr)
        return 1
    r = json.loads(run.stdout)
    print(json.dumps(r, indent=2))
    rss = r["rss_kib"]
    print()
    print("| figure | value |")
    print("|---|---|")
    print(
        f"| pods on the node / GPU devices held | {r['pods']} / {r['held_devices']} |"
    )
    print(f"| List answer size | {r['list_answer_bytes'] / 1024:.1f} KiB |")
    lm, bm = r["list_ms"], r["build_ms"]
    print(
        f"| List call (p50 / p95 / max) | {lm['p50']:.2f} / {lm['p95']:.2f} / {lm['max']:.2f} ms |"
    )
    print(
        f"| map build (p50 / p95 / max) | {bm['p50']:.3f} / {bm['p95']:.3f} / {bm['max']:.3f} ms |"
    )
    ref = r["refresher"]
    print(
        f"| first refresh incl. {r['pods']} API server GETs | {ref['first_refresh_ms']:.0f} ms |"
    )
    print(f"| later refresh (List + build + publish) | {ref['refresh_ms']:.2f} ms |")
    print(
        f"| RSS: before the refresher / after the first refresh / after {r['refreshes']} | "
        f"{rss['before_refresher'] / 1024:.1f} / {rss['after_first_refresh'] / 1024:.1f} / "
        f"{rss['after_all'] / 1024:.1f} MiB |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
