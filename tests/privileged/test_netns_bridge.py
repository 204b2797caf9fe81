"""The netns backend for real: bridge + iptables with 8 containers.

Proves that every whitelisted pair connects (ICMP and TCP), that non-whitelisted pairs are dropped,
that the isolation check notices when the filter is gone (so it can fail), and that teardown
leaves no namespace, link or process behind.
"""

from __future__ import annotations

import itertools
import subprocess

import pytest

from seconetbench import proc, security
from seconetbench.backends.netns import NetnsBackend
from seconetbench.spec import SetupSpec
from seconetbench.testbed import cleanup, netlink
from tests.conftest import iperf3_server

pytestmark = pytest.mark.privileged


def reachable(deployment, source: str, destination: str) -> bool:
    argv = ["ping", "-n", "-q", "-c", "1", "-W", "1", deployment.container(destination).ip]
    return subprocess.run(proc.in_netns(deployment.container(source).netns, argv),
                          capture_output=True).returncode == 0


def tcp_connects(deployment, source: str, destination: str, port: int = 5299) -> bool:
    """A real TCP handshake to a listener (iperf3 server) in the destination container."""
    sink = deployment.container(destination)
    with iperf3_server(sink.netns, sink.ip, port):
        probe = subprocess.run(proc.in_netns(deployment.container(source).netns, [
            "timeout", "2", "bash", "-c", f"exec 3<>/dev/tcp/{sink.ip}/{port}"]), capture_output=True)
        return probe.returncode == 0


def test_bridge_iptables_whitelist_holds(prefix, tools_available):
    backend = NetnsBackend(prefix)
    deployment = backend.deploy(SetupSpec("single", "bridge", "iptables", 8))
    try:
        assert deployment.facts["verification"]["passed"], deployment.facts["verification"]
        verification = deployment.facts["verification"]
        assert verification["protocols"] == ["icmp", "tcp", "udp"]
        assert verification["expected_dropped"] == 8 * 3
        assert len(deployment.pairs) == 4
        # every whitelisted pair connects, both directions, ICMP and TCP
        for sender, sink in deployment.pairs:
            assert reachable(deployment, sender, sink)
            assert reachable(deployment, sink, sender)
            assert tcp_connects(deployment, sender, sink)
        # every other pair is dropped (ICMP), and one TCP sample
        names = [c.name for c in deployment.containers]
        blocked = [(a, b) for a, b in itertools.permutations(names, 2) if not deployment.allowed(a, b)]
        assert len(blocked) == 8 * 7 - 8
        for a, b in blocked[::5]:
            assert not reachable(deployment, a, b), f"{a}->{b} should be dropped"
        assert not tcp_connects(deployment, "c01", "c04")
        # the rules live in the setup's host namespace, not in the machine's
        host_rules = proc.run_in(deployment.hosts[0].netns, ["iptables", "-S", "FORWARD"]).stdout
        assert f"{prefix.upper()}-ALLOW" in host_rules
        assert prefix.upper() not in subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout
    finally:
        removed = backend.teardown()
    assert len(removed["netns"]) == 9
    assert not any(cleanup.leftovers(prefix).values())
    assert not [n for n in netlink.list_netns() if n.startswith(prefix)]


def test_isolation_check_fails_when_the_filter_is_gone(prefix, tools_available):
    backend = NetnsBackend(prefix)
    deployment = backend.deploy(SetupSpec("single", "bridge", "iptables", 4))
    try:
        chain = f"{prefix.upper()}-ALLOW"
        proc.run_in(deployment.hosts[0].netns, ["iptables", "-F", chain])
        result = security.check_whitelist(deployment)
        assert not result["passed"]
        # every protocol's probe notices the missing filter (so each can fail)
        for protocol in ("icmp", "tcp", "udp"):
            assert any(f.endswith(f"{protocol}: reachable but not whitelisted") for f in result["failures"]), protocol
    finally:
        backend.teardown()


def test_no_filter_reaches_everyone(prefix, tools_available):
    backend = NetnsBackend(prefix)
    deployment = backend.deploy(SetupSpec("single", "bridge", "none", 4))
    try:
        assert deployment.facts["verification"]["passed"]
        assert reachable(deployment, "c01", "c04")
        assert deployment.facts["mtu"][deployment.containers[0].netns][deployment.containers[0].ifname] == 1500
    finally:
        backend.teardown()


def test_reuse_needs_matching_fingerprint_and_health(prefix, tools_available):
    backend = NetnsBackend(prefix)
    setup = SetupSpec("single", "bridge", "none", 2)
    first, reused = backend.deploy_or_reuse(setup)
    assert not reused
    again, reused = backend.deploy_or_reuse(setup)
    assert reused and again.facts["fingerprint"] == first.facts["fingerprint"]
    # a broken testbed (namespace gone) is deployed afresh, not reused
    netlink.delete_netns(first.containers[1].netns)
    assert backend.healthy(again) is not None
    fresh, reused = backend.deploy_or_reuse(setup)
    assert not reused
    # another setup replaces the deployment
    other, reused = backend.deploy_or_reuse(SetupSpec("single", "bridge", "iptables", 2))
    assert not reused and other.setup.filter == "iptables"
    backend.teardown()


def test_cleanup_ends_processes_left_inside_namespaces(prefix, tools_available):
    backend = NetnsBackend(prefix)
    deployment = backend.deploy(SetupSpec("single", "bridge", "none", 2), verify=False)
    netns = deployment.containers[0].netns
    # `ip netns exec` enters the namespace after Popen returns; tearing down before that races
    # with it (it then fails with "setting the network namespace ... Invalid argument"): the
    # sleeper says when it is inside (ip, sh and sleep are one process, each exec'ing the next)
    sleeper = subprocess.Popen(proc.in_netns(netns, ["sh", "-c", "echo inside; exec sleep 300"]),
                               stdout=subprocess.PIPE, text=True)
    assert sleeper.stdout.readline().strip() == "inside"
    assert sleeper.pid in [p.pid for p in proc.processes_in_netns(netlink.netns_inode(netns))]
    removed = backend.teardown()
    assert str(sleeper.pid) in removed["processes"]
    assert sleeper.wait(timeout=5) is not None


def test_isolation_check_tells_protocols_apart(prefix, tools_available):
    backend = NetnsBackend(prefix)
    deployment = backend.deploy(SetupSpec("single", "bridge", "iptables", 4))
    try:
        proc.run_in(deployment.hosts[0].netns, ["iptables", "-I", "FORWARD", "1", "-p", "udp", "-j", "DROP"])
        result = security.check_whitelist(deployment)
        assert not result["passed"]
        assert result["failures"], result
        assert all(f.endswith("udp: whitelisted but unreachable") for f in result["failures"])
        assert len(result["failures"]) == 2 * len(deployment.pairs)  # both directions of each pair
    finally:
        backend.teardown()
