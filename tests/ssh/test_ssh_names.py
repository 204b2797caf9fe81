"""What SshChannel decides before running ssh: the control socket's path (a unix socket path
holds 108 bytes) and the options it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from seconetbench.errors import HostError, InvalidValueError
from seconetbench.remote.ssh import (
    SOCKET_PATH_MAX,
    SshChannel,
    SshHost,
    SshOptions,
    control_socket,
)

pytestmark = [pytest.mark.unit, pytest.mark.ssh]


def test_the_socket_is_named_after_the_host_while_it_fits():
    assert control_socket(Path("/run/seconetbench/scnab12/ssh"), "h1") == Path("/run/seconetbench/scnab12/ssh/h1.sock")


@pytest.mark.parametrize("name", ["a-very-long-host-name-from-an-inventory-of-the-lab.example.org", "h/1", "h 1"])
def test_long_or_unusual_host_names_become_a_short_hash(name):
    path = control_socket(Path("/run/seconetbench/scnab12/ssh"), name)
    assert len(path.name) == len("0123456789ab.sock") and len(str(path)) <= SOCKET_PATH_MAX
    assert path == control_socket(Path("/run/seconetbench/scnab12/ssh"), name)  # stable: other processes find it


def test_a_control_directory_without_room_for_the_socket_is_refused():
    deep = Path("/run/" + "d" * 90)
    with pytest.raises(InvalidValueError, match="too long for a unix socket path"):
        control_socket(deep, "h1")


def test_host_key_checking_is_never_off():
    with pytest.raises(InvalidValueError, match="strict_host_key_checking 'no'"):
        SshOptions(strict_host_key_checking="no")


def test_proxy_command_and_jump_host_are_not_both_taken(tmp_path):
    host = SshHost("h1", "192.0.2.10", proxy_command="nc %h %p")
    with pytest.raises(InvalidValueError, match="proxy_command and jump_host"):
        SshChannel(host, SshOptions(jump_host="bastion.example.org"), tmp_path)


def test_host_error_names_host_address_cause_and_fix():
    error = HostError("h1", "lost its SSH connection", "connect again", address="192.0.2.10")
    assert str(error) == "host h1 (192.0.2.10): lost its SSH connection; connect again"
    assert str(HostError("h2", "no ip")) == "host h2: no ip"


def test_commands_reach_the_host_only_over_the_master(tmp_path):
    argv = SshChannel(SshHost("h1", "192.0.2.10", port=2222, user="bench"), SshOptions(), tmp_path).argv(["echo", "a b"])
    assert argv[argv.index("-S") + 1] == str(tmp_path / "h1.sock")
    assert "ControlMaster=no" in argv and "ProxyCommand=false" in argv  # no fallback connection
    assert argv[-3:] == ["192.0.2.10", "--", "echo 'a b'"]
