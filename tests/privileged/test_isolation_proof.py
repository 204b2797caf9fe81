"""The deploy-time isolation proof ends as soon as its positive controls (the probes expected to
arrive) have arrived and the expected drops have had their wait (security.drop_wait_s). These
tests show that ending early still catches a broken filter: one non-whitelisted pair opened live,
on every filter that can do so, fails the proof for exactly that pair and each protocol; a
whitelisted pair whose traffic is dropped makes the proof wait the full timeout and fail.
(tests/privileged/test_netns_bridge.py: a flushed chain, and UDP alone dropped.)"""

from __future__ import annotations

import socket

import pytest

from seconetbench import proc, security, technology
from seconetbench.backends.netns import NetnsBackend
from seconetbench.spec import SetupSpec

pytestmark = pytest.mark.privileged


@pytest.mark.parametrize(("solution", "filter_name"), [
    ("bridge", "iptables"), ("bridge", "nftables"), ("ovs", "ovs"), ("ebpf", "ebpf"),
])
def test_one_pair_opened_live_fails_the_proof_for_that_pair_only(prefix, tools_available, solution, filter_name):
    backend = NetnsBackend(prefix)
    deployment = backend.deploy(SetupSpec("single", solution, filter_name, 8))
    try:
        assert deployment.facts["verification"]["passed"], deployment.facts["verification"]
        assert deployment.facts["verification"]["drop_wait_s"] < security.PROBE_TIMEOUT_S  # it ended early
        outsiders = [(s, d) for s, d, expected in security.probe_plan(deployment) if not expected]
        a, b = outsiders[0]
        filt = technology.get("filter", filter_name)
        filt.update_pair(deployment, a, b)
        result = security.check_whitelist(deployment)
        opened = [(s, d) for s, d in outsiders if {s, d} == {a, b}]
        assert sorted(result["failures"]) == sorted(
            f"{s}->{d} {protocol}: reachable but not whitelisted" for s, d in opened for protocol in security.PROTOCOLS)
        filt.remove_pair(deployment, a, b)
        assert security.check_whitelist(deployment)["passed"]
    finally:
        backend.teardown()


def test_a_missing_control_makes_the_proof_wait_the_full_timeout_and_fail(prefix, tools_available):
    backend = NetnsBackend(prefix)
    deployment = backend.deploy(SetupSpec("single", "bridge", "iptables", 8))
    try:
        sender, sink = deployment.pairs[0]
        proc.run_in(deployment.hosts[0].netns, [
            "iptables", "-I", "FORWARD", "1", "-p", "icmp", "--icmp-type", "echo-request",
            "-d", deployment.container(sink).ip, "-j", "DROP"])
        result = security.check_whitelist(deployment)
        assert result["failures"] == [f"{sender}->{sink} icmp: whitelisted but unreachable"]
        assert result["drop_wait_s"] == security.PROBE_TIMEOUT_S
    finally:
        backend.teardown()


def test_probing_a_workload_port_leaves_it_free_for_the_next_workload(prefix, tools_available):
    """The isolation workload probes the workloads' own ports (D-ITG's 10001 among them) while the
    destination listens there; the next workload binds that port without SO_REUSEADDR (ITGRecv).
    A connection the listener closed first would hold the port in TIME_WAIT for 60 s and fail
    that bind (a tcp100 target failed so): the proof resets its accepted connections instead."""
    backend = NetnsBackend(prefix)
    deployment = backend.deploy(SetupSpec("single", "bridge", "none", 2))
    try:
        sender, sink = deployment.pairs[0]
        probes = security.probe_ports(deployment, [(sender, sink, True)], ports=(10001,), protocols=("tcp",))
        assert [p.reached for p in probes] == [True]  # the connection was made and accepted
        listener = security.socket_in(deployment.container(sink), socket.SOCK_STREAM)  # no SO_REUSEADDR
        try:
            listener.bind((deployment.container(sink).ip, 10001))  # EADDRINUSE if a TIME_WAIT held it
        finally:
            listener.close()
    finally:
        backend.teardown()
