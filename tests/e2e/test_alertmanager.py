"""compose/host/alertmanager/alertmanager.yml through the real tools: amtool
checks it and routes every alert of the rules by its severity; a real
Alertmanager (Debian "prometheus-alertmanager") applies its inhibitions to
alerts labelled as vmalert labels them. Needs no exporter: seconds."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request

import pytest
import yaml
from e2e_stack import COMPOSE, http_get, serving, wait_until

AM_CONFIG = COMPOSE / "host/alertmanager/alertmanager.yml"
RULES = COMPOSE / "host/vmalert/rules.yml"


def tool(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(f"{' or '.join(names)} is not installed: run scripts/install-deps.sh")


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("amtool"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def alert_rules() -> list[dict]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_amtool_accepts_the_config():
    r = amtool("check-config", str(AM_CONFIG))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def route(**labels: str) -> str:
    r = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={AM_CONFIG}",
        *(f"{k}={v}" for k, v in labels.items()),
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.strip()


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_each_alert_goes_to_the_receiver_of_its_severity(rule):
    severity = rule["labels"]["severity"]
    assert route(alertname=rule["alert"], severity=severity) == severity


def test_xid_79_pages_after_waiting_for_gpu_down():
    """XID 79 goes to the pager too, but held back long enough for
    AlgalonGpuDown (1 minute of algalon_gpu_up == 0, then an evaluation) to
    fire and inhibit it."""
    assert route(alertname="AlgalonGpuXidCritical", severity="critical", xid="79") == (
        "critical"
    )
    doc = yaml.safe_load(AM_CONFIG.read_text())
    xid79 = next(
        r for r in doc["route"]["routes"] if 'xid="79"' in r.get("matchers", [])
    )
    down = next(r for r in alert_rules() if r["alert"] == "AlgalonGpuDown")
    minutes = lambda d: int(d.rstrip("m"))
    assert minutes(xid79["group_wait"]) > minutes(down["for"])


# Labels as vmalert sets them: the scrape's job/instance/cluster, the rule's
# severity and, for a GPU, the exporter's GPU labels.
def node_alert(name: str, severity: str, instance: str, **extra) -> dict:
    labels = {
        "alertname": name,
        "severity": severity,
        "job": "algalon",
        "cluster": "train",
        "instance": instance,
        **extra,
    }
    return {"labels": labels, "annotations": {"summary": name}}


def gpu_alert(name: str, severity: str, instance: str, gpu: str, **extra) -> dict:
    host = instance.split(":")[0]
    return node_alert(
        name,
        severity,
        instance,
        Hostname=host,
        gpu=gpu,
        UUID=f"GPU-{host}-{gpu}",
        pci_bus_id=f"00000000:{18 + int(gpu):02X}:00.0",
        device=f"nvidia{gpu}",
        modelName="NVIDIA H100 80GB HBM3",
        **extra,
    )


# (alert, inhibited?) — what the on-call should see and what not.
MATRIX = [
    (gpu_alert("AlgalonGpuDown", "critical", "w1:9400", "0"), False),
    # The same GPU's XID 79: one page, not two.
    (gpu_alert("AlgalonGpuXidCritical", "critical", "w1:9400", "0", xid="79"), True),
    # Another XID of that GPU is news.
    (gpu_alert("AlgalonGpuXidCritical", "critical", "w1:9400", "0", xid="48"), False),
    # XID 79 of another GPU of the worker, and of GPU 0 of another worker.
    (gpu_alert("AlgalonGpuXidCritical", "critical", "w1:9400", "1", xid="79"), False),
    (gpu_alert("AlgalonGpuXidCritical", "critical", "w2:9400", "0", xid="79"), False),
    (gpu_alert("AlgalonGpuTemperatureCritical", "critical", "w1:9400", "2"), False),
    (gpu_alert("AlgalonGpuTemperatureHigh", "warning", "w1:9400", "2"), True),
    (gpu_alert("AlgalonGpuTemperatureHigh", "warning", "w1:9400", "3"), False),
    # A worker whose exporter is down: its other alerts are noise.
    (node_alert("AlgalonExporterDown", "critical", "w3:9400"), False),
    (gpu_alert("AlgalonGpuDown", "critical", "w3:9400", "0"), True),
    (node_alert("AlgalonSamplesStale", "warning", "w3:9400"), True),
    (
        node_alert(
            "AlgalonNvmlErrors",
            "warning",
            "w3:9400",
            call="nvmlDeviceGetPowerUsage",
            error="NoPermission",
        ),
        True,
    ),
    (node_alert("AlgalonSamplesStale", "warning", "w2:9400"), False),
]


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory):
    work = tmp_path_factory.mktemp("alertmanager")
    binary = tool("alertmanager", "prometheus-alertmanager")
    with serving(
        work,
        "alertmanager",
        lambda port: [
            binary,
            f"--config.file={AM_CONFIG}",
            f"--storage.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            # No gossip: a single instance, and no fixed port 9094 taken.
            "--cluster.listen-address=",
        ],
        "/-/ready",
    ) as url:
        yield url


def test_inhibitions_match_on_the_right_labels(alertmanager):
    body = json.dumps([a for a, _ in MATRIX]).encode()
    req = urllib.request.Request(
        f"{alertmanager}/api/v2/alerts",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200

    key = lambda labels: tuple(sorted(labels.items()))
    want = {key(a["labels"]): inhibited for a, inhibited in MATRIX}

    def states() -> dict | None:
        status, raw = http_get(f"{alertmanager}/api/v2/alerts")
        assert status == 200
        got = {key(a["labels"]): a["status"] for a in json.loads(raw)}
        return got if set(got) == set(want) else None

    def settled() -> dict | None:
        got = states()
        if got and all(bool(got[k]["inhibitedBy"]) == v for k, v in want.items()):
            return got
        return None

    try:
        got = wait_until("Alertmanager to apply its inhibit rules", settled, 15)
    except AssertionError:
        got = states() or {}
        wrong = [
            (dict(k), "inhibited" if v else "not inhibited", got.get(k))
            for k, v in want.items()
            if k not in got or bool(got[k]["inhibitedBy"]) != v
        ]
        raise AssertionError(f"inhibition differs for: {wrong}") from None
    for k, inhibited in want.items():
        assert got[k]["state"] == ("suppressed" if inhibited else "active"), dict(k)
