/* The whole header, declarations and implementation, as strict C99 (and,
   through the Makefile, with both gcc and clang). Links and runs a trivial
   check so the test runner counts it. */
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include <stdio.h>
#include <string.h>

int main(void) {
    int failed = strcmp(wsr_strerror(WSR_ERR_TIMEOUT), "timed out") != 0;
    failed += strcmp(WSR_VERSION_STRING, "0.2.0") != 0;
    printf("%d passed, %d failed\n", 2 - failed, failed);
    return failed != 0;
}
