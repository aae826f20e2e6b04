"""Servers for the AsyncClient tests: a fastsio server and Node's socket.io 4.8
(tests/node_server/server.js) with the same behaviour, behind one interface, so that every client
feature is tested against both.

Behaviour (both): namespaces "/" and "/admin" (auth {"token": "bad"} refused: "bad token",
data {"reason": "token"}), "/refused" (always refused: "not authorized", data {"content":
"retry later"}). Events: "echo" -> emit("echo", ...args); "ack" -> acked with its args; "ask" ->
the server emits "question" with an ack and records the client's answer; "close_conn" -> the
Engine.IO connection is closed under the client; "disconnect_me" -> socket.disconnect();
"broadcast" -> emit "tick" to the namespace. Observations (``expect``): connection {nsp, id,
auth}, disconnect {nsp, id, reason}, event {nsp, id, event, args}, answer {id, args}.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import fastsio
from tests.conftest import NodeProcess, from_json, npm_ci

NODE_SERVER_DIR = Path(__file__).resolve().parent / "node_server"
WAIT = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recorder:
    """Observations in arrival order; ``expect`` consumes the first unconsumed match (bounded)."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self._consumed: set[int] = set()
        self._changed = asyncio.Event()

    def add(self, **msg: Any) -> None:
        self.messages.append(msg)
        self._changed.set()

    def seen(self, ev: str, **match: Any) -> list[dict]:
        return [
            m
            for m in self.messages
            if m.get("ev") == ev and all(m.get(k) == v for k, v in match.items())
        ]

    async def expect(self, ev: str, timeout: float = WAIT, **match: Any) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for i, m in enumerate(self.messages):
                if i in self._consumed or m.get("ev") != ev:
                    continue
                if all(m.get(k) == v for k, v in match.items()):
                    self._consumed.add(i)
                    return m
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {ev} {match} within {timeout}s: {self.messages[-20:]}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass


# ----------------------------------------------------------------------------------- fastsio


class FastsioBackend:
    kind = "fastsio"

    def __init__(self, options: dict, tls: Any = None) -> None:
        self.options = options
        self.tls = tls
        self.recorder = Recorder()
        self.sio: fastsio.Server | None = None
        self.port: int | None = None
        self._proxy: Any = None
        self.proxy_port: int | None = None

    @property
    def url(self) -> str:
        if self.tls is not None:
            return f"https://127.0.0.1:{self.proxy_port}"
        return f"http://127.0.0.1:{self.port}"

    async def expect(self, ev: str, timeout: float = WAIT, **match: Any) -> dict:
        return await self.recorder.expect(ev, timeout, **match)

    def _build(self) -> fastsio.Server:
        opts = dict(self.options)
        opts.setdefault("cors_allowed_origins", "*")
        sio = fastsio.Server(**opts)
        rec = self.recorder

        def setup(nsp: Any) -> None:
            name = nsp.name

            @nsp.use
            def check(socket: Any) -> None:
                if (socket.handshake.auth or {}).get("token") == "bad":
                    raise fastsio.ConnectionRefused("bad token", data={"reason": "token"})

            @nsp.on("connection")
            def connection(socket: Any) -> None:
                rec.add(
                    ev="connection",
                    nsp=name,
                    id=socket.id,
                    auth=socket.handshake.auth,
                    recovered=getattr(socket, "recovered", False),
                )

                def on_any(event: str, *args: Any) -> None:
                    rec.add(ev="event", nsp=name, id=socket.id, event=event, args=list(args))

                socket.on_any(on_any)

            @nsp.on("disconnect")
            def disconnect(socket: Any, reason: str) -> None:
                rec.add(ev="disconnect", nsp=name, id=socket.id, reason=reason)

            @nsp.on("echo")
            def echo(socket: Any, *args: Any) -> None:
                socket.emit("echo", *args)

            @nsp.on("ack")
            def ack(socket: Any, *args: Any) -> Any:
                return tuple(args)

            @nsp.on("ask")
            def ask(socket: Any, *args: Any) -> None:
                sid = socket.id

                def answered(err: Any, *answers: Any) -> None:
                    rec.add(
                        ev="answer", id=sid, error=str(err) if err else None, args=list(answers)
                    )

                socket.timeout(3).emit("question", *args, ack=answered)

            @nsp.on("close_conn")
            def close_conn(socket: Any) -> None:
                socket.client.session.close()

            @nsp.on("disconnect_me")
            def disconnect_me(socket: Any) -> None:
                socket.disconnect()

            @nsp.on("broadcast")
            def broadcast(socket: Any, *args: Any) -> None:
                nsp.emit("tick", *args)

        setup(sio.of("/"))
        setup(sio.of("/admin"))

        @sio.of("/refused").use
        def refuse(socket: Any) -> None:
            raise fastsio.ConnectionRefused("not authorized", data={"content": "retry later"})

        return sio

    async def start(self) -> None:
        self.sio = self._build()
        await asyncio.wait_for(self.sio.start("127.0.0.1", self.port or 0), 5)
        self.port = self.sio.port
        if self.tls is not None and self._proxy is None:
            self._proxy = await _tls_proxy(self.tls, lambda: self.port)
            self.proxy_port = self._proxy.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.sio is not None:
            await asyncio.wait_for(self.sio.close(), 5)
            self.sio = None

    async def restart(self, down: float = 0.3) -> None:
        await self.stop()
        await asyncio.sleep(down)
        await self.start()

    async def emit(self, event: str, *args: Any, to: str | None = None, nsp: str = "/") -> None:
        assert self.sio is not None
        target = self.sio.of(nsp)
        (target.to(to) if to else target).emit(event, *args)

    async def close(self) -> None:
        await self.stop()
        if self._proxy is not None:
            self._proxy.close()
            self._proxy = None


async def _tls_proxy(context: ssl.SSLContext, port: Any) -> asyncio.AbstractServer:
    """A TLS-terminating TCP proxy in front of the fastsio server (``port()`` is its port)."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port())
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    return await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)


# ----------------------------------------------------------------------------------- Node


class NodeBackend:
    kind = "node"

    def __init__(self, options: dict) -> None:
        self.options = dict(options)
        self.options.setdefault("port", free_port())
        self.proc: NodeProcess | None = None
        self.port = self.options["port"]
        self._old: list[NodeProcess] = []

    @property
    def url(self) -> str:
        scheme = "https" if self.options.get("tls") else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def start(self) -> None:
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(NODE_SERVER_DIR / "server.js"),
            json.dumps(self.options),
            cwd=str(NODE_SERVER_DIR),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=2**24,
        )
        self.proc = NodeProcess(proc, "node_server/server.js")
        ready = await self.proc.expect("ready", timeout=WAIT)
        self.port = ready["port"]

    async def expect(self, ev: str, timeout: float = WAIT, **match: Any) -> dict:
        assert self.proc is not None
        msg = await self.proc.expect(ev, timeout=timeout, **match)
        if "args" in msg:
            msg = dict(msg, args=from_json(msg["args"]))
        return msg

    async def emit(self, event: str, *args: Any, to: str | None = None, nsp: str = "/") -> None:
        assert self.proc is not None
        await self.proc.call("emit", event=event, args=list(args), to=to, nsp=nsp)

    async def stop(self) -> None:
        if self.proc is not None:
            await self.proc.close()
            self._old.append(self.proc)
            self.proc = None

    async def restart(self, down: float = 0.3) -> None:
        await self.stop()
        await asyncio.sleep(down)
        self.options["port"] = self.port
        await self.start()

    async def close(self) -> None:
        await self.stop()


def node_ready() -> None:
    npm_ci(NODE_SERVER_DIR, required=("socket.io", "sio2-server", "socket.io-msgpack-parser"))


# ----------------------------------------------------------------------------------- TLS


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost (the openssl command line tool)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the TLS tests need the openssl command line tool", pytrace=False)
    key = directory / "key.pem"
    cert = directory / "cert.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return key, cert
