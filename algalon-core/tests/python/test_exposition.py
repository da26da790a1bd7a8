"""Algalon's exposition read by the official Python prometheus_client parsers.

The Rust test `algalon-core/tests/exposition.rs` asserts that the encoder's
output equals these golden files byte for byte (apart from two masked
timing values); here the same files go through the reference parsers, so a
format the Prometheus ecosystem cannot read fails CI.
"""

import csv
import io
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
ROOT = Path(__file__).resolve().parents[3]
DEFAULT_CSV = ROOT / "algalon-core" / "src" / "default-counters.csv"
H100_UUID_PREFIX = "GPU-"
BASE_LABELS = {"gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname"}
# default-counters.csv fields NVML cannot provide on bare metal.
NOT_PROVIDABLE = {"DCGM_FI_DEV_VGPU_LICENSE_STATUS"}


def unmask(text: str) -> str:
    return text.replace("<varies>", "0.5")


def default_fields():
    rows = []
    for line in DEFAULT_CSV.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, kind, _help = next(csv.reader(io.StringIO(line), skipinitialspace=True))
        rows.append((name.strip(), kind.strip()))
    return rows


def families(path: Path):
    return {f.name: f for f in text_string_to_metric_families(unmask(path.read_text()))}


def test_h100x8_has_every_default_field_for_every_gpu():
    fams = families(GOLDEN / "h100x8.prom")
    fields = default_fields()
    assert len(fields) > 20
    for name, kind in fields:
        if kind == "label" or name in NOT_PROVIDABLE:
            continue
        assert name in fams, f"{name} missing"
        fam = fams[name]
        # DCGM counters keep their names, hence untyped ("unknown" to the parser).
        expected_type = "gauge" if kind == "gauge" else "unknown"
        assert fam.type == expected_type, (name, fam.type)
        gpus = sorted(int(s.labels["gpu"]) for s in fam.samples)
        assert gpus == list(range(8)), (name, gpus)
        for sample in fam.samples:
            assert sample.name == name, "series name must be DCGM's byte for byte"
            assert BASE_LABELS <= set(sample.labels), (name, sample.labels)
            assert sample.labels["UUID"].startswith(H100_UUID_PREFIX)
            assert sample.labels["modelName"] == "NVIDIA H100 80GB HBM3"
            assert sample.labels["device"] == f"nvidia{sample.labels['gpu']}"
            assert sample.labels["DCGM_FI_DRIVER_VERSION"] == "550.54.15"
            assert "instance" not in sample.labels and "job" not in sample.labels


def test_h100x8_values_are_in_dcgm_units():
    fams = families(GOLDEN / "h100x8.prom")
    for sample in fams["DCGM_FI_DEV_GPU_UTIL"].samples:
        assert 0 <= sample.value <= 100
    for sample in fams["DCGM_FI_PROF_DRAM_ACTIVE"].samples:
        assert 0 <= sample.value <= 1, "profiling ratios are 0-1 as in DCGM"
    for sample in fams["DCGM_FI_DEV_POWER_USAGE"].samples:
        assert 50 < sample.value < 800, "watts, not milliwatts"
    fb_used = {s.labels["gpu"]: s.value for s in fams["DCGM_FI_DEV_FB_USED"].samples}
    fb_free = {s.labels["gpu"]: s.value for s in fams["DCGM_FI_DEV_FB_FREE"].samples}
    fb_res = {s.labels["gpu"]: s.value for s in fams["DCGM_FI_DEV_FB_RESERVED"].samples}
    for gpu, used in fb_used.items():
        assert used + fb_free[gpu] + fb_res[gpu] == pytest.approx(81559, abs=2), "MiB"


def test_self_metrics_and_gpu_up():
    fams = families(GOLDEN / "h100x8.prom")
    up = fams["algalon_gpu_up"]
    assert up.type == "gauge"
    assert sorted(s.value for s in up.samples) == [1.0] * 8
    assert fams["algalon_samples"].type == "counter"
    assert fams["algalon_samples"].samples[0].name == "algalon_samples_total"
    # In the 0.0.4 text format an info metric is a gauge named *_info.
    build = fams["algalon_build_info"].samples[0]
    assert build.name == "algalon_build_info"
    assert build.labels["driver_version"] == "550.54.15"
    assert "algalon_sample_duration_seconds" in fams


def test_openmetrics_golden_parses_with_the_openmetrics_parser():
    text = unmask((GOLDEN / "h100x8.openmetrics").read_text())
    fams = {f.name: f for f in openmetrics_families(text)}
    assert fams["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"].type == "unknown"
    assert len(fams["DCGM_FI_DEV_GPU_TEMP"].samples) == 8
    assert fams["algalon_samples"].type == "counter"


def test_mixed_all_fields_parses_and_leaves_unsupported_series_out():
    fams = families(GOLDEN / "mixed-all-fields.prom")
    models = {s.labels["modelName"] for s in fams["algalon_gpu_up"].samples}
    assert len(models) >= 3, models
    energy_models = {
        s.labels["modelName"]
        for s in fams["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"].samples
    }
    assert "Tesla T4" not in energy_models, (
        "a GPU without an energy counter reports none"
    )
    for fam in fams.values():
        for sample in fam.samples:
            assert sample.value == sample.value, "no NaN"


def test_job_goldens_parse_with_both_parsers():
    text = families(GOLDEN / "jobs.prom")
    info = {s.labels["job_name"]: s.labels for s in text["algalon_job_info"].samples}
    ids = {name: labels["job_id"] for name, labels in info.items()}
    # A user label that is no label name is sanitized, its value escaped.
    assert info["finetune"]["my_label_x"] == 'quote " and back\\slash'
    energy = text["algalon_job_gpu_energy_joules"]
    assert energy.type == "counter"
    assert {s.labels["source"] for s in energy.samples} == {"counter", "integrated"}
    interrupted = {
        s.labels["job_id"]: (s.value, s.labels.get("exception"))
        for s in text["algalon_job_interrupted"].samples
    }
    assert interrupted == {
        ids["finetune"]: (0, None),
        ids["eval"]: (1, "KeyboardInterrupt"),
        ids["serve"]: (0, None),
        ids["inference"]: (0, None),
    }
    # Every per-GPU series carries the job's name and identity, not only its id.
    for s in energy.samples:
        assert s.labels["job_name"] == "finetune" and s.labels["rank"] == "1", s
    # A job on a MIG device: the parent GPU's shared energy and the
    # instance's estimate (3 of 7 compute slices) in their own families,
    # with the instance's labels; none in the whole-GPU energy family.
    (parent,) = text["algalon_job_mig_parent_energy_joules"].samples
    (estimate,) = text["algalon_job_mig_energy_estimate_joules"].samples
    assert parent.labels["job_id"] == ids["inference"]
    assert (parent.labels["GPU_I_PROFILE"], parent.labels["GPU_I_ID"]) == (
        "3g.40gb",
        "2",
    )
    assert estimate.value == parent.value * 3 / 7
    assert ids["inference"] not in {s.labels["job_id"] for s in energy.samples}

    om = {
        f.name: f
        for f in openmetrics_families((GOLDEN / "jobs.openmetrics").read_text())
    }
    assert om["algalon_job"].type == "info"
    assert om["algalon_job_progress"].type == "counter"
    assert {s.labels["unit"] for s in om["algalon_job_progress"].samples} == {
        "samples",
        "tokens",
    }
