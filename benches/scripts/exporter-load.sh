#!/usr/bin/env bash
# Load test of algalon-exporter on loopback (BENCHMARKS.md, "Exporter"):
# release builds of the exporter and the fake NVML, the 8×H100 scenario with
# --processes, wrk at 1, 16 and 64 connections (plain and gzip), exporter CPU
# per 1000 scrapes from /proc/PID/stat, peak RSS (VmHWM), and idle CPU at a
# 1 s sampling interval.
#
#   benches/scripts/exporter-load.sh            # or: make bench-exporter
#   DURATION=10 IDLE=30 PORT=19400 benches/scripts/exporter-load.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
duration=${DURATION:-10}
idle=${IDLE:-30}
port=${PORT:-19400}
command -v wrk >/dev/null || { echo "exporter-load: wrk is missing (make deps)" >&2; exit 1; }

cargo build --release -q -p algalon-exporter -p fake-nvml
lib_dir=$root/target/release/fake-nvml
mkdir -p "$lib_dir"
cp "$root/target/release/libnvidia_ml.so" "$lib_dir/libnvidia-ml.so.1"
export ALGALON_FAKE_NVML_SCENARIO=$root/testing/scenarios/h100x8.json
tick=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hwm_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

start_exporter() { # interval_ms
    "$root/target/release/algalon-exporter" --nvml-lib "$lib_dir/libnvidia-ml.so.1" \
        -a "127.0.0.1:$port" -c "$1" --processes --log-level warn &
    pid=$!
    for _ in $(seq 1 100); do
        curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "exporter-load: the exporter did not start" >&2
    exit 1
}
trap 'kill $pid 2>/dev/null || true' EXIT

echo "machine: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "exporter: $("$root/target/release/algalon-exporter" --version | head -1)"
start_exporter 5000
bytes=$(curl -fsS "http://127.0.0.1:$port/metrics" | wc -c)
echo "body: $bytes bytes (8 GPUs, default counters, --processes)"
printf '\n| connections | encoding | scrapes/s | p50 | p99 | exporter CPU ms per 1000 scrapes |\n|---|---|---|---|---|---|\n'
for conns in 1 16 64; do
    for enc in plain gzip; do
        header=()
        [[ $enc == gzip ]] && header=(-H 'Accept-Encoding: gzip')
        before=$(cpu_ticks "$pid")
        threads=$(( conns < 2 ? conns : 2 ))
        out=$(wrk -t"$threads" -c"$conns" -d"${duration}s" --latency "${header[@]}" "http://127.0.0.1:$port/metrics")
        after=$(cpu_ticks "$pid")
        requests=$(awk '/requests in/ {print $1}' <<<"$out")
        rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
        p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
        p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
        cpu_ms=$(awk -v t=$((after - before)) -v hz="$tick" -v n="$requests" 'BEGIN {printf "%.1f", t * 1000 / hz / n * 1000}')
        printf '| %s | %s | %s | %s | %s | %s |\n' "$conns" "$enc" "$rps" "$p50" "$p99" "$cpu_ms"
    done
done
echo
echo "peak RSS after load: $(( $(hwm_kib "$pid") / 1024 )) MiB"
kill "$pid"; wait "$pid" 2>/dev/null || true

start_exporter 1000
sleep 2
before=$(cpu_ticks "$pid")
sleep "$idle"
after=$(cpu_ticks "$pid")
awk -v t=$((after - before)) -v hz="$tick" -v s="$idle" \
    'BEGIN {printf "idle CPU at a 1 s interval: %.2f%% of one core over %d s\n", t / hz / s * 100, s}'
echo "peak RSS idle: $(( $(hwm_kib "$pid") / 1024 )) MiB"
