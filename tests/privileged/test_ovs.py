"""Open vSwitch for real: per-deployment ovsdb-server and ovs-vswitchd in the host namespace,
the `ovs` solution (NORMAL switching) and the `ovs` filter (OpenFlow whitelist, drop by default).

Proves that the whitelist holds (the isolation check at deploy), that TCP runs through the
userspace datapath (iperf3 through the runner: the containers' tx offloads are off), that a pair
can be whitelisted live, that 1000 extra flows install, and that neither teardown nor a cleanup
after a crashed job leaves a daemon, namespace, link or run directory behind.
"""

from __future__ import annotations

import ipaddress
import re

import psutil
import pytest

from seconetbench import config, ovs_daemon, probes, proc, runner, technology
from seconetbench.backends.netns import NetnsBackend
from seconetbench.filters._common import EXTRA_SOURCES
from seconetbench.meta import read_meta
from seconetbench.ovs_daemon import OvsHost
from seconetbench.spec import SetupSpec
from seconetbench.sweep import expand
from seconetbench.testbed import cleanup, netlink
from seconetbench.workloads import get_workload
from tests.privileged.test_netns_bridge import reachable

pytestmark = pytest.mark.privileged

NW_SRC = re.compile(r"nw_src=([\d.]+)")


def daemons(deployment) -> list[psutil.Process]:
    """The OVS daemons of the deployment's host, from their own pid files."""
    switch = OvsHost.of(deployment, deployment.hosts[0])
    pids = [int(switch.pid_file(d).read_text()) for d in (ovs_daemon.SERVER, ovs_daemon.SWITCH)]
    return [psutil.Process(pid) for pid in pids]


def assert_nothing_left(prefix: str, deployment, processes: list[psutil.Process]) -> None:
    assert not [p.pid for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not OvsHost.of(deployment, deployment.hosts[0]).run_dir.exists()
    assert not [n for n in netlink.list_netns() if n.startswith(prefix)]
    assert not [n for n in netlink.link_names() if n.startswith(prefix)]
    assert not any(cleanup.leftovers(prefix).values())


def flows(deployment) -> list[str]:
    switch = OvsHost.of(deployment, deployment.hosts[0])
    dump = switch.ofctl("dump-flows", switch.switch(deployment.names.bridge(1)))
    return [line for line in dump.splitlines() if "actions=" in line]


def test_ovs_solution_switches_every_pair_and_stops_its_daemons(prefix, tools_available):
    backend = NetnsBackend(prefix)
    deployment = backend.deploy(SetupSpec("single", "ovs", "none", 8))
    processes = daemons(deployment)
    try:
        verification = deployment.facts["verification"]
        assert verification["passed"], verification
        assert verification["expected_dropped"] == 0  # no filter: the unlisted peers are reachable
        solution = deployment.facts["solution"]
        implementation = deployment.facts["implementation"]
        assert implementation["resolved"] == ("kernel" if probes.results(prefix)["ovs"].kernel_available else "userspace")
        assert solution["datapath_type"] == ovs_daemon.datapath_type(implementation["resolved"])
        assert [dp.split("@")[0] for dp in solution["datapaths"]] == [solution["datapath_type"]]
        # datapath port numbers follow the container order in every deployment (the userspace
        # datapath polls its ports in an order fixed by these numbers: docs/ovs.md)
        veths = [deployment.names.host_veth(c.name) for c in deployment.containers]
        ports = solution["datapath_ports"]
        first = ports[deployment.names.bridge(1)] + 1  # the bridge's own port is added first
        assert [ports[v] for v in veths] == list(range(first, first + len(veths))), ports
        # both daemons live inside the host namespace, not in the machine's
        host_inode = netlink.netns_inode(deployment.hosts[0].netns)
        assert sorted(p.pid for p in proc.processes_in_netns(host_inode)) == sorted(p.pid for p in processes)
        assert [f.split("actions=")[1] for f in flows(deployment)] == ["NORMAL"]
        # traffic leaves datapath flows; the first_packet workload's flush deletes every one
        assert reachable(deployment, "c01", "c02")
        [flushed] = technology.get("solution", "ovs").flush_flow_caches(deployment)
        assert flushed["deleted"] > 0 and flushed["remaining"] == 0, flushed
    finally:
        backend.teardown()
    assert_nothing_left(prefix, deployment, processes)


def test_ovs_filter_whitelist_tcp_and_live_update(prefix, tmp_path, tools_available):
    cfg = config.validate({
        "results_dir": str(tmp_path / "results"), "repetitions": 1, "testbed": {"prefix": prefix},
        "sweep": {"single": {"solutions": ["ovs"], "filters": ["ovs"], "containers": [8]},
                  "workloads": ["tp"]},
        "workloads": {"tp": {"kind": "throughput", "payload_bytes": 1400, "duration_s": 1,
                             "generator": "iperf3"}},
    })
    backend = NetnsBackend(prefix)
    deployment = backend.deploy(SetupSpec("single", "ovs", "ovs", 8))
    processes = daemons(deployment)
    try:
        verification = deployment.facts["verification"]
        assert verification["passed"], verification
        assert verification["expected_dropped"] == 8 * 3  # one unlisted peer per container, 3 protocols
        assert len(flows(deployment)) == 2 * 4 + 2 == deployment.facts["filter"]["flows"]
        # TCP through the userspace datapath, in the runner's real throughput workload
        out = tmp_path / "results/raw/single-ovs-ovs-c8/tp/rep1"
        runner.measure(cfg, "single-ovs-ovs-c8", "tp", 1, out)
        assert read_meta(out)["deployment"]["reused"]
        table = get_workload(expand(cfg).workload("tp")).parse(out, read_meta(out))
        assert sorted(table["pair"].unique()) == ["c01-c02", "c03-c04", "c05-c06", "c07-c08"]
        assert (table.groupby("pair")["bytes"].sum() > 0).all()
        # a dropped pair, whitelisted live, connects in both directions
        assert not deployment.allowed("c01", "c03") and not reachable(deployment, "c01", "c03")
        seconds = technology.get("filter", "ovs").update_pair(deployment, "c01", "c03")
        assert seconds >= 0
        assert reachable(deployment, "c01", "c03") and reachable(deployment, "c03", "c01")
        assert not reachable(deployment, "c01", "c05")
    finally:
        backend.teardown()
    assert_nothing_left(prefix, deployment, processes)


def test_extra_flows_install_and_cleanup_after_a_crash_ends_the_daemons(prefix, tools_available):
    backend = NetnsBackend(prefix)
    deployment = backend.deploy(SetupSpec("single", "ovs", "ovs", 4, extra_rules=1000))
    processes = daemons(deployment)
    try:
        assert deployment.facts["verification"]["passed"], deployment.facts["verification"]
        installed = flows(deployment)
        assert len(installed) == 1000 + 2 * 2 + 2
        sources = [ipaddress.ip_address(source) for f in installed for source in NW_SRC.findall(f)]
        assert sum(source in EXTRA_SOURCES for source in sources) == 1000
        assert deployment.facts["filter"]["install_s"]["h1"] > 0
    finally:
        # as after a kill -9 of the job: no technology's remove() runs, only the prefix cleanup
        cleanup.remove(prefix)
    assert_nothing_left(prefix, deployment, processes)
