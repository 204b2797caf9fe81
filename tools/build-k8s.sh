#!/usr/bin/env bash
# Build the binaries of a local single-node Kubernetes cluster (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kube-proxy) from Debian bookworm's `kubernetes` source package, and install
# the Debian packages the local cluster runs with (etcd, CNI plugins, socat, ...).
#
# Why a source build: no registry reachable from a CI machine ships these binaries (apt has only
# kubectl, PyPI/npm wrappers download images at run time). Debian's source package vendors every Go
# dependency, so it builds offline with Debian's Go (~10 min on 2 cores, see docs/kubernetes.md).
#
# Idempotent: the binaries are cached outside the repository, keyed by version, in
#   ${SECONETBENCH_K8S_CACHE:-/var/cache/seconetbench/k8s}/v1.20.2/bin
# and a complete cache (stamp file) makes this script a quick no-op. Concurrent runs serialise on a lock.
# The build tree (~2 GB with GOCACHE) is deleted after a successful build unless --keep-build is given.
#
# Usage (root): tools/build-k8s.sh [--keep-build] [--print-bindir]
#   --print-bindir   print the cache bin dir and exit 0 if it is complete, 1 otherwise (no build)
set -euo pipefail
. "$(dirname "$0")/debian.sh"

VERSION=v1.20.2
# The Debian source version that holds $VERSION (bookworm: 1.20.5+really1.20.2). A different
# version in the archive fails the build instead of silently caching other binaries under $VERSION.
DEB_VERSION_RE='^1\.20\.5\+really1\.20\.2-'
CACHE_ROOT=${SECONETBENCH_K8S_CACHE:-/var/cache/seconetbench/k8s}
ROOT=$CACHE_ROOT/$VERSION
BIN=$ROOT/bin
BUILD=$ROOT/build
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
# Runtime packages of the local cluster plus the build dependencies (Build-Depends: golang-go, jq, rsync).
APT_PACKAGES=(golang-go rsync jq dpkg-dev etcd-server etcd-client containernetworking-plugins socat conntrack openssl)

keep_build=""; print_only=""
for arg in "$@"; do
    case $arg in
        --keep-build) keep_build=1 ;;
        --print-bindir) print_only=1 ;;
        *) echo "build-k8s.sh: unknown argument '$arg' (allowed: --keep-build, --print-bindir)" >&2; exit 2 ;;
    esac
done

log() { printf '[build-k8s] %s\n' "$*" >&2; }
complete() { [ -f "$BIN/.complete" ] && for b in "${BINARIES[@]}"; do [ -x "$BIN/$b" ] || return 1; done; }

if [ -n "$print_only" ]; then
    complete && { echo "$BIN"; exit 0; }
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    log "must run as root (installs Debian packages, writes $CACHE_ROOT)"; exit 1
fi

mkdir -p "$ROOT"
exec 9>"$ROOT/.lock"
flock 9   # a second invocation waits for the first and then finds the cache complete

# etcd-server ships a service: it must not start on the machine, the local cluster starts its own.
install_debian_packages build-k8s "${APT_PACKAGES[@]}"

if complete; then
    log "cached: $BIN ($("$BIN/kube-apiserver" --version))"
    echo "$BIN"; exit 0
fi

start=$(date +%s)
rm -rf "$BIN.tmp"; mkdir -p "$BUILD/apt/parts" "$BUILD/apt/lists/partial" "$BUILD/src" "$BUILD/gocache" "$BUILD/home" "$BIN.tmp"
# A private deb-src list from the mirrors of the machine's own apt sources (debian_mirror): its
# sources and lists stay untouched. bookworm is required; the updates and security suites are used
# when the machine has them.
rm -f "$BUILD/apt/parts/src.sources"  # written by older versions of this script
for suite in bookworm bookworm-updates bookworm-security; do
    if [ "$suite" = bookworm ]; then uri=$(debian_mirror "$suite"); else uri=$(debian_mirror "$suite" 2>/dev/null) || continue; fi
    printf 'deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' "$uri" "$suite"
done > "$BUILD/apt/parts/src.list"
APT_PRIVATE=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$BUILD/apt/parts" -o "Dir::State::Lists=$BUILD/apt/lists")
if ! ls "$BUILD"/src/kubernetes_*.dsc >/dev/null 2>&1; then
    log "fetching Debian source package kubernetes"
    apt-get "${APT_PRIVATE[@]}" update -q >/dev/null
    (cd "$BUILD/src" && apt-get "${APT_PRIVATE[@]}" source --download-only kubernetes >/dev/null)
fi
dsc=$(ls "$BUILD"/src/kubernetes_*.dsc | head -n1)
deb_version=$(sed -n 's/^Version: //p' "$dsc")
if ! [[ $deb_version =~ $DEB_VERSION_RE ]]; then
    log "Debian source version $deb_version does not hold $VERSION; update VERSION/DEB_VERSION_RE in $0"; exit 1
fi
if [ ! -d "$BUILD/src/k8s/cmd/kube-apiserver" ]; then
    rm -rf "$BUILD/src/k8s"
    dpkg-source -x "$dsc" "$BUILD/src/k8s" >/dev/null
fi

cd "$BUILD/src/k8s"
mkdir -p .go/src/k8s.io && ln -sfn ../../.. .go/src/k8s.io/kubernetes
export GOCACHE=$BUILD/gocache GOPATH=$BUILD/src/k8s/.go GOPROXY=off GOFLAGS= CGO_ENABLED=0 HOME=$BUILD/home
# Without generated openapi the apiserver does not compile (undefined: openapi.GetOpenAPIDefinitions).
# A failed earlier attempt (e.g. rsync missing) leaves a 0-byte openapi-gen that must go.
[ -s _output/bin/openapi-gen ] || rm -f _output/bin/openapi-gen
if [ ! -s pkg/generated/openapi/zz_generated.openapi.go ]; then
    log "make gen_openapi"
    make gen_openapi > "$BUILD/gen-openapi.log" 2>&1 || { tail -n 30 "$BUILD/gen-openapi.log" >&2; exit 1; }
fi
# GOPATH mode as in Debian's rules: module mode fails with "updates to go.mod needed, disabled by -mod=vendor".
export GO111MODULE=off
cd .go/src/k8s.io/kubernetes
# The version must be stamped into the *vendor* path, else the binaries report v0.0.0-master+....
V=k8s.io/kubernetes/vendor/k8s.io
LDFLAGS="-s -w"
for p in component-base/version client-go/pkg/version; do
    LDFLAGS="$LDFLAGS -X $V/$p.gitVersion=$VERSION -X $V/$p.gitMajor=1 -X $V/$p.gitMinor=20 -X $V/$p.gitTreeState=clean"
done
for b in "${BINARIES[@]}"; do
    s=$(date +%s)
    go build -ldflags "$LDFLAGS" -o "$BIN.tmp/$b" "./cmd/$b"
    log "built $b in $(( $(date +%s) - s )) s"
done
got=$("$BIN.tmp/kube-apiserver" --version)
[ "$got" = "Kubernetes $VERSION" ] || { log "unexpected version: $got"; exit 1; }
printf 'version=%s\ndebian_source=%s\nbuilt=%s\ngo=%s\n' "$VERSION" "$deb_version" "$(date -u +%FT%TZ)" "$(go version)" > "$BIN.tmp/.complete"
rm -rf "$BIN"; mv "$BIN.tmp" "$BIN"
cd /
[ -n "$keep_build" ] || rm -rf "$BUILD"
log "done in $(( $(date +%s) - start )) s: $BIN"
echo "$BIN"
