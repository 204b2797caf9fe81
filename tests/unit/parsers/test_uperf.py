"""uperf parser on real uperf 1.0.8 outputs (tests/fixtures/uperf/), raw (-R) and human formats."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seconetbench.errors import ParseError, ToolError
from seconetbench.parsers import uperf

pytestmark = pytest.mark.unit

COLUMNS = ["txn", "interval_start_s", "interval_end_s", "bytes", "throughput_mbps"]
RAW_SAMPLE = re.compile(r"timestamp_ms:(\S+) name:Txn2 nr_bytes:(\d+) nr_ops:\d+")


def weighted_mean_mbps(samples):
    seconds = samples["interval_end_s"] - samples["interval_start_s"]
    return (samples["throughput_mbps"] * seconds).sum() / seconds.sum()


def test_raw_deltas_agree_with_the_final_cumulative_value(fixture_text):
    text = fixture_text("uperf/tcp_stream_653_raw_R.txt")
    result = uperf.parse(text)
    samples, summary = result.samples, result.summary
    assert list(samples.columns) == COLUMNS
    assert len(samples) == 5
    assert (samples["txn"] == "Txn2").all()
    # Values straight from the file: Txn2's first (0 bytes) and last cumulative samples.
    raw = RAW_SAMPLE.findall(text)
    first_ms, last_ms, last_bytes = float(raw[0][0]), float(raw[-1][0]), int(raw[-1][1])
    assert last_bytes == 1600843213
    assert samples["bytes"].sum() == summary["bytes"] == last_bytes
    assert samples.loc[0, "bytes"] == 349543064
    assert summary["duration_s"] == pytest.approx((last_ms - first_ms) / 1000, abs=1e-9)
    assert summary["throughput_mbps"] == pytest.approx(last_bytes * 8 / summary["duration_s"] / 1e6)
    assert summary["throughput_mbps"] == pytest.approx(2456.885, abs=1e-3)
    assert weighted_mean_mbps(samples) == pytest.approx(summary["throughput_mbps"], rel=1e-9)
    assert samples["interval_end_s"].iloc[-1] == pytest.approx(summary["duration_s"])
    # The Run Statistics 'master' rate, kept for reference: ~30 % under the write loop's rate.
    assert summary["total_line_mbps"] == 1750.0
    assert summary["total_line_mbps"] < 0.75 * summary["throughput_mbps"]
    assert summary["threads"] == 1
    assert summary["profile"] == "tcp-stream-653b"
    assert summary["txn"] == "Txn2" and summary["output_format"] == "raw"


def test_raw_500ms_sampling(fixture_text):
    result = uperf.parse(fixture_text("uperf/tcp_stream_653_raw_R_i500ms.txt"))
    assert len(result.samples) == 9
    seconds = result.samples["interval_end_s"] - result.samples["interval_start_s"]
    assert seconds.iloc[:-1].between(0.49, 0.53).all()
    assert result.samples["bytes"].sum() == result.summary["bytes"] == 1170127025
    assert result.summary["total_line_mbps"] == 1600.0


@pytest.mark.parametrize(("name", "payload", "write_bytes", "master_mbps"), [
    ("uperf/tcp_stream_64_raw_all_Ra.txt", 64, 178171776, 194.99),
    ("uperf/tcp_stream_653_raw_all_Ra.txt", 653, 993917587, 1090.0),
    ("uperf/tcp_stream_1370_raw_all_Ra.txt", 1370, 2322543190, 2540.0),
])
def test_raw_with_all_stats(fixture_text, name, payload, write_bytes, master_mbps):
    result = uperf.parse(fixture_text(name))
    assert result.summary["profile"] == f"tcp-stream-{payload}b"
    assert result.summary["bytes"] == result.samples["bytes"].sum() == write_bytes
    assert result.summary["total_line_mbps"] == master_mbps
    # payload x write count = bytes: the write loop's nr_ops (column 'Count' of flowop write).
    writes = int(re.search(r"^write\s+(\d+)", fixture_text(name), re.M)[1])
    assert writes * payload == write_bytes
    assert weighted_mean_mbps(result.samples) == pytest.approx(result.summary["throughput_mbps"])


def test_env_template_profile_name_is_not_substituted(fixture_text):
    result = uperf.parse(fixture_text("uperf/tcp_stream_template_653_3s_raw_R.txt"))
    assert result.summary["profile"] == "tcp-stream-$nbytes"
    assert len(result.samples) == 3
    assert result.summary["bytes"] == 1401264211
    assert result.summary["duration_s"] == pytest.approx(3.2027, abs=1e-4)


def test_human_format_cumulative_values(fixture_text):
    result = uperf.parse(fixture_text("uperf/tcp_stream_653.txt"))
    samples, summary = result.samples, result.summary
    assert summary["output_format"] == "human"
    assert samples["interval_end_s"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.21]
    assert samples.loc[0, "bytes"] == round(254.47 * 2**20)  # "254.47M": MiB, "B" cut off
    assert summary["bytes"] == 2**30  # "1.00GB"
    assert samples["bytes"].sum() == summary["bytes"]
    assert summary["duration_s"] == 5.21
    assert summary["total_line_mbps"] == 1180.0  # "Total 1.00GB / 7.32(s) = 1.18Gb/s"
    # uperf printed 1.65Gb/s for the final Txn2 sample; ours is from the rounded "1.00GB".
    assert summary["throughput_mbps"] == pytest.approx(1650, rel=0.01)
    assert samples.loc[0, "throughput_mbps"] == pytest.approx(2130, rel=0.01)  # printed 2.13Gb/s
    assert summary["threads"] == 1 and summary["profile"] == "tcp-stream-653b"


def test_human_64(fixture_text):
    result = uperf.parse(fixture_text("uperf/tcp_stream_64.txt"))
    assert result.samples.loc[0, "bytes"] == round(39.99 * 2**20)
    assert result.summary["total_line_mbps"] == 289.32
    assert result.summary["throughput_mbps"] == pytest.approx(406.0, abs=0.5)


def test_human_with_all_stats_ignores_group_and_strand_lines(fixture_text):
    result = uperf.parse(fixture_text("uperf/tcp_stream_653_all_stats_a.txt"))
    assert result.summary["txn"] == "Txn2"
    assert result.summary["bytes"] == round(1.65 * 2**30)
    assert result.summary["total_line_mbps"] == 1940.0
    assert result.samples.loc[0, "bytes"] == round(318.23 * 2**20)


def test_human_and_raw_agree_on_the_same_kind_of_run(fixture_text):
    # Different runs, so only the order of magnitude can match; checks the unit handling.
    human = uperf.parse(fixture_text("uperf/tcp_stream_653.txt")).summary["throughput_mbps"]
    raw = uperf.parse(fixture_text("uperf/tcp_stream_653_raw_R.txt")).summary["throughput_mbps"]
    assert 0.5 < human / raw < 2


def test_no_server_is_a_tool_error(fixture_text):
    with pytest.raises(ToolError, match=r"^u\.txt:1: .*Error connecting to 198\.18\.20\.2"):
        uperf.parse(fixture_text("uperf/error_no_server.txt"), "u.txt")


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.split("-----")[0], "no 'Total' line"),
    (lambda t: t.replace("name:Txn2 nr_bytes:712940829", "name:Txn2 nr_bytes:7129x0829"), "unrecognised line"),
    (lambda t: t.replace("nr_bytes:1082949566", "nr_bytes:82949566"), "go back in time or bytes"),
    (lambda t: t.replace("name:Total nr_bytes:1600843213", "name:Total nr_bytes:1700843213"), "different runs"),
    (lambda t: t.replace("timestamp_ms:1795720656916.4409 name:Total", "Txn9 0 / 0.00(s) = 0 0op/s\nX"),
     "expected the Total line"),
], ids=["truncated", "garbled-sample", "bytes-decrease", "total-mismatch", "no-total-after-rule"])
def test_broken_raw_outputs(fixture_text, edit, message):
    with pytest.raises(ParseError, match=re.escape(message)) as caught:
        uperf.parse(edit(fixture_text("uperf/tcp_stream_653_raw_R.txt")), "runs/uperf.txt")
    assert str(caught.value).startswith("runs/uperf.txt")


def test_mixed_formats_refused(fixture_text):
    text = fixture_text("uperf/tcp_stream_653_raw_R.txt").replace(
        "\ntimestamp_ms:1795720656815.7317", "\nTxn3            0 /   0.00(s) =            0           0op/s\n"
        "timestamp_ms:1795720656815.7317")
    with pytest.raises(ParseError, match="mixed"):
        uperf.parse(text)


def test_nothing_transferred():
    text = ("timestamp_ms:1000.0 name:Txn1 nr_bytes:0 nr_ops:0\ntimestamp_ms:2000.0 name:Txn1 nr_bytes:0 nr_ops:1\n"
            "-------------------------------------------------------------------------------\n"
            "timestamp_ms:2100.0 name:Total nr_bytes:0 nr_ops:1\n")
    with pytest.raises(ParseError, match="no transaction moved any bytes"):
        uperf.parse(text)


@pytest.mark.parametrize("name", ["uperf/tcp_stream_653_raw_R.txt", "uperf/tcp_stream_653.txt"])
def test_truncation_at_line_boundaries(fixture_text, boundary_cuts, name):
    text = fixture_text(name)
    full = uperf.parse(text)
    for cut in boundary_cuts(text):
        try:
            partial = uperf.parse(text[:cut])
        except ParseError:
            continue
        assert_prefix_of(partial, full)


def assert_prefix_of(partial, full):
    """A cut uperf output that parses has every sample; only the Run Statistics rate may be missing."""
    np.testing.assert_array_equal(partial.samples.to_numpy(), full.samples.to_numpy())
    for key, value in full.summary.items():
        if key == "total_line_mbps" and partial.summary[key] is None:
            continue
        assert partial.summary[key] == value, key


@settings(max_examples=50, deadline=None)
@given(data=st.data(), name=st.sampled_from(["uperf/tcp_stream_653_raw_all_Ra.txt",
                                             "uperf/tcp_stream_653_all_stats_a.txt"]))
def test_truncated_output_raises_or_keeps_every_sample(fixture_text, data, name):
    text = fixture_text(name)
    cut = data.draw(st.integers(min_value=0, max_value=len(text)))
    try:
        partial = uperf.parse(text[:cut])
    except ParseError:
        return
    assert_prefix_of(partial, uperf.parse(text))
