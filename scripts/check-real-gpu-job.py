#!/usr/bin/env python3
"""Checks Algalon's job measurement (the Python package and the C library)
against NVML read directly through nvidia-ml-py, on real NVIDIA GPUs, while
the GPU does real work.

    python3 scripts/check-real-gpu-job.py [--seconds 8] [--libalgalon DIR]

The job runs on the first GPU this process sees (``cuda:0``). With PyTorch
installed it keeps that GPU busy with bf16 matrix products for ``--seconds``
and holds a 4 GiB tensor; without it the job is idle (the load checks are
then skipped, not passed). A second thread reads NVML through nvidia-ml-py
every 100 ms over the same window, and the report must agree with it:

    identity     the Monitor's GPU has nvidia-ml-py's UUID and name
    energy       within the energy the GPU could draw in the time between
                 Algalon's boundary samples and nvidia-ml-py's counter reads
                 (power max x gap), plus 1 % + 1 J
    power mean   within 15 % or 20 W (whichever is larger)
    utilization  mean within 15 points; under load the max is >= 90 %
    memory peak  within 2 % of total memory; >= the tensor held
    own process  the job's process memory peak >= the tensor held, and
                 within 2 % of total of nvidia-ml-py's reading for this pid

With ``--libalgalon DIR`` (a folder holding libalgalon.so, e.g.
target/release) and gcc on the PATH, examples/c/gpu_report.c is compiled
with -Wall -Wextra -Werror against algalon-ffi/include and run: every GPU's
name and total memory must match nvidia-ml-py's, its job must have an energy
reading, and the Prometheus text must hold GPU series.

Environment: ALGALON_NVML_LIB (the NVML both sides load, as everywhere).
Exit status: 0 PASS, 1 FAIL, 2 could not run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


class Table:
    def __init__(self) -> None:
        self.fails = 0
        self.skips = 0
        print(
            f"{'check':<24} {'nvidia-ml-py':<28} {'algalon':<28} {'tolerance':<22} result"
        )

    def row(
        self, check: str, ref: object, got: object, tol: str, ok: bool | None
    ) -> None:
        """One check; ``ok`` None means skipped (shown, not counted as passed)."""
        result = "skip" if ok is None else ("ok" if ok else "FAIL")
        if ok is False:
            self.fails += 1
        if ok is None:
            self.skips += 1
        print(f"{check:<24} {fmt(ref):<28} {fmt(got):<28} {tol:<22} {result}")


def fmt(v: object) -> str:
    if v is None:
        return "absent"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def die(msg: str) -> None:
    print(f"check-real-gpu-job: {msg}", file=sys.stderr)
    sys.exit(2)


class NvmlWatch(threading.Thread):
    """Reads one GPU through nvidia-ml-py every 100 ms until stopped."""

    def __init__(self, pynvml, handle) -> None:
        super().__init__(daemon=True)
        self.nv = pynvml
        self.handle = handle
        self.stop = threading.Event()
        self.util: list[float] = []
        self.power: list[float] = []
        self.used: list[int] = []
        self.own: list[int] = []

    def run(self) -> None:
        nv, h = self.nv, self.handle
        while not self.stop.is_set():
            self.util.append(float(nv.nvmlDeviceGetUtilizationRates(h).gpu))
            self.power.append(nv.nvmlDeviceGetPowerUsage(h) / 1000.0)
            self.used.append(int(nv.nvmlDeviceGetMemoryInfo(h).used))
            for p in nv.nvmlDeviceGetComputeRunningProcesses(h):
                if p.pid == os.getpid() and p.usedGpuMemory is not None:
                    self.own.append(int(p.usedGpuMemory))
            self.stop.wait(0.1)


def load_gpu(seconds: float) -> tuple[int, str]:
    """Busy cuda:0 for ``seconds``; returns (bytes held, what ran)."""
    try:
        import torch
    except ImportError:
        time.sleep(seconds)
        return 0, "idle (no PyTorch)"
    if not torch.cuda.is_available():
        time.sleep(seconds)
        return 0, "idle (PyTorch sees no GPU)"
    held = torch.empty(4 * 1024**3, dtype=torch.uint8, device="cuda:0")
    a = torch.randn(8192, 8192, dtype=torch.bfloat16, device="cuda:0")
    b = torch.randn(8192, 8192, dtype=torch.bfloat16, device="cuda:0")
    end = time.monotonic() + seconds
    products = 0
    while time.monotonic() < end:
        for _ in range(20):
            a @ b
        torch.cuda.synchronize()
        products += 20
    nbytes = held.numel()
    del held, a, b
    return nbytes, f"{products} bf16 8192^3 products"


def python_checks(t: Table, seconds: float) -> None:
    import algalon
    import pynvml as nv

    nv.nvmlInit()
    mon = algalon.Monitor(interval=0.1, gpus=0)
    gpu = mon.gpus[0]
    h = nv.nvmlDeviceGetHandleByIndex(gpu.nvml_index)
    uuid = nv.nvmlDeviceGetUUID(h)
    name = nv.nvmlDeviceGetName(h)
    total = int(nv.nvmlDeviceGetMemoryInfo(h).total)
    print(
        f"== Python: algalon {algalon.__version__}, cuda:0 = NVML {gpu.nvml_index} ({name})"
    )
    t.row("py uuid", uuid, gpu.uuid, "exact", uuid == gpu.uuid)
    t.row("py name", name, gpu.name, "exact", name == gpu.name)

    try:
        e0 = nv.nvmlDeviceGetTotalEnergyConsumption(h) / 1000.0
    except nv.NVMLError:
        e0 = None
    watch = NvmlWatch(nv, h)
    watch.start()
    wall0 = time.monotonic()
    b0 = time.perf_counter()
    job = mon.job("real-gpu-check").start()
    begin_s = time.perf_counter() - b0
    held, what = load_gpu(seconds)
    b1 = time.perf_counter()
    report = job.end()
    end_s = time.perf_counter() - b1
    wall = time.monotonic() - wall0
    e1 = nv.nvmlDeviceGetTotalEnergyConsumption(h) / 1000.0 if e0 is not None else None
    watch.stop.set()
    watch.join()
    mon.close()
    g = report.gpus[0]
    loaded = held > 0
    print(
        f"   load: {what}; job {report.duration_s:.2f} s of {wall:.2f} s wall, {g.samples} samples"
    )
    print(
        f"   job start {begin_s * 1000:.1f} ms, job end {end_s * 1000:.1f} ms (boundary samples)"
    )
    print(f"   slowest sample {fmt(report.slowest_sample_s)} s; notes {report.notes}")

    if e0 is None:
        t.row("py energy", None, g.energy_j, "no NVML counter", g.energy_j is not None)
    else:
        ref = e1 - e0
        gap = max(wall - report.duration_s, 0.0)
        pmax = g.power_max_w or 0.0
        tol = pmax * gap + 0.01 * ref + 1.0
        ok = g.energy_j is not None and abs(g.energy_j - ref) <= tol
        t.row("py energy J", ref, g.energy_j, f"{pmax:.0f} W x {gap:.2f} s +1%+1J", ok)
        t.row(
            "py energy source",
            "counter",
            g.energy_source,
            "exact",
            g.energy_source == "counter",
        )
    ref_p = sum(watch.power) / len(watch.power)
    tol_p = max(0.15 * ref_p, 20.0)
    ok = g.power_mean_w is not None and abs(g.power_mean_w - ref_p) <= tol_p
    t.row("py power mean W", ref_p, g.power_mean_w, f"{tol_p:.0f} W", ok)
    ref_u = sum(watch.util) / len(watch.util)
    ok = g.util_mean is not None and abs(g.util_mean - ref_u) <= 15
    t.row("py util mean %", ref_u, g.util_mean, "15 points", ok)
    t.row(
        "py util max % (load)",
        ">= 90",
        g.util_max,
        "under load",
        (g.util_max or 0) >= 90 if loaded else None,
    )
    ref_m = max(watch.used)
    ok = (
        g.memory_peak_bytes is not None
        and abs(g.memory_peak_bytes - ref_m) <= 0.02 * total
    )
    t.row(
        "py memory peak MiB",
        ref_m // MIB,
        (g.memory_peak_bytes or 0) // MIB,
        f"2% = {int(0.02 * total) // MIB} MiB",
        ok,
    )
    t.row(
        "py memory >= held MiB",
        held // MIB,
        (g.memory_peak_bytes or 0) // MIB,
        ">=",
        (g.memory_peak_bytes or 0) >= held if loaded else None,
    )
    own = g.process_memory_peak_bytes
    ref_own = max(watch.own) if watch.own else None
    if ref_own is None:
        t.row(
            "py own process MiB",
            None,
            own,
            "NVML lists no pid",
            None if not loaded else own is None,
        )
    else:
        ok = own is not None and abs(own - ref_own) <= 0.02 * total and own >= held
        t.row(
            "py own process MiB",
            ref_own // MIB,
            (own or 0) // MIB,
            "2% and >= held",
            ok,
        )
    t.row(
        "py job boundary ms",
        "-",
        f"{begin_s * 1000:.1f} / {end_s * 1000:.1f}",
        "recorded",
        True,
    )
    nv.nvmlShutdown()


def c_checks(t: Table, libdir: Path) -> None:
    import pynvml as nv

    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        t.row("c compile", "gcc", None, "needs gcc", None)
        return
    if not (libdir / "libalgalon.so").exists():
        die(
            f"{libdir}/libalgalon.so not found: build it with `cargo build --release -p algalon-ffi`"
        )
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "gpu_report"
        cmd = [
            gcc,
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            f"-I{ROOT}/algalon-ffi/include",
            str(ROOT / "examples/c/gpu_report.c"),
            f"-L{libdir}",
            "-lalgalon",
            "-o",
            str(exe),
        ]
        built = subprocess.run(cmd, check=False, capture_output=True, text=True)
        t.row(
            "c compile -Werror", "0", built.returncode, "exact", built.returncode == 0
        )
        if built.returncode:
            print(built.stderr)
            return
        env = dict(
            os.environ,
            LD_LIBRARY_PATH=f"{libdir}:{os.environ.get('LD_LIBRARY_PATH', '')}",
        )
        out = subprocess.run(
            [str(exe)], check=False, capture_output=True, text=True, env=env, timeout=60
        )
    print("== C: examples/c/gpu_report.c")
    print("   " + out.stdout.replace("\n", "\n   ").rstrip())
    t.row("c exit status", 0, out.returncode, "exact", out.returncode == 0)
    nv.nvmlInit()
    lines = {
        int(m.group(1)): m
        for m in re.finditer(
            r"^GPU (\d+): .*?/([0-9.?]+) GiB, .*\((.*)\)$", out.stdout, re.MULTILINE
        )
    }
    count = nv.nvmlDeviceGetCount()
    t.row("c gpu count", count, len(lines), "exact", count == len(lines))
    for i in range(count):
        h = nv.nvmlDeviceGetHandleByIndex(i)
        name = nv.nvmlDeviceGetName(h)
        gib = nv.nvmlDeviceGetMemoryInfo(h).total / 1024**3
        m = lines.get(i)
        t.row(
            f"c gpu {i} name",
            name,
            m and m.group(3),
            "exact",
            m is not None and m.group(3) == name,
        )
        ok = (
            m is not None and m.group(2) != "?" and abs(float(m.group(2)) - gib) <= 0.05
        )
        t.row(f"c gpu {i} memory GiB", round(gib, 1), m and m.group(2), "0.05 GiB", ok)
    nv.nvmlShutdown()
    job = re.search(
        r"^job example: ([0-9.]+) s, ([0-9.?]+) J", out.stdout, re.MULTILINE
    )
    t.row(
        "c job energy",
        "a reading",
        job and job.group(2),
        "present",
        job is not None and job.group(2) != "?",
    )
    t.row(
        "c prometheus text",
        "GPU series",
        "with" if "with DCGM_FI_DEV_GPU_UTIL" in out.stdout else "without",
        "present",
        "with DCGM_FI_DEV_GPU_UTIL" in out.stdout,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--seconds",
        type=float,
        default=8.0,
        help="length of the loaded job (default 8)",
    )
    ap.add_argument(
        "--libalgalon",
        type=Path,
        help="folder with libalgalon.so: also check the C library",
    )
    args = ap.parse_args()
    for mod, how in (
        ("algalon", "pip install algalon (or the wheel from scripts/build-wheel.sh)"),
        ("pynvml", "pip install nvidia-ml-py"),
    ):
        try:
            __import__(mod)
        except ImportError:
            die(f"Python module {mod} not found: {how}")
    t = Table()
    python_checks(t, args.seconds)
    if args.libalgalon:
        c_checks(t, args.libalgalon.resolve())
    print()
    if t.fails:
        print(f"VERDICT: FAIL ({t.fails} checks failed, {t.skips} skipped)")
        sys.exit(1)
    print(f"VERDICT: PASS ({t.skips} skipped)" if t.skips else "VERDICT: PASS")


if __name__ == "__main__":
    main()
