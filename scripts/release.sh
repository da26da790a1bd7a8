#!/usr/bin/env bash
# Release helpers behind the Makefile's targets (and so behind
# .github/workflows/release.yml). One version for every artifact: the
# workspace's `[workspace.package] version` in Cargo.toml; the crates inherit
# it, maturin gives it to the Python package, `make install` to algalon.pc.
#
#   scripts/release.sh version            print it
#   scripts/release.sh check-tag TAG      fail unless TAG is v<version>
#   scripts/release.sh c-tarball DIR      DIR/libalgalon-<version>-linux-<arch>.tar.gz:
#                                         lib/libalgalon.{so,a}, lib/pkgconfig/algalon.pc,
#                                         include/algalon.h, licences (`make install`)
#   scripts/release.sh checksums DIR      DIR/SHA256SUMS over every other file under DIR
#   scripts/release.sh image IMAGE [PLATFORMS] [PUSH]
#                                         the exporter image from compose/worker/Dockerfile,
#                                         version/revision build arguments (OCI labels); with
#                                         PLATFORMS (linux/amd64,linux/arm64) or PUSH=1 through
#                                         buildx, pushed
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
    echo "release: $*" >&2
    exit 1
}

version() {
    local v
    v=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
    [[ $v =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] ||
        fail "Cargo.toml: [workspace.package] version '$v' is not a semantic version"
    echo "$v"
}

case ${1:-} in
version)
    version
    ;;
check-tag)
    tag=${2:-}
    [[ -n $tag ]] || fail "no tag given: make check-tag TAG=v$(version)"
    v=$(version)
    [[ $tag == "v$v" ]] ||
        fail "tag '$tag' does not match the workspace version $v (Cargo.toml [workspace.package]); tag v$v, or bump the version and CHANGELOG.md first"
    grep -q "^## \[$v\]" CHANGELOG.md ||
        fail "CHANGELOG.md has no '## [$v]' section: move the Unreleased entries under it"
    echo "release: tag $tag matches version $v"
    ;;
c-tarball)
    out=${2:?usage: $0 c-tarball DIR}
    v=$(version)
    name=libalgalon-$v-linux-$(uname -m)
    stage=$(mktemp -d "${TMPDIR:-/tmp}/algalon-c.XXXXXX")
    trap 'rm -rf "$stage"' EXIT
    # The prefix users unpack into by default; algalon.pc's prefix= says so
    # and `pkg-config --define-prefix` relocates it.
    "${MAKE:-make}" -s install PREFIX=/usr/local DESTDIR="$stage/root"
    mkdir -p "$stage/$name" "$out"
    mv "$stage/root/usr/local/lib" "$stage/root/usr/local/include" "$stage/$name/"
    cp LICENSE-MIT LICENSE-APACHE algalon-ffi/README.md "$stage/$name/"
    tar czf "$out/$name.tar.gz" --owner=0 --group=0 --sort=name -C "$stage" "$name"
    echo "release: $out/$name.tar.gz"
    ;;
checksums)
    dir=${2:?usage: $0 checksums DIR}
    [[ -d $dir ]] || fail "$dir does not exist: build the artifacts first"
    (
        cd "$dir"
        rm -f SHA256SUMS
        mapfile -t files < <(find . -type f ! -path ./SHA256SUMS -printf '%P\n' | LC_ALL=C sort)
        ((${#files[@]})) || fail "$dir is empty: nothing to checksum"
        sha256sum -- "${files[@]}" >SHA256SUMS
        sha256sum --quiet -c SHA256SUMS
    )
    echo "release: $dir/SHA256SUMS ($(wc -l <"$dir/SHA256SUMS") files)"
    ;;
image)
    image=${2:?usage: $0 image IMAGE [PLATFORMS] [PUSH]}
    platforms=${3:-}
    push=${4:-0}
    command -v docker >/dev/null 2>&1 ||
        fail "docker not found: install Docker (Debian: apt-get install docker.io) to build the image"
    docker info >/dev/null 2>&1 ||
        fail "the Docker daemon does not answer ($(docker info 2>&1 | grep -m1 -i error || echo 'docker info failed')): start it (systemctl start docker, or dockerd &)"
    revision=${ALGALON_GIT_HASH:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
    args=(-f compose/worker/Dockerfile -t "$image"
        --build-arg "ALGALON_VERSION=$(version)"
        --build-arg "ALGALON_GIT_HASH=$revision")
    if [[ -n $platforms || $push == 1 ]]; then
        # Several platforms cannot be loaded into the local engine: buildx
        # pushes them as one multi-arch manifest (the release job).
        docker buildx version >/dev/null 2>&1 ||
            fail "PLATFORMS/PUSH need docker buildx (Debian: apt-get install docker-buildx)"
        args+=(--platform "${platforms:-linux/$(uname -m | sed 's/x86_64/amd64/;s/aarch64/arm64/')}")
        [[ $push == 1 ]] && args+=(--push)
        docker buildx build "${args[@]}" .
    else
        DOCKER_BUILDKIT=1 docker build "${args[@]}" .
    fi
    echo "release: image $image (version $(version), revision $revision)"
    ;;
*)
    fail "usage: $0 version | check-tag TAG | c-tarball DIR | checksums DIR | image IMAGE [PLATFORMS] [PUSH]"
    ;;
esac
