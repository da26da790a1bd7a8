"""``scripts/check-real-gpu-job.py`` against the fake NVML, so that the check
run on machines with real GPUs keeps working between those runs: nvidia-ml-py
loads the same fake library (``LD_LIBRARY_PATH``) and must agree with the
Python and C reports. Without PyTorch the load checks are skipped, and said so.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAKE_DIR, REPO

SCRIPT = REPO / "scripts" / "check-real-gpu-job.py"
LIB_DIR = REPO / "target" / "debug"

pytest.importorskip("pynvml")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LD_LIBRARY_PATH": str(FAKE_DIR), "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--seconds", "1", *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def rows(text: str) -> dict[str, str]:
    """check name -> result (last word) for every table row."""
    out = {}
    for line in text.splitlines():
        if line[:3] in ("py ", "c g", "c j", "c p", "c e", "c c"):
            out[line[:24].strip()] = line.split()[-1]
    return out


def test_python_and_c_reports_agree_with_nvml() -> None:
    if not (LIB_DIR / "libalgalon.so").exists():
        raise RuntimeError(
            f"{LIB_DIR}/libalgalon.so is missing: run `cargo build -p algalon-ffi`"
        )
    proc = run("--libalgalon", str(LIB_DIR))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "VERDICT: PASS" in proc.stdout, proc.stdout
    got = rows(proc.stdout)
    for check in (
        "py uuid",
        "py energy J",
        "py energy source",
        "py power mean W",
        "py util mean %",
        "py memory peak MiB",
        "c compile -Werror",
        "c gpu count",
        "c gpu 1 name",
        "c gpu 1 memory GiB",
        "c job energy",
        "c prometheus text",
    ):
        assert got.get(check) == "ok", (check, proc.stdout)
    if importlib.util.find_spec("torch") is None:
        # No load without PyTorch: skipped, never passed.
        assert got["py util max % (load)"] == "skip", proc.stdout


def test_a_missing_c_library_is_a_clear_error(tmp_path: Path) -> None:
    proc = run("--libalgalon", str(tmp_path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{tmp_path}/libalgalon.so not found" in proc.stderr
    assert "cargo build --release -p algalon-ffi" in proc.stderr
