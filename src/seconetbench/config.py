"""Load, merge and validate configurations before anything runs.

The JSON Schema (``data/config.schema.yaml``, also reachable as
``workflow/schemas/config.schema.yaml``) checks shapes, types and allowed names and fills in
defaults; :func:`validate` then checks what a schema cannot (references between keys). Every error
is a :class:`ConfigError` naming the key, the bad value and what is allowed.
"""

from __future__ import annotations

import copy
import hashlib
import os
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from seconetbench.errors import ConfigError

SCHEMA_RESOURCE = "config.schema.yaml"


# libyaml's loader when PyYAML was built with it: the schema is read once per measured target,
# and the pure-Python loader takes 0.1 s for it (harness overhead between two targets)
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_schema() -> dict[str, Any]:
    text = resources.files("seconetbench.data").joinpath(SCHEMA_RESOURCE).read_text()
    return yaml.load(text, Loader=SAFE_LOADER)  # noqa: S506 (a safe loader)


def schema_default(*keys: str) -> Any:
    """The schema's default of one key, e.g. ``schema_default("sweep", "multi", "solution")``."""
    node = load_schema()
    for key in keys:
        node = node["properties"][key]
    return copy.deepcopy(node["default"])


def with_defaults(instance: dict[str, Any], *keys: str) -> dict[str, Any]:
    """A copy of *instance* (the section at *keys*, e.g. ``("testbed", "vm")``) with the schema's
    defaults filled in, for code that may get a section of an unvalidated config."""
    root = load_schema()
    node = root
    for key in keys:
        node = node["properties"][key]
    result = copy.deepcopy(instance)
    _fill_defaults(result, node, root)
    return result


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge like Snakemake's --configfile: mappings merge recursively, anything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_files(*paths: str | os.PathLike) -> dict[str, Any]:
    """Read and deep-merge YAML config files in order, then validate the result."""
    merged: dict[str, Any] = {}
    for path in paths:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise ConfigError("--config", f"file '{path}' does not exist") from None
        except yaml.YAMLError as exc:
            raise ConfigError("--config", f"file '{path}' is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError("--config", f"file '{path}' must hold a mapping at the top level")
        merged = deep_merge(merged, data)
    return validate(merged)


def _key_path(path: Any) -> str:
    parts = [str(p) if not isinstance(p, int) else f"[{p}]" for p in path]
    return ".".join(parts).replace(".[", "[") or "<top level>"


def _describe(error: jsonschema.ValidationError) -> ConfigError:
    key = _key_path(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    value = error.instance
    if error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(value) - set(allowed)) if isinstance(value, dict) else []
        return ConfigError(key, f"unknown key(s) {extra}; allowed keys here: {allowed}")
    if error.validator in ("enum", "const"):
        allowed = schema.get("enum", [schema.get("const")])
        return ConfigError(key, f"value {value!r} is not allowed; use one of {allowed}")
    if error.validator == "oneOf":
        forms = []
        for branch in schema.get("oneOf", []):
            if branch.get("type") == "object":
                forms.append(f"a mapping with keys {sorted(branch.get('properties', {}))}")
            elif "enum" in branch:
                forms.append(f"one of {branch['enum']}")
            elif branch.get("type") == "array" and "enum" in branch.get("items", {}):
                forms.append(f"a list of {branch.get('minItems', 1)} or more of {branch['items']['enum']}")
            else:
                bounds = [f">= {branch['minimum']}" if "minimum" in branch else "",
                          f"<= {branch['maximum']}" if "maximum" in branch else ""]
                forms.append(f"an {branch.get('type')} {' '.join(b for b in bounds if b)}".strip())
        return ConfigError(key, f"value {value!r} is not allowed; use {' or '.join(forms)}")
    if error.validator == "required":
        return ConfigError(key, f"{error.message}; add it (see config/README.md)")
    description = schema.get("description", "")
    hint = f" ({description.strip()})" if description else ""
    return ConfigError(key, f"value {value!r}: {error.message}{hint}")


def _fill_defaults(instance: Any, schema: dict[str, Any], root: dict[str, Any]) -> None:
    """Insert schema defaults into mappings, recursively (jsonschema does not do this)."""
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].split("/")[-1]]
    if not isinstance(instance, dict):
        return
    for branch in schema.get("allOf", []):
        # if/then branches select a definition by the instance's kind.
        condition = branch.get("if", {}).get("properties", {})
        if all(instance.get(k) == v.get("const") for k, v in condition.items()):
            _fill_defaults(instance, branch["then"], root)
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            _fill_defaults(instance[key], sub, root)
    extra_schema = schema.get("additionalProperties")
    if isinstance(extra_schema, dict):
        for key, value in instance.items():
            if key not in schema.get("properties", {}):
                _fill_defaults(value, extra_schema, root)


def validate(config: dict[str, Any]) -> dict[str, Any]:
    """Return a validated copy of *config* with defaults filled in, or raise ConfigError."""
    schema = load_schema()
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        raise _describe(jsonschema.exceptions.best_match(errors))
    result = copy.deepcopy(config)
    _fill_defaults(result, schema, schema)

    defined = result["workloads"]
    for index, name in enumerate(result["sweep"]["workloads"]):
        if name not in defined:
            raise ConfigError(
                f"sweep.workloads[{index}]",
                f"workload {name!r} has no definition; define it under 'workloads' "
                f"or use one of {sorted(defined)}",
            )
    if not any(key in result["sweep"] for key in ("single", "multi")):
        raise ConfigError("sweep", "select at least one scenario: add 'single' (solutions, filters, "
                          "containers) or 'multi' (tunnels, filters, containers)")
    reps = result["repetitions"]
    _check_adaptive_minimum(reps)
    if isinstance(reps, dict) and reps["max"] < reps["min"]:
        raise ConfigError("repetitions.max", f"value {reps['max']} is below repetitions.min ({reps['min']}); "
                          "use max >= min")
    if result["testbed"]["backend"] == "ssh":
        _check_ssh_testbed(result)
    if result["testbed"]["backend"] == "vm":
        _check_vm_testbed(result)
    _check_technology_names(result["sweep"], result["testbed"]["backend"])
    _check_backend_capabilities(result)
    _check_payloads(result["workloads"])
    _check_cpu_pinning(result["testbed"])
    _check_compare(result.get("compare"))
    return result


def _check_compare(compare: dict[str, Any] | None) -> None:
    """compare: thresholds of metrics with a direction (stats.WORSE_WHEN, the one list; imported
    only for a config that compares); a run compared with itself says nothing. Whether the
    directories hold tables is checked when the workflow plans the comparison: a candidate may be
    this sweep's own results."""
    if compare and compare["thresholds"]:
        from seconetbench.stats import WORSE_WHEN

        for metric in compare["thresholds"]:
            if metric not in WORSE_WHEN:
                raise ConfigError(f"compare.thresholds.{metric}", f"no metric {metric!r}; use one of {sorted(WORSE_WHEN)}")
    if compare and compare["baseline"] in compare["candidates"]:
        index = compare["candidates"].index(compare["baseline"])
        raise ConfigError(f"compare.candidates[{index}]", f"value {compare['baseline']!r} is the baseline itself; "
                          "list the runs to compare with it, or name another baseline")


def _check_ssh_testbed(config: dict[str, Any]) -> None:
    """testbed.ssh: identity files and known host keys in place, the hosts' addresses
    unique and in 198.18.0.0/15, and enough of them for the sweep (remote/hosts.py)."""
    from seconetbench.remote import hosts
    from seconetbench.testbed.groups import testbed_groups

    ssh = config["testbed"].get("ssh") or {}
    if ssh.get("groups") and ssh.get("hosts"):
        raise ConfigError("testbed.ssh.groups", "is set together with testbed.ssh.hosts; list the hosts once: in "
                          "hosts (one testbed) or in groups (several independent host groups)")
    seen: dict[Any, str] = {}
    for group in testbed_groups(config):  # one without groups; also checks the prefix leaves room
        key = f"testbed.ssh.groups[{group.index - 1}]" if ssh.get("groups") else "testbed.ssh.hosts"
        parsed, _ = hosts.parse_ssh_testbed(group.testbed, key)
        hosts.check_sweep_fits(parsed, config["sweep"], key)
        # a host in two groups would carry two measurements at once
        for index, host in enumerate(parsed):
            for value in (host.name, (host.address, host.port)):
                if value in seen:
                    raise ConfigError(f"{key}[{index}]", f"host {host.name} ({host.address}:{host.port}) is also in "
                                      f"{seen[value]}; each host belongs to one group (and has a name of its own)")
                seen[value] = f"{key}[{index}]"


def _check_vm_testbed(config: dict[str, Any]) -> None:
    """testbed.vm: enough VMs for the sweep's multi-host setups."""
    from seconetbench.remote.hosts import hosts_needed
    from seconetbench.testbed.groups import testbed_groups

    testbed_groups(config)  # the run prefix leaves room for testbed.vm.groups
    needed, booted = hosts_needed(config["sweep"]), config["testbed"]["vm"]["hosts"]
    if booted < needed:
        raise ConfigError("testbed.vm.hosts", f"boots {booted} VM(s), and the multi-host setups need {needed} "
                          f"(sweep.multi.hosts); set testbed.vm.hosts to {needed} or lower sweep.multi.hosts")


def _check_backend_capabilities(config: dict[str, Any]) -> None:
    """Refuse a workload or option that testbed.backend cannot honour (backends.base.Capabilities),
    naming both and the backends that can."""
    from seconetbench.backends import BACKENDS
    from seconetbench.workloads import WORKLOADS

    backend = config["testbed"]["backend"]
    capabilities = BACKENDS.get(backend).capabilities

    def refuse(key: str, what: str, needs: tuple[str, ...], fix: str) -> None:
        lacking = capabilities.lacking(needs)
        if lacking:
            able = [name for name in BACKENDS.names() if not BACKENDS.get(name).capabilities.lacking(needs)]
            raise ConfigError(key, f"{what} needs capability {' and '.join(lacking)}, which testbed.backend "
                              f"{backend!r} lacks; {fix} or use backend {' or '.join(able) or '(none has it)'}")

    for index, name in enumerate(config["sweep"]["workloads"]):
        kind = config["workloads"][name]["kind"]
        refuse(f"sweep.workloads[{index}]", f"workload {name!r} (kind {kind})", WORKLOADS.get(kind).needs,
               "remove it from sweep.workloads")
    if config["testbed"].get("cpu_pinning"):
        refuse("testbed.cpu_pinning", "pinning the generators to this machine's CPUs", ("local_generators",),
               "remove testbed.cpu_pinning (on kubernetes: the kubelet's CPU manager)")


def _check_cpu_pinning(testbed: dict[str, Any]) -> None:
    """Pinned CPUs must be ones this process may run on (its affinity: the machine's CPUs, or
    fewer under a cpuset)."""
    from seconetbench.proc import cpu_list, pinned_cpus

    pinning = testbed.get("cpu_pinning")
    if not pinning:
        return
    available = os.sched_getaffinity(0)
    for role, value in pinning.items():
        missing = sorted(pinned_cpus(value) - available)
        if missing:
            raise ConfigError(f"testbed.cpu_pinning.{role}",
                              f"CPU(s) {cpu_list(missing)} are not available here; this machine offers CPUs "
                              f"{cpu_list(available)}: use those, or remove the key")


# Fewest repetitions adaptive repetitions may decide from: the order-statistic 95 % CI of the
# median exists from 6 values on (docs/statistics.md, "Stopping rule"). A literal, so that
# validation does not import the statistics (pandas); a test checks it against
# stats.min_values_for_ci(0.95), and convergence.MIN_REPETITIONS is this value.
MIN_ADAPTIVE_REPETITIONS = 6


def _check_adaptive_minimum(reps: Any) -> None:
    """Adaptive repetitions stop on the 95 % CI of the median over the repetitions, which needs
    a floor of values to exist at all."""
    if isinstance(reps, dict) and reps["min"] < MIN_ADAPTIVE_REPETITIONS:
        raise ConfigError(
            "repetitions.min",
            f"value {reps['min']} is below {MIN_ADAPTIVE_REPETITIONS}, the fewest repetitions whose order-statistic "
            f"95 % CI of the median exists (with 5, [min, max] covers only 93.75 %; docs/statistics.md); "
            f"use min >= {MIN_ADAPTIVE_REPETITIONS}, or a fixed count (repetitions: N) without a CI target")


# A container's path MTU is 1500 (veth, bridge); tunnels lower it but set the container MTU so
# that payloads up to 1370 bytes pass (see docs/multi-host.md).
CONTAINER_MTU = 1500
IP_UDP_HEADERS = 28


def _check_payloads(workloads: dict[str, Any]) -> None:
    for name, definition in workloads.items():
        if definition.get("kind") == "throughput" and definition.get("protocol") == "udp":
            limit = CONTAINER_MTU - IP_UDP_HEADERS
            if definition["payload_bytes"] > limit:
                raise ConfigError(
                    f"workloads.{name}.payload_bytes",
                    f"value {definition['payload_bytes']} exceeds what one UDP datagram carries on a "
                    f"{CONTAINER_MTU}-byte MTU ({limit}); use at most {limit}, or protocol tcp")


def _check_technology_names(sweep: dict[str, Any], backend: str) -> None:
    from seconetbench import technology

    lists = [("single", "solutions", "solution"), ("single", "filters", "filter"),
             ("multi", "tunnels", "tunnel"), ("multi", "filters", "filter")]
    for scenario, key, kind in lists:
        known = technology.names(kind)
        on_backend = technology.names(kind, backend=backend)
        for index, name in enumerate(sweep.get(scenario, {}).get(key, [])):
            if name not in known:
                raise ConfigError(f"sweep.{scenario}.{key}[{index}]",
                                  f"value {name!r} is not an implemented {kind}; use one of {on_backend}")
            if name not in on_backend:
                raise ConfigError(f"sweep.{scenario}.{key}[{index}]",
                                  f"{kind} {name!r} does not run on the {backend} backend (testbed.backend); "
                                  f"use one of {on_backend}, or another backend")
    if "multi" in sweep:
        for tunnel, suites in sweep["multi"].get("ciphers", {}).items():
            if tunnel not in sweep["multi"]["tunnels"]:
                raise ConfigError(f"sweep.multi.ciphers.{tunnel}", f"tunnel {tunnel!r} is not in sweep.multi.tunnels "
                                  f"{sweep['multi']['tunnels']}; add it there or remove this entry")
            offered = sorted(technology.get("tunnel", tunnel).SUITES)
            for index, suite in enumerate(suites):
                if suite not in offered:
                    raise ConfigError(f"sweep.multi.ciphers.{tunnel}[{index}]",
                                      f"value {suite!r} is not a suite of {tunnel}; use one of {offered or '(none: fixed)'}")
        name = sweep["multi"]["solution"]
        if name not in technology.names("solution"):
            raise ConfigError("sweep.multi.solution", f"value {name!r} is not an implemented solution; "
                              f"use one of {technology.names('solution')}")
    _check_implementations(sweep)


def _check_implementations(sweep: dict[str, Any]) -> None:
    """sweep.*.implementations names technologies of the scenario and implementations they offer
    (whether this machine has them is checked when the sweep is planned: sweep.check_pinned)."""
    from seconetbench import technology

    for scenario, key, kind in (("single", "solutions", "solution"), ("multi", "tunnels", "tunnel")):
        for name, value in sweep.get(scenario, {}).get("implementations", {}).items():
            where = f"sweep.{scenario}.implementations.{name}"
            if name not in sweep[scenario][key]:
                raise ConfigError(where, f"{kind} {name!r} is not in sweep.{scenario}.{key} "
                                  f"{sweep[scenario][key]}; add it there or remove this entry")
            offered = list(technology.get(kind, name).implementations)
            for choice in value if isinstance(value, list) else [value]:
                if choice != "auto" and choice not in offered:
                    raise ConfigError(where, f"value {choice!r} is not an implementation of {name}; use auto or "
                                      f"one of {offered}" + (" (measured side by side as a list)" if len(offered) > 1 else ""))


def run_prefix(config: dict[str, Any]) -> str:
    """The name prefix of every testbed object of this configuration's results directory."""
    prefix = config.get("testbed", {}).get("prefix")
    if prefix:
        return prefix
    results = os.path.realpath(config.get("results_dir", "results"))
    return "scn" + hashlib.sha256(results.encode()).hexdigest()[:4]
