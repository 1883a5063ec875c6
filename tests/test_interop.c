/* test_interop.c - our client and server against WebSocket stacks we did not
   write: Node's `ws` package (tests/interop/ws_server.js, ws_client.js, the
   version pinned by tests/interop/package-lock.json) and Python's
   `websockets` (tests/interop/py_server.py, py_client.py, run with
   /usr/bin/python3 and Debian's python3-websockets). tools/deps.sh installs
   both; a missing peer fails the tests that need it, with a message saying
   what is missing (it is never skipped).

   Each peer is a child process (tests/wsr_test_proc.h, PROC_HOST). A peer
   server binds 127.0.0.1 port 0 and prints its port as its first line; a
   peer client gets a URL of our in-process wsr_server, which we poll while
   it runs. Peers print one line per event (see the scripts' headers); the
   checks read them. Every peer is killed (by its pid, or by the broker) at
   the end of its test, on every path, and dies with us if we crash.

   On Windows (built with mingw, run under wine) the peers are still the
   host's Node and Python, which a process under wine cannot start with
   pipes or kill: tests/interop/peer_broker.py, started beside the test
   (tools/test-windows.sh), runs them for us, and WSR_PEER_BROKER gives its
   address. It runs them in its own directory, tests/interop, so there the
   scripts are named relative to it and the checks for Node, `ws` and
   `websockets` are quick runs through the broker.

   Test names: client_<peer>_... is our wsr_client against their server;
   server_<peer>_... is their client against our wsr_server.
   WSR_INTEROP_TIMES=1 prints each test's time; WSR_NODE names another node
   binary (default /usr/bin/node; on Windows the broker's environment says);
   WSR_INTEROP_DIR another peer directory (POSIX). */
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include "wsr_test.h"
#include "wsr_test_proc.h"

#if !defined(_WIN32)
#include <unistd.h>
#endif

static int pumped;
#define PUMP_UNTIL(cond, ms, POLLS)                                          \
    do {                                                                     \
        uint64_t pu_deadline_ = wsr_now_ms() + wsr_test_scaled(ms);          \
        pumped = 0;                                                          \
        while (!(pumped = !!(cond)) && wsr_now_ms() < pu_deadline_) { POLLS; } \
    } while (0)

#define PUMP_FOR(ms, POLLS)                                                  \
    do {                                                                     \
        uint64_t pf_until_ = wsr_now_ms() + (uint64_t)(ms);                  \
        while (wsr_now_ms() < pf_until_) { POLLS; }                          \
    } while (0)

/* ---- test payloads --------------------------------------------------------
   The same in the peers: binary is the 251 bytes (7i+3) mod 256 over and
   over (251 is prime, so a shifted or repeated chunk shows); text is
   "aé€😀" (1+2+3+4 bytes of UTF-8) over and over, then 'x' up to the size,
   so fragments and reads split characters everywhere. */
static const unsigned char text_unit[10] = {'a', 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80};

static unsigned char payload_byte(wsr_msg_type t, size_t n, size_t i) {
    if (t == WSR_MSG_BINARY) return (unsigned char)(((i % 251) * 7 + 3) & 255);
    return i < n - n % 10 ? text_unit[i % 10] : (unsigned char)'x';
}
static unsigned char *payload_new(wsr_msg_type t, size_t n) {
    unsigned char *p = (unsigned char *)malloc(n ? n : 1);
    size_t i;
    if (p) for (i = 0; i < n; i++) p[i] = payload_byte(t, n, i);
    return p;
}
static int payload_is(wsr_msg_type t, const void *data, size_t n) {
    const unsigned char *d = (const unsigned char *)data;
    size_t i;
    for (i = 0; i < n; i++)
        if (d[i] != payload_byte(t, n, i)) return 0;
    return 1;
}
static const char *type_name(wsr_msg_type t) { return t == WSR_MSG_TEXT ? "text" : "binary"; }

static void sha1_hex(const void *data, size_t n, char out[41]) {
    unsigned char d[20];
    int i;
    wsr_sha1(data, n, d);
    for (i = 0; i < 20; i++) sprintf(out + 2 * i, "%02x", d[i]);
}

/* ---- peer processes ------------------------------------------------------ */

#if defined(_WIN32)
/* The broker's names for the host's programs (it runs them in tests/interop). */
#define PYTHON "python"
static const char *node_bin(void) { return "node"; }
#else
static char g_dir[4096];            /* tests/interop, absolute */
#define PYTHON "/usr/bin/python3"   /* Debian's, never a python3 found on PATH */
static const char *node_bin(void) {
    const char *s = getenv("WSR_NODE");
    return s && *s ? s : "/usr/bin/node";
}

static int dir_ok(const char *d) {
    char p[4200];
    snprintf(p, sizeof p, "%s/ws_server.js", d);
    return access(p, R_OK) == 0;
}
/* Finds tests/interop: $WSR_INTEROP_DIR, under the working directory (make
   runs the tests from the top), or above the test binary (build/, build/asan/). */
static int find_dir(void) {
    char cwd[2048], exe[2048], cand[4096];
    const char *env = getenv("WSR_INTEROP_DIR");
    ssize_t n;
    int up;
    if (g_dir[0]) return 1;
    if (!getcwd(cwd, sizeof cwd)) cwd[0] = '\0';
    if (env && *env) {
        if (env[0] == '/') snprintf(cand, sizeof cand, "%s", env);
        else snprintf(cand, sizeof cand, "%s/%s", cwd, env);
        if (dir_ok(cand)) { snprintf(g_dir, sizeof g_dir, "%s", cand); return 1; }
        return 0;
    }
    snprintf(cand, sizeof cand, "%s/tests/interop", cwd);
    if (cwd[0] && dir_ok(cand)) { snprintf(g_dir, sizeof g_dir, "%s", cand); return 1; }
    n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return 0;
    exe[n] = '\0';
    for (up = 0; up < 4; up++) {
        char *slash = strrchr(exe, '/');
        if (!slash) break;
        *slash = '\0';
        snprintf(cand, sizeof cand, "%s/tests/interop", exe);
        if (dir_ok(cand)) { snprintf(g_dir, sizeof g_dir, "%s", cand); return 1; }
    }
    return 0;
}
#endif

/* One peer process: the child and what to call it in messages. */
typedef struct peer {
    const char *what;        /* "node ws server", for messages */
    proc pr;
} peer;

static void peer_init(peer *p, const char *what) {
    memset(p, 0, sizeof *p);
    p->what = what;
}

/* Starts bin (a host program: the broker's name for it on Windows) with
   args (NULL-terminated, without argv[0]) in tests/interop. */
static int peer_spawn(peer *p, const char *bin, const char *const *args) {
#if defined(_WIN32)
    return proc_start(&p->pr, bin, args, PROC_HOST);
#else
    return proc_start_in(&p->pr, g_dir, bin, args, PROC_HOST);
#endif
}

/* Reads what the peer printed so far and notes whether it exited. Never blocks. */
static void peer_drain(peer *p) { proc_pump(&p->pr, 0); }

/* Started, and not yet exited with all its output read. */
static int peer_running(peer *p) { return p->pr.started && !proc_done(&p->pr); }

/* Kills the peer by its pid if it still runs, reaps it, and reads the rest
   of its output. Safe on a peer never started or already stopped. */
static void peer_stop(peer *p) { proc_kill(&p->pr); }

static const char *peer_out(const peer *p) { return proc_stdout(&p->pr); }

/* Finds a complete line of the peer's stdout at or after offset *from that
   equals text (exact) or starts with it; on success *from moves past it. */
static int peer_find(const peer *p, const char *text, int exact, size_t *from) {
    size_t tl = strlen(text), at = *from, len = p->pr.out.len;
    const char *s = peer_out(p);
    while (at < len) {
        const char *nl = (const char *)memchr(s + at, '\n', len - at);
        size_t ll;
        if (!nl) return 0;                    /* an incomplete last line */
        ll = (size_t)(nl - (s + at));
        if (exact ? (ll == tl && memcmp(s + at, text, tl) == 0) : (ll >= tl && memcmp(s + at, text, tl) == 0)) {
            *from = (size_t)(nl - s) + 1;
            return 1;
        }
        at = (size_t)(nl - s) + 1;
    }
    return 0;
}
static int peer_has(const peer *p, const char *line) {
    size_t from = 0;
    return peer_find(p, line, 1, &from);
}
static int peer_has_prefix(const peer *p, const char *prefix) {
    size_t from = 0;
    return peer_find(p, prefix, 0, &from);
}
/* Lines starting with prefix at or after offset from. */
static int peer_count_from(const peer *p, const char *prefix, size_t from) {
    int n = 0;
    while (peer_find(p, prefix, 0, &from)) n++;
    return n;
}
static int peer_count(const peer *p, const char *prefix) { return peer_count_from(p, prefix, 0); }
static int peer_exited_ok(const peer *p) { return p->pr.exited && p->pr.code == 0; }

/* ---- the two peers ------------------------------------------------------- */

typedef struct kind {
    const char *name;        /* "node", "python" */
    int node;
} kind;
static const kind NODE = {"node", 1};
static const kind PY = {"python", 0};

/* Runs a peer program that ends by itself; 1 if it exited 0 within ms. */
static int run_quick(peer *p, const char *bin, const char *const *args, int ms) {
    if (!peer_spawn(p, bin, args)) return 0;
    proc_wait_exit(&p->pr, ms);
    peer_stop(p);
    return peer_exited_ok(p);
}

#if defined(_WIN32)
/* Is the peer there? Under wine there is no looking at the host's files:
   each peer is checked once by a quick run through the broker, in the
   directory the peers run in (its exit code says; the broker makes it 127
   when it cannot start the program at all). Prints what is missing. */
static int kind_ready(const kind *k) {
    static int checked[2], ok[2];
    static const char *const node_args[] = {
        "-e", "require('ws/package.json'); require('fs').accessSync('ws_server.js')", NULL};
    static const char *const py_args[] = {"-c", "import os, websockets; os.stat('py_server.py')", NULL};
    const char *broker = getenv("WSR_PEER_BROKER");
    int i = k->node ? 0 : 1;
    if (!broker || !*broker) {
        printf("MISSING: WSR_PEER_BROKER: on Windows the peers run on the host through "
               "tests/interop/peer_broker.py (tools/test-windows.sh starts it and sets WSR_PEER_BROKER)\n");
        return 0;
    }
    if (!checked[i]) {
        peer p;
        checked[i] = 1;
        peer_init(&p, k->node ? "node -e \"require('ws/package.json')\" (through the broker)"
                              : "python -c 'import websockets' (through the broker)");
        ok[i] = run_quick(&p, k->node ? node_bin() : PYTHON, k->node ? node_args : py_args, 20000);
        if (!ok[i]) {
            if (!p.pr.exited)
                printf("MISSING: %s: the peer broker at %s could not be asked (see above)\n",
                       k->node ? "Node.js" : "Python", broker);
            else if (p.pr.code == 127)
                printf("MISSING: the broker at %s cannot start %s (tools/deps.sh installs nodejs, npm and "
                       "python3-websockets)\n", broker,
                       k->node ? "Node.js (its WSR_NODE or /usr/bin/node)" : "/usr/bin/python3");
            else if (k->node)
                printf("MISSING: the npm package ws, or ws_server.js, in the broker's directory "
                       "(run tools/deps.sh, which runs `npm ci` in tests/interop)\n");
            else
                printf("MISSING: /usr/bin/python3 on the host cannot import websockets, or py_server.py is not in "
                       "the broker's directory (run tools/deps.sh, which installs Debian's python3-websockets)\n");
            if (p.pr.exited) proc_dump(&p.pr, p.what);
        }
        proc_free(&p.pr);
    }
    return ok[i];
}
#else
/* Is the peer there? Prints what is missing and how to get it. */
static int kind_ready(const kind *k) {
    static int py_checked, py_ok;
    char path[4200];
    if (!find_dir()) {
        printf("MISSING: tests/interop (run from the repository root, or set WSR_INTEROP_DIR)\n");
        return 0;
    }
    if (k->node) {
        if (access(node_bin(), X_OK) != 0) {
            printf("MISSING: %s: Node.js is not installed (tools/deps.sh installs nodejs and npm)\n", node_bin());
            return 0;
        }
        snprintf(path, sizeof path, "%s/node_modules/ws/package.json", g_dir);
        if (access(path, R_OK) != 0) {
            printf("MISSING: %s/node_modules/ws: the npm package ws is not installed "
                   "(run tools/deps.sh, which runs `npm ci` in tests/interop)\n", g_dir);
            return 0;
        }
        return 1;
    }
    if (!py_checked) {
        static const char *const args[] = {"-c", "import websockets", NULL};
        peer p;
        py_checked = 1;
        peer_init(&p, "python3 -c 'import websockets'");
        py_ok = access(PYTHON, X_OK) == 0 && run_quick(&p, PYTHON, args, 20000);
        if (!py_ok) {
            printf("MISSING: %s cannot import websockets (run tools/deps.sh, which installs "
                   "Debian's python3-websockets)\n", PYTHON);
            if (p.pr.out.len || p.pr.err.len || p.pr.exited) proc_dump(&p.pr, p.what);
        }
        proc_free(&p.pr);
    }
    return py_ok;
}
#endif

/* Starts script (ws_server.js or py_server.py) with the extra arguments
   (NULL-terminated, may be NULL). */
static int peer_start(peer *p, const kind *k, const char *script, const char *const *extra) {
    const char *args[48];
    char spath[4200];
    int n = 0;
#if defined(_WIN32)
    snprintf(spath, sizeof spath, "%s", script);          /* the broker runs it in tests/interop */
#else
    snprintf(spath, sizeof spath, "%s/%s", g_dir, script);
#endif
    args[n++] = spath;
    while (extra && *extra && n < 47) args[n++] = *extra++;
    args[n] = NULL;
    if (!peer_spawn(p, k->node ? node_bin() : PYTHON, args)) {
        printf("could not start %s\n", p->what);
        return 0;
    }
    return 1;
}

/* Starts their server; returns its port, or -1 (it printed why). */
static int server_start(peer *p, const kind *k, const char *const *extra) {
    int port = -1;
    if (!kind_ready(k) || !peer_start(p, k, k->node ? "ws_server.js" : "py_server.py", extra)) return -1;
    if (proc_wait_for(&p->pr, "\n", 20000)) {
        char *end;
        long v = strtol(peer_out(p), &end, 10);
        if (*end == '\n' && v > 0 && v < 65536) port = (int)v;
    }
    if (port < 0) {
        printf("%s printed no port as its first line\n", p->what);
        peer_stop(p);
        proc_dump(&p->pr, p->what);
    }
    return port;
}

/* ---- per-test bookkeeping ------------------------------------------------ */

typedef struct tcase {
    const char *name;
    int failed_before;
    uint64_t t0;
} tcase;

static tcase case_begin(const char *name) {
    tcase t;
    t.name = name;
    t.failed_before = wsr_test_failed;
    t.t0 = wsr_now_ms();
    return t;
}
/* Kills and reaps every peer given (NULL ends the list), shows their output
   if a check failed, and frees them. */
static void case_end(tcase *t, peer *a, peer *b, peer *c) {
    peer *all[3];
    int i;
    const char *times = getenv("WSR_INTEROP_TIMES");
    all[0] = a; all[1] = b; all[2] = c;
    for (i = 0; i < 3; i++) if (all[i]) peer_stop(all[i]);
    for (i = 0; i < 3; i++) if (all[i]) proc_end(&all[i]->pr, t->failed_before, all[i]->what);
    if (times && *times && *times != '0')
        printf("time %-40s %6lld ms%s\n", t->name, (long long)(wsr_now_ms() - t->t0),
               wsr_test_failed != t->failed_before ? "  FAILED" : "");
}

/* ---- our client ---------------------------------------------------------- */

#define MAXM 64
typedef struct crec {
    int opens, closes, ends, messages;
    char sub[64];
    wsr_error first_why, end_why;
    wsr_msg_type type[MAXM];
    size_t len[MAXM];
    int is_payload[MAXM];          /* equals the test payload of its type and size */
    char text[MAXM][32];           /* the start of short text messages */
    int npongs;
    size_t pong_len[16];
    unsigned char pong[16][WSR_MAX_CONTROL_PAYLOAD];
} crec;

static void c_open(wsr_client *c, const char *sub, void *user) {
    crec *r = (crec *)user;
    (void)c;
    r->opens++;
    snprintf(r->sub, sizeof r->sub, "%s", sub ? sub : "(null)");
}
static void c_close(wsr_client *c, const wsr_error *why, void *user) {
    crec *r = (crec *)user;
    (void)c;
    if (r->closes++ == 0) r->first_why = *why;
}
static void c_end(wsr_client *c, const wsr_error *why, void *user) {
    crec *r = (crec *)user;
    (void)c;
    r->ends++;
    r->end_why = *why;
}
static void c_message(wsr_client *c, wsr_msg_type type, const void *data, size_t len, void *user) {
    crec *r = (crec *)user;
    int i = r->messages++;
    (void)c;
    if (i >= MAXM) return;
    r->type[i] = type;
    r->len[i] = len;
    r->is_payload[i] = payload_is(type, data, len);
    if (type == WSR_MSG_TEXT) {
        size_t n = len < sizeof r->text[i] - 1 ? len : sizeof r->text[i] - 1;
        memcpy(r->text[i], data, n);
        r->text[i][n] = '\0';
    }
}
static void c_pong(wsr_client *c, const void *data, size_t len, void *user) {
    crec *r = (crec *)user;
    (void)c;
    if (r->npongs >= 16 || len > WSR_MAX_CONTROL_PAYLOAD) return;
    r->pong_len[r->npongs] = len;
    memcpy(r->pong[r->npongs], data, len);
    r->npongs++;
}
static int got_pong(const crec *r, const void *data, size_t len) {
    int i;
    for (i = 0; i < r->npongs; i++)
        if (r->pong_len[i] == len && memcmp(r->pong[i], data, len) == 0) return 1;
    return 0;
}

/* One connection to their server: no reconnecting, no keepalive ping. */
static wsr_client *client_open(wsr_client_config *cfg, crec *r, char *url, size_t cap, int port) {
    wsr_error err;
    wsr_client *c;
    snprintf(url, cap, "ws://127.0.0.1:%d/interop", port);
    cfg->url = url;
    cfg->on_open = c_open;
    cfg->on_close = c_close;
    cfg->on_end = c_end;
    cfg->on_message = c_message;
    cfg->on_pong = c_pong;
    cfg->user = r;
    c = wsr_client_new(cfg, &err);
    if (!c) printf("wsr_client_new: %s\n", err.message);
    return c;
}
static void client_cfg(wsr_client_config *cfg) {
    wsr_client_config_init(cfg);
    cfg->reconnect = 0;
    cfg->ping_interval_ms = 0;
}

#define CPOLL(c, p) do { wsr_client_poll((c), 1); peer_drain(p); } while (0)

typedef struct msg_spec { wsr_msg_type type; size_t size; } msg_spec;

static const msg_spec echo_sizes[] = {
    {WSR_MSG_TEXT, 0}, {WSR_MSG_BINARY, 0}, {WSR_MSG_TEXT, 1}, {WSR_MSG_BINARY, 1},
    {WSR_MSG_TEXT, 125}, {WSR_MSG_BINARY, 125}, {WSR_MSG_TEXT, 126}, {WSR_MSG_BINARY, 126},
    {WSR_MSG_TEXT, 65535}, {WSR_MSG_BINARY, 65535}, {WSR_MSG_TEXT, 65536}, {WSR_MSG_BINARY, 65536},
    {WSR_MSG_TEXT, 1 << 20}, {WSR_MSG_BINARY, 1 << 20},
    {WSR_MSG_TEXT, 16 << 20}, {WSR_MSG_BINARY, 16 << 20},
};
#define NECHO (int)(sizeof echo_sizes / sizeof echo_sizes[0])

/* Connects to their server (already running on port), sends the messages
   all at once, fragmented by frag (0: never), and checks that every echo
   equals what was sent, in order, byte for byte, and that the server got
   each one whole (its MSG line has our SHA-1). Closes with 1000. */
static void echo_round(peer *srv, int port, size_t frag, const msg_spec *m, int n) {
    wsr_client_config cfg;
    crec r;
    char url[64], want[MAXM][128];
    size_t from = srv->pr.out.len;
    wsr_client *c;
    int i;
    memset(&r, 0, sizeof r);
    client_cfg(&cfg);
    cfg.send_fragment_size = frag;
    c = client_open(&cfg, &r, url, sizeof url, port);
    CHECK(c != NULL);
    if (!c) return;
    for (i = 0; i < n && i < MAXM; i++) {
        unsigned char *p = payload_new(m[i].type, m[i].size);
        char hex[41];
        CHECK(p != NULL);
        if (!p) break;
        sha1_hex(p, m[i].size, hex);
        snprintf(want[i], sizeof want[i], "MSG %s %zu %s", type_name(m[i].type), m[i].size, hex);
        CHECK_EQ_INT(wsr_send(c, m[i].type, p, m[i].size), WSR_OK);
        free(p);
    }
    PUMP_UNTIL(r.messages >= n || r.closes, 60000, CPOLL(c, srv));
    CHECK_EQ_INT(r.opens, 1);
    CHECK_EQ_INT(r.closes, 0);
    CHECK_EQ_INT(r.messages, n);
    for (i = 0; i < n && i < r.messages && i < MAXM; i++) {
        CHECK_EQ_INT(r.type[i], m[i].type);
        CHECK_EQ_INT(r.len[i], m[i].size);
        if (!r.is_payload[i]) printf("echo %d (%s %zu) differs from what we sent\n", i, type_name(m[i].type), m[i].size);
        CHECK(r.is_payload[i]);
    }
    /* Their line for a message may come after its echo: through the peer
       broker (Windows) their stdout takes another hop. Only this round's lines count. */
    PUMP_UNTIL(peer_count_from(srv, "MSG ", from) >= n, 5000, CPOLL(c, srv));
    for (i = 0; i < n && i < MAXM; i++) {
        int found = peer_find(srv, want[i], 0, &from);
        if (!found) printf("server did not report \"%s\" (in order)\n", want[i]);
        CHECK(found);
    }
    CHECK_EQ_INT(wsr_client_close(c, 1000, NULL), WSR_OK);
    PUMP_UNTIL(wsr_client_state(c) == WSR_STATE_CLOSED, 5000, CPOLL(c, srv));
    CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(r.end_why.code, WSR_ERR_CLOSED);
    wsr_client_free(c);
}

static void client_echo(const kind *k, const char *name) {
    tcase t = case_begin(name);
    peer srv;
    int port;
    peer_init(&srv, k->node ? "node ws server" : "python websockets server");
    port = server_start(&srv, k, NULL);
    CHECK(port > 0);
    if (port > 0) echo_round(&srv, port, 0, echo_sizes, NECHO);
    case_end(&t, &srv, NULL, NULL);
}

/* send_fragment_size: 1001 splits characters and lands nowhere near a
   power of two; 3 makes every character straddle frames; messages of one
   frame, of exactly two frames and empty ones go too. Then the other way:
   their server sends its echoes fragmented (1001-byte frames, or 1001
   characters for Python) with a ping between the first two frames. */
static void client_fragmented(const kind *k, const char *name) {
    static const msg_spec big[] = {
        {WSR_MSG_TEXT, 100003}, {WSR_MSG_BINARY, 65536}, {WSR_MSG_TEXT, 5}, {WSR_MSG_BINARY, 2002},
        {WSR_MSG_TEXT, 0}, {WSR_MSG_BINARY, 1 << 20}, {WSR_MSG_TEXT, 1001},
    };
    static const msg_spec tiny[] = {{WSR_MSG_TEXT, 1000}, {WSR_MSG_BINARY, 10}, {WSR_MSG_TEXT, 3}};
    static const char *const frag_args[] = {"--fragment", "1001", NULL};
    tcase t = case_begin(name);
    peer srv, fsrv;
    int port;
    peer_init(&srv, k->node ? "node ws server" : "python websockets server");
    peer_init(&fsrv, k->node ? "node ws server --fragment" : "python websockets server --fragment");
    port = server_start(&srv, k, NULL);
    CHECK(port > 0);
    if (port > 0) {
        echo_round(&srv, port, 1001, big, (int)(sizeof big / sizeof big[0]));
        echo_round(&srv, port, 3, tiny, (int)(sizeof tiny / sizeof tiny[0]));
    }
    port = server_start(&fsrv, k, frag_args);
    CHECK(port > 0);
    if (port > 0) echo_round(&fsrv, port, 0, big, (int)(sizeof big / sizeof big[0]));
    case_end(&t, &srv, &fsrv, NULL);
}

/* Their server pings us as soon as we are open (we must answer); we ping
   them with wsr_send_ping (on_pong must hear the same payload), and our
   keepalive ping gets answered (an RTT is measured). */
static void client_pings(const kind *k, const char *name) {
    static const char *const args[] = {"--ping", "srvping", NULL};
    tcase t = case_begin(name);
    peer srv;
    int port;
    unsigned char big[WSR_MAX_CONTROL_PAYLOAD];
    peer_init(&srv, k->node ? "node ws server" : "python websockets server");
    memset(big, 'p', sizeof big);
    port = server_start(&srv, k, args);
    CHECK(port > 0);
    if (port > 0) {
        wsr_client_config cfg;
        crec r;
        char url[64];
        wsr_client *c;
        memset(&r, 0, sizeof r);
        client_cfg(&cfg);
        cfg.ping_interval_ms = 150;
        cfg.pong_timeout_ms = 5000;
        c = client_open(&cfg, &r, url, sizeof url, port);
        CHECK(c != NULL);
        if (c) {
            PUMP_UNTIL(r.opens == 1 || r.closes, 10000, CPOLL(c, &srv));
            CHECK_EQ_INT(r.opens, 1);
            CHECK_EQ_INT(wsr_send_ping(c, "cliping", 7), WSR_OK);
            CHECK_EQ_INT(wsr_send_ping(c, big, sizeof big), WSR_OK);
            CHECK_EQ_INT(wsr_send_ping(c, "", 0), WSR_OK);
            PUMP_UNTIL((got_pong(&r, "cliping", 7) && got_pong(&r, big, sizeof big) && got_pong(&r, "", 0) &&
                        peer_has(&srv, "PONG \"srvping\"") && wsr_client_rtt_ms(c) >= 0) || r.closes,
                       10000, CPOLL(c, &srv));
            CHECK(got_pong(&r, "cliping", 7));
            CHECK(got_pong(&r, big, sizeof big));
            CHECK(got_pong(&r, "", 0));
            CHECK(peer_has(&srv, "PONG \"srvping\""));
            CHECK(wsr_client_rtt_ms(c) >= 0);
            CHECK_EQ_INT(r.closes, 0);
            CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_OPEN);
            wsr_client_free(c);
        }
    }
    case_end(&t, &srv, NULL, NULL);
}

/* The longest close reason there is (123 bytes), mostly two-byte UTF-8. */
static const char *long_reason(void) {
    static char buf[WSR_MAX_CLOSE_REASON + 1];
    int i;
    if (!buf[0]) {
        for (i = 0; i < 60; i++) memcpy(buf + 2 * i, "\xc3\xa9", 2);   /* é */
        memcpy(buf + 120, "end", 4);
    }
    return buf;
}

/* We close with 4001 "bye" (and with 4001 and the longest reason): they see
   exactly that, answer, and the close handshake finishes well before our
   close timeout. */
static void client_close_ours(const kind *k, const char *name) {
    tcase t = case_begin(name);
    peer srv;
    int port, round;
    peer_init(&srv, k->node ? "node ws server" : "python websockets server");
    port = server_start(&srv, k, NULL);
    CHECK(port > 0);
    for (round = 0; round < 2 && port > 0; round++) {
        const char *reason = round == 0 ? "bye" : long_reason();
        wsr_client_config cfg;
        crec r;
        char url[64], line[256];
        wsr_client *c;
        size_t from = srv.pr.out.len;
        memset(&r, 0, sizeof r);
        snprintf(line, sizeof line, "CLOSE 4001 \"%s\"", reason);
        client_cfg(&cfg);
        cfg.close_timeout_ms = (int)wsr_test_scaled(4000);
        c = client_open(&cfg, &r, url, sizeof url, port);
        CHECK(c != NULL);
        if (c) {
            uint64_t t0;
            size_t at = from;
            PUMP_UNTIL(r.opens == 1 || r.closes, 10000, CPOLL(c, &srv));
            CHECK_EQ_INT(r.opens, 1);
            t0 = wsr_now_ms();
            CHECK_EQ_INT(wsr_client_close(c, 4001, reason), WSR_OK);
            PUMP_UNTIL(wsr_client_state(c) == WSR_STATE_CLOSED && peer_find(&srv, "CLOSE ", 0, &at), 8000,
                       { at = from; CPOLL(c, &srv); });
            CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_CLOSED);
            CHECK(wsr_now_ms() - t0 < wsr_test_scaled(3000));   /* not by our close timeout */
            at = from;
            if (!peer_find(&srv, line, 1, &at)) printf("server did not report %s\n", line);
            CHECK(peer_find(&srv, line, 1, &from));
            CHECK_EQ_INT(r.ends, 1);
            CHECK_EQ_INT(r.end_why.code, WSR_ERR_CLOSED);
            CHECK_EQ_INT(r.first_why.code, WSR_ERR_CLOSED);
            CHECK_EQ_INT(r.first_why.close_code, 4001);   /* both peers echo the code */
            wsr_client_free(c);
        }
    }
    case_end(&t, &srv, NULL, NULL);
}

/* They close with 4002 "later" (then with 4002 and the longest reason)
   after our first message: we see WSR_ERR_PEER_CLOSED with that code and
   reason, and answer with 4002. */
static void client_close_theirs(const kind *k, const char *name) {
    tcase t = case_begin(name);
    peer srv[2];
    int round;
    for (round = 0; round < 2; round++) {
        const char *reason = round == 0 ? "later" : long_reason();
        const char *args[] = {"--close-on", "1", "4002", reason, NULL};
        int port;
        peer_init(&srv[round], k->node ? "node ws server" : "python websockets server");
        port = server_start(&srv[round], k, args);
        CHECK(port > 0);
        if (port > 0) {
            wsr_client_config cfg;
            crec r;
            char url[64];
            wsr_client *c;
            memset(&r, 0, sizeof r);
            client_cfg(&cfg);
            c = client_open(&cfg, &r, url, sizeof url, port);
            CHECK(c != NULL);
            if (c) {
                CHECK_EQ_INT(wsr_send_text(c, "close-me", 8), WSR_OK);
                PUMP_UNTIL((wsr_client_state(c) == WSR_STATE_CLOSED && peer_has_prefix(&srv[round], "CLOSE ")),
                           8000, CPOLL(c, &srv[round]));
                CHECK_EQ_INT(r.opens, 1);
                CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_CLOSED);
                CHECK_EQ_INT(r.closes, 1);
                CHECK_EQ_INT(r.first_why.code, WSR_ERR_PEER_CLOSED);
                CHECK_EQ_INT(r.first_why.close_code, 4002);
                CHECK_EQ_STR(r.first_why.close_reason, reason);
                CHECK_EQ_INT(r.ends, 1);
                CHECK_EQ_INT(r.end_why.code, WSR_ERR_PEER_CLOSED);
                CHECK(peer_has_prefix(&srv[round], "CLOSE 4002 "));   /* our answer carried the code */
                CHECK(peer_has_prefix(&srv[round], "MSG text 8 "));
                wsr_client_free(c);
            }
        }
    }
    case_end(&t, &srv[0], &srv[1], NULL);
}

/* We offer "chat, superchat". A server that takes only superchat picks it;
   one that prefers chat picks chat; one that takes neither picks none. */
static void client_subprotocol(const kind *k, const char *name) {
    static const char *const only_super[] = {"--subprotocols", "superchat", NULL};
    static const char *const prefers_chat[] = {"--subprotocols", "chat,superchat", NULL};
    static const char *const neither[] = {"--subprotocols", "other", NULL};
    static const char *const *const args[3] = {only_super, prefers_chat, neither};
    static const char *const expect[3] = {"superchat", "chat", ""};
    tcase t = case_begin(name);
    peer srv[3];
    int i;
    for (i = 0; i < 3; i++) {
        int port;
        peer_init(&srv[i], k->node ? "node ws server" : "python websockets server");
        port = server_start(&srv[i], k, args[i]);
        CHECK(port > 0);
        if (port > 0) {
            wsr_client_config cfg;
            crec r;
            char url[64], line[64];
            wsr_client *c;
            memset(&r, 0, sizeof r);
            client_cfg(&cfg);
            cfg.subprotocols = "chat, superchat";
            c = client_open(&cfg, &r, url, sizeof url, port);
            CHECK(c != NULL);
            if (c) {
                snprintf(line, sizeof line, "OPEN \"%s\"", expect[i]);
                PUMP_UNTIL((r.opens == 1 && peer_has_prefix(&srv[i], "OPEN ")) || r.closes, 10000, CPOLL(c, &srv[i]));
                CHECK_EQ_INT(r.opens, 1);
                CHECK_EQ_STR(r.sub, expect[i]);
                CHECK(peer_has(&srv[i], line));
                wsr_client_free(c);
            }
        }
    }
    case_end(&t, &srv[0], &srv[1], &srv[2]);
}

/* They drop the TCP connection without a close frame: 1006, WSR_ERR_EOF. */
static void client_drop(const kind *k, const char *name) {
    static const char *const args[] = {"--drop-on", "1", NULL};
    tcase t = case_begin(name);
    peer srv;
    int port;
    peer_init(&srv, k->node ? "node ws server" : "python websockets server");
    port = server_start(&srv, k, args);
    CHECK(port > 0);
    if (port > 0) {
        wsr_client_config cfg;
        crec r;
        char url[64];
        wsr_client *c;
        memset(&r, 0, sizeof r);
        client_cfg(&cfg);
        c = client_open(&cfg, &r, url, sizeof url, port);
        CHECK(c != NULL);
        if (c) {
            CHECK_EQ_INT(wsr_send_text(c, "drop-me", 7), WSR_OK);
            /* Their line may come after the drop (through the broker, on Windows). */
            PUMP_UNTIL(wsr_client_state(c) == WSR_STATE_CLOSED && peer_has_prefix(&srv, "MSG text 7 "), 8000,
                       CPOLL(c, &srv));
            CHECK_EQ_INT(r.opens, 1);
            CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_CLOSED);
            CHECK_EQ_INT(r.closes, 1);
            CHECK_EQ_INT(r.first_why.code, WSR_ERR_EOF);
            CHECK_EQ_INT(r.first_why.close_code, 1006);
            CHECK_EQ_INT(r.ends, 1);
            CHECK(peer_has_prefix(&srv, "MSG text 7 "));
            wsr_client_free(c);
        }
    }
    case_end(&t, &srv, NULL, NULL);
}

/* Their server dies (SIGKILL) under an open client (reconnect on, backoff
   from 50 ms); what we send while it is down waits in our queue; a new
   server process on the same port gets it, in order, exactly once. */
static void client_restart(const kind *k, const char *name) {
    tcase t = case_begin(name);
    peer a, b;
    int port;
    peer_init(&a, k->node ? "node ws server (first)" : "python websockets server (first)");
    peer_init(&b, k->node ? "node ws server (restarted)" : "python websockets server (restarted)");
    port = server_start(&a, k, NULL);
    CHECK(port > 0);
    if (port > 0) {
        wsr_client_config cfg;
        crec r;
        char url[64], portarg[16];
        const char *args[3];
        wsr_client *c;
        int i, port2 = -1;
        memset(&r, 0, sizeof r);
        wsr_client_config_init(&cfg);
        cfg.reconnect = 1;
        cfg.ping_interval_ms = 0;
        cfg.backoff.initial_ms = 50;
        cfg.backoff.max_ms = 400;
        cfg.backoff.jitter = WSR_JITTER_NONE;
        c = client_open(&cfg, &r, url, sizeof url, port);
        CHECK(c != NULL);
        if (c) {
            CHECK_EQ_INT(wsr_send_text(c, "before", 6), WSR_OK);
            PUMP_UNTIL(r.messages == 1 || r.closes, 10000, CPOLL(c, &a));
            CHECK_EQ_INT(r.opens, 1);
            CHECK_EQ_INT(r.messages, 1);
            peer_stop(&a);                               /* SIGKILL, reaped (by the broker on Windows) */
            PUMP_UNTIL(r.closes >= 1, 5000, wsr_client_poll(c, 1));
            CHECK_EQ_INT(r.closes, 1);
            CHECK(r.first_why.code == WSR_ERR_EOF || r.first_why.code == WSR_ERR_RESET);
            CHECK_EQ_INT(r.first_why.close_code, 1006);
            for (i = 1; i <= 5; i++) {
                char m[16];
                int n = snprintf(m, sizeof m, "q %d", i);
                CHECK_EQ_INT(wsr_send_text(c, m, (size_t)n), WSR_OK);
            }
            PUMP_FOR(300, wsr_client_poll(c, 1));        /* a few refused attempts */
            CHECK_EQ_INT(r.opens, 1);
            CHECK_EQ_INT(wsr_client_queued_messages(c), 5);
            snprintf(portarg, sizeof portarg, "%d", port);
            args[0] = "--port"; args[1] = portarg; args[2] = NULL;
            port2 = server_start(&b, k, args);
            CHECK_EQ_INT(port2, port);
            PUMP_UNTIL((r.opens == 2 && r.messages >= 6 && peer_count(&b, "MSG ") >= 5) || r.ends, 10000,
                       CPOLL(c, &b));
            CHECK_EQ_INT(r.opens, 2);
            CHECK_EQ_INT(r.messages, 6);
            CHECK_EQ_INT(r.ends, 0);
            {
                size_t from = 0;
                for (i = 1; i <= 5; i++) {
                    char echo[16], hex[41], want[96];
                    int found;
                    snprintf(echo, sizeof echo, "q %d", i);
                    sha1_hex(echo, 3, hex);
                    snprintf(want, sizeof want, "MSG text 3 %s \"%s\"", hex, echo);
                    found = peer_find(&b, want, 1, &from);
                    if (!found) printf("restarted server lacks %s (in order)\n", want);
                    CHECK(found);
                    if (i < r.messages && i < MAXM) CHECK_EQ_STR(r.text[i], echo);
                }
                CHECK_EQ_INT(peer_count(&b, "MSG "), 5);   /* exactly once */
                CHECK_EQ_INT(peer_count(&a, "MSG "), 1);   /* "before" only */
            }
            CHECK_EQ_INT(wsr_client_queued_messages(c), 0);
            wsr_client_free(c);
        }
    }
    case_end(&t, &a, &b, NULL);
}

/* ---- our server ---------------------------------------------------------- */

typedef struct srec {
    int opens, closes, messages, bad, send_errors, ready;
    char sub[64];
    wsr_error why;
} srec;

static void s_open(wsr_conn *conn, void *user) {
    srec *r = (srec *)user;
    r->opens++;
    snprintf(r->sub, sizeof r->sub, "%s", wsr_conn_subprotocol(conn));
}
static void s_close(wsr_conn *conn, const wsr_error *why, void *user) {
    srec *r = (srec *)user;
    (void)conn;
    r->closes++;
    r->why = *why;
}
/* "cmd-close" asks us to close with 4004 "adieu", "cmd-close-long" with
   4004 and the longest reason, "cmd-ready" counts;
   anything else must be a test payload and is echoed. */
static void s_message(wsr_conn *conn, wsr_msg_type type, const void *data, size_t len, void *user) {
    srec *r = (srec *)user;
    if (type == WSR_MSG_TEXT && len == 9 && memcmp(data, "cmd-close", 9) == 0) {
        if (wsr_conn_close(conn, 4004, "adieu") != WSR_OK) r->send_errors++;
        return;
    }
    if (type == WSR_MSG_TEXT && len == 14 && memcmp(data, "cmd-close-long", 14) == 0) {
        if (wsr_conn_close(conn, 4004, long_reason()) != WSR_OK) r->send_errors++;
        return;
    }
    if (type == WSR_MSG_TEXT && len == 9 && memcmp(data, "cmd-ready", 9) == 0) {
        r->ready++;
        return;
    }
    r->messages++;
    if (!payload_is(type, data, len)) {
        r->bad++;
        printf("our server got a %s message of %zu bytes that is not the test payload\n", type_name(type), len);
    }
    if (wsr_conn_send(conn, type, data, len) != WSR_OK) r->send_errors++;
}

static wsr_server *server_new(srec *r, size_t frag) {
    wsr_server_config cfg;
    wsr_error err;
    wsr_server *s;
    wsr_server_config_init(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.subprotocols = "superchat, chat";
    cfg.send_fragment_size = frag;
    cfg.on_open = s_open;
    cfg.on_close = s_close;
    cfg.on_message = s_message;
    cfg.user = r;
    s = wsr_server_new(&cfg, &err);
    if (!s) printf("wsr_server_new: %s\n", err.message);
    return s;
}

#define SPOLL(s, p) do { wsr_server_poll((s), 1); peer_drain(p); } while (0)

/* Runs their client with the actions (NULL-terminated) against our server
   until it exits, polling the server meanwhile. 1 if it exited 0. */
static int client_run(peer *cl, const kind *k, wsr_server *s, const char *protocols, const char *const *actions) {
    const char *extra[40];
    char url[64];
    int n = 0;
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/interop", wsr_server_port(s));
    extra[n++] = url;
    if (protocols) { extra[n++] = "--protocols"; extra[n++] = protocols; }
    while (actions && *actions && n < 39) extra[n++] = *actions++;
    extra[n] = NULL;
    if (!kind_ready(k) || !peer_start(cl, k, k->node ? "ws_client.js" : "py_client.py", extra)) return 0;
    PUMP_UNTIL(!peer_running(cl), 60000, SPOLL(s, cl));
    if (peer_running(cl)) printf("%s did not finish in time\n", cl->what);
    peer_stop(cl);
    CHECK(peer_has(cl, "DONE"));
    CHECK_EQ_INT(peer_count(cl, "ERROR"), 0);
    return peer_exited_ok(cl);
}

static const char *client_what(const kind *k) { return k->node ? "node ws client" : "python websockets client"; }

static void server_echo(const kind *k, const char *name) {
    static char acts[NECHO][40];
    const char *actions[NECHO + 1];
    tcase t = case_begin(name);
    peer cl;
    srec r;
    wsr_server *s;
    int i;
    peer_init(&cl, client_what(k));
    memset(&r, 0, sizeof r);
    for (i = 0; i < NECHO; i++) {
        snprintf(acts[i], sizeof acts[i], "echo:%s:%zu", type_name(echo_sizes[i].type), echo_sizes[i].size);
        actions[i] = acts[i];
    }
    actions[NECHO] = NULL;
    s = server_new(&r, 0);
    CHECK(s != NULL);
    if (s) {
        int ran = client_run(&cl, k, s, NULL, actions);
        CHECK(ran);
        for (i = 0; i < NECHO; i++) {
            char line[64];
            snprintf(line, sizeof line, "ECHO %s %zu ok", type_name(echo_sizes[i].type), echo_sizes[i].size);
            if (!peer_has(&cl, line)) printf("missing \"%s\"\n", line);
            CHECK(peer_has(&cl, line));
        }
        PUMP_UNTIL(r.closes == 1 || !ran, 5000, wsr_server_poll(s, 1));
        CHECK_EQ_INT(r.opens, 1);
        CHECK_EQ_INT(r.messages, NECHO);
        CHECK_EQ_INT(r.bad, 0);
        CHECK_EQ_INT(r.send_errors, 0);
        CHECK_EQ_INT(r.closes, 1);
        CHECK_EQ_INT(r.why.code, WSR_ERR_PEER_CLOSED);
        CHECK_EQ_INT(r.why.close_code, 1000);
        wsr_server_free(s);
    }
    case_end(&t, &cl, NULL, NULL);
}

/* Their fragmented messages (a ping between two fragments too); our server
   fragments its echoes (4093-byte frames) as well. */
static void server_fragmented(const kind *k, const char *name) {
    static const char *const actions[] = {
        "frag:text:100003:1001", "frag:binary:65536:1000", "frag:text:1000:3", "fragping:binary:5000:1000",
        "fragping:text:20000:999", "frag:text:0:10", "frag:binary:1048576:65536", "echo:binary:200000", NULL};
    static const char *const lines[] = {
        "FRAG text 100003 1001 ok", "FRAG binary 65536 1000 ok", "FRAG text 1000 3 ok", "FRAG binary 5000 1000 ok",
        "FRAG text 20000 999 ok", "FRAG text 0 10 ok", "FRAG binary 1048576 65536 ok", "ECHO binary 200000 ok"};
    tcase t = case_begin(name);
    peer cl;
    srec r;
    wsr_server *s;
    size_t i;
    peer_init(&cl, client_what(k));
    memset(&r, 0, sizeof r);
    s = server_new(&r, 4093);
    CHECK(s != NULL);
    if (s) {
        int ran = client_run(&cl, k, s, NULL, actions);
        CHECK(ran);
        for (i = 0; i < sizeof lines / sizeof lines[0]; i++) {
            if (!peer_has(&cl, lines[i])) printf("missing \"%s\"\n", lines[i]);
            CHECK(peer_has(&cl, lines[i]));
        }
        CHECK_EQ_INT(peer_count(&cl, "PONG \"mid\""), 2);
        CHECK_EQ_INT(r.messages, 8);
        CHECK_EQ_INT(r.bad, 0);
        CHECK_EQ_INT(r.send_errors, 0);
        wsr_server_free(s);
    }
    case_end(&t, &cl, NULL, NULL);
}

static void server_pings(const kind *k, const char *name) {
    static char big[7 + WSR_MAX_CONTROL_PAYLOAD + 1], big_line[16 + WSR_MAX_CONTROL_PAYLOAD];
    const char *actions[5];
    tcase t = case_begin(name);
    peer cl;
    srec r;
    wsr_server *s;
    peer_init(&cl, client_what(k));
    memset(&r, 0, sizeof r);
    memcpy(big, "ping:", 5);
    memset(big + 5, 'p', WSR_MAX_CONTROL_PAYLOAD);
    big[5 + WSR_MAX_CONTROL_PAYLOAD] = '\0';
    snprintf(big_line, sizeof big_line, "PONG \"%s\"", big + 5);
    actions[0] = "ping:hello";
    actions[1] = "ping:";
    actions[2] = big;
    actions[3] = "echo:text:10";
    actions[4] = NULL;
    s = server_new(&r, 0);
    CHECK(s != NULL);
    if (s) {
        int ran = client_run(&cl, k, s, NULL, actions);
        CHECK(ran);
        CHECK(peer_has(&cl, "PONG \"hello\""));
        CHECK(peer_has(&cl, "PONG \"\""));
        CHECK(peer_has(&cl, big_line));
        CHECK(peer_has(&cl, "ECHO text 10 ok"));
        wsr_server_free(s);
    }
    case_end(&t, &cl, NULL, NULL);
}

/* They close with 4003 "ciao" (then 4003 and the longest reason): our
   server sees it and answers 4003. */
static void server_close_theirs(const kind *k, const char *name) {
    tcase t = case_begin(name);
    peer cl[2];
    int round;
    for (round = 0; round < 2; round++) {
        char act[160];
        const char *actions[3];
        const char *reason = round == 0 ? "ciao" : long_reason();
        srec r;
        wsr_server *s;
        peer_init(&cl[round], client_what(k));
        memset(&r, 0, sizeof r);
        snprintf(act, sizeof act, "close:4003:%s", reason);
        actions[0] = "echo:text:5";
        actions[1] = act;
        actions[2] = NULL;
        s = server_new(&r, 0);
        CHECK(s != NULL);
        if (s) {
            int ran = client_run(&cl[round], k, s, NULL, actions);
            CHECK(ran);
            CHECK(peer_has_prefix(&cl[round], "CLOSE 4003 "));
            PUMP_UNTIL(r.closes == 1 || !ran, 5000, wsr_server_poll(s, 1));
            CHECK_EQ_INT(r.closes, 1);
            CHECK_EQ_INT(r.why.code, WSR_ERR_PEER_CLOSED);
            CHECK_EQ_INT(r.why.close_code, 4003);
            CHECK_EQ_STR(r.why.close_reason, reason);
            CHECK_EQ_INT(wsr_server_conn_count(s), 0);
            wsr_server_free(s);
        }
    }
    case_end(&t, &cl[0], &cl[1], NULL);
}

/* Our server closes with 4004 "adieu" (then 4004 and the longest reason)
   by wsr_conn_close: they see it. */
static void server_close_ours(const kind *k, const char *name) {
    tcase t = case_begin(name);
    peer cl[2];
    int round;
    for (round = 0; round < 2; round++) {
        const char *actions[] = {"echo:binary:5", round == 0 ? "send:cmd-close" : "send:cmd-close-long", "wait-close",
                                 NULL};
        char line[256];
        srec r;
        wsr_server *s;
        peer_init(&cl[round], client_what(k));
        memset(&r, 0, sizeof r);
        snprintf(line, sizeof line, "CLOSE 4004 \"%s\"", round == 0 ? "adieu" : long_reason());
        s = server_new(&r, 0);
        CHECK(s != NULL);
        if (s) {
            int ran = client_run(&cl[round], k, s, NULL, actions);
            CHECK(ran);
            if (!peer_has(&cl[round], line)) printf("client did not report %s\n", line);
            CHECK(peer_has(&cl[round], line));
            PUMP_UNTIL(r.closes == 1 || !ran, 5000, wsr_server_poll(s, 1));
            CHECK_EQ_INT(r.closes, 1);
            CHECK_EQ_INT(r.why.code, WSR_ERR_CLOSED);
            CHECK_EQ_INT(r.why.close_code, 4004);      /* their answer echoes our code */
            CHECK_EQ_INT(r.send_errors, 0);
            wsr_server_free(s);
        }
    }
    case_end(&t, &cl[0], &cl[1], NULL);
}

/* Their client drops the TCP connection without a close frame: our server
   reports 1006, WSR_ERR_EOF. */
static void server_drop(const kind *k, const char *name) {
    static const char *const actions[] = {"echo:text:5", "drop", NULL};
    tcase t = case_begin(name);
    peer cl;
    srec r;
    wsr_server *s;
    peer_init(&cl, client_what(k));
    memset(&r, 0, sizeof r);
    s = server_new(&r, 0);
    CHECK(s != NULL);
    if (s) {
        int ran = client_run(&cl, k, s, NULL, actions);
        CHECK(ran);
        CHECK(peer_has(&cl, "CLOSE 1006 \"\""));
        PUMP_UNTIL(r.closes == 1 || !ran, 5000, wsr_server_poll(s, 1));
        CHECK_EQ_INT(r.closes, 1);
        CHECK_EQ_INT(r.why.code, WSR_ERR_EOF);
        CHECK_EQ_INT(r.why.close_code, 1006);
        CHECK_EQ_INT(wsr_server_conn_count(s), 0);
        wsr_server_free(s);
    }
    case_end(&t, &cl, NULL, NULL);
}

/* They offer "chat, superchat"; our server prefers superchat. */
static void server_subprotocol(const kind *k, const char *name) {
    static const char *const actions[] = {"echo:text:7", NULL};
    tcase t = case_begin(name);
    peer cl;
    srec r;
    wsr_server *s;
    peer_init(&cl, client_what(k));
    memset(&r, 0, sizeof r);
    s = server_new(&r, 0);
    CHECK(s != NULL);
    if (s) {
        int ran = client_run(&cl, k, s, "chat,superchat", actions);
        CHECK(ran);
        CHECK(peer_has(&cl, "OPEN \"superchat\""));
        CHECK(peer_has(&cl, "ECHO text 7 ok"));
        CHECK_EQ_STR(r.sub, "superchat");
        wsr_server_free(s);
    }
    case_end(&t, &cl, NULL, NULL);
}

/* ---- the tests ----------------------------------------------------------- */

/* Both peers are there; prints their exact versions. */
TEST(peers_present_and_versions) {
    static const kind *const kinds[2] = {&NODE, &PY};
    int i;
    for (i = 0; i < 2; i++) {
        tcase t = case_begin("versions");
        peer p;
        const char *args[] = {"--version", NULL};
        int ok = 0;
        peer_init(&p, kinds[i]->node ? "node ws_client.js --version" : "python3 py_client.py --version");
        if (kind_ready(kinds[i]) && peer_start(&p, kinds[i], kinds[i]->node ? "ws_client.js" : "py_client.py", args)) {
            proc_wait_exit(&p.pr, 20000);
            peer_stop(&p);
            ok = peer_exited_ok(&p) && peer_has_prefix(&p, "VERSION ");
            if (ok) printf("interop peer: %.*s", (int)(strchr(peer_out(&p), '\n') - peer_out(&p) + 1), peer_out(&p));
        }
        CHECK(ok);
        case_end(&t, &p, NULL, NULL);
    }
}

TEST(client_node_echo_sizes) { client_echo(&NODE, "client_node_echo_sizes"); }
TEST(client_python_echo_sizes) { client_echo(&PY, "client_python_echo_sizes"); }
TEST(client_node_fragmented) { client_fragmented(&NODE, "client_node_fragmented"); }
TEST(client_python_fragmented) { client_fragmented(&PY, "client_python_fragmented"); }
TEST(client_node_pings) { client_pings(&NODE, "client_node_pings"); }
TEST(client_python_pings) { client_pings(&PY, "client_python_pings"); }
TEST(client_node_close_ours) { client_close_ours(&NODE, "client_node_close_ours"); }
TEST(client_python_close_ours) { client_close_ours(&PY, "client_python_close_ours"); }
TEST(client_node_close_theirs) { client_close_theirs(&NODE, "client_node_close_theirs"); }
TEST(client_python_close_theirs) { client_close_theirs(&PY, "client_python_close_theirs"); }
TEST(client_node_subprotocol) { client_subprotocol(&NODE, "client_node_subprotocol"); }
TEST(client_python_subprotocol) { client_subprotocol(&PY, "client_python_subprotocol"); }
TEST(client_node_drop_without_close) { client_drop(&NODE, "client_node_drop_without_close"); }
TEST(client_python_drop_without_close) { client_drop(&PY, "client_python_drop_without_close"); }
TEST(client_node_server_restart) { client_restart(&NODE, "client_node_server_restart"); }
TEST(client_python_server_restart) { client_restart(&PY, "client_python_server_restart"); }

TEST(server_node_echo_sizes) { server_echo(&NODE, "server_node_echo_sizes"); }
TEST(server_python_echo_sizes) { server_echo(&PY, "server_python_echo_sizes"); }
TEST(server_node_fragmented) { server_fragmented(&NODE, "server_node_fragmented"); }
TEST(server_python_fragmented) { server_fragmented(&PY, "server_python_fragmented"); }
TEST(server_node_pings) { server_pings(&NODE, "server_node_pings"); }
TEST(server_python_pings) { server_pings(&PY, "server_python_pings"); }
TEST(server_node_close_theirs) { server_close_theirs(&NODE, "server_node_close_theirs"); }
TEST(server_python_close_theirs) { server_close_theirs(&PY, "server_python_close_theirs"); }
TEST(server_node_close_ours) { server_close_ours(&NODE, "server_node_close_ours"); }
TEST(server_python_close_ours) { server_close_ours(&PY, "server_python_close_ours"); }
TEST(server_node_drop_without_close) { server_drop(&NODE, "server_node_drop_without_close"); }
TEST(server_python_drop_without_close) { server_drop(&PY, "server_python_drop_without_close"); }
TEST(server_node_subprotocol) { server_subprotocol(&NODE, "server_node_subprotocol"); }
TEST(server_python_subprotocol) { server_subprotocol(&PY, "server_python_subprotocol"); }

/* A Node client and a Python client on one server: a broadcast of a text
   and a binary message reaches both whole. */
TEST(server_broadcast_node_and_python) {
    static const char *const actions[] = {"send:cmd-ready", "recv:text:70000", "recv:binary:70000", NULL};
    tcase t = case_begin("server_broadcast_node_and_python");
    peer a, b;
    srec r;
    wsr_server *s;
    peer_init(&a, client_what(&NODE));
    peer_init(&b, client_what(&PY));
    memset(&r, 0, sizeof r);
    s = server_new(&r, 0);
    CHECK(s != NULL);
    if (s) {
        const char *ea[8], *eb[8];
        char url[64];
        int n, sent = 0;
        snprintf(url, sizeof url, "ws://127.0.0.1:%d/interop", wsr_server_port(s));
        ea[0] = eb[0] = url;
        for (n = 0; actions[n]; n++) ea[n + 1] = eb[n + 1] = actions[n];
        ea[n + 1] = eb[n + 1] = NULL;
        if (kind_ready(&NODE) && kind_ready(&PY) && peer_start(&a, &NODE, "ws_client.js", ea) &&
            peer_start(&b, &PY, "py_client.py", eb)) {
            uint64_t until = wsr_now_ms() + wsr_test_scaled(30000);
            while ((peer_running(&a) || peer_running(&b)) && wsr_now_ms() < until) {
                wsr_server_poll(s, 1);
                peer_drain(&a);
                peer_drain(&b);
                if (r.ready == 2 && !sent) {
                    unsigned char *tx = payload_new(WSR_MSG_TEXT, 70000);
                    unsigned char *bin = payload_new(WSR_MSG_BINARY, 70000);
                    sent = 1;
                    CHECK_EQ_INT(wsr_server_conn_count(s), 2);
                    CHECK_EQ_INT(wsr_server_broadcast(s, WSR_MSG_TEXT, tx, 70000), WSR_OK);
                    CHECK_EQ_INT(wsr_server_broadcast(s, WSR_MSG_BINARY, bin, 70000), WSR_OK);
                    free(tx);
                    free(bin);
                }
            }
            CHECK(sent);
            peer_stop(&a);
            peer_stop(&b);
            CHECK(peer_exited_ok(&a));
            CHECK(peer_exited_ok(&b));
            CHECK(peer_has(&a, "RECV text 70000 ok"));
            CHECK(peer_has(&a, "RECV binary 70000 ok"));
            CHECK(peer_has(&b, "RECV text 70000 ok"));
            CHECK(peer_has(&b, "RECV binary 70000 ok"));
        } else {
            CHECK(!"both peer clients started");
        }
        wsr_server_free(s);
    }
    case_end(&t, &a, &b, NULL);
}

TEST_MAIN()
