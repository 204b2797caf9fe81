"""The ipip and gre tunnels on the real kernel: 2 hosts, 4 containers, iptables on each host.

Each is measured through the runner (deploy with the isolation check and the underlay capture,
a short ping, 1 s of iperf3 per pair). The facts must name the implementation that ran (kernel
devices where the kernel has CONFIG_NET_IPIP / CONFIG_NET_IPGRE, else tc-BPF), and the capture
must show only IP protocol 4 or 47 between underlay addresses, unfragmented. Teardown must leave
no namespace, link, bpffs mount, pin or map.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from seconetbench import bpf, config, probes, runner
from seconetbench.backends.netns import NetnsBackend
from seconetbench.meta import read_meta
from seconetbench.spec import SetupSpec
from seconetbench.testbed import cleanup
from seconetbench.tunnels import _common, ip_in_ip
from tests.conftest import parsed_as_the_workflow_does

pytestmark = pytest.mark.privileged

PROTOCOL = {"ipip": _common.IPIP, "gre": _common.GRE}
OVERHEAD = {"ipip": 20, "gre": 24}


def measure_config(prefix: str, results: Path, tunnel: str) -> dict:
    return config.validate({
        "results_dir": str(results), "repetitions": 1,
        "testbed": {"prefix": prefix, "reuse_deployment": True},  # one deploy for both workloads
        "sweep": {"multi": {"tunnels": [tunnel], "filters": ["iptables"], "containers": [4], "hosts": 2,
                            "solution": "bridge"},
                  "workloads": ["lat", "tp"]},
        "workloads": {"lat": {"kind": "latency", "count": 5, "interval_s": 0.05},
                      "tp": {"kind": "throughput", "payload_bytes": 1370, "duration_s": 1, "generator": "iperf3"}},
    })


def mounted(path: Path) -> bool:
    return str(path) in subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True).stdout


def map_ids(prefix: str) -> list[int]:
    return [json.loads(subprocess.run(["bpftool", "--json", "map", "show", "pinned", str(bpf.pinned_map(prefix, name))],
                                      capture_output=True, text=True, check=True).stdout)["id"]
            for name in (ip_in_ip.ROUTE_MAP, ip_in_ip.PEER_MAP)]


def map_entries(prefix: str, name: str) -> int:
    dump = subprocess.run(["bpftool", "--json", "map", "dump", "pinned", str(bpf.pinned_map(prefix, name))],
                          capture_output=True, text=True, check=True)
    return len(json.loads(dump.stdout))


def map_exists(map_id: int) -> bool:
    return subprocess.run(["bpftool", "map", "show", "id", str(map_id)], capture_output=True).returncode == 0


@pytest.mark.parametrize("tunnel", ["ipip", "gre"])
def test_ipip_gre_measured_proven_on_the_wire_and_leave_nothing(tunnel, prefix, tmp_path, tools_available):
    setup = SetupSpec("multi", "bridge", "iptables", 4, tunnel=tunnel, hosts=2)
    cfg = measure_config(prefix, tmp_path / "results", tunnel)
    expected = "kernel" if probes.results(prefix)[tunnel].kernel_available else "tc-bpf"
    backend = NetnsBackend(prefix)
    ids: list[int] = []
    try:
        runner.measure(cfg, setup.id, "lat", 1, tmp_path / "lat")
        runner.measure(cfg, setup.id, "tp", 1, tmp_path / "tp")
        meta = read_meta(tmp_path / "tp")["deployment"]
        assert meta["verification"]["passed"], meta["verification"]
        facts = meta["tunnel"]
        assert facts["implementation"] == expected
        assert facts["overhead_bytes"] == OVERHEAD[tunnel]
        assert facts["path_mtu"] == 1500 - OVERHEAD[tunnel] >= _common.MIN_PATH_MTU
        assert facts["setup_s"] > 0
        capture = facts["underlay_capture"]
        assert capture["passed"], capture
        assert capture["encapsulated"] > 0 and capture["plain"] == 0 and capture["other"] == 0, capture
        assert capture["fragments"] == 0
        assert str(PROTOCOL[tunnel]) in capture["expected"]
        for container, mtus in meta["mtu"].items():
            if "-c" in container:
                assert set(mtus.values()) == {facts["path_mtu"]}, (container, mtus)

        latency = parsed_as_the_workflow_does(tmp_path / "lat", tmp_path / "lat.parquet")
        assert sorted(latency["pair"].unique()) == ["c01-c02", "c03-c04"]
        assert latency["received"].all(), latency[~latency["received"]]
        throughput = parsed_as_the_workflow_does(tmp_path / "tp", tmp_path / "tp.parquet")
        assert sorted(throughput["pair"].unique()) == ["c01-c02", "c03-c04"]
        assert (throughput.groupby("pair")["bytes"].sum() > 0).all()

        deployment = backend.current()
        if expected == "tc-bpf":
            underlay = deployment.hosts[0].underlay_dev
            ingress = bpf.attached(deployment.hosts[0].netns, underlay)
            assert "direct-action" in ingress and f"[{ip_in_ip.DECAP_SECTION}]" in ingress
            ids = map_ids(prefix)
            assert map_entries(prefix, ip_in_ip.ROUTE_MAP) == map_entries(prefix, ip_in_ip.PEER_MAP) == 2
            assert facts["maps"] == [ip_in_ip.ROUTE_MAP, ip_in_ip.PEER_MAP]
    finally:
        backend.teardown()
    assert not any(cleanup.leftovers(prefix).values()), cleanup.leftovers(prefix)
    assert not cleanup.state_dir(prefix).exists()
    assert not mounted(bpf.bpffs(prefix))
    # the kernel frees the maps with the last program using them, when it cleans up the deleted
    # namespaces; that runs asynchronously, so give it a moment before calling it a leak
    deadline = time.monotonic() + 10
    while any(map_exists(i) for i in ids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [i for i in ids if map_exists(i)], f"BPF maps {ids} outlived the teardown"
