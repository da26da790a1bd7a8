"""Every series the alert rules read is exported by a default deployment.

A rule whose input series does not exist never fires, and nothing says so.
Here the real algalon-exporter runs on the fake NVML with exactly the
settings the shipped deployments give it — the compose worker (its image's
ENV, the service's environment with .env.example's defaults, its mounted
collectors CSV) and the systemd unit (its EnvironmentFile, installed as the
unit's header says) — on a healthy node and on the faulty one of the
pipeline test (XID counters and NVML error counters exist only after a
fault). Every metric name of every rule expression (read by a PromQL
parser) must be among the names scraped from each deployment. Only the
address changes, to a free port on loopback.
"""

from __future__ import annotations

import os
import re
import shlex
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from e2e_stack import (
    COMPOSE,
    ROOT,
    Processes,
    free_ports,
    fresh_dir,
    http_get,
    interpolate,
    load_compose,
    read_env_file,
)
from prometheus_client.parser import text_string_to_metric_families
from rule_tests import load_rules, metric_names

WORKER = COMPOSE / "worker"
SYSTEMD = COMPOSE / "systemd"
SCENARIOS = {
    "healthy": ROOT / "testing/scenarios/h100x8.json",
    "faulty": Path(__file__).parent / "scenarios/faults.json",
}
# Series the scraper adds, not the exporter.
SCRAPER_SERIES = {"up"}


def compose_worker() -> tuple[dict[str, str], list[str]]:
    """The exporter's environment and arguments in the compose worker."""
    env: dict[str, str] = {}
    dockerfile = (WORKER / "Dockerfile").read_text()
    for m in re.finditer(r"^ENV\s+((?:.*\\\n)*.*)$", dockerfile, re.MULTILINE):
        env.update(
            kv.split("=", 1)
            for kv in shlex.split(m[1].replace("\\\n", " "))
            if "=" in kv
        )
    svc = load_compose(WORKER / "docker-compose.yml")["services"]["algalon-exporter"]
    defaults = read_env_file(WORKER / ".env.example")
    mounts = {}
    for volume in svc.get("volumes", []):
        src, dst = volume.split(":")[:2]
        mounts[dst] = (WORKER / src).resolve()
    for key, value in svc.get("environment", {}).items():
        value = interpolate(str(value), defaults)
        env[key] = str(mounts.get(value, value))
    args = [interpolate(str(a), defaults) for a in svc.get("command", [])]
    return env, args


def systemd_unit() -> tuple[dict[str, str], list[str]]:
    """The exporter's environment and arguments under algalon-exporter.service,
    with the files its header installs mapped back to the repository."""
    unit = (SYSTEMD / "algalon-exporter.service").read_text()
    installed = {
        dst: (ROOT / src).resolve()
        for src, dst in re.findall(
            r"^#\s+install\s.*?(\S+)\s+(/etc/\S+)$", unit, re.MULTILINE
        )
    }
    env_file = re.search(r"^EnvironmentFile=-?(\S+)$", unit, re.MULTILINE)[1]
    env = read_env_file(installed[env_file])
    env = {k: str(installed.get(v, v)) for k, v in env.items()}
    exec_start = re.search(r"^ExecStart=(.*)$", unit, re.MULTILINE)[1]
    return env, shlex.split(exec_start)[1:]


DEPLOYMENTS = {"compose worker": compose_worker, "systemd unit": systemd_unit}


def scrape_names(
    logs: Path,
    exporter: str,
    nvml: str,
    env: dict[str, str],
    args: list[str],
    scenario: Path,
) -> set[str]:
    """Runs the exporter until it has taken two samples; the sample names it serves."""
    (port,) = free_ports(1)
    procs = Processes(logs)
    # Only the deployment's own ALGALON_* settings, none from this shell.
    base = {k: v for k, v in os.environ.items() if not k.startswith("ALGALON_")}
    procs.start(
        "exporter",
        [exporter, *args],
        env={
            **env,
            "ALGALON_ADDRESS": f"127.0.0.1:{port}",
            "ALGALON_NVML_LIB": nvml,
            "ALGALON_FAKE_NVML_SCENARIO": str(scenario),
        },
        base_env=base,
    )
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            procs.check_alive()
            try:
                status, body = http_get(f"http://127.0.0.1:{port}/metrics")
            except OSError:
                status = 0
            if status == 200:
                samples = re.search(
                    rb"^algalon_samples_total (\d+)", body, re.MULTILINE
                )
                if samples and int(samples[1]) >= 2:
                    return {
                        s.name
                        for f in text_string_to_metric_families(body.decode())
                        for s in f.samples
                    }
            time.sleep(0.5)
        raise AssertionError("the exporter took no two samples in 40 s")
    finally:
        procs.stop_all()


@pytest.fixture(scope="module")
def scraped() -> dict[str, set[str]]:
    """Deployment -> every sample name it exports on any scenario."""
    exporter = str(ROOT / "target/debug/algalon-exporter")
    nvml = os.environ.get(
        "ALGALON_TEST_NVML_LIB", str(ROOT / "target/fake-nvml/libnvidia-ml.so.1")
    )
    for path in (exporter, nvml):
        if not Path(path).exists():
            pytest.fail(
                f"{path} does not exist: run scripts/e2e-pipeline.sh (it builds it)"
            )
    runs = [
        (deployment, scenario)
        for deployment in DEPLOYMENTS
        for scenario in SCENARIOS.values()
    ]
    logs = fresh_dir(ROOT / "target/e2e/rule-inputs")
    with ThreadPoolExecutor(len(runs)) as pool:
        results = pool.map(
            lambda n, run: scrape_names(
                fresh_dir(logs / str(n)), exporter, nvml, *DEPLOYMENTS[run[0]](), run[1]
            ),
            range(len(runs)),
            runs,
        )
        out: dict[str, set[str]] = {d: set() for d in DEPLOYMENTS}
        for (deployment, _), names in zip(runs, results, strict=True):
            out[deployment] |= names
    return out


def test_deployments_are_read_as_shipped():
    """The settings the rules depend on, as the deployments really set them."""
    for deployment, read in DEPLOYMENTS.items():
        env, args = read()
        assert env.get("ALGALON_PROCESSES") == "true", deployment
        assert (
            Path(env["ALGALON_COLLECTORS"]) == (WORKER / "collectors.csv").resolve()
        ), deployment
        assert args == [], deployment


@pytest.mark.parametrize("deployment", list(DEPLOYMENTS))
def test_every_rule_input_is_exported(scraped, deployment):
    rules = load_rules()
    recorded = {r.name for r in rules if not r.alert}
    missing = {}
    for rule in rules:
        for name in metric_names(rule.expr) - recorded - SCRAPER_SERIES:
            if name not in scraped[deployment]:
                missing.setdefault(name, []).append(rule.name)
    assert not missing, f"{deployment} exports no series for: {missing}"
