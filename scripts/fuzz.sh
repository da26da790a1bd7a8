#!/usr/bin/env bash
# Fuzzes Algalon's parsers and encoder with cargo-fuzz (libFuzzer); the
# targets are in fuzz/fuzz_targets/, their committed seeds in fuzz/seeds/.
#
#   scripts/fuzz.sh smoke [SECONDS]      build, then every target for SECONDS
#                                        each (default 20); fails on any crash
#   scripts/fuzz.sh run TARGET SECONDS   one target for SECONDS (long runs)
#   scripts/fuzz.sh build                build every target
#   scripts/fuzz.sh list                 the targets
#
# Installs nothing. Needs cargo-fuzz (`cargo install cargo-fuzz --locked`,
# which scripts/install-deps.sh runs). The sanitizer flags cargo-fuzz passes
# need a nightly compiler: `cargo +nightly` when that toolchain is
# installed, otherwise the stable one with RUSTC_BOOTSTRAP=1.
#
# The targets are built without a sanitizer (FUZZ_SANITIZER=address to
# change that): the code under test is safe Rust (`#![forbid(unsafe_code)]`
# in algalon-core and algalon-exporter), so what fuzzing finds is panics,
# hangs and wrong results, and AddressSanitizer would cost 4x the runs.
#
# What libFuzzer finds beyond the seeds goes to fuzz/corpus/TARGET (kept
# out of git); a crash leaves its input in fuzz/artifacts/TARGET/ and this
# script prints the command that replays it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
    exit 2
}

CARGO=(cargo)
if command -v rustup >/dev/null 2>&1 && rustup run nightly rustc --version >/dev/null 2>&1; then
    CARGO=(cargo +nightly)
    TOOLCHAIN="nightly ($(rustup run nightly rustc --version))"
elif rustc --version 2>/dev/null | grep -q nightly; then
    TOOLCHAIN="nightly ($(rustc --version))"
else
    export RUSTC_BOOTSTRAP=1
    TOOLCHAIN="stable with RUSTC_BOOTSTRAP=1 ($(rustc --version))"
fi

if ! "${CARGO[@]}" fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is not installed; run: cargo install cargo-fuzz --locked" >&2
    exit 2
fi

BUILD_ARGS=(--sanitizer "${FUZZ_SANITIZER:-none}")
# Per-input time limit (a hang is a failure) and memory limit.
LIBFUZZER_ARGS=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1)

build() {
    echo "fuzz.sh: toolchain: $TOOLCHAIN"
    local start=$SECONDS
    "${CARGO[@]}" fuzz build "${BUILD_ARGS[@]}"
    echo "fuzz.sh: built $(targets | wc -l) targets in $((SECONDS - start)) s"
}

targets() {
    "${CARGO[@]}" fuzz list
}

# fuzz_one TARGET SECONDS: runs, then prints one summary line.
fuzz_one() {
    local target=$1 seconds=$2
    local seeds="fuzz/seeds/$target" corpus="fuzz/corpus/$target"
    local log
    log=$(mktemp)
    mkdir -p "$corpus"
    local start=$SECONDS rc=0
    "${CARGO[@]}" fuzz run "${BUILD_ARGS[@]}" "$target" "$corpus" "$seeds" -- \
        "${LIBFUZZER_ARGS[@]}" -max_total_time="$seconds" >"$log" 2>&1 || rc=$?
    # libFuzzer's last status line: "#N DONE cov: C ft: F corp: UNITS/SIZE …".
    local execs cov corp files
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    corp=$(grep -o 'corp: [0-9]*/[0-9a-zA-Z]*' "$log" | tail -1 | cut -d' ' -f2)
    files=$(find "$corpus" -type f | wc -l)
    if [ "$rc" -ne 0 ]; then
        tail -n 60 "$log" >&2
        echo "fuzz.sh: $target FAILED (exit $rc) after $((SECONDS - start)) s; the input is in fuzz/artifacts/$target/" >&2
        echo "fuzz.sh: replay with: ${CARGO[*]} fuzz run ${BUILD_ARGS[*]} $target fuzz/artifacts/$target/<file>" >&2
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
    printf 'fuzz.sh: %-16s %4d s %10s execs  cov %-5s corpus %-12s (%s files in %s)\n' \
        "$target" $((SECONDS - start)) "${execs:-?}" "${cov:-?}" "${corp:-?}" "$files" "$corpus"
}

cmd=${1:-}
case "$cmd" in
    list)
        targets
        ;;
    build)
        build
        ;;
    smoke)
        seconds=${2:-20}
        start=$SECONDS
        build
        failed=0
        for target in $(targets); do
            fuzz_one "$target" "$seconds" || failed=1
        done
        echo "fuzz.sh: smoke run took $((SECONDS - start)) s in all"
        exit "$failed"
        ;;
    run)
        [ $# -eq 3 ] || usage
        if ! targets | grep -qx "$2"; then
            echo "fuzz.sh: no target $2; the targets are: $(targets | tr '\n' ' ')" >&2
            exit 2
        fi
        echo "fuzz.sh: toolchain: $TOOLCHAIN"
        fuzz_one "$2" "$3"
        ;;
    *)
        usage
        ;;
esac
