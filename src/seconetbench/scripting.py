"""Support for the workflow's script adapters (workflow/scripts/*.py)."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, TypeVar

Result = TypeVar("Result")
# The log handler of the job (logged) whose thread this is; None in threads of no job.
_job_log: contextvars.ContextVar[logging.Handler | None] = contextvars.ContextVar("job_log", default=None)
_jobs_logging: set[logging.Handler] = set()
_level_before: list[int] = [logging.NOTSET]
_jobs_lock = threading.Lock()


@contextlib.contextmanager
def logged(log_path: str | Path) -> Iterator[logging.Logger]:
    """Send the package's logging to the job's log file; write a failure's traceback there too
    and repeat its one-line cause on stderr, where Snakemake shows it.

    The handler goes on the package's logger, not the root: run_batch runs inside the Snakemake
    process, whose own records must not land in a target's log."""
    path = Path(log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # Several testbed groups measure at once, each job in a thread of this process: a job's log
    # takes the records of its own threads (in_own_thread carries the context), and those of
    # threads of no job (helper pools) in every log.
    handler.addFilter(lambda record: _job_log.get() in (None, handler))
    token = _job_log.set(handler)
    package = logging.getLogger("seconetbench")
    with _jobs_lock:
        if not _jobs_logging:
            _level_before[:] = [package.level]
        _jobs_logging.add(handler)
        package.setLevel(logging.INFO)
    package.addHandler(handler)
    try:
        yield package
    except BaseException as error:
        with path.open("a") as log:
            log.write("".join(traceback.format_exception(error)))
        print(f"SeCoNetBench: {error}", file=sys.stderr)
        raise
    finally:
        package.removeHandler(handler)
        with _jobs_lock:  # the level as before the first of the jobs logging at once
            _jobs_logging.discard(handler)
            if not _jobs_logging:
                package.setLevel(_level_before[0])
        handler.close()
        _job_log.reset(token)


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

    context = contextvars.copy_context()  # the job's log (logged) goes along
    worker = threading.Thread(target=context.run, args=(call,), name=f"seconetbench-{getattr(function, '__name__', 'call')}")
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
