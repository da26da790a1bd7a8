#!/usr/bin/env python3
"""How much of one sample is Algalon's own work, and how much is NVML's.

Runs the `h100x8/sample` criterion benchmark under callgrind (instruction
counts do not depend on what else the machine is doing) and splits the
instructions executed by object: the fake NVML library versus everything
else (Algalon, nvml-wrapper, std, libc). The criterion median then gives the
time per sample, and the share outside the fake library is Algalon's own
work per sample — what the sampler would cost on top of a real driver.

    python3 benches/scripts/own-work.py      # or: make bench-own-work
"""

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = "h100x8/sample"
CARGO_BENCH = ["cargo", "bench", "-p", "algalon-benches", "--bench", "sample_encode"]


def bench_binary() -> Path:
    out = subprocess.run(
        [*CARGO_BENCH, "--no-run", "--message-format=json"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if (
            msg.get("reason") == "compiler-artifact"
            and msg.get("executable")
            and msg["target"]["name"] == "sample_encode"
        ):
            return Path(msg["executable"])
    sys.exit("own-work: could not find the sample_encode bench binary")


# The sampling thread's part of a sample, and each GPU worker's (its whole
# life: reading the GPU, and waiting for the next request). Callgrind
# toggles collection per thread.
SAMPLE_FNS = [
    "algalon_core::sampler::Sampler::sample",
    "algalon_core::sampler::worker::run",
]
# Every call into NVML enters through an exported C function with one of
# these prefixes (nvml-wrapper's own Rust functions are "nvml_wrapper::…").
NVML_ENTRY_POINTS = [
    "nvmlDevice*",
    "nvmlGpm*",
    "nvmlSystem*",
    "nvmlEvent*",
    "nvmlInit*",
]


def collected(binary: Path, toggles: list[str]) -> int:
    """Instructions counted by callgrind while `toggles` are switched on."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--collect-atstart=no",
                *[f"--toggle-collect={t}" for t in toggles],
                f"--callgrind-out-file={out}",
                str(binary),
                "--bench",
                BENCH,
                "--profile-time",
                "2",
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
            env={**os.environ, "ALGALON_BENCH_NO_SCALING": "1"},
        )
        text = subprocess.run(
            ["callgrind_annotate", "--auto=no", str(out)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    m = re.search(r"([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", text)
    if not m:
        sys.exit("own-work: no totals in callgrind's output")
    return int(m.group(1).replace(",", ""))


def instructions(binary: Path) -> tuple[int, int]:
    """(instructions inside Sampler::sample and the GPU workers, of which Algalon's own).

    Collection is toggled on when sample() (or a worker) is entered and
    toggled off again inside each NVML entry point, so the second run counts
    only what runs outside NVML.
    """
    total = collected(binary, SAMPLE_FNS)
    own = collected(binary, [*SAMPLE_FNS, *NVML_ENTRY_POINTS])
    return total, own


def median_ns() -> float:
    est = ROOT / "target/criterion/h100x8/sample/new/estimates.json"
    if not est.exists():
        subprocess.run(
            [*CARGO_BENCH, "--", BENCH],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    return json.loads(est.read_text())["median"]["point_estimate"]


def main() -> None:
    binary = bench_binary()
    total, own_ir = instructions(binary)
    ns = median_ns()
    own = own_ir / total
    print(
        f"instructions in Sampler::sample and its GPU workers: {total:,}; "
        f"outside NVML calls: {own_ir:,}"
    )
    print(
        f"sample median: {ns / 1000:.1f} µs; Algalon's own share {own:.1%} "
        f"≈ {own * ns / 1000:.1f} µs per sample of 8 GPUs"
    )


if __name__ == "__main__":
    main()
