"""The single-host design space for real: {bridge, routing, macvlan} x {none, iptables, nftables}.

Every combination is deployed with 8 containers (the deploy's isolation check must pass), probed
with our own TCP and ICMP connections, measured once through the runner, has one more pair
whitelisted live where a filter enforces the whitelist, and is torn down with nothing left.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from seconetbench import config, proc, runner, technology
from seconetbench.backends.netns import NetnsBackend
from seconetbench.filters._common import enforcement_points
from seconetbench.meta import read_meta
from seconetbench.spec import SetupSpec
from seconetbench.testbed import cleanup, netlink
from tests.conftest import parsed_as_the_workflow_does
from tests.privileged.test_netns_bridge import reachable, tcp_connects

pytestmark = pytest.mark.privileged

SOLUTIONS = ("bridge", "routing", "macvlan")
FILTERS = ("none", "iptables", "nftables")
ENFORCING = ("iptables", "nftables")
CONTAINERS = 8


def latency_config(prefix: str, results, setup: SetupSpec) -> dict:
    return config.validate({
        "results_dir": str(results), "repetitions": 1, "testbed": {"prefix": prefix},
        "sweep": {"single": {"solutions": [setup.solution], "filters": [setup.filter],
                             "containers": [setup.containers]}, "workloads": ["lat", "tp"]},
        "workloads": {"lat": {"kind": "latency", "count": 3, "interval_s": 0.05},
                      "tp": {"kind": "throughput", "payload_bytes": 1370, "duration_s": 1, "generator": "iperf3"}},
    })


def live_entries(deployment, filter_name: str, netns: str) -> int:
    """Whitelist plus extra entries that the kernel really holds at one enforcement point."""
    if filter_name == "iptables":
        chain = technology.get("filter", "iptables").chain(deployment)
        rules = proc.run_in(netns, ["iptables", "-S", chain]).stdout.splitlines()
        return sum(1 for rule in rules if rule.endswith("-j ACCEPT"))
    table = technology.get("filter", "nftables").table(deployment)
    listing = json.loads(proc.run_in(netns, ["nft", "-j", "list", "set", "inet", table, "allowed"]).stdout)
    return next(len(item["set"].get("elem", [])) for item in listing["nftables"] if "set" in item)


@pytest.mark.parametrize("filter_name", FILTERS)
@pytest.mark.parametrize("solution", SOLUTIONS)
def test_combination_isolates_measures_and_updates(prefix, tmp_path, tools_available, solution, filter_name):
    setup = SetupSpec("single", solution, filter_name, CONTAINERS)
    backend = NetnsBackend(prefix)
    deployment = backend.deploy(setup)
    try:
        verification = deployment.facts["verification"]
        assert verification["passed"], verification["failures"]
        enforced = filter_name in ENFORCING
        assert verification["expected_dropped"] == (CONTAINERS * 3 if enforced else 0)
        # The containers' interface carries the name the deployment states (healthy() relies on it).
        assert backend.healthy(deployment) is None
        # Our own probes: the whitelisted pair completes a TCP handshake, c01 -> c03 only without a filter.
        assert tcp_connects(deployment, "c01", "c02")
        assert tcp_connects(deployment, "c01", "c03") is not enforced

        # One short real measurement through the runner, reusing this deployment.
        out = tmp_path / f"results/raw/{setup.id}/lat/rep1"
        runner.measure(latency_config(prefix, tmp_path / "results", setup), setup.id, "lat", 1, out)
        meta = read_meta(out)
        assert meta["deployment"]["reused"]
        assert meta["deployment"]["solution"]["name"] == solution
        parsed = parsed_as_the_workflow_does(out, tmp_path / "lat.parquet")
        assert len(parsed) == 3 * len(deployment.pairs) and parsed["received"].all()
        # and a short throughput run: every pair moves data through this solution and filter
        out = tmp_path / f"results/raw/{setup.id}/tp/rep1"
        runner.measure(latency_config(prefix, tmp_path / "results", setup), setup.id, "tp", 1, out)
        streams = parsed_as_the_workflow_does(out, tmp_path / "tp.parquet")
        assert set(streams["pair"]) == {f"{a}-{b}" for a, b in deployment.pairs}
        assert (streams.groupby("pair")["bytes"].sum() > 0).all()

        if enforced:
            filt = technology.get("filter", filter_name)
            facts = deployment.facts["filter"]
            points = enforcement_points(deployment)
            assert facts["enforcement_points"] == len(points) == (CONTAINERS if solution == "macvlan" else 1)
            assert sum(live_entries(deployment, filter_name, p.netns) for p in points) == facts["whitelist_entries"]
            # Rule update: a dropped pair connects once whitelisted live; its neighbour stays dropped.
            assert not reachable(deployment, "c01", "c03")
            seconds = filt.update_pair(deployment, "c01", "c03")
            assert seconds > 0
            assert reachable(deployment, "c01", "c03") and reachable(deployment, "c03", "c01")
            assert tcp_connects(deployment, "c03", "c01")
            assert not reachable(deployment, "c01", "c04")
    finally:
        backend.teardown()
    assert not any(cleanup.leftovers(prefix).values())
    assert not [name for name in netlink.list_netns() if name.startswith(prefix)]


@pytest.mark.parametrize("filter_name", ENFORCING)
@pytest.mark.parametrize("solution", SOLUTIONS)
def test_extra_rules_are_installed_and_never_match(prefix, tools_available, solution, filter_name):
    backend = NetnsBackend(prefix)
    deployment = backend.deploy(SetupSpec("single", solution, filter_name, CONTAINERS, extra_rules=1000))
    try:
        assert deployment.facts["verification"]["passed"], deployment.facts["verification"]["failures"]
        assert deployment.facts["timings"]["filter_apply_s"] > 0
        facts = deployment.facts["filter"]
        assert facts["extra_rules"] == 1000
        for point in enforcement_points(deployment):
            assert live_entries(deployment, filter_name, point.netns) == 1000 + len(point.flows)
    finally:
        backend.teardown()
    assert not any(cleanup.leftovers(prefix).values())


def test_nothing_of_ours_reaches_the_root_namespace(prefix, tools_available):
    """The host filter and the macvlan parent live in the setup's host namespace only."""
    backend = NetnsBackend(prefix)
    deployment = backend.deploy(SetupSpec("single", "macvlan", "nftables", 2))
    try:
        host = deployment.hosts[0].netns
        parent, peer = deployment.names.macvlan_parent(1)
        assert {parent, peer} <= set(netlink.link_names(host))
        assert not [name for name in netlink.link_names() if name.startswith(prefix)]
        assert f"{prefix}_filter" not in subprocess.run(["nft", "list", "tables"], capture_output=True,
                                                        text=True, check=True).stdout
    finally:
        backend.teardown()
