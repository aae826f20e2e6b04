"""Names for the Engine.IO values the engine writes and checks: packet types, the server's error
codes and messages, the content types of its answers (engine.io-protocol v3 and v4 alike)."""

from __future__ import annotations

from ..http.request import PreparedHeaders

# Packet types as the payload decoders return them (ints; the same in v3 and v4).
from ..protocol.engineio import CLOSE, MESSAGE, NOOP, OPEN, PING, PONG, UPGRADE

# The same packet types as the first character of a text packet: the engine compares and
# concatenates these strings on the per-message path, with no conversion.
OPEN_PACKET = "0"
CLOSE_PACKET = "1"
PING_PACKET = "2"
PONG_PACKET = "3"
MESSAGE_PREFIX = "4"  # followed by the message
UPGRADE_PACKET = "5"
NOOP_PACKET = "6"

#: packet type of a text packet, by its first character
TEXT_PACKET_TYPES = {
    OPEN_PACKET: OPEN,
    CLOSE_PACKET: CLOSE,
    PING_PACKET: PING,
    PONG_PACKET: PONG,
    MESSAGE_PREFIX: MESSAGE,
    UPGRADE_PACKET: UPGRADE,
    NOOP_PACKET: NOOP,
}

# The upgrade probe (spec: "Upgrade"): the client pings the new WebSocket with "probe", the
# server answers with a pong carrying the same data.
PING_PROBE = PING_PACKET + "probe"
PONG_PROBE = PONG_PACKET + "probe"

# Error answers: HTTP 400/403 with {"code": ..., "message": ...} (Node's Server.errors).
TRANSPORT_UNKNOWN = 0
SESSION_ID_UNKNOWN = 1
BAD_HANDSHAKE_METHOD = 2
BAD_REQUEST = 3
FORBIDDEN = 4
UNSUPPORTED_PROTOCOL_VERSION = 5

ERROR_MESSAGES = {
    TRANSPORT_UNKNOWN: "Transport unknown",
    SESSION_ID_UNKNOWN: "Session ID unknown",
    BAD_HANDSHAKE_METHOD: "Bad handshake method",
    BAD_REQUEST: "Bad request",
    FORBIDDEN: "Forbidden",
    UNSUPPORTED_PROTOCOL_VERSION: "Unsupported protocol version",
}

# Content types of the engine's answers.
TEXT_PLAIN = "text/plain; charset=UTF-8"  # a polling payload
OCTET_STREAM = "application/octet-stream"  # a binary (XHR2) polling payload, v3 only
TEXT_HTML = "text/html"  # the "ok" of a POST (as Node: no download dialog in old browsers)
APPLICATION_JSON = "application/json"  # an error answer

#: the headers of the engine's answers without CORS or the app's headers, by content type:
#: made once (see PreparedHeaders)
CONTENT_TYPE_HEADERS = {
    content_type: PreparedHeaders([("Content-Type", content_type)])
    for content_type in (TEXT_PLAIN, OCTET_STREAM, TEXT_HTML, APPLICATION_JSON)
}

__all__ = [
    "APPLICATION_JSON",
    "BAD_HANDSHAKE_METHOD",
    "BAD_REQUEST",
    "CLOSE",
    "CLOSE_PACKET",
    "CONTENT_TYPE_HEADERS",
    "ERROR_MESSAGES",
    "FORBIDDEN",
    "MESSAGE",
    "MESSAGE_PREFIX",
    "NOOP",
    "NOOP_PACKET",
    "OCTET_STREAM",
    "OPEN",
    "OPEN_PACKET",
    "PING",
    "PING_PACKET",
    "PING_PROBE",
    "PONG",
    "PONG_PACKET",
    "PONG_PROBE",
    "SESSION_ID_UNKNOWN",
    "TEXT_HTML",
    "TEXT_PACKET_TYPES",
    "TEXT_PLAIN",
    "TRANSPORT_UNKNOWN",
    "UNSUPPORTED_PROTOCOL_VERSION",
    "UPGRADE",
    "UPGRADE_PACKET",
]
