/* node_backup.c -- the terminal's side of backup generations: building a
 * manifest from a read snapshot, uploading what the hub lacks, listing
 * generations with the rollback check, and forgetting them (restoring is
 * in node_restore.c).
 *
 * The manifest is the list of the live items' versions (sealed names,
 * inline bodies, chunk lists) at one instant, sealed as one blob under the
 * data key with the generation number as associated data, then cut into
 * pieces. Its digest (BLAKE2b-256 of the sealed bytes) is what the hub
 * checks and what the next manifest links to. */
#define _GNU_SOURCE /* syncfs */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blob.h"
#include "crypt.h"
#include "folder.h"
#include "node.h"
#include "pbcheck.h"
#include "transport.h"
#include "upstream.h"

#define PIECE_BYTES (512u * 1024)

static const char manifest_ad_prefix[] = "simsync-manifest";
_Static_assert(sizeof(manifest_ad_prefix) - 1 + 8 == NODE_MANIFEST_AD_BYTES,
               "manifest associated data size");

void
node_manifest_ad(uint8_t ad[NODE_MANIFEST_AD_BYTES], uint64_t gen)
{
    memcpy(ad, manifest_ad_prefix, sizeof(manifest_ad_prefix) - 1);
    store_be64(ad + sizeof(manifest_ad_prefix) - 1, gen);
}

/* ------------------------------------------------------------ seen gen */

/* meta "gen_seen": highest generation seen (8) | its digest (32). */
static int
seen_get(struct simsync_node *n, uint64_t *gen, uint8_t digest[32])
{
    struct store_txn *txn;
    const uint8_t *v;
    size_t vl;
    int rc = store_txn_begin(n->st, 1, &txn);

    *gen = 0;
    memset(digest, 0, 32);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_get(txn, STORE_META, "gen_seen", 8, (const void **)&v, &vl);
    if (rc == SIMSYNC_OK && vl == 40) {
        *gen = store_get_be64(v);
        memcpy(digest, v + 8, 32);
    }
    store_txn_abort(txn);
    return rc == SIMSYNC_ENOTFOUND || rc == SIMSYNC_OK ? SIMSYNC_OK : rc;
}

struct seen_arg {
    uint64_t gen;
    const uint8_t *digest;
};

static int
seen_fn(struct store_txn *txn, void *arg)
{
    struct seen_arg *a = arg;
    const uint8_t *v;
    size_t vl;
    uint8_t b[40];

    if (store_get(txn, STORE_META, "gen_seen", 8, (const void **)&v, &vl) ==
            SIMSYNC_OK &&
        vl == 40 && store_get_be64(v) >= a->gen)
        return SIMSYNC_OK;
    store_be64(b, a->gen);
    memcpy(b + 8, a->digest, 32);
    return store_put(txn, STORE_META, "gen_seen", 8, b, sizeof(b));
}

static int
seen_raise(struct simsync_node *n, uint64_t gen, const uint8_t digest[32])
{
    struct seen_arg a = {gen, digest};

    return store_write(n->st, seen_fn, &a);
}

/* meta "gen_good": the newest generation known to exist (8) | its time
 * (8), for status. A listing sets it (newest=1: it is the whole truth,
 * forgotten ones excluded); a finished backup raises it. */
struct good_arg {
    uint64_t gen, ms;
    int listing;
};

static int
good_fn(struct store_txn *txn, void *arg)
{
    struct good_arg *a = arg;
    const uint8_t *v;
    size_t vl;
    uint8_t b[16];

    if (!a->listing &&
        store_get(txn, STORE_META, "gen_good", 8, (const void **)&v, &vl) ==
            SIMSYNC_OK &&
        vl == 16 && store_get_be64(v) >= a->gen)
        return SIMSYNC_OK;
    if (a->gen == 0) {
        int rc = store_del(txn, STORE_META, "gen_good", 8);
        return rc == SIMSYNC_ENOTFOUND ? SIMSYNC_OK : rc;
    }
    store_be64(b, a->gen);
    store_be64(b + 8, a->ms);
    return store_put(txn, STORE_META, "gen_good", 8, b, sizeof(b));
}

static int
good_note(struct simsync_node *n, uint64_t gen, uint64_t ms, int listing)
{
    struct good_arg a = {gen, ms, listing};

    return store_write(n->st, good_fn, &a);
}

int
node_backup_newest(struct simsync_node *n, uint64_t *gen, uint64_t *ms)
{
    struct store_txn *txn;
    const uint8_t *v;
    size_t vl;
    int rc = store_txn_begin(n->st, 1, &txn);

    *gen = *ms = 0;
    if (rc != SIMSYNC_OK)
        return rc;
    if (store_get(txn, STORE_META, "gen_good", 8, (const void **)&v, &vl) ==
            SIMSYNC_OK &&
        vl == 16) {
        *gen = store_get_be64(v);
        *ms = store_get_be64(v + 8);
    }
    store_txn_abort(txn);
    return SIMSYNC_OK;
}

/* ------------------------------------------------------------ snapshot */

/* The live items of the classes, from one read snapshot. */
struct snap_item {
    Simsync__ItemRecord *rec;
    uint8_t id[ITEM_ID_BYTES];
    Simsync__Change change; /* class (from the key), id, rec's version */
    int left_out;           /* changed since: not in this generation */
};

struct snapshot {
    struct snap_item *v;
    size_t n, cap;
    struct vv mark[CLS_COUNT]; /* own knowledge at the snapshot */
};

static void
snapshot_free(struct snapshot *s)
{
    for (size_t i = 0; i < s->n; i++)
        item_record_free(s->v[i].rec);
    free(s->v);
    for (int c = 0; c < CLS_COUNT; c++)
        vv_free(&s->mark[c]);
    memset(s, 0, sizeof(*s));
}

static int
snapshot_take(struct replica *r, uint32_t classes, struct snapshot *s)
{
    struct store_txn *txn;
    int rc = store_txn_begin(r->st, 1, &txn);

    memset(s, 0, sizeof(*s));
    if (rc != SIMSYNC_OK)
        return rc;
    for (int c = 0; rc == SIMSYNC_OK && c < CLS_COUNT; c++) {
        struct store_cursor *cur;
        uint8_t prefix[SUB_BYTES + 1];
        const uint8_t *k, *v;
        size_t kl, vl;
        if (!(classes & (1u << c)))
            continue;
        rc = journal_knowledge_get(txn, r->sub, c, 0, &s->mark[c]);
        if (rc != SIMSYNC_OK)
            break;
        memcpy(prefix, r->sub, SUB_BYTES);
        prefix[SUB_BYTES] = (uint8_t)c;
        rc = store_cursor_open(txn, STORE_ITEMS, &cur);
        if (rc != SIMSYNC_OK)
            break;
        rc = store_cursor_seek(cur, prefix, sizeof(prefix), (const void **)&k,
                               &kl, (const void **)&v, &vl);
        while (rc == SIMSYNC_OK && kl == ITEM_KEY_BYTES &&
               memcmp(k, prefix, sizeof(prefix)) == 0) {
            Simsync__ItemRecord *rec =
                pb_unpack(&simsync__item_record__descriptor, vl, v, &rc);
            if (rec == NULL) {
                break;
            }
            if (rec->n_versions != 1 || rec->versions[0]->deleted) {
                item_record_free(rec);
            } else {
                if (s->n == s->cap) {
                    size_t cap = s->cap ? s->cap * 2 : 256;
                    struct snap_item *nv = realloc(s->v, cap * sizeof(*nv));
                    if (nv == NULL) {
                        item_record_free(rec);
                        rc = SIMSYNC_ENOMEM;
                        break;
                    }
                    s->v = nv;
                    s->cap = cap;
                }
                struct snap_item *it = &s->v[s->n++];
                it->rec = rec;
                memcpy(it->id, k + sizeof(prefix), ITEM_ID_BYTES);
                simsync__change__init(&it->change);
                it->change.cls = (uint32_t)c;
                it->change.version = rec->versions[0];
                it->left_out = 0;
            }
            rc = store_cursor_next(cur, (const void **)&k, &kl,
                                   (const void **)&v, &vl);
        }
        store_cursor_close(cur);
        if (rc == SIMSYNC_ENOTFOUND)
            rc = SIMSYNC_OK;
    }
    store_txn_abort(txn);
    /* The array no longer moves: point each change at its item's id. */
    for (size_t i = 0; i < s->n; i++) {
        s->v[i].change.item_id.data = s->v[i].id;
        s->v[i].change.item_id.len = ITEM_ID_BYTES;
    }
    if (rc != SIMSYNC_OK)
        snapshot_free(s);
    return rc;
}

/* ------------------------------------------------------------ mark */

/* meta "backup_mark": a Knowledge message, per class what this terminal
 * knew at the snapshot of the last generation it made. What it learnt
 * since is not in any generation yet (the pending-size trigger). */
static const char mark_key[] = "backup_mark";

static int
mark_get(struct store_txn *txn, struct vv mark[CLS_COUNT])
{
    Simsync__Knowledge *k;
    const void *v;
    size_t vl;
    int rc = store_get(txn, STORE_META, mark_key, sizeof(mark_key) - 1, &v,
                       &vl);

    if (rc == SIMSYNC_ENOTFOUND)
        return SIMSYNC_OK;
    if (rc != SIMSYNC_OK)
        return rc;
    k = pb_unpack(&simsync__knowledge__descriptor, vl, v, &rc);
    if (k == NULL)
        return rc;
    for (size_t i = 0; rc == SIMSYNC_OK && i < k->n_classes; i++)
        if (k->classes[i]->cls < CLS_COUNT)
            rc = vv_from_pb_dots(&mark[k->classes[i]->cls],
                                 k->classes[i]->entries,
                                 k->classes[i]->n_entries);
    simsync__knowledge__free_unpacked(k, NULL);
    return rc;
}

struct mark_put {
    const struct snapshot *s;
    uint32_t classes;
};

static int
mark_put_fn(struct store_txn *txn, void *arg)
{
    struct mark_put *p = arg;
    struct vv mark[CLS_COUNT];
    Simsync__Knowledge k = SIMSYNC__KNOWLEDGE__INIT;
    Simsync__ClassKnowledge ck[CLS_COUNT], *pck[CLS_COUNT];
    Simsync__Dot *dots = NULL, **pdots = NULL;
    size_t total = 0, used = 0, len;
    uint8_t *buf;
    int rc;

    for (int c = 0; c < CLS_COUNT; c++)
        mark[c] = (struct vv)VV_INIT;
    rc = mark_get(txn, mark);
    for (int c = 0; rc == SIMSYNC_OK && c < CLS_COUNT; c++)
        if (p->classes & (1u << c))
            rc = vv_copy(&mark[c], &p->s->mark[c]);
    for (int c = 0; c < CLS_COUNT; c++)
        total += mark[c].n;
    if (rc == SIMSYNC_OK) {
        dots = calloc(total ? total : 1, sizeof(*dots));
        pdots = calloc(total ? total : 1, sizeof(*pdots));
        if (dots == NULL || pdots == NULL)
            rc = SIMSYNC_ENOMEM;
    }
    for (int c = 0; rc == SIMSYNC_OK && c < CLS_COUNT; c++) {
        simsync__class_knowledge__init(&ck[c]);
        ck[c].cls = (uint32_t)c;
        ck[c].entries = pdots + used;
        ck[c].n_entries = mark[c].n;
        for (size_t i = 0; i < mark[c].n; i++, used++) {
            simsync__dot__init(&dots[used]);
            dots[used].replica = mark[c].e[i].replica;
            dots[used].counter = mark[c].e[i].counter;
            pdots[used] = &dots[used];
        }
        pck[c] = &ck[c];
    }
    if (rc == SIMSYNC_OK) {
        k.classes = pck;
        k.n_classes = CLS_COUNT;
        rc = record_pack(&k.base, &buf, &len);
    }
    if (rc == SIMSYNC_OK) {
        rc = store_put(txn, STORE_META, mark_key, sizeof(mark_key) - 1, buf,
                       len);
        free(buf);
    }
    free(dots);
    free(pdots);
    for (int c = 0; c < CLS_COUNT; c++)
        vv_free(&mark[c]);
    return rc;
}

struct pending_acc {
    struct store_txn *txn;
    const uint8_t *sub;
    int cls;
    uint64_t items, bytes;
};

static int
pending_fn(const struct dot *d, const uint8_t id[ITEM_ID_BYTES], void *arg)
{
    struct pending_acc *a = arg;
    Simsync__ItemRecord *rec = NULL;

    (void)d;
    a->items++;
    if (item_get(a->txn, a->sub, a->cls, id, &rec) == SIMSYNC_OK &&
        rec->n_versions == 1 && !rec->versions[0]->deleted)
        a->bytes += rec->versions[0]->size;
    item_record_free(rec);
    return 0;
}

int
simsync_backup_pending(struct simsync_node *n, uint64_t *items,
                       uint64_t *bytes)
{
    struct vv mark[CLS_COUNT];
    struct store_txn *txn;
    struct replica r;
    int rc;

    *items = *bytes = 0;
    if (!n->bound)
        return node_fail(n, SIMSYNC_ESTATE, "this terminal is not registered");
    rc = replica_setup(n, &r);
    if (rc != SIMSYNC_OK)
        return rc;
    keys_wipe(&r.keys);
    for (int c = 0; c < CLS_COUNT; c++)
        mark[c] = (struct vv)VV_INIT;
    rc = store_txn_begin(n->st, 1, &txn);
    if (rc == SIMSYNC_OK) {
        rc = mark_get(txn, mark);
        for (int c = 0; rc == SIMSYNC_OK && c < CLS_COUNT; c++) {
            struct pending_acc a = {txn, r.sub, c, 0, 0};
            if (!(n->classes & (1u << c)))
                continue;
            rc = journal_scan(txn, r.sub, c, &mark[c], pending_fn, &a);
            *items += a.items;
            *bytes += a.bytes;
        }
        store_txn_abort(txn);
    }
    for (int c = 0; c < CLS_COUNT; c++)
        vv_free(&mark[c]);
    return rc;
}

/* ------------------------------------------------------------ lock */

/* One backup at a time per terminal (the CLI, the daemon's thread): an
 * advisory lock on <home>/backup.lock, held while a backup runs. Takes it
 * into *fd, or gives SIMSYNC_EBUSY (held elsewhere) or an errno. Leaves the
 * node's error alone. */
static int
lock_take(const struct simsync_node *n, int *fd, int *err)
{
    char path[PATH_MAX];

    *fd = -1;
    *err = 0;
    if (snprintf(path, sizeof(path), "%s/backup.lock", n->home) >=
        (int)sizeof(path))
        return SIMSYNC_EINVAL;
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (*fd < 0) {
        *err = errno;
        return SIMSYNC_EIO;
    }
    if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
        *err = errno;
        close(*fd);
        *fd = -1;
        return *err == EWOULDBLOCK ? SIMSYNC_EBUSY : SIMSYNC_EIO;
    }
    return SIMSYNC_OK;
}

static int
backup_lock(struct simsync_node *n, int *fd)
{
    int err, rc = lock_take(n, fd, &err);

    if (rc == SIMSYNC_EBUSY)
        return node_fail(n, rc, "another backup of this terminal is running");
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc, "cannot lock %s/backup.lock: %s", n->home,
                         err ? strerror(err) : simsync_strerror(rc));
    return SIMSYNC_OK;
}

int
node_backup_running(const struct simsync_node *n)
{
    int fd, err, rc = lock_take(n, &fd, &err);

    if (rc == SIMSYNC_OK)
        close(fd);
    return rc == SIMSYNC_EBUSY;
}

/* ------------------------------------------------------------ backup */

/* Chunk id -> the snapshot item that holds it (first one). */
struct chunk_src {
    const uint8_t *id;
    size_t item;
};

static int
cmp_src(const void *a, const void *b)
{
    return memcmp(((const struct chunk_src *)a)->id,
                  ((const struct chunk_src *)b)->id, 32);
}

/* Sealing runs ahead of sending: UPLOAD_WORKERS threads read, check,
 * compress and seal the wanted chunks in order while this thread encrypts
 * them for the channel and sends them; at most UPLOAD_AHEAD sealed chunks
 * wait. */
#define UPLOAD_WORKERS 2
#define UPLOAD_AHEAD 8

struct sealed {
    uint8_t *blob;
    size_t len;
    int rc, ready;
};

struct upload {
    struct replica *r;
    struct snapshot *s;
    const struct chunk_src **want; /* the wanted chunks, in order */
    struct sealed *out;            /* one per wanted chunk */
    size_t n, next, taken;         /* next to seal, next to send */
    int stop;
    pthread_mutex_t mu;
    pthread_cond_t ready, room;
};

static void *
seal_worker(void *arg)
{
    struct upload *u = arg;

    pthread_mutex_lock(&u->mu);
    for (;;) {
        while (!u->stop && u->next < u->n &&
               u->next >= u->taken + UPLOAD_AHEAD)
            pthread_cond_wait(&u->room, &u->mu);
        if (u->stop || u->next >= u->n)
            break;
        size_t j = u->next++;
        pthread_mutex_unlock(&u->mu);

        const struct snap_item *it = &u->s->v[u->want[j]->item];
        uint8_t *blob = NULL;
        size_t len = 0;
        int rc = replica_get_chunk(u->r, (int)it->change.cls, it->id,
                                   it->change.version, u->want[j]->id, &blob,
                                   &len);

        pthread_mutex_lock(&u->mu);
        u->out[j].blob = blob;
        u->out[j].len = len;
        u->out[j].rc = rc;
        u->out[j].ready = 1;
        pthread_cond_broadcast(&u->ready);
    }
    pthread_mutex_unlock(&u->mu);
    return NULL;
}

/* Send the n wanted chunks, sealed by the workers, in order. */
static int
send_wanted(struct upload *u, struct link *l, struct snapshot *s,
            struct simsync_backup_report *rep)
{
    pthread_t th[UPLOAD_WORKERS];
    size_t nth = 0;
    int rc = SIMSYNC_OK;

    for (; nth < UPLOAD_WORKERS && nth < u->n; nth++)
        if (pthread_create(&th[nth], NULL, seal_worker, u) != 0)
            break;
    if (nth == 0 && u->n > 0)
        return SIMSYNC_ENOMEM;
    for (size_t i = 0; i < u->n; i++) {
        struct sealed got;

        pthread_mutex_lock(&u->mu);
        while (!u->out[i].ready)
            pthread_cond_wait(&u->ready, &u->mu);
        got = u->out[i];
        u->out[i].blob = NULL;
        u->taken = i + 1;
        pthread_cond_broadcast(&u->room);
        pthread_mutex_unlock(&u->mu);

        if (got.rc == SIMSYNC_ENOTFOUND) {
            /* Changed since the snapshot: this version cannot be in the
             * generation; the next one gets the new content. */
            struct snap_item *it = &s->v[u->want[i]->item];
            if (!it->left_out) {
                it->left_out = 1;
                rep->left_out++;
            }
            continue;
        }
        rc = got.rc;
        if (rc == SIMSYNC_OK) {
            rc = node_send_chunk(l->ch, u->want[i]->id, 32, got.blob, got.len);
            rep->chunks_sent++;
            rep->chunk_bytes_sent += got.len;
        }
        free(got.blob);
        if (rc != SIMSYNC_OK)
            break;
    }
    pthread_mutex_lock(&u->mu);
    u->stop = 1;
    pthread_cond_broadcast(&u->room);
    pthread_mutex_unlock(&u->mu);
    for (size_t t = 0; t < nth; t++)
        pthread_join(th[t], NULL);
    for (size_t i = 0; i < u->n; i++)
        free(u->out[i].blob);
    return rc;
}

/* One batch: the hub's Want answer to a query, checked and sent. */
static int
upload_wanted(struct replica *r, struct link *l, struct snapshot *s,
              const struct chunk_src *src, size_t nsrc,
              const Simsync__ChunkWant *want, struct simsync_backup_report *rep)
{
    struct upload u = {0};
    int rc = SIMSYNC_OK;

    if (want->n_ids == 0)
        return SIMSYNC_OK;
    u.r = r;
    u.s = s;
    u.want = malloc(want->n_ids * sizeof(*u.want));
    u.out = calloc(want->n_ids, sizeof(*u.out));
    if (u.want == NULL || u.out == NULL)
        rc = SIMSYNC_ENOMEM;
    for (size_t w = 0; rc == SIMSYNC_OK && w < want->n_ids; w++) {
        struct chunk_src key;
        if (want->ids[w].len != 32) {
            rc = SIMSYNC_EPROTO;
            break;
        }
        key.id = want->ids[w].data;
        u.want[w] = bsearch(&key, src, nsrc, sizeof(*src), cmp_src);
        if (u.want[w] == NULL)
            rc = SIMSYNC_EPROTO; /* the hub wants what was not asked */
    }
    if (rc == SIMSYNC_OK) {
        u.n = want->n_ids;
        pthread_mutex_init(&u.mu, NULL);
        pthread_cond_init(&u.ready, NULL);
        pthread_cond_init(&u.room, NULL);
        rc = send_wanted(&u, l, s, rep);
        pthread_cond_destroy(&u.room);
        pthread_cond_destroy(&u.ready);
        pthread_mutex_destroy(&u.mu);
    }
    free(u.want);
    free(u.out);
    return rc;
}

static int
upload_chunks(struct replica *r, struct link *l, struct snapshot *s,
              struct simsync_backup_report *rep)
{
    struct chunk_src *src = NULL;
    size_t nsrc = 0, total = 0;
    int rc = SIMSYNC_OK;

    for (size_t i = 0; i < s->n; i++)
        total += s->v[i].change.version->n_chunks;
    if (total == 0)
        return SIMSYNC_OK;
    src = malloc(total * sizeof(*src));
    if (src == NULL)
        return SIMSYNC_ENOMEM;
    for (size_t i = 0; i < s->n; i++) {
        const Simsync__Version *v = s->v[i].change.version;
        for (size_t j = 0; j < v->n_chunks; j++) {
            if (v->chunks[j]->id.len != 32)
                continue;
            src[nsrc].id = v->chunks[j]->id.data;
            src[nsrc].item = i;
            nsrc++;
        }
    }
    qsort(src, nsrc, sizeof(*src), cmp_src);
    /* Unique ids, asked in batches; the hub answers with those it lacks. */
    for (size_t i = 0; rc == SIMSYNC_OK && i < nsrc;) {
        Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT, *in = NULL;
        Simsync__ChunkQuery q = SIMSYNC__CHUNK_QUERY__INIT;
        ProtobufCBinaryData ids[NODE_QUERY_IDS];
        size_t nq = 0;
        while (i < nsrc && nq < NODE_QUERY_IDS) {
            if (nq == 0 || memcmp(ids[nq - 1].data, src[i].id, 32) != 0) {
                ids[nq].data = (uint8_t *)src[i].id;
                ids[nq].len = 32;
                nq++;
            }
            i++;
        }
        q.ids = ids;
        q.n_ids = nq;
        env.msg_case = SIMSYNC__ENVELOPE__MSG_CHUNK_QUERY;
        env.chunk_query = &q;
        rc = node_send_env(l->ch, &env);
        if (rc == SIMSYNC_OK)
            rc = node_recv_kind(l->ch, SIMSYNC__ENVELOPE__MSG_WANT,
                                (void **)&in);
        if (rc == SIMSYNC_OK)
            rc = upload_wanted(r, l, s, src, nsrc, in->want, rep);
        if (in != NULL)
            simsync__envelope__free_unpacked(in, NULL);
    }
    free(src);
    return rc;
}

int
simsync_backup_now(struct simsync_node *n, uint32_t classes,
                   struct simsync_backup_report *rep)
{
    struct simsync_backup_opts o = {classes, 0, 0};

    return simsync_backup_run(n, &o, rep);
}

static int backup_locked(struct simsync_node *n,
                         const struct simsync_backup_opts *o,
                         struct simsync_backup_report *rep);

/* The link of one backup and what BackupReady said. */
struct backup_link {
    struct simsync_node *n;
    const struct simsync_backup_opts *o;
    uint32_t classes;
    uint32_t cls_list[CLS_COUNT], ncls;
    struct link l;
    uint64_t gen;
    uint8_t prev[32];
    size_t prevlen;
};

/* Connect, say hello for a backup, begin it and read the generation
 * number and the previous digest. */
static int
backup_open(struct backup_link *b)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT, *in = NULL;
    Simsync__BackupBegin begin = SIMSYNC__BACKUP_BEGIN__INIT;
    uint32_t mask = 0;
    int rc;

    rc = link_open(b->n, b->n->hub_addr, b->n->hub_pk, NULL, &b->l);
    if (rc == SIMSYNC_OK)
        rc = node_hello_next(b->n, &b->l, SIMSYNC__OP__OP_BACKUP, b->classes,
                             &mask, b->o->next_in_ms);
    if (rc != SIMSYNC_OK)
        return rc;
    begin.classes = b->cls_list;
    begin.n_classes = b->ncls;
    begin.job = b->o->job;
    env.msg_case = SIMSYNC__ENVELOPE__MSG_BACKUP_BEGIN;
    env.backup_begin = &begin;
    rc = node_send_env(b->l.ch, &env);
    if (rc == SIMSYNC_OK)
        rc = node_recv_kind(b->l.ch, SIMSYNC__ENVELOPE__MSG_BACKUP_READY,
                            (void **)&in);
    if (rc != SIMSYNC_OK)
        return rc;
    b->gen = in->backup_ready->gen;
    b->prevlen = in->backup_ready->prev_digest.len;
    if (b->gen == 0 || b->prevlen > 32 || (b->gen > 1) != (b->prevlen == 32))
        rc = SIMSYNC_EPROTO;
    else if (b->prevlen > 0)
        memcpy(b->prev, in->backup_ready->prev_digest.data, b->prevlen);
    simsync__envelope__free_unpacked(in, NULL);
    return rc;
}

/* upstream_open_fn: the upstream opens the backup's link. */
static int
backup_open_up(void *arg, struct chan **ch)
{
    struct backup_link *b = arg;
    int rc = backup_open(b);

    *ch = b->l.ch;
    return rc;
}

int
simsync_backup_run(struct simsync_node *n, const struct simsync_backup_opts *o,
                   struct simsync_backup_report *rep)
{
    int fd, rc;

    memset(rep, 0, sizeof(*rep));
    n->err[0] = '\0';
    rc = backup_lock(n, &fd);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = backup_locked(n, o, rep);
    close(fd);
    return rc;
}

static int
backup_locked(struct simsync_node *n, const struct simsync_backup_opts *o,
              struct simsync_backup_report *rep)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT, *in = NULL;
    Simsync__BackupEnd end = SIMSYNC__BACKUP_END__INIT;
    Simsync__Manifest m = SIMSYNC__MANIFEST__INIT;
    Simsync__Change **items = NULL;
    struct snapshot snap = {0};
    struct scan_stats scan;
    struct replica r;
    struct backup_link b = {0};
    struct upstream *up = NULL;
    struct upstream_stats ups;
    uint8_t ad[NODE_MANIFEST_AD_BYTES], digest[32];
    uint8_t *plain = NULL, *sealed = NULL;
    size_t plen = 0, slen = 0, nitems = 0;
    uint64_t t0 = node_now_ms(), gen = 0;
    uint32_t classes = o->classes ? o->classes : n->classes;
    uint32_t *cls_list = b.cls_list, ncls = 0;
    int rc, uprc, scan_rc;

    node_peer_error_clear(); /* a failure below quotes the hub's words */

    rc = check_sim_binding(n);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = replica_setup(n, &r);
    if (rc != SIMSYNC_OK)
        return rc;
    b.n = n;
    b.o = o;
    b.classes = classes;
    for (int c = 0; c < CLS_COUNT; c++)
        if (classes & (1u << c))
            b.cls_list[b.ncls++] = (uint32_t)c;
    ncls = b.ncls;
    /* The records must describe the files: scan first (deletions held by
     * the mass-delete guard stay out, as for a sync). The chunks the scan
     * cuts go to the hub meanwhile (upstream.h). */
    rc = upstream_start(backup_open_up, &b, r.keys.seal, &up);
    if (rc == SIMSYNC_OK) {
        r.chunk_sink = upstream_sink;
        r.chunk_sink_arg = up;
        rc = folder_scan(&r, classes, 0, &scan);
        r.chunk_sink = NULL;
    }
    /* The instant of the generation: one read snapshot, right after the
     * scan (the upstream may still be sending). Edits from here on are
     * not in it and are not blocked by it. */
    if (rc == SIMSYNC_EMASSDEL)
        rc = SIMSYNC_OK;
    scan_rc = rc;
    if (rc == SIMSYNC_OK)
        rc = snapshot_take(&r, classes, &snap);
    uprc = upstream_finish(up, &ups);
    rep->chunks_sent += ups.chunks;
    rep->chunks_streamed = ups.chunks;
    rep->chunk_bytes_sent += ups.bytes;
    if (uprc != SIMSYNC_OK) {
        /* The scan stopped because the upload did (its error is the
         * one to report), or the upload failed after the scan. */
        rc = uprc;
        if (n->err[0] == '\0')
            node_fail(n, rc, "sending the new chunks to the hub failed: %s",
                      simsync_strerror(rc));
        goto fail;
    }
    if (rc != SIMSYNC_OK) {
        if (scan_rc != SIMSYNC_OK)
            node_fail(n, rc, "scanning %s failed: %s", n->data_dir,
                      simsync_strerror(rc));
        goto fail;
    }
    if (b.l.ch == NULL)
        rc = backup_open(&b);
    if (rc != SIMSYNC_OK)
        goto fail;
    gen = b.gen;
    rc = upload_chunks(&r, &b.l, &snap, rep);
    if (rc != SIMSYNC_OK)
        goto fail;
    items = malloc((snap.n ? snap.n : 1) * sizeof(*items));
    if (items == NULL) {
        rc = SIMSYNC_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < snap.n; i++) {
        if (snap.v[i].left_out)
            continue;
        items[nitems++] = &snap.v[i].change;
        rep->bytes += snap.v[i].change.version->size;
    }
    rep->items = nitems;
    m.gen = gen;
    m.prev_digest.data = b.prev;
    m.prev_digest.len = b.prevlen;
    m.created_ms = t0;
    m.terminal_id = n->terminal_id;
    m.classes = cls_list;
    m.n_classes = ncls;
    m.items = items;
    m.n_items = nitems;
    node_manifest_ad(ad, gen);
    rc = record_pack(&m.base, &plain, &plen);
    if (rc == SIMSYNC_OK)
        rc = blob_encode(r.keys.seal, ad, sizeof(ad), plain, plen, &sealed,
                         &slen);
    if (rc == SIMSYNC_OK)
        rc = crypt_hash(digest, sizeof(digest), sealed, slen, NULL, 0);
    for (size_t off = 0, i = 0; rc == SIMSYNC_OK && off < slen; i++) {
        Simsync__ManifestPiece p = SIMSYNC__MANIFEST_PIECE__INIT;
        size_t len = slen - off < PIECE_BYTES ? slen - off : PIECE_BYTES;
        p.index = (uint32_t)i;
        p.blob.data = sealed + off;
        p.blob.len = len;
        env.msg_case = SIMSYNC__ENVELOPE__MSG_PIECE;
        env.piece = &p;
        rc = node_send_env(b.l.ch, &env);
        off += len;
        end.pieces = (uint32_t)(i + 1);
    }
    rep->manifest_bytes = slen;
    if (rc == SIMSYNC_OK) {
        end.gen = gen;
        end.items = rep->items;
        end.bytes = rep->bytes;
        end.digest.data = digest;
        end.digest.len = sizeof(digest);
        end.classes = cls_list;
        end.n_classes = ncls;
        end.created_ms = t0;
        env.msg_case = SIMSYNC__ENVELOPE__MSG_BACKUP_END;
        env.backup_end = &end;
        rc = node_send_env(b.l.ch, &env);
    }
    if (rc == SIMSYNC_OK)
        rc = node_recv_kind(b.l.ch, SIMSYNC__ENVELOPE__MSG_BACKUP_COMPLETE,
                            (void **)&in);
    if (rc == SIMSYNC_OK) {
        const Simsync__BackupComplete *c = in->backup_complete;
        if (c->gen != gen || c->items != rep->items || c->bytes != rep->bytes ||
            c->digest.len != 32 || !crypt_equal(c->digest.data, digest, 32))
            rc = SIMSYNC_EPROTO;
    }
    if (rc == SIMSYNC_OK)
        rc = seen_raise(n, gen, digest);
    if (rc == SIMSYNC_OK)
        rc = good_note(n, gen, (uint64_t)t0, 0);
    if (rc == SIMSYNC_OK) {
        struct mark_put mp = {&snap, classes};
        rc = store_write(n->st, mark_put_fn, &mp);
    }
    if (rc == SIMSYNC_OK) {
        rep->gen = gen;
        memcpy(rep->digest, digest, sizeof(digest));
    }
fail:
    if (rc != SIMSYNC_OK && n->err[0] == '\0')
        node_fail(n, rc,
                  "the backup did not complete: %s%s%s (no generation was "
                  "made; chunks the hub received are kept, so the next "
                  "attempt sends only the rest)",
                  simsync_strerror(rc), node_peer_error()[0] ? ": " : "",
                  node_peer_error());
    if (in != NULL)
        simsync__envelope__free_unpacked(in, NULL);
    link_close(&b.l);
    snapshot_free(&snap);
    free(items);
    free(plain);
    free(sealed);
    keys_wipe(&r.keys);
    rep->seconds = (double)(node_now_ms() - t0) / 1000.0;
    return rc;
}

/* ------------------------------------------------------------ listing */

int
node_gen_list(struct simsync_node *n, Simsync__Envelope **out)
{
    return node_request(n, SIMSYNC__OP__OP_GENERATIONS, NULL,
                        SIMSYNC__ENVELOPE__MSG_GENERATIONS, (void **)out);
}

/* The token a terminal gives the hub with a generation it forgets: only
 * holders of the data key can make it, so a hub cannot pass off a
 * generation it dropped (a rollback) as a forgotten one. */
static void
forget_token(const struct datakeys *k, uint64_t gen, const uint8_t digest[32],
             uint8_t out[32])
{
    static const char label[] = "simsync-forget";
    uint8_t fkey[32], msg[sizeof(label) - 1 + 8 + 32];

    crypt_hash(fkey, sizeof(fkey), "simsync-forget-key", 18, k->verifier, 32);
    memcpy(msg, label, sizeof(label) - 1);
    store_be64(msg + sizeof(label) - 1, gen);
    memcpy(msg + sizeof(label) - 1 + 8, digest, 32);
    crypt_hash(out, 32, msg, sizeof(msg), fkey, sizeof(fkey));
    crypt_wipe(fkey, sizeof(fkey));
}

/* Check a listing against what this terminal has seen, then remember its
 * newest generation. Forgotten generations count (their numbers are never
 * reused) when their token is genuine. */
int
node_gen_check(struct simsync_node *n, const Simsync__GenerationList *gl)
{
    uint8_t seen_digest[32];
    uint64_t seen, max = 0;
    const Simsync__GenerationInfo *newest = NULL, *good = NULL;
    struct replica r;
    int have_keys = 0;
    int rc = seen_get(n, &seen, seen_digest);

    if (rc != SIMSYNC_OK)
        return rc;
    for (size_t i = 0; rc == SIMSYNC_OK && i < gl->n_gens; i++) {
        const Simsync__GenerationInfo *g = gl->gens[i];
        if (g->digest.len != 32) {
            rc = node_fail(n, SIMSYNC_EPROTO,
                           "the hub lists generation %llu without a digest",
                           (unsigned long long)g->gen);
            break;
        }
        if (g->gen == seen && !crypt_equal(g->digest.data, seen_digest, 32)) {
            rc = node_fail(n, SIMSYNC_ECRYPTO,
                           "the hub serves another generation %llu than "
                           "the one this terminal saw: refusing it",
                           (unsigned long long)seen);
            break;
        }
        if (g->forgotten) {
            uint8_t tok[32];
            if (!have_keys) {
                rc = replica_setup(n, &r);
                if (rc != SIMSYNC_OK)
                    break;
                have_keys = 1;
            }
            forget_token(&r.keys, g->gen, g->digest.data, tok);
            if (g->forget_token.len != 32 ||
                !crypt_equal(tok, g->forget_token.data, 32)) {
                rc = node_fail(n, SIMSYNC_ECRYPTO,
                               "the hub says generation %llu was forgotten, "
                               "but no terminal of this subscriber asked for "
                               "it: refusing the listing",
                               (unsigned long long)g->gen);
                break;
            }
        }
        if (g->gen >= max) {
            max = g->gen;
            newest = g;
        }
        if (!g->forgotten && (good == NULL || g->gen > good->gen))
            good = g;
    }
    if (have_keys)
        keys_wipe(&r.keys);
    if (rc != SIMSYNC_OK)
        return rc;
    if (max < seen)
        return node_fail(n, SIMSYNC_ECRYPTO,
                         "the hub's newest generation is %llu but this "
                         "terminal has seen %llu: the hub serves an old "
                         "state (rolled back or replaced)",
                         (unsigned long long)max, (unsigned long long)seen);
    rc = good_note(n, good ? good->gen : 0, good ? good->created_ms : 0, 1);
    if (rc == SIMSYNC_OK && newest != NULL)
        rc = seen_raise(n, newest->gen, newest->digest.data);
    return rc;
}

/* The checked listing's live generations, oldest first. */
static int
gens_from_list(const Simsync__GenerationList *gl,
               struct simsync_generation **out, size_t *count)
{
    struct simsync_generation *v = calloc(gl->n_gens + 1, sizeof(*v));
    size_t cnt = 0;

    if (v == NULL)
        return SIMSYNC_ENOMEM;
    for (size_t i = 0; i < gl->n_gens; i++) {
        const Simsync__GenerationInfo *g = gl->gens[i];
        if (g->forgotten)
            continue;
        v[cnt].gen = g->gen;
        v[cnt].created_ms = g->created_ms;
        v[cnt].items = g->items;
        v[cnt].bytes = g->bytes;
        v[cnt].manifest_bytes = g->manifest_bytes;
        snprintf(v[cnt].terminal_id, sizeof(v[cnt].terminal_id), "%s",
                 g->terminal_id ? g->terminal_id : "");
        for (size_t c = 0; c < g->n_classes; c++)
            if (g->classes[c] < CLS_COUNT)
                v[cnt].classes |= 1u << g->classes[c];
        cnt++;
    }
    *out = v;
    *count = cnt;
    return SIMSYNC_OK;
}

int
simsync_backup_list(struct simsync_node *n, struct simsync_generation **out,
                    size_t *count)
{
    Simsync__Envelope *in = NULL;
    int rc;

    *out = NULL;
    *count = 0;
    n->err[0] = '\0';
    if (!n->bound)
        return node_fail(n, SIMSYNC_ESTATE, "this terminal is not registered");
    rc = node_gen_list(n, &in);
    if (rc == SIMSYNC_OK)
        rc = node_gen_check(n, in->generations);
    if (rc == SIMSYNC_OK)
        rc = gens_from_list(in->generations, out, count);
    if (in)
        simsync__envelope__free_unpacked(in, NULL);
    if (rc != SIMSYNC_OK && n->err[0] == '\0')
        node_fail(n, rc, "cannot list the generations: %s",
                  simsync_strerror(rc));
    return rc;
}

/* ------------------------------------------------------------ forget */

static int
cmp_gen_desc(const void *a, const void *b)
{
    const struct simsync_generation *x = a, *y = b;

    return x->gen < y->gen ? 1 : x->gen > y->gen ? -1 : 0;
}

enum period { PERIOD_DAY, PERIOD_WEEK, PERIOD_MONTH };

/* The name of the period (local time) that holds time t. */
static size_t
period_name(char *out, size_t len, time_t t, enum period p)
{
    struct tm tm;

    if (localtime_r(&t, &tm) == NULL)
        return 0;
    switch (p) {
    case PERIOD_DAY:
        return strftime(out, len, "%Y-%m-%d", &tm);
    case PERIOD_WEEK:
        return strftime(out, len, "%G-W%V", &tm);
    default:
        return strftime(out, len, "%Y-%m", &tm);
    }
}

/* Keep the newest generation of each of the newest `count` periods.
 * v is newest first. */
static void
keep_periods(const struct simsync_generation *v, size_t n, int *keep,
             uint32_t count, enum period p)
{
    char prev[32] = "", cur[32];
    uint32_t periods = 0;

    for (size_t i = 0; i < n && periods < count; i++) {
        if (period_name(cur, sizeof(cur), (time_t)(v[i].created_ms / 1000),
                        p) == 0)
            continue;
        if (strcmp(cur, prev) != 0) {
            keep[i] = 1;
            periods++;
            memcpy(prev, cur, sizeof(prev));
        }
    }
}

/* Forget gens[0..n) at the hub (the listing has been checked). */
static int
forget_send(struct simsync_node *n, const Simsync__GenerationList *gl,
            const uint64_t *gens, size_t count,
            struct simsync_forget_report *rep)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT, *in = NULL;
    Simsync__ForgetRequest req = SIMSYNC__FORGET_REQUEST__INIT;
    ProtobufCBinaryData *toks = calloc(count + 1, sizeof(*toks));
    uint8_t *tokbuf = malloc(count * 32 + 1);
    struct replica r;
    int rc = toks && tokbuf ? replica_setup(n, &r) : SIMSYNC_ENOMEM;

    for (size_t i = 0; rc == SIMSYNC_OK && i < count; i++) {
        for (size_t k = 0; k < gl->n_gens; k++)
            if (gl->gens[k]->gen == gens[i])
                forget_token(&r.keys, gens[i], gl->gens[k]->digest.data,
                             tokbuf + i * 32);
        toks[i].data = tokbuf + i * 32;
        toks[i].len = 32;
    }
    if (rc == SIMSYNC_OK) {
        keys_wipe(&r.keys);
        req.gens = (uint64_t *)gens;
        req.n_gens = count;
        req.tokens = toks;
        req.n_tokens = count;
        env.msg_case = SIMSYNC__ENVELOPE__MSG_FORGET;
        env.forget = &req;
        rc = node_request(n, SIMSYNC__OP__OP_FORGET, &env,
                          SIMSYNC__ENVELOPE__MSG_FORGET_DONE, (void **)&in);
    }
    if (rc == SIMSYNC_OK) {
        rep->forgotten += in->forget_done->forgotten;
        rep->chunks_freed += in->forget_done->chunks_freed;
        rep->bytes_freed += in->forget_done->bytes_freed;
        simsync__envelope__free_unpacked(in, NULL);
    }
    free(toks);
    free(tokbuf);
    if (rc != SIMSYNC_OK && n->err[0] == '\0')
        node_fail(n, rc, "the hub did not forget the generations: %s",
                  simsync_strerror(rc));
    return rc;
}

int
simsync_backup_forget(struct simsync_node *n,
                      const struct simsync_forget_opts *o, simsync_gen_fn fn,
                      void *arg, struct simsync_forget_report *rep)
{
    Simsync__Envelope *in = NULL;
    struct simsync_generation *v = NULL;
    uint64_t *drop = NULL;
    int *keep = NULL;
    size_t count = 0, ndrop = 0;
    int rc;

    memset(rep, 0, sizeof(*rep));
    n->err[0] = '\0';
    if (!n->bound)
        return node_fail(n, SIMSYNC_ESTATE, "this terminal is not registered");
    if (o->ngens == 0 && o->keep_last == 0 && o->keep_daily == 0 &&
        o->keep_weekly == 0 && o->keep_monthly == 0)
        return node_fail(n, SIMSYNC_EINVAL,
                         "say what to keep (--keep-last, --keep-daily, "
                         "--keep-weekly, --keep-monthly) or which "
                         "generations to forget");
    rc = node_gen_list(n, &in);
    if (rc == SIMSYNC_OK)
        rc = node_gen_check(n, in->generations);
    if (rc == SIMSYNC_OK)
        rc = gens_from_list(in->generations, &v, &count);
    if (rc == SIMSYNC_OK) {
        keep = calloc(count + 1, sizeof(*keep));
        drop = calloc(count + 1, sizeof(*drop));
        if (keep == NULL || drop == NULL)
            rc = SIMSYNC_ENOMEM;
    }
    if (rc != SIMSYNC_OK)
        goto out;
    qsort(v, count, sizeof(*v), cmp_gen_desc);
    if (o->ngens > 0) {
        for (size_t i = 0; i < count; i++)
            keep[i] = 1;
        for (size_t k = 0; rc == SIMSYNC_OK && k < o->ngens; k++) {
            size_t i = 0;
            while (i < count && v[i].gen != o->gens[k])
                i++;
            if (i == count)
                rc = node_fail(n, SIMSYNC_ENOTFOUND,
                               "there is no generation %llu to forget",
                               (unsigned long long)o->gens[k]);
            else
                keep[i] = 0;
        }
        if (rc != SIMSYNC_OK)
            goto out;
    } else {
        for (size_t i = 0; i < count && i < o->keep_last; i++)
            keep[i] = 1;
        keep_periods(v, count, keep, o->keep_daily, PERIOD_DAY);
        keep_periods(v, count, keep, o->keep_weekly, PERIOD_WEEK);
        keep_periods(v, count, keep, o->keep_monthly, PERIOD_MONTH);
    }
    for (size_t i = count; i-- > 0;) {
        if (fn)
            fn(arg, keep[i] ? "keep" : "forget", &v[i]);
        if (keep[i])
            rep->kept++;
        else
            drop[ndrop++] = v[i].gen;
    }
    if (!o->dry_run && ndrop > 0)
        rc = forget_send(n, in->generations, drop, ndrop, rep);
    else if (o->dry_run)
        rep->forgotten = ndrop;
out:
    if (in)
        simsync__envelope__free_unpacked(in, NULL);
    free(v);
    free(keep);
    free(drop);
    if (rc != SIMSYNC_OK && n->err[0] == '\0')
        node_fail(n, rc, "cannot forget generations: %s", simsync_strerror(rc));
    return rc;
}

