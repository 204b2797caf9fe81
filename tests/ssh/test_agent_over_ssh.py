"""The host agent on a namespace lab host: shipped over SSH, started through the host's master
connection, running there (the lab host's own addresses), and what a crash of the host's sshd
does: the controller gets a HostError naming the host, the agent ends what it started, except a
detached process."""

from __future__ import annotations

import psutil
import pytest

from seconetbench.errors import HostError
from seconetbench.remote.agent import COMPLETE_MARKER, AgentClient, ship
from seconetbench.testbed.labhosts import CONTROL_IF, CONTROL_SUBNET

pytestmark = [pytest.mark.ssh, pytest.mark.privileged]


def test_a_shipped_agent_runs_on_the_host_and_a_lost_connection_ends_its_processes(lab, channel_to, tmp_path):
    host = lab.hosts[0]
    channel = channel_to(1)
    channel.open()
    # the lab hosts share this machine's filesystem: the copy and the state go under the test's directory
    argv = ship(channel, state_root=str(tmp_path / "state-h1"), remote_root=str(tmp_path / "agent"))
    installed = argv[1].removeprefix("PYTHONPATH=")
    assert (tmp_path / "agent" / installed.rsplit("/", 1)[-1] / COMPLETE_MARKER).exists()
    assert ship(channel, state_root=str(tmp_path / "state-h1"), remote_root=str(tmp_path / "agent")) == argv

    agent = AgentClient(host.name, channel.argv(argv), address=host.address)
    daemon = None
    try:
        assert agent.hello["package"] == f"{installed}/seconetbench"
        addresses = agent.call("run", argv=["ip", "-o", "-4", "addr", "show", "dev", CONTROL_IF], check=True)
        assert f"inet {CONTROL_SUBNET.format(i=1)}/" in addresses["stdout"]  # it runs on lab host 1

        worker = agent.call("spawn", argv=["sleep", "300"])
        daemon = agent.call("spawn", argv=["sleep", "300"], detach=True)
        created = psutil.Process(daemon).create_time()
        agent_process = psutil.Process(agent.hello["pid"])  # the lab host is a namespace of this machine

        lab.kill_sshd(1)  # the connection drops as in a crash of the host's sshd
        with pytest.raises(HostError) as caught:
            agent.call("hello")
        assert str(caught.value).startswith(f"host {host.name} ({host.address}): the agent ended during 'hello'")
        agent_process.wait(timeout=30)  # it saw its stdin close and ended, ending what it started
        assert not psutil.pid_exists(worker), "the agent's process outlived the lost connection"
        assert psutil.Process(daemon).is_running(), "a detached process ended with the connection"
    finally:
        agent.close()
        if daemon is not None and psutil.pid_exists(daemon):
            process = psutil.Process(daemon)
            if abs(process.create_time() - created) < 0.01:
                process.kill()
                process.wait(10)
