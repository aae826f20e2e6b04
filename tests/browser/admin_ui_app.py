"""The Admin UI's page: the built files of @socket.io/admin-ui 0.5.1 (tests/admin_ui, installed
with ``npm ci --prefix tests/admin_ui``), served as static files. Test-only.

    fastsio run tests/browser/admin_ui_app.py:sio

The page is only served from here; it connects to the server it is told (the instrumented
demo, tests/browser/chat_admin_app.py), across origins as the hosted UI does.
"""

from __future__ import annotations

from pathlib import Path

import fastsio

PACKAGES = Path(__file__).resolve().parents[1] / "admin_ui"
UI = PACKAGES / "node_modules" / "@socket.io" / "admin-ui" / "ui" / "dist"

if not (UI / "index.html").is_file():
    raise SystemExit(f"The Admin UI is missing ({UI}): run `npm ci --prefix {PACKAGES}` first.")

sio = fastsio.Server(static_files=UI)
