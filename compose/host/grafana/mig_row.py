"""The fleet dashboard's "MIG instances" row: each MIG instance the
exporters write (`-d g+i`: series with GPU_I_PROFILE and GPU_I_ID, as
dcgm-exporter writes them), named after its GPU: "GPU 0 · MIG 3g.20gb
(GI 1)". Written by build_dashboards.py.

The row is collapsed: Grafana queries its panels only once it is opened, so
a fleet without MIG shows one closed row, not empty panels. The cluster,
instance and GPU variables select instances by their parent GPU; the
whole-GPU panels of the other rows leave instance series out
(GPU_I_ID="").
"""

from __future__ import annotations

from panels import (
    Board,
    fb_total,
    memory_share,
    memory_vs_total,
    table,
    target,
    timeseries,
)

# Series of MIG instances of the selected GPUs.
MIG = 'cluster=~"$cluster", instance=~"$instance", gpu=~"$gpu", GPU_I_ID!=""'
# Legend of one instance: "GPU 0 · MIG 3g.20gb (GI 1) · node-17".
MIG_LEGEND = "GPU {{gpu}} · MIG {{GPU_I_PROFILE}} (GI {{GPU_I_ID}}) · {{Hostname}}"
# The labels that tell one instance from another across exporters.
BY = "cluster, instance, Hostname, gpu, GPU_I_PROFILE, GPU_I_ID"


def named(expr: str) -> str:
    """`expr` with a `mig` label naming its instance as the legends do
    ("GPU 0 · MIG 3g.20gb (GI 1)"), for tables, which have no legend."""
    joined = f'label_join({expr}, "mig", ";", "gpu", "GPU_I_PROFILE", "GPU_I_ID")'
    return (
        f'label_replace({joined}, "mig", "GPU $1 · MIG $2 (GI $3)",'
        f' "mig", "(.*);(.*);(.*)")'
    )


def per_instance(expr: str) -> str:
    """One series per instance with only the labels of BY and `mig`: the
    table's queries then merge into one line per instance (max: an
    instance's series served once per job or pod hold the same value)."""
    return named(f"max by ({BY}) ({expr})")


def mig_row(b: Board) -> None:
    b.row("MIG instances (exporter -d g+i)", collapsed=True)
    b.add(
        table(
            "MIG instances",
            [
                target(expr, ref=ref, instant=True, table=True)
                for ref, expr in zip(
                    "ABCDEF",
                    (
                        per_instance(f"DCGM_FI_DEV_FB_USED{{{MIG}}} * 1048576"),
                        per_instance(f"{fb_total(MIG)} * 1048576"),
                        per_instance(f"DCGM_FI_PROF_GR_ENGINE_ACTIVE{{{MIG}}}"),
                        per_instance(f"DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{{{MIG}}}"),
                        per_instance(f"DCGM_FI_PROF_DRAM_ACTIVE{{{MIG}}}"),
                        named(
                            f"count by ({BY}) (algalon_process_gpu_memory_bytes{{{MIG}}})"
                        ),
                    ),
                    strict=True,
                )
            ],
            "One line per MIG instance of the selected GPUs: its memory, its "
            "GPM activity (Hopper and newer) and the processes running in it. "
            "Power, temperature and clocks are the whole GPU's (rows above). "
            "On a driver without nvmlDeviceGetGpuInstanceId an instance is "
            "listed once a process has run in it.",
            rename={
                "mig": "MIG instance",
                "Value #A": "memory used",
                "Value #B": "memory total",
                "Value #C": "engine active",
                "Value #D": "tensor active",
                "Value #E": "DRAM active",
                "Value #F": "processes",
            },
            hide=("gpu", "GPU_I_PROFILE", "GPU_I_ID", "instance"),
            order=("mig", "Hostname", "cluster"),
            units={
                "memory used": "bytes",
                "memory total": "bytes",
                "engine active": "percentunit",
                "tensor active": "percentunit",
                "DRAM active": "percentunit",
            },
            transformations=[{"id": "merge", "options": {}}],
        ),
        24,
        8,
    )
    b.add(
        memory_share(
            "MIG memory used",
            MIG,
            MIG_LEGEND,
            "Share of each instance's own memory in use (alert AlgalonGpuMemoryNearFull).",
        ),
        8,
        10,
    )
    b.add(
        memory_vs_total("MIG memory used vs total", MIG, MIG_LEGEND),
        16,
        10,
    )
    for title, field, desc in (
        (
            "MIG graphics engine activity",
            "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
            "Share of time the instance's graphics engine was busy (GPM, nvmlGpmMigSampleGet).",
        ),
        (
            "MIG tensor core activity",
            "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
            "Share of cycles the instance's tensor pipes were active (GPM).",
        ),
        (
            "MIG DRAM activity",
            "DCGM_FI_PROF_DRAM_ACTIVE",
            "Share of cycles the instance's memory interface was busy (GPM).",
        ),
    ):
        b.add(
            timeseries(
                title,
                [target(f"{field}{{{MIG}}}", MIG_LEGEND)],
                "percentunit",
                desc,
                0,
                1,
            ),
            8,
            8,
        )
    b.add(
        table(
            "MIG processes",
            [
                target(
                    named(f"algalon_process_gpu_memory_bytes{{{MIG}}}"),
                    instant=True,
                    table=True,
                )
            ],
            "Processes in each MIG instance with the memory they hold, and "
            "their Slurm job or pod (exporter --processes).",
            rename={
                "mig": "MIG instance",
                "Value": "GPU memory",
                "pid": "PID",
                "process_name": "process",
            },
            hide=(
                "gpu",
                "GPU_I_PROFILE",
                "GPU_I_ID",
                "pci_bus_id",
                "device",
                "modelName",
            ),
            unit="bytes",
            order=("mig", "Hostname", "pid", "process_name"),
        ),
        24,
        8,
    )
