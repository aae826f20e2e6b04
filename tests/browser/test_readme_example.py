"""The README's first example, as written (only its port changed), in headless Chromium: its
app.py and index.html are taken from the README itself, the client bundle from a
``node_modules/socket.io-client`` next to them (as ``npm install socket.io-client`` leaves it).
The page's "hello" goes to the server and comes back. Without the bundle, the page's script
URL answers 404 with how to install it, and the server says so once in its log."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import pytest

from .conftest import CHAT_DIR, REPO, free_port, http_get

README = REPO / "README.md"


def first_example() -> tuple[str, str]:
    """The Python and HTML blocks of the README's "A first server" section."""
    text = README.read_text()
    section = text[text.index("## A first server") :]
    section = section[: section.index("\n## ", 1)]
    python = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    html = re.search(r"```html\n(.*?)```", section, re.DOTALL)
    assert python and html, "the README's first example lost its Python or HTML block"
    return python.group(1), html.group(1)


class ExampleServer:
    """``python app.py`` in ``directory`` (stdout and stderr kept)."""

    def __init__(self, directory: Path, port: int) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "app.py"],
            cwd=directory,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                http_get(f"{self.url}/socket.io/?EIO=4&transport=polling")
                return
            except (ConnectionError, OSError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"app.py did not start: {self.stop()}")
                time.sleep(0.1)

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        assert self.process.stdout is not None
        return self.process.stdout.read()


@pytest.fixture
def example(tmp_path):
    """``example(with_bundle)`` -> the README's example served from a directory of its own."""
    servers: list[ExampleServer] = []

    def start(with_bundle: bool) -> ExampleServer:
        python, html = first_example()
        port = free_port()
        assert "3000" in python
        (tmp_path / "app.py").write_text(python.replace("3000", str(port)))
        (tmp_path / "index.html").write_text(html)
        if with_bundle:
            (tmp_path / "node_modules").symlink_to(CHAT_DIR / "node_modules")
        server = ExampleServer(tmp_path, port)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def console_logs(browser, text: str) -> list[str]:
    return [line for line in browser.console if line.endswith(f"log: {text}")]


@pytest.mark.browser
def test_readme_first_example_works_in_a_browser(chat_bundle, example, browser) -> None:
    chat_bundle("v4")  # examples/chat/node_modules: the socket.io-client the page gets
    server = example(with_bundle=True)
    page = browser.new_page("user", server.url + "/")
    deadline = time.monotonic() + 10
    while not console_logs(browser, "hello") and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert console_logs(browser, "hello"), browser.console
    assert page.evaluate("socket.connected") is True
    assert not browser.errors, browser.errors
    output = server.stop()
    assert "a user connected" in output


@pytest.mark.browser
def test_readme_example_without_the_bundle_says_how_to_get_it(example, browser) -> None:
    server = example(with_bundle=False)
    browser.new_page("user", server.url + "/")
    browser.new_page("again", server.url + "/")
    assert any("io is not defined" in error for error in browser.errors), browser.errors
    with pytest.raises(urllib.error.HTTPError) as error:
        http_get(f"{server.url}/socket.io/socket.io.js")
    assert error.value.code == 404
    body = error.value.read().decode()
    assert "npm install socket.io-client" in body
    assert "cdn.socket.io" in body
    output = server.stop()
    warnings = [line for line in output.splitlines() if "client bundle is not installed" in line]
    assert len(warnings) == 1, output  # once, however many pages asked
    assert "npm install socket.io-client" in warnings[0]
