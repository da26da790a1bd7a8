#!/usr/bin/env python3
"""Algalon's exporter side by side with the exporters users would pick instead.

    python3 benches/compare/compare.py                  # full run, ~5 min of measurement
    python3 benches/compare/compare.py --quick          # ~40 s smoke run (CI)
    python3 benches/compare/compare.py --write BENCHMARKS.md --json /tmp/compare.json

Builds the release exporter and fake NVML, then starts on 127.0.0.1, against
the same fake-NVML scenario:

* ``algalon-exporter --processes`` (samples every GPU on a background thread),
* ``nvitop-exporter`` from PyPI (a background loop on nvitop / nvidia-ml-py),
* ``pynvml_exporter.py`` beside this file, the exporter people write by hand
  (nvidia-ml-py + prometheus_client, NVML queried on every scrape),

and measures, interleaved so machine load hits all three alike: wrk
throughput and latency at 1/16/64 connections, exporter CPU per 1000 scrapes,
idle CPU, peak RSS after 64 and 256 connections, scrape latency against GPU
count x NVML call latency, fidelity against the scenario at a frozen instant,
and a model of nvidia_gpu_exporter (one process spawned per scrape).
README.md beside this file says what every number means.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.metadata
import json
import math
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
LIB_DIR = REPO / "target" / "release" / "fake-nvml"
LIB = LIB_DIR / "libnvidia-ml.so.1"
ALGALON_BIN = REPO / "target" / "release" / "algalon-exporter"
MAIN_SCENARIO = REPO / "testing" / "scenarios" / "h100x8.json"
SCALING_SCENARIO = REPO / "testing" / "scenarios" / "scaling.json"
WRK_LUA = HERE / "wrk_report.lua"
BEGIN_MARK = "<!-- compare:begin -->"
END_MARK = "<!-- compare:end -->"
# An instant of h100x8.json with a second process (tritonserver) on GPU 2.
FROZEN_T = 12.5
CONNECTIONS = (1, 16, 64)
# Many concurrent connections, for the memory they cost: one wrk run per
# exporter after the load runs, VmHWM read before and after it.
WIDE_CONNECTIONS = 256
# Both interval-based exporters sample every second: the resolution the
# collect-on-scrape baseline gives at one scrape per second.
INTERVAL_S = 1
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A measurement could not be taken; the message says what and what to do."""


# --------------------------------------------------------------------------
# The three exporters


@dataclass(frozen=True)
class Metric:
    """Where one reading lives in an exporter's output, and its scale."""

    name: str
    to_unit: float  # multiply the exported value by this to get the scenario's unit


@dataclass(frozen=True)
class Peer:
    key: str
    label: str
    design: str
    gpu_label: str
    utilization: Metric  # percent
    memory_used: Metric  # MiB
    power: Metric  # W
    argv: Callable[[int], list[str]]

    def fidelity_metrics(self) -> dict[str, Metric]:
        return {
            "utilization": self.utilization,
            "memory used": self.memory_used,
            "power": self.power,
        }


PEERS = (
    Peer(
        key="algalon",
        label="algalon-exporter",
        design=f"background sampling every {INTERVAL_S} s, pre-encoded body",
        gpu_label="gpu",
        utilization=Metric("DCGM_FI_DEV_GPU_UTIL", 1.0),
        memory_used=Metric("DCGM_FI_DEV_FB_USED", 1.0),
        power=Metric("DCGM_FI_DEV_POWER_USAGE", 1.0),
        argv=lambda port: [
            str(ALGALON_BIN),
            "--nvml-lib",
            str(LIB),
            "--address",
            f"127.0.0.1:{port}",
            "--collect-interval",
            str(INTERVAL_S * 1000),
            "--processes",
            "--log-level",
            "warn",
        ],
    ),
    Peer(
        key="nvitop",
        label="nvitop-exporter",
        design=f"background loop every {INTERVAL_S} s, prometheus_client registry",
        gpu_label="index",
        utilization=Metric("gpu_utilization_Percentage", 1.0),
        memory_used=Metric("gpu_memory_used_MiB", 1.0),
        power=Metric("gpu_power_usage_W", 1.0),
        argv=lambda port: [
            sys.executable,
            "-m",
            "nvitop_exporter",
            "--bind-address",
            "127.0.0.1",
            "--port",
            str(port),
            "--interval",
            str(INTERVAL_S),
            "--hostname",
            socket.gethostname(),
        ],
    ),
    Peer(
        key="pynvml",
        label="pynvml + prometheus_client",
        design="collect on scrape (custom Collector), start_http_server",
        gpu_label="gpu",
        utilization=Metric("nvml_gpu_utilization_percent", 1.0),
        memory_used=Metric("nvml_gpu_memory_used_bytes", 1 / 2**20),
        power=Metric("nvml_gpu_power_watts", 1.0),
        argv=lambda port: [
            sys.executable,
            str(HERE / "pynvml_exporter.py"),
            "--address",
            "127.0.0.1",
            "--port",
            str(port),
        ],
    ),
)
ALGALON, *OTHERS = PEERS


# --------------------------------------------------------------------------
# Processes: every child in its own process group, all stopped on exit


# Variables the exporter reads (ALGALON_* and dcgm-exporter's DCGM_* and four
# unprefixed ones) or the fake NVML reads (ALGALON_*): left out of children's
# environments so the caller's cannot change a run.
EXPORTER_ENV_PREFIXES = ("ALGALON_", "DCGM_")
EXPORTER_ENV_NAMES = frozenset(
    {
        "NVIDIA_RESOURCE_NAMES",
        "KUBERNETES_VIRTUAL_GPUS",
        "KUBERNETES_ENABLE_DRA",
        "DISABLE_STARTUP_VALIDATE",
    }
)


def exporter_free_env() -> dict[str, str]:
    """This process's environment without the variables the exporter reads."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(EXPORTER_ENV_PREFIXES) and k not in EXPORTER_ENV_NAMES
    }


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (every thread), from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise BenchError(f"/proc/{pid}/status has no {key}")


@dataclass
class Exporter:
    peer: Peer
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        self.check_alive()
        return proc_cpu_seconds(self.pid)

    def peak_rss_mib(self) -> float:
        self.check_alive()
        return proc_status_kib(self.pid, "VmHWM") / 1024

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join("    " + line for line in text[-lines:]) or "    (empty log)"

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(
                f"{self.peer.label} exited with status {self.proc.returncode}; "
                f"its last output:\n{self.log_tail()}"
            )


class Fleet:
    """Starts exporters in their own process groups and always stops them."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.running: list[Exporter] = []
        self.started = 0

    def start(self, peer: Peer, env: dict[str, str]) -> Exporter:
        port = free_port()
        self.started += 1
        log_path = self.workdir / f"{peer.key}-{self.started}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                peer.argv(port),
                env=env,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        exporter = Exporter(peer, port, proc, log_path)
        self.running.append(exporter)
        return exporter

    def stop_all(self) -> None:
        for exporter in self.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(exporter.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for exporter in self.running:
            try:
                exporter.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(exporter.pid, signal.SIGKILL)
                exporter.proc.wait()
            # Any thread or child it left behind in its group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(exporter.pid, signal.SIGKILL)
        self.running.clear()

    @contextlib.contextmanager
    def group(
        self,
        scenario: Path,
        *,
        latency_ms: float = 0.0,
        frozen_t: float | None = None,
        peers: tuple[Peer, ...] = PEERS,
        extra_env: dict[str, str] | None = None,
    ) -> Iterator[list[Exporter]]:
        """The exporters (all three by default) on one scenario, ready to scrape; stopped after."""
        env = exporter_free_env()
        env.update(extra_env or {})
        env["ALGALON_FAKE_NVML_SCENARIO"] = str(scenario)
        env["ALGALON_FAKE_NVML_LATENCY_MS"] = repr(latency_ms)
        if frozen_t is not None:
            env["ALGALON_FAKE_NVML_FROZEN_TIME"] = repr(frozen_t)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (str(LIB_DIR), env.get("LD_LIBRARY_PATH", "")) if p
        )
        try:
            exporters = [self.start(peer, env) for peer in peers]
            wait_ready(exporters, gpu_count(scenario))
            yield exporters
        finally:
            self.stop_all()


def gpu_count(scenario: Path) -> int:
    spec = json.loads(scenario.read_text())
    return sum(int(gpu.get("count", 1)) for gpu in spec["gpus"])


def wait_ready(exporters: list[Exporter], gpus: int, timeout_s: float = 180) -> None:
    """Until each serves /metrics with a utilization series for every GPU."""
    pending = list(exporters)
    deadline = time.monotonic() + timeout_s
    while pending:
        for exporter in list(pending):
            exporter.check_alive()
            try:
                _, body = scrape(exporter.port, timeout=30)
            except (OSError, http.client.HTTPException, BenchError):
                continue
            needle = f"\n{exporter.peer.utilization.name}{{".encode()
            if body.count(needle) >= gpus:
                pending.remove(exporter)
        if pending and time.monotonic() > deadline:
            names = ", ".join(e.peer.label for e in pending)
            logs = "\n".join(f"  {e.peer.label}:\n{e.log_tail()}" for e in pending)
            raise BenchError(
                f"{names} did not serve all {gpus} GPUs within {timeout_s:.0f} s:\n{logs}"
            )
        if pending:
            time.sleep(0.1)


def scrape(port: int, timeout: float = 60) -> tuple[float, bytes]:
    """One GET /metrics on a new connection; (seconds, body)."""
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    elapsed = time.perf_counter() - start
    if resp.status != 200:
        raise BenchError(f"GET http://127.0.0.1:{port}/metrics answered {resp.status}")
    return elapsed, body


# --------------------------------------------------------------------------
# Scenarios


def value_at(value: Any, t: float) -> float:
    """A scenario VALUE (constant, sine or steps) at time t, as the fake computes it."""
    if isinstance(value, int | float):
        return float(value)
    if "sine" in value:
        s = value["sine"]
        phase = s.get("phase_s", 0.0)
        return s["base"] + s["amplitude"] * math.sin(
            2 * math.pi * (t + phase) / s["period_s"]
        )
    steps = value["steps"]
    current = steps[0][1]
    for at, v in steps:
        if at <= t:
            current = v
        else:
            break
    return float(current)


def expected_readings(scenario: Path, t: float) -> list[dict[str, float]]:
    """Exact utilization (%), memory used (MiB) and power (W) of every GPU at t."""
    out = []
    for gpu in json.loads(scenario.read_text())["gpus"]:
        reading = {
            "utilization": value_at(gpu["utilization"]["gpu"], t),
            "memory used": value_at(gpu["memory"]["used_mib"], t),
            "power": value_at(gpu["power_w"], t),
        }
        out.extend([reading] * int(gpu.get("count", 1)))
    return out


def scaling_scenarios(workdir: Path, counts: tuple[int, ...]) -> dict[int, Path]:
    base = json.loads(SCALING_SCENARIO.read_text())
    paths = {}
    for n in counts:
        spec = json.loads(json.dumps(base))
        spec["gpus"][0]["count"] = n
        spec["description"] = f"scaling.json with {n} GPUs (benches/compare)"
        path = workdir / f"scaling-{n}.json"
        path.write_text(json.dumps(spec))
        paths[n] = path
    return paths


# --------------------------------------------------------------------------
# Statistics and formatting


def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def fmt_s(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "–"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return (
            f"{seconds * 1e3:.2f} ms" if seconds < 0.01 else f"{seconds * 1e3:.1f} ms"
        )
    return f"{seconds:.2f} s"


def fmt_num(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_value(x: float | None) -> str:
    return "missing" if x is None else f"{x:.3f}"


def fmt_ratio(x: float | None) -> str:
    if x is None or math.isnan(x) or math.isinf(x):
        return "–"
    return f"{x:,.0f}×" if x >= 100 else f"{x:.1f}×"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def say(msg: str) -> None:
    print(f"compare: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Measurements


def measure_fidelity(fleet: Fleet) -> dict[str, Any]:
    """Each exporter's utilization, memory used and power vs the scenario at a frozen t."""
    expected = expected_readings(MAIN_SCENARIO, FROZEN_T)
    # One NVML output unit: integer percent, integer MiB, integer mW.
    tolerance = {"utilization": 1.0, "memory used": 1.0, "power": 0.001}
    result: dict[str, Any] = {"t": FROZEN_T, "expected": expected, "peers": {}}
    with fleet.group(MAIN_SCENARIO, frozen_t=FROZEN_T) as exporters:
        for exporter in exporters:
            peer = exporter.peer
            _, body = scrape(exporter.port)
            series: dict[str, dict[int, float]] = {m: {} for m in tolerance}
            by_name = {
                metric.name: key for key, metric in peer.fidelity_metrics().items()
            }
            for family in text_string_to_metric_families(body.decode()):
                for sample in family.samples:
                    key = by_name.get(sample.name)
                    if key is not None:
                        gpu = int(sample.labels[peer.gpu_label])
                        scale = peer.fidelity_metrics()[key].to_unit
                        series[key][gpu] = sample.value * scale
            verdicts = {}
            for key, metric in peer.fidelity_metrics().items():
                got = series[key]
                bad = [
                    f"GPU {i}: {fmt_value(got.get(i))} (expected {exp[key]:.3f})"
                    for i, exp in enumerate(expected)
                    if i not in got or abs(got[i] - exp[key]) > tolerance[key] + 1e-9
                ]
                verdicts[key] = {
                    "metric": metric.name,
                    "agree": not bad,
                    "mismatches": bad,
                    "values": [got.get(i) for i in range(len(expected))],
                }
            result["peers"][peer.key] = verdicts
    return result


def run_wrk(port: int, conns: int, duration_s: int) -> dict[str, Any]:
    threads = min(conns, os.cpu_count() or 1)
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{conns}",
        f"-d{duration_s}s",
        "--timeout",
        "30s",
        "-s",
        str(WRK_LUA),
        f"http://127.0.0.1:{port}/metrics",
    ]
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=duration_s + 90, check=False
    )
    for line in out.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            return dict(json.loads(line.removeprefix("WRK_JSON ")))
    raise BenchError(
        f"wrk gave no result (status {out.returncode}): {shlex.join(cmd)}\n"
        f"{out.stdout[-800:]}{out.stderr[-800:]}"
    )


def undo_wrk_correction(run: dict[str, Any], conns: int) -> dict[int, int] | None:
    """The latency histogram (µs -> requests) before wrk's coordinated-omission fix.

    wrk 4 (`stats_correct`) takes e = run time / (requests / connections) and,
    for every recorded latency n >= 2e, adds a synthetic sample at n - e,
    n - 2e, ... down to values above e. Walking each residue class mod e from
    the top down recovers the recorded counts exactly. None when wrk gave no
    histogram or the counts do not add up to the requests served.
    """
    hist = run.get("histogram")
    if not hist:
        return None
    corrected = {int(v): int(n) for v, n in hist}
    per_conn = run["requests"] // conns
    e = run["duration_us"] // per_conn if per_conn else 0
    if e <= 0:
        return corrected
    by_residue: dict[int, list[int]] = {}
    for v in corrected:
        by_residue.setdefault(v % e, []).append(v)
    original: dict[int, int] = {}
    for values in by_residue.values():
        spread = (
            0  # recorded samples above, in this residue class, that were spread down
        )
        for v in sorted(values, reverse=True):
            n = corrected[v] - spread if v > e else corrected[v]
            if n < 0:
                return None
            original[v] = n
            if v >= 2 * e:
                spread += n
    recorded = sum(original.values())
    if abs(recorded - run["requests"]) > run["errors"]["timeout"]:
        return None
    return {v: n for v, n in original.items() if n}


def hist_percentile(hist: dict[int, int], p: float) -> float:
    """Nearest-rank percentile of a µs histogram, in seconds."""
    total = sum(hist.values())
    rank = max(1, math.ceil(p / 100 * total))
    seen = 0
    for value in sorted(hist):
        seen += hist[value]
        if seen >= rank:
            return value / 1e6
    return max(hist) / 1e6


def measure_load(
    exporters: list[Exporter], rounds: int, duration_s: int
) -> dict[str, Any]:
    """wrk at 1/16/64 connections, rounds interleaved A B C A B C; exporter CPU per run."""
    runs: list[dict[str, Any]] = []
    hists: dict[tuple[str, int], list[dict[int, int] | None]] = {}
    total = rounds * len(CONNECTIONS) * len(exporters)
    for rnd in range(rounds):
        for conns in CONNECTIONS:
            for exporter in exporters:
                say(
                    f"wrk {len(runs) + 1}/{total}: {exporter.peer.label}, "
                    f"{conns} connections, {duration_s:g} s"
                )
                before = exporter.cpu_seconds()
                result = run_wrk(exporter.port, conns, duration_s)
                result["cpu_s"] = exporter.cpu_seconds() - before
                result.update(peer=exporter.peer.key, conns=conns, round=rnd)
                hist = undo_wrk_correction(result, conns)
                result.pop("histogram", None)
                if hist:
                    result["per_request_p50_us"] = hist_percentile(hist, 50) * 1e6
                    result["per_request_p99_us"] = hist_percentile(hist, 99) * 1e6
                hists.setdefault((exporter.peer.key, conns), []).append(hist)
                runs.append(result)
    summary: dict[str, dict[int, dict[str, Any]]] = {}
    for exporter in exporters:
        key = exporter.peer.key
        summary[key] = {}
        for conns in CONNECTIONS:
            mine = [r for r in runs if r["peer"] == key and r["conns"] == conns]
            requests = sum(r["requests"] for r in mine)
            seconds = sum(r["duration_us"] for r in mine) / 1e6
            errors = sum(sum(r["errors"].values()) for r in mine)
            if requests == 0:
                raise BenchError(
                    f"{exporter.peer.label} answered no request at {conns} connections "
                    f"({errors} errors)"
                )
            merged: dict[int, int] | None = {}
            for hist in hists[key, conns]:
                if hist is None or merged is None:
                    merged = None
                    continue
                for value, n in hist.items():
                    merged[value] = merged.get(value, 0) + n
            summary[key][conns] = {
                "scrapes_per_s": requests / seconds,
                "p50_s": hist_percentile(merged, 50) if merged else None,
                "p99_s": hist_percentile(merged, 99) if merged else None,
                "wrk_p50_s": statistics.median(r["p50_us"] for r in mine) / 1e6,
                "wrk_p99_s": statistics.median(r["p99_us"] for r in mine) / 1e6,
                "cpu_ms_per_1000": sum(r["cpu_s"] for r in mine) / requests * 1e6,
                "requests": requests,
                "errors": errors,
            }
    return {"runs": runs, "summary": summary}


def measure_wide(exporters: list[Exporter], duration_s: int) -> dict[str, Any]:
    """One wrk run at WIDE_CONNECTIONS per exporter: throughput, errors, and
    VmHWM before it (the peak after 64 connections) and after it."""
    out: dict[str, Any] = {"peak_64_mib": {}, "peak_wide_mib": {}, "runs": {}}
    for exporter in exporters:
        out["peak_64_mib"][exporter.peer.key] = exporter.peak_rss_mib()
    for exporter in exporters:
        say(
            f"wrk: {exporter.peer.label}, {WIDE_CONNECTIONS} connections, {duration_s:g} s"
        )
        result = run_wrk(exporter.port, WIDE_CONNECTIONS, duration_s)
        out["runs"][exporter.peer.key] = {
            "scrapes_per_s": result["requests"] / (result["duration_us"] / 1e6),
            "errors": sum(result["errors"].values()),
        }
        out["peak_wide_mib"][exporter.peer.key] = exporter.peak_rss_mib()
    return out


def measure_idle(exporters: list[Exporter], seconds: float) -> dict[str, float]:
    """CPU % of one core with one scrape per second each, over `seconds`."""
    say(f"idle: one scrape per second each for {seconds:g} s")
    before = {e.peer.key: e.cpu_seconds() for e in exporters}
    start = time.monotonic()
    tick = start
    while tick - start < seconds:
        for exporter in exporters:
            scrape(exporter.port)
        tick += 1.0
        time.sleep(max(0.0, tick - time.monotonic()))
    elapsed = time.monotonic() - start
    return {
        e.peer.key: (e.cpu_seconds() - before[e.peer.key]) / elapsed * 100
        for e in exporters
    }


def sample_duration(body: bytes) -> float | None:
    for line in body.decode(errors="replace").splitlines():
        if line.startswith("algalon_sample_duration_seconds"):
            return float(line.rsplit(" ", 1)[1])
    return None


def settled_sample_s(
    exporter: Exporter, samples: int = 3, timeout_s: float = 120
) -> float | None:
    """The median algalon_sample_duration_seconds of `samples` distinct samples
    after the first (which identifies every GPU)."""
    seen: dict[float, float] = {}
    deadline = time.monotonic() + timeout_s
    while len(seen) < samples + 1 and time.monotonic() < deadline:
        _, body = scrape(exporter.port)
        seq = value_of(body, "algalon_samples_total")
        duration = sample_duration(body)
        if seq is not None and duration is not None:
            seen.setdefault(seq, duration)
        time.sleep(0.2)
    durations = [d for seq, d in sorted(seen.items()) if seq > min(seen, default=0)]
    return statistics.median(durations) if durations else None


def value_of(body: bytes, name: str) -> float | None:
    for line in body.decode(errors="replace").splitlines():
        if line.startswith((name + " ", name + "{")):
            return float(line.rsplit(" ", 1)[1])
    return None


def measure_cell(
    exporters: list[Exporter], cell_s: float, cell_scrapes: int, min_scrapes: int
) -> tuple[dict[str, list[float]], dict[str, int], float | None]:
    """Scrapes the exporters in turns of up to 0.25 s each until the cell is done.

    A cell ends once every exporter has `cell_scrapes` scrapes or `cell_s` has
    passed, and never before each has `min_scrapes`; turns keep a slow
    exporter from starving the others of samples.
    """
    samples: dict[str, list[float]] = {e.peer.key: [] for e in exporters}
    sizes: dict[str, int] = {}
    algalon_sample_s = None
    for exporter in exporters:  # warm-up, not counted
        scrape(exporter.port)
    start = time.monotonic()

    def wanted(key: str) -> bool:
        n = len(samples[key])
        return n < min_scrapes or (
            time.monotonic() - start < cell_s and n < cell_scrapes
        )

    while any(wanted(e.peer.key) for e in exporters):
        for exporter in exporters:
            key = exporter.peer.key
            turn_end = time.monotonic() + 0.25
            while wanted(key):
                seconds, body = scrape(exporter.port)
                samples[key].append(seconds)
                sizes[key] = len(body)
                if exporter.peer is ALGALON:
                    algalon_sample_s = sample_duration(body)
                if time.monotonic() > turn_end:
                    break
    return samples, sizes, algalon_sample_s


def measure_scaling(
    fleet: Fleet,
    scenarios: dict[int, Path],
    latencies_ms: tuple[float, ...],
    cell_s: float,
    cell_scrapes: int,
    min_scrapes: int,
    sample_reads: int = 3,
) -> list[dict[str, Any]]:
    """Sequential scrapes of all three per GPU count x NVML call latency, and
    Algalon's own sample time with GPUs read in parallel (the default) and one
    at a time (ALGALON_SERIAL_SAMPLING=1), each alone on the machine."""
    cells = []
    for gpus, scenario in scenarios.items():
        for latency in latencies_ms:
            say(f"scaling: {gpus} GPUs, {latency:g} ms per NVML call")
            with fleet.group(scenario, latency_ms=latency) as exporters:
                samples, sizes, algalon_sample_s = measure_cell(
                    exporters, cell_s, cell_scrapes, min_scrapes
                )
            sample_s = {}
            for mode, env in (
                ("parallel", {}),
                ("serial", {"ALGALON_SERIAL_SAMPLING": "1"}),
            ):
                with fleet.group(
                    scenario, latency_ms=latency, peers=(ALGALON,), extra_env=env
                ) as (alone,):
                    sample_s[mode] = settled_sample_s(alone, sample_reads)
            cells.append(
                {
                    "gpus": gpus,
                    "latency_ms": latency,
                    "algalon_sample_s": algalon_sample_s,
                    "algalon_parallel_sample_s": sample_s["parallel"],
                    "algalon_serial_sample_s": sample_s["serial"],
                    "peers": {
                        key: {
                            "n": len(s),
                            "p50_s": percentile(s, 50),
                            "p99_s": percentile(s, 99),
                            "body_bytes": sizes[key],
                        }
                        for key, s in samples.items()
                    },
                }
            )
    return cells


def rusage_cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def measure_spawn_model(spawns: int, gpustat_runs: int) -> dict[str, Any]:
    """What one nvidia-smi per scrape costs: a bare spawn, and gpustat --json on the fake."""
    say(f"model: {spawns} spawns of /bin/true, {gpustat_runs} × gpustat --json")
    walls = []
    cpu_before = rusage_cpu(resource.RUSAGE_CHILDREN) + rusage_cpu(resource.RUSAGE_SELF)
    for _ in range(spawns):
        start = time.perf_counter()
        pid = os.posix_spawn("/bin/true", ["/bin/true"], {})
        os.waitpid(pid, 0)
        walls.append(time.perf_counter() - start)
    cpu_after = rusage_cpu(resource.RUSAGE_CHILDREN) + rusage_cpu(resource.RUSAGE_SELF)
    spawn = {
        "n": spawns,
        "wall_p50_s": percentile(walls, 50),
        "wall_p99_s": percentile(walls, 99),
        "cpu_s": (cpu_after - cpu_before) / spawns,
    }

    env = exporter_free_env()
    env["ALGALON_FAKE_NVML_SCENARIO"] = str(MAIN_SCENARIO)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (str(LIB_DIR), env.get("LD_LIBRARY_PATH", "")) if p
    )
    cmd = [sys.executable, "-m", "gpustat", "--json"]
    walls = []
    cpu_before = rusage_cpu(resource.RUSAGE_CHILDREN)
    for _ in range(gpustat_runs):
        start = time.perf_counter()
        out = subprocess.run(
            cmd, env=env, capture_output=True, timeout=120, check=False
        )
        walls.append(time.perf_counter() - start)
        if out.returncode != 0:
            raise BenchError(
                f"{shlex.join(cmd)} failed with status {out.returncode}: "
                f"{out.stderr.decode(errors='replace')[-600:]} (pip install gpustat)"
            )
    cpu_after = rusage_cpu(resource.RUSAGE_CHILDREN)
    gpus = len(json.loads(out.stdout)["gpus"])
    if gpus != gpu_count(MAIN_SCENARIO):
        raise BenchError(f"gpustat --json saw {gpus} GPUs instead of 8")
    gpustat = {
        "n": gpustat_runs,
        "wall_p50_s": percentile(walls, 50),
        "wall_p99_s": percentile(walls, 99),
        "cpu_s": (cpu_after - cpu_before) / gpustat_runs,
    }
    return {"spawn_true": spawn, "gpustat_json": gpustat}


# --------------------------------------------------------------------------
# Context: machine, versions, build


def run_text(cmd: list[str]) -> str:
    try:
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=30, check=False
        )
    except OSError:
        return "?"
    return (
        (out.stdout or out.stderr).strip().splitlines()[0]
        if (out.stdout or out.stderr)
        else "?"
    )


def machine_info() -> dict[str, Any]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, BenchError):
        mem_kib = proc_status_kib_meminfo()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
    }


def proc_status_kib_meminfo() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    raise BenchError("no MemTotal in /proc/meminfo")


def versions() -> dict[str, str]:
    def dist(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    commit = run_text(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "algalon": commit + ("-dirty" if dirty else ""),
        "algalon-exporter": run_text([str(ALGALON_BIN), "--version"]),
        "nvitop-exporter": dist("nvitop-exporter"),
        "nvitop": dist("nvitop"),
        "nvidia-ml-py": dist("nvidia-ml-py"),
        "prometheus_client": dist("prometheus-client"),
        "gpustat": dist("gpustat"),
        "python": platform.python_version(),
        "wrk": run_text(["wrk", "-v"]).split(" Copyright")[0],
    }


def check_tools() -> None:
    missing = []
    if shutil.which("wrk") is None:
        missing.append("wrk (apt-get install wrk)")
    for module, package in (
        ("nvitop_exporter", "nvitop-exporter"),
        ("pynvml", "nvidia-ml-py"),
        ("prometheus_client", "prometheus-client"),
        ("gpustat", "gpustat"),
    ):
        try:
            importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            missing.append(f"{module} (pip install {package})")
    if missing:
        raise BenchError("missing: " + ", ".join(missing) + " — or run `make deps`")


def build() -> None:
    cmd = [
        "cargo",
        "build",
        "--release",
        "-q",
        "-p",
        "algalon-exporter",
        "-p",
        "fake-nvml",
    ]
    say(shlex.join(cmd))
    if subprocess.run(cmd, cwd=REPO, check=False).returncode != 0:
        raise BenchError(
            f"`{shlex.join(cmd)}` failed (output above): fix the build, or pass --no-build "
            "to measure the release build already in target/release"
        )
    LIB_DIR.mkdir(parents=True, exist_ok=True)
    tmp = LIB.with_suffix(".tmp")
    shutil.copyfile(REPO / "target" / "release" / "libnvidia_ml.so", tmp)
    tmp.replace(LIB)


# --------------------------------------------------------------------------
# Report


@dataclass
class Settings:
    quick: bool
    duration_s: int
    rounds: int
    idle_s: float
    gpu_counts: tuple[int, ...]
    latencies_ms: tuple[float, ...]
    cell_s: float
    cell_scrapes: int
    min_scrapes: int
    spawns: int
    gpustat_runs: int
    command: str = ""


def growth(
    cells: list[dict[str, Any]], key: str, stat: str
) -> tuple[float, float, float]:
    """(smallest, largest, largest / smallest) of one exporter's stat over the cells."""
    values = [c["peers"][key][stat] for c in cells]
    return min(values), max(values), max(values) / min(values)


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its verdict and the figures that explain it."""
    load = results["load"]["summary"]
    rss_start = results["rss_start_mib"]
    cells = results["scaling"]
    cores = results["machine"]["cores"]
    targets = []
    for peer in OTHERS:
        mine, theirs = load["algalon"][16], load[peer.key][16]
        ratio = mine["scrapes_per_s"] / theirs["scrapes_per_s"]
        cpu_ratio = theirs["cpu_ms_per_1000"] / mine["cpu_ms_per_1000"]
        targets.append(
            {
                "target": f"throughput at 16 connections ≥ 50× {peer.label}",
                "value": fmt_ratio(ratio),
                "met": ratio >= 50,
                "context": (
                    f"{fmt_num(mine['scrapes_per_s'])} vs "
                    f"{fmt_num(theirs['scrapes_per_s'])} scrapes/s; CPU per scrape "
                    f"{fmt_ratio(cpu_ratio)} lower, but wrk shares the {cores} cores "
                    f"(load average {results['load_end']} at the end)"
                ),
            }
        )
    lo, hi, _ = growth(cells, "algalon", "p99_s")
    p50_lo, p50_hi, _ = growth(cells, "algalon", "p50_s")
    worst = max(cells, key=lambda c: c["peers"]["algalon"]["p99_s"])
    # Flat within noise: the worst cell's p99 stays within 2× the best + 1 ms
    # (scheduling noise on a shared machine is milliseconds at the tail).
    flat = hi <= 2 * lo + 1e-3
    base_lo, base_hi, base_growth = growth(cells, "pynvml", "p50_s")
    targets.append(
        {
            "target": (
                "Algalon scrape p99 flat (worst cell ≤ 2 × best + 1 ms) over GPUs × "
                "NVML latency, while the collect-on-scrape peer grows (p50 ≥ 10×)"
            ),
            "value": (
                f"Algalon p99 {fmt_s(lo)} … {fmt_s(hi)}; pynvml p50 {fmt_s(base_lo)} … "
                f"{fmt_s(base_hi)} ({fmt_ratio(base_growth)})"
            ),
            "met": flat and base_growth >= 10,
            "context": (
                f"Algalon p50 {fmt_s(p50_lo)} … {fmt_s(p50_hi)}; worst p99 at "
                f"{worst['gpus']} GPUs × {worst['latency_ms']:g} ms/call "
                f"(n = {worst['peers']['algalon']['n']}), where its background sample "
                f"took {fmt_s(worst['algalon_sample_s'])}; the body grows with GPU count"
            ),
        }
    )
    wide = results["wide"]
    for conns, peaks in (
        (64, wide["peak_64_mib"]),
        (WIDE_CONNECTIONS, wide["peak_wide_mib"]),
    ):
        for peer in OTHERS:
            ratio = peaks[peer.key] / peaks["algalon"]
            targets.append(
                {
                    "target": f"peak RSS after {conns} connections ≤ 1/3 of {peer.label}",
                    "value": (
                        f"{peaks['algalon']:.1f} vs {peaks[peer.key]:.1f} MiB "
                        f"({fmt_ratio(ratio)})"
                    ),
                    "met": ratio >= 3,
                    "context": (
                        f"after start {rss_start['algalon']:.1f} vs "
                        f"{rss_start[peer.key]:.1f} MiB "
                        f"({fmt_ratio(rss_start[peer.key] / rss_start['algalon'])}); "
                        f"VmHWM once wrk has run at {conns} concurrent connections"
                    ),
                }
            )
    return targets


def render(results: dict[str, Any], settings: Settings) -> str:
    load = results["load"]["summary"]
    idle = results["idle_cpu_percent"]
    rss = results["rss_mib"]
    cells = results["scaling"]
    fid = results["fidelity"]
    model = results["model"]
    mach = results["machine"]
    ver = results["versions"]
    out: list[str] = []
    w = out.append

    w("## Side by side: Algalon vs the exporters users pick instead\n")
    w("```sh")
    w(settings.command)
    w("```\n")
    if settings.quick:
        w(
            "**Quick smoke run: durations too short for the figures to mean anything.**\n"
        )
    w(
        f"Machine: {mach['cpu']}, {mach['cores']} cores, {mach['memory_gib']} GiB, "
        f"Linux {mach['kernel']}; load average {results['load_start']} at start, "
        f"{results['load_end']} at end; measurement took {results['measure_s']:.0f} s. "
        f"Versions: Algalon {ver['algalon']} (release build), nvitop-exporter "
        f"{ver['nvitop-exporter']} (nvitop {ver['nvitop']}), nvidia-ml-py "
        f"{ver['nvidia-ml-py']}, prometheus_client {ver['prometheus_client']}, gpustat "
        f"{ver['gpustat']}, Python {ver['python']}, {ver['wrk']}. NVML is the release "
        "`testing/fake-nvml`; everything runs on 127.0.0.1 of the same machine, so "
        "wrk and the exporters share the cores.\n"
    )
    w(
        "Exporters: "
        + "; ".join(f"**{p.label}** — {p.design}" for p in PEERS)
        + f". Load, idle and RSS: `{MAIN_SCENARIO.relative_to(REPO)}` (8 × H100 with "
        f"processes), clock running, no added NVML latency; wrk {settings.rounds} "
        f"round(s) × {settings.duration_s:g} s per exporter and connection count, "
        "interleaved.\n"
    )

    w("### Ratios (Algalon's advantage: > 1× means Algalon is better)\n")
    rows = []

    def ratio_row(name: str, values: dict[str, Any], higher_better: bool) -> None:
        """values: exporter key -> figure (None where there is none)."""
        row = [name]
        for peer in OTHERS:
            pair = (values["algalon"], values[peer.key])
            good, bad = pair if higher_better else pair[::-1]
            # None: no per-request histogram; 0: no CPU tick in a short idle window.
            row.append(fmt_ratio(good / bad) if good is not None and bad else "–")
        rows.append(row)

    keys = [p.key for p in PEERS]
    for conns in CONNECTIONS:
        plural = "s" if conns > 1 else ""
        ratio_row(
            f"throughput, {conns} connection{plural}",
            {k: load[k][conns]["scrapes_per_s"] for k in keys},
            True,
        )
    for conns in CONNECTIONS:
        plural = "s" if conns > 1 else ""
        ratio_row(
            f"p99 latency per request, {conns} connection{plural}",
            {k: load[k][conns]["p99_s"] for k in keys},
            False,
        )
    ratio_row(
        "wrk's CO-corrected p99, 16 connections",
        {k: load[k][16]["wrk_p99_s"] for k in keys},
        False,
    )
    ratio_row(
        "CPU per 1000 scrapes (16 connections)",
        {k: load[k][16]["cpu_ms_per_1000"] for k in keys},
        False,
    )
    ratio_row("idle CPU", idle, False)
    ratio_row("peak RSS after 64 connections", results["wide"]["peak_64_mib"], False)
    ratio_row(
        f"peak RSS after {WIDE_CONNECTIONS} connections",
        results["wide"]["peak_wide_mib"],
        False,
    )
    ratio_row("peak RSS after load and idle", rss, False)
    worst = max(cells, key=lambda c: (c["gpus"], c["latency_ms"]))
    ratio_row(
        f"scrape p99 at {worst['gpus']} GPUs × {worst['latency_ms']:g} ms/call",
        {k: worst["peers"][k]["p99_s"] for k in keys},
        False,
    )
    w(table(["measure", *(f"vs {p.label}" for p in OTHERS)], rows))
    w("")
    w(
        "Latency growth (largest / smallest scrape p99 over all GPU counts × NVML latencies):"
    )
    w(
        ", ".join(
            f"{p.label} {fmt_ratio(growth(cells, p.key, 'p99_s')[2])}"
            f" ({fmt_s(growth(cells, p.key, 'p99_s')[0])} → "
            f"{fmt_s(growth(cells, p.key, 'p99_s')[1])})"
            for p in PEERS
        )
        + ".\n"
    )

    w("### Targets\n")
    w(
        table(
            ["target", "measured", "", "context"],
            [
                [
                    t["target"],
                    t["value"],
                    "met" if t["met"] else "**missed**",
                    t["context"],
                ]
                for t in results["targets"]
            ],
        )
    )
    w("")

    w("### Raw figures: load (wrk, plain text, 8 GPUs)\n")
    rows = []
    for peer in PEERS:
        for conns in CONNECTIONS:
            s = load[peer.key][conns]
            rows.append(
                [
                    peer.label,
                    str(conns),
                    fmt_num(s["scrapes_per_s"]),
                    fmt_s(s["p50_s"]),
                    fmt_s(s["p99_s"]),
                    f"{fmt_s(s['wrk_p50_s'])} / {fmt_s(s['wrk_p99_s'])}",
                    f"{s['cpu_ms_per_1000']:,.0f} ms",
                    str(s["errors"]),
                ]
            )
    w(
        table(
            [
                "exporter",
                "connections",
                "scrapes/s",
                "p50",
                "p99",
                "wrk's p50 / p99 (CO-corrected)",
                "CPU per 1000 scrapes",
                "errors",
            ],
            rows,
        )
    )
    w("")
    w(
        "p50 / p99 are per request, from wrk's latency histogram with wrk's "
        "coordinated-omission correction undone; wrk itself prints the corrected "
        "figures (next column), which add synthetic samples for every stall in "
        "proportion to the request rate — on a busy machine a 20 ms scheduling stall "
        "becomes hundreds of samples for an exporter answering in 30 µs and one for "
        "an exporter answering in 10 ms.\n"
    )
    body = results["body_bytes"]
    w(
        table(
            [
                "exporter",
                "idle CPU (% of a core)",
                "RSS after start",
                "peak RSS after 64 connections",
                f"… after {WIDE_CONNECTIONS}",
                "… after idle (VmHWM)",
                f"scrapes/s at {WIDE_CONNECTIONS} connections (errors)",
                "body (h100x8)",
            ],
            [
                [
                    p.label,
                    f"{idle[p.key]:.2f} %",
                    f"{results['rss_start_mib'][p.key]:.1f} MiB",
                    f"{results['wide']['peak_64_mib'][p.key]:.1f} MiB",
                    f"{results['wide']['peak_wide_mib'][p.key]:.1f} MiB",
                    f"{rss[p.key]:.1f} MiB",
                    (
                        f"{results['wide']['runs'][p.key]['scrapes_per_s']:,.0f} "
                        f"({results['wide']['runs'][p.key]['errors']:,})"
                    ),
                    f"{body[p.key]:,} B",
                ]
                for p in PEERS
            ],
        )
    )
    w("")
    w(
        f"Idle CPU: each exporter sampling every {INTERVAL_S} s (the baseline samples "
        f"when scraped) and scraped once per second for {settings.idle_s:g} s, all "
        "three at once; `/proc/PID/stat` utime + stime of every thread. CPU per 1000 "
        "scrapes includes each exporter's background sampling during the run. RSS after "
        "start is VmRSS once serving (3 scrapes in); the peaks are VmHWM read after the "
        f"load runs (1, 16, 64 connections), after one wrk run of {settings.duration_s} s "
        f"at {WIDE_CONNECTIONS} connections per exporter, and after the idle run.\n"
    )

    w("### Raw figures: scrape latency vs GPU count × NVML call latency\n")
    w(
        f"`scaling.json` with `count` = {', '.join(map(str, settings.gpu_counts))}, "
        "`ALGALON_FAKE_NVML_LATENCY_MS` added to every per-GPU call; one sequential "
        f"client taking turns between the exporters, per cell up to {settings.cell_s:g} s "
        f"or {settings.cell_scrapes} scrapes each (at least {settings.min_scrapes}); "
        "each scrape a new connection, timed until the whole body is read.\n"
    )
    header = ["GPUs", "ms/call"]
    for p in PEERS:
        header += [f"{p.label} p50", "p99", "n"]
    header.append("Algalon sample time")
    rows = []
    for c in cells:
        row = [str(c["gpus"]), f"{c['latency_ms']:g}"]
        for p in PEERS:
            s = c["peers"][p.key]
            row += [fmt_s(s["p50_s"]), fmt_s(s["p99_s"]), str(s["n"])]
        row.append(fmt_s(c["algalon_sample_s"]))
        rows.append(row)
    w(table(header, rows))
    w("")

    w("### Raw figures: Algalon's sample time, GPUs in parallel vs one at a time\n")
    w(
        "Algalon alone on the same scenarios: the median `algalon_sample_duration_seconds` "
        f"of {1 if settings.quick else 3} samples after the first, once with GPUs read in "
        "parallel (the default) and "
        "once one at a time (`ALGALON_SERIAL_SAMPLING=1`); ratios are to the 1-GPU cell "
        "at the same NVML latency in the same run.\n"
    )
    base = {
        c["latency_ms"]: c for c in cells if c["gpus"] == min(x["gpus"] for x in cells)
    }

    def vs_one(c: dict[str, Any], key: str) -> str:
        one = base[c["latency_ms"]].get("algalon_parallel_sample_s")
        mine = c.get(key)
        if not one or mine is None:
            return "–"
        return f"{fmt_s(mine)} ({mine / one:.1f}×)"

    w(
        table(
            ["GPUs", "ms/call", "parallel (× 1 GPU)", "one at a time (× 1 GPU)"],
            [
                [
                    str(c["gpus"]),
                    f"{c['latency_ms']:g}",
                    vs_one(c, "algalon_parallel_sample_s"),
                    vs_one(c, "algalon_serial_sample_s"),
                ]
                for c in cells
            ],
        )
    )
    w("")

    w(f"### Fidelity at a frozen instant (t = {fid['t']:g} s of h100x8.json)\n")
    rows = []
    for p in PEERS:
        for key, v in fid["peers"][p.key].items():
            rows.append(
                [
                    p.label,
                    key,
                    f"`{v['metric']}`",
                    "agree"
                    if v["agree"]
                    else "**disagree**: " + "; ".join(v["mismatches"][:3]),
                ]
            )
    w(
        table(
            ["exporter", "reading", "metric", "vs scenario (8 GPUs, ± one NVML unit)"],
            rows,
        )
    )
    w("")

    sp, gs = model["spawn_true"], model["gpustat_json"]
    cores = mach["cores"] or 1
    alg_cpu = load["algalon"][16]["cpu_ms_per_1000"]
    w("### MODEL of nvidia_gpu_exporter (one nvidia-smi per scrape)\n")
    w(
        "Not nvidia_gpu_exporter itself (it needs nvidia-smi, which the fake cannot "
        "stand in for): the cost of the process it spawns per scrape. A bare "
        "fork + exec of `/bin/true` is the floor; `gpustat --json` on the fake (a "
        "Python CLI on nvidia-ml-py) stands in for a real NVML CLI. On real GPUs "
        "nvidia-smi also pays driver initialisation, often tens to hundreds of ms.\n"
    )
    w(
        table(
            [
                "per scrape",
                "wall p50",
                "wall p99",
                "CPU",
                "CPU per 1000 scrapes",
                f"most scrapes/s on {cores} cores",
                "CPU vs Algalon",
            ],
            [
                [
                    f"spawn `/bin/true` (n = {sp['n']})",
                    fmt_s(sp["wall_p50_s"]),
                    fmt_s(sp["wall_p99_s"]),
                    fmt_s(sp["cpu_s"]),
                    f"{sp['cpu_s'] * 1e6:,.0f} ms",
                    fmt_num(cores / sp["cpu_s"]) if sp["cpu_s"] else "–",
                    fmt_ratio(sp["cpu_s"] * 1e6 / alg_cpu),
                ],
                [
                    f"`gpustat --json`, 8 GPUs (n = {gs['n']})",
                    fmt_s(gs["wall_p50_s"]),
                    fmt_s(gs["wall_p99_s"]),
                    fmt_s(gs["cpu_s"]),
                    f"{gs['cpu_s'] * 1e6:,.0f} ms",
                    fmt_num(cores / gs["cpu_s"]) if gs["cpu_s"] else "–",
                    fmt_ratio(gs["cpu_s"] * 1e6 / alg_cpu),
                ],
            ],
        )
    )
    w("")
    return "\n".join(out)


def write_section(path: Path, markdown: str) -> None:
    text = path.read_text()
    section = f"{BEGIN_MARK}\n{markdown.rstrip()}\n{END_MARK}\n"
    if BEGIN_MARK in text and END_MARK in text:
        head, rest = text.split(BEGIN_MARK, 1)
        _, tail = rest.split(END_MARK, 1)
        text = head + section + tail.lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


# --------------------------------------------------------------------------


def number_list(kind: Callable[[str], Any]) -> Callable[[str], tuple[Any, ...]]:
    def parse(text: str) -> tuple[Any, ...]:
        try:
            values = tuple(kind(x) for x in text.split(",") if x.strip())
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from exc
        if not values or any(v < 0 for v in values):
            raise argparse.ArgumentTypeError(
                f"{text!r}: give non-negative numbers, e.g. 1,8,64"
            )
        return values

    return parse


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Settings]:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Defaults in brackets: [full run; --quick].",
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="smoke run of every path (~40 s, for CI)")
    add("--duration", type=int, help="whole seconds per wrk run [10; 1]")
    add("--rounds", type=int, help="interleaved wrk rounds [2; 1]")
    add("--idle", type=float, help="idle CPU window in seconds [30; 4]")
    add("--gpus", type=number_list(int), help="GPU counts to scale over [1,8,64; 1,8]")
    add(
        "--latencies",
        type=number_list(float),
        help="NVML ms per call to scale over [0,0.2,2; 0,2]",
    )
    add("--cell-time", type=float, help="seconds per scaling cell [5; 1]")
    add("--cell-scrapes", type=int, help="most scrapes per exporter per cell [200; 5]")
    add("--spawns", type=int, help="spawns of /bin/true for the model [300; 30]")
    add("--gpustat-runs", type=int, help="gpustat --json runs for the model [8; 2]")
    add("--no-build", action="store_true", help="use the existing release build")
    add("--json", type=Path, metavar="PATH", help="write every result as JSON")
    add(
        "--write",
        type=Path,
        metavar="MD",
        help=f"replace the part between {BEGIN_MARK} and {END_MARK} (appended if absent)",
    )
    args = parser.parse_args(argv)
    q = args.quick

    def pick(value: Any, full: Any, quick: Any) -> Any:
        return value if value is not None else (quick if q else full)

    settings = Settings(
        quick=q,
        duration_s=pick(args.duration, 10, 1),
        rounds=pick(args.rounds, 2, 1),
        idle_s=pick(args.idle, 30.0, 4.0),
        gpu_counts=pick(args.gpus, (1, 8, 64), (1, 8)),
        latencies_ms=pick(args.latencies, (0.0, 0.2, 2.0), (0.0, 2.0)),
        cell_s=pick(args.cell_time, 5.0, 1.0),
        cell_scrapes=pick(args.cell_scrapes, 200, 5),
        min_scrapes=1 if q else 3,
        spawns=pick(args.spawns, 300, 30),
        gpustat_runs=pick(args.gpustat_runs, 8, 2),
        command=shlex.join(
            [
                "python3",
                "benches/compare/compare.py",
                *(sys.argv[1:] if argv is None else argv),
            ]
        ),
    )
    positive = (settings.duration_s, settings.rounds, settings.idle_s, settings.cell_s)
    if min(positive) <= 0 or min(settings.cell_scrapes, settings.spawns) < 1:
        parser.error("durations, rounds and counts must be positive")
    if settings.gpustat_runs < 1 or 0 in settings.gpu_counts:
        parser.error("--gpustat-runs and every --gpus count must be at least 1")
    return args, settings


def on_signal(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args, settings = parse_args(argv)
    # SIGINT too: a shell starts background jobs with SIGINT ignored.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="algalon-compare-") as tmp:
        fleet = Fleet(Path(tmp))
        try:
            check_tools()
            if not args.no_build:
                build()
            if not ALGALON_BIN.exists() or not LIB.exists():
                raise BenchError(
                    f"{ALGALON_BIN} or {LIB} is missing: run without --no-build"
                )
            results = run_all(fleet, Path(tmp), settings)
        except BenchError as exc:
            say(f"FAILED: {exc}")
            return 1
        except KeyboardInterrupt:
            say("interrupted; every exporter stopped")
            return 130
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
            fleet.stop_all()

    results["total_s"] = time.monotonic() - started
    markdown = render(results, settings)
    print(markdown)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
        say(f"results written to {args.json}")
    if args.write:
        write_section(args.write, markdown)
        say(f"section rewritten in {args.write}")

    disagreements = [
        f"{peer} {reading}"
        for peer, verdicts in results["fidelity"]["peers"].items()
        for reading, v in verdicts.items()
        if not v["agree"]
    ]
    say(
        f"done in {results['total_s']:.0f} s ({results['measure_s']:.0f} s of measurement); "
        + ", ".join(
            f"{t['target']}: {'met' if t['met'] else 'MISSED'}"
            for t in results["targets"]
        )
    )
    if disagreements:
        say("FIDELITY MISMATCH: " + ", ".join(disagreements))
        return 1
    return 0


def run_all(fleet: Fleet, workdir: Path, settings: Settings) -> dict[str, Any]:
    results: dict[str, Any] = {
        "settings": settings.__dict__,
        "machine": machine_info(),
        "versions": versions(),
        "load_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    measure_start = time.monotonic()

    say(f"fidelity: frozen clock at t = {FROZEN_T:g} s")
    results["fidelity"] = measure_fidelity(fleet)
    for key, verdicts in results["fidelity"]["peers"].items():
        for reading, v in verdicts.items():
            if not v["agree"]:
                say(
                    f"fidelity: {key} {reading} disagrees: {'; '.join(v['mismatches'][:3])}"
                )

    with fleet.group(MAIN_SCENARIO) as exporters:
        # First-scrape costs (imports, caches) out of the way.
        results["body_bytes"] = {}
        for exporter in exporters:
            for _ in range(3):
                _, body = scrape(exporter.port)
            results["body_bytes"][exporter.peer.key] = len(body)
        results["rss_start_mib"] = {
            e.peer.key: proc_status_kib(e.pid, "VmRSS") / 1024 for e in exporters
        }
        results["load"] = measure_load(exporters, settings.rounds, settings.duration_s)
        results["wide"] = measure_wide(exporters, settings.duration_s)
        time.sleep(1)
        results["idle_cpu_percent"] = measure_idle(exporters, settings.idle_s)
        results["rss_mib"] = {e.peer.key: e.peak_rss_mib() for e in exporters}

    results["scaling"] = measure_scaling(
        fleet,
        scaling_scenarios(workdir, settings.gpu_counts),
        settings.latencies_ms,
        settings.cell_s,
        settings.cell_scrapes,
        settings.min_scrapes,
        1 if settings.quick else 3,
    )
    results["model"] = measure_spawn_model(settings.spawns, settings.gpustat_runs)
    results["measure_s"] = time.monotonic() - measure_start
    results["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    results["targets"] = evaluate_targets(results)
    return results


if __name__ == "__main__":
    sys.exit(main())
