/* A client that reconnects with backoff, and a log that shows how.

   usage: reconnecting ws://host:port/path [seconds]
   Sends "line 1", "line 2", ... once a second and prints, with a time stamp,
   every state change, every end of a connection (with its reason and close
   code), every backoff wait (attempt, delay, cause) and every echo. Stop the
   server (e.g. build/tools/wsr-echo) for a while and start it again on the
   same port: the client waits, retries with growing delays, and sends the
   lines that waited in its queue as soon as it is back. With [seconds] it
   closes by itself after that long and exits 0; without, stop it with Ctrl-C. */
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include <stdio.h>
#include <stdlib.h>

static uint64_t t0;     /* start time, for the time stamps */

static void stamp(void) { printf("[%6.2fs] ", (double)(wsr_now_ms() - t0) / 1000.0); }

static void on_state(wsr_client *c, wsr_state from, wsr_state to, void *user) {
    (void)c; (void)user;
    stamp(); printf("state %s -> %s\n", wsr_state_name(from), wsr_state_name(to));
}

static void on_open(wsr_client *c, const char *subprotocol, void *user) {
    (void)subprotocol; (void)user;
    stamp(); printf("open; %lu line(s) waited in the queue and go out first\n",
                    (unsigned long)wsr_client_queued_messages(c));
}

static void on_message(wsr_client *c, wsr_msg_type type, const void *data, size_t len, void *user) {
    (void)c; (void)type; (void)user;
    stamp(); printf("echo: %.*s\n", (int)len, (const char *)data);   /* data is not NUL-terminated */
}

/* Once for every attempt that started, whether it never connected or was
   open for hours: why->message says what happened in words. */
static void on_close(wsr_client *c, const wsr_error *why, void *user) {
    (void)c; (void)user;
    stamp(); printf("connection ended: %s (close code %d)\n", why->message, why->close_code);
}

/* Before each wait. attempt counts failures in a row (1 = first retry);
   returning 0 here would stop the client for good. */
static int on_reconnecting(wsr_client *c, int attempt, int delay_ms, const wsr_error *cause, void *user) {
    (void)user;
    stamp(); printf("reconnect attempt %d in %d ms (cause: %s; down %lu ms); %lu line(s) wait\n", attempt,
                    delay_ms, wsr_strerror(cause->code), (unsigned long)cause->down_ms,
                    (unsigned long)wsr_client_queued_messages(c));
    return 1;
}

/* Once, when the client stops for good: here because we closed it. */
static void on_end(wsr_client *c, const wsr_error *why, void *user) {
    (void)c; (void)user;
    stamp(); printf("stopped: %s\n", why->message);
}

int main(int argc, char **argv) {
    wsr_client_config cfg;
    wsr_error err;
    wsr_client *c;
    int seconds = argc > 2 ? atoi(argv[2]) : 0, line = 0, closing = 0, ok;
    uint64_t next_line, end_at;
    if (argc < 2) { fprintf(stderr, "usage: %s ws://host:port/path [seconds]\n", argv[0]); return 2; }
    setvbuf(stdout, NULL, _IOLBF, 0);    /* one line at a time, even into a pipe */
    t0 = wsr_now_ms();
    wsr_client_config_init(&cfg);
    cfg.url = argv[1];
    /* The backoff schedule: waits of 250, 500, 1000, ... ms, at most 8 s,
       each randomised between half and all of that (EQUAL jitter) so that
       many clients of one server do not all come back in the same instant. */
    cfg.backoff.initial_ms = 250;
    cfg.backoff.factor = 2.0;
    cfg.backoff.max_ms = 8000;
    cfg.backoff.jitter = WSR_JITTER_EQUAL;
    cfg.backoff.min_uptime_ms = 2000;    /* up 2 s: the next failure counts as attempt 1 again */
    cfg.backoff.max_attempts = 0;        /* never give up; a tool with a human waiting would say 5 */
    cfg.on_state = on_state;
    cfg.on_open = on_open;
    cfg.on_message = on_message;
    cfg.on_close = on_close;
    cfg.on_reconnecting = on_reconnecting;
    cfg.on_end = on_end;
    if (!(c = wsr_client_new(&cfg, &err))) { fprintf(stderr, "reconnecting: %s\n", err.message); return 1; }
    next_line = t0 + 1000;
    end_at = seconds > 0 ? t0 + (uint64_t)seconds * 1000 : 0;
    while (wsr_client_state(c) != WSR_STATE_CLOSED) {
        uint64_t now = wsr_now_ms(), wake;
        if (end_at && now >= end_at && !closing) {
            wsr_client_close(c, 1000, "run time over");   /* the handshake runs in the next polls */
            closing = 1;
        }
        if (!closing && now >= next_line) {
            char text[32];
            int n = snprintf(text, sizeof text, "line %d", ++line);
            wsr_send_text(c, text, (size_t)n);   /* queued whatever the link is doing */
            next_line += 1000;
        }
        wake = closing ? now + 1000 : next_line;
        if (end_at && !closing && end_at < wake) wake = end_at;
        wsr_client_poll(c, wake > now ? (int)(wake - now) : 0);   /* all I/O and callbacks happen here */
    }
    ok = wsr_client_error(c)->code == WSR_ERR_CLOSED;   /* we ended it, not a permanent error */
    wsr_client_free(c);
    return ok ? 0 : 1;
}
