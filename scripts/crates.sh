#!/usr/bin/env bash
# The crates.io side of a release: algalon-core, algalon-kubernetes and
# algalon-exporter (which depends on both).
#
#   scripts/crates.sh check     what `make test` runs: `cargo package` of the
#                               three (metadata, packaging), the
#                               package contents, and the exporter installed
#                               with `cargo install` from its packaged crate and
#                               the packaged core (the build the dry run would
#                               verify, done once), then run on the fake NVML
#   scripts/crates.sh publish   the release job: `cargo publish --workspace`
#                               (needs CARGO_REGISTRY_TOKEN)
#
# algalon-ffi, fake-nvml, examples, benches and algalon-py are `publish = false`
# (see README.md, "Installing").
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO=${CARGO:-cargo}
CRATES=(algalon-core algalon-kubernetes algalon-exporter)
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)

fail() {
    echo "crates: $*" >&2
    exit 1
}

case ${1:-} in
publish)
    [[ -n ${CARGO_REGISTRY_TOKEN:-} ]] || fail "CARGO_REGISTRY_TOKEN is not set: a crates.io API token with publish scope"
    exec "$CARGO" publish --workspace --locked
    ;;
check) ;;
*) fail "usage: $0 check|publish" ;;
esac

# A developer's tree may hold uncommitted work; CI's clone never does.
# --no-verify: the packaged crates are built below, by `cargo install`.
# Not `cargo publish --dry-run --workspace`: before the first release it looks
# algalon-kubernetes up in the crates.io index for the exporter and fails
# (the real publish uploads the crates in order and waits for each); `cargo
# package` of the three resolves them to each other's packages.
"$CARGO" package --no-verify --locked --allow-dirty "${CRATES[@]/#/--package=}"

for crate in "${CRATES[@]}"; do
    file=target/package/$crate-$version.crate
    [[ -f $file ]] || fail "$file was not produced"
    list=$(tar tzf "$file" | sed "s|^$crate-$version/||")
    for needed in Cargo.toml README.md LICENSE-MIT LICENSE-APACHE src/lib.rs; do
        grep -qx "$needed" <<<"$list" || fail "$file lacks $needed"
    done
    # Test data stays in the repository: scenarios, goldens, fixtures, tests.
    leaked=$(grep -v '^.cargo_vcs_info.json$' <<<"$list" | grep -E '^(tests|benches|fuzz|testing)/|\.(json|prom|openmetrics|yml|yaml|pem)$' || true)
    [[ -z $leaked ]] || fail "$file ships test data: $(tr '\n' ' ' <<<"$leaked")"
    size=$(stat -c %s "$file")
    ((size < 1024 * 1024)) || fail "$file is $size bytes: something large slipped into the package"
    echo "crates: $file: $(wc -l <<<"$list") files, $size bytes"
done

# `cargo install algalon-exporter` as crates.io would serve it: the unpacked
# packages only, algalon-core and algalon-kubernetes resolved to their packaged copies instead of the
# registry (they are not published yet when this runs). Compiled crates.io
# dependencies are shared through CARGO_TARGET_DIR; no source comes from the
# repository.
work=$(mktemp -d "${TMPDIR:-/tmp}/algalon-crates.XXXXXX")
trap 'rm -rf "$work"' EXIT
for crate in "${CRATES[@]}"; do
    tar xzf "target/package/$crate-$version.crate" -C "$work"
done
(
    cd "$work"
    CARGO_TARGET_DIR=$OLDPWD/target "$CARGO" install --quiet --debug --locked \
        --path "algalon-exporter-$version" --root "$work/root" \
        --config "patch.crates-io.algalon-core.path='$work/algalon-core-$version'" \
        --config "patch.crates-io.algalon-kubernetes.path='$work/algalon-kubernetes-$version'"
)
bin=$work/root/bin/algalon-exporter
"$bin" --version | grep -q "$version" || fail "the installed exporter does not report version $version"

# The installed binary serves the fake GPUs.
fake=${ALGALON_TEST_NVML_LIB:-target/fake-nvml/libnvidia-ml.so.1}
[[ -f $fake ]] || fail "$fake is missing: run 'make fake-nvml'"
log=$work/exporter.log
ALGALON_FAKE_NVML_SCENARIO=$PWD/testing/scenarios/h100x8.json \
    "$bin" --nvml-lib "$fake" -a 127.0.0.1:0 -c 200 >"$log" 2>&1 &
pid=$!
addr=""
for _ in $(seq 100); do
    addr=$(grep -o 'listening on http://[0-9.:]*' "$log" | head -n1 | sed 's|listening on http://||' || true)
    [[ -n $addr ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if [[ -z $addr ]]; then
    kill "$pid" 2>/dev/null || true
    fail "the installed exporter did not start: $(cat "$log")"
fi
body=$(curl -fsS "http://$addr/metrics") || true
kill "$pid"
wait "$pid" 2>/dev/null || true
gpus=$(grep -c '^DCGM_FI_DEV_GPU_UTIL{' <<<"$body" || true)
[[ $gpus == 8 ]] || fail "the installed exporter served $gpus GPU utilization series, expected 8: $(head -c 600 <<<"$body")"
echo "crates: cargo install from the packaged algalon-exporter $version works: 8 GPUs served"
