/* scripted_client.h - the world the socket-free client tests live in.

   A scripted wsr_transport (cfg.transport) that is opened again for every
   connection attempt and remembers where each connection's bytes begin, a
   seeded random source (cfg.random_fn), callbacks that record everything
   the application hears, and helpers to open a link, feed frames and
   decode what the client wrote. Time is whatever the test hands to
   wsr_client_step(): nothing here touches the network or the real clock.
   Included by one .c file per test program (it defines WSR_IMPLEMENTATION). */
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include "wsr_test.h"

/* Not every test program uses every helper. */
#define SC_STATIC static __attribute__((unused))

#include <errno.h>

#define MAX_CONN 2048      /* attempts remembered by the transport */
#define MAX_EV 2048        /* callbacks remembered by the world */

/* ---- the scripted transport ---------------------------------------------- */

typedef struct fake_tr {
    int open_calls, connect_calls, close_calls, read_calls, write_calls;
    char host[128];               /* of the last open */
    int port;
    uint64_t open_now;
    wsr_err open_result;          /* open_fn fails with this every time (WSR_OK: it does not) */
    int open_fail_n;              /* ... or only for the next n attempts */
    wsr_err open_fail_code;       /* with this code (WSR_ERR_REFUSED when 0) */
    int connected;                /* connect_fn: WSR_OK when set, else WSR_ERR_AGAIN */
    int closed;                   /* close_fn was called since the last open */
    int io_after_close;           /* read/write calls on a closed stream */

    unsigned char in[1 << 16];    /* bytes the "server" sends on this connection */
    size_t in_len, in_pos;
    wsr_err read_err;             /* once `in` is drained (WSR_OK: would block) */

    unsigned char *out;           /* every byte the client wrote, all connections */
    size_t out_len, out_cap;
    size_t write_max;             /* bytes per write call, 0 = all (kept across attempts) */
    int write_block;              /* write_fn says WSR_ERR_AGAIN */
    int budgeted;                 /* write_fn takes at most `budget` more bytes, then says AGAIN */
    size_t budget;                /* (a slow socket: the test refills it before each step) */
    size_t write_fail_at;         /* writes fail with WSR_ERR_RESET once out_len reaches this (0: never) */

    /* Per attempt (index = open call - 1). */
    size_t conn_start[MAX_CONN];  /* offset in `out` where its bytes begin */
    uint64_t open_times[MAX_CONN];
    int ports[MAX_CONN];
    char hosts[64][64];
} fake_tr;

SC_STATIC wsr_err ft_open(void *self, const char *host, int port, uint64_t now_ms, wsr_error *err) {
    fake_tr *t = (fake_tr *)self;
    int k = t->open_calls++;
    snprintf(t->host, sizeof t->host, "%s", host);
    t->port = port;
    t->open_now = now_ms;
    if (k < MAX_CONN) {
        t->conn_start[k] = t->out_len;
        t->open_times[k] = now_ms;
        t->ports[k] = port;
        if (k < 64) snprintf(t->hosts[k], sizeof t->hosts[k], "%s", host);
    }
    /* A new connection: a fresh script. */
    t->closed = 0;
    t->in_len = t->in_pos = 0;
    t->read_err = WSR_OK;
    t->write_block = 0;
    t->write_fail_at = 0;
    if (t->open_result != WSR_OK || t->open_fail_n > 0) {
        wsr_err code = t->open_result != WSR_OK ? t->open_result
                       : t->open_fail_code ? t->open_fail_code : WSR_ERR_REFUSED;
        if (t->open_fail_n > 0) t->open_fail_n--;
        memset(err, 0, sizeof *err);
        err->code = code;
        err->os_error = ECONNREFUSED;
        err->transient = 1;
        snprintf(err->message, sizeof err->message, "scripted open failure");
        return code;
    }
    return WSR_OK;
}

SC_STATIC wsr_err ft_connect(void *self, uint64_t now_ms, wsr_error *err) {
    fake_tr *t = (fake_tr *)self;
    (void)now_ms; (void)err;
    t->connect_calls++;
    return t->connected ? WSR_OK : WSR_ERR_AGAIN;
}

SC_STATIC wsr_err ft_read(void *self, void *buf, size_t cap, size_t *got, wsr_error *err) {
    fake_tr *t = (fake_tr *)self;
    size_t n;
    t->read_calls++;
    *got = 0;
    if (t->closed) t->io_after_close++;
    if (t->in_pos < t->in_len) {
        n = t->in_len - t->in_pos;
        if (n > cap) n = cap;
        memcpy(buf, t->in + t->in_pos, n);
        t->in_pos += n;
        *got = n;
        return WSR_OK;
    }
    if (t->read_err != WSR_OK) {
        memset(err, 0, sizeof *err);
        err->code = t->read_err;
        snprintf(err->message, sizeof err->message, "scripted read failure");
        return t->read_err;
    }
    return WSR_ERR_AGAIN;
}

SC_STATIC wsr_err ft_write(void *self, const void *buf, size_t len, size_t *put, wsr_error *err) {
    fake_tr *t = (fake_tr *)self;
    size_t n = len;
    t->write_calls++;
    *put = 0;
    if (t->closed) t->io_after_close++;
    if (t->write_fail_at && t->out_len >= t->write_fail_at) {
        memset(err, 0, sizeof *err);
        err->code = WSR_ERR_RESET;
        err->os_error = ECONNRESET;
        err->transient = 1;
        snprintf(err->message, sizeof err->message, "send: connection reset");
        return WSR_ERR_RESET;
    }
    if (t->write_block) return WSR_ERR_AGAIN;
    if (t->budgeted && t->budget == 0) return WSR_ERR_AGAIN;
    if (t->budgeted && n > t->budget) n = t->budget;
    if (t->budgeted) t->budget -= n;
    if (t->write_max && n > t->write_max) n = t->write_max;
    if (t->write_fail_at && n > t->write_fail_at - t->out_len) n = t->write_fail_at - t->out_len;
    if (t->out_len + n > t->out_cap) {
        size_t cap = t->out_cap ? t->out_cap : 4096;
        while (cap < t->out_len + n) cap *= 2;
        t->out = (unsigned char *)realloc(t->out, cap);
        t->out_cap = cap;
    }
    memcpy(t->out + t->out_len, buf, n);
    t->out_len += n;
    *put = n;
    return WSR_OK;
}

SC_STATIC void ft_close(void *self) {
    fake_tr *t = (fake_tr *)self;
    t->close_calls++;
    t->closed = 1;
}

SC_STATIC uintptr_t ft_socket(void *self) { (void)self; return WSR_INVALID_SOCKET; }
SC_STATIC int ft_events(void *self) { (void)self; return 0; }

/* Appends bytes the "server" sends on the current connection. */
SC_STATIC void ft_feed(fake_tr *t, const void *p, size_t n) {
    if (t->in_pos == t->in_len) t->in_pos = t->in_len = 0;
    if (t->in_len + n > sizeof t->in) { printf("ft_feed: script too long\n"); abort(); }
    memcpy(t->in + t->in_len, p, n);
    t->in_len += n;
}

/* Feeds one unmasked server frame. */
SC_STATIC void ft_feed_frame(fake_tr *t, int fin, int opcode, const void *payload, size_t len) {
    unsigned char hdr[WSR_MAX_FRAME_HEADER];
    size_t h = wsr_frame_header(hdr, fin, opcode, len, NULL);
    ft_feed(t, hdr, h);
    if (len) ft_feed(t, payload, len);
}

SC_STATIC void ft_feed_text(fake_tr *t, const char *s) { ft_feed_frame(t, 1, WSR_OP_TEXT, s, strlen(s)); }

SC_STATIC void ft_feed_close(fake_tr *t, int code, const char *reason) {
    unsigned char p[2 + WSR_MAX_CLOSE_REASON];
    size_t rl = reason ? strlen(reason) : 0;
    p[0] = (unsigned char)(code >> 8);
    p[1] = (unsigned char)code;
    if (rl) memcpy(p + 2, reason, rl);
    ft_feed_frame(t, 1, WSR_OP_CLOSE, p, 2 + rl);
}

/* ---- the world: transport, seeded randomness, what the application saw --- */

typedef struct world {
    fake_tr *t;
    wsr_transport tr;
    wsr_client_config cfg;
    wsr_client *c;
    uint64_t now;                 /* the time of the current step() */

    /* cfg.random_fn: splitmix64, seeded per test. */
    uint64_t seed;
    int rand_calls, rand4_calls, rand16_calls;
    uint32_t last4;               /* the last 4-byte draw, as the client reads it */

    wsr_state from[MAX_EV], to[MAX_EV];
    int nstates;
    int opens;
    int closes;
    wsr_error why;                /* the last on_close */
    wsr_err close_code_err[MAX_EV];
    int ends;
    wsr_error end_why;
    wsr_state state_at_end;

    /* on_reconnecting */
    int nrc;
    int rc_attempt[MAX_EV], rc_delay[MAX_EV], rc_status[MAX_EV], rc_close[MAX_EV];
    wsr_err rc_code[MAX_EV];
    uint32_t rc_rnd[MAX_EV];      /* the draw just before the call: the jitter value */
    uint64_t rc_at[MAX_EV];
    int rc_ret;                   /* what on_reconnecting returns (1 unless a test says) */
    const char *rc_url;           /* set by on_reconnecting when not NULL */
    const char *rc_headers;
    wsr_err rc_set_result;

    /* on_delivery */
    int ndel;
    uint64_t del_tag[MAX_EV];
    wsr_delivery del_fate[MAX_EV];
    size_t del_out[MAX_EV];       /* bytes the transport had taken when it was reported */

    int messages;
    char msg[4096];
    size_t msg_len;
    int pongs;

    const char *open_send;        /* on_open sends this text with tag open_tag */
    uint64_t open_tag;
    int retry_401;                /* retry_fn also retries HTTP 401 */
    int retry_never;              /* retry_fn refuses everything */
    int retry_fn_calls;
} world;

SC_STATIC void rnd_fill(void *buf, size_t n, void *user) {
    world *w = (world *)user;
    unsigned char *p = (unsigned char *)buf;
    size_t i;
    w->rand_calls++;
    for (i = 0; i < n; i++) {
        uint64_t z;
        w->seed += 0x9E3779B97F4A7C15ull;
        z = w->seed;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        p[i] = (unsigned char)((z ^ (z >> 31)) >> 24);
    }
    if (n == 4) { w->rand4_calls++; memcpy(&w->last4, buf, 4); }
    if (n == 16) w->rand16_calls++;
}

SC_STATIC void cb_state(wsr_client *c, wsr_state from, wsr_state to, void *user) {
    world *w = (world *)user;
    (void)c;
    if (w->nstates < MAX_EV) { w->from[w->nstates] = from; w->to[w->nstates] = to; }
    w->nstates++;
}
SC_STATIC void cb_open(wsr_client *c, const char *sub, void *user) {
    world *w = (world *)user;
    (void)sub;
    w->opens++;
    if (w->open_send) wsr_send_tracked(c, WSR_MSG_TEXT, w->open_send, strlen(w->open_send), w->open_tag);
}
SC_STATIC void cb_close(wsr_client *c, const wsr_error *why, void *user) {
    world *w = (world *)user;
    (void)c;
    if (w->closes < MAX_EV) w->close_code_err[w->closes] = why->code;
    w->closes++;
    w->why = *why;
}
SC_STATIC void cb_end(wsr_client *c, const wsr_error *why, void *user) {
    world *w = (world *)user;
    w->ends++;
    w->end_why = *why;
    w->state_at_end = wsr_client_state(c);
}
SC_STATIC int cb_reconnecting(wsr_client *c, int attempt, int delay_ms, const wsr_error *cause, void *user) {
    world *w = (world *)user;
    int k = w->nrc++;
    if (k < MAX_EV) {
        w->rc_attempt[k] = attempt;
        w->rc_delay[k] = delay_ms;
        w->rc_code[k] = cause->code;
        w->rc_status[k] = cause->http_status;
        w->rc_close[k] = cause->close_code;
        w->rc_rnd[k] = w->last4;
        w->rc_at[k] = w->now;
    }
    if (w->rc_url) {
        wsr_error e;
        w->rc_set_result = wsr_client_set_url(c, w->rc_url, &e);
    }
    if (w->rc_headers && w->rc_set_result == WSR_OK) w->rc_set_result = wsr_client_set_headers(c, w->rc_headers);
    return w->rc_ret;
}
SC_STATIC void cb_delivery(wsr_client *c, uint64_t tag, wsr_delivery fate, void *user) {
    world *w = (world *)user;
    (void)c;
    if (w->ndel < MAX_EV) {
        w->del_tag[w->ndel] = tag;
        w->del_fate[w->ndel] = fate;
        w->del_out[w->ndel] = w->t->out_len;
    }
    w->ndel++;
}
SC_STATIC void cb_message(wsr_client *c, wsr_msg_type type, const void *data, size_t len, void *user) {
    world *w = (world *)user;
    (void)c; (void)type;
    w->messages++;
    w->msg_len = len;
    memcpy(w->msg, data, len < sizeof w->msg ? len : sizeof w->msg);
}
SC_STATIC void cb_pong(wsr_client *c, const void *data, size_t len, void *user) {
    world *w = (world *)user;
    (void)c; (void)data; (void)len;
    w->pongs++;
}
SC_STATIC int cb_retry(const wsr_error *cause, void *user) {
    world *w = (world *)user;
    w->retry_fn_calls++;
    if (w->retry_never) return 0;
    if (w->retry_401 && cause->code == WSR_ERR_HANDSHAKE && cause->http_status == 401) return 1;
    return wsr_error_retryable(cause);
}

/* A world with a reconnecting client: backoff 100 ms doubling up to 1000,
   no jitter, no keepalive; the stream connects at once. */
SC_STATIC world *world_cfg(const char *url) {
    world *w = (world *)calloc(1, sizeof *w);
    w->t = (fake_tr *)calloc(1, sizeof *w->t);
    w->tr.open_fn = ft_open;
    w->tr.connect_fn = ft_connect;
    w->tr.read_fn = ft_read;
    w->tr.write_fn = ft_write;
    w->tr.close_fn = ft_close;
    w->tr.socket_fn = ft_socket;
    w->tr.events_fn = ft_events;
    w->tr.self = w->t;
    w->t->connected = 1;
    w->seed = 12345;
    w->rc_ret = 1;
    wsr_client_config_init(&w->cfg);
    w->cfg.url = url ? url : "ws://example.com:8080/chat";
    w->cfg.transport = &w->tr;
    w->cfg.random_fn = rnd_fill;
    w->cfg.ping_interval_ms = 0;
    w->cfg.backoff.initial_ms = 100;
    w->cfg.backoff.max_ms = 1000;
    w->cfg.backoff.factor = 2.0;
    w->cfg.backoff.jitter = WSR_JITTER_NONE;
    w->cfg.on_state = cb_state;
    w->cfg.on_open = cb_open;
    w->cfg.on_close = cb_close;
    w->cfg.on_end = cb_end;
    w->cfg.on_reconnecting = cb_reconnecting;
    w->cfg.on_delivery = cb_delivery;
    w->cfg.on_message = cb_message;
    w->cfg.on_pong = cb_pong;
    w->cfg.user = w;
    return w;
}

SC_STATIC int world_new(world *w) {
    wsr_error err;
    w->c = wsr_client_new(&w->cfg, &err);
    if (!w->c) printf("wsr_client_new failed: %s\n", err.message);
    return w->c != NULL;
}

SC_STATIC void world_free(world *w) {
    wsr_client_free(w->c);
    /* No connection was ever read or written after it was closed. */
    CHECK_EQ_INT(w->t->io_after_close, 0);
    free(w->t->out);
    free(w->t);
    free(w);
}

SC_STATIC wsr_err step(world *w, uint64_t now) {
    w->now = now;
    return wsr_client_step(w->c, now);
}

SC_STATIC wsr_state st(const world *w) { return wsr_client_state(w->c); }

/* Index of the current (last opened) connection. */
SC_STATIC int cur(const world *w) { return w->t->open_calls - 1; }

/* End of connection k's bytes in `out`. */
SC_STATIC size_t conn_end(const fake_tr *t, int k) {
    return k + 1 < t->open_calls && k + 1 < MAX_CONN ? t->conn_start[k + 1] : t->out_len;
}

/* Parses the upgrade request connection k wrote. */
SC_STATIC int conn_request(const fake_tr *t, int k, wsr_request *req) {
    wsr_error e;
    size_t s = t->conn_start[k];
    return wsr_handshake_request_parse((const char *)t->out + s, conn_end(t, k) - s, 0, req, &e) == WSR_OK;
}

/* Feeds the 101 answer for the key of the current connection's request. */
SC_STATIC int feed_101(world *w) {
    wsr_request req;
    char resp[512];
    size_t n = 0;
    if (!conn_request(w->t, cur(w), &req)) return 0;
    if (wsr_handshake_response(resp, sizeof resp, &n, req.key, req.key_len, NULL) != WSR_OK) return 0;
    ft_feed(w->t, resp, n);
    return 1;
}

/* One step at `now` that starts an attempt (or finds one in HANDSHAKE), then
   the 101 and a second step at the same time: OPEN. */
SC_STATIC int open_link(world *w, uint64_t now) {
    step(w, now);
    if (st(w) != WSR_STATE_HANDSHAKE) return 0;
    if (!feed_101(w)) return 0;
    step(w, now);
    return st(w) == WSR_STATE_OPEN;
}

/* Feeds an HTTP answer instead of the 101. */
SC_STATIC void feed_http(world *w, const char *resp) { ft_feed(w->t, resp, strlen(resp)); }

/* The server closes with a close frame and then the TCP connection. */
SC_STATIC void server_close(world *w, int code) {
    ft_feed_close(w->t, code, "bye");
    w->t->read_err = WSR_ERR_EOF;
}

typedef struct frame {
    int opcode, fin, masked;
    size_t len;
    unsigned char data[4096];
} frame;

/* Splits client frames (header fields as on the wire, payload unmasked).
   Returns the number of frames, or -1 on a malformed or truncated frame. */
SC_STATIC int split_frames(const unsigned char *p, size_t n, frame *out, int max) {
    size_t i = 0;
    int k = 0;
    while (i < n) {
        uint64_t len;
        size_t h = 2, j;
        unsigned char key[4] = {0, 0, 0, 0};
        if (k >= max || n - i < 2) return -1;
        out[k].fin = (p[i] & 0x80) != 0;
        out[k].opcode = p[i] & 0x0F;
        out[k].masked = (p[i + 1] & 0x80) != 0;
        len = p[i + 1] & 0x7F;
        if (len == 126) {
            if (n - i < 4) return -1;
            len = (uint64_t)p[i + 2] << 8 | p[i + 3];
            h = 4;
        } else if (len == 127) {
            int b;
            if (n - i < 10) return -1;
            len = 0;
            for (b = 0; b < 8; b++) len = len << 8 | p[i + 2 + b];
            h = 10;
        }
        if (out[k].masked) {
            if (n - i < h + 4) return -1;
            memcpy(key, p + i + h, 4);
            h += 4;
        }
        if (n - i - h < len) return -1;
        out[k].len = (size_t)len;
        for (j = 0; j < len && j < sizeof out[k].data; j++) out[k].data[j] = p[i + h + j] ^ key[j & 3];
        i += h + (size_t)len;
        k++;
    }
    return k;
}

/* Offset in `out` of the first frame byte of connection k (after its request). */
SC_STATIC size_t conn_frames_start(const fake_tr *t, int k) {
    wsr_request req;
    if (!conn_request(t, k, &req)) return (size_t)-1;
    return t->conn_start[k] + req.head_len;
}

/* The frames connection k wrote after its upgrade request. */
SC_STATIC int conn_frames(const fake_tr *t, int k, frame *out, int max) {
    size_t s = conn_frames_start(t, k), e = conn_end(t, k);
    if (s == (size_t)-1 || s > e) return -1;
    return split_frames(t->out + s, e - s, out, max);
}

/* The frames written after byte offset `from`. */
SC_STATIC int frames_after(const fake_tr *t, size_t from, frame *out, int max) {
    if (from > t->out_len) return -1;
    return split_frames(t->out + from, t->out_len - from, out, max);
}

SC_STATIC int frame_is_text(const frame *f, const char *s) {
    return f->opcode == WSR_OP_TEXT && f->fin && f->masked && f->len == strlen(s) && memcmp(f->data, s, f->len) == 0;
}

SC_STATIC int close_code_of(const frame *f) {
    return f->opcode == WSR_OP_CLOSE && f->len >= 2 ? (f->data[0] << 8 | f->data[1]) : -1;
}

/* Did the client ever enter `s`? */
SC_STATIC int was_in(const world *w, wsr_state s) {
    int i;
    for (i = 0; i < w->nstates && i < MAX_EV; i++)
        if (w->to[i] == s) return 1;
    return 0;
}

SC_STATIC int base_delay(int initial, int max, int attempt) {
    long long v = initial;
    int i;
    for (i = 1; i < attempt && v < max; i++) v *= 2;
    return v > max ? max : (int)v;
}

SC_STATIC frame g_frames[64];

