#!/usr/bin/env bash
# compose/ in a real Docker engine (make test-containers; part of make test).
#
# Starts dockerd when none answers, builds the local stand-ins of the images
# compose/ names (testing/containers/build-standins.sh: cached by label, so a
# second run builds nothing), then, each on scratch copies of this checkout as
# separate machines would have them:
#
#   1. make image -> algalon-exporter:local (compose/worker/Dockerfile, BuildKit):
#      runs as a non-root user, holds no shell, under 60 MB, carries the OCI
#      version/revision/source/licence labels, its HEALTHCHECK turns healthy
#      (the exporter on the fake NVML);
#  1b. the algalon wheel (target/wheels) installed into a fresh venv in a
#      container with Python and no Rust, offline, measuring a job on the
#      fake NVML mounted in (tests/wheel/in-container.sh);
#   2. ./setup.sh --single-node --simulate: the release image cannot be pulled
#      here, so setup.sh says so and builds it under the release name (from
#      step 1's cache); within 30 s VictoriaMetrics holds every GPU's series
#      with cluster, instance and gpu labels, 5 s apart;
#   3. ./setup.sh --host and two ./setup.sh --worker --simulate (their own
#      compose projects and networks); --add-worker is scraped without a
#      VMAgent restart;
#   4. faults: one worker's exporter killed and VictoriaMetrics stopped for
#      60 s while VMAgent keeps scraping; after it restarts every series is
#      complete (VMAgent's disk buffer: no sample lost) and the exporter-down
#      alert reaches Alertmanager (its API); VictoriaMetrics recreated from a
#      rebuilt image by `docker compose up -d` keeps every stored sample;
#   5. bad input: the daemon unreachable, a published port already taken, an
#      empty required .env value: setup.sh says so in one line and nothing of
#      the project is created.
#
# Every wait has a deadline; every project is removed at the end by its name
# (containers, networks, volumes), on failure too. Ports used on this
# machine: 3000, 8428 and 9400 (the defaults setup.sh publishes) and a few
# free ones. Options: --keep (leave the stacks up for a look; remove them
# later with --down), --down.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
P=algalon-e2e # project name prefix
projects=("$P-single" "$P-host" "$P-w1" "$P-w2" "$P-bad")
health_ctr=$P-healthcheck
check=(python3 "$root/testing/containers/check.py")
export DOCKER_BUILDKIT=1 COMPOSE_PROGRESS=quiet
export ALGALON_FAKE_NVML_DIR=${ALGALON_FAKE_NVML_DIR:-$root/target/fake-nvml}
# The revision `make image` and setup.sh's builds label the image with (the
# scratch copies below are not git checkouts).
ALGALON_GIT_HASH=${ALGALON_GIT_HASH:-$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)}
export ALGALON_GIT_HASH
version=$("$root/scripts/release.sh" version)
release_image=$(sed -n 's/^ALGALON_IMAGE=//p' "$root/compose/worker/.env.example")
keep=0

t0=$(date +%s)
step() { echo "== [$(($(date +%s) - t0)) s] $*"; }
ok() { echo "   ok: $*"; }
fail() {
    echo "e2e-containers: FAIL: $*" >&2
    exit 1
}

remove_project() { # everything compose created under one project name
    local p=$1 kind
    local -a ids
    mapfile -t ids < <(docker ps -aq --filter "label=com.docker.compose.project=$p")
    ((${#ids[@]} == 0)) || docker rm -f "${ids[@]}" >/dev/null
    for kind in network volume; do
        mapfile -t ids < <(docker "$kind" ls -q --filter "label=com.docker.compose.project=$p")
        ((${#ids[@]} == 0)) || docker "$kind" rm "${ids[@]}" >/dev/null
    done
}

built=() # the exporter images as each build left them
note_image() { # algalon-exporter:local and setup.sh's build of the release image
    local tag
    for tag in algalon-exporter:local "$release_image"; do
        built+=("$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)")
    done
}

listener_pid=""
vm_image_original=""
teardown() {
    local p
    [[ -z $listener_pid ]] || kill "$listener_pid" 2>/dev/null || true
    docker rm -f "$health_ctr" >/dev/null 2>&1 || true
    for p in "${projects[@]}"; do
        remove_project "$p" 2>/dev/null || true
    done
    for p in "${built[@]}"; do # those a later build untagged
        if [[ -n $p && -z $(docker image inspect --format '{{join .RepoTags ","}}' "$p" 2>/dev/null) ]]; then
            docker image rm "$p" >/dev/null 2>&1 || true
        fi
    done
    if [[ -n $vm_image_original ]]; then # the stand-in as it was before the rebuild
        docker tag "$vm_image_original" "$vm_image" 2>/dev/null || true
        docker image prune -f --filter "label=org.algalon.e2e-rebuild" >/dev/null 2>&1 || true
    fi
    rm -rf "${scratch:-/nonexistent}"
}

case ${1:-} in
    --keep) keep=1 ;;
    --down)
        for p in "${projects[@]}"; do remove_project "$p"; done
        docker rm -f "$health_ctr" >/dev/null 2>&1 || true
        exit 0
        ;;
    "") ;;
    *) fail "unknown argument '$1' (--keep, --down)" ;;
esac

# ------------------------------------------------------------------ engine
step "Docker engine"
command -v docker >/dev/null || fail "docker is not installed: run scripts/install-deps.sh (Debian's docker.io)"
docker compose version >/dev/null 2>&1 || fail "'docker compose' does not run: run scripts/install-deps.sh (Debian trixie's docker-compose)"
if ! docker info >/dev/null 2>&1; then
    command -v dockerd >/dev/null || fail "no Docker daemon answers and dockerd is not installed"
    [[ $(id -u) == 0 ]] || fail "no Docker daemon answers; start it (sudo dockerd &, or systemctl start docker)"
    mkdir -p "$root/target"
    echo "   starting dockerd (log: target/dockerd.log)"
    nohup dockerd >"$root/target/dockerd.log" 2>&1 &
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || fail "dockerd did not answer within 60 s: $(tail -n 3 "$root/target/dockerd.log" | tr '\n' ' ')"
fi
ok "Docker $(docker info --format '{{.ServerVersion}}'), Compose $(docker compose version --short)"
[[ -f $ALGALON_FAKE_NVML_DIR/libnvidia-ml.so.1 ]] || fail "$ALGALON_FAKE_NVML_DIR/libnvidia-ml.so.1 is missing: run 'make fake-nvml'"

for p in "${projects[@]}"; do remove_project "$p"; done # a run killed earlier
docker rm -f "$health_ctr" >/dev/null 2>&1 || true
for port in 3000 8428 9400; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        fail "port $port is in use on this machine; the test publishes the stacks on their default ports (3000, 8428, 9400)"
    fi
done
scratch=$(mktemp -d "${TMPDIR:-/tmp}/algalon-e2e-containers.XXXXXX")
on_exit() {
    local status=$?
    if ((keep)); then
        echo "stacks left running (--keep): remove them with $0 --down"
    else
        teardown
    fi
    exit "$status"
}
trap on_exit EXIT

step "stand-in images (testing/containers/build-standins.sh)"
"$root/testing/containers/build-standins.sh"

machine() { # name -> a scratch copy of this checkout (tracked and new files), as another machine has it
    local dir=$scratch/$1
    mkdir -p "$dir"
    (cd "$root" && git ls-files -z --cached --others --exclude-standard |
        tar --null -T - -c --ignore-failed-read 2>/dev/null) | tar -C "$dir" -x
    echo "$dir"
}
steady() { # project: every container runs and none was restarted (no crash loop)
    local c state
    for c in $(docker ps -aq --filter "label=com.docker.compose.project=$1"); do
        state=$(docker inspect --format '{{.Name}} {{.State.Status}} {{.RestartCount}}' "$c")
        [[ $state == *" running 0" ]] || {
            docker logs --tail 5 "$c" >&2 2>&1 || true
            fail "$1: a container is not running steadily: $state (its log above)"
        }
    done
    ok "$1: every container running, none restarted"
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
vm=http://127.0.0.1:8428

# ------------------------------------------------------------------- image
step "1. compose/worker/Dockerfile -> algalon-exporter:local (BuildKit)"
src=$(machine src)
b0=$(date +%s)
previous=$(docker image inspect --format '{{.Id}}' algalon-exporter:local 2>/dev/null) || previous=""
# With the build arguments setup.sh gives `docker compose build` (the same
# version, ALGALON_GIT_HASH from the environment), so that its builds below
# hit this one's cache.
timeout 1500 make -s -C "$src" image IMAGE=algalon-exporter:local >"$scratch/build.log" 2>&1 || {
    tail -n 30 "$scratch/build.log" >&2
    fail "make image failed (above)"
}
ok "built in $(($(date +%s) - b0)) s"
note_image
if [[ -n $previous && -z $(docker image inspect --format '{{join .RepoTags ","}}' "$previous" 2>/dev/null) ]]; then
    docker image rm "$previous" >/dev/null 2>&1 || true # the last run's image, untagged now
fi
user=$(docker image inspect --format '{{.Config.User}}' algalon-exporter:local)
[[ -n $user && ${user%%:*} != 0 && ${user%%:*} != root ]] || fail "algalon-exporter:local runs as root (USER '$user')"
ok "runs as $user"
size=$(docker image inspect --format '{{.Size}}' algalon-exporter:local)
((size < 60 * 1000 * 1000)) || fail "algalon-exporter:local is $((size / 1000000)) MB, over 60 MB"
ok "$((size / 1000000)) MB"
cid=$(docker create algalon-exporter:local)
shells=$(docker export "$cid" | tar -t | grep -E '(^|/)(sh|bash|dash|ash|busybox)$' || true)
docker rm "$cid" >/dev/null
[[ -z $shells ]] || fail "algalon-exporter:local holds a shell: $shells"
ok "no shell in the image"
[[ $(docker image inspect --format '{{json .Config.Healthcheck.Test}}' algalon-exporter:local) == *--healthcheck* ]] ||
    fail "algalon-exporter:local has no HEALTHCHECK running the exporter's --healthcheck"
label() { docker image inspect --format "{{index .Config.Labels \"org.opencontainers.image.$2\"}}" "$1"; }
for kv in "version=$version" "revision=$ALGALON_GIT_HASH" "source=https://github.com/algalon-gpu/algalon" "licenses=MIT OR Apache-2.0"; do
    [[ $(label algalon-exporter:local "${kv%%=*}") == "${kv#*=}" ]] ||
        fail "algalon-exporter:local: label org.opencontainers.image.${kv%%=*} is '$(label algalon-exporter:local "${kv%%=*}")', not '${kv#*=}'"
done
ok "OCI labels: version $version, revision ${ALGALON_GIT_HASH:0:12}, source, licences"
# Its HEALTHCHECK runs every 30 s: checked after the single-node stack.
docker run -d --name "$health_ctr" --read-only --cap-drop ALL \
    -v "$ALGALON_FAKE_NVML_DIR/libnvidia-ml.so.1:/opt/algalon/fake-nvml/libnvidia-ml.so.1:ro" \
    -v "$root/testing/scenarios/h100x8.json:/opt/algalon/scenario.json:ro" \
    -e ALGALON_NVML_LIB=/opt/algalon/fake-nvml/libnvidia-ml.so.1 -e LD_LIBRARY_PATH=/opt/algalon/fake-nvml \
    -e ALGALON_FAKE_NVML_SCENARIO=/opt/algalon/scenario.json algalon-exporter:local >/dev/null
health_started=$(date +%s)

# ------------------------------------------------------------------- wheel
step "1b. the algalon wheel in a container with Python and no Rust"
"$root/tests/wheel/in-container.sh" python:3.11-slim-bookworm >"$scratch/wheel.log" 2>&1 || {
    cat "$scratch/wheel.log" >&2
    fail "the wheel does not install and run a job in python:3.11-slim-bookworm (above)"
}
grep -q '^smoke job passed' "$scratch/wheel.log" || fail "the smoke job did not finish: $(tail -n 3 "$scratch/wheel.log")"
ok "installed into a fresh venv (no network, no cargo), a job measured on the fake NVML: $(grep -c '^ok ' "$scratch/wheel.log") checks"

# ------------------------------------------------------------- single node
step "2. ./setup.sh --single-node --simulate"
single=$(machine single)
# The release image under its name is what a previous run built; without it
# setup.sh must try the registry and fall back to building.
docker image rm "$release_image" >/dev/null 2>&1 || true
COMPOSE_PROJECT_NAME=$P-single timeout 900 "$single/setup.sh" --single-node --simulate --host-ip 127.0.0.1 >"$scratch/single.log" 2>&1 || {
    cat "$scratch/single.log" >&2
    fail "./setup.sh --single-node --simulate failed (above)"
}
note_image
grep -q "cannot pull $release_image (.*): building it from compose/worker/Dockerfile" "$scratch/single.log" || {
    cat "$scratch/single.log" >&2
    fail "setup.sh did not say that $release_image cannot be pulled and is built instead (its output above)"
}
[[ $(label "$release_image" version) == "$version" ]] || fail "setup.sh's build of $release_image is not labelled version $version"
ok "setup.sh: $release_image cannot be pulled here; built it under that name (labelled $version)"
ok "setup.sh returned; every service started"
"${check[@]}" gpus --vm "$vm" --match 'DCGM_FI_DEV_GPU_TEMP{cluster="local"}' \
    --instances host.docker.internal:9400 --gpus 8 --interval 5 --within 30 || {
    COMPOSE_PROJECT_NAME=$P-single docker compose -f "$single/compose/single-node/docker-compose.yml" logs --tail 20 vmagent algalon-exporter >&2 || true
    fail "VictoriaMetrics does not hold every simulated GPU within 30 s of ./setup.sh --single-node --simulate"
}
code=$(curl -s -o "$scratch/search.json" -w '%{http_code}' -u "admin:$(sed -n 's/^GRAFANA_ADMIN_PASSWORD=//p' "$single/compose/host/.env")" http://127.0.0.1:3000/api/search)
if [[ $code != 200 ]] || ! grep -q algalon-fleet "$scratch/search.json"; then
    fail "Grafana (stand-in) does not list the provisioned dashboards with the generated admin password (HTTP $code)"
fi
ok "Grafana stand-in: provisioning checked, dashboards listed for admin with the generated password"
until [[ $(docker inspect --format '{{.State.Health.Status}}' "$health_ctr") == healthy ]]; do
    (($(date +%s) - health_started < 90)) || fail "algalon-exporter:local's HEALTHCHECK is not healthy 90 s after start ($(docker inspect --format '{{json .State.Health}}' "$health_ctr" | head -c 300))"
    sleep 2
done
ok "algalon-exporter:local's HEALTHCHECK: healthy after $(($(date +%s) - health_started)) s"
steady "$P-single"
docker rm -f "$health_ctr" >/dev/null
remove_project "$P-single"

# -------------------------------------------------------- host + 2 workers
step "3. ./setup.sh --host, two ./setup.sh --worker --simulate, --add-worker"
host=$(machine host)
workers=("$(machine w1)" "$(machine w2)")
hc() { COMPOSE_PROJECT_NAME=$P-host docker compose -f "$host/compose/host/docker-compose.yml" "$@"; }
COMPOSE_PROJECT_NAME=$P-host timeout 600 "$host/setup.sh" --host --host-ip 127.0.0.1 >"$scratch/host.log" 2>&1 || {
    cat "$scratch/host.log" >&2
    fail "./setup.sh --host failed (above)"
}
ip=$(hostname -I | awk '{print $1}')
p1=$(free_port) p2=$(free_port)
ports=("$p1" "$p2")
for w in 1 2; do
    COMPOSE_PROJECT_NAME=$P-w$w ALGALON_PORT=${ports[w - 1]} timeout 900 "${workers[w - 1]}/setup.sh" --worker --simulate --host-ip 127.0.0.1 >"$scratch/w$w.log" 2>&1 || {
        cat "$scratch/w$w.log" >&2
        fail "./setup.sh --worker --simulate (worker $w) failed (above)"
    }
    note_image
done
nets=$(docker network ls --format '{{.Name}} {{.Label "com.docker.compose.project"}}' | grep -c " $P-w[12]$") || true
[[ $nets == 2 ]] || fail "the two workers should have a network each (found $nets)"
ok "host and two workers up, each worker its own compose project and network"
vmagent_id=$(hc ps -q vmagent)
"$host/setup.sh" --add-worker "$ip:$p1" --cluster e2e-a >"$scratch/add1.log" 2>&1 || fail "--add-worker $ip:$p1: $(cat "$scratch/add1.log")"
sed 's/^/   /' "$scratch/add1.log"
"${check[@]}" gpus --vm "$vm" --match 'DCGM_FI_DEV_GPU_TEMP{cluster="e2e-a"}' --instances "$ip:$p1" --gpus 8 --within 40 ||
    fail "worker 1 ($ip:$p1) is not scraped into VictoriaMetrics within 40 s of --add-worker"
"$host/setup.sh" --add-worker "$ip:$p2" --cluster e2e-b >"$scratch/add2.log" 2>&1 || fail "--add-worker $ip:$p2: $(cat "$scratch/add2.log")"
"${check[@]}" gpus --vm "$vm" --match 'DCGM_FI_DEV_GPU_TEMP{cluster="e2e-b"}' --instances "$ip:$p2" --gpus 8 --within 40 ||
    fail "worker 2 ($ip:$p2) is not scraped into VictoriaMetrics within 40 s of --add-worker"
[[ $(hc ps -q vmagent) == "$vmagent_id" && $(docker inspect --format '{{.RestartCount}}' "$vmagent_id") == 0 ]] ||
    fail "VMAgent was restarted to pick up the workers"
ok "both workers picked up by the same VMAgent container, no restart"
for p in host w1 w2; do steady "$P-$p"; done

# ----------------------------------------------------------------- faults
step "4. faults: worker 2's exporter killed, VictoriaMetrics down for 60 s"
w2_exporter=$(docker ps -q --filter "label=com.docker.compose.project=$P-w2" --filter "label=com.docker.compose.service=algalon-exporter")
t_stop=$(date +%s)
# Stopped for good: `restart: unless-stopped` would bring back a merely killed one.
docker stop -t 0 "$w2_exporter" >/dev/null
COMPOSE_PROJECT_NAME=$P-host timeout 120 docker compose -f "$host/compose/host/docker-compose.yml" stop -t 10 victoriametrics >/dev/null 2>&1
ok "both stopped; bad input meanwhile"

# 5. Bad input, while VictoriaMetrics is down (nothing of it needs the stacks).
bad=$(machine bad)
nothing_of_bad() { # what a failed setup.sh must leave: no container, network or volume of its project
    local n
    n=$(
        docker ps -aq --filter "label=com.docker.compose.project=$P-bad"
        docker network ls -q --filter "label=com.docker.compose.project=$P-bad"
        docker volume ls -q --filter "label=com.docker.compose.project=$P-bad"
    )
    [[ -z $n ]] || fail "$1: setup.sh left part of the stack behind: $n"
}
one_line() { # what, log: setup.sh failed with exactly one line, which contains a phrase
    local lines
    lines=$(grep -c . "$2") || true
    [[ $lines == 1 ]] || fail "$1: expected one line from setup.sh, got $lines: $(cat "$2")"
    grep -q -- "$3" "$2" || fail "$1: setup.sh's line does not say '$3': $(cat "$2")"
    ok "$1: $(cat "$2")"
}
gp=$(free_port) vp=$(free_port)
if COMPOSE_PROJECT_NAME=$P-bad DOCKER_HOST=unix://$scratch/no-daemon.sock "$bad/setup.sh" --host >/dev/null 2>"$scratch/bad1.log"; then
    fail "setup.sh --host succeeded without a reachable Docker daemon"
fi
one_line "daemon down" "$scratch/bad1.log" "the Docker daemon is not reachable"
[[ ! -f $bad/compose/host/.env ]] || fail "daemon down: setup.sh wrote compose/host/.env anyway"
nothing_of_bad "daemon down"
cp "$bad/compose/host/.env.example" "$bad/compose/host/.env" # GRAFANA_ADMIN_PASSWORD= (empty)
if COMPOSE_PROJECT_NAME=$P-bad GRAFANA_PORT=$gp VM_PORT=$vp "$bad/setup.sh" --host >/dev/null 2>"$scratch/bad2.log"; then
    fail "setup.sh --host started with an empty GRAFANA_ADMIN_PASSWORD"
fi
one_line "empty .env value" "$scratch/bad2.log" "compose/host/.env:[0-9]*: GRAFANA_ADMIN_PASSWORD is empty"
nothing_of_bad "empty .env value"
sed -i 's/^GRAFANA_ADMIN_PASSWORD=.*/GRAFANA_ADMIN_PASSWORD=e2e-not-secret/' "$bad/compose/host/.env"
python3 -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(); time.sleep(300)' "$gp" &
listener_pid=$!
for _ in $(seq 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$gp") 2>/dev/null; then break; fi
    sleep 0.1
done
if COMPOSE_PROJECT_NAME=$P-bad GRAFANA_PORT=$gp VM_PORT=$vp "$bad/setup.sh" --host >/dev/null 2>"$scratch/bad3.log"; then
    fail "setup.sh --host started although port $gp (GRAFANA_PORT) is taken"
fi
kill "$listener_pid" 2>/dev/null || true
listener_pid=""
one_line "port taken" "$scratch/bad3.log" "port $gp (GRAFANA_PORT in .*) is already in use"
nothing_of_bad "port taken"

# The image VictoriaMetrics is recreated from below: the same stand-in, rebuilt.
vm_image=$(docker inspect --format '{{.Config.Image}}' "$(hc ps -aq victoriametrics)")
vm_image_original=$(docker image inspect --format '{{.Id}}' "$vm_image")
echo "FROM $vm_image" | docker build -q -t "$vm_image" --label "org.algalon.e2e-rebuild=$(date +%s)" - >/dev/null

sleep $((t_stop + 60 - $(date +%s) > 0 ? t_stop + 60 - $(date +%s) : 0))
COMPOSE_PROJECT_NAME=$P-host timeout 120 docker compose -f "$host/compose/host/docker-compose.yml" start victoriametrics >/dev/null 2>&1
t_start=$(date +%s)
ok "VictoriaMetrics started again after $((t_start - t_stop)) s"
# Every 5 s sample of the outage reaches VictoriaMetrics from VMAgent's buffer:
# worker 1's GPUs, and both workers' `up` (worker 2's says 0 from the kill on).
"${check[@]}" nogap --vm "$vm" --match "DCGM_FI_DEV_GPU_TEMP{instance=\"$ip:$p1\"}" --series 8 \
    --start $((t_stop - 8)) --end $((t_start + 15)) --within 150 ||
    fail "samples scraped while VictoriaMetrics was down are missing (VMAgent's buffer)"
"${check[@]}" nogap --vm "$vm" --match 'up{job="algalon"}' --series 2 \
    --start $((t_stop - 8)) --end $((t_start + 15)) --within 60 ||
    fail "'up' samples scraped while VictoriaMetrics was down are missing"

am() { docker exec "$(hc ps -q alertmanager)" wget -qO- "http://127.0.0.1:9093/api/v2/alerts" 2>/dev/null; }
until am | "${check[@]}" alert --name AlgalonExporterDown --label "instance=$ip:$p2" --label cluster=e2e-b; do
    (($(date +%s) - t_stop < 300)) || fail "AlgalonExporterDown for $ip:$p2 did not reach Alertmanager within 300 s of the kill: $(am | head -c 400)"
    sleep 5
done
ok "AlgalonExporterDown reached Alertmanager $(($(date +%s) - t_stop)) s after the kill (rule: for 2m)"

step "   docker compose up -d with a rebuilt VictoriaMetrics image keeps the stored data"
kept_match='{__name__=~"DCGM_FI_DEV_GPU_TEMP|up"}'
before=$("${check[@]}" count --vm "$vm" --match "$kept_match" --start $((t_stop - 60)) --end $((t_start + 15)))
old_vm=$(hc ps -q victoriametrics)
COMPOSE_PROJECT_NAME=$P-host timeout 300 docker compose -f "$host/compose/host/docker-compose.yml" up -d >/dev/null 2>&1 || fail "docker compose up -d (host) failed after the image rebuild"
new_vm=$(hc ps -q victoriametrics)
[[ $new_vm != "$old_vm" ]] || fail "docker compose up -d did not recreate VictoriaMetrics from its rebuilt image"
after=""
for _ in $(seq 30); do
    after=$("${check[@]}" count --vm "$vm" --match "$kept_match" --start $((t_stop - 60)) --end $((t_start + 15)) 2>/dev/null) && break
    sleep 1
done
[[ -n $after && $after == "$before" && $before -gt 0 ]] ||
    fail "VictoriaMetrics held $before samples of the window before the recreate, ${after:-none} after"
ok "VictoriaMetrics recreated, the same $before samples before and after"

step "passed in $(($(date +%s) - t0)) s"
