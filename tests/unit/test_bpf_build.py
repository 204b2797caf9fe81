"""Building the BPF programs (real clang, cache in a temporary directory) and which setups the
ebpf technologies refuse, with their reasons."""

from __future__ import annotations

import shutil

import pytest

from seconetbench import bpf, preflight
from seconetbench.errors import UnsupportedError
from seconetbench.spec import SetupSpec

pytestmark = pytest.mark.unit

needs_clang = pytest.mark.skipif(shutil.which("clang") is None,
                                 reason="clang is not installed (tools/setup.sh installs it)")


@needs_clang
def test_build_compiles_once_per_source_text(tmp_path):
    source = tmp_path / "tc_pairs.bpf.c"
    shutil.copy(bpf.TC_PROGRAMS, source)
    cache = tmp_path / "cache"
    first = bpf.build(source, cache)
    assert first.read_bytes()[:4] == b"\x7fELF"
    assert all(section in first.read_bytes() for section in (b"filter", b"forward", b"forward_filter"))
    built_at = first.stat().st_mtime_ns
    # same text: the cached object, untouched (clang did not run)
    assert bpf.build(source, cache) == first
    assert first.stat().st_mtime_ns == built_at
    # another text: another object beside the first
    source.write_text(source.read_text() + "\n/* changed */\n")
    second = bpf.build(source, cache)
    assert second != first and second.exists() and first.exists()
    assert sorted(p.name for p in cache.iterdir()) == sorted([first.name, second.name])  # no partial files


@needs_clang
def test_broken_source_names_the_file_and_quotes_clang(tmp_path):
    source = tmp_path / "broken.bpf.c"
    source.write_text("int broken(void) { return ; }\nint oops = ;\n")
    with pytest.raises(bpf.BuildError) as caught:
        bpf.build(source, tmp_path / "cache")
    message = str(caught.value)
    assert str(source) in message
    assert "error: expected expression" in message  # clang's own diagnostic
    assert not list((tmp_path / "cache").iterdir())


def test_missing_clang_is_unsupported_and_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without clang
    bpf.clang_version.cache_clear()
    try:
        with pytest.raises(UnsupportedError, match="clang is not on PATH.*install the Debian packages clang"):
            bpf.build(bpf.TC_PROGRAMS, tmp_path / "cache")
    finally:
        bpf.clang_version.cache_clear()


def test_header_requirements_name_their_package():
    missing = bpf.HeaderRequirement("header", "no/such_header.h", "libbpf-dev").missing()
    assert missing == "C header <no/such_header.h> is missing (Debian package libbpf-dev)"
    assert bpf.HeaderRequirement("header", "linux/bpf.h", "linux-libc-dev").missing() is None


@pytest.mark.parametrize(("solution", "filter_name", "reason"), [
    ("macvlan", "ebpf", "switched inside the macvlan driver"),
    ("ovs", "ebpf", "Open vSwitch"),
    ("ebpf", "iptables", "bpf_redirect_peer"),
    ("ebpf", "nftables", "bpf_redirect_peer"),
    ("ebpf", "ovs", "not verified with the ebpf solution"),
])
def test_unverified_combinations_are_refused_with_a_reason(solution, filter_name, reason):
    assert reason in preflight.incompatibility(SetupSpec("single", solution, filter_name, 8))


@pytest.mark.parametrize(("solution", "filter_name"),
                         [("bridge", "ebpf"), ("routing", "ebpf"), ("ebpf", "ebpf"), ("ebpf", "none")])
def test_verified_combinations_are_accepted(solution, filter_name):
    assert preflight.incompatibility(SetupSpec("single", solution, filter_name, 8)) is None


def test_extra_entries_never_match_container_addresses():
    from seconetbench.filters.ebpf import extra_flows

    keys = list(extra_flows(20000))
    assert len(set(keys)) == 20000
    assert all(s.startswith("198.18.") and int(s.split(".")[2]) >= 128 for s, _ in keys)
    assert bpf.pair_key("198.19.1.2", "198.18.128.1") == "198 19 1 2 198 18 128 1"
