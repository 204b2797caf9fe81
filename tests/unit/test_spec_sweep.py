"""Setup ids, sweep expansion, naming limits and the table schemas."""

from __future__ import annotations

import pandas as pd
import pytest

from seconetbench import config, tables
from seconetbench.spec import SetupSpec, TargetId
from seconetbench.sweep import batches, expand
from seconetbench.testbed.naming import IFNAMSIZ, Names, container_name

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("setup_id", [
    "single-bridge-iptables-c32", "single-bridge-none-c2", "multi-wireguard-none-c8",
    "single-bridge-nftables-c8-r1000", "single-bridge-none-c2-docker",
])
def test_setup_ids_round_trip(setup_id):
    spec = SetupSpec.parse(setup_id, multi_solution="bridge")
    assert spec.id == setup_id
    assert "/" not in spec.id and "." not in spec.id


@pytest.mark.parametrize("bad", ["single-bridge-c8", "triple-bridge-none-c2", "single-bridge-none-c02", ""])
def test_bad_setup_ids_are_refused_with_an_example(bad):
    with pytest.raises(ValueError, match="single-bridge-iptables-c8|did you mean"):
        SetupSpec.parse(bad)


def test_odd_container_counts_are_refused():
    with pytest.raises(ValueError, match="even"):
        SetupSpec("single", "bridge", "none", 3)


def quick_config():
    return config.load_files(config_path())


def config_path():
    from tests.conftest import REPO

    return REPO / "config" / "config.yaml"


def test_quick_sweep_targets():
    cfg = quick_config()
    sweep = expand(cfg)
    ids = [s.id for s in sweep.setups]
    assert "single-bridge-iptables-c8" in ids and "single-bridge-none-c2" in ids
    targets = sweep.targets()
    assert len(targets) == len(ids) * len(cfg["sweep"]["workloads"]) * cfg["repetitions"]
    assert targets[0].path == f"{targets[0].setup}/{targets[0].workload}/rep1"
    assert len({t.path for t in targets}) == len(targets)


def test_unknown_setup_lookup_lists_known_ones():
    sweep = expand(quick_config())
    with pytest.raises(KeyError, match="single-bridge-none-c2"):
        sweep.setup("single-bridge-none-c4")


def test_interface_names_fit_the_kernel_limit():
    names = Names("scn" + "z" * 5)  # the longest allowed prefix
    for index in (1, 99, 200):
        assert len(names.host_veth(container_name(index))) <= IFNAMSIZ
    assert len(names.bridge(9)) <= IFNAMSIZ
    assert len(names.container_if()) <= IFNAMSIZ
    with pytest.raises(ValueError):
        Names("foo")


def test_tables_reject_missing_or_extra_columns(tmp_path):
    frame = tables.empty("latency")
    tables.write(frame, "latency", tmp_path / "ok.parquet", meta={"kernel": "x"})
    assert tables.read_table_meta(tmp_path / "ok.parquet") == {"kernel": "x"}
    assert tables.kind_of(tmp_path / "ok.parquet") == "latency"
    with pytest.raises(ValueError, match="missing columns \\['rtt_ms'\\]"):
        tables.conform(frame.drop(columns=["rtt_ms"]), "latency")
    with pytest.raises(ValueError, match="unexpected columns \\['colour'\\]"):
        tables.conform(frame.assign(colour=pd.Series(dtype=str)), "latency")
    with pytest.raises(KeyError, match=r"no table kind 'nosuch'; known: \['deployment'"):
        tables.schema("nosuch")


def test_multi_host_setups_expand_and_name_their_hosts():
    from seconetbench.sweep import candidate_setups

    setups = candidate_setups({"testbed": {"backend": "netns"}, "sweep": {
        "single": {"solutions": ["bridge"], "filters": ["iptables"], "containers": [8], "extra_rules": [0, 1000]},
        "multi": {"tunnels": ["vxlan"], "filters": ["none"], "containers": [4], "hosts": 3, "solution": "bridge"}}})
    assert [s.id for s in setups] == ["single-bridge-iptables-c8", "single-bridge-iptables-c8-r1000",
                                      "multi-vxlan-none-c4-h3"]
    assert SetupSpec.parse("multi-vxlan-none-c4-h3", multi_solution="bridge").hosts == 3
    assert SetupSpec.parse("multi-vxlan-none-c4", multi_solution="bridge").hosts == 2


def test_multi_host_plan_puts_every_pair_across_hosts():
    from seconetbench.backends.netns import NetnsBackend

    deployment = NetnsBackend("scnu2").plan(SetupSpec("multi", "bridge", "none", 8, tunnel="vxlan", hosts=2))
    assert [h.netns for h in deployment.hosts] == ["scnu2-h1", "scnu2-h2"]
    for sender, sink in deployment.pairs:
        assert deployment.container(sender).host != deployment.container(sink).host
    assert {c.ip.rsplit(".", 1)[0] for c in deployment.containers} == {"198.19.1", "198.19.2"}


def test_cipher_suites_make_setups_of_their_own():
    cfg = config.validate({
        "sweep": {"multi": {"tunnels": ["ipsec", "wireguard"], "filters": ["none"], "containers": [4],
                            "ciphers": {"ipsec": ["aes256gcm16", "aes256-sha1"]}},
                  "workloads": ["latency"]},
        "workloads": {"latency": {"kind": "latency"}},
    })
    ids = [s.id for s in expand(cfg).setups]
    assert ids == ["multi-ipsec-none-c4-xaes256gcm16", "multi-ipsec-none-c4-xaes256_sha1", "multi-wireguard-none-c4"]
    assert SetupSpec.parse("multi-ipsec-none-c4-xaes256_sha1", multi_solution="bridge").cipher == "aes256-sha1"
    with pytest.raises(ValueError, match="only multi-host"):
        SetupSpec("single", "bridge", "none", 2, cipher="aes256gcm16")


def test_a_setup_id_resolves_to_what_the_sweep_measures():
    from seconetbench.sweep import resolve_setup

    cfg = config.validate({"sweep": {"multi": {"tunnels": ["vxlan"], "filters": ["none"], "containers": [2],
                                               "solution": "routing"}, "workloads": ["latency"]},
                           "workloads": {"latency": {"kind": "latency"}}})
    assert resolve_setup(cfg, "multi-vxlan-none-c2").solution == "routing"
    with pytest.raises(KeyError, match="multi-gre-none-c2.* in this sweep.*multi-vxlan-none-c2"):
        resolve_setup(cfg, "multi-gre-none-c2")
    # outside the sweep (the CLI without --config): the config's solution, else the schema's default
    assert resolve_setup(cfg, "multi-gre-none-c2", outside_sweep=True).solution == "routing"
    assert resolve_setup(quick_config(), "multi-gre-none-c2", outside_sweep=True).solution == "bridge"
    assert resolve_setup(quick_config(), "single-bridge-iptables-c2", outside_sweep=True).filter == "iptables"
    with pytest.raises(ValueError, match="does not name the solution"):
        SetupSpec.parse("multi-gre-none-c2")


def test_unknown_cipher_suites_name_the_ones_offered():
    from seconetbench.errors import ConfigError

    cfg = {"sweep": {"multi": {"tunnels": ["ipsec"], "filters": ["none"], "containers": [4],
                               "ciphers": {"ipsec": ["rot13"]}}, "workloads": ["latency"]},
           "workloads": {"latency": {"kind": "latency"}}}
    with pytest.raises(ConfigError, match=r"'sweep.multi.ciphers.ipsec\[0\]'.*'aes256-sha1', 'aes256gcm16'"):
        config.validate(cfg)


def test_the_machine_checks_spare_setups_that_already_have_raw_results(tmp_path, monkeypatch):
    """Analysis anywhere: on a machine without iptables-restore the iptables setup is excluded
    from measuring, unless it was measured already; then the workflow parses and plots it."""
    cfg = config.validate({"results_dir": str(tmp_path / "results"),
                           "sweep": {"single": {"solutions": ["bridge"], "filters": ["none", "iptables"],
                                                "containers": [2]}, "workloads": ["latency"]},
                           "workloads": {"latency": {"kind": "latency", "count": 5}}})
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # a laptop: none of the testbed's tools
    excluded = expand(cfg, check_machine=True, keep_measured=True).excluded
    assert [e.setup.id for e in excluded] == ["single-bridge-iptables-c2"] and "iptables-restore" in excluded[0].reason
    measured = tmp_path / "results/raw/single-bridge-iptables-c2/latency/rep1"
    measured.mkdir(parents=True)
    (measured / "meta.json").write_text("{}")
    assert expand(cfg, check_machine=True, keep_measured=True).excluded == []
    assert [e.setup.id for e in expand(cfg, check_machine=True).excluded] == ["single-bridge-iptables-c2"]


def test_batches_are_runs_of_one_setup_in_run_order_over_the_missing_targets():
    """One measurement job per batch (docs/decisions.md): the targets still to measure, in run
    order, cut where the setup changes; targets measured already neither join nor cut a batch."""
    cfg = quick_config()
    sweep = expand(cfg)
    order = sweep.run_order("blocked", 1)
    every = batches(order, lambda target: False)
    assert [t for batch in every for t in batch] == order
    # blocked: a setup's workloads back to back in each round, so a batch per setup and round (or
    # one for both when a round ends with the setup the next one starts with)
    assert len(every) == 1 + sum(a.setup != b.setup for a, b in zip(order, order[1:]))
    assert len(sweep.setups) * sweep.repetitions - sweep.repetitions < len(every) <= len(sweep.setups) * sweep.repetitions
    assert all(len({t.setup for t in batch}) == 1 for batch in every)
    first = every[0]
    # a sweep stopped after the batch's first target: only the rest is measured, still as one batch
    rest = batches(order, lambda target: target == first[0])
    assert rest[0] == first[1:] and rest[1:] == every[1:]
    # a target measured in the middle of a batch does not cut it
    middle = batches(order, lambda target: target == first[1])
    assert middle[0] == [first[0], *first[2:]]
    assert batches(order, lambda target: True) == []


def test_repetitions_added_by_convergence_follow_the_planned_order_setup_by_setup():
    cfg = quick_config()
    sweep = expand(cfg)
    cell = f"{sweep.setups[0].id}/{sweep.workloads[0].name}"
    other = f"{sweep.setups[0].id}/{sweep.workloads[1].name}"
    reps = {cell: sweep.repetitions + 2, other: sweep.repetitions + 1}
    order = sweep.measurement_order("shuffled", 1, reps)
    planned = sweep.run_order("shuffled", 1)
    assert order[:len(planned)] == planned
    added_reps = [f"{cell}/rep{sweep.repetitions + 1}", f"{other}/rep{sweep.repetitions + 1}", f"{cell}/rep{sweep.repetitions + 2}"]
    assert [t.path for t in order[len(planned):]] == added_reps
    added = batches(order[len(planned):], lambda target: False)
    assert [len(batch) for batch in added] == [3]  # all of one setup: one deployment measures them
    assert TargetId.parse(added[0][0].path) == added[0][0]
