"""dstat parser on real `dstat --output` CSVs (tests/fixtures/dstat/, Debian dstat 0.7.4 patched)."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seconetbench.errors import ParseError
from seconetbench.parsers import dstat

pytestmark = pytest.mark.unit


def terminal_rows(text):
    """The data rows of dstat's terminal output, as lists of the '|'-separated group cells."""
    return [[cell.split() for cell in re.split(r"[|:]", line)] for line in text.splitlines()[2:]]


def test_cmn_columns_and_values(fixture_text):
    result = dstat.parse(fixture_text("dstat/cmn.csv"), "cmn.csv")
    samples = result.samples
    assert list(samples.columns) == [
        "cpu_usr_pct", "cpu_sys_pct", "cpu_idl_pct", "cpu_wai_pct", "cpu_stl_pct",
        "mem_used_bytes", "mem_free_bytes", "mem_buff_bytes", "mem_cach_bytes",
        "net_recv_bytes_per_s", "net_send_bytes_per_s",
    ]
    assert len(samples) == 4  # 5 rows, the since-boot average (usr 12.993) dropped
    assert samples["cpu_usr_pct"].tolist() == [71.0, 70.352, 11.443, 0.0]
    assert samples.loc[0, "mem_used_bytes"] == 490553344
    assert samples.loc[3, "cpu_idl_pct"] == 100.0
    assert (samples.dtypes == "float64").all()
    assert result.summary == {"host": "vm", "user": "root", "cmdline": "dstat --output cmn.csv -cmn 1 5",
                              "date": "26 Nov 2026 19:19:24 UTC", "rows": 4}


def test_cpu_percentages_add_up(fixture_text):
    samples = dstat.parse(fixture_text("dstat/cmn.csv")).samples
    cpu = samples[["cpu_usr_pct", "cpu_sys_pct", "cpu_idl_pct", "cpu_wai_pct", "cpu_stl_pct"]]
    assert cpu.sum(axis=1).tolist() == pytest.approx([100.0] * 4, abs=0.01)


def test_epoch_and_named_interfaces(fixture_text):
    result = dstat.parse(fixture_text("dstat/Tcmn_netns_under_load.csv"))
    samples = result.samples
    assert samples.columns[0] == "timestamp_s"
    assert samples["timestamp_s"].tolist() == [1795720775.904, 1795720776.904, 1795720777.904, 1795720778.904]
    assert samples["net_wl_va_send_bytes_per_s"].tolist() == [62615790, 62615790, 62615790, 62615724]
    assert samples["net_wl_va_recv_bytes_per_s"].iloc[0] == 62964
    # "net/total:recv" is named like the plain "net/total" group: net_recv_bytes_per_s.
    assert samples["net_recv_bytes_per_s"].tolist() == samples["net_wl_va_recv_bytes_per_s"].tolist()
    assert result.summary["rows"] == 4
    assert "-N wl-va,total" in result.summary["cmdline"]


@pytest.mark.parametrize(("csv_name", "stdout_name"), [
    ("dstat/cmn.csv", "dstat/cmn_stdout.txt"),
    ("dstat/Tcmn_netns_under_load.csv", "dstat/Tcmn_netns_under_load_stdout.txt"),
])
def test_csv_agrees_with_the_terminal_output_of_the_same_run(fixture_text, csv_name, stdout_name):
    samples = dstat.parse(fixture_text(csv_name)).samples
    rows = terminal_rows(fixture_text(stdout_name))[1:]  # the terminal also starts with the average
    cpu_cell = 1 if samples.columns[0] == "timestamp_s" else 0
    printed_usr = [int(row[cpu_cell][0]) for row in rows]
    assert printed_usr == [round(value) for value in samples["cpu_usr_pct"]]
    printed_idle = [int(row[cpu_cell][2]) for row in rows]
    assert printed_idle == pytest.approx(samples["cpu_idl_pct"].tolist(), abs=1)
    if cpu_cell:  # -T: the terminal shows whole seconds of the same epoch (rounded up)
        assert [int(row[0][0]) for row in rows] == [round(t + 0.5) for t in samples["timestamp_s"]]


def test_crashed_stock_dstat_csv_has_no_data_rows(fixture_text):
    with pytest.raises(ParseError, match=r"^crashed\.csv:6: no data rows.*NameError") as caught:
        dstat.parse(fixture_text("dstat/stock_cmn_crashed_headers_only.csv"), "crashed.csv")
    assert caught.value.line == 6


def test_traceback_is_refused(fixture_text):
    with pytest.raises(ParseError, match=r"traceback, dstat crashed: NameError: name 'types' is not defined"):
        dstat.parse(fixture_text("dstat/stock_cmn_crash_traceback.txt"), "tb.txt")


@pytest.mark.parametrize("name", ["dstat/cmn_stdout.txt", "dstat/Tcmn_netns_under_load_stdout.txt"])
def test_terminal_output_is_refused(fixture_text, name):
    with pytest.raises(ParseError, match=r"terminal output\? use --output"):
        dstat.parse(fixture_text(name), name)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.rstrip("\n"), "no line end"),
    (lambda t: t + "\n\n" + "\n".join(t.split("\n")[2:]), "second header block"),
    (lambda t: t + "\n".join(t.split("\n")[4:]), "second header block"),
    (lambda t: t.replace("0,0,100,0,0", "0,0,100,0,x"), "cpu_stl_pct is 'x'"),
    (lambda t: t.replace("0,0,100,0,0", "0,100,0,0"), "row has 10 values, expected 11"),
    (lambda t: "\n".join(t.split("\n")[:7]) + "\n", "only the since-boot average row"),
    (lambda t: t.replace('"recv","send"', '"recv",""'), "empty names"),
    (lambda t: t.replace('"net/total",', '"net/total",,,'), "group line has 13 cells"),
], ids=["no-final-newline", "appended-run", "appended-without-blank", "text-value", "short-row", "one-row",
        "empty-name", "bad-groups"])
def test_broken_csv(fixture_text, edit, message):
    with pytest.raises(ParseError, match=re.escape(message)) as caught:
        dstat.parse(edit(fixture_text("dstat/cmn.csv")), "m.csv")
    assert str(caught.value).startswith("m.csv:")


def test_unknown_groups_keep_a_sanitised_name():
    text = (
        '"Dstat 0.8.0 CSV output"\n'
        '"Host:","vm",,,,"User:","root"\n'
        '"system","dsk/total",,"total cpu usage","cpu1 usage"\n'
        '"time","read","writ","usr","usr"\n'
        '"26-11 19:19:24",0,0,1,2\n'
        '"26-11 19:19:25",4096,8192,3.5,4\n'
    )
    samples = dstat.parse(text).samples
    assert list(samples.columns) == ["system_time", "dsk_total_read", "dsk_total_writ", "cpu_usr_pct", "cpu1_usr_pct"]
    assert samples["system_time"].tolist() == ["26-11 19:19:25"]  # text kept as text
    assert samples["dsk_total_writ"].tolist() == [8192.0]


@pytest.mark.parametrize(("group", "column", "name"), [
    ("total cpu usage", "wai", "cpu_wai_pct"),
    ("memory usage", "cach", "mem_cach_bytes"),
    ("net/total", "send", "net_send_bytes_per_s"),
    ("net/total", "net/total:send", "net_send_bytes_per_s"),
    ("net/wl-va", "net/wl-va:recv", "net_wl_va_recv_bytes_per_s"),
    ("epoch", "epoch", "timestamp_s"),
    ("load avg", "15m", "load_avg_15m"),
])
def test_column_names(group, column, name):
    assert dstat.column_name(group, column) == name


@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_truncated_csv_parses_into_a_prefix_or_raises(fixture_text, data):
    text = fixture_text("dstat/Tcmn_netns_under_load.csv")
    cut = data.draw(st.integers(min_value=0, max_value=len(text)))
    try:
        partial = dstat.parse(text[:cut])
    except ParseError:
        return
    full = dstat.parse(text)
    pd.testing.assert_frame_equal(partial.samples, full.samples.head(len(partial.samples)))
    assert partial.summary == {**full.summary, "rows": len(partial.samples)}


def test_truncation_at_line_boundaries(fixture_text, boundary_cuts):
    text = fixture_text("dstat/cmn.csv")
    full = dstat.parse(text)
    parsed_rows = []
    for cut in boundary_cuts(text):
        try:
            partial = dstat.parse(text[:cut])
        except ParseError:
            continue
        pd.testing.assert_frame_equal(partial.samples, full.samples.head(len(partial.samples)))
        parsed_rows.append(len(partial.samples))
    assert sorted(set(parsed_rows)) == [1, 2, 3]  # every complete-row prefix with >= 1 sample
