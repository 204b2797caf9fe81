"""Exceptions shared across the package. Each message names what is wrong and how to fix it."""

from __future__ import annotations


class SeconetError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(SeconetError):
    """A configuration value is invalid; the message names the key, the value and what is allowed."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"config key '{key}': {message}")


class UnsupportedError(SeconetError):
    """This machine cannot run a technology (missing binary or kernel feature); says which."""


class DeployError(SeconetError):
    """Deploying or verifying a setup failed."""


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
