"""The Debian mirror is read from the machine's own apt sources, in both of apt's formats, by the
Python function (engines/apt_sources.py) and the shell one (tools/debian.sh) alike."""

from __future__ import annotations

import os
import subprocess

import pytest

from seconetbench.engines import apt_sources
from seconetbench.errors import DeployError
from tests.conftest import REPO, SHARED_FIXTURES

pytestmark = pytest.mark.unit

APT = SHARED_FIXTURES / "apt"  # deb822: this Debian 12 machine's own file; one_line: an installer's style
EXPECTED = {
    "deb822": {"bookworm": "http://deb.debian.org/debian", "bookworm-updates": "http://deb.debian.org/debian",
               "bookworm-security": "http://deb.debian.org/debian-security"},
    "one_line": {"bookworm": "http://apt-cache.invalid:3142/debian", "bookworm-updates": "http://apt-cache.invalid:3142/debian",
                 "bookworm-security": "http://apt-cache.invalid:3142/debian-security"},
}


def shell_mirror(apt_dir, suite: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != apt_sources.OVERRIDE} | {"APT_DIR": str(apt_dir), **env}
    return subprocess.run(["bash", "-c", f'. "{REPO}/tools/debian.sh" && debian_mirror "$1"', "-", suite],
                          capture_output=True, text=True, env=environment, timeout=30)


@pytest.mark.parametrize("layout", sorted(EXPECTED))
def test_both_formats_give_the_mirror_of_each_suite_in_python_and_in_shell(layout, monkeypatch):
    monkeypatch.delenv(apt_sources.OVERRIDE, raising=False)
    for suite, uri in EXPECTED[layout].items():
        assert apt_sources.debian_mirror(suite, APT / layout) == uri
        shell = shell_mirror(APT / layout, suite)
        assert (shell.returncode, shell.stdout.strip()) == (0, uri), shell.stderr


def test_disabled_and_source_only_entries_are_not_mirrors():
    entries = apt_sources.apt_entries(APT / "deb822")
    assert all("invalid" not in e.uri for e in entries)
    one_line = apt_sources.apt_entries(APT / "one_line")
    assert [e.components for e in one_line][0] == ("main", "contrib")  # options and a comment skipped


def test_the_environment_overrides_the_archive_but_not_the_security_suite(monkeypatch):
    monkeypatch.setenv(apt_sources.OVERRIDE, "http://mirror.invalid/debian")
    assert apt_sources.debian_mirror("bookworm", APT / "deb822") == "http://mirror.invalid/debian"
    assert apt_sources.debian_mirror("bookworm-security", APT / "deb822") == "http://deb.debian.org/debian-security"
    shell = shell_mirror(APT / "deb822", "bookworm", SECONETBENCH_DEBIAN_MIRROR="http://mirror.invalid/debian")
    assert shell.stdout.strip() == "http://mirror.invalid/debian"


def test_no_source_for_the_suite_is_a_clear_error(monkeypatch):
    monkeypatch.delenv(apt_sources.OVERRIDE, raising=False)
    with pytest.raises(DeployError, match=r"no apt source .* Debian 'bookworm' .*SECONETBENCH_DEBIAN_MIRROR"):
        apt_sources.debian_mirror("bookworm", APT / "none")
    shell = shell_mirror(APT / "none", "bookworm")
    assert shell.returncode == 1 and "no apt source of this machine serves Debian bookworm" in shell.stderr
