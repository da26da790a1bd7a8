#!/usr/bin/env bash
# Builds the `algalon` Python wheel: abi3 (CPython >= 3.9), linked against
# glibc 2.17 through zig so that it is tagged manylinux2014 and installs on
# Ubuntu 20.04, RHEL/Rocky 8, Amazon Linux 2 and older HPC images, then checks
# the tag with auditwheel.
#
#   scripts/build-wheel.sh [--profile release|dev] [--out DIR] [--target TRIPLE]
#   scripts/build-wheel.sh --sdist [--out DIR]
#
# Why zig: maturin links through `python -m ziglang cc` with a glibc 2.17
# sysroot, so the same command builds a manylinux2014 wheel on any Linux
# machine (CI runner, laptop, the arm64 runner) with nothing but pip packages;
# the alternative, building inside a manylinux container, needs a Docker
# engine and a registry to pull the image from.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
out=target/wheels
target=""
sdist=0
compat=${WHEEL_COMPAT:-manylinux2014}
while (($#)); do
    case $1 in
        --profile) profile=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --target) target=$2; shift 2 ;;
        --sdist) sdist=1; shift ;;
        *) echo "build-wheel: unknown argument '$1' (see the header of $0)" >&2; exit 2 ;;
    esac
done

missing() {
    echo "build-wheel: $1 is missing: $2" >&2
    exit 1
}
python=${PYTHON:-python3}
command -v "$python" >/dev/null 2>&1 || missing "$python" "install Python 3 (apt-get install python3 python3-pip, or make deps)"
command -v maturin >/dev/null 2>&1 || missing "maturin" "pip install maturin (or make deps)"

if ((sdist)); then
    mkdir -p "$out"
    maturin sdist -m algalon-py/Cargo.toml -o "$out"
    exit 0
fi

command -v cargo >/dev/null 2>&1 || missing "cargo" "install the Rust toolchain from https://rustup.rs"
"$python" -m ziglang version >/dev/null 2>&1 || missing "zig (the ziglang package)" "$python -m pip install ziglang (or make deps)"
command -v auditwheel >/dev/null 2>&1 || missing "auditwheel" "pip install auditwheel (or make deps)"
if [[ -n $target ]] && command -v rustup >/dev/null 2>&1 &&
    ! rustup target list --installed | grep -qx "$target"; then
    missing "the Rust standard library for $target" "rustup target add $target"
fi

# A fresh directory per build: the check below must see this build's wheel only.
stage=$(mktemp -d "${TMPDIR:-/tmp}/algalon-wheel.XXXXXX")
trap 'rm -rf "$stage"' EXIT
args=(build -q -m algalon-py/Cargo.toml --profile "$profile" --zig --compatibility "$compat" -o "$stage")
[[ -n $target ]] && args+=(--target "$target")
maturin "${args[@]}"

wheel=$(find "$stage" -name '*.whl' -print -quit)
[[ -n $wheel ]] || { echo "build-wheel: maturin produced no wheel in $stage" >&2; exit 1; }
# auditwheel names the most compatible tag the wheel's symbols allow; a newer
# glibc than the requested policy means a dependency pulled in newer symbols.
want=${compat/manylinux2014/manylinux_2_17}
want_minor=${want#manylinux_2_}
report=$(auditwheel show "$wheel")
got=$(grep -o '"manylinux_2_[0-9]*_[a-z0-9_]*"' <<<"$report" | head -n1 | tr -d '"' || true)
got_minor=${got#manylinux_2_}
got_minor=${got_minor%%_*}
if [[ -z $got ]] || ((got_minor > want_minor)); then
    echo "build-wheel: $(basename "$wheel") is not $compat compatible (auditwheel: ${got:-no manylinux tag}):" >&2
    echo "$report" >&2
    exit 1
fi
mkdir -p "$out"
for arch in x86_64 aarch64; do
    [[ $wheel == *"_$arch.whl" ]] && rm -f "$out"/algalon-*"_$arch.whl"
done
mv "$wheel" "$out/"
echo "build-wheel: $out/$(basename "$wheel") (auditwheel: $got; abi3; profile $profile)"
