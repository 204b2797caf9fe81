"""Bad input of every kind is refused before anything runs, with an error that names the key.

Hypothesis mutates a valid config: wrong types, unknown keys, unknown technology names, absurd
numbers. validate() must either accept the result (and then it is fully valid) or raise
ConfigError whose message names a key and says what to do; never another exception.
"""

from __future__ import annotations

import copy
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seconetbench import config
from seconetbench.errors import ConfigError
from seconetbench.sweep import expand

pytestmark = pytest.mark.unit

BASE = {
    "repetitions": 2,
    "sweep": {"single": {"solutions": ["bridge"], "filters": ["none", "iptables"], "containers": [2, 8]},
              "workloads": ["latency", "tp"]},
    "workloads": {"latency": {"kind": "latency", "count": 5},
                  "tp": {"kind": "throughput", "payload_bytes": 653, "duration_s": 2}},
    "testbed": {"reuse_deployment": True},
}

# Places a mutation can hit: (path to a mapping, key).
PLACES = [
    ((), "repetitions"), ((), "results_dir"), ((), "testbed"), ((), "sweep"), ((), "workloads"),
    (("testbed",), "reuse_deployment"), (("testbed",), "prefix"), (("testbed",), "lock_timeout_s"),
    (("sweep",), "workloads"), (("sweep",), "single"),
    (("sweep", "single"), "solutions"), (("sweep", "single"), "filters"), (("sweep", "single"), "containers"),
    (("sweep", "single"), "extra_rules"),
    (("workloads",), "latency"), (("workloads",), "tp"),
    (("workloads", "latency"), "count"), (("workloads", "latency"), "interval_s"), (("workloads", "latency"), "kind"),
    (("workloads", "tp"), "payload_bytes"), (("workloads", "tp"), "protocol"), (("workloads", "tp"), "duration_s"),
    (("workloads", "tp"), "generator"),
]

VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.lists(st.sampled_from(["bridge", "nosuch", "iptables", 0, 10000, None]), max_size=3),
    st.dictionaries(st.sampled_from(["kind", "colour", "count"]), st.sampled_from(["latency", 3, "x"]), max_size=2),
    st.sampled_from([0, 10000, 3, -2, 1e9, "udp", "teleport", [0], [10000], [3], 65507]),
)

MUTATIONS = st.lists(
    st.tuples(st.sampled_from(PLACES), st.sampled_from(["set", "delete", "add_unknown"]), VALUES),
    min_size=1, max_size=3)


def mutate(cfg: dict, mutations) -> dict:
    cfg = copy.deepcopy(cfg)
    for (path, key), action, value in mutations:
        target = cfg
        for step in path:
            target = target.get(step) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            continue
        if action == "set":
            target[key] = value
        elif action == "delete":
            target.pop(key, None)
        else:
            target[f"unknown_{key}"] = value
    return cfg


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MUTATIONS)
def test_mutated_configs_are_accepted_or_refused_by_key(mutations):
    cfg = mutate(BASE, mutations)
    try:
        validated = config.validate(cfg)
    except ConfigError as error:
        message = str(error)
        assert re.match(r"config key '[^']+': ", message), message
        assert error.key
        return
    # accepted: then everything downstream must work with it
    sweep = expand(validated)
    assert sweep.targets()


@pytest.mark.parametrize(("mutation", "key"), [
    (lambda c: c["sweep"]["single"].update(containers=[0]), "sweep.single.containers[0]"),
    (lambda c: c["sweep"]["single"].update(containers=[10000]), "sweep.single.containers[0]"),
    (lambda c: c["workloads"]["tp"].update(protocol="udp", payload_bytes=1473), "workloads.tp.payload_bytes"),
    (lambda c: c["sweep"]["single"].update(filters=["ovs_magic"]), "sweep.single.filters[0]"),
    (lambda c: c.update(repetitions=0), "repetitions"),
])
def test_the_issue_cases_are_refused_with_key_and_fix(mutation, key):
    cfg = copy.deepcopy(BASE)
    mutation(cfg)
    with pytest.raises(ConfigError) as caught:
        config.validate(cfg)
    assert caught.value.key == key
    assert re.search(r"use|allowed|minimum|maximum|at most", str(caught.value))


def test_udp_payload_that_fits_is_accepted():
    cfg = copy.deepcopy(BASE)
    cfg["workloads"]["tp"].update(protocol="udp", payload_bytes=1472)
    assert config.validate(cfg)["workloads"]["tp"]["payload_bytes"] == 1472
