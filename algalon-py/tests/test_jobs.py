"""Jobs, windows, the decorator, counts and the report's values."""

from __future__ import annotations

import asyncio
import copy
import json
import pickle
import time
from pathlib import Path

import algalon
import pytest
from conftest import CONSTANT, H100, H100_W, MIB, T4, T4_W, run_python, within


def test_job_energy_matches_power_times_duration(mon: algalon.Monitor) -> None:
    with mon.job("llama-finetune", labels={"team": "nlp"}, pids=[4242]) as job:
        assert job.running
        time.sleep(2.0)
    report = job.report
    assert not job.running and not report.running
    assert report.name == "llama-finetune"
    assert report.labels == {"team": "nlp"}
    assert 1.9 < report.duration_s < 3.0
    h100, t4 = report.gpus
    assert (h100.uuid, h100.cuda_index, h100.nvml_index) == (H100, 0, 0)
    assert (t4.uuid, t4.cuda_index, t4.nvml_index) == (T4, 1, 1)
    # Counter on the H100, integrated power on the T4: both within 2%.
    assert h100.energy_source == "counter" and h100.energy_note is None
    assert h100.energy_j is not None and within(
        h100.energy_j, H100_W * report.duration_s, 0.02
    )
    assert t4.energy_source == "integrated"
    assert t4.energy_note is not None and "no energy counter" in t4.energy_note
    assert t4.energy_j is not None and within(
        t4.energy_j, T4_W * report.duration_s, 0.02
    )
    assert report.energy_j == pytest.approx(h100.energy_j + t4.energy_j)
    assert (h100.util_mean, h100.util_max, t4.util_mean) == (85, 85, 10)
    assert h100.memory_peak_bytes == 40000 * MIB and t4.memory_peak_bytes == 1024 * MIB
    # With the energy counter, mean power is energy over the job's duration.
    assert h100.power_mean_w == pytest.approx(h100.energy_j / report.duration_s)
    assert within(h100.power_mean_w, H100_W, 0.02)
    assert h100.power_max_w == pytest.approx(H100_W)
    assert t4.power_mean_w == pytest.approx(T4_W)
    assert (h100.temperature_max_c, t4.temperature_max_c) == (63, 41)
    # 2 s at 50 ms, plus the boundary samples; a loaded CI machine may skip ticks.
    assert 15 <= h100.samples <= 45 and t4.samples == h100.samples
    # pid 4242 (given as the job's) uses 30000 MiB on the H100, nothing on the T4.
    assert h100.process_memory_peak_bytes == 30000 * MIB
    assert t4.process_memory_peak_bytes is None
    assert h100.down_reason is None
    text = str(report)
    assert 'job "llama-finetune"' in text and "counter" in text and "integrated" in text
    assert "team=nlp" in text and f"GPU 0 = cuda:0, {H100}" in text
    # repr is one line: name, duration, energy, GPUs; str is the table.
    assert repr(report) == (
        f'<Report "llama-finetune": {report.duration_s:.1f} s, '
        f"{report.energy_j:.1f} J, cuda:0,cuda:1>"
    )
    assert "cuda:0" in repr(h100)


def test_without_pids_only_this_process_tree_counts(mon: algalon.Monitor) -> None:
    with mon.job("own") as job:
        time.sleep(0.2)
    # The fake's only process, 4242, is not ours.
    assert all(g.process_memory_peak_bytes is None for g in job.report.gpus)


def test_process_tree_memory() -> None:
    # A scenario whose H100 process is a child of the measuring process.
    run_python(
        f"""
        import json, os, subprocess, sys, tempfile, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            scenario = json.load(open({str(CONSTANT)!r}))
            scenario["gpus"][0]["processes"][0]["pid"] = child.pid
            scenario["gpus"][0]["processes"].append(
                {{"pid": 4242, "name": "other", "type": "compute", "used_mib": 5000}}
            )
            path = os.path.join(tempfile.mkdtemp(), "tree.json")
            json.dump(scenario, open(path, "w"))
            os.environ["ALGALON_FAKE_NVML_SCENARIO"] = path
            import algalon
            mon = algalon.Monitor(interval=0.05)
            with mon.job("tree") as job:
                time.sleep(0.3)
            h100 = job.report.gpus[0]
            assert h100.process_memory_peak_bytes == 30000 << 20, h100
        finally:
            child.kill()
        """
    )


def test_count_gives_energy_per_sample_and_token(mon: algalon.Monitor) -> None:
    with mon.job("counted") as job:
        time.sleep(0.3)
        job.count(samples=64)
        job.count(samples=36, tokens=1000)
        running = job.report
        assert running.running and running.counts == {"samples": 100, "tokens": 1000}
    report = job.report
    assert report.counts == {"samples": 100.0, "tokens": 1000.0}
    assert report.energy_j is not None
    assert report.energy_per_sample == pytest.approx(report.energy_j / 100)
    assert report.energy_per_token == pytest.approx(report.energy_j / 1000)
    assert report.energy_per("samples") == report.energy_per_sample
    assert report.energy_per("images") is None
    assert "J per samples" in str(report)
    with pytest.raises(ValueError, match="already ended"):
        job.count(samples=1)


def test_count_names_are_checked(mon: algalon.Monitor) -> None:
    # `sample=` next to `samples=` would be a second count nobody reads.
    with mon.job("typo") as job:
        job.count(samples=2)
        with pytest.raises(ValueError, match='did you mean "samples"') as err:
            job.count(sample=1)
        assert "samples, tokens, steps" in str(err.value)
        with pytest.raises(ValueError, match="count one of"):
            job.count(bananas=1)
    assert job.report.counts == {"samples": 2.0}


def test_a_slow_gpu_is_noted_in_the_report(tmp_path: Path) -> None:
    scenario = json.loads(CONSTANT.read_text())
    scenario["latency"] = [{"call": "nvmlDeviceGetPowerUsage", "gpu": 1, "ms": 250.0}]
    path = tmp_path / "slow-t4.json"
    path.write_text(json.dumps(scenario))
    code = """
        import time, algalon
        mon = algalon.Monitor(interval=0.05)
        with mon.job("slow") as job:
            time.sleep(0.1)
        print(job.report.to_json())
    """
    report = algalon.Report.from_json(
        run_python(code, env={"ALGALON_FAKE_NVML_SCENARIO": str(path)}).stdout
    )
    assert report.slowest_sample_s is not None and report.slowest_sample_s >= 0.25
    (note,) = report.notes
    assert "fell behind its 0.050 s interval" in note, note
    assert "note: sampling fell behind" in str(report)
    # A fast GPU gives no note (an interval a loaded test machine keeps too).
    with algalon.Monitor(interval=0.5) as mon, mon.job("fast") as job:
        time.sleep(0.1)
    assert job.report.notes == [] and job.report.slowest_sample_s is not None


def test_counts_must_be_non_negative_numbers(mon: algalon.Monitor) -> None:
    with mon.job("bad-counts") as job:
        with pytest.raises(ValueError):
            job.count(samples=-1)
        with pytest.raises(ValueError):
            job.count(samples="many")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            job.count(tokens=float("inf"))
    assert job.report.counts == {}
    assert job.report.energy_per_sample is None


def test_nested_and_overlapping_windows(mon: algalon.Monitor) -> None:
    outer = mon.begin_window("outer")
    time.sleep(0.4)
    mon.begin_window("inner", labels={"phase": "eval"})
    time.sleep(0.4)
    inner = mon.end_window("inner")
    mon.begin_window("overlap")
    time.sleep(0.3)
    outer_r = mon.end_window("outer")
    time.sleep(0.3)
    overlap_r = mon.end_window("overlap")
    assert outer_r.started_at < inner.started_at < inner.ended_at < outer_r.ended_at
    assert (
        outer_r.started_at
        < overlap_r.started_at
        < outer_r.ended_at
        < overlap_r.ended_at
    )
    assert inner.labels == {"phase": "eval"}
    for r in (outer_r, inner, overlap_r):
        h100 = r.gpus[0]
        assert h100.energy_j is not None
        assert within(h100.energy_j, H100_W * r.duration_s, 0.02), (
            r.name,
            h100.energy_j,
        )
    assert outer_r.energy_j is not None and inner.energy_j is not None
    assert outer_r.energy_j > inner.energy_j
    assert outer.report.id == outer_r.id and not outer.running
    assert len({outer_r.id, inner.id, overlap_r.id}) == 3


def test_window_misuse_is_a_value_error(mon: algalon.Monitor) -> None:
    mon.begin_window("epoch")
    with pytest.raises(ValueError, match="already open"):
        mon.begin_window("epoch")
    mon.end_window("epoch")
    with pytest.raises(ValueError, match='no open window named "epoch"'):
        mon.end_window("epoch")
    with pytest.raises(ValueError, match="no open window"):
        mon.end_window("never")
    job = mon.job("once")
    with pytest.raises(ValueError, match="has not started"):
        job.report  # noqa: B018
    with pytest.raises(ValueError, match="has not started"):
        job.end()
    with job, pytest.raises(ValueError, match="already running"):
        job.start()
    with pytest.raises(ValueError, match="already ended"):
        job.end()
    with pytest.raises(ValueError, match="has ended"), job:
        pass
    with pytest.raises(ValueError, match="non-empty name"):
        mon.job(" ")
    # A window ended through its Job object frees its name.
    w = mon.begin_window("freed")
    w.end()
    mon.begin_window("freed").end()


@pytest.mark.parametrize(
    "labels",
    [
        {"1team": "x"},
        {"a-b": "x"},
        {"__x": "x"},
        {"job_id": "7"},
        {"instance": "x"},
        {"team": ["a"]},
        {"team": None},
        {1: "x"},
        ["team", "x"],
    ],
)
def test_bad_labels_are_value_errors(mon: algalon.Monitor, labels: object) -> None:
    with pytest.raises(ValueError):
        mon.job("labelled", labels=labels)  # type: ignore[arg-type]


def test_label_values_may_be_numbers(mon: algalon.Monitor) -> None:
    with mon.job("numbers", labels={"lr": 0.001, "epoch": 3, "ft": True}) as job:
        pass
    assert job.report.labels == {"lr": "0.001", "epoch": "3", "ft": "True"}


def test_identity_from_the_environment(
    mon: algalon.Monitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "SLURM_JOB_ID": "4711",
        "SLURM_STEP_ID": "0",
        "SLURM_PROCID": "3",
        "RANK": "3",
        "LOCAL_RANK": "1",
        "WORLD_SIZE": "8",
        "TORCHELASTIC_RUN_ID": "run-42",
        "POD_NAME": "trainer-0",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with mon.job("ranked", labels={"team": "nlp", "rank": "override"}) as job:
        pass
    assert job.report.labels == {
        "slurm_job_id": "4711",
        "slurm_step_id": "0",
        "slurm_procid": "3",
        "rank": "override",  # the user's label wins
        "local_rank": "1",
        "world_size": "8",
        "torchelastic_run_id": "run-42",
        "k8s_pod": "trainer-0",
        "team": "nlp",
    }
    assert job.labels == {"team": "nlp", "rank": "override"}


def test_exception_inside_a_job_still_ends_it(mon: algalon.Monitor) -> None:
    job = mon.job("crashes")
    with pytest.raises(RuntimeError, match="boom"), job:
        raise RuntimeError("boom")
    assert not job.running and job.report.gpus


def test_short_window_never_claims_zero_energy(mon: algalon.Monitor) -> None:
    with mon.job("blink") as job:
        pass
    for gpu in job.report.gpus:
        assert gpu.energy_j is None or gpu.energy_j > 0, gpu
        if gpu.energy_j is None:
            assert gpu.energy_note


def test_short_window_with_a_still_counter_says_so() -> None:
    # A frozen scenario clock: the energy counter does not move, as a real
    # one does not within its refresh period.
    out = run_python(
        """
        import algalon
        mon = algalon.Monitor(interval=1.0)
        with mon.job("blink") as job:
            pass
        h100, t4 = job.report.gpus
        assert h100.energy_j is None or h100.energy_j > 0, h100.energy_j
        assert "shorter than the energy counter's resolution" in h100.energy_note, h100.energy_note
        assert t4.energy_j is None or t4.energy_j > 0
        print(job.report)
        """,
        env={"ALGALON_FAKE_NVML_FROZEN_TIME": "5"},
    )
    assert "note:" in out.stdout


def test_report_round_trips_through_json(mon: algalon.Monitor) -> None:
    with mon.job("saved", labels={"team": "nlp"}, pids=[4242]) as job:
        time.sleep(0.2)
        job.count(samples=10)
    report = job.report
    data = report.to_dict()
    assert report.energy_j is not None
    assert data["schema"] == 4 and data["name"] == "saved"
    assert data["energy_per"]["samples"] == pytest.approx(report.energy_j / 10)
    assert [g["cuda_index"] for g in data["gpus"]] == [0, 1]
    assert data["gpus"][0]["energy_source"] == "counter"
    assert json.loads(report.to_json(indent=2)) == data
    again = algalon.Report.from_json(report.to_json())
    assert again.to_dict() == data
    assert str(again) == str(report)
    assert again.to_prometheus() == report.to_prometheus()
    assert algalon.Report.from_dict(data).to_dict() == data
    with pytest.raises(ValueError, match="not an algalon report"):
        algalon.Report.from_json('{"name": "x"}')
    with pytest.raises(ValueError, match="schema"):
        algalon.Report.from_json(json.dumps({**data, "schema": 99}))


def test_decorator_sync_and_async(mon: algalon.Monitor) -> None:
    @mon.track("evaluate", labels={"split": "val"})
    def evaluate(x: int) -> int:
        """Docs survive."""
        time.sleep(0.1)
        return x * 2

    @mon.track
    def plain() -> str:
        return "ok"

    @mon.track("infer")
    async def infer() -> int:
        await asyncio.sleep(0.1)
        return 7

    assert evaluate(21) == 42
    assert evaluate.__name__ == "evaluate" and evaluate.__doc__ == "Docs survive."
    r = evaluate.last_report
    assert r is not None
    assert (
        r.name == "evaluate" and r.labels == {"split": "val"} and r.duration_s >= 0.09
    )
    assert plain() == "ok"
    assert plain.last_report is not None
    assert plain.last_report.name.endswith("plain")
    assert asyncio.run(infer()) == 7
    r = infer.last_report
    assert r is not None and r.name == "infer" and r.duration_s >= 0.09
    names = [r.name for r in mon.reports()]
    assert names.count("evaluate") == 1 and "infer" in names

    @mon.track("fails")
    def fails() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        fails()
    assert fails.last_report is not None and fails.last_report.name == "fails"


def test_reports_lists_finished_and_running(mon: algalon.Monitor) -> None:
    with mon.job("done"):
        pass
    running = mon.begin_window("going")
    by_name = {r.name: r for r in mon.reports()}
    assert not by_name["done"].running and by_name["going"].running
    running.end()


def test_closed_monitor(mon: algalon.Monitor) -> None:
    job = mon.job("spans-close")
    job.start()
    time.sleep(0.2)
    mon.close()
    mon.close()  # idempotent
    assert mon.closed
    report = job.end()  # ends at the last sample taken
    assert report.gpus and report.gpus[0].samples >= 2
    with pytest.raises(algalon.AlgalonError, match="closed"):
        mon.job("after").start()
    with pytest.raises(algalon.AlgalonError, match="closed"):
        mon.serve(port=0)


def test_monitor_as_context_manager() -> None:
    with algalon.Monitor(interval=0.05) as m:
        assert not m.closed and "cuda:0" in repr(m)
        assert m.interval == pytest.approx(0.05)
        assert m.library.endswith("libnvidia-ml.so.1") and m.hostname
    assert m.closed


def test_reports_pickle_copy_and_compare_after_a_json_round_trip(
    mon: algalon.Monitor,
) -> None:
    with mon.job("shipped", labels={"team": "nlp"}, pids=[4242]) as job:
        time.sleep(0.15)
        job.count(tokens=1234)
    report = job.report
    again = algalon.Report.from_json(report.to_json())
    assert again == report
    assert algalon.Report.from_json(report.to_json(indent=4)) == report
    assert pickle.loads(pickle.dumps(report)) == report
    assert copy.deepcopy(report) == report and copy.copy(report) == report
    gpu = report.gpus[0]
    assert pickle.loads(pickle.dumps(gpu)) == gpu and copy.deepcopy(gpu) == gpu
    assert gpu != report.gpus[1]
    # A different report is not equal.
    with mon.job("other") as other:
        pass
    assert other.report != report
    assert report != "not a report"
