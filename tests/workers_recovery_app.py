"""The app the --workers recovery tests run: connection state recovery on, and handlers that
tell which worker process answered and what the socket looks like."""

import os

import fastsio

sio = fastsio.Server(cors_allowed_origins="*", connection_state_recovery=True)


@sio.on("whoami")
def whoami(socket):
    return os.getpid()


@sio.on("join")
def join(socket, room):
    socket.join(room)
    socket.data = {"room": room}
    return os.getpid()


@sio.on("to_room")
def to_room(socket, room, msg, volatile=False):
    (sio.volatile if volatile else sio).to(room).emit("room_msg", msg)


@sio.on("to_me_later")
def to_me_later(socket, sid, msg):
    # another client asks: socket.emit to a (disconnected) socket of any worker goes through
    # the adapter, so it is logged and replayed
    sio.to(sid).emit("room_msg", msg)


@sio.on("check")
def check(socket):
    return {
        "pid": os.getpid(),
        "recovered": socket.recovered,
        "rooms": sorted(socket.rooms),
        "data": socket.data,
    }
