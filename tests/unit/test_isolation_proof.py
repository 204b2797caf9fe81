"""The wait the deploy-time isolation proof gives its expected drops (security.drop_wait_s) and
the ICMP echo it sends in place of ping."""

from __future__ import annotations

import pytest

from seconetbench import security


def probe(expected: bool, reached_s: float | None) -> security.Probe:
    return security.Probe("c01", "c02", expected, "tcp", reached=reached_s is not None, reached_s=reached_s)


def test_the_drops_wait_a_multiple_of_the_slowest_control_within_floor_and_timeout():
    drops = [probe(False, None)] * 3
    fast = [probe(True, 0.001), probe(True, 0.002)]
    assert security.drop_wait_s(fast + drops, 1.0) == security.DROP_WAIT_MIN_S
    slow = [probe(True, 0.001), probe(True, 0.08)]
    assert security.drop_wait_s(slow + drops, 1.0) == pytest.approx(security.DROP_WAIT_FACTOR * 0.08)
    assert security.drop_wait_s([probe(True, 0.5)] + drops, 1.0) == 1.0


def test_no_early_end_while_a_control_is_missing_or_without_controls():
    assert security.drop_wait_s([probe(True, 0.001), probe(True, None), probe(False, None)], 1.0) is None
    assert security.drop_wait_s([probe(False, None)], 1.0) is None


def test_icmp_echo_is_a_valid_echo_request():
    packet = security.icmp_echo(0x1234, 7)
    assert packet[0] == security.ICMP_ECHO and packet[1] == 0
    assert packet[4:8] == bytes.fromhex("12340007")
    assert security.checksum(packet) == 0  # a correct checksum sums to 0
