"""`./setup.sh --worker --simulate` for real, minus the container: the
exporter service's environment and mounts as compose would hand them to the
engine (compose/worker/docker-compose.yml + the simulate.override.yml
setup.sh writes), container paths mapped back to the mounted host files, and
the real algalon-exporter started with exactly that environment. It has to
serve the fake NVML's 8 x H100 of testing/scenarios/h100x8.json."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from e2e_stack import (
    ROOT,
    Processes,
    free_ports,
    fresh_dir,
    http_get,
    interpolate,
    load_compose,
    read_env_file,
    wait_until,
)
from test_setup_sh import Sandbox, mounts, simulate_override


def built(path: Path, how: str) -> Path:
    if not path.exists():
        pytest.fail(f"{path} does not exist: {how}")
    return path


def container_to_host(value: str, bound: dict[str, str]) -> str:
    """A container path in an environment value -> the host path mounted
    there (a directory holding a mounted file -> that file's directory)."""
    if value in bound:
        return bound[value]
    for target, source in bound.items():
        if target.startswith(value.rstrip("/") + "/"):
            return str(Path(source).parent)
    return value


def exporter_as_compose_runs_it(box: Sandbox) -> tuple[dict[str, str], dict[str, str]]:
    """(environment, container path -> host path) of the simulated exporter
    service: the worker's service merged with the override, as compose merges
    them (environment by key, volumes appended), interpolated with the .env
    setup.sh wrote."""
    worker = box.root / "compose/worker"
    base = load_compose(worker / "docker-compose.yml")["services"]["algalon-exporter"]
    dotenv = read_env_file(worker / ".env")
    env = {k: interpolate(str(v), dotenv) for k, v in base["environment"].items()}
    bound = {}
    for volume in base["volumes"]:
        src, dst = volume.split(":")[:2]
        bound[dst] = str((worker / src).resolve())
    override = simulate_override(box)["services"]["algalon-exporter"]
    env.update(override["environment"])
    bound.update(mounts(override))
    return env, bound


def test_simulated_worker_serves_8_h100s(tmp_path):
    exporter = built(
        ROOT / "target/debug/algalon-exporter",
        "run scripts/e2e-pipeline.sh (it builds it)",
    )
    fake = built(ROOT / "target/fake-nvml/libnvidia-ml.so.1", "run make fake-nvml")
    box = Sandbox(tmp_path, nvidia_smi=False)
    box.env["FAKE_RUNTIMES"] = "{}"
    (box.root / "testing/scenarios").mkdir(parents=True)
    (box.root / "testing/scenarios/h100x8.json").write_bytes(
        (ROOT / "testing/scenarios/h100x8.json").read_bytes()
    )
    r = box.run(
        "--worker", "--simulate", "--no-start", ALGALON_FAKE_NVML_DIR=str(fake.parent)
    )
    assert r.returncode == 0, r.stderr

    env, bound = exporter_as_compose_runs_it(box)
    local = {k: container_to_host(v, bound) for k, v in env.items()}
    # Only the address differs: a free loopback port instead of the container's :9400.
    (port,) = free_ports(1)
    local["ALGALON_ADDRESS"] = f"127.0.0.1:{port}"
    local["ALGALON_LOG_FORMAT"] = "text"
    assert local["ALGALON_NVML_LIB"] == str(fake)
    assert local["LD_LIBRARY_PATH"] == str(fake.parent)
    assert local["ALGALON_COLLECTORS"] == str(
        (box.root / "compose/worker/collectors.csv").resolve()
    )

    procs = Processes(fresh_dir(tmp_path / "logs"))
    base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    procs.start("exporter", [str(exporter)], env=local, base_env=base_env)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(
            "the simulated exporter's /health",
            lambda: http_get(f"{url}/health")[0] == 200,
            30,
            on_wait=procs.check_alive,
        )
        status, body = http_get(f"{url}/metrics")
        assert status == 200
        text = body.decode()
        gpus = set(
            re.findall(r'^DCGM_FI_DEV_GPU_TEMP\{[^}]*\bgpu="(\d+)"', text, re.MULTILINE)
        )
        assert gpus == {str(i) for i in range(8)}, text[:2000]
        models = set(re.findall(r'modelName="([^"]+)"', text))
        assert models == {"NVIDIA H100 80GB HBM3"}
        # compose/worker/collectors.csv (mounted) is read, not the built-in
        # default CSV, which has no ECC totals.
        assert re.search(
            r'^DCGM_FI_DEV_ECC_DBE_VOL_TOTAL\{[^}]*gpu="7"', text, re.MULTILINE
        )
    finally:
        procs.stop_all()
