"""The namespace lab hosts themselves: what a failed build leaves (nothing of its own)."""

from __future__ import annotations

import pytest

from seconetbench.testbed import cleanup, netlink
from seconetbench.testbed.labhosts import LabHosts, lab_netns

pytestmark = [pytest.mark.privileged, pytest.mark.ssh]


def test_a_lab_that_cannot_be_built_removes_what_it_made_and_only_that(prefix, ssh_tools):
    taken = lab_netns(prefix, 2)
    netlink.create_netns(taken)  # not the lab's: building lab host 2 fails on it
    lab = LabHosts(prefix, count=2)
    with pytest.raises(FileExistsError):
        lab.__enter__()
    assert [n for n in netlink.list_netns() if n.startswith(prefix + "-")] == [taken]
    assert not lab.directory.exists() and not cleanup.registry(prefix).recorded()
    netlink.delete_netns(taken)
