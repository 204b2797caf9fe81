#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine (run as root): the Debian packages the testbed
# drives, and a virtual environment at .venv with the pinned Python dependencies and the package.
# Quick when everything is already there: it only checks dpkg and a stamp of the lock file.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages whose binaries the benchmark runs. Keep docs/install.md (what this script installs) in sync.
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
    # ssh backend: the client, and the sshd each namespace lab host of the tests runs (never the
    # machine's own ssh service); socat (above) carries the tests' control connections (docs/ssh.md)
    openssh-client openssh-server python3-psutil
    # vm backend: QEMU, and Debian's stock kernel that the VMs boot (its modules are copied into
    # the VM image, which debootstrap above builds; docs/vm.md)
    qemu-system-x86 linux-image-amd64
)

# Test tiers that need more than the above, named as arguments (`tools/setup.sh browser`):
# browser: Debian's chromium, which tests/browser opens the HTML figures and the report in.
declare -A TIER_PACKAGES=([browser]="chromium")

log() { printf '[setup] %s\n' "$*" >&2; }

. tools/debian.sh
PYTHON=${PYTHON:-python3}
extra=()
if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    extra+=(python3-venv)
fi
for tier in "$@"; do
    [ -n "${TIER_PACKAGES[$tier]:-}" ] || { log "unknown test tier '$tier'; known: ${!TIER_PACKAGES[*]}"; exit 2; }
    read -ra packages <<< "${TIER_PACKAGES[$tier]}"
    extra+=("${packages[@]}")
done
install_debian_packages setup "${APT_PACKAGES[@]}" "${extra[@]}"

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
