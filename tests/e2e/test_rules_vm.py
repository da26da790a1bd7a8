"""The promtool unit tests of tests/e2e/rules/ replayed on VictoriaMetrics.

The same rules run on Prometheus (promtool test rules, test_static.py) and
on VictoriaMetrics (vmalert, compose/host), whose engines differ exactly where
the rules are subtle: a counter's first sample, lookback after a gap. Here a
real victoria-metrics gets each test case's input series, the recording rules
are evaluated at every step and written back as vmalert writes them, and each
alert rule is evaluated the way vmalert does (instant queries, step 5m): an
alert fires at T when its expression returned the series at every
evaluation from T - for to T. Every case must give the alerts promtool
expects (labels; the annotations' templates are checked by promtool and the
end-to-end pipeline).

wallclock.yml is left out: promtool's clock starts at the Unix epoch, so its
time() cases mean nothing at another time (the pipeline covers them live).
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections import defaultdict

import pytest
import yaml
from e2e_stack import http_get, serving
from rule_tests import (
    RULE_TESTS,
    expand,
    load_rules,
    metric_names,
    parse_series,
    seconds,
)

REPLAYED = [p for p in RULE_TESTS if p.name != "wallclock.yml"]
DAY = 86400
# vmalert's -datasource.queryStep default: the lookback of instant queries.
QUERY_STEP = "5m"


def cases():
    for path in REPLAYED:
        doc = yaml.safe_load(path.read_text())
        interval = seconds(doc.get("evaluation_interval", "1m"))
        for n, case in enumerate(doc["tests"]):
            yield pytest.param(case, interval, id=f"{path.stem}: {case.get('name', n)}")


CASES = list(cases())


class VictoriaMetrics:
    def __init__(self, url: str) -> None:
        self.url = url

    def import_series(
        self, series: list[tuple[dict, list[tuple[float, float]]]]
    ) -> None:
        """JSON lines of /api/v1/import: labels with __name__, ms timestamps."""
        lines = [
            json.dumps(
                {
                    "metric": labels,
                    "values": [v for _, v in points],
                    "timestamps": [int(t * 1000) for t, _ in points],
                }
            )
            for labels, points in series
            if points
        ]
        req = urllib.request.Request(
            f"{self.url}/api/v1/import", data="\n".join(lines).encode(), method="POST"
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status in (200, 204)
        status, _ = http_get(f"{self.url}/internal/force_flush")
        assert status == 200

    def query(self, expr: str, at: float) -> list[dict]:
        params = urllib.parse.urlencode(
            {"query": expr, "time": f"{at:.3f}", "step": QUERY_STEP}
        )
        status, body = http_get(f"{self.url}/api/v1/query?{params}", timeout=30)
        doc = json.loads(body)
        assert status == 200 and doc["status"] == "success", (expr, body[:500])
        return doc["data"]["result"]


@pytest.fixture(scope="module")
def vm(tmp_path_factory):
    work = tmp_path_factory.mktemp("vm-rules")
    # Every case is replayed in the past: nothing is too fresh to query, and
    # nothing cached from one case answers another.
    flags = ["-retentionPeriod=1y", "-search.latencyOffset=0s", "-search.disableCache"]
    with serving(
        work,
        "victoria-metrics",
        lambda port: [
            "victoria-metrics",
            f"-storageDataPath={work / 'data'}",
            f"-httpListenAddr=127.0.0.1:{port}",
            *flags,
        ],
        "/health",
    ) as url:
        yield VictoriaMetrics(url)


def without_name(labels: dict) -> tuple:
    return tuple(sorted((k, v) for k, v in labels.items() if k != "__name__"))


@pytest.mark.parametrize(("case", "interval"), CASES)
def test_promtool_case_gives_the_same_alerts_on_victoriametrics(vm, case, interval):
    # Each case gets a day of its own, a few days back: cases never overlap.
    index = next(i for i, p in enumerate(CASES) if p.values[0] is case)
    base = (int(time.time()) // DAY - len(CASES) - 2 + index) * DAY
    step = seconds(case.get("interval", "1m"))

    inputs = []
    for s in case["input_series"]:
        values = expand(s["values"])
        points = [(base + i * step, v) for i, v in enumerate(values) if v is not None]
        inputs.append((parse_series(s["series"]), points))
    vm.import_series(inputs)
    input_names = {labels["__name__"] for labels, _ in inputs}

    rules = load_rules()
    recorded = {r.name for r in rules if not r.alert}
    tests = case["alert_rule_test"]
    end = max(seconds(t["eval_time"]) for t in tests)
    evals = [i * interval for i in range(int(end // interval) + 1)]

    # Recording rules as vmalert runs them: evaluated at each step, written
    # back. None of them reads another's output, so all steps go in one batch.
    out: dict[tuple, list] = defaultdict(list)
    for rule in rules:
        if rule.alert or not metric_names(rule.expr) & input_names:
            continue
        assert not metric_names(rule.expr) & recorded, rule.name
        for t in evals:
            for r in vm.query(rule.expr, base + t):
                labels = {
                    **{k: v for k, v in r["metric"].items() if k != "__name__"},
                    **rule.labels,
                    "__name__": rule.name,
                }
                out[tuple(sorted(labels.items()))].append(
                    (base + t, float(r["value"][1]))
                )
    if out:
        vm.import_series([(dict(k), points) for k, points in out.items()])

    by_name = {r.name: r for r in rules if r.alert}
    for t in tests:
        rule = by_name[t["alertname"]]
        at = seconds(t["eval_time"])
        firing: set[tuple] | None = None
        if at - rule.for_s < 0:
            firing = set()
        steps = [
            at - rule.for_s + i * interval
            for i in range(int(rule.for_s // interval) + 1)
        ]
        for s in steps if firing is None else []:
            active = {without_name(r["metric"]) for r in vm.query(rule.expr, base + s)}
            firing = active if firing is None else firing & active
        got = {
            tuple(sorted({**dict(k), **rule.labels, "alertname": rule.name}.items()))
            for k in firing or set()
        }
        want = {
            tuple(
                sorted(
                    {
                        **{k: str(v) for k, v in a.get("exp_labels", {}).items()},
                        "alertname": rule.name,
                    }.items()
                )
            )
            for a in t.get("exp_alerts") or []
        }
        assert got == want, (
            f"{rule.name} at {t['eval_time']}: VictoriaMetrics fires "
            f"{sorted(map(dict, got), key=str)}, promtool expects {sorted(map(dict, want), key=str)}"
        )
