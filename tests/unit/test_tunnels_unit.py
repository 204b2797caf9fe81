"""Tunnels without a testbed: the pcap reader and the capture verdict on real packet bytes, MTUs
and overheads, and what preflight says about the tunnels this kernel lacks."""

from __future__ import annotations

import struct

import pytest

from seconetbench import technology
from seconetbench.spec import SetupSpec
from seconetbench.tunnels import _common
from seconetbench.tunnels._common import MARKER, Wire, classify, read_pcap, verdict

pytestmark = pytest.mark.unit

A, B = bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2])
C1, C2 = bytes([198, 19, 1, 1]), bytes([198, 19, 2, 1])


def ipv4(source: bytes, destination: bytes, protocol: int, payload: bytes, flags: int = 0x4000) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, flags, 64, protocol, 0,
                         source, destination)
    return header + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def pcap(frames: list[bytes], linktype: int = 1) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)
    for frame in frames:
        out += struct.pack("<IIII", 0, 0, len(frame), len(frame)) + frame
    return out


def ethernet(packet: bytes, ethertype: bytes = b"\x08\x00") -> bytes:
    return b"\x02" * 6 + b"\x04" * 6 + ethertype + packet


VXLAN = Wire("VXLAN UDP 4789", ((17, 4789),))
WG = Wire("WireGuard UDP 51820", ((17, 51820),), encrypted=True)
INNER = ipv4(C1, C2, 1, b"\x08\x00" + MARKER * 4)


def test_reader_handles_ethernet_and_linux_cooked_v2_and_skips_arp():
    sll2 = b"\x08\x00" + b"\x00" * 18  # protocol first, 20-byte header
    data = pcap([ethernet(ipv4(A, B, 17, udp(4789, 4789, b"x"))), ethernet(b"\x00" * 28, b"\x08\x06")])
    packets, other = read_pcap(data)
    assert len(packets) == 1 and other == 1
    assert (packets[0].sport, packets[0].dport, packets[0].protocol) == (4789, 4789, 17)
    packets, _ = read_pcap(pcap([sll2 + ipv4(A, B, 50, b"\x00" * 16)], linktype=276))
    assert packets[0].protocol == 50 and packets[0].source == A


def test_vxlan_shows_inner_data_but_is_only_encapsulation():
    packets, _ = read_pcap(pcap([ethernet(ipv4(A, B, 17, udp(40000, 4789, b"\x00" * 22 + INNER)))]))
    counts = classify(packets, VXLAN, [(C1, C2)])
    assert counts["encapsulated"] == 1 and counts["marker_in_clear"] == 1 and counts["inner_addresses_in_clear"] == 1
    assert verdict(counts, VXLAN, probes_passed=True) == []


def test_encrypted_tunnel_fails_when_inner_data_is_in_clear_or_traffic_is_plain():
    leaked, _ = read_pcap(pcap([ethernet(ipv4(A, B, 17, udp(51820, 51820, INNER)))]))
    assert any("in clear" in p for p in verdict(classify(leaked, WG, [(C1, C2)]), WG, True))
    plain, _ = read_pcap(pcap([ethernet(INNER)]))
    problems = verdict(classify(plain, WG, [(C1, C2)]), WG, True)
    assert any("not tunnelled" in p for p in problems) and any("no WireGuard" in p for p in problems)
    sealed, _ = read_pcap(pcap([ethernet(ipv4(A, B, 17, udp(51820, 51820, bytes(range(200)))))]))
    assert verdict(classify(sealed, WG, [(C1, C2)]), WG, True) == []


def test_fragments_other_protocols_and_failed_probes_are_reported():
    fragment = ethernet(ipv4(A, B, 17, udp(51820, 51820, b"\x01" * 40), flags=0x2000))
    stray = ethernet(ipv4(A, B, 6, struct.pack("!HH", 22, 22) + b"\x00" * 16))
    igmp = ethernet(ipv4(bytes(4), bytes([224, 0, 0, 22]), 2, b"\x00" * 8))
    packets, _ = read_pcap(pcap([fragment, stray, igmp]))
    counts = classify(packets, WG, [])
    assert (counts["fragments"], counts["other"], counts["multicast"]) == (1, 1, 1)
    assert counts["other_examples"] == ["198.18.0.1:22 > 198.18.0.2:22 proto 6"]
    problems = verdict(counts, WG, probes_passed=False)
    assert len(problems) == 3  # probes, fragments, the TCP packet


def test_routing_expects_plain_packets():
    plain, _ = read_pcap(pcap([ethernet(INNER)]))
    routing = technology.get("tunnel", "routing").wire
    assert verdict(classify(plain, routing, []), routing, True) == []
    assert verdict(classify([], routing, []), routing, True) == ["no packet with container addresses crossed the underlay"]


@pytest.mark.parametrize("name", technology.names("tunnel", backend="netns"))
def test_every_tunnel_carries_1370_byte_payloads_and_describes_itself(name):
    tunnel = technology.get("tunnel", name)
    assert tunnel.mtu() >= _common.MIN_PATH_MTU == 1398
    assert tunnel.incompatibility(SetupSpec("multi", "bridge", "iptables", 4, tunnel=name, hosts=2)) is None
    assert "macvlan" in tunnel.incompatibility(SetupSpec("multi", "macvlan", "none", 4, tunnel=name, hosts=2))
    assert tunnel.implementation()


def test_suites_default_to_the_papers_and_unknown_ones_name_the_choices():
    from seconetbench.tunnels.ipsec import Ipsec
    from seconetbench.tunnels.openvpn import Openvpn

    assert Ipsec().cipher() == "AES-256-GCM-16"
    assert Openvpn().cipher() == "AES-256-CBC + HMAC-SHA1"
    assert technology.get("tunnel", "wireguard").cipher() == "ChaCha20-Poly1305"
    assert Openvpn("aes256gcm").mtu() == 1448
    with pytest.raises(ValueError, match="aes256cbc-sha1"):
        Openvpn("des")


def test_ipsec_names_the_package_of_a_missing_plugin():
    from seconetbench.tunnels.ipsec import PluginRequirement, plugin

    assert plugin("gcm").why == "libstrongswan-standard-plugins"
    problem = PluginRequirement("plugin", "surely-missing", "libstrongswan-standard-plugins").missing()
    assert "surely-missing" in problem and "libstrongswan-standard-plugins" in problem


def test_a_kernel_option_built_as_a_module_is_satisfied_only_when_the_module_loads(monkeypatch):
    """Stock kernels build veth, tun, bridge and macvlan as modules (=m): that is not missing as
    long as the module is loaded or loads; the config file alone never decides."""
    from seconetbench import probes

    monkeypatch.setattr(technology, "kernel_config", lambda: {"CONFIG_TUN": "m", "CONFIG_FOO": "m"})
    monkeypatch.setattr(technology, "OPTION_MODULES", {"CONFIG_TUN": "surely_not_a_module_xyz"})
    monkeypatch.setattr(probes, "modprobe_possible", lambda: None)
    monkeypatch.setattr(probes, "run_probe_command",
                        lambda argv: (False, f"modprobe: FATAL: Module {argv[1]} not found"))
    technology.Requirement._module_missing.cache_clear()  # each outcome below is a new machine
    said = technology.Requirement("kernel", "CONFIG_TUN").missing()
    assert said is not None and "modprobe surely_not_a_module_xyz" in said and "not found" in said
    monkeypatch.setattr(probes, "run_probe_command", lambda argv: (True, "ok"))
    technology.Requirement._module_missing.cache_clear()
    assert technology.Requirement("kernel", "CONFIG_TUN").missing() is None
    monkeypatch.setattr(probes, "modprobe_possible", lambda: "/lib/modules/x does not exist")
    technology.Requirement._module_missing.cache_clear()
    assert "cannot be loaded here" in technology.Requirement("kernel", "CONFIG_TUN").missing()
    assert "is a module" in technology.Requirement("kernel", "CONFIG_FOO").missing()
    technology.Requirement._module_missing.cache_clear()  # nothing of this fake machine stays
