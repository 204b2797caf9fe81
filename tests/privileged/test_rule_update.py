"""The rule-update time of every filter: a non-whitelisted pair is admitted live (it connects),
taken out again (it is dropped again), and every deploy records how long the admission took."""

from __future__ import annotations

import pytest

from seconetbench import technology
from seconetbench.backends.netns import NetnsBackend
from seconetbench.spec import SetupSpec
from tests.privileged.test_netns_bridge import reachable

pytestmark = pytest.mark.privileged


@pytest.mark.parametrize(("solution", "filter_name"), [
    ("bridge", "iptables"), ("routing", "nftables"), ("macvlan", "iptables"), ("ovs", "ovs"), ("bridge", "ebpf"),
])
def test_a_pair_is_admitted_and_removed_live_and_deploys_record_the_time(prefix, solution, filter_name):
    backend = NetnsBackend(prefix)
    deployment = backend.deploy(SetupSpec("single", solution, filter_name, 4))
    try:
        # measured at deploy, and the isolation check that followed found the pair dropped again
        assert deployment.facts["timings"]["rule_update_s"] > 0
        assert deployment.facts["verification"]["passed"]
        filt = technology.get("filter", filter_name)
        assert not reachable(deployment, "c01", "c03")
        assert filt.update_pair(deployment, "c01", "c03") > 0
        assert reachable(deployment, "c01", "c03") and reachable(deployment, "c03", "c01")
        filt.remove_pair(deployment, "c01", "c03")
        assert not reachable(deployment, "c01", "c03") and not reachable(deployment, "c03", "c01")
        assert reachable(deployment, "c01", "c02")  # the whitelist itself is untouched
    finally:
        backend.teardown()


def test_no_filter_and_two_containers_have_no_rule_update_time(prefix):
    backend = NetnsBackend(prefix)
    try:
        assert "rule_update_s" not in backend.deploy(SetupSpec("single", "bridge", "none", 4)).facts["timings"]
        assert "rule_update_s" not in backend.deploy(SetupSpec("single", "bridge", "iptables", 2)).facts["timings"]
    finally:
        backend.teardown()
