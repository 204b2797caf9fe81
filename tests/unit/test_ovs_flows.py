"""The `ovs` filter's flow table and the compatibility table of the `ovs` solution and filter,
without a switch: flows are checked with OVS's own offline parser (ovs-ofctl parse-flows)."""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess

import pytest

from seconetbench import config, technology
from seconetbench.backends.netns import NetnsBackend
from seconetbench.filters._common import EXTRA_SOURCES
from seconetbench.filters.ovs import OPENFLOW_VERSION, flow_table
from seconetbench.spec import SetupSpec
from seconetbench.sweep import expand

pytestmark = pytest.mark.unit

NW_SRC = re.compile(r"nw_src=([\d.]+)")


def planned(containers: int = 8, extra_rules: int = 0):
    """A deployment's names and addresses, without creating anything."""
    return NetnsBackend("scnu1").plan(SetupSpec("single", "ovs", "ovs", containers, extra_rules=extra_rules))


def test_table_allows_arp_and_both_directions_of_each_pair_then_drops():
    deployment = planned(8)
    lines = flow_table(deployment).splitlines()
    assert lines[0] == "priority=50,arp,actions=NORMAL"
    assert lines[-1] == "priority=0,actions=drop"
    allowed = {tuple(re.findall(r"nw_(?:src|dst)=([\d.]+)", line)) for line in lines[1:-1]}
    expected = set()
    for sender, sink in deployment.pairs:
        a, b = deployment.container(sender).ip, deployment.container(sink).ip
        expected |= {(a, b), (b, a)}
    assert allowed == expected and len(lines) == 2 + 2 * 4


def test_extra_flows_come_first_are_distinct_and_never_match_a_container():
    deployment = planned(8, extra_rules=1000)
    lines = flow_table(deployment, 1000).splitlines()
    extras, whitelist = lines[1:1001], lines[1001:-1]
    sources = [ipaddress.ip_address(NW_SRC.search(line).group(1)) for line in extras]
    assert all(source in EXTRA_SOURCES for source in sources)
    assert len(set(extras)) == 1000
    containers = {ipaddress.ip_address(c.ip) for c in deployment.containers}
    assert not containers & set(sources)
    assert {ipaddress.ip_address(NW_SRC.search(line).group(1)) for line in whitelist} == containers


@pytest.mark.skipif(shutil.which("ovs-ofctl") is None, reason="needs ovs-ofctl (openvswitch-common)")
def test_ovs_parses_the_table(tmp_path):
    table = tmp_path / "filter.flows"
    table.write_text(flow_table(planned(4), extra_rules=50))
    result = subprocess.run(["ovs-ofctl", "-O", OPENFLOW_VERSION, "parse-flows", str(table)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("OFPT_FLOW_MOD") == 1 + 50 + 4 + 1


def test_sweep_excludes_what_cannot_see_ovs_traffic_with_the_reason(tmp_path):
    cfg = config.validate({
        "results_dir": str(tmp_path), "repetitions": 1,
        "sweep": {"single": {"solutions": ["bridge", "ovs"], "filters": ["none", "iptables", "ovs"],
                             "containers": [2]}, "workloads": ["lat"]},
        "workloads": {"lat": {"kind": "latency", "count": 2}},
    })
    sweep = expand(cfg)
    kept = {s.id for s in sweep.setups}
    assert {"single-ovs-none-c2", "single-ovs-ovs-c2", "single-bridge-iptables-c2"} <= kept
    reasons = {e.setup.id: e.reason for e in sweep.excluded}
    assert "does not see traffic switched by Open vSwitch" in reasons["single-ovs-iptables-c2"]
    assert "use solution ovs" in reasons["single-bridge-ovs-c2"]


def test_ovs_solution_is_single_host_only():
    reason = technology.get("solution", "ovs").incompatibility(
        SetupSpec("multi", "ovs", "none", 4, tunnel="vxlan", hosts=2))
    assert reason is not None and "single-host" in reason
