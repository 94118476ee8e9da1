/* blob.h -- the at-rest and on-wire form of a chunk or an inline item body.
 *
 *     blob = crypt_seal( flag | payload )   with caller-chosen associated data
 *
 * flag is one byte: BLOB_FLAG_RAW (payload is the plaintext) or
 * BLOB_FLAG_ZSTD (payload is exactly one zstd frame that declares its
 * content size). The encoder compresses (zstd level 3) only when that makes
 * the blob smaller. The associated data (for example the chunk id) binds a
 * blob to its name, so one blob cannot be passed off as another.
 *
 * Decoding treats the input as hostile: it authenticates before it looks at
 * the payload, and it never allocates more than the caller's cap (plus a
 * small constant, and the zstd decoder's fixed-size context) on behalf of
 * the input, whatever sizes the frame declares.
 *
 * This module and pack.c (the packed batches of paired peers) are the only
 * ones that include <zstd.h>. */
#ifndef SIMSYNC_BLOB_H
#define SIMSYNC_BLOB_H

#include <stddef.h>
#include <stdint.h>
#include "simsync.h"

#define BLOB_FLAG_RAW 0  /* payload is the plaintext */
#define BLOB_FLAG_ZSTD 1 /* payload is one zstd frame */

#define BLOB_ZSTD_LEVEL 3
/* Largest zstd window accepted by blob_decode(): 2^27 = 128 MiB. The
 * encoder's level never uses more than 2^21. */
#define BLOB_WINDOW_LOG_MAX 27

/* The size of a blob for a `len`-byte plaintext in the worst case (stored
 * raw): len + 1 + CRYPT_SEAL_OVERHEAD. 0 when that overflows size_t. */
size_t blob_max_encoded(size_t len);

/* Encode `len` bytes at `pt` into a new blob.
 *
 * [in]  key        32-byte blob key, borrowed.
 * [in]  ad, adlen  associated data, borrowed; ad may be NULL if adlen is 0.
 * [in]  pt, len    plaintext, borrowed; pt may be NULL if len is 0.
 * [out] out        the blob, returned to the caller, who free()s it; NULL
 *                  on failure.
 * [out] outlen     its size, at most blob_max_encoded(len); 0 on failure.
 *
 * Returns SIMSYNC_OK, SIMSYNC_EINVAL (NULL where not allowed),
 * SIMSYNC_ETOOBIG (len so large the blob size overflows), SIMSYNC_ENOMEM,
 * SIMSYNC_ECRYPTO (sealing failed). The nonce is random: encoding the same
 * plaintext twice gives different blobs. */
int blob_encode(const uint8_t key[32], const uint8_t *ad, size_t adlen,
                const uint8_t *pt, size_t len, uint8_t **out,
                size_t *outlen) SIMSYNC_MUST_CHECK;

/* Decode the blob `in` (inlen bytes) into a new plaintext of at most `cap`
 * bytes.
 *
 * [in]  key, ad, adlen  as given to blob_encode(), borrowed.
 * [in]  in, inlen       the blob, borrowed (untrusted).
 * [in]  cap             the largest plaintext the caller accepts.
 * [out] out             the plaintext, returned to the caller, who free()s
 *                       it (a valid pointer even when *outlen is 0); NULL
 *                       on failure.
 * [out] outlen          its size, <= cap; 0 on failure.
 *
 * Returns:
 *  SIMSYNC_OK;
 *  SIMSYNC_EINVAL   NULL where not allowed;
 *  SIMSYNC_ECRYPTO  authentication failed: wrong key, wrong associated
 *                   data, or any change to the blob;
 *  SIMSYNC_ETOOBIG  the plaintext would exceed cap (checked before
 *                   unsealing when the blob alone is too long to fit, and
 *                   before decompressing when the frame declares its
 *                   size), or the frame asks for a window over
 *                   2^BLOB_WINDOW_LOG_MAX bytes;
 *  SIMSYNC_EPROTO   authentic but malformed: empty, unknown flag, not
 *                   exactly one whole zstd frame (truncated, trailing
 *                   bytes, skippable frame), or corrupt frame data;
 *  SIMSYNC_ENOMEM. */
int blob_decode(const uint8_t key[32], const uint8_t *ad, size_t adlen,
                const uint8_t *in, size_t inlen, size_t cap, uint8_t **out,
                size_t *outlen) SIMSYNC_MUST_CHECK;

#endif /* SIMSYNC_BLOB_H */
