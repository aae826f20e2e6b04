# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Fast paths in front of orjson for the packets most Socket.IO traffic is made of: a flat array of
short strings, integers, booleans and nulls (``["chat", "alice", "hello there"]``).

Why: for such a packet orjson's own work is small and its fixed costs dominate (a call, a
document allocation, and on the encode side a ``bytes`` object that the codec then decodes to
``str`` and prefixes with the packet type: two more allocations and copies). Here the text is
scanned once and the result built directly.

Both functions give exactly what the orjson path gives, or decline:

- ``loads(text)`` / ``loads_at(text, start)`` return the decoded list for an ASCII flat array
  they can read whole, and otherwise call ``orjson.loads(text)`` / ``orjson.loads(text[start:])``
  (so anything unusual -- non-ASCII text, nesting, floats, escapes, bad JSON -- is orjson's to
  accept or refuse, with its own exception);
- ``dumps_prefixed(prefix, data)`` returns ``prefix + orjson.dumps(data).decode()`` for an exact
  ``list`` of ASCII strings that need no escaping, 64-bit ints, bools and None, short enough for
  its buffer, and None for anything else (the caller then takes the orjson path).

Used only by the compiled Socket.IO codec, through a ``FastJson`` (``fastsio._impl`` installs one
into ``fastsio._speedups.socketio_c``, which cimports the class: json_c.pxd) so that a packet's JSON
is a C call; the pure-Python codec always uses orjson. The codec's decode calls
``FastJson.flat_array_at``, ``loads_at`` without the fallback (None instead of orjson's result):
its own call to orjson is then the only one in a ``try``. The module-level functions are the same
code, for the tests, which compare them with orjson on random and edge-case input
(tests/test_speedups.py).
"""

cimport cython
from cpython.list cimport PyList_GET_ITEM, PyList_New, PyList_SET_ITEM
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF, Py_XDECREF
from cpython.unicode cimport PyUnicode_New
from libc.string cimport memcmp, memcpy

import orjson

cdef object _orjson_loads = orjson.loads
cdef type NoneType = type(None)

cdef enum:
    # Longest encoded packet built here; longer ones go to orjson, whose fixed costs then matter
    # less.
    OUT_MAX = 1024
    # Integers of up to 18 digits fit a signed 64-bit value whatever the digits.
    MAX_INT_DIGITS = 18


cdef extern from "Python.h":
    void* PyUnicode_DATA(object)
    bint PyUnicode_IS_ASCII(object)
    # ASCII, its characters right after its header: what _tail needs (every str made by the
    # interpreter since 3.3, but for the deprecated legacy API's)
    bint PyUnicode_IS_COMPACT_ASCII(object)
    Py_ssize_t PyUnicode_GET_LENGTH(object)


cdef inline bint _is_ws(unsigned char c) noexcept nogil:
    return c == c' ' or c == c'\n' or c == c'\r' or c == c'\t'


# Strings are checked 8 bytes at a time (the payload of an event is mostly string characters):
# _special_mask flags the bytes of a 64-bit word that end or spoil a plain JSON string -- a
# control character, '"' or '\\' -- exactly up to the first one. Exact for ASCII bytes (all under
# 0x80, which both callers have checked): a byte under 0x20 wraps below zero when 0x20 is taken
# from it (its high bit then set), a '"' or '\\' becomes zero when XORed with itself and wraps when
# 1 is taken; other bytes stay under 0x80, and a borrow into the next byte only follows a byte that
# wrapped. So a word has flags exactly when it holds such a byte, and on a little-endian machine
# (where borrows run towards later bytes) the first flagged byte is the first such byte.
cdef enum:
    WORD = 8


cdef extern from *:
    """
    #if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    #define FASTSIO_LITTLE_ENDIAN 1
    #define fastsio_ctz64(x) __builtin_ctzll(x)
    #else
    #define FASTSIO_LITTLE_ENDIAN 0
    #define fastsio_ctz64(x) 0
    #endif
    """
    # little-endian with a count-trailing-zeros: a word's first byte is its lowest
    bint LITTLE_ENDIAN "FASTSIO_LITTLE_ENDIAN"
    int ctz64 "fastsio_ctz64"(unsigned long long) nogil


cdef inline unsigned long long _special_mask(unsigned long long w) noexcept nogil:
    return (((w - 0x2020202020202020ULL)                     # a byte under 0x20
             | ((w ^ 0x2222222222222222ULL) - 0x0101010101010101ULL)   # '"'
             | ((w ^ 0x5C5C5C5C5C5C5C5CULL) - 0x0101010101010101ULL))  # '\\'
            & 0x8080808080808080ULL)


cdef inline unsigned long long _load(const unsigned char* at) noexcept nogil:
    cdef unsigned long long w
    memcpy(&w, at, WORD)
    return w


cdef inline void _store(unsigned char* at, unsigned long long w) noexcept nogil:
    memcpy(at, &w, WORD)


cdef inline unsigned long long _tail(const unsigned char* at, Py_ssize_t k, Py_ssize_t n) noexcept nogil:
    """The 1 to 7 bytes at[k:n] as a word padded with 'A's (not special): a string's last bytes are
    checked in one word too, without reading past at[n - 1]. ``at`` is a str's characters: they
    follow its header (at least 40 bytes), so the word that ends at at[n - 1] can be read even
    when n < 8."""
    cdef unsigned long long w = 0x4141414141414141ULL
    cdef Py_ssize_t r = n - k, j
    if LITTLE_ENDIAN:
        # that word, its bytes before at[k] (its lowest) shifted out, 'A's shifted in above
        return (_load(at + n - WORD) >> (8 * (WORD - r))) | (w << (8 * r))
    for j in range(r):
        (<unsigned char*>&w)[j] = at[k + j]
    return w


cdef inline void _copy(unsigned char* to, const unsigned char* at, Py_ssize_t n) noexcept nogil:
    """memcpy for the short strings of a packet, inline: a word at a time, the last word
    overlapping the one before (n >= 8), or byte by byte."""
    cdef Py_ssize_t k = 0
    if n >= WORD:
        while k + WORD < n:
            _store(to + k, _load(at + k))
            k += WORD
        _store(to + n - WORD, _load(at + n - WORD))
        return
    while k < n:
        to[k] = at[k]
        k += 1


cdef inline Py_ssize_t _first_special(const unsigned char* at, unsigned long long mask) noexcept nogil:
    """Where the first special byte of the word at ``at`` is (``mask``, its flags, not 0)."""
    cdef Py_ssize_t k = 0
    if LITTLE_ENDIAN:  # the lowest flagged byte is the first special one
        return ctz64(mask) >> 3
    while not (at[k] == c'"' or at[k] == c'\\' or at[k] < 0x20):
        k += 1
    return k


cdef inline Py_ssize_t _special_at(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """The index of the first control character, '"' or '\\' in p[i:n]; n if there is none."""
    cdef unsigned long long mask
    while i + WORD <= n:
        mask = _special_mask(_load(p + i))
        if mask:
            return i + _first_special(p + i, mask)
        i += WORD
    if i < n:
        mask = _special_mask(_tail(p, i, n))
        if mask:
            return i + _first_special(p + i, mask)
    return n


# -- decoding ----------------------------------------------------------------------------------

cdef enum:
    # what a token of a flat array is
    TOKEN_STR, TOKEN_INT, TOKEN_TRUE, TOKEN_FALSE, TOKEN_NULL
    # most elements read here; a longer array goes to orjson
    MAX_TOKENS = 32


cdef struct Token:
    int kind
    Py_ssize_t start   # TOKEN_STR: the characters between the quotes
    Py_ssize_t end
    long long value    # TOKEN_INT


cdef class FastJson:
    """The compiled codec's JSON: these functions as C calls (the codec holds one, typed)."""

    cpdef object flat_array_at(self, object text, Py_ssize_t start):
        """``orjson.loads(text[start:])`` for a flat array read here, else None (orjson's)."""
        if type(text) is str and start >= 0:
            return _flat_array(<str>text, start)
        return None

    cpdef object dumps_prefixed(self, str prefix, object data):
        return _dumps_prefixed(prefix, data)


@cython.freelist(64)
cdef class PacketFields:
    """The fields of the compiled codec's ``Packet`` (socketio_c.pxd makes it this class's
    subclass), here for the free list: Cython drops a ``@cython.freelist`` written in an augmenting
    .pxd (the class's directives are the .py's), so a decoded packet was a fresh GC allocation.
    The subclass adds no fields, so it passes this class's size check and its objects are reused
    (2,508 -> 2,445 instructions per decode of a 2-argument event)."""


def loads(text):
    """``orjson.loads(text)``, faster for a flat array of plain values."""
    return _loads_at(text, 0)


def loads_at(text, Py_ssize_t start):
    """``orjson.loads(text[start:])``, without the slice when the fast path reads it."""
    return _loads_at(text, start)


def dumps_prefixed(str prefix, data):
    """``prefix + orjson.dumps(data).decode()`` for a short flat list of plain values, else None."""
    return _dumps_prefixed(prefix, data)


cdef inline object _loads_at(object text, Py_ssize_t start):
    cdef object result
    if type(text) is str and start >= 0:
        result = _flat_array(<str>text, start)
        if result is not None:
            return result
    return _orjson_loads(text[start:] if start else text)


cdef object _flat_array(str text, Py_ssize_t i):
    """The list a flat JSON array decodes to, or None when this reader does not handle it. The
    array is read whole before any object is made: declining costs no allocation. ASCII text only
    (read as bytes: a Python str that is ASCII stores one byte per character); anything else is
    orjson's."""
    cdef Token tokens[MAX_TOKENS]
    cdef Py_ssize_t count = 0
    cdef Py_ssize_t n = len(text)
    cdef Py_ssize_t start, digits, k
    cdef const unsigned char* p
    cdef unsigned char c
    cdef long long value
    cdef bint negative
    cdef list out
    cdef object item
    cdef Token* token
    if not PyUnicode_IS_COMPACT_ASCII(text):
        return None
    p = <const unsigned char*>PyUnicode_DATA(text)
    while i < n and _is_ws(p[i]):
        i += 1
    if i >= n or p[i] != c'[':
        return None
    i += 1
    while i < n and _is_ws(p[i]):
        i += 1
    if i < n and p[i] == c']':
        i += 1
    else:
        while True:
            if count == MAX_TOKENS:
                return None
            token = &tokens[count]
            count += 1
            while i < n and _is_ws(p[i]):
                i += 1
            if i >= n:
                return None
            c = p[i]
            if c == c'"':
                start = i + 1
                i = _special_at(p, start, n)  # the closing quote, unless escapes or the like
                if i >= n or p[i] != c'"':
                    return None  # unterminated; escapes and control characters: orjson's to judge
                token.kind = TOKEN_STR
                token.start = start
                token.end = i
                i += 1
            elif c == c'-' or (c'0' <= c <= c'9'):
                negative = c == c'-'
                if negative:
                    i += 1
                start = i
                value = 0
                while i < n:
                    c = p[i]
                    if c < c'0' or c > c'9':
                        break
                    value = value * 10 + (c - 48)
                    i += 1
                digits = i - start
                if digits == 0 or digits > MAX_INT_DIGITS:
                    return None
                if digits > 1 and p[start] == c'0':
                    return None  # a leading zero: not JSON
                if i < n:
                    c = p[i]
                    if c == c'.' or c == c'e' or c == c'E':
                        return None  # a float: orjson's
                token.kind = TOKEN_INT
                token.value = -value if negative else value
            elif c == c't' and i + 4 <= n and memcmp(p + i, b"true", 4) == 0:
                token.kind = TOKEN_TRUE
                i += 4
            elif c == c'f' and i + 5 <= n and memcmp(p + i, b"false", 5) == 0:
                token.kind = TOKEN_FALSE
                i += 5
            elif c == c'n' and i + 4 <= n and memcmp(p + i, b"null", 4) == 0:
                token.kind = TOKEN_NULL
                i += 4
            else:
                return None  # nested, or not JSON
            while i < n and _is_ws(p[i]):
                i += 1
            if i >= n:
                return None
            c = p[i]
            i += 1
            if c == c']':
                break
            if c != c',':
                return None
    while i < n and _is_ws(p[i]):
        i += 1
    if i != n:
        return None
    # filled in place (PyList_SET_ITEM steals a reference: each item gets one more) rather than
    # [None] * count and item assignment
    out = PyList_New(count)
    for k in range(count):
        token = &tokens[k]
        if token.kind == TOKEN_STR:
            if k == 0:  # an event's name
                item = _name(p + token.start, token.end - token.start)
            else:
                item = _ascii_str(p + token.start, token.end - token.start)
        elif token.kind == TOKEN_INT:
            item = token.value
        elif token.kind == TOKEN_TRUE:
            item = True
        elif token.kind == TOKEN_FALSE:
            item = False
        else:
            item = None
        Py_INCREF(item)
        PyList_SET_ITEM(out, k, item)
    return out


# Event names repeat: the first string of an array is taken from a small cache of the names seen
# last when it is one of them, instead of a new str each time (a str is immutable, so sharing it
# is invisible but for its identity). The handler look-up that follows then finds the name's hash
# already computed. Direct-mapped by length and first and last characters; a slot holds one
# reference to an ASCII str made by _ascii_str.
cdef enum:
    NAME_SLOTS = 64
    NAME_MAX = 32   # longer names are made each time

cdef PyObject* _names[NAME_SLOTS]


cdef inline object _name(const unsigned char* chars, Py_ssize_t n):
    cdef Py_ssize_t slot
    cdef PyObject* cached
    cdef const unsigned char* data
    cdef object result
    if n == 0 or n > NAME_MAX:
        return _ascii_str(chars, n)
    slot = (n * 7 + chars[0] * 3 + chars[n - 1]) & (NAME_SLOTS - 1)
    cached = _names[slot]
    if cached is not NULL and PyUnicode_GET_LENGTH(<object>cached) == n:
        data = <const unsigned char*>PyUnicode_DATA(<object>cached)
        # most names are shorter than a word: compared as one (both are str characters: _tail
        # applies; it takes 1 to 7 bytes)
        if n < WORD:
            if _tail(data, 0, n) == _tail(chars, 0, n):
                return <object>cached
        elif memcmp(data, chars, n) == 0:
            return <object>cached
    result = _ascii_str(chars, n)
    Py_INCREF(result)
    _names[slot] = <PyObject*>result
    Py_XDECREF(cached)
    return result


cdef inline object _ascii_str(const unsigned char* chars, Py_ssize_t n):
    """A str of ``n`` ASCII characters: what ``text[start:end]`` gives, without the scan for the
    widest character that slicing does (the text is known to be ASCII)."""
    cdef object result = PyUnicode_New(n, 127)
    _copy(<unsigned char*>PyUnicode_DATA(result), chars, n)
    return result


# -- encoding ----------------------------------------------------------------------------------


cdef inline object _dumps_prefixed(str prefix, object data):
    # WORD bytes of slack: _put_str writes whole words, up to 7 bytes past what it keeps
    cdef unsigned char buf[OUT_MAX + WORD]
    cdef Py_ssize_t pos
    cdef Py_ssize_t count, k
    # borrowed (the list cannot change meanwhile: no Python code runs), and types as pointers:
    # no reference counting in these loops
    cdef PyObject* item
    cdef PyObject* t
    cdef object result
    if type(data) is not list or not PyUnicode_IS_ASCII(prefix):
        return None
    count = len(<list>data)
    for k in range(count):  # the types first: a list with an object declines before any writing
        t = <PyObject*>PyList_GET_ITEM(data, k).ob_type
        if (t is not <PyObject*>str and t is not <PyObject*>int and t is not <PyObject*>NoneType
                and t is not <PyObject*>bool):
            return None
    pos = len(prefix)
    if pos > 16:
        return None
    _copy(buf, <const unsigned char*>PyUnicode_DATA(prefix), pos)
    buf[pos] = b'['
    pos += 1
    for k in range(count):
        if k:
            buf[pos] = b','
            pos += 1
        item = PyList_GET_ITEM(data, k)
        t = <PyObject*>item.ob_type
        if t is <PyObject*>str:
            pos = _put_str(buf, pos, <str>item)
        elif t is <PyObject*>int:
            pos = _put_int(buf, pos, <object>item)
        elif <object>item is None:
            pos = _put_raw(buf, pos, b"null", 4)
        elif <object>item is True:
            pos = _put_raw(buf, pos, b"true", 4)
        elif <object>item is False:
            pos = _put_raw(buf, pos, b"false", 5)
        else:
            return None
        if pos < 0:
            return None
    if pos >= OUT_MAX:
        return None
    buf[pos] = b']'
    pos += 1
    result = PyUnicode_New(pos, 127)
    _copy(<unsigned char*>PyUnicode_DATA(result), buf, pos)
    return result


cdef inline Py_ssize_t _put_raw(unsigned char* buf, Py_ssize_t pos, const char* raw,
                                 Py_ssize_t n) noexcept:
    if pos < 0 or pos + n > OUT_MAX - 1:
        return -1
    memcpy(buf + pos, raw, n)
    return pos + n


cdef inline Py_ssize_t _put_str(unsigned char* buf, Py_ssize_t pos, str text) noexcept:
    """A JSON string for an ASCII str that needs no escaping; -1 otherwise (or out of room). The
    characters are checked and copied in the same words (buf has a word of slack past OUT_MAX)."""
    cdef Py_ssize_t n, k
    cdef const unsigned char* data
    cdef unsigned long long w
    if pos < 0 or not PyUnicode_IS_COMPACT_ASCII(text):
        return -1
    n = len(text)
    if pos + n + 2 > OUT_MAX - 1:
        return -1
    data = <const unsigned char*>PyUnicode_DATA(text)
    buf[pos] = b'"'
    pos += 1
    k = 0
    while k + WORD <= n:  # control characters, '"' and '\\' are escaped: orjson's
        w = _load(data + k)
        if _special_mask(w):
            return -1
        _store(buf + pos + k, w)
        k += WORD
    if k < n:
        w = _tail(data, k, n)
        if _special_mask(w):
            return -1
        _store(buf + pos + k, w)  # its padding is overwritten next, or not kept
    pos += n
    buf[pos] = b'"'
    return pos + 1


cdef Py_ssize_t _put_int(unsigned char* buf, Py_ssize_t pos, object number):
    """Decimal digits of an int in the signed 64-bit range; -1 otherwise (orjson's to judge)."""
    cdef long long value
    cdef unsigned long long magnitude
    cdef char digits[24]
    cdef Py_ssize_t n = 0, k
    if pos < 0:
        return -1
    try:
        value = number
    except OverflowError:
        return -1
    if value < 0:
        magnitude = <unsigned long long>(-(value + 1)) + 1  # no overflow at the minimum
    else:
        magnitude = <unsigned long long>value
    while True:
        digits[n] = <char>(48 + magnitude % 10)
        n += 1
        magnitude //= 10
        if magnitude == 0:
            break
    if value < 0:
        digits[n] = b'-'
        n += 1
    if pos + n > OUT_MAX - 1:
        return -1
    for k in range(n):
        buf[pos + k] = digits[n - 1 - k]
    return pos + n
