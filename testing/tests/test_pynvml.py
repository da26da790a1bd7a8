"""nvidia-ml-py (pynvml) against the fake libnvidia-ml.so.1.

The library must already be built (``make fake-nvml``, or see
testing/README.md); it is looked up in ``$ALGALON_FAKE_NVML_DIR`` (default
``<repo>/target/fake-nvml``). Each case runs pynvml in a fresh subprocess with
``LD_LIBRARY_PATH`` pointing there, a scenario, and a frozen clock, and
compares what pynvml reports with values computed here, independently, from
the same scenario JSON.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest
from fakenvml import (
    MIB,
    SCENARIOS,
    at,
    energy_mj,
    gpus,
    integral,
    load,
    memory,
    pct,
    rnd,
    run,
    running,
)


def test_identity_of_every_gpu() -> None:
    out, _ = run(
        """
        out["driver"] = N.nvmlSystemGetDriverVersion()
        out["nvml"] = N.nvmlSystemGetNVMLVersion()
        out["cuda"] = N.nvmlSystemGetCudaDriverVersion_v2()
        out["gpus"] = []
        for i in range(N.nvmlDeviceGetCount()):
            h = N.nvmlDeviceGetHandleByIndex(i)
            pci = N.nvmlDeviceGetPciInfo(h)
            out["gpus"].append({
                "name": N.nvmlDeviceGetName(h),
                "uuid": N.nvmlDeviceGetUUID(h),
                "bus_id": pci.busId,
                "bus_id_legacy": pci.busIdLegacy,
                "pci_device_id": pci.pciDeviceId,
                "index": N.nvmlDeviceGetIndex(h),
                "minor": N.nvmlDeviceGetMinorNumber(h),
                "serial": N.nvmlDeviceGetSerial(h),
                "by_uuid": N.nvmlDeviceGetIndex(N.nvmlDeviceGetHandleByUUID(N.nvmlDeviceGetUUID(h))),
                "by_pci": N.nvmlDeviceGetIndex(N.nvmlDeviceGetHandleByPciBusId(pci.busId)),
            })
        """,
        "h100x8",
    )
    s = load("h100x8")
    assert out["driver"] == s["driver_version"] == "550.54.15"
    assert out["nvml"] == s["nvml_version"]
    assert out["cuda"] == s["cuda_driver_version"] == 12040
    assert len(out["gpus"]) == 8
    for i, (got, want) in enumerate(zip(out["gpus"], gpus(s))):
        assert got["name"] == want["name"] == "NVIDIA H100 80GB HBM3"
        assert got["uuid"] == want["uuid"]
        assert got["bus_id"] == want["pci_bus_id"]
        assert got["bus_id_legacy"] == want["pci_bus_id"][4:]
        assert got["pci_device_id"] == int(want["pci_device_id"], 16)
        assert got["index"] == got["by_uuid"] == got["by_pci"] == i
        assert got["minor"] == want["minor_number"]
        assert got["serial"] == want["serial"]


@pytest.mark.parametrize("t", [0.0, 33.3, 75.5])
def test_memory_v1_and_v2(t: float) -> None:
    out, _ = run(
        """
        out["v1"], out["v2"] = [], []
        for i in range(N.nvmlDeviceGetCount()):
            h = N.nvmlDeviceGetHandleByIndex(i)
            m = N.nvmlDeviceGetMemoryInfo(h)
            out["v1"].append([m.total, m.used, m.free])
            m = N.nvmlDeviceGetMemoryInfo(h, version=N.nvmlMemory_v2)
            out["v2"].append([m.total, m.reserved, m.used, m.free])
        try:
            m = N.nvmlDeviceGetMemoryInfo(N.nvmlDeviceGetHandleByIndex(0), version=0x01000020)
        except N.NVMLError as e:
            out["bad_version"] = e.value
        """,
        "h100x8",
        t,
    )
    for i, gpu in enumerate(gpus(load("h100x8"))):
        want = memory(gpu, t)
        assert out["v1"][i] == [want["total"], want["used_v1"], want["free_v1"]]
        assert out["v2"][i] == [
            want["total"],
            want["reserved"],
            want["used"],
            want["free"],
        ]
        assert want["reserved"] == 549 * MIB
    assert out["bad_version"] == 25  # NVML_ERROR_ARGUMENT_VERSION_MISMATCH


@pytest.mark.parametrize("t", [7.25, 75.5])
def test_utilization_temperature_power_clocks(t: float) -> None:
    out, _ = run(
        """
        out["gpus"] = []
        for i in range(N.nvmlDeviceGetCount()):
            h = N.nvmlDeviceGetHandleByIndex(i)
            u = N.nvmlDeviceGetUtilizationRates(h)
            out["gpus"].append({
                "util": [u.gpu, u.memory],
                "temp": N.nvmlDeviceGetTemperature(h, N.NVML_TEMPERATURE_GPU),
                "power_mw": N.nvmlDeviceGetPowerUsage(h),
                "limit_mw": N.nvmlDeviceGetEnforcedPowerLimit(h),
                "sm": N.nvmlDeviceGetClockInfo(h, N.NVML_CLOCK_SM),
                "graphics": N.nvmlDeviceGetClockInfo(h, N.NVML_CLOCK_GRAPHICS),
                "mem": N.nvmlDeviceGetClockInfo(h, N.NVML_CLOCK_MEM),
                "max_sm": N.nvmlDeviceGetMaxClockInfo(h, N.NVML_CLOCK_SM),
                "pstate": N.nvmlDeviceGetPerformanceState(h),
                "tx": N.nvmlDeviceGetPcieThroughput(h, N.NVML_PCIE_UTIL_TX_BYTES),
            })
        """,
        "h100x8",
        t,
    )
    for got, want in zip(out["gpus"], gpus(load("h100x8"))):
        assert got["util"] == [
            pct(want["utilization"]["gpu"], t),
            pct(want["utilization"]["memory"], t),
        ]
        assert got["temp"] == rnd(at(want["temperature_c"], t))
        assert got["power_mw"] == rnd(at(want["power_w"], t) * 1000.0)
        assert got["limit_mw"] == 700_000
        assert got["sm"] == got["graphics"] == rnd(at(want["clocks"]["sm_mhz"], t))
        assert got["mem"] == 2619
        assert got["max_sm"] == 1980
        assert got["pstate"] == 0
        assert got["tx"] == rnd(at(want["pcie"]["tx_kib_s"], t))
    # Out of phase: not every GPU reads the same utilization.
    assert len({tuple(g["util"]) for g in out["gpus"]}) > 1


@pytest.mark.parametrize("t", [0.0, 12.0, 75.5])
def test_energy_counter_is_the_integral_of_power(t: float) -> None:
    out, _ = run(
        """
        out["mj"] = [N.nvmlDeviceGetTotalEnergyConsumption(N.nvmlDeviceGetHandleByIndex(i))
                     for i in range(N.nvmlDeviceGetCount())]
        """,
        "h100x8",
        t,
    )
    want = [energy_mj(g, t) for g in gpus(load("h100x8"))]
    assert out["mj"] == want
    if t == 0.0:
        assert want[0] == 123456789


def test_energy_counter_not_supported_without_counter() -> None:
    out, _ = run(
        """
        try:
            N.nvmlDeviceGetTotalEnergyConsumption(N.nvmlDeviceGetHandleByIndex(2))
        except N.NVMLError_NotSupported:
            out["raised"] = True
        """,
        "mixed",
    )
    assert out == {"raised": True}


@pytest.mark.parametrize("t", [5.0, 20.0, 75.5])
def test_processes_two_call_protocol(t: float) -> None:
    out, _ = run(
        """
        fn = N._nvmlGetFunctionPointer("nvmlDeviceGetComputeRunningProcesses_v3")
        out["procs"], out["sizes"] = [], []
        for i in range(N.nvmlDeviceGetCount()):
            h = N.nvmlDeviceGetHandleByIndex(i)
            count = ctypes.c_uint(0)
            ret = fn(h, ctypes.byref(count), None)
            out["sizes"].append([ret, count.value])
            out["procs"].append([[p.pid, p.usedGpuMemory]
                                 for p in N.nvmlDeviceGetComputeRunningProcesses(h)])
        out["graphics"] = len(N.nvmlDeviceGetGraphicsRunningProcesses(N.nvmlDeviceGetHandleByIndex(0)))
        out["name"] = N.nvmlSystemGetProcessName(7001)
        """,
        "h100x8",
        t,
    )
    for i, gpu in enumerate(gpus(load("h100x8"))):
        want = running(gpu, t, ("compute", "compute+graphics"))
        assert out["procs"][i] == [
            [p["pid"], rnd(at(p["used_mib"], t)) * MIB] for p in want
        ]
        assert out["sizes"][i] == [
            7,
            len(want),
        ]  # NVML_ERROR_INSUFFICIENT_SIZE + needed count
    tritonserver = [p[0] for p in out["procs"][2]].count(7001)
    assert tritonserver == (1 if 10 <= t < 40 else 0)
    late_job = [p[0] for p in out["procs"][5]].count(8123)
    assert late_job == (1 if t >= 50 else 0)
    assert out["graphics"] == 0
    assert out["name"] == "tritonserver"


def test_process_utilization_samples() -> None:
    out, _ = run(
        """
        h = N.nvmlDeviceGetHandleByIndex(2)
        samples = N.nvmlDeviceGetProcessUtilization(h, 0)
        out["samples"] = [[s.pid, s.smUtil, s.memUtil] for s in samples]
        try:
            N.nvmlDeviceGetProcessUtilization(h, samples[0].timeStamp)
        except N.NVMLError_NotFound:
            out["nothing_newer"] = True
        """,
        "h100x8",
        20.0,
    )
    gpu = gpus(load("h100x8"))[2]
    want = [
        [p["pid"], pct(p["sm_util"], 20.0), pct(p["mem_util"], 20.0)]
        for p in running(gpu, 20.0, ("compute",))
    ]
    assert out["samples"] == want
    assert [s[0] for s in want] == [4244, 7001]
    assert out["nothing_newer"] is True


def test_not_supported_readings_raise() -> None:
    out, _ = run(
        """
        h = N.nvmlDeviceGetHandleByIndex(0)
        for name, call in [
            ("fan", lambda: N.nvmlDeviceGetFanSpeed(h)),
            ("retired", lambda: N.nvmlDeviceGetRetiredPages(h, 0)),
        ]:
            try:
                call()
                out[name] = "no error"
            except N.NVMLError_NotSupported as e:
                out[name] = str(e)
        out["fans"] = N.nvmlDeviceGetNumFans(h)
        """,
        "h100x8",
    )
    assert out == {"fan": "Not Supported", "retired": "Not Supported", "fans": 0}


def test_unsupported_list_and_field_values_on_t4() -> None:
    out, _ = run(
        """
        t4 = N.nvmlDeviceGetHandleByIndex(2)
        try:
            N.nvmlDeviceGetEncoderUtilization(t4)
        except N.NVMLError_NotSupported:
            out["encoder"] = "not supported"
        out["decoder"] = N.nvmlDeviceGetDecoderUtilization(t4)
        v = N.nvmlDeviceGetFieldValues(t4, [N.NVML_FI_DEV_MEMORY_TEMP, N.NVML_FI_DEV_RETIRED_SBE])
        out["fields"] = [[x.nvmlReturn, x.valueType, x.value.ullVal] for x in v]
        out["retired"] = len(N.nvmlDeviceGetRetiredPages(t4, 0))
        """,
        "mixed",
    )
    assert out["encoder"] == "not supported"
    assert out["decoder"] == [0, 167000]
    assert out["fields"][0][0] == 3  # NVML_ERROR_NOT_SUPPORTED in the entry
    t4 = gpus(load("mixed"))[2]
    assert out["fields"][1] == [0, 3, t4["retired_pages"]["sbe"]]
    assert out["retired"] == t4["retired_pages"]["sbe"] == 2


@pytest.mark.parametrize("t", [3.0, 61.7])
def test_field_values_memory_temperature(t: float) -> None:
    out, _ = run(
        """
        out["fields"] = []
        for i in range(N.nvmlDeviceGetCount()):
            v = N.nvmlDeviceGetFieldValues(
                N.nvmlDeviceGetHandleByIndex(i),
                [N.NVML_FI_DEV_MEMORY_TEMP, N.NVML_FI_DEV_POWER_INSTANT, 9999],
            )
            out["fields"].append([[x.nvmlReturn, x.valueType, x.value.uiVal, x.timestamp] for x in v])
        """,
        "h100x8",
        t,
    )
    for got, gpu in zip(out["fields"], gpus(load("h100x8"))):
        mem_temp, power, unknown = got
        assert mem_temp[:3] == [0, 1, rnd(at(gpu["memory_temperature_c"], t))]
        assert power[:3] == [0, 1, rnd(at(gpu["power_w"], t) * 1000.0)]
        assert unknown[0] == 3
        assert mem_temp[3] > 1_600_000_000_000_000  # µs since the epoch


def test_gpu_lost_after_lost_after_s() -> None:
    out, _ = run(
        """
        h0 = N.nvmlDeviceGetHandleByIndex(0)
        out["before"] = N.nvmlDeviceGetPowerUsage(h0)
        assert N.nvmlLib.algalon_fake_nvml_set_time(ctypes.c_double(2.5)) == 0
        for name, call in [
            ("power", lambda: N.nvmlDeviceGetPowerUsage(h0)),
            ("handle", lambda: N.nvmlDeviceGetHandleByIndex(0)),
        ]:
            try:
                call()
                out[name] = "no error"
            except N.NVMLError_GpuIsLost as e:
                out[name] = str(e)
        out["count"] = N.nvmlDeviceGetCount()
        out["healthy"] = N.nvmlDeviceGetPowerUsage(N.nvmlDeviceGetHandleByIndex(3)) > 0
        """,
        "faulty",
        1.0,
    )
    gpu0 = gpus(load("faulty"))[0]
    assert gpu0["lost_after_s"] == 2.0
    assert out["before"] == rnd(at(gpu0["power_w"], 1.0) * 1000.0)
    assert out["power"] == out["handle"] == "GPU is lost"
    assert out["count"] == 4
    assert out["healthy"] is True


def test_injected_faults_and_latency() -> None:
    out, _ = run(
        """
        h1, h2 = N.nvmlDeviceGetHandleByIndex(1), N.nvmlDeviceGetHandleByIndex(2)
        try:
            N.nvmlDeviceGetPowerUsage(h1)
        except N.NVMLError_NoPermission:
            out["power"] = "no permission"
        try:
            N.nvmlDeviceGetTemperature(h1, N.NVML_TEMPERATURE_GPU)
        except N.NVMLError_Unknown:
            out["temp"] = "unknown"
        begin = time.monotonic()
        N.nvmlDeviceGetUtilizationRates(h2)
        out["slow_s"] = time.monotonic() - begin
        begin = time.monotonic()
        N.nvmlDeviceGetUtilizationRates(h1)
        out["fast_s"] = time.monotonic() - begin
        """,
        "faulty",
    )
    assert out["power"] == "no permission"
    assert out["temp"] == "unknown"
    assert out["slow_s"] >= 0.3
    assert out["fast_s"] < 0.3


def test_xid_event_via_event_set_wait() -> None:
    out, _ = run(
        """
        es = N.nvmlEventSetCreate()
        for i in range(N.nvmlDeviceGetCount()):
            N.nvmlDeviceRegisterEvents(N.nvmlDeviceGetHandleByIndex(i),
                                       N.nvmlEventTypeXidCriticalError, es)
        d = N.nvmlEventSetWait(es, 100)
        out["event"] = [N.nvmlDeviceGetIndex(d.device), d.eventType, d.eventData]
        try:
            N.nvmlEventSetWait(es, 10)
        except N.NVMLError_Timeout:
            out["then"] = "timeout"
        N.nvmlEventSetFree(es)
        """,
        "h100x8",
        75.0,
    )
    xid = gpus(load("h100x8"))[3]["xid_events"][0]
    assert xid["at_s"] == 60
    assert out["event"] == [3, 8, xid["xid"]]  # nvmlEventTypeXidCriticalError = 8
    assert out["then"] == "timeout"


def test_xid_not_delivered_before_its_time() -> None:
    out, _ = run(
        """
        es = N.nvmlEventSetCreate()
        N.nvmlDeviceRegisterEvents(N.nvmlDeviceGetHandleByIndex(3),
                                   N.nvmlEventTypeXidCriticalError, es)
        try:
            N.nvmlEventSetWait(es, 50)
        except N.NVMLError_Timeout:
            out["wait"] = "timeout"
        """,
        "h100x8",
        59.0,
    )
    assert out == {"wait": "timeout"}


def test_mig_devices() -> None:
    out, _ = run(
        """
        a100 = N.nvmlDeviceGetHandleByIndex(0)
        out["mode"] = [num(x) for x in N.nvmlDeviceGetMigMode(a100)]
        out["max"] = num(N.nvmlDeviceGetMaxMigDeviceCount(a100))
        out["migs"] = []
        for i in range(2):
            m = N.nvmlDeviceGetMigDeviceHandleByIndex(a100, i)
            mem = N.nvmlDeviceGetMemoryInfo(m)
            out["migs"].append([N.nvmlDeviceGetName(m), N.nvmlDeviceGetUUID(m),
                                num(N.nvmlDeviceGetGpuInstanceId(m)), mem.total, mem.used,
                                num(N.nvmlDeviceIsMigDeviceHandle(m))])
        """,
        "mixed",
        10.0,
    )
    a100 = gpus(load("mixed"))[0]
    assert out["mode"] == [1, 1]
    assert out["max"] == 7
    for got, inst in zip(out["migs"], a100["mig"]["instances"]):
        assert got == [
            f"{a100['name']} MIG {inst['profile']}",
            inst["uuid"],
            inst["gpu_instance_id"],
            inst["memory_total_mib"] * MIB,
            rnd(at(inst["memory_used_mib"], 10.0)) * MIB,
            1,
        ]


def test_scenario_switch_in_one_process() -> None:
    out, _ = run(
        f"""
        import os
        N.nvmlInit()
        out["first"] = N.nvmlDeviceGetCount()
        N.nvmlShutdown()
        os.environ["ALGALON_FAKE_NVML_SCENARIO"] = {str(SCENARIOS / "mixed.json")!r}
        N.nvmlInit()
        out["second"] = N.nvmlDeviceGetCount()
        out["name"] = N.nvmlDeviceGetName(N.nvmlDeviceGetHandleByIndex(1))
        N.nvmlShutdown()
        """,
        "h100x8",
        init=False,
    )
    assert out == {"first": 8, "second": 4, "name": "NVIDIA L4"}


def test_missing_scenario_env_is_driver_not_loaded() -> None:
    out, stderr = run(
        """
        try:
            N.nvmlInit()
        except N.NVMLError_DriverNotLoaded as e:
            out["error"] = str(e)
        """,
        None,
        init=False,
    )
    assert out == {"error": "Driver Not Loaded"}
    assert (
        "fake-nvml: ALGALON_FAKE_NVML_SCENARIO is not set; point it at a scenario JSON "
        "(see testing/README.md)"
    ) in stderr


def test_malformed_scenario_names_file_line_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{\n  "driver_version": "550.54.15",\n  "gpus": [ {"nmae": 1} ]\n}\n'
    )
    out, stderr = run(
        """
        try:
            N.nvmlInit()
        except N.NVMLError_Unknown:
            out["error"] = "unknown"
        """,
        bad,
        init=False,
    )
    assert out == {"error": "unknown"}
    assert f"fake-nvml: {bad}:3:" in stderr
    assert "unknown field `nmae`" in stderr


def test_error_strings() -> None:
    out, _ = run(
        """
        fn = N._nvmlGetFunctionPointer("nvmlErrorString")
        fn.restype = ctypes.c_char_p
        out["strings"] = {c: fn(c).decode() for c in (3, 7, 15, 25, 999)}
        """,
        "h100x8",
    )
    assert out["strings"] == {
        "3": "Not Supported",
        "7": "Insufficient Size",
        "15": "GPU is lost",
        "25": "Argument version mismatch",
        "999": "Unknown Error",
    }


def test_gpm_metrics() -> None:
    out, _ = run(
        """
        h = N.nvmlDeviceGetHandleByIndex(1)
        out["supported"] = N.nvmlGpmQueryDeviceSupport(h).isSupportedDevice
        s1, s2 = N.nvmlGpmSampleAlloc(), N.nvmlGpmSampleAlloc()
        N.nvmlGpmSampleGet(h, s1)
        assert N.nvmlLib.algalon_fake_nvml_set_time(ctypes.c_double(14.0)) == 0
        N.nvmlGpmSampleGet(h, s2)
        req = N.c_nvmlGpmMetricsGet_t()
        req.version = N.NVML_GPM_METRICS_GET_VERSION
        req.numMetrics = 2
        req.sample1, req.sample2 = s1, s2
        req.metrics[0].metricId = N.NVML_GPM_METRIC_SM_OCCUPANCY
        req.metrics[1].metricId = N.NVML_GPM_METRIC_NVDEC_0_UTIL
        N.nvmlGpmMetricsGet(req)
        out["metrics"] = [[m.nvmlReturn, m.value] for m in req.metrics[:2]]
        N.nvmlGpmSampleFree(s1)
        N.nvmlGpmSampleFree(s2)
        """,
        "h100x8",
        10.0,
    )
    occupancy = gpus(load("h100x8"))[1]["gpm"]["sm_occupancy"]
    mean = (integral(occupancy, 14.0) - integral(occupancy, 10.0)) / 4.0
    assert out["supported"] == 1
    assert out["metrics"][0][0] == 0
    assert out["metrics"][0][1] == pytest.approx(mean, abs=1e-9)
    assert out["metrics"][1][0] == 3  # no NVDEC figure in the scenario


PEER_TOOLS = {
    "gpustat": """
        import gpustat
        query = gpustat.new_query()
        out["names"] = [g.name for g in query.gpus]
        out["power"] = [g.power_draw for g in query.gpus]
        """,
    "nvitop": """
        from nvitop import Device
        out["names"] = [d.name() for d in Device.all()]
        out["power"] = [d.power_usage() // 1000 for d in Device.all()]
        """,
}


@pytest.mark.parametrize("tool", sorted(PEER_TOOLS))
def test_peer_tools_run_against_the_fake(tool: str) -> None:
    # CI installs the peers (scripts/install-deps.sh) and sets this, so a
    # missing peer fails there instead of skipping.
    if os.environ.get("ALGALON_REQUIRE_PEER_TOOLS"):
        importlib.import_module(tool)
    else:
        pytest.importorskip(tool)
    out, _ = run(PEER_TOOLS[tool], "h100x8", 10.0, init=False)
    h100 = gpus(load("h100x8"))
    assert out["names"] == [g["name"] for g in h100]
    assert out["power"] == [rnd(at(g["power_w"], 10.0) * 1000.0) // 1000 for g in h100]
