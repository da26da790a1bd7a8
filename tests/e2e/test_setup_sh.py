"""setup.sh in a sandbox: a copy of the repo's setup.sh and compose/, a PATH
holding only the tools it uses, and stand-ins for `docker` and `nvidia-smi`
that answer as a machine with (or without) each prerequisite would."""

from __future__ import annotations

import http.server
import os
import re
import shutil
import stat
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from e2e_stack import COMPOSE, ROOT, docker_compose_config

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
    "basename",
    "tail",
    "rm",
    "flock",
    "curl",
    "timeout",
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
if [[ $1 == compose && " $* " == *" ps -q "* ]]; then
    # The project's own containers (setup.sh asks before checking ports).
    [[ -z ${FAKE_OURS:-} ]] || echo "$FAKE_OURS"
    exit 0
fi
[[ $1 == compose ]] && exit 0
if [[ $1 == ps ]]; then # ps -q --filter publish=PORT: who publishes a port
    [[ -z ${FAKE_PUBLISHER:-} ]] || echo "$FAKE_PUBLISHER"
    exit 0
fi
if [[ $1 == image && $2 == inspect ]]; then # only FAKE_IMAGES are in the engine
    [[ " ${FAKE_IMAGES:-} " == *" $3 "* ]] && exit 0
    echo "Error response from daemon: No such image: $3" >&2
    exit 1
fi
if [[ $1 == pull ]]; then
    [[ -n ${FAKE_PULL_OK:-} ]] && exit 0
    echo 'Error response from daemon: Get "https://ghcr.io/v2/": dial tcp: lookup ghcr.io: no such host' >&2
    exit 1
fi
if [[ $1 == inspect ]]; then
    echo "/algalon-other-grafana-1"
    exit 0
fi
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
            ignore=shutil.ignore_patterns(".env", "*.yml.tmp", ".lock"),
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
            # setup.sh checks that the ports it publishes are free: ports
            # nothing listens on, whatever else runs on this machine.
            "GRAFANA_PORT": str(closed_port()),
            "VM_PORT": str(closed_port()),
            "ALGALON_PORT": str(closed_port()),
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
    # The password stays in .env (mode 600); the output says where it is.
    assert password not in r.stdout + r.stderr
    assert f"GRAFANA_ADMIN_PASSWORD in {box.root}/compose/host/.env" in r.stdout
    assert "Algalon monitoring host is up:" in r.stdout
    # VictoriaMetrics has no authentication: loopback only, reached through ssh.
    assert (
        "VictoriaMetrics:  http://127.0.0.1:8428/vmui  (this machine only" in r.stdout
    )
    assert "ssh -L 8428:127.0.0.1:8428 10.1.2.3" in r.stdout
    assert "http://10.1.2.3:8428" not in r.stdout
    assert box.env_file("host")["VM_BIND"] == "127.0.0.1"
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


def test_host_warns_when_victoriametrics_is_published(tmp_path):
    """An .env kept from before (VM_BIND=0.0.0.0) publishes VictoriaMetrics'
    unauthenticated API: setup.sh says so on every run."""
    box = Sandbox(tmp_path)
    env = box.root / "compose/host/.env"
    env.write_text(
        (box.root / "compose/host/.env.example")
        .read_text()
        .replace("VM_BIND=127.0.0.1", "VM_BIND=0.0.0.0")
        .replace("GRAFANA_ADMIN_PASSWORD=", "GRAFANA_ADMIN_PASSWORD=x")
    )
    r = box.run("--host", "--host-ip", "10.1.2.3", "--no-start")
    assert r.returncode == 0, r.stderr
    assert "VictoriaMetrics:  http://10.1.2.3:8428/vmui" in r.stdout
    assert (
        "warning: VictoriaMetrics is published on 10.1.2.3:8428 without authentication"
        f" (VM_BIND in {env})" in r.stderr
    )


def test_passwords_differ_between_installs(tmp_path):
    a, b = Sandbox(tmp_path / "a"), Sandbox(tmp_path / "b")
    for box in (a, b):
        r = box.run("--host", "--no-start")
        assert r.returncode == 0
        # Nothing was started, and the password is not in the output.
        assert "is up" not in r.stdout
        assert "set up, not started (--no-start)" in r.stdout
        assert box.env_file("host")["GRAFANA_ADMIN_PASSWORD"] not in r.stdout
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


RELEASE_IMAGE = next(
    line.split("=", 1)[1]
    for line in (COMPOSE / "worker/.env.example").read_text().splitlines()
    if line.startswith("ALGALON_IMAGE=")
)


def test_worker_pulls_the_release_image_and_does_not_build(tmp_path):
    box = Sandbox(tmp_path)
    r = box.run("--worker", "--host-ip", "10.1.2.3", FAKE_PULL_OK="1")
    assert r.returncode == 0, r.stderr
    log = box.log.read_text()
    assert f"docker pull -q {RELEASE_IMAGE}" in log
    assert f"setup.sh: pulled {RELEASE_IMAGE}" in r.stdout
    assert log.rstrip().endswith(
        f"compose -f {box.root}/compose/worker/docker-compose.yml up -d"
    ), log


def test_worker_builds_the_release_image_when_it_cannot_be_pulled(tmp_path):
    box = Sandbox(tmp_path)
    r = box.run("--worker", "--host-ip", "10.1.2.3")
    assert r.returncode == 0, r.stderr
    assert (
        f"setup.sh: cannot pull {RELEASE_IMAGE} (Error response from daemon: "
        'Get "https://ghcr.io/v2/": dial tcp: lookup ghcr.io: no such host): '
        "building it from compose/worker/Dockerfile instead" in r.stdout
    ), r.stdout
    assert "up -d --build" in box.log.read_text()


def test_worker_uses_a_release_image_already_in_the_engine(tmp_path):
    box = Sandbox(tmp_path)
    r = box.run("--worker", "--host-ip", "10.1.2.3", FAKE_IMAGES=RELEASE_IMAGE)
    assert r.returncode == 0, r.stderr
    log = box.log.read_text()
    assert "docker pull" not in log
    assert log.rstrip().endswith("up -d"), log


def test_worker_with_a_local_image_name_builds_without_pulling(tmp_path):
    box = Sandbox(tmp_path)
    r = box.run(
        "--worker", "--host-ip", "10.1.2.3", ALGALON_IMAGE="algalon-exporter:local"
    )
    assert r.returncode == 0, r.stderr
    assert "docker pull" not in box.log.read_text()
    assert "algalon-exporter:local is built from compose/worker/Dockerfile" in r.stdout
    assert "up -d --build" in box.log.read_text()


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
        (["--add-worker", "--cluster", "a"], "--add-worker needs the worker's address"),
        (["--remove-worker"], "--remove-worker needs the worker's address"),
        (["--bogus"], "unknown argument '--bogus'"),
        (["--host", "10.0.0.1"], "unknown argument '10.0.0.1'"),
        (["--add-worker", "10.0.0.1", "--cluster"], "--cluster needs a name"),
        (["--host", "--cluster", "a"], "--cluster goes with --add-worker"),
    ],
)
def test_usage_errors(tmp_path, args, message):
    r = subprocess.run(
        [str(ROOT / "setup.sh"), *args], check=False, capture_output=True, text=True
    )
    assert r.returncode != 0
    assert message in r.stderr


# ------------------------------------------------------------ worker targets


def targets(box: Sandbox, cluster: str) -> list[str]:
    doc = yaml.safe_load((box.root / f"compose/host/targets/{cluster}.yml").read_text())
    assert doc[0]["labels"] == {"cluster": cluster}
    return doc[0]["targets"]


def closed_port() -> int:
    """A loopback port nothing listens on (connection refused at once)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_add_worker_takes_the_cluster_before_or_after_the_address(tmp_path):
    box = Sandbox(tmp_path)
    p1, p2 = closed_port(), closed_port()
    r = box.run("--add-worker", "--cluster", "a", f"127.0.0.1:{p1}")
    assert r.returncode == 0, r.stderr
    r = box.run("--cluster=a", "--add-worker", f"127.0.0.1:{p2}")
    assert r.returncode == 0, r.stderr
    assert targets(box, "a") == [f"127.0.0.1:{p1}", f"127.0.0.1:{p2}"]


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("10.0.0.300", "'10.0.0.300' is not an IPv4 address"),
        ("10.0.0.1:99999", "'99999' is not a TCP port (1-65535"),
        ("10.0.0.1:0", "'0' is not a TCP port"),
        ("10.0.0.1:", "'' is not a TCP port"),
        ("", "'' has no host"),
        (":9400", "':9400' has no host"),
        ("10.0.0.1; rm -rf /", "is not a worker address"),
        ("-bad-.example.org", "unknown argument"),
        ("bad-.example.org", "is not a worker address"),
        ("fd00::1::2", "'fd00::1::2' is not an IPv6 address"),
        ("[fd00::g]:9400", "'fd00::g' is not an IPv6 address"),
        ("[fd00::1]:70000", "'70000' is not a TCP port"),
        ("fe80::1%eth0", "'fe80::1%eth0' has a zone"),
    ],
)
def test_add_worker_rejects_bad_addresses(tmp_path, address, message):
    box = Sandbox(tmp_path)
    r = box.run("--add-worker", "10.0.0.11", address, "--cluster", "a")
    assert r.returncode != 0
    assert message in r.stderr
    # All or nothing: the good address before it is not added either.
    assert not (box.root / "compose/host/targets/a.yml").exists()


def test_add_worker_accepts_ipv6_and_normalises_addresses(tmp_path):
    box = Sandbox(tmp_path)
    r = box.run(
        "--add-worker",
        "[fd00::1]:9500",
        "fd00:0:0::2",
        "FD00::3",
        "GPU-7.Example.org:09400",
        "10.0.0.7",
        "--cluster",
        "v6",
        ALGALON_HEALTH_TIMEOUT="1",
    )
    assert r.returncode == 0, r.stderr
    assert targets(box, "v6") == [
        "[fd00::1]:9500",
        "[fd00::2]:9400",
        "[fd00::3]:9400",
        "gpu-7.example.org:9400",
        "10.0.0.7:9400",
    ]
    # The same worker written another way is the same worker.
    r = box.run("--add-worker", "[fd00:0000::2]:9400", "--cluster", "v6")
    assert r.returncode == 0 and "already a target of cluster v6" in r.stdout
    assert len(targets(box, "v6")) == 5


def test_a_worker_belongs_to_one_cluster(tmp_path):
    box = Sandbox(tmp_path)
    port = closed_port()
    assert (
        box.run("--add-worker", f"127.0.0.1:{port}", "--cluster", "a").returncode == 0
    )
    r = box.run("--add-worker", f"127.0.0.1:{port}", "--cluster", "b")
    assert r.returncode == 1
    assert f"127.0.0.1:{port} is already a worker of cluster a" in r.stderr
    assert f"--remove-worker 127.0.0.1:{port}" in r.stderr
    assert not (box.root / "compose/host/targets/b.yml").exists()


def test_remove_and_list_workers(tmp_path):
    box = Sandbox(tmp_path)
    ports = [closed_port() for _ in range(3)]
    a = [f"127.0.0.1:{p}" for p in ports[:2]]
    b = f"[::1]:{ports[2]}"
    assert box.run("--add-worker", *a, "--cluster", "a").returncode == 0
    assert box.run("--add-worker", b, "--cluster", "b").returncode == 0
    r = box.run("--list-workers")
    assert r.returncode == 0
    assert r.stdout.splitlines() == [f"a\t{a[0]}", f"a\t{a[1]}", f"b\t{b}"]
    assert box.run("--list-workers", "--cluster", "b").stdout == f"b\t{b}\n"

    r = box.run("--remove-worker", a[0], "--cluster", "b")
    assert r.returncode == 1 and f"{a[0]} is not a worker of cluster b" in r.stderr
    r = box.run("--remove-worker", a[0])  # the cluster is found
    assert r.returncode == 0, r.stderr
    assert f"removed {a[0]} from cluster a" in r.stdout
    assert targets(box, "a") == [a[1]]
    r = box.run("--remove-worker", "::1", "--cluster", "b")
    assert r.returncode == 1  # ::1 is port 9400, not the port added
    r = box.run("--remove-worker", b, "--cluster", "b")
    assert r.returncode == 0 and "the last worker of cluster b" in r.stdout
    assert not (box.root / "compose/host/targets/b.yml").exists()
    r = box.run("--remove-worker", a[0])
    assert r.returncode == 1 and "is not a worker of any cluster" in r.stderr
    assert box.run("--list-workers").stdout == f"a\t{a[1]}\n"
    # Removed, it may join another cluster.
    assert box.run("--add-worker", a[0], "--cluster", "b").returncode == 0


def test_concurrent_add_worker_runs_keep_every_worker(tmp_path):
    """40 --add-worker runs at once into two new clusters: every one is kept
    (each run reads, appends and creates files; without the lock some lose
    others' lines)."""
    box = Sandbox(tmp_path)
    base = closed_port()
    want = {"c0": [], "c1": []}
    procs = []
    for i in range(40):
        address = f"127.0.0.1:{(base + 1 + i) % 65535 + 1}"
        cluster = f"c{i % 2}"
        want[cluster].append(address)
        procs.append(
            subprocess.Popen(
                [
                    "/bin/bash",
                    str(box.root / "setup.sh"),
                    "--add-worker",
                    address,
                    "--cluster",
                    cluster,
                ],
                env={**box.env, "ALGALON_HEALTH_TIMEOUT": "1"},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    for cluster, addresses in want.items():
        assert sorted(targets(box, cluster)) == sorted(addresses)
    listed = box.run("--list-workers").stdout.splitlines()
    assert len(listed) == 40


@contextmanager
def health_server(status: int) -> Iterator[int]:
    """A loopback HTTP server answering /health with `status`; yields its port."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status if self.path == "/health" else 404)
            self.end_headers()
            self.wfile.write(b"ok\n")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_add_worker_checks_the_workers_health(tmp_path):
    box = Sandbox(tmp_path)
    with health_server(200) as up, health_server(503) as stale:
        r = box.run("--add-worker", f"127.0.0.1:{up}", "--cluster", "a")
        assert r.returncode == 0, r.stderr
        assert f"127.0.0.1:{up} answers on /health: its exporter is up" in r.stdout
        assert "warning" not in r.stderr

        r = box.run("--add-worker", f"127.0.0.1:{stale}", "--cluster", "a")
        assert r.returncode == 0
        assert (
            f"warning: 127.0.0.1:{stale} does not answer on http://127.0.0.1:{stale}/health (HTTP 503"
            in r.stderr
        )

    down = closed_port()
    r = box.run("--add-worker", f"127.0.0.1:{down}", "--cluster", "a")
    assert r.returncode == 0
    assert f"warning: 127.0.0.1:{down} does not answer" in r.stderr
    assert "connection refused" in r.stderr
    assert "It is added anyway" in r.stderr
    # Added either way.
    assert targets(box, "a") == [f"127.0.0.1:{p}" for p in (up, stale, down)]


# ------------------------------------------------------- simulated GPUs


class ComposeLoader(yaml.SafeLoader):
    """YAML with Compose's !reset and !override tags."""


def _reset(loader: yaml.SafeLoader, node: yaml.Node) -> tuple[str, object]:
    if isinstance(node, yaml.MappingNode):
        return ("!reset", loader.construct_mapping(node))
    if isinstance(node, yaml.SequenceNode):
        return ("!reset", loader.construct_sequence(node))
    return ("!reset", loader.construct_scalar(node))


ComposeLoader.add_constructor("!reset", _reset)


def sim_box(tmp: Path, **kw) -> Sandbox:
    """A machine without NVIDIA driver or runtime, with a checkout's
    scenarios and a built fake NVML (a stand-in file: setup.sh only mounts
    it; tests/e2e/test_simulate.py runs the real one)."""
    box = Sandbox(tmp, nvidia_smi=False, **kw)
    box.env["FAKE_RUNTIMES"] = '{"io.containerd.runc.v2":{"path":"runc"}}'
    (box.root / "testing/scenarios").mkdir(parents=True)
    shutil.copy2(ROOT / "testing/scenarios/h100x8.json", box.root / "testing/scenarios")
    lib = box.root / "target/fake-nvml/libnvidia-ml.so.1"
    lib.parent.mkdir(parents=True)
    lib.write_bytes(b"\x7fELF stand-in")
    return box


def simulate_override(box: Sandbox) -> dict:
    path = box.root / "compose/worker/simulate.override.yml"
    return yaml.load(path.read_text(), Loader=ComposeLoader)


def mounts(service: dict) -> dict[str, str]:
    """container path -> host path of a service's bind mounts (long syntax)."""
    return {v["target"]: v["source"] for v in service["volumes"] if isinstance(v, dict)}


def test_worker_simulate_needs_no_gpu_and_runs_the_fake_nvml(tmp_path):
    box = sim_box(tmp_path)
    r = box.run("--worker", "--simulate", "--host-ip", "10.1.2.3")
    assert r.returncode == 0, r.stderr
    assert "NVIDIA" not in r.stderr  # no driver, no toolkit: not asked for
    worker = box.root / "compose/worker"
    assert (
        f"docker compose -f {worker}/docker-compose.yml -f {worker}/simulate.override.yml up -d --build"
        in box.log.read_text()
    )
    assert (
        "algalon-exporter is up on this worker (simulated GPUs: h100x8.json):"
        in r.stdout
    )
    svc = simulate_override(box)["services"]["algalon-exporter"]
    assert svc["deploy"] == ("!reset", {})  # no GPU reservation, no NVIDIA runtime
    env = svc["environment"]
    bound = mounts(svc)
    # The exporter loads the mounted fake library, which serves the mounted scenario.
    assert bound[env["ALGALON_NVML_LIB"]] == str(
        box.root / "target/fake-nvml/libnvidia-ml.so.1"
    )
    assert env["LD_LIBRARY_PATH"] == str(Path(env["ALGALON_NVML_LIB"]).parent)
    assert bound[env["ALGALON_FAKE_NVML_SCENARIO"]] == str(
        box.root / "testing/scenarios/h100x8.json"
    )
    assert all(v["read_only"] for v in svc["volumes"])


@pytest.mark.parametrize("part", ["worker", "single-node"])
def test_simulate_override_as_compose_renders_it(tmp_path, part):
    """What `docker compose config` would hand the engine: the exporter
    service without a GPU reservation, with the fake NVML and the scenario
    mounted and named in its environment."""
    box = sim_box(tmp_path)
    r = box.run(f"--{part}", "--simulate", "--no-start")
    assert r.returncode == 0, r.stderr
    assert "is up" not in r.stdout
    files = [
        box.root / f"compose/{part}/docker-compose.yml",
        box.root / "compose/worker/simulate.override.yml",
    ]
    # The command --no-start leaves to run: compose pulls nothing and builds
    # the release image only when it is not in the engine.
    started = f"run 'docker compose -f {files[0]} -f {files[1]} up -d' when ready"
    assert started in r.stdout, r.stdout
    model = docker_compose_config(files, box.root)
    if model is None:
        pytest.skip("Docker Compose v2 is not installed (docker compose config)")
    svc = model["services"]["algalon-exporter"]
    assert "deploy" not in svc
    bound = mounts(svc)
    env = svc["environment"]
    assert bound[env["ALGALON_NVML_LIB"]] == str(
        box.root / "target/fake-nvml/libnvidia-ml.so.1"
    )
    assert bound[env["ALGALON_FAKE_NVML_SCENARIO"]] == str(
        box.root / "testing/scenarios/h100x8.json"
    )
    assert bound["/etc/algalon/collectors.csv"] == str(
        box.root / "compose/worker/collectors.csv"
    )
    # The rest of the worker's service is unchanged.
    assert svc["pid"] == "host" and svc["read_only"] is True
    assert [p["target"] for p in svc["ports"]] == [9400]
    if part == "single-node":
        assert {"victoriametrics", "vmagent", "grafana"} <= set(model["services"])


def test_single_node_simulate_scrapes_the_local_exporter(tmp_path):
    box = sim_box(tmp_path)
    r = box.run(
        "--single-node",
        "--simulate",
        "--scenario",
        str(ROOT / "testing/scenarios/h100x8.json"),
    )
    assert r.returncode == 0, r.stderr
    assert targets(box, "local") == ["host.docker.internal:9400"]
    assert "Algalon is up on this machine (simulated GPUs: h100x8.json):" in r.stdout
    # --scenario FILE is mounted as given.
    svc = simulate_override(box)["services"]["algalon-exporter"]
    assert mounts(svc)["/opt/algalon/scenario.json"] == str(
        ROOT / "testing/scenarios/h100x8.json"
    )


def test_simulate_without_the_fake_nvml_says_how_to_build_it(tmp_path):
    box = sim_box(tmp_path)
    (box.root / "target/fake-nvml/libnvidia-ml.so.1").unlink()
    r = box.run("--single-node", "--simulate")
    assert r.returncode == 1
    assert (
        f"the fake NVML library for --simulate ({box.root}/target/fake-nvml/libnvidia-ml.so.1):"
        " build it with 'make fake-nvml'" in r.stderr
    )
    assert not (box.root / "compose/worker/simulate.override.yml").exists()
    assert not (box.root / "compose/host/.env").exists()
    r = box.run("--worker", "--scenario", "nope.json")
    assert r.returncode == 1
    assert "the scenario for --simulate (nope.json does not exist)" in r.stderr


def test_simulate_needs_compose_2_24_4_and_an_exporter(tmp_path):
    box = sim_box(tmp_path)
    r = box.run("--worker", "--simulate", FAKE_COMPOSE_VERSION="2.24.3")
    assert r.returncode == 1
    assert (
        "Docker Compose 2.24.3 is too old for --simulate (needs 2.24.4 or later"
        in r.stderr
    )
    assert (
        box.run(
            "--worker", "--simulate", FAKE_COMPOSE_VERSION="v2.24.4-desktop.1"
        ).returncode
        == 0
    )
    r = box.run("--host", "--simulate")
    assert r.returncode == 1
    assert "--simulate goes with --worker or --single-node" in r.stderr


def test_a_run_without_simulate_goes_back_to_real_gpus(tmp_path):
    box = sim_box(tmp_path)
    assert box.run("--worker", "--simulate").returncode == 0
    # The machine gets its GPUs: driver and toolkit present.
    box._script("nvidia-smi", FAKE_NVIDIA_SMI)
    r = box.run(
        "--worker", FAKE_RUNTIMES='{"nvidia":{"path":"nvidia-container-runtime"}}'
    )
    assert r.returncode == 0, r.stderr
    assert not (box.root / "compose/worker/simulate.override.yml").exists()
    assert "the exporter reads the real GPUs again" in r.stdout
    last = box.log.read_text().splitlines()[-1]
    assert (
        last
        == f"docker compose -f {box.root}/compose/worker/docker-compose.yml up -d --build"
    )


@contextmanager
def listening() -> Iterator[int]:
    """A loopback port something listens on, as another program would."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_a_taken_port_is_one_line_and_nothing_starts(tmp_path):
    box = Sandbox(tmp_path)
    with listening() as port:
        r = box.run("--host", GRAFANA_PORT=str(port), VM_PORT=str(closed_port()))
        assert r.returncode == 1
        env = box.root / "compose/host/.env"
        assert r.stderr.splitlines() == [
            (
                f"setup.sh: port {port} (GRAFANA_PORT in {env}) is already in use on"
                f" 0.0.0.0 by another program: stop it, or set GRAFANA_PORT in {env} to a"
                " free port; nothing was started"
            )
        ]
        assert " up " not in box.log.read_text()
        # Held by a container of another project: named.
        r = box.run(
            "--host",
            GRAFANA_PORT=str(port),
            VM_PORT=str(closed_port()),
            FAKE_PUBLISHER="0123456789ab",
        )
        assert r.returncode == 1
        assert "by the container algalon-other-grafana-1:" in r.stderr
        # Held by this very stack (setup.sh run again): fine.
        r = box.run(
            "--host",
            GRAFANA_PORT=str(port),
            VM_PORT=str(closed_port()),
            FAKE_PUBLISHER="0123456789abcdef",
            FAKE_OURS="0123456789abcdef0123",
        )
        assert r.returncode == 0, r.stderr
        assert " up -d --build" in box.log.read_text()


def test_an_empty_password_in_an_existing_env_is_one_line(tmp_path):
    box = Sandbox(tmp_path)
    env = box.root / "compose/host/.env"
    shutil.copy2(box.root / "compose/host/.env.example", env)
    line = next(
        i
        for i, text in enumerate(env.read_text().splitlines(), 1)
        if text.startswith("GRAFANA_ADMIN_PASSWORD=")
    )
    r = box.run("--host")
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        (
            f"setup.sh: {env}:{line}: GRAFANA_ADMIN_PASSWORD is empty: set a password"
            f" there, or delete {env} and run setup.sh again to generate one; nothing"
            " was started"
        )
    ]
    assert " up " not in box.log.read_text()
    r = box.run("--host", GRAFANA_ADMIN_PASSWORD="x", GRAFANA_PORT="30o0")
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        (
            "setup.sh: the environment: GRAFANA_PORT=30o0 is not a TCP port (1-65535);"
            " nothing was started"
        )
    ]
