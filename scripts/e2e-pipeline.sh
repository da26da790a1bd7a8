#!/usr/bin/env bash
# End-to-end test of compose/ without Docker: the compose stack's own scrape
# config, target files, alert rules and dashboards, run by the real
# victoria-metrics, vmagent and vmalert binaries (Debian "victoria-metrics")
# on 127.0.0.1, fed by algalon-exporters on the fake NVML in two clusters and
# a training process using the algalon Python package. See tests/e2e/.
#
#   scripts/e2e-pipeline.sh                 static checks + setup.sh + the pipeline
#   scripts/e2e-pipeline.sh --static-only   static checks + setup.sh only (seconds)
#
# ALGALON_E2E_TIMEOUT (seconds, default 420) bounds the whole run; every
# process it starts is stopped on exit. Logs of the last run: target/e2e/run/logs/.
set -euo pipefail
cd "$(dirname "$0")/.."

static_only=0
case ${1:-} in
    --static-only) static_only=1 ;;
    "") ;;
    *)
        echo "usage: scripts/e2e-pipeline.sh [--static-only]" >&2
        exit 2
        ;;
esac

missing=()
for t in victoria-metrics vmagent vmalert promtool amtool shellcheck check-jsonschema python3 cargo; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
command -v alertmanager >/dev/null 2>&1 || command -v prometheus-alertmanager >/dev/null 2>&1 ||
    missing+=(alertmanager)
python3 -c 'import pytest, yaml, promql_parser' 2>/dev/null || missing+=("python3 modules pytest, PyYAML, promql-parser")
if ((${#missing[@]})); then
    echo "e2e-pipeline: missing ${missing[*]}: run scripts/install-deps.sh" >&2
    exit 1
fi

tests=(tests/e2e/test_static.py tests/e2e/test_alertmanager.py tests/e2e/test_rules_vm.py tests/e2e/test_setup_sh.py)
if ((!static_only)); then
    if ! python3 -c 'import algalon' 2>/dev/null; then
        echo "e2e-pipeline: the algalon Python package is not installed (the jobs dashboard's data comes from it):" \
            "build and install it with 'make test-python-pkg', or 'pip install ./algalon-py'" >&2
        exit 1
    fi
    echo "e2e-pipeline: building algalon-exporter and the fake NVML…"
    cargo build -q -p algalon-exporter
    make -s fake-nvml >/dev/null
    tests+=(tests/e2e/test_rule_inputs.py tests/e2e/test_simulate.py tests/e2e/test_pipeline.py
        tests/e2e/test_jobs_dashboard_mig.py)
fi
mkdir -p target/e2e
rm -f target/e2e/figures.json

limit=${ALGALON_E2E_TIMEOUT:-420}
pid=""
watchdog=""
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
    # pytest stops what it started; this catches whatever an interrupted or
    # timed-out run left: the test's own process group, by its id.
    if [[ -n $pid ]] && kill -0 -- "-$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 -- "-$pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    if [[ -n $watchdog ]]; then
        kill -- "-$watchdog" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start=$SECONDS
# Job control: pytest and everything it starts get a process group of their own.
set -m
python3 -m pytest -q -p no:cacheprovider -o console_output_style=classic "${tests[@]}" &
pid=$!
(
    sleep "$limit"
    echo "e2e-pipeline: still running after ${limit} s (ALGALON_E2E_TIMEOUT): stopping it" >&2
    kill -TERM -- "-$pid" 2>/dev/null
) &
watchdog=$!
set +m
rc=0
wait "$pid" || rc=$?

echo "e2e-pipeline: $((SECONDS - start)) s"
if [[ -f target/e2e/figures.json ]]; then
    echo "e2e-pipeline: measured (compose/SCALING.md):"
    sed 's/^/  /' target/e2e/figures.json
fi
exit "$rc"
