"""`seconetbench hosts check` against namespace lab hosts with their own sshd: what it reports
for reachable hosts (root, kernel, tools, underlay device and MTU, clock offset) and for a host
whose sshd is gone (named, the others still checked, exit 1)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest
import yaml

from seconetbench import config
from seconetbench.remote import hosts

pytestmark = [pytest.mark.privileged, pytest.mark.ssh]

SWEEP = {"sweep": {"multi": {"tunnels": ["vxlan"], "filters": ["none"], "containers": [2]}, "workloads": ["latency"]},
         "workloads": {"latency": {"kind": "latency"}}}


def lab_config(lab) -> dict:
    """The sweep above on the lab's hosts, validated as on netns (the technologies list the ssh
    backend only once it is integrated); check_hosts checks testbed.ssh itself."""
    validated = config.validate({**SWEEP, "testbed": {"ssh": lab.testbed_config()["ssh"]}})
    validated["testbed"]["backend"] = "ssh"
    return validated


def test_check_reports_each_host_and_the_pair(lab, tmp_path):
    lines = []
    report = hosts.check_hosts(lab_config(lab), tmp_path / "ssh", lines.append)
    assert [h["name"] for h in report["hosts"]] == ["lab1", "lab2"]
    for host in report["hosts"]:
        assert host["reachable"] and host["uid"] == 0
        assert host["kernel"] == platform.release()  # namespaces of this machine: its kernel
        assert host["tools"]["ip"] and host["tools"]["bridge"]
        assert host["underlay"] == {"dev": "eth1", "exists": True, "mtu": 1500, "error": None}
        clock = host["clock"]
        # the lab hosts read this machine's clock between our two readings: offset within uncertainty
        assert abs(clock["offset_ms"]) <= clock["uncertainty_ms"] and clock["samples"] == hosts.CLOCK_SAMPLES
        # what may be missing on this machine is the agent's psutil, nothing of the connection
        assert all(p.startswith(("python3 cannot import psutil", "missing Debian packages")) for p in host["problems"])
    (pair,) = report["pairs"]
    assert pair["hosts"] == ["lab1", "lab2"] and pair["bound_ms"] == 0.1
    assert pair["verdict"] in ("within", "unresolved")  # one clock: never measurably apart
    assert any(line.startswith("lab2 (root@198.18.3.2:22): connecting") for line in lines)
    assert not list((tmp_path / "ssh").glob("*.sock"))  # its master connections ended with it


def test_check_names_a_host_without_sshd_and_checks_the_others(lab, tmp_path):
    lab.kill_sshd(2)
    report = hosts.check_hosts(lab_config(lab), tmp_path / "ssh")
    first, second = report["hosts"]
    assert first["reachable"] and first["underlay"]["exists"]
    assert not second["reachable"] and not second["ok"] and not report["ok"]
    assert second["problems"][0].startswith("host lab2 (198.18.3.2): ")
    assert report["pairs"] == []  # no offset of lab2 to compare


def test_cli_check_prints_json_and_fails_naming_the_host(lab, tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump({**SWEEP, "testbed": lab.testbed_config()}))
    lab.kill_sshd(2)
    result = subprocess.run([sys.executable, "-m", "seconetbench", "hosts", "check", "--config", str(path), "--json"],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert [h["reachable"] for h in report["hosts"]] == [True, False]
    assert "seconetbench hosts check: failed on " in result.stderr and "lab2" in result.stderr.splitlines()[-1]


def test_install_on_hosts_that_have_everything_changes_nothing(lab, tmp_path):
    """The idempotent path, end to end: dpkg on each host says every package the sweep needs is
    there (the lab hosts share this machine's, which tools/setup.sh installed), so apt is not run."""
    lines = []
    report = hosts.install_hosts(lab_config(lab), tmp_path / "ssh", lines.append)
    assert report["ok"], report
    assert [(h["name"], h["installed"], h["error"]) for h in report["hosts"]] == [("lab1", [], None), ("lab2", [], None)]
    assert {"iproute2", "tcpdump", "python3", "python3-psutil"} <= set(report["packages"])
    assert any(line.startswith("lab2: all ") and line.endswith("packages installed") for line in lines)
