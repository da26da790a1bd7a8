#!/usr/bin/env bash
# compose/ha in a real Docker engine (make test-ha): the monitoring host with
# two of everything keeps answering and keeps every sample while any one
# container is killed.
#
#   1. compose/ha (two VictoriaMetrics, two VMAgents, two vmauth behind one
#      name, vmalert, Alertmanager, Grafana) plus two simulated-GPU workers
#      (the exporter on the fake NVML, 8 × H100 each) and a probe container
#      that queries http://vmauth:8427 five times a second, as Grafana does.
#   2. In turn: kill -9 one VMAgent, one vmauth, one VictoriaMetrics; keep it
#      down KILL_SECONDS under scrape load; start it again. Asserted:
#      - the probe saw no failed query (refused, timeout, error, empty);
#      - per series, the samples stored in the minute before the kill are
#        all still there afterwards, through the entry point and in each
#        VictoriaMetrics;
#      - scraping never stopped: the outage window holds samples;
#      - the restarted VictoriaMetrics catches up: the VMAgents' on-disk
#        queues backfill the outage, until it holds as many samples of the
#        window as the other one.
#   Recovery times and counts are printed (compose/SCALING.md records them).
# Every wait has a deadline; the project (unique per run) is removed at the
# end by its name, nothing else.
# Usage: scripts/e2e-ha.sh [--keep]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
P=algalon-e2e-ha-$$
KILL_SECONDS=${KILL_SECONDS:-20}
export ALGALON_FAKE_NVML_DIR=${ALGALON_FAKE_NVML_DIR:-$root/target/fake-nvml}
export ALGALON_SCENARIO=${ALGALON_SCENARIO:-$root/testing/scenarios/h100x8.json}
export ALGALON_IMAGE=${ALGALON_IMAGE:-algalon-exporter:local}
export ALGALON_HA_PROBE=$root/testing/containers/ha_probe.py
export GRAFANA_ADMIN_PASSWORD=e2e-not-secret VMAUTH_PASSWORD=e2e-not-secret-either GRAFANA_BIND=127.0.0.1 GRAFANA_PORT=0
scratch=$(mktemp -d "${TMPDIR:-/tmp}/algalon-e2e-ha.XXXXXX")
export ALGALON_TARGETS_DIR=$scratch/targets
METRIC=DCGM_FI_DEV_GPU_TEMP
GPUS=16 # two workers × 8
t0=$(date +%s)
replica_loss="" # set when the killed storage lost more than it may (checked last)
keep=0
[[ ${1:-} == --keep ]] && keep=1

step() { echo "== [$(($(date +%s) - t0)) s] $*"; }
ok() { echo "   ok: $*"; }
fail() {
    echo "e2e-ha: FAIL: $*" >&2
    exit 1
}
dc() { docker compose -p "$P" -f "$root/compose/ha/docker-compose.yml" -f "$root/testing/containers/ha-workers.yml" "$@"; }
remove_project() {
    local kind
    local -a ids
    mapfile -t ids < <(docker ps -aq --filter "label=com.docker.compose.project=$P")
    ((${#ids[@]} == 0)) || docker rm -f "${ids[@]}" >/dev/null
    for kind in network volume; do
        mapfile -t ids < <(docker "$kind" ls -q --filter "label=com.docker.compose.project=$P")
        ((${#ids[@]} == 0)) || docker "$kind" rm "${ids[@]}" >/dev/null
    done
}
teardown() {
    if ((keep)); then
        echo "kept: project $P (remove: docker compose -p $P down -v)"
    else
        remove_project 2>/dev/null || true
    fi
    rm -rf "$scratch"
}
trap teardown EXIT

probe() { dc exec -T probe python3 /probe/ha_probe.py "$@"; }
ctr() { dc ps -aq "$1"; }
# count_over_time of every GPU's series over [at-60s, at], JSON {series: n}
counts() { probe count "$1" "count_over_time(${METRIC}[60s])" "$2"; }
window() { probe count "$1" "count_over_time(${METRIC}[${2}s])" "$3"; } # URL, seconds, end
check_kept() { # label, before-JSON, after-JSON: every series, no fewer samples
    python3 - "$@" <<'PY'
import json, sys
label, before, after = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
lost = {s: (n, after.get(s, 0)) for s, n in before.items() if after.get(s, 0) < n}
if len(before) != 16 or lost:
    sys.exit(f"{label}: {len(before)} series before; samples lost (before, after): {lost}")
print(f"   ok: {label}: {len(before)} series, {int(sum(before.values()))} samples before, "
      f"{int(sum(after[s] for s in before))} after")
PY
}
total() { python3 -c 'import json,sys; print(int(sum(json.load(sys.stdin).values())))'; }

step "Docker engine and images"
docker info >/dev/null 2>&1 || fail "no Docker daemon answers (scripts/e2e-containers.sh starts one)"
docker compose version >/dev/null 2>&1 || fail "'docker compose' does not run: run scripts/install-deps.sh"
[[ -f $ALGALON_FAKE_NVML_DIR/libnvidia-ml.so.1 ]] || fail "$ALGALON_FAKE_NVML_DIR/libnvidia-ml.so.1 is missing: run 'make fake-nvml'"
"$root/testing/containers/build-standins.sh"
docker image inspect "$ALGALON_IMAGE" >/dev/null 2>&1 || make -C "$root" image IMAGE="$ALGALON_IMAGE" >/dev/null ||
    fail "$ALGALON_IMAGE is missing and 'make image' failed"

step "1. compose/ha + two simulated workers (project $P)"
mkdir -p "$ALGALON_TARGETS_DIR/jobs"
printf -- '- labels: {cluster: ha}\n  targets: [worker-1:9400, worker-2:9400]\n' >"$ALGALON_TARGETS_DIR/ha.yml"
timeout 300 docker compose -p "$P" -f "$root/compose/ha/docker-compose.yml" -f "$root/testing/containers/ha-workers.yml" up -d >"$scratch/up.log" 2>&1 || {
    cat "$scratch/up.log" >&2
    fail "docker compose up (compose/ha) failed"
}
deadline=$(($(date +%s) + 90))
until [[ $(probe count http://vmauth:8427 "count($METRIC)" "$(date +%s)" 2>/dev/null) == "{\"\": $GPUS.0}" ]]; do
    (($(date +%s) < deadline)) || {
        dc logs --tail 20 vmagent-a vmauth-a >&2 || true
        fail "the entry point does not answer with $GPUS GPUs within 90 s"
    }
    sleep 2
done
ok "vmauth answers with all $GPUS simulated GPUs"
sleep 65 # a full minute of samples before the first kill
dc exec -d probe sh -c "echo \$\$ >/tmp/probe.pid; exec python3 /probe/ha_probe.py loop http://vmauth:8427 'count($METRIC)' >/tmp/probe.log 2>&1"
sleep 2

# VictoriaMetrics last: its kill -9 loses its last unflushed seconds on that
# replica (asserted below), which later windows through vmauth would see.
for victim in vmagent-a vmauth-a victoriametrics-a; do
    step "2. kill -9 $victim for ${KILL_SECONDS} s under scrape load"
    at=$(($(date +%s) - 10)) # samples of [at-60s, at] are stored everywhere
    before=$(counts http://vmauth:8427 "$at")
    id=$(ctr "$victim")
    docker kill -s KILL "$id" >/dev/null
    killed=$(date +%s)
    sleep "$KILL_SECONDS"
    during=$(counts http://vmauth:8427 "$(date +%s)")
    docker start "$id" >/dev/null
    started=$(date +%s.%N)
    case $victim in
        victoriametrics-a) health=http://victoriametrics-a:8428/health ;;
        vmagent-a) health=http://vmagent-a:8429/health ;;
        vmauth-a) health=http://vmauth-a:8427/health ;;
    esac
    deadline=$(($(date +%s) + 60))
    until probe health "$health"; do
        (($(date +%s) < deadline)) || fail "$victim does not answer $health within 60 s of its start"
        sleep 0.5
    done
    echo "   recovery: $victim answers /health $(python3 -c "import time; print(f'{time.time() - $started:.1f}')") s after docker start"
    check_kept "$victim: entry point" "$before" "$(counts http://vmauth:8427 "$at")"
    for vm in victoriametrics-a victoriametrics-b; do
        [[ $victim == victoriametrics-a && $vm == victoriametrics-a ]] && continue # checked after the backfill below
        check_kept "$victim: $vm" "$before" "$(counts "http://$vm:8428" "$at")"
    done
    n=$(total <<<"$during")
    expect=$((GPUS * (60 / 5) * 3 / 4))
    ((n >= expect)) || fail "$victim down: only $n samples in the last minute (expected >= $expect): scraping stopped"
    ok "$victim down: $n samples of $GPUS GPUs stored in the last minute (scraping went on)"
    if [[ $victim == victoriametrics-a ]]; then
        # The outage (from 2 s after the kill to 5 s after the start): the
        # VMAgents' queues backfill it until the restarted storage holds as
        # many samples as the one that stayed.
        outage=$((${started%.*} + 5 - killed - 2))
        win_end=$((${started%.*} + 5))
        deadline=$(($(date +%s) + 120))
        while :; do
            a=$(window http://victoriametrics-a:8428 "$outage" "$win_end" | total)
            b=$(window http://victoriametrics-b:8428 "$outage" "$win_end" | total)
            ((a >= b && b > 0)) && break
            (($(date +%s) < deadline)) || fail "victoriametrics-a holds $a samples of its outage, victoriametrics-b $b, 120 s after its restart: no backfill"
            sleep 1
        done
        echo "   backfill: victoriametrics-a holds $a samples of its ${outage} s outage (victoriametrics-b: $b), $(python3 -c "import time; print(f'{time.time() - $started:.1f}')") s after docker start"
        # kill -9 loses what VictoriaMetrics had acknowledged but not yet
        # flushed to disk (in-memory data is flushed every few seconds): at
        # most three 5 s samples per series (one to three measured), which the
        # other storage holds. The minute that ends 10 s before the kill was
        # checked complete above.
        a=$(window http://victoriametrics-a:8428 12 $((killed + 2)) | total)
        b=$(window http://victoriametrics-b:8428 12 $((killed + 2)) | total)
        ((a + 3 * GPUS >= b)) || replica_loss="victoriametrics-a lost $((b - a)) samples of the 12 s around its kill -9 (more than three per series)"
        echo "   kill -9: victoriametrics-a holds $a samples of the 12 s around the kill, victoriametrics-b $b"
        check_kept "$victim: victoriametrics-a" "$before" "$(counts http://victoriametrics-a:8428 "$at")"
    fi
    sleep 5
done

step "3. queries through vmauth during the kills"
# shellcheck disable=SC2016 # expanded in the probe container
dc exec -T probe sh -c 'kill -TERM "$(cat /tmp/probe.pid)"; sleep 1; cat /tmp/probe.log' >"$scratch/probe.log" 2>&1 || true
cat "$scratch/probe.log"
summary=$(grep '^total ' "$scratch/probe.log") || fail "the probe printed no summary"
read -r _ queries _ failed <<<"$summary"
((failed == 0)) || fail "$failed of $queries queries through vmauth failed during the kills${replica_loss:+; also: $replica_loss}"
ok "$queries queries through vmauth, 0 failed"
[[ -z ${replica_loss:-} ]] || fail "$replica_loss"
step "done in $(($(date +%s) - t0)) s"
