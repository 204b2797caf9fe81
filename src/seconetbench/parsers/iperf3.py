"""Parser for iperf3 ``--json`` output (tested with iperf 3.12), client side.

Sides are picked by key name (``end.sum_sent`` / ``end.sum_received``), never by the ``sender``
flag: 3.12 marks ``sum_received`` as ``"sender": true`` on a normal TCP client and both sums
false with ``-R``.
"""

from __future__ import annotations

import json
from typing import Any

from seconetbench.errors import ParseError, ToolError
from seconetbench.parsers import PARSERS
from seconetbench.parsers._common import Parsed, typed_frame

SAMPLE_DTYPES = {
    "stream": "int64",
    "interval_start_s": "float64",
    "interval_end_s": "float64",
    "bytes": "int64",
    "throughput_mbps": "float64",
    "retransmits": "Int64",
    "packets": "Int64",
    "omitted": "bool",
}


@PARSERS.register("iperf3")
def parse(text: str, source: str | None = None) -> Parsed:
    report = _load_report(text, source)
    if "error" in report:
        raise ToolError(f"iperf3 reported an error: {report['error']}", source)

    test_start = _get(report, "start.test_start", source)
    protocol = str(_get(test_start, "protocol", source, "start.test_start")).lower()
    end = _get(report, "end", source)
    sent = _get(end, "sum_sent", source, "end")
    received = _get(end, "sum_received", source, "end")

    samples = typed_frame(_interval_rows(_get(report, "intervals", source), source), SAMPLE_DTYPES)

    cpu = end.get("cpu_utilization_percent", {})
    summary: dict[str, Any] = {
        "protocol": protocol,
        "payload_bytes": int(_get(test_start, "blksize", source, "start.test_start")),
        # The measured span, not the requested one (that is requested_duration_s): with
        # --omit or a slow start they differ, and throughput is bytes over the measured span.
        "duration_s": float(_get(sent, "seconds", source, "end.sum_sent")),
        "requested_duration_s": float(test_start.get("duration", 0)) or None,
        "num_streams": int(_get(test_start, "num_streams", source, "start.test_start")),
        "reverse": bool(test_start.get("reverse", 0)),
        "bytes_sent": int(_get(sent, "bytes", source, "end.sum_sent")),
        "bytes_received": int(_get(received, "bytes", source, "end.sum_received")),
        "throughput_mbps_sent": float(_get(sent, "bits_per_second", source, "end.sum_sent")) / 1e6,
        "throughput_mbps_received": float(_get(received, "bits_per_second", source, "end.sum_received")) / 1e6,
        "retransmits": int(sent["retransmits"]) if "retransmits" in sent else None,
        "version": report.get("start", {}).get("version"),
        "host_cpu_pct": _optional_float(cpu.get("host_total")),
        "remote_cpu_pct": _optional_float(cpu.get("remote_total")),
    }
    if protocol == "udp":
        # The receiver's view (jitter, losses) is in sum_received; older versions only have end.sum.
        udp = received if "jitter_ms" in received else _get(end, "sum", source, "end")
        summary.update(
            jitter_ms=float(_get(udp, "jitter_ms", source, "end.sum_received")),
            lost_packets=int(_get(udp, "lost_packets", source, "end.sum_received")),
            packets=int(_get(udp, "packets", source, "end.sum_received")),
            loss_pct=float(_get(udp, "lost_percent", source, "end.sum_received")),
        )
    return Parsed(samples, summary)


def parse_server_stream(text: str, source: str | None = None) -> list[dict[str, Any]]:
    """Split the server's ``--json`` output (one JSON object per test, concatenated) into dicts.

    Objects with an ``error`` key are returned as they are (the last one is usually
    ``"interrupt - the server has terminated"`` from stopping the server); the caller decides.
    """
    decoder = json.JSONDecoder()
    reports: list[dict[str, Any]] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            break
        try:
            report, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise ParseError(f"invalid JSON in the server stream (truncated?): {error.msg}",
                             source, error.lineno) from None
        if not isinstance(report, dict):
            raise ParseError(f"expected a JSON object per test, got {type(report).__name__}",
                             source, text.count("\n", 0, position) + 1)
        reports.append(report)
    return reports


def _load_report(text: str, source: str | None) -> dict[str, Any]:
    if not text.strip():
        raise ParseError("empty output: iperf3 printed nothing (killed before the end?)", source)
    try:
        report = json.loads(text)
    except json.JSONDecodeError as error:
        if error.msg == "Extra data":
            raise ParseError("several JSON objects: this is a server's --json output, "
                             "read it with parse_server_stream", source, error.lineno) from None
        raise ParseError(f"invalid JSON (truncated or not iperf3 --json output): {error.msg}",
                         source, error.lineno) from None
    if not isinstance(report, dict):
        raise ParseError(f"expected a JSON object, got {type(report).__name__}", source, 1)
    return report


def _get(container: Any, path: str, source: str | None, parent: str = "") -> Any:
    """Follow a dotted *path* into nested dicts, or raise a ParseError naming the missing key."""
    value = container
    walked = parent
    for key in path.split("."):
        walked = f"{walked}.{key}" if walked else key
        if not isinstance(value, dict) or key not in value:
            raise ParseError(f"missing key '{walked}' in the iperf3 JSON (truncated or not a client report)",
                             source)
        value = value[key]
    return value


def _interval_rows(intervals: Any, source: str | None) -> list[dict[str, Any]]:
    if not isinstance(intervals, list):
        raise ParseError("'intervals' is not a list", source)
    rows = []
    for i, interval in enumerate(intervals):
        for j, stream in enumerate(_get(interval, "streams", source, f"intervals[{i}]")):
            where = f"intervals[{i}].streams[{j}]"
            rows.append({
                "stream": _get(stream, "socket", source, where),
                "interval_start_s": _get(stream, "start", source, where),
                "interval_end_s": _get(stream, "end", source, where),
                "bytes": _get(stream, "bytes", source, where),
                "throughput_mbps": _get(stream, "bits_per_second", source, where) / 1e6,
                "retransmits": stream.get("retransmits"),  # absent for UDP and for the receiving side
                "packets": stream.get("packets"),  # UDP only
                "omitted": bool(stream.get("omitted", False)),
            })
    return rows


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
