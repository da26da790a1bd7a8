"""report.push() into a real VictoriaMetrics on 127.0.0.1, read back by query."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import algalon
import pytest
from conftest import H100, REPO, T4, run_python

VM = shutil.which("victoria-metrics")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


@pytest.fixture(scope="module")
def vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if VM is None:
        pytest.skip(
            "victoria-metrics is not installed (scripts/install-deps.sh installs it)"
        )
    port = free_port()
    data = tmp_path_factory.mktemp("vm")
    log = open(Path(data) / "vm.log", "w")  # noqa: SIM115 - open as long as the server runs
    proc = subprocess.Popen(
        [
            VM,
            f"-storageDataPath={data}",
            f"-httpListenAddr=127.0.0.1:{port}",
            "-search.latencyOffset=0s",
            "-retentionPeriod=100y",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if get(url + "/health").strip() == "OK":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"victoria-metrics did not start: {Path(log.name).read_text()}"
                )
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def export(vm: str, match: str, want: int = 1) -> list[dict[str, Any]]:
    """Series matching ``match``; waits (bounded) until ``want`` of them are searchable."""
    query = urllib.parse.urlencode({"match[]": match})
    deadline = time.monotonic() + 15
    while True:
        get(vm + "/internal/force_flush")
        lines = get(f"{vm}/api/v1/export?{query}").splitlines()
        found = [json.loads(line) for line in lines if line.strip()]
        if len(found) >= want or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_push_and_read_back(
    vm: str, mon: algalon.Monitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "9001")
    with mon.job("pushed-job", labels={"team": "nlp"}) as job:
        time.sleep(0.3)
        job.count(tokens=1000)
    report = job.report
    report.push(vm)
    stamp = round(report.ended_at * 1000)

    info = export(vm, '{__name__="algalon_job_info",job_name="pushed-job"}')
    assert len(info) == 1
    labels = info[0]["metric"]
    assert labels["slurm_job_id"] == "9001" and labels["team"] == "nlp"
    assert labels["Hostname"] == mon.hostname
    assert info[0]["timestamps"] == [stamp]

    energy = export(vm, '{__name__="algalon_job_gpu_energy_joules_total"}')
    by_uuid = {
        e["metric"]["UUID"]: e
        for e in energy
        if e["metric"]["job_id"] == str(report.id)
    }
    assert set(by_uuid) == {H100, T4}
    assert by_uuid[H100]["values"] == [pytest.approx(report.gpus[0].energy_j)]
    assert by_uuid[H100]["metric"]["source"] == "counter"
    assert by_uuid[H100]["metric"]["Hostname"] == mon.hostname
    assert by_uuid[H100]["timestamps"] == [stamp]

    # And through PromQL, just after the job's end.
    query = urllib.parse.urlencode(
        {
            "query": f'sum(algalon_job_gpu_energy_joules_total{{job_id="{report.id}"}})',
            "time": f"{stamp / 1000 + 0.5:.3f}",
        }
    )
    deadline = time.monotonic() + 15
    while True:
        result = json.loads(get(f"{vm}/api/v1/query?{query}"))["data"]["result"]
        if result or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert float(result[0]["value"][1]) == pytest.approx(report.energy_j)


def test_failed_push_raises_and_keeps_the_report(vm: str, mon: algalon.Monitor) -> None:
    with mon.job("retry-later") as job:
        time.sleep(0.1)
    report = job.report
    dead = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(algalon.PushError) as err:
        report.push(dead, timeout=2, retries=1)
    assert time.monotonic() - started < 10
    message = str(err.value)
    assert "cannot connect" in message and "2 attempts" in message
    assert "to_json" in message
    # The report is intact: save it, read it back, push it.
    saved = report.to_json()
    algalon.Report.from_json(saved).push(vm)
    assert export(vm, '{__name__="algalon_job_info",job_name="retry-later"}')


def test_http_errors_are_push_errors(vm: str, mon: algalon.Monitor) -> None:
    with mon.job("rejected") as job:
        pass
    with pytest.raises(algalon.PushError, match=r"HTTP 4\d\d"):
        job.report.push(vm + "/api/v1/import/nonsense", retries=3)
    with pytest.raises(algalon.PushError, match="http"):
        job.report.push("vm-host:8428")


def test_an_interrupted_job_is_pushed_marked(vm: str, mon: algalon.Monitor) -> None:
    job = mon.job("pushed-ctrl-c")
    with pytest.raises(KeyboardInterrupt), job:
        time.sleep(0.1)
        raise KeyboardInterrupt
    job.report.push(vm)
    stamp = round(job.report.ended_at * 1000)
    # Job ids restart with each Monitor: find this push by its mark and time.
    marked = export(
        vm, '{__name__="algalon_job_interrupted",exception="KeyboardInterrupt"}'
    )
    assert len(marked) == 1
    assert marked[0]["metric"]["job_id"] == str(job.id)
    assert marked[0]["metric"]["Hostname"] == mon.hostname
    assert marked[0]["values"] == [1]
    assert marked[0]["timestamps"] == [stamp]
    # Its GPU series went too: the report up to the interruption.
    energy = export(
        vm, f'{{__name__="algalon_job_gpu_energy_joules_total",job_id="{job.id}"}}'
    )
    assert any(stamp in e["timestamps"] for e in energy), energy


H100X8 = REPO / "testing" / "scenarios" / "h100x8.json"


def pushed_run(
    vm: str, env: dict[str, str | None], gpus: str = "None"
) -> algalon.Report:
    """A job in a fresh process (its own Monitor, as a new run or rank has), pushed to ``vm``."""
    code = f"""
        import time, algalon
        mon = algalon.Monitor(interval=0.05, gpus={gpus})
        with mon.job("train") as job:
            time.sleep(0.3)
        job.report.push({vm!r})
        print(job.report.to_json())
    """
    return algalon.Report.from_json(run_python(code, env=env).stdout)


def test_two_runs_pushed_keep_their_own_energy(vm: str) -> None:
    # Before job ids were unique, both runs' first job was job_id="1" and
    # the later push overwrote the earlier one's series.
    first = pushed_run(vm, {})
    second = pushed_run(vm, {})
    assert first.id != second.id
    energy = export(
        vm, '{__name__="algalon_job_gpu_energy_joules_total",job_name="train"}', 4
    )
    got = {
        (e["metric"]["job_id"], e["metric"]["UUID"]): e["values"]
        for e in energy
        if e["metric"]["job_id"] in (first.id, second.id)
    }
    want = {
        (r.id, g.uuid): [pytest.approx(g.energy_j)]
        for r in (first, second)
        for g in r.gpus
    }
    # Found by job_name: the per-GPU series carry the job's name, not only its id.
    assert got == want


def test_two_torchrun_ranks_keep_all_their_gpu_series(vm: str) -> None:
    run = f"run-{free_port()}"
    reports = [
        pushed_run(
            vm,
            {
                "ALGALON_FAKE_NVML_SCENARIO": str(H100X8),
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
                "WORLD_SIZE": "2",
                "TORCHELASTIC_RUN_ID": run,
            },
            gpus="list(range(8))",
        )
        for rank in (0, 1)
    ]
    assert [len(r.gpus) for r in reports] == [8, 8]
    for name in (
        "algalon_job_gpu_energy_joules_total",
        "algalon_job_gpu_utilization_ratio",
    ):
        series = export(vm, f'{{__name__="{name}",torchelastic_run_id="{run}"}}', 16)
        keys = {(s["metric"]["rank"], s["metric"]["gpu"]) for s in series}
        assert len(series) == 16 and len(keys) == 16, series
        assert {s["metric"]["local_rank"] for s in series} == {"0", "1"}
    durations = export(
        vm,
        f'{{__name__="algalon_job_duration_seconds",torchelastic_run_id="{run}"}}',
        2,
    )
    by_rank = {d["metric"]["rank"]: d["values"] for d in durations}
    assert by_rank == {
        str(i): [pytest.approx(r.duration_s)] for i, r in enumerate(reports)
    }
