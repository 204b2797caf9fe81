"""The security workloads without a testbed: config defaults, verdicts, crafted packets, the
capture search, parsing raw targets into the security table, and the security matrix figure."""

from __future__ import annotations

import json
import socket
import struct

import pandas as pd
import pytest

from seconetbench import config, figures, security, tables
from seconetbench.figures import security as security_figures
from seconetbench.spec import WorkloadSpec
from seconetbench.workloads import get_workload
from seconetbench.workloads import security as workloads
from tests.conftest import SHARED_FIXTURES
from tests.unit import tablegen

pytestmark = pytest.mark.unit


def validated(workload: dict) -> dict:
    cfg = config.validate({"sweep": {"single": {"solutions": ["bridge"], "filters": ["none"], "containers": [2]},
                                     "workloads": ["w"]}, "workloads": {"w": workload}})
    return cfg["workloads"]["w"]


def workload(kind: str, **params):
    spec = validated({"kind": kind, **params})
    return get_workload(WorkloadSpec(name="w", kind=spec.pop("kind"), params=spec))


def meta(run: dict, kind: str) -> dict:
    return {"workload_run": run, "workload": {"name": "w", "kind": kind}}


# ---------------------------------------------------------------------------------- config
def test_defaults_fill_every_key_and_kinds_map_to_the_security_table():
    assert validated({"kind": "isolation"}) == {
        "kind": "isolation", "attackers": 2, "ports": [5201, 20000, 20001, 9000, 10001, 22, 53, 80, 443, 8080],
        "protocols": ["icmp", "tcp", "udp", "arp"], "timeout_s": 1}
    assert validated({"kind": "confidentiality"})["capture_packets"] == 4000
    assert validated({"kind": "spoofing"}) == {"kind": "spoofing", "packets": 3, "wait_s": 1}
    for kind in ("isolation", "confidentiality", "spoofing"):
        assert workload(kind).table == "security"


@pytest.mark.parametrize("bad", [{"kind": "isolation", "protocols": ["sctp"]}, {"kind": "spoofing", "packets": 1000},
                                 {"kind": "confidentiality", "capture": 5}])
def test_bad_keys_are_refused(bad):
    with pytest.raises(config.ConfigError):
        validated(bad)


# --------------------------------------------------------------------------------- verdicts
@pytest.mark.parametrize(("protocol", "whitelisted", "reached", "verdict"), [
    ("tcp", False, True, "violation"), ("tcp", True, False, "break"), ("udp", True, True, "ok"),
    ("icmp", False, False, "ok"), ("arp", False, True, "visible"), ("arp", True, False, "ok"),
])
def test_isolation_verdict(protocol, whitelisted, reached, verdict):
    assert workloads.isolation_verdict(protocol, whitelisted, reached) == verdict


# ------------------------------------------------------------------------- crafted packets
def test_ipv4_header_checksum_verifies_and_fields_are_in_place():
    packet = security.ipv4("198.19.2.1", "198.19.1.1", 17, security.udp(1, 2, b"abc"))
    assert security.checksum(packet[:20]) == 0  # a correct header sums to 0
    version, _, length, _, _, ttl, protocol, _, src, dst = struct.unpack("!BBHHHBBH4s4s", packet[:20])
    assert (version, length, ttl, protocol) == (0x45, 31, 64, 17)
    assert (socket.inet_ntoa(src), socket.inet_ntoa(dst)) == ("198.19.2.1", "198.19.1.1")
    assert struct.unpack("!HHHH", packet[20:28]) == (1, 2, 11, 0)


def test_checksum_matches_rfc1071_example():
    # RFC 1071 section 3: the sum of 0001 f203 f4f5 f6f7 is ddf2 (one's complement: 220d)
    assert security.checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


def test_arp_request_is_a_broadcast_who_has():
    frame = security.arp_request(b"\x02" * 6, "198.19.1.1", "198.19.1.2")
    assert frame[:6] == b"\xff" * 6 and frame[12:14] == b"\x08\x06"
    assert struct.unpack("!H", frame[20:22])[0] == 1  # request
    assert frame[28:32] == socket.inet_aton("198.19.1.1") and frame[38:42] == socket.inet_aton("198.19.1.2")


# ------------------------------------------------------------------------- capture search
def pcap(*ip_packets: bytes) -> bytes:
    """A classic pcap (Ethernet) holding *ip_packets*."""
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for ip in ip_packets:
        frame = security.ethernet(b"\x00" * 6, b"\x00" * 6, 0x0800, ip)
        out += struct.pack("<IIII", 0, 0, len(frame), len(frame)) + frame
    return out


PAIR = {"sender": "c01", "sink": "c02", "sender_ip": "198.19.1.1", "sink_ip": "198.19.2.1",
        "udp_sent": 2, "udp_received": 2, "tcp_bytes_sent": 200, "tcp_bytes_received": 200}


def test_search_finds_a_marker_inside_an_encapsulation_and_nothing_in_ciphertext():
    inner = security.ipv4("198.19.1.1", "198.19.2.1", 17,
                          security.udp(5, 6, workloads.filled(workloads.marker("c01", "c02", "udp"), 100)))
    vxlan = security.ipv4("198.18.0.1", "198.18.0.2", 17, security.udp(4789, 4789, b"\x08" + b"\x00" * 7 + b"\x00" * 14 + inner))
    hits = workloads.search_capture(pcap(vxlan, vxlan), [PAIR])
    assert hits[("c01", "c02", "udp")] == 2 and hits[("c01", "c02", "tcp")] == 0
    assert hits[("c01", "c02", "ipv4")] == 2
    cipher = security.ipv4("198.18.0.1", "198.18.0.2", 17, security.udp(51820, 51820, bytes(range(200))))
    assert all(v == 0 for v in workloads.search_capture(pcap(cipher), [PAIR]).values())


def test_search_sees_inner_addresses_in_the_outer_header_without_a_tunnel():
    plain = security.ipv4("198.19.2.1", "198.19.1.1", 6, b"\x00" * 20)
    assert workloads.search_capture(pcap(plain), [PAIR])[("c01", "c02", "ipv4")] == 1


# ------------------------------------------------------------------------------- parsing
TCPDUMP = SHARED_FIXTURES / "tcpdump"  # tcpdump 4.99.3's standard error, recorded


def carriers(count: int) -> list[bytes]:
    """*count* tunnel packets between the hosts' underlay addresses, of unreadable payload."""
    return [security.ipv4("198.18.0.1", "198.18.0.2", 17, security.udp(51820, 51820, bytes(range(64))))] * count


def confidential_target(tmp_path, packets: list[bytes], stderr: str | None = "no_drops.stderr") -> dict:
    (tmp_path / "underlay.pcap").write_bytes(pcap(*packets))
    if stderr:
        (tmp_path / "tcpdump.stderr").write_text((TCPDUMP / stderr).read_text())
    return {"applicable": True, "encrypted": True, "port": 47997, "underlay_ips": ["198.18.0.1", "198.18.0.2"],
            "capture": {"file": "underlay.pcap", "stderr": "tcpdump.stderr"}, "pairs": [PAIR]}


def test_tcpdump_drop_counts_are_read_from_its_recorded_stderr():
    assert workloads.capture_drops((TCPDUMP / "no_drops.stderr").read_text()) == 0
    assert workloads.capture_drops((TCPDUMP / "kernel_drops.stderr").read_text()) == 71026
    # killed before it printed its counts: the losses are unknown
    assert workloads.capture_drops((TCPDUMP / "killed.stderr").read_text()) is None
    both = "3 packets captured\n5 packets received by filter\n1 packet dropped by kernel\n"
    assert workloads.capture_drops(both.replace("1 packet ", "1 packets ") + "2 packets dropped by interface\n") == 3


def test_confidentiality_ok_needs_the_positive_control(tmp_path):
    rows = workload("confidentiality").parse(tmp_path, meta(confidential_target(tmp_path, carriers(2)), "confidentiality"))
    assert list(rows["verdict"]) == ["ok", "ok", "ok"]
    # fewer carrier packets than the 2 datagrams delivered: the capture missed traffic
    run = confidential_target(tmp_path, carriers(1))
    rows = workload("confidentiality").parse(tmp_path, meta(run, "confidentiality"))
    assert list(rows["verdict"]) == ["inconclusive"] * 3
    assert "1 carrier packets, fewer than the 2 marker datagrams" in rows["detail"][0]
    for stderr, why in [("kernel_drops.stderr", "tcpdump dropped 71026 packets"),
                        ("killed.stderr", "no drop count"), (None, "no drop count")]:
        (tmp_path / "tcpdump.stderr").unlink(missing_ok=True)
        rows = workload("confidentiality").parse(
            tmp_path, meta(confidential_target(tmp_path, carriers(2), stderr), "confidentiality"))
        assert list(rows["verdict"]) == ["inconclusive"] * 3 and why in rows["detail"][0], stderr
    # a target measured before the control (no underlay addresses) proves no absence
    old = {k: v for k, v in confidential_target(tmp_path, carriers(2)).items() if k != "underlay_ips"}
    assert set(workload("confidentiality").parse(tmp_path, meta(old, "confidentiality"))["verdict"]) == {"inconclusive"}


def test_a_marker_found_is_a_verdict_even_when_the_capture_dropped_packets(tmp_path):
    inner = security.ipv4("198.19.1.1", "198.19.2.1", 6, workloads.filled(workloads.marker("c01", "c02", "tcp"), 80))
    run = confidential_target(tmp_path, [security.ipv4("198.18.0.1", "198.18.0.2", 17, security.udp(1, 2, inner))],
                              "kernel_drops.stderr")
    rows = workload("confidentiality").parse(tmp_path, meta(run, "confidentiality"))
    assert list(rows["verdict"]) == ["inconclusive", "violation", "violation"]


def test_confidentiality_parse_judges_vpn_hits_as_violations_and_plain_hits_as_visible(tmp_path):
    inner = security.ipv4("198.19.1.1", "198.19.2.1", 6, workloads.filled(workloads.marker("c01", "c02", "tcp"), 80))
    run = confidential_target(tmp_path, [security.ipv4("198.18.0.1", "198.18.0.2", 17, security.udp(1, 2, inner))]
                              + carriers(1))
    rows = workload("confidentiality").parse(tmp_path, meta(run, "confidentiality"))
    assert list(rows["protocol"]) == ["udp", "tcp", "ipv4"]
    assert list(rows["verdict"]) == ["ok", "violation", "violation"]
    assert list(rows["flow"]) == [1, 2, 3] and set(rows["pair"]) == {"c01-c02"}
    plain = workload("confidentiality").parse(tmp_path, meta({**run, "encrypted": False}, "confidentiality"))
    assert list(plain["verdict"]) == ["ok", "visible", "visible"]


def test_isolation_parse_writes_a_conforming_table(tmp_path):
    probes = [{"source": "c01", "destination": "c03", "protocol": "tcp", "port": 80, "whitelisted": False, "reached": True},
              {"source": "c01", "destination": "c03", "protocol": "icmp", "port": None, "whitelisted": False, "reached": False},
              {"source": "c01", "destination": "c02", "protocol": "udp", "port": 53, "whitelisted": True, "reached": False}]
    (tmp_path / "probes.json").write_text(json.dumps(probes))
    rows = workload("isolation").parse(tmp_path, meta({"file": "probes.json"}, "isolation"))
    assert list(rows["verdict"]) == ["violation", "ok", "break"]
    assert list(zip(rows["pair"], rows["flow"])) == [("c01-c03", 1), ("c01-c03", 2), ("c01-c02", 1)]
    identity = {"setup": "single-bridge-none-c4", "scenario": "single", "solution": "bridge", "filter": "none",
                "tunnel": "none", "implementation": "kernel", "containers": 4, "workload": "w", "rep": 1,
                "group": "g1"}
    table = tables.conform(rows.assign(**identity), "security")
    assert table.column("port").to_pylist() == [80, None, 53]


def test_spoofing_parse_and_not_applicable_rows(tmp_path):
    pairs = [{"sender": "c01", "sink": "c02", "recipe": "vxlan", "port": 4789, "sent": 3, "accepted": 3,
              "injected_at": "scnx-s2"}]
    plain = workload("spoofing").parse(tmp_path, meta({"applicable": True, "encrypted": False, "pairs": pairs}, "spoofing"))
    vpn = workload("spoofing").parse(tmp_path, meta({"applicable": True, "encrypted": True, "pairs": pairs}, "spoofing"))
    assert list(plain["verdict"]) == ["expected"] and list(vpn["verdict"]) == ["violation"]
    single = {"applicable": False, "reason": "single-host", "pairs": [["c01", "c02"], ["c03", "c04"]]}
    rows = workload("spoofing").parse(tmp_path, meta(single, "spoofing"))
    assert list(rows["verdict"]) == ["not_applicable"] * 2 and rows["whitelisted"].isna().all()


# -------------------------------------------------------------------------------- figure
def security_table() -> pd.DataFrame:
    rows = []
    for setup, verdicts in {"single-bridge-none-c2": {"isolation": ["violation", "ok"], "spoofing": ["not_applicable"]},
                            "single-bridge-iptables-c2": {"isolation": ["ok", "ok"], "spoofing": ["not_applicable"]},
                            "multi-vxlan-none-c4": {"confidentiality": ["visible", "ok"], "spoofing": ["expected"]},
                            "multi-wireguard-none-c4": {"confidentiality": ["ok"], "spoofing": ["ok"]}}.items():
        scenario, solution, filter_, tunnel, containers = tablegen.setup_parts(setup)
        for check, found in verdicts.items():
            for n, verdict in enumerate(found, start=1):
                rows.append({"setup": setup, "scenario": scenario, "solution": solution, "filter": filter_,
                             "tunnel": tunnel, "implementation": "kernel", "containers": containers, "workload": check, "rep": 1,
                             "group": "g1", "pair": "c01-c02", "flow": n, "check": check, "source": "c01", "destination": "c02",
                             "protocol": "udp", "port": 1, "whitelisted": True, "observed": verdict != "ok",
                             "verdict": verdict, "detail": None})
    return tables.conform(pd.DataFrame(rows), "security").to_pandas()


def test_security_matrix_shows_the_worst_verdict_per_setup_and_check(tmp_path):
    cells = security_figures.security_cells(security_table()).set_index(["setup", "check"])
    assert cells.loc[("single-bridge-none-c2", "isolation"), "verdict"] == "violation"
    assert cells.loc[("single-bridge-none-c2", "isolation"), "text"] == "1/2 violation"
    assert cells.loc[("single-bridge-iptables-c2", "isolation"), "text"] == "ok (2)"
    assert cells.loc[("multi-vxlan-none-c4", "confidentiality"), "verdict"] == "visible"
    assert cells.loc[("single-bridge-none-c2", "spoofing"), "text"] == "n/a"
    spec = figures.FIGURES["security_matrix"]
    assert spec.tables == ("security", "latency", "throughput")
    latency = tablegen.latency_table(setups=["single-bridge-none-c2", "single-bridge-iptables-c2"])
    throughput = tablegen.throughput_table(setups=["single-bridge-none-c2"])
    chart = spec.builder(security_table(), latency, throughput)
    as_dict = chart.to_dict()
    # one block per panel (scenario x container count), each the matrix and its two cost charts
    assert len(as_dict["vconcat"]) == 2 and all(len(block["hconcat"]) == 3 for block in as_dict["vconcat"])
    assert "n = 11 probes over 4 setups" in as_dict["title"]["subtitle"][0]
    assert [p.name for p in figures.save_chart(chart, tmp_path / "m")] == ["m.html", "m.svg"]
    with pytest.raises(ValueError, match="^no rows for figure security_matrix"):
        spec.builder(tables.empty("security"), latency, throughput)
