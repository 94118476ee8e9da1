/* test_blob.c -- the blob codec: round trips, raw versus zstd choice,
 * authentication of key, associated data and content, and the decoder's
 * defences against hostile frames (bombs, huge windows, truncation, lies
 * about the content size). Hostile frames are built byte by byte here, from
 * the zstd format specification (RFC 8878), and sealed with crypt_seal. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <time.h>

#include "blob.h"
#include "crypt.h"

#define MIB ((size_t)1024 * 1024)

static const uint8_t ad_chunk[] = "chunk-id-0001";
static const uint8_t ad_other[] = "chunk-id-0002";

static uint8_t key[32];

static int
setup(void **state)
{
    (void)state;
    if (crypt_init() != SIMSYNC_OK)
        return -1;
    crypt_random(key, sizeof(key));
    return 0;
}

/* `len` bytes of repetitive text: compresses well. */
static uint8_t *
text_buffer(size_t len)
{
    static const char line[] = "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Ada\r\n"
                               "TEL;TYPE=cell:+33 6 12 34 56 78\r\n"
                               "END:VCARD\r\n";
    uint8_t *buf = malloc(len > 0 ? len : 1);

    assert_non_null(buf);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)line[i % (sizeof(line) - 1)];
    return buf;
}

static double
seconds_since(const struct timespec *t0)
{
    struct timespec t1;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) +
           (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Seal flag | payload with the test key and ad_chunk, as blob_encode
 * would, so the decoder's checks after authentication can be reached. */
static uint8_t *
seal_inner(uint8_t flag, const uint8_t *payload, size_t plen, size_t *blen)
{
    uint8_t *inner = malloc(1 + plen);
    uint8_t *blob = malloc(1 + plen + CRYPT_SEAL_OVERHEAD);

    assert_non_null(inner);
    assert_non_null(blob);
    inner[0] = flag;
    if (plen > 0)
        memcpy(inner + 1, payload, plen);
    assert_int_equal(
        crypt_seal(blob, inner, 1 + plen, ad_chunk, sizeof(ad_chunk), key),
        SIMSYNC_OK);
    free(inner);
    *blen = 1 + plen + CRYPT_SEAL_OVERHEAD;
    return blob;
}

/* Open a blob made for ad_chunk: returns flag | payload (caller frees). */
static uint8_t *
unseal_inner(const uint8_t *blob, size_t blen, size_t *ilen)
{
    uint8_t *inner;

    assert_true(blen > CRYPT_SEAL_OVERHEAD);
    *ilen = blen - CRYPT_SEAL_OVERHEAD;
    inner = malloc(*ilen);
    assert_non_null(inner);
    assert_int_equal(
        crypt_unseal(inner, blob, blen, ad_chunk, sizeof(ad_chunk), key),
        SIMSYNC_OK);
    return inner;
}

/* A hand-made zstd frame, built into a fixed buffer. */
struct frame {
    uint8_t b[8192];
    size_t n;
};

static void
frame_put(struct frame *f, const void *p, size_t len)
{
    assert_true(f->n + len <= sizeof(f->b));
    memcpy(f->b + f->n, p, len);
    f->n += len;
}

/* Magic number, then a frame header descriptor and, when not single
 * segment, a window descriptor (windowLog = 10 + exponent). */
static void
frame_begin(struct frame *f, uint8_t fhd, int has_wd, unsigned exponent)
{
    static const uint8_t magic[4] = {0x28, 0xb5, 0x2f, 0xfd};
    uint8_t wd = (uint8_t)(exponent << 3);

    f->n = 0;
    frame_put(f, magic, sizeof(magic));
    frame_put(f, &fhd, 1);
    if (has_wd)
        frame_put(f, &wd, 1);
}

/* Block header: bit 0 last, bits 1-2 type (0 raw, 1 RLE), bits 3-23 size
 * (the regenerated size, for RLE), little endian. */
static void
frame_block(struct frame *f, int last, unsigned type, uint32_t size,
            const uint8_t *content, size_t clen)
{
    uint32_t h = (uint32_t)(last ? 1 : 0) | type << 1 | size << 3;
    uint8_t hb[3] = {(uint8_t)h, (uint8_t)(h >> 8), (uint8_t)(h >> 16)};

    frame_put(f, hb, sizeof(hb));
    frame_put(f, content, clen);
}

static void
round_trip_keeps_compressible_data_and_compresses_it(void **state)
{
    const size_t len = 200 * 1024;
    uint8_t *pt = text_buffer(len);
    uint8_t *blob, *back, *inner;
    size_t blen, backlen, ilen;

    (void)state;
    assert_int_equal(
        blob_encode(key, ad_chunk, sizeof(ad_chunk), pt, len, &blob, &blen),
        SIMSYNC_OK);
    assert_true(blen < len / 10);
    inner = unseal_inner(blob, blen, &ilen);
    assert_int_equal(inner[0], BLOB_FLAG_ZSTD);
    free(inner);

    assert_int_equal(blob_decode(key, ad_chunk, sizeof(ad_chunk), blob, blen,
                                 len, &back, &backlen),
                     SIMSYNC_OK);
    assert_int_equal(backlen, len);
    assert_memory_equal(back, pt, len);
    free(back);
    free(blob);
    free(pt);
}

static void
incompressible_data_is_stored_raw(void **state)
{
    const size_t len = 100 * 1024;
    uint8_t *pt = malloc(len);
    uint8_t *blob, *back, *inner;
    size_t blen, backlen, ilen;

    (void)state;
    assert_non_null(pt);
    crypt_random(pt, len);
    assert_int_equal(
        blob_encode(key, ad_chunk, sizeof(ad_chunk), pt, len, &blob, &blen),
        SIMSYNC_OK);
    assert_int_equal(blen, len + 1 + CRYPT_SEAL_OVERHEAD);
    assert_int_equal(blen, blob_max_encoded(len));
    inner = unseal_inner(blob, blen, &ilen);
    assert_int_equal(inner[0], BLOB_FLAG_RAW);
    assert_memory_equal(inner + 1, pt, len);
    free(inner);

    assert_int_equal(blob_decode(key, ad_chunk, sizeof(ad_chunk), blob, blen,
                                 len, &back, &backlen),
                     SIMSYNC_OK);
    assert_int_equal(backlen, len);
    assert_memory_equal(back, pt, len);
    free(back);
    free(blob);
    free(pt);
}

static void
tiny_and_empty_inputs_round_trip(void **state)
{
    static const uint8_t one[1] = {0x42};
    uint8_t *blob, *back;
    size_t blen, backlen;

    (void)state;
    assert_int_equal(blob_encode(key, NULL, 0, NULL, 0, &blob, &blen),
                     SIMSYNC_OK);
    assert_int_equal(blen, 1 + CRYPT_SEAL_OVERHEAD);
    assert_int_equal(blob_decode(key, NULL, 0, blob, blen, 0, &back, &backlen),
                     SIMSYNC_OK);
    assert_non_null(back);
    assert_int_equal(backlen, 0);
    free(back);
    free(blob);

    assert_int_equal(
        blob_encode(key, ad_chunk, sizeof(ad_chunk), one, 1, &blob, &blen),
        SIMSYNC_OK);
    assert_int_equal(blen, 2 + CRYPT_SEAL_OVERHEAD);
    assert_int_equal(blob_decode(key, ad_chunk, sizeof(ad_chunk), blob, blen, 1,
                                 &back, &backlen),
                     SIMSYNC_OK);
    assert_int_equal(backlen, 1);
    assert_int_equal(back[0], 0x42);
    free(back);
    free(blob);
}

static void
wrong_key_wrong_ad_or_flipped_bit_fail_authentication(void **state)
{
    const size_t len = 5000;
    uint8_t *pt = text_buffer(len);
    uint8_t other_key[32];
    uint8_t *blob, *back = (uint8_t *)1;
    size_t blen, backlen = 1, pos;
    const size_t positions[] = {0, 23, 24, 30, 0, 0};

    (void)state;
    memcpy(other_key, key, sizeof(key));
    other_key[31] ^= 0x01;
    assert_int_equal(
        blob_encode(key, ad_chunk, sizeof(ad_chunk), pt, len, &blob, &blen),
        SIMSYNC_OK);

    assert_int_equal(blob_decode(other_key, ad_chunk, sizeof(ad_chunk), blob,
                                 blen, len, &back, &backlen),
                     SIMSYNC_ECRYPTO);
    assert_null(back);
    assert_int_equal(backlen, 0);
    assert_int_equal(blob_decode(key, ad_other, sizeof(ad_other), blob, blen,
                                 len, &back, &backlen),
                     SIMSYNC_ECRYPTO);
    assert_int_equal(
        blob_decode(key, NULL, 0, blob, blen, len, &back, &backlen),
        SIMSYNC_ECRYPTO);

    /* One bit flipped in the nonce, the ciphertext or the tag. */
    for (size_t i = 0; i < sizeof(positions) / sizeof(positions[0]); i++) {
        pos = positions[i];
        if (i == 4)
            pos = blen / 2;
        if (i == 5)
            pos = blen - 1;
        blob[pos] ^= 0x10;
        assert_int_equal(blob_decode(key, ad_chunk, sizeof(ad_chunk), blob,
                                     blen, len, &back, &backlen),
                         SIMSYNC_ECRYPTO);
        blob[pos] ^= 0x10;
    }
    /* Cut short, even below the seal overhead. */
    assert_int_equal(blob_decode(key, ad_chunk, sizeof(ad_chunk), blob,
                                 blen - 1, len, &back, &backlen),
                     SIMSYNC_ECRYPTO);
    assert_int_equal(blob_decode(key, ad_chunk, sizeof(ad_chunk), blob,
                                 CRYPT_SEAL_OVERHEAD - 1, len, &back, &backlen),
                     SIMSYNC_ECRYPTO);
    /* Restored: decodes again. */
    assert_int_equal(blob_decode(key, ad_chunk, sizeof(ad_chunk), blob, blen,
                                 len, &back, &backlen),
                     SIMSYNC_OK);
    assert_memory_equal(back, pt, len);
    free(back);
    free(blob);
    free(pt);
}

static void
raw_blob_over_cap_is_too_big(void **state)
{
    const size_t len = 2000;
    uint8_t *pt = malloc(len);
    uint8_t *blob, *back;
    size_t blen, backlen;

    (void)state;
    assert_non_null(pt);
    crypt_random(pt, len);
    assert_int_equal(
        blob_encode(key, ad_chunk, sizeof(ad_chunk), pt, len, &blob, &blen),
        SIMSYNC_OK);
    assert_int_equal(blob_decode(key, ad_chunk, sizeof(ad_chunk), blob, blen,
                                 len - 1, &back, &backlen),
                     SIMSYNC_ETOOBIG);
    assert_null(back);
    assert_int_equal(blob_decode(key, ad_chunk, sizeof(ad_chunk), blob, blen,
                                 len, &back, &backlen),
                     SIMSYNC_OK);
    free(back);
    free(blob);
    free(pt);
}

static void
zstd_bomb_with_declared_size_is_refused_quickly(void **state)
{
    const size_t len = 64 * MIB;
    uint8_t *zeros = calloc(1, len);
    uint8_t *blob, *back, *inner;
    size_t blen, backlen, ilen;
    struct timespec t0;

    (void)state;
    assert_non_null(zeros);
    assert_int_equal(
        blob_encode(key, ad_chunk, sizeof(ad_chunk), zeros, len, &blob, &blen),
        SIMSYNC_OK);
    assert_true(blen < 64 * 1024);
    inner = unseal_inner(blob, blen, &ilen);
    assert_int_equal(inner[0], BLOB_FLAG_ZSTD);
    free(inner);

    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(blob_decode(key, ad_chunk, sizeof(ad_chunk), blob, blen,
                                 MIB, &back, &backlen),
                     SIMSYNC_ETOOBIG);
    /* Refused from the header, before any decompression. */
    assert_true(seconds_since(&t0) < 0.5);
    assert_null(back);
    assert_int_equal(backlen, 0);

    /* The same blob is fine for a caller that accepts 64 MiB. */
    assert_int_equal(blob_decode(key, ad_chunk, sizeof(ad_chunk), blob, blen,
                                 len, &back, &backlen),
                     SIMSYNC_OK);
    assert_int_equal(backlen, len);
    assert_memory_equal(back, zeros, len);
    free(back);
    free(blob);
    free(zeros);
}

/* A frame with no declared size: 512 RLE blocks of 128 KiB = 64 MiB of
 * 0xAA from about 2 KiB of input. */
static void
build_rle_bomb(struct frame *f)
{
    static const uint8_t byte = 0xaa;
    const unsigned nblocks = 512;

    /* FHD 0: no content size, not single segment, no checksum, no dict;
     * window 2^17 (exponent 7). */
    frame_begin(f, 0x00, 1, 7);
    for (unsigned i = 0; i < nblocks; i++)
        frame_block(f, i + 1 == nblocks, 1, 128 * 1024, &byte, 1);
}

static void
zstd_bomb_without_declared_size_stops_at_cap(void **state)
{
    struct frame f;
    uint8_t *blob, *back;
    size_t blen, backlen;
    struct timespec t0;

    (void)state;
    build_rle_bomb(&f);
    blob = seal_inner(BLOB_FLAG_ZSTD, f.b, f.n, &blen);

    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(blob_decode(key, ad_chunk, sizeof(ad_chunk), blob, blen,
                                 MIB, &back, &backlen),
                     SIMSYNC_ETOOBIG);
    assert_true(seconds_since(&t0) < 1.0);
    assert_null(back);

    /* Control: the frame is well formed, and expands to 64 MiB. */
    assert_int_equal(blob_decode(key, ad_chunk, sizeof(ad_chunk), blob, blen,
                                 64 * MIB, &back, &backlen),
                     SIMSYNC_OK);
    assert_int_equal(backlen, 64 * MIB);
    assert_int_equal(back[0], 0xaa);
    assert_int_equal(back[backlen - 1], 0xaa);
    free(back);
    free(blob);
}

static void
frame_asking_for_2gib_window_is_rejected(void **state)
{
    static const uint8_t hello[5] = {'h', 'e', 'l', 'l', 'o'};
    struct frame f;
    uint8_t *blob, *back;
    size_t blen, backlen;

    (void)state;
    /* Window 2^31 (exponent 21), one raw block. */
    frame_begin(&f, 0x00, 1, 21);
    frame_block(&f, 1, 0, sizeof(hello), hello, sizeof(hello));
    blob = seal_inner(BLOB_FLAG_ZSTD, f.b, f.n, &blen);
    assert_int_equal(blob_decode(key, ad_chunk, sizeof(ad_chunk), blob, blen,
                                 MIB, &back, &backlen),
                     SIMSYNC_ETOOBIG);
    assert_null(back);
    free(blob);

    /* Just over the limit: 2^27 + 2^24 (exponent 17, mantissa 1). */
    frame_begin(&f, 0x00, 0, 0);
    {
        uint8_t wd = (uint8_t)(17 << 3 | 1);

        frame_put(&f, &wd, 1);
    }
    frame_block(&f, 1, 0, sizeof(hello), hello, sizeof(hello));
    blob = seal_inner(BLOB_FLAG_ZSTD, f.b, f.n, &blen);
    assert_int_equal(blob_decode(key, ad_chunk, sizeof(ad_chunk), blob, blen,
                                 MIB, &back, &backlen),
                     SIMSYNC_ETOOBIG);
    free(blob);

    /* Control: the same frame with the largest accepted window. */
    frame_begin(&f, 0x00, 1, BLOB_WINDOW_LOG_MAX - 10);
    frame_block(&f, 1, 0, sizeof(hello), hello, sizeof(hello));
    blob = seal_inner(BLOB_FLAG_ZSTD, f.b, f.n, &blen);
    assert_int_equal(blob_decode(key, ad_chunk, sizeof(ad_chunk), blob, blen,
                                 MIB, &back, &backlen),
                     SIMSYNC_OK);
    assert_int_equal(backlen, sizeof(hello));
    assert_memory_equal(back, hello, sizeof(hello));
    free(back);
    free(blob);
}

static void
truncated_or_padded_frame_is_malformed(void **state)
{
    const size_t len = 100 * 1024;
    uint8_t *pt = text_buffer(len);
    uint8_t *blob, *inner, *bad, *back;
    size_t blen, ilen, badlen, backlen;
    const size_t cuts[] = {1, 3, 10};

    (void)state;
    assert_int_equal(
        blob_encode(key, ad_chunk, sizeof(ad_chunk), pt, len, &blob, &blen),
        SIMSYNC_OK);
    inner = unseal_inner(blob, blen, &ilen);
    assert_int_equal(inner[0], BLOB_FLAG_ZSTD);
    assert_true(ilen > 20);

    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        bad =
            seal_inner(BLOB_FLAG_ZSTD, inner + 1, ilen - 1 - cuts[i], &badlen);
        assert_int_equal(blob_decode(key, ad_chunk, sizeof(ad_chunk), bad,
                                     badlen, len, &back, &backlen),
                         SIMSYNC_EPROTO);
        assert_null(back);
        free(bad);
    }
    /* Header only, and less than a header. */
    bad = seal_inner(BLOB_FLAG_ZSTD, inner + 1, 3, &badlen);
    assert_int_equal(blob_decode(key, ad_chunk, sizeof(ad_chunk), bad, badlen,
                                 len, &back, &backlen),
                     SIMSYNC_EPROTO);
    free(bad);
    bad = seal_inner(BLOB_FLAG_ZSTD, NULL, 0, &badlen);
    assert_int_equal(blob_decode(key, ad_chunk, sizeof(ad_chunk), bad, badlen,
                                 len, &back, &backlen),
                     SIMSYNC_EPROTO);
    free(bad);

    /* A second copy of the frame after the first: not one frame. */
    {
        size_t plen = 2 * (ilen - 1);
        uint8_t *two = malloc(plen);

        assert_non_null(two);
        memcpy(two, inner + 1, ilen - 1);
        memcpy(two + ilen - 1, inner + 1, ilen - 1);
        bad = seal_inner(BLOB_FLAG_ZSTD, two, plen, &badlen);
        assert_int_equal(blob_decode(key, ad_chunk, sizeof(ad_chunk), bad,
                                     badlen, 2 * len, &back, &backlen),
                         SIMSYNC_EPROTO);
        free(bad);
        free(two);
    }

    /* The untouched payload, resealed, still decodes (control). */
    bad = seal_inner(BLOB_FLAG_ZSTD, inner + 1, ilen - 1, &badlen);
    assert_int_equal(blob_decode(key, ad_chunk, sizeof(ad_chunk), bad, badlen,
                                 len, &back, &backlen),
                     SIMSYNC_OK);
    assert_int_equal(backlen, len);
    free(back);
    free(bad);
    free(inner);
    free(blob);
    free(pt);
}

static void
frame_lying_about_its_size_is_malformed(void **state)
{
    static const uint8_t ten[10] = "0123456789";
    struct frame f;
    uint8_t fcs = 5;
    uint8_t *blob, *back;
    size_t blen, backlen;

    (void)state;
    /* Single segment, 1-byte content size 5, but 10 bytes of content. */
    frame_begin(&f, 0x20, 0, 0);
    frame_put(&f, &fcs, 1);
    frame_block(&f, 1, 0, sizeof(ten), ten, sizeof(ten));
    blob = seal_inner(BLOB_FLAG_ZSTD, f.b, f.n, &blen);
    assert_int_equal(blob_decode(key, ad_chunk, sizeof(ad_chunk), blob, blen,
                                 MIB, &back, &backlen),
                     SIMSYNC_EPROTO);
    free(blob);

    /* Control: the honest size decodes. */
    fcs = sizeof(ten);
    frame_begin(&f, 0x20, 0, 0);
    frame_put(&f, &fcs, 1);
    frame_block(&f, 1, 0, sizeof(ten), ten, sizeof(ten));
    blob = seal_inner(BLOB_FLAG_ZSTD, f.b, f.n, &blen);
    assert_int_equal(blob_decode(key, ad_chunk, sizeof(ad_chunk), blob, blen,
                                 MIB, &back, &backlen),
                     SIMSYNC_OK);
    assert_int_equal(backlen, sizeof(ten));
    assert_memory_equal(back, ten, sizeof(ten));
    free(back);
    free(blob);
}

static void
unknown_flag_empty_body_and_foreign_payload_are_malformed(void **state)
{
    static const uint8_t junk[16] = "not a zstd frame";
    static const uint8_t skippable[8] = {0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0};
    uint8_t *blob, *back;
    size_t blen, backlen;

    (void)state;
    blob = seal_inner(2, junk, sizeof(junk), &blen);
    assert_int_equal(blob_decode(key, ad_chunk, sizeof(ad_chunk), blob, blen,
                                 MIB, &back, &backlen),
                     SIMSYNC_EPROTO);
    free(blob);

    blob = seal_inner(BLOB_FLAG_ZSTD, junk, sizeof(junk), &blen);
    assert_int_equal(blob_decode(key, ad_chunk, sizeof(ad_chunk), blob, blen,
                                 MIB, &back, &backlen),
                     SIMSYNC_EPROTO);
    free(blob);

    blob = seal_inner(BLOB_FLAG_ZSTD, skippable, sizeof(skippable), &blen);
    assert_int_equal(blob_decode(key, ad_chunk, sizeof(ad_chunk), blob, blen,
                                 MIB, &back, &backlen),
                     SIMSYNC_EPROTO);
    free(blob);

    /* A sealed empty message: not even a flag byte. */
    blob = malloc(CRYPT_SEAL_OVERHEAD);
    assert_non_null(blob);
    assert_int_equal(crypt_seal(blob, NULL, 0, ad_chunk, sizeof(ad_chunk), key),
                     SIMSYNC_OK);
    assert_int_equal(blob_decode(key, ad_chunk, sizeof(ad_chunk), blob,
                                 CRYPT_SEAL_OVERHEAD, MIB, &back, &backlen),
                     SIMSYNC_EPROTO);
    assert_null(back);
    free(blob);
}

static void
bad_arguments_are_rejected(void **state)
{
    static const uint8_t pt[4] = {1, 2, 3, 4};
    uint8_t *blob = (uint8_t *)1;
    size_t blen = 1;

    (void)state;
    assert_int_equal(blob_max_encoded(SIZE_MAX), 0);
    assert_int_equal(blob_max_encoded(10), 11 + CRYPT_SEAL_OVERHEAD);
    assert_int_equal(blob_encode(NULL, NULL, 0, pt, 4, &blob, &blen),
                     SIMSYNC_EINVAL);
    assert_null(blob);
    assert_int_equal(blen, 0);
    assert_int_equal(blob_encode(key, NULL, 3, pt, 4, &blob, &blen),
                     SIMSYNC_EINVAL);
    assert_int_equal(blob_encode(key, NULL, 0, NULL, 4, &blob, &blen),
                     SIMSYNC_EINVAL);
    assert_int_equal(blob_encode(key, NULL, 0, pt, 4, NULL, &blen),
                     SIMSYNC_EINVAL);
    assert_int_equal(blob_decode(key, NULL, 0, NULL, 4, 10, &blob, &blen),
                     SIMSYNC_EINVAL);
    assert_int_equal(blob_decode(key, NULL, 0, pt, 4, 10, &blob, NULL),
                     SIMSYNC_EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_keeps_compressible_data_and_compresses_it),
        cmocka_unit_test(incompressible_data_is_stored_raw),
        cmocka_unit_test(tiny_and_empty_inputs_round_trip),
        cmocka_unit_test(wrong_key_wrong_ad_or_flipped_bit_fail_authentication),
        cmocka_unit_test(raw_blob_over_cap_is_too_big),
        cmocka_unit_test(zstd_bomb_with_declared_size_is_refused_quickly),
        cmocka_unit_test(zstd_bomb_without_declared_size_stops_at_cap),
        cmocka_unit_test(frame_asking_for_2gib_window_is_rejected),
        cmocka_unit_test(truncated_or_padded_frame_is_malformed),
        cmocka_unit_test(frame_lying_about_its_size_is_malformed),
        cmocka_unit_test(
            unknown_flag_empty_body_and_foreign_payload_are_malformed),
        cmocka_unit_test(bad_arguments_are_rejected),
    };

    return cmocka_run_group_tests(tests, setup, NULL);
}
