/* A chat server: every message goes to every client.

   usage: chat_server [port] [seconds]
   Listens on 127.0.0.1 (port 0 or none picks a free one), prints
   "listening on HOST:PORT", and relays each text message as "guestN: text"
   to every open connection, the sender included, with "* guestN joined" and
   "* guestN left" notices. On SIGINT/SIGTERM, or after [seconds] if given,
   it shuts down gracefully: every client gets close 1001 "going away", the
   server waits for their answers, and the program exits 0.
   Try it with two terminals running build/examples/own_loop ws://127.0.0.1:PORT/.

   The idea: one thread, one poll loop, many connections. Callbacks tell you
   about each connection; wsr_conn_set_user hangs your own data on it. */
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static volatile sig_atomic_t stop;      /* set by the signal handler, read by the loop */
static int next_guest = 1;

static void on_signal(int sig) { (void)sig; stop = 1; }

/* Sends a line to every open connection (copied once for each). */
static void say(wsr_server *s, const char *text, int len) {
    if (len > 0) wsr_server_broadcast(s, WSR_MSG_TEXT, text, (size_t)len);
}

static void on_open(wsr_conn *conn, void *user) {
    char line[64];
    int n, *guest = (int *)malloc(sizeof *guest);   /* this connection's own data */
    (void)user;
    if (!guest) { wsr_conn_close(conn, 1011, "out of memory"); return; }
    *guest = next_guest++;
    wsr_conn_set_user(conn, guest);
    printf("guest%d joined (%s)\n", *guest, wsr_conn_path(conn));
    n = snprintf(line, sizeof line, "* guest%d joined", *guest);
    say(wsr_conn_server(conn), line, n);            /* the newcomer is open: it hears it too */
}

static void on_message(wsr_conn *conn, wsr_msg_type type, const void *data, size_t len, void *user) {
    char line[4200];    /* "guestN: " + up to max_message_size (4096) bytes */
    int n, *guest = (int *)wsr_conn_user(conn);
    (void)user;
    if (type != WSR_MSG_TEXT || !guest) return;   /* text only; no guest: it is being closed */
    n = snprintf(line, sizeof line, "guest%d: %.*s", *guest, (int)len, (const char *)data);
    say(wsr_conn_server(conn), line, n);
}

/* After this returns the wsr_conn is gone, so free what hangs on it now. It
   is no longer open, so the "left" notice goes to the others only. */
static void on_close(wsr_conn *conn, const wsr_error *why, void *user) {
    char line[64];
    int n, *guest = (int *)wsr_conn_user(conn);
    (void)user;
    if (!guest) return;                 /* on_open ran out of memory */
    printf("guest%d left: %s (close code %d)\n", *guest, why->message, why->close_code);
    n = snprintf(line, sizeof line, "* guest%d left", *guest);
    say(wsr_conn_server(conn), line, n);
    free(guest);
}

int main(int argc, char **argv) {
    wsr_server_config cfg;
    wsr_server *s;
    wsr_error err;
    int seconds = argc > 2 ? atoi(argv[2]) : 0;
    uint64_t end_at;
    wsr_server_config_init(&cfg);
    cfg.port = argc > 1 ? atoi(argv[1]) : 0;
    cfg.max_message_size = 4096;        /* a chat line; bigger ones close that client with 1009 */
    cfg.on_open = on_open;
    cfg.on_message = on_message;
    cfg.on_close = on_close;
    if (!(s = wsr_server_new(&cfg, &err))) { fprintf(stderr, "chat_server: %s\n", err.message); return 1; }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    printf("listening on %s:%d\n", cfg.host, wsr_server_port(s));
    fflush(stdout);                     /* whoever started us may be waiting for that line */
    setvbuf(stdout, NULL, _IOLBF, 0);
    end_at = seconds > 0 ? wsr_now_ms() + (uint64_t)seconds * 1000 : 0;
    while (!stop && (!end_at || wsr_now_ms() < end_at))
        wsr_server_poll(s, 200);        /* a signal cuts the wait short */
    printf("shutting down with %lu client(s)\n", (unsigned long)wsr_server_conn_count(s));
    if (wsr_server_shutdown(s, 2000) != WSR_OK) printf("some clients did not answer the close in time\n");
    wsr_server_free(s);
    return 0;
}
