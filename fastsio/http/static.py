"""Static files: a directory (``StaticFiles``) or one fixed file (``StaticFile``).

Files are read synchronously in the handler: they are small (an index page, the socket.io
client bundle) and a thread hop would cost more than the read.
"""

from __future__ import annotations

import mimetypes
import os
import stat
from collections.abc import Callable, Iterable
from email.utils import formatdate, parsedate_to_datetime
from urllib.parse import quote

from .request import Request

_TEXT_PLAIN = [("Content-Type", "text/plain; charset=utf-8")]
_ALLOW = [("Allow", "GET, HEAD"), *_TEXT_PLAIN]

# Fixed answers for the common web types: mimetypes depends on the host's /etc/mime.types
# (some map .js to application/x-javascript).
_TYPES = {
    ".html": "text/html",
    ".htm": "text/html",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".map": "application/json",
    ".txt": "text/plain",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
    ".ico": "image/x-icon",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
}
_UTF8_TYPES = ("application/json", "application/javascript", "application/xml", "image/svg+xml")


def guess_content_type(path: str) -> str:
    """Content-Type for a file name; text types get ``; charset=utf-8``."""
    content_type = _TYPES.get(os.path.splitext(path)[1].lower())
    if content_type is None:
        guessed, encoding = mimetypes.guess_type(path)
        # "app.js.gz" guesses as JavaScript with gzip encoding: serving that as JavaScript
        # without Content-Encoding would be wrong, so it is plain bytes.
        content_type = guessed if guessed and not encoding else "application/octet-stream"
    if content_type.startswith("text/") or content_type in _UTF8_TYPES:
        content_type += "; charset=utf-8"
    return content_type


def _etag_matches(if_none_match: str, etag: str) -> bool:
    if if_none_match.strip() == "*":
        return True
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        candidate = candidate.removeprefix("W/")
        if candidate == etag:
            return True
    return False


def _not_modified(request: Request, etag: str, mtime: float) -> bool:
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        # RFC 9110 13.1.3: If-Modified-Since is ignored when If-None-Match is present.
        return _etag_matches(if_none_match, etag)
    if_modified_since = request.headers.get("if-modified-since")
    if if_modified_since is None:
        return False
    try:
        since = parsedate_to_datetime(if_modified_since).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return False
    return int(mtime) <= since


def send_file(
    request: Request,
    path: str,
    content_type: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
) -> None:
    """Answer ``request`` with the file at ``path`` (404 if it is not a readable regular
    file), with ETag/Last-Modified validation (304) and HEAD support."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        request.respond(404, _TEXT_PLAIN, b"Not Found")
        return
    if not stat.S_ISREG(info.st_mode):
        request.respond(404, _TEXT_PLAIN, b"Not Found")
        return
    etag = f'"{info.st_mtime_ns:x}-{info.st_size:x}"'
    validators = [
        ("ETag", etag),
        ("Last-Modified", formatdate(info.st_mtime, usegmt=True)),
        # Revalidate every time (a cheap 304): a development server must not serve stale JS.
        ("Cache-Control", "no-cache"),
        *headers,
    ]
    if _not_modified(request, etag, info.st_mtime):
        request.respond(304, validators)
        return
    response_headers = [("Content-Type", content_type or guess_content_type(path)), *validators]
    if request.method == "HEAD":
        response_headers.append(("Content-Length", str(info.st_size)))
        request.respond(200, response_headers)
        return
    try:
        with open(path, "rb") as file:
            body = file.read()
    except OSError:
        request.respond(404, _TEXT_PLAIN, b"Not Found")
        return
    request.respond(200, response_headers, body)


class StaticFiles:
    """Serve the files under ``directory`` (GET/HEAD), ``index`` for directories. Mount it at
    a prefix: the part of the path after the prefix names the file.

    Paths that would leave the directory (``..``, ``%2e%2e``, ``..%2f``, symlinks pointing
    outside) are answered 404, like missing files. With a ``fallback`` handler, a request that
    names no file (or is not a GET/HEAD) goes to it instead (a wrapped ASGI app, say).
    """

    def __init__(
        self,
        directory: str,
        index: str | None = "index.html",
        fallback: Callable[[Request], None] | None = None,
    ) -> None:
        self.directory = os.path.realpath(directory)
        self.index = index
        self.fallback = fallback
        self._root_prefix = (
            self.directory if self.directory.endswith(os.sep) else self.directory + os.sep
        )

    def resolve(self, relative_path: str) -> str | None:
        """The real file system path for a (percent-decoded) URL path below the mount, or None
        if it is outside the directory."""
        if "\x00" in relative_path:
            return None
        parts = []
        for segment in relative_path.split("/"):
            if segment in ("", "."):
                continue
            if (
                segment == ".."
                or os.sep in segment
                or (os.altsep and os.altsep in segment)
                or os.path.isabs(segment)
                or os.path.splitdrive(segment)[0]
            ):
                return None
            parts.append(segment)
        return self._inside(os.path.join(self.directory, *parts))

    def _inside(self, path: str) -> str | None:
        full = os.path.realpath(path)
        if full != self.directory and not full.startswith(self._root_prefix):
            return None  # a symlink pointing outside
        return full

    def __call__(self, request: Request) -> None:
        fallback = self.fallback
        if request.method not in ("GET", "HEAD"):
            if fallback is not None:
                fallback(request)
            else:
                request.respond(405, _ALLOW, b"Method Not Allowed")
            return
        relative_path = request.path[len(request.mount_path) :]
        full = self.resolve(relative_path)
        if fallback is not None and (full is None or not os.path.exists(full)):
            fallback(request)
            return
        if full is None:
            request.respond(404, _TEXT_PLAIN, b"Not Found")
            return
        if os.path.isdir(full):
            if not request.path.endswith("/"):
                # Relative links in the index page resolve against the directory only with
                # the trailing slash.
                raw_path, _, query = request.url.partition("?")
                if not raw_path.startswith("/"):
                    raw_path = quote(request.path)
                location = raw_path + "/" + ("?" + query if query else "")
                request.respond(301, [("Location", location), *_TEXT_PLAIN], b"Moved Permanently")
                return
            if not self.index:
                request.respond(404, _TEXT_PLAIN, b"Not Found")
                return
            full = self._inside(os.path.join(full, self.index))
            if full is None:
                request.respond(404, _TEXT_PLAIN, b"Not Found")
                return
        send_file(request, full)


class StaticFile:
    """Serve one fixed file (GET/HEAD) at whatever path it is mounted, e.g. the socket.io client
    bundle at ``/socket.io/socket.io.js``."""

    def __init__(self, path: str, content_type: str | None = None) -> None:
        self.path = os.path.realpath(path)
        self.content_type = content_type or guess_content_type(path)

    def __call__(self, request: Request) -> None:
        if request.method not in ("GET", "HEAD"):
            request.respond(405, _ALLOW, b"Method Not Allowed")
            return
        if request.path[len(request.mount_path) :] not in ("", "/"):
            request.respond(404, _TEXT_PLAIN, b"Not Found")
            return
        send_file(request, self.path, self.content_type)
