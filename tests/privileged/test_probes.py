"""The real probes on this machine: their verdicts agree with what the kernel really does, they
leave nothing behind, and a pinned implementation the kernel lacks is refused before any deploy
with the probe's own words.

This machine's kernel (6.18, no loadable modules, /proc/config.gz readable) has VXLAN built in
and no IPIP, GRE, WireGuard, ESP or OVS datapath; on a kernel that has them, the per-machine
assertions below are skipped and the cross-check against the kernel config still runs.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from seconetbench import config, preflight, probes
from seconetbench.errors import ConfigError, DeployError
from seconetbench.backends.netns import NetnsBackend
from seconetbench.spec import SetupSpec
from seconetbench.sweep import expand
from seconetbench.testbed import netlink

pytestmark = pytest.mark.privileged


@pytest.fixture
def probed(prefix):
    """The real probes, run afresh in <prefix>-probe."""
    probes.forget()
    found = probes.results(prefix, fresh=True)
    yield found
    probes.forget()


def built_in(options: tuple[str, ...]) -> bool | None:
    """What /proc/config.gz says about *options* (None when it cannot decide: no config, or
    modules this kernel could load)."""
    config_file = probes.read_config(probes.Path("/proc/config.gz"))
    if config_file is None or probes.modprobe_possible() is None:
        return None
    return all(config_file.get(o) == "y" for o in options)


def test_every_probe_agrees_with_the_kernel_and_leaves_nothing(prefix, probed):
    assert set(probed) == set(probes.PROBES)
    for name, result in probed.items():
        expected = built_in(probes.PROBES[name].options)
        if expected is not None:
            assert result.kernel_available == expected, (name, result.explain())
        created = [e for e in result.evidence if e.probe == "create"]
        assert created and all(e.passed is not None for e in created)
        assert [e for e in result.evidence if e.probe == "hint"]  # the files are recorded, not trusted
    assert not [n for n in netlink.list_netns() if n.startswith(f"{prefix}-probe")]


def test_this_machine_has_kernel_vxlan_only(probed):
    if probed["wireguard"].kernel_available or built_in(("CONFIG_VXLAN",)) is None:
        pytest.skip("a kernel with WireGuard (or without a readable config): not this machine")
    assert probed["vxlan"].kernel_available
    for name in ("wireguard", "ipip", "gre", "ipsec", "ovs"):
        assert not probed[name].kernel_available, name
    assert probed["wireguard"].deciding().said == "Error: Unknown device type."
    assert preflight.resolved_implementation(SetupSpec("multi", "bridge", "none", 2, tunnel="vxlan", hosts=2)) == "kernel"
    assert preflight.resolved_implementation(SetupSpec("multi", "bridge", "none", 2, tunnel="wireguard", hosts=2)) == "userspace"
    assert preflight.resolved_implementation(SetupSpec("multi", "bridge", "none", 2, tunnel="ipip", hosts=2)) == "tc-bpf"
    assert preflight.resolved_implementation(SetupSpec("single", "ovs", "none", 2)) == "userspace"


def test_a_device_the_probe_calls_missing_cannot_be_created(prefix, probed):
    """The verdict is reality: ip link add of each device kind the probe calls missing fails."""
    netns = f"{prefix}-check"
    netlink.create_netns(netns)
    try:
        for name, args in (("wireguard", []), ("ipip", []), ("gre", []), ("vxlan", ["id", "7", "dstport", "4789"])):
            result = subprocess.run(["ip", "-n", netns, "link", "add", f"{prefix}-{name[:4]}", "type", name, *args],
                                    capture_output=True, text=True)
            assert (result.returncode == 0) == probed[name].kernel_available, (name, result.stderr)
    finally:
        netlink.delete_netns(netns)


def test_pinning_kernel_wireguard_here_is_refused_before_any_deploy(prefix, probed, tmp_path):
    if probed["wireguard"].kernel_available:
        pytest.skip("this kernel has WireGuard")
    cfg = config.validate({"results_dir": str(tmp_path), "testbed": {"prefix": prefix},
                           "sweep": {"multi": {"tunnels": ["wireguard"], "filters": ["none"], "containers": [2],
                                               "implementations": {"wireguard": "kernel"}},
                                     "workloads": ["latency"]},
                           "workloads": {"latency": {"kind": "latency"}}})
    with pytest.raises(ConfigError) as refused:
        expand(cfg, check_machine=True)
    message = str(refused.value)
    assert "sweep.multi.implementations.wireguard" in message
    assert re.search(rf"`ip -n {prefix}-probe\d+ link add {prefix}-p\d+ type wireguard` said 'Error: Unknown device type.'",
                     message), message
    assert "or use auto/userspace" in message
    # deploying the pinned setup directly is refused before anything is created
    with pytest.raises(DeployError, match="Unknown device type"):
        NetnsBackend(prefix).deploy(SetupSpec("multi", "bridge", "none", 2, tunnel="wireguard", hosts=2,
                                              implementation="kernel"))
    assert not [n for n in netlink.list_netns() if n.startswith(prefix)]


def seconetbench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seconetbench", *args], capture_output=True, text=True,
                          timeout=300)


def test_preflight_lists_each_implementation_with_its_evidence_and_refuses_a_pin(prefix, tmp_path):
    report = json.loads(seconetbench("preflight", "--json").stdout)
    rows = {r["technology"]: r for r in report["implementations"]}
    assert {"wireguard", "ipsec", "ipip", "gre", "vxlan", "ovs"} <= set(rows)
    for row in rows.values():
        assert row["resolved"] in row["offered"] and row["evidence"] and row["probe"]
    text = seconetbench("preflight").stdout
    assert "implementations (decided by probes" in text and "auto -> " in text
    pinned = tmp_path / "pinned.yaml"
    pinned.write_text(json.dumps({"results_dir": str(tmp_path / "results"), "testbed": {"prefix": prefix},
                                  "sweep": {"multi": {"tunnels": ["wireguard"], "filters": ["none"], "containers": [2],
                                                      "implementations": {"wireguard": ["kernel", "userspace"]}},
                                            "workloads": ["latency"]},
                                  "workloads": {"latency": {"kind": "latency"}}}))
    result = seconetbench("preflight", "--config", str(pinned))
    wireguard_kernel = rows["wireguard"]["kernel_available"]
    assert result.returncode == (0 if wireguard_kernel else 1), result.stderr
    if not wireguard_kernel:
        assert "sweep.multi.implementations.wireguard: kernel REFUSED: kernel is not available here" in result.stdout
        assert "sweep.multi.implementations.wireguard: userspace available" in result.stdout
        setups = seconetbench("setups", "--config", str(pinned))
        assert setups.returncode == 1 and "Unknown device type" in setups.stderr


def test_every_probe_creates_its_own_device_in_the_one_scratch_namespace(prefix, monkeypatch):
    # a kernel with ipip, gre and vxlan keeps each probe's device: a second device of the same
    # name is refused ('File exists'), which read as "no kernel IPIP" on a VM of Debian's kernel
    created: list[str] = []

    def succeed(argv):
        if "link" in argv and "add" in argv:
            created.append(argv[argv.index("add") + 1])
        return True, "ok"

    monkeypatch.setattr(probes, "run_probe_command", succeed)
    found = probes.probe_kernel(prefix)
    assert all(result.kernel_available for result in found.values())
    assert len(created) >= 3 and len(set(created)) == len(created), created
    assert all(name.startswith(f"{prefix}-p") for name in created)
