"""The kubelet stand-in's scenario checks: a mistake in a scenario is one
line naming the JSON path, and the shipped scenario is valid."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCENARIO = REPO / "testing" / "kubelet" / "scenarios" / "node.json"


def standin():
    spec = importlib.util.spec_from_file_location(
        "standin", REPO / "testing" / "kubelet" / "standin.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_scenario_is_valid() -> None:
    s = standin().load_scenario(SCENARIO)
    assert s["initial"] == "node"
    assert set(s["states"]) >= {
        "node",
        "churn",
        "restarting",
        "crashed",
        "slow",
        "empty",
    }
    # Three pods share GPU 3 through time-slicing replicas.
    node = [s["pods"][k] for k in s["states"]["node"]["pods"]]
    shared = [
        i
        for p in node
        for c in p["containers"]
        for d in c["devices"]
        for i in d["device_ids"]
        if i.startswith("GPU-d1e2f3a4")
    ]
    assert sorted(shared) == [
        f"GPU-d1e2f3a4-b5c6-4d7e-8f9a-0b1c2d3e4f22::{n}" for n in range(3)
    ]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda s: s["states"]["slow"].update(latncy_ms=1),
            "states.slow: unknown key 'latncy_ms'",
        ),
        (lambda s: s["states"]["node"]["pods"].append("ghost"), "no pod 'ghost'"),
        (lambda s: s["states"]["node"].update(socket="gone"), "states.node.socket"),
        (lambda s: s.update(initial="nowhere"), "initial: no state 'nowhere'"),
        (lambda s: s["pods"]["web"].pop("namespace"), "pods.web.namespace"),
        (
            lambda s: s["pods"]["web"]["containers"][0].update(gpus=1),
            "pods.web.containers[0]: unknown key 'gpus'",
        ),
    ],
)
def test_mistakes_name_their_place(mutate, message: str) -> None:
    mod = standin()
    data = copy.deepcopy(json.loads(SCENARIO.read_text()))
    mutate(data)
    with pytest.raises(
        mod.ScenarioError, match=message.replace("[", r"\[").replace("]", r"\]")
    ):
        mod.check_scenario(data, "node.json")
