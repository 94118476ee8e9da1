/* frame.c -- 4-byte big-endian length prefix: decode-and-check, encode. */
#include <string.h>

#include "frame.h"

int
frame_header_check(const uint8_t hdr[FRAME_HEADER_BYTES], size_t cap,
                   size_t *len)
{
    uint32_t n;

    if (len == NULL)
        return SIMSYNC_EINVAL;
    *len = 0;
    if (hdr == NULL)
        return SIMSYNC_EINVAL;
    n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
        (uint32_t)hdr[2] << 8 | (uint32_t)hdr[3];
    *len = n;
    if (n == 0)
        return SIMSYNC_EPROTO;
    if (n > cap)
        return SIMSYNC_ETOOBIG;
    return SIMSYNC_OK;
}

int
frame_header_encode(uint8_t hdr[FRAME_HEADER_BYTES], size_t len)
{
    if (hdr == NULL)
        return SIMSYNC_EINVAL;
    if (len == 0)
        return SIMSYNC_EPROTO;
    if (len > UINT32_MAX)
        return SIMSYNC_ETOOBIG;
    hdr[0] = (uint8_t)(len >> 24);
    hdr[1] = (uint8_t)(len >> 16);
    hdr[2] = (uint8_t)(len >> 8);
    hdr[3] = (uint8_t)len;
    return SIMSYNC_OK;
}

int
frame_encode(uint8_t *out, size_t cap, const void *body, size_t len,
             size_t *out_len)
{
    int rc;

    if (out_len != NULL)
        *out_len = 0;
    if (out == NULL || body == NULL || out_len == NULL)
        return SIMSYNC_EINVAL;
    if (len > SIZE_MAX - FRAME_HEADER_BYTES || cap < FRAME_HEADER_BYTES + len)
        return len == 0 ? SIMSYNC_EPROTO : SIMSYNC_ETOOBIG;
    rc = frame_header_encode(out, len);
    if (rc != SIMSYNC_OK)
        return rc;
    memcpy(out + FRAME_HEADER_BYTES, body, len);
    *out_len = FRAME_HEADER_BYTES + len;
    return SIMSYNC_OK;
}

size_t
frame_sealed_tail(const uint8_t *msg, size_t len, const uint8_t *blob,
                  size_t blen)
{
    if (blen == 0 || blen > len || memcmp(msg + len - blen, blob, blen) != 0)
        return 0;
    return blen;
}
