"""The vm backend's configuration and its place among the backends, without booting anything."""

from __future__ import annotations

import pytest

from seconetbench import config, probes
from seconetbench.backends import BACKENDS
from seconetbench.backends.base import BaseBackend
from seconetbench.backends.ssh import SshBackend
from seconetbench.backends.vm import netem_args, vm_prefix, vm_settings
from seconetbench.errors import ConfigError
from seconetbench.sweep import expand
from seconetbench.testbed.naming import Names

pytestmark = pytest.mark.unit


def vm_config(**vm) -> dict:
    return {"sweep": {"multi": {"tunnels": ["wireguard"], "filters": ["none"], "containers": [2], "hosts": 2,
                               "implementations": {"wireguard": "kernel"}},
                      "workloads": ["latency"]},
            "workloads": {"latency": {"kind": "latency"}},
            "testbed": {"backend": "vm", "vm": vm}}


def test_the_vm_backend_is_the_ssh_backend_on_hosts_it_boots():
    backend_class = BACKENDS.get("vm")
    assert issubclass(backend_class, SshBackend) and backend_class.name == "vm"
    # its deploy, reuse and host-side steps are the ssh backend's, not copies
    assert backend_class.deploy_or_reuse is BaseBackend.deploy_or_reuse
    assert backend_class.on_host is SshBackend.on_host and backend_class.check_isolation is SshBackend.check_isolation
    assert not backend_class.capabilities.technologies_here
    assert backend_class.clean_remote.__func__ is not BaseBackend.clean_remote.__func__  # `clean --backend vm` ends VMs


def test_the_vms_prefix_is_a_valid_run_prefix_apart_from_the_run_it_serves():
    prefix = vm_prefix("scnab12")
    Names(prefix)  # valid: cleanup finds what carries it
    assert prefix != "scnab12" and not prefix.startswith("scnab12")
    assert prefix == vm_prefix("scnab12") and prefix != vm_prefix("scnab13")
    # never a config-made run prefix ('scn' + hex digits)
    assert prefix[3] == "v"


def test_vm_settings_fill_the_schemas_defaults_and_keep_what_is_given():
    settings = vm_settings({"vm": {"cpus": 2, "underlay": {"rate_mbit": 100}}})
    assert settings["cpus"] == 2 and settings["underlay"] == {"rate_mbit": 100, "delay_ms": None, "loss_pct": None}
    assert settings["memory_mb"] == 1024 and settings["accel"] == "auto"
    # a backend made without a validated config gets what validation would have filled in
    assert vm_settings({}) == config.validate(vm_config())["testbed"]["vm"]


def test_too_few_vms_for_the_multi_host_setups_are_refused_naming_the_key():
    with pytest.raises(ConfigError) as raised:
        config.validate(vm_config(hosts=1))
    assert raised.value.key == "testbed.vm.hosts" and "need 2" in str(raised.value)


def test_an_unknown_accelerator_is_refused_by_the_schema():
    with pytest.raises(ConfigError, match="accel"):
        config.validate(vm_config(accel="hvf"))


def test_a_pinned_kernel_implementation_is_left_to_the_vms_not_refused_by_this_machine(monkeypatch):
    # this machine's probe says no kernel WireGuard; the sweep must not care: the VMs' kernels decide
    lacking = {name: probes.ProbeResult(name, kernel_available=False, evidence=())
               for name in probes.PROBES}
    monkeypatch.setattr(probes, "results", lambda *args, **kwargs: dict(lacking))
    sweep = expand(config.validate(vm_config()), check_machine=True)
    assert [s.id for s in sweep.setups] == ["multi-wireguard-none-c2-ikernel-vm"] and not sweep.excluded
    netns = vm_config()
    netns["testbed"] = {"backend": "netns"}
    with pytest.raises(ConfigError, match="kernel is not available here"):
        expand(config.validate(netns), check_machine=True)


def test_netem_arguments_say_delay_and_loss_as_tc_reads_them():
    assert netem_args({"delay_ms": 5, "loss_pct": None}) == ["netem", "delay", "5ms"]
    assert netem_args({"delay_ms": 2.5, "loss_pct": 1}) == ["netem", "delay", "2.5ms", "loss", "1%"]


def test_the_tunnel_checks_capture_the_wire_in_the_vms_namespace_not_inside_a_vm():
    from seconetbench.backends.vm import MONITOR_IF, VmBackend
    from seconetbench.spec import SetupSpec
    from seconetbench.testbed.vms import vnet_netns

    backend = VmBackend("scnab12", {"vm": {"hosts": 2}})
    deployment = backend.plan(SetupSpec.parse("multi-ipsec-none-c2-ikernel-vm", multi_solution="bridge"))
    underlay = deployment.underlay
    assert underlay.switch_netns == vnet_netns(vm_prefix("scnab12")) and underlay.capture_ifname == MONITOR_IF
    assert underlay.capture_access.local_netns == underlay.switch_netns  # on this machine
    assert underlay.ports == {"vm1": "d1", "vm2": "d2"}
    # the containers are reached over each VM's SSH connection
    assert {c.access.kind for c in deployment.containers} == {"ssh"}
    assert backend.plan(SetupSpec.parse("single-ovs-none-c2-ikernel-vm")).underlay is None
