#!/usr/bin/env bash
# Algalon deployment: GPU workers run algalon-exporter, a monitoring host runs
# VMAgent -> VictoriaMetrics -> Grafana (+ vmalert, Alertmanager).
#
#   ./setup.sh --host        [--host-ip IP]   monitoring host (compose/host)
#   ./setup.sh --worker      [--host-ip IP]   GPU worker (compose/worker)
#   ./setup.sh --single-node [--host-ip IP]   both on this machine (compose/single-node)
#
# On the monitoring host, the workers VMAgent scrapes (compose/host/targets/
# CLUSTER.yml, re-read every 5 s: no restart):
#
#   ./setup.sh --add-worker ADDRESS... [--cluster NAME]     (default cluster: default)
#   ./setup.sh --remove-worker ADDRESS... [--cluster NAME]
#   ./setup.sh --list-workers [--cluster NAME]
#
# ADDRESS: an IPv4 address, a hostname or an IPv6 address, with an optional
# port (default 9400): 10.0.0.11, gpu-7.example.org:9500, fd00::11,
# [fd00::11]:9500. A worker belongs to one cluster. --add-worker checks the
# worker's /health (ALGALON_HEALTH_TIMEOUT seconds, default 3) and warns when
# it does not answer; the worker is added either way.
#
# Simulated GPUs, to see the whole stack before it goes on GPU machines:
#
#   ./setup.sh --single-node --simulate [--scenario FILE]
#   ./setup.sh --worker --simulate [--scenario FILE]
#
# run the exporter on the fake NVML (testing/fake-nvml, built by 'make
# fake-nvml' into target/fake-nvml, or ALGALON_FAKE_NVML_DIR) with the
# scenario's GPUs (default testing/scenarios/h100x8.json: 8 x H100) instead
# of the NVIDIA runtime: compose/worker/simulate.override.yml, Compose 2.24.4+.
#
# Options: --no-start (write the files, start nothing), -h/--help.
# Checks Docker, Docker Compose and, on workers, the NVIDIA driver and
# Container Toolkit first, and names exactly what is missing. Writes .env
# files from .env.example (a generated Grafana password, kept in
# compose/host/.env and never printed; an existing .env is kept) and prints
# the URLs to open.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
compose_dir=$root/compose
targets_dir=${ALGALON_TARGETS_DIR:-$compose_dir/host/targets}

usage() { # the comment block above, without its '# '
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}

die() {
    echo "setup.sh: $*" >&2
    exit 1
}

warn() {
    echo "setup.sh: warning: $*" >&2
}

mode=""
host_ip=""
workers=()
cluster=""
start=1
simulate=0
scenario=""

set_mode() {
    [[ -z $mode ]] || die "choose one of --host, --worker, --single-node, --add-worker, --remove-worker, --list-workers (got --$mode and $1)"
    mode=${1#--}
}

while (($#)); do
    case $1 in
        --*=*)
            # --cluster=NAME is --cluster NAME.
            set -- "${1%%=*}" "${1#*=}" "${@:2}"
            continue
            ;;
        --host | --worker | --single-node | --add-worker | --remove-worker | --list-workers) set_mode "$1" ;;
        --host-ip)
            (($# >= 2)) || die "--host-ip needs an address"
            host_ip=$2
            shift
            ;;
        --cluster)
            if (($# < 2)) || [[ $2 == -* ]]; then
                die "--cluster needs a name: --cluster NAME"
            fi
            cluster=$2
            shift
            ;;
        --no-start) start=0 ;;
        --simulate) simulate=1 ;;
        --scenario)
            if (($# < 2)) || [[ $2 == -* ]]; then
                die "--scenario needs a file: --scenario testing/scenarios/h100x8.json"
            fi
            scenario=$2
            simulate=1
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        -*) die "unknown argument '$1' (see ./setup.sh --help)" ;;
        *)
            # Worker addresses, wherever they stand: --add-worker --cluster a 10.0.0.11
            [[ $mode == add-worker || $mode == remove-worker ]] ||
                die "unknown argument '$1' (see ./setup.sh --help)"
            workers+=("$1")
            ;;
    esac
    shift
done
[[ -n $mode ]] || {
    usage >&2
    exit 2
}
case $mode in
    add-worker | remove-worker)
        ((${#workers[@]})) || die "--$mode needs the worker's address: ./setup.sh --$mode IP[:PORT] [--cluster NAME]"
        ;;
    host)
        [[ -z $cluster ]] || die "--cluster goes with --add-worker, --remove-worker, --list-workers, --worker or --single-node, not --host"
        ;;
esac
if ((simulate)) && [[ $mode != worker && $mode != single-node ]]; then
    die "--simulate goes with --worker or --single-node (the exporter's side), not --$mode"
fi
if [[ -n $cluster && ! $cluster =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]]; then
    die "'$cluster' is not a cluster name: use letters, digits, '.', '_' and '-'"
fi

# -------------------------------------------------------------- addresses

valid_ipv4() { # dotted quad, each number 0-255
    local octets o
    [[ $1 =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || return 1
    IFS=. read -r -a octets <<<"$1"
    for o in "${octets[@]}"; do
        ((10#$o <= 255)) || return 1
    done
}

valid_hostname() { # RFC 1123 labels (and '_', as container names have)
    local label labels
    ((${#1} <= 253)) || return 1
    [[ $1 =~ ^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$ && $1 != *..* ]] || return 1
    IFS=. read -r -a labels <<<"$1"
    for label in "${labels[@]}"; do
        if ((${#label} > 63)) || [[ $label == -* || $label == *- ]]; then
            return 1
        fi
    done
}

canonical_ipv6() { # prints the RFC 5952 form (lower case, longest zero run as ::), or fails
    local addr=${1,,} head tail n i run=0 start=0 best=-1 bestlen=0 a b c d
    local -a groups=() hg=() tg=()
    [[ $addr =~ ^[0-9a-f:.]+$ && $addr == *:*:* ]] || return 1
    if [[ $addr == *.* ]]; then # ::ffff:10.0.0.1 - the last 32 bits as IPv4
        valid_ipv4 "${addr##*:}" || return 1
        IFS=. read -r a b c d <<<"${addr##*:}"
        addr=${addr%:*}:$(printf '%x:%x' $(((10#$a << 8) + 10#$b)) $(((10#$c << 8) + 10#$d)))
    fi
    if [[ $addr == *::* ]]; then
        head=${addr%%::*} tail=${addr#*::}
        [[ $tail != *::* ]] || return 1
        [[ -z $head ]] || IFS=: read -r -a hg <<<"$head"
        [[ -z $tail ]] || IFS=: read -r -a tg <<<"$tail"
        [[ $tail != *: ]] || return 1
        n=$((8 - ${#hg[@]} - ${#tg[@]}))
        ((n >= 1)) || return 1
        groups=("${hg[@]}")
        for ((i = 0; i < n; i++)); do groups+=(0); done
        groups+=("${tg[@]}")
    else
        [[ $addr != :* && $addr != *: ]] || return 1
        IFS=: read -r -a groups <<<"$addr"
        ((${#groups[@]} == 8)) || return 1
    fi
    for ((i = 0; i < 8; i++)); do
        [[ ${groups[i]} =~ ^[0-9a-f]{1,4}$ ]] || return 1
        groups[i]=$(printf '%x' $((16#${groups[i]})))
        if [[ ${groups[i]} == 0 ]]; then
            ((run == 0)) && start=$i
            run=$((run + 1))
            if ((run > bestlen)); then
                bestlen=$run best=$start
            fi
        else
            run=0
        fi
    done
    if ((bestlen >= 2)); then
        (
            IFS=:
            echo "${groups[*]:0:best}::${groups[*]:best+bestlen}"
        )
    else
        (
            IFS=:
            echo "${groups[*]}"
        )
    fi
}

worker_target() { # address as given -> host:port as VMAgent scrapes it, or dies
    local a=$1 host port=9400 v6=""
    if [[ $a =~ ^\[([^]]*)\](:(.*))?$ ]]; then # [fd00::1]:9400
        v6=${BASH_REMATCH[1]}
        [[ -z ${BASH_REMATCH[2]} ]] || port=${BASH_REMATCH[3]}
    elif [[ $a == *:*:* ]]; then # fd00::1, no port (write [fd00::1]:PORT for one)
        v6=$a
    else
        host=${a%%:*}
        [[ $a != *:* ]] || port=${a#*:}
        [[ -n $host ]] || die "'$a' has no host: give the worker's IP address or hostname, optionally :PORT (default port 9400)"
        if [[ $host =~ ^[0-9.]+$ ]]; then
            valid_ipv4 "$host" || die "'$a': '$host' is not an IPv4 address (four numbers 0-255, e.g. 10.0.0.11)"
        else
            valid_hostname "$host" || die "'$a' is not a worker address: give an IP (10.0.0.11, fd00::11) or hostname, optionally :PORT (default port 9400)"
            host=${host,,}
        fi
    fi
    if [[ $v6 == *%* ]]; then
        die "'$a': '$v6' has a zone (%…): link-local addresses cannot be scraped across machines; give the worker's global or ULA (fd…) address"
    fi
    if [[ -n $v6 ]]; then
        host=$(canonical_ipv6 "$v6") || die "'$a': '$v6' is not an IPv6 address (e.g. fd00::11; with a port: [fd00::11]:9400)"
        host="[$host]"
    fi
    if ! [[ $port =~ ^[0-9]{1,5}$ ]] || ((10#$port < 1 || 10#$port > 65535)); then
        die "'$a': '$port' is not a TCP port (1-65535; the exporter's default is 9400)"
    fi
    echo "$host:$((10#$port))"
}

# ---------------------------------------------------------------- targets

cluster_files() { # targets/*.yml, one per line (jobs/ holds other targets)
    local f
    for f in "$targets_dir"/*.yml; do
        [[ -f $f ]] && echo "$f"
    done
    return 0
}

targets_in() { # file -> its targets, one per line: block lists and [flow, lists]
    awk '
        function emit(v) {
            gsub(/^[ \t]+|[ \t]+$/, "", v)
            if (v ~ /^'\''.*'\''$/ || v ~ /^".*"$/) v = substr(v, 2, length(v) - 2)
            if (v != "") print v
        }
        { sub(/(^|[ \t])#.*/, "") }
        /^[ \t]*-?[ \t]*targets:[ \t]*\[/ {
            v = $0; sub(/^[^[]*\[/, "", v); sub(/\][ \t]*$/, "", v)
            n = split(v, items, ","); for (i = 1; i <= n; i++) emit(items[i])
            next
        }
        /^[ \t]*-[ \t]+[^ \t]/ {
            v = $0; sub(/^[ \t]*-[ \t]+/, "", v)
            if (v !~ /:([ \t]|$)/) emit(v)   # not a mapping such as "- labels:"
        }
    ' "$1"
}

cluster_of() { # target -> the file that lists it (first), or fails
    local f
    while IFS= read -r f; do
        if targets_in "$f" | grep -Fxq -- "$1"; then
            echo "$f"
            return 0
        fi
    done < <(cluster_files)
    return 1
}

yaml_item() { # an IPv6 target starts with '[', a flow list in YAML: quote it
    if [[ $1 == \[* ]]; then echo "'$1'"; else echo "$1"; fi
}

lock_targets() {
    # Concurrent --add-worker runs would each read, append and rename the
    # same file and lose each other's workers: one at a time.
    command -v flock >/dev/null 2>&1 ||
        die "flock (util-linux) is not installed: it keeps concurrent runs from losing workers; install util-linux"
    mkdir -p "$targets_dir"
    exec 9>>"$targets_dir/.lock"
    flock -w 60 9 || die "$targets_dir/.lock is still held by another setup.sh after 60 s: wait for it, or find it with 'fuser $targets_dir/.lock'"
}

unlock_targets() {
    exec 9>&-
}

add_workers() { # cluster, probe (1/0), targets...
    local name=$1 probe=$2 file t other
    shift 2
    file=$targets_dir/$name.yml
    lock_targets
    local -a new=()
    for t in "$@"; do
        other=$(cluster_of "$t") || other=""
        if [[ -n $other && $other != "$file" ]]; then
            unlock_targets
            die "$t is already a worker of cluster $(basename "$other" .yml) ($other): a worker belongs to one cluster; move it with ./setup.sh --remove-worker $t, then --add-worker $t --cluster $name"
        elif [[ -n $other || " ${new[*]} " == *" $t "* ]]; then
            echo "setup.sh: $t is already a target of cluster $name ($file)"
        else
            new+=("$t")
        fi
    done
    if ((${#new[@]})); then
        if [[ ! -f $file ]]; then
            cat >"$file.tmp" <<HEADER
# Cluster $name: GPU workers scraped by VMAgent (re-read every 5 s).
# One line per worker; ./setup.sh --add-worker IP --cluster $name appends here.
- labels:
    cluster: $name
  targets:
HEADER
            mv "$file.tmp" "$file"
        fi
        # Appended in one write: VMAgent never reads half a target.
        local lines=""
        for t in "${new[@]}"; do
            lines+="    - $(yaml_item "$t")"$'\n'
        done
        printf '%s' "$lines" >>"$file"
    fi
    unlock_targets
    for t in "${new[@]}"; do
        echo "setup.sh: added $t to cluster $name ($file); VMAgent scrapes it within 10 s, no restart"
        ((probe)) && probe_health "$t"
    done
    return 0
}

probe_health() { # target: does its exporter answer /health?
    local target=$1 timeout=${ALGALON_HEALTH_TIMEOUT:-3} code rc=0 why
    if ! command -v curl >/dev/null 2>&1; then
        warn "curl is not installed: $target's /health was not checked"
        return 0
    fi
    # -g: an IPv6 target's [brackets] are an address, not a curl glob.
    code=$(curl -g -s --noproxy '*' -o /dev/null -w '%{http_code}' --connect-timeout "$timeout" --max-time "$timeout" "http://$target/health") || rc=$?
    if ((rc == 0)) && [[ $code == 200 ]]; then
        echo "setup.sh: $target answers on /health: its exporter is up"
        return 0
    fi
    case $rc in
        0)
            if [[ $code == 503 ]]; then
                why="HTTP 503: the exporter runs, but its samples are stale or every GPU is down; see its log (docker logs algalon-worker-algalon-exporter-1)"
            else
                why="HTTP $code: is algalon-exporter the program on that port?"
            fi
            ;;
        6) why="its name does not resolve on this host" ;;
        7) why="connection refused: no exporter listens there" ;;
        28) why="no answer within ${timeout} s: a firewall, or the wrong address" ;;
        *) why="curl exited with $rc" ;;
    esac
    warn "$target does not answer on http://$target/health ($why). It is added anyway: start the exporter there (./setup.sh --worker) and let this host reach TCP port ${target##*:}."
}

remove_workers() { # cluster or "", targets...
    local name=$1 file t
    shift
    lock_targets
    for t in "$@"; do
        if [[ -n $name ]]; then
            file=$targets_dir/$name.yml
            if ! [[ -f $file ]] || ! targets_in "$file" | grep -Fxq -- "$t"; then
                local other=""
                other=$(cluster_of "$t") || true
                die "$t is not a worker of cluster $name${other:+ (it is one of cluster $(basename "$other" .yml): $other)}"
            fi
        else
            file=$(cluster_of "$t") || die "$t is not a worker of any cluster in $targets_dir (see ./setup.sh --list-workers)"
        fi
        # The line setup.sh wrote, quoted or not; a target in a [flow, list]
        # is left for a person to edit.
        awk -v t="$t" '
            { line = $0; sub(/[ \t]+#.*/, "", line); sub(/[ \t]+$/, "", line) }
            line ~ /^[ \t]*-[ \t]+/ {
                v = line; sub(/^[ \t]*-[ \t]+/, "", v)
                if (v == t || v == "'\''" t "'\''" || v == "\"" t "\"") next
            }
            { print }
        ' "$file" >"$file.tmp"
        if targets_in "$file.tmp" | grep -Fxq -- "$t"; then
            rm -f "$file.tmp"
            die "$t is listed in $file in a form setup.sh does not edit: remove it there by hand"
        fi
        if targets_in "$file.tmp" | grep -q .; then
            mv "$file.tmp" "$file"
            echo "setup.sh: removed $t from cluster $(basename "$file" .yml) ($file); VMAgent stops scraping it within 5 s"
        else
            # A group without targets is not a valid target file.
            rm -f "$file.tmp" "$file"
            echo "setup.sh: removed $t, the last worker of cluster $(basename "$file" .yml): deleted $file"
        fi
    done
    unlock_targets
}

list_workers() { # cluster or ""
    local f found=0 t
    while IFS= read -r f; do
        [[ -z $1 || $(basename "$f" .yml) == "$1" ]] || continue
        while IFS= read -r t; do
            printf '%s\t%s\n' "$(basename "$f" .yml)" "$t"
            found=1
        done < <(targets_in "$f")
    done < <(cluster_files)
    if ((!found)); then
        echo "setup.sh: no workers${1:+ in cluster $1} ($targets_dir): add one with ./setup.sh --add-worker IP${1:+ --cluster $1}" >&2
    fi
    return 0
}

case $mode in
    add-worker | remove-worker)
        targets=()
        for w in "${workers[@]}"; do
            t=$(worker_target "$w") || exit 1
            targets+=("$t")
        done
        if [[ $mode == add-worker ]]; then
            add_workers "${cluster:-default}" 1 "${targets[@]}"
        else
            remove_workers "$cluster" "${targets[@]}"
        fi
        exit 0
        ;;
    list-workers)
        list_workers "$cluster"
        exit 0
        ;;
esac
# ---------------------------------------------------------- prerequisites

missing=()
need() { missing+=("$1"); }

check_docker() {
    if ! command -v docker >/dev/null 2>&1; then
        need "Docker is not installed (no 'docker' command): install Docker Engine, https://docs.docker.com/engine/install/"
        return
    fi
    local version
    if ! version=$(docker compose version --short 2>/dev/null); then
        need "Docker Compose v2 is not installed ('docker compose' does not run): install the docker-compose-plugin package"
    elif ((simulate)) && ! version_at_least "$version" 2 24 4; then
        need "Docker Compose $version is too old for --simulate (needs 2.24.4 or later for '!reset' in simulate.override.yml): upgrade docker-compose-plugin"
    elif [[ $mode == single-node ]] && ! version_at_least "$version" 2 20 0; then
        need "Docker Compose $version is too old for --single-node (needs 2.20 or later for 'include'): upgrade docker-compose-plugin"
    fi
    local err
    if ! err=$(docker info --format '{{.ServerVersion}}' 2>&1 >/dev/null); then
        need "the Docker daemon is not reachable ($(head -n 1 <<<"$err")): start it (sudo systemctl start docker) or run setup.sh as a user in the 'docker' group"
    fi
}

version_at_least() { # version, major, minor, patch
    local major minor patch
    IFS=.- read -r major minor patch _ <<<"${1#v}"
    major=$((10#${major:-0})) minor=$((10#${minor:-0})) patch=$((10#${patch%%[!0-9]*}0 / 10))
    ((major > $2 || (major == $2 && (minor > $3 || (minor == $3 && patch >= $4)))))
}

# The fake NVML and the scenario --simulate mounts into the exporter.
fake_nvml=${ALGALON_FAKE_NVML_DIR:-$root/target/fake-nvml}/libnvidia-ml.so.1
scenario=${scenario:-$root/testing/scenarios/h100x8.json}

check_simulation() {
    if [[ ! -f $fake_nvml ]]; then
        need "the fake NVML library for --simulate ($fake_nvml): build it with 'make fake-nvml' in $root (needs Rust), or point ALGALON_FAKE_NVML_DIR at its directory"
    fi
    if [[ ! -f $scenario ]]; then
        need "the scenario for --simulate ($scenario does not exist): give one with --scenario FILE (see testing/README.md, or testing/scenarios/)"
    fi
}

check_gpu() {
    if ! command -v nvidia-smi >/dev/null 2>&1; then
        need "the NVIDIA driver is not installed (no 'nvidia-smi'): install the driver for this GPU, e.g. the distribution's nvidia-driver package"
    elif ! nvidia-smi -L >/dev/null 2>&1; then
        need "the NVIDIA driver does not answer ('nvidia-smi -L' fails): check 'nvidia-smi' and the kernel log (dmesg | grep -i nvrm)"
    fi
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        if ! docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q nvidia; then
            need "the NVIDIA Container Toolkit is not set up for Docker (no 'nvidia' runtime in 'docker info'): install nvidia-container-toolkit, then run 'sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker'"
        fi
    fi
}

check_docker
if ((simulate)); then
    check_simulation
elif [[ $mode != host ]]; then
    check_gpu
fi
if ((${#missing[@]} == 1)); then
    die "cannot set up --$mode on this machine: ${missing[0]}"
elif ((${#missing[@]})); then
    echo "setup.sh: cannot set up --$mode on this machine; missing:" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    exit 1
fi

# ------------------------------------------------------------------- .env

if [[ -z $host_ip ]]; then
    host_ip=$(hostname -I 2>/dev/null | awk '{print $1}') || true
    host_ip=${host_ip:-127.0.0.1}
fi

write_env() { # dir, then KEY=VALUE settings
    local dir=$1 env=$1/.env kv
    shift
    if [[ -f $env ]]; then
        echo "setup.sh: keeping the existing $env"
        return 0
    fi
    cp "$dir/.env.example" "$env.tmp"
    chmod 600 "$env.tmp"
    for kv in "$@"; do
        # Values are hex, digits, dots and URLs: no sed metacharacters but '|'-free.
        sed -i "s|^${kv%%=*}=.*|$kv|" "$env.tmp"
    done
    mv "$env.tmp" "$env"
    echo "setup.sh: wrote $env"
}

new_password() { # 36 hex characters, 144 random bits
    od -An -N18 -tx1 /dev/urandom | tr -d ' \n'
}

env_value() { # file, key -> value (empty when unset)
    sed -n "s/^$2=//p" "$1" | tail -n 1
}

host_env() {
    write_env "$compose_dir/host" \
        "GRAFANA_ADMIN_PASSWORD=$(new_password)" \
        "GRAFANA_ROOT_URL=http://$host_ip:3000"
}

simulate_override=$compose_dir/worker/simulate.override.yml

yaml_quote() { # a path as a single-quoted YAML scalar, '$' escaped from compose's interpolation
    local v=${1//\'/\'\'}
    printf "'%s'" "${v//\$/\$\$}"
}

write_simulate_override() {
    local lib scn
    lib=$(cd "$(dirname "$fake_nvml")" && pwd)/$(basename "$fake_nvml")
    scn=$(cd "$(dirname "$scenario")" && pwd)/$(basename "$scenario")
    cat >"$simulate_override.tmp" <<YAML
# Written by ./setup.sh --simulate (rewritten on every run with it, deleted
# by a run without it): algalon-exporter on the fake NVML instead of the
# NVIDIA runtime, with the GPUs of a scenario. Used as a second compose file:
#   docker compose -f docker-compose.yml -f simulate.override.yml up -d
# Needs Compose 2.24.4 or later (!reset).
services:
  algalon-exporter:
    # No GPU reservation: no NVIDIA runtime is needed, the GPUs are simulated.
    deploy: !reset {}
    environment:
      # The exporter loads this library instead of the driver's libnvidia-ml.so.1.
      ALGALON_NVML_LIB: /opt/algalon/fake-nvml/libnvidia-ml.so.1
      LD_LIBRARY_PATH: /opt/algalon/fake-nvml
      # testing/README.md: the fake NVML serves the GPUs this file describes.
      ALGALON_FAKE_NVML_SCENARIO: /opt/algalon/scenario.json
    volumes:
      - type: bind
        source: $(yaml_quote "$lib")
        target: /opt/algalon/fake-nvml/libnvidia-ml.so.1
        read_only: true
      - type: bind
        source: $(yaml_quote "$scn")
        target: /opt/algalon/scenario.json
        read_only: true
YAML
    mv "$simulate_override.tmp" "$simulate_override"
    echo "setup.sh: wrote $simulate_override (simulated GPUs: $scn)"
}

env_setting() { # .env file, key -> the value compose uses: the environment's, else the file's
    if [[ -n ${!2+set} ]]; then
        echo "${!2}"
    else
        env_value "$1" "$2"
    fi
}

check_env() { # .env file, keys that must not be empty, then --ports KEY...
    local env=$1 key v line where required=1
    shift
    for key in "$@"; do
        if [[ $key == --ports ]]; then
            required=0
            continue
        fi
        v=$(env_setting "$env" "$key")
        line=$(grep -n "^$key=" "$env" | tail -n 1) || true
        line=${line%%:*}
        where="$env${line:+:$line}"
        [[ -z ${!key+set} ]] || where="the environment"
        if ((required)) && [[ -z $v ]]; then
            if [[ $where == "the environment" ]]; then
                die "$key is set but empty in the environment: unset it or give it a value; nothing was started"
            elif [[ -n $line ]]; then
                if [[ $key == GRAFANA_ADMIN_PASSWORD ]]; then
                    die "$env:$line: $key is empty: set a password there, or delete $env and run setup.sh again to generate one; nothing was started"
                fi
                die "$env:$line: $key is empty: set it there; nothing was started"
            fi
            die "$env has no $key line: add $key=... (see $(dirname "$env")/.env.example); nothing was started"
        fi
        if ((!required)) && [[ -n $v ]] && { ! [[ $v =~ ^[0-9]{1,5}$ ]] || ((10#$v < 1 || 10#$v > 65535)); }; then
            die "$where: $key=$v is not a TCP port (1-65535); nothing was started"
        fi
    done
    return 0
}

port_answers() { # address, port: does something accept connections there?
    local addr=${1//[\[\]]/}
    case $addr in "" | 0.0.0.0 | "::") addr=127.0.0.1 ;; esac
    # shellcheck disable=SC2016 # $0 and $1 are the inner bash's arguments
    if command -v timeout >/dev/null 2>&1; then
        timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$addr" "$2" 2>/dev/null
    else
        bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$addr" "$2" 2>/dev/null
    fi
}

check_ports() { # compose -f args, then env:BIND_KEY:PORT_KEY:default_bind:default_port...
    local -a files=() ours=()
    local spec env bind_key port_key def_bind def_port bind port who id
    while (($#)) && [[ $1 == -f ]]; do
        files+=("$1" "$2")
        shift 2
    done
    # Ports this project's own containers publish (a re-run) are not taken.
    while IFS= read -r id; do
        ours+=("${id:0:12}")
    done < <(docker compose "${files[@]}" ps -q 2>/dev/null)
    for spec in "$@"; do
        IFS='|' read -r env bind_key port_key def_bind def_port <<<"$spec"
        bind=$(env_setting "$env" "$bind_key")
        bind=${bind:-$def_bind}
        port=$(env_setting "$env" "$port_key")
        port=${port:-$def_port}
        port_answers "$bind" "$port" || continue
        id=$(docker ps -q --filter "publish=$port" 2>/dev/null | head -n 1) || id=""
        id=${id:0:12}
        if [[ -n $id && " ${ours[*]} " == *" $id "* ]]; then
            continue
        fi
        if [[ -n $id ]]; then
            who="the container $(docker inspect --format '{{.Name}}' "$id" 2>/dev/null | sed 's|^/||')"
        else
            who="another program"
        fi
        die "port $port ($port_key in $env) is already in use on ${bind:-0.0.0.0} by $who: stop it, or set $port_key in $env to a free port; nothing was started"
    done
    return 0
}

release_image=ghcr.io/algalon-gpu/algalon-exporter
up_args=(--build) # how compose_up gets images: exporter_image decides for the exporter

exporter_image() { # pull the release image the worker's .env names, else build it under that name
    local image out
    image=$(env_setting "$compose_dir/worker/.env" ALGALON_IMAGE)
    image=${image:-$(env_value "$compose_dir/worker/.env.example" ALGALON_IMAGE)}
    # Build arguments of compose/worker/docker-compose.yml, as `make image` passes them.
    ALGALON_VERSION=unknown
    if [[ -f $root/Cargo.toml ]]; then
        ALGALON_VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$root/Cargo.toml")
    fi
    ALGALON_GIT_HASH=${ALGALON_GIT_HASH:-$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)}
    export ALGALON_VERSION ALGALON_GIT_HASH
    if [[ $image != "$release_image":* ]]; then
        up_args=(--build)
        echo "setup.sh: $image is built from compose/worker/Dockerfile (ALGALON_IMAGE in $compose_dir/worker/.env)"
    elif ! ((start)) || docker image inspect "$image" >/dev/null 2>&1; then
        up_args=()
    elif out=$(timeout 180 docker pull -q "$image" 2>&1); then
        up_args=()
        echo "setup.sh: pulled $image"
    else
        up_args=(--build)
        out=$(grep -v '^$' <<<"$out" | tail -n 1)
        echo "setup.sh: cannot pull $image (${out:-timed out after 180 s}): building it from compose/worker/Dockerfile instead (a few minutes, once)"
    fi
}

compose_up() { # compose files
    local files=() f
    for f in "$@"; do
        files+=(-f "$f")
    done
    if ((start)); then
        check_ports "${files[@]}" "${published[@]}"
        echo "setup.sh: docker compose ${files[*]} up -d${up_args[*]:+ ${up_args[*]}}"
        docker compose "${files[@]}" up -d "${up_args[@]}"
    else
        echo "setup.sh: --no-start: run 'docker compose ${files[*]} up -d${up_args[*]:+ ${up_args[*]}}' when ready"
    fi
}

extra=() # compose files for the worker half, after the main one

prepare_exporter() {
    if ((simulate)); then
        write_simulate_override
        extra=("$simulate_override")
    elif [[ -f $simulate_override ]]; then
        rm -f "$simulate_override"
        echo "setup.sh: removed $simulate_override: the exporter reads the real GPUs again"
    fi
    return 0
}

simulated_gpus=""
((simulate)) && simulated_gpus=" (simulated GPUs: $(basename "$scenario"))"

# What the summary says: "is up", or, with --no-start, that nothing runs yet.
if ((start)); then
    state="is up"
else
    state="is set up, not started (--no-start)"
fi

grafana_login() {
    # The password stays in .env (mode 600): stdout ends up in terminals'
    # scrollback, CI logs and tickets.
    local env=$compose_dir/host/.env user port
    user=$(env_value "$env" GRAFANA_ADMIN_USER)
    port=$(env_value "$env" GRAFANA_PORT)
    echo "  Grafana:          http://$host_ip:${port:-3000}  (user ${user:-admin}; password: GRAFANA_ADMIN_PASSWORD in $env)"
    echo "                    show it with: grep GRAFANA_ADMIN_PASSWORD $env"
    victoriametrics_url "$env"
}

victoriametrics_url() { # host .env: where VictoriaMetrics can be reached
    local env=$1 bind port
    bind=$(env_value "$env" VM_BIND)
    port=$(env_value "$env" VM_PORT)
    bind=${bind:-127.0.0.1} port=${port:-8428}
    case $bind in
        127.* | localhost | ::1 | "[::1]")
            echo "  VictoriaMetrics:  http://127.0.0.1:$port/vmui  (this machine only: its API has no authentication)"
            echo "                    from your machine: ssh -L $port:127.0.0.1:$port $host_ip, then http://localhost:$port/vmui"
            ;;
        *)
            [[ $bind == 0.0.0.0 || $bind == "::" || $bind == "[::]" ]] && bind=$host_ip
            echo "  VictoriaMetrics:  http://$bind:$port/vmui"
            warn "VictoriaMetrics is published on ${bind}:$port without authentication (VM_BIND in $env): whoever reaches it reads and writes every series. Firewall it, put vmauth in front, or set VM_BIND=127.0.0.1 (compose/README.md, 'Reaching VictoriaMetrics')"
            ;;
    esac
}

host_published=("$compose_dir/host/.env|GRAFANA_BIND|GRAFANA_PORT|0.0.0.0|3000"
    "$compose_dir/host/.env|VM_BIND|VM_PORT|127.0.0.1|8428")
worker_published=("$compose_dir/worker/.env|ALGALON_BIND|ALGALON_PORT|0.0.0.0|9400")
published=() # what compose_up checks is free: .env|BIND_KEY|PORT_KEY|default bind|default port

case $mode in
    host)
        host_env
        check_env "$compose_dir/host/.env" GRAFANA_ADMIN_PASSWORD --ports GRAFANA_PORT VM_PORT
        published=("${host_published[@]}")
        compose_up "$compose_dir/host/docker-compose.yml"
        echo
        echo "Algalon monitoring host $state:"
        grafana_login
        echo
        echo "Add each GPU worker (after './setup.sh --worker' there):"
        echo "  ./setup.sh --add-worker WORKER_IP --cluster CLUSTER_NAME"
        ;;
    worker)
        write_env "$compose_dir/worker"
        check_env "$compose_dir/worker/.env" --ports ALGALON_PORT
        published=("${worker_published[@]}")
        prepare_exporter
        exporter_image
        compose_up "$compose_dir/worker/docker-compose.yml" "${extra[@]}"
        me=$(hostname -I 2>/dev/null | awk '{print $1}') || true
        echo
        echo "algalon-exporter $state on this worker${simulated_gpus:-}:"
        echo "  metrics:  http://${me:-THIS_WORKER_IP}:9400/metrics   live page: http://${me:-THIS_WORKER_IP}:9400/"
        echo
        echo "On the monitoring host ($host_ip), run:"
        echo "  ./setup.sh --add-worker ${me:-THIS_WORKER_IP} --cluster ${cluster:-CLUSTER_NAME}"
        echo "and let $host_ip reach TCP port 9400 here."
        ;;
    single-node)
        host_env
        write_env "$compose_dir/worker"
        check_env "$compose_dir/host/.env" GRAFANA_ADMIN_PASSWORD --ports GRAFANA_PORT VM_PORT
        check_env "$compose_dir/worker/.env" --ports ALGALON_PORT
        published=("${host_published[@]}" "${worker_published[@]}")
        add_workers "${cluster:-local}" 0 host.docker.internal:9400
        prepare_exporter
        exporter_image
        compose_up "$compose_dir/single-node/docker-compose.yml" "${extra[@]}"
        echo
        echo "Algalon $state on this machine${simulated_gpus:-}:"
        grafana_login
        echo "  exporter:         http://$host_ip:9400/"
        ;;
esac
