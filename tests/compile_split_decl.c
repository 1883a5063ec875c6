/* A translation unit that sees only the declarations, included twice to
   check the include guard, linked with compile_split_impl.c. */
#include "ws_reconnect.h"
#include "ws_reconnect.h"
#include <stdio.h>
#include <string.h>

int main(void) {
    wsr_url u;
    wsr_error err;
    int failed = wsr_url_parse("ws://example.com:8080/chat", &u, &err) != WSR_OK;
    failed += u.port != 8080;
    failed += strcmp(wsr_state_name(WSR_STATE_OPEN), "OPEN") != 0;
    printf("%d passed, %d failed\n", 3 - failed, failed);
    return failed != 0;
}
