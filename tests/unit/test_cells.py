"""A cell never mixes parameters: the fingerprint, the workflow's check over existing results,
the runner's guard before measuring, and parsing's refusal of mixed repetitions."""

from __future__ import annotations

import json
import shutil

import pytest

from seconetbench import cells, config, pipeline, runner
from seconetbench.errors import WorkloadError
from seconetbench.spec import SetupSpec, WorkloadSpec
from seconetbench.sweep import expand
from tests.conftest import REPO

pytestmark = pytest.mark.unit

PING_OUTPUT = REPO / "tests/fixtures/ping/basic_20.txt"
CELL = "single-bridge-none-c2/latency"


def sweep_config(results_dir, count: int = 5, multi_solution: str | None = None) -> dict:
    sweep = {"single": {"solutions": ["bridge"], "filters": ["none"], "containers": [2]}, "workloads": ["latency"]}
    if multi_solution:
        sweep["multi"] = {"tunnels": ["vxlan"], "filters": ["none"], "containers": [2], "solution": multi_solution}
    return config.validate({"results_dir": str(results_dir), "repetitions": 2, "sweep": sweep,
                            "workloads": {"latency": {"kind": "latency", "count": count, "interval_s": 0.2}}})


def write_target(results_dir, cfg: dict, setup_id: str, rep: int, record_params: bool = True):
    """A raw target as the runner leaves it: the meta.json of *cfg*'s setup and workload (the
    parts the checks and the parser read) and a recorded real ping output."""
    sweep = expand(cfg)
    setup, workload = sweep.setup(setup_id), sweep.workload("latency")
    raw = results_dir / "raw" / setup_id / "latency" / f"rep{rep}"
    raw.mkdir(parents=True)
    shutil.copy(PING_OUTPUT, raw / "ping_c01-c02.txt")
    meta = {"target": {"setup": setup_id, "workload": "latency", "rep": rep},
            "setup": setup.to_dict(), "workload": workload.to_dict(), "table": "latency",
            "workload_run": {"generator": "ping", "processes": [{"pair": "c01-c02", "stdout": "ping_c01-c02.txt"}]},
            "deployment": {"reused": False, "timings": {"deploy_s": 0.2}}, "machine": {"cpus": 2},
            "monitor": {"enabled": False, "interval_s": 1.0}}
    if record_params:
        params = cells.cell_params(setup, workload)
        meta.update(cell_params=params, cell_fingerprint=cells.fingerprint(params))
    (raw / "meta.json").write_text(json.dumps(meta))
    return raw


def check(cfg: dict) -> None:
    sweep = expand(cfg)
    cells.check_results(cfg["results_dir"], sweep.setups, sweep.workloads)


def test_params_hold_every_measured_parameter_but_not_the_names():
    setup = SetupSpec("multi", "ovs", "none", 4, tunnel="ipsec", hosts=2, cipher="aes256-sha1")
    workload = WorkloadSpec("throughput_653", "throughput", {"payload_bytes": 653, "duration_s": 3,
                                                             "generator": "iperf3"})
    params = cells.cell_params(setup, workload)
    assert params["setup"]["solution"] == "ovs" and params["setup"]["cipher"] == "aes256-sha1"
    assert params["workload"] == {"kind": "throughput", "payload_bytes": 653, "duration_s": 3, "generator": "iperf3"}
    assert "id" not in params["setup"] and "name" not in params["workload"]
    other = cells.cell_params(SetupSpec("multi", "bridge", "none", 4, tunnel="ipsec", hosts=2, cipher="aes256-sha1"),
                              workload)
    assert cells.fingerprint(params) != cells.fingerprint(other)
    assert cells.differences(other, params) == ['setup.solution "bridge" → "ovs"']


def test_a_field_added_to_the_spec_joins_the_params():
    # what another field of SetupSpec.to_dict() (e.g. a resolved implementation) becomes
    setup = {**SetupSpec("single", "bridge", "none", 2).to_dict(), "implementations": {"wireguard": "kernel"}}
    params = cells.params_of(setup, {"name": "latency", "kind": "latency", "count": 5})
    assert params["setup"]["implementations"] == {"wireguard": "kernel"}
    assert cells.differences(cells.params_of(SetupSpec("single", "bridge", "none", 2).to_dict(), {"kind": "latency", "count": 5}),
                             params) == ['setup.implementations.wireguard (absent) → "kernel"']


def test_equal_values_in_another_form_are_the_same_params():
    a = cells.params_of({"solution": "bridge", "cipher": None}, {"kind": "throughput", "duration_s": 3})
    b = cells.params_of({"solution": "bridge"}, {"kind": "throughput", "duration_s": 3.0})
    assert cells.fingerprint(a) == cells.fingerprint(b)


def test_a_new_results_dir_and_matching_repetitions_pass(tmp_path):
    cfg = sweep_config(tmp_path)
    check(cfg)  # nothing measured yet
    write_target(tmp_path, cfg, "single-bridge-none-c2", 1)
    write_target(tmp_path, cfg, "single-bridge-none-c2", 2, record_params=False)  # before cell_params
    check(cfg)


def test_other_parameters_are_refused_naming_cell_keys_values_and_the_ways_out(tmp_path):
    write_target(tmp_path, sweep_config(tmp_path, count=5), "single-bridge-none-c2", 1)
    write_target(tmp_path, sweep_config(tmp_path, count=5), "single-bridge-none-c2", 2)
    with pytest.raises(cells.MixedCellError) as refused:
        check(sweep_config(tmp_path, count=9))
    message = str(refused.value)
    assert f"{CELL} was measured with different parameters: workload.count 5 → 9 (rep1, rep2)" in message
    assert "another results_dir" in message and f"mv {tmp_path}/raw/{CELL} " in message


def test_only_the_multi_host_solution_differs(tmp_path):
    measured = sweep_config(tmp_path, multi_solution="bridge")
    write_target(tmp_path, measured, "multi-vxlan-none-c2", 1)
    with pytest.raises(cells.MixedCellError, match='multi-vxlan-none-c2/latency .*setup.solution "bridge" → "routing"'):
        check(sweep_config(tmp_path, multi_solution="routing"))


def test_cells_the_sweep_does_not_ask_for_are_left_alone(tmp_path):
    write_target(tmp_path, sweep_config(tmp_path, multi_solution="bridge"), "multi-vxlan-none-c2", 1)
    check(sweep_config(tmp_path, count=9))  # no multi-host setup in this sweep


def test_the_runner_refuses_another_repetition_before_deploying(tmp_path):
    write_target(tmp_path, sweep_config(tmp_path, count=5), "single-bridge-none-c2", 1)
    out = tmp_path / "raw" / CELL / "rep2"
    with pytest.raises(WorkloadError, match=f"{CELL}/rep2: .*workload.count 5 → 9 \\(rep1\\)"):
        runner.measure(sweep_config(tmp_path, count=9), "single-bridge-none-c2", "latency", 2, out)
    assert not out.exists() and not (tmp_path / "failed").exists()


def parse(raw_dirs, tmp_path):
    out = tmp_path / "parsed" / "reps.parquet"
    out.parent.mkdir(exist_ok=True)
    pipeline.parse_setup(raw_dirs, {"latency": out, "deployment": tmp_path / "parsed" / "reps.deployment.parquet"})
    return out


def test_parsing_refuses_mixed_repetitions(tmp_path):
    first = write_target(tmp_path, sweep_config(tmp_path, count=5), "single-bridge-none-c2", 1)
    second = write_target(tmp_path, sweep_config(tmp_path, count=9), "single-bridge-none-c2", 2)
    with pytest.raises(cells.MixedCellError, match=f"{CELL} mixes .*workload.count 5 → 9 \\(rep1 → rep2\\)"):
        parse([first, second], tmp_path)
    assert not (tmp_path / "parsed" / "reps.parquet").exists()


def test_parsing_matching_repetitions_writes_them_all(tmp_path):
    cfg = sweep_config(tmp_path)
    raw_dirs = [write_target(tmp_path, cfg, "single-bridge-none-c2", rep) for rep in (1, 2)]
    from seconetbench import tables

    assert sorted(tables.read(parse(raw_dirs, tmp_path))["rep"].unique()) == [1, 2]


def test_a_generator_auto_resolved_otherwise_is_refused_by_the_runner_and_by_parsing(tmp_path):
    cfg = sweep_config(tmp_path)
    raw = write_target(tmp_path, cfg, "single-bridge-none-c2", 1)
    meta = json.loads((raw / "meta.json").read_text())
    meta["workload_run"]["generator"] = "uperf"
    (raw / "meta.json").write_text(json.dumps(meta))
    sweep = expand(cfg)
    setup, workload = sweep.setup("single-bridge-none-c2"), sweep.workload("latency")
    cells.check_cell(raw.parent, setup, workload, tmp_path, ran={"generator": "uperf"})
    with pytest.raises(cells.MixedCellError, match='ran.generator "uperf" → "iperf3" \\(rep1\\)'):
        cells.check_cell(raw.parent, setup, workload, tmp_path, ran={"generator": "iperf3"})
    other = {**meta, "target": {**meta["target"], "rep": 2}, "workload_run": {**meta["workload_run"], "generator": "iperf3"}}
    with pytest.raises(cells.MixedCellError, match='ran.generator "uperf" → "iperf3" \\(rep1 → rep2\\)'):
        cells.check_repetitions({"1": meta, "2": other}, raw.parent)


def test_an_implementation_auto_resolved_otherwise_is_refused(tmp_path):
    cfg = sweep_config(tmp_path)
    raw = write_target(tmp_path, cfg, "single-bridge-none-c2", 1)
    meta = json.loads((raw / "meta.json").read_text())
    meta["deployment"]["implementation"] = {"requested": "auto", "resolved": "kernel"}
    (raw / "meta.json").write_text(json.dumps(meta))
    sweep = expand(cfg)
    setup, workload = sweep.setup("single-bridge-none-c2"), sweep.workload("latency")
    now = cells.ran_of({"deployment": {"implementation": {"requested": "auto", "resolved": "userspace"}}})
    with pytest.raises(cells.MixedCellError, match='ran.implementation "kernel" → "userspace" \\(rep1\\)'):
        cells.check_cell(raw.parent, setup, workload, tmp_path, ran=now)
    check(cfg)  # the planning check compares parameters only: it may run where nothing can be probed


def test_parsing_compares_what_ran_only_where_every_repetition_recorded_it(tmp_path):
    cfg = sweep_config(tmp_path)
    first = json.loads((write_target(tmp_path, cfg, "single-bridge-none-c2", 1) / "meta.json").read_text())
    # rep2 measured after the implementation was recorded, rep1 before
    second = {**first, "target": {**first["target"], "rep": 2},
              "deployment": {**first["deployment"], "implementation": {"resolved": "kernel"}}}
    cells.check_repetitions({"1": first, "2": second}, tmp_path / "raw" / CELL)
    third = {**second, "target": {**first["target"], "rep": 3},
             "deployment": {**first["deployment"], "implementation": {"resolved": "userspace"}}}
    with pytest.raises(cells.MixedCellError, match='ran.implementation "kernel" → "userspace" \\(rep2 → rep3\\)'):
        cells.check_repetitions({"2": second, "3": third}, tmp_path / "raw" / CELL)


def test_pinned_and_unpinned_repetitions_are_never_mixed(tmp_path):
    cfg = sweep_config(tmp_path)
    raw = write_target(tmp_path, cfg, "single-bridge-none-c2", 1)
    meta = json.loads((raw / "meta.json").read_text())
    meta["cpu_pinning"] = {"requested": None, "daemons": None}
    (raw / "meta.json").write_text(json.dumps(meta))
    sweep = expand(cfg)
    setup, workload = sweep.setup("single-bridge-none-c2"), sweep.workload("latency")
    cells.check_cell(raw.parent, setup, workload, tmp_path, ran={"cpu_pinning": cells.pinning_of(None)})
    pinned = cells.pinning_of({"sender": 0, "sink": 1})
    with pytest.raises(cells.MixedCellError, match='ran.cpu_pinning "off" → '):
        cells.check_cell(raw.parent, setup, workload, tmp_path, ran={"cpu_pinning": pinned})
    other = {**meta, "target": {**meta["target"], "rep": 2},
             "cpu_pinning": {"requested": {"sender": 0, "sink": 1}, "daemons": None}}
    with pytest.raises(cells.MixedCellError, match="ran.cpu_pinning"):
        cells.check_repetitions({"1": meta, "2": other}, raw.parent)
