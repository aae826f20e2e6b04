"""TLS: ``ssl=`` on start/serve/run and ``--ssl-certfile/--ssl-keyfile``, with a self-signed
certificate made by the ``openssl`` command for each test session, and the official
socket.io-client over https (polling) and wss."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import urllib.request
from pathlib import Path

import pytest

import fastsio
from tests.test_cli import free_port


@pytest.fixture(scope="session")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """(certfile, keyfile): a self-signed certificate for 127.0.0.1 and localhost."""
    if shutil.which("openssl") is None:
        pytest.fail("the TLS tests need the `openssl` command (Debian: apt-get install openssl)")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def client_context(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


def test_ssl_context_forms(certificate):
    cert, key = certificate
    assert isinstance(fastsio.ssl_context((str(cert), str(key))), ssl.SSLContext)
    combined = cert.parent / "combined.pem"
    combined.write_bytes(cert.read_bytes() + key.read_bytes())
    assert isinstance(fastsio.ssl_context(combined), ssl.SSLContext)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    assert fastsio.ssl_context(context) is context
    assert fastsio.ssl_context(None) is None
    with pytest.raises(TypeError):
        fastsio.ssl_context(42)


@pytest.mark.interop
@pytest.mark.parametrize("transports", [["polling"], ["websocket"], ["polling", "websocket"]])
async def test_official_client_over_tls(certificate, node, transports):
    cert, key = certificate
    sio = fastsio.Server()
    secure = []

    @sio.on("connection")
    def connected(socket):
        secure.append(socket.handshake.secure)

    @sio.on("echo")
    def echo(socket, *args):
        return args

    await sio.start("127.0.0.1", 0, ssl=(str(cert), str(key)))
    try:
        url = f"https://127.0.0.1:{sio.port}"
        client = await node(url)
        # Node's client checks the certificate unless told not to (a self-signed one here)
        await client.connect("a", opts={"transports": transports, "rejectUnauthorized": False})
        connected = await client.expect("connect", name="a")
        if transports == ["polling", "websocket"]:
            await client.expect("upgrade", name="a")
        reply = await client.emit_with_ack("a", "echo", "over tls")
        assert reply["args"] == ["over tls"]
        assert secure == [True]
        info = await client.info("a")
        assert info["transport"] == transports[-1] and connected["id"]
        # a plain-HTTP request to the TLS port gets no answer in clear
        reader, writer = await asyncio.open_connection("127.0.0.1", sio.port)
        writer.write(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            answer = await asyncio.wait_for(reader.read(1024), 5)
        except ConnectionResetError:
            answer = b""
        writer.close()
        assert not answer.startswith(b"HTTP/")
    finally:
        await sio.close()


async def test_plain_server_says_handshake_not_secure(server_factory, node):
    sio = await server_factory()
    secure = []
    sio.on("connection", lambda socket: secure.append(socket.handshake.secure))
    client = await node(f"http://127.0.0.1:{sio.port}")
    await client.connect("a")
    await client.expect("connect", name="a")
    assert secure == [False]


def test_cli_serves_https(certificate, tmp_path):
    from tests.test_cli import ServerProcess, environment  # noqa: F401

    cert, key = certificate
    (tmp_path / "tls_app.py").write_text(
        "import fastsio\nsio = fastsio.Server()\n"
        "sio.route('/health', lambda request: {'secure': request.secure})\n"
    )
    port = free_port()
    server = ServerProcess(
        ["run", "tls_app:sio", "--port", str(port), "--ssl-certfile", str(cert),
         "--ssl-keyfile", str(key)],
        tmp_path,
    )  # fmt: skip
    try:
        server.wait_for(rf"^fastsio \S+ running on https://127\.0\.0\.1:{port} ")
        with urllib.request.urlopen(
            f"https://127.0.0.1:{port}/health", timeout=5, context=client_context(cert)
        ) as answer:
            assert answer.read() == b'{"secure":true}'
    finally:
        server.stop()
