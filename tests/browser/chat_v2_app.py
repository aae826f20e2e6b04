"""The chat demo (examples/chat/app.py), served for a socket.io-client 2.x page. Test-only.

    fastsio run tests/browser/chat_v2_app.py:sio

Same app, same handlers and page; two options differ: ``/socket.io/socket.io.js`` is the 2.5.0
bundle from tests/browser/node_modules (``npm ci --prefix tests/browser``), and Engine.IO v3 clients
(``EIO=3``, what 2.x speaks) are accepted (``allow_eio3``). Both are read when the server starts.
"""

from __future__ import annotations

from pathlib import Path

from chat_demo_module import load_chat_demo

HERE = Path(__file__).resolve().parent
V2_BUNDLE = HERE / "node_modules" / "socket.io-client" / "dist"

if not (V2_BUNDLE / "socket.io.js").is_file():
    raise SystemExit(
        f"The 2.x client is missing ({V2_BUNDLE}): run `npm ci --prefix {HERE}` first."
    )

demo = load_chat_demo()
sio = demo.sio
sio.serve_client = V2_BUNDLE
sio.allow_eio3 = True
