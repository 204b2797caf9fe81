"""eBPF on the real kernel: the ebpf filter with the bridge, routing and ebpf solutions, and the
ebpf solution without a filter, each with 8 containers.

Each setup is measured through the runner (deploy with the isolation check, 1 s of iperf3 per
pair); then a non-whitelisted TCP connect must fail until the pair is whitelisted live, and
teardown must leave no namespace, link, mount, pin or map.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from seconetbench import bpf, config, proc, runner
from seconetbench.backends.netns import NetnsBackend
from seconetbench.filters import ebpf as ebpf_filter
from seconetbench.meta import read_meta
from seconetbench.spec import SetupSpec
from seconetbench.testbed import cleanup
from tests.conftest import parsed_as_the_workflow_does
from tests.privileged.test_netns_bridge import reachable, tcp_connects

pytestmark = pytest.mark.privileged

EXTRA_RULES = 1000


def measure_config(prefix: str, results: Path, solution: str, filter_name: str, extra_rules: int) -> dict:
    return config.validate({
        "results_dir": str(results), "repetitions": 1,
        "testbed": {"prefix": prefix, "reuse_deployment": True},  # kept for the checks after measuring
        "sweep": {"single": {"solutions": [solution], "filters": [filter_name], "containers": [8],
                             "extra_rules": [extra_rules]},
                  "workloads": ["tp"]},
        "workloads": {"tp": {"kind": "throughput", "payload_bytes": 653, "duration_s": 1, "generator": "iperf3"}},
    })


def mounted(path: Path) -> bool:
    return str(path) in subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True).stdout


def map_exists(map_id: int) -> bool:
    return subprocess.run(["bpftool", "map", "show", "id", str(map_id)], capture_output=True).returncode == 0


def assert_nothing_left(prefix: str, map_id: int) -> None:
    assert not any(cleanup.leftovers(prefix).values()), cleanup.leftovers(prefix)
    assert not mounted(bpf.bpffs(prefix))
    assert not bpf.pinned_map(prefix).exists()
    # The kernel frees the map with the last program using it, when it cleans up the deleted
    # namespaces; that runs asynchronously, so give it a moment before calling it a leak.
    deadline = time.monotonic() + 10
    while map_exists(map_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not map_exists(map_id), f"BPF map {map_id} outlived the teardown"


@pytest.mark.parametrize(("solution", "filter_name"),
                         [("bridge", "ebpf"), ("routing", "ebpf"), ("ebpf", "ebpf"), ("ebpf", "none")])
def test_measured_whitelist_and_teardown(prefix, tmp_path, tools_available, solution, filter_name):
    extra_rules = EXTRA_RULES if filter_name == "ebpf" else 0
    cfg = measure_config(prefix, tmp_path / "results", solution, filter_name, extra_rules)
    setup = SetupSpec("single", solution, filter_name, 8, extra_rules=extra_rules)
    out = tmp_path / "raw"
    backend = NetnsBackend(prefix)
    map_id = None
    try:
        runner.measure(cfg, setup.id, "tp", 1, out)
        deployment = backend.current()
        map_id = bpf.map_id(prefix)
        meta = read_meta(out)["deployment"]
        assert meta["verification"]["passed"] and meta["verification"]["probes"] == 3 * (8 + 8)
        throughput = parsed_as_the_workflow_does(out, tmp_path / "tp.parquet")
        assert sorted(throughput["pair"].unique()) == ["c01-c02", "c03-c04", "c05-c06", "c07-c08"]
        assert (throughput.groupby("pair")["bytes"].sum() > 0).all()  # every whitelisted flow moved data

        host = deployment.hosts[0].netns
        program = bpf.attached(host, deployment.names.host_veth("c03"))
        if solution == "ebpf":
            assert meta["solution"]["forwarding"] == "bpf_fib_lookup + bpf_redirect_peer"
            assert meta["solution"]["kernel"]
        if filter_name == "ebpf":
            assert "direct-action" in program
            assert f"[{ebpf_filter.SECTIONS[solution]}]" in program
            assert meta["filter"]["entries"] == bpf.entries(prefix) == EXTRA_RULES + 8
            assert meta["filter"]["install_s"] > 0
            # c01 and c03 are no pair: dropped until whitelisted live, then connected
            assert not tcp_connects(deployment, "c01", "c03")
            assert not reachable(deployment, "c03", "c01")
            seconds = ebpf_filter.update_pair(deployment, "c01", "c03")
            assert seconds > 0
            assert bpf.entries(prefix) == EXTRA_RULES + 10
            assert tcp_connects(deployment, "c01", "c03")
            assert reachable(deployment, "c03", "c01")
        else:
            assert "[forward]" in program
            assert tcp_connects(deployment, "c01", "c03")
    finally:
        removed = backend.teardown()
    assert len(removed["netns"]) == 9
    assert_nothing_left(prefix, map_id)


@pytest.mark.parametrize(("solution", "bypassed"), [("routing", False), ("ebpf", True)])
def test_ebpf_forwarding_bypasses_the_host_stack(prefix, tools_available, solution, bypassed):
    """With the host's FORWARD chain dropping everything, routed packets stop; packets the ebpf
    solution forwards do not pass that chain (once the neighbours are resolved), which is why
    the ebpf solution refuses netfilter filters."""
    backend = NetnsBackend(prefix)
    deployment = backend.deploy(SetupSpec("single", solution, "none", 2), verify=False)
    try:
        assert reachable(deployment, "c01", "c02")  # the host stack resolves both neighbours
        proc.run_in(deployment.hosts[0].netns, ["iptables", "-P", "FORWARD", "DROP"])
        assert reachable(deployment, "c01", "c02") is bypassed
    finally:
        backend.teardown()
    assert not any(cleanup.leftovers(prefix).values())


def test_cleanup_unmounts_the_bpffs_of_an_interrupted_deploy(prefix, tools_available):
    """A deploy killed before writing its state file never gets remove() called: cleanup itself
    must unmount the prefix's bpffs (which also unpins the map)."""
    backend = NetnsBackend(prefix)
    backend.deploy(SetupSpec("single", "bridge", "ebpf", 2), verify=False)
    map_id = bpf.map_id(prefix)
    assert mounted(bpf.bpffs(prefix))
    backend.state_file.unlink()  # as after a kill -9 in the middle of a deploy
    assert cleanup.leftovers(prefix)["mounts"] == [str(bpf.bpffs(prefix))]
    removed = cleanup.remove(prefix)
    assert removed["mounts"] == [str(bpf.bpffs(prefix))]
    assert_nothing_left(prefix, map_id)
