"""permessage-deflate with a real browser: headless Chromium (which always offers the extension
and compresses what it sends once agreed) on the chat demo served with compression on
(tests/browser/chat_deflate_app.py: threshold 0, so every chat line goes compressed both ways).
Two users chat, one of them with lines far above the default threshold; every line arrives intact
and the server says the extension was agreed and used in both directions."""

from __future__ import annotations

import pytest

from .test_chat_demo import ChatPage

TARGET = "tests/browser/chat_deflate_app.py:sio"

COMPRESSION_JS = """() => new Promise((resolve) => socket.emit("compression", resolve))"""


@pytest.mark.browser
def test_chat_with_permessage_deflate(chat_bundle, chat_server, browser) -> None:
    chat_bundle("v4")
    server = chat_server(TARGET)
    browser.servers.append(server)
    base = server.url
    alice = ChatPage(browser.new_page("alice", f"{base}/?room=lobby"), "alice")
    alice.join()
    bob = ChatPage(browser.new_page("bob", f"{base}/?room=lobby"), "bob")
    bob.join()
    for page in (alice, bob):
        page.wait_until(lambda page=page: page.transport() == "websocket", "the upgrade")

    lines = [
        "hello bob",
        "a longer line: " + "the meeting is at noon, see you there " * 12,  # ~470 characters
        "ünïcödé ✓ " * 40,
    ]
    for text in lines:
        alice.send(text.strip()[:500])
        bob.wait_message("alice", text.strip()[:500])
    bob.send("got them all")
    alice.wait_message("bob", "got them all")

    for page in (alice, bob):
        stats = page.page.evaluate(COMPRESSION_JS)
        assert stats["transport"] == "websocket" and stats["agreed"], stats
        assert stats["inflated"] >= 1, stats  # Chromium compressed what it sent
        assert stats["deflated"] >= len(lines), stats  # and the server what it sent
    assert not browser.errors, browser.errors
