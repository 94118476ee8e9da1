/* blob.c -- blob codec: compress (zstd, when it pays) then seal on the way
 * out; unseal, check, then decompress under a hard size cap on the way in.
 * With pack.c, the only files that include <zstd.h>. Plaintext buffers are
 * wiped before they are freed. */
#include "blob.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "crypt.h"

#define ZSTD_MAGIC 0xFD2FB528u

size_t
blob_max_encoded(size_t len)
{
    if (len > SIZE_MAX - 1 - CRYPT_SEAL_OVERHEAD)
        return 0;
    return len + 1 + CRYPT_SEAL_OVERHEAD;
}

/* Release a plaintext buffer of `len` bytes; NULL is fine. */
static void
wipe_free(uint8_t *buf, size_t len)
{
    if (buf == NULL)
        return;
    crypt_wipe(buf, len);
    free(buf);
}

/* Each thread keeps one compression context: making one costs as much as
 * compressing a small chunk. Freed when the thread ends (pthread key
 * destructor); the main thread's lives until the process exits. */
static pthread_key_t cctx_key;
static pthread_once_t cctx_once = PTHREAD_ONCE_INIT;
static int cctx_key_ok;

static void
cctx_release(void *p)
{
    ZSTD_freeCCtx(p);
}

static void
cctx_key_make(void)
{
    cctx_key_ok = pthread_key_create(&cctx_key, cctx_release) == 0;
}

/* This thread's context, reset to the blob parameters; *own is set when
 * it could not be kept (the caller frees it). NULL when out of memory. */
static ZSTD_CCtx *
cctx_get(int *own)
{
    ZSTD_CCtx *cctx = NULL;

    *own = 0;
    pthread_once(&cctx_once, cctx_key_make);
    if (cctx_key_ok)
        cctx = pthread_getspecific(cctx_key);
    if (cctx == NULL) {
        cctx = ZSTD_createCCtx();
        if (cctx == NULL)
            return NULL;
        if (!cctx_key_ok || pthread_setspecific(cctx_key, cctx) != 0)
            *own = 1;
    } else {
        ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
    }
    return cctx;
}

/* Likewise one decompression context per thread (restores decode every
 * chunk, and making a context costs more than decoding a small one). */
static pthread_key_t dctx_key;
static pthread_once_t dctx_once = PTHREAD_ONCE_INIT;
static int dctx_key_ok;

static void
dctx_release(void *p)
{
    ZSTD_freeDCtx(p);
}

static void
dctx_key_make(void)
{
    dctx_key_ok = pthread_key_create(&dctx_key, dctx_release) == 0;
}

/* This thread's decompression context, reset; *own as for cctx_get(). */
static ZSTD_DCtx *
dctx_get(int *own)
{
    ZSTD_DCtx *dctx = NULL;

    *own = 0;
    pthread_once(&dctx_once, dctx_key_make);
    if (dctx_key_ok)
        dctx = pthread_getspecific(dctx_key);
    if (dctx == NULL) {
        dctx = ZSTD_createDCtx();
        if (dctx == NULL)
            return NULL;
        if (!dctx_key_ok || pthread_setspecific(dctx_key, dctx) != 0)
            *own = 1;
    } else {
        ZSTD_DCtx_reset(dctx, ZSTD_reset_session_and_parameters);
    }
    return dctx;
}

/* Compress src into dst, which holds `cap` bytes. Sets *zlen to the frame
 * size, or to 0 when the frame would not fit (the data does not shrink
 * enough: the caller stores it raw). Returns SIMSYNC_OK or SIMSYNC_ENOMEM.
 * The frame declares its content size; level 3 uses a window of at most
 * 2^21 bytes, well within what blob_decode() accepts. */
static int
deflate_into(uint8_t *dst, size_t cap, const uint8_t *src, size_t len,
             size_t *zlen)
{
    ZSTD_CCtx *cctx;
    size_t r;
    int own;

    *zlen = 0;
    cctx = cctx_get(&own);
    if (cctx == NULL)
        return SIMSYNC_ENOMEM;
    r = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, BLOB_ZSTD_LEVEL);
    if (!ZSTD_isError(r))
        r = ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
    if (!ZSTD_isError(r))
        r = ZSTD_compress2(cctx, dst, cap, src, len);
    if (own)
        ZSTD_freeCCtx(cctx);
    if (ZSTD_isError(r)) {
        /* dstSize_tooSmall: not worth it. Anything else: raw is always a
         * correct encoding, so fall back to it as well. */
        if (ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation)
            return SIMSYNC_ENOMEM;
        return SIMSYNC_OK;
    }
    *zlen = r;
    return SIMSYNC_OK;
}

int
blob_encode(const uint8_t key[32], const uint8_t *ad, size_t adlen,
            const uint8_t *pt, size_t len, uint8_t **out, size_t *outlen)
{
    uint8_t *inner = NULL; /* owned: flag | payload, plaintext */
    uint8_t *blob = NULL;  /* owned until returned */
    size_t zlen = 0, plen;
    int rc;

    if (out != NULL)
        *out = NULL;
    if (outlen != NULL)
        *outlen = 0;
    if (key == NULL || out == NULL || outlen == NULL ||
        (ad == NULL && adlen > 0) || (pt == NULL && len > 0))
        return SIMSYNC_EINVAL;
    if (blob_max_encoded(len) == 0)
        return SIMSYNC_ETOOBIG;

    inner = malloc(1 + len);
    if (inner == NULL)
        return SIMSYNC_ENOMEM;

    /* Give zstd one byte less than the plaintext: a frame that fits is
     * strictly smaller than storing the data raw. */
    if (len > 1) {
        rc = deflate_into(inner + 1, len - 1, pt, len, &zlen);
        if (rc != SIMSYNC_OK)
            goto fail;
    }
    if (zlen > 0) {
        inner[0] = BLOB_FLAG_ZSTD;
        plen = zlen;
    } else {
        inner[0] = BLOB_FLAG_RAW;
        if (len > 0)
            memcpy(inner + 1, pt, len);
        plen = len;
    }

    blob = malloc(1 + plen + CRYPT_SEAL_OVERHEAD);
    if (blob == NULL) {
        rc = SIMSYNC_ENOMEM;
        goto fail;
    }
    rc = crypt_seal(blob, inner, 1 + plen, ad, adlen, key);
    if (rc != SIMSYNC_OK)
        goto fail;

    wipe_free(inner, 1 + len);
    *out = blob;
    *outlen = 1 + plen + CRYPT_SEAL_OVERHEAD;
    return SIMSYNC_OK;

fail:
    wipe_free(inner, 1 + len);
    free(blob);
    return rc;
}

/* Read the frame header of src (n bytes) far enough to learn the window the
 * frame asks for (RFC 8878, 3.1.1.1). Sets *window to 0 for a single-segment
 * frame, whose window is its declared content size (checked separately).
 * Returns SIMSYNC_OK, or SIMSYNC_EPROTO when src is not a zstd frame (bad
 * magic, skippable frame, reserved bit set, header cut short). */
static int
frame_window(const uint8_t *src, size_t n, uint64_t *window)
{
    uint32_t magic;
    unsigned fhd, exponent, mantissa;
    uint64_t base;

    *window = 0;
    if (n < 5)
        return SIMSYNC_EPROTO;
    magic = (uint32_t)src[0] | (uint32_t)src[1] << 8 | (uint32_t)src[2] << 16 |
            (uint32_t)src[3] << 24;
    if (magic != ZSTD_MAGIC)
        return SIMSYNC_EPROTO;
    fhd = src[4];
    if (fhd & 0x08) /* reserved bit */
        return SIMSYNC_EPROTO;
    if (fhd & 0x20) /* single segment: no window descriptor */
        return SIMSYNC_OK;
    if (n < 6)
        return SIMSYNC_EPROTO;
    exponent = src[5] >> 3;
    mantissa = src[5] & 7;
    base = (uint64_t)1 << (10 + exponent); /* at most 2^41 */
    *window = base + (base / 8) * mantissa;
    return SIMSYNC_OK;
}

/* Map a zstd decompression error. `declared` tells whether the frame gave
 * its content size: if it did, running out of room means the frame lied
 * (malformed); if not, the output simply outgrew the cap. */
static int
inflate_error(size_t r, int declared)
{
    switch (ZSTD_getErrorCode(r)) {
    case ZSTD_error_memory_allocation:
        return SIMSYNC_ENOMEM;
    case ZSTD_error_frameParameter_windowTooLarge:
        return SIMSYNC_ETOOBIG;
    case ZSTD_error_dstSize_tooSmall:
        return declared ? SIMSYNC_EPROTO : SIMSYNC_ETOOBIG;
    default:
        return SIMSYNC_EPROTO;
    }
}

/* Decompress the single zstd frame src (n bytes) into a new buffer of at
 * most `cap` bytes, returned in *out / *outlen. Every check that can be
 * made from the header is made before any allocation; the output buffer is
 * the only one sized by the input, and it is never larger than cap. The
 * one-shot decoder uses the output buffer as its window, so the window
 * size costs no memory beyond it. */
static int
inflate_frame(const uint8_t *src, size_t n, size_t cap, uint8_t **out,
              size_t *outlen)
{
    unsigned long long fcs;
    uint64_t window;
    ZSTD_DCtx *dctx;
    uint8_t *buf, *fit;
    size_t room, r, fsz;
    int declared, rc, own;

    rc = frame_window(src, n, &window);
    if (rc != SIMSYNC_OK)
        return rc;
    fcs = ZSTD_getFrameContentSize(src, n);
    if (fcs == ZSTD_CONTENTSIZE_ERROR)
        return SIMSYNC_EPROTO;
    declared = fcs != ZSTD_CONTENTSIZE_UNKNOWN;
    if (declared && fcs > cap)
        return SIMSYNC_ETOOBIG;
    if (window > (uint64_t)1 << BLOB_WINDOW_LOG_MAX)
        return SIMSYNC_ETOOBIG;
    /* Exactly one complete frame: no truncation, nothing after it. */
    fsz = ZSTD_findFrameCompressedSize(src, n);
    if (ZSTD_isError(fsz) || fsz != n)
        return SIMSYNC_EPROTO;

    room = declared ? (size_t)fcs : cap;
    buf = malloc(room > 0 ? room : 1);
    if (buf == NULL)
        return SIMSYNC_ENOMEM;
    dctx = dctx_get(&own);
    if (dctx == NULL) {
        free(buf);
        return SIMSYNC_ENOMEM;
    }
    r = ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, BLOB_WINDOW_LOG_MAX);
    if (!ZSTD_isError(r))
        r = ZSTD_decompressDCtx(dctx, buf, room, src, n);
    if (own)
        ZSTD_freeDCtx(dctx);
    if (ZSTD_isError(r)) {
        wipe_free(buf, room);
        return inflate_error(r, declared);
    }
    if (declared && r != room) {
        wipe_free(buf, room);
        return SIMSYNC_EPROTO;
    }

    if (!declared && r < room) {
        /* Give back the unused part of the cap-sized buffer. Copy rather
         * than realloc() so the old buffer can be wiped. The decoder's
         * wide copies may write a little past the output; nothing far past
         * it was touched, so only that much is wiped (wiping all of a large
         * cap would fault in pages the frame never used). */
        size_t used = room - r > 64 ? r + 64 : room;

        fit = malloc(r > 0 ? r : 1);
        if (fit == NULL) {
            wipe_free(buf, used);
            return SIMSYNC_ENOMEM;
        }
        if (r > 0)
            memcpy(fit, buf, r);
        wipe_free(buf, used);
        buf = fit;
    }
    *out = buf;
    *outlen = r;
    return SIMSYNC_OK;
}

int
blob_decode(const uint8_t key[32], const uint8_t *ad, size_t adlen,
            const uint8_t *in, size_t inlen, size_t cap, uint8_t **out,
            size_t *outlen)
{
    uint8_t *inner; /* owned: flag | payload, plaintext */
    size_t ilen, limit;
    int rc;

    if (out != NULL)
        *out = NULL;
    if (outlen != NULL)
        *outlen = 0;
    if (key == NULL || out == NULL || outlen == NULL ||
        (ad == NULL && adlen > 0) || (in == NULL && inlen > 0))
        return SIMSYNC_EINVAL;
    if (inlen < CRYPT_SEAL_OVERHEAD)
        return SIMSYNC_ECRYPTO;
    /* The encoder never makes a blob longer than a raw one, so a blob
     * longer than blob_max_encoded(cap) cannot hold an acceptable
     * plaintext: refuse it before allocating anything for it. */
    limit = blob_max_encoded(cap);
    if (limit != 0 && inlen > limit)
        return SIMSYNC_ETOOBIG;

    ilen = inlen - CRYPT_SEAL_OVERHEAD;
    inner = malloc(ilen > 0 ? ilen : 1);
    if (inner == NULL)
        return SIMSYNC_ENOMEM;
    rc = crypt_unseal(inner, in, inlen, ad, adlen, key);
    if (rc != SIMSYNC_OK) {
        wipe_free(inner, ilen);
        return SIMSYNC_ECRYPTO;
    }
    if (ilen == 0) {
        free(inner);
        return SIMSYNC_EPROTO;
    }

    switch (inner[0]) {
    case BLOB_FLAG_RAW:
        if (ilen - 1 > cap) { /* guard; the length check covers it */
            rc = SIMSYNC_ETOOBIG;
            break;
        }
        memmove(inner, inner + 1, ilen - 1);
        crypt_wipe(inner + ilen - 1, 1);
        *out = inner;
        *outlen = ilen - 1;
        return SIMSYNC_OK;
    case BLOB_FLAG_ZSTD:
        rc = inflate_frame(inner + 1, ilen - 1, cap, out, outlen);
        break;
    default:
        rc = SIMSYNC_EPROTO;
        break;
    }
    wipe_free(inner, ilen);
    return rc;
}
