"""What every tunnel between hosts shares: the path MTU, daemons and key directories, the time
until the first packet passes, and the underlay capture that proves what the wire carries.

A tunnel subclasses :class:`Tunnel` and says how it is built (:meth:`Tunnel.prepare` for keys
and configs, :meth:`Tunnel.start` for what counts into the setup time), what it adds to each
packet (:meth:`Tunnel.overhead`) and what the underlay must show (:attr:`Tunnel.wire`).
:meth:`Tunnel.apply` runs it in three steps, which the ssh backend runs in different places:
prepare (once, on the controller: everything start needs goes to files under
:func:`prepared_dir`), :meth:`Tunnel.apply_local` (the MTU on the container path and start, for
the hosts this process builds: ``deployment.local_hosts()``; the other hosts are data) and
:meth:`Tunnel.verify` (the first packet of every pair and the underlay check, which reach the
containers and the capture place only through their access objects); describe() puts all of it
in meta.json.

Addresses: the hosts' underlay is 198.18.0.h/24 (backends/netns.py); the containers of host h
are 198.19.h.0/24. Tunnels that need addresses of their own (transfer networks) take
198.18.<20 + n>.0/24, outside the routing solution's gateway 198.18.1.1 and the filters'
never-assigned 198.18.128.0/17.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from seconetbench import proc
from seconetbench.backends.base import UNDERLAY_MTU, ContainerAccess, Deployment, Host
from seconetbench.errors import DeployError, InvalidValueError, ParseError
from seconetbench.technology import Requirement, Technology
from seconetbench.testbed import cleanup, netlink

MAX_PAYLOAD = 1370  # bytes of UDP/ICMP payload that must cross every tunnel unfragmented
MIN_PATH_MTU = MAX_PAYLOAD + 28  # + IPv4 and UDP/ICMP header
SOLUTIONS = ("bridge", "routing")  # route container subnets through the host: verified with tunnels
FIRST_PACKET_TIMEOUT_S = 30.0
CAPTURE_PACKETS = 400  # tcpdump -c: the capture ends at this count at the latest
# at most this long for what was sent to show in a capture (tcpdump -U writes packet by packet)
CAPTURE_FLUSH_S = 10.0  # bound on waiting for a capture's sentinel (it usually shows in milliseconds)
SENTINEL_ETHERTYPE = 0x88B5  # IEEE 802 local experimental: the hosts' underlay interfaces drop it
MARKER = b"SECONETBENCH-CLR"  # 16 bytes filled into the probe pings: must never show in clear


def container_subnet(host: Host) -> str:
    return f"198.19.{host.index}.0/24"


def transfer_ip(net: int, host: Host) -> str:
    """Host *host*'s address in tunnel transfer network 198.18.<net>.0/24."""
    return f"198.18.{net}.{host.index}"


def peers(deployment: Deployment, host: Host) -> list[Host]:
    """Every other host of *deployment*, local or not (their names, indices and underlay
    addresses are data to a host's build)."""
    return [h for h in deployment.hosts if h.name != host.name]


def host_pairs(deployment: Deployment) -> list[tuple[Host, Host]]:
    """Every unordered pair of hosts (a point-to-point tunnel joins each)."""
    hosts = deployment.hosts
    return [(a, b) for i, a in enumerate(hosts) for b in hosts[i + 1:]]


# ------------------------------------------------------------------------------------ files
def tunnel_dir(deployment: Deployment, *parts: str) -> Path:
    """A directory of the tunnel under the run's state directory (never under results/)."""
    path = cleanup.state_dir(deployment.prefix).joinpath("tunnel", *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def prepared_dir(deployment: Deployment) -> Path:
    """The private directory (0700) that holds everything :meth:`Tunnel.prepare` makes and
    :meth:`Tunnel.start` reads (keys, certificates, configs). The ssh backend copies it as it is
    to every host; so nothing in it may name a path of this machine, and start reads nothing
    that prepare kept in memory."""
    path = tunnel_dir(deployment, "prepared")
    os.chmod(path, 0o700)
    return path


def key_dir(deployment: Deployment, name: str) -> Path:
    """A private directory (0700) under :func:`prepared_dir` for keys, certificates and configs
    that quote secrets."""
    path = prepared_dir(deployment) / name
    path.mkdir(mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_private(path: Path, text: str) -> Path:
    """Write *text* readable by root only (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return path


def registry(deployment: Deployment) -> proc.Registry:
    """The run's registry of background processes (the one cleanup ends by pid)."""
    return cleanup.registry(deployment.prefix)


def spawn_daemon(deployment: Deployment, host: Host, name: str, argv: Sequence[str]):
    """Start a daemon in *host*'s namespace in the foreground; log to tunnel/logs/<name>.log."""
    logs = tunnel_dir(deployment, "logs")
    return proc.spawn_in(host.netns, argv, logs / f"{name}.log", logs / f"{name}.err", registry(deployment))


def with_private_run(run_dir: Path, argv: Sequence[str]) -> list[str]:
    """*argv* with *run_dir* bind-mounted over /run, for daemons with fixed pid and socket paths
    under /run (charon, wireguard-go): `ip netns exec` gives each command a mount namespace of its
    own, so the bind mount stays private to that command. The command sees *run_dir*'s files
    under /run and no longer sees the state directory (/run/seconetbench/...)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    return ["sh", "-c", 'mount --bind "$0" /run && exec "$@"', str(run_dir), *argv]


def wait_for(what: str, ready, timeout: float = 10.0, hint: str = "") -> None:
    if not wait_until(ready, timeout):
        raise DeployError(f"{what} did not happen within {timeout:.0f} s{'; ' + hint if hint else ''}")


def capture_flushed(deployment: Deployment, pcap: Path, timeout: float = CAPTURE_FLUSH_S) -> bool:
    """Whether an underlay capture (tcpdump -U at the underlay's capture place) holds every frame
    that crossed it before this call: sends a sentinel frame out of the captured interface (on
    netns a switch port, the capture being -i any) and waits until *pcap* holds it. The taps hand
    frames to the one capture socket in the order they pass, so the sentinel comes after all
    traffic that was already delivered. False when the sentinel did not show within *timeout*
    (the capture's own control then says so).

    A capture place on this machine gets the frame from a packet socket opened in its namespace
    and sent as a broadcast (nothing else listens on the switch). A remote one (ssh) gets it
    from a short python3 in that namespace, through the access object, sent to the interface's
    own MAC address: a macvlan (the ssh backend's underlay) delivers that to itself, so the frame
    never leaves the host; the capture, written to stdout and into *pcap* here, brings it back."""
    underlay = deployment.underlay
    access = underlay.capture_access
    ifname = next(iter(underlay.ports.values())) if underlay.capture_ifname == "any" else underlay.capture_ifname
    tag = b"SECONETBENCH-FLUSH-" + os.urandom(8).hex().encode()
    frame = sentinel_frame(tag)
    if access.local_netns is not None:
        with netlink.entered(access.local_netns):
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        try:
            sock.bind((ifname, 0))
            sock.send(frame)
        finally:
            sock.close()
    else:
        sender = start_at(access, ["python3", "-c", SEND_TO_SELF, ifname, frame.hex()],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            code = sender.wait(timeout=30)
        except subprocess.TimeoutExpired:
            sender.kill()
            code = sender.wait()
        finally:
            if sender.stdin:
                sender.stdin.close()
        with sender.stderr:
            said = sender.stderr.read().decode(errors="replace").strip()
        if code != 0:
            raise DeployError(f"sending the capture's sentinel frame at {place(access)} failed (exit {code}): "
                              f"{said[-300:]}")
    return wait_until(lambda: tag in pcap.read_bytes(), timeout)


def sentinel_frame(tag: bytes) -> bytes:
    """A broadcast Ethernet frame from a locally administered source address (nothing of ours
    uses either) with the experimental ethertype, carrying *tag*."""
    return (b"\xff" * 6 + b"\x02\x00\x5e\x00\x00\x01" + struct.pack("!H", SENTINEL_ETHERTYPE) + tag).ljust(60, b"\0")


# python3 -c SEND_TO_SELF <ifname> <frame hex>: the frame, readdressed to the interface's own MAC
# address, out of that interface (capture_flushed on a remote capture place).
SEND_TO_SELF = (
    "import socket, sys\n"
    "ifname, frame = sys.argv[1], bytes.fromhex(sys.argv[2])\n"
    "own = bytes.fromhex(open(f'/sys/class/net/{ifname}/address').read().strip().replace(':', ''))\n"
    "sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n"
    "sock.bind((ifname, 0))\n"
    "sock.send(own + frame[6:])\n")


def start_at(access: ContainerAccess, argv: Sequence[str], **popen) -> subprocess.Popen:
    """Start *argv* in the namespace *access* reaches (a container, the capture place). A command
    over SSH ends when its stdin closes (ContainerAccess.ends_with_stdin): it gets a pipe that
    stays open until the caller is done with it, else this process's stdin as before."""
    stdin = subprocess.PIPE if access.ends_with_stdin else None
    return subprocess.Popen(access.argv(argv), stdin=stdin, **popen)


def place(access: ContainerAccess) -> str:
    """Where *access* runs commands, for messages and meta.json: its namespace here, else its
    host and namespace ('h1:scnab12-h1') or its kind."""
    if access.local_netns is not None:
        return access.local_netns
    host, netns = getattr(access, "host", None), getattr(access, "netns", None)
    return f"{host}:{netns}" if host and netns else access.kind


def wait_until(ready, timeout: float) -> bool:
    """Poll *ready* until it is true (True) or *timeout* seconds have passed (False). A *ready*
    that raises OSError or ParseError (a file not there yet, a record half written) is not ready."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():
                return True
        except (OSError, ParseError, struct.error):
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


# ------------------------------------------------------------------------------------ paths
def set_path_mtu(deployment: Deployment, mtu: int) -> None:
    """MTU *mtu* on both ends of every local container's veth (the bridge follows its ports), as a
    CNI plugin does: containers never send more than the tunnel carries, whatever PMTU discovery
    does. Local: the containers of ``deployment.local_hosts()``."""
    for host in deployment.local_hosts():
        for container in deployment.containers_on(host):
            with netlink.route(container.netns) as sock:
                sock.link("set", index=netlink.index(sock, container.ifname), mtu=mtu)
            with netlink.route(host.netns) as sock:
                sock.link("set", index=netlink.index(sock, deployment.names.host_veth(container.name)), mtu=mtu)


def ping(deployment: Deployment, source: str, destination: str, *options: str) -> subprocess.Popen:
    """A ping from container *source* to *destination*, started through *source*'s access."""
    argv = ["ping", "-n", "-q", *options, deployment.container(destination).ip]
    return start_at(deployment.container(source).access, argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def first_packet(deployment: Deployment, started: float, hint: str) -> dict[str, float]:
    """Seconds from *started* until a ping of the first pair passes, and until every pair's has.
    Polls with one echo request of 0.2 s at a time (about 5 probes per second)."""
    times = {}
    deadline = started + FIRST_PACKET_TIMEOUT_S
    for sender, sink in deployment.pairs:
        while ping(deployment, sender, sink, "-c", "1", "-W", "0.2").wait() != 0:
            if time.monotonic() > deadline:
                raise DeployError(f"no packet passed {sender}->{sink} within {FIRST_PACKET_TIMEOUT_S:.0f} s "
                                  f"of starting the tunnel; {hint}")
        times.setdefault("first_packet_s", round(time.monotonic() - started, 3))
    times["all_pairs_s"] = round(time.monotonic() - started, 3)
    return times


# ------------------------------------------------------------------------------------ the wire
@dataclass(frozen=True)
class Wire:
    """What the underlay carries for a tunnel: outer IP protocol and, for UDP/TCP, ports."""

    label: str  # e.g. "VXLAN UDP 4789"
    flows: tuple[tuple[int, int | None], ...] = ()  # (IP protocol, port or None); () = not encapsulated
    encrypted: bool = False

    def matches(self, protocol: int, sport: int | None, dport: int | None) -> bool:
        return any(p == protocol and (port is None or port in (sport, dport)) for p, port in self.flows)


UDP, TCP, IPIP, GRE, ESP = 17, 6, 4, 47, 50


@dataclass
class Packet:
    source: bytes  # outer IPv4 addresses, 4 bytes each
    destination: bytes
    protocol: int
    fragment: bool  # MF set or a fragment offset
    sport: int | None
    dport: int | None
    payload: bytes  # everything after the outer IPv4 header


def read_pcap(data: bytes) -> tuple[list[Packet], int]:
    """The IPv4 packets of a pcap file (Ethernet, Linux cooked v1 or v2) and the count of other
    frames (ARP, ...). A minimal reader: tcpdump writes the classic pcap format."""
    magic = data[:4]
    order = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">", b"\x4d\x3c\xb2\xa1": "<",
             b"\xa1\xb2\x3c\x4d": ">"}.get(magic)
    if order is None:
        raise ParseError("not a pcap file (bad magic)")
    linktype = struct.unpack(order + "I", data[20:24])[0] & 0x0FFFFFFF
    layer2 = {1: (12, 14), 113: (14, 16), 276: (0, 20)}  # ethertype offset, header length
    if linktype not in layer2:
        raise ParseError(f"pcap link type {linktype} is not Ethernet or Linux cooked")
    type_at, header = layer2[linktype]
    packets, other, offset = [], 0, 24
    while offset + 16 <= len(data):
        captured = struct.unpack(order + "I", data[offset + 8:offset + 12])[0]
        frame = data[offset + 16:offset + 16 + captured]
        offset += 16 + captured
        if frame[type_at:type_at + 2] != b"\x08\x00" or len(frame) < header + 20:
            other += 1
            continue
        ip = frame[header:]
        ihl = (ip[0] & 0x0F) * 4
        flags = struct.unpack("!H", ip[6:8])[0]
        protocol = ip[9]
        sport = dport = None
        if protocol in (UDP, TCP) and len(ip) >= ihl + 4:
            sport, dport = struct.unpack("!HH", ip[ihl:ihl + 4])
        packets.append(Packet(ip[12:16], ip[16:20], protocol, bool(flags & 0x3FFF),
                              sport, dport, ip[ihl:]))
    return packets, other


def describe_packet(packet: Packet) -> str:
    """'198.18.0.1:51820 > 198.18.0.2:51820 proto 17' (ports for UDP and TCP only)."""
    def end(address: bytes, port: int | None) -> str:
        return ".".join(map(str, address)) + ("" if port is None else f":{port}")

    return f"{end(packet.source, packet.sport)} > {end(packet.destination, packet.dport)} proto {packet.protocol}"


def classify(packets: Sequence[Packet], wire: Wire, inner: Sequence[tuple[bytes, bytes]]) -> dict:
    """Count what the capture shows: packets of the tunnel's encapsulation, packets with container
    addresses in the outer header (plain), multicast (control, not data), anything else;
    fragments; and whether the probe
    marker or a pair's inner address pair (source then destination, as in an IP header) appears
    anywhere inside a packet, i.e. in clear."""
    containers = bytes([198, 19])
    counts = {"packets": len(packets), "encapsulated": 0, "plain": 0, "other": 0, "multicast": 0, "fragments": 0,
              "marker_in_clear": 0, "inner_addresses_in_clear": 0}
    examples: list[str] = []
    for packet in packets:
        if packet.destination[0] >= 224:  # IGMP reports of interfaces coming up, ...: no data
            counts["multicast"] += 1
            continue
        if packet.source[:2] == containers or packet.destination[:2] == containers:
            counts["plain"] += 1
        elif wire.matches(packet.protocol, packet.sport, packet.dport):
            counts["encapsulated"] += 1
        else:
            counts["other"] += 1
            if len(examples) < 3:
                examples.append(describe_packet(packet))
        counts["fragments"] += packet.fragment
        counts["marker_in_clear"] += MARKER in packet.payload
        counts["inner_addresses_in_clear"] += any(s + d in packet.payload or d + s in packet.payload
                                                  for s, d in inner)
    return {**counts, "other_examples": examples}


def verdict(counts: dict, wire: Wire, probes_passed: bool) -> list[str]:
    """What is wrong with a capture for *wire* (empty when it proves the tunnel)."""
    problems = []
    if not probes_passed:
        problems.append(f"a DF ping with {MAX_PAYLOAD} bytes of payload did not pass every pair")
    if counts["fragments"]:
        problems.append(f"{counts['fragments']} IP fragments on the underlay")
    if not wire.flows:  # no tunnel: the containers' packets themselves cross the underlay
        if not counts["plain"]:
            problems.append("no packet with container addresses crossed the underlay")
        return problems
    if not counts["encapsulated"]:
        problems.append(f"no {wire.label} packet on the underlay")
    if counts["plain"]:
        problems.append(f"{counts['plain']} packets with container addresses in the outer header (not tunnelled)")
    if counts["other"]:
        problems.append(f"{counts['other']} IPv4 packets that are not {wire.label}, e.g. "
                        f"{', '.join(counts['other_examples'])}")
    if wire.encrypted and (counts["marker_in_clear"] or counts["inner_addresses_in_clear"]):
        problems.append(f"inner data in clear: marker in {counts['marker_in_clear']} packets, inner "
                        f"addresses in {counts['inner_addresses_in_clear']}")
    return problems


def check_underlay(deployment: Deployment, wire: Wire) -> dict:
    """Capture the underlay at its capture place (netns: every port of its switch, tcpdump -i any;
    see Underlay.capture_access), bounded by CAPTURE_PACKETS and the probes' duration, while every
    pair pings both ways: 3 DF echo requests with MAX_PAYLOAD bytes filled with MARKER. Returns
    the counts and the problems found. A capture place on another machine writes the capture to
    its stdout (-w -), which lands in the same file here."""
    underlay = deployment.underlay
    access, ifname = underlay.capture_access, underlay.capture_ifname
    pcap = tunnel_dir(deployment, "capture") / "underlay.pcap"
    pcap.unlink(missing_ok=True)
    local = access.local_netns is not None
    argv = ["tcpdump", "-i", ifname, "-nn", "-U", "--immediate-mode", "-s", "0", "-c", str(CAPTURE_PACKETS),
            "-w", str(pcap) if local else "-"]
    err = pcap.with_suffix(".err")
    tcpdump = proc.spawn(access.argv(argv), pcap.with_suffix(".out") if local else pcap, err, registry(deployment),
                         argv, stdin_open=access.ends_with_stdin)
    try:
        wait_for("tcpdump listening on the underlay", lambda: b"listening on" in err.read_bytes(),
                 hint=f"see {err}")
        options = ["-c", "3", "-i", "0.05", "-W", "1", "-M", "do", "-s", str(MAX_PAYLOAD), "-p", MARKER.hex()]
        pings = [ping(deployment, a, b, *options) for s, d in deployment.pairs for a, b in ((s, d), (d, s))]
        probes_passed = all(p.wait(timeout=15) == 0 for p in pings)
        capture_flushed(deployment, pcap)  # every echo request and reply is in the file (tcpdump -U)
    finally:
        proc.terminate([tcpdump])
        registry(deployment).forget(tcpdump.pid)
    packets, other = read_pcap(pcap.read_bytes())
    inner = [(bytes(map(int, deployment.container(s).ip.split("."))), bytes(map(int, deployment.container(d).ip.split("."))))
             for s, d in deployment.pairs]
    counts = classify(packets, wire, inner)
    problems = verdict(counts, wire, probes_passed)
    pcap.unlink()
    where = (f"{place(access)}: every underlay port (tcpdump -i any)" if ifname == "any"
             else f"{place(access)}: {ifname} (tcpdump -i {ifname})")
    return {"passed": not problems, "expected": wire.label or "no encapsulation", "encrypted": wire.encrypted,
            "where": where, "probe_payload_bytes": MAX_PAYLOAD,
            "non_ipv4_frames": other, **counts, "problems": problems}


# ------------------------------------------------------------------------------------ the base
@dataclass(frozen=True)
class Suite:
    """A cipher suite of a tunnel: what it is called, its overhead and how the tunnel is told."""

    label: str  # for meta.json and figures, e.g. "AES-256-GCM"
    overhead: int  # bytes added to an inner IPv4 packet at most, with this suite
    options: tuple[str, ...] = ()  # the tunnel's own configuration lines or names


class Tunnel(Technology):
    """A tunnel or VPN that joins the hosts of a multi-host setup (see the module docstring)."""

    kind = "tunnel"
    wire: ClassVar[Wire]

    # Cipher suites a tunnel offers, by config name, and the one it runs when none is chosen
    # (the paper's). Tunnels with one fixed suite leave SUITES empty and name it in cipher().
    SUITES: ClassVar[dict[str, Suite]] = {}
    DEFAULT_SUITE: ClassVar[str | None] = None

    def __init__(self, suite: str | None = None) -> None:
        self.facts: dict = {}
        self.suite_name = suite or self.DEFAULT_SUITE
        if self.SUITES and self.suite_name not in self.SUITES:
            raise InvalidValueError(f"tunnel {self.name}: no cipher suite '{suite}'; choose one of {sorted(self.SUITES)}")

    @property
    def suite(self) -> Suite:
        return self.SUITES[self.suite_name]

    # what a tunnel says about itself
    def implementation(self) -> str:
        """'kernel', 'userspace (<program>)' or 'tc-bpf': what carries the packets here, for
        meta.json (resolved_implementation() is the short name: kernel, userspace, tc-bpf)."""
        return self.resolved_implementation()

    def cipher(self) -> str | None:
        return self.suite.label if self.SUITES else None

    def overhead(self) -> int:
        """Bytes the tunnel adds to an inner IPv4 packet at most (outer headers, padding, tags)."""
        return self.suite.overhead

    def mtu(self) -> int:
        return UNDERLAY_MTU - self.overhead()

    def wire_of(self, deployment: Deployment) -> Wire:
        """What the underlay of *deployment* must carry (default: the class's wire)."""
        return self.wire

    def prepare(self, deployment: Deployment) -> None:
        """Keys and configuration files, for every host: done once (on the ssh backend, on the
        controller) before the setup time starts. Everything start needs goes to files under
        prepared_dir(deployment) (key_dir); nothing kept on *self* reaches start."""

    def start(self, deployment: Deployment) -> None:
        """Bring the tunnel up on the hosts ``deployment.local_hosts()`` only (devices, daemons,
        routes), reading what prepare wrote; the other hosts are data (peers, addresses)."""
        raise NotImplementedError

    def hint(self, deployment: Deployment) -> str:
        return f"see the logs in {tunnel_dir(deployment, 'logs')}"

    # the common parts
    def incompatibility(self, setup):
        if setup.scenario != "multi":
            return f"tunnel {self.name} joins hosts: only multi-host setups have one"
        if setup.solution not in SOLUTIONS:
            return (f"tunnel {self.name} is verified only with solutions {list(SOLUTIONS)}, which route "
                    f"the containers' traffic through the host; '{setup.solution}' is not")
        if self.mtu() < MIN_PATH_MTU:
            return (f"tunnel {self.name} leaves an MTU of {self.mtu()}: payloads of {MAX_PAYLOAD} bytes "
                    f"would not pass unfragmented")
        return None

    def requires(self, setup):
        return [Requirement("binary", "tcpdump", "Debian package tcpdump: the underlay capture check"),
                Requirement("binary", "ping", "Debian package iputils-ping: first packet and probes")]

    def apply(self, deployment: Deployment) -> None:
        """The whole tunnel from one process (netns, docker): prepare, the local part (every host
        is local), then the checks, timed from the start of the tunnel."""
        self.prepare(deployment)
        started = self.apply_local(deployment)
        self.verify(deployment, started)

    def apply_local(self, deployment: Deployment) -> float:
        """What this process builds of the tunnel, after prepare (whose files it reads): the path
        MTU of the local containers, then start on the local hosts. Returns the time.monotonic()
        at which start began (verify's *started* when the checks run in this process too)."""
        set_path_mtu(deployment, self.mtu())
        started = time.monotonic()
        self.start(deployment)
        return started

    def verify(self, deployment: Deployment, started: float | None = None,
               implementation: str | None = None) -> None:
        """Once every host's part is up: time the first packet of every pair from *started*
        (default: now; the ssh backend times the hosts' starts itself) and prove the underlay
        capture; record both for describe(). Reaches the containers and the capture place only
        through their access objects, so it runs on a controller that is none of the hosts;
        there *implementation* is what the hosts said :meth:`implementation` is (it asks the
        binaries, which the controller need not have)."""
        started = time.monotonic() if started is None else started
        timing = first_packet(deployment, started, self.hint(deployment))
        capture = check_underlay(deployment, self.wire_of(deployment))
        self.facts = {"implementation": implementation or self.implementation(), "cipher": self.cipher(),
                      "suite": self.suite_name,
                      "overhead_bytes": self.overhead(), "path_mtu": self.mtu(),
                      "setup_s": timing["first_packet_s"], **timing, "underlay_capture": capture}
        if not capture["passed"]:
            raise DeployError(f"tunnel {self.name}: the underlay capture does not prove the tunnel: "
                              f"{'; '.join(capture['problems'])}")

    def describe(self, deployment: Deployment) -> dict:
        """verify's facts, and the first host's :meth:`host_facts` when that host is on this
        machine (elsewhere its agent reads them: they are files and daemons of that host)."""
        first = deployment.hosts[0]
        local = first.access is None or first.access.local_netns is not None
        return {**self.facts, **(self.host_facts(deployment, first) if local else {})}

    def host_facts(self, deployment: Deployment, host: Host) -> dict:
        """Facts only *host* can tell (its daemon's state or log), read where *host* is local."""
        return {}
