#!/usr/bin/env bash
# make demo: algalon-exporter on this machine's GPUs — or, without a driver,
# on the simulated 8×H100 node of testing/fake-nvml — scraped by VMAgent into a
# local VictoriaMetrics. Everything listens on 127.0.0.1 only.
#
#   DEMO_SECONDS=N     stop after N seconds (default: run until Ctrl-C)
#   DEMO_SCENARIO=F    fake-NVML scenario when there is no GPU (default h100x8)
#   DEMO_PORT_BASE=P   exporter on P, VictoriaMetrics on P+28, VMAgent on P+29 (default 9400)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

scripts/install-deps.sh

port_base=${DEMO_PORT_BASE:-9400}
exporter_port=$port_base
vm_port=$((port_base + 28))
vmagent_port=$((port_base + 29))
dir=$root/target/demo
mkdir -p "$dir"

echo "demo: building algalon-exporter (release)…"
cargo build --release -q -p algalon-exporter
exporter=$root/target/release/algalon-exporter

nvml_args=()
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "demo: NVIDIA driver found — monitoring this machine's real GPUs"
    nvidia-smi -L
else
    scenario=${DEMO_SCENARIO:-$root/testing/scenarios/h100x8.json}
    echo "demo: no NVIDIA driver here — using simulated GPUs from $scenario"
    make -s fake-nvml >/dev/null 2>&1
    export ALGALON_FAKE_NVML_SCENARIO=$scenario
    nvml_args=(--nvml-lib "$root/target/fake-nvml/libnvidia-ml.so.1")
fi

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

"$exporter" "${nvml_args[@]}" --address "127.0.0.1:$exporter_port" \
    --collect-interval 1000 --processes >"$dir/exporter.log" 2>&1 &
pids+=($!)

cat >"$dir/scrape.yml" <<EOF
global:
  scrape_interval: 5s
scrape_configs:
  - job_name: algalon
    static_configs:
      - targets: ["127.0.0.1:$exporter_port"]
        labels:
          cluster: demo
EOF

victoria-metrics -storageDataPath="$dir/vm-data" -retentionPeriod=1d \
    -httpListenAddr="127.0.0.1:$vm_port" >"$dir/victoria-metrics.log" 2>&1 &
pids+=($!)
vmagent -promscrape.config="$dir/scrape.yml" \
    -remoteWrite.url="http://127.0.0.1:$vm_port/api/v1/write" \
    -remoteWrite.tmpDataPath="$dir/vmagent-data" \
    -httpListenAddr="127.0.0.1:$vmagent_port" >"$dir/vmagent.log" 2>&1 &
pids+=($!)

wait_for() { # url, what
    for _ in $(seq 1 100); do
        curl -fsS "$1" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "demo: $2 did not come up; see $dir/*.log" >&2
    tail -n 5 "$dir"/*.log >&2
    exit 1
}
wait_for "http://127.0.0.1:$exporter_port/health" "algalon-exporter"
wait_for "http://127.0.0.1:$vm_port/health" "VictoriaMetrics"
wait_for "http://127.0.0.1:$vmagent_port/health" "VMAgent"

echo "demo: waiting for the first samples to reach VictoriaMetrics…"
query() {
    curl -fsS --get "http://127.0.0.1:$vm_port/api/v1/query" --data-urlencode "query=$1"
}
for _ in $(seq 1 60); do
    curl -fsS -X POST "http://127.0.0.1:$vm_port/internal/force_flush" >/dev/null 2>&1 || true
    if query 'count(DCGM_FI_DEV_GPU_UTIL)' | grep -q '"value"'; then break; fi
    sleep 1
done

python3 - "$vm_port" <<'PY'
import json, sys, urllib.parse, urllib.request
port = sys.argv[1]
def q(expr):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    data = json.load(urllib.request.urlopen(url, timeout=5))["data"]["result"]
    return {r["metric"].get("gpu"): float(r["value"][1]) for r in data}
util = q("DCGM_FI_DEV_GPU_UTIL")
if not util:
    sys.exit("demo: no GPU series in VictoriaMetrics yet; see target/demo/*.log")
used, total = q("DCGM_FI_DEV_FB_USED"), q("DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE + DCGM_FI_DEV_FB_RESERVED")
temp, power = q("DCGM_FI_DEV_GPU_TEMP"), q("DCGM_FI_DEV_POWER_USAGE")
print("demo: read back from VictoriaMetrics:")
for gpu in sorted(util, key=int):
    print(f"  GPU {gpu}: {util[gpu]:.0f}% util, {used.get(gpu, 0) / 1024:.1f}/{total.get(gpu, 0) / 1024:.1f} GiB,"
          f" {temp.get(gpu, float('nan')):.0f} C, {power.get(gpu, float('nan')):.0f} W")
PY

cat <<EOF

  GPU page:         http://127.0.0.1:$exporter_port/
  metrics:          http://127.0.0.1:$exporter_port/metrics
  VictoriaMetrics:  http://127.0.0.1:$vm_port/vmui  (try DCGM_FI_DEV_GPU_UTIL)
  logs:             $dir/*.log
EOF

if [[ -n ${DEMO_SECONDS:-} ]]; then
    sleep "$DEMO_SECONDS"
else
    echo "  Ctrl-C stops the demo."
    wait
fi
