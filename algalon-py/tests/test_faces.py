"""Python and C wrap the same core job session: the same run gives the same report.

The C half (``tests/c/job_report.c``) is compiled against ``algalon.h`` and
``target/debug/libalgalon.so`` (``cargo build -p algalon-ffi``) and run on
the fake NVML with a frozen clock; the Python half runs the same job in a
fresh interpreter. Their JSON reports are compared field by field, leaving
out only what depends on wall time (timestamps, durations and energy
integrated over them).
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import algalon
import pytest
from conftest import H100, REPO, T4, run_python

LIB_DIR = REPO / "target" / "debug"
HERE = Path(__file__).parent
FROZEN = {"ALGALON_FAKE_NVML_FROZEN_TIME": "5", "CUDA_VISIBLE_DEVICES": "1,0"}
WALL_TIME = (
    "started_at",
    "ended_at",
    "duration_s",
    "energy_j",
    "energy_per",
    "id",
    "slowest_sample_s",
)


@pytest.fixture(scope="module")
def c_job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lib = LIB_DIR / "libalgalon.so"
    if not lib.exists():
        raise RuntimeError(f"{lib} is missing: run `cargo build -p algalon-ffi`")
    exe = tmp_path_factory.mktemp("c") / "job_report"
    subprocess.run(
        [
            "gcc",
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-I",
            str(REPO / "algalon-ffi" / "include"),
            str(HERE / "c" / "job_report.c"),
            "-o",
            str(exe),
            "-L",
            str(LIB_DIR),
            "-lalgalon",
        ],
        check=True,
    )
    return exe


def run_c(exe: Path, name: str, env: dict[str, str]) -> dict[str, Any]:
    full = {**os.environ, **env, "LD_LIBRARY_PATH": str(LIB_DIR)}
    proc = subprocess.run(
        [str(exe), name, "300"],
        check=False,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def run_py(name: str, env: dict[str, str]) -> dict[str, Any]:
    code = f"""
        import time, algalon
        mon = algalon.Monitor(interval=3600)
        with mon.job({name!r}, pids=[4242]) as job:
            job.count(tokens=1234)
            time.sleep(0.3)
        print(job.report.to_json())
    """
    doc: dict[str, Any] = json.loads(
        run_python(textwrap.dedent(code), env=dict(env)).stdout
    )
    return doc


def comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """The report without what depends on wall time."""
    out = {k: v for k, v in doc.items() if k not in WALL_TIME}
    gpus = []
    for g in doc["gpus"]:
        g = dict(g)
        if g["energy_source"] == "integrated":
            # Power integrated over the window: the same power, not the same joules.
            assert g["energy_j"] == pytest.approx(
                g["power_mean_w"] * doc["duration_s"], rel=0.02
            )
            del g["energy_j"]
        gpus.append(g)
    out["gpus"] = gpus
    return out


def test_python_and_c_give_the_same_report_for_the_same_run(c_job: Path) -> None:
    c_doc = run_c(c_job, "same-run", FROZEN)
    py_doc = run_py("same-run", FROZEN)
    # Both honour CUDA_VISIBLE_DEVICES="1,0": the T4 is cuda:0.
    assert [(g["uuid"], g["cuda_index"]) for g in c_doc["gpus"]] == [(T4, 0), (H100, 1)]
    assert (
        c_doc["gpus"][1]["process_memory_peak_bytes"] is not None
    )  # PID 4242 on the H100
    c, py = comparable(c_doc), comparable(py_doc)
    assert c.keys() == py.keys()
    for key in c:
        if key == "gpus":
            for cg, pg in zip(c["gpus"], py["gpus"], strict=True):
                for field in cg:
                    assert cg[field] == pg[field], (
                        cg["uuid"],
                        field,
                        cg[field],
                        pg[field],
                    )
        else:
            assert c[key] == py[key], (key, c[key], py[key])


def test_a_c_report_reads_in_python(c_job: Path) -> None:
    text = json.dumps(run_c(c_job, "from-c", FROZEN))
    report = algalon.Report.from_json(text)
    assert report.name == "from-c" and not report.running and not report.interrupted
    assert [g.uuid for g in report.gpus] == [T4, H100]
    assert report.counts == {"tokens": 1234.0}
    assert report.energy_per_token == pytest.approx(report.energy_j / 1234)
    assert algalon.Report.from_json(report.to_json()) == report
    assert "from-c" in str(report) and "cuda:0" in str(report)


def test_the_python_report_fixture_is_what_python_writes(mon: algalon.Monitor) -> None:
    """``algalon-core/tests/data/report-python.json`` is read by the core's
    Rust tests (Python JSON → core): it must keep Python's exact shape."""
    fixture = REPO / "algalon-core" / "tests" / "data" / "report-python.json"
    text = fixture.read_text()
    report = algalon.Report.from_json(text)
    assert json.loads(report.to_json()) == json.loads(text)
    with mon.job("fresh", labels={"team": "nlp"}, pids=[4242]) as job:
        job.count(tokens=10)
    fresh = json.loads(job.report.to_json())
    doc = json.loads(text)
    assert fresh.keys() == doc.keys()
    assert [g.keys() for g in fresh["gpus"]] == [g.keys() for g in doc["gpus"]]
