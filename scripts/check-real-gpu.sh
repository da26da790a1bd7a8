#!/usr/bin/env bash
# Compares algalon-exporter's readings with nvidia-smi's on a machine with real
# NVIDIA GPUs, for the same instant, and prints a per-GPU table and a verdict.
#
#   scripts/check-real-gpu.sh            # builds the exporter (release) first
#
# Needs: bash, awk, cargo (unless ALGALON_EXPORTER_BIN names a built binary),
# the NVIDIA driver (libnvidia-ml.so.1 and nvidia-smi). No network: the build
# tries `--offline` first. No curl: scrapes go through bash's /dev/tcp.
#
# The exporter samples every CHECK_INTERVAL_MS (200 ms) on 127.0.0.1; the check
# scrapes it, runs nvidia-smi, and scrapes again, and a reading passes when
# nvidia-smi's value lies within tolerance of either scrape or between them:
#
#   exact        GPU count, UUID, name, PCI bus id (case and domain width
#                normalised); every GPU up
#   memory.total within 1 MiB
#   memory.used  within 2 % of memory.total
#   temperature  within 3 C
#   power.draw   within 15 % or 20 W (whichever is larger)
#   utilization  within 15 points
#
# A reading one side has and the other lacks fails (Algalon must neither drop
# nor invent values). Exit status: 0 PASS, 1 FAIL, 2 could not run.
#
# Environment: ALGALON_EXPORTER_BIN (skip the build), NVIDIA_SMI (command to
# run, default nvidia-smi), CHECK_INTERVAL_MS, CARGO_PROFILE (release|dev).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NVIDIA_SMI="${NVIDIA_SMI:-nvidia-smi}"
INTERVAL_MS="${CHECK_INTERVAL_MS:-200}"
PROFILE="${CARGO_PROFILE:-release}"
QUERY="index,uuid,name,pci.bus_id,memory.total,memory.used,temperature.gpu,power.draw,utilization.gpu"

die() {
    echo "check-real-gpu: $*" >&2
    exit 2
}

command -v "${NVIDIA_SMI%% *}" >/dev/null 2>&1 ||
    die "nvidia-smi not found: run this on a machine with NVIDIA GPUs and the driver installed"
$NVIDIA_SMI -L >/dev/null 2>&1 || die "nvidia-smi fails ($($NVIDIA_SMI -L 2>&1 | head -n1))"

BIN="${ALGALON_EXPORTER_BIN:-}"
if [[ -z "$BIN" ]]; then
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust or set ALGALON_EXPORTER_BIN"
    flags=(-p algalon-exporter)
    dir=debug
    if [[ "$PROFILE" == release ]]; then
        flags+=(--release)
        dir=release
    fi
    echo "== building algalon-exporter ($PROFILE)"
    (cd "$ROOT" && { cargo build "${flags[@]}" --offline 2>/dev/null || cargo build "${flags[@]}"; }) ||
        die "cargo build failed"
    BIN="$ROOT/target/$dir/algalon-exporter"
fi
[[ -x "$BIN" ]] || die "$BIN is not an executable"

WORK="$(mktemp -d)"
PID=""
cleanup() {
    if [[ -n "$PID" ]] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# Exactly the fields compared, under their DCGM names.
cat >"$WORK/collectors.csv" <<'CSV'
DCGM_FI_DEV_GPU_UTIL,    gauge, GPU utilization (in %).
DCGM_FI_DEV_FB_TOTAL,    gauge, Framebuffer memory total (in MiB).
DCGM_FI_DEV_FB_USED,     gauge, Framebuffer memory used (in MiB).
DCGM_FI_DEV_GPU_TEMP,    gauge, GPU temperature (in C).
DCGM_FI_DEV_POWER_USAGE, gauge, Power draw (in W).
CSV

echo "== $("$BIN" --version | tr '\n' ' ')"
"$BIN" -a 127.0.0.1:0 -c "$INTERVAL_MS" -f "$WORK/collectors.csv" --log-format text \
    >/dev/null 2>"$WORK/exporter.log" &
PID=$!

ADDR=""
for _ in $(seq 1 600); do
    ADDR="$(sed -n 's/.*listening on http:\/\/\([0-9.:]*\).*/\1/p' "$WORK/exporter.log" | head -n1)"
    [[ -n "$ADDR" ]] && break
    if ! kill -0 "$PID" 2>/dev/null; then
        cat "$WORK/exporter.log" >&2
        echo "VERDICT: FAIL (the exporter did not start)"
        exit 1
    fi
    sleep 0.1
done
[[ -n "$ADDR" ]] || die "the exporter did not listen within 60 s: $(tail -n3 "$WORK/exporter.log")"
HOST="${ADDR%:*}"
PORT="${ADDR##*:}"

# GET /metrics with bash alone; the body (after the blank line) goes to $1.
scrape() {
    local out="$1"
    exec 3<>"/dev/tcp/$HOST/$PORT"
    printf 'GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n' "$ADDR" >&3
    tr -d '\r' <&3 | awk 'body { print } /^$/ { body = 1 }' >"$out"
    exec 3<&-
}

# Let a couple of samples land, then bracket nvidia-smi between two scrapes.
sleep "$(awk -v ms="$INTERVAL_MS" 'BEGIN { printf "%.3f", 2.5 * ms / 1000 }')"
scrape "$WORK/a.prom"
$NVIDIA_SMI --query-gpu="$QUERY" --format=csv,noheader,nounits >"$WORK/smi.csv"
scrape "$WORK/b.prom"

awk '
function label(s, name,   m) {
    if (match(s, "(^|,)" name "=\"[^\"]*\"")) {
        m = substr(s, RSTART, RLENGTH)
        sub(/^,/, "", m); sub(/^[^=]*="/, "", m); sub(/"$/, "", m)
        return m
    }
    return ""
}
function trim(s) { gsub(/^[ \t]+|[ \t\r]+$/, "", s); return s }
function num(s) { return s ~ /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/ }
function abs(x) { return x < 0 ? -x : x }
function pci(p,   a, n, dom) {
    p = toupper(trim(p)); n = split(p, a, ":")
    if (n != 3) return p
    dom = a[1]
    while (length(dom) < 8) dom = "0" dom
    return substr(dom, length(dom) - 7) ":" a[2] ":" a[3]
}
function row(gpu, check, smi, alg, tol, ok) {
    printf "%-4s %-13s %-42s %-42s %-16s %s\n", gpu, check, smi, alg, tol, ok ? "ok" : "FAIL"
    if (!ok) fails++
}
# One reading: nvidia-smi value s against scrapes a and b with tolerance t.
function reading(gpu, check, s, a, b, t, tdesc,   have, ok, shown) {
    have = (a != "") + (b != "")
    shown = (a == "" ? "-" : a) " / " (b == "" ? "-" : b)
    if (!num(s)) { row(gpu, check, s, shown, tdesc, have == 0); return }
    if (have == 0) { row(gpu, check, s, "absent", tdesc, 0); return }
    ok = 0
    if (a != "" && abs(s - a) <= t) ok = 1
    if (b != "" && abs(s - b) <= t) ok = 1
    if (a != "" && b != "" && ((a <= s && s <= b) || (b <= s && s <= a))) ok = 1
    row(gpu, check, s, shown, tdesc, ok)
}
{ f = FILENAME == ARGV[1] ? 1 : FILENAME == ARGV[2] ? 2 : 3 }
f <= 2 && /^(DCGM_FI_DEV_|algalon_gpu_up)/ {
    lb = index($0, "{"); rb = index($0, "} ")
    if (!lb || !rb) next
    name = substr($0, 1, lb - 1); labels = substr($0, lb + 1, rb - lb - 1)
    i = label(labels, "gpu")
    v[f, name, i] = $NF
    if (f == 1 && name == "algalon_gpu_up") {
        count++; uuid[i] = label(labels, "UUID"); model[i] = label(labels, "modelName")
        bus[i] = label(labels, "pci_bus_id")
    }
}
f == 3 && NF {
    n = split($0, c, ",")
    for (k = 1; k <= n; k++) c[k] = trim(c[k])
    i = c[1]; smi[i] = 1; smicount++
    s_uuid[i] = c[2]; s_name[i] = c[3]; s_pci[i] = c[4]; s_total[i] = c[5]; s_used[i] = c[6]
    s_temp[i] = c[7]; s_power[i] = c[8]; s_util[i] = c[9]
}
END {
    printf "%-4s %-13s %-42s %-42s %-16s %s\n", "GPU", "check", "nvidia-smi", "algalon (scrape 1 / 2)", "tolerance", "result"
    row("all", "gpu count", smicount + 0, count + 0, "exact", smicount == count && count > 0)
    for (i = 0; i < 4096; i++) {
        if (!(i in smi)) continue
        row(i, "up", "1", v[1, "algalon_gpu_up", i] " / " v[2, "algalon_gpu_up", i], "exact",
            v[1, "algalon_gpu_up", i] == 1 && v[2, "algalon_gpu_up", i] == 1)
        row(i, "uuid", s_uuid[i], uuid[i], "exact", s_uuid[i] == uuid[i])
        row(i, "name", s_name[i], model[i], "exact", s_name[i] == model[i])
        row(i, "pci.bus_id", s_pci[i], bus[i], "normalised", pci(s_pci[i]) == pci(bus[i]))
        reading(i, "memory.total", s_total[i], v[1, "DCGM_FI_DEV_FB_TOTAL", i], v[2, "DCGM_FI_DEV_FB_TOTAL", i], 1, "1 MiB")
        t = num(s_total[i]) ? 0.02 * s_total[i] : 0
        reading(i, "memory.used", s_used[i], v[1, "DCGM_FI_DEV_FB_USED", i], v[2, "DCGM_FI_DEV_FB_USED", i], t, sprintf("2%% = %d MiB", t))
        reading(i, "temperature", s_temp[i], v[1, "DCGM_FI_DEV_GPU_TEMP", i], v[2, "DCGM_FI_DEV_GPU_TEMP", i], 3, "3 C")
        t = num(s_power[i]) ? (0.15 * s_power[i] > 20 ? 0.15 * s_power[i] : 20) : 0
        reading(i, "power.draw", s_power[i], v[1, "DCGM_FI_DEV_POWER_USAGE", i], v[2, "DCGM_FI_DEV_POWER_USAGE", i], t, sprintf("15%%|20W = %.0f W", t))
        reading(i, "utilization", s_util[i], v[1, "DCGM_FI_DEV_GPU_UTIL", i], v[2, "DCGM_FI_DEV_GPU_UTIL", i], 15, "15 points")
    }
    print ""
    if (fails) { printf "VERDICT: FAIL (%d checks failed)\n", fails; exit 1 }
    print "VERDICT: PASS"
}
' "$WORK/a.prom" "$WORK/b.prom" "$WORK/smi.csv"
