/* hub_backup.c -- the hub's side of backup generations: taking a
 * generation from a terminal, listing generations, serving manifests and
 * chunks for a restore. The hub cannot read a manifest: it stores the
 * sealed pieces, the chunk ids the terminal asked about, and the clear
 * metadata of GenerationInfo.
 *
 * A generation becomes visible in one write transaction, after every
 * chunk it uses is in the chunks database and the manifest's digest
 * matches what was announced; chunks received before an interruption stay
 * (each in its own transaction), so a new attempt only sends the rest. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypt.h"
#include "hub_backup.h"
#include "hub_sched.h"
#include "node.h"
#include "pbcheck.h"

#define QUERY_MAX 8192               /* chunk ids per ChunkQuery */
#define MANIFEST_MAX (256u << 20)    /* sealed manifest bytes */
#define PIECE_MAX (768u * 1024)      /* one ManifestPiece blob */
#define CHUNK_BLOB_MAX (300u * 1024) /* a sealed chunk of <= 256 KiB */
#define REFS_MAX (16u << 20)         /* chunk ids one generation may use */

static void
gen_key(uint8_t key[GEN_KEY_BYTES], const uint8_t sub[SUB_BYTES], uint64_t gen,
        uint8_t kind, uint32_t piece)
{
    memcpy(key, sub, SUB_BYTES);
    store_be64(key + SUB_BYTES, gen);
    key[SUB_BYTES + 8] = kind;
    key[SUB_BYTES + 9] = (uint8_t)(piece >> 24);
    key[SUB_BYTES + 10] = (uint8_t)(piece >> 16);
    key[SUB_BYTES + 11] = (uint8_t)(piece >> 8);
    key[SUB_BYTES + 12] = (uint8_t)piece;
}

struct gen_scan {
    int (*fn)(Simsync__GenerationRecord *rec, void *arg);
    void *arg;
};

static int
gen_entry(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
    struct gen_scan *g = arg;
    Simsync__GenerationRecord *rec;
    int rc;

    if (kl != GEN_KEY_BYTES ||
        ((const uint8_t *)k)[SUB_BYTES + 8] != GEN_KIND_RECORD)
        return SIMSYNC_OK; /* a manifest piece */
    rec = pb_unpack(&simsync__generation_record__descriptor, vl, v, &rc);
    if (rec == NULL)
        return rc;
    if (rec->info == NULL) {
        simsync__generation_record__free_unpacked(rec, NULL);
        return SIMSYNC_EPROTO;
    }
    rc = g->fn(rec, g->arg);
    simsync__generation_record__free_unpacked(rec, NULL);
    return rc;
}

int
hub_gen_each(struct store_txn *txn, const uint8_t sub[SUB_BYTES],
             int (*fn)(Simsync__GenerationRecord *rec, void *arg), void *arg)
{
    struct gen_scan g = {fn, arg};

    return store_scan(txn, STORE_GENS, sub, SUB_BYTES, SUB_BYTES, gen_entry,
                      &g);
}

struct latest {
    uint64_t gen;
    uint8_t digest[32];
    size_t dlen;
};

static int
latest_fn(Simsync__GenerationRecord *rec, void *arg)
{
    struct latest *l = arg;

    if (rec->info->gen >= l->gen) {
        l->gen = rec->info->gen;
        l->dlen = rec->info->digest.len <= 32 ? rec->info->digest.len : 0;
        if (l->dlen > 0)
            memcpy(l->digest, rec->info->digest.data, l->dlen);
    }
    return SIMSYNC_OK;
}

static int
latest_gen(struct store *st, const uint8_t sub[SUB_BYTES], struct latest *l)
{
    struct store_txn *txn;
    int rc = store_txn_begin(st, 1, &txn);

    memset(l, 0, sizeof(*l));
    if (rc != SIMSYNC_OK)
        return rc;
    rc = hub_gen_each(txn, sub, latest_fn, l);
    store_txn_abort(txn);
    return rc;
}

/* Arriving chunks are committed in groups: at most GROUP_CHUNKS or
 * GROUP_BYTES, and always before the manifest is checked and when the
 * connection ends for any reason. A terminal killed mid-upload therefore
 * re-sends at most the chunk that was in flight; only a crash of the hub
 * itself loses the group (the backup then fails, and the next attempt's
 * queries find those chunks missing and send them again).
 *
 * A full group is committed by the upload's writer thread while the
 * session goes on receiving the next one: a commit waits for the disk
 * (writev into the page cache, fdatasync twice), and a session that
 * waited with it stopped reading its socket, which stalled the
 * terminal's whole pipeline. At most one group is in the writer's hands;
 * handing over the next waits for it. If the thread cannot be started,
 * groups are committed in the session's thread as before. */
#define GROUP_CHUNKS 1024
#define GROUP_BYTES (32u << 20) /* each commit waits for the disk twice */
#define GROUP_MS 200 /* on a slow link, commit at least this often */

/* Chunks received and not yet committed. */
struct group {
    uint8_t (*ids)[32];
    Simsync__Envelope *env[GROUP_CHUNKS]; /* owned: the chunks' messages */
    const uint8_t *blob[GROUP_CHUNKS];    /* into env */
    size_t len[GROUP_CHUNKS];
    size_t n, bytes;
};

/* The writer thread and the group it holds. */
struct writer {
    struct replica *r;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const struct group *g; /* being committed, or NULL */
    int rc;          /* the first failed commit, sticky */
    int started, quit;
};

/* One upload per subscriber at a time, in each hub. Two at once (two of
 * the subscriber's terminals, or a new attempt while the hub still
 * finishes one whose terminal was killed after it sent its end) would be
 * given the same generation number, and the second to end would be
 * refused. A second upload waits for the first to end, up to
 * UPLOAD_WAIT_MS, then is answered busy. */
#define UPLOADS_MAX 64
#define UPLOAD_WAIT_MS 10000

static pthread_mutex_t uploads_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t uploads_cv = PTHREAD_COND_INITIALIZER;
static struct {
    const struct simsync_node *n; /* NULL: a free slot */
    uint8_t sub[SUB_BYTES];
} uploads[UPLOADS_MAX];

/* Claim the subscriber's upload slot. Returns SIMSYNC_OK, or SIMSYNC_EBUSY
 * when another upload of the subscriber (or UPLOADS_MAX of any) did not
 * end in time. */
static int
upload_claim(const struct simsync_node *n, const uint8_t sub[SUB_BYTES])
{
    struct timespec until;
    int rc = SIMSYNC_OK;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += UPLOAD_WAIT_MS / 1000;
    pthread_mutex_lock(&uploads_lock);
    for (;;) {
        int held = 0, free_slot = -1;
        for (int i = 0; i < UPLOADS_MAX; i++) {
            if (uploads[i].n == NULL) {
                if (free_slot < 0)
                    free_slot = i;
            } else if (uploads[i].n == n &&
                       memcmp(uploads[i].sub, sub, SUB_BYTES) == 0) {
                held = 1;
            }
        }
        if (!held && free_slot >= 0) {
            uploads[free_slot].n = n;
            memcpy(uploads[free_slot].sub, sub, SUB_BYTES);
            break;
        }
        if (pthread_cond_timedwait(&uploads_cv, &uploads_lock, &until) ==
            ETIMEDOUT) {
            rc = SIMSYNC_EBUSY;
            break;
        }
    }
    pthread_mutex_unlock(&uploads_lock);
    return rc;
}

static void
upload_release(const struct simsync_node *n, const uint8_t sub[SUB_BYTES])
{
    pthread_mutex_lock(&uploads_lock);
    for (int i = 0; i < UPLOADS_MAX; i++)
        if (uploads[i].n == n && memcmp(uploads[i].sub, sub, SUB_BYTES) == 0)
            uploads[i].n = NULL;
    pthread_cond_broadcast(&uploads_cv);
    pthread_mutex_unlock(&uploads_lock);
}

/* The state of one backup upload. */
struct upload {
    struct replica r; /* hub replica of the subscriber */
    uint64_t gen;
    uint8_t prev[32];
    size_t prevlen;
    uint8_t *refs; /* chunk ids queried, 32 bytes each (may repeat) */
    size_t nrefs, caprefs;
    uint8_t *want; /* sorted: the ids of the last ChunkWant */
    size_t nwant;
    struct group groups[2];
    struct group *cur;  /* filling: groups[0] or [1] */
    struct group *sent; /* the other; may be in the writer's hands */
    uint64_t gstart_ms; /* when the current group's first chunk arrived */
    struct writer w;
    uint8_t **pieces;
    size_t *piece_len;
    size_t npieces, cappieces, manifest_bytes;
    struct crypt_hash_state digest;
};

/* Commit group g. It is only read: the session may look up its ids
 * meanwhile, and empties it (group_clear) once the commit is over. */
static int
group_commit(struct replica *r, const struct group *g)
{
    const uint8_t *ids[GROUP_CHUNKS];

    for (size_t i = 0; i < g->n; i++)
        ids[i] = g->ids[i];
    return replica_put_chunks(r, g->n, ids, g->blob, g->len);
}

static void
group_clear(struct group *g)
{
    for (size_t i = 0; i < g->n; i++)
        simsync__envelope__free_unpacked(g->env[i], NULL);
    g->n = 0;
    g->bytes = 0;
}

static void *
writer_main(void *arg)
{
    struct writer *w = arg;

    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->g == NULL && !w->quit)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->g == NULL)
            break;
        const struct group *g = w->g;
        pthread_mutex_unlock(&w->mu);
        int rc = group_commit(w->r, g);
        pthread_mutex_lock(&w->mu);
        if (w->rc == SIMSYNC_OK)
            w->rc = rc;
        w->g = NULL;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Wait until the writer holds no group; its first failure, if any. */
static int
writer_wait(struct writer *w)
{
    int rc;

    if (!w->started)
        return w->rc;
    pthread_mutex_lock(&w->mu);
    while (w->g != NULL)
        pthread_cond_wait(&w->cv, &w->mu);
    rc = w->rc;
    pthread_mutex_unlock(&w->mu);
    return rc;
}

static void
writer_stop(struct writer *w)
{
    if (!w->started)
        return;
    pthread_mutex_lock(&w->mu);
    w->quit = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->th, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    w->started = 0;
}

static int
writer_start(struct upload *u)
{
    struct writer *w = &u->w;

    w->r = &u->r;
    if (pthread_mutex_init(&w->mu, NULL) != 0)
        return -1;
    if (pthread_cond_init(&w->cv, NULL) != 0) {
        pthread_mutex_destroy(&w->mu);
        return -1;
    }
    if (pthread_create(&w->th, NULL, writer_main, w) != 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        return -1;
    }
    w->started = 1;
    return 0;
}

/* Wait for the writer, then empty the group it held. */
static int
writer_done(struct upload *u)
{
    int rc = writer_wait(&u->w);

    group_clear(u->sent);
    return rc;
}

/* Hand the current group to the writer (after the one it holds is
 * committed) and start a new one. Returns the first failure of a commit
 * so far. */
static int
group_flush(struct upload *u)
{
    struct group *g = u->cur;
    int rc;

    if (g->n == 0)
        return writer_done(u);
    if (!u->w.started && writer_start(u) != 0) {
        rc = group_commit(&u->r, g); /* no thread: commit here */
        group_clear(g);
        return rc;
    }
    rc = writer_done(u);
    if (rc != SIMSYNC_OK)
        return rc;
    u->cur = u->sent;
    u->sent = g;
    pthread_mutex_lock(&u->w.mu);
    u->w.g = g;
    pthread_cond_broadcast(&u->w.cv);
    pthread_mutex_unlock(&u->w.mu);
    return SIMSYNC_OK;
}

/* Every chunk received so far committed: before the manifest is checked,
 * and when the upload ends. */
static int
group_sync(struct upload *u)
{
    int rc = group_flush(u);

    return rc != SIMSYNC_OK ? rc : writer_done(u);
}

/* Add the chunk message *env to the group, which takes it (*env is set
 * to NULL): its blob is stored as it was decoded, without a copy. */
static int
group_add(struct upload *u, Simsync__Envelope **env)
{
    const Simsync__ChunkData *cd = (*env)->chunk;
    struct group *g = u->cur;

    if (g->ids == NULL) {
        g->ids = malloc(GROUP_CHUNKS * sizeof(*g->ids));
        if (g->ids == NULL)
            return SIMSYNC_ENOMEM;
    }
    g->env[g->n] = *env;
    *env = NULL;
    g->blob[g->n] = cd->blob.data;
    memcpy(g->ids[g->n], cd->id.data, 32);
    g->len[g->n] = cd->blob.len;
    if (g->n++ == 0)
        u->gstart_ms = node_now_ms();
    g->bytes += cd->blob.len;
    if (g->n == GROUP_CHUNKS || g->bytes >= GROUP_BYTES ||
        node_now_ms() - u->gstart_ms >= GROUP_MS)
        return group_flush(u);
    return SIMSYNC_OK;
}

static void
upload_free(struct upload *u)
{
    writer_stop(&u->w);
    for (int k = 0; k < 2; k++) {
        group_clear(&u->groups[k]);
        free(u->groups[k].ids);
    }
    for (size_t i = 0; i < u->npieces; i++)
        free(u->pieces[i]);
    free(u->pieces);
    free(u->piece_len);
    free(u->refs);
    free(u->want);
}

static int
cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, 32);
}

/* Was this chunk asked for by the last ChunkWant? */
static int
wanted(const struct upload *u, const uint8_t *id)
{
    return u->nwant > 0 && bsearch(id, u->want, u->nwant, 32, cmp_id) != NULL;
}

/* Is this chunk in a group not yet committed? The group the writer
 * holds does not change until the session hands it the next one. */
static int
in_group(const struct upload *u, const uint8_t *id)
{
    for (int k = 0; k < 2; k++) {
        const struct group *g = &u->groups[k];
        for (size_t i = 0; i < g->n; i++)
            if (memcmp(g->ids[i], id, 32) == 0)
                return 1;
    }
    return 0;
}

static int
on_query(struct upload *u, struct chan *ch, const Simsync__ChunkQuery *q)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__ChunkWant want = SIMSYNC__CHUNK_WANT__INIT;
    ProtobufCBinaryData *ids;
    struct store_txn *txn;
    size_t n = 0;
    int rc;

    if (q->n_ids == 0 || q->n_ids > QUERY_MAX || u->nrefs + q->n_ids > REFS_MAX)
        return SIMSYNC_EPROTO;
    for (size_t i = 0; i < q->n_ids; i++)
        if (q->ids[i].len != 32)
            return SIMSYNC_EPROTO;
    if (u->nrefs + q->n_ids > u->caprefs) {
        size_t cap = (u->nrefs + q->n_ids) * 2;
        uint8_t *nr = realloc(u->refs, cap * 32);
        if (nr == NULL)
            return SIMSYNC_ENOMEM;
        u->refs = nr;
        u->caprefs = cap;
    }
    ids = calloc(q->n_ids, sizeof(*ids));
    if (ids == NULL)
        return SIMSYNC_ENOMEM;
    rc = store_txn_begin(u->r.st, 1, &txn);
    for (size_t i = 0; rc == SIMSYNC_OK && i < q->n_ids; i++) {
        uint8_t key[SUB_BYTES + 32];
        const void *v;
        size_t vl;
        memcpy(u->refs + u->nrefs * 32, q->ids[i].data, 32);
        u->nrefs++;
        memcpy(key, u->r.sub, SUB_BYTES);
        memcpy(key + SUB_BYTES, q->ids[i].data, 32);
        if (!in_group(u, q->ids[i].data) &&
            store_get(txn, STORE_CHUNKS, key, sizeof(key), &v, &vl) !=
                SIMSYNC_OK)
            ids[n++] = q->ids[i];
    }
    store_txn_abort(txn);
    free(u->want);
    u->nwant = 0;
    u->want = malloc(n ? n * 32 : 1);
    if (u->want == NULL)
        rc = SIMSYNC_ENOMEM;
    for (size_t i = 0; rc == SIMSYNC_OK && i < n; i++)
        memcpy(u->want + i * 32, ids[i].data, 32);
    if (rc == SIMSYNC_OK) {
        u->nwant = n;
        qsort(u->want, n, 32, cmp_id);
    }
    if (rc == SIMSYNC_OK) {
        want.seq = 0;
        want.ids = ids;
        want.n_ids = n;
        env.msg_case = SIMSYNC__ENVELOPE__MSG_WANT;
        env.want = &want;
        rc = node_send_env(ch, &env);
    }
    free(ids);
    return rc;
}

static int
on_piece(struct upload *u, const Simsync__ManifestPiece *p)
{
    uint8_t *copy;

    if (p->index != u->npieces || p->blob.len == 0 || p->blob.len > PIECE_MAX ||
        u->manifest_bytes + p->blob.len > MANIFEST_MAX)
        return SIMSYNC_EPROTO;
    if (u->npieces == u->cappieces) {
        size_t cap = u->cappieces ? u->cappieces * 2 : 8;
        uint8_t **np = realloc(u->pieces, cap * sizeof(*np));
        if (np == NULL)
            return SIMSYNC_ENOMEM;
        u->pieces = np;
        size_t *nl = realloc(u->piece_len, cap * sizeof(*nl));
        if (nl == NULL)
            return SIMSYNC_ENOMEM;
        u->piece_len = nl;
        u->cappieces = cap;
    }
    copy = malloc(p->blob.len);
    if (copy == NULL)
        return SIMSYNC_ENOMEM;
    memcpy(copy, p->blob.data, p->blob.len);
    u->pieces[u->npieces] = copy;
    u->piece_len[u->npieces] = p->blob.len;
    u->npieces++;
    u->manifest_bytes += p->blob.len;
    return crypt_hash_update(&u->digest, p->blob.data, p->blob.len);
}

struct commit {
    struct upload *u;
    const Simsync__BackupEnd *end;
    const char *terminal_id;
    uint64_t now_ms;
};

static int
commit_fn(struct store_txn *txn, void *arg)
{
    struct commit *c = arg;
    struct upload *u = c->u;
    Simsync__GenerationRecord rec = SIMSYNC__GENERATION_RECORD__INIT;
    Simsync__GenerationInfo info = SIMSYNC__GENERATION_INFO__INIT;
    ProtobufCBinaryData *refs = NULL;
    uint8_t key[GEN_KEY_BYTES], *buf;
    struct latest l = {0};
    size_t len, nref = 0;
    int rc;

    /* Another terminal may have committed a generation meanwhile. */
    rc = hub_gen_each(txn, u->r.sub, latest_fn, &l);
    if (rc != SIMSYNC_OK)
        return rc;
    if (l.gen + 1 != u->gen)
        return SIMSYNC_ESTATE;
    /* Every chunk the manifest uses must be here. */
    refs = calloc(u->nrefs ? u->nrefs : 1, sizeof(*refs));
    if (refs == NULL)
        return SIMSYNC_ENOMEM;
    for (size_t i = 0; i < u->nrefs; i++) {
        uint8_t ck[SUB_BYTES + 32];
        const void *v;
        size_t vl;
        if (i > 0 && memcmp(u->refs + i * 32, u->refs + (i - 1) * 32, 32) == 0)
            continue;
        memcpy(ck, u->r.sub, SUB_BYTES);
        memcpy(ck + SUB_BYTES, u->refs + i * 32, 32);
        rc = store_get(txn, STORE_CHUNKS, ck, sizeof(ck), &v, &vl);
        if (rc != SIMSYNC_OK) {
            free(refs);
            return rc == SIMSYNC_ENOTFOUND ? SIMSYNC_EPROTO : rc;
        }
        refs[nref].data = u->refs + i * 32;
        refs[nref].len = 32;
        nref++;
    }
    info.gen = u->gen;
    info.created_ms = c->end->created_ms ? c->end->created_ms : c->now_ms;
    info.terminal_id = (char *)c->terminal_id;
    info.classes = c->end->classes;
    info.n_classes = c->end->n_classes;
    info.items = c->end->items;
    info.bytes = c->end->bytes;
    info.digest = c->end->digest;
    info.pieces = (uint32_t)u->npieces;
    info.manifest_bytes = u->manifest_bytes;
    rec.info = &info;
    rec.chunk_refs = refs;
    rec.n_chunk_refs = nref;
    rc = record_pack(&rec.base, &buf, &len);
    free(refs);
    if (rc != SIMSYNC_OK)
        return rc;
    gen_key(key, u->r.sub, u->gen, GEN_KIND_RECORD, 0);
    rc = store_put(txn, STORE_GENS, key, sizeof(key), buf, len);
    free(buf);
    for (size_t i = 0; rc == SIMSYNC_OK && i < u->npieces; i++) {
        gen_key(key, u->r.sub, u->gen, GEN_KIND_PIECE, (uint32_t)i);
        rc = store_put(txn, STORE_GENS, key, sizeof(key), u->pieces[i],
                       u->piece_len[i]);
    }
    return rc;
}

static int
on_end(struct upload *u, struct chan *ch, const Simsync__BackupEnd *e,
       const char *terminal_id)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__BackupComplete done = SIMSYNC__BACKUP_COMPLETE__INIT;
    uint8_t digest[32];
    struct commit c = {u, e, terminal_id, node_now_ms()};
    int rc;

    crypt_hash_final(&u->digest, digest, sizeof(digest));
    if (e->gen != u->gen || e->pieces != u->npieces || u->npieces == 0 ||
        e->digest.len != 32 || !crypt_equal(e->digest.data, digest, 32) ||
        e->n_classes > CLS_COUNT)
        return SIMSYNC_EPROTO;
    if (u->nrefs > 1)
        qsort(u->refs, u->nrefs, 32, cmp_id);
    rc = store_write(u->r.st, commit_fn, &c);
    if (rc != SIMSYNC_OK)
        return rc;
    done.gen = u->gen;
    done.items = e->items;
    done.bytes = e->bytes;
    done.digest.data = digest;
    done.digest.len = sizeof(digest);
    env.msg_case = SIMSYNC__ENVELOPE__MSG_BACKUP_COMPLETE;
    env.backup_complete = &done;
    return node_send_env(ch, &env);
}

int
hub_backup(struct simsync_node *n, struct chan *ch,
           const uint8_t sub[SUB_BYTES], const char *terminal_id,
           uint64_t *gen_out)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT, *in = NULL;
    Simsync__BackupReady ready = SIMSYNC__BACKUP_READY__INIT;
    struct upload u;
    struct latest l;
    uint64_t job;
    int rc, finished = 0;

    memset(&u, 0, sizeof(u));
    u.cur = &u.groups[0];
    u.sent = &u.groups[1];
    *gen_out = 0;
    u.r.st = n->st;
    memcpy(u.r.sub, sub, SUB_BYTES);
    crypt_hash_init(&u.digest, 32, NULL, 0);
    rc = node_recv_kind(ch, SIMSYNC__ENVELOPE__MSG_BACKUP_BEGIN, (void **)&in);
    if (rc == SIMSYNC_EPROTO)
        node_send_error(ch, rc, "expected backup begin");
    if (rc != SIMSYNC_OK)
        return rc;
    job = in->backup_begin->job;
    simsync__envelope__free_unpacked(in, NULL);
    in = NULL;
    rc = upload_claim(n, sub);
    if (rc != SIMSYNC_OK) {
        node_send_error(ch, rc, "another backup of this subscriber is still "
                                "running on the hub; try again later");
        return rc;
    }
    rc = latest_gen(n->st, sub, &l);
    if (rc != SIMSYNC_OK) {
        upload_release(n, sub);
        return rc;
    }
    u.gen = l.gen + 1;
    ready.gen = u.gen;
    ready.prev_digest.data = l.digest;
    ready.prev_digest.len = l.dlen;
    env.msg_case = SIMSYNC__ENVELOPE__MSG_BACKUP_READY;
    env.backup_ready = &ready;
    rc = node_send_env(ch, &env);
    while (rc == SIMSYNC_OK && !finished) {
        rc = node_recv_env(ch, (void **)&in);
        if (rc != SIMSYNC_OK)
            break;
        switch (in->msg_case) {
        case SIMSYNC__ENVELOPE__MSG_CHUNK_QUERY:
            /* The answer sees every chunk received so far: those stored
             * and those of the group (committed before the manifest is
             * checked, so a query need not wait for the disk). */
            rc = on_query(&u, ch, in->chunk_query);
            break;
        case SIMSYNC__ENVELOPE__MSG_CHUNK:
            /* Only chunks this backup asked about, committed in groups. */
            if (in->chunk->id.len != 32 || in->chunk->blob.len == 0 ||
                in->chunk->blob.len > CHUNK_BLOB_MAX ||
                !wanted(&u, in->chunk->id.data))
                rc = SIMSYNC_EPROTO;
            else
                rc = group_add(&u, &in);
            break;
        case SIMSYNC__ENVELOPE__MSG_PIECE:
            rc = group_sync(&u);
            if (rc == SIMSYNC_OK)
                rc = on_piece(&u, in->piece);
            break;
        case SIMSYNC__ENVELOPE__MSG_BACKUP_END:
            rc = group_sync(&u);
            if (rc == SIMSYNC_OK)
                rc = on_end(&u, ch, in->backup_end, terminal_id);
            finished = rc == SIMSYNC_OK;
            break;
        default:
            rc = SIMSYNC_EPROTO;
        }
        simsync__envelope__free_unpacked(in, NULL);
        in = NULL;
    }
    /* Keep what arrived whole, whatever ended the upload. */
    {
        int frc = group_sync(&u);
        if (rc == SIMSYNC_OK)
            rc = frc;
    }
    if (rc == SIMSYNC_EPROTO)
        node_send_error(ch, rc, "malformed or incomplete backup");
    else if (rc == SIMSYNC_ESTATE)
        node_send_error(ch, rc, "another generation was committed meanwhile");
    else if (rc == SIMSYNC_ENOSPC)
        node_send_error(ch, rc, "the hub has no space left");
    else if (rc == SIMSYNC_EIO || rc == SIMSYNC_ENOMEM)
        node_send_error(ch, rc, "the hub could not store the backup");
    if (rc == SIMSYNC_OK)
        *gen_out = u.gen;
    /* The scheduler writes the history of the backups it asked for. */
    if (job == 0) {
        if (rc == SIMSYNC_OK)
            hub_event(n->st, sub, terminal_id, "completed", u.gen, 0, 0,
                      "generation %llu (backup started on the terminal)",
                      (unsigned long long)u.gen);
        else
            hub_event(n->st, sub, terminal_id, "failed", 0, 0, 0,
                      "backup started on the terminal: %s",
                      simsync_strerror(rc));
    }
    upload_free(&u);
    upload_release(n, sub);
    return rc;
}

/* ------------------------------------------------------------ listing */

struct list_acc {
    Simsync__GenerationInfo **v;
    size_t n, cap;
};

static int
list_fn(Simsync__GenerationRecord *rec, void *arg)
{
    struct list_acc *a = arg;
    uint8_t *buf;
    size_t len;

    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        void *nv = realloc(a->v, cap * sizeof(*a->v));
        if (nv == NULL)
            return SIMSYNC_ENOMEM;
        a->v = nv;
        a->cap = cap;
    }
    /* rec is freed by the caller: keep our own copy of the info. */
    if (record_pack(&rec->info->base, &buf, &len) != SIMSYNC_OK)
        return SIMSYNC_ENOMEM;
    a->v[a->n] = simsync__generation_info__unpack(NULL, len, buf);
    free(buf);
    if (a->v[a->n] == NULL)
        return SIMSYNC_ENOMEM;
    a->n++;
    return SIMSYNC_OK;
}

int
hub_generations(struct simsync_node *n, struct chan *ch,
                const uint8_t sub[SUB_BYTES])
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__GenerationList list = SIMSYNC__GENERATION_LIST__INIT;
    struct list_acc a = {0};
    struct store_txn *txn;
    int rc = store_txn_begin(n->st, 1, &txn);

    if (rc != SIMSYNC_OK)
        return rc;
    rc = hub_gen_each(txn, sub, list_fn, &a);
    store_txn_abort(txn);
    if (rc == SIMSYNC_OK) {
        list.gens = a.v;
        list.n_gens = a.n;
        env.msg_case = SIMSYNC__ENVELOPE__MSG_GENERATIONS;
        env.generations = &list;
        rc = node_send_env(ch, &env);
    }
    for (size_t i = 0; i < a.n; i++)
        simsync__generation_info__free_unpacked(a.v[i], NULL);
    free(a.v);
    return rc;
}

/* ------------------------------------------------------------ fetching */

static int
send_pieces(struct simsync_node *n, struct chan *ch,
            const uint8_t sub[SUB_BYTES], uint64_t gen, uint32_t *count)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__ManifestPiece p = SIMSYNC__MANIFEST_PIECE__INIT;
    uint8_t key[GEN_KEY_BYTES];

    *count = 0;
    for (uint32_t i = 0;; i++) {
        struct store_txn *txn;
        const void *v;
        size_t vl;
        uint8_t *copy;
        int rc = store_txn_begin(n->st, 1, &txn);
        if (rc != SIMSYNC_OK)
            return rc;
        gen_key(key, sub, gen, GEN_KIND_PIECE, i);
        rc = store_get(txn, STORE_GENS, key, sizeof(key), &v, &vl);
        if (rc != SIMSYNC_OK) {
            store_txn_abort(txn);
            return rc == SIMSYNC_ENOTFOUND ? SIMSYNC_OK : rc;
        }
        copy = malloc(vl ? vl : 1);
        if (copy != NULL)
            memcpy(copy, v, vl);
        store_txn_abort(txn);
        if (copy == NULL)
            return SIMSYNC_ENOMEM;
        p.index = i;
        p.blob.data = copy;
        p.blob.len = vl;
        env.msg_case = SIMSYNC__ENVELOPE__MSG_PIECE;
        env.piece = &p;
        rc = node_send_env(ch, &env);
        free(copy);
        if (rc != SIMSYNC_OK)
            return rc;
        (*count)++;
    }
}

/* One ChunkData envelope for chunk `id`, packed straight from the store's
 * memory (the read transaction ends before anything is sent) into *buf,
 * which grows as needed and is reused, and in *tail how many bytes at its
 * end are the sealed blob (frame_sealed_tail). An id the hub does not have
 * gets an empty blob. */
static int
pack_chunk(struct store *st, const uint8_t sub[SUB_BYTES],
           const ProtobufCBinaryData *id, uint8_t **buf, size_t *cap,
           size_t *len, size_t *tail)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__ChunkData cd = SIMSYNC__CHUNK_DATA__INIT;
    uint8_t key[SUB_BYTES + 32];
    struct store_txn *txn;
    const void *v = NULL;
    size_t vl = 0, need;
    int rc = store_txn_begin(st, 1, &txn);

    if (rc != SIMSYNC_OK)
        return rc;
    memcpy(key, sub, SUB_BYTES);
    memcpy(key + SUB_BYTES, id->data, 32);
    rc = store_get(txn, STORE_CHUNKS, key, sizeof(key), &v, &vl);
    if (rc == SIMSYNC_ENOTFOUND) {
        rc = SIMSYNC_OK;
        vl = 0;
    }
    if (rc == SIMSYNC_OK) {
        cd.id = *id;
        cd.blob.data = (uint8_t *)v;
        cd.blob.len = vl;
        env.msg_case = SIMSYNC__ENVELOPE__MSG_CHUNK;
        env.chunk = &cd;
        need = simsync__envelope__get_packed_size(&env);
        if (need > *cap) {
            uint8_t *nb = realloc(*buf, need);
            if (nb == NULL)
                rc = SIMSYNC_ENOMEM;
            else {
                *buf = nb;
                *cap = need;
            }
        }
        if (rc == SIMSYNC_OK) {
            *len = simsync__envelope__pack(&env, *buf);
            *tail = frame_sealed_tail(*buf, *len, v, vl);
        }
    }
    store_txn_abort(txn);
    return rc;
}

static int
send_chunks(struct simsync_node *n, struct chan *ch,
            const uint8_t sub[SUB_BYTES], const Simsync__FetchRequest *f,
            uint32_t *count)
{
    uint8_t *buf = NULL;
    size_t cap = 0, len = 0, tail = 0;
    int rc = SIMSYNC_OK;

    *count = 0;
    if (f->n_chunk_ids > QUERY_MAX)
        return SIMSYNC_EPROTO;
    for (size_t i = 0; rc == SIMSYNC_OK && i < f->n_chunk_ids; i++) {
        if (f->chunk_ids[i].len != 32) {
            rc = SIMSYNC_EPROTO;
            break;
        }
        rc = pack_chunk(n->st, sub, &f->chunk_ids[i], &buf, &cap, &len, &tail);
        if (rc == SIMSYNC_OK)
            rc = chan_send_sealed(ch, buf, len, tail);
        if (rc == SIMSYNC_OK)
            (*count)++;
    }
    free(buf);
    return rc;
}

int
hub_fetch(struct simsync_node *n, struct chan *ch, const uint8_t sub[SUB_BYTES])
{
    for (;;) {
        Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT, *in = NULL;
        Simsync__FetchDone done = SIMSYNC__FETCH_DONE__INIT;
        int rc = node_recv_env(ch, (void **)&in);

        if (rc == SIMSYNC_ECLOSED)
            return SIMSYNC_OK; /* the terminal has what it wanted */
        if (rc != SIMSYNC_OK)
            return rc;
        if (in->msg_case != SIMSYNC__ENVELOPE__MSG_FETCH) {
            simsync__envelope__free_unpacked(in, NULL);
            node_send_error(ch, SIMSYNC_EPROTO, "expected a fetch request");
            return SIMSYNC_EPROTO;
        }
        if (in->fetch->manifest)
            rc = send_pieces(n, ch, sub, in->fetch->gen, &done.count);
        else
            rc = send_chunks(n, ch, sub, in->fetch, &done.count);
        simsync__envelope__free_unpacked(in, NULL);
        if (rc == SIMSYNC_EPROTO)
            node_send_error(ch, rc, "malformed fetch request");
        if (rc != SIMSYNC_OK)
            return rc;
        env.msg_case = SIMSYNC__ENVELOPE__MSG_FETCH_DONE;
        env.fetch_done = &done;
        rc = node_send_env(ch, &env);
        if (rc != SIMSYNC_OK)
            return rc;
    }
}

int
simsync_hub_generations(struct simsync_node *n, const char *subscriber,
                        struct simsync_generation **out, size_t *count)
{
    uint8_t sub[SUB_BYTES];
    struct list_acc a = {0};
    struct store_txn *txn;
    struct simsync_generation *v;
    int rc = hub_admin_sub(n, subscriber, sub);

    *out = NULL;
    *count = 0;
    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_txn_begin(n->st, 1, &txn);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = hub_gen_each(txn, sub, list_fn, &a);
    store_txn_abort(txn);
    v = rc == SIMSYNC_OK ? calloc(a.n + 1, sizeof(*v)) : NULL;
    if (rc == SIMSYNC_OK && v == NULL)
        rc = SIMSYNC_ENOMEM;
    for (size_t i = 0; rc == SIMSYNC_OK && i < a.n; i++) {
        const Simsync__GenerationInfo *g = a.v[i];
        v[i].gen = g->gen;
        v[i].created_ms = g->created_ms;
        v[i].items = g->items;
        v[i].bytes = g->bytes;
        v[i].manifest_bytes = g->manifest_bytes;
        v[i].forgotten = g->forgotten;
        snprintf(v[i].terminal_id, sizeof(v[i].terminal_id), "%s",
                 g->terminal_id);
        for (size_t c = 0; c < g->n_classes; c++)
            if (g->classes[c] < CLS_COUNT)
                v[i].classes |= 1u << g->classes[c];
    }
    for (size_t i = 0; i < a.n; i++)
        simsync__generation_info__free_unpacked(a.v[i], NULL);
    free(a.v);
    if (rc != SIMSYNC_OK) {
        free(v);
        return rc;
    }
    *out = v;
    *count = a.n;
    return SIMSYNC_OK;
}
