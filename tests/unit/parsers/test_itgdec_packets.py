"""The per-packet dump of ITGDec (``-l``) on real D-ITG 2.8.1 output (tests/fixtures/itgdec/)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seconetbench.errors import ParseError
from seconetbench.parsers import itgdec, itgdec_packets, parse_file

pytestmark = pytest.mark.unit


def packets(fixture_path, name):
    return itgdec_packets.parse_bytes(fixture_path(f"itgdec/{name}").read_bytes(), name)


@pytest.mark.parametrize("stem", ["udp_loss5pct_recv", "w3_bursty_recv"])
def test_packets_agree_with_itgdec_summary_of_the_same_log(fixture_path, fixture_text, stem):
    """Count, bytes and delays computed from the packets equal what ITGDec itself summarised."""
    name = "udp_loss5pct_recv_packets.txt" if stem.startswith("udp") else f"{stem}_packets_l.txt"
    result = packets(fixture_path, name)
    summary = itgdec.parse(fixture_text(f"itgdec/{stem}_summary.txt")).samples.iloc[0]
    samples = result.samples
    assert list(samples.columns) == list(itgdec_packets.COLUMNS)
    assert samples.dtypes.astype(str).to_dict() == itgdec_packets.COLUMNS
    assert len(samples) == summary["packets"] == result.summary["packets"]
    assert samples["size_bytes"].sum() == summary["bytes"] == result.summary["bytes"]
    assert samples["delay_ms"].min() == pytest.approx(summary["min_delay_ms"], abs=1e-6)
    assert samples["delay_ms"].max() == pytest.approx(summary["max_delay_ms"], abs=1e-6)
    assert samples["delay_ms"].mean() == pytest.approx(summary["avg_delay_ms"], abs=1e-3)  # ITGDec rounds to 1 us
    assert samples["src"].astype(str).unique().tolist() == [summary["src"]]
    assert samples["dst"].astype(str).unique().tolist() == [summary["dst"]]


def test_flows_endpoints_and_sequence_of_a_multi_flow_dump(fixture_path):
    samples = packets(fixture_path, "w5_quake3_recv_packets_l_head200.txt").samples
    assert sorted(samples["flow"].unique()) == [1, 2, 3, 4]  # blocks of 50 packets, flows interleaved
    assert samples.groupby("flow")["seq"].apply(lambda s: s.is_monotonic_increasing).all()
    # one source and one destination endpoint per flow, "ip:port"
    endpoints = samples.groupby("flow")[["src", "dst"]].nunique()
    assert (endpoints == 1).all().all()
    assert samples["dst"].astype(str).str.fullmatch(r"198\.18\.\d+\.\d+:\d+").all()
    assert (samples["rx_time_of_day_s"] >= samples["tx_time_of_day_s"]).all()


def test_sender_log_without_rtt_mode_has_zero_delay(fixture_path):
    """A sender log stamps rx = tx unless ITGSend ran with -m rttm; w1 did (delays are RTTs)."""
    samples = packets(fixture_path, "w1_rttm_send_packets_l.txt").samples
    assert len(samples) == 50 and (samples["delay_ms"] > 0).all()


def test_time_of_day_without_zero_padding_and_midnight_wrap(fixture_path):
    line = fixture_path("itgdec/udp_loss5pct_recv_packets.txt").read_text().splitlines()[0]
    prefix = line[:line.index("txTime>")]
    wrapped = f"{prefix}txTime>23:59:59.999900 rxTime>0:0:0.000150 Size>  625\n"
    unpadded = f"{prefix}txTime>7:5:3.500000 rxTime>7:5:3.500250 Size>  625\n"
    samples = itgdec_packets.parse_bytes((wrapped + unpadded).encode()).samples
    assert samples["delay_ms"].tolist() == pytest.approx([0.25, 0.25])
    assert samples["tx_time_of_day_s"].iloc[1] == pytest.approx(7 * 3600 + 5 * 60 + 3.5)


def test_empty_dump_has_the_schema():
    result = itgdec_packets.parse_bytes(b"\n")
    assert list(result.samples.columns) == list(itgdec_packets.COLUMNS) and result.summary["packets"] == 0


@pytest.mark.parametrize("garbage, where", [
    (b"Flow>0001 Seq>      1 Src> 198.18.20.1/1 Dest> 198.18.20.2/2 txTime>1:2:3.0\n", "columns"),
    (b"Flow>0001 Seq>      x Src> 198.18.20.1/1 Dest> 198.18.20.2/2 txTime>1:2:3.0 rxTime>1:2:3.1 Size>  1\n", "x"),
    (b"Flow>0001 Sxq>      1 Src> 198.18.20.1/1 Dest> 198.18.20.2/2 txTime>1:2:3.0 rxTime>1:2:3.1 Size>  1\n", "Seq"),
])
def test_garbage_is_refused_with_the_reason(garbage, where, fixture_path):
    good = fixture_path("itgdec/udp_loss5pct_recv_packets.txt").read_bytes()
    with pytest.raises(ParseError, match=where) as error:
        itgdec_packets.parse_bytes(good + garbage, "dump.txt")
    assert "dump.txt" in str(error.value)


def test_truncated_last_line_is_refused(fixture_path):
    data = fixture_path("itgdec/udp_loss5pct_recv_packets.txt").read_bytes()
    with pytest.raises(ParseError):
        itgdec_packets.parse_bytes(data[:-60])


def test_parse_file_reads_the_dump_as_bytes(fixture_path):
    via_file = parse_file("itgdec_packets", fixture_path("itgdec/w3_bursty_recv_packets_l.txt"))
    direct = packets(fixture_path, "w3_bursty_recv_packets_l.txt")
    pd.testing.assert_frame_equal(via_file.samples, direct.samples)
    assert np.isfinite(via_file.samples["delay_ms"]).all()
