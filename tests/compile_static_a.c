/* WSR_STATIC in two translation units: each gets a private copy, and the link
   must not see duplicate symbols. */
#define WSR_STATIC
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include <stdio.h>
#include <string.h>

int other_unit_sha1_first_byte(void);

int main(void) {
    unsigned char d[20];
    int failed;
    wsr_sha1("abc", 3, d);
    failed = (d[0] != 0xA9) + (other_unit_sha1_first_byte() != 0xA9);
    printf("%d passed, %d failed\n", 2 - failed, failed);
    return failed != 0;
}
