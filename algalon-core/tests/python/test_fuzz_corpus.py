"""The exposition fuzz target's seeds, read by the official parsers.

Each seed in `fuzz/seeds/exposition/` holds host names, UUIDs, model and
process names, help text, a job name and user labels (quotes, backslashes,
newlines, non-ASCII and reserved label names among them). The fuzz
support crate's `render_seeds` example encodes each seed with Algalon's
encoders (snapshot and job reports, text format and OpenMetrics) and writes
the values that went in as JSON; here `prometheus_client` parses every text
and each label value and help text must come back exactly.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[3]
SEEDS = ROOT / "fuzz" / "seeds" / "exposition"
SEED_NAMES = sorted(p.name for p in SEEDS.iterdir())
FORMATS = {"prom": text_string_to_metric_families, "om": openmetrics_families}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("rendered")
    cargo = os.environ.get("CARGO", "cargo")
    manifest = ROOT / "fuzz" / "support" / "Cargo.toml"
    subprocess.run(
        [cargo, "run", "-q", "--manifest-path", str(manifest)]
        + ["--example", "render_seeds", "--", str(SEEDS), str(out)],
        check=True,
        timeout=1200,
    )
    return out


def parse(rendered: Path, seed: str, part: str, fmt: str):
    text = (rendered / f"{seed}.{part}.{fmt}").read_text(encoding="utf-8")
    return list(FORMATS[fmt](text))


def samples(families, name):
    return [s for f in families for s in f.samples if s.name == name]


def family_of(families, sample_name):
    return next(f for f in families if any(s.name == sample_name for s in f.samples))


def gpu_labels(expected, i, gpu):
    return {
        "gpu": str(i),
        "UUID": gpu["uuid"],
        "pci_bus_id": gpu["pci_bus_id"],
        "device": f"nvidia{i}",
        "modelName": gpu["name"],
        "Hostname": expected["hostname"],
    }


def test_there_are_seeds():
    assert len(SEED_NAMES) >= 3, SEEDS


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("seed", SEED_NAMES)
def test_snapshot_round_trips(rendered, seed, fmt):
    expected = json.loads((rendered / f"{seed}.expected.json").read_text())
    fams = parse(rendered, seed, "snapshot", fmt)
    gpus = expected["gpus"]
    for name in ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"):
        got = samples(fams, name)
        assert len(got) == len(gpus), name
        if gpus:
            assert family_of(fams, name).documentation == expected["help"]
        for i, (sample, gpu) in enumerate(zip(got, gpus)):
            want = gpu_labels(expected, i, gpu)
            want["DCGM_FI_DRIVER_VERSION"] = expected["driver_version"]
            assert sample.labels == want
    processes = samples(fams, "algalon_process_gpu_memory_bytes")
    assert len(processes) == len(gpus)
    for i, (sample, gpu) in enumerate(zip(processes, gpus)):
        want = gpu_labels(expected, i, gpu)
        want["pid"] = str(100 + i)
        for key in ("process_name", "slurm_job_id", "pod_uid"):
            if gpu[key] is not None:
                want[key] = gpu[key]
        assert sample.labels == want
    [build] = samples(fams, "algalon_build_info")
    assert build.labels["driver_version"] == expected["driver_version"]


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("seed", SEED_NAMES)
def test_jobs_round_trip(rendered, seed, fmt):
    expected = json.loads((rendered / f"{seed}.expected.json").read_text())
    fams = parse(rendered, seed, "jobs", fmt)
    [info] = samples(fams, "algalon_job_info")
    assert info.labels == expected["job_labels"]
    assert not any(k.startswith("__") for k in info.labels), info.labels
    [progress] = samples(fams, "algalon_job_progress_total")
    assert progress.labels["unit"] == expected["unit"]
    energy = samples(fams, "algalon_job_gpu_energy_joules_total")
    assert [s.labels["UUID"] for s in energy] == [g["uuid"] for g in expected["gpus"]]
