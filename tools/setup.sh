#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine (run as root): the Debian packages the testbed
# drives, and a virtual environment at .venv with the pinned Python dependencies and the package.
# Quick when everything is already there: it only checks dpkg and a stamp of the lock file.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages whose binaries the benchmark runs. Keep in sync with docs/install.md.
APT_PACKAGES=(
    # testbed, generators, captures
    iproute2 iputils-ping iperf3 iptables nftables d-itg tcpdump ethtool conntrack
    procps psmisc util-linux mount git make
    # Open vSwitch (userspace datapath, daemons started per deployment)
    openvswitch-switch openvswitch-common
    # eBPF programs built at deploy time
    clang llvm bpftool libbpf-dev linux-libc-dev
    # tunnels and VPNs between emulated hosts (daemons started per deployment)
    wireguard-tools wireguard-go openvpn tinc openssl
    strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-extra-plugins
    libstrongswan-standard-plugins
    # docker backend: Debian's engine (started per run inside a namespace, never as a service)
    # and debootstrap for the registry-free image (docs/docker.md)
    docker.io containerd runc debootstrap
    # kubernetes backend, local test cluster: Go and the tools to build kube-* v1.20 from Debian's
    # source package (tools/build-k8s.sh), etcd, the CNI plugins, socat (docs/kubernetes.md)
    golang-go rsync jq dpkg-dev etcd-server etcd-client containernetworking-plugins socat
)

log() { printf '[setup] %s\n' "$*" >&2; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    missing+=(python3-venv)
fi
if ((${#missing[@]})); then
    if [ "$(id -u)" -ne 0 ]; then
        log "missing Debian packages: ${missing[*]}; run this as root (or install them) and retry"
        exit 1
    fi
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Packages with daemons (openvswitch, strongswan, ...) must not start them in the machine's
    # namespace on install: the benchmark starts its own per deployment. policy-rc.d says so to
    # invoke-rc.d; ours is removed again only if we created it.
    created_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        created_policy=1
    fi
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    if [ -n "$created_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

stamp=.venv/.setup-stamp
want=$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)
if ! { [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; }; then
    if [ ! -x .venv/bin/python ]; then
        log "creating .venv"
        "$PYTHON" -m venv .venv
    fi
    log "installing pinned Python dependencies into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.lock
    .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
    echo "$want" > "$stamp"
    log "ready: .venv/bin/seconetbench"
fi
