"""SshChannel against real sshd: namespace lab hosts (testbed/labhosts.py), each its own sshd,
reached through its control network. What this proves: commands, streams, exit codes and files
pass through one master connection per host; a failing command is a ToolFailed naming the host;
the connection's faults (sshd killed, control link down, host key changed) are HostErrors naming
the host and the cause, and a changed key is never accepted."""

from __future__ import annotations

import concurrent.futures
import os
import subprocess

import pytest

from seconetbench.errors import HostError, ToolFailed
from seconetbench.tunnels._common import wait_until

pytestmark = [pytest.mark.privileged, pytest.mark.ssh]


def accepted_connections(lab, i: int) -> int:
    """Connections lab host i's sshd authenticated, from its log (-e: one line each)."""
    return lab.sshd_log(i).read_text().count("Accepted publickey")


def test_commands_pass_exit_codes_and_streams_through(channel_to):
    channel = channel_to(1)
    channel.open()
    result = channel.run(["sh", "-c", "echo out; echo err >&2; exit 7"], check=False)
    assert (result.returncode, result.stdout, result.stderr) == (7, "out\n", "err\n")
    # arguments arrive as they were given: quoting for the remote shell is the channel's job
    odd = ["a b", "$HOME", "'quoted'", "semi;colon", "-n"]
    assert channel.run(["printf", "%s|", *odd]).stdout == "|".join(odd) + "|"
    assert channel.run(["cat"], input="text in\n").stdout == "text in\n"
    binary = bytes(range(256)) * 64
    assert channel.run(["cat"], input=binary).stdout == binary
    # argv() is a plain local command line: exit code and stdin pass through unchanged
    direct = subprocess.run(channel.argv(["sh", "-c", "read line; echo got $line; exit 3"]), input="x\n",
                            capture_output=True, text=True)
    assert (direct.returncode, direct.stdout) == (3, "got x\n")
    # the command runs on the lab host: its own control address is there
    assert "198.18.3.1/24" in channel.run(["ip", "-br", "addr", "show", "ctl0"]).stdout


def test_a_failing_command_is_tool_failed_naming_the_host(channel_to):
    channel = channel_to(2)
    channel.open()
    with pytest.raises(ToolFailed) as failed:
        channel.run(["sh", "-c", "echo broken thing >&2; exit 4"])
    assert failed.value.host == "lab2" and failed.value.exit_code == 4
    assert "broken thing" in failed.value.stderr_tail and "in lab2" in str(failed.value)
    # 255 is ssh's own failure code, but with the connection alive it is the command's
    with pytest.raises(ToolFailed) as own:
        channel.run(["sh", "-c", "exit 255"])
    assert own.value.exit_code == 255
    assert channel.run(["true"]).returncode == 0


def test_put_and_get_round_trip(channel_to, tmp_path):
    channel = channel_to(1)
    channel.open()
    payload = os.urandom(3 * 1024 * 1024 + 17)
    local = tmp_path / "payload.bin"
    local.write_bytes(payload)
    remote_dir = tmp_path / "on-host" / "deeper"  # the lab host shares this file system
    remote = str(remote_dir / "copy.bin")
    channel.put(local, remote, mode=0o640)
    assert channel.run(["stat", "-c", "%a %s", remote]).stdout.split() == ["640", str(len(payload))]
    back = tmp_path / "back" / "payload.bin"
    channel.get(remote, back)
    assert back.read_bytes() == payload
    missing = tmp_path / "never.bin"
    with pytest.raises(ToolFailed) as failed:
        channel.get(str(remote_dir / "absent.bin"), missing)
    assert failed.value.host == "lab1" and "No such file" in failed.value.stderr_tail
    assert not missing.exists() and not list(tmp_path.glob(".never.bin.partial-*"))


def test_one_connection_carries_every_command(lab, channel_to):
    channel = channel_to(1)
    channel.open()
    pid = channel.master_pid()
    assert pid is not None and pid in [p.pid for p in channel.registry.recorded()]  # cleanup ends it
    for _ in range(25):
        channel.run(["true"])
    # another process (the next target) opens the same host and finds the master by its socket
    again = channel_to(1)
    again.open()
    assert again.master_pid() == pid
    again.run(["true"])
    assert accepted_connections(lab, 1) == 1
    channel.close()
    assert channel.master_pid() is None and not channel.socket.exists()
    channel.close()  # idempotent


def test_simultaneous_opens_make_one_master(lab, channel_to):
    channels = [channel_to(1) for _ in range(4)]  # as four targets' processes would
    with concurrent.futures.ThreadPoolExecutor(len(channels)) as pool:
        list(pool.map(lambda channel: channel.open(), channels))
    assert len({channel.master_pid() for channel in channels}) == 1
    assert accepted_connections(lab, 1) == 1


def test_killed_sshd_mid_command_is_a_host_error(lab, channel_to, tmp_path):
    channel = channel_to(1)
    channel.open()
    started = tmp_path / "started"
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        running = pool.submit(channel.run, ["sh", "-c", f"touch {started}; sleep 60"])
        assert wait_until(started.exists, 10), "the remote command did not start"
        lab.kill_sshd(1)
        with pytest.raises(HostError) as lost:
            running.result(timeout=60)
    assert lost.value.host == "lab1" and "lost its SSH connection" in str(lost.value)
    assert "host lab1 (198.18.3.1)" in str(lost.value)
    # the master is gone and no command falls back to a connection of its own
    assert channel.master_pid() is None
    with pytest.raises(HostError):
        channel.run(["true"])


def test_control_link_down_is_a_host_error_within_the_keepalive_bound(lab, channel_to):
    channel = channel_to(2, server_alive_interval_s=1, server_alive_count_max=3)
    channel.open()
    lab.control_link(2, up=False)
    # keepalives end the connection after interval x count = 3 s; a hang would end in the
    # timeout's ToolFailed instead of a HostError
    with pytest.raises(HostError) as lost:
        channel.run(["true"], timeout=channel.options.dead_after_s + 30)
    assert lost.value.host == "lab2" and "not responding" in str(lost.value)
    lab.control_link(2, up=True)
    channel.open()  # a new master once the link is back
    assert channel.run(["echo", "back"]).stdout == "back\n"


@pytest.mark.parametrize("policy", ["yes", "accept-new"])
def test_a_changed_host_key_is_refused_and_never_accepted(lab, channel_to, policy):
    before = lab.known_hosts.read_bytes()
    lab.change_host_key(1)
    channel = channel_to(1, strict_host_key_checking=policy)
    with pytest.raises(HostError) as refused:
        channel.open()
    message = str(refused.value)
    assert refused.value.host == "lab1" and "host key changed" in message and "nothing was accepted" in message
    assert f"line 1 of {lab.known_hosts}" in message
    assert f"ssh-keygen -R '198.18.3.1' -f {lab.known_hosts}" in message
    assert lab.known_hosts.read_bytes() == before
    assert channel.master_pid() is None and accepted_connections(lab, 1) == 0


def test_an_unknown_host_key_is_refused_unless_accept_new(lab, channel_to):
    lab.known_hosts.write_text("")
    strict = channel_to(2)
    with pytest.raises(HostError) as refused:
        strict.open()
    assert "host key is not in" in str(refused.value) and "ssh-keyscan" in str(refused.value)
    assert lab.known_hosts.read_text() == ""
    trusting = channel_to(2, strict_host_key_checking="accept-new")
    trusting.open()
    offered = (lab.host_dir(2) / "ssh_host_ed25519_key.pub").read_text().split()[1]
    assert offered in lab.known_hosts.read_text()


def test_a_missing_identity_file_is_named_before_connecting(lab, channel_to, prefix):
    import dataclasses

    from seconetbench.remote.ssh import SshChannel, control_dir

    host = dataclasses.replace(lab.hosts[0], identity_file="/nonexistent/id_ed25519")
    with pytest.raises(HostError) as missing:
        SshChannel(host, lab.options, control_dir(prefix)).open()
    assert "identity_file /nonexistent/id_ed25519 does not exist" in str(missing.value)
    assert accepted_connections(lab, 1) == 0


def test_the_data_network_joins_the_lab_hosts(channel_to):
    channel = channel_to(1)
    channel.open()
    assert channel.run(["ip", "-br", "addr", "show", "eth1"]).stdout.split()[2] == "198.18.4.1/24"
    channel.run(["ping", "-c", "1", "-W", "5", "198.18.4.2"])
