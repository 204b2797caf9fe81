"""The host agent runs and spawns inside a network namespace of the test's own, and its cleanup
call removes the run's namespaces and the processes recorded under its prefix, detached ones
included (what `seconetbench clean` does on a host of the ssh backend)."""

from __future__ import annotations

import os

import psutil
import pytest

from seconetbench.errors import HostError
from seconetbench.remote.agent import AgentClient, local_argv
from seconetbench.testbed import netlink

pytestmark = pytest.mark.privileged


def netns_of(pid: int) -> int:
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def test_run_and_spawn_in_a_namespace_and_clean_it_up(prefix, tmp_path):
    namespace = f"{prefix}-a1"
    netlink.create_netns(namespace)
    inode = netlink.netns_inode(namespace)
    state_root = tmp_path / "state"
    daemon = None
    try:
        with AgentClient("h1", local_argv(state_root, "h1")) as agent:
            links = agent.call("run", argv=["ip", "-o", "link", "show"], netns=namespace, check=True)
            assert [line.split(":")[1].strip() for line in links["stdout"].splitlines()] == ["lo"]
            seen = agent.call("run", argv=["readlink", "/proc/self/ns/net"], netns=namespace, check=True)
            assert seen["stdout"].strip() == f"net:[{inode}]"

            worker = agent.call("spawn", argv=["sleep", "300"], netns=namespace, prefix=prefix)
            assert netns_of(worker) == inode
            assert (state_root / prefix / "pids" / f"{worker}.json").exists()
            assert agent.call("kill", pid=worker) is True

            with pytest.raises(HostError) as caught:
                agent.call("run", argv=["true"], netns=f"{prefix}-none", check=True)
            assert caught.value.remote_type == "ToolFailed" and f"in h1:{prefix}-none" in caught.value.remote_message

            daemon = agent.call("spawn", argv=["sleep", "300"], netns=namespace, prefix=prefix, detach=True)
            created = psutil.Process(daemon).create_time()
        assert psutil.Process(daemon).is_running(), "a detached process ended with its agent"

        with AgentClient("h1", local_argv(state_root, "h1")) as restarted:
            left = restarted.call("call", function="seconetbench.testbed.cleanup:leftovers", args={"prefix": prefix})
            assert left["netns"] == [namespace] and left["processes"] == [str(daemon)]
            removed = restarted.call("call", function="seconetbench.testbed.cleanup:remove", args={"prefix": prefix})
            assert removed["netns"] == [namespace] and str(daemon) in removed["processes"]
            assert restarted.call("alive", pid=daemon) is False
        assert namespace not in netlink.list_netns()
        assert not (state_root / prefix).exists()
    finally:
        if daemon is not None and psutil.pid_exists(daemon):
            process = psutil.Process(daemon)
            if abs(process.create_time() - created) < 0.01:
                process.kill()
        if namespace in netlink.list_netns():
            netlink.delete_netns(namespace)
