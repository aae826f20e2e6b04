"""A RESP2 reader for a subscribed Redis connection: hiredis's replies, minus the messages that
the channel's handler would drop unread, which are skipped before any object is made for them.

The subscribed connection of a cluster node receives every message published on its key's
channels, most of them (with the classic adapter) for rooms the node does not hold. hiredis
builds a list and four bytes objects for each (about 0.5 us); this reader parses the three
message pushes itself::

    *3 $7 message $<channel> $<payload>
    *4 $8 pmessage $<pattern> $<channel> $<payload>
    *3 $8 smessage $<channel> $<payload>

and, when a filter is registered for the pattern (``pattern_filters``), the channel
(``channel_filters``) or the shard channel (``shard_filters``), asks it about the channel and
payload as they lie in the read buffer (:class:`BroadcastFilter`); an unwanted message costs a
header scan and a dict lookup. Everything else (subscribe confirmations, errors, pongs, any reply
of another shape) is cut out of the stream by a strict scanner and handed, exactly those bytes,
to a hiredis reader: the reply is hiredis's own. Anything the scanner does not recognise as
strictly well-formed RESP2 (a RESP3 type byte, a length with a sign or a leading zero, a line
with a lone CR, nesting deeper than :data:`_MAX_DEPTH` ...) makes the reader hand hiredis the rest
of the stream, for good: from there on it *is* hiredis, errors included. So, on any input, the
replies (and a ProtocolError) are hiredis's, minus the filtered messages; tests/redis compare
the three (this module, its compiled twin, hiredis) at every split of random and broken streams.

This file is also compiled (``fastsio._speedups.respreader_c``, with ``respreader_c.pxd``): the
byte loops below are written for that (pointer indexing in C). fastsio.redis uses the compiled
reader only; without it (``FASTSIO_NO_EXTENSIONS``, not built) the subscribed link parses with
hiredis alone and the handlers do the filtering, which is faster in Python than these loops.
"""

from __future__ import annotations

import hiredis

__all__ = ["BroadcastFilter", "SubscribeReader"]

# bytes of the protocol
_STAR = 42  # *
_DOLLAR = 36  # $
_PLUS = 43  # +
_MINUS = 45  # -
_COLON = 58  # :
_CR = 13
_LF = 10
_ZERO = 48
_ONE = 49
_NINE = 57

#: the longest length the scanner reads (a longer one: hiredis decides)
_MAX_DIGITS = 9
#: the longest integer reply the scanner reads (fits a C long long)
_MAX_INTEGER_DIGITS = 18
#: arrays nested deeper than this are left to hiredis (a subscribed connection sees depth 1)
_MAX_DEPTH = 4
#: a simple string, error or integer line longer than this is left to hiredis
_MAX_LINE = 65536

_MESSAGE = b"message"
_PMESSAGE = b"pmessage"
_SMESSAGE = b"smessage"
_NO_NAME = b""

# what _message found
_KIND_MESSAGE = 1
_KIND_PMESSAGE = 2
_KIND_SMESSAGE = 3

# the scanners' answers, besides an index: the reply is not complete yet / not strict RESP2
_INCOMPLETE = -1
_DECLINED = -2


def _same(p, start, length, known):
    """``p[start:start + length] == known``, without making an object."""
    if len(known) != length:
        return False
    q = known
    for k in range(length):
        if p[start + k] != q[k]:
            return False
    return True


class BroadcastFilter:
    """What the classic adapter's broadcast handler (``RedisAdapter._on_broadcast``) drops
    unread, for the messages of its pattern ``{key}#{nsp}#*``: a room channel
    (``{key}#{nsp}#{room}#``, i.e. longer than ``prefix_length + 1``) whose room no local socket
    is in (``rooms``: the adapter's own dict, read at each message), or whose room is not UTF-8;
    and the server's own broadcasts coming back (the MessagePack body starts with
    ``own_prefix``, the array header and the server's uid). ``wants`` is True for everything
    else, and never raises.

    The last room's name is kept (its bytes and its str, whose hash Python caches): a stream of
    messages for one room decodes and hashes its name once; the answer itself is not kept, as
    ``rooms`` changes."""

    def __init__(self, prefix_length: int, rooms: dict, own_prefix: bytes) -> None:
        self.prefix_length = prefix_length
        self.rooms = rooms
        self.own_prefix = own_prefix
        self._room_name = _NO_NAME
        self._room = ""

    def wants(self, buf, channel_start, channel_end, payload_start, payload_end):
        start = channel_start + self.prefix_length
        length = channel_end - 1 - start
        if length > 0:
            if _same(buf, start, length, self._room_name):
                room = self._room
            else:
                try:
                    room = buf[start : channel_end - 1].decode("utf-8")
                except UnicodeDecodeError:
                    return False
                self._room_name = buf[start : channel_end - 1]
                self._room = room
            rooms = self.rooms
            try:
                if room not in rooms:
                    # a room given as an int (``join(5)``) arrives as "5"
                    first = buf[start]
                    if first < _ZERO or first > _NINE:
                        return False
                    if not (room.isascii() and room.isdigit() and int(room) in rooms):
                        return False
            except Exception:  # noqa: BLE001 - a room with an odd __eq__: let the handler decide
                return True
        own = self.own_prefix
        length = len(own)
        # the server's own broadcast, back from Redis
        return not (
            payload_end - payload_start >= length and _same(buf, payload_start, length, own)
        )


class SubscribeReader:
    """``feed(data)`` / ``gets()`` as ``hiredis.Reader`` (default options), skipping the messages
    whose filter does not want them (see the module's doc). The three filter dicts map a
    pattern / channel / shard channel (bytes) to a :class:`BroadcastFilter`; the caller owns them
    and may change them at any time. ``dropped`` counts the skipped messages."""

    def __init__(
        self,
        pattern_filters: dict | None = None,
        channel_filters: dict | None = None,
        shard_filters: dict | None = None,
    ) -> None:
        self._hiredis = hiredis.Reader()
        self._buf = _NO_NAME
        self._pos = 0
        # data fed while the reply at _pos needs more than there is (joined once it is there)
        self._chunks = []
        self._chunks_len = 0
        self._need = 0
        self._passthrough = False
        self.pattern_filters = {} if pattern_filters is None else pattern_filters
        self.channel_filters = {} if channel_filters is None else channel_filters
        self.shard_filters = {} if shard_filters is None else shard_filters
        self.dropped = 0
        self._last_pattern = _NO_NAME
        self._last_channel = _NO_NAME
        # what the scanners found
        self._value = 0
        self._start = 0
        self._want = 0
        self._kind = 0
        self._name_start = 0
        self._name_len = 0
        self._channel_start = 0
        self._channel_len = 0
        self._payload_start = 0
        self._payload_len = 0

    def feed(self, data) -> None:
        if type(data) is not bytes:
            # what hiredis takes: a buffer, or a str (as UTF-8)
            data = data.encode() if isinstance(data, str) else bytes(memoryview(data))
        if self._passthrough:
            self._hiredis.feed(data)
            return
        if not data:
            return
        if self._pos == len(self._buf):
            self._buf = data
            self._pos = 0
        else:
            self._chunks.append(data)
            self._chunks_len += len(data)

    def gets(self):
        if self._passthrough:
            return self._hiredis.gets()
        if self._chunks:
            pending = len(self._buf) - self._pos
            if pending + self._chunks_len < self._need:
                return False
            self._chunks.insert(0, self._buf[self._pos :])
            self._buf = _NO_NAME.join(self._chunks)
            self._pos = 0
            self._chunks = []
            self._chunks_len = 0
        buf = self._buf
        p = buf
        end = len(buf)
        pos = self._pos
        while pos < end:
            stop = self._message(p, pos, end)
            if stop >= 0:
                kind = self._kind
                channel_start = self._channel_start
                channel_end = channel_start + self._channel_len
                payload_start = self._payload_start
                payload_end = payload_start + self._payload_len
                if kind == _KIND_PMESSAGE:
                    pattern = self._last_pattern
                    if not _same(p, self._name_start, self._name_len, pattern):
                        pattern = p[self._name_start : self._name_start + self._name_len]
                        self._last_pattern = pattern
                    wanted = self.pattern_filters.get(pattern)
                    if wanted is not None and not wanted.wants(
                        p, channel_start, channel_end, payload_start, payload_end
                    ):
                        self.dropped += 1
                        pos = stop
                        continue
                    self._pos = stop
                    return [
                        _PMESSAGE,
                        pattern,
                        p[channel_start:channel_end],
                        p[payload_start:payload_end],
                    ]
                channel = self._last_channel
                if not _same(p, channel_start, channel_end - channel_start, channel):
                    channel = p[channel_start:channel_end]
                    self._last_channel = channel
                if kind == _KIND_MESSAGE:
                    wanted = self.channel_filters.get(channel)
                else:
                    wanted = self.shard_filters.get(channel)
                if wanted is not None and not wanted.wants(
                    p, channel_start, channel_end, payload_start, payload_end
                ):
                    self.dropped += 1
                    pos = stop
                    continue
                self._pos = stop
                return [
                    _MESSAGE if kind == _KIND_MESSAGE else _SMESSAGE,
                    channel,
                    p[payload_start:payload_end],
                ]
            if stop == _DECLINED:
                stop = self._skip(p, pos, end, 0)
            if stop == _INCOMPLETE:
                self._pos = pos
                self._need = self._want - pos
                return False
            if stop == _DECLINED:
                self._pos = pos
                self._give_up()
                return self._hiredis.gets()
            # another reply: hiredis builds it from exactly its bytes
            self._pos = stop
            reader = self._hiredis
            try:
                reader.feed(buf, pos, stop - pos)
                reply = reader.gets()
            except BaseException:
                self._give_up()
                raise
            if reply is False:  # cannot happen: the scanner is stricter than hiredis
                self._give_up()
                return reader.gets()
            return reply
        self._pos = pos
        return False

    def _give_up(self) -> None:
        """Hand hiredis everything not yet parsed, and every later read."""
        self._passthrough = True
        reader = self._hiredis
        if self._pos < len(self._buf):
            reader.feed(self._buf, self._pos)
        for chunk in self._chunks:
            reader.feed(chunk)
        self._buf = _NO_NAME
        self._pos = 0
        self._chunks = []
        self._chunks_len = 0

    # -- the scanners: each returns the index after what it read, _INCOMPLETE (and the index
    # -- it needs data up to in _want) or _DECLINED ------------------------------------------

    def _number(self, p, i, end):
        """A length after its type byte: digits (no sign, no leading zero, at most _MAX_DIGITS)
        then CRLF; the value goes to _value."""
        value = 0
        digits = 0
        while i < end:
            c = p[i]
            if c == _CR:
                if digits == 0:
                    return _DECLINED
                if i + 1 >= end:
                    self._want = i + 2
                    return _INCOMPLETE
                if p[i + 1] != _LF:
                    return _DECLINED
                self._value = value
                return i + 2
            if c < _ZERO or c > _NINE or digits == _MAX_DIGITS or (digits == 1 and value == 0):
                return _DECLINED
            value = value * 10 + (c - _ZERO)
            digits += 1
            i += 1
        self._want = end + 1
        return _INCOMPLETE

    def _nil(self, p, i, end):
        """``-1`` CRLF after a ``$`` or ``*``."""
        if i + 4 > end:
            self._want = end + 1
            # a prefix of it may still become one
            k = i
            if k < end and p[k] != _MINUS:
                return _DECLINED
            k += 1
            if k < end and p[k] != _ONE:
                return _DECLINED
            k += 1
            if k < end and p[k] != _CR:
                return _DECLINED
            return _INCOMPLETE
        if p[i] != _MINUS or p[i + 1] != _ONE or p[i + 2] != _CR or p[i + 3] != _LF:
            return _DECLINED
        return i + 4

    def _bulk(self, p, i, end):
        """A bulk string (not nil): its start goes to _start, its length to _value."""
        if i >= end:
            self._want = i + 1
            return _INCOMPLETE
        if p[i] != _DOLLAR:
            return _DECLINED
        i = self._number(p, i + 1, end)
        if i < 0:
            return i
        stop = i + self._value
        if stop + 2 > end:
            self._want = stop + 2
            return _INCOMPLETE
        if p[stop] != _CR or p[stop + 1] != _LF:
            return _DECLINED
        self._start = i
        return stop + 2

    def _line(self, p, i, end):
        """The rest of a simple string or error line, up to CRLF (no other CR or LF: hiredis
        refuses them, as soon as the line is complete, even inside an incomplete array)."""
        limit = min(i + _MAX_LINE, end)
        while i < limit:
            c = p[i]
            if c == _CR:
                if i + 1 >= end:
                    self._want = i + 2
                    return _INCOMPLETE
                if p[i + 1] != _LF:
                    return _DECLINED
                return i + 2
            if c == _LF:
                return _DECLINED
            i += 1
        if limit < end:
            return _DECLINED
        self._want = end + 1
        return _INCOMPLETE

    def _integer(self, p, i, end):
        """The rest of an integer line: an optional minus, then digits (no leading zero, at
        most _MAX_INTEGER_DIGITS), then CRLF."""
        if i < end and p[i] == _MINUS:
            i += 1
        start = i
        while i < end:
            c = p[i]
            if c == _CR:
                if i == start:
                    return _DECLINED
                if i + 1 >= end:
                    self._want = i + 2
                    return _INCOMPLETE
                if p[i + 1] != _LF:
                    return _DECLINED
                return i + 2
            if (
                c < _ZERO
                or c > _NINE
                or i - start == _MAX_INTEGER_DIGITS
                or (i - start == 1 and p[start] == _ZERO)
            ):
                return _DECLINED
            i += 1
        self._want = end + 1
        return _INCOMPLETE

    def _message(self, p, pos, end):
        """A message push of bulk strings at pos: its kind and parts go to _kind, _name_*,
        _channel_* and _payload_*. _DECLINED for any other reply."""
        if p[pos] != _STAR:
            return _DECLINED
        i = self._number(p, pos + 1, end)
        if i < 0:
            return i
        count = self._value
        if count != 3 and count != 4:
            return _DECLINED
        i = self._bulk(p, i, end)
        if i < 0:
            return i
        length = self._value
        start = self._start
        if count == 4:
            if length != 8 or not _same(p, start, 8, _PMESSAGE):
                return _DECLINED
            kind = _KIND_PMESSAGE
            i = self._bulk(p, i, end)
            if i < 0:
                return i
            self._name_start = self._start
            self._name_len = self._value
        elif length == 7 and _same(p, start, 7, _MESSAGE):
            kind = _KIND_MESSAGE
        elif length == 8 and _same(p, start, 8, _SMESSAGE):
            kind = _KIND_SMESSAGE
        else:
            return _DECLINED
        i = self._bulk(p, i, end)
        if i < 0:
            return i
        self._channel_start = self._start
        self._channel_len = self._value
        i = self._bulk(p, i, end)
        if i < 0:
            return i
        self._payload_start = self._start
        self._payload_len = self._value
        self._kind = kind
        return i

    def _skip(self, p, i, end, depth):
        """Any strict RESP2 reply at i, of at most _MAX_DEPTH nested arrays."""
        if i >= end:
            self._want = i + 1
            return _INCOMPLETE
        c = p[i]
        if c == _PLUS or c == _MINUS:
            return self._line(p, i + 1, end)
        if c == _COLON:
            return self._integer(p, i + 1, end)
        if c == _DOLLAR:
            if i + 1 < end and p[i + 1] == _MINUS:
                return self._nil(p, i + 1, end)
            return self._bulk(p, i, end)
        if c != _STAR or depth == _MAX_DEPTH:
            return _DECLINED
        if i + 1 < end and p[i + 1] == _MINUS:
            return self._nil(p, i + 1, end)
        i = self._number(p, i + 1, end)
        if i < 0:
            return i
        count = self._value
        while count > 0:
            i = self._skip(p, i, end, depth + 1)
            if i < 0:
                return i
            count -= 1
        return i
