"""Pure parts of deploying and measuring: names and addresses of a plan, the isolation probe
plan, run orders, generator command lines and the uperf profile."""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET

import pytest

from seconetbench import config, security
from seconetbench.backends.netns import NetnsBackend
from seconetbench.spec import SetupSpec, WorkloadSpec
from seconetbench.sweep import expand
from seconetbench.workloads import get_workload
from seconetbench.workloads.throughput import uperf_profile

pytestmark = pytest.mark.unit

BENCHMARK_RANGE = ipaddress.ip_network("198.18.0.0/15")


@pytest.mark.parametrize("containers", [2, 8, 32])
def test_plan_names_addresses_and_pairs(containers):
    deployment = NetnsBackend("scnu1").plan(SetupSpec("single", "bridge", "iptables", containers))
    assert len(deployment.containers) == containers
    assert deployment.pairs == [(f"c{i:02d}", f"c{i + 1:02d}") for i in range(1, containers, 2)]
    ips = [c.ip for c in deployment.containers]
    assert len(set(ips)) == containers
    assert all(ipaddress.ip_address(ip) in BENCHMARK_RANGE for ip in ips)
    assert all(c.netns.startswith("scnu1-") for c in deployment.containers)
    assert deployment.hosts[0].netns == "scnu1-h1"
    assert deployment.allowed("c02", "c01") and not deployment.allowed("c01", "c03")


@pytest.mark.parametrize(("filter_name", "expect_dropped"), [("iptables", True), ("none", False)])
def test_probe_plan_covers_pairs_and_one_outsider_per_container(filter_name, expect_dropped):
    deployment = NetnsBackend("scnu1").plan(SetupSpec("single", "bridge", filter_name, 8))
    plan = security.probe_plan(deployment)
    allowed = [(s, d) for s, d, expected in plan if deployment.allowed(s, d)]
    outsiders = [(s, d, e) for s, d, e in plan if not deployment.allowed(s, d)]
    assert len(allowed) == 8  # both directions of 4 pairs
    assert sorted(s for s, _, _ in outsiders) == [c.name for c in deployment.containers]
    assert all(expected is (not expect_dropped) for _, _, expected in outsiders)
    assert all(expected for s, d, expected in plan if deployment.allowed(s, d))


def sweep_of(containers=(2, 8), reps=3):
    return expand(config.validate({
        "repetitions": reps,
        "sweep": {"single": {"solutions": ["bridge"], "filters": ["none", "iptables"], "containers": list(containers)},
                  "workloads": ["a", "b"]},
        "workloads": {"a": {"kind": "latency"}, "b": {"kind": "throughput", "payload_bytes": 64}},
    }))


def test_grouped_order_deploys_each_setup_once():
    order = sweep_of().run_order("grouped")
    setups = [t.setup for t in order]
    changes = sum(1 for a, b in zip(setups, setups[1:]) if a != b)
    assert changes == len(set(setups)) - 1
    assert sorted(order, key=lambda t: t.path) == sorted(sweep_of().targets(), key=lambda t: t.path)


def test_shuffled_order_is_a_seeded_permutation():
    sweep = sweep_of()
    first, again, other = sweep.run_order("shuffled", 1), sweep.run_order("shuffled", 1), sweep.run_order("shuffled", 2)
    assert first == again and first != other
    assert sorted(first, key=lambda t: t.path) == sorted(sweep.targets(), key=lambda t: t.path)
    # the repetitions of a setup are not all back to back
    setups = [t.setup for t in first]
    assert sum(1 for a, b in zip(setups, setups[1:]) if a != b) > len(set(setups))


def test_blocked_order_is_rounds_of_every_cell_with_one_deploy_per_setup_and_round():
    sweep = sweep_of(reps=3, containers=(2, 4, 8))
    order = sweep.run_order("blocked", 5)
    assert order == sweep.run_order("blocked", 5) and order != sweep.run_order("blocked", 6)
    assert sorted(order, key=lambda t: t.path) == sorted(sweep.targets(), key=lambda t: t.path)
    cells = {(t.setup, t.workload) for t in sweep.targets()}
    per_round = len(cells)
    rounds = [order[i:i + per_round] for i in range(0, len(order), per_round)]
    for rep, block in enumerate(rounds, start=1):
        # round r holds repetition r of every cell, and nothing else
        assert {t.rep for t in block} == {rep} and {(t.setup, t.workload) for t in block} == cells
    setups = [t.setup for t in order]
    deploys = 1 + sum(1 for a, b in zip(setups, setups[1:]) if a != b)
    assert deploys <= len(sweep.setups) * 3
    # the setups come in a new order each round (seeded), not the same sequence thrice
    sequences = {tuple(dict.fromkeys(t.setup for t in block)) for block in rounds}
    assert len(sequences) > 1


def test_priorities_follow_the_order():
    sweep = sweep_of()
    order = sweep.run_order("shuffled", 7)
    priorities = sweep.priorities("shuffled", 7)
    assert [priorities[t.path] for t in order] == sorted(priorities.values(), reverse=True)
    assert min(priorities.values()) >= 1  # above the default priority of parse and plot jobs


def workload(kind, **params):
    validated = config.validate({"sweep": {"single": {"solutions": ["bridge"], "filters": ["none"], "containers": [2]},
                                           "workloads": ["w"]},
                                 "workloads": {"w": {"kind": kind, **params}}})
    spec = validated["workloads"]["w"]
    return get_workload(WorkloadSpec("w", kind, {k: v for k, v in spec.items() if k != "kind"}))


def test_ping_command_line():
    argv = workload("latency", count=7, interval_s=0.05, payload_bytes=100).argv("198.19.1.2")
    assert argv == ["ping", "-D", "-n", "-c", "7", "-i", "0.05", "-s", "100", "-W", "1", "198.19.1.2"]


def test_iperf3_command_lines():
    tcp = workload("throughput", payload_bytes=653, duration_s=5).iperf3_client_argv("198.19.1.2")
    assert tcp[:3] == ["iperf3", "-c", "198.19.1.2"] and ["-l", "653"] == tcp[tcp.index("-l"):tcp.index("-l") + 2]
    assert "-u" not in tcp and "--json" in tcp
    udp = workload("throughput", payload_bytes=1370, protocol="udp", udp_rate_mbps=200).iperf3_client_argv("x")
    assert udp[-3:] == ["-u", "-b", "200M"]


def test_generator_choice(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert workload("throughput", payload_bytes=64).generator == "iperf3"
    assert workload("throughput", payload_bytes=64, generator="uperf").generator == "uperf"


def test_uperf_profile_is_valid_xml_with_the_payload():
    root = ET.fromstring(uperf_profile("198.19.1.2", 653, 5, "tcp"))
    assert root.get("name") == "seconetbench-tcp-stream-653"
    flowops = root.findall(".//flowop")
    assert [f.get("type") for f in flowops] == ["connect", "write", "disconnect"]
    assert "remotehost=198.19.1.2" in flowops[0].get("options")
    assert flowops[1].get("options") == "size=653"
    assert root.findall(".//transaction")[1].get("duration") == "5s"
