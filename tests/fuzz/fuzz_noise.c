/* fuzz_noise.c -- the Noise handshake as the responder (the hub's side)
 * reads it: bytes 0-1 give the length of message 1, which follows; the
 * rest is message 3. Whatever arrives, a payload never exceeds its
 * buffer, a refused message leaves no payload, and the handshake is done
 * only after three good messages, with the initiator's static key known.
 * (The seed corpus holds a genuine handshake against this responder's
 * fixed keys, so the whole path runs.) */
#include <string.h>

#include "fuzz.h"
#include "noise.h"

static const uint8_t static_sk[32] = {
    0x4e, 0x6f, 0x69, 0x73, 0x65, 0x20, 0x66, 0x75, 0x7a, 0x7a, 0x20,
    0x72, 0x65, 0x73, 0x70, 0x6f, 0x6e, 0x64, 0x65, 0x72, 0x21, 0x22,
    0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c};
static const uint8_t eph_sk[32] = {
    0x45, 0x70, 0x68, 0x65, 0x6d, 0x65, 0x72, 0x61, 0x6c, 0x20, 0x66,
    0x75, 0x7a, 0x7a, 0x20, 0x6b, 0x65, 0x79, 0x31, 0x32, 0x33, 0x34,
    0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e};
static const uint8_t prologue[] = "simsync fuzz";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t payload[NOISE_MAX_MSG], out[NOISE_MAX_MSG];
    struct noise_hs *hs = NULL;
    size_t len1, plen = 1, olen;
    int rc;

    if (size < 2)
        return 0;
    len1 = (size_t)data[0] << 8 | data[1];
    data += 2;
    size -= 2;
    if (len1 > size)
        len1 = size;
    if (noise_hs_new(&hs, 0, prologue, sizeof(prologue), static_sk) !=
        SIMSYNC_OK)
        return 0;
    FUZZ_CHECK(noise_hs_fix_ephemeral(hs, eph_sk) == SIMSYNC_OK);
    FUZZ_CHECK(!noise_hs_my_turn(hs));
    /* A small buffer first: too big a payload is refused, state kept. */
    rc = noise_hs_read_message(hs, data, len1, payload, 8, &plen);
    FUZZ_CHECK(rc == SIMSYNC_OK ? plen <= 8 : plen == 0);
    if (rc == SIMSYNC_ETOOBIG)
        rc = noise_hs_read_message(hs, data, len1, payload, sizeof(payload),
                                   &plen);
    if (rc != SIMSYNC_OK) {
        FUZZ_CHECK(plen == 0 && !noise_hs_is_done(hs));
        goto out;
    }
    FUZZ_CHECK(plen <= sizeof(payload) && noise_hs_my_turn(hs));
    rc = noise_hs_write_message(hs, (const uint8_t *)"ok", 2, out,
                                sizeof(out), &olen);
    if (rc != SIMSYNC_OK)
        goto out; /* a low-order ephemeral key is refused here */
    FUZZ_CHECK(olen <= NOISE_MAX_MSG && !noise_hs_my_turn(hs));
    rc = noise_hs_read_message(hs, data + len1, size - len1, payload,
                               sizeof(payload), &plen);
    if (rc == SIMSYNC_OK) {
        uint8_t pk[32];
        FUZZ_CHECK(plen <= sizeof(payload) && noise_hs_is_done(hs));
        FUZZ_CHECK(noise_hs_remote_static(hs, pk) == SIMSYNC_OK);
    } else {
        FUZZ_CHECK(plen == 0 && !noise_hs_is_done(hs));
    }
out:
    noise_hs_free(hs);
    return 0;
}
