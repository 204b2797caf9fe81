# Sourced by tools/setup.sh and tools/build-k8s.sh: the one way this project installs Debian packages.
#
# install_debian_packages TAG PKG...  installs those of PKG... that are not installed (as root;
# without root it names them and fails). Packages with daemons (openvswitch, strongswan, docker.io,
# etcd-server, ...) must not start them in the machine's namespace on install: the benchmark starts
# its own per run. policy-rc.d says so to invoke-rc.d; ours is removed again only if we created it.

missing_debian_packages() {
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || echo "$pkg"
    done
}

install_debian_packages() {
    local tag=$1; shift
    local missing created_policy=""
    mapfile -t missing < <(missing_debian_packages "$@")
    ((${#missing[@]})) || return 0
    if [ "$(id -u)" -ne 0 ]; then
        printf '[%s] missing Debian packages: %s; run this as root (or install them) and retry\n' "$tag" "${missing[*]}" >&2
        return 1
    fi
    printf '[%s] installing Debian packages: %s\n' "$tag" "${missing[*]}" >&2
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        created_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    if [ -n "$created_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
}
