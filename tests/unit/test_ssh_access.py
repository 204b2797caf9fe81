"""The ssh backend's way into a namespace on a host (SshAccess) and the wrapper that ends a
remote command when its channel's stdin closes; the wrapper runs here in a real sh."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from seconetbench.backends.base import ContainerAccess
from seconetbench.backends.ssh import ENDS_WITH_STDIN, SshAccess, prefixlen

pytestmark = pytest.mark.unit

SSH = ("ssh", "-S", "/run/seconetbench/scnab/ssh/h1.sock", "-l", "root", "198.18.3.1", "--")


def test_the_access_runs_the_command_in_the_hosts_namespace_through_the_wrapper():
    access = SshAccess("h1", SSH, "scnab-c01")
    argv = access.argv(["iperf3", "-c", "198.19.2.1", "-l", "653"])
    assert argv[:len(SSH)] == list(SSH) and len(argv) == len(SSH) + 1  # one command string for the host
    assert shlex.split(argv[-1]) == ["ip", "netns", "exec", "scnab-c01", "sh", "-c", ENDS_WITH_STDIN, "sh",
                                     "iperf3", "-c", "198.19.2.1", "-l", "653"]
    assert shlex.split(access.run_argv(["ss", "-ltn"])[-1]) == ["ip", "netns", "exec", "scnab-c01", "ss", "-ltn"]
    assert access.ends_with_stdin and access.local_netns is None


def test_the_access_survives_the_state_file():
    access = SshAccess("h1", SSH, "scnab-c01")
    again = ContainerAccess.from_state(access.to_state())  # the state file stores lists
    assert again == access and isinstance(again.ssh, tuple)


def test_the_wrapper_passes_the_exit_code_and_output_through():
    shell = subprocess.Popen(["sh", "-c", ENDS_WITH_STDIN, "sh", "sh", "-c", "echo out; echo err >&2; exit 3"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = shell.stdout.read(), shell.stderr.read()  # until the command and the wrapper are done
    shell.stdin.close()  # stdin stays open meanwhile, as the channel's does
    assert (shell.wait(timeout=10), out, err) == (3, "out\n", "err\n")


def test_the_wrapper_ends_the_command_by_pid_when_stdin_closes():
    shell = subprocess.Popen(["sh", "-c", ENDS_WITH_STDIN, "sh", "sh", "-c", "echo $$; exec sleep 60"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    child = int(shell.stdout.readline())  # the event: the command runs (and its pid)
    assert subprocess.run(["kill", "-0", str(child)]).returncode == 0
    shell.stdin.close()  # what the channel's end of file looks like: the local client ended
    assert shell.wait(timeout=10) == 143  # SIGTERM, sent by the wrapper
    assert subprocess.run(["kill", "-0", str(child)], capture_output=True).returncode != 0


def test_underlay_addresses_are_read_plain_or_with_a_prefix_length():
    assert prefixlen("198.18.1.1") == 24
    assert prefixlen("198.18.1.1/16") == 16


def clocks(verdict: str) -> dict:
    return {"bound_ms": 0.1, "hosts": {}, "pairs": [{
        "hosts": ["h1", "h2"], "offset_ms": 0.02, "uncertainty_ms": 0.14, "bound_ms": 0.1, "verdict": verdict,
        "evidence": "measured over SSH", "consequence": "synchronise both hosts (chrony or PTP)"}]}


@pytest.mark.parametrize("verdict", ["unresolved", "exceeds"])
def test_one_way_delays_are_refused_between_hosts_whose_clocks_are_not_shown_within_the_bound(verdict):
    from seconetbench.backends.netns import NetnsBackend
    from seconetbench.errors import WorkloadError
    from seconetbench.spec import SetupSpec
    from seconetbench.workloads.ditg import refuse_unsynchronised_clocks

    deployment = NetnsBackend("scnab").plan(SetupSpec.parse("multi-vxlan-none-c2", "bridge"))
    refuse_unsynchronised_clocks("t", deployment)  # no clock record: one machine's clock
    deployment.facts["clocks"] = clocks("within")
    refuse_unsynchronised_clocks("t", deployment)
    deployment.facts["clocks"] = clocks(verdict)
    with pytest.raises(WorkloadError, match=rf"h1 and h2 need their clocks within 0.1 ms.*\({verdict}\).*chrony"):
        refuse_unsynchronised_clocks("t", deployment)


def test_a_failed_deploy_keeps_logs_and_configs_but_never_the_tunnels_keys(tmp_path, monkeypatch):
    from seconetbench.backends.base import produced_files
    from seconetbench.testbed import cleanup

    monkeypatch.setattr(cleanup, "STATE_ROOT", tmp_path)
    state = tmp_path / "scnab"
    for relative, text in {"tunnel/logs/charon-h1.log": "IKE_SA established", "tunnel/ipsec/h1/swanctl.conf": "x",
                           "tunnel/prepared/ipsec/swanctl-h1.conf": "secret = 0sSECRET", "tunnel/prepared/wg/h1.key": "K",
                           "tunnel/prepared/ipsec-h1/charon.log": "CHILD_SA established",
                           "pids/123.json": "{}", "bpf/prog.o": "ELF"}.items():
        (state / relative).parent.mkdir(parents=True, exist_ok=True)
        (state / relative).write_text(text)
    kept = produced_files("scnab")
    assert set(kept) == {"tunnel/logs/charon-h1.log", "tunnel/ipsec/h1/swanctl.conf", "pids/123.json",
                         "tunnel/prepared/ipsec-h1/charon.log"}
    assert not any(b"SECRET" in data for data in kept.values())
