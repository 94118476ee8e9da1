/* node_restore.c -- the terminal's side of reading generations back:
 * fetching and checking a manifest (digest, key, link to the previous
 * generation), listing a generation's items, and restoring them onto this
 * terminal, or leaving the restore as a job for another one.
 *
 * A restore fetches chunks in batches, checks each one against its id as it
 * arrives and writes it straight into its item's temporary file, which is
 * renamed over the name once the whole content matched its hash. The items
 * are then recorded as new local changes, so they sync like edits. */
#define _GNU_SOURCE /* syncfs */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blob.h"
#include "chunker.h"
#include "crypt.h"
#include "folder.h"
#include "node.h"
#include "transport.h"

/* ------------------------------------------------------------ manifest */

/* Send one FetchRequest and hand every answer (each must be of kind
 * `kind`) to fn until FetchDone. */
static int
fetch_run(struct link *l, Simsync__FetchRequest *f, int kind,
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

/* The sealed manifest as it arrives, at most `cap` bytes. */
struct manifest_acc {
    uint8_t *buf;
    size_t len, cap;
    struct crypt_hash_state hs;
};

static int
manifest_piece(const Simsync__Envelope *in, void *arg)
{
    struct manifest_acc *a = arg;
    const ProtobufCBinaryData *b = &in->piece->blob;

    if (a->len + b->len > a->cap)
        return SIMSYNC_EPROTO;
    if (a->buf == NULL && (a->buf = malloc(a->cap ? a->cap : 1)) == NULL)
        return SIMSYNC_ENOMEM;
    memcpy(a->buf + a->len, b->data, b->len);
    a->len += b->len;
    return crypt_hash_update(&a->hs, b->data, b->len);
}

/* Fetch, check and open the manifest of `gen`: the listing must pass the
 * rollback check, the pieces must hash to the listed digest, the blob must
 * open under our key with this generation number, and its link to the
 * previous generation must match that one's digest when it is listed. */
static int
open_manifest(struct simsync_node *n, struct replica *r, struct link *l,
              uint64_t gen, Simsync__Manifest **out)
{
    Simsync__Envelope *list = NULL;
    Simsync__FetchRequest f = SIMSYNC__FETCH_REQUEST__INIT;
    const Simsync__GenerationInfo *info = NULL, *prev = NULL;
    struct manifest_acc acc = {0};
    uint8_t ad[NODE_MANIFEST_AD_BYTES], digest[32];
    uint8_t *plain = NULL;
    size_t plen = 0;
    int rc;

    *out = NULL;
    rc = node_gen_list(n, &list);
    if (rc == SIMSYNC_OK)
        rc = node_gen_check(n, list->generations);
    if (rc != SIMSYNC_OK)
        goto out;
    for (size_t i = 0; i < list->generations->n_gens; i++) {
        if (list->generations->gens[i]->gen == gen)
            info = list->generations->gens[i];
        if (gen > 1 && list->generations->gens[i]->gen == gen - 1)
            prev = list->generations->gens[i];
    }
    if (info == NULL || info->forgotten) {
        rc = node_fail(n, SIMSYNC_ENOTFOUND,
                       "the hub has no generation %llu%s; see 'simsync "
                       "backup list'",
                       (unsigned long long)gen,
                       info ? " any more (it was forgotten)" : "");
        goto out;
    }
    rc = link_open(n, n->hub_addr, n->hub_pk, NULL, l);
    if (rc == SIMSYNC_OK) {
        uint32_t mask;
        rc = node_hello(n, l, SIMSYNC__OP__OP_FETCH, n->classes, &mask);
    }
    if (rc != SIMSYNC_OK)
        goto out;
    f.gen = gen;
    f.manifest = 1;
    acc.cap = info->manifest_bytes;
    crypt_hash_init(&acc.hs, 32, NULL, 0);
    rc = fetch_run(l, &f, SIMSYNC__ENVELOPE__MSG_PIECE, manifest_piece, &acc);
    if (rc != SIMSYNC_OK)
        goto out;
    crypt_hash_final(&acc.hs, digest, sizeof(digest));
    node_manifest_ad(ad, gen);
    if (acc.len != info->manifest_bytes ||
        !crypt_equal(digest, info->digest.data, 32)) {
        rc = node_fail(n, SIMSYNC_ECRYPTO,
                       "generation %llu as served by the hub does not match "
                       "its digest: the hub's copy was changed",
                       (unsigned long long)gen);
        goto out;
    }
    rc = blob_decode(r->keys.seal, ad, sizeof(ad), acc.buf, acc.len,
                     NODE_MANIFEST_PLAIN_MAX, &plain, &plen);
    if (rc != SIMSYNC_OK) {
        rc = node_fail(n, SIMSYNC_ECRYPTO,
                       "generation %llu does not open with this "
                       "subscriber's key as generation %llu: it is "
                       "foreign, renumbered or damaged",
                       (unsigned long long)gen, (unsigned long long)gen);
        goto out;
    }
    *out = simsync__manifest__unpack(NULL, plen, plain);
    if (*out == NULL || (*out)->gen != gen) {
        rc = node_fail(n, SIMSYNC_ECRYPTO, "generation %llu is malformed",
                       (unsigned long long)gen);
        goto out;
    }
    if (prev != NULL &&
        ((*out)->prev_digest.len != 32 || prev->digest.len != 32 ||
         !crypt_equal((*out)->prev_digest.data, prev->digest.data, 32))) {
        rc = node_fail(n, SIMSYNC_ECRYPTO,
                       "generation %llu does not follow generation %llu "
                       "as the hub lists it: the history was changed",
                       (unsigned long long)gen, (unsigned long long)gen - 1);
        goto out;
    }
out:
    if (rc != SIMSYNC_OK && *out != NULL) {
        simsync__manifest__free_unpacked(*out, NULL);
        *out = NULL;
    }
    if (list)
        simsync__envelope__free_unpacked(list, NULL);
    free(acc.buf);
    free(plain);
    return rc;
}

int
simsync_backup_show(struct simsync_node *n, uint64_t gen, simsync_item_fn fn,
                    void *arg)
{
    Simsync__Manifest *m = NULL;
    struct replica r;
    struct link l = {0};
    int rc;

    n->err[0] = '\0';
    if (!n->bound)
        return node_fail(n, SIMSYNC_ESTATE, "this terminal is not registered");
    rc = replica_setup(n, &r);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = open_manifest(n, &r, &l, gen, &m);
    link_close(&l);
    for (size_t i = 0; rc == SIMSYNC_OK && i < m->n_items; i++) {
        const Simsync__Change *c = m->items[i];
        Simsync__ItemMeta *meta = NULL;
        if (c->cls >= CLS_COUNT || c->version == NULL ||
            c->item_id.len != ITEM_ID_BYTES ||
            replica_open_meta(&r, (int)c->cls, c->item_id.data, c->version,
                              &meta) != SIMSYNC_OK) {
            rc = node_fail(n, SIMSYNC_ECRYPTO,
                           "generation %llu holds a damaged item",
                           (unsigned long long)gen);
            break;
        }
        fn(arg, "item", class_name((int)c->cls), meta->name, c->version->size);
        simsync__item_meta__free_unpacked(meta, NULL);
    }
    if (m)
        simsync__manifest__free_unpacked(m, NULL);
    keys_wipe(&r.keys);
    return rc;
}

/* ------------------------------------------------------------ restore */

/* Does "class/name" match one of the --item filters? */
static int
item_selected(const struct simsync_restore_opts *o, int cls, const char *name)
{
    const char *cn = class_name(cls);
    size_t cl = strlen(cn);

    if (o->nitems == 0)
        return 1;
    for (size_t i = 0; i < o->nitems; i++)
        if (strncmp(o->items[i], cn, cl) == 0 && o->items[i][cl] == '/' &&
            strcmp(o->items[i] + cl + 1, name) == 0)
            return 1;
    return 0;
}

/* Name for a restored copy kept next to a differing local item. */
static void
restored_name(char *out, size_t len, const char *name, uint64_t gen)
{
    const char *slash = strrchr(name, '/');
    const char *dot = strrchr(slash ? slash + 1 : name, '.');
    size_t stem = dot && dot != (slash ? slash + 1 : name)
                      ? (size_t)(dot - name)
                      : strlen(name);

    snprintf(out, len, "%.*s.restored-%03llu%s", (int)stem, name,
             (unsigned long long)gen, dot && stem < strlen(name) ? dot : "");
}

/* Restored items are written in batches. The chunks of a batch are asked
 * for in the order its files use them; each one is checked against its id
 * as it arrives (unsealed, decompressed and hashed once) and its plaintext
 * goes straight into the temp file of the item being written. A chunk that
 * the batch uses again later stays in memory until its last use. An item's
 * temp file is renamed over its name only after its whole content matched
 * the version's hash. Then one syncfs, and one transaction records the
 * batch's items. A crash before that commit leaves files the next scan
 * records (as changes with equal content) and temp files that scan
 * removes; nothing fetched is kept, so a restore run again fetches what it
 * still needs. */
#define RESTORE_BATCH_ITEMS 256
#define RESTORE_BATCH_BYTES (64u << 20)
/* Files of at least this size are written past the page cache, this much
 * at a time. */
#define RESTORE_DIRECT_BYTES (1u << 20)

enum restore_kind { RESTORED, OVERWRITTEN, KEPT_BOTH };

struct restore_one {
    int cls;
    const uint8_t *id; /* the manifest item's id (inline body's AD) */
    char *name;        /* where it goes (owned) */
    const Simsync__Version *v;
    enum restore_kind kind;
    int written; /* its file is in place, stat in st */
    struct stat st;
};

/* One distinct chunk of a batch. */
struct bchunk {
    const uint8_t *id; /* 32 bytes, into the manifest */
    uint32_t uses;     /* places in the batch's files that still need it */
    uint8_t *plain;    /* checked plaintext, from arrival to last use */
    size_t len;
};

struct restore_batch {
    struct replica *r;
    struct restore_one *v;
    size_t n;
    uint64_t bytes;
    size_t failed;     /* index of the item that failed */
    uint64_t *fetched; /* the report's count of chunks fetched */
    /* The distinct chunks in order of first use, which is the order they
     * are asked for and arrive in; `place` is the chunk of every chunk
     * place of the batch's files, in writing order; `tab` finds a chunk
     * by id (open addressing, index + 1, 0 empty). */
    struct bchunk *c;
    size_t nc, capc, arrived;
    uint32_t *place;
    size_t nplace, capplace;
    uint32_t *tab;
    size_t captab;
    /* The writer: item wi, its chunk wj, which is place wp. */
    size_t wi, wj, wp;
    int open;
    struct replica_out out;
    uint8_t *dbuf; /* RESTORE_DIRECT_BYTES, aligned, for direct writes */
};

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

/* Add one chunk place of the batch (id: 32 bytes, into the manifest). */
static int
plan_place(struct restore_batch *b, const uint8_t *id)
{
    uint64_t h;
    size_t i;
    int rc;

    memcpy(&h, id, sizeof(h)); /* ids are keyed hashes: uniform */
    for (i = h & (b->captab - 1); b->tab[i] != 0; i = (i + 1) & (b->captab - 1))
        if (memcmp(b->c[b->tab[i] - 1].id, id, 32) == 0)
            break;
    if (b->tab[i] == 0) {
        rc = grow_array((void **)&b->c, &b->capc, b->nc + 1, sizeof(*b->c));
        if (rc != SIMSYNC_OK)
            return rc;
        memset(&b->c[b->nc], 0, sizeof(*b->c));
        b->c[b->nc].id = id;
        b->tab[i] = (uint32_t)++b->nc;
    }
    b->c[b->tab[i] - 1].uses++;
    b->place[b->nplace++] = b->tab[i] - 1;
    return SIMSYNC_OK;
}

/* The distinct chunks of the batch and where each one goes. */
static int
plan_batch(struct restore_batch *b)
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
    /* captab stays a power of two: grow_array doubles from 64. */
    memset(b->tab, 0, b->captab * sizeof(*b->tab));
    b->nc = b->nplace = b->arrived = 0;
    b->wi = b->wj = b->wp = 0;
    for (size_t i = 0; i < b->n; i++) {
        const Simsync__Version *v = b->v[i].v;
        for (size_t j = 0; j < v->n_chunks; j++) {
            if (v->chunks[j]->id.len != CHUNK_ID_BYTES ||
                v->chunks[j]->size == 0 ||
                v->chunks[j]->size > CHUNKER_MAX_DEFAULT) {
                b->failed = i;
                return SIMSYNC_EPROTO;
            }
            rc = plan_place(b, v->chunks[j]->id.data);
            if (rc != SIMSYNC_OK)
                return rc;
        }
    }
    return SIMSYNC_OK;
}

/* Write what can be written now: the items in order, each chunk place as
 * soon as its chunk is here; an item's file is committed when its last
 * chunk is in. Stops at the first chunk that has not arrived. */
static int
write_ready(struct restore_batch *b)
{
    int rc = SIMSYNC_OK;

    while (b->wi < b->n) {
        struct restore_one *o = &b->v[b->wi];
        if (!b->open) {
            rc = replica_out_begin(b->r, o->cls, o->name, o->v, b->dbuf,
                                   RESTORE_DIRECT_BYTES, &b->out);
            if (rc != SIMSYNC_OK)
                break;
            b->open = 1;
            b->wj = 0;
            if (o->v->n_chunks == 0)
                rc = replica_out_inline(&b->out, b->r, o->id);
        }
        while (rc == SIMSYNC_OK && b->wj < o->v->n_chunks) {
            struct bchunk *c = &b->c[b->place[b->wp]];
            if (c->plain == NULL)
                return SIMSYNC_OK; /* not here yet */
            rc = c->len == o->v->chunks[b->wj]->size
                     ? replica_out_put(&b->out, c->plain, c->len)
                     : SIMSYNC_EPROTO;
            if (--c->uses == 0) {
                free(c->plain);
                c->plain = NULL;
            }
            b->wj++;
            b->wp++;
        }
        b->open = 0;
        if (rc != SIMSYNC_OK) {
            replica_out_abort(&b->out);
            break;
        }
        rc = replica_out_commit(&b->out, &o->st);
        if (rc != SIMSYNC_OK)
            break;
        o->written = 1;
        b->wi++;
    }
    if (rc != SIMSYNC_OK)
        b->failed = b->wi;
    return rc;
}

/* One chunk from the hub: it must be the next one asked for and open to
 * its id; then whatever it completes is written. */
static int
restore_chunk(const Simsync__Envelope *in, void *arg)
{
    struct restore_batch *b = arg;
    const ProtobufCBinaryData *blob = &in->chunk->blob;
    struct bchunk *c = b->arrived < b->nc ? &b->c[b->arrived] : NULL;
    uint8_t check[CHUNK_ID_BYTES], *plain = NULL;
    size_t plen = 0;
    int rc;

    if (c == NULL || in->chunk->id.len != CHUNK_ID_BYTES ||
        memcmp(in->chunk->id.data, c->id, CHUNK_ID_BYTES) != 0)
        rc = SIMSYNC_EPROTO;
    else if (blob->len == 0)
        rc = SIMSYNC_ECRYPTO; /* the hub lost a chunk it listed */
    else
        rc = blob_decode(b->r->keys.seal, c->id, CHUNK_ID_BYTES, blob->data,
                         blob->len, CHUNKER_MAX_DEFAULT, &plain, &plen);
    if (rc == SIMSYNC_OK) {
        keys_chunk_id(&b->r->keys, plain, plen, check);
        if (!crypt_equal(check, c->id, CHUNK_ID_BYTES))
            rc = SIMSYNC_ECRYPTO;
    }
    if (rc != SIMSYNC_OK) {
        free(plain);
        b->failed = b->wi; /* the writer waits for this chunk */
        return rc;
    }
    c->plain = plain;
    c->len = plen;
    b->arrived++;
    (*b->fetched)++;
    return write_ready(b);
}

/* Fetch the batch's chunks, writing its files as they complete. */
static int
fetch_batch(struct restore_batch *b, struct link *l)
{
    Simsync__FetchRequest f = SIMSYNC__FETCH_REQUEST__INIT;
    ProtobufCBinaryData ids[NODE_QUERY_IDS];
    int rc = plan_batch(b);

    if (rc == SIMSYNC_OK)
        rc = write_ready(b); /* the items before the first chunk */
    for (size_t off = 0; rc == SIMSYNC_OK && off < b->nc;
         off += NODE_QUERY_IDS) {
        size_t k = b->nc - off < NODE_QUERY_IDS ? b->nc - off : NODE_QUERY_IDS;
        for (size_t i = 0; i < k; i++) {
            ids[i].data = (uint8_t *)b->c[off + i].id;
            ids[i].len = CHUNK_ID_BYTES;
        }
        f.chunk_ids = ids;
        f.n_chunk_ids = k;
        rc = fetch_run(l, &f, SIMSYNC__ENVELOPE__MSG_CHUNK, restore_chunk, b);
        if (rc == SIMSYNC_OK && b->arrived != off + k) {
            b->failed = b->wi; /* the hub left some out */
            rc = SIMSYNC_EPROTO;
        }
    }
    if (rc == SIMSYNC_OK && b->wi != b->n)
        rc = SIMSYNC_EPROTO; /* cannot happen: every chunk arrived */
    if (b->open) {
        replica_out_abort(&b->out);
        b->open = 0;
    }
    for (size_t i = 0; i < b->nc; i++) {
        free(b->c[i].plain);
        b->c[i].plain = NULL;
    }
    return rc;
}

static int
restore_write_one(struct replica *r, struct store_txn *txn,
                  const struct restore_one *o)
{
    Simsync__ItemRecord *old = NULL;
    uint8_t id[ITEM_ID_BYTES];
    struct vv base = VV_INIT;
    int rc;

    keys_item_id(&r->keys, o->cls, o->name, id);
    rc = item_get(txn, r->sub, o->cls, id, &old);
    if (rc == SIMSYNC_ENOTFOUND)
        rc = SIMSYNC_OK;
    /* A new local change on top of what this node had: it syncs. */
    if (rc == SIMSYNC_OK && old != NULL)
        rc = vv_from_pb(&base, old->versions[0]->vv);
    if (rc == SIMSYNC_OK)
        rc = folder_record_written(r, txn, o->cls, o->name, &base, old, o->v,
                                   memcmp(id, o->id, ITEM_ID_BYTES) == 0,
                                   &o->st);
    if (rc == SIMSYNC_OK)
        rc = replica_unstage(r, txn, o->v);
    item_record_free(old);
    vv_free(&base);
    return rc;
}

/* Record the batch's written items, after the files are durable. */
static int
restore_batch_fn(struct store_txn *txn, void *arg)
{
    struct restore_batch *b = arg;
    int fd, rc = SIMSYNC_OK;

    for (size_t i = 0; i < b->n; i++) {
        if (!b->v[i].written)
            continue;
        rc = restore_write_one(b->r, txn, &b->v[i]);
        if (rc != SIMSYNC_OK)
            return rc;
    }
    fd = open(b->r->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || syncfs(fd) != 0)
        rc = SIMSYNC_EIO;
    if (fd >= 0)
        close(fd);
    return rc;
}

static void
batch_clear(struct restore_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->v[i].name);
    b->n = 0;
    b->bytes = 0;
}

static void
batch_free(struct restore_batch *b)
{
    batch_clear(b);
    free(b->v);
    free(b->c);
    free(b->place);
    free(b->tab);
    free(b->dbuf);
}

/* Fetch the batch's chunks, write and record its items; count what it
 * did. Items written before a failure are recorded too. */
static int
batch_flush(struct simsync_node *n, struct restore_batch *b, struct link *l,
            uint64_t gen, struct simsync_restore_report *rep)
{
    size_t written = 0;
    int rc, wrc;

    if (b->n == 0)
        return SIMSYNC_OK;
    b->failed = b->n;
    rc = fetch_batch(b, l);
    for (size_t i = 0; i < b->n; i++)
        written += b->v[i].written != 0;
    wrc = written > 0 ? store_write(b->r->st, restore_batch_fn, b) : SIMSYNC_OK;
    if (wrc == SIMSYNC_OK) {
        for (size_t i = 0; i < b->n; i++) {
            if (!b->v[i].written)
                continue;
            if (b->v[i].kind == RESTORED)
                rep->restored++;
            else if (b->v[i].kind == KEPT_BOTH)
                rep->kept_both++;
            else
                rep->overwritten++;
        }
    }
    if (rc == SIMSYNC_OK)
        rc = wrc;
    if ((rc == SIMSYNC_ECRYPTO || rc == SIMSYNC_EPROTO) && b->failed < b->n)
        node_fail(n, rc,
                  "%s/%s from generation %llu failed its integrity check (a "
                  "chunk on the hub was changed); nothing was written for it",
                  class_name(b->v[b->failed].cls), b->v[b->failed].name,
                  (unsigned long long)gen);
    else if (rc == SIMSYNC_ECRYPTO || rc == SIMSYNC_EPROTO)
        node_fail(n, rc,
                  "a chunk of generation %llu failed its integrity check (a "
                  "chunk on the hub was changed); nothing was written for the "
                  "%zu items restored with it",
                  (unsigned long long)gen, b->n - written);
    batch_clear(b);
    return rc;
}

int
simsync_restore(struct simsync_node *n, const struct simsync_restore_opts *o,
                simsync_item_fn fn, void *arg,
                struct simsync_restore_report *rep)
{
    Simsync__Manifest *m = NULL;
    struct replica r;
    struct link l = {0};
    struct restore_batch batch = {0};
    uint64_t unasked = 0;
    int rc;

    memset(rep, 0, sizeof(*rep));
    n->err[0] = '\0';
    if (!n->bound)
        return node_fail(n, SIMSYNC_ESTATE, "this terminal is not registered");
    rc = check_sim_binding(n);
    if (rc == SIMSYNC_OK && o->to_terminal != NULL &&
        strcmp(o->to_terminal, n->terminal_id) != 0)
        return node_job_leave(n, o, &rep->job);
    if (rc == SIMSYNC_OK)
        rc = replica_setup(n, &r);
    if (rc != SIMSYNC_OK)
        return rc;
    r.defer_sync = 1;
    batch.r = &r;
    batch.fetched = &rep->chunks_fetched;
    batch.v = calloc(RESTORE_BATCH_ITEMS, sizeof(*batch.v));
    if (posix_memalign((void **)&batch.dbuf, REPLICA_OUT_ALIGN,
                       RESTORE_DIRECT_BYTES) != 0)
        batch.dbuf = NULL;
    if (batch.v == NULL || batch.dbuf == NULL) {
        batch_free(&batch);
        keys_wipe(&r.keys);
        return SIMSYNC_ENOMEM;
    }
    rc = open_manifest(n, &r, &l, o->gen, &m);
    for (size_t i = 0; rc == SIMSYNC_OK && i < m->n_items; i++) {
        const Simsync__Change *c = m->items[i];
        Simsync__ItemMeta *meta = NULL;
        Simsync__ItemRecord *local = NULL;
        struct store_txn *txn;
        enum simsync_on_conflict mode = o->on_conflict;
        char target[PATH_MAX];
        const char *action;
        int cls = (int)c->cls, differs = 0, exists = 0;

        if (c->cls >= CLS_COUNT || c->version == NULL ||
            c->item_id.len != ITEM_ID_BYTES || c->version->deleted ||
            replica_open_meta(&r, cls, c->item_id.data, c->version, &meta) !=
                SIMSYNC_OK) {
            rc = node_fail(n, SIMSYNC_ECRYPTO,
                           "generation %llu holds a damaged item",
                           (unsigned long long)o->gen);
            break;
        }
        if ((o->classes != 0 && !(o->classes & (1u << cls))) ||
            !item_selected(o, cls, meta->name)) {
            simsync__item_meta__free_unpacked(meta, NULL);
            continue;
        }
        snprintf(target, sizeof(target), "%s", meta->name);
        if (!folder_target_ok(&r, cls, meta->name)) {
            rep->refused++;
            fn(arg, "refused", class_name(cls), meta->name, c->version->size);
            simsync__item_meta__free_unpacked(meta, NULL);
            continue;
        }
        /* What is here now: the record after a refresh from the file. */
        rc = store_txn_begin(r.st, 1, &txn);
        if (rc == SIMSYNC_OK) {
            uint8_t id[ITEM_ID_BYTES];
            struct stat st;
            keys_item_id(&r.keys, cls, meta->name, id);
            if (item_get(txn, r.sub, cls, id, &local) != SIMSYNC_OK)
                local = NULL;
            store_txn_abort(txn);
            exists = folder_stat(&r, cls, meta->name, &st) == SIMSYNC_OK;
            if (exists) {
                /* Compare by content: the local file as it is now. */
                differs = 1;
                if (local != NULL && local->n_versions == 1 &&
                    !local->versions[0]->deleted &&
                    folder_stat_matches(local, &st) &&
                    local->versions[0]->content_hash.len == 32 &&
                    c->version->content_hash.len == 32 &&
                    memcmp(local->versions[0]->content_hash.data,
                           c->version->content_hash.data, 32) == 0)
                    differs = 0;
            }
        }
        item_record_free(local);
        if (rc != SIMSYNC_OK) {
            simsync__item_meta__free_unpacked(meta, NULL);
            break;
        }
        if (exists && !differs) {
            rep->unchanged++;
            fn(arg, "unchanged", class_name(cls), meta->name, c->version->size);
            simsync__item_meta__free_unpacked(meta, NULL);
            continue;
        }
        action = "restore";
        if (exists) {
            if (mode == SIMSYNC_ON_CONFLICT_ASK && !o->dry_run) {
                if (o->ask != NULL) {
                    mode = o->ask(o->ask_arg, class_name(cls), meta->name);
                } else {
                    /* Nobody to ask: leave it, and say so at the end. */
                    unasked++;
                    mode = SIMSYNC_ON_CONFLICT_SKIP;
                }
            }
            if (mode == SIMSYNC_ON_CONFLICT_SKIP) {
                rep->skipped++;
                fn(arg, "skip", class_name(cls), meta->name, c->version->size);
                simsync__item_meta__free_unpacked(meta, NULL);
                continue;
            }
            if (mode == SIMSYNC_ON_CONFLICT_KEEP_BOTH) {
                restored_name(target, sizeof(target), meta->name, o->gen);
                action = "keep-both";
            } else if (mode == SIMSYNC_ON_CONFLICT_OVERWRITE) {
                action = "overwrite";
            } else {
                action = "ask";
            }
        }
        fn(arg, action, class_name(cls), target, c->version->size);
        if (!o->dry_run) {
            struct restore_one *one = &batch.v[batch.n];
            one->cls = cls;
            one->id = c->item_id.data;
            one->v = c->version;
            one->written = 0;
            one->kind = !exists ? RESTORED
                        : mode == SIMSYNC_ON_CONFLICT_KEEP_BOTH ? KEPT_BOTH
                                                               : OVERWRITTEN;
            one->name = strdup(target);
            if (one->name == NULL)
                rc = SIMSYNC_ENOMEM;
            if (rc == SIMSYNC_OK) {
                batch.n++;
                batch.bytes += c->version->size;
                if (batch.n == RESTORE_BATCH_ITEMS ||
                    batch.bytes >= RESTORE_BATCH_BYTES)
                    rc = batch_flush(n, &batch, &l, o->gen, rep);
            }
        }
        simsync__item_meta__free_unpacked(meta, NULL);
    }
    if (rc == SIMSYNC_OK)
        rc = batch_flush(n, &batch, &l, o->gen, rep);
    batch_free(&batch);
    link_close(&l);
    if (m)
        simsync__manifest__free_unpacked(m, NULL);
    keys_wipe(&r.keys);
    if (rc == SIMSYNC_OK && unasked > 0)
        rc = node_fail(n, SIMSYNC_EREFUSED,
                       "%llu items exist here and differ from generation "
                       "%llu and there was no terminal to ask; they were "
                       "left as they are: rerun with --on-conflict "
                       "overwrite, keep-both or skip",
                       (unsigned long long)unasked, (unsigned long long)o->gen);
    if (rc == SIMSYNC_OK && rep->refused > 0)
        rc = node_fail(n, SIMSYNC_EREFUSED,
                       "%llu items with unsafe names or symlinked targets "
                       "were refused; nothing was written for them",
                       (unsigned long long)rep->refused);
    if (rc == SIMSYNC_OK && o->delete_after && !o->dry_run) {
        struct simsync_forget_opts fo = {0};
        struct simsync_forget_report fr;
        fo.gens = &o->gen;
        fo.ngens = 1;
        rc = simsync_backup_forget(n, &fo, NULL, NULL, &fr);
        rep->forgotten = rc == SIMSYNC_OK && fr.forgotten == 1;
    }
    if (rc != SIMSYNC_OK && n->err[0] == '\0')
        node_fail(n, rc, "the restore failed: %s", simsync_strerror(rc));
    return rc;
}
