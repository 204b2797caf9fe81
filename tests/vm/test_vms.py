"""The VM hosts themselves (testbed/vms.py): they answer over SSH with Debian's stock kernel, the
kernel modules this machine lacks load in them, the data network carries traffic between them
and its tbf limits it, another process finds them running, and ending them leaves nothing."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys

import pytest

from seconetbench.testbed import cleanup, netlink, vmimage
from seconetbench.testbed.vms import VmHosts, vnet_netns

pytestmark = [pytest.mark.privileged, pytest.mark.vm]
# Addresses these tests put on the VMs' data NICs themselves (the ssh backend puts its own in its
# host namespaces); removed again after each test.
DATA_IP = "198.18.5.{i}"


def test_each_vm_answers_over_ssh_with_debians_stock_kernel(vms, channels):
    release, _ = vmimage.stock_kernel()
    for i, channel in enumerate(channels, 1):
        said = channel.run(["sh", "-c", "uname -r; hostname; ip -o -4 addr show dev ctl0"]).stdout.splitlines()
        assert said[0] == release, f"vm{i} runs kernel {said[0]}, not the stock {release}"
        assert said[1] == f"vm{i}" and f"198.18.6.{i}/24" in said[2]
    assert vms.accel in ("kvm", "tcg") and vms.accel_evidence
    assert set(vms.timings["ssh_s"]) == {"vm1", "vm2"}


def test_the_vms_have_what_the_host_agent_and_the_technologies_run(channels):
    import shlex

    from seconetbench.remote.hosts import BINARY_PACKAGES

    lookups = " ".join(f"command -v {shlex.quote(b)} >/dev/null || echo {shlex.quote(b)};" for b in BINARY_PACKAGES)
    said = channels[0].run(["sh", "-c", f"{lookups} python3 -c 'import psutil'"])
    assert said.stdout.split() == [], f"missing in the VM: {said.stdout.split()}"


KERNEL_PATHS = {
    "wireguard": "ip link add scnwg0 type wireguard && ip link del scnwg0",
    "ipip": "ip link add scnipip0 type ipip local 198.18.5.1 remote 198.18.5.2 && ip link del scnipip0",
    "ip_gre": "ip link add scngre0 type gre local 198.18.5.1 remote 198.18.5.2 && ip link del scngre0",
    "esp4": ("ip xfrm state add src 198.18.5.1 dst 198.18.5.2 proto esp spi 0x5c4 enc 'cbc(aes)' "
             "0x000102030405060708090a0b0c0d0e0f && ip xfrm state delete src 198.18.5.1 dst 198.18.5.2 "
             "proto esp spi 0x5c4"),
    "openvswitch": "test -d /sys/module/openvswitch",
}


@pytest.mark.parametrize("module", list(KERNEL_PATHS))
def test_the_kernel_modules_of_the_kernel_paths_load_and_work(channels, module):
    """The modules this machine's kernel lacks: each loads in the VM, and the device or state it
    provides can be made."""
    channel = channels[0]
    channel.run(["modprobe", module])
    assert channel.run(["test", "-d", f"/sys/module/{module}"], check=False).returncode == 0
    channel.run(["sh", "-c", KERNEL_PATHS[module]])


@pytest.fixture
def data_addresses(channels):
    """198.18.5.i/24 on each VM's data NIC for the test (the root namespace of the VM)."""
    for i, channel in enumerate(channels, 1):
        channel.run(["ip", "addr", "add", f"{DATA_IP.format(i=i)}/24", "dev", vmimage.DATA_IF])
    yield [DATA_IP.format(i=i) for i in range(1, len(channels) + 1)]
    for i, channel in enumerate(channels, 1):
        channel.run(["ip", "addr", "del", f"{DATA_IP.format(i=i)}/24", "dev", vmimage.DATA_IF], check=False)


def test_vm1_reaches_vm2_over_the_data_network(channels, data_addresses):
    said = channels[0].run(["ping", "-c", "3", "-i", "0.2", "-W", "5", data_addresses[1]], check=False)
    assert said.returncode == 0, said.stdout + said.stderr
    assert " 0% packet loss" in said.stdout


@contextlib.contextmanager
def iperf3_server(channel, address: str):
    """A one-shot iperf3 server on the VM, yielded once it says it listens (--forceflush)."""
    server = subprocess.Popen(channel.argv(["iperf3", "-s", "-1", "--forceflush", "-B", address]),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        said = [server.stdout.readline() for _ in range(2)]  # a rule of dashes, then the news
        assert "Server listening" in said[1], f"iperf3 server did not start: {said}"
        yield server
    finally:
        server.kill()
        server.wait()
        channel.run(["pkill", "-x", "iperf3"], check=False)  # the remote side (a test VM of ours)


def test_the_underlay_rate_limit_holds_the_throughput_below_it(vms, channels, data_addresses):
    """tbf at 20 Mbit/s on the data taps: an iperf3 TCP stream between the VMs stays below
    1.2 x the rate (a functional check: under TCG the VMs reach more than that unshaped), and the
    tbf did act (overlimits)."""
    rate_mbit = 20
    vms.set_rate(rate_mbit)
    try:
        with iperf3_server(channels[1], data_addresses[1]):
            result = channels[0].run(["iperf3", "-c", data_addresses[1], "-B", data_addresses[0], "-t", "4", "-J"],
                                     timeout=60)
        received = json.loads(result.stdout)["end"]["sum_received"]["bits_per_second"]
        stats = subprocess.run(["ip", "netns", "exec", vms.netns, "tc", "-s", "-j", "qdisc", "show", "dev", "d2"],
                               capture_output=True, text=True, check=True)
    finally:
        vms.set_rate(None)
    tbf = next(q for q in json.loads(stats.stdout) if q["kind"] == "tbf")
    assert 0 < received < 1.2 * rate_mbit * 1e6, f"{received / 1e6:.1f} Mbit/s through a {rate_mbit} Mbit/s tbf"
    assert tbf["overlimits"] > 0, f"the tbf never held a packet back: {tbf}"


def test_another_process_attaches_to_the_running_vms(vms):
    """What the next Snakemake job does: the VMs found by their state file, nothing booted anew."""
    script = ("import json, sys\nfrom seconetbench.testbed.vms import VmHosts\n"
              "found = VmHosts.attach(sys.argv[1])\n"
              "again = VmHosts(sys.argv[1], count=2)\nagain.start()\n"
              "print(json.dumps({'running': found.running(), 'pids': found.pids, 'again': again.pids, "
              "'accel': found.accel, 'hosts': [h.address for h in found.hosts]}))")
    said = subprocess.run([sys.executable, "-c", script, vms.prefix], capture_output=True, text=True, check=True)
    seen = json.loads(said.stdout)
    assert seen["running"] and seen["pids"] == vms.pids == seen["again"]
    assert seen["accel"] == vms.accel and seen["hosts"] == [h.address for h in vms.hosts]


@pytest.mark.slow
def test_vms_left_by_a_process_that_ended_are_removed_by_cleanup(vm_tools):
    """A controller that started a VM and ended without stopping it (the VMs outlive each target's
    process): cleanup of the prefix ends QEMU by pid and removes the namespace and state."""
    prefix = "scnv" + secrets.token_hex(2)
    script = ("import json, sys\nfrom seconetbench.testbed.vms import VmHosts\n"
              "vms = VmHosts(sys.argv[1], count=1)\nvms.start()\nprint(json.dumps(vms.pids))")
    try:
        said = subprocess.run([sys.executable, "-c", script, prefix], capture_output=True, text=True, timeout=600)
        assert said.returncode == 0, said.stderr[-2000:]
        pid = json.loads(said.stdout)["vm1"]
        assert os.path.exists(f"/proc/{pid}") and VmHosts.attach(prefix).running()
    finally:
        cleanup.remove(prefix)
    assert not os.path.exists(f"/proc/{pid}")
    assert vnet_netns(prefix) not in netlink.list_netns()
    assert not any(cleanup.leftovers(prefix).values()) and not cleanup.state_dir(prefix).exists()
