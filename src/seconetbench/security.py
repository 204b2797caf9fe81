"""Checks of the isolation a setup claims.

:func:`check_whitelist` runs at every deploy, before anything is measured. Each whitelisted pair
must connect in both directions, and for every container one peer that is not whitelisted is
probed. That peer must be dropped when the filter enforces the whitelist, and reachable when the
filter is ``none``, which proves that the probe can see a path at all. Each probe goes over ICMP
(ping), TCP (a handshake) and UDP (a datagram seen by the destination's socket). The probes are
bounded (one each, PROBE_TIMEOUT_S) and address only the setup's own namespaces.

TCP and UDP need no process per probe: sockets are created inside the source and destination
namespaces by switching this thread into them (a socket stays in the namespace it was made in),
and one selector loop drives all of them at once.
"""

from __future__ import annotations

import errno
import selectors
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from seconetbench import proc, technology
from seconetbench.testbed import netlink

if TYPE_CHECKING:
    from seconetbench.backends.base import Deployment

PROBE_TIMEOUT_S = 1.0
PROBE_PORT = 47999  # TCP and UDP; no workload uses it, and probing ends before any workload starts
PROTOCOLS = ("icmp", "tcp", "udp")


@dataclass
class Probe:
    source: str
    destination: str
    expected: bool  # reachable?
    protocol: str
    reached: bool = False


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


def _socket_in(netns: str, kind: int) -> socket.socket:
    with netlink.entered(netns):
        sock = socket.socket(socket.AF_INET, kind)
    sock.setblocking(False)
    return sock


def _start_icmp(deployment: Deployment, probes: list[Probe]) -> list[tuple[Probe, subprocess.Popen]]:
    running = []
    for probe in probes:
        argv = ["ping", "-n", "-q", "-c", "1", "-W", str(int(PROBE_TIMEOUT_S)), deployment.container(probe.destination).ip]
        running.append((probe, subprocess.Popen(proc.in_netns(deployment.container(probe.source).netns, argv),
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
    return running


def _finish_icmp(running: list[tuple[Probe, subprocess.Popen]]) -> None:
    for probe, process in running:
        probe.reached = process.wait(timeout=PROBE_TIMEOUT_S + 10) == 0


def _probe_sockets(deployment: Deployment, tcp: list[Probe], udp: list[Probe]) -> None:
    """TCP handshakes and UDP datagrams for all probes at once, in one selector loop."""
    selector = selectors.DefaultSelector()
    opened: list[socket.socket] = []
    try:
        destinations = {p.destination for p in tcp + udp}
        udp_listeners: dict[str, socket.socket] = {}
        for name in destinations:
            container = deployment.container(name)
            listener = _socket_in(container.netns, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((container.ip, PROBE_PORT))
            listener.listen(64)
            receiver = _socket_in(container.netns, socket.SOCK_DGRAM)
            receiver.bind((container.ip, PROBE_PORT))
            opened += [listener, receiver]
            selector.register(listener, selectors.EVENT_READ, ("accept", name))
            selector.register(receiver, selectors.EVENT_READ, ("datagram", name))
            udp_listeners[name] = receiver
        pending_tcp: dict[socket.socket, Probe] = {}
        for probe in tcp:
            client = _socket_in(deployment.container(probe.source).netns, socket.SOCK_STREAM)
            opened.append(client)
            code = client.connect_ex((deployment.container(probe.destination).ip, PROBE_PORT))
            if code not in (0, errno.EINPROGRESS):
                continue  # refused at once (e.g. no route): not reached
            pending_tcp[client] = probe
            selector.register(client, selectors.EVENT_WRITE, ("connect", probe))
        by_tag: dict[bytes, Probe] = {}
        for index, probe in enumerate(udp):
            sender = _socket_in(deployment.container(probe.source).netns, socket.SOCK_DGRAM)
            opened.append(sender)
            tag = f"seconetbench-probe-{index}".encode()
            by_tag[tag] = probe
            try:
                sender.sendto(tag, (deployment.container(probe.destination).ip, PROBE_PORT))
            except OSError:
                pass  # unreachable at once: not reached
        deadline = time.monotonic() + PROBE_TIMEOUT_S
        while time.monotonic() < deadline:
            if all(p.reached for p in tcp + udp):
                break
            for key, _ in selector.select(timeout=max(0.0, deadline - time.monotonic())):
                what, subject = key.data
                if what == "accept":
                    try:
                        connection, _ = key.fileobj.accept()
                        connection.close()
                    except BlockingIOError:
                        pass
                elif what == "datagram":
                    try:
                        tag, _ = key.fileobj.recvfrom(256)
                    except BlockingIOError:
                        continue
                    if tag in by_tag:
                        by_tag[tag].reached = True
                elif what == "connect":
                    selector.unregister(key.fileobj)
                    subject.reached = key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    finally:
        selector.close()
        for sock in opened:
            sock.close()


def check_whitelist(backend: Any, deployment: Deployment) -> dict[str, Any]:
    """Probe the plan over ICMP, TCP and UDP; return the result for meta.json."""
    plan = probe_plan(deployment)
    started = time.monotonic()
    probes = {protocol: [Probe(s, d, e, protocol) for s, d, e in plan] for protocol in PROTOCOLS}
    pings = _start_icmp(deployment, probes["icmp"])  # their timeout runs alongside the socket probes
    _probe_sockets(deployment, probes["tcp"], probes["udp"])
    _finish_icmp(pings)
    failures = []
    for probe in (p for protocol in PROTOCOLS for p in probes[protocol]):
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
    }
