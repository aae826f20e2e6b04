"""Several worker processes on one port: ``fastsio run app:sio --workers N``.

The parent process binds the port, forks the workers (each runs the app's Server on its own event
loop) and then only supervises and relays: it never runs the app itself.

- **One port.** Each worker listens on its own socket with ``SO_REUSEPORT`` (the kernel spreads
  new connections over the workers by a hash of the addresses); with ``reuse_port=False`` they
  all accept on the parent's one listening socket instead.
- **The bus.** Unless the app configured an adapter of its own (Redis: then the workers use it),
  every namespace gets a :class:`BusAdapter`: Node's cluster-adapter protocol
  (:class:`~fastsio.cluster.ClusterAdapter`) over a Unix socket to the parent, which relays each
  frame to every other worker without decoding it. Rooms, broadcasts, ``fetch_sockets``,
  ``sockets_join``/``leave``, ``disconnect_sockets``, server-side events and broadcast acks all
  span the workers.
- **Supervision.** A worker that dies is forked again (its clients reconnect); SIGTERM or SIGINT
  stops every worker cleanly (their clients get a disconnect) and then the parent; SIGHUP
  restarts the workers one at a time. A worker whose parent is gone (the bus closes) stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import selectors
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import _impl
from .adapter import BroadcastOptions, InMemoryAdapter
from .cluster import MALFORMED, ClusterAdapter
from .recovery import PacketLog, PendingRestores, SessionAwareAdapter, loggable, new_log

__all__ = [
    "BusAdapter",
    "BusAdapterFactory",
    "RecoverableBusAdapter",
    "Supervisor",
    "WorkerInfo",
    "run_workers",
]

logger = logging.getLogger("fastsio.workers")

#: a frame on the bus: 4-byte big-endian length, then the payload; its first byte says what it is
_MESSAGE = b"M"  # a cluster message (pickled dict), relayed by the parent to every other worker
_COUNT = b"C"  # from the parent: how many workers are on the bus now (4 bytes)
# connection state recovery (only when the server has it on): the parent keeps the log
_LOG = b"L"  # to the parent: a broadcast to log, pickled (nsp, opts, data)
_LOGGED = b"O"  # from the parent, to every worker: <1-byte length><offset> + the L pickle
_PERSIST = b"S"  # to the parent: a disconnected socket's session, pickled (nsp, session)
_RESTORE = b"R"  # to the parent: pickled (request id, nsp, pid, offset)
_RESTORED = b"A"  # from the parent, to the asker: pickled (request id, session or None)
_HEADER = 4
MAX_PENDING_BYTES = 64 * 1024 * 1024  # per bus connection, both ways: past it frames are dropped
STOP_TIMEOUT = 10.0  # seconds a stopping worker gets before it is killed
FAST_FAILURES = 5  # a worker dying this many times in a row within RESTART_WINDOW: give up
RESTART_WINDOW = 2.0


@dataclass(frozen=True)
class WorkerInfo:
    """Who this process is among the workers: set as ``Server.worker`` by the supervisor
    before the server starts (None in a single process).

    ``index``: 0 .. count-1; ``count``: the number of workers; ``runtime_dir``: a private
    directory of this group of workers (Unix sockets of the bus and of the hand-over live there:
    worker ``i`` accepts handed-over connections on ``handover_path(i)``).
    """

    index: int
    count: int
    runtime_dir: str

    def handover_path(self, index: int) -> str:
        return f"{self.runtime_dir}/handover-{index}.sock"

    @property
    def bus_path(self) -> str:
        return f"{self.runtime_dir}/bus.sock"


def frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(_HEADER, "big") + payload


def worker_count(workers: int | str | None) -> int:
    """``--workers``: a number >= 1, or 0 / "auto" for one per core."""
    if workers in (0, "0", "auto", None):
        return os.cpu_count() or 1
    count = int(workers)
    if count < 1:
        raise ValueError(f"workers must be >= 1, 0 or 'auto', not {workers!r}")
    return count


def run_workers(
    server: Any,
    host: str,
    port: int,
    workers: int | str,
    *,
    reuse_port: bool = True,
    on_listening: Callable[[int], None] | None = None,
) -> int:
    """Serve ``server`` from ``workers`` processes on ``host:port`` until SIGTERM/SIGINT;
    returns the exit status. ``on_listening(port)`` is called once the port is bound."""
    return Supervisor(server, host, port, worker_count(workers), reuse_port=reuse_port).run(
        on_listening
    )


# -- the parent ---------------------------------------------------------------------------------


class _BusConnection:
    __slots__ = ("inbox", "outbox", "sock", "writing")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbox = bytearray()
        self.outbox = bytearray()
        self.writing = False


class _Worker:
    __slots__ = ("index", "pid", "started", "stopping")

    def __init__(self, index: int, pid: int) -> None:
        self.index = index
        self.pid = pid
        self.started = time.monotonic()
        self.stopping = False


class Supervisor:
    """The parent of the workers (see the module's doc). ``run()`` blocks."""

    def __init__(
        self, server: Any, host: str, port: int, count: int, *, reuse_port: bool = True
    ) -> None:
        self.server = server
        self.host = host
        self.port = port
        self.count = count
        self.reuse_port = reuse_port
        self.runtime_dir = ""
        self.workers: dict[int, _Worker] = {}  # by pid
        self.bus_connections: dict[int, _BusConnection] = {}  # by fd
        self.selector: Any = None
        self.listener: socket.socket | None = None
        self.bus: socket.socket | None = None
        self.stopping = False
        self.rolling: list[int] = []  # worker indexes still to restart (SIGHUP)
        self.fast_failures: dict[int, int] = {}
        self.dropped = 0
        #: connection state recovery: the packet log and saved sessions of each namespace, kept
        #: here so that a client is recovered on any worker (None when recovery is off)
        self.recovery: dict | None = getattr(server, "connection_state_recovery", None)
        self.logs: dict[str, PacketLog] = {}
        self._signals: list[int] = []
        self._wake_read: socket.socket | None = None
        self._wake_write: socket.socket | None = None

    # -- set-up and tear-down ------------------------------------------------------------------

    def run(self, on_listening: Callable[[int], None] | None = None) -> int:
        self.runtime_dir = tempfile.mkdtemp(prefix="fastsio-workers-")
        try:
            self._bind()
            if on_listening is not None:
                on_listening(self.port)
            self._open_bus()
            self._install_signals()
            for index in range(self.count):
                self._spawn(index)
            return self._loop()
        finally:
            self._stop_all()
            self._close_parent_sockets()
            shutil.rmtree(self.runtime_dir, ignore_errors=True)

    def _bind(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        if not self.reuse_port:
            sock.listen(1024)  # one queue, every worker accepts from it
        # with SO_REUSEPORT this socket only holds the port (a port 0 stays the same for every
        # worker, also one restarted later); it never listens, so it gets no connections
        self.listener = sock

    def _open_bus(self) -> None:
        bus = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        bus.bind(os.path.join(self.runtime_dir, "bus.sock"))
        bus.listen(256)
        bus.setblocking(False)
        self.bus = bus
        self.selector = selectors.DefaultSelector()
        self.selector.register(bus, selectors.EVENT_READ, "accept")

    def _install_signals(self) -> None:
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._wake_write.setblocking(False)
        signal.set_wakeup_fd(self._wake_write.fileno(), warn_on_full_buffer=False)
        self.selector.register(self._wake_read, selectors.EVENT_READ, "signal")
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signals.append(signum)

    def _close_parent_sockets(self) -> None:
        for connection in list(self.bus_connections.values()):
            connection.sock.close()
        self.bus_connections.clear()
        for sock in (self.bus, self.listener, self._wake_read, self._wake_write):
            if sock is not None:
                sock.close()
        if self._wake_write is not None:
            with contextlib.suppress(ValueError):
                signal.set_wakeup_fd(-1)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            with contextlib.suppress(ValueError):
                signal.signal(signum, signal.SIG_DFL)
        if self.selector is not None:
            self.selector.close()

    # -- workers ---------------------------------------------------------------------------------

    def _spawn(self, index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            status = 1
            try:
                status = self._worker_main(index)
            except BaseException:
                logger.exception("worker %d failed", index)
            finally:
                os._exit(status)
        self.workers[pid] = _Worker(index, pid)
        logger.info("worker %d started (pid %d)", index, pid)

    def _worker_main(self, index: int) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        with contextlib.suppress(ValueError):
            signal.set_wakeup_fd(-1)
        # the parent's end of the bus and its selector are not the worker's
        for connection in self.bus_connections.values():
            connection.sock.close()
        for sock in (self.bus, self._wake_read, self._wake_write):
            if sock is not None:
                sock.close()
        self.selector.close()
        info = WorkerInfo(index, self.count, self.runtime_dir)
        server = self.server
        server.worker = info
        if server.adapter_class in (InMemoryAdapter, SessionAwareAdapter):
            server.use_adapter(BusAdapterFactory(info.bus_path, server.connection_state_recovery))
        if self.reuse_port:
            assert self.listener is not None
            family = self.listener.family
            self.listener.close()
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self.host, self.port))
            sock.listen(1024)
        else:
            sock = self.listener
        server.run(self.host, self.port, sock=sock)
        return 0

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            self._worker_exited(worker, status)

    def _worker_exited(self, worker: _Worker, status: int) -> None:
        how = _describe_status(status)
        if self.stopping:
            logger.info("worker %d (pid %d) stopped (%s)", worker.index, worker.pid, how)
            return
        if worker.stopping:  # a rolling restart
            logger.info(
                "worker %d (pid %d) stopped for the restart (%s)", worker.index, worker.pid, how
            )
            self._spawn(worker.index)
            self._restart_next()
            return
        lived = time.monotonic() - worker.started
        failures = self.fast_failures.get(worker.index, 0) + 1 if lived < RESTART_WINDOW else 0
        self.fast_failures[worker.index] = failures
        if failures >= FAST_FAILURES:
            logger.error(
                "worker %d died %d times in a row right after starting (%s); stopping",
                worker.index,
                failures,
                how,
            )
            self.stopping = True
            self._exit_status = 1
            return
        logger.warning("worker %d (pid %d) died (%s); restarting it", worker.index, worker.pid, how)
        self._spawn(worker.index)

    def _restart_next(self) -> None:
        """SIGHUP: stop one worker; when it has exited, its successor starts and the next goes."""
        while self.rolling:
            index = self.rolling.pop(0)
            for worker in self.workers.values():
                if worker.index == index and not worker.stopping:
                    worker.stopping = True
                    _kill(worker.pid, signal.SIGTERM)
                    return

    def _stop_all(self) -> None:
        self.stopping = True
        for worker in self.workers.values():
            _kill(worker.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.workers and time.monotonic() < deadline:
            self._reap()
            if self.workers:
                time.sleep(0.02)
        for worker in list(self.workers.values()):
            logger.warning(
                "worker %d (pid %d) did not stop in time; killing it", worker.index, worker.pid
            )
            _kill(worker.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(worker.pid, 0)
        self.workers.clear()

    # -- the loop --------------------------------------------------------------------------------

    _exit_status = 0

    def _loop(self) -> int:
        selector = self.selector
        while not self.stopping:
            for key, events in selector.select(timeout=1.0):
                kind = key.data
                if kind == "accept":
                    self._accept()
                elif kind == "signal":
                    with contextlib.suppress(BlockingIOError):
                        while self._wake_read.recv(4096):  # type: ignore[union-attr]
                            pass
                else:
                    connection = kind
                    if events & selectors.EVENT_READ:
                        self._read(connection)
                    if events & selectors.EVENT_WRITE and connection.sock.fileno() != -1:
                        self._write(connection)
            self._handle_signals()
            self._reap()
        return self._exit_status

    def _handle_signals(self) -> None:
        signals, self._signals = self._signals, []
        for signum in signals:
            if signum in (signal.SIGTERM, signal.SIGINT):
                logger.info("stopping the workers (%s)", signal.Signals(signum).name)
                self.stopping = True
            elif signum == signal.SIGHUP:
                logger.info("restarting the workers one at a time (SIGHUP)")
                self.rolling = sorted({worker.index for worker in self.workers.values()})
                self._restart_next()

    # -- the bus ---------------------------------------------------------------------------------

    def _accept(self) -> None:
        assert self.bus is not None
        while True:
            try:
                sock, _ = self.bus.accept()
            except BlockingIOError:
                break
            sock.setblocking(False)
            connection = _BusConnection(sock)
            self.bus_connections[sock.fileno()] = connection
            self.selector.register(sock, selectors.EVENT_READ, connection)
        self._announce_count()

    def _announce_count(self) -> None:
        message = frame(_COUNT + len(self.bus_connections).to_bytes(4, "big"))
        for connection in list(self.bus_connections.values()):
            self._send(connection, message)

    def _read(self, connection: _BusConnection) -> None:
        try:
            data = connection.sock.recv(1 << 18)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop_connection(connection)
            return
        inbox = connection.inbox
        inbox += data
        start = 0
        size = len(inbox)
        frames = []
        while size - start >= _HEADER:
            end = start + _HEADER + int.from_bytes(inbox[start : start + _HEADER], "big")
            if end > size:
                break
            frames.append(bytes(inbox[start:end]))
            start = end
        if start:
            del inbox[:start]
        if not frames:
            return
        if self.recovery is not None:
            self._route(connection, frames)
            return
        relayed = b"".join(frames)
        for other in list(self.bus_connections.values()):
            if other is not connection:
                self._send(other, relayed)

    def _route(self, connection: _BusConnection, frames: list) -> None:
        """With recovery on: cluster messages are relayed as always; broadcasts to log, sessions
        and restores are the parent's business. Every logged broadcast gets its offset here and
        goes to every worker (its sender too, which serves its local sockets then), so all of
        them see one order, and a restore answered here comes to the asker after every
        broadcast the replay holds and before every later one."""
        outgoing: dict = {worker: [] for worker in self.bus_connections.values()}
        for data in frames:
            kind = data[_HEADER : _HEADER + 1]
            if kind == _MESSAGE:
                for worker, out in outgoing.items():
                    if worker is not connection:
                        out.append(data)
                continue
            try:
                self._recovery_frame(connection, kind, data[_HEADER + 1 :], outgoing)
            except Exception:  # the parent must outlive any frame
                logger.exception("bad recovery frame %r from a worker", kind)
        for worker, out in outgoing.items():
            if out:
                self._send(worker, b"".join(out))

    def _recovery_frame(
        self, connection: _BusConnection, kind: bytes, body: bytes, outgoing: dict
    ) -> None:
        if kind == _LOG:
            nsp, opts, data = pickle.loads(body)
            offset = self._log_of(nsp).append(opts, data).encode()
            logged = frame(_LOGGED + bytes((len(offset),)) + offset + body)
            for out in outgoing.values():
                out.append(logged)
        elif kind == _PERSIST:
            nsp, session = pickle.loads(body)
            self._log_of(nsp).persist(session)
        elif kind == _RESTORE:
            request_id, nsp, pid, offset = pickle.loads(body)
            log = self.logs.get(nsp)
            session = log.restore(pid, offset) if log is not None else None
            answer = pickle.dumps((request_id, session), pickle.HIGHEST_PROTOCOL)
            outgoing[connection].append(frame(_RESTORED + answer))

    def _log_of(self, nsp: str) -> PacketLog:
        log = self.logs.get(nsp)
        if log is None:
            log = self.logs[nsp] = new_log(self.recovery)
        return log

    def _send(self, connection: _BusConnection, data: bytes) -> None:
        if len(connection.outbox) > MAX_PENDING_BYTES:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                logger.warning(
                    "a worker reads its bus too slowly: %d frame(s) dropped so far", self.dropped
                )
            return
        connection.outbox += data
        if not connection.writing:
            self._write(connection)

    def _write(self, connection: _BusConnection) -> None:
        try:
            sent = connection.sock.send(connection.outbox)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._drop_connection(connection)
            return
        del connection.outbox[:sent]
        want_write = bool(connection.outbox)
        if want_write != connection.writing:
            connection.writing = want_write
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want_write else 0)
            self.selector.modify(connection.sock, events, connection)

    def _drop_connection(self, connection: _BusConnection) -> None:
        if self.bus_connections.pop(connection.sock.fileno(), None) is None:
            return
        self.selector.unregister(connection.sock)
        connection.sock.close()
        self._announce_count()


def _kill(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


# -- the workers' side of the bus ---------------------------------------------------------------


class _BusProtocol(asyncio.Protocol):
    def __init__(self, factory: BusAdapterFactory) -> None:
        self.factory = factory
        self.inbox = bytearray()

    def connection_made(self, transport: Any) -> None:
        self.factory.transport = transport

    def data_received(self, data: bytes) -> None:
        inbox = self.inbox
        inbox += data
        start = 0
        size = len(inbox)
        on_frame = self.factory.on_frame
        while size - start >= _HEADER:
            end = start + _HEADER + int.from_bytes(inbox[start : start + _HEADER], "big")
            if end > size:
                break
            on_frame(inbox[start + _HEADER : end])
            start = end
        if start:
            del inbox[:start]

    def connection_lost(self, exc: BaseException | None) -> None:
        self.factory.bus_lost()


class BusAdapterFactory:
    """The adapter of each namespace of a worker; all share one connection to the parent."""

    def __init__(self, path: str, recovery: dict | None = None) -> None:
        self.path = path
        self.recovery = recovery
        #: restores asked of the parent: request id -> (future, adapter)
        self.restores: dict[int, tuple[asyncio.Future, RecoverableBusAdapter]] = {}
        self._next_request = 0
        self.transport: Any = None
        self.adapters: dict[str, BusAdapter] = {}
        self.count = 1
        self.closed = False
        self._users = 0
        self._connecting: asyncio.Future | None = None
        self._batch: list = []
        self._batch_bytes = 0
        self._flush_scheduled = False
        self._loop: Any = None
        self.dropped = 0

    def __call__(self, nsp: Any) -> BusAdapter:
        if self.recovery is not None:
            return RecoverableBusAdapter(nsp, self)
        return BusAdapter(nsp, self)

    def next_request(self) -> int:
        self._next_request += 1
        return self._next_request

    async def acquire(self, adapter: BusAdapter) -> None:
        self._users += 1
        self.adapters[adapter.nsp.name] = adapter
        if self._connecting is None:
            self._loop = asyncio.get_running_loop()
            self._connecting = asyncio.ensure_future(
                self._loop.create_unix_connection(lambda: _BusProtocol(self), self.path)
            )
        await asyncio.shield(self._connecting)

    async def release(self, adapter: BusAdapter) -> None:
        if self.adapters.get(adapter.nsp.name) is adapter:
            del self.adapters[adapter.nsp.name]
        self._users -= 1
        if self._users <= 0 and self.transport is not None:
            self.closed = True
            self.transport.close()

    def send(self, payload: bytes) -> bool:
        """Queue a frame; the frames of one loop tick leave in one write. False: dropped (the
        bus is down or the parent reads too slowly)."""
        transport = self.transport
        if (
            transport is None
            or self._batch_bytes + transport.get_write_buffer_size() > MAX_PENDING_BYTES
        ):
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                logger.warning(
                    "the workers' bus is down or slow: %d message(s) dropped so far", self.dropped
                )
            return False
        data = frame(payload)
        self._batch.append(data)
        self._batch_bytes += len(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        return True

    def _flush(self) -> None:
        self._flush_scheduled = False
        batch, self._batch = self._batch, []
        self._batch_bytes = 0
        if batch and self.transport is not None:
            self.transport.write(b"".join(batch))

    def on_frame(self, payload: bytearray) -> None:
        kind = payload[:1]
        if kind == _MESSAGE:
            try:
                message = pickle.loads(payload[1:])
                adapter = self.adapters.get(message.get("nsp")) if type(message) is dict else None
                if adapter is not None:
                    adapter.on_message(message)
            except MALFORMED as exc:
                logger.warning("dropped a malformed message from another worker: %s", exc)
            except Exception:
                logger.exception("error handling a message from another worker")
        elif kind == _COUNT:
            self.count = max(1, int.from_bytes(payload[1:5], "big"))
        elif kind == _LOGGED:
            self._on_logged(payload)
        elif kind == _RESTORED:
            self._on_restored(payload)

    def _on_logged(self, payload: bytearray) -> None:
        end = 2 + payload[1]
        offset = payload[2:end].decode()
        try:
            nsp, opts, data = pickle.loads(payload[end:])
        except Exception:  # logged, the bus goes on
            logger.exception("an unreadable logged broadcast from the parent")
            return
        adapter = self.adapters.get(nsp)
        if isinstance(adapter, RecoverableBusAdapter):
            adapter.on_logged(offset, opts, data)

    def _on_restored(self, payload: bytearray) -> None:
        try:
            request_id, session = pickle.loads(payload[1:])
        except Exception:  # logged, the bus goes on
            logger.exception("an unreadable session restore from the parent")
            return
        waiting = self.restores.pop(request_id, None)
        if waiting is None:
            return  # timed out meanwhile
        future, adapter = waiting
        if session is not None:
            # from this frame on, what is logged is after the replay: kept for the socket
            # until it joins its rooms (the awaiting task resumes a loop turn later)
            adapter.restoring.add(session["sid"], set(session["rooms"]), session["missed_packets"])
        if not future.done():
            future.set_result(session)

    def bus_lost(self) -> None:
        self.transport = None
        if self.closed:
            return
        # the parent is gone: a worker does not outlive it
        logger.error("the connection to the workers' parent is lost; stopping this worker")
        for adapter in list(self.adapters.values()):
            adapter.nsp.server._request_stop()
            break


class BusAdapter(ClusterAdapter):
    """A namespace's adapter in a worker: the cluster protocol over the parent's bus."""

    def __init__(self, nsp: Any, factory: BusAdapterFactory) -> None:
        super().__init__(nsp)
        self.factory = factory

    async def init(self) -> None:
        await self.factory.acquire(self)

    async def close(self) -> None:
        await self.factory.release(self)
        await super().close()

    def publish_message(self, message: dict) -> None:
        self.factory.send(_MESSAGE + pickle.dumps(message, pickle.HIGHEST_PROTOCOL))

    def publish_response(self, requester_uid: str, message: dict) -> None:
        # the parent relays to every other worker; only the requester knows the request id
        self.publish_message(message)

    async def server_count(self) -> int:
        return self.factory.count


class RecoverableBusAdapter(BusAdapter):
    """A worker's adapter with connection state recovery on: the log and the saved sessions are
    the parent's (``Supervisor._route``), so a client that comes back on another worker is
    recovered. A broadcast to log goes to the parent first and reaches the local sockets when
    it comes back with its offset, as every worker's do: one order for all of them."""

    def __init__(self, nsp: Any, factory: BusAdapterFactory) -> None:
        super().__init__(nsp, factory)
        self.restoring = PendingRestores()

    def broadcast(self, packet: Any, opts: BroadcastOptions) -> None:
        if opts.local or not loggable(packet, opts):
            ClusterAdapter.broadcast(self, packet, opts)
            return
        body = pickle.dumps((self.nsp.name, opts, packet.data), pickle.HIGHEST_PROTOCOL)
        if not self.factory.send(_LOG + body):
            InMemoryAdapter.broadcast(self, packet, opts)  # no parent: served here, not logged

    def on_logged(self, offset: str, opts: BroadcastOptions, data: list) -> None:
        """A logged broadcast back from the parent with its offset (any worker's)."""
        data.append(offset)
        if self.restoring:
            self.restoring.deliver(data, opts)
        InMemoryAdapter.broadcast(self, _Packet(_EVENT, self.nsp.name, data), opts)

    def persist_session(self, session: dict) -> None:
        try:
            body = pickle.dumps((self.nsp.name, session), pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            logger.warning("session of %s not saved: %s", session.get("sid"), exc)
            return
        self.factory.send(_PERSIST + body)

    async def restore_session(self, pid: str, offset: str) -> dict | None:
        """Asks the parent; None when it does not answer within ``requests_timeout``."""
        factory = self.factory
        request_id = factory.next_request()
        future = asyncio.get_running_loop().create_future()
        factory.restores[request_id] = (future, self)
        body = pickle.dumps((request_id, self.nsp.name, pid, offset), pickle.HIGHEST_PROTOCOL)
        if not factory.send(_RESTORE + body):
            factory.restores.pop(request_id, None)
            return None
        try:
            return await asyncio.wait_for(future, self.requests_timeout)
        except asyncio.TimeoutError:
            logger.warning("the parent did not answer a session restore in time")
            return None
        finally:
            factory.restores.pop(request_id, None)

    def add_all(self, sid: str, rooms: Any) -> None:
        # a restored socket joins its rooms when it connects: from then on the fan-out reaches it
        if self.restoring:
            self.restoring.connected(sid)
        InMemoryAdapter.add_all(self, sid, rooms)


_EVENT = _impl.socketio.EVENT
_Packet = _impl.socketio.Packet
