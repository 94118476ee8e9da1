/* replica.c -- applying incoming versions: siblings on the hub, resolution
 * with conflict copies on trusted nodes. See replica.h. */
#define _GNU_SOURCE /* O_DIRECT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blob.h"
#include "chunker.h"
#include "crypt.h"
#include "dio.h"
#include "folder.h"
#include "pbcheck.h"
#include "replica.h"

static void
chunk_key(uint8_t out[SUB_BYTES + CHUNK_ID_BYTES], const uint8_t sub[SUB_BYTES],
          const uint8_t id[CHUNK_ID_BYTES])
{
    memcpy(out, sub, SUB_BYTES);
    memcpy(out + SUB_BYTES, id, CHUNK_ID_BYTES);
}

static enum store_db
chunk_db(const struct replica *r)
{
    return r->trusted ? STORE_STAGE : STORE_CHUNKS;
}

/* ------------------------------------------------------------ decisions */

int
replica_lazy_skip(const struct replica *r, int cls,
                  const Simsync__ItemRecord *rec)
{
    if (!r->trusted || cls < 0 || cls >= CLS_COUNT ||
        !(r->lazy & (1u << cls)))
        return 0;
    if (rec == NULL)
        return 1;
    if (rec->pinned)
        return 0;
    /* Content here (a live, present version): keep it up to date. */
    return rec->remote || rec->n_versions != 1 || rec->versions[0]->deleted ||
           !rec->present;
}

/* Would version v change this node's record `rec` at all? */
static int
wanted(const struct replica *r, const Simsync__ItemRecord *rec,
       const Simsync__Version *v)
{
    struct vv a = VV_INIT, b = VV_INIT;
    int want = 1;

    if (rec == NULL)
        return 1;
    if (vv_from_pb(&a, v->vv) != SIMSYNC_OK)
        return 0;
    for (size_t i = 0; want && i < rec->n_versions; i++) {
        if (vv_from_pb(&b, rec->versions[i]->vv) != SIMSYNC_OK)
            continue;
        enum vv_order o = vv_compare(&a, &b);
        if (o == VV_EQUAL || o == VV_LESSER)
            want = 0;
    }
    (void)r;
    vv_free(&a);
    vv_free(&b);
    return want;
}

static int
same_content(const Simsync__Version *a, const Simsync__Version *b)
{
    if (a->deleted || b->deleted)
        return a->deleted && b->deleted;
    return a->hash_kind == b->hash_kind &&
           a->content_hash.len == b->content_hash.len &&
           a->content_hash.len > 0 &&
           memcmp(a->content_hash.data, b->content_hash.data,
                  a->content_hash.len) == 0;
}

/* Deterministic winner of two concurrent versions: a live version beats a
 * tombstone; then the later hlc; then the larger author. 1: a wins. */
static int
a_wins(const Simsync__Version *a, const Simsync__Version *b)
{
    if (a->deleted != b->deleted)
        return !a->deleted;
    if (a->hlc != b->hlc)
        return a->hlc > b->hlc;
    return a->author > b->author;
}

/* A renamed item (meta.moved_from) whose content this trusted node holds
 * under the old name: a live item with the same content hash whose file
 * still matches its stat cache. Writes the old name to src. */
static int
local_source(struct replica *r, struct store_txn *txn, int cls,
             const char *from, const Simsync__Version *v, char *src,
             size_t srclen)
{
    Simsync__ItemRecord *rec = NULL;
    uint8_t id[ITEM_ID_BYTES];
    struct stat st;
    int ok;

    if (!r->trusted || from == NULL || *from == '\0' || v->n_chunks == 0 ||
        v->content_hash.len != 32 || !replica_name_ok(from) ||
        strlen(from) >= srclen)
        return 0;
    keys_item_id(&r->keys, cls, from, id);
    if (item_get(txn, r->sub, cls, id, &rec) != SIMSYNC_OK)
        return 0;
    ok = rec->n_versions == 1 && !rec->versions[0]->deleted &&
         rec->versions[0]->hash_kind == v->hash_kind &&
         rec->versions[0]->content_hash.len == 32 &&
         memcmp(rec->versions[0]->content_hash.data, v->content_hash.data,
                32) == 0 &&
         folder_stat(r, cls, from, &st) == SIMSYNC_OK &&
         folder_stat_matches(rec, &st);
    item_record_free(rec);
    if (ok)
        memcpy(src, from, strlen(from) + 1);
    return ok;
}

/* Whether change c is a rename whose content this node holds (*found 1,
 * the old name in src). Returns SIMSYNC_OK, or SIMSYNC_ENOMEM: running out
 * of memory is not "no local source", which would hide the error. A meta
 * that does not open is no local source; its apply refuses it. */
static int
change_local_source(struct replica *r, struct store_txn *txn,
                    const Simsync__Change *c, char *src, size_t srclen,
                    int *found)
{
    Simsync__ItemMeta *meta = NULL;
    int rc;

    *found = 0;
    if (!r->trusted || c->version->n_chunks == 0 ||
        c->item_id.len != ITEM_ID_BYTES)
        return SIMSYNC_OK;
    rc = replica_open_meta(r, (int)c->cls, c->item_id.data, c->version, &meta);
    if (rc == SIMSYNC_ENOMEM)
        return rc;
    if (rc != SIMSYNC_OK)
        return SIMSYNC_OK;
    *found = local_source(r, txn, (int)c->cls, meta->moved_from, c->version,
                          src, srclen);
    simsync__item_meta__free_unpacked(meta, NULL);
    return SIMSYNC_OK;
}

int
replica_missing_chunks(struct replica *r, Simsync__Change *const *ch, size_t n,
                       uint8_t **ids, size_t *nids)
{
    struct store_txn *txn;
    uint8_t *out = NULL;
    size_t cnt = 0, cap = 0;
    int rc;

    *ids = NULL;
    *nids = 0;
    rc = store_txn_begin(r->st, 1, &txn);
    if (rc != SIMSYNC_OK)
        return rc;
    for (size_t i = 0; rc == SIMSYNC_OK && i < n; i++) {
        Simsync__ItemRecord *rec = NULL;
        const Simsync__Version *v = ch[i]->version;
        char srcname[PATH_MAX];
        int local = 0, need;

        if (v->n_chunks == 0)
            continue;
        rc = item_get(txn, r->sub, (int)ch[i]->cls, ch[i]->item_id.data, &rec);
        if (rc == SIMSYNC_ENOTFOUND)
            rc = SIMSYNC_OK;
        need = rc == SIMSYNC_OK && wanted(r, rec, v) &&
               !replica_lazy_skip(r, (int)ch[i]->cls, rec);
        if (need)
            rc = change_local_source(r, txn, ch[i], srcname, sizeof(srcname),
                                     &local);
        if (need && rc == SIMSYNC_OK && !local) {
            for (size_t j = 0; rc == SIMSYNC_OK && j < v->n_chunks; j++) {
                uint8_t key[SUB_BYTES + CHUNK_ID_BYTES];
                const void *val;
                size_t vl, k;
                chunk_key(key, r->sub, v->chunks[j]->id.data);
                if (store_get(txn, chunk_db(r), key, sizeof(key), &val, &vl) ==
                    SIMSYNC_OK)
                    continue;
                for (k = 0; k < cnt; k++)
                    if (memcmp(out + k * CHUNK_ID_BYTES, v->chunks[j]->id.data,
                               CHUNK_ID_BYTES) == 0)
                        break;
                if (k < cnt)
                    continue;
                if (cnt == cap) {
                    size_t nc = cap ? cap * 2 : 64;
                    uint8_t *no = realloc(out, nc * CHUNK_ID_BYTES);
                    if (no == NULL) {
                        rc = SIMSYNC_ENOMEM;
                        break;
                    }
                    out = no;
                    cap = nc;
                }
                memcpy(out + cnt * CHUNK_ID_BYTES, v->chunks[j]->id.data,
                       CHUNK_ID_BYTES);
                cnt++;
            }
        }
        item_record_free(rec);
    }
    store_txn_abort(txn);
    if (rc != SIMSYNC_OK) {
        free(out);
        return rc;
    }
    *ids = out;
    *nids = cnt;
    return SIMSYNC_OK;
}

struct put_chunks_arg {
    struct replica *r;
    size_t n;
    const uint8_t *const *ids;
    const uint8_t *const *blobs;
    const size_t *lens;
};

static int
put_chunks_fn(struct store_txn *txn, void *arg)
{
    struct put_chunks_arg *a = arg;
    uint8_t key[SUB_BYTES + CHUNK_ID_BYTES];
    int rc = SIMSYNC_OK;

    for (size_t i = 0; rc == SIMSYNC_OK && i < a->n; i++) {
        chunk_key(key, a->r->sub, a->ids[i]);
        rc = store_put(txn, chunk_db(a->r), key, sizeof(key), a->blobs[i],
                       a->lens[i]);
    }
    return rc;
}

int
replica_check_chunk(struct replica *r, const uint8_t id[CHUNK_ID_BYTES],
                    const uint8_t *blob, size_t len)
{
    uint8_t *plain, check[CHUNK_ID_BYTES];
    size_t plen;
    int rc;

    if (!r->trusted)
        return SIMSYNC_OK;
    rc = blob_decode(r->keys.seal, id, CHUNK_ID_BYTES, blob, len,
                     CHUNKER_MAX_DEFAULT, &plain, &plen);
    if (rc != SIMSYNC_OK)
        return rc;
    keys_chunk_id(&r->keys, plain, plen, check);
    crypt_wipe(plain, plen);
    free(plain);
    return crypt_equal(check, id, CHUNK_ID_BYTES) ? SIMSYNC_OK
                                                  : SIMSYNC_ECRYPTO;
}

int
replica_put_chunks(struct replica *r, size_t n, const uint8_t *const *ids,
                   const uint8_t *const *blobs, const size_t *lens)
{
    struct put_chunks_arg a = {r, n, ids, blobs, lens};

    return n == 0 ? SIMSYNC_OK : store_write(r->st, put_chunks_fn, &a);
}

int
replica_put_chunk(struct replica *r, const uint8_t id[CHUNK_ID_BYTES],
                  const uint8_t *blob, size_t len)
{
    /* Check before staging: a bad blob staged would count as present and
     * block every later attempt. */
    int rc = replica_check_chunk(r, id, blob, len);

    if (rc != SIMSYNC_OK)
        return rc;
    return replica_put_chunks(r, 1, &id, &blob, &len);
}

int
replica_open_meta(const struct replica *r, int cls,
                  const uint8_t item_id[ITEM_ID_BYTES],
                  const Simsync__Version *v, Simsync__ItemMeta **meta)
{
    uint8_t *plain, id[ITEM_ID_BYTES];
    size_t len;
    int rc;

    *meta = NULL;
    if (v->meta.len < CRYPT_SEAL_OVERHEAD || v->meta.len > 65536)
        return SIMSYNC_EPROTO;
    len = v->meta.len - CRYPT_SEAL_OVERHEAD;
    plain = malloc(len + 1);
    if (plain == NULL)
        return SIMSYNC_ENOMEM;
    rc = crypt_unseal(plain, v->meta.data, v->meta.len, item_id, ITEM_ID_BYTES,
                      r->keys.seal);
    if (rc == SIMSYNC_OK) {
        *meta = pb_unpack(&simsync__item_meta__descriptor, len, plain, &rc);
        /* A string field with a NUL inside reads as its part before the
         * NUL: such a record packs back smaller than it came. Refuse it
         * rather than write under a name the sender did not send. */
        if (*meta != NULL &&
            ((*meta)->name == NULL || !replica_name_ok((*meta)->name) ||
             simsync__item_meta__get_packed_size(*meta) != len))
            rc = SIMSYNC_EPROTO;
    }
    if (rc == SIMSYNC_OK) {
        /* The name must be the one this item id was made from. */
        keys_item_id(&r->keys, cls, (*meta)->name, id);
        if (!crypt_equal(id, item_id, ITEM_ID_BYTES))
            rc = SIMSYNC_ECRYPTO;
    }
    free(plain);
    if (rc != SIMSYNC_OK && *meta != NULL) {
        simsync__item_meta__free_unpacked(*meta, NULL);
        *meta = NULL;
    }
    return rc;
}

/* ------------------------------------------------------------ sending */

int
replica_get_chunk(struct replica *r, int cls,
                  const uint8_t item_id[ITEM_ID_BYTES],
                  const Simsync__Version *v, const uint8_t id[CHUNK_ID_BYTES],
                  uint8_t **blob, size_t *len)
{
    struct store_txn *txn;
    Simsync__ItemRecord *rec = NULL;
    uint64_t off = 0, size = 0;
    size_t j;
    int rc;

    *blob = NULL;
    if (!r->trusted) {
        uint8_t key[SUB_BYTES + CHUNK_ID_BYTES];
        const void *val;
        size_t vl;
        chunk_key(key, r->sub, id);
        rc = store_txn_begin(r->st, 1, &txn);
        if (rc != SIMSYNC_OK)
            return rc;
        rc = store_get(txn, STORE_CHUNKS, key, sizeof(key), &val, &vl);
        if (rc == SIMSYNC_OK) {
            *blob = malloc(vl ? vl : 1);
            if (*blob == NULL)
                rc = SIMSYNC_ENOMEM;
            else
                memcpy(*blob, val, vl);
            *len = vl;
        }
        store_txn_abort(txn);
        return rc;
    }
    for (j = 0; j < v->n_chunks; j++) {
        if (memcmp(v->chunks[j]->id.data, id, CHUNK_ID_BYTES) == 0)
            break;
        off += v->chunks[j]->size;
    }
    if (j == v->n_chunks)
        return SIMSYNC_ENOTFOUND;
    size = v->chunks[j]->size;
    if (size > CHUNKER_MAX_DEFAULT)
        return SIMSYNC_EPROTO;
    rc = store_txn_begin(r->st, 1, &txn);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = item_get(txn, r->sub, cls, item_id, &rec);
    store_txn_abort(txn);
    if (rc != SIMSYNC_OK)
        return rc;
    {
        const char *base;
        uint8_t *buf = malloc(size ? size : 1), check[CHUNK_ID_BYTES];
        int dfd = rec->name ? folder_open_parent(r, cls, rec->name, 0, &base)
                            : SIMSYNC_ENOTFOUND;
        int fd = -1;
        ssize_t n = -1;

        if (dfd >= 0) {
            fd = openat(dfd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            close(dfd);
        }
        if (fd >= 0 && buf != NULL) {
            n = pread(fd, buf, size, (off_t)off);
            close(fd);
        }
        rc = SIMSYNC_ENOTFOUND;
        if (buf != NULL && n == (ssize_t)size) {
            keys_chunk_id(&r->keys, buf, size, check);
            /* The file changed since it was recorded: the next scan makes
             * a new version, this one cannot be served any more. */
            if (memcmp(check, id, CHUNK_ID_BYTES) == 0)
                rc = blob_encode(r->keys.seal, id, CHUNK_ID_BYTES, buf, size,
                                 blob, len);
        } else if (buf == NULL) {
            rc = SIMSYNC_ENOMEM;
        }
        free(buf);
    }
    item_record_free(rec);
    return rc;
}

/* ------------------------------------------------------------ hub apply */

static int
version_equal_vv(const Simsync__Version *a, const Simsync__Version *b,
                 enum vv_order *o)
{
    struct vv x = VV_INIT, y = VV_INIT;
    int rc = vv_from_pb(&x, a->vv);

    if (rc == SIMSYNC_OK)
        rc = vv_from_pb(&y, b->vv);
    if (rc == SIMSYNC_OK)
        *o = vv_compare(&x, &y);
    vv_free(&x);
    vv_free(&y);
    return rc;
}

/* Merge b's vv and dots into a copy of a (same content): *out allocated. */
static int
merge_equal(const Simsync__Version *a, const Simsync__Version *b,
            Simsync__Version **out)
{
    uint8_t *buf;
    size_t len;
    struct vv x = VV_INIT, y = VV_INIT;
    Simsync__Version *m;
    int rc = record_pack(&a->base, &buf, &len);

    *out = NULL;
    if (rc != SIMSYNC_OK)
        return rc;
    m = simsync__version__unpack(NULL, len, buf);
    free(buf);
    if (m == NULL)
        return SIMSYNC_ENOMEM;
    rc = vv_from_pb(&x, a->vv);
    if (rc == SIMSYNC_OK)
        rc = vv_from_pb(&y, b->vv);
    if (rc == SIMSYNC_OK)
        rc = vv_merge(&x, &y);
    if (rc == SIMSYNC_OK) {
        /* Replace the vv and append b's dots not already present. */
        Simsync__VersionVector *nv = malloc(sizeof(*nv));
        Simsync__Dot **nd;
        size_t nn = m->n_dots;
        if (nv == NULL || vv_to_pb(nv, &x) != SIMSYNC_OK) {
            free(nv);
            rc = SIMSYNC_ENOMEM;
            goto out;
        }
        /* Re-home the vv into protobuf-c ownership: copy entries. */
        Simsync__VersionVector *own = m->vv;
        uint8_t *vbuf;
        size_t vlen;
        rc = record_pack(&nv->base, &vbuf, &vlen);
        pb_vv_free(nv);
        free(nv);
        if (rc != SIMSYNC_OK)
            goto out;
        m->vv = simsync__version_vector__unpack(NULL, vlen, vbuf);
        free(vbuf);
        if (own != NULL)
            simsync__version_vector__free_unpacked(own, NULL);
        if (m->vv == NULL) {
            rc = SIMSYNC_ENOMEM;
            goto out;
        }
        nd = realloc(m->dots, (m->n_dots + b->n_dots) * sizeof(*nd) + 1);
        if (nd == NULL) {
            rc = SIMSYNC_ENOMEM;
            goto out;
        }
        m->dots = nd;
        for (size_t i = 0; i < b->n_dots; i++) {
            size_t k;
            for (k = 0; k < nn; k++)
                if (nd[k]->replica == b->dots[i]->replica &&
                    nd[k]->counter == b->dots[i]->counter)
                    break;
            if (k < nn)
                continue;
            nd[nn] = malloc(sizeof(Simsync__Dot));
            if (nd[nn] == NULL) {
                rc = SIMSYNC_ENOMEM;
                break;
            }
            simsync__dot__init(nd[nn]);
            nd[nn]->replica = b->dots[i]->replica;
            nd[nn]->counter = b->dots[i]->counter;
            nn++;
        }
        m->n_dots = nn;
    }
out:
    vv_free(&x);
    vv_free(&y);
    if (rc != SIMSYNC_OK) {
        simsync__version__free_unpacked(m, NULL);
        return rc;
    }
    *out = m;
    return SIMSYNC_OK;
}

static int
hub_apply(struct replica *r, struct store_txn *txn, const Simsync__Change *c,
          struct apply_stats *stats)
{
    Simsync__ItemRecord *old = NULL, rec = SIMSYNC__ITEM_RECORD__INIT;
    Simsync__Version *keep[64], *merged = NULL;
    const Simsync__Version *v = c->version;
    size_t nkeep = 0;
    int rc, concurrent = 0;

    rc = item_get(txn, r->sub, (int)c->cls, c->item_id.data, &old);
    if (rc == SIMSYNC_ENOTFOUND)
        rc = SIMSYNC_OK;
    if (rc != SIMSYNC_OK)
        return rc;
    for (size_t i = 0; old != NULL && i < old->n_versions; i++) {
        enum vv_order o;
        rc = version_equal_vv(v, old->versions[i], &o);
        if (rc != SIMSYNC_OK)
            goto out;
        if (o == VV_EQUAL || o == VV_LESSER) {
            stats->skipped++;
            goto out; /* known or superseded */
        }
        if (o == VV_GREATER)
            continue; /* superseded by v: dropped */
        if (merged == NULL && same_content(v, old->versions[i])) {
            rc = merge_equal(old->versions[i], v, &merged);
            if (rc != SIMSYNC_OK)
                goto out;
            continue;
        }
        concurrent = 1;
        if (nkeep + 1 >= sizeof(keep) / sizeof(keep[0])) {
            rc = SIMSYNC_ETOOBIG;
            goto out;
        }
        keep[nkeep++] = old->versions[i];
    }
    keep[nkeep++] = merged ? merged : (Simsync__Version *)v;
    rec.versions = keep;
    rec.n_versions = nkeep;
    rc = item_put(txn, r->sub, (int)c->cls, c->item_id.data, old, &rec);
    if (rc == SIMSYNC_OK) {
        stats->applied++;
        if (concurrent)
            stats->siblings++;
    }
out:
    if (merged != NULL)
        simsync__version__free_unpacked(merged, NULL);
    item_record_free(old);
    return rc;
}

/* ------------------------------------------------------------ purging */

int
replica_horizon(struct replica *r, struct store_txn *txn, int cls,
                const uint64_t *ack_slots, size_t n, struct vv *out)
{
    struct vv k = VV_INIT;
    int rc = SIMSYNC_OK;

    vv_clear(out);
    for (size_t i = 0; rc == SIMSYNC_OK && i < n; i++) {
        rc = journal_knowledge_get(txn, r->sub, cls, ack_slots[i], &k);
        if (rc == SIMSYNC_OK)
            rc = i == 0 ? vv_copy(out, &k) : vv_meet(out, &k);
    }
    vv_free(&k);
    return rc;
}

/* The item ids in the tombstone index for (sub, cls) (ids NULL: only
 * count them). */
static int
tombs_collect(struct replica *r, struct store_txn *txn, int cls, uint8_t **ids,
              size_t *n)
{
    uint8_t prefix[SUB_BYTES + 1], *out = NULL;
    struct store_cursor *cur;
    const uint8_t *k;
    size_t kl, cnt = 0, cap = 0;
    int rc;

    if (ids != NULL)
        *ids = NULL;
    *n = 0;
    memcpy(prefix, r->sub, SUB_BYTES);
    prefix[SUB_BYTES] = (uint8_t)cls;
    rc = store_cursor_open(txn, STORE_TOMBS, &cur);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_cursor_seek(cur, prefix, sizeof(prefix), (const void **)&k, &kl,
                           NULL, NULL);
    while (rc == SIMSYNC_OK && kl == ITEM_KEY_BYTES &&
           memcmp(k, prefix, sizeof(prefix)) == 0) {
        if (ids != NULL && cnt == cap) {
            size_t nc = cap ? cap * 2 : 64;
            uint8_t *no = realloc(out, nc * ITEM_ID_BYTES);
            if (no == NULL) {
                rc = SIMSYNC_ENOMEM;
                break;
            }
            out = no;
            cap = nc;
        }
        if (ids != NULL)
            memcpy(out + cnt * ITEM_ID_BYTES, k + sizeof(prefix),
                   ITEM_ID_BYTES);
        cnt++;
        rc = store_cursor_next(cur, (const void **)&k, &kl, NULL, NULL);
    }
    store_cursor_close(cur);
    if (rc != SIMSYNC_OK && rc != SIMSYNC_ENOTFOUND) {
        free(out);
        return rc;
    }
    if (ids != NULL)
        *ids = out;
    *n = cnt;
    return SIMSYNC_OK;
}

int
replica_tombstones(struct replica *r, struct store_txn *txn, int cls,
                   uint64_t *count)
{
    size_t n;
    int rc = tombs_collect(r, txn, cls, NULL, &n);

    *count = rc == SIMSYNC_OK ? n : 0;
    return rc;
}

int
replica_purge(struct replica *r, struct store_txn *txn, int cls,
              const struct vv *horizon, uint64_t *purged)
{
    struct vv v = VV_INIT;
    uint8_t *ids;
    size_t n;
    uint64_t count = 0;
    int rc;

    if (purged != NULL)
        *purged = 0;
    if (horizon->n == 0)
        return SIMSYNC_OK;
    rc = tombs_collect(r, txn, cls, &ids, &n);
    for (size_t i = 0; rc == SIMSYNC_OK && i < n; i++) {
        const uint8_t *id = ids + i * ITEM_ID_BYTES;
        Simsync__ItemRecord *rec = NULL;
        enum vv_order o;

        rc = item_get(txn, r->sub, cls, id, &rec);
        if (rc == SIMSYNC_ENOTFOUND) {
            uint8_t key[ITEM_KEY_BYTES];
            item_key(key, r->sub, cls, id); /* stale index entry */
            rc = store_del(txn, STORE_TOMBS, key, sizeof(key));
            continue;
        }
        if (rc != SIMSYNC_OK)
            break;
        if (rec->n_versions == 1 && rec->versions[0]->deleted &&
            vv_from_pb(&v, rec->versions[0]->vv) == SIMSYNC_OK) {
            o = vv_compare(&v, horizon);
            if (o == VV_EQUAL || o == VV_LESSER) {
                rc = item_put(txn, r->sub, cls, id, rec, NULL);
                count++;
            }
        }
        item_record_free(rec);
    }
    free(ids);
    vv_free(&v);
    if (rc == SIMSYNC_OK && purged != NULL)
        *purged = count;
    return rc;
}

/* ------------------------------------------------------------ trusted */

int
replica_out_begin(struct replica *r, int cls, const char *name,
                  const Simsync__Version *v, struct dio *dio,
                  struct replica_out *o)
{
    int rc;

    memset(o, 0, sizeof(*o));
    o->dfd = o->fd = -1;
    if (v->content_hash.len != 32 || v->size > ITEM_SIZE_MAX)
        return SIMSYNC_EPROTO;
    if (v->hash_kind == HASH_KIND_CHUNKS) {
        /* The list must be the one hashed; the bytes are checked against
         * the list as they are put. */
        uint8_t h[32];
        if (v->n_chunks == 0 ||
            replica_chunk_list_hash(&r->keys, v, h) != SIMSYNC_OK)
            return SIMSYNC_EPROTO;
        if (!crypt_equal(h, v->content_hash.data, 32))
            return SIMSYNC_ECRYPTO;
    } else if (v->hash_kind != HASH_KIND_WHOLE) {
        return SIMSYNC_EPROTO; /* a kind this version does not know */
    }
    rc = folder_open_parent(r, cls, name, 1, &o->base);
    if (rc < 0)
        return rc;
    o->dfd = rc;
    rc = folder_make_tmp(o->dfd, o->tmp, sizeof(o->tmp));
    if (rc < 0) {
        close(o->dfd);
        o->dfd = -1;
        return rc;
    }
    o->fd = rc;
    o->v = v;
    o->durable = !r->defer_sync;
    /* A file of at least one buffer goes to the disk past the page cache
     * (a filesystem that refuses O_DIRECT gets buffered writes). */
    if (dio != NULL && v->size >= dio_bufsize(dio)) {
        int fl = fcntl(o->fd, F_GETFL);
        if (fl >= 0 && fcntl(o->fd, F_SETFL, fl | O_DIRECT) == 0)
            o->dio = dio;
    }
    if (v->hash_kind == HASH_KIND_CHUNKS) {
        o->by_chunks = 1;
        memcpy(o->cid_key, r->keys.chunk_id, 32);
        crypt_hash_init(&o->hs, 32, o->cid_key, 32);
    } else {
        crypt_hash_init(&o->hs, 32, r->keys.content, 32);
    }
    return SIMSYNC_OK;
}

int
replica_chunk_list_hash(const struct datakeys *k, const Simsync__Version *v,
                        uint8_t out[32])
{
    static const char label[] = "simsync chunk list 1";
    struct crypt_hash_state hs;
    uint8_t be[8];

    crypt_hash_init(&hs, 32, k->content, 32);
    crypt_hash_update(&hs, label, sizeof(label) - 1);
    store_be64(be, v->size);
    crypt_hash_update(&hs, be, 8);
    for (size_t i = 0; i < v->n_chunks; i++) {
        if (v->chunks[i]->id.len != CHUNK_ID_BYTES)
            return SIMSYNC_EPROTO;
        store_be64(be, v->chunks[i]->size);
        crypt_hash_update(&hs, be, 8);
        crypt_hash_update(&hs, v->chunks[i]->id.data, CHUNK_ID_BYTES);
    }
    return crypt_hash_final(&hs, out, 32);
}

/* HASH_KIND_CHUNKS: hash `len` bytes into the chunks they belong to,
 * checking each finished chunk against its id. */
static void
put_chunks(struct replica_out *o, const uint8_t *p, size_t len)
{
    while (len > 0 && !o->bad) {
        const Simsync__ChunkRef *c;
        size_t k;
        if (o->cj >= o->v->n_chunks) {
            o->bad = 1; /* more than the chunks hold */
            return;
        }
        c = o->v->chunks[o->cj];
        k = c->size - o->cfill < len ? (size_t)(c->size - o->cfill) : len;
        crypt_hash_update(&o->hs, p, k);
        o->cfill += k;
        p += k;
        len -= k;
        if (o->cfill == c->size) {
            uint8_t id[32];
            crypt_hash_final(&o->hs, id, sizeof(id));
            if (c->id.len != CHUNK_ID_BYTES ||
                !crypt_equal(id, c->id.data, CHUNK_ID_BYTES))
                o->bad = 1;
            o->cj++;
            o->cfill = 0;
            crypt_hash_init(&o->hs, 32, o->cid_key, 32);
        }
    }
}

static int
write_all(int fd, const uint8_t *p, size_t len)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = write(fd, p + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 && errno == ENOSPC ? SIMSYNC_ENOSPC : SIMSYNC_EIO;
        done += (size_t)n;
    }
    return SIMSYNC_OK;
}

/* Queue the buffer being filled (`pad`: its length rounded up to the
 * alignment with zeros, for the file's last block; commit cuts the file
 * to its size). */
static void
queue_direct(struct replica_out *o, int pad)
{
    size_t len = o->dlen;

    if (pad && len % DIO_ALIGN != 0) {
        size_t up = len + DIO_ALIGN - len % DIO_ALIGN;
        memset(o->dbuf + len, 0, up - len);
        len = up;
    }
    o->last = dio_write(o->dio, o->fd, o->dbuf, len, o->doff, &o->werr);
    o->doff += len;
    o->dbuf = NULL;
    o->dlen = 0;
}

/* Write len bytes to the temp file (or the dio buffers). */
static int
out_bytes(struct replica_out *o, const uint8_t *p, size_t len)
{
    o->total += len;
    if (o->dio == NULL)
        return write_all(o->fd, p, len);
    while (len > 0) {
        size_t cap = dio_bufsize(o->dio), k;
        if (o->dbuf == NULL)
            o->dbuf = dio_get(o->dio);
        k = cap - o->dlen < len ? cap - o->dlen : len;
        memcpy(o->dbuf + o->dlen, p, k);
        o->dlen += k;
        p += k;
        len -= k;
        if (o->dlen == cap)
            queue_direct(o, 0);
    }
    return SIMSYNC_OK;
}

int
replica_out_put(struct replica_out *o, const void *plain, size_t len)
{
    if (o->fd < 0 || o->checked)
        return SIMSYNC_EINVAL;
    if (len > o->v->size - o->total)
        return SIMSYNC_EPROTO; /* more than the version's size */
    if (o->by_chunks)
        put_chunks(o, plain, len);
    else
        crypt_hash_update(&o->hs, plain, len);
    return out_bytes(o, plain, len);
}

int
replica_out_put_chunk(struct replica_out *o, const uint8_t id[CHUNK_ID_BYTES],
                      const void *plain, size_t len)
{
    const Simsync__ChunkRef *c;

    if (!o->by_chunks || o->cfill != 0)
        return replica_out_put(o, plain, len);
    if (o->fd < 0 || o->checked)
        return SIMSYNC_EINVAL;
    if (len > o->v->size - o->total)
        return SIMSYNC_EPROTO;
    c = o->cj < o->v->n_chunks ? o->v->chunks[o->cj] : NULL;
    if (c == NULL || c->size != len || c->id.len != CHUNK_ID_BYTES ||
        !crypt_equal(c->id.data, id, CHUNK_ID_BYTES))
        o->bad = 1; /* not the next chunk of the list */
    else
        o->cj++;
    return out_bytes(o, plain, len);
}

int
replica_out_busy(const struct replica_out *o)
{
    return o->dio != NULL && o->last != 0 && dio_done(o->dio) < o->last;
}

void
replica_out_wait(struct replica_out *o)
{
    if (o->dio != NULL && o->last != 0)
        dio_wait(o->dio, o->last);
}

void
replica_out_abort(struct replica_out *o)
{
    if (o == NULL)
        return;
    if (o->dbuf != NULL)
        dio_put(o->dio, o->dbuf);
    o->dbuf = NULL;
    crypt_wipe(o->cid_key, sizeof(o->cid_key));
    replica_out_wait(o); /* no write may outlive the file */
    if (o->fd >= 0) {
        unlinkat(o->dfd, o->tmp, 0);
        close(o->fd);
    }
    if (o->dfd >= 0)
        close(o->dfd);
    o->fd = o->dfd = -1;
}

int
replica_out_commit(struct replica_out *o, struct stat *st)
{
    int rc = SIMSYNC_OK;

    if (o->fd < 0)
        return SIMSYNC_EINVAL;
    if (!o->checked) {
        uint8_t hash[32];
        if (o->by_chunks) {
            /* Every chunk matched its id (the list was checked against
             * the content hash at the start). */
            crypt_wipe(o->cid_key, sizeof(o->cid_key));
            if (o->total != o->v->size)
                rc = SIMSYNC_EPROTO;
            else if (o->bad || o->cj != o->v->n_chunks || o->cfill != 0)
                rc = SIMSYNC_ECRYPTO;
        } else {
            crypt_hash_final(&o->hs, hash, sizeof(hash));
            if (o->total != o->v->size)
                rc = SIMSYNC_EPROTO;
            else if (!crypt_equal(hash, o->v->content_hash.data, 32))
                rc = SIMSYNC_ECRYPTO;
        }
        if (rc != SIMSYNC_OK) {
            replica_out_abort(o);
            return rc;
        }
        o->checked = 1;
        if (o->dbuf != NULL)
            queue_direct(o, 1);
    }
    if (replica_out_busy(o))
        return SIMSYNC_EAGAIN;
    /* Past the last write: the direct writes' padding is cut off. */
    rc = o->werr;
    if (rc == SIMSYNC_OK && o->dio != NULL && o->doff != o->total &&
        ftruncate(o->fd, (off_t)o->total) != 0)
        rc = errno == ENOSPC ? SIMSYNC_ENOSPC : SIMSYNC_EIO;
    if (rc != SIMSYNC_OK) {
        replica_out_abort(o);
        return rc;
    }
    /* folder_commit_tmp removes the temp file when it fails. */
    rc = folder_commit_tmp(o->dfd, o->fd, o->tmp, o->base, o->durable, st);
    close(o->fd);
    close(o->dfd);
    o->fd = o->dfd = -1;
    return rc;
}

int
replica_out_inline(struct replica_out *o, const struct replica *r,
                   const uint8_t item_id[ITEM_ID_BYTES])
{
    const Simsync__Version *v = o->v;
    uint8_t *plain = NULL;
    size_t plen = 0;
    int rc = SIMSYNC_OK;

    if (v->n_chunks != 0 || v->size > INLINE_MAX)
        rc = SIMSYNC_EPROTO;
    if (rc == SIMSYNC_OK)
        rc = blob_decode(r->keys.seal, item_id, ITEM_ID_BYTES,
                         v->inline_body.data, v->inline_body.len, INLINE_MAX,
                         &plain, &plen);
    if (rc == SIMSYNC_OK && plen != v->size)
        rc = SIMSYNC_EPROTO;
    if (rc == SIMSYNC_OK)
        rc = replica_out_put(o, plain, plen);
    if (plain != NULL) {
        crypt_wipe(plain, plen);
        free(plain);
    }
    return rc;
}

/* Copy the local file `src` into o; it must be v's content (checked by
 * replica_out_commit's hash). */
static int
copy_local(struct replica *r, int cls, const char *src, struct replica_out *o)
{
    uint8_t buf[65536];
    const char *base;
    int dfd = folder_open_parent(r, cls, src, 0, &base), in, rc = SIMSYNC_OK;
    ssize_t got = 0;

    if (dfd < 0)
        return dfd;
    in = openat(dfd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    close(dfd);
    if (in < 0)
        return SIMSYNC_ENOTFOUND;
    while (rc == SIMSYNC_OK && (got = read(in, buf, sizeof(buf))) > 0)
        rc = replica_out_put(o, buf, (size_t)got);
    if (rc == SIMSYNC_OK && got < 0)
        rc = SIMSYNC_EIO;
    close(in);
    return rc;
}

/* Write the content of version v to a temp file in the item's folder and
 * rename it over `name`. Content comes from the inline body, a local file
 * of the same content (a rename) or the staged chunks; it must hash to
 * v->content_hash. */
static int
write_content(struct replica *r, struct store_txn *txn, int cls,
              const uint8_t item_id[ITEM_ID_BYTES], const char *name,
              const Simsync__Version *v, const char *moved_from,
              struct stat *st)
{
    char src[PATH_MAX];
    struct replica_out o;
    int rc = replica_out_begin(r, cls, name, v, NULL, &o);

    if (rc != SIMSYNC_OK)
        return rc;
    if (v->n_chunks == 0) {
        rc = replica_out_inline(&o, r, item_id);
    } else if (local_source(r, txn, cls, moved_from, v, src, sizeof(src))) {
        /* A rename: this node has the content under the old name (the
         * final hash check still applies). */
        rc = copy_local(r, cls, src, &o);
    } else {
        for (size_t j = 0; rc == SIMSYNC_OK && j < v->n_chunks; j++) {
            uint8_t key[SUB_BYTES + CHUNK_ID_BYTES], *plain = NULL;
            const void *val;
            size_t vl, plen = 0;
            if (v->chunks[j]->id.len != CHUNK_ID_BYTES ||
                v->chunks[j]->size > CHUNKER_MAX_DEFAULT) {
                rc = SIMSYNC_EPROTO;
                break;
            }
            chunk_key(key, r->sub, v->chunks[j]->id.data);
            rc = store_get(txn, STORE_STAGE, key, sizeof(key), &val, &vl);
            if (rc == SIMSYNC_OK)
                rc = blob_decode(r->keys.seal, v->chunks[j]->id.data,
                                 CHUNK_ID_BYTES, val, vl, v->chunks[j]->size,
                                 &plain, &plen);
            if (rc == SIMSYNC_OK && plen != v->chunks[j]->size)
                rc = SIMSYNC_EPROTO;
            if (rc == SIMSYNC_OK) /* opened under its id: not hashed again */
                rc = replica_out_put_chunk(&o, v->chunks[j]->id.data, plain,
                                           plen);
            free(plain);
        }
    }
    if (rc == SIMSYNC_OK)
        rc = replica_out_commit(&o, st);
    else
        replica_out_abort(&o);
    return rc;
}

int
replica_write_version(struct replica *r, struct store_txn *txn, int cls,
                      const uint8_t item_id[ITEM_ID_BYTES], const char *name,
                      const Simsync__Version *v, struct stat *st)
{
    return write_content(r, txn, cls, item_id, name, v, NULL, st);
}

/* Name of the conflict copy of `name` for the losing version: the same on
 * every node, since it depends only on the loser's author and clock. */
static void
copy_name(char *out, size_t len, const char *name,
          const Simsync__Version *loser)
{
    const char *slash = strrchr(name, '/');
    const char *base = slash ? slash + 1 : name;
    const char *dot = strrchr(base, '.');
    size_t stem = dot && dot != base ? (size_t)(dot - name) : strlen(name);
    const char *ext = stem < strlen(name) ? dot : "";
    size_t dir = (size_t)(base - name), room;

    /* The copy's last component must stay within NAME_MAX: shorten the
     * stem (the suffix is at most 43 bytes), keep the extension if it is
     * short. */
    if (strlen(ext) > 16)
        ext = "";
    room = NAME_MAX - 43 - strlen(ext);
    if (stem - dir > room)
        stem = dir + room;
    snprintf(out, len, "%.*s.conflict-%016llx-%llx%s", (int)stem, name,
             (unsigned long long)loser->author, (unsigned long long)loser->hlc,
             ext);
}

static int
add_conflict(struct replica *r, struct store_txn *txn, int cls,
             const char *name, const char *cname, int copy_is_mine)
{
    Simsync__ConflictRecord cr = SIMSYNC__CONFLICT_RECORD__INIT;
    uint8_t key[ITEM_KEY_BYTES], id[ITEM_ID_BYTES], *buf;
    size_t len;
    int rc;

    cr.cls = (uint32_t)cls;
    cr.name = (char *)name;
    cr.copy_name = (char *)cname;
    cr.copy_is_mine = copy_is_mine;
    cr.when_ms = r->now_ms;
    keys_item_id(&r->keys, cls, cname, id);
    item_key(key, r->sub, cls, id);
    rc = record_pack(&cr.base, &buf, &len);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_put(txn, STORE_CONFLICTS, key, sizeof(key), buf, len);
    free(buf);
    return rc;
}

/* The clock of a conflict copy. Every node that resolves a conflict must
 * make the same copy, and the copy must still travel to nodes that never
 * see the conflict: so it gets one dot of its own, on a replica id derived
 * from the loser's (author, hlc), counter 1. Two nodes making it make the
 * same version; an edit or deletion of the copy dominates it everywhere. */
struct copy_clock {
    Simsync__Version v;
    Simsync__VersionVector vv;
    Simsync__Dot dot;
    Simsync__Dot *dotp;
};

static void
copy_clock_init(struct copy_clock *c, const Simsync__Version *loser)
{
    uint8_t in[24], h[16];

    memcpy(in, "copy", 4);
    memset(in + 4, 0, 4);
    store_be64(in + 8, loser->author);
    store_be64(in + 16, loser->hlc);
    crypt_hash(h, sizeof(h), in, sizeof(in), NULL, 0);
    simsync__version__init(&c->v);
    simsync__version_vector__init(&c->vv);
    simsync__dot__init(&c->dot);
    c->dot.replica = store_get_be64(h) | 1;
    c->dot.counter = 1;
    c->dotp = &c->dot;
    c->vv.entries = &c->dotp;
    c->vv.n_entries = 1;
    c->v.vv = &c->vv;
    c->v.dots = &c->dotp;
    c->v.n_dots = 1;
    c->v.hlc = loser->hlc;
    c->v.author = loser->author;
}

/* Should the conflict copy `cname` be made? Not when this node already has
 * it, or a later version of it (edited or deleted after another node made
 * it). *old returned for record_copy. */
static int
copy_wanted(struct replica *r, struct store_txn *txn, int cls,
            const char *cname, const struct copy_clock *cc,
            Simsync__ItemRecord **old, int *wanted)
{
    uint8_t id[ITEM_ID_BYTES];
    enum vv_order o;
    int rc;

    *wanted = 1;
    keys_item_id(&r->keys, cls, cname, id);
    rc = item_get(txn, r->sub, cls, id, old);
    if (rc == SIMSYNC_ENOTFOUND)
        return SIMSYNC_OK;
    if (rc != SIMSYNC_OK)
        return rc;
    rc = version_equal_vv((*old)->versions[0], &cc->v, &o);
    if (rc == SIMSYNC_OK && o != VV_LESSER)
        *wanted = 0;
    return rc;
}

/* Record the copy (its file was just written) with its derived clock. */
static int
record_copy(struct replica *r, struct store_txn *txn, int cls,
            const char *cname, const struct copy_clock *cc,
            const Simsync__ItemRecord *old)
{
    struct vv k = {1, 1, &(struct dot){cc->dot.replica, 1}};
    int rc = folder_record(r, txn, cls, cname, NULL, &cc->v, old);

    if (rc == SIMSYNC_OK)
        rc = journal_knowledge_raise(txn, r->sub, cls, 0, &k);
    return rc;
}

/* The replica id of a resolution of versions a and b: derived from both
 * clocks, so every node resolving the same pair makes the same dot. */
static uint64_t
resolution_replica(const Simsync__Version *a, const Simsync__Version *b)
{
    struct crypt_hash_state hs;
    uint8_t h[16], pa[8];
    uint8_t *ea, *eb;
    size_t la, lb;

    if (record_pack(&a->vv->base, &ea, &la) != SIMSYNC_OK)
        return 1;
    if (record_pack(&b->vv->base, &eb, &lb) != SIMSYNC_OK) {
        free(ea);
        return 1;
    }
    /* Order-independent: hash the two encodings in a fixed order. */
    crypt_hash_init(&hs, sizeof(h), NULL, 0);
    crypt_hash_update(&hs, "resolve", 7);
    if (la < lb || (la == lb && memcmp(ea, eb, la) <= 0)) {
        store_be64(pa, la);
        crypt_hash_update(&hs, pa, 8);
        crypt_hash_update(&hs, ea, la);
        crypt_hash_update(&hs, eb, lb);
    } else {
        store_be64(pa, lb);
        crypt_hash_update(&hs, pa, 8);
        crypt_hash_update(&hs, eb, lb);
        crypt_hash_update(&hs, ea, la);
    }
    crypt_hash_final(&hs, h, sizeof(h));
    free(ea);
    free(eb);
    return store_get_be64(h) | 1;
}

/* The resolved item: `win`'s content with the merged clock of both sides.
 * A conflict resolution (`conflict`) is a change others must learn, so it
 * gets one dot on a replica id derived from both clocks: every node that
 * resolves the same pair makes the same version, and a later edit on any
 * of them dominates it everywhere. Equal content just merges clocks. */
static int
record_resolved(struct replica *r, struct store_txn *txn, int cls,
                const uint8_t id[ITEM_ID_BYTES], Simsync__ItemRecord *old,
                const Simsync__Version *win, const Simsync__Version *lose,
                const struct stat *st, int conflict)
{
    Simsync__Version *m = NULL;
    Simsync__ItemRecord keep = *old;
    Simsync__Dot rdot = SIMSYNC__DOT__INIT, *rdotp = &rdot;
    Simsync__Dot **saved_dots = NULL;
    size_t saved_n = 0;
    struct vv mv = VV_INIT;
    Simsync__VersionVector *own = NULL, nvv;
    int rc = merge_equal(win, lose, &m);

    if (rc != SIMSYNC_OK)
        return rc;
    memset(&nvv, 0, sizeof(nvv));
    if (conflict) {
        rdot.replica = resolution_replica(win, lose);
        rdot.counter = 1;
        rc = vv_from_pb(&mv, m->vv);
        if (rc == SIMSYNC_OK)
            rc = vv_raise(&mv, rdot.replica, 1);
        if (rc == SIMSYNC_OK)
            rc = vv_to_pb(&nvv, &mv);
        if (rc == SIMSYNC_OK)
            rc = journal_knowledge_raise(
                txn, r->sub, cls, 0,
                &(struct vv){1, 1, &(struct dot){rdot.replica, 1}});
        if (rc != SIMSYNC_OK)
            goto out;
        own = m->vv;
        m->vv = &nvv;
        saved_dots = m->dots;
        saved_n = m->n_dots;
        m->dots = &rdotp;
        m->n_dots = 1;
    }
    keep.versions = &m;
    keep.n_versions = 1;
    if (st != NULL)
        folder_stat_fill(&keep, st);
    rc = item_put(txn, r->sub, cls, id, old, &keep);
    if (conflict) {
        /* Give protobuf-c its own members back before freeing. */
        m->vv = own;
        m->dots = saved_dots;
        m->n_dots = saved_n;
    }
out:
    simsync__version__free_unpacked(m, NULL);
    pb_vv_free(&nvv);
    vv_free(&mv);
    return rc;
}

static int
trusted_apply(struct replica *r, struct store_txn *txn,
              const Simsync__Change *c, struct apply_stats *stats)
{
    Simsync__ItemRecord *old = NULL, rec = SIMSYNC__ITEM_RECORD__INIT;
    Simsync__ItemMeta *meta = NULL;
    Simsync__Version *vp = c->version;
    const Simsync__Version *v = c->version, *l;
    const uint8_t *id = c->item_id.data;
    int cls = (int)c->cls, rc;
    struct stat st;
    enum vv_order o;
    char cname[PATH_MAX];

    rc = replica_open_meta(r, cls, id, v, &meta);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = item_get(txn, r->sub, cls, id, &old);
    if (rc == SIMSYNC_ENOTFOUND)
        rc = SIMSYNC_OK;
    if (rc != SIMSYNC_OK)
        goto out;
    /* An edit not scanned yet is recorded first, so it takes part. */
    {
        /* Also a new local file not scanned yet: it becomes a version
         * first, so it is compared instead of overwritten. */
        int changed;
        rc = folder_refresh(r, txn, cls, meta->name, id, old, &changed);
        item_record_free(old);
        old = NULL;
        if (rc == SIMSYNC_OK)
            rc = item_get(txn, r->sub, cls, id, &old);
        if (rc == SIMSYNC_ENOTFOUND)
            rc = SIMSYNC_OK;
        if (rc != SIMSYNC_OK)
            goto out;
    }
    rc = journal_hlc_observe(txn, v->hlc);
    if (rc != SIMSYNC_OK)
        goto out;
    if (old == NULL) {
        o = VV_GREATER;
    } else {
        rc = version_equal_vv(v, old->versions[0], &o);
        if (rc != SIMSYNC_OK)
            goto out;
    }
    if (o == VV_EQUAL || o == VV_LESSER) {
        stats->skipped++;
        goto out;
    }
    rec.name = meta->name;
    rec.pinned = old != NULL && old->pinned;
    if (o == VV_GREATER) {
        if (v->deleted) {
            rc = folder_remove(r, cls, meta->name);
        } else if (replica_lazy_skip(r, cls, old)) {
            /* Metadata only: the content stays on the hub until fetched. */
            rec.remote = 1;
        } else {
            rc = write_content(r, txn, cls, id, meta->name, v, meta->moved_from,
                               &st);
            if (rc == SIMSYNC_OK)
                folder_stat_fill(&rec, &st);
        }
        rec.versions = &vp;
        rec.n_versions = 1;
        if (rc == SIMSYNC_OK)
            rc = item_put(txn, r->sub, cls, id, old, &rec);
        if (rc == SIMSYNC_OK)
            stats->applied++;
        goto out;
    }
    /* Concurrent: record_resolved merges the two clocks. */
    l = old->versions[0];
    if (same_content(v, l)) {
        rc = record_resolved(r, txn, cls, id, old, l, v, NULL, 0);
        stats->applied++;
        goto out;
    }
    if (a_wins(v, l)) {
        /* Incoming wins (it is live: a live version beats a tombstone):
         * keep our content as a copy unless ours was a deletion. */
        if (!l->deleted) {
            Simsync__ItemRecord *cold = NULL;
            struct copy_clock cc;
            int wanted;
            copy_name(cname, sizeof(cname), meta->name, l);
            copy_clock_init(&cc, l);
            rc = copy_wanted(r, txn, cls, cname, &cc, &cold, &wanted);
            if (rc == SIMSYNC_OK && wanted) {
                rc = folder_copy(r, cls, meta->name, cname);
                if (rc == SIMSYNC_OK)
                    rc = record_copy(r, txn, cls, cname, &cc, cold);
                if (rc == SIMSYNC_OK)
                    rc = add_conflict(r, txn, cls, meta->name, cname, 1);
                stats->conflicts++;
            }
            item_record_free(cold);
        }
        if (rc == SIMSYNC_OK)
            rc = write_content(r, txn, cls, id, meta->name, v, meta->moved_from,
                               &st);
        if (rc == SIMSYNC_OK)
            rc = record_resolved(r, txn, cls, id, old, v, l, &st, 1);
    } else {
        /* Ours wins: theirs becomes the copy unless it is a deletion. */
        if (!v->deleted) {
            Simsync__ItemRecord *cold = NULL;
            struct copy_clock cc;
            int wanted;
            copy_name(cname, sizeof(cname), meta->name, v);
            copy_clock_init(&cc, v);
            rc = copy_wanted(r, txn, cls, cname, &cc, &cold, &wanted);
            if (rc == SIMSYNC_OK && wanted) {
                rc = write_content(r, txn, cls, id, cname, v, meta->moved_from,
                                   &st);
                if (rc == SIMSYNC_OK)
                    rc = record_copy(r, txn, cls, cname, &cc, cold);
                if (rc == SIMSYNC_OK)
                    rc = add_conflict(r, txn, cls, meta->name, cname, 0);
                stats->conflicts++;
            }
            item_record_free(cold);
        }
        if (rc == SIMSYNC_OK)
            rc = record_resolved(r, txn, cls, id, old, l, v, NULL, 1);
    }
    if (rc == SIMSYNC_OK)
        stats->applied++;
out:
    item_record_free(old);
    if (meta != NULL)
        simsync__item_meta__free_unpacked(meta, NULL);
    return rc;
}

struct batch_arg {
    struct replica *r;
    Simsync__Change *const *ch;
    size_t n;
    uint64_t peer;
    const uint64_t *pending_down;
    struct apply_stats stats;
};

static int
apply_fn(struct store_txn *txn, void *arg)
{
    struct batch_arg *b = arg;
    struct vv resume = VV_INIT;
    int rc = SIMSYNC_OK;

    memset(&b->stats, 0, sizeof(b->stats));
    for (size_t i = 0; rc == SIMSYNC_OK && i < b->n; i++) {
        const Simsync__Change *c = b->ch[i];
        if (c->cls >= CLS_COUNT || c->item_id.len != ITEM_ID_BYTES ||
            c->version == NULL) {
            rc = SIMSYNC_EPROTO;
            break;
        }
        rc = b->r->trusted ? trusted_apply(b->r, txn, c, &b->stats)
                           : hub_apply(b->r, txn, c, &b->stats);
    }
    /* Resume cursor: per class, the highest dot of each origin seen. */
    for (int cls = 0; rc == SIMSYNC_OK && b->peer != 0 && cls < CLS_COUNT;
         cls++) {
        vv_clear(&resume);
        for (size_t i = 0; rc == SIMSYNC_OK && i < b->n; i++) {
            const Simsync__Dot *e = b->ch[i]->entry;
            if ((int)b->ch[i]->cls != cls || e == NULL)
                continue;
            /* Only the entry streamed: other dots of a merged version may
             * belong to origins not streamed yet. */
            rc = vv_raise(&resume, e->replica, e->counter);
        }
        if (rc == SIMSYNC_OK && resume.n > 0)
            rc = journal_knowledge_raise(txn, b->r->sub, cls, b->peer, &resume);
    }
    /* Staged chunks of applied items are not needed any more. */
    for (size_t i = 0; rc == SIMSYNC_OK && b->r->trusted && i < b->n; i++)
        rc = replica_unstage(b->r, txn, b->ch[i]->version);
    if (rc == SIMSYNC_OK && b->r->trusted && b->pending_down != NULL)
        rc = journal_pending_down_put(txn, b->pending_down);
    vv_free(&resume);
    return rc;
}

int
replica_unstage(struct replica *r, struct store_txn *txn,
                const Simsync__Version *v)
{
    for (size_t j = 0; j < v->n_chunks; j++) {
        uint8_t key[SUB_BYTES + CHUNK_ID_BYTES];
        int rc;
        if (v->chunks[j]->id.len != CHUNK_ID_BYTES)
            continue;
        chunk_key(key, r->sub, v->chunks[j]->id.data);
        rc = store_del(txn, STORE_STAGE, key, sizeof(key));
        if (rc != SIMSYNC_OK && rc != SIMSYNC_ENOTFOUND)
            return rc;
    }
    return SIMSYNC_OK;
}

int
replica_apply_batch(struct replica *r, Simsync__Change *const *ch, size_t n,
                    uint64_t peer, const uint64_t *pending_down,
                    struct apply_stats *stats)
{
    struct batch_arg b = {r, ch, n, peer, pending_down, {0}};
    int rc = store_write(r->st, apply_fn, &b);

    if (rc == SIMSYNC_OK && stats != NULL) {
        stats->applied += b.stats.applied;
        stats->skipped += b.stats.skipped;
        stats->conflicts += b.stats.conflicts;
        stats->siblings += b.stats.siblings;
    }
    return rc;
}
