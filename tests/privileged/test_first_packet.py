"""The first_packet workload for real, through the runner and the parser as the workflow runs
them: every probe has a first and a warm RTT, and the flush before each probe really emptied the
caches (the positive control: a conntrack entry planted in the host namespace is gone, and with
OVS every flow the previous probe installed in the datapath was deleted, none left)."""

from __future__ import annotations

import pytest

from seconetbench import config, pipeline, proc, runner, tables
from seconetbench.backends.netns import NetnsBackend
from seconetbench.meta import read_meta
from seconetbench.spec import SetupSpec

pytestmark = pytest.mark.privileged

PROBES = 3


def conntrack_entries(netns: str) -> int:
    return int(proc.run_in(netns, ["conntrack", "-C"]).stdout)


@pytest.mark.parametrize("solution, filter_", [("ovs", "none"), ("bridge", "iptables")])
def test_first_packet_flushes_before_every_probe(prefix, tmp_path, tools_available, solution, filter_):
    cfg = config.validate({
        "results_dir": str(tmp_path / "results"), "repetitions": 1, "testbed": {"prefix": prefix},
        "sweep": {"single": {"solutions": [solution], "filters": [filter_], "containers": [2]}, "workloads": ["fp"]},
        "workloads": {"fp": {"kind": "first_packet", "probes": PROBES}},
    })
    setup_id = f"single-{solution}-{filter_}-c2"
    backend = NetnsBackend(prefix)
    deployment = backend.deploy(SetupSpec("single", solution, filter_, 2))
    try:
        host = deployment.hosts[0].netns
        sender, sink = deployment.container("c01"), deployment.container("c02")
        # The whitelists are stateless, so nothing else fills conntrack: plant one entry that the
        # first flush must delete.
        proc.run_in(host, ["conntrack", "-I", "-p", "udp", "-s", sender.ip, "-d", sink.ip, "--sport", "40000",
                           "--dport", "40001", "--timeout", "120", "-u", "SEEN_REPLY"])
        assert conntrack_entries(host) == 1
        out = tmp_path / f"results/raw/{setup_id}/fp/rep1"
        runner.measure(cfg, setup_id, "fp", 1, out)
        meta = read_meta(out)
        assert meta["deployment"]["reused"]
        assert conntrack_entries(host) == 0

        pipeline.parse_setup([out], {"first_packet": tmp_path / "fp.parquet", "interface_counters": tmp_path / "ic.parquet"})
        table = tables.read(tmp_path / "fp.parquet")
        assert list(table["flow"]) == list(range(1, PROBES + 1)) and set(table["pair"]) == {"c01-c02"}
        assert table["first_ms"].notna().all() and table["warm_ms"].notna().all()
        assert (table["first_ms"] > 0).all() and (table["warm_ms"] > 0).all()
        assert (table["remaining_entries"] == 0).all()

        probes = meta["workload_run"]["probes"]
        first_flush = {(f["cache"], f["where"]): f for f in probes[0]["flushed"]}
        assert first_flush[("conntrack", "h1")]["deleted"] == 1  # the planted entry
        assert {where for cache, where in first_flush if cache == "conntrack"} == {"h1", "c01", "c02"}
        if solution == "ovs":
            assert set(table["flushed"]) == {"conntrack,ovs_datapath_flows"}
            # the probe before installed datapath flows (ARP, ICMP both ways); each flush deleted them all
            datapath = [f for probe in probes[1:] for f in probe["flushed"] if f["cache"] == "ovs_datapath_flows"]
            assert len(datapath) == PROBES - 1
            assert all(f["deleted"] > 0 and f["remaining"] == 0 for f in datapath), datapath
        else:
            assert set(table["flushed"]) == {"conntrack"}

        # the monitor's counters of the same target: the probes crossed the sender's interface
        counters = tables.read(tmp_path / "ic.parquet").set_index(["netns", "ifname"])
        assert counters.loc[("c01", "e0"), "tx_packets"] >= 2 * PROBES
        assert counters.loc[("c01", "e0"), "tx_drops"] == 0
    finally:
        backend.teardown()
