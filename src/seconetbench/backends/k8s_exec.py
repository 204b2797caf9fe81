"""Run a command in a pod through the API server (the official client's exec stream), copying
its stdout and stderr and returning its exit code; also usable as a program:

    python -m seconetbench.backends.k8s_exec --kubeconfig K --context C -n NS POD -- ARGV...

This is how the kubernetes backend's containers are entered (:class:`PodAccess`): the workloads
start it as a local process, register it by pid and wait for it, as they do with ``ip netns exec``.

The remote command must not outlive its local launcher. An exec whose client goes away keeps
running in the container (the runtime does not signal it), so the command runs under a small
shell guard: the command starts in the background, and a watcher reads the exec's stdin, which
this program holds open and never writes. When the launcher ends, by SIGTERM, SIGKILL or a
crash, its connection closes, the remote stdin reaches EOF and the watcher sends SIGTERM (then
SIGKILL after a grace period) to the command. tests/kubernetes proves it.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from seconetbench.backends.base import ContainerAccess
from seconetbench.errors import ToolFailed

GRACE_S = 2
# $1.. = the command. Background jobs of a non-interactive sh read /dev/null, so the watcher
# gets the exec's stdin through fd 3 explicitly.
GUARD = ('exec 3<&0; "$@" & child=$!; '
         '( cat <&3 >/dev/null; kill -TERM "$child" 2>/dev/null; sleep ' + str(GRACE_S) + '; '
         'kill -KILL "$child" 2>/dev/null ) & watcher=$!; exec 3<&-; '
         'wait "$child"; code=$?; kill "$watcher" 2>/dev/null; exit "$code"')


@dataclasses.dataclass(frozen=True)
class PodAccess(ContainerAccess):
    """A pod, entered through the API server: this program as the local launcher."""

    kind = "pod"
    kubeconfig: str
    context: str  # "" = the kubeconfig's current context
    namespace: str
    pod: str

    def argv(self, argv: Sequence[str]) -> list[str]:
        return [sys.executable, "-m", "seconetbench.backends.k8s_exec", "--kubeconfig", self.kubeconfig,
                "--context", self.context, "-n", self.namespace, self.pod, "--", *argv]


def guarded(argv: Sequence[str]) -> list[str]:
    """*argv* wrapped so that it ends when the exec's stdin closes (see the module docstring)."""
    return ["sh", "-c", GUARD, "seconetbench-guard", *argv]


def api(kubeconfig: str | None, context: str | None):
    """A CoreV1Api for *context* of *kubeconfig* (None: $KUBECONFIG / ~/.kube/config, current context)."""
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig, context=context))


def open_stream(core, namespace: str, pod: str, argv: Sequence[str], container: str | None = None,
                stdin: bool = False, binary: bool = False):
    """The exec stream of *argv* in *pod*; *binary*: its output as bytes, not decoded as UTF-8."""
    from kubernetes.stream import stream

    return stream(core.connect_get_namespaced_pod_exec, pod, namespace, command=list(argv),
                  container=container, stderr=True, stdout=True, stdin=stdin, tty=False,
                  _preload_content=False, binary=binary)


def run(core, namespace: str, pod: str, argv: Sequence[str], timeout_s: float = 30,
        container: str | None = None) -> tuple[int, str, str]:
    """Run *argv* in *pod* and wait for it: (exit code, stdout, stderr). For short commands
    (probes, facts); the remote command is guarded, so a timeout ends it as well."""
    response = open_stream(core, namespace, pod, guarded(argv), container, stdin=True)
    out, err = [], []
    deadline = time.monotonic() + timeout_s
    try:
        while response.is_open():
            if time.monotonic() > deadline:
                raise ToolFailed(argv, None, f"pod {namespace}/{pod}", "".join(err), timeout_s=timeout_s)
            response.update(timeout=min(1.0, max(0.01, deadline - time.monotonic())))
            if response.peek_stdout():
                out.append(response.read_stdout())
            if response.peek_stderr():
                err.append(response.read_stderr())
        code = response.returncode
    finally:
        response.close()
    return (code if code is not None else -1), "".join(out), "".join(err)


def _copy(response: Any) -> int:
    """The command's output, byte for byte (a binary stream such as the policy prober's records
    must arrive as it was written), until it ends; its exit code."""
    while response.is_open():
        response.update(timeout=1)
        if response.peek_stdout():
            sys.stdout.buffer.write(response.read_stdout())
            sys.stdout.buffer.flush()
        if response.peek_stderr():
            sys.stderr.buffer.write(response.read_stderr())
            sys.stderr.buffer.flush()
    code = response.returncode
    return code if code is not None else 255


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seconetbench.backends.k8s_exec", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig")
    parser.add_argument("--context")
    parser.add_argument("-n", "--namespace", required=True)
    parser.add_argument("-c", "--container")
    parser.add_argument("pod")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (put it after --)")
    # SIGTERM from the workload: leave at once; closing the socket ends the remote command.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    response = open_stream(api(args.kubeconfig, args.context), args.namespace, args.pod, guarded(command),
                           args.container, stdin=True, binary=True)
    try:
        return _copy(response)
    finally:
        response.close()


if __name__ == "__main__":
    sys.exit(main())
