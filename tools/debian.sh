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

# The machine's own apt sources name the mirror (a local mirror or proxy included): nothing in this
# repository names a registry host. The same reading as seconetbench/engines/apt_sources.py.
#
# debian_apt_entries  prints "URI SUITE" for every binary (deb) entry: one-line entries of
# sources.list and sources.list.d/*.list, deb822 stanzas of sources.list.d/*.sources (URIs:),
# in apt's reading order. APT_DIR overrides /etc/apt (the unit test reads sample files).
debian_apt_entries() {
    local apt=${APT_DIR:-/etc/apt} f
    for f in "$apt/sources.list" "$apt"/sources.list.d/*; do
        [ -f "$f" ] || continue
        case $f in
            *.list) awk '{ sub(/#.*/, "") }
                         $1 == "deb" { i = 2
                                       if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                                       if (i + 1 <= NF) print $i, $(i + 1) }' "$f" ;;
            *.sources) awk 'function flush(   n, m, a, b, u, s) {
                                if (types ~ /(^| )deb( |$)/ && enabled != "no") {
                                    n = split(uris, u, " "); m = split(suites, s, " ")
                                    for (a = 1; a <= n; a++) for (b = 1; b <= m; b++) print u[a], s[b] }
                                types = uris = suites = enabled = "" }
                            /^[ \t]*$/ { flush(); next }
                            /^#/ || /^[ \t]/ { next }
                            { key = tolower($0); sub(/:.*/, "", key); value = $0; sub(/^[^:]*:[ \t]*/, "", value)
                              if (key == "types") types = value; else if (key == "uris") uris = value
                              else if (key == "suites") suites = value; else if (key == "enabled") enabled = tolower(value) }
                            END { flush() }' "$f" ;;
        esac
    done
}

# debian_mirror SUITE  prints the mirror serving Debian SUITE: $SECONETBENCH_DEBIAN_MIRROR (an
# archive mirror, so not for *-security suites), else the URI of the machine's first entry with
# SUITE; fails naming the files it read when there is none.
debian_mirror() {
    local suite=$1 uri
    if [ -n "${SECONETBENCH_DEBIAN_MIRROR:-}" ] && [[ $suite != *-security ]]; then
        echo "$SECONETBENCH_DEBIAN_MIRROR"; return 0
    fi
    uri=$(debian_apt_entries | awk -v suite="$suite" '!found && $2 == suite { print $1; found = 1 }')
    if [ -z "$uri" ]; then
        printf 'no apt source of this machine serves Debian %s (read %s/sources.list, sources.list.d/*.list, *.sources); add one, or set SECONETBENCH_DEBIAN_MIRROR\n' \
            "$suite" "${APT_DIR:-/etc/apt}" >&2
        return 1
    fi
    echo "${uri%/}"
}
