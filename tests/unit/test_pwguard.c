/* test_pwguard.c -- the terminal-password guard: counting, doubling waits,
 * lockout at 10, reset on success, and a text form that never reads a
 * damaged file as a fresh start. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pwguard.h"

static void
fresh_guard_lets_an_attempt_through(void **state)
{
    struct pwguard g = {0};
    uint64_t wait = 99;

    (void)state;
    assert_int_equal(pwguard_check(&g, 1000, &wait), PWGUARD_TRY);
    assert_int_equal(wait, 0);
}

static void
each_failure_doubles_the_wait_and_early_attempts_are_refused(void **state)
{
    struct pwguard g = {0};
    uint64_t now = 5000, wait;

    (void)state;
    for (uint32_t i = 1; i < PWGUARD_MAX_FAILURES; i++) {
        assert_int_equal(pwguard_check(&g, now, NULL), PWGUARD_TRY);
        assert_int_equal(pwguard_failed(&g, now, 100), i);
        assert_int_equal(g.wait_ms, 100ull << (i - 1));
        assert_int_equal(pwguard_check(&g, now + g.wait_ms - 1, &wait),
                         PWGUARD_WAIT);
        assert_int_equal(wait, 1);
        now += g.wait_ms;
    }
}

static void
tenth_failure_locks_even_after_any_wait(void **state)
{
    struct pwguard g = {0};

    (void)state;
    for (int i = 0; i < PWGUARD_MAX_FAILURES; i++)
        pwguard_failed(&g, 0, 1);
    assert_int_equal(g.failures, PWGUARD_MAX_FAILURES);
    assert_int_equal(pwguard_check(&g, UINT64_MAX, NULL), PWGUARD_LOCKED);
    /* More failures do not wrap the count. */
    pwguard_failed(&g, 0, 1);
    assert_int_equal(g.failures, PWGUARD_MAX_FAILURES);
}

static void
success_resets_count_and_wait(void **state)
{
    struct pwguard g = {0};

    (void)state;
    pwguard_failed(&g, 0, 1000);
    pwguard_failed(&g, 2000, 1000);
    pwguard_succeeded(&g);
    assert_int_equal(g.failures, 0);
    assert_int_equal(pwguard_check(&g, 0, NULL), PWGUARD_TRY);
}

static void
wait_is_capped_and_does_not_overflow(void **state)
{
    struct pwguard g = {0};

    (void)state;
    for (int i = 0; i < PWGUARD_MAX_FAILURES - 1; i++)
        pwguard_failed(&g, 0, PWGUARD_MAX_WAIT_MS);
    assert_int_equal(g.wait_ms, PWGUARD_MAX_WAIT_MS);
}

static void
text_round_trips(void **state)
{
    struct pwguard g = {0}, back;
    char text[PWGUARD_TEXT_MAX];

    (void)state;
    pwguard_failed(&g, 123456789, 1000);
    pwguard_failed(&g, 123456789, 1000);
    assert_int_equal(pwguard_format(&g, text, sizeof(text)), SIMSYNC_OK);
    assert_int_equal(pwguard_parse(text, &back), SIMSYNC_OK);
    assert_int_equal(back.failures, 2);
    assert_int_equal(back.not_before_ms, g.not_before_ms);
    assert_int_equal(back.wait_ms, 2000);
    assert_int_equal(pwguard_parse("", &back), SIMSYNC_OK);
    assert_int_equal(back.failures, 0);
}

static void
damaged_text_reads_as_locked(void **state)
{
    static const char *bad[] = {
        "garbage\n",
        "failures=-1\nnot_before_ms=0\nwait_ms=0\n",
        "failures=1\nnot_before_ms=x\nwait_ms=0\n",
        "failures=1\nwait_ms=0\n",
        "failures=99999999999999999999999\nnot_before_ms=0\nwait_ms=0\n",
    };
    struct pwguard g;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(pwguard_parse(bad[i], &g), SIMSYNC_EPROTO);
        assert_int_equal(pwguard_check(&g, UINT64_MAX, NULL), PWGUARD_LOCKED);
    }
    /* A count above the limit is clamped, still locked. */
    assert_int_equal(
        pwguard_parse("failures=50\nnot_before_ms=0\nwait_ms=0\n", &g),
        SIMSYNC_OK);
    assert_int_equal(pwguard_check(&g, 0, NULL), PWGUARD_LOCKED);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fresh_guard_lets_an_attempt_through),
        cmocka_unit_test(
            each_failure_doubles_the_wait_and_early_attempts_are_refused),
        cmocka_unit_test(tenth_failure_locks_even_after_any_wait),
        cmocka_unit_test(success_resets_count_and_wait),
        cmocka_unit_test(wait_is_capped_and_does_not_overflow),
        cmocka_unit_test(text_round_trips),
        cmocka_unit_test(damaged_text_reads_as_locked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
