"""Exceptions shared across the package. Each message names what is wrong and how to fix it."""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence


class SeconetError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(SeconetError):
    """A configuration value is invalid; the message names the key, the value and what is allowed."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"config key '{key}': {message}")


class InvalidValueError(SeconetError, ValueError):
    """An argument outside what a function accepts (a setup id, a prefix, an interval); the
    message names the value and what is allowed. Also a ValueError, for callers that catch one."""


class UnknownNameError(SeconetError, KeyError):
    """A lookup by name found nothing (a technology, workload kind, parser, figure, backend,
    setup, table kind, container); the message lists the known names. Also a KeyError."""

    def __init__(self, what: str, name: str, known: Iterable[str] | None = None, where: str = ""):
        self.what = what
        self.name = name
        self.known = sorted(known) if known is not None else None
        self.message = f"no {what} '{name}'{where}" + (f"; known: {self.known}" if self.known is not None else "")
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class ToolFailed(SeconetError):
    """An external command failed or did not finish: carries its argv, exit code (None when it
    timed out), the host or namespace it ran in (None: this machine) and the tail of its stderr."""

    TAIL_LINES = 20

    def __init__(self, argv: Sequence[str], exit_code: int | None, host: str | None = None,
                 stderr: str = "", timeout_s: float | None = None):
        self.argv = [str(a) for a in argv]
        self.exit_code = exit_code
        self.host = host
        self.stderr_tail = "\n".join(stderr.strip().splitlines()[-self.TAIL_LINES:])
        self.timeout_s = timeout_s
        where = f" in {host}" if host else ""
        if exit_code is None:
            outcome = f"did not finish within {timeout_s} s" if timeout_s is not None else "could not run"
        else:
            outcome = f"failed (exit {exit_code})"
        message = f"'{shlex.join(self.argv)}'{where} {outcome}"
        if self.stderr_tail:
            message += ":\n" + self.stderr_tail
        super().__init__(message)


class UnsupportedError(SeconetError):
    """This machine cannot run a technology (missing binary or kernel feature); says which."""


class DeployError(SeconetError):
    """Deploying or verifying a setup failed."""


class HostError(DeployError):
    """A host of the ssh backend cannot be used: unreachable, its SSH connection lost, its host
    key changed, a tool missing there. Names the host (and its address when given), the cause
    and the fix."""

    def __init__(self, host: str, cause: str, fix: str = "", address: str = ""):
        self.host = host
        self.address = address
        self.cause = cause
        self.fix = fix
        where = f"host {host} ({address})" if address else f"host {host}"
        super().__init__(f"{where}: {cause}" + (f"; {fix}" if fix else ""))


class WorkloadError(SeconetError):
    """A traffic generator failed, hung or produced no usable output."""


class ParseError(SeconetError, ValueError):
    """Raw tool output could not be parsed. Names the file and line where parsing stopped."""

    def __init__(self, message: str, source: str | None = None, line: int | None = None):
        self.source = source
        self.line = line
        self.reason = message
        where = source or "<text>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {message}")


class ToolError(ParseError):
    """The file is a well-formed report of a failed tool run (e.g. iperf3's JSON 'error' key,
    'Network is unreachable' from ping). Parsing worked; the measurement did not."""
