"""FastAPI and Socket.IO on one port, with JSON Web Tokens: FastAPI logs users in and hands out
tokens, a fastsio middleware checks them on every Socket.IO connection, and a FastAPI route
emits to the connected clients.

From the repository root (``pip install fastapi pyjwt``):

    npm ci --prefix examples/fastapi_jwt   # the browser client, served at /socket.io/socket.io.js
    fastsio run examples/fastapi_jwt/app.py:asgi_app     # Socket.IO native, FastAPI bridged
    # or under any ASGI server:
    uvicorn --app-dir examples/fastapi_jwt app:asgi_app --port 8000

then open http://127.0.0.1:8000 and log in as alice / wonderland or bob / builder.

What it shows:
- ``fastsio.ASGIApp(sio, app)``: one ASGI app serving Socket.IO at ``/socket.io/`` and passing
  every other path to FastAPI (``fastsio run`` serves Socket.IO natively, at full speed);
- ``POST /login`` (FastAPI) checks a password and returns a signed token (PyJWT, HS256, one
  hour); the page sends it in socket.io-client's ``auth``;
- ``@sio.use``: the middleware refuses a missing, forged or expired token with a message the
  client's ``connect_error`` receives, and keeps the user in ``socket.data``;
- a room per user (``user:<name>``), so a private message reaches every tab of that user;
- ``POST /api/announce`` (FastAPI, the same token as a Bearer header) emits to every client
  from an ordinary HTTP route, and ``GET /api/online`` reads the connected sockets.

Settings (environment): JWT_SECRET. The user table is a stand-in: keep password hashes (bcrypt,
argon2) in a real one.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import jwt
from fastapi import Depends, FastAPI, Header, HTTPException
from pydantic import BaseModel

import fastsio

HERE = Path(__file__).parent
CLIENT_BUNDLE = HERE / "node_modules" / "socket.io-client" / "dist"
SECRET = os.environ.get("JWT_SECRET", "a development secret: set JWT_SECRET in production")
TOKEN_LIFETIME = 3600  # seconds
USERS = {"alice": "wonderland", "bob": "builder"}  # a stand-in for a user table

if not CLIENT_BUNDLE.is_dir():
    raise SystemExit(
        f"The browser client is missing ({CLIENT_BUNDLE}): run `npm ci --prefix {HERE}` first."
    )

app = FastAPI(title="fastsio + FastAPI + JWT")
sio = fastsio.Server(serve_client=CLIENT_BUNDLE)
asgi_app = fastsio.ASGIApp(sio, app, static_files=HERE / "public")


# -- tokens ----------------------------------------------------------------------------------------


def issue_token(user: str) -> str:
    now = int(time.time())
    return jwt.encode({"sub": user, "iat": now, "exp": now + TOKEN_LIFETIME}, SECRET, "HS256")


def user_of(token: str) -> str:
    """The token's user; ``jwt.InvalidTokenError`` when it is forged, expired or malformed."""
    return jwt.decode(token, SECRET, algorithms=["HS256"])["sub"]


# -- FastAPI: logging in, and HTTP routes that reach the Socket.IO clients ----------------------


class Credentials(BaseModel):
    username: str
    password: str


@app.post("/login")
def login(credentials: Credentials) -> dict:
    if USERS.get(credentials.username) != credentials.password:
        raise HTTPException(status_code=401, detail="wrong user name or password")
    return {"token": issue_token(credentials.username)}


def current_user(authorization: str = Header(default="")) -> str:
    scheme, _, token = authorization.partition(" ")
    try:
        if scheme.lower() != "bearer":
            raise jwt.InvalidTokenError("no bearer token")
        return user_of(token)
    except jwt.InvalidTokenError as exc:
        raise HTTPException(status_code=401, detail=str(exc)) from None


class Announcement(BaseModel):
    text: str


@app.post("/api/announce")
def announce(announcement: Announcement, user: str = Depends(current_user)) -> dict:
    sio.emit("announcement", {"from": user, "text": announcement.text})  # not awaited: it queues
    return {"ok": True, "clients": len(sio.sockets)}


@app.get("/api/online")
def online() -> dict:
    return {"users": sorted({socket.data["user"] for socket in sio.sockets.values()})}


# -- Socket.IO ---------------------------------------------------------------------------------


@sio.use
def authenticate(socket):
    token = socket.handshake.auth.get("token")
    if not isinstance(token, str):
        raise fastsio.ConnectionRefused("not authorized", data={"reason": "no token"})
    try:
        socket.data["user"] = user_of(token)
    except jwt.InvalidTokenError as exc:
        raise fastsio.ConnectionRefused("not authorized", data={"reason": str(exc)}) from None


@sio.on("connection")
def connected(socket):
    user = socket.data["user"]
    socket.join(f"user:{user}")  # every tab of this user
    socket.emit("welcome", {"user": user})


@sio.on("chat message")
def chat_message(socket, text):
    if not isinstance(text, str) or not text.strip():
        return {"ok": False, "error": "empty message"}
    socket.broadcast.emit("chat message", {"from": socket.data["user"], "text": text.strip()})
    return {"ok": True}


@sio.on("private message")
def private_message(socket, to, text):
    if to not in USERS:
        return {"ok": False, "error": f"no user {to!r}"}
    sio.to(f"user:{to}").emit("private message", {"from": socket.data["user"], "text": text})
    return {"ok": True}
