/* crypt.c -- libsodium behind crypt.h. Nothing else includes <sodium.h>. */
#include <string.h>
#include <sodium.h>

#include "crypt.h"

_Static_assert(sizeof(struct crypt_hash_state) >=
                   sizeof(crypto_generichash_state),
               "crypt_hash_state too small");

int
crypt_init(void)
{
    return sodium_init() < 0 ? SIMSYNC_EIO : SIMSYNC_OK;
}

void
crypt_random(void *buf, size_t len)
{
    randombytes_buf(buf, len);
}

uint32_t
crypt_random_u32(void)
{
    return randombytes_random();
}

void
crypt_wipe(void *buf, size_t len)
{
    sodium_memzero(buf, len);
}

int
crypt_equal(const void *a, const void *b, size_t len)
{
    return sodium_memcmp(a, b, len) == 0;
}

void
crypt_hex_encode(char *out, const uint8_t *in, size_t n)
{
    (void)sodium_bin2hex(out, 2 * n + 1, in, n);
}

int
crypt_hex_decode(uint8_t *out, size_t n, const char *in, size_t inlen)
{
    size_t got = 0;
    const char *end = NULL;

    if (inlen != 2 * n ||
        sodium_hex2bin(out, n, in, inlen, NULL, &got, &end) != 0 || got != n ||
        end != in + inlen)
        return SIMSYNC_EINVAL;
    return SIMSYNC_OK;
}

int
crypt_hash(uint8_t *out, size_t outlen, const void *in, size_t inlen,
           const uint8_t *key, size_t keylen)
{
    if (outlen < crypto_generichash_BYTES_MIN ||
        outlen > crypto_generichash_BYTES_MAX ||
        (keylen != 0 && (keylen < crypto_generichash_KEYBYTES_MIN ||
                         keylen > crypto_generichash_KEYBYTES_MAX)))
        return SIMSYNC_EINVAL;
    if (crypto_generichash(out, outlen, in, inlen, key, keylen) != 0)
        return SIMSYNC_EINVAL;
    return SIMSYNC_OK;
}

int
crypt_hash_init(struct crypt_hash_state *st, size_t outlen, const uint8_t *key,
                size_t keylen)
{
    if (crypto_generichash_init((crypto_generichash_state *)st->opaque, key,
                                keylen, outlen) != 0)
        return SIMSYNC_EINVAL;
    return SIMSYNC_OK;
}

int
crypt_hash_update(struct crypt_hash_state *st, const void *in, size_t inlen)
{
    if (crypto_generichash_update((crypto_generichash_state *)st->opaque, in,
                                  inlen) != 0)
        return SIMSYNC_EINVAL;
    return SIMSYNC_OK;
}

int
crypt_hash_final(struct crypt_hash_state *st, uint8_t *out, size_t outlen)
{
    if (crypto_generichash_final((crypto_generichash_state *)st->opaque, out,
                                 outlen) != 0)
        return SIMSYNC_EINVAL;
    return SIMSYNC_OK;
}

int
crypt_x25519_base(uint8_t pub[32], const uint8_t sec[32])
{
    return crypto_scalarmult_base(pub, sec) == 0 ? SIMSYNC_OK : SIMSYNC_ECRYPTO;
}

int
crypt_x25519(uint8_t shared[32], const uint8_t sec[32], const uint8_t pub[32])
{
    /* libsodium refuses low-order points (all-zero output). */
    if (crypto_scalarmult(shared, sec, pub) != 0) {
        sodium_memzero(shared, 32);
        return SIMSYNC_ECRYPTO;
    }
    return SIMSYNC_OK;
}

static void
noise_nonce(uint8_t n[12], uint64_t counter)
{
    memset(n, 0, 4);
    for (int i = 0; i < 8; i++)
        n[4 + i] = (uint8_t)(counter >> (8 * i));
}

int
crypt_aead_encrypt(uint8_t *ct, const uint8_t *pt, size_t ptlen,
                   const uint8_t *ad, size_t adlen, uint64_t nonce,
                   const uint8_t key[32])
{
    uint8_t n[12];
    unsigned long long clen;

    noise_nonce(n, nonce);
    if (crypto_aead_chacha20poly1305_ietf_encrypt(ct, &clen, pt, ptlen, ad,
                                                  adlen, NULL, n, key) != 0)
        return SIMSYNC_ECRYPTO;
    return SIMSYNC_OK;
}

int
crypt_aead_decrypt(uint8_t *pt, const uint8_t *ct, size_t ctlen,
                   const uint8_t *ad, size_t adlen, uint64_t nonce,
                   const uint8_t key[32])
{
    uint8_t n[12];
    unsigned long long plen;

    if (ctlen < CRYPT_TAG_BYTES)
        return SIMSYNC_ECRYPTO;
    noise_nonce(n, nonce);
    if (crypto_aead_chacha20poly1305_ietf_decrypt(pt, &plen, NULL, ct, ctlen,
                                                  ad, adlen, n, key) != 0)
        return SIMSYNC_ECRYPTO;
    return SIMSYNC_OK;
}

int
crypt_seal(uint8_t *out, const void *pt, size_t len, const uint8_t *ad,
           size_t adlen, const uint8_t key[32])
{
    unsigned long long clen;

    randombytes_buf(out, CRYPT_SEAL_NONCE_BYTES);
    if (crypto_aead_xchacha20poly1305_ietf_encrypt(out + CRYPT_SEAL_NONCE_BYTES,
                                                   &clen, pt, len, ad, adlen,
                                                   NULL, out, key) != 0)
        return SIMSYNC_ECRYPTO;
    return SIMSYNC_OK;
}

int
crypt_unseal(uint8_t *out, const uint8_t *in, size_t inlen, const uint8_t *ad,
             size_t adlen, const uint8_t key[32])
{
    unsigned long long plen;

    if (inlen < CRYPT_SEAL_OVERHEAD)
        return SIMSYNC_ECRYPTO;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            out, &plen, NULL, in + CRYPT_SEAL_NONCE_BYTES,
            inlen - CRYPT_SEAL_NONCE_BYTES, ad, adlen, in, key) != 0)
        return SIMSYNC_ECRYPTO;
    return SIMSYNC_OK;
}

int
crypt_sign_keypair(uint8_t pk[32], uint8_t sk[64])
{
    return crypto_sign_keypair(pk, sk) == 0 ? SIMSYNC_OK : SIMSYNC_ECRYPTO;
}

int
crypt_sign_seed_keypair(uint8_t pk[32], uint8_t sk[64], const uint8_t seed[32])
{
    return crypto_sign_seed_keypair(pk, sk, seed) == 0 ? SIMSYNC_OK
                                                       : SIMSYNC_ECRYPTO;
}

int
crypt_sign(uint8_t sig[64], const void *m, size_t mlen, const uint8_t sk[64])
{
    return crypto_sign_detached(sig, NULL, m, mlen, sk) == 0 ? SIMSYNC_OK
                                                             : SIMSYNC_ECRYPTO;
}

int
crypt_verify(const uint8_t sig[64], const void *m, size_t mlen,
             const uint8_t pk[32])
{
    return crypto_sign_verify_detached(sig, m, mlen, pk) == 0 ? SIMSYNC_OK
                                                              : SIMSYNC_ECRYPTO;
}

int
crypt_sign_pk_to_x25519(uint8_t xpk[32], const uint8_t pk[32])
{
    return crypto_sign_ed25519_pk_to_curve25519(xpk, pk) == 0 ? SIMSYNC_OK
                                                              : SIMSYNC_ECRYPTO;
}

int
crypt_sign_sk_to_x25519(uint8_t xsk[32], const uint8_t sk[64])
{
    return crypto_sign_ed25519_sk_to_curve25519(xsk, sk) == 0 ? SIMSYNC_OK
                                                              : SIMSYNC_ECRYPTO;
}

int
crypt_box_seal(uint8_t *out, const void *m, size_t mlen, const uint8_t xpk[32])
{
    return crypto_box_seal(out, m, mlen, xpk) == 0 ? SIMSYNC_OK
                                                   : SIMSYNC_ECRYPTO;
}

int
crypt_box_open(uint8_t *out, const uint8_t *c, size_t clen,
               const uint8_t xpk[32], const uint8_t xsk[32])
{
    if (clen < CRYPT_BOX_OVERHEAD)
        return SIMSYNC_ECRYPTO;
    return crypto_box_seal_open(out, c, clen, xpk, xsk) == 0 ? SIMSYNC_OK
                                                             : SIMSYNC_ECRYPTO;
}

int
crypt_pwhash_str(char out[CRYPT_PWHASH_STR_BYTES], const char *pw, size_t pwlen)
{
    _Static_assert(CRYPT_PWHASH_STR_BYTES == crypto_pwhash_STRBYTES,
                   "pwhash string size");
    if (crypto_pwhash_str_alg(out, pw, pwlen,
                              crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE,
                              crypto_pwhash_ALG_ARGON2ID13) != 0)
        return SIMSYNC_ENOMEM;
    return SIMSYNC_OK;
}

int
crypt_pwhash_verify(const char *str, const char *pw, size_t pwlen)
{
    if (memchr(str, '\0', CRYPT_PWHASH_STR_BYTES) == NULL)
        return SIMSYNC_EINVAL;
    return crypto_pwhash_str_verify(str, pw, pwlen) == 0 ? SIMSYNC_OK
                                                         : SIMSYNC_EPASSWORD;
}

int
crypt_pwhash_key(uint8_t key[32], const char *pw, size_t pwlen,
                 const uint8_t salt[CRYPT_SALT_BYTES])
{
    _Static_assert(CRYPT_SALT_BYTES == crypto_pwhash_SALTBYTES, "salt size");
    if (crypto_pwhash(key, 32, pw, pwlen, salt,
                      crypto_pwhash_OPSLIMIT_INTERACTIVE,
                      crypto_pwhash_MEMLIMIT_INTERACTIVE,
                      crypto_pwhash_ALG_ARGON2ID13) != 0)
        return SIMSYNC_ENOMEM;
    return SIMSYNC_OK;
}

int
crypt_kdf(uint8_t *out, size_t outlen, uint64_t id, const char ctx[8],
          const uint8_t key[32])
{
    if (crypto_kdf_derive_from_key(out, outlen, id, ctx, key) != 0)
        return SIMSYNC_EINVAL;
    return SIMSYNC_OK;
}
