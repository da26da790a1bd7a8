"""The jobs dashboard on jobs pinned to a MIG device: conftest.py's
job-source-mig runs the algalon package with CUDA_VISIBLE_DEVICES naming GPU
0's 1g.10gb instance GI 7 of testing/scenarios/h100-mig.json (its own process
in that instance), and serves a finished job (mig-infer) and a running
window (mig-serve) to VMAgent. What the dashboard's own queries return from
VictoriaMetrics is what a user sees."""

from __future__ import annotations

import json
import time

import pytest
from conftest import MIG_JOB_DEVICE, MIG_SCENARIO
from e2e_stack import COMPOSE
from job_source import OWN_MIB
from test_pipeline import legend, rows, substitute

JOBS = COMPOSE / "host/grafana/dashboards/algalon-jobs.json"
MIG_JOBS = {"mig-infer", "mig-serve"}
# GPU 0's GI 7, named as the fleet dashboard's MIG row names it.
DEVICE = "GPU 0 · MIG 1g.10gb (GI 7)"
# A 1g instance holds 1 of an H100's 7 compute slices.
SHARE = 1 / 7
MIB = 1048576


def panel(doc: dict, title: str, kind: str = "") -> dict:
    return next(
        p
        for _, p in rows(doc)
        if p["title"] == title and p["type"] == (kind or p["type"])
    )


def instance_of(mig_id: str) -> dict:
    scenario = json.loads(MIG_SCENARIO.read_text())
    return next(
        inst
        for gpu in scenario["gpus"]
        for inst in (gpu.get("mig") or {}).get("instances", [])
        if inst["uuid"] == mig_id
    )


@pytest.fixture(scope="module")
def jobs_doc():
    return json.loads(JOBS.read_text())


def query(stack, doc: dict, target: dict, at: float, instance="", **chosen):
    """A panel's query as Grafana sends it (the dashboard's variables at All,
    or `chosen`), the series of one job process if `instance` names it."""
    result = stack.vm.query(substitute(target["expr"], doc, **chosen), at=at)
    return [
        r for r in result if not instance or r["metric"].get("instance") == instance
    ]


def shown(stack, doc: dict, target: dict, at: float, instance="") -> dict[str, float]:
    """The series a panel's query gives, by the name its legend gives them."""
    return {
        legend(target["legendFormat"], r["metric"]): float(r["value"][1])
        for r in query(stack, doc, target, at, instance)
    }


def test_mig_job_energy_is_the_parent_energy_times_its_slices(stack, jobs_doc):
    """Each MIG job's estimate is its parent GPU's shared energy × 1/7, in the
    bars and in the table, and the device is named "GPU 0 · MIG 1g.10gb (GI 7)"."""
    doc = jobs_doc
    (estimate,) = panel(doc, "MIG energy per job (estimate: parent energy × slices)")[
        "targets"
    ]
    (parent,) = panel(doc, "Parent GPU energy during MIG jobs (shared)")["targets"]
    # One instant for both: a served job's two series come from one scrape.
    now = time.time() - 2
    mine = stack.mig_job_instance
    est = shown(stack, doc, estimate, now, mine)
    par = shown(stack, doc, parent, now, mine)
    assert {name.split(" #")[0] for name in est} == MIG_JOBS, est
    assert all(name.endswith(f" {DEVICE}") for name in est), est
    assert {f"{name} (shared)" for name in est} == set(par)
    for name, joules in est.items():
        assert joules > 0
        assert joules == pytest.approx(par[f"{name} (shared)"] * SHARE, rel=1e-6)

    table = panel(doc, "MIG jobs")
    by_ref = {}
    for t in table["targets"]:
        by_ref[t["refId"]] = {
            (r["metric"]["job_name"], r["metric"]["mig"]): float(r["value"][1])
            for r in query(stack, doc, t, now, mine)
        }
    lines = {(job, DEVICE) for job in MIG_JOBS}
    assert all(set(v) == lines for v in by_ref.values()), by_ref
    for line in lines:
        assert by_ref["A"][line] == pytest.approx(by_ref["B"][line] * SHARE, rel=1e-6)
        assert by_ref["C"][line] == pytest.approx(SHARE, rel=1e-6)
    # The bars and the table show the same estimates.
    assert sorted(by_ref["A"].values()) == pytest.approx(sorted(est.values()))


def test_whole_gpu_energy_panels_leave_the_mig_jobs_out(stack, jobs_doc):
    """A MIG job's shared parent energy never counts as its GPU energy: the
    whole-GPU energy panels show the whole-GPU jobs and no MIG job, while the
    Jobs table gives the MIG jobs their estimate."""
    doc = jobs_doc
    now = time.time() - 2
    (per_job,) = panel(doc, "Energy per job")["targets"]
    names = {n.split(" #")[0] for n in shown(stack, doc, per_job, now)}
    assert "pretrain" in names and not names & MIG_JOBS, names
    (so_far,) = panel(doc, "Energy so far")["targets"]
    result = stack.vm.query_range(substitute(so_far["expr"], doc), 60, "10s")
    running = {r["metric"]["job_name"] for r in result}
    assert "finetune" in running and not running & MIG_JOBS, running
    (memory,) = panel(doc, "Peak GPU memory")["targets"]
    assert shown(stack, doc, memory, now, stack.job_instance)
    assert not shown(stack, doc, memory, now, stack.mig_job_instance)

    # The Energy stat of the MIG jobs alone: no data, not their GPU's energy.
    only_mig = "|".join(sorted(MIG_JOBS))
    (stat,) = panel(doc, "Energy")["targets"]
    assert not stack.vm.query(substitute(stat["expr"], doc, job_name=only_mig), at=now)
    assert stack.vm.query(substitute(stat["expr"], doc, job_name="pretrain"), at=now)
    jobs_table = {t["refId"]: t for t in panel(doc, "Jobs", "table")["targets"]}

    def column(ref: str) -> dict[str, float]:
        expr = substitute(jobs_table[ref]["expr"], doc, job_name=only_mig)
        return {
            r["metric"]["job_id"]: float(r["value"][1])
            for r in stack.vm.query(expr, at=now)
        }

    assert not column("C")  # energy (J): whole GPUs only
    estimates = column("G")  # MIG energy estimate (J)
    assert len(estimates) == len(MIG_JOBS) and all(v > 0 for v in estimates.values())


def test_mig_job_memory_and_activity_per_device(stack, jobs_doc):
    """The table's memory peaks are the instance's framebuffer use and the
    job's own process in it; its activity means are the instance's GPM
    readings (sines in the scenario), each on a line named after the device."""
    doc = jobs_doc
    table = {t["refId"]: t for t in panel(doc, "MIG jobs")["targets"]}
    gpm = instance_of(MIG_JOB_DEVICE)

    now = time.time() - 2

    def column(ref: str) -> list[float]:
        """The column's value on each MIG job's line (both on DEVICE)."""
        got = {
            (r["metric"]["job_name"], r["metric"]["mig"]): float(r["value"][1])
            for r in query(stack, doc, table[ref], now, stack.mig_job_instance)
        }
        assert set(got) == {(job, DEVICE) for job in MIG_JOBS}, got
        return list(got.values())

    assert column("H") == [gpm["memory_used_mib"] * MIB] * len(MIG_JOBS)
    assert column("I") == [OWN_MIB * MIB] * len(MIG_JOBS)
    for ref, field in (
        ("D", "sm_active"),
        ("E", "sm_occupancy"),
        ("F", "tensor_active"),
        ("G", "dram_active"),
    ):
        sine = gpm["gpm"][field]["sine"]
        lo = (sine["base"] - sine["amplitude"]) / 100
        hi = (sine["base"] + sine["amplitude"]) / 100
        assert all(lo <= mean <= hi for mean in column(ref)), field
