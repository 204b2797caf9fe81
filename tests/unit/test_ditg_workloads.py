"""D-ITG workloads without a testbed: scripts, video draws, config, parsing real ITGDec outputs into
the ditg table, its summary values and figures."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from seconetbench import config, convergence, figures, parsers, tables
from seconetbench.errors import ConfigError
from seconetbench.figures import ditg as ditg_figures
from seconetbench.spec import SetupSpec, WorkloadSpec
from seconetbench.workloads import get_workload
from seconetbench.workloads.ditg import (
    FLOW_ERROR,
    INTERVAL_OPTIONS,
    pair_file,
    pps,
    started_flows,
)
from tests.conftest import SHARED_FIXTURES, parsed_as_the_workflow_does
from tests.unit import tablegen

pytestmark = pytest.mark.unit

ITGDEC = SHARED_FIXTURES / "itgdec"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "ditg"


def workload(kind: str, **params):
    """The workload with the schema's defaults filled in, as the runner builds it."""
    cfg = config.validate({
        "sweep": {"single": {"solutions": ["bridge"], "filters": ["none"], "containers": [2]}, "workloads": ["w"]},
        "workloads": {"w": {"kind": kind, **params}},
    })
    params = dict(cfg["workloads"]["w"])
    return get_workload(WorkloadSpec("w", params.pop("kind"), params))


# ------------------------------------------------------------------------------ scripts
def test_bursty_script_maps_the_paper_bursts_to_itgsend_options():
    text, flows = workload("bursty").script("198.19.1.2", 0)
    # 500 kbit/s of payload during 1 s ON, then 1 s OFF: 100 packets/s of 625 bytes
    assert text == "-a 198.19.1.2 -rp 10001 -d 1000 -T UDP -t 10000 -C 100 -c 625 -B C 1000 C 1000\n"
    assert flows[0]["rate_pps"] * 625 * 8 == 500_000


def test_tcp100_script_has_one_line_and_port_per_flow():
    text, flows = workload("tcp100", flows=100, base_port=20001).script("198.19.1.2", 0)
    lines = text.splitlines()
    assert len(lines) == len(flows) == 100
    assert lines[0] == "-a 198.19.1.2 -rp 20001 -d 1000 -T TCP -t 10000 -C 100 -c 625"
    assert lines[-1].startswith("-a 198.19.1.2 -rp 20100 ")
    assert [f["flow"] for f in flows] == list(range(1, 101))


def test_quake3_model_is_the_last_option_of_each_line():
    text, _ = workload("quake3").script("198.19.1.2", 0)
    assert text.splitlines() == [f"-a 198.19.1.2 -rp {10001 + i} -d 1000 -t 10000 Quake3" for i in range(4)]


def test_a_frozen_window_lengthens_every_flows_duration_option_only():
    """Where the run stops ITGSend itself (FREEZE_MARGIN_MS), each line's -t grows; the flows keep
    their nominal duration, which the run times; only TCP kinds of one duration qualify."""
    from types import SimpleNamespace

    tcp100 = workload("tcp100", flows=3, duration_s=5)
    text, flows = tcp100.script("198.19.1.2", 0, extend_ms=2000)
    assert text.splitlines()[0] == "-a 198.19.1.2 -rp 10001 -d 1000 -T TCP -t 7000 -C 100 -c 625"
    assert {f["duration_s"] for f in flows} == {5}
    local = SimpleNamespace(capabilities=SimpleNamespace(local_generators=True))
    remote = SimpleNamespace(capabilities=SimpleNamespace(local_generators=False))
    assert tcp100.freezable(local) and not tcp100.freezable(remote)
    assert not workload("video").freezable(local)  # flows of several durations
    assert not workload("bursty").freezable(local)  # UDP


def test_the_start_of_every_flow_is_read_from_itgsend_stdout():
    """The run ends ITGSend once every flow has sent for its duration from its start line
    (recorded real stdouts: 100 TCP flows started in any order, and a single flow)."""
    hundred = (ITGDEC / "w4_100tcp_itgsend_stdout.txt").read_text()
    assert started_flows(hundred) == set(range(1, 101))
    assert started_flows((ITGDEC / "w3_bursty_itgsend_stdout.txt").read_text()) == {1}
    assert started_flows(hundred.split("Started sending packets of flow ID: 1\n")[0]) < set(range(1, 101))


def test_a_flow_that_could_not_start_is_named_by_itgsend_stdout():
    """Recorded real stdout of a tcp100 run whose first flow found the sink's port 10001 taken
    (in TIME_WAIT after the isolation workload's probe): 99 flows start, and the error line that
    makes the run fail at once instead of at its time limit is there."""
    stdout = (Path(__file__).parents[1] / "fixtures" / "ditg" / "tcp100_bind_error_itgsend_stdout.txt").read_text()
    assert started_flows(stdout) == set(range(2, 101))
    assert FLOW_ERROR.search(stdout).group(0) == "Error on bind to receiver side"
    assert FLOW_ERROR.search((ITGDEC / "w4_100tcp_itgsend_stdout.txt").read_text()) is None


def test_decode_reads_each_log_once_and_writes_what_itgdec_alone_writes(tmp_path):
    """The recorded real bursty logs (copied from shared/fixtures/ditg) decoded by the workload (one ITGDec pass per log, -v for
    the receiver's summary beside its per-interval files) give the summaries of a plain ITGDec
    call and the per-interval files of a call without -v; the binary logs are then deleted."""
    import subprocess
    from types import SimpleNamespace

    for side in ("recv", "send"):
        shutil.copy(SHARED_FIXTURES / f"ditg/w3_bursty_{side}.log", tmp_path / pair_file("c01-c02", f"{side}_log"))
    bursty = workload("bursty")
    bursty.decode(SimpleNamespace(out_dir=tmp_path, label="t"), ["c01-c02"])
    for side in ("recv", "send"):
        alone = subprocess.run(["ITGDec", str(SHARED_FIXTURES / f"ditg/w3_bursty_{side}.log")],
                               capture_output=True, text=True, check=True).stdout
        assert (tmp_path / pair_file("c01-c02", f"{side}_summary")).read_text() == alone
    reference = tmp_path / "reference"
    reference.mkdir()
    options = []
    for metric, option in INTERVAL_OPTIONS.items():
        options += [option, str(bursty.params["interval_ms"]), str(reference / metric)]
    subprocess.run(["ITGDec", str(SHARED_FIXTURES / "ditg/w3_bursty_recv.log"), *options], capture_output=True, check=True)
    for metric in INTERVAL_OPTIONS:
        assert (tmp_path / pair_file("c01-c02", metric)).read_bytes() == (reference / metric).read_bytes()
    assert not list(tmp_path.glob("*.log"))


# ------------------------------------------------------------------------------ video model
def test_video_draws_are_seeded_per_pair_and_scaled_to_gb_per_hour():
    video = workload("video", seed=7, length_scale=1)
    first, again = video.flows("198.19.1.2", 0), video.flows("198.19.1.2", 0)
    assert first == again
    assert video.flows("198.19.1.2", 1) != first  # each pair its own videos
    assert workload("video", seed=8, length_scale=1).flows("198.19.1.2", 0) != first
    assert len(first) == 10
    # the average stream carries 3 GB per hour (rates are rounded to 0.1 packet/s)
    mean_kbps = sum(f["bitrate_kbps"] for f in first) / len(first)
    assert mean_kbps == pytest.approx(3e9 * 8 / 3600 / 1000, rel=1e-3)
    assert all(f["duration_s"] == pytest.approx(f["model_length_s"], abs=1e-3) for f in first)
    assert all(f["options"].startswith("-T TCP ") and f["options"].endswith("-c 1370") for f in first)


def test_video_model_looks_like_the_published_statistics():
    from random import Random

    from seconetbench.workloads.ditg import draw_videos

    videos = draw_videos(Random(1), 20_000)
    lengths = pd.Series([length for length, _ in videos])
    sizes = pd.Series([size for _, size in videos])
    assert 0.95 <= (lengths <= 600).mean() <= 0.99  # Cheng et al.: 97.9 % up to 600 s
    assert 6 <= sizes.mean() <= 11  # mean file size 8.4 MB
    assert 0.95 <= (sizes < 25).mean()  # 98.3 % under 25 MB


def test_length_scale_shortens_videos_but_keeps_their_rates():
    full, short = (workload("video", length_scale=s).flows("198.19.1.2", 0) for s in (1, 0.1))
    assert [f["rate_pps"] for f in full] == [f["rate_pps"] for f in short]
    for long, scaled in zip(full, short, strict=True):
        assert scaled["duration_s"] == pytest.approx(max(1.0, long["model_length_s"] * 0.1), abs=1e-3)


# ------------------------------------------------------------------------------ config
def test_config_fills_ditg_defaults_and_names_bad_keys():
    assert workload("tcp100").params == {"flows": 100, "duration_s": 10, "rate_kbps": 500, "payload_bytes": 625,
                                         "interval_ms": 1000, "base_port": 10001, "keep_logs": False}
    assert workload("bursty").params["interval_ms"] == 100
    with pytest.raises(ConfigError, match="workloads.w.*rate_kbps"):
        workload("bursty", rate_kbps=500)
    with pytest.raises(ConfigError, match="workloads.w.flows"):
        workload("quake3", flows=0)


def test_rate_conversion():
    assert pps(500, 625) == 100
    assert pps(6666.667, 1370) == pytest.approx(608.27, abs=0.01)


# ------------------------------------------------------------------------------ parsing
def raw_target(tmp_path, fixture: str, interval_ms: int, kind: str, setup: str = "single-bridge-none-c2"):
    """A raw target made of real ITGDec outputs, as the workload's run() leaves it."""
    raw = tmp_path / setup / kind / "rep1"
    raw.mkdir(parents=True)
    pair = "c01-c02"
    shutil.copy(ITGDEC / f"{fixture}_recv_summary.txt", raw / pair_file(pair, "recv_summary"))
    shutil.copy(ITGDEC / f"{fixture}_send_summary.txt", raw / pair_file(pair, "send_summary"))
    for metric in INTERVAL_OPTIONS:
        shutil.copy(ITGDEC / f"{fixture}_recv_{metric}_{interval_ms}ms.dat", raw / pair_file(pair, metric))
    work = workload(kind, interval_ms=interval_ms)
    meta = {"setup": SetupSpec.parse(setup).to_dict(), "target": {"setup": setup, "workload": kind, "rep": 1},
            "workload": {"name": kind, "kind": kind, **work.params}, "table": "ditg",
            "workload_run": {"kind": kind, "protocol": work.protocol, "interval_ms": interval_ms,
                             "pairs": [{"pair": pair, "flows": []}]}}
    (raw / "meta.json").write_text(json.dumps(meta))
    return raw


@pytest.mark.parametrize(("fixture", "interval_ms", "kind", "flows"),
                         [("w3_bursty", 200, "bursty", 1), ("w5_quake3", 1000, "quake3", 4)])
def test_parsed_cell_agrees_with_itgdec_totals(tmp_path, fixture, interval_ms, kind, flows):
    raw = raw_target(tmp_path, fixture, interval_ms, kind)
    rows = parsed_as_the_workflow_does(raw, tmp_path / "out.parquet", target_tables=False)
    assert tables.kind_of(tmp_path / "out.parquet") == "ditg"
    total = parsers.parse_file("itgdec", ITGDEC / f"{fixture}_recv_summary.txt").summary
    sent = parsers.parse_file("itgdec", ITGDEC / f"{fixture}_send_summary.txt").summary
    whole, intervals = rows[rows["interval"] == 0], rows[rows["interval"] > 0]
    assert sorted(whole["flow"]) == list(range(1, flows + 1))
    assert whole["packets"].sum() == total["packets"]
    assert whole["bytes"].sum() == intervals["bytes"].sum() == total["bytes"]
    assert whole["packets_sent"].sum() == sent["packets"]
    assert intervals.groupby("flow")["interval"].apply(lambda s: list(s) == list(range(1, len(s) + 1))).all()
    assert set(rows["traffic"]) == {kind} and set(rows["protocol"]) == {"udp"}


def test_bursty_off_periods_have_no_delay_and_the_artifact_is_visible(tmp_path):
    rows = parsed_as_the_workflow_does(raw_target(tmp_path, "w3_bursty", 200, "bursty"), tmp_path / "out.parquet",
                                       target_tables=False)
    intervals = rows[rows["interval"] > 0]
    off = intervals[intervals["bitrate_kbps"] == 0]
    assert len(off) > 0 and off["delay_ms"].isna().all() and off["jitter_ms"].isna().all()
    whole = rows[rows["interval"] == 0].iloc[0]
    assert whole["max_delay_ms"] == pytest.approx(1002.15)  # the last packet of a burst, sent after OFF
    # it lands in the first interval of the next burst (1 s / 21 packets), or alone after the
    # last burst: one interval per burst (5 bursts) is off, so the median over intervals is not
    delayed = intervals.loc[intervals["delay_ms"] > 10, "delay_ms"]
    assert len(delayed) == 5 and delayed.iloc[-1] == pytest.approx(1002.15)
    assert intervals["delay_ms"].median() < 0.3


def test_ditg_summary_uses_interval_delays(tmp_path):
    rows = parsed_as_the_workflow_does(raw_target(tmp_path, "w5_quake3", 1000, "quake3"), tmp_path / "out.parquet",
                                       target_tables=False)
    values, metric, per_rep = convergence.samples(rows, "ditg")
    assert (metric, per_rep) == ("delay_ms", "median")
    assert (values["interval"] > 0).all() and values["delay_ms"].notna().all()
    assert len(values) == rows.loc[rows["interval"] > 0, "delay_ms"].notna().sum()


# ------------------------------------------------------------------------------ figures
def ditg_table(tmp_path) -> pd.DataFrame:
    frames = []
    for setup in ("single-bridge-none-c2", "single-bridge-iptables-c2"):
        for fixture, interval_ms, kind in (("w3_bursty", 200, "bursty"), ("w5_quake3", 1000, "quake3")):
            raw = raw_target(tmp_path / setup, fixture, interval_ms, kind, setup)
            frames.append(parsed_as_the_workflow_does(raw, tmp_path / f"{setup}-{kind}.parquet", target_tables=False))
    return tables.conform(pd.concat(frames, ignore_index=True), "ditg").to_pandas()


def test_ditg_figures_are_registered_for_the_ditg_table():
    assert {figures.FIGURES[n].table for n in ("ditg_bitrate", "ditg_delay")} == {"ditg"}


def test_per_flow_delay_is_robust_to_the_burst_artifact(tmp_path):
    flows = ditg_figures.per_flow(ditg_table(tmp_path))
    assert len(flows) == 2 * (1 + 4)
    assert (flows["delay_ms"] < 1).all()  # ITGDec's own average for bursty is 10 ms, its max 1 s
    bursty = flows[flows["traffic"] == "bursty"]
    assert bursty["bitrate_kbps"].tolist() == [pytest.approx(250.025277)] * 2


@pytest.mark.parametrize("name", ["ditg_bitrate", "ditg_delay"])
def test_ditg_figures_state_n_and_save(tmp_path, name):
    spec = figures.FIGURES[name]
    ditg = ditg_table(tmp_path)
    chart = spec.builder(ditg, tablegen.summary_table(ditg))
    as_dict = chart.to_dict()
    assert "n = 10 flows" in "\n".join(as_dict["title"]["subtitle"])
    assert as_dict["facet"]["column"]["field"] == "workload"
    written = figures.save_chart(chart, tmp_path / name)
    assert all(path.stat().st_size > 0 for path in written)


def test_ditg_figure_on_an_empty_table_names_the_workloads():
    with pytest.raises(ValueError, match="bursty"):
        ditg_figures.ditg_delay(tables.empty("ditg"), tables.empty("summary"))


def test_tcp_waits_until_every_packet_sent_has_arrived(tmp_path):
    """A slow path still delivers after the senders' last packet: for TCP the run ends the
    generators once each receiver log holds as many 144-byte records as its sender log (here a
    writer appends 30 records, then stops); a receiver log that stops short ends the wait after
    the stall time, UDP's after the quiet time, one that keeps growing at the limit."""
    import threading

    from seconetbench.workloads.ditg import await_delivered

    sent, received = tmp_path / "c01-c02.send.log", tmp_path / "c01-c02.recv.log"
    sent.write_bytes(b"x" * 144 * 30)

    def deliver() -> None:
        for _ in range(30):
            with received.open("ab") as handle:
                handle.write(b"x" * 144)
            time.sleep(0.01)

    writer = threading.Thread(target=deliver)
    writer.start()
    waited = await_delivered([received], [sent], stall_s=60, limit_s=60)
    assert received.stat().st_size == sent.stat().st_size  # not before the last record
    assert waited < 60
    writer.join()
    sent.write_bytes(b"x" * 144 * 31)  # one packet never arrives
    assert await_delivered([received], [sent], stall_s=0.1, limit_s=60) < 60
    assert await_delivered([received, tmp_path / "not-yet.log"], quiet_s=0.1, limit_s=60) < 60  # UDP
    assert await_delivered([received], [sent], stall_s=100, limit_s=0.1) >= 0.1


def test_itgrecv_taking_a_request_is_read_from_its_output():
    """The pacing of the flow requests counts ITGRecv's 'Listening on' lines (recorded real
    outputs of tcp100 targets on multi-ipsec-none-c8: TCP ports on stdout, 97 taken before the
    channel broke; UDP ports on stderr in a bursty target)."""
    from seconetbench.workloads.ditg import LISTENING

    desync = FIXTURES / "tcp100_ipsec_desync_itgrecv_stdout.txt"
    assert len(LISTENING.findall(desync.read_text())) == 97
    # what the broken channel looked like at both ends (the run failed on ITGSend's error line)
    assert "aborted caused by unknown message received" in (FIXTURES / "tcp100_ipsec_desync_itgrecv_stderr.txt").read_text()
    itgsend = (FIXTURES / "tcp100_ipsec_desync_itgsend_stdout.txt").read_text()
    assert FLOW_ERROR.search(itgsend).group(0) == "Error on bind to receiver side" and not started_flows(itgsend)
    assert "Receiver has shut down the connection gracefully" in (FIXTURES / "tcp100_ipsec_desync_itgsend_stderr.txt").read_text()
    assert len(LISTENING.findall("Listening on UDP port : 10001\nListening to ICMP traffic\n")) == 1


def test_the_script_is_handed_to_itgsend_a_burst_at_a_time(tmp_path):
    """ITGSend reads its script through a FIFO: the feed writes REQUEST_BURST lines, then the next
    burst only once ITGRecv has printed a 'Listening on' line for every flow so far, then ends the
    script (EOF) and removes the FIFO. A reader on the real FIFO stands in for ITGSend."""
    import threading
    from types import SimpleNamespace

    from seconetbench.workloads.ditg import REQUEST_BURST, ScriptFeed

    text, _ = workload("tcp100", flows=2 * REQUEST_BURST + 8).script("198.19.1.2", 0)
    stdout, stderr = tmp_path / "c01-c02.receiver.stdout", tmp_path / "c01-c02.receiver.stderr"
    stdout.write_text("ITGRecv version 2.8.1 (r1023)\nPress Ctrl-C to terminate\n")
    feed = ScriptFeed(tmp_path / "c01-c02.itg.fifo", text, SimpleNamespace(stdout=stdout, stderr=stderr))
    feed.feed()  # ITGSend has not opened the FIFO yet: nothing written, nothing blocks
    assert feed.written == 0
    read: list[str] = []
    opened = threading.Event()

    def itgsend() -> None:
        with feed.fifo.open() as script:
            opened.set()
            read.extend(script)

    reader = threading.Thread(target=itgsend)
    reader.start()
    opened.wait(10)
    while feed.written == 0:
        feed.feed()
    assert feed.written == REQUEST_BURST
    feed.feed()  # ITGRecv has taken none of them yet
    assert feed.written == REQUEST_BURST
    with stdout.open("a") as out:
        out.writelines(f"Listening on TCP port : {10001 + i}\n" for i in range(REQUEST_BURST))
    feed.feed()
    assert feed.written == 2 * REQUEST_BURST
    with stdout.open("a") as out:
        out.writelines(f"Listening on TCP port : {10001 + i}\n" for i in range(REQUEST_BURST, 2 * REQUEST_BURST))
    feed.feed()  # the last 8 lines, then EOF
    reader.join(10)
    assert "".join(read) == text
    feed.close()
    assert not feed.fifo.exists()
