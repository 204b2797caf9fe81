"""OpenVPN 2.6 over UDP, point to point between every pair of hosts, TLS with a CA and one
certificate per host generated per deployment (EC P-256, openssl).

The data path is userspace: the DCO kernel module (ovpn-dco) is not loadable here, so every
instance runs with `disable-dco`. The paper's suite, AES-256-CBC with HMAC-SHA1, is still accepted
by 2.6, but only through `data-ciphers AES-256-CBC` plus `auth SHA1` (a 2.4-style `cipher` line
alone is ignored and AES-256-GCM negotiated; see docs/multi-host.md). Link k of the host pairs
uses UDP port 1194 + k on both sides and the addresses 198.18.22.(2k+1) and 198.18.22.(2k+2).
"""

from __future__ import annotations

import os
import subprocess
from functools import lru_cache
from pathlib import Path

from seconetbench.backends.base import Deployment, Host
from seconetbench.errors import ToolFailed
from seconetbench.technology import Requirement, register
from seconetbench.tunnels._common import (
    UDP, Suite, Tunnel, Wire, container_subnet, host_pairs, key_dir, spawn_daemon, tunnel_dir, write_private)

PORT = 1194
NET = 22  # transfer addresses 198.18.22.0/24, two per link


@lru_cache(maxsize=1)
def openvpn_version() -> str:
    result = subprocess.run(["openvpn", "--version"], capture_output=True, text=True)
    return " ".join(result.stdout.split()[:2])


def openssl(directory: Path, *args: str) -> None:
    """Run openssl in *directory*; new files are readable by root only."""
    result = subprocess.run(["openssl", *args], cwd=directory, capture_output=True, text=True,
                            preexec_fn=lambda: os.umask(0o077))
    if result.returncode:
        raise ToolFailed(["openssl", *args], result.returncode, None, result.stderr)


@register
class Openvpn(Tunnel):
    name = "openvpn"
    description = "OpenVPN 2.6 p2p over UDP (userspace, no DCO), TLS, AES-256-CBC + HMAC-SHA1 by default"
    # Overheads measured on this machine (docs/multi-host.md): GCM 52 bytes; CBC 16 IV + 20 HMAC +
    # 4 packet id + 4 opcode/peer id + 1..16 padding over IPv4 and UDP.
    SUITES = {
        "aes256cbc-sha1": Suite("AES-256-CBC + HMAC-SHA1", 20 + 8 + 4 + 20 + 16 + 4 + 16,
                                ("data-ciphers AES-256-CBC", "auth SHA1")),
        "aes256gcm": Suite("AES-256-GCM", 52, ("data-ciphers AES-256-GCM",)),
    }
    DEFAULT_SUITE = "aes256cbc-sha1"
    implementations = ("userspace",)

    def requires(self, setup):
        return [*super().requires(setup),
                Requirement("binary", "openvpn", "Debian package openvpn"),
                Requirement("binary", "openssl", "Debian package openssl: the per-deployment CA and certificates"),
                Requirement("kernel", "CONFIG_TUN", "OpenVPN's TUN device")]

    def implementation(self) -> str:
        return f"userspace ({openvpn_version()}, DCO disabled)"

    def links(self, deployment: Deployment) -> list[tuple[int, Host, Host]]:
        return [(k, a, b) for k, (a, b) in enumerate(host_pairs(deployment))]

    def wire_of(self, deployment):
        ports = tuple((UDP, PORT + k) for k, *_ in self.links(deployment))
        return Wire(f"OpenVPN UDP {PORT}" + ("" if len(ports) == 1 else f"-{PORT + len(ports) - 1}"),
                    ports, encrypted=True)

    def prepare(self, deployment: Deployment) -> None:
        keys = key_dir(deployment, "openvpn")
        openssl(keys, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", f"/CN={deployment.prefix}-ca")
        for host in deployment.hosts:
            write_private(keys / f"{host.name}.ext", "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
                                                    "extendedKeyUsage=serverAuth,clientAuth\n")
            openssl(keys, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", f"{host.name}.key", "-out", f"{host.name}.csr", "-subj",
                    f"/CN={deployment.prefix}-{host.name}")
            openssl(keys, "x509", "-req", "-in", f"{host.name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                    "-CAcreateserial", "-days", "2", "-extfile", f"{host.name}.ext", "-out", f"{host.name}.crt")
        for k, a, b in self.links(deployment):
            for me, peer, server in ((a, b, True), (b, a, False)):
                write_private(keys / f"link{k}-{me.name}.conf", self.config(deployment, k, me, peer, server))

    def config(self, deployment: Deployment, k: int, me: Host, peer: Host, server: bool) -> str:
        """Link *k*'s config for *me*; its files are named relative to the key directory, where
        openvpn starts (--cd): the directory may be a copy on another machine (ssh)."""
        local, remote = (f"198.18.{NET}.{2 * k + 1}", f"198.18.{NET}.{2 * k + 2}")
        if not server:
            local, remote = remote, local
        subnet = container_subnet(peer).split("/")[0]
        lines = [
            f"dev {deployment.prefix}-ov{k}", "dev-type tun", "proto udp",
            f"local {me.underlay_ip}", f"lport {PORT + k}", f"remote {peer.underlay_ip} {PORT + k}",
            f"ifconfig {local} {remote}", f"route {subnet} 255.255.255.0 {remote}",
            f"tun-mtu {self.mtu()}", "disable-dco", "verb 3",
            "ca ca.crt", f"cert {me.name}.crt", f"key {me.name}.key",
            *(["tls-server", "dh none", "remote-cert-tls client"] if server
              else ["tls-client", "remote-cert-tls server"]),
            *self.suite.options,
        ]
        return "\n".join(lines) + "\n"

    def start(self, deployment: Deployment) -> None:
        keys = key_dir(deployment, "openvpn")
        local = deployment.local_hosts()
        for k, a, b in self.links(deployment):
            for host in (a, b):
                if host in local:
                    spawn_daemon(deployment, host, f"openvpn-link{k}-{host.name}",
                                 ["openvpn", "--cd", str(keys), "--config", f"link{k}-{host.name}.conf"])

    def host_facts(self, deployment: Deployment, host: Host) -> dict:
        """What OpenVPN reports it runs on the data channel (*host*'s log of its first link)."""
        k = next(k for k, a, b in self.links(deployment) if host in (a, b))
        log = tunnel_dir(deployment, "logs") / f"openvpn-link{k}-{host.name}.log"
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        return {"data_channel": sorted({line.split("Data Channel: ", 1)[1] for line in lines if "Data Channel: " in line})}

    def describe(self, deployment):
        return {**super().describe(deployment),
                "links": len(self.links(deployment)),
                "devices": [f"{deployment.prefix}-ov{k}" for k, *_ in self.links(deployment)]}
