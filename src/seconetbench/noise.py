"""What else used this machine while a workload ran: CPU steal, CPU of processes outside the
setup, load; and whether that makes the target noisy (config ``testbed.noise``).

Two snapshots of /proc, right before and right after the workload, and their difference:

- ``steal_pct``: the hypervisor's steal over the workload, in percent of all cores (the ``cpu``
  line of /proc/stat);
- ``outside_cpu_pct``: CPU time of every user-space process that is not part of the setup, in
  percent of all cores. Outside = not in one of the setup's network namespaces, not a process
  the run started (its registry), not the measuring process itself, not a kernel thread. A
  process alive at both snapshots counts its difference; one started in between counts all of
  its time; one that ended in between counts through the cutime/cstime of its nearest ancestor
  still alive, less what it had used before the window (tests/unit/test_noise.py replays a
  recorded window; an orphan reaped by init in the window counts its whole life). Counting the
  outside processes directly, rather than host CPU minus the setup's, keeps two errors out: the
  generators end before the monitor's last sample (their last interval would look foreign), and
  the kernel's work for the setup (softirq, kworker crypto) is nobody's process;
- ``load1``: the 1-minute load average at the end (every process, the setup's included), and
  ``load1_per_cpu``: the same over the CPUs /proc/stat lists (``cpus``), which the threshold
  bounds.

docs/statistics.md describes the thresholds and the re-measurement; docs/decisions.md why.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seconetbench.errors import ParseError

PF_KTHREAD = 0x00200000  # /proc/<pid>/stat flags: a kernel thread
TOP_OUTSIDE = 3  # outside processes named in the record, the busiest first


@dataclass(frozen=True)
class CpuTimes:
    """The ``cpu`` line of /proc/stat: clock ticks summed over all cores."""

    total: int
    idle: int  # idle + iowait
    steal: int
    cpus: int = 0  # the cpuN lines: CPUs online; 0 when /proc/stat lists none


@dataclass(frozen=True)
class ProcessTimes:
    pid: int
    ppid: int
    name: str
    start_ticks: int  # since boot: tells a process from a later one with the same pid
    cpu_ticks: int  # utime + stime + cutime + cstime (its reaped children's time included)
    kernel_thread: bool
    netns: int | None  # inode of its network namespace; None when it could not be read


@dataclass(frozen=True)
class Snapshot:
    taken_at: float  # time.monotonic()
    cpu: CpuTimes
    processes: dict[int, ProcessTimes]
    load1: float


def parse_cpu_line(proc_stat: str) -> CpuTimes:
    """The all-cores line of /proc/stat (user nice system idle iowait irq softirq steal guest
    guest_nice), and how many per-CPU lines follow it. guest time is already part of user time,
    so it is not added again."""
    lines = proc_stat.splitlines()
    cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    for line in lines:
        if line.startswith("cpu "):
            values = [int(v) for v in line.split()[1:]] + [0] * 10
            user, nice, system, idle, iowait, irq, softirq, steal = values[:8]
            return CpuTimes(total=user + nice + system + idle + iowait + irq + softirq + steal,
                            idle=idle + iowait, steal=steal, cpus=cpus)
    raise ParseError("no 'cpu ' line", source="/proc/stat")


def parse_pid_stat(text: str, netns: int | None) -> ProcessTimes:
    """One /proc/<pid>/stat line. The name (field 2) is in parentheses and may itself hold
    spaces and parentheses, so the fields are counted from the last ')'."""
    head, _, tail = text.rpartition(")")
    pid, _, name = head.partition(" (")
    fields = tail.split()  # fields[0] is field 3 (state)
    ppid, flags, utime, stime, cutime, cstime, start = (int(fields[i]) for i in (1, 6, 11, 12, 13, 14, 19))
    return ProcessTimes(pid=int(pid), ppid=ppid, name=name, start_ticks=start,
                        cpu_ticks=utime + stime + cutime + cstime, kernel_thread=bool(flags & PF_KTHREAD), netns=netns)


def snapshot_from_texts(proc_stat: str, loadavg: str, pid_stats: dict[int, tuple[str, int | None]],
                        taken_at: float) -> Snapshot:
    """A snapshot from the raw texts (pid -> (stat line, netns inode)): what :func:`snapshot`
    reads, and what the unit tests replay from recorded files."""
    processes = {}
    for pid, (text, netns) in pid_stats.items():
        times = parse_pid_stat(text, netns)
        processes[times.pid] = times
    return Snapshot(taken_at=taken_at, cpu=parse_cpu_line(proc_stat), processes=processes,
                    load1=float(loadavg.split()[0]))


def read_texts(proc: Path = Path("/proc")) -> tuple[str, str, dict[int, tuple[str, int | None]]]:
    """/proc/stat, /proc/loadavg and every process's stat line with its netns inode."""
    pid_stats: dict[int, tuple[str, int | None]] = {}
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue  # ended while we looked
        try:
            netns: int | None = os.stat(Path(entry.path, "ns", "net")).st_ino
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            netns = None
        pid_stats[int(entry.name)] = (text, netns)
    return (proc / "stat").read_text(), (proc / "loadavg").read_text(), pid_stats


def snapshot() -> Snapshot:
    proc_stat, loadavg, pid_stats = read_texts()
    return snapshot_from_texts(proc_stat, loadavg, pid_stats, time.monotonic())


def between(start: Snapshot, end: Snapshot, setup_netns: set[int], setup_pids: set[int],
            own_pid: int) -> dict[str, Any]:
    """The noise record of the window from *start* to *end* (keys as in meta.json ``noise``).

    *setup_netns*: inodes of the setup's network namespaces; *setup_pids*: the processes the run
    started (daemons); *own_pid*: the measuring process, whose reaped children are the
    generators."""
    ticks = end.cpu.total - start.cpu.total
    load = {"load1": end.load1, "cpus": end.cpu.cpus or None,
            "load1_per_cpu": round(end.load1 / end.cpu.cpus, 3) if end.cpu.cpus else None}
    if ticks <= 0:  # /proc/stat did not advance: a window shorter than one tick
        return {"window_s": round(end.taken_at - start.taken_at, 3), "steal_pct": None, "busy_pct": None,
                "outside_cpu_pct": None, "outside_top": [], **load}
    outside: dict[int, int] = {}  # pid -> ticks in the window, of every outside process alive at the end
    for pid, now in end.processes.items():
        if (now.kernel_thread or pid == own_pid or pid in setup_pids
                or (now.netns is not None and now.netns in setup_netns)):
            continue
        before = start.processes.get(pid)
        outside[pid] = now.cpu_ticks - before.cpu_ticks if _same(before, now) else now.cpu_ticks
    for pid, then in start.processes.items():
        if _same(then, end.processes.get(pid)):
            continue
        # Ended in the window: its whole life reached the cutime/cstime of its nearest ancestor
        # still alive (through every ancestor that ended too), and the part before the window
        # (what it had at the start) is not the window's.
        ancestor = start.processes.get(then.ppid)
        while ancestor is not None and not _same(ancestor, end.processes.get(ancestor.pid)):
            ancestor = start.processes.get(ancestor.ppid)
        if ancestor is not None and ancestor.pid in outside:
            outside[ancestor.pid] -= then.cpu_ticks
    outside = {pid: used for pid, used in outside.items() if used > 0}
    top = sorted(outside, key=outside.get, reverse=True)[:TOP_OUTSIDE]
    busy = ticks - (end.cpu.idle - start.cpu.idle) - (end.cpu.steal - start.cpu.steal)
    return {
        "window_s": round(end.taken_at - start.taken_at, 3),
        "steal_pct": round(100 * (end.cpu.steal - start.cpu.steal) / ticks, 3),
        "busy_pct": round(100 * busy / ticks, 3),
        # at most the busy share: the two snapshots read the processes a few ms before /proc/stat
        "outside_cpu_pct": round(100 * min(sum(outside.values()), busy) / ticks, 3),
        "outside_top": [{"pid": pid, "name": end.processes[pid].name,
                         "cpu_pct": round(100 * outside[pid] / ticks, 3)} for pid in top],
        **load,
    }


def _same(before: ProcessTimes | None, now: ProcessTimes | None) -> bool:
    """Both snapshots saw this very process (same pid, same start)."""
    return before is not None and now is not None and before.start_ticks == now.start_ticks


# The record's measures and the config key (testbed.noise) that bounds each.
THRESHOLDS = {"steal_pct": "max_steal_pct", "outside_cpu_pct": "max_outside_cpu_pct",
              "load1_per_cpu": "max_load1_per_cpu"}


def assess(record: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """*record* with ``noisy`` and ``exceeded`` (the threshold keys it is above, e.g.
    ``["max_steal_pct"]``). A measure that could not be taken (null) flags nothing."""
    exceeded = [key for measure, key in THRESHOLDS.items()
                if settings.get(key) is not None and record.get(measure) is not None
                and record[measure] > settings[key]]
    return {**record, "noisy": bool(exceeded), "exceeded": exceeded,
            "thresholds": {key: settings.get(key) for key in THRESHOLDS.values()}}


class Window:
    """Snapshots around a workload: ``with Window(...) as window: run()``; then ``window.record``.

    *setup_netns* and *setup_pids* as in :func:`between`; *outside_visible* False (kubernetes:
    the setup's processes run in pods this machine cannot attribute) leaves outside_cpu_pct null."""

    def __init__(self, setup_netns: set[int], setup_pids: set[int], outside_visible: bool = True):
        self.setup_netns = setup_netns
        self.setup_pids = setup_pids
        self.outside_visible = outside_visible
        self.record: dict[str, Any] | None = None
        self._start: Snapshot | None = None

    def __enter__(self) -> Window:
        self._start = snapshot()
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            return  # a failed workload has no noise record
        record = between(self._start, snapshot(), self.setup_netns, self.setup_pids, os.getpid())
        if not self.outside_visible:
            record.update(outside_cpu_pct=None, outside_top=[])
        self.record = record
