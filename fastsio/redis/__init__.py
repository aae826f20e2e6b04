"""Scaling out over Redis, wire-compatible with Node's ``@socket.io/redis-adapter``,
``@socket.io/redis-streams-adapter`` and ``@socket.io/redis-emitter`` (``pip install 'fastsio[redis]'``)::

    from fastsio.redis import create_adapter
    sio = fastsio.Server(adapter=create_adapter("redis://127.0.0.1:6379/0"))
"""

from __future__ import annotations

from .adapter import RedisAdapter, RedisAdapterFactory, RequestType, create_adapter
from .emitter import AsyncEmitter, Emitter
from .sharded import ShardedRedisAdapter, ShardedRedisAdapterFactory, create_sharded_adapter
from .streams import RedisStreamsAdapter, RedisStreamsAdapterFactory, create_streams_adapter

__all__ = [
    "AsyncEmitter",
    "Emitter",
    "RedisAdapter",
    "RedisAdapterFactory",
    "RedisStreamsAdapter",
    "RedisStreamsAdapterFactory",
    "RequestType",
    "ShardedRedisAdapter",
    "ShardedRedisAdapterFactory",
    "create_adapter",
    "create_sharded_adapter",
    "create_streams_adapter",
]
