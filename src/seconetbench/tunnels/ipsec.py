"""IPsec in tunnel mode between every pair of hosts: strongSwan's charon, one per host namespace,
configured through swanctl (vici), IKEv2 with a pre-shared key generated per deployment.

ESP runs in the kernel (XFRM) where the probe installs an ESP state (seconetbench.probes);
otherwise in userspace through the kernel-libipsec plugin (sweep.multi.implementations.ipsec pins
one), which moves packets through a TUN device `ipsec0` and, in
strongSwan 5.9, always encapsulates ESP in UDP 4500. libipsec makes ipsec0 with MTU 1400 and
reads at most 1400 bytes per packet, so the path MTU is 1400 there whatever the suite allows.

charon has fixed paths under /run (pid file, vici socket): each host's charon and its swanctl
calls run with a private /run (tunnel/ipsec/<host>, mode 0700) that holds its strongswan.conf,
swanctl.conf (with the key) and log. charon installs the routes (table 220).
"""

from __future__ import annotations

import secrets
import subprocess
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from seconetbench import probes, proc
from seconetbench.backends.base import Deployment, Host
from seconetbench.errors import ToolFailed
from seconetbench.technology import Requirement, register
from seconetbench.tunnels._common import (
    ESP, UDP, Suite, Tunnel, Wire, container_subnet, host_pairs, key_dir, peers, prepared_dir, spawn_daemon,
    wait_for, with_private_run, write_private)

CHARON = "/usr/lib/ipsec/charon"
PLUGIN_DIR = Path("/usr/lib/ipsec/plugins")
LIBIPSEC_MTU = 1400
# swanctl's commands wait for charon, which under an emulated CPU (the vm backend's TCG) takes
# tens of seconds to load a configuration right after boot
SWANCTL_TIMEOUT_S = 120
INITIATE_WITHIN_S = 90
# openssl goes before strongSwan's own crypto plugins so that it provides every algorithm it has
# (charon takes an algorithm from the first plugin in `load` that offers it): with kernel-libipsec
# charon itself encrypts every ESP packet, and strongSwan's portable aes and gcm plugins (no AES-NI,
# bitwise GHASH) held IPsec at 1/6 of what the same charon reaches with OpenSSL's AES-GCM here
# (docs/performance.md, "Parity"). The plugins after it stay as the fallback.
PLUGINS = ("random", "nonce", "openssl", "aes", "sha1", "sha2", "hmac", "kdf", "curve25519", "kernel-netlink",
           "socket-default", "vici", "updown")
PACKAGES = {"gcm": "libstrongswan-standard-plugins", "openssl": "libstrongswan-standard-plugins",
            "curve25519": "libstrongswan-extra-plugins", "kernel-libipsec": "libcharon-extra-plugins"}
# The ESP algorithms of each suite as `swanctl --list-algs` names them: describe() records which
# plugin charon takes each from (the cause of a 6x slower IPsec once, see PLUGINS)
ESP_ALGORITHMS = {"aes256gcm16": ("AES_GCM_16",), "aes256-sha1": ("AES_CBC", "HMAC_SHA1_96")}


@dataclass(frozen=True)
class PluginRequirement(Requirement):
    """A strongSwan plugin (kind "plugin"; *name* is the plugin, *why* its Debian package)."""

    def missing(self) -> str | None:
        if (PLUGIN_DIR / f"libstrongswan-{self.name}.so").exists():
            return None
        return f"strongSwan plugin '{self.name}' is missing from {PLUGIN_DIR} (Debian package {self.why})"


def plugin(name: str) -> PluginRequirement:
    return PluginRequirement("plugin", name, PACKAGES.get(name, "libstrongswan"))


@lru_cache(maxsize=1)
def strongswan_version() -> str:
    result = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "strongswan-charon"], capture_output=True, text=True)
    return f"strongSwan {result.stdout.strip() or 'version unknown'}"


@register
class Ipsec(Tunnel):
    name = "ipsec"
    description = "strongSwan IKEv2 PSK, ESP tunnel mode (kernel ESP, else kernel-libipsec), AES-256-GCM by default"
    # overhead over IPv4 in UDP 4500: 20 + 8 + ESP header 8 + IV + ICV + 2 trailer + padding;
    # options: IKE proposal, ESP proposal, then the strongSwan plugins the suite needs beyond PLUGINS
    SUITES = {
        "aes256gcm16": Suite("AES-256-GCM-16", 20 + 8 + 8 + 8 + 16 + 2 + 3,
                             ("aes256gcm16-prfsha256-x25519", "aes256gcm16", "gcm")),
        "aes256-sha1": Suite("AES-256-CBC + HMAC-SHA1-96", 20 + 8 + 8 + 16 + 12 + 2 + 15,
                             ("aes256-sha256-x25519", "aes256-sha1")),
    }
    DEFAULT_SUITE = "aes256gcm16"
    wire = Wire("ESP (in UDP 4500) and IKE (UDP 500)", ((UDP, 4500), (UDP, 500), (ESP, None)), encrypted=True)

    implementations = ("kernel", "userspace")
    kernel_probe = "ipsec"

    def kernel(self) -> bool:
        return self.resolved_implementation() == "kernel"

    def requires(self, setup):
        needs = [*super().requires(setup), Requirement("binary", CHARON, "Debian package strongswan-charon"),
                 Requirement("binary", "swanctl", "Debian package strongswan-swanctl")]
        needs += [plugin(name) for name in self.plugins()]
        if self.kernel():
            needs.append(probes.requirement("ipsec", "ESP in the kernel (XFRM)"))
        else:
            needs.append(Requirement("kernel", "CONFIG_TUN", "kernel-libipsec's TUN device (ESP in userspace)"))
        return needs

    def plugins(self) -> tuple[str, ...]:
        """The plugins charon loads; kernel-libipsec goes first so that it, not kernel-netlink,
        takes the IPsec SAs (kernel-netlink still installs addresses and routes)."""
        return (() if self.kernel() else ("kernel-libipsec",)) + PLUGINS + self.suite.options[2:]

    def implementation(self) -> str:
        return (f"kernel ({strongswan_version()}, XFRM)" if self.kernel()
                else f"userspace ({strongswan_version()}, kernel-libipsec)")

    def mtu(self) -> int:
        return super().mtu() if self.kernel() else min(super().mtu(), LIBIPSEC_MTU)

    def run_dir(self, deployment: Deployment, host: Host) -> Path:
        return key_dir(deployment, f"ipsec-{host.name}")

    def in_host(self, deployment: Deployment, host: Host, argv: list[str]) -> list[str]:
        return with_private_run(self.run_dir(deployment, host), ["env", "STRONGSWAN_CONF=/run/strongswan.conf", *argv])

    def prepare(self, deployment: Deployment) -> None:
        keys = {frozenset((a.name, b.name)): secrets.token_hex(32) for a, b in host_pairs(deployment)}
        ike, esp = self.suite.options[:2]
        for host in deployment.hosts:
            run = self.run_dir(deployment, host)
            write_private(run / "strongswan.conf", (
                "charon {\n  load_modular = no\n"
                f"  load = {' '.join(self.plugins())}\n"
                "  install_virtual_ip = no\n"
                "  filelog {\n    charon {\n      path = /run/charon.log\n      default = 1\n"
                "      flush_line = yes\n    }\n  }\n}\n"))
            connections, secrets_ = [], []
            for peer in peers(deployment, host):
                connections.append(
                    f"  {peer.name} {{\n    version = 2\n    local_addrs = {host.underlay_ip}\n"
                    f"    remote_addrs = {peer.underlay_ip}\n    proposals = {ike}\n"
                    f"    local {{\n      auth = psk\n      id = {host.name}.{deployment.prefix}\n    }}\n"
                    f"    remote {{\n      auth = psk\n      id = {peer.name}.{deployment.prefix}\n    }}\n"
                    f"    children {{\n      {peer.name} {{\n        mode = tunnel\n"
                    f"        local_ts = {container_subnet(host)}\n        remote_ts = {container_subnet(peer)}\n"
                    f"        esp_proposals = {esp}\n      }}\n    }}\n  }}\n")
                secrets_.append(
                    f"  ike-{peer.name} {{\n    id-1 = {host.name}.{deployment.prefix}\n"
                    f"    id-2 = {peer.name}.{deployment.prefix}\n"
                    f"    secret = 0x{keys[frozenset((host.name, peer.name))]}\n  }}\n")
            write_private(run / "swanctl.conf", "connections {\n" + "".join(connections) + "}\n"
                          "secrets {\n" + "".join(secrets_) + "}\n")
            for stale in ("charon.pid", "charon.vici"):
                (run / stale).unlink(missing_ok=True)

    def start(self, deployment: Deployment) -> None:
        """charon on every local host, then each pair's IKE SA, initiated by the pair's second
        host: where the hosts start one after the other in host order (one process per host), the
        first host's charon is up by then; where they start in parallel (the ssh backend's
        agents), a responder not up yet is reached by charon's IKE retransmits (after 4 s and
        11 s; swanctl waits 20 s), and one up without its connections loaded yet is tried again
        (:meth:`initiate`)."""
        local = deployment.local_hosts()
        for host in local:
            spawn_daemon(deployment, host, f"charon-{host.name}", self.in_host(deployment, host, [CHARON]))
        for host in local:
            socket = self.run_dir(deployment, host) / "charon.vici"
            wait_for(f"charon's vici socket {socket}", socket.exists, hint=self.hint(deployment))
            self.swanctl(deployment, host, "--load-all", "--file", "/run/swanctl.conf")
        for a, b in host_pairs(deployment):
            if b in local:
                self.initiate(deployment, b, a)

    def initiate(self, deployment: Deployment, host: Host, peer: Host) -> None:
        """The IKE and child SA from *host* to *peer*. A peer whose charon answers before it has
        loaded its connections (its agent builds at the same time, and under an emulated CPU the
        load takes seconds) refuses with NO_PROPOSAL_CHOSEN ("no IKE config found"), and swanctl
        fails at once: initiate again until INITIATE_WITHIN_S have passed."""
        deadline = time.monotonic() + INITIATE_WITHIN_S
        while True:
            try:
                self.swanctl(deployment, host, "--initiate", "--ike", peer.name, "--child", peer.name, "--timeout", "20")
                return
            except ToolFailed:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)  # the peer's load-all, which nothing here can observe

    def swanctl(self, deployment: Deployment, host: Host, *args: str) -> str:
        return proc.run_in(host.netns, self.in_host(deployment, host, ["swanctl", *args]),
                           timeout=SWANCTL_TIMEOUT_S).stdout

    def hint(self, deployment: Deployment) -> str:
        return f"see charon.log in {prepared_dir(deployment)}/ipsec-<host>/"

    def host_facts(self, deployment: Deployment, host: Host) -> dict:
        peer = peers(deployment, host)[0]
        sas = self.swanctl(deployment, host, "--list-sas", "--ike", peer.name)
        return {"security_associations": sas.strip().splitlines(),
                "esp_crypto_plugins": self.crypto_plugins(deployment, host)}

    def crypto_plugins(self, deployment: Deployment, host: Host) -> dict[str, str]:
        """The plugin that charon on *host* takes each ESP algorithm of the suite from, e.g.
        {"AES_GCM_16": "openssl"}; "missing" when no loaded plugin offers it. With kernel ESP the
        kernel encrypts, whatever charon's plugins are."""
        if self.kernel():
            return {name: "kernel (XFRM)" for name in ESP_ALGORITHMS[self.suite_name]}
        offered = {}
        for line in self.swanctl(deployment, host, "--list-algs").splitlines():
            name, _, plugin = line.strip().rstrip("]").partition("[")
            if plugin:
                offered.setdefault(name, plugin)
        return {name: offered.get(name, "missing") for name in ESP_ALGORITHMS[self.suite_name]}
