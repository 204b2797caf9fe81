"""Which implementation runs: every decision with injected probe outcomes (the probe function is
a parameter of probes.results; its outcomes are the words this machine's kernel really said,
see tests/privileged/test_probes.py), both branches each."""

from __future__ import annotations

import json
import shlex

import pytest

from seconetbench import config, pipeline, preflight, probes
from seconetbench.backends.netns import NetnsBackend
from seconetbench.errors import ConfigError
from seconetbench.spec import SetupSpec
from seconetbench.sweep import candidate_setups, expand
from seconetbench.testbed import cleanup

pytestmark = pytest.mark.unit

PREFIX = "scnu0001"
# What `ip link add ... type wireguard` says on a kernel without WireGuard (recorded here).
NO_DEVICE = "Error: Unknown device type."


def outcome(**available: bool) -> probes.ProbeFunction:
    """A probe function whose results say *available* per technology (others: unavailable), and
    which counts its calls."""
    def probe(prefix: str) -> dict[str, probes.ProbeResult]:
        probe.calls += 1
        found = {}
        for name in probes.PROBES:
            ok = available.get(name, False)
            command = f"ip -n {prefix}-probe link add {prefix}-p type {name}"
            evidence = (probes.Evidence("hint", f"/sys/module/{name}", "absent"),
                        probes.Evidence("create", command, "ok" if ok else NO_DEVICE, ok))
            found[name] = probes.ProbeResult(name, ok, evidence)
        return found

    probe.calls = 0
    return probe


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """Install injected probe outcomes: machine(wireguard=True, ...), or machine(probe) for a
    probe function of its own. The run's state goes to tmp_path."""
    monkeypatch.setattr(cleanup, "STATE_ROOT", tmp_path)
    probes.forget()

    def install(probe: probes.ProbeFunction | None = None, **available: bool):
        probe = probe or outcome(**available)
        probes.results(PREFIX, probe=probe, fresh=True)
        return probe

    yield install
    probes.forget()


def sweep_config(implementations=None, tunnels=("wireguard",), single=None):
    multi = {"tunnels": list(tunnels), "filters": ["none"], "containers": [2]}
    if implementations is not None:
        multi["implementations"] = implementations
    sweep = {"multi": multi, "workloads": ["latency"]}
    if single:
        sweep["single"] = single
    return config.validate({"testbed": {"prefix": PREFIX}, "sweep": sweep, "workloads": {"latency": {"kind": "latency"}}})


def wireguard(implementation="auto"):
    return SetupSpec("multi", "bridge", "none", 2, tunnel="wireguard", hosts=2, implementation=implementation)


def test_auto_prefers_the_kernel_when_its_probe_passes(machine):
    machine(wireguard=True)
    tunnel = preflight.implementation_technology(wireguard())
    assert tunnel.resolved_implementation() == "kernel" and tunnel.implementation() == "kernel"
    needs = [r for r in tunnel.requires(wireguard()) if r.kind == "probe"]
    assert [r.name for r in needs] == ["wireguard"] and needs[0].missing() is None
    assert "wireguard-go" not in {r.name for r in tunnel.requires(wireguard())}


def test_auto_falls_back_to_userspace_when_the_probe_fails(machine):
    machine(wireguard=False)
    tunnel = preflight.implementation_technology(wireguard())
    assert tunnel.resolved_implementation() == "userspace"
    assert tunnel.implementation().startswith("userspace (")
    assert "wireguard-go" in {r.name for r in tunnel.requires(wireguard())}
    assert not [r for r in tunnel.requires(wireguard()) if r.kind == "probe"]


def test_a_pinned_kernel_the_machine_lacks_is_refused_with_the_probes_words(machine):
    machine(wireguard=False)
    cfg = sweep_config({"wireguard": "kernel"})
    with pytest.raises(ConfigError) as refused:
        expand(cfg, check_machine=True)
    message = str(refused.value)
    assert "sweep.multi.implementations.wireguard" in message
    assert f"kernel is not available here: `ip -n {PREFIX}-probe link add {PREFIX}-p type wireguard` said '{NO_DEVICE}'" in message
    assert "modprobe wireguard" in message and "or use auto/userspace" in message
    # the deploy refuses it too, before it removes or builds anything
    assert f"said '{NO_DEVICE}'" in preflight.unsupported_reason(wireguard("kernel"))
    assert preflight.pinned(cfg) == [{"key": "sweep.multi.implementations.wireguard", "technology": "wireguard",
                                      "implementation": "kernel", "refused": preflight.pinned_unavailable(wireguard("kernel"))}]


def test_a_pinned_kernel_the_machine_has_is_kept(machine):
    machine(wireguard=True)
    sweep = expand(sweep_config({"wireguard": "kernel"}), check_machine=True)
    assert [s.id for s in sweep.setups] == ["multi-wireguard-none-c2-ikernel"]


def test_pinned_userspace_runs_userspace_even_with_a_kernel_implementation(machine):
    machine(wireguard=True, ipsec=True)
    sweep = expand(sweep_config({"wireguard": "userspace"}), check_machine=False)
    (setup,) = sweep.setups
    assert setup.id == "multi-wireguard-none-c2-iuserspace"
    assert preflight.resolved_implementation(setup) == "userspace"
    assert preflight.pinned_unavailable(setup) is None


def test_a_list_measures_both_implementations_side_by_side_with_readable_ids(machine):
    machine(wireguard=True)
    cfg = sweep_config({"wireguard": ["kernel", "userspace"]}, tunnels=("wireguard", "vxlan"))
    ids = [s.id for s in candidate_setups(cfg)]
    assert ids == ["multi-wireguard-none-c2-ikernel", "multi-wireguard-none-c2-iuserspace", "multi-vxlan-none-c2"]
    for setup in candidate_setups(cfg):
        assert SetupSpec.parse(setup.id, multi_solution="bridge") == setup
        assert preflight.resolved_implementation(setup) == (setup.implementation if setup.tunnel == "wireguard" else "kernel")


def test_auto_ids_stay_as_they_were():
    assert wireguard().id == "multi-wireguard-none-c2"
    assert SetupSpec.parse("single-ovs-none-c2").implementation == "auto"
    assert SetupSpec.parse("single-ovs-none-c2-iuserspace-docker").implementation == "userspace"


@pytest.mark.parametrize("tunnel", ["ipip", "gre"])
def test_ip_in_ip_resolves_to_kernel_devices_or_tc_bpf(machine, tunnel):
    setup = SetupSpec("multi", "bridge", "none", 2, tunnel=tunnel, hosts=2)
    machine(**{tunnel: True})
    assert preflight.resolved_implementation(setup) == "kernel"
    machine(**{tunnel: False})
    assert preflight.resolved_implementation(setup) == "tc-bpf"
    pinned = SetupSpec("multi", "bridge", "none", 2, tunnel=tunnel, hosts=2, implementation="tc-bpf")
    assert pinned.id.endswith("-itc_bpf") and SetupSpec.parse(pinned.id, multi_solution="bridge") == pinned


def test_the_ovs_datapath_follows_the_probe_or_the_pin(machine):
    machine(ovs=True)
    assert preflight.implementation_technology(SetupSpec("single", "ovs", "none", 2)).datapath_type() == "system"
    pinned = SetupSpec("single", "ovs", "none", 2, implementation="userspace")
    assert preflight.implementation_technology(pinned).datapath_type() == "netdev"
    machine(ovs=False)
    assert preflight.implementation_technology(SetupSpec("single", "ovs", "none", 2)).datapath_type() == "netdev"
    refused = preflight.pinned_unavailable(SetupSpec("single", "ovs", "none", 2, implementation="kernel"))
    assert NO_DEVICE in refused and "modprobe openvswitch" in refused


# What `ip xfrm state add ... proto esp ... aead rfc4106(gcm(aes)) ...` said on the project's VM,
# whose kernel has xfrm_user but no ESP (tests/fixtures/probes/kernel-6.18-no-modules.json).
NO_ESP = "Error: Requested AEAD algorithm not found."


def esp_outcome(esp_works: bool) -> probes.ProbeFunction:
    """Injected probe outcomes that differ only in the IPsec probe: the kernel created the ESP
    state (xfrm) the probe asks for, or refused it with the VM's words. The evidence carries the
    probe's real command."""
    def probe(prefix: str) -> dict[str, probes.ProbeResult]:
        found = outcome()(prefix)
        (argv,) = probes.PROBES["ipsec"].commands(f"{prefix}-probe", f"{prefix}-p")
        evidence = (probes.Evidence("hint", "/sys/module/esp4", "present" if esp_works else "absent"),
                    probes.Evidence("create", shlex.join(argv), "ok" if esp_works else NO_ESP, esp_works))
        found["ipsec"] = probes.ProbeResult("ipsec", esp_works, evidence)
        return found

    return probe


def ipsec(implementation="auto"):
    return SetupSpec("multi", "bridge", "none", 2, tunnel="ipsec", hosts=2, implementation=implementation)


def test_ipsec_with_kernel_esp_runs_xfrm_and_preflight_shows_the_passing_probe(machine):
    machine(esp_outcome(esp_works=True))
    tunnel = preflight.implementation_technology(ipsec())
    assert tunnel.resolved_implementation() == "kernel" == preflight.resolved_implementation(ipsec())
    assert tunnel.implementation().startswith("kernel (strongSwan") and tunnel.implementation().endswith("XFRM)")
    assert "kernel-libipsec" not in tunnel.plugins()  # charon hands the SAs to the kernel
    needs = {(r.kind, r.name): r for r in tunnel.requires(ipsec())}
    assert needs[("probe", "ipsec")].missing() is None and ("kernel", "CONFIG_TUN") not in needs
    (argv,) = probes.PROBES["ipsec"].commands(f"{PREFIX}-probe", f"{PREFIX}-p")
    # meta.json's record and the identity column
    facts = preflight.implementation_facts(ipsec())
    assert (facts["requested"], facts["resolved"], facts["probe"]["kernel_available"]) == ("auto", "kernel", True)
    assert facts["probe"]["evidence"][-1] == {"probe": "create", "command": shlex.join(argv), "said": "ok",
                                              "passed": True}
    assert pipeline.implementation({"deployment": {"implementation": facts}}) == "kernel"
    # preflight: the technology, what auto resolves to, and the probe that decided
    row = {r["technology"]: r for r in preflight.implementations(probes.results())}["ipsec"]
    assert (row["resolved"], row["kernel_available"], row["offered"]) == ("kernel", True, ["kernel", "userspace"])
    assert row["probe"] == f"`{shlex.join(argv)}` said 'ok'"
    assert [e["probe"] for e in row["evidence"]] == ["hint", "create"]
    # pinning either implementation is kept
    assert preflight.pinned_unavailable(ipsec("kernel")) is None
    assert preflight.resolved_implementation(ipsec("userspace")) == "userspace"


def test_ipsec_without_kernel_esp_runs_libipsec_and_preflight_shows_the_refusal(machine):
    machine(esp_outcome(esp_works=False))
    tunnel = preflight.implementation_technology(ipsec())
    assert tunnel.resolved_implementation() == "userspace" == preflight.resolved_implementation(ipsec())
    assert tunnel.implementation().startswith("userspace (strongSwan")
    assert tunnel.implementation().endswith("kernel-libipsec)")
    assert tunnel.plugins()[0] == "kernel-libipsec"  # first, so that it, not kernel-netlink, takes the SAs
    needs = {(r.kind, r.name) for r in tunnel.requires(ipsec())}
    assert ("kernel", "CONFIG_TUN") in needs and ("probe", "ipsec") not in needs
    facts = preflight.implementation_facts(ipsec())
    assert (facts["requested"], facts["resolved"], facts["probe"]["kernel_available"]) == ("auto", "userspace", False)
    assert facts["probe"]["evidence"][-1]["said"] == NO_ESP and facts["probe"]["evidence"][-1]["passed"] is False
    assert pipeline.implementation({"deployment": {"implementation": facts}}) == "userspace"
    row = {r["technology"]: r for r in preflight.implementations(probes.results())}["ipsec"]
    assert (row["resolved"], row["kernel_available"]) == ("userspace", False)
    assert "xfrm state add" in row["probe"] and row["probe"].endswith(f"said '{NO_ESP}'")
    assert row["evidence"][-1]["said"] == NO_ESP
    # a pinned kernel is refused with the probe's words and the fix, before any deploy
    refused = preflight.pinned_unavailable(ipsec("kernel"))
    assert f"said '{NO_ESP}'" in refused and "modprobe esp4 xfrm_user" in refused and "or use auto/userspace" in refused
    with pytest.raises(ConfigError, match="sweep.multi.implementations.ipsec': kernel is not available here"):
        expand(sweep_config({"ipsec": "kernel"}, tunnels=("ipsec",)), check_machine=True)


def test_vxlan_without_the_kernels_is_excluded_with_the_probes_words(machine):
    machine(vxlan=False)
    sweep = expand(sweep_config(tunnels=("vxlan",)), check_machine=True)
    assert not sweep.setups and NO_DEVICE in sweep.excluded[0].reason


def test_the_implementation_is_part_of_the_reuse_fingerprint(machine):
    backend = NetnsBackend(PREFIX)
    machine(wireguard=True)
    kernel = backend.fingerprint(wireguard(), True)
    machine(wireguard=False)
    assert backend.fingerprint(wireguard(), True) != kernel


def test_the_deploy_records_what_ran_and_the_identity_column_reads_it(machine):
    machine(wireguard=False)
    facts = preflight.implementation_facts(wireguard())
    assert facts["requested"] == "auto" and facts["resolved"] == "userspace"
    assert facts["probe"]["kernel_available"] is False and facts["probe"]["evidence"][-1]["said"] == NO_DEVICE
    assert pipeline.implementation({"deployment": {"implementation": facts}}) == "userspace"
    assert pipeline.implementation({"deployment": {}}) == "unknown"


def test_the_run_probes_once_and_reads_its_cache_file(machine, tmp_path):
    (tmp_path / PREFIX).mkdir()  # the run has state: the cache goes there
    probe = outcome(vxlan=True)
    first = probes.results(PREFIX, probe=probe, fresh=True)
    assert probe.calls == 1 and json.loads((tmp_path / PREFIX / probes.CACHE_FILE).read_text())["results"]
    probes.results(PREFIX, probe=probe)
    probes.forget()  # another process of the same run
    assert probes.results(PREFIX, probe=probe) == first and probe.calls == 1
    cached = json.loads((tmp_path / PREFIX / probes.CACHE_FILE).read_text())
    cached["machine"]["modules_sha256"] = "another-module-set"  # e.g. a module loaded since
    (tmp_path / PREFIX / probes.CACHE_FILE).write_text(json.dumps(cached))
    probes.forget()
    probes.results(PREFIX, probe=probe)
    assert probe.calls == 2


def test_without_run_state_no_cache_file_is_left(machine, tmp_path):
    machine(vxlan=True)
    assert not (tmp_path / PREFIX).exists()


def test_probe_results_survive_json():
    result = outcome(wireguard=False)(PREFIX)["wireguard"]
    assert probes.ProbeResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    assert result.explain() == f"`ip -n {PREFIX}-probe link add {PREFIX}-p type wireguard` said '{NO_DEVICE}'"


@pytest.mark.parametrize(("implementations", "message"), [
    ({"wireguard": "kernal"}, "use one of ['auto', 'kernel', 'userspace', 'tc-bpf'] or a list"),
    ({"vxlan": "userspace"}, "not an implementation of vxlan; use auto or one of ['kernel']"),
    ({"tinc": "userspace"}, "tunnel 'tinc' is not in sweep.multi.tunnels"),
    ({"wireguard": ["auto", "kernel"]}, "value 'auto' is not allowed"),
    ({"wireguard": ["kernel"]}, "implementations.wireguard"),
])
def test_bad_implementation_keys_name_the_key_and_the_fix(implementations, message):
    with pytest.raises(ConfigError, match="implementations") as error:
        sweep_config(implementations, tunnels=("wireguard", "vxlan"))
    assert message in str(error.value)


def test_single_host_implementations_key(machine):
    machine(ovs=False)
    cfg = sweep_config(single={"solutions": ["ovs", "bridge"], "filters": ["none"], "containers": [2],
                               "implementations": {"ovs": ["kernel", "userspace"]}})
    assert [s.id for s in candidate_setups(cfg) if s.scenario == "single"] == [
        "single-ovs-none-c2-ikernel", "single-ovs-none-c2-iuserspace", "single-bridge-none-c2"]
    with pytest.raises(ConfigError, match="sweep.single.implementations.ovs': kernel is not available here"):
        expand(cfg, check_machine=True)


def test_figures_say_what_ran_each_setup():
    from seconetbench.figures import basic
    from tests.unit import tablegen

    latency = tablegen.latency_table(setups=["multi-wireguard-none-c4", "multi-vxlan-none-c4"])
    chart = basic.latency_boxplot(latency, tablegen.summary_table(latency))
    labels = {row["setup_label"] for dataset in chart.to_dict()["datasets"].values() for row in dataset
              if "setup_label" in row}
    # tests/unit/test_figures_labels.py checks every figure
    assert labels == {"multi-vxlan-none-c4 (kernel)", "multi-wireguard-none-c4 (userspace)"}


def test_preflight_lists_each_technology_with_its_resolution_and_evidence():
    found = outcome(vxlan=True)(PREFIX)
    rows = {r["technology"]: r for r in preflight.implementations(found)}
    assert set(rows) == {"ovs", "ipip", "gre", "ipsec", "vxlan", "wireguard"}
    assert (rows["vxlan"]["resolved"], rows["vxlan"]["kernel_available"]) == ("kernel", True)
    assert (rows["wireguard"]["resolved"], rows["wireguard"]["offered"]) == ("userspace", ["kernel", "userspace"])
    assert rows["ipip"]["resolved"] == "tc-bpf" and rows["ovs"]["kind"] == "solution"
    assert rows["wireguard"]["evidence"][-1] == {"probe": "create", "said": NO_DEVICE, "passed": False,
                                                 "command": f"ip -n {PREFIX}-probe link add {PREFIX}-p type wireguard"}
    assert NO_DEVICE in rows["wireguard"]["probe"]
