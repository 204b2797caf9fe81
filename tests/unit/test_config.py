"""Configuration: the shipped configs validate, defaults fill in, bad input names key and fix."""

from __future__ import annotations

import copy

import pytest
import yaml

from seconetbench import config
from seconetbench.errors import ConfigError

pytestmark = pytest.mark.unit

from tests.conftest import REPO  # noqa: E402

SHIPPED = sorted((REPO / "config").glob("*.yaml"))


def minimal() -> dict:
    return {
        "sweep": {"single": {"solutions": ["bridge"], "filters": ["none"], "containers": [2]},
                  "workloads": ["latency"]},
        "workloads": {"latency": {"kind": "latency"}},
    }


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    validated = config.load_files(path)
    assert validated["sweep"]["workloads"]


def test_defaults_are_filled_in():
    validated = config.validate(minimal())
    assert validated["repetitions"] == 3
    assert validated["testbed"]["backend"] == "netns"
    assert validated["testbed"]["reuse_deployment"] is True
    assert validated["workloads"]["latency"]["count"] == 20
    assert validated["results_dir"] == "results"


def test_throughput_defaults():
    cfg = minimal()
    cfg["workloads"]["tp"] = {"kind": "throughput", "payload_bytes": 653}
    validated = config.validate(cfg)
    assert validated["workloads"]["tp"]["duration_s"] == 10
    assert validated["workloads"]["tp"]["generator"] == "auto"


@pytest.mark.parametrize(
    ("mutate", "key", "hint"),
    [
        (lambda c: c["sweep"]["single"].update(filters=["ebpfx"]), "sweep.single.filters[0]", "none"),
        (lambda c: c["sweep"]["single"].update(containers=[3]), "sweep.single.containers[0]", "multiple"),
        (lambda c: c["sweep"]["single"].update(containers=[0]), "sweep.single.containers[0]", "minimum"),
        (lambda c: c.update(repetitions="three"), "repetitions", "integer"),
        # below the floor of the order-statistic 95 % CI (docs/statistics.md): the fix is named
        (lambda c: c.update(repetitions={"min": 5, "max": 20, "ci_halfwidth_pct": 5}), "repetitions.min",
         "use min >= 6"),
        (lambda c: c.update(colour="red"), "<top level>", "colour"),
        (lambda c: c["sweep"].update(workloads=["nosuch"]), "sweep.workloads[0]", "latency"),
        (lambda c: c["workloads"]["latency"].update(count=-1), "workloads.latency.count", "minimum"),
        (lambda c: c["workloads"]["latency"].update(cuont=5), "workloads.latency", "cuont"),
        (lambda c: c["workloads"].update(x={"kind": "teleport"}), "workloads.x.kind", "teleport"),
        (lambda c: c["testbed"].update(prefix="abc") if "testbed" in c else c.update(testbed={"prefix": "abc"}),
         "testbed.prefix", "scn"),
    ],
)
def test_bad_values_name_the_key(mutate, key, hint):
    cfg = copy.deepcopy(minimal())
    mutate(cfg)
    with pytest.raises(ConfigError) as caught:
        config.validate(cfg)
    message = str(caught.value)
    assert f"'{key}'" in message
    assert hint in message


def test_deep_merge_merges_mappings_and_replaces_lists():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 1}
    merged = config.deep_merge(base, {"a": {"y": [3]}, "c": 2})
    assert merged == {"a": {"x": 1, "y": [3]}, "b": 1, "c": 2}
    assert base["a"]["y"] == [1, 2]


def test_full_yaml_on_top_of_quick_config(tmp_path):
    validated = config.load_files(REPO / "config/config.yaml", REPO / "config/full.yaml")
    assert 32 in validated["sweep"]["single"]["containers"]


# What each shipped config's name says it measures: the scenarios it plans, nothing inherited.
SCENARIOS = {"config.yaml": {"single"}, "docker.yaml": {"single"}, "kubernetes.yaml": {"single"},
             "scaling.yaml": {"single"}, "multi-host.yaml": {"multi"}, "full.yaml": {"single", "multi"},
             "policy.yaml": {"single"}, "kernel-paths.yaml": {"single", "multi"}}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_a_shipped_config_measures_what_its_name_says(path):
    from seconetbench.sweep import expand

    sweep = expand(config.load_files(path))
    assert {s.scenario for s in sweep.setups} == SCENARIOS[path.name]
    # and writes a results directory of its own
    assert config.load_files(path)["results_dir"] == {"config.yaml": "results/quick"}.get(path.name, f"results/{path.stem}")


def test_multi_host_yaml_plans_no_single_host_setup():
    from seconetbench.sweep import expand

    setups = expand(config.load_files(REPO / "config/multi-host.yaml")).setups
    assert setups and not [s.id for s in setups if s.scenario == "single"]


def test_unreadable_files_are_reported(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sweep: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load_files(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        config.load_files(tmp_path / "missing.yaml")
    bad.write_text(yaml.safe_dump([1, 2]))
    with pytest.raises(ConfigError, match="mapping"):
        config.load_files(bad)


def test_run_prefix_depends_on_results_dir():
    a = config.run_prefix({"results_dir": "/tmp/a"})
    b = config.run_prefix({"results_dir": "/tmp/b"})
    assert a != b and a.startswith("scn") and len(a) == 7
    assert config.run_prefix({"testbed": {"prefix": "scnx"}}) == "scnx"


def test_unimplemented_technologies_are_named_with_the_known_ones():
    cfg = minimal()
    cfg["sweep"]["single"]["solutions"] = ["bridge", "warpdrive"]
    with pytest.raises(ConfigError, match=r"'sweep.single.solutions\[1\]'.*'warpdrive'.*\[.*'bridge'"):
        config.validate(cfg)
    cfg = minimal()
    cfg["sweep"]["multi"] = {"tunnels": ["carrier_pigeon"], "filters": ["none"], "containers": [2]}
    with pytest.raises(ConfigError, match=r"'sweep.multi.tunnels\[0\]'.*not an implemented tunnel"):
        config.validate(cfg)


def test_extra_rules_default_and_multi_defaults():
    validated = config.validate(minimal())
    assert validated["sweep"]["single"]["extra_rules"] == [0]
