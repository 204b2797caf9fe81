"""The adapters between workflow rules and the package: logging per job, a fresh thread per
measurement (run_batch runs inside the Snakemake process)."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from seconetbench.scripting import in_own_thread, logged

pytestmark = pytest.mark.unit


def running_loop_or_none():
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def test_in_own_thread_escapes_the_callers_running_event_loop():
    # Snakemake calls a run: rule in a thread with an asyncio loop running; pyroute2 cannot make
    # a synchronous socket there.
    async def like_snakemake():
        assert running_loop_or_none() is not None
        return in_own_thread(running_loop_or_none), in_own_thread(threading.get_ident)

    loop_inside, ident = asyncio.run(like_snakemake())
    assert loop_inside is None
    assert ident != threading.get_ident()


def test_in_own_thread_returns_the_result_and_raises_the_error():
    assert in_own_thread(divmod, 7, 2) == (3, 1)
    with pytest.raises(ZeroDivisionError):
        in_own_thread(divmod, 7, 0)
    assert not [t for t in threading.enumerate() if t.name == "seconetbench-divmod"]  # joined


def test_logged_keeps_foreign_records_out_and_restores_the_package_logger(tmp_path, capsys):
    package = logging.getLogger("seconetbench")
    level_before = package.level
    log = tmp_path / "logs/job.log"
    with pytest.raises(ValueError), logged(log) as logger:
        logger.info("deployed")
        logging.getLogger("snakemake.scheduler").warning("not a record of this target")
        raise ValueError("bad payload")
    text = log.read_text()
    assert "deployed" in text and "bad payload" in text and "Traceback" in text
    assert "not a record of this target" not in text
    assert "SeCoNetBench: bad payload" in capsys.readouterr().err
    assert package.level == level_before and not package.handlers
