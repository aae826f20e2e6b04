"""The app the --workers tests run: every handler tells which worker process answered."""

import os

import fastsio

sio = fastsio.Server(cors_allowed_origins="*")


@sio.on("whoami")
def whoami(socket):
    return os.getpid()


@sio.on("shout")
def shout(socket, msg):
    sio.emit("heard", msg, os.getpid())


@sio.on("join")
def join(socket, room):
    socket.join(room)
    return os.getpid()


@sio.on("to_room")
def to_room(socket, room, msg):
    sio.to(room).emit("room_msg", msg)


@sio.on("everyone_join")
def everyone_join(socket, room):
    sio.sockets_join(room)


@sio.on("fetch")
async def fetch(socket, room=None):
    operator = sio.in_(room) if room else sio
    return sorted(s.id for s in await operator.fetch_sockets())


@sio.on("servers")
async def servers(socket):
    return sorted(await sio.server_side_emit_with_ack("pid", timeout=3))


@sio.on("poll_all")
async def poll_all(socket):
    return sorted(await sio.timeout(3).emit_with_ack("poll"))


@sio.on("kick")
def kick(socket, sid):
    sio.in_(sid).disconnect_sockets()


@sio.on_server_event("pid")
def pid():
    return os.getpid()
