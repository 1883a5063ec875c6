/* test_server.c - the server role against clients that are slow, silent,
   greedy, unauthorised or broken, over real sockets on 127.0.0.1 (port 0
   only). Peers are our own wsr_client or hand-written raw TCP clients, all
   in this process; the server and the clients are polled in turn until a
   condition holds or a deadline passes, so a bug fails a check instead of
   hanging. The graceful-shutdown test runs its clients on their own threads
   (wsr_server_shutdown blocks the calling thread while they answer).

   Every raw socket lives in RAW[] and is closed by raw_close_all() at the
   end of each test, whatever happened. Timings are checked with a lower
   bound (the deadline the configuration asks for) and a generous upper one;
   WSR_TEST_TIME_SCALE stretches the upper ones (valgrind). */
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include "wsr_test.h"

#include "wsr_test_sock.h"

static int time_scale(void) {
    const char *s = getenv("WSR_TEST_TIME_SCALE");
    int v = s ? atoi(s) : 1;
    return v > 0 ? v : 1;
}
/* The server's timers count from the time its poll woke up; our callbacks
   read the clock a moment later. Lower bounds measured from a callback's
   time allow this much. */
#define CLOCK_SKEW 2
/* An upper bound on a duration: ms, stretched by WSR_TEST_TIME_SCALE. */
#define SLACK(ms) ((uint64_t)(ms) * (uint64_t)time_scale())

static int pumped;
#define PUMP_UNTIL(cond, ms, POLLS)                                          \
    do {                                                                     \
        uint64_t pu_deadline_ = wsr_now_ms() + SLACK(ms);                    \
        pumped = 0;                                                          \
        while (!(pumped = !!(cond)) && wsr_now_ms() < pu_deadline_) { POLLS; } \
    } while (0)

/* Polls for `ms` milliseconds whatever happens. */
#define PUMP_FOR(ms, POLLS)                                                  \
    do {                                                                     \
        uint64_t pf_until_ = wsr_now_ms() + (uint64_t)(ms);                  \
        while (wsr_now_ms() < pf_until_) { POLLS; }                          \
    } while (0)

/* ---- the server's recorder ------------------------------------------------- */

/* One slot per connection that opened, chosen by "id=N" in its path (or the
   first free one); the slot is the connection's wsr_conn_user. */
#define NSLOTS 16
typedef struct slot {
    int opened, closes, messages;
    wsr_conn *conn;                /* valid from on_open until on_close */
    wsr_error why;                 /* what on_close said */
    uint64_t open_at, close_at;
    char path[128], sub[64];
    unsigned char last[64];
    size_t last_len;
} slot;

#define NERRS 16
typedef struct srec {
    slot slots[NSLOTS];
    int opens, closes, messages, errors;
    int echo;                      /* send every message back */
    wsr_error err[NERRS];          /* what on_error said, in order */
    uint64_t err_at[NERRS];
    int err_conn[NERRS];           /* 1 when on_error had a wsr_conn */
    int setsub_open, setsub_msg;   /* wsr_conn_set_subprotocol outside on_handshake */
} srec;

static int path_id(const char *p) {
    const char *q = strstr(p, "id=");
    return q ? atoi(q + 3) : -1;
}

static void s_open(wsr_conn *conn, void *user) {
    srec *r = (srec *)user;
    int id = path_id(wsr_conn_path(conn));
    slot *sl;
    r->opens++;
    if (id < 0 || id >= NSLOTS) {
        for (id = 0; id < NSLOTS && r->slots[id].opened; id++) {}
        if (id == NSLOTS) return;
    }
    sl = &r->slots[id];
    sl->opened++;
    sl->conn = conn;
    sl->open_at = wsr_now_ms();
    snprintf(sl->path, sizeof sl->path, "%s", wsr_conn_path(conn));
    snprintf(sl->sub, sizeof sl->sub, "%s", wsr_conn_subprotocol(conn));
    wsr_conn_set_user(conn, sl);
    r->setsub_open = (int)wsr_conn_set_subprotocol(conn, "late");
}

static void s_close(wsr_conn *conn, const wsr_error *why, void *user) {
    srec *r = (srec *)user;
    slot *sl = (slot *)wsr_conn_user(conn);
    r->closes++;
    if (sl) {
        sl->closes++;
        sl->why = *why;
        sl->close_at = wsr_now_ms();
        sl->conn = NULL;
    }
}

static void s_message(wsr_conn *conn, wsr_msg_type type, const void *data, size_t len, void *user) {
    srec *r = (srec *)user;
    slot *sl = (slot *)wsr_conn_user(conn);
    r->messages++;
    if (sl) {
        sl->messages++;
        sl->last_len = len < sizeof sl->last ? len : sizeof sl->last;
        memcpy(sl->last, data, sl->last_len);
    }
    r->setsub_msg = (int)wsr_conn_set_subprotocol(conn, "late");
    if (r->echo) wsr_conn_send(conn, type, data, len);
}

static void s_error(wsr_server *s, wsr_conn *conn, const wsr_error *why, void *user) {
    srec *r = (srec *)user;
    (void)s;
    if (r->errors < NERRS) {
        r->err[r->errors] = *why;
        r->err_at[r->errors] = wsr_now_ms();
        r->err_conn[r->errors] = conn != NULL;
    }
    r->errors++;
}

static wsr_server *server_new(srec *r, const wsr_server_config *cfg_or_null) {
    wsr_server_config cfg;
    wsr_error err;
    wsr_server *s;
    if (cfg_or_null) cfg = *cfg_or_null;
    else wsr_server_config_init(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.on_open = s_open;
    cfg.on_close = s_close;
    cfg.on_message = s_message;
    cfg.on_error = s_error;
    cfg.user = r;
    s = wsr_server_new(&cfg, &err);
    if (!s) printf("wsr_server_new: %s\n", err.message);
    return s;
}

/* ---- our client's recorder ------------------------------------------------- */

typedef struct crec {
    int opens, closes, ends, messages, reconnectings;
    int reconnect_delay;           /* delay_ms of the last on_reconnecting */
    char sub[64];
    wsr_error why, end_why;
    uint64_t open_at, close_at;
    char msgs[4][64];              /* the first four messages, NUL-terminated */
    /* Numbered binary messages (4-byte big-endian sequence number first):
       each must be the next one; latency from sent_at[seq]. */
    int seq_mode;
    uint32_t next_seq;
    int seq_errors;
    const uint64_t *sent_at;
    uint64_t max_latency;
} crec;

static void c_open(wsr_client *c, const char *sub, void *user) {
    crec *r = (crec *)user;
    (void)c;
    r->opens++;
    r->open_at = wsr_now_ms();
    snprintf(r->sub, sizeof r->sub, "%s", sub ? sub : "(null)");
}
static void c_close(wsr_client *c, const wsr_error *why, void *user) {
    crec *r = (crec *)user;
    (void)c;
    r->closes++;
    r->why = *why;
    r->close_at = wsr_now_ms();
}
static void c_end(wsr_client *c, const wsr_error *why, void *user) {
    crec *r = (crec *)user;
    (void)c;
    r->ends++;
    r->end_why = *why;
}
static int c_reconnecting(wsr_client *c, int attempt, int delay_ms, const wsr_error *cause, void *user) {
    crec *r = (crec *)user;
    (void)c; (void)attempt; (void)cause;
    r->reconnectings++;
    r->reconnect_delay = delay_ms;
    return 1;
}
static void c_message(wsr_client *c, wsr_msg_type type, const void *data, size_t len, void *user) {
    crec *r = (crec *)user;
    const unsigned char *p = (const unsigned char *)data;
    (void)c; (void)type;
    if (r->messages < 4) {
        size_t n = len < sizeof r->msgs[0] - 1 ? len : sizeof r->msgs[0] - 1;
        memcpy(r->msgs[r->messages], data, n);
        r->msgs[r->messages][n] = '\0';
    }
    r->messages++;
    if (r->seq_mode) {
        uint32_t seq = len >= 4 ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3] : 0xFFFFFFFFu;
        if (seq != r->next_seq) r->seq_errors++;
        else if (r->sent_at) {
            uint64_t lat = wsr_now_ms() - r->sent_at[seq];
            if (lat > r->max_latency) r->max_latency = lat;
        }
        r->next_seq = seq + 1;
    }
}

static wsr_client *client_new(crec *r, int port, const char *path, int reconnect, const char *subprotocols,
                              const char *headers) {
    wsr_client_config cfg;
    wsr_error err;
    wsr_client *c;
    char url[256];
    wsr_client_config_init(&cfg);
    snprintf(url, sizeof url, "ws://127.0.0.1:%d%s", port, path);
    cfg.url = url;
    cfg.subprotocols = subprotocols;
    cfg.headers = headers;
    cfg.reconnect = reconnect;
    cfg.on_open = c_open;
    cfg.on_close = c_close;
    cfg.on_end = c_end;
    cfg.on_message = c_message;
    cfg.on_reconnecting = c_reconnecting;
    cfg.user = r;
    c = wsr_client_new(&cfg, &err);
    if (!c) printf("wsr_client_new: %s\n", err.message);
    return c;
}

/* ---- raw TCP clients ---------------------------------------------------------- */

typedef struct raw {
    int fd;
    unsigned char buf[16384];      /* what arrived (more is counted, not kept) */
    size_t len, total;
    int eof;                       /* recv returned 0 */
    int err;                       /* recv failed with this errno */
    uint64_t end_at;               /* when eof or err was first seen */
} raw;

#define NRAW 8
static raw RAW[NRAW];

static void raw_reset_all(void) {
    int i;
    memset(RAW, 0, sizeof RAW);
    for (i = 0; i < NRAW; i++) RAW[i].fd = -1;
}
static void raw_close(raw *r) {
    if (r->fd >= 0) close(r->fd);
    r->fd = -1;
}
static void raw_close_all(void) {
    int i;
    for (i = 0; i < NRAW; i++) raw_close(&RAW[i]);
}

static void set_nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL, 0);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Connects (blocking; the kernel completes it from the listen backlog).
   rcvbuf > 0 shrinks SO_RCVBUF first, so the TCP window is small from the
   start. Returns 0 with errno set on failure. */
static int raw_connect(raw *r, int port, int rcvbuf) {
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), e;
    memset(r, 0, sizeof *r);
    r->fd = -1;
    if (fd < 0) return 0;
    if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        e = errno;
        close(fd);
        errno = e;
        return 0;
    }
    set_nonblock(fd);
    r->fd = fd;
    return 1;
}

static int raw_send(raw *r, const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    uint64_t deadline = wsr_now_ms() + 3000;
    while (n > 0 && wsr_now_ms() < deadline) {
        ssize_t k = send(r->fd, b, n, MSG_NOSIGNAL);
        if (k > 0) { b += k; n -= (size_t)k; continue; }
        if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return 0;
        { struct pollfd pf; pf.fd = r->fd; pf.events = POLLOUT; pf.revents = 0; poll(&pf, 1, 5); }
    }
    return n == 0;
}
static int raw_send_str(raw *r, const char *s) { return raw_send(r, s, strlen(s)); }

/* Reads what is there without waiting. Returns 1 once the stream ended. */
static int raw_drain(raw *r) {
    while (r->fd >= 0 && !r->eof && !r->err) {
        unsigned char junk[4096];
        size_t room = sizeof r->buf - 1 - r->len;   /* keep a byte for a NUL */
        ssize_t k = room ? recv(r->fd, r->buf + r->len, room, 0) : recv(r->fd, junk, sizeof junk, 0);
        if (k > 0) {
            if (room) { r->len += (size_t)k; r->buf[r->len] = '\0'; }
            r->total += (size_t)k;
            continue;
        }
        if (k == 0) r->eof = 1;
        else if (errno == EINTR) continue;
        else if (errno != EAGAIN && errno != EWOULDBLOCK) r->err = errno;
        if (r->eof || r->err) r->end_at = wsr_now_ms();
        break;
    }
    return r->eof || r->err;
}

static int raw_ended(raw *r) { return raw_drain(r); }

/* Where the HTTP head ends (after the blank line), or 0. */
static size_t head_end(const unsigned char *p, size_t n) {
    size_t i;
    for (i = 0; i + 4 <= n; i++)
        if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n') return i + 4;
    return 0;
}
static int raw_has_head(raw *r) { raw_drain(r); return head_end(r->buf, r->len) > 0; }

static int starts_with(const raw *r, const char *s) {
    size_t n = strlen(s);
    return r->len >= n && memcmp(r->buf, s, n) == 0;
}
/* Does the response head (only the head) contain this text? */
static int head_has(const raw *r, const char *s) {
    size_t hl = head_end(r->buf, r->len);
    const char *p = strstr((const char *)r->buf, s);
    return hl && p && (size_t)(p - (const char *)r->buf) + strlen(s) <= hl;
}

/* Decodes one server frame at p. Returns its total size, or 0 if incomplete. */
static size_t decode_frame(const unsigned char *p, size_t n, int *opcode, int *fin, int *masked,
                           unsigned char *payload, size_t *plen, size_t cap) {
    size_t h = 2, i;
    uint64_t len;
    unsigned char key[4] = {0, 0, 0, 0};
    if (n < 2) return 0;
    *fin = (p[0] & 0x80) != 0;
    *opcode = p[0] & 0x0F;
    *masked = (p[1] & 0x80) != 0;
    len = p[1] & 0x7F;
    if (len == 126) { if (n < 4) return 0; len = (uint64_t)p[2] << 8 | p[3]; h = 4; }
    else if (len == 127) {
        int b;
        if (n < 10) return 0;
        len = 0;
        for (b = 0; b < 8; b++) len = len << 8 | p[2 + b];
        h = 10;
    }
    if (*masked) { if (n < h + 4) return 0; memcpy(key, p + h, 4); h += 4; }
    if (n - h < len) return 0;
    *plen = (size_t)len;
    for (i = 0; i < len && i < cap; i++) payload[i] = p[h + i] ^ key[i & 3];
    return h + (size_t)len;
}

/* A masked client frame. */
static size_t client_frame(unsigned char *out, int opcode, const void *data, size_t n) {
    static const unsigned char key[4] = { 0x37, 0xFA, 0x21, 0x3D };
    size_t h = wsr_frame_header(out, 1, opcode, n, key);
    memcpy(out + h, data, n);
    wsr_mask(out + h, n, key, 0);
    return h + n;
}

/* An upgrade request for path with extra header lines ("Name: v\r\n..."). */
static size_t upgrade_req(char *out, size_t cap, const char *path, const char *extra) {
    int n = snprintf(out, cap,
                     "GET %s HTTP/1.1\r\n"
                     "Host: 127.0.0.1\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "%s\r\n", path, extra ? extra : "");
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* Connects and sends a whole upgrade request (nothing is read). */
static int raw_upgrade(raw *r, int port, int rcvbuf, const char *path, const char *extra) {
    char req[2048];
    size_t n = upgrade_req(req, sizeof req, path, extra);
    if (!n || !raw_connect(r, port, rcvbuf)) return 0;
    return raw_send(r, req, n);
}

/* The first frame after the 101 head: its opcode and payload. 0 if none. */
static int raw_first_frame(const raw *r, int *opcode, unsigned char *pl, size_t *plen, size_t cap) {
    int fin = 0, masked = 1;
    size_t hl = head_end(r->buf, r->len);
    if (!hl || r->len <= hl) return 0;
    if (!decode_frame(r->buf + hl, r->len - hl, opcode, &fin, &masked, pl, plen, cap)) return 0;
    return fin && !masked;
}

static void put32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
}
static uint32_t get32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---- slow consumers ------------------------------------------------------------ */

#define SLOW_QUEUE (256 * 1024)
#define SLOW_MSG (16 * 1024)
#define SLOW_MAX_MSGS 6000          /* 96 MiB: far more than kernel buffers hold */

/* A raw client completes the upgrade with a tiny receive buffer and never
   reads. Broadcasts fill the kernel buffers, then its queue; the broadcast
   that would pass conn_max_queued closes it with 1008. It never answers, so
   it is dropped at close_timeout_ms, and on_close reports the queue (not the
   timeout). A healthy wsr_client gets every broadcast, in order, at once,
   before and after. */
TEST(slow_consumer_closed_with_1008) {
    static uint64_t sent_at[SLOW_MAX_MSGS];
    static unsigned char msg[SLOW_MSG];
    srec sr;
    crec cr;
    wsr_server_config scfg;
    wsr_server *s = NULL;
    wsr_client *c = NULL;
    slot *slow = NULL, *good = NULL;
    int nb = 0, full_at = -1, fulls = 0, others = 0, raw_ok;
    size_t pre = 0, pre_full = 0, queued_after = 0;
    uint64_t t_full = 0, t_end;
    memset(&sr, 0, sizeof sr);
    memset(&cr, 0, sizeof cr);
    raw_reset_all();
    wsr_server_config_init(&scfg);
    scfg.conn_max_queued = SLOW_QUEUE;
    scfg.slow_policy = WSR_SLOW_CLOSE;
    scfg.close_timeout_ms = 300;
    if (!(s = server_new(&sr, &scfg))) { CHECK(0); goto done; }
    slow = &sr.slots[1];
    good = &sr.slots[0];
    cr.seq_mode = 1;
    cr.sent_at = sent_at;
    if (!(c = client_new(&cr, wsr_server_port(s), "/good?id=0", 0, NULL, NULL))) { CHECK(0); goto done; }
    raw_ok = raw_upgrade(&RAW[0], wsr_server_port(s), 4096, "/slow?id=1", NULL);
    CHECK(raw_ok);
    if (!raw_ok) goto done;
    PUMP_UNTIL(cr.opens == 1 && slow->opened == 1 && good->opened == 1, 3000,
               (wsr_server_poll(s, 1), wsr_client_poll(c, 1)));
    CHECK(pumped);
    if (!pumped) goto done;

    /* Phase 1: broadcast as fast as the healthy client takes it. */
    memset(msg, 'x', sizeof msg);
    while (full_at < 0 && nb < SLOW_MAX_MSGS) {
        wsr_err r;
        pre = slow->conn ? wsr_conn_queued_bytes(slow->conn) : 0;
        put32(msg, (uint32_t)nb);
        sent_at[nb] = wsr_now_ms();
        r = wsr_server_broadcast(s, WSR_MSG_BINARY, msg, sizeof msg);
        nb++;
        if (r == WSR_ERR_QUEUE_FULL) { fulls++; full_at = nb - 1; pre_full = pre; t_full = wsr_now_ms(); }
        else if (r != WSR_OK) others++;
        wsr_server_poll(s, 0);
        wsr_client_poll(c, 0);
    }
    CHECK(full_at >= 0);
    if (full_at < 0) goto done;
    /* It was refused exactly when it would have passed the limit. */
    CHECK(pre_full <= SLOW_QUEUE);
    CHECK(pre_full + SLOW_MSG > SLOW_QUEUE);
    if (slow->conn) queued_after = wsr_conn_queued_bytes(slow->conn);
    CHECK(queued_after <= SLOW_QUEUE + 16);   /* + only the close frame */
    CHECK_EQ_INT(slow->closes, 0);            /* closing, not closed: it may still answer */
    CHECK_EQ_INT(wsr_server_conn_count(s), 2);

    /* Phase 2: keep broadcasting every 10 ms until the slow one is dropped. */
    t_end = t_full + SLACK(300 + 2000);
    while (slow->closes == 0 && wsr_now_ms() < t_end && nb < SLOW_MAX_MSGS) {
        wsr_err r;
        put32(msg, (uint32_t)nb);
        sent_at[nb] = wsr_now_ms();
        r = wsr_server_broadcast(s, WSR_MSG_BINARY, msg, sizeof msg);
        nb++;
        if (r == WSR_ERR_QUEUE_FULL) fulls++;
        else if (r != WSR_OK) others++;
        PUMP_FOR(10, (wsr_server_poll(s, 1), wsr_client_poll(c, 1)));
    }
    CHECK_EQ_INT(slow->closes, 1);
    CHECK_EQ_INT(slow->why.code, WSR_ERR_QUEUE_FULL);
    CHECK_EQ_INT(slow->why.close_code, 1008);
    /* Dropped when close_timeout_ms ran out, not before. */
    CHECK(slow->close_at >= t_full + 300);
    CHECK(slow->close_at <= t_full + 300 + SLACK(400));
    CHECK_EQ_INT(fulls, 1);                   /* closing ones are skipped by later broadcasts */
    CHECK_EQ_INT(others, 0);
    CHECK_EQ_INT(sr.errors, 0);

    /* Phase 3: the healthy client has everything, in order, without delay. */
    PUMP_UNTIL(cr.messages == nb || cr.closes, 5000, (wsr_server_poll(s, 1), wsr_client_poll(c, 1)));
    CHECK(pumped);
    CHECK_EQ_INT(cr.messages, nb);
    CHECK_EQ_INT(cr.seq_errors, 0);
    CHECK_EQ_INT(cr.closes, 0);
    CHECK(cr.max_latency <= SLACK(250));
    if (cr.max_latency > SLACK(250)) printf("  healthy client: max latency %lu ms\n", (unsigned long)cr.max_latency);
    CHECK_EQ_INT(good->closes, 0);
    CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_OPEN);
    wsr_server_poll(s, 0);
    CHECK_EQ_INT(wsr_server_conn_count(s), 1);
    printf("  slow close: %d broadcasts of %d KiB, queue full at #%d, dropped %lu ms later; "
           "healthy client's worst latency %lu ms\n", nb, SLOW_MSG / 1024, full_at,
           (unsigned long)(slow->close_at - t_full), (unsigned long)cr.max_latency);
done:
    wsr_client_free(c);
    wsr_server_free(s);
    raw_close_all();
}

/* With WSR_SLOW_DROP the slow client's messages are refused while its queue
   is full; it stays open, and what it was sent arrives whole and in order
   once it reads, with the refused ones simply missing. */
TEST(slow_consumer_drop_keeps_it_open) {
    static unsigned char msg[SLOW_MSG];
    static unsigned char in[256 * 1024];
    srec sr;
    crec cr;
    wsr_server_config scfg;
    wsr_server *s = NULL;
    wsr_client *c = NULL;
    slot *slow = NULL;
    int accepted = 0, refused = 0, raw_ok, i, bad_frames = 0, got = 0;
    uint32_t seq = 0;
    size_t inlen = 0;
    int head_seen = 0;
    wsr_err br;
    memset(&sr, 0, sizeof sr);
    memset(&cr, 0, sizeof cr);
    raw_reset_all();
    wsr_server_config_init(&scfg);
    scfg.conn_max_queued = SLOW_QUEUE;
    scfg.slow_policy = WSR_SLOW_DROP;
    if (!(s = server_new(&sr, &scfg))) { CHECK(0); goto done; }
    slow = &sr.slots[1];
    if (!(c = client_new(&cr, wsr_server_port(s), "/good?id=0", 0, NULL, NULL))) { CHECK(0); goto done; }
    raw_ok = raw_upgrade(&RAW[0], wsr_server_port(s), 4096, "/slow?id=1", NULL);
    CHECK(raw_ok);
    if (!raw_ok) goto done;
    PUMP_UNTIL(cr.opens == 1 && slow->opened == 1, 3000, (wsr_server_poll(s, 1), wsr_client_poll(c, 1)));
    CHECK(pumped);
    if (!pumped || !slow->conn) goto done;

    memset(msg, 'y', sizeof msg);
    while (refused == 0 && accepted < SLOW_MAX_MSGS) {
        wsr_err r;
        put32(msg, seq);
        r = wsr_conn_send(slow->conn, WSR_MSG_BINARY, msg, sizeof msg);
        seq++;
        if (r == WSR_OK) accepted++;
        else if (r == WSR_ERR_QUEUE_FULL) refused++;
        else { CHECK_EQ_INT(r, WSR_OK); break; }
        wsr_server_poll(s, 0);
    }
    CHECK_EQ_INT(refused, 1);
    /* More sends while it is full: refused too, and nothing changes. */
    for (i = 0; i < 3; i++) {
        put32(msg, seq++);
        CHECK_EQ_INT(wsr_conn_send(slow->conn, WSR_MSG_BINARY, msg, sizeof msg), WSR_ERR_QUEUE_FULL);
    }
    CHECK(wsr_conn_queued_bytes(slow->conn) <= SLOW_QUEUE);
    /* A broadcast meets the policy for the slow one and reaches the healthy one. */
    put32(msg, seq++);
    br = wsr_server_broadcast(s, WSR_MSG_BINARY, msg, sizeof msg);
    CHECK_EQ_INT(br, WSR_ERR_QUEUE_FULL);
    PUMP_UNTIL(cr.messages == 1 || cr.closes, 3000, (wsr_server_poll(s, 1), wsr_client_poll(c, 1)));
    CHECK(pumped);
    CHECK_EQ_INT(cr.messages, 1);
    /* It stays open. */
    PUMP_FOR(200, (wsr_server_poll(s, 1), wsr_client_poll(c, 1)));
    CHECK_EQ_INT(slow->closes, 0);
    CHECK(slow->conn != NULL);
    CHECK_EQ_INT(wsr_server_conn_count(s), 2);
    CHECK_EQ_INT(sr.closes, 0);

    /* Now it reads: frames 0 .. accepted-1 arrive whole and in order. */
    {
        uint64_t deadline = wsr_now_ms() + SLACK(5000);
        int sent_late = 0;
        while (wsr_now_ms() < deadline && !RAW[0].eof && !RAW[0].err) {
            ssize_t k = recv(RAW[0].fd, in + inlen, sizeof in - inlen, 0);
            if (k > 0) inlen += (size_t)k;
            else if (k == 0) RAW[0].eof = 1;
            else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) RAW[0].err = errno;
            if (!head_seen) {
                size_t hl = head_end(in, inlen);
                if (hl) {
                    if (memcmp(in, "HTTP/1.1 101", 12) != 0) bad_frames++;
                    memmove(in, in + hl, inlen - hl);
                    inlen -= hl;
                    head_seen = 1;
                }
            }
            if (head_seen) {
                size_t pos = 0;
                for (;;) {
                    static unsigned char pl[SLOW_MSG];
                    int op = 0, fin = 0, masked = 0;
                    size_t plen = 0, fl = decode_frame(in + pos, inlen - pos, &op, &fin, &masked, pl, &plen, sizeof pl);
                    if (!fl) break;
                    pos += fl;
                    if (op != WSR_OP_BINARY || !fin || masked || plen != SLOW_MSG) { bad_frames++; continue; }
                    if (got < accepted) { if (get32(pl) != (uint32_t)got) bad_frames++; }
                    else if (get32(pl) != seq) bad_frames++;  /* the one sent after it drained */
                    got++;
                }
                memmove(in, in + pos, inlen - pos);
                inlen -= pos;
            }
            wsr_server_poll(s, 0);
            wsr_client_poll(c, 0);
            if (got == accepted && !sent_late && slow->conn && wsr_conn_queued_bytes(slow->conn) == 0) {
                /* Drained: it takes messages again. */
                put32(msg, seq);
                CHECK_EQ_INT(wsr_conn_send(slow->conn, WSR_MSG_BINARY, msg, sizeof msg), WSR_OK);
                sent_late = 1;
            }
            if (got == accepted + 1) break;
            if (k <= 0) { struct pollfd pf; pf.fd = RAW[0].fd; pf.events = POLLIN; pf.revents = 0; poll(&pf, 1, 1); }
        }
        CHECK(sent_late);
    }
    CHECK_EQ_INT(bad_frames, 0);
    CHECK_EQ_INT(got, accepted + 1);
    CHECK_EQ_INT(inlen, 0);                   /* no partial frame left over */
    CHECK_EQ_INT(slow->closes, 0);
    CHECK_EQ_INT(cr.closes, 0);
    printf("  slow drop: %d accepted (%d KiB each) before the queue was full\n", accepted, SLOW_MSG / 1024);
done:
    wsr_client_free(c);
    wsr_server_free(s);
    raw_close_all();
}

/* ---- slowloris and oversized requests ------------------------------------------- */

/* One raw client connects and sends nothing; another sends header bytes
   one at a time, forever. Both are dropped when handshake_timeout_ms after
   accept runs out (on_error WSR_ERR_TIMEOUT, no on_close, no answer), while
   a normal client connects meanwhile. */
TEST(slowloris_dropped_at_handshake_deadline) {
    srec sr;
    crec cr;
    wsr_server_config scfg;
    wsr_server *s = NULL;
    wsr_client *c = NULL;
    uint64_t t0, next_byte = 0;
    int ok0, ok1, trickled = 0, i;
    const char *prefix = "GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    memset(&sr, 0, sizeof sr);
    memset(&cr, 0, sizeof cr);
    raw_reset_all();
    wsr_server_config_init(&scfg);
    scfg.handshake_timeout_ms = 300;
    if (!(s = server_new(&sr, &scfg))) { CHECK(0); goto done; }
    t0 = wsr_now_ms();
    ok0 = raw_connect(&RAW[0], wsr_server_port(s), 0);     /* silent */
    ok1 = raw_connect(&RAW[1], wsr_server_port(s), 0);     /* trickle */
    CHECK(ok0 && ok1);
    if (!ok0 || !ok1) goto done;
    if (!(c = client_new(&cr, wsr_server_port(s), "/ok", 0, NULL, NULL))) { CHECK(0); goto done; }
    PUMP_UNTIL(raw_ended(&RAW[0]) && raw_ended(&RAW[1]), 3000, {
        wsr_server_poll(s, 1);
        wsr_client_poll(c, 1);
        if (!RAW[1].eof && !RAW[1].err && wsr_now_ms() >= next_byte) {
            char b = trickled < (int)strlen(prefix) ? prefix[trickled] : 'a';
            if (send(RAW[1].fd, &b, 1, MSG_NOSIGNAL) == 1) trickled++;
            next_byte = wsr_now_ms() + 5;
        }
    });
    CHECK(pumped);
    /* The normal client was not held up. */
    CHECK_EQ_INT(cr.opens, 1);
    CHECK(cr.open_at < t0 + SLACK(250));
    /* Both dropped at the deadline, not before; the trickle bought no time. */
    CHECK(trickled > 10);
    for (i = 0; i < 2; i++) {
        CHECK(RAW[i].end_at >= t0 + 300);
        CHECK(RAW[i].end_at <= t0 + 300 + SLACK(300));
        CHECK_EQ_INT(RAW[i].len, 0);         /* no answer, just the close */
    }
    CHECK(RAW[0].end_at > RAW[1].end_at ? RAW[0].end_at - RAW[1].end_at < 50 : RAW[1].end_at - RAW[0].end_at < 50);
    CHECK_EQ_INT(sr.errors, 2);
    for (i = 0; i < 2 && i < sr.errors; i++) {
        CHECK_EQ_INT(sr.err[i].code, WSR_ERR_TIMEOUT);
        CHECK_EQ_INT(sr.err[i].http_status, 0);
        CHECK(sr.err_conn[i]);
        CHECK(sr.err_at[i] >= t0 + 300);
    }
    CHECK_EQ_INT(sr.opens, 1);               /* only the normal client */
    CHECK_EQ_INT(sr.closes, 0);              /* never opened: no on_close */
    wsr_server_poll(s, 0);
    CHECK_EQ_INT(wsr_server_conn_count(s), 1);
    CHECK_EQ_INT(cr.closes, 0);
done:
    wsr_client_free(c);
    wsr_server_free(s);
    raw_close_all();
}

/* Builds an upgrade request with `lines` header lines in all (the 5 the
   upgrade needs plus padding lines). */
static size_t request_with_lines(char *out, size_t cap, int lines) {
    char pad[4096];
    size_t pl = 0;
    int i;
    pad[0] = '\0';
    for (i = 0; i < lines - 5; i++) pl += (size_t)snprintf(pad + pl, sizeof pad - pl, "X-Pad-%d: v\r\n", i);
    return upgrade_req(out, cap, "/lines", pad);
}

/* Builds an upgrade request of exactly `size` bytes (head included). */
static size_t request_of_size(char *out, size_t cap, size_t size) {
    size_t base = upgrade_req(out, cap, "/big", "X-Fill: \r\n"), fill;
    char *extra;
    if (!base || size < base || size >= cap) return 0;
    fill = size - base;
    extra = (char *)malloc(fill + 16);
    if (!extra) return 0;
    memcpy(extra, "X-Fill: ", 8);
    memset(extra + 8, 'f', fill);
    memcpy(extra + 8 + fill, "\r\n", 3);
    base = upgrade_req(out, cap, "/big", extra);
    free(extra);
    return base;
}

/* Sends `req` from a new raw client and collects the answer until the
   server closes, or until a complete 101 head when open_ok. A refused one
   then closes its socket too (what it got stays in r->buf), and the server
   is polled until the connection is gone (a server may linger to drain it). */
static void exchange(wsr_server *s, raw *r, const char *req, size_t n, int open_ok) {
    size_t before;
    int ok;
    wsr_server_poll(s, 0);
    before = wsr_server_conn_count(s);
    ok = raw_connect(r, wsr_server_port(s), 0) && raw_send(r, req, n);
    CHECK(ok);
    if (!ok) return;
    PUMP_UNTIL(raw_ended(r) || (open_ok && raw_has_head(r)), 3000, wsr_server_poll(s, 1));
    CHECK(pumped);
    if (open_ok && !raw_ended(r)) return;
    raw_close(r);
    PUMP_UNTIL(wsr_server_conn_count(s) == before, 3000, wsr_server_poll(s, 1));
    CHECK(pumped);
}

TEST(header_count_and_head_size_limits_431) {
    static char req[8192];
    srec sr;
    wsr_server_config scfg;
    wsr_server *s = NULL;
    size_t n;
    memset(&sr, 0, sizeof sr);
    raw_reset_all();
    wsr_server_config_init(&scfg);
    scfg.max_handshake_size = 2048;
    if (!(s = server_new(&sr, &scfg))) { CHECK(0); goto done; }

    /* WSR_MAX_HEADERS lines: accepted. One more: 431. */
    n = request_with_lines(req, sizeof req, WSR_MAX_HEADERS);
    CHECK(n > 0 && n < 2048);
    exchange(s, &RAW[0], req, n, 1);
    CHECK(starts_with(&RAW[0], "HTTP/1.1 101 "));
    n = request_with_lines(req, sizeof req, WSR_MAX_HEADERS + 1);
    CHECK(n > 0 && n < 2048);
    exchange(s, &RAW[1], req, n, 0);
    CHECK(starts_with(&RAW[1], "HTTP/1.1 431 Request Header Fields Too Large\r\n"));
    CHECK(RAW[1].eof || RAW[1].err);
    CHECK_EQ_INT(sr.errors, 1);
    CHECK_EQ_INT(sr.err[0].code, WSR_ERR_HANDSHAKE);
    CHECK_EQ_INT(sr.err[0].http_status, 431);

    /* A head of exactly max_handshake_size: accepted. One byte more: 431. */
    n = request_of_size(req, sizeof req, 2048);
    CHECK_EQ_INT(n, 2048);
    exchange(s, &RAW[2], req, n, 1);
    CHECK(starts_with(&RAW[2], "HTTP/1.1 101 "));
    n = request_of_size(req, sizeof req, 2049);
    CHECK_EQ_INT(n, 2049);
    exchange(s, &RAW[3], req, n, 0);
    CHECK(starts_with(&RAW[3], "HTTP/1.1 431 Request Header Fields Too Large\r\n"));
    CHECK_EQ_INT(sr.errors, 2);
    CHECK_EQ_INT(sr.err[1].code, WSR_ERR_HANDSHAKE);
    CHECK_EQ_INT(sr.err[1].http_status, 431);

    /* A far bigger head, sent as fast as the socket takes it. */
    n = request_of_size(req, sizeof req, 8000);
    CHECK_EQ_INT(n, 8000);
    exchange(s, &RAW[4], req, n, 0);
    CHECK(starts_with(&RAW[4], "HTTP/1.1 431 "));
    CHECK(RAW[4].eof);                       /* in order, not reset (see the 503 test) */
    CHECK_EQ_INT(RAW[4].err, 0);
    CHECK_EQ_INT(sr.errors, 3);
    CHECK_EQ_INT(sr.err[2].http_status, 431);

    CHECK_EQ_INT(sr.opens, 2);
    CHECK_EQ_INT(sr.closes, 0);
    wsr_server_poll(s, 0);
    CHECK_EQ_INT(wsr_server_conn_count(s), 2);
done:
    wsr_server_free(s);
    raw_close_all();
}

/* ---- connection limit ------------------------------------------------------------- */

TEST(connection_limit_503_with_retry_after) {
    srec sr, sr2;
    crec cr, cr2;
    wsr_server_config scfg;
    wsr_server *s = NULL, *s2 = NULL;
    wsr_client *c = NULL, *c2 = NULL;
    int ok;
    memset(&sr, 0, sizeof sr);
    memset(&sr2, 0, sizeof sr2);
    memset(&cr, 0, sizeof cr);
    memset(&cr2, 0, sizeof cr2);
    raw_reset_all();
    wsr_server_config_init(&scfg);
    scfg.max_connections = 2;
    if (!(s = server_new(&sr, &scfg))) { CHECK(0); goto done; }
    ok = raw_upgrade(&RAW[0], wsr_server_port(s), 0, "/a?id=0", NULL) &&
         raw_upgrade(&RAW[1], wsr_server_port(s), 0, "/b?id=1", NULL);
    CHECK(ok);
    if (!ok) goto done;
    PUMP_UNTIL(sr.opens == 2, 3000, wsr_server_poll(s, 1));
    CHECK(pumped);

    /* A third raw client: 503, Retry-After: 5, closed; on_error says so. */
    exchange(s, &RAW[2], "GET / HTTP/1.1\r\n", 16, 0);
    CHECK(starts_with(&RAW[2], "HTTP/1.1 503 Service Unavailable\r\n"));
    CHECK(head_has(&RAW[2], "\r\nRetry-After: 5\r\n"));
    /* Closed in order (FIN), not reset: closing with the request unread
       sends an RST, which on a real network can destroy the 503 before the
       client reads it (RFC 9112 §9.6: close the sending half, then drain). */
    CHECK(RAW[2].eof);
    CHECK_EQ_INT(RAW[2].err, 0);
    CHECK_EQ_INT(sr.errors, 1);
    CHECK_EQ_INT(sr.err[0].http_status, 503);
    CHECK_EQ_INT(sr.err[0].code, WSR_ERR_STATE);
    CHECK(sr.err_conn[0]);
    CHECK_EQ_INT(sr.opens, 2);
    wsr_server_poll(s, 0);
    CHECK_EQ_INT(wsr_server_conn_count(s), 2);

    /* Our client against the full server: http_status 503, retry_after_ms
       5000, and (with reconnect) a wait of at least that long. */
    if (!(c = client_new(&cr, wsr_server_port(s), "/c", 0, NULL, NULL))) { CHECK(0); goto done; }
    PUMP_UNTIL(cr.closes == 1 && sr.errors == 2, 3000, (wsr_client_poll(c, 1), wsr_server_poll(s, 1)));
    CHECK(pumped);
    CHECK_EQ_INT(cr.opens, 0);
    CHECK_EQ_INT(cr.why.code, WSR_ERR_HANDSHAKE);
    CHECK_EQ_INT(cr.why.http_status, 503);
    CHECK_EQ_INT(cr.why.retry_after_ms, 5000);
    CHECK_EQ_INT(cr.why.transient, 1);
    CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(sr.errors, 2);
    if (sr.errors >= 2) CHECK_EQ_INT(sr.err[1].http_status, 503);
    if (!(c2 = client_new(&cr2, wsr_server_port(s), "/c2", 1, NULL, NULL))) { CHECK(0); goto done; }
    PUMP_UNTIL(cr2.reconnectings == 1, 3000, (wsr_client_poll(c2, 1), wsr_server_poll(s, 1)));
    CHECK(pumped);
    CHECK_EQ_INT(cr2.why.http_status, 503);
    CHECK(cr2.reconnect_delay >= 5000);
    CHECK_EQ_INT(wsr_client_state(c2), WSR_STATE_WAITING);
    wsr_client_free(c2);
    c2 = NULL;

    /* The limit counts live connections: one leaves, a newcomer gets in. */
    raw_close(&RAW[0]);
    PUMP_UNTIL(sr.closes == 1, 3000, wsr_server_poll(s, 1));
    CHECK(pumped);
    CHECK_EQ_INT(wsr_server_conn_count(s), 1);
    CHECK(raw_upgrade(&RAW[3], wsr_server_port(s), 0, "/d?id=3", NULL));
    PUMP_UNTIL(raw_has_head(&RAW[3]) || raw_ended(&RAW[3]), 3000, wsr_server_poll(s, 1));
    CHECK(starts_with(&RAW[3], "HTTP/1.1 101 "));
    CHECK_EQ_INT(sr.slots[3].opened, 1);

    /* retry_after_s 0: the 503 carries no Retry-After. */
    scfg.max_connections = 1;
    scfg.retry_after_s = 0;
    if (!(s2 = server_new(&sr2, &scfg))) { CHECK(0); goto done; }
    CHECK(raw_upgrade(&RAW[4], wsr_server_port(s2), 0, "/e", NULL));
    PUMP_UNTIL(sr2.opens == 1, 3000, wsr_server_poll(s2, 1));
    CHECK(pumped);
    exchange(s2, &RAW[5], "GET / HTTP/1.1\r\n", 16, 0);
    CHECK(starts_with(&RAW[5], "HTTP/1.1 503 Service Unavailable\r\n"));
    CHECK(head_has(&RAW[5], "\r\n\r\n"));
    CHECK(!strstr((const char *)RAW[5].buf, "Retry-After"));
    CHECK_EQ_INT(sr2.errors, 1);
    CHECK_EQ_INT(sr2.err[0].http_status, 503);
done:
    wsr_client_free(c);
    wsr_client_free(c2);
    wsr_server_free(s);
    wsr_server_free(s2);
    raw_close_all();
}

/* ---- on_handshake ---------------------------------------------------------------- */

typedef struct auth_rec {
    int calls;
    int setsub_long;               /* wsr_conn_set_subprotocol with 64 characters */
    int setsub;                    /* wsr_conn_set_subprotocol("v2.chat") */
    char auth[64];                 /* the Authorization value seen last */
} auth_rec;
static auth_rec AUTH;

/* /ws only (else 404); ?token=good (else 401); "authorization: Bearer
   s3cret" (else 403). Picks v2.chat when offered, over the configured "chat". */
static int on_handshake_auth(wsr_conn *conn, const wsr_request *req, void *user) {
    size_t al = 0;
    const char *auth = wsr_request_header(req, "authorization", &al);
    const char *q;
    (void)user;
    AUTH.calls++;
    snprintf(AUTH.auth, sizeof AUTH.auth, "%.*s", auth ? (int)al : 0, auth ? auth : "");
    if (req->path_len < 3 || memcmp(req->path, "/ws", 3) != 0 || (req->path_len > 3 && req->path[3] != '?'))
        return 404;
    q = NULL;
    {
        size_t i;
        for (i = 0; i + 6 <= req->path_len; i++)
            if (memcmp(req->path + i, "token=", 6) == 0) { q = req->path + i + 6; break; }
        if (!q || (size_t)(req->path + req->path_len - q) < 4 || memcmp(q, "good", 4) != 0 ||
            (q + 4 < req->path + req->path_len && q[4] != '&'))
            return 401;
    }
    if (!auth || al != 13 || memcmp(auth, "Bearer s3cret", 13) != 0) return 403;
    AUTH.setsub_long = (int)wsr_conn_set_subprotocol(conn, "0123456789012345678901234567890123456789012345678901234567890123");
    if (req->protocols && req->protocols_len >= 7) {
        size_t i;
        for (i = 0; i + 7 <= req->protocols_len; i++)
            if (memcmp(req->protocols + i, "v2.chat", 7) == 0) AUTH.setsub = (int)wsr_conn_set_subprotocol(conn, "v2.chat");
    }
    return 0;
}

TEST(on_handshake_auth_refusals_and_subprotocol) {
    srec sr;
    crec cr, bad;
    wsr_server_config scfg;
    wsr_server *s = NULL;
    wsr_client *c = NULL, *cb = NULL;
    char req[1024];
    size_t n;
    int calls_before;
    memset(&sr, 0, sizeof sr);
    memset(&cr, 0, sizeof cr);
    memset(&bad, 0, sizeof bad);
    memset(&AUTH, 0, sizeof AUTH);
    raw_reset_all();
    wsr_server_config_init(&scfg);
    scfg.subprotocols = "chat";
    scfg.on_handshake = on_handshake_auth;
    if (!(s = server_new(&sr, &scfg))) { CHECK(0); goto done; }

    /* Raw clients see the status line on_handshake asked for. */
    n = upgrade_req(req, sizeof req, "/ws?token=bad", "Authorization: Bearer s3cret\r\n");
    exchange(s, &RAW[0], req, n, 0);
    CHECK(starts_with(&RAW[0], "HTTP/1.1 401 Unauthorized\r\n"));
    CHECK(RAW[0].eof || RAW[0].err);
    n = upgrade_req(req, sizeof req, "/ws?token=good", NULL);
    exchange(s, &RAW[1], req, n, 0);
    CHECK(starts_with(&RAW[1], "HTTP/1.1 403 Forbidden\r\n"));
    n = upgrade_req(req, sizeof req, "/nope?token=good", "Authorization: Bearer s3cret\r\n");
    exchange(s, &RAW[2], req, n, 0);
    CHECK(starts_with(&RAW[2], "HTTP/1.1 404 Not Found\r\n"));
    CHECK_EQ_INT(AUTH.calls, 3);
    CHECK_EQ_INT(sr.opens, 0);
    CHECK_EQ_INT(sr.errors, 3);
    if (sr.errors == 3) {
        CHECK_EQ_INT(sr.err[0].code, WSR_ERR_HANDSHAKE);
        CHECK_EQ_INT(sr.err[0].http_status, 401);
        CHECK_EQ_INT(sr.err[1].http_status, 403);
        CHECK_EQ_INT(sr.err[2].http_status, 404);
        CHECK(sr.err_conn[0] && sr.err_conn[1] && sr.err_conn[2]);
    }
    /* Accepted: the header name matched in any case, the chosen subprotocol answered. */
    n = upgrade_req(req, sizeof req, "/ws?token=good&x=1", "AUTHORIZATION: Bearer s3cret\r\nSec-WebSocket-Protocol: chat, v2.chat\r\n");
    exchange(s, &RAW[3], req, n, 1);
    CHECK(starts_with(&RAW[3], "HTTP/1.1 101 "));
    CHECK(head_has(&RAW[3], "\r\nSec-WebSocket-Protocol: v2.chat\r\n"));
    CHECK_EQ_STR(AUTH.auth, "Bearer s3cret");
    CHECK_EQ_INT(AUTH.setsub, WSR_OK);
    CHECK_EQ_INT(AUTH.setsub_long, WSR_ERR_INVALID);
    PUMP_UNTIL(sr.opens == 1, 3000, wsr_server_poll(s, 1));
    CHECK(pumped);
    CHECK_EQ_STR(sr.slots[0].path, "/ws?token=good&x=1");
    CHECK_EQ_STR(sr.slots[0].sub, "v2.chat");

    /* Our client: token in the query, Authorization as an extra header. */
    AUTH.setsub = -1;
    if (!(c = client_new(&cr, wsr_server_port(s), "/ws?token=good&id=5", 0, "chat, v2.chat",
                         "Authorization: Bearer s3cret\r\n"))) { CHECK(0); goto done; }
    PUMP_UNTIL(cr.opens == 1 || cr.closes, 3000, (wsr_client_poll(c, 1), wsr_server_poll(s, 1)));
    CHECK(pumped);
    CHECK_EQ_INT(cr.opens, 1);
    CHECK_EQ_STR(cr.sub, "v2.chat");
    CHECK_EQ_INT(AUTH.setsub, WSR_OK);
    CHECK_EQ_STR(sr.slots[5].sub, "v2.chat");
    /* Outside on_handshake: WSR_ERR_STATE, and nothing changes. */
    CHECK_EQ_INT(sr.setsub_open, WSR_ERR_STATE);
    CHECK_EQ_INT(wsr_send_text(c, "hi", 2), WSR_OK);
    PUMP_UNTIL(sr.slots[5].messages == 1, 3000, (wsr_client_poll(c, 1), wsr_server_poll(s, 1)));
    CHECK(pumped);
    CHECK_EQ_INT(sr.setsub_msg, WSR_ERR_STATE);
    if (sr.slots[5].conn) {
        CHECK_EQ_INT(wsr_conn_set_subprotocol(sr.slots[5].conn, "chat"), WSR_ERR_STATE);
        CHECK_EQ_STR(wsr_conn_subprotocol(sr.slots[5].conn), "v2.chat");
    }
    CHECK_EQ_INT(wsr_conn_set_subprotocol(NULL, "chat"), WSR_ERR_INVALID);

    /* A bad token: our client reports 401 and stops for good, even with
       reconnect on. */
    calls_before = AUTH.calls;
    if (!(cb = client_new(&bad, wsr_server_port(s), "/ws?token=nope", 1, NULL,
                          "Authorization: Bearer s3cret\r\n"))) { CHECK(0); goto done; }
    PUMP_UNTIL(bad.ends == 1, 3000, (wsr_client_poll(cb, 1), wsr_server_poll(s, 1)));
    CHECK(pumped);
    CHECK_EQ_INT(bad.opens, 0);
    CHECK_EQ_INT(bad.closes, 1);
    CHECK_EQ_INT(bad.why.code, WSR_ERR_HANDSHAKE);
    CHECK_EQ_INT(bad.why.http_status, 401);
    CHECK_EQ_INT(bad.why.transient, 0);
    CHECK_EQ_INT(bad.end_why.http_status, 401);
    CHECK_EQ_INT(bad.reconnectings, 0);
    CHECK_EQ_INT(wsr_client_state(cb), WSR_STATE_CLOSED);
    PUMP_FOR(300, (wsr_client_poll(cb, 1), wsr_server_poll(s, 1)));
    CHECK_EQ_INT(AUTH.calls, calls_before + 1);   /* it never came back */
    CHECK_EQ_INT(bad.closes, 1);
    CHECK_EQ_INT(bad.ends, 1);
    CHECK_EQ_INT(cr.closes, 0);
done:
    wsr_client_free(c);
    wsr_client_free(cb);
    wsr_server_free(s);
    raw_close_all();
}

/* ---- graceful shutdown ------------------------------------------------------------- */

TEST(graceful_shutdown) {
    srec sr, sr2;
    crec cr[2];
    wsr_server *s = NULL, *s2 = NULL;
    wsr_client *c[2] = { NULL, NULL };
    wsr_error ce[2];
    wsr_err r;
    uint64_t t0, took;
    int i, port, ok;
    memset(&sr, 0, sizeof sr);
    memset(&sr2, 0, sizeof sr2);
    memset(cr, 0, sizeof cr);
    memset(ce, 0, sizeof ce);
    raw_reset_all();
    if (!(s = server_new(&sr, NULL))) { CHECK(0); goto done; }
    port = wsr_server_port(s);
    for (i = 0; i < 2; i++) {
        char path[32];
        snprintf(path, sizeof path, "/t?id=%d", i);
        if (!(c[i] = client_new(&cr[i], port, path, 0, NULL, NULL))) { CHECK(0); goto done; }
        CHECK_EQ_INT(wsr_client_start_thread(c[i]), WSR_OK);
    }
    PUMP_UNTIL(sr.opens == 2, 3000, wsr_server_poll(s, 5));
    CHECK(pumped);
    if (!pumped) goto done;
    t0 = wsr_now_ms();
    r = wsr_server_shutdown(s, 2000);
    took = wsr_now_ms() - t0;
    CHECK_EQ_INT(r, WSR_OK);
    CHECK(took < SLACK(500));
    CHECK_EQ_INT(sr.closes, 2);
    for (i = 0; i < 2; i++) {
        CHECK_EQ_INT(sr.slots[i].closes, 1);
        CHECK_EQ_INT(sr.slots[i].why.code, WSR_ERR_CLOSED);
        CHECK_EQ_INT(sr.slots[i].why.close_code, 1001);
    }
    CHECK_EQ_INT(wsr_server_conn_count(s), 0);
    for (i = 0; i < 2; i++) {
        CHECK_EQ_INT(wsr_client_wait_closed(c[i], (int)SLACK(3000)), WSR_OK);
        wsr_client_get_error(c[i], &ce[i]);
        wsr_client_free(c[i]);                /* joins its thread: cr[i] is ours again */
        c[i] = NULL;
        CHECK_EQ_INT(ce[i].code, WSR_ERR_PEER_CLOSED);
        CHECK_EQ_INT(ce[i].close_code, 1001);
        CHECK_EQ_STR(ce[i].close_reason, "going away");
        CHECK_EQ_INT(cr[i].opens, 1);
        CHECK_EQ_INT(cr[i].closes, 1);
        CHECK_EQ_INT(cr[i].why.code, WSR_ERR_PEER_CLOSED);
        CHECK_EQ_INT(cr[i].why.close_code, 1001);
    }
    /* No newcomers after shutdown. */
    errno = 0;
    ok = raw_connect(&RAW[0], port, 0);
    CHECK(!ok);
    CHECK_EQ_INT(ok ? 0 : errno, ECONNREFUSED);
    wsr_server_free(s);
    s = NULL;

    /* A raw client that never answers the close, and one still in its
       upgrade: shutdown waits its timeout, then drops them. */
    if (!(s2 = server_new(&sr2, NULL))) { CHECK(0); goto done; }
    port = wsr_server_port(s2);
    ok = raw_upgrade(&RAW[1], port, 0, "/mute?id=0", NULL) && raw_connect(&RAW[2], port, 0);
    CHECK(ok);
    if (!ok) goto done;
    PUMP_UNTIL(sr2.opens == 1 && wsr_server_conn_count(s2) == 2, 3000, wsr_server_poll(s2, 1));
    CHECK(pumped);
    t0 = wsr_now_ms();
    r = wsr_server_shutdown(s2, 500);
    took = wsr_now_ms() - t0;
    CHECK_EQ_INT(r, WSR_ERR_TIMEOUT);
    CHECK(took >= 500);
    CHECK(took <= 500 + SLACK(300));
    CHECK_EQ_INT(sr2.slots[0].closes, 1);
    CHECK_EQ_INT(sr2.slots[0].why.code, WSR_ERR_TIMEOUT);
    CHECK_EQ_INT(sr2.slots[0].why.close_code, 1006);
    CHECK_EQ_INT(sr2.errors, 1);              /* the one in its upgrade */
    CHECK_EQ_INT(sr2.err[0].code, WSR_ERR_CLOSED);
    CHECK_EQ_INT(wsr_server_conn_count(s2), 0);
    /* The mute client got the 101, then close 1001 "going away", then EOF. */
    PUMP_UNTIL(raw_ended(&RAW[1]) && raw_ended(&RAW[2]), 2000, poll(NULL, 0, 1));
    CHECK(pumped);
    {
        int op = -1;
        unsigned char pl[128];
        size_t plen = 0;
        CHECK(starts_with(&RAW[1], "HTTP/1.1 101 "));
        CHECK(raw_first_frame(&RAW[1], &op, pl, &plen, sizeof pl));
        CHECK_EQ_INT(op, WSR_OP_CLOSE);
        CHECK(plen == 12 && pl[0] == 0x03 && pl[1] == 0xE9 && memcmp(pl + 2, "going away", 10) == 0);
    }
    CHECK_EQ_INT(RAW[2].len, 0);
    errno = 0;
    ok = raw_connect(&RAW[3], port, 0);
    CHECK(!ok);
    CHECK_EQ_INT(ok ? 0 : errno, ECONNREFUSED);
done:
    for (i = 0; i < 2; i++) wsr_client_free(c[i]);
    wsr_server_free(s);
    wsr_server_free(s2);
    raw_close_all();
}

/* close_timeout_ms shorter than the shutdown's timeout: the mute client is
   dropped inside wsr_server_shutdown by its close timeout. Someone still
   had to be dropped, so the answer is WSR_ERR_TIMEOUT, not WSR_OK. */
TEST(shutdown_reports_a_client_dropped_by_close_timeout) {
    srec sr;
    wsr_server_config scfg;
    wsr_server *s = NULL;
    wsr_err r;
    uint64_t t0, took;
    memset(&sr, 0, sizeof sr);
    raw_reset_all();
    wsr_server_config_init(&scfg);
    scfg.close_timeout_ms = 200;
    if (!(s = server_new(&sr, &scfg))) { CHECK(0); goto done; }
    CHECK(raw_upgrade(&RAW[0], wsr_server_port(s), 0, "/mute?id=0", NULL));
    PUMP_UNTIL(sr.opens == 1, 3000, wsr_server_poll(s, 1));
    CHECK(pumped);
    if (!pumped) goto done;
    t0 = wsr_now_ms();
    r = wsr_server_shutdown(s, 2000);
    took = wsr_now_ms() - t0;
    CHECK_EQ_INT(r, WSR_ERR_TIMEOUT);
    CHECK(took >= 200);
    CHECK(took <= 200 + SLACK(300));
    CHECK_EQ_INT(sr.slots[0].closes, 1);
    CHECK_EQ_INT(sr.slots[0].why.code, WSR_ERR_TIMEOUT);
    CHECK_EQ_INT(sr.slots[0].why.close_code, 1006);
    CHECK_EQ_INT(wsr_server_conn_count(s), 0);
done:
    wsr_server_free(s);
    raw_close_all();
}

/* ---- keepalive and idle timeout ------------------------------------------------------ */

TEST(server_keepalive_drops_the_mute_keeps_the_live) {
    srec sr;
    crec cr;
    wsr_server_config scfg;
    wsr_server *s = NULL;
    wsr_client *c = NULL;
    slot *mute, *live;
    int ok;
    memset(&sr, 0, sizeof sr);
    memset(&cr, 0, sizeof cr);
    raw_reset_all();
    wsr_server_config_init(&scfg);
    scfg.ping_interval_ms = 100;
    scfg.pong_timeout_ms = 200;
    if (!(s = server_new(&sr, &scfg))) { CHECK(0); goto done; }
    mute = &sr.slots[0];
    live = &sr.slots[1];
    ok = raw_upgrade(&RAW[0], wsr_server_port(s), 0, "/mute?id=0", NULL);
    CHECK(ok);
    if (!ok) goto done;
    if (!(c = client_new(&cr, wsr_server_port(s), "/live?id=1", 0, NULL, NULL))) { CHECK(0); goto done; }
    PUMP_UNTIL(mute->opened && live->opened && cr.opens, 3000, (wsr_server_poll(s, 1), wsr_client_poll(c, 1)));
    CHECK(pumped);
    if (live->conn) CHECK_EQ_INT(wsr_conn_rtt_ms(live->conn), -1);   /* no ping answered yet */
    PUMP_FOR(1000, (wsr_server_poll(s, 1), wsr_client_poll(c, 1)));
    /* The mute one: a ping at 100 ms, no answer by 300 ms. */
    CHECK_EQ_INT(mute->closes, 1);
    CHECK_EQ_INT(mute->why.code, WSR_ERR_TIMEOUT);
    CHECK_EQ_INT(mute->why.close_code, 1006);
    CHECK(mute->close_at + CLOCK_SKEW >= mute->open_at + 300);
    CHECK(mute->close_at <= mute->open_at + 300 + SLACK(200));
    CHECK_EQ_INT(sr.errors, 0);              /* it had opened: on_close, not on_error */
    {
        int op = -1;
        unsigned char pl[128];
        size_t plen = 0;
        PUMP_UNTIL(raw_ended(&RAW[0]), 1000, poll(NULL, 0, 1));
        CHECK(pumped);
        CHECK(raw_first_frame(&RAW[0], &op, pl, &plen, sizeof pl));
        CHECK_EQ_INT(op, WSR_OP_PING);
        CHECK_EQ_INT(plen, 8);
    }
    /* The live one answers every ping and stays. */
    CHECK_EQ_INT(live->closes, 0);
    CHECK_EQ_INT(cr.closes, 0);
    CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_OPEN);
    CHECK(live->conn != NULL);
    if (live->conn) {
        int rtt = wsr_conn_rtt_ms(live->conn);
        CHECK(rtt >= 0);
        CHECK(rtt <= (int)SLACK(100));
    }
    CHECK_EQ_INT(wsr_server_conn_count(s), 1);
done:
    wsr_client_free(c);
    wsr_server_free(s);
    raw_close_all();
}

/* The server's end of a raw client's connection: the descriptor in this
   process whose peer is that client's address. -1 if none. */
static int server_side_fd(const raw *r) {
    struct sockaddr_in me;
    socklen_t l = sizeof me;
    int fd;
    if (getsockname(r->fd, (struct sockaddr *)&me, &l) != 0) return -1;
    for (fd = 3; fd < 4096; fd++) {
        struct sockaddr_in p;
        socklen_t pl = sizeof p;
        if (fd == r->fd) continue;
        if (getpeername(fd, (struct sockaddr *)&p, &pl) == 0 && pl == sizeof p && p.sin_family == AF_INET &&
            p.sin_port == me.sin_port && p.sin_addr.s_addr == me.sin_addr.s_addr)
            return fd;
    }
    return -1;
}

/* A client that downloads 2 MiB at ~3 MB/s and answers every ping the
   moment it sees one, but sends nothing else. The server's ping waits in
   its queue behind the download for ~500 ms while the socket keeps taking
   bytes: that is a live peer, as the client side already treats it
   (README, "Dead peers"), and it must not be dropped at ping_interval_ms +
   pong_timeout_ms. The server's SO_SNDBUF is pinned small so the wait is in
   the server's queue, not the kernel's. */
#define DL_MSGS 128
TEST(server_keepalive_ping_behind_slow_download_is_not_dead) {
    static unsigned char msg[16384];
    static unsigned char in[65536];
    static unsigned char pl[16384];
    srec sr;
    wsr_server_config scfg;
    wsr_server *s = NULL;
    slot *dl;
    size_t inlen = 0;
    int sfd, sndbuf = 16384, i, got = 0, bad = 0, pings = 0, head_done = 0;
    uint64_t first_ping_at = 0, next_read = 0, done_at = 0, deadline;
    memset(&sr, 0, sizeof sr);
    raw_reset_all();
    wsr_server_config_init(&scfg);
    scfg.ping_interval_ms = 100;
    scfg.pong_timeout_ms = 200;
    if (!(s = server_new(&sr, &scfg))) { CHECK(0); goto done; }
    dl = &sr.slots[0];
    CHECK(raw_upgrade(&RAW[0], wsr_server_port(s), 32768, "/dl?id=0", NULL));
    PUMP_UNTIL(dl->opened == 1, 3000, wsr_server_poll(s, 1));
    CHECK(pumped);
    if (!pumped || !dl->conn) goto done;
    sfd = server_side_fd(&RAW[0]);
    CHECK(sfd >= 0);
    if (sfd < 0) goto done;
    CHECK_EQ_INT(setsockopt(sfd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf), 0);
    memset(msg, 'd', sizeof msg);
    for (i = 0; i < DL_MSGS; i++) {
        put32(msg, (uint32_t)i);
        CHECK_EQ_INT(wsr_conn_send(dl->conn, WSR_MSG_BINARY, msg, sizeof msg), WSR_OK);
    }
    deadline = wsr_now_ms() + SLACK(5000);
    while (wsr_now_ms() < deadline && dl->closes == 0 && !RAW[0].eof && !RAW[0].err) {
        uint64_t now;
        wsr_server_poll(s, 1);
        now = wsr_now_ms();
        if (now < next_read) continue;
        next_read = now + 5;
        {
            size_t room = sizeof in - inlen < 16384 ? sizeof in - inlen : 16384, pos = 0;
            ssize_t k = recv(RAW[0].fd, in + inlen, room, 0);
            if (k > 0) inlen += (size_t)k;
            else if (k == 0) RAW[0].eof = 1;
            else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) RAW[0].err = errno;
            if (!head_done) {
                size_t hl = head_end(in, inlen);
                if (!hl) continue;
                if (memcmp(in, "HTTP/1.1 101", 12) != 0) bad++;
                pos = hl;
                head_done = 1;
            }
            for (;;) {
                int op = 0, fin = 0, masked = 0;
                size_t plen = 0, fl = decode_frame(in + pos, inlen - pos, &op, &fin, &masked, pl, &plen, sizeof pl);
                if (!fl) break;
                pos += fl;
                if (op == WSR_OP_BINARY && plen == sizeof msg && get32(pl) == (uint32_t)got) got++;
                else if (op == WSR_OP_PING && plen <= 125) {
                    unsigned char fr[160];
                    if (!pings++) first_ping_at = wsr_now_ms();
                    if (!raw_send(&RAW[0], fr, client_frame(fr, WSR_OP_PONG, pl, plen))) bad++;
                } else bad++;
            }
            memmove(in, in + pos, inlen - pos);
            inlen -= pos;
        }
        if (got == DL_MSGS && !done_at) done_at = wsr_now_ms();
        if (done_at && wsr_now_ms() >= done_at + 300) break;   /* and alive 300 ms after */
    }
    /* The scenario happened: the first ping reached the client only after
       ping_interval_ms + pong_timeout_ms (else this test proves nothing). */
    CHECK_EQ_INT(dl->closes, 0);
    if (dl->closes) {
        printf("  dropped after %lu ms with %d of %d messages read: %s\n", (unsigned long)(dl->close_at - dl->open_at),
               got, DL_MSGS, dl->why.message);
    } else {
        CHECK(pings >= 1);
        CHECK(first_ping_at > dl->open_at + 300);
        if (pings) printf("  first ping reached the client after %lu ms\n", (unsigned long)(first_ping_at - dl->open_at));
    }
    CHECK_EQ_INT(got, DL_MSGS);
    CHECK_EQ_INT(bad, 0);
    if (dl->conn) CHECK(wsr_conn_rtt_ms(dl->conn) >= 0);
done:
    wsr_server_free(s);
    raw_close_all();
}

TEST(idle_timeout_closes_the_silent_only) {
    srec sr;
    crec quiet, chatty;
    wsr_server_config scfg;
    wsr_server *s = NULL;
    wsr_client *cq = NULL, *cc = NULL;
    uint64_t next_tick = 0, t_open;
    int ticks = 0;
    memset(&sr, 0, sizeof sr);
    memset(&quiet, 0, sizeof quiet);
    memset(&chatty, 0, sizeof chatty);
    raw_reset_all();
    wsr_server_config_init(&scfg);
    scfg.idle_timeout_ms = 300;
    if (!(s = server_new(&sr, &scfg))) { CHECK(0); goto done; }
    if (!(cq = client_new(&quiet, wsr_server_port(s), "/q?id=0", 0, NULL, NULL)) ||
        !(cc = client_new(&chatty, wsr_server_port(s), "/c?id=1", 0, NULL, NULL))) { CHECK(0); goto done; }
    PUMP_UNTIL(quiet.opens && chatty.opens && sr.opens == 2, 3000,
               (wsr_server_poll(s, 1), wsr_client_poll(cq, 1), wsr_client_poll(cc, 1)));
    CHECK(pumped);
    t_open = wsr_now_ms();
    PUMP_UNTIL(wsr_now_ms() >= t_open + 1000, 1500, {
        wsr_server_poll(s, 1);
        wsr_client_poll(cq, 1);
        wsr_client_poll(cc, 1);
        if (wsr_now_ms() >= next_tick && chatty.closes == 0) {
            if (wsr_send_text(cc, "tick", 4) == WSR_OK) ticks++;
            next_tick = wsr_now_ms() + 100;
        }
    });
    /* The silent one: close 1000 "idle timeout" at 300 ms. */
    CHECK_EQ_INT(quiet.closes, 1);
    CHECK_EQ_INT(quiet.why.code, WSR_ERR_PEER_CLOSED);
    CHECK_EQ_INT(quiet.why.close_code, 1000);
    CHECK_EQ_STR(quiet.why.close_reason, "idle timeout");
    CHECK_EQ_INT(sr.slots[0].closes, 1);
    CHECK_EQ_INT(sr.slots[0].why.code, WSR_ERR_CLOSED);
    CHECK_EQ_INT(sr.slots[0].why.close_code, 1000);
    CHECK(sr.slots[0].close_at + CLOCK_SKEW >= sr.slots[0].open_at + 300);
    CHECK(sr.slots[0].close_at <= sr.slots[0].open_at + 300 + SLACK(200));
    CHECK(quiet.close_at <= quiet.open_at + 300 + SLACK(200));
    /* The chatty one: open throughout, every tick delivered. */
    CHECK(ticks >= 9);
    CHECK_EQ_INT(chatty.closes, 0);
    CHECK_EQ_INT(sr.slots[1].closes, 0);
    CHECK_EQ_INT(wsr_client_state(cc), WSR_STATE_OPEN);
    PUMP_UNTIL(sr.slots[1].messages == ticks, 1000, (wsr_server_poll(s, 1), wsr_client_poll(cc, 1)));
    CHECK_EQ_INT(sr.slots[1].messages, ticks);
    CHECK_EQ_INT(wsr_server_conn_count(s), 1);
done:
    wsr_client_free(cq);
    wsr_client_free(cc);
    wsr_server_free(s);
    raw_close_all();
}

/* ---- broadcast_if ----------------------------------------------------------------- */

typedef struct filter_arg { int calls; } filter_arg;
static int even_only(wsr_conn *conn, void *arg) {
    slot *sl = (slot *)wsr_conn_user(conn);
    ((filter_arg *)arg)->calls++;
    return sl && (sl->path[strlen(sl->path) - 1] - '0') % 2 == 0;
}

TEST(broadcast_if_reaches_only_the_chosen) {
    srec sr;
    crec cr[4];
    wsr_server *s = NULL;
    wsr_client *c[4] = { NULL, NULL, NULL, NULL };
    filter_arg fa;
    int i, ok;
    memset(&sr, 0, sizeof sr);
    memset(cr, 0, sizeof cr);
    memset(&fa, 0, sizeof fa);
    raw_reset_all();
    if (!(s = server_new(&sr, NULL))) { CHECK(0); goto done; }
    for (i = 0; i < 4; i++) {
        char path[32];
        snprintf(path, sizeof path, "/b?id=%d", i);
        if (!(c[i] = client_new(&cr[i], wsr_server_port(s), path, 0, NULL, NULL))) { CHECK(0); goto done; }
    }
    /* One more connection still in its upgrade: never offered to the filter. */
    ok = raw_connect(&RAW[0], wsr_server_port(s), 0);
    CHECK(ok);
    PUMP_UNTIL(sr.opens == 4 && cr[0].opens && cr[1].opens && cr[2].opens && cr[3].opens &&
               wsr_server_conn_count(s) == 5, 3000,
               { wsr_server_poll(s, 1); for (i = 0; i < 4; i++) wsr_client_poll(c[i], 0); });
    CHECK(pumped);
    CHECK_EQ_INT(wsr_server_broadcast_if(s, WSR_MSG_TEXT, "even", 4, even_only, &fa), WSR_OK);
    CHECK_EQ_INT(fa.calls, 4);
    CHECK_EQ_INT(wsr_server_broadcast(s, WSR_MSG_TEXT, "all", 3), WSR_OK);
    PUMP_UNTIL(cr[0].messages == 2 && cr[1].messages == 1 && cr[2].messages == 2 && cr[3].messages == 1, 3000,
               { wsr_server_poll(s, 1); for (i = 0; i < 4; i++) wsr_client_poll(c[i], 0); });
    CHECK(pumped);
    PUMP_FOR(50, { wsr_server_poll(s, 1); for (i = 0; i < 4; i++) wsr_client_poll(c[i], 0); });
    for (i = 0; i < 4; i++) {
        if (i % 2 == 0) {
            CHECK_EQ_INT(cr[i].messages, 2);
            CHECK_EQ_STR(cr[i].msgs[0], "even");
            CHECK_EQ_STR(cr[i].msgs[1], "all");
        } else {
            CHECK_EQ_INT(cr[i].messages, 1);
            CHECK_EQ_STR(cr[i].msgs[0], "all");
        }
        CHECK_EQ_INT(cr[i].closes, 0);
    }
    /* A filter that takes none: nothing sent, WSR_OK. */
    CHECK_EQ_INT(wsr_server_broadcast_if(s, WSR_MSG_TEXT, "none", 4, even_only, &fa), WSR_OK);
    CHECK_EQ_INT(wsr_server_broadcast_if(NULL, WSR_MSG_TEXT, "x", 1, even_only, &fa), WSR_ERR_INVALID);
    CHECK_EQ_INT(RAW[0].len, 0);
done:
    for (i = 0; i < 4; i++) wsr_client_free(c[i]);
    wsr_server_free(s);
    raw_close_all();
}

/* ---- refused requests reported through on_error -------------------------------------- */

TEST(bad_request_reported_with_http_status) {
    srec sr;
    wsr_server *s = NULL;
    const char *v8 = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n";
    memset(&sr, 0, sizeof sr);
    raw_reset_all();
    if (!(s = server_new(&sr, NULL))) { CHECK(0); goto done; }
    exchange(s, &RAW[0], "GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 36, 0);
    CHECK(starts_with(&RAW[0], "HTTP/1.1 400 Bad Request\r\n"));
    CHECK(RAW[0].eof || RAW[0].err);
    CHECK_EQ_INT(sr.errors, 1);
    CHECK_EQ_INT(sr.err[0].code, WSR_ERR_HANDSHAKE);
    CHECK_EQ_INT(sr.err[0].http_status, 400);
    CHECK(sr.err_conn[0]);
    CHECK(sr.err[0].message[0] != '\0');
    exchange(s, &RAW[1], v8, strlen(v8), 0);
    CHECK(starts_with(&RAW[1], "HTTP/1.1 426 Upgrade Required\r\n"));
    CHECK_EQ_INT(sr.errors, 2);
    CHECK_EQ_INT(sr.err[1].code, WSR_ERR_HANDSHAKE);
    CHECK_EQ_INT(sr.err[1].http_status, 426);
    CHECK_EQ_INT(sr.opens, 0);
    CHECK_EQ_INT(sr.closes, 0);
    wsr_server_poll(s, 0);
    CHECK_EQ_INT(wsr_server_conn_count(s), 0);
done:
    wsr_server_free(s);
    raw_close_all();
}

/* ---- isolation ---------------------------------------------------------------------- */

/* While our client echoes 40 messages, one after another, four raw clients
   misbehave: an unmasked frame (1002), invalid UTF-8 (1007), a reset in the
   middle of a big send, and a request that is not HTTP (400). Each ends
   alone; the echo never misses a beat. */
TEST(errors_in_one_connection_never_touch_another) {
    static unsigned char big[1024 * 1024];
    srec sr;
    crec cr;
    wsr_server *s = NULL;
    wsr_client *c = NULL;
    int k, sent = 0, ok;
    uint64_t max_rt = 0;
    unsigned char fr[64];
    memset(&sr, 0, sizeof sr);
    memset(&cr, 0, sizeof cr);
    raw_reset_all();
    if (!(s = server_new(&sr, NULL))) { CHECK(0); goto done; }
    sr.echo = 1;
    if (!(c = client_new(&cr, wsr_server_port(s), "/echo?id=0", 0, NULL, NULL))) { CHECK(0); goto done; }
    ok = raw_upgrade(&RAW[1], wsr_server_port(s), 0, "/p?id=1", NULL) &&
         raw_upgrade(&RAW[2], wsr_server_port(s), 0, "/u?id=2", NULL) &&
         raw_upgrade(&RAW[3], wsr_server_port(s), 4096, "/r?id=3", NULL) &&
         raw_connect(&RAW[4], wsr_server_port(s), 0);
    CHECK(ok);
    if (!ok) goto done;
    PUMP_UNTIL(cr.opens && sr.opens == 4, 3000, (wsr_server_poll(s, 1), wsr_client_poll(c, 1)));
    CHECK(pumped);
    if (!pumped) goto done;
    for (k = 0; k < 40; k++) {
        char m[16];
        int n = snprintf(m, sizeof m, "e%d", k);
        uint64_t t = wsr_now_ms();
        switch (k) {
        case 5: CHECK(raw_send(&RAW[1], "\x81\x02hi", 4)); break;                 /* unmasked */
        case 10: CHECK(raw_send(&RAW[2], fr, client_frame(fr, WSR_OP_TEXT, "a\xFF", 2))); break;
        case 15:                                                                     /* reset mid-send */
            if (sr.slots[3].conn) CHECK_EQ_INT(wsr_conn_send(sr.slots[3].conn, WSR_MSG_BINARY, big, sizeof big), WSR_OK);
            wsr_server_poll(s, 0);
            {
                struct linger lg;
                lg.l_onoff = 1;
                lg.l_linger = 0;
                setsockopt(RAW[3].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
                raw_close(&RAW[3]);
            }
            break;
        case 20: CHECK(raw_send_str(&RAW[4], "HELLO THERE\r\n\r\n")); break;       /* not HTTP */
        default: break;
        }
        CHECK_EQ_INT(wsr_send_text(c, m, (size_t)n), WSR_OK);
        sent++;
        PUMP_UNTIL(cr.messages == sent || cr.closes, 1000, (wsr_server_poll(s, 1), wsr_client_poll(c, 1)));
        CHECK(pumped);
        if (!pumped) break;
        if (wsr_now_ms() - t > max_rt) max_rt = wsr_now_ms() - t;
    }
    PUMP_UNTIL(raw_ended(&RAW[4]), 2000, (wsr_server_poll(s, 1), wsr_client_poll(c, 1)));
    CHECK(starts_with(&RAW[4], "HTTP/1.1 400 "));
    raw_close(&RAW[4]);
    PUMP_UNTIL(sr.closes == 3 && sr.errors == 1, 2000, (wsr_server_poll(s, 1), wsr_client_poll(c, 1)));
    CHECK(pumped);
    CHECK_EQ_INT(cr.messages, 40);
    CHECK_EQ_INT(cr.closes, 0);
    CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_OPEN);
    CHECK_EQ_INT(sr.slots[0].closes, 0);
    CHECK_EQ_INT(sr.slots[0].messages, 40);
    CHECK(max_rt <= SLACK(200));
    CHECK_EQ_INT(sr.slots[1].why.code, WSR_ERR_PROTOCOL);
    CHECK_EQ_INT(sr.slots[1].why.close_code, 1002);
    CHECK_EQ_INT(sr.slots[2].why.code, WSR_ERR_PROTOCOL);
    CHECK_EQ_INT(sr.slots[2].why.close_code, 1007);
    CHECK_EQ_INT(sr.slots[2].messages, 0);
    CHECK(sr.slots[3].why.code == WSR_ERR_RESET || sr.slots[3].why.code == WSR_ERR_EOF);
    CHECK_EQ_INT(sr.slots[3].why.close_code, 1006);
    CHECK_EQ_INT(sr.errors, 1);
    CHECK_EQ_INT(sr.err[0].http_status, 400);
    /* The 1002 and 1007 clients got their close frames. */
    PUMP_UNTIL(raw_ended(&RAW[1]) && raw_ended(&RAW[2]), 1000, wsr_server_poll(s, 1));
    {
        int op = -1, j;
        unsigned char pl[128];
        size_t plen = 0;
        for (j = 1; j <= 2; j++) {
            CHECK(raw_first_frame(&RAW[j], &op, pl, &plen, sizeof pl));
            CHECK_EQ_INT(op, WSR_OP_CLOSE);
            CHECK_EQ_INT(plen >= 2 ? pl[0] << 8 | pl[1] : 0, j == 1 ? 1002 : 1007);
        }
    }
    CHECK_EQ_INT(wsr_server_conn_count(s), 1);
done:
    wsr_client_free(c);
    wsr_server_free(s);
    raw_close_all();
}

/* ---- memory held by idle connections ------------------------------------------ */

/* Counts the bytes the server holds: each block carries its size in front. */
typedef struct held { size_t bytes; } held;
static void *held_alloc(size_t n, void *user) {
    size_t *p = (size_t *)malloc(n + 16);
    if (!p) return NULL;
    *p = n;
    ((held *)user)->bytes += n;
    return (char *)p + 16;
}
static void held_free(void *ptr, void *user) {
    if (!ptr) return;
    ptr = (char *)ptr - 16;
    ((held *)user)->bytes -= *(size_t *)ptr;
    free(ptr);
}

TEST(idle_connections_give_their_buffers_back) {
    /* A server's connections are mostly idle. After the upgrade one holds
       no handshake buffers; a short message needs a small read buffer; a
       big one a 64 KiB buffer (or more, while the message is gathered),
       which goes back once the connection has been quiet for a ping
       interval. */
    enum { N = 8 };
    held h;
    srec sr;
    wsr_server_config cfg;
    wsr_server *s;
    crec cr[N];
    wsr_client *c[N];
    size_t base, per_conn;
    int i;
    memset(&h, 0, sizeof h);
    memset(&sr, 0, sizeof sr);
    memset(cr, 0, sizeof cr);
    memset(c, 0, sizeof c);
    wsr_server_config_init(&cfg);
    cfg.allocator.alloc_fn = held_alloc;
    cfg.allocator.free_fn = held_free;
    cfg.allocator.user = &h;
    cfg.ping_interval_ms = 300;
    cfg.pong_timeout_ms = 5000;
    s = server_new(&sr, &cfg);
    CHECK(s != NULL);
    if (!s) return;
    base = h.bytes;
    for (i = 0; i < N; i++) c[i] = client_new(&cr[i], wsr_server_port(s), "/", 0, NULL, NULL);
    PUMP_UNTIL(sr.opens == N, 5000, { wsr_server_poll(s, 1); for (i = 0; i < N; i++) wsr_client_poll(c[i], 0); });
    CHECK_EQ_INT(sr.opens, N);
    PUMP_FOR(50, { wsr_server_poll(s, 1); for (i = 0; i < N; i++) wsr_client_poll(c[i], 0); });
    per_conn = (h.bytes - base) / N;
    if (getenv("WSR_TEST_SHOW") || per_conn > 2048) printf("  idle after the upgrade: %lu bytes per connection\n", (unsigned long)per_conn);
    CHECK(per_conn <= 2048);                 /* was 6.4 KiB with the head's and the 101's buffers kept */
    for (i = 0; i < N; i++) CHECK_EQ_INT(wsr_send_text(c[i], "hi", 2), WSR_OK);
    PUMP_UNTIL(sr.messages == N, 5000, { wsr_server_poll(s, 1); for (i = 0; i < N; i++) wsr_client_poll(c[i], 0); });
    CHECK_EQ_INT(sr.messages, N);
    per_conn = (h.bytes - base) / N;
    CHECK(per_conn <= 4096);                 /* a short message: a small read buffer */
    {
        static unsigned char big[200000];
        for (i = 0; i < N; i++) CHECK_EQ_INT(wsr_send_binary(c[i], big, sizeof big), WSR_OK);
    }
    PUMP_UNTIL(sr.messages == 2 * N, 5000, { wsr_server_poll(s, 1); for (i = 0; i < N; i++) wsr_client_poll(c[i], 0); });
    CHECK_EQ_INT(sr.messages, 2 * N);
    per_conn = (h.bytes - base) / N;
    CHECK(per_conn >= 65536);                /* a busy one reads big, for fewer system calls */
    /* Quiet for more than the ping interval: pinged, and the buffer is back. */
    PUMP_FOR(700, { wsr_server_poll(s, 1); for (i = 0; i < N; i++) wsr_client_poll(c[i], 0); });
    per_conn = (h.bytes - base) / N;
    if (getenv("WSR_TEST_SHOW") || per_conn > 4096) printf("  quiet after a message: %lu bytes per connection\n", (unsigned long)per_conn);
    CHECK(per_conn <= 4096);
    CHECK_EQ_INT(sr.closes, 0);
    for (i = 0; i < N; i++) wsr_client_free(c[i]);
    wsr_server_free(s);
    CHECK_EQ_INT((long)h.bytes, 0);          /* and everything is returned at the end */
}

TEST_MAIN()
