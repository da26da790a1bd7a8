"""Monitors dropped mid-sample, many Monitors at once, exit with live ones.

Each test runs in a fresh interpreter (``run_python``) with injected NVML
latency, so that the sampling thread is inside an NVML call when the last
reference goes away, and counts the process's OS threads in
``/proc/self/task`` before and after: a Monitor that is closed or collected
leaves none behind.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import run_python

THREADS = """
import gc, os, threading, time
import algalon

def os_threads():
    return len(os.listdir("/proc/self/task"))

def settle(want, within=10.0):
    # Threads are joined before close()/collection returns; allow the OS a
    # moment to reap them all the same.
    deadline = time.monotonic() + within
    while os_threads() > want and time.monotonic() < deadline:
        time.sleep(0.01)
    return os_threads()
"""


def with_threads(code: str) -> str:
    """``code`` after the thread-counting helpers."""
    return THREADS + textwrap.dedent(code)


def test_monitors_collected_mid_sample_leave_no_thread() -> None:
    out = run_python(
        with_threads(
            """
        before, py_before = os_threads(), threading.active_count()
        for i in range(25):
            mon = algalon.Monitor(interval=0.001)
            # The sampler and one reader per GPU.
            assert os_threads() == before + 1 + len(mon.gpus), os_threads()
            job = mon.job("dropped").start() if i % 2 else None
            time.sleep(0.004)         # the sampler is mid-sample (2 ms per NVML call)
            del mon, job              # no close(), no end()
            gc.collect()
            assert settle(before) == before, (i, os_threads(), before)
        # A Monitor kept alive only by a reference cycle.
        class Holder:
            pass
        for i in range(5):
            h = Holder()
            h.mon = algalon.Monitor(interval=0.001)
            h.job = h.mon.job("cycle").start()
            h.self = h
            time.sleep(0.004)
            del h
            gc.collect()
            assert settle(before) == before, ("cycle", i, os_threads(), before)
        # A Job that outlives its Monitor's last reference keeps it measuring.
        mon = algalon.Monitor(interval=0.01)
        job = mon.job("outlives").start()
        del mon
        gc.collect()
        time.sleep(0.1)
        report = job.end()
        assert report.gpus[0].samples >= 3, report.gpus[0].samples
        del job, report
        gc.collect()
        assert settle(before) == before
        assert threading.active_count() == py_before
        print("threads", before, os_threads())
        """
        ),
        env={"ALGALON_FAKE_NVML_LATENCY_MS": "2"},
        timeout=180,
    )
    assert "threads 1 1" in out.stdout, out.stdout


def test_32_monitors_at_once_with_jobs_then_closed_or_collected() -> None:
    out = run_python(
        with_threads(
            """
        import concurrent.futures as cf

        before = os_threads()
        mons = [algalon.Monitor(interval=0.005) for _ in range(32)]
        assert os_threads() == before + 32 * (1 + len(mons[0].gpus)), os_threads()

        def work(i):
            mon = mons[i]
            reports = []
            for k in range(3):
                with mon.job(f"m{i}-{k}", labels={"k": k}) as job:
                    time.sleep(0.02)
                    job.count(samples=10)
                reports.append(job.report)
            return reports

        with cf.ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(work, range(32)))
        for i, reports in enumerate(results):
            for k, r in enumerate(reports):
                assert r.name == f"m{i}-{k}" and not r.interrupted, r
                assert r.counts == {"samples": 10.0}
                assert r.gpus[0].samples >= 2 and r.gpus[0].energy_j > 0, r.gpus[0]
        # Half closed, half only dropped; a few servers too.
        servers = [m.serve(port=0) for m in mons[:4]]
        for m in mons[:16]:
            m.close()
        assert all(m.closed for m in mons[:16]) and not any(m.closed for m in mons[16:])
        del mons, results, servers, pool
        gc.collect()
        after = settle(before)
        print("threads", before, "with 32:", before + 32, "after:", after)
        assert after == before, (after, before)
        """
        ),
        env={"ALGALON_FAKE_NVML_LATENCY_MS": "1"},
        timeout=240,
    )
    assert "after: 1" in out.stdout, out.stdout


def test_exit_with_live_monitors_mid_sample_is_clean() -> None:
    # The interpreter exits while Monitors sample (slow NVML), with a job
    # running, a server up, and one Monitor in a reference cycle.
    for variant in ("plain", "cycle", "serve", "thread") * 3:
        proc = run_python(
            """
            import os, threading, time
            import algalon

            variant = os.environ["EXIT_VARIANT"]
            mons = [algalon.Monitor(interval=0.001) for _ in range(4)]
            jobs = [m.job("at-exit").start() for m in mons]
            if variant == "cycle":
                class Holder:
                    pass
                h = Holder(); h.mon = mons.pop(); h.self = h
                del h
            if variant == "serve":
                server = mons[0].serve(port=0)
            if variant == "thread":
                # A Python thread using a Monitor while the interpreter exits.
                def spin():
                    while True:
                        with mons[1].job("daemon"):
                            time.sleep(0.001)
                threading.Thread(target=spin, daemon=True).start()
            time.sleep(0.05)
            print("exiting", variant, flush=True)
            """,
            env={"ALGALON_FAKE_NVML_LATENCY_MS": "2", "EXIT_VARIANT": variant},
            timeout=60,
        )
        assert f"exiting {variant}" in proc.stdout
        for bad in ("panicked", "Fatal Python error", "Traceback", "Segmentation"):
            assert bad not in proc.stderr, (variant, proc.stderr)


def test_exit_while_daemon_threads_are_inside_job_boundaries() -> None:
    # Four daemon threads go through job boundaries (each a synchronous,
    # slow sample with the GIL released) as fast as they can while the
    # interpreter exits. CPython ends such threads when they ask for the GIL
    # back; inside Algalon that used to kill the process with SIGSEGV in about
    # half of these runs.
    for _ in range(12):
        proc = run_python(
            """
            import threading, time
            import algalon

            mons = [algalon.Monitor(interval=0.001) for _ in range(2)]
            def spin(mon):
                while True:
                    with mon.job("daemon"):
                        pass
            for i in range(4):
                threading.Thread(target=spin, args=(mons[i % 2],), daemon=True).start()
            time.sleep(0.05)
            print("exiting", flush=True)
            """,
            env={"ALGALON_FAKE_NVML_LATENCY_MS": "2"},
            timeout=60,
        )
        assert "exiting" in proc.stdout
        assert "Segmentation" not in proc.stderr and "panicked" not in proc.stderr, (
            proc.stderr
        )


def test_return_inside_with_type_checks(tmp_path: Path) -> None:
    """``__exit__`` is typed ``Literal[False]``: mypy knows a ``with`` block
    does not swallow exceptions, so a ``return`` inside it is enough."""
    src = tmp_path / "uses_with.py"
    src.write_text(
        "import algalon\n\n\n"
        "def f() -> int:\n"
        "    with algalon.Monitor() as mon, mon.job('x'):\n"
        "        return 1\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(src)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_tracked_functions_are_typed(tmp_path: Path) -> None:
    """``@mon.track`` keeps the function's signature and adds ``last_report``:
    mypy --strict accepts both without ``type: ignore``, and catches misuse."""
    src = tmp_path / "uses_track.py"
    src.write_text(
        "import asyncio\n"
        "import algalon\n\n"
        "mon = algalon.Monitor()\n\n\n"
        "@mon.track('evaluate')\n"
        "def evaluate(x: int) -> int:\n"
        "    return x * 2\n\n\n"
        "@mon.track\n"
        "async def infer(n: int) -> str:\n"
        "    return str(n)\n\n\n"
        "doubled: int = evaluate(21)\n"
        "text: str = asyncio.run(infer(3))\n"
        "r: algalon.Report | None = evaluate.last_report\n"
        "if infer.last_report is not None:\n"
        "    print(infer.last_report.energy_j)\n"
    )
    mypy = [sys.executable, "-m", "mypy", "--strict", "--no-incremental"]
    proc = subprocess.run(
        [*mypy, str(src)], check=False, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The signature is kept: a wrong argument type is an error.
    src.write_text(src.read_text().replace("evaluate(21)", "evaluate('21')"))
    proc = subprocess.run(
        [*mypy, str(src)], check=False, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1 and "uses_track.py:17: error" in proc.stdout, (
        proc.stdout
    )
    assert 'expected "int"' in proc.stdout, proc.stdout
