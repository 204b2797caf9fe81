"""What a deployment says about its hosts: which of them this process builds (Deployment.here,
never saved), how commands reach each host's namespace (Host.access) and where the underlay is
captured (Underlay.capture_access, capture_ifname); all of it survives the state file."""

from __future__ import annotations

import json

import pytest

from seconetbench.backends.base import Deployment, Underlay
from seconetbench.backends.netns import NamespaceAccess, NetnsBackend
from seconetbench.errors import UnknownNameError
from seconetbench.spec import SetupSpec

pytestmark = pytest.mark.unit


def planned(hosts: int = 3) -> Deployment:
    return NetnsBackend("scnu1").plan(SetupSpec("multi", "bridge", "none", 6, tunnel="vxlan", hosts=hosts))


def round_trip(deployment: Deployment) -> Deployment:
    return Deployment.from_state(json.loads(json.dumps(deployment.to_state())))


def test_every_host_is_local_unless_the_process_builds_one():
    deployment = planned()
    assert [h.name for h in deployment.local_hosts()] == ["h1", "h2", "h3"]
    deployment.here = "h2"
    assert [h.name for h in deployment.local_hosts()] == ["h2"]
    assert [h.name for h in deployment.hosts] == ["h1", "h2", "h3"]  # the others stay data


def test_a_here_that_names_no_host_is_refused_with_the_hosts():
    deployment = planned()
    deployment.here = "h9"
    with pytest.raises(UnknownNameError, match="h9"):
        deployment.local_hosts()


def test_here_is_transient_and_the_host_access_is_saved():
    deployment = planned()
    deployment.here = "h1"
    state = deployment.to_state()
    assert "here" not in state
    assert state["hosts"][0]["access"] == {"kind": "netns", "netns": "scnu1-h1"}
    again = round_trip(deployment)
    assert again.here is None
    assert again.hosts[0].access == NamespaceAccess("scnu1-h1")
    deployment.here = None
    assert again == deployment


def test_the_underlay_is_captured_in_the_switch_namespace_on_every_port():
    underlay = planned().underlay
    assert underlay.capture_ifname == "any"
    assert underlay.capture_access == NamespaceAccess("scnu1-ul")
    assert underlay.capture_access.argv(["tcpdump"]) == ["ip", "netns", "exec", "scnu1-ul", "tcpdump"]


def test_a_capture_elsewhere_survives_the_state_file():
    deployment = planned(2)
    deployment.underlay = Underlay(switch_netns="", ports={}, capture_ifname="scnu1-u1",
                                   capture_access=NamespaceAccess("scnu1-h1"))
    again = round_trip(deployment)
    assert again.underlay.capture_access == NamespaceAccess("scnu1-h1")
    assert again.underlay.capture_ifname == "scnu1-u1"
    assert again.describe()["underlay"]["capture_access"] == {"kind": "netns", "netns": "scnu1-h1"}


def test_a_state_file_from_before_host_access_still_loads(tmp_path):
    state = planned(2).to_state()
    for host in state["hosts"]:
        del host["access"]
    for key in ("capture_access", "capture_ifname"):
        del state["underlay"][key]
    path = tmp_path / "deployment.json"
    path.write_text(json.dumps(state))
    loaded = Deployment.load(path)
    assert loaded.hosts[0].access is None
    assert loaded.underlay.capture_access == NamespaceAccess("scnu1-ul")
