"""workloads.base.sockets: the sockets of a process's network namespace read from /proc, which
wait_listening (is the server up?) and D-ITG's ending (have the senders' FINs arrived?) ask."""

from __future__ import annotations

import os
import socket

import pytest

from seconetbench.workloads.base import listening, sockets
from seconetbench.workloads.ditg import established_ports

pytestmark = pytest.mark.unit


def test_a_listening_and_an_established_socket_are_seen_and_go_when_closed():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    try:
        assert listening(os.getpid(), port) and (port, "0A") in sockets(os.getpid())
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        assert {port, client.getsockname()[1]} <= established_ports(os.getpid())
        client.close()
        accepted.close()
        assert port not in established_ports(os.getpid())  # the accepted end closed: not established
    finally:
        server.close()
    assert not listening(os.getpid(), port)


def test_a_udp_socket_counts_as_listening_only_for_udp():
    bound = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    bound.bind(("127.0.0.1", 0))
    port = bound.getsockname()[1]
    try:
        assert listening(os.getpid(), port, udp=True) and not listening(os.getpid(), port)
    finally:
        bound.close()
