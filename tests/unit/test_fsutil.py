"""Atomic writes: a writer that dies or fails half-way never leaves a complete-looking result.
(Parsed tables, tables, figures and raw targets are all written through these.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from seconetbench.fsutil import atomic_directory, atomic_path, write_text_atomic

pytestmark = pytest.mark.unit


def test_a_failing_block_leaves_neither_file_nor_temporary(tmp_path):
    target = tmp_path / "table.parquet"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer failed")
    assert list(tmp_path.iterdir()) == []


def test_a_failing_block_keeps_the_previous_version(tmp_path):
    target = tmp_path / "figure.svg"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("new, half")
            raise RuntimeError("writer failed")
    assert target.read_text() == "old"
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)  # readable by others


def test_a_directory_appears_only_complete(tmp_path):
    final = tmp_path / "raw" / "rep1"
    with pytest.raises(RuntimeError):
        with atomic_directory(final) as partial:
            (partial / "c01-c02.client.stdout").write_text("half a run")
            raise RuntimeError("workload failed")
    assert not final.exists() and list(final.parent.iterdir()) == []


KILLED_WRITER = """
import sys, time
from pathlib import Path
from seconetbench.fsutil import atomic_directory
with atomic_directory(Path(sys.argv[1])) as partial:
    (partial / "data").write_text("x")
    print("writing", flush=True)
    time.sleep(60)
"""


def test_a_writer_killed_with_sigkill_leaves_no_target_and_the_next_writer_cleans_up(tmp_path):
    final = tmp_path / "rep1"
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(final)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    assert not final.exists()
    assert len(list(tmp_path.glob(".rep1.*.partial"))) == 1  # what the killed writer left
    with atomic_directory(final) as partial:
        (partial / "data").write_text("complete")
    assert (final / "data").read_text() == "complete"
    assert not list(tmp_path.glob(".rep1.*.partial"))  # the stale partial is gone
