/* The smallest client: connect, send one message, print the echo, close.

   usage: hello [ws://host:port/path]      (try it against build/tools/wsr-echo)

   The idea: a client is a config struct, a handle and a poll loop. Nothing
   happens between polls; every callback runs inside wsr_client_poll. */
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include <stdio.h>

static void on_open(wsr_client *c, const char *subprotocol, void *user) {
    (void)subprotocol; (void)user;
    printf("connected\n");
    wsr_send_text(c, "hello, websocket", 16);
}

static void on_message(wsr_client *c, wsr_msg_type type, const void *data, size_t len, void *user) {
    (void)type; (void)user;
    printf("echo: %.*s\n", (int)len, (const char *)data);
    wsr_client_close(c, 1000, "done");      /* the close handshake runs in the next polls */
}

static void on_close(wsr_client *c, const wsr_error *why, void *user) {
    (void)c; (void)user;
    printf("closed: %s\n", why->message);
}

int main(int argc, char **argv) {
    wsr_client_config cfg;
    wsr_error err;
    wsr_client *c;
    int ok;
    wsr_client_config_init(&cfg);
    cfg.url = argc > 1 ? argv[1] : "ws://127.0.0.1:9001/";
    cfg.on_open = on_open;
    cfg.on_message = on_message;
    cfg.on_close = on_close;
    cfg.backoff.max_attempts = 3;           /* a one-shot tool gives up; a long-lived client would not */
    c = wsr_client_new(&cfg, &err);
    if (!c) { fprintf(stderr, "hello: %s\n", err.message); return 1; }
    while (wsr_client_state(c) != WSR_STATE_CLOSED) wsr_client_poll(c, 1000);
    ok = wsr_client_error(c)->code == WSR_ERR_CLOSED;   /* we closed it ourselves: success */
    wsr_client_free(c);
    return ok ? 0 : 1;
}
