#!/usr/bin/env bash
# Local stand-ins for the images compose/ names, for machines that reach no
# image registry (CI, this project's build machines). Each is tagged with the
# exact upstream name and version the compose files use, so that compose/
# runs unchanged:
#
#   debian:bookworm-slim                     debootstrap --variant=minbase (+ the packages below)
#   rust:1.95-slim-bookworm                  that base + gcc + this machine's Rust toolchain
#   gcr.io/distroless/cc-debian12:nonroot    the files of the Debian packages distroless' cc image
#                                            holds (libc6, libgcc-s1, libgomp1, libstdc++6,
#                                            ca-certificates, tzdata, netbase, base-files), no shell
#   victoriametrics/{victoria-metrics,vmagent,vmalert,vmauth}:$VM_VERSION
#                                            Debian's victoria-metrics package (older than
#                                            $VM_VERSION: the flags compose/ uses are the same)
#   prom/alertmanager:$ALERTMANAGER_VERSION  Debian's prometheus-alertmanager
#   grafana/grafana-oss:$GRAFANA_VERSION     NOT Grafana: grafana-standin.py checks what the stack
#                                            hands Grafana and holds its port (see that file)
#   python:3.11-slim-bookworm                that base: Debian's CPython 3.11 with venv and pip's
#                                            wheel, no Rust (tests/wheel/in-container.sh)
#
# Every stand-in carries the label org.algalon.standin=<hash of its recipe>;
# an image whose label matches is kept, so a second run builds nothing.
# Usage: testing/containers/build-standins.sh [--force]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
label=org.algalon.standin
force=0
[[ ${1:-} == --force ]] && force=1

export DOCKER_BUILDKIT=1
log() { echo "standins: $*" >&2; }
die() {
    echo "standins: $*" >&2
    exit 1
}

# Versions the compose files name (the .env.example defaults).
env_default() { sed -n "s/^$1=//p" "$root/compose/host/.env.example" | tail -n 1; }
VM_VERSION=$(env_default VM_VERSION)
ALERTMANAGER_VERSION=$(env_default ALERTMANAGER_VERSION)
GRAFANA_VERSION=$(env_default GRAFANA_VERSION)
RUST_VERSION=$(sed -n 's/^ARG RUST_VERSION=//p' "$root/compose/worker/Dockerfile")
[[ -n $VM_VERSION && -n $ALERTMANAGER_VERSION && -n $GRAFANA_VERSION && -n $RUST_VERSION ]] ||
    die "cannot read the image versions from compose/host/.env.example and compose/worker/Dockerfile"

# python3-venv: the Python stand-in below makes virtualenvs (the wheel test).
BASE_PACKAGES=busybox,ca-certificates,tzdata,netbase,python3,python3-yaml,python3-venv,gcc,libc6-dev,libstdc++6,libgomp1
DISTROLESS_PACKAGES=(base-files netbase tzdata ca-certificates libc6 libgcc-s1 libgomp1 libstdc++6)

# Raise when a recipe changes in a way its inputs below do not show.
RECIPE=1

recipe_hash() { # what an image is built from -> 16 hex digits
    printf '%s\n' "$RECIPE" "$@" | sha256sum | cut -c1-16
}

previous="" # the image a rebuilt tag leaves behind, removed once untagged
have() { # tag, hash: is the stand-in already built from this recipe?
    local h
    h=$(docker image inspect --format "{{index .Config.Labels \"$label\"}}" "$1" 2>/dev/null) || h=""
    previous=""
    [[ -n $h ]] && previous=$(docker image inspect --format '{{.Id}}' "$1")
    ((force)) && return 1
    [[ $h == "$2" ]]
}

drop_previous() { # after a rebuild: the old stand-in, if nothing else names it
    if [[ -n $previous ]] && [[ -z $(docker image inspect --format '{{join .RepoTags ","}}' "$previous" 2>/dev/null) ]]; then
        docker image rm "$previous" >/dev/null 2>&1 || true
    fi
}

mirror() { # the Debian mirror apt uses on this machine
    local uri
    uri=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
    [[ -n $uri ]] || uri=$(awk '$1 == "deb" && $3 ~ /^bookworm/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
    echo "${uri:-http://deb.debian.org/debian}"
}

work=$(mktemp -d "${TMPDIR:-/tmp}/algalon-standins.XXXXXX")
trap 'rm -rf "$work"' EXIT

# ---------------------------------------------------------------- base
base=debian:bookworm-slim
base_hash=$(recipe_hash "$BASE_PACKAGES" "$(sha256sum /etc/ssl/certs/ca-certificates.crt)")
if ! have "$base" "$base_hash"; then
    command -v debootstrap >/dev/null || die "debootstrap is not installed (scripts/install-deps.sh installs it)"
    log "debootstrap bookworm ($(mirror)), about a minute"
    debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$work/rootfs" "$(mirror)" >"$work/debootstrap.log" 2>&1 ||
        die "debootstrap failed; its log: $(tail -n 3 "$work/debootstrap.log" | tr '\n' ' ')"
    # The host's CA bundle: HTTPS through a TLS-inspecting proxy (crates.io
    # for the Rust build) works inside the images as it does outside.
    cp /etc/ssl/certs/ca-certificates.crt "$work/rootfs/etc/ssl/certs/ca-certificates.crt"
    # busybox wget: the compose health checks of VictoriaMetrics and Grafana
    # call `wget`, as the upstream (Alpine/busybox) images have it.
    ln -sf /bin/busybox "$work/rootfs/usr/local/bin/wget"
    rm -rf "$work/rootfs"/var/cache/apt/archives/*.deb "$work/rootfs"/var/lib/apt/lists/* \
        "$work/rootfs"/usr/share/{doc,man,info}
    tar -C "$work/rootfs" -c . | docker import -c "LABEL $label=$base_hash" \
        -c 'CMD ["bash"]' - "$base" >/dev/null
    rm -rf "$work/rootfs"
    drop_previous
    log "built $base"
fi

# ---------------------------------------------------------- distroless
distroless=gcr.io/distroless/cc-debian12:nonroot
dl_hash=$(recipe_hash "$base_hash" "${DISTROLESS_PACKAGES[*]}")
if ! have "$distroless" "$dl_hash"; then
    # The files dpkg lists for those packages, taken out of the base.
    cid=$(docker create "$base")
    mkdir -p "$work/baseroot" "$work/distroless"
    docker export "$cid" | tar -C "$work/baseroot" -x
    docker rm "$cid" >/dev/null
    for p in "${DISTROLESS_PACKAGES[@]}"; do
        list=""
        for cand in "$work/baseroot/var/lib/dpkg/info/$p".list "$work/baseroot/var/lib/dpkg/info/$p":*.list; do
            [[ -f $cand ]] && list=$cand && break
        done
        [[ -n $list ]] || die "package $p is not in $base"
        cat "$list"
    done | sort -u | sed 's|^/||' | (cd "$work/baseroot" && while IFS= read -r f; do
        # Files and links to files, under their real directory (bookworm's
        # /lib, /lib64, /bin are links into /usr).
        if [[ -e $f && ! -d $f ]]; then
            dir=$(cd "$(dirname "$f")" && pwd -P)
            echo "${dir#"$work/baseroot"/}/$(basename "$f")"
        fi
    done) | sort -u >"$work/distroless.list"
    echo etc/ssl/certs/ca-certificates.crt >>"$work/distroless.list"
    tar -C "$work/baseroot" -c -T "$work/distroless.list" | tar -C "$work/distroless" -x
    rm -rf "$work/baseroot"
    d=$work/distroless
    [[ -e $d/lib64/ld-linux-x86-64.so.2 || -e $d/usr/lib64/ld-linux-x86-64.so.2 ]] ||
        die "the distroless stand-in has no dynamic loader: libc6's files did not come out of the base"
    # bookworm is merged-/usr: /lib, /lib64, /bin, /sbin are links.
    for l in bin lib lib64 sbin; do
        mkdir -p "$d/usr/$l"
        [[ -e $d/$l ]] || ln -s "usr/$l" "$d/$l"
    done
    mkdir -p "$d/etc" "$d/home/nonroot" "$d/tmp" "$d/root"
    chmod 1777 "$d/tmp"
    printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
        'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$d/etc/passwd"
    printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' >"$d/etc/group"
    chown 65532:65532 "$d/home/nonroot"
    if find "$d" \( -name sh -o -name bash -o -name dash -o -name busybox \) | grep -q .; then
        die "the distroless stand-in would hold a shell: $(find "$d" \( -name sh -o -name bash -o -name dash -o -name busybox \) | head -n 1)"
    fi
    tar -C "$d" -c . | docker import -c "LABEL $label=$dl_hash" -c 'USER 65532' -c 'WORKDIR /home/nonroot' \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
        - "$distroless" >/dev/null
    drop_previous
    log "built $distroless ($(docker image inspect --format '{{.Size}}' "$distroless" | awk '{printf "%.1f MB", $1 / 1e6}'))"
fi

# ------------------------------------------------------------- builder
rust=rust:$RUST_VERSION-slim-bookworm
sysroot=$(rustc --print sysroot 2>/dev/null) || die "no Rust toolchain on this machine (rustc): the builder stand-in copies it"
rust_hash=$(recipe_hash "$base_hash" "$(rustc -Vv)" "$(cargo -V)")
if ! have "$rust" "$rust_hash"; then
    log "building $rust from this machine's $(rustc -V) (bin/ and lib/ of $sysroot)"
    [[ -x $sysroot/bin/cargo ]] || die "$sysroot/bin/cargo is missing: install the toolchain's cargo component"
    docker build -q -t "$rust" --label "$label=$rust_hash" -f - "$sysroot" >/dev/null <<EOF || die "building $rust failed"
FROM $base
COPY bin /usr/local/rust/bin
COPY lib /usr/local/rust/lib
ENV CARGO_HOME=/usr/local/cargo \\
    PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    RUST_VERSION=$RUST_VERSION
RUN mkdir -p /usr/local/cargo/bin \\
 && for t in cargo rustc rustdoc; do ln -s /usr/local/rust/bin/\$t /usr/local/cargo/bin/\$t; done \\
 && cargo --version && rustc --version
EOF
    drop_previous
    log "built $rust"
fi

# ------------------------------------------- VictoriaMetrics, Alertmanager
for b in victoria-metrics vmagent vmalert vmauth prometheus-alertmanager; do
    command -v "$b" >/dev/null || die "$b is not installed (scripts/install-deps.sh installs Debian's victoria-metrics and prometheus-alertmanager)"
done
mkdir -p "$work/bin"
for b in victoria-metrics vmagent vmalert vmauth prometheus-alertmanager; do
    cp "$(command -v "$b")" "$work/bin/"
done
cp "$here/grafana-standin.py" "$work/bin/"
# Debian's Alertmanager reads its notification templates from here.
am_share=/usr/share/prometheus/alertmanager
[[ -f $am_share/default.tmpl ]] || die "$am_share/default.tmpl is missing (Debian's prometheus-alertmanager installs it)"
cp -r "$am_share" "$work/bin/alertmanager-share"

build_simple() { # tag, recipe text (a Dockerfile read from stdin)
    local tag=$1 text h
    text=$(cat)
    h=$(recipe_hash "$base_hash" "$text" "$(cd "$work/bin" && find . -type f -exec sha256sum {} + | sort)")
    have "$tag" "$h" && return 0
    docker build -q -t "$tag" --label "$label=$h" -f - "$work/bin" >/dev/null <<<"$text" || die "building $tag failed"
    drop_previous
    log "built $tag"
}

# Upstream's entry points: /victoria-metrics-prod, /vmagent-prod, /vmalert-prod, /vmauth-prod.
for b in victoria-metrics vmagent vmalert vmauth; do
    build_simple "victoriametrics/$b:$VM_VERSION" <<EOF
FROM $base
COPY $b /$b-prod
EXPOSE 8427 8428 8429 8880
ENTRYPOINT ["/$b-prod"]
EOF
done

build_simple "prom/alertmanager:$ALERTMANAGER_VERSION" <<EOF
FROM $base
COPY prometheus-alertmanager /bin/alertmanager
COPY alertmanager-share $am_share
RUN mkdir -p /alertmanager /etc/alertmanager && chown nobody:nogroup /alertmanager
USER nobody
WORKDIR /alertmanager
EXPOSE 9093
ENTRYPOINT ["/bin/alertmanager"]
CMD ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"]
EOF

build_simple "grafana/grafana-oss:$GRAFANA_VERSION" <<EOF
FROM $base
COPY grafana-standin.py /usr/share/grafana/grafana-standin.py
RUN useradd -r -u 472 -g 0 -d /usr/share/grafana grafana \\
 && mkdir -p /var/lib/grafana /etc/grafana/provisioning && chown 472:0 /var/lib/grafana
ENV GF_PATHS_DATA=/var/lib/grafana GF_PATHS_PROVISIONING=/etc/grafana/provisioning \\
    GRAFANA_STANDIN_VERSION=$GRAFANA_VERSION
USER 472
EXPOSE 3000
ENTRYPOINT ["python3", "/usr/share/grafana/grafana-standin.py"]
EOF

# A training node's Python without Rust, for the wheel (tests/wheel/in-container.sh).
build_simple "python:3.11-slim-bookworm" <<EOF
FROM $base
RUN ! command -v cargo && ! command -v rustc && python3 -m venv --help >/dev/null
CMD ["python3"]
EOF

log "every stand-in is in place"
