"""The policy-update prober: timestamped UDP and TCP probes between two containers, both ways.

Run as a script inside a container (``python3 prober.py --ip SELF --peer PEER > RECORDS``), one
per end of a pair; it uses the standard library only, so any python3 runs it. Each prober

- listens on its own address: UDP ``port`` (probes and the stream), TCP ``port + 1`` (connection
  attempts: accepted and closed at once; the attempt resets its end) and TCP ``port + 2`` (the
  established stream);
- every tick (``--rate-hz``, default 1000) sends to the peer: one UDP datagram from a **fresh
  socket** (a new source port, so a new flow for conntrack), one datagram of the **UDP stream**
  (one connected socket: one 5-tuple for the whole run), one **TCP connection attempt** (a new
  non-blocking connect, abandoned after ``--timeout-ms``, before the kernel would retransmit
  the SYN) and one 16-byte message on the **TCP stream** (one connection, set up as soon as the
  peer can be reached, TCP_NODELAY);
- writes one fixed-size record per event to its **stdout**, and nothing else: what it sent (with
  the send time) and what it received from the peer (the sender's time, carried in the probe, and
  the kernel's receive timestamp, SO_TIMESTAMPNS). Stdout is the one channel every backend carries
  back to the controller (the launcher's stdout file: ``ip netns exec``, ``docker exec``, ssh,
  the pod exec stream), so the controller reads the records the same way everywhere, while they
  are written; they are written (unbuffered) at the end of every tick's loop;
- prints ``ready {json}`` on **stderr** once its listeners are bound (the controller waits for
  it) and ``done {json}`` when it ends (SIGTERM, ``--max-s``, or its stdout's reader gone):
  counts and its achieved resolution.

Send times are CLOCK_REALTIME read just before the send call; receive times are the kernel's
(SO_TIMESTAMPNS) where the socket gives one, else CLOCK_REALTIME after the receive call (named in
``done``). Between sends the prober drains its sockets without blocking and sleeps until the next
tick (clock_nanosleep), so its resolution is the tick, not the 1 ms of epoll's timeout.

Record format (little-endian, :data:`RECORD`, 24 bytes): kind u8, flag u8, 2 pad bytes, seq u32,
t_send_ns i64, t_event_ns i64. See :data:`KINDS`.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import select
import signal
import socket
import struct
import sys
import time

RECORD = struct.Struct("<BBxxIqq")
MESSAGE = struct.Struct("<B3xIq")  # what a probe carries: kind, seq, the sender's send time (ns)

# record kinds: sent by this prober (t_event 0; flag 1 = the send call succeeded) ...
SENT_UDP_NEW, SENT_UDP_STREAM, SENT_TCP_STREAM = 1, 2, 3
# ... a connection attempt's outcome (flag 1 connected, 0 abandoned at the timeout, 2 refused or
# failed; t_event = when it was decided) ...
TCP_NEW_RESULT = 4
# ... and the peer's probes received here (t_send from the probe, t_event = receive time)
GOT_UDP_NEW, GOT_UDP_STREAM, GOT_TCP_STREAM = 5, 6, 7
TCP_STREAM_CONNECTED = 8  # the stream's connection is up (seq = attempts it took)
KINDS = {SENT_UDP_NEW: "sent udp new", SENT_UDP_STREAM: "sent udp stream", SENT_TCP_STREAM: "sent tcp stream",
         TCP_NEW_RESULT: "tcp new result", GOT_UDP_NEW: "got udp new", GOT_UDP_STREAM: "got udp stream",
         GOT_TCP_STREAM: "got tcp stream", TCP_STREAM_CONNECTED: "tcp stream connected"}
DEFAULT_PORT = 47990  # UDP; TCP attempts at +1, the TCP stream at +2

# Linux's SO_TIMESTAMPNS (and its control message); Python 3.11 does not name it. The value of
# the common architectures (x86, arm, arm64, riscv, ...).
SO_TIMESTAMPNS = 35
TIMESPEC = struct.Struct("@qq")


def kernel_time(ancdata) -> int | None:
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= TIMESPEC.size:
            seconds, nanoseconds = TIMESPEC.unpack_from(data)
            return seconds * 1_000_000_000 + nanoseconds
    return None


def timestamped(sock: socket.socket) -> bool:
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        return True
    except OSError:
        return False


def reset_on_close(sock: socket.socket) -> None:
    """close() sends RST: no TIME_WAIT for a thousand attempts a second."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class Prober:
    def __init__(self, ip: str, peer: str, port: int, rate_hz: float, timeout_ms: float, out: int):
        self.ip, self.peer, self.port = ip, peer, port
        self.interval_ns = int(1e9 / rate_hz)
        self.timeout_ns = int(timeout_ms * 1e6)
        self.out = out  # a file descriptor: the records' stream
        self.buffer = bytearray()
        self.poll = select.epoll()
        self.handlers: dict[int, object] = {}
        self.kernel_stamps = {"udp": False, "tcp": False}
        self.counts = {name: 0 for name in KINDS.values()}
        self.gaps: list[int] = []  # between consecutive ticks (ns): the achieved resolution
        self.seq = 0
        self.pending: dict[int, tuple[socket.socket, int, int]] = {}  # fd -> (socket, seq, t_send)
        self.stream: socket.socket | None = None  # our TCP stream to the peer, once connected
        self.stream_attempt: tuple[socket.socket, int] | None = None
        self.stream_attempts = 0
        self.stream_buffer = {}  # fd of an accepted stream -> bytes not yet a whole message
        self.stopping = False

        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.kernel_stamps["udp"] = timestamped(self.udp)
        self.udp.bind((ip, port))
        self.udp.setblocking(False)
        self.watch(self.udp, self.on_udp)
        self.attempts = self.listener(port + 1, self.on_attempt)
        self.streams = self.listener(port + 2, self.on_stream_accept)
        self.udp_stream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp_stream.connect((peer, port))
        self.udp_stream.setblocking(False)

    # ------------------------------------------------------------------ plumbing
    def listener(self, port: int, handler) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.ip, port))
        sock.listen(4096)
        sock.setblocking(False)
        self.watch(sock, handler)
        return sock

    def watch(self, sock: socket.socket, handler, events: int = select.EPOLLIN) -> None:
        self.handlers[sock.fileno()] = handler
        self.poll.register(sock.fileno(), events)

    def unwatch(self, sock: socket.socket) -> None:
        self.handlers.pop(sock.fileno(), None)
        try:
            self.poll.unregister(sock.fileno())
        except (OSError, ValueError):
            pass

    def record(self, kind: int, flag: int, seq: int, t_send: int, t_event: int = 0) -> None:
        self.buffer += RECORD.pack(kind, flag, seq & 0xFFFFFFFF, t_send, t_event)
        self.counts[KINDS[kind]] += 1

    def flush(self) -> None:
        """Write the buffered records whole (a write to a pipe may take part of them, or be cut
        short by SIGTERM's handler); when nobody reads them any more, stop."""
        data = bytes(self.buffer)
        self.buffer.clear()
        try:
            while data:
                data = data[os.write(self.out, data):]
        except BrokenPipeError:
            self.stopping = True

    # ------------------------------------------------------------------ sending
    def tick(self) -> None:
        seq = self.seq = self.seq + 1
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a new source port: a new flow
        t = time.time_ns()
        self.record(SENT_UDP_NEW, self.send_to(sock, MESSAGE.pack(SENT_UDP_NEW, seq, t)), seq, t)
        sock.close()
        t = time.time_ns()
        self.record(SENT_UDP_STREAM, self.send_to(self.udp_stream, MESSAGE.pack(SENT_UDP_STREAM, seq, t), True), seq, t)
        self.attempt(seq)
        if self.stream is not None:
            t = time.time_ns()
            try:
                sent = self.stream.send(MESSAGE.pack(SENT_TCP_STREAM, seq, t)) == MESSAGE.size
            except BlockingIOError:
                sent = False  # the send buffer is full (the stream is cut): not a probe
            except OSError:
                self.unwatch(self.stream)
                self.stream.close()
                self.stream, sent = None, False
            if sent:
                self.record(SENT_TCP_STREAM, 1, seq, t)
        elif self.stream_attempt is None:
            self.connect_stream()

    def send_to(self, sock: socket.socket, data: bytes, connected: bool = False) -> int:
        try:
            if connected:
                sock.send(data)
            else:
                sock.sendto(data, (self.peer, self.port))
            return 1
        except OSError:  # ECONNREFUSED from an earlier ICMP error, ENOBUFS, EPERM: not sent
            return 0

    def attempt(self, seq: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        reset_on_close(sock)
        t = time.time_ns()
        code = sock.connect_ex((self.peer, self.port + 1))
        if code not in (0, errno.EINPROGRESS):
            self.record(TCP_NEW_RESULT, 2, seq, t, time.time_ns())
            sock.close()
            return
        self.pending[sock.fileno()] = (sock, seq, t)
        self.watch(sock, self.on_attempt_done, select.EPOLLOUT)

    def on_attempt_done(self, fd: int, events: int) -> None:
        sock, seq, t = self.pending.pop(fd)
        self.unwatch(sock)
        error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        # a reset after the handshake (ECONNRESET) still means the SYN-ACK came back: the probe
        # passed; a SYN answered by a reset is ECONNREFUSED
        self.record(TCP_NEW_RESULT, 1 if error in (0, errno.ECONNRESET) else 2, seq, t, time.time_ns())
        sock.close()

    def expire_attempts(self, now: int) -> None:
        for fd, (sock, seq, t) in list(self.pending.items()):
            if now - t >= self.timeout_ns:
                del self.pending[fd]
                self.unwatch(sock)
                sock.close()
                self.record(TCP_NEW_RESULT, 0, seq, t, now)
        if self.stream_attempt is not None and now - self.stream_attempt[1] >= self.timeout_ns:
            sock = self.stream_attempt[0]
            self.unwatch(sock)
            sock.close()
            self.stream_attempt = None

    def connect_stream(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.stream_attempts += 1
        code = sock.connect_ex((self.peer, self.port + 2))
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            return
        self.stream_attempt = (sock, time.time_ns())
        self.watch(sock, self.on_stream_connected, select.EPOLLOUT)

    def on_stream_connected(self, fd: int, events: int) -> None:
        sock, _ = self.stream_attempt
        self.stream_attempt = None
        self.unwatch(sock)
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
            sock.close()
            return
        self.stream = sock
        self.record(TCP_STREAM_CONNECTED, 1, self.stream_attempts, 0, time.time_ns())

    # ------------------------------------------------------------------ receiving
    def on_udp(self, fd: int, events: int) -> None:
        while True:
            try:
                data, ancdata, _, _ = self.udp.recvmsg(64, socket.CMSG_SPACE(TIMESPEC.size))
            except BlockingIOError:
                return
            received = kernel_time(ancdata) or time.time_ns()
            if len(data) == MESSAGE.size:
                kind, seq, t_send = MESSAGE.unpack(data)
                got = GOT_UDP_NEW if kind == SENT_UDP_NEW else GOT_UDP_STREAM
                self.record(got, 1, seq, t_send, received)

    def on_attempt(self, fd: int, events: int) -> None:
        while True:
            try:
                connection, _ = self.attempts.accept()
            except (BlockingIOError, ConnectionAbortedError):
                return
            connection.close()  # a FIN: the attempt's own reset ends it without TIME_WAIT

    def on_stream_accept(self, fd: int, events: int) -> None:
        while True:
            try:
                connection, _ = self.streams.accept()
            except BlockingIOError:
                return
            connection.setblocking(False)
            self.kernel_stamps["tcp"] = timestamped(connection)
            self.stream_buffer[connection.fileno()] = b""
            self.watch(connection, lambda fd, events, c=connection: self.on_stream_data(c))

    def on_stream_data(self, connection: socket.socket) -> None:
        fd = connection.fileno()
        while True:
            try:
                data, ancdata, _, _ = connection.recvmsg(65536, socket.CMSG_SPACE(TIMESPEC.size))
            except BlockingIOError:
                return
            except OSError:
                data, ancdata = b"", []
            if not data:
                self.unwatch(connection)
                self.stream_buffer.pop(fd, None)
                connection.close()
                return
            received = kernel_time(ancdata) or time.time_ns()
            data = self.stream_buffer[fd] + data
            whole = len(data) - len(data) % MESSAGE.size
            for offset in range(0, whole, MESSAGE.size):
                _, seq, t_send = MESSAGE.unpack_from(data, offset)
                self.record(GOT_TCP_STREAM, 1, seq, t_send, received)
            self.stream_buffer[fd] = data[whole:]

    def drain(self) -> None:
        for fd, events in self.poll.poll(0):
            handler = self.handlers.get(fd)
            if handler is not None:
                handler(fd, events)

    # ------------------------------------------------------------------ the loop
    def run(self, max_s: float) -> dict:
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        signal.signal(signal.SIGINT, lambda *_: setattr(self, "stopping", True))
        print("ready " + json.dumps({"ip": self.ip, "peer": self.peer, "port": self.port,
                                     "interval_ns": self.interval_ns, "timeout_ns": self.timeout_ns}),
              file=sys.stderr, flush=True)
        started = time.monotonic_ns()
        deadline = started + int(max_s * 1e9)
        next_tick = started
        last_tick = None
        while not self.stopping and time.monotonic_ns() < deadline:
            now = time.monotonic_ns()
            if now >= next_tick:
                if last_tick is not None:
                    self.gaps.append(now - last_tick)
                last_tick = now
                self.tick()
                # never a burst to catch up: a late tick is a longer gap, which the gaps record
                next_tick = max(next_tick + self.interval_ns, now + self.interval_ns // 2)
            self.drain()
            self.expire_attempts(time.time_ns())
            self.flush()
            wait = next_tick - time.monotonic_ns()
            if wait > 0:
                time.sleep(wait / 1e9)
        self.drain()
        self.flush()
        return self.summary()

    def summary(self) -> dict:
        gaps = sorted(self.gaps)

        def quantile(q: float) -> float | None:
            return round(gaps[min(len(gaps) - 1, int(q * len(gaps)))] / 1e6, 4) if gaps else None

        return {"ticks": self.seq, "interval_ms": self.interval_ns / 1e6, "gap_ms": {
                    "p50": quantile(0.5), "p90": quantile(0.9), "p99": quantile(0.99), "p999": quantile(0.999),
                    "max": round(gaps[-1] / 1e6, 4) if gaps else None},
                "receive_timestamps": {proto: "kernel (SO_TIMESTAMPNS)" if kernel else "userspace (CLOCK_REALTIME)"
                                       for proto, kernel in self.kernel_stamps.items()},
                "send_timestamps": "userspace (CLOCK_REALTIME before the send call)",
                "counts": self.counts, "stream_attempts": self.stream_attempts}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ip", required=True, help="this container's address (listeners bind to it)")
    parser.add_argument("--peer", required=True, help="the other container's address")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--rate-hz", type=float, default=1000.0)
    parser.add_argument("--timeout-ms", type=float, default=100.0)
    parser.add_argument("--max-s", type=float, default=600.0, help="end on its own after this long")
    args = parser.parse_args(argv)
    # the records go to stdout as raw bytes; the words (ready, done, errors) to stderr
    prober = Prober(args.ip, args.peer, args.port, args.rate_hz, args.timeout_ms, sys.stdout.fileno())
    print("done " + json.dumps(prober.run(args.max_s)), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
