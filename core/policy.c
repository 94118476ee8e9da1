/* policy.c -- the trigger policy: configuration keys and their text form,
 * the event feed, and the decision. See policy.h for the semantics. Pure
 * code: all state lives in the struct policy it is given. */
#include "policy.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define UP ((unsigned)POLICY_UPLOAD)
#define DOWN ((unsigned)POLICY_DOWNLOAD)
#define BOTH ((unsigned)POLICY_SYNC)

#define NOT_HELD INT64_MIN /* hold_until when nothing is held */
#define ALWAYS INT64_MIN   /* a condition that holds whatever the time */

enum sim_state { SIM_OUT, SIM_IN, SIM_LEAVING };

#define BIT(t) POLICY_TRIG_BIT(t)

/* ================================================================ config */

enum kind { K_BOOL, K_DURATION, K_SIZE, K_PERCENT, K_COMBINE };

struct key_def {
    struct policy_key pub;
    enum kind kind;
    size_t off; /* of the field in struct policy_cfg */
    uint64_t min;
};

#define KEY(name, kind, kname, field, min, help)                               \
    {                                                                          \
        {name, kname, help}, kind, offsetof(struct policy_cfg, field), min     \
    }

static const struct key_def keys[] = {
    KEY("upload.on_sim_remove", K_BOOL, "bool", upload_on_sim_remove, 0,
        "upload pending changes before the SIM is taken out"),
    KEY("download.on_sim_insert", K_BOOL, "bool", download_on_sim_insert, 0,
        "download when a SIM is inserted"),
    KEY("download.on_hub_changes", K_BOOL, "bool", download_on_hub_changes, 0,
        "download when the hub says another terminal brought changes"),
    KEY("sync.on_start", K_BOOL, "bool", sync_on_start, 0,
        "sync when the daemon starts"),
    KEY("sync.every_seconds", K_DURATION, "duration", every_seconds, 0,
        "sync periodically, this long after the last full sync (0: off)"),
    KEY("sync.after_update", K_BOOL, "bool", after_update, 0,
        "upload after data changes, debounced"),
    KEY("sync.debounce_seconds", K_DURATION, "duration", debounce_seconds, 0,
        "after-update waits until no change came for this long"),
    KEY("sync.debounce_max_seconds", K_DURATION, "duration",
        debounce_max_seconds, 0,
        "but at most this long after the first change (0: no cap)"),
    KEY("upload.pending_bytes", K_SIZE, "size", pending_bytes, 0,
        "upload when this many bytes are pending (0: off)"),
    KEY("sync.idle_seconds", K_DURATION, "duration", idle_seconds, 0,
        "sync after no change and no activity for this long (0: off)"),
    KEY("sync.battery_below", K_PERCENT, "percent", battery_below, 0,
        "below this charge and not charging: upload only (0: off)"),
    KEY("sync.combine", K_COMBINE, "any|all", combine, 0,
        "conditions fire on their own (any) or together (all)"),
    KEY("sync.confirm", K_BOOL, "bool", confirm, 0,
        "ask the user before an automatic sync"),
    KEY("sync.max_bytes", K_SIZE, "size", max_bytes, 0,
        "stop a sync after this many bytes, both ways (0: no limit)"),
    KEY("sync.max_seconds", K_DURATION, "duration", max_seconds, 0,
        "stop a sync after this long (0: no limit)"),
    KEY("upload.max_bytes", K_SIZE, "size", up_max_bytes, 0,
        "upload at most this many bytes per sync (0: no limit)"),
    KEY("upload.max_seconds", K_DURATION, "duration", up_max_seconds, 0,
        "upload for at most this long per sync (0: no limit)"),
    KEY("download.max_bytes", K_SIZE, "size", down_max_bytes, 0,
        "download at most this many bytes per sync (0: no limit)"),
    KEY("download.max_seconds", K_DURATION, "duration", down_max_seconds, 0,
        "download for at most this long per sync (0: no limit)"),
    KEY("sync.continue_seconds", K_DURATION, "duration", continue_seconds, 0,
        "continue a sync stopped at a limit after this gap"),
    KEY("notice.unsynced_seconds", K_DURATION, "duration",
        notice_unsynced_seconds, 0,
        "notice when local changes wait longer than this (0: never)"),
    KEY("sync.retry_min_seconds", K_DURATION, "duration", retry_min_seconds, 1,
        "first wait after a failed sync; doubles with each failure"),
    KEY("sync.retry_max_seconds", K_DURATION, "duration", retry_max_seconds, 1,
        "longest wait after failed syncs"),
    KEY("sim.remove_timeout_seconds", K_DURATION, "duration",
        remove_timeout_seconds, 1, "how long SIM removal waits for the upload"),
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

void
policy_cfg_default(struct policy_cfg *cfg)
{
    assert(cfg != NULL);
    memset(cfg, 0, sizeof(*cfg));
    cfg->upload_on_sim_remove = 1;
    cfg->download_on_sim_insert = 1;
    cfg->sync_on_start = 1;
    cfg->battery_below = 15;
    cfg->every_seconds = 3600;
    cfg->after_update = 1;
    cfg->debounce_seconds = 30;
    cfg->debounce_max_seconds = 300;
    cfg->combine = POLICY_COMBINE_ANY;
    cfg->notice_unsynced_seconds = 86400;
    cfg->retry_min_seconds = 5;
    cfg->retry_max_seconds = 300;
    cfg->remove_timeout_seconds = 30;
}

static uint64_t
kind_max(enum kind k)
{
    switch (k) {
    case K_BOOL:
    case K_COMBINE:
        return 1;
    case K_PERCENT:
        return 100;
    case K_DURATION:
        return POLICY_DURATION_MAX;
    case K_SIZE:
        break;
    }
    return UINT64_MAX;
}

static const char *
kind_expects(enum kind k)
{
    switch (k) {
    case K_BOOL:
        return "on or off";
    case K_DURATION:
        return "seconds, or a number with unit s, m, h or d (90s, 15m, 6h, "
               "1d)";
    case K_SIZE:
        return "bytes, or a number with k, M or G (512k, 10M, 1G)";
    case K_PERCENT:
        return "a percentage from 0 to 100 (15 or 15%)";
    case K_COMBINE:
        break;
    }
    return "any or all";
}

/* The field of k in cfg, widened. Copies through memcpy: the field is an
 * int, an enum or a uint64_t according to k->kind. */
static uint64_t
field_get(const struct policy_cfg *cfg, const struct key_def *k)
{
    const char *at = (const char *)cfg + k->off;
    uint64_t v64;
    int vi;
    enum policy_combine vc;

    switch (k->kind) {
    case K_BOOL:
        memcpy(&vi, at, sizeof(vi));
        return (uint64_t)(vi != 0);
    case K_COMBINE:
        memcpy(&vc, at, sizeof(vc));
        return (uint64_t)vc;
    default:
        memcpy(&v64, at, sizeof(v64));
        return v64;
    }
}

static void
field_put(struct policy_cfg *cfg, const struct key_def *k, uint64_t v)
{
    char *at = (char *)cfg + k->off;
    int vi = (int)v;
    enum policy_combine vc = v ? POLICY_COMBINE_ALL : POLICY_COMBINE_ANY;

    if (k->kind == K_BOOL)
        memcpy(at, &vi, sizeof(vi));
    else if (k->kind == K_COMBINE)
        memcpy(at, &vc, sizeof(vc));
    else
        memcpy(at, &v, sizeof(v));
}

static const struct key_def *
key_find(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].pub.name, name) == 0)
            return &keys[i];
    return NULL;
}

const struct policy_key *
policy_cfg_key(size_t i)
{
    return i < NKEYS ? &keys[i].pub : NULL;
}

static void
put_err(char *err, size_t errlen, const char *msg)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", msg);
}

int
policy_cfg_check(const struct policy_cfg *cfg, char *err, size_t errlen)
{
    char msg[200];

    if (cfg == NULL) {
        put_err(err, errlen, "no policy configuration given");
        return SIMSYNC_EINVAL;
    }
    for (size_t i = 0; i < NKEYS; i++) {
        uint64_t v = field_get(cfg, &keys[i]);
        if (v < keys[i].min || v > kind_max(keys[i].kind)) {
            snprintf(msg, sizeof(msg), "%s: %" PRIu64 " is out of range",
                     keys[i].pub.name, v);
            put_err(err, errlen, msg);
            return SIMSYNC_EINVAL;
        }
    }
    if (cfg->retry_min_seconds > cfg->retry_max_seconds) {
        snprintf(msg, sizeof(msg),
                 "sync.retry_min_seconds (%" PRIu64 " s) exceeds "
                 "sync.retry_max_seconds (%" PRIu64 " s); raise the maximum "
                 "first",
                 cfg->retry_min_seconds, cfg->retry_max_seconds);
        put_err(err, errlen, msg);
        return SIMSYNC_EINVAL;
    }
    if (cfg->debounce_max_seconds != 0 &&
        cfg->debounce_seconds > cfg->debounce_max_seconds) {
        snprintf(msg, sizeof(msg),
                 "sync.debounce_seconds (%" PRIu64 " s) exceeds "
                 "sync.debounce_max_seconds (%" PRIu64 " s); raise the cap "
                 "first, or set it to 0 (no cap)",
                 cfg->debounce_seconds, cfg->debounce_max_seconds);
        put_err(err, errlen, msg);
        return SIMSYNC_EINVAL;
    }
    return SIMSYNC_OK;
}

/* Decimal digits at *s into *v; *s moves past them. 0 on success, -1 when
 * there is no digit, -2 on overflow. */
static int
parse_digits(const char **s, uint64_t *v)
{
    const char *p = *s;
    uint64_t n = 0;

    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (n > (UINT64_MAX - d) / 10)
            return -2;
        n = n * 10 + d;
    }
    *s = p;
    *v = n;
    return 0;
}

/* The multiplier of unit text u for kind k, 0 when u is not one. */
static uint64_t
unit_factor(enum kind k, const char *u)
{
    if (*u == '\0')
        return 1;
    if (u[1] != '\0')
        return 0;
    if (k == K_DURATION) {
        switch (*u) {
        case 's':
            return 1;
        case 'm':
            return 60;
        case 'h':
            return 3600;
        case 'd':
            return 86400;
        }
    } else if (k == K_SIZE) {
        switch (*u) {
        case 'k':
        case 'K':
            return 1024;
        case 'M':
            return 1024 * 1024;
        case 'G':
            return 1024 * 1024 * 1024;
        }
    } else if (k == K_PERCENT && *u == '%') {
        return 1;
    }
    return 0;
}

static int
parse_word(enum kind k, const char *value, uint64_t *v)
{
    static const char *const on[] = {"on", "yes", "true", "1"};
    static const char *const off[] = {"off", "no", "false", "0"};

    for (size_t i = 0; k == K_BOOL && i < 4; i++) {
        if (strcmp(value, on[i]) == 0)
            return (*v = 1, 0);
        if (strcmp(value, off[i]) == 0)
            return (*v = 0, 0);
    }
    if (k == K_COMBINE && strcmp(value, "any") == 0)
        return (*v = 0, 0);
    if (k == K_COMBINE && strcmp(value, "all") == 0)
        return (*v = 1, 0);
    return -1;
}

/* Parse value for key k into *v (not range-checked against k->min),
 * or write the reason into msg. */
static int
parse_value(const struct key_def *k, const char *value, uint64_t *v, char *msg,
            size_t msglen)
{
    const char *name = k->pub.name, *want = kind_expects(k->kind);
    const char *s = value;
    uint64_t n, f;
    int rc;

    if (*value == '\0') {
        snprintf(msg, msglen, "%s: empty value; expected %s", name, want);
        return SIMSYNC_EINVAL;
    }
    if (k->kind == K_BOOL || k->kind == K_COMBINE) {
        if (parse_word(k->kind, value, v) == 0)
            return SIMSYNC_OK;
        snprintf(msg, msglen, "%s: '%.40s' is not %s", name, value, want);
        return SIMSYNC_EINVAL;
    }
    if (*value == '-') {
        snprintf(msg, msglen, "%s: '%.40s' is negative; expected %s", name,
                 value, want);
        return SIMSYNC_EINVAL;
    }
    rc = parse_digits(&s, &n);
    if (rc == -1) {
        snprintf(msg, msglen, "%s: '%.40s' is not a number; expected %s", name,
                 value, want);
        return SIMSYNC_EINVAL;
    }
    f = rc == 0 ? unit_factor(k->kind, s) : 1;
    if (rc == 0 && f == 0) {
        snprintf(msg, msglen,
                 "%s: unknown unit '%.20s' in '%.40s'; expected %s", name, s,
                 value, want);
        return SIMSYNC_EINVAL;
    }
    if (rc == -2 || n > kind_max(k->kind) / f) {
        snprintf(msg, msglen,
                 "%s: '%.40s' is too large (at most %" PRIu64 "%s)", name,
                 value, kind_max(k->kind), k->kind == K_DURATION ? " s" : "");
        return SIMSYNC_EINVAL;
    }
    *v = n * f;
    if (*v < k->min) {
        snprintf(msg, msglen, "%s: '%.40s' is below the minimum %" PRIu64, name,
                 value, k->min);
        return SIMSYNC_EINVAL;
    }
    return SIMSYNC_OK;
}

int
policy_cfg_set(struct policy_cfg *cfg, const char *key, const char *value,
               char *err, size_t errlen)
{
    const struct key_def *k;
    struct policy_cfg next;
    char msg[256];
    uint64_t v = 0;
    int rc;

    if (cfg == NULL || key == NULL || value == NULL) {
        put_err(err, errlen, "policy set: missing key or value");
        return SIMSYNC_EINVAL;
    }
    k = key_find(key);
    if (k == NULL) {
        snprintf(msg, sizeof(msg),
                 "unknown policy key '%.60s' (`simsync policy show` lists "
                 "the keys)",
                 key);
        put_err(err, errlen, msg);
        return SIMSYNC_ENOTFOUND;
    }
    rc = parse_value(k, value, &v, msg, sizeof(msg));
    if (rc != SIMSYNC_OK) {
        put_err(err, errlen, msg);
        return rc;
    }
    next = *cfg;
    field_put(&next, k, v);
    rc = policy_cfg_check(&next, err, errlen);
    if (rc == SIMSYNC_OK)
        *cfg = next;
    return rc;
}

/* v with the largest unit of kind k that divides it exactly. */
static int
format_value(enum kind k, uint64_t v, char *buf, size_t len)
{
    static const char dur_u[] = "dhm", size_u[] = "GMk";
    static const uint64_t dur_f[] = {86400, 3600, 60};
    static const uint64_t size_f[] = {1024 * 1024 * 1024, 1024 * 1024, 1024};
    const char *u = k == K_DURATION ? dur_u : size_u;
    const uint64_t *f = k == K_DURATION ? dur_f : size_f;
    int n;

    if (k == K_BOOL)
        n = snprintf(buf, len, "%s", v ? "on" : "off");
    else if (k == K_COMBINE)
        n = snprintf(buf, len, "%s", v ? "all" : "any");
    else {
        size_t i = 0;
        if (k == K_PERCENT || v == 0)
            i = 3;
        while (i < 3 && v % f[i] != 0)
            i++;
        if (i < 3)
            n = snprintf(buf, len, "%" PRIu64 "%c", v / f[i], u[i]);
        else
            n = snprintf(buf, len, "%" PRIu64 "%s", v,
                         k == K_DURATION && v != 0 ? "s" : "");
    }
    return n < 0 || (size_t)n >= len ? SIMSYNC_ETOOBIG : SIMSYNC_OK;
}

int
policy_cfg_get(const struct policy_cfg *cfg, const char *key, char *buf,
               size_t len)
{
    const struct key_def *k;

    if (cfg == NULL || key == NULL || buf == NULL || len == 0)
        return SIMSYNC_EINVAL;
    buf[0] = '\0';
    k = key_find(key);
    if (k == NULL)
        return SIMSYNC_ENOTFOUND;
    return format_value(k->kind, field_get(cfg, k), buf, len);
}

int
policy_cfg_format(const struct policy_cfg *cfg, char *buf, size_t len)
{
    size_t at = 0;

    if (cfg == NULL || buf == NULL || len == 0)
        return SIMSYNC_EINVAL;
    buf[0] = '\0';
    for (size_t i = 0; i < NKEYS; i++) {
        char v[32];
        int n;

        if (format_value(keys[i].kind, field_get(cfg, &keys[i]), v,
                         sizeof(v)) != SIMSYNC_OK)
            return SIMSYNC_ETOOBIG;
        n = snprintf(buf + at, len - at, "%s %s\n", keys[i].pub.name, v);
        if (n < 0 || (size_t)n >= len - at)
            return SIMSYNC_ETOOBIG;
        at += (size_t)n;
    }
    return SIMSYNC_OK;
}

/* Parse value for k and store it in cfg (cross-key checks come later). */
static int
apply_value(struct policy_cfg *cfg, const struct key_def *k, const char *value,
            char *msg, size_t msglen)
{
    uint64_t v = 0;
    int rc = parse_value(k, value, &v, msg, msglen);

    if (rc == SIMSYNC_OK)
        field_put(cfg, k, v);
    return rc;
}

static int
is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Copy the span [b, e) into out (cap bytes); -1 when it does not fit. */
static int
copy_span(const char *b, const char *e, char *out, size_t cap)
{
    size_t n = (size_t)(e - b);

    if (n >= cap)
        return -1;
    memcpy(out, b, n);
    out[n] = '\0';
    return 0;
}

/* One line [b, e) of a stored text, applied to cfg; seen marks keys. */
static int
parse_line(struct policy_cfg *cfg, const char *b, const char *e,
           unsigned char seen[NKEYS], char *msg, size_t msglen)
{
    const char *kb, *ke;
    char key[64], value[64];
    const struct key_def *k;

    while (b < e && is_blank(*b))
        b++;
    while (e > b && is_blank(e[-1]))
        e--;
    if (b == e || *b == '#')
        return SIMSYNC_OK;
    kb = b;
    while (b < e && !is_blank(*b))
        b++;
    ke = b;
    while (b < e && is_blank(*b))
        b++;
    if (copy_span(kb, ke, key, sizeof(key)) != 0 ||
        (k = key_find(key)) == NULL) {
        snprintf(msg, msglen, "unknown policy key '%.*s'",
                 (int)(ke - kb > 60 ? 60 : ke - kb), kb);
        return SIMSYNC_ENOTFOUND;
    }
    if (seen[k - keys]) {
        snprintf(msg, msglen, "%s given twice", key);
        return SIMSYNC_EINVAL;
    }
    seen[k - keys] = 1;
    if (copy_span(b, e, value, sizeof(value)) != 0) {
        snprintf(msg, msglen, "%s: value too long", key);
        return SIMSYNC_EINVAL;
    }
    return apply_value(cfg, k, value, msg, msglen);
}

int
policy_cfg_parse(struct policy_cfg *cfg, const char *text, char *err,
                 size_t errlen)
{
    struct policy_cfg next;
    unsigned char seen[NKEYS];
    char msg[256], full[300];
    unsigned line = 1;
    int rc;

    if (cfg == NULL || text == NULL) {
        put_err(err, errlen, "no policy text given");
        return SIMSYNC_EINVAL;
    }
    memset(seen, 0, sizeof(seen));
    policy_cfg_default(&next);
    for (const char *b = text; *b != '\0'; line++) {
        const char *e = strchr(b, '\n');

        if (e == NULL)
            e = b + strlen(b);
        rc = parse_line(&next, b, e, seen, msg, sizeof(msg));
        if (rc != SIMSYNC_OK) {
            snprintf(full, sizeof(full), "line %u: %s", line, msg);
            put_err(err, errlen, full);
            return rc;
        }
        b = *e == '\n' ? e + 1 : e;
    }
    rc = policy_cfg_check(&next, msg, sizeof(msg));
    if (rc != SIMSYNC_OK) {
        snprintf(full, sizeof(full), "stored policy: %s", msg);
        put_err(err, errlen, full);
        return rc;
    }
    *cfg = next;
    return SIMSYNC_OK;
}

/* ================================================================= state */

static int64_t
min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int64_t
max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* t + s seconds, in ms; POLICY_NEVER when t is, or on overflow. */
static int64_t
add_s(int64_t t, uint64_t s)
{
    int64_t ms;

    if (t == POLICY_NEVER || s > (uint64_t)(INT64_MAX / 1000))
        return POLICY_NEVER;
    ms = (int64_t)s * 1000;
    if (t > 0 && ms > INT64_MAX - t)
        return POLICY_NEVER;
    return t + ms;
}

/* Whole seconds from a to b (b >= a), for messages: elapsed time rounds
 * down, time left (secs_left) rounds up. */
static long long
secs(int64_t a, int64_t b)
{
    return (long long)((b - a) / 1000);
}

static long long
secs_left(int64_t now, int64_t until)
{
    return (long long)((until - now + 999) / 1000);
}

static int64_t
advance(struct policy *p, int64_t now)
{
    if (now > p->now)
        p->now = now;
    return p->now;
}

static int
battery_low(const struct policy *p)
{
    return p->cfg.battery_below > 0 && p->battery_level >= 0 &&
           (uint64_t)p->battery_level < p->cfg.battery_below && !p->charging;
}

/* Is there anything to upload? */
static int
has_upload(const struct policy *p)
{
    return p->pending > 0 || p->unsynced_since != POLICY_NEVER;
}

static void vnote(char *buf, size_t len, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void
vnote(char *buf, size_t len, const char *fmt, va_list ap)
{
    vsnprintf(buf, len, fmt, ap);
}

/* Leave (or merge into) trigger t's request for directions dir, with the
 * reason. While a sync is in flight the request waits apart, so that the
 * end of that sync does not count as serving it. */
static void latch(struct policy *p, enum policy_trigger t, unsigned dir,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
latch(struct policy *p, enum policy_trigger t, unsigned dir, const char *fmt,
      ...)
{
    va_list ap;

    if (p->in_flight)
        p->later[t] |= dir;
    else
        p->want[t] |= dir;
    va_start(ap, fmt);
    vnote(p->note[t], sizeof(p->note[t]), fmt, ap);
    va_end(ap);
}

/* Triggers whose requests step 5 of policy_decide() serves. */
static int
is_automatic(enum policy_trigger t)
{
    return t != POLICY_TRIG_COMMAND && t != POLICY_TRIG_SIM_REMOVE;
}

/* -------------------------------------------------------------- conditions */

static const enum policy_trigger conditions[] = {
    POLICY_TRIG_PENDING, POLICY_TRIG_AFTER_UPDATE, POLICY_TRIG_IDLE,
    POLICY_TRIG_PERIODIC};
#define NCOND (sizeof(conditions) / sizeof(conditions[0]))

static int
cond_enabled(const struct policy_cfg *c, enum policy_trigger t)
{
    switch (t) {
    case POLICY_TRIG_PENDING:
        return c->pending_bytes > 0;
    case POLICY_TRIG_AFTER_UPDATE:
        return c->after_update;
    case POLICY_TRIG_IDLE:
        return c->idle_seconds > 0;
    case POLICY_TRIG_PERIODIC:
        return c->every_seconds > 0;
    default:
        return 0;
    }
}

/* From when condition t holds if no event comes: ALWAYS, a time, or
 * POLICY_NEVER (disabled, or only an event can make it hold). */
static int64_t
cond_due(const struct policy *p, enum policy_trigger t)
{
    const struct policy_cfg *c = &p->cfg;
    int64_t due;

    if (!cond_enabled(c, t))
        return POLICY_NEVER;
    switch (t) {
    case POLICY_TRIG_PENDING:
        return p->pending_armed && p->pending >= c->pending_bytes
                   ? ALWAYS
                   : POLICY_NEVER;
    case POLICY_TRIG_AFTER_UPDATE:
        if (p->upd_first == POLICY_NEVER)
            return POLICY_NEVER;
        due = add_s(p->upd_last, c->debounce_seconds);
        if (c->debounce_max_seconds > 0)
            due = min64(due, add_s(p->upd_first, c->debounce_max_seconds));
        return due;
    case POLICY_TRIG_IDLE:
        if (p->idle_served == p->quiet_since)
            return POLICY_NEVER;
        return add_s(p->quiet_since, c->idle_seconds);
    default: /* POLICY_TRIG_PERIODIC */
        return add_s(p->periodic_from, c->every_seconds);
    }
}

/* When the conditions fire, combined by sync.combine. */
static int64_t
combined_due(const struct policy *p)
{
    int all = p->cfg.combine == POLICY_COMBINE_ALL;
    int64_t due = all ? ALWAYS : POLICY_NEVER;
    int any_enabled = 0;

    for (size_t i = 0; i < NCOND; i++) {
        if (!cond_enabled(&p->cfg, conditions[i]))
            continue;
        any_enabled = 1;
        if (all)
            due = max64(due, cond_due(p, conditions[i]));
        else
            due = min64(due, cond_due(p, conditions[i]));
    }
    return any_enabled ? due : POLICY_NEVER;
}

/* Condition t fires: leave its request and consume what made it hold. */
static void
cond_fire(struct policy *p, enum policy_trigger t, int64_t now)
{
    const struct policy_cfg *c = &p->cfg;

    switch (t) {
    case POLICY_TRIG_PENDING:
        latch(p, t, UP, "%" PRIu64 " bytes pending (threshold %" PRIu64 ")",
              p->pending, c->pending_bytes);
        p->pending_armed = 0;
        break;
    case POLICY_TRIG_AFTER_UPDATE:
        if (now >= add_s(p->upd_last, c->debounce_seconds))
            latch(p, t, UP, "data changed, then no change for %lld s",
                  secs(p->upd_last, now));
        else
            latch(p, t, UP, "data kept changing for %lld s (debounce cap)",
                  secs(p->upd_first, now));
        p->upd_first = POLICY_NEVER;
        break;
    case POLICY_TRIG_IDLE:
        latch(p, t, BOTH, "idle for %lld s with %" PRIu64 " bytes pending",
              secs(p->quiet_since, now), p->pending);
        p->idle_served = p->quiet_since;
        break;
    default: /* POLICY_TRIG_PERIODIC */
        latch(p, t, BOTH, "periodic sync (every %" PRIu64 " s)",
              c->every_seconds);
        p->periodic_from = now;
        break;
    }
}

/* Fire the conditions that hold now (all of them together in mode all).
 * Not while a sync is in flight: its end may change what holds (an OK full
 * sync restarts the periodic clock), and conditions keep holding until then
 * anyway. */
static void
cond_latch(struct policy *p, int64_t now)
{
    int all = p->cfg.combine == POLICY_COMBINE_ALL;

    if (p->in_flight || p->sim != SIM_IN || combined_due(p) > now)
        return;
    for (size_t i = 0; i < NCOND; i++) {
        enum policy_trigger t = conditions[i];
        if (all ? cond_enabled(&p->cfg, t) : cond_due(p, t) <= now)
            cond_fire(p, t, now);
    }
}

/* ------------------------------------------------------------------ setup */

int
policy_init(struct policy *p, const struct policy_cfg *cfg, int64_t now)
{
    if (p == NULL || policy_cfg_check(cfg, NULL, 0) != SIMSYNC_OK)
        return SIMSYNC_EINVAL;
    memset(p, 0, sizeof(*p));
    p->cfg = *cfg;
    p->now = now;
    p->hold_until = NOT_HELD;
    p->remove_deadline = POLICY_NEVER;
    p->periodic_from = now;
    p->upd_first = POLICY_NEVER;
    p->upd_last = POLICY_NEVER;
    p->quiet_since = now;
    p->idle_served = POLICY_NEVER;
    p->unsynced_since = POLICY_NEVER;
    p->sim = SIM_IN;
    p->battery_level = -1;
    return SIMSYNC_OK;
}

int
policy_reconfig(struct policy *p, const struct policy_cfg *cfg)
{
    if (p == NULL || policy_cfg_check(cfg, NULL, 0) != SIMSYNC_OK)
        return SIMSYNC_EINVAL;
    p->cfg = *cfg;
    return SIMSYNC_OK;
}

/* ----------------------------------------------------------------- events */

static void
drop_automatic(struct policy *p)
{
    for (int t = 0; t < POLICY_TRIG_COUNT; t++) {
        if (t != POLICY_TRIG_COMMAND) {
            p->want[t] = 0;
            p->later[t] = 0;
        }
    }
    p->asking = 0;
    p->asked = 0;
}

static void
on_data_changed(struct policy *p, uint64_t pending, int64_t now)
{
    p->pending = pending;
    p->pending_armed = 1;
    if (p->upd_first == POLICY_NEVER)
        p->upd_first = now;
    p->upd_last = now;
    p->quiet_since = now;
    if (p->unsynced_since == POLICY_NEVER)
        p->unsynced_since = now;
    if (p->in_flight && !p->flight_changed) {
        p->flight_changed = 1;
        p->flight_first_change = now;
    }
}

static void
on_start(struct policy *p, uint64_t pending, int64_t now)
{
    p->pending = pending;
    p->pending_armed = 1;
    if (pending > 0 && p->unsynced_since == POLICY_NEVER)
        p->unsynced_since = now;
    if (p->cfg.sync_on_start)
        latch(p, POLICY_TRIG_START, BOTH, "daemon started");
}

static void
on_battery(struct policy *p, int level, int charging)
{
    int was_low = battery_low(p);

    p->battery_level = level;
    p->charging = charging != 0;
    if (!was_low && battery_low(p))
        latch(p, POLICY_TRIG_BATTERY_LOW, UP,
              "battery at %d%%, below %" PRIu64 "%%, not charging: "
              "upload first",
              level, p->cfg.battery_below);
}

static void
on_sim(struct policy *p, enum policy_event_type type, int64_t now)
{
    p->remove_deadline = POLICY_NEVER;
    if (type == POLICY_EV_SIM_INSERTED) {
        p->sim = SIM_IN;
        p->want[POLICY_TRIG_SIM_REMOVE] = 0;
        p->later[POLICY_TRIG_SIM_REMOVE] = 0;
        if (p->cfg.download_on_sim_insert)
            latch(p, POLICY_TRIG_SIM_INSERT, DOWN, "SIM inserted");
    } else if (type == POLICY_EV_SIM_REMOVING) {
        p->sim = SIM_LEAVING;
        if (p->cfg.upload_on_sim_remove) {
            latch(p, POLICY_TRIG_SIM_REMOVE, UP,
                  "SIM about to be removed: upload first");
            p->remove_deadline = add_s(now, p->cfg.remove_timeout_seconds);
            p->remove_fails = 0;
        }
    } else {
        p->sim = SIM_OUT;
        drop_automatic(p);
    }
}

static void
on_answer(struct policy *p, int yes)
{
    p->asking = 0;
    if (yes) {
        p->confirmed = 1;
    } else {
        for (int t = 0; t < POLICY_TRIG_COUNT; t++)
            if (p->asked & BIT(t))
                p->want[t] = 0;
    }
    p->asked = 0;
}

/* The wait after the current run of failures. */
static uint64_t
backoff_seconds(const struct policy *p)
{
    uint64_t s = p->cfg.retry_min_seconds;

    for (unsigned i = 1; i < p->fails && s < p->cfg.retry_max_seconds; i++)
        s *= 2;
    return s < p->cfg.retry_max_seconds ? s : p->cfg.retry_max_seconds;
}

/* An OK sync that moved directions `done` serves the requests made before
 * it started, and what it covers of the conditions. */
static void
serve(struct policy *p, unsigned done, int64_t now)
{
    for (int t = 0; t < POLICY_TRIG_COUNT; t++)
        p->want[t] &= ~done;
    if (done == BOTH) {
        p->periodic_from = now;
        if (p->quiet_since <= p->flight_started)
            p->idle_served = p->quiet_since;
    }
    if ((done & DOWN) && p->hub_seq == p->flight_hub_seq)
        p->hub_changes = 0;
    p->fails = 0;
    p->hold_until = NOT_HELD;
    p->confirmed = 0;
}

/* After an upload that ended OK or PARTIAL: what is still not uploaded. */
static void
uploaded(struct policy *p, uint64_t pending)
{
    if (p->flight_changed)
        p->unsynced_since = p->flight_first_change;
    else if (pending == 0)
        p->unsynced_since = POLICY_NEVER;
}

static void
on_sync_done(struct policy *p, const struct policy_event *ev, int64_t now)
{
    unsigned done = p->flight_action;

    p->in_flight = 0;
    p->pending = ev->pending_bytes;
    if (ev->result == POLICY_RESULT_OK) {
        serve(p, done, now);
    } else if (ev->result == POLICY_RESULT_PARTIAL) {
        p->want[POLICY_TRIG_COMMAND] &= ~done;
        latch(p, POLICY_TRIG_CONTINUE, done,
              "continuing a partial %s (%" PRIu64 " bytes up, %" PRIu64
              " down so far)",
              policy_action_name((enum policy_action)done), ev->bytes_up,
              ev->bytes_down);
        p->fails = 0;
        p->hold_until = add_s(now, p->cfg.continue_seconds);
    } else {
        p->want[POLICY_TRIG_COMMAND] &= ~done;
        if (p->flight_triggers & BIT(POLICY_TRIG_SIM_REMOVE))
            p->remove_fails++;
        p->fails++;
        p->hold_until = add_s(now, backoff_seconds(p));
    }
    if ((done & UP) && ev->result != POLICY_RESULT_FAILED)
        uploaded(p, ev->pending_bytes);
    for (int t = 0; t < POLICY_TRIG_COUNT; t++) {
        p->want[t] |= p->later[t];
        p->later[t] = 0;
    }
}

static int
event_valid(const struct policy_event *ev)
{
    if ((unsigned)ev->type > (unsigned)POLICY_EV_SYNC_DONE)
        return 0;
    if (ev->type == POLICY_EV_BATTERY &&
        (ev->battery_level < -1 || ev->battery_level > 100))
        return 0;
    if (ev->type == POLICY_EV_SYNC_DONE &&
        (unsigned)ev->result > (unsigned)POLICY_RESULT_PARTIAL)
        return 0;
    return 1;
}

int
policy_event(struct policy *p, const struct policy_event *ev)
{
    int64_t now;

    if (p == NULL || ev == NULL || !event_valid(ev))
        return SIMSYNC_EINVAL;
    if (ev->type == POLICY_EV_SYNC_DONE && !p->in_flight)
        return SIMSYNC_ESTATE;
    if ((ev->type == POLICY_EV_CONFIRM_YES ||
         ev->type == POLICY_EV_CONFIRM_NO) &&
        !p->asking)
        return SIMSYNC_ESTATE;
    now = advance(p, ev->now);
    switch (ev->type) {
    case POLICY_EV_TICK:
        break;
    case POLICY_EV_START:
        on_start(p, ev->pending_bytes, now);
        break;
    case POLICY_EV_SIM_INSERTED:
    case POLICY_EV_SIM_REMOVING:
    case POLICY_EV_SIM_REMOVED:
        on_sim(p, ev->type, now);
        break;
    case POLICY_EV_DATA_CHANGED:
        on_data_changed(p, ev->pending_bytes, now);
        break;
    case POLICY_EV_USER_ACTIVITY:
        p->quiet_since = now;
        break;
    case POLICY_EV_BATTERY:
        on_battery(p, ev->battery_level, ev->charging);
        break;
    case POLICY_EV_HUB_HAS_CHANGES:
        p->hub_changes = 1;
        p->hub_seq++;
        if (p->cfg.download_on_hub_changes && p->sim == SIM_IN)
            latch(p, POLICY_TRIG_HUB_CHANGES, DOWN,
                  "the hub has changes from another terminal");
        break;
    case POLICY_EV_COMMAND_SYNC:
    case POLICY_EV_COMMAND_UPLOAD:
    case POLICY_EV_COMMAND_DOWNLOAD: {
        unsigned dir = ev->type == POLICY_EV_COMMAND_SYNC     ? BOTH
                       : ev->type == POLICY_EV_COMMAND_UPLOAD ? UP
                                                              : DOWN;
        latch(p, POLICY_TRIG_COMMAND, dir, "user command: %s",
              policy_action_name((enum policy_action)dir));
        break;
    }
    case POLICY_EV_CONFIRM_YES:
    case POLICY_EV_CONFIRM_NO:
        on_answer(p, ev->type == POLICY_EV_CONFIRM_YES);
        break;
    case POLICY_EV_SYNC_DONE:
        on_sync_done(p, ev, now);
        break;
    }
    return SIMSYNC_OK;
}

/* --------------------------------------------------------------- decision */

static void say(struct policy_decision *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Append to the decision's reason (truncated at POLICY_REASON_MAX). */
static void
say(struct policy_decision *d, const char *fmt, ...)
{
    size_t at = strlen(d->reason);
    va_list ap;

    if (at + 1 >= sizeof(d->reason))
        return;
    va_start(ap, fmt);
    vnote(d->reason + at, sizeof(d->reason) - at, fmt, ap);
    va_end(ap);
}

/* Triggers with a request that directions dir serve, and the first. */
static uint32_t
served_by(const struct policy *p, unsigned dir, int automatic_only,
          enum policy_trigger *first)
{
    uint32_t mask = 0;

    *first = POLICY_TRIG_NONE;
    for (int t = POLICY_TRIG_COUNT - 1; t > POLICY_TRIG_NONE; t--) {
        if (automatic_only && !is_automatic((enum policy_trigger)t))
            continue;
        if (p->want[t] & dir) {
            mask |= BIT(t);
            *first = (enum policy_trigger)t;
        }
    }
    return mask;
}

/* The reasons of the triggers in mask, first one first. */
static void
say_triggers(const struct policy *p, struct policy_decision *d, uint32_t mask)
{
    const char *sep = "";

    for (int t = 1; t < POLICY_TRIG_COUNT; t++) {
        if (mask & BIT(t)) {
            say(d, "%s%s", sep, p->note[t]);
            sep = "; ";
        }
    }
}

static void
fill_limits(const struct policy *p, struct policy_decision *d, int64_t now)
{
    const struct policy_cfg *c = &p->cfg;

    d->limits.max_bytes = c->max_bytes;
    d->limits.max_seconds = c->max_seconds;
    d->limits.up_max_bytes = c->up_max_bytes;
    d->limits.up_max_seconds = c->up_max_seconds;
    d->limits.down_max_bytes = c->down_max_bytes;
    d->limits.down_max_seconds = c->down_max_seconds;
    if (d->trigger == POLICY_TRIG_SIM_REMOVE) {
        /* Stop by the deadline: round down, but 0 would mean no limit. */
        uint64_t left = (uint64_t)secs(now, p->remove_deadline);
        if (left == 0)
            left = 1;
        if (d->limits.max_seconds == 0 || d->limits.max_seconds > left)
            d->limits.max_seconds = left;
    }
}

/* Fill d for action dir serving the requests it covers (commands and the
 * sim-remove upload: automatic_only 0). gated: the battery took away the
 * download half. */
static void
describe(struct policy *p, struct policy_decision *d, unsigned dir,
         int automatic_only, int gated, int64_t now)
{
    d->action = (enum policy_action)dir;
    d->then = d->action;
    d->triggers = served_by(p, dir, automatic_only, &d->trigger);
    say_triggers(p, d, d->triggers);
    if (d->trigger == POLICY_TRIG_SIM_REMOVE)
        say(d, "; %" PRIu64 " bytes pending, %lld s left", p->pending,
            secs_left(now, p->remove_deadline));
    if (gated)
        say(d, "; battery at %d%%, not charging: upload only",
            p->battery_level);
    if (p->fails > 0 && d->trigger != POLICY_TRIG_COMMAND)
        say(d, "; retry after %u failed sync%s", p->fails,
            p->fails == 1 ? "" : "s");
    fill_limits(p, d, now);
}

static void
start(struct policy *p, struct policy_decision *d, unsigned dir,
      int automatic_only, int gated, int64_t now)
{
    describe(p, d, dir, automatic_only, gated, now);
    p->in_flight = 1;
    p->flight_action = dir;
    p->flight_triggers = d->triggers;
    p->flight_started = now;
    p->flight_changed = 0;
    p->flight_first_change = POLICY_NEVER;
    p->flight_hub_seq = p->hub_seq;
}

/* The union of the automatic requests. */
static unsigned
automatic_dirs(const struct policy *p)
{
    unsigned dir = 0;

    for (int t = 1; t < POLICY_TRIG_COUNT; t++)
        if (is_automatic((enum policy_trigger)t))
            dir |= p->want[t];
    return dir;
}

/* What the battery lets through of dir. */
static unsigned
battery_gate(const struct policy *p, unsigned dir)
{
    if (!battery_low(p))
        return dir;
    dir &= ~DOWN;
    return has_upload(p) ? dir : 0;
}

static void
say_waiting(const struct policy *p, struct policy_decision *d, int64_t now)
{
    if (p->fails > 0)
        say(d, "backing off after %u failed sync%s: retry in %lld s", p->fails,
            p->fails == 1 ? "" : "s", secs_left(now, p->hold_until));
    else
        say(d, "continuing in %lld s", secs_left(now, p->hold_until));
}

/* On a low battery with nothing to upload, a request for an upload only
 * has nothing left to do: it is dropped rather than kept until charging
 * (it would then upload nothing). Requests with a download half stay. */
static void
drop_empty_uploads(struct policy *p)
{
    if (!battery_low(p) || has_upload(p))
        return;
    for (int t = 1; t < POLICY_TRIG_COUNT; t++)
        if (is_automatic((enum policy_trigger)t) && p->want[t] == UP)
            p->want[t] = 0;
}

/* Step 5 of policy_decide(): the automatic requests. */
static void
decide_automatic(struct policy *p, struct policy_decision *d, int64_t now)
{
    unsigned dir, go;

    if (p->sim != SIM_IN) {
        say(d, p->sim == SIM_OUT ? "no SIM: automatic syncs wait for one"
                                 : "SIM being removed: no automatic sync");
        return;
    }
    drop_empty_uploads(p);
    dir = automatic_dirs(p);
    if (dir == 0) {
        say(d, "nothing due");
        return;
    }
    if (now < p->hold_until) {
        say_waiting(p, d, now);
        return;
    }
    go = battery_gate(p, dir);
    if (go == 0) {
        say(d,
            "battery at %d%%, not charging: download waits for charging "
            "or %" PRIu64 "%%",
            p->battery_level, p->cfg.battery_below);
        return;
    }
    if (p->cfg.confirm && !p->confirmed &&
        !(p->want[POLICY_TRIG_CONTINUE] & go)) {
        say(d, "confirm: ");
        describe(p, d, go, 1, go != dir, now);
        d->action = POLICY_ASK;
        p->asking = 1;
        p->asked = d->triggers;
        return;
    }
    start(p, d, go, 1, go != dir, now);
}

/* A SIM-removal upload that timed out, or has nothing to upload, is over. */
static void
drop_stale(struct policy *p, int64_t now)
{
    if (now >= p->remove_deadline || !has_upload(p))
        p->want[POLICY_TRIG_SIM_REMOVE] = 0;
    if (!has_upload(p))
        p->want[POLICY_TRIG_BATTERY_LOW] = 0;
}

static int
remove_due(const struct policy *p, int64_t now)
{
    return p->want[POLICY_TRIG_SIM_REMOVE] != 0 &&
           (p->remove_fails == 0 || now >= p->hold_until);
}

/* Why nothing starts while the SIM is being removed. */
static void
say_removing(const struct policy *p, struct policy_decision *d, int64_t now)
{
    if (p->want[POLICY_TRIG_SIM_REMOVE])
        say(d, "SIM removal: upload failed, retry in %lld s (%lld s left)",
            secs_left(now, p->hold_until), secs_left(now, p->remove_deadline));
    else if (p->remove_deadline == POLICY_NEVER)
        say(d, "SIM being removed: no upload configured; the SIM may go");
    else if (has_upload(p))
        say(d,
            "SIM removal: deadline passed with %" PRIu64
            " bytes not uploaded; the SIM may go",
            p->pending);
    else
        say(d, "SIM removal: nothing left to upload; the SIM may go");
}

/* When the automatic step could start something, if no event comes. */
static int64_t
automatic_wake(const struct policy *p, int64_t now)
{
    int64_t t = POLICY_NEVER;

    if (p->sim != SIM_IN || p->asking)
        return POLICY_NEVER;
    if (battery_gate(p, automatic_dirs(p)) != 0)
        t = now;
    if (battery_gate(p, BOTH) != 0)
        t = min64(t, combined_due(p));
    if (t == POLICY_NEVER)
        return POLICY_NEVER;
    return max64(t, p->hold_until);
}

static int64_t
next_wake(const struct policy *p, int64_t now)
{
    int64_t w = POLICY_NEVER, t;

    if (p->cfg.notice_unsynced_seconds > 0) {
        t = add_s(p->unsynced_since, p->cfg.notice_unsynced_seconds);
        if (t > now)
            w = t;
    }
    if (p->in_flight)
        return w;
    if (p->want[POLICY_TRIG_SIM_REMOVE]) {
        w = min64(w, p->remove_deadline);
        if (p->remove_fails > 0 && p->hold_until > now)
            w = min64(w, p->hold_until);
    }
    t = automatic_wake(p, now);
    return t > now ? min64(w, t) : w;
}

static void
finish(const struct policy *p, struct policy_decision *d, int64_t now)
{
    uint64_t notice = p->cfg.notice_unsynced_seconds;

    if (d->action != POLICY_ASK)
        d->then = d->action;
    d->unsynced_since = p->unsynced_since;
    if (notice > 0 && p->unsynced_since != POLICY_NEVER &&
        now >= add_s(p->unsynced_since, notice))
        d->notices |= POLICY_NOTICE_UNSYNCED;
    if (p->hub_changes)
        d->notices |= POLICY_NOTICE_HUB_CHANGES;
    d->remove_ready =
        p->sim == SIM_LEAVING && p->want[POLICY_TRIG_SIM_REMOVE] == 0 &&
        p->later[POLICY_TRIG_SIM_REMOVE] == 0 &&
        !(p->in_flight && (p->flight_triggers & BIT(POLICY_TRIG_SIM_REMOVE)));
    d->wake_at = next_wake(p, now);
}

void
policy_decide(struct policy *p, int64_t now, struct policy_decision *d)
{
    assert(p != NULL && d != NULL);
    memset(d, 0, sizeof(*d));
    now = advance(p, now);
    if (!p->in_flight)
        drop_stale(p, now);
    cond_latch(p, now);

    if (p->in_flight)
        say(d, "a sync (%s) is in flight",
            policy_action_name((enum policy_action)p->flight_action));
    else if (p->want[POLICY_TRIG_COMMAND])
        start(p, d, p->want[POLICY_TRIG_COMMAND], 0, 0, now);
    else if (remove_due(p, now))
        start(p, d, UP, 0, 0, now);
    else if (p->sim == SIM_LEAVING)
        say_removing(p, d, now);
    else if (p->asking)
        say(d, "waiting for the user's answer");
    else
        decide_automatic(p, d, now);
    finish(p, d, now);
}

const char *
policy_action_name(enum policy_action a)
{
    switch (a) {
    case POLICY_NONE:
        return "none";
    case POLICY_UPLOAD:
        return "upload";
    case POLICY_DOWNLOAD:
        return "download";
    case POLICY_SYNC:
        return "sync";
    case POLICY_ASK:
        return "ask";
    }
    return "?";
}

const char *
policy_trigger_name(enum policy_trigger t)
{
    static const char *const names[POLICY_TRIG_COUNT] = {
        "none",         "command",    "sim-remove", "continue",
        "battery-low",  "sim-insert", "start",      "hub-changes",
        "pending",      "after-update", "idle",     "periodic"};

    if ((unsigned)t >= (unsigned)POLICY_TRIG_COUNT)
        return "?";
    return names[t];
}
