"""The vm backend: hosts are QEMU VMs booted here from Debian's stock kernel (docs/vm.md).

It is the ssh backend whose hosts it boots itself: :class:`~seconetbench.testbed.vms.VmHosts`
starts the VMs from the cached image (testbed/vmimage.py) in a network namespace of ours and
hands over each VM's SSH endpoint; everything on a host (namespaces, technologies, the agent,
the isolation proof) is then the ssh backend's. So the kernel data paths this machine lacks
(kernel WireGuard, xfrm ESP, IPIP, GRE, the OVS kernel datapath) run in the VMs' real kernel,
with the same technology code as everywhere else.

The VMs live from the first deploy of an invocation to its end (`teardown`, or `seconetbench
clean`): each target's process finds them running by their state file. They belong to a prefix
of their own (:func:`vm_prefix`), because the ssh backend's deploy removes this machine's
leftovers of the run prefix. Their disks are copy-on-write snapshots of the cached image: ending
the VMs removes everything a run put on them.
"""

from __future__ import annotations

import hashlib
from typing import Any

from seconetbench.backends.base import BaseBackend, Deployment, Host, Underlay
from seconetbench.backends.ssh import SshBackend
from seconetbench.spec import SetupSpec
from seconetbench.testbed import cleanup
from seconetbench.testbed.vms import vnet_netns

# the veth pair in the VMs' network namespace that receives a copy of every frame on the wire
MONITOR_IF, MONITOR_PEER = "vmon0", "vmon1"
def vm_prefix(prefix: str) -> str:
    """The prefix of run *prefix*'s VMs and their network: 'scnv' and 4 hex digits (a run prefix
    made by the config is 'scn' and hex digits, so never one of these)."""
    return "scnv" + hashlib.sha256(prefix.encode()).hexdigest()[:4]


def data_tap(index: int) -> str:
    """VM *index*'s data NIC as this machine sees it: its tap in the vnet namespace."""
    return f"d{index}"


def mirror_underlay(netns: str, taps: list[str]) -> None:
    """Mirror every frame the VMs send on the data network (each tap's ingress) to MONITOR_IF in
    *netns*, where the tunnel checks capture: the wire as it is, once per frame.

    Not a capture inside a VM: with kernel ESP a host's own capture also sees each packet it
    decrypts (xfrm hands it to the receiving device again, past the packet taps), which looks
    like plain traffic on the wire. Not the data bridge: a bridge's own capture sees only what
    is flooded or sent to it, not what it forwards. Idempotent: a later target finds it in place."""
    from seconetbench import proc
    from seconetbench.testbed import netlink

    if MONITOR_IF in netlink.link_names(netns):
        return
    with netlink.route(netns) as sock:
        sock.link("add", ifname=MONITOR_IF, kind="veth", peer={"ifname": MONITOR_PEER})
        for name in (MONITOR_IF, MONITOR_PEER):
            sock.link("set", index=netlink.index(sock, name), state="up")
    for tap in taps:
        proc.run_in(netns, ["tc", "qdisc", "add", "dev", tap, "ingress"])
        proc.run_in(netns, ["tc", "filter", "add", "dev", tap, "parent", "ffff:", "protocol", "all", "u32", "match",
                            "u32", "0", "0", "action", "mirred", "egress", "mirror", "dev", MONITOR_IF])


def netem_args(underlay: dict[str, Any]) -> list[str]:
    """tc's netem arguments of testbed.vm.underlay (delay per direction, random loss)."""
    args = ["netem"]
    if underlay.get("delay_ms"):
        args += ["delay", f"{underlay['delay_ms']}ms"]
    if underlay.get("loss_pct"):
        args += ["loss", f"{underlay['loss_pct']}%"]
    return args


def vm_settings(testbed: dict[str, Any]) -> dict[str, Any]:
    """testbed.vm with the schema's defaults (also for a backend made without a validated config)."""
    from seconetbench.config import with_defaults

    return with_defaults(testbed.get("vm") or {}, "testbed", "vm")


class VmBackend(SshBackend):
    """Namespaces on QEMU VMs of Debian's stock kernel, reached over SSH (docs/vm.md)."""

    name = "vm"
    STATE_FILE = "vm-deployment.json"

    def __init__(self, prefix: str, testbed: dict[str, Any] | None = None):
        BaseBackend.__init__(self, prefix)
        from seconetbench.testbed.vms import VmHosts

        self.settings = vm_settings(testbed or {})
        self.vms = VmHosts(vm_prefix(prefix), count=self.settings["hosts"], cpus=self.settings["cpus"],
                           memory_mb=self.settings["memory_mb"], accel=self.settings["accel"],
                           rate_mbit=self.settings["underlay"]["rate_mbit"],
                           boot_timeout_s=self.settings["boot_timeout_s"])
        self._use_hosts(self.vms.hosts, self.vms.options, self.settings["max_clock_offset_ms"])

    def prepare(self, setup: SetupSpec) -> Deployment:
        # boots the VMs, or finds them running (an earlier target of this invocation booted them)
        self.vms.start()
        mirror_underlay(self.vms.netns, [data_tap(i) for i in self.vms.indices])
        self.on_hosts([h.name for h in self.config_hosts], self.emulate_underlay)
        return super().prepare(setup)

    def emulate_underlay(self, name: str) -> None:
        """testbed.vm.underlay's delay and loss: netem on the VM's data NIC, in the VM's own
        kernel (this machine's may lack netem; the VM and all on it are ours). Set on every
        deploy, so the VMs always have what the config says (none: netem removed)."""
        from seconetbench.testbed.vmimage import DATA_IF

        underlay = self.settings["underlay"]
        channel = self.channel(name)
        if not (underlay.get("delay_ms") or underlay.get("loss_pct")):
            channel.run(["tc", "qdisc", "del", "dev", DATA_IF, "root"], check=False)
            return
        channel.run(["tc", "qdisc", "replace", "dev", DATA_IF, "root", *netem_args(underlay)])

    def plan_underlay(self, setup: SetupSpec, hosts: list[Host]) -> Underlay | None:
        if setup.scenario != "multi":
            return None
        # the wire itself, on this machine: every frame a VM sends on the data network, mirrored
        # (mirror_underlay), so the tunnel checks see all pairs and only what crossed the wire
        return Underlay(switch_netns=vnet_netns(vm_prefix(self.prefix)), ports={h.name: data_tap(h.index) for h in hosts},
                        capture_ifname=MONITOR_IF)

    def build(self, deployment: Deployment) -> None:
        super().build(deployment)
        deployment.facts["vm"] = self.vm_facts()

    def vm_facts(self) -> dict[str, Any]:
        """What the VMs are, for meta.json: accelerator (and the probe's evidence), kernel, CPUs,
        memory, the underlay's rate, boot timings and the image."""
        return {**self.vms.facts(), "kernel": self.settings["kernel"]}

    def identity(self, setup: SetupSpec) -> dict[str, Any]:
        return {"vm": {key: self.settings[key] for key in ("cpus", "memory_mb", "accel", "kernel", "underlay")},
                "hosts": self.settings["hosts"]}

    # ------------------------------------------------------------------ teardown
    def teardown(self) -> dict[str, list[str]]:
        """The deployment on the VMs (the ssh backend's teardown); the VMs keep running for the
        next target. A failed deploy or target tears down this far."""
        if not self.vms.running():
            return cleanup.remove(self.prefix)
        return super().teardown()

    def finish(self) -> dict[str, list[str]]:
        """The end of the invocation: the VMs too."""
        return self.clean_remote({"vm": self.settings}, self.prefix)

    @classmethod
    def clean_remote(cls, testbed: dict[str, Any], prefix: str | None) -> dict[str, list[str]]:
        """Ending the VMs removes what a run put on them (their disks are snapshots of the cached
        image); then this machine's state of the run (the master connections too). Without a
        prefix: every run's VMs (each QEMU registered by pid under its VM prefix)."""
        if prefix is None:
            return cleanup.remove(None)
        from seconetbench.testbed.vms import VmHosts

        vms = VmHosts(vm_prefix(prefix))
        was_running = vms.running()
        vms.stop()
        return {**cleanup.remove(prefix), "vms": [vm_prefix(prefix)] if was_running else []}
