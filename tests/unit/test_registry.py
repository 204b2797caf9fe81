"""The one registry pattern (seconetbench.registry) and the typed errors it and proc raise."""

from __future__ import annotations

import shlex
import subprocess
import sys
import textwrap

import pytest

from seconetbench import proc, technology
from seconetbench.backends import BACKENDS, get_backend
from seconetbench.errors import InvalidValueError, SeconetError, ToolFailed, UnknownNameError
from seconetbench.figures import FIGURES
from seconetbench.parsers import PARSERS
from seconetbench.registry import Registry
from seconetbench.workloads import WORKLOADS
from tests.conftest import REPO

pytestmark = pytest.mark.unit


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    """A package `plugins_<n>` of two modules that register themselves, and one private module."""
    name = f"plugins_{tmp_path.name.replace('-', '_')}"
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(f"""
        from seconetbench.registry import Registry
        ITEMS = Registry("plugin", package="{name}", name_of=lambda cls: cls.key)
    """))
    for module, key in (("alpha", "a"), ("beta", "b")):
        (package / f"{module}.py").write_text(textwrap.dedent(f"""
            from {name} import ITEMS
            @ITEMS.register
            class Plugin:
                key = "{key}"
        """))
    (package / "_private.py").write_text("raise AssertionError('a private module is never discovered')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


def test_a_registry_imports_its_package_modules_on_the_first_lookup_only(plugins):
    import importlib

    items = importlib.import_module(plugins).ITEMS
    assert f"{plugins}.alpha" not in sys.modules  # importing the package registers nothing yet
    assert items.names() == ["a", "b"]
    assert f"{plugins}.alpha" in sys.modules and f"{plugins}._private" not in sys.modules
    assert items["a"].__module__ == f"{plugins}.alpha"
    assert "b" in items and "c" not in items and len(items) == 2 and list(items) == ["a", "b"]


def test_an_unknown_name_is_a_seconet_error_and_a_key_error_listing_the_known_names(plugins):
    import importlib

    items = importlib.import_module(plugins).ITEMS
    with pytest.raises(UnknownNameError, match=r"^no plugin 'c'; known: \['a', 'b'\]$") as caught:
        items.get("c")
    assert isinstance(caught.value, SeconetError) and isinstance(caught.value, KeyError)
    assert items.get("c", None) is None


def test_a_name_registered_twice_is_refused(plugins, tmp_path):
    import importlib

    (tmp_path / plugins / "gamma.py").write_text(
        (tmp_path / plugins / "alpha.py").read_text())  # a copy registers key "a" again
    items = importlib.import_module(plugins).ITEMS
    with pytest.raises(InvalidValueError, match="^plugin 'a' is registered twice$"):
        items.names()


def test_a_lazy_item_is_listed_without_importing_its_module():
    registry = Registry("codec")
    registry.lazy("json", "json.decoder:JSONDecoder")
    registry.lazy("gone", "seconetbench_no_such_module:Thing")
    assert registry.names() == ["gone", "json"]
    import json.decoder

    assert registry["json"] is json.decoder.JSONDecoder
    with pytest.raises(ModuleNotFoundError):
        registry["gone"]


def test_every_extension_point_is_a_registry_naming_what_its_modules_define():
    assert set(technology.names("solution")) >= {"bridge", "routing", "macvlan", "ovs", "ebpf"}
    assert set(technology.names("tunnel", backend="netns")) >= {"vxlan", "wireguard", "ipsec"}
    assert "cni" not in technology.names("tunnel", backend="netns")  # kubernetes only
    assert set(WORKLOADS) == {"latency", "throughput", "bursty", "tcp100", "quake3", "video",
                              "isolation", "confidentiality", "spoofing", "first_packet", "policy_update"}
    assert all(WORKLOADS[kind].kind == kind for kind in WORKLOADS)
    assert set(PARSERS) == {"ping", "iperf3", "uperf", "itgdec", "dstat", "itgdec_packets"}
    assert all(FIGURES[name].name == name for name in FIGURES)
    assert BACKENDS.names() == ["docker", "kubernetes", "netns", "ssh", "vm"]
    with pytest.raises(UnknownNameError, match=r"^no testbed.backend 'qemu'; known: \['docker', 'kubernetes', 'netns', 'ssh', 'vm'\]"):
        get_backend("qemu", "scnzz")
    with pytest.raises(UnknownNameError, match=r"^no filter 'pf'; known: \["):
        technology.get("filter", "pf")


HEAVY = ("pandas", "psutil", "pyroute2", "docker", "kubernetes")


def test_validating_a_config_imports_neither_pandas_psutil_nor_pyroute2():
    """Validation reads the metadata of technologies, workloads and backends only: the modules
    that apply them import their heavy dependencies (pandas through the parsers, psutil, pyroute2,
    the docker and kubernetes clients) where they use them."""
    script = textwrap.dedent(f"""
        import sys
        from seconetbench import config
        for name in ("full", "multi-host", "docker", "kubernetes"):
            config.validate(config.load_files(f"config/{{name}}.yaml"))
        print(sorted(m for m in {HEAVY!r} if m in sys.modules))
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_listing_the_setups_of_a_config_imports_neither_pandas_nor_a_client():
    """`setups` says what runs each setup here, so it probes this kernel (netlink, psutil); the
    parsers' pandas and the docker and kubernetes clients stay out."""
    script = textwrap.dedent("""
        import contextlib, io, sys
        from seconetbench.cli import main
        with contextlib.redirect_stdout(io.StringIO()) as listed:
            assert main(["setups", "--config", "config/full.yaml"]) == 0
        assert "single-bridge-none-c2" in listed.getvalue().split()
        print(sorted(m for m in ("pandas", "docker", "kubernetes") if m in sys.modules))
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_failed_command_raises_tool_failed_with_argv_exit_code_and_the_tail_of_stderr():
    script = "for i in $(seq 1 30); do echo problem $i >&2; done; exit 3"
    with pytest.raises(ToolFailed) as caught:
        proc.run(["sh", "-c", script], host="h1")
    failure = caught.value
    assert (failure.argv, failure.exit_code, failure.host) == (["sh", "-c", script], 3, "h1")
    assert failure.stderr_tail.splitlines() == [f"problem {i}" for i in range(11, 31)]
    assert str(failure).startswith(f"'{shlex.join(['sh', '-c', script])}' in h1 failed (exit 3):\nproblem 11\n")
    assert proc.run(["sh", "-c", "exit 3"], check=False).returncode == 3


def test_a_command_that_does_not_finish_raises_tool_failed_without_an_exit_code():
    with pytest.raises(ToolFailed, match=r"^'sleep 60' did not finish within 0.5 s$") as caught:
        proc.run(["sleep", "60"], timeout=0.5)
    assert caught.value.exit_code is None and caught.value.timeout_s == 0.5
