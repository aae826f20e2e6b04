"""The chat demo (examples/chat/app.py) with compression on. Test-only.

    fastsio run tests/browser/chat_deflate_app.py:sio

Same app, same handlers and page; what differs: ``per_message_deflate`` is on with a threshold
of 0 (every message that shrinks is sent compressed, so a chat line is), and one extra event,
``"compression"``, answers what the sender's connection agreed on and how many compressed
messages went each way (the test asks it from the page). Both options are read when the server
starts.
"""

from __future__ import annotations

from chat_demo_module import load_chat_demo

from fastsio.protocol import deflate

demo = load_chat_demo()
sio = demo.sio
sio.per_message_deflate = deflate.deflate_options({"threshold": 0})

# compressed frames the server built (all connections), counted in the shared Deflater's class
deflated = [0]
_frame = deflate.Deflater.frame


def _counting_frame(self, opcode, payload):
    frame = _frame(self, opcode, payload)
    if frame is not None:
        deflated[0] += 1
    return frame


deflate.Deflater.frame = _counting_frame


@sio.on("compression")
def compression(socket):
    session = socket.client.session
    conn = session._ws
    inflater = conn.inflater if conn is not None else None
    return {
        "transport": session.transport_name,
        "agreed": session.deflater is not None,
        "inflated": inflater.messages if inflater is not None else 0,
        "deflated": deflated[0],
    }
