"""The chat demo (examples/chat/app.py) instrumented for the Admin UI. Test-only.

    fastsio run tests/browser/chat_admin_app.py:sio

Same app, same handlers and page, plus ``sio.instrument()`` in development mode with the user
``admin`` and the password ``it's me`` (its bcrypt hash, as the UI's server side wants).
"""

from __future__ import annotations

import bcrypt
from chat_demo_module import load_chat_demo

USERNAME = "admin"
PASSWORD = "it's me"

demo = load_chat_demo()
sio = demo.sio
password_hash = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
sio.instrument(auth={"username": USERNAME, "password": password_hash})
