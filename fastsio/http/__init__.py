"""fastsio's own HTTP/1.1 + WebSocket server on httptools: routing, CORS, static files."""

from .._impl import WebSocketConnection
from .cors import cors_headers, handle_preflight, origin_allowed, preflight_headers
from .request import Request
from .server import HttpServer
from .static import StaticFile, StaticFiles, guess_content_type, send_file

__all__ = [
    "HttpServer",
    "Request",
    "StaticFile",
    "StaticFiles",
    "WebSocketConnection",
    "cors_headers",
    "guess_content_type",
    "handle_preflight",
    "origin_allowed",
    "preflight_headers",
    "send_file",
]
