"""`seconetbench hosts check` and `hosts install` (remote/hosts.py), their pure parts: the clock
offset from timestamps, the verdict per host pair, the install plan from dpkg's answer, the
facts from the check's output (recorded on the project's VM, tests/fixtures/hosts/README.md),
and what the sweep needs on a host."""

from __future__ import annotations

import re
import sys

import pytest

from seconetbench import cli, config, preflight, technology
from seconetbench.errors import SeconetError
from seconetbench.remote import hosts
from seconetbench.remote.ssh import SshHost
from tests.conftest import REPO

pytestmark = pytest.mark.unit

FIXTURES = REPO / "tests" / "fixtures" / "hosts"
SECOND = 10**9


def tracking(name: str) -> dict[str, str]:
    """A chronyc tracking fixture as parse_facts keeps it (the script prefixes 'chrony ')."""
    text = "".join(f"chrony {line}\n" for line in (FIXTURES / name).read_text().splitlines())
    return hosts.parse_facts(text, "eth1", [])["clock_sync"]["chrony"]


# ------------------------------------------------------------------ install plan
def test_install_plan_is_what_dpkg_does_not_list_as_installed():
    recorded = (FIXTURES / "dpkg-query.txt").read_text()
    wanted = ["iproute2", "python3-psutil", "openssh-server", "openvpn", "no-such-package-xyz", "apt"]
    assert hosts.missing_packages(wanted, recorded) == ["python3-psutil", "no-such-package-xyz"]
    assert hosts.missing_packages(["iproute2", "apt"], recorded) == []  # nothing to do: apt-get is not run


def test_install_plan_counts_removed_but_configured_packages_as_missing():
    answer = "openvpn\tdeinstall ok config-files\ntinc\tinstall ok installed\nlibc6:amd64\tinstall ok installed\n"
    assert hosts.missing_packages(["openvpn", "tinc", "libc6"], answer) == ["openvpn"]


def test_install_command_passes_packages_as_arguments_and_no_mirror():
    argv = hosts.apt_install_argv(["tinc", "d-itg"])
    assert argv[:2] == ["sh", "-c"] and argv[-2:] == ["tinc", "d-itg"]
    script = argv[2]
    assert 'apt-get install -y -q --no-install-recommends "$@"' in script
    assert "DEBIAN_FRONTEND=noninteractive" in script
    assert not re.search(r"https?://", script)  # the host's own apt sources name the mirror


# ------------------------------------------------------------------ clocks
def test_offset_is_the_answer_against_the_midpoint_of_the_fastest_exchange():
    t0 = 1_764_763_200 * SECOND
    samples = [hosts.ClockSample(t0, t0 + 5 * 10**6 + 900_000, t0 + 2 * 10**6),  # 2 ms round trip
               hosts.ClockSample(t0 + SECOND, t0 + SECOND + 5 * 10**6 + 100_000, t0 + SECOND + 200_000),  # 0.2 ms
               hosts.ClockSample(t0 + 2 * SECOND, t0 + 2 * SECOND + 4 * 10**6, t0 + 2 * SECOND + 10**6)]
    offset = hosts.clock_offset(samples)
    assert offset.round_trip_ms == pytest.approx(0.2)
    assert offset.uncertainty_ms == pytest.approx(0.1)
    assert offset.offset_ms == pytest.approx(5.0)  # 5.1 ms after sending, 0.1 ms before the midpoint
    assert offset.samples == 3


def test_offset_keeps_nanoseconds_of_epoch_timestamps():
    t0 = 1_764_763_200 * SECOND + 123_456_789
    offset = hosts.clock_offset([hosts.ClockSample(t0, t0 + 1_001, t0 + 2_000)])
    assert offset.offset_ms == pytest.approx(0.000001)  # 1 ns: lost in a double of seconds
    with pytest.raises(SeconetError, match="stepped back"):
        hosts.clock_offset([hosts.ClockSample(t0, t0, t0 - 1)])
    with pytest.raises(SeconetError, match="no clock samples"):
        hosts.clock_offset([])


def test_clock_answers_are_read_exactly():
    assert hosts.parse_clock_answer("1764763200.123456789\n") == 1_764_763_200_123_456_789
    assert hosts.parse_clock_answer("1764763200.5") == 1_764_763_200_500_000_000
    with pytest.raises(SeconetError, match="seconds.nanoseconds"):
        hosts.parse_clock_answer("date: invalid option")


@pytest.mark.parametrize("answer", ["python", "date"])
def test_sampling_a_process_on_this_clock_brackets_its_answers(answer):
    # the answering process reads this machine's clock between our two readings, so the offset
    # is within the uncertainty, whatever the round trip: causality, not timing
    argv = ([sys.executable, "-u", "-c", hosts.CLOCK_ANSWER_PYTHON] if answer == "python"
            else ["sh", "-c", hosts.CLOCK_ANSWER_DATE])
    samples = hosts.sample_clock(argv, count=5)
    assert len(samples) == 5
    assert all(s.local_sent_ns <= s.remote_ns <= s.local_received_ns for s in samples)
    offset = hosts.clock_offset(samples)
    assert abs(offset.offset_ms) <= offset.uncertainty_ms


def test_sampling_a_process_that_ends_says_so():
    with pytest.raises(SeconetError, match="clock probe ended"):
        hosts.sample_clock(["sh", "-c", "echo gone >&2"], count=1)


def offset(ms: float, uncertainty_ms: float) -> hosts.ClockOffset:
    return hosts.ClockOffset(offset_ms=ms, uncertainty_ms=uncertainty_ms, round_trip_ms=2 * uncertainty_ms, samples=16)


def test_pair_verdicts_against_the_bound():
    within = hosts.pair_verdict("h1", offset(0.01, 0.02), "h2", offset(0.03, 0.02), 0.1)
    assert (within["verdict"], within["offset_ms"], within["uncertainty_ms"]) == ("within", 0.02, 0.04)
    assert "accepted" in within["consequence"]
    exceeds = hosts.pair_verdict("h1", offset(0.0, 0.05), "h2", offset(-0.5, 0.05), 0.1)
    assert exceeds["verdict"] == "exceeds" and exceeds["offset_ms"] == -0.5
    assert "will be refused" in exceeds["consequence"]
    unresolved = hosts.pair_verdict("h1", offset(0.0, 0.08), "h2", offset(0.01, 0.09), 0.1)
    assert unresolved["verdict"] == "unresolved" and "will be refused" in unresolved["consequence"]


def test_chrony_bound_from_recorded_tracking():
    stratum1 = tracking("chronyc-tracking-stratum1.txt")
    assert stratum1["Leap status"] == "Normal"
    # |System time| + Root dispersion + Root delay / 2 (chronyc(1))
    assert stratum1["error_bound_ms"] == pytest.approx((0.000000072 + 0.000011804 + 0.000000001 / 2) * 1e3)
    assert tracking("chronyc-tracking-stratum3.txt")["error_bound_ms"] == pytest.approx(
        (0.000001501 + 0.024780 + 0.373169 / 2) * 1e3)
    assert hosts.chrony_error_bound_ms({**stratum1, "Leap status": "Not synchronised"}) is None


def test_chrony_resolves_a_pair_only_against_one_reference():
    stratum1, stratum3 = tracking("chronyc-tracking-stratum1.txt"), tracking("chronyc-tracking-stratum3.txt")
    same = hosts.pair_verdict("h1", offset(0.0, 0.08), "h2", offset(0.01, 0.09), 0.1, stratum1, stratum1)
    assert same["verdict"] == "within" and same["evidence"].startswith("chrony")
    other = hosts.pair_verdict("h1", offset(0.0, 0.08), "h2", offset(0.01, 0.09), 0.1, stratum1,
                               {**stratum1, "Reference ID": "C0A80001 (192.168.0.1)"})
    assert other["verdict"] == "unresolved"
    loose = hosts.pair_verdict("h1", offset(0.0, 0.08), "h2", offset(0.01, 0.09), 0.1, stratum3, stratum3)
    assert loose["verdict"] == "unresolved"  # 211 ms each: far above the bound
    measured = hosts.pair_verdict("h1", offset(0.0, 0.05), "h2", offset(-0.5, 0.05), 0.1, stratum1, stratum1)
    assert measured["verdict"] == "exceeds"  # a measured excess is not talked away


# ------------------------------------------------------------------ host facts
def test_facts_from_recorded_output():
    wanted = ["iproute2", "python3", "python3-psutil", "iperf3", "d-itg", "wireguard-tools", "tinc"]
    facts = hosts.parse_facts((FIXTURES / "facts-lo.txt").read_text(), "lo", wanted)
    assert facts["uid"] == 0 and facts["kernel"].startswith("6.")
    assert facts["tools"]["ip"] == "/usr/sbin/ip" and facts["tools"]["nosuchtool"] is None
    assert facts["tools"]["/usr/lib/ipsec/charon"] == "/usr/lib/ipsec/charon"
    assert facts["underlay"] == {"dev": "lo", "exists": True, "mtu": 65536, "error": None}
    assert facts["missing_packages"] == ["python3-psutil"]
    assert facts["python3_imports_psutil"] is False
    assert facts["clock_sync"] == {}  # no chrony; timedatectl without systemd says only errors

    needs = hosts.HostNeeds(binaries=tuple(facts["tools"]), packages=tuple(wanted), unknown=())
    problems = hosts.host_problems(SshHost("h1", "192.0.2.10", underlay_dev="lo"), facts, needs)
    assert problems == ["missing tools: nosuchtool; run seconetbench hosts install --config F",
                        ("python3 cannot import psutil, which the host agent needs; run seconetbench hosts install "
                         "--config F (Debian package python3-psutil for the system's python3)")]


def test_facts_of_a_missing_underlay_device():
    facts = hosts.parse_facts((FIXTURES / "facts-no-underlay.txt").read_text(), "eth9", ["iproute2"])
    assert facts["underlay"]["exists"] is False and "does not exist" in facts["underlay"]["error"]
    problems = hosts.host_problems(SshHost("h2", "192.0.2.11", underlay_dev="eth9"), facts,
                                   hosts.HostNeeds(("ip",), ("iproute2",), ()))
    assert len(problems) == 1 and problems[0].startswith("underlay device eth9 does not exist")


def test_an_underlay_device_below_the_testbeds_mtu_is_a_problem():
    text = (FIXTURES / "facts-lo.txt").read_text().replace("mtu 65536", "mtu 1450")
    facts = hosts.parse_facts(text, "lo", [])
    problems = hosts.host_problems(SshHost("h1", "192.0.2.10", underlay_dev="lo"), facts,
                                   hosts.HostNeeds(("ip",), (), ()))
    assert any("has MTU 1450" in p and "needs 1500" in p for p in problems)


def test_facts_script_quotes_what_it_is_given():
    script = hosts.facts_script("eth1; reboot", ["ip"], ["iproute2"])
    assert "'eth1; reboot'" in script


# ------------------------------------------------------------------ what a host needs
def test_every_requirement_of_the_full_sweep_has_a_debian_package():
    needs = hosts.host_needs(config.load_files(REPO / "config" / "full.yaml"))
    assert needs.unknown == ()
    for package in ("iproute2", "python3", "python3-psutil", "d-itg", "iperf3", "wireguard-go", "strongswan-charon",
                    "libbpf-dev", "openvswitch-switch"):
        assert package in needs.packages
    assert {"ip", "python3", "ITGSend", "wg", "wireguard-go", "/usr/lib/ipsec/charon"} <= set(needs.binaries)


def test_package_table_agrees_with_what_the_technologies_say():
    # a requirement whose reason names its Debian package must name the table's package
    said = {}
    for setup in config_setups():
        for tech in preflight.setup_technologies(setup):
            for implementation in tech.implementations:
                tech.requested_implementation = implementation
                for requirement in tech.requires(setup):
                    found = re.search(r"Debian package ([a-z0-9.+-]+)", requirement.why)
                    if requirement.kind == "binary" and found:
                        said[requirement.name] = found.group(1)
    assert said
    assert {name: hosts.BINARY_PACKAGES.get(name) for name in said} == said


def config_setups():
    from seconetbench.sweep import candidate_setups

    return candidate_setups(config.load_files(REPO / "config" / "full.yaml"))


def test_every_technology_binary_is_in_the_table():
    names = {(kind, name) for kind in technology.KINDS for name in technology.names(kind, backend="netns")}
    assert names  # the table covers the sweep above; this guards a technology full.yaml leaves out
    binaries = set()
    for setup in config_setups():
        for tech in preflight.setup_technologies(setup):
            for implementation in tech.implementations:
                tech.requested_implementation = implementation
                binaries |= {r.name for r in tech.requires(setup) if r.kind == "binary"}
    assert binaries - set(hosts.BINARY_PACKAGES) == set()


# ------------------------------------------------------------------ the command
def test_hosts_command_refuses_a_config_of_another_backend(tmp_path, capsys):
    path = tmp_path / "netns.yaml"
    path.write_text("sweep: {workloads: [latency], single: {solutions: [bridge], filters: [none], containers: [2]}}\n"
                    "workloads: {latency: {kind: latency}}\n")
    assert cli.main(["hosts", "check", "--config", str(path)]) == 1
    assert "`hosts` works on the hosts of the ssh backend" in capsys.readouterr().err
