"""The monitor samples real counters: host CPU, a busy process, and a namespace's interfaces."""

from __future__ import annotations

import csv
import subprocess

import psutil
import pytest

from seconetbench import proc
from seconetbench.backends.netns import NetnsBackend
from seconetbench.monitor import HOST_COLUMNS, NET_COLUMNS, PROCESS_COLUMNS, Monitor, wait_until_quiet
from seconetbench.spec import SetupSpec

pytestmark = pytest.mark.privileged


def rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_monitor_sees_a_busy_generator_and_its_traffic(prefix, tmp_path, tools_available):
    backend = NetnsBackend(prefix)
    deployment = backend.deploy(SetupSpec("single", "bridge", "none", 2), verify=False)
    try:
        sender, sink = deployment.containers
        # a real load: a flood ping between the pair, in the setup's namespace
        flood = subprocess.Popen(proc.in_netns(sender.netns, ["ping", "-f", "-q", "-w", "2", sink.ip]),
                                 stdout=subprocess.DEVNULL)
        namespaces = [c.netns for c in deployment.containers]
        with Monitor(tmp_path, namespaces, processes=lambda: [psutil.Process(flood.pid)],
                     interval_s=0.2, rescan_every=50) as monitor:
            flood.wait(timeout=10)
        assert monitor.samples >= 5
        host = rows(tmp_path / "monitor_host.csv")
        assert list(host[0]) == HOST_COLUMNS and len(host) >= 4
        assert all(0 <= float(r["cpu_idle_pct"]) <= 100 for r in host)
        busy = [float(r["cpu_pct"]) for r in rows(tmp_path / "monitor_processes.csv") if r["pid"] == str(flood.pid)]
        assert list(rows(tmp_path / "monitor_processes.csv")[0]) == PROCESS_COLUMNS
        assert busy and max(busy) > 0  # the flood ping used CPU
        net = rows(tmp_path / "monitor_net.csv")
        assert list(net[0]) == NET_COLUMNS
        sent = [int(r["tx_packets"]) for r in net if r["netns"] == sender.netns and r["ifname"] == sender.ifname]
        assert sent[-1] > sent[0]  # the counters moved with the traffic
    finally:
        backend.teardown()


def test_the_runner_waits_for_a_quiet_testbed_but_not_forever(prefix, tools_available):
    backend = NetnsBackend(prefix)
    deployment = backend.deploy(SetupSpec("single", "bridge", "none", 2), verify=False)
    try:
        hosts = backend.traffic_namespaces(deployment)
        assert hosts == [deployment.hosts[0].netns]
        quiet = wait_until_quiet(hosts, quiet_s=0.1, max_s=60)
        assert quiet["quiet"] is True and quiet["waited_s"] >= 0.1
        sender, sink = deployment.containers
        # traffic through the host's bridge that outlasts the wait: it must end not quiet, at max_s
        busy = subprocess.Popen(proc.in_netns(sender.netns, ["ping", "-i", "0.01", "-w", "60", sink.ip]),
                                stdout=subprocess.PIPE, text=True)
        try:
            assert busy.stdout.readline().startswith("PING")
            assert "bytes from" in busy.stdout.readline()  # the first reply: traffic flows now
            noisy = wait_until_quiet(hosts, quiet_s=0.3, max_s=0.6)
        finally:
            busy.terminate()
            busy.wait(timeout=10)
        assert noisy["quiet"] is False and noisy["waited_s"] >= 0.6
        assert wait_until_quiet(hosts, quiet_s=0, max_s=2) == {"waited_s": 0.0, "quiet": None}
    finally:
        backend.teardown()


def test_monitor_refuses_a_silly_interval(tmp_path):
    with pytest.raises(ValueError, match="0.1 to 60"):
        Monitor(tmp_path, [], processes=list, interval_s=0.01)
