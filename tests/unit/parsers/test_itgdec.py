"""ITGDec parsers on real D-ITG 2.8.1 outputs (tests/fixtures/itgdec/)."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seconetbench.errors import ParseError, ToolError
from seconetbench.parsers import itgdec

pytestmark = pytest.mark.unit

COLUMNS = ["flow", "src", "dst", "total_time_s", "packets", "min_delay_ms", "max_delay_ms", "avg_delay_ms",
           "avg_jitter_ms", "delay_std_ms", "bytes", "avg_bitrate_kbps", "avg_packet_rate_pps",
           "packets_dropped", "loss_pct", "avg_loss_burst_pkts"]
SUMMED = ["packets", "bytes", "packets_dropped"]


def intervals(fixture_text, name, metric, **kwargs):
    return itgdec.parse_intervals(fixture_text(f"itgdec/{name}"), metric, name, **kwargs)


def bytes_from_bitrate(frame, bin_s):
    """ITGDec normalises each bin by its full width, so kbit/s x bin x 125 gives back the bytes."""
    return frame["bitrate_kbps"].sum() * bin_s * 125


# --- standard summary ------------------------------------------------------------------------


def test_udp_loss_flow_and_total(fixture_text):
    result = itgdec.parse(fixture_text("itgdec/udp_loss5pct_recv_summary.txt"))
    assert list(result.samples.columns) == COLUMNS
    flow = result.samples.iloc[0].to_dict()
    assert flow == {
        "flow": 1, "src": "198.18.20.1:43194", "dst": "198.18.20.2:10002", "total_time_s": 4.989301,
        "packets": 450, "min_delay_ms": 0.035, "max_delay_ms": 4.419, "avg_delay_ms": 0.105,
        "avg_jitter_ms": 0.102, "delay_std_ms": 0.346, "bytes": 281250, "avg_bitrate_kbps": 450.964975,
        "avg_packet_rate_pps": 90.192995, "packets_dropped": 30, "loss_pct": 6.25, "avg_loss_burst_pkts": 1.034483,
    }
    expected_total = {key: value for key, value in flow.items() if key not in ("flow", "src", "dst")}
    assert result.summary == {"flows": 1, **expected_total, "error_lines": 0}
    assert all(type(value) in (int, float) for value in result.summary.values())


def test_sender_log_shows_the_true_loss(fixture_text):
    received = itgdec.parse(fixture_text("itgdec/udp_loss5pct_recv_summary.txt")).summary
    sent = itgdec.parse(fixture_text("itgdec/udp_loss5pct_send_summary.txt")).summary
    assert sent["packets"] == 480 == received["packets"] + received["packets_dropped"]
    assert sent["avg_delay_ms"] == 0.0  # send log without -m rttm: tx == rx
    assert received["loss_pct"] == pytest.approx(100 * 30 / 480)


def test_100_tcp_flows_in_arbitrary_order(fixture_text):
    text = fixture_text("itgdec/w4_100tcp_send_summary.txt")
    assert re.findall(r"Flow number: (\d+)", text)[:3] == ["16", "20", "75"]
    result = itgdec.parse(text)
    samples = result.samples
    assert result.summary["flows"] == len(samples) == 100
    assert samples["flow"].tolist() == list(range(1, 101))
    for column in SUMMED:
        assert samples[column].sum() == result.summary[column]
    assert result.summary["packets"] == 98748
    assert result.summary["bytes"] == 61717500
    assert result.summary["avg_bitrate_kbps"] == 48615.974858
    assert samples["avg_bitrate_kbps"].min() == 491.05544
    assert samples["avg_bitrate_kbps"].max() == 495.668527
    assert samples["dst"].str.rsplit(":", n=1).str[1].astype(int).tolist() == list(range(10101, 10201))


def test_itgsend_started_every_flow_it_decoded(fixture_text):
    itgsend_stdout = fixture_text("itgdec/w4_100tcp_itgsend_stdout.txt")
    started = re.findall(r"Started sending packets of flow ID: (\d+)", itgsend_stdout)
    decoded = itgdec.parse(fixture_text("itgdec/w4_100tcp_send_summary.txt")).samples["flow"]
    assert sorted(map(int, started)) == decoded.tolist()


def test_itgrecv_listened_on_every_flow_port(fixture_text):
    listened = {int(p) for p in re.findall(r"Listening on TCP port : (\d+)",
                                           fixture_text("itgdec/itgrecv_stdout_all_runs.txt"))}
    ports = itgdec.parse(fixture_text("itgdec/w6_video_send_summary.txt")).samples["dst"].str.split(":").str[1]
    assert set(ports.astype(int)) <= listened
    assert set(range(10101, 10201)) <= listened


@pytest.mark.parametrize(("name", "flows", "packets", "bytes_"), [
    ("w5_quake3_recv_summary.txt", 4, 5691, 362374),
    ("w5_quake3_send_summary.txt", 4, 5691, 362374),
    ("w6_video_send_summary.txt", 10, 29157, 39945090),
    ("w1_rttm_recv_summary.txt", 1, 50, 3200),
    ("w1_rttm_send_summary.txt", 1, 50, 3200),
    ("w3_bursty_recv_summary.txt", 1, 501, 313125),
    ("w3_bursty_send_summary.txt", 1, 501, 313125),
])
def test_flows_add_up_to_total(fixture_text, name, flows, packets, bytes_):
    result = itgdec.parse(fixture_text(f"itgdec/{name}"), name)
    assert result.summary["flows"] == len(result.samples) == flows
    assert result.samples["flow"].tolist() == list(range(1, flows + 1))
    assert result.summary["packets"] == result.samples["packets"].sum() == packets
    assert result.summary["bytes"] == result.samples["bytes"].sum() == bytes_


def test_quake3_per_flow_values(fixture_text):
    samples = itgdec.parse(fixture_text("itgdec/w5_quake3_recv_summary.txt")).samples.set_index("flow")
    assert samples.loc[4, "packets"] == 1426
    assert samples.loc[4, "max_delay_ms"] == 3.604
    assert samples.loc[1, "src"] == "198.18.20.1:50628"
    assert samples["avg_bitrate_kbps"].between(71, 73).all()


def test_rtt_mode_sender_log_holds_round_trip_times(fixture_text):
    rtt = itgdec.parse(fixture_text("itgdec/w1_rttm_send_summary.txt")).summary
    one_way = itgdec.parse(fixture_text("itgdec/w1_rttm_recv_summary.txt")).summary
    assert rtt["avg_delay_ms"] == 0.22
    assert one_way["avg_delay_ms"] == 0.14
    assert rtt["max_delay_ms"] == 1.178


def _packet_dump_delays_s(text):
    """(rx - tx) per packet of an ITGDec -l dump: 'txTime>19:9:34.965873 rxTime>19:9:34.965998'."""
    def seconds(stamp):
        hours, minutes, secs = stamp.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(secs)
    return np.array([seconds(rx) - seconds(tx) for tx, rx in re.findall(r"txTime>(\S+) rxTime>(\S+)", text)])


def test_rtt_summary_matches_the_packet_dumps(fixture_text):
    summary = itgdec.parse(fixture_text("itgdec/w1_rttm_send_summary.txt")).summary
    delays = _packet_dump_delays_s(fixture_text("itgdec/w1_rttm_send_packets_l.txt"))
    assert len(delays) == summary["packets"]
    assert delays.mean() * 1000 == pytest.approx(summary["avg_delay_ms"], abs=5e-4)
    assert delays.max() * 1000 == pytest.approx(summary["max_delay_ms"], abs=1e-3)
    # The Octave dump (-o) is the same packets as "seq h m s.us h m s.us size".
    octave = np.loadtxt(io.StringIO(fixture_text("itgdec/w1_rttm_send_packets_octave_o.txt")))
    rx_minus_tx = (octave[:, 4:7] @ [3600, 60, 1]) - (octave[:, 1:4] @ [3600, 60, 1])
    np.testing.assert_allclose(rx_minus_tx, delays, atol=1e-6)
    assert octave[:, 7].sum() == summary["bytes"]


def test_bursty_delay_artifact_is_visible_in_summary_and_dump(fixture_text):
    summary = itgdec.parse(fixture_text("itgdec/w3_bursty_recv_summary.txt")).summary
    assert summary["avg_loss_burst_pkts"] == 0.0  # TOTAL prints a bare "0"
    delays = _packet_dump_delays_s(fixture_text("itgdec/w3_bursty_recv_packets_l.txt"))
    assert len(delays) == summary["packets"] == 501
    assert delays.max() * 1000 == pytest.approx(summary["max_delay_ms"], abs=1e-3) == 1002.15
    assert (delays > 0.9).sum() == 5  # one ~1 s "delay" per ON period


def test_older_percent_format_is_accepted(fixture_text):
    text = fixture_text("itgdec/w1_rttm_recv_summary.txt").replace("(0.00 %)", "( 0 %)")
    assert itgdec.parse(text).summary["loss_pct"] == 0.0


@pytest.mark.parametrize(("name", "error", "message"), [
    ("empty_log_summary.txt", ParseError, "the log was empty"),
    ("missing_log_stdout.txt", ToolError, "Error opening log file '/nonexistent.log'"),
    ("missing_log_stderr.txt", ToolError, "No such file or directory"),
    ("itgsend_error_no_receiver.txt", ToolError, "Connect error in createTransportChan"),
    ("quirk_stdout_when_c_given.txt", ParseError, "without -v"),
    ("quirk_stderr_spinner.txt", ParseError, "stderr was merged"),
    ("itgrecv_stdout_all_runs.txt", ParseError, "ITGRecv's console output"),
    ("udp_loss5pct_itgsend_stdout.txt", ParseError, "ITGSend's console output"),
    ("w1_rttm_itgsend_stdout.txt", ParseError, "ITGSend's console output"),
    ("w3_bursty_itgsend_stdout.txt", ParseError, "ITGSend's console output"),
    ("w5_quake3_itgsend_stdout.txt", ParseError, "ITGSend's console output"),
    ("w6_video_itgsend_stdout.txt", ParseError, "ITGSend's console output"),
    ("w3_bursty_recv_packets_l.txt", ParseError, "unrecognised line"),
])
def test_non_summaries_are_refused(fixture_text, name, error, message):
    with pytest.raises(error, match=re.escape(message)) as caught:
        itgdec.parse(fixture_text(f"itgdec/{name}"), name)
    assert str(caught.value).startswith(name)
    if error is ParseError:
        assert not isinstance(caught.value, ToolError)


def test_empty_log_sentinels_without_the_banner(fixture_text):
    text = fixture_text("itgdec/empty_log_summary.txt").replace("Empty log file\n", "")
    with pytest.raises(ParseError, match=r"log was empty.*-90000"):
        itgdec.parse(text, "e.txt")


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.split("__________")[0], "no TOTAL RESULTS block"),
    (lambda t: t.rstrip("\n").rsplit("\n", 1)[0], "TOTAL RESULTS block incomplete"),
    (lambda t: t.replace("Number of flows          =             4", "Number of flows          =             5"),
     "TOTAL says 5 flows but 4"),
    (lambda t: t.replace("Total packets            =          1426", "Total packets            =          14x6", 1),
     "expected a number followed by"),
    (lambda t: t.replace("72.714724 Kbit/s", "72.714724 Mbit/s"),
     "expected a number followed by 'Kbit/s'"),
    (lambda t: t.replace("Flow number: 2", "Flow number: 4"), "flow 4 appears twice"),
    (lambda t: t.replace("Bytes received           =         90869\n", "", 1), "flow 4 lacks ['bytes']"),
])
def test_broken_summaries(fixture_text, edit, message):
    with pytest.raises(ParseError, match=re.escape(message)) as caught:
        itgdec.parse(edit(fixture_text("itgdec/w5_quake3_recv_summary.txt")), "q.txt")
    assert str(caught.value).startswith("q.txt")


@pytest.mark.parametrize("name", ["itgdec/udp_loss5pct_recv_summary.txt", "itgdec/w5_quake3_recv_summary.txt"])
def test_summary_truncation_at_line_boundaries(fixture_text, assert_same_parse, boundary_cuts, name):
    text = fixture_text(name)
    full = itgdec.parse(text)
    for cut in boundary_cuts(text):
        try:
            partial = itgdec.parse(text[:cut])
        except ParseError:
            continue
        assert_same_parse(partial, full)


@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_truncated_summary_raises_or_parses_identically(fixture_text, assert_same_parse, data):
    text = fixture_text("itgdec/w5_quake3_send_summary.txt")
    cut = data.draw(st.integers(min_value=0, max_value=len(text)))
    try:
        partial = itgdec.parse(text[:cut])
    except ParseError:
        return
    assert_same_parse(partial, itgdec.parse(text))


# --- per-interval files ----------------------------------------------------------------------


def test_packetloss_intervals_add_up_to_packets_dropped(fixture_text):
    loss = intervals(fixture_text, "udp_loss5pct_recv_packetloss_1000ms.dat", "packetloss")
    assert list(loss.columns) == ["time_s", "flow", "lost_packets"]
    assert loss["lost_packets"].dtype == "int64"
    flow_1 = loss[loss["flow"] == 1]
    assert flow_1["lost_packets"].tolist() == [3, 4, 10, 7, 6]
    summary = itgdec.parse(fixture_text("itgdec/udp_loss5pct_recv_summary.txt")).summary
    assert flow_1["lost_packets"].sum() == summary["packets_dropped"] == 30
    # The aggregate is kept as flow 0 for counts: here it equals the single flow.
    np.testing.assert_array_equal(loss.loc[loss["flow"] == 0, "lost_packets"], flow_1["lost_packets"])


def test_bitrate_intervals_give_back_the_bytes_received(fixture_text):
    bitrate = intervals(fixture_text, "udp_loss5pct_recv_bitrate_1000ms.dat", "bitrate")
    assert list(bitrate.columns) == ["time_s", "flow", "bitrate_kbps"]
    assert bitrate["time_s"].unique().tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    summary = itgdec.parse(fixture_text("itgdec/udp_loss5pct_recv_summary.txt")).summary
    assert bytes_from_bitrate(bitrate[bitrate["flow"] == 1], 1.0) == summary["bytes"] == 281250


# One ITGDec decode per workload at 1000 ms: file per metric, summary to compare with, flows.
# File names stay literal: test_every_fixture_is_used_by_a_test looks for them.
DECODES_1000MS = {
    "w4_100tcp": (  # TCP, nothing lost: the receiver's bytes equal the sender's summary
        {"bitrate": "w4_100tcp_recv_bitrate_1000ms.dat", "delay": "w4_100tcp_recv_delay_1000ms.dat",
         "jitter": "w4_100tcp_recv_jitter_1000ms.dat", "packetloss": "w4_100tcp_recv_packetloss_1000ms.dat",
         "combined": "w4_100tcp_recv_combined_1000ms.dat"},
        "w4_100tcp_send_summary.txt", 100),
    "w5_quake3": (
        {"bitrate": "w5_quake3_recv_bitrate_1000ms.dat", "delay": "w5_quake3_recv_delay_1000ms.dat",
         "jitter": "w5_quake3_recv_jitter_1000ms.dat", "packetloss": "w5_quake3_recv_packetloss_1000ms.dat",
         "combined": "w5_quake3_recv_combined_1000ms.dat"},
        "w5_quake3_recv_summary.txt", 4),
    "w6_video": (
        {"bitrate": "w6_video_recv_bitrate_1000ms.dat", "delay": "w6_video_recv_delay_1000ms.dat",
         "jitter": "w6_video_recv_jitter_1000ms.dat", "packetloss": "w6_video_recv_packetloss_1000ms.dat",
         "combined": "w6_video_recv_combined_1000ms.dat"},
        "w6_video_send_summary.txt", 10),
    "w1_rttm": (
        {"bitrate": "w1_rttm_recv_bitrate_1000ms.dat", "delay": "w1_rttm_recv_delay_1000ms.dat",
         "jitter": "w1_rttm_recv_jitter_1000ms.dat", "packetloss": "w1_rttm_recv_packetloss_1000ms.dat",
         "combined": "w1_rttm_recv_combined_1000ms.dat"},
        "w1_rttm_recv_summary.txt", 1),
}


@pytest.mark.parametrize("workload", DECODES_1000MS)
def test_interval_files_agree_with_the_summary(fixture_text, workload):
    files, summary_name, flows = DECODES_1000MS[workload]
    summary = itgdec.parse(fixture_text(f"itgdec/{summary_name}"))
    bitrate = intervals(fixture_text, files["bitrate"], "bitrate")
    per_flow = bitrate[bitrate["flow"] != 0]
    assert per_flow["flow"].nunique() == flows
    assert bytes_from_bitrate(per_flow, 1.0) == pytest.approx(summary.summary["bytes"], abs=1)
    by_flow = per_flow.groupby("flow")["bitrate_kbps"].sum() * 125
    np.testing.assert_allclose(by_flow.to_numpy(), summary.samples["bytes"].to_numpy(), atol=1)
    # The aggregate column is the sum of the flows for bitrate.
    aggregate = bitrate[bitrate["flow"] == 0].set_index("time_s")["bitrate_kbps"]
    np.testing.assert_allclose(per_flow.groupby("time_s")["bitrate_kbps"].sum(), aggregate, atol=1e-3)

    loss = intervals(fixture_text, files["packetloss"], "packetloss")
    assert loss.loc[loss["flow"] != 0, "lost_packets"].sum() == summary.summary["packets_dropped"] == 0

    combined = intervals(fixture_text, files["combined"], "combined")
    np.testing.assert_array_equal(combined["bitrate_kbps"], aggregate)
    for metric in ("delay", "jitter"):
        values = intervals(fixture_text, files[metric], metric)
        assert set(values["flow"]) == set(range(1, flows + 1))  # the SUM aggregate is dropped
        # ITGDec's aggregate (in -c) is the sum of the per-flow values, not a mean.
        sums = values.groupby("time_s")[f"{metric}_ms"].sum()
        np.testing.assert_allclose(combined[f"{metric}_sum_ms"].fillna(0), sums, atol=flows * 1e-3)


def test_idle_intervals_masked_with_the_bitrate(fixture_text):
    bitrate = intervals(fixture_text, "w6_video_recv_bitrate_1000ms.dat", "bitrate")
    delay = intervals(fixture_text, "w6_video_recv_delay_1000ms.dat", "delay", bitrate=bitrate)
    jitter = intervals(fixture_text, "w6_video_recv_jitter_1000ms.dat", "jitter", bitrate=bitrate)
    flow_6 = delay[delay["flow"] == 6].set_index("time_s")["delay_ms"]
    assert flow_6.loc[:4.0].tolist() == [0.022, 0.024, 0.033, 0.024, 0.021]
    assert flow_6.loc[5.0:].isna().all()  # the video of flow 6 ended during second 4
    idle = bitrate[bitrate["flow"] != 0]["bitrate_kbps"].to_numpy() == 0
    assert idle.sum() == 31  # zero cells of the flow columns of the bitrate file
    np.testing.assert_array_equal(delay["delay_ms"].isna().to_numpy(), idle)
    np.testing.assert_array_equal(jitter["jitter_ms"].isna().to_numpy(), idle)
    unmasked = intervals(fixture_text, "w6_video_recv_delay_1000ms.dat", "delay")
    assert (unmasked.loc[idle, "delay_ms"] == 0).all()


def test_quake3_partial_last_interval(fixture_text):
    bitrate = intervals(fixture_text, "w5_quake3_recv_bitrate_1000ms.dat", "bitrate")
    delay = intervals(fixture_text, "w5_quake3_recv_delay_1000ms.dat", "delay", bitrate=bitrate)
    jitter = intervals(fixture_text, "w5_quake3_recv_jitter_1000ms.dat", "jitter", bitrate=bitrate)
    last = delay[delay["time_s"] == 10.0].set_index("flow")["delay_ms"]
    assert np.isnan(last.loc[4]) and last.loc[2] == 0.047
    assert jitter[(jitter["time_s"] == 0.0) & (jitter["flow"] == 1)]["jitter_ms"].item() == 0.059
    assert bitrate[(bitrate["time_s"] == 10.0) & (bitrate["flow"] == 0)]["bitrate_kbps"].item() == 5.688


def test_w4_has_101_data_columns(fixture_text):
    header = fixture_text("itgdec/w4_100tcp_recv_bitrate_1000ms.dat").split("\n")[0].split()
    assert len(header) == 102  # Time + 100 flows + Aggregate-Flow
    bitrate = intervals(fixture_text, "w4_100tcp_recv_bitrate_1000ms.dat", "bitrate")
    assert len(bitrate) == 11 * 101
    assert bitrate["flow"].unique().tolist() == list(range(0, 101))
    delay = intervals(fixture_text, "w4_100tcp_recv_delay_1000ms.dat", "delay", bitrate=bitrate)
    assert len(delay) == 11 * 100
    first = fixture_text("itgdec/w4_100tcp_recv_delay_1000ms.dat").split("\n")[1].split()
    flow_16_at_0 = delay[(delay["flow"] == 16) & (delay["time_s"] == 0)]["delay_ms"].item()
    assert flow_16_at_0 == pytest.approx(float(first[1]) * 1000)  # flow 16 is the first column


def test_rtt_send_side_intervals(fixture_text):
    bitrate = intervals(fixture_text, "w1_rttm_send_bitrate_1000ms.dat", "bitrate")
    delay = intervals(fixture_text, "w1_rttm_send_delay_1000ms.dat", "delay", bitrate=bitrate)
    jitter = intervals(fixture_text, "w1_rttm_send_jitter_1000ms.dat", "jitter", bitrate=bitrate)
    loss = intervals(fixture_text, "w1_rttm_send_packetloss_1000ms.dat", "packetloss")
    combined = intervals(fixture_text, "w1_rttm_send_combined_1000ms.dat", "combined")
    summary = itgdec.parse(fixture_text("itgdec/w1_rttm_send_summary.txt")).summary
    assert bytes_from_bitrate(bitrate[bitrate["flow"] == 1], 1.0) == summary["bytes"]
    # Interval RTT means weighted by packets (bitrate; fixed 64 B packets) give the summary's mean.
    weights = bitrate.loc[bitrate["flow"] == 1, "bitrate_kbps"].to_numpy()
    assert np.average(delay["delay_ms"], weights=weights) == pytest.approx(summary["avg_delay_ms"], abs=2e-3)
    assert jitter["jitter_ms"].notna().all()
    assert loss["lost_packets"].sum() == 0
    np.testing.assert_allclose(combined["delay_sum_ms"], delay["delay_ms"])  # one flow: sum = value


def test_bursty_200ms_bins(fixture_text):
    bitrate = intervals(fixture_text, "w3_bursty_recv_bitrate_200ms.dat", "bitrate")
    flow = bitrate[bitrate["flow"] == 1]
    assert flow["time_s"].iloc[:6].tolist() == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert flow["bitrate_kbps"].iloc[:10].tolist() == [500, 500, 500, 500, 475, 0, 0, 0, 0, 0]
    assert bytes_from_bitrate(flow, 0.2) == 313125
    coarse = intervals(fixture_text, "w3_bursty_recv_bitrate_1000ms.dat", "bitrate")
    assert bytes_from_bitrate(coarse[coarse["flow"] == 1], 1.0) == 313125
    combined = intervals(fixture_text, "w3_bursty_recv_combined_200ms.dat", "combined")
    assert combined["delay_sum_ms"].isna().tolist() == (combined["bitrate_kbps"] == 0).tolist()
    assert combined["delay_sum_ms"].max() == 1002.15  # the ON/OFF artifact, in the last bin
    combined_1s = intervals(fixture_text, "w3_bursty_recv_combined_1000ms.dat", "combined")
    assert bytes_from_bitrate(combined_1s, 1.0) == 313125
    delay = intervals(fixture_text, "w3_bursty_recv_delay_200ms.dat", "delay", bitrate=bitrate)
    jitter = intervals(fixture_text, "w3_bursty_recv_jitter_200ms.dat", "jitter", bitrate=bitrate)
    np.testing.assert_allclose(delay["delay_ms"], combined["delay_sum_ms"])
    np.testing.assert_allclose(jitter["jitter_ms"], combined["jitter_sum_ms"])
    loss = intervals(fixture_text, "w3_bursty_recv_packetloss_200ms.dat", "packetloss")
    assert loss["lost_packets"].sum() == 0 and len(loss) == 2 * 51


def test_combined_columns(fixture_text):
    combined = intervals(fixture_text, "udp_loss5pct_recv_combined_1000ms.dat", "combined")
    assert list(combined.columns) == ["time_s", "flow", "bitrate_kbps", "delay_sum_ms", "jitter_sum_ms",
                                      "lost_packets"]
    assert combined["lost_packets"].tolist() == [3, 4, 10, 7, 6]
    delay = intervals(fixture_text, "udp_loss5pct_recv_delay_1000ms.dat", "delay")
    jitter = intervals(fixture_text, "udp_loss5pct_recv_jitter_1000ms.dat", "jitter")
    assert delay["delay_ms"].tolist() == [0.082, 0.052, 0.082, 0.14, 0.164]
    np.testing.assert_array_equal(combined["delay_sum_ms"], delay["delay_ms"])
    np.testing.assert_array_equal(combined["jitter_sum_ms"], jitter["jitter_ms"])


@pytest.mark.parametrize(("name", "metric", "edit", "message"), [
    ("udp_loss5pct_recv_combined_1000ms.dat", "bitrate", None, "is not 'Time <flow>-<src>-<dst>"),
    ("udp_loss5pct_recv_bitrate_1000ms.dat", "combined", None, "a -b/-d/-j/-p file, not -c"),
    ("udp_loss5pct_recv_bitrate_1000ms.dat", "bitrate", lambda t: t[:-4], "six decimals"),
    ("udp_loss5pct_recv_bitrate_1000ms.dat", "bitrate", lambda t: t.rsplit(" ", 1)[0], "expected 3"),
    ("udp_loss5pct_recv_bitrate_1000ms.dat", "bitrate", lambda t: t.split("\n")[0], "no interval rows"),
    ("udp_loss5pct_recv_bitrate_1000ms.dat", "bitrate", lambda t: "\b|\b\\\b-\b/" + t, "stderr was merged"),
    ("udp_loss5pct_recv_bitrate_1000ms.dat", "bitrate", lambda t: t.replace("3.000000 460", "1.000000 460"),
     "Time does not increase"),
    ("udp_loss5pct_recv_bitrate_1000ms.dat", "bitrate", lambda t: t.replace("405.000000 405", "-nan 405"),
     "six decimals"),
    ("udp_loss5pct_recv_delay_1000ms.dat", "packetloss", None, "not whole packets"),
    ("udp_loss5pct_recv_bitrate_1000ms.dat", "bitrate", lambda t: "", "empty interval file"),
])
def test_broken_interval_files(fixture_text, name, metric, edit, message):
    text = fixture_text(f"itgdec/{name}")
    with pytest.raises(ParseError, match=re.escape(message)) as caught:
        itgdec.parse_intervals(edit(text) if edit else text, metric, name)
    assert str(caught.value).startswith(name)


def test_mismatched_bitrate_frame(fixture_text):
    bitrate = intervals(fixture_text, "w5_quake3_recv_bitrate_1000ms.dat", "bitrate")
    with pytest.raises(ParseError, match="same intervals and flows"):
        intervals(fixture_text, "w6_video_recv_delay_1000ms.dat", "delay", bitrate=bitrate)


def test_unknown_metric():
    with pytest.raises(ValueError, match="unknown ITGDec interval metric 'rtt'"):
        itgdec.parse_intervals("", "rtt")


@settings(max_examples=50, deadline=None)
@given(data=st.data(), name_metric=st.sampled_from([
    ("w5_quake3_recv_bitrate_1000ms.dat", "bitrate"),
    ("w5_quake3_recv_delay_1000ms.dat", "delay"),
    ("w3_bursty_recv_combined_200ms.dat", "combined"),
]))
def test_truncated_interval_file_parses_into_a_prefix_or_raises(fixture_text, data, name_metric):
    name, metric = name_metric
    text = fixture_text(f"itgdec/{name}")
    cut = data.draw(st.integers(min_value=0, max_value=len(text)))
    try:
        partial = itgdec.parse_intervals(text[:cut], metric)
    except ParseError:
        return
    full = itgdec.parse_intervals(text, metric)
    expected = full[full["time_s"].isin(partial["time_s"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(partial, expected)
