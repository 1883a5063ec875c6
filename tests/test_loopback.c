/* test_loopback.c - real sockets on 127.0.0.1: a wsr_client and a wsr_server
   (or a hand-written raw TCP peer) in the same process and thread, polled in
   turn until a condition holds or a deadline passes. Ports are always 0
   (picked by the OS). Every wait is bounded, so a bug fails a check instead
   of hanging the run. */
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include "wsr_test.h"

#include "wsr_test_sock.h"

/* Deadlines are generous upper bounds (a passing run takes a fraction of
   them); WSR_TEST_TIME_SCALE stretches them for valgrind. */
static int time_scale(void) {
    const char *s = getenv("WSR_TEST_TIME_SCALE");
    int v = s ? atoi(s) : 1;
    return v > 0 ? v : 1;
}

/* Polls until cond is true or ms milliseconds pass; `pumped` says which. */
static int pumped;
#define PUMP_UNTIL(cond, ms, POLLS)                                          \
    do {                                                                     \
        uint64_t pu_deadline_ = wsr_now_ms() + (uint64_t)(ms) * (uint64_t)time_scale(); \
        pumped = 0;                                                          \
        while (!(pumped = !!(cond)) && wsr_now_ms() < pu_deadline_) { POLLS; } \
    } while (0)

static void poll2(wsr_client *c, wsr_server *s) {
    if (c) wsr_client_poll(c, 1);
    if (s) wsr_server_poll(s, 1);
}

/* ---- recorders ------------------------------------------------------------ */

typedef struct cli_rec {
    int opens, closes, messages, pongs;
    char sub[64];
    wsr_error why;
    wsr_state state_in_close;
    wsr_msg_type msg_type;
    unsigned char *msg;            /* a copy of the last message */
    size_t msg_len;
    int numbered;                  /* check messages are "n <k>" with k = 0, 1, 2... */
    int next_num, num_errors;
    unsigned char pong[128];
    size_t pong_len;
} cli_rec;

static void c_open(wsr_client *c, const char *sub, void *user) {
    cli_rec *r = (cli_rec *)user;
    (void)c;
    r->opens++;
    snprintf(r->sub, sizeof r->sub, "%s", sub ? sub : "(null)");
}
static void c_close(wsr_client *c, const wsr_error *why, void *user) {
    cli_rec *r = (cli_rec *)user;
    r->closes++;
    r->why = *why;
    r->state_in_close = wsr_client_state(c);
}
static void c_message(wsr_client *c, wsr_msg_type type, const void *data, size_t len, void *user) {
    cli_rec *r = (cli_rec *)user;
    (void)c;
    r->messages++;
    r->msg_type = type;
    if (r->numbered) {
        char want[32];
        int n = snprintf(want, sizeof want, "n %d", r->next_num++);
        if ((size_t)n != len || memcmp(want, data, len) != 0) r->num_errors++;
        return;
    }
    free(r->msg);
    r->msg = (unsigned char *)malloc(len ? len : 1);
    if (len) memcpy(r->msg, data, len);
    r->msg_len = len;
}
static void c_pong(wsr_client *c, const void *data, size_t len, void *user) {
    cli_rec *r = (cli_rec *)user;
    (void)c;
    r->pongs++;
    r->pong_len = len;
    memcpy(r->pong, data, len < sizeof r->pong ? len : sizeof r->pong);
}

typedef struct srv_rec {
    int opens, closes, messages;
    int echo;                      /* send every message back */
    wsr_conn *conn;                /* the last opened connection (valid until its on_close) */
    char path[256], sub[64];
    wsr_error why;
    wsr_msg_type msg_type;
    size_t msg_len;
    const unsigned char *expect;   /* when set, each message must equal it */
    size_t expect_len;
    int mismatches;
    int numbered, next_num, num_errors;
} srv_rec;

static void s_open(wsr_conn *conn, void *user) {
    srv_rec *r = (srv_rec *)user;
    r->opens++;
    r->conn = conn;
    snprintf(r->path, sizeof r->path, "%s", wsr_conn_path(conn));
    snprintf(r->sub, sizeof r->sub, "%s", wsr_conn_subprotocol(conn));
}
static void s_close(wsr_conn *conn, const wsr_error *why, void *user) {
    srv_rec *r = (srv_rec *)user;
    r->closes++;
    r->why = *why;
    if (r->conn == conn) r->conn = NULL;
}
static void s_message(wsr_conn *conn, wsr_msg_type type, const void *data, size_t len, void *user) {
    srv_rec *r = (srv_rec *)user;
    r->messages++;
    r->msg_type = type;
    r->msg_len = len;
    if (r->expect && (len != r->expect_len || (len && memcmp(data, r->expect, len) != 0))) r->mismatches++;
    if (r->numbered) {
        char want[32];
        int n = snprintf(want, sizeof want, "n %d", r->next_num++);
        if ((size_t)n != len || memcmp(want, data, len) != 0) r->num_errors++;
    }
    if (r->echo && wsr_conn_send(conn, type, data, len) != WSR_OK) r->mismatches++;
}

static wsr_server *server_new(srv_rec *r, wsr_server_config *cfg_or_null) {
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
    cfg.user = r;
    s = wsr_server_new(&cfg, &err);
    if (!s) printf("wsr_server_new: %s\n", err.message);
    return s;
}

static void client_cfg(wsr_client_config *cfg, cli_rec *r, char *url, size_t url_cap, int port, const char *path) {
    wsr_client_config_init(cfg);
    snprintf(url, url_cap, "ws://127.0.0.1:%d%s", port, path ? path : "/");
    cfg->url = url;
    cfg->on_open = c_open;
    cfg->on_close = c_close;
    cfg->on_message = c_message;
    cfg->on_pong = c_pong;
    cfg->user = r;
    cfg->reconnect = 0;          /* one connection per test here; see test_reconnect_live.c */
}

static wsr_client *client_new(wsr_client_config *cfg) {
    wsr_error err;
    wsr_client *c = wsr_client_new(cfg, &err);
    if (!c) printf("wsr_client_new: %s\n", err.message);
    return c;
}

/* ---- payloads ------------------------------------------------------------- */

static void fill_binary(unsigned char *p, size_t n, unsigned seed) {
    size_t i;
    uint32_t x = 2463534242u ^ seed;
    for (i = 0; i < n; i++) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;   /* xorshift: every byte value, no period in sight */
        p[i] = (unsigned char)(x >> 24);
    }
}

/* Exactly n bytes of valid UTF-8 with 1-, 2-, 3- and 4-byte characters. */
static void fill_text(unsigned char *p, size_t n) {
    static const char *chars[] = { "a", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "Z", "\xD0\x96", "\xE6\x97\xA5" };
    size_t i = 0, k = 0;
    while (i < n) {
        const char *ch = chars[k++ % 7];
        size_t l = strlen(ch);
        if (l > n - i) { p[i++] = 'x'; continue; }
        memcpy(p + i, ch, l);
        i += l;
    }
}

/* ---- raw sockets ----------------------------------------------------------- */

static void set_nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL, 0);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int raw_connect(int port) {
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { close(fd); return -1; }
    set_nonblock(fd);
    return fd;
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

/* A raw peer's inbox: what it read, and how the stream ended. */
typedef struct inbox {
    unsigned char buf[8192];
    size_t len;
    int eof;                       /* recv returned 0 */
    int err;                       /* recv failed with this errno (e.g. ECONNRESET) */
} inbox;

/* Reads what is there without waiting. */
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

/* Where the HTTP head ends (after the blank line), or 0. */
static size_t head_end(const unsigned char *p, size_t n) {
    size_t i;
    for (i = 0; i + 4 <= n; i++)
        if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n') return i + 4;
    return 0;
}

/* Decodes one frame at p (masked or not). Returns its total size, or 0 if
   incomplete. */
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

static const char *VALID_UPGRADE =
    "GET /raw HTTP/1.1\r\n"
    "Host: 127.0.0.1\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";

/* ---- echo of every size ------------------------------------------------------ */

TEST(echo_sizes_text_and_binary) {
    static const size_t sizes[] = { 0, 1, 125, 126, 127, 65535, 65536, 1024 * 1024, 16 * 1024 * 1024 };
    const size_t nsizes = sizeof sizes / sizeof sizes[0];
    srv_rec sr;
    cli_rec cr;
    wsr_server_config scfg;
    wsr_client_config cfg;
    wsr_server *s;
    wsr_client *c;
    char url[128];
    unsigned char *buf = (unsigned char *)malloc(16 * 1024 * 1024);
    size_t i;
    int type;
    memset(&sr, 0, sizeof sr);
    memset(&cr, 0, sizeof cr);
    sr.echo = 1;
    wsr_server_config_init(&scfg);
    scfg.max_message_size = 16 * 1024 * 1024;
    if (!buf || !(s = server_new(&sr, &scfg))) { CHECK(0); free(buf); return; }
    client_cfg(&cfg, &cr, url, sizeof url, wsr_server_port(s), "/echo");
    cfg.max_message_size = 16 * 1024 * 1024;
    if (!(c = client_new(&cfg))) { CHECK(0); wsr_server_free(s); free(buf); return; }
    PUMP_UNTIL(cr.opens == 1 && sr.opens == 1, 3000, poll2(c, s));
    CHECK(pumped);
    for (type = WSR_MSG_TEXT; type <= WSR_MSG_BINARY; type++) {
        for (i = 0; i < nsizes; i++) {
            size_t n = sizes[i];
            int before = cr.messages, sbefore = sr.messages;
            if (type == WSR_MSG_TEXT) fill_text(buf, n);
            else fill_binary(buf, n, (unsigned)n);
            sr.expect = buf;
            sr.expect_len = n;
            CHECK_EQ_INT(wsr_send(c, (wsr_msg_type)type, buf, n), WSR_OK);
            PUMP_UNTIL(cr.messages > before || cr.closes, 10000, poll2(c, s));
            CHECK(pumped);
            CHECK_EQ_INT(sr.messages, sbefore + 1);
            CHECK_EQ_INT(sr.msg_len, n);
            CHECK_EQ_INT(sr.msg_type, type);
            CHECK_EQ_INT(cr.messages, before + 1);
            CHECK_EQ_INT(cr.msg_type, type);
            CHECK_EQ_INT(cr.msg_len, n);
            CHECK(cr.msg_len == n && (n == 0 || memcmp(cr.msg, buf, n) == 0));
            if (cr.msg_len != n) printf("  size %lu type %d: got %lu bytes\n", (unsigned long)n, type,
                                        (unsigned long)cr.msg_len);
        }
    }
    CHECK_EQ_INT(sr.mismatches, 0);
    CHECK_EQ_INT(cr.closes, 0);
    CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_OPEN);
    CHECK_EQ_INT(wsr_client_queued_bytes(c), 0);
    sr.expect = NULL;
    wsr_client_free(c);
    wsr_server_free(s);
    free(cr.msg);
    free(buf);
}

/* One byte over the limit: the receiver refuses it with 1009. */
TEST(message_over_limit_closes_1009) {
    srv_rec sr;
    cli_rec cr;
    wsr_server_config scfg;
    wsr_client_config cfg;
    wsr_server *s;
    wsr_client *c;
    char url[128];
    static unsigned char buf[70000];
    memset(&sr, 0, sizeof sr);
    memset(&cr, 0, sizeof cr);
    sr.echo = 1;
    wsr_server_config_init(&scfg);
    scfg.max_message_size = 65536;
    if (!(s = server_new(&sr, &scfg))) { CHECK(0); return; }
    client_cfg(&cfg, &cr, url, sizeof url, wsr_server_port(s), "/");
    if (!(c = client_new(&cfg))) { CHECK(0); wsr_server_free(s); return; }
    PUMP_UNTIL(cr.opens == 1 && sr.opens == 1, 3000, poll2(c, s));
    CHECK(pumped);
    fill_binary(buf, sizeof buf, 9);
    CHECK_EQ_INT(wsr_send_binary(c, buf, 65537), WSR_OK);
    PUMP_UNTIL(cr.closes && sr.closes, 3000, poll2(c, s));
    CHECK(pumped);
    CHECK_EQ_INT(sr.messages, 0);
    CHECK_EQ_INT(sr.why.code, WSR_ERR_TOO_BIG);
    CHECK_EQ_INT(sr.why.close_code, 1009);
    CHECK_EQ_INT(cr.why.close_code, 1009);
    CHECK_EQ_INT(cr.why.code, WSR_ERR_PEER_CLOSED);
    wsr_client_free(c);
    wsr_server_free(s);
    free(cr.msg);
}

TEST(many_small_messages_in_order) {
    srv_rec sr;
    cli_rec cr;
    wsr_client_config cfg;
    wsr_server *s;
    wsr_client *c;
    char url[128];
    int i, bad = 0;
    memset(&sr, 0, sizeof sr);
    memset(&cr, 0, sizeof cr);
    sr.echo = 1;
    sr.numbered = 1;
    cr.numbered = 1;
    if (!(s = server_new(&sr, NULL))) { CHECK(0); return; }
    client_cfg(&cfg, &cr, url, sizeof url, wsr_server_port(s), "/");
    if (!(c = client_new(&cfg))) { CHECK(0); wsr_server_free(s); return; }
    PUMP_UNTIL(cr.opens == 1, 3000, poll2(c, s));
    CHECK(pumped);
    for (i = 0; i < 10000; i++) {
        char m[32];
        int n = snprintf(m, sizeof m, "n %d", i);
        if (wsr_send(c, (i & 1) ? WSR_MSG_BINARY : WSR_MSG_TEXT, m, (size_t)n) != WSR_OK) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    PUMP_UNTIL(cr.messages == 10000 || cr.closes, 10000, poll2(c, s));
    CHECK(pumped);
    CHECK_EQ_INT(sr.messages, 10000);
    CHECK_EQ_INT(sr.num_errors, 0);
    CHECK_EQ_INT(cr.messages, 10000);
    CHECK_EQ_INT(cr.num_errors, 0);
    CHECK_EQ_INT(cr.next_num, 10000);
    CHECK_EQ_INT(cr.closes, 0);
    wsr_client_free(c);
    wsr_server_free(s);
}

TEST(messages_sent_before_open_arrive_in_order) {
    srv_rec sr;
    cli_rec cr;
    wsr_client_config cfg;
    wsr_server *s;
    wsr_client *c;
    char url[128];
    int i;
    memset(&sr, 0, sizeof sr);
    memset(&cr, 0, sizeof cr);
    sr.echo = 1;
    sr.numbered = 1;
    cr.numbered = 1;
    if (!(s = server_new(&sr, NULL))) { CHECK(0); return; }
    client_cfg(&cfg, &cr, url, sizeof url, wsr_server_port(s), "/");
    if (!(c = client_new(&cfg))) { CHECK(0); wsr_server_free(s); return; }
    CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_IDLE);
    for (i = 0; i < 50; i++) {
        char m[32];
        int n = snprintf(m, sizeof m, "n %d", i);
        CHECK_EQ_INT(wsr_send_text(c, m, (size_t)n), WSR_OK);
    }
    CHECK(wsr_client_queued_bytes(c) > 0);
    /* Start the attempt; more messages while it is under way. */
    wsr_client_poll(c, 0);
    CHECK(wsr_client_state(c) == WSR_STATE_CONNECTING || wsr_client_state(c) == WSR_STATE_HANDSHAKE);
    for (; i < 100; i++) {
        char m[32];
        int n = snprintf(m, sizeof m, "n %d", i);
        CHECK_EQ_INT(wsr_send_text(c, m, (size_t)n), WSR_OK);
    }
    PUMP_UNTIL(cr.messages == 100 || cr.closes, 5000, poll2(c, s));
    CHECK(pumped);
    CHECK_EQ_INT(cr.opens, 1);
    CHECK_EQ_INT(sr.messages, 100);
    CHECK_EQ_INT(sr.num_errors, 0);
    CHECK_EQ_INT(cr.messages, 100);
    CHECK_EQ_INT(cr.num_errors, 0);
    CHECK_EQ_INT(wsr_client_queued_bytes(c), 0);
    wsr_client_free(c);
    wsr_server_free(s);
}

TEST(fragmented_sends_arrive_whole) {
    srv_rec sr;
    cli_rec cr;
    wsr_server_config scfg;
    wsr_client_config cfg;
    wsr_server *s;
    wsr_client *c;
    char url[128];
    static unsigned char buf[100000];
    int type;
    memset(&sr, 0, sizeof sr);
    memset(&cr, 0, sizeof cr);
    sr.echo = 1;
    wsr_server_config_init(&scfg);
    scfg.send_fragment_size = 1000;
    if (!(s = server_new(&sr, &scfg))) { CHECK(0); return; }
    client_cfg(&cfg, &cr, url, sizeof url, wsr_server_port(s), "/");
    cfg.send_fragment_size = 1000;
    if (!(c = client_new(&cfg))) { CHECK(0); wsr_server_free(s); return; }
    PUMP_UNTIL(cr.opens == 1, 3000, poll2(c, s));
    CHECK(pumped);
    for (type = WSR_MSG_TEXT; type <= WSR_MSG_BINARY; type++) {
        int before = cr.messages, sbefore = sr.messages;
        if (type == WSR_MSG_TEXT) fill_text(buf, sizeof buf);   /* fragments split characters */
        else fill_binary(buf, sizeof buf, 77);
        sr.expect = buf;
        sr.expect_len = sizeof buf;
        CHECK_EQ_INT(wsr_send(c, (wsr_msg_type)type, buf, sizeof buf), WSR_OK);
        PUMP_UNTIL(cr.messages > before || cr.closes, 5000, poll2(c, s));
        CHECK(pumped);
        CHECK_EQ_INT(sr.messages, sbefore + 1);
        CHECK_EQ_INT(sr.msg_len, sizeof buf);
        CHECK_EQ_INT(sr.msg_type, type);
        CHECK_EQ_INT(cr.messages, before + 1);
        CHECK_EQ_INT(cr.msg_len, sizeof buf);
        CHECK(cr.msg_len == sizeof buf && memcmp(cr.msg, buf, sizeof buf) == 0);
    }
    CHECK_EQ_INT(sr.mismatches, 0);
    CHECK_EQ_INT(cr.closes, 0);
    wsr_client_free(c);
    wsr_server_free(s);
    free(cr.msg);
}

TEST(ping_pong) {
    srv_rec sr;
    cli_rec cr;
    wsr_client_config cfg;
    wsr_server *s;
    wsr_client *c;
    char url[128];
    unsigned char p125[125];
    memset(&sr, 0, sizeof sr);
    memset(&cr, 0, sizeof cr);
    sr.echo = 1;
    if (!(s = server_new(&sr, NULL))) { CHECK(0); return; }
    client_cfg(&cfg, &cr, url, sizeof url, wsr_server_port(s), "/");
    if (!(c = client_new(&cfg))) { CHECK(0); wsr_server_free(s); return; }
    PUMP_UNTIL(cr.opens == 1 && sr.conn, 3000, poll2(c, s));
    CHECK(pumped);
    /* Client ping: the server's pong carries the same payload. */
    CHECK_EQ_INT(wsr_send_ping(c, "ping-1", 6), WSR_OK);
    PUMP_UNTIL(cr.pongs == 1, 3000, poll2(c, s));
    CHECK(pumped);
    CHECK(cr.pong_len == 6 && memcmp(cr.pong, "ping-1", 6) == 0);
    fill_binary(p125, sizeof p125, 5);
    CHECK_EQ_INT(wsr_send_ping(c, p125, 125), WSR_OK);
    CHECK_EQ_INT(wsr_send_ping(c, p125, 126), WSR_ERR_INVALID);
    PUMP_UNTIL(cr.pongs == 2, 3000, poll2(c, s));
    CHECK(pumped);
    CHECK(cr.pong_len == 125 && memcmp(cr.pong, p125, 125) == 0);
    /* Server ping: the client answers by itself; the link stays up. */
    if (sr.conn) {
        CHECK_EQ_INT(wsr_conn_send_ping(sr.conn, "srv", 3), WSR_OK);
        CHECK_EQ_INT(wsr_conn_send_ping(sr.conn, p125, 126), WSR_ERR_INVALID);
    }
    {
        int i;
        for (i = 0; i < 20; i++) poll2(c, s);
    }
    CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_OPEN);
    CHECK_EQ_INT(cr.messages, 0);                 /* a ping is not a message */
    CHECK_EQ_INT(wsr_send_text(c, "after", 5), WSR_OK);
    PUMP_UNTIL(cr.messages == 1, 3000, poll2(c, s));
    CHECK(pumped);
    CHECK(cr.msg_len == 5 && memcmp(cr.msg, "after", 5) == 0);
    CHECK_EQ_INT(sr.closes, 0);
    CHECK_EQ_INT(cr.closes, 0);
    CHECK_EQ_INT(wsr_server_conn_count(s), 1);
    wsr_client_free(c);
    wsr_server_free(s);
    free(cr.msg);
}

/* ---- closing ----------------------------------------------------------------- */

TEST(close_from_client) {
    srv_rec sr;
    cli_rec cr;
    wsr_client_config cfg;
    wsr_server *s;
    wsr_client *c;
    char url[128];
    memset(&sr, 0, sizeof sr);
    memset(&cr, 0, sizeof cr);
    if (!(s = server_new(&sr, NULL))) { CHECK(0); return; }
    client_cfg(&cfg, &cr, url, sizeof url, wsr_server_port(s), "/");
    if (!(c = client_new(&cfg))) { CHECK(0); wsr_server_free(s); return; }
    PUMP_UNTIL(cr.opens == 1 && sr.opens == 1, 3000, poll2(c, s));
    CHECK(pumped);
    CHECK_EQ_INT(wsr_client_close(c, 1000, "bye"), WSR_OK);
    CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_CLOSING);
    CHECK_EQ_INT(wsr_send_text(c, "x", 1), WSR_ERR_STATE);
    PUMP_UNTIL(cr.closes && sr.closes, 3000, poll2(c, s));
    CHECK(pumped);
    CHECK_EQ_INT(cr.closes, 1);
    CHECK_EQ_INT(cr.why.code, WSR_ERR_CLOSED);
    CHECK_EQ_INT(cr.why.close_code, 1000);
    CHECK_EQ_INT(cr.state_in_close, WSR_STATE_CLOSED);
    CHECK_EQ_INT(sr.closes, 1);
    CHECK_EQ_INT(sr.why.code, WSR_ERR_PEER_CLOSED);
    CHECK_EQ_INT(sr.why.close_code, 1000);
    CHECK_EQ_STR(sr.why.close_reason, "bye");
    CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(wsr_client_error(c)->code, WSR_ERR_CLOSED);
    CHECK_EQ_INT(wsr_send_text(c, "x", 1), WSR_ERR_STATE);
    CHECK_EQ_INT(wsr_send_ping(c, "x", 1), WSR_ERR_STATE);
    CHECK_EQ_INT(wsr_client_close(c, 1000, NULL), WSR_ERR_STATE);
    {
        int i;
        for (i = 0; i < 5; i++) poll2(c, s);
    }
    CHECK_EQ_INT(cr.closes, 1);
    CHECK_EQ_INT(sr.closes, 1);
    CHECK_EQ_INT(wsr_server_conn_count(s), 0);
    wsr_client_free(c);
    wsr_server_free(s);
}

TEST(close_from_server) {
    srv_rec sr;
    cli_rec cr;
    wsr_client_config cfg;
    wsr_server *s;
    wsr_client *c;
    char url[128];
    memset(&sr, 0, sizeof sr);
    memset(&cr, 0, sizeof cr);
    if (!(s = server_new(&sr, NULL))) { CHECK(0); return; }
    client_cfg(&cfg, &cr, url, sizeof url, wsr_server_port(s), "/");
    if (!(c = client_new(&cfg))) { CHECK(0); wsr_server_free(s); return; }
    PUMP_UNTIL(cr.opens == 1 && sr.conn, 3000, poll2(c, s));
    CHECK(pumped);
    if (sr.conn) {
        CHECK_EQ_INT(wsr_conn_close(sr.conn, 1001, "going away"), WSR_OK);
        CHECK_EQ_INT(wsr_conn_send(sr.conn, WSR_MSG_TEXT, "x", 1), WSR_ERR_STATE);
    }
    PUMP_UNTIL(cr.closes && sr.closes, 3000, poll2(c, s));
    CHECK(pumped);
    CHECK_EQ_INT(cr.closes, 1);
    CHECK_EQ_INT(cr.why.code, WSR_ERR_PEER_CLOSED);
    CHECK_EQ_INT(cr.why.close_code, 1001);
    CHECK_EQ_STR(cr.why.close_reason, "going away");
    CHECK_EQ_INT(cr.why.transient, 1);
    CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(sr.closes, 1);
    CHECK_EQ_INT(sr.why.close_code, 1001);
    CHECK_EQ_INT(wsr_server_conn_count(s), 0);
    wsr_client_free(c);
    wsr_server_free(s);
}

TEST(server_killed) {
    srv_rec sr;
    cli_rec cr;
    wsr_client_config cfg;
    wsr_server *s;
    wsr_client *c;
    char url[128];
    memset(&sr, 0, sizeof sr);
    memset(&cr, 0, sizeof cr);
    if (!(s = server_new(&sr, NULL))) { CHECK(0); return; }
    client_cfg(&cfg, &cr, url, sizeof url, wsr_server_port(s), "/");
    if (!(c = client_new(&cfg))) { CHECK(0); wsr_server_free(s); return; }
    PUMP_UNTIL(cr.opens == 1 && sr.opens == 1, 3000, poll2(c, s));
    CHECK(pumped);
    wsr_server_free(s);
    PUMP_UNTIL(cr.closes, 3000, poll2(c, NULL));
    CHECK(pumped);
    CHECK_EQ_INT(cr.closes, 1);
    CHECK(cr.why.code == WSR_ERR_EOF || cr.why.code == WSR_ERR_RESET);
    CHECK_EQ_INT(cr.why.close_code, 1006);
    CHECK_EQ_INT(cr.why.transient, 1);
    CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_CLOSED);
    wsr_client_free(c);
}

TEST(connection_refused) {
    srv_rec sr;
    cli_rec cr;
    wsr_client_config cfg;
    wsr_server *s;
    wsr_client *c;
    char url[128];
    int port;
    memset(&sr, 0, sizeof sr);
    memset(&cr, 0, sizeof cr);
    if (!(s = server_new(&sr, NULL))) { CHECK(0); return; }
    port = wsr_server_port(s);
    CHECK(port > 0);
    wsr_server_free(s);
    client_cfg(&cfg, &cr, url, sizeof url, port, "/");
    if (!(c = client_new(&cfg))) { CHECK(0); return; }
    PUMP_UNTIL(cr.closes, 3000, poll2(c, NULL));
    CHECK(pumped);
    CHECK_EQ_INT(cr.closes, 1);
    CHECK_EQ_INT(cr.opens, 0);
    CHECK_EQ_INT(cr.why.code, WSR_ERR_REFUSED);
    CHECK_EQ_INT(cr.why.os_error, OS_ECONNREFUSED);
    CHECK_EQ_INT(cr.why.transient, 1);
    CHECK_EQ_INT(cr.why.close_code, 1006);
    CHECK(cr.why.message[0] != '\0');
    CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(wsr_client_error(c)->code, WSR_ERR_REFUSED);
    wsr_client_free(c);
}

/* ---- negotiation, paths, many clients ---------------------------------------- */

TEST(subprotocol_negotiation) {
    srv_rec sr;
    cli_rec cr;
    wsr_server_config scfg;
    wsr_client_config cfg;
    wsr_server *s;
    wsr_client *c;
    char url[128];
    memset(&sr, 0, sizeof sr);
    memset(&cr, 0, sizeof cr);
    wsr_server_config_init(&scfg);
    scfg.subprotocols = "v1.chat";
    if (!(s = server_new(&sr, &scfg))) { CHECK(0); return; }
    client_cfg(&cfg, &cr, url, sizeof url, wsr_server_port(s), "/");
    cfg.subprotocols = "v2.chat, v1.chat";
    if (!(c = client_new(&cfg))) { CHECK(0); wsr_server_free(s); return; }
    PUMP_UNTIL((cr.opens == 1 && sr.opens == 1) || cr.closes, 3000, poll2(c, s));
    CHECK(pumped);
    CHECK_EQ_INT(cr.opens, 1);
    CHECK_EQ_STR(cr.sub, "v1.chat");
    CHECK_EQ_STR(sr.sub, "v1.chat");
    if (sr.conn) CHECK_EQ_STR(wsr_conn_subprotocol(sr.conn), "v1.chat");
    wsr_client_free(c);

    /* No common subprotocol: the connection opens without one. */
    memset(&cr, 0, sizeof cr);
    cfg.subprotocols = "v3.chat";
    if (!(c = client_new(&cfg))) { CHECK(0); wsr_server_free(s); return; }
    PUMP_UNTIL((cr.opens == 1 && sr.opens == 2) || cr.closes, 3000, poll2(c, s));
    CHECK(pumped);
    CHECK_EQ_INT(cr.opens, 1);
    CHECK_EQ_STR(cr.sub, "");
    CHECK_EQ_STR(sr.sub, "");
    wsr_client_free(c);
    wsr_server_free(s);
}

/* IPv6: a server bound to ::1 and a client with a bracketed literal. The
   Host header must carry the brackets and the address family must follow
   what getaddrinfo returns. */
TEST(ipv6_loopback) {
    srv_rec sr;
    cli_rec cr;
    wsr_server_config scfg;
    wsr_client_config cfg;
    wsr_error err;
    wsr_server *s;
    wsr_client *c;
    char url[128];
    memset(&sr, 0, sizeof sr);
    memset(&cr, 0, sizeof cr);
    wsr_server_config_init(&scfg);
    scfg.host = "::1";
    scfg.on_open = s_open;
    scfg.on_close = s_close;
    scfg.on_message = s_message;
    scfg.user = &sr;
    sr.echo = 1;
    s = wsr_server_new(&scfg, &err);
    if (!s) { printf("  ::1 not available here: %s\n", err.message); CHECK(0); return; }
    client_cfg(&cfg, &cr, url, sizeof url, wsr_server_port(s), "/v6");
    snprintf(url, sizeof url, "ws://[::1]:%d/v6", wsr_server_port(s));
    if (!(c = client_new(&cfg))) { CHECK(0); wsr_server_free(s); return; }
    CHECK_EQ_INT(wsr_send_text(c, "six", 3), WSR_OK);
    PUMP_UNTIL(cr.messages == 1 || cr.closes, 3000, poll2(c, s));
    CHECK_EQ_INT(cr.messages, 1);
    CHECK(cr.msg_len == 3 && cr.msg && memcmp(cr.msg, "six", 3) == 0);
    CHECK_EQ_STR(sr.path, "/v6");
    free(cr.msg);
    wsr_client_free(c);
    wsr_server_free(s);
}

TEST(server_sees_path_with_query) {
    srv_rec sr;
    cli_rec cr;
    wsr_client_config cfg;
    wsr_server *s;
    wsr_client *c;
    char url[128];
    memset(&sr, 0, sizeof sr);
    memset(&cr, 0, sizeof cr);
    if (!(s = server_new(&sr, NULL))) { CHECK(0); return; }
    client_cfg(&cfg, &cr, url, sizeof url, wsr_server_port(s), "/room/1?token=abc");
    if (!(c = client_new(&cfg))) { CHECK(0); wsr_server_free(s); return; }
    PUMP_UNTIL(cr.opens == 1 && sr.conn, 3000, poll2(c, s));
    CHECK(pumped);
    CHECK_EQ_STR(sr.path, "/room/1?token=abc");
    if (sr.conn) {
        CHECK_EQ_STR(wsr_conn_path(sr.conn), "/room/1?token=abc");
        CHECK(wsr_conn_server(sr.conn) == s);
        wsr_conn_set_user(sr.conn, &sr);
        CHECK(wsr_conn_user(sr.conn) == &sr);
    }
    wsr_client_free(c);
    /* No path at all: "/". */
    memset(&cr, 0, sizeof cr);
    snprintf(url, sizeof url, "ws://127.0.0.1:%d", wsr_server_port(s));
    if (!(c = client_new(&cfg))) { CHECK(0); wsr_server_free(s); return; }
    PUMP_UNTIL(cr.opens == 1 && sr.opens == 2, 3000, poll2(c, s));
    CHECK(pumped);
    CHECK_EQ_STR(sr.path, "/");
    wsr_client_free(c);
    wsr_server_free(s);
}

#define NCLIENTS 20
static void poll_many(wsr_client **cs, int n, wsr_server *s) {
    int i;
    for (i = 0; i < n; i++) if (cs[i]) wsr_client_poll(cs[i], 0);
    wsr_server_poll(s, 1);
}
static int all_opened(const cli_rec *r, int n) {
    int i;
    for (i = 0; i < n; i++) if (r[i].opens != 1) return 0;
    return 1;
}
static int all_got(const cli_rec *r, int n, int messages) {
    int i;
    for (i = 0; i < n; i++) if (r[i].messages < messages) return 0;
    return 1;
}

TEST(many_clients_and_broadcast) {
    srv_rec sr;
    static cli_rec cr[NCLIENTS];
    wsr_client *cs[NCLIENTS];
    static char urls[NCLIENTS][128];
    wsr_client_config cfg;
    wsr_server *s;
    int i, ok = 1;
    memset(&sr, 0, sizeof sr);
    memset(cr, 0, sizeof cr);
    if (!(s = server_new(&sr, NULL))) { CHECK(0); return; }
    for (i = 0; i < NCLIENTS; i++) {
        client_cfg(&cfg, &cr[i], urls[i], sizeof urls[i], wsr_server_port(s), "/many");
        cs[i] = client_new(&cfg);
        if (!cs[i]) ok = 0;
    }
    CHECK(ok);
    if (!ok) { for (i = 0; i < NCLIENTS; i++) wsr_client_free(cs[i]); wsr_server_free(s); return; }
    PUMP_UNTIL(all_opened(cr, NCLIENTS) && sr.opens == NCLIENTS, 5000, poll_many(cs, NCLIENTS, s));
    CHECK(pumped);
    CHECK_EQ_INT(sr.opens, NCLIENTS);
    CHECK_EQ_INT(wsr_server_conn_count(s), NCLIENTS);
    CHECK_EQ_INT(wsr_server_broadcast(s, WSR_MSG_TEXT, "hello all", 9), WSR_OK);
    PUMP_UNTIL(all_got(cr, NCLIENTS, 1), 5000, poll_many(cs, NCLIENTS, s));
    CHECK(pumped);
    for (i = 0; i < NCLIENTS; i++) {
        CHECK_EQ_INT(cr[i].messages, 1);
        CHECK(cr[i].msg_len == 9 && memcmp(cr[i].msg, "hello all", 9) == 0);
    }
    /* Binary broadcast too. */
    CHECK_EQ_INT(wsr_server_broadcast(s, WSR_MSG_BINARY, "\x00\x01\x02", 3), WSR_OK);
    PUMP_UNTIL(all_got(cr, NCLIENTS, 2), 5000, poll_many(cs, NCLIENTS, s));
    CHECK(pumped);
    for (i = 0; i < NCLIENTS; i++)
        CHECK(cr[i].msg_type == WSR_MSG_BINARY && cr[i].msg_len == 3 && memcmp(cr[i].msg, "\x00\x01\x02", 3) == 0);
    /* Five leave: the count follows. */
    for (i = 0; i < 5; i++) CHECK_EQ_INT(wsr_client_close(cs[i], 1000, NULL), WSR_OK);
    PUMP_UNTIL(sr.closes == 5 && cr[0].closes && cr[1].closes && cr[2].closes && cr[3].closes && cr[4].closes,
               5000, poll_many(cs, NCLIENTS, s));
    CHECK(pumped);
    CHECK_EQ_INT(wsr_server_conn_count(s), NCLIENTS - 5);
    CHECK_EQ_INT(wsr_server_broadcast(s, WSR_MSG_TEXT, "rest", 4), WSR_OK);
    PUMP_UNTIL(all_got(cr + 5, NCLIENTS - 5, 3), 5000, poll_many(cs, NCLIENTS, s));
    CHECK(pumped);
    for (i = 0; i < 5; i++) CHECK_EQ_INT(cr[i].messages, 2);
    for (i = 0; i < NCLIENTS; i++) { wsr_client_free(cs[i]); free(cr[i].msg); }
    wsr_server_free(s);
}

/* ---- raw TCP clients against the server ------------------------------------- */

/* Sends `req` from a raw client and collects the answer until the server
   closes the socket (or the deadline). */
static void raw_exchange(wsr_server *s, int fd, const char *req, inbox *in) {
    CHECK(raw_send_all(fd, req, strlen(req)));
    PUMP_UNTIL((inbox_drain(fd, in), in->eof || in->err), 3000, wsr_server_poll(s, 1));
    CHECK(pumped);
}

TEST(raw_client_bad_request_gets_400) {
    srv_rec sr;
    wsr_server *s;
    int fd;
    static inbox in;
    memset(&sr, 0, sizeof sr);
    memset(&in, 0, sizeof in);
    if (!(s = server_new(&sr, NULL))) { CHECK(0); return; }
    fd = raw_connect(wsr_server_port(s));
    CHECK(fd >= 0);
    if (fd < 0) { wsr_server_free(s); return; }
    raw_exchange(s, fd, "GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", &in);
    CHECK(in.len >= 12 && memcmp(in.buf, "HTTP/1.1 400", 12) == 0);
    CHECK(in.eof);                                 /* and the server closed */
    CHECK_EQ_INT(sr.opens, 0);
    CHECK_EQ_INT(sr.closes, 0);                    /* never opened: no on_close */
    close(fd);
    wsr_server_poll(s, 0);
    CHECK_EQ_INT(wsr_server_conn_count(s), 0);

    /* Not even HTTP. */
    memset(&in, 0, sizeof in);
    fd = raw_connect(wsr_server_port(s));
    CHECK(fd >= 0);
    if (fd >= 0) {
        raw_exchange(s, fd, "HELLO THERE\r\n\r\n", &in);
        CHECK(in.len >= 12 && memcmp(in.buf, "HTTP/1.1 400", 12) == 0);
        close(fd);
    }
    wsr_server_free(s);
}

TEST(raw_client_version_8_gets_426) {
    srv_rec sr;
    wsr_server *s;
    int fd;
    static inbox in;
    memset(&sr, 0, sizeof sr);
    memset(&in, 0, sizeof in);
    if (!(s = server_new(&sr, NULL))) { CHECK(0); return; }
    fd = raw_connect(wsr_server_port(s));
    CHECK(fd >= 0);
    if (fd < 0) { wsr_server_free(s); return; }
    raw_exchange(s, fd,
                 "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n", &in);
    CHECK(in.len >= 12 && memcmp(in.buf, "HTTP/1.1 426", 12) == 0);
    if (in.len < sizeof in.buf) in.buf[in.len] = '\0';
    CHECK(strstr((const char *)in.buf, "Sec-WebSocket-Version: 13\r\n") != NULL);
    CHECK(in.eof);
    CHECK_EQ_INT(sr.opens, 0);
    close(fd);
    wsr_server_free(s);
}

/* A raw client that sent the valid upgrade and has the server's answer
   head in `in` (or the end of the stream). Returns its socket, or -1 (and
   a failed check). */
static int raw_upgraded(wsr_server *s, inbox *in) {
    int fd = raw_connect(wsr_server_port(s));
    CHECK(fd >= 0);
    if (fd < 0) return -1;
    CHECK(raw_send_all(fd, VALID_UPGRADE, strlen(VALID_UPGRADE)));
    PUMP_UNTIL((inbox_drain(fd, in), head_end(in->buf, in->len) || in->eof || in->err), 3000, wsr_server_poll(s, 1));
    CHECK(pumped);
    return fd;
}

TEST(raw_client_unmasked_frame_gets_1002) {
    srv_rec sr;
    wsr_server *s;
    int fd;
    static inbox in;
    size_t hl;
    memset(&sr, 0, sizeof sr);
    memset(&in, 0, sizeof in);
    if (!(s = server_new(&sr, NULL))) { CHECK(0); return; }
    if ((fd = raw_upgraded(s, &in)) < 0) { wsr_server_free(s); return; }
    hl = head_end(in.buf, in.len);
    CHECK(hl > 0);
    CHECK(in.len >= 12 && memcmp(in.buf, "HTTP/1.1 101", 12) == 0);
    in.buf[hl - 1] = '\0';
    /* The RFC 6455 §1.3 example key and its accept value. */
    CHECK(strstr((const char *)in.buf, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != NULL);
    CHECK_EQ_INT(sr.opens, 1);
    CHECK_EQ_STR(sr.path, "/raw");
    /* An unmasked text frame "hi": §5.1 says the server must close. */
    CHECK(raw_send_all(fd, "\x81\x02hi", 4));
    PUMP_UNTIL((inbox_drain(fd, &in), in.eof || in.err), 3000, wsr_server_poll(s, 1));
    CHECK(pumped);
    CHECK(in.eof);                                  /* the server closed the socket */
    {
        int op = -1, fin = 0, masked = 1;
        unsigned char pl[128];
        size_t plen = 0;
        size_t fl = in.len > hl ? decode_frame(in.buf + hl, in.len - hl, &op, &fin, &masked, pl, &plen, sizeof pl) : 0;
        CHECK(fl > 0);
        CHECK_EQ_INT(op, WSR_OP_CLOSE);
        CHECK(fin);
        CHECK(!masked);                             /* server frames are never masked */
        CHECK(plen >= 2);
        CHECK_EQ_INT(plen >= 2 ? (pl[0] << 8 | pl[1]) : 0, 1002);
        CHECK_EQ_INT(in.len, hl + fl);              /* nothing after the close frame */
    }
    CHECK_EQ_INT(sr.messages, 0);
    CHECK_EQ_INT(sr.closes, 1);
    CHECK_EQ_INT(sr.why.code, WSR_ERR_PROTOCOL);
    CHECK_EQ_INT(sr.why.close_code, 1002);
    close(fd);
    wsr_server_poll(s, 0);
    CHECK_EQ_INT(wsr_server_conn_count(s), 0);
    wsr_server_free(s);
}

/* A big text frame arriving in pieces: the server reads the rest of it
   straight into place. A bad byte in that rest is still found (1007), and
   a good frame whose characters straddle the pieces arrives whole. */
static size_t big_text_frame(unsigned char *out, size_t n, int bad_at) {
    static const unsigned char key[4] = {0x12, 0x34, 0x56, 0x78};
    size_t i, h = 0;
    out[h++] = 0x81;                               /* FIN, text */
    out[h++] = 0x80 | 127;                         /* masked, 64-bit length */
    for (i = 0; i < 8; i++) out[h++] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    memcpy(out + h, key, 4);
    h += 4;
    for (i = 0; i < n; i++) {                      /* "é" (2 bytes) after every 'a' */
        unsigned char ch = (i % 3 == 0) ? 'a' : (i % 3 == 1) ? 0xC3 : 0xA9;
        if ((int)i == bad_at) ch = 0xFF;           /* never valid in UTF-8 */
        out[h + i] = (unsigned char)(ch ^ key[i & 3]);
    }
    return h + n;
}

static void big_text_case(int bad_at) {
    enum { N = 300000 };                           /* a multiple of 3: whole characters */
    static unsigned char frame[N + 14];
    static inbox in;
    srv_rec sr;
    wsr_server *s;
    int fd;
    size_t len, first = 70001;                     /* ends inside a character */
    memset(&sr, 0, sizeof sr);
    memset(&in, 0, sizeof in);
    if (!(s = server_new(&sr, NULL))) { CHECK(0); return; }
    if ((fd = raw_upgraded(s, &in)) < 0) { wsr_server_free(s); return; }
    CHECK_EQ_INT(sr.opens, 1);
    len = big_text_frame(frame, N, bad_at);
    CHECK(raw_send_all(fd, frame, first));
    {                                              /* the server is now inside the payload */
        uint64_t until = wsr_now_ms() + 100;
        while (wsr_now_ms() < until) wsr_server_poll(s, 1);
    }
    CHECK(raw_send_all(fd, frame + first, len - first));
    PUMP_UNTIL((inbox_drain(fd, &in), sr.messages || in.eof || in.err), 5000, wsr_server_poll(s, 1));
    if (bad_at < 0) {
        CHECK_EQ_INT(sr.messages, 1);
        CHECK_EQ_INT(sr.msg_type, WSR_MSG_TEXT);
        CHECK_EQ_INT(sr.msg_len, N);
        CHECK_EQ_INT(sr.closes, 0);
    } else {
        /* Closed: with the rest of the frame unread, the kernel may answer
           with a reset rather than a FIN. */
        CHECK(in.eof || in.err);
        CHECK_EQ_INT(sr.messages, 0);
        CHECK_EQ_INT(sr.closes, 1);
        CHECK_EQ_INT(sr.why.code, WSR_ERR_PROTOCOL);
        CHECK_EQ_INT(sr.why.close_code, 1007);
    }
    close(fd);
    wsr_server_free(s);
}

TEST(big_text_frame_read_in_place_arrives_whole) { big_text_case(-1); }
TEST(big_text_frame_with_a_bad_byte_late_gets_1007) { big_text_case(250000); }

/* Upgrade and the first (masked) frame in one send: the frame is not lost. */
TEST(raw_client_upgrade_and_frame_in_one_send) {
    srv_rec sr;
    wsr_server *s;
    int fd;
    static inbox in;
    char req[512];
    size_t n = strlen(VALID_UPGRADE);
    memset(&sr, 0, sizeof sr);
    memset(&in, 0, sizeof in);
    if (!(s = server_new(&sr, NULL))) { CHECK(0); return; }
    fd = raw_connect(wsr_server_port(s));
    CHECK(fd >= 0);
    if (fd < 0) { wsr_server_free(s); return; }
    memcpy(req, VALID_UPGRADE, n);
    memcpy(req + n, "\x81\x82\x01\x02\x03\x04", 6);    /* "hi" masked with 01 02 03 04 */
    req[n + 6] = (char)('h' ^ 1);
    req[n + 7] = (char)('i' ^ 2);
    CHECK(raw_send_all(fd, req, n + 8));
    PUMP_UNTIL(sr.messages == 1 || sr.closes, 3000, (wsr_server_poll(s, 1), inbox_drain(fd, &in)));
    CHECK(pumped);
    CHECK_EQ_INT(sr.opens, 1);
    CHECK_EQ_INT(sr.messages, 1);
    CHECK_EQ_INT(sr.msg_len, 2);
    CHECK_EQ_INT(sr.msg_type, WSR_MSG_TEXT);
    CHECK_EQ_INT(sr.closes, 0);
    /* Now the raw client just disconnects: the server reports a drop. */
    close(fd);
    PUMP_UNTIL(sr.closes == 1, 3000, wsr_server_poll(s, 1));
    CHECK(pumped);
    CHECK(sr.why.code == WSR_ERR_EOF || sr.why.code == WSR_ERR_RESET);
    CHECK_EQ_INT(sr.why.close_code, 1006);
    CHECK_EQ_INT(wsr_server_conn_count(s), 0);
    wsr_server_free(s);
}

/* A raw client that connects and says nothing is dropped after
   handshake_timeout_ms. */
TEST(raw_client_silent_handshake_timeout) {
    srv_rec sr;
    wsr_server_config scfg;
    wsr_server *s;
    int fd;
    static inbox in;
    uint64_t t0, took;
    memset(&sr, 0, sizeof sr);
    memset(&in, 0, sizeof in);
    wsr_server_config_init(&scfg);
    scfg.handshake_timeout_ms = 200;
    if (!(s = server_new(&sr, &scfg))) { CHECK(0); return; }
    fd = raw_connect(wsr_server_port(s));
    CHECK(fd >= 0);
    if (fd < 0) { wsr_server_free(s); return; }
    t0 = wsr_now_ms();
    PUMP_UNTIL((inbox_drain(fd, &in), in.eof || in.err), 5000, wsr_server_poll(s, 10));
    took = wsr_now_ms() - t0;
    CHECK(pumped);
    CHECK(took >= 150 && took <= 3000);
    CHECK_EQ_INT(in.len, 0);
    CHECK_EQ_INT(sr.opens, 0);
    CHECK_EQ_INT(sr.closes, 0);
    wsr_server_poll(s, 0);
    CHECK_EQ_INT(wsr_server_conn_count(s), 0);
    close(fd);
    wsr_server_free(s);
}

/* The server starts the close; the raw client reads it and never answers:
   after close_timeout_ms the server drops it. No close frame came back, so
   the connection's close code is 1006 (RFC 6455 §7.1.5). */
TEST(raw_client_never_answers_server_close) {
    srv_rec sr;
    wsr_server_config scfg;
    wsr_server *s;
    int fd;
    static inbox in;
    size_t hl;
    uint64_t t0, took;
    memset(&sr, 0, sizeof sr);
    memset(&in, 0, sizeof in);
    wsr_server_config_init(&scfg);
    scfg.close_timeout_ms = 200;
    if (!(s = server_new(&sr, &scfg))) { CHECK(0); return; }
    fd = raw_connect(wsr_server_port(s));
    CHECK(fd >= 0);
    if (fd < 0) { wsr_server_free(s); return; }
    CHECK(raw_send_all(fd, VALID_UPGRADE, strlen(VALID_UPGRADE)));
    PUMP_UNTIL((inbox_drain(fd, &in), head_end(in.buf, in.len)) && sr.conn, 3000, wsr_server_poll(s, 1));
    CHECK(pumped);
    hl = head_end(in.buf, in.len);
    if (sr.conn) CHECK_EQ_INT(wsr_conn_close(sr.conn, 1001, "bye"), WSR_OK);
    t0 = wsr_now_ms();
    PUMP_UNTIL((inbox_drain(fd, &in), in.eof || in.err) && sr.closes, 5000, wsr_server_poll(s, 10));
    took = wsr_now_ms() - t0;
    CHECK(pumped);
    CHECK(took >= 150 && took <= 3000);
    {
        int op = -1, fin = 0, masked = 1;
        unsigned char pl[128];
        size_t plen = 0;
        size_t fl = in.len > hl ? decode_frame(in.buf + hl, in.len - hl, &op, &fin, &masked, pl, &plen, sizeof pl) : 0;
        CHECK(fl > 0);
        CHECK_EQ_INT(op, WSR_OP_CLOSE);
        CHECK(plen == 5 && pl[0] == 0x03 && pl[1] == 0xE9 && memcmp(pl + 2, "bye", 3) == 0);
    }
    CHECK_EQ_INT(sr.closes, 1);
    CHECK_EQ_INT(sr.why.code, WSR_ERR_TIMEOUT);
    CHECK_EQ_INT(sr.why.close_code, 1006);
    close(fd);
    wsr_server_free(s);
}

/* Over max_connections the newcomer gets 503 and is closed. */
TEST(raw_client_over_max_connections_gets_503) {
    srv_rec sr;
    wsr_server_config scfg;
    wsr_server *s;
    int fd1, fd2;
    static inbox in1, in2;
    memset(&sr, 0, sizeof sr);
    memset(&in1, 0, sizeof in1);
    memset(&in2, 0, sizeof in2);
    wsr_server_config_init(&scfg);
    scfg.max_connections = 1;
    if (!(s = server_new(&sr, &scfg))) { CHECK(0); return; }
    fd1 = raw_connect(wsr_server_port(s));
    CHECK(fd1 >= 0);
    if (fd1 < 0) { wsr_server_free(s); return; }
    CHECK(raw_send_all(fd1, VALID_UPGRADE, strlen(VALID_UPGRADE)));
    PUMP_UNTIL((inbox_drain(fd1, &in1), head_end(in1.buf, in1.len)), 3000, wsr_server_poll(s, 1));
    CHECK(pumped);
    CHECK(in1.len >= 12 && memcmp(in1.buf, "HTTP/1.1 101", 12) == 0);
    fd2 = raw_connect(wsr_server_port(s));
    CHECK(fd2 >= 0);
    if (fd2 >= 0) {
        PUMP_UNTIL((inbox_drain(fd2, &in2), in2.eof || in2.err), 3000, wsr_server_poll(s, 1));
        CHECK(pumped);
        CHECK(in2.len >= 12 && memcmp(in2.buf, "HTTP/1.1 503", 12) == 0);
        close(fd2);
    }
    wsr_server_poll(s, 0);
    CHECK_EQ_INT(wsr_server_conn_count(s), 1);
    CHECK_EQ_INT(sr.opens, 1);
    close(fd1);
    wsr_server_free(s);
}

/* ---- raw TCP servers against the client --------------------------------------- */

typedef struct raw_srv {
    int lfd, fd, port;
    inbox in;
    size_t req_len;               /* length of the upgrade request once complete */
    char key[64];
} raw_srv;

static int raw_srv_start(raw_srv *r) {
    memset(r, 0, sizeof *r);
    r->fd = -1;
    r->lfd = raw_listen(&r->port);
    return r->lfd >= 0;
}

static void raw_srv_stop(raw_srv *r) {
    if (r->fd >= 0) close(r->fd);
    if (r->lfd >= 0) close(r->lfd);
    r->fd = r->lfd = -1;
}

/* Accepts and reads without waiting; records the request and its key. */
static void raw_srv_turn(raw_srv *r) {
    if (r->fd < 0) {
        r->fd = accept(r->lfd, NULL, NULL);
        if (r->fd >= 0) set_nonblock(r->fd);
    }
    if (r->fd < 0) return;
    inbox_drain(r->fd, &r->in);
    if (!r->req_len && (r->req_len = head_end(r->in.buf, r->in.len)) > 0) {
        wsr_request req;
        wsr_error e;
        if (wsr_handshake_request_parse((const char *)r->in.buf, r->req_len, 0, &req, &e) == WSR_OK &&
            req.key_len < sizeof r->key) {
            memcpy(r->key, req.key, req.key_len);
            r->key[req.key_len] = '\0';
        }
    }
}

static void poll_raw(wsr_client *c, raw_srv *r) {
    wsr_client_poll(c, 1);
    raw_srv_turn(r);
}

/* The 101 for the client's key, built by hand with wsr_accept_key. */
static size_t build_101(const raw_srv *r, char *out, size_t cap) {
    char accept[29];
    wsr_accept_key(r->key, strlen(r->key), accept);
    return (size_t)snprintf(out, cap,
                            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept);
}

TEST(raw_server_404) {
    raw_srv r;
    cli_rec cr;
    wsr_client_config cfg;
    wsr_client *c;
    char url[128];
    const char *resp = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    memset(&cr, 0, sizeof cr);
    if (!raw_srv_start(&r)) { CHECK(0); return; }
    client_cfg(&cfg, &cr, url, sizeof url, r.port, "/nothing-here");
    if (!(c = client_new(&cfg))) { CHECK(0); raw_srv_stop(&r); return; }
    PUMP_UNTIL(r.req_len > 0 || cr.closes, 3000, poll_raw(c, &r));
    CHECK(pumped && r.req_len > 0);
    CHECK(r.in.len >= 22 && memcmp(r.in.buf, "GET /nothing-here HTTP/1.1", 26) == 0);
    CHECK_EQ_INT(strlen(r.key), 24);
    CHECK(r.fd >= 0 && raw_send_all(r.fd, resp, strlen(resp)));
    PUMP_UNTIL(cr.closes, 3000, poll_raw(c, &r));
    CHECK(pumped);
    CHECK_EQ_INT(cr.closes, 1);
    CHECK_EQ_INT(cr.opens, 0);
    CHECK_EQ_INT(cr.why.code, WSR_ERR_HANDSHAKE);
    CHECK_EQ_INT(cr.why.http_status, 404);
    CHECK_EQ_INT(cr.why.transient, 0);
    CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_CLOSED);
    wsr_client_free(c);
    raw_srv_stop(&r);
}

TEST(raw_server_101_and_frame_in_one_send) {
    raw_srv r;
    cli_rec cr;
    wsr_client_config cfg;
    wsr_client *c;
    char url[128];
    char out[512];
    size_t n;
    memset(&cr, 0, sizeof cr);
    if (!raw_srv_start(&r)) { CHECK(0); return; }
    client_cfg(&cfg, &cr, url, sizeof url, r.port, "/");
    if (!(c = client_new(&cfg))) { CHECK(0); raw_srv_stop(&r); return; }
    PUMP_UNTIL(r.key[0] || cr.closes, 3000, poll_raw(c, &r));
    CHECK(pumped && r.key[0]);
    n = build_101(&r, out, sizeof out);
    memcpy(out + n, "\x81\x05hello", 7);
    memcpy(out + n + 7, "\x82\x03\x00\xff\x7f", 5);
    CHECK(r.fd >= 0 && raw_send_all(r.fd, out, n + 12));
    PUMP_UNTIL(cr.messages == 2 || cr.closes, 3000, poll_raw(c, &r));
    CHECK(pumped);
    CHECK_EQ_INT(cr.opens, 1);
    CHECK_EQ_INT(cr.messages, 2);
    CHECK_EQ_INT(cr.msg_type, WSR_MSG_BINARY);
    CHECK(cr.msg_len == 3 && memcmp(cr.msg, "\x00\xff\x7f", 3) == 0);
    CHECK_EQ_INT(cr.closes, 0);
    CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_OPEN);
    wsr_client_free(c);
    raw_srv_stop(&r);
    free(cr.msg);
}

/* The first of the two messages above is checked on its own here. */
TEST(raw_server_101_and_text_frame) {
    raw_srv r;
    cli_rec cr;
    wsr_client_config cfg;
    wsr_client *c;
    char url[128];
    char out[512];
    size_t n;
    memset(&cr, 0, sizeof cr);
    if (!raw_srv_start(&r)) { CHECK(0); return; }
    client_cfg(&cfg, &cr, url, sizeof url, r.port, "/");
    if (!(c = client_new(&cfg))) { CHECK(0); raw_srv_stop(&r); return; }
    PUMP_UNTIL(r.key[0] || cr.closes, 3000, poll_raw(c, &r));
    CHECK(pumped && r.key[0]);
    n = build_101(&r, out, sizeof out);
    memcpy(out + n, "\x81\x05hello", 7);
    CHECK(r.fd >= 0 && raw_send_all(r.fd, out, n + 7));
    PUMP_UNTIL(cr.messages == 1 || cr.closes, 3000, poll_raw(c, &r));
    CHECK(pumped);
    CHECK_EQ_INT(cr.messages, 1);
    CHECK_EQ_INT(cr.msg_type, WSR_MSG_TEXT);
    CHECK(cr.msg_len == 5 && memcmp(cr.msg, "hello", 5) == 0);
    wsr_client_free(c);
    raw_srv_stop(&r);
    free(cr.msg);
}

/* A raw server pings; the client's pong (masked, same payload) comes back
   without the application doing anything. */
TEST(raw_server_ping_gets_pong) {
    raw_srv r;
    cli_rec cr;
    wsr_client_config cfg;
    wsr_client *c;
    char url[128];
    char out[512];
    size_t n, fl = 0;
    int op = -1, fin = 0, masked = 0;
    unsigned char pl[128];
    size_t plen = 0;
    memset(&cr, 0, sizeof cr);
    if (!raw_srv_start(&r)) { CHECK(0); return; }
    client_cfg(&cfg, &cr, url, sizeof url, r.port, "/");
    if (!(c = client_new(&cfg))) { CHECK(0); raw_srv_stop(&r); return; }
    PUMP_UNTIL(r.key[0] || cr.closes, 3000, poll_raw(c, &r));
    CHECK(pumped && r.key[0]);
    n = build_101(&r, out, sizeof out);
    memcpy(out + n, "\x89\x08raw-ping", 10);
    CHECK(r.fd >= 0 && raw_send_all(r.fd, out, n + 10));
    PUMP_UNTIL((fl = r.in.len > r.req_len ? decode_frame(r.in.buf + r.req_len, r.in.len - r.req_len, &op, &fin,
                                                          &masked, pl, &plen, sizeof pl) : 0) > 0 || cr.closes,
               3000, poll_raw(c, &r));
    CHECK(pumped && fl > 0);
    CHECK_EQ_INT(op, WSR_OP_PONG);
    CHECK(fin && masked);
    CHECK(plen == 8 && memcmp(pl, "raw-ping", 8) == 0);
    CHECK_EQ_INT(cr.opens, 1);
    CHECK_EQ_INT(cr.messages, 0);
    wsr_client_free(c);
    raw_srv_stop(&r);
}

TEST(raw_server_silent_connect_timeout) {
    raw_srv r;
    cli_rec cr;
    wsr_client_config cfg;
    wsr_client *c;
    char url[128];
    uint64_t t0, took;
    memset(&cr, 0, sizeof cr);
    if (!raw_srv_start(&r)) { CHECK(0); return; }
    client_cfg(&cfg, &cr, url, sizeof url, r.port, "/");
    cfg.connect_timeout_ms = 300;
    if (!(c = client_new(&cfg))) { CHECK(0); raw_srv_stop(&r); return; }
    t0 = wsr_now_ms();
    PUMP_UNTIL(cr.closes, 5000, poll_raw(c, &r));
    took = wsr_now_ms() - t0;
    CHECK(pumped);
    CHECK(r.req_len > 0);                          /* TCP was up, the request arrived, no answer */
    CHECK_EQ_INT(cr.closes, 1);
    CHECK_EQ_INT(cr.opens, 0);
    CHECK_EQ_INT(cr.why.code, WSR_ERR_TIMEOUT);
    CHECK_EQ_INT(cr.why.transient, 1);
    CHECK_EQ_INT(cr.why.close_code, 1006);
    CHECK(took >= 250 && took <= 3000);
    if (took < 250 || took > 3000) printf("  timeout took %lu ms\n", (unsigned long)took);
    wsr_client_free(c);
    raw_srv_stop(&r);
}

/* A listener whose accept queue is full drops new SYNs: a connect to it
   stays under way until the client's timeout. Fills the queue with
   connections nobody accepts; returns how many (each in fds[]), or 0. */
static int fill_accept_queue(int lfd, int port, int *fds, int cap) {
    int n = 0;
    while (n < cap) {
        struct sockaddr_in a;
        struct pollfd p;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) break;
        set_nonblock(fd);
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_port = htons((unsigned short)port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        connect(fd, (struct sockaddr *)&a, sizeof a);
        fds[n++] = fd;
        p.fd = fd;
        p.events = POLLOUT;
        p.revents = 0;
        if (poll(&p, 1, 300) == 0) return n;    /* this one hangs: the queue is full */
    }
    (void)lfd;
    return 0;
}

TEST(connect_that_hangs_ends_at_its_timeout) {
    /* The whole connect path on a SYN nobody answers. On Windows the client
       also asks about the connect every 100 ms: WSAPoll before Windows 10
       version 2004 never reports a failed connect, so waiting for it alone
       would turn a 2 s refusal into the whole timeout. */
    cli_rec cr;
    wsr_client_config cfg;
    wsr_client *c;
    char url[128];
    int port, fds[64], nf, i, lfd;
    uint64_t t0, took;
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    memset(&cr, 0, sizeof cr);
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(lfd >= 0);
    if (lfd < 0) return;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(lfd, 1) == 0 &&
          getsockname(lfd, (struct sockaddr *)&a, &al) == 0);
    port = ntohs(a.sin_port);
    nf = fill_accept_queue(lfd, port, fds, 64);
    CHECK(nf > 0);
    if (nf > 0) {
        client_cfg(&cfg, &cr, url, sizeof url, port, "/");
        cfg.connect_timeout_ms = 1200;
        c = client_new(&cfg);
        CHECK(c != NULL);
        t0 = wsr_now_ms();
        PUMP_UNTIL(wsr_now_ms() - t0 >= 400, 2000, wsr_client_poll(c, 20));
        CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_CONNECTING);
        {
            int wait = wsr_client_timeout_ms(c, wsr_now_ms());
#if defined(_WIN32)
            CHECK(wait >= 0 && wait <= 100);     /* asked again soon, whatever WSAPoll says */
#else
            CHECK(wait > 100);                   /* poll() will report the connect: the deadline is the timer */
#endif
            if (getenv("WSR_TEST_SHOW")) printf("  connecting: next timer in %d ms\n", wait);
        }
        PUMP_UNTIL(cr.closes, 5000, wsr_client_poll(c, 20));
        took = wsr_now_ms() - t0;
        CHECK_EQ_INT(cr.closes, 1);
        CHECK_EQ_INT(cr.why.code, WSR_ERR_TIMEOUT);
        CHECK_EQ_INT(cr.why.transient, 1);
        CHECK(took >= 1000 && took <= 4000);
        if (took < 1000 || took > 4000) printf("  the hanging connect ended after %lu ms\n", (unsigned long)took);
        wsr_client_free(c);
    }
    for (i = 0; i < nf; i++) close(fds[i]);
    close(lfd);
}

TEST(raw_server_masked_frame_gets_1002) {
    raw_srv r;
    cli_rec cr;
    wsr_client_config cfg;
    wsr_client *c;
    char url[128];
    char out[512];
    size_t n, fl = 0;
    int op = -1, fin = 0, masked = 0;
    unsigned char pl[128];
    size_t plen = 0;
    memset(&cr, 0, sizeof cr);
    if (!raw_srv_start(&r)) { CHECK(0); return; }
    client_cfg(&cfg, &cr, url, sizeof url, r.port, "/");
    if (!(c = client_new(&cfg))) { CHECK(0); raw_srv_stop(&r); return; }
    PUMP_UNTIL(r.key[0] || cr.closes, 3000, poll_raw(c, &r));
    CHECK(pumped && r.key[0]);
    n = build_101(&r, out, sizeof out);
    /* "hi" masked with key 01 02 03 04 */
    memcpy(out + n, "\x81\x82\x01\x02\x03\x04", 6);
    out[n + 6] = (char)('h' ^ 1);
    out[n + 7] = (char)('i' ^ 2);
    CHECK(r.fd >= 0 && raw_send_all(r.fd, out, n + 8));
    PUMP_UNTIL(cr.closes && (r.in.eof || r.in.err), 3000, poll_raw(c, &r));
    CHECK(pumped);
    CHECK_EQ_INT(cr.closes, 1);
    CHECK_EQ_INT(cr.messages, 0);
    CHECK_EQ_INT(cr.why.code, WSR_ERR_PROTOCOL);
    CHECK_EQ_INT(cr.why.close_code, 1002);
    CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_CLOSED);
    fl = r.in.len > r.req_len ? decode_frame(r.in.buf + r.req_len, r.in.len - r.req_len, &op, &fin, &masked, pl,
                                             &plen, sizeof pl) : 0;
    CHECK(fl > 0);
    CHECK_EQ_INT(op, WSR_OP_CLOSE);
    CHECK(masked);
    CHECK(plen >= 2);
    CHECK_EQ_INT(plen >= 2 ? (pl[0] << 8 | pl[1]) : 0, 1002);
    wsr_client_free(c);
    raw_srv_stop(&r);
}

/* ---- URLs ---------------------------------------------------------------------- */

TEST(wss_and_bad_urls) {
    static const char *bad[] = {
        "http://127.0.0.1/", "ws://", "ws:///path", "127.0.0.1:80", "ws://127.0.0.1:99999/",
        "ws://127.0.0.1:0/", "ws://127.0.0.1:-1/", "ws://127.0.0.1:abc/", "ws://host/pa th",
        "ws://host/#frag", "", "ws://[::1/"
    };
    wsr_client_config cfg;
    wsr_error err;
    wsr_client *c;
    size_t i;
    wsr_client_config_init(&cfg);
    cfg.url = "wss://127.0.0.1:443/secure";
    memset(&err, 0x55, sizeof err);
    c = wsr_client_new(&cfg, &err);
    CHECK(c == NULL);
    CHECK_EQ_INT(err.code, WSR_ERR_TLS_UNAVAILABLE);
    CHECK(err.message[0] != '\0');
    wsr_client_free(c);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cfg.url = bad[i];
        memset(&err, 0, sizeof err);
        c = wsr_client_new(&cfg, &err);
        CHECK(c == NULL);
        CHECK_EQ_INT(err.code, WSR_ERR_INVALID);
        if (c || err.code != WSR_ERR_INVALID) printf("  url \"%s\" gave %s\n", bad[i], wsr_strerror(err.code));
        wsr_client_free(c);
    }
    cfg.url = NULL;
    CHECK(wsr_client_new(&cfg, &err) == NULL);
    CHECK_EQ_INT(err.code, WSR_ERR_INVALID);
    CHECK(wsr_client_new(&cfg, NULL) == NULL);      /* err may be NULL */
    cfg.url = "ws://127.0.0.1:1/";
    cfg.headers = "no colon here\r\n";
    CHECK(wsr_client_new(&cfg, &err) == NULL);
    CHECK_EQ_INT(err.code, WSR_ERR_INVALID);
    /* A good one, for contrast. */
    cfg.headers = NULL;
    c = wsr_client_new(&cfg, &err);
    CHECK(c != NULL);
    CHECK_EQ_INT(err.code, WSR_OK);
    wsr_client_free(c);
}

TEST(server_config_checked) {
    wsr_server_config scfg;
    wsr_error err;
    wsr_server *s;
    wsr_server_config_init(&scfg);
    scfg.port = 70000;
    CHECK(wsr_server_new(&scfg, &err) == NULL);
    CHECK_EQ_INT(err.code, WSR_ERR_INVALID);
    scfg.port = 0;
    s = wsr_server_new(&scfg, &err);
    CHECK(s != NULL);
    CHECK(wsr_server_port(s) > 0);
    CHECK_EQ_INT(wsr_server_conn_count(s), 0);
    CHECK_EQ_INT(wsr_server_broadcast(s, WSR_MSG_TEXT, "x", 1), WSR_OK);   /* nobody there: fine */
    wsr_server_free(s);
    wsr_server_free(NULL);
}

TEST_MAIN()
