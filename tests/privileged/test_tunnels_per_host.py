"""Tunnels built one host at a time, as the ssh backend's host agents build them.

- With ``deployment.here = "h2"`` a tunnel's start creates only h2's part: h1's namespace is
  never created here, so a start that touched it would fail.
- A tunnel split as on the ssh backend carries every pair and passes its underlay capture: one
  instance prepares (the controller), the prepared directory is copied into a state root of each
  host's own (an agent's), a fresh instance per host runs apply_local there with ``here`` set,
  and another instance runs verify. Nothing reaches start but prepare's files.
- A capture place that is not on this machine (as on ssh) is captured through its access object
  (tcpdump -w - into a local file) and flushed by a sentinel that python3 sends there.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from seconetbench import preflight, proc, technology
from seconetbench.backends.base import Deployment, Underlay
from seconetbench.backends.netns import NamespaceAccess, NetnsBackend, underlay_dev, underlay_ip
from seconetbench.spec import SetupSpec
from seconetbench.testbed import cleanup, netlink
from seconetbench.tunnels import _common
from tests.privileged.test_tunnels import supported_suite

pytestmark = pytest.mark.privileged


def only_h2(prefix: str, tunnel: str) -> Deployment:
    """The plan of a 2-host setup whose only namespace on this machine is h2's, with its underlay
    device (one end of a veth pair kept in h2, holding 198.18.0.2/24); h1 is data: its name,
    index and underlay address."""
    deployment = NetnsBackend(prefix).plan(SetupSpec("multi", "bridge", "none", 4, tunnel=tunnel, hosts=2))
    for host in deployment.hosts:
        host.underlay_dev, host.underlay_ip = underlay_dev(prefix, host.index), underlay_ip(host.index)
    h2 = deployment.host("h2")
    netlink.create_netns(h2.netns)
    with netlink.route(h2.netns) as sock:
        sock.link("add", ifname=h2.underlay_dev, kind="veth", peer={"ifname": f"{prefix}-s2"})
        sock.link("set", index=netlink.index(sock, f"{prefix}-s2"), state="up")
        index = netlink.index(sock, h2.underlay_dev)
        sock.addr("add", index=index, address=h2.underlay_ip, prefixlen=24)
        sock.link("set", index=index, state="up")
    deployment.here = "h2"
    return deployment


def routes(netns: str) -> str:
    return proc.run_in(netns, ["ip", "-4", "route", "show"]).stdout


@pytest.mark.parametrize("tunnel", ["routing", "vxlan"])
def test_a_start_with_here_set_builds_only_that_host(tunnel, prefix):
    try:
        deployment = only_h2(prefix, tunnel)
        tech = technology.get("tunnel", tunnel)
        tech.prepare(deployment)
        tech.start(deployment)
        h1, h2 = deployment.host("h1"), deployment.host("h2")
        assert h1.netns not in netlink.list_netns()  # never needed
        if tunnel == "routing":
            assert f"198.19.1.0/24 via {h1.underlay_ip} dev {h2.underlay_dev}" in routes(h2.netns)
        else:
            assert "198.19.1.0/24 via 198.18.20.1" in routes(h2.netns)
            flood = proc.run_in(h2.netns, ["bridge", "fdb", "show", "dev", f"{prefix}-vx"]).stdout
            assert f"dst {h1.underlay_ip}" in flood and f"dst {h2.underlay_ip}" not in flood
    finally:
        cleanup.remove(prefix)


def in_root(root: Path, action):
    """*action()* with the run state kept under *root* (a host agent's own root), then back."""
    before = cleanup.STATE_ROOT
    cleanup.use_state_root(root)
    try:
        return action()
    finally:
        cleanup.use_state_root(before)


def paths_named(directory: Path, needle: str) -> list[str]:
    return [str(p) for p in directory.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


@pytest.mark.parametrize("tunnel", technology.names("tunnel", backend="netns"))
def test_a_tunnel_split_by_host_as_on_ssh_passes_its_checks(tunnel, prefix, tools_available, tmp_path,
                                                           monkeypatch):
    supported_suite(monkeypatch, tunnel)
    setup = SetupSpec("multi", "bridge", "none", 4, tunnel=tunnel, hosts=2)
    reason = preflight.unsupported_reason(setup)
    if reason:
        pytest.skip(f"this machine cannot run {tunnel}: {reason}")
    roots = {name: tmp_path / name for name in ("h1", "h2")}
    seen = {}

    def split_apply(self, deployment: Deployment) -> None:
        preflight.implementation_technology(deployment.setup).prepare(deployment)  # the controller's instance
        prepared = _common.prepared_dir(deployment)
        seen["absolute_paths"] = paths_named(prepared, str(cleanup.state_dir(deployment.prefix)))
        state = deployment.to_state()

        def agent_view(host):
            view = Deployment.from_state(state)
            view.here = host.name
            return view

        for host in deployment.hosts:
            def agent(host=host):
                shutil.copytree(prepared, _common.prepared_dir(deployment), dirs_exist_ok=True)
                preflight.implementation_technology(deployment.setup).apply_local(agent_view(host))  # a fresh instance
            in_root(roots[host.name], agent)
        self.verify(deployment)
        # the hosts' daemons and logs are in the agents' roots: describe() here leaves the host
        # facts to the first host's agent, as on ssh
        first = deployment.hosts[0]
        seen["host_facts"] = in_root(roots[first.name], lambda: preflight.implementation_technology(
            deployment.setup).host_facts(agent_view(first), first))
        for host in deployment.hosts:
            host.access = ElsewhereAccess(host.netns)

    monkeypatch.setattr(_common.Tunnel, "apply", split_apply)
    backend = NetnsBackend(prefix)
    try:
        deployment = backend.deploy(setup)
        facts = deployment.facts["tunnel"]
        assert facts["underlay_capture"]["passed"], facts["underlay_capture"]
        assert deployment.facts["verification"]["passed"], deployment.facts["verification"]
        assert facts["first_packet_s"] >= 0 and facts["all_pairs_s"] >= facts["first_packet_s"]
        assert seen["absolute_paths"] == []  # the prepared files hold no path of the controller
        if tunnel == "ipsec":
            assert any("ESTABLISHED" in line for line in seen["host_facts"]["security_associations"])
            assert "security_associations" not in facts
        if tunnel == "openvpn":
            assert seen["host_facts"]["data_channel"], seen["host_facts"]
        for container in deployment.containers:  # each host set its own containers' path MTU
            assert deployment.facts["mtu"][container.netns][container.ifname] == facts["path_mtu"]
    finally:
        backend.teardown()
        for root in roots.values():  # each "agent" ends its daemons and removes its state
            in_root(root, lambda: cleanup.remove(prefix))


@dataclass(frozen=True)
class ElsewhereAccess(NamespaceAccess):
    """A namespace reached as a remote one is (the ssh backend's way): this machine does not
    enter it itself, so the capture writes to stdout and the sentinel comes from python3 there."""

    @property
    def local_netns(self) -> None:
        return None


def test_a_capture_place_on_another_machine_is_read_through_its_access(prefix, tools_available):
    backend = NetnsBackend(prefix)
    deployment = backend.deploy(SetupSpec("multi", "bridge", "none", 4, tunnel="routing", hosts=2), verify=False)
    try:
        h1 = deployment.host("h1")
        deployment.underlay = Underlay(switch_netns=deployment.underlay.switch_netns, ports=deployment.underlay.ports,
                                       capture_ifname=h1.underlay_dev, capture_access=ElsewhereAccess(h1.netns))
        result = _common.check_underlay(deployment, _common.Wire(""))
        assert result["passed"], result
        assert result["where"] == f"{_common.place(deployment.underlay.capture_access)}: {h1.underlay_dev} " \
                                  f"(tcpdump -i {h1.underlay_dev})"
        assert result["plain"] > 0 and result["marker_in_clear"] > 0  # the probes crossed h1's underlay
        # the sentinel alone, without probes: python3 in h1 sends it, the stdout capture holds it
        pcap = _common.tunnel_dir(deployment, "capture") / "flush.pcap"
        argv = ["tcpdump", "-i", h1.underlay_dev, "-nn", "-U", "--immediate-mode", "-w", "-"]
        tcpdump = proc.spawn(ElsewhereAccess(h1.netns).argv(argv), pcap, pcap.with_suffix(".err"),
                             _common.registry(deployment), argv)
        try:
            _common.wait_for("tcpdump listening", lambda: b"listening on" in pcap.with_suffix(".err").read_bytes())
            assert _common.capture_flushed(deployment, pcap)
        finally:
            proc.terminate([tcpdump])
    finally:
        backend.teardown()
