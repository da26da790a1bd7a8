"""The Python examples run against the fake NVML and print a per-GPU report."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO, SCENARIOS, run_python

EXAMPLES = REPO / "examples" / "python"


def run_example(*args: str, scenario: str = "h100x8.json") -> str:
    out = run_python(
        f"import runpy, sys; sys.argv = {list(args)!r}; "
        "runpy.run_path(sys.argv[0], run_name='__main__')",
        env={"ALGALON_FAKE_NVML_SCENARIO": str(SCENARIOS / scenario)},
        timeout=120,
    )
    return out.stdout


def test_train_loop_prints_a_per_gpu_report(tmp_path) -> None:
    saved = tmp_path / "report.json"
    out = run_example(
        str(EXAMPLES / "train_loop.py"), "--steps", "12", "--save", str(saved)
    )
    assert 'job "train-loop"' in out and "total energy" in out
    assert out.count("NVIDIA H100 80GB HBM3") >= 16  # 8 GPUs listed, then reported
    assert "J per sample" in out and 'job "evaluate"' in out
    again = run_example(str(EXAMPLES / "train_report.py"), "--report", str(saved))
    assert 'job "train-loop"' in again


def test_train_report_keeps_an_unpushed_report(tmp_path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "train_report.py"),
            "--push",
            "http://127.0.0.1:9",
        ],
        check=False,
        cwd=tmp_path,
        env={
            **__import__("os").environ,
            "ALGALON_FAKE_NVML_SCENARIO": str(SCENARIOS / "h100x8.json"),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert (
        'job "fake-training"' in out.stdout
        and "saved to unpushed-report.json" in out.stdout
    )
    assert (tmp_path / "unpushed-report.json").exists()
