"""Makes docs/chat-demo.png, the README's picture of the chat demo (not a test).

    python -m tests.browser.readme_screenshot      # from the repository root

Starts the demo on a free port, has alice and bob chat in #lobby in headless Chromium, and saves
alice's page (1000x650) while bob is typing.
"""

from __future__ import annotations

import sys
import time

from playwright.sync_api import sync_playwright

from .conftest import CHROMIUM, CHROMIUM_ARGS, REPO, ChatServer, free_port, npm_ci

OUTPUT = REPO / "docs" / "chat-demo.png"


def main() -> None:
    npm_ci(REPO / "examples" / "chat")
    server = ChatServer("examples/chat/app.py:sio", free_port())
    server.start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            pages = {}
            for name in ("alice", "bob"):
                page = browser.new_context(viewport={"width": 1000, "height": 650}).new_page()
                page.set_default_timeout(10_000)
                page.goto(f"{server.url}/?room=lobby")
                page.fill("#name-input", name)
                page.click("#name-form button")
                page.wait_for_selector("#status.online")
                pages[name] = page

            def say(name: str, text: str) -> None:
                page = pages[name]
                acked = page.locator("#messages .delivery.ok").count()
                page.fill("#input", text)
                page.press("#input", "Enter")
                page.wait_for_function(
                    "n => document.querySelectorAll('#messages .delivery.ok').length > n", arg=acked
                )
                time.sleep(0.3)  # the other page shows it too

            say(
                "alice",
                "Hi Bob! This page, its script and the socket.io client all come from fastsio.",
            )
            say("bob", "Nice. And the check mark next to your messages?")
            say("alice", "That's the server's acknowledgement: the handler's return value.")
            say("alice", "/users")
            say("bob", "Try ?room=other in the address for another room.")
            pages["bob"].fill("#input", "one more thing")  # "bob is typing…" on alice's page
            pages["alice"].wait_for_selector("#typing:has-text('typing')")
            pages["alice"].wait_for_selector("#stats-users:has-text('2')")
            OUTPUT.parent.mkdir(exist_ok=True)
            pages["alice"].screenshot(path=str(OUTPUT))
            browser.close()
    finally:
        server.stop()
    print(f"saved {OUTPUT} ({OUTPUT.stat().st_size} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
