"""testbed.ssh (the ssh backend's hosts): every refusal names the key path and the fix, before
anything connects or is deployed (remote/hosts.py parse_ssh_testbed, called by config.validate).

Keys and known_hosts files are real: made by ssh-keygen in a temporary directory."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from seconetbench import config, technology
from seconetbench.errors import ConfigError
from seconetbench.filters import _common as filters_common
from seconetbench.remote import hosts
from seconetbench.remote.ssh import SshHost, SshOptions
from seconetbench.solutions import routing

pytestmark = pytest.mark.unit

ADDRESSES = ("192.0.2.10", "192.0.2.11", "192.0.2.12")


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Path:
    """A client key (600) and a known_hosts file with a host key for each address on port 22,
    hashed for the second (ssh-keygen -H), and one entry for 192.0.2.12 on port 2222."""
    directory = tmp_path_factory.mktemp("ssh")
    for name in ("id_ed25519", "host_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(directory / name)],
                       check=True)
    host_key = " ".join((directory / "host_key.pub").read_text().split()[:2])
    plain = directory / "plain"
    plain.write_text(f"{ADDRESSES[0]} {host_key}\n{ADDRESSES[1]} {host_key}\n[{ADDRESSES[2]}]:2222 {host_key}\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(plain)], check=True, capture_output=True)  # hashes in place
    (directory / "known_hosts").write_text(plain.read_text())
    return directory


def ssh_testbed(keys: Path, count: int = 2) -> dict:
    entries = [{"name": f"h{i + 1}", "address": ADDRESSES[i], "user": "root", "identity_file": str(keys / "id_ed25519"),
                "underlay_dev": "eth1", "underlay_ip": f"198.18.0.{i + 1}"} for i in range(count)]
    return {"backend": "ssh", "ssh": {"hosts": entries, "strict_host_key_checking": "yes",
                                      "known_hosts_file": str(keys / "known_hosts")}}


def full_config(keys: Path, hosts_count: int = 2, multi_hosts: int = 2) -> dict:
    return {"sweep": {"multi": {"tunnels": ["vxlan"], "filters": ["none"], "containers": [2], "hosts": multi_hosts},
                      "workloads": ["latency"]},
            "workloads": {"latency": {"kind": "latency"}},
            "testbed": ssh_testbed(keys, hosts_count)}


def refused(testbed_section: dict) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        hosts.parse_ssh_testbed(testbed_section)
    return caught.value


# ------------------------------------------------------------------ a valid configuration
def test_valid_testbed_parses_into_hosts_and_options(keys):
    section = ssh_testbed(keys)
    section["ssh"]["hosts"][1].update(port=22, underlay_ip="198.18.0.2/24", proxy_command="socat STDIO TCP:%h:%p")
    parsed, options = hosts.parse_ssh_testbed(section)
    assert parsed == [
        SshHost(name="h1", address=ADDRESSES[0], port=22, user="root", identity_file=str(keys / "id_ed25519"),
                underlay_dev="eth1", underlay_ip="198.18.0.1"),
        SshHost(name="h2", address=ADDRESSES[1], port=22, user="root", identity_file=str(keys / "id_ed25519"),
                underlay_dev="eth1", underlay_ip="198.18.0.2/24", proxy_command="socat STDIO TCP:%h:%p")]
    assert options == SshOptions(strict_host_key_checking="yes", known_hosts_file=str(keys / "known_hosts"))


def test_yaml_yes_is_read_as_yes_and_the_other_port_is_looked_up_in_brackets(keys):
    section = ssh_testbed(keys)
    section["ssh"]["strict_host_key_checking"] = True  # YAML 1.1 reads an unquoted yes as true
    section["ssh"]["hosts"][1].update(address=ADDRESSES[2], port=2222)  # known as [192.0.2.12]:2222
    parsed, options = hosts.parse_ssh_testbed(section)
    assert options.strict_host_key_checking == "yes"
    assert (parsed[1].address, parsed[1].port) == (ADDRESSES[2], 2222)


@pytest.mark.skipif("vxlan" not in technology.names("tunnel", backend="ssh"),
                    reason="the technologies list the ssh backend once SshBackend is integrated (issue 13)")
def test_valid_config_validates_with_defaults(keys):
    validated = config.validate(full_config(keys))
    ssh = validated["testbed"]["ssh"]
    assert ssh["max_clock_offset_ms"] == 0.1
    assert ssh["jump_host"] is None
    parsed, _ = hosts.parse_ssh_testbed(validated["testbed"])
    assert parsed[0].port == 22 and parsed[0].user == "root"  # the defaults of a host entry


def test_accept_new_needs_no_known_hosts_file(keys, tmp_path):
    section = ssh_testbed(keys)
    section["ssh"].update(strict_host_key_checking="accept-new", known_hosts_file=str(tmp_path / "known_hosts"))
    _, options = hosts.parse_ssh_testbed(section)
    assert options.strict_host_key_checking == "accept-new"


def test_no_identity_file_means_agent_and_ssh_config(keys):
    section = ssh_testbed(keys)
    del section["ssh"]["hosts"][0]["identity_file"]
    parsed, _ = hosts.parse_ssh_testbed(section)
    assert parsed[0].identity_file is None


# ------------------------------------------------------------------ refusals, each with key and fix
def test_missing_identity_file_is_named_with_its_key_path(keys):
    section = ssh_testbed(keys)
    section["ssh"]["hosts"][1]["identity_file"] = str(keys / "no_such_key")
    error = refused(section)
    assert error.key == "testbed.ssh.hosts[1].identity_file"
    assert "does not exist" in str(error) and "authorized_keys" in str(error)


def test_identity_file_open_to_others_is_refused_with_chmod(keys, tmp_path):
    loose = tmp_path / "id_loose"
    shutil.copy(keys / "id_ed25519", loose)
    loose.chmod(0o644)
    section = ssh_testbed(keys)
    section["ssh"]["hosts"][0]["identity_file"] = str(loose)
    error = refused(section)
    assert error.key == "testbed.ssh.hosts[0].identity_file"
    assert f"chmod 600 '{loose}'" in str(error)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root to make a key another user cannot read")
def test_unreadable_identity_file_is_refused(keys):
    # root reads every file: the check runs as nobody, on root's key in a directory nobody may enter
    directory = Path(tempfile.mkdtemp(prefix="scn-key-"))
    try:
        directory.chmod(0o755)
        key = directory / "id_root"
        shutil.copy(keys / "id_ed25519", key)
        key.chmod(0o600)
        section = {"ssh": {"strict_host_key_checking": "accept-new", "known_hosts_file": str(directory / "kh"),
                           "hosts": [{"name": "h1", "address": ADDRESSES[0], "identity_file": str(key),
                                      "underlay_dev": "eth1", "underlay_ip": "198.18.0.1"}]}}
        script = ("import json, sys\nfrom seconetbench.remote.hosts import parse_ssh_testbed\n"
                  "from seconetbench.errors import ConfigError\n"
                  "try:\n    parse_ssh_testbed(json.loads(sys.argv[1]))\nexcept ConfigError as e:\n"
                  "    print(json.dumps([e.key, str(e)]))\n")
        result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
                                 script, json.dumps(section)], capture_output=True, text=True, check=True)
        key_path, message = json.loads(result.stdout)
    finally:
        shutil.rmtree(directory)
    assert key_path == "testbed.ssh.hosts[0].identity_file"
    assert "not readable by this user (uid 65534)" in message


def test_strict_no_is_refused_with_the_reason(keys):
    for value in ("no", False, "off"):
        section = ssh_testbed(keys)
        section["ssh"]["strict_host_key_checking"] = value
        error = refused(section)
        assert error.key == "testbed.ssh.strict_host_key_checking"
        assert "changed or spoofed host" in str(error) and "accept-new" in str(error)


def test_missing_known_hosts_file_with_strict_yes(keys, tmp_path):
    section = ssh_testbed(keys)
    section["ssh"]["known_hosts_file"] = str(tmp_path / "absent")
    error = refused(section)
    assert error.key == "testbed.ssh.known_hosts_file"
    assert "ssh-keyscan" in str(error) and "accept-new" in str(error)


def test_host_key_missing_from_known_hosts(keys):
    section = ssh_testbed(keys, 3)  # 192.0.2.12 is known on port 2222 only
    section["ssh"]["hosts"][2]["underlay_ip"] = "198.18.0.3"
    error = refused(section)
    assert error.key == "testbed.ssh.hosts[2].address"
    assert f"h3's host key ({ADDRESSES[2]}) is not in" in str(error)
    assert f"ssh-keyscan -p 22 {ADDRESSES[2]}" in str(error)


def test_other_port_needs_the_bracketed_entry(keys):
    section = ssh_testbed(keys)
    section["ssh"]["hosts"][0]["port"] = 2200  # known on 22 only
    error = refused(section)
    assert error.key == "testbed.ssh.hosts[0].address"
    assert f"[{ADDRESSES[0]}]:2200" in str(error)


def test_jump_host_key_must_be_known_too(keys):
    section = ssh_testbed(keys)
    section["ssh"]["jump_host"] = "admin@203.0.113.5:2022"
    error = refused(section)
    assert error.key == "testbed.ssh.jump_host"
    assert "[203.0.113.5]:2022" in str(error)
    section["ssh"]["jump_host"] = f"admin@{ADDRESSES[0]}"  # known
    assert hosts.parse_ssh_testbed(section)[1].jump_host == f"admin@{ADDRESSES[0]}"


def test_proxy_command_and_jump_host_together_are_refused(keys):
    section = ssh_testbed(keys)
    section["ssh"]["jump_host"] = f"admin@{ADDRESSES[0]}"
    section["ssh"]["hosts"][1]["proxy_command"] = "socat STDIO TCP:%h:%p"
    error = refused(section)
    assert error.key == "testbed.ssh.hosts[1].proxy_command" and "ssh uses only one" in str(error)


@pytest.mark.parametrize(("field", "change", "fix"), [
    ("name", {"name": "h1"}, "each host needs its own name"),
    ("address", {"address": ADDRESSES[0]}, "each host needs its own SSH address and port"),
    ("underlay_ip", {"underlay_ip": "198.18.0.1/24"}, "each host needs its own underlay_ip"),
])
def test_duplicates_are_refused_at_the_second_host(keys, field, change, fix):
    section = ssh_testbed(keys)
    section["ssh"]["hosts"][1].update(change)
    error = refused(section)
    assert error.key == f"testbed.ssh.hosts[1].{field}"
    assert "testbed.ssh.hosts[0]" in str(error) and fix in str(error)


def test_same_address_on_another_port_is_another_host(keys):
    section = ssh_testbed(keys, 3)
    section["ssh"]["hosts"][1].update(address=ADDRESSES[2], port=2222)
    section["ssh"]["hosts"][2].update(address=ADDRESSES[2], port=22, underlay_ip="198.18.0.3")
    with pytest.raises(ConfigError) as caught:  # refused for its unknown key, not as a duplicate
        hosts.parse_ssh_testbed(section)
    assert caught.value.key == "testbed.ssh.hosts[2].address" and "host key" in str(caught.value)


@pytest.mark.parametrize("value", ["10.0.0.1", "198.20.0.1", "198.18.0.1/14"])
def test_underlay_ip_outside_the_benchmarking_range(keys, value):
    section = ssh_testbed(keys)
    section["ssh"]["hosts"][1]["underlay_ip"] = value
    error = refused(section)
    assert error.key == "testbed.ssh.hosts[1].underlay_ip"
    assert "198.18.0.0/15" in str(error) and "yours to pick" in str(error) and "docs/decisions.md" in str(error)


@pytest.mark.parametrize(("first", "second", "what"), [
    ("198.19.1.1", "198.19.1.2", "containers' subnets"), ("198.18.21.5/24", "198.18.21.6/24", "transfer networks"),
    ("198.18.0.5/16", "198.18.0.6/16", "transfer networks"), ("198.18.130.1", "198.18.130.2", "extra-rule"),
])
def test_underlay_network_clear_of_the_testbeds_inner_networks(keys, first, second, what):
    section = ssh_testbed(keys)
    section["ssh"]["hosts"][0]["underlay_ip"], section["ssh"]["hosts"][1]["underlay_ip"] = first, second
    error = refused(section)
    assert error.key == "testbed.ssh.hosts[0].underlay_ip"
    assert what in str(error) and "198.18.0.0/24" in str(error)


def test_underlay_ip_not_an_address(keys):
    section = ssh_testbed(keys)
    section["ssh"]["hosts"][0]["underlay_ip"] = "198.18.0.300"
    assert refused(section).key == "testbed.ssh.hosts[0].underlay_ip"
    section["ssh"]["hosts"][0]["underlay_ip"] = "198.18.0.0/24"
    assert "network or broadcast" in str(refused(section))


def test_hosts_on_different_data_networks(keys):
    section = ssh_testbed(keys)
    section["ssh"]["hosts"][1]["underlay_ip"] = "198.18.2.2"
    error = refused(section)
    assert error.key == "testbed.ssh.hosts[1].underlay_ip"
    assert "one data network" in str(error)


@pytest.mark.parametrize(("field", "value", "hint"), [
    ("name", "H_1", "lower-case"), ("port", 70000, "1 to 65535"), ("underlay_dev", "eth1/2", "interface name")])
def test_malformed_host_fields(keys, field, value, hint):
    section = ssh_testbed(keys)
    section["ssh"]["hosts"][0][field] = value
    error = refused(section)
    assert error.key == f"testbed.ssh.hosts[0].{field}" and hint in str(error)


def test_missing_host_field_and_missing_section(keys):
    section = ssh_testbed(keys)
    del section["ssh"]["hosts"][1]["underlay_dev"]
    error = refused(section)
    assert error.key == "testbed.ssh.hosts[1].underlay_dev" and "eth1" in str(error)
    assert refused({"backend": "ssh"}).key == "testbed.ssh"
    assert refused({"ssh": {"hosts": []}}).key == "testbed.ssh.hosts"


# ------------------------------------------------------------------ through config.validate
def test_validate_refuses_fewer_hosts_than_the_sweep_needs(keys):
    with pytest.raises(ConfigError) as caught:
        config.validate(full_config(keys, hosts_count=2, multi_hosts=3))
    assert caught.value.key == "testbed.ssh.hosts"
    assert "need 3 (sweep.multi.hosts)" in str(caught.value) and "add 1 more" in str(caught.value)


def test_validate_refuses_a_bad_host_before_the_technologies(keys):
    cfg = full_config(keys)
    cfg["testbed"]["ssh"]["hosts"][1]["identity_file"] = str(keys / "absent")
    with pytest.raises(ConfigError) as caught:
        config.validate(cfg)
    assert caught.value.key == "testbed.ssh.hosts[1].identity_file"


def test_validate_refuses_unknown_keys_in_the_ssh_block(keys):
    cfg = full_config(keys)
    cfg["testbed"]["ssh"]["hosts"][0]["password"] = "hunter2"
    with pytest.raises(ConfigError) as caught:
        config.validate(cfg)
    assert caught.value.key == "testbed.ssh.hosts[0]" and "password" in str(caught.value)


def test_unknown_backend_still_refused(keys):
    cfg = full_config(keys)
    cfg["testbed"]["backend"] = "sshd"
    with pytest.raises(ConfigError) as caught:
        config.validate(cfg)
    assert caught.value.key == "testbed.backend" and "'ssh'" in str(caught.value)


def test_routing_gateway_as_underlay_ip_is_refused_for_multi_host_routing(keys):
    parsed, _ = hosts.parse_ssh_testbed({**ssh_testbed(keys), "ssh": {
        **ssh_testbed(keys)["ssh"], "hosts": [dict(h, underlay_ip=f"198.18.1.{i + 1}")
                                          for i, h in enumerate(ssh_testbed(keys)["ssh"]["hosts"])]}})
    sweep = {"multi": {"tunnels": ["vxlan"], "filters": ["none"], "containers": [2], "hosts": 2, "solution": "bridge"}}
    hosts.check_sweep_fits(parsed, sweep)  # the bridge solution has no gateway there
    sweep["multi"]["solution"] = "routing"
    with pytest.raises(ConfigError) as caught:
        hosts.check_sweep_fits(parsed, sweep)
    assert caught.value.key == "testbed.ssh.hosts[0].underlay_ip" and "gateway" in str(caught.value)


def test_single_host_sweep_needs_one_host(keys):
    assert hosts.hosts_needed({"single": {}}) == 1
    assert hosts.hosts_needed({"multi": {"hosts": 4}}) == 4


# ------------------------------------------------------------------ the address rule's sources
def test_inner_networks_cover_what_the_testbed_assigns():
    from seconetbench.backends.base import Host
    from seconetbench.backends.netns import container_ip
    from seconetbench.tunnels import _common as tunnels_common
    from seconetbench.tunnels import openvpn, tinc, vxlan, wireguard

    def inner(address: str) -> bool:
        return any(hosts.ipaddress.ip_address(address) in network for network in hosts.INNER_NETWORKS)

    assert inner(container_ip(1, 1)) and inner(container_ip(16, 200))
    nets = [module.NET for module in (vxlan, wireguard, openvpn, tinc)]
    assert all(inner(tunnels_common.transfer_ip(net, Host("h2", 2, "ns"))) for net in nets)
    assert filters_common.EXTRA_SOURCES.subnet_of(hosts.ipaddress.ip_network("198.18.128.0/17"))
    assert filters_common.EXTRA_DESTINATIONS.subnet_of(hosts.ipaddress.ip_network("198.18.128.0/17"))
    assert not inner(routing.GATEWAY)  # refused only where it is one: check_sweep_fits


def test_schema_and_parser_agree_on_defaults(keys):
    schema = config.load_schema()["properties"]["testbed"]["properties"]["ssh"]["properties"]
    assert schema["max_clock_offset_ms"]["default"] == hosts.DEFAULT_MAX_CLOCK_OFFSET_MS
    assert schema["connect_timeout_s"]["default"] == SshOptions().connect_timeout_s
    assert schema["hosts"]["items"]["properties"]["port"]["default"] == SshHost("h", "a").port
    section = ssh_testbed(keys)
    before = copy.deepcopy(section)
    hosts.parse_ssh_testbed(section)
    assert section == before  # parsing leaves the caller's config as it was
