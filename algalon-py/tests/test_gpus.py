"""algalon.gpus(), GPU selection (CUDA_VISIBLE_DEVICES, gpus=[...]) and NVML errors."""

from __future__ import annotations

import json
import time
import urllib.request
import warnings

import algalon
import pytest
from conftest import H100, MIB, REPO, T4, run_python


def test_gpus_reports_the_scenario() -> None:
    h100, t4 = algalon.gpus()
    assert (h100.cuda_index, h100.nvml_index, h100.uuid) == (0, 0, H100)
    assert (t4.cuda_index, t4.nvml_index, t4.uuid) == (1, 1, T4)
    assert h100.name == "NVIDIA H100 80GB HBM3" and t4.name == "Tesla T4"
    assert h100.pci_bus_id == "00000000:18:00.0"
    assert h100.up and t4.up
    assert h100.power_w == pytest.approx(312.5) and t4.power_w == pytest.approx(27.25)
    assert h100.utilization == 85 and t4.utilization == 10
    assert h100.temperature_c == 63 and t4.temperature_c == 41
    assert h100.memory_total_bytes == 81559 * MIB
    assert h100.memory_used_bytes == 40000 * MIB
    # The counter: 1 000 000 mJ at t = 0, then 312.5 W.
    assert h100.energy_j is not None and h100.energy_j >= 1000.0
    # Missing is not zero: the T4 has no energy counter.
    assert t4.energy_j is None
    assert h100.pids == [4242] and t4.pids == []
    assert "cuda:0" in repr(h100) and H100 in repr(h100)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", [T4]),
        ("1,0", [T4, H100]),
        (T4, [T4]),
        ("GPU-aaaa", [T4]),
        ("aaaaaaaa", [T4]),
        (f"{H100},GPU-aaaa", [H100, T4]),
        ("0,-1,1", [H100]),  # CUDA stops at the first invalid entry
    ],
)
def test_cuda_visible_devices_forms(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: list[str]
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    seen = algalon.gpus()
    assert [g.uuid for g in seen] == expected
    assert [g.cuda_index for g in seen] == list(range(len(expected)))
    mon = algalon.Monitor(interval=0.05)
    try:
        assert [g.uuid for g in mon.gpus] == expected
        with mon.job("visible") as job:
            pass
        report = job.report
        assert [g.uuid for g in report.gpus] == expected
        assert [g.cuda_index for g in report.gpus] == list(range(len(expected)))
        nvml = {H100: 0, T4: 1}
        assert [g.nvml_index for g in report.gpus] == [nvml[u] for u in expected]
    finally:
        mon.close()


@pytest.mark.parametrize("value", ["5", "0,7", "GPU-ffff", "7,MIG-0c7f0b3e"])
def test_a_visible_device_that_matches_nothing_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    for call in (algalon.gpus, algalon.Monitor):
        with pytest.raises(algalon.DeviceNotFoundError) as err:
            call()
        message = str(err.value)
        assert "CUDA_VISIBLE_DEVICES" in message and "\n" not in message
        assert H100 in message  # names what does exist
    assert algalon.GpuNotFoundError is algalon.DeviceNotFoundError


def test_no_visible_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert algalon.gpus() == []
    with pytest.raises(algalon.DeviceNotFoundError, match="hides every GPU"):
        algalon.Monitor()
    # ...but UUIDs can still be measured explicitly.
    mon = algalon.Monitor(gpus=[T4])
    try:
        (gpu,) = mon.gpus
        assert (gpu.uuid, gpu.cuda_index, gpu.nvml_index) == (T4, None, 1)
    finally:
        mon.close()


def test_gpus_argument_uses_cuda_indices_and_uuids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    mon = algalon.Monitor(interval=0.05, gpus=[1])
    try:
        (gpu,) = mon.gpus
        assert (gpu.uuid, gpu.cuda_index, gpu.nvml_index) == (H100, 1, 0)
    finally:
        mon.close()
    mon = algalon.Monitor(interval=0.05, gpus=["GPU-aaaa", 1])
    try:
        assert [g.uuid for g in mon.gpus] == [T4, H100]
    finally:
        mon.close()
    with pytest.raises(algalon.DeviceNotFoundError, match="CUDA index 2"):
        algalon.Monitor(gpus=[2])
    with pytest.raises(algalon.DeviceNotFoundError, match="as int"):
        algalon.Monitor(gpus=["0"])
    with pytest.raises(TypeError):
        algalon.Monitor(gpus=[1.5])  # type: ignore[list-item]


def test_missing_library_is_nvml_not_found() -> None:
    for call in (
        lambda: algalon.Monitor(nvml_lib="/nonexistent/libnvidia-ml.so.1"),
        lambda: algalon.gpus(nvml_lib="/nonexistent/libnvidia-ml.so.1"),
    ):
        with pytest.raises(algalon.NvmlNotFoundError) as err:
            call()
        assert isinstance(err.value, algalon.NvmlUnavailableError)
        assert isinstance(err.value, algalon.AlgalonError)
        message = str(err.value)
        assert "\n" not in message
        assert "/nonexistent/libnvidia-ml.so.1" in message
        assert "ALGALON_NVML_LIB" in message


def test_missing_library_from_the_environment() -> None:
    run_python(
        """
        import algalon
        try:
            algalon.Monitor()
        except algalon.NvmlNotFoundError as e:
            assert "\\n" not in str(e) and "/nope/libnvidia-ml.so.1" in str(e), e
        else:
            raise SystemExit("no error")
        """,
        env={"ALGALON_NVML_LIB": "/nope/libnvidia-ml.so.1"},
    )


def test_nvml_that_fails_to_initialise() -> None:
    code = """
        import algalon
        try:
            algalon.Monitor()
        except algalon.NvmlInitError as e:
            assert isinstance(e, algalon.NvmlUnavailableError)
            assert "\\n" not in str(e), e
            print("ok", e)
        else:
            raise SystemExit("no error")
    """
    proc = run_python(code, env={"ALGALON_FAKE_NVML_SCENARIO": None})
    assert "failed to initialise" in proc.stdout


@pytest.mark.parametrize(
    "interval", [0, -1, float("nan"), 1e-6, float("inf"), 86400.5, 1e19, 1e20]
)
def test_bad_interval_is_a_config_error(interval: float) -> None:
    # Huge intervals once overflowed: a PanicException (not an Exception) for
    # 1e20, a panicking sampler thread for 1e19.
    with pytest.raises(algalon.ConfigError, match="sampling interval"):
        algalon.Monitor(interval=interval)


def test_no_warning_without_mig() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        algalon.Monitor(interval=0.05).close()


def test_cuda_stops_at_an_empty_entry_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # CUDA reads "1,,2" as GPU 1 alone: the empty entry ends the list.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,,2")
    assert [g.uuid for g in algalon.gpus()] == [T4]
    with pytest.warns(UserWarning, match=r'entry 2 \(""\).*CUDA ignores it'):
        mon = algalon.Monitor(interval=0.05)
    try:
        assert [g.uuid for g in mon.gpus] == [T4]
    finally:
        mon.close()


def test_gpus_takes_cuda_names_and_single_values() -> None:
    for gpus in (["cuda:1"], ["CUDA:1"], 1, "cuda:1", T4, [f"{T4[:8]}"]):
        mon = algalon.Monitor(interval=0.05, gpus=gpus)
        try:
            assert [g.uuid for g in mon.gpus] == [T4], gpus
        finally:
            mon.close()
    # A bare number in a str is refused (NVML or CUDA index?), in one clear line.
    for gpus in ("0", ["0"]):
        with pytest.raises(algalon.DeviceNotFoundError, match="as int") as err:
            algalon.Monitor(gpus=gpus)
        assert "cuda:0" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(
        algalon.ConfigError, match='gpus entry "nonsense".*not a device'
    ):
        algalon.Monitor(gpus=["nonsense"])
    with pytest.raises(algalon.ConfigError, match="0 or more"):
        algalon.Monitor(gpus=[-1])
    with pytest.raises(TypeError, match="CUDA index"):
        algalon.Monitor(gpus=True)  # type: ignore[arg-type]


def test_an_empty_gpu_list_says_what_to_do() -> None:
    with pytest.raises(algalon.DeviceNotFoundError) as err:
        algalon.Monitor(gpus=[])
    message = str(err.value)
    assert "empty GPU list" in message and "cuda:0" in message
    # It does not claim the host has no GPU.
    assert "NVML lists none" not in message and H100 in message


def test_under_torchrun_a_monitor_measures_its_local_rank_gpu() -> None:
    code = """
        import json, os, algalon
        mon = algalon.Monitor(interval=0.05)
        with mon.job("rank-job") as job:
            pass
        print(json.dumps([[g.cuda_index, g.nvml_index] for g in job.report.gpus]))
    """
    scenario = str(REPO / "testing" / "scenarios" / "h100x8.json")

    def measured(env: dict[str, str | None]) -> list[list[int]]:
        env = {"ALGALON_FAKE_NVML_SCENARIO": scenario, **env}
        return json.loads(run_python(code, env=env).stdout)  # type: ignore[no-any-return]

    # Every GPU visible: rank 3 measures cuda:3 only, not all eight.
    assert measured({"LOCAL_RANK": "3"}) == [[3, 3]]
    assert measured({"LOCAL_RANK": "1", "CUDA_VISIBLE_DEVICES": "7,6,5"}) == [[1, 6]]
    # One GPU per rank through CUDA_VISIBLE_DEVICES: that one.
    assert measured({"LOCAL_RANK": "1", "CUDA_VISIBLE_DEVICES": "5"}) == [[0, 5]]
    # Not under torchrun: every visible GPU.
    assert len(measured({})) == 8
    # An explicit choice wins over the rank.
    code = code.replace("interval=0.05", "interval=0.05, gpus=[0, 1]")
    assert measured({"LOCAL_RANK": "1"}) == [[0, 0], [1, 1]]


def test_missing_ok_runs_without_a_driver() -> None:
    missing = "/nonexistent/libnvidia-ml.so.1"
    with pytest.warns(UserWarning, match=r"measures no GPU .*missing_ok") as caught:
        mon = algalon.Monitor(nvml_lib=missing, missing_ok=True)
    assert len(caught) == 1
    try:
        assert mon.gpus == [] and mon.no_gpu_reason is not None
        assert missing in mon.no_gpu_reason
        assert "measuring no GPU" in repr(mon)
        with mon.job("on-a-laptop", labels={"team": "nlp"}) as job:
            time.sleep(0.1)
            job.count(samples=4)
        report = job.report
        assert report.duration_s >= 0.09 and report.gpus == []
        assert report.energy_j is None and report.energy_per_sample is None
        (note,) = report.notes
        assert note.startswith("no GPU was measured (") and missing in note
        assert "note: no GPU was measured" in str(report)
        # Served and pushed as usual: the job's duration, no GPU series.
        server = mon.serve(port=0)
        with urllib.request.urlopen(server.url, timeout=5) as r:
            body = r.read().decode()
        assert "algalon_job_duration_seconds{" in body and "algalon_build_info" in body
        assert "algalon_gpu_up" not in body and "energy" not in body
    finally:
        mon.close()
    # Without missing_ok the missing driver is still an error; so is a GPU
    # asked for by name that this host does not have.
    with pytest.raises(algalon.NvmlNotFoundError):
        algalon.Monitor(nvml_lib=missing)
    with pytest.raises(algalon.DeviceNotFoundError):
        algalon.Monitor(gpus=[5], missing_ok=True)


def test_missing_ok_with_no_visible_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.warns(UserWarning, match="measures no GPU"):
        mon = algalon.Monitor(missing_ok=True)
    with mon, mon.job("cpu-only") as job:
        pass
    assert job.report.gpus == [] and job.report.notes
