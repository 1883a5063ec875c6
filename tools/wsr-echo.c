/* wsr-echo: a WebSocket echo server on ws_reconnect.h.

   usage: wsr-echo [-p PORT] [-h HOST] [-q]
   Listens (port 0 picks a free one), prints "listening on HOST:PORT" on
   stdout, and sends every message back to the client that sent it. On
   SIGINT/SIGTERM it closes every connection with 1012 "service restart"
   (clients know to come back), waits up to 2 s for the close handshakes,
   and exits. -q: no log lines. */
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t stop;
static int quiet;
static wsr_conn *conns[1024];     /* open connections, for the goodbye */

static void on_signal(int sig) { (void)sig; stop = 1; }

static void on_open(wsr_conn *conn, void *user) {
    size_t i;
    (void)user;
    for (i = 0; i < sizeof conns / sizeof conns[0]; i++)
        if (!conns[i]) { conns[i] = conn; break; }
    if (!quiet) printf("open %s\n", wsr_conn_path(conn));
}

static void on_message(wsr_conn *conn, wsr_msg_type type, const void *data, size_t len, void *user) {
    wsr_err r = wsr_conn_send(conn, type, data, len);
    (void)user;
    if (r != WSR_OK) fprintf(stderr, "echo failed: %s\n", wsr_strerror(r));
}

static void on_close(wsr_conn *conn, const wsr_error *why, void *user) {
    size_t i;
    (void)user;
    for (i = 0; i < sizeof conns / sizeof conns[0]; i++)
        if (conns[i] == conn) conns[i] = NULL;
    if (!quiet) printf("closed: %s (code %d)\n", why->message, why->close_code);
}

int main(int argc, char **argv) {
    wsr_server_config cfg;
    wsr_server *s;
    wsr_error err;
    int i;
    wsr_server_config_init(&cfg);
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-p") == 0 && i + 1 < argc) cfg.port = atoi(argv[++i]);
        else if (strcmp(argv[i], "-h") == 0 && i + 1 < argc) cfg.host = argv[++i];
        else if (strcmp(argv[i], "-q") == 0) quiet = 1;
        else { fprintf(stderr, "usage: %s [-p PORT] [-h HOST] [-q]\n", argv[0]); return 2; }
    }
    cfg.on_open = on_open;
    cfg.on_message = on_message;
    cfg.on_close = on_close;
    s = wsr_server_new(&cfg, &err);
    if (!s) { fprintf(stderr, "wsr-echo: %s\n", err.message); return 1; }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    printf("listening on %s:%d\n", cfg.host, wsr_server_port(s));
    fflush(stdout);
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (!stop) wsr_server_poll(s, 200);
    /* Say goodbye properly: 1012 tells clients the server restarts. */
    {
        uint64_t until = wsr_now_ms() + 2000;
        size_t k;
        for (k = 0; k < sizeof conns / sizeof conns[0]; k++)
            if (conns[k]) wsr_conn_close(conns[k], 1012, "service restart");
        while (wsr_server_conn_count(s) > 0 && wsr_now_ms() < until) wsr_server_poll(s, 50);
    }
    wsr_server_free(s);
    return 0;
}
