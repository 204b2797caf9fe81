"""The host agent, as a real agent process on this machine speaking JSON lines: its operations,
what it refuses, how failures reach the controller (HostError naming the host), what happens to
its processes when the controller goes, and the bundle that ships it to a host."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading

import psutil
import pytest

import seconetbench
from seconetbench.errors import HostError
from seconetbench.remote import agent as agent_module
from seconetbench.remote.agent import (
    AgentClient,
    build_bundle,
    local_argv,
    remote_argv,
    ship,
)

pytestmark = pytest.mark.unit


@pytest.fixture
def state_root(tmp_path):
    return tmp_path / "state"


@pytest.fixture
def agent(state_root):
    client = AgentClient("h1", local_argv(state_root, "h1"), address="192.0.2.10")
    yield client
    client.close()


def end_by_pid(pid: int, create_time: float) -> None:
    """End a process this test started, if it is still that process."""
    try:
        process = psutil.Process(pid)
        if abs(process.create_time() - create_time) < 0.01:
            process.kill()
            process.wait(5)
    except psutil.NoSuchProcess:
        pass


def remote_failure(client: AgentClient, op: str, **args) -> HostError:
    with pytest.raises(HostError) as caught:
        client.call(op, **args)
    return caught.value


# ---------------------------------------------------------------------- operations


def test_hello_says_version_python_kernel_and_pid(agent, state_root):
    assert agent.hello["ready"] is True
    assert agent.hello["version"] == seconetbench.__version__
    assert agent.hello["kernel"] == os.uname().release
    assert agent.hello["pid"] == agent.process.pid
    assert agent.hello["state_root"] == str(state_root)
    assert agent.call("hello")["pid"] == agent.process.pid


def test_run_returns_exit_code_stdout_stderr_and_takes_stdin(agent):
    result = agent.call("run", argv=["sh", "-c", "read line; echo got $line; echo oops >&2; exit 3"],
                        input="hello\n")
    assert result == {"returncode": 3, "stdout": "got hello\n", "stderr": "oops\n"}


def test_run_with_check_raises_the_remote_tool_failure(agent):
    failure = remote_failure(agent, "run", argv=["sh", "-c", "echo broken >&2; exit 2"], check=True)
    assert failure.remote_type == "ToolFailed"
    assert "exit 2" in failure.remote_message and "broken" in failure.remote_message
    assert str(failure).startswith("host h1 (192.0.2.10): run failed: ToolFailed:")


def test_run_past_its_timeout_fails_and_the_agent_goes_on(agent):
    failure = remote_failure(agent, "run", argv=["sleep", "30"], timeout=0.2)
    assert failure.remote_type == "ToolFailed" and "did not finish within 0.2 s" in failure.remote_message
    assert agent.call("run", argv=["true"])["returncode"] == 0


def test_spawn_alive_kill(agent, state_root):
    pid = agent.call("spawn", argv=["sleep", "300"])
    assert agent.call("alive", pid=pid) is True
    assert (state_root / "agent" / "pids" / f"{pid}.json").exists()
    assert agent.call("kill", pid=pid) is True
    assert agent.call("alive", pid=pid) is False
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not (state_root / "agent" / "pids" / f"{pid}.json").exists()
    assert agent.call("kill", pid=pid) is False  # already ended: nothing to do


def test_spawn_writes_output_files_and_wait_returns_the_exit_code(agent, tmp_path):
    out, err = tmp_path / "logs" / "out.txt", tmp_path / "logs" / "err.txt"
    pid = agent.call("spawn", argv=["sh", "-c", "echo to-out; echo to-err >&2; exit 7"],
                     stdout=str(out), stderr=str(err))
    assert agent.call("wait", pid=pid, timeout=30) == 7
    assert out.read_text() == "to-out\n" and err.read_text() == "to-err\n"


def test_spawn_pins_to_the_cpus_asked_for(agent):
    cpu = min(os.sched_getaffinity(0))
    pid = agent.call("spawn", argv=["sleep", "300"], cpus=[cpu])
    try:
        assert os.sched_getaffinity(pid) == {cpu}
    finally:
        agent.call("kill", pid=pid)


def test_wait_past_its_timeout_raises_and_the_process_keeps_running(agent):
    pid = agent.call("spawn", argv=["sleep", "300"])
    failure = remote_failure(agent, "wait", pid=pid, timeout=0.1)
    assert failure.remote_type == "TimeoutError" and f"pid {pid} still runs" in failure.remote_message
    assert agent.call("alive", pid=pid) is True
    agent.call("kill", pid=pid)


def test_kill_of_a_process_the_agent_did_not_start_is_refused(agent):
    foreign = subprocess.Popen(["sleep", "300"])
    try:
        failure = remote_failure(agent, "kill", pid=foreign.pid)
        assert failure.remote_type == "InvalidValueError"
        assert f"pid {foreign.pid} was not started by an agent on h1" in failure.remote_message
        assert foreign.poll() is None, "the agent ended a process it did not start"
        assert agent.call("alive", pid=foreign.pid) is False  # not one of the agent's processes
    finally:
        foreign.kill()
        foreign.wait()


def test_a_recorded_pid_reused_by_another_process_is_not_ended(agent, state_root):
    records = state_root / "agent" / "pids"
    pid = agent.call("spawn", argv=["sleep", "300"])
    record = json.loads((records / f"{pid}.json").read_text())
    agent.call("kill", pid=pid)
    stranger = subprocess.Popen(["sleep", "300"])
    try:  # as if the number had been reused: a record of ours from a minute ago, another process now
        reused = {**record, "pid": stranger.pid, "create_time": psutil.Process(stranger.pid).create_time() - 60}
        (records / f"{stranger.pid}.json").write_text(json.dumps(reused))
        assert agent.call("kill", pid=stranger.pid) is False  # its start time differs: not ours
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_files_round_trip_in_base64_with_their_mode(agent, tmp_path):
    data = bytes(range(256)) * 3
    path = tmp_path / "deep" / "dir" / "blob"
    written = agent.call("write_file", path=str(path), data_b64=base64.b64encode(data).decode(), mode=0o600)
    assert written == len(data) and path.read_bytes() == data
    assert path.stat().st_mode & 0o777 == 0o600
    assert base64.b64decode(agent.call("read_file", path=str(path))) == data


def test_remove_tree_only_below_the_state_root(agent, state_root, tmp_path):
    inside = state_root / "scnx-h1" / "tunnel"
    inside.mkdir(parents=True)
    (inside / "key").write_text("secret")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for path in (outside, state_root, state_root / ".." / "elsewhere", "/"):
        failure = remote_failure(agent, "remove_tree", path=str(path))
        assert failure.remote_type == "InvalidValueError" and "not below the agent's state root" in failure.remote_message
    assert outside.exists() and state_root.exists()
    assert agent.call("remove_tree", path=str(state_root / "scnx-h1")) is True
    assert not (state_root / "scnx-h1").exists()
    assert agent.call("remove_tree", path=str(state_root / "scnx-h1")) is False


def test_remote_exceptions_come_back_as_host_errors_with_type_message_and_traceback(agent, tmp_path):
    missing = tmp_path / "no-such-file"
    failure = remote_failure(agent, "read_file", path=str(missing))
    assert failure.host == "h1" and failure.remote_type == "FileNotFoundError"
    assert str(missing) in failure.remote_message and "read_bytes" in failure.traceback_tail
    unknown = remote_failure(agent, "format_disk")
    assert unknown.remote_type == "UnknownNameError" and "spawn" in unknown.remote_message
    assert remote_failure(agent, "run", no_such_arg=1).remote_type == "TypeError"
    assert agent.call("hello")["ready"] is True  # the agent survives every one of them


def test_call_runs_only_allow_listed_package_functions(agent, state_root):
    assert set(agent.call("call", function="seconetbench.testbed.cleanup:leftovers",
                          args={"prefix": "scnzz1"})) >= {"netns", "processes"}
    for function in ("os:system", "seconetbench.testbed.netlink:delete_netns", "run"):
        failure = remote_failure(agent, "call", function=function, args={})
        assert failure.remote_type == "InvalidValueError" and "not callable through the agent" in failure.remote_message
    failure = remote_failure(agent, "seconetbench.testbed.cleanup:remove")  # not as an op either
    assert failure.remote_type == "InvalidValueError"


def test_the_agent_keeps_run_state_under_its_own_root(agent, state_root):
    pid = agent.call("spawn", argv=["sleep", "300"], prefix="scnzz1", detach=True)
    created = psutil.Process(pid).create_time()
    try:
        assert (state_root / "scnzz1" / "pids" / f"{pid}.json").exists()
        removed = agent.call("call", function="seconetbench.testbed.cleanup:remove", args={"prefix": "scnzz1"})
        assert removed["processes"] == [str(pid)]
        assert not (state_root / "scnzz1").exists()
        assert agent.call("alive", pid=pid) is False
    finally:
        end_by_pid(pid, created)


def test_concurrent_callers_each_get_their_own_reply(agent):
    results: dict[int, str] = {}

    def caller(n: int) -> None:
        results[n] = agent.call("run", argv=["echo", str(n)])["stdout"]

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {n: f"{n}\n" for n in range(8)}


# ---------------------------------------------------------------------- failures and lifetime


def test_an_agent_that_dies_is_a_host_error_naming_the_host(state_root):
    client = AgentClient("h2", local_argv(state_root, "h2"), address="192.0.2.11")
    try:
        os.kill(client.process.pid, signal.SIGKILL)
        failure = remote_failure(client, "hello")
        assert str(failure).startswith("host h2 (192.0.2.11): the agent ended during 'hello' (exit code -9)")
        assert "SSH connection" in failure.fix
        assert remote_failure(client, "hello") is failure  # later calls fail the same way at once
    finally:
        client.close()


def test_an_agent_that_cannot_start_reports_its_stderr(tmp_path):
    argv = [sys.executable, "-c", "import sys; sys.stderr.write('python3-psutil is missing\\n'); sys.exit(3)"]
    with pytest.raises(HostError) as caught:
        AgentClient("h3", argv)
    message = str(caught.value)
    assert message.startswith("host h3: the agent ended before it was ready (exit code 3)")
    assert "python3-psutil is missing" in message


def test_a_line_that_is_no_json_is_a_host_error(tmp_path):
    with pytest.raises(HostError, match="no JSON object: b'Welcome to the lab"):
        AgentClient("h4", [sys.executable, "-c", "print('Welcome to the lab!')"])


def test_closing_the_agent_ends_the_processes_it_started(state_root):
    client = AgentClient("h1", local_argv(state_root, "h1"))
    pids = [client.call("spawn", argv=["sleep", "300"]) for _ in range(2)]
    started = {pid: psutil.Process(pid).create_time() for pid in pids}
    agent_pid = client.process.pid
    client.close()  # stdin closes: the agent ends its children, then itself
    assert client.process.returncode == 0 and not psutil.pid_exists(agent_pid)
    for pid in pids:
        assert not psutil.pid_exists(pid), f"pid {pid} outlived the agent"
    assert not list((state_root / "agent" / "pids").glob("*.json"))
    for pid, created in started.items():
        end_by_pid(pid, created)  # nothing to do when the test passes


def test_a_terminated_agent_ends_its_processes_too(state_root):
    client = AgentClient("h1", local_argv(state_root, "h1"))
    pid = client.call("spawn", argv=["sleep", "300"])
    os.kill(client.process.pid, signal.SIGTERM)
    client.process.wait(30)
    assert not psutil.pid_exists(pid), "the agent left its child running after SIGTERM"
    client.close()


def test_detached_processes_outlive_the_agent_and_a_new_agent_can_end_them(state_root):
    client = AgentClient("h1", local_argv(state_root, "h1"))
    daemon = client.call("spawn", argv=["sleep", "300"], detach=True)
    created = psutil.Process(daemon).create_time()
    try:
        client.close()
        assert psutil.Process(daemon).is_running(), "a detached process ended with the agent"
        with AgentClient("h1", local_argv(state_root, "h1")) as restarted:  # a controller restart
            assert restarted.call("alive", pid=daemon) is True
            assert restarted.call("kill", pid=daemon) is True
            assert restarted.call("alive", pid=daemon) is False
    finally:
        end_by_pid(daemon, created)


def test_calls_after_close_fail_naming_the_host(state_root):
    client = AgentClient("h1", local_argv(state_root, "h1"))
    client.close()
    client.close()  # idempotent
    with pytest.raises(HostError, match="host h1: the agent connection is closed"):
        client.call("hello")


# ---------------------------------------------------------------------- shipping


def test_the_bundle_has_the_package_and_pyroute2_without_caches_and_a_stable_hash(tmp_path):
    first, bundle = build_bundle(tmp_path / "a")
    second, again = build_bundle(tmp_path / "b")
    assert first == second and bundle.read_bytes() == again.read_bytes()
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
    assert "seconetbench/remote/agent.py" in names and "pyroute2/__init__.py" in names
    assert "seconetbench/data" in {n.rsplit("/", 1)[0] for n in names if n.startswith("seconetbench/data/")}
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_the_shipped_copy_runs_as_an_agent(tmp_path):
    content_hash, bundle = build_bundle(tmp_path)
    installed = tmp_path / content_hash
    with tarfile.open(bundle) as tar:
        tar.extractall(installed, filter="data")
    argv = remote_argv(str(installed), str(tmp_path / "state"), "h1")
    assert argv[:3] == ["env", f"PYTHONPATH={installed}", "python3"]
    assert argv[3:] == ["-m", "seconetbench.remote.agent", "--state-root", str(tmp_path / "state"), "--host", "h1"]
    argv[2] = sys.executable  # this interpreter has psutil; a host gets python3-psutil from Debian
    with AgentClient("h1", argv) as shipped:
        assert shipped.hello["package"] == str(installed / "seconetbench")
        assert shipped.call("run", argv=["echo", "ok"])["stdout"] == "ok\n"


class ThisMachine:
    """A channel to this machine: what SshChannel does over SSH (run, put), done here."""

    class host:
        name = "h1"

    def run(self, remote, input=None, timeout=None, check=True):
        return subprocess.run(list(remote), input=input, timeout=timeout, check=check, capture_output=True, text=True)

    def put(self, local, remote, mode=0o600):
        shutil.copyfile(local, remote)
        os.chmod(remote, mode)


def test_ship_installs_once_per_content_hash_with_the_marker_last(tmp_path):
    remote_root = tmp_path / "var-lib"
    argv = ship(ThisMachine(), remote_root=str(remote_root))
    installed = remote_root / argv[1].split("/")[-1]
    assert argv[1] == f"PYTHONPATH={installed}" and argv[-1] == "h1"
    assert argv[argv.index("--state-root") + 1] == "/run/seconetbench/hosts/h1"
    assert (installed / agent_module.COMPLETE_MARKER).exists()
    assert (installed / "seconetbench" / "remote" / "agent.py").exists()
    assert sorted(p.name for p in remote_root.iterdir()) == [installed.name]  # no upload or partial left
    inode = installed.stat().st_ino
    assert ship(ThisMachine(), remote_root=str(remote_root)) == argv
    assert installed.stat().st_ino == inode, "a complete copy was shipped again"
    (installed / agent_module.COMPLETE_MARKER).unlink()  # a copy that broke off before its marker
    assert ship(ThisMachine(), remote_root=str(remote_root)) == argv
    assert (installed / agent_module.COMPLETE_MARKER).exists()
    assert installed.stat().st_ino != inode, "an incomplete copy was kept"
