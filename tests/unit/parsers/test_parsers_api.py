"""The package-level entry points: PARSERS, parse_text, parse_file, Parsed; and fixture coverage."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from seconetbench.errors import ParseError, UnknownNameError
from seconetbench.parsers import PARSERS, Parsed, dstat, iperf3, itgdec, itgdec_packets, parse_file, parse_text, ping, uperf
from tests.conftest import SHARED_FIXTURES

pytestmark = pytest.mark.unit

TOOLS = ["ping", "iperf3", "uperf", "itgdec", "dstat"]


def test_registry_maps_every_tool_to_its_module():
    assert PARSERS == {"ping": ping.parse, "iperf3": iperf3.parse, "uperf": uperf.parse,
                       "itgdec": itgdec.parse, "dstat": dstat.parse, "itgdec_packets": itgdec_packets.parse}


@pytest.mark.parametrize(("tool", "name"), [
    ("ping", "ping/basic_20.txt"),
    ("iperf3", "iperf3/tcp_653.json"),
    ("uperf", "uperf/tcp_stream_653_raw_R.txt"),
    ("itgdec", "itgdec/w5_quake3_recv_summary.txt"),
    ("dstat", "dstat/cmn.csv"),
])
def test_parse_file_equals_parse_text(fixture_path, fixture_text, assert_same_parse, tool, name):
    from_file = parse_file(tool, fixture_path(name))
    assert isinstance(from_file, Parsed)
    assert_same_parse(from_file, parse_text(tool, fixture_text(name)))


@pytest.mark.parametrize(("tool", "name"), [
    ("ping", "ping/loss.txt"),
    ("iperf3", "iperf3/udp_1370_200M.json"),
    ("uperf", "uperf/tcp_stream_653.txt"),
    ("itgdec", "itgdec/w3_bursty_send_summary.txt"),
    ("dstat", "dstat/Tcmn_netns_under_load.csv"),
])
def test_summaries_hold_plain_python_scalars(fixture_text, tool, name):
    summary = parse_text(tool, fixture_text(name)).summary
    assert {key: type(value) for key, value in summary.items()
            if type(value) not in (int, float, str, bool, type(None))} == {}


def test_parse_file_names_the_file_in_errors(fixture_path):
    path = fixture_path("ping/unreachable_network.txt")
    with pytest.raises(ParseError) as caught:
        parse_file("ping", path)
    assert caught.value.source == str(path)
    assert str(caught.value).startswith(f"{path}:1:")


def test_parse_file_replaces_undecodable_bytes(tmp_path, fixture_path):
    damaged = tmp_path / "ping.txt"
    damaged.write_bytes(fixture_path("ping/basic_20.txt").read_bytes().replace(b"PING", b"P\xffNG"))
    assert parse_file("ping", damaged).summary["packets_received"] == 20


def test_unknown_tool_names_the_known_ones():
    with pytest.raises(UnknownNameError, match=r"no parser for tool 'sockperf'; known: \['dstat', 'iperf3'"):
        parse_text("sockperf", "")


def test_parsed_is_frozen(fixture_text):
    result = parse_text("ping", fixture_text("ping/basic_20.txt"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.samples = None


@pytest.mark.parametrize("tool", TOOLS)
def test_garbage_raises_parse_error_for_every_tool(tool):
    with pytest.raises(ParseError) as caught:
        parse_text(tool, "\x00garbage\nnot a tool output\n", "junk.bin")
    assert str(caught.value).startswith("junk.bin")


@pytest.mark.parametrize("tool", TOOLS)
def test_empty_text_raises_parse_error_for_every_tool(tool):
    with pytest.raises(ParseError):
        parse_text(tool, "", "empty.txt")


def test_every_fixture_is_used_by_a_test():
    """Each recorded output under tests/fixtures/<tool>/ is named in at least one test module here."""
    sources = "".join(path.read_text() for path in Path(__file__).parent.glob("test_*.py"))
    unused = [f"{tool}/{path.name}" for tool in TOOLS for path in sorted((SHARED_FIXTURES / tool).iterdir())
              if path.name not in sources]
    assert unused == []


def test_cli_parse_offers_exactly_the_registered_parsers():
    import argparse

    from seconetbench.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    tool = next(a for a in commands.choices["parse"]._actions if a.dest == "tool")
    assert sorted(tool.choices) == sorted(PARSERS)
