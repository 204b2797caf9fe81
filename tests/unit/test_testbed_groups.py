"""Testbed groups (testbed/groups.py): the config's groups, their prefixes and locks, the
rotation a target takes a group from, the blocked run order over groups, and the statistics
that pair a round only within one group."""

from __future__ import annotations

import copy

import pandas as pd
import pytest

from seconetbench import config, pipeline, stats
from seconetbench.errors import ConfigError, WorkloadError
from seconetbench.runner import HostLock, lock_path
from seconetbench.sweep import expand
from seconetbench.testbed import groups
from tests.unit import test_ssh_config

pytestmark = pytest.mark.unit

keys = test_ssh_config.keys  # the fixture: a real client key and known_hosts


def lab_entries(keys, first: int, count: int) -> list[dict]:
    return [{"name": f"h{i}", "address": f"192.0.2.{i}", "user": "root", "identity_file": str(keys / "id_ed25519"),
             "underlay_dev": "eth1", "underlay_ip": f"198.18.0.{i}"} for i in range(first, first + count)]


def grouped_config(keys, tmp_path, groups_hosts: list[list[dict]], prefix: str = "scngrp1") -> dict:
    # accept-new: the hosts' keys need not be known (a changed key is refused all the same)
    return {"results_dir": str(tmp_path / "results"),
            "sweep": {"multi": {"tunnels": ["vxlan"], "filters": ["none", "iptables"], "containers": [2], "hosts": 2},
                      "workloads": ["latency"]},
            "workloads": {"latency": {"kind": "latency"}},
            "testbed": {"backend": "ssh", "prefix": prefix,
                        "ssh": {"groups": groups_hosts, "strict_host_key_checking": "accept-new",
                                "known_hosts_file": str(tmp_path / "known_hosts")}}}


@pytest.fixture
def own_locks(tmp_path, monkeypatch):
    """The measurement locks of this test (runner.lock_path reads $SECONETBENCH_LOCK at each use)."""
    monkeypatch.setenv("SECONETBENCH_LOCK", str(tmp_path / "locks" / "seconetbench.lock"))
    monkeypatch.setattr(groups, "_out_of_rotation", {})
    monkeypatch.setattr(groups, "_healthy", set())


def test_a_config_without_groups_is_one_group_with_the_run_prefix_and_the_host_lock(tmp_path, own_locks):
    validated = config.validate({"results_dir": str(tmp_path / "r"), "sweep": {"single": {
        "solutions": ["bridge"], "filters": ["none"], "containers": [2]}, "workloads": ["latency"]},
        "workloads": {"latency": {"kind": "latency"}}})
    [only] = groups.testbed_groups(validated)
    assert (only.name, only.prefix, only.count) == ("g1", config.run_prefix(validated), 1)
    assert only.testbed is validated["testbed"] and only.lock_file == lock_path()


def test_ssh_groups_are_testbeds_of_their_own_hosts_prefix_and_lock(keys, tmp_path, own_locks):
    validated = config.validate(grouped_config(keys, tmp_path, [lab_entries(keys, 1, 2), lab_entries(keys, 3, 2)]))
    first, second = groups.testbed_groups(validated)
    assert [first.prefix, second.prefix] == ["scngrp11", "scngrp12"]
    assert first.hosts == ["h1", "h2"] and second.hosts == ["h3", "h4"]
    assert "groups" not in first.testbed["ssh"] and first.testbed["ssh"]["known_hosts_file"].endswith("known_hosts")
    assert first.lock_file != second.lock_file and first.lock_file.parent == lock_path().parent
    # a group's lock is its hosts', whatever their order in another config
    swapped = config.validate(grouped_config(keys, tmp_path, [lab_entries(keys, 1, 2)[::-1], lab_entries(keys, 3, 2)]))
    assert groups.testbed_groups(swapped)[0].lock_file == first.lock_file
    assert first.describe() == {"name": "g1", "index": 1, "of": 2, "prefix": "scngrp11", "hosts": ["h1", "h2"]}


def test_vm_groups_boot_groups_of_vms_under_prefixes_of_their_own(tmp_path, own_locks):
    from seconetbench.backends.vm import vm_prefix

    validated = config.validate({"results_dir": str(tmp_path / "r"), "testbed": {"backend": "vm", "vm": {"groups": 3}},
                                 "sweep": {"multi": {"tunnels": ["vxlan"], "filters": ["none"], "containers": [2]},
                                           "workloads": ["latency"]}, "workloads": {"latency": {"kind": "latency"}}})
    made = groups.testbed_groups(validated)
    assert [g.testbed["vm"]["groups"] for g in made] == [1, 1, 1] and made[2].hosts == ["vm1", "vm2"]
    assert len({vm_prefix(g.prefix) for g in made}) == 3 and len({g.lock_file for g in made}) == 3


@pytest.mark.parametrize(("change", "key", "words"), [
    (lambda c, k: c["testbed"]["ssh"].update(hosts=lab_entries(k, 5, 2)), "testbed.ssh.groups", "together with"),
    (lambda c, k: c["testbed"]["ssh"]["groups"][1].__setitem__(0, lab_entries(k, 1, 1)[0]),
     "testbed.ssh.groups[1][0]", r"also in testbed\.ssh\.groups\[0\]\[0\]"),
    (lambda c, k: c["testbed"]["ssh"]["groups"][1].pop(), "testbed.ssh.groups[1]", "multi-host setups need 2"),
    (lambda c, k: c["testbed"].update(prefix="scngrp12"), "testbed.prefix", "at most 7 characters"),
])
def test_a_bad_group_is_refused_naming_its_key(keys, tmp_path, change, key, words):
    raw = grouped_config(keys, tmp_path, [lab_entries(keys, 1, 2), lab_entries(keys, 3, 2)])
    change(raw, keys)
    with pytest.raises(ConfigError, match=words) as refused:
        config.validate(copy.deepcopy(raw))
    assert refused.value.key == key


def test_a_target_takes_its_rounds_group_and_another_only_when_that_one_is_out_of_rotation(keys, tmp_path,
                                                                                         own_locks):
    validated = config.validate(grouped_config(keys, tmp_path, [lab_entries(keys, 1, 2), lab_entries(keys, 3, 2)]))
    made = groups.testbed_groups(validated)
    assert [groups.round_group(rep, 2) for rep in (1, 2, 3, 4)] == [1, 2, 1, 2]
    group, lock = groups._lock_one(made, rep=2, timeout_s=5)
    assert group.name == "g2"  # round 2's group
    with pytest.raises(WorkloadError, match=f"another measurement holds {made[1].lock_file}"):
        groups._lock_one(made, rep=4, timeout_s=0)  # its group is busy: it waits for it, g1 free or not
    groups.take_out(made[0], "host h1: unreachable")
    with pytest.raises(WorkloadError, match=f"another measurement holds {made[1].lock_file}"):
        groups._lock_one(made, rep=1, timeout_s=0)  # g1 is out: round 1 goes to g2, which is busy
    lock.__exit__(None, None, None)
    moved, moved_lock = groups._lock_one(made, rep=1, timeout_s=0)
    assert moved.name == "g2"
    moved_lock.__exit__(None, None, None)
    groups.take_out(made[1], "host h3: no root")
    with pytest.raises(WorkloadError, match=r"no testbed group is left.*g1: host h1: unreachable; g2: host h3: no root"):
        groups._lock_one(made, rep=1, timeout_s=0)
    assert all(HostLock(0, g.lock_file).try_acquire(0) for g in made)  # every lock was given back


def test_the_host_lock_is_shared_by_shared_holders_and_excludes_everyone_when_held_exclusively(own_locks):
    first, second = HostLock(0, shared=True), HostLock(0, shared=True)
    assert first.try_acquire(0) and second.try_acquire(0)  # two groups' measurements at once
    assert not HostLock(0).try_acquire(0)  # a test or an ungrouped sweep waits for both
    first.release()
    assert not HostLock(0).try_acquire(0)
    second.release()
    exclusive = HostLock(0)
    assert exclusive.try_acquire(0)
    assert lock_path().with_suffix(".holder").read_text().endswith(", exclusive\n")
    with pytest.raises(WorkloadError, match=f"another measurement holds {lock_path()} .*exclusive"):
        HostLock(0, shared=True).__enter__()  # a group's measurement waits for the test
    exclusive.release()
    assert HostLock(0, shared=True).try_acquire(0)


def test_a_waiter_takes_the_lock_when_the_holder_lets_go_and_one_that_gave_up_keeps_nothing(own_locks):
    import threading

    holder = HostLock(0).__enter__()
    assert not HostLock(0).try_acquire(0.01)  # gave up: its waiting thread must let go when it gets it
    taken = []
    waiter = threading.Thread(target=lambda: taken.append(HostLock(600).try_acquire(600)))
    waiter.start()
    holder.release()
    waiter.join()
    assert taken == [True]


def test_the_groups_measure_side_by_side_under_the_shared_host_lock_but_not_beside_a_test(keys, tmp_path, own_locks):
    validated = config.validate(grouped_config(keys, tmp_path, [lab_entries(keys, 1, 2), lab_entries(keys, 3, 2)]))
    first, second = groups.testbed_groups(validated)
    with first.locked(0), second.locked(0):
        assert not HostLock(0).try_acquire(0)  # the host-wide lock, exclusively: a test, clean, a bench
        with pytest.raises(WorkloadError, match=f"another measurement holds {first.lock_file}"):
            first.locked(0).__enter__()  # but each group one measurement at a time
    test_hold = HostLock(0).__enter__()
    with pytest.raises(WorkloadError, match=f"another measurement holds {lock_path()}"):
        second.locked(0).__enter__()
    assert HostLock(0, second.lock_file).try_acquire(0)  # waiting for the host lock, it took nothing else
    test_hold.release()
    [only] = groups.testbed_groups(config.validate({"results_dir": str(tmp_path / "r"), "sweep": {"single": {
        "solutions": ["bridge"], "filters": ["none"], "containers": [2]}, "workloads": ["latency"]},
        "workloads": {"latency": {"kind": "latency"}}}))
    with only.locked(0):  # one group: the host-wide lock, exclusively, as without groups
        assert only.lock_file == lock_path() and not HostLock(0, shared=True).try_acquire(0)


def test_a_target_on_one_of_several_groups_holds_the_host_lock_shared(tmp_path, own_locks):
    validated = config.validate({"results_dir": str(tmp_path / "r"), "testbed": {"backend": "vm", "vm": {"groups": 2}},
                                 "sweep": {"multi": {"tunnels": ["vxlan"], "filters": ["none"], "containers": [2]},
                                           "workloads": ["latency"]}, "workloads": {"latency": {"kind": "latency"}}})
    with groups.deployed(validated, 1, lambda backend: ("deployment", False)) as (group, _, deployment, _):
        assert (group.name, deployment) == ("g1", "deployment")
        assert not HostLock(0).try_acquire(0) and not HostLock(0, group.lock_file).try_acquire(0)
        with groups.deployed(validated, 2, lambda backend: ("deployment", False)) as (beside, *_):
            assert beside.name == "g2"  # the other group's target at the same time
    assert HostLock(0).try_acquire(0)  # all given back


def test_the_blocked_order_interleaves_the_rounds_of_the_groups_setup_by_setup(keys, tmp_path):
    validated = config.validate(grouped_config(keys, tmp_path, [lab_entries(keys, 1, 2), lab_entries(keys, 3, 2)]))
    validated["sweep"]["workloads"] = ["latency", "latency2"]
    validated["workloads"]["latency2"] = {"kind": "latency", "count": 3}
    validated["repetitions"] = 4
    sweep = expand(validated)
    one, two = sweep.run_order("blocked", 7), sweep.run_order("blocked", 7, groups=2)
    assert sorted(t.path for t in one) == sorted(t.path for t in two)
    # each round's targets in the same order as with one group, and a setup's workloads back to back
    for rep in range(1, 5):
        assert [t for t in two if t.rep == rep] == [t for t in one if t.rep == rep]
    reps = [t.rep for t in two]
    workloads = len(sweep.workloads)
    blocks = [reps[i:i + workloads] for i in range(0, len(reps), workloads)]
    assert all(len(set(block)) == 1 for block in blocks)
    # rounds 1 and 2 alternate setup by setup, then rounds 3 and 4
    half = len(two) // 2
    assert [b[0] for b in blocks[:half // workloads]] == [1, 2] * (len(sweep.setups))
    assert {t.rep for t in two[half:]} == {3, 4}


def test_effects_pair_a_round_only_within_one_group():
    setup, baseline = "single-bridge-iptables-c2", "single-bridge-none-c2"
    rows = []
    for rep in range(1, 9):
        rows.append({"setup": baseline, "workload": "latency", "rep": rep, "group": f"g{1 + rep % 2}", "value": 1.0})
        # rep 8 of the setup ran on the other group: no pair for that round
        group = f"g{1 + rep % 2}" if rep != 8 else "g9"
        rows.append({"setup": setup, "workload": "latency", "rep": rep, "group": group, "value": 1.1 + 0.001 * rep})
    values = pd.DataFrame(rows)
    summary = pd.DataFrame([{"setup": s, "workload": "latency", "metric": "rtt_ms", "median": 1.0}
                            for s in (setup, baseline)])
    grouped = stats.ratio_to_baseline(summary, values, paired=True)
    ungrouped = stats.ratio_to_baseline(summary, values.drop(columns="group"), paired=True)
    assert grouped.loc[0, "pairing"] == "paired" and grouped.loc[0, "ratio_n"] == 7
    assert ungrouped.loc[0, "ratio_n"] == 8


def test_a_target_without_a_group_in_its_meta_is_of_the_first_group():
    assert pipeline.group_of({}) == "g1"
    assert pipeline.group_of({"group": {"name": "g2"}}) == "g2"
    values = pd.DataFrame({"setup": ["a", "a"], "workload": ["w", "w"], "rep": [1, 2], "value": [1.0, 2.0]})
    frame = pd.DataFrame({"setup": ["a"] * 3, "workload": ["w"] * 3, "rep": [1, 1, 2], "group": ["g1", "g1", "g2"]})
    assert list(pipeline.with_groups(values, frame)["group"]) == ["g1", "g2"]
