"""Build script: the pure-Python package always installs; the Cython speedups are built when Cython
and a C compiler are available (see fastsio/_speedups/README.md).

- ``FASTSIO_NO_EXTENSIONS=1``: do not even try to build them.
- ``FASTSIO_REQUIRE_EXTENSIONS=1``: a failed build fails the install (CI), instead of a warning.

The generated C goes to build/cython, never into the source tree.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

NO_EXTENSIONS = bool(os.environ.get("FASTSIO_NO_EXTENSIONS"))
REQUIRE_EXTENSIONS = bool(os.environ.get("FASTSIO_REQUIRE_EXTENSIONS"))

ROOT = os.path.dirname(os.path.abspath(__file__))
PACKAGE_DIR = os.path.join("fastsio", "_speedups")
SOURCE_DIR = os.path.join(PACKAGE_DIR, "src")  # symlinks: sources to compile, not to install
BUILD_DIR = os.path.join("build", "cython")


def _pxd(name: str) -> str:
    # "engine.session" -> fastsio/_speedups/engine/session.pxd
    return os.path.join(PACKAGE_DIR, *name.split(".")) + ".pxd"


def _extension(name: str, source: str, cimports: tuple[str, ...] = ()) -> Extension:
    # The augmenting .pxd sits beside the compiled module (Cython finds it by module name); listed
    # in ``depends`` so that it goes into the sdist and a change to it triggers a rebuild. So are
    # the .pxd files of the modules it cimports: their C layout is compiled into it.
    pxd = _pxd(name)
    depends = [pxd] if os.path.exists(os.path.join(ROOT, pxd)) else []
    depends += [_pxd(other) for other in cimports]
    return Extension(f"fastsio._speedups.{name}", [source], depends=depends)


EXTENSIONS = [
    # the pure-Python module itself (a symlink), compiled with fastsio/_speedups/<name>.pxd
    _extension("engineio_c", os.path.join(SOURCE_DIR, "engineio_c.py")),
    # cimports json_c's FastJson: a packet's JSON is a C call
    _extension("socketio_c", os.path.join(SOURCE_DIR, "socketio_c.py"), cimports=("json_c",)),
    _extension("fanout_c", os.path.join(SOURCE_DIR, "fanout_c.py")),
    # optional codecs: _impl uses them when they import (msgpack_parser_c needs msgpack at run
    # time, not at build time), without them counting for SPEEDUPS
    _extension("engineio3_c", os.path.join(SOURCE_DIR, "engineio3_c.py")),
    _extension("msgpack_parser_c", os.path.join(SOURCE_DIR, "msgpack_parser_c.py")),
    # hand-written: byte-level work that plain Python cannot express (its header says more);
    # websocket_c.pxd declares its FrameReader for wsconn_c
    _extension("websocket_c", os.path.join(PACKAGE_DIR, "websocket_c.pyx")),
    # hand-written: fast paths in front of orjson for small flat events (a FastJson installed into
    # socketio_c by _impl); json_c.pxd declares the class for socketio_c
    _extension("json_c", os.path.join(PACKAGE_DIR, "json_c.pyx")),
    # the per-connection WebSocket class (fastsio/http/websocket.py), cimporting that FrameReader
    _extension("wsconn_c", os.path.join(SOURCE_DIR, "wsconn_c.py"), cimports=("websocket_c",)),
    # the HTTP/1.1 connection, httptools' callbacks (fastsio/http/protocol.py)
    _extension("httpproto_c", os.path.join(SOURCE_DIR, "httpproto_c.py")),
    # the Socket.IO dispatch classes (fastsio/client.py, fastsio/socket.py), each cimporting the
    # other's class: Socket.emit reads its Client's fields, Client calls Socket._on_event in C
    _extension("client_c", os.path.join(SOURCE_DIR, "client_c.py"), cimports=("socket_c",)),
    _extension("socket_c", os.path.join(SOURCE_DIR, "socket_c.py"), cimports=("client_c",)),
    # the Engine.IO session and its transports (fastsio/engine/session.py, transports.py), in a
    # package of fastsio.engine's shape (the session imports ".transports"); the WebSocket
    # transport is compiled against the session's layout
    _extension("engine.session", os.path.join(SOURCE_DIR, "engine", "session.py")),
    _extension(
        "engine.transports",
        os.path.join(SOURCE_DIR, "engine", "transports.py"),
        cimports=("engine.session",),
    ),
    # the Redis adapter's subscription reader (fastsio/redis/_reader.py); needs hiredis at run
    # time, like its twin, and is used by fastsio.redis only (_impl.redis_reader)
    _extension("respreader_c", os.path.join(SOURCE_DIR, "respreader_c.py")),
]

COMPILER_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "embedsignature": True,
    # annotations do not type anything: a C type only where a .pxd says so, after checking that
    # it does not change what the function accepts (tests/test_speedups.py compares)
    "annotation_typing": False,
}


def _stale(ext: Extension) -> bool:
    """Cython only tracks a .pxd that sits beside its source; ours sit beside the module."""
    source = ext.sources[0]
    generated = os.path.join(BUILD_DIR, os.path.splitext(source)[0] + ".c")
    if not os.path.exists(generated):
        return True
    built = os.path.getmtime(generated)
    return any(os.path.getmtime(dep) > built for dep in [source, *ext.depends, __file__])


def _warn(message: str) -> None:
    bar = "*" * 78
    print(f"\n{bar}\n{message}\n{bar}\n", file=sys.stderr)


class OptionalBuildExt(build_ext):
    """Cythonize at build time, and treat a failure as "install the pure-Python package"."""

    def run(self) -> None:
        if NO_EXTENSIONS or not self.extensions:
            return
        try:
            from Cython.Build import cythonize
        except ImportError as exc:
            return self._give_up(f"Cython is not installed ({exc})")
        try:
            for ext in self.extensions:
                # only the sources change (to the generated C): the extension objects keep what
                # setuptools set on them
                ext.sources = cythonize(
                    ext,
                    build_dir=BUILD_DIR,
                    include_path=[ROOT],  # where Cython finds fastsio/_speedups/*.pxd
                    compiler_directives=COMPILER_DIRECTIVES,
                    force=_stale(ext),
                    quiet=True,
                )[0].sources
        except Exception as exc:  # noqa: BLE001 - a Cython compile error
            return self._give_up(f"{type(exc).__name__}: {exc}")
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - no compiler, no Python headers ...
            self._give_up(f"{type(exc).__name__}: {exc}")

    def _give_up(self, reason: str) -> None:
        if REQUIRE_EXTENSIONS:
            raise RuntimeError(f"fastsio: building the speedups failed: {reason}")
        _warn(
            "WARNING: fastsio's compiled speedups could not be built; the pure-Python\n"
            f"implementation will be used (slower). Reason: {reason}"
        )


class BuildPy(build_py):
    """Leave out fastsio/_speedups/src: build inputs (symlinks to modules installed anyway)."""

    def find_package_modules(self, package: str, package_dir: str) -> list:
        if package == "fastsio._speedups.src" or package.startswith("fastsio._speedups.src."):
            return []
        return super().find_package_modules(package, package_dir)


setup(
    ext_modules=EXTENSIONS,
    cmdclass={"build_ext": OptionalBuildExt, "build_py": BuildPy},
)
