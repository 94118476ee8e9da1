/* policy.h -- when a terminal syncs: the trigger policy (seed 003).
 *
 * The daemon feeds events (SIM inserted or about to leave, data changed,
 * user activity, battery, commands, the end of a sync, ...) into a
 * struct policy and asks policy_decide() what to do now. The answer is
 * NONE, UPLOAD, DOWNLOAD, SYNC (both ways) or ASK (confirm with the user
 * first), with the trigger that fired, a sentence for `simsync log`, the
 * per-sync limits the engine must enforce, notice flags, and wake_at: when
 * to ask again if nothing happens meanwhile (the daemon sleeps in poll()
 * until then).
 *
 * Pure code: no I/O, no clock reads, no threads, no globals, no
 * allocation. Time is whatever the caller passes in, so tests drive it with
 * plain integers. Not thread-safe: one struct policy belongs to one thread.
 *
 * Time: int64_t milliseconds of a monotonic clock (e.g. CLOCK_MONOTONIC).
 * A time earlier than one already seen is taken as the latest time seen.
 * POLICY_NEVER stands for "no such time". Durations in the configuration are
 * whole seconds.
 *
 * ------------------------------------------------------------ semantics
 *
 * Requests. A trigger that fires does not start a sync by itself: it leaves
 * a *request* for one or both directions (upload, download). A sync serves
 * the requests it covers: when it ends OK, each request loses the
 * directions the sync moved; a request with none left is gone. A failed
 * sync serves nothing, so its requests are retried (after the backoff).
 * Each trigger holds at most one request; firing again merges into it.
 *
 * Event triggers fire when their event arrives:
 *   command       COMMAND_SYNC / _UPLOAD / _DOWNLOAD: exactly that direction.
 *                 Served at once (or right after the sync in flight): never
 *                 asked, not held by the backoff, the battery or a missing
 *                 SIM (the engine reports what it cannot do). Not retried
 *                 after a failure: the user sees the failure.
 *   sim-remove    SIM_REMOVING, if upload.on_sim_remove: UPLOAD before the
 *                 SIM leaves. Dropped when nothing is pending (nothing to
 *                 upload) or when sim.remove_timeout_seconds have passed.
 *                 Never asked, not held by the battery; the first attempt
 *                 ignores the backoff of earlier failures, a retry after its
 *                 own failure waits for the backoff. Its sync gets
 *                 max_seconds cut to the time left before the deadline.
 *                 remove_ready in the decision tells the caller when the
 *                 SIM may go (nothing more to upload, or the deadline
 *                 passed).
 *   sim-insert    SIM_INSERTED, if download.on_sim_insert: DOWNLOAD.
 *   hub-changes   HUB_HAS_CHANGES, if download.on_hub_changes: DOWNLOAD
 *                 (another terminal brought changes to the hub).
 *   start         START, if sync.on_start: SYNC.
 *   battery-low   BATTERY when the battery *becomes* low (see below), if
 *                 sync.battery_below > 0: UPLOAD, dropped when nothing is
 *                 pending.
 *   continue      a sync that ended PARTIAL (stopped at a limit): the same
 *                 direction again, sync.continue_seconds after it ended,
 *                 not at the next periodic slot. Never asked.
 *
 * Condition triggers are states that hold or not at a given time:
 *   periodic      sync.every_seconds > 0: no full (both-ways) sync has
 *                 ended OK, and periodic has not fired, for that long (since
 *                 policy_init at first): SYNC.
 *   after-update  sync.after_update: there were data changes since
 *                 after-update last fired, and either none came for
 *                 sync.debounce_seconds, or sync.debounce_max_seconds
 *                 (when > 0) have passed since the first of them, so
 *                 continuous editing still syncs: UPLOAD.
 *   pending       upload.pending_bytes > 0: the pending byte count reported
 *                 by the latest START / DATA_CHANGED is at least that size:
 *                 UPLOAD. Fires once per reported count; it is armed again
 *                 by the next DATA_CHANGED (so an upload that cannot shrink
 *                 the count does not loop).
 *   idle          sync.idle_seconds > 0: no DATA_CHANGED and no
 *                 USER_ACTIVITY for that long (since policy_init at first):
 *                 SYNC. Once per quiet stretch: a full sync that started
 *                 in the stretch and ended OK also counts.
 * sync.combine says how conditions combine:
 *   any   each enabled condition fires on its own when it holds;
 *   all   they fire together, once every enabled condition holds at the
 *         same time (e.g. idle AND pending >= size); a condition that
 *         holds early waits, still holding, for the others. With no
 *         condition enabled, none fires.
 * Every condition, once it holds, keeps holding until an event changes
 * something, so "at the same time" is decided exactly at any decide().
 * Conditions are evaluated by policy_decide(), only while the SIM is in
 * (see SIM below) and no sync is in flight: the end of a sync can change
 * what holds (an OK full sync restarts the periodic clock), and whatever
 * held meanwhile still holds when it ends.
 *
 * One decision serves many requests. policy_decide() picks, in order:
 *   1. nothing while a sync is in flight (between a decision that started
 *      one and its SYNC_DONE): events meanwhile are remembered, and the
 *      requests they leave wait for SYNC_DONE;
 *   2. the commands: the union of their directions;
 *   3. the sim-remove upload;
 *   4. nothing while a question is outstanding (ASK without an answer);
 *   5. every other request, directions united (UPLOAD + DOWNLOAD = SYNC),
 *      unless: no SIM, or the backoff / continue gap holds (until
 *      hold time), or the battery removes all of it (below).
 * The decision names the first trigger of that order (command, sim-remove,
 * continue, battery-low, sim-insert, start, pending, after-update, idle,
 * periodic) and lists all the triggers it serves in `triggers`.
 *
 * Battery. The battery is low when sync.battery_below > 0, the last BATTERY
 * event gave a level below it and the terminal is not charging. While low,
 * automatic decisions (step 5) lose their download half: SYNC becomes
 * UPLOAD, and is dropped when nothing is pending; DOWNLOAD waits (its request
 * stays) until charging or the level is back at sync.battery_below or
 * above. A request for an upload only (after-update, pending) that finds
 * nothing pending while low is dropped, not kept until charging. Commands
 * and the sim-remove upload are not affected.
 *
 * Confirmation. With sync.confirm, a step-5 decision becomes ASK with
 * `then` = the action that would run. The caller asks the user and feeds
 * CONFIRM_YES or CONFIRM_NO. YES: the next decide() starts the sync, and
 * retries after failures of it do not ask again until a sync ends OK. NO:
 * the requests that were asked about are dropped, so nothing is asked again
 * until a trigger fires anew (the next periodic slot, the next change, the
 * next quiet stretch, ...). Requests made while the question was open are
 * kept, and asked about next. Commands, the sim-remove upload and
 * continuations are never asked.
 *
 * Failures and backoff. After a FAILED sync, automatic requests wait
 * sync.retry_min_seconds, doubling with each consecutive failure up to
 * sync.retry_max_seconds. An OK or PARTIAL sync resets the count. After a
 * PARTIAL sync the continue gap (sync.continue_seconds) takes the place of
 * the backoff.
 *
 * SIM. policy_init() assumes a SIM is in. SIM_REMOVING means the user is
 * about to take it out: automatic triggers stop, only the sim-remove
 * upload (and commands) may run. SIM_REMOVED means it is out: every
 * automatic request is dropped, and nothing automatic happens until
 * SIM_INSERTED. Send SIM_REMOVED after policy_init() when starting without
 * a SIM.
 *
 * Notices, reported in every decision:
 *   POLICY_NOTICE_UNSYNCED     local changes have been waiting for upload
 *                              for notice.unsynced_seconds or more (when
 *                              > 0); unsynced_since says since when.
 *   POLICY_NOTICE_HUB_CHANGES  HUB_HAS_CHANGES came and no download has
 *                              ended OK since; cleared only by a download
 *                              that started after the event.
 *
 * Caveats: the policy trusts the caller's pending byte counts; the limits it
 * hands out are enforced by the engine, not here.
 */
#ifndef SIMSYNC_POLICY_H
#define SIMSYNC_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include "simsync.h"

/* "No such time": a wake_at that never comes, an absent unsynced_since. */
#define POLICY_NEVER INT64_MAX

/* Bound on every duration key (ten years, in seconds). */
#define POLICY_DURATION_MAX ((uint64_t)3650 * 86400)

/* Room for policy_cfg_format()'s text, and for a decision's reason. */
#define POLICY_CFG_TEXT_MAX 2048
#define POLICY_REASON_MAX 256

/* ----------------------------------------------------------- configuration
 *
 * Every field has a key for `simsync policy set KEY VALUE` (given after the
 * field). Durations are in seconds, sizes in bytes; 0 turns a trigger or a
 * limit off unless said otherwise. Booleans are 0 or 1. */
enum policy_combine {
    POLICY_COMBINE_ANY, /* "any": each condition fires on its own */
    POLICY_COMBINE_ALL  /* "all": every enabled condition must hold */
};

struct policy_cfg {
    /* event triggers */
    int upload_on_sim_remove;   /* upload.on_sim_remove (default 1) */
    int download_on_sim_insert; /* download.on_sim_insert (default 1) */
    int download_on_hub_changes; /* download.on_hub_changes (default 0) */
    int sync_on_start;          /* sync.on_start (default 1) */
    uint64_t battery_below;     /* sync.battery_below, percent 0..100
                                 * (default 15; 0: battery ignored) */
    /* condition triggers */
    uint64_t every_seconds;        /* sync.every_seconds (default 3600) */
    int after_update;              /* sync.after_update (default 1) */
    uint64_t debounce_seconds;     /* sync.debounce_seconds (default 30);
                                    * 0: right after each change */
    uint64_t debounce_max_seconds; /* sync.debounce_max_seconds (default
                                    * 300; 0: no cap); >= debounce */
    uint64_t pending_bytes;        /* upload.pending_bytes (default 0) */
    uint64_t idle_seconds;         /* sync.idle_seconds (default 0) */
    enum policy_combine combine;   /* sync.combine, any|all (default any) */
    /* confirmation */
    int confirm; /* sync.confirm: ask before automatic syncs (default 0) */
    /* per-sync limits, handed out with every sync (0: none) */
    uint64_t max_bytes;        /* sync.max_bytes: up + down together */
    uint64_t max_seconds;      /* sync.max_seconds: the whole sync */
    uint64_t up_max_bytes;     /* upload.max_bytes */
    uint64_t up_max_seconds;   /* upload.max_seconds */
    uint64_t down_max_bytes;   /* download.max_bytes */
    uint64_t down_max_seconds; /* download.max_seconds */
    uint64_t continue_seconds; /* sync.continue_seconds: gap after a
                                * partial sync (default 0: at once) */
    /* notices */
    uint64_t notice_unsynced_seconds; /* notice.unsynced_seconds
                                       * (default 86400; 0: never) */
    /* failures */
    uint64_t retry_min_seconds; /* sync.retry_min_seconds, >= 1 (def. 5) */
    uint64_t retry_max_seconds; /* sync.retry_max_seconds, >= retry_min
                                 * (default 300) */
    /* SIM removal */
    uint64_t remove_timeout_seconds; /* sim.remove_timeout_seconds, >= 1
                                      * (default 30): how long the caller
                                      * waits for the upload */
};

/* Fill *cfg with the defaults given above. */
void policy_cfg_default(struct policy_cfg *cfg);

/* SIMSYNC_OK when every field is in range and retry_min_seconds <=
 * retry_max_seconds and (debounce_max_seconds == 0 or debounce_seconds <=
 * debounce_max_seconds); else SIMSYNC_EINVAL with the reason in err
 * (err may be NULL; errlen bytes, always NUL-terminated when errlen > 0). */
int policy_cfg_check(const struct policy_cfg *cfg, char *err,
                     size_t errlen) SIMSYNC_MUST_CHECK;

/* Set one key from its text form.
 *
 * [in,out] cfg  changed only on success, and only if the result passes
 *               policy_cfg_check().
 * [in] key      a key name as listed by policy_cfg_key().
 * [in] value    NUL-terminated text, no surrounding blanks:
 *               - bool: on, off, yes, no, true, false, 1, 0;
 *               - duration: decimal digits, optionally followed by one
 *                 unit s, m, h or d (90s, 15m, 6h, 1d; plain = seconds),
 *                 at most POLICY_DURATION_MAX seconds;
 *               - size: decimal digits, optionally followed by k or K
 *                 (1024), M (1024^2) or G (1024^3), up to UINT64_MAX;
 *               - percent: 0..100, optionally followed by % (15, 15%);
 *               - combine: any, all.
 * [out] err     the reason on failure, naming the key and what is accepted
 *               (may be NULL).
 *
 * Returns SIMSYNC_OK, SIMSYNC_ENOTFOUND (unknown key) or SIMSYNC_EINVAL
 * (empty, negative, not a number, unknown unit, out of range or too large,
 * or in conflict with another key). */
int policy_cfg_set(struct policy_cfg *cfg, const char *key, const char *value,
                   char *err, size_t errlen) SIMSYNC_MUST_CHECK;

/* Write key's current value, in the form policy_cfg_set() reads back, into
 * buf (len bytes). Durations and sizes use the largest unit that divides
 * them exactly ("1h", "90s", "4M"; 0 is "0"), booleans "on"/"off".
 * Returns SIMSYNC_OK, SIMSYNC_ENOTFOUND or SIMSYNC_ETOOBIG (buf too small;
 * 32 bytes always suffice). */
int policy_cfg_get(const struct policy_cfg *cfg, const char *key, char *buf,
                   size_t len) SIMSYNC_MUST_CHECK;

/* A key, for listings (`simsync policy show`). */
struct policy_key {
    const char *name; /* "sync.every_seconds" */
    const char *kind; /* "bool", "duration", "size", "percent", "any|all" */
    const char *help; /* one line of English */
};

/* The i-th key (0, 1, ... in a fixed order), or NULL past the last. The
 * pointer is to static data. */
const struct policy_key *policy_cfg_key(size_t i);

/* Every key as "key value\n" lines, in policy_cfg_key() order, into buf
 * (len bytes, POLICY_CFG_TEXT_MAX is enough). Returns SIMSYNC_OK or
 * SIMSYNC_ETOOBIG (buf too small; it then holds a truncated text). */
int policy_cfg_format(const struct policy_cfg *cfg, char *buf,
                      size_t len) SIMSYNC_MUST_CHECK;

/* Read a text of "key value" lines (as written by policy_cfg_format();
 * blank lines and lines starting with '#' are skipped, blanks around key and
 * value and a trailing '\r' are ignored). Keys not given take their
 * default. All or nothing: *cfg is written only when the whole text is
 * valid. Errors name the line: "line 3: unknown policy key 'x'". A key given
 * twice is an error. Returns SIMSYNC_OK, SIMSYNC_ENOTFOUND (unknown key) or
 * SIMSYNC_EINVAL. */
int policy_cfg_parse(struct policy_cfg *cfg, const char *text, char *err,
                     size_t errlen) SIMSYNC_MUST_CHECK;

/* ----------------------------------------------------------------- events */
enum policy_event_type {
    POLICY_EV_TICK,             /* time passes; nothing else */
    POLICY_EV_START,            /* daemon started; pending_bytes */
    POLICY_EV_SIM_INSERTED,     /* a SIM went in (or a removal was undone) */
    POLICY_EV_SIM_REMOVING,     /* the SIM is about to be taken out */
    POLICY_EV_SIM_REMOVED,      /* the SIM is out */
    POLICY_EV_DATA_CHANGED,     /* local data changed; pending_bytes */
    POLICY_EV_USER_ACTIVITY,    /* the user did something (not data) */
    POLICY_EV_BATTERY,          /* battery_level, charging */
    POLICY_EV_HUB_HAS_CHANGES,  /* the hub has changes not fetched here */
    POLICY_EV_COMMAND_SYNC,     /* the user asked: sync both ways */
    POLICY_EV_COMMAND_UPLOAD,   /* the user asked: upload */
    POLICY_EV_COMMAND_DOWNLOAD, /* the user asked: download */
    POLICY_EV_CONFIRM_YES,      /* the answer to an ASK: go */
    POLICY_EV_CONFIRM_NO,       /* the answer to an ASK: do not */
    POLICY_EV_SYNC_DONE         /* the sync in flight ended; result, ... */
};

enum policy_result {
    POLICY_RESULT_OK,     /* everything in scope was moved */
    POLICY_RESULT_FAILED, /* error; nothing is assumed moved */
    POLICY_RESULT_PARTIAL /* stopped at a limit; more to do */
};

/* One event. Fields not listed for a type are ignored. */
struct policy_event {
    enum policy_event_type type;
    int64_t now;               /* when it happened (ms, monotonic) */
    uint64_t pending_bytes;    /* START, DATA_CHANGED, SYNC_DONE: local bytes
                                * not yet uploaded, in total, now */
    int battery_level;         /* BATTERY: percent 0..100, -1 unknown */
    int charging;              /* BATTERY: nonzero on external power */
    enum policy_result result; /* SYNC_DONE */
    uint64_t bytes_up;         /* SYNC_DONE: bytes uploaded (for the log) */
    uint64_t bytes_down;       /* SYNC_DONE: bytes downloaded (for the log) */
};

/* -------------------------------------------------------------- decisions */
enum policy_action {
    POLICY_NONE = 0,     /* nothing to start now */
    POLICY_UPLOAD = 1,   /* upload pending local changes only */
    POLICY_DOWNLOAD = 2, /* fetch the hub's changes only */
    POLICY_SYNC = 3,     /* both ways (= UPLOAD | DOWNLOAD) */
    POLICY_ASK = 4       /* ask the user first; see `then` */
};

/* What fired, in the order of precedence; the names policy_trigger_name()
 * gives are in quotes. */
enum policy_trigger {
    POLICY_TRIG_NONE,         /* "none" */
    POLICY_TRIG_COMMAND,      /* "command" */
    POLICY_TRIG_SIM_REMOVE,   /* "sim-remove" */
    POLICY_TRIG_CONTINUE,     /* "continue" */
    POLICY_TRIG_BATTERY_LOW,  /* "battery-low" */
    POLICY_TRIG_SIM_INSERT,   /* "sim-insert" */
    POLICY_TRIG_START,        /* "start" */
    POLICY_TRIG_HUB_CHANGES,  /* "hub-changes" */
    POLICY_TRIG_PENDING,      /* "pending" */
    POLICY_TRIG_AFTER_UPDATE, /* "after-update" */
    POLICY_TRIG_IDLE,         /* "idle" */
    POLICY_TRIG_PERIODIC,     /* "periodic" */
    POLICY_TRIG_COUNT         /* number of values, not a trigger */
};

/* Bit of trigger t in policy_decision.triggers. */
#define POLICY_TRIG_BIT(t) (1u << (unsigned)(t))

#define POLICY_NOTICE_UNSYNCED 1u /* see "Notices" above */
#define POLICY_NOTICE_HUB_CHANGES 2u

/* Limits for one sync, in bytes and seconds; 0 means none. */
struct policy_limits {
    uint64_t max_bytes;        /* up and down together */
    uint64_t max_seconds;      /* the whole sync */
    uint64_t up_max_bytes;     /* the upload part */
    uint64_t up_max_seconds;   /* the upload part */
    uint64_t down_max_bytes;   /* the download part */
    uint64_t down_max_seconds; /* the download part */
};

struct policy_decision {
    enum policy_action action;      /* what to do now */
    enum policy_action then;        /* ASK: what a yes starts; else = action */
    enum policy_trigger trigger;    /* the first trigger served (NONE when
                                     * action is NONE) */
    uint32_t triggers;              /* POLICY_TRIG_BIT of each served */
    char reason[POLICY_REASON_MAX]; /* one line for the log: why this, or
                                     * why nothing ("backing off ...") */
    struct policy_limits limits;    /* for the sync started (zero for NONE) */
    int64_t wake_at;                /* call policy_decide() again at this time
                                     * if no event comes first; POLICY_NEVER:
                                     * only an event can change anything */
    unsigned notices;               /* POLICY_NOTICE_* */
    int64_t unsynced_since;         /* oldest local change not uploaded, or
                                     * POLICY_NEVER */
    int remove_ready;               /* after SIM_REMOVING: 1 when the SIM may
                                     * go now (nothing more will be uploaded
                                     * for it); else 0 */
};

/* ------------------------------------------------------------------ state
 *
 * The caller allocates the struct (it is plain data, copyable) and sets it
 * up with policy_init(). Its fields belong to policy.c: read them only in
 * tests and debugging. */
struct policy {
    struct policy_cfg cfg;
    int64_t now; /* latest time seen */

    unsigned want[POLICY_TRIG_COUNT];  /* directions still requested */
    unsigned later[POLICY_TRIG_COUNT]; /* requests made while in flight */
    char note[POLICY_TRIG_COUNT][80];  /* why each request was made */

    int in_flight;               /* a decision started a sync, no SYNC_DONE */
    unsigned flight_action;      /* its directions */
    uint32_t flight_triggers;    /* POLICY_TRIG_BIT of the triggers it served */
    int64_t flight_started;      /* when it was decided */
    int flight_changed;          /* DATA_CHANGED came during it */
    int64_t flight_first_change; /* the first of those */
    unsigned flight_hub_seq;     /* hub_seq when it started */

    int asking;     /* an ASK is outstanding */
    uint32_t asked; /* the triggers it asked about */
    int confirmed;  /* YES given; cleared by an OK sync */

    unsigned fails;          /* consecutive failed syncs */
    int64_t hold_until;      /* automatic requests wait until then */
    unsigned remove_fails;   /* failures of the sim-remove upload */
    int64_t remove_deadline; /* the sim-remove upload's, or NEVER */

    int64_t periodic_from;  /* periodic fires every_seconds after this */
    int64_t upd_first;      /* first change since after-update fired */
    int64_t upd_last;       /* latest change */
    int pending_armed;      /* pending may fire for the current count */
    uint64_t pending;       /* pending bytes last reported */
    int64_t quiet_since;    /* last data change or user activity */
    int64_t idle_served;    /* the quiet_since idle last served */
    int64_t unsynced_since; /* oldest change not uploaded, or NEVER */

    int sim;           /* 0 out, 1 in, 2 being removed */
    int battery_level; /* -1 unknown */
    int charging;      /* on external power */
    int hub_changes;   /* the hub-changes notice is up */
    unsigned hub_seq;  /* HUB_HAS_CHANGES events counted */
};

/* Start with `cfg` (copied) at time `now`: no requests, nothing in flight,
 * a SIM in, battery unknown, nothing pending. Returns SIMSYNC_OK or
 * SIMSYNC_EINVAL (NULL argument, or cfg fails policy_cfg_check()). */
int policy_init(struct policy *p, const struct policy_cfg *cfg,
                int64_t now) SIMSYNC_MUST_CHECK;

/* Replace the configuration of a running policy (after `policy set`);
 * the state is kept. Returns SIMSYNC_OK or SIMSYNC_EINVAL as above. */
int policy_reconfig(struct policy *p,
                    const struct policy_cfg *cfg) SIMSYNC_MUST_CHECK;

/* Feed one event (borrowed for the call).
 * Returns SIMSYNC_OK; SIMSYNC_EINVAL for an unknown type, a battery level
 * outside -1..100 or an unknown result (the event is ignored); SIMSYNC_ESTATE
 * for SYNC_DONE with no sync in flight or CONFIRM_* with no question
 * outstanding (ignored: e.g. an answer that came too late). */
int policy_event(struct policy *p,
                 const struct policy_event *ev) SIMSYNC_MUST_CHECK;

/* Decide what to do at `now`, into *out (zeroed first). A decision that
 * starts a sync (UPLOAD, DOWNLOAD, SYNC) marks it in flight: until
 * SYNC_DONE, every decision is NONE. A decision of ASK marks the question
 * outstanding: until CONFIRM_YES / _NO, nothing but commands and the
 * sim-remove upload starts. So calling it twice never starts two syncs. */
void policy_decide(struct policy *p, int64_t now, struct policy_decision *out);

/* "sync", "upload", "download", "ask", "none"; never NULL. */
const char *policy_action_name(enum policy_action a);
/* The trigger names listed in enum policy_trigger; "?" when out of range.
 * They are stable: logs and scripts match them. */
const char *policy_trigger_name(enum policy_trigger t);

#endif /* SIMSYNC_POLICY_H */
