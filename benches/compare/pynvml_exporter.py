#!/usr/bin/env python3
"""The GPU exporter people write by hand: nvidia-ml-py + prometheus_client.

This is the comparison baseline in ``benches/compare/``: what a careful
engineer writes from prometheus_client's documentation ("Custom Collectors")
when no exporter is deployed. A custom collector queries NVML on every scrape
(collect on scrape, no background thread, nothing stale) and
``prometheus_client.start_http_server`` serves it from a dedicated registry
(no process/platform/gc collectors, so every microsecond goes to GPUs).

Done right on purpose, not a strawman:

* NVML is initialised once; device handles, names and UUIDs are looked up
  once at start, not per scrape.
* Each reading is queried once per scrape and per GPU; memory comes from the
  v2 memory call (``used`` without the driver-reserved part, as nvidia-smi
  shows it).
* A reading the GPU does not support is left out, never reported as 0; a GPU
  that stops answering reports ``nvml_gpu_up 0`` and the others keep going.
* Base units and Prometheus naming (``_bytes``, ``_watts``, ``_hertz``,
  ``_joules_total``).

    LD_LIBRARY_PATH=target/release/fake-nvml \\
        python3 benches/compare/pynvml_exporter.py --port 9401
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pynvml
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("pynvml_exporter")
T = TypeVar("T")

GPU_LABELS = ["gpu", "uuid", "name"]


@dataclass(frozen=True)
class Gpu:
    """A device handle and its identity, looked up once at start."""

    index: int
    handle: Any
    uuid: str
    name: str

    @property
    def labels(self) -> list[str]:
        return [str(self.index), self.uuid, self.name]


class GpuLost(Exception):
    """The GPU stopped answering (fell off the bus, driver gone)."""


def read(gpu: Gpu, call: Callable[..., T], *args: Any) -> T | None:
    """One NVML reading, ``call(gpu.handle, *args)``: ``None`` when the GPU cannot give it."""
    try:
        return call(gpu.handle, *args)
    except pynvml.NVMLError_GpuIsLost as exc:
        raise GpuLost from exc
    except pynvml.NVMLError_NotSupported:
        return None
    except pynvml.NVMLError as exc:
        log.debug("GPU %d: %s", gpu.index, exc)
        return None


class NvmlCollector(Collector):
    """Queries every GPU on each scrape."""

    def __init__(self, gpus: list[Gpu]) -> None:
        self.gpus = gpus

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        up = GaugeMetricFamily(
            "nvml_gpu_up", "1 when the GPU answered this scrape.", labels=GPU_LABELS
        )
        util = GaugeMetricFamily(
            "nvml_gpu_utilization_percent",
            "Percent of time a kernel ran on the GPU over the last sample period.",
            labels=GPU_LABELS,
        )
        mem_util = GaugeMetricFamily(
            "nvml_gpu_memory_utilization_percent",
            "Percent of time device memory was read or written.",
            labels=GPU_LABELS,
        )
        mem_used = GaugeMetricFamily(
            "nvml_gpu_memory_used_bytes",
            "Device memory in use (driver-reserved memory excluded).",
            labels=GPU_LABELS,
        )
        mem_total = GaugeMetricFamily(
            "nvml_gpu_memory_total_bytes", "Device memory in total.", labels=GPU_LABELS
        )
        power = GaugeMetricFamily(
            "nvml_gpu_power_watts", "Power draw of the board.", labels=GPU_LABELS
        )
        temp = GaugeMetricFamily(
            "nvml_gpu_temperature_celsius", "GPU core temperature.", labels=GPU_LABELS
        )
        clock = GaugeMetricFamily(
            "nvml_gpu_clock_hertz",
            "Current clock frequency.",
            labels=[*GPU_LABELS, "clock"],
        )
        energy = CounterMetricFamily(
            "nvml_gpu_energy_joules",
            "Energy used since the driver was loaded.",
            labels=GPU_LABELS,
        )
        proc_mem = GaugeMetricFamily(
            "nvml_process_gpu_memory_bytes",
            "Device memory used by one process.",
            labels=[*GPU_LABELS, "pid"],
        )

        for gpu in self.gpus:
            labels = gpu.labels
            try:
                rates = read(gpu, pynvml.nvmlDeviceGetUtilizationRates)
                if rates is not None:
                    util.add_metric(labels, rates.gpu)
                    mem_util.add_metric(labels, rates.memory)
                memory = read(gpu, pynvml.nvmlDeviceGetMemoryInfo, pynvml.nvmlMemory_v2)
                if memory is not None:
                    mem_used.add_metric(labels, memory.used)
                    mem_total.add_metric(labels, memory.total)
                milliwatts = read(gpu, pynvml.nvmlDeviceGetPowerUsage)
                if milliwatts is not None:
                    power.add_metric(labels, milliwatts / 1000)
                celsius = read(
                    gpu, pynvml.nvmlDeviceGetTemperature, pynvml.NVML_TEMPERATURE_GPU
                )
                if celsius is not None:
                    temp.add_metric(labels, celsius)
                for clock_name, clock_type in (
                    ("sm", pynvml.NVML_CLOCK_SM),
                    ("memory", pynvml.NVML_CLOCK_MEM),
                ):
                    mhz = read(gpu, pynvml.nvmlDeviceGetClockInfo, clock_type)
                    if mhz is not None:
                        clock.add_metric([*labels, clock_name], mhz * 1e6)
                millijoules = read(gpu, pynvml.nvmlDeviceGetTotalEnergyConsumption)
                if millijoules is not None:
                    energy.add_metric(labels, millijoules / 1000)
                per_pid: dict[int, int] = {}
                for lister in (
                    pynvml.nvmlDeviceGetComputeRunningProcesses,
                    pynvml.nvmlDeviceGetGraphicsRunningProcesses,
                ):
                    procs = read(gpu, lister) or []
                    for proc in procs:
                        # usedGpuMemory is None where NVML cannot say (NVML_VALUE_NOT_AVAILABLE).
                        if proc.usedGpuMemory is not None:
                            per_pid[proc.pid] = max(
                                per_pid.get(proc.pid, 0), proc.usedGpuMemory
                            )
                for pid, used in per_pid.items():
                    proc_mem.add_metric([*labels, str(pid)], used)
                up.add_metric(labels, 1)
            except GpuLost:
                log.warning("GPU %d (%s) is lost", gpu.index, gpu.uuid)
                up.add_metric(labels, 0)

        yield from (
            up,
            util,
            mem_util,
            mem_used,
            mem_total,
            power,
            temp,
            clock,
            energy,
            proc_mem,
        )


def discover() -> list[Gpu]:
    gpus = []
    for index in range(pynvml.nvmlDeviceGetCount()):
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        gpus.append(
            Gpu(
                index=index,
                handle=handle,
                uuid=pynvml.nvmlDeviceGetUUID(handle),
                name=pynvml.nvmlDeviceGetName(handle),
            )
        )
    return gpus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=9401, help="port to listen on")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(levelname)s %(name)s: %(message)s"
    )

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        print(f"pynvml_exporter: cannot initialise NVML: {exc}", file=sys.stderr)
        return 1
    try:
        gpus = discover()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(NvmlCollector(gpus))
        start_http_server(args.port, addr=args.address, registry=registry)
        log.info(
            "%d GPUs, serving http://%s:%d/metrics", len(gpus), args.address, args.port
        )
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        stop.wait()
    finally:
        pynvml.nvmlShutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
