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

import errno
import math
import os
import random
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seconetbench import parsers, proc
from seconetbench.errors import ParseError, WorkloadError
from seconetbench.workloads import register
from seconetbench.workloads.base import Launched, RunContext, Workload, sockets, wait_listening

if TYPE_CHECKING:
    import pandas as pd

    from seconetbench.spec import SetupSpec

SIGNALING_PORT = 9000  # ITGRecv's TCP signaling port, one receiver per sink namespace
# Both ends write every packet's record to their log as it goes (-q 1; D-ITG's default keeps 50
# per flow in memory and writes the rest of a flow only when the flow is closed), so a log is
# complete at any moment: the run can end ITGSend and ITGRecv once the flows are over instead of
# waiting for D-ITG to close them, which ITGRecv does one per second (docs/decisions.md).
LOG_EACH_PACKET = ["-q", "1"]
# ITGSend prints this line when a flow starts sending; the flow sends for its -t duration from then
STARTED = re.compile(r"^Started sending packets of flow ID: (\d+)", re.MULTILINE)
# what ITGSend prints when a flow cannot start (e.g. "Error on bind to receiver side": the sink's
# port is taken); that flow never starts, so the run fails at once instead of at its time limit
FLOW_ERROR = re.compile(r"^Error (?:on|at) .*$", re.MULTILINE)
# ITGRecv and ITGSend read each signaling message field by field and take a short read for the
# whole field (D-ITG 2.8.1, typeParser / signalManager), so a flow request split over two TCP
# segments that arrive apart desynchronises the channel: ITGRecv aborts with "unknown message
# received", or misreads a port ("Error on bind to receiver side") or a serial interface, and
# ITGSend exits 1 with "Receiver has shut down the connection gracefully". ITGSend sends its
# requests (27 bytes each) as fast as it reads script lines, so 100 flows make 2.7 kB that TCP
# cuts into MSS-sized segments anywhere; IPsec in userspace (charon's libipsec, one packet at a
# time through its TUN device) delivers them far enough apart that ITGRecv reads between them
# (5 of 10 tcp100 targets on multi-ipsec-none-c8). Where ITGSend sees this machine's files the
# run hands it the script through a FIFO, REQUEST_BURST lines at a time, the next burst only once
# ITGRecv has taken every request so far (its "Listening on" line per flow): a burst fits one
# segment on a path MTU of 916 bytes or more (32 x 27 bytes + 52 of headers; every path here has
# 1400 or more), and its requests arrive whole (docs/decisions.md). Each burst costs a round trip
# and ITGRecv's setup of its flows: with bursts of 16 the 100 flows of a pair started 0.35-1.2 s
# apart on single-bridge-none-c8, with 32 0.3-0.5 s.
REQUEST_BURST = 32
# ITGRecv prints this line when it has taken a flow's request and opened the flow's port (TCP on
# stdout, UDP on stderr)
LISTENING = re.compile(r"^Listening on [A-Z]+ port : (\d+)", re.MULTILINE)
# Every flow starts sending this long after its ITGSend started (-d: D-ITG times it from its own
# start), so that the requests cross an idle path: with data already flowing through a slow
# tunnel, each burst's round trip waits behind it (IPsec in userspace: 96 flows requested in more
# than 5 s). A flow whose request is answered later starts when it is.
START_DELAY_MS = 1000
DRAIN_S = 0.5  # after the last flow's end, for the packets still on the path to arrive
# ... and where the logs are this machine's files (netns, docker) the run also waits for what a
# slow path still delivers after the senders' last packet (Tinc with 16 pairs of 100 TCP flows,
# IPsec in userspace): TCP until every receiver log holds as many records as its sender log
# (both 144 bytes a packet), giving up once no receiver log has grown for DRAIN_STALL_S (a flow
# ITGRecv closed itself never completes: the completeness check names it); UDP until no
# receiver log has grown for DRAIN_QUIET_S
DRAIN_QUIET_S = 0.3
# ITGRecv closes a flow one second after ITGSend asks it to (its sleep(1)) and drops what has not
# arrived by then; ITGSend asks as soon as the flow's -t is over, while a path slower than what
# the flows offer (tcp100 through IPsec in userspace: 200 Mbit/s offered, about 40 carried) still
# holds seconds of the flow in its TCP send buffer: the first flow closed came up short in 6 of 6
# targets. So where every flow of a TCP kind has the same duration and ITGSend is a process of
# this machine (capabilities.local_generators), the flows get FREEZE_MARGIN_MS more -t than their
# duration, the run stops ITGSend (SIGSTOP) once every flow has sent for its duration, so that no
# flow is closed and nothing more is sent, waits until the receiver logs hold every packet of the
# sender logs (the kernel still sends what the buffers hold), and then ends ITGSend (SIGKILL).
# The margin must outlast the spread of the flows' starts (D-ITG times a flow from its connect;
# through a saturated tunnel a SYN lost behind the first flows' data delays a connect by 1 s, then
# 2 s, ...: 2 s of margin let 18 to 35 flows of a pair close first): TIMEOUT_MARGIN_S, after which
# a flow not yet started fails the run anyway.
FREEZE_MARGIN_MS = 30_000  # = TIMEOUT_MARGIN_S
DURATION_OPTION = re.compile(r"(?<=-t )(\d+)")
# beyond TCP's retransmission backoffs: through a saturated tunnel a flow's packets still
# arrived 9 s after they were sent, the other flows long complete (tcp100, multi-ipsec-none-c8)
DRAIN_STALL_S = 15.0
# After ITGSend has ended, the run ends ITGRecv only once no flow connection in the sink is still
# established (ITGSend's FIN has arrived): an ITGRecv ended before that closes first and leaves
# the flow's port in TIME_WAIT for 60 s, where the next repetition's ITGRecv cannot bind it
# ("Error on bind to receiver side", 2 of 6 targets on multi-ipsec-none-c8)
FIN_LIMIT_S = 10
DRAIN_LIMIT_S = 60
POLL_S = 0.02
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
        """One dict per flow: ``options`` (its ITGSend script line, without -a/-rp/-d) plus the facts
        worth recording (durations, rates, drawn values)."""
        raise NotImplementedError

    def script(self, destination: str, pair_index: int, extend_ms: int = 0) -> tuple[str, list[dict[str, Any]]]:
        """The script lines of a pair and its flows; *extend_ms* lengthens every flow's -t (the
        run then ends the window itself: FREEZE_MARGIN_MS)."""
        flows = self.flows(destination, pair_index)
        lines = []
        for number, flow in enumerate(flows, start=1):
            flow["flow"] = number
            flow["port"] = self.params["base_port"] + number - 1
            if extend_ms:
                flow["options"] = DURATION_OPTION.sub(lambda m: str(int(m[1]) + extend_ms), flow["options"], count=1)
            lines.append(f"-a {destination} -rp {flow['port']} -d {START_DELAY_MS} {flow['options']}")
        return "\n".join(lines) + "\n", flows

    # ------------------------------------------------------------------ cost (seconetbench.plan)
    cost_group = "d-itg"  # the kinds share ITGSend's ending of flows and ITGDec's decoding

    def planned_flows(self, setup: SetupSpec) -> list[list[dict[str, Any]]]:
        """The flows of every pair of *setup* (flows() needs no deployment: the destination only
        goes into the script lines)."""
        return [self.flows("198.18.0.2", index) for index in range(setup.containers // 2)]

    def flow_packets(self, flow: dict[str, Any]) -> float:
        """Packets *flow* sends (0 where an application model decides: Quake 3)."""
        return flow.get("rate_pps", 0.0) * flow["duration_s"]

    def nominal_s(self, setup: SetupSpec) -> float:
        # pairs at once, every flow after the start delay
        return START_DELAY_MS / 1000 + max(f["duration_s"] for flows in self.planned_flows(setup) for f in flows)

    def cost_drivers(self, setup: SetupSpec) -> dict[str, float]:
        planned = self.planned_flows(setup)
        # flows: what a pair's flows still cost at their start and end (no longer D-ITG's one close
        # per second: the run ends them together); ITGDec decodes every pair's logs after the
        # traffic, the calls side by side on the CPUs
        return {"pairs": len(planned), "flows": max(len(flows) for flows in planned),
                "packets": sum(self.flow_packets(f) for flows in planned for f in flows)}

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
        ended: list[str] = []  # the pairs whose ITGSend the run ended after their flows
        drained_after_s = None  # how long the run waited for the path after the flows (shared files)
        last_start_s = spread_s = None  # the latest start of a flow after its ITGSend's launch; their spread
        feeds: list[ScriptFeed] = []  # ITGSend's script through a FIFO (shared files), a burst at a time
        freeze = self.freezable(files)
        frozen: list[Launched] = []  # the senders the run stopped (SIGSTOP) at the end of the window
        try:
            for sender, sink in deployment.pairs:
                pair = deployment.pair_name(sender, sink)
                receivers.append(self.launch(ctx, pair, "receiver", deployment.container(sink),
                                             ["ITGRecv", *LOG_EACH_PACKET]))
            wait_listening(ctx, receivers, SIGNALING_PORT)
            traffic_started = time.monotonic()
            for index, (sender, sink) in enumerate(deployment.pairs):
                pair = deployment.pair_name(sender, sink)
                sender_c, sink_c = deployment.container(sender), deployment.container(sink)
                text, flows = self.script(sink_c.ip, index, FREEZE_MARGIN_MS if freeze else 0)
                script = out / pair_file(pair, "script")
                script.write_text(text)
                if files.capabilities.shared_files:
                    feeds.append(ScriptFeed(out / f"{pair}.{FIFO_SUFFIX}", text, receivers[index]))
                    script_path = str(feeds[-1].fifo)
                else:
                    script_path = files.push(sender_c, script)
                send_log = files.remote_path(sender_c, out / pair_file(pair, "send_log"))
                recv_log = files.remote_path(sink_c, out / pair_file(pair, "recv_log"))
                argv = ["ITGSend", script_path, "-l", send_log, "-x", recv_log, *LOG_EACH_PACKET]
                senders.append(self.launch(ctx, pair, "sender", sender_c, argv))
                pairs.append({"pair": pair, "sender": sender, "sink": sink, "remote_send_log": send_log,
                              "remote_recv_log": recv_log, "flows": flows})
            last_start_s, spread_s = await_flows_over(ctx, senders, [record["flows"] for record in pairs], feeds or None,
                                            drain_s=0.0 if freeze else DRAIN_S)
            if freeze:
                frozen = [s for s in senders if s.process.poll() is None]
                for sender in frozen:
                    os.kill(sender.process.pid, signal.SIGSTOP)
            if ctx.backend.capabilities.shared_files:
                received = [out / pair_file(record["pair"], "recv_log") for record in pairs]
                sent = [out / pair_file(record["pair"], "send_log") for record in pairs]
                drained_after_s = await_delivered(received, sent if self.protocol == "tcp" else None)
            ended = [s.pair for s in senders if s.process.poll() is None]
        finally:
            proc.terminate([s.process for s in frozen], grace_s=0)  # stopped: SIGTERM would wait for SIGCONT
            self.stop(ctx, [s for s in senders if s.process.poll() is None])
            if files.capabilities.local_generators:
                ports = {f["port"] for record in pairs for f in record["flows"]}
                await_connections_closed([r.process.pid for r in receivers if r.process.poll() is None], ports)
            self.stop(ctx, receivers)
            for feed in feeds:
                feed.close()
            for item in senders:
                item.returncode = item.process.returncode
                ctx.registry.forget(item.process.pid)
        traffic_s = time.monotonic() - traffic_started
        failed = [s for s in senders if s.pair not in ended and s.returncode != 0]
        if failed:
            raise WorkloadError(f"{ctx.label}: ITGSend {failed[0].pair} exited {failed[0].returncode}: "
                                f"{failed[0].stderr.read_text().strip()[-300:]}")
        for record in pairs:
            pair = record["pair"]
            files.pull(deployment.container(record.pop("sender")), record.pop("remote_send_log"),
                       out / pair_file(pair, "send_log"))
            files.pull(deployment.container(record.pop("sink")), record.pop("remote_recv_log"),
                       out / pair_file(pair, "recv_log"))
        self.decode(ctx, [record["pair"] for record in pairs])
        return {"generator": "D-ITG", "kind": self.kind, "protocol": self.protocol,
                "interval_ms": self.params["interval_ms"], "pairs": pairs,
                # every flow sent for its duration; these senders were then ended by the run
                # (the others had already ended their flows themselves): docs/workloads.md
                "ending": {"request_burst": REQUEST_BURST if feeds else None, "start_delay_ms": START_DELAY_MS,
                           "senders_frozen": [s.pair for s in frozen], "drain_s": 0.0 if freeze else DRAIN_S, "senders_ended_after_flows": ended,
                           "last_flow_started_s": None if last_start_s is None else round(last_start_s, 3),
                           "flow_starts_spread_s": None if spread_s is None else round(spread_s, 3),
                           "drained_after_s": None if drained_after_s is None else round(drained_after_s, 3),
                           "traffic_s": round(traffic_s, 3)},  # first ITGSend start to the last process ended
                "processes": self.record(receivers + senders)}

    def freezable(self, files) -> bool:
        """Whether the run ends the window itself by stopping ITGSend (FREEZE_MARGIN_MS): TCP
        flows of one duration, an ITGSend whose pid this machine can signal."""
        planned = {f["duration_s"] for f in self.flows("198.18.0.2", 0)}
        return self.protocol == "tcp" and len(planned) == 1 and files.capabilities.local_generators

    def decode(self, ctx: RunContext, pairs: list[str]) -> None:
        """ITGDec both logs of every pair into text files of the raw target: per pair one call on
        the receiver log, which writes the per-interval files and, with ``-v``, its summary on
        stdout (without ``-v`` ITGDec prints only its banner when given -b/-d/-j/-p), and one on
        the sender log for its summary; stdout alone, its spinner goes to stderr. One pass over
        each log, the calls side by side on this machine's CPUs (the traffic is over; decoding a
        log needs no namespace). ``-c`` is not used: it holds only aggregates, and it would
        silence -b/-d/-j/-p in the same call. Then the checks of :meth:`check_decoded`."""
        out = ctx.out_dir.resolve()
        interval = str(self.params["interval_ms"])
        calls = []
        for pair in pairs:
            options = [str(out / pair_file(pair, "recv_log")), "-v"]
            for metric, option in INTERVAL_OPTIONS.items():
                options += [option, interval, str(out / pair_file(pair, metric))]
            calls += [(options, out / pair_file(pair, "recv_summary")),
                      ([str(out / pair_file(pair, "send_log"))], out / pair_file(pair, "send_summary"))]

        def itgdec(call: tuple[list[str], Path]) -> None:
            argv, summary = call
            try:
                result = subprocess.run(["ITGDec", *argv], capture_output=True, text=True, errors="replace",
                                        timeout=DECODE_TIMEOUT_S, check=False)
            except subprocess.TimeoutExpired:
                raise WorkloadError(f"{ctx.label}: ITGDec {' '.join(argv)} did not finish within "
                                    f"{DECODE_TIMEOUT_S} s") from None
            if result.returncode != 0:
                raise WorkloadError(f"{ctx.label}: ITGDec {' '.join(argv)} exited {result.returncode}: "
                                    f"{result.stdout.strip()[-300:]}")
            summary.write_text(result.stdout)

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            list(pool.map(itgdec, calls))  # list(): raises the first call's error
        for pair in pairs:
            self.check_decoded(ctx, pair)
            if not self.params["keep_logs"]:
                (out / pair_file(pair, "recv_log")).unlink()
                (out / pair_file(pair, "send_log")).unlink()

    def check_decoded(self, ctx: RunContext, pair: str) -> None:
        """Fail the run, not the parse, when the receiver logged nothing, and when a TCP flow's
        receiver logged fewer packets than its sender sent: TCP delivers all it was handed, so
        the flow was cut off (by the run's ending, or by ITGRecv closing it one second after
        ITGSend asked while a slow path still held its packets), and its rows would count a loss
        TCP never had."""
        out = ctx.out_dir.resolve()
        try:
            received = parsers.parse_file("itgdec", out / pair_file(pair, "recv_summary")).samples
        except ParseError as exc:
            raise WorkloadError(f"{ctx.label}: ITGDec {pair}: {exc.reason}") from None
        if self.protocol != "tcp":
            return
        sent = parsers.parse_file("itgdec", out / pair_file(pair, "send_summary")).samples
        both = sent[["flow", "packets"]].merge(received[["flow", "packets"]], on="flow", how="left",
                                               suffixes=("_sent", "_received")).fillna(0)
        short = both[both["packets_received"] < both["packets_sent"]]
        if len(short):
            first = short.iloc[0]
            raise WorkloadError(f"{ctx.label}: {pair}: the receiver logged {int(first['packets_received'])} of the "
                                f"{int(first['packets_sent'])} packets of TCP flow {int(first['flow'])} (and "
                                f"{len(short) - 1} more flows short): the flow was cut off while the path still "
                                "held its packets; a flow ITGRecv closed itself ('Finish on TCP port' in the "
                                "receiver's stdout) had one second for them (docs/workloads.md, How a D-ITG run ends)")

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


FIFO_SUFFIX = "itg.fifo"  # "<pair>.itg.fifo": ITGSend's script as it reads it, removed after the run


class ScriptFeed:
    """One ITGSend's script handed over through a FIFO, REQUEST_BURST lines at a time: ITGSend
    reads its script line by line (fgets) and requests each flow as it reads its line, so a
    burst's requests go out together, and the next burst only once the pair's ITGRecv has
    printed a LISTENING line for every flow so far (the stdout and stderr of *receiver* are this
    machine's files on every backend). The FIFO is created here; ITGSend opens it (reading) when
    it starts; writing waits for that. :meth:`close` ends the script (EOF) and removes the FIFO."""

    def __init__(self, fifo: Path, text: str, receiver: Launched):
        self.fifo, self.lines, self.receiver = fifo, text.splitlines(keepends=True), receiver
        self.written, self.fd = 0, None
        fifo.unlink(missing_ok=True)
        os.mkfifo(fifo, 0o600)

    def feed(self) -> None:
        """Write the next burst if ITGRecv has taken every request written so far."""
        if self.written >= len(self.lines):
            return
        if self.written and self.requests_taken() < self.written:
            return
        if self.fd is None:
            try:  # non-blocking: fails (ENXIO) until ITGSend has opened its end
                self.fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno == errno.ENXIO:
                    return
                raise
        burst = self.lines[self.written:self.written + REQUEST_BURST]
        try:
            os.write(self.fd, "".join(burst).encode())  # < PIPE_BUF: one atomic write
        except BrokenPipeError:  # ITGSend has ended; the caller sees its exit
            self.written = len(self.lines)
        else:
            self.written += len(burst)
        if self.written >= len(self.lines):
            os.close(self.fd)
            self.fd = None

    def requests_taken(self) -> int:
        return sum(len(LISTENING.findall(path.read_text(errors="replace")))
                   for path in (self.receiver.stdout, self.receiver.stderr) if path.exists())

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        self.fifo.unlink(missing_ok=True)


def start_spread(seen: list[dict[int, float]]) -> float:
    """The most seconds between the first and the last start line read of one sender."""
    return max((max(starts.values()) - min(starts.values()) for starts in seen if starts), default=0.0)


def started_flows(stdout: str) -> set[int]:
    """The flow numbers ITGSend's *stdout* says have started sending."""
    return {int(number) for number in STARTED.findall(stdout)}


def await_flows_over(ctx: RunContext, senders: list[Launched], flows: list[list[dict[str, Any]]],
                     feeds: list[ScriptFeed] | None = None, drain_s: float = DRAIN_S) -> tuple[float, float]:
    """Return when every flow of every sender has sent for its whole duration, plus *drain_s* for
    the packets on the path: flow k ends at most its duration after the moment its start line
    showed up in ITGSend's stdout (read here, so never earlier than the real start). A sender that
    ends by itself before (all its flows closed by D-ITG) is done too; one that has not started
    all its flows within the longest duration plus TIMEOUT_MARGIN_S fails the run. With *feeds*
    (one per sender) it also hands each ITGSend its next burst of script lines once ITGRecv has
    taken the requests so far. Returns the seconds from a sender's launch to its last flow's start
    line and between a sender's first and last start line, the most of any sender."""
    seen: list[dict[int, float]] = [{} for _ in senders]
    last_start_s = 0.0
    feeds = feeds or [None] * len(senders)
    limit_s = max(f["duration_s"] for group in flows for f in group) + TIMEOUT_MARGIN_S
    give_up = time.monotonic() + limit_s
    while True:
        now = time.monotonic()
        waiting = []
        for sender, started, group, feed in zip(senders, seen, flows, feeds, strict=True):
            if sender.process.poll() is not None:
                continue
            stdout = sender.stdout.read_text(errors="replace")
            for number in started_flows(stdout) - started.keys():
                started[number] = now
                last_start_s = max(last_start_s, time.time() - sender.started)
            if feed is not None:
                feed.feed()
            if len(started) < len(group) and (error := FLOW_ERROR.search(stdout)):
                raise WorkloadError(f"{ctx.label}: ITGSend of {sender.pair} could not start all its flows "
                                    f"({len(started)} of {len(group)} started): '{error.group(0).strip()}'; "
                                    "see its stdout and the receiver's")
            if len(started) < len(group):
                waiting.append((sender, None))
            else:
                waiting.append((sender, max(started[f["flow"]] + f["duration_s"] for f in group) + drain_s))
        if not waiting:
            return last_start_s, start_spread(seen)
        unstarted = [sender.pair for sender, end in waiting if end is None]
        if unstarted and now > give_up:
            raise WorkloadError(f"{ctx.label}: ITGSend of {', '.join(unstarted)} did not start all its flows "
                                f"within {limit_s:.0f} s; see its stdout and stderr")
        if not unstarted:
            over = max(end for _, end in waiting)
            if now >= over:
                return last_start_s, start_spread(seen)
            time.sleep(min(POLL_S * 10, over - now))
        else:
            time.sleep(POLL_S)


def await_delivered(received: list[Path], sent: list[Path] | None = None, quiet_s: float = DRAIN_QUIET_S,
                    stall_s: float = DRAIN_STALL_S, limit_s: float = DRAIN_LIMIT_S) -> float:
    """Wait for the receiver logs *received* (written per packet, -q 1) to hold what the path still
    delivers; returns the seconds waited. With *sent* (TCP: the sender logs, pair by pair) until
    every receiver log is as large as its sender log (the same 144-byte record per packet at both
    ends: every packet sent has arrived), or none has grown for *stall_s*; without (UDP, where a
    lost packet never arrives) until none has grown for *quiet_s*. At most *limit_s*; a TCP flow
    still short then fails the run in the completeness check."""
    started = time.monotonic()
    sizes, changed = None, started
    quiet_enough = quiet_s if sent is None else stall_s
    while True:
        now = time.monotonic()
        current = [size_of(log) for log in received]
        if current != sizes:
            sizes, changed = current, now
        if sent is not None and all(got >= size_of(log) for got, log in zip(current, sent, strict=True)):
            return now - started
        if now - changed >= quiet_enough or now - started >= limit_s:
            return now - started
        time.sleep(POLL_S)


def established_ports(pid: int) -> set[int]:
    """Local ports of the established TCP connections in the network namespace of process *pid*."""
    return {local for local, state in sockets(pid) if state == "01"}


def await_connections_closed(pids: list[int], ports: set[int], limit_s: float = FIN_LIMIT_S) -> None:
    """Wait until no connection on one of *ports* is established in the namespaces of the
    receivers *pids* (the senders' FINs have arrived), at most *limit_s*."""
    give_up = time.monotonic() + limit_s
    while time.monotonic() < give_up and any(established_ports(pid) & ports for pid in pids):
        time.sleep(POLL_S)


def size_of(log: Path) -> int:
    """Bytes in *log*, 0 before its writer has created it."""
    try:
        return log.stat().st_size
    except FileNotFoundError:
        return 0


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

    def flow_packets(self, flow: dict[str, Any]) -> float:
        p = self.params
        return super().flow_packets(flow) * p["on_ms"] / (p["on_ms"] + p["off_ms"])  # sends only when on


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

