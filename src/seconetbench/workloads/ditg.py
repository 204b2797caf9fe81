"""D-ITG workloads: bursty, tcp100, quake3 and video, run between every sender/sink pair at once.

Per pair, ITGRecv runs in the sink (started first, stopped last) and one ITGSend in the sender
reads a multi-flow script (one flow per line, written into the raw target as ``<pair>.itg``).
ITGSend writes the sender log (``-l``); ITGRecv writes the receiver log (``-x``) on the sink's
filesystem, from where the backend fetches it (`pull`). After the traffic, ITGDec (on this machine)
decodes both logs into text (summaries and per-interval files) that stay in the raw target;
the binary logs are deleted unless ``keep_logs`` is set. docs/workloads.md explains how each
kind maps to the paper.
"""

from __future__ import annotations

import math
import random
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seconetbench import parsers
from seconetbench.errors import ParseError, WorkloadError
from seconetbench.workloads import register
from seconetbench.workloads.base import RunContext, Workload, wait_listening

if TYPE_CHECKING:
    import pandas as pd

SIGNALING_PORT = 9000  # ITGRecv's TCP signaling port, one receiver per sink namespace
TEARDOWN_S_PER_FLOW = 1.5  # ITGSend ends its flows one by one, about 1 s each (NOTES), plus slack
TIMEOUT_MARGIN_S = 30
DECODE_TIMEOUT_S = 300


# metric -> the ITGDec option that writes its per-interval file
INTERVAL_OPTIONS = {"bitrate": "-b", "delay": "-d", "jitter": "-j", "packetloss": "-p"}
# The files of one pair in the raw target: "<pair>.<suffix>".
FILES = {"script": "itg", "send_log": "send.log", "recv_log": "recv.log",
         "send_summary": "send.summary.txt", "recv_summary": "recv.summary.txt",
         **{metric: f"recv.{metric}.dat" for metric in INTERVAL_OPTIONS}}


def pair_file(pair: str, what: str) -> str:
    return f"{pair}.{FILES[what]}"


class DITG(Workload):
    """One ITGSend script per pair; subclasses say which flows it holds."""

    table = "ditg"
    tools = ("ITGSend", "ITGRecv", "ITGDec")
    protocol: str

    # ------------------------------------------------------------------ the flows
    def flows(self, destination: str, pair_index: int) -> list[dict[str, Any]]:
        """One dict per flow: ``options`` (its ITGSend script line, without -a/-rp) plus the facts
        worth recording (durations, rates, drawn values)."""
        raise NotImplementedError

    def script(self, destination: str, pair_index: int) -> tuple[str, list[dict[str, Any]]]:
        flows = self.flows(destination, pair_index)
        lines = []
        for number, flow in enumerate(flows, start=1):
            flow["flow"] = number
            flow["port"] = self.params["base_port"] + number - 1
            lines.append(f"-a {destination} -rp {flow['port']} {flow['options']}")
        return "\n".join(lines) + "\n", flows

    def timeout_s(self, flows: list[dict[str, Any]]) -> float:
        longest = max(f["duration_s"] for f in flows)
        return longest + len(flows) * TEARDOWN_S_PER_FLOW + TIMEOUT_MARGIN_S

    # ------------------------------------------------------------------ run
    def run(self, ctx: RunContext) -> dict[str, Any]:
        """ITGRecv in every sink, then ITGSend in every sender with its flow script. The script,
        the sender log (-l) and the receiver log (-x, written by ITGRecv on the sink's file system)
        go through the backend's file hooks: the same paths on this machine (netns, docker), or
        copied in and out of a pod (kubernetes)."""
        deployment = ctx.deployment
        refuse_unsynchronised_clocks(ctx.label, deployment)
        files = ctx.backend
        out = ctx.out_dir.resolve()
        receivers, senders, pairs = [], [], []
        try:
            for sender, sink in deployment.pairs:
                pair = deployment.pair_name(sender, sink)
                receivers.append(self.launch(ctx, pair, "receiver", deployment.container(sink), ["ITGRecv"]))
            wait_listening(ctx, receivers, SIGNALING_PORT)
            timeout = 0.0
            for index, (sender, sink) in enumerate(deployment.pairs):
                pair = deployment.pair_name(sender, sink)
                sender_c, sink_c = deployment.container(sender), deployment.container(sink)
                text, flows = self.script(sink_c.ip, index)
                script = out / pair_file(pair, "script")
                script.write_text(text)
                send_log = files.remote_path(sender_c, out / pair_file(pair, "send_log"))
                recv_log = files.remote_path(sink_c, out / pair_file(pair, "recv_log"))
                argv = ["ITGSend", files.push(sender_c, script), "-l", send_log, "-x", recv_log]
                senders.append(self.launch(ctx, pair, "sender", sender_c, argv))
                pairs.append({"pair": pair, "sender": sender, "sink": sink, "remote_send_log": send_log,
                              "remote_recv_log": recv_log, "flows": flows})
                timeout = max(timeout, self.timeout_s(flows))
            self.wait_all(ctx, senders, timeout, "ITGSend")
        finally:
            self.stop(ctx, [s for s in senders if s.returncode is None])
            self.stop(ctx, receivers)
        failed = [s for s in senders if s.returncode != 0]
        if failed:
            raise WorkloadError(f"{ctx.label}: ITGSend {failed[0].pair} exited {failed[0].returncode}: "
                                f"{failed[0].stderr.read_text().strip()[-300:]}")
        for record in pairs:
            pair = record["pair"]
            files.pull(deployment.container(record.pop("sender")), record.pop("remote_send_log"),
                       out / pair_file(pair, "send_log"))
            files.pull(deployment.container(record.pop("sink")), record.pop("remote_recv_log"),
                       out / pair_file(pair, "recv_log"))
            self.decode(ctx, pair)
        return {"generator": "D-ITG", "kind": self.kind, "protocol": self.protocol,
                "interval_ms": self.params["interval_ms"], "pairs": pairs,
                "processes": self.record(receivers + senders)}

    def decode(self, ctx: RunContext, pair: str) -> None:
        """ITGDec both logs into text files of the raw target: the two summaries (stdout alone:
        its spinner goes to stderr) and the receiver's per-interval files. ``-c`` is not used: it
        holds only aggregates, and it would silence -b/-d/-j/-p in the same call. ITGDec runs on
        this machine: decoding a log needs no namespace."""
        out = ctx.out_dir.resolve()
        interval = str(self.params["interval_ms"])
        recv_log, send_log = out / pair_file(pair, "recv_log"), out / pair_file(pair, "send_log")
        calls = [([str(recv_log)], pair_file(pair, "recv_summary")), ([str(send_log)], pair_file(pair, "send_summary"))]
        options = [str(recv_log)]
        for metric, option in INTERVAL_OPTIONS.items():
            options += [option, interval, str(out / pair_file(pair, metric))]
        calls.append((options, None))
        for argv, summary in calls:
            try:
                result = subprocess.run(["ITGDec", *argv], capture_output=True, text=True, errors="replace",
                                        timeout=DECODE_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise WorkloadError(f"{ctx.label}: ITGDec {' '.join(argv)} did not finish within "
                                    f"{DECODE_TIMEOUT_S} s") from None
            if result.returncode != 0:
                raise WorkloadError(f"{ctx.label}: ITGDec {' '.join(argv)} exited {result.returncode}: "
                                    f"{result.stdout.strip()[-300:]}")
            if summary:
                (out / summary).write_text(result.stdout)
        try:  # fail the run, not the parse, when the receiver logged nothing
            parsers.parse_file("itgdec", out / pair_file(pair, "recv_summary"))
        except ParseError as exc:
            raise WorkloadError(f"{ctx.label}: ITGDec {pair}: {exc.reason}") from None
        if not self.params["keep_logs"]:
            recv_log.unlink()
            send_log.unlink()

    # ------------------------------------------------------------------ parse
    def parse(self, raw_dir: Path, meta: dict[str, Any]) -> pd.DataFrame:
        import pandas as pd  # here: validating a config reads this class, not its parsing

        run = meta["workload_run"]
        frames = []
        for record in run["pairs"]:
            frame = pair_rows(raw_dir, record["pair"], run["interval_ms"])
            frame.insert(0, "pair", record["pair"])
            frames.append(frame)
        rows = pd.concat(frames, ignore_index=True)
        rows.insert(2, "traffic", run["kind"])
        rows.insert(3, "protocol", run["protocol"])
        return rows


def pair_rows(raw_dir: Path, pair: str, interval_ms: int) -> pd.DataFrame:
    """Rows of one pair: per flow, its whole-flow row (interval 0, from the summaries) and one row
    per interval of *interval_ms* (from the per-interval files)."""
    import numpy as np
    import pandas as pd

    from seconetbench.parsers import itgdec

    received = parsers.parse_file("itgdec", raw_dir / pair_file(pair, "recv_summary")).samples
    sent = parsers.parse_file("itgdec", raw_dir / pair_file(pair, "send_summary")).samples
    flows = sent[["flow", "packets"]].rename(columns={"packets": "packets_sent"}).merge(
        received, on="flow", how="left")  # a flow of which nothing arrived keeps its row
    whole = pd.DataFrame({
        "flow": flows["flow"],
        "interval": 0,
        "start_s": np.nan,
        "duration_s": flows["total_time_s"],
        "packets": flows["packets"].fillna(0).astype("int64"),
        "packets_sent": flows["packets_sent"],
        "bytes": flows["bytes"].fillna(0).astype("int64"),
        "bitrate_kbps": flows["avg_bitrate_kbps"].fillna(0.0),
        "delay_ms": flows["avg_delay_ms"],
        "min_delay_ms": flows["min_delay_ms"],
        "max_delay_ms": flows["max_delay_ms"],
        "jitter_ms": flows["avg_jitter_ms"],
        "lost_packets": flows["packets_dropped"].fillna(0).astype("int64"),
    })

    def read(metric: str, **kwargs: Any) -> pd.DataFrame:
        path = raw_dir / pair_file(pair, metric)
        return itgdec.parse_intervals(path.read_text(errors="replace"), metric, str(path), **kwargs)

    bitrate = read("bitrate")
    intervals = bitrate[bitrate["flow"] != 0]
    for metric in ("delay", "jitter", "packetloss"):
        intervals = intervals.merge(read(metric, bitrate=bitrate), on=["time_s", "flow"], how="left")
    seconds = interval_ms / 1000
    per_interval = pd.DataFrame({
        "flow": intervals["flow"],
        "interval": np.rint(intervals["time_s"] / seconds).astype("int64") + 1,
        "start_s": intervals["time_s"],
        "duration_s": seconds,
        "packets": pd.NA,
        "packets_sent": pd.NA,
        # kbit/s x ms / 8 = bytes; exact, since ITGDec divides the bytes by the full bin
        "bytes": np.rint(intervals["bitrate_kbps"] * interval_ms / 8).astype("int64"),
        "bitrate_kbps": intervals["bitrate_kbps"],
        "delay_ms": intervals["delay_ms"],
        "min_delay_ms": np.nan,
        "max_delay_ms": np.nan,
        "jitter_ms": intervals["jitter_ms"],
        "lost_packets": intervals["lost_packets"],
    })
    rows = pd.concat([whole, per_interval], ignore_index=True)
    for column in ("packets", "packets_sent"):
        rows[column] = rows[column].astype("Int64")
    return rows.sort_values(["flow", "interval"], kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------------- the kinds
def pps(kbps: float, payload_bytes: int) -> float:
    """Packets per second that carry *kbps* (payload, decimal kbit/s) in *payload_bytes* packets."""
    return kbps * 1000 / 8 / payload_bytes


def refuse_unsynchronised_clocks(label: str, deployment) -> None:
    """D-ITG's delays are one-way: the receiver's clock minus the sender's. Between hosts whose
    clocks the backend could not show to be within testbed.ssh.max_clock_offset_ms of each
    other (deployment facts "clocks": the ssh backend measures them), they would be the clock
    offset as much as the network, so the workload is refused before anything runs."""
    clocks = deployment.facts.get("clocks")
    if not clocks:
        return  # one machine's clock on both ends (netns, docker) or a cluster's nodes (not measured)
    hosts = {c.name: c.host for c in deployment.containers}
    wanted = {frozenset((hosts[s], hosts[d])) for s, d in deployment.pairs if hosts[s] != hosts[d]}
    for pair in clocks["pairs"]:
        if frozenset(pair["hosts"]) in wanted and pair["verdict"] != "within":
            raise WorkloadError(f"{label}: one-way delays between hosts {pair['hosts'][0]} and {pair['hosts'][1]} "
                                f"need their clocks within {pair['bound_ms']} ms; measured {pair['offset_ms']} ms "
                                f"± {pair['uncertainty_ms']} ms ({pair['verdict']}). {pair['consequence']}")


@register
class Bursty(DITG):
    """UDP on/off: ``burst_kbps`` of payload during each ON period, nothing during OFF."""

    kind = "bursty"
    protocol = "udp"

    def flows(self, destination: str, pair_index: int) -> list[dict[str, Any]]:
        p = self.params
        rate = pps(p["burst_kbps"], p["payload_bytes"])
        options = (f"-T UDP -t {round(p['duration_s'] * 1000)} -C {rate:g} -c {p['payload_bytes']} "
                   f"-B C {p['on_ms']} C {p['off_ms']}")
        return [{"options": options, "duration_s": p["duration_s"], "rate_pps": rate}
                for _ in range(p["flows"])]


@register
class TCP100(DITG):
    """Many simultaneous TCP flows per pair at a constant payload rate each."""

    kind = "tcp100"
    protocol = "tcp"

    def flows(self, destination: str, pair_index: int) -> list[dict[str, Any]]:
        p = self.params
        rate = pps(p["rate_kbps"], p["payload_bytes"])
        options = f"-T TCP -t {round(p['duration_s'] * 1000)} -C {rate:g} -c {p['payload_bytes']}"
        return [{"options": options, "duration_s": p["duration_s"], "rate_pps": rate}
                for _ in range(p["flows"])]


@register
class Quake3(DITG):
    """D-ITG's Quake 3 application model (UDP; the model sets sizes and gaps)."""

    kind = "quake3"
    protocol = "udp"

    def flows(self, destination: str, pair_index: int) -> list[dict[str, Any]]:
        p = self.params
        # an application model must be the last option of its line
        options = f"-t {round(p['duration_s'] * 1000)} Quake3"
        return [{"options": options, "duration_s": p["duration_s"]} for _ in range(p["flows"])]


# Video lengths and sizes after Cheng, Dale & Liu, "Statistics and Social Network of YouTube
# Videos" (IWQoS 2008): lengths with peaks under 1 min, around 3-4 min and near the 10-min upload
# limit (97.9 % <= 600 s); bitrates around 330 kbit/s (mean file size 8.4 MB). The mixture and
# lognormal parameters below reproduce those reported figures; docs/workloads.md says more.
LENGTH_MIXTURE = ((0.20, 40.0, 20.0), (0.74, 210.0, 90.0), (0.06, 590.0, 30.0))  # weight, mean s, sd s
LENGTH_RANGE_S = (10.0, 700.0)
BITRATE_MEDIAN_KBPS = 330.0
BITRATE_SIGMA = 0.3  # of the log


def draw_videos(rng: random.Random, count: int) -> list[tuple[float, float]]:
    """*count* videos as (length_s, size_mb) from the model above."""
    weights = [w for w, _, _ in LENGTH_MIXTURE]
    videos = []
    for _ in range(count):
        _, mean, sd = rng.choices(LENGTH_MIXTURE, weights=weights)[0]
        length = min(max(rng.gauss(mean, sd), LENGTH_RANGE_S[0]), LENGTH_RANGE_S[1])
        kbps = BITRATE_MEDIAN_KBPS * math.exp(rng.gauss(0.0, BITRATE_SIGMA))
        videos.append((length, length * kbps / 8 / 1000))
    return videos


@register
class Video(DITG):
    """TCP flows with 1370-byte payloads, one per video, all starting together. Each video's
    length and size are drawn from the model; the rates are scaled so that the average stream
    carries ``gb_per_hour``, and the lengths by ``length_scale`` to fit a benchmark run."""

    kind = "video"
    protocol = "tcp"

    def flows(self, destination: str, pair_index: int) -> list[dict[str, Any]]:
        p = self.params
        # one stream of draws per pair, reproducible from the seed
        rng = random.Random(f"{p['seed']}-{pair_index}")
        videos = draw_videos(rng, p["videos"])
        model_kbps = [size * 8000 / length for length, size in videos]
        scale = p["gb_per_hour"] * 1e9 * 8 / 3600 / 1000 / (sum(model_kbps) / len(model_kbps))
        flows = []
        for (length, size), kbps in zip(videos, model_kbps, strict=True):
            duration_s = max(1.0, round(length * p["length_scale"], 3))
            rate = round(pps(kbps * scale, p["payload_bytes"]), 1)
            flows.append({
                "options": f"-T TCP -t {round(duration_s * 1000)} -C {rate:g} -c {p['payload_bytes']}",
                "duration_s": duration_s, "rate_pps": rate,
                "model_length_s": round(length, 3), "model_size_mb": round(size, 3),
                "bitrate_kbps": round(rate * p["payload_bytes"] * 8 / 1000, 3),
            })
        return flows

