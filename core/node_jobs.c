/* node_jobs.c -- what a terminal keeps from its contacts with the hub:
 * notices (meta "notices", "notices_seen"), restore jobs other terminals
 * left for it ("job:<id>", run by simsync_jobs_run, then reported in
 * "jobs_done" with the next Hello), and the backup history it asks for. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob.h"
#include "node.h"
#include "pbcheck.h"

#define LOCAL_NOTICES_MAX 200
#define JOB_BODY_MAX (64u * 1024)

static const char notices_key[] = "notices";
static const char seen_key[] = "notices_seen";
static const char done_key[] = "jobs_done";
static const char job_prefix[] = "job:";

static int
meta_u64(struct store_txn *txn, const char *key, uint64_t *out)
{
    const uint8_t *v;
    size_t vl;
    int rc = store_get(txn, STORE_META, key, strlen(key), (const void **)&v,
                       &vl);

    *out = 0;
    if (rc == SIMSYNC_OK && vl == 8)
        *out = store_get_be64(v);
    return rc == SIMSYNC_ENOTFOUND ? SIMSYNC_OK : rc;
}

int
node_hello_prepare(struct simsync_node *n, struct hello_state *hs)
{
    struct store_txn *txn;
    const uint8_t *v;
    size_t vl;
    int rc;

    memset(hs, 0, sizeof(*hs));
    rc = store_txn_begin(n->st, 1, &txn);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = meta_u64(txn, seen_key, &hs->notices_seen);
    if (rc == SIMSYNC_OK &&
        store_get(txn, STORE_META, done_key, sizeof(done_key) - 1,
                  (const void **)&v, &vl) == SIMSYNC_OK)
        for (size_t i = 0; i + 8 <= vl && hs->ndone < 32; i += 8)
            hs->done[hs->ndone++] = store_get_be64(v + i);
    store_txn_abort(txn);
    return rc;
}

/* Append notices to meta "notices", keeping the newest ones. */
static int
notices_append(struct store_txn *txn, Simsync__Notice *const *add, size_t nadd)
{
    Simsync__Notices *old = NULL, all = SIMSYNC__NOTICES__INIT;
    Simsync__Notice **v;
    const void *val;
    size_t vl, n = 0, len, skip;
    uint8_t *buf;
    int rc;

    if (store_get(txn, STORE_META, notices_key, sizeof(notices_key) - 1, &val,
                  &vl) == SIMSYNC_OK) {
        old = pb_unpack(&simsync__notices__descriptor, vl, val, &rc);
        if (old == NULL)
            return rc;
    }
    v = calloc((old ? old->n_notices : 0) + nadd + 1, sizeof(*v));
    if (v == NULL) {
        if (old)
            simsync__notices__free_unpacked(old, NULL);
        return SIMSYNC_ENOMEM;
    }
    for (size_t i = 0; old && i < old->n_notices; i++)
        v[n++] = old->notices[i];
    for (size_t i = 0; i < nadd; i++)
        v[n++] = add[i];
    skip = n > LOCAL_NOTICES_MAX ? n - LOCAL_NOTICES_MAX : 0;
    all.notices = v + skip;
    all.n_notices = n - skip;
    rc = record_pack(&all.base, &buf, &len);
    if (rc == SIMSYNC_OK) {
        rc = store_put(txn, STORE_META, notices_key, sizeof(notices_key) - 1,
                       buf, len);
        free(buf);
    }
    free(v);
    if (old)
        simsync__notices__free_unpacked(old, NULL);
    return rc;
}

static void
job_meta_key(char out[32], uint64_t id)
{
    snprintf(out, 32, "%s%016" PRIx64, job_prefix, id);
}

static int
job_keep(struct store_txn *txn, const Simsync__RestoreJob *j)
{
    char key[32];
    uint8_t *buf;
    size_t len;
    int rc;

    job_meta_key(key, j->id);
    rc = record_pack(&j->base, &buf, &len);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_put(txn, STORE_META, key, strlen(key), buf, len);
    free(buf);
    return rc;
}

struct absorb {
    const struct hello_state *hs;
    Simsync__Notice *const *notices;
    size_t nnotices;
    Simsync__RestoreJob *const *jobs;
    size_t njobs;
};

static int
absorb_fn(struct store_txn *txn, void *arg)
{
    struct absorb *a = arg;
    uint64_t seen;
    uint8_t b[8];
    int rc = meta_u64(txn, seen_key, &seen);

    /* The hub removed the jobs we reported done before it answered. */
    if (rc == SIMSYNC_OK && a->hs->ndone > 0) {
        rc = store_del(txn, STORE_META, done_key, sizeof(done_key) - 1);
        if (rc == SIMSYNC_ENOTFOUND)
            rc = SIMSYNC_OK;
    }
    if (rc == SIMSYNC_OK && a->nnotices > 0) {
        Simsync__Notice **fresh = calloc(a->nnotices, sizeof(*fresh));
        size_t nf = 0;
        if (fresh == NULL)
            return SIMSYNC_ENOMEM;
        for (size_t i = 0; i < a->nnotices; i++)
            if (a->notices[i]->seq > seen) {
                fresh[nf++] = a->notices[i];
                seen = a->notices[i]->seq;
            }
        rc = nf > 0 ? notices_append(txn, fresh, nf) : SIMSYNC_OK;
        free(fresh);
        store_be64(b, seen);
        if (rc == SIMSYNC_OK)
            rc = store_put(txn, STORE_META, seen_key, sizeof(seen_key) - 1, b,
                           sizeof(b));
    }
    for (size_t i = 0; rc == SIMSYNC_OK && i < a->njobs; i++) {
        int done = 0;
        for (size_t k = 0; k < a->hs->ndone; k++)
            done |= a->hs->done[k] == a->jobs[i]->id;
        if (!done)
            rc = job_keep(txn, a->jobs[i]);
    }
    return rc;
}

int
node_hello_absorb(struct simsync_node *n, const struct hello_state *hs,
                  Simsync__Notice *const *notices, size_t nnotices,
                  Simsync__RestoreJob *const *jobs, size_t njobs)
{
    struct absorb a = {hs, notices, nnotices, jobs, njobs};

    if (hs->ndone == 0 && nnotices == 0 && njobs == 0)
        return SIMSYNC_OK;
    return store_write(n->st, absorb_fn, &a);
}

struct local_notice {
    Simsync__Notice *no;
};

static int
local_notice_fn(struct store_txn *txn, void *arg)
{
    struct local_notice *l = arg;

    return notices_append(txn, &l->no, 1);
}

int
node_notice_local(struct simsync_node *n, const char *fmt, ...)
{
    Simsync__Notice no = SIMSYNC__NOTICE__INIT;
    struct local_notice l = {&no};
    char text[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    no.seq = 0; /* made here, not a hub sequence */
    no.time_ms = node_now_ms();
    no.text = text;
    return store_write(n->st, local_notice_fn, &l);
}

int
simsync_notices(struct simsync_node *n, struct simsync_notice **out,
                size_t *count)
{
    struct store_txn *txn;
    Simsync__Notices *all = NULL;
    struct simsync_notice *v;
    const void *val;
    size_t vl;
    int rc = store_txn_begin(n->st, 1, &txn);

    *out = NULL;
    *count = 0;
    if (rc != SIMSYNC_OK)
        return rc;
    if (store_get(txn, STORE_META, notices_key, sizeof(notices_key) - 1, &val,
                  &vl) == SIMSYNC_OK)
        all = simsync__notices__unpack(NULL, vl, val);
    store_txn_abort(txn);
    v = calloc((all ? all->n_notices : 0) + 1, sizeof(*v));
    if (v == NULL) {
        if (all)
            simsync__notices__free_unpacked(all, NULL);
        return SIMSYNC_ENOMEM;
    }
    for (size_t i = 0; all && i < all->n_notices; i++) {
        v[i].seq = all->notices[i]->seq;
        v[i].time_ms = all->notices[i]->time_ms;
        snprintf(v[i].text, sizeof(v[i].text), "%s", all->notices[i]->text);
    }
    *count = all ? all->n_notices : 0;
    *out = v;
    if (all)
        simsync__notices__free_unpacked(all, NULL);
    return SIMSYNC_OK;
}

static int
clear_fn(struct store_txn *txn, void *arg)
{
    int rc = store_del(txn, STORE_META, notices_key, sizeof(notices_key) - 1);

    (void)arg;
    return rc == SIMSYNC_ENOTFOUND ? SIMSYNC_OK : rc;
}

int
simsync_notices_clear(struct simsync_node *n)
{
    return store_write(n->st, clear_fn, NULL);
}

/* ------------------------------------------------------------ history */

int
simsync_backup_history(struct simsync_node *n,
                       struct simsync_history_event **out, size_t *count)
{
    Simsync__Envelope *in = NULL;
    struct simsync_history_event *v;
    int rc;

    *out = NULL;
    *count = 0;
    n->err[0] = '\0';
    if (!n->bound)
        return node_fail(n, SIMSYNC_ESTATE, "this terminal is not registered");
    rc = node_request(n, SIMSYNC__OP__OP_HISTORY, NULL,
                      SIMSYNC__ENVELOPE__MSG_HISTORY, (void **)&in);
    if (rc != SIMSYNC_OK) {
        if (n->err[0] == '\0')
            node_fail(n, rc, "cannot read the backup history: %s",
                      simsync_strerror(rc));
        return rc;
    }
    v = calloc(in->history->n_events + 1, sizeof(*v));
    if (v == NULL) {
        simsync__envelope__free_unpacked(in, NULL);
        return SIMSYNC_ENOMEM;
    }
    for (size_t i = 0; i < in->history->n_events; i++) {
        const Simsync__HistoryEvent *e = in->history->events[i];
        v[i].seq = e->seq;
        v[i].time_ms = e->time_ms;
        v[i].gen = e->gen;
        v[i].attempt = e->attempt;
        snprintf(v[i].terminal_id, sizeof(v[i].terminal_id), "%s",
                 e->terminal_id);
        snprintf(v[i].event, sizeof(v[i].event), "%s", e->event);
        snprintf(v[i].detail, sizeof(v[i].detail), "%s", e->detail);
    }
    *count = in->history->n_events;
    *out = v;
    simsync__envelope__free_unpacked(in, NULL);
    return SIMSYNC_OK;
}

/* ------------------------------------------------------------ jobs */

static void
job_ad(uint8_t *ad, size_t *adlen, const char *terminal_id)
{
    static const char prefix[] = "simsync-restore-job";
    size_t tl = strlen(terminal_id);

    memcpy(ad, prefix, sizeof(prefix) - 1);
    memcpy(ad + sizeof(prefix) - 1, terminal_id, tl);
    *adlen = sizeof(prefix) - 1 + tl;
}

int
node_job_leave(struct simsync_node *n, const struct simsync_restore_opts *o,
               uint64_t *id)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT, *in = NULL;
    Simsync__RestoreJob job = SIMSYNC__RESTORE_JOB__INIT;
    Simsync__RestoreJobBody body = SIMSYNC__RESTORE_JOB_BODY__INIT;
    uint32_t cls[CLS_COUNT], ncls = 0;
    uint8_t ad[96], *plain = NULL, *sealed = NULL;
    size_t adlen, plen, slen;
    struct replica r;
    int rc;

    *id = 0;
    if (strlen(o->to_terminal) == 0 || strlen(o->to_terminal) > 63)
        return node_fail(n, SIMSYNC_EINVAL, "'%s' is not a terminal ID",
                         o->to_terminal);
    if (o->on_conflict == SIMSYNC_ON_CONFLICT_ASK)
        return node_fail(n, SIMSYNC_EINVAL,
                         "a restore on another terminal cannot ask: choose "
                         "--on-conflict overwrite, keep-both or skip");
    if (o->dry_run)
        return node_fail(n, SIMSYNC_EINVAL,
                         "--dry-run runs here; leave out --to-terminal");
    rc = replica_setup(n, &r);
    if (rc != SIMSYNC_OK)
        return rc;
    for (int c = 0; c < CLS_COUNT; c++)
        if (o->classes & (1u << c))
            cls[ncls++] = (uint32_t)c;
    body.gen = o->gen;
    body.classes = cls;
    body.n_classes = ncls;
    body.items = (char **)o->items;
    body.n_items = o->nitems;
    body.on_conflict = (uint32_t)o->on_conflict;
    body.delete_after = o->delete_after != 0;
    job_ad(ad, &adlen, o->to_terminal);
    rc = record_pack(&body.base, &plain, &plen);
    if (rc == SIMSYNC_OK && plen > JOB_BODY_MAX)
        rc = node_fail(n, SIMSYNC_ETOOBIG, "the restore job is too large");
    if (rc == SIMSYNC_OK)
        rc = blob_encode(r.keys.seal, ad, adlen, plain, plen, &sealed, &slen);
    keys_wipe(&r.keys);
    free(plain);
    if (rc == SIMSYNC_OK) {
        job.terminal_id = (char *)o->to_terminal;
        job.sealed.data = sealed;
        job.sealed.len = slen;
        env.msg_case = SIMSYNC__ENVELOPE__MSG_RESTORE_JOB;
        env.restore_job = &job;
        rc = node_request(n, SIMSYNC__OP__OP_RESTORE_JOB, &env,
                          SIMSYNC__ENVELOPE__MSG_RESTORE_JOB_ACK,
                          (void **)&in);
    }
    if (rc == SIMSYNC_OK)
        *id = in->restore_job_ack->id;
    else if (rc == SIMSYNC_ENOTFOUND)
        node_fail(n, rc,
                  "no terminal '%s' is registered for this subscriber at the "
                  "hub",
                  o->to_terminal);
    if (in)
        simsync__envelope__free_unpacked(in, NULL);
    free(sealed);
    return rc;
}

int
node_job_store(struct simsync_node *n, const Simsync__RestoreJob *j)
{
    Simsync__RestoreJob *const jobs[1] = {(Simsync__RestoreJob *)j};
    struct hello_state hs;

    memset(&hs, 0, sizeof(hs));
    return node_hello_absorb(n, &hs, NULL, 0, jobs, 1);
}

struct job_done {
    uint64_t id;
};

static int
job_done_fn(struct store_txn *txn, void *arg)
{
    struct job_done *d = arg;
    const uint8_t *v;
    size_t vl;
    uint8_t buf[32 * 8];
    size_t n = 0;
    char key[32];
    int rc;

    if (store_get(txn, STORE_META, done_key, sizeof(done_key) - 1,
                  (const void **)&v, &vl) == SIMSYNC_OK) {
        /* Keep the newest 31 ids. */
        size_t skip = vl / 8 >= 32 ? vl / 8 - 31 : 0;
        for (size_t i = skip * 8; i + 8 <= vl; i += 8, n++)
            memcpy(buf + n * 8, v + i, 8);
    }
    store_be64(buf + n * 8, d->id);
    n++;
    rc = store_put(txn, STORE_META, done_key, sizeof(done_key) - 1, buf, n * 8);
    job_meta_key(key, d->id);
    if (rc == SIMSYNC_OK) {
        rc = store_del(txn, STORE_META, key, strlen(key));
        if (rc == SIMSYNC_ENOTFOUND)
            rc = SIMSYNC_OK;
    }
    return rc;
}

/* The jobs kept here, in id order. */
static int
jobs_load(struct simsync_node *n, Simsync__RestoreJob ***out, size_t *count)
{
    struct store_txn *txn;
    struct store_cursor *cur;
    Simsync__RestoreJob **v = NULL;
    size_t cnt = 0, cap = 0;
    const uint8_t *k, *val;
    size_t kl, vl;
    int rc = store_txn_begin(n->st, 1, &txn);

    *out = NULL;
    *count = 0;
    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_cursor_open(txn, STORE_META, &cur);
    if (rc == SIMSYNC_OK) {
        rc = store_cursor_seek(cur, job_prefix, sizeof(job_prefix) - 1,
                               (const void **)&k, &kl, (const void **)&val,
                               &vl);
        while (rc == SIMSYNC_OK && kl > sizeof(job_prefix) - 1 &&
               memcmp(k, job_prefix, sizeof(job_prefix) - 1) == 0) {
            Simsync__RestoreJob *j = simsync__restore_job__unpack(NULL, vl, val);
            if (j != NULL) {
                if (cnt == cap) {
                    size_t nc = cap ? cap * 2 : 4;
                    Simsync__RestoreJob **nv = realloc(v, nc * sizeof(*nv));
                    if (nv == NULL) {
                        simsync__restore_job__free_unpacked(j, NULL);
                        rc = SIMSYNC_ENOMEM;
                        break;
                    }
                    v = nv;
                    cap = nc;
                }
                v[cnt++] = j;
            }
            rc = store_cursor_next(cur, (const void **)&k, &kl,
                                   (const void **)&val, &vl);
        }
        store_cursor_close(cur);
    }
    store_txn_abort(txn);
    if (rc == SIMSYNC_ENOTFOUND)
        rc = SIMSYNC_OK;
    if (rc != SIMSYNC_OK) {
        for (size_t i = 0; i < cnt; i++)
            simsync__restore_job__free_unpacked(v[i], NULL);
        free(v);
        return rc;
    }
    *out = v;
    *count = cnt;
    return SIMSYNC_OK;
}

static void
no_lines(void *arg, const char *action, const char *cls, const char *name,
         uint64_t size)
{
    (void)arg;
    (void)action;
    (void)cls;
    (void)name;
    (void)size;
}

/* Run one job: unseal it (it must be meant for this terminal), restore,
 * leave a notice with the outcome. */
static int
job_run(struct simsync_node *n, const Simsync__RestoreJob *j,
        simsync_item_fn fn, void *arg)
{
    Simsync__RestoreJobBody *body = NULL;
    struct simsync_restore_opts o;
    struct simsync_restore_report rep;
    struct replica r;
    uint8_t ad[96], *plain = NULL;
    size_t adlen, plen;
    int rc = replica_setup(n, &r);

    if (rc != SIMSYNC_OK)
        return rc;
    job_ad(ad, &adlen, n->terminal_id);
    rc = blob_decode(r.keys.seal, ad, adlen, j->sealed.data, j->sealed.len,
                     JOB_BODY_MAX, &plain, &plen);
    keys_wipe(&r.keys);
    if (rc == SIMSYNC_OK) {
        body =
            pb_unpack(&simsync__restore_job_body__descriptor, plen, plain, &rc);
        if (body != NULL && (body->on_conflict > SIMSYNC_ON_CONFLICT_SKIP ||
                             body->on_conflict == SIMSYNC_ON_CONFLICT_ASK))
            rc = SIMSYNC_EPROTO;
    }
    free(plain);
    if (rc != SIMSYNC_OK) {
        if (body)
            simsync__restore_job_body__free_unpacked(body, NULL);
        return node_notice_local(n,
                                 "a restore job from terminal %s could not be "
                                 "opened (%s); it was dropped",
                                 j->from_terminal, simsync_strerror(rc));
    }
    memset(&o, 0, sizeof(o));
    o.gen = body->gen;
    for (size_t i = 0; i < body->n_classes; i++)
        if (body->classes[i] < CLS_COUNT)
            o.classes |= 1u << body->classes[i];
    o.items = (const char *const *)body->items;
    o.nitems = body->n_items;
    o.on_conflict = (enum simsync_on_conflict)body->on_conflict;
    o.delete_after = body->delete_after;
    rc = simsync_restore(n, &o, fn ? fn : no_lines, arg, &rep);
    if (rc == SIMSYNC_OK || rc == SIMSYNC_EREFUSED)
        node_notice_local(n,
                          "restored generation %llu as asked from terminal "
                          "%s: %llu restored, %llu overwritten, %llu kept "
                          "both, %llu skipped, %llu unchanged, %llu refused%s",
                          (unsigned long long)o.gen, j->from_terminal,
                          (unsigned long long)rep.restored,
                          (unsigned long long)rep.overwritten,
                          (unsigned long long)rep.kept_both,
                          (unsigned long long)rep.skipped,
                          (unsigned long long)rep.unchanged,
                          (unsigned long long)rep.refused,
                          rep.forgotten ? "; the generation was forgotten"
                                        : "");
    else
        node_notice_local(n,
                          "the restore of generation %llu asked from terminal "
                          "%s failed: %s",
                          (unsigned long long)o.gen, j->from_terminal,
                          n->err[0] ? n->err : simsync_strerror(rc));
    simsync__restore_job_body__free_unpacked(body, NULL);
    /* Link trouble: keep the job for the next contact. */
    if (rc == SIMSYNC_ECLOSED || rc == SIMSYNC_ECONNECT ||
        rc == SIMSYNC_ETIMEOUT)
        return rc;
    return SIMSYNC_OK;
}

int
simsync_jobs_run(struct simsync_node *n, simsync_item_fn fn, void *arg,
                 size_t *ran)
{
    Simsync__RestoreJob **jobs;
    size_t count;
    int rc = jobs_load(n, &jobs, &count);

    *ran = 0;
    if (rc != SIMSYNC_OK)
        return rc;
    for (size_t i = 0; rc == SIMSYNC_OK && i < count; i++) {
        struct job_done d = {jobs[i]->id};
        rc = job_run(n, jobs[i], fn, arg);
        if (rc == SIMSYNC_OK)
            rc = store_write(n->st, job_done_fn, &d);
        if (rc == SIMSYNC_OK)
            (*ran)++;
    }
    for (size_t i = 0; i < count; i++)
        simsync__restore_job__free_unpacked(jobs[i], NULL);
    free(jobs);
    return rc;
}

int
node_jobs_waiting(struct simsync_node *n, size_t *count)
{
    Simsync__RestoreJob **jobs;
    int rc = jobs_load(n, &jobs, count);

    if (rc != SIMSYNC_OK)
        return rc;
    for (size_t i = 0; i < *count; i++)
        simsync__restore_job__free_unpacked(jobs[i], NULL);
    free(jobs);
    return SIMSYNC_OK;
}
