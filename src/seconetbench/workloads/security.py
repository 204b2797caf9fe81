"""Security verification workloads: isolation, confidentiality and spoofing (docs/security.md).

Each writes what it observed into the raw target (``probes.json``, the underlay capture
``underlay.pcap``) and meta.json; :meth:`parse` turns that into rows of the ``security`` table,
one per probe, and judges each one (the ``verdict`` column). Every probe is bounded in count and
time and addresses only the setup's own namespaces.

- **isolation**: from each of the first ``attackers`` containers to every other container: ICMP
  echo, a TCP handshake and a UDP datagram per port of ``ports``, and an ARP who-has.
- **confidentiality** (multi-host): the sender of every pair sends ``datagrams`` UDP datagrams
  and as many TCP writes filled with a marker naming the pair, while tcpdump captures the
  underlay; the capture is searched for the marker and the pair's inner addresses.
- **spoofing** (multi-host): packets crafted on the underlay claim to come from the pair's
  sender (on the other host) and go to a socket of the sink; for a plain tunnel they carry the
  tunnel's encapsulation, for a VPN they are unauthenticated UDP to the VPN's port.

On single-host setups confidentiality and spoofing have no underlay: they record one
``not_applicable`` row per pair instead of failing, since the workflow runs every workload on
every setup.
"""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seconetbench import proc, security, technology
from seconetbench.backends.base import Deployment
from seconetbench.errors import WorkloadError
from seconetbench.tunnels import _common as tunnels
from seconetbench.workloads import register
from seconetbench.workloads.base import RunContext, Workload

if TYPE_CHECKING:
    import pandas as pd

    from seconetbench.spec import SetupSpec

PROBES_FILE = "probes.json"
PCAP_FILE = "underlay.pcap"
TCPDUMP_STDERR = "tcpdump.stderr"  # ends with tcpdump's counts: captured, received, dropped
MARKER_PORT = 47997  # confidentiality: the sink's TCP and UDP port
GENUINE_ATTEMPTS = 3
SPOOF_PORT = 47996  # spoofing: the sink's UDP socket
SPOOF_MAC = bytes.fromhex("020000005c0b")  # locally administered: the forger's own address
TCPDUMP_READY_S = 10.0


def whitelist_enforced(setup_filter: str) -> bool:
    return getattr(technology.get("filter", setup_filter), "enforces_whitelist", True)


def rows_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The table rows with identity ``pair`` (source-destination) and ``flow`` (probe number
    within that pair, from 1)."""
    import pandas as pd  # here: validating a config reads this class, not its parsing

    frame = pd.DataFrame(rows)
    frame.insert(0, "pair", frame["source"] + "-" + frame["destination"])
    frame.insert(1, "flow", frame.groupby("pair").cumcount() + 1)
    return frame


def not_applicable(deployment: Deployment, check: str) -> dict[str, Any]:
    return {"applicable": False, "reason": f"{check} needs an underlay between hosts; {deployment.setup.id} is single-host",
            "pairs": [list(p) for p in deployment.pairs]}


def not_applicable_rows(meta_run: dict[str, Any], check: str) -> pd.DataFrame:
    return rows_frame([{"check": check, "source": s, "destination": d, "protocol": "none", "port": None,
                        "whitelisted": None, "observed": False, "verdict": "not_applicable",
                        "detail": meta_run["reason"]} for s, d in meta_run["pairs"]])


class SecurityWorkload(Workload):
    table = "security"
    check_name: str
    needs = ("security_workloads",)

    def parse(self, raw_dir: Path, meta: dict[str, Any]) -> pd.DataFrame:
        run = meta["workload_run"]
        if not run.get("applicable", True):
            return not_applicable_rows(run, self.kind)
        return rows_frame(self.rows(raw_dir, run))

    def rows(self, raw_dir: Path, run: dict[str, Any]) -> list[dict[str, Any]]:
        raise NotImplementedError


def multi_host_drivers(setup: SetupSpec) -> dict[str, float]:
    """Cost drivers of a check of the underlay: single-host setups record not_applicable at once."""
    multi = setup.scenario == "multi"
    return {"multi_host": float(multi), "pairs": setup.containers // 2 if multi else 0}


# ------------------------------------------------------------------------------------ isolation
def isolation_verdict(protocol: str, whitelisted: bool, reached: bool) -> str:
    """ok, violation (a non-whitelisted pair reached) or break (a whitelisted pair blocked).
    ARP is not governed by L3/L4 filters: an answer from a non-whitelisted neighbour is
    ``visible`` (exposed on the shared segment), never a violation."""
    if protocol == "arp":
        return "visible" if reached and not whitelisted else "ok"
    if reached and not whitelisted:
        return "violation"
    if whitelisted and not reached:
        return "break"
    return "ok"


@register
class Isolation(SecurityWorkload):
    kind = "isolation"  # no tools: every probe is a socket of this process (security.probe_ports)

    def attackers(self, deployment: Deployment) -> list[str]:
        return [c.name for c in deployment.containers[:self.params["attackers"]]]

    def cost_drivers(self, setup: SetupSpec) -> dict[str, float]:
        # every attacker probes every other container
        return {"destinations": min(self.params["attackers"], setup.containers) * (setup.containers - 1)}

    def run(self, ctx: RunContext) -> dict[str, Any]:
        deployment = ctx.deployment
        names = [c.name for c in deployment.containers]
        plan = [(a, d, deployment.allowed(a, d)) for a in self.attackers(deployment) for d in names if d != a]
        started = time.monotonic()
        probes = security.probe_ports(deployment, plan, self.params["ports"], self.params["protocols"],
                                      self.params["timeout_s"])
        duration = time.monotonic() - started
        records = [{"source": p.source, "destination": p.destination, "protocol": p.protocol, "port": p.port,
                    "whitelisted": p.expected, "reached": p.reached} for p in probes]
        (ctx.out_dir / PROBES_FILE).write_text(json.dumps(records, indent=0))
        return {"attackers": self.attackers(deployment), "probes": len(records), "file": PROBES_FILE,
                "filter_enforces_whitelist": whitelist_enforced(deployment.setup.filter),
                "duration_s": round(duration, 3)}

    def rows(self, raw_dir: Path, run: dict[str, Any]) -> list[dict[str, Any]]:
        rows = []
        for r in json.loads((raw_dir / run["file"]).read_text()):
            verdict = isolation_verdict(r["protocol"], r["whitelisted"], r["reached"])
            what = "answered" if r["reached"] else "no answer"
            rows.append({"check": "isolation", "source": r["source"], "destination": r["destination"],
                         "protocol": r["protocol"], "port": r["port"], "whitelisted": r["whitelisted"],
                         "observed": r["reached"], "verdict": verdict,
                         "detail": f"{what}; pair {'whitelisted' if r['whitelisted'] else 'not whitelisted'}"})
        return rows


# ------------------------------------------------------------------------------ confidentiality
def marker(sender: str, sink: str, protocol: str) -> bytes:
    """The marker a pair's *protocol* traffic is filled with (names the pair, so hits are attributable)."""
    return f"SECONETBENCH-MARK-{sender}-{sink}-{protocol}|".encode()


def filled(mark: bytes, size: int) -> bytes:
    return (mark * (size // len(mark) + 1))[:size]


def tunnel_encrypted(deployment: Deployment) -> bool:
    return technology.get("tunnel", deployment.setup.tunnel).wire_of(deployment).encrypted


def send_marked(deployment: Deployment, sender: str, sink: str, count: int, size: int,
                timeout_s: float) -> dict[str, int]:
    """*count* UDP datagrams and *count* TCP writes of *size* bytes filled with the pair's
    markers, from *sender* to a socket of *sink*; how many arrived."""
    source, destination = deployment.container(sender), deployment.container(sink)
    address = (destination.ip, MARKER_PORT)
    opened = [security.socket_in(destination, socket.SOCK_DGRAM),
              security.socket_in(destination, socket.SOCK_STREAM),
              security.socket_in(source, socket.SOCK_DGRAM),
              security.socket_in(source, socket.SOCK_STREAM)]
    receiver, listener, udp_out, tcp_out = opened
    try:
        for sock in opened:
            sock.settimeout(timeout_s)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        receiver.bind(address)
        listener.bind(address)
        listener.listen(1)
        for _ in range(count):
            udp_out.sendto(filled(marker(sender, sink, "udp"), size), address)
        datagrams = 0
        deadline = time.monotonic() + timeout_s
        while datagrams < count and time.monotonic() < deadline:
            try:
                datagrams += receiver.recv(65536).startswith(marker(sender, sink, "udp"))
            except TimeoutError:
                break
        received = 0
        try:
            tcp_out.connect(address)
            connection, _ = listener.accept()
            opened.append(connection)
            connection.settimeout(timeout_s)
            tcp_out.sendall(filled(marker(sender, sink, "tcp"), size) * count)
            while received < size * count:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                received += len(chunk)
        except OSError:
            pass  # timed out or refused: what arrived is counted
        return {"udp_sent": count, "udp_received": datagrams, "tcp_bytes_sent": size * count,
                "tcp_bytes_received": received}
    finally:
        for sock in opened:
            sock.close()


def search_capture(pcap: bytes, pairs: list[dict[str, Any]]) -> dict[tuple[str, str, str], int]:
    """Per (sender, sink, what): packets of the capture where the pair's UDP or TCP marker
    appears (what = udp, tcp) or the pair's inner addresses do (what = ipv4: in the outer
    header, as without a tunnel, or anywhere inside the packet, as in a plain encapsulation)."""
    packets, _ = tunnels.read_pcap(pcap)
    hits = {}
    for pair in pairs:
        s, d = pair["sender"], pair["sink"]
        a, b = socket.inet_aton(pair["sender_ip"]), socket.inet_aton(pair["sink_ip"])
        for what in ("udp", "tcp"):
            hits[(s, d, what)] = sum(marker(s, d, what) in p.payload for p in packets)
        hits[(s, d, "ipv4")] = sum({p.source, p.destination} == {a, b} or a + b in p.payload or b + a in p.payload
                                   for p in packets)
    return hits


def capture_drops(stderr: str) -> int | None:
    """The packets tcpdump says it lost ("N packets dropped by kernel", and "... by interface"
    where the driver counts them); None when it printed no counts (it did not end normally, so
    its losses are unknown)."""
    if not re.search(r"^\d+ packets dropped by kernel$", stderr, flags=re.M):
        return None
    return sum(int(n) for n in re.findall(r"^(\d+) packets dropped by (?:kernel|interface)$", stderr, flags=re.M))


def carrier_packets(pcap: bytes, run: dict[str, Any]) -> int:
    """Captured IPv4 packets that can carry the pairs' traffic: between two hosts' underlay
    addresses (an encapsulation) or between a pair's own addresses (no encapsulation)."""
    packets, _ = tunnels.read_pcap(pcap)
    hosts = {socket.inet_aton(ip) for ip in run["underlay_ips"]}
    pairs = [{socket.inet_aton(p["sender_ip"]), socket.inet_aton(p["sink_ip"])} for p in run["pairs"]]
    return sum((p.source in hosts and p.destination in hosts and p.source != p.destination)
               or {p.source, p.destination} in pairs for p in packets)


def capture_doubt(raw_dir: Path, run: dict[str, Any]) -> str | None:
    """Why the capture cannot prove that nothing readable crossed the underlay (None when it
    can). The positive control: tcpdump lost no packet, and the capture holds at least as many
    carrier packets as marker datagrams were delivered across the underlay."""
    stderr = raw_dir / run["capture"].get("stderr", TCPDUMP_STDERR)
    drops = capture_drops(stderr.read_text(errors="replace")) if stderr.exists() else None
    if drops is None:
        return f"tcpdump printed no drop count ({stderr.name}): its losses are unknown"
    if drops:
        return f"tcpdump dropped {drops} packets"
    if not run.get("underlay_ips"):
        return "no underlay addresses recorded (measured before the positive control); measure again"
    delivered = sum(p["udp_received"] for p in run["pairs"])
    carried = carrier_packets((raw_dir / run["capture"]["file"]).read_bytes(), run)
    if carried < delivered:
        return f"the capture holds {carried} carrier packets, fewer than the {delivered} marker datagrams delivered"
    return None


@register
class Confidentiality(SecurityWorkload):
    kind = "confidentiality"
    tools = ("tcpdump",)
    needs = ("security_workloads", "observe_hosts")  # captures the underlay

    def cost_drivers(self, setup: SetupSpec) -> dict[str, float]:
        return multi_host_drivers(setup)

    def run(self, ctx: RunContext) -> dict[str, Any]:
        deployment = ctx.deployment
        if deployment.setup.scenario != "multi":
            return not_applicable(deployment, self.kind)
        p = self.params
        pcap, err = ctx.out_dir / PCAP_FILE, ctx.out_dir / TCPDUMP_STDERR
        argv = ["tcpdump", "-i", "any", "-nn", "-U", "--immediate-mode", "-s", str(p["snaplen_bytes"]),
                "-c", str(p["capture_packets"]), "-w", str(pcap)]
        tcpdump = proc.spawn_in(deployment.underlay.switch_netns, argv, ctx.out_dir / "tcpdump.stdout", err,
                                ctx.registry)
        pairs = []
        try:
            tunnels.wait_for("tcpdump listening on the underlay", lambda: b"listening on" in err.read_bytes(),
                             timeout=TCPDUMP_READY_S, hint=f"see {err}")
            for sender, sink in deployment.pairs:
                delivered = send_marked(deployment, sender, sink, p["datagrams"], p["payload_bytes"], p["timeout_s"])
                pairs.append({"sender": sender, "sink": sink, "sender_ip": deployment.container(sender).ip,
                              "sink_ip": deployment.container(sink).ip, **delivered})
            # the event the positive control needs: the capture holds all the marker traffic
            # (UDP and TCP); if it never does, the control says inconclusive, so no failure here
            tunnels.capture_flushed(deployment, pcap)
            if tcpdump.poll() is not None:
                raise WorkloadError(f"{ctx.label}: the capture ended (tcpdump exited {tcpdump.returncode}: "
                                    f"{err.read_text().strip()[-200:]}) before the marker traffic did; a search "
                                    "of it would miss markers. Raise capture_packets")
        finally:
            proc.terminate([tcpdump])
            ctx.registry.forget(tcpdump.pid)
        lost = [f"{r['sender']}->{r['sink']}" for r in pairs if not r["udp_received"] or not r["tcp_bytes_received"]]
        if lost:
            raise WorkloadError(f"{ctx.label}: the marker traffic did not arrive for {lost}; a capture without "
                                "it proves nothing. Check that the setup passes its pairs' traffic (seconetbench deploy)")
        return {"applicable": True, "tunnel": deployment.setup.tunnel, "encrypted": tunnel_encrypted(deployment),
                "capture": {"file": PCAP_FILE, "stderr": TCPDUMP_STDERR,
                            "where": f"{deployment.underlay.switch_netns} (tcpdump -i any)", "argv": argv},
                "underlay_ips": [h.underlay_ip for h in deployment.hosts if h.underlay_ip], "port": MARKER_PORT, "pairs": pairs}

    def rows(self, raw_dir: Path, run: dict[str, Any]) -> list[dict[str, Any]]:
        hits = search_capture((raw_dir / run["capture"]["file"]).read_bytes(), run["pairs"])
        doubt = capture_doubt(raw_dir, run)  # a marker found is proof; its absence needs the control
        rows = []
        for pair in run["pairs"]:
            for what in ("udp", "tcp", "ipv4"):
                count = hits[(pair["sender"], pair["sink"], what)]
                if run["encrypted"]:
                    verdict = "violation" if count else "ok"
                else:
                    verdict = "visible" if count else "ok"
                subject = "inner addresses" if what == "ipv4" else f"{what} marker"
                sent = ("" if what == "ipv4" else
                        f"; {pair['udp_received']}/{pair['udp_sent']} datagrams delivered" if what == "udp" else
                        f"; {pair['tcp_bytes_received']}/{pair['tcp_bytes_sent']} bytes delivered")
                if verdict == "ok" and doubt:
                    verdict, sent = "inconclusive", f"{sent}; inconclusive: {doubt}"
                rows.append({"check": "confidentiality", "source": pair["sender"], "destination": pair["sink"],
                             "protocol": what, "port": None if what == "ipv4" else run["port"], "whitelisted": True,
                             "observed": count > 0, "verdict": verdict,
                             "detail": f"{subject} in {count} captured packets{sent}"})
        return rows


# ------------------------------------------------------------------------------------- spoofing
def spoof_recipe(deployment: Deployment) -> tuple[str, int | None]:
    """How to forge a packet for the setup's tunnel: (recipe, outer port)."""
    wire = technology.get("tunnel", deployment.setup.tunnel).wire_of(deployment)
    facts = deployment.facts.get("tunnel") or {}
    udp_ports = [port for protocol, port in wire.flows if protocol == tunnels.UDP and port is not None]
    if not wire.flows:
        return "plain", None
    if "vni" in facts:
        return "vxlan", facts["port"]
    if wire.encrypted and udp_ports:
        return "udp-to-vpn", udp_ports[0]
    for protocol, name in ((tunnels.IPIP, "ipip"), (tunnels.GRE, "gre")):
        if any(p == protocol for p, _ in wire.flows):
            return name, None
    raise WorkloadError(f"no spoofing recipe for tunnel '{deployment.setup.tunnel}' ({wire.label}); "
                        "add one to workloads/security.spoof_frame")


def spoof_frame(deployment: Deployment, recipe: str, port: int | None, sender: str, sink: str, tag: bytes) -> bytes:
    """An Ethernet frame for the sink's host, claiming to come from *sender* (and its host)."""
    source, destination = deployment.container(sender), deployment.container(sink)
    claimed, target = deployment.host_of(source), deployment.host_of(destination)
    inner = security.ipv4(source.ip, destination.ip, tunnels.UDP, security.udp(SPOOF_PORT, SPOOF_PORT, tag))
    if recipe == "plain":
        packet = inner
    elif recipe == "vxlan":
        device = deployment.facts["tunnel"]["device"]
        vxlan = bytes([0x08, 0, 0, 0]) + deployment.facts["tunnel"]["vni"].to_bytes(3, "big") + b"\x00"
        frame = security.ethernet(security.mac_of(target.netns, device), SPOOF_MAC, security.ETH_P_IP, inner)
        packet = security.ipv4(claimed.underlay_ip, target.underlay_ip, tunnels.UDP,
                               security.udp(port, port, vxlan + frame))
    elif recipe == "udp-to-vpn":
        packet = security.ipv4(claimed.underlay_ip, target.underlay_ip, tunnels.UDP, security.udp(port, port, inner))
    elif recipe == "ipip":
        packet = security.ipv4(claimed.underlay_ip, target.underlay_ip, tunnels.IPIP, inner)
    else:  # gre
        packet = security.ipv4(claimed.underlay_ip, target.underlay_ip, tunnels.GRE, b"\x00\x00\x08\x00" + inner)
    return security.ethernet(security.mac_of(target.netns, target.underlay_dev), SPOOF_MAC, security.ETH_P_IP, packet)


def received_tags(sock: socket.socket, wanted: set[bytes], wait_s: float) -> set[bytes]:
    got: set[bytes] = set()
    deadline = time.monotonic() + wait_s
    while got != wanted and time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(2048)
        except TimeoutError:
            break
        got |= {data} & wanted
    return got


@register
class Spoofing(SecurityWorkload):
    kind = "spoofing"
    needs = ("security_workloads", "observe_hosts")  # injects on the underlay

    def cost_drivers(self, setup: SetupSpec) -> dict[str, float]:
        return multi_host_drivers(setup)

    def run(self, ctx: RunContext) -> dict[str, Any]:
        deployment = ctx.deployment
        if deployment.setup.scenario != "multi":
            return not_applicable(deployment, self.kind)
        recipe, port = spoof_recipe(deployment)
        results = []
        for sender, sink in deployment.pairs:
            pair = deployment.pair_name(sender, sink)
            source, destination = deployment.container(sender), deployment.container(sink)
            receiver = security.socket_in(destination, socket.SOCK_DGRAM)
            genuine = security.socket_in(source, socket.SOCK_DGRAM)
            try:
                receiver.bind((destination.ip, SPOOF_PORT))
                control = f"seconetbench-genuine-{pair}".encode()
                # UDP: one lost control datagram is no verdict on the pair, three in a row are
                for attempt in range(1, GENUINE_ATTEMPTS + 1):
                    genuine.sendto(control, (destination.ip, SPOOF_PORT))
                    if received_tags(receiver, {control}, self.params["wait_s"]):
                        break
                else:
                    raise WorkloadError(f"{ctx.label}: {pair}: none of {GENUINE_ATTEMPTS} genuine datagrams reached the "
                                        "sink's socket, so a rejected spoof would prove nothing; check the setup's pair "
                                        "traffic")
                tags = [f"seconetbench-spoof-{pair}-{n}".encode() for n in range(self.params["packets"])]
                frames = [spoof_frame(deployment, recipe, port, sender, sink, tag) for tag in tags]
                security.send_frames(deployment.underlay.switch_netns, deployment.underlay.ports[destination.host],
                                     frames)
                accepted = received_tags(receiver, set(tags), self.params["wait_s"])
            finally:
                receiver.close()
                genuine.close()
            results.append({"sender": sender, "sink": sink, "recipe": recipe, "port": port,
                            "sent": len(tags), "accepted": len(accepted), "genuine_attempts": attempt,
                            "injected_at": deployment.underlay.ports[destination.host]})
        return {"applicable": True, "tunnel": deployment.setup.tunnel, "encrypted": tunnel_encrypted(deployment),
                "pairs": results}

    def rows(self, raw_dir: Path, run: dict[str, Any]) -> list[dict[str, Any]]:
        rows = []
        for r in run["pairs"]:
            accepted = r["accepted"] > 0
            verdict = ("violation" if accepted else "ok") if run["encrypted"] else ("expected" if accepted else "ok")
            rows.append({"check": "spoofing", "source": r["sender"], "destination": r["sink"],
                         "protocol": r["recipe"], "port": r["port"], "whitelisted": True, "observed": accepted,
                         "verdict": verdict,
                         "detail": f"{r['accepted']}/{r['sent']} forged packets reached the sink's socket "
                                   f"(injected at {r['injected_at']})"})
        return rows

