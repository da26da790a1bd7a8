#!/usr/bin/env bash
# Algalon deployment: GPU workers run algalon-exporter, a monitoring host runs
# VMAgent -> VictoriaMetrics -> Grafana (+ vmalert, Alertmanager).
#
#   ./setup.sh --host        [--host-ip IP]   monitoring host (compose/host)
#   ./setup.sh --worker      [--host-ip IP]   GPU worker (compose/worker)
#   ./setup.sh --single-node [--host-ip IP]   both on this machine (compose/single-node)
#   ./setup.sh --add-worker IP[:PORT] [--cluster NAME]
#                                             on the host: scrape a worker (one line
#                                             in compose/host/targets/NAME.yml, live
#                                             scraped within 20 s, no restart)
#
# Options: --no-start (write the files, start nothing), -h/--help.
# Checks Docker, Docker Compose and, on workers, the NVIDIA driver and
# Container Toolkit first, and names exactly what is missing. Writes .env
# files from .env.example (a generated Grafana password; an existing .env is
# kept) and prints the URLs to open.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
compose_dir=$root/compose
targets_dir=${ALGALON_TARGETS_DIR:-$compose_dir/host/targets}

usage() {
    sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

die() {
    echo "setup.sh: $*" >&2
    exit 1
}

mode=""
host_ip=""
worker=""
cluster="default"
start=1

set_mode() {
    [[ -z $mode ]] || die "choose one of --host, --worker, --single-node, --add-worker (got --$mode and $1)"
    mode=${1#--}
}

while (($#)); do
    case $1 in
        --host | --worker | --single-node) set_mode "$1" ;;
        --add-worker)
            set_mode "$1"
            (($# >= 2)) || die "--add-worker needs the worker's address: --add-worker IP[:PORT]"
            worker=$2
            shift
            ;;
        --host-ip)
            (($# >= 2)) || die "--host-ip needs an address"
            host_ip=$2
            shift
            ;;
        --cluster)
            (($# >= 2)) || die "--cluster needs a name"
            cluster=$2
            shift
            ;;
        --no-start) start=0 ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown argument '$1' (see ./setup.sh --help)" ;;
    esac
    shift
done
[[ -n $mode ]] || {
    usage >&2
    exit 2
}

# ---------------------------------------------------------------- targets

valid_address() { # host or IPv4, optional :port
    [[ $1 =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$ ]]
}

add_worker() { # address, cluster
    local address=$1 name=$2 file
    valid_address "$address" || die "'$address' is not a worker address: give an IP or hostname, optionally :PORT (default port 9400)"
    [[ $address == *:* ]] || address=$address:9400
    [[ $name =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || die "'$name' is not a cluster name: use letters, digits, '.', '_' and '-'"
    file=$targets_dir/$name.yml
    mkdir -p "$targets_dir"
    if [[ -f $file ]] && grep -Eq "^[[:space:]]*- ['\"]?${address//./\\.}['\"]?[[:space:]]*$" "$file"; then
        echo "setup.sh: $address is already a target of cluster $name ($file)"
        return 0
    fi
    if [[ ! -f $file ]]; then
        cat >"$file.tmp" <<EOF
# Cluster $name: GPU workers scraped by VMAgent (re-read every 5 s).
# One line per worker; ./setup.sh --add-worker IP --cluster $name appends here.
- labels:
    cluster: $name
  targets:
EOF
        mv "$file.tmp" "$file"
    fi
    # One line, appended in a single write: VMAgent never reads half a target.
    printf '    - %s\n' "$address" >>"$file"
    echo "setup.sh: added $address to cluster $name ($file); VMAgent scrapes it within 20 s, no restart"
}

if [[ $mode == add-worker ]]; then
    add_worker "$worker" "$cluster"
    exit 0
fi

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
    elif [[ $mode == single-node ]]; then
        local major minor
        IFS=. read -r major minor _ <<<"${version#v}"
        if ((major < 2 || (major == 2 && minor < 20))); then
            need "Docker Compose $version is too old for --single-node (needs 2.20 or later for 'include'): upgrade docker-compose-plugin"
        fi
    fi
    local err
    if ! err=$(docker info --format '{{.ServerVersion}}' 2>&1 >/dev/null); then
        need "the Docker daemon is not reachable ($(head -n 1 <<<"$err")): start it (sudo systemctl start docker) or run setup.sh as a user in the 'docker' group"
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
[[ $mode == host ]] || check_gpu
if ((${#missing[@]})); then
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

host_env() {
    write_env "$compose_dir/host" \
        "GRAFANA_ADMIN_PASSWORD=$(new_password)" \
        "GRAFANA_ROOT_URL=http://$host_ip:3000"
}

compose_up() { # compose file
    if ((start)); then
        echo "setup.sh: docker compose -f $1 up -d --build"
        docker compose -f "$1" up -d --build
    else
        echo "setup.sh: --no-start: run 'docker compose -f $1 up -d --build' when ready"
    fi
}

grafana_login() {
    local env=$compose_dir/host/.env user pass
    user=$(sed -n 's/^GRAFANA_ADMIN_USER=//p' "$env")
    pass=$(sed -n 's/^GRAFANA_ADMIN_PASSWORD=//p' "$env")
    echo "  Grafana:          http://$host_ip:3000  (user ${user:-admin}, password $pass — also in $env)"
    echo "  VictoriaMetrics:  http://$host_ip:8428/vmui"
}

case $mode in
    host)
        host_env
        compose_up "$compose_dir/host/docker-compose.yml"
        echo
        echo "Algalon monitoring host is up:"
        grafana_login
        echo
        echo "Add each GPU worker (after './setup.sh --worker' there):"
        echo "  ./setup.sh --add-worker WORKER_IP --cluster CLUSTER_NAME"
        ;;
    worker)
        write_env "$compose_dir/worker"
        compose_up "$compose_dir/worker/docker-compose.yml"
        me=$(hostname -I 2>/dev/null | awk '{print $1}') || true
        echo
        echo "algalon-exporter is up on this worker:"
        echo "  metrics:  http://${me:-THIS_WORKER_IP}:9400/metrics   live page: http://${me:-THIS_WORKER_IP}:9400/"
        echo
        echo "On the monitoring host ($host_ip), run:"
        echo "  ./setup.sh --add-worker ${me:-THIS_WORKER_IP} --cluster CLUSTER_NAME"
        echo "and let $host_ip reach TCP port 9400 here."
        ;;
    single-node)
        host_env
        write_env "$compose_dir/worker"
        add_worker host.docker.internal:9400 local
        compose_up "$compose_dir/single-node/docker-compose.yml"
        echo
        echo "Algalon is up on this machine:"
        grafana_login
        echo "  exporter:         http://$host_ip:9400/"
        ;;
esac
