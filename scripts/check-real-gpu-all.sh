#!/usr/bin/env bash
# Every check Algalon has for real NVIDIA GPUs, in one run of about a minute,
# with prebuilt artifacts (for a GPU machine without a Rust toolchain):
#
#   scripts/check-real-gpu-all.sh OUTDIR
#
#   1. scripts/check-real-gpu.sh       exporter vs nvidia-smi, same instant
#   2. scripts/check-real-gpu-job.py   Python and C job reports vs nvidia-ml-py,
#                                      under a PyTorch load when PyTorch is there
#   3. every field of README's metric table collected at once: which ones this
#      GPU and driver answer, NVML errors by call (all of it kept in OUTDIR)
#   4. benches/compare/real_gpu.py     scrape cost beside a pynvml exporter and
#                                      nvidia-smi per scrape
#   5. the GPU's MIG state and nvidia-smi -q, for the record
#   6. sampling on the real driver, one reader per GPU against one at a time
#      (ALGALON_SERIAL_SAMPLING=1): mean and worst sample of every field
#
# Environment: ALGALON_EXPORTER_BIN (default target/release/algalon-exporter),
# ALGALON_FFI_DIR (folder with libalgalon.so, default target/release),
# ALGALON_WHEEL (a wheel to install into a scratch folder first; otherwise the
# installed algalon is used). Exit status: 0 when checks 1 and 2 pass.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:?usage: $0 OUTDIR}"
mkdir -p "$OUT"
export ALGALON_EXPORTER_BIN="${ALGALON_EXPORTER_BIN:-target/release/algalon-exporter}"
FFI="${ALGALON_FFI_DIR:-target/release}"
status=0

if [[ -n "${ALGALON_WHEEL:-}" ]]; then
    site="$(mktemp -d)"
    python3 -m pip install -q --no-index --no-deps --target "$site" "$ALGALON_WHEEL" || exit 2
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi

echo "== 5. MIG state and nvidia-smi -q (kept in $OUT)"
{
    nvidia-smi
    nvidia-smi --query-gpu=index,name,driver_version,mig.mode.current,mig.mode.pending --format=csv
    nvidia-smi mig -lgip
    nvidia-smi mig -lgi
    nvidia-smi -q
} >"$OUT/nvidia-smi.txt" 2>&1
grep -A1 '^index, name' "$OUT/nvidia-smi.txt"

echo "== 1. exporter vs nvidia-smi"
bash scripts/check-real-gpu.sh 2>&1 | tee "$OUT/exporter-check.txt"
((PIPESTATUS[0] == 0)) || status=1

echo "== 2. Python and C jobs vs nvidia-ml-py"
PYTHONUNBUFFERED=1 python3 scripts/check-real-gpu-job.py --libalgalon "$FFI" 2>&1 | tee "$OUT/job-check.txt"
((PIPESTATUS[0] == 0)) || status=1

echo "== 3. every field at once"
awk -F'|' '/^\| `DCGM_FI_/ { n = $2; k = $3; gsub(/[ `]/, "", n); gsub(/ /, "", k); print n ", " k ", " n }' \
    README.md >"$OUT/all-fields.csv"
"$ALGALON_EXPORTER_BIN" -a 127.0.0.1:0 -c 1000 -f "$OUT/all-fields.csv" --processes --log-format text \
    >/dev/null 2>"$OUT/all-fields.log" &
pid=$!
addr=""
for _ in $(seq 1 100); do
    addr="$(sed -n 's/.*listening on http:\/\/\([0-9.:]*\).*/\1/p' "$OUT/all-fields.log" | head -n1)"
    [[ -n "$addr" ]] && break
    sleep 0.1
done
sleep 3.5
python3 - "$addr" "$OUT" "$OUT/all-fields.csv" <<'PY'
import sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
addr, out, csv = sys.argv[1:]
for path, name in (("/metrics", "all-fields.prom"), ("/api/v1/fields", "fields.json"), ("/api/v1/gpus", "gpus.json")):
    body = urllib.request.urlopen(f"http://{addr}{path}", timeout=10).read()
    open(f"{out}/{name}", "wb").write(body)
text = open(f"{out}/all-fields.prom").read()
fams = {f.name: f for f in text_string_to_metric_families(text)}
asked = [line.split(",")[0] for line in open(csv) if line.strip()]
# A string field (driver version, serial, VBIOS, …) is a label on every series.
labels = {k for f in fams.values() for s in f.samples for k in s.labels}
seen = [n for n in asked if n in labels or any(s.name.startswith(n) for f in fams.values() for s in f.samples)]
print(f"fields asked {len(asked)}, answered {len(seen)}; series {sum(len(f.samples) for f in fams.values())}")
print("not answered:", " ".join(n for n in asked if n not in seen))
for f in fams.values():
    if f.name == "algalon_nvml_errors":
        for s in f.samples:
            print("nvml error:", s.labels, s.value)
    if f.name == "algalon_sample_duration_seconds":
        print(f"sample duration with every field: {f.samples[0].value * 1000:.2f} ms")
PY
grep -E 'WARN|ERROR' "$OUT/all-fields.log" | head -n 20
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null

echo "== 4. scrape cost beside a pynvml exporter and nvidia-smi"
python3 benches/compare/real_gpu.py --json "$OUT/real-gpu-compare.json" 2>&1 | tee "$OUT/real-gpu-compare.txt"

echo "== 6. parallel vs serial sampling on the real driver (-c 100, 8 s each)"
for mode in parallel serial; do
    if [[ "$mode" == serial ]]; then export ALGALON_SERIAL_SAMPLING=1; else unset ALGALON_SERIAL_SAMPLING; fi
    "$ALGALON_EXPORTER_BIN" -a 127.0.0.1:0 -c 100 -f "$OUT/all-fields.csv" --processes --log-format text \
        >/dev/null 2>"$OUT/sampling-$mode.log" &
    pid=$!
    addr=""
    for _ in $(seq 1 100); do
        addr="$(sed -n 's/.*listening on http:\/\/\([0-9.:]*\).*/\1/p' "$OUT/sampling-$mode.log" | head -n1)"
        [[ -n "$addr" ]] && break
        sleep 0.1
    done
    sleep 8
    python3 - "$addr" "$mode" <<'PY' | tee -a "$OUT/sampling.txt"
import re, sys, urllib.request
addr, mode = sys.argv[1:]
body = urllib.request.urlopen(f"http://{addr}/metrics", timeout=10).read().decode()
def val(name):
    m = re.search(rf"^{name} ([0-9.e+-]+)$", body, re.MULTILINE)
    return float(m.group(1)) if m else float("nan")
total, count = val("algalon_sample_latency_seconds_sum"), val("algalon_sample_latency_seconds_count")
buckets = re.findall(r'^algalon_sample_latency_seconds_bucket\{le="([^"]+)"\} ([0-9]+)$', body, re.MULTILINE)
worst = next((le for le, n in buckets if float(n) >= count), "?")
gpus = len(set(re.findall(r'^DCGM_FI_DEV_GPU_TEMP\{[^}]*UUID="([^"]+)"', body, re.MULTILINE)))
print(f"{mode}: {gpus} GPU(s), {int(count)} samples, mean {total / count * 1000:.3f} ms, "
      f"all within the {worst} s bucket, last {val('algalon_sample_duration_seconds') * 1000:.3f} ms")
PY
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
done
unset ALGALON_SERIAL_SAMPLING

echo "== done: status $status (0 = checks 1 and 2 passed)"
exit "$status"
