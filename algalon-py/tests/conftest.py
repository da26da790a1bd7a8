"""Shared setup: every test runs the installed ``algalon`` wheel against the fake NVML.

The fake library and the scenario are chosen through the environment before
``algalon`` is imported: in this process the constant scenario (an H100 with
an energy counter at 312.5 W and a T4 without one at 27.25 W); tests that
need another scenario, a frozen clock or injected latency run a Python
subprocess (``run_python``), since the fake reads its scenario when NVML is
first initialised in a process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FAKE_DIR = Path(os.environ.get("ALGALON_FAKE_NVML_DIR", REPO / "target" / "fake-nvml"))
FAKE_LIB = FAKE_DIR / "libnvidia-ml.so.1"
SCENARIOS = REPO / "testing" / "scenarios"
CONSTANT = REPO / "algalon-core" / "tests" / "scenarios" / "constant.json"

H100 = "GPU-11111111-2222-3333-4444-555555555550"
T4 = "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeee1"
H100_W = 312.5
T4_W = 27.25
MIB = 1 << 20

if not FAKE_LIB.exists():
    raise RuntimeError(
        f"{FAKE_LIB} is missing: run `make fake-nvml` (or set ALGALON_FAKE_NVML_DIR)"
    )

# Identity variables of the machine running the tests would leak into reports.
IDENTITY_VARS = (
    "SLURM_JOB_ID",
    "SLURM_STEP_ID",
    "SLURM_PROCID",
    "SLURM_JOB_NAME",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "TORCHELASTIC_RUN_ID",
    "POD_NAME",
    "POD_NAMESPACE",
    "KUBERNETES_SERVICE_HOST",
    "CUDA_VISIBLE_DEVICES",
)
for var in IDENTITY_VARS:
    os.environ.pop(var, None)
os.environ["ALGALON_NVML_LIB"] = str(FAKE_LIB)
os.environ["ALGALON_FAKE_NVML_SCENARIO"] = str(CONSTANT)
for var in ("ALGALON_FAKE_NVML_FROZEN_TIME", "ALGALON_FAKE_NVML_LATENCY_MS"):
    os.environ.pop(var, None)


@pytest.fixture(scope="session", autouse=True)
def installed_wheel() -> None:
    """The suite tests the installed package, never the source tree."""
    import algalon

    source = REPO / "algalon-py" / "python"
    assert source not in Path(algalon.__file__).resolve().parents, (
        f"algalon imported from the source tree ({algalon.__file__}); "
        "install the wheel (make test-python-pkg) instead"
    )


@pytest.fixture
def mon():
    import algalon

    m = algalon.Monitor(interval=0.05)
    yield m
    m.close()


def run_python(
    code: str, env: dict[str, str | None] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Runs ``code`` in a fresh interpreter with the fake NVML; fails on a non-zero exit.

    ``env`` adds to this process's environment; a ``None`` value removes the variable.
    """
    full_env = {**os.environ, **(env or {})}
    for k, v in list(full_env.items()):
        if v is None:
            del full_env[k]
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        check=False,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(Path(__file__).parent),
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def within(actual: float, expected: float, rel: float) -> bool:
    return abs(actual - expected) <= rel * abs(expected)
