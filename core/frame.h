/* frame.h -- length-prefixed framing: a 4-byte big-endian length, then that
 * many bytes. Pure: no I/O, no allocation. The channel (chan.c) reads the
 * 4-byte header, checks it here against the cap for what it expects, and
 * only then allocates and reads the body, so a hostile length can never
 * make us allocate more than the cap. */
#ifndef SIMSYNC_FRAME_H
#define SIMSYNC_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include "simsync.h"

#define FRAME_HEADER_BYTES 4
/* Largest application message (plaintext) after the handshake: 1 MiB. */
#define FRAME_MAX_PLAINTEXT 1048576u
/* Largest handshake message (the Noise limit). */
#define FRAME_MAX_HANDSHAKE 65535u

/* Decode the header `hdr` and check it against `cap` (the largest body the
 * caller will accept). On success *len is the body length, 1..cap.
 * Returns SIMSYNC_OK, SIMSYNC_EPROTO (length 0), SIMSYNC_ETOOBIG (length >
 * cap; *len still holds the announced length, for diagnostics) or
 * SIMSYNC_EINVAL (NULL argument). */
int frame_header_check(const uint8_t hdr[FRAME_HEADER_BYTES], size_t cap,
                       size_t *len) SIMSYNC_MUST_CHECK;

/* Write the header announcing a body of `len` bytes into hdr. Returns
 * SIMSYNC_OK, SIMSYNC_EPROTO (len 0: empty frames do not exist) or
 * SIMSYNC_ETOOBIG (len > UINT32_MAX). */
int frame_header_encode(uint8_t hdr[FRAME_HEADER_BYTES],
                        size_t len) SIMSYNC_MUST_CHECK;

/* Encode a whole frame (header + `len` bytes of `body`) into out[0..cap);
 * *out_len is set to FRAME_HEADER_BYTES + len. Returns SIMSYNC_OK,
 * SIMSYNC_EPROTO (len 0), SIMSYNC_ETOOBIG (out too small) or
 * SIMSYNC_EINVAL. `body` and `out` must not overlap. */
int frame_encode(uint8_t *out, size_t cap, const void *body, size_t len,
                 size_t *out_len) SIMSYNC_MUST_CHECK;

/* How many bytes at the end of the encoded message msg[0..len) may go as
 * sealed pieces (chan_send_sealed): blen when they are exactly the sealed
 * blob[0..blen), else 0 (everything encrypted). protobuf-c writes fields
 * in number order, so a ChunkData's blob (its last field) ends its
 * envelope; this checks it rather than assuming it. */
size_t frame_sealed_tail(const uint8_t *msg, size_t len, const uint8_t *blob,
                         size_t blen);

#endif /* SIMSYNC_FRAME_H */
