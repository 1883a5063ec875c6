/* Second translation unit for the WSR_STATIC test. */
#define WSR_STATIC
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"

int other_unit_sha1_first_byte(void);
int other_unit_sha1_first_byte(void) {
    unsigned char d[20];
    wsr_sha1("abc", 3, d);
    return d[0];
}
