/* test_reconnect_live.c - reconnection, keepalive and threads on real sockets.

   Every peer listens on 127.0.0.1 port 0 (a restarted server binds again the
   port its predecessor got): an in-process wsr_server polled in the same
   thread as the client, a wsr_server polled by a second thread, or a raw TCP
   peer written here that misbehaves on purpose (never answers, stalls after
   the upgrade, refuses with 401 or 503). Every wait is bounded and every
   socket and thread is released on every path, so a bug fails checks instead
   of hanging the run or leaking into the next test. */
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include "wsr_test.h"

#include <ctype.h>
#include "wsr_test_sock.h"
#include <pthread.h>
#include <time.h>

/* Deadlines are generous upper bounds; WSR_TEST_TIME_SCALE stretches them
   (not the timing bounds under test) for valgrind. */
static int time_scale(void) {
    const char *s = getenv("WSR_TEST_TIME_SCALE");
    int v = s ? atoi(s) : 1;
    return v > 0 ? v : 1;
}

static int pumped;
#define PUMP_UNTIL(cond, ms, POLLS)                                          \
    do {                                                                     \
        uint64_t pu_deadline_ = wsr_now_ms() + (uint64_t)(ms) * (uint64_t)time_scale(); \
        pumped = 0;                                                          \
        while (!(pumped = !!(cond)) && wsr_now_ms() < pu_deadline_) { POLLS; } \
    } while (0)

/* Runs POLLS for ms milliseconds whatever happens. */
#define PUMP_FOR(ms, POLLS)                                                  \
    do {                                                                     \
        uint64_t pf_until_ = wsr_now_ms() + (uint64_t)(ms);                  \
        while (wsr_now_ms() < pf_until_) { POLLS; }                          \
    } while (0)

static void sleep_ms(int ms) {
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static long long since(uint64_t later, uint64_t earlier) { return (long long)later - (long long)earlier; }

/* One lock for every recorder: callbacks run on the client's or the
   server's thread in the threaded test, and cost nothing elsewhere. The
   main thread never calls the library while it holds it. */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
#define LOCK() pthread_mutex_lock(&g_mu)
#define UNLOCK() pthread_mutex_unlock(&g_mu)

/* ---- client recorder -------------------------------------------------------- */

#define MAX_TAG 512
#define MAX_EVENTS 64

typedef struct cli_rec {
    int opens, closes, ends, pongs, messages;
    uint64_t open_at, close_at, end_at;
    wsr_error why;                 /* the last on_close */
    wsr_error first_why[MAX_EVENTS];   /* every on_close, in order */
    wsr_state state_in_close;
    wsr_error end_why;
    wsr_state state_in_end;
    int nrc, rc_attempt[MAX_EVENTS], rc_delay[MAX_EVENTS];   /* on_reconnecting */
    int written[MAX_TAG];          /* on_delivery WRITTEN per tag */
    int other_fates;               /* any other fate, any tag */
    int bad_tags;                  /* a tag out of range */
    /* Messages: numbers parsed from "m <k>", with when they came. */
    int nums[256], nnums;
    uint64_t num_at[256];
    /* Threaded test: block once in on_message. */
    int block_state;               /* 0 not yet, 1 blocking, 2 done */
    uint64_t block_start, block_end;
    pthread_t open_tid, end_tid;   /* the threads on_open and on_end ran on */
} cli_rec;

static void c_open(wsr_client *c, const char *sub, void *user) {
    cli_rec *r = (cli_rec *)user;
    (void)c; (void)sub;
    LOCK();
    r->opens++;
    r->open_at = wsr_now_ms();
    r->open_tid = pthread_self();
    UNLOCK();
}
static void c_close(wsr_client *c, const wsr_error *why, void *user) {
    cli_rec *r = (cli_rec *)user;
    wsr_state st = wsr_client_state(c);
    LOCK();
    if (r->closes < MAX_EVENTS) r->first_why[r->closes] = *why;
    r->closes++;
    r->why = *why;
    r->close_at = wsr_now_ms();
    r->state_in_close = st;
    UNLOCK();
}
static void c_end(wsr_client *c, const wsr_error *why, void *user) {
    cli_rec *r = (cli_rec *)user;
    wsr_state st = wsr_client_state(c);
    LOCK();
    r->ends++;
    r->end_why = *why;
    r->end_at = wsr_now_ms();
    r->end_tid = pthread_self();
    r->state_in_end = st;
    UNLOCK();
}
static int c_reconnecting(wsr_client *c, int attempt, int delay_ms, const wsr_error *cause, void *user) {
    cli_rec *r = (cli_rec *)user;
    (void)c; (void)cause;
    LOCK();
    if (r->nrc < MAX_EVENTS) {
        r->rc_attempt[r->nrc] = attempt;
        r->rc_delay[r->nrc] = delay_ms;
    }
    r->nrc++;
    UNLOCK();
    return 1;
}
static void c_delivery(wsr_client *c, uint64_t tag, wsr_delivery fate, void *user) {
    cli_rec *r = (cli_rec *)user;
    (void)c;
    LOCK();
    if (tag >= MAX_TAG) r->bad_tags++;
    else if (fate == WSR_DELIVERY_WRITTEN) r->written[tag]++;
    else r->other_fates++;
    UNLOCK();
}
static void c_pong(wsr_client *c, const void *data, size_t len, void *user) {
    cli_rec *r = (cli_rec *)user;
    (void)c; (void)data; (void)len;
    LOCK();
    r->pongs++;
    UNLOCK();
}
static void c_message(wsr_client *c, wsr_msg_type type, const void *data, size_t len, void *user) {
    cli_rec *r = (cli_rec *)user;
    char buf[32];
    int block = 0;
    (void)c; (void)type;
    if (len >= sizeof buf) len = sizeof buf - 1;
    memcpy(buf, data, len);
    buf[len] = '\0';
    LOCK();
    r->messages++;
    if (strcmp(buf, "block") == 0 && r->block_state == 0) {
        r->block_state = 1;
        r->block_start = wsr_now_ms();
        block = 1;
    } else if (buf[0] == 'm' && buf[1] == ' ' && r->nnums < 256) {
        r->num_at[r->nnums] = wsr_now_ms();
        r->nums[r->nnums++] = atoi(buf + 2);
    }
    UNLOCK();
    if (block) {
        /* The application is busy for a whole second inside a callback. */
        sleep_ms(1000);
        LOCK();
        r->block_end = wsr_now_ms();
        r->block_state = 2;
        UNLOCK();
    }
}

static void client_cfg(wsr_client_config *cfg, cli_rec *r, char *url, size_t cap, int port) {
    wsr_client_config_init(cfg);
    snprintf(url, cap, "ws://127.0.0.1:%d/live", port);
    cfg->url = url;
    cfg->on_open = c_open;
    cfg->on_close = c_close;
    cfg->on_end = c_end;
    cfg->on_reconnecting = c_reconnecting;
    cfg->on_delivery = c_delivery;
    cfg->on_pong = c_pong;
    cfg->on_message = c_message;
    cfg->user = r;
    cfg->backoff.initial_ms = 50;
    cfg->backoff.jitter = WSR_JITTER_NONE;
    cfg->ping_interval_ms = 0;          /* only the tests about keepalive ping */
}

static wsr_client *client_new(const wsr_client_config *cfg) {
    wsr_error err;
    wsr_client *c = wsr_client_new(cfg, &err);
    if (!c) printf("wsr_client_new: %s\n", err.message);
    return c;
}

#define BIG_MSG 65536

/* ---- in-process server recorder ---------------------------------------------- */

typedef struct srv_rec {
    int opens, closes, messages;
    int echo;
    int nums[1024], nnums;         /* every message "<k>" or "m <k>" / "r <k>" as k */
    int bad;                       /* a message that was not a number */
    int big;                       /* binary messages of BIG_MSG bytes */
    wsr_error why;
    uint64_t open_at, close_at;
} srv_rec;

static void s_open(wsr_conn *conn, void *user) {
    srv_rec *r = (srv_rec *)user;
    (void)conn;
    LOCK();
    r->opens++;
    r->open_at = wsr_now_ms();
    UNLOCK();
}
static void s_close(wsr_conn *conn, const wsr_error *why, void *user) {
    srv_rec *r = (srv_rec *)user;
    (void)conn;
    LOCK();
    r->closes++;
    r->why = *why;
    r->close_at = wsr_now_ms();
    UNLOCK();
}
static void s_message(wsr_conn *conn, wsr_msg_type type, const void *data, size_t len, void *user) {
    srv_rec *r = (srv_rec *)user;
    char buf[32];
    const char *p = buf;
    int echo;
    size_t n = len < sizeof buf - 1 ? len : sizeof buf - 1;
    memcpy(buf, data, n);
    buf[n] = '\0';
    LOCK();
    r->messages++;
    if (type == WSR_MSG_BINARY && len == BIG_MSG) {
        r->big++;
        UNLOCK();
        return;
    }
    if ((buf[0] == 'm' || buf[0] == 'r') && buf[1] == ' ') p = buf + 2;
    if (len < sizeof buf && *p >= '0' && *p <= '9') {
        if (r->nnums < 1024) r->nums[r->nnums++] = atoi(p);
    } else if (strcmp(buf, "block") != 0) {
        r->bad++;
    }
    echo = r->echo;
    UNLOCK();
    if (echo) wsr_conn_send(conn, type, data, len);
}

static wsr_server *server_start(srv_rec *r, int port) {
    wsr_server_config cfg;
    wsr_error err;
    wsr_server *s;
    wsr_server_config_init(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = port;
    cfg.on_open = s_open;
    cfg.on_close = s_close;
    cfg.on_message = s_message;
    cfg.user = r;
    s = wsr_server_new(&cfg, &err);
    if (!s) printf("wsr_server_new(port %d): %s\n", port, err.message);
    return s;
}

static void poll2(wsr_client *c, wsr_server *s) {
    if (c) wsr_client_poll(c, 1);
    if (s) wsr_server_poll(s, 1);
}

/* ---- a raw TCP peer ---------------------------------------------------------- */

static void set_nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL, 0);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int raw_listen(int *port) {
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = 0;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 8) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
        close(fd);
        return -1;
    }
    set_nonblock(fd);
    *port = ntohs(a.sin_port);
    return fd;
}

static int raw_send_all(int fd, const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    uint64_t deadline = wsr_now_ms() + 3000;
    while (n > 0 && wsr_now_ms() < deadline) {
        ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
        if (k > 0) { b += k; n -= (size_t)k; continue; }
        if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return 0;
        { struct pollfd pf; pf.fd = fd; pf.events = POLLOUT; pf.revents = 0; poll(&pf, 1, 5); }
    }
    return n == 0;
}

typedef struct inbox {
    unsigned char buf[8192];
    size_t len;
    int eof, err;
} inbox;

static void inbox_drain(int fd, inbox *in) {
    while (!in->eof && !in->err) {
        ssize_t k;
        if (in->len == sizeof in->buf) { char junk[512]; k = recv(fd, junk, sizeof junk, 0); }
        else k = recv(fd, in->buf + in->len, sizeof in->buf - in->len, 0);
        if (k > 0) { if (in->len < sizeof in->buf) in->len += (size_t)k; continue; }
        if (k == 0) { in->eof = 1; break; }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) in->err = errno;
        break;
    }
}

static size_t head_end(const unsigned char *p, size_t n) {
    size_t i;
    for (i = 0; i + 4 <= n; i++)
        if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n') return i + 4;
    return 0;
}

/* The value of Sec-WebSocket-Key in a request head, or 0. */
static size_t find_key(const unsigned char *h, size_t n, char *key, size_t cap) {
    static const char name[] = "\nsec-websocket-key:";
    size_t i, j, k = sizeof name - 1;
    for (i = 0; i + k <= n; i++) {
        for (j = 0; j < k && tolower(h[i + j]) == name[j]; j++) {}
        if (j < k) continue;
        i += k;
        while (i < n && (h[i] == ' ' || h[i] == '\t')) i++;
        for (j = 0; i < n && h[i] != '\r' && j + 1 < cap; ) key[j++] = (char)h[i++];
        key[j] = '\0';
        return j;
    }
    return 0;
}

/* Decodes one frame at p. Returns its size, or 0 if incomplete. */
static size_t decode_frame(const unsigned char *p, size_t n, int *opcode, int *masked, size_t *plen) {
    size_t h = 2;
    uint64_t len;
    if (n < 2) return 0;
    *opcode = p[0] & 0x0F;
    *masked = (p[1] & 0x80) != 0;
    len = p[1] & 0x7F;
    if (len == 126) { if (n < 4) return 0; len = (uint64_t)p[2] << 8 | p[3]; h = 4; }
    else if (len == 127) return 0;            /* not expected here */
    if (*masked) h += 4;
    if (n < h || n - h < len) return 0;
    *plen = (size_t)len;
    return h + (size_t)len;
}

#define RAW_MAX 8

typedef struct raw_conn {
    int fd;                        /* -1 once closed */
    uint64_t accepted_at, answered_at;
    int answered;
    size_t head_len;               /* bytes of the upgrade request in `in` */
    inbox in;
} raw_conn;

/* A peer that accepts every connection and, per connection i: never reads
   (answer == 0), or reads the upgrade request and sends `refusal` then
   closes (i < refuse_n), or answers 101 (answer_101) and never reads or
   writes again. */
typedef struct raw_srv {
    int lfd, port;
    int accepts;                   /* all connections accepted, even past RAW_MAX */
    raw_conn conns[RAW_MAX];
    int answer;
    const char *refusal;
    int refuse_n;
    int answer_101;
} raw_srv;

static raw_srv *raw_new(void) {
    raw_srv *r = (raw_srv *)calloc(1, sizeof *r);
    int i;
    if (!r) return NULL;
    for (i = 0; i < RAW_MAX; i++) r->conns[i].fd = -1;
    r->lfd = raw_listen(&r->port);
    if (r->lfd < 0) { free(r); return NULL; }
    return r;
}

static void raw_free(raw_srv *r) {
    int i;
    if (!r) return;
    for (i = 0; i < RAW_MAX; i++)
        if (r->conns[i].fd >= 0) close(r->conns[i].fd);
    close(r->lfd);
    free(r);
}

static void raw_answer(raw_srv *r, int i) {
    raw_conn *rc = &r->conns[i];
    size_t he;
    inbox_drain(rc->fd, &rc->in);
    if (!(he = head_end(rc->in.buf, rc->in.len))) return;
    rc->head_len = he;
    if (i < r->refuse_n && r->refusal) {
        raw_send_all(rc->fd, r->refusal, strlen(r->refusal));
        rc->answered = 1;
        rc->answered_at = wsr_now_ms();
        close(rc->fd);                 /* the request was read whole: a FIN, not a reset */
        rc->fd = -1;
    } else if (r->answer_101) {
        char key[64], acc[29], resp[256];
        int n;
        find_key(rc->in.buf, he, key, sizeof key);
        wsr_accept_key(key, strlen(key), acc);
        n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n\r\n", acc);
        raw_send_all(rc->fd, resp, (size_t)n);
        rc->answered = 1;
        rc->answered_at = wsr_now_ms();
    }
}

/* Accepts and answers; waits up to wait_ms for something to do. */
static void raw_serve(raw_srv *r, int wait_ms) {
    struct pollfd pf[RAW_MAX + 1];
    int map[RAW_MAX + 1], n = 1, i;
    pf[0].fd = r->lfd;
    pf[0].events = POLLIN;
    pf[0].revents = 0;
    for (i = 0; i < RAW_MAX && r->answer; i++) {
        if (r->conns[i].fd < 0 || r->conns[i].answered) continue;
        pf[n].fd = r->conns[i].fd;
        pf[n].events = POLLIN;
        pf[n].revents = 0;
        map[n++] = i;
    }
    if (poll(pf, (nfds_t)n, wait_ms) <= 0) return;
    for (i = 1; i < n; i++)
        if (pf[i].revents) raw_answer(r, map[i]);
    if (pf[0].revents & POLLIN) {
        for (;;) {
            int fd = accept(r->lfd, NULL, NULL);
            if (fd < 0) break;
            if (r->accepts < RAW_MAX) {
                raw_conn *rc = &r->conns[r->accepts];
                set_nonblock(fd);
                rc->fd = fd;
                rc->accepted_at = wsr_now_ms();
            } else {
                close(fd);
            }
            r->accepts++;
        }
    }
}

static void poll_raw(wsr_client *c, raw_srv *r) {
    if (c) wsr_client_poll(c, 1);
    raw_serve(r, 1);
}

/* ---- 1. a server that dies and comes back, twice ------------------------------ */

static void send_num(wsr_client *c, int k, int *bad) {
    char m[16];
    int n = snprintf(m, sizeof m, "%d", k);
    if (wsr_send_tracked(c, WSR_MSG_TEXT, m, (size_t)n, (uint64_t)k) != WSR_OK) (*bad)++;
}

/* The wait on_reconnecting must announce with initial 50, factor 2, max 200, no jitter. */
static int expected_delay(int attempt) {
    int d = 50, i;
    for (i = 1; i < attempt && d < 200; i++) d *= 2;
    return d < 200 ? d : 200;
}

TEST(server_restart_twice_numbered_stream_exactly_once) {
    static srv_rec sr;
    static cli_rec cr;
    wsr_client_config cfg;
    wsr_server *s;
    wsr_client *c;
    char url[64];
    int port, next = 1, round, i, bad_sends = 0;
    memset(&sr, 0, sizeof sr);
    memset(&cr, 0, sizeof cr);
    if (!(s = server_start(&sr, 0))) { CHECK(0); return; }
    port = wsr_server_port(s);
    client_cfg(&cfg, &cr, url, sizeof url, port);
    cfg.backoff.max_ms = 200;
    cfg.backoff.factor = 2.0;
    cfg.backoff.min_uptime_ms = 0;      /* every connection that opened was a success */
    if (!(c = client_new(&cfg))) { CHECK(0); wsr_server_free(s); return; }
    PUMP_UNTIL(cr.opens == 1 && sr.opens == 1, 3000, poll2(c, s));
    CHECK(pumped);

    for (round = 0; round < 2 && s; round++) {
        int closes0 = cr.closes, rc0 = cr.nrc, down_from, k;
        /* Up: numbered messages, read by the server. */
        for (i = 0; i < 20; i++) send_num(c, next++, &bad_sends);
        PUMP_UNTIL(sr.nnums == next - 1, 3000, poll2(c, s));
        CHECK(pumped);
        CHECK_EQ_INT(wsr_client_queued_messages(c), 0);
        CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_OPEN);

        /* The server dies with everything read: its sockets just close. */
        down_from = next;
        wsr_server_free(s);
        s = NULL;
        /* Sent at once, before the client could notice... */
        for (i = 0; i < 10; i++) send_num(c, next++, &bad_sends);
        /* ...and while it finds out and retries against a closed port. */
        for (i = 0; i < 10; i++) {
            PUMP_FOR(25, wsr_client_poll(c, 1));
            send_num(c, next++, &bad_sends);
        }
        CHECK(wsr_client_state(c) != WSR_STATE_OPEN);
        CHECK_EQ_INT(wsr_client_queued_messages(c), next - down_from);
        CHECK_EQ_INT(wsr_client_queued_messages(c), 20);
        CHECK(cr.closes >= closes0 + 2);          /* the dropped link, then at least one refused attempt */
        if (cr.closes > closes0 && closes0 < MAX_EVENTS) {
            CHECK_EQ_INT(cr.first_why[closes0].code, WSR_ERR_EOF);
            CHECK_EQ_INT(cr.first_why[closes0].close_code, 1006);
        }
        for (k = closes0 + 1; k < cr.closes && k < MAX_EVENTS; k++)
            CHECK_EQ_INT(cr.first_why[k].code, WSR_ERR_REFUSED);
        CHECK(cr.nrc >= rc0 + 2);
        if (cr.nrc > rc0 && rc0 < MAX_EVENTS) {
            CHECK_EQ_INT(cr.rc_attempt[rc0], 1);  /* min_uptime_ms 0: the count started again */
            CHECK_EQ_INT(cr.rc_delay[rc0], 50);
        }
        for (k = rc0; k < cr.nrc && k < MAX_EVENTS; k++) {
            CHECK_EQ_INT(cr.rc_attempt[k], k - rc0 + 1);
            CHECK_EQ_INT(cr.rc_delay[k], expected_delay(cr.rc_attempt[k]));
        }
        CHECK_EQ_INT(cr.ends, 0);

        /* Back on the same port: the queue goes out, then the stream goes on. */
        if (!(s = server_start(&sr, port))) { CHECK(0); break; }
        PUMP_UNTIL(sr.nnums == next - 1 && cr.opens == round + 2, 3000, poll2(c, s));
        CHECK(pumped);
        CHECK_EQ_INT(sr.opens, round + 2);
        CHECK_EQ_INT(wsr_client_queued_messages(c), 0);
    }
    if (s) {
        for (i = 0; i < 10; i++) send_num(c, next++, &bad_sends);
        PUMP_UNTIL(sr.nnums == next - 1, 3000, poll2(c, s));
        CHECK(pumped);
    }

    /* Every number once, in order; every tag WRITTEN once, nothing else. */
    CHECK_EQ_INT(bad_sends, 0);
    CHECK_EQ_INT(next - 1, 90);
    CHECK_EQ_INT(sr.nnums, next - 1);
    CHECK_EQ_INT(sr.bad, 0);
    {
        int out_of_order = 0, wrong_written = 0;
        for (i = 0; i < sr.nnums; i++)
            if (sr.nums[i] != i + 1) {
                if (!out_of_order) printf("  server got %d at position %d\n", sr.nums[i], i + 1);
                out_of_order++;
            }
        for (i = 1; i < next; i++)
            if (cr.written[i] != 1) {
                if (!wrong_written) printf("  tag %d written %d times\n", i, cr.written[i]);
                wrong_written++;
            }
        CHECK_EQ_INT(out_of_order, 0);
        CHECK_EQ_INT(wrong_written, 0);
    }
    CHECK_EQ_INT(cr.opens, 3);
    CHECK_EQ_INT(cr.ends, 0);
    wsr_client_free(c);
    wsr_server_free(s);
    CHECK_EQ_INT(cr.other_fates, 0);      /* nothing was left for free() to report */
    CHECK_EQ_INT(cr.bad_tags, 0);
}

/* ---- 2. a server that accepts TCP and never answers the upgrade ---------------- */

TEST(unanswered_upgrade_times_out_and_retries) {
    cli_rec cr;
    wsr_client_config cfg;
    wsr_client *c;
    raw_srv *r;
    char url[64];
    uint64_t t0;
    memset(&cr, 0, sizeof cr);
    if (!(r = raw_new())) { CHECK(0); return; }
    client_cfg(&cfg, &cr, url, sizeof url, r->port);
    cfg.connect_timeout_ms = 300;
    t0 = wsr_now_ms();
    if (!(c = client_new(&cfg))) { CHECK(0); raw_free(r); return; }
    PUMP_UNTIL(cr.closes >= 1, 3000, poll_raw(c, r));
    CHECK(pumped);
    CHECK_EQ_INT(r->accepts, 1);
    CHECK_EQ_INT(cr.why.code, WSR_ERR_TIMEOUT);
    CHECK_EQ_INT(cr.why.close_code, 1006);
    CHECK_EQ_INT(cr.why.transient, 1);
    CHECK_EQ_INT(cr.why.attempts, 1);
    CHECK_EQ_INT(cr.state_in_close, WSR_STATE_WAITING);
    CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_WAITING);
    CHECK(since(cr.close_at, t0) >= 300);
    CHECK(since(cr.close_at, t0) <= 1000);
    CHECK_EQ_INT(cr.nrc, 1);
    CHECK_EQ_INT(cr.rc_attempt[0], 1);
    CHECK_EQ_INT(cr.rc_delay[0], 50);
    /* The retry: a second connection about 50 ms later. */
    PUMP_UNTIL(r->accepts >= 2, 2000, poll_raw(c, r));
    CHECK(pumped);
    CHECK_EQ_INT(r->accepts, 2);
    if (r->accepts >= 2) {
        long long gap = since(r->conns[1].accepted_at, cr.close_at);
        if (gap < 45 || gap > 500) printf("  retry came %lld ms after the timeout\n", gap);
        CHECK(gap >= 45 && gap <= 500);
    }
    CHECK_EQ_INT(cr.ends, 0);
    CHECK_EQ_INT(cr.opens, 0);
    wsr_client_free(c);
    raw_free(r);
}

/* ---- 3. a peer that completes the upgrade and then stalls -------------------- */

TEST(stalled_peer_fails_keepalive_in_time) {
    cli_rec cr;
    wsr_client_config cfg;
    wsr_client *c;
    raw_srv *r;
    char url[64];
    memset(&cr, 0, sizeof cr);
    if (!(r = raw_new())) { CHECK(0); return; }
    r->answer = 1;
    r->answer_101 = 1;
    client_cfg(&cfg, &cr, url, sizeof url, r->port);
    cfg.ping_interval_ms = 200;
    cfg.pong_timeout_ms = 300;
    cfg.backoff.initial_ms = 2000;      /* no second attempt during the test */
    if (!(c = client_new(&cfg))) { CHECK(0); raw_free(r); return; }
    PUMP_UNTIL(cr.opens == 1, 3000, poll_raw(c, r));
    CHECK(pumped);
    PUMP_UNTIL(cr.closes >= 1, 3000, poll_raw(c, r));
    CHECK(pumped);
    if (cr.closes >= 1) {
        long long dt = since(cr.close_at, cr.open_at);
        if (dt < 450 || dt > 1500) printf("  dead peer found after %lld ms\n", dt);
        CHECK(dt >= 450);
        CHECK(dt <= 1500);
    }
    CHECK_EQ_INT(cr.closes, 1);
    CHECK_EQ_INT(cr.why.code, WSR_ERR_TIMEOUT);
    CHECK_EQ_INT(cr.why.close_code, 1006);
    CHECK_EQ_INT(cr.why.transient, 1);
    CHECK_EQ_INT(cr.state_in_close, WSR_STATE_WAITING);
    CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_WAITING);
    CHECK_EQ_INT(cr.nrc, 1);
    CHECK_EQ_INT(cr.ends, 0);
    CHECK_EQ_INT(r->accepts, 1);
    /* What the stalled peer was sent after the upgrade: exactly one
       keepalive ping (masked, 4-byte sequence number), then the end. */
    if (r->accepts >= 1 && r->conns[0].fd >= 0) {
        raw_conn *rc = &r->conns[0];
        int opcode = -1, masked = 0;
        size_t plen = 0, fsize;
        PUMP_UNTIL(rc->in.eof || rc->in.err, 2000, (inbox_drain(rc->fd, &rc->in), sleep_ms(1)));
        CHECK(pumped);
        CHECK(rc->in.len > rc->head_len);
        fsize = decode_frame(rc->in.buf + rc->head_len, rc->in.len - rc->head_len, &opcode, &masked, &plen);
        CHECK_EQ_INT(opcode, WSR_OP_PING);
        CHECK_EQ_INT(masked, 1);
        CHECK_EQ_INT(plen, 4);
        CHECK_EQ_INT(rc->head_len + fsize, rc->in.len);
    }
    wsr_client_free(c);
    raw_free(r);
}

/* ---- 4. 401: stop at once, never knock again -------------------------------- */

TEST(http_401_stops_for_good) {
    cli_rec cr;
    wsr_client_config cfg;
    wsr_client *c;
    raw_srv *r;
    char url[64];
    memset(&cr, 0, sizeof cr);
    if (!(r = raw_new())) { CHECK(0); return; }
    r->answer = 1;
    r->refusal = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n";
    r->refuse_n = RAW_MAX;
    client_cfg(&cfg, &cr, url, sizeof url, r->port);
    if (!(c = client_new(&cfg))) { CHECK(0); raw_free(r); return; }
    PUMP_UNTIL(cr.ends >= 1, 3000, poll_raw(c, r));
    CHECK(pumped);
    CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(cr.closes, 1);
    CHECK_EQ_INT(cr.why.code, WSR_ERR_HANDSHAKE);
    CHECK_EQ_INT(cr.why.http_status, 401);
    CHECK_EQ_INT(cr.why.transient, 0);
    CHECK_EQ_INT(cr.end_why.code, WSR_ERR_HANDSHAKE);
    CHECK_EQ_INT(cr.end_why.http_status, 401);
    CHECK_EQ_INT(cr.state_in_end, WSR_STATE_CLOSED);
    CHECK_EQ_INT(wsr_client_error(c)->http_status, 401);
    CHECK_EQ_INT(cr.nrc, 0);
    /* A second later: still one connection, one ending. */
    PUMP_FOR(1000, poll_raw(c, r));
    CHECK_EQ_INT(r->accepts, 1);
    CHECK_EQ_INT(cr.ends, 1);
    CHECK_EQ_INT(cr.closes, 1);
    CHECK_EQ_INT(cr.opens, 0);
    CHECK_EQ_INT(wsr_send_text(c, "x", 1), WSR_ERR_STATE);
    wsr_client_free(c);
    raw_free(r);
}

/* ---- 5. 503 with Retry-After: the server's wait wins over the backoff ---------- */

TEST(http_503_retry_after_is_respected) {
    cli_rec cr;
    wsr_client_config cfg;
    wsr_client *c;
    raw_srv *r;
    char url[64];
    memset(&cr, 0, sizeof cr);
    if (!(r = raw_new())) { CHECK(0); return; }
    r->answer = 1;
    r->refusal = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\nContent-Length: 0\r\n\r\n";
    r->refuse_n = 1;
    r->answer_101 = 1;                  /* the second attempt is let in */
    client_cfg(&cfg, &cr, url, sizeof url, r->port);
    if (!(c = client_new(&cfg))) { CHECK(0); raw_free(r); return; }
    PUMP_UNTIL(cr.closes >= 1, 3000, poll_raw(c, r));
    CHECK(pumped);
    CHECK_EQ_INT(cr.why.code, WSR_ERR_HANDSHAKE);
    CHECK_EQ_INT(cr.why.http_status, 503);
    CHECK_EQ_INT(cr.why.retry_after_ms, 2000);
    CHECK_EQ_INT(cr.why.transient, 1);
    CHECK_EQ_INT(cr.state_in_close, WSR_STATE_WAITING);
    CHECK_EQ_INT(cr.nrc, 1);
    CHECK_EQ_INT(cr.rc_delay[0], 2000);
    PUMP_UNTIL(r->accepts >= 2 && cr.opens == 1, 4000, poll_raw(c, r));
    CHECK(pumped);
    CHECK_EQ_INT(r->accepts, 2);
    CHECK_EQ_INT(cr.opens, 1);
    if (r->accepts >= 2) {
        long long gap = since(r->conns[1].accepted_at, r->conns[0].answered_at);
        if (gap < 2000 || gap > 2600) printf("  second connection %lld ms after the 503\n", gap);
        CHECK(gap >= 2000);
        CHECK(gap <= 2600);
    }
    CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_OPEN);
    CHECK_EQ_INT(cr.ends, 0);
    wsr_client_free(c);
    raw_free(r);
}

/* ---- 6. the client on its own thread ---------------------------------------- */

typedef struct srv_thread {
    wsr_server *s;
    pthread_t tid;
    int stop;                      /* under g_mu */
    int started;
} srv_thread;

static void *srv_thread_main(void *arg) {
    srv_thread *t = (srv_thread *)arg;
    for (;;) {
        int stop;
        LOCK();
        stop = t->stop;
        UNLOCK();
        if (stop) break;
        wsr_server_poll(t->s, 5);
    }
    return NULL;
}

static void srv_thread_stop(srv_thread *t) {
    if (!t->started) return;
    LOCK();
    t->stop = 1;
    UNLOCK();
    pthread_join(t->tid, NULL);
    t->started = 0;
}

/* Reads an int from a recorder under the lock. */
#define GET(expr) get_locked_int_(&(expr))
static int get_locked_int_(const int *p) {
    int v;
    LOCK();
    v = *p;
    UNLOCK();
    return v;
}

TEST(thread_mode_survives_busy_callback_and_busy_main) {
    static srv_rec sr;
    static cli_rec cr;
    srv_thread st;
    wsr_client_config cfg;
    wsr_client *c = NULL;
    char url[64];
    int i, bad_sends = 0, pongs0, pongs1;
    uint64_t block_end;
    memset(&sr, 0, sizeof sr);
    memset(&cr, 0, sizeof cr);
    memset(&st, 0, sizeof st);
    sr.echo = 1;
    if (!(st.s = server_start(&sr, 0))) { CHECK(0); return; }
    if (pthread_create(&st.tid, NULL, srv_thread_main, &st) != 0) { CHECK(0); wsr_server_free(st.s); return; }
    st.started = 1;
    client_cfg(&cfg, &cr, url, sizeof url, wsr_server_port(st.s));
    cfg.ping_interval_ms = 100;
    cfg.pong_timeout_ms = 300;
    if (!(c = client_new(&cfg))) { CHECK(0); goto done; }
    CHECK_EQ_INT(wsr_client_start_thread(c), WSR_OK);
    CHECK_EQ_INT(wsr_client_poll(c, 0), WSR_ERR_STATE);
    PUMP_UNTIL(GET(cr.opens) == 1 && GET(sr.opens) == 1, 3000, sleep_ms(2));
    CHECK(pumped);

    /* on_message blocks a second; meanwhile the main thread sends. */
    CHECK_EQ_INT(wsr_send_text(c, "block", 5), WSR_OK);
    PUMP_UNTIL(GET(cr.block_state) >= 1, 3000, sleep_ms(1));
    CHECK(pumped);
    /* (These wait for the client's lock while the callback holds it, as the
       README says; what matters here is that nothing is lost or reordered.) */
    for (i = 0; i < 20; i++) {
        char m[16];
        int n = snprintf(m, sizeof m, "m %d", i);
        if (wsr_send_text(c, m, (size_t)n) != WSR_OK) bad_sends++;
    }
    PUMP_UNTIL(GET(cr.nnums) == 20, 4000, sleep_ms(2));
    CHECK(pumped);
    CHECK_EQ_INT(bad_sends, 0);
    LOCK();
    block_end = cr.block_end;
    {
        int order = 0, early = 0;
        for (i = 0; i < cr.nnums; i++) {
            if (cr.nums[i] != i) order++;
            if (cr.num_at[i] < block_end) early++;
        }
        UNLOCK();
        CHECK_EQ_INT(order, 0);
        CHECK_EQ_INT(early, 0);     /* all arrive after the callback returned */
    }
    CHECK_EQ_INT(GET(cr.block_state), 2);
    CHECK_EQ_INT(GET(cr.closes), 0);
    CHECK_EQ_INT(GET(cr.opens), 1);
    CHECK_EQ_INT(GET(sr.opens), 1);
    CHECK_EQ_INT(GET(sr.closes), 0);

    /* The main thread is busy for 1.5 s; the client's thread keeps pinging. */
    pongs0 = GET(cr.pongs);
    sleep_ms(1500);
    pongs1 = GET(cr.pongs);
    if (pongs1 - pongs0 < 5) printf("  only %d pongs in 1.5 s\n", pongs1 - pongs0);
    CHECK(pongs1 - pongs0 >= 5);        /* about 14 at one ping per 100 ms of silence */
    CHECK(wsr_client_rtt_ms(c) >= 0);
    CHECK_EQ_INT(GET(cr.closes), 0);
    CHECK_EQ_INT(GET(sr.opens), 1);
    CHECK_EQ_INT(GET(sr.closes), 0);
    CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_OPEN);

    /* Then the results go out, and the client closes cleanly. */
    for (i = 0; i < 10; i++) {
        char m[16];
        int n = snprintf(m, sizeof m, "r %d", 100 + i);
        if (wsr_send_tracked(c, WSR_MSG_TEXT, m, (size_t)n, (uint64_t)(100 + i)) != WSR_OK) bad_sends++;
    }
    CHECK_EQ_INT(bad_sends, 0);
    CHECK_EQ_INT(wsr_client_flush(c, 2000), WSR_OK);
    CHECK_EQ_INT(wsr_client_queued_messages(c), 0);
    {
        int w = 0;
        LOCK();
        for (i = 100; i < 110; i++) w += cr.written[i] == 1;
        UNLOCK();
        CHECK_EQ_INT(w, 10);
    }
    CHECK_EQ_INT(wsr_client_close(c, 1000, "done"), WSR_OK);
    CHECK_EQ_INT(wsr_client_wait_closed(c, 2000), WSR_OK);
    CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(GET(cr.ends), 1);
    CHECK_EQ_INT(GET(cr.closes), 1);
    LOCK();
    CHECK_EQ_INT(cr.why.code, WSR_ERR_CLOSED);
    CHECK_EQ_INT(cr.why.close_code, 1000);
    CHECK_EQ_INT(cr.end_why.code, WSR_ERR_CLOSED);
    /* "callbacks run on the client's thread": on_end too. */
    CHECK(pthread_equal(cr.end_tid, cr.open_tid));
    CHECK(!pthread_equal(cr.end_tid, pthread_self()));
    UNLOCK();
    /* The server read every result before the close. */
    PUMP_UNTIL(GET(sr.closes) == 1, 2000, sleep_ms(2));
    CHECK(pumped);
    LOCK();
    {
        int got = 0;
        for (i = 0; i < sr.nnums; i++) got += sr.nums[i] >= 100 && sr.nums[i] < 110;
        CHECK_EQ_INT(got, 10);
        CHECK_EQ_INT(sr.why.close_code, 1000);
        CHECK_EQ_INT(sr.bad, 0);
    }
    UNLOCK();
done:
    wsr_client_free(c);                 /* joins the client's thread */
    srv_thread_stop(&st);
    wsr_server_free(st.s);
    CHECK_EQ_INT(cr.other_fates, 0);
}

/* ---- 7. deadlines the kernel enforces ---------------------------------------- */

#if defined(__linux__)
static void check_sockopts(wsr_client *c, int keepalive, int idle, int intvl, int cnt, unsigned user_timeout) {
    int fd = (int)wsr_client_socket(c), v = -1;
    unsigned int u = 12345;
    socklen_t l;
    CHECK(wsr_client_socket(c) != WSR_INVALID_SOCKET);
    if (wsr_client_socket(c) == WSR_INVALID_SOCKET) return;
    l = sizeof v;
    CHECK_EQ_INT(getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, &l), 0);
    CHECK_EQ_INT(!!v, keepalive);
    if (keepalive) {
        l = sizeof v;
        CHECK_EQ_INT(getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, &l), 0);
        CHECK_EQ_INT(v, idle);
        l = sizeof v;
        CHECK_EQ_INT(getsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &v, &l), 0);
        CHECK_EQ_INT(v, intvl);
        l = sizeof v;
        CHECK_EQ_INT(getsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &v, &l), 0);
        CHECK_EQ_INT(v, cnt);
    }
    l = sizeof u;
    CHECK_EQ_INT(getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &u, &l), 0);
    CHECK_EQ_INT(u, user_timeout);
}

TEST(tcp_keepalive_and_user_timeout_on_socket) {
    srv_rec sr;
    cli_rec cr, cr2;
    wsr_client_config cfg;
    wsr_server *s;
    wsr_client *c, *c2;
    char url[64];
    memset(&sr, 0, sizeof sr);
    memset(&cr, 0, sizeof cr);
    memset(&cr2, 0, sizeof cr2);
    if (!(s = server_start(&sr, 0))) { CHECK(0); return; }
    client_cfg(&cfg, &cr, url, sizeof url, wsr_server_port(s));
    cfg.tcp_keepalive_idle_s = 7;
    cfg.tcp_keepalive_interval_s = 3;
    cfg.tcp_keepalive_count = 4;
    cfg.tcp_user_timeout_ms = 4321;
    if (!(c = client_new(&cfg))) { CHECK(0); wsr_server_free(s); return; }
    PUMP_UNTIL(cr.opens == 1, 3000, poll2(c, s));
    CHECK(pumped);
    check_sockopts(c, 1, 7, 3, 4, 4321);
    /* The next connection's socket gets them too. */
    CHECK_EQ_INT(wsr_client_reconnect(c), WSR_OK);
    PUMP_UNTIL(cr.opens == 2, 3000, poll2(c, s));
    CHECK(pumped);
    check_sockopts(c, 1, 7, 3, 4, 4321);
    /* Switched off: no keepalive, the system's retransmission timeout. */
    client_cfg(&cfg, &cr2, url, sizeof url, wsr_server_port(s));
    cfg.tcp_keepalive_idle_s = 0;
    cfg.tcp_user_timeout_ms = 0;
    if ((c2 = client_new(&cfg)) != NULL) {
        PUMP_UNTIL(cr2.opens == 1, 3000, (poll2(c2, s), wsr_client_poll(c, 0)));
        CHECK(pumped);
        check_sockopts(c2, 0, 0, 0, 0, 0);
        wsr_client_free(c2);
    } else {
        CHECK(0);
    }
    wsr_client_free(c);
    wsr_server_free(s);
}
#endif

/* ---- 8. wsr_client_reconnect() on an open link -------------------------------- */

TEST(reconnect_call_replaces_open_link_at_once) {
    srv_rec sr;
    cli_rec cr;
    wsr_client_config cfg;
    wsr_server *s;
    wsr_client *c;
    char url[64];
    uint64_t t0;
    int bad = 0;
    memset(&sr, 0, sizeof sr);
    memset(&cr, 0, sizeof cr);
    if (!(s = server_start(&sr, 0))) { CHECK(0); return; }
    client_cfg(&cfg, &cr, url, sizeof url, wsr_server_port(s));
    cfg.backoff.initial_ms = 5000;      /* a backoff wait would show */
    if (!(c = client_new(&cfg))) { CHECK(0); wsr_server_free(s); return; }
    PUMP_UNTIL(cr.opens == 1 && sr.opens == 1, 3000, poll2(c, s));
    CHECK(pumped);
    send_num(c, 1, &bad);               /* queued just before: goes out exactly once */
    t0 = wsr_now_ms();
    CHECK_EQ_INT(wsr_client_reconnect(c), WSR_OK);
    PUMP_UNTIL(sr.closes == 1 && sr.opens == 2 && cr.opens == 2, 2000, poll2(c, s));
    CHECK(pumped);
    if (sr.closes == 1 && sr.opens == 2) {
        long long end_after = since(sr.close_at, t0), open_after = since(sr.open_at, t0);
        if (end_after > 200 || open_after > 200)
            printf("  old link ended after %lld ms, new one opened after %lld ms\n", end_after, open_after);
        CHECK(end_after <= 200);
        CHECK(open_after <= 200);
    }
    CHECK_EQ_INT(sr.why.close_code, 1001);    /* the client said so with a close frame */
    CHECK_EQ_INT(cr.closes, 1);
    CHECK_EQ_INT(cr.nrc, 0);                  /* no backoff wait announced */
    CHECK_EQ_INT(cr.ends, 0);
    CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_OPEN);
    /* The message sent before the call arrived once. */
    PUMP_FOR(50, poll2(c, s));
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(sr.nnums, 1);
    CHECK_EQ_INT(sr.nnums >= 1 ? sr.nums[0] : 0, 1);
    CHECK_EQ_INT(cr.written[1], 1);
    CHECK_EQ_INT(wsr_server_conn_count(s), 1);

    /* Again with 4 MiB queued, more than is framed ahead of the socket: the
       link is replaced for the same reason, and every message still arrives
       exactly once (whole on one link or the other). */
    {
        static unsigned char big[BIG_MSG];
        int i, w = 0;
        memset(big, 0xA5, sizeof big);
        for (i = 0; i < 64; i++)
            if (wsr_send_tracked(c, WSR_MSG_BINARY, big, sizeof big, (uint64_t)(200 + i)) != WSR_OK) bad++;
        CHECK_EQ_INT(bad, 0);
        CHECK_EQ_INT(wsr_client_reconnect(c), WSR_OK);
        PUMP_UNTIL(sr.big == 64 && cr.opens == 3 && wsr_client_queued_messages(c) == 0, 5000, poll2(c, s));
        CHECK(pumped);
        CHECK_EQ_INT(cr.closes, 2);
        if (cr.closes == 2) {
            if (cr.first_why[1].code != WSR_ERR_CLOSED)
                printf("  reconnect with a long queue ended the link as: %s\n", cr.first_why[1].message);
            CHECK_EQ_INT(cr.first_why[1].code, WSR_ERR_CLOSED);
        }
        PUMP_FOR(50, poll2(c, s));
        CHECK_EQ_INT(sr.big, 64);
        for (i = 200; i < 264; i++) w += cr.written[i] == 1;
        CHECK_EQ_INT(w, 64);
        CHECK_EQ_INT(cr.opens, 3);
        CHECK_EQ_INT(cr.nrc, 0);
        CHECK_EQ_INT(cr.ends, 0);
    }
    wsr_client_free(c);
    wsr_server_free(s);
    CHECK_EQ_INT(cr.other_fates, 0);
}

/* ---- 9. a due keepalive must not write into a link that has already ended ----- */

/* "Reads come before writes, so a peer that has gone is noticed before more
   messages are written into a dead socket." The client sat busy past
   ping_interval_ms, the server died meanwhile (its FIN waits in the
   client's socket), then a message is sent and the client polled: the
   message must wait for the next connection, not go into the dead one. */
TEST(due_ping_does_not_write_into_dead_link) {
    srv_rec sr;
    cli_rec cr;
    wsr_client_config cfg;
    wsr_server *s;
    wsr_client *c;
    char url[64];
    int port, bad = 0;
    memset(&sr, 0, sizeof sr);
    memset(&cr, 0, sizeof cr);
    if (!(s = server_start(&sr, 0))) { CHECK(0); return; }
    port = wsr_server_port(s);
    client_cfg(&cfg, &cr, url, sizeof url, port);
    cfg.ping_interval_ms = 100;
    cfg.pong_timeout_ms = 1000;
    if (!(c = client_new(&cfg))) { CHECK(0); wsr_server_free(s); return; }
    PUMP_UNTIL(cr.opens == 1 && sr.opens == 1, 3000, poll2(c, s));
    CHECK(pumped);
    sleep_ms(150);                      /* busy: a keepalive is now due */
    wsr_server_free(s);                 /* everything read: the server's socket just closes */
    send_num(c, 1, &bad);
    PUMP_UNTIL(cr.closes >= 1, 2000, wsr_client_poll(c, 1));
    CHECK(pumped);
    CHECK_EQ_INT(cr.why.code, WSR_ERR_EOF);
    CHECK_EQ_INT(cr.written[1], 0);     /* not written into the dead link... */
    CHECK_EQ_INT(wsr_client_queued_messages(c), 1);   /* ...but kept for the next one */
    if ((s = server_start(&sr, port)) != NULL) {
        PUMP_UNTIL(cr.opens == 2 && sr.nnums == 1, 1500, poll2(c, s));
        CHECK(pumped);
    } else {
        CHECK(0);
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(sr.nnums, 1);
    CHECK_EQ_INT(cr.written[1], 1);
    wsr_client_free(c);
    wsr_server_free(s);
    CHECK_EQ_INT(cr.other_fates, 0);
}

TEST_MAIN()
