"""Shared fixtures. Privileged tests need root; each uses its own run prefix and proves that
nothing with that prefix is left afterwards."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = REPO / "tests" / "fixtures"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("privileged") and os.geteuid() != 0:
            item.add_marker(pytest.mark.skip(reason="needs root: creates network namespaces"))


@pytest.fixture
def prefix():
    """A fresh run prefix; after the test, the testbed must hold nothing of it."""
    from seconetbench.testbed import cleanup

    value = "scnt" + secrets.token_hex(2)
    yield value
    left = cleanup.leftovers(value)
    cleanup.remove(value)
    assert not any(left.values()), f"test left testbed objects behind: {left}"


@pytest.fixture(scope="session")
def tools_available():
    missing = [t for t in ("ip", "ping", "iperf3", "iptables-restore") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"tools missing (make test installs them): {missing}")
