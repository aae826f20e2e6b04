"""The getting-started page's chat, as a reader builds it: its ``public/index.html`` and the
``app.py`` of step 2 written to a fresh directory with the client bundle installed next to them,
``fastsio run app.py:sio`` started there, and two Chromium pages chatting."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error

import pytest

from tests.browser.conftest import CHAT_DIR, REPO, free_port, http_get
from tests.conftest import npm_ci
from tests.test_docs import app_of_step, titled_blocks

pytestmark = pytest.mark.browser
START_TIMEOUT = 30.0


@pytest.fixture
def tutorial_server(tmp_path):
    """The tutorial's step 2 served from tmp_path by ``fastsio run``: its base URL."""
    page = next(code for _, _, title, code in titled_blocks() if title == "public/index.html")
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "index.html").write_text(page)
    (tmp_path / "app.py").write_text(app_of_step(2))
    (tmp_path / "node_modules").symlink_to(npm_ci(CHAT_DIR))  # socket.io-client 4.8, as npm would
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastsio", "run", "app.py:sio", "--port", str(port)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            if http_get(url + "/socket.io/socket.io.js")[0] == 200:
                break
        except (OSError, urllib.error.HTTPError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(
                f"fastsio run app.py:sio did not serve the bundle:\n{proc.communicate()[0]}"
            )
        time.sleep(0.1)
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_tutorial_chat_in_chromium(tutorial_server, browser) -> None:
    alice = browser.new_page("alice", tutorial_server + "/")
    bob = browser.new_page("bob", tutorial_server + "/")
    for page in (alice, bob):
        page.wait_for_function('() => typeof socket !== "undefined" && socket.connected')
    alice.fill("#input", "hello from alice")
    alice.press("#input", "Enter")
    for page in (alice, bob):  # sio.emit: everyone, the sender included
        page.locator("#messages li", has_text="hello from alice").wait_for()
    bob.fill("#input", "hi alice")
    bob.click("button")
    alice.locator("#messages li", has_text="hi alice").wait_for()
    assert alice.locator("#messages li").all_inner_texts() == ["hello from alice", "hi alice"]
    assert browser.errors == [], "uncaught exceptions in the pages"
