"""Grafana panel builders shared by Algalon's generated dashboards
(build_dashboards.py): Grafana's 24-column grid, the datasource variable,
targets, stat / bar gauge / time series / state timeline / table panels,
query variables and the dashboard envelope."""

from __future__ import annotations

DS = {"type": "prometheus", "uid": "${datasource}"}

# Filters: every whole-GPU series (MIG instance series, written with
# `-d g+i`, carry GPU_I_ID and would count twice), and series of a whole
# exporter (no gpu label).
GPU = 'cluster=~"$cluster", instance=~"$instance", gpu=~"$gpu", GPU_I_ID=""'
# Series of the selected GPUs and their MIG instances alike: a process is
# written once, on its instance when it runs in one.
GPU_ANY = 'cluster=~"$cluster", instance=~"$instance", gpu=~"$gpu"'
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
    """Lays panels out on Grafana's 24-column grid, row by row.

    A collapsed row holds its panels (Grafana queries them only once the
    row is opened) at the places they take when it is open; the rows after
    it start one line below it."""

    def __init__(self) -> None:
        self.panels: list[dict] = []
        self.next_id = 1
        self.x = 0
        self.y = 0
        self.row_h = 0
        self._collapsed: dict | None = None

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def row(self, title: str, collapsed: bool = False) -> None:
        self._newline()
        if self._collapsed is not None:
            self.y = self._collapsed["gridPos"]["y"] + 1
            self._collapsed = None
        row = {
            "id": self._id(),
            "type": "row",
            "title": title,
            "collapsed": collapsed,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
            "panels": [],
        }
        self.panels.append(row)
        self.y += 1
        if collapsed:
            self._collapsed = row

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
        (self._collapsed["panels"] if self._collapsed else self.panels).append(panel)
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


def memory_share(title: str, sel: str, legend: str, desc: str = "") -> dict:
    """Bar gauge of each device's memory in use, as a share of its own
    framebuffer, coloured at AlgalonGpuMemoryNearFull's 90 % and 95 %; for
    whole GPUs and MIG instances alike (`sel`, `legend`)."""
    return bargauge(
        title,
        [
            target(
                f"DCGM_FI_DEV_FB_USED{{{sel}}} / {fb_total(sel)}",
                legend,
                instant=True,
            )
        ],
        "percentunit",
        hi=1,
        steps=((None, "green"), (0.9, "orange"), (0.95, "red")),
        desc=desc,
    )


def memory_vs_total(title: str, sel: str, legend: str) -> dict:
    """Each device's memory used against its framebuffer size (dashed), in
    bytes; for whole GPUs and MIG instances alike."""
    return timeseries(
        title,
        [
            target(f"DCGM_FI_DEV_FB_USED{{{sel}}} * 1048576", legend + " used"),
            target(f"{fb_total(sel)} * 1048576", legend + " total", ref="B"),
        ],
        "bytes",
        lo=0,
        overrides=[dashed(".* total$")],
    )


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
    title,
    targets,
    desc="",
    rename=None,
    hide=(),
    unit=None,
    transformations=None,
    order=(),
    units=None,
) -> dict:
    """A table of instant queries; `order` puts these columns first (by
    their names before renaming), `units` gives columns (by their names
    after renaming) a unit of their own."""
    organize = {
        "excludeByName": {k: True for k in ("Time", "__name__", "job", "UUID", *hide)},
        "renameByName": rename or {},
        "indexByName": {name: i for i, name in enumerate(order)},
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
        "fieldConfig": {
            "defaults": defaults,
            "overrides": [
                {
                    "matcher": {"id": "byName", "options": name},
                    "properties": [{"id": "unit", "value": u}],
                }
                for name, u in (units or {}).items()
            ],
        },
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
