"""The isolation proof from inside the containers (security.check_whitelist_by_exec) through an
exec that returns output only at its end, as the Kubernetes API does: here `ip netns exec` run
to completion, on a real netns deployment with an iptables whitelist. The probers start when
the listeners said ready through their FIFOs, the listeners end when told; the proof passes,
fails when a listener cannot start (naming it), and does not count a probe as blocked when no
whitelisted probe reached its destination (the positive control)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from seconetbench import security
from seconetbench.backends.netns import NetnsBackend
from seconetbench.errors import DeployError
from seconetbench.spec import SetupSpec
from seconetbench.testbed import netlink

pytestmark = pytest.mark.privileged


def exec_to_the_end(container, argv, timeout_s):
    """An exec API's shape: the command runs to its end, then its exit code and output."""
    done = subprocess.run(container.access.argv(argv), capture_output=True, text=True, timeout=timeout_s, check=False)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture
def deployment(prefix, tools_available):
    backend = NetnsBackend(prefix)
    try:
        yield backend.deploy(SetupSpec("single", "bridge", "iptables", 4), verify=False)
    finally:
        backend.teardown()


def test_the_proof_over_an_exec_passes_and_leaves_no_fifo(deployment):
    before = set(Path("/tmp").glob("scn-probe-*"))  # another check's, if one runs
    check = security.check_whitelist_by_exec(deployment, exec_to_the_end)
    assert check["passed"], check["failures"]
    assert check["probes"] == 8 * 3 and check["expected_dropped"] == 4 * 3
    assert set(Path("/tmp").glob("scn-probe-*")) <= before, "the check's FIFOs are removed"


def test_a_listener_that_cannot_start_fails_the_proof_naming_its_container(deployment):
    c03 = deployment.container("c03")
    # the probe port already taken in c03's namespace (ours), so its listener cannot bind
    with netlink.entered(c03.netns):
        taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a socket stays in its namespace
    with taken:
        taken.bind((c03.ip, security.PROBE_PORT))
        with pytest.raises(DeployError, match=r"probe listener in c03 did not start: .*udp: Address already in use"):
            security.check_whitelist_by_exec(deployment, exec_to_the_end)


def test_a_drop_without_an_arrived_control_to_its_destination_does_not_count_as_blocked(deployment):
    c01 = deployment.container("c01")
    # c01 drops every UDP probe, its partner's too: nothing proves that its listener could hear
    subprocess.run(c01.access.argv(["iptables", "-A", "INPUT", "-p", "udp", "--dport", str(security.PROBE_PORT),
                                    "-j", "DROP"]), check=True)
    check = security.check_whitelist_by_exec(deployment, exec_to_the_end)
    assert not check["passed"]
    assert "c02->c01 udp: whitelisted but unreachable" in check["failures"]
    unjudged = sorted(f.split(" ")[0] for f in check["failures"] if "does not count as blocked" in f)
    assert unjudged == ["c03->c01", "c04->c01"]  # c01's non-whitelisted sources (security.probe_plan)
    assert all(" udp: " in f for f in check["failures"])  # ICMP and TCP to c01 stay judged
