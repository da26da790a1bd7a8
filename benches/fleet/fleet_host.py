"""The monitoring host of compose/host on loopback, for the fleet benchmarks.

VictoriaMetrics and VMAgent run with compose/host/docker-compose.yml's own
flags and compose/host/vmagent/scrape.yml (read through tests/e2e's
`service_flags`, which rewrites only container paths, hosts and listen
addresses); the one change is the scrape interval, set to the benchmark's
(5 s), with the timeout capped at it.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from e2e_stack import (  # tests/e2e is not a package
    COMPOSE,
    Processes,
    Rewrite,
    free_ports,
    http_get,
    service_flags,
    wait_until,
)

HOST_COMPOSE = COMPOSE / "host" / "docker-compose.yml"
SCRAPE_YML = COMPOSE / "host" / "vmagent" / "scrape.yml"
CLK_TCK = os.sysconf("SC_CLK_TCK")

__all__ = [
    "REPO",
    "Host",
    "Processes",
    "free_ports",
    "http_get",
    "proc_cpu_seconds",
    "proc_rss_mib",
    "wait_until",
]


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of pid, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of pid in MiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    return out["VmRSS"], out["VmHWM"]


def scrape_config(interval_s: int, targets_dir: Path) -> tuple[str, dict[str, str]]:
    """compose/host's scrape.yml with targets in targets_dir and the given
    interval; returns the text and what was changed (for the report)."""
    src = SCRAPE_YML.read_text()
    assert "/etc/vmagent/targets/" in src, f"{SCRAPE_YML}: targets path changed"
    doc = yaml.safe_load(src.replace("/etc/vmagent/targets/", f"{targets_dir}/"))
    glob = doc.setdefault("global", {})
    before = {k: str(glob.get(k)) for k in ("scrape_interval", "scrape_timeout")}
    glob["scrape_interval"] = f"{interval_s}s"
    timeout = glob.get("scrape_timeout")
    if timeout is None or _seconds(str(timeout)) > interval_s:
        glob["scrape_timeout"] = f"{interval_s}s"
    for job in doc["scrape_configs"]:
        job.pop("scrape_interval", None)
        job.pop("scrape_timeout", None)
    after = {k: str(glob.get(k)) for k in ("scrape_interval", "scrape_timeout")}
    return yaml.safe_dump(doc, sort_keys=False), {
        k: f"{before[k]} -> {after[k]}" for k in before if before[k] != after[k]
    }


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for suffix in ("ms", "s", "m", "h"):
        if duration.endswith(suffix):
            return float(duration[: -len(suffix)]) * units[suffix]
    return float(duration)


def metrics(url: str) -> dict[str, float]:
    """A /metrics page as {series line's name+labels: value}."""
    status, body = http_get(f"{url}/metrics", timeout=30)
    if status != 200:
        raise AssertionError(f"{url}/metrics -> {status}")
    out: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                continue
    return out


def metric_sum(page: dict[str, float], name: str, **labels: str) -> float:
    """Sum of the series of `name` whose labels include `labels`."""
    total = 0.0
    for key, value in page.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += value
    return total


@dataclass
class Host:
    """victoria-metrics + vmagent as compose/host runs them, on loopback."""

    work: Path
    procs: Processes
    vm_url: str
    vmagent_url: str
    targets: Path
    changed: dict[str, str]

    @classmethod
    def start(cls, work: Path, interval_s: int, vm_extra: list[str]) -> Host:
        logs = work / "logs"
        targets = work / "targets"
        for d in (logs, targets, targets / "jobs"):
            d.mkdir(parents=True, exist_ok=True)
        procs = Processes(logs)
        vm_port, agent_port = free_ports(2)
        vm_url = f"http://127.0.0.1:{vm_port}"
        text, changed = scrape_config(interval_s, targets)
        scrape = work / "scrape.yml"
        scrape.write_text(text)
        vm_flags = service_flags(
            HOST_COMPOSE, "victoriametrics", Rewrite({}, f"127.0.0.1:{vm_port}", work)
        )
        procs.start("victoria-metrics", ["victoria-metrics", *vm_flags, *vm_extra])
        wait_until(
            "victoria-metrics /health",
            lambda: http_get(f"{vm_url}/health")[0] == 200,
            30,
            on_wait=procs.check_alive,
        )
        agent_flags = service_flags(
            HOST_COMPOSE,
            "vmagent",
            Rewrite(
                {"victoriametrics:8428": f"127.0.0.1:{vm_port}"},
                f"127.0.0.1:{agent_port}",
                work,
                {"/etc/vmagent/scrape.yml": scrape},
            ),
        )
        procs.start("vmagent", ["vmagent", *agent_flags])
        agent_url = f"http://127.0.0.1:{agent_port}"
        wait_until(
            "vmagent /health",
            lambda: http_get(f"{agent_url}/health")[0] == 200,
            30,
            on_wait=procs.check_alive,
        )
        return cls(work, procs, vm_url, agent_url, targets, changed)

    def pid(self, name: str) -> int:
        return self.procs.procs[name].pid

    def targets_up(self, job: str) -> tuple[int, int]:
        """(up, total) active targets of `job` in vmagent."""
        status, body = http_get(f"{self.vmagent_url}/api/v1/targets", timeout=30)
        if status != 200:
            raise AssertionError(f"vmagent /api/v1/targets -> {status}")
        active = json.loads(body)["data"]["activeTargets"]
        mine = [t for t in active if t["labels"].get("job") == job]
        return sum(t["health"] == "up" for t in mine), len(mine)

    def query(self, expr: str, at: float | None = None, timeout: float = 60) -> Any:
        """An instant query, evaluated at `at` (default now) with
        nocache=1: VictoriaMetrics otherwise moves queries at "now" back
        by -search.latencyOffset (30 s)."""
        params = {"query": expr, "nocache": "1"}
        params["time"] = f"{at if at is not None else time.time():.3f}"
        return self._get("/api/v1/query", params, timeout)["result"]

    def _get(self, path: str, params: dict[str, str], timeout: float) -> Any:
        url = f"{self.vm_url}{path}?{urllib.parse.urlencode(params)}"
        status, body = http_get(url, timeout=timeout)
        doc = json.loads(body)
        if status != 200 or doc.get("status") != "success":
            raise AssertionError(f"GET {url[:300]} -> {status}: {body[:300]!r}")
        return doc["data"]

    def stop(self) -> None:
        self.procs.stop_all()


def timed_get(url: str, timeout: float) -> tuple[float, int, bytes | None, str]:
    """(seconds, HTTP status, body, error) of one GET, the body read in full."""
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            body = r.read()
            return time.perf_counter() - start, r.status, body, ""
    except urllib.error.HTTPError as e:
        return time.perf_counter() - start, e.code, e.read(), f"HTTP {e.code}"
    except OSError as e:
        return time.perf_counter() - start, 0, None, str(e)
