#!/usr/bin/env python3
"""Does the framework handicap a technology? Parity of each technology as seconetbench deploys
it against a minimal hand-built equivalent of the same implementation and cipher.

For every technology (single host: each solution with filter none, each filter on the bridge;
multi host: each tunnel), in one run and interleaved per round (A B, then B A: drift hits both
alike), with the same generator command lines on both sides:
  framework  the setup deployed by seconetbench (NetnsBackend.deploy, as `seconetbench deploy`),
             prefix scnpf
  by hand    the same technology built here with `ip`, iptables, nft, the daemon's own CLI and
             config files, after the recipes in ../shared/reference/; OVS as its own ovsdb-server
             and ovs-vswitchd driven by ovs-vsctl/ovs-ofctl; eBPF and tc-BPF IPIP/GRE with the
             project's own BPF objects, attached and filled with plain tc and bpftool (prefix
             scnph, addresses in 198.18.0.0/15, torn down after)
  measured   `ping -c N -i 0.05` (median RTT) and `iperf3 -c … -t 3 -l 653` (received Mbit/s),
             container 1 -> container 2, after one unrecorded warm-up of each side; iperf3's
             client and server both on CPU 0 (--cpu)
and prints per technology the median over rounds of the paired ratios framework / by hand
(targets: throughput >= 0.9, RTT <= 1.1). Takes the host lock (runner.HostLock) per technology,
as the runner does per target, so that no sweep measures at the same time. Needs root.

Usage: bench/parity.py [--only ipsec,wireguard] [--rounds 4] [--quick] [--cpu 0] [--json out.json]
       bench/parity.py --markdown out.json [more.json ...]   (the docs table of finished runs)
docs/performance.md ("Parity") has the measured table and what each difference means.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import ipaddress
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from seconetbench import bpf, config, parsers, proc
from seconetbench.backends.netns import NetnsBackend
from seconetbench.errors import SeconetError
from seconetbench.runner import HostLock, lock_path
from seconetbench.spec import SetupSpec
from seconetbench.testbed import cleanup
from seconetbench.tunnels._common import wait_for
from seconetbench.workloads.base import listening

FRAMEWORK = "scnpf"
HAND = "scnph"
PORT = 5201
TARGET_THROUGHPUT, TARGET_RTT = 0.9, 1.1
HINT = f"hand-built: see the daemons' logs in /run/seconetbench/{HAND}/logs"


# ------------------------------------------------------------------------------ helpers
def sh(*argv: str, input: str | None = None) -> str:
    result = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=120)
    if result.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def ns(netns: str, *argv: str, input: str | None = None) -> str:
    return sh(*proc.in_netns(netns, argv), input=input)


def name(suffix: str) -> str:
    return f"{HAND}-{suffix}"


def state(*parts: str) -> Path:
    path = cleanup.state_dir(HAND).joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def outside_run() -> Path:
    """A directory outside /run, for daemons that get a private /run (it would hide the state
    directory under /run/seconetbench)."""
    path = Path(tempfile.gettempdir()) / f"{HAND}-private"
    path.mkdir(exist_ok=True, mode=0o700)
    return path


def remove_hand_built() -> None:
    cleanup.remove(HAND)
    shutil.rmtree(Path(tempfile.gettempdir()) / f"{HAND}-private", ignore_errors=True)


def spawn(netns: str, label: str, argv: list[str]) -> subprocess.Popen:
    """A daemon of the hand-built setup, recorded in scnph's registry (cleanup ends it by pid)."""
    logs = state("logs")
    return proc.spawn_in(netns, argv, logs / f"{label}.out", logs / f"{label}.err", cleanup.registry(HAND))


def pings(netns: str, ip: str) -> bool:
    return subprocess.run(proc.in_netns(netns, ["ping", "-c", "1", "-W", "0.3", ip]), capture_output=True).returncode == 0


def add_namespaces(*names: str) -> None:
    """Network namespaces with lo up and IPv6 off (the testbed is IPv4 only, as the framework's)."""
    for netns in names:
        sh("ip", "netns", "add", netns)
        ns(netns, "ip", "link", "set", "lo", "up")
        ns(netns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")


@dataclass
class Pair:
    """Where the generator runs: the client's namespace, the server's namespace and address."""

    client: str
    server: str
    server_ip: str


# ------------------------------------------------------------------------------ by hand: single host
C1, C2 = "198.19.1.1", "198.19.1.2"  # the two containers of the single-host topology
GATEWAY = "198.18.1.1"  # routing: the host's address on every container veth


def single_host(solution: str) -> Pair:
    """Host namespace h1 with containers c1, c2 (interface e0) joined by *solution*."""
    host, containers = name("h1"), [name("c1"), name("c2")]
    add_namespaces(host, *containers)
    ns(host, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    if solution == "macvlan":  # bridge-mode macvlans of a veth parent in the host
        ns(host, "ip", "link", "add", name("mp"), "type", "veth", "peer", "name", name("mq"))
        for link in ("mp", "mq"):
            ns(host, "ip", "link", "set", name(link), "up")
        for i, (container, ip) in enumerate(zip(containers, (C1, C2)), 1):
            ns(host, "ip", "link", "add", name(f"m{i}"), "link", name("mp"), "type", "macvlan", "mode", "bridge")
            ns(host, "ip", "link", "set", name(f"m{i}"), "netns", container)
            ns(container, "ip", "link", "set", name(f"m{i}"), "name", name("e0"))
            ns(container, "ip", "addr", "add", f"{ip}/24", "dev", name("e0"))
            ns(container, "ip", "link", "set", name("e0"), "up")
        return Pair(containers[0], containers[1], C2)
    if solution == "bridge":
        ns(host, "ip", "link", "add", name("br1"), "type", "bridge")
        ns(host, "ip", "link", "set", name("br1"), "up")
    for i, (container, ip) in enumerate(zip(containers, (C1, C2)), 1):
        ns(host, "ip", "link", "add", name(f"v{i}"), "type", "veth", "peer", "name", name("e0"), "netns", container)
        ns(container, "ip", "link", "set", name("e0"), "up")
        if solution == "bridge":
            ns(host, "ip", "link", "set", name(f"v{i}"), "master", name("br1"), "up")
            ns(container, "ip", "addr", "add", f"{ip}/24", "dev", name("e0"))
        elif solution == "routing":  # /32 per container, the host routes between them
            ns(host, "ip", "addr", "add", f"{GATEWAY}/32", "dev", name(f"v{i}"))
            ns(host, "ip", "link", "set", name(f"v{i}"), "up")
            ns(host, "ip", "route", "add", f"{ip}/32", "dev", name(f"v{i}"))
            ns(container, "ip", "addr", "add", f"{ip}/32", "dev", name("e0"))
            ns(container, "ip", "route", "add", GATEWAY, "dev", name("e0"))
            ns(container, "ip", "route", "add", "default", "via", GATEWAY)
        else:
            raise ValueError(f"no hand-built single-host solution '{solution}'")
    return Pair(containers[0], containers[1], C2)


def filtered_bridge(kind: str) -> Pair:
    """The bridge with a stateless whitelist (c1<->c2, then drop) in the host's forward hook."""
    pair = single_host("bridge")
    host = name("h1")
    ns(host, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1")
    if kind == "iptables":
        ns(host, "iptables-restore", "--noflush", input="\n".join([
            "*filter", ":PARITY - [0:0]", "-A FORWARD -j PARITY",
            f"-A PARITY -s {C1}/32 -d {C2}/32 -j ACCEPT", f"-A PARITY -s {C2}/32 -d {C1}/32 -j ACCEPT",
            "-A PARITY -j DROP", "COMMIT", ""]))
    elif kind == "nftables":
        ns(host, "nft", "-f", "-", input=(
            "table inet parity {\n"
            f"  set allowed {{ type ipv4_addr . ipv4_addr; elements = {{ {C1} . {C2}, {C2} . {C1} }} }}\n"
            "  chain forward { type filter hook forward priority filter; policy accept;\n"
            "    ip saddr . ip daddr @allowed accept\n    drop\n  }\n}\n"))
    else:
        raise ValueError(f"no hand-built filter '{kind}'")
    return pair


# ------------------------------------------------------------------------------ by hand: multi host
UNDERLAY = {1: "198.18.0.1", 2: "198.18.0.2"}
SUBNET = {1: "198.19.1.0/24", 2: "198.19.2.0/24"}


def two_hosts(mtu: int, recipe_shape: bool = False) -> Pair:
    """Hosts h1, h2 and container c<h> (198.19.h.1/24, gateway 198.19.h.254) on each; the container
    veths get the tunnel's MTU, as a CNI plugin sets it. By default the testbed has the shape the
    framework's has, so that a ratio measures the tunnel alone: the underlay is a bridge in a switch
    namespace (a veth per host) and each host's containers hang on a bridge that holds the gateway.
    *recipe_shape* builds ../shared/reference/multi-host/lib.sh instead: one veth between the two
    hosts and a routed veth per container (the "testbed" row compares the two shapes)."""
    add_namespaces(*(name(netns) for netns in ("h1", "h2", "c1", "c2")))
    if recipe_shape:
        ns(name("h1"), "ip", "link", "add", name("u1"), "type", "veth", "peer", "name", name("u2"), "netns", name("h2"))
    else:
        switch = name("ul")
        add_namespaces(switch)
        ns(switch, "ip", "link", "add", name("ul"), "type", "bridge")
        ns(switch, "ip", "link", "set", name("ul"), "up")
        for h in (1, 2):
            ns(name(f"h{h}"), "ip", "link", "add", name(f"u{h}"), "type", "veth", "peer", "name", name(f"s{h}"),
               "netns", switch)
            ns(switch, "ip", "link", "set", name(f"s{h}"), "master", name("ul"), "up")
    for h in (1, 2):
        host, container = name(f"h{h}"), name(f"c{h}")
        ns(host, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
           "net.ipv4.conf.default.rp_filter=0")
        ns(host, "ip", "addr", "add", f"{UNDERLAY[h]}/24", "dev", name(f"u{h}"))
        ns(host, "ip", "link", "set", name(f"u{h}"), "up")
        ns(host, "ip", "link", "add", name(f"v{h}"), "mtu", str(mtu), "type", "veth", "peer", "name", name("e0"),
           "netns", container)
        gateway_on = name(f"v{h}")
        if not recipe_shape:
            gateway_on = name(f"br{h}")
            ns(host, "ip", "link", "add", gateway_on, "type", "bridge")
            ns(host, "ip", "link", "set", name(f"v{h}"), "master", gateway_on)
            ns(host, "ip", "link", "set", gateway_on, "up")
        ns(host, "ip", "addr", "add", f"198.19.{h}.254/24", "dev", gateway_on)
        ns(host, "ip", "link", "set", name(f"v{h}"), "up")
        ns(container, "ip", "link", "set", name("e0"), "mtu", str(mtu), "up")
        ns(container, "ip", "addr", "add", f"198.19.{h}.1/24", "dev", name("e0"))
        ns(container, "ip", "route", "add", "default", "via", f"198.19.{h}.254")
    return Pair(name("c1"), name("c2"), "198.19.2.1")


def other(h: int) -> int:
    return 3 - h


def plain_routes(recipe_shape: bool = False) -> Pair:
    pair = two_hosts(1500, recipe_shape)
    for h in (1, 2):
        ns(name(f"h{h}"), "ip", "route", "add", SUBNET[other(h)], "via", UNDERLAY[other(h)])
    return pair


def vxlan() -> Pair:
    pair = two_hosts(1450)
    for h in (1, 2):
        host, device = name(f"h{h}"), name("vx")
        ns(host, "ip", "link", "add", device, "type", "vxlan", "id", "42", "local", UNDERLAY[h], "remote",
           UNDERLAY[other(h)], "dstport", "4789", "dev", name(f"u{h}"))
        ns(host, "ip", "link", "set", device, "mtu", "1450", "up")
        ns(host, "ip", "addr", "add", f"198.18.13.{h}/24", "dev", device)
        ns(host, "ip", "route", "add", SUBNET[other(h)], "via", f"198.18.13.{other(h)}")
    return pair


def wireguard_go(recipe_shape: bool = False) -> Pair:
    pair = two_hosts(1440, recipe_shape)
    keys = state("wg")
    public = {}
    for h in (1, 2):
        private = sh("wg", "genkey")
        (keys / f"{h}.key").write_text(private)
        public[h] = sh("wg", "pubkey", input=private).strip()
    for h in (1, 2):  # the UAPI socket is /run/wireguard/<device>.sock: device names differ per host
        spawn(name(f"h{h}"), f"wireguard-go-{h}", ["wireguard-go", "-f", name(f"wg{h}")])
    for h in (1, 2):
        socket = Path(f"/run/wireguard/{name(f'wg{h}')}.sock")
        wait_for(f"{socket} exists", socket.exists, 10, HINT)
        host, device = name(f"h{h}"), name(f"wg{h}")
        ns(host, "wg", "set", device, "listen-port", "51820", "private-key", str(keys / f"{h}.key"), "peer",
           public[other(h)], "endpoint", f"{UNDERLAY[other(h)]}:51820",
           "allowed-ips", f"198.18.10.{other(h)}/32,{SUBNET[other(h)]}")
        ns(host, "ip", "addr", "add", f"198.18.10.{h}/24", "dev", device)
        ns(host, "ip", "link", "set", device, "mtu", "1440", "up")
        ns(host, "ip", "route", "add", SUBNET[other(h)], "dev", device)
    return pair


def openvpn_tls_cbc() -> Pair:
    """05-openvpn.sh MODE=tls-cbc: p2p TLS (EC P-256 PKI), data channel AES-256-CBC + HMAC-SHA1."""
    pair = two_hosts(1419)
    keys = state("openvpn")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=keys, capture_output=True, check=True)

    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
            "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=scnph-ca")
    for h, usage in ((1, "serverAuth"), (2, "clientAuth")):
        (keys / f"{h}.ext").write_text(f"basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage={usage}\n")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{h}.key",
                "-out", f"{h}.csr", "-subj", f"/CN=scnph-h{h}")
        openssl("x509", "-req", "-in", f"{h}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days",
                "2", "-extfile", f"{h}.ext", "-out", f"{h}.crt")
    for h in (1, 2):
        role = ["tls-server", "dh none", "remote-cert-tls client"] if h == 1 else ["tls-client", "remote-cert-tls server"]
        (keys / f"{h}.conf").write_text("\n".join([
            f"dev {name(f'ov{h}')}", "dev-type tun", "proto udp", f"local {UNDERLAY[h]}", "lport 1194",
            f"remote {UNDERLAY[other(h)]} 1194", f"ifconfig 198.18.11.{h} 198.18.11.{other(h)}",
            f"route 198.19.{other(h)}.0 255.255.255.0 198.18.11.{other(h)}", "tun-mtu 1419", "disable-dco", "verb 3",
            f"ca {keys}/ca.crt", f"cert {keys}/{h}.crt", f"key {keys}/{h}.key", *role,
            "data-ciphers AES-256-CBC", "auth SHA1", ""]))
        spawn(name(f"h{h}"), f"openvpn-{h}", ["openvpn", "--config", str(keys / f"{h}.conf")])
    return pair


def tinc_router() -> Pair:
    """06-tinc.sh TMODE=router: tinc 1.0, RSA-2048, aes-256-cbc, sha256, MACLength 4, MTU 1437."""
    pair = two_hosts(1437)
    confs = {h: state("tinc", str(h)) for h in (1, 2)}
    for h, conf in confs.items():
        (conf / "hosts").mkdir(exist_ok=True)
        (conf / "tinc.conf").write_text(
            f"Name = parity{h}\nMode = router\nInterface = {name('tc')}\nAddressFamily = ipv4\n"
            f"ConnectTo = parity{other(h)}\nCipher = aes-256-cbc\nDigest = sha256\nMACLength = 4\n")
        (conf / "hosts" / f"parity{h}").write_text(
            f"Address = {UNDERLAY[h]}\nPort = 655\nSubnet = {SUBNET[h]}\nSubnet = 198.18.12.{h}/32\n")
        (conf / "tinc-up").write_text(
            f"#!/bin/sh\nip addr add 198.18.12.{h}/24 dev $INTERFACE\nip link set $INTERFACE mtu 1437 up\n"
            f"ip route add {SUBNET[other(h)]} dev $INTERFACE\n")
        (conf / "tinc-up").chmod(0o700)
        subprocess.run(["tincd", "-c", str(conf), "-K2048"], stdin=subprocess.DEVNULL, capture_output=True,
                       check=True, timeout=60)
    for h in (1, 2):
        (confs[other(h)] / "hosts" / f"parity{h}").write_text((confs[h] / "hosts" / f"parity{h}").read_text())
    for h, conf in confs.items():
        spawn(name(f"h{h}"), f"tincd-{h}", ["tincd", "-c", str(conf), "-D", f"--pidfile={conf}/tinc.pid",
                                            f"--logfile={conf}/tinc.log"])
    return pair


def ipsec_libipsec() -> Pair:
    """07-ipsec-libipsec.sh: strongSwan starter + charon with kernel-libipsec, IKEv2 PSK, ESP
    AES-256-GCM-16 in UDP 4500, MTU 1400; each host's charon sees a private /run."""
    pair = two_hosts(1400)
    psk = os.urandom(16).hex()
    for h in (1, 2):
        d = outside_run() / f"ipsec{h}"
        (d / "run").mkdir(parents=True, exist_ok=True)
        (d / "strongswan.conf").write_text(
            "charon {\n  load_modular = no\n"
            "  load = random nonce openssl aes sha1 sha2 hmac gcm kdf pem pkcs1 x509 pubkey kernel-libipsec "
            "kernel-netlink socket-default stroke updown\n  install_virtual_ip = no\n"
            f"  filelog {{\n    parity {{\n      path = {d}/charon.log\n      default = 1\n    }}\n  }}\n"
            f"  plugins {{\n    stroke {{\n      secrets_file = {d}/ipsec.secrets\n    }}\n  }}\n}}\n")
        (d / "ipsec.conf").write_text(
            f"config setup\nconn parity\n  keyexchange=ikev2\n  type=tunnel\n  left={UNDERLAY[h]}\n"
            f"  leftid=@parity{h}\n  leftsubnet={SUBNET[h]}\n  right={UNDERLAY[other(h)]}\n"
            f"  rightid=@parity{other(h)}\n  rightsubnet={SUBNET[other(h)]}\n  authby=psk\n"
            "  ike=aes256gcm16-prfsha256-ecp256!\n  esp=aes256gcm16!\n  auto=add\n")
        (d / "ipsec.secrets").write_text(f'@parity1 @parity2 : PSK "{psk}"\n')
        (d / "ipsec.secrets").chmod(0o600)
        spawn(name(f"h{h}"), f"starter-{h}", private_run(d, ["/usr/lib/ipsec/starter", "--nofork", "--conf",
                                                             str(d / "ipsec.conf")]))
    for h in (1, 2):
        d = outside_run() / f"ipsec{h}"
        wait_for(f"charon's control socket on h{h}", (d / "run" / "charon.ctl").exists, 30, HINT)
        wait_for(f"ipsec0 on h{h}", lambda: subprocess.run(proc.in_netns(name(f"h{h}"), ["ip", "link", "show", "ipsec0"]),
                                                          capture_output=True).returncode == 0, 30, HINT)
    d = outside_run() / "ipsec1"
    sh(*proc.in_netns(name("h1"), private_run(d, ["ipsec", "up", "parity"])))
    return pair


def private_run(d: Path, argv: list[str]) -> list[str]:
    """*argv* with <d>/run over /run and <d>/strongswan.conf (the recipe's `sw` wrapper)."""
    return ["env", f"STRONGSWAN_CONF={d}/strongswan.conf", "sh", "-c", 'mount --bind "$0" /run && exec "$@"',
            str(d / "run"), *argv]


# ------------------------------------------------------------------------------ by hand: eBPF and OVS
# The BPF programs are the implementation under test, so the hand-built side loads the project's
# own objects (bpf.build only compiles data/bpf/*.c, or finds the cached object the framework
# loads); everything else (bpffs, tc attach, map entries) is done here with plain mount, tc and
# bpftool commands, not through bpf.attach / bpf.fill or the technologies' Python code.
def bpffs() -> Path:
    """The hand-built side's own bpffs (cleanup.remove unmounts it: it lies in the state dir)."""
    mountpoint = state("bpffs")
    if not os.path.ismount(mountpoint):
        sh("mount", "-t", "bpf", f"{HAND}-bpffs", str(mountpoint))
    (mountpoint / "tc" / "globals").mkdir(parents=True, exist_ok=True)
    return mountpoint


def tc(netns: str, commands: list[str]) -> None:
    """`tc -batch` in *netns* through nsenter --net (our mount namespace, hence our bpffs, kept);
    iproute2 pins the objects' maps below $TC_BPF_MNT/tc/globals."""
    result = subprocess.run(["nsenter", f"--net=/run/netns/{netns}", "tc", "-batch", "-"],
                            input="\n".join(commands) + "\n", capture_output=True, text=True, timeout=60, check=False,
                            env={**os.environ, "TC_BPF_MNT": str(bpffs())})
    if result.returncode:
        raise RuntimeError(f"tc in {netns}: {result.stderr.strip() or result.stdout.strip()}")


def ip_bytes(*addresses: str) -> str:
    return " ".join(str(b) for a in addresses for b in ipaddress.IPv4Address(a).packed)


def bpftool_batch(lines: list[str]) -> None:
    sh("bpftool", "batch", "file", "-", input="".join(f"{line}\n" for line in lines))


def tc_bpf_veths(section: str, solution: str) -> Pair:
    """*solution* (routing or bridge) by hand, then program *section* of tc_pairs.bpf.c at tc
    clsact ingress (direct-action) of both host-side veths; with a filter section, the pair map
    holds c1->c2 and c2->c1."""
    pair = single_host(solution)
    obj = bpf.build(bpf.TC_PROGRAMS)
    tc(name("h1"), [command for i in (1, 2) for command in (
        f"qdisc add dev {name(f'v{i}')} clsact",
        f"filter add dev {name(f'v{i}')} ingress pref 1 handle 1 bpf da obj {obj} sec {section}")])
    if "filter" in section:
        pairs = bpffs() / "tc" / "globals" / "allowed_pairs"
        bpftool_batch([f"map update pinned {pairs} key {ip_bytes(s, d)} value 1 0 0 0" for s, d in ((C1, C2), (C2, C1))])
    return pair


def ovs_bridge(whitelist: bool) -> Pair:
    """One ovsdb-server + ovs-vswitchd in h1 (own database and sockets), bridge datapath_type=netdev
    (this kernel has no OVS datapath), the host-side veths as ports, container tx offloads off
    (the userspace datapath neither completes partial checksums nor segments GSO frames). With
    *whitelist*: ARP NORMAL, c1<->c2 NORMAL, priority-0 drop, as OpenFlow 1.4 bundle."""
    host, containers = name("h1"), [name("c1"), name("c2")]
    add_namespaces(host, *containers)
    for i, (container, ip) in enumerate(zip(containers, (C1, C2)), 1):
        ns(host, "ip", "link", "add", name(f"v{i}"), "type", "veth", "peer", "name", name("e0"), "netns", container)
        ns(host, "ip", "link", "set", name(f"v{i}"), "up")
        ns(container, "ip", "addr", "add", f"{ip}/24", "dev", name("e0"))
        ns(container, "ip", "link", "set", name("e0"), "up")
        ns(container, "ethtool", "-K", name("e0"), "tx", "off", "tso", "off", "gso", "off")
    run = state("ovs")
    env = ["env", *(f"{var}={run}" for var in ("OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"))]
    sh("ovsdb-tool", "create", str(run / "conf.db"), "/usr/share/openvswitch/vswitch.ovsschema")
    common = ["--no-chdir"]
    spawn(host, "ovsdb-server", [*env, "ovsdb-server", str(run / "conf.db"), f"--remote=punix:{run}/db.sock",
                                 f"--unixctl={run}/ovsdb-server.ctl", f"--pidfile={run}/ovsdb-server.pid", *common])
    wait_for("ovsdb-server's socket", (run / "db.sock").exists, 10, HINT)
    vsctl = ["ovs-vsctl", f"--db=unix:{run}/db.sock", "--timeout=10"]
    sh(*vsctl, "--no-wait", "init")
    spawn(host, "ovs-vswitchd", [*env, "ovs-vswitchd", f"unix:{run}/db.sock", "--disable-system",
                                 f"--unixctl={run}/ovs-vswitchd.ctl", f"--pidfile={run}/ovs-vswitchd.pid", *common])
    wait_for("ovs-vswitchd's control socket", (run / "ovs-vswitchd.ctl").exists, 10, HINT)
    bridge = name("br1")
    sh(*vsctl, "add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=netdev")
    # one port per transaction, in order, as the framework does: the userspace datapath polls its
    # ports by their numbers, and the numbers within one transaction are random (docs/ovs.md,
    # "Port numbers and RTT"); so both sides poll c1's port first, every time
    for port in ("v1", "v2"):
        sh(*vsctl, "add-port", bridge, name(port))
    if whitelist:
        flows = ["priority=50,arp,actions=NORMAL",
                 f"priority=100,ip,nw_src={C1},nw_dst={C2},actions=NORMAL",
                 f"priority=100,ip,nw_src={C2},nw_dst={C1},actions=NORMAL", "priority=0,actions=drop"]
        sh("ovs-ofctl", "-O", "OpenFlow14", "--bundle", "replace-flows", f"unix:{run}/{bridge}.mgmt", "-",
           input="\n".join(flows) + "\n")
    return Pair(containers[0], containers[1], C2)


def tc_bpf_tunnel(protocol: str) -> Pair:
    """IPIP or GRE as the framework builds it where the kernel has no such device: routes to the
    other container subnet over the underlay (as plain_routes), and tunnel_encap.bpf.c's encap_<protocol>
    at tc egress and decap at tc ingress of each underlay device; both hosts share the maps."""
    overhead = {"ipip": 20, "gre": 24}[protocol]
    pair = two_hosts(1500 - overhead)
    obj = bpf.build(bpf.SOURCES / "tunnel_encap.bpf.c")
    for h in (1, 2):
        device = name(f"u{h}")
        tc(name(f"h{h}"), [f"qdisc add dev {device} clsact",
                           f"filter add dev {device} egress pref 1 handle 1 bpf da obj {obj} sec encap_{protocol}",
                           f"filter add dev {device} ingress pref 1 handle 1 bpf da obj {obj} sec decap"])
    maps = bpffs() / "tc" / "globals"
    lines = []
    for h in (1, 2):
        src_subnet, dst_subnet = (SUBNET[h].split("/")[0], SUBNET[other(h)].split("/")[0])
        outer = ip_bytes(UNDERLAY[h], UNDERLAY[other(h)])
        lines += [f"map update pinned {maps}/tunnel_routes key {ip_bytes(src_subnet, dst_subnet)} value {outer}",
                  f"map update pinned {maps}/tunnel_peers key {outer} value 1 0 0 0"]
    bpftool_batch(lines)
    for h in (1, 2):
        ns(name(f"h{h}"), "ip", "route", "add", SUBNET[other(h)], "via", UNDERLAY[other(h)])
    return pair


# ------------------------------------------------------------------------------ the technologies
@dataclass
class Technology:
    kind: str  # solution, filter, tunnel, or testbed (the multi-host topology itself)
    name: str
    setup: str  # the framework's setup id
    build: Callable[[], Pair]  # the hand-built equivalent
    hand: str  # what the hand-built one is, for the table

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.name}"


TECHNOLOGIES = [
    Technology("solution", "bridge", "single-bridge-none-c2", lambda: single_host("bridge"), "Linux bridge"),
    Technology("solution", "routing", "single-routing-none-c2", lambda: single_host("routing"), "/32 routes via the host"),
    Technology("solution", "macvlan", "single-macvlan-none-c2", lambda: single_host("macvlan"), "macvlan bridge mode"),
    Technology("filter", "iptables", "single-bridge-iptables-c2", lambda: filtered_bridge("iptables"),
               "iptables FORWARD chain, br_netfilter"),
    Technology("filter", "nftables", "single-bridge-nftables-c2", lambda: filtered_bridge("nftables"),
               "nft forward chain, concatenated set"),
    Technology("tunnel", "routing", "multi-routing-none-c2", plain_routes, "static routes over the underlay"),
    # the testbed itself: the framework's switch namespace and host bridges against the recipes' shape
    Technology("testbed", "multi-host", "multi-routing-none-c2", lambda: plain_routes(recipe_shape=True),
               "recipe shape: one veth underlay, routed container veths"),
    Technology("testbed", "multi-host-wireguard", "multi-wireguard-none-c2", lambda: wireguard_go(recipe_shape=True),
               "wireguard-go in the recipe shape (issue 12 compared against this)"),
    Technology("tunnel", "vxlan", "multi-vxlan-none-c2", vxlan, "kernel VXLAN, VNI 42, MTU 1450"),
    Technology("tunnel", "wireguard", "multi-wireguard-none-c2", wireguard_go, "wireguard-go + wg, MTU 1440"),
    Technology("tunnel", "openvpn", "multi-openvpn-none-c2", openvpn_tls_cbc, "OpenVPN 2.6 TLS, AES-256-CBC+SHA1, MTU 1419"),
    Technology("tunnel", "tinc", "multi-tinc-none-c2", tinc_router, "tinc 1.0 router, AES-256-CBC+SHA256, MTU 1437"),
    Technology("tunnel", "ipsec", "multi-ipsec-none-c2", ipsec_libipsec,
               "starter+charon, kernel-libipsec, AES-256-GCM-16, MTU 1400"),
    Technology("solution", "ebpf", "single-ebpf-none-c2", lambda: tc_bpf_veths("forward", "routing"),
               "/32 routes + tc_pairs.bpf.c:forward at tc ingress (bpf_redirect_peer)"),
    Technology("filter", "ebpf", "single-bridge-ebpf-c2", lambda: tc_bpf_veths("filter", "bridge"),
               "bridge + tc_pairs.bpf.c:filter at tc ingress, pair map by bpftool"),
    Technology("solution", "ovs", "single-ovs-none-c2", lambda: ovs_bridge(whitelist=False),
               "ovsdb-server + ovs-vswitchd, netdev datapath, NORMAL"),
    Technology("filter", "ovs", "single-ovs-ovs-c2", lambda: ovs_bridge(whitelist=True),
               "ovs netdev bridge, OpenFlow whitelist (ARP, 2 pairs NORMAL, drop)"),
    Technology("tunnel", "ipip", "multi-ipip-none-c2", lambda: tc_bpf_tunnel("ipip"),
               "tunnel_encap.bpf.c encap_ipip/decap at tc on the underlay, MTU 1480"),
    Technology("tunnel", "gre", "multi-gre-none-c2", lambda: tc_bpf_tunnel("gre"),
               "tunnel_encap.bpf.c encap_gre/decap at tc on the underlay, MTU 1476"),
]


def select(only: str | None) -> list[Technology]:
    if not only:
        return TECHNOLOGIES
    wanted = {w.strip() for w in only.split(",") if w.strip()}
    chosen = [t for t in TECHNOLOGIES if t.name in wanted or t.label in wanted]
    unknown = wanted - {t.name for t in chosen} - {t.label for t in chosen}
    if unknown:
        raise SystemExit(f"--only: no technology {sorted(unknown)}; choose from "
                         f"{sorted({t.name for t in TECHNOLOGIES} | {t.label for t in TECHNOLOGIES})}")
    return chosen


# ------------------------------------------------------------------------------ measuring
@dataclass
class Sample:
    rtt_ms: float
    mbps: float
    retransmits: int | None


def measure(pair: Pair, count: int, duration: float, cpu: int | None = None) -> Sample:
    """Median RTT of *count* pings, then one iperf3 stream; with *cpu*, iperf3's client and
    server both run on that CPU (taskset): on 2 vCPUs an unpinned pair is bimodal (client and
    server on one CPU or on two), which swamps a ratio of kernel data paths."""
    pin = [] if cpu is None else ["taskset", "-c", str(cpu)]
    ping = ns(pair.client, "ping", "-n", "-c", str(count), "-i", "0.05", "-W", "1", pair.server_ip)
    rtt = statistics.median(parsers.parse_text("ping", ping).samples["rtt_ms"].dropna())
    server = subprocess.Popen(proc.in_netns(pair.server, [*pin, "iperf3", "-s", "-1", "-p", str(PORT), "-B", pair.server_ip]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for("iperf3 server listening", lambda: listening(server.pid, PORT))
        client = ns(pair.client, *pin, "iperf3", "-c", pair.server_ip, "-p", str(PORT), "-t", f"{duration:g}",
                    "-l", "653", "--json")
    finally:
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    summary = parsers.parse_text("iperf3", client).summary
    return Sample(rtt, summary["throughput_mbps_received"], summary.get("retransmits"))


@dataclass
class Result:
    technology: Technology
    framework: list[Sample] = field(default_factory=list)
    hand: list[Sample] = field(default_factory=list)
    facts: dict = field(default_factory=dict)
    error: str | None = None
    load_1min: float | None = None  # the host's load average when the technology's rounds ended

    def ratios(self, metric: str) -> list[float]:
        """Framework / by hand, one per round (the rounds are the unit of replication)."""
        return [getattr(f, metric) / getattr(h, metric) for f, h in zip(self.framework, self.hand)]

    def ratio(self, metric: str) -> float:
        return statistics.median(self.ratios(metric))

    def quartiles(self, metric: str) -> tuple[float, float]:
        """The middle half of the per-round ratios: how far one round's ratio strays."""
        ratios = self.ratios(metric)
        if len(ratios) < 2:
            return ratios[0], ratios[0]
        q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
        return q1, q3

    def median(self, side: str, metric: str) -> float:
        return statistics.median(getattr(s, metric) for s in getattr(self, side))

    def as_json(self) -> dict:
        measured = {} if self.error else {
            "throughput_ratio": self.ratio("mbps"), "rtt_ratio": self.ratio("rtt_ms"),
            "throughput_ratio_rounds": self.ratios("mbps"), "rtt_ratio_rounds": self.ratios("rtt_ms")}
        return {"technology": self.technology.label, "setup": self.technology.setup,
                "hand_built": self.technology.hand, "facts": self.facts, "error": self.error,
                "load_1min": self.load_1min, "framework": [vars(s) for s in self.framework],
                "hand": [vars(s) for s in self.hand], **measured}

    @classmethod
    def from_json(cls, row: dict) -> Result:
        technology = next(t for t in TECHNOLOGIES if t.label == row["technology"])
        return cls(technology, [Sample(**s) for s in row["framework"]], [Sample(**s) for s in row["hand"]],
                   row["facts"], row["error"], row.get("load_1min"))


@contextlib.contextmanager
def host_lock(timeout_s: float) -> Iterator[None]:
    """The runner's HostLock, waited for in the kernel between tries, as the test suite's hold
    does (tests/conftest.py): HostLock alone polls every 50 ms, and a waiter blocked in flock
    takes the lock first every time, so a bench among running test suites would starve."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            lock = HostLock(timeout_s=0).__enter__()
            break
        except SeconetError:
            if time.monotonic() > deadline:
                raise
            with open(lock_path(), "a") as waiter:
                fcntl.flock(waiter, fcntl.LOCK_EX)
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


def compare(technology: Technology, rounds: int, count: int, duration: float, cpu: int | None,
            lock_timeout: float) -> Result:
    result = Result(technology)
    backend = NetnsBackend(FRAMEWORK)
    with host_lock(lock_timeout):
        try:
            remove_hand_built()
            multi_solution = config.schema_default("sweep", "multi", "solution")  # as a sweep deploys it
            deployment = backend.deploy(SetupSpec.parse(technology.setup, multi_solution), verify=False)
            framework = Pair(*(lambda s, d: (s.netns, d.netns, d.ip))(
                *(deployment.container(c) for c in deployment.pairs[0])))
            # with the solution's: a filter's deliberate differences (OVS offloads) are its solution's
            facts = {**deployment.facts.get("solution", {}), **deployment.facts.get(technology.kind, {})}
            result.facts = {k: facts[k] for k in ("implementation", "cipher", "path_mtu", "esp_crypto_plugins",
                                                  "container_tx_offloads", "datapath_type", "program") if k in facts}
            hand = technology.build()
            wait_for("a ping through the hand-built setup", lambda: pings(hand.client, hand.server_ip), 60, HINT)
            measure(framework, 5, 1, cpu)  # warm-up (ARP, tinc's PMTU discovery, TCP metrics), not recorded
            measure(hand, 5, 1, cpu)
            for r in range(rounds):
                order = ((result.framework, framework), (result.hand, hand))
                for samples, pair in (order if r % 2 == 0 else order[::-1]):
                    samples.append(measure(pair, count, duration, cpu))
                print(f"  {technology.label} round {r + 1}: framework {result.framework[-1].mbps:7.1f} Mbit/s "
                      f"{result.framework[-1].rtt_ms:.3f} ms | by hand {result.hand[-1].mbps:7.1f} Mbit/s "
                      f"{result.hand[-1].rtt_ms:.3f} ms", file=sys.stderr, flush=True)
            result.load_1min = os.getloadavg()[0]
        except Exception as error:  # noqa: BLE001 - one technology failing must not stop the others
            result.error = f"{type(error).__name__}: {error}"
        finally:
            backend.teardown()
            remove_hand_built()
    return result


def verdict(result: Result) -> str:
    """ok, BELOW TARGET or ERROR; a testbed row compares two testbed shapes, not a technology
    (the framework's switch namespace is deliberate), so it has no target: "shape"."""
    if result.error:
        return "ERROR"
    if result.technology.kind == "testbed":
        return "shape"
    ok = result.ratio("mbps") >= TARGET_THROUGHPUT and result.ratio("rtt_ms") <= TARGET_RTT
    return "ok" if ok else "BELOW TARGET"


HEADER = (f"{'technology':<28}{'fw Mbit/s':>10}{'hand Mbit/s':>12}{'tput ratio':>11}{'tput IQR':>12}"
          f"{'fw RTT ms':>10}{'hand RTT ms':>12}{'RTT ratio':>10}{'RTT IQR':>12}  verdict")


def row(r: Result) -> str:
    if r.error:
        return f"{r.technology.label:<28}  ERROR {r.error}"
    (t1, t3), (r1, r3) = r.quartiles("mbps"), r.quartiles("rtt_ms")
    return (f"{r.technology.label:<28}{r.median('framework', 'mbps'):>10.1f}{r.median('hand', 'mbps'):>12.1f}"
            f"{r.ratio('mbps'):>11.3f}{f'{t1:.2f}-{t3:.2f}':>12}{r.median('framework', 'rtt_ms'):>10.3f}"
            f"{r.median('hand', 'rtt_ms'):>12.3f}{r.ratio('rtt_ms'):>10.3f}{f'{r1:.2f}-{r3:.2f}':>12}  {verdict(r)}")


def markdown(runs: list[list[Result]]) -> str:
    """The table of docs/performance.md ("Parity") from the --json of finished runs: a row per
    technology from the first run given that measured it, and in the last column what the other
    runs given (earlier runs, reruns with more rounds) measured for it, in the order given, as
    throughput ratio / RTT ratio (rounds)."""
    rows: dict[str, list[Result]] = {}
    for run in runs:
        for r in run:
            rows.setdefault(r.technology.label, []).append(r)
    lines = [("| technology | hand-built | rounds | fw Mbit/s | hand Mbit/s | throughput ratio | its quartiles "
              "over rounds | fw RTT ms | hand RTT ms | RTT ratio | its quartiles over rounds | verdict | other runs: throughput / RTT ratio (rounds) |"),
             "|" + "---|" * 13]
    for label, results in rows.items():
        measured = [r for r in results if not r.error]
        if not measured:
            lines.append(f"| {label} | {results[0].technology.hand} |" + " |" * 9 + f" ERROR: {results[0].error} | |")
            continue
        r, later = measured[0], measured[1:]
        (t1, t3), (r1, r3) = r.quartiles("mbps"), r.quartiles("rtt_ms")
        reruns = ", ".join(f"{x.ratio('mbps'):.3f} / {x.ratio('rtt_ms'):.3f} ({len(x.framework)})" for x in later)
        lines.append(f"| {label} | {r.technology.hand} | {len(r.framework)} "
                     f"| {r.median('framework', 'mbps'):.0f} | {r.median('hand', 'mbps'):.0f} "
                     f"| {r.ratio('mbps'):.3f} | {t1:.2f}–{t3:.2f} | {r.median('framework', 'rtt_ms'):.3f} "
                     f"| {r.median('hand', 'rtt_ms'):.3f} | {r.ratio('rtt_ms'):.3f} | {r1:.2f}–{r3:.2f} "
                     f"| {verdict(r)} | {reruns} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated names (ipsec,wireguard) or kind/name (solution/routing)")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds per technology (default 4)")
    parser.add_argument("--quick", action="store_true", help="2 rounds, 10 pings (a smoke test of parity)")
    parser.add_argument("--duration", type=float, default=3, help="iperf3 -t (default 3, as the recipes)")
    parser.add_argument("--cpu", type=int, default=0,
                        help="run iperf3's client and server on this CPU (default 0; -1: not pinned)")
    parser.add_argument("--json", type=Path,
                        help="also write every sample and ratio to this file (rewritten after each technology)")
    parser.add_argument("--markdown", type=Path, nargs="+", metavar="JSON",
                        help="measure nothing: print the docs/performance.md table of the --json files of "
                             "finished runs: the first run's rows, the other runs' ratios in a column of their own")
    args = parser.parse_args()
    if args.markdown:
        print(markdown([[Result.from_json(r) for r in json.loads(path.read_text())["results"]] for path in args.markdown]))
        return 0
    rounds, count = (2, 10) if args.quick else (args.rounds, 20)
    cpu = None if args.cpu < 0 else args.cpu
    chosen = select(args.only)
    lock_timeout = config.schema_default("testbed", "lock_timeout_s")
    results = []
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(HEADER, flush=True)
    for technology in chosen:  # a row as soon as its technology is done: a long run stays useful
        print(f"{technology.label}: {technology.setup} against {technology.hand}", file=sys.stderr, flush=True)
        results.append(compare(technology, rounds, count, args.duration, cpu, lock_timeout))
        print(row(results[-1]), flush=True)
        if args.json:
            args.json.write_text(json.dumps({"started": started, "rounds": rounds, "iperf3_cpu": cpu,
                                             "command": sys.argv, "results": [r.as_json() for r in results]},
                                            indent=1))
    print(f"(started {started}; {rounds} interleaved rounds per technology, ratios = median over rounds of "
          f"framework / by hand, IQR = their quartiles; iperf3 -t {args.duration:g} -l 653 "
          f"{'unpinned' if cpu is None else f'client and server on CPU {cpu}'}, ping -c {count} -i 0.05; load "
          f"{os.getloadavg()[0]:.1f}; targets throughput >= {TARGET_THROUGHPUT}, RTT <= {TARGET_RTT})")
    return 0 if all(verdict(r) in ("ok", "shape") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
