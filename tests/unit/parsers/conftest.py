"""Shared fixtures of the parser tests: the recorded real outputs under tests/fixtures/<tool>/."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from seconetbench.parsers import Parsed
from tests.conftest import SHARED_FIXTURES


@pytest.fixture(scope="session")
def fixture_path() -> Callable[[str], Path]:
    """``fixture_path("ping/basic_20.txt")`` -> the path of a recorded output."""

    def resolve(name: str) -> Path:
        path = SHARED_FIXTURES / name
        assert path.is_file(), f"missing fixture {path}"
        return path

    return resolve


@pytest.fixture(scope="session")
def fixture_text(fixture_path) -> Callable[[str], str]:
    """``fixture_text("ping/basic_20.txt")`` -> its text, decoded as parse_file does."""

    def read(name: str) -> str:
        return fixture_path(name).read_bytes().decode("utf-8", errors="replace")

    return read


@pytest.fixture(scope="session")
def assert_same_parse() -> Callable[[Parsed, Parsed], None]:
    """Assert two parse results are identical (frames with dtypes, summaries key by key)."""

    def check(actual: Parsed, expected: Parsed) -> None:
        pd.testing.assert_frame_equal(actual.samples, expected.samples)
        assert actual.summary == expected.summary

    return check


def line_boundary_cuts(text: str) -> list[int]:
    """Every offset at, just before and just after a line end: where a cut is most likely to parse."""
    cuts = set()
    for position, char in enumerate(text):
        if char == "\n":
            cuts.update({position, position + 1})
    return sorted(cut for cut in cuts if cut < len(text))


@pytest.fixture(scope="session")
def boundary_cuts() -> Callable[[str], list[int]]:
    return line_boundary_cuts
