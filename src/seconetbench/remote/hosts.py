"""The lab hosts of the ssh backend: ``testbed.ssh`` checked before anything is deployed, and
what ``seconetbench hosts check`` and ``hosts install`` do on the hosts (docs/ssh.md).

Parsing (:func:`parse_ssh_testbed`) reads only the config and this machine's files (identity
files, the known_hosts file through ``ssh-keygen -F``, the user's ssh config through ``ssh -G``);
it never connects. The checks on the hosts go over one SSH master connection per host
(:class:`seconetbench.remote.ssh.SshChannel`); their pure parts (the clock offset from
timestamps, the install plan from dpkg's answer, the facts from the probe's output) are
functions of text and numbers, unit-tested with recorded output.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import select
import shlex
import shutil
import stat
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seconetbench.errors import ConfigError, SeconetError
from seconetbench.remote.ssh import SshHost, SshOptions

# Every address the testbed assigns is in the RFC 2544 benchmarking range (docs/decisions.md,
# README "Safety on a shared machine"); on the ssh backend that includes each host's address on
# the data network, which the user picks on their own lab network.
TESTBED_NETWORK = ipaddress.ip_network("198.18.0.0/15")
# An underlay_ip without a prefix length is a /24, like the netns backend's 198.18.0.0/24.
DEFAULT_UNDERLAY_PREFIXLEN = 24
# What the testbed itself assigns inside every host namespace: an underlay address or network
# there would take the traffic of these. (Sources: backends/netns.py container_ip,
# tunnels/_common.py transfer networks 198.18.20-23.0/24, filters/_common.py EXTRA_*;
# tests/unit/test_ssh_config.py checks these against the modules.)
INNER_NETWORKS = {
    ipaddress.ip_network("198.19.0.0/16"): "the containers' subnets 198.19.<h>.0/24",
    ipaddress.ip_network("198.18.20.0/22"): "the tunnels' transfer networks 198.18.20.0/24 to 198.18.23.0/24",
    ipaddress.ip_network("198.18.128.0/17"): "the filters' never-assigned extra-rule addresses",
}
STRICT_CHOICES = ("yes", "accept-new")
DEFAULT_MAX_CLOCK_OFFSET_MS = 0.1
HOST_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,15}$")
IFNAME = re.compile(r"^[^\s/:]{1,15}$")  # what the kernel accepts as an interface name (IFNAMSIZ - 1)


# ---------------------------------------------------------------------------------- parsing
def parse_ssh_testbed(testbed: dict[str, Any], hosts_key: str = "testbed.ssh.hosts") -> tuple[list[SshHost], SshOptions]:
    """The hosts and SSH options of a config's ``testbed`` section (``testbed.ssh``), or a
    ConfigError naming the key path (``testbed.ssh.hosts[1].identity_file``) and the fix.
    *hosts_key* is where the host list stands in the config (a group's: testbed.ssh.groups[1]).

    Checks what would otherwise fail at deploy time, on one host, half-way: identity files
    exist and are private, host keys are known (strict checking yes), names, SSH endpoints and
    underlay addresses are unique, and every underlay address is in 198.18.0.0/15, on one
    network with the others, clear of the testbed's own inner networks."""
    section = testbed.get("ssh")
    if not isinstance(section, dict):
        raise ConfigError("testbed.ssh", "testbed.backend is ssh, and testbed.ssh is missing; add it with its "
                          "hosts list (see config/README.md, docs/ssh.md)")
    entries = section.get("hosts")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(hosts_key, "list the lab hosts here, each with name, address, user, "
                          "identity_file, underlay_dev and underlay_ip (see config/README.md)")
    options = _parse_options(section)
    hosts = [_parse_host(f"{hosts_key}[{i}]", entry) for i, entry in enumerate(entries)]
    _check_unique(hosts, hosts_key)
    _check_underlay_network(hosts, hosts_key)
    for index, host in enumerate(hosts):
        if host.proxy_command and options.jump_host:
            raise ConfigError(f"{hosts_key}[{index}].proxy_command",
                              "is set together with testbed.ssh.jump_host, and ssh uses only one of them; remove "
                              "one (a ProxyCommand can itself go through the bastion: ssh -W %h:%p BASTION)")
    if options.strict_host_key_checking == "yes":
        for index, host in enumerate(hosts):
            _check_known_host(f"{hosts_key}[{index}].address", host.address, host.port,
                              options.known_hosts_file, host.name)
        if options.jump_host:
            address, port = _jump_endpoint(options.jump_host)
            _check_known_host("testbed.ssh.jump_host", address, port, options.known_hosts_file, "the jump host")
    return hosts, options


def max_clock_offset_ms(testbed: dict[str, Any]) -> float:
    """The bound on the clock offset between two hosts above which one-way delays are refused."""
    return float((testbed.get("ssh") or {}).get("max_clock_offset_ms", DEFAULT_MAX_CLOCK_OFFSET_MS))


def _parse_options(section: dict[str, Any]) -> SshOptions:
    strict = section.get("strict_host_key_checking", "yes")
    # YAML 1.1 reads an unquoted yes/no as a boolean
    strict = {True: "yes", False: "no"}.get(strict, strict) if isinstance(strict, bool) else strict
    if strict not in STRICT_CHOICES:
        raise ConfigError("testbed.ssh.strict_host_key_checking",
                          f"value {strict!r} is refused: without host key checking, a changed or spoofed host "
                          "would receive the benchmark's root commands unnoticed; use yes (keys already in "
                          "known_hosts_file) or accept-new (first connection records the key, a changed key is "
                          "still refused)")
    known_hosts = os.path.expanduser(str(section.get("known_hosts_file", "~/.ssh/known_hosts")))
    if strict == "yes" and not os.path.isfile(known_hosts):
        raise ConfigError("testbed.ssh.known_hosts_file",
                          f"file '{known_hosts}' does not exist, and strict_host_key_checking is yes; add the "
                          "hosts' keys to it (ssh-keyscan -p PORT ADDRESS >> FILE, after comparing the "
                          "fingerprints with the hosts' own: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), "
                          "or use strict_host_key_checking: accept-new")
    if strict == "accept-new" and not os.path.isdir(os.path.dirname(known_hosts) or "."):
        raise ConfigError("testbed.ssh.known_hosts_file",
                          f"the directory of '{known_hosts}' does not exist, so the accepted keys cannot be "
                          "recorded; create it or name a file in an existing directory")
    jump = section.get("jump_host")
    timeout = section.get("connect_timeout_s", 10.0)
    return SshOptions(strict_host_key_checking=strict, known_hosts_file=known_hosts,
                      jump_host=str(jump) if jump else None, connect_timeout_s=float(timeout))


def _parse_host(key: str, entry: Any) -> SshHost:
    if not isinstance(entry, dict):
        raise ConfigError(key, "each host is a mapping with name, address, user, identity_file, underlay_dev "
                          "and underlay_ip")
    for required in ("name", "address", "underlay_dev", "underlay_ip"):
        if not entry.get(required):
            raise ConfigError(f"{key}.{required}", f"is missing; add it ({_FIELD_HELP[required]})")
    name = str(entry["name"])
    if not HOST_NAME.match(name):
        raise ConfigError(f"{key}.name", f"value {name!r} is not a host name the testbed can use in its object "
                          "names; use 1-16 lower-case letters, digits and '-', starting with a letter or digit")
    port = entry.get("port", 22)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ConfigError(f"{key}.port", f"value {port!r} is not a TCP port; use 1 to 65535 (22 by default)")
    identity = entry.get("identity_file")
    if identity:
        identity = _check_identity_file(f"{key}.identity_file", str(identity))
    dev = str(entry["underlay_dev"])
    if not IFNAME.match(dev):
        raise ConfigError(f"{key}.underlay_dev", f"value {dev!r} is not an interface name (1-15 characters, no "
                          "'/', ':' or blanks); name the host's interface on the data network, e.g. eth1")
    underlay_ip = str(entry["underlay_ip"]).strip()
    _check_underlay_ip(f"{key}.underlay_ip", underlay_ip)
    proxy = entry.get("proxy_command")
    return SshHost(name=name, address=str(entry["address"]), port=port, user=str(entry.get("user") or "root"),
                   identity_file=identity or None, underlay_dev=dev, underlay_ip=underlay_ip,
                   proxy_command=str(proxy) if proxy else None)


_FIELD_HELP = {
    "name": "a short name of the host, e.g. h1, used in messages and in the names of what the testbed creates",
    "address": "the host's address or name on the control network, where its sshd listens",
    "underlay_dev": "the host's interface on the data network the tunnels run over, e.g. eth1",
    "underlay_ip": "a free address on the data network in 198.18.0.0/15, e.g. 198.18.0.1 or 198.18.0.1/24",
}


def _check_identity_file(key: str, value: str) -> str:
    path = os.path.expanduser(value)
    if not os.path.isfile(path):
        raise ConfigError(key, f"file '{path}' does not exist; name the private key that logs in to this host "
                          "(its public key in the host's ~/.ssh/authorized_keys), or leave the key out to use "
                          "ssh-agent and ~/.ssh/config")
    if not os.access(path, os.R_OK):
        raise ConfigError(key, f"file '{path}' is not readable by this user (uid {os.getuid()}); run as its owner "
                          "or fix its owner")
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        raise ConfigError(key, f"file '{path}' is accessible to others (mode {mode:04o}), and ssh ignores such "
                          f"private keys; chmod 600 '{path}'")
    return path


def underlay_interface(value: str) -> ipaddress.IPv4Interface:
    """``198.18.0.1`` or ``198.18.0.1/24`` as an interface (a plain address is a /24)."""
    text = value if "/" in value else f"{value}/{DEFAULT_UNDERLAY_PREFIXLEN}"
    return ipaddress.IPv4Interface(text)


def _check_underlay_ip(key: str, value: str) -> None:
    try:
        interface = underlay_interface(value)
    except ValueError:
        raise ConfigError(key, f"value {value!r} is not an IPv4 address (or address/prefix length); use e.g. "
                          "198.18.0.1 or 198.18.0.1/24") from None
    if interface.ip not in TESTBED_NETWORK or not interface.network.subnet_of(TESTBED_NETWORK):
        raise ConfigError(key, f"value {value!r} is outside 198.18.0.0/15: the address on the data network is "
                          "yours to pick on your lab network, but every address the testbed assigns must be in "
                          "198.18.0.0/15 (the RFC 2544 benchmarking range, docs/decisions.md); pick a free one "
                          "there, e.g. 198.18.0.1/24, 198.18.0.2/24, ...")
    if interface.ip == interface.network.network_address or interface.ip == interface.network.broadcast_address:
        raise ConfigError(key, f"value {value!r} is the network or broadcast address of {interface.network}; "
                          "use a host address")
    for network, what in INNER_NETWORKS.items():
        if interface.network.overlaps(network):
            raise ConfigError(key, f"value {value!r}: its network {interface.network} overlaps {network}, "
                              f"{what} inside every host; pick the data network elsewhere in 198.18.0.0/15, "
                              "e.g. 198.18.0.0/24 as the netns backend does")


def _check_unique(hosts: list[SshHost], hosts_key: str) -> None:
    seen: dict[str, dict[Any, int]] = {"name": {}, "address": {}, "underlay_ip": {}}
    for index, host in enumerate(hosts):
        values = {"name": host.name, "address": (host.address, host.port),
                  "underlay_ip": str(underlay_interface(host.underlay_ip).ip)}
        for field, value in values.items():
            first = seen[field].setdefault(value, index)
            if first != index:
                shown = f"{value[0]} port {value[1]}" if field == "address" else value
                raise ConfigError(f"{hosts_key}[{index}].{field}",
                                  f"{shown} is also {hosts_key}[{first}]'s; each host needs its own "
                                  f"{'SSH address and port' if field == 'address' else field}")


def _check_underlay_network(hosts: list[SshHost], hosts_key: str) -> None:
    first = underlay_interface(hosts[0].underlay_ip).network
    for index, host in enumerate(hosts[1:], start=1):
        network = underlay_interface(host.underlay_ip).network
        if network != first:
            raise ConfigError(f"{hosts_key}[{index}].underlay_ip",
                              f"{host.underlay_ip} is on {network}, {hosts_key}[0] on {first}; the hosts "
                              "reach each other directly on one data network: use addresses of one subnet "
                              "with one prefix length")


def _check_known_host(key: str, address: str, port: int, known_hosts: str, who: str) -> None:
    """Is the host key of *address*:*port* in *known_hosts*, as ssh would look it up (``ssh -G``
    resolves aliases of the user's ssh config; ``ssh-keygen -F`` reads hashed entries and the
    ``[address]:port`` form of other ports)?"""
    hostname, port = _ssh_resolved(key, address, port)
    lookup = hostname if port == 22 else f"[{hostname}]:{port}"
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        raise ConfigError(key, "ssh-keygen is not installed here, so the host keys cannot be checked; install "
                          "openssh-client (the ssh backend needs its ssh too)")
    found = subprocess.run([keygen, "-F", lookup, "-f", known_hosts], capture_output=True, text=True, check=False,
                           timeout=30)
    if found.returncode != 0 or not found.stdout.strip():
        raise ConfigError(key, f"{who}'s host key ({lookup}) is not in {known_hosts}, and "
                          "strict_host_key_checking is yes; add it after comparing its fingerprint with the "
                          f"host's own (ssh-keyscan -p {port} {hostname} >> {known_hosts}; ssh-keygen -lf "
                          "/etc/ssh/ssh_host_ed25519_key.pub on the host), or use strict_host_key_checking: "
                          "accept-new")


def _ssh_resolved(key: str, address: str, port: int) -> tuple[str, int]:
    """The host name and port ssh connects to for *address* (its ``HostKeyAlias`` when the user's
    ssh config sets one: that is the name ssh looks up in known_hosts)."""
    ssh = shutil.which("ssh")
    if ssh is None:
        raise ConfigError(key, "ssh is not installed here; install openssh-client")
    result = subprocess.run([ssh, "-G", "-p", str(port), address], capture_output=True, text=True, check=False,
                            timeout=30)
    if result.returncode != 0:
        raise ConfigError(key, f"ssh -G {address} failed: {result.stderr.strip()}; check the address and "
                          "~/.ssh/config")
    settings = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    return settings.get("hostkeyalias") or settings.get("hostname", address), int(settings.get("port", port))


def _jump_endpoint(jump: str) -> tuple[str, int]:
    """``[user@]host[:port]`` (ssh -J) -> (host, port)."""
    endpoint = jump.split(",")[-1].rsplit("@", 1)[-1]  # the last hop is the one that reaches the hosts
    if endpoint.startswith("["):
        host, _, rest = endpoint[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 22
    host, _, port = endpoint.partition(":")
    return host, int(port) if port.isdigit() else 22


# ---------------------------------------------------------------- what the sweep asks of them
def hosts_needed(sweep: dict[str, Any]) -> int:
    """How many hosts the sweep's setups use at most: sweep.multi.hosts, else 1."""
    multi = sweep.get("multi")
    return int(multi.get("hosts", 2)) if multi else 1


def check_sweep_fits(hosts: list[SshHost], sweep: dict[str, Any], hosts_key: str = "testbed.ssh.hosts") -> None:
    """Refuse a host list (at *hosts_key*) the validated *sweep* cannot run on."""
    needed = hosts_needed(sweep)
    if len(hosts) < needed:
        raise ConfigError(hosts_key, f"lists {len(hosts)} host(s), and the multi-host setups need "
                          f"{needed} (sweep.multi.hosts); add {needed - len(hosts)} more host(s) or lower "
                          "sweep.multi.hosts")
    multi = sweep.get("multi")
    if multi and multi.get("solution") == "routing":
        from seconetbench.solutions.routing import GATEWAY

        for index, host in enumerate(hosts):
            if str(underlay_interface(host.underlay_ip).ip) == GATEWAY:
                raise ConfigError(f"{hosts_key}[{index}].underlay_ip",
                                  f"{GATEWAY} is the routing solution's gateway on every host (sweep.multi."
                                  "solution is routing), so the other hosts would deliver this host's underlay "
                                  "traffic to themselves; use another address, e.g. 198.18.0.1/24")


# Debian package of every binary a technology or workload runs on a host (tools/setup.sh
# installs the same ones here). tests/unit/test_ssh_config.py fails when a requirement of a
# technology or workload has no entry.
BINARY_PACKAGES = {
    "ip": "iproute2", "bridge": "iproute2", "tc": "iproute2", "ss": "iproute2",
    "ping": "iputils-ping", "iperf3": "iperf3", "tcpdump": "tcpdump", "ethtool": "ethtool",
    "ITGSend": "d-itg", "ITGRecv": "d-itg", "ITGDec": "d-itg",
    "iptables-restore": "iptables", "nft": "nftables", "nsenter": "util-linux",
    "wg": "wireguard-tools", "wireguard-go": "wireguard-go", "openvpn": "openvpn", "tincd": "tinc",
    "openssl": "openssl", "/usr/lib/ipsec/charon": "strongswan-charon", "swanctl": "strongswan-swanctl",
    "clang": "clang", "bpftool": "bpftool",
    "ovsdb-tool": "openvswitch-common", "ovsdb-server": "openvswitch-common", "ovs-appctl": "openvswitch-common",
    "ovs-ofctl": "openvswitch-common", "ovs-vsctl": "openvswitch-switch", "ovs-vswitchd": "openvswitch-switch",
    "python3": "python3", "conntrack": "conntrack",
}
# What every host needs whatever the sweep: namespaces (ip) and the host agent (python3 with psutil).
BASE_BINARIES = ("ip", "python3")
BASE_PACKAGES = ("iproute2", "python3", "python3-psutil")


@dataclass(frozen=True)
class HostNeeds:
    """What the sweep's setups and workloads need on every host."""

    binaries: tuple[str, ...]  # looked up with `command -v` (a path for the ones not on PATH)
    packages: tuple[str, ...]  # Debian packages that provide them (and headers, plugins, psutil)
    unknown: tuple[str, ...]  # binaries without a known Debian package (installed by hand)


def host_needs(config: dict[str, Any]) -> HostNeeds:
    """The binaries and Debian packages every host needs for *config*'s sweep: the requirements
    (technology.Requirement) of each setup's technologies, in every implementation a setup may
    resolve to there (its probes run on the host, so `auto` may become either), and the tools of
    its workloads."""
    from seconetbench import preflight
    from seconetbench.sweep import candidate_setups, workload_specs
    from seconetbench.workloads import WORKLOADS

    binaries = dict.fromkeys(BASE_BINARIES)
    packages = dict.fromkeys(BASE_PACKAGES)
    for setup in candidate_setups(config):
        for tech in preflight.setup_technologies(setup):
            pinned = tech.requested_implementation
            for implementation in tech.implementations if pinned == "auto" else (pinned,):
                tech.requested_implementation = implementation  # pinned: no local probe decides
                for requirement in tech.requires(setup):
                    if requirement.kind == "binary":
                        binaries[requirement.name] = None
                    elif requirement.kind in ("header", "plugin"):  # *why* names the Debian package
                        packages[requirement.why] = None
    for spec in workload_specs(config):
        workload = WORKLOADS.get(spec.kind)(spec)
        generator = spec.params.get("generator", "auto")
        # throughput's auto takes uperf where installed (not packaged in Debian), else iperf3
        tools = workload.tools or (("iperf3",) if generator == "auto" else (generator,))
        binaries.update(dict.fromkeys(tools))
    unknown = [b for b in binaries if b not in BINARY_PACKAGES]
    packages.update(dict.fromkeys(BINARY_PACKAGES[b] for b in binaries if b in BINARY_PACKAGES))
    return HostNeeds(tuple(binaries), tuple(packages), tuple(unknown))


# ------------------------------------------------------------------------- install plan
def dpkg_query_argv(packages: Sequence[str]) -> list[str]:
    """What asks dpkg which of *packages* are installed (unknown ones go to stderr, exit 1)."""
    return ["dpkg-query", "-W", "-f=${Package}\\t${Status}\\n", *packages]


def missing_packages(wanted: Sequence[str], dpkg_output: str) -> list[str]:
    """Which of *wanted* dpkg does not list as "install ok installed" in *dpkg_output* (the
    output of :func:`dpkg_query_argv`), in *wanted*'s order."""
    installed = set()
    for line in dpkg_output.splitlines():
        package, _, status = line.partition("\t")
        if status.strip() == "install ok installed":
            installed.add(package.split(":")[0])  # multi-arch names carry :amd64
    return [p for p in wanted if p not in installed]


# Runs as root on the host with the packages as arguments. Daemons of packages (openvswitch,
# strongswan) must not start in the host's own namespace: policy-rc.d says so to invoke-rc.d
# for the install, as tools/debian.sh does here (removed again only if we created it). The
# host's own apt sources name the mirror.
APT_INSTALL = r'''set -e
created=
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && created=1
fi
trap '[ -z "$created" ] || rm -f /usr/sbin/policy-rc.d' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "$@"'''


def apt_install_argv(packages: Sequence[str]) -> list[str]:
    return ["sh", "-c", APT_INSTALL, "seconetbench-hosts-install", *packages]


# -------------------------------------------------------------------------------- clocks
@dataclass(frozen=True)
class ClockSample:
    """One exchange: this machine's clock before asking, the host's answer, this machine's
    clock when the answer arrived (nanoseconds since the epoch)."""

    local_sent_ns: int
    remote_ns: int
    local_received_ns: int


@dataclass(frozen=True)
class ClockOffset:
    """The host's clock minus this machine's (NTP-style), from the sample of shortest round trip:
    the host read its clock somewhere within that round trip, so the offset is known to within
    half of it."""

    offset_ms: float
    uncertainty_ms: float
    round_trip_ms: float
    samples: int

    def to_dict(self) -> dict[str, Any]:
        return {"offset_ms": round(self.offset_ms, 4), "uncertainty_ms": round(self.uncertainty_ms, 4),
                "round_trip_ms": round(self.round_trip_ms, 4), "samples": self.samples}


def clock_offset(samples: Iterable[ClockSample]) -> ClockOffset:
    samples = list(samples)
    if not samples:
        raise SeconetError("no clock samples: the host answered none of the time requests")
    best = min(samples, key=lambda s: s.local_received_ns - s.local_sent_ns)
    round_trip = best.local_received_ns - best.local_sent_ns
    if round_trip < 0:
        raise SeconetError(f"a clock sample ends before it starts ({best}): this machine's clock stepped back")
    # twice the offset, in integers: nanoseconds since the epoch exceed a double's exact range
    twice_offset_ns = 2 * best.remote_ns - best.local_sent_ns - best.local_received_ns
    return ClockOffset(offset_ms=twice_offset_ns / 2e6, uncertainty_ms=round_trip / 2e6,
                       round_trip_ms=round_trip / 1e6, samples=len(samples))


def pair_verdict(first: str, a: ClockOffset, second: str, b: ClockOffset, bound_ms: float,
                 chrony_a: dict[str, Any] | None = None, chrony_b: dict[str, Any] | None = None) -> dict[str, Any]:
    """How far apart the clocks of two hosts are (both measured from this machine) against the
    bound: within (certainly), exceeds (certainly), or unresolved (the measurement's uncertainty
    straddles the bound). An unresolved pair is within when both hosts' chrony bounds its error
    against one and the same reference (:func:`chrony_error_bound_ms`) tightly enough. One-way
    delays between them are refused unless within."""
    offset = b.offset_ms - a.offset_ms
    uncertainty = a.uncertainty_ms + b.uncertainty_ms
    evidence = "measured over SSH"
    if abs(offset) + uncertainty <= bound_ms:
        verdict = "within"
    elif abs(offset) - uncertainty > bound_ms:
        verdict = "exceeds"
    else:
        verdict = "unresolved"
        chrony_bound = _common_reference_bound_ms(chrony_a, chrony_b)
        if chrony_bound is not None and chrony_bound <= bound_ms:
            verdict = "within"
            evidence = f"chrony: both synchronised to one reference, clocks at most {chrony_bound:.4f} ms apart"
    if verdict == "within":
        consequence = "one-way delay figures between them are accepted"
    elif verdict == "exceeds":
        consequence = ("one-way delay figures between them will be refused; synchronise the clocks "
                       "(chrony or PTP) and check again")
    else:
        consequence = (f"the measurement (±{uncertainty:.3f} ms over SSH) cannot show the offset is within "
                       f"{bound_ms} ms, and chrony does not bound it either, so one-way delay figures between them "
                       "will be refused; synchronise both hosts to one chrony or PTP reference on the lab "
                       "network, or raise testbed.ssh.max_clock_offset_ms")
    return {"hosts": [first, second], "offset_ms": round(offset, 4), "uncertainty_ms": round(uncertainty, 4),
            "bound_ms": bound_ms, "verdict": verdict, "evidence": evidence, "consequence": consequence}


def chrony_error_bound_ms(tracking: dict[str, str]) -> float | None:
    """The bound chrony gives on a clock's error against its reference (chronyc(1), tracking:
    |System time| + Root dispersion + Root delay / 2), from ``chronyc tracking``'s fields; None
    when chrony is not synchronised or a field is missing."""
    if tracking.get("Leap status") != "Normal":
        return None
    try:
        values = [float(tracking[key].split()[0]) for key in ("System time", "Root dispersion", "Root delay")]
    except (KeyError, ValueError, IndexError):
        return None
    system, dispersion, delay = values
    return (abs(system) + dispersion + delay / 2) * 1e3


def _common_reference_bound_ms(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
    # errors against one reference add up; against two, each reference's own error would too
    if not a or not b or a.get("Reference ID") != b.get("Reference ID"):
        return None
    first, second = chrony_error_bound_ms(a), chrony_error_bound_ms(b)
    return None if first is None or second is None else first + second


# One line per request on stdin: the host's clock as seconds.nanoseconds. python3 answers in
# microseconds; date forks for every answer, which widens the round trip (the uncertainty).
CLOCK_ANSWER_PYTHON = ("import sys,time\nfor _ in sys.stdin:\n t=time.time_ns()\n"
                       " sys.stdout.write('%d.%09d\\n'%divmod(t,10**9)); sys.stdout.flush()")
CLOCK_ANSWER_DATE = "while read -r _; do date +%s.%N; done"
CLOCK_SAMPLES = 16


def parse_clock_answer(line: str) -> int:
    """``1764763200.123456789`` -> nanoseconds since the epoch (exactly)."""
    seconds, _, fraction = line.strip().partition(".")
    if not seconds.isdigit() or not fraction.isdigit():
        raise SeconetError(f"the host's clock answer {line.strip()!r} is not seconds.nanoseconds")
    return int(seconds) * 10**9 + int(fraction.ljust(9, "0")[:9])


def sample_clock(argv: Sequence[str], count: int = CLOCK_SAMPLES, timeout_s: float = 10.0,
                 clock: Callable[[], int] = time.time_ns) -> list[ClockSample]:
    """Ask the process *argv* (over one SSH channel: :data:`CLOCK_ANSWER_PYTHON` or
    :data:`CLOCK_ANSWER_DATE` on the host) *count* times for its clock."""
    process = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def ended() -> SeconetError:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout_s)
        said = process.stderr.read().decode(errors="replace").strip()
        return SeconetError(f"the clock probe ended (exit {process.returncode}): {said or 'it said nothing'}")

    samples = []
    try:
        pending = b""
        for _ in range(count):
            sent = clock()
            try:
                process.stdin.write(b"\n")
                process.stdin.flush()
            except BrokenPipeError:
                raise ended() from None
            while b"\n" not in pending:
                ready, _, _ = select.select([process.stdout], [], [], timeout_s)
                if not ready:
                    raise SeconetError(f"no clock answer within {timeout_s} s")
                chunk = os.read(process.stdout.fileno(), 4096)
                if not chunk:
                    raise ended()
                pending += chunk
            received = clock()
            line, _, pending = pending.partition(b"\n")
            samples.append(ClockSample(sent, parse_clock_answer(line.decode()), received))
    finally:
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
    return samples


# --------------------------------------------------------------------------- host facts
def facts_script(dev: str, binaries: Sequence[str], packages: Sequence[str]) -> str:
    """One shell command that reports everything `hosts check` asks of a host, line by line
    (`key=value`; parsed by :func:`parse_facts`)."""
    quoted = " ".join(shlex.quote(b) for b in binaries)
    return "\n".join([
        'echo "uid=$(id -u)"', 'echo "kernel=$(uname -r)"',
        f'for t in {quoted}; do echo "tool $t=$(command -v "$t")"; done',
        f'echo "underlay=$(ip -o link show dev {shlex.quote(dev)} 2>&1)"',
        f"{shlex.join(dpkg_query_argv(packages))} 2>/dev/null | sed 's/^/dpkg /'",
        "command -v chronyc >/dev/null && chronyc -n tracking 2>&1 | sed 's/^/chrony /'",
        "command -v timedatectl >/dev/null && timedatectl show 2>&1 | sed 's/^/timedatectl /'",
        'for p in ptp4l phc2sys; do pgrep -x "$p" >/dev/null && echo "ptp $p=running"; done',
        # the host agent's one compiled dependency: importable by the python3 it runs with?
        "python3 -c 'import psutil' 2>/dev/null && echo psutil=yes || echo psutil=no",
        "true",
    ])


def parse_facts(text: str, dev: str, wanted_packages: Sequence[str]) -> dict[str, Any]:
    """The facts of :func:`facts_script`'s output, as JSON-ready data."""
    facts: dict[str, Any] = {"uid": None, "kernel": None, "tools": {}, "underlay": {"dev": dev, "exists": False,
                             "mtu": None, "error": None}, "clock_sync": {}, "python3_imports_psutil": None}
    dpkg_lines, chrony, timedatectl, ptp = [], {}, {}, {}
    for line in text.splitlines():
        if line.startswith("uid="):
            facts["uid"] = int(line[4:]) if line[4:].isdigit() else None
        elif line.startswith("kernel="):
            facts["kernel"] = line[7:]
        elif line.startswith("tool "):
            name, _, path = line[5:].partition("=")
            facts["tools"][name] = path or None
        elif line.startswith("underlay="):
            mtu = re.search(r"\bmtu (\d+)", line)
            if mtu:
                facts["underlay"].update(exists=True, mtu=int(mtu.group(1)))
            else:
                facts["underlay"]["error"] = line[9:].strip() or "no such device"
        elif line.startswith("dpkg "):
            dpkg_lines.append(line[5:])
        elif line.startswith("chrony "):
            key, _, value = line[7:].partition(":")
            if value:
                chrony[key.strip()] = value.strip()
        elif line.startswith("timedatectl "):
            key, _, value = line[12:].partition("=")
            if key in ("NTP", "NTPSynchronized", "TimeUSec"):
                timedatectl[key] = value
        elif line.startswith("psutil="):
            facts["python3_imports_psutil"] = line == "psutil=yes"
        elif line.startswith("ptp "):
            name, _, state = line[4:].partition("=")
            ptp[name] = state
    facts["missing_packages"] = missing_packages(wanted_packages, "\n".join(dpkg_lines))
    if chrony:
        kept = {k: chrony[k] for k in ("Reference ID", "Stratum", "System time", "Root delay", "Root dispersion",
                                       "Leap status") if k in chrony}
        if kept:  # not "506 Cannot talk to daemon"
            facts["clock_sync"]["chrony"] = {**kept, "error_bound_ms": chrony_error_bound_ms(chrony)}
    if timedatectl:
        facts["clock_sync"]["timedatectl"] = timedatectl
    if ptp:
        facts["clock_sync"]["ptp"] = ptp
    return facts


def host_problems(host: SshHost, facts: dict[str, Any], needs: HostNeeds) -> list[str]:
    """What keeps the backend from using the host, each with the fix. A missing package counts
    only where no tool check stands for it (headers, strongSwan plugins): a tool that is present
    may come from elsewhere than Debian's package."""
    problems = []
    if facts["uid"] != 0:
        problems.append(f"user {host.user} is not root (id -u says {facts['uid']}); the backend creates network "
                        "namespaces: log in as root (testbed.ssh.hosts[].user)")
    missing = sorted(name for name, path in facts["tools"].items() if path is None)
    if missing:
        problems.append(f"missing tools: {', '.join(missing)}; run seconetbench hosts install --config F")
    if facts["tools"].get("python3") and facts["python3_imports_psutil"] is False:
        problems.append("python3 cannot import psutil, which the host agent needs; run seconetbench hosts install "
                        "--config F (Debian package python3-psutil for the system's python3)")
    behind_tools = {BINARY_PACKAGES[b] for b in needs.binaries if b in BINARY_PACKAGES} | {"python3-psutil"}
    unchecked = [p for p in facts["missing_packages"] if p not in behind_tools]
    if unchecked:
        problems.append(f"missing Debian packages: {', '.join(unchecked)}; run seconetbench hosts install --config F")
    from seconetbench.backends.base import UNDERLAY_MTU

    underlay = facts["underlay"]
    if not underlay["exists"]:
        problems.append(f"underlay device {host.underlay_dev} does not exist ({underlay['error']}); name the "
                        "host's interface on the data network in testbed.ssh.hosts[].underlay_dev")
    elif underlay["mtu"] < UNDERLAY_MTU:
        problems.append(f"underlay device {host.underlay_dev} has MTU {underlay['mtu']}, and the testbed's underlay "
                        f"needs {UNDERLAY_MTU} (its macvlan child gets that MTU, the tunnels count on it); raise the "
                        "device's MTU or use another device")
    return problems


# ------------------------------------------------------------------------------ commands
def _channel(host: SshHost, options: SshOptions, control_dir: Path):
    from seconetbench.remote.ssh import SshChannel

    return SshChannel(host, options, control_dir)


def check_hosts(config: dict[str, Any], control_dir: Path,
                progress: Callable[[str], None] = lambda line: None, clocks: bool = True) -> dict[str, Any]:
    """What `seconetbench hosts check` reports: per host its reachability, root, kernel, tools,
    packages, underlay device and MTU, clock offset from this machine and clock sync state; per
    host pair the clock offset against testbed.ssh.max_clock_offset_ms. With testbed.ssh.groups,
    every group's hosts (each report names its ``group``), pairs within a group. Without
    *clocks*, no clock offsets (a testbed group's health check: its deploys measure them)."""
    grouped = _per_group(config, lambda cfg: check_hosts(cfg, control_dir, progress, clocks))
    if grouped is not None:
        return {**grouped, "pairs": [p for r in grouped.pop("reports") for p in r["pairs"]],
                "max_clock_offset_ms": max_clock_offset_ms(config["testbed"])}
    hosts, options = parse_ssh_testbed(config["testbed"])
    bound = max_clock_offset_ms(config["testbed"])
    needs = host_needs(config)
    reports, offsets = [], {}
    for host in hosts:
        report: dict[str, Any] = {"name": host.name, "address": host.address, "port": host.port,
                                  "reachable": False, "clock": None, "problems": []}
        progress(f"{host.name} ({host.user}@{host.address}:{host.port}): connecting")
        channel = _channel(host, options, control_dir)
        try:
            channel.open()
            report["reachable"] = True
            script = facts_script(host.underlay_dev, needs.binaries, needs.packages)
            facts = parse_facts(channel.run(["sh", "-c", script]).stdout, host.underlay_dev, needs.packages)
            report.update(facts)
            report["problems"] = host_problems(host, facts, needs)
            if clocks:
                progress(f"{host.name}: measuring its clock offset ({CLOCK_SAMPLES} exchanges over one channel)")
                python = bool(facts["tools"].get("python3"))
                remote = ["python3", "-u", "-c", CLOCK_ANSWER_PYTHON] if python else ["sh", "-c", CLOCK_ANSWER_DATE]
                offsets[host.name] = clock_offset(sample_clock(channel.argv(remote)))
                report["clock"] = {**offsets[host.name].to_dict(), "answered_by": "python3" if python else "date"}
        except SeconetError as exc:  # HostError, ToolFailed and the clock's errors name the cause
            report["problems"].append(str(exc))
        finally:
            channel.close()
        report["ok"] = not report["problems"]
        progress(f"{host.name}: " + ("ok" if report["ok"] else "; ".join(report["problems"])))
        reports.append(report)
    chrony = {r["name"]: r.get("clock_sync", {}).get("chrony") for r in reports}
    pairs = [pair_verdict(a.name, offsets[a.name], b.name, offsets[b.name], bound, chrony[a.name], chrony[b.name])
             for i, a in enumerate(hosts) for b in hosts[i + 1:] if a.name in offsets and b.name in offsets]
    return {"hosts": reports, "pairs": pairs, "max_clock_offset_ms": bound, "unknown_binaries": list(needs.unknown),
            "ok": all(r["ok"] for r in reports)}


def install_hosts(config: dict[str, Any], control_dir: Path,
                  progress: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """What `seconetbench hosts install` does: on each host, ask dpkg which of the sweep's
    Debian packages are missing and apt-get install only those (nothing when none is). With
    testbed.ssh.groups, on every group's hosts."""
    grouped = _per_group(config, lambda cfg: install_hosts(cfg, control_dir, progress))
    if grouped is not None:
        grouped.pop("reports")
        return {**grouped, "packages": list(host_needs(config).packages)}
    hosts, options = parse_ssh_testbed(config["testbed"])
    needs = host_needs(config)
    results = []
    for host in hosts:
        result: dict[str, Any] = {"name": host.name, "address": host.address, "installed": [], "error": None}
        channel = _channel(host, options, control_dir)
        try:
            channel.open()
            asked = channel.run(dpkg_query_argv(needs.packages), check=False)
            missing = missing_packages(needs.packages, asked.stdout)
            if not missing:
                progress(f"{host.name}: all {len(needs.packages)} packages installed")
            else:
                progress(f"{host.name}: installing {len(missing)} package(s): {' '.join(missing)}")
                channel.run(apt_install_argv(missing), timeout=1800)
                still = missing_packages(missing, channel.run(dpkg_query_argv(missing), check=False).stdout)
                if still:
                    raise SeconetError(f"apt-get finished, and dpkg still lacks {' '.join(still)}")
                result["installed"] = missing
                progress(f"{host.name}: installed")
        except SeconetError as exc:  # HostError, ToolFailed: they name the host and the cause
            result["error"] = str(exc)
            progress(f"{host.name}: FAILED: {exc}")
        finally:
            channel.close()
        results.append(result)
    return {"hosts": results, "packages": list(needs.packages), "unknown_binaries": list(needs.unknown),
            "ok": all(r["error"] is None for r in results)}


def _per_group(config: dict[str, Any], command: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any] | None:
    """*command* run on each testbed group's config (testbed.ssh.groups), its host reports
    merged, each naming its group; None when the config has one group (run *command* on it)."""
    from seconetbench.testbed.groups import testbed_groups

    groups = testbed_groups(config)
    if len(groups) == 1:
        return None
    reports = [command({**config, "testbed": group.testbed}) for group in groups]
    return {"hosts": [{**host, "group": group.name} for group, report in zip(groups, reports, strict=True)
                      for host in report["hosts"]],
            "unknown_binaries": reports[0]["unknown_binaries"], "ok": all(r["ok"] for r in reports),
            "reports": reports}
