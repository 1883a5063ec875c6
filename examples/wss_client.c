/* The smallest wss:// client: connect over TLS, send one message, print the
   echo, close. The server's certificate is verified against CA_FILE when one
   is given, else against the system's CA bundle; the URL's host is checked.

   usage: wss_client wss://HOST:PORT/PATH [CA_FILE]

   TLS is two additions to the plain build: the define and the mbedTLS libraries
   (Debian: apt-get install libmbedtls-dev):
       cc -std=c99 -O2 -DWSR_USE_MBEDTLS -I. examples/wss_client.c -o wss_client \
          -lmbedtls -lmbedx509 -lmbedcrypto
   Try it against `build/tools/wsrcat -l 8443 --cert server.crt --key server.key`:
       wss_client wss://localhost:8443/ ca.crt */
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include <stdio.h>

static void on_open(wsr_client *c, const char *subprotocol, void *user) {
    (void)subprotocol; (void)user;
    printf("connected over TLS\n");
    wsr_send_text(c, "hello over TLS", 14);
}

static void on_message(wsr_client *c, wsr_msg_type type, const void *data, size_t len, void *user) {
    (void)type; (void)user;
    printf("echo: %.*s\n", (int)len, (const char *)data);
    wsr_client_close(c, 1000, "done");
}

int main(int argc, char **argv) {
    wsr_client_config cfg;
    wsr_error err;
    wsr_client *c;
    int ok;
    if (argc < 2) { fprintf(stderr, "usage: wss_client wss://HOST:PORT/PATH [CA_FILE]\n"); return 2; }
    wsr_client_config_init(&cfg);
    cfg.url = argv[1];
    cfg.tls.ca_file = argc > 2 ? argv[2] : NULL;   /* NULL: the system's CA bundle */
    cfg.on_open = on_open;
    cfg.on_message = on_message;
    cfg.backoff.max_attempts = 3;           /* a refused certificate is never retried anyway */
    c = wsr_client_new(&cfg, &err);         /* a wss:// URL without WSR_USE_MBEDTLS fails here */
    if (!c) { fprintf(stderr, "wss_client: %s\n", err.message); return 1; }
    while (wsr_client_state(c) != WSR_STATE_CLOSED) wsr_client_poll(c, 1000);
    ok = wsr_client_error(c)->code == WSR_ERR_CLOSED;   /* we closed it ourselves: success */
    if (!ok) fprintf(stderr, "wss_client: %s\n", wsr_client_error(c)->message);
    wsr_client_free(c);
    return ok ? 0 : 1;
}
