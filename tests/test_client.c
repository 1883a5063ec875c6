/* test_client.c - the client state machine without sockets.

   A scripted wsr_transport (cfg.transport) whose open / connect / read /
   write the test controls, and a fake clock handed to wsr_client_step().
   wsr_client_poll() is never called here, so nothing touches the network or
   the real clock: every timing check is exact to the millisecond. */
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include "wsr_test.h"

#include <errno.h>

/* ---- the scripted transport ---------------------------------------------- */

typedef struct fake_tr {
    int open_calls, connect_calls, close_calls, read_calls, write_calls;
    char host[128];
    int port;
    uint64_t open_now;
    wsr_err open_result;          /* what open_fn returns (WSR_OK by default) */
    int connected;                /* connect_fn: WSR_OK when set, else WSR_ERR_AGAIN */
    int closed;                   /* close_fn was called since the last open */
    int io_after_close;           /* read/write calls on a closed stream */

    unsigned char in[1 << 16];    /* bytes the "server" sends, read in order */
    size_t in_len, in_pos;
    size_t read_max;              /* bytes per read call, 0 = as many as fit */
    wsr_err read_err;             /* returned once `in` is drained (WSR_OK: would block) */
    wsr_error read_err_detail;

    unsigned char *out;           /* every byte the client wrote, in order */
    size_t out_len, out_cap;
    size_t write_max;             /* bytes per write call, 0 = all */
    int write_block;              /* write_fn says WSR_ERR_AGAIN */
    int write_alternate;          /* every other call says WSR_ERR_AGAIN */
    wsr_err write_err;            /* write_fn fails with this (WSR_OK: no failure) */
    int alt_phase;
} fake_tr;

static wsr_err ft_open(void *self, const char *host, int port, uint64_t now_ms, wsr_error *err) {
    fake_tr *t = (fake_tr *)self;
    (void)err;
    t->open_calls++;
    snprintf(t->host, sizeof t->host, "%s", host);
    t->port = port;
    t->open_now = now_ms;
    t->closed = 0;
    if (t->open_result != WSR_OK) {
        memset(err, 0, sizeof *err);
        err->code = t->open_result;
        err->transient = 1;
        snprintf(err->message, sizeof err->message, "scripted open failure");
    }
    return t->open_result;
}

static wsr_err ft_connect(void *self, uint64_t now_ms, wsr_error *err) {
    fake_tr *t = (fake_tr *)self;
    (void)now_ms; (void)err;
    t->connect_calls++;
    return t->connected ? WSR_OK : WSR_ERR_AGAIN;
}

static wsr_err ft_read(void *self, void *buf, size_t cap, size_t *got, wsr_error *err) {
    fake_tr *t = (fake_tr *)self;
    size_t n;
    t->read_calls++;
    *got = 0;
    if (t->closed) t->io_after_close++;
    if (t->in_pos < t->in_len) {
        n = t->in_len - t->in_pos;
        if (n > cap) n = cap;
        if (t->read_max && n > t->read_max) n = t->read_max;
        memcpy(buf, t->in + t->in_pos, n);
        t->in_pos += n;
        *got = n;
        return WSR_OK;
    }
    if (t->read_err != WSR_OK) {
        *err = t->read_err_detail;
        err->code = t->read_err;
        return t->read_err;
    }
    return WSR_ERR_AGAIN;
}

static wsr_err ft_write(void *self, const void *buf, size_t len, size_t *put, wsr_error *err) {
    fake_tr *t = (fake_tr *)self;
    size_t n = len;
    t->write_calls++;
    *put = 0;
    if (t->closed) t->io_after_close++;
    if (t->write_err != WSR_OK) {
        memset(err, 0, sizeof *err);
        err->code = t->write_err;
        err->os_error = EPIPE;
        err->transient = 1;
        snprintf(err->message, sizeof err->message, "send: broken pipe");
        return t->write_err;
    }
    if (t->write_block) return WSR_ERR_AGAIN;
    if (t->write_alternate && (t->alt_phase++ & 1)) return WSR_ERR_AGAIN;
    if (t->write_max && n > t->write_max) n = t->write_max;
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

static void ft_close(void *self) {
    fake_tr *t = (fake_tr *)self;
    t->close_calls++;
    t->closed = 1;
}

static uintptr_t ft_socket(void *self) { (void)self; return WSR_INVALID_SOCKET; }
static int ft_events(void *self) { (void)self; return 0; }

/* Appends bytes the "server" sends. */
static void ft_feed(fake_tr *t, const void *p, size_t n) {
    if (t->in_pos == t->in_len) t->in_pos = t->in_len = 0;
    if (t->in_len + n > sizeof t->in) { printf("ft_feed: script too long\n"); abort(); }
    memcpy(t->in + t->in_len, p, n);
    t->in_len += n;
}

/* Feeds one unmasked server frame. */
static void ft_feed_frame(fake_tr *t, int fin, int opcode, const void *payload, size_t len) {
    unsigned char hdr[WSR_MAX_FRAME_HEADER];
    size_t h = wsr_frame_header(hdr, fin, opcode, len, NULL);
    ft_feed(t, hdr, h);
    if (len) ft_feed(t, payload, len);
}

static void ft_feed_close(fake_tr *t, int code, const char *reason) {
    unsigned char p[2 + WSR_MAX_CLOSE_REASON];
    size_t rl = reason ? strlen(reason) : 0;
    p[0] = (unsigned char)(code >> 8);
    p[1] = (unsigned char)code;
    if (rl) memcpy(p + 2, reason, rl);
    ft_feed_frame(t, 1, WSR_OP_CLOSE, p, 2 + rl);
}

/* ---- what the application sees ------------------------------------------- */

#define MAX_REC 64
typedef struct rec {
    wsr_state from[MAX_REC], to[MAX_REC];
    int nstates;
    int opens;
    char subprotocol[64];
    int closes;
    wsr_error why;                 /* the last on_close */
    wsr_state state_in_close;      /* wsr_client_state() inside on_close */
    int messages;
    wsr_msg_type msg_type;
    unsigned char msg[4096];
    size_t msg_len;
    int pongs;
    unsigned char pong[128];
    size_t pong_len;
} rec;

static void cb_state(wsr_client *c, wsr_state from, wsr_state to, void *user) {
    rec *r = (rec *)user;
    (void)c;
    if (r->nstates < MAX_REC) { r->from[r->nstates] = from; r->to[r->nstates] = to; }
    r->nstates++;
}
static void cb_open(wsr_client *c, const char *sub, void *user) {
    rec *r = (rec *)user;
    (void)c;
    r->opens++;
    snprintf(r->subprotocol, sizeof r->subprotocol, "%s", sub ? sub : "(null)");
}
static void cb_close(wsr_client *c, const wsr_error *why, void *user) {
    rec *r = (rec *)user;
    r->closes++;
    r->why = *why;
    r->state_in_close = wsr_client_state(c);
}
static void cb_message(wsr_client *c, wsr_msg_type type, const void *data, size_t len, void *user) {
    rec *r = (rec *)user;
    (void)c;
    r->messages++;
    r->msg_type = type;
    r->msg_len = len;
    memcpy(r->msg, data, len < sizeof r->msg ? len : sizeof r->msg);
}
static void cb_pong(wsr_client *c, const void *data, size_t len, void *user) {
    rec *r = (rec *)user;
    (void)c;
    r->pongs++;
    r->pong_len = len;
    memcpy(r->pong, data, len < sizeof r->pong ? len : sizeof r->pong);
}

/* One test's world: transport, records, client. */
typedef struct world {
    fake_tr *t;
    wsr_transport tr;
    rec r;
    wsr_client_config cfg;
    wsr_client *c;
} world;

static void world_cfg(world *w, const char *url) {
    memset(w, 0, sizeof *w);
    w->t = (fake_tr *)calloc(1, sizeof *w->t);
    w->tr.open_fn = ft_open;
    w->tr.connect_fn = ft_connect;
    w->tr.read_fn = ft_read;
    w->tr.write_fn = ft_write;
    w->tr.close_fn = ft_close;
    w->tr.socket_fn = ft_socket;
    w->tr.events_fn = ft_events;
    w->tr.self = w->t;
    wsr_client_config_init(&w->cfg);
    w->cfg.url = url ? url : "ws://example.com:8080/chat?x=1";
    w->cfg.transport = &w->tr;
    /* One connection, no keepalive: the tests in this file are about a
       single attempt. test_reconnect.c covers what comes after. */
    w->cfg.reconnect = 0;
    w->cfg.ping_interval_ms = 0;
    w->cfg.on_state = cb_state;
    w->cfg.on_open = cb_open;
    w->cfg.on_close = cb_close;
    w->cfg.on_message = cb_message;
    w->cfg.on_pong = cb_pong;
    w->cfg.user = &w->r;
}

static int world_new(world *w) {
    wsr_error err;
    w->c = wsr_client_new(&w->cfg, &err);
    if (!w->c) printf("wsr_client_new failed: %s\n", err.message);
    return w->c != NULL;
}

static void world_free(world *w) {
    wsr_client_free(w->c);
    free(w->t->out);
    free(w->t);
}

/* Parses the upgrade request at the start of what the client wrote. */
static int parse_request(const fake_tr *t, wsr_request *req) {
    wsr_error e;
    return wsr_handshake_request_parse((const char *)t->out, t->out_len, 0, req, &e) == WSR_OK;
}

/* Feeds the 101 answer for the key of the request the client wrote. */
static int feed_101(fake_tr *t, const char *subprotocol) {
    wsr_request req;
    char resp[512];
    size_t n = 0;
    if (!parse_request(t, &req)) return 0;
    if (wsr_handshake_response(resp, sizeof resp, &n, req.key, req.key_len, subprotocol) != WSR_OK) return 0;
    ft_feed(t, resp, n);
    return 1;
}

/* Steps a fresh client through connect and upgrade to OPEN at time `now`.
   Returns 1 when it got there. */
static int world_open(world *w, uint64_t now) {
    w->t->connected = 1;
    wsr_client_step(w->c, now);
    if (wsr_client_state(w->c) != WSR_STATE_HANDSHAKE) return 0;
    if (!feed_101(w->t, NULL)) return 0;
    wsr_client_step(w->c, now);
    return wsr_client_state(w->c) == WSR_STATE_OPEN;
}

/* Frames the client wrote, decoded with a server-role codec (which also
   checks that every one of them is masked, as §5.1 requires). */
typedef struct frame {
    int opcode, fin, masked;
    size_t len;
    unsigned char data[4096];
} frame;

/* Splits client frames by hand (header fields as on the wire). Returns the
   number of frames, or -1 on a malformed or truncated frame. */
static int split_frames(const unsigned char *p, size_t n, frame *out, int max) {
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

/* The frames written after byte offset `from`. */
static int frames_after(const fake_tr *t, size_t from, frame *out, int max) {
    if (from > t->out_len) return -1;
    return split_frames(t->out + from, t->out_len - from, out, max);
}

static size_t request_len(const fake_tr *t) {
    wsr_request req;
    return parse_request(t, &req) ? req.head_len : 0;
}

static frame g_frames[64];

/* ---- tests ---------------------------------------------------------------- */

TEST(states_idle_connecting_handshake_open) {
    world w;
    wsr_request req;
    world_cfg(&w, "ws://example.com:8080/chat?x=1");
    w.cfg.origin = "http://example.com";
    if (!world_new(&w)) { CHECK(0); return; }
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_IDLE);
    CHECK_EQ_INT(w.t->open_calls, 0);            /* nothing happens before the first step */

    /* The TCP connect stays in progress. */
    CHECK_EQ_INT(wsr_client_step(w.c, 1000), WSR_OK);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CONNECTING);
    CHECK_EQ_INT(w.t->open_calls, 1);
    CHECK_EQ_STR(w.t->host, "example.com");
    CHECK_EQ_INT(w.t->port, 8080);
    CHECK_EQ_INT(w.t->open_now, 1000);
    CHECK_EQ_INT(w.t->out_len, 0);               /* nothing written before the stream is up */
    wsr_client_step(w.c, 1010);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CONNECTING);
    CHECK_EQ_INT(w.t->open_calls, 1);            /* one open per attempt */

    /* Connected: the upgrade request goes out in the same step. */
    w.t->connected = 1;
    wsr_client_step(w.c, 1020);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_HANDSHAKE);
    CHECK(w.t->out_len > 0);
    CHECK(parse_request(w.t, &req));
    CHECK_EQ_INT(req.status, 101);
    CHECK_EQ_INT(req.version, 13);
    CHECK_EQ_INT(req.head_len, w.t->out_len);   /* the request, and nothing after it */
    CHECK(req.path_len == 9 && memcmp(req.path, "/chat?x=1", 9) == 0);
    CHECK(req.host_len == 16 && memcmp(req.host, "example.com:8080", 16) == 0);
    CHECK(req.origin_len == 18 && memcmp(req.origin, "http://example.com", 18) == 0);
    CHECK_EQ_INT(req.key_len, 24);

    /* The 101 arrives in two pieces. */
    {
        char resp[512];
        size_t n = 0;
        CHECK_EQ_INT(wsr_handshake_response(resp, sizeof resp, &n, req.key, req.key_len, NULL), WSR_OK);
        ft_feed(w.t, resp, 10);
        wsr_client_step(w.c, 1030);
        CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_HANDSHAKE);
        CHECK_EQ_INT(w.r.opens, 0);
        ft_feed(w.t, resp + 10, n - 10);
        wsr_client_step(w.c, 1040);
    }
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_OPEN);
    CHECK_EQ_INT(w.r.opens, 1);
    CHECK_EQ_STR(w.r.subprotocol, "");
    CHECK_EQ_INT(w.r.closes, 0);
    CHECK_EQ_INT(wsr_client_error(w.c)->code, WSR_OK);

    /* Exactly three transitions, in order. */
    CHECK_EQ_INT(w.r.nstates, 3);
    CHECK(w.r.from[0] == WSR_STATE_IDLE && w.r.to[0] == WSR_STATE_CONNECTING);
    CHECK(w.r.from[1] == WSR_STATE_CONNECTING && w.r.to[1] == WSR_STATE_HANDSHAKE);
    CHECK(w.r.from[2] == WSR_STATE_HANDSHAKE && w.r.to[2] == WSR_STATE_OPEN);

    /* And a message from the server reaches on_message. */
    ft_feed_frame(w.t, 1, WSR_OP_TEXT, "hello", 5);
    wsr_client_step(w.c, 1050);
    CHECK_EQ_INT(w.r.messages, 1);
    CHECK_EQ_INT(w.r.msg_type, WSR_MSG_TEXT);
    CHECK(w.r.msg_len == 5 && memcmp(w.r.msg, "hello", 5) == 0);

    /* A message from us is one masked text frame after the request. */
    {
        size_t before = w.t->out_len;
        int n;
        CHECK_EQ_INT(wsr_send_text(w.c, "abc", 3), WSR_OK);
        wsr_client_step(w.c, 1060);
        n = frames_after(w.t, before, g_frames, 64);
        CHECK_EQ_INT(n, 1);
        if (n == 1) {
            CHECK_EQ_INT(g_frames[0].opcode, WSR_OP_TEXT);
            CHECK(g_frames[0].fin && g_frames[0].masked);
            CHECK(g_frames[0].len == 3 && memcmp(g_frames[0].data, "abc", 3) == 0);
        }
        CHECK_EQ_INT(wsr_client_queued_bytes(w.c), 0);
    }
    world_free(&w);
}

TEST(subprotocol_from_101) {
    world w;
    world_cfg(&w, NULL);
    w.cfg.subprotocols = "v2.chat, v1.chat";
    if (!world_new(&w)) { CHECK(0); return; }
    w.t->connected = 1;
    wsr_client_step(w.c, 1);
    CHECK(feed_101(w.t, "v1.chat"));
    wsr_client_step(w.c, 2);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_OPEN);
    CHECK_EQ_STR(w.r.subprotocol, "v1.chat");
    world_free(&w);
}

TEST(connect_timeout_exact) {
    world w;
    world_cfg(&w, NULL);
    w.cfg.connect_timeout_ms = 500;
    if (!world_new(&w)) { CHECK(0); return; }
    wsr_client_step(w.c, 1000);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CONNECTING);
    CHECK_EQ_INT(wsr_client_timeout_ms(w.c, 1000), 500);
    CHECK_EQ_INT(wsr_client_timeout_ms(w.c, 1300), 200);
    wsr_client_step(w.c, 1300);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CONNECTING);
    wsr_client_step(w.c, 1499);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CONNECTING);
    CHECK_EQ_INT(wsr_client_timeout_ms(w.c, 1499), 1);
    CHECK_EQ_INT(w.r.closes, 0);
    CHECK_EQ_INT(wsr_client_step(w.c, 1500), WSR_ERR_TIMEOUT);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w.r.closes, 1);
    CHECK_EQ_INT(w.r.why.code, WSR_ERR_TIMEOUT);
    CHECK_EQ_INT(w.r.why.transient, 1);
    CHECK_EQ_INT(w.r.why.close_code, 1006);
    CHECK(w.r.why.message[0] != '\0');
    CHECK_EQ_INT(w.r.state_in_close, WSR_STATE_CLOSED);
    CHECK_EQ_INT(wsr_client_error(w.c)->code, WSR_ERR_TIMEOUT);
    CHECK(w.t->close_calls >= 1);
    CHECK_EQ_INT(w.t->out_len, 0);
    CHECK_EQ_INT(wsr_client_timeout_ms(w.c, 1500), -1);
    /* A closed client stays closed and quiet. */
    wsr_client_step(w.c, 100000);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w.r.closes, 1);
    CHECK_EQ_INT(w.t->open_calls, 1);
    CHECK_EQ_INT(w.r.nstates, 2);                /* IDLE->CONNECTING->CLOSED */
    CHECK(w.r.to[1] == WSR_STATE_CLOSED);
    world_free(&w);
}

/* The connect timeout covers TCP connect and upgrade together. */
TEST(handshake_timeout_counts_from_start) {
    world w;
    world_cfg(&w, NULL);
    w.cfg.connect_timeout_ms = 500;
    if (!world_new(&w)) { CHECK(0); return; }
    wsr_client_step(w.c, 1000);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CONNECTING);
    w.t->connected = 1;
    wsr_client_step(w.c, 1200);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_HANDSHAKE);
    CHECK(request_len(w.t) > 0);
    CHECK_EQ_INT(wsr_client_timeout_ms(w.c, 1200), 300);
    wsr_client_step(w.c, 1499);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_HANDSHAKE);
    CHECK_EQ_INT(w.r.closes, 0);
    CHECK_EQ_INT(wsr_client_step(w.c, 1500), WSR_ERR_TIMEOUT);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w.r.closes, 1);
    CHECK_EQ_INT(w.r.why.code, WSR_ERR_TIMEOUT);
    CHECK_EQ_INT(w.r.why.transient, 1);
    CHECK_EQ_INT(w.r.why.close_code, 1006);
    CHECK_EQ_INT(w.r.opens, 0);
    CHECK(w.t->close_calls >= 1);
    world_free(&w);
}

/* Our close is written as a close frame; a peer that never answers is given
   up on after close_timeout_ms: no close frame came back, so 1006. */
TEST(close_timeout_when_peer_silent) {
    world w;
    size_t before;
    int n;
    world_cfg(&w, NULL);
    w.cfg.close_timeout_ms = 700;
    if (!world_new(&w)) { CHECK(0); return; }
    CHECK(world_open(&w, 1000));
    before = w.t->out_len;
    CHECK_EQ_INT(wsr_client_close(w.c, 1000, "bye"), WSR_OK);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CLOSING);
    CHECK_EQ_INT(wsr_client_timeout_ms(w.c, 2000), 0);   /* the next step has work: write the close */
    CHECK_EQ_INT(wsr_send_text(w.c, "late", 4), WSR_ERR_STATE);
    wsr_client_step(w.c, 2000);
    n = frames_after(w.t, before, g_frames, 64);
    CHECK_EQ_INT(n, 1);
    if (n == 1) {
        CHECK_EQ_INT(g_frames[0].opcode, WSR_OP_CLOSE);
        CHECK(g_frames[0].fin && g_frames[0].masked);
        CHECK_EQ_INT(g_frames[0].len, 5);
        CHECK(g_frames[0].data[0] == 0x03 && g_frames[0].data[1] == 0xE8);   /* 1000 */
        CHECK_MEM(g_frames[0].data + 2, "bye", 3);
    }
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CLOSING);
    CHECK_EQ_INT(wsr_client_timeout_ms(w.c, 2000), 700);
    CHECK_EQ_INT(wsr_client_timeout_ms(w.c, 2600), 100);
    wsr_client_step(w.c, 2699);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CLOSING);
    CHECK_EQ_INT(w.r.closes, 0);
    wsr_client_step(w.c, 2700);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w.r.closes, 1);
    CHECK_EQ_INT(w.r.why.code, WSR_ERR_TIMEOUT);
    CHECK_EQ_INT(w.r.why.close_code, 1006);
    CHECK(w.t->close_calls >= 1);
    /* nothing else was written after the close frame */
    CHECK_EQ_INT(frames_after(w.t, before, g_frames, 64), 1);
    CHECK_EQ_INT(wsr_client_close(w.c, 1000, NULL), WSR_ERR_STATE);
    world_free(&w);
}

/* The normal ending of our close: the server echoes it, then closes TCP. */
TEST(close_handshake_completes) {
    world w;
    world_cfg(&w, NULL);
    if (!world_new(&w)) { CHECK(0); return; }
    CHECK(world_open(&w, 1000));
    CHECK_EQ_INT(wsr_client_close(w.c, 1000, "bye"), WSR_OK);
    wsr_client_step(w.c, 1001);
    ft_feed_close(w.t, 1000, "bye");
    wsr_client_step(w.c, 1002);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CLOSING);   /* waits for the server to close TCP */
    w.t->read_err = WSR_ERR_EOF;
    wsr_client_step(w.c, 1003);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w.r.closes, 1);
    CHECK_EQ_INT(w.r.why.code, WSR_ERR_CLOSED);
    CHECK_EQ_INT(w.r.why.close_code, 1000);
    CHECK_EQ_INT(w.t->io_after_close, 0);
    wsr_client_step(w.c, 1004);
    CHECK_EQ_INT(w.r.closes, 1);
    world_free(&w);
}

/* We closed, but the server dropped TCP without ever sending a close frame:
   the connection close code is 1006 (§7.1.5), not the code we sent. */
TEST(close_then_eof_without_close_frame) {
    world w;
    world_cfg(&w, NULL);
    if (!world_new(&w)) { CHECK(0); return; }
    CHECK(world_open(&w, 1000));
    CHECK_EQ_INT(wsr_client_close(w.c, 1000, NULL), WSR_OK);
    wsr_client_step(w.c, 1001);
    w.t->read_err = WSR_ERR_EOF;
    wsr_client_step(w.c, 1002);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w.r.closes, 1);
    CHECK_EQ_INT(w.r.why.close_code, 1006);
    world_free(&w);
}

TEST(server_initiated_close) {
    world w;
    size_t before;
    int n;
    world_cfg(&w, NULL);
    if (!world_new(&w)) { CHECK(0); return; }
    CHECK(world_open(&w, 1000));
    before = w.t->out_len;
    ft_feed_close(w.t, 1001, "going away");
    wsr_client_step(w.c, 1001);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CLOSING);
    /* The echo went out in the same step, with the server's code. */
    n = frames_after(w.t, before, g_frames, 64);
    CHECK_EQ_INT(n, 1);
    if (n == 1) {
        CHECK_EQ_INT(g_frames[0].opcode, WSR_OP_CLOSE);
        CHECK(g_frames[0].masked);
        CHECK(g_frames[0].len >= 2 && g_frames[0].data[0] == 0x03 && g_frames[0].data[1] == 0xE9);
    }
    CHECK_EQ_INT(wsr_send_text(w.c, "x", 1), WSR_ERR_STATE);
    CHECK_EQ_INT(wsr_send_ping(w.c, "x", 1), WSR_ERR_STATE);
    w.t->read_err = WSR_ERR_EOF;
    wsr_client_step(w.c, 1002);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w.r.closes, 1);
    CHECK_EQ_INT(w.r.why.code, WSR_ERR_PEER_CLOSED);
    CHECK_EQ_INT(w.r.why.close_code, 1001);
    CHECK_EQ_STR(w.r.why.close_reason, "going away");
    CHECK_EQ_INT(w.r.why.transient, 1);
    world_free(&w);
}

/* A server that sends its close and never closes TCP: the client closes it
   after close_timeout_ms, and still reports the server's close. */
TEST(server_close_then_silence) {
    world w;
    world_cfg(&w, NULL);
    w.cfg.close_timeout_ms = 300;
    if (!world_new(&w)) { CHECK(0); return; }
    CHECK(world_open(&w, 1000));
    ft_feed_close(w.t, 1000, NULL);
    wsr_client_step(w.c, 5000);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CLOSING);
    CHECK_EQ_INT(wsr_client_timeout_ms(w.c, 5000), 300);
    wsr_client_step(w.c, 5299);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CLOSING);
    wsr_client_step(w.c, 5300);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w.r.closes, 1);
    CHECK_EQ_INT(w.r.why.code, WSR_ERR_PEER_CLOSED);
    CHECK_EQ_INT(w.r.why.close_code, 1000);
    CHECK_EQ_INT(w.r.why.transient, 1);      /* a server's 1000 is worth another connection */
    world_free(&w);
}

TEST(messages_before_open_follow_request_in_order) {
    world w;
    size_t hl;
    int n;
    unsigned char bin[300];
    size_t i;
    for (i = 0; i < sizeof bin; i++) bin[i] = (unsigned char)(i * 7 + 3);
    world_cfg(&w, NULL);
    if (!world_new(&w)) { CHECK(0); return; }
    CHECK_EQ_INT(wsr_send_text(w.c, "one", 3), WSR_OK);                 /* IDLE */
    wsr_client_step(w.c, 10);                                             /* CONNECTING */
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CONNECTING);
    CHECK_EQ_INT(wsr_send_binary(w.c, bin, sizeof bin), WSR_OK);
    CHECK_EQ_INT(wsr_client_queued_bytes(w.c), 3 + sizeof bin);
    w.t->connected = 1;
    wsr_client_step(w.c, 20);                                             /* HANDSHAKE */
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_HANDSHAKE);
    CHECK_EQ_INT(wsr_send_text(w.c, "three", 5), WSR_OK);
    CHECK_EQ_INT(wsr_send_text(w.c, "", 0), WSR_OK);
    hl = request_len(w.t);
    CHECK(hl > 0);
    CHECK_EQ_INT(w.t->out_len, hl);              /* only the request so far */
    CHECK(feed_101(w.t, NULL));
    wsr_client_step(w.c, 30);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_OPEN);
    CHECK_EQ_INT(wsr_send_text(w.c, "five", 4), WSR_OK);                /* OPEN: after the queue */
    wsr_client_step(w.c, 40);
    n = frames_after(w.t, hl, g_frames, 64);
    CHECK_EQ_INT(n, 5);
    if (n == 5) {
        CHECK(g_frames[0].opcode == WSR_OP_TEXT && g_frames[0].len == 3 && !memcmp(g_frames[0].data, "one", 3));
        CHECK(g_frames[1].opcode == WSR_OP_BINARY && g_frames[1].len == sizeof bin &&
              !memcmp(g_frames[1].data, bin, sizeof bin));
        CHECK(g_frames[2].opcode == WSR_OP_TEXT && g_frames[2].len == 5 && !memcmp(g_frames[2].data, "three", 5));
        CHECK(g_frames[3].opcode == WSR_OP_TEXT && g_frames[3].len == 0);
        CHECK(g_frames[4].opcode == WSR_OP_TEXT && g_frames[4].len == 4 && !memcmp(g_frames[4].data, "five", 4));
        for (i = 0; i < 5; i++) CHECK(g_frames[i].fin && g_frames[i].masked);
    }
    CHECK_EQ_INT(wsr_client_queued_bytes(w.c), 0);
    world_free(&w);
}

TEST(queue_max_bytes) {
    world w;
    world_cfg(&w, NULL);
    w.cfg.queue_max_bytes = 100;
    if (!world_new(&w)) { CHECK(0); return; }
    {
        char buf[200];
        memset(buf, 'q', sizeof buf);
        CHECK_EQ_INT(wsr_send_text(w.c, buf, 101), WSR_ERR_QUEUE_FULL);   /* alone over the limit */
        CHECK_EQ_INT(wsr_send_text(w.c, buf, 60), WSR_OK);
        CHECK_EQ_INT(wsr_send_text(w.c, buf, 50), WSR_ERR_QUEUE_FULL);
        CHECK_EQ_INT(wsr_client_queued_bytes(w.c), 60);                   /* the refused one is not kept */
        CHECK_EQ_INT(wsr_send_text(w.c, buf, 40), WSR_OK);                /* exactly at the limit */
        CHECK_EQ_INT(wsr_send_text(w.c, buf, 1), WSR_ERR_QUEUE_FULL);
        CHECK_EQ_INT(wsr_client_queued_bytes(w.c), 100);
        /* Open, but the socket takes nothing: the frames wait and still count. */
        w.t->write_block = 0;
        CHECK(world_open(&w, 1000));
        CHECK_EQ_INT(wsr_client_queued_bytes(w.c), 0);
        w.t->write_block = 1;
        CHECK_EQ_INT(wsr_send_text(w.c, buf, 90), WSR_OK);
        wsr_client_step(w.c, 1001);
        CHECK(wsr_client_queued_bytes(w.c) >= 90);
        CHECK_EQ_INT(wsr_send_text(w.c, buf, 20), WSR_ERR_QUEUE_FULL);
        w.t->write_block = 0;
        wsr_client_step(w.c, 1002);
        CHECK_EQ_INT(wsr_client_queued_bytes(w.c), 0);
        CHECK_EQ_INT(wsr_send_text(w.c, buf, 20), WSR_OK);
    }
    world_free(&w);
}

/* A transport that takes one byte per write call, and one that takes one
   byte and then says "would block": everything still goes out whole. */
static void one_byte_writes(int alternate) {
    world w;
    size_t hl;
    int n, steps;
    unsigned char big[3000];
    size_t i;
    for (i = 0; i < sizeof big; i++) big[i] = (unsigned char)(i ^ (i >> 8));
    world_cfg(&w, NULL);
    w.cfg.headers = "X-Test: one byte at a time\r\n";
    if (!world_new(&w)) { CHECK(0); return; }
    w.t->write_max = 1;
    w.t->write_alternate = alternate;
    CHECK_EQ_INT(wsr_send_text(w.c, "queued", 6), WSR_OK);
    w.t->connected = 1;
    for (steps = 0; steps < 2000 && !(request_len(w.t) > 0); steps++) wsr_client_step(w.c, 1000 + (uint64_t)steps / 100);
    hl = request_len(w.t);
    CHECK(hl > 0);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_HANDSHAKE);
    if (!alternate) CHECK(w.t->write_calls >= (int)hl);
    CHECK(feed_101(w.t, NULL));
    CHECK_EQ_INT(wsr_send_binary(w.c, big, sizeof big), WSR_OK);
    for (steps = 0; steps < 20000 && (wsr_client_state(w.c) != WSR_STATE_OPEN || wsr_client_queued_bytes(w.c) > 0); steps++)
        wsr_client_step(w.c, 1100 + (uint64_t)steps / 100);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_OPEN);
    CHECK_EQ_INT(wsr_client_queued_bytes(w.c), 0);
    n = frames_after(w.t, hl, g_frames, 64);
    CHECK_EQ_INT(n, 2);
    if (n == 2) {
        CHECK(g_frames[0].opcode == WSR_OP_TEXT && g_frames[0].len == 6 && !memcmp(g_frames[0].data, "queued", 6));
        CHECK(g_frames[1].opcode == WSR_OP_BINARY && g_frames[1].len == sizeof big &&
              !memcmp(g_frames[1].data, big, sizeof big));
    }
    {
        wsr_request req;
        CHECK(parse_request(w.t, &req));
        CHECK(strstr((const char *)w.t->out, "X-Test: one byte at a time\r\n") != NULL);
    }
    world_free(&w);
}

TEST(one_byte_writes) { one_byte_writes(0); }
TEST(one_byte_writes_with_would_block) { one_byte_writes(1); }

/* The server's bytes arrive one at a time: same result. */
TEST(one_byte_reads) {
    world w;
    world_cfg(&w, NULL);
    if (!world_new(&w)) { CHECK(0); return; }
    w.t->read_max = 1;
    w.t->connected = 1;
    wsr_client_step(w.c, 1);
    CHECK(feed_101(w.t, NULL));
    ft_feed_frame(w.t, 0, WSR_OP_TEXT, "frag", 4);
    ft_feed_frame(w.t, 1, WSR_OP_PING, "p", 1);
    ft_feed_frame(w.t, 1, WSR_OP_CONTINUATION, "mented", 6);
    {
        int steps;
        for (steps = 0; steps < 1000 && w.r.messages == 0; steps++) wsr_client_step(w.c, 2);
    }
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_OPEN);
    CHECK_EQ_INT(w.r.messages, 1);
    CHECK(w.r.msg_len == 10 && memcmp(w.r.msg, "fragmented", 10) == 0);
    world_free(&w);
}

TEST(read_error_ends_connection_once) {
    world w;
    world_cfg(&w, NULL);
    if (!world_new(&w)) { CHECK(0); return; }
    CHECK(world_open(&w, 1000));
    w.t->read_err = WSR_ERR_RESET;
    w.t->read_err_detail.os_error = ECONNRESET;
    w.t->read_err_detail.transient = 1;
    snprintf(w.t->read_err_detail.message, sizeof w.t->read_err_detail.message, "recv: connection reset");
    CHECK_EQ_INT(wsr_client_step(w.c, 1001), WSR_ERR_RESET);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w.r.closes, 1);
    CHECK_EQ_INT(w.r.why.code, WSR_ERR_RESET);
    CHECK_EQ_INT(w.r.why.transient, 1);
    CHECK_EQ_INT(w.r.why.os_error, ECONNRESET);
    CHECK_EQ_INT(w.r.why.close_code, 1006);
    CHECK_EQ_STR(w.r.why.message, "recv: connection reset");
    CHECK_EQ_INT(wsr_client_error(w.c)->code, WSR_ERR_RESET);
    CHECK_EQ_INT(wsr_client_error(w.c)->close_code, 1006);
    CHECK_EQ_INT(w.r.state_in_close, WSR_STATE_CLOSED);
    CHECK(w.t->close_calls >= 1);
    /* More steps, a close and a send: no second on_close, no I/O. */
    wsr_client_step(w.c, 1002);
    wsr_client_step(w.c, 90000);
    CHECK_EQ_INT(wsr_client_close(w.c, 1000, NULL), WSR_ERR_STATE);
    CHECK_EQ_INT(wsr_send_text(w.c, "x", 1), WSR_ERR_STATE);
    CHECK_EQ_INT(w.r.closes, 1);
    CHECK_EQ_INT(w.t->io_after_close, 0);
    CHECK_EQ_INT(w.t->open_calls, 1);
    world_free(&w);
}

TEST(write_error_ends_connection_once) {
    world w;
    world_cfg(&w, NULL);
    if (!world_new(&w)) { CHECK(0); return; }
    CHECK(world_open(&w, 1000));
    w.t->write_err = WSR_ERR_RESET;
    CHECK_EQ_INT(wsr_send_text(w.c, "x", 1), WSR_OK);
    CHECK_EQ_INT(wsr_client_step(w.c, 1001), WSR_ERR_RESET);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w.r.closes, 1);
    CHECK_EQ_INT(w.r.why.code, WSR_ERR_RESET);
    CHECK_EQ_INT(w.r.why.os_error, EPIPE);
    CHECK_EQ_INT(w.r.why.transient, 1);
    CHECK_EQ_INT(w.r.why.close_code, 1006);
    wsr_client_step(w.c, 1002);
    CHECK_EQ_INT(w.r.closes, 1);
    world_free(&w);
}

TEST(eof_while_open) {
    world w;
    world_cfg(&w, NULL);
    if (!world_new(&w)) { CHECK(0); return; }
    CHECK(world_open(&w, 1000));
    w.t->read_err = WSR_ERR_EOF;
    wsr_client_step(w.c, 1001);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w.r.closes, 1);
    CHECK_EQ_INT(w.r.why.code, WSR_ERR_EOF);
    CHECK_EQ_INT(w.r.why.transient, 1);
    CHECK_EQ_INT(w.r.why.close_code, 1006);
    world_free(&w);
}

TEST(ping_answered_in_same_step) {
    world w;
    size_t before;
    int n;
    world_cfg(&w, NULL);
    if (!world_new(&w)) { CHECK(0); return; }
    CHECK(world_open(&w, 1000));
    before = w.t->out_len;
    ft_feed_frame(w.t, 1, WSR_OP_PING, "are you there", 13);
    wsr_client_step(w.c, 1001);
    n = frames_after(w.t, before, g_frames, 64);
    CHECK_EQ_INT(n, 1);
    if (n == 1) {
        CHECK_EQ_INT(g_frames[0].opcode, WSR_OP_PONG);
        CHECK(g_frames[0].fin && g_frames[0].masked);
        CHECK(g_frames[0].len == 13 && memcmp(g_frames[0].data, "are you there", 13) == 0);
    }
    CHECK_EQ_INT(w.r.messages, 0);
    CHECK_EQ_INT(w.r.pongs, 0);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_OPEN);
    /* An empty ping gets an empty pong. */
    before = w.t->out_len;
    ft_feed_frame(w.t, 1, WSR_OP_PING, NULL, 0);
    wsr_client_step(w.c, 1002);
    n = frames_after(w.t, before, g_frames, 64);
    CHECK_EQ_INT(n, 1);
    if (n == 1) CHECK(g_frames[0].opcode == WSR_OP_PONG && g_frames[0].len == 0);
    world_free(&w);
}

TEST(ping_from_client_and_pong) {
    world w;
    size_t before;
    int n;
    char big[126];
    world_cfg(&w, NULL);
    if (!world_new(&w)) { CHECK(0); return; }
    CHECK_EQ_INT(wsr_send_ping(w.c, "x", 1), WSR_ERR_STATE);   /* only while OPEN */
    CHECK(world_open(&w, 1000));
    memset(big, 'b', sizeof big);
    CHECK_EQ_INT(wsr_send_ping(w.c, big, 126), WSR_ERR_INVALID);
    before = w.t->out_len;
    CHECK_EQ_INT(wsr_send_ping(w.c, "tick", 4), WSR_OK);
    wsr_client_step(w.c, 1001);
    n = frames_after(w.t, before, g_frames, 64);
    CHECK_EQ_INT(n, 1);
    if (n == 1) CHECK(g_frames[0].opcode == WSR_OP_PING && g_frames[0].len == 4 && !memcmp(g_frames[0].data, "tick", 4));
    ft_feed_frame(w.t, 1, WSR_OP_PONG, "tick", 4);
    wsr_client_step(w.c, 1002);
    CHECK_EQ_INT(w.r.pongs, 1);
    CHECK(w.r.pong_len == 4 && memcmp(w.r.pong, "tick", 4) == 0);
    world_free(&w);
}

TEST(timeout_ms_reports_remaining_time) {
    world w;
    world_cfg(&w, NULL);
    w.cfg.connect_timeout_ms = 2000;
    w.cfg.close_timeout_ms = 900;
    if (!world_new(&w)) { CHECK(0); return; }
    CHECK_EQ_INT(wsr_client_timeout_ms(w.c, 0), 0);              /* IDLE: start at once */
    wsr_client_step(w.c, 10000);
    CHECK_EQ_INT(wsr_client_timeout_ms(w.c, 10000), 2000);
    CHECK_EQ_INT(wsr_client_timeout_ms(w.c, 10750), 1250);
    CHECK_EQ_INT(wsr_client_timeout_ms(w.c, 11999), 1);
    CHECK_EQ_INT(wsr_client_timeout_ms(w.c, 12000), 0);
    CHECK_EQ_INT(wsr_client_timeout_ms(w.c, 99999), 0);          /* overdue: 0, never negative */
    w.t->connected = 1;
    wsr_client_step(w.c, 10500);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_HANDSHAKE);
    CHECK_EQ_INT(wsr_client_timeout_ms(w.c, 10500), 1500);       /* same deadline */
    CHECK(feed_101(w.t, NULL));
    wsr_client_step(w.c, 10600);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_OPEN);
    CHECK_EQ_INT(wsr_client_timeout_ms(w.c, 10600), -1);         /* no timer while open */
    CHECK_EQ_INT(wsr_client_close(w.c, 1000, NULL), WSR_OK);
    CHECK_EQ_INT(wsr_client_timeout_ms(w.c, 10700), 0);
    wsr_client_step(w.c, 10700);
    CHECK_EQ_INT(wsr_client_timeout_ms(w.c, 10700), 900);
    CHECK_EQ_INT(wsr_client_timeout_ms(w.c, 11000), 600);
    wsr_client_step(w.c, 11600);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(wsr_client_timeout_ms(w.c, 11600), -1);
    world_free(&w);
}

/* wsr_client_close before the connection is open: stop at once, nothing more
   is written, on_close once. */
TEST(close_before_open_in_handshake) {
    world w;
    size_t written;
    world_cfg(&w, NULL);
    if (!world_new(&w)) { CHECK(0); return; }
    CHECK_EQ_INT(wsr_send_text(w.c, "never", 5), WSR_OK);
    w.t->connected = 1;
    wsr_client_step(w.c, 100);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_HANDSHAKE);
    written = w.t->out_len;
    CHECK_EQ_INT(written, request_len(w.t));
    CHECK_EQ_INT(wsr_client_close(w.c, 1000, "changed my mind"), WSR_OK);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w.r.closes, 1);
    CHECK_EQ_INT(w.r.why.code, WSR_ERR_CLOSED);
    CHECK_EQ_INT(w.r.opens, 0);
    CHECK(w.t->close_calls >= 1);
    /* Even if the 101 shows up now, nothing opens and nothing is written. */
    CHECK(feed_101(w.t, NULL));
    wsr_client_step(w.c, 101);
    wsr_client_step(w.c, 60000);
    CHECK_EQ_INT(w.t->out_len, written);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w.r.closes, 1);
    CHECK_EQ_INT(w.r.opens, 0);
    CHECK_EQ_INT(w.t->open_calls, 1);
    CHECK_EQ_INT(w.t->io_after_close, 0);
    CHECK_EQ_INT(wsr_send_text(w.c, "x", 1), WSR_ERR_STATE);
    CHECK_EQ_INT(wsr_client_close(w.c, 1000, NULL), WSR_ERR_STATE);
    world_free(&w);
}

TEST(close_before_open_in_connecting) {
    world w;
    world_cfg(&w, NULL);
    if (!world_new(&w)) { CHECK(0); return; }
    wsr_client_step(w.c, 100);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CONNECTING);
    CHECK_EQ_INT(wsr_client_close(w.c, 1001, NULL), WSR_OK);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w.r.closes, 1);
    CHECK_EQ_INT(w.r.why.code, WSR_ERR_CLOSED);
    w.t->connected = 1;
    wsr_client_step(w.c, 200);
    CHECK_EQ_INT(w.t->out_len, 0);
    CHECK_EQ_INT(w.r.closes, 1);
    CHECK_EQ_INT(w.t->open_calls, 1);
    world_free(&w);
}

TEST(close_before_first_step) {
    world w;
    world_cfg(&w, NULL);
    if (!world_new(&w)) { CHECK(0); return; }
    CHECK_EQ_INT(wsr_client_close(w.c, 1000, NULL), WSR_OK);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w.r.closes, 0);   /* no attempt started: no on_close */
    CHECK_EQ_INT(w.r.nstates, 1);
    CHECK(w.r.from[0] == WSR_STATE_IDLE && w.r.to[0] == WSR_STATE_CLOSED);
    CHECK_EQ_INT(wsr_client_error(w.c)->code, WSR_ERR_CLOSED);
    CHECK_EQ_INT(wsr_send_text(w.c, "x", 1), WSR_ERR_STATE);
    wsr_client_step(w.c, 1);
    wsr_client_step(w.c, 2);
    CHECK_EQ_INT(w.t->open_calls, 0);            /* never started */
    CHECK_EQ_INT(w.t->out_len, 0);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w.r.closes, 0);   /* no attempt started: no on_close */
    world_free(&w);
}

TEST(close_arguments_checked) {
    world w;
    char longr[200];
    world_cfg(&w, NULL);
    if (!world_new(&w)) { CHECK(0); return; }
    CHECK(world_open(&w, 1));
    memset(longr, 'r', sizeof longr);
    longr[124] = '\0';
    CHECK_EQ_INT(wsr_client_close(w.c, 1005, NULL), WSR_ERR_INVALID);
    CHECK_EQ_INT(wsr_client_close(w.c, 999, NULL), WSR_ERR_INVALID);
    CHECK_EQ_INT(wsr_client_close(w.c, 1000, longr), WSR_ERR_INVALID);     /* 124 bytes */
    CHECK_EQ_INT(wsr_client_close(w.c, 1000, "\xff"), WSR_ERR_INVALID);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_OPEN);                   /* refused closes change nothing */
    longr[123] = '\0';
    CHECK_EQ_INT(wsr_client_close(w.c, 4000, longr), WSR_OK);
    CHECK_EQ_INT(wsr_client_close(w.c, 1000, NULL), WSR_ERR_STATE);
    world_free(&w);
}

TEST(fragmented_send) {
    world w;
    size_t before;
    int n, i;
    unsigned char msg[2500];
    for (i = 0; i < 2500; i++) msg[i] = (unsigned char)('a' + i % 26);
    world_cfg(&w, NULL);
    w.cfg.send_fragment_size = 1000;
    if (!world_new(&w)) { CHECK(0); return; }
    CHECK(world_open(&w, 1));
    before = w.t->out_len;
    CHECK_EQ_INT(wsr_send_text(w.c, (const char *)msg, sizeof msg), WSR_OK);
    wsr_client_step(w.c, 2);
    n = frames_after(w.t, before, g_frames, 64);
    CHECK_EQ_INT(n, 3);
    if (n == 3) {
        CHECK(g_frames[0].opcode == WSR_OP_TEXT && !g_frames[0].fin && g_frames[0].len == 1000);
        CHECK(g_frames[1].opcode == WSR_OP_CONTINUATION && !g_frames[1].fin && g_frames[1].len == 1000);
        CHECK(g_frames[2].opcode == WSR_OP_CONTINUATION && g_frames[2].fin && g_frames[2].len == 500);
        CHECK_MEM(g_frames[0].data, msg, 1000);
        CHECK_MEM(g_frames[1].data, msg + 1000, 1000);
        CHECK_MEM(g_frames[2].data, msg + 2000, 500);
    }
    world_free(&w);
}

TEST(handshake_refused_404) {
    world w;
    const char *resp = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    world_cfg(&w, NULL);
    if (!world_new(&w)) { CHECK(0); return; }
    w.t->connected = 1;
    wsr_client_step(w.c, 1);
    ft_feed(w.t, resp, strlen(resp));
    CHECK_EQ_INT(wsr_client_step(w.c, 2), WSR_ERR_HANDSHAKE);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w.r.closes, 1);
    CHECK_EQ_INT(w.r.why.code, WSR_ERR_HANDSHAKE);
    CHECK_EQ_INT(w.r.why.http_status, 404);
    CHECK_EQ_INT(w.r.why.transient, 0);
    CHECK_EQ_INT(w.r.opens, 0);
    world_free(&w);
}

TEST(handshake_wrong_accept_key) {
    world w;
    char resp[512];
    size_t n = 0;
    world_cfg(&w, NULL);
    if (!world_new(&w)) { CHECK(0); return; }
    w.t->connected = 1;
    wsr_client_step(w.c, 1);
    CHECK_EQ_INT(wsr_handshake_response(resp, sizeof resp, &n, "dGhlIHNhbXBsZSBub25jZQ==", 24, NULL), WSR_OK);
    ft_feed(w.t, resp, n);
    wsr_client_step(w.c, 2);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w.r.why.code, WSR_ERR_HANDSHAKE);
    CHECK_EQ_INT(w.r.opens, 0);
    world_free(&w);
}

TEST(eof_during_handshake) {
    world w;
    world_cfg(&w, NULL);
    if (!world_new(&w)) { CHECK(0); return; }
    w.t->connected = 1;
    wsr_client_step(w.c, 1);
    w.t->read_err = WSR_ERR_EOF;
    wsr_client_step(w.c, 2);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w.r.closes, 1);
    CHECK_EQ_INT(w.r.why.code, WSR_ERR_HANDSHAKE);
    CHECK_EQ_INT(w.r.why.transient, 1);
    CHECK_EQ_INT(w.r.why.close_code, 1006);
    world_free(&w);
}

TEST(open_failure_reported) {
    world w;
    world_cfg(&w, NULL);
    if (!world_new(&w)) { CHECK(0); return; }
    w.t->open_result = WSR_ERR_DNS;
    CHECK_EQ_INT(wsr_client_step(w.c, 1), WSR_ERR_DNS);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w.r.closes, 1);
    CHECK_EQ_INT(w.r.why.code, WSR_ERR_DNS);
    CHECK_EQ_INT(w.r.why.close_code, 1006);
    CHECK_EQ_INT(w.r.opens, 0);
    world_free(&w);
}

/* 101 and the first frames in one read: the frames are not lost. */
TEST(frames_in_same_read_as_101) {
    world w;
    world_cfg(&w, NULL);
    if (!world_new(&w)) { CHECK(0); return; }
    w.t->connected = 1;
    wsr_client_step(w.c, 1);
    CHECK(feed_101(w.t, NULL));
    ft_feed_frame(w.t, 1, WSR_OP_BINARY, "\x01\x02\x03", 3);
    wsr_client_step(w.c, 2);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_OPEN);
    CHECK_EQ_INT(w.r.messages, 1);
    CHECK_EQ_INT(w.r.msg_type, WSR_MSG_BINARY);
    CHECK(w.r.msg_len == 3 && memcmp(w.r.msg, "\x01\x02\x03", 3) == 0);
    world_free(&w);
}

TEST(masked_frame_from_server_fails_1002) {
    world w;
    size_t before;
    int n;
    unsigned char fr[16];
    size_t h;
    unsigned char key[4] = {1, 2, 3, 4};
    world_cfg(&w, NULL);
    if (!world_new(&w)) { CHECK(0); return; }
    CHECK(world_open(&w, 1));
    before = w.t->out_len;
    h = wsr_frame_header(fr, 1, WSR_OP_TEXT, 2, key);
    fr[h] = 'h' ^ 1; fr[h + 1] = 'i' ^ 2;
    ft_feed(w.t, fr, h + 2);
    CHECK_EQ_INT(wsr_client_step(w.c, 2), WSR_ERR_PROTOCOL);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w.r.closes, 1);
    CHECK_EQ_INT(w.r.why.code, WSR_ERR_PROTOCOL);
    CHECK_EQ_INT(w.r.why.close_code, 1002);
    CHECK_EQ_INT(w.r.messages, 0);
    n = frames_after(w.t, before, g_frames, 64);
    CHECK_EQ_INT(n, 1);
    if (n == 1) {
        CHECK_EQ_INT(g_frames[0].opcode, WSR_OP_CLOSE);
        CHECK(g_frames[0].len >= 2 && (g_frames[0].data[0] << 8 | g_frames[0].data[1]) == 1002);
    }
    world_free(&w);
}

TEST(too_big_message_fails_1009) {
    world w;
    size_t before;
    int n;
    static unsigned char big[2000];
    world_cfg(&w, NULL);
    w.cfg.max_message_size = 1000;
    if (!world_new(&w)) { CHECK(0); return; }
    CHECK(world_open(&w, 1));
    before = w.t->out_len;
    ft_feed_frame(w.t, 1, WSR_OP_BINARY, big, 1000);                /* at the limit: fine */
    wsr_client_step(w.c, 2);
    CHECK_EQ_INT(w.r.messages, 1);
    CHECK_EQ_INT(w.r.msg_len, 1000);
    ft_feed_frame(w.t, 1, WSR_OP_BINARY, big, 1001);
    wsr_client_step(w.c, 3);
    CHECK_EQ_INT(wsr_client_state(w.c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w.r.messages, 1);
    CHECK_EQ_INT(w.r.why.code, WSR_ERR_TOO_BIG);
    CHECK_EQ_INT(w.r.why.close_code, 1009);
    n = frames_after(w.t, before, g_frames, 64);
    CHECK_EQ_INT(n, 1);
    if (n == 1) CHECK(g_frames[0].opcode == WSR_OP_CLOSE && (g_frames[0].data[0] << 8 | g_frames[0].data[1]) == 1009);
    world_free(&w);
}

/* Free in every state without a crash or a leak (valgrind checks the leak). */
TEST(free_in_every_state) {
    world w;
    world_cfg(&w, NULL);
    if (world_new(&w)) world_free(&w); else CHECK(0);
    world_cfg(&w, NULL);
    if (world_new(&w)) { wsr_send_text(w.c, "q", 1); wsr_client_step(w.c, 1); world_free(&w); }
    world_cfg(&w, NULL);
    if (world_new(&w)) {
        CHECK(world_open(&w, 1));
        wsr_send_text(w.c, "q", 1);
        w.t->write_block = 1;
        wsr_send_text(w.c, "r", 1);
        wsr_client_step(w.c, 2);
        CHECK_EQ_INT(w.t->close_calls, 0);
        wsr_client_free(w.c);
        w.c = NULL;
        CHECK_EQ_INT(w.t->close_calls, 1);          /* free closes the transport */
        CHECK_EQ_INT(w.r.closes, 0);                /* without a callback */
        world_free(&w);
    }
    CHECK(1);
}

TEST_MAIN()
