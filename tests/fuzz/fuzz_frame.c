/* fuzz_frame.c -- the frame header check, against every cap a reader uses:
 * an accepted length is 1..cap and the one announced; a refused one is 0
 * (EPROTO) or over the cap (ETOOBIG, reported as announced). Then the
 * remaining bytes must survive an encode/check round trip. */
#include <string.h>

#include "frame.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t caps[] = {1, 16, FRAME_MAX_HANDSHAKE,
                                  FRAME_MAX_PLAINTEXT, 0x7FFFFFFFu, SIZE_MAX};
    uint8_t out[256 + FRAME_HEADER_BYTES];
    uint32_t announced;
    size_t len, olen;

    if (size < FRAME_HEADER_BYTES)
        return 0;
    announced = (uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 |
                (uint32_t)data[2] << 8 | data[3];
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        int rc = frame_header_check(data, caps[i], &len);
        if (rc == SIMSYNC_OK)
            FUZZ_CHECK(len >= 1 && len <= caps[i] && len == announced);
        else if (rc == SIMSYNC_ETOOBIG)
            FUZZ_CHECK(announced > caps[i] && len == announced);
        else
            FUZZ_CHECK(rc == SIMSYNC_EPROTO && announced == 0);
    }
    size -= FRAME_HEADER_BYTES;
    data += FRAME_HEADER_BYTES;
    if (size > 256)
        size = 256;
    if (size == 0) {
        FUZZ_CHECK(frame_encode(out, sizeof(out), data, 0, &olen) ==
                   SIMSYNC_EPROTO);
        return 0;
    }
    FUZZ_CHECK(frame_encode(out, FRAME_HEADER_BYTES + size - 1, data, size,
                            &olen) == SIMSYNC_ETOOBIG);
    FUZZ_CHECK(frame_encode(out, sizeof(out), data, size, &olen) ==
               SIMSYNC_OK);
    FUZZ_CHECK(olen == FRAME_HEADER_BYTES + size);
    FUZZ_CHECK(frame_header_check(out, size, &len) == SIMSYNC_OK &&
               len == size);
    FUZZ_CHECK(memcmp(out + FRAME_HEADER_BYTES, data, size) == 0);
    return 0;
}
