"""One SSH connection per host: OpenSSH's own multiplexing (ControlMaster), every command a new
channel on it, so no TCP or SSH handshake per command (docs/decisions.md).

:meth:`SshChannel.open` starts the master connection (``ssh -N -o ControlMaster=yes
-o ControlPersist=...``): BatchMode (never a prompt), the configured host key policy (``yes`` or
``accept-new``; a changed key is always refused), keepalives (ServerAliveInterval/CountMax) so
that a dead host or link ends the connection within interval x count seconds. The master goes to
the background, listens on ``<control_dir>/<host>.sock``, logs to ``<host>.log`` beside it and is
registered by pid, so the run's cleanup ends it. Another process (the next Snakemake job) finds
it by its socket: open() reuses a live master.

Every command then runs with ``-o ControlMaster=no -S <socket>`` and ``ProxyCommand=false``: if
the master is gone, ssh would silently make a connection of its own; the ProxyCommand makes that
fail at once (exit 255) instead, and :meth:`SshChannel.run` reports it as the lost connection.

Errors: a command that fails on the host is a ToolFailed (argv, exit code, host name, stderr
tail); anything of the connection (unreachable, authentication, host key, connection lost) is a
HostError naming the host, the cause and the fix. Exit 255 is ssh's own failure code, but a
remote command may exit 255 too: it counts as the connection's failure only when the master is
gone afterwards. Only file paths of keys are passed to ssh; nothing here reads a key.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import math
import os
import re
import shlex
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from seconetbench import proc
from seconetbench.errors import HostError, InvalidValueError, ToolFailed

SSH = "ssh"
# sun_path holds 108 bytes; ssh binds the master's socket as "<ControlPath>.<16 random
# characters>" and renames it afterwards, so the path itself must leave room for 17 more.
SOCKET_PATH_MAX = 90
SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,32}$")
HOST_KEY_POLICIES = ("yes", "accept-new")
CONNECTION_LOST = 255  # ssh's exit code for its own failures
MASTER_PID = re.compile(r"Master running \(pid=(\d+)\)")
OFFENDING_KEY = re.compile(r"Offending (\S+) key in (.+):(\d+)")
LOG_TAIL_LINES = 5
# What a command says when its master is gone: the mux client's complaint and the refused
# fallback connection (ProxyCommand=false); not the cause, which the master's log has
FALLBACK_NOISE = ("mux_client_", "kex_exchange_identification", "Connection closed by UNKNOWN port 65535",
                  "Control socket connect")


def control_dir(prefix: str) -> Path:
    """Where a run keeps its master connections' sockets and logs: under its state directory,
    removed with it by cleanup (which also ends the masters, registered by pid)."""
    from seconetbench.testbed import cleanup

    return cleanup.state_dir(prefix) / "ssh"


@dataclass(frozen=True)
class SshHost:
    """One entry of ``testbed.ssh.hosts``: how to reach the host (address, port, user, key,
    an optional ProxyCommand) and its data network (underlay device and address)."""

    name: str
    address: str
    port: int = 22
    user: str = "root"
    identity_file: str | None = None
    underlay_dev: str = ""
    underlay_ip: str = ""  # "198.18.1.1" or "198.18.1.1/24"
    proxy_command: str | None = None  # ssh -o ProxyCommand=...; the tests reach namespace hosts so

    @property
    def known_hosts_name(self) -> str:
        """How known_hosts names this host: the address, with the port when it is not 22."""
        return self.address if self.port == 22 else f"[{self.address}]:{self.port}"


@dataclass(frozen=True)
class SshOptions:
    """``testbed.ssh`` beyond the host list. The keepalive settings bound how long a dead host
    or control link goes unnoticed (interval x count seconds); ControlPersist is how long an
    idle master connection waits for the next command (next target) before it ends."""

    strict_host_key_checking: str = "yes"  # "yes" | "accept-new"; never "no"
    known_hosts_file: str = "~/.ssh/known_hosts"
    jump_host: str | None = None
    connect_timeout_s: float = 10.0
    server_alive_interval_s: int = 5
    server_alive_count_max: int = 3
    control_persist_s: int = 600

    def __post_init__(self) -> None:
        if self.strict_host_key_checking not in HOST_KEY_POLICIES:
            raise InvalidValueError(
                f"strict_host_key_checking '{self.strict_host_key_checking}': one of {list(HOST_KEY_POLICIES)} "
                "(a host key is never accepted without checking; 'accept-new' adds unknown hosts, never changed keys)")
        for field in ("connect_timeout_s", "server_alive_interval_s", "server_alive_count_max", "control_persist_s"):
            if getattr(self, field) <= 0:
                raise InvalidValueError(f"SshOptions.{field} {getattr(self, field)}: must be positive")

    @property
    def dead_after_s(self) -> int:
        """At most this long after a host stops answering, its master connection ends."""
        return self.server_alive_interval_s * self.server_alive_count_max


class SshChannel:
    """The master connection to one host and the commands run over it."""

    def __init__(self, host: SshHost, options: SshOptions, control_dir: Path, registry: proc.Registry | None = None):
        """*registry*: where the master's pid is recorded so cleanup ends it (by default the
        run registry beside *control_dir*, i.e. ``<state>/pids`` for ``<state>/ssh``)."""
        if host.proxy_command and options.jump_host:
            raise InvalidValueError(f"host {host.name}: proxy_command and jump_host both set; ssh uses only one, "
                                    "so set one of them")
        self.host = host
        self.options = options
        self.control_dir = Path(control_dir)
        self.registry = registry if registry is not None else proc.Registry(self.control_dir.parent / "pids")
        self.socket = control_socket(self.control_dir, host.name)
        self.log = self.socket.with_suffix(".log")
        self.known_hosts = Path(options.known_hosts_file).expanduser()

    def __repr__(self) -> str:
        return f"SshChannel({self.host.name}: {self.host.user}@{self.host.address}:{self.host.port})"

    # ------------------------------------------------------------------ the master connection
    def open(self) -> None:
        """Start the master connection, or reuse the live one another process started. HostError
        when the host cannot be reached or refuses us (naming the cause and the fix)."""
        self.control_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.control_dir, 0o700)
        with self._locked():
            if self.master_pid() is not None:
                return
            self.socket.unlink(missing_ok=True)  # a stale socket would make ssh refuse to listen
            identity = Path(self.host.identity_file).expanduser() if self.host.identity_file else None
            if identity is not None and not identity.is_file():
                raise self._error(f"identity_file {identity} does not exist",
                                  "create the key (ssh-keygen -t ed25519) or correct testbed.ssh.hosts[].identity_file")
            self.log.write_bytes(b"")
            # stdout/stderr to the log file, not pipes: the master forks into the background and
            # keeps what it inherited; a pipe would stay open until the master ends
            with open(self.log, "ab") as log:
                timeout = self.options.connect_timeout_s * 2 + 5
                try:
                    result = subprocess.run(self._master_argv(), stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=log, timeout=timeout)
                    code = result.returncode
                except subprocess.TimeoutExpired:
                    code = None
            said = self.log.read_text(errors="replace")
            pid = self.master_pid() if code == 0 else None
            if pid is None:
                raise self._open_error(code, said)
            self._register(pid)

    def close(self) -> None:
        """End the master connection (``ssh -O exit``); nothing happens when there is none."""
        pid = self.master_pid()
        if pid is not None:
            subprocess.run(self._control_argv("exit"), stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=self.options.connect_timeout_s)
            _wait_gone(pid, timeout=self.options.connect_timeout_s)
            self.registry.forget(pid)
        self.socket.unlink(missing_ok=True)

    def master_pid(self) -> int | None:
        """The pid of the live master connection of this host (``ssh -O check``), else None."""
        if not self.socket.exists():
            return None
        result = subprocess.run(self._control_argv("check"), stdin=subprocess.DEVNULL, capture_output=True,
                                text=True, timeout=self.options.connect_timeout_s)
        found = MASTER_PID.search(result.stderr + result.stdout)
        return int(found.group(1)) if result.returncode == 0 and found else None

    # ------------------------------------------------------------------ commands
    def argv(self, remote: Sequence[str]) -> list[str]:
        """The local command line that runs *remote* on the host over the master connection;
        exit code, stdin, stdout and stderr pass through. ``argv([])`` is the prefix to which one
        shell command string may be appended."""
        prefix = [SSH, "-S", str(self.socket), "-o", "ControlMaster=no", "-o", "BatchMode=yes",
                  # never a connection of its own when the master is gone (see the module doc)
                  "-o", "ProxyCommand=false", "-T", "-l", self.host.user, "-p", str(self.host.port),
                  self.host.address, "--"]
        return prefix + ([shlex.join(remote)] if remote else [])

    def run(self, remote: Sequence[str], input: str | bytes | None = None, timeout: float | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
        """Run *remote* on the host and wait for it (output captured; text unless *input* is
        bytes). ToolFailed (with the host's name) when it fails and *check*, or does not finish
        within *timeout* s; HostError when the connection failed. A timeout ends the local
        client only: without a terminal the remote command is not hung up on, so what must be
        ended on the host is started and ended there by pid (the host agent)."""
        text = not isinstance(input, bytes)
        try:
            result = subprocess.run(self.argv(remote), input=input, capture_output=True, text=text, timeout=timeout,
                                    stdin=subprocess.DEVNULL if input is None else None)
        except subprocess.TimeoutExpired as expired:
            raise ToolFailed(remote, None, self.host.name, proc._text(expired.stderr), timeout_s=timeout) from None
        self._check_connection(result.returncode, proc._text(result.stderr))
        if check and result.returncode != 0:
            raise ToolFailed(remote, result.returncode, self.host.name,
                             proc._text(result.stderr).strip() or proc._text(result.stdout))
        return result

    def put(self, local: Path, remote: str, mode: int = 0o600, timeout: float | None = None) -> None:
        """Copy the file *local* to *remote* on the host (its directory made if missing), with
        *mode*; written to a temporary name and renamed, so *remote* is whole or absent."""
        partial = f"{remote}.partial-{os.getpid()}"
        script = (f"umask 077 && mkdir -p -- {shlex.quote(os.path.dirname(remote) or '.')} && "
                  f"cat > {shlex.quote(partial)} && chmod {mode:o} -- {shlex.quote(partial)} && "
                  f"mv -f -- {shlex.quote(partial)} {shlex.quote(remote)}")
        argv = ["sh", "-c", script]
        with open(local, "rb") as source:
            self._transfer(argv, stdin=source, stdout=subprocess.DEVNULL, timeout=timeout, what=f"put {local} {remote}")

    def get(self, remote: str, local: Path, timeout: float | None = None) -> None:
        """Copy the file *remote* on the host to *local* (its directory made if missing);
        *local* is whole or absent afterwards."""
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        partial = local.with_name(f".{local.name}.partial-{os.getpid()}")
        try:
            with open(partial, "wb") as target:
                self._transfer(["cat", "--", remote], stdin=subprocess.DEVNULL, stdout=target, timeout=timeout,
                               what=f"get {remote} {local}")
            os.replace(partial, local)
        finally:
            partial.unlink(missing_ok=True)

    def _transfer(self, remote: list[str], stdin, stdout, timeout: float | None, what: str) -> None:
        # the file streams through the channel (no copy in memory); only stderr is captured
        try:
            result = subprocess.run(self.argv(remote), stdin=stdin, stdout=stdout, stderr=subprocess.PIPE,
                                    timeout=timeout)
        except subprocess.TimeoutExpired as expired:
            raise ToolFailed(remote, None, self.host.name, proc._text(expired.stderr), timeout_s=timeout) from None
        stderr = proc._text(result.stderr)
        self._check_connection(result.returncode, stderr)
        if result.returncode != 0:
            raise ToolFailed(remote, result.returncode, self.host.name, f"{what}: {stderr.strip()}")

    # ------------------------------------------------------------------ internals
    def _common_options(self) -> list[str]:
        return ["-o", "BatchMode=yes", "-l", self.host.user, "-p", str(self.host.port)]

    def _master_argv(self) -> list[str]:
        options = self.options
        argv = [SSH, "-N", "-E", str(self.log), *self._common_options(),
                "-o", "ControlMaster=yes", "-o", f"ControlPath={self.socket}",
                "-o", f"ControlPersist={options.control_persist_s}",
                "-o", f"StrictHostKeyChecking={options.strict_host_key_checking}",
                "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", f"ConnectTimeout={math.ceil(options.connect_timeout_s)}",
                "-o", f"ServerAliveInterval={options.server_alive_interval_s}",
                "-o", f"ServerAliveCountMax={options.server_alive_count_max}"]
        if self.host.identity_file:
            argv += ["-i", str(Path(self.host.identity_file).expanduser()), "-o", "IdentitiesOnly=yes"]
        if options.jump_host:
            argv += ["-J", options.jump_host]
        if self.host.proxy_command:
            argv += ["-o", f"ProxyCommand={self.host.proxy_command}"]
        return [*argv, self.host.address]

    def _control_argv(self, command: str) -> list[str]:
        return [SSH, "-S", str(self.socket), "-O", command, *self._common_options(), self.host.address]

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One opener per host at a time: two processes starting masters on one socket path would
        leave the second one a plain connection."""
        with open(self.socket.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _register(self, pid: int) -> None:
        import psutil

        try:
            self.registry.add(psutil.Process(pid), ["ssh", "master", self.host.name])
        except psutil.NoSuchProcess:
            pass  # ended already: the next command reports the lost connection

    def _check_connection(self, code: int, stderr: str) -> None:
        """HostError when exit *code* 255 came from the connection, not the remote command."""
        if code != CONNECTION_LOST:
            return
        if "session request failed" in stderr or "Session open refused" in stderr:
            raise self._error("the host refused another session on the connection (sshd MaxSessions, 10 by "
                              "default, reached)", "run fewer commands at once, or raise MaxSessions in the host's "
                              "sshd_config")
        if self.master_pid() is not None:
            return  # the remote command itself exited 255
        # the master's log says why it ended ("Timeout, server ... not responding"); the
        # command's own stderr only that the master went away and the refused fallback
        said = _tail(self._read_log(), lines=2) or _tail(_without(stderr, FALLBACK_NOISE))
        raise self._error(f"lost its SSH connection{said}",
                          f"check that the host is up, its sshd runs and its control link works "
                          f"(a host that does not answer is dropped after {self.options.dead_after_s} s); "
                          "the next command that needs it connects again")

    def _open_error(self, code: int | None, said: str) -> HostError:
        known = f"{self.known_hosts}"
        if code is None:
            return self._error(f"no SSH connection within {self.options.connect_timeout_s * 2 + 5:.0f} s"
                               f"{_tail(said)}", "check the address, port and the network to the host")
        if "REMOTE HOST IDENTIFICATION HAS CHANGED" in said:
            offending = OFFENDING_KEY.search(said)
            where = (f"line {offending.group(3)} of {offending.group(2)} ({offending.group(1)} key)"
                     if offending else f"the entry in {known}")
            return self._error(
                f"its host key changed: the key it offers is not the one known_hosts holds at {where}; "
                "refused, nothing was accepted",
                "if the host was reinstalled or its key replaced on purpose, check the new key's fingerprint "
                f"on the host, then remove the old entry: ssh-keygen -R '{self.host.known_hosts_name}' -f {known} "
                "(and add the new key, or connect once with strict_host_key_checking: accept-new); otherwise "
                "someone may be intercepting the connection")
        if "host key is known for" in said or "Host key verification failed" in said:
            return self._error(
                f"its host key is not in {known} (strict_host_key_checking: {self.options.strict_host_key_checking})",
                f"check the host's key fingerprint and add it: ssh-keyscan -p {self.host.port} {self.host.address} "
                f">> {known}; or set strict_host_key_checking: accept-new to add it on first contact")
        if "Permission denied" in said:
            key = self.host.identity_file or "the default keys of ~/.ssh"
            return self._error(f"refused authentication as {self.host.user} with {key}{_tail(said)}",
                               f"put the public key in ~{self.host.user}/.ssh/authorized_keys on the host, or "
                               "correct user/identity_file in testbed.ssh.hosts")
        return self._error(f"no SSH connection to port {self.host.port} (ssh exit {code}){_tail(said)}",
                           "check that the host is up, sshd runs there and the address, port and any "
                           "proxy_command/jump_host are right")

    def _read_log(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _error(self, cause: str, fix: str = "") -> HostError:
        return HostError(self.host.name, cause, fix, address=self.host.address)


def control_socket(directory: Path, name: str) -> Path:
    """``<directory>/<name>.sock``, or a 12-character hash of *name* in its place when the name is
    long or unusual; InvalidValueError when even that leaves no room in a unix socket path."""
    path = directory / f"{name}.sock"
    if SAFE_NAME.match(name) and len(str(path)) <= SOCKET_PATH_MAX:
        return path
    path = directory / f"{hashlib.sha256(name.encode()).hexdigest()[:12]}.sock"
    if len(str(path)) > SOCKET_PATH_MAX:
        raise InvalidValueError(f"SSH control directory {directory} is too long for a unix socket path "
                                f"({len(str(path))} > {SOCKET_PATH_MAX} characters); use a shorter state directory")
    return path


def _tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last *lines* ssh said, as ': a / b', without the host key warning's frame."""
    said = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("@@@")]
    return ": " + " / ".join(said[-lines:]).rstrip(".") if said else ""


def _without(text: str, noise: tuple[str, ...]) -> str:
    return "\n".join(line for line in text.splitlines() if not any(n in line for n in noise))


def _wait_gone(pid: int, timeout: float) -> None:
    import psutil

    try:
        psutil.Process(pid).wait(timeout=timeout)
    except (psutil.NoSuchProcess, psutil.TimeoutExpired):
        pass
