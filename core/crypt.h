/* crypt.h -- every cryptographic primitive simsync uses, behind our own
 * names. This module is the only one that includes <sodium.h>.
 *
 * Functions that can fail on bad data return SIMSYNC_ECRYPTO (or
 * SIMSYNC_EINVAL for bad sizes); outputs are zeroed first where a failure
 * could otherwise leave partial secrets behind. */
#ifndef SIMSYNC_CRYPT_H
#define SIMSYNC_CRYPT_H

#include <stddef.h>
#include <stdint.h>
#include "simsync.h"

#define CRYPT_KEY_BYTES 32        /* symmetric keys, X25519 keys */
#define CRYPT_TAG_BYTES 16        /* Poly1305 tag */
#define CRYPT_SEAL_NONCE_BYTES 24 /* XChaCha20 nonce */
#define CRYPT_SEAL_OVERHEAD (CRYPT_SEAL_NONCE_BYTES + CRYPT_TAG_BYTES)
#define CRYPT_SIGN_PK_BYTES 32
#define CRYPT_SIGN_SK_BYTES 64
#define CRYPT_SIG_BYTES 64
#define CRYPT_BOX_OVERHEAD 48 /* sealed box: ephemeral pk + tag */
#define CRYPT_PWHASH_STR_BYTES 128
#define CRYPT_SALT_BYTES 16
#define CRYPT_HASH_MAX 64 /* BLAKE2b output maximum */

/* Initialise the library once per process; safe to call repeatedly and from
 * several threads. Returns SIMSYNC_OK or SIMSYNC_EIO. */
int crypt_init(void) SIMSYNC_MUST_CHECK;

void crypt_random(void *buf, size_t len);
uint32_t crypt_random_u32(void);
void crypt_wipe(void *buf, size_t len);
/* 1 when the `len` bytes at a and b are equal, else 0; constant time. */
int crypt_equal(const void *a, const void *b, size_t len);

/* Lower-case hex of in[0..n) into out (2n + 1 bytes, NUL-terminated). */
void crypt_hex_encode(char *out, const uint8_t *in, size_t n);
/* Exactly 2n hex digits (either case) in in[0..inlen) into out[0..n).
 * Returns SIMSYNC_OK, or SIMSYNC_EINVAL for any other length or a
 * character that is not a hex digit (out is then undefined). */
int crypt_hex_decode(uint8_t *out, size_t n, const char *in, size_t inlen);

/* BLAKE2b. outlen in 16..64, keylen 0 (unkeyed) or 16..64. */
int crypt_hash(uint8_t *out, size_t outlen, const void *in, size_t inlen,
               const uint8_t *key, size_t keylen);

struct crypt_hash_state {
    _Alignas(64) unsigned char opaque[384]; /* crypto_generichash_state */
};
int crypt_hash_init(struct crypt_hash_state *st, size_t outlen,
                    const uint8_t *key, size_t keylen);
int crypt_hash_update(struct crypt_hash_state *st, const void *in,
                      size_t inlen);
int crypt_hash_final(struct crypt_hash_state *st, uint8_t *out, size_t outlen);

/* X25519. crypt_x25519 fails with SIMSYNC_ECRYPTO when the result is all
 * zero (low-order peer key). */
int crypt_x25519_base(uint8_t pub[32], const uint8_t sec[32]);
int crypt_x25519(uint8_t shared[32], const uint8_t sec[32],
                 const uint8_t pub[32]) SIMSYNC_MUST_CHECK;

/* ChaCha20-Poly1305 (IETF) with the Noise nonce: 4 zero bytes then the
 * 64-bit counter little-endian. `ct` must hold ptlen + 16 bytes; `pt` for
 * decrypt ctlen - 16. In-place operation (ct == pt) is allowed. */
int crypt_aead_encrypt(uint8_t *ct, const uint8_t *pt, size_t ptlen,
                       const uint8_t *ad, size_t adlen, uint64_t nonce,
                       const uint8_t key[32]);
int crypt_aead_decrypt(uint8_t *pt, const uint8_t *ct, size_t ctlen,
                       const uint8_t *ad, size_t adlen, uint64_t nonce,
                       const uint8_t key[32]) SIMSYNC_MUST_CHECK;

/* XChaCha20-Poly1305 with a random nonce, for data at rest and item
 * payloads: out = nonce(24) | ciphertext | tag(16); `out` must hold
 * len + CRYPT_SEAL_OVERHEAD bytes. crypt_unseal writes inlen -
 * CRYPT_SEAL_OVERHEAD bytes. */
int crypt_seal(uint8_t *out, const void *pt, size_t len, const uint8_t *ad,
               size_t adlen, const uint8_t key[32]);
int crypt_unseal(uint8_t *out, const uint8_t *in, size_t inlen,
                 const uint8_t *ad, size_t adlen,
                 const uint8_t key[32]) SIMSYNC_MUST_CHECK;

/* Bulk AEAD: messages of 1 KiB or more (plaintext and associated data)
 * are encrypted and checked by OpenSSL's faster ChaCha20-Poly1305 code,
 * shorter ones by libsodium; the bytes are the same either way. 0 sends
 * every message to libsodium (for tests and benchmarks); returns the
 * previous setting. Thread-safe. SIMSYNC_CRYPT_BULK=0 in the environment
 * keeps OpenSSL out for the whole process. */
int crypt_set_bulk(int on);
/* 1 when the OpenSSL path is in use for bulk messages (OpenSSL has the
 * cipher, the environment did not turn it off, crypt_set_bulk(0) was not
 * called), else 0. */
int crypt_bulk_active(void);
/* How many bulk messages went to libsodium because OpenSSL could not
 * start on them (out of memory for its context) since the process began:
 * the same bytes, only slower. */
unsigned long crypt_bulk_fallbacks(void);

/* Ed25519 node keys and their X25519 forms (for Noise and sealed boxes). */
int crypt_sign_keypair(uint8_t pk[32], uint8_t sk[64]);
int crypt_sign_seed_keypair(uint8_t pk[32], uint8_t sk[64],
                            const uint8_t seed[32]);
int crypt_sign(uint8_t sig[64], const void *m, size_t mlen,
               const uint8_t sk[64]);
int crypt_verify(const uint8_t sig[64], const void *m, size_t mlen,
                 const uint8_t pk[32]) SIMSYNC_MUST_CHECK;
int crypt_sign_pk_to_x25519(uint8_t xpk[32], const uint8_t pk[32]);
int crypt_sign_sk_to_x25519(uint8_t xsk[32], const uint8_t sk[64]);

/* Sealed box (anonymous sender) to an X25519 key; out holds mlen + 48. */
int crypt_box_seal(uint8_t *out, const void *m, size_t mlen,
                   const uint8_t xpk[32]);
int crypt_box_open(uint8_t *out, const uint8_t *c, size_t clen,
                   const uint8_t xpk[32],
                   const uint8_t xsk[32]) SIMSYNC_MUST_CHECK;

/* Argon2id. _str makes a self-describing hash string for storage;
 * _verify returns SIMSYNC_OK or SIMSYNC_EPASSWORD; _key derives a key. */
int crypt_pwhash_str(char out[CRYPT_PWHASH_STR_BYTES], const char *pw,
                     size_t pwlen);
int crypt_pwhash_verify(const char *str, const char *pw,
                        size_t pwlen) SIMSYNC_MUST_CHECK;
int crypt_pwhash_key(uint8_t key[32], const char *pw, size_t pwlen,
                     const uint8_t salt[CRYPT_SALT_BYTES]);

/* Subkey `id` of a 32-byte master key in context `ctx` (8 chars). */
int crypt_kdf(uint8_t *out, size_t outlen, uint64_t id, const char ctx[8],
              const uint8_t key[32]);

#endif /* SIMSYNC_CRYPT_H */
