"""QEMU VM hosts booted here from Debian's stock kernel, reached over SSH like lab hosts: the
machines of the vm backend (docs/vm.md). The sibling of testbed/labhosts.py, same shape:

    with VmHosts("scnv12ab", count=2) as vms:   # boots both (or finds them running), waits for sshd
        vms.hosts, vms.options                  # SshHost entries and SshOptions (remote.ssh.SshChannel)
        vms.testbed_config()                    # the `testbed:` section of an ssh-backend config
        vms.accel, vms.timings, vms.console_log(1)

Per VM i (1-based), all in one network namespace of ours, ``<prefix>-vnet``:

- QEMU runs in that namespace (``ip netns exec``), its disk the cached image
  (testbed/vmimage.py) opened with ``snapshot=on``, its kernel and initrd Debian's stock ones;
- its control NIC (guest ``ctl0``, 198.18.6.i/24 from the kernel command line) is the tap
  ``c<i>`` on the bridge ``ctl``, which holds 198.18.6.254/24: ssh reaches sshd through
  ``ip netns exec <prefix>-vnet socat STDIO TCP:%h:%p`` as its ProxyCommand;
- its data NIC (guest ``data0``, the ssh backend's underlay_dev; its underlay_ip 198.18.5.i) is
  the tap ``d<i>`` on the bridge ``data``. With *rate_mbit*, a tbf on each data tap limits what
  the data network delivers to that VM;
- its serial console goes to ``<state>/vm/vm<i>/console.log``; the boot is over when the
  image's scn-ready unit writes vmimage.READY_MARK there (sshd runs) and sshd's banner answers.

Nothing is added to this machine's own namespace. QEMU is registered by pid in the prefix's
registry, so ``cleanup.remove(prefix)`` ends the VMs even after a crash of this process; the
state file ``<state>/vm/state.json`` lets another process attach to the running VMs
(:meth:`VmHosts.start` finds them, :meth:`VmHosts.attach`).

The accelerator: ``auto`` probes KVM once per boot of this machine (:func:`probe_accel`) and
takes TCG when KVM does not boot a kernel; ``kvm`` pinned and not working is an error.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from seconetbench import proc
from seconetbench.errors import DeployError, InvalidValueError
from seconetbench.remote.ssh import SshHost, SshOptions
from seconetbench.testbed import cleanup, netlink, vmimage
from seconetbench.testbed.labhosts import ssh_testbed
from seconetbench.testbed.naming import Names

CONTROL_SUBNET = "198.18.6.{i}"    # control network: sshd of VM i
CONTROL_GATEWAY = "198.18.6.254"   # the control bridge's own address
UNDERLAY_IP = "198.18.5.{i}"       # what the ssh backend puts on its macvlan child of data0
CONTROL_BRIDGE, DATA_BRIDGE = "ctl", "data"
ACCELS = ("auto", "kvm", "tcg")
QEMU = "qemu-system-x86_64"
DEFAULT_BOOT_TIMEOUT_S = 300.0     # under TCG on 2 busy cores a boot takes about a minute
KVM_PROBE_S = 20.0                 # a working KVM prints the kernel's first line within a second
KERNEL_FIRST_LINE = "Linux version"
CONSOLE_TAIL_LINES = 15
SSH_BANNER = b"SSH-2.0-"
POLL_S = 0.1
MIN_MEMORY_MB = 256


def vnet_netns(prefix: str) -> str:
    return f"{prefix}-vnet"


def vm_name(i: int) -> str:
    return f"vm{i}"


def mac_address(network: int, i: int) -> str:
    """The MAC of VM *i*'s NIC on *network* (6 control, 5 data): QEMU's OUI 52:54:00, then the
    address's last two bytes, so a capture names the VM."""
    return f"52:54:00:c6:{network:02x}:{i:02x}"


def kernel_cmdline(i: int) -> str:
    """VM *i*'s kernel command line: serial console, the image as root, panic ends QEMU (with
    -no-reboot), and what the image's scn-net unit reads (control address, host name)."""
    return (f"console=ttyS0,115200 root=/dev/vda rw panic=-1 "
            f"scn.ctl={CONTROL_SUBNET.format(i=i)}/24 scn.name={vm_name(i)}")


def accel_argv(accel: str) -> list[str]:
    """QEMU's accelerator and CPU model: under KVM the host's CPU; under TCG the most TCG emulates
    (AES-NI and friends included, so the guest's crypto takes its usual code paths)."""
    if accel == "kvm":
        return ["-accel", "kvm", "-cpu", "host"]
    if accel == "tcg":
        return ["-accel", "tcg", "-cpu", "max"]
    raise InvalidValueError(f"accelerator {accel!r}: kvm or tcg (auto is resolved by probe_accel first)")


def qemu_argv(i: int, manifest: dict[str, Any], accel: str, cpus: int, memory_mb: int, console: Path) -> list[str]:
    """The command line of VM *i* (run in the vnet namespace, where its taps c<i> and d<i> are)."""
    argv = [QEMU, "-name", vm_name(i), "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            *accel_argv(accel), "-smp", str(cpus), "-m", str(memory_mb),
            "-kernel", manifest["kernel"], "-initrd", manifest["initrd"], "-append", kernel_cmdline(i),
            "-drive", f"file={manifest['rootfs']},format=raw,if=virtio,snapshot=on",
            "-serial", f"file:{console}", "-device", "virtio-rng-pci"]
    for network, tap, netdev, slot in ((6, f"c{i}", "ctl", vmimage.CONTROL_SLOT), (5, f"d{i}", "data", vmimage.DATA_SLOT)):
        argv += ["-netdev", f"tap,id={netdev},ifname={tap},script=no,downscript=no",
                 "-device", f"virtio-net-pci,netdev={netdev},mac={mac_address(network, i)},addr={slot:#x}"]
    return argv


def tbf_argv(dev: str, rate_mbit: float) -> list[str]:
    """The tbf that limits what *dev* sends to *rate_mbit*: a bucket of 10 ms at that rate (at
    least 16 KiB, so a full-size frame always fits), packets queued up to 50 ms."""
    burst = max(16 * 1024, int(rate_mbit * 1e6 / 8 / 100))
    return ["tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", f"{rate_mbit}mbit",
            "burst", str(burst), "latency", "50ms"]


def check_rate(rate_mbit: float | None) -> None:
    if rate_mbit is not None and (isinstance(rate_mbit, bool) or not isinstance(rate_mbit, (int, float))
                                  or rate_mbit <= 0):
        raise InvalidValueError(f"testbed.vm.underlay.rate_mbit {rate_mbit!r}: a positive number of Mbit/s, "
                                "or null for no limit")


def kernel_booted(console: str) -> bool:
    """Whether a probe's serial console shows the kernel running (its first line)."""
    return KERNEL_FIRST_LINE in console


def console_tail(text: str, lines: int = CONSOLE_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


# ------------------------------------------------------------------------------ accelerator
def accel_cache_path() -> Path:
    return cleanup.STATE_ROOT / "vm-accel.json"


def boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def probe_accel(manifest: dict[str, Any]) -> dict[str, Any]:
    """Whether KVM boots the stock kernel here: {"accel": "kvm" | "tcg", "evidence": ...,
    "probe_s"}. Probed once per boot of this machine (cached under the state root, keyed by
    /proc/sys/kernel/random/boot_id): a bounded boot with ``-accel kvm -cpu host`` and no disk,
    watching the serial console for the kernel's first line for KVM_PROBE_S seconds. On some
    nested machines /dev/kvm opens and a VM is created, and the guest then hangs before the
    kernel prints anything: that is TCG."""
    import filelock

    cache = accel_cache_path()
    cache.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(cache.with_suffix(".lock"))):
        try:
            known = json.loads(cache.read_text())
            if known.get("boot_id") == boot_id():
                return known
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        result = {**_probe_kvm(manifest), "boot_id": boot_id(), "probed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        cache.write_text(json.dumps(result, indent=1))
        return result


def _probe_kvm(manifest: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
    except OSError as error:
        return {"accel": "tcg", "evidence": f"/dev/kvm cannot be opened: {error.strerror}", "probe_s": 0.0}
    with tempfile.TemporaryDirectory(prefix="seconetbench-kvm-probe-") as scratch:
        directory = Path(scratch)
        console, stderr = directory / "console.log", directory / "qemu.err"
        # `timeout -s KILL` bounds the probe even when this process dies before ending it
        argv = ["timeout", "-s", "KILL", str(int(KVM_PROBE_S) + 10), QEMU, "-nodefaults", "-no-user-config",
                "-display", "none", "-no-reboot", *accel_argv("kvm"), "-smp", "1", "-m", "256",
                "-kernel", manifest["kernel"], "-initrd", manifest["initrd"],
                "-append", "console=ttyS0 panic=-1 rdinit=/nonexistent", "-serial", f"file:{console}"]
        with open(stderr, "wb") as err:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True)
        exit_code = None
        try:
            deadline = started + KVM_PROBE_S
            while time.monotonic() < deadline and process.poll() is None and not kernel_booted(_read(console)):
                time.sleep(POLL_S)
            exit_code = process.poll()  # None: still running, ended by us below
        finally:
            if process.poll() is None:
                proc.terminate([process], grace_s=1.0)
        text, said = _read(console), _read(stderr)
    return {**accel_decision(text, said, exit_code, KVM_PROBE_S), "probe_s": round(time.monotonic() - started, 1)}


def accel_decision(console: str, qemu_stderr: str, exit_code: int | None, bound_s: float) -> dict[str, str]:
    """KVM or TCG from a KVM probe's outcome: its serial *console*, QEMU's standard error and
    exit code (negative: the signal it died of; None: still running when the probe ended it,
    after *bound_s* or once the kernel spoke): {"accel", "evidence"}. KVM only when the kernel
    printed its first line."""
    said = f"; QEMU said: {console_tail(qemu_stderr, 3)}" if qemu_stderr.strip() else ""
    if kernel_booted(console):
        first = next(line for line in console.splitlines() if KERNEL_FIRST_LINE in line)
        return {"accel": "kvm", "evidence": f"the kernel started under KVM: {first.strip()[:120]}"}
    if exit_code is not None and exit_code >= 0:
        return {"accel": "tcg", "evidence": f"QEMU under KVM exited ({exit_code}) before the kernel started{said}"}
    if exit_code is not None:
        return {"accel": "tcg", "evidence": f"QEMU under KVM died of signal {-exit_code} before the kernel "
                f"started{said}"}
    return {"accel": "tcg", "evidence": f"no kernel output under KVM within {bound_s:.0f} s (console: "
            f"{console_tail(console, 2)!r}){said}"}


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


# ------------------------------------------------------------------------------ the VMs
@dataclasses.dataclass
class _Vm:
    index: int
    pid: int
    create_time: float

    def alive(self) -> bool:
        import psutil

        try:
            return abs(psutil.Process(self.pid).create_time() - self.create_time) < 0.01
        except psutil.NoSuchProcess:
            return False


class VmHosts:
    """*count* QEMU VMs of Debian's stock kernel with sshd, in a namespace of ours; a context
    manager that boots them (or finds them running) and ends everything it made on exit, also
    when booting fails. :meth:`start` and :meth:`stop` for VMs that outlive one process."""

    def __init__(self, prefix: str, count: int = 2, cpus: int = 1, memory_mb: int = 1024, accel: str = "auto",
                 rate_mbit: float | None = None, boot_timeout_s: float = DEFAULT_BOOT_TIMEOUT_S):
        Names(prefix)  # validates the prefix
        if not isinstance(count, int) or not 1 <= count <= 250:
            raise InvalidValueError(f"testbed.vm.hosts {count!r}: between 1 and 250 VMs (198.18.6.1-250)")
        if not isinstance(cpus, int) or cpus < 1:
            raise InvalidValueError(f"testbed.vm.cpus {cpus!r}: at least 1 virtual CPU per VM")
        if not isinstance(memory_mb, int) or memory_mb < MIN_MEMORY_MB:
            raise InvalidValueError(f"testbed.vm.memory_mb {memory_mb!r}: at least {MIN_MEMORY_MB} MB per VM "
                                    "(the stock kernel, systemd and the agent need it)")
        if accel not in ACCELS:
            raise InvalidValueError(f"testbed.vm.accel {accel!r}: one of {list(ACCELS)}")
        check_rate(rate_mbit)
        if boot_timeout_s <= 0:
            raise InvalidValueError(f"testbed.vm.boot_timeout_s {boot_timeout_s!r}: a positive number of seconds")
        self.prefix = prefix
        self.count = count
        self.cpus = cpus
        self.memory_mb = memory_mb
        self.requested_accel = accel
        self.rate_mbit = rate_mbit
        self.boot_timeout_s = float(boot_timeout_s)
        self.directory = cleanup.state_dir(prefix) / "vm"
        self.registry = cleanup.registry(prefix)
        self.netns = vnet_netns(prefix)
        self.accel: str | None = None
        self.accel_evidence: str | None = None
        self.timings: dict[str, Any] = {}
        self.image: dict[str, Any] = {}
        self._vms: dict[int, _Vm] = {}
        self._processes: dict[int, subprocess.Popen] = {}  # the QEMUs this object started

    # ------------------------------------------------------------------ what callers use
    @property
    def indices(self) -> range:
        return range(1, self.count + 1)

    @property
    def client_key(self) -> Path:
        """The image's client key, copied beside the state (the cache may be rebuilt meanwhile)."""
        return self.directory / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.directory / "known_hosts"

    @property
    def state_file(self) -> Path:
        return self.directory / "state.json"

    @property
    def hosts(self) -> list[SshHost]:
        proxy = f"ip netns exec {self.netns} socat STDIO TCP:%h:%p"
        return [SshHost(name=vm_name(i), address=CONTROL_SUBNET.format(i=i), port=22, user="root",
                        identity_file=str(self.client_key), underlay_dev=vmimage.DATA_IF,
                        underlay_ip=UNDERLAY_IP.format(i=i), proxy_command=proxy)
                for i in self.indices]

    @property
    def options(self) -> SshOptions:
        return SshOptions(strict_host_key_checking="yes", known_hosts_file=str(self.known_hosts))

    def testbed_config(self) -> dict:
        """The `testbed:` section of a config that runs on these VMs with the ssh backend."""
        return ssh_testbed(self.hosts, self.options)

    def console_log(self, i: int) -> Path:
        """VM *i*'s serial console: the kernel's log, systemd's progress, the ready mark."""
        return self.directory / vm_name(i) / "console.log"

    def qemu_log(self, i: int) -> Path:
        return self.directory / vm_name(i) / "qemu.err"

    def facts(self) -> dict[str, Any]:
        """What the VMs are, for meta.json: accelerator and the probe's evidence, kernel, image,
        timings (seconds)."""
        return {"accel": self.accel, "accel_requested": self.requested_accel, "accel_evidence": self.accel_evidence,
                "hosts": self.count, "cpus": self.cpus, "memory_mb": self.memory_mb, "rate_mbit": self.rate_mbit,
                "kernel_release": self.image.get("kernel_release"), "image": vmimage.manifest_summary(self.image),
                "timings": self.timings}

    @property
    def pids(self) -> dict[str, int]:
        """The QEMU process of each VM started or found by :meth:`start`, by VM name."""
        return {vm_name(vm.index): vm.pid for vm in self._vms.values()}

    def running(self) -> bool:
        """Whether this prefix's VMs run (by the state file; every recorded QEMU alive)."""
        state = self._read_state()
        return state is not None and all(_Vm(**vm).alive() for vm in state["vms"])

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> VmHosts:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @classmethod
    def attach(cls, prefix: str) -> VmHosts:
        """The VMs of *prefix* that another process started, as they were started; DeployError
        when they do not run."""
        state = cls(prefix)._read_state()
        if state is None:
            raise DeployError(f"no VMs of prefix {prefix} run here (no state file under "
                              f"{cleanup.state_dir(prefix) / 'vm'}); start them with VmHosts(...).start()")
        vms = cls(prefix, **state["settings"])
        if not vms.running():
            raise DeployError(f"the VMs of prefix {prefix} are not all running any more; stop them "
                              f"(seconetbench clean) and start them again")
        vms._load(state)
        return vms

    def start(self) -> None:
        """Boot the VMs and wait until each answers SSH, or find them running (started by this or
        another process with the same settings; boot_timeout_s aside). VMs of the prefix with other
        settings, or with a QEMU gone, are stopped and booted anew."""
        state = self._read_state()
        if state is not None:
            if _machines(state["settings"]) == _machines(self._settings()) and self.running():
                self._load(state)
                return
            self.stop()
        self._boot()

    def stop(self) -> None:
        """End the VMs by pid, delete the namespace (taps, bridges) and the prefix's state. The
        cached image is not touched. Idempotent."""
        started = time.monotonic()
        state = self._read_state()
        vms = dict(self._vms)
        for vm in (state or {}).get("vms", []):
            vms.setdefault(vm["index"], _Vm(**vm))
        alive = [vm for vm in vms.values() if vm.alive()]
        if alive:
            import psutil

            processes = []
            for vm in alive:
                try:
                    processes.append(psutil.Process(vm.pid))
                except psutil.NoSuchProcess:
                    pass
            proc.terminate(processes)
        for vm in vms.values():
            self.registry.forget(vm.pid)
        for process in self._processes.values():
            process.poll()  # reaped by the wait above; this only updates the Popen
        self._vms.clear()
        self._processes.clear()
        # the namespace (and what still runs in it: the socat of an ssh connection) and the state
        cleanup.remove(self.prefix)
        self.timings["teardown_s"] = round(time.monotonic() - started, 2)

    def set_rate(self, rate_mbit: float | None) -> None:
        """Limit what the data network delivers to each running VM to *rate_mbit* (tbf on its data
        tap), or lift the limit (None). Recorded in the state file, so start() with the new rate
        finds the VMs as they are."""
        check_rate(rate_mbit)
        for i in self.indices:
            if rate_mbit is None:
                proc.run_in(self.netns, ["tc", "qdisc", "del", "dev", f"d{i}", "root"], check=False)
            else:
                proc.run_in(self.netns, tbf_argv(f"d{i}", rate_mbit))
        self.rate_mbit = rate_mbit
        self._write_state()

    # ------------------------------------------------------------------ booting
    def _settings(self) -> dict[str, Any]:
        return {"count": self.count, "cpus": self.cpus, "memory_mb": self.memory_mb, "accel": self.requested_accel,
                "rate_mbit": self.rate_mbit, "boot_timeout_s": self.boot_timeout_s}

    def _boot(self) -> None:
        for tool in (QEMU, "socat", "tc"):
            if shutil.which(tool) is None:
                raise DeployError(f"VM hosts need {tool}: install qemu-system-x86 (no recommends), socat and "
                                  "iproute2 (tools/setup.sh does)")
        self._check_memory()
        started = time.monotonic()
        self.image = vmimage.ensure_image()
        self.timings = {"image_s": round(time.monotonic() - started, 2), "image_built_now": self.image["built_now"]}
        self._resolve_accel()
        mark = time.monotonic()
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        shutil.copyfile(self.image["key"], self.client_key)
        os.chmod(self.client_key, 0o600)
        self.known_hosts.write_text("".join(f"{CONTROL_SUBNET.format(i=i)} {self.image['host_key_pub']}\n"
                                            for i in self.indices))
        self._network()
        self.timings["network_s"] = round(time.monotonic() - mark, 2)
        spawned: dict[int, float] = {}
        for i in self.indices:  # all at once: they boot in parallel
            (self.directory / vm_name(i)).mkdir(exist_ok=True)
            argv = qemu_argv(i, self.image, self.accel, self.cpus, self.memory_mb, self.console_log(i))
            process = proc.spawn(proc.in_netns(self.netns, argv), self.directory / vm_name(i) / "qemu.out",
                                 self.qemu_log(i), self.registry, argv)
            spawned[i] = time.monotonic()
            self._vms[i] = _Vm(i, process.pid, _create_time(process.pid))
            self._processes[i] = process
        self._write_state()  # from here on another process (and stop) knows the pids
        self._wait_ready(spawned)
        self.timings["boot_total_s"] = round(time.monotonic() - mark, 2)
        self._write_state()

    def _check_memory(self) -> None:
        import psutil

        wanted = self.count * self.memory_mb
        available = psutil.virtual_memory().available >> 20
        if wanted > available:
            raise DeployError(f"{self.count} VMs of testbed.vm.memory_mb {self.memory_mb} need {wanted} MB, and this "
                              f"machine has {available} MB available: lower testbed.vm.memory_mb or testbed.vm.hosts")

    def _resolve_accel(self) -> None:
        if self.requested_accel == "tcg":
            self.accel, self.accel_evidence = "tcg", "pinned by testbed.vm.accel"
            return
        probe = probe_accel(self.image)
        self.timings["accel_probe_s"] = probe.get("probe_s")
        if self.requested_accel == "kvm" and probe["accel"] != "kvm":
            raise DeployError(f"testbed.vm.accel is kvm, and KVM does not boot a kernel on this machine: "
                              f"{probe['evidence']}; use accel: auto (falls back to TCG) or tcg")
        self.accel, self.accel_evidence = probe["accel"], probe["evidence"]

    def _network(self) -> None:
        netlink.create_netns(self.netns)
        from seconetbench.backends.netns import NO_IPV6

        netlink.set_sysctls(self.netns, NO_IPV6, optional=True)
        with netlink.route(self.netns) as sock:
            sock.link("set", index=netlink.index(sock, "lo"), state="up")
            for bridge, address in ((CONTROL_BRIDGE, CONTROL_GATEWAY), (DATA_BRIDGE, None)):
                sock.link("add", ifname=bridge, kind="bridge")
                index = netlink.index(sock, bridge)
                if address:
                    sock.addr("add", index=index, address=address, prefixlen=24)
                sock.link("set", index=index, state="up")
        for i in self.indices:
            for tap, bridge in ((f"c{i}", CONTROL_BRIDGE), (f"d{i}", DATA_BRIDGE)):
                # made here, persistent, so that they are on their bridge before QEMU opens them
                proc.run_in(self.netns, ["ip", "tuntap", "add", "dev", tap, "mode", "tap"])
                with netlink.route(self.netns) as sock:
                    sock.link("set", index=netlink.index(sock, tap), master=netlink.index(sock, bridge), state="up")
            if self.rate_mbit is not None:
                proc.run_in(self.netns, tbf_argv(f"d{i}", self.rate_mbit))

    def _wait_ready(self, spawned: dict[int, float]) -> None:
        """Wait until every VM's console shows the ready mark and its sshd's banner answers; a VM
        whose QEMU ends, or that takes longer than boot_timeout_s, fails the boot naming its
        console's last lines."""
        boot_s: dict[str, float] = {}
        ssh_s: dict[str, float] = {}
        pending = set(self.indices)
        while pending:
            for i in sorted(pending):
                process = self._processes[i]
                if process.poll() is not None:
                    raise DeployError(f"VM {vm_name(i)} ended during its boot (QEMU exit {process.returncode}; "
                                      f"{_read(self.qemu_log(i)).strip()[-500:]}); console's last lines:\n"
                                      f"{console_tail(_read(self.console_log(i)))}")
                elapsed = time.monotonic() - spawned[i]
                if vm_name(i) not in boot_s and f"{vmimage.READY_MARK} {vm_name(i)}" in _read(self.console_log(i)):
                    boot_s[vm_name(i)] = round(elapsed, 1)
                if vm_name(i) in boot_s and self._ssh_answers(i):
                    ssh_s[vm_name(i)] = round(elapsed, 1)
                    pending.discard(i)
                elif elapsed > self.boot_timeout_s:
                    raise DeployError(f"VM {vm_name(i)} did not answer SSH within testbed.vm.boot_timeout_s "
                                      f"{self.boot_timeout_s:.0f} s (accelerator {self.accel}); console "
                                      f"{self.console_log(i)}, last lines:\n{console_tail(_read(self.console_log(i)))}")
            if pending:
                time.sleep(POLL_S)
        self.timings.update({"ready_s": boot_s, "ssh_s": ssh_s})

    def _ssh_answers(self, i: int) -> bool:
        """Whether sshd of VM *i* sends its banner (a TCP connection from inside the namespace)."""
        with netlink.entered(self.netns):
            try:
                with socket.create_connection((CONTROL_SUBNET.format(i=i), 22), timeout=5) as conn:
                    return conn.recv(len(SSH_BANNER)) == SSH_BANNER
            except OSError:
                return False

    # ------------------------------------------------------------------ the state file
    def _write_state(self) -> None:
        state = {"settings": self._settings(), "accel": self.accel, "accel_evidence": self.accel_evidence,
                 "netns": self.netns, "image": {key: self.image.get(key) for key in
                                                ("rootfs", "kernel", "initrd", "kernel_release", "kernel_version",
                                                 "recipe_hash", "build_s", "built_at", "host_key_pub")},
                 "timings": self.timings, "vms": [dataclasses.asdict(vm) for vm in self._vms.values()]}
        self.state_file.write_text(json.dumps(state, indent=1))

    def _read_state(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def _load(self, state: dict[str, Any]) -> None:
        self.accel, self.accel_evidence = state["accel"], state["accel_evidence"]
        self.image, self.timings = state["image"], state["timings"]
        self._vms = {vm["index"]: _Vm(**vm) for vm in state["vms"]}


def _machines(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings that make the VMs what they are (not how long their boot may take)."""
    return {key: value for key, value in settings.items() if key != "boot_timeout_s"}


def _create_time(pid: int) -> float:
    """*pid*'s start time, 0.0 when it already ended (the boot's wait then reports its exit)."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return 0.0
