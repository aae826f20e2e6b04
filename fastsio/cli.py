"""The ``fastsio`` command: ``fastsio run module:attr``, in the manner of ``uvicorn``.

The target names a :class:`fastsio.Server`, a :class:`fastsio.ASGIApp` (Socket.IO served natively,
every other path by the ASGI app it wraps: FastAPI, Starlette...), or a factory (any callable
taking no arguments) that returns one of them. The module part is either a dotted module name, imported with the current directory
on ``sys.path`` (``myapp.server:sio``), or a path to a Python file (``examples/chat/app.py:sio``).

``--reload`` runs the server in a child process and restarts it when a ``.py`` file under the app's
directory changes. The watcher polls file modification times every 0.5 s, so it needs no extra
dependency and behaves the same on every platform.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import importlib.util
import inspect
import logging
import os
import platform
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

LOG_LEVELS = ("debug", "info", "warning", "error")
RELOAD_POLL_INTERVAL = 0.5  # seconds between two scans of the watched directory
CHILD_STOP_TIMEOUT = 5.0  # seconds a stopping child gets before it is killed

# Directories the reloader never descends into: they hold no app code, and a virtualenv or
# node_modules can hold tens of thousands of files, which would make every scan slow.
_SKIPPED_DIRECTORIES = {"__pycache__", "node_modules", "site-packages", "build", "dist"}
_DOTTED_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class UsageError(Exception):
    """A mistake on the command line; reported as one line, exit status 2, no traceback."""


# -- loading the app --------------------------------------------------------------------------


def split_target(target: str) -> tuple[str, str]:
    """Split ``module:attr`` (or ``path/to/app.py:attr``) into its two parts.

    The split is on the last colon, so a Windows path such as ``C:\\app.py:sio`` works.
    """
    module, sep, attr = target.rpartition(":")
    if not sep or not module or not attr:
        raise UsageError(
            f"invalid target {target!r}: expected 'module:attr' or 'path/to/app.py:attr'"
        )
    if not _DOTTED_NAME.match(attr):
        raise UsageError(f"invalid attribute name {attr!r} in target {target!r}")
    if not is_file_target(module) and not _DOTTED_NAME.match(module):
        raise UsageError(f"invalid module name {module!r} in target {target!r}")
    return module, attr


def is_file_target(module: str) -> bool:
    """True when the module part is a file path rather than a dotted module name."""
    return module.endswith(".py") or "/" in module or os.sep in module


def import_app_module(module: str, attr: str = "sio") -> Any:
    """Import the module part of a target; :class:`UsageError` if it does not exist.

    Errors raised *inside* the module (a syntax error, a missing dependency) propagate with their
    traceback: that is a bug in the app, and the traceback is what its author needs.
    """
    if is_file_target(module):
        return _import_file(Path(module))
    # Like `python -m` and uvicorn: modules are found relative to the current directory.
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        imported = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing == module or module.startswith(missing + "."):
            raise UsageError(
                f"could not import module {module!r}: no module named {missing!r}"
            ) from None
        raise
    check_not_shadowed(module, attr)
    return imported


def check_not_shadowed(name: str, attr: str) -> None:
    """UsageError when ``name`` found a module of the standard library (or one imported before)
    instead of the app's own file of that name in the current directory (``test.py``,
    ``socket.py``...)."""
    top = name.split(".")[0]
    local = [Path.cwd() / f"{top}.py", Path.cwd() / top / "__init__.py"]
    local_file = next((path for path in local if path.is_file()), None)
    if local_file is None:
        return
    top_module = sys.modules.get(top)
    found = getattr(top_module, "__file__", None)
    if found is not None and Path(found).resolve() == local_file.resolve():
        return
    origin = "the standard library's" if top in sys.stdlib_module_names else "another"
    raise UsageError(
        f"module {top!r} is {origin} ({found or 'built in'}), not your {local_file.name}: a"
        f" module named like a standard one is shadowed; rename the file, or give its path:"
        f" fastsio run ./{local_file.relative_to(Path.cwd())}:{attr}"
    )


def _import_file(path: Path) -> Any:
    if not path.is_file():
        raise UsageError(f"could not import {str(path)!r}: no such file")
    path = path.resolve()
    # The app's own directory goes first on sys.path so that it can import its sibling modules.
    sys.path.insert(0, str(path.parent))
    name = path.stem
    if name in sys.modules or not name.isidentifier():
        # Never shadow a module already loaded (an app file called socket.py, say).
        name = "__fastsio_app__"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"could not import {str(path)!r}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_server(target: str) -> Any:
    """Return the :class:`fastsio.Server` that ``target`` names, calling it if it is a factory.
    A :class:`fastsio.ASGIApp` gives its Server, set to pass every other path to the ASGI app
    it wraps."""
    import fastsio

    server = load_target(target)
    if isinstance(server, fastsio.ASGIApp):
        return server.native()
    return server


def load_target(target: str) -> Any:
    """The Server or ASGIApp that ``target`` names (a factory is called)."""
    import fastsio

    module_name, attr = split_target(target)
    module = import_app_module(module_name, attr)
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"module {module_name!r} has no attribute {attr!r}") from None

    server_class = (fastsio.Server, fastsio.ASGIApp)
    if isinstance(obj, server_class):
        return obj
    if not callable(obj):
        raise UsageError(
            f"{target!r} is a {type(obj).__name__}, not a fastsio.Server, a fastsio.ASGIApp or a"
            " factory returning one"
        )
    try:
        inspect.signature(obj).bind()
    except TypeError:
        raise UsageError(
            f"{target!r} is not a fastsio.Server, and as a factory it cannot be called"
            " without arguments"
        ) from None
    except ValueError:  # no signature available (some builtins): just try the call
        pass
    server = obj()
    if inspect.iscoroutine(server):
        server.close()
        raise UsageError(f"factory {target!r} is a coroutine function; it must return a Server")
    if not isinstance(server, server_class):
        raise UsageError(
            f"factory {target!r} returned a {type(server).__name__}, not a fastsio.Server or a"
            " fastsio.ASGIApp"
        )
    return server


def app_directory(target: str) -> Path:
    """The directory that ``--reload`` watches: where the app's code lives.

    For a file target it is the file's directory. For a module it is the top-level package's
    directory (or the module's own directory for a plain module), found without importing the app.
    """
    module, _ = split_target(target)
    if is_file_target(module):
        path = Path(module)
        if not path.is_file():
            raise UsageError(f"could not import {module!r}: no such file")
        return path.resolve().parent
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    top_level = module.split(".")[0]
    try:
        spec = importlib.util.find_spec(top_level)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise UsageError(f"could not import module {module!r}: no module named {top_level!r}")
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))).resolve()
    if spec.origin and os.path.isfile(spec.origin):
        return Path(spec.origin).resolve().parent
    return Path.cwd()


# -- running ----------------------------------------------------------------------------------


def version() -> str:
    import fastsio

    return fastsio.__version__


def speedups_enabled() -> bool:
    import fastsio

    return bool(fastsio.SPEEDUPS)


def format_url(host: str, port: int, secure: bool = False) -> str:
    if ":" in host and not host.startswith("["):  # an IPv6 address needs brackets in a URL
        host = f"[{host}]"
    return f"{'https' if secure else 'http'}://{host}:{port}"


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def apply_proxy_options(sio: Any, options: argparse.Namespace) -> None:
    """``--trusted-proxies`` / ``--proxy-headers`` (over the app's own settings)."""
    trusted = getattr(options, "trusted_proxies", None)
    if not trusted:
        return
    from .http.proxy import TrustedProxies

    try:
        sio.trusted_proxies = TrustedProxies(trusted, options.proxy_headers)
    except ValueError as exc:
        raise UsageError(f"--trusted-proxies {trusted!r}: {exc}") from None


def run_server(options: argparse.Namespace) -> int:
    """Load the app and serve it in this process until interrupted."""
    configure_logging(options.log_level)
    static: Path | None = None
    if options.static is not None:
        static = Path(options.static)
        if not static.is_dir():
            raise UsageError(f"--static {options.static!r}: no such directory")
        static = static.resolve()
    ssl = ssl_option(options)

    sio = load_server(options.target)
    if static is not None:
        sio.static_files = static
    apply_serve_client(sio, options)
    if options.root_path:
        sio.root_path = "/" + options.root_path.strip("/")
    apply_proxy_options(sio, options)
    if getattr(options, "access_log", False):
        sio.access_log = True

    speedups = "compiled" if speedups_enabled() else "pure Python"
    workers = getattr(options, "workers", "1")
    if workers not in ("1", 1):
        if ssl is not None:
            raise UsageError("--ssl-certfile with --workers is not supported yet")
        return run_server_workers(sio, options, workers, speedups)

    def listening(port: int) -> None:
        url = format_url(options.host, port, ssl is not None)
        print(f"fastsio {version()} running on {url} (speedups: {speedups})", flush=True)

    try:
        sio.run(options.host, options.port, ssl=ssl, on_listening=listening)
    except KeyboardInterrupt:
        pass
    except OSError as exc:  # most often: the port is taken
        print(bind_error(options, exc), file=sys.stderr, flush=True)
        return 1
    return 0


def bind_error(options: argparse.Namespace, exc: OSError) -> str:
    """One line for a port that cannot be served (most often: taken)."""
    reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
    line = f"fastsio: error: cannot serve on {options.host}:{options.port}: {reason}"
    if exc.errno == errno.EADDRINUSE:
        line += " (another process listens there: stop it or choose another --port)"
    return line


def ssl_option(options: argparse.Namespace) -> Any:
    """The SSLContext of --ssl-certfile/--ssl-keyfile, or None."""
    certfile, keyfile = options.ssl_certfile, options.ssl_keyfile
    if certfile is None:
        if keyfile is not None:
            raise UsageError("--ssl-keyfile needs --ssl-certfile")
        return None
    from .server import ssl_context

    for flag, path in (("--ssl-certfile", certfile), ("--ssl-keyfile", keyfile)):
        if path is not None and not Path(path).is_file():
            raise UsageError(f"{flag} {path!r}: no such file")
    try:
        return ssl_context((certfile, keyfile))
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise UsageError(f"--ssl-certfile {certfile!r}: cannot load it: {exc}") from None


def apply_serve_client(sio: Any, options: argparse.Namespace) -> None:
    value = options.serve_client
    if value is None:
        return
    if value.lower() in ("off", "no", "false"):
        sio.serve_client = False
    elif value.lower() in ("auto", "on", "yes", "true"):
        sio.serve_client = True
    elif not Path(value).is_dir():
        raise UsageError(f"--serve-client {value!r}: no such directory")
    else:
        sio.serve_client = str(Path(value).resolve())


def run_server_workers(sio: Any, options: argparse.Namespace, workers: str, speedups: str) -> int:
    """``--workers N``: the supervising parent (fastsio.workers); prints once the port is bound."""
    from .workers import run_workers, worker_count

    try:
        count = worker_count(workers)
    except ValueError as exc:
        raise UsageError(f"--workers {workers!r}: must be a number >= 1, 0 or 'auto'") from exc

    def listening(port: int) -> None:
        print(
            f"fastsio {version()} running on {format_url(options.host, port)} with {count}"
            f" worker process(es) (speedups: {speedups})",
            flush=True,
        )

    try:
        return run_workers(sio, options.host, options.port, count, on_listening=listening)
    except OSError as exc:
        print(bind_error(options, exc), file=sys.stderr, flush=True)
        return 1


# -- --reload: a watching parent and a serving child ------------------------------------------


def scan_python_files(directory: Path) -> dict[str, int]:
    """Modification times (ns) of the .py files under ``directory``, by path."""
    found: dict[str, int] = {}
    for root, dirs, files in os.walk(directory):
        dirs[:] = [
            name
            for name in dirs
            if not name.startswith(".")
            and name not in _SKIPPED_DIRECTORIES
            and not os.path.exists(os.path.join(root, name, "pyvenv.cfg"))  # a virtualenv
        ]
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                try:
                    found[path] = os.stat(path).st_mtime_ns
                except OSError:  # deleted between listing and stat
                    pass
    return found


def changed_files(before: dict[str, int], after: dict[str, int]) -> list[str]:
    return sorted(
        path for path in before.keys() | after.keys() if before.get(path) != after.get(path)
    )


def child_command(options: argparse.Namespace) -> list[str]:
    command = [
        sys.executable, "-m", "fastsio", "run", options.target,
        "--host", options.host, "--port", str(options.port), "--log-level", options.log_level,
    ]  # fmt: skip
    if options.static is not None:
        command += ["--static", str(Path(options.static).resolve())]
    for flag, value in (
        ("--ssl-certfile", options.ssl_certfile),
        ("--ssl-keyfile", options.ssl_keyfile),
        ("--serve-client", options.serve_client),
        ("--root-path", options.root_path),
    ):
        if value:
            is_path = flag.startswith("--ssl") or (
                flag == "--serve-client" and Path(value).is_dir()
            )
            command += [flag, str(Path(value).resolve()) if is_path else value]
    if getattr(options, "access_log", False):
        command.append("--access-log")
    if getattr(options, "trusted_proxies", None):
        command += ["--trusted-proxies", options.trusted_proxies]
        command += ["--proxy-headers", options.proxy_headers]
    return command


def child_environment() -> dict[str, str]:
    """The child must import this same fastsio, even when it is not installed (a checkout)."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parent.parent)
    paths = [package_root, os.getcwd()] + env.get("PYTHONPATH", "").split(os.pathsep)
    env["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
    return env


def stop_child(child: subprocess.Popen) -> None:
    if child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(CHILD_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(0)


def run_with_reload(options: argparse.Namespace) -> int:
    """Serve in a child process; restart it whenever a watched .py file changes."""
    directory = app_directory(options.target)  # validates the target before any child starts
    if options.static is not None and not Path(options.static).is_dir():
        raise UsageError(f"--static {options.static!r}: no such directory")
    print(f"fastsio: watching {directory} for changes (--reload)", file=sys.stderr, flush=True)

    # A SIGTERM (from a process manager, or a test) must stop the child too, not orphan it.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    command = child_command(options)
    env = child_environment()
    snapshot = scan_python_files(directory)
    child = subprocess.Popen(command, env=env)
    reported_exit = False
    try:
        while True:
            time.sleep(RELOAD_POLL_INTERVAL)
            if child.poll() is not None and not reported_exit:
                reported_exit = True
                print(
                    f"fastsio: server exited with status {child.returncode};"
                    " waiting for a file change to restart it",
                    file=sys.stderr, flush=True,
                )  # fmt: skip
            current = scan_python_files(directory)
            changes = changed_files(snapshot, current)
            if not changes:
                continue
            snapshot = current
            shown = os.path.relpath(changes[0], directory)
            more = f" (and {len(changes) - 1} more)" if len(changes) > 1 else ""
            print(f"fastsio: {shown}{more} changed, restarting", file=sys.stderr, flush=True)
            stop_child(child)
            child = subprocess.Popen(command, env=env)
            reported_exit = False
    except KeyboardInterrupt:
        return 0
    finally:
        stop_child(child)


# -- the command line -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastsio", description="fastsio: a fast Socket.IO v5 server for Python."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="serve an app",
        description="Serve a fastsio.Server (or a factory returning one).",
        epilog="examples:\n  fastsio run myapp:sio\n  fastsio run examples/chat/app.py:sio"
        " --port 8765 --reload",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "target",
        metavar="module:attr",
        help="the Server or factory, e.g. 'myapp:sio' or 'path/to/app.py:create'",
    )
    run.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    run.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    run.add_argument("--static", metavar="DIR", help="serve the files in DIR at '/'")
    run.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="info",
        help="logging level (default info: connections opened and closed, refusals, errors;"
        " debug adds every packet, truncated)",
    )
    run.add_argument(
        "--access-log",
        action="store_true",
        help="log one line per HTTP request (logger fastsio.http.access, at info level)",
    )
    run.add_argument(
        "--trusted-proxies",
        metavar="ADDRESSES",
        help="comma-separated addresses or networks (CIDR) of reverse proxies whose"
        " X-Forwarded-For/-Proto headers are believed, e.g. '127.0.0.1' or '10.0.0.0/8,::1'"
        " ('*': any peer)",
    )
    run.add_argument(
        "--proxy-headers",
        choices=("x-forwarded", "forwarded"),
        default="x-forwarded",
        help="which headers the trusted proxies write: X-Forwarded-For/-Proto (default) or"
        " RFC 7239 Forwarded",
    )
    run.add_argument(
        "--workers",
        default="1",
        metavar="N",
        help="worker processes on the one port, sharing rooms and broadcasts"
        " (0 or 'auto': one per core; default 1)",
    )
    run.add_argument(
        "--ssl-certfile",
        metavar="FILE",
        help="serve HTTPS and WSS with this certificate chain (PEM; the key too unless"
        " --ssl-keyfile)",
    )
    run.add_argument("--ssl-keyfile", metavar="FILE", help="the private key of --ssl-certfile")
    run.add_argument(
        "--serve-client",
        metavar="DIR|off",
        help="the socket.io client bundle served at <path>/socket.io.js: a directory"
        " (socket.io-client/dist), or 'off' (default: node_modules/socket.io-client/dist"
        " found from the current or the app's directory upward)",
    )
    run.add_argument(
        "--root-path",
        default="",
        metavar="PATH",
        help="the path prefix a reverse proxy strips, passed to a wrapped ASGI app (root_path)",
    )
    run.add_argument(
        "--reload",
        action="store_true",
        help="restart the server when a .py file under the app's directory changes",
    )
    return parser


def fail(message: str) -> NoReturn:
    print(f"fastsio: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    options = parser.parse_args(argv)
    if options.version:
        speedups = "compiled" if speedups_enabled() else "pure Python"
        print(f"fastsio {version()} (Python {platform.python_version()}, speedups: {speedups})")
        return 0
    if options.command is None:
        parser.print_help(sys.stderr)
        return 2
    if options.command == "run" and not 1 <= options.port <= 65535:
        parser.error(f"--port {options.port}: must be between 1 and 65535")
    try:
        if options.reload:
            if options.workers != "1":
                print("fastsio: --reload runs one worker process", file=sys.stderr, flush=True)
            return run_with_reload(options)
        return run_server(options)
    except UsageError as exc:
        fail(str(exc))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
