"""The official Socket.IO Admin UI (@socket.io/admin-ui 0.5.1, its built files from the npm
package) in headless Chromium, on the chat demo instrumented in development mode
(tests/browser/chat_admin_app.py) while three people chat in it: log in, see the server and its
stats (the bytes chart fed), the sockets with their data and the rooms, the events received and
sent, then disconnect a socket from the UI and see that person's page go offline.

The UI is served by its own server (tests/browser/admin_ui_app.py) and connects to the demo
across origins, as the hosted UI would. ``FASTSIO_SCREENSHOTS=1`` also saves the dashboard as
docs/admin-ui.png (the README's picture).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from typing import Any

import pytest

from tests.conftest import npm_ci

from .conftest import REPO, ChatServer, free_port
from .test_chat_demo import ChatPage

pytestmark = pytest.mark.browser

ADMIN_UI = REPO / "tests" / "admin_ui"
DEMO = "tests/browser/chat_admin_app.py:sio"
UI = "tests/browser/admin_ui_app.py:sio"
USERNAME, PASSWORD = "admin", "it's me"  # as chat_admin_app.py
DOCS_PICTURE = REPO / "docs" / "admin-ui.png"


class UiServer(ChatServer):
    ready_path = "/index.html"


@pytest.fixture
def admin_ui_server():
    """The Admin UI's page, served on a free port (tests/browser/admin_ui_app.py)."""
    npm_ci(ADMIN_UI, required=("@socket.io/admin-ui",))
    server = UiServer(UI, free_port())
    server.start()
    yield server
    server.stop()


def only_loopback(route: Any) -> None:
    # the UI asks for web fonts and icons on the internet: nothing leaves this machine
    if route.request.url.startswith("http://127.0.0.1"):
        route.continue_()
    else:
        route.abort()


class AdminPage:
    """The Admin UI, read and driven as a person would: the navigation drawer, the tables."""

    def __init__(self, page: Any) -> None:
        self.page = page

    def log_in(self, server_url: str) -> None:
        page = self.page
        page.get_by_label("Server URL").fill(server_url)
        page.get_by_label("Username").fill(USERNAME)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Connect").click()
        page.locator("code", has_text="/admin").first.wait_for()  # the dashboard's namespaces

    def open(self, view: str) -> None:
        self.page.locator("nav").get_by_text(view, exact=True).first.click()

    def row(self, *texts: str) -> Any:
        """The first table row showing every one of ``texts``."""
        row = self.page.locator("tr")
        for text in texts:
            row = row.filter(has_text=text)
        row = row.first
        row.wait_for()
        return row


@pytest.mark.browser
def test_admin_ui_on_the_chat_demo(chat_bundle, chat_server, browser, admin_ui_server) -> None:
    chat_bundle("v4")
    demo = chat_server(DEMO)
    ui = admin_ui_server
    browser.servers += [demo, ui]

    people = {}
    for name, room in (("alice", "lobby"), ("bob", "lobby"), ("carol", "dev")):
        person = ChatPage(browser.new_page(name, f"{demo.url}/?room={room}"), name)
        person.join()
        people[name] = person
    ids = {name: person.page.evaluate("() => socket.id") for name, person in people.items()}

    page = browser.new_page("admin", "about:blank", width=1280, height=800)
    page.route("**/*", only_loopback)
    page.goto(f"{ui.url}/")
    admin = AdminPage(page)
    admin.log_in(demo.url)

    # traffic for the charts and the events list: a line to the lobby (received from alice,
    # sent to bob), a private reply (sent to carol)
    people["alice"].send("hello bob")
    people["bob"].wait_message("alice", "hello bob")
    people["carol"].send("/whoami", delivery="✓ (private reply)")

    # the server, with its stats
    admin.open("Servers")
    server_row = admin.row(str(demo.process.pid))
    assert re.search(r"\b4\b", server_row.inner_text()), server_row.inner_text()  # 3 + the UI

    # the sockets, with the data the demo keeps, and the rooms
    admin.open("Sockets")
    for name in people:
        admin.row(ids[name])
    admin.open("Rooms")
    admin.row("lobby")
    admin.row("dev")

    # the events, both ways
    admin.open("Events")
    admin.row(ids["alice"], "Event received", "chat message")
    admin.row(ids["bob"], "Event sent", "chat message")
    admin.row(ids["carol"], "Event sent", "private")

    # the dashboard, once server_stats have brought the bytes of some more traffic
    admin.open("Dashboard")
    for i in range(6):
        people["bob" if i % 2 else "alice"].send(f"line {i}" + " of a longer chat" * i)
    deadline = time.monotonic() + 10
    while page.locator("canvas").count() < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(4.5)  # two server_stats (every 2 s), then the charts' animation
    picture = browser.artifacts / "dashboard.png"
    browser.artifacts.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(picture))
    if os.environ.get("FASTSIO_SCREENSHOTS"):
        shutil.copyfile(picture, DOCS_PICTURE)

    # disconnect bob from the UI: his page goes offline, the UI lists him no more
    admin.open("Sockets")
    admin.row(ids["bob"]).click()
    page.get_by_text(ids["bob"]).first.wait_for()
    page.locator("tr", has_text="Status").first.locator("button").click()
    people["bob"].wait_offline()
    admin.open("Sockets")
    admin.row(ids["alice"])
    page.locator("tr", has_text=ids["bob"]).first.wait_for(state="detached")
    assert people["alice"].state()["online"]
    assert not browser.errors, browser.errors
