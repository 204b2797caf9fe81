"""tinc 1.0 in router mode between all hosts: one tincd per host, RSA keys generated per
deployment, every node connecting to every other. Userspace (TUN); data over UDP 655, the
meta connection over TCP 655. Addresses 198.18.23.h/24; each node announces its container subnet.

tinc 1.0's legacy protocol encrypts with a block cipher and authenticates with a separate
digest: it has no AEAD, so the paper's AES-256-GCM is not available in tinc 1.0 (tinc 1.1's SPTPS
uses ChaCha20-Poly1305); the default here is AES-256-CBC with HMAC-SHA256 (the Debian default).
"""

from __future__ import annotations

import subprocess
from functools import lru_cache

from seconetbench import proc
from seconetbench.backends.base import Deployment, Host
from seconetbench.technology import Requirement, register
from seconetbench.tunnels._common import (
    TCP, UDP, Suite, Tunnel, Wire, container_subnet, key_dir, peers, spawn_daemon, transfer_ip)

PORT = 655
NET = 23


@lru_cache(maxsize=1)
def tinc_version() -> str:
    return subprocess.run(["tincd", "--version"], capture_output=True, text=True).stdout.splitlines()[0]


@register
class Tinc(Tunnel):
    name = "tinc"
    description = "tinc 1.0 router mode (userspace, TUN), RSA keys per deployment, UDP/TCP 655"
    # 20 IP + 8 UDP + 4 sequence number + 14 Ethernet header (tinc keeps it) + CBC padding (1..16)
    # + MAC (MACLength 4); measured on this machine: inner MTU 1437 at most (docs/multi-host.md)
    SUITES = {"aes256cbc-sha256": Suite("AES-256-CBC + HMAC-SHA256 (4-byte MAC)", 20 + 8 + 4 + 14 + 16 + 4 + 1,
                                        ("aes-256-cbc", "sha256", "4"))}
    DEFAULT_SUITE = "aes256cbc-sha256"
    implementations = ("userspace",)
    wire = Wire(f"tinc UDP/TCP {PORT}", ((UDP, PORT), (TCP, PORT)), encrypted=True)

    def requires(self, setup):
        return [*super().requires(setup), Requirement("binary", "tincd", "Debian package tinc"),
                Requirement("kernel", "CONFIG_TUN", "tinc's TUN device")]

    def implementation(self) -> str:
        return f"userspace ({tinc_version()})"

    def node(self, host: Host) -> str:
        return f"seconet{host.index}"

    def prepare(self, deployment: Deployment) -> None:
        cipher, digest, mac = self.suite.options
        for host in deployment.hosts:
            conf = key_dir(deployment, f"tinc-{host.name}")
            (conf / "hosts").mkdir(mode=0o700, exist_ok=True)
            (conf / "tinc.conf").write_text("\n".join([
                f"Name = {self.node(host)}", "Mode = router", f"Interface = {deployment.prefix}-tc",
                "AddressFamily = ipv4", f"BindToAddress = {host.underlay_ip}",
                *(f"ConnectTo = {self.node(p)}" for p in peers(deployment, host)),
                f"Cipher = {cipher}", f"Digest = {digest}", f"MACLength = {mac}", ""]))
            (conf / "hosts" / self.node(host)).write_text(
                f"Address = {host.underlay_ip}\nPort = {PORT}\nSubnet = {container_subnet(host)}\n"
                f"Subnet = {transfer_ip(NET, host)}/32\n")
            (conf / "tinc-up").write_text(
                "#!/bin/sh\n"
                f"ip addr add {transfer_ip(NET, host)}/24 dev $INTERFACE\n"
                f"ip link set $INTERFACE mtu {self.mtu()} up\n"
                + "".join(f"ip route add {container_subnet(p)} dev $INTERFACE\n" for p in peers(deployment, host)))
            (conf / "tinc-up").chmod(0o700)
            # non-interactive without a terminal: private key to rsa_key.priv, public appended to hosts/<me>
            proc.run(["tincd", "-c", str(conf), "-K2048"], input="", timeout=60)
        for host in deployment.hosts:
            public = (key_dir(deployment, f"tinc-{host.name}") / "hosts" / self.node(host)).read_text()
            for peer in peers(deployment, host):
                (key_dir(deployment, f"tinc-{peer.name}") / "hosts" / self.node(host)).write_text(public)

    def start(self, deployment: Deployment) -> None:
        for host in deployment.local_hosts():
            conf = key_dir(deployment, f"tinc-{host.name}")
            spawn_daemon(deployment, host, f"tincd-{host.name}",
                         ["tincd", "-c", str(conf), "-D", "--pidfile", str(conf / "tinc.pid"),
                          "--logfile", str(conf / "tinc.log")])
