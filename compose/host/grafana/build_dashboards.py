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

OUT = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}

# Filters: every whole-GPU series (MIG instance series, written with
# `-d g+i`, carry GPU_I_ID and would count twice), and series of a whole
# exporter (no gpu label).
GPU = 'cluster=~"$cluster", instance=~"$instance", gpu=~"$gpu", GPU_I_ID=""'
HOST = 'cluster=~"$cluster", instance=~"$instance"'
# Series name and legend of one GPU: "GPU 3 · node-17".
LEGEND = "GPU {{gpu}} · {{Hostname}}"


def fb_total(sel: str) -> str:
    """Framebuffer size from the default counters (FB_TOTAL is not among them)."""
    return (
        f"(DCGM_FI_DEV_FB_USED{{{sel}}} + DCGM_FI_DEV_FB_FREE{{{sel}}}"
        f" + DCGM_FI_DEV_FB_RESERVED{{{sel}}})"
    )


class Board:
    """Lays panels out on Grafana's 24-column grid, row by row."""

    def __init__(self) -> None:
        self.panels: list[dict] = []
        self.next_id = 1
        self.x = 0
        self.y = 0
        self.row_h = 0

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {
                "id": self._id(),
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                "panels": [],
            }
        )
        self.y += 1

    def _newline(self) -> None:
        if self.x:
            self.y += self.row_h
            self.x = 0
            self.row_h = 0

    def add(self, panel: dict, w: int, h: int) -> None:
        if self.x + w > 24:
            self._newline()
        panel = {"id": self._id(), **panel}
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)


def target(
    expr: str, legend: str = "", ref: str = "A", instant: bool = False, table=False
) -> dict:
    t = {
        "datasource": DS,
        "refId": ref,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
    }
    if table:
        t["format"] = "table"
    return t


def thresholds(*steps: tuple[float | None, str]) -> dict:
    return {
        "mode": "absolute",
        "steps": [{"color": c, "value": v} for v, c in steps],
    }


GREEN = ((None, "green"),)


def stat(title, expr, unit="none", desc="", steps=GREEN, decimals=None) -> dict:
    defaults = {
        "unit": unit,
        "thresholds": thresholds(*steps),
        "color": {"mode": "thresholds"},
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "type": "stat",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": [target(expr, instant=True)],
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "none",
            "justifyMode": "auto",
            "textMode": "auto",
            "orientation": "auto",
        },
    }


def bargauge(title, targets, unit, lo=0, hi=None, steps=GREEN, desc="") -> dict:
    defaults = {
        "unit": unit,
        "min": lo,
        "thresholds": thresholds(*steps),
        "color": {"mode": "thresholds"},
    }
    if hi is not None:
        defaults["max"] = hi
    return {
        "type": "bargauge",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "horizontal",
            "displayMode": "gradient",
            "showUnfilled": True,
            "valueMode": "color",
            "namePlacement": "left",
            "sizing": "auto",
        },
    }


def dashed(regex: str) -> dict:
    return {
        "matcher": {"id": "byRegexp", "options": regex},
        "properties": [
            {
                "id": "custom.lineStyle",
                "value": {"fill": "dash", "dash": [10, 10]},
            },
            {"id": "custom.fillOpacity", "value": 0},
        ],
    }


def timeseries(
    title, targets, unit, desc="", lo=None, hi=None, overrides=(), bars=False
) -> dict:
    defaults = {
        "unit": unit,
        "custom": {
            "drawStyle": "bars" if bars else "line",
            "lineWidth": 1,
            "fillOpacity": 10,
            "showPoints": "never",
            "spanNulls": False,
        },
        "color": {"mode": "palette-classic"},
    }
    if lo is not None:
        defaults["min"] = lo
    if hi is not None:
        defaults["max"] = hi
    return {
        "type": "timeseries",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": list(overrides)},
        "options": {
            "legend": {
                "displayMode": "table",
                "placement": "right",
                "calcs": ["lastNotNull", "max"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def state_timeline(title, expr, legend, mappings, desc="") -> dict:
    return {
        "type": "state-timeline",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": [target(expr, legend)],
        "fieldConfig": {
            "defaults": {
                "color": {"mode": "thresholds"},
                "thresholds": thresholds(*GREEN),
                "mappings": mappings,
                "custom": {"fillOpacity": 80, "lineWidth": 0},
            },
            "overrides": [],
        },
        "options": {
            "showValue": "auto",
            "mergeValues": True,
            "rowHeight": 0.9,
            "alignValue": "left",
            "legend": {"showLegend": False},
        },
    }


def value_map(pairs: list[tuple[str, str, str]]) -> list[dict]:
    return [
        {
            "type": "value",
            "options": {
                v: {"text": text, "color": color, "index": i}
                for i, (v, text, color) in enumerate(pairs)
            },
        }
    ]


def table(
    title, targets, desc="", rename=None, hide=(), unit=None, transformations=None
) -> dict:
    organize = {
        "excludeByName": {k: True for k in ("Time", "__name__", "job", "UUID", *hide)},
        "renameByName": rename or {},
        "indexByName": {},
    }
    defaults: dict = {"custom": {"align": "auto"}}
    if unit:
        defaults["unit"] = unit
    return {
        "type": "table",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}},
        "transformations": (transformations or [])
        + [{"id": "organize", "options": organize}],
    }


def query_var(name: str, label: str, query: str, desc: str) -> dict:
    return {
        "type": "query",
        "name": name,
        "label": label,
        "description": desc,
        "datasource": DS,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-variable"},
        "refresh": 2,
        "regex": "",
        "sort": 3,
        "multi": True,
        "includeAll": True,
        # ".*" also matches a missing label (pushed job reports have no cluster).
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "hide": 0,
        "options": [],
    }


def datasource_var() -> dict:
    return {
        "type": "datasource",
        "name": "datasource",
        "label": "Datasource",
        "query": "prometheus",
        "regex": "",
        "current": {
            "selected": True,
            "text": "VictoriaMetrics",
            "value": "victoriametrics",
        },
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "options": [],
    }


def dashboard(uid, title, desc, board: Board, variables, tags) -> dict:
    return {
        "uid": uid,
        "title": title,
        "description": desc,
        "tags": tags,
        "editable": False,
        "graphTooltip": 1,
        # Every 10 s: a new sample arrives every 5 s (the exporter's period
        # and the default scrape interval); 5 s can be picked in the UI.
        "refresh": "10s",
        "time": {"from": "now-3h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "links": [
            {
                "title": "Algalon",
                "type": "dashboards",
                "tags": ["algalon"],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "templating": {"list": [datasource_var(), *variables]},
        "panels": board.panels,
    }


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
        bargauge(
            "Memory used",
            [
                target(
                    f"DCGM_FI_DEV_FB_USED{{{GPU}}} / {fb_total(GPU)}",
                    LEGEND,
                    instant=True,
                )
            ],
            "percentunit",
            hi=1,
            steps=((None, "green"), (0.9, "orange"), (0.95, "red")),
        ),
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
        timeseries(
            "Memory used vs total",
            [
                target(f"DCGM_FI_DEV_FB_USED{{{GPU}}} * 1048576", LEGEND + " used"),
                target(f"{fb_total(GPU)} * 1048576", LEGEND + " total", ref="B"),
            ],
            "bytes",
            lo=0,
            overrides=[dashed(".* total$")],
        ),
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
                    f"algalon_process_gpu_memory_bytes{{{GPU}}}",
                    instant=True,
                    table=True,
                )
            ],
            "Processes holding GPU memory, with their Slurm job or pod (exporter --processes).",
            rename={
                "Value": "GPU memory",
                "gpu": "GPU",
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
