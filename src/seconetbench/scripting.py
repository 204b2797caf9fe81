"""Support for the workflow's script adapters (workflow/scripts/*.py)."""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def logged(log_path: str | Path) -> Iterator[logging.Logger]:
    """Send the package's logging to the job's log file; write a failure's traceback there too
    and repeat its one-line cause on stderr, where Snakemake shows it."""
    path = Path(log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield logging.getLogger("seconetbench")
    except BaseException as error:
        with path.open("a") as log:
            log.write("".join(traceback.format_exception(error)))
        print(f"SeCoNetBench: {error}", file=sys.stderr)
        raise
    finally:
        root.removeHandler(handler)
        handler.close()
