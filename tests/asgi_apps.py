"""ASGI apps wrapped by fastsio.ASGIApp for tests/test_asgi.py: the same Socket.IO server beside
a FastAPI app and a Starlette app, each with a route, a lifespan and a WebSocket route of its
own. Served by ``uvicorn tests.asgi_apps:fastapi_app`` or ``fastsio run
tests/asgi_apps.py:fastapi_app``.

``ASGI_TEST_EVENTS``: a file each lifespan step appends a line to (startup, shutdown), so the
test sees the app's lifespan ran under either server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute

import fastsio


def record(line: str) -> None:
    path = os.environ.get("ASGI_TEST_EVENTS")
    if path:
        with open(path, "a") as file:
            file.write(line + "\n")


def make_sio() -> fastsio.Server:
    sio = fastsio.Server(cors_allowed_origins="*")

    @sio.on("echo")
    def echo(socket, *args):
        return args

    @sio.on("secure?")
    def secure(socket):
        return socket.handshake.secure

    @sio.route("/health")
    def health(request):
        return {"status": "ok", "clients": len(sio.sockets)}

    return sio


# -- FastAPI ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def fastapi_lifespan(app: FastAPI):
    record("fastapi startup")
    app.state.greeting = "hello from the lifespan"
    yield {"started": True}
    record("fastapi shutdown")


fastapi = FastAPI(lifespan=fastapi_lifespan)
fastapi_sio = make_sio()


@fastapi.get("/items/{item_id}")
async def read_item(item_id: int, request: Request, q: str | None = None):
    return {
        "item_id": item_id,
        "q": q,
        "greeting": request.app.state.greeting,
        "state": request.state.started,
    }


@fastapi.post("/echo")
async def echo_body(request: Request):
    body = await request.body()
    return {"length": len(body), "head": body[:16].decode("latin-1")}


@fastapi.get("/stream")
async def stream(parts: int = 5):
    async def generate():
        for i in range(parts):
            yield f"part {i}\n".encode()
            await asyncio.sleep(0)

    return StreamingResponse(generate(), media_type="text/plain")


@fastapi.get("/broadcast")
async def broadcast(message: str):
    fastapi_sio.emit("news", message)  # the app emitting to the Socket.IO clients
    return {"sent": message}


@fastapi.get("/fail")
async def fail():
    raise RuntimeError("boom")


@fastapi.websocket("/ws")
async def websocket_echo(websocket: WebSocket):
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            await websocket.send_text(f"echo: {text}")
    except WebSocketDisconnect:
        pass


async def no_answer(scope, receive, send):
    """A raw ASGI app that returns without answering (the bridge must answer 500)."""
    if scope["type"] == "lifespan":
        return


fastapi_app = fastsio.ASGIApp(fastapi_sio, fastapi)
no_answer_app = fastsio.ASGIApp(make_sio(), no_answer)


# -- Starlette ----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def starlette_lifespan(app: Starlette):
    record("starlette startup")
    yield {"started": True}
    record("starlette shutdown")


async def starlette_home(request):
    return PlainTextResponse(f"starlette home, started={request.state.started}")


async def starlette_json(request):
    return JSONResponse({"path": request.url.path, "query": dict(request.query_params)})


async def starlette_ws(websocket):
    await websocket.accept()
    async for data in websocket.iter_bytes():
        await websocket.send_bytes(data[::-1])


starlette = Starlette(
    routes=[
        Route("/", starlette_home),
        Route("/json", starlette_json),
        WebSocketRoute("/ws", starlette_ws),
    ],
    lifespan=starlette_lifespan,
)
starlette_app = fastsio.ASGIApp(make_sio(), starlette)
