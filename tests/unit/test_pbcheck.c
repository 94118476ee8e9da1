/* test_pbcheck.c -- the door check for decoded protobuf messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pbcheck.h"
#include "simsync.pb-c.h"

/* A ChangeBatch envelope whose one version carries `extra` (raw field
 * bytes) appended to its encoding. */
static Simsync__Envelope *
batch_with(const uint8_t *extra, size_t elen)
{
    Simsync__Dot dot = SIMSYNC__DOT__INIT, *dots[1] = {&dot};
    Simsync__VersionVector vv = SIMSYNC__VERSION_VECTOR__INIT;
    Simsync__Version v = SIMSYNC__VERSION__INIT;
    uint8_t vbuf[256], buf[512];
    size_t vlen, len = 0;

    dot.replica = 7;
    dot.counter = 1;
    vv.entries = dots;
    vv.n_entries = 1;
    v.vv = &vv;
    v.size = 3;
    vlen = simsync__version__pack(&v, vbuf);
    if (elen > 0) /* memcpy from NULL is undefined even for 0 bytes */
        memcpy(vbuf + vlen, extra, elen);
    vlen += elen;
    /* Envelope field 8 (batch) { ChangeBatch field 2 (changes) { Change
     * field 3 (version) { the version bytes } } }, lengths < 128. */
    buf[len++] = 0x42; /* field 8, length-delimited */
    buf[len++] = (uint8_t)(vlen + 4);
    buf[len++] = 0x12; /* field 2 */
    buf[len++] = (uint8_t)(vlen + 2);
    buf[len++] = 0x1a; /* field 3 */
    buf[len++] = (uint8_t)vlen;
    memcpy(buf + len, vbuf, vlen);
    len += vlen;
    return simsync__envelope__unpack(NULL, len, buf);
}

static void
test_clean_message_passes(void **state)
{
    Simsync__Envelope *e = batch_with(NULL, 0);

    (void)state;
    assert_non_null(e);
    assert_int_equal(e->msg_case, SIMSYNC__ENVELOPE__MSG_BATCH);
    assert_int_equal(pb_decoded_ok(&e->base), 1);
    simsync__envelope__free_unpacked(e, NULL);
}

static void
test_unknown_field_kept(void **state)
{
    /* Field 99, varint 1: unknown but valid, kept and accepted. */
    static const uint8_t f99[] = {0x98, 0x06, 0x01};
    Simsync__Envelope *e = batch_with(f99, sizeof(f99));

    (void)state;
    assert_non_null(e);
    assert_int_equal(e->batch->changes[0]->version->base.n_unknown_fields, 1);
    assert_int_equal(pb_decoded_ok(&e->base), 1);
    simsync__envelope__free_unpacked(e, NULL);
}

static void
test_field_zero_deep_refused(void **state)
{
    /* Tag 0 written as two varint bytes: protobuf-c accepts it. */
    static const uint8_t f0[] = {0x80, 0x00, 0x00};
    Simsync__Envelope *e = batch_with(f0, sizeof(f0));

    (void)state;
    assert_non_null(e);
    assert_int_equal(pb_decoded_ok(&e->base), 0);
    simsync__envelope__free_unpacked(e, NULL);
}

static void
test_field_zero_top_refused(void **state)
{
    static const uint8_t top[] = {0x80, 0x00, 0x00};
    Simsync__Envelope *e = simsync__envelope__unpack(NULL, sizeof(top), top);

    (void)state;
    assert_non_null(e);
    assert_int_equal(pb_decoded_ok(&e->base), 0);
    simsync__envelope__free_unpacked(e, NULL);
    assert_int_equal(pb_decoded_ok(NULL), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_message_passes),
        cmocka_unit_test(test_unknown_field_kept),
        cmocka_unit_test(test_field_zero_deep_refused),
        cmocka_unit_test(test_field_zero_top_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
