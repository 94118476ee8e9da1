/* test_policy.c -- the sync trigger policy, driven by a fake clock: every
 * time below is a plain integer of milliseconds passed in by the test. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "policy.h"

#define S(x) ((int64_t)(x)*1000) /* seconds on the fake clock */
#define BITS(a) POLICY_TRIG_BIT(POLICY_TRIG_##a)

/* ------------------------------------------------------------- helpers */

/* Every trigger and notice off: each test turns on what it proves. */
static struct policy_cfg
cfg_off(void)
{
    struct policy_cfg c;

    policy_cfg_default(&c);
    c.upload_on_sim_remove = 0;
    c.download_on_sim_insert = 0;
    c.sync_on_start = 0;
    c.battery_below = 0;
    c.every_seconds = 0;
    c.after_update = 0;
    c.notice_unsynced_seconds = 0;
    return c;
}

static void
init(struct policy *p, const struct policy_cfg *c)
{
    assert_int_equal(policy_init(p, c, 0), SIMSYNC_OK);
}

static void
ev_full(struct policy *p, enum policy_event_type type, int64_t now,
        uint64_t pending, int level, int charging, enum policy_result result)
{
    struct policy_event e;

    memset(&e, 0, sizeof(e));
    e.type = type;
    e.now = now;
    e.pending_bytes = pending;
    e.battery_level = level;
    e.charging = charging;
    e.result = result;
    assert_int_equal(policy_event(p, &e), SIMSYNC_OK);
}

static void
ev(struct policy *p, enum policy_event_type type, int64_t now)
{
    ev_full(p, type, now, 0, 0, 0, POLICY_RESULT_OK);
}

static void
data(struct policy *p, int64_t now, uint64_t pending)
{
    ev_full(p, POLICY_EV_DATA_CHANGED, now, pending, 0, 0, POLICY_RESULT_OK);
}

static void
battery(struct policy *p, int64_t now, int level, int charging)
{
    ev_full(p, POLICY_EV_BATTERY, now, 0, level, charging, POLICY_RESULT_OK);
}

static void
done(struct policy *p, int64_t now, enum policy_result r, uint64_t pending)
{
    ev_full(p, POLICY_EV_SYNC_DONE, now, pending, 0, 0, r);
}

static struct policy_decision
decide(struct policy *p, int64_t now)
{
    struct policy_decision d;

    policy_decide(p, now, &d);
    return d;
}

/* Decide at `now` and require exactly `action` from `trigger`. */
static struct policy_decision
expect(struct policy *p, int64_t now, enum policy_action action,
       enum policy_trigger trigger)
{
    struct policy_decision d = decide(p, now);

    if (d.action != action || d.trigger != trigger)
        print_error("at %lld ms: got %s/%s (%s), want %s/%s\n", (long long)now,
                    policy_action_name(d.action),
                    policy_trigger_name(d.trigger), d.reason,
                    policy_action_name(action), policy_trigger_name(trigger));
    assert_int_equal(d.action, action);
    assert_int_equal(d.trigger, trigger);
    return d;
}

static struct policy_decision
expect_none(struct policy *p, int64_t now)
{
    return expect(p, now, POLICY_NONE, POLICY_TRIG_NONE);
}

static void
assert_contains(const char *s, const char *part)
{
    if (strstr(s, part) == NULL)
        print_error("'%s' does not contain '%s'\n", s, part);
    assert_non_null(strstr(s, part));
}

/* ------------------------------------------------------ silent defaults */

static void
every_trigger_off_stays_silent(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    init(&p, &c);
    ev_full(&p, POLICY_EV_START, S(1), 5000, 0, 0, POLICY_RESULT_OK);
    ev(&p, POLICY_EV_SIM_INSERTED, S(2));
    data(&p, S(3), 1u << 30);
    ev(&p, POLICY_EV_USER_ACTIVITY, S(4));
    battery(&p, S(5), 1, 0);
    ev(&p, POLICY_EV_HUB_HAS_CHANGES, S(6));
    for (int64_t t = S(6); t < S(400000); t += S(997)) {
        d = expect_none(&p, t);
        assert_int_equal(d.wake_at, POLICY_NEVER);
    }
    ev(&p, POLICY_EV_SIM_REMOVING, S(400001));
    d = expect_none(&p, S(400001));
    assert_int_equal(d.remove_ready, 1);
    assert_int_equal(d.wake_at, POLICY_NEVER);
}

/* ------------------------------------------------------ event triggers */

static void
start_syncs_once_when_enabled(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    init(&p, &c);
    ev(&p, POLICY_EV_START, S(0));
    expect_none(&p, S(0)); /* sync.on_start off */

    c.sync_on_start = 1;
    init(&p, &c);
    ev(&p, POLICY_EV_START, S(0));
    d = expect(&p, S(0), POLICY_SYNC, POLICY_TRIG_START);
    assert_int_equal(d.triggers, BITS(START));
    assert_string_equal(d.reason, "daemon started");
    expect_none(&p, S(0)); /* in flight: no second sync */
    done(&p, S(3), POLICY_RESULT_OK, 0);
    d = expect_none(&p, S(3));
    assert_int_equal(d.wake_at, POLICY_NEVER);
}

static void
sim_insert_downloads_when_enabled(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();

    (void)state;
    init(&p, &c);
    ev(&p, POLICY_EV_SIM_INSERTED, S(1));
    expect_none(&p, S(1));

    c.download_on_sim_insert = 1;
    init(&p, &c);
    ev(&p, POLICY_EV_SIM_INSERTED, S(1));
    expect(&p, S(1), POLICY_DOWNLOAD, POLICY_TRIG_SIM_INSERT);
    done(&p, S(2), POLICY_RESULT_OK, 0);
    expect_none(&p, S(2));
}

static void
hub_changes_download_when_enabled(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    init(&p, &c);
    ev(&p, POLICY_EV_HUB_HAS_CHANGES, S(1));
    policy_decide(&p, S(1), &d);
    assert_int_equal(d.action, POLICY_NONE);
    assert_true(d.notices & POLICY_NOTICE_HUB_CHANGES);

    c.download_on_hub_changes = 1;
    init(&p, &c);
    ev(&p, POLICY_EV_HUB_HAS_CHANGES, S(1));
    expect(&p, S(1), POLICY_DOWNLOAD, POLICY_TRIG_HUB_CHANGES);
    done(&p, S(2), POLICY_RESULT_OK, 0);
    expect_none(&p, S(2));
    policy_decide(&p, S(2), &d);
    assert_false(d.notices & POLICY_NOTICE_HUB_CHANGES);
    assert_string_equal(policy_trigger_name(POLICY_TRIG_HUB_CHANGES),
                        "hub-changes");
}

static void
commands_run_at_once_in_their_direction(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    init(&p, &c);
    ev(&p, POLICY_EV_COMMAND_UPLOAD, S(1));
    d = expect(&p, S(1), POLICY_UPLOAD, POLICY_TRIG_COMMAND);
    assert_string_equal(d.reason, "user command: upload");
    /* A command during the sync waits for its end, then runs. */
    ev(&p, POLICY_EV_COMMAND_DOWNLOAD, S(2));
    expect_none(&p, S(2));
    done(&p, S(3), POLICY_RESULT_OK, 0);
    expect(&p, S(3), POLICY_DOWNLOAD, POLICY_TRIG_COMMAND);
    done(&p, S(4), POLICY_RESULT_OK, 0);
    /* Two commands before a decision unite. */
    ev(&p, POLICY_EV_COMMAND_UPLOAD, S(5));
    ev(&p, POLICY_EV_COMMAND_DOWNLOAD, S(5));
    expect(&p, S(5), POLICY_SYNC, POLICY_TRIG_COMMAND);
    done(&p, S(6), POLICY_RESULT_OK, 0);
    ev(&p, POLICY_EV_COMMAND_SYNC, S(7));
    expect(&p, S(7), POLICY_SYNC, POLICY_TRIG_COMMAND);
    done(&p, S(8), POLICY_RESULT_OK, 0);
    expect_none(&p, S(8));
}

static void
command_ignores_confirm_battery_backoff_and_missing_sim(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    c.confirm = 1;
    c.battery_below = 20;
    init(&p, &c);
    battery(&p, S(0), 5, 0);
    ev(&p, POLICY_EV_COMMAND_SYNC, S(1));
    d = expect(&p, S(1), POLICY_SYNC, POLICY_TRIG_COMMAND);
    assert_int_equal(d.then, POLICY_SYNC);
    done(&p, S(2), POLICY_RESULT_FAILED, 0); /* backoff 5 s from now */
    ev(&p, POLICY_EV_SIM_REMOVED, S(2));
    ev(&p, POLICY_EV_COMMAND_DOWNLOAD, S(3));
    d = expect(&p, S(3), POLICY_DOWNLOAD, POLICY_TRIG_COMMAND);
    assert_null(strstr(d.reason, "retry")); /* commands are not retries */
    /* A failed command is not retried automatically. */
    done(&p, S(4), POLICY_RESULT_FAILED, 0);
    d = expect_none(&p, S(100));
    assert_int_equal(d.wake_at, POLICY_NEVER);
}

/* ----------------------------------------------------------- periodic */

static void
periodic_fires_at_n_seconds_not_before(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    c.every_seconds = 60;
    init(&p, &c);
    d = expect_none(&p, S(60) - 1);
    assert_int_equal(d.wake_at, S(60));
    d = expect(&p, S(60), POLICY_SYNC, POLICY_TRIG_PERIODIC);
    assert_string_equal(d.reason, "periodic sync (every 60 s)");
    done(&p, S(65), POLICY_RESULT_OK, 0);
    /* The next slot counts from the end of the last full sync. */
    d = expect_none(&p, S(125) - 1);
    assert_int_equal(d.wake_at, S(125));
    expect(&p, S(125), POLICY_SYNC, POLICY_TRIG_PERIODIC);
}

static void
periodic_off_is_silent_and_full_syncs_restart_its_clock(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    init(&p, &c);
    d = expect_none(&p, S(1000000));
    assert_int_equal(d.wake_at, POLICY_NEVER);

    c.every_seconds = 60;
    init(&p, &c);
    ev(&p, POLICY_EV_COMMAND_SYNC, S(50));
    expect(&p, S(50), POLICY_SYNC, POLICY_TRIG_COMMAND);
    done(&p, S(55), POLICY_RESULT_OK, 0);
    d = expect_none(&p, S(60));
    assert_int_equal(d.wake_at, S(115));
    /* An upload only does not restart it. */
    ev(&p, POLICY_EV_COMMAND_UPLOAD, S(100));
    expect(&p, S(100), POLICY_UPLOAD, POLICY_TRIG_COMMAND);
    done(&p, S(101), POLICY_RESULT_OK, 0);
    expect(&p, S(115), POLICY_SYNC, POLICY_TRIG_PERIODIC);
}

/* ------------------------------------------------------- after-update */

static void
after_update_fires_after_quiet_debounce(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    c.after_update = 1;
    c.debounce_seconds = 30;
    c.debounce_max_seconds = 0;
    init(&p, &c);
    d = expect_none(&p, S(5));
    assert_int_equal(d.wake_at, POLICY_NEVER);
    data(&p, S(10), 100);
    d = expect_none(&p, S(40) - 1);
    assert_int_equal(d.wake_at, S(40));
    /* A change restarts the quiet wait. */
    data(&p, S(40) - 1, 200);
    d = expect_none(&p, S(40));
    assert_int_equal(d.wake_at, S(70) - 1);
    expect_none(&p, S(70) - 2);
    d = expect(&p, S(70) - 1, POLICY_UPLOAD, POLICY_TRIG_AFTER_UPDATE);
    assert_string_equal(d.reason, "data changed, then no change for 30 s");
    done(&p, S(70), POLICY_RESULT_OK, 0);
    d = expect_none(&p, S(1000));
    assert_int_equal(d.wake_at, POLICY_NEVER);

    c.after_update = 0; /* off: silent */
    init(&p, &c);
    data(&p, S(10), 100);
    d = expect_none(&p, S(10000));
    assert_int_equal(d.wake_at, POLICY_NEVER);
}

static void
continuous_edits_sync_at_the_debounce_cap(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    c.after_update = 1;
    c.debounce_seconds = 30;
    c.debounce_max_seconds = 120;
    init(&p, &c);
    for (int64_t t = S(0); t < S(120); t += S(20)) { /* 0, 20, ..., 100 */
        data(&p, t, 1000);
        d = expect_none(&p, t);
        assert_int_equal(d.wake_at, t + S(30) < S(120) ? t + S(30) : S(120));
    }
    expect_none(&p, S(120) - 1);
    d = expect(&p, S(120), POLICY_UPLOAD, POLICY_TRIG_AFTER_UPDATE);
    assert_string_equal(d.reason,
                        "data kept changing for 120 s (debounce cap)");
    /* Edits during the upload start a new debounce from their first. */
    data(&p, S(130), 2000);
    data(&p, S(150), 3000);
    done(&p, S(155), POLICY_RESULT_OK, 3000);
    d = expect_none(&p, S(155));
    assert_int_equal(d.wake_at, S(180)); /* 150 + 30 */
    expect(&p, S(180), POLICY_UPLOAD, POLICY_TRIG_AFTER_UPDATE);
}

static void
debounce_zero_fires_on_each_change(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();

    (void)state;
    c.after_update = 1;
    c.debounce_seconds = 0;
    c.debounce_max_seconds = 0;
    init(&p, &c);
    data(&p, S(7), 1);
    expect(&p, S(7), POLICY_UPLOAD, POLICY_TRIG_AFTER_UPDATE);
}

/* ------------------------------------------------------------ pending */

static void
pending_fires_at_the_size_and_rearms_on_change(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    c.pending_bytes = 10000;
    init(&p, &c);
    data(&p, S(1), 9999);
    d = expect_none(&p, S(1));
    assert_int_equal(d.wake_at, POLICY_NEVER);
    data(&p, S(2), 10000);
    d = expect(&p, S(2), POLICY_UPLOAD, POLICY_TRIG_PENDING);
    assert_string_equal(d.reason, "10000 bytes pending (threshold 10000)");
    /* The upload could not shrink the count: no loop... */
    done(&p, S(3), POLICY_RESULT_OK, 10000);
    d = expect_none(&p, S(3));
    assert_int_equal(d.wake_at, POLICY_NEVER);
    /* ...until the next change. */
    data(&p, S(4), 10100);
    expect(&p, S(4), POLICY_UPLOAD, POLICY_TRIG_PENDING);
    done(&p, S(5), POLICY_RESULT_OK, 0);
    expect_none(&p, S(5));

    c.pending_bytes = 0; /* off */
    init(&p, &c);
    data(&p, S(1), UINT64_MAX);
    expect_none(&p, S(1));
}

static void
pending_reported_at_start_counts(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();

    (void)state;
    c.pending_bytes = 4096;
    init(&p, &c);
    ev_full(&p, POLICY_EV_START, S(0), 8192, 0, 0, POLICY_RESULT_OK);
    expect(&p, S(0), POLICY_UPLOAD, POLICY_TRIG_PENDING);
}

/* --------------------------------------------------------------- idle */

static void
idle_fires_once_per_quiet_stretch(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    c.idle_seconds = 300;
    init(&p, &c);
    ev(&p, POLICY_EV_USER_ACTIVITY, S(100));
    d = expect_none(&p, S(400) - 1);
    assert_int_equal(d.wake_at, S(400));
    d = expect(&p, S(400), POLICY_SYNC, POLICY_TRIG_IDLE);
    assert_string_equal(d.reason, "idle for 300 s with 0 bytes pending");
    done(&p, S(410), POLICY_RESULT_OK, 0);
    d = expect_none(&p, S(100000));
    assert_int_equal(d.wake_at, POLICY_NEVER);
    /* A data change starts a new stretch. */
    data(&p, S(100000), 12345);
    d = expect_none(&p, S(100300) - 1);
    assert_int_equal(d.wake_at, S(100300));
    d = expect(&p, S(100300), POLICY_SYNC, POLICY_TRIG_IDLE);
    assert_string_equal(d.reason, "idle for 300 s with 12345 bytes pending");
}

static void
idle_is_served_by_a_full_sync_in_the_stretch(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    c.idle_seconds = 300;
    c.sync_on_start = 1;
    init(&p, &c);
    ev(&p, POLICY_EV_START, S(0));
    expect(&p, S(0), POLICY_SYNC, POLICY_TRIG_START);
    done(&p, S(20), POLICY_RESULT_OK, 0);
    d = expect_none(&p, S(300));
    assert_int_equal(d.wake_at, POLICY_NEVER);

    c.idle_seconds = 0; /* off */
    c.sync_on_start = 0;
    init(&p, &c);
    d = expect_none(&p, S(999999));
    assert_int_equal(d.wake_at, POLICY_NEVER);
}

/* ---------------------------------------------------------- combining */

static void
combine_all_waits_for_idle_and_pending(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    c.idle_seconds = 300;
    c.pending_bytes = 10000;
    c.combine = POLICY_COMBINE_ALL;
    init(&p, &c);
    data(&p, S(0), 12345);
    d = expect_none(&p, S(0)); /* pending holds, idle does not yet */
    assert_int_equal(d.wake_at, S(300));
    expect_none(&p, S(300) - 1);
    d = expect(&p, S(300), POLICY_SYNC, POLICY_TRIG_PENDING);
    assert_int_equal(d.triggers, BITS(PENDING) | BITS(IDLE));
    assert_contains(d.reason, "12345 bytes pending (threshold 10000)");
    assert_contains(d.reason, "idle for 300 s");
    done(&p, S(301), POLICY_RESULT_OK, 0);

    /* Idle without enough pending: nothing. */
    init(&p, &c);
    data(&p, S(0), 100);
    d = expect_none(&p, S(300));
    assert_int_equal(d.wake_at, POLICY_NEVER);
    d = expect_none(&p, S(5000));
    /* Then pending grows: idle again 300 s after that change. */
    data(&p, S(5000), 20000);
    d = expect_none(&p, S(5000));
    assert_int_equal(d.wake_at, S(5300));
    expect(&p, S(5300), POLICY_SYNC, POLICY_TRIG_PENDING);
}

static void
combine_any_fires_each_condition_alone(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    c.idle_seconds = 300;
    c.pending_bytes = 10000;
    c.combine = POLICY_COMBINE_ANY;
    init(&p, &c);
    data(&p, S(0), 12345);
    d = expect(&p, S(0), POLICY_UPLOAD, POLICY_TRIG_PENDING);
    assert_int_equal(d.triggers, BITS(PENDING));
    done(&p, S(1), POLICY_RESULT_OK, 0);
    expect_none(&p, S(300) - 1);
    expect(&p, S(300), POLICY_SYNC, POLICY_TRIG_IDLE);
}

static void
combine_all_with_periodic_waits_for_pending(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    c.every_seconds = 600;
    c.pending_bytes = 1000;
    c.combine = POLICY_COMBINE_ALL;
    init(&p, &c);
    d = expect_none(&p, S(600));
    assert_int_equal(d.wake_at, POLICY_NEVER); /* pending cannot come by
                                                * itself */
    data(&p, S(700), 1000);
    d = expect(&p, S(700), POLICY_SYNC, POLICY_TRIG_PENDING);
    assert_int_equal(d.triggers, BITS(PENDING) | BITS(PERIODIC));
}

static void
union_of_due_requests_makes_one_sync(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    c.download_on_sim_insert = 1;
    c.pending_bytes = 10;
    init(&p, &c);
    ev(&p, POLICY_EV_SIM_INSERTED, S(1));
    data(&p, S(1), 50);
    d = expect(&p, S(1), POLICY_SYNC, POLICY_TRIG_SIM_INSERT);
    assert_int_equal(d.triggers, BITS(SIM_INSERT) | BITS(PENDING));
    assert_string_equal(d.reason,
                        "SIM inserted; 50 bytes pending (threshold 10)");
}

/* ------------------------------------------------------------ battery */

static void
battery_low_uploads_first_and_download_waits_for_charging(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    c.battery_below = 20;
    c.every_seconds = 60;
    init(&p, &c);
    data(&p, S(1), 500);
    battery(&p, S(2), 19, 0);
    d = expect(&p, S(2), POLICY_UPLOAD, POLICY_TRIG_BATTERY_LOW);
    assert_contains(d.reason, "battery at 19%, below 20%");
    done(&p, S(3), POLICY_RESULT_OK, 0);
    /* The periodic sync becomes upload-only; nothing to upload: waits. */
    d = expect_none(&p, S(60));
    assert_contains(d.reason, "download waits for charging or 20%");
    assert_int_equal(d.wake_at, POLICY_NEVER);
    /* With something to upload, the periodic sync runs as an upload. */
    data(&p, S(70), 800);
    d = expect(&p, S(70), POLICY_UPLOAD, POLICY_TRIG_PERIODIC);
    assert_contains(d.reason, "upload only");
    done(&p, S(71), POLICY_RESULT_OK, 0);
    expect_none(&p, S(72));
    /* Charging: the download half of the periodic sync runs. */
    battery(&p, S(80), 19, 1);
    d = expect(&p, S(80), POLICY_DOWNLOAD, POLICY_TRIG_PERIODIC);
}

/* An upload-only request that comes while the battery is low and nothing
 * is pending is dropped, not kept until charging: it would upload nothing,
 * and "download waits" would be the wrong reason. */
static void
battery_low_drops_uploads_of_nothing(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    c.battery_below = 20;
    c.after_update = 1;
    c.debounce_seconds = 5;
    init(&p, &c);
    data(&p, S(1), 100);
    battery(&p, S(2), 10, 0);
    expect(&p, S(2), POLICY_UPLOAD, POLICY_TRIG_BATTERY_LOW);
    done(&p, S(3), POLICY_RESULT_OK, 0);
    /* after-update comes due for the change the upload took. */
    d = expect_none(&p, S(6));
    assert_null(strstr(d.reason, "download waits"));
    assert_int_equal(d.wake_at, POLICY_NEVER);
    battery(&p, S(10), 10, 1);
    d = expect_none(&p, S(10));
    assert_string_equal(d.reason, "nothing due");
    /* A new change is uploaded after the debounce as before. */
    data(&p, S(12), 40);
    expect_none(&p, S(16));
    expect(&p, S(17), POLICY_UPLOAD, POLICY_TRIG_AFTER_UPDATE);
}

static void
battery_back_above_level_lets_downloads_run(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    c.battery_below = 20;
    c.download_on_sim_insert = 1;
    init(&p, &c);
    battery(&p, S(0), 10, 0); /* low, nothing pending: no upload */
    d = expect_none(&p, S(0));
    assert_int_equal(d.wake_at, POLICY_NEVER);
    ev(&p, POLICY_EV_SIM_INSERTED, S(1));
    expect_none(&p, S(1));
    battery(&p, S(2), 19, 0);
    expect_none(&p, S(2));
    battery(&p, S(3), 20, 0); /* at the level: not below */
    expect(&p, S(3), POLICY_DOWNLOAD, POLICY_TRIG_SIM_INSERT);
}

static void
battery_low_fires_on_crossing_only_and_off_when_zero(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();

    (void)state;
    c.battery_below = 20;
    init(&p, &c);
    data(&p, S(0), 10);
    battery(&p, S(1), 50, 0);
    expect_none(&p, S(1));
    battery(&p, S(2), 15, 1); /* low level but charging */
    expect_none(&p, S(2));
    battery(&p, S(3), 15, 0);
    expect(&p, S(3), POLICY_UPLOAD, POLICY_TRIG_BATTERY_LOW);
    done(&p, S(4), POLICY_RESULT_OK, 5);
    battery(&p, S(5), 14, 0); /* still low: no new crossing */
    expect_none(&p, S(5));

    c.battery_below = 0;
    init(&p, &c);
    data(&p, S(0), 10);
    battery(&p, S(1), 1, 0);
    expect_none(&p, S(1));
}

/* ---------------------------------------------------------- SIM removal */

static void
sim_remove_uploads_at_once_with_the_deadline_as_limit(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    c.upload_on_sim_remove = 1;
    c.remove_timeout_seconds = 30;
    init(&p, &c);
    data(&p, S(5), 500);
    ev(&p, POLICY_EV_SIM_REMOVING, S(10));
    d = expect(&p, S(10), POLICY_UPLOAD, POLICY_TRIG_SIM_REMOVE);
    assert_int_equal(d.limits.max_seconds, 30);
    assert_int_equal(d.remove_ready, 0);
    assert_contains(d.reason, "500 bytes pending, 30 s left");
    d = expect_none(&p, S(11));
    assert_int_equal(d.remove_ready, 0);
    done(&p, S(12), POLICY_RESULT_OK, 0);
    d = expect_none(&p, S(12));
    assert_int_equal(d.remove_ready, 1);
    assert_contains(d.reason, "nothing left to upload");

    /* A smaller configured limit wins. */
    c.max_seconds = 10;
    init(&p, &c);
    data(&p, S(5), 500);
    ev(&p, POLICY_EV_SIM_REMOVING, S(10));
    d = expect(&p, S(10), POLICY_UPLOAD, POLICY_TRIG_SIM_REMOVE);
    assert_int_equal(d.limits.max_seconds, 10);

    /* Under a second left: a limit of 1 s, never 0 (= no limit). */
    init(&p, &c);
    data(&p, S(5), 500);
    ev(&p, POLICY_EV_SIM_REMOVING, S(10));
    d = expect(&p, S(40) - 500, POLICY_UPLOAD, POLICY_TRIG_SIM_REMOVE);
    assert_int_equal(d.limits.max_seconds, 1);
    done(&p, S(40) - 100, POLICY_RESULT_FAILED, 500);
    d = expect_none(&p, S(40));
    assert_int_equal(d.remove_ready, 1);
}

static void
sim_remove_with_nothing_pending_or_disabled_is_ready(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    c.upload_on_sim_remove = 1;
    init(&p, &c);
    ev(&p, POLICY_EV_SIM_REMOVING, S(10));
    d = expect_none(&p, S(10));
    assert_int_equal(d.remove_ready, 1);
    assert_contains(d.reason, "nothing left to upload");
    /* Removal undone, upload switched off, removal again. */
    ev(&p, POLICY_EV_SIM_INSERTED, S(11));
    d = expect_none(&p, S(11));
    assert_int_equal(d.remove_ready, 0);
    c.upload_on_sim_remove = 0;
    assert_int_equal(policy_reconfig(&p, &c), SIMSYNC_OK);
    ev(&p, POLICY_EV_SIM_REMOVING, S(12));
    d = expect_none(&p, S(12));
    assert_int_equal(d.remove_ready, 1);
    assert_contains(d.reason, "no upload configured");

    init(&p, &c);
    data(&p, S(1), 500);
    ev(&p, POLICY_EV_SIM_REMOVING, S(10));
    d = expect_none(&p, S(10));
    assert_int_equal(d.remove_ready, 1);
    assert_contains(d.reason, "no upload configured");
}

static void
sim_remove_while_a_sync_is_in_flight(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    c.upload_on_sim_remove = 1;
    init(&p, &c);
    data(&p, S(0), 500);
    /* A download is running when removal is announced. */
    ev(&p, POLICY_EV_COMMAND_DOWNLOAD, S(1));
    expect(&p, S(1), POLICY_DOWNLOAD, POLICY_TRIG_COMMAND);
    ev(&p, POLICY_EV_SIM_REMOVING, S(2));
    d = expect_none(&p, S(2));
    assert_int_equal(d.remove_ready, 0);
    assert_int_equal(d.wake_at, POLICY_NEVER);
    done(&p, S(4), POLICY_RESULT_OK, 500);
    d = expect(&p, S(4), POLICY_UPLOAD, POLICY_TRIG_SIM_REMOVE);
    assert_int_equal(d.limits.max_seconds, 28); /* 30 s from S(2) */

    /* A full sync running at removal uploads it all: ready after it. */
    init(&p, &c);
    data(&p, S(0), 500);
    ev(&p, POLICY_EV_COMMAND_SYNC, S(1));
    expect(&p, S(1), POLICY_SYNC, POLICY_TRIG_COMMAND);
    ev(&p, POLICY_EV_SIM_REMOVING, S(2));
    done(&p, S(3), POLICY_RESULT_OK, 0);
    d = expect_none(&p, S(3));
    assert_int_equal(d.remove_ready, 1);
}

static void
sim_remove_skips_earlier_backoff_but_not_its_own(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    c.upload_on_sim_remove = 1;
    c.every_seconds = 10;
    c.retry_min_seconds = 8;
    c.retry_max_seconds = 100;
    c.remove_timeout_seconds = 30;
    init(&p, &c);
    data(&p, S(0), 500);
    expect(&p, S(10), POLICY_SYNC, POLICY_TRIG_PERIODIC);
    done(&p, S(11), POLICY_RESULT_FAILED, 500); /* held until 19 */
    ev(&p, POLICY_EV_SIM_REMOVING, S(12));
    expect(&p, S(12), POLICY_UPLOAD, POLICY_TRIG_SIM_REMOVE);
    done(&p, S(13), POLICY_RESULT_FAILED, 500); /* 2nd failure: 16 s */
    d = expect_none(&p, S(13));
    assert_int_equal(d.wake_at, S(29));
    assert_int_equal(d.remove_ready, 0);
    expect_none(&p, S(29) - 1);
    d = expect(&p, S(29), POLICY_UPLOAD, POLICY_TRIG_SIM_REMOVE);
    assert_int_equal(d.limits.max_seconds, 13); /* deadline S(42) */
    done(&p, S(40), POLICY_RESULT_FAILED, 500); /* next retry at S(72) */
    d = expect_none(&p, S(40));
    assert_int_equal(d.wake_at, S(42)); /* the deadline */
    d = expect_none(&p, S(42));
    assert_int_equal(d.remove_ready, 1);
    assert_contains(d.reason, "deadline passed with 500 bytes");
}

static void
sim_removed_stops_automatic_syncs_until_inserted(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    c.every_seconds = 60;
    c.after_update = 1;
    c.debounce_seconds = 0;
    c.download_on_sim_insert = 1;
    init(&p, &c);
    ev(&p, POLICY_EV_SIM_REMOVED, S(1));
    data(&p, S(2), 10);
    d = expect_none(&p, S(1000));
    assert_int_equal(d.wake_at, POLICY_NEVER);
    assert_contains(d.reason, "no SIM");
    ev(&p, POLICY_EV_SIM_INSERTED, S(1001));
    d = expect(&p, S(1001), POLICY_SYNC, POLICY_TRIG_SIM_INSERT);
    assert_int_equal(d.triggers,
                     BITS(SIM_INSERT) | BITS(AFTER_UPDATE) | BITS(PERIODIC));
}

/* ------------------------------------------------------- confirmation */

static void
confirm_yes_starts_the_sync(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    c.every_seconds = 60;
    c.confirm = 1;
    init(&p, &c);
    d = expect(&p, S(60), POLICY_ASK, POLICY_TRIG_PERIODIC);
    assert_int_equal(d.then, POLICY_SYNC);
    assert_string_equal(d.reason, "confirm: periodic sync (every 60 s)");
    d = expect_none(&p, S(61)); /* one question at a time */
    assert_string_equal(d.reason, "waiting for the user's answer");
    assert_int_equal(d.wake_at, POLICY_NEVER);
    ev(&p, POLICY_EV_CONFIRM_YES, S(70));
    d = expect(&p, S(70), POLICY_SYNC, POLICY_TRIG_PERIODIC);
    assert_int_equal(d.then, POLICY_SYNC);
    /* A retry after a failure of a confirmed sync does not ask again. */
    done(&p, S(71), POLICY_RESULT_FAILED, 0);
    expect(&p, S(76), POLICY_SYNC, POLICY_TRIG_PERIODIC);
    done(&p, S(77), POLICY_RESULT_OK, 0);
    /* An OK sync ends the confirmation: the next slot asks. */
    expect(&p, S(137), POLICY_ASK, POLICY_TRIG_PERIODIC);
}

static void
confirm_no_waits_for_the_next_trigger(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    c.every_seconds = 60;
    c.after_update = 1;
    c.debounce_seconds = 10;
    c.debounce_max_seconds = 0;
    c.confirm = 1;
    init(&p, &c);
    expect(&p, S(60), POLICY_ASK, POLICY_TRIG_PERIODIC);
    /* A change while the question is open is not part of it. */
    data(&p, S(61), 10);
    ev(&p, POLICY_EV_CONFIRM_NO, S(62));
    d = expect_none(&p, S(62));
    assert_int_equal(d.wake_at, S(71));
    d = expect(&p, S(71), POLICY_ASK, POLICY_TRIG_AFTER_UPDATE);
    assert_int_equal(d.then, POLICY_UPLOAD);
    /* A SIM inserted while asked is kept for the next question. */
    c.download_on_sim_insert = 1;
    assert_int_equal(policy_reconfig(&p, &c), SIMSYNC_OK);
    ev(&p, POLICY_EV_SIM_INSERTED, S(71));
    ev(&p, POLICY_EV_CONFIRM_NO, S(71));
    d = expect(&p, S(71), POLICY_ASK, POLICY_TRIG_SIM_INSERT);
    assert_int_equal(d.then, POLICY_DOWNLOAD);
    assert_int_equal(d.triggers, BITS(SIM_INSERT));
    ev(&p, POLICY_EV_CONFIRM_NO, S(72));
    d = expect_none(&p, S(72));
    assert_int_equal(d.wake_at, S(120)); /* the next periodic slot */
    expect_none(&p, S(120) - 1);
    expect(&p, S(120), POLICY_ASK, POLICY_TRIG_PERIODIC);
}

static void
answers_without_a_question_are_refused(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_event e;

    (void)state;
    init(&p, &c);
    memset(&e, 0, sizeof(e));
    e.type = POLICY_EV_CONFIRM_YES;
    assert_int_equal(policy_event(&p, &e), SIMSYNC_ESTATE);
    e.type = POLICY_EV_CONFIRM_NO;
    assert_int_equal(policy_event(&p, &e), SIMSYNC_ESTATE);
    e.type = POLICY_EV_SYNC_DONE;
    assert_int_equal(policy_event(&p, &e), SIMSYNC_ESTATE);
}

static void
commands_and_sim_remove_are_never_asked(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();

    (void)state;
    c.confirm = 1;
    c.upload_on_sim_remove = 1;
    init(&p, &c);
    ev(&p, POLICY_EV_COMMAND_UPLOAD, S(1));
    expect(&p, S(1), POLICY_UPLOAD, POLICY_TRIG_COMMAND);
    done(&p, S(2), POLICY_RESULT_OK, 0);
    data(&p, S(3), 10);
    ev(&p, POLICY_EV_SIM_REMOVING, S(4));
    expect(&p, S(4), POLICY_UPLOAD, POLICY_TRIG_SIM_REMOVE);
}

/* ------------------------------------------------- limits and partial */

static void
limits_are_handed_out_with_each_sync(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    c.max_bytes = 1 << 20;
    c.max_seconds = 60;
    c.up_max_bytes = 1000;
    c.up_max_seconds = 10;
    c.down_max_bytes = 2000;
    c.down_max_seconds = 20;
    init(&p, &c);
    ev(&p, POLICY_EV_COMMAND_SYNC, S(1));
    d = expect(&p, S(1), POLICY_SYNC, POLICY_TRIG_COMMAND);
    assert_int_equal(d.limits.max_bytes, 1 << 20);
    assert_int_equal(d.limits.max_seconds, 60);
    assert_int_equal(d.limits.up_max_bytes, 1000);
    assert_int_equal(d.limits.up_max_seconds, 10);
    assert_int_equal(d.limits.down_max_bytes, 2000);
    assert_int_equal(d.limits.down_max_seconds, 20);
    done(&p, S(2), POLICY_RESULT_OK, 0);
    d = expect_none(&p, S(2));
    assert_int_equal(d.limits.max_bytes, 0);
}

static void
partial_sync_continues_after_the_gap_not_the_period(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;
    struct policy_event e;

    (void)state;
    c.every_seconds = 3600;
    c.continue_seconds = 5;
    c.max_bytes = 1000;
    c.confirm = 1;
    init(&p, &c);
    expect(&p, S(3600), POLICY_ASK, POLICY_TRIG_PERIODIC);
    ev(&p, POLICY_EV_CONFIRM_YES, S(3601));
    expect(&p, S(3601), POLICY_SYNC, POLICY_TRIG_PERIODIC);
    memset(&e, 0, sizeof(e));
    e.type = POLICY_EV_SYNC_DONE;
    e.now = S(3610);
    e.result = POLICY_RESULT_PARTIAL;
    e.bytes_up = 400;
    e.bytes_down = 600;
    assert_int_equal(policy_event(&p, &e), SIMSYNC_OK);
    d = expect_none(&p, S(3610));
    assert_int_equal(d.wake_at, S(3615));
    assert_string_equal(d.reason, "continuing in 5 s");
    d = expect_none(&p, S(3615) - 1);
    assert_int_equal(d.wake_at, S(3615));
    d = expect(&p, S(3615), POLICY_SYNC, POLICY_TRIG_CONTINUE);
    assert_contains(d.reason, "continuing a partial sync (400 bytes up, "
                              "600 down so far)");
    assert_int_equal(d.limits.max_bytes, 1000);
    done(&p, S(3620), POLICY_RESULT_OK, 0);
    d = expect_none(&p, S(3620));
    assert_int_equal(d.wake_at, S(7220));
}

static void
partial_command_continues_at_once_by_default(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();

    (void)state;
    c.up_max_bytes = 100;
    c.confirm = 1; /* continuations of a command are not asked either */
    init(&p, &c);
    ev(&p, POLICY_EV_COMMAND_UPLOAD, S(1));
    expect(&p, S(1), POLICY_UPLOAD, POLICY_TRIG_COMMAND);
    done(&p, S(2), POLICY_RESULT_PARTIAL, 900);
    expect(&p, S(2), POLICY_UPLOAD, POLICY_TRIG_CONTINUE);
    done(&p, S(3), POLICY_RESULT_PARTIAL, 800);
    expect(&p, S(3), POLICY_UPLOAD, POLICY_TRIG_CONTINUE);
    done(&p, S(4), POLICY_RESULT_OK, 0);
    expect_none(&p, S(4));
}

/* ------------------------------------------------------------ failures */

static void
failures_back_off_doubling_to_the_cap(void **state)
{
    static const int64_t waits[] = {5, 10, 20, 40, 40, 40};
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;
    int64_t t = S(100);
    char want[64];

    (void)state;
    c.every_seconds = 100;
    c.retry_min_seconds = 5;
    c.retry_max_seconds = 40;
    init(&p, &c);
    d = expect(&p, t, POLICY_SYNC, POLICY_TRIG_PERIODIC);
    assert_null(strstr(d.reason, "retry"));
    for (size_t i = 0; i < sizeof(waits) / sizeof(waits[0]); i++) {
        done(&p, t + S(1), POLICY_RESULT_FAILED, 0);
        t += S(1);
        d = expect_none(&p, t + S(waits[i]) - 1);
        assert_int_equal(d.wake_at, t + S(waits[i]));
        assert_contains(d.reason, "backing off after");
        t += S(waits[i]);
        d = expect(&p, t, POLICY_SYNC, POLICY_TRIG_PERIODIC);
        snprintf(want, sizeof(want), "retry after %zu failed sync", i + 1);
        assert_contains(d.reason, want);
    }
    /* Success resets: the next failure waits the minimum again. */
    done(&p, t + S(1), POLICY_RESULT_OK, 0);
    t += S(1);
    d = expect(&p, t + S(100), POLICY_SYNC, POLICY_TRIG_PERIODIC);
    t += S(100);
    done(&p, t, POLICY_RESULT_FAILED, 0);
    d = expect_none(&p, t);
    assert_int_equal(d.wake_at, t + S(5));
}

static void
command_bypasses_backoff(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    c.every_seconds = 100;
    c.retry_min_seconds = 60;
    c.retry_max_seconds = 60;
    init(&p, &c);
    expect(&p, S(100), POLICY_SYNC, POLICY_TRIG_PERIODIC);
    done(&p, S(101), POLICY_RESULT_FAILED, 0);
    ev(&p, POLICY_EV_COMMAND_SYNC, S(102));
    d = expect(&p, S(102), POLICY_SYNC, POLICY_TRIG_COMMAND);
    assert_int_equal(d.triggers, BITS(COMMAND) | BITS(PERIODIC));
    done(&p, S(103), POLICY_RESULT_OK, 0);
    /* The command served the periodic request. */
    d = expect_none(&p, S(161));
    assert_int_equal(d.wake_at, S(203));
}

static void
failed_event_requests_are_retried(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();

    (void)state;
    c.download_on_sim_insert = 1;
    init(&p, &c);
    ev(&p, POLICY_EV_SIM_INSERTED, S(1));
    expect(&p, S(1), POLICY_DOWNLOAD, POLICY_TRIG_SIM_INSERT);
    done(&p, S(2), POLICY_RESULT_FAILED, 0);
    expect_none(&p, S(7) - 1);
    expect(&p, S(7), POLICY_DOWNLOAD, POLICY_TRIG_SIM_INSERT);
}

/* ---------------------------------------------------- flight and time */

static void
deciding_twice_never_starts_two_syncs(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    c.every_seconds = 10;
    c.after_update = 1;
    c.debounce_seconds = 0;
    init(&p, &c);
    expect(&p, S(10), POLICY_SYNC, POLICY_TRIG_PERIODIC);
    for (int i = 0; i < 5; i++) {
        data(&p, S(11 + i), 10);
        d = expect_none(&p, S(1000 + i));
        assert_contains(d.reason, "in flight");
    }
    /* The changes during the sync are remembered: an upload follows. */
    done(&p, S(2000), POLICY_RESULT_OK, 50);
    expect(&p, S(2000), POLICY_UPLOAD, POLICY_TRIG_AFTER_UPDATE);
}

static void
time_going_backwards_is_taken_as_the_latest(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();

    (void)state;
    c.every_seconds = 60;
    init(&p, &c);
    expect_none(&p, S(59));
    ev(&p, POLICY_EV_TICK, S(61));
    expect(&p, S(30), POLICY_SYNC, POLICY_TRIG_PERIODIC);
}

/* A daemon that sleeps until wake_at (or the next change) and whose syncs
 * take 2 s starts every sync exactly when its trigger becomes due. */
static void
sleeping_until_wake_at_misses_nothing(void **state)
{
    static const int64_t changes[] = {S(10),   S(20),   S(500),  S(501),
                                      S(1100), S(1120), S(1140), S(1160),
                                      S(1180), S(1200)};
    /* quiet after 20; quiet after 501; periodic; debounce cap (first change
     * 1100 + 90); quiet after 1200 */
    static const int64_t want[] = {S(50), S(531), S(1000), S(1190), S(1230)};
    static const enum policy_trigger why[] = {
        POLICY_TRIG_AFTER_UPDATE, POLICY_TRIG_AFTER_UPDATE,
        POLICY_TRIG_PERIODIC, POLICY_TRIG_AFTER_UPDATE,
        POLICY_TRIG_AFTER_UPDATE};
    const size_t nchanges = sizeof(changes) / sizeof(changes[0]);
    const size_t nwant = sizeof(want) / sizeof(want[0]);
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;
    int64_t now = 0;
    size_t nc = 0, ng = 0;

    (void)state;
    c.every_seconds = 1000;
    c.after_update = 1;
    c.debounce_seconds = 30;
    c.debounce_max_seconds = 90;
    init(&p, &c);
    while (ng < nwant) {
        int64_t next_change = nc < nchanges ? changes[nc] : POLICY_NEVER;

        d = decide(&p, now);
        if (d.action != POLICY_NONE) {
            assert_int_equal(now, want[ng]);
            assert_int_equal(d.trigger, why[ng]);
            ng++;
            done(&p, now + S(2), POLICY_RESULT_OK, 0);
            now += S(2);
            continue;
        }
        assert_true(d.wake_at > now);
        if (next_change <= d.wake_at) {
            now = next_change;
            data(&p, now, 100);
            nc++;
        } else {
            assert_true(d.wake_at != POLICY_NEVER);
            now = d.wake_at;
        }
    }
    assert_int_equal(nc, nchanges);
}

/* ------------------------------------------------------------ notices */

static void
unsynced_notice_after_x_seconds(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    c.notice_unsynced_seconds = 3600;
    init(&p, &c);
    d = expect_none(&p, S(0));
    assert_int_equal(d.notices, 0);
    assert_int_equal(d.unsynced_since, POLICY_NEVER);
    data(&p, S(100), 10);
    data(&p, S(200), 20);
    d = expect_none(&p, S(3700) - 1);
    assert_int_equal(d.notices, 0);
    assert_int_equal(d.unsynced_since, S(100));
    assert_int_equal(d.wake_at, S(3700));
    d = expect_none(&p, S(3700));
    assert_int_equal(d.notices, POLICY_NOTICE_UNSYNCED);
    assert_int_equal(d.wake_at, POLICY_NEVER);
    /* A download does not clear it; an upload does. */
    ev(&p, POLICY_EV_COMMAND_DOWNLOAD, S(4000));
    expect(&p, S(4000), POLICY_DOWNLOAD, POLICY_TRIG_COMMAND);
    done(&p, S(4001), POLICY_RESULT_OK, 20);
    d = expect_none(&p, S(4001));
    assert_int_equal(d.notices, POLICY_NOTICE_UNSYNCED);
    ev(&p, POLICY_EV_COMMAND_UPLOAD, S(4002));
    d = expect(&p, S(4002), POLICY_UPLOAD, POLICY_TRIG_COMMAND);
    assert_int_equal(d.notices, POLICY_NOTICE_UNSYNCED);
    data(&p, S(4003), 5); /* during the upload */
    done(&p, S(4004), POLICY_RESULT_OK, 5);
    d = expect_none(&p, S(4004));
    assert_int_equal(d.notices, 0);
    assert_int_equal(d.unsynced_since, S(4003));
    assert_int_equal(d.wake_at, S(7603));
}

static void
hub_changes_notice_until_a_download_after_it(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_decision d;

    (void)state;
    init(&p, &c);
    ev(&p, POLICY_EV_HUB_HAS_CHANGES, S(1));
    d = expect_none(&p, S(1));
    assert_int_equal(d.notices, POLICY_NOTICE_HUB_CHANGES);
    ev(&p, POLICY_EV_COMMAND_UPLOAD, S(2));
    expect(&p, S(2), POLICY_UPLOAD, POLICY_TRIG_COMMAND);
    done(&p, S(3), POLICY_RESULT_OK, 0);
    assert_int_equal(decide(&p, S(3)).notices, POLICY_NOTICE_HUB_CHANGES);
    ev(&p, POLICY_EV_COMMAND_DOWNLOAD, S(4));
    expect(&p, S(4), POLICY_DOWNLOAD, POLICY_TRIG_COMMAND);
    ev(&p, POLICY_EV_HUB_HAS_CHANGES, S(5)); /* newer than the download */
    done(&p, S(6), POLICY_RESULT_OK, 0);
    assert_int_equal(decide(&p, S(6)).notices, POLICY_NOTICE_HUB_CHANGES);
    ev(&p, POLICY_EV_COMMAND_SYNC, S(7));
    expect(&p, S(7), POLICY_SYNC, POLICY_TRIG_COMMAND);
    done(&p, S(8), POLICY_RESULT_FAILED, 0);
    assert_int_equal(decide(&p, S(8)).notices, POLICY_NOTICE_HUB_CHANGES);
    ev(&p, POLICY_EV_COMMAND_SYNC, S(9));
    expect(&p, S(9), POLICY_SYNC, POLICY_TRIG_COMMAND);
    done(&p, S(10), POLICY_RESULT_OK, 0);
    assert_int_equal(decide(&p, S(10)).notices, 0);
}

/* --------------------------------------------------------- bad events */

static void
bad_events_are_rejected(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();
    struct policy_event e;

    (void)state;
    init(&p, &c);
    memset(&e, 0, sizeof(e));
    e.type = (enum policy_event_type)99;
    assert_int_equal(policy_event(&p, &e), SIMSYNC_EINVAL);
    e.type = POLICY_EV_BATTERY;
    e.battery_level = 101;
    assert_int_equal(policy_event(&p, &e), SIMSYNC_EINVAL);
    e.battery_level = -2;
    assert_int_equal(policy_event(&p, &e), SIMSYNC_EINVAL);
    e.battery_level = -1;
    assert_int_equal(policy_event(&p, &e), SIMSYNC_OK);
    ev(&p, POLICY_EV_COMMAND_SYNC, 0);
    expect(&p, 0, POLICY_SYNC, POLICY_TRIG_COMMAND);
    e.type = POLICY_EV_SYNC_DONE;
    e.result = (enum policy_result)7;
    assert_int_equal(policy_event(&p, &e), SIMSYNC_EINVAL);
    assert_int_equal(policy_event(NULL, &e), SIMSYNC_EINVAL);
    assert_int_equal(policy_event(&p, NULL), SIMSYNC_EINVAL);
    /* The sync is still in flight after the rejected events. */
    expect_none(&p, 0);
    assert_int_equal(policy_init(&p, NULL, 0), SIMSYNC_EINVAL);
    c.retry_min_seconds = 0;
    assert_int_equal(policy_init(&p, &c, 0), SIMSYNC_EINVAL);
}

static void
names_are_stable(void **state)
{
    static const char *const want[] = {
        "none",         "command",    "sim-remove",   "continue",
        "battery-low",  "sim-insert", "start",        "hub-changes",
        "pending",      "after-update", "idle",       "periodic"};

    (void)state;
    for (int t = 0; t < POLICY_TRIG_COUNT; t++)
        assert_string_equal(policy_trigger_name((enum policy_trigger)t),
                            want[t]);
    assert_string_equal(policy_trigger_name(POLICY_TRIG_COUNT), "?");
    assert_string_equal(policy_action_name(POLICY_NONE), "none");
    assert_string_equal(policy_action_name(POLICY_UPLOAD), "upload");
    assert_string_equal(policy_action_name(POLICY_DOWNLOAD), "download");
    assert_string_equal(policy_action_name(POLICY_SYNC), "sync");
    assert_string_equal(policy_action_name(POLICY_ASK), "ask");
}

/* ------------------------------------------------------- configuration */

static void
set_ok(struct policy_cfg *c, const char *key, const char *value)
{
    char err[256] = "";
    int rc = policy_cfg_set(c, key, value, err, sizeof(err));

    if (rc != SIMSYNC_OK)
        print_error("%s %s: %s\n", key, value, err);
    assert_int_equal(rc, SIMSYNC_OK);
}

/* Setting key to value fails with rc, a message containing part, and
 * leaves the configuration as it was. */
static void
set_bad(const char *key, const char *value, int rc, const char *part)
{
    struct policy_cfg c, before;
    char err[256] = "", a[POLICY_CFG_TEXT_MAX], b[POLICY_CFG_TEXT_MAX];

    policy_cfg_default(&c);
    before = c;
    assert_int_equal(policy_cfg_set(&c, key, value, err, sizeof(err)), rc);
    assert_contains(err, part);
    assert_int_equal(policy_cfg_format(&c, a, sizeof(a)), SIMSYNC_OK);
    assert_int_equal(policy_cfg_format(&before, b, sizeof(b)), SIMSYNC_OK);
    assert_string_equal(a, b);
}

static void
defaults_are_valid_and_every_key_is_listed(void **state)
{
    struct policy_cfg c;
    const struct policy_key *k;
    char v[32], err[128];
    size_t n = 0;

    (void)state;
    policy_cfg_default(&c);
    assert_int_equal(policy_cfg_check(&c, err, sizeof(err)), SIMSYNC_OK);
    while ((k = policy_cfg_key(n)) != NULL) {
        assert_true(strlen(k->help) > 10);
        assert_true(strlen(k->kind) > 2);
        assert_int_equal(policy_cfg_get(&c, k->name, v, sizeof(v)), SIMSYNC_OK);
        n++;
    }
    assert_int_equal(n, 24);
    assert_int_equal(policy_cfg_get(&c, "no.such", v, sizeof(v)),
                     SIMSYNC_ENOTFOUND);
    assert_int_equal(policy_cfg_get(&c, "sync.every_seconds", v, 2),
                     SIMSYNC_ETOOBIG);
    assert_int_equal(policy_cfg_get(&c, "sync.every_seconds", v, sizeof(v)),
                     SIMSYNC_OK);
    assert_string_equal(v, "1h");
}

static void
set_accepts_units_and_words(void **state)
{
    struct policy_cfg c;
    char v[32];

    (void)state;
    policy_cfg_default(&c);
    set_ok(&c, "sync.every_seconds", "90s");
    assert_int_equal(c.every_seconds, 90);
    set_ok(&c, "sync.every_seconds", "15m");
    assert_int_equal(c.every_seconds, 900);
    set_ok(&c, "sync.every_seconds", "6h");
    assert_int_equal(c.every_seconds, 21600);
    set_ok(&c, "sync.every_seconds", "1d");
    assert_int_equal(c.every_seconds, 86400);
    set_ok(&c, "sync.every_seconds", "120");
    assert_int_equal(c.every_seconds, 120);
    assert_int_equal(policy_cfg_get(&c, "sync.every_seconds", v, sizeof(v)),
                     SIMSYNC_OK);
    assert_string_equal(v, "2m");
    set_ok(&c, "sync.every_seconds", "0");
    assert_int_equal(c.every_seconds, 0);
    set_ok(&c, "sync.idle_seconds", "3650d");
    assert_int_equal(c.idle_seconds, POLICY_DURATION_MAX);
    set_ok(&c, "upload.pending_bytes", "512k");
    assert_int_equal(c.pending_bytes, 512 * 1024);
    set_ok(&c, "upload.pending_bytes", "3K");
    assert_int_equal(c.pending_bytes, 3 * 1024);
    set_ok(&c, "upload.pending_bytes", "10M");
    assert_int_equal(c.pending_bytes, 10 * 1024 * 1024);
    set_ok(&c, "sync.max_bytes", "2G");
    assert_int_equal(c.max_bytes, (uint64_t)2 << 30);
    set_ok(&c, "sync.max_bytes", "18446744073709551615");
    assert_int_equal(c.max_bytes, UINT64_MAX);
    set_ok(&c, "download.max_bytes", "1000");
    assert_int_equal(c.down_max_bytes, 1000);
    set_ok(&c, "sync.battery_below", "100");
    assert_int_equal(c.battery_below, 100);
    set_ok(&c, "sync.battery_below", "15%");
    assert_int_equal(c.battery_below, 15);
    set_ok(&c, "sync.confirm", "on");
    assert_int_equal(c.confirm, 1);
    set_ok(&c, "sync.confirm", "no");
    assert_int_equal(c.confirm, 0);
    set_ok(&c, "sync.confirm", "true");
    assert_int_equal(c.confirm, 1);
    set_ok(&c, "sync.confirm", "0");
    assert_int_equal(c.confirm, 0);
    set_ok(&c, "sync.combine", "all");
    assert_int_equal(c.combine, POLICY_COMBINE_ALL);
    set_ok(&c, "sync.combine", "any");
    assert_int_equal(c.combine, POLICY_COMBINE_ANY);
}

static void
set_rejects_bad_input_with_a_message(void **state)
{
    (void)state;
    set_bad("sync.bogus", "1", SIMSYNC_ENOTFOUND,
            "unknown policy key 'sync.bogus'");
    set_bad("", "1", SIMSYNC_ENOTFOUND, "unknown policy key ''");
    set_bad("sync.every_seconds", "", SIMSYNC_EINVAL,
            "sync.every_seconds: empty value");
    set_bad("sync.every_seconds", "-5", SIMSYNC_EINVAL, "is negative");
    set_bad("upload.pending_bytes", "-1k", SIMSYNC_EINVAL, "is negative");
    set_bad("sync.every_seconds", "15x", SIMSYNC_EINVAL,
            "unknown unit 'x' in '15x'");
    set_bad("sync.every_seconds", "15 m", SIMSYNC_EINVAL, "unknown unit");
    set_bad("sync.every_seconds", "1.5h", SIMSYNC_EINVAL, "unknown unit");
    set_bad("sync.every_seconds", "15mm", SIMSYNC_EINVAL, "unknown unit");
    set_bad("sync.every_seconds", "15M", SIMSYNC_EINVAL, "unknown unit");
    set_bad("upload.pending_bytes", "10m", SIMSYNC_EINVAL, "unknown unit");
    set_bad("upload.pending_bytes", "10s", SIMSYNC_EINVAL, "unknown unit");
    set_bad("sync.battery_below", "15k", SIMSYNC_EINVAL, "unknown unit");
    set_bad("sync.every_seconds", "h", SIMSYNC_EINVAL, "is not a number");
    set_bad("sync.every_seconds", "+5", SIMSYNC_EINVAL, "is not a number");
    set_bad("sync.every_seconds", " 5", SIMSYNC_EINVAL, "is not a number");
    set_bad("sync.every_seconds", "3651d", SIMSYNC_EINVAL, "too large");
    set_bad("sync.every_seconds", "315360001", SIMSYNC_EINVAL, "too large");
    set_bad("sync.every_seconds", "99999999999999999999999", SIMSYNC_EINVAL,
            "too large");
    set_bad("sync.max_bytes", "18446744073709551616", SIMSYNC_EINVAL,
            "too large");
    set_bad("sync.max_bytes", "17179869184G", SIMSYNC_EINVAL, "too large");
    set_bad("sync.battery_below", "101", SIMSYNC_EINVAL, "too large");
    set_bad("sync.confirm", "maybe", SIMSYNC_EINVAL, "is not on or off");
    set_bad("sync.confirm", "ON", SIMSYNC_EINVAL, "is not on or off");
    set_bad("sync.combine", "some", SIMSYNC_EINVAL, "is not any or all");
    set_bad("sync.retry_min_seconds", "0", SIMSYNC_EINVAL,
            "below the minimum 1");
    set_bad("sim.remove_timeout_seconds", "0", SIMSYNC_EINVAL,
            "below the minimum 1");
    set_bad("sync.retry_min_seconds", "10m", SIMSYNC_EINVAL,
            "exceeds sync.retry_max_seconds (300 s)");
    set_bad("sync.debounce_seconds", "301", SIMSYNC_EINVAL,
            "exceeds sync.debounce_max_seconds (300 s)");
}

static void
set_takes_cross_limits_in_either_order(void **state)
{
    struct policy_cfg c;

    (void)state;
    policy_cfg_default(&c);
    set_ok(&c, "sync.debounce_max_seconds", "0"); /* no cap */
    set_ok(&c, "sync.debounce_seconds", "1h");
    set_ok(&c, "sync.retry_max_seconds", "1d");
    set_ok(&c, "sync.retry_min_seconds", "1h");
    assert_int_equal(c.retry_min_seconds, 3600);
}

static void
format_then_parse_round_trips(void **state)
{
    struct policy_cfg a, b;
    char ta[POLICY_CFG_TEXT_MAX], tb[POLICY_CFG_TEXT_MAX], err[256];

    (void)state;
    policy_cfg_default(&a);
    assert_int_equal(policy_cfg_format(&a, ta, sizeof(ta)), SIMSYNC_OK);
    assert_string_equal(ta, "upload.on_sim_remove on\n"
                            "download.on_sim_insert on\n"
                            "download.on_hub_changes off\n"
                            "sync.on_start on\n"
                            "sync.every_seconds 1h\n"
                            "sync.after_update on\n"
                            "sync.debounce_seconds 30s\n"
                            "sync.debounce_max_seconds 5m\n"
                            "upload.pending_bytes 0\n"
                            "sync.idle_seconds 0\n"
                            "sync.battery_below 15\n"
                            "sync.combine any\n"
                            "sync.confirm off\n"
                            "sync.max_bytes 0\n"
                            "sync.max_seconds 0\n"
                            "upload.max_bytes 0\n"
                            "upload.max_seconds 0\n"
                            "download.max_bytes 0\n"
                            "download.max_seconds 0\n"
                            "sync.continue_seconds 0\n"
                            "notice.unsynced_seconds 1d\n"
                            "sync.retry_min_seconds 5s\n"
                            "sync.retry_max_seconds 5m\n"
                            "sim.remove_timeout_seconds 30s\n");
    a.upload_on_sim_remove = 0;
    a.every_seconds = 90061; /* 1d 1h 1m 1s: only seconds divide it */
    a.pending_bytes = 1536;  /* 1.5k: stays in bytes */
    a.idle_seconds = 7200;
    a.combine = POLICY_COMBINE_ALL;
    a.confirm = 1;
    a.max_bytes = UINT64_MAX;
    a.up_max_bytes = (uint64_t)3 << 30;
    a.down_max_bytes = 5 << 20;
    a.up_max_seconds = 61;
    a.down_max_seconds = 120;
    a.retry_max_seconds = POLICY_DURATION_MAX;
    a.battery_below = 0;
    assert_int_equal(policy_cfg_format(&a, ta, sizeof(ta)), SIMSYNC_OK);
    assert_contains(ta, "sync.every_seconds 90061s\n");
    assert_contains(ta, "upload.pending_bytes 1536\n");
    assert_contains(ta, "upload.max_bytes 3G\n");
    assert_contains(ta, "download.max_bytes 5M\n");
    assert_contains(ta, "sync.retry_max_seconds 3650d\n");
    policy_cfg_default(&b);
    assert_int_equal(policy_cfg_parse(&b, ta, err, sizeof(err)), SIMSYNC_OK);
    assert_int_equal(policy_cfg_format(&b, tb, sizeof(tb)), SIMSYNC_OK);
    assert_string_equal(ta, tb);
    assert_int_equal(b.every_seconds, 90061);
    assert_int_equal(b.max_bytes, UINT64_MAX);
    assert_int_equal(b.combine, POLICY_COMBINE_ALL);
    assert_int_equal(b.upload_on_sim_remove, 0);
    assert_int_equal(b.battery_below, 0);
    /* Too small a buffer is reported, not overrun. */
    assert_int_equal(policy_cfg_format(&a, ta, 100), SIMSYNC_ETOOBIG);
}

static void
parse_takes_comments_blanks_crlf_and_defaults(void **state)
{
    struct policy_cfg c;
    char err[256] = "";

    (void)state;
    memset(&c, 0xff, sizeof(c));
    assert_int_equal(policy_cfg_parse(&c,
                                      "# stored policy\r\n"
                                      "\n"
                                      "   sync.idle_seconds   5m  \r\n"
                                      "\tsync.retry_min_seconds 900\n"
                                      "sync.retry_max_seconds 1200",
                                      err, sizeof(err)),
                     SIMSYNC_OK);
    assert_int_equal(c.idle_seconds, 300);
    assert_int_equal(c.retry_min_seconds, 900);
    assert_int_equal(c.retry_max_seconds, 1200);
    assert_int_equal(c.every_seconds, 3600); /* default */
    assert_int_equal(c.sync_on_start, 1);
    assert_int_equal(policy_cfg_parse(&c, "", err, sizeof(err)), SIMSYNC_OK);
    assert_int_equal(c.idle_seconds, 0);
}

static void
parse_rejects_bad_text_naming_the_line(void **state)
{
    static const struct {
        const char *text;
        int rc;
        const char *msg;
    } cases[] = {
        {"sync.confirm on\n\nsync.bogus 1\n", SIMSYNC_ENOTFOUND,
         "line 3: unknown policy key 'sync.bogus'"},
        {"sync.confirm on\nsync.confirm off\n", SIMSYNC_EINVAL,
         "line 2: sync.confirm given twice"},
        {"sync.every_seconds\n", SIMSYNC_EINVAL,
         "line 1: sync.every_seconds: empty value"},
        {"sync.every_seconds 5 m\n", SIMSYNC_EINVAL,
         "line 1: sync.every_seconds: unknown unit ' m'"},
        {"x sync.every_seconds 5\n", SIMSYNC_ENOTFOUND,
         "line 1: unknown policy key 'x'"},
        {"sync.every_seconds 1111111111111111111111111111111111111111111111"
         "1111111111111111111111\n",
         SIMSYNC_EINVAL, "line 1: sync.every_seconds: value too long"},
        {"sync.retry_min_seconds 900\n", SIMSYNC_EINVAL,
         "stored policy: sync.retry_min_seconds (900 s) exceeds"},
    };
    struct policy_cfg c;
    char err[256];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        policy_cfg_default(&c);
        c.idle_seconds = 77;
        err[0] = '\0';
        assert_int_equal(policy_cfg_parse(&c, cases[i].text, err, sizeof(err)),
                         cases[i].rc);
        assert_contains(err, cases[i].msg);
        assert_int_equal(c.idle_seconds, 77); /* untouched */
    }
}

static void
reconfig_keeps_state(void **state)
{
    struct policy p;
    struct policy_cfg c = cfg_off();

    (void)state;
    init(&p, &c);
    data(&p, S(0), 50);
    c.pending_bytes = 10;
    assert_int_equal(policy_reconfig(&p, &c), SIMSYNC_OK);
    expect(&p, S(1), POLICY_UPLOAD, POLICY_TRIG_PENDING);
    c.retry_max_seconds = 0;
    assert_int_equal(policy_reconfig(&p, &c), SIMSYNC_EINVAL);
    assert_int_equal(p.cfg.retry_max_seconds, 300);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_trigger_off_stays_silent),
        cmocka_unit_test(start_syncs_once_when_enabled),
        cmocka_unit_test(sim_insert_downloads_when_enabled),
        cmocka_unit_test(hub_changes_download_when_enabled),
        cmocka_unit_test(commands_run_at_once_in_their_direction),
        cmocka_unit_test(
            command_ignores_confirm_battery_backoff_and_missing_sim),
        cmocka_unit_test(periodic_fires_at_n_seconds_not_before),
        cmocka_unit_test(
            periodic_off_is_silent_and_full_syncs_restart_its_clock),
        cmocka_unit_test(after_update_fires_after_quiet_debounce),
        cmocka_unit_test(continuous_edits_sync_at_the_debounce_cap),
        cmocka_unit_test(debounce_zero_fires_on_each_change),
        cmocka_unit_test(pending_fires_at_the_size_and_rearms_on_change),
        cmocka_unit_test(pending_reported_at_start_counts),
        cmocka_unit_test(idle_fires_once_per_quiet_stretch),
        cmocka_unit_test(idle_is_served_by_a_full_sync_in_the_stretch),
        cmocka_unit_test(combine_all_waits_for_idle_and_pending),
        cmocka_unit_test(combine_any_fires_each_condition_alone),
        cmocka_unit_test(combine_all_with_periodic_waits_for_pending),
        cmocka_unit_test(union_of_due_requests_makes_one_sync),
        cmocka_unit_test(
            battery_low_uploads_first_and_download_waits_for_charging),
        cmocka_unit_test(battery_low_drops_uploads_of_nothing),
        cmocka_unit_test(battery_back_above_level_lets_downloads_run),
        cmocka_unit_test(battery_low_fires_on_crossing_only_and_off_when_zero),
        cmocka_unit_test(sim_remove_uploads_at_once_with_the_deadline_as_limit),
        cmocka_unit_test(sim_remove_with_nothing_pending_or_disabled_is_ready),
        cmocka_unit_test(sim_remove_while_a_sync_is_in_flight),
        cmocka_unit_test(sim_remove_skips_earlier_backoff_but_not_its_own),
        cmocka_unit_test(sim_removed_stops_automatic_syncs_until_inserted),
        cmocka_unit_test(confirm_yes_starts_the_sync),
        cmocka_unit_test(confirm_no_waits_for_the_next_trigger),
        cmocka_unit_test(answers_without_a_question_are_refused),
        cmocka_unit_test(commands_and_sim_remove_are_never_asked),
        cmocka_unit_test(limits_are_handed_out_with_each_sync),
        cmocka_unit_test(partial_sync_continues_after_the_gap_not_the_period),
        cmocka_unit_test(partial_command_continues_at_once_by_default),
        cmocka_unit_test(failures_back_off_doubling_to_the_cap),
        cmocka_unit_test(command_bypasses_backoff),
        cmocka_unit_test(failed_event_requests_are_retried),
        cmocka_unit_test(deciding_twice_never_starts_two_syncs),
        cmocka_unit_test(time_going_backwards_is_taken_as_the_latest),
        cmocka_unit_test(sleeping_until_wake_at_misses_nothing),
        cmocka_unit_test(unsynced_notice_after_x_seconds),
        cmocka_unit_test(hub_changes_notice_until_a_download_after_it),
        cmocka_unit_test(bad_events_are_rejected),
        cmocka_unit_test(names_are_stable),
        cmocka_unit_test(defaults_are_valid_and_every_key_is_listed),
        cmocka_unit_test(set_accepts_units_and_words),
        cmocka_unit_test(set_rejects_bad_input_with_a_message),
        cmocka_unit_test(set_takes_cross_limits_in_either_order),
        cmocka_unit_test(format_then_parse_round_trips),
        cmocka_unit_test(parse_takes_comments_blanks_crlf_and_defaults),
        cmocka_unit_test(parse_rejects_bad_text_naming_the_line),
        cmocka_unit_test(reconfig_keeps_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
