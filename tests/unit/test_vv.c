/* test_vv.c -- version vector comparison, merge and bounds. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <cmocka.h>

#include "vv.h"

static void
make(struct vv *v, int n, ...)
{
    va_list ap;

    vv_clear(v);
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        uint64_t r = va_arg(ap, uint64_t);
        uint64_t c = va_arg(ap, uint64_t);
        assert_int_equal(vv_set(v, r, c), SIMSYNC_OK);
    }
    va_end(ap);
}

static void
compare_covers_all_four_orders(void **state)
{
    struct vv a = VV_INIT, b = VV_INIT;

    (void)state;
    make(&a, 2, (uint64_t)1, (uint64_t)3, (uint64_t)2, (uint64_t)1);
    make(&b, 2, (uint64_t)2, (uint64_t)1, (uint64_t)1, (uint64_t)3);
    assert_int_equal(vv_compare(&a, &b), VV_EQUAL);
    make(&b, 1, (uint64_t)1, (uint64_t)3);
    assert_int_equal(vv_compare(&a, &b), VV_GREATER);
    assert_int_equal(vv_compare(&b, &a), VV_LESSER);
    make(&b, 2, (uint64_t)1, (uint64_t)4, (uint64_t)2, (uint64_t)0);
    assert_int_equal(vv_compare(&a, &b), VV_CONCURRENT);
    make(&b, 1, (uint64_t)3, (uint64_t)1);
    assert_int_equal(vv_compare(&a, &b), VV_CONCURRENT);
    make(&a, 0);
    make(&b, 0);
    assert_int_equal(vv_compare(&a, &b), VV_EQUAL);
    make(&b, 1, (uint64_t)9, (uint64_t)1);
    assert_int_equal(vv_compare(&a, &b), VV_LESSER);
    vv_free(&a);
    vv_free(&b);
}

static void
merge_takes_pointwise_max_and_dominates_both(void **state)
{
    struct vv a = VV_INIT, b = VV_INIT, m = VV_INIT;

    (void)state;
    make(&a, 2, (uint64_t)1, (uint64_t)5, (uint64_t)3, (uint64_t)1);
    make(&b, 2, (uint64_t)1, (uint64_t)2, (uint64_t)2, (uint64_t)7);
    assert_int_equal(vv_copy(&m, &a), SIMSYNC_OK);
    assert_int_equal(vv_merge(&m, &b), SIMSYNC_OK);
    assert_int_equal(vv_get(&m, 1), 5);
    assert_int_equal(vv_get(&m, 2), 7);
    assert_int_equal(vv_get(&m, 3), 1);
    assert_int_equal(m.n, 3);
    assert_int_equal(vv_compare(&m, &a), VV_GREATER);
    assert_int_equal(vv_compare(&m, &b), VV_GREATER);
    vv_free(&a);
    vv_free(&b);
    vv_free(&m);
}

static void
meet_takes_pointwise_min_and_is_dominated_by_both(void **state)
{
    struct vv a = VV_INIT, b = VV_INIT, m = VV_INIT;

    (void)state;
    make(&a, 3, (uint64_t)1, (uint64_t)5, (uint64_t)3, (uint64_t)1, (uint64_t)4,
         (uint64_t)9);
    make(&b, 3, (uint64_t)1, (uint64_t)2, (uint64_t)2, (uint64_t)7, (uint64_t)4,
         (uint64_t)11);
    assert_int_equal(vv_copy(&m, &a), SIMSYNC_OK);
    assert_int_equal(vv_meet(&m, &b), SIMSYNC_OK);
    assert_int_equal(vv_get(&m, 1), 2);
    assert_int_equal(vv_get(&m, 2), 0); /* only in b */
    assert_int_equal(vv_get(&m, 3), 0); /* only in a */
    assert_int_equal(vv_get(&m, 4), 9);
    assert_int_equal(m.n, 2);
    assert_int_equal(vv_compare(&m, &a), VV_LESSER);
    assert_int_equal(vv_compare(&m, &b), VV_LESSER);
    vv_clear(&b); /* meeting with nothing leaves nothing */
    assert_int_equal(vv_meet(&m, &b), SIMSYNC_OK);
    assert_int_equal(m.n, 0);
    vv_free(&a);
    vv_free(&b);
    vv_free(&m);
}

static void
max_counter_is_ordered_not_wrapped(void **state)
{
    struct vv a = VV_INIT, b = VV_INIT;
    struct dot d = {7, UINT64_MAX};

    (void)state;
    make(&a, 1, (uint64_t)7, UINT64_MAX);
    make(&b, 1, (uint64_t)7, UINT64_MAX - 1);
    assert_int_equal(vv_compare(&a, &b), VV_GREATER);
    assert_true(vv_has_dot(&a, &d));
    assert_false(vv_has_dot(&b, &d));
    vv_free(&a);
    vv_free(&b);
}

static void
setting_zero_removes_entry_keeping_canonical_form(void **state)
{
    struct vv a = VV_INIT, b = VV_INIT;

    (void)state;
    make(&a, 2, (uint64_t)1, (uint64_t)1, (uint64_t)2, (uint64_t)2);
    assert_int_equal(vv_set(&a, 1, 0), SIMSYNC_OK);
    make(&b, 1, (uint64_t)2, (uint64_t)2);
    assert_int_equal(a.n, 1);
    assert_int_equal(vv_compare(&a, &b), VV_EQUAL);
    vv_free(&a);
    vv_free(&b);
}

static void
from_entries_rejects_duplicates_zeros_and_huge_vectors(void **state)
{
    struct vv v = VV_INIT;
    struct dot dup[2] = {{5, 1}, {5, 2}};
    struct dot zero[1] = {{5, 0}};
    struct dot ok[3] = {{9, 1}, {2, 4}, {5, 3}};
    struct dot *huge;

    (void)state;
    assert_int_equal(vv_from_entries(&v, dup, 2), SIMSYNC_EPROTO);
    assert_int_equal(vv_from_entries(&v, zero, 1), SIMSYNC_EPROTO);
    assert_int_equal(vv_from_entries(&v, ok, 3), SIMSYNC_OK);
    assert_int_equal(v.e[0].replica, 2);
    assert_int_equal(v.e[2].replica, 9);
    huge = calloc(1000000, sizeof(*huge));
    assert_non_null(huge);
    for (size_t i = 0; i < 1000000; i++) {
        huge[i].replica = i + 1;
        huge[i].counter = 1;
    }
    assert_int_equal(vv_from_entries(&v, huge, 1000000), SIMSYNC_ETOOBIG);
    free(huge);
    vv_free(&v);
}

static void
random_vectors_compare_antisymmetrically(void **state)
{
    struct vv a = VV_INIT, b = VV_INIT;
    unsigned seed = 12345;

    (void)state;
    for (int iter = 0; iter < 2000; iter++) {
        vv_clear(&a);
        vv_clear(&b);
        for (int r = 1; r <= 4; r++) {
            seed = seed * 1103515245u + 12345u;
            vv_set(&a, (uint64_t)r, (seed >> 16) % 3);
            seed = seed * 1103515245u + 12345u;
            vv_set(&b, (uint64_t)r, (seed >> 16) % 3);
        }
        enum vv_order ab = vv_compare(&a, &b), ba = vv_compare(&b, &a);
        if (ab == VV_GREATER)
            assert_int_equal(ba, VV_LESSER);
        else if (ab == VV_LESSER)
            assert_int_equal(ba, VV_GREATER);
        else
            assert_int_equal(ab, ba);
    }
    vv_free(&a);
    vv_free(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(compare_covers_all_four_orders),
        cmocka_unit_test(merge_takes_pointwise_max_and_dominates_both),
        cmocka_unit_test(meet_takes_pointwise_min_and_is_dominated_by_both),
        cmocka_unit_test(max_counter_is_ordered_not_wrapped),
        cmocka_unit_test(setting_zero_removes_entry_keeping_canonical_form),
        cmocka_unit_test(
            from_entries_rejects_duplicates_zeros_and_huge_vectors),
        cmocka_unit_test(random_vectors_compare_antisymmetrically),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
