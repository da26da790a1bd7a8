"""End to end: fake-NVML workers -> vmagent -> VictoriaMetrics -> dashboards
and vmalert, with the compose stack's own config files (see conftest.py)."""

from __future__ import annotations

import json
import math
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from e2e_stack import (
    COMPOSE,
    ROOT,
    http_get,
    read_env_file,
    service_env,
    wait_until,
)
from prometheus_client.parser import text_string_to_metric_families

DASHBOARDS = sorted((COMPOSE / "host/grafana/dashboards").glob("*.json"))
RULES = COMPOSE / "host/vmalert/rules.yml"

# The scrape interval compose gives vmagent (SCRAPE_INTERVAL, 5 s), which
# is also the Grafana datasource's timeInterval.
SCRAPE_INTERVAL = service_env(COMPOSE / "host/docker-compose.yml", "vmagent")[
    "ALGALON_SCRAPE_INTERVAL"
]
SCRAPE_SECONDS = int(SCRAPE_INTERVAL.rstrip("s"))
# What Grafana puts in for its own variables at that timeInterval, on a
# 3-hour dashboard over ~1000 px: $__interval = max(timeInterval, 10 s),
# $__rate_interval = max(4 x timeInterval, $__interval + timeInterval).
INTERVAL_SECONDS = max(SCRAPE_SECONDS, 10)
GRAFANA_VARS = {
    "__rate_interval": f"{max(4 * SCRAPE_SECONDS, INTERVAL_SECONDS + SCRAPE_SECONDS)}s",
    "__interval": f"{INTERVAL_SECONDS}s",
    "__range": "1h",
}


def panels(dashboard: dict):
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows


def substitute(expr: str, dashboard: dict, **chosen: str) -> str:
    """The expression as Grafana sends it with every variable at "All", or
    at the value `chosen` gives it."""
    values = dict(GRAFANA_VARS)
    for var in dashboard.get("templating", {}).get("list", []):
        if var["type"] in ("query", "custom"):
            # Grafana's All for a variable without allValue is every value
            # OR-ed together: ".+" matches the same series.
            values[var["name"]] = var.get("allValue") or ".+"
    values.update(chosen)
    for name, value in values.items():
        expr = re.sub(r"\$\{" + name + r"(?::\w+)?\}|\$" + name + r"\b", value, expr)
    # $1, $2 … are label_replace()'s capture groups: Grafana has no variable
    # named so and leaves them as they are.
    left = re.search(r"\$(?!\d)", expr)
    assert not left, f"unsubstituted variable in {expr!r}"
    return expr


def dashboard_queries():
    for path in DASHBOARDS:
        doc = json.loads(path.read_text())
        for panel in panels(doc):
            for t in panel.get("targets", []):
                if t.get("expr"):
                    instant = bool(t.get("instant")) and not t.get("range", False)
                    yield pytest.param(
                        doc,
                        t["expr"],
                        instant,
                        id=f"{path.stem}:{panel['title']}:{t.get('refId', 'A')}",
                    )


def variable_queries():
    for path in DASHBOARDS:
        doc = json.loads(path.read_text())
        for var in doc["templating"]["list"]:
            if var["type"] == "query":
                q = (
                    var["query"]["query"]
                    if isinstance(var["query"], dict)
                    else var["query"]
                )
                yield pytest.param(doc, q, id=f"{path.stem}:${var['name']}")


def has_data(result: list[dict]) -> bool:
    for series in result:
        points = series.get("values") or [series.get("value")]
        if any(p and not math.isnan(float(p[1])) for p in points):
            return True
    return False


def test_every_target_scraped_with_cluster_label(stack):
    up = {r["metric"]["instance"]: r for r in stack.vm.query("up")}
    for exp in stack.exporters.values():
        assert up[exp.instance]["value"][1] == "1", f"{exp.name} not scraped"
        assert up[exp.instance]["metric"]["cluster"] == exp.cluster
        assert up[exp.instance]["metric"]["job"] == "algalon"
    assert up[stack.dead]["value"][1] == "0"
    for job_source in (stack.job_instance, stack.mig_job_instance):
        assert up[job_source]["metric"]["job"] == "algalon-jobs"
        assert up[job_source]["metric"]["cluster"] == "gpu-a"


def test_gpu_series_carry_gpu_hostname_cluster(stack):
    series = stack.vm.series('{__name__=~"DCGM_FI_.*|algalon_gpu_up", job="algalon"}')
    assert len(series) > 100
    for s in series:
        for label in ("gpu", "Hostname", "cluster", "instance", "UUID", "modelName"):
            assert s.get(label), f"{s} lacks {label}"
    gpus = stack.vm.query(
        'count by (cluster, instance) (algalon_gpu_up{job="algalon"})'
    )
    got = {
        (r["metric"]["cluster"], r["metric"]["instance"]): int(r["value"][1])
        for r in gpus
    }
    want = {(e.cluster, e.instance): e.gpus for e in stack.exporters.values()}
    assert got == want


@pytest.mark.parametrize(("dashboard", "expr", "instant"), list(dashboard_queries()))
def test_dashboard_query_returns_data(stack, dashboard, expr, instant):
    query = substitute(expr, dashboard)
    result = (
        stack.vm.query(query)
        if instant
        else stack.vm.query_range(query, 180, GRAFANA_VARS["__interval"])
    )
    assert has_data(result), f"no data for {query!r}"


@pytest.mark.parametrize(("dashboard", "query"), list(variable_queries()))
def test_template_variable_has_values(stack, dashboard, query):
    m = re.fullmatch(r"label_values\((?:(.+),\s*)?(\w+)\)", query.strip())
    assert m, f"unsupported variable query {query!r}"
    match, label = m.groups()
    values = stack.vm.label_values(
        label, substitute(match, dashboard) if match else None
    )
    assert values, f"{query} has no values"
    if label == "gpu":
        assert set(values) >= {"0", "1", "2", "3"}


def test_dashboards_name_gpus_by_index_never_uuid():
    for path in DASHBOARDS:
        doc = json.loads(path.read_text())
        for panel in panels(doc):
            for t in panel.get("targets", []):
                legend = t.get("legendFormat", "")
                assert "UUID" not in legend, (
                    f"{path.name}: {panel['title']} names GPUs by UUID"
                )
                if path.stem == "algalon-fleet" and "{{gpu}}" in legend:
                    assert "GPU {{gpu}}" in legend


def test_new_target_file_is_picked_up(stack):
    exp = stack.start_exporter(
        "a3", stack.spare_port, "gpu-c", stack.work / "healthy.json", 4
    )
    wait_until(
        "a3 /health", lambda: http_get(f"http://{exp.instance}/health")[0] == 200, 30
    )
    t0 = time.monotonic()
    stack.add_worker(exp.instance, "gpu-c")  # a new file: targets/gpu-c.yml
    assert (stack.targets / "gpu-c.yml").exists()
    wait_until(
        "vmagent to scrape the new target",
        lambda: stack.vm.query(
            f'up{{instance="{exp.instance}", cluster="gpu-c"}} == 1'
        ),
        45,
        1,
        stack.procs.check_alive,
    )
    took = time.monotonic() - t0
    print(f"new target file scraped and stored {took:.1f} s after it was written")
    # fileSDCheckInterval 5 s + first scrape within the 5 s interval + a flush.
    assert took < 30
    (stack.work / "pickup-seconds").write_text(f"{took:.1f}\n")


# Alert name -> the faulty series that must raise it (labels to match): the
# GPUs of b1 (tests/e2e/scenarios/faults.json), b2 whose driver goes and NVML re-init hangs, b3
# back from a reboot with a GPU fewer, and a target nobody answers on.
EXPECTED_ALERTS = {
    "AlgalonGpuDown": [
        {"instance": "b1", "gpu": "0"},
        # b2's driver goes away: each of its GPUs is down (and then its
        # sampler hangs re-opening NVML: AlgalonSamplesStale below).
        *({"instance": "b2", "gpu": str(g)} for g in range(4)),
    ],
    "AlgalonGpuXidCritical": [
        {"instance": "b1", "gpu": "1", "xid": "48"},
        # GPU 0 falls off the bus announcing itself with XID 79; its XID
        # history outlives its readings.
        {"instance": "b1", "gpu": "0", "xid": "79"},
    ],
    "AlgalonGpuXidError": [{"instance": "b1", "gpu": "6", "xid": "94"}],
    "AlgalonGpuXidApplication": [{"instance": "b1", "gpu": "5", "xid": "13"}],
    "AlgalonGpuEccUncorrectable": [{"instance": "b1", "gpu": "1"}],
    "AlgalonGpuRowRemapFailure": [{"instance": "b1", "gpu": "1"}],
    "AlgalonGpuRowRemapPending": [{"instance": "b1", "gpu": "6"}],
    "AlgalonGpuTemperatureHigh": [{"instance": "b1", "gpu": "2"}],
    "AlgalonGpuTemperatureCritical": [{"instance": "b1", "gpu": "2"}],
    "AlgalonGpuMemoryTemperatureHigh": [{"instance": "b1", "gpu": "6"}],
    "AlgalonGpuThermalThrottling": [{"instance": "b1", "gpu": "2"}],
    "AlgalonGpuPowerThrottling": [{"instance": "b1", "gpu": "7"}],
    "AlgalonGpuNvlinkErrors": [
        {"instance": "b1", "gpu": "7", "nvlink_counter": "replay"}
    ],
    "AlgalonGpuPcieReplays": [{"instance": "b1", "gpu": "7"}],
    "AlgalonGpuMemoryNearFull": [{"instance": "b1", "gpu": "3"}],
    "AlgalonGpuIdleWithJob": [{"instance": "b1", "gpu": "4"}],
    "AlgalonExporterDown": [{"instance": "dead"}],
    "AlgalonSamplesStale": [{"instance": "b2"}],
    "AlgalonNvmlErrors": [{"instance": "b1", "call": "nvmlDeviceGetTemperature"}],
    "AlgalonGpuCountDropped": [{"instance": "b3"}],
}


def rules() -> dict[str, dict]:
    doc = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}


def test_every_rule_has_a_fault_that_raises_it():
    assert set(rules()) == set(EXPECTED_ALERTS)


def test_fault_scenario_raises_each_alert_and_healthy_workers_none(stack):
    def resolve(labels: dict) -> dict:
        out = dict(labels, cluster="gpu-b")
        name = out["instance"]
        out["instance"] = (
            stack.dead if name == "dead" else stack.exporters[name].instance
        )
        return out

    expected = [
        (name, resolve(labels))
        for name, label_sets in EXPECTED_ALERTS.items()
        for labels in label_sets
    ]
    state: dict[int, tuple[str, str]] = {}

    def matches(alert: dict, name: str, labels: dict) -> bool:
        return alert["name"] == name and all(
            alert["labels"].get(k) == v for k, v in labels.items()
        )

    def all_raised() -> bool:
        state.clear()
        for alert in stack.alerts():
            for i, (name, labels) in enumerate(expected):
                if matches(alert, name, labels):
                    state[i] = (name, alert["state"])
        return len(state) == len(expected)

    try:
        wait_until(
            "every expected alert in vmalert",
            all_raised,
            100,
            2,
            stack.procs.check_alive,
        )
    except AssertionError as e:
        missing = [expected[i] for i in range(len(expected)) if i not in state]
        raise AssertionError(
            f"{e}\nnot raised: {missing}\nvmalert has: {stack.alerts()}"
        ) from None
    spec = rules()
    for name, st in state.values():
        # Production `for:` durations: rules without one fire at once; the
        # others are pending while their `for:` runs and firing once it has
        # elapsed (GPU 0 is lost 2 s after its exporter starts, so on a slow
        # machine its 1 m can run out before this check), never inactive.
        if spec[name].get("for"):
            assert st in ("pending", "firing"), (name, st)
        else:
            assert st == "firing", (name, st)

    # Nothing else on the faulty node, nothing at all on healthy workers.
    others = [
        (a["name"], a["labels"])
        for a in stack.alerts()
        if not any(matches(a, n, labels) for n, labels in expected)
    ]
    assert not others, f"unexpected alerts: {others}"
    # Over the whole run, not just now: vmalert writes every alert state to
    # VictoriaMetrics as ALERTS series.
    wait_until("vmalert's ALERTS series", lambda: stack.vm.query("ALERTS"), 30, 1)
    healthy = stack.vm.query('count_over_time(ALERTS{cluster!="gpu-b"}[10m])')
    assert not healthy, f"healthy workers raised alerts: {healthy}"

    # Firing alerts reached Alertmanager.
    firing = {n for n, st in state.values() if st == "firing"}
    wait_until(
        "vmalert to notify the firing alerts",
        lambda: firing <= {a["labels"]["alertname"] for a in stack.notified()},
        30,
        1,
    )
    assert all(a["labels"].get("cluster") == "gpu-b" for a in stack.notified())


def test_vmalert_renders_runbook_and_dashboard_links(stack):
    """vmalert's own templating: the runbook section of each alert, and the
    fleet dashboard under Grafana's root URL (vmalert's -external.url) at the
    alert's cluster, worker and GPU."""
    grafana = read_env_file(COMPOSE / "host/.env.example")["GRAFANA_ROOT_URL"]
    alerts = stack.alerts()
    assert {a["name"] for a in alerts} >= set(EXPECTED_ALERTS)
    for a in alerts:
        labels, links = a["labels"], a["annotations"]
        assert links["runbook_url"].endswith(
            f"/compose/RUNBOOKS.md#{a['name'].lower()}"
        )
        want = {"var-cluster": labels["cluster"], "var-instance": labels["instance"]}
        if "gpu" in labels:
            want["var-gpu"] = labels["gpu"]
        query = urllib.parse.urlencode(want, quote_via=urllib.parse.quote)
        assert (
            links["dashboard"] == f"{grafana}/d/algalon-fleet/algalon-gpu-fleet?{query}"
        )


def test_alertmanager_holds_back_xid_79_of_a_gpu_that_is_down(stack):
    """b1's GPU 0 falls off the bus with XID 79: once AlgalonGpuDown fires
    (after its minute), Alertmanager inhibits that XID alert — with the labels
    vmalert really sends — and nothing else of the node."""
    b1 = stack.exporters["b1"].instance

    def find(alerts, name, **labels):
        return [
            a
            for a in alerts
            if a["labels"]["alertname"] == name
            and a["labels"]["instance"] == b1
            and all(a["labels"].get(k) == v for k, v in labels.items())
        ]

    def settled():
        alerts = stack.notified()
        down = find(alerts, "AlgalonGpuDown", gpu="0")
        xid79 = find(alerts, "AlgalonGpuXidCritical", gpu="0", xid="79")
        if down and xid79 and xid79[0]["status"]["inhibitedBy"]:
            return alerts
        return None

    alerts = wait_until(
        "AlgalonGpuDown to fire and inhibit XID 79",
        settled,
        90,
        2,
        stack.procs.check_alive,
    )
    inhibited = {
        (a["labels"]["alertname"], a["labels"].get("gpu"), a["labels"].get("xid"))
        for a in alerts
        if a["status"]["inhibitedBy"]
    }
    assert ("AlgalonGpuXidCritical", "0", "79") in inhibited
    # GPU 2's temperature may have been high for 5 minutes by now: muted by
    # its critical temperature alert, the other inhibition of the node.
    assert inhibited <= {
        ("AlgalonGpuXidCritical", "0", "79"),
        ("AlgalonGpuTemperatureHigh", "2", None),
    }, inhibited
    xid48 = find(alerts, "AlgalonGpuXidCritical", gpu="1", xid="48")
    assert xid48 and xid48[0]["status"]["state"] == "active"


def test_sharded_vmagents_scrape_each_target_once(stack):
    """compose/cluster's vmagent-0 and vmagent-1 (membersCount=2) over the same targets."""
    instances = {e.instance for e in stack.exporters.values()} | {
        stack.dead,
        stack.job_instance,
        stack.mig_job_instance,
    }

    def shards_by_instance() -> dict[str, set[str]]:
        result = stack.vm_shards.query(
            "count by (instance, vmagent_shard) (count_over_time(up[10m]))"
        )
        got: dict[str, set[str]] = {}
        for r in result:
            got.setdefault(r["metric"]["instance"], set()).add(
                r["metric"]["vmagent_shard"]
            )
        return got

    got = wait_until(
        "both shards' samples of every target",
        lambda: (g := shards_by_instance()) and set(g) >= instances and g,
        45,
        1,
    )
    twice = {i: s for i, s in got.items() if len(s) != 1}
    assert not twice, f"targets scraped by more than one shard: {twice}"
    # Each vmagent's own view agrees: every target active in exactly one shard.
    active = []
    for url in stack.shard_urls:
        with urllib.request.urlopen(f"{url}/api/v1/targets", timeout=5) as r:
            doc = json.load(r)
        active.append({t["labels"]["instance"] for t in doc["data"]["activeTargets"]})
    assert not (active[0] & active[1]), (
        f"scraped by both shards: {active[0] & active[1]}"
    )
    assert active[0] | active[1] >= instances
    (stack.work / "shards.json").write_text(
        json.dumps([sorted(a) for a in active], indent=1)
    )


def _vm_metrics(base: str) -> dict[str, float]:
    status, body = http_get(f"{base}/metrics")
    assert status == 200
    out: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


def _sum(metrics: dict[str, float], pattern: str) -> float:
    rx = re.compile(pattern)
    return sum(v for k, v in metrics.items() if rx.fullmatch(k))


def test_measure_ingestion(stack):
    """Figures for compose/SCALING.md, from the scrapes and VictoriaMetrics' own /metrics."""
    a1 = stack.exporters["a1"]
    per_gpu = stack.vm.scalar(f'count({{instance="{a1.instance}", gpu!=""}})') / a1.gpus
    per_node = stack.vm.scalar(f'count({{instance="{a1.instance}", gpu=""}})')
    scraped = stack.vm.scalar(f'scrape_samples_scraped{{instance="{a1.instance}"}}')
    # vmagent adds 5 series per target: up, scrape_duration_seconds,
    # scrape_samples_scraped, scrape_samples_post_metric_relabeling,
    # scrape_series_added.
    scrape_rate = (
        stack.vm.scalar('sum(scrape_samples_scraped{job="algalon"} + 5)')
        / SCRAPE_SECONDS
    )
    rows = 'vm_rows_inserted_total{type="promremotewrite"}'
    m0, t0 = _vm_metrics(stack.vm_url), time.monotonic()
    time.sleep(15)
    m1, t1 = _vm_metrics(stack.vm_url), time.monotonic()
    written = (m1[rows] - m0[rows]) / (t1 - t0)
    http_get(f"{stack.vm_url}/internal/force_flush")
    time.sleep(1)
    m = _vm_metrics(stack.vm_url)
    data_bytes = _sum(m, r'vm_data_size_bytes\{type="storage/(small|big)"\}')
    data_rows = _sum(m, r'vm_rows\{type="storage/(small|big)"\}')
    index_bytes = _sum(m, r'vm_data_size_bytes\{type="indexdb.*"\}')
    series = stack.vm.scalar("count({__name__!=''})")
    gpus = sum(e.gpus for e in stack.exporters.values())
    figures = {
        "series_per_gpu": per_gpu,
        "series_per_node_without_gpu_label": per_node,
        "samples_per_scrape_4_gpu_node": scraped,
        "exporters": len(stack.exporters),
        "gpus_scraped": gpus,
        "scrape_interval_s": SCRAPE_SECONDS,
        "exporter_samples_per_s": round(scrape_rate, 2),
        "exporter_samples_per_s_per_gpu": round(scrape_rate / gpus, 3),
        "remote_write_rows_per_s_all_writers": round(written, 2),
        "stored_rows": data_rows,
        "fresh_parts_bytes_per_sample": round(data_bytes / data_rows, 2)
        if data_rows
        else None,
        "index_bytes_per_series": round(index_bytes / series, 1) if series else None,
        "active_series": series,
        "pipeline_seconds": round(time.monotonic() - stack.started, 1),
    }
    out = ROOT / "target/e2e/figures.json"
    out.write_text(json.dumps(figures, indent=1) + "\n")
    print(json.dumps(figures))
    assert 30 <= per_gpu <= 60, "series per GPU changed: update compose/SCALING.md"
    # What vmagent wrote is what the exporters served, plus the job target's
    # series and vmalert's ALERTS (a few per second) and its recording rules'
    # series, written every evaluation (TEST_ONLY_FLAGS: every 2 s here).
    recorded = stack.vm.scalar('count({__name__=~"algalon:.+"})') or 0
    assert scrape_rate <= written <= scrape_rate * 1.5 + 10 + recorded / 2


# The MIG node (m1): after the tests that wait anyway (a new target, the
# ingestion figures), so its scenario has long passed the repartition at
# t = 30 s that the first test waits for when run alone.
FLEET = COMPOSE / "host/grafana/dashboards/algalon-fleet.json"
NVIDIA = COMPOSE / "host/grafana/dashboards/dcgm-exporter-dashboard.json"
MIG_ROW = "MIG instances"


def rows(dashboard: dict):
    """(title of its row, panel) for every panel, rows left out."""
    row = ""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
            for inner in panel.get("panels", []):
                yield row, inner
        else:
            yield row, panel


def legend(fmt: str, labels: dict) -> str:
    """A series' name as Grafana writes it from a legend format."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m[1], ""), fmt)


def served_instances(exp) -> set[tuple[str, str, str]]:
    """(gpu, profile, GPU instance id) of the MIG instances an exporter
    serves now, read with prometheus_client's parser."""
    status, body = http_get(f"http://{exp.instance}/metrics")
    assert status == 200
    return {
        (s.labels["gpu"], s.labels["GPU_I_PROFILE"], s.labels["GPU_I_ID"])
        for family in text_string_to_metric_families(body.decode())
        if family.name == "DCGM_FI_DEV_FB_USED"
        for s in family.samples
        if s.labels.get("GPU_I_ID")
    }


def test_fleet_dashboard_shows_mig_instances_under_their_gpu(stack):
    """m1 (testing/scenarios/h100-mig.json, -d g+i): the MIG row has every
    instance the exporter serves, each named after its GPU, with its memory,
    GPM activity and processes; selecting one GPU keeps its instances only."""
    m1 = stack.exporters["m1"]
    doc = json.loads(FLEET.read_text())
    table = next(p for row, p in rows(doc) if p["title"] == "MIG instances")
    memory = next(t for t in table["targets"] if t["refId"] == "A")

    def names(target: dict = memory, **chosen) -> set[str]:
        expr = substitute(target["expr"], doc, instance=m1.instance, **chosen)
        return {r["metric"]["mig"] for r in stack.vm.query(expr)}

    # The scenario repartitions at t = 30 s: GPU 2 turns MIG (4g.40gb GI 1 +
    # 3g.40gb GI 2), GPU 1 becomes 2 x 3g.40gb (GI 1 new, with vllm from
    # t = 32 s; GI 3 and 9 destroyed). Wait for that, and for VictoriaMetrics
    # to hold what the exporter serves in every column (GPM needs two
    # samples of an instance). Processes (F): only instances that run one.
    after = {
        "GPU 0 · MIG 1g.10gb (GI 7)",
        "GPU 1 · MIG 3g.40gb (GI 1)",
        "GPU 1 · MIG 3g.40gb (GI 2)",
        "GPU 2 · MIG 4g.40gb (GI 1)",
        "GPU 2 · MIG 3g.40gb (GI 2)",
    }
    columns = [t for t in table["targets"] if t["refId"] != "F"]

    def settled() -> set[str] | None:
        served = {f"GPU {g} · MIG {p} (GI {i})" for g, p, i in served_instances(m1)}
        if after <= served and all(names(t) == served for t in columns):
            return served
        return None

    got = wait_until(
        "the MIG table to list m1's instances after the repartition",
        settled,
        60,
        1,
        stack.procs.check_alive,
    )
    assert "GPU 1 · MIG 2g.20gb (GI 3)" not in got
    assert names(gpu="2") == {n for n in got if n.startswith("GPU 2 ")}
    # GI 7 holds vllm (8205 MiB of 9984), in the table and in its process list.
    used = {
        r["metric"]["mig"]: float(r["value"][1])
        for r in stack.vm.query(substitute(memory["expr"], doc, instance=m1.instance))
    }
    assert used["GPU 0 · MIG 1g.10gb (GI 7)"] == 8205 * 1048576
    procs = next(p for row, p in rows(doc) if p["title"] == "MIG processes")
    rows_ = stack.vm.query(
        substitute(procs["targets"][0]["expr"], doc, instance=m1.instance)
    )
    assert {r["metric"]["mig"]: r["metric"]["pid"] for r in rows_}[
        "GPU 0 · MIG 1g.10gb (GI 7)"
    ] == "6101"
    # The time series and bars name each instance as the table does.
    for row, panel in rows(doc):
        if not row.startswith(MIG_ROW) or panel["type"] == "table":
            continue
        for t in panel["targets"]:
            result = stack.vm.query(substitute(t["expr"], doc, instance=m1.instance))
            shown = {legend(t["legendFormat"], r["metric"]) for r in result}
            host = result[0]["metric"]["Hostname"]
            suffix = t["legendFormat"].split("· {{Hostname}}", 1)[1]
            assert shown == {f"{n} · {host}{suffix}" for n in got}, panel["title"]


def test_whole_gpu_panels_count_each_gpu_once_on_a_mig_node(stack):
    """On m1, whose FB and GPM fields are also served per MIG instance, the
    fleet dashboard's whole-GPU panels see 8 GPUs: no series of theirs is an
    instance's, no legend shows a GPU twice, and the fleet figures are the
    physical GPUs' (they would differ with the instances counted)."""
    m1 = stack.exporters["m1"]
    doc = json.loads(FLEET.read_text())
    checked = 0
    for row, panel in rows(doc):
        if row.startswith(MIG_ROW):
            continue
        for t in panel["targets"]:
            result = stack.vm.query(substitute(t["expr"], doc, instance=m1.instance))
            on_instances = [r["metric"] for r in result if r["metric"].get("GPU_I_ID")]
            if panel["title"] == "GPU processes":
                # A process is written once, on the instance it runs in:
                # the process list keeps those (vllm, pid 6101, on GI 7).
                assert any(
                    m["pid"] == "6101" and m["GPU_I_ID"] == "7" for m in on_instances
                ), result
                continue
            assert not on_instances, f"{panel['title']}: {on_instances[:3]}"
            fmt = t.get("legendFormat", "")
            if "{{gpu}}" in fmt:
                shown = [legend(fmt, r["metric"]) for r in result]
                assert len(shown) == len(set(shown)), f"{panel['title']}: {shown}"
                checked += 1
    assert checked >= 20

    def stat(title: str) -> float:
        panel = next(p for _, p in rows(doc) if p["title"] == title)
        expr = substitute(panel["targets"][0]["expr"], doc, instance=m1.instance)
        return float(stack.vm.query(expr, at=now)[0]["value"][1])

    now = time.time() - 2
    assert stat("GPUs") == m1.gpus == 8
    # Memory in use, from the raw series of the same instant.
    fb = {}
    for part in ("USED", "FREE", "RESERVED"):
        for r in stack.vm.query(
            f'DCGM_FI_DEV_FB_{part}{{instance="{m1.instance}"}}', at=now
        ):
            key = (r["metric"]["gpu"], r["metric"].get("GPU_I_ID", ""))
            fb.setdefault(key, {})[part] = float(r["value"][1])
    whole = [v for (_, gi), v in fb.items() if not gi]
    every = list(fb.values())
    assert len(whole) == 8 and len(every) > 8

    def ratio(parts: list[dict]) -> float:
        return sum(p["USED"] for p in parts) / sum(sum(p.values()) for p in parts)

    assert stat("Memory in use") == pytest.approx(ratio(whole))
    assert ratio(every) != pytest.approx(ratio(whole))


def test_nvidia_dashboard_on_a_mig_node(stack):
    """NVIDIA's dashboard, unchanged, on m1 (-d g+i): what dcgm-exporter
    itself gives it. Its GPU variable lists the 8 GPUs; its gauges (mean
    temperature, total power) aggregate those 8, as no instance has a
    temperature or a power of its own; its framebuffer and tensor graphs show
    each instance as a series of its own beside its GPU, told apart by
    GPU_I_PROFILE and GPU_I_ID (its legends, "GPU {{gpu}}", do not name them,
    as with dcgm-exporter)."""
    m1 = stack.exporters["m1"]
    doc = json.loads(NVIDIA.read_text())
    gpus = stack.vm.label_values(
        "gpu", f'DCGM_FI_DEV_GPU_TEMP{{instance="{m1.instance}"}}'
    )
    assert sorted(gpus) == [str(g) for g in range(8)]
    instances = served_instances(m1)
    assert instances
    seen = set()
    for panel in panels(doc):
        for t in panel.get("targets", []):
            expr = substitute(t["expr"], doc, instance=m1.instance)
            result = stack.vm.query(expr)
            assert result, f"{panel['title']}: no data"
            labels = [r["metric"] for r in result]
            if panel["title"] in ("GPU Avg. Temp", "GPU Power Total"):
                field = re.search(r"DCGM_FI_\w+", t["expr"])[0]
                per_gpu = stack.vm.query(f'{field}{{instance="{m1.instance}"}}')
                assert len(per_gpu) == 8, per_gpu
                assert not any(r["metric"].get("GPU_I_ID") for r in per_gpu)
                continue
            whole = [m for m in labels if not m.get("GPU_I_ID")]
            assert len({m["gpu"] for m in whole}) == len(whole) <= 8, panel["title"]
            for m in labels:
                if m.get("GPU_I_ID"):
                    seen.add(panel["title"])
                    assert m["GPU_I_PROFILE"], m
    # The framebuffer and tensor graphs carry instances; the others do not.
    assert seen == {"GPU Framebuffer Mem Used", "Tensor Core Utilization"}


def test_logs_hold_no_errors(stack):
    """The components ran clean (warnings about the injected faults aside)."""
    bad = []
    for name in ("vmagent", "vmagent-0", "vmagent-1", "vmalert", "victoria-metrics"):
        for line in stack.procs.log_tail(name, 10_000).splitlines():
            level = line.split("\t")[1] if line.count("\t") >= 2 else ""
            # The dead target is expected to fail its scrapes, and b3 may
            # miss one while it reboots.
            expected = (stack.dead, stack.exporters["b3"].instance)
            if level in ("error", "fatal", "panic") and not any(
                e in line for e in expected
            ):
                bad.append(f"{name}: {line}")
    assert not bad, "\n".join(bad[:20])


def test_dashboard_files_are_the_provisioned_ones():
    provider = yaml.safe_load(
        (COMPOSE / "host/grafana/provisioning/dashboards/algalon.yml").read_text()
    )
    path = provider["providers"][0]["options"]["path"]
    compose = yaml.safe_load((COMPOSE / "host/docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{path}:ro" in mounts
    assert Path(COMPOSE / "host/grafana/dashboards").is_dir()
