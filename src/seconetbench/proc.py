"""Running commands inside network namespaces, and ending only what we started.

Every background process is registered with its pid and start time in the run's state directory,
so that cleanup (also after a SIGKILL of the whole job) ends exactly these processes by pid and
never a process that merely reused the number.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from seconetbench.errors import ToolFailed, UnsupportedError

if TYPE_CHECKING:
    import psutil

# psutil is imported where it is used: validating a config imports the technology modules, and
# through them this one, only to read their metadata (docs/decisions.md).


def in_netns(netns: str, argv: Sequence[str]) -> list[str]:
    # `ip netns exec` execs the command (same pid) and also mounts the namespace's /sys view.
    return ["ip", "netns", "exec", netns, *argv]


def in_container(container, argv: Sequence[str]) -> list[str]:
    """The command line that runs *argv* inside *container* (a backends.base.Container), as its
    backend's access object says (a namespace here, a pod, a remote host)."""
    return container.access.argv(argv)


def run(argv: Sequence[str], timeout: float | None = 30, input: str | None = None, check: bool = True,
        cwd: Path | None = None, host: str | None = None, command: Sequence[str] | None = None
        ) -> subprocess.CompletedProcess:
    """Run a short command and wait for it (text output captured); raise ToolFailed (argv, exit
    code, *host*, the tail of its stderr) when it fails (with *check*) or does not finish within
    *timeout* seconds. *command* is what actually runs when *argv* goes through a prefix (a
    namespace's `ip netns exec`); the error names *argv* and *host*."""
    try:
        result = subprocess.run(list(command or argv), input=input, capture_output=True, text=True,
                                timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired as expired:
        raise ToolFailed(argv, None, host, _text(expired.stderr), timeout_s=timeout) from None
    if check and result.returncode != 0:
        raise ToolFailed(argv, result.returncode, host, result.stderr.strip() or result.stdout)
    return result


def run_in(netns: str, argv: Sequence[str], timeout: float = 30, input: str | None = None,
           check: bool = True) -> subprocess.CompletedProcess:
    """Run a short command in *netns* and wait for it: :func:`run` with the namespace as host."""
    return run(argv, timeout, input, check, host=netns, command=in_netns(netns, argv))


def _text(output: str | bytes | None) -> str:
    # TimeoutExpired carries what was read so far, as bytes even in text mode
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


@dataclass
class Registry:
    """Pid files of the processes a run started, under its state directory."""

    directory: Path

    def add(self, process: subprocess.Popen, argv: Sequence[str]) -> None:
        import psutil

        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            created = psutil.Process(process.pid).create_time()
        except psutil.NoSuchProcess:
            return
        (self.directory / f"{process.pid}.json").write_text(
            json.dumps({"pid": process.pid, "create_time": created, "argv": list(argv)}))

    def forget(self, pid: int) -> None:
        (self.directory / f"{pid}.json").unlink(missing_ok=True)

    def recorded(self) -> list[psutil.Process]:
        """Processes still alive that are exactly the ones recorded (same pid and start time)."""
        import psutil

        alive = []
        for path in sorted(self.directory.glob("*.json")) if self.directory.exists() else []:
            try:
                record = json.loads(path.read_text())
                process = psutil.Process(record["pid"])
                if abs(process.create_time() - record["create_time"]) < 0.01:
                    alive.append(process)
            except (psutil.NoSuchProcess, ValueError, KeyError, json.JSONDecodeError):
                pass
        return alive


def spawn(command: Sequence[str], stdout: Path, stderr: Path, registry: Registry,
          argv: Sequence[str] | None = None, cpus: set[int] | None = None,
          stdin_open: bool = False) -> subprocess.Popen:
    """Start *command* in the background, its output going to files, registered by pid (with
    *argv*, the command without its namespace or exec prefix, as the record); pinned to *cpus*
    (:func:`pin`) before anything else, when given. *stdin_open* gives it a pipe that stays open
    until it ends (a command over SSH ends its remote side when its stdin closes; see
    ContainerAccess.ends_with_stdin), else /dev/null."""
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        process = subprocess.Popen(list(command), stdin=subprocess.PIPE if stdin_open else subprocess.DEVNULL, stdout=out,
                                   stderr=err, start_new_session=True)
    if cpus:
        pin(process.pid, cpus)
    registry.add(process, argv if argv is not None else command)
    return process


def pinned_cpus(value: int | Sequence[int]) -> set[int]:
    """The CPUs of one ``testbed.cpu_pinning`` entry (a number or a list)."""
    return {value} if isinstance(value, int) else set(value)


def cpu_list(cpus: Iterable[int]) -> str:
    """CPUs as the kernel writes them (Cpus_allowed_list): ``0-2,5``."""
    ranges: list[list[int]] = []
    for cpu in sorted(set(cpus)):
        if ranges and cpu == ranges[-1][1] + 1:
            ranges[-1][1] = cpu
        else:
            ranges.append([cpu, cpu])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges)


def pin(pid: int, cpus: set[int]) -> list[int] | None:
    """Restrict process *pid* and every thread it has to *cpus*; the affinity read back, or None
    when the process is gone. Exec keeps the affinity and new threads inherit their creator's,
    so pinning right after the spawn covers the program (``ip netns exec`` and ``nsenter`` exec,
    keeping the pid) and the threads it starts later; threads it already has are pinned one by
    one (a daemon pinned after its start)."""
    try:
        os.sched_setaffinity(pid, cpus)
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                os.sched_setaffinity(int(task), cpus)
            except ProcessLookupError:
                pass  # that thread ended
        applied = sorted(os.sched_getaffinity(pid))
    except (ProcessLookupError, FileNotFoundError):
        return None
    if set(applied) != set(cpus):
        raise UnsupportedError(f"pid {pid} runs on CPUs {cpu_list(applied)} after pinning it to {cpu_list(cpus)} "
                           "(a cpuset of its cgroup?)")
    return applied


def place(processes: Iterable[psutil.Process], cpus: set[int] | None) -> list[dict]:
    """Pin each of *processes* (the setup's daemons) to *cpus*, or with None give them every CPU
    this process may use (undoing an earlier pinning of a reused deployment). Returns what was
    applied: pid, name and CPUs of each process still alive."""
    import psutil

    target = cpus or os.sched_getaffinity(0)
    applied = []
    for process in processes:
        try:
            name = process.name()
        except psutil.NoSuchProcess:
            continue
        placed = pin(process.pid, target)
        if placed is not None:
            applied.append({"pid": process.pid, "name": name, "cpus": placed})
    return applied


def spawn_in(netns: str, argv: Sequence[str], stdout: Path, stderr: Path,
             registry: Registry) -> subprocess.Popen:
    """Start *argv* in *netns* in the background, its output going to files."""
    return spawn(in_netns(netns, argv), stdout, stderr, registry, argv)


def terminate(processes: Sequence[psutil.Process | subprocess.Popen], grace_s: float = 2.0) -> None:
    """SIGTERM, wait up to *grace_s*, then SIGKILL: only the given processes, by pid."""
    import psutil

    pids = [p.pid for p in processes]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s
    for process in processes:
        remaining = max(0.0, deadline - time.monotonic())
        try:
            process.wait(timeout=remaining)
        except (subprocess.TimeoutExpired, psutil.TimeoutExpired):
            try:
                os.kill(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if isinstance(process, subprocess.Popen):
                process.wait()
        except psutil.NoSuchProcess:
            pass


def processes_in_netns(*inodes: int) -> list[psutil.Process]:
    """Processes whose network namespace is one of these (by inode): they run inside our testbed."""
    import psutil

    wanted = set(inodes)
    found = []
    for process in psutil.process_iter(["pid"]):
        try:
            if os.stat(f"/proc/{process.pid}/ns/net").st_ino in wanted:
                found.append(process)
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            pass
    return found
