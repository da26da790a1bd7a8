"""An independent model of the fake NVML's scenario format, and a runner
for Python NVML clients against the fake library.

The tests compare what a client reports with values computed here from the
scenario JSON, never with the library's own Rust model.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "testing" / "scenarios"
LIB_DIR = Path(os.environ.get("ALGALON_FAKE_NVML_DIR", REPO / "target" / "fake-nvml"))
MIB = 1024 * 1024
NOT_AVAILABLE = 2**64 - 1


# --- an independent model of the scenario format -------------------------


def load(name: str) -> dict[str, Any]:
    return json.loads((SCENARIOS / f"{name}.json").read_text())


def gpus(scenario: dict[str, Any]) -> list[dict[str, Any]]:
    """The GPU entries; the shipped scenarios used here list GPUs one by one."""
    assert all(g.get("count", 1) == 1 for g in scenario["gpus"])
    return scenario["gpus"]


def at(value: Any, t: float) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if "sine" in value:
        s = value["sine"]
        phase = s.get("phase_s", 0)
        return s["base"] + s["amplitude"] * math.sin(
            math.tau * (t + phase) / s["period_s"]
        )
    steps = value["steps"]
    current = steps[0][1]
    for when, v in steps:
        if when <= t:
            current = v
    return float(current)


def integral(value: Any, t: float) -> float:
    """Exact integral of a VALUE over [0, t]."""
    if isinstance(value, (int, float)):
        return value * t
    if "sine" in value:
        s = value["sine"]
        w = math.tau / s["period_s"]
        phase = s.get("phase_s", 0)

        def anti(x: float) -> float:
            return s["base"] * x - s["amplitude"] / w * math.cos(w * (x + phase))

        return anti(t) - anti(0.0)
    steps = value["steps"]
    total = 0.0
    for i, (when, v) in enumerate(steps):
        start = -math.inf if i == 0 else when
        end = steps[i + 1][0] if i + 1 < len(steps) else math.inf
        lo, hi = max(start, 0.0), min(end, t)
        if hi > lo:
            total += v * (hi - lo)
    return total


def rnd(x: float) -> int:
    """Round half away from zero and clamp at 0, as the fake does."""
    return max(0, math.floor(x + 0.5))


def pct(value: Any, t: float) -> int:
    return min(100, rnd(at(value, t)))


def energy_mj(gpu: dict[str, Any], t: float) -> int:
    return gpu.get("energy_offset_mj", 0) + rnd(integral(gpu["power_w"], t) * 1000.0)


def memory(gpu: dict[str, Any], t: float) -> dict[str, int]:
    m = gpu["memory"]
    total, reserved = m["total_mib"] * MIB, m.get("reserved_mib", 0) * MIB
    used = rnd(at(m["used_mib"], t)) * MIB
    return {
        "total": total,
        "reserved": reserved,
        "used": used,
        "free": total - reserved - used,
        "used_v1": used + reserved,
        "free_v1": total - used - reserved,
    }


def running(
    gpu: dict[str, Any], t: float, kinds: tuple[str, ...]
) -> list[dict[str, Any]]:
    return [
        p
        for p in gpu.get("processes", [])
        if p["type"] in kinds
        and p.get("start_s", 0) <= t
        and (p.get("end_s") is None or t < p["end_s"])
    ]


# --- running pynvml against the fake -------------------------------------

PRELUDE = """
import ctypes, json, sys, time
import pynvml as N
out = {}
def num(x):
    return getattr(x, "value", x)  # some pynvml calls hand back ctypes ints
"""


def run(
    body: str,
    scenario: str | Path | None,
    t: float | None = 0.0,
    init: bool = True,
    extra_env: dict[str, str] | None = None,
) -> tuple[dict[str, Any], str]:
    """Runs `body` (which fills the dict `out`) in a pynvml subprocess.

    `t` freezes scenario time (None: the clock runs, or follows a clock file
    named in `extra_env`)."""
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (str(LIB_DIR), env.get("LD_LIBRARY_PATH", "")) if p
    )
    for name in (
        "ALGALON_FAKE_NVML_SCENARIO",
        "ALGALON_FAKE_NVML_FROZEN_TIME",
        "ALGALON_FAKE_NVML_LATENCY_MS",
        "ALGALON_FAKE_NVML_CLOCK_FILE",
    ):
        env.pop(name, None)
    env.update(extra_env or {})
    if scenario is not None:
        path = (
            scenario if isinstance(scenario, Path) else SCENARIOS / f"{scenario}.json"
        )
        env["ALGALON_FAKE_NVML_SCENARIO"] = str(path)
    if t is not None:
        env["ALGALON_FAKE_NVML_FROZEN_TIME"] = repr(t)
    code = PRELUDE
    if init:
        code += "N.nvmlInit()\n"
        # Make sure the library pynvml loaded is the fake, not a real driver.
        code += "assert hasattr(N.nvmlLib, 'algalon_fake_nvml_call_count')\n"
    code += textwrap.dedent(body)
    if init:
        code += "\nN.nvmlShutdown()\n"
    code += "\nprint(json.dumps(out))\n"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"pynvml run failed:\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr
