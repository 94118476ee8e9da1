/* noise.h -- the Noise protocol framework handshake, pattern XX, with
 * X25519, ChaCha20-Poly1305 and BLAKE2b: Noise_XX_25519_ChaChaPoly_BLAKE2b,
 * written from the Noise specification (revision 34).
 *
 *     -> e
 *     <- e, ee, s, es
 *     -> s, se
 *
 * This module does no I/O: the caller moves the bytes (see chan.h, which
 * frames them over a transport). Every output goes into a caller buffer with
 * an explicit capacity; nothing is written past it.
 *
 * Objects:
 *  - struct noise_hs: one handshake (HandshakeState + SymmetricState of the
 *    spec). Made by noise_hs_new, freed by noise_hs_free.
 *  - struct noise_cipher: one direction of transport encryption
 *    (CipherState of the spec), made by noise_hs_split, freed by
 *    noise_cipher_free.
 * Both wipe every secret they hold when freed.
 *
 * Errors, common to the calls below:
 *   SIMSYNC_EINVAL   a NULL pointer or impossible argument (programmer error)
 *   SIMSYNC_ESTATE   wrong turn (writing when it is the peer's turn, split
 *                    before the end, a handshake that already failed, an
 *                    exhausted nonce)
 *   SIMSYNC_ETOOBIG  a message over NOISE_MAX_MSG or an output buffer too
 *                    small; the state is left unchanged, so the call may be
 *                    repeated with a bigger buffer
 *   SIMSYNC_EPROTO   a received message too short for its pattern
 *   SIMSYNC_ECRYPTO  a bad authentication tag, or a Diffie-Hellman result
 *                    that is all zero (peer key of low order)
 *   SIMSYNC_ENOMEM   allocation failed
 * After SIMSYNC_EPROTO or SIMSYNC_ECRYPTO from a handshake call the handshake
 * is dead: every later call on it returns SIMSYNC_ESTATE.
 *
 * Caveats: the ephemeral key comes from crypt_random() (crypt_init() must
 * have been called); noise_hs_fix_ephemeral exists only so tests can replay
 * published vectors and must never be used otherwise. */
#ifndef SIMSYNC_NOISE_H
#define SIMSYNC_NOISE_H

#include <stddef.h>
#include <stdint.h>
#include "simsync.h"

#define NOISE_DHLEN 32      /* X25519 public key / shared secret */
#define NOISE_HASHLEN 64    /* BLAKE2b-512 */
#define NOISE_KEYLEN 32     /* ChaChaPoly key */
#define NOISE_TAGLEN 16     /* Poly1305 tag */
#define NOISE_MAX_MSG 65535 /* spec: every Noise message fits in 65535 */
#define NOISE_PROTOCOL_NAME "Noise_XX_25519_ChaChaPoly_BLAKE2b"

/* Largest payload each handshake message can carry within NOISE_MAX_MSG:
 * message 1 is e + payload; 2 is e + enc(s) + enc(payload); 3 is enc(s) +
 * enc(payload). */
#define NOISE_MAX_PAYLOAD1 (NOISE_MAX_MSG - NOISE_DHLEN)
#define NOISE_MAX_PAYLOAD2 (NOISE_MAX_MSG - 2 * NOISE_DHLEN - 2 * NOISE_TAGLEN)
#define NOISE_MAX_PAYLOAD3 (NOISE_MAX_MSG - NOISE_DHLEN - 2 * NOISE_TAGLEN)

struct noise_hs;
struct noise_cipher;

/* Start a handshake. `initiator` is 1 for the side that writes the first
 * message, 0 for the responder. `prologue` (prologue_len bytes, may be NULL
 * when 0) is mixed into the transcript: both sides must pass the same bytes
 * or the handshake fails with SIMSYNC_ECRYPTO. `static_sk` is the local
 * X25519 private key, copied. *out is returned to the caller, who frees it
 * with noise_hs_free. Returns SIMSYNC_OK, SIMSYNC_EINVAL or SIMSYNC_ENOMEM. */
int noise_hs_new(struct noise_hs **out, int initiator, const uint8_t *prologue,
                 size_t prologue_len,
                 const uint8_t static_sk[32]) SIMSYNC_MUST_CHECK;

/* Tests only: use `e_sk` as the ephemeral private key instead of a random
 * one. Must be called before this side writes its first message. Returns
 * SIMSYNC_OK, SIMSYNC_EINVAL or SIMSYNC_ESTATE (ephemeral already used). */
int noise_hs_fix_ephemeral(struct noise_hs *hs,
                           const uint8_t e_sk[32]) SIMSYNC_MUST_CHECK;

/* Write the next handshake message, carrying `payload` (payload_len bytes,
 * may be NULL when 0; encrypted in messages 2 and 3, in clear in message 1).
 * The message goes to out[0..cap); *out_len is set to its length.
 * `payload` and `out` must not overlap. Returns SIMSYNC_OK, SIMSYNC_ETOOBIG
 * (out too small or message over NOISE_MAX_MSG), SIMSYNC_ESTATE (not our
 * turn), SIMSYNC_ECRYPTO (low-order peer key), SIMSYNC_EINVAL. */
int noise_hs_write_message(struct noise_hs *hs, const uint8_t *payload,
                           size_t payload_len, uint8_t *out, size_t cap,
                           size_t *out_len) SIMSYNC_MUST_CHECK;

/* Read the peer's next handshake message `msg` (len bytes). Its payload is
 * written to payload[0..cap) and *payload_len set to its length. `msg` and
 * `payload` must not overlap. On failure *payload_len is 0 and payload[0..cap)
 * holds no decrypted bytes. Returns SIMSYNC_OK, SIMSYNC_ETOOBIG (len over
 * NOISE_MAX_MSG, or the payload does not fit in cap: state unchanged),
 * SIMSYNC_EPROTO (too short), SIMSYNC_ECRYPTO (bad tag, wrong prologue,
 * low-order key), SIMSYNC_ESTATE (not the peer's turn), SIMSYNC_EINVAL. */
int noise_hs_read_message(struct noise_hs *hs, const uint8_t *msg, size_t len,
                          uint8_t *payload, size_t cap,
                          size_t *payload_len) SIMSYNC_MUST_CHECK;

/* 1 once all three messages have been written or read, else 0. */
int noise_hs_is_done(const struct noise_hs *hs);

/* 1 when this side writes the next message, 0 when it reads it (or the
 * handshake is finished or dead). */
int noise_hs_my_turn(const struct noise_hs *hs);

/* The peer's static X25519 public key into pk, once it has been received
 * (responder: after message 3; initiator: after message 2). Returns
 * SIMSYNC_OK, SIMSYNC_ESTATE (not yet known) or SIMSYNC_EINVAL. */
int noise_hs_remote_static(const struct noise_hs *hs, uint8_t pk[32]);

/* The handshake hash h (channel binding value) into h; meaningful once the
 * handshake is done. Returns SIMSYNC_OK, SIMSYNC_ESTATE (not done) or
 * SIMSYNC_EINVAL. */
int noise_hs_hash(const struct noise_hs *hs, uint8_t h[NOISE_HASHLEN]);

/* Derive the transport keys of a finished handshake: *send encrypts what this
 * side sends, *recv decrypts what it receives. Both are returned to the
 * caller (noise_cipher_free). The handshake stays valid only for
 * noise_hs_hash / noise_hs_remote_static / noise_hs_free. Returns
 * SIMSYNC_OK, SIMSYNC_ESTATE (not done), SIMSYNC_ENOMEM, SIMSYNC_EINVAL;
 * on failure both outputs are NULL. */
int noise_hs_split(struct noise_hs *hs, struct noise_cipher **send,
                   struct noise_cipher **recv) SIMSYNC_MUST_CHECK;

/* Wipe and free. NULL-safe. */
void noise_hs_free(struct noise_hs *hs);

/* Encrypt pt (ptlen bytes) with associated data ad (adlen bytes, may be NULL
 * when 0) under the next nonce; out receives ptlen + NOISE_TAGLEN bytes
 * (out == pt is allowed; otherwise they must not overlap). Returns
 * SIMSYNC_OK, SIMSYNC_ETOOBIG (cap too small), SIMSYNC_ESTATE (nonce
 * 2^64-1 reached: the cipher is exhausted), SIMSYNC_EINVAL. */
int noise_cipher_encrypt(struct noise_cipher *cs, const uint8_t *ad,
                         size_t adlen, const uint8_t *pt, size_t ptlen,
                         uint8_t *out, size_t cap,
                         size_t *out_len) SIMSYNC_MUST_CHECK;

/* Decrypt ct (ctlen bytes, tag included) under the next nonce into out
 * (ctlen - NOISE_TAGLEN bytes; out == ct allowed). The nonce advances only
 * on success, so a replayed, reordered or tampered message fails.
 * Returns SIMSYNC_OK, SIMSYNC_ECRYPTO (bad tag or ctlen < NOISE_TAGLEN),
 * SIMSYNC_ETOOBIG (cap too small), SIMSYNC_ESTATE (nonce exhausted),
 * SIMSYNC_EINVAL. */
int noise_cipher_decrypt(struct noise_cipher *cs, const uint8_t *ad,
                         size_t adlen, const uint8_t *ct, size_t ctlen,
                         uint8_t *out, size_t cap,
                         size_t *out_len) SIMSYNC_MUST_CHECK;

/* The spec's SetNonce(): the nonce the next encrypt/decrypt will use. Only
 * for tests (nonce exhaustion) and out-of-order schemes we do not use. */
void noise_cipher_set_nonce(struct noise_cipher *cs, uint64_t n);

/* The nonce the next encrypt/decrypt will use. */
uint64_t noise_cipher_nonce(const struct noise_cipher *cs);

/* Wipe the key and free. NULL-safe. */
void noise_cipher_free(struct noise_cipher *cs);

#endif /* SIMSYNC_NOISE_H */
