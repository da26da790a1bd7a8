#!/usr/bin/env python3
"""What each NVML call Algalon's sampler makes costs on this machine's driver.

    python3 benches/scripts/nvml-call-cost.py [--gpu 0] [--repeat 30]
    python3 benches/scripts/nvml-call-cost.py --exporter BIN [--csv FILE]
    python3 benches/scripts/nvml-call-cost.py --concurrency

Times every call of the default field set (and the other sources of README's
metric table) through nvidia-ml-py on one GPU, `--repeat` times each, and
prints the median and worst in milliseconds, slowest first, with the total of
the medians: a whole-GPU sample costs about that total when the calls run one
after another. Calls the GPU does not answer are listed as such. Runs on the
fake NVML as well (LD_LIBRARY_PATH=target/fake-nvml, a scenario set), where it
shows the simulated latency only.

With `--exporter`, the same question asked of Algalon itself: the exporter is
started once per field of the CSV (default: the default field set) with only
that field, and the mean of `algalon_sample_latency_seconds` over two seconds
at `-c 100` is that field's cost, beside a run with every field together.

With `--concurrency`, whether the driver runs calls from several threads at
once (what one reader thread per GPU relies on): the same calls from 1 and 4
threads (wall time of 4 × 20 calls against 20 calls alone: 1× means they
overlap, 4× means the driver serialises them), and a cheap call's latency
while another thread sits in the 20 ms `nvmlDeviceGetPcieThroughput`.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable

import pynvml as n


def calls(h) -> list[tuple[str, Callable[[], object]]]:
    fv = [n.NVML_FI_DEV_NVLINK_BANDWIDTH_C0_TOTAL, n.NVML_FI_DEV_MEMORY_TEMP]
    out: list[tuple[str, Callable[[], object]]] = [
        (
            "nvmlDeviceGetClockInfo(SM)",
            lambda: n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM),
        ),
        (
            "nvmlDeviceGetClockInfo(MEM)",
            lambda: n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_MEM),
        ),
        (
            "nvmlDeviceGetTemperature",
            lambda: n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU),
        ),
        ("nvmlDeviceGetPowerUsage", lambda: n.nvmlDeviceGetPowerUsage(h)),
        (
            "nvmlDeviceGetTotalEnergyConsumption",
            lambda: n.nvmlDeviceGetTotalEnergyConsumption(h),
        ),
        ("nvmlDeviceGetPcieReplayCounter", lambda: n.nvmlDeviceGetPcieReplayCounter(h)),
        ("nvmlDeviceGetUtilizationRates", lambda: n.nvmlDeviceGetUtilizationRates(h)),
        (
            "nvmlDeviceGetEncoderUtilization",
            lambda: n.nvmlDeviceGetEncoderUtilization(h),
        ),
        (
            "nvmlDeviceGetDecoderUtilization",
            lambda: n.nvmlDeviceGetDecoderUtilization(h),
        ),
        (
            "nvmlDeviceGetMemoryInfo_v2",
            lambda: n.nvmlDeviceGetMemoryInfo(h, version=n.nvmlMemory_v2),
        ),
        ("nvmlDeviceGetFieldValues(2)", lambda: n.nvmlDeviceGetFieldValues(h, fv)),
        ("nvmlDeviceGetRemappedRows", lambda: n.nvmlDeviceGetRemappedRows(h)),
        (
            "nvmlDeviceGetComputeRunningProcesses",
            lambda: n.nvmlDeviceGetComputeRunningProcesses(h),
        ),
        (
            "nvmlDeviceGetGraphicsRunningProcesses",
            lambda: n.nvmlDeviceGetGraphicsRunningProcesses(h),
        ),
        (
            "nvmlDeviceGetProcessUtilization",
            lambda: n.nvmlDeviceGetProcessUtilization(h, 0),
        ),
        (
            "nvmlDeviceGetCurrentClocksEventReasons",
            lambda: n.nvmlDeviceGetCurrentClocksEventReasons(h),
        ),
        ("nvmlDeviceGetPerformanceState", lambda: n.nvmlDeviceGetPerformanceState(h)),
        (
            "nvmlDeviceGetPowerManagementLimit",
            lambda: n.nvmlDeviceGetPowerManagementLimit(h),
        ),
        (
            "nvmlDeviceGetTotalEccErrors",
            lambda: n.nvmlDeviceGetTotalEccErrors(
                h, n.NVML_MEMORY_ERROR_TYPE_CORRECTED, n.NVML_VOLATILE_ECC
            ),
        ),
        (
            "nvmlDeviceGetPcieThroughput(TX)",
            lambda: n.nvmlDeviceGetPcieThroughput(h, n.NVML_PCIE_UTIL_TX_BYTES),
        ),
        (
            "nvmlDeviceGetPcieThroughput(RX)",
            lambda: n.nvmlDeviceGetPcieThroughput(h, n.NVML_PCIE_UTIL_RX_BYTES),
        ),
        ("nvmlDeviceGetUUID", lambda: n.nvmlDeviceGetUUID(h)),
        ("nvmlDeviceGetMigMode", lambda: n.nvmlDeviceGetMigMode(h)),
    ]
    if hasattr(n, "nvmlGpmSampleAlloc"):
        sample = n.nvmlGpmSampleAlloc()
        out.append(("nvmlGpmSampleGet", lambda: n.nvmlGpmSampleGet(h, sample)))
    return out


def exporter_mean_ms(
    binary: str, csv_lines: list[str], seconds: float
) -> tuple[float, int]:
    """Mean sample latency (ms) and sample count of `binary` collecting `csv_lines`."""
    with tempfile.TemporaryDirectory() as tmp:
        csv = f"{tmp}/fields.csv"
        with open(csv, "w") as f:
            f.write("\n".join(csv_lines) + "\n")
        log = open(f"{tmp}/log", "w+")  # noqa: SIM115 (read while the exporter writes)
        cmd = [
            binary,
            "-a",
            "127.0.0.1:0",
            "-c",
            "100",
            "-f",
            csv,
            "--log-format",
            "text",
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        try:
            addr = None
            for _ in range(100):
                log.seek(0)
                m = re.search(r"listening on http://([0-9.:]+)", log.read())
                if m:
                    addr = m.group(1)
                    break
                time.sleep(0.05)
            if addr is None:
                log.seek(0)
                raise SystemExit(f"{binary} did not start: {log.read()[-500:]}")
            time.sleep(seconds)
            body = (
                urllib.request.urlopen(f"http://{addr}/metrics", timeout=10)
                .read()
                .decode()
            )
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    def val(name: str) -> float:
        m = re.search(rf"^{name} ([0-9.e+-]+)$", body, re.MULTILINE)
        return float(m.group(1)) if m else float("nan")

    count = val("algalon_sample_latency_seconds_count")
    return val("algalon_sample_latency_seconds_sum") / count * 1000, int(count)


def exporter_fields(binary: str, csv: str | None, seconds: float) -> None:
    path = csv or "algalon-core/src/default-counters.csv"
    with open(path) as f:
        lines = [
            line.strip()
            for line in f
            if line.strip() and not line.lstrip().startswith("#")
        ]
    rows = []
    for line in lines:
        mean, count = exporter_mean_ms(binary, [line], seconds)
        rows.append((mean, count, line.split(",")[0].strip()))
    rows.sort(reverse=True)
    print(f"{'field (alone)':48} {'mean sample ms':>15} {'samples':>8}")
    for mean, count, name in rows:
        print(f"{name:48} {mean:15.3f} {count:8}")
    mean, count = exporter_mean_ms(binary, lines, seconds)
    print(f"{'all ' + str(len(lines)) + ' together':48} {mean:15.3f} {count:8}")


def concurrency(h, repeat: int) -> None:
    import threading

    probes = [
        (
            "nvmlDeviceGetTotalEnergyConsumption",
            lambda: n.nvmlDeviceGetTotalEnergyConsumption(h),
        ),
        (
            "nvmlDeviceGetTemperature",
            lambda: n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU),
        ),
        (
            "nvmlDeviceGetMemoryInfo_v2",
            lambda: n.nvmlDeviceGetMemoryInfo(h, version=n.nvmlMemory_v2),
        ),
    ]

    def loop(call: Callable[[], object]) -> None:
        for _ in range(repeat):
            call()

    print(f"{'call':40} {'1 thread ms':>12} {'4 threads ms':>13} {'ratio':>6}")
    for name, call in probes:
        t0 = time.perf_counter()
        loop(call)
        alone = time.perf_counter() - t0
        threads = [threading.Thread(target=loop, args=(call,)) for _ in range(4)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        together = time.perf_counter() - t0
        print(
            f"{name:40} {alone * 1000:12.2f} {together * 1000:13.2f} {together / alone:6.2f}"
        )

    stop = threading.Event()

    def pcie() -> None:
        while not stop.is_set():
            n.nvmlDeviceGetPcieThroughput(h, n.NVML_PCIE_UTIL_TX_BYTES)

    for name, call in probes[1:]:
        quiet = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            call()
            quiet.append((time.perf_counter() - t0) * 1000)
        stop.clear()
        busy_thread = threading.Thread(target=pcie)
        busy_thread.start()
        time.sleep(0.005)
        busy = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            call()
            busy.append((time.perf_counter() - t0) * 1000)
        stop.set()
        busy_thread.join()
        print(
            f"{name} while another thread is in nvmlDeviceGetPcieThroughput: "
            f"median {statistics.median(busy):.3f} ms, worst {max(busy):.3f} ms "
            f"(alone: median {statistics.median(quiet):.3f}, worst {max(quiet):.3f})"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpu", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--exporter", help="time Algalon's exporter per field instead")
    ap.add_argument(
        "--csv", help="with --exporter: the fields (default: the default set)"
    )
    ap.add_argument(
        "--seconds", type=float, default=2.0, help="with --exporter: run per field"
    )
    ap.add_argument(
        "--concurrency", action="store_true", help="do calls overlap across threads"
    )
    args = ap.parse_args()
    if args.exporter:
        exporter_fields(args.exporter, args.csv, args.seconds)
        return
    n.nvmlInit()
    h = n.nvmlDeviceGetHandleByIndex(args.gpu)
    print(
        f"GPU {args.gpu}: {n.nvmlDeviceGetName(h)}, driver {n.nvmlSystemGetDriverVersion()}"
    )
    if args.concurrency:
        concurrency(h, args.repeat)
        n.nvmlShutdown()
        return
    rows = []
    for name, call in calls(h):
        times = []
        error = None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            try:
                call()
            except n.NVMLError as e:
                error = str(e)
            times.append((time.perf_counter() - t0) * 1000)
        rows.append((statistics.median(times), max(times), name, error))
    rows.sort(reverse=True)
    print(f"{'call':44} {'median ms':>10} {'worst ms':>10}")
    for median, worst, name, error in rows:
        print(
            f"{name:44} {median:10.3f} {worst:10.3f}"
            + (f"  ({error})" if error else "")
        )
    print(f"{'sum of medians':44} {sum(r[0] for r in rows):10.3f}")
    n.nvmlShutdown()


if __name__ == "__main__":
    main()
