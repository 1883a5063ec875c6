/* A long computation in the main thread while the connection stays up.

   usage: long_job ws://host:port/path [seconds] [--fast]
   "Computes" for [seconds] (default 120) with the client on its own thread,
   then sends its metrics as one JSON text, waits until they are written,
   closes and exits 0 (1 if the metrics could not be written). --fast makes
   each second 10 ms and pings every 100 ms, for tests.

   The problem this solves: a WebSocket link must show signs of life. Servers
   ping idle clients and drop those that do not answer (wsr_server: a ping
   after 30 s, 10 s to answer); proxies cut links idle for 60 s. A program
   that polls its client only before and after a long computation answers
   nothing while it computes, so the server gives up on it and closes the TCP
   connection without a close handshake. When the program finally polls to
   send its result, it finds the link dead: "connection closed by peer
   without a close frame" (1006), in other libraries "no close frame
   received", and the result arrives late or never.

   The fix: wsr_client_start_thread gives the client a thread of its own. It
   answers the server's pings, sends its own after ping_interval_ms of
   silence, and if the link drops anyway it reconnects, all while main()
   computes. main() only sends (safe from any thread), flushes and closes. */
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int written;     /* set by on_delivery, read by main() after wsr_client_free */

/* Callbacks run on the client's thread; stdio locks each printf for us. */
static void on_open(wsr_client *c, const char *subprotocol, void *user) {
    (void)c; (void)subprotocol; (void)user;
    printf("connected\n");
}

static void on_close(wsr_client *c, const wsr_error *why, void *user) {
    (void)c; (void)user;
    printf("connection ended: %s (close code %d)\n", why->message, why->close_code);
}

/* The fate of every message; ours carries tag 1. */
static void on_delivery(wsr_client *c, uint64_t tag, wsr_delivery fate, void *user) {
    (void)c; (void)user;
    printf("message %llu: %s\n", (unsigned long long)tag, wsr_delivery_name(fate));
    if (tag == 1 && fate == WSR_DELIVERY_WRITTEN) written = 1;
}

static void sleep_ms(long ms) {     /* stands in for real work */
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv) {
    wsr_client_config cfg;
    wsr_error err;
    wsr_client *c;
    int fast = argc > 3 && strcmp(argv[3], "--fast") == 0, seconds = argc > 2 ? atoi(argv[2]) : 120, i;
    double result = 0;
    char json[160];
    if (argc < 2 || seconds < 0) {
        fprintf(stderr, "usage: %s ws://host:port/path [seconds] [--fast]\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    wsr_client_config_init(&cfg);
    cfg.url = argv[1];
    cfg.ping_interval_ms = fast ? 100 : 15000;   /* well under a proxy's 60 s idle limit */
    cfg.on_open = on_open;
    cfg.on_close = on_close;
    cfg.on_delivery = on_delivery;
    if (!(c = wsr_client_new(&cfg, &err))) { fprintf(stderr, "long_job: %s\n", err.message); return 1; }
    if (wsr_client_start_thread(c) != WSR_OK) {      /* from here on the client runs by itself */
        fprintf(stderr, "long_job: cannot start the client's thread\n");
        wsr_client_free(c);
        return 1;
    }

    /* The computation: main() never calls the client in here. */
    printf("computing for %d s%s\n", seconds, fast ? " (fast: 10 ms each)" : "");
    for (i = 0; i < seconds; i++) {
        sleep_ms(fast ? 10 : 1000);
        result += 1.0 / (i + 1);
    }

    /* The getters and wsr_send* take the client's lock: safe from this thread.
       rtt_ms >= 0 means a keepalive ping was answered while we computed. */
    snprintf(json, sizeof json, "{\"job\":\"long_job\",\"seconds\":%d,\"result\":%.6f,\"rtt_ms\":%d}",
             seconds, result, wsr_client_rtt_ms(c));
    printf("sending %s\n", json);
    wsr_send_tracked(c, WSR_MSG_TEXT, json, strlen(json), 1);
    if (wsr_client_flush(c, 10000) != WSR_OK)       /* wait until written (or dropped) */
        printf("not written within 10 s\n");
    wsr_client_close(c, 1000, "job done");           /* the client's thread runs the handshake */
    if (wsr_client_wait_closed(c, 5000) != WSR_OK) printf("close handshake did not finish\n");
    wsr_client_free(c);     /* joins the thread: its writes to `written` are visible now */
    printf("%s\n", written ? "metrics delivered" : "metrics NOT delivered");
    return written ? 0 : 1;
}
