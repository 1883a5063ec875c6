/* The whole header, declarations and implementation, as strict C99 (and,
   through the Makefile, with both gcc and clang). Links and runs a trivial
   check so the test runner counts it. */
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include <stdio.h>
#include <string.h>

int main(void) {
    char version[32];
    int failed = strcmp(wsr_strerror(WSR_ERR_TIMEOUT), "timed out") != 0;
    /* The string and the numbers say the same version. */
    snprintf(version, sizeof version, "%d.%d.%d", WSR_VERSION_MAJOR, WSR_VERSION_MINOR, WSR_VERSION_PATCH);
    failed += strcmp(WSR_VERSION_STRING, version) != 0;
    printf("%d passed, %d failed\n", 2 - failed, failed);
    return failed != 0;
}
