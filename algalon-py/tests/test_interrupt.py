"""Jobs left by an exception: KeyboardInterrupt (raised, or from a real SIGINT) and errors.

The report is still made, is marked ``interrupted`` with the exception's
type as ``error``, and says so everywhere it goes: ``job.report`` after the
block, the printed table, ``to_json``/``from_json``, ``reports()``, the
served ``/metrics`` and the pushed series (``algalon_job_interrupted``).
"""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import algalon
import pytest
from conftest import H100_W, within
from prometheus_client.parser import text_string_to_metric_families


class TrainingDivergedError(RuntimeError):
    pass


def interrupted_samples(text: str) -> dict[str, tuple[float, str | None]]:
    """job_id → (value, exception label) of ``algalon_job_interrupted``, via the official parser."""
    families = {f.name: f for f in text_string_to_metric_families(text)}
    return {
        s.labels["job_id"]: (s.value, s.labels.get("exception"))
        for s in families["algalon_job_interrupted"].samples
    }


def test_keyboard_interrupt_in_a_job_still_gives_the_report(
    mon: algalon.Monitor,
) -> None:
    job = mon.job("ctrl-c", labels={"team": "nlp"})
    with pytest.raises(KeyboardInterrupt), job:
        time.sleep(0.3)
        job.count(samples=64)
        raise KeyboardInterrupt
    assert not job.running
    r = job.report
    assert r.interrupted is True and r.error == "KeyboardInterrupt"
    assert not r.running
    # The figures up to the interruption are all there.
    h100 = r.gpus[0]
    assert r.duration_s >= 0.3 and h100.samples >= 3
    assert within(h100.energy_j, H100_W * r.duration_s, 0.1), (
        h100.energy_j,
        r.duration_s,
    )
    assert r.counts == {"samples": 64.0}
    assert str(r).startswith('(interrupted by KeyboardInterrupt) job "ctrl-c"')


def test_errors_name_their_type_and_a_clean_job_is_not_interrupted(
    mon: algalon.Monitor,
) -> None:
    with pytest.raises(ValueError), mon.job("bad-input") as bad:
        raise ValueError("boom")
    with pytest.raises(TrainingDivergedError), mon.job("diverged") as diverged:
        raise TrainingDivergedError("loss is nan")
    with mon.job("fine") as fine:
        time.sleep(0.05)
    assert bad.report.interrupted and bad.report.error == "ValueError"
    assert diverged.report.error == "test_interrupt.TrainingDivergedError"
    assert not fine.report.interrupted and fine.report.error is None
    assert not str(fine.report).startswith("(interrupted")
    # An explicit end() is a normal end.
    job = mon.job("explicit").start()
    assert not job.end().interrupted
    # reports() keeps the marks.
    by_id = {r.id: r for r in mon.reports()}
    assert by_id[bad.id].error == "ValueError"
    assert by_id[diverged.id].interrupted and not by_id[fine.id].interrupted


def test_interrupted_survives_json_and_old_documents_still_load(
    mon: algalon.Monitor,
) -> None:
    with pytest.raises(KeyboardInterrupt), mon.job("saved") as job:
        raise KeyboardInterrupt
    doc = job.report.to_dict()
    assert doc["schema"] == 4
    assert doc["interrupted"] is True and doc["error"] == "KeyboardInterrupt"
    back = algalon.Report.from_json(job.report.to_json(indent=2))
    assert back.interrupted and back.error == "KeyboardInterrupt"
    assert back.to_prometheus() == job.report.to_prometheus()
    # A schema 1 document (before interruptions were recorded) reads as not interrupted.
    old = dict(doc, schema=1, id=7)
    del old["interrupted"], old["error"], old["notes"], old["slowest_sample_s"]
    old_report = algalon.Report.from_dict(old)
    assert not old_report.interrupted
    # Its per-process number reads as text; what schema 3 added is unknown.
    assert old_report.id == "7" and old_report.slowest_sample_s is None
    with pytest.raises(ValueError, match="schema 5 is not supported.*upgrade algalon"):
        algalon.Report.from_dict(dict(doc, schema=5))
    with pytest.raises(ValueError, match="interrupted false"):
        algalon.Report.from_dict(dict(doc, interrupted=False))


def test_served_and_exposed_series_mark_interrupted_jobs(mon: algalon.Monitor) -> None:
    server = mon.serve(port=0)
    with mon.job("clean"):
        pass
    with pytest.raises(KeyboardInterrupt), mon.job("stopped") as stopped:
        raise KeyboardInterrupt
    running = mon.begin_window("still-running")
    with urllib.request.urlopen(server.url, timeout=5) as response:
        served = interrupted_samples(response.read().decode())
    ids = {r.name: str(r.id) for r in mon.reports()}
    assert served[ids["stopped"]] == (1.0, "KeyboardInterrupt")
    assert served[ids["clean"]] == (0.0, None)
    assert served[ids["still-running"]] == (0.0, None)
    # The report's own exposition (what push sends) carries it too.
    own = interrupted_samples(stopped.report.to_prometheus())
    assert own == {str(stopped.id): (1.0, "KeyboardInterrupt")}
    running.end()


def test_track_marks_an_interrupted_call(mon: algalon.Monitor) -> None:
    @mon.track("step")
    def step(fail: bool) -> int:
        if fail:
            raise KeyboardInterrupt
        return 1

    assert step(False) == 1
    assert step.last_report is not None and not step.last_report.interrupted
    with pytest.raises(KeyboardInterrupt):
        step(True)
    assert step.last_report is not None
    assert step.last_report.error == "KeyboardInterrupt"


CHILD = """
import sys, time
import algalon

mon = algalon.Monitor(interval=0.05)
job = mon.job("train-loop")
try:
    with job:
        print("ready", flush=True)
        step = 0
        while True:             # a training loop, stopped by Ctrl-C
            sum(range(20000))
            step += 1
            job.count(samples=1)
finally:
    print(job.report, flush=True)
    with open(sys.argv[1], "w") as f:
        f.write(job.report.to_json())
"""


# As from a terminal: a test run started in the background (`make test &`,
# some CI runners) hands its children SIGINT ignored, and Python then installs
# no KeyboardInterrupt handler; the child puts it back first.
SIGINT_AS_FROM_A_TERMINAL = (
    "import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
)


def test_sigint_ends_the_process_the_normal_way_with_an_interrupted_report(
    tmp_path: Path,
) -> None:
    saved = tmp_path / "report.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SIGINT_AS_FROM_A_TERMINAL + textwrap.dedent(CHILD),
            str(saved),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Python's own exit for an unhandled KeyboardInterrupt: killed by SIGINT.
    assert proc.returncode == -signal.SIGINT, (proc.returncode, err)
    assert err.rstrip().endswith("KeyboardInterrupt"), err
    assert "panicked" not in err
    assert out.startswith('(interrupted by KeyboardInterrupt) job "train-loop"'), out
    doc = json.loads(saved.read_text())
    assert doc["interrupted"] is True and doc["error"] == "KeyboardInterrupt"
    assert doc["duration_s"] >= 0.5 and doc["counts"]["samples"] > 0
    assert doc["gpus"][0]["samples"] >= 5 and doc["gpus"][0]["energy_j"] > 0


def test_a_running_job_dropped_without_end_is_closed_as_dropped(
    mon: algalon.Monitor,
) -> None:
    job = mon.job("abandoned").start()
    job_id = job.id
    del job  # started without `with`, never ended
    gc.collect()
    kept = mon.begin_window("named")  # held by its name until end_window
    del kept
    gc.collect()
    time.sleep(0.2)
    by_name = {r.name: r for r in mon.reports()}
    abandoned = by_name["abandoned"]
    assert abandoned.id == job_id and not abandoned.running
    assert abandoned.interrupted and abandoned.error == "dropped"
    samples = abandoned.gpus[0].samples
    time.sleep(0.2)
    # Closed: no longer fed.
    assert {r.name: r for r in mon.reports()}["abandoned"].gpus[0].samples == samples
    assert by_name["named"].running
    assert not mon.end_window("named").interrupted
