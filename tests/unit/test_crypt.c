/* test_crypt.c -- the two AEAD back ends of crypt.c give the same bytes.
 *
 * Messages of 1 KiB or more go to OpenSSL, shorter ones to libsodium;
 * crypt_set_bulk(0) sends everything to libsodium, which is the reference
 * here. Every size around the switch, with and without associated data,
 * in place and not, must encrypt to the same bytes and open across the
 * two; a changed byte must fail on both, and a failed open must hand out
 * no plaintext. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "crypt.h"

static const size_t sizes[] = {0,    1,    15,   16,   63,   64,        1007,
                               1008, 1023, 1024, 1025, 4109, 65536,     65537,
                               1u << 20, (1u << 20) + 5};
static const size_t adsizes[] = {0, 13, 1024, 2048};

static uint8_t *
random_buf(size_t n)
{
    uint8_t *b = malloc(n ? n : 1);
    assert_non_null(b);
    crypt_random(b, n);
    return b;
}

static int
all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return 0;
    return 1;
}

static int
setup(void **state)
{
    (void)state;
    return crypt_init() == SIMSYNC_OK ? 0 : -1;
}

static void
openssl_path_is_active(void **state)
{
    (void)state;
    assert_int_equal(crypt_bulk_active(), 1);
    assert_int_equal(crypt_set_bulk(0), 1);
    assert_int_equal(crypt_bulk_active(), 0);
    assert_int_equal(crypt_set_bulk(1), 0);
    assert_int_equal(crypt_bulk_active(), 1);
}

/* ChaCha20-Poly1305 with the Noise nonce, both back ends. */
static void
aead_backends_agree(void **state)
{
    uint8_t key[32];

    (void)state;
    crypt_random(key, sizeof(key));
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        for (size_t j = 0; j < sizeof(adsizes) / sizeof(adsizes[0]); j++) {
            size_t n = sizes[i], adn = adsizes[j];
            uint64_t nonce = ((uint64_t)i << 40) | j;
            uint8_t *pt = random_buf(n), *ad = random_buf(adn);
            uint8_t *ref = malloc(n + 16), *bulk = malloc(n + 16);
            uint8_t *back = malloc(n + 1);
            assert_true(ref != NULL && bulk != NULL && back != NULL);

            crypt_set_bulk(0);
            assert_int_equal(crypt_aead_encrypt(ref, pt, n, ad, adn, nonce, key),
                             SIMSYNC_OK);
            crypt_set_bulk(1);
            assert_int_equal(
                crypt_aead_encrypt(bulk, pt, n, ad, adn, nonce, key),
                SIMSYNC_OK);
            assert_memory_equal(ref, bulk, n + 16);

            /* Open each back end's output with the other. */
            assert_int_equal(
                crypt_aead_decrypt(back, ref, n + 16, ad, adn, nonce, key),
                SIMSYNC_OK);
            assert_memory_equal(back, pt, n);
            crypt_set_bulk(0);
            assert_int_equal(
                crypt_aead_decrypt(back, bulk, n + 16, ad, adn, nonce, key),
                SIMSYNC_OK);
            assert_memory_equal(back, pt, n);
            crypt_set_bulk(1);

            /* A changed byte of the text, the tag or the associated data,
             * or another nonce: refused, and nothing of it handed out. */
            for (int k = 0; k < 3; k++) {
                size_t at;
                uint8_t *victim;
                if (k == 0 && n > 0) {
                    victim = bulk;
                    at = n / 2;
                } else if (k == 1) {
                    victim = bulk;
                    at = n + 15;
                } else if (k == 2 && adn > 0) {
                    victim = ad;
                    at = adn - 1;
                } else {
                    continue;
                }
                victim[at] ^= 0x40;
                memset(back, 0xA5, n + 1);
                assert_int_equal(
                    crypt_aead_decrypt(back, bulk, n + 16, ad, adn, nonce, key),
                    SIMSYNC_ECRYPTO);
                if (n + adn >= 1024)
                    assert_true(all_zero(back, n));
                victim[at] ^= 0x40;
            }
            assert_int_equal(crypt_aead_decrypt(back, bulk, n + 16, ad, adn,
                                                nonce + 1, key),
                             SIMSYNC_ECRYPTO);

            /* In place: encrypt over the plaintext, open over the text. */
            uint8_t *inplace = malloc(n + 16);
            assert_non_null(inplace);
            memcpy(inplace, pt, n);
            assert_int_equal(crypt_aead_encrypt(inplace, inplace, n, ad, adn,
                                                nonce, key),
                             SIMSYNC_OK);
            assert_memory_equal(inplace, ref, n + 16);
            assert_int_equal(crypt_aead_decrypt(inplace, inplace, n + 16, ad,
                                                adn, nonce, key),
                             SIMSYNC_OK);
            assert_memory_equal(inplace, pt, n);

            free(inplace);
            free(pt);
            free(ad);
            free(ref);
            free(bulk);
            free(back);
        }
    }
}

/* XChaCha20-Poly1305 (data at rest): the nonce is random, so each side
 * opens what the other sealed. */
static void
seal_backends_agree(void **state)
{
    uint8_t key[32];

    (void)state;
    crypt_random(key, sizeof(key));
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i], adn = i % 2 ? 32 : 0;
        uint8_t *pt = random_buf(n), *ad = random_buf(adn);
        uint8_t *a = malloc(n + CRYPT_SEAL_OVERHEAD);
        uint8_t *b = malloc(n + CRYPT_SEAL_OVERHEAD), *back = malloc(n + 1);
        assert_true(a != NULL && b != NULL && back != NULL);

        crypt_set_bulk(0);
        assert_int_equal(crypt_seal(a, pt, n, ad, adn, key), SIMSYNC_OK);
        crypt_set_bulk(1);
        assert_int_equal(crypt_seal(b, pt, n, ad, adn, key), SIMSYNC_OK);
        assert_int_equal(
            crypt_unseal(back, a, n + CRYPT_SEAL_OVERHEAD, ad, adn, key),
            SIMSYNC_OK);
        assert_memory_equal(back, pt, n);
        crypt_set_bulk(0);
        assert_int_equal(
            crypt_unseal(back, b, n + CRYPT_SEAL_OVERHEAD, ad, adn, key),
            SIMSYNC_OK);
        assert_memory_equal(back, pt, n);

        /* A changed nonce byte (the HChaCha20 half and the IETF half) or
         * text byte fails on both back ends. */
        for (int on = 0; on < 2; on++) {
            crypt_set_bulk(on);
            size_t at[] = {3, 20, CRYPT_SEAL_NONCE_BYTES + n / 2};
            for (size_t k = 0; k < 3; k++) {
                if (k == 2 && n == 0)
                    continue;
                a[at[k]] ^= 1;
                assert_int_equal(crypt_unseal(back, a, n + CRYPT_SEAL_OVERHEAD,
                                              ad, adn, key),
                                 SIMSYNC_ECRYPTO);
                a[at[k]] ^= 1;
            }
        }
        crypt_set_bulk(1);
        free(pt);
        free(ad);
        free(a);
        free(b);
        free(back);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(openssl_path_is_active),
        cmocka_unit_test(aead_backends_agree),
        cmocka_unit_test(seal_backends_agree),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
