"""Parsers for D-ITG's decoder ``ITGDec`` (tested with 2.8.1 r1023).

``parse`` reads the standard summary (stdout of ``ITGDec <log>``): one block per flow, in
arbitrary order, then a TOTAL RESULTS block. ``parse_intervals`` reads the per-interval files
written by ``-b/-d/-j/-p <ms> <file>`` and ``-c <ms> <file>``.

ITGDec prints delays and jitter in seconds (the manual says ms for the interval files; measured:
seconds); every delay/jitter column here is converted to milliseconds.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from seconetbench.errors import InvalidValueError, ParseError, ToolError
from seconetbench.parsers import PARSERS
from seconetbench.parsers._common import Parsed, numbered_lines, to_float, to_int, typed_frame


@dataclass(frozen=True)
class _Field:
    column: str
    unit: str  # the unit ITGDec prints after the value ("" when none)
    convert: Callable[[str, str, str | None, int], Any]
    seconds_to_ms: bool = False


def _number(token: str, what: str, source: str | None, line: int) -> float:
    # NaN is let through here and reported as an empty log by _reject_empty_log_garbage.
    return to_float(token, what, source, line, allow_nan=True)


def _ms(seconds: Any) -> Any:
    """Seconds -> milliseconds without binary noise (0.000035 * 1000 = 0.034999999999999996).

    ITGDec prints six decimals, so rounding the product to nine decimals only removes the error of
    the multiplication. Works on floats and numpy arrays alike.
    """
    return np.round(np.asarray(seconds, dtype="float64") * 1000.0, 9)


_FLOW_FIELDS = {
    "Total time": _Field("total_time_s", "s", _number),
    "Total packets": _Field("packets", "", to_int),
    "Minimum delay": _Field("min_delay_ms", "s", _number, seconds_to_ms=True),
    "Maximum delay": _Field("max_delay_ms", "s", _number, seconds_to_ms=True),
    "Average delay": _Field("avg_delay_ms", "s", _number, seconds_to_ms=True),
    "Average jitter": _Field("avg_jitter_ms", "s", _number, seconds_to_ms=True),
    "Delay standard deviation": _Field("delay_std_ms", "s", _number, seconds_to_ms=True),
    "Bytes received": _Field("bytes", "", to_int),
    "Average bitrate": _Field("avg_bitrate_kbps", "Kbit/s", _number),
    "Average packet rate": _Field("avg_packet_rate_pps", "pkt/s", _number),
    # "Packets dropped = N (P.PP %)" gives two columns and is read apart (_DROPPED).
    # TOTAL prints a bare "0" when nothing was lost, a float otherwise.
    "Average loss-burst size": _Field("avg_loss_burst_pkts", "pkt", _number),
}
_TOTAL_ONLY_FIELDS = {
    "Number of flows": _Field("flows", "", to_int),
    "Error lines": _Field("error_lines", "", to_int),
}
_FLOW_COLUMNS = [f.column for f in _FLOW_FIELDS.values()] + ["packets_dropped", "loss_pct"]

SAMPLE_DTYPES = {
    "flow": "int64",
    "src": "str",
    "dst": "str",
    "total_time_s": "float64",
    "packets": "int64",
    "min_delay_ms": "float64",
    "max_delay_ms": "float64",
    "avg_delay_ms": "float64",
    "avg_jitter_ms": "float64",
    "delay_std_ms": "float64",
    "bytes": "int64",
    "avg_bitrate_kbps": "float64",
    "avg_packet_rate_pps": "float64",
    "packets_dropped": "int64",
    "loss_pct": "float64",
    "avg_loss_burst_pkts": "float64",
}

_KEY_VALUE = re.compile(r"(?P<label>[A-Za-z][A-Za-z -]*?)\s*=\s*(?P<value>.*?)\s*$")
_VALUE_UNIT = re.compile(r"(?P<number>-?(?:\d+(?:\.\d+)?|nan|inf))(?:\s+(?P<unit>\S+))?$")
_DROPPED = re.compile(r"(?P<count>\d+)\s*\(\s*(?P<pct>-?(?:\d+(?:\.\d+)?|nan|inf))\s*%\s*\)$")  # "( 0 %)" too
_FLOW_NUMBER = re.compile(r"Flow number:\s*(?P<flow>\d+)$")
_FROM = re.compile(r"From\s+(?P<address>\S+)$")
_TO = re.compile(r"To\s+(?P<address>\S+)$")
_TOTAL_BANNER = re.compile(r"\*+\s*TOTAL RESULTS\s*\*+$")
_RULE = re.compile(r"(?:-{10,}|_{10,})$")
_BANNER = re.compile(r"(?:ITGDec version .*|Compile-time options:.*)$")

# Outputs of a failed run, each with the reason it failed.
_TOOL_FAILURES = [
    (re.compile(r"Error opening log file.*"), "ITGDec could not open the log (missing log file)"),
    (re.compile(r"error : .*"), "ITGDec could not open the log"),
    (re.compile(r"Connect error.*"), "ITGSend could not reach ITGRecv (no logs were written)"),
]


@dataclass
class _Block:
    line: int  # where the block starts, for error messages
    values: dict[str, Any]
    closed: bool = False  # a rule line after the last expected key (TOTAL only)


@PARSERS.register("itgdec")
def parse(text: str, source: str | None = None) -> Parsed:
    """Parse ITGDec's standard summary into one row per flow plus the TOTAL RESULTS block."""
    _reject_spinner(text, source)
    for number, line in numbered_lines(text):
        stripped = line.strip()
        for pattern, reason in _TOOL_FAILURES:
            if pattern.match(stripped):
                raise ToolError(f"{reason}: {stripped}", source, number)
        if stripped == "Empty log file":
            raise ParseError("ITGDec says 'Empty log file': the log was empty (no packet logged), "
                             "its TOTAL block holds sentinels, not measurements", source, number)
        if stripped.startswith(("ITGSend version", "ITGRecv version")):
            raise ParseError(f"this is {stripped.split()[0]}'s console output, not an ITGDec summary",
                             source, number)

    flows: dict[int, _Block] = {}
    total: _Block | None = None
    current: _Block | None = None
    for number, line in numbered_lines(text):
        stripped = line.strip()
        if not stripped or _BANNER.match(stripped):
            continue
        if _RULE.match(stripped):
            if total is not None and current is total and "error_lines" in total.values:
                total.closed = True
            continue
        if match := _FLOW_NUMBER.match(stripped):
            if total is not None:
                raise ParseError("flow block after the TOTAL RESULTS block", source, number)
            flow = int(match["flow"])
            if flow in flows:
                raise ParseError(f"flow {flow} appears twice", source, number)
            current = flows[flow] = _Block(number, {"flow": flow})
            continue
        if _TOTAL_BANNER.match(stripped):
            current = total = _Block(number, {})
            continue
        in_flow_block = current is not None and current is not total
        if in_flow_block and (match := _FROM.match(stripped) or _TO.match(stripped)):
            current.values["src" if stripped.startswith("From") else "dst"] = match["address"]
            continue
        if current is None:
            raise ParseError(f"unrecognised line {stripped!r} before any flow block; expected "
                             "'Flow number: N' or the TOTAL RESULTS banner", source, number)
        _read_key_value(stripped, current, current is total, source, number)

    if total is None:
        if not flows:
            raise ParseError("no flow block and no TOTAL RESULTS: not an ITGDec summary (ITGDec prints "
                             "none when -c/-b/-d/-j/-p is given without -v)", source)
        raise ParseError("no TOTAL RESULTS block: output truncated", source)
    if not total.closed:
        raise ParseError("TOTAL RESULTS block incomplete (no 'Error lines' and closing rule): output truncated",
                         source, total.line)

    rows = []
    for flow, block in sorted(flows.items()):
        _require_keys(block, ["src", "dst", *_FLOW_COLUMNS], f"flow {flow}", source)
        rows.append(block.values)
    _require_keys(total, [*_FLOW_COLUMNS, "flows", "error_lines"], "TOTAL RESULTS", source)
    _reject_empty_log_garbage(total, source)
    for block in flows.values():
        _reject_empty_log_garbage(block, source)
    if total.values["flows"] != len(flows):
        raise ParseError(f"TOTAL says {total.values['flows']} flows but {len(flows)} flow blocks were found",
                         source, total.line)

    samples = typed_frame(rows, SAMPLE_DTYPES)
    return Parsed(samples, dict(total.values))


def _read_key_value(line: str, block: _Block, in_total: bool, source: str | None, number: int) -> None:
    match = _KEY_VALUE.match(line)
    if match is None:
        raise ParseError(f"unrecognised line {line!r}; expected '<label> = <value> [unit]'", source, number)
    label, value = match["label"], match["value"]
    if label == "Packets dropped":
        dropped = _DROPPED.match(value)
        if dropped is None:
            raise ParseError(f"Packets dropped is {value!r}; expected 'N (P %)'", source, number)
        parsed = {"packets_dropped": int(dropped["count"]),
                  "loss_pct": _number(dropped["pct"], "Packets dropped %", source, number)}
    else:
        spec = _FLOW_FIELDS.get(label) or (_TOTAL_ONLY_FIELDS.get(label) if in_total else None)
        if spec is None:
            raise ParseError(f"unknown key {label!r} in an ITGDec {'TOTAL' if in_total else 'flow'} block",
                             source, number)
        value_unit = _VALUE_UNIT.match(value)
        if value_unit is None or (value_unit["unit"] or "") != spec.unit:
            raise ParseError(f"{label} is {value!r}; expected a number followed by {spec.unit or 'no unit'!r}",
                             source, number)
        parsed_value = spec.convert(value_unit["number"], label, source, number)
        parsed = {spec.column: float(_ms(parsed_value)) if spec.seconds_to_ms else parsed_value}
    for column in parsed:
        if column in block.values:
            raise ParseError(f"{label} given twice in the same block", source, number)
    block.values.update(parsed)


def _require_keys(block: _Block, keys: list[str], what: str, source: str | None) -> None:
    missing = [key for key in keys if key not in block.values]
    if missing:
        raise ParseError(f"{what} lacks {missing}: output truncated or not ITGDec's summary", source, block.line)


def _reject_empty_log_garbage(block: _Block, source: str | None) -> None:
    """ITGDec decodes an empty log into sentinels (Total time = -90000 s, Average delay = -nan)."""
    bad = [key for key, value in block.values.items()
           if isinstance(value, float) and (np.isnan(value) or np.isinf(value))]
    if bad or block.values.get("total_time_s", 0.0) < 0:
        raise ParseError(f"the log was empty: ITGDec printed sentinels, not measurements "
                         f"(Total time = {block.values.get('total_time_s')} s, NaN in {bad})", source, block.line)


def _reject_spinner(text: str, source: str | None) -> None:
    position = text.find("\b")
    if position >= 0:
        raise ParseError("ITGDec's '|\\-/' progress spinner (backspaces) is in the text: stderr was merged "
                         "into stdout; capture stdout alone", source, text.count("\n", 0, position) + 1)


# ---------------------------------------------------------------------------------------------
# Per-interval files

# metric -> (value column, the file is in seconds, keep the Aggregate-Flow column as flow 0)
_INTERVAL_METRICS = {
    "bitrate": ("bitrate_kbps", False, True),  # kbit/s
    "delay": ("delay_ms", True, False),  # aggregate = SUM of the per-flow means: dropped
    "jitter": ("jitter_ms", True, False),  # idem
    "packetloss": ("lost_packets", False, True),  # packets lost in the interval (not pkt/s)
}
_COMBINED_COLUMNS = ["bitrate_kbps", "delay_sum_ms", "jitter_sum_ms", "lost_packets"]
# ITGDec writes every value with printf("%f"): exactly six decimals. Requiring them catches a
# number cut short by a truncated file.
_ROW = re.compile(r"-?\d+\.\d{6}(?:[ \t]+-?\d+\.\d{6})*[ \t]*")
_FLOW_HEADER = re.compile(r"(?P<flow>\d+)-\S+-\S+$")


def parse_intervals(text: str, metric: str, source: str | None = None, *,
                    bitrate: pd.DataFrame | None = None) -> pd.DataFrame:
    """Parse an ITGDec per-interval file into a long frame ``time_s, flow, <metric column>``.

    *metric* is ``bitrate`` (-b), ``delay`` (-d), ``jitter`` (-j), ``packetloss`` (-p) or
    ``combined`` (-c, no header, aggregate only). ``time_s`` is seconds since the first packet.
    For delay/jitter, an interval in which a flow received nothing shows 0: pass the parsed
    bitrate file of the same decode as *bitrate* to turn those into NaN (without it the zeros stay).
    """
    if metric != "combined" and metric not in _INTERVAL_METRICS:
        raise InvalidValueError(f"unknown ITGDec interval metric {metric!r}; "
                                f"known: {sorted([*_INTERVAL_METRICS, 'combined'])}")
    _reject_spinner(text, source)
    lines = [(number, line.strip()) for number, line in numbered_lines(text) if line.strip()]
    if not lines:
        raise ParseError("empty interval file", source)

    if metric == "combined":
        if lines[0][1].startswith("Time"):
            raise ParseError("this file has a 'Time ...' header: a -b/-d/-j/-p file, not -c", source, lines[0][0])
        values = _numeric_rows(lines, 1 + len(_COMBINED_COLUMNS), source)
        return _combined_frame(values, source)

    header_line, header = lines[0]
    flows = _flow_columns(header, source, header_line)
    values = _numeric_rows(lines[1:], len(flows) + 2, source)
    column, in_seconds, keep_aggregate = _INTERVAL_METRICS[metric]
    times = values[:, 0]
    order = np.argsort(flows, kind="stable")
    kept_flows = np.asarray(flows)[order]
    kept_values = values[:, 1:-1][:, order]
    if keep_aggregate:
        kept_flows = np.concatenate([[0], kept_flows])
        kept_values = np.concatenate([values[:, -1:], kept_values], axis=1)
    # Long format, flow-major: all intervals of the first flow, then the next flow, ...
    frame = pd.DataFrame({
        "time_s": np.tile(times, len(kept_flows)),
        "flow": np.repeat(kept_flows, len(times)).astype("int64"),
        column: _ms(kept_values.T.ravel()) if in_seconds else kept_values.T.ravel(),
    })
    if metric == "packetloss":
        frame[column] = _as_counts(frame[column].to_numpy(), source)
    if metric in ("delay", "jitter") and bitrate is not None:
        frame[column] = _mask_idle_intervals(frame, column, bitrate, source)
    return frame


def _flow_columns(header: str, source: str | None, number: int) -> list[int]:
    names = header.split()
    if len(names) < 3 or names[0] != "Time" or names[-1] != "Aggregate-Flow":
        raise ParseError(f"header {header[:80]!r} is not 'Time <flow>-<src>-<dst> ... Aggregate-Flow' "
                         "(truncated, or a -c file without header?)", source, number)
    flows = []
    for name in names[1:-1]:
        match = _FLOW_HEADER.match(name)
        if match is None:
            raise ParseError(f"column {name!r} is not '<flow>-<src>-<dst>'", source, number)
        flows.append(int(match["flow"]))
    if len(set(flows)) != len(flows):
        raise ParseError("a flow appears twice in the header", source, number)
    return flows


def _numeric_rows(lines: list[tuple[int, str]], width: int, source: str | None) -> np.ndarray:
    """Validate the rows (all numbers with six decimals, *width* per row) and return them as a matrix."""
    if not lines:
        raise ParseError("no interval rows after the header", source)
    for number, line in lines:
        if _ROW.fullmatch(line) is None:
            raise ParseError(f"row {line[:80]!r} is not space-separated numbers with six decimals "
                             "(truncated file?)", source, number)
        if len(line.split()) != width:
            raise ParseError(f"row has {len(line.split())} values, expected {width} (truncated file?)",
                             source, number)
    values = np.array(" ".join(line for _, line in lines).split(), dtype="float64").reshape(len(lines), width)
    times = values[:, 0]
    if (np.diff(times) <= 0).any():
        bad = int(np.argmax(np.diff(times) <= 0)) + 1
        raise ParseError("Time does not increase (two decodes in one file?)", source, lines[bad][0])
    return values


def _as_counts(values: np.ndarray, source: str | None) -> np.ndarray:
    if not np.array_equal(values, np.round(values)):
        raise ParseError("packet loss values are not whole packets: wrong file for this metric?", source)
    return values.astype("int64")


def _combined_frame(values: np.ndarray, source: str | None) -> pd.DataFrame:
    bitrate_kbps = values[:, 1]
    idle = bitrate_kbps == 0  # nothing received: the 0 delay/jitter is not a measurement
    return pd.DataFrame({
        "time_s": values[:, 0],
        "flow": np.zeros(len(values), dtype="int64"),
        "bitrate_kbps": bitrate_kbps,
        # SUM over flows of the per-flow means (ITGDec's aggregate); equals the flow's value only
        # when a single flow was decoded.
        "delay_sum_ms": np.where(idle, np.nan, _ms(values[:, 2])),
        "jitter_sum_ms": np.where(idle, np.nan, _ms(values[:, 3])),
        "lost_packets": _as_counts(values[:, 4], source),
    })


def _mask_idle_intervals(frame: pd.DataFrame, column: str, bitrate: pd.DataFrame, source: str | None) -> pd.Series:
    """NaN where the flow's bitrate in the same interval is 0 (ITGDec prints 0 delay for no packets)."""
    reference = bitrate[bitrate["flow"] != 0].set_index(["time_s", "flow"])["bitrate_kbps"]
    keys = pd.MultiIndex.from_frame(frame[["time_s", "flow"]])
    if len(reference) != len(keys) or not keys.isin(reference.index).all():
        raise ParseError("the bitrate frame does not cover the same intervals and flows: "
                         "pass the bitrate file of the same ITGDec decode", source)
    idle = reference.reindex(keys).to_numpy() == 0
    return frame[column].mask(idle)
