"""Jobs pinned to a MIG device (``CUDA_VISIBLE_DEVICES=MIG-…``) on the fake H100 MIG node.

Each test runs a fresh interpreter (``run_python``) on ``testing/scenarios/h100-mig.json``
with this interpreter's own PID added as a process on GPU 1's 3g.40gb instance (GI 2),
so the job's own process is one the instance lists.
"""

from __future__ import annotations

import json
from pathlib import Path

import algalon
import pytest
from conftest import MIB, SCENARIOS, run_python
from prometheus_client.parser import text_string_to_metric_families

GPU1 = "GPU-a3c81f52-6d0e-4b9a-8f27-5e1d9c4b7011"
# GPU 1, GI 2: 3g.40gb with vllm (pid 6201); 30733 MiB used of 40448.
GI2 = "MIG-9d27f4a1-3c8e-5b06-a2d4-6e1f0c7b5901"

JOB = """
import json, os, pickle, time, warnings
warnings.simplefilter("error")
scenario = json.load(open({scenario!r}))
scenario["gpus"][1]["processes"].append(
    {{"pid": os.getpid(), "name": "python3", "type": "compute", "used_mib": 2048,
      "gpu_instance_id": 2, "compute_instance_id": 0}}
)
json.dump(scenario, open({path!r}, "w"))
os.environ["ALGALON_FAKE_NVML_SCENARIO"] = {path!r}
os.environ["CUDA_VISIBLE_DEVICES"] = {visible!r}
import algalon
mon = algalon.Monitor(interval=0.05)
with mon.job("serve") as job:
    time.sleep(0.6)
r = job.report
(g,) = r.gpus
m = g.mig
print(json.dumps({{
    "pid": os.getpid(),
    "json": r.to_json(),
    "reads_back": algalon.Report.from_json(r.to_json()) == r,
    "pickles": pickle.loads(pickle.dumps(r)) == r and pickle.loads(pickle.dumps(m)) == m,
    "metrics": r.to_prometheus(),
    "table": str(r),
    "report": {{"energy_j": r.energy_j, "energy_estimate_j": r.energy_estimate_j,
                "notes": r.notes}},
    "gpu": {{k: getattr(g, k) for k in (
        "cuda_index", "nvml_index", "uuid", "energy_j", "energy_source", "energy_scope",
        "energy_estimate_j", "energy_note", "util_mean", "memory_peak_bytes",
        "process_memory_peak_bytes", "samples")}},
    "mig": {{k: getattr(m, k) for k in (
        "uuid", "profile", "gpu_instance_id", "compute_instance_id", "slices",
        "parent_slices", "share", "memory_total_bytes", "sm_active_mean",
        "sm_occupancy_mean", "tensor_active_mean", "dram_active_mean", "pids",
        "destroyed_at")}},
}}))
mon.close()
"""


def run_job(tmp_path: Path, visible: str) -> dict:
    code = JOB.format(
        scenario=str(SCENARIOS / "h100-mig.json"),
        path=str(tmp_path / "h100-mig-own.json"),
        visible=visible,
    )
    proc = run_python(code, env={"ALGALON_FAKE_NVML_FROZEN_TIME": None})
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_job_pinned_to_a_mig_uuid_measures_that_instance(tmp_path: Path) -> None:
    out = run_job(tmp_path, GI2)
    gpu, mig, report = out["gpu"], out["mig"], out["report"]
    # The parent GPU, the instance under it, the job's CUDA device 0.
    assert (gpu["cuda_index"], gpu["nvml_index"], gpu["uuid"]) == (0, 1, GPU1)
    assert (mig["uuid"], mig["profile"]) == (GI2, "3g.40gb")
    assert (mig["gpu_instance_id"], mig["compute_instance_id"]) == (2, 0)
    # Memory is the instance's (the whole GPU uses 47115 MiB of 81559).
    assert gpu["memory_peak_bytes"] == 30733 * MIB
    assert mig["memory_total_bytes"] == 40448 * MIB
    # The instance's processes: vllm and this job's own process.
    assert mig["pids"] == sorted([6201, out["pid"]])
    assert gpu["process_memory_peak_bytes"] == 2048 * MIB
    # GPM per GPU instance (GI 2's SM activity is a sine around 60 %).
    assert 0.45 <= mig["sm_active_mean"] <= 0.75
    for key in ("sm_occupancy_mean", "tensor_active_mean", "dram_active_mean"):
        assert mig[key] is not None and 0.0 <= mig[key] <= 1.0
    assert gpu["util_mean"] is None  # no whole-GPU utilization in MIG mode
    # Energy is GPU 1's as a whole, and the report says so...
    assert gpu["energy_scope"] == "parent_gpu" and gpu["energy_source"] == "counter"
    assert gpu["energy_j"] > 0
    assert "shared by its MIG instances" in gpu["energy_note"]
    assert "(3/7), an estimate" in gpu["energy_note"]
    # ...with the instance's share by compute slices: 3 of the H100's 7.
    assert (mig["slices"], mig["parent_slices"]) == (3, 7)
    assert mig["share"] == pytest.approx(3 / 7)
    assert gpu["energy_estimate_j"] == pytest.approx(gpu["energy_j"] * 3 / 7, rel=1e-9)
    # The job's total never takes the shared GPU whole.
    assert report["energy_j"] is None
    assert report["energy_estimate_j"] == pytest.approx(gpu["energy_estimate_j"])
    assert any("energy_j counts whole GPUs only" in n for n in report["notes"])
    assert "3 of 7 slices" in out["table"] and "1/GI 2" in out["table"]
    # Schema 4, read back exactly.
    doc = json.loads(out["json"])
    assert doc["schema"] == 4 and out["reads_back"] and out["pickles"]
    assert doc["gpus"][0]["energy_scope"] == "parent_gpu"
    assert doc["gpus"][0]["mig"]["uuid"] == GI2
    # /metrics: the shared energy and the estimate in their own families,
    # labelled with the instance; none in the whole-GPU energy family.
    families = {f.name: f for f in text_string_to_metric_families(out["metrics"])}
    assert "algalon_job_gpu_energy_joules" not in families
    (parent,) = families["algalon_job_mig_parent_energy_joules"].samples
    (estimate,) = families["algalon_job_mig_energy_estimate_joules"].samples
    assert (
        parent.labels["GPU_I_PROFILE"] == "3g.40gb" and parent.labels["GPU_I_ID"] == "2"
    )
    assert parent.labels["UUID"] == GPU1 and parent.labels["gpu"] == "1"
    assert estimate.value == pytest.approx(parent.value * 3 / 7)
    (memory,) = families["algalon_job_gpu_memory_peak_bytes"].samples
    assert memory.value == 30733 * MIB and memory.labels["GPU_I_ID"] == "2"
    (sm,) = families["algalon_job_mig_sm_active_ratio"].samples
    assert sm.value == pytest.approx(mig["sm_active_mean"])


def test_the_gpu_instance_form_names_the_same_instance(tmp_path: Path) -> None:
    # CUDA's MIG-GPU-<gpu uuid>/<gpu instance id>/<compute instance id>.
    out = run_job(tmp_path, f"MIG-{GPU1}/2/0")
    assert out["mig"]["uuid"] == GI2
    assert out["gpu"]["memory_peak_bytes"] == 30733 * MIB
    assert out["gpu"]["energy_scope"] == "parent_gpu"


@pytest.mark.parametrize(
    "visible",
    ["MIG-00000000-0000-0000-0000-000000000000", f"MIG-{GPU1}/7/0"],
)
def test_a_mig_device_that_does_not_exist_names_those_that_do(visible: str) -> None:
    code = f"""
import os
os.environ["ALGALON_FAKE_NVML_SCENARIO"] = {str(SCENARIOS / "h100-mig.json")!r}
os.environ["CUDA_VISIBLE_DEVICES"] = {visible!r}
import algalon
try:
    algalon.Monitor(interval=0.05)
except algalon.DeviceNotFoundError as e:
    print(e)
else:
    raise SystemExit("no error")
"""
    message = run_python(
        code, env={"ALGALON_FAKE_NVML_FROZEN_TIME": "5"}
    ).stdout.strip()
    assert "\n" not in message
    assert f"CUDA_VISIBLE_DEVICES entry {visible!r}".replace("'", '"') in message
    assert f"GPU 1 GI 2 CI 0 (3g.40gb, {GI2})" in message
    assert (
        "GPU 0 GI 7 CI 0 (1g.10gb, MIG-4b1e7c20-0a5d-5f3e-9c61-7d2a8e0b3c01)" in message
    )


def test_a_mig_id_on_a_host_without_mig_devices_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "CUDA_VISIBLE_DEVICES", "MIG-0c7f0b3e-1111-5e2a-9c4b-000000000001,1"
    )
    with pytest.raises(algalon.DeviceNotFoundError, match="no MIG devices") as err:
        algalon.Monitor(interval=0.05)
    assert '"MIG-0c7f0b3e-1111-5e2a-9c4b-000000000001" (a MIG device)' in str(err.value)
