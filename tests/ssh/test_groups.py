"""Two testbed groups of namespace lab hosts (testbed.ssh.groups): a sweep through Snakemake
measures on both, records each target's group, keeps a round on one group and pairs effects
within it; a group whose host fails the health check leaves the rotation and its targets go to
the other group."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from seconetbench import config as configuration
from seconetbench import tables
from seconetbench.testbed import cleanup
from seconetbench.testbed.groups import group_prefix
from seconetbench.testbed.labhosts import LabHosts
from tests.conftest import REPO

pytestmark = [pytest.mark.ssh, pytest.mark.privileged, pytest.mark.slow]

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


@pytest.fixture
def four_hosts(prefix, ssh_tools):
    """Four lab hosts: two testbed groups of two (lab1, lab2 and lab3, lab4)."""
    with LabHosts(prefix, count=4) as lab:
        yield lab


def groups_config(lab: LabHosts, workdir: Path, repetitions: int = 2) -> Path:
    """Two setups (vxlan and its baseline, routing) x one short latency workload, in blocked rounds."""
    config = {
        "results_dir": "results",
        "repetitions": repetitions,
        "run_order": {"mode": "blocked", "seed": 1},
        "testbed": lab.testbed_config(groups=2),
        "sweep": {"multi": {"tunnels": ["routing", "vxlan"], "filters": ["none"], "containers": [2], "hosts": 2,
                            "solution": "bridge"},
                  "workloads": ["latency"]},
        "workloads": {"latency": {"kind": "latency", "count": 5, "interval_s": 0.05}},
    }
    path = workdir / "groups.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def sweep(workdir: Path, config: Path, cores: int = 2) -> subprocess.CompletedProcess:
    argv = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", str(cores),
            "--configfile", str(config)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=1500)


def group_prefixes(workdir: Path) -> list[str]:
    run = configuration.run_prefix({"results_dir": str(workdir / "results")})
    return [group_prefix(run, index, 2) for index in (1, 2)]


def test_a_sweep_over_two_groups_measures_on_both_and_blocks_its_rounds_by_group(four_hosts, tmp_path):
    result = sweep(tmp_path, groups_config(four_hosts, tmp_path))
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    latency = tables.read(tmp_path / "results" / "tables" / "latency.parquet")
    deployment = tables.read(tmp_path / "results" / "tables" / "deployment.parquet")
    # both groups measured; each round on one group: round 1 on g1, round 2 on g2
    for frame in (latency, deployment):
        assert dict(frame[["rep", "group"]].drop_duplicates().itertuples(index=False)) == {1: "g1", 2: "g2"}
    meta = json.loads((tmp_path / "results" / "raw" / "multi-vxlan-none-c2-ssh" / "latency" / "rep2" / "meta.json")
                      .read_text())
    first, second = group_prefixes(tmp_path)
    assert meta["group"] == {"name": "g2", "index": 2, "of": 2, "prefix": second, "hosts": ["lab3", "lab4"]}
    assert set(meta["deployment"]["hosts"]) == {"lab3", "lab4"} and meta["deployment"]["prefix"] == second
    # the effect of vxlan over its baseline pairs both rounds, each within its group
    summary = tables.read(tmp_path / "results" / "tables" / "summary.parquet")
    effect = summary[(summary["setup"] == "multi-vxlan-none-c2-ssh") & (summary["metric"] == "rtt_ms")].iloc[0]
    assert effect["pairing"] == "paired" and effect["ratio_n"] == 2
    # the workflow's teardown removed both groups' testbeds, on this machine and on the hosts
    for group in (first, second):
        assert not any(cleanup.leftovers(group).values())
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert first not in netns and second not in netns


def test_a_group_that_fails_its_health_check_leaves_the_rotation_and_the_other_measures_its_rounds(
        four_hosts, tmp_path):
    four_hosts.kill_sshd(3)  # a host of group g2
    result = sweep(tmp_path, groups_config(four_hosts, tmp_path))
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert "testbed group g2 (lab3, lab4) is out of the rotation: host lab3" in result.stderr
    latency = tables.read(tmp_path / "results" / "tables" / "latency.parquet")
    assert set(latency["group"]) == {"g1"} and set(latency["rep"]) == {1, 2}
    # the teardown names the unreachable host of g2 and cleans g1
    assert "lab3" in result.stderr
    assert not any(cleanup.leftovers(group_prefixes(tmp_path)[0]).values())
    four_hosts.start_sshd(3)
    clean = subprocess.run([sys.executable, "-m", "seconetbench", "clean", "--backend", "ssh", "--config",
                            str(tmp_path / "groups.yaml"), "--prefix",
                            configuration.run_prefix({"results_dir": str(tmp_path / "results")})],
                           capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stderr
    for group in group_prefixes(tmp_path):
        assert not any(cleanup.leftovers(group).values())
