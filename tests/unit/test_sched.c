/* test_sched.c -- when a backup schedule fires next (hub_sched.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <time.h>
#include <cmocka.h>

#include "hub_sched.h"

#define MIN 60000ull
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

static void
every_fires_on_the_grid_after_now(void **state)
{
    uint64_t base = 1000000;

    (void)state;
    /* Before the first slot: the first slot. */
    assert_int_equal(sched_next(base, HOUR, -1, base - 5), base);
    /* Exactly on a slot: the next one (that one has run). */
    assert_int_equal(sched_next(base, HOUR, -1, base), base + HOUR);
    /* Long after (the hub was down): the next slot, not a burst of the
     * missed ones. */
    assert_int_equal(sched_next(base, HOUR, -1, base + 10 * HOUR + 1),
                     base + 11 * HOUR);
}

static void
at_fires_at_the_next_time_of_day(void **state)
{
    time_t now = 1795000000; /* some instant in 2026 */
    struct tm tm;
    uint64_t next;
    int minute;

    (void)state;
    localtime_r(&now, &tm);
    /* One minute from now (wrapping at midnight): later today or, just
     * before midnight, tomorrow; never more than a day away. */
    minute = (tm.tm_hour * 60 + tm.tm_min + 1) % (24 * 60);
    next = sched_next(0, 0, minute, (uint64_t)now * 1000);
    assert_true(next > (uint64_t)now * 1000);
    assert_true(next <= (uint64_t)now * 1000 + 2 * MIN);
    /* The current minute has passed (seconds into it): tomorrow. */
    minute = tm.tm_hour * 60 + tm.tm_min;
    next = sched_next(0, 0, minute, (uint64_t)now * 1000 + 1);
    assert_true(next > (uint64_t)now * 1000 + DAY - 2 * HOUR);
    assert_true(next <= (uint64_t)now * 1000 + DAY + 2 * HOUR);
    localtime_r(&(time_t){(time_t)(next / 1000)}, &tm);
    assert_int_equal(tm.tm_hour * 60 + tm.tm_min, minute);
    assert_int_equal(tm.tm_sec, 0);
}

static void
one_shot_and_bad_minutes_never_fire_again(void **state)
{
    (void)state;
    assert_true(sched_next(5, 0, -1, 10) == UINT64_MAX);
    assert_true(sched_next(5, 0, 24 * 60, 10) == UINT64_MAX);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_fires_on_the_grid_after_now),
        cmocka_unit_test(at_fires_at_the_next_time_of_day),
        cmocka_unit_test(one_shot_and_bad_minutes_never_fire_again),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
