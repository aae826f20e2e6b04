"""Static files (over real sockets, on asyncio and uvloop) and the CORS helpers."""

from __future__ import annotations

import os
from email.utils import formatdate

import pytest

from fastsio.http import (
    Request,
    StaticFile,
    StaticFiles,
    cors_headers,
    guess_content_type,
    handle_preflight,
    origin_allowed,
    preflight_headers,
)
from tests.test_http_server import (
    LOOPS,
    connect,
    fetch,
    read_response,
    run_on,
    serve,
)


@pytest.fixture(params=sorted(LOOPS))
def run(request):
    return lambda coro, timeout=10.0: run_on(LOOPS[request.param], coro, timeout)


@pytest.fixture
def site(tmp_path):
    """tmp/secret.txt outside the served root tmp/www."""
    root = tmp_path / "www"
    (root / "sub").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "app.js").write_text("console.log('hi')")
    (root / "style.css").write_text("body{}")
    (root / "data.json").write_text("{}")
    (root / "logo.png").write_bytes(b"\x89PNG")
    (root / "blob.unknownext").write_bytes(b"\x00\x01")
    (root / "sub" / "index.html").write_text("<h1>sub</h1>")
    (root / "sub" / "page.txt").write_text("page")
    (root / "a b.txt").write_text("spaced")
    (tmp_path / "secret.txt").write_text("SECRET")
    (root / "link_out").symlink_to(tmp_path / "secret.txt")
    (root / "link_in").symlink_to(root / "sub" / "page.txt")
    (root / "dir_out").symlink_to(tmp_path)
    return root


def statics(site) -> dict:
    return {
        "/static": StaticFiles(str(site)),
        "/socket.io/socket.io.js": StaticFile(str(site / "app.js")),
    }


def test_serves_files_with_types(run, site):
    async def main():
        async with serve(statics(site)) as (_, port):
            cases = {
                "/static/index.html": ("text/html; charset=utf-8", b"<h1>home</h1>"),
                "/static/": ("text/html; charset=utf-8", b"<h1>home</h1>"),
                "/static/sub/": ("text/html; charset=utf-8", b"<h1>sub</h1>"),
                "/static/app.js": ("text/javascript; charset=utf-8", b"console.log('hi')"),
                "/static/style.css": ("text/css; charset=utf-8", b"body{}"),
                "/static/data.json": ("application/json; charset=utf-8", b"{}"),
                "/static/logo.png": ("image/png", b"\x89PNG"),
                "/static/blob.unknownext": ("application/octet-stream", b"\x00\x01"),
                "/static/sub/page.txt?v=3": ("text/plain; charset=utf-8", b"page"),
                "/static/a%20b.txt": ("text/plain; charset=utf-8", b"spaced"),
                "/static/./sub//page.txt": ("text/plain; charset=utf-8", b"page"),
                "/static/link_in": ("text/plain; charset=utf-8", b"page"),
                "/socket.io/socket.io.js": ("text/javascript; charset=utf-8", b"console.log('hi')"),
            }
            for target, (content_type, body) in cases.items():
                status, headers, got = await fetch(port, "GET", target)
                assert (status, headers["content-type"], got) == (200, content_type, body), target
                assert headers["content-length"] == str(len(body))
                assert headers["etag"].startswith('"')

    run(main())


def test_directory_without_slash_redirects(run, site):
    async def main():
        async with serve(statics(site)) as (_, port):
            status, headers, _ = await fetch(port, "GET", "/static/sub?x=1")
            assert (status, headers["location"]) == (301, "/static/sub/?x=1")
            status, headers, _ = await fetch(port, "GET", "/static")
            assert (status, headers["location"]) == (301, "/static/")
            assert (await fetch(port, "GET", "/static/empty/"))[0] == 404  # no index.html

    run(main())


@pytest.mark.parametrize(
    "target",
    [
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E/secret.txt",
        "/static/..%2fsecret.txt",
        "/static/..%2Fsecret.txt",
        "/static/%2e%2e%2fsecret.txt",
        "/static/sub/../../secret.txt",
        "/static/sub/%2e%2e/%2e%2e/secret.txt",
        "/static/%252e%252e/secret.txt",
        "/static/..%5csecret.txt",
        "/static/..\\secret.txt",
        "/static//etc/passwd",
        "/static/%2fetc/passwd",
        "/static/link_out",
        "/static/dir_out/secret.txt",
        "/static/index.html%00.txt",
        "/static/missing.html",
        "/static/sub/missing/",
        "/socket.io/socket.io.js/extra",
    ],
)
def test_traversal_and_missing_files_are_404(run, site, target):
    async def main():
        async with serve(statics(site)) as (_, port):
            status, _, body = await fetch(port, "GET", target)
            assert status == 404, target
            assert b"SECRET" not in body and b"root:" not in body

    run(main())


def test_head_and_other_methods(run, site):
    async def main():
        async with serve(statics(site)) as (_, port):
            reader, writer = await connect(port)
            writer.write(
                b"HEAD /static/app.js HTTP/1.1\r\nHost: x\r\n\r\nGET /static/ HTTP/1.1\r\n\r\n"
            )
            status, headers, _ = await read_response(reader, head_only=True)
            assert (status, headers["content-length"]) == (200, "17")
            assert headers["content-type"] == "text/javascript; charset=utf-8"
            assert (await read_response(reader))[2] == b"<h1>home</h1>"
            writer.close()
            for target in ("/static/app.js", "/socket.io/socket.io.js"):
                status, headers, _ = await fetch(port, "POST", target, body=b"x")
                assert status == 405 and headers["allow"] == "GET, HEAD"

    run(main())


def test_conditional_requests(run, site):
    async def main():
        async with serve(statics(site)) as (_, port):
            _, headers, _ = await fetch(port, "GET", "/static/app.js")
            etag, last_modified = headers["etag"], headers["last-modified"]
            for conditional in (
                {"If-None-Match": etag},
                {"If-None-Match": f'"other", W/{etag}'},
                {"If-None-Match": "*"},
                {"If-Modified-Since": last_modified},
            ):
                status, headers, body = await fetch(port, "GET", "/static/app.js", conditional)
                assert (status, body, headers["etag"]) == (304, b"", etag), conditional
                assert "content-length" not in headers
            for conditional in (
                {"If-None-Match": '"other"'},
                {"If-None-Match": '"other"', "If-Modified-Since": last_modified},
                {"If-Modified-Since": formatdate(0, usegmt=True)},
                {"If-Modified-Since": "garbage"},
            ):
                status, _, _ = await fetch(port, "GET", "/static/app.js", conditional)
                assert status == 200, conditional
            # the file changes: the old ETag no longer matches
            path = site / "app.js"
            path.write_text("console.log('changed')")
            os.utime(path, ns=(1, 1_000_000_000))
            status, _, body = await fetch(port, "GET", "/static/app.js", {"If-None-Match": etag})
            assert (status, body) == (200, b"console.log('changed')")

    run(main())


def test_static_at_root_mount(run, site):
    async def main():
        async with serve({"/": StaticFiles(str(site))}) as (_, port):
            assert (await fetch(port, "GET", "/"))[2] == b"<h1>home</h1>"
            assert (await fetch(port, "GET", "/sub/page.txt"))[2] == b"page"
            assert (await fetch(port, "GET", "/..%2f..%2fetc/passwd"))[0] == 404

    run(main())


def test_guess_content_type():
    assert guess_content_type("a.JS") == "text/javascript; charset=utf-8"
    assert guess_content_type("a.mjs") == "text/javascript; charset=utf-8"
    assert guess_content_type("a.svg") == "image/svg+xml; charset=utf-8"
    assert guess_content_type("a.wasm") == "application/wasm"
    assert guess_content_type("a.js.gz") == "application/octet-stream"
    assert guess_content_type("noext") == "application/octet-stream"


# -- CORS -----------------------------------------------------------------------------------------

ORIGIN = "https://app.example"


def test_origin_allowed():
    assert origin_allowed(None, ["https://other.example"])  # no Origin: not a browser
    assert origin_allowed(ORIGIN, None)  # CORS not configured: nothing refused
    assert origin_allowed(ORIGIN, "*")
    assert origin_allowed(ORIGIN, ORIGIN)
    assert origin_allowed(ORIGIN, "https://APP.example/")
    assert not origin_allowed(ORIGIN, "https://other.example")
    assert origin_allowed(ORIGIN, ["https://other.example", ORIGIN])
    assert not origin_allowed(ORIGIN, [])
    assert not origin_allowed("https://app.example.evil", [ORIGIN])
    assert origin_allowed(ORIGIN, lambda origin: origin.endswith(".example"))
    assert not origin_allowed("https://evil.com", lambda origin: origin.endswith(".example"))


def test_cors_headers():
    assert cors_headers(ORIGIN, None, True) == []
    assert cors_headers(ORIGIN, "*", False) == [("Access-Control-Allow-Origin", "*")]
    assert cors_headers(None, "*", False) == [("Access-Control-Allow-Origin", "*")]
    # "*" with credentials: the browser refuses "*", so the origin is echoed
    assert cors_headers(ORIGIN, "*", True) == [
        ("Access-Control-Allow-Origin", ORIGIN),
        ("Vary", "Origin"),
        ("Access-Control-Allow-Credentials", "true"),
    ]
    assert cors_headers(ORIGIN, [ORIGIN], False) == [
        ("Access-Control-Allow-Origin", ORIGIN),
        ("Vary", "Origin"),
    ]
    assert cors_headers("https://evil.com", [ORIGIN], True) == []
    assert cors_headers(None, [ORIGIN], True) == []


class FakeRequest:
    """Stands in for Request in the preflight helper (it only reads method and headers)."""

    def __init__(self, method: str, headers: dict[str, str]) -> None:
        self.method = method
        self.headers = headers
        self.responses: list[tuple[int, list, bytes]] = []

    def respond(self, status: int, headers=(), body: bytes = b"") -> None:
        self.responses.append((status, list(headers), body))


def test_preflight_headers():
    headers = {
        "origin": ORIGIN,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type, x-custom",
    }
    assert preflight_headers(headers, [ORIGIN], True, max_age=600) == [
        ("Access-Control-Allow-Origin", ORIGIN),
        ("Access-Control-Allow-Credentials", "true"),
        ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
        ("Access-Control-Allow-Headers", "content-type, x-custom"),
        ("Access-Control-Max-Age", "600"),
        ("Vary", "Origin, Access-Control-Request-Headers"),
    ]
    assert preflight_headers({"origin": ORIGIN}, "*", False) == [
        ("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
        ("Access-Control-Max-Age", "86400"),
    ]
    assert preflight_headers({"origin": "https://evil.com"}, [ORIGIN], True) is None
    assert preflight_headers({"origin": ORIGIN}, None, True) == []


def test_handle_preflight():
    ok = FakeRequest("OPTIONS", {"origin": ORIGIN})
    assert handle_preflight(ok, [ORIGIN], False)  # type: ignore[arg-type]
    status, headers, _ = ok.responses[0]
    assert status == 204 and ("Access-Control-Allow-Origin", ORIGIN) in headers

    refused = FakeRequest("OPTIONS", {"origin": "https://evil.com"})
    assert handle_preflight(refused, [ORIGIN], False)  # type: ignore[arg-type]
    assert refused.responses[0][0] == 403

    get = FakeRequest("GET", {"origin": ORIGIN})
    assert not handle_preflight(get, [ORIGIN], False)  # type: ignore[arg-type]
    assert get.responses == []


def test_preflight_over_http(run):
    def handler(request: Request) -> None:
        if not handle_preflight(request, [ORIGIN], True):
            request.respond(200, cors_headers(request.headers.get("origin"), [ORIGIN], True))

    async def main():
        async with serve({"/": handler}) as (_, port):
            status, headers, _ = await fetch(
                port,
                "OPTIONS",
                "/socket.io/",
                {"Origin": ORIGIN, "Access-Control-Request-Headers": "content-type"},
            )
            assert status == 204 and "content-length" not in headers
            assert headers["access-control-allow-headers"] == "content-type"
            assert headers["access-control-allow-credentials"] == "true"
            status, headers, _ = await fetch(port, "GET", "/", {"Origin": ORIGIN})
            assert headers["access-control-allow-origin"] == ORIGIN
            status, _, _ = await fetch(port, "OPTIONS", "/", {"Origin": "https://evil.com"})
            assert status == 403

    run(main())


def test_request_object_accepted_by_preflight_headers():
    request = Request(
        None, "OPTIONS", "/", "/", "", {"origin": ORIGIN}, ("", 0), False, "1.1", True
    )
    assert preflight_headers(request, "*", False)[0] == ("Access-Control-Allow-Origin", "*")
