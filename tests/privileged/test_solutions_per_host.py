"""Solutions and filters build one host at a time (Deployment.here), as the ssh backend's host
agents will: a host's build creates and touches nothing of the other hosts, and building the
hosts one by one yields the same devices, addresses, routes and rules as building all at once.

The multi-host setups are planned by the netns backend; only the hosts' namespaces
(backends.netns.build_namespaces), the solution and the filter are built, not the underlay or
the tunnel (whose first-packet check spans hosts, see tests/privileged/test_tunnels.py).
"""

from __future__ import annotations

import json

import pytest

from seconetbench import preflight, proc
from seconetbench.backends.netns import NetnsBackend, build_namespaces
from seconetbench.spec import SetupSpec
from seconetbench.testbed import cleanup, netlink

pytestmark = pytest.mark.privileged

CONTAINERS = 4  # two per host
CARRIER_FLAGS = ("LOWER_UP", "NO-CARRIER", "M-DOWN")


def solution_and_filter(setup: SetupSpec) -> list:
    """The setup's solution and filter (not its tunnel), each able to run here."""
    techs = [tech for tech in preflight.setup_technologies(setup) if tech.kind != "tunnel"]
    for tech in techs:
        missing = [why for why in (r.missing() for r in tech.requires(setup)) if why]
        assert not missing, f"{tech.kind} {tech.name} cannot run here: {missing}"
    return techs


def build(deployment, here: str | None) -> None:
    """What a host agent builds for host *here* (None: every host, as the netns backend does)."""
    deployment.here = here
    build_namespaces(deployment)
    for tech in solution_and_filter(deployment.setup):
        tech.apply(deployment)


def namespaces_of(deployment, host: str) -> list[str]:
    return [deployment.host(host).netns] + [c.netns for c in deployment.containers if c.host == host]


def state(netns: str) -> dict:
    """What a build leaves in *netns*, without what differs from one build to the next by nature
    (MAC addresses, bridge timers and ids, rule counters, iptables-save's timestamps) and without
    the carrier state, which the kernel settles asynchronously after a link goes up (a bridge
    reads UNKNOWN, then UP; a route via it is linkdown until then): the administrative UP flag
    is what a build sets."""
    def ip(*argv: str) -> list[dict]:
        return json.loads(proc.run_in(netns, ["ip", "-j", *argv]).stdout or "[]")

    links = sorted((link["ifname"], link.get("linkinfo", {}).get("info_kind"), link["mtu"], link.get("master"),
                    tuple(f for f in link["flags"] if f not in CARRIER_FLAGS)) for link in ip("-d", "link", "show"))
    addresses = sorted((a["ifname"], i["local"], i["prefixlen"]) for a in ip("addr", "show") for i in a["addr_info"])
    routes = sorted(json.dumps({**r, "flags": [f for f in r.get("flags", []) if f != "linkdown"]}, sort_keys=True)
                    for r in ip("route", "show", "table", "all"))
    rules = [line.split(" [")[0] for line in proc.run_in(netns, ["iptables-save"]).stdout.splitlines()
             if not line.startswith("#")]
    nft = proc.run_in(netns, ["nft", "list", "ruleset"]).stdout
    return {"links": links, "addresses": addresses, "routes": routes, "iptables": rules, "nft": nft}


def assert_same(found: dict, expected: dict) -> None:
    """Namespace by namespace and aspect by aspect, so that a failure names what differs."""
    assert sorted(found) == sorted(expected)
    for netns, aspects in expected.items():
        for aspect, value in aspects.items():
            assert found[netns][aspect] == value, f"{netns}: {aspect}"


@pytest.mark.parametrize(("solution", "filter_name"), [("bridge", "iptables"), ("routing", "nftables")])
def test_hosts_built_one_by_one_equal_all_at_once(prefix, tools_available, solution, filter_name):
    setup = SetupSpec("multi", solution, filter_name, CONTAINERS, tunnel="vxlan", hosts=2)
    backend = NetnsBackend(prefix)
    deployment = backend.plan(setup)
    try:
        # h2 alone: h1's namespaces do not exist, so touching them would fail; none appears.
        build(deployment, "h2")
        live = set(netlink.list_netns())
        assert set(namespaces_of(deployment, "h2")) <= live
        assert not live & set(namespaces_of(deployment, "h1"))
        h2_alone = {netns: state(netns) for netns in namespaces_of(deployment, "h2")}
        host_h2 = h2_alone[deployment.host("h2").netns]
        veths = {deployment.names.host_veth(c.name) for c in deployment.containers if c.host == "h2"}
        assert veths and veths <= {link[0] for link in host_h2["links"]}
        filtered = "\n".join(host_h2["iptables"]) + host_h2["nft"]
        assert f"{prefix.upper()}-ALLOW" in filtered or f"table inet {prefix}_filter" in filtered

        # then h1: h2's part stays exactly as it was.
        build(deployment, "h1")
        assert_same({netns: state(netns) for netns in namespaces_of(deployment, "h2")}, h2_alone)
        one_by_one = {netns: state(netns) for host in ("h1", "h2") for netns in namespaces_of(deployment, host)}

        # the same setup built at once (here=None: every host, the netns backend's way)
        cleanup.remove(prefix)
        at_once = backend.plan(setup)
        build(at_once, None)
        assert_same({netns: state(netns) for host in ("h1", "h2") for netns in namespaces_of(at_once, host)}, one_by_one)
    finally:
        cleanup.remove(prefix)
