/* fuzz_frames_client.c - the frame decoder as a client reads a server:
   no frame may be masked. What is checked: see fuzz_frames.h. */
#include "fuzz_frames.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_frames_run(WSR_ROLE_CLIENT, data, size);
}
