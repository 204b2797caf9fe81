"""Parser for iputils ``ping`` (tested with 20221126), with or without ``-D`` timestamps.

One sample row per *transmitted* probe (seq 1..N): losses are only visible as gaps in icmp_seq,
so the rows are built from the summary's transmitted count, not from the reply lines.
"""

from __future__ import annotations

import re

import numpy as np

from seconetbench.errors import ParseError, ToolError
from seconetbench.parsers import PARSERS
from seconetbench.parsers._common import Parsed, numbered_lines, to_float, to_int, typed_frame

SAMPLE_DTYPES = {
    "seq": "int64",
    "timestamp_s": "float64",
    "rtt_ms": "float64",
    "ttl": "Int32",
    "received": "bool",
}

_TIMESTAMP = r"(?:\[(?P<ts>\d+(?:\.\d+)?)\] )?"  # -D prefix: [epoch.us]
# "64 bytes from 198.18.20.2: icmp_seq=1 ttl=64 time=0.037 ms" (+ " (DUP!)", "(BAD CHECKSUM!)", ...).
# time= is missing when the payload is too small to carry a timestamp (ping -s < 16).
_REPLY = re.compile(
    _TIMESTAMP + r"\d+ bytes from (?P<peer>.+?): icmp_seq=(?P<seq>\d+) ttl=(?P<ttl>\d+)"
    r"(?: time=(?P<rtt>\d+(?:\.\d+)?) ms)?(?! time=)(?P<rest>(?: .*)?)$"  # a time= that does not parse is an error
)
# ICMP errors ("From 198.18.20.1 icmp_seq=1 Destination Host Unreachable", "... Packet filtered"):
# the probe got an answer, but not a reply.
_ICMP_ERROR = re.compile(_TIMESTAMP + r"From \S+(?: \(.*?\))? icmp_seq=\d+ .+$")
_NO_ANSWER = re.compile(_TIMESTAMP + r"no answer yet for icmp_seq=\d+$")  # ping -O
_SUMMARY_HEAD = re.compile(r"--- .+ ping statistics ---$")
# iputils always ends the line with ", time Tms" once a probe was sent: requiring it catches a cut line.
_SUMMARY = re.compile(
    r"(?P<tx>\d+) packets transmitted, (?P<rx>\d+) received"
    r"(?:, \+(?P<dup>\d+) duplicates)?(?:, \+(?P<corrupt>\d+) corrupted)?(?:, \+(?P<err>\d+) errors)?"
    r", (?P<loss>\d+(?:\.\d+)?)% packet loss, time (?P<time>\d+)ms$"
)
_RTT = re.compile(
    r"rtt min/avg/max/mdev = (?P<min>[\d.]+)/(?P<avg>[\d.]+)/(?P<max>[\d.]+)/(?P<mdev>[\d.]+) ms"
    r"(?:, pipe \d+)?$"  # ", pipe N": a reply took longer than the interval (N probes in flight at most)
)
# Fatal errors are printed before the "PING" banner, e.g. "ping: connect: Network is unreachable".
_FATAL = re.compile(r"ping: (?P<message>.+)$")


@PARSERS.register("ping")
def parse(text: str, source: str | None = None) -> Parsed:
    replies: dict[int, tuple[float, float, int]] = {}  # seq -> (timestamp_s, rtt_ms, ttl); first reply wins
    summary_line: tuple[int, re.Match[str]] | None = None
    rtt_match: re.Match[str] | None = None
    saw_banner = False
    saw_summary_head = False
    fatal: tuple[int, str] | None = None
    any_rtt = False

    for number, raw in numbered_lines(text):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("PING "):
            saw_banner = True
            continue
        if match := _REPLY.match(line):
            seq = int(match["seq"])
            if seq in replies:  # "(DUP!)": a duplicate counts once, keep the first answer
                continue
            timestamp = to_float(match["ts"], "the -D timestamp", source, number) if match["ts"] else np.nan
            rtt = to_float(match["rtt"], "time=", source, number) if match["rtt"] else np.nan
            any_rtt = any_rtt or match["rtt"] is not None
            replies[seq] = (timestamp, rtt, int(match["ttl"]))
            continue
        if " bytes from " in line:
            raise ParseError(f"malformed reply line {line!r}; expected "
                             "'<n> bytes from <ip>: icmp_seq=<n> ttl=<n> time=<ms> ms'", source, number)
        if _ICMP_ERROR.match(line) or _NO_ANSWER.match(line):
            continue
        if _SUMMARY_HEAD.match(line):
            saw_summary_head = True
            continue
        if "packets transmitted" in line:
            match = _SUMMARY.match(line)
            if match is None or not saw_summary_head:
                raise ParseError(f"malformed statistics line {line!r}; expected 'N packets transmitted, "
                                 "M received, P% packet loss, time Tms'", source, number)
            summary_line = (number, match)
            continue
        if line.startswith("rtt "):
            rtt_match = _RTT.match(line)
            if rtt_match is None:
                raise ParseError(f"malformed rtt line {line!r}; expected "
                                 "'rtt min/avg/max/mdev = a/b/c/d ms'", source, number)
            continue
        if fatal is None and not saw_banner and (match := _FATAL.match(line)):
            fatal = (number, match["message"])
        # Anything else ("pipe 12", warnings, "wrong data byte ...") carries no measurement.

    if summary_line is None:
        if fatal is not None:
            raise ToolError(f"ping failed: {fatal[1]}", source, fatal[0])
        raise ParseError("no '--- <host> ping statistics ---' / 'N packets transmitted' summary: "
                         "the output is truncated or not from ping", source)

    number, stats = summary_line
    transmitted = to_int(stats["tx"], "packets transmitted", source, number)
    received = to_int(stats["rx"], "packets received", source, number)
    if len(replies) != received:
        raise ParseError(f"summary says {received} received but {len(replies)} distinct replies were "
                         "printed (truncated or ping -q output?)", source, number)
    beyond = sorted(seq for seq in replies if not 1 <= seq <= transmitted)
    if beyond:
        raise ParseError(f"replies for icmp_seq {beyond[:5]} outside 1..{transmitted} transmitted "
                         "(several runs in one file, or icmp_seq wrapped past 65535)", source, number)
    if received > 0 and any_rtt and rtt_match is None:
        raise ParseError(f"{received} replies but no 'rtt min/avg/max/mdev' line: output truncated",
                         source, number)

    seqs = np.arange(1, transmitted + 1)
    got = [replies.get(int(seq)) for seq in seqs]
    samples = typed_frame(
        {
            "seq": seqs,
            "timestamp_s": [r[0] if r else np.nan for r in got],
            "rtt_ms": [r[1] if r else np.nan for r in got],
            "ttl": [r[2] if r else None for r in got],
            "received": [r is not None for r in got],
        },
        SAMPLE_DTYPES,
    )

    def rtt_stat(key: str) -> float | None:
        return float(rtt_match[key]) if rtt_match is not None else None

    summary = {
        "packets_transmitted": transmitted,
        "packets_received": received,
        "duplicates": int(stats["dup"] or 0),
        "errors": int(stats["err"] or 0),
        "loss_pct": float(stats["loss"]),
        "rtt_min_ms": rtt_stat("min"),
        "rtt_avg_ms": rtt_stat("avg"),
        "rtt_max_ms": rtt_stat("max"),
        "rtt_mdev_ms": rtt_stat("mdev"),
        "time_ms": int(stats["time"]),
    }
    return Parsed(samples, summary)
