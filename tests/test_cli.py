"""The ``fastsio`` command, run for real in subprocesses (``python -m fastsio``)."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from fastsio import cli
from tests.conftest import npm_ci

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 15.0  # seconds for a server process to print its URL line

FIXTURE_APP = """\
import os
import fastsio

print("fixture loaded pid=%d" % os.getpid(), flush=True)

sio = fastsio.Server()
number = 42


def create_app():
    return fastsio.Server()


def make_number():
    return 42


def needs_arguments(config):
    return fastsio.Server()
"""


def environment(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_cli(*args: str, cwd: Path, timeout: float = 30.0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fastsio", *args],
        check=False,
        cwd=cwd,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read()


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "fixture_app.py").write_text(FIXTURE_APP)
    return tmp_path


class ServerProcess:
    """A ``fastsio run`` process whose output (stdout and stderr merged) is read line by line."""

    def __init__(
        self, args: list[str], cwd: Path, command: list[str] | None = None, **env: str
    ) -> None:
        self.process = subprocess.Popen(
            [*(command or [sys.executable, "-m", "fastsio"]), *args],
            cwd=cwd,
            env=environment(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: the teardown reaches a reload child
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = START_TIMEOUT) -> re.Match:
        """The first line from now on that matches ``pattern``; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no line matching {pattern!r} in {timeout} s; output: {self.output}")
            try:
                line = self.lines.get(timeout=min(remaining, 0.2))
            except queue.Empty:
                if self.process.poll() is not None and self.lines.empty():
                    time.sleep(0.2)  # let the reader thread deliver the last lines
                    if self.lines.empty():
                        pytest.fail(
                            f"process exited ({self.process.returncode}) before printing"
                            f" {pattern!r}; output: {self.output}"
                        )
                continue
            self.output.append(line)
            match = re.search(pattern, line)
            if match:
                return match

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                pass
        try:  # anything left in the group (a reload child) goes too
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()


@pytest.fixture
def start_server():
    started: list[ServerProcess] = []

    def start(*args: str, cwd: Path, command: list[str] | None = None, **env: str) -> ServerProcess:
        server = ServerProcess(list(args), cwd, command, **env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


URL_LINE = (
    r"^fastsio \S+ running on http://127\.0\.0\.1:{port} \(speedups: (compiled|pure Python)\)$"
)


def wait_until_serving(url: str, timeout: float = 10.0) -> bytes:
    """GET the Engine.IO handshake, retrying while the port is not open yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, body = http_get(url)
            assert status == 200
            return body
        except (ConnectionError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def handshake_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling"


# -- the pure helpers, in process ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("app:sio", ("app", "sio")),
        ("pkg.app:create_app", ("pkg.app", "create_app")),
        ("app:holder.sio", ("app", "holder.sio")),
        ("examples/chat/app.py:sio", ("examples/chat/app.py", "sio")),
        ("C:\\work\\app.py:sio", ("C:\\work\\app.py", "sio")),
    ],
)
def test_split_target(target: str, expected: tuple[str, str]) -> None:
    assert cli.split_target(target) == expected


def test_format_url() -> None:
    assert cli.format_url("127.0.0.1", 8000) == "http://127.0.0.1:8000"
    assert cli.format_url("::1", 8000) == "http://[::1]:8000"


def test_scan_sees_python_files_only_and_skips_venvs(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("")
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "views.py").write_text("")
    for skipped in ("node_modules", ".git", "__pycache__", "venv"):
        (tmp_path / skipped).mkdir()
        (tmp_path / skipped / "x.py").write_text("")
    (tmp_path / "venv" / "pyvenv.cfg").write_text("")

    found = cli.scan_python_files(tmp_path)
    assert sorted(Path(path).relative_to(tmp_path).as_posix() for path in found) == [
        "app.py",
        "pkg/views.py",
    ]


def test_changed_files_reports_edits_additions_and_deletions() -> None:
    before = {"a.py": 1, "b.py": 1, "c.py": 1}
    after = {"a.py": 1, "b.py": 2, "d.py": 1}
    assert cli.changed_files(before, after) == ["b.py", "c.py", "d.py"]


def test_app_directory(app_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli.app_directory(f"{app_dir}/fixture_app.py:sio") == app_dir.resolve()
    monkeypatch.chdir(app_dir)
    monkeypatch.syspath_prepend(str(app_dir))
    assert cli.app_directory("fixture_app:sio") == app_dir.resolve()


# -- errors: one line, exit status 2, no traceback -----------------------------------------------


def assert_usage_error(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fastsio: error: ")
    assert message in lines[0]


@pytest.mark.parametrize("target", ["fixture_app", ":sio", "fixture_app:", "bad-name:sio", "a:1x"])
def test_bad_target_format(app_dir: Path, target: str) -> None:
    result = run_cli("run", target, cwd=app_dir)
    assert_usage_error(result, "invalid")


def test_module_not_found(app_dir: Path) -> None:
    result = run_cli("run", "no_such_module_here:sio", cwd=app_dir)
    assert_usage_error(result, "could not import module 'no_such_module_here'")


def test_file_not_found(app_dir: Path) -> None:
    result = run_cli("run", "missing/app.py:sio", cwd=app_dir)
    assert_usage_error(result, "no such file")


def test_attribute_missing(app_dir: Path) -> None:
    result = run_cli("run", "fixture_app:nope", cwd=app_dir)
    assert_usage_error(result, "module 'fixture_app' has no attribute 'nope'")


@pytest.mark.parametrize(
    ("attr", "message"),
    [
        ("number", "is a int, not a fastsio.Server, a fastsio.ASGIApp or a factory returning"),
        ("make_number", "returned a int, not a fastsio.Server"),
        ("needs_arguments", "cannot be called without arguments"),
    ],
)
def test_attribute_not_a_server(app_dir: Path, attr: str, message: str) -> None:
    result = run_cli("run", f"fixture_app:{attr}", cwd=app_dir)
    assert_usage_error(result, message)


def test_missing_static_directory(app_dir: Path) -> None:
    result = run_cli("run", "fixture_app:sio", "--static", "no-such-dir", cwd=app_dir)
    assert_usage_error(result, "--static 'no-such-dir': no such directory")


def test_bad_option_values_are_usage_errors(app_dir: Path) -> None:
    assert run_cli("run", "fixture_app:sio", "--log-level", "loud", cwd=app_dir).returncode == 2
    assert run_cli("run", "fixture_app:sio", "--port", "99999", cwd=app_dir).returncode == 2
    assert run_cli("run", cwd=app_dir).returncode == 2


def test_bad_trusted_proxies_is_a_usage_error(app_dir: Path) -> None:
    result = run_cli("run", "fixture_app:sio", "--trusted-proxies", "10.0.0.0/8,nginx", cwd=app_dir)
    assert_usage_error(result, "'nginx' is not an IP address or network")


def test_an_error_inside_the_app_keeps_its_traceback(tmp_path: Path) -> None:
    # A bug in the app is not a usage error: its author needs the traceback.
    (tmp_path / "broken.py").write_text("import no_such_dependency_here\n")
    result = run_cli("run", "broken:sio", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "no_such_dependency_here" in result.stderr


def test_version(tmp_path: Path) -> None:
    result = run_cli("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert re.match(r"^fastsio \S+ \(Python [\d.]+, speedups: (compiled|pure Python)\)$",
                    result.stdout.strip())  # fmt: skip


def test_console_script(tmp_path: Path) -> None:
    script = shutil.which("fastsio", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("the fastsio script is not installed (pip install -e .)")
    result = subprocess.run(
        [script, "--version"], check=False, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0
    assert result.stdout.startswith("fastsio ")


# -- serving ---------------------------------------------------------------------------------


def test_run_module_attr_prints_url_and_serves(app_dir: Path, start_server) -> None:
    port = free_port()
    server = start_server("run", "fixture_app:sio", "--port", str(port), cwd=app_dir)
    server.wait_for(URL_LINE.format(port=port))
    assert wait_until_serving(handshake_url(port)).startswith(b"0{")


def test_speedups_line_follows_the_environment(app_dir: Path, start_server) -> None:
    port = free_port()
    server = start_server(
        "run", "fixture_app:sio", "--port", str(port), cwd=app_dir, FASTSIO_NO_EXTENSIONS="1"
    )
    match = server.wait_for(URL_LINE.format(port=port))
    assert match.group(1) == "pure Python"


def test_run_file_path_and_factory(app_dir: Path, start_server, tmp_path_factory) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    port = free_port()
    server = start_server(
        "run", f"{app_dir}/fixture_app.py:create_app", "--port", str(port), cwd=elsewhere
    )
    server.wait_for(URL_LINE.format(port=port))
    assert wait_until_serving(handshake_url(port)).startswith(b"0{")


def test_access_log_and_trusted_proxies_in_the_log(app_dir: Path, start_server) -> None:
    port = free_port()
    server = start_server(
        "run", "fixture_app:sio", "--port", str(port), "--access-log",
        "--trusted-proxies", "127.0.0.1", cwd=app_dir,
    )  # fmt: skip
    server.wait_for(URL_LINE.format(port=port))
    wait_until_serving(handshake_url(port))
    request = urllib.request.Request(
        handshake_url(port), headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.5"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
    server.wait_for(
        r'INFO fastsio\.http\.access: 203\.0\.113\.5 "GET /socket\.io/\?EIO=4&transport=polling'
        r' HTTP/1\.1" 200 \d+ [\d.]+ms$'
    )
    server.wait_for(r"INFO fastsio\.engine: connection opened: sid=\S+ address=203\.0\.113\.5 ")


def test_static_serves_a_file(app_dir: Path, start_server) -> None:
    public = app_dir / "public"
    public.mkdir()
    (public / "hello.txt").write_text("hello from --static\n")
    (public / "index.html").write_text("<h1>index</h1>\n")
    port = free_port()
    server = start_server(
        "run", "fixture_app:sio", "--port", str(port), "--static", "public", cwd=app_dir
    )
    server.wait_for(URL_LINE.format(port=port))
    wait_until_serving(handshake_url(port))
    assert http_get(f"http://127.0.0.1:{port}/hello.txt") == (200, b"hello from --static\n")
    assert http_get(f"http://127.0.0.1:{port}/") == (200, b"<h1>index</h1>\n")


def test_reload_restarts_the_server_after_a_change(app_dir: Path, start_server) -> None:
    port = free_port()
    server = start_server("run", "fixture_app:sio", "--port", str(port), "--reload", cwd=app_dir)
    first_pid = int(server.wait_for(r"^fixture loaded pid=(\d+)$").group(1))
    server.wait_for(URL_LINE.format(port=port))
    wait_until_serving(handshake_url(port))

    app_file = app_dir / "fixture_app.py"
    app_file.write_text(FIXTURE_APP + "\n# edited\n")
    stat = app_file.stat()  # some file systems keep whole-second mtimes: make the change visible
    os.utime(app_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))

    server.wait_for(r"fixture_app\.py changed, restarting", timeout=10)
    second_pid = int(server.wait_for(r"^fixture loaded pid=(\d+)$").group(1))
    assert second_pid != first_pid
    server.wait_for(URL_LINE.format(port=port))
    assert wait_until_serving(handshake_url(port)).startswith(b"0{")
    with pytest.raises(ProcessLookupError):  # the old child is gone, not left serving
        os.kill(first_pid, 0)


# -- the chat demo (examples/chat), served by `fastsio run` and driven by socket.io-client ----------

CHAT_DIR = REPO / "examples" / "chat"

# Three clients: alice and bob in #lobby, carol in #random; plus one refused by the middleware.
# Prints what each one sees as JSON lines.
CHAT_DRIVER = """
const { io } = require(process.argv[2] + "/socket.io-client");
const url = process.argv[3];
const out = (...what) => console.log(JSON.stringify(what));
const connect = (name, room) => new Promise((resolve) => {
  const socket = io(url, { forceNew: true, query: { room }, auth: { name } });
  socket.onAny((event, ...args) => out(name, event, ...args));
  socket.on("connect", () => resolve(socket));
});
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
(async () => {
  const nameless = io(url, { forceNew: true, query: { room: "lobby" } });
  nameless.on("connect_error", (err) => out("nameless", "connect_error", err.message, err.data));
  const stats = io(url + "/stats", { forceNew: true });
  stats.on("stats", (counts) => out("stats", "stats", counts));
  const alice = await connect("alice", "lobby");
  const bob = await connect("bob", "lobby");
  const carol = await connect("carol", "random");
  await sleep(200);
  out("alice", "ack", await alice.timeout(5000).emitWithAck("chat message", "hello lobby"));
  out("alice", "ack", await alice.timeout(5000).emitWithAck("chat message", "/whoami"));
  out("carol", "ack", await carol.timeout(5000).emitWithAck("chat message", "hello random"));
  bob.disconnect();
  await sleep(500);
  process.exit(0);
})();
"""


@pytest.fixture(scope="session")
def chat_client_modules() -> Path:
    """examples/chat/node_modules (the demo's pinned socket.io-client), installed if missing."""
    return npm_ci(CHAT_DIR)


def test_chat_demo(chat_client_modules: Path, start_server, tmp_path: Path) -> None:
    port = free_port()
    server = start_server("run", "examples/chat/app.py:sio", "--port", str(port), cwd=REPO)
    server.wait_for(URL_LINE.format(port=port))
    base = f"http://127.0.0.1:{port}"
    wait_until_serving(handshake_url(port))

    # the page, its script and the client bundle all come from the server (no internet needed)
    status, page = http_get(f"{base}/?room=lobby")
    assert status == 200 and b'<script src="/socket.io/socket.io.js">' in page
    assert http_get(f"{base}/chat.js")[0] == 200
    status, bundle = http_get(f"{base}/socket.io/socket.io.js")
    assert status == 200 and b"Socket.IO v4.8" in bundle[:200]

    driver = tmp_path / "driver.js"
    driver.write_text(CHAT_DRIVER)
    result = subprocess.run(
        ["node", str(driver), str(chat_client_modules), base],
        check=False, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    seen = [json.loads(line) for line in result.stdout.splitlines()]

    def events(who: str, event: str) -> list:
        return [line[2:] for line in seen if line[:2] == [who, event]]

    assert events("nameless", "connect_error") == [["Please choose a name", {"field": "name"}]]
    assert events("alice", "user joined") == [[{"name": "bob"}]]
    assert events("alice", "members")[-1] == [["alice"]]  # after bob left
    assert events("alice", "user left") == [[{"name": "bob"}]]
    # a message reaches the others in the room, and only them; the sender gets the ack
    assert events("bob", "chat message") == [[{"name": "alice", "text": "hello lobby"}]]
    assert events("alice", "chat message") == []
    assert events("carol", "chat message") == []
    assert events("alice", "ack") == [[{"ok": True}], [{"ok": True, "private": True}]]
    # a command is answered to the sender only
    (reply,) = events("alice", "private")
    assert reply[0].startswith("You are alice in #lobby")
    assert events("bob", "private") == []
    # the /stats namespace counts the users of the main namespace
    counts = [line[0] for line in events("stats", "stats")]
    assert {"users": 3, "rooms": {"lobby": 2, "random": 1}} in counts
    assert counts[-1] == {"users": 2, "rooms": {"lobby": 1, "random": 1}}


def fastsio_script() -> str:
    script = shutil.which("fastsio", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("the fastsio script is not installed (pip install -e .)")
    return script


def test_running_on_only_after_the_bind_and_one_line_for_address_in_use(app_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("run", "fixture_app:sio", "--port", str(port), cwd=app_dir)
    assert result.returncode == 1
    assert "running on" not in result.stdout
    errors = [line for line in result.stderr.splitlines() if "fastsio" in line]
    assert len(errors) == 1
    assert errors[0].startswith(
        f"fastsio: error: cannot serve on 127.0.0.1:{port}: address already in use"
    )
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["socket", "json", "asyncio"])
def test_a_module_shadowed_by_the_standard_library_says_so(tmp_path: Path, name: str) -> None:
    # the `fastsio` script, as a user types it (`python -m fastsio` would put the app's directory
    # first on sys.path, and its socket.py would replace the standard one before fastsio runs)
    script = fastsio_script()
    (tmp_path / f"{name}.py").write_text("import fastsio\nsio = fastsio.Server()\n")
    result = subprocess.run(
        [script, "run", f"{name}:sio"], cwd=tmp_path, env=environment(), check=False,
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert_usage_error(result, f"module {name!r} is the standard library's")
    assert f"not your {name}.py" in result.stderr
    assert f"fastsio run ./{name}.py:sio" in result.stderr


def test_a_shadowed_module_runs_by_its_path(tmp_path: Path, start_server) -> None:
    (tmp_path / "socket.py").write_text("import fastsio\nsio = fastsio.Server()\n")
    port = free_port()
    server = start_server(
        "run", "./socket.py:sio", "--port", str(port), cwd=tmp_path, command=[fastsio_script()]
    )
    server.wait_for(URL_LINE.format(port=port))
    assert wait_until_serving(handshake_url(port)).startswith(b"0{")


def test_serve_client_option(app_dir: Path, start_server, tmp_path_factory) -> None:
    bundle = tmp_path_factory.mktemp("dist")
    (bundle / "socket.io.js").write_text("/* the bundle */")
    port = free_port()
    server = start_server(
        "run", "fixture_app:sio", "--port", str(port), "--serve-client", str(bundle), cwd=app_dir
    )
    server.wait_for(URL_LINE.format(port=port))
    wait_until_serving(handshake_url(port))
    assert http_get(f"http://127.0.0.1:{port}/socket.io/socket.io.js") == (200, b"/* the bundle */")

    port = free_port()
    server = start_server(
        "run", "fixture_app:sio", "--port", str(port), "--serve-client", "off", cwd=app_dir
    )
    server.wait_for(URL_LINE.format(port=port))
    wait_until_serving(handshake_url(port))
    with pytest.raises(urllib.error.HTTPError) as error:  # the engine's own answer, as Node's
        http_get(f"http://127.0.0.1:{port}/socket.io/socket.io.js")
    assert error.value.code == 400

    result = run_cli("run", "fixture_app:sio", "--serve-client", "no-such-dir", cwd=app_dir)
    assert_usage_error(result, "--serve-client 'no-such-dir': no such directory")


def test_missing_client_bundle_404_says_how_to_get_it(app_dir: Path, start_server) -> None:
    port = free_port()
    server = start_server("run", "fixture_app:sio", "--port", str(port), cwd=app_dir)
    server.wait_for(URL_LINE.format(port=port))
    wait_until_serving(handshake_url(port))
    for _ in range(2):
        with pytest.raises(urllib.error.HTTPError) as error:
            http_get(f"http://127.0.0.1:{port}/socket.io/socket.io.js")
        assert error.value.code == 404
        body = error.value.read().decode()
        assert "npm install socket.io-client" in body and "serve_client" in body
    server.wait_for(r"WARNING fastsio: .*client bundle is not installed.*npm install")
    server.stop()
    logged = [line for line in server.output if "not installed" in line]
    assert len(logged) == 1  # once, not per request


def test_root_path_reaches_the_asgi_app(tmp_path: Path, start_server) -> None:
    (tmp_path / "rooted.py").write_text(
        "import fastsio\n"
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        raise RuntimeError('no lifespan')\n"
        "    body = (scope['root_path'] + ' ' + scope['path']).encode()\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': body})\n"
        "asgi_app = fastsio.ASGIApp(fastsio.Server(), app)\n"
    )
    port = free_port()
    server = start_server(
        "run", "rooted:asgi_app", "--port", str(port), "--root-path", "/api", cwd=tmp_path
    )
    server.wait_for(URL_LINE.format(port=port))
    wait_until_serving(handshake_url(port))
    assert http_get(f"http://127.0.0.1:{port}/items") == (200, b"/api /api/items")
