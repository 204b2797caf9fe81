"""Unit tests never probe the kernel: every test starts with the probe results recorded on the
project's VM (tests/fixtures/probes; kernel 6.18 without loadable modules: VXLAN in the kernel,
no IPIP, GRE, WireGuard, ESP or OVS datapath), so that `auto` resolves the same everywhere and no
unit test creates a namespace. tests/unit/test_probes.py injects other outcomes;
tests/privileged/test_probes.py runs the real probes."""

from __future__ import annotations

import json

import pytest

from seconetbench import probes
from tests.conftest import REPO

RECORDED = REPO / "tests" / "fixtures" / "probes" / "kernel-6.18-no-modules.json"


def recorded_probes(prefix: str) -> dict[str, probes.ProbeResult]:
    return {name: probes.ProbeResult.from_dict(result) for name, result in json.loads(RECORDED.read_text()).items()}


@pytest.fixture(autouse=True)
def recorded_machine():
    probes.results(None, probe=recorded_probes, fresh=True)  # no prefix: no run's cache file gets them
    yield
    probes.forget()
