"""Checks of the isolation a setup claims.

:func:`check_whitelist` runs at every deploy, before anything is measured. Each whitelisted pair
must connect in both directions, and for every container one peer that is not whitelisted is
probed. That peer must be dropped when the filter enforces the whitelist, and reachable when the
filter is ``none``, which proves that the probe can see a path at all. Each probe goes over ICMP
(an echo request), TCP (a handshake) and UDP (a datagram seen by the destination's socket). The
probes are bounded (one each, PROBE_TIMEOUT_S) and address only the setup's own namespaces.

No probe needs a process: the sockets (raw ICMP, TCP, UDP) are created inside the source and
destination namespaces by switching this thread into each namespace once (a socket stays in the
namespace it was made in), and one selector loop drives all of them at once. The probes expected
to arrive are the positive controls: once they all have, the ones expected to be dropped have had
DROP_WAIT_FACTOR times as long as the slowest control (at least DROP_WAIT_MIN_S) and count as
dropped (:func:`drop_wait_s`); a missing control makes every probe wait the full timeout.

:func:`probe_ports` generalises the probes to many ports and to ARP (an AF_PACKET socket in the
source namespace asks who-has for the destination's address); the isolation workload
(workloads/security.py) uses it, and the small packet builders below (:func:`ipv4`,
:func:`udp`, :func:`ethernet`, :func:`send_frames`) let the spoofing workload craft packets
without scapy.
"""

from __future__ import annotations

import contextlib
import errno
import random
import selectors
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from seconetbench import technology
from seconetbench.errors import DeployError, InvalidValueError, WorkloadError
from seconetbench.testbed import netlink

if TYPE_CHECKING:
    from seconetbench.backends.base import Container, Deployment

PROBE_TIMEOUT_S = 1.0  # the longest any probe may take to arrive
# At deploy, a probe expected to be dropped counts as dropped once every probe expected to arrive
# (the positive controls, sent at the same time over the same kind of path) has, and it has had
# DROP_WAIT_FACTOR times as long as the slowest of them, and at least DROP_WAIT_MIN_S
# (docs/security.md "The isolation proof at deploy"; docs/decisions.md).
DROP_WAIT_FACTOR = 5
DROP_WAIT_MIN_S = 0.15
PROBE_PORT = 47999  # TCP and UDP; no workload uses it, and probing ends before any workload starts
PROTOCOLS = ("icmp", "tcp", "udp")
ETH_P_ARP, ETH_P_IP = 0x0806, 0x0800
BROADCAST = b"\xff" * 6
PACKET_OUTGOING = 4  # sll_pkttype of a frame this host sent
ICMP_ECHOREPLY, ICMP_ECHO = 0, 8
SOL_RAW, ICMP_FILTER = 255, 1  # <linux/icmp.h>: a raw ICMP socket's filter of types it receives


@dataclass
class Probe:
    source: str
    destination: str
    expected: bool  # reachable?
    protocol: str  # icmp, tcp, udp or arp
    reached: bool = False
    port: int | None = PROBE_PORT  # TCP and UDP only
    sent_at: float | None = None  # time.monotonic() when sent
    reached_s: float | None = None  # seconds from sending until it arrived

    def arrived(self) -> None:
        if not self.reached:
            self.reached = True
            self.reached_s = time.monotonic() - self.sent_at


def probe_plan(deployment: Deployment) -> list[tuple[str, str, bool]]:
    """(source, destination, expected_reachable) for every whitelisted pair (both directions)
    and one non-whitelisted peer per container (the next container that is not its partner)."""
    enforced = getattr(technology.get("filter", deployment.setup.filter), "enforces_whitelist", True)
    plan = []
    for sender, sink in deployment.pairs:
        plan += [(sender, sink, True), (sink, sender, True)]
    names = [c.name for c in deployment.containers]
    for i, source in enumerate(names):
        for step in range(1, len(names)):
            other = names[(i + step) % len(names)]
            if not deployment.allowed(source, other):
                plan.append((source, other, not enforced))
                break
    return plan


def netns_here(container: Container) -> str:
    """*container*'s network namespace on this machine, which the probes enter (only backends
    with capability security_workloads have one for every container)."""
    netns = container.access.local_netns
    if netns is None:
        raise WorkloadError(f"container {container.name} has no network namespace on this machine "
                            f"({container.access.kind}); probing it from here needs backend capability "
                            "security_workloads")
    return netns


def sockets_in(container: Container, kinds: Sequence[tuple[int, int]]) -> list[socket.socket]:
    """Non-blocking IPv4 sockets, one per (type, protocol) of *kinds*, made inside *container*'s
    network namespace in one visit (they stay there)."""
    made: list[socket.socket] = []
    try:
        with netlink.entered(netns_here(container)):
            for kind, protocol in kinds:
                made.append(socket.socket(socket.AF_INET, kind, protocol))
    except BaseException:
        for sock in made:
            sock.close()
        raise
    for sock in made:
        sock.setblocking(False)
    return made


def socket_in(container: Container, kind: int) -> socket.socket:
    """A non-blocking IPv4 socket of *kind* made inside *container*'s network namespace (it stays there)."""
    return sockets_in(container, [(kind, 0)])[0]


def icmp_echo(identifier: int, sequence: int, payload: bytes = b"seconetbench-probe") -> bytes:
    """An ICMP echo request (type 8, checksum set), as ping sends it."""
    header = struct.pack("!BBHHH", ICMP_ECHO, 0, 0, identifier, sequence)
    return header[:2] + struct.pack("!H", checksum(header + payload)) + header[4:] + payload


def drop_wait_s(probes: Sequence[Probe], timeout_s: float) -> float | None:
    """How long after the last probe was sent the probes still missing count as dropped, when the
    expected-reachable probes are the positive controls: once every control has arrived,
    DROP_WAIT_FACTOR times the slowest of them, at least DROP_WAIT_MIN_S, at most *timeout_s*.
    None while a control is missing, or when there is none (then *timeout_s* applies)."""
    controls = [p for p in probes if p.expected]
    if not controls or not all(p.reached for p in controls):
        return None
    slowest = max(p.reached_s for p in controls)
    return min(timeout_s, max(DROP_WAIT_MIN_S, DROP_WAIT_FACTOR * slowest))


def _probe_sockets(deployment: Deployment, icmp: list[Probe], tcp: list[Probe], udp: list[Probe],
                   timeout_s: float = PROBE_TIMEOUT_S, controls: bool = False) -> None:
    """ICMP echoes, TCP handshakes and UDP datagrams for all probes at once, in one selector loop,
    without a process per probe. Each destination listens (TCP and UDP) on every port it is
    probed on: a TCP probe is reached when the handshake completes, a UDP probe when the
    destination's socket receives the datagram, an ICMP probe when the echo reply reaches the
    source's raw socket. All sockets of a namespace are made in one visit to it.

    The loop ends when every probe has arrived, or *timeout_s* after the last was sent; with
    *controls*, already when the probes expected to arrive have (the positive controls) and the
    others have had :func:`drop_wait_s`. Probes expected to be dropped are sent first, so each had
    at least that long."""
    probes = sorted(icmp + tcp + udp, key=lambda p: p.expected)  # expected drops first
    listened = sorted({(p.destination, p.port) for p in tcp + udp})
    senders = sorted({p.source for p in icmp} | {p.source for p in udp})
    wanted: dict[str, dict[Any, tuple[int, int]]] = {}  # container -> {what for: (type, protocol)}
    for name, port in listened:
        wanted.setdefault(name, {}).update({("listen", port): (socket.SOCK_STREAM, 0),
                                            ("receive", port): (socket.SOCK_DGRAM, 0)})
    for name in senders:
        wanted.setdefault(name, {}).update({"echo": (socket.SOCK_RAW, socket.IPPROTO_ICMP),
                                            "datagram": (socket.SOCK_DGRAM, 0)})
    for probe in tcp:
        wanted.setdefault(probe.source, {})[("connect", id(probe))] = (socket.SOCK_STREAM, 0)
    selector = selectors.DefaultSelector()
    opened: list[socket.socket] = []
    accepted: list[socket.socket] = []
    try:
        made: dict[str, dict[Any, socket.socket]] = {}
        for name, kinds in wanted.items():
            socks = sockets_in(deployment.container(name), list(kinds.values()))
            opened += socks
            made[name] = dict(zip(kinds, socks))
        for name, port in listened:
            ip = deployment.container(name).ip
            listener, receiver = made[name][("listen", port)], made[name][("receive", port)]
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((ip, port))
            listener.listen(64)
            receiver.bind((ip, port))
            selector.register(listener, selectors.EVENT_READ, ("accept", None))
            selector.register(receiver, selectors.EVENT_READ, ("datagram", None))
        for name in senders:
            made[name]["echo"].setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", ~(1 << ICMP_ECHOREPLY) & 0xFFFFFFFF))
            selector.register(made[name]["echo"], selectors.EVENT_READ, ("echo", name))
        identifier = random.getrandbits(16)
        by_tag: dict[bytes, Probe] = {}
        by_echo: dict[tuple[str, int], Probe] = {}  # (source, ICMP sequence)
        for probe in probes:
            destination = deployment.container(probe.destination).ip
            probe.sent_at = time.monotonic()
            if probe.protocol == "tcp":
                client = made[probe.source][("connect", id(probe))]
                if client.connect_ex((destination, probe.port)) in (0, errno.EINPROGRESS):
                    selector.register(client, selectors.EVENT_WRITE, ("connect", probe))
                continue  # otherwise refused at once (e.g. no route): not reached
            try:
                if probe.protocol == "udp":
                    tag = f"seconetbench-probe-{len(by_tag)}".encode()
                    by_tag[tag] = probe
                    made[probe.source]["datagram"].sendto(tag, (destination, probe.port))
                else:
                    sequence = len(by_echo) & 0xFFFF
                    by_echo[(probe.source, sequence)] = probe
                    made[probe.source]["echo"].sendto(icmp_echo(identifier, sequence), (destination, 0))
            except OSError:
                pass  # unreachable at once: not reached
        last_sent = time.monotonic()
        while not all(p.reached for p in probes):
            wait = drop_wait_s(probes, timeout_s) if controls else None
            remaining = last_sent + (timeout_s if wait is None else wait) - time.monotonic()
            if remaining <= 0:
                break
            for key, _ in selector.select(timeout=remaining):
                what, subject = key.data
                try:
                    if what == "accept":
                        connection, _ = key.fileobj.accept()
                        accepted.append(connection)  # closed after the probing, by a reset
                    elif what == "datagram":
                        tag, _ = key.fileobj.recvfrom(256)
                        if tag in by_tag:
                            by_tag[tag].arrived()
                    elif what == "echo":
                        packet, (sender, _) = key.fileobj.recvfrom(256)
                        header = (packet[0] & 0x0F) * 4
                        kind, _, _, ident, sequence = struct.unpack("!BBHHH", packet[header:header + 8])
                        probe = by_echo.get((subject, sequence))
                        if (kind == ICMP_ECHOREPLY and ident == identifier and probe is not None
                                and sender == deployment.container(probe.destination).ip):
                            probe.arrived()
                    else:  # connect
                        selector.unregister(key.fileobj)
                        if key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                            subject.arrived()
                except BlockingIOError:
                    pass
    finally:
        selector.close()
        for connection in accepted:
            # a reset, not a FIN: a close from this end first would leave the workload's port
            # (e.g. D-ITG's 10001) in TIME_WAIT here for 60 s, and the next workload's listener
            # could not bind it. Only now: a reset during the probing could reach the prober
            # before it saw its connection up
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            connection.close()
        for sock in opened:
            sock.close()


def _packet_socket(netns: str, ifname: str, protocol: int) -> socket.socket:
    """An AF_PACKET socket on *ifname* inside *netns*, for frames of EtherType *protocol*."""
    with netlink.entered(netns):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(protocol))
    sock.bind((ifname, protocol))
    return sock


def mac_of(netns: str, ifname: str) -> bytes:
    """The hardware address of *ifname* in *netns* (6 bytes)."""
    with _packet_socket(netns, ifname, ETH_P_ARP) as sock:
        return sock.getsockname()[4]


def arp_request(mac: bytes, source_ip: str, target_ip: str) -> bytes:
    """A broadcast ARP who-has *target_ip* from *mac*/*source_ip* (Ethernet frame)."""
    arp = struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, 1, mac, socket.inet_aton(source_ip),
                      b"\x00" * 6, socket.inet_aton(target_ip))
    return ethernet(BROADCAST, mac, ETH_P_ARP, arp)


def _probe_arp(deployment: Deployment, probes: list[Probe], timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Neighbour discovery: each source asks who-has every destination once, on its own
    interface; a probe is reached when the destination's address answers (ARP reply)."""
    selector = selectors.DefaultSelector()
    opened: list[socket.socket] = []
    try:
        for source in sorted({p.source for p in probes}):
            container = deployment.container(source)
            sock = _packet_socket(netns_here(container), container.ifname, ETH_P_ARP)
            sock.setblocking(False)
            opened.append(sock)
            mine = [p for p in probes if p.source == source]
            wanted = {socket.inet_aton(deployment.container(p.destination).ip): p for p in mine}
            selector.register(sock, selectors.EVENT_READ, wanted)
            mac = sock.getsockname()[4]
            for probe in mine:
                sock.send(arp_request(mac, container.ip, deployment.container(probe.destination).ip))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not all(p.reached for p in probes):
            for key, _ in selector.select(timeout=max(0.0, deadline - time.monotonic())):
                try:
                    frame, address = key.fileobj.recvfrom(128)
                except BlockingIOError:
                    continue
                operation, sender_ip = struct.unpack("!H", frame[20:22])[0], frame[28:32]
                if address[2] != PACKET_OUTGOING and operation == 2 and sender_ip in key.data:
                    key.data[sender_ip].reached = True
    finally:
        selector.close()
        for sock in opened:
            sock.close()


def probe_ports(deployment: Deployment, plan: Iterable[tuple[str, str, bool]], ports: Sequence[int] = (PROBE_PORT,),
                protocols: Sequence[str] = PROTOCOLS, timeout_s: float = PROBE_TIMEOUT_S,
                controls: bool = False) -> list[Probe]:
    """Probe every (source, destination, expected) of *plan*: ICMP and ARP once, TCP and UDP once
    per port of *ports*. All probes run at once; ICMP, TCP and UDP end within *timeout_s* (with
    *controls*, sooner: see :func:`_probe_sockets`), ARP within another *timeout_s*. Returns the
    probes, grouped by protocol in *protocols* order."""
    plan = list(plan)
    unknown = sorted(set(protocols) - {*PROTOCOLS, "arp"})
    if unknown:
        raise InvalidValueError(f"probe protocols {unknown} unknown; choose from {[*PROTOCOLS, 'arp']}")
    probes = {protocol: [Probe(s, d, e, protocol, port=port) for s, d, e in plan
                         for port in (ports if protocol in ("tcp", "udp") else (None,))]
              for protocol in protocols}
    _probe_sockets(deployment, probes.get("icmp", []), probes.get("tcp", []), probes.get("udp", []),
                   timeout_s, controls)
    if probes.get("arp"):
        _probe_arp(deployment, probes["arp"], timeout_s)
    return [p for protocol in protocols for p in probes[protocol]]


# ------------------------------------------------------------------------------ crafted packets
def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4(source: str, destination: str, protocol: int, payload: bytes, ttl: int = 64) -> bytes:
    """An IPv4 packet (no options, DF clear, header checksum set) around *payload*."""
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, ttl, protocol, 0,
                         socket.inet_aton(source), socket.inet_aton(destination))
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:] + payload


def udp(source_port: int, destination_port: int, payload: bytes) -> bytes:
    """A UDP datagram without checksum (0: allowed over IPv4)."""
    return struct.pack("!HHHH", source_port, destination_port, 8 + len(payload), 0) + payload


def ethernet(destination: bytes, source: bytes, ethertype: int, payload: bytes) -> bytes:
    return destination + source + struct.pack("!H", ethertype) + payload


def send_frames(netns: str, ifname: str, frames: Sequence[bytes]) -> None:
    """Transmit ready Ethernet *frames* on *ifname* inside *netns* (an AF_PACKET socket)."""
    with _packet_socket(netns, ifname, ETH_P_IP) as sock:
        for frame in frames:
            sock.send(frame)


# The destination side of the isolation probes: a TCP and a UDP socket on PROBE_PORT that report
# what reaches them. perl-base (with POSIX) is Essential in Debian images; the sender side needs
# only bash, ping and timeout. Run for at most $secs after it is ready. Through an exec API that
# returns output only at the end (kubernetes), two FIFOs of the check's own carry the events
# instead of stdout: the listener writes "ready" (or why it failed) into $ready, read by
# READY_WAITER in a second exec, and once a line arrives on $stop (STOPPER) it ends when nothing
# has arrived for $grace s.
LISTENER = r"""
use IO::Socket::INET; use IO::Select;
my ($ip, $port, $secs, $ready, $stop, $grace) = @ARGV; $| = 1;
sub tell_ready { return unless $ready; require POSIX; POSIX::mkfifo($ready, 0600);
  open(my $f, '>', $ready) or die "ready: $!"; print $f "$_[0]\n"; close $f; }
sub fail { tell_ready("failed: $_[0]"); die "$_[0]\n"; }
my $t = IO::Socket::INET->new(LocalAddr => $ip, LocalPort => $port, Proto => 'tcp', Listen => 64, ReuseAddr => 1) or fail("tcp: $!");
my $u = IO::Socket::INET->new(LocalAddr => $ip, LocalPort => $port, Proto => 'udp') or fail("udp: $!");
my $s = IO::Select->new($t, $u); my $st;
if ($stop) { require POSIX; POSIX::mkfifo($stop, 0600);
  sysopen($st, $stop, POSIX::O_RDONLY() | POSIX::O_NONBLOCK()) or fail("stop: $!"); $s->add($st); }
tell_ready("ready"); print "ready\n"; my $end = time + $secs; my $stopped = 0;
while (time < $end) { my @readable = $s->can_read($stopped ? $grace : 0.2); last if $stopped && !@readable;
  for my $h (@readable) {
  if ($h == $t) { my $c = $t->accept; print "tcp ", $c->peerhost, "\n" if $c; close $c if $c; }
  elsif ($st && $h == $st) { $s->remove($st); close $st; $st = undef; unlink $stop; $stopped = 1; }
  else { my $m; $u->recv($m, 256); print "udp $m\n"; } } }
unlink $stop if $stop;
"""
# Blocks until the LISTENER writing into the FIFO $ARGV[0] is ready (whichever comes first makes
# the FIFO), prints its line and removes the FIFO.
READY_WAITER = r"""
require POSIX; my ($f) = @ARGV; POSIX::mkfifo($f, 0600);
open(my $r, '<', $f) or die "$f: $!"; my $line = <$r>; unlink $f; print $line;
"""
# Tells the LISTENER reading the FIFO $ARGV[0] to stop; fails at once (ENXIO) when it no longer reads.
STOPPER = r"""
require POSIX; sysopen(my $w, $ARGV[0], POSIX::O_WRONLY() | POSIX::O_NONBLOCK()) or die "$ARGV[0]: $!";
print $w "stop\n"; close $w;
"""
PROBER = r"""
port=$1; name=$2; shift 2
for dst in "$@"; do
  ( ping -n -q -c 1 -W 1 "$dst" >/dev/null 2>&1 && echo "icmp $dst 1" || echo "icmp $dst 0" ) &
  ( timeout 1 bash -c "exec 3<>/dev/tcp/$dst/$port" 2>/dev/null && echo "tcp $dst 1" || echo "tcp $dst 0" ) &
  ( echo "probe-from-$name" > "/dev/udp/$dst/$port" ) 2>/dev/null &
done
wait
"""


def check_whitelist_by_exec(deployment: Deployment,
                            exec_in: Callable[[Container, list[str], float], tuple[int, str, str]],
                            start_in: Callable[[Container, list[str]], subprocess.Popen] | None = None
                            ) -> dict[str, Any]:
    """:func:`probe_plan` over ICMP, TCP and UDP, probed from inside the containers where this
    machine cannot open sockets in them (pods, namespaces on remote hosts): every destination runs
    a listener, every source one prober over all its destinations. *exec_in(container, argv,
    timeout_s)* runs a command inside a container and returns (exit code, stdout, stderr).

    The probes start when every listener is ready, and a listener ends once what it should see
    has come: events, each bounded. With *start_in(container, argv)* (a process whose stdout
    streams here and which ends when its stdin is closed: the ssh backend) the listeners say
    "ready" on stdout and end once every datagram that should arrive has. Without it (a
    cluster's exec API returns a command's output only at its end) a second exec per destination
    waits on a FIFO that its listener writes "ready" into (:data:`READY_WAITER`), and once every
    prober has sent everything, a third tells the listener to stop (:data:`STOPPER`) once
    nothing has arrived for PROBE_TIMEOUT_S. Either way a probe expected to be dropped counts as
    dropped only when a whitelisted probe to the same destination over the same protocol
    arrived (its positive control)."""
    import concurrent.futures
    import secrets

    from seconetbench.tunnels._common import wait_until

    plan = probe_plan(deployment)
    started = time.monotonic()
    destinations = sorted({d for _, d, _ in plan})
    sources = sorted({s for s, _, _ in plan})
    prober_timeout_s = 30
    # without a stop (kubernetes: a lost STOPPER), a listener ends this long after it is ready
    listen_s = prober_timeout_s + 2 * PROBE_TIMEOUT_S
    heard: dict[str, list[str]] = {d: [] for d in destinations}
    running: dict[str, subprocess.Popen] = {}
    unstopped: list[str] = []  # destinations whose listener (exec path) has not been told to stop
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2 * (len(destinations) + len(sources)))

    def stop(d: str) -> concurrent.futures.Future:
        return pool.submit(exec_in, deployment.container(d), ["perl", "-e", STOPPER, f"{fifo[d]}.stop"], 30)

    try:
        if start_in is not None:
            def listen(d: str) -> None:
                for line in running[d].stdout:
                    heard[d].append(line.rstrip("\n"))

            for d in destinations:
                container = deployment.container(d)
                running[d] = start_in(container, ["perl", "-e", LISTENER, container.ip, str(PROBE_PORT), "120"])
                pool.submit(listen, d)
            if not wait_until(lambda: all("ready" in heard[d] or running[d].poll() is not None
                                           for d in destinations), 30):
                raise DeployError("isolation check: the probe listeners did not say ready within 30 s")
            failed = [d for d in destinations if "ready" not in heard[d]]
            if failed:
                raise DeployError(f"isolation check: the probe listener in {failed[0]} did not start: "
                                  f"{running[failed[0]].stderr.read().strip()[-300:]}")
        else:
            # the check's own FIFOs, per destination (containers may share a /tmp)
            token = secrets.token_hex(4)
            fifo = {d: f"/tmp/scn-probe-{token}-{d}" for d in destinations}
            listeners = {d: pool.submit(exec_in, deployment.container(d), [
                "perl", "-e", LISTENER, deployment.container(d).ip, str(PROBE_PORT), str(listen_s),
                f"{fifo[d]}.ready", f"{fifo[d]}.stop", str(PROBE_TIMEOUT_S)], listen_s + 30) for d in destinations}
            unstopped = list(destinations)
            waiters = {d: pool.submit(exec_in, deployment.container(d), ["perl", "-e", READY_WAITER, f"{fifo[d]}.ready"],
                                      30) for d in destinations}
            for d in destinations:
                _await_listener(d, waiters[d], listeners[d])
        probers = {s: pool.submit(exec_in, deployment.container(s), [
            "bash", "-c", PROBER, "prober", str(PROBE_PORT), s,
            *[deployment.container(d).ip for src, d, _ in plan if src == s]], prober_timeout_s) for s in sources}
        sent: dict[str, dict[tuple[str, str], bool]] = {}
        for s, future in probers.items():
            _, out, _ = future.result()
            for line in out.splitlines():
                protocol, ip, ok = line.split()
                sent.setdefault(s, {})[(protocol, ip)] = ok == "1"
        if start_in is not None:
            # the datagrams that should arrive were sent with the others: once they are heard,
            # the listeners have seen what they will see (bounded: a missing one is a failure)
            due = [(s, d) for s, d, expected in plan if expected]
            wait_until(lambda: all(f"udp probe-from-{s}" in heard[d] for s, d in due), 2 * PROBE_TIMEOUT_S)
            for process in running.values():
                process.stdin.close()
            for process in running.values():
                process.wait(timeout=30)
        else:
            # every prober has sent everything: the listeners end once nothing has arrived for
            # PROBE_TIMEOUT_S (a failed stop leaves a listener to its bound, listen_s)
            stopping, unstopped = [stop(d) for d in unstopped], []
            for stopped in stopping:
                stopped.result()
            for d, future in listeners.items():
                _, out, err = future.result()
                if "ready" not in out:
                    raise DeployError(f"isolation check: the probe listener in {d} did not start: {err.strip()[-300:]}")
                heard[d] = out.splitlines()
    finally:
        for process in running.values():
            if process.poll() is None:
                process.kill()
        # the check failed on the way: the listeners end now, not at listen_s, and take their FIFOs
        # along before whoever called this tears the containers down
        for stopping in [stop(d) for d in unstopped]:
            with contextlib.suppress(Exception):  # the error on the way is the one to report
                stopping.result()
        pool.shutdown(wait=start_in is not None)
    failures = []
    reached: dict[tuple[str, str], dict[str, bool]] = {}
    for source, destination, _ in plan:
        ip = deployment.container(destination).ip
        reached[(source, destination)] = {
            "icmp": sent.get(source, {}).get(("icmp", ip), False),
            "tcp": sent.get(source, {}).get(("tcp", ip), False),
            "udp": f"udp probe-from-{source}" in heard.get(destination, []),
        }
    controlled = {(d, protocol) for (s, d, expected) in plan if expected
                  for protocol, ok in reached[(s, d)].items() if ok}
    for source, destination, expected in plan:
        for protocol, ok in reached[(source, destination)].items():
            if ok != expected:
                what = "reachable but not whitelisted" if ok else "whitelisted but unreachable"
                failures.append(f"{source}->{destination} {protocol}: {what}")
            elif not ok and (destination, protocol) not in controlled:
                failures.append(f"{source}->{destination} {protocol}: not reached, but no whitelisted probe to "
                                f"{destination} over {protocol} arrived either, so it does not count as blocked")
    return {"passed": not failures, "protocols": list(PROTOCOLS), "probes": len(plan) * 3,
            "expected_dropped": sum(1 for *_, e in plan if not e) * 3, "failures": failures,
            "duration_s": round(time.monotonic() - started, 3),
            "method": "exec in the containers (perl listener, bash prober)"}


def _await_listener(destination: str, waiter: Any, listener: Any, timeout_s: float = 35) -> None:
    """Return once the probe LISTENER in *destination* is ready, by its READY_WAITER's exec
    (future *waiter*); DeployError with the reason when it failed or ended first (future
    *listener*) or neither came within *timeout_s*."""
    import concurrent.futures

    done, _ = concurrent.futures.wait([waiter, listener], timeout_s, concurrent.futures.FIRST_COMPLETED)
    if waiter in done:
        _, said, err = waiter.result()
        if said.strip() == "ready":
            return
        why = said.strip() or err.strip()
    elif listener in done:
        _, _, why = listener.result()
    else:
        why = f"no word from it within {timeout_s:.0f} s"
    raise DeployError(f"isolation check: the probe listener in {destination} did not start: {why.strip()[-300:]}")


def check_whitelist(deployment: Deployment, controls: bool = True) -> dict[str, Any]:
    """Probe the plan over ICMP, TCP and UDP; return the result for meta.json. With *controls*
    the expected drops are judged once the expected arrivals have come (:func:`drop_wait_s`);
    without, after the full PROBE_TIMEOUT_S (bench/isolation_proof.py compares the two)."""
    plan = probe_plan(deployment)
    started = time.monotonic()
    failures = []
    probes = probe_ports(deployment, plan, controls=controls)
    arrivals = [p.reached_s for p in probes if p.expected and p.reached]
    for probe in probes:
        if probe.reached != probe.expected:
            what = "reachable but not whitelisted" if probe.reached else "whitelisted but unreachable"
            failures.append(f"{probe.source}->{probe.destination} {probe.protocol}: {what}")
    return {
        "passed": not failures,
        "protocols": list(PROTOCOLS),
        "probes": len(plan) * len(PROTOCOLS),
        "expected_dropped": sum(1 for *_, e in plan if not e) * len(PROTOCOLS),
        "failures": failures,
        "duration_s": round(time.monotonic() - started, 3),
        "slowest_arrival_s": round(max(arrivals), 6) if arrivals else None,
        # how long the expected drops were given after the last probe was sent
        "drop_wait_s": round((drop_wait_s(probes, PROBE_TIMEOUT_S) if controls else None) or PROBE_TIMEOUT_S, 3),
    }
