"""The socket.io chat tutorial, served by fastsio.

From the repository root:

    npm ci --prefix examples/chat          # the browser client, served at /socket.io/socket.io.js
    fastsio run examples/chat/app.py:sio

then open http://127.0.0.1:8000/?room=lobby in two browser tabs. No internet access is needed: the
page, its style sheet and the socket.io client all come from this server.

What it shows:
- a middleware (``@sio.use``) that refuses a connection without a valid user name;
- the user name kept in ``socket.data``; rooms named by the page's ``?room=`` parameter;
- messages to the sender's room only (``socket.to(room).emit``), acknowledged to the sender
  (the handler's return value is the ack, which the page shows as a check mark);
- private replies with ``socket.emit`` (type ``/whoami`` or ``/users``);
- "joined" / "left" notices and a typing indicator;
- a second namespace, ``/stats``, that pushes the number of connected users every few seconds
  (and at once when someone joins or leaves).

The page is written for socket.io-client 4.x; a few small shims (marked "2.x:" in chat.js) let it
run with a 2.x client too, on a server with ``allow_eio3=True`` (tests/browser/chat_v2_app.py).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import fastsio

HERE = Path(__file__).parent
CLIENT_BUNDLE = HERE / "node_modules" / "socket.io-client" / "dist"
STATS_INTERVAL = 3.0  # seconds between two pushes on /stats
MAX_NAME_LENGTH = 24
MAX_MESSAGE_LENGTH = 500
ROOM_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

if not CLIENT_BUNDLE.is_dir():
    raise SystemExit(
        f"The browser client is missing ({CLIENT_BUNDLE}): run `npm ci --prefix {HERE}` first."
    )

sio = fastsio.Server(
    serve_client=CLIENT_BUNDLE,
    static_files=HERE / "public",
    cors_allowed_origins="*",
)
stats = sio.of("/stats")  # a second namespace, for the counts panel (see the end of this file)

# The names of the people in each room, by socket id: the page shows who is here.
members: dict[str, dict[str, str]] = {}


def room_members(room: str) -> list[str]:
    return sorted(members.get(room, {}).values(), key=str.lower)


@sio.use
def require_name(socket):
    """Refuse the connection unless the client sends ``auth: {name}``; pick the room."""
    # socket.io-client 2.x has no auth payload: the page sends the name in the query too
    name = socket.handshake.auth.get("name") or socket.handshake.query.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fastsio.ConnectionRefused("Please choose a name", data={"field": "name"})
    name = " ".join(name.split())
    if len(name) > MAX_NAME_LENGTH:
        raise fastsio.ConnectionRefused(
            f"Names are at most {MAX_NAME_LENGTH} characters", data={"field": "name"}
        )
    room = socket.handshake.query.get("room") or "general"
    if not ROOM_NAME.match(room):
        raise fastsio.ConnectionRefused(
            "Room names use letters, digits, '-' and '_'", data={"field": "room"}
        )
    socket.data["name"] = name
    socket.data["room"] = room


@sio.on("connection")
def on_connect(socket):
    name, room = socket.data["name"], socket.data["room"]
    socket.join(room)
    members.setdefault(room, {})[socket.id] = name
    socket.to(room).emit("user joined", {"name": name})
    sio.to(room).emit("members", room_members(room))  # everyone in the room, newcomer included
    stats.emit("stats", current_stats())


@sio.on("chat message")
def on_chat_message(socket, text):
    """Send the message to the others in the room; the return value is the sender's ack."""
    if not isinstance(text, str) or not text.strip():
        return {"ok": False, "error": "empty message"}
    text = text.strip()[:MAX_MESSAGE_LENGTH]
    if text.startswith("/"):
        return run_command(socket, text)
    socket.to(socket.data["room"]).emit("chat message", {"name": socket.data["name"], "text": text})
    return {"ok": True}


def run_command(socket, text: str) -> dict:
    """Commands are answered to the sender only (``socket.emit``), never to the room."""
    command = text.split()[0].lower()
    room = socket.data["room"]
    if command == "/whoami":
        reply = f"You are {socket.data['name']} in #{room} (socket id {socket.id})."
    elif command == "/users":
        reply = f"In #{room}: {', '.join(room_members(room))}."
    else:
        reply = f"Unknown command {command}. Try /whoami or /users."
    socket.emit("private", reply)
    return {"ok": True, "private": True}


@sio.on("typing")
def on_typing(socket, is_typing):
    # volatile: a typing notice may be dropped for a client that is not ready; it is stale soon.
    socket.volatile.to(socket.data["room"]).emit(
        "typing", {"name": socket.data["name"], "typing": bool(is_typing)}
    )


@sio.on("disconnect")
def on_disconnect(socket, reason):
    name, room = socket.data["name"], socket.data["room"]
    in_room = members.get(room, {})
    in_room.pop(socket.id, None)
    if not in_room:
        members.pop(room, None)
    sio.to(room).emit("user left", {"name": name})
    sio.to(room).emit("members", room_members(room))
    stats.emit("stats", current_stats())


# -- the /stats namespace: a small panel on the page, multiplexed on the same connection ----------

_stats_timer: asyncio.TimerHandle | None = None


def current_stats() -> dict:
    return {
        "users": len(sio.sockets),
        "rooms": {room: len(names) for room, names in sorted(members.items())},
    }


def push_stats() -> None:
    global _stats_timer
    stats.emit("stats", current_stats())
    _stats_timer = asyncio.get_running_loop().call_later(STATS_INTERVAL, push_stats)


@stats.on("connection")
def on_stats_connect(socket):
    if _stats_timer is None:  # the first viewer starts the periodic push
        push_stats()
    else:
        socket.emit("stats", current_stats())  # at once, rather than at the next push
