"""Support for the workflow's script adapters (workflow/scripts/*.py)."""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, TypeVar

Result = TypeVar("Result")


@contextlib.contextmanager
def logged(log_path: str | Path) -> Iterator[logging.Logger]:
    """Send the package's logging to the job's log file; write a failure's traceback there too
    and repeat its one-line cause on stderr, where Snakemake shows it.

    The handler goes on the package's logger, not the root: run_target runs inside the Snakemake
    process, whose own records must not land in a target's log."""
    path = Path(log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    package = logging.getLogger("seconetbench")
    level_before = package.level
    package.addHandler(handler)
    package.setLevel(logging.INFO)
    try:
        yield package
    except BaseException as error:
        with path.open("a") as log:
            log.write("".join(traceback.format_exception(error)))
        print(f"SeCoNetBench: {error}", file=sys.stderr)
        raise
    finally:
        package.removeHandler(handler)
        package.setLevel(level_before)
        handler.close()


def in_own_thread(function: Callable[..., Result], *args: Any) -> Result:
    """Call *function* in a new thread and wait for it; its exception is raised here.

    A `run:` rule executes in a Snakemake thread that has an asyncio loop running, and pyroute2's
    synchronous sockets need a thread without one. A fresh thread per target also starts with the
    process's network namespace and no thread-local state left by the previous target."""
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["result"] = function(*args)
        except BaseException as error:  # handed to the caller, who raises it
            outcome["error"] = error

    worker = threading.Thread(target=call, name=f"seconetbench-{getattr(function, '__name__', 'call')}")
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
