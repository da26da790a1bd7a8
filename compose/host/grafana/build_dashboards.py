#!/usr/bin/env python3
"""Writes Algalon's Grafana dashboards (dashboards/algalon-*.json).

The JSON files are generated so that every panel follows the same rules —
the datasource variable, "GPU N" legends (never UUIDs), the cluster /
instance / gpu filters — and are checked in, so Grafana provisions them as
they are. After editing this file run

    python3 compose/host/grafana/build_dashboards.py

`--check` (run by the e2e test suite) fails when the checked-in files differ
from what this script writes. NVIDIA's dcgm-exporter dashboard sits beside
them, unchanged, and is not generated.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from jobs_dashboard import jobs
from mig_row import mig_row
from panels import (
    GPU,
    GPU_ANY,
    HOST,
    LEGEND,
    Board,
    bargauge,
    dashboard,
    dashed,
    fb_total,
    memory_share,
    memory_vs_total,
    query_var,
    stat,
    state_timeline,
    table,
    target,
    timeseries,
    value_map,
)

OUT = Path(__file__).resolve().parent / "dashboards"


def fleet() -> dict:
    b = Board()
    b.row("Fleet")
    b.add(
        stat(
            "GPUs",
            f"count(algalon_gpu_up{{{GPU}}})",
            desc="GPUs the selected exporters report.",
        ),
        3,
        4,
    )
    b.add(
        stat(
            "GPUs down",
            f"count(algalon_gpu_up{{{GPU}}} == 0) or vector(0)",
            desc="GPUs NVML reports as lost: fell off the bus or unreachable (alert AlgalonGpuDown).",
            steps=((None, "green"), (1, "red")),
        ),
        3,
        4,
    )
    b.add(
        stat(
            "Exporters down",
            f'count(up{{job="algalon", {HOST}}} == 0) or vector(0)',
            desc="Scrape targets VMAgent cannot reach (alert AlgalonExporterDown).",
            steps=((None, "green"), (1, "red")),
        ),
        3,
        4,
    )
    b.add(
        stat(
            "Mean GPU utilization",
            f"avg(DCGM_FI_DEV_GPU_UTIL{{{GPU}}})",
            "percent",
            decimals=0,
        ),
        3,
        4,
    )
    b.add(
        stat(
            "Memory in use",
            f"sum(DCGM_FI_DEV_FB_USED{{{GPU}}}) / sum({fb_total(GPU)})",
            "percentunit",
            steps=((None, "green"), (0.9, "orange")),
            decimals=0,
        ),
        3,
        4,
    )
    b.add(stat("Power draw", f"sum(DCGM_FI_DEV_POWER_USAGE{{{GPU}}})", "watt"), 3, 4)
    b.add(
        stat(
            "XID errors",
            f"sum(increase(algalon_xid_errors_total{{{GPU}}}[$__range])) or vector(0)",
            desc="XID errors reported in the time range (alerts AlgalonGpuXid*).",
            steps=((None, "green"), (1, "red")),
            decimals=0,
        ),
        3,
        4,
    )
    b.add(
        stat(
            "Oldest sample",
            f"max(time() - algalon_sample_timestamp_seconds{{{HOST}}})",
            "s",
            desc="Age of the stalest exporter's last NVML sample (alert AlgalonSamplesStale above 60 s).",
            steps=((None, "green"), (30, "orange"), (60, "red")),
            decimals=0,
        ),
        3,
        4,
    )

    b.row("Current status")
    b.add(
        bargauge(
            "Utilization",
            [target(f"DCGM_FI_DEV_GPU_UTIL{{{GPU}}}", LEGEND, instant=True)],
            "percent",
            hi=100,
            steps=((None, "blue"), (30, "green")),
        ),
        6,
        10,
    )
    b.add(
        memory_share("Memory used", GPU, LEGEND),
        6,
        10,
    )
    b.add(
        bargauge(
            "Temperature",
            [target(f"DCGM_FI_DEV_GPU_TEMP{{{GPU}}}", LEGEND, instant=True)],
            "celsius",
            hi=100,
            steps=((None, "green"), (75, "orange"), (85, "red")),
        ),
        6,
        10,
    )
    b.add(
        bargauge(
            "Power",
            [target(f"DCGM_FI_DEV_POWER_USAGE{{{GPU}}}", LEGEND, instant=True)],
            "watt",
            steps=((None, "green"),),
        ),
        6,
        10,
    )

    mig_row(b)

    b.row("Timelines")
    b.add(
        timeseries(
            "GPU utilization",
            [target(f"DCGM_FI_DEV_GPU_UTIL{{{GPU}}}", LEGEND)],
            "percent",
            "Share of time a kernel ran on the GPU (DCGM_FI_DEV_GPU_UTIL).",
            0,
            100,
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Memory utilization",
            [target(f"DCGM_FI_DEV_MEM_COPY_UTIL{{{GPU}}}", LEGEND)],
            "percent",
            "Share of time device memory was read or written (DCGM_FI_DEV_MEM_COPY_UTIL).",
            0,
            100,
        ),
        12,
        8,
    )
    b.add(
        memory_vs_total("Memory used vs total", GPU, LEGEND),
        12,
        8,
    )
    b.add(
        timeseries(
            "Temperature",
            [
                target(f"DCGM_FI_DEV_GPU_TEMP{{{GPU}}}", LEGEND),
                target(
                    f"DCGM_FI_DEV_MEMORY_TEMP{{{GPU}}}", LEGEND + " memory", ref="B"
                ),
            ],
            "celsius",
            overrides=[dashed(".* memory$")],
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Power",
            [
                target(f"DCGM_FI_DEV_POWER_USAGE{{{GPU}}}", LEGEND),
                target(
                    f"DCGM_FI_DEV_POWER_MGMT_LIMIT{{{GPU}}}", LEGEND + " limit", ref="B"
                ),
            ],
            "watt",
            "Power draw and the enforced power limit (the limit needs DCGM_FI_DEV_POWER_MGMT_LIMIT in the collectors CSV).",
            lo=0,
            overrides=[dashed(".* limit$")],
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Clocks",
            [
                target(f"DCGM_FI_DEV_SM_CLOCK{{{GPU}}} * 1000000", LEGEND + " SM"),
                target(
                    f"DCGM_FI_DEV_MEM_CLOCK{{{GPU}}} * 1000000",
                    LEGEND + " memory",
                    ref="B",
                ),
            ],
            "hertz",
            overrides=[dashed(".* memory$")],
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Tensor core and graphics engine activity",
            [
                target(f"DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{{{GPU}}}", LEGEND + " tensor"),
                target(
                    f"DCGM_FI_PROF_GR_ENGINE_ACTIVE{{{GPU}}}",
                    LEGEND + " engine",
                    ref="B",
                ),
            ],
            "percentunit",
            "Profiling metrics (GPM, Hopper and later): how busy the tensor pipes and the graphics engine really are.",
            0,
            1,
            overrides=[dashed(".* engine$")],
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "PCIe throughput",
            [
                target(f"DCGM_FI_PROF_PCIE_TX_BYTES{{{GPU}}}", LEGEND + " tx"),
                target(f"DCGM_FI_PROF_PCIE_RX_BYTES{{{GPU}}}", LEGEND + " rx", ref="B"),
            ],
            "Bps",
            lo=0,
            overrides=[dashed(".* rx$")],
        ),
        12,
        8,
    )

    b.row("Errors and throttling")
    b.add(
        timeseries(
            "XID errors",
            [
                target(
                    f"increase(algalon_xid_errors_total{{{GPU}}}[$__rate_interval])",
                    LEGEND + " XID {{xid}}",
                )
            ],
            "none",
            "XID errors per interval, by XID code (NVIDIA's XID catalog explains each).",
            lo=0,
            bars=True,
        ),
        12,
        8,
    )
    b.add(
        table(
            "XID errors since exporter start",
            [target(f"algalon_xid_errors_total{{{GPU}}}", instant=True, table=True)],
            "Every GPU that reported an XID, with the count per code.",
            rename={"Value": "count", "gpu": "GPU", "xid": "XID"},
            hide=("pci_bus_id", "device", "modelName"),
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Uncorrectable memory errors",
            [
                target(f"DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{{{GPU}}}", LEGEND + " ECC DBE"),
                target(
                    f"DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS{{{GPU}}}",
                    LEGEND + " remapped rows",
                    ref="B",
                ),
                target(
                    f"DCGM_FI_DEV_ROW_REMAP_FAILURE{{{GPU}}}",
                    LEGEND + " remap failed",
                    ref="C",
                ),
            ],
            "none",
            "Double-bit ECC errors since driver load, rows remapped for uncorrectable errors, and failed remaps (alerts AlgalonGpuEccUncorrectable, AlgalonGpuRowRemapFailure).",
            lo=0,
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Corrected memory errors",
            [
                target(f"DCGM_FI_DEV_ECC_SBE_VOL_TOTAL{{{GPU}}}", LEGEND + " ECC SBE"),
                target(
                    f"DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS{{{GPU}}}",
                    LEGEND + " remapped rows",
                    ref="B",
                ),
            ],
            "none",
            lo=0,
        ),
        12,
        8,
    )
    b.add(
        state_timeline(
            "Clock throttle reasons",
            f"DCGM_FI_DEV_CLOCK_THROTTLE_REASONS{{{GPU}}}",
            LEGEND,
            value_map(
                [
                    ("0", "none", "green"),
                    ("1", "idle", "blue"),
                    ("2", "application clocks", "blue"),
                    ("4", "power cap", "orange"),
                    ("8", "HW slowdown", "red"),
                    ("32", "SW thermal", "orange"),
                    ("64", "HW thermal", "red"),
                    ("96", "SW + HW thermal", "red"),
                    ("128", "power brake", "red"),
                    ("256", "display clocks", "blue"),
                ]
            ),
            "Why the clocks are held down (nvmlClocksEventReason bits; other values are combinations).",
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Time throttled",
            [
                target(
                    f"rate(DCGM_FI_DEV_POWER_VIOLATION{{{GPU}}}[$__rate_interval]) / 1e9",
                    LEGEND + " power",
                ),
                target(
                    f"rate(DCGM_FI_DEV_THERMAL_VIOLATION{{{GPU}}}[$__rate_interval]) / 1e9",
                    LEGEND + " thermal",
                    ref="B",
                ),
            ],
            "percentunit",
            "Share of time the clocks were held down by the power or the thermal limit.",
            0,
            1,
        ),
        12,
        8,
    )

    b.row("Availability")
    b.add(
        state_timeline(
            "GPU availability",
            f"algalon_gpu_up{{{GPU}}}",
            LEGEND,
            value_map([("1", "up", "green"), ("0", "down", "red")]),
            "0: NVML reports the GPU lost (fell off the bus) or unreachable.",
        ),
        12,
        8,
    )
    b.add(
        state_timeline(
            "Exporter scrapes",
            f'up{{job="algalon", {HOST}}}',
            "{{instance}}",
            value_map([("1", "up", "green"), ("0", "down", "red")]),
            "Whether VMAgent reached each worker's exporter.",
        ),
        12,
        8,
    )
    b.add(
        table(
            "GPU processes",
            [
                target(
                    f"algalon_process_gpu_memory_bytes{{{GPU_ANY}}}",
                    instant=True,
                    table=True,
                )
            ],
            "Processes holding GPU memory, with their Slurm job or pod (exporter --processes); a process in a MIG instance (-d g+i) with the instance's profile and GPU instance id.",
            rename={
                "Value": "GPU memory",
                "gpu": "GPU",
                "GPU_I_PROFILE": "MIG profile",
                "GPU_I_ID": "GI",
                "pid": "PID",
                "process_name": "process",
            },
            hide=("pci_bus_id", "device", "modelName"),
            unit="bytes",
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Sample age",
            [
                target(
                    f"time() - algalon_sample_timestamp_seconds{{{HOST}}}",
                    "{{instance}}",
                )
            ],
            "s",
            "Age of each exporter's last NVML sample; a rising line means NVML hangs on that worker.",
            lo=0,
        ),
        12,
        8,
    )
    variables = [
        query_var(
            "cluster",
            "Cluster",
            "label_values(algalon_gpu_up, cluster)",
            "Cluster label of the target files.",
        ),
        query_var(
            "instance",
            "Instance",
            'label_values(algalon_gpu_up{cluster=~"$cluster"}, instance)',
            "Scrape target (worker:port).",
        ),
        query_var(
            "gpu",
            "GPU",
            'label_values(algalon_gpu_up{cluster=~"$cluster", instance=~"$instance"}, gpu)',
            "NVML index: GPU 0, GPU 1, ...",
        ),
    ]
    return dashboard(
        "algalon-fleet",
        "Algalon — GPU fleet",
        "Every GPU of every worker: utilization, memory, temperature, power, clocks, errors and availability, from algalon-exporter (dcgm-exporter names).",
        b,
        variables,
        ["algalon", "gpu", "nvidia"],
    )


def render() -> dict[str, str]:
    return {
        name: json.dumps(board, indent=2, ensure_ascii=False) + "\n"
        for name, board in (
            ("algalon-fleet.json", fleet()),
            ("algalon-jobs.json", jobs()),
        )
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="fail if the checked-in files are out of date",
    )
    args = parser.parse_args()
    stale = []
    for name, text in render().items():
        path = OUT / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(
            "out of date: "
            + ", ".join(stale)
            + "\nrun: python3 compose/host/grafana/build_dashboards.py",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
