"""The pages of examples/ in Chromium, against their apps started with ``fastsio run`` as their
docstrings say (the chat demo has its own tests): what a reader sees when trying them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import uuid

import pytest

from tests.browser.conftest import REPO, free_port, http_get
from tests.conftest import npm_ci

pytestmark = pytest.mark.browser
EXAMPLES = REPO / "examples"
START_TIMEOUT = 30.0


class Process:
    """A command run from the repository's root (stdout and stderr merged), stopped on exit."""

    def __init__(self, command: list[str], **env: str) -> None:
        self.command = command
        self.proc = subprocess.Popen(
            command,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait_serving(self, url: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if http_get(url + "/")[0] == 200:
                    return
            except (OSError, urllib.error.HTTPError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"{' '.join(self.command)} did not start:\n{self.output()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def output(self) -> str:
        self.stop()
        return self.proc.communicate()[0] if self.proc.stdout else ""


@pytest.fixture
def processes():
    started: list[Process] = []

    def start(*command: str, **env: str) -> Process:
        process = Process([sys.executable, *command], **env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def serve(processes, target: str, **env: str) -> str:
    port = free_port()
    server = processes("-m", "fastsio", "run", target, "--port", str(port), **env)
    url = f"http://127.0.0.1:{port}"
    server.wait_serving(url)
    return url


def test_dashboard_page(processes, browser) -> None:
    npm_ci(EXAMPLES / "dashboard")
    url = serve(processes, "examples/dashboard/app.py:sio", DASHBOARD_INTERVAL="0.1")
    page = browser.new_page("viewer", url + "/")
    page.locator("#status", has_text="connected").wait_for()
    cpu = page.locator("section.metric", has_text="cpu")
    cpu.locator("input").check()
    page.wait_for_function(
        """() => [...document.querySelectorAll("section.metric")]
            .find((s) => s.textContent.includes("cpu"))
            .querySelector("polyline").getAttribute("points").split(" ").length >= 3"""
    )
    assert cpu.locator(".value").inner_text().endswith(" %")
    memory = page.locator("section.metric", has_text="memory")
    assert memory.locator(".value").inner_text() == "–"  # not subscribed: no samples
    page.click("#viewers")
    page.locator("#viewer-counts", has_text="cpu: 1, memory: 0, requests: 0").wait_for()
    assert browser.errors == []


def test_worker_page(processes, browser) -> None:
    from tests.redis.conftest import redis_ping

    problem = redis_ping()
    if problem:
        pytest.fail(f"examples/worker needs Redis on 127.0.0.1:6379: {problem}", pytrace=False)
    npm_ci(EXAMPLES / "worker")
    settings = {"SOCKETIO_KEY": f"sio-page-{uuid.uuid4().hex}", "JOBS_QUEUE": uuid.uuid4().hex}
    processes(str(EXAMPLES / "worker" / "worker.py"), **settings)
    url = serve(processes, "examples/worker/server.py:sio", **settings)
    page = browser.new_page("user", url + "/")
    page.wait_for_function('() => typeof socket !== "undefined" && socket.connected')
    page.fill("#limit", "10000")
    page.click("button")
    page.locator("#jobs li", has_text="1229 primes").wait_for(timeout=30_000)
    page.locator("#jobs li", has_text="(below 10000)").wait_for()  # the ack came too
    assert page.locator("#jobs li").count() == 1
    assert page.locator("#jobs li progress").get_attribute("value") == "1"
    assert browser.errors == []


def test_fastapi_jwt_page(processes, browser) -> None:
    npm_ci(EXAMPLES / "fastapi_jwt")
    url = serve(processes, "examples/fastapi_jwt/app.py:asgi_app")
    alice = browser.new_page("alice", url + "/")
    alice.fill("#password", "wrong")
    alice.click("#login button")
    alice.locator("#login-error", has_text="wrong user name or password").wait_for()
    alice.fill("#password", "wonderland")
    alice.click("#login button")
    alice.locator("#me", has_text="alice").wait_for()
    bob = browser.new_page("bob", url + "/")
    bob.fill("#username", "bob")
    bob.fill("#password", "builder")
    bob.click("#login button")
    bob.locator("#me", has_text="bob").wait_for()
    alice.fill("#text", "hello bob")
    alice.press("#text", "Enter")
    bob.locator("#log li", has_text="alice: hello bob").wait_for()
    bob.fill("#text", "/w alice just for you")
    bob.press("#text", "Enter")
    alice.locator("#log li.private", has_text="bob (private): just for you").wait_for()
    bob.fill("#announcement", "deploy at 5")
    bob.press("#announcement", "Enter")  # POST /api/announce, a FastAPI route
    for page in (alice, bob):
        page.locator("#log li.announcement", has_text="from bob: deploy at 5").wait_for()
    assert browser.errors == []
