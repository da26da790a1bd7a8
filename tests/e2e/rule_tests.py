"""What the rule tests share: compose/host/vmalert/rules.yml, the promtool
unit tests in tests/e2e/rules/, and readers for both (metric names through
a real PromQL parser, promtool's expanding series notation)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import promql_parser
import yaml
from e2e_stack import COMPOSE

RULES = COMPOSE / "host/vmalert/rules.yml"
RULE_TESTS = sorted((Path(__file__).parent / "rules").glob("*.yml"))


@dataclass
class Rule:
    group: str
    name: str  # the alert or the recorded metric
    expr: str
    labels: dict[str, str]
    for_s: float
    alert: bool


def load_rules() -> list[Rule]:
    doc = yaml.safe_load(RULES.read_text())
    return [
        Rule(
            group=g["name"],
            name=r.get("alert") or r["record"],
            expr=r["expr"],
            labels={k: str(v) for k, v in r.get("labels", {}).items()},
            for_s=seconds(r.get("for", "0s")),
            alert="alert" in r,
        )
        for g in doc["groups"]
        for r in g["rules"]
    ]


def seconds(duration: str) -> float:
    duration = str(duration)
    if duration.strip("0") in ("", "s", "m"):
        return 0.0
    return promql_parser.parse_duration(duration).total_seconds()


def selectors(expr: str) -> list[tuple[str, dict[str, tuple[str, str]]]]:
    """Every series selector of a PromQL expression: (metric name, {label:
    (operator, value)}), as Prometheus' grammar reads it."""
    found: list[tuple[str, dict[str, tuple[str, str]]]] = []

    def visit(node) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = {
                m.name: (str(m.op).rsplit(".", 1)[-1], m.value)
                for m in node.matchers.matchers
            }
            name = node.name or matchers.pop("__name__", ("", ""))[1]
            op = "Equal" if node.name else matchers.get("__name__", ("Equal",))[0]
            if not name or op != "Equal":
                raise ValueError(f"{expr!r}: a selector without a fixed metric name")
            found.append((name, matchers))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def metric_names(expr: str) -> set[str]:
    return {name for name, _ in selectors(expr)}


def parse_series(series: str) -> dict[str, str]:
    """'name{a="b"}' as promtool's input_series writes it -> labels with __name__."""
    (name, matchers), *rest = selectors(series)
    assert not rest and all(op == "Equal" for op, _ in matchers.values()), series
    return {"__name__": name, **{k: v for k, (_, v) in matchers.items()}}


_TERM = re.compile(
    r"(?P<start>_|stale|[-+]?[\d.]+(?:e[-+]?\d+)?)"
    r"(?:(?P<sign>[-+])(?P<step>[\d.]+(?:e[-+]?\d+)?))?"
    r"(?:x(?P<times>\d+))?",
    re.IGNORECASE,
)


def expand(values: str) -> list[float | None]:
    """promtool's expanding notation: 'a+bxn' is n+1 values a, a+b, ...;
    'axn' n+1 times a; '_xn' n missing samples; '_' one missing sample.
    ('stale' has no counterpart in VictoriaMetrics' import and is refused.)"""
    out: list[float | None] = []
    for term in values.split():
        m = _TERM.fullmatch(term)
        if not m:
            raise ValueError(f"cannot read {term!r} in {values!r}")
        start, times = m["start"], m["times"]
        if start == "stale":
            raise ValueError(f"{values!r}: 'stale' cannot be replayed")
        if start == "_":
            out.extend([None] * (int(times) if times else 1))
            continue
        step = float(m["step"] or 0) * (-1 if m["sign"] == "-" else 1)
        n = int(times) if times else 0
        out.extend(float(start) + i * step for i in range(n + 1))
    return out
