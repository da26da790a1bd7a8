"""The "Algalon — jobs" dashboard: the algalon_job_* series of the Python
and C faces, served (Monitor.serve) or pushed. Written by build_dashboards.py."""

from __future__ import annotations

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
            desc="GPU energy of the selected jobs (NVML's energy counter, or integrated power where the GPU has none).",
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
            desc="Duration times the number of GPUs, summed over the selected jobs.",
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
            ],
            "One line per job: duration (s), GPU energy (J), mean utilization over its GPUs, largest per-GPU memory peak, running (1) or finished (0).",
            rename={
                "Value #A": "info",
                "Value #B": "duration (s)",
                "Value #C": "energy (J)",
                "Value #D": "mean utilization",
                "Value #E": "peak memory (bytes)",
                "Value #F": "running",
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
                    with_name(last("algalon_job_gpu_memory_peak_bytes")),
                    JLEGEND + " GPU {{gpu}}",
                    instant=True,
                )
            ],
            "bytes",
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
            "Energy of jobs whose process serves /metrics (Monitor.serve), as they run.",
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
        "Per job: GPU energy, utilization, memory peak, power and duration, from the algalon_job_* series of the Python and C faces (served or pushed).",
        b,
        variables,
        ["algalon", "gpu", "jobs"],
    )
