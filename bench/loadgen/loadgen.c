/*
 * loadgen: the load generator of fastsio's end-to-end benchmark (bench/), and a raw C server that
 * measures the load generator's own ceiling.
 *
 * One thread, one epoll loop, non-blocking sockets, no dependencies. It speaks just enough of
 * RFC 6455 (client side: masked frames), Engine.IO v4 and Socket.IO v5 to drive a real server:
 * the HTTP upgrade, the open packet "0{...}", namespace connect "40" -> "40{"sid":..}", ping "2" ->
 * pong "3" (server pings are always answered), events "42[...]". Long-polling is plain HTTP/1.1
 * keep-alive with two connections per client, as a browser does.
 *
 * Modes (each prints JSON lines on stdout: {"event":"measure_start"} / {"event":"connected"} while
 * running, and one result object last; exit status 0 on success, 2 on a failed run):
 *   echo       --conns N --inflight K --size B --warmup S --duration S
 *              N WebSocket clients keep K `42["echo","<B chars>"]` in flight each; latency per message
 *              (replies come back in order per connection, so a FIFO of send times matches them).
 *              A reply counts only if it is byte for byte the message sent.
 *   broadcast  --conns N --window W --size B --warmup S --duration S [--port2 P --conns2 M] [--room]
 *              N clients (the last one, connected last, is the trigger) count `tick` events while the
 *              trigger asks for broadcasts (`42["broadcast","<seq>|<data>"]`, answered by the server
 *              with `42["tick","<seq>|<data>"]` to every client); at most W (<= 64) broadcasts are
 *              incomplete (not yet received by all N) at any time. Reports deliveries/s and the
 *              delivery latency. Every delivery is checked: the whole packet, a sequence number
 *              that was sent, and each client gets each broadcast exactly once.
 *              --port2 P --conns2 M: a cluster of two servers; the first M clients connect to port
 *              P (node B), the others and the trigger to --port (node A). Before the warm-up the
 *              trigger sends probe broadcasts ("P<7 digits>" in place of the sequence number) every
 *              50 ms until one reaches every client on both nodes (both nodes are subscribed).
 *              Deliveries on node B are also reported on their own (count_2, p50_us_2, p99_us_2).
 *              --room: the trigger sends `42["join"]` (answer `42["joined"]`: it is in the room)
 *              and asks for `42["broadcast_room",..]`: ticks to that room only, so the trigger is
 *              the one receiver and any tick on another client is an error.
 *              --words: the broadcast data is chat-like words from a small vocabulary (a fixed
 *              pseudo-random order) instead of the letter cycle, which compresses ~100x.
 *              --deflate: every client offers permessage-deflate as browsers do
 *              (`permessage-deflate; client_max_window_bits`) and inflates the compressed
 *              messages (RSV1) it gets (zlib), keeping each connection's inflate stream across
 *              messages unless the server answered server_no_context_takeover. The result adds "rx_bytes"
 *              (bytes read from the server in the window) and "inflated" (messages inflated).
 *              On a server_no_context_takeover connection a compressed message that is byte for
 *              byte one of the last ones inflated is taken from a cache (the same input gives the
 *              same output): the load generator's own cost must not cap the server's figure.
 *   idle       --conns N [--hold S]
 *              opens N clients, prints {"event":"connected"} when all are connected, then holds them
 *              (answering pings) until stdin closes or S seconds pass.
 *   connect    --concurrency C --warmup S --duration S
 *              full handshakes (TCP, upgrade, open packet, namespace connect) as fast as possible, C
 *              at a time; each is closed once connected.
 *   poll       --conns N --inflight K --size B --warmup S --duration S
 *              echo over HTTP long-polling (one GET + one POST keep-alive connection per client).
 *   server     --port P [--flush-each]
 *              the raw server: WebSocket echo/broadcast and long-polling echo with the bare minimum of
 *              Engine.IO/Socket.IO framing, so the modes above exercise exactly the same client code
 *              against a server that costs next to nothing. Runs until killed. By default it writes
 *              what one read produced with one send(); --flush-each sends every message on its own
 *              (one TCP segment per message: the costliest pattern for the load generator).
 * Common: --host 127.0.0.1 --port 3000 --path /socket.io/ --timeout 30 (connect phase limit).
 *
 * What is counted is checked: replies and deliveries must be exactly the expected packets. The
 * result object reports "mismatches" (a reply or delivery with the wrong event or payload, or a
 * delivery to a client that should get none), "protocol_errors" (packets that break the protocol
 * or the bookkeeping: a reply with no request outstanding, a duplicate delivery, an unknown
 * sequence number, a binary or unknown packet, a bad handshake packet, an HTTP error), "lost"
 * (broadcasts that never reached every client), "failed" (clients that failed to connect or were
 * disconnected) and "errors", the sum of all of them: a run with errors > 0 is a failed run. The
 * first few offending packets are printed on stderr.
 *
 * Build: cc -O2 -o loadgen loadgen.c -lz   (the driver, bench/__main__.py, does this itself;
 * zlib is the one library, for --deflate)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

/* ------------------------------------------------------------------------------------------------ */
/* configuration */

static struct {
    const char *mode;
    const char *host;
    int port;
    const char *path;
    int conns;
    int inflight;
    int size;
    double warmup;
    double duration;
    int window;
    int concurrency;
    double hold;
    double timeout;
    int port2;   /* broadcast: a second server (a cluster node); 0 = none */
    int conns2;  /* broadcast: how many of the --conns clients connect to --port2 */
    int room;    /* broadcast: the trigger joins the room and asks for broadcasts to it */
    int deflate; /* offer permessage-deflate and inflate what comes compressed */
    int words;   /* broadcast data: chat-like words */
} cfg = {
    .mode = NULL,
    .host = "127.0.0.1",
    .port = 3000,
    .path = "/socket.io/",
    .conns = 100,
    .inflight = 10,
    .size = 100,
    .warmup = 1.0,
    .duration = 5.0,
    .window = 32,
    .concurrency = 50,
    .hold = 0.0,
    .timeout = 30.0,
    .port2 = 0,
    .conns2 = 0,
    .room = 0,
    .deflate = 0,
    .words = 0,
};

enum { M_ECHO, M_BROADCAST, M_IDLE, M_CONNECT, M_POLL, M_SERVER };
static int mode;

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    printf("{\"error\":\"");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\"}\n");
    fflush(stdout);
    exit(2);
}

static inline uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static inline uint32_t rng32(void) {
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return (uint32_t)(x >> 16);
}

/* ------------------------------------------------------------------------------------------------ */
/* latency histogram: 1 us buckets up to 100 ms, then 1 ms buckets up to 100 s */

#define H_FINE 100000
#define H_COARSE 100000
typedef struct {
    uint32_t fine[H_FINE];
    uint32_t coarse[H_COARSE];
    uint64_t count;
    uint64_t max_us;
    double sum_us;
} hist_t;

static hist_t *hist_new(void) {
    hist_t *h = calloc(1, sizeof(hist_t));
    if (!h) die("out of memory");
    return h;
}

static inline void hist_add(hist_t *h, uint64_t ns) {
    uint64_t us = ns / 1000;
    if (us < H_FINE)
        h->fine[us]++;
    else {
        uint64_t ms = us / 1000;
        h->coarse[ms < H_COARSE ? ms : H_COARSE - 1]++;
    }
    h->count++;
    h->sum_us += (double)us;
    if (us > h->max_us) h->max_us = us;
}

static double hist_pct(const hist_t *h, double p) {
    if (!h->count) return -1;
    uint64_t want = (uint64_t)(p * (double)h->count);
    if (want >= h->count) want = h->count - 1;
    uint64_t seen = 0;
    for (int i = 0; i < H_FINE; i++) {
        seen += h->fine[i];
        if (seen > want) return i + 0.5;
    }
    for (int i = 0; i < H_COARSE; i++) {
        seen += h->coarse[i];
        if (seen > want) return i * 1000.0 + 500;
    }
    return (double)h->max_us;
}

static void hist_clear(hist_t *h) { memset(h, 0, sizeof(*h)); }

/* ------------------------------------------------------------------------------------------------ */
/* growable byte buffers */

typedef struct {
    char *p;
    size_t len;  /* bytes held */
    size_t off;  /* bytes already consumed / written from the front */
    size_t cap;
} buf_t;

static void buf_reserve(buf_t *b, size_t extra) {
    if (b->len + extra <= b->cap) return;
    if (b->off) { /* compact first */
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->len + extra <= b->cap) return;
    }
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + extra) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) die("out of memory");
    b->p = p;
    b->cap = cap;
}

static inline void buf_append(buf_t *b, const void *d, size_t n) {
    buf_reserve(b, n);
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void buf_free(buf_t *b) {
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* drop the consumed front; cheap when everything was consumed */
static inline void buf_settle(buf_t *b) {
    if (b->off == b->len) {
        b->off = b->len = 0;
    } else if (b->off > b->cap / 2) {
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* connections: a table of slots; epoll data is slot | generation<<32 so stale events are ignored */

enum {
    /* client WebSocket states */
    C_FREE = 0,
    C_CONNECTING,
    C_UPGRADING,
    C_WAIT_OPEN,
    C_WAIT_CONNECT,
    C_READY,
    /* client HTTP (polling) */
    C_HTTP,
    /* server */
    S_HTTP,
    S_WS,
};

typedef struct conn {
    int fd;
    int state;
    uint32_t gen;
    int dirty;
    int want_out;
    int dead;
    buf_t in, out;
    /* WebSocket message reassembly */
    buf_t frag;
    int frag_op;
    int frag_rsv1;         /* the message being reassembled is compressed */
    int deflate;           /* permessage-deflate agreed (client side, --deflate) */
    int no_takeover;       /* ... with server_no_context_takeover */
    z_stream *zs;          /* its inflate stream, made on the first compressed message */
    /* per-client bookkeeping */
    uint64_t t_start;      /* connect mode: when the handshake began */
    uint64_t *ts;          /* echo: FIFO of send times */
    int ts_head, ts_count, ts_cap;
    int role;              /* poll: 0 = GET connection, 1 = POST connection */
    int client;            /* poll: index of the polling client */
    int sid;               /* server: polling session id, -1 if none */
    int parked;            /* server: a GET waiting for data */
    int in_room;           /* server: joined the room ("join") */
    int node2;             /* broadcast: connected to --port2 */
    uint64_t bc_next;      /* broadcast: lowest sequence number not yet received */
    uint64_t bc_bits;      /* broadcast: received ones from bc_next on (bit i: bc_next + i) */
} conn_t;

static conn_t *conns;
static int nslots;
static int epfd;
static int *dirty_list;
static int ndirty;

static int ready_count;     /* WebSocket clients connected to the namespace */
static int failed_count;    /* clients closed by error */
static int open_count;      /* live client sockets */

static uint64_t ev_data(int slot) { return (uint64_t)slot | ((uint64_t)conns[slot].gen << 32); }

static void ep_set(int slot, int out) {
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.u64 = ev_data(slot)};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, conns[slot].fd, &ev) < 0) die("epoll_ctl mod: %s", strerror(errno));
}

static int flush_each; /* server --flush-each: one send() per message, no coalescing */
static int conn_flush(int slot);

static void mark_dirty(int slot) {
    if (flush_each) {
        conn_flush(slot);
        return;
    }
    if (!conns[slot].dirty) {
        conns[slot].dirty = 1;
        dirty_list[ndirty++] = slot;
    }
}

static void set_sock_opts(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void conn_reset(conn_t *c) {
    if (c->zs) {
        inflateEnd(c->zs);
        free(c->zs);
    }
    buf_free(&c->in);
    buf_free(&c->out);
    buf_free(&c->frag);
    free(c->ts);
    uint32_t gen = c->gen + 1;
    int dirty = c->dirty; /* may still be in the dirty list; flush skips free slots */
    memset(c, 0, sizeof(*c));
    c->gen = gen;
    c->dirty = dirty;
    c->fd = -1;
    c->sid = -1;
}

static void on_client_closed(int slot, int error);
static void server_on_closed(int slot);

static void conn_close(int slot, int error) {
    conn_t *c = &conns[slot];
    if (c->state == C_FREE || c->fd < 0) return;
    close(c->fd);  /* also removes it from epoll */
    if (mode == M_SERVER)
        server_on_closed(slot);
    else
        on_client_closed(slot, error);
    conn_reset(c);
}

/* write what is queued; returns -1 if the connection was closed */
static int conn_flush(int slot) {
    conn_t *c = &conns[slot];
    while (c->out.off < c->out.len) {
        ssize_t n = send(c->fd, c->out.p + c->out.off, c->out.len - c->out.off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out.off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->want_out) {
                c->want_out = 1;
                ep_set(slot, 1);
            }
            return 0;
        }
        conn_close(slot, 1);
        return -1;
    }
    c->out.off = c->out.len = 0;
    if (c->want_out && c->state != C_CONNECTING) {
        c->want_out = 0;
        ep_set(slot, 0);
    }
    return 0;
}

static void flush_dirty(void) {
    for (int i = 0; i < ndirty; i++) {
        int slot = dirty_list[i];
        conns[slot].dirty = 0;
        if (conns[slot].state != C_FREE && conns[slot].state != C_CONNECTING) conn_flush(slot);
    }
    ndirty = 0;
}

static void alloc_slots(int n) {
    nslots = n;
    conns = calloc((size_t)n, sizeof(conn_t));
    dirty_list = calloc((size_t)n, sizeof(int));
    if (!conns || !dirty_list) die("out of memory");
    for (int i = 0; i < n; i++) {
        conns[i].fd = -1;
        conns[i].sid = -1;
    }
}

static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* WebSocket framing */

static inline void mask_copy(uint8_t *dst, const uint8_t *src, size_t n, uint32_t mask) {
    uint64_t m8 = (uint64_t)mask | ((uint64_t)mask << 32);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, src + i, 8);
        v ^= m8;
        memcpy(dst + i, &v, 8);
    }
    const uint8_t *mb = (const uint8_t *)&mask;
    for (; i < n; i++) dst[i] = src[i] ^ mb[i & 3];
}

/* append one frame; masked (client) or not (server) */
static void ws_frame(int slot, int opcode, const void *data, size_t n, int masked) {
    conn_t *c = &conns[slot];
    buf_reserve(&c->out, n + 14);
    uint8_t *h = (uint8_t *)c->out.p + c->out.len;
    size_t hl;
    h[0] = (uint8_t)(0x80 | opcode);
    uint8_t mbit = masked ? 0x80 : 0;
    if (n < 126) {
        h[1] = (uint8_t)(mbit | n);
        hl = 2;
    } else if (n < 65536) {
        h[1] = mbit | 126;
        h[2] = (uint8_t)(n >> 8);
        h[3] = (uint8_t)n;
        hl = 4;
    } else {
        h[1] = mbit | 127;
        for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
        hl = 10;
    }
    if (masked) {
        uint32_t mask = rng32();
        memcpy(h + hl, &mask, 4);
        hl += 4;
        mask_copy(h + hl, (const uint8_t *)data, n, mask);
    } else {
        memcpy(h + hl, data, n);
    }
    c->out.len += hl + n;
    mark_dirty(slot);
}

static inline void ws_text(int slot, const char *s, size_t n) { ws_frame(slot, 1, s, n, mode != M_SERVER); }

/* parse one frame at p[0..len); unmasks in place. Returns bytes used, 0 if incomplete, -1 if bad. */
static ssize_t ws_parse(uint8_t *p, size_t len, int *fin, int *op, int *rsv1, uint8_t **payload, size_t *plen) {
    if (len < 2) return 0;
    *fin = p[0] >> 7;
    *rsv1 = (p[0] >> 6) & 1;
    *op = p[0] & 0x0f;
    int masked = p[1] >> 7;
    uint64_t n = p[1] & 0x7f;
    size_t hl = 2;
    if (n == 126) {
        if (len < 4) return 0;
        n = ((uint64_t)p[2] << 8) | p[3];
        hl = 4;
    } else if (n == 127) {
        if (len < 10) return 0;
        n = 0;
        for (int i = 0; i < 8; i++) n = (n << 8) | p[2 + i];
        hl = 10;
    }
    if (n > (1u << 30)) return -1;
    if (masked) hl += 4;
    if (len < hl + n) return 0;
    *payload = p + hl;
    *plen = (size_t)n;
    if (masked) {
        uint32_t mask;
        memcpy(&mask, p + hl - 4, 4);
        mask_copy(p + hl, p + hl, (size_t)n, mask);
    }
    return (ssize_t)(hl + n);
}

/* feed the input buffer through the frame parser; calls on_msg(slot, op, data, n) per message */
typedef void (*msg_fn)(int slot, int op, char *data, size_t n);

/* --deflate: inflate one compressed message (RFC 7692: payload + 00 00 ff ff). Returns the
   inflated bytes or NULL on bad data. On a server_no_context_takeover connection a message does
   not depend on what came before, so the result is kept in a small cache keyed by the compressed
   bytes (compared whole): the same broadcast reaching many clients is inflated once, as a
   thousand separate clients would each do it on their own cores. */
static buf_t zout;
static uint64_t inflated_count;
static const uint8_t deflate_trailer[4] = {0x00, 0x00, 0xff, 0xff};
#define ZCACHE 4096 /* far more than the broadcasts in flight: few collisions */
static struct { buf_t in, out; int valid; } zcache[ZCACHE];

static unsigned zcache_slot(const uint8_t *d, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n, w;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, d + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 29;
    }
    for (; i < n; i++) h = (h ^ d[i]) * 1099511628211ull;
    return (unsigned)(h % ZCACHE);
}

static char *ws_inflate(conn_t *c, const uint8_t *data, size_t n, size_t *out_len) {
    unsigned slot = 0;
    if (c->no_takeover) {
        slot = zcache_slot(data, n);
        if (zcache[slot].valid && zcache[slot].in.len == n && memcmp(zcache[slot].in.p, data, n) == 0) {
            *out_len = zcache[slot].out.len;
            return zcache[slot].out.p;
        }
    }
    if (!c->zs) {
        c->zs = calloc(1, sizeof(z_stream));
        if (!c->zs || inflateInit2(c->zs, -15) != Z_OK) die("inflateInit2 failed");
    }
    zout.len = 0;
    int ended = 0;
    for (int part = 0; part < 2 && !ended; part++) {
        c->zs->next_in = (Bytef *)(part ? deflate_trailer : data);
        c->zs->avail_in = (uInt)(part ? 4 : n);
        for (;;) {
            buf_reserve(&zout, 65536);
            c->zs->next_out = (Bytef *)zout.p + zout.len;
            c->zs->avail_out = (uInt)(zout.cap - zout.len);
            int rc = inflate(c->zs, Z_SYNC_FLUSH);
            zout.len = zout.cap - c->zs->avail_out;
            if (rc == Z_STREAM_END) { /* a final block: the next message starts a new stream */
                inflateReset(c->zs);
                ended = 1;
                break;
            }
            if (rc != Z_OK && rc != Z_BUF_ERROR) return NULL;
            if (rc == Z_BUF_ERROR || (c->zs->avail_in == 0 && c->zs->avail_out > 0)) break;
        }
    }
    inflated_count++;
    *out_len = zout.len;
    if (!c->no_takeover) return zout.p;
    if (!ended) inflateReset(c->zs);
    zcache[slot].in.len = zcache[slot].out.len = 0;
    buf_append(&zcache[slot].in, data, n);
    buf_append(&zcache[slot].out, zout.p, zout.len);
    zcache[slot].valid = 1;
    return zcache[slot].out.p;
}

static void ws_read_frames(int slot, msg_fn on_msg) {
    conn_t *c = &conns[slot];
    uint32_t gen = c->gen;
    while (c->in.off < c->in.len) {
        int fin, op, rsv1;
        uint8_t *payload;
        size_t plen;
        ssize_t used = ws_parse((uint8_t *)c->in.p + c->in.off, c->in.len - c->in.off, &fin, &op, &rsv1, &payload, &plen);
        if (used == 0) break;
        if (used < 0) {
            conn_close(slot, 1);
            return;
        }
        c->in.off += (size_t)used;
        if (op >= 8) { /* control frame */
            if (op == 9) ws_frame(slot, 10, payload, plen, mode != M_SERVER);
            else if (op == 8) {
                if (mode == M_SERVER) ws_frame(slot, 8, payload, plen < 2 ? plen : 2, 0), conn_flush(slot);
                conn_close(slot, mode != M_SERVER);
                return;
            }
            continue;
        }
        if (op == 0 || !fin) { /* fragmented message */
            if (op != 0) c->frag_op = op, c->frag_rsv1 = rsv1;
            buf_append(&c->frag, payload, plen);
            if (!fin) continue;
            if (c->frag_rsv1 && c->deflate) {
                size_t n;
                char *m = ws_inflate(c, (const uint8_t *)c->frag.p, c->frag.len, &n);
                if (!m) {
                    conn_close(slot, 1);
                    return;
                }
                on_msg(slot, c->frag_op, m, n);
            } else {
                on_msg(slot, c->frag_op, c->frag.p, c->frag.len);
            }
            if (conns[slot].gen != gen) return;
            c->frag.len = 0;
            continue;
        }
        if (rsv1 && c->deflate) {
            size_t n;
            char *m = ws_inflate(c, payload, plen, &n);
            if (!m) {
                conn_close(slot, 1);
                return;
            }
            on_msg(slot, op, m, n);
        } else {
            on_msg(slot, op, (char *)payload, plen);
        }
        if (conns[slot].gen != gen) return; /* closed inside the handler */
    }
    buf_settle(&c->in);
}

/* ------------------------------------------------------------------------------------------------ */
/* the client side: shared state */

static struct sockaddr_in target, target2;   /* --port, --port2 */
static uint64_t t0;                     /* start of the run */
static uint64_t t_connected;            /* every client connected */
static uint64_t t_deadline;             /* connect phase deadline */
enum { P_CONNECTING, P_SYNC, P_JOIN, P_WARMUP, P_MEASURE, P_DRAIN, P_DONE };
static int phase = P_CONNECTING;
static uint64_t t_phase;                /* start of the current phase */
static uint64_t t_measure_start, t_measure_end;
static double cpu_measure_start, cpu_measure_end;
static hist_t *lat;
static hist_t *lat2;                    /* broadcast --port2: deliveries on node B's clients */
static uint64_t measured;               /* messages / deliveries / connections counted */
static uint64_t measured2;              /* broadcast --port2: of which on node B's clients */
static uint64_t errors;                 /* failed connections and other run errors */
static uint64_t mismatches;             /* replies / deliveries that were not the expected packet */
static uint64_t proto_errors;           /* packets that break the protocol or the bookkeeping */
static uint64_t lost;                   /* broadcasts that never reached every client */
static int started;                     /* clients started (handshake begun) */
static int pending_handshakes;          /* started and not yet ready */
static int handshake_limit = 256;       /* at most this many handshakes at once */

static int64_t outstanding;             /* echo, poll: requests sent and not answered yet */
static uint64_t rx_bytes;               /* bytes read from the server(s) in the measured window */
static uint64_t t_drained;              /* when nothing was outstanding any more (drain phase) */
#define GRACE_NS 100000000ull           /* then this long to catch replies / deliveries too many */
static char *echo_msg;                  /* 42["echo","xxx"] */
static size_t echo_len;

static char upgrade_req[512], upgrade_req2[512];
static size_t upgrade_len, upgrade_len2;

/* the first few offending packets go to stderr, printable ASCII only (the driver reads text) */
static void show_packet(const char *what, int slot, const char *m, size_t n) {
    char out[200];
    size_t k = 0;
    for (size_t i = 0; i < n && k < 160; i++) out[k++] = (m[i] >= 32 && m[i] < 127) ? m[i] : '.';
    out[k] = 0;
    fprintf(stderr, "loadgen: %s (connection %d, %zu bytes): %s%s\n", what, slot, n, out, n > k ? "..." : "");
}

static void mismatch(int slot, const char *why, const char *m, size_t n) {
    if (mismatches++ < 3) show_packet(why, slot, m, n);
}

static void proto_error(int slot, const char *why, const char *m, size_t n) {
    if (proto_errors++ < 3) show_packet(why, slot, m, n);
}

static void emit_event(const char *name) {
    printf("{\"event\":\"%s\",\"t\":%.6f}\n", name, (now_ns() - t0) / 1e9);
    fflush(stdout);
}

static void start_measure(void) {
    phase = P_MEASURE;
    t_phase = t_measure_start = now_ns();
    cpu_measure_start = cpu_seconds();
    measured = measured2 = 0;
    hist_clear(lat);
    hist_clear(lat2);
    emit_event("measure_start");
}

static void end_measure(void) {
    t_measure_end = now_ns();
    cpu_measure_end = cpu_seconds();
    emit_event("measure_end");
}

static int client_open(int slot, int state) {
    conn_t *c = &conns[slot];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket: %s (raise ulimit -n?)", strerror(errno));
    set_sock_opts(fd);
    c->fd = fd;
    c->state = C_CONNECTING;
    c->t_start = now_ns();
    c->want_out = 1;
    c->sid = state; /* remembered: the state to enter once TCP is up (C_UPGRADING or C_HTTP) */
    c->node2 = mode == M_BROADCAST && cfg.port2 && slot < cfg.conns2;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u64 = ev_data(slot)};
    struct sockaddr_in *to = c->node2 ? &target2 : &target;
    if (connect(fd, (struct sockaddr *)to, sizeof(*to)) < 0 && errno != EINPROGRESS) {
        close(fd);
        c->fd = -1;
        c->state = C_FREE;
        return -1;
    }
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl add: %s", strerror(errno));
    open_count++;
    return 0;
}

static void ts_push(conn_t *c, uint64_t t) {
    if (c->ts_count == c->ts_cap) {
        int cap = c->ts_cap ? c->ts_cap * 2 : 16;
        uint64_t *ts = malloc(sizeof(uint64_t) * (size_t)cap);
        if (!ts) die("out of memory");
        for (int i = 0; i < c->ts_count; i++) ts[i] = c->ts[(c->ts_head + i) % c->ts_cap];
        free(c->ts);
        c->ts = ts;
        c->ts_head = 0;
        c->ts_cap = cap;
    }
    c->ts[(c->ts_head + c->ts_count) % c->ts_cap] = t;
    c->ts_count++;
}

static int ts_pop(conn_t *c, uint64_t *t) {
    if (!c->ts_count) return 0;
    *t = c->ts[c->ts_head];
    c->ts_head = (c->ts_head + 1) % c->ts_cap;
    c->ts_count--;
    return 1;
}

/* ------------------------------------------------------------------------------------------------ */
/* WebSocket clients: echo, broadcast, idle, connect */

static int trigger_slot = -1;           /* broadcast: the client that asks for broadcasts */
static uint64_t *bc_sent_at;            /* broadcast: send time per sequence number */
static uint32_t *bc_recv;               /* broadcast: receipts per sequence number */
static uint64_t bc_cap, bc_sent, bc_completed, bc_first_measured, bc_measured_sent;
static uint64_t bc_low;                 /* broadcast: lowest sequence number not yet complete */
static uint32_t bc_receivers;           /* broadcast: clients that get each one (N, or 1 with --room) */
static uint64_t bc_last_delivery;
static char *bc_msg;                    /* 42["broadcast","<seq>|data"] (or "broadcast_room") */
static size_t bc_len, bc_seq_off;
static char *tick_msg;                  /* 42["tick","<seq>|data"]: every delivery, seq aside */
static size_t tick_len;
#define TICK_SEQ 11                     /* where the 8 characters of the sequence number start */
static int bc_paused;                   /* warm-up over: let the warm-up broadcasts complete */
/* --port2: probe broadcasts until one reaches every client of both nodes */
#define PROBE_EVERY_NS 50000000ull
static char *probe_msg;                 /* 42["broadcast","P<7 digits>|data"] */
static size_t probe_len;
static uint32_t *probe_recv;            /* receipts per probe */
static uint64_t *probe_seen;            /* per client: a bit per probe received */
static size_t probe_words;              /* 64-bit words per client in probe_seen */
static uint64_t probe_cap, probe_sent, probe_last_at;
static int probe_done;                  /* one probe reached every client */
static uint32_t probe_best;             /* the most clients any probe reached */
/* --room: the trigger's join */
static const char join_msg[] = "42[\"join\"]";
static const char joined_msg[] = "42[\"joined\"]";
static int joined;

static void echo_send(int slot) {
    ws_text(slot, echo_msg, echo_len);
    ts_push(&conns[slot], now_ns());
    outstanding++;
}

static void bc_send(void) {
    if (bc_sent == bc_cap) {
        bc_cap *= 2;
        bc_sent_at = realloc(bc_sent_at, sizeof(uint64_t) * bc_cap);
        bc_recv = realloc(bc_recv, sizeof(uint32_t) * bc_cap);
        if (!bc_sent_at || !bc_recv) die("out of memory");
    }
    /* 42["broadcast","00000042|xxxx"]: the sequence number leads the data */
    char seq[16];
    snprintf(seq, sizeof(seq), "%08llu", (unsigned long long)bc_sent);
    memcpy(bc_msg + bc_seq_off, seq, 8);
    bc_recv[bc_sent] = 0;
    bc_sent_at[bc_sent] = now_ns();
    bc_sent++;
    if (phase == P_MEASURE) bc_measured_sent++;
    ws_text(trigger_slot, bc_msg, bc_len);
}

static void bc_pump(void) {
    if (trigger_slot < 0 || conns[trigger_slot].state != C_READY) return;
    if (bc_paused) return;
    /* at most W outstanding from the lowest incomplete one: every client's receipts then fit in
       its 64-bit window (W <= 64), whatever order they come in */
    while (bc_sent - bc_low < (uint64_t)cfg.window && (phase == P_WARMUP || phase == P_MEASURE)) bc_send();
}

static void probe_send(void) {
    if (probe_sent == probe_cap) die("too many probes");
    char seq[16];
    snprintf(seq, sizeof(seq), "P%07llu", (unsigned long long)probe_sent);
    memcpy(probe_msg + 16, seq, 8);
    probe_recv[probe_sent++] = 0;
    probe_last_at = now_ns();
    ws_text(trigger_slot, probe_msg, probe_len);
}

static void start_client_ws(int slot) {
    if (client_open(slot, C_UPGRADING) < 0) {
        failed_count++;
        errors++;
        return;
    }
    started++;
    pending_handshakes++;
}

static void on_ready(int slot) {
    conn_t *c = &conns[slot];
    c->state = C_READY;
    ready_count++;
    pending_handshakes--;
    uint64_t now = now_ns();
    switch (mode) {
    case M_ECHO:
        if (phase == P_WARMUP || phase == P_MEASURE)
            for (int i = 0; i < cfg.inflight; i++) echo_send(slot);
        break;
    case M_CONNECT:
        if (phase == P_MEASURE) {
            measured++;
            hist_add(lat, now - c->t_start);
        }
        {
            uint8_t code[2] = {0x03, 0xe8}; /* 1000 */
            ws_frame(slot, 8, code, 2, 1);
            conn_flush(slot);
            if (conns[slot].state != C_FREE) conn_close(slot, 0);
        }
        break;
    default:
        break;
    }
}

/* echo: the reply must be byte for byte the message sent */
static void echo_reply(int slot, const char *m, size_t n) {
    conn_t *c = &conns[slot];
    uint64_t ts;
    uint64_t now = now_ns();
    if (!ts_pop(c, &ts)) {
        proto_error(slot, "an event with no request outstanding", m, n);
        return;
    }
    outstanding--;
    if (n != echo_len || memcmp(m, echo_msg, n) != 0) mismatch(slot, "a reply that is not the message sent", m, n);
    else if (phase == P_MEASURE) {
        measured++;
        hist_add(lat, now - ts);
    }
    if (phase == P_WARMUP || phase == P_MEASURE) echo_send(slot);
}

static void probe_delivery(int slot, const char *m, size_t n) {
    uint64_t p = 0;
    for (int i = TICK_SEQ + 1; i < TICK_SEQ + 8; i++) {
        unsigned d = (unsigned)(unsigned char)m[i] - '0';
        if (d > 9) {
            mismatch(slot, "a tick with a malformed probe number", m, n);
            return;
        }
        p = p * 10 + d;
    }
    if (p >= probe_sent) {
        proto_error(slot, "a probe that was never sent", m, n);
        return;
    }
    uint64_t *word = &probe_seen[(size_t)slot * probe_words + p / 64];
    if (*word >> (p % 64) & 1) {
        proto_error(slot, "a duplicate probe", m, n);
        return;
    }
    *word |= 1ull << (p % 64);
    if (++probe_recv[p] > probe_best) probe_best = probe_recv[p];
    if (probe_recv[p] == (uint32_t)cfg.conns) probe_done = 1;
}

/* broadcast: a delivery must be the tick of a broadcast that was asked for, once per client */
static void bc_delivery(int slot, const char *m, size_t n) {
    conn_t *c = &conns[slot];
    if (n == sizeof(joined_msg) - 1 && memcmp(m, joined_msg, n) == 0) {
        if (cfg.room && slot == trigger_slot && phase == P_JOIN && !joined) joined = 1;
        else mismatch(slot, "an unexpected \"joined\"", m, n);
        return;
    }
    if (n != tick_len || memcmp(m, tick_msg, TICK_SEQ) != 0 ||
        memcmp(m + TICK_SEQ + 8, tick_msg + TICK_SEQ + 8, tick_len - TICK_SEQ - 8) != 0) {
        mismatch(slot, "a delivery that is not the expected tick", m, n);
        return;
    }
    if (m[TICK_SEQ] == 'P') {
        probe_delivery(slot, m, n);
        return;
    }
    uint64_t seq = 0;
    for (int i = TICK_SEQ; i < TICK_SEQ + 8; i++) {
        unsigned d = (unsigned)(unsigned char)m[i] - '0';
        if (d > 9) {
            mismatch(slot, "a tick with a malformed sequence number", m, n);
            return;
        }
        seq = seq * 10 + d;
    }
    if (seq >= bc_sent) {
        proto_error(slot, "a tick of a broadcast that was never asked for", m, n);
        return;
    }
    if (cfg.room && slot != trigger_slot) {
        mismatch(slot, "a room broadcast delivered to a client outside the room", m, n);
        return;
    }
    uint64_t d = seq - c->bc_next;
    if (seq < c->bc_next || (d < 64 && (c->bc_bits >> d & 1))) {
        proto_error(slot, "a duplicate delivery", m, n);
        return;
    }
    if (d >= 64) { /* cannot happen with W <= 64 unless the client missed bc_next */
        proto_error(slot, "a delivery far out of order", m, n);
        return;
    }
    c->bc_bits |= 1ull << d;
    while (c->bc_bits & 1) {
        c->bc_bits >>= 1;
        c->bc_next++;
    }
    uint64_t now = now_ns();
    if (seq >= bc_first_measured && phase >= P_MEASURE) {
        measured++;
        hist_add(lat, now - bc_sent_at[seq]);
        if (c->node2) {
            measured2++;
            hist_add(lat2, now - bc_sent_at[seq]);
        }
        bc_last_delivery = now;
    }
    if (++bc_recv[seq] == bc_receivers) {
        bc_completed++;
        while (bc_low < bc_sent && bc_recv[bc_low] == bc_receivers) bc_low++;
        bc_pump();
    }
}

static void client_ws_message(int slot, int op, char *m, size_t n) {
    conn_t *c = &conns[slot];
    if (op != 1) {
        proto_error(slot, "a binary message", m, n);
        return;
    }
    if (n == 0) {
        proto_error(slot, "an empty message", m, n);
        return;
    }
    switch (m[0]) {
    case '0': /* Engine.IO open */
        if (c->state == C_WAIT_OPEN && n > 2 && m[1] == '{' && memmem(m, n, "\"sid\":\"", 7)) {
            c->state = C_WAIT_CONNECT;
            ws_text(slot, "40", 2);
        } else {
            proto_error(slot, "an unexpected open packet", m, n);
        }
        return;
    case '2': /* ping -> pong, always */
        if (n == 6 && memcmp(m, "2probe", 6) == 0) ws_text(slot, "3probe", 6);
        else if (n == 1) ws_text(slot, "3", 1);
        else proto_error(slot, "a malformed ping", m, n);
        return;
    case '1': /* Engine.IO close */
        if (phase != P_DONE && failed_count < 3) show_packet("closed by the server", slot, m, n);
        conn_close(slot, 1);
        return;
    case '6': /* noop */
        return;
    case '4':
        break;
    default:
        proto_error(slot, "an unexpected Engine.IO packet", m, n);
        return;
    }
    if (n < 2) {
        proto_error(slot, "an empty Engine.IO message", m, n);
        return;
    }
    switch (m[1]) {
    case '0': /* namespace connected: 40{"sid":"..."} */
        if (c->state == C_WAIT_CONNECT && n > 10 && memcmp(m + 2, "{\"sid\":\"", 8) == 0) on_ready(slot);
        else proto_error(slot, "an unexpected namespace connect packet", m, n);
        return;
    case '4': /* connect error */
    case '1': /* namespace disconnect */
        if (phase != P_DONE && failed_count < 3) show_packet("closed by the server", slot, m, n);
        conn_close(slot, 1);
        return;
    case '2':
        break;
    default:
        proto_error(slot, "an unexpected Socket.IO packet", m, n);
        return;
    }
    /* an event */
    if (c->state != C_READY) proto_error(slot, "an event before the namespace connect", m, n);
    else if (mode == M_ECHO) echo_reply(slot, m, n);
    else if (mode == M_BROADCAST) bc_delivery(slot, m, n);
    else mismatch(slot, "an event nobody asked for", m, n);
}

static void client_ws_readable(int slot) {
    conn_t *c = &conns[slot];
    if (c->state == C_UPGRADING) {
        char *end = memmem(c->in.p + c->in.off, c->in.len - c->in.off, "\r\n\r\n", 4);
        if (!end) {
            if (c->in.len > 16384) conn_close(slot, 1);
            return;
        }
        if (c->in.len - c->in.off < 12 || memcmp(c->in.p + c->in.off + 9, "101", 3) != 0) {
            if (errors < 5) fprintf(stderr, "loadgen: upgrade refused: %.*s\n", (int)(end - c->in.p - c->in.off), c->in.p + c->in.off);
            conn_close(slot, 1);
            return;
        }
        if (cfg.deflate) {
            size_t head_len = (size_t)(end - c->in.p - c->in.off);
            const char *head = c->in.p + c->in.off;
            c->deflate = memmem(head, head_len, "permessage-deflate", 18) != NULL;
            c->no_takeover = c->deflate && memmem(head, head_len, "server_no_context_takeover", 26) != NULL;
        }
        c->in.off = (size_t)(end + 4 - c->in.p);
        c->state = C_WAIT_OPEN;
    }
    ws_read_frames(slot, client_ws_message);
}

/* ------------------------------------------------------------------------------------------------ */
/* long-polling clients */

typedef struct {
    int get_slot, post_slot;
    char sid[64];
    int state;          /* 0 handshake, 1 waiting for connect, 2 ready, -1 dead, -2 closed */
    int counted_ready;
    int post_busy, get_busy;
    int pongs;          /* pongs owed */
    int to_send;        /* echo messages owed */
    uint64_t ts[64];
    int ts_head, ts_count;
} pclient_t;

static pclient_t *pclients;

static void http_request(int slot, const char *method, pclient_t *pc, const char *body, size_t blen) {
    char head[512];
    int n;
    if (pc->sid[0])
        n = snprintf(head, sizeof(head), "%s %s?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: %s:%d\r\n", method,
                     cfg.path, pc->sid, cfg.host, cfg.port);
    else
        n = snprintf(head, sizeof(head), "%s %s?EIO=4&transport=polling HTTP/1.1\r\nHost: %s:%d\r\n", method, cfg.path,
                     cfg.host, cfg.port);
    buf_append(&conns[slot].out, head, (size_t)n);
    if (body) {
        n = snprintf(head, sizeof(head), "Content-Type: text/plain;charset=UTF-8\r\nContent-Length: %zu\r\n\r\n", blen);
        buf_append(&conns[slot].out, head, (size_t)n);
        buf_append(&conns[slot].out, body, blen);
    } else {
        buf_append(&conns[slot].out, "\r\n", 2);
    }
    mark_dirty(slot);
}

static void poll_get(pclient_t *pc) {
    pc->get_busy = 1;
    http_request(pc->get_slot, "GET", pc, NULL, 0);
}

static void poll_post_pending(pclient_t *pc) {
    if (pc->post_busy || pc->state != 2) return;
    int echoing = phase == P_WARMUP || phase == P_MEASURE;
    if (!pc->pongs && !(pc->to_send && echoing)) return;
    static buf_t body; /* reused: one POST body at a time */
    body.len = body.off = 0;
    for (; pc->pongs > 0; pc->pongs--) buf_append(&body, body.len ? "\x1e" "3" : "3", body.len ? 2 : 1);
    uint64_t now = now_ns();
    for (; echoing && pc->to_send > 0 && pc->ts_count < 64; pc->to_send--) {
        if (body.len) buf_append(&body, "\x1e", 1);
        buf_append(&body, echo_msg, echo_len);
        pc->ts[(pc->ts_head + pc->ts_count++) % 64] = now;
        outstanding++;
    }
    pc->post_busy = 1;
    http_request(pc->post_slot, "POST", pc, body.p, body.len);
}

static void poll_packet(int slot, pclient_t *pc, char *m, size_t n) {
    if (n == 0) {
        proto_error(slot, "an empty packet in a polling payload", m, n);
        return;
    }
    switch (m[0]) {
    case '2':
        if (n == 1) pc->pongs++;
        else proto_error(slot, "a malformed ping", m, n);
        return;
    case '1':
        if (phase != P_DONE && failed_count < 3) show_packet("closed by the server", slot, m, n);
        pc->state = -1;
        return;
    case '6': /* noop */
        return;
    case '4':
        break;
    default:
        proto_error(slot, "an unexpected Engine.IO packet", m, n);
        return;
    }
    if (n < 2) {
        proto_error(slot, "an empty Engine.IO message", m, n);
        return;
    }
    if (m[1] == '0') { /* namespace connected: 40{"sid":"..."} */
        if (pc->state == 1 && n > 10 && memcmp(m + 2, "{\"sid\":\"", 8) == 0) {
            pc->state = 2;
            pc->counted_ready = 1;
            ready_count++;
            pending_handshakes--;
            pc->to_send = cfg.inflight;
        } else {
            proto_error(slot, "an unexpected namespace connect packet", m, n);
        }
        return;
    }
    if (m[1] == '4' || m[1] == '1') {
        if (phase != P_DONE && failed_count < 3) show_packet("closed by the server", slot, m, n);
        pc->state = -1;
        return;
    }
    if (m[1] != '2') {
        proto_error(slot, "an unexpected Socket.IO packet", m, n);
        return;
    }
    if (pc->state != 2) {
        proto_error(slot, "an event before the namespace connect", m, n);
        return;
    }
    uint64_t now = now_ns();
    if (!pc->ts_count) {
        proto_error(slot, "an event with no request outstanding", m, n);
        return;
    }
    uint64_t ts = pc->ts[pc->ts_head];
    pc->ts_head = (pc->ts_head + 1) % 64;
    pc->ts_count--;
    outstanding--;
    if (n != echo_len || memcmp(m, echo_msg, n) != 0) mismatch(slot, "a reply that is not the message sent", m, n);
    else if (phase == P_MEASURE) {
        measured++;
        hist_add(lat, now - ts);
    }
    pc->to_send++;
}

/* one complete HTTP response on a polling connection */
static void poll_response(int slot, int status, char *body, size_t blen) {
    conn_t *c = &conns[slot];
    pclient_t *pc = &pclients[c->client];
    if (status != 200) {
        if (proto_errors < 3) fprintf(stderr, "loadgen: polling %s got HTTP %d\n", c->role ? "POST" : "GET", status);
        proto_error(slot, "an HTTP error", body, blen);
        pc->state = -1;
        conn_close(slot, 1);
        return;
    }
    if (c->role == 1) { /* POST answered "ok" */
        /* "ok" (python-engineio says "OK"; clients do not look at it) */
        if (blen != 2 || strncasecmp(body, "ok", 2) != 0) proto_error(slot, "a POST answered with something else than ok", body, blen);
        pc->post_busy = 0;
        poll_post_pending(pc);
        return;
    }
    pc->get_busy = 0;
    if (pc->state == 0) { /* handshake: 0{"sid":"..."} */
        char *s = memmem(body, blen, "\"sid\":\"", 7);
        if (!s || blen < 1 || body[0] != '0') {
            proto_error(slot, "a bad polling handshake", body, blen);
            conn_close(slot, 1);
            return;
        }
        s += 7;
        size_t i = 0;
        while (s + i < body + blen && s[i] != '"' && i < sizeof(pc->sid) - 1) {
            pc->sid[i] = s[i];
            i++;
        }
        pc->sid[i] = 0;
        pc->state = 1;
        pc->post_busy = 1;
        http_request(pc->post_slot, "POST", pc, "40", 2);
        poll_get(pc);
        return;
    }
    char *p = body, *end = body + blen;
    while (p < end) {
        char *sep = memchr(p, '\x1e', (size_t)(end - p));
        if (!sep) sep = end;
        poll_packet(slot, pc, p, (size_t)(sep - p));
        p = sep + 1;
    }
    if (pc->state < 0) {
        conn_close(slot, 1);
        return;
    }
    if (phase != P_DONE) poll_get(pc);
    poll_post_pending(pc);
}

static size_t find_header(const char *head, size_t hlen, const char *name, char *val, size_t vcap) {
    size_t nl = strlen(name);
    const char *p = head, *end = head + hlen;
    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!eol) eol = end;
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (v < eol && *v == ' ') v++;
            size_t n = (size_t)(eol - v);
            if (n >= vcap) n = vcap - 1;
            memcpy(val, v, n);
            val[n] = 0;
            return n + 1;
        }
        p = eol + 2;
    }
    return 0;
}

/* decode a chunked body in place; returns bytes consumed from p or 0 if incomplete */
static size_t dechunk(char *p, size_t len, size_t *blen) {
    size_t r = 0, w = 0;
    for (;;) {
        char *eol = memmem(p + r, len - r, "\r\n", 2);
        if (!eol) return 0;
        size_t sz = strtoul(p + r, NULL, 16);
        size_t data = (size_t)(eol - p) + 2;
        if (sz == 0) {
            char *fin = memmem(p + data - 2, len - (data - 2), "\r\n\r\n", 4);
            if (!fin) return 0;
            *blen = w;
            return (size_t)(fin - p) + 4;
        }
        if (data + sz + 2 > len) return 0;
        memmove(p + w, p + data, sz);
        w += sz;
        r = data + sz + 2;
    }
}

static void client_http_readable(int slot) {
    conn_t *c = &conns[slot];
    uint32_t gen = c->gen;
    for (;;) {
        char *start = c->in.p + c->in.off;
        size_t avail = c->in.len - c->in.off;
        char *hend = avail ? memmem(start, avail, "\r\n\r\n", 4) : NULL;
        if (!hend) break;
        size_t hlen = (size_t)(hend - start) + 4;
        int status = avail > 12 ? atoi(start + 9) : 0;
        char val[64];
        size_t blen, used;
        if (find_header(start, hlen, "content-length", val, sizeof(val))) {
            blen = strtoul(val, NULL, 10);
            if (avail < hlen + blen) break;
            used = hlen + blen;
        } else if (find_header(start, hlen, "transfer-encoding", val, sizeof(val)) && strcasestr(val, "chunked")) {
            /* decoding moves data in place; only do it once the whole body is here */
            char *tmp = malloc(avail - hlen + 1);
            memcpy(tmp, start + hlen, avail - hlen);
            size_t cu = dechunk(tmp, avail - hlen, &blen);
            if (!cu) {
                free(tmp);
                break;
            }
            memcpy(start + hlen, tmp, blen);
            free(tmp);
            used = hlen + cu;
        } else {
            blen = 0;
            used = hlen;
        }
        c->in.off += used;
        poll_response(slot, status, start + hlen, blen);
        if (conns[slot].gen != gen) return;
    }
    buf_settle(&c->in);
}

static void start_poll_client(int i) {
    pclient_t *pc = &pclients[i];
    memset(pc, 0, sizeof(*pc));
    pc->get_slot = 2 * i;
    pc->post_slot = 2 * i + 1;
    if (client_open(pc->get_slot, C_HTTP) < 0 || client_open(pc->post_slot, C_HTTP) < 0) {
        failed_count++;
        errors++;
        pc->state = -1;
        return;
    }
    conns[pc->get_slot].role = 0;
    conns[pc->post_slot].role = 1;
    conns[pc->get_slot].client = conns[pc->post_slot].client = i;
    started++;
    pending_handshakes++;
    poll_get(pc); /* queued until the TCP connection is up */
}

/* ------------------------------------------------------------------------------------------------ */
/* client: connection events */

static void on_client_closed(int slot, int error) {
    conn_t *c = &conns[slot];
    open_count--;
    if (mode == M_POLL) {
        pclient_t *pc = &pclients[c->client];
        if (pc->state != -2) {
            outstanding -= pc->ts_count; /* its requests will not be answered: it failed instead */
            pc->ts_count = 0;
            if (pc->counted_ready) ready_count--;
            else pending_handshakes--;
            if (error && phase != P_DONE) failed_count++, errors++;
            pc->state = -2;
            int other = c->role ? pc->get_slot : pc->post_slot;
            if (conns[other].state != C_FREE) {
                close(conns[other].fd);
                open_count--;
                conn_reset(&conns[other]);
            }
        }
        return;
    }
    if (c->state == C_READY) ready_count--;
    else pending_handshakes--;
    outstanding -= c->ts_count; /* its requests will not be answered: it failed instead */
    if (error && phase != P_DONE) {
        failed_count++;
        errors++;
        if (errors <= 5) fprintf(stderr, "loadgen: connection %d closed in state %d\n", slot, c->state);
    }
    if (slot == trigger_slot && phase != P_DONE) die("the broadcast trigger connection was closed");
}

static void client_event(int slot, uint32_t events) {
    conn_t *c = &conns[slot];
    if (c->state == C_CONNECTING) {
        if (events & (EPOLLERR | EPOLLHUP)) {
            conn_close(slot, 1);
            return;
        }
        if (!(events & EPOLLOUT)) return;
        int err = 0;
        socklen_t l = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            if (errors < 5) fprintf(stderr, "loadgen: connect: %s\n", strerror(err));
            conn_close(slot, 1);
            return;
        }
        c->state = c->sid;
        c->sid = -1;
        if (c->state == C_UPGRADING) {
            if (c->node2) buf_append(&c->out, upgrade_req2, upgrade_len2);
            else buf_append(&c->out, upgrade_req, upgrade_len);
        }
        conn_flush(slot);
        return;
    }
    if (events & EPOLLOUT) {
        if (conn_flush(slot) < 0) return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        buf_reserve(&c->in, 65536);
        ssize_t n = recv(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len, 0);
        if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
            conn_close(slot, 1);
            return;
        }
        c->in.len += (size_t)n;
        if (phase == P_MEASURE) rx_bytes += (uint64_t)n;
        if (c->state == C_HTTP)
            client_http_readable(slot);
        else
            client_ws_readable(slot);
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* client: the run */

static void print_result(void) {
    double elapsed = (t_measure_end - t_measure_start) / 1e9;
    double lg_cpu = cpu_measure_end - cpu_measure_start;
    printf("{\"mode\":\"%s\",\"conns\":%d,\"inflight\":%d,\"size\":%d,\"elapsed\":%.6f,\"count\":%llu,\"rate\":%.1f,",
           cfg.mode, cfg.conns, cfg.inflight, cfg.size, elapsed, (unsigned long long)measured,
           elapsed > 0 ? measured / elapsed : 0.0);
    printf("\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%llu,\"mean_us\":%.1f,", hist_pct(lat, 0.5),
           hist_pct(lat, 0.9), hist_pct(lat, 0.99), (unsigned long long)lat->max_us,
           lat->count ? lat->sum_us / lat->count : -1.0);
    printf("\"lg_cpu\":%.4f,\"lg_cpu_util\":%.4f,\"errors\":%llu,\"mismatches\":%llu,\"protocol_errors\":%llu,"
           "\"lost\":%llu,\"failed\":%d,\"ready\":%d",
           lg_cpu, elapsed > 0 ? lg_cpu / elapsed : 0.0,
           (unsigned long long)(errors + mismatches + proto_errors + lost), (unsigned long long)mismatches,
           (unsigned long long)proto_errors, (unsigned long long)lost, failed_count, ready_count);
    if (cfg.deflate)
        printf(",\"rx_bytes\":%llu,\"inflated\":%llu", (unsigned long long)rx_bytes,
               (unsigned long long)inflated_count);
    if (mode == M_BROADCAST)
        printf(",\"broadcasts\":%llu,\"completed\":%llu,\"receivers\":%u", (unsigned long long)bc_measured_sent,
               (unsigned long long)(bc_completed > bc_first_measured ? bc_completed - bc_first_measured : 0),
               bc_receivers);
    if (mode == M_BROADCAST && cfg.port2)
        printf(",\"conns2\":%d,\"count_2\":%llu,\"p50_us_2\":%.1f,\"p99_us_2\":%.1f,\"probes\":%llu", cfg.conns2,
               (unsigned long long)measured2, hist_pct(lat2, 0.5), hist_pct(lat2, 0.99),
               (unsigned long long)probe_sent);
    if (mode == M_IDLE || mode == M_CONNECT) printf(",\"concurrency\":%d", cfg.concurrency);
    printf(",\"connect_s\":%.4f}\n", t_connected ? (t_connected - t0) / 1e9 : -1.0);
    fflush(stdout);
}

static int stdin_closed;

/* --words: broadcast data that compresses like chat text (words from a small vocabulary, in a
   fixed pseudo-random order), not like the letter cycle (which compresses ~100x) */
static void chat_words(char *d, size_t n) {
    static const char *words[] = {"hello", "the", "meeting", "is", "at", "noon", "see", "you",
                                  "there", "lunch", "today", "ok", "thanks", "message", "user",
                                  "alice", "bob", "history", "channel", "weather", "tomorrow"};
    uint32_t x = 12345;
    size_t i = 0;
    while (i < n) {
        x = x * 1103515245u + 12345u;
        const char *w = words[(x >> 16) % (sizeof(words) / sizeof(words[0]))];
        for (size_t k = 0; w[k] && i < n; k++) d[i++] = w[k];
        if (i < n) d[i++] = ' ';
    }
}

static void run_client(void) {
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    memset(&target, 0, sizeof(target));
    target.sin_family = AF_INET;
    target.sin_port = htons((uint16_t)cfg.port);
    if (inet_pton(AF_INET, cfg.host, &target.sin_addr) != 1) die("--host must be an IPv4 address: %s", cfg.host);
    target2 = target;
    target2.sin_port = htons((uint16_t)cfg.port2);
    epfd = epoll_create1(0);
    lat = hist_new();
    lat2 = hist_new();
    const char *deflate_offer =
        cfg.deflate ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" : "";
    upgrade_len = (size_t)snprintf(upgrade_req, sizeof(upgrade_req),
                                   "GET %s?EIO=4&transport=websocket HTTP/1.1\r\nHost: %s:%d\r\n"
                                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                                   cfg.path, cfg.host, cfg.port, deflate_offer);
    upgrade_len2 = (size_t)snprintf(upgrade_req2, sizeof(upgrade_req2),
                                    "GET %s?EIO=4&transport=websocket HTTP/1.1\r\nHost: %s:%d\r\n"
                                    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                                    cfg.path, cfg.host, cfg.port2, deflate_offer);
    /* 42["echo","xxxx"] with cfg.size characters of data */
    echo_len = (size_t)cfg.size + 13;
    echo_msg = malloc(echo_len + 1);
    memcpy(echo_msg, "42[\"echo\",\"", 11);
    for (int i = 0; i < cfg.size; i++) echo_msg[11 + i] = (char)('a' + i % 26);
    memcpy(echo_msg + 11 + cfg.size, "\"]", 2);
    /* broadcast data: <8 characters of sequence number>|<letters>, sz characters in all */
    int sz = cfg.size < 9 ? 9 : cfg.size;
    char *data = malloc((size_t)sz);
    for (int i = 0; i < sz; i++) data[i] = (char)('a' + i % 26);
    if (cfg.words) chat_words(data, (size_t)sz);
    data[8] = '|';
    const char *bc_head = cfg.room ? "42[\"broadcast_room\",\"" : "42[\"broadcast\",\"";
    bc_seq_off = strlen(bc_head);
    bc_len = bc_seq_off + (size_t)sz + 2;
    bc_msg = malloc(bc_len);
    memcpy(bc_msg, bc_head, bc_seq_off);
    memcpy(bc_msg + bc_seq_off, data, (size_t)sz);
    memcpy(bc_msg + bc_seq_off + sz, "\"]", 2);
    probe_len = 16 + (size_t)sz + 2; /* 42["broadcast","P0000000|<letters>"] */
    probe_msg = malloc(probe_len);
    memcpy(probe_msg, "42[\"broadcast\",\"", 16);
    memcpy(probe_msg + 16, data, (size_t)sz);
    memcpy(probe_msg + 16 + sz, "\"]", 2);
    tick_len = TICK_SEQ + (size_t)sz + 2; /* 42["tick","<seq>|<letters>"] */
    tick_msg = malloc(tick_len);
    memcpy(tick_msg, "42[\"tick\",\"", TICK_SEQ);
    memcpy(tick_msg + TICK_SEQ, data, (size_t)sz);
    memcpy(tick_msg + TICK_SEQ + sz, "\"]", 2);
    free(data);
    probe_cap = (uint64_t)(cfg.timeout * 1e9 / PROBE_EVERY_NS) + 16;
    probe_recv = calloc(probe_cap, sizeof(uint32_t));
    bc_receivers = cfg.room ? 1 : (uint32_t)cfg.conns;
    if (mode == M_BROADCAST && cfg.port2) {
        probe_words = (size_t)(probe_cap + 63) / 64;
        probe_seen = calloc((size_t)cfg.conns * probe_words, sizeof(uint64_t));
        if (!probe_recv || !probe_seen) die("out of memory");
    }
    bc_cap = 1024;
    bc_sent_at = malloc(sizeof(uint64_t) * bc_cap);
    bc_recv = malloc(sizeof(uint32_t) * bc_cap);

    int total = cfg.conns;
    if (mode == M_CONNECT) total = cfg.concurrency;
    if (mode == M_POLL) {
        alloc_slots(2 * total);
        pclients = calloc((size_t)total, sizeof(pclient_t));
    } else {
        alloc_slots(total);
    }
    if (mode == M_BROADCAST) trigger_slot = total - 1;
    if (mode == M_CONNECT) handshake_limit = cfg.concurrency;

    int stdin_watch = (mode == M_IDLE && cfg.hold <= 0);
    if (stdin_watch) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev) < 0) stdin_watch = 0;
    }

    t0 = now_ns();
    t_deadline = t0 + (uint64_t)(cfg.timeout * 1e9);
    struct epoll_event evs[512];
    int next = 0;
    for (;;) {
        uint64_t now = now_ns();
        /* start handshakes, a bounded number at a time */
        if (phase == P_CONNECTING) {
            int limit = mode == M_BROADCAST ? total - 1 : total;
            while (next < limit && pending_handshakes < handshake_limit) {
                if (mode == M_POLL) start_poll_client(next);
                else start_client_ws(next);
                next++;
            }
            if (mode == M_BROADCAST && next == limit && ready_count == limit && pending_handshakes == 0) {
                start_client_ws(next); /* the trigger, connected last */
                next++;
            }
            if (mode == M_CONNECT) {
                phase = P_WARMUP;
                t_phase = now;
            } else if (next == total && ready_count == total) {
                t_connected = now;
                phase = P_WARMUP;
                t_phase = now;
                if (mode == M_IDLE) {
                    emit_event("connected");
                } else if (mode == M_ECHO) {
                    for (int i = 0; i < total; i++)
                        for (int k = 0; k < cfg.inflight; k++) echo_send(i);
                } else if (mode == M_POLL) {
                    for (int i = 0; i < total; i++) poll_post_pending(&pclients[i]);
                } else if (mode == M_BROADCAST && cfg.port2) {
                    phase = P_SYNC; /* first make sure both nodes deliver */
                    probe_send();
                } else if (mode == M_BROADCAST && cfg.room) {
                    phase = P_JOIN;
                    ws_text(trigger_slot, join_msg, sizeof(join_msg) - 1);
                } else if (mode == M_BROADCAST) {
                    bc_pump();
                }
            } else if (now > t_deadline) {
                die("connect phase timed out: %d of %d clients connected, %d failed", ready_count, total,
                    failed_count);
            } else if (failed_count > 0 && failed_count * 10 > total) {
                die("%d of %d clients failed to connect", failed_count, total);
            }
        }
        if (phase == P_SYNC) {
            if (probe_done) {
                t_phase = now;
                if (cfg.room) {
                    phase = P_JOIN;
                    ws_text(trigger_slot, join_msg, sizeof(join_msg) - 1);
                } else {
                    phase = P_WARMUP;
                    bc_pump();
                }
            } else if (now - t_phase > (uint64_t)(cfg.timeout * 1e9)) {
                die("no probe broadcast reached every client of both servers within %gs (the best reached %u of %d;"
                    " is the second server subscribed?)",
                    cfg.timeout, probe_best, cfg.conns);
            } else if (now - probe_last_at >= PROBE_EVERY_NS) {
                probe_send();
            }
        }
        if (phase == P_JOIN) {
            if (joined) {
                phase = P_WARMUP;
                t_phase = now;
                bc_pump();
            } else if (now - t_phase > (uint64_t)(cfg.timeout * 1e9)) {
                die("the trigger's join was not answered within %gs", cfg.timeout);
            }
        }
        if (mode == M_CONNECT && (phase == P_WARMUP || phase == P_MEASURE)) {
            for (int i = 0; i < total; i++)
                if (conns[i].state == C_FREE && pending_handshakes < handshake_limit) start_client_ws(i);
        }
        if (phase == P_WARMUP && now - t_phase >= (uint64_t)(cfg.warmup * 1e9) && mode != M_IDLE) {
            if (mode == M_BROADCAST) {
                /* measure only broadcasts sent from now on; wait for the warm-up ones to complete */
                bc_paused = 1;
                if (now - t_phase > (uint64_t)((cfg.warmup + cfg.timeout) * 1e9))
                    die("%llu warm-up broadcasts never reached every client",
                        (unsigned long long)(bc_sent - bc_completed));
                if (bc_completed == bc_sent) {
                    bc_paused = 0;
                    bc_first_measured = bc_sent;
                    start_measure();
                    bc_pump();
                }
            } else {
                start_measure();
            }
        }
        if (phase == P_MEASURE && now > t_phase && now - t_phase >= (uint64_t)(cfg.duration * 1e9)) {
            if (mode == M_BROADCAST) {
                phase = P_DRAIN; /* stop sending, wait for every delivery */
                t_phase = now;
            } else if (mode == M_ECHO || mode == M_POLL) {
                end_measure();
                phase = P_DRAIN; /* stop sending, wait for every reply (a lost one is an error) */
                t_phase = now;
            } else {
                end_measure();
                phase = P_DONE;
                break;
            }
        }
        if (phase == P_DRAIN) {
            /* drained: nothing outstanding; then a short grace in which any further reply or
               delivery (one too many) is still caught */
            int drained = mode == M_BROADCAST ? bc_completed == bc_sent : outstanding == 0;
            if (drained && !t_drained) {
                t_drained = now;
                if (mode == M_BROADCAST) {
                    t_measure_end = bc_last_delivery ? bc_last_delivery : now;
                    cpu_measure_end = cpu_seconds();
                    emit_event("measure_end");
                }
            }
            if (t_drained && now - t_drained >= GRACE_NS) {
                phase = P_DONE;
                break;
            }
            if (!t_drained && now - t_phase > (uint64_t)(cfg.timeout * 1e9)) {
                if (mode == M_BROADCAST) {
                    fprintf(stderr, "loadgen: %llu of %llu broadcasts never completed\n",
                            (unsigned long long)(bc_sent - bc_completed), (unsigned long long)bc_sent);
                    lost += bc_sent - bc_completed;
                    t_measure_end = bc_last_delivery ? bc_last_delivery : now;
                    cpu_measure_end = cpu_seconds();
                    emit_event("measure_end");
                } else {
                    fprintf(stderr, "loadgen: %lld replies never came\n", (long long)outstanding);
                    lost += (uint64_t)outstanding;
                }
                phase = P_DONE;
                break;
            }
        }
        if (mode == M_IDLE && phase == P_WARMUP) {
            if ((cfg.hold > 0 && now - t_phase >= (uint64_t)(cfg.hold * 1e9)) || stdin_closed) {
                t_measure_start = t0;
                t_measure_end = t_connected;
                phase = P_DONE;
                break;
            }
        }
        if (phase != P_CONNECTING && ready_count == 0 && pending_handshakes == 0 && mode != M_CONNECT)
            die("every client was disconnected (%d failed)", failed_count);

        flush_dirty();
        int n = epoll_wait(epfd, evs, 512, 5);
        if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 == UINT64_MAX) {
                char tmp[256];
                ssize_t r = read(0, tmp, sizeof(tmp));
                if (r <= 0) {
                    stdin_closed = 1;
                    epoll_ctl(epfd, EPOLL_CTL_DEL, 0, NULL);
                }
                continue;
            }
            int slot = (int)(evs[i].data.u64 & 0xffffffffu);
            uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
            if (slot >= nslots || conns[slot].gen != gen || conns[slot].state == C_FREE) continue;
            client_event(slot, evs[i].events);
        }
    }
    flush_dirty();
    if (mode == M_IDLE) {
        /* report the connect time as the "elapsed" figure */
        measured = (uint64_t)ready_count;
    }
    print_result();
}

/* ------------------------------------------------------------------------------------------------ */
/* the raw server (ceiling) */

/* SHA-1 for Sec-WebSocket-Accept */
typedef struct {
    uint32_t h[5];
    uint64_t len;
    uint8_t buf[64];
    size_t n;
} sha1_t;

#define ROL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))
static void sha1_block(sha1_t *s, const uint8_t *b) {
    uint32_t w[80], a = s->h[0], bb = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4];
    for (int i = 0; i < 16; i++) w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 | (uint32_t)b[4 * i + 2] << 8 | b[4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = ROL(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) f = (bb & c) | (~bb & d), k = 0x5A827999;
        else if (i < 40) f = bb ^ c ^ d, k = 0x6ED9EBA1;
        else if (i < 60) f = (bb & c) | (bb & d) | (c & d), k = 0x8F1BBCDC;
        else f = bb ^ c ^ d, k = 0xCA62C1D6;
        uint32_t t = ROL(a, 5) + f + e + k + w[i];
        e = d, d = c, c = ROL(bb, 30), bb = a, a = t;
    }
    s->h[0] += a, s->h[1] += bb, s->h[2] += c, s->h[3] += d, s->h[4] += e;
}

static void sha1(const uint8_t *data, size_t len, uint8_t out[20]) {
    sha1_t s = {{0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0}, 0, {0}, 0};
    size_t i = 0;
    for (; i + 64 <= len; i += 64) sha1_block(&s, data + i);
    uint8_t tail[128] = {0};
    size_t r = len - i;
    memcpy(tail, data + i, r);
    tail[r] = 0x80;
    size_t tl = r + 9 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int j = 0; j < 8; j++) tail[tl - 1 - j] = (uint8_t)(bits >> (8 * j));
    sha1_block(&s, tail);
    if (tl == 128) sha1_block(&s, tail + 64);
    for (int j = 0; j < 5; j++) {
        out[4 * j] = (uint8_t)(s.h[j] >> 24);
        out[4 * j + 1] = (uint8_t)(s.h[j] >> 16);
        out[4 * j + 2] = (uint8_t)(s.h[j] >> 8);
        out[4 * j + 3] = (uint8_t)s.h[j];
    }
}

static void base64(const uint8_t *in, size_t n, char *out) {
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        out[o++] = t[v >> 18 & 63];
        out[o++] = t[v >> 12 & 63];
        out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? t[v & 63] : '=';
    }
    out[o] = 0;
}

/* polling sessions of the raw server */
typedef struct {
    int used;
    buf_t queue;   /* Engine.IO packets waiting for a GET, joined with \x1e */
    int get_slot;  /* parked GET or -1 */
    uint32_t get_gen;
} session_t;

static session_t *sessions;
static int nsessions, sessions_cap;
static int *ws_ready;       /* WebSocket slots connected to the namespace */
static int nws_ready;
static int *ws_ready_pos;   /* position of a slot in ws_ready, -1 if absent */

static const char open_packet_fmt[] =
    "0{\"sid\":\"%d\",\"upgrades\":[],\"pingInterval\":25000,\"pingTimeout\":20000,\"maxPayload\":1000000}";

static void http_respond(int slot, int status, const char *body, size_t n) {
    char head[256];
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Length: %zu\r\n\r\n", status,
                      status == 200 ? "OK" : "Bad Request", n);
    buf_append(&conns[slot].out, head, (size_t)hl);
    buf_append(&conns[slot].out, body, n);
    mark_dirty(slot);
}

static void session_queue(session_t *s, const char *p, size_t n) {
    if (s->queue.len) buf_append(&s->queue, "\x1e", 1);
    buf_append(&s->queue, p, n);
}

static void session_flush(session_t *s) {
    if (s->get_slot < 0 || !s->queue.len) return;
    conn_t *g = &conns[s->get_slot];
    if (g->gen == s->get_gen && g->state == S_HTTP) {
        http_respond(s->get_slot, 200, s->queue.p, s->queue.len);
        g->parked = 0;
    }
    s->get_slot = -1;
    s->queue.len = 0;
}

/* 42["tick", + rest: one frame built once, written to every WebSocket client (of the room) */
static void server_broadcast(const char *rest, size_t rn, int room_only) {
    size_t tn = 9 + rn;
    uint8_t hdr[10];
    size_t hl;
    hdr[0] = 0x81;
    if (tn < 126) hdr[1] = (uint8_t)tn, hl = 2;
    else if (tn < 65536) hdr[1] = 126, hdr[2] = (uint8_t)(tn >> 8), hdr[3] = (uint8_t)tn, hl = 4;
    else {
        hdr[1] = 127;
        for (int i = 0; i < 8; i++) hdr[2 + i] = (uint8_t)((uint64_t)tn >> (56 - 8 * i));
        hl = 10;
    }
    size_t flen = hl + tn;
    char *frame = malloc(flen);
    memcpy(frame, hdr, hl);
    memcpy(frame + hl, "42[\"tick\"", 9);
    memcpy(frame + hl + 9, rest, rn);
    /* a flush may close a connection, which reorders ws_ready: walk a copy */
    int n_targets = nws_ready;
    int *targets = malloc(sizeof(int) * (size_t)n_targets);
    memcpy(targets, ws_ready, sizeof(int) * (size_t)n_targets);
    for (int i = 0; i < n_targets; i++) {
        conn_t *t = &conns[targets[i]];
        if (t->state != S_WS || (room_only && !t->in_room)) continue;
        buf_append(&t->out, frame, flen);
        mark_dirty(targets[i]);
    }
    free(targets);
    free(frame);
}

/* one Engine.IO packet arriving on either transport; reply() queues the answer */
static void server_packet(int slot, session_t *s, char *m, size_t n) {
    char tmp[64];
    if (n >= 2 && m[0] == '4' && m[1] == '0') {
        int l = snprintf(tmp, sizeof(tmp), "40{\"sid\":\"s%d\"}", slot);
        if (s) session_queue(s, tmp, (size_t)l);
        else {
            ws_text(slot, tmp, (size_t)l);
            if (ws_ready_pos[slot] < 0) {
                ws_ready_pos[slot] = nws_ready;
                ws_ready[nws_ready++] = slot;
            }
        }
    } else if (n >= 9 && memcmp(m, "42[\"echo\"", 9) == 0) {
        if (s) session_queue(s, m, n);
        else ws_text(slot, m, n);
    } else if (n >= 14 && memcmp(m, "42[\"broadcast\"", 14) == 0 && !s && nws_ready > 0) {
        server_broadcast(m + 14, n - 14, 0);
    } else if (n >= 19 && memcmp(m, "42[\"broadcast_room\"", 19) == 0 && !s && nws_ready > 0) {
        server_broadcast(m + 19, n - 19, 1);
    } else if (n == 10 && memcmp(m, "42[\"join\"]", 10) == 0 && !s) {
        conns[slot].in_room = 1;
        ws_text(slot, "42[\"joined\"]", 12);
    } else if (n == 1 && m[0] == '2') {
        if (s) session_queue(s, "3", 1);
        else ws_text(slot, "3", 1);
    }
}

static void server_ws_message(int slot, int op, char *m, size_t n) {
    if (op == 1) server_packet(slot, NULL, m, n);
}

static void server_on_closed(int slot) {
    conn_t *c = &conns[slot];
    if (ws_ready_pos[slot] >= 0) {
        int pos = ws_ready_pos[slot];
        int last = ws_ready[--nws_ready];
        ws_ready[pos] = last;
        ws_ready_pos[last] = pos;
        ws_ready_pos[slot] = -1;
    }
    if (c->parked && c->sid >= 0 && c->sid < nsessions && sessions[c->sid].get_slot == slot)
        sessions[c->sid].get_slot = -1;
}

static int query_sid(const char *target, size_t tlen) {
    const char *q = memmem(target, tlen, "sid=", 4);
    if (!q) return -1;
    return atoi(q + 4);
}

static void server_http_readable(int slot) {
    conn_t *c = &conns[slot];
    uint32_t gen = c->gen;
    for (;;) {
        char *start = c->in.p + c->in.off;
        size_t avail = c->in.len - c->in.off;
        char *hend = avail ? memmem(start, avail, "\r\n\r\n", 4) : NULL;
        if (!hend) {
            if (avail > 65536) conn_close(slot, 1);
            break;
        }
        size_t hlen = (size_t)(hend - start) + 4;
        char val[128];
        size_t blen = 0;
        if (find_header(start, hlen, "content-length", val, sizeof(val))) blen = strtoul(val, NULL, 10);
        if (avail < hlen + blen) break;
        char *sp = memchr(start, ' ', hlen);
        char *sp2 = sp ? memchr(sp + 1, ' ', (size_t)(hend - sp - 1)) : NULL;
        if (!sp || !sp2) {
            conn_close(slot, 1);
            return;
        }
        char *tgt = sp + 1;
        size_t tlen = (size_t)(sp2 - tgt);
        int is_get = memcmp(start, "GET ", 4) == 0;
        char *body = start + hlen;
        c->in.off += hlen + blen;
        if (is_get && find_header(start, hlen, "sec-websocket-key", val, sizeof(val))) {
            char keybuf[200];
            uint8_t digest[20];
            char accept[40];
            int kl = snprintf(keybuf, sizeof(keybuf), "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", val);
            sha1((uint8_t *)keybuf, (size_t)kl, digest);
            base64(digest, 20, accept);
            char resp[256];
            int rl = snprintf(resp, sizeof(resp),
                              "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Accept: %s\r\n\r\n",
                              accept);
            buf_append(&c->out, resp, (size_t)rl);
            c->state = S_WS;
            char open[160];
            int ol = snprintf(open, sizeof(open), open_packet_fmt, slot);
            ws_text(slot, open, (size_t)ol);
            ws_read_frames(slot, server_ws_message);
            return;
        }
        int sid = query_sid(tgt, tlen);
        if (sid < 0 && is_get) { /* polling handshake */
            if (nsessions == sessions_cap) {
                sessions_cap = sessions_cap ? sessions_cap * 2 : 256;
                sessions = realloc(sessions, sizeof(session_t) * (size_t)sessions_cap);
            }
            session_t *s = &sessions[nsessions];
            memset(s, 0, sizeof(*s));
            s->used = 1;
            s->get_slot = -1;
            char open[160];
            int ol = snprintf(open, sizeof(open), open_packet_fmt, nsessions);
            nsessions++;
            http_respond(slot, 200, open, (size_t)ol);
        } else if (sid < 0 || sid >= nsessions) {
            http_respond(slot, 400, "{\"code\":1,\"message\":\"Session ID unknown\"}", 41);
        } else if (is_get) {
            session_t *s = &sessions[sid];
            s->get_slot = slot;
            s->get_gen = c->gen;
            c->sid = sid;
            c->parked = 1;
            session_flush(s);
        } else {
            session_t *s = &sessions[sid];
            char *p = body, *end = body + blen;
            while (p < end) {
                char *sep = memchr(p, '\x1e', (size_t)(end - p));
                if (!sep) sep = end;
                server_packet(slot, s, p, (size_t)(sep - p));
                p = sep + 1;
            }
            http_respond(slot, 200, "ok", 2);
            session_flush(s);
        }
        if (conns[slot].gen != gen) return;
    }
    buf_settle(&c->in);
}

static void run_server(void) {
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    int maxfd = rl.rlim_cur > 200000 ? 200000 : (int)rl.rlim_cur;
    alloc_slots(maxfd + 16);
    ws_ready = calloc((size_t)nslots, sizeof(int));
    ws_ready_pos = malloc(sizeof(int) * (size_t)nslots);
    for (int i = 0; i < nslots; i++) ws_ready_pos[i] = -1;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg.port)};
    inet_pton(AF_INET, cfg.host, &a.sin_addr);
    if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0) die("bind %s:%d: %s", cfg.host, cfg.port, strerror(errno));
    if (listen(lfd, 4096) < 0) die("listen: %s", strerror(errno));
    fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK);
    epfd = epoll_create1(0);
    struct epoll_event lev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev);
    fprintf(stderr, "loadgen server listening on %s:%d\n", cfg.host, cfg.port);
    struct epoll_event evs[512];
    for (;;) {
        flush_dirty();
        int n = epoll_wait(epfd, evs, 512, -1);
        if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 == UINT64_MAX) {
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                    if (fd < 0) break;
                    if (fd >= nslots) {
                        close(fd);
                        continue;
                    }
                    set_sock_opts(fd);
                    conn_t *c = &conns[fd];
                    c->fd = fd;
                    c->state = S_HTTP;
                    c->sid = -1;
                    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ev_data(fd)};
                    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            int slot = (int)(evs[i].data.u64 & 0xffffffffu);
            uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
            conn_t *c = &conns[slot];
            if (c->gen != gen || c->state == C_FREE) continue;
            if (evs[i].events & EPOLLOUT) {
                if (conn_flush(slot) < 0) continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                buf_reserve(&c->in, 65536);
                ssize_t r = recv(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len, 0);
                if (r <= 0) {
                    if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                    conn_close(slot, 0);
                    continue;
                }
                c->in.len += (size_t)r;
                if (c->state == S_WS) ws_read_frames(slot, server_ws_message);
                else server_http_readable(slot);
            }
        }
    }
}

/* ------------------------------------------------------------------------------------------------ */

int main(int argc, char **argv) {
    static struct option opts[] = {
        {"host", required_argument, 0, 'h'},     {"port", required_argument, 0, 'p'},
        {"path", required_argument, 0, 'P'},     {"conns", required_argument, 0, 'n'},
        {"inflight", required_argument, 0, 'k'}, {"size", required_argument, 0, 's'},
        {"warmup", required_argument, 0, 'w'},   {"duration", required_argument, 0, 'd'},
        {"window", required_argument, 0, 'W'},   {"concurrency", required_argument, 0, 'c'},
        {"hold", required_argument, 0, 'H'},     {"timeout", required_argument, 0, 't'},
        {"flush-each", no_argument, 0, 'F'},     {"port2", required_argument, 0, 'q'},
        {"conns2", required_argument, 0, 'm'},   {"room", no_argument, 0, 'r'},
        {"deflate", no_argument, 0, 'D'},        {"words", no_argument, 0, 'X'},
        {0, 0, 0, 0},
    };
    if (argc < 2) {
        fprintf(stderr, "usage: loadgen echo|broadcast|idle|connect|poll|server [options] (see loadgen.c)\n");
        return 2;
    }
    cfg.mode = argv[1];
    if (!strcmp(cfg.mode, "echo")) mode = M_ECHO;
    else if (!strcmp(cfg.mode, "broadcast")) mode = M_BROADCAST;
    else if (!strcmp(cfg.mode, "idle")) mode = M_IDLE;
    else if (!strcmp(cfg.mode, "connect")) mode = M_CONNECT;
    else if (!strcmp(cfg.mode, "poll")) mode = M_POLL;
    else if (!strcmp(cfg.mode, "server")) mode = M_SERVER;
    else die("unknown mode %s", cfg.mode);
    optind = 2;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'h': cfg.host = optarg; break;
        case 'p': cfg.port = atoi(optarg); break;
        case 'P': cfg.path = optarg; break;
        case 'n': cfg.conns = atoi(optarg); break;
        case 'k': cfg.inflight = atoi(optarg); break;
        case 's': cfg.size = atoi(optarg); break;
        case 'w': cfg.warmup = atof(optarg); break;
        case 'd': cfg.duration = atof(optarg); break;
        case 'W': cfg.window = atoi(optarg); break;
        case 'c': cfg.concurrency = atoi(optarg); break;
        case 'H': cfg.hold = atof(optarg); break;
        case 't': cfg.timeout = atof(optarg); break;
        case 'F': flush_each = 1; break;
        case 'q': cfg.port2 = atoi(optarg); break;
        case 'm': cfg.conns2 = atoi(optarg); break;
        case 'r': cfg.room = 1; break;
        case 'D': cfg.deflate = 1; break;
        case 'X': cfg.words = 1; break;
        default: die("bad option");
        }
    }
    if (cfg.conns < 1 || cfg.inflight < 1 || cfg.size < 0 || cfg.window < 1 || cfg.concurrency < 1) die("bad numbers");
    if (mode == M_POLL && cfg.inflight > 60) die("--inflight must be <= 60 for poll");
    if (mode == M_BROADCAST && cfg.window > 64) die("--window must be <= 64 for broadcast");
    if ((cfg.port2 || cfg.conns2 || cfg.room) && mode != M_BROADCAST) die("--port2, --conns2 and --room are for broadcast");
    if (cfg.port2 && (cfg.conns2 < 1 || cfg.conns2 >= cfg.conns))
        die("--conns2 must be at least 1 and less than --conns (the trigger connects to --port)");
    if (!cfg.port2 && cfg.conns2) die("--conns2 needs --port2");
    if (cfg.deflate && mode != M_BROADCAST && mode != M_ECHO && mode != M_IDLE)
        die("--deflate is for echo, broadcast and idle");
    rng_state ^= (uint64_t)getpid() * 0x2545F4914F6CDD1Dull ^ now_ns();
    if (mode == M_SERVER) run_server();
    else run_client();
    return (errors + mismatches + proto_errors + lost) && measured == 0 ? 2 : 0;
}
