"""Hand-over of HTTP connections between worker processes (``fastsio run --workers N``).

Several workers accept on one port, so the requests of one long-polling session (and its
WebSocket upgrade) land on any of them; the session lives in one, its owner, named by the sid
(``engine/ids.py``). A worker that receives a request for another worker's session gives the
owner the whole connection: the socket's file descriptor, passed with ``SCM_RIGHTS`` over the
owner's Unix socket, and the bytes already read from it. The owner serves the connection from
then on (a keep-alive connection's next requests go straight to it) and the giver forgets it.

The contract:

- Worker ``i`` listens on ``worker.handover_path(i)`` (a ``SOCK_STREAM`` Unix socket) while it
  runs: ``Handover.start()`` / ``close()``.
- A giver keeps one connection to each owner it has handed something to. Each hand-over is one
  frame: a 4-byte big-endian length, one byte for the socket family (``AF_INET``/``AF_INET6``),
  then the bytes to replay; the descriptor travels as ``SCM_RIGHTS`` ancillary data of the
  frame's first byte. Descriptors and frames come in the same order, so the receiver pairs them
  first-in first-out, wherever its reads cut the stream.
- The bytes to replay are the request as parsed (``protocol.replay_bytes``), the requests
  pipelined after it, and any bytes after an upgrade request's head. The owner parses them
  before anything read from the socket (``HttpServer.adopt``, ``AdoptedHttpProtocol``).
- The giver drops its own descriptor once the frame is on its way: the connection stays open
  for the client, held by the owner. When the owner cannot be reached (no listener: the worker
  is gone), nothing changes and the giver answers the request itself (400 "Session ID unknown").
  A restarted worker listens on the same path but knows none of the old sessions: it answers
  that itself.
- TLS connections are not handed over (their state lives in the giver's process).

The check sits where a request's sid is not found in the engine's session table
(``EngineServer.handle_request``): a request on its owner, and any request without a sid
(handshakes, WebSocket-only clients), pays nothing for it.
"""

from __future__ import annotations

import array
import asyncio
import logging
import os
import socket
import struct
from collections import deque
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("fastsio.http")

_HEADER = struct.Struct("!IB")
_FAMILIES = {socket.AF_INET: 4, socket.AF_INET6: 6}
_FAMILY_OF = {code: family for family, code in _FAMILIES.items()}
# One read: below malloc's mmap threshold (a 256 KB buffer per recvmsg cost ~20 us in page
# faults); a larger frame arrives in several reads.
_RECV_SIZE = 65536
_MAX_FDS = 64  # descriptors taken per read (the kernel passes one frame's at most anyway)
_ANCILLARY = socket.CMSG_SPACE(_MAX_FDS * struct.calcsize("i"))
_NOSIGNAL = getattr(socket, "MSG_NOSIGNAL", 0)
_QUERY_SEPARATORS = b"?&"
_LINE_LIMIT = 8192  # a sid further than this in a connection's first bytes: the engine finds it
_CLOEXEC = getattr(socket, "MSG_CMSG_CLOEXEC", 0)


_FD = struct.Struct("i")


def _rights(fd: int) -> list[tuple[int, int, bytes]]:
    return [(socket.SOL_SOCKET, socket.SCM_RIGHTS, _FD.pack(fd))]


class _Link:
    """The giver's connection to one owner: frames are written in order, without blocking the
    loop (what the kernel does not take at once waits here, with a duplicate of its descriptor)."""

    __slots__ = ("loop", "path", "pending", "sock")

    def __init__(self, loop: asyncio.AbstractEventLoop, path: str) -> None:
        self.loop = loop
        self.path = path
        self.sock: socket.socket | None = None
        # (bytes not sent yet, the descriptor to send with the first of them or -1)
        self.pending: deque[tuple[memoryview, int]] = deque()

    def _connect(self) -> socket.socket | None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(self.path)
        except OSError as exc:
            # ENOENT / ECONNREFUSED: nobody listens there (the worker is gone); EAGAIN: its
            # backlog is full. Either way the request is answered here.
            logger.debug("hand-over to %s: %s", self.path, exc)
            sock.close()
            return None
        self.sock = sock
        return sock

    def give(self, sock: Any, replay: bytes) -> bool:
        """Hand the connection of ``sock`` (its descriptor) over with ``replay``; True once on
        its way (this process may close its descriptor then), False if the owner cannot be
        reached or the socket is not TCP."""
        family = _FAMILIES.get(sock.family)
        if family is None:
            return False
        return self.send(sock.fileno(), _HEADER.pack(len(replay), family) + replay)

    def send(self, fd: int, frame: bytes) -> bool:
        """Send ``frame`` with the descriptor ``fd``; True once the frame is on its way (``fd``
        may be closed by the caller then), False if the owner cannot be reached."""
        if self.pending:  # frames keep their order: queue behind the others
            self.pending.append((memoryview(frame), os.dup(fd)))
            return True
        for attempt in (0, 1):
            sock = self.sock if self.sock is not None else self._connect()
            if sock is None:
                return False
            try:
                sent = sock.sendmsg([frame], _rights(fd), _NOSIGNAL)
            except (BlockingIOError, InterruptedError):
                self.pending.append((memoryview(frame), os.dup(fd)))
                self.loop.add_writer(sock.fileno(), self._flush)
                return True
            except OSError as exc:
                # EPIPE / ECONNRESET: the owner we were connected to has gone (restarted, maybe:
                # connect again once)
                logger.debug("hand-over link to %s broken: %s", self.path, exc)
                self.close()
                if attempt:
                    return False
                continue
            if sent < len(frame):  # the descriptor went with the first byte
                self.pending.append((memoryview(frame)[sent:], -1))
                self.loop.add_writer(sock.fileno(), self._flush)
            return True
        return False  # pragma: no cover

    def _flush(self) -> None:
        sock = self.sock
        pending = self.pending
        if sock is None:  # pragma: no cover
            return
        while pending:
            data, fd = pending[0]
            try:
                if fd >= 0:
                    sent = sock.sendmsg([data], _rights(fd), _NOSIGNAL)
                else:
                    sent = sock.send(data, _NOSIGNAL)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                logger.warning(
                    "hand-over link to %s broken, %d connection(s) lost: %s",
                    self.path,
                    sum(1 for _, fd in pending if fd >= 0),
                    exc,
                )
                self.close()
                return
            if fd >= 0:
                os.close(fd)
            if sent < len(data):
                pending[0] = (data[sent:], -1)
                return
            pending.popleft()
        self.loop.remove_writer(sock.fileno())

    def close(self) -> None:
        sock = self.sock
        self.sock = None
        if sock is not None:
            if self.pending:
                self.loop.remove_writer(sock.fileno())
            sock.close()
        while self.pending:
            _, fd = self.pending.popleft()
            if fd >= 0:
                os.close(fd)


class _Peer:
    """The owner's end of one giver's link: frames in, connections adopted."""

    __slots__ = ("buffer", "fds", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.fds: deque[int] = deque()

    def close(self) -> None:
        self.sock.close()
        while self.fds:
            os.close(self.fds.popleft())


class Handover:
    """One worker's side of the hand-over: listens for connections given to it, and gives the
    connections of requests for other workers' sessions to them.

    ``http`` is the worker's HttpServer (handed-over connections are adopted there; set its
    ``handover`` to this object so that new connections are checked), ``index`` this worker's
    index among ``count``, ``path_of(i)`` the Unix socket path of worker ``i``
    (``WorkerInfo.handover_path``), ``prefix`` the engine's path with a trailing slash,
    ``owner_of(sid)`` the index of the worker that made a sid (None: no worker's; it is given the
    first two characters of the sid at least), ``own_prefix`` the start of this worker's sids.
    ``sent`` / ``adopted`` count the connections given away and taken in; ``refused`` the
    requests that could not be handed over.
    """

    def __init__(
        self,
        http: Any,
        index: int,
        count: int,
        path_of: Callable[[int], str],
        prefix: str,
        owner_of: Callable[[str], int | None],
        own_prefix: str = "",
    ) -> None:
        self.http = http
        self.index = index
        self.count = count
        self.path_of = path_of
        self.owner_of = owner_of
        # the start of this worker's sids (ids.owner_prefix): a request on its owner is told
        # by comparing it, without owner_of
        self._own_prefix = own_prefix.encode("latin-1") if own_prefix else b"\x00"
        self._target = b" " + prefix.encode("latin-1")
        self.path = path_of(index)
        self.sent = 0
        self.adopted = 0
        self.refused = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: socket.socket | None = None
        self._inode: tuple[int, int] | None = None
        self._links: dict[int, _Link] = {}
        self._peers: dict[int, _Peer] = {}
        # what each read lands in (frames are copied out before the next read)
        self._view = memoryview(bytearray(_RECV_SIZE))

    # -- owner side ---------------------------------------------------------------------------

    def start(self) -> None:
        """Listen on this worker's path (a stale socket file of a previous worker is replaced).
        Call it in the event loop that runs the HttpServer."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        path = self.path
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(path)
            listener.listen(128)
            listener.setblocking(False)
            info = os.stat(path)
        except BaseException:
            listener.close()
            raise
        self._inode = (info.st_dev, info.st_ino)
        self._listener = listener
        loop.add_reader(listener.fileno(), self._accept)

    def _accept(self) -> None:
        listener = self._listener
        loop = self._loop
        if listener is None or loop is None:  # pragma: no cover
            return
        while True:
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # pragma: no cover - EMFILE and the like
                logger.warning("hand-over listener: %s", exc)
                return
            sock.setblocking(False)
            peer = _Peer(sock)
            fileno = sock.fileno()
            self._peers[fileno] = peer
            loop.add_reader(fileno, self._read, peer)

    def _read(self, peer: _Peer) -> None:
        view = self._view
        try:
            size, ancillary, flags, _ = peer.sock.recvmsg_into([view], _ANCILLARY, _CLOEXEC)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            logger.debug("hand-over peer: %s", exc)
            size, ancillary, flags = 0, [], 0
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
                peer.fds.extend(fds)
        if not size or flags & socket.MSG_CTRUNC:
            if size:
                logger.warning("hand-over: descriptors lost (MSG_CTRUNC); dropping the link")
            self._drop_peer(peer)
            return
        buffer = peer.buffer
        if buffer:
            buffer += view[:size]
            data = buffer
            size = len(buffer)
        else:
            data = view  # the usual case: whole frames, copied out of the shared buffer
        offset = 0
        header_size = _HEADER.size
        while size - offset >= header_size:
            length, family = _HEADER.unpack_from(data, offset)
            end = offset + header_size + length
            if end > size:
                break
            replay = bytes(data[offset + header_size : end])
            offset = end
            if not peer.fds:
                logger.warning("hand-over frame without a connection; dropping the link")
                self._drop_peer(peer)
                return
            self._adopt(peer.fds.popleft(), family, replay)
        if offset == size:
            if buffer:
                buffer.clear()
        else:
            peer.buffer = bytearray(data[offset:size])

    def _adopt(self, fd: int, family: int, replay: bytes) -> None:
        sock_family = _FAMILY_OF.get(family)
        if sock_family is None:
            os.close(fd)
            return
        sock = socket.socket(sock_family, socket.SOCK_STREAM, 0, fd)
        self.adopted += 1
        self.http.adopt(sock, replay)

    def _drop_peer(self, peer: _Peer) -> None:
        fileno = peer.sock.fileno()
        if self._peers.pop(fileno, None) is not None and self._loop is not None:
            self._loop.remove_reader(fileno)
        peer.close()

    # -- giver side ---------------------------------------------------------------------------

    def _link(self, owner: int) -> _Link | None:
        link = self._links.get(owner)
        if link is None:
            loop = self._loop
            if loop is None or owner == self.index or not 0 <= owner < self.count:
                return None
            link = self._links[owner] = _Link(loop, self.path_of(owner))
        return link

    def owner_of_head(self, data: bytes) -> int | None:
        """The worker owning the session named by the request line at the start of ``data``
        (``sid=`` in the query of a target below the engine's path), if it is another worker.
        None when the line is not complete in ``data``: the engine sees the request then."""
        at = data.find(b"sid=", 0, _LINE_LIMIT)
        if (
            at < 0  # the usual case without a sid (a handshake, a WebSocket-only client)
            or data[at - 1] not in _QUERY_SEPARATORS
            or data.find(b"\r\n", 0, at) >= 0  # not on the request line
            or data.find(b"\r\n", at) < 0  # the line is not complete
            or data.find(self._target, 0, at) < 0  # not below the engine's path
        ):
            return None
        at += 4
        if data.startswith(self._own_prefix, at):
            return None  # a request on its owner: one comparison
        owner = self.owner_of(data[at : at + 2].decode("latin-1"))
        return None if owner == self.index else owner

    def hand_over_connection(self, protocol: Any, data: bytes) -> bool:
        """A new connection's first bytes, ``data``: when they start a request for another
        worker's session, the connection goes to that worker with them (nothing parsed here;
        the owner reads the rest of the request from the socket). False: serve it here."""
        owner = self.owner_of_head(data)
        if owner is None:
            return False
        link = self._link(owner)
        sock = protocol.transport.get_extra_info("socket")
        if link is None or sock is None or not link.give(sock, data):
            return False  # the engine answers it ("Session ID unknown")
        protocol.detach()
        self.sent += 1
        return True

    def hand_over(self, request: Any, owner: int) -> bool:
        """Give ``request``'s connection to worker ``owner`` (a request that is not the first of
        its connection, or whose first bytes did not say); False when it stays here (the owner
        cannot be reached, or the connection cannot change hands): answer it then."""
        link = self._link(owner)
        if link is not None and request.hand_over(link.give):
            self.sent += 1
            return True
        self.refused += 1
        return False

    # -- both ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop listening (the socket file is removed, unless a newer worker has replaced it),
        drop the links to other workers (connections not handed over yet are lost)."""
        loop = self._loop
        listener = self._listener
        self._listener = None
        if listener is not None:
            if loop is not None:
                loop.remove_reader(listener.fileno())
            listener.close()
            try:
                info = os.stat(self.path)
                if (info.st_dev, info.st_ino) == self._inode:
                    os.unlink(self.path)
            except OSError:
                pass
        for peer in list(self._peers.values()):
            self._drop_peer(peer)
        for link in self._links.values():
            link.close()
        self._links.clear()
