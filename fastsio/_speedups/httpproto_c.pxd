# Augmenting declarations: fastsio/http/protocol.py compiled as fastsio._speedups.httpproto_c (the
# source is the symlink src/httpproto_c.py). Only C types are added here; the code is the pure
# module's. What this buys, per request: the httptools callbacks (on_url, on_header,
# on_headers_complete, ...), data_received, the dispatch loop and send_response run as C on typed
# attributes, without a Python frame each.
#
# Visible from Python (the pure class's interface: the server's sweep, the access log, the
# handover, the tests): every attribute (public), every def in the source. WorkerHttpProtocol and
# AdoptedHttpProtocol stay Python classes (subclasses of this one). The cdef methods are internal.
import cython

cdef Py_ssize_t _JOIN_LIMIT
cdef dict _HEADER_NAMES, _HEADER_VALUES
cdef frozenset SHARED_VALUE_HEADERS

# Request.query's parser (called through _impl.http_protocol)
@cython.locals(query=dict)
cpdef dict parse_query(query_string)


cdef class HttpProtocol:
    cdef public object server, loop, transport, parser, client, idle_since, receiving_since
    cdef public bint secure
    cdef public bytes _url
    cdef public dict _headers
    cdef public list _body
    cdef public Py_ssize_t _body_size, _header_size, _head_received
    # the request being received, the one being answered, the one whose body is streamed
    cdef public object _request, _current, _body_stream
    cdef public object _queue, _upgrade_tail, _head_start
    cdef public bint _in_head, _dispatching, _reading_paused, _closing, _parser_done
    cdef public int _error_status

    @cython.locals(start=Py_ssize_t)
    cdef str _http_version(self, bytes method, bytes url)
    # httptools passes bytes
    @cython.locals(headers=dict)
    cpdef on_header(self, bytes name, bytes value)
    cdef _check_websocket(self, request)
    cdef _stop_parsing(self)
    cdef _fail(self, int status)
    cpdef _dispatch(self)
    cdef _response_done(self, request, bint keep_alive)
    cdef _abandon(self)
