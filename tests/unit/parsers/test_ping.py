"""ping parser on real iputils 20221126 outputs (tests/fixtures/ping/)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seconetbench.errors import ParseError, ToolError
from seconetbench.parsers import ping

pytestmark = pytest.mark.unit

COLUMNS = ["seq", "timestamp_s", "rtt_ms", "ttl", "received"]


def test_basic_20_all_received(fixture_text):
    result = ping.parse(fixture_text("ping/basic_20.txt"))
    samples, summary = result.samples, result.summary
    assert list(samples.columns) == COLUMNS
    assert samples["seq"].tolist() == list(range(1, 21))
    assert samples["received"].all()
    assert summary == {
        "packets_transmitted": 20, "packets_received": 20, "duplicates": 0, "errors": 0, "loss_pct": 0.0,
        "rtt_min_ms": 0.037, "rtt_avg_ms": 0.051, "rtt_max_ms": 0.063, "rtt_mdev_ms": 0.005, "time_ms": 3909,
    }
    # The per-reply times agree with ping's own statistics (printed with 3 decimals).
    assert samples["rtt_ms"].min() == summary["rtt_min_ms"]
    assert samples["rtt_ms"].max() == summary["rtt_max_ms"]
    assert samples["rtt_ms"].mean() == pytest.approx(summary["rtt_avg_ms"], abs=5e-4)
    assert samples["timestamp_s"].iloc[0] == 1795720515.851456
    assert samples["timestamp_s"].iloc[-1] == 1795720519.760498
    assert (samples["ttl"] == 64).all()
    assert str(samples["ttl"].dtype) == "Int32"


def test_loss_marks_seq_6_to_11_lost(fixture_text):
    result = ping.parse(fixture_text("ping/loss.txt"))
    samples = result.samples
    assert len(samples) == 20
    lost = samples.loc[~samples["received"], "seq"].tolist()
    assert lost == [6, 7, 8, 9, 10, 11]
    assert samples.loc[~samples["received"], ["timestamp_s", "rtt_ms"]].isna().all().all()
    assert samples.loc[~samples["received"], "ttl"].isna().all()
    assert result.summary["loss_pct"] == 30.0
    assert result.summary["packets_received"] == samples["received"].sum() == 14
    assert samples["rtt_ms"].max() == result.summary["rtt_max_ms"] == 0.151
    assert 100 * (1 - samples["received"].mean()) == pytest.approx(result.summary["loss_pct"])


def test_total_loss_is_a_result_not_an_error(fixture_text):
    result = ping.parse(fixture_text("ping/loss_100pct.txt"))
    assert len(result.samples) == 20
    assert not result.samples["received"].any()
    assert result.samples["rtt_ms"].isna().all()
    assert result.summary["loss_pct"] == 100.0
    assert result.summary["time_ms"] == 3885
    assert result.summary["rtt_avg_ms"] is None and result.summary["rtt_mdev_ms"] is None


def test_packet_filtered_lines_are_errors_not_replies(fixture_text):
    result = ping.parse(fixture_text("ping/loss_with_errors_filtered.txt"))
    samples = result.samples
    assert samples.loc[~samples["received"], "seq"].tolist() == [6, 7, 8, 9, 10]
    assert result.summary["errors"] == 5
    assert result.summary["packets_received"] == 15
    assert result.summary["loss_pct"] == 25.0
    assert samples["rtt_ms"].min() == result.summary["rtt_min_ms"] == 0.041


def test_destination_host_unreachable(fixture_text):
    result = ping.parse(fixture_text("ping/unreachable_host.txt"))
    assert len(result.samples) == 20
    assert not result.samples["received"].any()
    assert result.summary["errors"] == 20
    assert result.summary["loss_pct"] == 100.0
    assert result.summary["time_ms"] == 4673  # the trailing "pipe 12" line is ignored


def test_network_unreachable_is_a_tool_error(fixture_text):
    with pytest.raises(ToolError, match=r"^unreachable_network\.txt:1: .*Network is unreachable"):
        ping.parse(fixture_text("ping/unreachable_network.txt"), "unreachable_network.txt")


def test_output_without_D_timestamps(fixture_text):
    with_d = ping.parse(fixture_text("ping/loss.txt"))
    plain_text = re.sub(r"^\[[\d.]+\] ", "", fixture_text("ping/loss.txt"), flags=re.M)
    without_d = ping.parse(plain_text)
    assert without_d.samples["timestamp_s"].isna().all()
    np.testing.assert_array_equal(without_d.samples["rtt_ms"], with_d.samples["rtt_ms"])
    assert without_d.summary == with_d.summary


def test_duplicate_reply_counts_once(fixture_text):
    text = fixture_text("ping/basic_20.txt")
    text = text.replace(
        "icmp_seq=3 ttl=64 time=0.051 ms\n",
        "icmp_seq=3 ttl=64 time=0.051 ms\n"
        "[1795720516.256999] 64 bytes from 198.18.20.2: icmp_seq=3 ttl=64 time=0.9 ms (DUP!)\n",
    ).replace("20 received,", "20 received, +1 duplicates,")
    result = ping.parse(text)
    assert len(result.samples) == 20
    assert result.samples.loc[2, "rtt_ms"] == 0.051  # the first answer, not the duplicate
    assert result.summary["duplicates"] == 1


def test_pipe_after_the_rtt_line_parses_the_same(fixture_text):
    # iputils appends ", pipe N" when replies overlapped (one took longer than -i); seen under load:
    # 'rtt min/avg/max/mdev = 0.206/3.884/53.693/11.586 ms, pipe 2'
    text = fixture_text("ping/basic_20.txt")
    piped = text.replace("/0.005 ms\n", "/0.005 ms, pipe 2\n")
    assert piped != text
    plain, with_pipe = ping.parse(text), ping.parse(piped)
    assert with_pipe.summary == plain.summary
    assert with_pipe.samples.equals(plain.samples)


def test_no_answer_yet_lines_of_ping_O_are_ignored(fixture_text):
    # Format of ping -O (recorded as loss_O.txt in the probe notes): one line per unanswered probe.
    text = fixture_text("ping/loss.txt").replace(
        "[1795720529.036485]",
        "".join(f"[1795720528.{seq:06d}] no answer yet for icmp_seq={seq}\n" for seq in range(6, 12))
        + "[1795720529.036485]",
    )
    result = ping.parse(text)
    assert result.samples.loc[~result.samples["received"], "seq"].tolist() == [6, 7, 8, 9, 10, 11]
    assert result.summary["loss_pct"] == 30.0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.split("\n\n---")[0], "no '--- <host> ping statistics ---'"),
        (lambda t: t.replace("rtt min/avg/max/mdev = 0.037/0.051/0.063/0.005 ms\n", ""), "no 'rtt min/avg"),
        (lambda t: re.sub(r".*icmp_seq=7 .*\n", "", t), "20 received but 19 distinct replies"),
        (lambda t: t.replace("time=0.049 ms", "time=0.0x49 ms", 1), "malformed reply line"),
        (lambda t: t.replace("0% packet loss", "0 % packet loss"), "malformed statistics line"),
        (lambda t: t.replace("icmp_seq=20 ", "icmp_seq=21 "), "outside 1..20"),
    ],
    ids=["truncated", "no-rtt-line", "missing-reply", "bad-reply", "bad-summary", "seq-beyond"],
)
def test_broken_outputs_raise_with_source(fixture_text, edit, message):
    with pytest.raises(ParseError, match=re.escape(message)) as caught:
        ping.parse(edit(fixture_text("ping/basic_20.txt")), "runs/ping.txt")
    assert str(caught.value).startswith("runs/ping.txt")
    assert not isinstance(caught.value, ToolError)


def test_garbage_raises():
    with pytest.raises(ParseError, match="summary"):
        ping.parse("hello\nworld\n", "x")


@pytest.mark.parametrize("name", ["ping/basic_20.txt", "ping/loss.txt", "ping/loss_100pct.txt"])
def test_truncation_at_line_boundaries(fixture_text, assert_same_parse, boundary_cuts, name):
    text = fixture_text(name)
    full = ping.parse(text)
    for cut in boundary_cuts(text):
        try:
            partial = ping.parse(text[:cut])
        except ParseError:
            continue
        assert_same_parse(partial, full)  # only a cut in the trailing blank lines may parse


@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_truncated_output_raises_or_parses_identically(fixture_text, assert_same_parse, data):
    text = fixture_text("ping/loss_with_errors_filtered.txt")
    cut = data.draw(st.integers(min_value=0, max_value=len(text)))
    try:
        partial = ping.parse(text[:cut])
    except ParseError:
        return
    assert_same_parse(partial, ping.parse(text))
