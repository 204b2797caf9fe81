"""One parse job per setup (rule parse_setup, pipeline.parse_setup): the targets of every cell of a
setup, each workload's rows in the file of its table kind, the tables of the targets as a whole
beside them, and the name that says how many repetitions of each cell a file holds."""

from __future__ import annotations

import shutil

import pytest

from seconetbench import pipeline, tables
from seconetbench.errors import ParseError
from tests.conftest import SHARED_FIXTURES
from tests.unit.test_cells import sweep_config, write_target

pytestmark = pytest.mark.unit

FIRST_PACKET = SHARED_FIXTURES / "first_packet" / "single-ovs-none-c2" / "rep1"  # a real raw target


def test_a_name_says_each_cells_repetitions_and_reads_back():
    assert tables.parsed_name([6, 6, 6]) == "6"
    assert tables.parsed_name([6, 8, 6]) == "6-8-6"
    assert tables.parsed_targets("s", ["a", "b"], "2") == ["s/a/rep1", "s/a/rep2", "s/b/rep1", "s/b/rep2"]
    assert tables.parsed_targets("s", ["a", "b"], "1-3") == ["s/a/rep1", "s/b/rep1", "s/b/rep2", "s/b/rep3"]
    for counts in ([6, 8, 6], [1], [2, 2], [3, 1]):
        names = ["a", "b", "c"][:len(counts)]
        held = tables.parsed_targets("s", names, tables.parsed_name(counts))
        assert [held.count(f"s/{n}/rep1") for n in names] == [1] * len(names)
        assert len(held) == sum(counts)


def test_a_name_of_another_sweep_or_no_repetitions_is_refused():
    with pytest.raises(ValueError, match="names 3 repetition counts, but the sweep has 2 workloads"):
        tables.parsed_targets("s", ["a", "b"], "6-7-6")
    with pytest.raises(ValueError, match="at least 1"):
        tables.parsed_name([6, 0])


def test_each_workload_goes_to_the_file_of_its_kind_with_every_targets_meta(tmp_path):
    latency = [write_target(tmp_path, sweep_config(tmp_path), "single-bridge-none-c2", rep) for rep in (1, 2)]
    first_packet = tmp_path / "raw" / "single-ovs-none-c2" / "fp" / "rep1"
    shutil.copytree(FIRST_PACKET, first_packet)
    outs = {kind: tmp_path / f"reps.{kind}.parquet" for kind in ("latency", "first_packet", "throughput", "deployment")}
    pipeline.parse_setup([*latency, first_packet], outs)

    assert sorted(tables.read(outs["latency"])["rep"].unique()) == [1, 2]
    probes = tables.read(outs["first_packet"])
    fp_metas = tables.read_table_meta(outs["first_packet"])["reps"]
    assert len(fp_metas) == 1 and len(probes) == next(iter(fp_metas.values()))["workload"]["probes"]
    assert sorted(tables.read_table_meta(outs["latency"])["reps"]) == ["latency/1", "latency/2"]
    deployment = tables.read(outs["deployment"])
    assert len(deployment) == 3  # a row per target, whatever its workload
    assert len(tables.read_table_meta(outs["deployment"])["reps"]) == 3
    # a kind no target yields is written empty, with its schema
    assert tables.read(outs["throughput"]).empty and tables.kind_of(outs["throughput"]) == "throughput"


def test_a_kind_without_an_output_file_is_an_error_and_nothing_is_written(tmp_path):
    latency = write_target(tmp_path, sweep_config(tmp_path), "single-bridge-none-c2", 1)
    out = tmp_path / "reps1.deployment.parquet"
    with pytest.raises(ParseError, match="table kind latency has no output file"):
        pipeline.parse_setup([latency], {"deployment": out})
    assert not out.exists()
