/* The implementation unit: declarations first (as a user's other headers
   might pull them in), then the implementation, then the header once more.
   Because a system header (stdint.h) is then seen before the implementation,
   strict -std=c99 on glibc needs POSIX asked for up front, as documented. */
#define _POSIX_C_SOURCE 200809L
#include "ws_reconnect.h"
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include "ws_reconnect.h"
