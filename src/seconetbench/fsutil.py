"""Atomic file and directory writes: a reader (or a resumed sweep) never sees half a result."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside *final*; rename it onto *final* only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be read by others
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text_atomic(final: str | os.PathLike, text: str) -> None:
    with atomic_path(final) as tmp:
        tmp.write_text(text)


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory beside *final*; it becomes *final* only on success.

    An existing *final* is replaced (Snakemake removes outputs before a rerun anyway)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    # A job killed with SIGKILL leaves its partial directory behind; only one job writes a
    # given target at a time, so older partials of the same target are garbage.
    for stale in final.parent.glob(f".{final.name}.*.partial"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes 0700
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_protect(path: str | os.PathLike) -> None:
    """Take the write permission off *path* and, for a directory, everything in it, as
    Snakemake's ``protected()`` does: a finished result is not to be written again."""
    path = Path(path)
    for entry in [*path.rglob("*"), path] if path.is_dir() else [path]:
        if not entry.is_symlink():
            entry.chmod(entry.stat().st_mode & ~0o222)
