"""The rule sets the netfilter filters load, where they load them, and which combinations they refuse.

No kernel involved: these check the text given to iptables-restore and nft, on planned
deployments. tests/privileged/test_single_host_matrix.py loads them for real.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re

import pytest

from seconetbench import preflight, technology
from seconetbench.backends.netns import NetnsBackend
from seconetbench.filters._common import PLACEMENTS, enforcement_points, extra_flows
from seconetbench.solutions.routing import GATEWAY
from seconetbench.spec import SetupSpec

pytestmark = pytest.mark.unit

NEVER_ASSIGNED = ipaddress.ip_network("198.18.128.0/17")
ASSIGNED = [ipaddress.ip_network("198.18.0.0/24"), ipaddress.ip_network("198.19.0.0/16"),
            ipaddress.ip_network(f"{GATEWAY}/32")]
ENFORCING = ("iptables", "nftables")
ELEMENT = re.compile(r"\d+\.\d+\.\d+\.\d+ \. \d+\.\d+\.\d+\.\d+")  # one (source . destination)


def planned(solution: str, filter_name: str, containers: int = 8, extra_rules: int = 0):
    return NetnsBackend("scnu1").plan(SetupSpec("single", solution, filter_name, containers, extra_rules=extra_rules))


def test_extra_flows_are_distinct_and_never_match_an_assigned_address():
    flows = list(extra_flows(40000))  # crosses the 16384 boundary where the destination changes
    assert len(set(flows)) == 40000
    addresses = {ipaddress.ip_address(a) for flow in flows for a in flow}
    assert all(a in NEVER_ASSIGNED for a in addresses)
    assert not any(a in net for a in addresses for net in ASSIGNED)
    with pytest.raises(ValueError, match="never-matching pairs"):
        next(extra_flows(2 ** 28 + 1))


@pytest.mark.parametrize("solution", ["bridge", "routing"])
def test_host_placement_is_one_point_per_host_with_every_direction(solution):
    deployment = planned(solution, "iptables")
    (point,) = enforcement_points(deployment)
    assert point.netns == deployment.hosts[0].netns and point.interface is None
    assert len(point.flows) == 2 * len(deployment.pairs)
    assert ("198.19.1.1", "198.19.1.2") in point.flows and ("198.19.1.2", "198.19.1.1") in point.flows


def test_macvlan_placement_admits_only_the_peers_of_each_container():
    deployment = planned("macvlan", "iptables")
    points = enforcement_points(deployment)
    assert [p.netns for p in points] == [c.netns for c in deployment.containers]
    for point, container in zip(points, deployment.containers):
        assert point.interface == container.ifname
        assert all(destination == container.ip for _, destination in point.flows)
    # together they hold every allowed direction exactly once
    flows = [f for p in points for f in p.flows]
    assert len(flows) == len(set(flows)) == 2 * len(deployment.pairs)


def test_iptables_ruleset_puts_extra_rules_before_the_whitelist_and_drop_last():
    deployment = planned("routing", "iptables", extra_rules=5)
    filt = technology.get("filter", "iptables")
    (point,) = enforcement_points(deployment)
    lines = filt.ruleset(deployment, point, 5).splitlines()
    chain = filt.chain(deployment)
    assert f"-A FORWARD -j {chain}" in lines
    rules = [line for line in lines if line.startswith(f"-A {chain}")]
    assert len(rules) == 5 + len(point.flows) + 1
    assert all("-s 198.18.128." in r for r in rules[:5])
    assert all("-s 198.19.1." in r for r in rules[5:-1])
    assert rules[-1] == f"-A {chain} -j DROP"
    assert lines[-1] == "COMMIT"


def test_iptables_in_containers_hangs_from_input_of_the_container_interface():
    deployment = planned("macvlan", "iptables")
    filt = technology.get("filter", "iptables")
    point = enforcement_points(deployment)[0]
    text = filt.ruleset(deployment, point)
    assert f"-A INPUT -i {deployment.containers[0].ifname} -j {filt.chain(deployment)}" in text
    assert "FORWARD" not in text


def test_iptables_live_addition_goes_between_extra_rules_and_whitelist():
    deployment = planned("bridge", "iptables", extra_rules=100)
    filt = technology.get("filter", "iptables")
    (point,) = enforcement_points(deployment, [("c01", "c03")])
    text = filt.addition(deployment, point)
    chain = filt.chain(deployment)
    assert f"-I {chain} 101 -s 198.19.1.1/32 -d 198.19.1.3/32 -j ACCEPT" in text
    assert f"-I {chain} 101 -s 198.19.1.3/32 -d 198.19.1.1/32 -j ACCEPT" in text


def test_nftables_host_ruleset_is_one_set_lookup_in_the_forward_hook():
    deployment = planned("bridge", "nftables", extra_rules=3)
    filt = technology.get("filter", "nftables")
    (point,) = enforcement_points(deployment)
    text = filt.ruleset(deployment, point, 3)
    assert text.startswith(f"table inet {deployment.prefix}_filter {{")
    assert "type filter hook forward priority filter; policy accept;" in text
    assert "\t\tip saddr . ip daddr @allowed accept\n\t\tdrop\n" in text
    assert len(ELEMENT.findall(text)) == 3 + len(point.flows)
    assert "198.18.128.2 . 198.18.192.0" in text and "198.19.1.8 . 198.19.1.7" in text


def test_nftables_in_containers_scopes_the_drop_to_the_container_interface():
    deployment = planned("macvlan", "nftables")
    filt = technology.get("filter", "nftables")
    point = enforcement_points(deployment)[1]
    text = filt.ruleset(deployment, point)
    scope = f'iifname "{deployment.containers[1].ifname}" '
    assert "hook input" in text and f"{scope}drop" in text and f"{scope}ip saddr . ip daddr @allowed accept" in text
    assert ELEMENT.findall(text) == ["198.19.1.1 . 198.19.1.2"]  # only the direction towards c02
    empty = filt.ruleset(deployment, dataclasses.replace(point, flows=()))
    assert "elements" not in empty  # nft rejects an empty element list


def test_nftables_live_addition_adds_both_directions_to_the_set():
    deployment = planned("routing", "nftables")
    filt = technology.get("filter", "nftables")
    (point,) = enforcement_points(deployment, [("c01", "c03")])
    assert filt.addition(deployment, point) == (
        f"add element inet {deployment.prefix}_filter allowed {{ 198.19.1.1 . 198.19.1.3,\n"
        "\t\t\t198.19.1.3 . 198.19.1.1 }\n")


@pytest.mark.parametrize("filter_name", ENFORCING)
def test_describe_counts_rules_per_enforcement_point(filter_name):
    deployment = planned("macvlan", filter_name, extra_rules=10)
    facts = technology.get("filter", filter_name).describe(deployment)
    assert facts["placement"] == "container" and facts["enforcement_points"] == 8
    assert facts["whitelist_entries"] == 8 and facts["extra_rules"] == 10
    assert facts["backend"] in ("nf_tables", "legacy") and facts["version"]
    if filter_name == "iptables":
        assert facts["rules"] == 8 + 8 * (10 + 1)
    else:
        assert facts["set_elements"] == 8 + 8 * 10 and facts["rules"] == 16


@pytest.mark.parametrize("filter_name", ["none", *ENFORCING])
@pytest.mark.parametrize("solution", sorted(PLACEMENTS))
def test_verified_combinations_are_compatible(solution, filter_name):
    assert preflight.incompatibility(SetupSpec("single", solution, filter_name, 2)) is None


@pytest.mark.parametrize("filter_name", ENFORCING)
@pytest.mark.parametrize("solution", ["ovs", "ebpf", "some_future_solution"])
def test_unverified_solutions_are_refused_with_a_reason(solution, filter_name):
    reason = technology.get("filter", filter_name).incompatibility(SetupSpec("single", solution, filter_name, 2))
    assert reason and filter_name in reason and solution in reason


def test_preflight_reports_every_excluded_combination_with_its_reason():
    for combo in preflight.report()["combinations"]:
        if combo["filter"] in ENFORCING and combo["solution"] not in PLACEMENTS:
            assert not combo["supported"] and combo["reason"], combo


@pytest.mark.parametrize("solution", ["bridge", "macvlan"])
def test_a_host_agent_loads_only_its_own_points_with_the_same_flows(solution):
    """With Deployment.here set (a host agent of the ssh backend), apply() loads the points of
    that host only; the flows of each point are those of the whole deployment's."""
    setup = SetupSpec("multi", solution, "iptables", 8, tunnel="vxlan", hosts=2)
    deployment = NetnsBackend("scnu1").plan(setup)
    everywhere = enforcement_points(deployment)
    assert enforcement_points(deployment, local_only=True) == everywhere  # here=None: every host
    deployment.here = "h2"
    local = enforcement_points(deployment, local_only=True)
    assert local and local == [p for p in everywhere if p.host == "h2"]
    on_h2 = {deployment.host("h2").netns} | {c.netns for c in deployment.containers if c.host == "h2"}
    assert {p.netns for p in local} <= on_h2
    assert enforcement_points(deployment) == everywhere  # the cross-host steps still see all points
