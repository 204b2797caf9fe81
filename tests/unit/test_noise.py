"""The noise record of a target (seconetbench.noise) on recorded /proc samples: a real window
of this machine (tests/fixtures/procfs/noise_window.json: one busy loop outside the setup, one
inside a scratch network namespace standing for the setup, other jobs running) and hand-made
stat lines for the edge cases."""

from __future__ import annotations

import json

import pytest

from seconetbench import noise
from tests.conftest import SHARED_FIXTURES

pytestmark = pytest.mark.unit

RECORDED = json.loads((SHARED_FIXTURES / "procfs/noise_window.json").read_text())


def recorded(which: str) -> noise.Snapshot:
    sample = RECORDED[which]
    return noise.snapshot_from_texts(sample["proc_stat"], sample["loadavg"],
                                     {int(pid): (p["stat"], p["netns"]) for pid, p in sample["processes"].items()},
                                     sample["taken_at"])


def test_cpu_line_sums_every_state_but_guest():
    times = noise.parse_cpu_line("cpu  36355 0 9817 36770 327 0 460 508 12 0\ncpu0 1 2 3 4 5 6 7 8 9 0\n")
    assert times == noise.CpuTimes(total=36355 + 9817 + 36770 + 327 + 460 + 508, idle=36770 + 327, steal=508, cpus=1)


def test_a_name_with_spaces_and_parentheses_does_not_shift_the_fields():
    line = "4242 (tmux: (server) x) S 1 4242 4242 0 -1 4194560 0 0 0 0 70 30 5 2 20 0 1 0 9000 0 0"
    times = noise.parse_pid_stat(line, netns=7)
    assert (times.pid, times.ppid, times.name, times.cpu_ticks, times.start_ticks) == (4242, 1, "tmux: (server) x", 107, 9000)
    assert not times.kernel_thread
    kthreadd = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 3 0 0 20 0 1 0 26 0 0"
    assert noise.parse_pid_stat(kthreadd, netns=None).kernel_thread


def test_recorded_window_steal_and_the_setup_left_out():
    start, end = recorded("start"), recorded("end")
    setup_netns = {RECORDED["setup_netns"]}
    record = noise.between(start, end, setup_netns, set(), RECORDED["own_pid"])
    everyone = noise.between(start, end, set(), set(), RECORDED["own_pid"])
    ticks = end.cpu.total - start.cpu.total
    assert record["steal_pct"] == round(100 * (end.cpu.steal - start.cpu.steal) / ticks, 3)
    # outside processes cannot use more than the busy share of the machine
    assert 0 < record["outside_cpu_pct"] <= record["busy_pct"]
    # the busy loop inside the setup's namespace is exactly what leaving the setup out removes
    setup_loop = end.processes[RECORDED["setup_pid"]].cpu_ticks - start.processes[RECORDED["setup_pid"]].cpu_ticks
    assert setup_loop > 0
    assert everyone["outside_cpu_pct"] - record["outside_cpu_pct"] == pytest.approx(100 * setup_loop / ticks, abs=0.01)
    # ... and the same when the run's registry names it instead of its namespace
    by_pid = noise.between(start, end, set(), {RECORDED["setup_pid"]}, RECORDED["own_pid"])
    assert by_pid["outside_cpu_pct"] == record["outside_cpu_pct"]
    assert RECORDED["setup_pid"] not in [p["pid"] for p in record["outside_top"]]
    assert record["load1"] == float(RECORDED["end"]["loadavg"].split()[0])
    # the recorded machine has 2 CPUs (cpu0, cpu1 in /proc/stat)
    assert record["cpus"] == 2 and record["load1_per_cpu"] == round(record["load1"] / 2, 3)


def stat(pid: int, ppid: int, name: str, utime: int, cutime: int = 0, start: int = 100, flags: int = 4194560) -> str:
    return f"{pid} ({name}) S {ppid} {pid} {pid} 0 -1 {flags} 0 0 0 0 {utime} 0 {cutime} 0 20 0 1 0 {start} 0 0"


def snapshot(lines: list[str], total: int, taken_at: float, own_netns: int = 1, load1: float = 0.5,
             cpus: int = 2) -> noise.Snapshot:
    per_cpu = "".join(f"cpu{n} 0 0 0 0 0 0 0 0 0 0\n" for n in range(cpus))
    return noise.snapshot_from_texts(f"cpu  {total // 2} 0 0 {total - total // 2} 0 0 0 0 0 0\n{per_cpu}",
                                     f"{load1:.2f} 0.40 0.30 1/100 9",
                                     {int(line.split()[0]): (line, own_netns) for line in lines}, taken_at)


def test_a_child_that_ended_in_the_window_counts_only_its_time_in_the_window():
    # make (pid 10) runs a compiler (pid 11) that had used 300 ticks before the window and 40 in it
    start = snapshot([stat(10, 1, "make", 5), stat(11, 10, "cc1", 300, start=150)], total=10_000, taken_at=0.0)
    end = snapshot([stat(10, 1, "make", 5, cutime=340), stat(12, 10, "cc1", 60, start=900)], total=10_200, taken_at=1.0)
    record = noise.between(start, end, set(), set(), own_pid=99)
    # 40 ticks of the ended compiler + 60 of the one started in the window, of 200 ticks
    assert record["outside_cpu_pct"] == 50.0
    assert [(p["pid"], p["cpu_pct"]) for p in record["outside_top"]] == [(12, 30.0), (10, 20.0)]


def test_the_measuring_process_and_kernel_threads_are_not_outside():
    start = snapshot([stat(99, 1, "snakemake", 10), stat(3, 2, "kworker/0:1", 0, flags=2129984)], total=0, taken_at=0.0)
    end = snapshot([stat(99, 1, "snakemake", 20, cutime=150), stat(3, 2, "kworker/0:1", 80, flags=2129984)],
                   total=200, taken_at=1.0)
    assert noise.between(start, end, set(), set(), own_pid=99)["outside_cpu_pct"] == 0.0


def test_a_pid_reused_by_another_process_counts_from_zero():
    start = snapshot([stat(10, 1, "old", 500, start=100)], total=0, taken_at=0.0)
    end = snapshot([stat(10, 1, "new", 30, start=700)], total=100, taken_at=1.0)
    assert noise.between(start, end, set(), set(), own_pid=99)["outside_cpu_pct"] == 30.0


def test_a_window_shorter_than_a_tick_measures_nothing():
    same = snapshot([stat(10, 1, "x", 5)], total=1000, taken_at=0.0)
    record = noise.between(same, same, set(), set(), own_pid=99)
    assert record["steal_pct"] is None and record["outside_cpu_pct"] is None
    assert not noise.assess(record, {"max_steal_pct": 0, "max_outside_cpu_pct": 0})["noisy"]


@pytest.mark.parametrize(("steal", "outside", "exceeded"), [
    (1.0, 2.0, []), (6.0, 2.0, ["max_steal_pct"]), (1.0, 30.0, ["max_outside_cpu_pct"]),
    (6.0, 30.0, ["max_steal_pct", "max_outside_cpu_pct"]), (5.0, 10.0, []),  # at the threshold is not above it
])
def test_assess_names_each_threshold_exceeded(steal, outside, exceeded):
    settings = {"max_steal_pct": 5, "max_outside_cpu_pct": 10, "max_load1_per_cpu": 4, "remeasure": False}
    assessed = noise.assess({"steal_pct": steal, "outside_cpu_pct": outside, "load1_per_cpu": 1.0}, settings)
    assert assessed["exceeded"] == exceeded and assessed["noisy"] == bool(exceeded)
    assert assessed["thresholds"] == {"max_steal_pct": 5, "max_outside_cpu_pct": 10, "max_load1_per_cpu": 4}


@pytest.mark.parametrize(("load1", "cpus", "exceeded"), [
    (7.9, 2, []),  # 3.95 per CPU: below
    (8.0, 2, []),  # 4.0 per CPU: at the threshold is not above it
    (8.2, 2, ["max_load1_per_cpu"]),  # 4.1 per CPU: above
    (8.2, 4, []),  # the same load on twice the CPUs: 2.05 per CPU
    (3.0, 0, []),  # /proc/stat listed no CPU: no per-CPU load, nothing flagged
])
def test_load_per_cpu_is_flagged_above_its_threshold(load1, cpus, exceeded):
    start = snapshot([stat(10, 1, "x", 5)], total=1000, taken_at=0.0, cpus=cpus)
    end = snapshot([stat(10, 1, "x", 5)], total=1200, taken_at=1.0, load1=load1, cpus=cpus)
    record = noise.between(start, end, set(), set(), own_pid=99)
    assert record["load1"] == load1
    assert record["load1_per_cpu"] == (round(load1 / cpus, 3) if cpus else None)
    settings = {"max_steal_pct": 5, "max_outside_cpu_pct": 10, "max_load1_per_cpu": 4}
    assessed = noise.assess(record, settings)
    assert assessed["exceeded"] == exceeded and assessed["noisy"] == bool(exceeded)


def test_the_load_threshold_defaults_to_four_per_cpu_and_null_turns_it_off():
    from seconetbench import config

    defaults = config.schema_default("testbed", "noise", "max_load1_per_cpu")
    assert defaults == 4
    busy = {"steal_pct": 0.0, "outside_cpu_pct": 0.0, "load1_per_cpu": 12.0}
    assert noise.assess(busy, {"max_load1_per_cpu": defaults})["exceeded"] == ["max_load1_per_cpu"]
    assert not noise.assess(busy, {"max_load1_per_cpu": None})["noisy"]


def test_a_threshold_set_to_null_never_flags():
    assessed = noise.assess({"steal_pct": 90.0, "outside_cpu_pct": 90.0}, {"max_steal_pct": None, "max_outside_cpu_pct": 10})
    assert assessed["exceeded"] == ["max_outside_cpu_pct"]


def test_a_chain_that_ended_in_the_window_reaches_the_surviving_ancestor_once():
    # bash (10) runs timeout (11) running pytest (12); pytest had 500 ticks and timeout 2 before
    # the window, both end in it after 30 more ticks of pytest: bash's cutime grows by 532
    start = snapshot([stat(10, 1, "bash", 1), stat(11, 10, "timeout", 2, start=120), stat(12, 11, "pytest", 500, start=130)],
                     total=10_000, taken_at=0.0)
    end = snapshot([stat(10, 1, "bash", 1, cutime=532)], total=10_100, taken_at=1.0)
    assert noise.between(start, end, set(), set(), own_pid=99)["outside_cpu_pct"] == 30.0
