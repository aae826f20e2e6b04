"""The chat demo (examples/chat) end to end, in headless Chromium.

The test starts the demo with ``fastsio run`` on a free port and drives three real pages: alice and
bob chat in ``/?room=lobby`` (names typed into the page's dialog, alice's first one refused by the
server and asked again; messages typed and sent with Enter, the "✓ delivered" ack marker checked),
carol joins ``/?room=other`` and sees only that room's messages (and they only theirs), bob reloads
his page and is back (his name kept by the page), then the server process is stopped (until every
page has failed to reconnect once and shows it, without asking for a name again) and started again
on the same port, and every open page reconnects by itself and chats again. carol's page is refused
WebSockets, so both transports are used: WebSocket (alice, bob) and HTTP long-polling (carol).

It runs once per client bundle served at ``/socket.io/socket.io.js``: "v4" is the demo's own
(socket.io-client 4.8), "v2" is socket.io-client 2.5.0 (tests/browser/package.json) with the server
accepting Engine.IO v3 (tests/browser/chat_v2_app.py). On failure every page is screenshotted
(see conftest.py). Every wait is bounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from .conftest import http_get

TARGETS = {"v4": "examples/chat/app.py:sio", "v2": "tests/browser/chat_v2_app.py:sio"}
BANNERS = {"v4": b"Socket.IO v4.8", "v2": b"Socket.IO v2.5.0"}

#: What the page's name dialog says when the middleware refuses a blank name: 4.x shows the
#: refusal's message; 2.x gets only its data ({"field": "name"}), which the page words itself.
REFUSED_NAME = {"v4": "Please choose a name", "v2": "Please check the name"}

#: What #messages shows, as a list of dicts: {"kind": "mine"|"message", "name", "text",
#: "delivery"} for a chat message, {"kind": "notice"|"private", "text"} for the others.
ENTRIES_JS = """() => [...document.querySelectorAll("#messages li")].map((li) => {
  const text = (cls) => { const el = li.querySelector("." + cls); return el ? el.textContent : null; };
  if (li.querySelector(".name")) {
    return { kind: li.classList.contains("mine") ? "mine" : "message",
             name: text("name"), text: text("text"), delivery: text("delivery") };
  }
  const span = li.querySelector("span");
  return { kind: span ? span.className : "?", text: li.textContent };
})"""

STATE_JS = """() => ({
  status: document.getElementById("status").textContent,
  online: document.getElementById("status").classList.contains("online"),
  members: [...document.querySelectorAll("#members li")].map((li) => li.textContent),
  users: document.getElementById("stats-users").textContent,
  room: document.getElementById("room-name").textContent,
  dialog: document.getElementById("name-dialog").open,
  error: document.getElementById("name-error").textContent,
})"""


class ChatPage:
    """One user's page, read through the DOM the way a person would see it."""

    def __init__(self, page: Any, name: str) -> None:
        self.page = page
        self.name = name

    # -- reading

    def entries(self) -> list[dict]:
        return self.page.evaluate(ENTRIES_JS)

    def state(self) -> dict:
        return self.page.evaluate(STATE_JS)

    def received(self) -> list[tuple[str, str]]:
        """Others' messages, in order, as (name, text)."""
        return [(e["name"], e["text"]) for e in self.entries() if e["kind"] == "message"]

    def transport(self) -> str | None:
        """The client's Engine.IO transport (not on the page: a check of the test's setup)."""
        return self.page.evaluate("() => socket.io.engine && socket.io.engine.transport.name")

    def notices(self) -> list[str]:
        return [e["text"] for e in self.entries() if e["kind"] == "notice"]

    def wait_until(self, check: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name}'s page: no {what} within {timeout} s\n"
                    f"  state: {self.state()}\n  messages: {self.entries()}"
                )
            time.sleep(0.1)

    # -- doing

    def join(self) -> None:
        """Types the name into the dialog the page opens and waits until connected."""
        self.page.locator("#name-dialog").wait_for(state="visible")
        self.page.fill("#name-input", self.name)
        self.page.click("#name-form button")
        self.wait_connected()

    def join_refused(self, name: str, error: str) -> None:
        """Types a name the server refuses; waits until the dialog is back and says ``error``."""
        self.page.locator("#name-dialog").wait_for(state="visible")
        self.page.fill("#name-input", name)
        self.page.click("#name-form button")
        self.wait_until(
            lambda: (s := self.state())["dialog"] and s["error"] == error and not s["online"],
            f"the name dialog back, saying {error!r}",
        )

    def wait_connected(self, timeout: float = 10.0) -> None:
        expected = f"connected as {self.name}"
        self.wait_until(
            lambda: (s := self.state())["online"] and s["status"] == expected and not s["dialog"],
            f"'{expected}'",
            timeout,
        )

    def wait_offline(self, timeout: float = 10.0) -> str:
        def offline() -> str | None:
            state = self.state()
            return None if state["online"] else state["status"]

        return self.wait_until(offline, "offline status", timeout)

    def wait_retrying(self, timeout: float = 10.0) -> None:
        """Waits until a failed reconnection attempt shows as "reconnecting…"; the page must not
        take it for a refusal (ask for the name again)."""

        def retrying() -> bool:
            state = self.state()
            if state["dialog"]:
                raise AssertionError(f"{self.name}'s page asks for a name again: {state}")
            return state["status"] == "reconnecting…"

        self.wait_until(retrying, "'reconnecting…' status", timeout)

    def send(self, text: str, delivery: str = "✓ delivered") -> None:
        """Types ``text``, presses Enter, and waits for the server's ack marker on it."""
        self.page.fill("#input", text)
        self.page.press("#input", "Enter")

        def acked() -> bool:
            mine = [e for e in self.entries() if e["kind"] == "mine" and e["text"] == text]
            marker = mine[-1]["delivery"] if mine else None
            if marker not in (None, "sending…", delivery):  # settled, and wrong: fail at once
                raise AssertionError(f"{self.name}'s page shows {marker!r} on {text!r}")
            return marker == delivery

        self.wait_until(acked, f"'{delivery}' on {text!r}")

    def wait_message(self, name: str, text: str, timeout: float = 10.0) -> None:
        self.wait_until(lambda: (name, text) in self.received(), f"message {name}: {text!r}",
                        timeout)  # fmt: skip

    def wait_notice(self, text: str, count: int = 1) -> None:
        self.wait_until(lambda: self.notices().count(text) >= count, f"{count} x notice {text!r}")

    def wait_members(self, names: list[str]) -> None:
        self.wait_until(lambda: self.state()["members"] == names, f"members {names}")


def check_the_server(base: str, bundle: str) -> None:
    """The page's client is the bundle under test; for v2 the server accepts Engine.IO v3."""
    status, script = http_get(f"{base}/socket.io/socket.io.js")
    assert status == 200 and BANNERS[bundle] in script[:300], script[:300]
    if bundle == "v2":
        try:
            status, body = http_get(f"{base}/socket.io/?EIO=3&transport=polling")
        except OSError as exc:  # urllib raises HTTPError (an OSError) on a 400
            raise AssertionError(f"the server refuses an Engine.IO v3 handshake: {exc}") from None
        assert status == 200, body


def check_transports(upgraded: list[ChatPage], polling: ChatPage) -> None:
    for page in upgraded:
        page.wait_until(lambda page=page: page.transport() == "websocket", "the WebSocket upgrade")
    assert polling.transport() == "polling"


@pytest.mark.browser
@pytest.mark.parametrize("bundle", ["v4", "v2"])
def test_chat_demo_in_chromium(bundle: str, chat_bundle, chat_server, browser) -> None:
    chat_bundle(bundle)
    server = chat_server(TARGETS[bundle])
    browser.servers.append(server)
    base = server.url
    check_the_server(base, bundle)

    # -- three users: alice and bob in #lobby, carol in #other (the room comes from the URL)
    alice = ChatPage(browser.new_page("alice", f"{base}/?room=lobby"), "alice")
    # a blank name: the server's middleware refuses it, the page asks again, the retry gets in
    alice.join_refused("   ", REFUSED_NAME[bundle])
    alice.join()
    bob = ChatPage(browser.new_page("bob", f"{base}/?room=lobby"), "bob")
    bob.join()
    # carol's page gets no WebSocket: it stays on HTTP long-polling throughout (the others upgrade)
    carol = ChatPage(browser.new_page("carol", f"{base}/?room=other", websocket=False), "carol")
    carol.join()
    lobby, everyone = [alice, bob], [alice, bob, carol]
    check_transports(lobby, carol)

    for page in lobby:
        page.wait_members(["alice", "bob"])
        assert page.state()["room"] == "#lobby"
    carol.wait_members(["carol"])
    assert carol.state()["room"] == "#other"
    alice.wait_notice("bob joined #lobby")
    for page in everyone:  # the /stats namespace, multiplexed on the same connection
        page.wait_until(lambda page=page: page.state()["users"] == "3", "'3 online' from /stats")

    # -- two pages chat; the sender sees the server's ack
    alice.send("hello from alice")
    bob.wait_message("alice", "hello from alice")
    bob.send("hi alice, bob here")
    alice.wait_message("bob", "hi alice, bob here")

    # -- the other room: carol's own ack comes after any lobby message sent to her connection
    # (one connection delivers in order), so by then she would have seen one by mistake
    carol.send("anyone in #other?")
    alice.send("still there, bob?")
    bob.wait_message("alice", "still there, bob?")
    assert carol.received() == []
    assert alice.received() == [("bob", "hi alice, bob here")]
    assert bob.received() == [("alice", "hello from alice"), ("alice", "still there, bob?")]
    assert not any("carol" in notice for notice in alice.notices() + bob.notices())

    # -- a private reply goes to the sender only
    alice.send("/whoami", delivery="✓ (private reply)")
    alice.wait_until(
        lambda: any(e["kind"] == "private" and "You are alice in #lobby" in e["text"]
                    for e in alice.entries()),
        "the private /whoami reply",
    )  # fmt: skip
    bob.send("ok")  # a barrier on bob's connection: the reply would have reached him by now
    alice.wait_message("bob", "ok")
    assert not any(e["kind"] == "private" for e in bob.entries() + carol.entries())

    # -- bob reloads: the page reconnects with the name it kept, and chats again
    bob.page.reload()
    bob.wait_connected()
    assert bob.notices()[0] == "you joined #lobby as bob"
    alice.wait_notice("bob left")
    alice.wait_notice("bob joined #lobby", count=2)
    alice.wait_members(["alice", "bob"])
    bob.send("back after a reload")
    alice.wait_message("bob", "back after a reload")
    alice.send("welcome back")
    bob.wait_message("alice", "welcome back")

    # -- the server restarts on the same port: every open page reconnects by itself
    server.stop()
    for page in everyone:
        page.wait_offline()
    for page in everyone:  # the server stays down until every page has failed to reconnect once
        page.wait_retrying()
    server.start()
    for page in everyone:
        page.wait_connected(timeout=20)  # socket.io-client's backoff: 1 s, 2 s, 4 s, 5 s...
    alice.wait_notice("you joined #lobby as alice", count=2)
    carol.wait_notice("you joined #other as carol", count=2)
    for page in lobby:
        page.wait_members(["alice", "bob"])
    carol.wait_members(["carol"])

    check_transports(lobby, carol)

    alice.send("after the restart")
    bob.wait_message("alice", "after the restart")
    bob.send("still works")
    alice.wait_message("bob", "still works")
    carol.send("#other after the restart")
    alice.send("last one")
    bob.wait_message("alice", "last one")
    assert carol.received() == []
    assert ("carol", "#other after the restart") not in alice.received() + bob.received()

    assert browser.errors == [], "uncaught exceptions in the pages"
