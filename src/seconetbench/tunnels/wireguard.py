"""WireGuard between every pair of hosts, configured with `wg`: the kernel's implementation where
the probe creates a wireguard device (seconetbench.probes), else the userspace wireguard-go on a
TUN device; sweep.multi.implementations.wireguard pins one.

wireguard-go listens for `wg` on /run/wireguard/<ifname>.sock; each host's daemon and its `wg`
calls get a private /run (tunnel/wg/<host>/run) so that nothing lands in the machine's /run.
Addresses 198.18.21.h/24 on the device; each peer is allowed its transfer address and its
container subnet, and those subnets are routed out of the device.
"""

from __future__ import annotations

import subprocess
from functools import lru_cache

from seconetbench import probes, proc
from seconetbench.backends.base import Deployment, Host
from seconetbench.technology import Requirement, register
from seconetbench.testbed import netlink
from seconetbench.tunnels._common import (
    UDP, Tunnel, Wire, container_subnet, key_dir, peers, spawn_daemon, transfer_ip, tunnel_dir,
    wait_for, with_private_run, write_private)
from seconetbench.tunnels.routing import route_subnets

PORT = 51820
NET = 21  # transfer network 198.18.21.0/24
CIPHER = "ChaCha20-Poly1305"  # the protocol's only suite (no negotiation)


@lru_cache(maxsize=1)
def wireguard_go_version() -> str:
    result = subprocess.run(["wireguard-go", "--version"], capture_output=True, text=True)
    return (result.stdout.strip() or result.stderr.strip()).splitlines()[0]


@register
class Wireguard(Tunnel):
    name = "wireguard"
    description = "WireGuard (kernel, else wireguard-go), UDP 51820, ChaCha20-Poly1305, full mesh of hosts"
    wire = Wire(f"WireGuard UDP {PORT}", ((UDP, PORT),), encrypted=True)
    implementations = ("kernel", "userspace")
    kernel_probe = "wireguard"

    def kernel(self) -> bool:
        return self.resolved_implementation() == "kernel"

    def requires(self, setup):
        needs = [*super().requires(setup), Requirement("binary", "wg", "Debian package wireguard-tools")]
        if self.kernel():
            needs.append(probes.requirement("wireguard", "kernel WireGuard devices"))
        else:
            needs += [Requirement("kernel", "CONFIG_TUN", "wireguard-go's TUN device"),
                      Requirement("binary", "wireguard-go", "Debian package wireguard-go: the userspace "
                                                            "implementation")]
        return needs

    def implementation(self) -> str:
        return "kernel" if self.kernel() else f"userspace ({wireguard_go_version()})"

    def cipher(self) -> str:
        return CIPHER

    def overhead(self) -> int:
        return 20 + 8 + 32  # outer IPv4, UDP, WireGuard header (16) and Poly1305 tag (16); pads to 16

    def device(self, deployment: Deployment, host: Host) -> str:
        return f"{deployment.prefix}-wg{host.index}"

    def run_dir(self, deployment: Deployment, host: Host):
        return tunnel_dir(deployment, "wg", host.name, "run")

    def wg(self, deployment: Deployment, host: Host, *args: str, input: str | None = None) -> str:
        argv = ["wg", *args]
        if not self.kernel():
            argv = with_private_run(self.run_dir(deployment, host), argv)
        return proc.run_in(host.netns, argv, input=input).stdout

    def prepare(self, deployment: Deployment) -> None:
        """A key pair per host: <host>.key (private) and <host>.pub in key_dir (start reads a
        peer's public key from its file: it may run in another process, on another machine)."""
        keys = key_dir(deployment, "wireguard")
        for host in deployment.hosts:
            private = proc.run(["wg", "genkey"]).stdout
            write_private(keys / f"{host.name}.key", private)
            write_private(keys / f"{host.name}.pub", proc.run(["wg", "pubkey"], input=private).stdout)

    def start(self, deployment: Deployment) -> None:
        keys = key_dir(deployment, "wireguard")
        local = deployment.local_hosts()
        for host in local:
            device = self.device(deployment, host)
            if self.kernel():
                with netlink.route(host.netns) as sock:
                    sock.link("add", ifname=device, kind="wireguard")
            else:
                run = self.run_dir(deployment, host)
                spawn_daemon(deployment, host, f"wireguard-go-{host.name}",
                             with_private_run(run, ["wireguard-go", "-f", device]))
                socket = run / "wireguard" / f"{device}.sock"
                wait_for(f"wireguard-go's socket {socket}", socket.exists,
                         hint=f"see {tunnel_dir(deployment, 'logs')}/wireguard-go-{host.name}.err")
        for host in local:
            device = self.device(deployment, host)
            # the key goes in on stdin: the private /run hides the key directory from `wg`
            args = ["set", device, "listen-port", str(PORT), "private-key", "/dev/stdin"]
            for peer in peers(deployment, host):
                args += ["peer", (keys / f"{peer.name}.pub").read_text().strip(), "endpoint", f"{peer.underlay_ip}:{PORT}",
                         "allowed-ips", f"{transfer_ip(NET, peer)}/32,{container_subnet(peer)}"]
            self.wg(deployment, host, *args, input=(keys / f"{host.name}.key").read_text())
            with netlink.route(host.netns) as sock:
                index = netlink.index(sock, device)
                sock.addr("add", index=index, address=transfer_ip(NET, host), prefixlen=24)
                sock.link("set", index=index, mtu=self.mtu(), state="up")
        for host in local:
            route_subnets(deployment, self.device(deployment, host), via=lambda peer: None, hosts=[host])

    def describe(self, deployment):
        return {**super().describe(deployment), "port": PORT,
                "devices": [self.device(deployment, h) for h in deployment.hosts]}
