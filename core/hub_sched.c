/* hub_sched.c -- schedules, backup jobs, control connections, history,
 * notices, restore jobs and forgetting generations (see hub_sched.h). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crypt.h"
#include "hub_backup.h"
#include "hub_sched.h"
#include "node.h"
#include "pbcheck.h"
#include "store.h"
#include "transport.h"

#define SCHED_TICK_MS 200
#define RUN_TIMEOUT_MS (6ull * 3600 * 1000) /* an accepted backup's limit */
#define CONTROL_IDLE_MS 90000  /* no frame (the daemon pings) -> drop */
#define PUSH_EVERY_MS 1000     /* control: look for new notices, jobs */
#define NOTICES_MAX 64         /* per HelloReply / push */
#define JOBS_MAX 16
#define HISTORY_MAX 1000
#define FORGET_MAX 100000
#define JOB_SEALED_MAX (64u * 1024)

/* ------------------------------------------------------------ ids */

static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t id_last;

/* Increasing ids for events and jobs: wall time in microsecond steps, so
 * they keep increasing across restarts of the hub. */
static uint64_t
new_id(void)
{
    uint64_t id = node_now_ms() * 1000;

    pthread_mutex_lock(&id_lock);
    if (id <= id_last)
        id = id_last + 1;
    id_last = id;
    pthread_mutex_unlock(&id_lock);
    return id;
}

/* ------------------------------------------------------------ gc lock */

static pthread_rwlock_t gc_lock = PTHREAD_RWLOCK_INITIALIZER;

void
hub_gc_enter(void)
{
    pthread_rwlock_rdlock(&gc_lock);
}

void
hub_gc_leave(void)
{
    pthread_rwlock_unlock(&gc_lock);
}

/* ------------------------------------------------------------ events */

struct event_put {
    const uint8_t *sub;
    Simsync__HistoryEvent *ev;
};

static int
event_put_fn(struct store_txn *txn, void *arg)
{
    struct event_put *e = arg;
    uint8_t key[SUB_BYTES + 8], *buf;
    size_t len;
    int rc = record_pack(&e->ev->base, &buf, &len);

    if (rc != SIMSYNC_OK)
        return rc;
    memcpy(key, e->sub, SUB_BYTES);
    store_be64(key + SUB_BYTES, e->ev->seq);
    rc = store_put(txn, STORE_EVENTS, key, sizeof(key), buf, len);
    free(buf);
    return rc;
}

int
hub_event(struct store *st, const uint8_t sub[SUB_BYTES],
          const char *terminal_id, const char *event, uint64_t gen,
          uint32_t attempt, int notice, const char *fmt, ...)
{
    Simsync__HistoryEvent ev = SIMSYNC__HISTORY_EVENT__INIT;
    struct event_put e = {sub, &ev};
    char detail[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    ev.seq = new_id();
    ev.time_ms = node_now_ms();
    ev.terminal_id = (char *)terminal_id;
    ev.event = (char *)event;
    ev.gen = gen;
    ev.attempt = attempt;
    ev.detail = detail;
    ev.notice = notice != 0;
    return store_write(st, event_put_fn, &e);
}

struct events_scan {
    int (*fn)(Simsync__HistoryEvent *ev, void *arg);
    void *arg;
};

static int
event_entry(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
    struct events_scan *e = arg;
    Simsync__HistoryEvent *ev;
    int rc;

    if (kl != SUB_BYTES + 8)
        return SIMSYNC_OK;
    (void)k;
    ev = pb_unpack(&simsync__history_event__descriptor, vl, v, &rc);
    if (ev == NULL)
        return rc;
    rc = e->fn(ev, e->arg);
    simsync__history_event__free_unpacked(ev, NULL);
    return rc;
}

/* Visit the events of a subscriber with seq > after, in order; fn returns
 * non-zero to stop (that value is returned). */
static int
events_each(struct store_txn *txn, const uint8_t sub[SUB_BYTES],
            uint64_t after, int (*fn)(Simsync__HistoryEvent *ev, void *arg),
            void *arg)
{
    struct events_scan e = {fn, arg};
    uint8_t key[SUB_BYTES + 8];

    memcpy(key, sub, SUB_BYTES);
    store_be64(key + SUB_BYTES, after == UINT64_MAX ? after : after + 1);
    return store_scan(txn, STORE_EVENTS, key, sizeof(key), SUB_BYTES,
                      event_entry, &e);
}

/* ------------------------------------------------------------ notices */

struct notice_acc {
    const char *tid;
    Simsync__Notice **v;
    size_t n;
    uint64_t last; /* highest seq collected */
};

static int
notice_fn(Simsync__HistoryEvent *ev, void *arg)
{
    struct notice_acc *a = arg;
    Simsync__Notice *no;

    if (!ev->notice ||
        (ev->terminal_id[0] != '\0' && strcmp(ev->terminal_id, a->tid) != 0))
        return SIMSYNC_OK;
    if (a->n == NOTICES_MAX)
        return 1; /* the rest next time */
    no = malloc(sizeof(*no));
    if (no == NULL)
        return SIMSYNC_ENOMEM;
    simsync__notice__init(no);
    no->seq = ev->seq;
    no->time_ms = ev->time_ms;
    no->text = strdup(ev->detail);
    if (no->text == NULL) {
        free(no);
        return SIMSYNC_ENOMEM;
    }
    a->v[a->n++] = no;
    a->last = ev->seq;
    return SIMSYNC_OK;
}

static void
notices_free(Simsync__Notice **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i]->text);
        free(v[i]);
    }
    free(v);
}

/* Notices for terminal tid above seq `after`. */
static int
notices_collect(struct store *st, const uint8_t sub[SUB_BYTES],
                const char *tid, uint64_t after, struct notice_acc *a)
{
    struct store_txn *txn;
    int rc;

    memset(a, 0, sizeof(*a));
    a->tid = tid;
    a->last = after;
    a->v = calloc(NOTICES_MAX, sizeof(*a->v));
    if (a->v == NULL)
        return SIMSYNC_ENOMEM;
    rc = store_txn_begin(st, 1, &txn);
    if (rc == SIMSYNC_OK) {
        rc = events_each(txn, sub, after, notice_fn, a);
        store_txn_abort(txn);
    }
    if (rc == 1)
        rc = SIMSYNC_OK;
    if (rc != SIMSYNC_OK) {
        notices_free(a->v, a->n);
        memset(a, 0, sizeof(*a));
    }
    return rc;
}

/* ------------------------------------------------------------ jobs */

/* jobs db key: sub | terminal id | 0 | job id */
static size_t
job_key(uint8_t *key, const uint8_t sub[SUB_BYTES], const char *tid,
        uint64_t id)
{
    size_t kl = hub_tid_key(key, sub, tid);

    key[kl] = 0;
    store_be64(key + kl + 1, id);
    return kl + 9;
}

struct jobs_acc {
    Simsync__RestoreJob **v;
    size_t n;
    uint64_t after; /* only ids above */
};

static int
job_entry(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
    struct jobs_acc *a = arg;
    Simsync__RestoreJob *j;
    int rc;

    (void)k;
    (void)kl;
    if (a->n == JOBS_MAX)
        return 1; /* the rest next time */
    j = pb_unpack(&simsync__restore_job__descriptor, vl, v, &rc);
    if (j == NULL)
        return rc;
    a->v[a->n++] = j;
    return SIMSYNC_OK;
}

static int
jobs_collect(struct store *st, const uint8_t sub[SUB_BYTES], const char *tid,
             struct jobs_acc *a)
{
    struct store_txn *txn;
    uint8_t key[SUB_BYTES + 64 + 9];
    size_t klen = job_key(key, sub, tid, a->after + 1);
    int rc;

    a->n = 0;
    a->v = calloc(JOBS_MAX, sizeof(*a->v));
    if (a->v == NULL)
        return SIMSYNC_ENOMEM;
    rc = store_txn_begin(st, 1, &txn);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_scan(txn, STORE_JOBS, key, klen, klen - 8, job_entry, a);
    store_txn_abort(txn);
    return rc == 1 ? SIMSYNC_OK : rc;
}

static void
jobs_free(Simsync__RestoreJob **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        simsync__restore_job__free_unpacked(v[i], NULL);
    free(v);
}

struct jobs_done {
    const uint8_t *sub;
    const char *tid;
    const uint64_t *ids;
    size_t n;
};

static int
jobs_done_fn(struct store_txn *txn, void *arg)
{
    struct jobs_done *d = arg;

    for (size_t i = 0; i < d->n; i++) {
        uint8_t key[SUB_BYTES + 64 + 9];
        size_t kl = job_key(key, d->sub, d->tid, d->ids[i]);
        int rc = store_del(txn, STORE_JOBS, key, kl);
        if (rc != SIMSYNC_OK && rc != SIMSYNC_ENOTFOUND)
            return rc;
    }
    return SIMSYNC_OK;
}

/* ------------------------------------------------------------ unregister */

struct unreg {
    const uint8_t *sub;
    const char *tid;
    uint8_t (*keys)[SUB_BYTES + 64 + 9]; /* job keys found */
    size_t klens[JOBS_MAX], n;
    Simsync__UnregisterDone done;
};

static int
unreg_job(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
    struct unreg *u = arg;

    (void)v;
    (void)vl;
    if (u->n == JOBS_MAX || kl > sizeof(u->keys[0]))
        return 1; /* the rest in the next round */
    memcpy(u->keys[u->n], k, kl);
    u->klens[u->n++] = kl;
    return SIMSYNC_OK;
}

static int
unreg_fn(struct store_txn *txn, void *arg)
{
    struct unreg *u = arg;
    uint8_t key[SUB_BYTES + 64 + 9];
    size_t kl = hub_tid_key(key, u->sub, u->tid);
    int rc;

    u->done.jobs_dropped = 0;
    u->done.schedule_dropped = 0;
    rc = store_del(txn, STORE_REGISTRY, key, kl);
    if (rc != SIMSYNC_OK)
        return rc; /* ENOTFOUND: not registered (any more) */
    rc = store_del(txn, STORE_SCHED, key, kl);
    if (rc == SIMSYNC_OK)
        u->done.schedule_dropped = 1;
    else if (rc != SIMSYNC_ENOTFOUND)
        return rc;
    kl = job_key(key, u->sub, u->tid, 0);
    do {
        u->n = 0;
        rc = store_scan(txn, STORE_JOBS, key, kl, kl - 8, unreg_job, u);
        if (rc != SIMSYNC_OK && rc != 1)
            return rc;
        for (size_t i = 0; i < u->n; i++) {
            int d = store_del(txn, STORE_JOBS, u->keys[i], u->klens[i]);
            if (d != SIMSYNC_OK)
                return d;
            u->done.jobs_dropped++;
        }
    } while (rc == 1);
    return SIMSYNC_OK;
}

int
hub_unregister(struct simsync_node *n, struct chan *ch,
               const uint8_t sub[SUB_BYTES], const char *terminal_id)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    struct unreg u = {0};
    int rc;

    u.sub = sub;
    u.tid = terminal_id;
    simsync__unregister_done__init(&u.done);
    u.keys = malloc(JOBS_MAX * sizeof(*u.keys));
    if (u.keys == NULL)
        return SIMSYNC_ENOMEM;
    rc = store_write(n->st, unreg_fn, &u);
    free(u.keys);
    if (rc != SIMSYNC_OK) {
        node_send_error(ch, rc, "the hub could not remove this terminal");
        return rc;
    }
    (void)hub_event(n->st, sub, terminal_id, "unregistered", 0, 0, 0,
              "terminal %s unregistered (erased); %u restore job%s dropped",
              terminal_id, u.done.jobs_dropped,
              u.done.jobs_dropped == 1 ? "" : "s");
    env.msg_case = SIMSYNC__ENVELOPE__MSG_UNREGISTER_DONE;
    env.unregister_done = &u.done;
    return node_send_env(ch, &env);
}

/* ------------------------------------------------------------ hello */

int
hub_hello_extras(struct simsync_node *n, const uint8_t sub[SUB_BYTES],
                 const Simsync__Hello *h, Simsync__HelloReply *rep)
{
    struct notice_acc na;
    struct jobs_acc ja = {NULL, 0, 0};
    int rc = SIMSYNC_OK;

    if (h->n_jobs_done > 0) {
        struct jobs_done d = {sub, h->terminal_id, h->jobs_done,
                              h->n_jobs_done < 256 ? h->n_jobs_done : 256};
        rc = store_write(n->st, jobs_done_fn, &d);
        if (rc != SIMSYNC_OK)
            return rc;
    }
    rc = notices_collect(n->st, sub, h->terminal_id, h->notices_seen, &na);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = jobs_collect(n->st, sub, h->terminal_id, &ja);
    if (rc != SIMSYNC_OK) {
        jobs_free(ja.v, ja.n);
        notices_free(na.v, na.n);
        return rc;
    }
    rep->notices = na.v;
    rep->n_notices = na.n;
    rep->jobs = ja.v;
    rep->n_jobs = ja.n;
    return SIMSYNC_OK;
}

void
hub_hello_extras_free(Simsync__HelloReply *rep)
{
    notices_free(rep->notices, rep->n_notices);
    jobs_free(rep->jobs, rep->n_jobs);
    rep->notices = NULL;
    rep->jobs = NULL;
    rep->n_notices = rep->n_jobs = 0;
}

/* ------------------------------------------------------------ slots */

enum slot_state { SLOT_IDLE, SLOT_REQUEST, SLOT_WAIT, SLOT_RUNNING };

/* A connected daemon, as the scheduler and its connection thread see it. */
struct slot {
    struct slot *next;
    int refs;
    uint8_t sub[SUB_BYTES];
    char tid[64];
    int closed;
    enum slot_state state;
    uint64_t job;
    uint32_t attempt;
    /* Set by the connection thread: */
    int answered, ok;
    uint32_t retry_after_s;
    char reason[128];
    int have_result, result_ok;
    uint64_t result_gen;
    char result_text[160];
    uint64_t changes; /* announcements due (hub_changes_announce) */
};

static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot *slots;

static void
slot_put_locked(struct slot *s)
{
    if (--s->refs == 0)
        free(s);
}

void
hub_changes_announce(const uint8_t sub[SUB_BYTES], const char *from_tid)
{
    pthread_mutex_lock(&slots_lock);
    for (struct slot *s = slots; s != NULL; s = s->next)
        if (!s->closed && memcmp(s->sub, sub, SUB_BYTES) == 0 &&
            strcmp(s->tid, from_tid) != 0)
            s->changes++;
    pthread_mutex_unlock(&slots_lock);
}

/* A connected, idle daemon of (sub, tid); tid "" means any terminal of the
 * subscriber. Returned with a reference. */
static struct slot *
slot_find(const uint8_t sub[SUB_BYTES], const char *tid)
{
    struct slot *s, *found = NULL;

    pthread_mutex_lock(&slots_lock);
    for (s = slots; s != NULL; s = s->next)
        if (!s->closed && s->state == SLOT_IDLE &&
            memcmp(s->sub, sub, SUB_BYTES) == 0 &&
            (tid[0] == '\0' || strcmp(tid, s->tid) == 0)) {
            found = s;
            break;
        }
    if (found)
        found->refs++;
    pthread_mutex_unlock(&slots_lock);
    return found;
}

/* ------------------------------------------------------------ schedule */

uint64_t
sched_next(uint64_t base_ms, uint64_t every_ms, int at_minute,
           uint64_t after_ms)
{
    if (every_ms > 0) {
        if (base_ms > after_ms)
            return base_ms;
        return base_ms + ((after_ms - base_ms) / every_ms + 1) * every_ms;
    }
    if (at_minute >= 0 && at_minute < 24 * 60) {
        time_t t = (time_t)(after_ms / 1000);
        struct tm tm;
        if (localtime_r(&t, &tm) == NULL)
            return UINT64_MAX;
        tm.tm_hour = at_minute / 60;
        tm.tm_min = at_minute % 60;
        tm.tm_sec = 0;
        tm.tm_isdst = -1;
        for (int i = 0; i < 3; i++) {
            time_t next = mktime(&tm);
            if (next != (time_t)-1 && (uint64_t)next * 1000 > after_ms)
                return (uint64_t)next * 1000;
            tm.tm_mday++;
            tm.tm_hour = at_minute / 60;
            tm.tm_min = at_minute % 60;
            tm.tm_isdst = -1;
        }
        return UINT64_MAX;
    }
    return UINT64_MAX; /* one-shot: nothing after */
}

/* A job the scheduler is waiting on. */
struct inflight {
    uint64_t job;
    struct slot *slot;
    uint64_t deadline;
    int running; /* accepted: waiting for the result */
};

struct sched {
    struct simsync_node *n;
    volatile int *stop;
    struct inflight *inf;
    size_t ninf, capinf;
};

static struct inflight *
inflight_find(struct sched *sc, uint64_t job)
{
    for (size_t i = 0; i < sc->ninf; i++)
        if (sc->inf[i].job == job)
            return &sc->inf[i];
    return NULL;
}

static void
inflight_drop(struct sched *sc, struct inflight *f)
{
    pthread_mutex_lock(&slots_lock);
    f->slot->state = SLOT_IDLE;
    f->slot->job = 0;
    slot_put_locked(f->slot);
    pthread_mutex_unlock(&slots_lock);
    *f = sc->inf[--sc->ninf];
}

static int
inflight_add(struct sched *sc, uint64_t job, struct slot *s,
             uint64_t deadline)
{
    if (sc->ninf == sc->capinf) {
        size_t cap = sc->capinf ? sc->capinf * 2 : 8;
        struct inflight *ni = realloc(sc->inf, cap * sizeof(*ni));
        if (ni == NULL)
            return SIMSYNC_ENOMEM;
        sc->inf = ni;
        sc->capinf = cap;
    }
    sc->inf[sc->ninf++] = (struct inflight){job, s, deadline, 0};
    return SIMSYNC_OK;
}

static void
fmt_duration(char *buf, size_t len, uint64_t ms)
{
    if (ms % 86400000 == 0 && ms > 0)
        snprintf(buf, len, "%llud", (unsigned long long)(ms / 86400000));
    else if (ms % 3600000 == 0 && ms > 0)
        snprintf(buf, len, "%lluh", (unsigned long long)(ms / 3600000));
    else if (ms % 60000 == 0 && ms > 0)
        snprintf(buf, len, "%llum", (unsigned long long)(ms / 60000));
    else
        snprintf(buf, len, "%.1fs", (double)ms / 1000.0);
}

/* An attempt failed (its event is written): retry later or give up. */
static void
job_failed(struct sched *sc, const uint8_t *sub, Simsync__ScheduleRecord *rec,
           uint64_t now, uint32_t retry_after_s, const char *why)
{
    uint64_t wait = rec->retry_ms;

    if (rec->attempt >= rec->max_attempts) {
        hub_event(sc->n->st, sub, rec->terminal_id, "gave-up", 0,
                  rec->attempt, 1,
                  "the hub could not back up this terminal: %u attempts "
                  "failed (last: %s). Back up with 'simsync backup now'",
                  rec->attempt, why);
        rec->job = 0;
        rec->attempt = 0;
        rec->retry_at_ms = 0;
        rec->next_ms =
            sched_next(rec->next_ms, rec->every_ms, rec->at_minute, now);
        return;
    }
    if ((uint64_t)retry_after_s * 1000 > wait)
        wait = (uint64_t)retry_after_s * 1000;
    rec->retry_at_ms = now + wait;
}

static void
job_done(Simsync__ScheduleRecord *rec, uint64_t now)
{
    rec->job = 0;
    rec->attempt = 0;
    rec->retry_at_ms = 0;
    rec->next_ms = sched_next(rec->next_ms, rec->every_ms, rec->at_minute, now);
}

/* Advance one schedule; returns 1 when rec changed. */
static int
sched_step(struct sched *sc, const uint8_t *sub, Simsync__ScheduleRecord *rec,
           uint64_t now)
{
    struct inflight *f;
    struct slot *s, copy;
    int changed = 0;

    if (rec->job == 0) {
        if (now < rec->next_ms)
            return 0;
        rec->job = new_id();
        rec->attempt = 0;
        rec->retry_at_ms = now;
        changed = 1;
    }
    f = inflight_find(sc, rec->job);
    if (f == NULL) {
        if (now < rec->retry_at_ms)
            return changed;
        rec->attempt++;
        hub_event(sc->n->st, sub, rec->terminal_id,
                  rec->attempt == 1 ? "started" : "retried", 0, rec->attempt,
                  0, "backup request %u of at most %u", rec->attempt,
                  rec->max_attempts);
        s = slot_find(sub, rec->terminal_id);
        if (s == NULL) {
            hub_event(sc->n->st, sub, rec->terminal_id, "no-answer", 0,
                      rec->attempt, 0, "the terminal is not connected");
            job_failed(sc, sub, rec, now, 0, "the terminal was not connected");
            return 1;
        }
        pthread_mutex_lock(&slots_lock);
        s->state = SLOT_REQUEST;
        s->job = rec->job;
        s->attempt = rec->attempt;
        s->answered = s->have_result = 0;
        pthread_mutex_unlock(&slots_lock);
        if (inflight_add(sc, rec->job, s, now + rec->answer_timeout_ms) !=
            SIMSYNC_OK) {
            pthread_mutex_lock(&slots_lock);
            s->state = SLOT_IDLE;
            slot_put_locked(s);
            pthread_mutex_unlock(&slots_lock);
            rec->attempt--;
            return 1;
        }
        return 1;
    }
    /* Waiting: look at what the connection thread saw. */
    pthread_mutex_lock(&slots_lock);
    copy = *f->slot;
    pthread_mutex_unlock(&slots_lock);
    if (copy.have_result) {
        if (copy.result_ok) {
            hub_event(sc->n->st, sub, copy.tid, "completed", copy.result_gen,
                      rec->attempt, 0, "generation %llu",
                      (unsigned long long)copy.result_gen);
            inflight_drop(sc, f);
            job_done(rec, now);
        } else {
            hub_event(sc->n->st, sub, copy.tid, "failed", 0, rec->attempt, 0,
                      "%s", copy.result_text);
            inflight_drop(sc, f);
            job_failed(sc, sub, rec, now, 0, copy.result_text);
        }
        return 1;
    }
    if (copy.closed) {
        hub_event(sc->n->st, sub, copy.tid, "failed", 0, rec->attempt, 0,
                  "the terminal's control connection was lost");
        inflight_drop(sc, f);
        job_failed(sc, sub, rec, now, 0, "the connection was lost");
        return 1;
    }
    if (!f->running && copy.answered) {
        if (copy.ok) {
            hub_event(sc->n->st, sub, copy.tid, "accepted", 0, rec->attempt, 0,
                      "the terminal is backing up");
            f->running = 1;
            f->deadline = now + RUN_TIMEOUT_MS;
            return 0;
        }
        hub_event(sc->n->st, sub, copy.tid, "busy", 0, rec->attempt, 0, "%s",
                  copy.reason);
        inflight_drop(sc, f);
        job_failed(sc, sub, rec, now, copy.retry_after_s, copy.reason);
        return 1;
    }
    if (now > f->deadline) {
        char tmo[32];
        fmt_duration(tmo, sizeof(tmo),
                     f->running ? RUN_TIMEOUT_MS : rec->answer_timeout_ms);
        hub_event(sc->n->st, sub, copy.tid, f->running ? "failed" : "no-answer",
                  0, rec->attempt, 0, "no %s within %s",
                  f->running ? "result" : "answer", tmo);
        inflight_drop(sc, f);
        job_failed(sc, sub, rec, now, 0,
                   f->running ? "the backup did not finish"
                              : "the terminal did not answer");
        return 1;
    }
    return 0;
}

struct sched_item {
    uint8_t key[SUB_BYTES + 64];
    size_t klen;
    Simsync__ScheduleRecord *rec;
    uint64_t created;
};

struct sched_write {
    struct sched_item *v;
    size_t n;
};

static int
sched_write_fn(struct store_txn *txn, void *arg)
{
    struct sched_write *w = arg;

    for (size_t i = 0; i < w->n; i++) {
        const void *v;
        size_t vl;
        uint8_t *buf;
        size_t len;
        Simsync__ScheduleRecord *cur;
        int rc, same;
        /* Only if the record is still the one we read (the CLI may have
         * replaced or removed it meanwhile). */
        if (store_get(txn, STORE_SCHED, w->v[i].key, w->v[i].klen, &v, &vl) !=
            SIMSYNC_OK)
            continue;
        cur = simsync__schedule_record__unpack(NULL, vl, v);
        same = cur != NULL && cur->created_ms == w->v[i].created;
        if (cur)
            simsync__schedule_record__free_unpacked(cur, NULL);
        if (!same)
            continue;
        rc = record_pack(&w->v[i].rec->base, &buf, &len);
        if (rc == SIMSYNC_OK) {
            rc = store_put(txn, STORE_SCHED, w->v[i].key, w->v[i].klen, buf,
                           len);
            free(buf);
        }
        if (rc != SIMSYNC_OK)
            return rc;
    }
    return SIMSYNC_OK;
}

struct sched_list {
    struct sched_item *v;
    size_t n, cap;
};

static int
sched_entry(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
    struct sched_list *l = arg;
    Simsync__ScheduleRecord *rec;

    if (kl < SUB_BYTES || kl > sizeof(l->v->key))
        return SIMSYNC_OK;
    rec = simsync__schedule_record__unpack(NULL, vl, v);
    if (rec == NULL)
        return SIMSYNC_OK; /* unreadable: skipped, never rewritten */
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        struct sched_item *nv = realloc(l->v, nc * sizeof(*nv));
        if (nv == NULL) {
            simsync__schedule_record__free_unpacked(rec, NULL);
            return SIMSYNC_ENOMEM;
        }
        l->v = nv;
        l->cap = nc;
    }
    memcpy(l->v[l->n].key, k, kl);
    l->v[l->n].klen = kl;
    l->v[l->n].rec = rec;
    l->v[l->n].created = rec->created_ms;
    l->n++;
    return SIMSYNC_OK;
}

static void
sched_list_free(struct sched_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        simsync__schedule_record__free_unpacked(l->v[i].rec, NULL);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* The schedules whose key starts with prefix (plen 0: all of them). */
static int
sched_load(struct store *st, const void *prefix, size_t plen,
           struct sched_list *l)
{
    struct store_txn *txn;
    int rc = store_txn_begin(st, 1, &txn);

    memset(l, 0, sizeof(*l));
    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_scan(txn, STORE_SCHED, prefix, plen, plen, sched_entry, l);
    store_txn_abort(txn);
    if (rc != SIMSYNC_OK)
        sched_list_free(l);
    return rc;
}

static int
sched_tick(struct sched *sc)
{
    struct sched_list l;
    struct sched_item *changed = NULL;
    size_t nch = 0;
    uint64_t now;
    int rc = sched_load(sc->n->st, "", 0, &l);

    if (rc != SIMSYNC_OK)
        return rc;
    now = node_now_ms();
    if (l.n > 0) {
        changed = malloc(l.n * sizeof(*changed));
        if (changed == NULL)
            rc = SIMSYNC_ENOMEM;
    }
    for (size_t i = 0; rc == SIMSYNC_OK && i < l.n; i++)
        if (sched_step(sc, l.v[i].key, l.v[i].rec, now))
            changed[nch++] = l.v[i];
    if (rc == SIMSYNC_OK && nch > 0) {
        struct sched_write w = {changed, nch};
        rc = store_write(sc->n->st, sched_write_fn, &w);
    }
    sched_list_free(&l);
    free(changed);
    return rc;
}

static pthread_t sched_thread;
static int sched_running;
static struct sched sched_state;

static void *
sched_main(void *arg)
{
    struct sched *sc = arg;

    while (!*sc->stop) {
        int rc = sched_tick(sc);
        if (rc != SIMSYNC_OK)
            fprintf(stderr, "hub: scheduler: %s\n", simsync_strerror(rc));
        for (int i = 0; i < SCHED_TICK_MS / 50 && !*sc->stop; i++)
            usleep(50000);
    }
    while (sc->ninf > 0)
        inflight_drop(sc, &sc->inf[sc->ninf - 1]);
    free(sc->inf);
    sc->inf = NULL;
    sc->capinf = 0;
    return NULL;
}

int
hub_sched_start(struct simsync_node *n, volatile int *stop)
{
    memset(&sched_state, 0, sizeof(sched_state));
    sched_state.n = n;
    sched_state.stop = stop;
    if (pthread_create(&sched_thread, NULL, sched_main, &sched_state) != 0)
        return SIMSYNC_ENOMEM;
    sched_running = 1;
    return SIMSYNC_OK;
}

void
hub_sched_stop(void)
{
    if (sched_running) {
        pthread_join(sched_thread, NULL);
        sched_running = 0;
    }
}

/* ------------------------------------------------------------ control */

/* Does the terminal's result match a generation it committed? */
static int
result_matches(struct simsync_node *n, const uint8_t sub[SUB_BYTES],
               const char *tid, const Simsync__BackupResult *r, char *why,
               size_t wlen)
{
    uint8_t key[GEN_KEY_BYTES];
    struct store_txn *txn;
    const void *v;
    size_t vl;
    Simsync__GenerationRecord *rec = NULL;
    int ok = 0, rc;

    if (r->code != 0) {
        snprintf(why, wlen, "the terminal's backup failed: %s%s%s",
                 simsync_strerror(r->code), r->text[0] ? ": " : "", r->text);
        return 0;
    }
    memcpy(key, sub, SUB_BYTES);
    store_be64(key + SUB_BYTES, r->gen);
    memset(key + SUB_BYTES + 8, 0, 5);
    rc = store_txn_begin(n->st, 1, &txn);
    if (rc != SIMSYNC_OK) {
        snprintf(why, wlen, "store: %s", simsync_strerror(rc));
        return 0;
    }
    if (store_get(txn, STORE_GENS, key, sizeof(key), &v, &vl) == SIMSYNC_OK)
        rec = simsync__generation_record__unpack(NULL, vl, v);
    store_txn_abort(txn);
    if (rec == NULL || rec->info == NULL)
        snprintf(why, wlen, "the terminal reported generation %llu, which the "
                 "hub does not have", (unsigned long long)r->gen);
    else if (strcmp(rec->info->terminal_id, tid) != 0 ||
             rec->info->items != r->items || rec->info->bytes != r->bytes ||
             r->digest.len != 32 || rec->info->digest.len != 32 ||
             !crypt_equal(r->digest.data, rec->info->digest.data, 32))
        snprintf(why, wlen, "the terminal's report of generation %llu does not "
                 "match what the hub committed", (unsigned long long)r->gen);
    else
        ok = 1;
    if (rec)
        simsync__generation_record__free_unpacked(rec, NULL);
    return ok;
}

static int
push_notices(struct simsync_node *n, struct chan *ch,
             const uint8_t sub[SUB_BYTES], const char *tid, uint64_t *seen)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__Notices msg = SIMSYNC__NOTICES__INIT;
    struct notice_acc a;
    int rc = notices_collect(n->st, sub, tid, *seen, &a);

    if (rc != SIMSYNC_OK || a.n == 0) {
        if (rc == SIMSYNC_OK)
            notices_free(a.v, a.n);
        return rc;
    }
    msg.notices = a.v;
    msg.n_notices = a.n;
    env.msg_case = SIMSYNC__ENVELOPE__MSG_NOTICES;
    env.notices = &msg;
    rc = node_send_env(ch, &env);
    if (rc == SIMSYNC_OK)
        *seen = a.last;
    notices_free(a.v, a.n);
    return rc;
}

static int
push_jobs(struct simsync_node *n, struct chan *ch,
          const uint8_t sub[SUB_BYTES], const char *tid, uint64_t *sent)
{
    struct jobs_acc a = {NULL, 0, *sent};
    int rc = jobs_collect(n->st, sub, tid, &a);

    for (size_t i = 0; rc == SIMSYNC_OK && i < a.n; i++) {
        Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
        env.msg_case = SIMSYNC__ENVELOPE__MSG_RESTORE_JOB;
        env.restore_job = a.v[i];
        rc = node_send_env(ch, &env);
        if (rc == SIMSYNC_OK && a.v[i]->id > *sent)
            *sent = a.v[i]->id;
    }
    jobs_free(a.v, a.n);
    return rc;
}

int
hub_control(struct simsync_node *n, struct chan *ch, struct conn *c,
            const uint8_t sub[SUB_BYTES], const Simsync__Hello *h,
            uint64_t notices_sent)
{
    struct slot *s = calloc(1, sizeof(*s));
    uint64_t last_rx = node_now_ms(), last_push = 0, jobs_sent = 0;
    uint64_t seen = notices_sent, changes_told = 0;
    int rc = SIMSYNC_OK;

    if (s == NULL)
        return SIMSYNC_ENOMEM;
    memcpy(s->sub, sub, SUB_BYTES);
    snprintf(s->tid, sizeof(s->tid), "%s", h->terminal_id);
    s->refs = 1;
    pthread_mutex_lock(&slots_lock);
    s->next = slots;
    slots = s;
    pthread_mutex_unlock(&slots_lock);
    /* Jobs in the HelloReply count as sent. */
    {
        struct jobs_acc a = {NULL, 0, 0};
        if (jobs_collect(n->st, sub, h->terminal_id, &a) == SIMSYNC_OK)
            for (size_t i = 0; i < a.n; i++)
                if (a.v[i]->id > jobs_sent)
                    jobs_sent = a.v[i]->id;
        jobs_free(a.v, a.n);
    }
    while (rc == SIMSYNC_OK && !*sched_state.stop) {
        struct pollfd pfd = {conn_pollfd(c), POLLIN, 0};
        Simsync__Envelope *in = NULL;
        uint64_t now;
        int send_req = 0;
        Simsync__BackupRequest req = SIMSYNC__BACKUP_REQUEST__INIT;

        if (poll(&pfd, 1, 100) > 0) {
            rc = node_recv_env(ch, (void **)&in);
            if (rc != SIMSYNC_OK)
                break;
            last_rx = node_now_ms();
            switch (in->msg_case) {
            case SIMSYNC__ENVELOPE__MSG_BACKUP_ANSWER: {
                const Simsync__BackupAnswer *a = in->backup_answer;
                pthread_mutex_lock(&slots_lock);
                if (a->job == s->job && s->state == SLOT_WAIT) {
                    s->answered = 1;
                    s->ok = a->ok;
                    s->retry_after_s =
                        a->retry_after_s < 86400 ? a->retry_after_s : 86400;
                    snprintf(s->reason, sizeof(s->reason), "%s",
                             a->reason[0] ? a->reason : "busy");
                    s->state = a->ok ? SLOT_RUNNING : SLOT_IDLE;
                }
                pthread_mutex_unlock(&slots_lock);
                break;
            }
            case SIMSYNC__ENVELOPE__MSG_BACKUP_RESULT: {
                const Simsync__BackupResult *r = in->backup_result;
                char why[160] = "";
                int ok = result_matches(n, sub, s->tid, r, why, sizeof(why));
                pthread_mutex_lock(&slots_lock);
                if (r->job == s->job && s->state == SLOT_RUNNING) {
                    s->have_result = 1;
                    s->result_ok = ok;
                    s->result_gen = r->gen;
                    snprintf(s->result_text, sizeof(s->result_text), "%s",
                             why);
                }
                pthread_mutex_unlock(&slots_lock);
                break;
            }
            case SIMSYNC__ENVELOPE__MSG_PING: {
                Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
                Simsync__Ping pong = SIMSYNC__PING__INIT;
                pong.t = in->ping->t;
                env.msg_case = SIMSYNC__ENVELOPE__MSG_PING;
                env.ping = &pong;
                rc = node_send_env(ch, &env);
                break;
            }
            default:
                rc = SIMSYNC_EPROTO;
                node_send_error(ch, rc, "unexpected message on a control "
                                        "connection");
            }
            simsync__envelope__free_unpacked(in, NULL);
            if (rc != SIMSYNC_OK)
                break;
        }
        pthread_mutex_lock(&slots_lock);
        if (s->state == SLOT_REQUEST) {
            s->state = SLOT_WAIT;
            req.job = s->job;
            req.attempt = s->attempt;
            send_req = 1;
        }
        pthread_mutex_unlock(&slots_lock);
        if (send_req) {
            Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
            env.msg_case = SIMSYNC__ENVELOPE__MSG_BACKUP_REQUEST;
            env.backup_request = &req;
            rc = node_send_env(ch, &env);
        }
        pthread_mutex_lock(&slots_lock);
        uint64_t changes = s->changes;
        pthread_mutex_unlock(&slots_lock);
        if (rc == SIMSYNC_OK && changes != changes_told) {
            Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
            Simsync__HubChanges hc = SIMSYNC__HUB_CHANGES__INIT;
            hc.seq = changes;
            env.msg_case = SIMSYNC__ENVELOPE__MSG_HUB_CHANGES;
            env.hub_changes = &hc;
            rc = node_send_env(ch, &env);
            changes_told = changes;
        }
        now = node_now_ms();
        if (rc == SIMSYNC_OK && now - last_push >= PUSH_EVERY_MS) {
            last_push = now;
            rc = push_notices(n, ch, sub, s->tid, &seen);
            if (rc == SIMSYNC_OK)
                rc = push_jobs(n, ch, sub, s->tid, &jobs_sent);
        }
        if (rc == SIMSYNC_OK && now - last_rx > CONTROL_IDLE_MS)
            rc = SIMSYNC_ETIMEOUT;
    }
    pthread_mutex_lock(&slots_lock);
    s->closed = 1;
    for (struct slot **p = &slots; *p != NULL; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            break;
        }
    slot_put_locked(s);
    pthread_mutex_unlock(&slots_lock);
    return rc == SIMSYNC_ECLOSED ? SIMSYNC_OK : rc;
}

/* ------------------------------------------------------------ history */

struct history_acc {
    Simsync__HistoryEvent **v;
    size_t n, cap, start; /* a ring of the newest HISTORY_MAX */
};

static int
history_fn(Simsync__HistoryEvent *ev, void *arg)
{
    struct history_acc *a = arg;
    uint8_t *buf;
    size_t len;
    Simsync__HistoryEvent *copy;
    int rc = record_pack(&ev->base, &buf, &len);

    if (rc != SIMSYNC_OK)
        return rc;
    copy = simsync__history_event__unpack(NULL, len, buf);
    free(buf);
    if (copy == NULL)
        return SIMSYNC_ENOMEM;
    if (a->n < HISTORY_MAX) {
        a->v[a->n++] = copy;
    } else {
        simsync__history_event__free_unpacked(a->v[a->start], NULL);
        a->v[a->start] = copy;
        a->start = (a->start + 1) % HISTORY_MAX;
    }
    return SIMSYNC_OK;
}

int
hub_history(struct simsync_node *n, struct chan *ch,
            const uint8_t sub[SUB_BYTES])
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__History msg = SIMSYNC__HISTORY__INIT;
    struct history_acc a = {0};
    Simsync__HistoryEvent **ordered = NULL;
    struct store_txn *txn;
    int rc;

    a.v = calloc(HISTORY_MAX, sizeof(*a.v));
    ordered = calloc(HISTORY_MAX, sizeof(*ordered));
    if (a.v == NULL || ordered == NULL) {
        free(a.v);
        free(ordered);
        return SIMSYNC_ENOMEM;
    }
    rc = store_txn_begin(n->st, 1, &txn);
    if (rc == SIMSYNC_OK) {
        rc = events_each(txn, sub, 0, history_fn, &a);
        store_txn_abort(txn);
    }
    for (size_t i = 0; i < a.n; i++)
        ordered[i] = a.v[(a.start + i) % a.n];
    if (rc == SIMSYNC_OK) {
        msg.events = ordered;
        msg.n_events = a.n;
        env.msg_case = SIMSYNC__ENVELOPE__MSG_HISTORY;
        env.history = &msg;
        rc = node_send_env(ch, &env);
    }
    for (size_t i = 0; i < a.n; i++)
        simsync__history_event__free_unpacked(a.v[i], NULL);
    free(a.v);
    free(ordered);
    return rc;
}

/* ------------------------------------------------------------ forget */

struct idset {
    uint8_t *ids; /* 32 bytes each; sorted after collection */
    size_t n, cap;
};

static int
idset_add(struct idset *s, const uint8_t *id)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        uint8_t *ni = realloc(s->ids, cap * 32);
        if (ni == NULL)
            return SIMSYNC_ENOMEM;
        s->ids = ni;
        s->cap = cap;
    }
    memcpy(s->ids + s->n * 32, id, 32);
    s->n++;
    return SIMSYNC_OK;
}

static int
cmp32(const void *a, const void *b)
{
    return memcmp(a, b, 32);
}

struct forget {
    const uint8_t *sub;
    const Simsync__ForgetRequest *req;
    uint64_t now;
    uint32_t forgotten;
    uint64_t chunks_freed, bytes_freed;
    uint64_t missing; /* a generation the hub does not have */
};

static int
mark_gen_refs(Simsync__GenerationRecord *rec, void *arg)
{
    struct idset *s = arg;

    if (rec->info->forgotten)
        return SIMSYNC_OK;
    for (size_t i = 0; i < rec->n_chunk_refs; i++)
        if (rec->chunk_refs[i].len == 32) {
            int rc = idset_add(s, rec->chunk_refs[i].data);
            if (rc != SIMSYNC_OK)
                return rc;
        }
    return SIMSYNC_OK;
}

/* Mark every chunk an item version or a kept generation of the
 * subscriber uses, then sweep the others. */
static int
mark_item_refs(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
    struct idset *live = arg;
    Simsync__ItemRecord *rec = simsync__item_record__unpack(NULL, vl, v);
    int rc = SIMSYNC_OK;

    (void)k;
    (void)kl;
    if (rec == NULL)
        return SIMSYNC_EPROTO;
    for (size_t i = 0; rc == SIMSYNC_OK && i < rec->n_versions; i++)
        for (size_t j = 0; rc == SIMSYNC_OK && j < rec->versions[i]->n_chunks;
             j++)
            if (rec->versions[i]->chunks[j]->id.len == 32)
                rc = idset_add(live, rec->versions[i]->chunks[j]->id.data);
    item_record_free(rec);
    return rc;
}

struct sweep {
    struct forget *f;
    const struct idset *live;
    struct idset dead;
};

static int
sweep_chunk(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
    struct sweep *w = arg;
    const uint8_t *id = (const uint8_t *)k + SUB_BYTES;

    (void)v;
    if (kl != SUB_BYTES + 32 ||
        (w->live->n > 0 &&
         bsearch(id, w->live->ids, w->live->n, 32, cmp32) != NULL))
        return SIMSYNC_OK;
    w->f->chunks_freed++;
    w->f->bytes_freed += vl;
    return idset_add(&w->dead, id);
}

static int
reclaim(struct store_txn *txn, struct forget *f)
{
    struct idset live = {0};
    struct sweep w = {f, &live, {0}};
    int rc = store_scan(txn, STORE_ITEMS, f->sub, SUB_BYTES, SUB_BYTES,
                        mark_item_refs, &live);

    if (rc == SIMSYNC_OK)
        rc = hub_gen_each(txn, f->sub, mark_gen_refs, &live);
    if (rc == SIMSYNC_OK && live.n > 1)
        qsort(live.ids, live.n, 32, cmp32);
    /* Collect first, then delete: the scan's cursor is not disturbed. */
    if (rc == SIMSYNC_OK)
        rc = store_scan(txn, STORE_CHUNKS, f->sub, SUB_BYTES, SUB_BYTES,
                        sweep_chunk, &w);
    for (size_t i = 0; rc == SIMSYNC_OK && i < w.dead.n; i++) {
        uint8_t key[SUB_BYTES + 32];
        memcpy(key, f->sub, SUB_BYTES);
        memcpy(key + SUB_BYTES, w.dead.ids + i * 32, 32);
        rc = store_del(txn, STORE_CHUNKS, key, sizeof(key));
    }
    free(live.ids);
    free(w.dead.ids);
    return rc;
}

static int
forget_fn(struct store_txn *txn, void *arg)
{
    struct forget *f = arg;
    int rc = SIMSYNC_OK;

    f->forgotten = 0;
    f->chunks_freed = f->bytes_freed = 0;
    f->missing = 0;
    for (size_t i = 0; rc == SIMSYNC_OK && i < f->req->n_gens; i++) {
        uint8_t key[GEN_KEY_BYTES];
        const void *v;
        size_t vl;
        Simsync__GenerationRecord *rec;
        uint8_t *buf;
        size_t len;
        uint32_t pieces;

        memcpy(key, f->sub, SUB_BYTES);
        store_be64(key + SUB_BYTES, f->req->gens[i]);
        memset(key + SUB_BYTES + 8, 0, 5);
        if (store_get(txn, STORE_GENS, key, sizeof(key), &v, &vl) !=
            SIMSYNC_OK) {
            f->missing = f->req->gens[i];
            return SIMSYNC_ENOTFOUND;
        }
        rec = simsync__generation_record__unpack(NULL, vl, v);
        if (rec == NULL || rec->info == NULL) {
            if (rec)
                simsync__generation_record__free_unpacked(rec, NULL);
            return SIMSYNC_EPROTO;
        }
        if (rec->info->forgotten) {
            simsync__generation_record__free_unpacked(rec, NULL);
            continue;
        }
        pieces = rec->info->pieces;
        {
            /* Pack without the chunk list and with the token, then put
             * the unpacked fields back so free_unpacked frees them. */
            size_t nrefs = rec->n_chunk_refs;
            ProtobufCBinaryData tok = rec->info->forget_token;
            rec->info->forgotten = 1;
            rec->info->forget_token = f->req->tokens[i];
            rec->n_chunk_refs = 0;
            rc = record_pack(&rec->base, &buf, &len);
            rec->info->forget_token = tok;
            rec->n_chunk_refs = nrefs;
        }
        simsync__generation_record__free_unpacked(rec, NULL);
        if (rc != SIMSYNC_OK)
            return rc;
        rc = store_put(txn, STORE_GENS, key, sizeof(key), buf, len);
        free(buf);
        for (uint32_t p = 0; rc == SIMSYNC_OK && p < pieces; p++) {
            key[SUB_BYTES + 8] = GEN_KIND_PIECE;
            key[SUB_BYTES + 9] = (uint8_t)(p >> 24);
            key[SUB_BYTES + 10] = (uint8_t)(p >> 16);
            key[SUB_BYTES + 11] = (uint8_t)(p >> 8);
            key[SUB_BYTES + 12] = (uint8_t)p;
            rc = store_del(txn, STORE_GENS, key, sizeof(key));
            if (rc == SIMSYNC_ENOTFOUND)
                rc = SIMSYNC_OK;
        }
        f->forgotten++;
    }
    if (rc == SIMSYNC_OK)
        rc = reclaim(txn, f);
    return rc;
}

int
hub_forget(struct simsync_node *n, struct chan *ch,
           const uint8_t sub[SUB_BYTES], const char *terminal_id)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT, *in = NULL;
    Simsync__ForgetDone done = SIMSYNC__FORGET_DONE__INIT;
    struct forget f = {0};
    int rc = node_recv_kind(ch, SIMSYNC__ENVELOPE__MSG_FORGET, (void **)&in);

    if (rc != SIMSYNC_OK) {
        if (rc == SIMSYNC_EPROTO)
            node_send_error(ch, rc, "expected a forget request");
        return rc;
    }
    f.sub = sub;
    f.req = in->forget;
    f.now = node_now_ms();
    if (f.req->n_gens != f.req->n_tokens || f.req->n_gens > FORGET_MAX) {
        simsync__envelope__free_unpacked(in, NULL);
        node_send_error(ch, SIMSYNC_EPROTO, "malformed forget request");
        return SIMSYNC_EPROTO;
    }
    for (size_t i = 0; i < f.req->n_tokens; i++)
        if (f.req->tokens[i].len != 32) {
            simsync__envelope__free_unpacked(in, NULL);
            node_send_error(ch, SIMSYNC_EPROTO, "malformed forget token");
            return SIMSYNC_EPROTO;
        }
    pthread_rwlock_wrlock(&gc_lock);
    rc = store_write(n->st, forget_fn, &f);
    pthread_rwlock_unlock(&gc_lock);
    if (rc == SIMSYNC_OK) {
        for (size_t i = 0; i < f.req->n_gens; i++)
            hub_event(n->st, sub, terminal_id, "forgotten", f.req->gens[i], 0,
                      0, "generation %llu forgotten",
                      (unsigned long long)f.req->gens[i]);
        done.forgotten = f.forgotten;
        done.chunks_freed = f.chunks_freed;
        done.bytes_freed = f.bytes_freed;
        env.msg_case = SIMSYNC__ENVELOPE__MSG_FORGET_DONE;
        env.forget_done = &done;
        rc = node_send_env(ch, &env);
    } else if (rc == SIMSYNC_ENOTFOUND) {
        char text[96];
        snprintf(text, sizeof(text), "the hub has no generation %llu",
                 (unsigned long long)f.missing);
        node_send_error(ch, rc, text);
    } else {
        node_send_error(ch, rc, "forgetting failed on the hub");
    }
    simsync__envelope__free_unpacked(in, NULL);
    return rc;
}

/* ------------------------------------------------------------ restore jobs */

struct job_put {
    const uint8_t *sub;
    Simsync__RestoreJob *job;
};

static int
job_put_fn(struct store_txn *txn, void *arg)
{
    struct job_put *j = arg;
    uint8_t key[SUB_BYTES + 64 + 9], rk[SUB_BYTES + 64], *buf;
    size_t kl = job_key(key, j->sub, j->job->terminal_id, j->job->id), len;
    size_t rkl = hub_tid_key(rk, j->sub, j->job->terminal_id);
    const void *v;
    size_t vl;
    int rc;

    if (store_get(txn, STORE_REGISTRY, rk, rkl, &v, &vl) != SIMSYNC_OK)
        return SIMSYNC_ENOTFOUND;
    rc = record_pack(&j->job->base, &buf, &len);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_put(txn, STORE_JOBS, key, kl, buf, len);
    free(buf);
    return rc;
}

int
hub_restore_job(struct simsync_node *n, struct chan *ch,
                const uint8_t sub[SUB_BYTES], const char *terminal_id)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT, *in = NULL;
    Simsync__RestoreJobAck ack = SIMSYNC__RESTORE_JOB_ACK__INIT;
    Simsync__RestoreJob *j;
    struct job_put p;
    char *from;
    int rc = node_recv_kind(ch, SIMSYNC__ENVELOPE__MSG_RESTORE_JOB,
                            (void **)&in);

    if (rc != SIMSYNC_OK) {
        if (rc == SIMSYNC_EPROTO)
            node_send_error(ch, rc, "expected a restore job");
        return rc;
    }
    j = in->restore_job;
    if (!hub_tid_valid(j->terminal_id) || j->sealed.len == 0 ||
        j->sealed.len > JOB_SEALED_MAX) {
        simsync__envelope__free_unpacked(in, NULL);
        node_send_error(ch, SIMSYNC_EPROTO, "malformed restore job");
        return SIMSYNC_EPROTO;
    }
    j->id = new_id();
    j->created_ms = node_now_ms();
    /* Who left it is the authenticated sender, whatever the frame says;
     * the unpacked string is put back before it is freed. */
    from = j->from_terminal;
    j->from_terminal = (char *)terminal_id;
    p.sub = sub;
    p.job = j;
    rc = store_write(n->st, job_put_fn, &p);
    if (rc == SIMSYNC_ENOTFOUND) {
        node_send_error(ch, rc,
                        "no terminal with that ID is registered for this "
                        "subscriber");
    } else if (rc == SIMSYNC_OK) {
        hub_event(n->st, sub, terminal_id, "restore-job", 0, 0, 0,
                  "restore job %llu left for terminal %s",
                  (unsigned long long)j->id, j->terminal_id);
        ack.id = j->id;
        env.msg_case = SIMSYNC__ENVELOPE__MSG_RESTORE_JOB_ACK;
        env.restore_job_ack = &ack;
        rc = node_send_env(ch, &env);
    }
    j->from_terminal = from;
    simsync__envelope__free_unpacked(in, NULL);
    return rc;
}

/* ------------------------------------------------------------ admin */

#define DEFAULT_RETRY_MS (15ull * 60 * 1000)
#define DEFAULT_ATTEMPTS 3
#define DEFAULT_ANSWER_MS 60000


struct sched_put {
    const uint8_t *sub;
    Simsync__ScheduleRecord *rec;
    uint64_t in_ms; /* next_in: keep the record, move next_ms */
};

static int
sched_put_fn(struct store_txn *txn, void *arg)
{
    struct sched_put *p = arg;
    uint8_t key[SUB_BYTES + 64], *buf;
    size_t kl = hub_tid_key(key, p->sub, p->rec->terminal_id), len;
    Simsync__ScheduleRecord *old = NULL;
    const void *v;
    size_t vl;
    int rc;

    if (p->in_ms > 0 &&
        store_get(txn, STORE_SCHED, key, kl, &v, &vl) == SIMSYNC_OK &&
        (old = simsync__schedule_record__unpack(NULL, vl, v)) != NULL) {
        /* A job in progress is left alone. */
        if (old->job == 0)
            old->next_ms = p->rec->next_ms;
        rc = record_pack(&old->base, &buf, &len);
        simsync__schedule_record__free_unpacked(old, NULL);
    } else {
        rc = record_pack(&p->rec->base, &buf, &len);
    }
    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_put(txn, STORE_SCHED, key, kl, buf, len);
    free(buf);
    return rc;
}

int
hub_sched_next_in(struct simsync_node *n, const uint8_t sub[SUB_BYTES],
                  const char *terminal_id, uint64_t in_ms)
{
    Simsync__ScheduleRecord rec = SIMSYNC__SCHEDULE_RECORD__INIT;
    struct sched_put p = {sub, &rec, in_ms};
    uint64_t now = node_now_ms();

    rec.terminal_id = (char *)terminal_id;
    rec.at_minute = -1;
    rec.retry_ms = DEFAULT_RETRY_MS;
    rec.max_attempts = DEFAULT_ATTEMPTS;
    rec.answer_timeout_ms = DEFAULT_ANSWER_MS;
    rec.created_ms = now;
    rec.next_ms = now + in_ms;
    return store_write(n->st, sched_put_fn, &p);
}

static int
hub_only(struct simsync_node *n, const char *subscriber,
         uint8_t sub[SUB_BYTES])
{
    if (strcmp(n->role, "hub") != 0)
        return node_fail(n, SIMSYNC_ESTATE, "this node is a %s, not a hub",
                         n->role);
    if (!hub_sub_valid(subscriber))
        return node_fail(n, SIMSYNC_EINVAL,
                         "'%s' is not a subscriber ID (5 to 15 digits)",
                         subscriber);
    hub_sub_key(n, subscriber, sub);
    return SIMSYNC_OK;
}

int
simsync_hub_schedule_set(struct simsync_node *n, const char *subscriber,
                         struct simsync_schedule *s)
{
    Simsync__ScheduleRecord rec = SIMSYNC__SCHEDULE_RECORD__INIT;
    uint8_t sub[SUB_BYTES];
    struct sched_put p = {sub, &rec, 0};
    uint64_t now = node_now_ms();
    int rc = hub_only(n, subscriber, sub);

    if (rc != SIMSYNC_OK)
        return rc;
    if (s->terminal_id[0] != '\0' && !hub_tid_valid(s->terminal_id))
        return node_fail(n, SIMSYNC_EINVAL, "'%s' is not a terminal ID",
                         s->terminal_id);
    if ((s->every_ms > 0) == (s->at_minute >= 0))
        return node_fail(n, SIMSYNC_EINVAL,
                         "give either an interval or a time of day");
    if (s->at_minute >= 24 * 60)
        return node_fail(n, SIMSYNC_EINVAL, "the time of day is out of range");
    if (s->every_ms > 0 && s->every_ms < 1000)
        return node_fail(n, SIMSYNC_EINVAL,
                         "the interval must be at least 1 second");
    rec.terminal_id = s->terminal_id;
    rec.every_ms = s->every_ms;
    rec.at_minute = s->at_minute;
    rec.retry_ms = s->retry_ms ? s->retry_ms : DEFAULT_RETRY_MS;
    rec.max_attempts = s->max_attempts ? s->max_attempts : DEFAULT_ATTEMPTS;
    rec.answer_timeout_ms =
        s->answer_timeout_ms ? s->answer_timeout_ms : DEFAULT_ANSWER_MS;
    rec.created_ms = now;
    rec.next_ms = s->every_ms > 0 ? now + s->every_ms
                                  : sched_next(now, 0, s->at_minute, now);
    rc = store_write(n->st, sched_put_fn, &p);
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc, "cannot store the schedule: %s",
                         simsync_strerror(rc));
    s->retry_ms = rec.retry_ms;
    s->max_attempts = rec.max_attempts;
    s->answer_timeout_ms = rec.answer_timeout_ms;
    s->next_ms = rec.next_ms;
    s->attempt = 0;
    return SIMSYNC_OK;
}

int
simsync_hub_schedule_list(struct simsync_node *n, const char *subscriber,
                          struct simsync_schedule **out, size_t *count)
{
    uint8_t sub[SUB_BYTES];
    struct sched_list l;
    struct simsync_schedule *v;
    int rc = hub_only(n, subscriber, sub);

    *out = NULL;
    *count = 0;
    if (rc == SIMSYNC_OK)
        rc = sched_load(n->st, sub, SUB_BYTES, &l);
    if (rc != SIMSYNC_OK)
        return rc;
    v = calloc(l.n + 1, sizeof(*v));
    if (v == NULL) {
        sched_list_free(&l);
        return SIMSYNC_ENOMEM;
    }
    for (size_t i = 0; i < l.n; i++) {
        const Simsync__ScheduleRecord *rec = l.v[i].rec;
        snprintf(v[i].terminal_id, sizeof(v[i].terminal_id), "%s",
                 rec->terminal_id);
        v[i].every_ms = rec->every_ms;
        v[i].at_minute = rec->at_minute;
        v[i].retry_ms = rec->retry_ms;
        v[i].max_attempts = rec->max_attempts;
        v[i].answer_timeout_ms = rec->answer_timeout_ms;
        v[i].next_ms = rec->job ? rec->retry_at_ms : rec->next_ms;
        v[i].attempt = rec->attempt;
    }
    *out = v;
    *count = l.n;
    sched_list_free(&l);
    return SIMSYNC_OK;
}

struct sched_del {
    uint8_t key[SUB_BYTES + 64];
    size_t kl;
};

static int
sched_del_fn(struct store_txn *txn, void *arg)
{
    struct sched_del *d = arg;

    return store_del(txn, STORE_SCHED, d->key, d->kl);
}

int
simsync_hub_schedule_remove(struct simsync_node *n, const char *subscriber,
                            const char *terminal_id)
{
    uint8_t sub[SUB_BYTES];
    struct sched_del d;
    int rc = hub_only(n, subscriber, sub);

    if (rc != SIMSYNC_OK)
        return rc;
    if (strlen(terminal_id) > 63)
        return node_fail(n, SIMSYNC_EINVAL, "terminal ID too long");
    d.kl = hub_tid_key(d.key, sub, terminal_id);
    rc = store_write(n->st, sched_del_fn, &d);
    if (rc == SIMSYNC_ENOTFOUND)
        return node_fail(n, rc, "there is no such schedule");
    return rc;
}

int
hub_admin_sub(struct simsync_node *n, const char *subscriber,
              uint8_t sub[SUB_BYTES])
{
    return hub_only(n, subscriber, sub);
}
