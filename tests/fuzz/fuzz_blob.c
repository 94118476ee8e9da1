/* fuzz_blob.c -- the blob decoder (unseal, then decompress under a cap).
 *
 * Byte 0 picks the mode, byte 1 the cap (1 KiB << (byte % 11): 1 KiB to
 * 1 MiB); the rest is
 *  - mode even: a blob as a hostile hub would serve it. It cannot be
 *    authentic, so it must be refused, with nothing returned;
 *  - mode odd: the inner bytes (flag | payload) of a blob, sealed here under
 *    the test key, which reaches the flag and zstd checks: a decoded
 *    plaintext is never over the cap, a raw one is the payload itself.
 * Memory stays bounded whatever the frame declares (libFuzzer's RSS limit
 * catches a bomb that gets through). */
#include <string.h>

#include "blob.h"
#include "crypt.h"
#include "fuzz.h"

static const uint8_t key[32] = {
    0x42, 0x6c, 0x6f, 0x62, 0x20, 0x66, 0x75, 0x7a, 0x7a, 0x20, 0x6b,
    0x65, 0x79, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09,
    0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13};
static const uint8_t ad[] = "chunk-id";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *plain = NULL, *sealed;
    size_t cap, plen = 0;
    int mode, rc;

    if (size < 2)
        return 0;
    mode = data[0] & 1;
    cap = (size_t)1024 << (data[1] % 11);
    data += 2;
    size -= 2;
    if (mode == 0) {
        rc = blob_decode(key, ad, sizeof(ad), data, size, cap, &plain, &plen);
        FUZZ_CHECK(rc != SIMSYNC_OK);
        FUZZ_CHECK(plain == NULL && plen == 0);
        return 0;
    }
    sealed = malloc(size + CRYPT_SEAL_OVERHEAD);
    if (sealed == NULL)
        return 0;
    FUZZ_CHECK(crypt_seal(sealed, data, size, ad, sizeof(ad), key) ==
               SIMSYNC_OK);
    rc = blob_decode(key, ad, sizeof(ad), sealed, size + CRYPT_SEAL_OVERHEAD,
                     cap, &plain, &plen);
    if (rc == SIMSYNC_OK) {
        FUZZ_CHECK(plain != NULL && plen <= cap);
        FUZZ_CHECK(size >= 1 && data[0] <= BLOB_FLAG_ZSTD);
        if (data[0] == BLOB_FLAG_RAW)
            FUZZ_CHECK(plen == size - 1 &&
                       (plen == 0 || memcmp(plain, data + 1, plen) == 0));
    } else {
        FUZZ_CHECK(plain == NULL && plen == 0);
        FUZZ_CHECK(rc == SIMSYNC_EPROTO || rc == SIMSYNC_ETOOBIG ||
                   rc == SIMSYNC_ENOMEM);
    }
    free(plain);
    free(sealed);
    return 0;
}
