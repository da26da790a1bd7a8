"""The ``algalon`` wheel and sdist as a user gets them.

* The wheel (``make wheel``, or the dev-profile one ``make python-pkg``
  builds) is abi3 for CPython >= 3.9 and manylinux2014 by ``auditwheel show``.
* Installed into a fresh virtualenv (no system site-packages, no index, no
  Rust toolchain on PATH) it measures a job against the fake NVML
  (``smoke_job.py``).
* The sdist alone, unpacked in a temporary directory, builds a wheel with
  ``pip wheel`` (maturin's PEP 517 backend) that installs and runs the same job.

The wheel directory is ``$ALGALON_WHEEL_DIR`` (default ``target/wheels``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WHEEL_DIR = Path(os.environ.get("ALGALON_WHEEL_DIR", REPO / "target" / "wheels"))
FAKE_LIB = (
    Path(os.environ.get("ALGALON_FAKE_NVML_DIR", REPO / "target" / "fake-nvml"))
    / "libnvidia-ml.so.1"
)
SCENARIO = REPO / "algalon-core" / "tests" / "scenarios" / "constant.json"
SMOKE = Path(__file__).with_name("smoke_job.py")
VERSION = tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]["package"][
    "version"
]
# The oldest glibc the wheel may need: manylinux2014 is glibc 2.17.
MAX_GLIBC_MINOR = 17


def the_wheel() -> Path:
    arch = os.uname().machine
    wheels = sorted(WHEEL_DIR.glob(f"algalon-*-cp39-abi3-*_{arch}.whl"))
    if not wheels:
        pytest.fail(
            f"no algalon wheel for {arch} in {WHEEL_DIR}: run `make wheel` or `make python-pkg`"
        )
    assert len(wheels) == 1, f"more than one wheel for {arch}: {wheels}"
    return wheels[0]


def no_rust_env(tmp: Path, venv_dir: Path) -> dict[str, str]:
    """The environment of a training node: Python, the fake NVML, no Rust."""
    lib = tmp / "nvml" / "libnvidia-ml.so.1"
    lib.parent.mkdir(exist_ok=True)
    shutil.copy(FAKE_LIB, lib)
    scenario = tmp / "constant.json"
    shutil.copy(SCENARIO, scenario)
    path = [str(venv_dir / "bin")] + [
        d
        for d in ("/usr/local/bin", "/usr/bin", "/bin")
        if not (Path(d) / "cargo").exists() and not (Path(d) / "rustc").exists()
    ]
    env = {
        "PATH": os.pathsep.join(path),
        "HOME": str(tmp),
        "ALGALON_NVML_LIB": str(lib),
        "ALGALON_FAKE_NVML_SCENARIO": str(scenario),
        "ALGALON_EXPECT_VERSION": VERSION,
        "LANG": "C.UTF-8",
    }
    return env


def fresh_venv(where: Path) -> Path:
    # No pip upgrade, no system site-packages: only what the wheel brings.
    venv.EnvBuilder(with_pip=True, system_site_packages=False, clear=True).create(where)
    return where


def install_and_run_smoke(wheel: Path, tmp: Path) -> str:
    venv_dir = fresh_venv(tmp / "venv")
    py = venv_dir / "bin" / "python"
    env = no_rust_env(tmp, venv_dir)
    subprocess.run(
        [
            py,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--disable-pip-version-check",
            str(wheel),
        ],
        check=True,
        env=env,
        cwd=tmp,
    )
    smoke = tmp / "smoke_job.py"
    shutil.copy(SMOKE, smoke)
    out = subprocess.run(
        [py, str(smoke)],
        check=False,
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, f"smoke job failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def test_wheel_is_abi3_manylinux2014() -> None:
    wheel = the_wheel()
    assert wheel.name.startswith(f"algalon-{VERSION}-cp39-abi3-"), wheel.name
    report = subprocess.run(
        ["auditwheel", "show", str(wheel)], capture_output=True, text=True, check=True
    ).stdout
    tags = re.findall(r'"manylinux_2_(\d+)_\w+"', report)
    assert tags, f"auditwheel found no manylinux tag:\n{report}"
    assert int(tags[0]) <= MAX_GLIBC_MINOR, (
        f"{wheel.name} needs glibc 2.{tags[0]}; training nodes on RHEL 8 / Ubuntu 20.04 "
        f"cannot install it:\n{report}"
    )
    assert "manylinux2014" in wheel.name, wheel.name


def test_fresh_venv_without_rust_runs_a_job(tmp_path: Path) -> None:
    out = install_and_run_smoke(the_wheel(), tmp_path)
    assert "smoke job passed" in out, out


def test_sdist_alone_builds_an_installable_wheel(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(["make", "sdist", f"WHEEL_DIR={dist}"], cwd=REPO, check=True)
    (sdist,) = dist.glob("algalon-*.tar.gz")
    assert sdist.name == f"algalon-{VERSION}.tar.gz", sdist.name
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "src", filter="data")
    top = f"algalon-{VERSION}"
    for needed in (
        "pyproject.toml",
        "Cargo.toml",
        "Cargo.lock",
        "python/algalon/__init__.py",
        "python/algalon/py.typed",
        "python/algalon/_algalon.pyi",
    ):
        assert any(n.startswith(top) and n.endswith(needed) for n in names), (
            f"{needed} missing from the sdist: {names}"
        )
    leaked = [n for n in names if "/tests/" in n or n.endswith((".prom", ".whl"))]
    assert not leaked, f"test data in the sdist: {leaked}"

    # Built where the repository is out of reach: the unpacked sdist in a
    # temporary directory. Only compiled crates.io dependencies are shared
    # (CARGO_TARGET_DIR): Algalon's own crates come from the sdist.
    env = dict(os.environ)
    env["MATURIN_PEP517_ARGS"] = "--profile dev --zig --compatibility manylinux2014"
    env["CARGO_TARGET_DIR"] = str(REPO / "target")
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "-w",
            wheels,
            tmp_path / "src" / top,
        ],
        check=True,
        env=env,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("algalon-*.whl")
    assert "cp39-abi3" in wheel.name and "manylinux2014" in wheel.name, wheel.name
    out = install_and_run_smoke(wheel, tmp_path)
    assert "smoke job passed" in out, out
