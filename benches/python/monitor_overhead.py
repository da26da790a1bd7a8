#!/usr/bin/env python3
"""What a Python training process pays for an `algalon.Monitor`, and for the alternatives.

    python3 benches/python/monitor_overhead.py   # ~1.5 min (+ builds on the first run)

Everything runs against the fake NVML (`testing/fake-nvml`, release build,
scenario `testing/scenarios/h100x8.json`: 8 × H100), with no GPU. Measured,
interleaved over `--rounds` rounds (default 7), medians and min–max spread:

1. **Busy-loop slowdown.** A fixed amount of pure-Python work (calibrated once
   to ~1.2 s) with no monitor, then with `algalon.Monitor(interval=0.1)`
   sampling all 8 GPUs (inside `with mon.job(...)`), nvitop's
   `ResourceMetricCollector(Device.all(), interval=0.1)` (activated, so its
   daemon thread samples) and Zeus's `ZeusMonitor` (an open
   `begin_window`/`end_window`). Every run, monitored or not, follows a
   0.25 s pause. Each monitored run is compared with the mean
   of the no-monitor runs right before and after it; the no-monitor runs
   compared with each other give the noise floor ("A/A"). "monitor CPU" is
   the CPU time of every thread but the busy loop's, per second of wall time.
2. **Job boundary cost.** `with mon.job("j"): pass`, enter + exit, with
   `gpus=[0]` and with all 8 GPUs (`--iterations`, default 2000, pooled over
   the rounds), and Zeus's `begin_window` + `end_window` for comparison.

What it does first (skipped with `--python PY`, which must already have
`algalon`, and optionally `nvitop` / `zeus`, installed):

* `cargo build --release -p fake-nvml`, copied to
  `target/release/fake-nvml/libnvidia-ml.so.1`;
* `maturin build --release -m algalon-py/Cargo.toml` into a temporary
  directory, installed (`--force-reinstall --no-deps`) into the venv
  `--venv` (default `/tmp/bench-venv`; created with `nvitop` when missing,
  and `zeus` when `pip install zeus` finishes within 60 s — the outcome is
  remembered in the venv). The system python3's (debug) `algalon` is left
  alone.

The benchmark itself runs in a child process of the venv's python with
`ALGALON_NVML_LIB`, `LD_LIBRARY_PATH` (pynvml, used by nvitop and Zeus) and
`ALGALON_FAKE_NVML_SCENARIO` set, and prints a Markdown table, the machine
(CPU model, nproc, load average before and after) and the versions.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FAKE_DIR = ROOT / "target" / "release" / "fake-nvml"
FAKE_LIB = FAKE_DIR / "libnvidia-ml.so.1"
SCENARIO = ROOT / "testing" / "scenarios" / "h100x8.json"
ZEUS_MARKER = "algalon-bench-zeus.txt"
ZEUS_INSTALL_TIMEOUT_S = 60
WORKER_TIMEOUT_S = 240


# --------------------------------------------------------------------------
# Setup (any python3, stdlib only)
# --------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"monitor_overhead: {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], timeout: float, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, check=True, timeout=timeout, **kw)


def build_fake_nvml() -> None:
    log("cargo build --release -p fake-nvml")
    run(["cargo", "build", "--release", "--quiet", "-p", "fake-nvml"], timeout=600)
    built = ROOT / "target" / "release" / "libnvidia_ml.so"
    FAKE_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copy2(built, FAKE_LIB)


def prepare_venv(venv: Path) -> Path:
    py = venv / "bin" / "python"
    if not py.exists():
        log(f"creating {venv} (nvitop from PyPI)")
        run([sys.executable, "-m", "venv", str(venv)], timeout=120)
        run([str(py), "-m", "pip", "install", "-q", "nvitop"], timeout=300)
    marker = venv / ZEUS_MARKER
    if not marker.exists():
        log(f"pip install zeus (given {ZEUS_INSTALL_TIMEOUT_S} s)")
        try:
            run(
                [str(py), "-m", "pip", "install", "-q", "zeus"],
                timeout=ZEUS_INSTALL_TIMEOUT_S,
                capture_output=True,
            )
            marker.write_text("installed\n")
        except subprocess.TimeoutExpired:
            marker.write_text(
                f"skipped: `pip install zeus` did not finish in {ZEUS_INSTALL_TIMEOUT_S} s\n"
            )
        except subprocess.CalledProcessError as e:
            tail = (e.stderr or b"").decode(errors="replace").strip().splitlines()[-1:]
            marker.write_text(f"skipped: `pip install zeus` failed: {' '.join(tail)}\n")
    with tempfile.TemporaryDirectory(prefix="algalon-wheel-") as tmp:
        log("maturin build --release -m algalon-py/Cargo.toml")
        run(
            [
                "maturin",
                "build",
                "--release",
                "--quiet",
                "-m",
                "algalon-py/Cargo.toml",
                "-o",
                tmp,
            ],
            timeout=900,
            stdout=subprocess.DEVNULL,
        )
        wheels = sorted(Path(tmp).glob("algalon-*.whl"))
        if not wheels:
            sys.exit("monitor_overhead: maturin produced no wheel")
        run(
            [
                str(py),
                "-m",
                "pip",
                "install",
                "-q",
                "--force-reinstall",
                "--no-deps",
                str(wheels[-1]),
            ],
            timeout=120,
        )
    return py


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--python", help="interpreter with algalon installed (skips all building)"
    )
    ap.add_argument("--venv", default="/tmp/bench-venv", type=Path)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument(
        "--iterations",
        type=int,
        default=2000,
        help="job enter+exit timings per GPU set",
    )
    ap.add_argument(
        "--seconds", type=float, default=1.2, help="busy-loop length without a monitor"
    )
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return

    if args.python:
        py = Path(args.python)
        if not FAKE_LIB.exists():
            build_fake_nvml()
        zeus_note = ""  # the worker tries to import it
    else:
        build_fake_nvml()
        py = prepare_venv(args.venv)
        zeus_note = (args.venv / ZEUS_MARKER).read_text().strip()

    env = dict(os.environ)
    env["ALGALON_NVML_LIB"] = str(FAKE_LIB)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in [str(FAKE_DIR), env.get("LD_LIBRARY_PATH", "")] if p
    )
    env["ALGALON_FAKE_NVML_SCENARIO"] = str(SCENARIO)
    env.pop("ALGALON_FAKE_NVML_LATENCY_MS", None)
    env.pop("ALGALON_FAKE_NVML_FROZEN_TIME", None)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env["ALGALON_BENCH_ZEUS_NOTE"] = zeus_note
    cmd = [
        str(py),
        str(Path(__file__).resolve()),
        "--worker",
        f"--rounds={args.rounds}",
        f"--iterations={args.iterations}",
        f"--seconds={args.seconds}",
    ]
    try:
        rc = subprocess.run(
            cmd, check=False, env=env, cwd=ROOT, timeout=WORKER_TIMEOUT_S
        ).returncode
    except subprocess.TimeoutExpired:
        sys.exit(f"monitor_overhead: benchmark did not finish in {WORKER_TIMEOUT_S} s")
    sys.exit(rc)


# --------------------------------------------------------------------------
# The benchmark (runs in the venv's python)
# --------------------------------------------------------------------------


def busy(n: int) -> int:
    """Pure-Python work: no allocation beyond small ints, no I/O, holds the GIL."""
    x = 0
    for i in range(n):
        x = (x + i * i) % 1000003
    return x


def median(xs: list[float]) -> float:
    s = sorted(xs)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


def quantile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


class Timed:
    """One busy-loop run: wall time, and CPU of all threads but this one."""

    def __init__(self, n: int):
        import gc
        import time

        gc.collect()
        w0, p0, t0 = time.perf_counter(), time.process_time(), time.thread_time()
        busy(n)
        w1, p1, t1 = time.perf_counter(), time.process_time(), time.thread_time()
        self.wall = w1 - w0
        self.other_cpu = max(0.0, (p1 - p0) - (t1 - t0))


def worker(args: argparse.Namespace) -> None:
    import time

    import algalon

    try:
        from nvitop import Device, ResourceMetricCollector
    except ImportError as e:
        ResourceMetricCollector = None
        nvitop_note = f"skipped: {e}"
    else:
        nvitop_note = ""
    zeus_note = os.environ.get("ALGALON_BENCH_ZEUS_NOTE", "")
    ZeusMonitor = None
    if not zeus_note or zeus_note == "installed":
        try:
            from zeus.monitor import ZeusMonitor

            zeus_note = ""
        except ImportError as e:
            zeus_note = f"skipped: {e}"

    import logging

    # Zeus warns on every window too short for the energy counter to move.
    logging.getLogger("zeus").setLevel(logging.ERROR)
    load_before = os.getloadavg()
    all_gpus = len(algalon.gpus())

    # Calibrate the fixed amount of work once.
    busy(200_000)
    n = 1_000_000
    t = Timed(n).wall
    n = max(1, int(n * args.seconds / t))

    def settle():
        time.sleep(0.25)  # past construction / the first ticks

    def run_none():
        settle()  # the same pause as before a monitored run
        return Timed(n), ""

    def run_algalon():
        mon = algalon.Monitor(interval=0.1)
        try:
            settle()
            with mon.job("busy") as job:
                r = Timed(n)
            return r, job.report.gpus[0].samples
        finally:
            mon.close()

    def run_nvitop():
        c = ResourceMetricCollector(Device.all(), interval=0.1)
        count = [0]
        orig = c.take_snapshots

        def counted():
            count[0] += 1
            return orig()

        c.take_snapshots = counted
        c.activate("busy")
        try:
            settle()
            k0 = count[0]
            r = Timed(n)
            return r, count[0] - k0
        finally:
            c.deactivate()
            c._daemon.join(timeout=5)  # its thread ends at its next tick

    zeus_mon = {}

    def get_zeus(gpus):
        key = tuple(gpus)
        if key not in zeus_mon:
            zeus_mon[key] = ZeusMonitor(gpu_indices=list(gpus), cpu_indices=[])
        return zeus_mon[key]

    def run_zeus():
        z = get_zeus(range(all_gpus))
        settle()
        z.begin_window("busy", sync_execution=False)
        r = Timed(n)
        z.end_window("busy", sync_execution=False)
        bg = "PowerMonitor process" if z.power_monitor is not None else "none"
        return r, bg

    monitors = [("Algalon", run_algalon)]
    if ResourceMetricCollector is not None:
        monitors.append(("nvitop", run_nvitop))
    if ZeusMonitor is not None:
        monitors.append(("Zeus", run_zeus))

    per = {name: {"slow": [], "cpu": [], "extra": []} for name, _ in monitors}
    base_walls: list[float] = []
    aa: list[float] = []
    timings = {"job1": [], "job8": [], "zeus1": [], "zeus8": []}
    round_medians = {k: [] for k in timings}
    per_round = max(1, -(-args.iterations // args.rounds))

    def time_jobs(kind: str, gpus):
        out = []
        pc = time.perf_counter_ns
        if kind == "job":
            mon = algalon.Monitor(interval=0.1, gpus=gpus)
            try:
                settle()
                for _ in range(20):
                    with mon.job("warm"):
                        pass
                for _ in range(per_round):
                    t0 = pc()
                    with mon.job("j"):
                        pass
                    out.append((pc() - t0) / 1e3)
            finally:
                mon.close()
        else:
            z = get_zeus(gpus)
            for _ in range(per_round):
                t0 = pc()
                z.begin_window("w", sync_execution=False)
                z.end_window("w", sync_execution=False)
                out.append((pc() - t0) / 1e3)
        return out

    print(
        f"monitor_overhead: {args.rounds} rounds, busy loop n={n:,} "
        f"(~{args.seconds} s), {len(monitors)} monitors, {all_gpus} GPUs",
        file=sys.stderr,
        flush=True,
    )
    for rnd in range(args.rounds):
        order = monitors[rnd % len(monitors) :] + monitors[: rnd % len(monitors)]
        prev, _ = run_none()
        base_walls.append(prev.wall)
        for name, fn in order:
            r, extra = fn()
            nxt, _ = run_none()
            base_walls.append(nxt.wall)
            aa.append(nxt.wall / prev.wall - 1)
            base = (prev.wall + nxt.wall) / 2
            per[name]["slow"].append(r.wall / base - 1)
            per[name]["cpu"].append(r.other_cpu / r.wall)
            per[name]["extra"].append((extra, r.wall))
            prev = nxt
        for key, kind, gpus in [
            ("job1", "job", [0]),
            ("job8", "job", None),
            ("zeus1", "zeus", [0]),
            ("zeus8", "zeus", list(range(all_gpus))),
        ]:
            if kind == "zeus" and ZeusMonitor is None:
                continue
            xs = time_jobs(kind, gpus)
            timings[key].extend(xs)
            round_medians[key].append(median(xs))
        print(
            f"monitor_overhead: round {rnd + 1}/{args.rounds} done",
            file=sys.stderr,
            flush=True,
        )
    load_after = os.getloadavg()

    # ---------------------------------------------------------------- report
    def pct(x: float) -> str:
        return f"{100 * x:+.2f} %"

    def spread_pct(xs):
        return f"{pct(min(xs))} … {pct(max(xs))}"

    noise = median([abs(x) for x in aa])  # typical |A/A| difference
    rows = []
    rows.append(
        (
            "busy loop, no monitor (wall)",
            f"{median(base_walls):.3f} s",
            f"{min(base_walls):.3f} … {max(base_walls):.3f} s",
            "",
            "",
        )
    )
    rows.append(
        (
            "A/A: no monitor vs. the no-monitor run before it",
            pct(median(aa)),
            spread_pct(aa),
            "",
            f"noise floor (median \\|A/A\\| {100 * noise:.2f} %)",
        )
    )
    algalon_slow = median(per["Algalon"]["slow"])
    algalon_cpu = median(per["Algalon"]["cpu"])
    for name, _ in monitors:
        d = per[name]
        label = {
            "Algalon": f"slowdown, `algalon.Monitor(interval=0.1)`, {all_gpus} GPUs",
            "nvitop": f"slowdown, nvitop `ResourceMetricCollector(interval=0.1)`, {all_gpus} GPUs",
            "Zeus": f"slowdown, Zeus `ZeusMonitor` window open, {all_gpus} GPUs",
        }[name]
        s = median(d["slow"])
        if name == "Algalon":
            if s < 0.01:
                verdict = "met"
            elif s <= noise:
                verdict = f"not resolved: within the {100 * noise:.2f} % A/A noise"
            else:
                verdict = "**missed**"
        elif name == "Zeus":
            verdict = "no background work while a window is open"
        elif algalon_slow > max(0.001, noise):
            verdict = f"{s / algalon_slow:.1f} × Algalon's"
        else:
            verdict = (
                f"≥ {s / max(0.001, noise):.0f} × Algalon's "
                f"(taking Algalon's as the {100 * noise:.2f} % A/A noise)"
            )
        rows.append(
            (
                label,
                pct(s),
                spread_pct(d["slow"]),
                "< 1 %" if name == "Algalon" else "",
                verdict,
            )
        )
        cpu = median(d["cpu"])
        if name == "Zeus":
            bgs = {e for e, _ in d["extra"]}
            note = f"background sampler: {', '.join(sorted(bgs))} (H100 energy counter read at window edges)"
        else:
            # Algalon's count includes the job's two boundary samples.
            skip = 2 if name == "Algalon" else 0
            rates = [(e - skip) / w for e, w in d["extra"]]
            note = f"{median(rates):.1f} background samples/s"
            if name != "Algalon" and algalon_cpu > 0:
                note += f"; {cpu / algalon_cpu:.0f} × Algalon's CPU"
        rows.append(
            (
                f"{name}: monitor threads' CPU",
                f"{100 * cpu:.2f} % of a core",
                f"{100 * min(d['cpu']):.2f} … {100 * max(d['cpu']):.2f} %",
                "",
                note,
            )
        )

    def us_rows(key: str, label: str, target: str):
        xs = timings[key]
        if not xs:
            return
        med, p90, p99 = median(xs), quantile(xs, 0.9), quantile(xs, 0.99)
        rm = round_medians[key]
        verdict = ""
        if target:
            verdict = (
                "median "
                + ("met" if med < 200 else "**missed**")
                + ", p90 "
                + ("met" if p90 < 200 else "**missed**")
            )
        rows.append(
            (
                f"{label} ({len(xs)}×)",
                f"{med:.0f} µs (p90 {p90:.0f}, p99 {p99:.0f})",
                f"round medians {min(rm):.0f} … {max(rm):.0f} µs",
                target,
                verdict,
            )
        )

    us_rows("job1", "`with mon.job(…): pass`, `gpus=[0]`", "< 200 µs")
    us_rows("job8", f"`with mon.job(…): pass`, all {all_gpus} GPUs", "< 200 µs")
    us_rows("zeus1", "Zeus `begin_window`+`end_window`, 1 GPU", "")
    us_rows("zeus8", f"Zeus `begin_window`+`end_window`, {all_gpus} GPUs", "")

    print()
    print("| measure | median | spread | target | |")
    print("|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    for name, note in [("nvitop", nvitop_note), ("Zeus", zeus_note)]:
        if note:
            print(f"\n{name}: {note}")

    def cpu_model() -> str:
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return platform.processor() or "unknown"

    def version(dist: str) -> str:
        from importlib import metadata

        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "—"

    def git_rev() -> str:
        try:

            def git(*args: str) -> str:
                return subprocess.run(
                    ["git", *args],
                    check=False,
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    timeout=10,
                ).stdout.strip()

            rev = git("rev-parse", "--short", "HEAD")
            dirty = git("status", "--porcelain", "--untracked-files=no")
            return rev + ("+dirty" if dirty else "")
        except (OSError, subprocess.SubprocessError):
            return "unknown"

    def la(t: tuple[float, ...]) -> str:
        return " ".join(f"{x:.2f}" for x in t)

    print()
    print(
        f"Machine: {cpu_model()}, nproc {os.cpu_count()}, Linux {platform.release()}, "
        f"load average {la(load_before)} before, {la(load_after)} after."
    )
    print(
        f"Versions: Python {platform.python_version()}, algalon {algalon.__version__} "
        f"(release wheel, commit {git_rev()}), nvitop {version('nvitop')}, "
        f"nvidia-ml-py {version('nvidia-ml-py')}, zeus {version('zeus')}; "
        f"NVML: fake-nvml release, {SCENARIO.relative_to(ROOT)}."
    )
    print(
        f"Setup: {args.rounds} interleaved rounds; busy loop n={n:,}; each monitored run vs. the mean of "
        f"the no-monitor runs around it; {per_round} job timings per GPU set per round."
    )


if __name__ == "__main__":
    main()
