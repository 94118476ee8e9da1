/* crypt.c -- libsodium behind crypt.h, with OpenSSL's libcrypto for the
 * bulk of the ChaCha20-Poly1305 work. Nothing else includes <sodium.h> or
 * an OpenSSL header.
 *
 * Why two libraries: libsodium 1.0.18 (Debian 12) runs ChaCha20-Poly1305
 * at about 1.4 GB/s on the development machine, OpenSSL 3.0's AVX2 and
 * AVX-512 code at about 3.5 GB/s; both compute RFC 8439's AEAD, so their
 * outputs are the same bytes. Messages of BULK_MIN bytes or more go to
 * OpenSSL (its per-call set-up costs more than libsodium's below that);
 * everything else, and every other primitive, stays with libsodium.
 * XChaCha20-Poly1305 is HChaCha20 (libsodium) then the IETF AEAD with the
 * subkey, as libsodium itself builds it. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <openssl/evp.h>

#include "crypt.h"

#define BULK_MIN 1024
/* Longest single EVP update: a multiple of the 64-byte ChaCha20 block. */
#define BULK_STEP (1u << 30)

static EVP_CIPHER *bulk_cipher; /* NULL: OpenSSL lacks it; use libsodium */
static pthread_once_t bulk_once = PTHREAD_ONCE_INIT;
static atomic_int bulk_enabled = 1;
static atomic_ulong bulk_fallbacks; /* see crypt_bulk_fallbacks */

_Static_assert(sizeof(struct crypt_hash_state) >=
                   sizeof(crypto_generichash_state),
               "crypt_hash_state too small");

int
crypt_init(void)
{
    return sodium_init() < 0 ? SIMSYNC_EIO : SIMSYNC_OK;
}

static void
bulk_fetch(void)
{
    const char *env = getenv("SIMSYNC_CRYPT_BULK");

    if (env == NULL || strcmp(env, "0") != 0)
        bulk_cipher = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
}

int
crypt_set_bulk(int on)
{
    return atomic_exchange(&bulk_enabled, on != 0);
}

int
crypt_bulk_active(void)
{
    pthread_once(&bulk_once, bulk_fetch);
    return bulk_cipher != NULL && atomic_load(&bulk_enabled);
}

unsigned long
crypt_bulk_fallbacks(void)
{
    return atomic_load(&bulk_fallbacks);
}

/* OpenSSL could not start on a message (no memory for its context):
 * count it; the caller hands the message to libsodium. */
static int
bulk_fell_back(void)
{
    atomic_fetch_add(&bulk_fallbacks, 1);
    return -1;
}

/* The OpenSSL cipher when a message of `len` bytes (plaintext and
 * associated data together) should go to it, else NULL. */
static const EVP_CIPHER *
bulk_for(size_t len)
{
    if (len < BULK_MIN || !atomic_load(&bulk_enabled))
        return NULL;
    pthread_once(&bulk_once, bulk_fetch);
    return bulk_cipher;
}

/* EVP updates over len bytes in steps that fit its int lengths; out NULL
 * feeds associated data. */
static int
bulk_update(EVP_CIPHER_CTX *c, uint8_t *out, const uint8_t *in, size_t len)
{
    while (len > 0) {
        int step = len > BULK_STEP ? (int)BULK_STEP : (int)len, got = 0;
        if (EVP_CipherUpdate(c, out, &got, in, step) != 1 ||
            (out != NULL && got != step))
            return -1;
        if (out != NULL)
            out += step;
        in += step;
        len -= (size_t)step;
    }
    return 0;
}

/* RFC 8439 AEAD through OpenSSL: ct = E(pt) | tag. Returns SIMSYNC_OK,
 * -1 when OpenSSL could not start (nothing written: the caller then uses
 * libsodium), or SIMSYNC_ECRYPTO when it failed after writing (in place,
 * the plaintext may be gone, so there is no falling back). */
static int
bulk_encrypt(const EVP_CIPHER *cipher, uint8_t *ct, const uint8_t *pt,
             size_t ptlen, const uint8_t *ad, size_t adlen,
             const uint8_t n[12], const uint8_t key[32])
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int got = 0, rc = -1;

    if (c == NULL)
        return bulk_fell_back();
    if (EVP_EncryptInit_ex2(c, cipher, key, n, NULL) == 1) {
        rc = bulk_update(c, NULL, ad, adlen) == 0 &&
                     bulk_update(c, ct, pt, ptlen) == 0 &&
                     EVP_EncryptFinal_ex(c, ct + ptlen, &got) == 1 &&
                     got == 0 &&
                     EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG,
                                         CRYPT_TAG_BYTES, ct + ptlen) == 1
                 ? SIMSYNC_OK
                 : SIMSYNC_ECRYPTO;
    }
    EVP_CIPHER_CTX_free(c);
    return rc == -1 ? bulk_fell_back() : rc;
}

/* Returns SIMSYNC_OK, SIMSYNC_ECRYPTO (forged, or OpenSSL failed after
 * writing: pt is zeroed), or -1 when OpenSSL could not start (nothing
 * written: the caller then uses libsodium, which answers the same). */
static int
bulk_decrypt(const EVP_CIPHER *cipher, uint8_t *pt, const uint8_t *ct,
             size_t ctlen, const uint8_t *ad, size_t adlen,
             const uint8_t n[12], const uint8_t key[32])
{
    size_t ptlen = ctlen - CRYPT_TAG_BYTES;
    uint8_t tag[CRYPT_TAG_BYTES];
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int got = 0, rc = -1;

    if (c == NULL)
        return bulk_fell_back();
    memcpy(tag, ct + ptlen, sizeof(tag));
    if (EVP_DecryptInit_ex2(c, cipher, key, n, NULL) == 1 &&
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, sizeof(tag), tag) == 1) {
        /* The plaintext is written before the tag is checked: wipe it
         * when the check fails, so no forged byte is ever handed out. */
        if (bulk_update(c, NULL, ad, adlen) == 0 &&
            bulk_update(c, pt, ct, ptlen) == 0 &&
            EVP_DecryptFinal_ex(c, pt + ptlen, &got) == 1 && got == 0) {
            rc = SIMSYNC_OK;
        } else {
            sodium_memzero(pt, ptlen);
            rc = SIMSYNC_ECRYPTO;
        }
    }
    EVP_CIPHER_CTX_free(c);
    return rc == -1 ? bulk_fell_back() : rc;
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

/* RFC 8439 ChaCha20-Poly1305 by whichever library is faster for the
 * size (plaintext and associated data); ct holds ptlen + 16 bytes. */
static int
ietf_encrypt(uint8_t *ct, const uint8_t *pt, size_t ptlen, const uint8_t *ad,
             size_t adlen, const uint8_t n[12], const uint8_t key[32])
{
    const EVP_CIPHER *cipher = bulk_for(ptlen + adlen);
    unsigned long long clen;

    if (cipher != NULL) {
        int rc = bulk_encrypt(cipher, ct, pt, ptlen, ad, adlen, n, key);
        if (rc != -1)
            return rc;
    }
    if (crypto_aead_chacha20poly1305_ietf_encrypt(ct, &clen, pt, ptlen, ad,
                                                  adlen, NULL, n, key) != 0)
        return SIMSYNC_ECRYPTO;
    return SIMSYNC_OK;
}

static int
ietf_decrypt(uint8_t *pt, const uint8_t *ct, size_t ctlen, const uint8_t *ad,
             size_t adlen, const uint8_t n[12], const uint8_t key[32])
{
    const EVP_CIPHER *cipher = bulk_for(ctlen - CRYPT_TAG_BYTES + adlen);
    unsigned long long plen;

    if (cipher != NULL) {
        int rc = bulk_decrypt(cipher, pt, ct, ctlen, ad, adlen, n, key);
        if (rc != -1)
            return rc;
    }
    if (crypto_aead_chacha20poly1305_ietf_decrypt(pt, &plen, NULL, ct, ctlen,
                                                  ad, adlen, n, key) != 0)
        return SIMSYNC_ECRYPTO;
    return SIMSYNC_OK;
}

int
crypt_aead_encrypt(uint8_t *ct, const uint8_t *pt, size_t ptlen,
                   const uint8_t *ad, size_t adlen, uint64_t nonce,
                   const uint8_t key[32])
{
    uint8_t n[12];

    noise_nonce(n, nonce);
    return ietf_encrypt(ct, pt, ptlen, ad, adlen, n, key);
}

int
crypt_aead_decrypt(uint8_t *pt, const uint8_t *ct, size_t ctlen,
                   const uint8_t *ad, size_t adlen, uint64_t nonce,
                   const uint8_t key[32])
{
    uint8_t n[12];

    if (ctlen < CRYPT_TAG_BYTES)
        return SIMSYNC_ECRYPTO;
    noise_nonce(n, nonce);
    return ietf_decrypt(pt, ct, ctlen, ad, adlen, n, key);
}

/* XChaCha20-Poly1305's subkey and IETF nonce from a 24-byte nonce. */
static void
xchacha_subkey(uint8_t sub[32], uint8_t n[12],
               const uint8_t nonce[CRYPT_SEAL_NONCE_BYTES],
               const uint8_t key[32])
{
    crypto_core_hchacha20(sub, nonce, key, NULL);
    memset(n, 0, 4);
    memcpy(n + 4, nonce + 16, 8);
}

int
crypt_seal(uint8_t *out, const void *pt, size_t len, const uint8_t *ad,
           size_t adlen, const uint8_t key[32])
{
    const EVP_CIPHER *cipher = bulk_for(len + adlen);
    uint8_t sub[32], n[12];
    unsigned long long clen;

    randombytes_buf(out, CRYPT_SEAL_NONCE_BYTES);
    if (cipher != NULL) {
        int rc;
        xchacha_subkey(sub, n, out, key);
        rc = bulk_encrypt(cipher, out + CRYPT_SEAL_NONCE_BYTES, pt, len, ad,
                          adlen, n, sub);
        sodium_memzero(sub, sizeof(sub));
        if (rc != -1)
            return rc;
    }
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
    const EVP_CIPHER *cipher;
    uint8_t sub[32], n[12];
    unsigned long long plen;

    if (inlen < CRYPT_SEAL_OVERHEAD)
        return SIMSYNC_ECRYPTO;
    cipher = bulk_for(inlen - CRYPT_SEAL_OVERHEAD + adlen);
    if (cipher != NULL) {
        int rc;
        xchacha_subkey(sub, n, in, key);
        rc = bulk_decrypt(cipher, out, in + CRYPT_SEAL_NONCE_BYTES,
                          inlen - CRYPT_SEAL_NONCE_BYTES, ad, adlen, n, sub);
        sodium_memzero(sub, sizeof(sub));
        if (rc != -1)
            return rc;
    }
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
