"""docs/tables.md lists exactly the columns the schemas enforce."""

from __future__ import annotations

import re

import pytest

from seconetbench import tables
from tests.conftest import REPO

pytestmark = pytest.mark.unit


def documented_columns() -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = None
    for line in (REPO / "docs/tables.md").read_text().splitlines():
        heading = re.match(r"^## (\w+)", line)
        if heading:
            current = heading.group(1).lower()
            sections[current] = []
        elif current and re.match(r"^\| [a-z_0-9]+ \| [a-z0-9]+ \|", line) and not line.startswith("| column "):
            sections[current].append(line.split("|")[1].strip())
    return sections


@pytest.mark.parametrize("kind", tables.KINDS)
def test_every_table_is_documented(kind):
    docs = documented_columns()
    expected = tables.schema(kind).names
    if kind == "summary":
        assert docs["summary"] == expected
    elif kind in tables.TARGET_MEASURES:
        assert [c for c in docs["identity"] if c not in ("pair", "flow")] + docs[kind] == expected
    else:
        assert docs["identity"] + docs[kind] == expected
