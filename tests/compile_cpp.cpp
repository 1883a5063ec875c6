// The header compiled as C++11: casts on every malloc, no designated
// initialisers, extern "C" linkage for the public functions.
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include <cstdio>
#include <cstring>

int main() {
    wsr_client_config cfg;
    wsr_client_config_init(&cfg);
    int failed = std::strcmp(wsr_strerror(WSR_ERR_PROTOCOL), "peer broke the WebSocket protocol") != 0;
    failed += cfg.connect_timeout_ms != 10000;
    std::printf("%d passed, %d failed\n", 2 - failed, failed);
    return failed != 0;
}
