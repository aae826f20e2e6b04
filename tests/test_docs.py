"""The documentation stays true to the code.

- docs/reference/options.md has an entry for every parameter of ``fastsio.Server(...)``, of
  ``Server.run/start/serve`` and for every flag of ``fastsio run``: a new option without an entry
  fails here, with the file and section to edit.
- The site builds with ``mkdocs build --strict`` (broken links, unknown pages, mkdocstrings
  failures are errors); needs the ``docs`` extra (``pip install -e '.[docs]'``).
- Every complete program of the getting-started page (a code block with a ``title``) compiles,
  and each step's ``app.py`` runs against the official socket.io-client doing what the page says.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import inspect
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fastsio
from fastsio.cli import build_parser

from .rawclient import http_get_url as http_get
from .conftest import NODE_DIR, npm_ci

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
OPTIONS_PAGE = DOCS / "reference" / "options.md"
GETTING_STARTED = DOCS / "getting-started.md"

SERVER_SECTION = "## Server options"
RUN_SECTION = "## run(), start(), serve()"
CLI_SECTION = "## The `fastsio run` command"


# -- the option reference -----------------------------------------------------------------------


def documented(section: str) -> set[str]:
    """The names of the ``### `name` `` headings of one ``## `` section of the options page."""
    text = OPTIONS_PAGE.read_text()
    start = text.find("\n" + section + "\n")
    assert start >= 0, f"{OPTIONS_PAGE.relative_to(ROOT)} has lost its section {section!r}"
    end = text.find("\n## ", start + 1)
    body = text[start : end if end >= 0 else len(text)]
    return set(re.findall(r"^### `([^`]+)`$", body, re.MULTILINE))


def missing_message(kind: str, names: set[str], section: str) -> str:
    listed = ", ".join(sorted(names))
    return (
        f"{kind} without an entry in the option reference: {listed}. Document each in "
        f"{OPTIONS_PAGE.relative_to(ROOT)}, section {section!r}, under a heading "
        f"'### `<name>`' (type, default, Node's name if any, what it does)."
    )


def parameters(function) -> set[str]:
    return {name for name in inspect.signature(function).parameters if name != "self"}


def test_every_server_parameter_is_documented():
    names = parameters(fastsio.Server.__init__)
    missing = names - documented(SERVER_SECTION)
    assert not missing, missing_message("fastsio.Server parameters", missing, SERVER_SECTION)


def test_every_run_parameter_is_documented():
    server = fastsio.Server
    names = parameters(server.run) | parameters(server.start) | parameters(server.serve)
    missing = names - documented(RUN_SECTION)
    assert not missing, missing_message("Server.run/start/serve parameters", missing, RUN_SECTION)


def cli_flags() -> set[str]:
    """The long flags of ``fastsio run`` and of ``fastsio`` itself, --help excepted."""
    parser = build_parser()
    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    flags = set()
    for command_parser in (parser, subcommands.choices["run"]):
        for action in command_parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            flags.update(flag for flag in action.option_strings if flag.startswith("--"))
    return flags


def test_every_cli_flag_is_documented():
    flags = cli_flags()
    assert {"--host", "--port", "--version"} <= flags  # the introspection itself works
    missing = flags - documented(CLI_SECTION)
    assert not missing, missing_message("`fastsio run` flags", missing, CLI_SECTION)


def test_no_entry_documents_an_option_that_does_not_exist():
    server = fastsio.Server
    run = parameters(server.run) | parameters(server.start) | parameters(server.serve)
    stale = {
        SERVER_SECTION: documented(SERVER_SECTION) - parameters(server.__init__),
        RUN_SECTION: documented(RUN_SECTION) - run,
        CLI_SECTION: documented(CLI_SECTION) - cli_flags(),
    }
    stale = {section: names for section, names in stale.items() if names}
    assert not stale, f"{OPTIONS_PAGE.relative_to(ROOT)} documents options that are gone: {stale}"


# -- the site builds ----------------------------------------------------------------------------


def test_site_builds_strict(tmp_path):
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        pytest.importorskip(module, reason="the docs extra: pip install -e '.[docs]'")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        check=False,
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    assert (tmp_path / "site" / "reference" / "options" / "index.html").is_file()
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    assert "emit_with_ack" in api  # mkdocstrings rendered the docstrings


# -- the getting-started page's programs --------------------------------------------------------

FENCE = re.compile(r'^```(\w+) title="([^"]+)"\n(.*?)^```$', re.MULTILINE | re.DOTALL)
STEP = re.compile(r"^## (\d+)\. ", re.MULTILINE)


def titled_blocks() -> list[tuple[int, str, str, str]]:
    """(step, language, title, code) of every titled code block of the getting-started page."""
    text = GETTING_STARTED.read_text()
    steps = [(m.start(), int(m.group(1))) for m in STEP.finditer(text)]
    blocks = []
    for m in FENCE.finditer(text):
        step = max((n for at, n in steps if at < m.start()), default=0)
        blocks.append((step, m.group(1), m.group(2), m.group(3)))
    return blocks


def app_of_step(step: int) -> str:
    found = [code for n, _, title, code in titled_blocks() if n == step and title == "app.py"]
    assert len(found) == 1, f"step {step} of {GETTING_STARTED.name} should have one app.py"
    return found[0]


def test_getting_started_programs_compile():
    blocks = titled_blocks()
    python = [(step, title, code) for step, lang, title, code in blocks if lang == "python"]
    assert len(python) >= 7
    for step, title, code in python:
        compile(code, f"{GETTING_STARTED.name} step {step} {title}", "exec")
    pages = [code for _, lang, title, code in blocks if title == "public/index.html"]
    assert len(pages) == 1 and '<script src="/socket.io/socket.io.js">' in pages[0]


# -- complete programs anywhere on the site -------------------------------------------------------

ANY_FENCE = re.compile(
    r'^(?P<indent> *)```python title="(?P<title>[^"]+)"\n(?P<code>.*?)^(?P=indent)```$',
    re.MULTILINE | re.DOTALL,
)


def titled_python(page: Path) -> list[tuple[str, str]]:
    """A page's titled Python blocks (complete files): (title, code), dedented (tabs indent)."""
    return [
        (m.group("title"), textwrap.dedent(m.group("code")))
        for m in ANY_FENCE.finditer(page.read_text())
    ]


def test_every_titled_python_block_compiles():
    pages = sorted(DOCS.rglob("*.md"))
    compiled = 0
    for page in pages:
        for title, code in titled_python(page):
            compile(code, f"{page.relative_to(ROOT)}: {title}", "exec")
            compiled += 1
    assert compiled >= 11  # the tutorial's 7, the two migration guides', Django's 2


@pytest.mark.parametrize("page", ["from-python-socketio.md", "from-node.md"])
async def test_migration_guides_program_runs(page, tmp_path, node):
    """The fastsio side of each migration guide does what its python-socketio / Node twin does:
    a refused token, the user name from the middleware, the lobby broadcast, the "ok" ack."""
    path = tmp_path / "app.py"
    (program,) = [
        code for title, code in titled_python(DOCS / "guides" / page) if title == "app.py"
    ]
    path.write_text(program)
    spec = importlib.util.spec_from_file_location(f"guide_{path.stem}_{page[:9]}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    await module.sio.start("127.0.0.1", 0)
    try:
        client = await node(f"http://127.0.0.1:{module.sio.port}")
        await client.connect("intruder", opts={"auth": {"token": "nope"}})
        refused = await client.expect("connect_error", name="intruder")
        assert refused["message"] == "not authorized"
        for name in ("a", "b"):
            await client.connect(name, opts={"auth": {"token": "abc"}})
            await client.expect("connect", name=name)
        ack = await client.emit_with_ack("a", "chat message", "hi")
        assert ack["args"] == ["ok"]
        event = await client.expect("event", name="b", event="chat message")
        assert event["args"] == ["alice: hi"]
        await client.assert_none(0.2, "event", name="a")
    finally:
        await asyncio.wait_for(module.sio.close(), 5)


@pytest.fixture
async def tutorial_app(tmp_path, monkeypatch):
    """``await tutorial_app(step)`` -> (module, url): the step's app.py in a fresh directory with
    the page and node_modules/socket.io-client, started on a free port; closed on teardown."""
    page = next(code for _, _, title, code in titled_blocks() if title == "public/index.html")
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "index.html").write_text(page)
    (tmp_path / "node_modules").symlink_to(npm_ci(NODE_DIR))
    monkeypatch.chdir(tmp_path)
    started = []

    async def start(step: int):
        path = tmp_path / f"app_step{step}.py"
        path.write_text(app_of_step(step))
        spec = importlib.util.spec_from_file_location(f"getting_started_step{step}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        await module.sio.start("127.0.0.1", 0)
        started.append(module.sio)
        return module, f"http://127.0.0.1:{module.sio.port}"

    yield start
    for sio in started:
        await asyncio.wait_for(sio.close(), 5)


async def test_step1_serves_the_page_and_the_client(tutorial_app, node):
    _, url = await tutorial_app(1)
    status, body = await http_get(url + "/")
    assert status == 200 and b'<script src="/socket.io/socket.io.js">' in body
    status, body = await http_get(url + "/socket.io/socket.io.js")
    assert status == 200 and b"io" in body and len(body) > 10_000
    client = await node(url)
    await client.connect("a")
    await client.expect("connect", name="a")


async def test_step2_emits_to_everyone(tutorial_app, node):
    _, url = await tutorial_app(2)
    client = await node(url)
    for name in "ab":
        await client.connect(name)
        await client.expect("connect", name=name)
    await client.emit("a", "chat message", "hello")
    for name in "ab":
        event = await client.expect("event", name=name, event="chat message")
        assert event["args"] == ["hello"]


async def test_step3_broadcasts_and_acknowledges(tutorial_app, node):
    _, url = await tutorial_app(3)
    client = await node(url)
    for name in "ab":
        await client.connect(name)
        await client.expect("connect", name=name)
    ack = await client.emit_with_ack("a", "chat message", "hello")
    assert ack["args"] == [{"ok": True}]
    assert (await client.expect("event", name="b", event="chat message"))["args"] == ["hello"]
    ack = await client.emit_with_ack("a", "chat message", "  ")
    assert ack["args"] == [{"ok": False, "error": "empty message"}]
    await client.assert_none(0.3, "event", name="a")


async def test_step4_rooms(tutorial_app, node):
    _, url = await tutorial_app(4)
    client = await node(url)
    for name, room in (("a", "x"), ("b", "x"), ("c", "y")):
        await client.connect(name, opts={"query": {"room": room}})
        await client.expect("connect", name=name)
    joined = await client.expect("event", name="a", event="chat message")
    assert joined["args"] == ["someone joined #x"]
    ack = await client.emit_with_ack("b", "chat message", "in x")
    assert ack["args"] == [{"ok": True}]
    assert (await client.expect("event", name="a", event="chat message"))["args"] == ["in x"]
    await client.assert_none(0.3, "event", name="c")


async def test_step5_private_replies(tutorial_app, node):
    _, url = await tutorial_app(5)
    client = await node(url)
    ids = {}
    for name in "abc":
        await client.connect(name)
        ids[name] = (await client.expect("connect", name=name))["id"]
    ack = await client.emit_with_ack("a", "chat message", "/whoami")
    assert ack["args"] == [{"ok": True, "private": True}]
    whoami = await client.expect("event", name="a", event="private")
    assert whoami["args"] == [f"you are {ids['a']} in #lobby"]
    await client.emit_with_ack("a", "chat message", f"/w {ids['b']} psst")
    whisper = await client.expect("event", name="b", event="private")
    assert whisper["args"] == [f"{ids['a']} whispers: psst"]
    ack = await client.emit_with_ack("a", "chat message", "/w nobody hi")
    assert ack["args"] == [{"ok": False, "error": "no user nobody"}]
    await client.assert_none(0.3, "event", name="c")


async def test_step6_namespaces(tutorial_app, node):
    _, url = await tutorial_app(6)
    client = await node(url)
    await client.connect("a")
    await client.expect("connect", name="a")
    await client.connect("a-stats", nsp="/stats", manager="a")  # the same connection
    first = await client.expect("event", name="a-stats", event="stats")
    assert first["args"] == [{"users": 1}]
    await client.connect("b")
    await client.expect("connect", name="b")
    update = await client.expect("event", name="a-stats", event="stats")
    assert update["args"] == [{"users": 2}]


async def test_step7_jwt_middleware(tutorial_app, node):
    module, url = await tutorial_app(7)
    client = await node(url)
    await client.connect("anonymous")
    refused = await client.expect("connect_error", name="anonymous")
    assert refused["message"] == "not authorized" and refused["data"]["reason"]
    await client.connect("forged", opts={"auth": {"token": module.make_token("x") + "tampered"}})
    assert (await client.expect("connect_error", name="forged"))["message"] == "not authorized"
    await client.connect("alice", opts={"auth": {"token": module.make_token("alice")}})
    await client.expect("connect", name="alice")
    welcome = await client.expect("event", name="alice", event="chat message")
    assert welcome["args"] == ["welcome, alice"]
