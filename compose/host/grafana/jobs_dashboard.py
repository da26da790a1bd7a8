"""The "Algalon — jobs" dashboard: the algalon_job_* series of the Python
and C faces, served (Monitor.serve) or pushed. Written by build_dashboards.py.

Jobs on a MIG device (CUDA_VISIBLE_DEVICES=MIG-<uuid>) have no whole-GPU
energy: NVML measures none per instance, so their series name the parent
GPU's energy as shared (algalon_job_mig_parent_energy_joules_total) and the
instance's share by compute slices as an estimate
(algalon_job_mig_energy_estimate_joules_total). The whole-GPU panels leave
them out; the collapsed "MIG jobs" row shows them, each device named as the
fleet dashboard's MIG row names it: "GPU 0 · MIG 1g.10gb (GI 7)".
"""

from __future__ import annotations

from mig_row import named
from panels import (
    Board,
    bargauge,
    dashboard,
    query_var,
    stat,
    table,
    target,
    timeseries,
)

# Jobs: each series is keyed by the process that served or pushed it.
JOB = 'algalon_job_info{cluster=~"$cluster", job_name=~"$job_name"}'
KEY = "on (instance, Hostname, job_id)"
JLEGEND = "{{job_name}} #{{job_id}}"


def last(metric: str) -> str:
    """The last value in the time range: finished, pushed jobs stay visible."""
    return f"last_over_time({metric}[$__range])"


def with_name(expr: str) -> str:
    return f"{expr} * {KEY} group_left (job_name) {last(JOB)}"


# Job series of a MIG device carry its profile (and GPU instance id where
# the driver gives it); those of whole GPUs have neither.
WHOLE = 'GPU_I_PROFILE=""'
ON_MIG = 'GPU_I_PROFILE!=""'
# Legend of one job on one MIG device: "infer #3eb1… GPU 0 · MIG 1g.10gb (GI 7)".
MIG_LEGEND = JLEGEND + " GPU {{gpu}} · MIG {{GPU_I_PROFILE}} (GI {{GPU_I_ID}})"
# The labels that tell one job's MIG device from another.
MIG_BY = "cluster, instance, Hostname, job_id, job_name, gpu, GPU_I_PROFILE, GPU_I_ID"
ESTIMATE = "algalon_job_mig_energy_estimate_joules_total"
PARENT = "algalon_job_mig_parent_energy_joules_total"


def per_device(expr: str) -> str:
    """One series per job and MIG device of the selected jobs, with only the
    labels of MIG_BY and `mig` ("GPU 0 · MIG 1g.10gb (GI 7)"): the table's
    queries then merge into one line per job and device."""
    return named(f"max by ({MIG_BY}) ({with_name(expr)})")


def mig_jobs(b: Board) -> None:
    """The collapsed "MIG jobs" row: Grafana queries its panels once it is
    opened, so a fleet without MIG jobs sees one closed row."""
    b.row("MIG jobs (energy estimated: parent GPU energy × slices)", collapsed=True)
    columns = (
        ("A", last(ESTIMATE), "energy estimate (J)"),
        ("B", last(PARENT), "parent GPU energy, shared (J)"),
        ("C", f"{last(ESTIMATE)} / {last(PARENT)}", "share of the GPU (slices)"),
        ("D", last("algalon_job_mig_sm_active_ratio"), "SM active"),
        ("E", last("algalon_job_mig_sm_occupancy_ratio"), "SM occupancy"),
        ("F", last("algalon_job_mig_tensor_active_ratio"), "tensor active"),
        ("G", last("algalon_job_mig_dram_active_ratio"), "DRAM active"),
        (
            "H",
            last(f"algalon_job_gpu_memory_peak_bytes{{{ON_MIG}}}"),
            "memory peak",
        ),
        (
            "I",
            last(f"algalon_job_gpu_process_memory_peak_bytes{{{ON_MIG}}}"),
            "own processes' memory peak",
        ),
    )
    b.add(
        table(
            "MIG jobs",
            [
                target(per_device(expr), ref=ref, instant=True, table=True)
                for ref, expr, _ in columns
            ],
            "One line per job and MIG device. NVML measures no energy per MIG "
            "instance: the parent GPU's energy during the job is shared by all "
            "its instances (and by the jobs in them), and the job's energy is "
            "an estimate, the parent's energy times the device's share of the "
            "GPU's compute slices (1/7 for a 1g instance on an H100). SM, "
            "tensor and DRAM activity are the instance's own means over the "
            "job (GPM, Hopper and newer); memory peaks are the instance's "
            "framebuffer and the job's own processes in it.",
            rename={
                "mig": "MIG device",
                "job_name": "job",
                **{f"Value #{ref}": name for ref, _, name in columns},
            },
            hide=("gpu", "GPU_I_PROFILE", "GPU_I_ID", "instance", "Hostname"),
            order=("job_name", "job_id", "mig", "cluster"),
            units={
                "energy estimate (J)": "joule",
                "parent GPU energy, shared (J)": "joule",
                "share of the GPU (slices)": "percentunit",
                "SM active": "percentunit",
                "SM occupancy": "percentunit",
                "tensor active": "percentunit",
                "DRAM active": "percentunit",
                "memory peak": "bytes",
                "own processes' memory peak": "bytes",
            },
            transformations=[{"id": "merge", "options": {}}],
        ),
        24,
        8,
    )
    b.add(
        bargauge(
            "MIG energy per job (estimate: parent energy × slices)",
            [target(with_name(last(ESTIMATE)), MIG_LEGEND, instant=True)],
            "joule",
            desc="Estimated energy of each job's MIG device: its parent GPU's "
            "energy during the job times the device's share of the GPU's "
            "compute slices. Not a measurement: NVML has no energy per instance.",
        ),
        8,
        10,
    )
    b.add(
        bargauge(
            "Parent GPU energy during MIG jobs (shared)",
            [target(with_name(last(PARENT)), MIG_LEGEND + " (shared)", instant=True)],
            "joule",
            desc="Energy of the whole parent GPU while the job ran, shared by "
            "all its MIG instances and the jobs in them: not the job's own, "
            "never added to the whole-GPU energy panels.",
        ),
        8,
        10,
    )
    b.add(
        bargauge(
            "Peak MIG memory",
            [
                target(
                    with_name(last(f"algalon_job_gpu_memory_peak_bytes{{{ON_MIG}}}")),
                    MIG_LEGEND,
                    instant=True,
                )
            ],
            "bytes",
            desc="Highest memory used in each job's MIG instance (its own framebuffer).",
        ),
        8,
        10,
    )
    b.add(
        bargauge(
            "MIG activity (means over the job)",
            [
                target(
                    with_name(last(f"algalon_job_mig_{field}_ratio")),
                    f"{MIG_LEGEND} {name}",
                    ref=ref,
                    instant=True,
                )
                for ref, field, name in (
                    ("A", "sm_active", "SM active"),
                    ("B", "sm_occupancy", "SM occupancy"),
                    ("C", "tensor_active", "tensor active"),
                    ("D", "dram_active", "DRAM active"),
                )
            ],
            "percentunit",
            hi=1,
            steps=((None, "red"), (0.3, "orange"), (0.6, "green")),
            desc="The MIG instance's own DCGM_FI_PROF_SM_ACTIVE, SM_OCCUPANCY, "
            "PIPE_TENSOR_ACTIVE and DRAM_ACTIVE, averaged over the job (GPM: "
            "Hopper and newer).",
        ),
        12,
        10,
    )
    b.add(
        timeseries(
            "MIG energy estimate so far",
            [
                target(
                    f"{ESTIMATE} * {KEY} group_left (job_name) {JOB}",
                    MIG_LEGEND,
                )
            ],
            "joule",
            "Estimated energy (parent GPU energy × slices) of MIG jobs whose "
            "process serves /metrics, as they run.",
            lo=0,
        ),
        12,
        10,
    )


def jobs() -> dict:
    b = Board()
    b.row("Jobs")
    b.add(
        stat(
            "Jobs",
            f"count({last(JOB)}) or vector(0)",
            desc="Jobs seen in the time range, running or finished.",
        ),
        4,
        4,
    )
    b.add(
        stat(
            "Running now",
            f"count(algalon_job_running == 1 and {KEY} {JOB}) or vector(0)",
            desc="Jobs whose process serves algalon_job_running 1 now.",
        ),
        4,
        4,
    )
    b.add(
        stat(
            "Energy",
            f"sum({last('algalon_job_gpu_energy_joules_total')} and {KEY} {last(JOB)})",
            "joule",
            desc="GPU energy of the selected jobs (NVML's energy counter, or integrated power where the GPU has none). "
            "Whole GPUs only: a MIG device's energy is its parent GPU's, shared by its instances; "
            "its job's estimate is in the MIG jobs row.",
        ),
        4,
        4,
    )
    b.add(
        stat(
            "GPU hours",
            f"sum(({last('algalon_job_duration_seconds')} and {KEY} {last(JOB)})"
            f" * {KEY} count by (instance, Hostname, job_id) ({last('algalon_job_gpu_memory_peak_bytes')})) / 3600",
            "h",
            desc="Duration times the number of GPUs, summed over the selected jobs. "
            "A MIG device counts as one GPU here; its share of its GPU (compute "
            "slices) is in the MIG jobs row.",
            decimals=1,
        ),
        4,
        4,
    )
    b.add(
        stat(
            "Mean GPU utilization",
            f"avg({last('algalon_job_gpu_utilization_ratio')} and {KEY} {last(JOB)})",
            "percentunit",
            steps=((None, "red"), (0.3, "orange"), (0.6, "green")),
            decimals=0,
        ),
        4,
        4,
    )
    b.add(
        stat(
            "Mean power per GPU",
            f"avg({last('algalon_job_gpu_power_mean_watts')} and {KEY} {last(JOB)})",
            "watt",
        ),
        4,
        4,
    )
    b.add(
        table(
            "Jobs",
            [
                target(last(JOB), instant=True, table=True),
                target(
                    f"{last('algalon_job_duration_seconds')} and {KEY} {last(JOB)}",
                    ref="B",
                    instant=True,
                    table=True,
                ),
                target(
                    f"sum by (instance, Hostname, job_id) ({last('algalon_job_gpu_energy_joules_total')})"
                    f" and {KEY} {last(JOB)}",
                    ref="C",
                    instant=True,
                    table=True,
                ),
                target(
                    f"avg by (instance, Hostname, job_id) ({last('algalon_job_gpu_utilization_ratio')})"
                    f" and {KEY} {last(JOB)}",
                    ref="D",
                    instant=True,
                    table=True,
                ),
                target(
                    f"max by (instance, Hostname, job_id) ({last('algalon_job_gpu_memory_peak_bytes')})"
                    f" and {KEY} {last(JOB)}",
                    ref="E",
                    instant=True,
                    table=True,
                ),
                target(
                    f"{last('algalon_job_running')} and {KEY} {last(JOB)}",
                    ref="F",
                    instant=True,
                    table=True,
                ),
                target(
                    f"sum by (instance, Hostname, job_id) ({last(ESTIMATE)})"
                    f" and {KEY} {last(JOB)}",
                    ref="G",
                    instant=True,
                    table=True,
                ),
            ],
            "One line per job: duration (s), GPU energy (J) of its whole GPUs, mean utilization over its GPUs, "
            "largest per-device memory peak, running (1) or finished (0), and for a job on MIG devices their "
            "energy estimate (J): each parent GPU's energy times the device's share of its compute slices.",
            rename={
                "Value #A": "info",
                "Value #B": "duration (s)",
                "Value #C": "energy (J)",
                "Value #D": "mean utilization",
                "Value #E": "peak memory (bytes)",
                "Value #F": "running",
                "Value #G": "MIG energy estimate (J)",
            },
            hide=("Value #A",),
            transformations=[{"id": "merge", "options": {}}],
        ),
        24,
        8,
    )

    b.row("Per job and GPU")
    b.add(
        bargauge(
            "Energy per job",
            [
                target(
                    with_name(
                        f"sum by (instance, Hostname, job_id) ({last('algalon_job_gpu_energy_joules_total')})"
                    ),
                    JLEGEND,
                    instant=True,
                )
            ],
            "joule",
            desc="GPU energy of each job's whole GPUs; jobs on MIG devices have an estimate instead (MIG jobs row).",
        ),
        8,
        10,
    )
    b.add(
        bargauge(
            "Duration",
            [
                target(
                    with_name(last("algalon_job_duration_seconds")),
                    JLEGEND,
                    instant=True,
                )
            ],
            "s",
        ),
        8,
        10,
    )
    b.add(
        bargauge(
            "Energy per unit of work",
            [
                target(
                    with_name(
                        f"sum by (instance, Hostname, job_id) ({last('algalon_job_gpu_energy_joules_total')})"
                        f" / {KEY} group_right {last('algalon_job_progress_total')}"
                    ),
                    JLEGEND + " J per {{unit}}",
                    instant=True,
                )
            ],
            "joule",
            desc="GPU energy divided by the job's own counts (job.count(samples=…, tokens=…)).",
        ),
        8,
        10,
    )
    b.add(
        bargauge(
            "Mean GPU utilization",
            [
                target(
                    with_name(last("algalon_job_gpu_utilization_ratio")),
                    JLEGEND + " GPU {{gpu}}",
                    instant=True,
                )
            ],
            "percentunit",
            hi=1,
            steps=((None, "red"), (0.3, "orange"), (0.6, "green")),
        ),
        8,
        10,
    )
    b.add(
        bargauge(
            "Peak GPU memory",
            [
                target(
                    with_name(last(f"algalon_job_gpu_memory_peak_bytes{{{WHOLE}}}")),
                    JLEGEND + " GPU {{gpu}}",
                    instant=True,
                )
            ],
            "bytes",
            desc="Whole GPUs; a MIG device's own memory peak is in the MIG jobs row.",
        ),
        8,
        10,
    )
    b.add(
        bargauge(
            "Mean power",
            [
                target(
                    with_name(last("algalon_job_gpu_power_mean_watts")),
                    JLEGEND + " GPU {{gpu}}",
                    instant=True,
                )
            ],
            "watt",
        ),
        8,
        10,
    )

    b.row("Running jobs over time")
    b.add(
        timeseries(
            "Energy so far",
            [
                target(
                    f"sum by (instance, Hostname, job_id) (algalon_job_gpu_energy_joules_total)"
                    f" * {KEY} group_left (job_name) {JOB}",
                    JLEGEND,
                )
            ],
            "joule",
            "Energy of jobs whose process serves /metrics (Monitor.serve), as they run (whole GPUs).",
            lo=0,
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Progress",
            [
                target(
                    f"rate(algalon_job_progress_total[$__rate_interval]) * {KEY} group_left (job_name) {JOB}",
                    JLEGEND + " {{unit}}/s",
                )
            ],
            "none",
            "Work per second from job.count(...): samples, tokens, steps.",
            lo=0,
        ),
        12,
        8,
    )
    mig_jobs(b)
    variables = [
        query_var(
            "cluster",
            "Cluster",
            "label_values(algalon_job_info, cluster)",
            "Cluster label of scraped job targets.",
        ),
        query_var(
            "job_name",
            "Job",
            'label_values(algalon_job_info{cluster=~"$cluster"}, job_name)',
            "Name given to mon.job(...) / begin_window(...).",
        ),
    ]
    return dashboard(
        "algalon-jobs",
        "Algalon — jobs",
        "Per job: GPU energy, utilization, memory peak, power and duration, from the algalon_job_* series of the Python and C faces (served or pushed). "
        "Jobs on MIG devices: an energy estimate by compute slices, activity and memory per device (MIG jobs row).",
        b,
        variables,
        ["algalon", "gpu", "jobs"],
    )
