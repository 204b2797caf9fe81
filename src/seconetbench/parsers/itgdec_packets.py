"""Parser for ITGDec's per-packet text dump (``ITGDec <log> -l <file>``), vectorised with pyarrow.

One line per packet::

    Flow>0001 Seq>      1 Src>     198.18.20.1/43194 Dest>     198.18.20.2/10002 txTime>19:15:2.055481 rxTime>19:15:2.056792 Size>  625

Times are time of day only, minutes and seconds not zero-padded, no date (docs/parsers.md). A
100-flow run logs millions of packets, so nothing here loops over rows in Python: Arrow's CSV
reader splits every line at '>' (multi-threaded) and Arrow compute kernels cut labels and
convert the columns. (One RE2 regular expression per line was 4x slower.) bench/parse_packets.py
measures the rate (target: at least 1 M packets/s).

Delays: in a receiver log, rx - tx is the one-way delay (both clocks are this machine's); in a
sender log written with ``-m owdm`` (D-ITG's default) tx == rx and the delay is 0. A delay
that is negative by almost a day is a packet sent before and received after midnight: a day is
added back.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from seconetbench.errors import ParseError
from seconetbench.parsers import BYTE_PARSERS, PARSERS
from seconetbench.parsers._common import Parsed

SECONDS_PER_DAY = 86400.0
# A delay below this is a midnight wrap, not a clock error (a real delay is never near a day).
_WRAP_THRESHOLD_S = -SECONDS_PER_DAY / 2

# ITGDec writes "<Label>value" fields; split at '>' every line has these eight fields, the
# value of one field followed by the label of the next.
_FIELDS = ["flow_label", "flow", "seq", "src", "dst", "tx_time", "rx_time", "size"]
_LABEL_AFTER = {"flow": " Seq", "seq": " Src", "src": " Dest", "dst": " txTime", "tx_time": " rxTime",
                "rx_time": " Size", "size": ""}

# The samples' schema (docs/parsers.md lists it).
COLUMNS = {
    "flow": "int32",
    "seq": "int64",
    "src": "category",  # "ip:port", one category per endpoint
    "dst": "category",
    "tx_time_of_day_s": "float64",
    "rx_time_of_day_s": "float64",
    "delay_ms": "float64",
    "size_bytes": "int32",
}


def _split(data: bytes) -> pa.Table:
    """The fields of every line, split by Arrow's CSV reader at '>' (multi-threaded, no Python
    loop); a line with another number of fields raises pyarrow's ArrowInvalid."""
    return pacsv.read_csv(
        io.BytesIO(data),
        read_options=pacsv.ReadOptions(column_names=_FIELDS, block_size=1 << 24),
        parse_options=pacsv.ParseOptions(delimiter=">", quote_char=False, escape_char=False,
                                         newlines_in_values=False, ignore_empty_lines=True),
        convert_options=pacsv.ConvertOptions(column_types={name: pa.string() for name in _FIELDS}),
    )


def _value(table: pa.Table, field: str) -> pa.ChunkedArray:
    """The text of *field*, the next field's label cut off, surrounding blanks trimmed."""
    column = table.column(field)
    label = _LABEL_AFTER[field]
    if label:
        column = pc.utf8_slice_codeunits(column, 0, -len(label))
    return pc.utf8_trim_whitespace(column)


def _endpoints(table: pa.Table, field: str) -> pd.Categorical:
    """Endpoints repeat for every packet of a flow: "ip:port" is made once per distinct value
    and the column is categorical (Arrow's dictionary, no string per row)."""
    encoded = pc.dictionary_encode(table.column(field)).combine_chunks()
    label = _LABEL_AFTER[field]
    distinct = pc.utf8_trim_whitespace(pc.utf8_slice_codeunits(encoded.dictionary, 0, -len(label)))
    distinct = pc.replace_substring(distinct, "/", ":")
    return pd.Categorical.from_codes(encoded.indices.to_numpy(zero_copy_only=False),
                                     categories=pd.Index(distinct.to_pylist(), dtype="string"))


def _seconds_of_day(text: pa.ChunkedArray) -> np.ndarray:
    parts = pc.split_pattern(text, ":", max_splits=2)
    hours, minutes, seconds = (pc.cast(pc.list_element(parts, i), pa.float64()).to_numpy() for i in range(3))
    return hours * 3600.0 + minutes * 60.0 + seconds


def _check_labels(table: pa.Table, source: str | None) -> None:
    """Every line must carry ITGDec's labels in order: catches a file that merely has 7 '>'."""
    for field, label in [("flow_label", "Flow"), *[(f, l.strip()) for f, l in _LABEL_AFTER.items() if l]]:
        column = table.column(field)
        if field == "flow_label":
            bad = pc.invert(pc.equal(column, label))
        else:
            bad = pc.invert(pc.ends_with(column, " " + label))
        bad = bad.combine_chunks()
        if bad.true_count:
            line = pc.index(bad, True).as_py()
            raise ParseError(f"not a packet line of `ITGDec -l`: field '{label}' missing", source, line + 1)


@BYTE_PARSERS.register("itgdec_packets")
def parse_bytes(data: bytes, source: str | None = None) -> Parsed:
    """Packets of an ``ITGDec -l`` dump; a line that is not a packet raises a ParseError naming
    its number (counted over non-empty lines)."""
    if not data.strip():
        return Parsed(pd.DataFrame({c: pd.Series(dtype=t) for c, t in COLUMNS.items()}),
                      {"packets": 0, "flows": 0, "bytes": 0})
    try:
        table = _split(data)
        _check_labels(table, source)
        tx = _seconds_of_day(_value(table, "tx_time"))
        rx = _seconds_of_day(_value(table, "rx_time"))
        flow = pc.cast(_value(table, "flow"), pa.int32()).to_numpy()
        seq = pc.cast(_value(table, "seq"), pa.int64()).to_numpy()
        size = pc.cast(_value(table, "size"), pa.int32()).to_numpy()
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        # Arrow names the line or the value that broke (e.g. "Expected 8 columns, got 3: ...")
        raise ParseError(f"not an `ITGDec -l` packet dump: {str(error)[:300]}", source, None) from None
    delay_s = rx - tx
    delay_s[delay_s < _WRAP_THRESHOLD_S] += SECONDS_PER_DAY
    samples = pd.DataFrame({
        "flow": flow,
        "seq": seq,
        "src": _endpoints(table, "src"),
        "dst": _endpoints(table, "dst"),
        "tx_time_of_day_s": tx,
        "rx_time_of_day_s": rx,
        # rounded to the nanosecond: removes the binary noise of the subtraction, not precision
        # (ITGDec prints microseconds)
        "delay_ms": np.round(delay_s * 1000.0, 6),
        "size_bytes": size,
    })
    summary = {"packets": len(samples), "flows": int(pd.unique(flow).size), "bytes": int(size.sum())}
    return Parsed(samples, summary)


@PARSERS.register("itgdec_packets")
def parse(text: str, source: str | None = None) -> Parsed:
    """The ``parsers`` interface (text in); :func:`parse_bytes` avoids the decode for big files."""
    return parse_bytes(text.encode(), source)
