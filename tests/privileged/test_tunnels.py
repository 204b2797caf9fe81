"""Every tunnel this machine supports, for real: 2 hosts, 4 containers, iptables on each host.

Each deploy must prove its tunnel by the underlay capture (only the tunnel's encapsulation on the
wire, no inner data in clear for the VPNs, 1370-byte payloads unfragmented) and record its
implementation, cipher, MTU and setup time. Then a short ping and a 1 s iperf3 run through it,
and a teardown that leaves no namespace, link, daemon or key directory (the `prefix` fixture
checks the testbed; here we also check the state directory and the daemons' names).
"""

from __future__ import annotations

import json

import psutil
import pytest

from seconetbench import preflight, proc, technology
from seconetbench.backends.netns import NetnsBackend, underlay_switch
from seconetbench.spec import SetupSpec
from seconetbench.testbed import cleanup, netlink
from seconetbench.tunnels import _common
from seconetbench.tunnels.ipsec import Ipsec
from tests.conftest import iperf3_server

pytestmark = pytest.mark.privileged

DAEMONS = ("wireguard-go", "openvpn", "tincd", "charon")


def supported_suite(monkeypatch, tunnel: str) -> None:
    """IPsec's default suite (AES-256-GCM) needs strongSwan's gcm plugin; without it, run the
    other suite so that the tunnel itself is still tested (the preflight names the package)."""
    if tunnel == "ipsec" and preflight.unsupported_reason(SetupSpec("multi", "bridge", "none", 4, tunnel="ipsec", hosts=2)):
        monkeypatch.setattr(Ipsec, "DEFAULT_SUITE", "aes256-sha1")


def daemons_in_hosts(deployment) -> list[psutil.Process]:
    inodes = [netlink.netns_inode(h.netns) for h in deployment.hosts]
    return [p for p in proc.processes_in_netns(*inodes) if p.name() in DAEMONS]


def iperf3_bytes(deployment, sender: str, sink: str) -> int:
    destination = deployment.container(sink)
    with iperf3_server(destination.netns, destination.ip):
        client = proc.run_in(deployment.container(sender).netns,
                             ["iperf3", "-c", destination.ip, "-t", "1", "-J"], timeout=20)
        return json.loads(client.stdout)["end"]["sum_received"]["bytes"]


@pytest.mark.parametrize("tunnel", technology.names("tunnel", backend="netns"))
def test_tunnel_deploys_carries_traffic_and_leaves_nothing(tunnel, prefix, tools_available, monkeypatch):
    supported_suite(monkeypatch, tunnel)
    setup = SetupSpec("multi", "bridge", "iptables", 4, tunnel=tunnel, hosts=2)
    reason = preflight.unsupported_reason(setup)
    if reason:
        pytest.skip(f"this machine cannot run {tunnel}: {reason}")
    backend = NetnsBackend(prefix)
    deployment = backend.deploy(setup)
    try:
        facts = deployment.facts["tunnel"]
        assert deployment.facts["verification"]["passed"], deployment.facts["verification"]
        capture = facts["underlay_capture"]
        assert capture["passed"], capture
        assert capture["fragments"] == 0
        if tunnel != "routing":
            assert capture["encapsulated"] > 0 and capture["plain"] == 0, capture
        assert facts["implementation"] and facts["setup_s"] > 0
        assert facts["path_mtu"] == 1500 - facts["overhead_bytes"] or tunnel == "ipsec"
        assert facts["path_mtu"] >= _common.MIN_PATH_MTU
        # the effective MTU of every container link is the tunnel's
        for container in deployment.containers:
            assert deployment.facts["mtu"][container.netns][container.ifname] == facts["path_mtu"]
        # every pair crosses hosts
        assert all(deployment.container(a).host != deployment.container(b).host for a, b in deployment.pairs)
        hosts = deployment.describe()["hosts"]
        assert [h["underlay_ip"] for h in hosts] == ["198.18.0.1", "198.18.0.2"]
        sender, sink = deployment.pairs[0]
        ping = proc.run_in(deployment.container(sender).netns,
                           ["ping", "-n", "-q", "-c", "5", "-i", "0.05", deployment.container(sink).ip], check=False)
        assert ping.returncode == 0, ping.stdout
        assert iperf3_bytes(deployment, sender, sink) > 0
        daemons = daemons_in_hosts(deployment)
        if tunnel in ("wireguard", "openvpn", "ipsec", "tinc"):
            assert daemons, f"no {tunnel} daemon runs in the hosts"
    finally:
        backend.teardown()
    assert not cleanup.state_dir(prefix).exists(), "the state directory (keys, configs) is left"
    assert not [d for d in daemons if d.is_running()], daemons


def test_capture_check_fails_when_the_wire_is_not_the_tunnel(prefix, tools_available):
    """Plain routed traffic checked against an encrypted tunnel's wire: the check must fail."""
    backend = NetnsBackend(prefix)
    deployment = backend.deploy(SetupSpec("multi", "bridge", "none", 4, tunnel="routing", hosts=2))
    try:
        result = _common.check_underlay(deployment, _common.Wire("WireGuard UDP 51820", ((17, 51820),), encrypted=True))
        assert not result["passed"]
        assert result["plain"] > 0 and result["marker_in_clear"] > 0
        assert any("not tunnelled" in p for p in result["problems"])
    finally:
        backend.teardown()


def test_three_hosts_spread_pairs_and_route_through_the_switch(prefix, tools_available):
    backend = NetnsBackend(prefix)
    deployment = backend.deploy(SetupSpec("multi", "bridge", "none", 6, tunnel="wireguard", hosts=3))
    try:
        assert [c.host for c in deployment.containers] == ["h1", "h2", "h3", "h1", "h2", "h3"]
        assert deployment.facts["tunnel"]["underlay_capture"]["passed"]
        assert underlay_switch(prefix) in deployment.facts["tunnel"]["underlay_capture"]["where"]
    finally:
        backend.teardown()


def test_a_cipher_suite_chosen_in_the_setup_is_the_one_that_runs(prefix):
    from seconetbench.backends.netns import NetnsBackend
    from seconetbench.spec import SetupSpec

    backend = NetnsBackend(prefix)
    setup = SetupSpec.parse("multi-ipsec-none-c4-xaes256_sha1", multi_solution="bridge")
    try:
        deployment = backend.deploy(setup)
        assert deployment.facts["tunnel"]["suite"] == "aes256-sha1"
        assert "CBC" in deployment.facts["tunnel"]["cipher"]
        assert deployment.facts["verification"]["passed"]
    finally:
        backend.teardown()
