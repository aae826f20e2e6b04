"""The official Socket.IO Admin UI (@socket.io/admin-ui 0.5.1, its built files from the npm
package, served by fastsio) in headless Chromium against an instrumented fastsio server: log in,
see the server, a client's socket and its room, disconnect that socket from the UI."""

from __future__ import annotations

import bcrypt
import pytest

import fastsio
from tests.browser.conftest import CHROMIUM_ARGS, REPO
from tests.conftest import npm_ci, server_url

pytestmark = pytest.mark.browser

ADMIN_UI = REPO / "tests" / "admin_ui"
PASSWORD = "it's me"


@pytest.fixture(scope="session")
def admin_ui_files():
    return (
        npm_ci(ADMIN_UI, required=("@socket.io/admin-ui",))
        / "@socket.io"
        / "admin-ui"
        / "ui"
        / "dist"
    )


async def only_loopback(route):
    # the UI asks for web fonts on the internet: nothing leaves this machine
    if route.request.url.startswith("http://127.0.0.1"):
        await route.continue_()
    else:
        await route.abort()


async def test_admin_ui_logs_in_sees_a_socket_and_disconnects_it(
    chromium, admin_ui_files, node, tmp_path
):
    from playwright.async_api import async_playwright

    sio = fastsio.Server(cors_allowed_origins="*", static_files=admin_ui_files)
    password_hash = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    sio.instrument(auth={"username": "admin", "password": password_hash})

    @sio.on("join")
    def join(socket, room):
        socket.join(room)
        return True

    await sio.start("127.0.0.1", 0)
    url = server_url(sio)
    try:
        user = await node(url, args={"transports": ["websocket"]})
        await user.connect("u")
        user_id = (await user.expect("connect", name="u"))["id"]
        assert (await user.emit_with_ack("u", "join", "lobby"))["args"] == [True]

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=chromium, headless=True, args=CHROMIUM_ARGS
            )
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 800})
                page.set_default_timeout(10_000)
                await page.route("**/*", only_loopback)
                await page.goto(url + "/")
                await page.get_by_label("Server URL").fill(url)
                await page.get_by_label("Username").fill("admin")
                await page.get_by_label("Password").fill(PASSWORD)
                await page.get_by_role("button", name="Connect").click()
                # the dashboard lists the namespaces once the UI is in
                await page.locator("code", has_text="/admin").first.wait_for()
                await page.wait_for_timeout(1000)  # the charts' animation, for the picture
                await page.screenshot(path=str(tmp_path / "dashboard.png"))

                await page.get_by_text("Rooms", exact=True).first.click()
                await page.locator("tr", has_text="lobby").first.wait_for()

                await page.get_by_text("Sockets", exact=True).first.click()
                row = page.locator("tr", has_text=user_id)
                await row.wait_for()
                await row.click()
                await page.get_by_text(user_id).first.wait_for()
                # the button beside the client's status disconnects it
                await page.locator("tr", has_text="Status").first.locator("button").click()
                await user.expect("disconnect", name="u")
                assert user_id not in sio.sockets
            finally:
                await browser.close()
    finally:
        await sio.close()
