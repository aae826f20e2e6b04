"""Fixtures for the browser tests: headless Chromium driven by Playwright for Python.

- ``chromium``: the path of Debian's Chromium (``/usr/bin/chromium``). Nothing is installed from
  here: where it is absent the test is skipped with the command that installs it
  (``apt-get install chromium``), and under CI (``CI`` set, as ``.ci/run`` does, which installs
  it) the test fails instead, as it must run there.
- ``chat_bundle``: the npm packages the demo is served with, installed from their lock files when
  missing: examples/chat (socket.io-client 4.8, the demo's own) and tests/browser (2.5.0).
- ``chat_server``: ``chat_server(target)`` starts ``fastsio run TARGET --port N`` as a subprocess on a
  free port (``.restart()`` stops it and starts it again on the same port); stopped on teardown.
- ``browser``: a :class:`BrowserHarness` (one Chromium, one context per page/user, JS errors and
  console kept). When a test fails, every open page is screenshotted into the test's tmp dir and
  the paths, the pages' console and the server's output are added to the failure report.

No browser is ever downloaded: Playwright only drives the system Chromium (``executable_path``).
Every wait is bounded; a hang that no timeout can catch ends the run after ``WATCHDOG_SECONDS``.
"""

from __future__ import annotations

import faulthandler
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import npm_ci

BROWSER_DIR = Path(__file__).resolve().parent
REPO = BROWSER_DIR.parent.parent
CHAT_DIR = REPO / "examples" / "chat"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
START_TIMEOUT = 15.0  # seconds for `fastsio run` to print its URL line
WAIT_MS = 10_000  # default bound of any single Playwright wait (milliseconds)
WATCHDOG_SECONDS = 150  # last resort: a hang that no timeout catches dumps stacks and ends the run
URL_LINE = r"fastsio \S+ running on http://127\.0\.0\.1:{port} "
IN_CI = bool(os.environ.get("CI"))


def give_up(reason: str) -> None:
    """Skip locally; fail under CI, where everything the browser tests need must be installed."""
    if IN_CI:
        pytest.fail(f"{reason} (CI must run the browser tests)", pytrace=False)
    pytest.skip(reason)


# --------------------------------------------------------------------------- installs


@pytest.fixture(scope="session")
def chromium() -> str:
    """The system Chromium; the browser tests skip (locally) or fail (CI) without it."""
    if not os.access(CHROMIUM, os.X_OK):
        give_up(
            f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install chromium`, as"
            " .ci/run does) to run the browser tests"
        )
    return CHROMIUM


BUNDLE_DIRS = {"v4": CHAT_DIR, "v2": BROWSER_DIR}  # where each bundle's package.json is


@pytest.fixture(scope="session")
def chat_bundle():
    """``chat_bundle(name)`` -> the socket.io-client ``dist`` directory of bundle ``name`` ("v4":
    the demo's own 4.8, "v2": 2.5.0 from tests/browser), npm-installed if missing. The demo's
    own node_modules is always installed (its app refuses to start without it)."""
    npm_ci(CHAT_DIR)

    def get(name: str) -> Path:
        return npm_ci(BUNDLE_DIRS[name]) / "socket.io-client" / "dist"

    return get


# --------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read()


class ChatServer:
    """``fastsio run TARGET --port N`` in a subprocess (stdout and stderr merged, read by a
    thread and kept in ``output``)."""

    #: a file the server serves once it is ready
    ready_path = "/chat.js"

    def __init__(self, target: str, port: int) -> None:
        self.target = target
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.output: list[str] = []
        self.process: subprocess.Popen | None = None
        self._lines: queue.Queue[str] = queue.Queue()

    def start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fastsio", "run", self.target, "--port", str(self.port)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.output.append(f"--- started pid {self.process.pid}: fastsio run {self.target}")
        self._lines = queue.Queue()
        threading.Thread(target=self._read, args=(self.process, self._lines), daemon=True).start()
        self._wait_for(URL_LINE.format(port=self.port))
        self._wait_until_serving()

    def _read(self, process: subprocess.Popen, lines: queue.Queue) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))

    def _wait_for(self, pattern: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        assert self.process is not None
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None and self._lines.empty():
                    time.sleep(0.2)  # the reader thread may still hold the last lines
                    self._drain()
                    raise AssertionError(
                        f"`fastsio run {self.target}` exited ({self.process.returncode}):\n"
                        + "\n".join(self.output[-30:])
                    )
                continue
            self.output.append(line)
            if re.search(pattern, line):
                return
        raise AssertionError(
            f"`fastsio run {self.target}` printed no {pattern!r} in {START_TIMEOUT} s:\n"
            + "\n".join(self.output[-30:])
        )

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + 10
        while True:
            try:
                status, _ = http_get(self.url + self.ready_path)
                assert status == 200
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _drain(self) -> None:
        while True:
            try:
                self.output.append(self._lines.get_nowait())
            except queue.Empty:
                return

    def stop(self) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()  # SIGTERM: the server closes cleanly
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                pass
        try:  # anything left in its process group goes too
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        process.wait(5)
        time.sleep(0.1)
        self._drain()
        self.output.append(f"--- stopped pid {process.pid} (returncode {process.returncode})")

    def restart(self) -> None:
        """Stops the process and starts a new one on the same port."""
        self.stop()
        self.start()

    def tail(self, count: int = 40) -> str:
        self._drain()
        return "\n".join(self.output[-count:])


@pytest.fixture
def chat_server():
    """``chat_server(target)`` -> a started :class:`ChatServer` on a free port."""
    started: list[ChatServer] = []

    def start(target: str) -> ChatServer:
        server = ChatServer(target, free_port())
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()


# --------------------------------------------------------------------------- the browser


class BrowserHarness:
    """One headless Chromium; ``new_page(label, url)`` opens a page in its own context (a user of
    its own: separate cookies and session storage)."""

    def __init__(self, browser: Any, artifacts: Path) -> None:
        self.browser = browser
        self.artifacts = artifacts
        self.pages: dict[str, Any] = {}
        self.errors: list[str] = []  # uncaught exceptions in any page
        self.console: list[str] = []
        self.servers: list[ChatServer] = []  # whose output goes into a failure report

    def new_page(
        self, label: str, url: str, width: int = 1000, height: int = 650, websocket: bool = True
    ) -> Any:
        """``websocket=False``: the page's WebSockets are closed at once, so its client stays on
        HTTP long-polling."""
        context = self.browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(WAIT_MS)
        context.set_default_navigation_timeout(WAIT_MS)
        if not websocket:
            context.route_web_socket(re.compile(".*"), lambda ws: ws.close())
        page = context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"[{label}] {exc}"))
        page.on("console", lambda msg: self.console.append(f"[{label}] {msg.type}: {msg.text}"))
        self.pages[label] = page
        page.goto(url)
        return page

    def screenshot_all(self) -> list[Path]:
        self.artifacts.mkdir(parents=True, exist_ok=True)
        saved = []
        for label, page in self.pages.items():
            path = self.artifacts / f"{label}.png"
            try:
                page.screenshot(path=str(path), timeout=5000)
            except Exception as exc:  # noqa: BLE001 - a report must not hide the real failure
                self.console.append(f"[{label}] screenshot failed: {exc}")
                continue
            saved.append(path)
        return saved

    def failure_report(self) -> str:
        saved = self.screenshot_all()
        lines = [f"screenshots ({len(saved)}) in {self.artifacts}:"]
        lines += [f"  {path}" for path in saved]
        if self.errors:
            lines += ["page errors:"] + [f"  {error}" for error in self.errors]
        lines += ["console (last 30):"] + [f"  {line}" for line in self.console[-30:]]
        for server in self.servers:
            lines += [f"server output ({server.target}, port {server.port}):", server.tail()]
        return "\n".join(lines)


@pytest.fixture
def browser(chromium: str, tmp_path: Path):
    """A :class:`BrowserHarness` on the system Chromium (Playwright, no browser download)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        give_up("Playwright for Python is not installed (pip install -e '.[test]')")
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True)
    try:
        with sync_playwright() as playwright:
            # launch() starts Chromium on a fresh temporary profile (user-data-dir) of its own
            chrome = playwright.chromium.launch(
                executable_path=chromium, headless=True, args=CHROMIUM_ARGS, timeout=30_000
            )
            try:
                yield BrowserHarness(chrome, tmp_path / "screenshots")
            finally:
                chrome.close()
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """On a failure (or an exception in an xfail case), screenshot every open page and add the
    paths, the pages' console and the server's output to the report."""
    report = yield
    harness = getattr(item, "funcargs", {}).get("browser")
    if report.when == "call" and call.excinfo is not None and isinstance(harness, BrowserHarness):
        text = harness.failure_report()
        report.sections.append(("browser screenshots and logs", text))
        if report.failed:
            sys.stderr.write(f"\n{item.nodeid}: {text.splitlines()[0]}\n")
    return report


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives the chat demo in headless Chromium (Playwright)"
    )
