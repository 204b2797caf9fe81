"""Sample the host and the setup's processes while a workload runs.

A background thread samples every ``interval_s`` (1 s by default, down to 0.1 s):

- ``monitor_host.csv``: host CPU shares (user, system, softirq, steal, iowait, idle) in percent of
  all cores, and memory in bytes;
- ``monitor_processes.csv``: CPU of every process that belongs to the setup (generators,
  daemons, anything inside the run's namespaces) and of the kernel's ksoftirqd threads, in percent
  of one core;
- ``monitor_net.csv``: cumulative byte, packet, error and drop counters of every interface in
  the setup's namespaces. Counters are per namespace, so they are read with this thread inside
  each namespace (/proc/thread-self/net/dev). The first sample is taken when the workload starts
  and the last when it ends: their difference is the table ``interface_counters``
  (pipeline.interface_counters).

The monitor uses psutil and /proc, not dstat: the Debian dstat crashes with ``--output``. It
looks for the setup's processes once at the start and again every ``rescan_every`` samples, so
that a sample costs a few /proc reads, not a walk over every process.
"""

from __future__ import annotations

import csv
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import psutil

from seconetbench.errors import InvalidValueError, WorkloadError
from seconetbench.testbed import netlink

HOST_COLUMNS = ["timestamp_s", "interval_s", "cpu_user_pct", "cpu_system_pct", "cpu_softirq_pct", "cpu_steal_pct",
                "cpu_iowait_pct", "cpu_idle_pct", "mem_used_bytes", "mem_available_bytes"]
PROCESS_COLUMNS = ["timestamp_s", "pid", "name", "cpu_pct"]


class InterfaceCounters(NamedTuple):
    ifname: str
    rx_bytes: int
    rx_packets: int
    rx_errors: int
    rx_drops: int
    tx_bytes: int
    tx_packets: int
    tx_errors: int
    tx_drops: int


COUNTER_COLUMNS = list(InterfaceCounters._fields[1:])
NET_COLUMNS = ["timestamp_s", "netns", "ifname", *COUNTER_COLUMNS]
# Positions in a /proc/net/dev line after "ifname:": receive bytes packets errs drop fifo frame
# compressed multicast, then transmit bytes packets errs drop fifo colls carrier compressed.
NET_DEV_FIELDS = (0, 1, 2, 3, 8, 9, 10, 11)


def read_net_dev(netns: str) -> list[InterfaceCounters]:
    """The counters of every interface of *netns*."""
    with netlink.entered(netns):
        lines = Path("/proc/thread-self/net/dev").read_text().splitlines()[2:]
    rows = []
    for line in lines:
        name, counters = line.split(":", 1)
        values = counters.split()
        rows.append(InterfaceCounters(name.strip(), *(int(values[i]) for i in NET_DEV_FIELDS)))
    return rows


def wait_until_quiet(namespaces: list[str], quiet_s: float, max_s: float, poll_s: float = 0.02) -> dict[str, Any]:
    """Wait until no packet has crossed an interface of *namespaces* for *quiet_s* (at most
    *max_s*): a userspace VPN or switch may still forward the previous target's traffic after
    its generators ended. Returns what to record: the wait and whether it ended quiet."""
    started = time.monotonic()
    if not namespaces or quiet_s <= 0:
        return {"waited_s": 0.0, "quiet": None}
    poll_s = min(poll_s, quiet_s / 2)  # at least two reads of the counters within the quiet period

    def packets() -> int:
        return sum(c.rx_packets + c.tx_packets for ns in namespaces for c in read_net_dev(ns))

    last, last_change = packets(), started
    while True:
        now = time.monotonic()
        if now - last_change >= quiet_s or now - started >= max_s:
            return {"waited_s": round(now - started, 3), "quiet": now - last_change >= quiet_s}
        time.sleep(poll_s)
        current = packets()
        if current != last:
            last, last_change = current, time.monotonic()


class SetupProcesses:
    """The processes of a setup, cheaply: the run's recorded processes (a few pid files) at every
    call, and every process inside the setup's namespaces (a walk over /proc) every few calls."""

    def __init__(self, recorded: Callable[[], Iterable[psutil.Process]], inodes: list[int], walk_every: int = 5):
        self.recorded = recorded
        self.inodes = inodes
        self.walk_every = walk_every
        self.calls = 0

    def __call__(self) -> list[psutil.Process]:
        from seconetbench.proc import processes_in_netns

        found = list(self.recorded())
        if self.calls % self.walk_every == 0:
            found += processes_in_netns(*self.inodes)
        self.calls += 1
        return found


def kernel_softirq_threads() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("ksoftirqd/")]


@dataclass
class Monitor:
    out_dir: Path
    namespaces: list[str]
    processes: Callable[[], Iterable[psutil.Process]]  # the setup's processes, asked at every rescan
    interval_s: float = 1.0
    rescan_every: int = 1
    samples: int = field(default=0, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    _error: BaseException | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if not 0.1 <= self.interval_s <= 60:
            raise InvalidValueError(f"monitor interval_s={self.interval_s}: use 0.1 to 60 seconds")

    def __enter__(self) -> Monitor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="seconetbench-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise WorkloadError(f"the monitor failed: {self._error}") from self._error

    def _run(self) -> None:
        try:
            self._sample_loop()
        except BaseException as error:  # reported by stop(), never lost in the thread
            self._error = error

    def _sample_loop(self) -> None:
        with (open(self.out_dir / "monitor_host.csv", "w", newline="") as host_file,
              open(self.out_dir / "monitor_processes.csv", "w", newline="") as process_file,
              open(self.out_dir / "monitor_net.csv", "w", newline="") as net_file):
            host, processes, net = csv.writer(host_file), csv.writer(process_file), csv.writer(net_file)
            host.writerow(HOST_COLUMNS)
            processes.writerow(PROCESS_COLUMNS)
            net.writerow(NET_COLUMNS)
            psutil.cpu_times_percent()  # primes the counters: the next call covers one interval
            tracked: dict[int, tuple[psutil.Process, str]] = {}  # pid -> (process, name)
            self._rescan(tracked, kernel_softirq_threads())  # kernel threads stay; find them once
            next_sample = time.monotonic()
            previous = time.time()
            stopping = False
            while True:
                fresh: set[int] = set()
                if self.samples % self.rescan_every == 0 and not stopping:
                    fresh = self._rescan(tracked, self.processes())
                now = time.time()
                if self.samples > 0:  # the first pass only primes the CPU counters
                    cpu = psutil.cpu_times_percent()  # over [previous, now]
                    memory = psutil.virtual_memory()
                    host.writerow([f"{now:.3f}", f"{now - previous:.3f}", cpu.user, cpu.system,
                                   getattr(cpu, "softirq", 0.0), getattr(cpu, "steal", 0.0),
                                   getattr(cpu, "iowait", 0.0), cpu.idle,
                                   memory.total - memory.available, memory.available])
                for pid, (process, name) in list(tracked.items()):
                    if pid in fresh:
                        continue  # just primed: its first share covers the next interval
                    try:
                        share = process.cpu_percent()  # since the previous call: one interval
                    except psutil.NoSuchProcess:
                        del tracked[pid]
                        continue
                    processes.writerow([f"{now:.3f}", pid, name, share])
                for netns in self.namespaces:
                    try:
                        for row in read_net_dev(netns):
                            net.writerow([f"{now:.3f}", netns, *row])
                    except FileNotFoundError:
                        pass  # namespace gone (teardown raced the last sample)
                previous = now
                self.samples += 1
                if stopping:
                    break
                next_sample += self.interval_s
                # On stop, one last sample covers the partial interval, so that even a workload
                # shorter than one interval is measured.
                stopping = self._stop.wait(max(0.0, next_sample - time.monotonic()))

    def _rescan(self, tracked: dict[int, tuple[psutil.Process, str]], candidates: Iterable[psutil.Process]) -> set[int]:
        """Add the candidates not tracked yet to *tracked* (primed); return their pids."""
        fresh = set()
        for process in candidates:
            if process.pid in tracked:
                continue
            try:
                name = process.name()
                process.cpu_percent()  # prime: the next call measures one interval
            except psutil.NoSuchProcess:
                continue
            tracked[process.pid] = (process, name)
            fresh.add(process.pid)
        return fresh
