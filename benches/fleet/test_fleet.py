"""Checks of the fleet benchmark's pieces that need no servers (the smoke run,
`fleet.py --quick`, runs the rest)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fleet
import fleet_host


def test_scrape_config_is_composes_at_the_benchmark_interval(tmp_path: Path) -> None:
    text, changed = fleet_host.scrape_config(5, tmp_path)
    doc = yaml.safe_load(text)
    assert doc["global"]["scrape_interval"] == "5s"
    # A timeout above the interval is refused by Prometheus-style scrapers.
    assert fleet_host._seconds(doc["global"]["scrape_timeout"]) <= 5
    jobs = {j["job_name"]: j for j in doc["scrape_configs"]}
    assert jobs["algalon"]["file_sd_configs"][0]["files"] == [f"{tmp_path}/*.yml"]
    assert all("scrape_interval" not in j for j in jobs.values())
    original = yaml.safe_load(fleet_host.SCRAPE_YML.read_text())["global"]
    assert ("scrape_interval" in changed) == (original["scrape_interval"] != "5s")


def test_every_dashboard_panel_becomes_a_query_with_all_selected() -> None:
    queries = fleet.panel_queries(step_s=5, scrape_s=5)
    assert len(queries) >= 30
    for title, expr in queries:
        # No Grafana variable left; $1…$9 are label_replace's capture groups.
        assert not re.search(r"\$(?![0-9])", expr), (title, expr)
    exprs = [e for _, e in queries]
    assert any('instance=~".*"' in e for e in exprs)
    # $__rate_interval as Grafana computes it: max(step + scrape, 4 x scrape).
    assert any("[20s]" in e for e in exprs)
    assert any("[900s]" in e for e in exprs)  # $__range of the 15 minutes


def test_dashboard_variables_are_label_queries() -> None:
    names = {name: (label, match) for name, label, match in fleet.variable_queries()}
    assert names["instance"][0] == "instance"
    assert names["gpu"][0] == "gpu"
    assert all("$" not in m for _, m in names.values())


def test_metric_sum_matches_name_and_labels() -> None:
    page = {
        'vm_rows_inserted_total{type="promremotewrite"}': 10.0,
        'vm_rows_inserted_total{type="influx"}': 3.0,
        "vm_rows_inserted_total_other": 99.0,
    }
    assert fleet_host.metric_sum(page, "vm_rows_inserted_total") == 13.0
    assert (
        fleet_host.metric_sum(page, "vm_rows_inserted_total", type="promremotewrite")
        == 10.0
    )
