/* test_examples.c - the example programs, run as a reader would run them.

   Each test starts one binary from build/examples/ (make run-tests builds
   them first; on Windows, the .exe files in build/win; WSR_EXAMPLES_DIR
   overrides the directory) as a child process (tests/wsr_test_proc.h),
   its stdout and stderr on one pipe and, where it reads input, its stdin
   on another. Its peer lives in this process on
   127.0.0.1 port 0: a wsr_server that echoes (hello, reconnecting, long_job,
   demo_client, own_loop) or wsr_clients (chat_server). Everything is polled
   from this one thread, so the checks see the same order of events the
   programs do. Every example that can finish by itself is run to its end
   and must exit 0; its output is printed when a check about it fails.

   A missing binary fails its test, saying so. Every child is stopped by its
   PID at the end of its test (killed unless it exited, then reaped) on
   every path, and each is started with a bounded run time or a stdin that
   ends with us, so nothing outlives the run. Windows has no SIGTERM: there
   the chat server's shutdown on SIGTERM is not tested (the rest of that
   test is). */
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include "wsr_test.h"
#include "wsr_test_proc.h"

/* Where the example programs are: build/examples (build/win on Windows,
   where make test-windows puts the .exe files), or $WSR_EXAMPLES_DIR. */
static const char *examples_dir(void) {
    const char *d = getenv("WSR_EXAMPLES_DIR");
#if defined(_WIN32)
    return d && *d ? d : "build/win";
#else
    return d && *d ? d : "build/examples";
#endif
}

/* Starts examples_dir()/name with args (NULL-terminated, without argv[0]),
   its stdout and stderr into one buffer, its stdin a pipe if with_stdin
   (else empty). Returns 1, or 0 after a counted failure (a missing binary
   among them). */
static int child_start(proc *ch, const char *name, const char *const *args, int with_stdin) {
    char bin[512];
    snprintf(bin, sizeof bin, "%s/%s", examples_dir(), name);
    if (proc_start(ch, bin, args, PROC_MERGE | (with_stdin ? PROC_STDIN : 0))) return 1;
    wsr_test_failed++;
    if (ch->missing)
        printf("  build it with `make examples` (make run-tests does), or set WSR_EXAMPLES_DIR\n");
    return 0;
}

/* The library names a system error by its constant: ECONNREFUSED on
   POSIX, WSAECONNREFUSED on Winsock. */
#if defined(_WIN32)
#define OS_ENAME_PREFIX "WSA"
#else
#define OS_ENAME_PREFIX ""
#endif

static int count_of(const char *hay, const char *needle) {
    int n = 0;
    size_t k = strlen(needle);
    while ((hay = strstr(hay, needle)) != NULL) { n++; hay += k; }
    return n;
}

/* ---- the in-process peers -------------------------------------------------------- */

/* What the in-process server saw. Messages are kept joined by '\n'. */
typedef struct srv_rec {
    int opens, closes, msgs;
    int closes_before_first_msg;       /* connections that ended before any message came */
    uint64_t first_open_at, first_msg_at;
    int last_close_code;
    char text[8192];
    size_t len;
} srv_rec;

static void s_open(wsr_conn *conn, void *user) {
    srv_rec *r = (srv_rec *)user;
    (void)conn;
    if (!r->opens++) r->first_open_at = wsr_now_ms();
}
static void s_message(wsr_conn *conn, wsr_msg_type type, const void *data, size_t len, void *user) {
    srv_rec *r = (srv_rec *)user;
    if (!r->msgs++) r->first_msg_at = wsr_now_ms();
    if (r->len + len + 2 < sizeof r->text) {
        memcpy(r->text + r->len, data, len);
        r->len += len;
        r->text[r->len++] = '\n';
        r->text[r->len] = '\0';
    }
    wsr_conn_send(conn, type, data, len);    /* echo */
}
static void s_close(wsr_conn *conn, const wsr_error *why, void *user) {
    srv_rec *r = (srv_rec *)user;
    (void)conn;
    r->closes++;
    if (!r->msgs) r->closes_before_first_msg++;
    r->last_close_code = why->close_code;
}

/* An echo server on 127.0.0.1 (port 0: a free one). ping_ms/pong_ms 0: defaults. */
static wsr_server *echo_server(srv_rec *r, int port, int ping_ms, int pong_ms) {
    wsr_server_config cfg;
    wsr_error err;
    wsr_server *s;
    wsr_server_config_init(&cfg);
    cfg.port = port;
    if (ping_ms) cfg.ping_interval_ms = ping_ms;
    if (pong_ms) cfg.pong_timeout_ms = pong_ms;
    cfg.on_open = s_open;
    cfg.on_message = s_message;
    cfg.on_close = s_close;
    cfg.user = r;
    if (!(s = wsr_server_new(&cfg, &err))) printf("  server on port %d: %s\n", port, err.message);
    return s;
}

/* What one in-process client saw. */
typedef struct cli_rec {
    int opened, closed;
    wsr_error why;
    char text[4096];
    size_t len;
} cli_rec;

static void c_open(wsr_client *c, const char *sub, void *user) { (void)c; (void)sub; ((cli_rec *)user)->opened++; }
static void c_message(wsr_client *c, wsr_msg_type type, const void *data, size_t len, void *user) {
    cli_rec *r = (cli_rec *)user;
    (void)c; (void)type;
    if (r->len + len + 2 < sizeof r->text) {
        memcpy(r->text + r->len, data, len);
        r->len += len;
        r->text[r->len++] = '\n';
        r->text[r->len] = '\0';
    }
}
static void c_close(wsr_client *c, const wsr_error *why, void *user) {
    cli_rec *r = (cli_rec *)user;
    (void)c;
    r->closed++;
    r->why = *why;
}

/* A client of one connection (no reconnect), as a chat user. */
static wsr_client *chat_client(cli_rec *r, int port) {
    wsr_client_config cfg;
    wsr_error err;
    wsr_client *c;
    char url[64];
    memset(r, 0, sizeof *r);
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
    wsr_client_config_init(&cfg);
    cfg.url = url;
    cfg.reconnect = 0;
    cfg.on_open = c_open;
    cfg.on_message = c_message;
    cfg.on_close = c_close;
    cfg.user = r;
    if (!(c = wsr_client_new(&cfg, &err))) printf("  client: %s\n", err.message);
    return c;
}

/* Everything one test polls: an optional server, up to 3 clients, the child. */
typedef struct world {
    wsr_server *srv;
    wsr_client *cli[3];
    proc *ch;
} world;

static void tick(world *w) {
    int i, waited = 0;
    if (w->srv) { wsr_server_poll(w->srv, 5); waited = 1; }
    for (i = 0; i < 3; i++) {
        if (w->cli[i] && wsr_client_state(w->cli[i]) != WSR_STATE_CLOSED) {
            wsr_client_poll(w->cli[i], waited ? 0 : 5);
            waited = 1;
        }
    }
    proc_pump(w->ch, waited ? 0 : 5);
}

/* Ticks until cond holds or ms (scaled) pass; then cond is checked by the caller. */
#define WAIT_UNTIL(w, cond, ms)                                                      \
    do {                                                                             \
        uint64_t wu_deadline_ = wsr_now_ms() + wsr_test_scaled(ms);                  \
        while (!(cond) && wsr_now_ms() < wu_deadline_) tick(w);                      \
    } while (0)

static void url_for(char *url, size_t cap, int port) { snprintf(url, cap, "ws://127.0.0.1:%d/", port); }

/* ---- the tests ------------------------------------------------------------------- */

TEST(hello_echo) {
    int fails = wsr_test_failed;
    srv_rec r;
    proc ch;
    world w;
    char url[64];
    const char *args[2];
    memset(&r, 0, sizeof r);
    memset(&w, 0, sizeof w);
    w.ch = &ch;
    if (!(w.srv = echo_server(&r, 0, 0, 0))) { CHECK(w.srv != NULL); return; }
    url_for(url, sizeof url, wsr_server_port(w.srv));
    args[0] = url; args[1] = NULL;
    if (child_start(&ch, "hello", args, 0)) {
        WAIT_UNTIL(&w, proc_done(&ch), 5000);
        CHECK_EQ_INT(proc_exit_code(&ch), 0);
        CHECK(strstr(proc_stdout(&ch), "connected\n") != NULL);
        CHECK(strstr(proc_stdout(&ch), "echo: hello, websocket\n") != NULL);
        CHECK(strstr(proc_stdout(&ch), "closed: closed by the application") != NULL);
        CHECK_EQ_STR(r.text, "hello, websocket\n");
        WAIT_UNTIL(&w, r.closes == 1, 1000);
        CHECK_EQ_INT(r.closes, 1);
        CHECK_EQ_INT(r.last_close_code, 1000);
    }
    proc_end(&ch, fails, "hello");
    wsr_server_free(w.srv);
}

/* The server goes away (freed: the link drops without a close frame) and
   comes back on the same port; the log must tell the story and the lines
   sent meanwhile must arrive, once each, in order. */
TEST(reconnecting_rides_out_a_restart) {
    int fails = wsr_test_failed, port;
    srv_rec r1, r2;
    proc ch;
    world w;
    char url[64], all[sizeof r1.text * 2];
    const char *args[3];
    memset(&r1, 0, sizeof r1);
    memset(&r2, 0, sizeof r2);
    memset(&w, 0, sizeof w);
    w.ch = &ch;
    if (!(w.srv = echo_server(&r1, 0, 0, 0))) { CHECK(w.srv != NULL); return; }
    port = wsr_server_port(w.srv);
    url_for(url, sizeof url, port);
    args[0] = url; args[1] = "4"; args[2] = NULL;    /* 4 s: lines at 1, 2 and 3 s, then close */
    if (!child_start(&ch, "reconnecting", args, 0)) { wsr_server_free(w.srv); return; }
    WAIT_UNTIL(&w, r1.msgs >= 1, 3000);              /* "line 1" arrived */
    CHECK_EQ_STR(r1.text, "line 1\n");
    WAIT_UNTIL(&w, strstr(proc_stdout(&ch), "echo: line 1") != NULL, 1000);
    wsr_server_free(w.srv);                          /* crash: no close frame */
    w.srv = NULL;
    WAIT_UNTIL(&w, strstr(proc_stdout(&ch), "reconnect attempt 1 in ") != NULL, 1000);
    CHECK(strstr(proc_stdout(&ch), "reconnect attempt 1 in ") != NULL);
    WAIT_UNTIL(&w, 0, 400);                          /* down for a while: attempts are refused */
    w.srv = echo_server(&r2, port, 0, 0);            /* back, same port */
    CHECK(w.srv != NULL);
    WAIT_UNTIL(&w, proc_done(&ch), 6000);
    CHECK_EQ_INT(proc_exit_code(&ch), 0);
    CHECK_EQ_INT(count_of(proc_stdout(&ch), "] open;"), 2);
    CHECK(strstr(proc_stdout(&ch), "state HANDSHAKE -> OPEN") != NULL);
    CHECK(strstr(proc_stdout(&ch), "connection ended: connection closed by peer without a close frame (close code 1006)") ||
          strstr(proc_stdout(&ch), "connection ended: connection reset by peer"));
    CHECK(strstr(proc_stdout(&ch), "(cause: connection closed by peer") || strstr(proc_stdout(&ch), "(cause: connection reset"));
    CHECK(strstr(proc_stdout(&ch), "connection refused (" OS_ENAME_PREFIX "ECONNREFUSED") != NULL);  /* at least one refused attempt */
    CHECK(strstr(proc_stdout(&ch), "echo: line 3") != NULL);
    CHECK(strstr(proc_stdout(&ch), "stopped: closed by the application") != NULL);
    snprintf(all, sizeof all, "%s%s", r1.text, r2.text);
    CHECK_EQ_STR(all, "line 1\nline 2\nline 3\n");
    CHECK_EQ_INT(r2.opens, 1);
    CHECK_EQ_INT(r2.last_close_code, 1000);
    proc_end(&ch, fails, "reconnecting");
    wsr_server_free(w.srv);
}

/* A server that pings after 150 ms of silence and drops a client that does
   not answer within 250 ms: a client not serviced during the 1.5 s of
   "computation" would be dropped (and reconnect). With the thread runner
   the one connection stays open until the metrics arrive. */
TEST(long_job_stays_connected) {
    int fails = wsr_test_failed, rtt = -2;
    srv_rec r;
    proc ch;
    world w;
    char url[64];
    const char *args[4], *p;
    memset(&r, 0, sizeof r);
    memset(&w, 0, sizeof w);
    w.ch = &ch;
    if (!(w.srv = echo_server(&r, 0, 150, 250))) { CHECK(w.srv != NULL); return; }
    url_for(url, sizeof url, wsr_server_port(w.srv));
    args[0] = url; args[1] = "150"; args[2] = "--fast"; args[3] = NULL;   /* 150 x 10 ms */
    if (child_start(&ch, "long_job", args, 0)) {
        WAIT_UNTIL(&w, proc_done(&ch), 8000);
        CHECK_EQ_INT(proc_exit_code(&ch), 0);
        CHECK_EQ_INT(r.msgs, 1);
        CHECK(strncmp(r.text, "{\"job\":\"long_job\",\"seconds\":150,\"result\":", 41) == 0);
        CHECK_EQ_INT(r.opens, 1);                      /* never reconnected */
        CHECK_EQ_INT(r.closes_before_first_msg, 0);    /* the link held through the computation */
        CHECK(r.first_msg_at - r.first_open_at >= 1200);   /* ... which did take its time */
        /* The client's keepalive ping was answered while main() computed. */
        if ((p = strstr(r.text, "\"rtt_ms\":")) != NULL) rtt = atoi(p + 9);
        CHECK(rtt >= 0);
        CHECK(strstr(proc_stdout(&ch), "message 1: WRITTEN") != NULL);
        CHECK(strstr(proc_stdout(&ch), "metrics delivered") != NULL);
        CHECK(strstr(proc_stdout(&ch), "connection ended: closed by the application") != NULL);
        WAIT_UNTIL(&w, r.closes == 1, 1000);
        CHECK_EQ_INT(r.closes, 1);
        CHECK_EQ_INT(r.last_close_code, 1000);
    }
    proc_end(&ch, fails, "long_job");
    wsr_server_free(w.srv);
}

TEST(chat_server_broadcast_and_sigterm) {
    int fails = wsr_test_failed, port = 0, i;
    cli_rec a, b, c3;
    proc ch;
    world w;
    const char *args[3];
    memset(&w, 0, sizeof w);
    w.ch = &ch;
    args[0] = "0"; args[1] = "20"; args[2] = NULL;   /* 20 s: a safety net, SIGTERM comes long before */
    if (!child_start(&ch, "chat_server", args, 0)) return;
    WAIT_UNTIL(&w, strchr(proc_stdout(&ch), '\n') || ch.exited, 3000);
    CHECK(strncmp(proc_stdout(&ch), "listening on 127.0.0.1:", 23) == 0);   /* the first line */
    if (strncmp(proc_stdout(&ch), "listening on 127.0.0.1:", 23) == 0) port = atoi(proc_stdout(&ch) + 23);
    CHECK(port > 0);
    if (port <= 0) { proc_end(&ch, fails, "chat_server"); return; }
    w.cli[0] = chat_client(&a, port);
    WAIT_UNTIL(&w, strstr(a.text, "* guest1 joined\n") != NULL, 3000);
    CHECK_EQ_STR(a.text, "* guest1 joined\n");
    w.cli[1] = chat_client(&b, port);
    WAIT_UNTIL(&w, strstr(a.text, "* guest2 joined\n") && strstr(b.text, "* guest2 joined\n"), 3000);
    CHECK(wsr_send_text(w.cli[0], "hello from A", 12) == WSR_OK);
    WAIT_UNTIL(&w, strstr(a.text, "guest1: hello from A\n") && strstr(b.text, "guest1: hello from A\n"), 3000);
    CHECK_EQ_STR(a.text, "* guest1 joined\n* guest2 joined\nguest1: hello from A\n");
    CHECK_EQ_STR(b.text, "* guest2 joined\nguest1: hello from A\n");
    /* A third one comes and goes: the others hear both. */
    w.cli[2] = chat_client(&c3, port);
    WAIT_UNTIL(&w, strstr(b.text, "* guest3 joined\n") && c3.opened, 3000);
    wsr_client_close(w.cli[2], 1000, "bye");
    WAIT_UNTIL(&w, strstr(a.text, "* guest3 left\n") && strstr(b.text, "* guest3 left\n") && c3.closed, 3000);
    CHECK(strstr(a.text, "* guest3 left\n") != NULL);
    CHECK(strstr(b.text, "* guest3 left\n") != NULL);
    CHECK_EQ_INT(c3.why.code, WSR_ERR_CLOSED);
#if !defined(_WIN32)
    /* SIGTERM: both remaining clients get 1001 "going away", the server
       exits 0. (Windows has no SIGTERM to send: there the server is killed
       at the end, and its run-time limit is tested below.) */
    CHECK_EQ_INT(proc_term(&ch), 0);
    WAIT_UNTIL(&w, a.closed && b.closed && proc_done(&ch), 5000);
    CHECK_EQ_INT(a.closed, 1);
    CHECK_EQ_INT(b.closed, 1);
    CHECK_EQ_INT(a.why.code, WSR_ERR_PEER_CLOSED);
    CHECK_EQ_INT(a.why.close_code, 1001);
    CHECK_EQ_INT(b.why.close_code, 1001);
    CHECK_EQ_STR(b.why.close_reason, "going away");
    CHECK_EQ_INT(proc_exit_code(&ch), 0);
    CHECK(strstr(proc_stdout(&ch), "shutting down with 2 client(s)") != NULL);
    CHECK(strstr(proc_stdout(&ch), "some clients did not answer") == NULL);
#endif
    proc_end(&ch, fails, "chat_server");
    for (i = 0; i < 3; i++) wsr_client_free(w.cli[i]);
}

TEST(chat_server_ends_after_its_run_time) {
    int fails = wsr_test_failed;
    proc ch;
    world w;
    uint64_t t0 = wsr_now_ms();
    const char *args[3];
    memset(&w, 0, sizeof w);
    w.ch = &ch;
    args[0] = "0"; args[1] = "1"; args[2] = NULL;
    if (child_start(&ch, "chat_server", args, 0)) {
        WAIT_UNTIL(&w, proc_done(&ch), 4000);
        CHECK_EQ_INT(proc_exit_code(&ch), 0);
        CHECK(wsr_now_ms() - t0 >= 900);
        CHECK(strstr(proc_stdout(&ch), "shutting down with 0 client(s)") != NULL);
    }
    proc_end(&ch, fails, "chat_server");
}

TEST(demo_client_small_count) {
    int fails = wsr_test_failed;
    srv_rec r;
    proc ch;
    world w;
    char url[64];
    const char *args[4];
    memset(&r, 0, sizeof r);
    memset(&w, 0, sizeof w);
    w.ch = &ch;
    if (!(w.srv = echo_server(&r, 0, 0, 0))) { CHECK(w.srv != NULL); return; }
    url_for(url, sizeof url, wsr_server_port(w.srv));
    args[0] = url; args[1] = "5"; args[2] = "50"; args[3] = NULL;
    if (child_start(&ch, "demo_client", args, 0)) {
        WAIT_UNTIL(&w, proc_done(&ch), 5000);
        CHECK_EQ_INT(proc_exit_code(&ch), 0);
        CHECK(strstr(proc_stdout(&ch), "sent 5, echoed 5, lost 0\n") != NULL);
        CHECK_EQ_STR(r.text, "msg 0\nmsg 1\nmsg 2\nmsg 3\nmsg 4\n");
    }
    proc_end(&ch, fails, "demo_client");
    wsr_server_free(w.srv);
}

/* Two lines typed one after the other (each echoed before the next), then
   the end of input. */
TEST(own_loop_two_lines_then_eof) {
    int fails = wsr_test_failed;
    srv_rec r;
    proc ch;
    world w;
    char url[64];
    const char *args[2];
    memset(&r, 0, sizeof r);
    memset(&w, 0, sizeof w);
    w.ch = &ch;
    if (!(w.srv = echo_server(&r, 0, 0, 0))) { CHECK(w.srv != NULL); return; }
    url_for(url, sizeof url, wsr_server_port(w.srv));
    args[0] = url; args[1] = NULL;
    if (child_start(&ch, "own_loop", args, 1)) {
        CHECK(proc_write(&ch, "first line\n"));
        WAIT_UNTIL(&w, strstr(proc_stdout(&ch), "< first line\n") != NULL, 3000);
        CHECK(strstr(proc_stdout(&ch), "< first line\n") != NULL);
        CHECK(proc_write(&ch, "second line\n"));
        WAIT_UNTIL(&w, strstr(proc_stdout(&ch), "< second line\n") != NULL, 3000);
        CHECK(strstr(proc_stdout(&ch), "< second line\n") != NULL);
        proc_close_stdin(&ch);                         /* Ctrl-D */
        WAIT_UNTIL(&w, proc_done(&ch), 5000);
        CHECK_EQ_INT(proc_exit_code(&ch), 0);
        CHECK(strstr(proc_stdout(&ch), "closed: closed by the application") != NULL);
        CHECK_EQ_STR(r.text, "first line\nsecond line\n");
        CHECK_EQ_INT(r.msgs, 2);
    }
    proc_end(&ch, fails, "own_loop");
    wsr_server_free(w.srv);
}

TEST_MAIN()
