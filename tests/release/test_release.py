"""The release pipeline, checked where it cannot run.

* ``.github/workflows/*.yml`` validate against GitHub's workflow schema
  (``check-jsonschema --builtin-schema vendor.github-workflows``), every
  ``run:`` step is shellcheck-clean, takes no ``${{ }}`` expression into the
  shell, and runs only ``make`` targets that exist and that ``make test``
  exercises.
* One version: every crate, ``make version`` and the tag check agree;
  ``make check-tag`` refuses a tag that is not ``v<version>`` or a version
  without its CHANGELOG section; CHANGELOG.md is in Keep a Changelog form.
* ``make c-tarball`` ships a C library that a C program builds against with
  pkg-config (shared and static) and runs on the fake NVML;
  ``make checksums`` writes SHA256SUMS that ``sha256sum -c`` verifies and
  that catches a changed artifact.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
FAKE_LIB = (
    Path(os.environ.get("ALGALON_FAKE_NVML_DIR", REPO / "target" / "fake-nvml"))
    / "libnvidia-ml.so.1"
)

# Targets the workflows run that `make test` reaches other than as a
# prerequisite of `test`, with the file that shows how (None: this file's
# tests run it).
REACHED_OTHERWISE: dict[str, tuple[str, str] | None] = {
    "wheel": ("Makefile", "$(MAKE) -s wheel"),  # python-pkg builds it (dev profile)
    "sdist": ("tests/wheel/test_wheel.py", '"make", "sdist"'),
    "check-tag": None,
    "c-tarball": None,
    "checksums": None,
    "version": None,
    # The same script as `make crates`, which dry-runs this publish.
    "publish-crates": ("scripts/release.mk", "scripts/crates.sh publish"),
    # Built by the containers test, which make test runs.
    "image": ("scripts/e2e-containers.sh", "image IMAGE=algalon-exporter:local"),
}


def version() -> str:
    text = (REPO / "Cargo.toml").read_text()
    m = re.search(
        r'^\[workspace\.package\]\n(?:.*\n)*?version = "([^"]+)"', text, re.MULTILINE
    )
    assert m, "Cargo.toml: no [workspace.package] version"
    return m.group(1)


def make(
    *args: str, cwd: Path = REPO, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=check,
    )


def run_steps() -> list[tuple[str, str]]:
    """(where, script) of every `run:` step."""
    steps = []
    for wf in WORKFLOWS:
        doc = yaml.safe_load(wf.read_text())
        for job_id, job in doc["jobs"].items():
            for i, step in enumerate(job.get("steps", [])):
                if "run" in step:
                    steps.append(
                        (f"{wf.name}:{job_id}:{step.get('name', i)}", step["run"])
                    )
    return steps


def make_database() -> str:
    return make("-pRrq", "-f", "Makefile", ":", check=False).stdout


def reachable_from_test() -> set[str]:
    """Targets `make test` depends on, directly or through other targets."""
    db = make_database()
    deps: dict[str, set[str]] = {}
    for line in db.splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+):(?!=)\s*(.*)$", line)
        if m:
            deps.setdefault(m.group(1), set()).update(
                m.group(2).replace("|", " ").split()
            )
    seen, todo = set(), ["test"]
    while todo:
        t = todo.pop()
        if t not in seen:
            seen.add(t)
            todo.extend(deps.get(t, ()))
    return seen


def test_workflows_match_githubs_schema() -> None:
    assert {w.name for w in WORKFLOWS} >= {"ci.yml", "release.yml"}
    out = subprocess.run(
        [
            "check-jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            *map(str, WORKFLOWS),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_ci_runs_make_test_on_pull_requests() -> None:
    ci = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    # PyYAML reads the key `on` as True.
    triggers = ci.get("on", ci.get(True))
    assert "pull_request" in triggers
    runs = [
        s["run"].strip()
        for job in ci["jobs"].values()
        for s in job["steps"]
        if "run" in s
    ]
    assert "make test" in runs, runs
    ci_run = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci_run, "CI and .ci/run run the same command"


@pytest.mark.parametrize(
    ("where", "script"), run_steps(), ids=lambda v: v if ":" in v else ""
)
def test_run_step_is_shellcheck_clean(where: str, script: str) -> None:
    assert "${{" not in script, (
        f"{where}: pass workflow values to the shell through env:, not ${{{{ }}}} in run:"
    )
    out = subprocess.run(
        ["shellcheck", "-s", "bash", "-"],
        input=f"#!/usr/bin/env bash\nset -eo pipefail\n{script}",
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, f"{where}:\n{script}\n{out.stdout}"


@pytest.mark.parametrize(
    ("where", "script"), run_steps(), ids=lambda v: v if ":" in v else ""
)
def test_run_step_is_a_tested_make_target(where: str, script: str) -> None:
    reached = reachable_from_test()
    for line in script.strip().splitlines():
        argv = shlex.split(line, comments=True)
        if not argv:
            continue
        assert argv[0] == "make", f"{where}: `{line}` is not a make target"
        targets = [a for a in argv[1:] if "=" not in a and not a.startswith("-")]
        assert len(targets) == 1, f"{where}: one target per line: {line}"
        target = targets[0]
        dry = make("-n", *argv[1:], check=False)
        assert dry.returncode == 0, f"{where}: `{line}` does not resolve:\n{dry.stderr}"
        if target in reached:
            continue
        assert target in REACHED_OTHERWISE, (
            f"{where}: `make {target}` is not exercised by `make test`"
        )
        how = REACHED_OTHERWISE[target]
        if how is not None:
            path, evidence = how
            assert evidence in (REPO / path).read_text(), (
                f"{path} no longer runs `make {target}`"
            )


def test_one_version_everywhere() -> None:
    v = version()
    assert make("-s", "version").stdout.strip() == v
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    versions = {p["name"]: p["version"] for p in meta["packages"]}
    for crate in ("algalon-core", "algalon-exporter", "algalon-ffi", "algalon-py"):
        assert versions[crate] == v, f"{crate} is {versions[crate]}, the workspace {v}"
    pyproject = (REPO / "algalon-py" / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject, (
        "the Python package takes its version from Cargo"
    )
    # The release image compose/ pulls and deploy/kubernetes runs.
    image = f"ghcr.io/algalon-gpu/algalon-exporter:{v}"
    env_example = (REPO / "compose" / "worker" / ".env.example").read_text()
    assert f"\nALGALON_IMAGE={image}\n" in env_example, "compose/worker/.env.example"
    worker = (REPO / "compose" / "worker" / "docker-compose.yml").read_text()
    assert f"${{ALGALON_IMAGE:-{image}}}" in worker, "compose/worker/docker-compose.yml"
    kustomization = (REPO / "deploy/kubernetes/base/kustomization.yaml").read_text()
    assert f'newTag: "{v}"' in kustomization, "deploy/kubernetes/base"
    # algalon-core as the exporter depends on it when published.
    assert re.search(
        rf'^algalon-core = \{{ path = "algalon-core", version = "{re.escape(v)}" \}}',
        (REPO / "Cargo.toml").read_text(),
        re.MULTILINE,
    ), "the workspace dependency on algalon-core carries the workspace version"


def release_tree(tmp: Path, changelog: str) -> Path:
    """A copy of what `make check-tag` reads, with a CHANGELOG of our own."""
    for rel in (
        "Makefile",
        "Cargo.toml",
        "scripts/release.mk",
        "scripts/release.sh",
        "algalon-ffi/ffi.mk",
    ):
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, tmp / rel)
    (tmp / "CHANGELOG.md").write_text(changelog)
    return tmp


def test_check_tag(tmp_path: Path) -> None:
    v = version()
    released = (
        f"# Changelog\n\n## [Unreleased]\n\n## [{v}] - 2026-12-01\n\n### Added\n- x\n"
    )
    tree = release_tree(tmp_path / "released", released)
    ok = make("check-tag", f"TAG=v{v}", cwd=tree, check=False)
    assert ok.returncode == 0, ok.stderr
    wrong = make("check-tag", "TAG=v99.0.0", cwd=tree, check=False)
    assert wrong.returncode != 0
    assert f"does not match the workspace version {v}" in wrong.stderr, wrong.stderr
    missing = make("check-tag", cwd=tree, check=False)
    assert missing.returncode != 0 and "no tag given" in missing.stderr, missing.stderr
    unreleased = release_tree(
        tmp_path / "unreleased", "# Changelog\n\n## [Unreleased]\n"
    )
    no_section = make("check-tag", f"TAG=v{v}", cwd=unreleased, check=False)
    assert no_section.returncode != 0 and "CHANGELOG.md has no" in no_section.stderr


def test_changelog_keeps_a_changelog() -> None:
    text = (REPO / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog\n")
    assert "keepachangelog.com" in text
    releases = re.findall(r"^## (.*)$", text, re.MULTILINE)
    assert releases and releases[0] == "[Unreleased]", releases
    for r in releases[1:]:
        assert re.fullmatch(r"\[\d+\.\d+\.\d+(-[\w.]+)?\] - \d{4}-\d{2}-\d{2}", r), r
    kinds = set(re.findall(r"^### (.*)$", text, re.MULTILINE))
    assert kinds and kinds <= {
        "Added",
        "Changed",
        "Deprecated",
        "Removed",
        "Fixed",
        "Security",
    }, kinds


def test_c_tarball_builds_and_runs_a_c_program(tmp_path: Path) -> None:
    if not FAKE_LIB.exists():
        pytest.fail(f"{FAKE_LIB} is missing: run `make fake-nvml`")
    v = version()
    dist = tmp_path / "dist"
    make("-s", "c-tarball", f"DIST_DIR={dist}")
    name = f"libalgalon-{v}-linux-{os.uname().machine}"
    tarball = dist / f"{name}.tar.gz"
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
        tar.extractall(tmp_path, filter="data")
    for needed in (
        "lib/libalgalon.so",
        "lib/libalgalon.a",
        "lib/pkgconfig/algalon.pc",
        "include/algalon.h",
        "LICENSE-MIT",
        "LICENSE-APACHE",
    ):
        assert f"{name}/{needed}" in names, (
            f"{needed} missing from {tarball.name}: {sorted(names)}"
        )
    root = tmp_path / name
    assert (root / "include" / "algalon.h").read_bytes() == (
        REPO / "algalon-ffi" / "include" / "algalon.h"
    ).read_bytes(), "the tarball's header is the committed one"
    assert f"Version: {v}" in (root / "lib" / "pkgconfig" / "algalon.pc").read_text()

    env = {
        **os.environ,
        "PKG_CONFIG_PATH": str(root / "lib" / "pkgconfig"),
        "ALGALON_NVML_LIB": str(FAKE_LIB),
        "ALGALON_FAKE_NVML_SCENARIO": str(
            REPO / "testing" / "scenarios" / "h100x8.json"
        ),
    }

    def pkg(*args: str) -> list[str]:
        out = subprocess.run(
            ["pkg-config", f"--define-variable=prefix={root}", *args, "algalon"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.split()

    source = REPO / "examples" / "c" / "gpu_report.c"
    shared, static = tmp_path / "gpu_report", tmp_path / "gpu_report_static"
    flags = ["-std=c11", "-Wall", "-Wextra", "-Werror"]
    subprocess.run(
        [
            "gcc",
            *flags,
            *pkg("--cflags"),
            str(source),
            *pkg("--libs"),
            "-o",
            str(shared),
        ],
        check=True,
    )
    libdir = root / "lib"
    static_libs = [a for a in pkg("--static", "--libs") if a != "-lalgalon"]
    subprocess.run(
        ["gcc", *flags, *pkg("--cflags"), str(source), str(libdir / "libalgalon.a"), *static_libs,
         "-o", str(static)],
        check=True,
    )  # fmt: skip
    for exe, extra in ((shared, {"LD_LIBRARY_PATH": str(libdir)}), (static, {})):
        out = subprocess.run(
            [str(exe)],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        for i in range(8):
            assert f"GPU {i}:" in out.stdout, out.stdout

    sums = make("-s", "checksums", f"DIST_DIR={dist}")
    assert sums.returncode == 0
    listed = (dist / "SHA256SUMS").read_text().split()
    assert listed[1::2] == [tarball.name], listed
    verify = ["sha256sum", "--quiet", "-c", "SHA256SUMS"]
    assert subprocess.run(verify, cwd=dist, check=False).returncode == 0
    with tarball.open("ab") as f:
        f.write(b"\0")
    changed = subprocess.run(
        verify, cwd=dist, capture_output=True, text=True, check=False
    )
    assert changed.returncode != 0, "a changed artifact fails its checksum"
