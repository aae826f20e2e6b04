"""fastsio behind Debian's nginx, configured by the very file the documentation shows
(docs/deployment/nginx.conf, only its ports changed), with the official socket.io-client going
through it over long-polling and WebSocket: the server sees the client's address, not nginx's,
and only because nginx is a trusted proxy.

nginx is not installed from here: without it the test is skipped, saying how to get it
(``apt-get install nginx-light``); under CI (``CI`` set, as ``.ci/run`` does, which installs it)
it fails instead.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.interop

DOCS_CONFIG = Path(__file__).resolve().parents[2] / "docs" / "deployment" / "nginx.conf"
NGINX_PEER = "127.0.0.3"  # nginx connects to fastsio from here (proxy_bind), the client not
START_TIMEOUT = 10.0


def nginx_binary() -> str:
    found = shutil.which("nginx")
    if found is None and os.access("/usr/sbin/nginx", os.X_OK):  # not on a user's PATH
        found = "/usr/sbin/nginx"
    if found is None:
        reason = (
            "nginx is missing: install Debian's nginx (`apt-get install nginx-light`, as .ci/run"
            " does) to run the reverse-proxy test"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI must run it)", pytrace=False)
        pytest.skip(reason)
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def site_config(listen_port: int, backend_port: int) -> str:
    """The documented server block with the test's ports; it must still hold what matters."""
    text = DOCS_CONFIG.read_text()
    text, listens = re.subn(r"\blisten 80;", f"listen 127.0.0.1:{listen_port};", text)
    text, servers = re.subn(
        r"\bserver 127\.0\.0\.1:8000;", f"server 127.0.0.1:{backend_port};", text
    )
    assert listens == 1 and servers == 1, "docs/deployment/nginx.conf changed shape"
    return text


class Nginx:
    """nginx in the foreground on a temporary prefix, with the documented site."""

    def __init__(self, directory: Path, listen_port: int, backend_port: int) -> None:
        self.directory = directory
        self.port = listen_port
        (directory / "site.conf").write_text(site_config(listen_port, backend_port))
        temp = {name: directory / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
        for path in temp.values():
            path.mkdir()
        (directory / "nginx.conf").write_text(
            f"""daemon off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {directory}/access.log;
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    # the test's own: nginx reaches fastsio from another loopback address than the client's
    proxy_bind {NGINX_PEER};
    include {directory}/site.conf;
}}
"""
        )
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [nginx_binary(), "-p", str(self.directory), "-c", str(self.directory / "nginx.conf"),
             "-e", str(self.directory / "error.log")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"nginx exited at start:\n{self.describe()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"nginx did not listen in time:\n{self.describe()}")
                time.sleep(0.05)

    def describe(self) -> str:
        output = b""
        if self.process is not None and self.process.poll() is not None and self.process.stdout:
            output = self.process.stdout.read()
        log = self.directory / "error.log"
        errors = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        return f"{output.decode(errors='replace')}\n--- error.log:\n{errors}"

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def nginx(tmp_path):
    binary = nginx_binary()  # skip (or fail under CI) before starting anything
    assert binary
    started: list[Nginx] = []

    def start(backend_port: int) -> Nginx:
        directory = tmp_path / f"nginx{len(started)}"
        directory.mkdir()
        proxy = Nginx(directory, free_port(), backend_port)
        started.append(proxy)
        proxy.start()
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


@pytest.mark.parametrize(
    "transport, trusted",
    [("polling", True), ("websocket", True), ("upgrade", True), ("websocket", False)],
)
async def test_official_client_through_nginx_seen_with_its_own_address(
    server_factory, node, nginx, transport, trusted
):
    sio = await server_factory(trusted_proxies=[NGINX_PEER] if trusted else None)
    seen: list = []

    @sio.on("connection")
    def connected(socket):
        handshake = socket.handshake
        seen.append((handshake.address, handshake.secure, handshake.headers.get("x-forwarded-for")))

    @sio.on("echo")
    def echo(socket, value):
        return value

    proxy = await asyncio.to_thread(nginx, sio.port)
    client = await node(f"http://127.0.0.1:{proxy.port}")
    transports = ["polling", "websocket"] if transport == "upgrade" else [transport]
    # a client's own X-Forwarded-For must not be believed: nginx appends the real peer to it
    opts = {"transports": transports, "extraHeaders": {"X-Forwarded-For": "6.6.6.6"}}
    await client.connect("a", opts=opts)
    await client.expect("connect", name="a")
    reply = await client.emit_with_ack("a", "echo", {"through": "nginx"})
    assert reply["ev"] == "ack" and reply["args"] == [{"through": "nginx"}]
    if transport == "upgrade":
        deadline = time.monotonic() + 10
        while (await client.info("a"))["transport"] != "websocket":
            assert time.monotonic() < deadline, "no upgrade through nginx"
            await asyncio.sleep(0.05)
        reply = await client.emit_with_ack("a", "echo", "after the upgrade")
        assert reply["args"] == ["after the upgrade"]
    info = await client.info("a")
    assert info["transport"] == ("polling" if transport == "polling" else "websocket")

    ((address, secure, forwarded_for),) = seen
    assert forwarded_for == "6.6.6.6, 127.0.0.1"  # what nginx sent: the client's address appended
    assert secure is False  # X-Forwarded-Proto: http
    # trusted: the client's address (127.0.0.1), not nginx's, nor the client's forged one;
    # not trusted: the peer, nginx
    assert address == ("127.0.0.1" if trusted else NGINX_PEER)
