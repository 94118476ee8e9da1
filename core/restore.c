/* restore.c -- batches of restored items: their chunks fetched and
 * unsealed on the calling thread, their files written on a writer thread
 * and recorded on a recorder thread. See restore.h. */
#define _GNU_SOURCE /* syncfs */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blob.h"
#include "chunker.h"
#include "crypt.h"
#include "dio.h"
#include "folder.h"
#include "restore.h"

/* One item of a batch. */
struct item {
    int cls;
    const uint8_t *id; /* the manifest item's id (inline body's AD) */
    char *name;        /* where it goes (owned) */
    const Simsync__Version *v;
    enum restore_kind kind;
    int written; /* writer: its file is in place, its stat in st */
    struct stat st;
    struct replica_out out; /* writer: its file while it is written */
};

/* One item as restore_add got it. */
struct planned {
    int cls;
    const uint8_t *id;
    char *name; /* owned until it moves into a batch */
    const Simsync__Version *v;
    enum restore_kind kind;
};

/* One distinct chunk of a batch. `plain` is set once, under the lock, by
 * the fetching thread; from then on the writer owns it and frees it after
 * its last use (a chunk never used because the restore stopped is freed
 * with the batch). */
struct chunk {
    const uint8_t *id; /* 32 bytes, into the manifest */
    size_t first;      /* the item that uses it first */
    uint32_t uses;     /* places that still need it (writer, once planned) */
    int verified;      /* its plaintext was checked against id */
    uint8_t *plain;    /* NULL until it arrives, and after its last use */
    size_t len;
};

struct batch {
    struct item *v;
    size_t n;
    uint64_t bytes;
    /* The distinct chunks in order of first use, which is the order they
     * are asked for and arrive in; `place` is the chunk of each chunk place
     * of the batch's files, in writing order; `tab` finds a chunk by id
     * (open addressing, index + 1, 0 empty; a power of two long). */
    struct chunk *c;
    size_t nc, capc;
    uint32_t *place;
    size_t nplace, capplace;
    uint32_t *tab;
    size_t captab;
    size_t arrived; /* fetching thread: chunks received */
};

struct restore {
    struct planned *plan; /* fetching thread: every item added */
    size_t nplan, capplan;
    struct replica *r;             /* borrowed */
    struct link *l;                /* borrowed */
    struct dio *dio;               /* writer: large files past the cache */
    ProtobufCBinaryData *ids;      /* fetching thread: one request's ids */
    struct batch b[RESTORE_SLOTS]; /* batch k is b[k % RESTORE_SLOTS] */
    struct batch *fill;            /* fetching thread: the batch being filled */
    uint64_t fetched;              /* fetching thread: chunks received */
    struct restore_counts counts;  /* recorder, read after the join */
    pthread_t writer, recorder;
    int started; /* the two threads run */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* broadcast on every change of the fields below */
    uint64_t published, done;  /* batches handed to / written by the writer */
    uint64_t recorded;         /* batches recorded (their slots are free) */
    uint64_t arrived, reached; /* chunks unsealed / first uses written */
    int quit;                  /* no more batches will come */
    int written_all;           /* the writer has stopped */
    int err;                   /* the first failure, of either thread */
    char *failed;              /* its item, "class/name", or NULL */
};

/* ------------------------------------------------------------ fetching */

int
restore_fetch_run(struct link *l, Simsync__FetchRequest *f, int kind,
                  int (*fn)(const Simsync__Envelope *in, void *arg), void *arg)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT, *in = NULL;
    int rc;

    env.msg_case = SIMSYNC__ENVELOPE__MSG_FETCH;
    env.fetch = f;
    rc = node_send_env(l->ch, &env);
    while (rc == SIMSYNC_OK) {
        rc = node_recv_env(l->ch, (void **)&in);
        if (rc != SIMSYNC_OK)
            break;
        if (in->msg_case == SIMSYNC__ENVELOPE__MSG_FETCH_DONE) {
            simsync__envelope__free_unpacked(in, NULL);
            break;
        }
        rc = (int)in->msg_case == kind ? fn(in, arg) : SIMSYNC_EPROTO;
        simsync__envelope__free_unpacked(in, NULL);
    }
    return rc;
}

/* Record the first failure (item: the one it belongs to, or NULL) and
 * wake the other thread. */
static void
fail(struct restore *rs, int rc, const struct item *it)
{
    pthread_mutex_lock(&rs->mu);
    if (rs->err == SIMSYNC_OK) {
        rs->err = rc;
        if (it != NULL) {
            const char *cn = class_name(it->cls);
            size_t len = strlen(cn) + strlen(it->name) + 2;
            rs->failed = malloc(len);
            if (rs->failed != NULL)
                snprintf(rs->failed, len, "%s/%s", cn, it->name);
        }
        pthread_cond_broadcast(&rs->cv);
    }
    pthread_mutex_unlock(&rs->mu);
}

static int
current_err(struct restore *rs)
{
    int rc;

    pthread_mutex_lock(&rs->mu);
    rc = rs->err;
    pthread_mutex_unlock(&rs->mu);
    return rc;
}

static int
grow_array(void **p, size_t *cap, size_t need, size_t size)
{
    size_t nc = *cap ? *cap : 64;
    void *np;

    if (need <= *cap)
        return SIMSYNC_OK;
    while (nc < need)
        nc *= 2;
    np = realloc(*p, nc * size);
    if (np == NULL)
        return SIMSYNC_ENOMEM;
    *p = np;
    *cap = nc;
    return SIMSYNC_OK;
}

/* Add one chunk place of item `item` (id: 32 bytes, into the manifest). */
static int
plan_place(struct batch *b, const uint8_t *id, size_t item)
{
    uint64_t h;
    size_t i;
    int rc;

    memcpy(&h, id, sizeof(h)); /* ids are keyed hashes: uniform */
    for (i = h & (b->captab - 1); b->tab[i] != 0; i = (i + 1) & (b->captab - 1))
        if (memcmp(b->c[b->tab[i] - 1].id, id, CHUNK_ID_BYTES) == 0)
            break;
    if (b->tab[i] == 0) {
        rc = grow_array((void **)&b->c, &b->capc, b->nc + 1, sizeof(*b->c));
        if (rc != SIMSYNC_OK)
            return rc;
        memset(&b->c[b->nc], 0, sizeof(*b->c));
        b->c[b->nc].id = id;
        b->c[b->nc].first = item;
        b->tab[i] = (uint32_t)++b->nc;
    }
    b->c[b->tab[i] - 1].uses++;
    b->place[b->nplace++] = b->tab[i] - 1;
    return SIMSYNC_OK;
}

/* The distinct chunks of the batch and where each one goes. A malformed
 * chunk reference: SIMSYNC_EPROTO, *bad its item. */
static int
plan_batch(struct batch *b, size_t *bad)
{
    size_t places = 0, tab = 64;
    int rc;

    for (size_t i = 0; i < b->n; i++)
        places += b->v[i].v->n_chunks;
    while (tab < 2 * places)
        tab *= 2;
    rc =
        grow_array((void **)&b->place, &b->capplace, places, sizeof(*b->place));
    if (rc == SIMSYNC_OK)
        rc = grow_array((void **)&b->tab, &b->captab, tab, sizeof(*b->tab));
    if (rc != SIMSYNC_OK)
        return rc;
    memset(b->tab, 0, b->captab * sizeof(*b->tab));
    b->nc = b->nplace = b->arrived = 0;
    for (size_t i = 0; i < b->n; i++) {
        const Simsync__Version *v = b->v[i].v;
        for (size_t j = 0; j < v->n_chunks; j++) {
            if (v->chunks[j]->id.len != CHUNK_ID_BYTES ||
                v->chunks[j]->size == 0 ||
                v->chunks[j]->size > CHUNKER_MAX_DEFAULT) {
                *bad = i;
                return SIMSYNC_EPROTO;
            }
            rc = plan_place(b, v->chunks[j]->id.data, i);
            if (rc != SIMSYNC_OK)
                return rc;
        }
    }
    return SIMSYNC_OK;
}

/* Is this plaintext the chunk `id` names? */
static int
chunk_ok(const struct replica *r, const uint8_t *id, const uint8_t *plain,
         size_t len)
{
    uint8_t check[CHUNK_ID_BYTES];

    keys_chunk_id(&r->keys, plain, len, check);
    return crypt_equal(check, id, CHUNK_ID_BYTES);
}

/* One chunk from the hub: it must be the next one asked for and open to
 * its id. It is checked against its id here when the writer is behind,
 * else by the writer, before its first byte is written. */
static int
on_chunk(const Simsync__Envelope *in, void *arg)
{
    struct restore *rs = arg;
    struct batch *b = rs->fill;
    struct chunk *c = b->arrived < b->nc ? &b->c[b->arrived] : NULL;
    const ProtobufCBinaryData *blob = &in->chunk->blob;
    uint8_t *plain = NULL;
    size_t plen = 0;
    int rc, check;

    /* Wait while the writer has enough to do. */
    pthread_mutex_lock(&rs->mu);
    while (rs->arrived - rs->reached >= RESTORE_AHEAD && rs->err == SIMSYNC_OK)
        pthread_cond_wait(&rs->cv, &rs->mu);
    rc = rs->err;
    check = rs->arrived - rs->reached >= RESTORE_AHEAD / 2;
    pthread_mutex_unlock(&rs->mu);
    if (rc != SIMSYNC_OK)
        return rc;

    if (c == NULL || in->chunk->id.len != CHUNK_ID_BYTES ||
        memcmp(in->chunk->id.data, c->id, CHUNK_ID_BYTES) != 0)
        rc = SIMSYNC_EPROTO; /* not what was asked for, in that order */
    else if (blob->len == 0)
        rc = SIMSYNC_ECRYPTO; /* the hub lost a chunk it listed */
    else
        rc = blob_decode(rs->r->keys.seal, c->id, CHUNK_ID_BYTES, blob->data,
                         blob->len, CHUNKER_MAX_DEFAULT, &plain, &plen);
    /* An item named by its chunk list has each chunk checked as it is
     * written (replica_out); others are checked here or by the writer. */
    if (c != NULL && b->v[c->first].v->hash_kind == HASH_KIND_CHUNKS)
        check = 0;
    if (rc == SIMSYNC_OK && check && !chunk_ok(rs->r, c->id, plain, plen))
        rc = SIMSYNC_ECRYPTO;
    if (rc != SIMSYNC_OK) {
        free(plain);
        fail(rs, rc, c != NULL ? &b->v[c->first] : NULL);
        return rc;
    }
    pthread_mutex_lock(&rs->mu);
    c->plain = plain;
    c->len = plen;
    c->verified = check;
    rs->arrived++;
    pthread_cond_broadcast(&rs->cv);
    pthread_mutex_unlock(&rs->mu);
    b->arrived++;
    rs->fetched++;
    return SIMSYNC_OK;
}

/* Fetch the chunks of the batch being filled, in order. */
static int
fetch_batch(struct restore *rs)
{
    Simsync__FetchRequest f = SIMSYNC__FETCH_REQUEST__INIT;
    struct batch *b = rs->fill;
    int rc = SIMSYNC_OK;

    for (size_t off = 0; rc == SIMSYNC_OK && off < b->nc;
         off += NODE_QUERY_IDS) {
        size_t k = b->nc - off < NODE_QUERY_IDS ? b->nc - off : NODE_QUERY_IDS;
        for (size_t i = 0; i < k; i++) {
            rs->ids[i].data = (uint8_t *)b->c[off + i].id;
            rs->ids[i].len = CHUNK_ID_BYTES;
        }
        f.chunk_ids = rs->ids;
        f.n_chunk_ids = k;
        rc = restore_fetch_run(rs->l, &f, SIMSYNC__ENVELOPE__MSG_CHUNK,
                               on_chunk, rs);
        if (rc == SIMSYNC_OK && b->arrived != off + k) {
            rc = SIMSYNC_EPROTO; /* the hub left some out */
            fail(rs, rc, &b->v[b->c[b->arrived].first]);
        }
    }
    if (rc != SIMSYNC_OK)
        fail(rs, rc, NULL); /* no-op when already recorded */
    return rc;
}

static void
batch_reset(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->v[i].name);
    for (size_t i = 0; i < b->nc; i++)
        free(b->c[i].plain);
    b->n = b->nc = b->nplace = b->arrived = 0;
    b->bytes = 0;
}

static void *writer_main(void *arg);
static void *recorder_main(void *arg);

/* Hand the batch being filled to the writer and fetch its chunks, then
 * take the next free slot to fill (its batch written and recorded). */
static int
flush(struct restore *rs)
{
    struct batch *b = rs->fill;
    size_t bad = 0;
    int rc;

    if (b->n == 0)
        return current_err(rs);
    rc = plan_batch(b, &bad);
    if (rc != SIMSYNC_OK) {
        fail(rs, rc, rc == SIMSYNC_EPROTO ? &b->v[bad] : NULL);
        return rc;
    }
    if (!rs->started) {
        if (pthread_create(&rs->writer, NULL, writer_main, rs) != 0) {
            fail(rs, SIMSYNC_ENOMEM, NULL);
            return SIMSYNC_ENOMEM;
        }
        if (pthread_create(&rs->recorder, NULL, recorder_main, rs) != 0) {
            fail(rs, SIMSYNC_ENOMEM, NULL);
            pthread_join(rs->writer, NULL);
            return SIMSYNC_ENOMEM;
        }
        rs->started = 1;
    }
    pthread_mutex_lock(&rs->mu);
    rs->published++;
    pthread_cond_broadcast(&rs->cv);
    pthread_mutex_unlock(&rs->mu);
    rc = fetch_batch(rs);
    if (rc != SIMSYNC_OK)
        return rc;
    pthread_mutex_lock(&rs->mu);
    while (rs->published - rs->recorded >= RESTORE_SLOTS &&
           rs->err == SIMSYNC_OK)
        pthread_cond_wait(&rs->cv, &rs->mu);
    rc = rs->err;
    pthread_mutex_unlock(&rs->mu);
    if (rc == SIMSYNC_OK) {
        rs->fill = &rs->b[rs->published % RESTORE_SLOTS];
        batch_reset(rs->fill);
    }
    return rc;
}

/* ------------------------------------------------------------ writing */

/* Wait for chunk k of batch b (the writer's next place). `first` is the
 * next chunk whose first use the writer has not reached. */
static int
wait_chunk(struct restore *rs, struct batch *b, uint32_t k, size_t *first)
{
    int rc = SIMSYNC_OK;

    pthread_mutex_lock(&rs->mu);
    while (b->c[k].plain == NULL && rs->err == SIMSYNC_OK)
        pthread_cond_wait(&rs->cv, &rs->mu);
    if (b->c[k].plain == NULL) {
        rc = rs->err; /* the fetching side stopped */
    } else if (k == *first) {
        (*first)++;
        rs->reached++;
        pthread_cond_broadcast(&rs->cv);
    }
    pthread_mutex_unlock(&rs->mu);
    return rc;
}

/* Items whose content is all put and checked or queued, waiting for
 * their rename in item order (a name may come twice in a batch, and the
 * later one must win), the first ones possibly for their direct writes. */
struct pending {
    struct item *v[RESTORE_PENDING];
    size_t head, n;
};

/* Commit pending items in order: every one (`all`), else at least `min`
 * of them (waiting for their writes) and then those whose writes are
 * done. After a failure the ones behind it are dropped (not renamed). */
static int
settle(struct restore *rs, struct pending *p, int all, size_t min)
{
    int rc = SIMSYNC_OK;

    for (size_t k = 0; p->n > 0; k++) {
        struct item *it = p->v[p->head];
        if (rc != SIMSYNC_OK) {
            replica_out_abort(&it->out);
        } else {
            rc = replica_out_commit(&it->out, &it->st);
            if (rc == SIMSYNC_EAGAIN) {
                if (!all && k >= min) {
                    rc = SIMSYNC_OK; /* its writes are in flight */
                    break;
                }
                replica_out_wait(&it->out);
                rc = replica_out_commit(&it->out, &it->st);
            }
            if (rc == SIMSYNC_OK)
                it->written = 1;
            else
                fail(rs, rc, it);
        }
        p->head = (p->head + 1) % RESTORE_PENDING;
        p->n--;
    }
    return rc;
}

/* Write one item's content as its chunks come, up to its checks. */
static int
write_item(struct restore *rs, struct batch *b, struct item *it, size_t *wp,
           size_t *first)
{
    const Simsync__Version *v = it->v;
    int rc = replica_out_begin(rs->r, it->cls, it->name, v, rs->dio, &it->out);

    if (rc == SIMSYNC_OK && v->n_chunks == 0)
        rc = replica_out_inline(&it->out, rs->r, it->id);
    for (size_t j = 0; rc == SIMSYNC_OK && j < v->n_chunks; j++, (*wp)++) {
        struct chunk *c = &b->c[b->place[*wp]];
        rc = wait_chunk(rs, b, b->place[*wp], first);
        if (rc != SIMSYNC_OK)
            break;
        if (v->hash_kind != HASH_KIND_CHUNKS) {
            if (!c->verified && !chunk_ok(rs->r, c->id, c->plain, c->len))
                rc = SIMSYNC_ECRYPTO;
            c->verified = 1;
        }
        /* Each chunk was opened under its id (on_chunk): not hashed
         * again by the writer. */
        if (rc == SIMSYNC_OK)
            rc = c->len == v->chunks[j]->size
                     ? replica_out_put_chunk(&it->out, c->id, c->plain, c->len)
                     : SIMSYNC_EPROTO;
        if (--c->uses == 0) {
            free(c->plain);
            c->plain = NULL;
        }
    }
    return rc;
}

/* Write the batch's items in order. Stops at the first failure (recorded
 * with its item); the items before it are still renamed. */
static int
write_batch(struct restore *rs, struct batch *b)
{
    struct pending p = {{0}, 0, 0};
    size_t wp = 0, first = 0;
    int rc = SIMSYNC_OK, src;

    for (size_t i = 0; rc == SIMSYNC_OK && i < b->n; i++) {
        struct item *it = &b->v[i];
        if (p.n == RESTORE_PENDING)
            rc = settle(rs, &p, 0, 1);
        if (rc != SIMSYNC_OK)
            break;
        rc = write_item(rs, b, it, &wp, &first);
        if (rc != SIMSYNC_OK) {
            replica_out_abort(&it->out);
            fail(rs, rc, it);
            break;
        }
        p.v[(p.head + p.n) % RESTORE_PENDING] = it;
        p.n++;
        rc = settle(rs, &p, 0, 0);
    }
    src = settle(rs, &p, 1, 0);
    return rc != SIMSYNC_OK ? rc : src;
}

static int
record_one(struct replica *r, struct store_txn *txn, const struct item *it)
{
    Simsync__ItemRecord *old = NULL;
    uint8_t id[ITEM_ID_BYTES];
    struct vv base = VV_INIT;
    int rc;

    keys_item_id(&r->keys, it->cls, it->name, id);
    rc = item_get(txn, r->sub, it->cls, id, &old);
    if (rc == SIMSYNC_ENOTFOUND)
        rc = SIMSYNC_OK;
    /* A new local change on top of what this node had: it syncs. */
    if (rc == SIMSYNC_OK && old != NULL)
        rc = vv_from_pb(&base, old->versions[0]->vv);
    if (rc == SIMSYNC_OK)
        rc = folder_record_written(r, txn, it->cls, it->name, &base, old, it->v,
                                   memcmp(id, it->id, ITEM_ID_BYTES) == 0,
                                   &it->st);
    /* Chunks staged for this version (by a sync, or by an interrupted
     * restore of an older version of this program) are not needed. */
    if (rc == SIMSYNC_OK)
        rc = replica_unstage(r, txn, it->v);
    item_record_free(old);
    vv_free(&base);
    return rc;
}

/* The batches [from, to) of a restore. */
struct record_arg {
    struct restore *rs;
    uint64_t from, to;
};

static int
record_fn(struct store_txn *txn, void *arg)
{
    struct record_arg *a = arg;
    int rc = SIMSYNC_OK;

    for (uint64_t k = a->from; rc == SIMSYNC_OK && k < a->to; k++) {
        struct batch *b = &a->rs->b[k % RESTORE_SLOTS];
        for (size_t i = 0; rc == SIMSYNC_OK && i < b->n; i++)
            if (b->v[i].written)
                rc = record_one(a->rs->r, txn, &b->v[i]);
    }
    return rc;
}

/* Record the written items of batches [from, to): the filesystem is
 * synced first, so the records describe durable files. One syncfs and one
 * transaction for all of them: a recorder that fell behind (syncfs also
 * waits for other programs' unwritten data) catches up at once. */
static int
record_batches(struct restore *rs, uint64_t from, uint64_t to)
{
    struct record_arg a = {rs, from, to};
    size_t written = 0;
    int fd, rc = SIMSYNC_OK;

    for (uint64_t k = from; k < to; k++)
        for (size_t i = 0; i < rs->b[k % RESTORE_SLOTS].n; i++)
            written += rs->b[k % RESTORE_SLOTS].v[i].written != 0;
    if (written == 0)
        return SIMSYNC_OK;
    fd = open(rs->r->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || syncfs(fd) != 0)
        rc = SIMSYNC_EIO;
    if (fd >= 0)
        close(fd);
    if (rc == SIMSYNC_OK)
        rc = store_write(rs->r->st, record_fn, &a);
    for (uint64_t k = from; rc == SIMSYNC_OK && k < to; k++) {
        struct batch *b = &rs->b[k % RESTORE_SLOTS];
        for (size_t i = 0; i < b->n; i++) {
            if (!b->v[i].written)
                continue;
            if (b->v[i].kind == RESTORE_NEW)
                rs->counts.restored++;
            else if (b->v[i].kind == RESTORE_KEEP_BOTH)
                rs->counts.kept_both++;
            else
                rs->counts.overwritten++;
        }
    }
    return rc;
}

/* The writer: each published batch in turn, until there are no more or
 * a failure stops it. */
static void *
writer_main(void *arg)
{
    struct restore *rs = arg;
    int rc = SIMSYNC_OK;

    while (rc == SIMSYNC_OK) {
        struct batch *b;

        pthread_mutex_lock(&rs->mu);
        while (rs->done == rs->published && !rs->quit && rs->err == SIMSYNC_OK)
            pthread_cond_wait(&rs->cv, &rs->mu);
        b = rs->done < rs->published ? &rs->b[rs->done % RESTORE_SLOTS] : NULL;
        pthread_mutex_unlock(&rs->mu);
        if (b == NULL)
            break;
        rc = write_batch(rs, b);
        pthread_mutex_lock(&rs->mu);
        rs->done++;
        pthread_cond_broadcast(&rs->cv);
        pthread_mutex_unlock(&rs->mu);
    }
    pthread_mutex_lock(&rs->mu);
    rs->written_all = 1;
    pthread_cond_broadcast(&rs->cv);
    pthread_mutex_unlock(&rs->mu);
    return NULL;
}

/* The recorder: the batches the writer is done with, all that are there
 * at a time, also the part written before a failure; until the writer has
 * stopped and every batch it did is recorded. */
static void *
recorder_main(void *arg)
{
    struct restore *rs = arg;

    for (;;) {
        uint64_t from, to;
        int rc;

        pthread_mutex_lock(&rs->mu);
        while (rs->recorded == rs->done && !rs->written_all)
            pthread_cond_wait(&rs->cv, &rs->mu);
        from = rs->recorded;
        to = rs->done;
        pthread_mutex_unlock(&rs->mu);
        if (from == to)
            break;
        rc = record_batches(rs, from, to);
        if (rc != SIMSYNC_OK)
            fail(rs, rc, NULL);
        pthread_mutex_lock(&rs->mu);
        rs->recorded = to;
        pthread_cond_broadcast(&rs->cv);
        pthread_mutex_unlock(&rs->mu);
    }
    return NULL;
}

/* ------------------------------------------------------------ interface */

static void
free_parts(struct restore *rs)
{
    for (int i = 0; i < RESTORE_SLOTS; i++)
        free(rs->b[i].v);
    free(rs->ids);
    dio_free(rs->dio);
    free(rs);
}

int
restore_new(struct replica *r, struct link *l, struct restore **out)
{
    struct restore *rs = calloc(1, sizeof(*rs));
    int ok;

    *out = NULL;
    if (rs == NULL)
        return SIMSYNC_ENOMEM;
    rs->r = r;
    rs->l = l;
    rs->fill = &rs->b[0];
    ok = 1;
    for (int i = 0; i < RESTORE_SLOTS; i++) {
        rs->b[i].v = calloc(RESTORE_BATCH_ITEMS, sizeof(*rs->b[i].v));
        ok = ok && rs->b[i].v != NULL;
    }
    rs->ids = calloc(NODE_QUERY_IDS, sizeof(*rs->ids));
    if (!ok || rs->ids == NULL ||
        dio_new(RESTORE_DIRECT_BYTES, RESTORE_DIRECT_BUFS, &rs->dio) !=
            SIMSYNC_OK) {
        free_parts(rs);
        return SIMSYNC_ENOMEM;
    }
    if (pthread_mutex_init(&rs->mu, NULL) != 0) {
        free_parts(rs);
        return SIMSYNC_ENOMEM;
    }
    if (pthread_cond_init(&rs->cv, NULL) != 0) {
        pthread_mutex_destroy(&rs->mu);
        free_parts(rs);
        return SIMSYNC_ENOMEM;
    }
    *out = rs;
    return SIMSYNC_OK;
}

int
restore_add(struct restore *rs, int cls, const uint8_t *item_id,
            const char *name, const Simsync__Version *v, enum restore_kind kind)
{
    struct planned *p;
    int rc = grow_array((void **)&rs->plan, &rs->capplan, rs->nplan + 1,
                        sizeof(*rs->plan));

    if (rc != SIMSYNC_OK)
        return rc;
    p = &rs->plan[rs->nplan];
    p->name = strdup(name);
    if (p->name == NULL)
        return SIMSYNC_ENOMEM;
    p->cls = cls;
    p->id = item_id;
    p->v = v;
    p->kind = kind;
    rs->nplan++;
    return SIMSYNC_OK;
}

static int
cmp_target(const void *a, const void *b)
{
    const struct planned *x = *(struct planned *const *)a;
    const struct planned *y = *(struct planned *const *)b;

    if (x->cls != y->cls)
        return x->cls < y->cls ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The order to write the plan in. The calling thread's work is in the
 * chunks (receiving, unsealing), the writer's mostly per file: so the
 * small (inline) items are spread evenly among the chunked ones, and both
 * threads have work all along, instead of the writer alone on a stretch
 * of small files and the calling thread alone on a stretch of large ones.
 * When one name is planned twice the plan's order is kept (the later
 * item must be the one left in place). *out returned, nplan long. */
static int
plan_order(const struct restore *rs, struct planned ***out)
{
    struct planned **o = malloc((rs->nplan ? rs->nplan : 1) * sizeof(*o));
    size_t nsmall = 0, bi = 0, si = 0, taken = 0;
    uint64_t big = 0, big_taken = 0;
    int dup = 0;

    *out = o;
    if (o == NULL)
        return SIMSYNC_ENOMEM;
    for (size_t n = 0; n < rs->nplan; n++)
        o[n] = &rs->plan[n];
    qsort(o, rs->nplan, sizeof(*o), cmp_target);
    for (size_t n = 1; n < rs->nplan && !dup; n++)
        dup = cmp_target(&o[n - 1], &o[n]) == 0;
    for (size_t n = 0; n < rs->nplan; n++) {
        o[n] = &rs->plan[n];
        if (rs->plan[n].v->n_chunks == 0)
            nsmall++;
        else
            big += rs->plan[n].v->size;
    }
    if (dup || nsmall == 0 || big == 0)
        return SIMSYNC_OK;
    /* Two cursors over the plan, one for each kind: a small item whenever
     * the share of small items taken is not ahead of the share of chunk
     * bytes taken. */
    for (size_t n = 0; n < rs->nplan; n++) {
        while (bi < rs->nplan && rs->plan[bi].v->n_chunks == 0)
            bi++;
        while (si < rs->nplan && rs->plan[si].v->n_chunks != 0)
            si++;
        if (si < rs->nplan &&
            (bi == rs->nplan ||
             (double)taken * (double)big <= (double)big_taken * nsmall)) {
            o[n] = &rs->plan[si++];
            taken++;
        } else {
            big_taken += rs->plan[bi].v->size;
            o[n] = &rs->plan[bi++];
        }
    }
    return SIMSYNC_OK;
}

/* Move one planned item into the batch being filled; flush it when full. */
static int
fill_one(struct restore *rs, struct planned *p)
{
    struct batch *b = rs->fill;
    struct item *it = &b->v[b->n];

    memset(it, 0, sizeof(*it));
    it->name = p->name;
    p->name = NULL;
    it->cls = p->cls;
    it->id = p->id;
    it->v = p->v;
    it->kind = p->kind;
    b->n++;
    b->bytes += it->v->size;
    if (b->n == RESTORE_BATCH_ITEMS || b->bytes >= RESTORE_BATCH_BYTES)
        return flush(rs);
    return SIMSYNC_OK;
}

/* Stop and join the threads (quit: the writer finishes the published
 * batches first, unless a failure stops it, and the recorder records what
 * the writer did). */
static void
join_threads(struct restore *rs)
{
    if (!rs->started)
        return;
    pthread_mutex_lock(&rs->mu);
    rs->quit = 1;
    pthread_cond_broadcast(&rs->cv);
    pthread_mutex_unlock(&rs->mu);
    pthread_join(rs->writer, NULL);
    pthread_join(rs->recorder, NULL);
    rs->started = 0;
}

int
restore_finish(struct restore *rs, int last, struct restore_counts *counts)
{
    struct planned **order = NULL;
    int rc = current_err(rs);

    if (rc == SIMSYNC_OK && last)
        rc = plan_order(rs, &order);
    for (size_t n = 0; rc == SIMSYNC_OK && last && n < rs->nplan; n++)
        rc = fill_one(rs, order[n]);
    if (rc == SIMSYNC_OK && last)
        rc = flush(rs);
    free(order);
    join_threads(rs);
    *counts = rs->counts;
    counts->chunks_fetched = rs->fetched;
    return rs->err != SIMSYNC_OK ? rs->err : rc;
}

const char *
restore_failed_item(const struct restore *rs)
{
    return rs->failed;
}

void
restore_free(struct restore *rs)
{
    if (rs == NULL)
        return;
    if (rs->started) {
        fail(rs, SIMSYNC_ECLOSED, NULL); /* stop at the next wait */
        join_threads(rs);
    }
    for (int i = 0; i < RESTORE_SLOTS; i++) {
        batch_reset(&rs->b[i]);
        free(rs->b[i].v);
        free(rs->b[i].c);
        free(rs->b[i].place);
        free(rs->b[i].tab);
    }
    pthread_cond_destroy(&rs->cv);
    pthread_mutex_destroy(&rs->mu);
    for (size_t n = 0; n < rs->nplan; n++)
        free(rs->plan[n].name);
    free(rs->plan);
    free(rs->ids);
    dio_free(rs->dio);
    free(rs->failed);
    free(rs);
}
