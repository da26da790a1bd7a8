"""MIG on the fake NVML, read by independent clients.

nvidia-ml-py (pynvml), nvitop and gpustat run against
``testing/scenarios/h100-mig.json``; what they report is compared with the
MIG state computed here from the JSON (the schedule, NVML's index order) and
with the H100 80GB profile table as ``nvidia-smi mig -lgip`` prints it.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fakenvml import LIB_DIR, MIB, SCENARIOS, at, gpus, integral, load, rnd, run

SCENARIO = "h100-mig"

# nvidia-smi mig -lgip on an H100 80GB HBM3: profile ID, SMs, memory (MiB),
# and the NVML_GPU_INSTANCE_PROFILE_* index the ID belongs to.
H100_PROFILES: dict[str, dict[str, int]] = {
    "1g.10gb": {"id": 19, "index": 0, "slices": 1, "sms": 16, "mib": 9984},
    "1g.10gb+me": {"id": 20, "index": 7, "slices": 1, "sms": 16, "mib": 9984},
    "1g.20gb": {"id": 15, "index": 9, "slices": 1, "sms": 26, "mib": 20096},
    "2g.20gb": {"id": 14, "index": 1, "slices": 2, "sms": 32, "mib": 20096},
    "3g.40gb": {"id": 9, "index": 2, "slices": 3, "sms": 60, "mib": 40448},
    "4g.40gb": {"id": 5, "index": 3, "slices": 4, "sms": 64, "mib": 40448},
    "7g.80gb": {"id": 0, "index": 4, "slices": 7, "sms": 132, "mib": 81152},
}


def mig_state(gpu: dict[str, Any], t: float) -> dict[str, Any] | None:
    """The GPU's MIG state at `t`: the last schedule entry due, else the base."""
    mig = gpu.get("mig")
    if mig is None:
        return None
    state = mig
    for change in mig.get("schedule", []):
        if change["at_s"] <= t:
            state = change
    instances = sorted(
        state.get("instances", []),
        key=lambda i: (i["gpu_instance_id"], i["compute_instance_id"]),
    )
    return {
        "enabled": state["enabled"],
        "pending": state.get("pending", state["enabled"]),
        "instances": instances,
    }


def alive(process: dict[str, Any], t: float) -> bool:
    end = process.get("end_s")
    return process.get("start_s", 0) <= t and (end is None or t < end)


def instances_at(gpu: dict[str, Any], t: float) -> list[dict[str, Any]]:
    """The MIG devices at `t`, in NVML index order (none while disabled)."""
    state = mig_state(gpu, t)
    if state is None or not state["enabled"]:
        return []
    return state["instances"]


def expected_migs(gpu: dict[str, Any], t: float) -> list[dict[str, Any]]:
    out = []
    for inst in instances_at(gpu, t):
        profile = H100_PROFILES[inst["profile"]]
        gi = inst["gpu_instance_id"]
        out.append(
            {
                "name": f"{gpu['name']} MIG {inst['profile']}",
                "uuid": inst["uuid"],
                "gi": gi,
                "ci": inst["compute_instance_id"],
                "total": profile["mib"] * MIB,
                "used": rnd(at(inst["memory_used_mib"], t)) * MIB,
                "pids": [
                    p["pid"]
                    for p in gpu["processes"]
                    if p.get("gpu_instance_id") == gi and alive(p, t)
                ],
            }
        )
    return out


READ_MIGS = """
def text(x):
    return x.decode() if isinstance(x, bytes) else x

def read_migs(h):
    migs = []
    for i in range(N.nvmlDeviceGetMaxMigDeviceCount(h)):
        try:
            m = N.nvmlDeviceGetMigDeviceHandleByIndex(h, i)
        except N.NVMLError_NotFound:
            break
        mem = N.nvmlDeviceGetMemoryInfo(m, version=N.nvmlMemory_v2)
        parent = N.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(m)
        migs.append({
            "name": N.nvmlDeviceGetName(m),
            "uuid": N.nvmlDeviceGetUUID(m),
            "gi": N.nvmlDeviceGetGpuInstanceId(m),
            "ci": N.nvmlDeviceGetComputeInstanceId(m),
            "total": mem.total,
            "used": mem.used,
            "pids": [p.pid for p in N.nvmlDeviceGetComputeRunningProcesses(m)],
            "parent": N.nvmlDeviceGetIndex(parent),
            "is_mig": num(N.nvmlDeviceIsMigDeviceHandle(m)),
        })
    return migs
"""


@pytest.mark.parametrize("t", [10.0, 21.0, 50.0])
def test_mig_devices_of_every_gpu(t: float) -> None:
    out, _ = run(
        READ_MIGS
        + """
out["gpus"] = []
for i in range(N.nvmlDeviceGetCount()):
    h = N.nvmlDeviceGetHandleByIndex(i)
    out["gpus"].append({
        "mode": [num(x) for x in N.nvmlDeviceGetMigMode(h)],
        "max": N.nvmlDeviceGetMaxMigDeviceCount(h),
        "migs": read_migs(h),
        "used": N.nvmlDeviceGetMemoryInfo(h, version=N.nvmlMemory_v2).used,
        "procs": [[p.pid, p.gpuInstanceId] for p in N.nvmlDeviceGetComputeRunningProcesses(h)],
    })
""",
        SCENARIO,
        t,
    )
    for i, (got, gpu) in enumerate(zip(out["gpus"], gpus(load(SCENARIO)))):
        state = mig_state(gpu, t)
        assert state is not None
        assert got["mode"] == [int(state["enabled"]), int(state["pending"])]
        assert got["max"] == (7 if state["enabled"] else 0)
        want = expected_migs(gpu, t)
        assert [
            {k: v for k, v in m.items() if k not in ("parent", "is_mig")}
            for m in got["migs"]
        ] == want
        assert all(m["parent"] == i and m["is_mig"] == 1 for m in got["migs"])
        # The parent: the aggregate of its MIG devices, and every process
        # with the GPU instance it runs in.
        if want:
            assert got["used"] == sum(m["used"] for m in want)
        running = [p for p in gpu["processes"] if alive(p, t)]
        unset = 2**32 - 1
        assert got["procs"] == [
            [p["pid"], p.get("gpu_instance_id", unset)] for p in running
        ]
    gpu0 = out["gpus"][0]["migs"]
    assert [m["gi"] for m in gpu0] == [7, 8, 9, 10, 11, 12, 13]
    assert {m["name"] for m in gpu0} == {"NVIDIA H100 80GB HBM3 MIG 1g.10gb"}


def test_profile_names_the_way_nvidia_smi_reads_them() -> None:
    out, _ = run(
        """
def text(x):
    return x.decode() if isinstance(x, bytes) else x

out["migs"] = []
for g in (0, 1):
    h = N.nvmlDeviceGetHandleByIndex(g)
    for i in range(N.nvmlDeviceGetMaxMigDeviceCount(h)):
        try:
            m = N.nvmlDeviceGetMigDeviceHandleByIndex(h, i)
        except N.NVMLError_NotFound:
            break
        gi = N.nvmlDeviceGetGpuInstanceById(h, N.nvmlDeviceGetGpuInstanceId(m))
        info = N.nvmlGpuInstanceGetInfo(gi)
        name = None
        for index in range(64):
            try:
                p = N.nvmlDeviceGetGpuInstanceProfileInfo(h, index)
            except N.NVMLError_NotSupported:
                continue
            except N.NVMLError_InvalidArgument:
                break
            if p.id == info.profileId:
                name, slices = text(p.name), p.sliceCount
                sms, mib = p.multiprocessorCount, p.memorySizeMB
        ci = N.nvmlGpuInstanceGetComputeInstanceById(gi, N.nvmlDeviceGetComputeInstanceId(m))
        cinfo = N.nvmlComputeInstanceGetInfo(ci)
        cprof = N.nvmlGpuInstanceGetComputeInstanceProfileInfo(
            gi, cinfo.profileId, N.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
        attrs = N.nvmlDeviceGetAttributes(m)
        out["migs"].append({
            "gpu": g, "gi": info.id, "profile_id": info.profileId, "name": name,
            "placement": [info.placement.start, info.placement.size],
            "slices": slices, "sms": sms, "mib": mib,
            "ci": cinfo.id, "ci_name": text(cprof.name), "ci_sms": cprof.multiprocessorCount,
            "attrs": [attrs.multiprocessorCount, attrs.gpuInstanceSliceCount,
                      attrs.computeInstanceSliceCount, attrs.memorySizeMB],
            "same_gi": N.nvmlDeviceGetIndex(info.device) == g and N.nvmlDeviceGetIndex(cinfo.device) == g,
        })
try:
    N.nvmlDeviceGetAttributes(N.nvmlDeviceGetHandleByIndex(0))
except N.NVMLError_NotSupported:
    out["parent_attrs"] = "not supported"
""",
        SCENARIO,
        5.0,
    )
    s = gpus(load(SCENARIO))
    want = [(g, inst) for g in (0, 1) for inst in instances_at(s[g], 5.0)]
    assert len(out["migs"]) == len(want) == 11
    for got, (g, inst) in zip(out["migs"], want):
        p = H100_PROFILES[inst["profile"]]
        assert got["gpu"] == g
        assert got["gi"] == inst["gpu_instance_id"]
        assert got["ci"] == inst["compute_instance_id"]
        assert got["profile_id"] == p["id"]
        assert got["name"] == got["ci_name"] == f"MIG {inst['profile']}"
        assert (got["slices"], got["sms"], got["mib"]) == (
            p["slices"],
            p["sms"],
            p["mib"],
        )
        assert got["ci_sms"] == p["sms"]
        assert got["attrs"] == [p["sms"], p["slices"], p["slices"], p["mib"]]
        assert got["same_gi"]
    # Placements do not overlap on GPU 1 (8 memory slices).
    used: set[int] = set()
    for got in out["migs"]:
        if got["gpu"] == 1:
            start, size = got["placement"]
            slices = set(range(start, start + size))
            assert not used & slices and max(slices) < 8
            used |= slices
    assert out["parent_attrs"] == "not supported"


def test_gpm_per_gpu_instance() -> None:
    out, _ = run(
        """
h = N.nvmlDeviceGetHandleByIndex(0)
out["supported"] = N.nvmlGpmQueryDeviceSupport(h).isSupportedDevice
ids = [N.NVML_GPM_METRIC_SM_UTIL, N.NVML_GPM_METRIC_SM_OCCUPANCY,
       N.NVML_GPM_METRIC_ANY_TENSOR_UTIL, N.NVML_GPM_METRIC_DRAM_BW_UTIL]
samples = {}
for gi in (7, 9, 10):
    samples[gi] = (N.nvmlGpmSampleAlloc(), N.nvmlGpmSampleAlloc())
    N.nvmlGpmMigSampleGet(h, gi, samples[gi][0])
assert N.nvmlLib.algalon_fake_nvml_set_time(ctypes.c_double(24.0)) == 0
out["metrics"] = {}
for gi, (s1, s2) in samples.items():
    N.nvmlGpmMigSampleGet(h, gi, s2)
    req = N.c_nvmlGpmMetricsGet_t()
    req.version = N.NVML_GPM_METRICS_GET_VERSION
    req.numMetrics = len(ids)
    req.sample1, req.sample2 = s1, s2
    for k, i in enumerate(ids):
        req.metrics[k].metricId = i
    N.nvmlGpmMetricsGet(req)
    out["metrics"][str(gi)] = [[m.nvmlReturn, m.value] for m in req.metrics[:len(ids)]]
    N.nvmlGpmSampleFree(s1)
    N.nvmlGpmSampleFree(s2)
try:
    N.nvmlGpmMigSampleGet(h, 3, N.nvmlGpmSampleAlloc())
except N.NVMLError_InvalidArgument:
    out["no_such_instance"] = True
""",
        SCENARIO,
        18.0,
    )
    instances = {
        i["gpu_instance_id"]: i for i in gpus(load(SCENARIO))[0]["mig"]["instances"]
    }
    assert out["supported"] == 1
    for gi, got in out["metrics"].items():
        gpm = instances[int(gi)]["gpm"]
        for (ret, value), key in zip(
            got, ["sm_active", "sm_occupancy", "tensor_active", "dram_active"]
        ):
            mean = (integral(gpm[key], 24.0) - integral(gpm[key], 18.0)) / 6.0
            assert ret == 0
            assert value == pytest.approx(mean, abs=1e-9), (gi, key)
    # GI 9's job starts at t = 20: a third of the window idle.
    assert out["metrics"]["9"][0][1] == pytest.approx(80 * 4 / 6)
    assert out["metrics"]["10"][0][1] == 0.0
    assert out["no_such_instance"] is True


def test_reconfiguration_stepped_by_a_clock_file(tmp_path: Path) -> None:
    clock = tmp_path / "clock"
    clock.write_text("10")
    out, _ = run(
        READ_MIGS
        + f"""
import os
def step(t):
    tmp = {str(clock)!r} + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(t))
    os.replace(tmp, {str(clock)!r})

g1, g2 = N.nvmlDeviceGetHandleByIndex(1), N.nvmlDeviceGetHandleByIndex(2)
before = [N.nvmlDeviceGetMigDeviceHandleByIndex(g1, i) for i in range(4)]
out["before"] = read_migs(g1)
out["g2_before"] = [num(x) for x in N.nvmlDeviceGetMigMode(g2)]
step(26)
out["g2_pending"] = [num(x) for x in N.nvmlDeviceGetMigMode(g2)]
step(33)
out["after"] = read_migs(g1)
out["g2_after"] = read_migs(g2)
after = [N.nvmlDeviceGetMigDeviceHandleByIndex(g1, i) for i in range(2)]
out["survivor_same_handle"] = ctypes.cast(after[1], ctypes.c_void_p).value == \\
    ctypes.cast(before[0], ctypes.c_void_p).value
out["stale"] = []
for m in before[1:]:
    try:
        N.nvmlDeviceGetUUID(m)
        out["stale"].append("answered")
    except N.NVMLError_InvalidArgument:
        out["stale"].append("invalid argument")
try:
    N.nvmlDeviceGetHandleByUUID(out["before"][1]["uuid"])
except N.NVMLError_NotFound:
    out["old_uuid"] = "not found"
try:
    N.nvmlDeviceGetUtilizationRates(g2)
except N.NVMLError_NotSupported:
    out["g2_util"] = "not supported"
""",
        SCENARIO,
        t=None,
        extra_env={"ALGALON_FAKE_NVML_CLOCK_FILE": str(clock)},
    )
    s = gpus(load(SCENARIO))

    def strip(migs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in m.items() if k not in ("parent", "is_mig")} for m in migs
        ]

    assert strip(out["before"]) == expected_migs(s[1], 10.0)
    assert strip(out["after"]) == expected_migs(s[1], 33.0)
    assert strip(out["g2_after"]) == expected_migs(s[2], 33.0)
    assert [m["gi"] for m in out["after"]] == [1, 2]
    assert out["after"][1]["uuid"] == out["before"][0]["uuid"], "GI 2 survives"
    assert out["after"][0]["uuid"] not in {m["uuid"] for m in out["before"]}
    assert out["survivor_same_handle"] is True
    assert out["stale"] == ["invalid argument"] * 3
    assert out["old_uuid"] == "not found"
    assert out["g2_before"] == [0, 0]
    assert out["g2_pending"] == [0, 1]
    assert out["g2_util"] == "not supported"


def peer(tool: str) -> None:
    # CI installs the peers (scripts/install-deps.sh) and sets this, so a
    # missing peer fails there instead of skipping.
    if os.environ.get("ALGALON_REQUIRE_PEER_TOOLS"):
        importlib.import_module(tool)
    else:
        pytest.importorskip(tool)


@pytest.mark.parametrize("t", [21.0, 40.0])
def test_nvitop_shows_the_same_mig_devices(t: float) -> None:
    peer("nvitop")
    out, _ = run(
        """
from nvitop import Device
out["gpus"] = []
for d in Device.all():
    out["gpus"].append({
        "mig_mode": d.mig_mode(),
        "migs": [{
            "name": m.name(), "uuid": m.uuid(), "gi": m.gpu_instance_id(),
            "ci": m.compute_instance_id(), "total": m.memory_total(), "used": m.memory_used(),
            "pids": sorted(m.processes()),
        } for m in d.mig_devices()],
    })
""",
        SCENARIO,
        t,
        init=False,
    )
    for got, gpu in zip(out["gpus"], gpus(load(SCENARIO))):
        state = mig_state(gpu, t)
        assert state is not None
        assert got["mig_mode"] == ("Enabled" if state["enabled"] else "Disabled")
        assert got["migs"] == expected_migs(gpu, t)


def test_nvitop_once_renders_mig_rows() -> None:
    peer("nvitop")
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (str(LIB_DIR), env.get("LD_LIBRARY_PATH", "")) if p
    )
    env["ALGALON_FAKE_NVML_SCENARIO"] = str(SCENARIOS / f"{SCENARIO}.json")
    env["ALGALON_FAKE_NVML_FROZEN_TIME"] = "40"
    env.pop("ALGALON_FAKE_NVML_CLOCK_FILE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "nvitop", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rows = re.findall(r"│ (\d+):(\d+) +(\S+) @ GI/CI: *(\d+)/(\d+)", proc.stdout)
    s = gpus(load(SCENARIO))
    want = [
        (str(g), str(i), inst["profile"], str(inst["gpu_instance_id"]), "0")
        for g in range(8)
        for i, inst in enumerate(instances_at(s[g], 40.0))
    ]
    assert rows == want
    assert len(rows) == 7 + 2 + 2


def test_gpustat_on_a_mig_node() -> None:
    """gpustat has no MIG view: it lists the physical GPUs, with the parent's
    aggregate memory and no utilization where MIG is on."""
    peer("gpustat")
    out, _ = run(
        """
import gpustat
out["gpus"] = [[g.index, g.utilization, g.memory_used] for g in gpustat.new_query().gpus]
""",
        SCENARIO,
        21.0,
        init=False,
    )
    s = gpus(load(SCENARIO))
    assert len(out["gpus"]) == 8
    for index, util, used in out["gpus"]:
        gpu = s[index]
        assert (util is None) == bool(instances_at(gpu, 21.0))
        assert used == rnd(at(gpu["memory"]["used_mib"], 21.0))
