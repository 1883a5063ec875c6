/* A client that rides out server restarts without losing a message.

   usage: demo_client ws://host:port/path [count] [interval_ms]
   Sends "msg 0", "msg 1", ... every interval_ms whatever the state of the
   link: while the server is away the messages wait in the client's queue and
   go out, in order, after the next upgrade. Prints a timeline of states,
   waits and reconnects, then "sent N, echoed N, lost L". Exit status 0 only
   if every message came back, in order. make demo runs it. */
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct demo {
    uint64_t t0;
    int sent, echoed, next_expected, out_of_order;
} demo;

static void stamp(const demo *d) { printf("[%6.2fs] ", (double)(wsr_now_ms() - d->t0) / 1000.0); }

static void on_state(wsr_client *c, wsr_state from, wsr_state to, void *user) {
    (void)c;
    stamp((demo *)user);
    printf("%s -> %s\n", wsr_state_name(from), wsr_state_name(to));
}

static void on_open(wsr_client *c, const char *subprotocol, void *user) {
    (void)subprotocol;
    stamp((demo *)user);
    printf("open; %lu queued message(s) go out first\n", (unsigned long)wsr_client_queued_messages(c));
}

static void on_message(wsr_client *c, wsr_msg_type type, const void *data, size_t len, void *user) {
    demo *d = (demo *)user;
    char text[32];
    int n = -1;
    (void)c; (void)type;
    /* data is not NUL-terminated (it may point into the receive buffer): copy first. */
    if (len < sizeof text) {
        memcpy(text, data, len);
        text[len] = '\0';
        sscanf(text, "msg %d", &n);
    }
    if (n != d->next_expected) d->out_of_order++;
    d->next_expected = n + 1;
    d->echoed++;
    if (d->echoed % 20 == 0) { stamp(d); printf("echoed %d so far\n", d->echoed); }
}

static void on_close(wsr_client *c, const wsr_error *why, void *user) {
    (void)c;
    stamp((demo *)user);
    printf("connection ended: %s (close code %d)\n", why->message, why->close_code);
}

static int on_reconnecting(wsr_client *c, int attempt, int delay_ms, const wsr_error *cause, void *user) {
    (void)cause;
    stamp((demo *)user);
    printf("reconnect attempt %d in %d ms; %lu message(s) wait in the queue\n", attempt, delay_ms,
           (unsigned long)wsr_client_queued_messages(c));
    return 1;   /* keep going */
}

static void on_end(wsr_client *c, const wsr_error *why, void *user) {
    (void)c;
    stamp((demo *)user);
    printf("stopped: %s\n", why->message);
}

int main(int argc, char **argv) {
    wsr_client_config cfg;
    wsr_error err;
    wsr_client *c;
    demo d;
    int count = argc > 2 ? atoi(argv[2]) : 100, interval = argc > 3 ? atoi(argv[3]) : 100;
    uint64_t next_send, give_up_at = 0;
    if (argc < 2) { fprintf(stderr, "usage: %s ws://host:port/path [count] [interval_ms]\n", argv[0]); return 2; }
    setvbuf(stdout, NULL, _IOLBF, 0);
    memset(&d, 0, sizeof d);
    d.t0 = wsr_now_ms();
    wsr_client_config_init(&cfg);
    cfg.url = argv[1];
    cfg.backoff.initial_ms = 250;       /* quick first retries, for a short demo */
    cfg.backoff.min_uptime_ms = 1000;   /* a link up for 1 s counts as a success */
    cfg.on_state = on_state;
    cfg.on_open = on_open;
    cfg.on_message = on_message;
    cfg.on_close = on_close;
    cfg.on_reconnecting = on_reconnecting;
    cfg.on_end = on_end;
    cfg.user = &d;
    if (!(c = wsr_client_new(&cfg, &err))) { fprintf(stderr, "demo_client: %s\n", err.message); return 1; }
    next_send = wsr_now_ms();
    while (wsr_client_state(c) != WSR_STATE_CLOSED) {
        uint64_t now = wsr_now_ms();
        if (d.sent < count && now >= next_send) {
            char msg[32];
            int n = snprintf(msg, sizeof msg, "msg %d", d.sent);
            /* Accepted whatever the link is doing: it waits in the queue if need be. */
            if (wsr_send_text(c, msg, (size_t)n) == WSR_OK) d.sent++;
            next_send += (uint64_t)interval;
        }
        if (d.sent == count && !give_up_at) give_up_at = now + 15000;
        if (d.sent == count && (d.echoed == count || now >= give_up_at) && wsr_client_state(c) == WSR_STATE_OPEN)
            wsr_client_close(c, 1000, "all echoed");
        if (give_up_at && now >= give_up_at + 5000) break;
        wsr_client_poll(c, d.sent < count ? (int)(next_send > now ? next_send - now : 0) : 100);
    }
    printf("sent %d, echoed %d, lost %d%s\n", d.sent, d.echoed, d.sent - d.echoed,
           d.out_of_order ? " (some out of order!)" : "");
    wsr_client_free(c);
    return d.sent == d.echoed && !d.out_of_order ? 0 : 1;
}
