"""setup.sh in a sandbox: a copy of the repo's setup.sh and compose/, a PATH
holding only the tools it uses, and stand-ins for `docker` and `nvidia-smi`
that answer as a machine with (or without) each prerequisite would."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from e2e_stack import COMPOSE, ROOT

TOOLS = [
    "bash",
    "sed",
    "awk",
    "od",
    "tr",
    "head",
    "grep",
    "cat",
    "mkdir",
    "mv",
    "cp",
    "chmod",
    "hostname",
    "dirname",
]

FAKE_DOCKER = r"""#!/bin/bash
echo "docker $*" >>"$FAKE_LOG"
if [[ $1 == compose && $2 == version ]]; then
    [[ -n ${FAKE_COMPOSE_VERSION:-} ]] || { echo "docker: 'compose' is not a docker command." >&2; exit 1; }
    echo "$FAKE_COMPOSE_VERSION"
    exit 0
fi
if [[ $1 == info ]]; then
    if [[ -n ${FAKE_DOCKER_DOWN:-} ]]; then
        echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2
        exit 1
    fi
    if [[ "$*" == *Runtimes* ]]; then echo "$FAKE_RUNTIMES"; else echo 27.0.3; fi
    exit 0
fi
[[ $1 == compose ]] && exit 0
echo "fake docker: unexpected: $*" >&2
exit 3
"""

FAKE_NVIDIA_SMI = """#!/bin/bash
echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-5e4b2a3c-9d1f-4c7e-8a6b-1f2e3d4c5b60)"
"""


class Sandbox:
    def __init__(self, tmp: Path, docker: bool = True, nvidia_smi: bool = True) -> None:
        self.root = tmp / "repo"
        self.root.mkdir(parents=True)
        shutil.copy2(ROOT / "setup.sh", self.root / "setup.sh")
        shutil.copytree(
            COMPOSE,
            self.root / "compose",
            ignore=shutil.ignore_patterns(".env", "*.yml.tmp"),
        )
        for stale in (self.root / "compose/host/targets").glob("*.yml"):
            stale.unlink()
        self.bin = tmp / "bin"
        self.bin.mkdir()
        for t in TOOLS:
            (self.bin / t).symlink_to(shutil.which(t))
        if docker:
            self._script("docker", FAKE_DOCKER)
        if nvidia_smi:
            self._script("nvidia-smi", FAKE_NVIDIA_SMI)
        self.log = tmp / "docker.log"
        self.log.touch()
        self.env = {
            "PATH": str(self.bin),
            "HOME": str(tmp),
            "FAKE_LOG": str(self.log),
            "FAKE_COMPOSE_VERSION": "2.29.1",
            "FAKE_RUNTIMES": '{"io.containerd.runc.v2":{"path":"runc"},"nvidia":{"path":"nvidia-container-runtime"}}',
        }

    def _script(self, name: str, text: str) -> None:
        path = self.bin / name
        path.write_text(text)
        path.chmod(0o755)

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["/bin/bash", str(self.root / "setup.sh"), *args],
            check=False,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=30,
        )

    def env_file(self, part: str) -> dict[str, str]:
        lines = (self.root / f"compose/{part}/.env").read_text().splitlines()
        return dict(
            line.split("=", 1) for line in lines if line and not line.startswith("#")
        )


def test_without_docker_it_says_so(tmp_path):
    box = Sandbox(tmp_path, docker=False)
    r = box.run("--host")
    assert r.returncode == 1
    assert (
        "Docker is not installed (no 'docker' command): install Docker Engine"
        in r.stderr
    )
    assert not (box.root / "compose/host/.env").exists()


def test_worker_lists_everything_missing_at_once(tmp_path):
    box = Sandbox(tmp_path, nvidia_smi=False)
    r = box.run("--worker", FAKE_COMPOSE_VERSION="", FAKE_DOCKER_DOWN="1")
    assert r.returncode == 1
    assert "cannot set up --worker on this machine; missing:" in r.stderr
    assert (
        "Docker Compose v2 is not installed ('docker compose' does not run)" in r.stderr
    )
    assert (
        "the Docker daemon is not reachable (Cannot connect to the Docker daemon"
        in r.stderr
    )
    assert "the NVIDIA driver is not installed (no 'nvidia-smi')" in r.stderr


def test_worker_without_the_container_toolkit(tmp_path):
    box = Sandbox(tmp_path)
    r = box.run("--worker", FAKE_RUNTIMES='{"runc":{"path":"runc"}}')
    assert r.returncode == 1
    assert (
        "the NVIDIA Container Toolkit is not set up for Docker (no 'nvidia' runtime in 'docker info')"
        in r.stderr
    )
    assert "nvidia-ctk runtime configure --runtime=docker" in r.stderr


def test_host_writes_env_with_a_generated_password_and_prints_urls(tmp_path):
    box = Sandbox(tmp_path)
    r = box.run("--host", "--host-ip", "10.1.2.3")
    assert r.returncode == 0, r.stderr
    env = box.env_file("host")
    password = env["GRAFANA_ADMIN_PASSWORD"]
    assert re.fullmatch(r"[0-9a-f]{36}", password)
    assert env["GRAFANA_ROOT_URL"] == "http://10.1.2.3:3000"
    assert stat.S_IMODE((box.root / "compose/host/.env").stat().st_mode) == 0o600
    assert "Grafana:          http://10.1.2.3:3000" in r.stdout
    assert password in r.stdout
    assert "http://10.1.2.3:8428/vmui" in r.stdout
    assert "./setup.sh --add-worker WORKER_IP --cluster CLUSTER_NAME" in r.stdout
    assert (
        f"docker compose -f {box.root}/compose/host/docker-compose.yml up -d --build"
        in box.log.read_text()
    )
    # Run again: the password stays.
    r = box.run("--host", "--host-ip", "10.1.2.3")
    assert r.returncode == 0
    assert "keeping the existing" in r.stdout
    assert box.env_file("host")["GRAFANA_ADMIN_PASSWORD"] == password


def test_passwords_differ_between_installs(tmp_path):
    a, b = Sandbox(tmp_path / "a"), Sandbox(tmp_path / "b")
    for box in (a, b):
        assert box.run("--host", "--no-start").returncode == 0
    assert (
        a.env_file("host")["GRAFANA_ADMIN_PASSWORD"]
        != b.env_file("host")["GRAFANA_ADMIN_PASSWORD"]
    )
    assert "up -d" not in a.log.read_text()


def test_worker_starts_the_exporter_and_says_what_to_run_on_the_host(tmp_path):
    box = Sandbox(tmp_path)
    r = box.run("--worker", "--host-ip", "10.1.2.3")
    assert r.returncode == 0, r.stderr
    assert (box.root / "compose/worker/.env").exists()
    assert "On the monitoring host (10.1.2.3), run:" in r.stdout
    assert "./setup.sh --add-worker" in r.stdout
    assert (
        f"compose -f {box.root}/compose/worker/docker-compose.yml up -d --build"
        in box.log.read_text()
    )


def test_single_node_needs_compose_2_20(tmp_path):
    box = Sandbox(tmp_path)
    r = box.run("--single-node", FAKE_COMPOSE_VERSION="2.19.1")
    assert r.returncode == 1
    assert (
        "Docker Compose 2.19.1 is too old for --single-node (needs 2.20 or later for 'include')"
        in r.stderr
    )


def test_single_node_sets_up_both_halves(tmp_path):
    box = Sandbox(tmp_path)
    r = box.run("--single-node", "--host-ip", "10.1.2.3")
    assert r.returncode == 0, r.stderr
    assert box.env_file("host")["GRAFANA_ADMIN_PASSWORD"]
    assert (box.root / "compose/worker/.env").exists()
    targets = yaml.safe_load((box.root / "compose/host/targets/local.yml").read_text())
    assert targets == [
        {"labels": {"cluster": "local"}, "targets": ["host.docker.internal:9400"]}
    ]
    assert (
        f"compose -f {box.root}/compose/single-node/docker-compose.yml up -d --build"
        in box.log.read_text()
    )
    assert "exporter:         http://10.1.2.3:9400/" in r.stdout


def test_add_worker_appends_one_line_per_worker(tmp_path):
    env = {**os.environ, "ALGALON_TARGETS_DIR": str(tmp_path)}

    def add(*args):
        return subprocess.run(
            [str(ROOT / "setup.sh"), "--add-worker", *args],
            check=False,
            env=env,
            capture_output=True,
            text=True,
        )

    assert add("10.0.0.11", "--cluster", "train-a").returncode == 0
    before = (tmp_path / "train-a.yml").read_text()
    assert add("10.0.0.12:9500", "--cluster", "train-a").returncode == 0
    after = (tmp_path / "train-a.yml").read_text()
    assert after == before + "    - 10.0.0.12:9500\n"
    r = add("10.0.0.11", "--cluster", "train-a")
    assert r.returncode == 0 and "already a target" in r.stdout
    assert add("gpu-node-7.example.org").returncode == 0
    assert yaml.safe_load((tmp_path / "train-a.yml").read_text()) == [
        {
            "labels": {"cluster": "train-a"},
            "targets": ["10.0.0.11:9400", "10.0.0.12:9500"],
        }
    ]
    assert yaml.safe_load((tmp_path / "default.yml").read_text())[0]["targets"] == [
        "gpu-node-7.example.org:9400"
    ]
    r = add("10.0.0.1; rm -rf /")
    assert r.returncode == 1 and "is not a worker address" in r.stderr
    r = add("10.0.0.13", "--cluster", "../etc")
    assert r.returncode == 1 and "is not a cluster name" in r.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "./setup.sh --host"),
        (
            ["--host", "--worker"],
            "choose one of --host, --worker, --single-node, --add-worker",
        ),
        (["--add-worker"], "--add-worker needs the worker's address"),
        (["--bogus"], "unknown argument '--bogus'"),
    ],
)
def test_usage_errors(tmp_path, args, message):
    r = subprocess.run(
        [str(ROOT / "setup.sh"), *args], check=False, capture_output=True, text=True
    )
    assert r.returncode != 0
    assert message in r.stderr
