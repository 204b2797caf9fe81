"""Which implementation of a technology this machine can run, decided by trying it.

Some technologies come in a kernel implementation and another one: WireGuard (kernel or
wireguard-go), IPsec (kernel XFRM ESP or strongSwan's libipsec), IPIP and GRE (kernel devices or
tc-BPF encapsulation), the Open vSwitch datapath (kernel or userspace); VXLAN has the kernel's
only. Whether the kernel's runs is decided here by a *probe*: in a scratch network namespace of
the run (``<prefix>-probe<pid>``, deleted afterwards, also when a probe fails) the probe creates what
the technology would create (``ip link add ... type wireguard``, an ESP state, an OVS datapath),
after ``modprobe`` of its modules where the kernel loads modules. What it said is the evidence.
``/sys/module``, ``/boot/config-$(uname -r)`` and ``/proc/config.gz`` are recorded as hints and
never decide: a module can be present but unloadable, or loadable without a config file.

The probes run once per run: :func:`results` keeps them in this process and in the run's state
directory (``/run/seconetbench/<prefix>/probes.json``), so a sweep of thousands of targets probes
once. A cached file is used only while the kernel, its boot and its loaded modules are the same
(a module loaded after a refusal makes the next run probe again).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from seconetbench.fsutil import write_text_atomic
from seconetbench.technology import Requirement
from seconetbench.testbed import cleanup, netlink

CACHE_FILE = "probes.json"
SCRATCH_NETNS = "probe"  # <prefix>-probe<pid>
# Probes run outside a run (e.g. `seconetbench preflight` without a config) use this prefix.
DEFAULT_PREFIX = "scnprobe"
TIMEOUT_S = 20
# Addresses of the probe objects (198.18.0.0/15, like every testbed address); never used for traffic.
LOCAL, REMOTE = "198.18.255.1", "198.18.255.2"
# AES-256 key + 4-byte salt for rfc4106(gcm(aes)), IPsec's default suite: a fixed test key of a
# state that lives for the blink of a scratch namespace.
ESP_KEY = "0x" + bytes(range(1, 37)).hex()


@dataclass(frozen=True)
class Evidence:
    """One thing a probe tried or read: which probe, the command (or file), what it said."""

    probe: str  # "modprobe", "create", "hint"
    command: str
    said: str  # stderr (or stdout) of the command, "ok", or what the file says
    passed: bool | None = None  # None for hints, which never decide


@dataclass(frozen=True)
class ProbeResult:
    technology: str
    kernel_available: bool
    evidence: tuple[Evidence, ...] = ()

    def deciding(self) -> Evidence | None:
        """The probe that decided: the first creation that failed, else the last that passed."""
        created = [e for e in self.evidence if e.probe == "create"]
        failed = [e for e in created if e.passed is False]
        return failed[0] if failed else (created[-1] if created else None)

    def explain(self) -> str:
        """"`ip link add ... type wireguard` said 'Error: Unknown device type.'" (or passed)."""
        deciding = self.deciding()
        if deciding is None:
            return "no probe ran"
        return f"`{deciding.command}` said '{deciding.said}'"

    def to_dict(self) -> dict[str, Any]:
        return {"technology": self.technology, "kernel_available": self.kernel_available,
                "evidence": [asdict(e) for e in self.evidence]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProbeResult:
        return cls(data["technology"], bool(data["kernel_available"]),
                   tuple(Evidence(**e) for e in data.get("evidence", [])))


@dataclass(frozen=True)
class Probe:
    """How to tell whether the kernel runs *technology*: its modules, the config options that
    hint at it, and the commands that create it in namespace *netns* (all must succeed)."""

    technology: str
    modules: tuple[str, ...]
    options: tuple[str, ...]
    commands: Callable[[str, str], list[list[str]]]  # (netns, device name) -> argvs
    fix: str  # what to do when the kernel lacks it


def _link(kind: str, *args: str) -> Callable[[str, str], list[list[str]]]:
    return lambda netns, device: [["ip", "-n", netns, "link", "add", device, "type", kind, *args]]


def _esp(netns: str, device: str) -> list[list[str]]:
    return [["ip", "-n", netns, "xfrm", "state", "add", "src", LOCAL, "dst", REMOTE, "proto", "esp",
             "spi", "0x100", "mode", "tunnel", "reqid", "1", "aead", "rfc4106(gcm(aes))", ESP_KEY, "128"]]


def _ovs(netns: str, device: str) -> list[list[str]]:
    # the genetlink family first (what ovs-vswitchd looks for), then a datapath of our own
    commands = [["genetlink", "family", "ovs_datapath"]]
    if shutil.which("ovs-dpctl"):
        commands.append(["ip", "netns", "exec", netns, "ovs-dpctl", "add-dp", device])
    return commands


PROBES: dict[str, Probe] = {p.technology: p for p in (
    Probe("wireguard", ("wireguard",), ("CONFIG_WIREGUARD",), _link("wireguard"),
          "load the wireguard module (modprobe wireguard) or use a kernel with CONFIG_WIREGUARD"),
    Probe("ipip", ("ipip",), ("CONFIG_NET_IPIP",), _link("ipip", "local", LOCAL, "remote", REMOTE),
          "load the ipip module (modprobe ipip) or use a kernel with CONFIG_NET_IPIP"),
    Probe("gre", ("ip_gre",), ("CONFIG_NET_IPGRE",), _link("gre", "local", LOCAL, "remote", REMOTE),
          "load the ip_gre module (modprobe ip_gre) or use a kernel with CONFIG_NET_IPGRE"),
    Probe("vxlan", ("vxlan",), ("CONFIG_VXLAN",), _link("vxlan", "id", "42", "dstport", "4789"),
          "load the vxlan module (modprobe vxlan) or use a kernel with CONFIG_VXLAN"),
    Probe("ipsec", ("esp4", "xfrm_user"), ("CONFIG_INET_ESP", "CONFIG_XFRM_USER"), _esp,
          "load the esp4 and xfrm_user modules (modprobe esp4 xfrm_user) or use a kernel with "
          "CONFIG_INET_ESP, CONFIG_XFRM_USER and AES-GCM (CONFIG_CRYPTO_GCM)"),
    Probe("ovs", ("openvswitch",), ("CONFIG_OPENVSWITCH",), _ovs,
          "load the openvswitch module (modprobe openvswitch) or use a kernel with CONFIG_OPENVSWITCH"),
)}

ProbeFunction = Callable[[str], dict[str, ProbeResult]]


# ------------------------------------------------------------------------------------ hints
def config_files() -> list[Path]:
    return [Path(f"/boot/config-{platform.release()}"), Path("/proc/config.gz")]


def read_config(path: Path) -> dict[str, str] | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    text = (gzip.decompress(data) if path.suffix == ".gz" else data).decode(errors="replace")
    options = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            key, value = line.split("=", 1)
            options[key] = value
    return options


def hints(probe: Probe) -> list[Evidence]:
    """What the files say about *probe*'s technology (never the verdict)."""
    found = [Evidence("hint", f"/sys/module/{m}", "present" if Path(f"/sys/module/{m}").exists() else "absent")
             for m in probe.modules]
    for path in config_files():
        options = read_config(path)
        if options is None:
            found.append(Evidence("hint", str(path), "not readable"))
            continue
        said = ", ".join(f"{o}={options[o]}" if o in options else f"{o} is not set" for o in probe.options)
        found.append(Evidence("hint", str(path), said))
    return found


# ------------------------------------------------------------------------------------ probing
def modprobe_possible() -> str | None:
    """None when this kernel loads modules with modprobe, else why not."""
    if not shutil.which("modprobe"):
        return "modprobe is not on PATH"
    modules = Path(f"/lib/modules/{platform.release()}")
    if not modules.is_dir():
        return f"{modules} does not exist (no loadable modules for this kernel)"
    return None


def run_probe_command(argv: Sequence[str]) -> tuple[bool, str]:
    if list(argv[:2]) == ["genetlink", "family"]:
        return _genetlink_family(argv[2])
    try:
        result = subprocess.run(list(argv), capture_output=True, text=True, timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, str(error)
    said = (result.stderr.strip() or result.stdout.strip() or ("ok" if result.returncode == 0 else
                                                                f"exit {result.returncode}"))
    return result.returncode == 0, " | ".join(said.splitlines()[-3:])


def _genetlink_family(name: str) -> tuple[bool, str]:
    from pyroute2.netlink import ctrlmsg
    from pyroute2.netlink.exceptions import NetlinkError
    from pyroute2.netlink.generic import GenericNetlinkSocket

    sock = GenericNetlinkSocket()
    try:
        sock.bind(name, ctrlmsg)
        return True, f"generic netlink family '{name}' exists"
    except NetlinkError as error:
        return False, f"generic netlink family '{name}' does not exist ({error})"
    finally:
        sock.close()


def probe_one(probe: Probe, netns: str, device: str) -> ProbeResult:
    """Try *probe* in the (existing) scratch namespace *netns*."""
    evidence = hints(probe)
    cannot_load = modprobe_possible()
    if cannot_load:
        evidence.append(Evidence("modprobe", "modprobe " + " ".join(probe.modules), f"skipped: {cannot_load}"))
    else:
        for module in probe.modules:  # a failure is fine: the module may be built in
            ok, said = run_probe_command(["modprobe", module])
            evidence.append(Evidence("modprobe", f"modprobe {module}", said, ok))
    available = True
    for argv in probe.commands(netns, device):
        ok, said = run_probe_command(argv)
        evidence.append(Evidence("create", shlex.join(argv), said, ok))
        if not ok:
            available = False
            break
    return ProbeResult(probe.technology, available, tuple(evidence))


def probe_kernel(prefix: str) -> dict[str, ProbeResult]:
    """Run every probe in the scratch namespace ``<prefix>-probe<pid>`` (removed afterwards)."""
    # the pid keeps concurrent probes apart: the ssh backend's agents on namespace lab hosts
    # (tests) share one /run/netns; a killed probe's namespace goes with the run's cleanup
    netns = f"{prefix}-{SCRATCH_NETNS}{os.getpid()}"
    if os.geteuid() != 0:
        said = "not root: cannot create a scratch network namespace (run as root to probe)"
        return {name: ProbeResult(name, False, (*hints(p), Evidence("create", f"ip netns add {netns}", said, False)))
                for name, p in PROBES.items()}
    try:
        netlink.create_netns(netns)
    except OSError as error:
        return {name: ProbeResult(name, False, (*hints(p), Evidence("create", f"ip netns add {netns}", str(error), False)))
                for name, p in PROBES.items()}
    try:
        # a device name per probe: one namespace holds them all, and a second ipip or gre device
        # of the same name is refused ('File exists') where the kernel has the first
        return {name: probe_one(p, netns, f"{prefix}-p{number}") for number, (name, p) in enumerate(PROBES.items())}
    finally:
        netlink.delete_netns(netns)  # takes the devices, states and datapaths with it


# ------------------------------------------------------------------------------------ the cache
def machine_state() -> dict[str, str]:
    """What a cached result is valid for: the kernel, its boot and its loaded modules."""
    def read(path: str) -> str:
        try:
            return Path(path).read_text()
        except OSError:
            return ""

    modules = sorted(line.split()[0] for line in read("/proc/modules").splitlines() if line.strip())
    return {"kernel": platform.release(), "boot_id": read("/proc/sys/kernel/random/boot_id").strip(),
            "modules_sha256": hashlib.sha256("\n".join(modules).encode()).hexdigest()[:16]}


@dataclass
class _Memo:
    results: dict[str, ProbeResult] | None = None
    state: dict[str, str] = field(default_factory=dict)
    prefix: str | None = None  # the run whose probes (or cache file) these are: only its file gets them


_memo = _Memo()
_lock = threading.Lock()


def cache_path(prefix: str) -> Path:
    return cleanup.state_dir(prefix) / CACHE_FILE


def _load(path: Path) -> dict[str, ProbeResult] | None:
    try:
        data = json.loads(path.read_text())
        if data.get("machine") != machine_state():
            return None
        return {name: ProbeResult.from_dict(r) for name, r in data["results"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _save(path: Path, found: dict[str, ProbeResult], state: dict[str, str]) -> None:
    if not path.parent.is_dir():
        return  # the run has no state yet (nothing deployed): nothing to clean up later either
    try:
        write_text_atomic(path, json.dumps({"machine": state, "results": {n: r.to_dict() for n, r in found.items()}},
                                           indent=1))
    except OSError:
        pass  # not root: the results stay in this process only


def results(prefix: str | None = None, probe: ProbeFunction = probe_kernel,
            fresh: bool = False) -> dict[str, ProbeResult]:
    """This machine's probe results by technology, once per run: this process's (once known),
    else the run's cache file, else probed now (with *probe*, in ``<prefix>-probe``) and cached.
    *fresh* probes again whatever is cached. The file is written only into an existing state
    directory (a run that has deployed), which the run's teardown removes with it; a deploy
    starts by removing it, and the backend writes it again once the deployment is built."""
    with _lock:
        if fresh or _memo.results is None:
            cached = None if fresh or prefix is None else _load(cache_path(prefix))
            if cached is None:
                cached = probe(prefix or DEFAULT_PREFIX)
            _memo.state = machine_state()  # after the probes: their modprobe may load modules
            _memo.results, _memo.prefix = cached, prefix
        if prefix is not None and prefix == _memo.prefix and not cache_path(prefix).exists():
            _save(cache_path(prefix), _memo.results, _memo.state)
        return dict(_memo.results)


def forget() -> None:
    """Drop this process's results (the next :func:`results` reads the cache or probes)."""
    with _lock:
        _memo.results = None


# ------------------------------------------------------------------------------------ decisions
AUTO = "auto"
KERNEL = "kernel"


def choose(offered: Sequence[str], requested: str, kernel_probe: str | None,
           found: dict[str, ProbeResult] | None = None) -> str:
    """The implementation that runs: *requested* when pinned; for ``auto`` the kernel's when
    *offered* has it and its probe passed, else the first other one (the kernel's, unavailable,
    when there is no other: its requirement then says why)."""
    if requested != AUTO:
        return requested
    if KERNEL not in offered or kernel_probe is None:
        return offered[0]
    found = found if found is not None else results()
    if found[kernel_probe].kernel_available:
        return KERNEL
    others = [o for o in offered if o != KERNEL]
    return others[0] if others else KERNEL


def unavailable(technology: str, implementation: str, kernel_probe: str | None,
                offered: Sequence[str], found: dict[str, ProbeResult] | None = None) -> str | None:
    """Why *implementation* of *technology* cannot run here (None when it can, as far as the
    probes tell): the probe's own words and the fix."""
    if implementation != KERNEL or kernel_probe is None:
        return None
    found = found if found is not None else results()
    result = found[kernel_probe]
    if result.kernel_available:
        return None
    others = [o for o in offered if o != KERNEL]
    alternatives = "/".join([AUTO, *others]) if others else None
    fix = PROBES[kernel_probe].fix + (f", or use {alternatives}" if alternatives else "")
    return f"{implementation} is not available here: {result.explain()}; {fix}"


@dataclass(frozen=True)
class ProbeRequirement(Requirement):
    """A technology's need for the kernel implementation that probe *name* decides (kind
    "probe"; build it with :func:`requirement`)."""

    def missing(self) -> str | None:
        result = results()[self.name]
        if result.kernel_available:
            return None
        return (f"the kernel's {self.name}{' (' + self.why + ')' if self.why else ''} is not available here: "
                f"{result.explain()}; {PROBES[self.name].fix}")


def requirement(name: str, why: str = "") -> ProbeRequirement:
    """The need for the kernel implementation that probe *name* decides."""
    return ProbeRequirement("probe", name, why)
