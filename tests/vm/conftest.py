"""Two QEMU VM hosts of Debian's stock kernel (testbed/vms.py), booted once per session from the
cached image (testbed/vmimage.py; built on the first run, a few minutes), and an SSH channel to
each; at the session's end the VMs are stopped with proof that nothing of them is left.

The tier needs root, QEMU (qemu-system-x86), Debian's stock kernel (linux-image-amd64),
debootstrap and socat; without them the tests skip, except under CI (CI=true), where they fail:
a green CI must not hide a missing install step."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess

import pytest

from seconetbench.remote.ssh import SshChannel, control_dir
from seconetbench.testbed import cleanup, netlink, vmimage
from seconetbench.testbed.vms import VmHosts
from tests.conftest import HOST


def missing_prerequisite(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"vm tier prerequisites missing under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def vm_tools():
    if os.geteuid() != 0:
        missing_prerequisite("needs root: the VMs' network is a namespace of ours")
    missing = [t for t in ("qemu-system-x86_64", "debootstrap", "socat", "ssh") if shutil.which(t) is None]
    kernel = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", "linux-image-amd64"], capture_output=True, text=True)
    if "install ok installed" not in kernel.stdout:
        missing.append("linux-image-amd64")
    if missing:
        missing_prerequisite(f"vm tier tools missing: {missing} (tools/setup.sh installs qemu-system-x86, "
                             "linux-image-amd64, debootstrap, socat, openssh-client)")


@pytest.fixture(scope="session")
def vm_image(vm_tools):
    """The cached image's manifest (testbed/vmimage.py), built first when the cache has none."""
    return vmimage.ensure_image()


@pytest.fixture(scope="module")
def vms(vm_image):
    """Two running VMs (1 CPU, 1 GB each; accel auto) of a fresh prefix of their own, for one test
    module: they stop before the next module (a workflow test running on two more TCG guests would
    crawl). The host lock is held while they run: two TCG guests keep both cores busy, no sweep
    measures meanwhile."""
    prefix = "scnv" + secrets.token_hex(2)
    with HOST.held():
        hosts = VmHosts(prefix, count=2)
        try:
            hosts.start()
            yield hosts
        finally:
            pids = list(hosts.pids.values())
            hosts.stop()
            left = cleanup.leftovers(prefix)
            assert not any(left.values()), f"the VMs left {left}"
            assert not [p for p in pids if os.path.exists(f"/proc/{p}")], f"QEMU still runs: {pids}"
            assert hosts.netns not in netlink.list_netns()


@pytest.fixture(scope="module")
def channels(vms):
    """An open SSH channel (one master connection) to each VM, in VM order."""
    opened = [SshChannel(host, vms.options, control_dir(vms.prefix)) for host in vms.hosts]
    try:
        for channel in opened:
            channel.open()
        yield opened
    finally:
        for channel in opened:
            channel.close()
