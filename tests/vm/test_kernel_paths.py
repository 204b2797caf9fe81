"""The kernel data paths on VM hosts of Debian's stock kernel: `snakemake --configfile
config/kernel-paths.yaml` (the vm backend) builds kernel WireGuard, xfrm IPsec, IPIP, GRE and
the OVS kernel datapath in the VMs, proves each deployment's whitelist and carries traffic
through it; every table says the kernel's implementation ran, netem on the underlay shows in the
round trips, and the VMs are gone afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from seconetbench import config as configuration
from seconetbench import tables
from seconetbench.backends.vm import vm_prefix
from seconetbench.testbed import cleanup
from tests.conftest import REPO

pytestmark = [pytest.mark.vm, pytest.mark.privileged, pytest.mark.slow]

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
KERNEL_PATHS = REPO / "config" / "kernel-paths.yaml"
DELAY_MS = 5


def test_the_kernel_paths_config_runs_every_kernel_implementation_in_the_vms(vm_image, tmp_path):
    overlay = tmp_path / "here.yaml"
    # and netem on the underlay: each VM delays what it sends by 5 ms (a positive control of the
    # emulation, and the multi-host round trips must show it)
    overlay.write_text(yaml.safe_dump({"results_dir": str(tmp_path / "results"),
                                       "testbed": {"vm": {"underlay": {"delay_ms": DELAY_MS}}}}))
    argv = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "2",
            "--configfile", str(KERNEL_PATHS), str(overlay)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=2400)
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    results = tmp_path / "results"
    expected = {"single-ovs-none-c2-ikernel-vm", "single-ovs-ovs-c2-ikernel-vm", "multi-wireguard-none-c2-ikernel-vm",
                "multi-ipsec-none-c2-ikernel-vm", "multi-ipip-none-c2-ikernel-vm", "multi-gre-none-c2-ikernel-vm"}
    latency = tables.read(results / "tables" / "latency.parquet")
    throughput = tables.read(results / "tables" / "throughput.parquet")
    deployment = tables.read(results / "tables" / "deployment.parquet")
    for frame in (latency, throughput, deployment):
        assert set(frame["setup"]) == expected
        assert set(frame["implementation"]) == {"kernel"}
    assert latency["received"].all()
    multi = latency["scenario"] == "multi"
    assert (latency.loc[multi, "rtt_ms"] >= 2 * DELAY_MS).all()  # through both VMs' netem
    assert (latency.loc[~multi, "rtt_ms"] < 2 * DELAY_MS).any()  # a single host's pairs never cross it
    assert (throughput["throughput_mbps"] > 0).all()
    # the whitelist of every deployment was proven (from inside the containers), on a known accelerator
    assert deployment["verification_passed"].all()
    assert set(deployment["accelerator"]) <= {"kvm", "tcg"} and deployment["accelerator"].notna().all()
    # what the tunnels' own code says ran on the hosts, not only what was asked for
    for meta_file in results.glob("raw/multi-*/latency/rep1/meta.json"):
        meta = json.loads(meta_file.read_text())
        assert meta["deployment"]["tunnel"]["implementation"].startswith("kernel"), meta_file
        assert meta["deployment"]["vm"]["accel"] in ("kvm", "tcg")
        kernels = {host["kernel"] for host in meta["deployment"]["hosts"].values()}
        assert kernels == {vm_image["kernel_release"]}, kernels
    # the workflow's end stopped the VMs and removed their network: nothing of the run is left
    run = configuration.run_prefix({"results_dir": str(results)})
    assert not any(cleanup.leftovers(run).values())
    assert not any(cleanup.leftovers(vm_prefix(run)).values())
