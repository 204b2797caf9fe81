#!/usr/bin/env python3
"""What a command costs over SSH (issue 13): commands per second of `true` run over one
SshChannel (OpenSSH ControlMaster: a new channel on the host's one connection per command)
against a local `ip netns exec <ns> true` in a namespace of its own, interleaved round by round
in one run; and, for scale, what a new connection (TCP + SSH handshake) costs, which the master
saves on every command.

The host is a namespace lab machine with its own sshd (testbed/labhosts.py), reached through its
control network as the tests reach it. Its sshd log proves that all commands used one connection.
Needs root; takes the host lock (waits while a sweep or a privileged test measures).
Usage: bench/ssh_channel.py [--rounds 10] [--per-round 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from parity import host_lock  # bench/ is on sys.path when this script runs

from seconetbench import proc
from seconetbench.remote.ssh import SshChannel, control_dir
from seconetbench.testbed import cleanup, netlink
from seconetbench.testbed.labhosts import LabHosts

PREFIX = "scnbss"


def seconds(command, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        command()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=50)
    parser.add_argument("--connects", type=int, default=5, help="new connections timed (handshake cost)")
    parser.add_argument("--lock-timeout", type=float, default=3600)
    args = parser.parse_args()
    with host_lock(args.lock_timeout):
        cleanup.remove(PREFIX)  # an interrupted earlier run of this bench
        try:
            with LabHosts(PREFIX, count=1) as lab:
                local = f"{PREFIX}-bn"
                netlink.create_netns(local)
                channel = SshChannel(lab.hosts[0], lab.options, control_dir(PREFIX))
                connects = []
                for _ in range(args.connects):
                    connects.append(seconds(channel.open, 1))
                    channel.close()
                channel.open()
                try:
                    over_ssh = over_netns = 0.0
                    for _ in range(args.rounds):
                        over_ssh += seconds(lambda: channel.run(["true"]), args.per_round)
                        over_netns += seconds(lambda: proc.run_in(local, ["true"]), args.per_round)
                    connections = lab.sshd_log(1).read_text().count("Accepted publickey")
                finally:
                    channel.close()
        finally:
            cleanup.remove(PREFIX)
    total = args.rounds * args.per_round
    ssh_rate, netns_rate = total / over_ssh, total / over_netns
    print(f"commands: {total} each way, interleaved in {args.rounds} rounds")
    print(f"over one SSH connection (ControlMaster): {ssh_rate:8.1f} commands/s ({1000 / ssh_rate:.2f} ms each)")
    print(f"local ip netns exec:                     {netns_rate:8.1f} commands/s ({1000 / netns_rate:.2f} ms each)")
    print(f"ratio local / ssh:                       {netns_rate / ssh_rate:8.1f}x")
    print(f"new connection (TCP + SSH handshake, what each command would cost without the master): "
          f"median {statistics.median(connects) * 1000:.0f} ms of {len(connects)}")
    # every connect above plus the measuring one; a new handshake per command would add `total`
    expected = args.connects + 1
    print(f"connections sshd accepted: {connections} (expected {expected})")
    return 0 if connections == expected else 1


if __name__ == "__main__":
    sys.exit(main())
