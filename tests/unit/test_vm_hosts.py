"""The pure parts of the VM hosts (testbed/vms.py, testbed/vmimage.py): the kernel command line
and QEMU's, the accelerator decision from recorded probe output, the image recipe's hash."""

from __future__ import annotations

import shlex

import pytest

from seconetbench.errors import DeployError, InvalidValueError
from seconetbench.remote.hosts import BASE_PACKAGES, BINARY_PACKAGES
from seconetbench.testbed import vmimage
from seconetbench.testbed.vms import (
    VmHosts,
    accel_decision,
    kernel_cmdline,
    mac_address,
    qemu_argv,
    tbf_argv,
)
from tests.conftest import SHARED_FIXTURES

pytestmark = pytest.mark.unit
FIXTURES = SHARED_FIXTURES / "vm"
MANIFEST = {"kernel": "/boot/vmlinuz-6.1.0-57-amd64", "initrd": "/var/cache/seconetbench/vm/b43eaa47ef1a/initrd.img",
            "rootfs": "/var/cache/seconetbench/vm/b43eaa47ef1a/root.img"}


def test_the_kernel_command_line_carries_the_control_address_and_name_the_image_reads():
    words = kernel_cmdline(2).split()
    assert "scn.ctl=198.18.6.2/24" in words and "scn.name=vm2" in words
    assert {"root=/dev/vda", "console=ttyS0,115200", "panic=-1"} <= set(words)
    script = {path: text for path, text, _ in vmimage.guest_files()}["usr/local/sbin/scn-net"]
    assert "scn.ctl=*" in script and "scn.name=*" in script  # the keys the guest's unit parses


def test_qemu_boots_the_image_as_a_snapshot_with_both_nics_on_their_pinned_slots(tmp_path):
    argv = qemu_argv(1, MANIFEST, "tcg", cpus=2, memory_mb=768, console=tmp_path / "console.log")
    line = shlex.join(argv)
    assert argv[0] == "qemu-system-x86_64" and "-no-reboot" in argv
    assert argv[argv.index("-smp") + 1] == "2" and argv[argv.index("-m") + 1] == "768"
    assert argv[argv.index("-accel") + 1] == "tcg"
    assert f"file={MANIFEST['rootfs']},format=raw,if=virtio,snapshot=on" in argv
    assert argv[argv.index("-append") + 1] == kernel_cmdline(1)
    assert argv[argv.index("-serial") + 1] == f"file:{tmp_path / 'console.log'}"
    assert "tap,id=ctl,ifname=c1,script=no,downscript=no" in line and "tap,id=data,ifname=d1" in line
    # the slots the image's .link files name ctl0 and data0 by
    assert f"virtio-net-pci,netdev=ctl,mac={mac_address(6, 1)},addr=0x3" in argv
    assert f"virtio-net-pci,netdev=data,mac={mac_address(5, 1)},addr=0x4" in argv
    links = {path: text for path, text, _ in vmimage.guest_files() if path.endswith(".link")}
    assert "Path=pci-0000:00:03.0" in links["etc/systemd/network/10-scn-ctl0.link"]
    assert "Path=pci-0000:00:04.0" in links["etc/systemd/network/10-scn-data0.link"]


def test_kvm_runs_the_host_cpu_and_an_unresolved_accelerator_is_refused(tmp_path):
    argv = qemu_argv(3, MANIFEST, "kvm", cpus=1, memory_mb=1024, console=tmp_path / "c")
    assert argv[argv.index("-accel") + 1] == "kvm" and argv[argv.index("-cpu") + 1] == "host"
    with pytest.raises(InvalidValueError, match="probe_accel"):
        qemu_argv(1, MANIFEST, "auto", cpus=1, memory_mb=1024, console=tmp_path / "c")


def test_a_kernel_that_prints_its_first_line_under_kvm_means_kvm():
    console = (FIXTURES / "tcg-console-head.txt").read_text()  # the same kernel's first lines (recorded under TCG)
    decision = accel_decision(console, "", None, 20)
    assert decision["accel"] == "kvm" and "Linux version 6.1.0-57-amd64" in decision["evidence"]


def test_qemu_dying_under_kvm_before_the_kernel_means_tcg_naming_qemu():
    said = (FIXTURES / "kvm-cpu-host-qemu.err").read_text()  # -cpu host on this nested machine
    decision = accel_decision("", said, -6, 20)
    assert decision["accel"] == "tcg"
    assert "signal 6" in decision["evidence"] and "failed to set MSR 0x10a" in decision["evidence"]


def test_a_silent_kvm_guest_until_the_bound_means_tcg():
    said = (FIXTURES / "kvm-hang-qemu.err").read_text()  # default CPU model: hangs without output
    decision = accel_decision((FIXTURES / "kvm-hang-console.txt").read_text(), said, None, 20)
    assert decision["accel"] == "tcg" and "no kernel output under KVM within 20 s" in decision["evidence"]
    assert "CPUID.01H:ECX.pni" in decision["evidence"]


def test_the_tbf_bucket_holds_a_full_frame_at_low_rates_and_10_ms_at_high_ones():
    low = tbf_argv("d1", 5)
    assert low[:7] == ["tc", "qdisc", "replace", "dev", "d1", "root", "tbf"]
    assert low[low.index("rate") + 1] == "5mbit" and int(low[low.index("burst") + 1]) == 16 * 1024
    high = tbf_argv("d2", 1000)
    assert int(high[high.index("burst") + 1]) == 1_250_000  # 10 ms at 1 Gbit/s


def test_the_recipe_hash_changes_with_packages_kernel_and_nothing_else():
    packages = vmimage.image_packages()
    digest = vmimage.recipe_hash(packages, "6.1.0-57-amd64", "6.1.192-3")
    assert digest == vmimage.recipe_hash(tuple(reversed(packages)), "6.1.0-57-amd64", "6.1.192-3")
    assert digest != vmimage.recipe_hash((*packages, "htop"), "6.1.0-57-amd64", "6.1.192-3")
    assert digest != vmimage.recipe_hash(packages, "6.1.0-58-amd64", "6.1.193-1")
    assert digest != vmimage.recipe_hash(packages, "6.1.0-57-amd64", "6.1.192-4")


def test_the_image_holds_every_package_a_host_may_need():
    packages = set(vmimage.image_packages())
    assert set(BINARY_PACKAGES.values()) <= packages and set(BASE_PACKAGES) <= packages
    assert {"openssh-server", "systemd-sysv", "libstrongswan-standard-plugins", "libbpf-dev"} <= packages


def test_the_stock_kernel_is_what_linux_image_amd64_depends_on():
    assert vmimage.kernel_release_of("linux-image-6.1.0-57-amd64 (= 6.1.192-3)") == "6.1.0-57-amd64"
    assert vmimage.kernel_release_of("linux-image-6.12.9-amd64 (= 6.12.9-1), foo") == "6.12.9-amd64"
    with pytest.raises(DeployError, match="linux-image-amd64"):
        vmimage.kernel_release_of("linux-image-amd64-signed-template")


@pytest.mark.parametrize(("field", "kwargs"), [
    ("testbed.vm.hosts", {"count": 0}), ("testbed.vm.cpus", {"cpus": 0}),
    ("testbed.vm.memory_mb", {"memory_mb": 64}), ("testbed.vm.accel", {"accel": "hvf"}),
    ("testbed.vm.underlay.rate_mbit", {"rate_mbit": -5}), ("testbed.vm.boot_timeout_s", {"boot_timeout_s": 0}),
])
def test_bad_vm_settings_are_refused_naming_the_field(field, kwargs):
    with pytest.raises(InvalidValueError, match=field.replace(".", r"\.")):
        VmHosts("scnv0001", **kwargs)


def test_hosts_and_options_are_known_before_the_vms_boot():
    vms = VmHosts("scnv0001", count=3)
    hosts = vms.hosts
    assert [h.name for h in hosts] == ["vm1", "vm2", "vm3"]
    assert [h.address for h in hosts] == ["198.18.6.1", "198.18.6.2", "198.18.6.3"]
    assert {h.underlay_dev for h in hosts} == {"data0"} and hosts[2].underlay_ip == "198.18.5.3"
    assert hosts[0].proxy_command == "ip netns exec scnv0001-vnet socat STDIO TCP:%h:%p"
    assert hosts[0].identity_file == str(vms.client_key) and vms.options.known_hosts_file == str(vms.known_hosts)
    assert vms.options.strict_host_key_checking == "yes"
