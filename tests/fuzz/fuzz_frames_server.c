/* fuzz_frames_server.c - the frame decoder as a server reads a client:
   every frame must be masked. What is checked: see fuzz_frames.h. */
#include "fuzz_frames.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_frames_run(WSR_ROLE_SERVER, data, size);
}
