"""Instructions per echo message and per broadcast delivery of the bench app, counted by
callgrind: a measure the machine's load does not move (the end-to-end figures of
``python -m bench`` do, a lot, on a shared machine).

The server (bench/servers/fastsio_app.py of a checkout, with the environment given) runs under
``valgrind --tool=callgrind``; a small client here, outside valgrind, sends an exact number of
messages over raw WebSockets and waits for every answer. Each case runs twice, with ``small`` and
``large`` counts; the difference of the two totals over the difference of the counts is the cost
of one more operation (start-up, connections and shutdown cancel out)::

    python bench/instructions.py                          # this checkout, off / production / dev
    python bench/instructions.py --checkout ../old --env ""   # another build, instrument() off
    python bench/instructions.py --env BENCH_ADMIN=production --only echo
    python bench/instructions.py --env "" --only connect --only poll

Echo: 20 connections, 10 messages in flight each, a 100-byte payload ("echo" answered by the
sender's socket.emit). Broadcast: 100 connections, one of them asks for broadcasts ("broadcast"
-> sio.emit to all) in lockstep batches of ``--batch`` (default 4): one write of the batch, then
every connection waits for all of it. So each batch is one read for the server and one write to
each connection, on every run: the count per delivery repeats within ~1% (with requests always
in flight, how many broadcasts shared a write varied, and the count with it, by +-10%).
``--batch 1`` is the worst case for what is paid per write (a write per delivery). Connect (the
bench's ``connect`` scenario): new connections, 10 at a time, each a WebSocket handshake (TCP, the
upgrade, the open packet), the namespace CONNECT of "/" and its answer, then a close frame and
the socket closed; the server's whole handling of a connection, its end included. Poll (the
bench's ``poll`` scenario): 10 long-polling clients, each with a GET and a POST keep-alive
connection, echo one message at a time (POST the event, its echo in the answer to the held GET).
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAYLOAD = "x" * 100
#: case -> (small count, large count, clients)
CASES = {
    "echo": (2_000, 6_000, 20),
    "broadcast": (20, 220, 100),
    "connect": (200, 600, 10),
    "poll": (500, 1_500, 10),
}
#: what one operation of a case is (instructions per ...)
UNITS = {
    "echo": "message",
    "broadcast": "delivery",
    "connect": "connection",
    "poll": "message",
}
DEFAULT_ENVS = ["", "BENCH_ADMIN=production", "BENCH_ADMIN=development"]
MASK = b"\x01\x02\x03\x04"


def frame(text: str, opcode: int = 1) -> bytes:
    """A masked client frame (text unless ``opcode`` says otherwise)."""
    data = text.encode() if opcode == 1 else text.encode("latin-1")
    masked = bytes(b ^ MASK[i % 4] for i, b in enumerate(data))
    n = len(data)
    head = bytes([0x80 | opcode]) + (
        bytes([0x80 | n]) if n < 126 else bytes([0xFE]) + n.to_bytes(2, "big")
    )
    return head + MASK + masked


CLOSE_FRAME = frame("\x03\xe8", opcode=8)  # close, 1000


def upgrade_request(path: str = "/socket.io/?EIO=4&transport=websocket") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: x\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def server_frames(buf: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """The whole (unmasked) server frames at the start of ``buf`` as (opcode, payload), and the
    rest of ``buf``."""
    out = []
    while len(buf) >= 2:
        n = buf[1] & 0x7F
        start = 2
        if n == 126:
            if len(buf) < 4:
                break
            n, start = int.from_bytes(buf[2:4], "big"), 4
        elif n == 127:
            if len(buf) < 10:
                break
            n, start = int.from_bytes(buf[2:10], "big"), 10
        if len(buf) < start + n:
            break
        out.append((buf[0] & 0x0F, buf[start : start + n]))
        buf = buf[start + n :]
    return out, buf


class Conn:
    """A raw Engine.IO v4 WebSocket client connected to namespace "/"."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=600)
        self.sock.sendall(upgrade_request())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(65536)
        self.buffer = self.buffer.split(b"\r\n\r\n", 1)[1]
        self.expect(lambda t: t.startswith("0"))  # open
        self.sock.sendall(frame("40"))
        self.expect(lambda t: t.startswith("40"))  # connected to "/"
        self.sock.setblocking(False)

    def texts(self) -> list[str]:
        """The whole text frames in the buffer (pings answered)."""
        out = []
        frames, self.buffer = server_frames(self.buffer)
        for _, payload in frames:
            text = payload.decode()
            if text == "2":
                self.sock.sendall(frame("3"))
            else:
                out.append(text)
        return out

    def expect(self, pred) -> str:
        while True:
            for text in self.texts():
                if pred(text):
                    return text
            self.buffer += self.sock.recv(65536)


def run_echo(conns: list[Conn], total: int, inflight: int = 10) -> None:
    message = frame(f'42["echo","{PAYLOAD}"]')
    sel = selectors.DefaultSelector()
    left = {c: total // len(conns) for c in conns}
    pending = dict.fromkeys(conns, 0)
    for c in conns:
        sel.register(c.sock, selectors.EVENT_READ, c)
        first = min(inflight, left[c])
        c.sock.sendall(message * first)
        left[c] -= first
        pending[c] = first
    while any(pending.values()):
        for key, _ in sel.select():
            c = key.data
            c.buffer += c.sock.recv(65536)
            answers = sum(1 for t in c.texts() if t.startswith('42["echo"'))
            pending[c] -= answers
            more = min(answers, left[c])
            if more:
                c.sock.sendall(message * more)
                left[c] -= more
                pending[c] += more
    sel.close()


def run_broadcast(conns: list[Conn], total: int, batch: int = 4) -> None:
    """``total`` broadcasts in lockstep: the sender sends ``batch`` requests in one write, then
    every connection waits for all of them before the next batch. So the server handles each
    batch in one read and writes it to each connection once: the number of broadcasts per write
    is ``batch``, every run (with requests always in flight, it varied, and the count per
    delivery with it, by +-10%)."""
    message = frame(f'42["broadcast","{PAYLOAD}"]')
    sender = conns[0]
    sel = selectors.DefaultSelector()
    for c in conns:
        sel.register(c.sock, selectors.EVENT_READ, c)
    got = dict.fromkeys(conns, 0)
    sent = 0
    while sent < total:
        more = min(batch, total - sent)
        sender.sock.sendall(message * more)
        sent += more
        while min(got.values()) < sent:
            for key, _ in sel.select():
                c = key.data
                c.buffer += c.sock.recv(65536)
                got[c] += sum(1 for t in c.texts() if t.startswith('42["tick"'))
    sel.close()


def run_connect(port: int, total: int, concurrency: int) -> None:
    """``total`` new connections, ``concurrency`` at a time: each upgrades to a WebSocket, waits
    for the open packet, connects to "/", waits for the answer, sends a close frame and closes."""
    sel = selectors.DefaultSelector()
    started = done = 0
    # per socket: [stage (0: 101 + open packet awaited, 1: the CONNECT's answer), buffer]
    state: dict[socket.socket, list] = {}

    def start() -> None:
        nonlocal started
        sock = socket.create_connection(("127.0.0.1", port), timeout=600)
        sock.sendall(upgrade_request())
        sock.setblocking(False)
        state[sock] = [0, b""]
        sel.register(sock, selectors.EVENT_READ)
        started += 1

    for _ in range(min(concurrency, total)):
        start()
    while done < total:
        for key, _ in sel.select():
            sock = key.fileobj
            entry = state[sock]
            data = sock.recv(65536)
            if not data:
                raise RuntimeError("the server closed a connection during its handshake")
            entry[1] += data
            if entry[0] == 0:
                head, sep, rest = entry[1].partition(b"\r\n\r\n")
                if not sep:
                    continue
                if not head.startswith(b"HTTP/1.1 101"):
                    raise RuntimeError(f"no upgrade: {head[:80]!r}")
                frames, rest = server_frames(rest)
                if not frames:
                    entry[1] = head + sep + rest
                    continue
                if not frames[0][1].startswith(b"0{"):
                    raise RuntimeError(f"no open packet: {frames[0][1][:80]!r}")
                entry[0], entry[1] = 1, rest
                sock.sendall(frame("40"))
                continue
            frames, entry[1] = server_frames(entry[1])
            if any(payload.startswith(b'40{"sid":') for _, payload in frames):
                sock.sendall(CLOSE_FRAME)
                sel.unregister(sock)
                del state[sock]
                sock.close()
                done += 1
                if started < total:
                    start()
    sel.close()


class PollClient:
    """A long-polling client connected to "/": a GET and a POST keep-alive connection."""

    def __init__(self, port: int) -> None:
        self.get = socket.create_connection(("127.0.0.1", port), timeout=600)
        self.post = socket.create_connection(("127.0.0.1", port), timeout=600)
        self.buffers = {self.get: b"", self.post: b""}
        self.sid = ""
        self.pongs = 0
        self.request(self.get, "GET")
        body = self.response(self.get)
        if not body.startswith(b'0{"sid":"'):
            raise RuntimeError(f"a bad polling handshake: {body[:80]!r}")
        self.sid = body[9 : body.index(b'"', 9)].decode()
        self.request(self.post, "POST", b"40")
        if self.response(self.post) != b"ok":
            raise RuntimeError("the CONNECT's POST was not answered ok")
        self.request(self.get, "GET")
        if not any(p.startswith(b'40{"sid":') for p in self.packets(self.response(self.get))):
            raise RuntimeError("no answer to the namespace CONNECT")

    def request(self, sock: socket.socket, method: str, body: bytes = b"") -> None:
        query = "EIO=4&transport=polling" + (f"&sid={self.sid}" if self.sid else "")
        head = f"{method} /socket.io/?{query} HTTP/1.1\r\nHost: x\r\n"
        if method == "POST":
            head += f"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {len(body)}\r\n"
        sock.sendall((head + "\r\n").encode() + body)

    def parse(self, sock: socket.socket) -> bytes | None:
        """The body of the whole response at the start of the socket's buffer, or None."""
        buf = self.buffers[sock]
        head, sep, rest = buf.partition(b"\r\n\r\n")
        if not sep:
            return None
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"HTTP error: {head[:80]!r}")
        length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
        if len(rest) < length:
            return None
        self.buffers[sock] = rest[length:]
        return rest[:length]

    def response(self, sock: socket.socket) -> bytes:
        """Blocking: the next response's body."""
        while True:
            body = self.parse(sock)
            if body is not None:
                return body
            self.buffers[sock] += sock.recv(65536)

    def packets(self, body: bytes) -> list[bytes]:
        """The packets of a GET's payload (pings counted, to be answered)."""
        out = []
        for packet in body.split(b"\x1e"):
            if packet == b"2":
                self.pongs += 1
            else:
                out.append(packet)
        return out

    def post_body(self, message: bytes | None) -> bytes:
        parts = [b"3"] * self.pongs + ([message] if message else [])
        self.pongs = 0
        return b"\x1e".join(parts)


def run_poll(clients: list[PollClient], total: int) -> None:
    """Each client echoes ``total / len(clients)`` messages, one at a time: the GET held, the
    POST with the event, "ok", the echo in the GET's answer; the next GET, the next POST."""
    message = f'42["echo","{PAYLOAD}"]'.encode()
    sel = selectors.DefaultSelector()
    left = {c: total // len(clients) for c in clients}
    post_busy = dict.fromkeys(clients, False)
    waiting = dict.fromkeys(clients, False)  # an echo owed by the server
    for c in clients:
        c.get.setblocking(False)
        c.post.setblocking(False)
        sel.register(c.get, selectors.EVENT_READ, (c, "GET"))
        sel.register(c.post, selectors.EVENT_READ, (c, "POST"))

    def send_post(c: PollClient) -> None:
        due = left[c] > 0 and not waiting[c]
        if post_busy[c] or not (due or c.pongs):
            return
        c.request(c.post, "POST", c.post_body(message if due else None))
        post_busy[c] = True
        if due:
            left[c] -= 1
            waiting[c] = True

    for c in clients:
        c.request(c.get, "GET")
        send_post(c)
    while any(left.values()) or any(waiting.values()):
        for key, _ in sel.select():
            c, role = key.data
            sock = key.fileobj
            data = sock.recv(65536)
            if not data:
                raise RuntimeError("the server closed a polling connection")
            c.buffers[sock] += data
            while (body := c.parse(sock)) is not None:
                if role == "POST":
                    if body != b"ok":
                        raise RuntimeError(f"a POST answered {body[:80]!r}")
                    post_busy[c] = False
                else:
                    for packet in c.packets(body):
                        if packet == message:
                            waiting[c] = False
                        elif packet != b"6":
                            raise RuntimeError(f"unexpected packet {packet[:80]!r}")
                    c.request(c.get, "GET")
                send_post(c)
    sel.close()
    for c in clients:
        c.get.close()
        c.post.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _take_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def instructions(
    checkout: Path, env: dict, case: str, count: int, clients: int, batch: int = 4
) -> int:
    """Total instructions of one server run that handled ``count`` operations."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = callgrind_python(
            out, str(checkout / "bench" / "servers" / "fastsio_app.py"), "127.0.0.1", str(port)
        )
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
        # the Admin UI's server_stats timer: every 2 s is ~50x more often per message under
        # valgrind than at full speed (one server_stats costs the same at any rate)
        full_env["BENCH_ADMIN_INTERVAL"] = "3600"
        full_env.update(env)
        proc = subprocess.Popen(
            cmd,
            cwd=checkout,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            # a shell starts background commands with SIGINT ignored, and a Python server that
            # inherits that never stops on the SIGINT below (and callgrind writes nothing)
            preexec_fn=_take_sigint,  # noqa: PLW1509 (this driver starts no threads)
        )
        try:
            line = proc.stdout.readline().decode()
            if "listening" not in line:
                raise RuntimeError(f"the server did not start: {line!r}")
            deadline = time.monotonic() + 120
            make = PollClient if case == "poll" else Conn
            while True:
                try:
                    if case == "connect":  # a connection, to wait for the server to listen
                        socket.create_connection(("127.0.0.1", port), timeout=600).close()
                        conns = []
                    else:
                        conns = [make(port) for _ in range(clients)]
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            if case == "echo":
                run_echo(conns, count)
            elif case == "broadcast":
                run_broadcast(conns, count, batch)
            elif case == "connect":
                run_connect(port, count, clients)
            else:
                run_poll(conns, count)
            for c in conns:
                if case != "poll":
                    c.sock.close()
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=300)
        return callgrind_total(out)


def callgrind_python(out: Path, *argv: str) -> list:
    """The command that runs ``python argv...`` under callgrind, its counts written to ``out``."""
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, *argv]


def callgrind_total(out: Path) -> int:
    """The total instruction count of a callgrind output file."""
    text = out.read_text(errors="replace")
    match = re.search(r"^(?:summary|totals): (\d+)", text, re.MULTILINE)
    if not match:
        raise RuntimeError("no total in the callgrind output")
    return int(match.group(1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkout", default=str(ROOT), help="the tree whose bench app runs")
    p.add_argument(
        "--env",
        action="append",
        help='server environment, "K=V[,K=V]" ("" = none); repeat for several (default: '
        "instrument() off, production, development)",
    )
    p.add_argument("--only", action="append", choices=sorted(CASES))
    p.add_argument(
        "--batch",
        type=int,
        default=4,
        help="broadcasts per batch (per read, and per write to each connection); default 4",
    )
    args = p.parse_args()
    envs = args.env if args.env is not None else DEFAULT_ENVS
    for case in args.only or list(CASES):
        small, large, clients = CASES[case]
        per = UNITS[case]
        ops = clients if case == "broadcast" else 1
        for spec in envs:
            env = dict(item.split("=", 1) for item in spec.split(",") if item)
            low = instructions(Path(args.checkout), env, case, small, clients, args.batch)
            high = instructions(Path(args.checkout), env, case, large, clients, args.batch)
            per_op = (high - low) / ((large - small) * ops)
            print(
                f"{case:9} {spec or 'instrument() off':28} {per_op:10,.0f} instructions per {per}"
                f"  ({low:,} / {high:,} for {small} / {large})",
                flush=True,
            )


if __name__ == "__main__":
    main()
