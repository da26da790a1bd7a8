"""Helpers of the end-to-end pipeline test: run the compose stack's real
components on loopback, from the compose files' own flags and config files.

Nothing here knows a flag of VictoriaMetrics, VMAgent or vmalert by heart:
`service_flags` reads a service's `command:` from a docker-compose.yml,
interpolates it with that directory's .env.example, and rewrites only what a
container has and this machine does not — mounted paths become the mounted
files, named volumes become directories of the run, service names become
127.0.0.1 ports. The test then adds the few flags it needs to run fast
(`TEST_ONLY_FLAGS` in test_pipeline.py says which and why).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose"

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            env[key.strip()] = value.strip()
    return env


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}."""

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        value = env.get(name)
        if op in (":-", ":?") and not value:
            value = None
        if value is None:
            if op in (":-", "-"):
                return arg
            if op in (":?", "?"):
                # A required secret: any value will do for a local run.
                return f"e2e-{name.lower()}"
            return ""
        return value

    return _VAR.sub(sub, text)


def load_compose(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def docker_compose_config(files: list[Path], cwd: Path) -> dict[str, Any] | None:
    """The model `docker compose -f FILE... config` renders (interpolated,
    merged, includes resolved: what compose would hand the engine), or None
    where Docker Compose v2 is not installed. Needs no Docker daemon."""
    if not shutil.which("docker"):
        return None
    probe = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        return None
    argv = ["docker", "compose"]
    for f in files:
        argv += ["-f", str(f)]
    r = subprocess.run(
        [*argv, "config", "--format", "json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")},
    )
    assert r.returncode == 0, f"docker compose config: {r.stderr}"
    return json.loads(r.stdout)


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (held open together while picked)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Rewrite:
    """How one compose service's container world maps onto this machine."""

    hosts: dict[str, str]  # "victoriametrics:8428" -> "127.0.0.1:40123"
    listen: str  # "127.0.0.1:40124"
    work: Path  # the run's directory, for named volumes
    files: dict[str, Path] = field(
        default_factory=dict
    )  # container path -> replacement file


def service_flags(compose_file: Path, service: str, rw: Rewrite) -> list[str]:
    """The service's `command:` with container paths, hosts and the listen address rewritten."""
    doc = load_compose(compose_file)
    svc = doc["services"][service]
    env = read_env_file(compose_file.parent / ".env.example")
    mounts: list[tuple[str, Path]] = []
    for volume in svc.get("volumes", []):
        src, dst = volume.split(":")[:2]
        src = interpolate(src, env)
        if src.startswith((".", "/")):
            local = (compose_file.parent / src).resolve()
        else:  # a named volume: a directory of this run
            local = rw.work / f"{service}-{src}"
            local.mkdir(parents=True, exist_ok=True)
        mounts.append((dst, local))
    # Longest container path first, so /etc/vmagent/targets wins over /etc/vmagent.
    mounts.sort(key=lambda m: len(m[0]), reverse=True)
    out = []
    for arg in svc["command"]:
        arg = interpolate(str(arg), env)
        name, _, value = arg.partition("=")
        if name in ("-httpListenAddr", "--httpListenAddr"):
            out.append(f"{name}={rw.listen}")
            continue
        for container, replacement in rw.files.items():
            if value == container:
                value = str(replacement)
        for container, local in mounts:
            if value == container or value.startswith(container + "/"):
                value = str(local) + value[len(container) :]
                break
        for host, local in rw.hosts.items():
            value = value.replace(f"://{host}", f"://{local}")
        out.append(f"{name}={value}" if value or "=" in arg else name)
    leftovers = [a for a in out for other in doc["services"] if f"://{other}:" in a]
    assert not leftovers, (
        f"{compose_file}:{service}: container hosts left in {leftovers}"
    )
    return out


def service_env(compose_file: Path, service: str) -> dict[str, str]:
    """The service's `environment:`, interpolated with the directory's .env.example."""
    svc = load_compose(compose_file)["services"][service]
    env = read_env_file(compose_file.parent / ".env.example")
    raw = svc.get("environment", {})
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {k: interpolate(str(v), env) for k, v in raw.items()}


class Processes:
    """Every process the test starts; all are stopped, by pid, at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str] | None = None,
        base_env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Starts argv with env over base_env (default: this process's)."""
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**(os.environ if base_env is None else base_env), **(env or {})},
            cwd=ROOT,
        )
        log.close()
        self.procs[name] = proc
        return proc

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.logs / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        if dead:
            detail = "\n".join(
                f"--- {n} exited with {rc}:\n{self.log_tail(n)}"
                for n, rc in dead.items()
            )
            raise AssertionError(f"a component of the pipeline died:\n{detail}")

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def stop_all(self) -> None:
        """Last started, first stopped: writers go before the databases they
        write to, so nothing logs a failed write on the way out."""
        for name in reversed(list(self.procs)):
            self.stop(name)


@contextmanager
def serving(
    logs: Path, name: str, argv: Callable[[int], list[str]], ready_path: str
) -> Iterator[str]:
    """One server for the block, on a free loopback port (argv(port) starts
    it): yields its base URL once ready_path answers 200, stops it on the way
    out (its log stays in logs/)."""
    (port,) = free_ports(1)
    url = f"http://127.0.0.1:{port}"
    procs = Processes(logs)
    procs.start(name, argv(port))
    try:
        wait_until(
            f"{name} ready",
            lambda: http_get(url + ready_path)[0] == 200,
            30,
            on_wait=procs.check_alive,
        )
        yield url
    finally:
        procs.stop_all()


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_until(
    what: str,
    check: Callable[[], Any],
    timeout: float,
    interval: float = 0.5,
    on_wait=None,
) -> Any:
    """Polls check() until it returns something truthy; fails naming `what`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        if on_wait:
            on_wait()
        try:
            result = check()
            if result:
                return result
        except (OSError, AssertionError, KeyError, ValueError) as e:
            last_error = e
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what}; last error: {last_error!r}"
            )
        time.sleep(interval)


class VM:
    """VictoriaMetrics' Prometheus query API."""

    def __init__(self, base: str) -> None:
        self.base = base

    def _get(self, path: str, params: Iterable[tuple[str, str]]) -> Any:
        url = f"{self.base}{path}?{urllib.parse.urlencode(list(params))}"
        status, body = http_get(url, timeout=10)
        doc = json.loads(body)
        if status != 200 or doc.get("status") != "success":
            raise AssertionError(f"GET {url} -> {status}: {body[:500]!r}")
        return doc["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        params = [("query", expr)]
        if at is not None:
            params.append(("time", f"{at:.3f}"))
        return self._get("/api/v1/query", params)["result"]

    def query_range(self, expr: str, seconds: int, step: str) -> list[dict]:
        end = time.time()
        return self._get(
            "/api/v1/query_range",
            [
                ("query", expr),
                ("start", f"{end - seconds:.3f}"),
                ("end", f"{end:.3f}"),
                ("step", step),
            ],
        )["result"]

    def series(self, match: str) -> list[dict]:
        return self._get(
            "/api/v1/series",
            [("match[]", match), ("start", f"{time.time() - 3600:.0f}")],
        )

    def label_values(self, label: str, match: str | None = None) -> list[str]:
        params = [("start", f"{time.time() - 3600:.0f}")]
        if match:
            params.append(("match[]", match))
        return self._get(f"/api/v1/label/{label}/values", params)

    def scalar(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None


def healthy_scenario(dst: Path, gpus: int, latency_from_s: float | None = None) -> Path:
    """testing/scenarios/scaling.json (a healthy H100) with `gpus` copies; with
    latency_from_s, the driver goes away then (every call answers "driver not
    loaded") and initialising NVML again hangs for 10 minutes: the sampler is
    stuck re-opening NVML and the exporter keeps serving its last sample. (A
    hang in the per-GPU calls alone marks those GPUs down after 2 s instead,
    with fresh samples.)"""
    doc = json.loads((ROOT / "testing/scenarios/scaling.json").read_text())
    doc["description"] = f"e2e: {gpus} healthy H100s" + (
        " whose driver goes and whose NVML re-initialisation hangs"
        if latency_from_s is not None
        else ""
    )
    doc["gpus"][0]["count"] = gpus
    if latency_from_s is not None:
        doc["faults"] = [
            {"call": "*", "error": "DRIVER_NOT_LOADED", "from_s": latency_from_s}
        ]
        doc["latency"] = [
            {"call": init, "ms": 600000, "from_s": latency_from_s}
            for init in ("nvmlInit_v2", "nvmlInitWithFlags", "nvmlInit")
        ]
    dst.write_text(json.dumps(doc, indent=1))
    return dst


def fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path
