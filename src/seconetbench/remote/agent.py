"""The host agent: the package running on a host of the ssh backend, driven over one SSH channel.

The technology modules build a host's part of a setup in-process (netlink through pyroute2, the
proc helpers, files under the run's state directory). On a remote host the same code runs in this
agent, started once per host over the host's SSH master connection (docs/decisions.md, "A host
agent speaking JSON lines"). The protocol is JSON lines on the agent's stdin and stdout:

* the agent's first line is a hello: ``{"ready": true, "version", "python", "kernel", "pid", ...}``;
* each request is one line ``{"id": n, "op": "...", "args": {...}}``, answered by one line
  ``{"id": n, "ok": true, "result": ...}`` or ``{"id": n, "ok": false, "error": {"type",
  "message", "traceback_tail"}}``, in order. Nothing else is written to stdout: the agent's log
  goes to its stderr and to ``<state root>/agent/agent.log``.

Operations are the functions decorated with :func:`agent_op` below; ``call`` runs one of the
package functions named in :data:`CALLABLE` (the only allow-list). Processes the agent starts are
recorded with pid and start time under the state root (proc.Registry) and only those can be
ended; when the agent's stdin closes (controller gone, connection lost) it ends the ones it
started, except those started with ``detach=True`` (a deployment's daemons, which must outlive a
controller restart and are ended by pid later, or by ``cleanup.remove`` of their run prefix).

:class:`AgentClient` is the controller's side; :func:`ship` copies the package to a host once per
content hash and returns the command line that starts the agent there.
"""

from __future__ import annotations

import argparse
import base64
import collections
import hashlib
import importlib.util
import io
import json
import logging
import os
import platform
import queue
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

import seconetbench
from seconetbench import fsutil, proc
from seconetbench.errors import HostError, InvalidValueError
from seconetbench.registry import Registry
from seconetbench.testbed import cleanup

log = logging.getLogger("seconetbench.agent")

AGENT_OPS: Registry[Callable[..., Any]] = Registry("agent operation")
# Package functions the controller may run on a host through the `call` operation, as
# "module:function". The only allow-list: a function is added here, not decorated where it is
# defined (its module would have to import this one, which imports cleanup: a cycle).
# Arguments and results must be JSON values.
CALLABLE = (
    "seconetbench.testbed.cleanup:leftovers",
    "seconetbench.testbed.cleanup:remove",
    # a host's part of the ssh backend (backends/ssh.py)
    "seconetbench.backends.ssh:host_problems",
    "seconetbench.backends.ssh:host_prepare",
    "seconetbench.backends.ssh:host_build",
    "seconetbench.backends.ssh:host_healthy",
    "seconetbench.backends.ssh:host_produced",
    "seconetbench.backends.ssh:host_tunnel_facts",
    "seconetbench.backends.ssh:host_change_pair",
    "seconetbench.backends.ssh:host_teardown",
)
for _target in CALLABLE:
    AGENT_OPS.lazy(_target, _target)

TRACEBACK_LINES = 12
STDERR_TAIL_LINES = 20
PID_RECORDS = "pids"  # <state root>/<run prefix or "agent">/pids/<pid>.json (proc.Registry)


def agent_op(function: Callable[..., Any]) -> Callable[..., Any]:
    """Register *function* as the agent operation of its name; it gets the :class:`Agent` first
    and the request's args as keyword arguments, and returns a JSON value."""
    return AGENT_OPS.add(function.__name__, function)


# ====================================================================== server


class Agent:
    """The state of one agent process: its state root and the processes it started."""

    def __init__(self, state_root: Path, host: str):
        self.state_root = Path(state_root)
        self.host = host
        self.registry = proc.Registry(self.state_root / "agent" / PID_RECORDS)
        self.started: dict[int, subprocess.Popen] = {}  # pid -> process, for exit codes
        self.attached: set[int] = set()  # ended when the controller goes

    def hello(self) -> dict[str, Any]:
        return {"ready": True, "version": seconetbench.__version__, "python": platform.python_version(),
                "kernel": os.uname().release, "pid": os.getpid(), "host": self.host,
                "state_root": str(self.state_root), "package": str(Path(seconetbench.__file__).parent)}

    # ------------------------------------------------------------------ pid records
    def record_of(self, pid: int) -> Path | None:
        """The record of *pid* in a registry under the state root (the agent's own or a run's)."""
        for directory in sorted(self.state_root.glob(f"*/{PID_RECORDS}")):
            if (directory / f"{pid}.json").exists():
                return directory
        return None

    def owned(self, pid: int) -> tuple[Path, Any]:
        """(registry directory, the live process or None when it ended) of a pid the agent
        recorded; any other pid is refused."""
        directory = self.record_of(pid)
        if directory is None:
            raise InvalidValueError(
                f"pid {pid} was not started by an agent on {self.host} (no record under "
                f"{self.state_root}/*/{PID_RECORDS}): the agent ends only processes it spawned")
        alive = [p for p in proc.Registry(directory).recorded() if p.pid == pid]
        return directory, (alive[0] if alive else None)

    def end_attached(self) -> None:
        """End the processes started without detach (the controller is gone)."""
        processes = [self.started[pid] for pid in sorted(self.attached) if self.started[pid].poll() is None]
        if processes:
            log.info("ending %d process(es) started by this agent: %s", len(processes),
                     [p.pid for p in processes])
        proc.terminate(processes)
        for pid in list(self.attached):
            _forget(self, pid)

    # ------------------------------------------------------------------ the loop
    def serve(self, requests: io.BufferedReader, replies: io.TextIOBase) -> None:
        """Answer requests until *requests* ends, then end the attached processes."""
        try:
            self._send(replies, self.hello())
            for line in requests:
                if not line.strip():
                    continue
                reply = self.handle(line)
                if not self._send(replies, reply):
                    log.warning("the controller stopped reading: the agent ends")
                    break
            log.info("stdin closed: the agent ends")
        finally:
            self.end_attached()

    def handle(self, line: bytes | str) -> dict[str, Any]:
        request_id = None
        try:
            request = json.loads(line)
            request_id = request.get("id")
            op = request["op"]
            if not isinstance(op, str) or ":" in op:
                raise InvalidValueError(f"op {op!r} is no operation name: package functions go through 'call'")
            args = request.get("args") or {}
            started = time.monotonic()
            result = AGENT_OPS.get(op)(self, **args)
            log.debug("%s (id %s) done in %.3f s", op, request_id, time.monotonic() - started)
            return {"id": request_id, "ok": True, "result": result}
        except Exception as error:  # noqa: BLE001 - every failure becomes a reply; the agent goes on
            tail = "".join(traceback.format_exc().splitlines(keepends=True)[-TRACEBACK_LINES:])
            log.warning("request %s failed: %s: %s", request_id, type(error).__name__, error)
            return {"id": request_id, "ok": False,
                    "error": {"type": type(error).__name__, "message": str(error), "traceback_tail": tail}}

    @staticmethod
    def _send(replies: io.TextIOBase, message: dict[str, Any]) -> bool:
        try:
            replies.write(json.dumps(message) + "\n")
            replies.flush()
        except (BrokenPipeError, OSError):
            return False
        return True


@agent_op
def hello(agent: Agent) -> dict[str, Any]:
    """What the agent says when it starts: version, Python, kernel, pid, host, state root."""
    return agent.hello()


@agent_op
def run(agent: Agent, argv: Sequence[str], netns: str | None = None, input: str | None = None,
        timeout: float | None = None, check: bool = False) -> dict[str, Any]:
    """Run *argv* (in *netns* when given) and wait: {returncode, stdout, stderr}. With *check*,
    a nonzero exit raises ToolFailed; a timeout always does."""
    command = proc.in_netns(netns, argv) if netns else None
    where = f"{agent.host}:{netns}" if netns else agent.host
    result = proc.run(argv, timeout=timeout, input=input, check=check, host=where, command=command)
    return {"returncode": result.returncode, "stdout": result.stdout, "stderr": result.stderr}


@agent_op
def spawn(agent: Agent, argv: Sequence[str], netns: str | None = None, stdout: str = os.devnull,
          stderr: str = os.devnull, detach: bool = False, prefix: str | None = None,
          cpus: Sequence[int] | None = None) -> int:
    """Start *argv* in the background (in *netns* when given; pinned to *cpus*), its output going
    to the files *stdout* and *stderr* on the host; its pid. Recorded in the run's registry
    (cleanup.registry(prefix), so that `clean` ends it) or, without *prefix*, the agent's own.
    Unless *detach*, the process ends when the agent's stdin closes."""
    registry = cleanup.registry(prefix) if prefix else agent.registry
    command = proc.in_netns(netns, argv) if netns else list(argv)
    for path in (stdout, stderr):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    process = proc.spawn(command, Path(stdout), Path(stderr), registry, argv=argv,
                         cpus=set(cpus) if cpus else None)
    agent.started[process.pid] = process
    if not detach:
        agent.attached.add(process.pid)
    log.info("spawned pid %d%s%s: %s", process.pid, f" in {netns}" if netns else "",
             " (detached)" if detach else "", shlex.join(map(str, argv)))
    return process.pid


@agent_op
def alive(agent: Agent, pid: int) -> bool:
    """Whether *pid*, a process an agent started here, still runs: False once it ended, and for
    a pid no agent here recorded (a record is forgotten when its process is ended)."""
    if pid in agent.started:
        return agent.started[pid].poll() is None
    return agent.record_of(pid) is not None and agent.owned(pid)[1] is not None


@agent_op
def kill(agent: Agent, pid: int, grace_s: float = 2.0) -> bool:
    """End *pid* (SIGTERM, SIGKILL after *grace_s*), a process an agent started here; others are
    refused. True when it was still running."""
    if pid in agent.started:
        process = agent.started[pid] if agent.started[pid].poll() is None else None
    else:
        process = agent.owned(pid)[1]
    if process is not None:
        proc.terminate([process], grace_s)
        log.info("ended pid %d", pid)
    _forget(agent, pid)
    return process is not None


def _forget(agent: Agent, pid: int) -> None:
    """Drop the record of *pid* (it ended): the number may be reused by someone else's process."""
    directory = agent.record_of(pid)
    if directory is not None:
        proc.Registry(directory).forget(pid)
    agent.attached.discard(pid)


@agent_op
def wait(agent: Agent, pid: int, timeout: float | None = None) -> int | None:
    """Wait up to *timeout* s for *pid* (a process an agent started here) to end: its exit code,
    or None when another agent started it (the code is lost) or no agent here recorded it.
    TimeoutError when it still runs."""
    if pid in agent.started:
        try:
            code = agent.started[pid].wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"pid {pid} still runs after {timeout} s") from None
    else:
        import psutil

        process = agent.owned(pid)[1] if agent.record_of(pid) is not None else None
        if process is not None:
            try:
                process.wait(timeout)
            except psutil.TimeoutExpired:
                raise TimeoutError(f"pid {pid} still runs after {timeout} s") from None
        code = None
    _forget(agent, pid)
    return code


@agent_op
def read_file(agent: Agent, path: str) -> str:
    """The bytes of *path* on the host, base64-encoded."""
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


@agent_op
def write_file(agent: Agent, path: str, data_b64: str, mode: int = 0o644) -> int:
    """Write the base64 *data_b64* to *path* (parents created, atomically, with *mode*); the
    number of bytes written."""
    data = base64.b64decode(data_b64, validate=True)
    with fsutil.atomic_path(path) as tmp:
        tmp.write_bytes(data)
        os.chmod(tmp, mode)
    return len(data)


@agent_op
def remove_tree(agent: Agent, path: str) -> bool:
    """Remove the directory (or file) *path*, which must lie below the agent's state root; True
    when there was something to remove."""
    target = Path(path).resolve()
    root = agent.state_root.resolve()
    if target == root or not target.is_relative_to(root):
        raise InvalidValueError(f"remove_tree: {path} is not below the agent's state root {root}; "
                                "the agent removes only what lies there")
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
        return True
    if target.exists():
        target.unlink()
        return True
    return False


@agent_op
def call(agent: Agent, function: str, args: dict[str, Any] | None = None) -> Any:
    """Run the package function *function* ("seconetbench.module:function", one of CALLABLE)
    with keyword *args*; its result (a JSON value)."""
    if function not in CALLABLE:
        raise InvalidValueError(f"call: {function!r} is not callable through the agent; callable: "
                                f"{list(CALLABLE)} (add a function to agent.CALLABLE)")
    return AGENT_OPS.get(function)(**(args or {}))


def _log_to(state_root: Path) -> None:
    (state_root / "agent").mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter(f"%(asctime)s agent[{os.getpid()}] %(levelname)s %(message)s")
    for handler in (logging.StreamHandler(sys.stderr), logging.FileHandler(state_root / "agent" / "agent.log")):
        handler.setFormatter(formatter)
        log.addHandler(handler)
    log.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m seconetbench.remote.agent", description=__doc__.split("\n")[0])
    parser.add_argument("--state-root", required=True, type=Path,
                        help="where this agent keeps every run's state (one per host: namespace lab hosts share a filesystem)")
    parser.add_argument("--host", default=socket.gethostname(), help="the host's name in the testbed config")
    options = parser.parse_args(argv)
    if importlib.util.find_spec("psutil") is None:  # every process record needs it: say so at the start
        print(f"seconetbench agent: psutil is missing for {sys.executable} on this host: install "
              "python3-psutil (seconetbench hosts install does)", file=sys.stderr)
        return 3
    # The protocol owns the original stdout; anything else that writes to fd 1 (a library, a
    # child inheriting it) lands on stderr instead of corrupting the replies.
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    cleanup.use_state_root(options.state_root)
    _log_to(options.state_root)

    def stop(signum, frame):  # end the attached children on the way out, as when stdin closes
        raise SystemExit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    agent = Agent(options.state_root, options.host)
    log.info("agent %s (package %s) ready, state root %s", seconetbench.__version__,
             Path(seconetbench.__file__).parent, options.state_root)
    agent.serve(sys.stdin.buffer, replies)
    return 0


# ====================================================================== client


class AgentClient:
    """The controller's connection to one host's agent: starts it with *argv* (a local Python for
    tests, ``channel.argv(ship(channel))`` over SSH), waits for its hello and sends requests one
    at a time. Every failure (the agent or its connection gone, no reply within the timeout, an
    error raised on the host) is a HostError naming the host."""

    _ENDED = object()

    def __init__(self, name: str, argv: Sequence[str], timeout_s: float = 30.0, address: str = ""):
        self.name = name
        self.address = address
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._replies: queue.Queue = queue.Queue()
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._next_id = 0
        self._failure: HostError | None = None
        self.process = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE)
        self._readers = [threading.Thread(target=self._read_replies, daemon=True, name=f"agent-{name}-out"),
                         threading.Thread(target=self._read_stderr, daemon=True, name=f"agent-{name}-err")]
        for reader in self._readers:
            reader.start()
        self.hello = self._wait_for_hello()

    # ------------------------------------------------------------------ readers
    def _read_replies(self) -> None:
        for line in self.process.stdout:
            self._replies.put(line)
        self._replies.put(self._ENDED)

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            self._stderr_tail.append(line.decode(errors="replace").rstrip("\n"))

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr_tail)

    # ------------------------------------------------------------------ errors
    def _error(self, cause: str, fix: str = "") -> HostError:
        return HostError(self.name, cause, fix, address=self.address)

    def _ended(self, during: str) -> HostError:
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        self._readers[1].join(timeout=5)  # the rest of its stderr
        tail = self.stderr_tail()
        failure = self._error(
            f"the agent ended {during} (exit code {code})",
            "check the host and its SSH connection (a lost connection ends the agent; the processes it "
            "started without detach end with it)" + (f"; its stderr ends:\n{tail}" if tail else ""))
        self._failure = failure
        return failure

    def _wait_for_hello(self) -> dict[str, Any]:
        try:
            line = self._replies.get(timeout=self.timeout_s)
        except queue.Empty:
            proc.terminate([self.process])
            raise self._error(f"the agent said nothing within {self.timeout_s} s of its start",
                              f"run {shlex.join(self.process.args)} by hand to see why") from None
        if line is self._ENDED:
            raise self._ended("before it was ready")
        hello = self._decoded(line)
        if not hello.get("ready"):
            proc.terminate([self.process])
            raise self._error(f"the agent's first line is no hello: {line[:200]!r}")
        return hello

    def _decoded(self, line: bytes) -> dict[str, Any]:
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            proc.terminate([self.process])
            raise self._error(f"the agent wrote a line that is no JSON object: {line[:200]!r}",
                              "something on the host writes to the agent's stdout; see its stderr")
        return message

    # ------------------------------------------------------------------ requests
    def call(self, op: str, /, *, reply_timeout_s: float | None = None, **args: Any) -> Any:
        """Run the agent operation *op* with *args* on the host; its result. Waits for the reply
        up to *reply_timeout_s* (default: the client's timeout, plus the op's own *timeout*)."""
        if reply_timeout_s is None:
            reply_timeout_s = self.timeout_s + (args.get("timeout") or 0)
        with self._lock:
            if self._failure is not None:
                raise self._failure
            self._next_id += 1
            request_id = self._next_id
            try:
                self.process.stdin.write((json.dumps({"id": request_id, "op": op, "args": args}) + "\n").encode())
                self.process.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                raise self._ended(f"before '{op}' could be sent") from None
            deadline = time.monotonic() + reply_timeout_s
            while True:
                try:
                    line = self._replies.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    raise self._error(f"no reply to '{op}' within {reply_timeout_s} s",
                                      f"the agent (pid {self.hello.get('pid')} on the host) may hang; "
                                      f"see {self.hello.get('state_root')}/agent/agent.log there") from None
                if line is self._ENDED:
                    raise self._ended(f"during '{op}'")
                reply = self._decoded(line)
                if reply.get("id") == request_id:
                    break  # replies to requests that timed out earlier are skipped
        if reply.get("ok"):
            return reply.get("result")
        error = reply.get("error") or {}
        failure = self._error(f"{op} failed: {error.get('type')}: {error.get('message')}")
        failure.remote_type = error.get("type")
        failure.remote_message = error.get("message")
        failure.traceback_tail = error.get("traceback_tail", "")
        raise failure

    def close(self, timeout_s: float = 10.0) -> None:
        """Close the agent's stdin (it ends the processes it started without detach, then
        itself) and wait for it by pid; idempotent."""
        with self._lock:
            if self.process.stdin and not self.process.stdin.closed:
                try:
                    self.process.stdin.close()
                except (BrokenPipeError, OSError):
                    pass
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.terminate([self.process])
            for reader in self._readers:
                reader.join(timeout=timeout_s)
            if self._failure is None:
                self._failure = self._error("the agent connection is closed", "open a new AgentClient")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def local_argv(state_root: Path, host: str = "local") -> list[str]:
    """The command line of an agent on this machine, with this interpreter (tests, bench)."""
    return [sys.executable, "-m", "seconetbench.remote.agent", "--state-root", str(state_root), "--host", host]


# ====================================================================== shipping

REMOTE_ROOT = "/var/lib/seconetbench/agent"  # <content hash>/ holds one shipped copy
COMPLETE_MARKER = ".complete"  # written last: a directory without it is a failed copy
REMOTE_STATE_ROOT = "/run/seconetbench/hosts"  # <host name>/: the agent's state root


def bundle_files() -> list[tuple[Path, str]]:
    """(file on this machine, name in the bundle) of what the agent needs on a host: the
    seconetbench package and pyroute2, pure Python, from this interpreter (psutil has a C part:
    the host's Debian package python3-psutil)."""
    import pyroute2

    files = []
    for package in (Path(seconetbench.__file__).parent, Path(pyroute2.__file__).parent):
        for path in sorted(package.rglob("*")):
            relative = path.relative_to(package.parent)
            if path.is_file() and "__pycache__" not in relative.parts and path.suffix != ".pyc":
                files.append((path, relative.as_posix()))
    return files


def build_bundle(directory: Path) -> tuple[str, Path]:
    """Write the bundle (a tar of bundle_files) into *directory*: (its content hash, its path).
    The hash covers names and bytes only, so the same sources give the same hash everywhere."""
    files = bundle_files()
    digest = hashlib.sha256()
    for path, name in files:
        data = path.read_bytes()
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    content_hash = digest.hexdigest()[:20]
    target = Path(directory) / f"seconetbench-agent-{content_hash}.tar"
    with fsutil.atomic_path(target) as tmp, tarfile.open(tmp, "w") as tar:
        for path, name in files:
            info = tar.gettarinfo(str(path), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            info.mode = 0o644
            with open(path, "rb") as source:
                tar.addfile(info, source)
    return content_hash, target


def remote_argv(installed: str, state_root: str, host: str) -> list[str]:
    """The command line that starts the agent shipped to *installed* on a host."""
    return ["env", f"PYTHONPATH={installed}", "python3", "-m", "seconetbench.remote.agent",
            "--state-root", state_root, "--host", host]


def ship(channel, state_root: str | None = None, remote_root: str = REMOTE_ROOT) -> list[str]:
    """Copy the package to *channel*'s host (``<remote_root>/<content hash>/``, skipped when a
    complete copy is there) and return the agent's command line on that host (pass it through
    ``channel.argv`` to start it). Its state root: *state_root*, by default
    ``/run/seconetbench/hosts/<host name>``."""
    host = channel.host.name
    state_root = state_root or f"{REMOTE_STATE_ROOT}/{host}"
    with tempfile.TemporaryDirectory(prefix="seconetbench-ship-") as scratch:
        content_hash, bundle = build_bundle(Path(scratch))
        installed = f"{remote_root}/{content_hash}"
        argv = remote_argv(installed, state_root, host)
        if channel.run(["test", "-e", f"{installed}/{COMPLETE_MARKER}"], check=False).returncode == 0:
            return argv
        upload = f"{remote_root}/.{content_hash}.{secrets.token_hex(4)}"
        channel.run(["mkdir", "-p", remote_root])
        channel.put(bundle, f"{upload}.tar", mode=0o600)
        channel.run(["sh", "-c", install_script(installed, upload)])
    return argv


def install_script(installed: str, upload: str) -> str:
    """Shell commands unpacking the uploaded bundle (*upload*.tar) into *installed*. The copy is
    completed (marker inside) before one rename makes it *installed*: a controller shipping to
    the same host at the same time (hosts sharing a file system, or two runs) either wins the
    rename or finds the other's complete copy and keeps it; a complete copy is never removed."""
    d, u = shlex.quote(installed), shlex.quote(upload)
    return (f"set -e; if [ -e {d}/{COMPLETE_MARKER} ]; then rm -f {u}.tar; exit 0; fi; "
            f"rm -rf {u}.partial; mkdir -p {u}.partial; tar -xf {u}.tar -C {u}.partial; rm -f {u}.tar; "
            f"touch {u}.partial/{COMPLETE_MARKER}; "
            f"if mv -T {u}.partial {d} 2>/dev/null; then exit 0; fi; "
            f"if [ -e {d}/{COMPLETE_MARKER} ]; then rm -rf {u}.partial; exit 0; fi; "
            f"rm -rf {d}; mv -T {u}.partial {d}")


if __name__ == "__main__":
    sys.exit(main())
