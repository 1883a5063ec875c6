/* The header with WSR_NO_THREADS: it builds without pthreads, and the
   thread runner refuses politely instead of being missing. */
#define WSR_NO_THREADS
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include <stdio.h>

int main(void) {
    wsr_client_config cfg;
    wsr_client *c;
    int failed = 0;
    wsr_client_config_init(&cfg);
    cfg.url = "ws://127.0.0.1:9/";
    c = wsr_client_new(&cfg, NULL);
    failed += c == NULL;
    failed += wsr_client_start_thread(c) != WSR_ERR_INVALID;
    wsr_client_free(c);
    printf("%d passed, %d failed\n", 2 - failed, failed);
    return failed != 0;
}
