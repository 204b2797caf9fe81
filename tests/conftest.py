"""Shared fixtures. Privileged tests need root; each uses its own run prefix and proves that
nothing with that prefix is left afterwards.

Privileged tests (every workflow test that deploys is one too) hold the host-wide measurement lock
for their whole run, waiting while a sweep measures: running the suite during a sweep never
changes its numbers. What a test measures itself (runner.measure, a nested snakemake) takes a
lock of the test's own, so nothing waits for the lock this process already holds."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = REPO / "tests" / "fixtures"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("privileged") and os.geteuid() != 0:
            item.add_marker(pytest.mark.skip(reason="needs root: creates network namespaces"))


class HostHold:
    """This pytest process's hold on the host-wide measurement lock, reentrant: the session
    fixtures of a running engine or cluster and each privileged test within them share one hold.

    While held, $SECONETBENCH_LOCK points at a lock file of the hold's own, so the measurements a
    test starts (in this process or in a nested snakemake) lock that one instead of waiting for
    the host's lock, which this process holds."""

    def __init__(self) -> None:
        self.depth = 0
        self.lock = None
        self.outer_env: str | None = None
        self.private_dir: str | None = None

    @contextlib.contextmanager
    def held(self, say=None):
        """*say*: how to tell that the hold waits (default: standard error)."""
        if self.depth == 0:
            self._acquire(say or (lambda message: print(message, file=sys.stderr, flush=True)))
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if self.depth == 0:
                self._release()

    def _acquire(self, say) -> None:
        from seconetbench.errors import SeconetError
        from seconetbench.runner import HostLock, lock_path

        said = False
        while self.lock is None:
            try:
                self.lock = HostLock(timeout_s=0).__enter__()
            except SeconetError as busy:  # held by another process
                if not said:
                    say(f"pytest pid {os.getpid()} waits for the measurement lock: {busy}")
                    said = True
                # Wait in the kernel, woken the moment the holder lets go, then try again: a
                # HostLock waiting with a timeout polls every 50 ms, and a sweep whose targets
                # follow each other 0.03 s apart would keep the suite waiting to its end.
                with open(lock_path(), "a") as waiter:
                    fcntl.flock(waiter, fcntl.LOCK_EX)
        self.outer_env = os.environ.get("SECONETBENCH_LOCK")
        self.private_dir = tempfile.mkdtemp(prefix="seconetbench-test-lock-")
        os.environ["SECONETBENCH_LOCK"] = os.path.join(self.private_dir, "nested.lock")

    def _release(self) -> None:
        if self.outer_env is None:
            os.environ.pop("SECONETBENCH_LOCK", None)
        else:
            os.environ["SECONETBENCH_LOCK"] = self.outer_env
        shutil.rmtree(self.private_dir, ignore_errors=True)
        self.lock.__exit__(None, None, None)
        self.lock = None


HOST = HostHold()


@pytest.fixture(autouse=True)
def measurement_lock(request):
    """Privileged tests run while this process holds the host-wide measurement lock."""
    if request.node.get_closest_marker("privileged") is None or os.geteuid() != 0:
        yield
        return
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")

    def say(message: str) -> None:  # on screen although pytest captures the test's output
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            if reporter:
                reporter.write_line(message)
            else:
                print(message, file=sys.stderr, flush=True)

    with HOST.held(say=say):
        yield


@contextlib.contextmanager
def owned_prefix(start: str = "scnt"):
    """A fresh run prefix (*start* and 4 hex digits); afterwards the testbed must hold nothing
    of it (what is left is removed, and the test fails naming it)."""
    from seconetbench.testbed import cleanup

    value = start + secrets.token_hex(2)
    yield value
    left = cleanup.leftovers(value)
    cleanup.remove(value)
    assert not any(left.values()), f"test left testbed objects behind: {left}"


@pytest.fixture
def prefix():
    """A fresh run prefix; after the test, the testbed must hold nothing of it."""
    with owned_prefix() as value:
        yield value


@pytest.fixture(scope="session")
def tools_available():
    missing = [t for t in ("ip", "ping", "iperf3", "iptables-restore") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"tools missing (make test installs them): {missing}")


@contextlib.contextmanager
def iperf3_server(netns: str, ip: str, port: int = 5201):
    """A one-shot iperf3 server in *netns*, yielded once it says it listens (it prints that after
    listen(); --forceflush, or the line waits in its buffer); killed at the end of the block."""
    from seconetbench import proc

    argv = ["iperf3", "-s", "-1", "--forceflush", "-p", str(port), "-B", ip]
    server = subprocess.Popen(proc.in_netns(netns, argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        said = [server.stdout.readline() for _ in range(2)]  # a rule of dashes, then the news
        assert said[1].startswith(f"Server listening on {port}"), f"iperf3 server did not start: {said}"
        yield server
    finally:
        server.kill()
        server.wait()


def parsed_as_the_workflow_does(raw_dir: str | os.PathLike, out: str | os.PathLike, target_tables: bool = True):
    """One raw target parsed the way rule parse_setup does (pipeline.parse_setup, here a setup of
    one target): its workload's table to *out*, with the tables of the target as a whole beside
    it unless the target is a recorded workload output without a deployment; read back from *out*."""
    from seconetbench import pipeline, tables
    from seconetbench.meta import read_meta

    out = Path(out)
    beside = {kind: out.with_name(f"{out.stem}.{kind}.parquet") for kind in tables.TARGET_MEASURES if target_tables}
    pipeline.parse_setup([raw_dir], {pipeline.workload_of(read_meta(raw_dir)).table: out, **beside})
    return tables.read(out)
