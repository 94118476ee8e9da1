/* session.c -- the sync protocol as a state machine. See session.h. */
#include <stdlib.h>
#include <string.h>

#include "crypt.h"
#include "frame.h"
#include "pack.h"
#include "pbcheck.h"
#include "session.h"
#include "utf8.h"
#include "vv.h"

_Static_assert(VV_MAX_ENTRIES == 4096, "session_start_why names 4096");
_Static_assert(PACK_CHANGES_MAX == SESSION_BATCH_ITEMS,
               "a packed batch holds what a plain one may");

enum phase_kind { PH_SEND, PH_RECV };

enum state {
    ST_IDLE,        /* phase not started */
    ST_WAIT_KNOW,   /* sender: waiting for the receiver's knowledge */
    ST_WAIT_REPLY,  /* sender: batch sent, waiting for want or ack */
    ST_WAIT_COMPL,  /* sender: done sent, waiting for complete */
    ST_WAIT_BATCH,  /* receiver: waiting for a batch or done */
    ST_WAIT_CHUNKS, /* receiver: want sent, waiting for chunk data */
    ST_PHASE_DONE,
    ST_FAILED
};

struct entry {
    int cls;
    struct dot dot;
    uint8_t id[ITEM_ID_BYTES];
};

struct outq {
    uint8_t *buf;
    size_t len;
    size_t sealed; /* bytes at the end that may go sealed (frame.h) */
    struct outq *next;
};

struct session {
    struct session_cfg cfg;
    int peer_failed;     /* ended by the peer's Error frame */
    char peer_text[160]; /* its text, printable ASCII only */
    enum phase_kind phases[2];
    int nphases; /* 1 or 2 (see enum session_dirs) */
    int phase;   /* 0, 1, or nphases when finished */
    enum state st;
    struct outq *head, *tail;
    struct session_stats stats;

    /* Running stream accounting of the current phase. */
    uint64_t items, bytes;
    struct crypt_hash_state digest;
    uint8_t done_digest[32]; /* sender: digest announced in Done */

    /* Sender. */
    struct entry *entries;
    size_t nentries, pos;
    uint64_t left[CLS_COUNT]; /* entries at and after pos, per class */
    struct vv sender_k[CLS_COUNT];
    uint32_t stream_classes;
    Simsync__ChangeBatch *cur; /* last batch sent (owned) */
    uint64_t seq;

    /* Receiver. */
    Simsync__Envelope *batch; /* batch being received (owned) */
    uint8_t *pending;         /* wanted chunk ids not yet arrived */
    size_t npending;
    uint8_t *gone; /* chunk ids the sender could not serve */
    size_t ngone;

    /* Packed sessions: this side's compressor (send phase) and
     * decompressor (receive phase), made when first needed. */
    struct pack_stream *tx, *rx;
    const char *why; /* what a failed packed batch did wrong, or NULL */
};

static int
enqueue(struct session *s, const Simsync__Envelope *env)
{
    struct outq *q = malloc(sizeof(*q));
    int rc;

    if (q == NULL)
        return SIMSYNC_ENOMEM;
    rc = record_pack(&env->base, &q->buf, &q->len);
    if (rc != SIMSYNC_OK) {
        free(q);
        return rc;
    }
    q->sealed = env->msg_case == SIMSYNC__ENVELOPE__MSG_CHUNK
                    ? frame_sealed_tail(q->buf, q->len, env->chunk->blob.data,
                                        env->chunk->blob.len)
                    : 0;
    if (q->len > FRAME_MAX_PLAINTEXT) {
        free(q->buf);
        free(q);
        return SIMSYNC_ETOOBIG;
    }
    q->next = NULL;
    if (s->tail)
        s->tail->next = q;
    else
        s->head = q;
    s->tail = q;
    return SIMSYNC_OK;
}

int
session_error_frame(int code, const char *text, uint8_t **frame, size_t *len)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__Error err = SIMSYNC__ERROR__INIT;

    err.code = (uint32_t)(code < 0 ? -code : code);
    err.text = (char *)text;
    env.msg_case = SIMSYNC__ENVELOPE__MSG_ERROR;
    env.error = &err;
    return record_pack(&env.base, frame, len);
}

static int
fail(struct session *s, int code, const char *text)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__Error err = SIMSYNC__ERROR__INIT;

    if (s->st != ST_FAILED) {
        err.code = (uint32_t)(-code);
        err.text = (char *)text;
        env.msg_case = SIMSYNC__ENVELOPE__MSG_ERROR;
        env.error = &err;
        (void)enqueue(s, &env);
        s->st = ST_FAILED;
    }
    return code;
}

static void
digest_change(struct session *s, const Simsync__Change *c)
{
    uint8_t b[16];
    uint8_t cls = (uint8_t)c->cls;

    crypt_hash_update(&s->digest, &cls, 1);
    crypt_hash_update(&s->digest, c->item_id.data, c->item_id.len);
    for (size_t i = 0; i < c->version->n_dots; i++) {
        store_be64(b, c->version->dots[i]->replica);
        store_be64(b + 8, c->version->dots[i]->counter);
        crypt_hash_update(&s->digest, b, sizeof(b));
    }
}

/* Content bytes a change carries itself (chunks are counted as sent):
 * the sealed inline body, or in a packed session its plaintext size (the
 * receiver seals it again, and its blob need not be as long). */
static uint64_t
change_bytes(const struct session *s, const Simsync__Change *c)
{
    if (s->cfg.packed)
        return c->version->inline_body.len > 0 ? c->version->size : 0;
    return c->version->inline_body.len;
}

static void
stream_reset(struct session *s)
{
    s->items = s->bytes = 0;
    crypt_hash_init(&s->digest, 32, NULL, 0);
}

/* ------------------------------------------------------------ knowledge */

static int
knowledge_to_pb(Simsync__Knowledge *k, const struct vv *vvs, uint32_t classes,
                Simsync__ClassKnowledge *ck, Simsync__ClassKnowledge **ckp,
                Simsync__VersionVector *tmp)
{
    size_t n = 0;

    simsync__knowledge__init(k);
    for (int c = 0; c < CLS_COUNT; c++) {
        if (!(classes & (1u << c)))
            continue;
        simsync__class_knowledge__init(&ck[n]);
        ck[n].cls = (uint32_t)c;
        int rc = vv_to_pb(&tmp[n], &vvs[c]);
        if (rc != SIMSYNC_OK)
            return rc;
        ck[n].entries = tmp[n].entries;
        ck[n].n_entries = tmp[n].n_entries;
        ckp[n] = &ck[n];
        n++;
    }
    k->classes = ckp;
    k->n_classes = n;
    return SIMSYNC_OK;
}

static void
knowledge_pb_free(Simsync__VersionVector *tmp)
{
    for (int c = 0; c < CLS_COUNT; c++)
        pb_vv_free(&tmp[c]);
}

/* Parse a Knowledge message into per-class vectors; classes outside the
 * session's set are ignored. *mask gets the classes present. */
static int
knowledge_from_pb(const Simsync__Knowledge *k, struct vv *vvs, uint32_t allow,
                  uint32_t *mask)
{
    *mask = 0;
    if (k == NULL)
        return SIMSYNC_EPROTO;
    if (k->n_classes > CLS_COUNT)
        return SIMSYNC_EPROTO;
    for (size_t i = 0; i < k->n_classes; i++) {
        uint32_t c = k->classes[i]->cls;
        if (c >= CLS_COUNT || (*mask & (1u << c)))
            return SIMSYNC_EPROTO;
        if (!(allow & (1u << c)))
            continue;
        int rc = vv_from_pb_dots(&vvs[c], k->classes[i]->entries,
                                 k->classes[i]->n_entries);
        if (rc != SIMSYNC_OK)
            return rc;
        *mask |= 1u << c;
    }
    return SIMSYNC_OK;
}

/* ------------------------------------------------------------ receiver */

static int
recv_start(struct session *s)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__Knowledge k;
    Simsync__ClassKnowledge ck[CLS_COUNT], *ckp[CLS_COUNT];
    Simsync__VersionVector tmp[CLS_COUNT];
    struct vv vvs[CLS_COUNT], resume = VV_INIT;
    struct store_txn *txn;
    int rc;

    memset(tmp, 0, sizeof(tmp));
    for (int c = 0; c < CLS_COUNT; c++)
        vvs[c] = (struct vv)VV_INIT;
    rc = store_txn_begin(s->cfg.r->st, 1, &txn);
    for (int c = 0; rc == SIMSYNC_OK && c < CLS_COUNT; c++) {
        if (!(s->cfg.classes & (1u << c)))
            continue;
        rc = journal_knowledge_get(txn, s->cfg.r->sub, c, 0, &vvs[c]);
        if (rc == SIMSYNC_OK)
            rc = journal_knowledge_get(txn, s->cfg.r->sub, c, s->cfg.peer,
                                       &resume);
        if (rc == SIMSYNC_OK)
            rc = vv_merge(&vvs[c], &resume);
    }
    store_txn_abort(txn);
    if (rc == SIMSYNC_OK)
        rc = knowledge_to_pb(&k, vvs, s->cfg.classes, ck, ckp, tmp);
    if (rc == SIMSYNC_OK) {
        env.msg_case = SIMSYNC__ENVELOPE__MSG_KNOWLEDGE;
        env.knowledge = &k;
        rc = enqueue(s, &env);
    }
    knowledge_pb_free(tmp);
    for (int c = 0; c < CLS_COUNT; c++)
        vv_free(&vvs[c]);
    vv_free(&resume);
    stream_reset(s);
    s->st = ST_WAIT_BATCH;
    return rc;
}

static int
recv_apply(struct session *s)
{
    Simsync__ChangeBatch *b = s->batch->batch;
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__BatchAck ack = SIMSYNC__BATCH_ACK__INIT;
    Simsync__Change **keep = b->changes;
    size_t nkeep = b->n_changes;
    uint64_t left[CLS_COUNT] = {0}; /* what the peer still has for us */
    int rc;

    if (s->ngone > 0) {
        /* Drop changes whose content the sender no longer has: a newer
         * version of the item will come in a later stream. */
        keep = malloc((b->n_changes + 1) * sizeof(*keep));
        if (keep == NULL)
            return SIMSYNC_ENOMEM;
        nkeep = 0;
        for (size_t i = 0; i < b->n_changes; i++) {
            int drop = 0;
            const Simsync__Version *v = b->changes[i]->version;
            for (size_t j = 0; !drop && j < v->n_chunks; j++)
                for (size_t g = 0; !drop && g < s->ngone; g++)
                    drop = memcmp(v->chunks[j]->id.data,
                                  s->gone + g * CHUNK_ID_BYTES,
                                  CHUNK_ID_BYTES) == 0;
            if (!drop)
                keep[nkeep++] = b->changes[i];
        }
    }
    for (size_t i = 0; i < b->n_remaining && i < CLS_COUNT; i++)
        left[i] = b->remaining[i];
    rc = replica_apply_batch(s->cfg.r, keep, nkeep, s->cfg.peer, left,
                             &s->stats.apply);
    if (keep != b->changes)
        free(keep);
    free(s->gone);
    s->gone = NULL;
    s->ngone = 0;
    if (rc != SIMSYNC_OK)
        return rc;
    s->stats.batches_recv++;
    ack.seq = b->seq;
    env.msg_case = SIMSYNC__ENVELOPE__MSG_ACK;
    env.ack = &ack;
    simsync__envelope__free_unpacked(s->batch, NULL);
    s->batch = NULL;
    s->st = ST_WAIT_BATCH;
    return enqueue(s, &env);
}

static int recv_batch(struct session *s, Simsync__Envelope *env);

/* A packed batch: decompress and rebuild it (sealed under this node's
 * keys), then take it as a ChangeBatch. Nothing is applied from a batch
 * that does not decode whole. */
static int
recv_packed(struct session *s, const Simsync__PackedBatch *p)
{
    Simsync__Envelope *env = NULL;
    int rc = SIMSYNC_OK;

    if (s->rx == NULL)
        rc = pack_rx_new(&s->rx);
    if (rc == SIMSYNC_OK)
        rc = pack_decode(s->rx, &s->cfg.r->keys, p->z.data, p->z.len, p->size,
                         &env, &s->why);
    if (rc != SIMSYNC_OK)
        return rc;
    s->stats.batches_packed++;
    return recv_batch(s, env);
}

static int
recv_batch(struct session *s, Simsync__Envelope *env)
{
    Simsync__ChangeBatch *b = env->batch;
    Simsync__Envelope out = SIMSYNC__ENVELOPE__INIT;
    Simsync__ChunkWant want = SIMSYNC__CHUNK_WANT__INIT;
    ProtobufCBinaryData *ids = NULL;
    uint8_t *missing;
    size_t nmissing;
    int rc;

    /* The batch is ours from here on, whatever happens. */
    if (s->batch != NULL)
        simsync__envelope__free_unpacked(s->batch, NULL);
    s->batch = env;
    if (b->n_changes == 0 || b->n_changes > SESSION_BATCH_ITEMS)
        return SIMSYNC_EPROTO;
    for (size_t i = 0; i < b->n_changes; i++) {
        const Simsync__Change *c = b->changes[i];
        if (c->cls >= CLS_COUNT || !(s->cfg.classes & (1u << c->cls)) ||
            c->item_id.len != ITEM_ID_BYTES || c->version == NULL ||
            c->version->n_dots == 0 || c->version->n_dots > VV_MAX_ENTRIES ||
            c->entry == NULL || c->entry->counter == 0)
            return SIMSYNC_EPROTO;
        for (size_t j = 0; j < c->version->n_chunks; j++)
            if (c->version->chunks[j]->id.len != CHUNK_ID_BYTES)
                return SIMSYNC_EPROTO;
        digest_change(s, c);
        s->items++;
        s->bytes += change_bytes(s, c);
        s->stats.recv_bytes += change_bytes(s, c);
    }
    s->stats.recv_items += b->n_changes;
    rc = replica_missing_chunks(s->cfg.r, b->changes, b->n_changes, &missing,
                                &nmissing);
    if (rc != SIMSYNC_OK)
        return rc;
    free(s->pending);
    s->pending = missing;
    s->npending = nmissing;
    if (nmissing == 0)
        return recv_apply(s);
    ids = calloc(nmissing, sizeof(*ids));
    if (ids == NULL)
        return SIMSYNC_ENOMEM;
    for (size_t i = 0; i < nmissing; i++) {
        ids[i].data = missing + i * CHUNK_ID_BYTES;
        ids[i].len = CHUNK_ID_BYTES;
    }
    want.seq = b->seq;
    want.ids = ids;
    want.n_ids = nmissing;
    out.msg_case = SIMSYNC__ENVELOPE__MSG_WANT;
    out.want = &want;
    rc = enqueue(s, &out);
    free(ids);
    s->st = ST_WAIT_CHUNKS;
    return rc;
}

static int
recv_chunk(struct session *s, const Simsync__ChunkData *cd)
{
    size_t i;
    int rc = SIMSYNC_OK;

    if (cd->id.len != CHUNK_ID_BYTES)
        return SIMSYNC_EPROTO;
    for (i = 0; i < s->npending; i++)
        if (memcmp(s->pending + i * CHUNK_ID_BYTES, cd->id.data,
                   CHUNK_ID_BYTES) == 0)
            break;
    if (i == s->npending)
        return SIMSYNC_EPROTO; /* not wanted, or sent twice */
    if (cd->blob.len == 0) {
        uint8_t *g = realloc(s->gone, (s->ngone + 1) * CHUNK_ID_BYTES);
        if (g == NULL)
            return SIMSYNC_ENOMEM;
        s->gone = g;
        memcpy(g + s->ngone * CHUNK_ID_BYTES, cd->id.data, CHUNK_ID_BYTES);
        s->ngone++;
    } else {
        rc = replica_put_chunk(s->cfg.r, cd->id.data, cd->blob.data,
                               cd->blob.len);
        if (rc != SIMSYNC_OK)
            return rc;
        s->bytes += cd->blob.len;
        s->stats.chunks_recv++;
    }
    s->stats.recv_bytes += cd->blob.len;
    memmove(s->pending + i * CHUNK_ID_BYTES,
            s->pending + (i + 1) * CHUNK_ID_BYTES,
            (s->npending - i - 1) * CHUNK_ID_BYTES);
    s->npending--;
    if (s->npending == 0)
        return recv_apply(s);
    return SIMSYNC_OK;
}

static int next_phase(struct session *s);

static int
recv_done(struct session *s, const Simsync__Done *d)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__Complete c = SIMSYNC__COMPLETE__INIT;
    struct vv vvs[CLS_COUNT], hz[CLS_COUNT];
    uint8_t digest[32];
    uint32_t mask = 0, hmask = 0;
    struct store_txn *txn = NULL;
    int rc;

    crypt_hash_final(&s->digest, digest, sizeof(digest));
    if (d->items != s->items || d->bytes != s->bytes ||
        d->digest.len != sizeof(digest) ||
        !crypt_equal(d->digest.data, digest, sizeof(digest)))
        return SIMSYNC_EPROTO;
    for (int i = 0; i < CLS_COUNT; i++)
        vvs[i] = hz[i] = (struct vv)VV_INIT;
    rc = knowledge_from_pb(d->knowledge, vvs, s->cfg.classes, &mask);
    /* Only a trusted node takes a horizon (from its hub); a hub computes
     * its own from the terminals' acknowledgements. */
    if (rc == SIMSYNC_OK && d->horizon != NULL && s->cfg.r->trusted)
        rc = knowledge_from_pb(d->horizon, hz, s->cfg.classes, &hmask);
    if (rc == SIMSYNC_OK)
        rc = store_txn_begin(s->cfg.r->st, 0, &txn);
    for (int cls = 0; rc == SIMSYNC_OK && cls < CLS_COUNT; cls++) {
        uint64_t purged = 0;
        if (!(mask & (1u << cls)))
            continue;
        rc = journal_knowledge_raise(txn, s->cfg.r->sub, cls, 0, &vvs[cls]);
        if (rc == SIMSYNC_OK)
            rc = journal_knowledge_drop(txn, s->cfg.r->sub, cls, s->cfg.peer);
        if (rc == SIMSYNC_OK && (hmask & (1u << cls)))
            rc = replica_purge(s->cfg.r, txn, cls, &hz[cls], &purged);
        s->stats.purged += purged;
    }
    if (rc == SIMSYNC_OK && s->cfg.r->trusted)
        rc = journal_pending_down_put(txn, (const uint64_t[CLS_COUNT]){0});
    if (txn != NULL) {
        if (rc == SIMSYNC_OK)
            rc = store_txn_commit(txn);
        else
            store_txn_abort(txn);
    }
    for (int i = 0; i < CLS_COUNT; i++) {
        vv_free(&vvs[i]);
        vv_free(&hz[i]);
    }
    if (rc != SIMSYNC_OK)
        return rc;
    c.items = s->items;
    c.bytes = s->bytes;
    c.digest.data = digest;
    c.digest.len = sizeof(digest);
    env.msg_case = SIMSYNC__ENVELOPE__MSG_COMPLETE;
    env.complete = &c;
    rc = enqueue(s, &env);
    if (rc == SIMSYNC_OK)
        rc = next_phase(s);
    return rc;
}

/* ------------------------------------------------------------ sender */

struct collect {
    struct session *s;
    int cls;
};

static int
collect_entry(const struct dot *d, const uint8_t id[ITEM_ID_BYTES], void *arg)
{
    struct collect *c = arg;
    struct session *s = c->s;

    if ((s->nentries & (s->nentries - 1)) == 0 || s->nentries == 0) {
        size_t cap = s->nentries ? s->nentries * 2 : 64;
        struct entry *e = realloc(s->entries, cap * sizeof(*e));
        if (e == NULL)
            return SIMSYNC_ENOMEM;
        s->entries = e;
    }
    s->entries[s->nentries].cls = c->cls;
    s->entries[s->nentries].dot = *d;
    memcpy(s->entries[s->nentries].id, id, ITEM_ID_BYTES);
    s->nentries++;
    s->left[c->cls]++;
    return 0;
}

static int send_next(struct session *s);

static int
send_start(struct session *s, const Simsync__Knowledge *k)
{
    struct vv above[CLS_COUNT];
    struct store_txn *txn;
    uint32_t mask;
    int rc;

    for (int c = 0; c < CLS_COUNT; c++)
        above[c] = (struct vv)VV_INIT;
    rc = knowledge_from_pb(k, above, s->cfg.classes, &mask);
    if (rc == SIMSYNC_OK)
        rc = store_txn_begin(s->cfg.r->st, 1, &txn);
    if (rc != SIMSYNC_OK)
        goto out;
    /* One read snapshot: the entries and the knowledge they complete. */
    free(s->entries);
    s->entries = NULL;
    s->nentries = s->pos = 0;
    memset(s->left, 0, sizeof(s->left));
    s->stream_classes = mask;
    for (int c = 0; rc == SIMSYNC_OK && c < CLS_COUNT; c++) {
        struct collect col = {s, c};
        if (!(mask & (1u << c)))
            continue;
        rc = journal_knowledge_get(txn, s->cfg.r->sub, c, 0, &s->sender_k[c]);
        if (rc == SIMSYNC_OK)
            rc = journal_scan(txn, s->cfg.r->sub, c, &above[c], collect_entry,
                              &col);
    }
    store_txn_abort(txn);
    stream_reset(s);
    if (rc == SIMSYNC_OK)
        rc = send_next(s);
out:
    for (int c = 0; c < CLS_COUNT; c++)
        vv_free(&above[c]);
    return rc;
}

static void
free_cur(struct session *s)
{
    if (s->cur != NULL)
        simsync__change_batch__free_unpacked(s->cur, NULL);
    s->cur = NULL;
}

static int
send_done(struct session *s)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__Done d = SIMSYNC__DONE__INIT;
    Simsync__Knowledge k;
    Simsync__ClassKnowledge ck[CLS_COUNT], *ckp[CLS_COUNT];
    Simsync__VersionVector tmp[CLS_COUNT];
    Simsync__Knowledge hz;
    Simsync__ClassKnowledge hck[CLS_COUNT], *hckp[CLS_COUNT];
    Simsync__VersionVector htmp[CLS_COUNT];
    uint8_t digest[32];
    int rc;

    memset(tmp, 0, sizeof(tmp));
    memset(htmp, 0, sizeof(htmp));
    crypt_hash_final(&s->digest, digest, sizeof(digest));
    rc = knowledge_to_pb(&k, s->sender_k, s->stream_classes, ck, ckp, tmp);
    if (rc == SIMSYNC_OK && s->cfg.horizon != NULL) {
        rc = knowledge_to_pb(&hz, s->cfg.horizon, s->stream_classes, hck, hckp,
                             htmp);
        d.horizon = &hz;
    }
    d.items = s->items;
    d.bytes = s->bytes;
    d.digest.data = digest;
    d.digest.len = sizeof(digest);
    d.knowledge = &k;
    env.msg_case = SIMSYNC__ENVELOPE__MSG_DONE;
    env.done = &d;
    if (rc == SIMSYNC_OK)
        rc = enqueue(s, &env);
    knowledge_pb_free(tmp);
    knowledge_pb_free(htmp);
    memcpy(s->done_digest, digest, sizeof(digest));
    s->st = ST_WAIT_COMPL;
    return rc;
}

/* Queue batch b in the packed form: the next piece of this side's stream. */
static int
enqueue_packed(struct session *s, const Simsync__ChangeBatch *b)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__PackedBatch pb = SIMSYNC__PACKED_BATCH__INIT;
    uint8_t *z = NULL;
    size_t zlen = 0;
    uint64_t size = 0;
    int rc = SIMSYNC_OK;

    if (s->tx == NULL)
        rc = pack_tx_new(&s->tx);
    if (rc == SIMSYNC_OK)
        rc = pack_encode(s->tx, &s->cfg.r->keys, b, &z, &zlen, &size);
    if (rc != SIMSYNC_OK)
        return rc;
    pb.size = size;
    pb.z.data = z;
    pb.z.len = zlen;
    env.msg_case = SIMSYNC__ENVELOPE__MSG_PACKED;
    env.packed = &pb;
    rc = enqueue(s, &env);
    free(z);
    if (rc == SIMSYNC_OK)
        s->stats.batches_packed++;
    return rc;
}

/* Build the next batch from the entry list, in a short read transaction. */
static int
send_next(struct session *s)
{
    Simsync__ChangeBatch b = SIMSYNC__CHANGE_BATCH__INIT;
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__Change *chs[SESSION_BATCH_ITEMS], chv[SESSION_BATCH_ITEMS];
    Simsync__Dot dotv[SESSION_BATCH_ITEMS];
    Simsync__ItemRecord *recs[SESSION_BATCH_ITEMS];
    struct store_txn *txn;
    size_t n = 0, bytes = 0, chunk_bytes = 0, nrecs = 0, vsize, plain = 0, pl;
    size_t chunk_cap = s->cfg.batch_bytes > 0 &&
                               s->cfg.batch_bytes < SESSION_BATCH_CHUNK_BYTES
                           ? (size_t)s->cfg.batch_bytes
                           : SESSION_BATCH_CHUNK_BYTES;
    int full = 0;
    uint8_t *packed;
    size_t plen;
    int rc;

    free_cur(s);
    if (s->pos >= s->nentries)
        return send_done(s);
    rc = store_txn_begin(s->cfg.r->st, 1, &txn);
    if (rc != SIMSYNC_OK)
        return rc;
    for (size_t i = 0; i < SESSION_BATCH_ITEMS; i++)
        simsync__dot__init(&dotv[i]);
    while (s->pos < s->nentries && n < SESSION_BATCH_ITEMS &&
           nrecs < SESSION_BATCH_ITEMS && bytes < SESSION_BATCH_BYTES &&
           chunk_bytes < chunk_cap &&
           (s->cfg.batch_bytes == 0 || bytes + chunk_bytes < chunk_cap)) {
        const struct entry *e = &s->entries[s->pos];
        Simsync__ItemRecord *rec = NULL;
        rc = item_get(txn, s->cfg.r->sub, e->cls, e->id, &rec);
        if (rc == SIMSYNC_ENOTFOUND) {
            s->left[s->entries[s->pos++].cls]--;
            rc = SIMSYNC_OK;
            continue;
        }
        if (rc != SIMSYNC_OK)
            break;
        recs[nrecs++] = rec;
        for (size_t i = 0; i < rec->n_versions && n < SESSION_BATCH_ITEMS;
             i++) {
            Simsync__Version *v = rec->versions[i];
            int has = s->cfg.r->trusted; /* terminals send the current one */
            for (size_t j = 0; !has && j < v->n_dots; j++)
                has = v->dots[j]->replica == e->dot.replica &&
                      v->dots[j]->counter == e->dot.counter;
            if (!has)
                continue;
            vsize = protobuf_c_message_get_packed_size(&v->base);
            /* Packed: a bound on what the change adds decompressed. */
            pl = vsize + (v->inline_body.len > 0 ? (size_t)v->size : 0) +
                 PACK_CHANGE_SLACK;
            if (n > 0 &&
                (bytes + vsize > SESSION_BATCH_BYTES ||
                 (s->cfg.packed && plain + pl > PACK_PLAIN_MAX - 256))) {
                full = 1;
                break;
            }
            plain += pl;
            simsync__change__init(&chv[n]);
            chv[n].cls = (uint32_t)e->cls;
            chv[n].item_id.data = (uint8_t *)e->id;
            chv[n].item_id.len = ITEM_ID_BYTES;
            chv[n].version = v;
            dotv[n].replica = e->dot.replica;
            dotv[n].counter = e->dot.counter;
            chv[n].entry = &dotv[n];
            chs[n] = &chv[n];
            bytes += vsize;
            for (size_t j = 0; j < v->n_chunks; j++)
                chunk_bytes += v->chunks[j]->size;
            n++;
        }
        if (full)
            break; /* this entry starts the next batch */
        s->left[s->entries[s->pos++].cls]--;
    }
    store_txn_abort(txn);
    if (rc == SIMSYNC_OK && n == 0) {
        for (size_t i = 0; i < nrecs; i++)
            item_record_free(recs[i]);
        return send_next(s);
    }
    b.seq = ++s->seq;
    b.changes = chs;
    b.n_changes = n;
    b.remaining = s->left;
    b.n_remaining = CLS_COUNT;
    for (size_t i = 0; rc == SIMSYNC_OK && i < n; i++) {
        digest_change(s, chs[i]);
        s->items++;
        s->bytes += change_bytes(s, chs[i]);
        s->stats.sent_bytes += change_bytes(s, chs[i]);
    }
    if (rc == SIMSYNC_OK && s->cfg.packed)
        rc = enqueue_packed(s, &b);
    else if (rc == SIMSYNC_OK) {
        env.msg_case = SIMSYNC__ENVELOPE__MSG_BATCH;
        env.batch = &b;
        rc = enqueue(s, &env);
    }
    /* Keep an owned copy of the batch to answer ChunkWant. */
    if (rc == SIMSYNC_OK)
        rc = record_pack(&b.base, &packed, &plen);
    if (rc == SIMSYNC_OK) {
        s->cur = simsync__change_batch__unpack(NULL, plen, packed);
        free(packed);
        if (s->cur == NULL)
            rc = SIMSYNC_ENOMEM;
    }
    for (size_t i = 0; i < nrecs; i++)
        item_record_free(recs[i]);
    s->stats.sent_items += n;
    s->stats.batches_sent++;
    s->st = ST_WAIT_REPLY;
    return rc;
}

static int
send_chunks(struct session *s, const Simsync__ChunkWant *w)
{
    int rc = SIMSYNC_OK;

    if (s->cur == NULL || w->seq != s->cur->seq)
        return SIMSYNC_EPROTO;
    for (size_t i = 0; rc == SIMSYNC_OK && i < w->n_ids; i++) {
        Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
        Simsync__ChunkData cd = SIMSYNC__CHUNK_DATA__INIT;
        const Simsync__Change *owner = NULL;
        uint8_t *blob = NULL;
        size_t len = 0;

        if (w->ids[i].len != CHUNK_ID_BYTES)
            return SIMSYNC_EPROTO;
        for (size_t c = 0; !owner && c < s->cur->n_changes; c++) {
            const Simsync__Version *v = s->cur->changes[c]->version;
            for (size_t j = 0; !owner && j < v->n_chunks; j++)
                if (memcmp(v->chunks[j]->id.data, w->ids[i].data,
                           CHUNK_ID_BYTES) == 0)
                    owner = s->cur->changes[c];
        }
        if (owner == NULL)
            return SIMSYNC_EPROTO; /* asked for a chunk not in the batch */
        rc = replica_get_chunk(s->cfg.r, (int)owner->cls, owner->item_id.data,
                               owner->version, w->ids[i].data, &blob, &len);
        if (rc == SIMSYNC_ENOTFOUND) {
            rc = SIMSYNC_OK; /* gone: an empty blob says so */
            len = 0;
        }
        if (rc != SIMSYNC_OK)
            break;
        cd.id = w->ids[i];
        cd.blob.data = blob;
        cd.blob.len = len;
        env.msg_case = SIMSYNC__ENVELOPE__MSG_CHUNK;
        env.chunk = &cd;
        rc = enqueue(s, &env);
        s->bytes += len;
        s->stats.sent_bytes += len;
        s->stats.chunks_sent++;
        free(blob);
    }
    return rc;
}

static int
send_complete(struct session *s, const Simsync__Complete *c)
{
    if (c->digest.len != sizeof(s->done_digest) || c->items != s->items ||
        c->bytes != s->bytes ||
        !crypt_equal(c->digest.data, s->done_digest, sizeof(s->done_digest)))
        return SIMSYNC_EPROTO;
    /* The peer now has everything up to our knowledge at stream start:
     * remember it (status shows pending work against it; the hub purges
     * tombstones every terminal has acknowledged). */
    {
        struct store_txn *txn;
        int rc = store_txn_begin(s->cfg.r->st, 0, &txn);
        for (int cls = 0; rc == SIMSYNC_OK && cls < CLS_COUNT; cls++)
            if (s->stream_classes & (1u << cls))
                rc = journal_knowledge_raise(txn, s->cfg.r->sub, cls,
                                             session_ack_peer(s->cfg.peer),
                                             &s->sender_k[cls]);
        if (rc == SIMSYNC_OK)
            rc = store_txn_commit(txn);
        else
            store_txn_abort(txn);
        if (rc != SIMSYNC_OK)
            return rc;
    }
    free(s->entries);
    s->entries = NULL;
    s->nentries = s->pos = 0;
    return next_phase(s);
}

/* ------------------------------------------------------------ driver */

static int
next_phase(struct session *s)
{
    s->phase++;
    if (s->phase >= s->nphases) {
        s->st = ST_PHASE_DONE;
        return SIMSYNC_OK;
    }
    if (s->phases[s->phase] == PH_RECV)
        return recv_start(s);
    s->st = ST_WAIT_KNOW;
    return SIMSYNC_OK;
}

uint64_t
session_ack_peer(uint64_t peer)
{
    return peer ^ 0x61636b6e6f776c64ull; /* "acknowld" */
}

int
session_new(const struct session_cfg *cfg, struct session **out)
{
    struct session *s;

    if (cfg == NULL || cfg->r == NULL || out == NULL || cfg->peer == 0 ||
        (cfg->dirs != SESSION_BOTH && cfg->dirs != SESSION_SEND_ONLY &&
         cfg->dirs != SESSION_RECV_ONLY) ||
        (cfg->packed && !cfg->r->trusted))
        return SIMSYNC_EINVAL;
    *out = NULL;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return SIMSYNC_ENOMEM;
    s->cfg = *cfg;
    s->phases[0] = cfg->initiator ? PH_SEND : PH_RECV;
    s->phases[1] = cfg->initiator ? PH_RECV : PH_SEND;
    s->nphases = 2;
    if (cfg->dirs == SESSION_SEND_ONLY || cfg->dirs == SESSION_RECV_ONLY) {
        s->phases[0] = cfg->dirs == SESSION_SEND_ONLY ? PH_SEND : PH_RECV;
        s->nphases = 1;
    }
    s->phase = -1;
    for (int c = 0; c < CLS_COUNT; c++)
        s->sender_k[c] = (struct vv)VV_INIT;
    {
        int rc = next_phase(s);
        if (rc != SIMSYNC_OK) {
            session_free(s);
            return rc;
        }
    }
    *out = s;
    return SIMSYNC_OK;
}

void
session_free(struct session *s)
{
    if (s == NULL)
        return;
    while (s->head) {
        struct outq *q = s->head;
        s->head = q->next;
        free(q->buf);
        free(q);
    }
    free(s->entries);
    for (int c = 0; c < CLS_COUNT; c++)
        vv_free(&s->sender_k[c]);
    free_cur(s);
    if (s->batch)
        simsync__envelope__free_unpacked(s->batch, NULL);
    free(s->pending);
    free(s->gone);
    pack_stream_free(s->tx);
    pack_stream_free(s->rx);
    free(s);
}

int
session_output(struct session *s, uint8_t **frame, size_t *len)
{
    size_t sealed;

    return session_output_sealed(s, frame, len, &sealed);
}

int
session_output_sealed(struct session *s, uint8_t **frame, size_t *len,
                      size_t *sealed)
{
    struct outq *q = s->head;

    if (q == NULL)
        return SIMSYNC_EAGAIN;
    s->head = q->next;
    if (s->head == NULL)
        s->tail = NULL;
    *frame = q->buf;
    *len = q->len;
    *sealed = q->sealed;
    free(q);
    return SIMSYNC_OK;
}

int
session_finished(const struct session *s)
{
    return s->phase >= s->nphases && s->st == ST_PHASE_DONE;
}

int
session_sending(const struct session *s)
{
    return s->phase >= 0 && s->phase < s->nphases &&
           s->phases[s->phase] == PH_SEND;
}

const struct session_stats *
session_get_stats(const struct session *s)
{
    return &s->stats;
}

int
session_peer_failed(const struct session *s)
{
    return s->peer_failed;
}

const char *
session_peer_text(const struct session *s)
{
    return s->peer_failed ? s->peer_text : "";
}

const char *
session_start_why(int rc)
{
    switch (rc) {
    case SIMSYNC_ETOOBIG:
        /* Every terminal store that ever made a change is a replica in
         * the knowledge of its class, and stays one. */
        return "the subscriber's data carries changes from more than "
               "4096 replicas (terminal stores, one more with each new "
               "registration or erase), the most a version vector holds";
    case SIMSYNC_ENOMEM:
        return "out of memory starting the session";
    case SIMSYNC_EINVAL:
        return "the session was asked for with settings it cannot take";
    default:
        return "cannot read the store to start the session";
    }
}

int
session_peer_error(uint32_t code)
{
    /* Known codes pass through; anything else is a protocol error. */
    if (code == 0 || code > (uint32_t)(-SIMSYNC_EBUSY))
        return SIMSYNC_EPROTO;
    return -(int)code;
}

int
session_input(struct session *s, const uint8_t *frame, size_t len)
{
    Simsync__Envelope *env;
    int rc = SIMSYNC_EPROTO, keep = 0;

    if (s->st == ST_FAILED)
        return SIMSYNC_ESTATE;
    if (len == 0 || len > FRAME_MAX_PLAINTEXT)
        return fail(s, SIMSYNC_EPROTO, "bad frame size");
    env = pb_unpack(&simsync__envelope__descriptor, len, frame, &rc);
    if (env == NULL)
        return fail(s, rc,
                    rc == SIMSYNC_ENOMEM ? "out of memory decoding a message"
                                         : "undecodable message");
    if (env->msg_case == SIMSYNC__ENVELOPE__MSG_ERROR) {
        rc = session_peer_error(env->error->code);
        s->st = ST_FAILED;
        s->peer_failed = 1;
        text_printable(s->peer_text, sizeof(s->peer_text), env->error->text);
        simsync__envelope__free_unpacked(env, NULL);
        return rc;
    }
    switch (s->st) {
    case ST_WAIT_KNOW:
        if (env->msg_case == SIMSYNC__ENVELOPE__MSG_KNOWLEDGE)
            rc = send_start(s, env->knowledge);
        break;
    case ST_WAIT_REPLY:
        if (env->msg_case == SIMSYNC__ENVELOPE__MSG_WANT)
            rc = send_chunks(s, env->want);
        else if (env->msg_case == SIMSYNC__ENVELOPE__MSG_ACK) {
            rc = SIMSYNC_EPROTO;
            if (s->cur && env->ack->seq == s->cur->seq) {
                s->stats.batches_acked++;
                rc = send_next(s);
            }
        }
        break;
    case ST_WAIT_COMPL:
        if (env->msg_case == SIMSYNC__ENVELOPE__MSG_COMPLETE)
            rc = send_complete(s, env->complete);
        break;
    case ST_WAIT_BATCH:
        if (env->msg_case == SIMSYNC__ENVELOPE__MSG_BATCH && !s->cfg.packed) {
            rc = recv_batch(s, env);
            keep = 1; /* owned by the session now */
        } else if (env->msg_case == SIMSYNC__ENVELOPE__MSG_PACKED &&
                   s->cfg.packed) {
            rc = recv_packed(s, env->packed);
        } else if (env->msg_case == SIMSYNC__ENVELOPE__MSG_DONE) {
            rc = recv_done(s, env->done);
        }
        break;
    case ST_WAIT_CHUNKS:
        if (env->msg_case == SIMSYNC__ENVELOPE__MSG_CHUNK)
            rc = recv_chunk(s, env->chunk);
        break;
    default:
        break;
    }
    if (!keep)
        simsync__envelope__free_unpacked(env, NULL);
    if (rc != SIMSYNC_OK)
        return fail(s, rc, s->why != NULL ? s->why : simsync_strerror(rc));
    return SIMSYNC_OK;
}
