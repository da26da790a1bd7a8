#!/usr/bin/env bash
# The wheel on a training node that has Python but no Rust: a container of
# IMAGE (CPython >= 3.9 with its venv module, no cargo/rustc, no network)
# installs target/wheels' wheel into a fresh virtualenv and runs
# smoke_job.py against the fake NVML mounted in.
#
#   tests/wheel/in-container.sh IMAGE      e.g. python:3.9-slim (or a local stand-in)
#
# Needs a running Docker engine, `make fake-nvml` and `make python-pkg` (or
# `make wheel`). The fake NVML is built on this machine, so IMAGE's glibc
# must be at least this machine's for it to load (the wheel itself needs 2.17).
set -euo pipefail
cd "$(dirname "$0")/../.."

image=${1:?usage: $0 IMAGE}
arch=$(uname -m)
shopt -s nullglob
wheels=(target/wheels/algalon-*-cp39-abi3-*_"$arch".whl)
((${#wheels[@]} == 1)) || {
    echo "in-container: expected one $arch wheel in target/wheels, found ${#wheels[@]}: run 'make python-pkg'" >&2
    exit 1
}
wheel=${wheels[0]}
fake=target/fake-nvml/libnvidia-ml.so.1
[[ -f $fake ]] || { echo "in-container: $fake is missing: run 'make fake-nvml'" >&2; exit 1; }
version=$(scripts/release.sh version)

docker run --rm --network none \
    -v "$PWD/$wheel:/wheels/${wheel##*/}:ro" \
    -v "$PWD/$fake:/opt/fake-nvml/libnvidia-ml.so.1:ro" \
    -v "$PWD/algalon-core/tests/scenarios/constant.json:/opt/fake-nvml/constant.json:ro" \
    -v "$PWD/tests/wheel/smoke_job.py:/opt/smoke_job.py:ro" \
    -e ALGALON_NVML_LIB=/opt/fake-nvml/libnvidia-ml.so.1 \
    -e ALGALON_FAKE_NVML_SCENARIO=/opt/fake-nvml/constant.json \
    -e ALGALON_EXPECT_VERSION="$version" \
    "$image" sh -ec '
        python3 -m venv /tmp/venv
        /tmp/venv/bin/pip install -q --no-index --disable-pip-version-check /wheels/*.whl
        /tmp/venv/bin/python /opt/smoke_job.py
    '
