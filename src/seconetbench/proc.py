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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil


def in_netns(netns: str, argv: Sequence[str]) -> list[str]:
    # `ip netns exec` execs the command (same pid) and also mounts the namespace's /sys view.
    return ["ip", "netns", "exec", netns, *argv]


def in_container(container, argv: Sequence[str]) -> list[str]:
    """The command line that runs *argv* inside *container* (a backends.base.Container): through
    its backend's exec prefix, else in its network namespace."""
    if container.exec_prefix:
        return [*container.exec_prefix, *argv]
    return in_netns(container.netns, argv)


def run_in(netns: str, argv: Sequence[str], timeout: float = 30, input: str | None = None,
           check: bool = True) -> subprocess.CompletedProcess:
    """Run a short command in *netns* and wait for it; raise with its stderr when it fails."""
    try:
        result = subprocess.run(in_netns(netns, argv), input=input, capture_output=True,
                                text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"'{' '.join(argv)}' in {netns} did not finish within {timeout} s") from None
    if check and result.returncode != 0:
        raise RuntimeError(f"'{' '.join(argv)}' in {netns} failed (exit {result.returncode}): "
                           f"{result.stderr.strip() or result.stdout.strip()}")
    return result


@dataclass
class Registry:
    """Pid files of the processes a run started, under its state directory."""

    directory: Path

    def add(self, process: subprocess.Popen, argv: Sequence[str]) -> None:
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
          argv: Sequence[str] | None = None) -> subprocess.Popen:
    """Start *command* in the background, its output going to files, registered by pid (with
    *argv*, the command without its namespace or exec prefix, as the record)."""
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        process = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=err, start_new_session=True)
    registry.add(process, argv if argv is not None else command)
    return process


def spawn_in(netns: str, argv: Sequence[str], stdout: Path, stderr: Path,
             registry: Registry) -> subprocess.Popen:
    """Start *argv* in *netns* in the background, its output going to files."""
    return spawn(in_netns(netns, argv), stdout, stderr, registry, argv)


def terminate(processes: Sequence[psutil.Process | subprocess.Popen], grace_s: float = 2.0) -> None:
    """SIGTERM, wait up to *grace_s*, then SIGKILL: only the given processes, by pid."""
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
    wanted = set(inodes)
    found = []
    for process in psutil.process_iter(["pid"]):
        try:
            if os.stat(f"/proc/{process.pid}/ns/net").st_ino in wanted:
                found.append(process)
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            pass
    return found
