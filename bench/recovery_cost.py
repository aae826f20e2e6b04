"""What connection state recovery's log costs (issue 11), per broadcast and per socket.

    python bench/recovery_cost.py [--broadcasts 200000]

- One process (``SessionAwareAdapter``): CPU of ``broadcast`` to no socket with recovery off
  (``InMemoryAdapter``) and on (the offset appended and the packet logged), so the difference is
  the log's part; the memory one logged packet holds (tracemalloc, a 2-argument event) and one
  saved session.
- ``--workers`` (``RecoverableBusAdapter`` and the parent): the worker's part of a logged
  broadcast (pickled to the parent, then its frame back unpickled with the offset), and the
  parent's (unpickled, logged, the frame for every worker built), each per broadcast.

A broadcast is encoded once either way: the offset is appended to the event before the one
encode (checked below by counting the calls of ``server.encode_packet`` for a broadcast that
reaches three sockets).
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import fastsio
from fastsio import _impl
from fastsio.adapter import BroadcastOptions, InMemoryAdapter
from fastsio.recovery import PacketLog, SessionAwareAdapter
from fastsio.workers import _LOG, _LOGGED, BusAdapterFactory, Supervisor

EVENT = _impl.socketio.EVENT
Packet = _impl.socketio.Packet
OPTS = BroadcastOptions(rooms=frozenset(("room",)))


def cpu_per_call(fn, count: int) -> float:
    started = time.process_time()
    for i in range(count):
        fn(i)
    return (time.process_time() - started) / count * 1e6


def one_process(count: int) -> None:
    plain = fastsio.Server().main_namespace.adapter
    logged = fastsio.Server(connection_state_recovery=True).main_namespace.adapter
    assert type(plain) is InMemoryAdapter and isinstance(logged, SessionAwareAdapter)
    off = cpu_per_call(lambda i: plain.broadcast(Packet(EVENT, "/", ["tick", i, "x"]), OPTS), count)
    on = cpu_per_call(lambda i: logged.broadcast(Packet(EVENT, "/", ["tick", i, "x"]), OPTS), count)
    print(f"one process: broadcast {off:.2f} us off, {on:.2f} us on: +{on - off:.2f} us/broadcast")

    log = PacketLog(120, 1_000_000)
    tracemalloc.start()
    first = tracemalloc.get_traced_memory()[0]
    for i in range(10_000):
        log.append(OPTS, ["tick", i, "x" * 40])
    per_packet = (tracemalloc.get_traced_memory()[0] - first) / 10_000
    first = tracemalloc.get_traced_memory()[0]
    for i in range(10_000):
        log.persist(
            {"sid": f"{i:020d}", "pid": f"p{i:019d}", "rooms": [f"{i:020d}", "room"], "data": {}}
        )
    per_session = (tracemalloc.get_traced_memory()[0] - first) / 10_000
    tracemalloc.stop()
    print(
        f"memory: {per_packet:.0f} B per logged packet (a 3-argument event with a 40-char string), "
        f"{per_session:.0f} B per saved session (2 rooms, empty data)"
    )


def workers(count: int) -> None:
    factory = BusAdapterFactory(
        "/nonexistent", {"max_disconnection_duration": 120, "max_packets": 100_000}
    )
    sent: list = []
    factory.send = lambda payload: sent.append(payload) or True  # type: ignore[method-assign]
    sio = fastsio.Server(connection_state_recovery=True)
    adapter = factory(sio.main_namespace)
    factory.adapters["/"] = adapter
    worker_out = cpu_per_call(
        lambda i: adapter.broadcast(Packet(EVENT, "/", ["tick", i, "x"]), OPTS), count
    )

    parent = Supervisor(sio, "127.0.0.1", 0, 2)
    connection = object()
    frames: list = []
    outgoing = {connection: frames, object(): []}
    bodies = [payload[1:] for payload in sent]
    parent_cpu = cpu_per_call(
        lambda i: parent._recovery_frame(connection, _LOG, bodies[i], outgoing), count
    )
    back = [bytearray(f[4:]) for f in frames]
    assert back[0][:1] == _LOGGED
    worker_in = cpu_per_call(lambda i: factory.on_frame(back[i]), count)
    print(
        f"--workers: worker {worker_out:.2f} us out + {worker_in:.2f} us back per broadcast "
        f"(InMemoryAdapter.broadcast to no socket included), parent {parent_cpu:.2f} us"
    )


def encode_once() -> None:
    sio = fastsio.Server(connection_state_recovery=True)
    adapter = sio.main_namespace.adapter
    calls = []
    encode = sio.encode_packet

    def counting(*args):
        calls.append(args)
        return encode(*args)

    sio.encode_packet = counting
    adapter.select = lambda opts: [_Target() for _ in range(3)]
    adapter.broadcast(Packet(EVENT, "/", ["tick", 1]), OPTS)
    print(f"encode calls for one broadcast to 3 sockets with recovery on: {len(calls)}")


class _Target:
    class client:
        class session:
            @staticmethod
            def send_prepared(packet, frame):
                pass

            writable = True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--broadcasts", type=int, default=200_000)
    count = parser.parse_args().broadcasts
    print(f"speedups: {fastsio.SPEEDUPS}")
    one_process(count)
    workers(count)
    encode_once()


if __name__ == "__main__":
    main()
