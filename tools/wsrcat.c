/* wsrcat: a WebSocket cat on ws_reconnect.h, in the manner of wscat and
   websocat: a client that sends stdin lines and prints what comes back, and
   a small server (echo, or a broadcast chat).

   usage: wsrcat [options] ws[s]://host:port/path    (client)
          wsrcat -l [HOST:]PORT [--broadcast] [options] (server)
   `wsrcat --help` says it all; the text is in `usage` below.

   TLS (wss://) needs ws_reconnect.h's WSR_USE_MBEDTLS where the
   implementation is compiled, and mbedTLS linked; `make` builds it so:
       cc -std=c99 -O2 -DWSR_USE_MBEDTLS -I. tools/wsrcat.c -o wsrcat -pthread \
          -lmbedtls -lmbedx509 -lmbedcrypto
   Without them it still builds, and refuses wss:// and the TLS options
   with a clear error (status 2).

   It is also a tour of the library's client. Things to look for:
   - main_client() owns the event loop: it polls stdin, a signal pipe and the
     client's socket in one poll() call, asking the client which socket
     (wsr_client_socket), which events (wsr_client_events) and how long it
     may wait (wsr_client_timeout_ms), then lets it work (wsr_client_step).
     Why not the thread runner (wsr_client_start_thread)? Because stdin is
     just one more file descriptor here: one thread means callbacks run
     where we print, so stdout needs no lock, and ending is simple (a
     thread blocked in read(0) cannot be told to stop). The thread runner
     is for programs whose main thread is busy with something else.
   - Reconnection, keepalive and the queue are the library's: wsrcat only
     sets the knobs (--backoff, --ping-interval, --queue-size, ...). A line
     read while the link is down is handed to wsr_send_text() at once; it
     waits in the client's queue and goes out, in order, after the next
     upgrade.
   - Back-pressure: when the queue is full (WSR_ERR_QUEUE_FULL) wsrcat stops
     reading stdin until there is room again, so nothing is dropped.
   - End of input: wsrcat waits until the queue is empty (every line written
     to the socket, across reconnects if need be), then closes with 1000 and
     waits for the server's answer. wsr_client_close() on an open link would
     also send the queue first, but if the link dropped during the close
     the rest would be dropped: waiting for an empty queue first keeps the
     "nothing lost" promise.
   - The callbacks (on_open, on_message, on_close, on_reconnecting, on_end,
     on_state) only print: what each one hears is what -v and -j show.

   The server side (main_server) uses wsr_server_poll(), which waits by
   itself: the server has no socket/events/step functions yet, so the loop
   looks at stdin without waiting and then lets the server wait up to
   SERVER_TICK_MS.

   On Windows (mingw-w64: add -lws2_32 -lbcrypt) the loop is the same, but
   WSAPoll cannot wait on a console or a pipe: tool_os.h turns stdin into a
   socket fed by a reader thread, and Ctrl-C, Ctrl-Break or the console
   closing into a byte on another socket, which stand where fd 0 and the
   signal pipe stand on POSIX. */
#define _POSIX_C_SOURCE 200809L
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include "tool_os.h"        /* stdin and signals as sockets on Windows; fd 0 and a pipe on POSIX */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* In pieces: C99 promises string literals of 4095 bytes only. */
static const char *const usage[] = {
"usage: wsrcat [options] ws[s]://HOST[:PORT]/PATH       connect (client mode)\n"
"       wsrcat -l [HOST:]PORT [--broadcast] [options]   serve (server mode)\n"
"\n"
"Client mode sends each line of stdin (without its newline) as a text message\n"
"and prints each message it receives on its own line on stdout. It reconnects\n"
"by itself: lines read while the link is down wait in the queue and go out, in\n"
"order, after the reconnect. At the end of stdin it sends what is still queued,\n"
"closes with 1000, waits for the server's answer and exits.\n"
"\n"
"Client options:\n"
"  -H, --header \"Name: value\"  add a header line to the upgrade request (repeatable)\n"
"  -s, --subprotocol LIST      offer these subprotocols (comma-separated)\n"
"  -b, --binary                send stdin lines as binary messages, not text\n"
"      --ping-interval MS      ping after MS ms without inbound traffic (default 20000; 0: never)\n"
"      --pong-timeout MS       after a ping, fail the link if nothing arrives within MS ms and\n"
"                              reconnect (default 10000; 0: never)\n"
"      --backoff INITIAL:MAX   reconnect waits in ms: INITIAL, doubling up to MAX, each one\n"
"                              randomised between half and all of it (default 500:30000)\n"
"      --max-attempts N        give up after N failed attempts in a row (default 0: never)\n"
"      --queue-size BYTES      at most BYTES of lines waiting to go out (default 67108864);\n"
"                              when it is full, stdin is not read until there is room\n"
"  -n, --no-reconnect          one connection only: when it ends, exit (status 3)\n"
"  -x, --exit-after N          exit after N received messages (closing with 1000). With -x,\n"
"                              the end of stdin does not close: wsrcat waits for the N\n"
"      --keep-open             at the end of stdin, keep running and printing what arrives\n"
"      --close-after-eof       at the end of stdin, send what is queued, close with 1000 and\n"
"                              exit (the default without -x)\n"
"\n",
"Server mode listens, prints \"listening on HOST:PORT\" as its first line (port 0\n"
"picks a free one), and prints each message it receives. Each message is echoed\n"
"back to its sender; each stdin line is sent to every client. At the end of stdin\n"
"it keeps serving; SIGINT or SIGTERM closes every client with 1001 and exits.\n"
"\n"
"Server options:\n"
"  -l, --listen [HOST:]PORT    serve on HOST (default 127.0.0.1; 0.0.0.0 or [::] for all)\n"
"      --broadcast             send each message received to every client, the sender\n"
"                              included, instead of echoing it (a chat)\n"
"  -s, --subprotocol LIST      subprotocols to accept, in order of preference\n"
"  -b, --binary                send stdin lines as binary messages\n"
"  -x, --exit-after N          exit after N received messages (closing every client with 1001)\n"
"\n"
"Both modes:\n"
"  -j, --json                  print one JSON object per line for each event instead of the\n"
"                              raw messages (see below)\n"
"  -v, --verbose               timestamped log of states, waits, reconnects and close reasons\n"
"                              on stderr; -vv adds the library's own log lines\n"
"  -h, --help                  print this text and exit\n"
"\n",
"Output. A text message is printed as it came, then a newline (a text that holds\n"
"newlines spans several lines: use -j to keep messages apart). A binary message\n"
"is printed as lowercase hex on one line. With -j, one object per line:\n"
"  {\"event\":\"open\",\"url\":\"ws://...\",\"subprotocol\":\"\"}\n"
"  {\"event\":\"message\",\"type\":\"text\",\"data\":\"...\"}    (binary: \"type\":\"binary\", data in base64)\n"
"  {\"event\":\"close\",\"code\":1006,\"reason\":\"\",\"error\":\"...\",\"http_status\":0}\n"
"  {\"event\":\"reconnecting\",\"attempt\":1,\"delay_ms\":480}\n"
"  {\"event\":\"end\",\"exit_code\":0,\"reason\":\"...\"}\n"
"In server mode the first is {\"event\":\"listening\",\"host\":...,\"port\":...}, and\n"
"open, message and close carry the client's \"id\" (open also its \"path\").\n"
"\n",
"TLS (wss://). Certificates are verified by default, against the system's CA bundle\n"
"(/etc/ssl/certs/ca-certificates.crt on Debian): the server's certificate must chain\n"
"to one of its CAs and name the URL's host (a DNS name, or an IP address such as\n"
"127.0.0.1 in its subjectAltName). A certificate that is refused (unknown CA, wrong\n"
"host, expired, not valid yet) ends wsrcat at once with status 2, without retrying:\n"
"the same certificate would be refused again.\n"
"\n"
"TLS options:\n"
"      --ca FILE               trust the CA certificates in this PEM file instead of the\n"
"                              system's bundle\n"
"      --ca-dir DIR            trust the CA certificates in this directory (with --ca: both)\n"
"      --cert FILE             client: our certificate, for servers that ask for one\n"
"      --key FILE              (mutual TLS), and its private key. With -l: the server's\n"
"                              certificate and key, and it serves wss:// instead of ws://\n"
"                              (wsrcat -l 8443 --cert server.crt --key server.key)\n"
"      --server-name NAME      verify the certificate for NAME, and send NAME as SNI,\n"
"                              instead of the URL's host\n"
"  -k, --insecure              accept ANY certificate: no verification at all (wsrcat\n"
"                              warns on stderr). For tests only: anyone on the network\n"
"                              path can then read and change the traffic; --ca FILE is\n"
"                              the safe way to trust a test CA\n"
"--ca, --ca-dir, --server-name and -k are client options; --cert and --key go together.\n"
#ifdef WSR_USE_MBEDTLS
"This wsrcat is built with TLS (mbedTLS).\n"
#else
"This wsrcat is built WITHOUT TLS (ws_reconnect.h's WSR_USE_MBEDTLS): wss:// URLs\n"
"and the TLS options are refused with a clear error (status 2).\n"
#endif
"\n",
"Exit status:\n"
"  0  clean: the end of stdin and the close handshake done, or -x N reached;\n"
"     server mode: also stopped by SIGINT/SIGTERM\n"
"  1  usage error: a bad option, argument or URL\n"
"  2  could not connect, gave up (--max-attempts), or a permanent error that\n"
"     retrying cannot fix: an HTTP refusal such as 401, a close code that is\n"
"     not worth retrying, a TLS certificate refused, a TLS file that cannot be\n"
"     loaded, an address the server cannot listen on; wss:// or a TLS option\n"
"     in a wsrcat built without TLS\n"
"  3  the connection ended from the other side: with --no-reconnect, the server\n"
"     closed it or the link dropped; or the link dropped during our close\n"
"  4  client interrupted by SIGINT/SIGTERM (it closes with 1001 first; a second\n"
"     signal exits at once)\n"
#ifdef _WIN32
"On Windows, Ctrl-C, Ctrl-Break and closing the console window stand for\n"
"SIGINT/SIGTERM; Ctrl-Z then Enter at the start of a line ends the input.\n"
#endif
,
NULL };

enum {
    EXIT_CLEAN = 0,
    EXIT_USAGE = 1,
    EXIT_FAILED = 2,         /* never connected, gave up, or a permanent error */
    EXIT_PEER_ENDED = 3,     /* the other side ended it */
    EXIT_INTERRUPTED = 4
};

enum { SERVER_TICK_MS = 20, MAX_PEERS = 1024, READ_CHUNK = 65536 };

/* What a build without TLS says when asked for it. */
#define NO_TLS_HERE "this wsrcat is built without it: compile tools/wsrcat.c with -DWSR_USE_MBEDTLS " \
                    "and link -lmbedtls -lmbedx509 -lmbedcrypto (`make` does)"

/* ---- options ------------------------------------------------------------------ */

static struct {
    const char *url;              /* client mode */
    const char *listen;           /* server mode: "[HOST:]PORT" */
    char *headers;                /* "Name: value\r\n" lines, built from -H */
    const char *subprotocols;
    int binary, json, verbose, broadcast;
    int reconnect;                /* 1 unless -n */
    int ping_interval_ms, pong_timeout_ms;
    int backoff_initial_ms, backoff_max_ms, max_attempts;
    size_t queue_max_bytes;
    long exit_after;              /* 0: never */
    int keep_open;                /* -1: only with -x; 0: close after EOF; 1: keep running */
    /* TLS: client side --ca, --ca-dir, --server-name, -k; both sides --cert, --key */
    const char *ca_file, *ca_dir, *cert_file, *key_file, *server_name;
    int insecure;
    const char *tls_option;       /* the first TLS option given, for the errors */
} opt;

static uint64_t start_ms;

/* ---- output: log lines, JSON, hex ------------------------------------------------ */

/* -v: one timestamped line on stderr. */
static void vlog(const char *fmt, ...) {
    va_list ap;
    uint64_t t = wsr_now_ms() - start_ms;
    if (!opt.verbose) return;
    fprintf(stderr, "[%4llu.%03us] ", (unsigned long long)(t / 1000), (unsigned)(t % 1000));
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* -vv: the library's own log lines (it never prints by itself). */
static void library_log(int level, const char *msg, void *user) {
    static const char *const names[] = { "error", "warn", "info", "debug" };
    (void)user;
    if (opt.verbose >= 2) vlog("library %s: %s", names[level & 3], msg);
}

/* Length of the valid UTF-8 sequence at p (1-4), or 0 if the bytes there are
   not one. The library's incremental checker does the work: the sequence
   ends where its state comes back to 0. */
static size_t utf8_len(const unsigned char *p, size_t n) {
    uint32_t state = 0;
    size_t k;
    for (k = 0; k < n && k < 4; k++) {
        if (!wsr_utf8_feed(&state, p + k, 1)) return 0;
        if (state == 0) return k + 1;
    }
    return 0;
}

/* Writes s as a JSON string, quotes included. UTF-8 passes through; control
   characters are escaped; a byte that is not UTF-8 (error texts may be cut
   in the middle of a character) becomes U+FFFD, so the line is always
   valid JSON. */
static void json_string(const void *data, size_t len) {
    const unsigned char *p = (const unsigned char *)data;
    size_t i = 0;
    putchar('"');
    while (i < len) {
        unsigned char ch = p[i];
        size_t n;
        if (ch == '"' || ch == '\\') { putchar('\\'); putchar(ch); i++; }
        else if (ch == '\n') { fputs("\\n", stdout); i++; }
        else if (ch == '\r') { fputs("\\r", stdout); i++; }
        else if (ch == '\t') { fputs("\\t", stdout); i++; }
        else if (ch < 0x20 || ch == 0x7f) { printf("\\u%04x", ch); i++; }
        else if (ch < 0x80) { putchar(ch); i++; }
        else if ((n = utf8_len(p + i, len - i)) > 0) { fwrite(p + i, 1, n, stdout); i += n; }
        else { fputs("\\ufffd", stdout); i++; }
    }
    putchar('"');
}

static void json_cstring(const char *s) { json_string(s, strlen(s)); }

/* One received message: raw text, hex for binary, or a JSON event. id is the
   server's client number, 0 in client mode. */
static void print_message(unsigned long id, wsr_msg_type type, const void *data, size_t len) {
    const unsigned char *p = (const unsigned char *)data;
    size_t i;
    if (opt.json) {
        printf("{\"event\":\"message\",");
        if (id) printf("\"id\":%lu,", id);
        if (type == WSR_MSG_TEXT) {
            printf("\"type\":\"text\",\"data\":");
            json_string(data, len);
        } else {
            char *b64 = (char *)malloc(4 * ((len + 2) / 3) + 1);
            if (!b64) { fprintf(stderr, "wsrcat: out of memory\n"); exit(EXIT_FAILED); }
            wsr_base64_encode(p, len, b64);
            printf("\"type\":\"binary\",\"data\":\"%s\"", b64);
            free(b64);
        }
        printf("}\n");
    } else if (type == WSR_MSG_TEXT) {
        fwrite(data, 1, len, stdout);
        putchar('\n');
    } else {
        for (i = 0; i < len; i++) printf("%02x", p[i]);
        putchar('\n');
    }
    fflush(stdout);     /* a reader on a pipe sees each message as it comes */
}

/* The "close" event, for a client connection attempt or a server's client. */
static void print_close_json(unsigned long id, const wsr_error *why) {
    printf("{\"event\":\"close\",");
    if (id) printf("\"id\":%lu,", id);
    printf("\"code\":%d,\"reason\":", why->close_code);
    json_cstring(why->close_reason);
    printf(",\"error\":");
    json_cstring(why->message);
    printf(",\"http_status\":%d}\n", why->http_status);
    fflush(stdout);
}

static void print_end_json(int code, const char *reason) {
    printf("{\"event\":\"end\",\"exit_code\":%d,\"reason\":", code);
    json_cstring(reason);
    printf("}\n");
    fflush(stdout);
}

/* ---- signals and stdin, as things poll() can watch ------------------------------------ */

/* SIGINT and SIGTERM (Windows: Ctrl-C, Ctrl-Break, the console closing) make
   tool_signal_fd readable and count in tool_signals; tool_os.h sets this up
   (a self-pipe on POSIX, a socket pair on Windows). stdin_fd is where stdin
   is polled and read: fd 0 on POSIX, a socket fed by a reader thread on
   Windows. */
static tool_sock stdin_fd;

static void setup_os(void) {
    if (tool_init("wsrcat") != 0 || tool_signals_start("wsrcat") != 0) exit(EXIT_FAILED);
    if ((stdin_fd = tool_stdin_start("wsrcat")) == TOOL_NO_SOCK) exit(EXIT_FAILED);
}

/* ---- stdin, one line at a time ------------------------------------------------------- */

/* Bytes read from stdin and not yet sent: data[pos, len). */
static struct { char *data; size_t pos, len, cap; int eof; unsigned long lineno; } in;

/* Reads once from stdin. Returns 0 at its end (or on an error, which ends
   the input just the same). */
static int read_stdin(void) {
    long n;
    if (in.pos > 0 && in.pos == in.len) in.pos = in.len = 0;
    if (in.cap - in.len < READ_CHUNK) {
        size_t cap;
        char *d;
        if (in.pos > 0) {                         /* make room at the front first */
            memmove(in.data, in.data + in.pos, in.len - in.pos);
            in.len -= in.pos;
            in.pos = 0;
        }
        cap = in.cap - in.len < READ_CHUNK ? in.len + 2 * READ_CHUNK : in.cap;
        if (cap != in.cap) {
            if (!(d = (char *)realloc(in.data, cap))) { fprintf(stderr, "wsrcat: out of memory\n"); exit(EXIT_FAILED); }
            in.data = d;
            in.cap = cap;
        }
    }
    n = tool_stdin_read(stdin_fd, in.data + in.len, in.cap - in.len);   /* read(0, ...), EINTR retried */
    if (n <= 0) {
        if (n < 0 && errno != EAGAIN) fprintf(stderr, "wsrcat: reading stdin: %s\n", strerror(errno));
        if (n < 0 && errno == EAGAIN) return 1;
        in.eof = 1;
        return 0;
    }
    in.len += (size_t)n;
    return 1;
}

/* The next whole line (or, at the end of input, the last one without a
   newline): *line and *n, the newline not included. 0 if there is none. */
static int next_line(const char **line, size_t *n, size_t *consumed) {
    const char *start = in.data + in.pos;
    const char *nl = (const char *)memchr(start, '\n', in.len - in.pos);
    if (nl) { *line = start; *n = (size_t)(nl - start); *consumed = *n + 1; return 1; }
    if (in.eof && in.len > in.pos) { *line = start; *n = in.len - in.pos; *consumed = *n; return 1; }
    return 0;
}

/* Is this line fit to go as a text message? The library sends what it is
   given; a peer that receives invalid UTF-8 in a text message must fail the
   connection (1007), so it is better refused here. */
static int line_sendable(const char *line, size_t n, unsigned long lineno) {
    uint32_t state = 0;
    if (opt.binary) return 1;
    if (wsr_utf8_feed(&state, (const unsigned char *)line, n) && state == 0) return 1;
    fprintf(stderr, "wsrcat: stdin line %lu is not valid UTF-8: not sent (-b sends lines as binary)\n", lineno);
    return 0;
}

/* ---- client mode ------------------------------------------------------------------ */

typedef struct client_app {
    wsr_client *c;
    long received;
    int was_open;               /* a connection reached OPEN (what -n's exit status needs) */
    int closing_at_eof;         /* we called wsr_client_close after the end of input */
    int exit_after_reached;
    int interrupted;
    int blocked;                /* the queue was full: stdin waits */
    int stdin_done;             /* no more lines will be sent (EOF and sent, -x, closed) */
} client_app;

static void c_on_state(wsr_client *c, wsr_state from, wsr_state to, void *user) {
    (void)c; (void)user;
    vlog("state %s -> %s", wsr_state_name(from), wsr_state_name(to));
}

static void c_on_open(wsr_client *c, const char *subprotocol, void *user) {
    client_app *a = (client_app *)user;
    a->was_open = 1;
    vlog("open%s%s%s; %lu queued message(s) go out first", *subprotocol ? ", subprotocol \"" : "", subprotocol,
         *subprotocol ? "\"" : "", (unsigned long)wsr_client_queued_messages(c));
    if (opt.json) {
        printf("{\"event\":\"open\",\"url\":");
        json_cstring(opt.url);
        printf(",\"subprotocol\":");
        json_cstring(subprotocol);
        printf("}\n");
        fflush(stdout);
    }
}

static void c_on_message(wsr_client *c, wsr_msg_type type, const void *data, size_t len, void *user) {
    client_app *a = (client_app *)user;
    /* After the Nth, the client is closing: what still arrives is not ours. */
    if (opt.exit_after > 0 && a->received >= opt.exit_after) return;
    a->received++;
    print_message(0, type, data, len);
    if (opt.exit_after > 0 && a->received == opt.exit_after) {
        vlog("received %ld message(s) (-x): closing with 1000", a->received);
        a->exit_after_reached = 1;
        a->stdin_done = 1;
        wsr_client_close(c, 1000, "done");     /* a callback may close its client */
    }
}

/* Every connection attempt that started ends here once, however it ended:
   refused, dropped, closed by either side. */
static void c_on_close(wsr_client *c, const wsr_error *why, void *user) {
    (void)c; (void)user;
    if (why->close_reason[0])
        vlog("connection ended: %s (close code %d, reason \"%s\")", why->message, why->close_code, why->close_reason);
    else
        vlog("connection ended: %s (close code %d)", why->message, why->close_code);
    if (opt.json) print_close_json(0, why);
}

/* Before each backoff wait. Returning 0 would stop the client for good. */
static int c_on_reconnecting(wsr_client *c, int attempt, int delay_ms, const wsr_error *cause, void *user) {
    (void)cause; (void)user;
    vlog("reconnect attempt %d in %d ms; %lu message(s) wait in the queue", attempt, delay_ms,
         (unsigned long)wsr_client_queued_messages(c));
    if (opt.json) {
        printf("{\"event\":\"reconnecting\",\"attempt\":%d,\"delay_ms\":%d}\n", attempt, delay_ms);
        fflush(stdout);
    }
    return 1;
}

/* Once, when the client stops for good: we closed it, it gave up, or the
   error was permanent. */
static void c_on_end(wsr_client *c, const wsr_error *why, void *user) {
    (void)c; (void)user;
    vlog("stopped for good: %s", why->message);
}

/* Hands every whole line in the buffer to the client. When the queue is
   full the line stays in the buffer (blocked): stdin is not read until a
   later try finds room. */
static void send_lines(client_app *a) {
    const char *line;
    size_t n, used;
    while (!a->stdin_done && next_line(&line, &n, &used)) {
        unsigned long lineno = in.lineno + 1;
        wsr_err r = WSR_OK;
        if (n > opt.queue_max_bytes) {
            fprintf(stderr, "wsrcat: stdin line %lu (%lu bytes) is larger than --queue-size: not sent\n", lineno,
                    (unsigned long)n);
        } else if (line_sendable(line, n, lineno)) {
            r = opt.binary ? wsr_send_binary(a->c, line, n) : wsr_send_text(a->c, line, n);
        }
        if (r == WSR_ERR_QUEUE_FULL) {
            if (!a->blocked) vlog("queue full (%lu bytes): stdin waits", (unsigned long)wsr_client_queued_bytes(a->c));
            a->blocked = 1;
            return;
        }
        if (a->blocked) vlog("room in the queue: reading stdin again");
        a->blocked = 0;
        if (r == WSR_ERR_STATE) { a->stdin_done = 1; return; }   /* closing or closed for good */
        if (r != WSR_OK) fprintf(stderr, "wsrcat: stdin line %lu not sent: %s\n", lineno, wsr_strerror(r));
        in.lineno = lineno;
        in.pos += used;
    }
}

/* After the end of input: once every line is out (the queue is empty) on an
   open link, close with 1000. While the link is down the client keeps
   reconnecting, so the lines still get there. */
static void close_after_eof(client_app *a) {
    if (!in.eof || a->closing_at_eof || a->exit_after_reached || in.pos < in.len) return;
    a->stdin_done = 1;
    if (wsr_client_state(a->c) != WSR_STATE_OPEN || wsr_client_queued_messages(a->c) > 0) return;
    vlog("end of input and every line written: closing with 1000");
    a->closing_at_eof = 1;
    wsr_client_close(a->c, 1000, "end of input");
}

/* How the run ended, as an exit status (see the usage text). */
static int client_exit_status(const client_app *a, const wsr_error *why) {
    if (a->interrupted) return EXIT_INTERRUPTED;
    if (a->exit_after_reached) return EXIT_CLEAN;
    if (a->closing_at_eof) return why->code == WSR_ERR_CLOSED ? EXIT_CLEAN : EXIT_PEER_ENDED;
    if (!opt.reconnect && a->was_open) return EXIT_PEER_ENDED;
    return EXIT_FAILED;
}

/* Before connecting: -k is said out loud, every run; TLS options on a ws://
   URL do nothing, which is worth a note. */
static void tls_warnings(void) {
    wsr_url u;
    wsr_error e;
    if (!opt.tls_option || wsr_url_parse(opt.url, &u, &e) != WSR_OK) return;   /* a bad URL: wsr_client_new says */
    if (!u.secure) {
        fprintf(stderr, "wsrcat: note: %s applies to wss:// only; %s is plain ws://, without TLS\n", opt.tls_option,
                opt.url);
    } else if (opt.insecure) {
        fprintf(stderr,
                "wsrcat: WARNING: -k/--insecure: TLS certificate verification is OFF.\n"
                "wsrcat: WARNING: any certificate is accepted, for any host: anyone on the network path can\n"
                "wsrcat: WARNING: read and change this traffic. For tests only (--ca FILE trusts a test CA safely).\n");
    }
}

static int main_client(void) {
    wsr_client_config cfg;
    wsr_error err, why;
    client_app a;
    int keep_open = opt.keep_open < 0 ? opt.exit_after > 0 : opt.keep_open;
    int status;

    memset(&a, 0, sizeof a);
    tls_warnings();
    wsr_client_config_init(&cfg);                 /* the library's defaults; then ours */
    cfg.url = opt.url;
    cfg.headers = opt.headers;
    cfg.subprotocols = opt.subprotocols;
    cfg.reconnect = opt.reconnect;
    cfg.ping_interval_ms = opt.ping_interval_ms;
    cfg.pong_timeout_ms = opt.pong_timeout_ms;
    cfg.backoff.initial_ms = opt.backoff_initial_ms;
    cfg.backoff.max_ms = opt.backoff_max_ms;
    cfg.backoff.max_attempts = opt.max_attempts;
    cfg.queue_max_bytes = opt.queue_max_bytes;
    /* wss://: verified against the system's CA bundle unless --ca/--ca-dir
       say otherwise; the library reads the files here, in wsr_client_new. */
    cfg.tls.ca_file = opt.ca_file;
    cfg.tls.ca_dir = opt.ca_dir;
    cfg.tls.cert_file = opt.cert_file;
    cfg.tls.key_file = opt.key_file;
    cfg.tls.server_name = opt.server_name;
    cfg.tls.insecure_skip_verify = opt.insecure;
    cfg.on_state = c_on_state;
    cfg.on_open = c_on_open;
    cfg.on_message = c_on_message;
    cfg.on_close = c_on_close;
    cfg.on_reconnecting = c_on_reconnecting;
    cfg.on_end = c_on_end;
    cfg.log_fn = library_log;
    cfg.user = &a;
    if (!(a.c = wsr_client_new(&cfg, &err))) {
        /* A bad URL or header is a usage error; wss:// without TLS, or a TLS
           file that cannot be loaded, is a permanent one. */
        status = err.code == WSR_ERR_INVALID ? EXIT_USAGE : EXIT_FAILED;
        if (err.code == WSR_ERR_TLS_UNAVAILABLE)
            fprintf(stderr, "wsrcat: %s: wss:// needs TLS, and %s\n", opt.url, NO_TLS_HERE);
        else if (err.code == WSR_ERR_TLS)
            fprintf(stderr, "wsrcat: TLS setup: %s\n", err.message);   /* a --ca/--cert/--key file, say */
        else
            fprintf(stderr, "wsrcat: %s\n", err.message);
        if (opt.json) print_end_json(status, err.message);
        return status;
    }
    vlog("connecting to %s (reconnect %s, backoff %d..%d ms, ping %d ms, pong timeout %d ms)", opt.url,
         opt.reconnect ? "on" : "off", opt.backoff_initial_ms, opt.backoff_max_ms, opt.ping_interval_ms,
         opt.pong_timeout_ms);

    /* The loop: stdin, the signal pipe and the client's socket in one poll()
       (WSAPoll on Windows, where stdin and the signal pipe are sockets).
       The client says which socket and events it needs, and how long we may
       sleep before its next timer (backoff, ping, timeouts); then
       wsr_client_step() does whatever is due: connect, read, write, timers,
       callbacks. It never blocks (but for a DNS lookup while connecting). */
    while (wsr_client_state(a.c) != WSR_STATE_CLOSED) {
        struct pollfd fds[3];
        int k, n = 0, stdin_slot = -1, events = wsr_client_events(a.c);
        uintptr_t sock = wsr_client_socket(a.c);
        fds[n].fd = tool_signal_fd;
        fds[n++].events = POLLIN;
        if (sock != WSR_INVALID_SOCKET) {
            fds[n].fd = (tool_sock)sock;
            fds[n++].events = (short)(((events & WSR_POLL_IN) ? POLLIN : 0) | ((events & WSR_POLL_OUT) ? POLLOUT : 0));
        }
        if (!in.eof && !a.blocked && !a.stdin_done) {
            stdin_slot = n;
            fds[n].fd = stdin_fd;
            fds[n++].events = POLLIN;
        }
        for (k = 0; k < n; k++) fds[k].revents = 0;
        if (tool_poll(fds, (size_t)n, wsr_client_timeout_ms(a.c, wsr_now_ms())) < 0 &&
            tool_sock_errno() != TOOL_E_INTR) {
            fprintf(stderr, "wsrcat: poll: %s\n", tool_sock_strerror(tool_sock_errno()));
            break;
        }
        if (fds[0].revents) tool_signals_drain();  /* it only woke us: tool_signals counts */
        if (tool_signals >= 2) { a.interrupted = 1; vlog("second signal: exit now"); break; }
        if (tool_signals == 1 && !a.interrupted) {
            a.interrupted = 1;
            a.stdin_done = 1;
            vlog("signal: closing with 1001");
            wsr_client_close(a.c, 1001, "going away");   /* stops at once if not connected */
        }
        if (stdin_slot >= 0 && (fds[stdin_slot].revents & (POLLIN | POLLHUP | POLLERR)) && !read_stdin()) {
            send_lines(&a);                       /* the last line, if it had no newline */
            vlog("end of input: %lu message(s) queued; %s", (unsigned long)wsr_client_queued_messages(a.c),
                 keep_open ? "keep running (--keep-open or -x)" : "closing once they are written");
        }
        if (in.eof && keep_open && !a.stdin_done && !a.blocked) a.stdin_done = 1;
        send_lines(&a);
        wsr_client_step(a.c, wsr_now_ms());
        send_lines(&a);                           /* room may have been made */
        if (!keep_open) close_after_eof(&a);
    }

    wsr_client_get_error(a.c, &why);
    status = client_exit_status(&a, &why);
    if (status != EXIT_CLEAN && status != EXIT_INTERRUPTED) fprintf(stderr, "wsrcat: %s\n", why.message);
    if (why.code == WSR_ERR_TLS_CERT && strstr(why.message, "unknown CA") && !opt.ca_file && !opt.ca_dir)
        fprintf(stderr, "wsrcat: (checked against the system's CA bundle; --ca FILE trusts a CA of your own)\n");
    vlog("exit %d", status);
    if (opt.json) print_end_json(status, why.message);
    wsr_client_free(a.c);
    return status;
}

/* ---- server mode ------------------------------------------------------------------- */

/* One slot per open client: its number, for the log and -j. */
typedef struct peer { wsr_conn *conn; unsigned long id; } peer;
static peer peers[MAX_PEERS];
static unsigned long next_peer_id = 1;
static long server_received;
static int server_stop;

static void s_on_open(wsr_conn *conn, void *user) {
    size_t i;
    (void)user;
    for (i = 0; i < MAX_PEERS && peers[i].conn; i++) {}
    if (i == MAX_PEERS) return;                   /* cannot happen: max_connections is MAX_PEERS */
    peers[i].conn = conn;
    peers[i].id = next_peer_id++;
    wsr_conn_set_user(conn, &peers[i]);
    vlog("client %lu open: path %s%s%s", peers[i].id, wsr_conn_path(conn),
         *wsr_conn_subprotocol(conn) ? ", subprotocol " : "", wsr_conn_subprotocol(conn));
    if (opt.json) {
        printf("{\"event\":\"open\",\"id\":%lu,\"path\":", peers[i].id);
        json_cstring(wsr_conn_path(conn));
        printf(",\"subprotocol\":");
        json_cstring(wsr_conn_subprotocol(conn));
        printf("}\n");
        fflush(stdout);
    }
}

static void s_on_message(wsr_conn *conn, wsr_msg_type type, const void *data, size_t len, void *user) {
    peer *p = (peer *)wsr_conn_user(conn);
    wsr_err r;
    (void)user;
    if (!p || (opt.exit_after > 0 && server_received >= opt.exit_after)) return;
    server_received++;
    print_message(p->id, type, data, len);
    if (opt.broadcast) r = wsr_server_broadcast(wsr_conn_server(conn), type, data, len);
    else r = wsr_conn_send(conn, type, data, len);
    if (r != WSR_OK) vlog("client %lu: could not send: %s", p->id, wsr_strerror(r));
    if (opt.exit_after > 0 && server_received == opt.exit_after) {
        vlog("received %ld message(s) (-x): stopping", server_received);
        server_stop = 1;
    }
}

static void s_on_close(wsr_conn *conn, const wsr_error *why, void *user) {
    peer *p = (peer *)wsr_conn_user(conn);
    (void)user;
    if (!p) return;
    vlog("client %lu closed: %s (close code %d)", p->id, why->message, why->close_code);
    if (opt.json) print_close_json(p->id, why);
    p->conn = NULL;
}

/* A connection that failed before it opened (a refused TLS handshake, a bad
   upgrade request): -v says why. */
static void s_on_error(wsr_server *s, wsr_conn *conn, const wsr_error *why, void *user) {
    (void)s; (void)conn; (void)user;
    vlog("a connection failed before opening: %s", why->message);
}

/* Splits "[HOST:]PORT" ("[::1]:80" for IPv6). Returns 0 on a bad one. */
static int parse_listen(const char *arg, char *host, size_t cap, int *port) {
    const char *colon = strrchr(arg, ':'), *p, *h = arg;
    char *end;
    long v;
    size_t hl;
    if (colon && strchr(arg, ':') != colon && arg[0] != '[') colon = NULL;   /* bare IPv6: no port */
    p = colon ? colon + 1 : arg;
    v = strtol(p, &end, 10);
    if (!*p || *end || v < 0 || v > 65535) return 0;
    *port = (int)v;
    if (!colon) { snprintf(host, cap, "127.0.0.1"); return 1; }
    hl = (size_t)(colon - arg);
    if (hl >= 2 && arg[0] == '[' && colon[-1] == ']') { h++; hl -= 2; }
    if (hl == 0 || hl >= cap) return 0;
    memcpy(host, h, hl);
    host[hl] = '\0';
    return 1;
}

static int main_server(void) {
    wsr_server_config cfg;
    wsr_server *s;
    wsr_error err;
    char host[256];
    int port, stdin_open = 1;

    if (!parse_listen(opt.listen, host, sizeof host, &port)) {
        fprintf(stderr, "wsrcat: -l wants [HOST:]PORT with PORT 0-65535, got '%s'\n", opt.listen);
        return EXIT_USAGE;
    }
    wsr_server_config_init(&cfg);
    cfg.host = host;
    cfg.port = port;
    cfg.subprotocols = opt.subprotocols;
    cfg.max_connections = MAX_PEERS;              /* beyond: the library answers 503 */
    cfg.log_fn = library_log;
    cfg.on_open = s_on_open;
    cfg.on_message = s_on_message;
    cfg.on_close = s_on_close;
    cfg.on_error = s_on_error;
    cfg.tls.cert_file = opt.cert_file;            /* set: serve wss:// */
    cfg.tls.key_file = opt.key_file;
    if (!(s = wsr_server_new(&cfg, &err))) {
        if (err.code == WSR_ERR_TLS)
            fprintf(stderr, "wsrcat: cannot serve wss:// with --cert/--key: %s\n", err.message);
        else
            fprintf(stderr, "wsrcat: cannot listen on %s: %s\n", opt.listen, err.message);
        if (opt.json) print_end_json(EXIT_FAILED, err.message);
        return EXIT_FAILED;
    }
    if (opt.json) {
        printf("{\"event\":\"listening\",\"host\":");
        json_cstring(host);
        printf(",\"port\":%d}\n", wsr_server_port(s));
    } else {
        printf(strchr(host, ':') ? "listening on [%s]:%d\n" : "listening on %s:%d\n", host, wsr_server_port(s));
    }
    fflush(stdout);
    vlog("listening on %s port %d (%s, %s)", host, wsr_server_port(s), opt.cert_file ? "wss://" : "ws://",
         opt.broadcast ? "broadcast" : "echo");

    /* wsr_server_poll() waits by itself and the server does not tell which
       sockets it waits on, so stdin is looked at without waiting, then the
       server waits up to SERVER_TICK_MS: a stdin line goes out within that. */
    while (!server_stop && !tool_signals) {
        struct pollfd fd;
        fd.fd = stdin_fd;
        fd.events = POLLIN;
        fd.revents = 0;
        if (stdin_open && tool_poll(&fd, 1, 0) > 0) {
            const char *line;
            size_t n, used;
            if (!read_stdin()) { stdin_open = 0; vlog("end of input: still serving"); }
            while (next_line(&line, &n, &used)) {
                in.lineno++;
                in.pos += used;
                if (!line_sendable(line, n, in.lineno)) continue;
                wsr_server_broadcast(s, opt.binary ? WSR_MSG_BINARY : WSR_MSG_TEXT, line, n);
            }
        }
        wsr_server_poll(s, SERVER_TICK_MS);
    }
    /* The library's graceful stop: no newcomers, 1001 "going away" to every
       client, up to 2 s for their close handshakes, then the rest dropped. */
    vlog("%s: closing every client with 1001", tool_signals ? "signal" : "-x reached");
    if (wsr_server_shutdown(s, 2000) != WSR_OK) vlog("some clients did not finish the close handshake");
    wsr_server_free(s);
    vlog("exit 0");
    if (opt.json) print_end_json(EXIT_CLEAN, tool_signals ? "stopped by a signal" : "exit-after reached");
    return EXIT_CLEAN;
}

/* ---- command line ---------------------------------------------------------------- */

static void usage_error(const char *fmt, ...) {
    va_list ap;
    fputs("wsrcat: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n(wsrcat --help shows every option)\n", stderr);
    exit(EXIT_USAGE);
}

/* A whole number in [min, max], or a usage error naming the option. */
static long number(const char *name, const char *s, long min, long max) {
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < min || v > max)
        usage_error("%s wants a number from %ld to %ld, got '%s'", name, min, max, s);
    return v;
}

/* Does argv[*i] name this option? Takes its value from "--name=V", or from
   the next argument. short_name may be NULL. */
static int option(char **argv, int argc, int *i, const char *short_name, const char *long_name, const char **value) {
    const char *a = argv[*i];
    size_t ln = strlen(long_name);
    if (value && strncmp(a, long_name, ln) == 0 && a[ln] == '=') { *value = a + ln + 1; return 1; }
    if (strcmp(a, long_name) != 0 && !(short_name && strcmp(a, short_name) == 0)) return 0;
    if (value) {
        if (*i + 1 >= argc) usage_error("%s wants a value", a);
        *value = argv[++*i];
    }
    return 1;
}

static void add_header(const char *h) {
    const char *colon = strchr(h, ':');
    size_t old = opt.headers ? strlen(opt.headers) : 0, n = strlen(h);
    char *more;
    if (!colon || colon == h || strpbrk(h, "\r\n") || memchr(h, ' ', (size_t)(colon - h)))
        usage_error("-H wants \"Name: value\", got '%s'", h);
    if (!(more = (char *)realloc(opt.headers, old + n + 3))) { fprintf(stderr, "wsrcat: out of memory\n"); exit(EXIT_FAILED); }
    memcpy(more + old, h, n);
    memcpy(more + old + n, "\r\n", 3);
    opt.headers = more;
}

/* Notes the first TLS option given (a build without TLS refuses it by name). */
static const char *tls_option(const char *name) {
    if (!opt.tls_option) opt.tls_option = name;
    return name;
}

static void parse_args(int argc, char **argv) {
    const char *client_only = NULL, *v;
    int i, options_done = 0;
    wsr_client_config defaults;
    wsr_client_config_init(&defaults);            /* the library's defaults are ours */
    opt.reconnect = 1;
    opt.ping_interval_ms = defaults.ping_interval_ms;
    opt.pong_timeout_ms = defaults.pong_timeout_ms;
    opt.backoff_initial_ms = defaults.backoff.initial_ms;
    opt.backoff_max_ms = defaults.backoff.max_ms;
    opt.queue_max_bytes = defaults.queue_max_bytes;
    opt.keep_open = -1;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options_done || a[0] != '-' || a[1] == '\0') {
            if (opt.url) usage_error("one URL only (got '%s' and '%s')", opt.url, a);
            opt.url = a;
        } else if (strcmp(a, "--") == 0) {
            options_done = 1;
        } else if (option(argv, argc, &i, "-h", "--help", NULL)) {
            const char *const *part;
            for (part = usage; *part; part++) fputs(*part, stdout);
            exit(EXIT_CLEAN);
        } else if (option(argv, argc, &i, "-l", "--listen", &v)) {
            opt.listen = v;
        } else if (option(argv, argc, &i, NULL, "--broadcast", NULL)) {
            opt.broadcast = 1;
        } else if (option(argv, argc, &i, "-s", "--subprotocol", &v)) {
            opt.subprotocols = v;
        } else if (option(argv, argc, &i, "-b", "--binary", NULL)) {
            opt.binary = 1;
        } else if (option(argv, argc, &i, "-j", "--json", NULL)) {
            opt.json = 1;
        } else if (option(argv, argc, &i, "-v", "--verbose", NULL)) {
            opt.verbose++;
        } else if (strcmp(a, "-vv") == 0) {
            opt.verbose += 2;
        } else if (option(argv, argc, &i, "-x", "--exit-after", &v)) {
            opt.exit_after = number(a, v, 1, LONG_MAX);
        } else if (option(argv, argc, &i, "-H", "--header", &v)) {
            add_header(v);
            client_only = a;
        } else if (option(argv, argc, &i, NULL, "--ping-interval", &v)) {
            opt.ping_interval_ms = (int)number(a, v, 0, INT_MAX);
            client_only = a;
        } else if (option(argv, argc, &i, NULL, "--pong-timeout", &v)) {
            opt.pong_timeout_ms = (int)number(a, v, 0, INT_MAX);
            client_only = a;
        } else if (option(argv, argc, &i, NULL, "--backoff", &v)) {
            char first[32];
            const char *colon = strchr(v, ':');
            if (!colon || (size_t)(colon - v) >= sizeof first) usage_error("--backoff wants INITIAL_MS:MAX_MS, got '%s'", v);
            memcpy(first, v, (size_t)(colon - v));
            first[colon - v] = '\0';
            opt.backoff_initial_ms = (int)number("--backoff INITIAL_MS", first, 0, INT_MAX);
            opt.backoff_max_ms = (int)number("--backoff MAX_MS", colon + 1, opt.backoff_initial_ms, INT_MAX);
            client_only = a;
        } else if (option(argv, argc, &i, NULL, "--max-attempts", &v)) {
            opt.max_attempts = (int)number(a, v, 0, INT_MAX);
            client_only = a;
        } else if (option(argv, argc, &i, NULL, "--queue-size", &v)) {
            opt.queue_max_bytes = (size_t)number(a, v, 1, LONG_MAX);
            client_only = a;
        } else if (option(argv, argc, &i, "-n", "--no-reconnect", NULL)) {
            opt.reconnect = 0;
            client_only = a;
        } else if (option(argv, argc, &i, NULL, "--keep-open", NULL)) {
            opt.keep_open = 1;
            client_only = a;
        } else if (option(argv, argc, &i, NULL, "--close-after-eof", NULL)) {
            opt.keep_open = 0;
            client_only = a;
        } else if (option(argv, argc, &i, NULL, "--ca", &v)) {
            opt.ca_file = v;
            client_only = tls_option("--ca");
        } else if (option(argv, argc, &i, NULL, "--ca-dir", &v)) {
            opt.ca_dir = v;
            client_only = tls_option("--ca-dir");
        } else if (option(argv, argc, &i, NULL, "--cert", &v)) {
            opt.cert_file = v;                    /* both modes */
            tls_option("--cert");
        } else if (option(argv, argc, &i, NULL, "--key", &v)) {
            opt.key_file = v;
            tls_option("--key");
        } else if (option(argv, argc, &i, NULL, "--server-name", &v)) {
            opt.server_name = v;
            client_only = tls_option("--server-name");
        } else if (option(argv, argc, &i, "-k", "--insecure", NULL)) {
            opt.insecure = 1;
            client_only = tls_option(a);
        } else {
            usage_error("unknown option '%s'", a);
        }
    }
    if (opt.listen) {
        if (opt.url) usage_error("-l serves; it takes no URL (got '%s')", opt.url);
        if (client_only) usage_error("%s is a client option; it does not apply with -l", client_only);
    } else {
        if (!opt.url) usage_error("no URL: wsrcat ws://HOST:PORT/PATH, or wsrcat -l PORT to serve");
        if (opt.broadcast) usage_error("--broadcast is a server option: it needs -l");
    }
    if (!opt.cert_file != !opt.key_file)
        usage_error("--cert and --key go together: a certificate and its private key");
#ifndef WSR_USE_MBEDTLS
    if (opt.tls_option) {
        fprintf(stderr, "wsrcat: %s needs TLS, and %s\n", opt.tls_option, NO_TLS_HERE);
        exit(EXIT_FAILED);
    }
#endif
}

int main(int argc, char **argv) {
    int status;
    start_ms = wsr_now_ms();
    parse_args(argc, argv);
    setup_os();
    status = opt.listen ? main_server() : main_client();
    free(opt.headers);
    free(in.data);
    return status;
}
