"""Namespace lab hosts with their own sshd (testbed/labhosts.py) and channels to them.

The tier needs root (namespaces), sshd (openssh-server) and socat; without them the tests skip,
except under CI (CI=true), where they fail: a green CI must not hide a missing install step."""

from __future__ import annotations

import dataclasses
import os
import shutil

import pytest

from seconetbench.remote.ssh import SshChannel, control_dir
from seconetbench.testbed.labhosts import LabHosts


@pytest.fixture(scope="session")
def ssh_tools():
    missing = [t for t in ("/usr/sbin/sshd", "ssh", "ssh-keygen", "socat") if shutil.which(t) is None]
    if missing:
        message = f"ssh tier tools missing: {missing} (tools/setup.sh installs openssh-server, openssh-client, socat)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def lab(prefix, ssh_tools):
    """Two lab hosts of the test's prefix; the prefix fixture proves nothing of them is left."""
    with LabHosts(prefix, count=2) as hosts:
        yield hosts


@pytest.fixture
def channel_to(lab, prefix):
    """channel_to(i, **options) -> an unopened SshChannel to lab host i (options replace fields
    of the lab's SshOptions); every channel is closed after the test, before the lab goes."""
    made: list[SshChannel] = []

    def make(i: int, **options) -> SshChannel:
        channel = SshChannel(lab.hosts[i - 1], dataclasses.replace(lab.options, **options), control_dir(prefix))
        made.append(channel)
        return channel

    yield make
    for channel in made:
        channel.close()
