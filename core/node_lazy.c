/* node_lazy.c -- lazy classes (seed 000 [0056], the terminal's storage as
 * a window on the hub's): items of a lazy class arrive as metadata only
 * (name, size, content hash); `fetch` brings one item's content, `pin`
 * keeps it here and up to date, `evict` frees the space again. None of
 * these is a change: nothing is journaled, nothing syncs, and a missing
 * file of a remote item is not a deletion.
 *
 * Crash order: fetch writes the file (temp file, rename) before the record
 * says it is here; evict records "remote" before it unlinks. Either way a
 * crash leaves a file whose content matches the record's hash, which the
 * next scan takes as "here" (folder_refresh), never a deletion. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "folder.h"
#include "node.h"
#include "pbcheck.h"
#include "session.h"

int
simsync_lazy_get(struct simsync_node *n, char *buf, size_t len)
{
    if (n->lazy == 0)
        snprintf(buf, len, "none");
    else
        class_mask_format(n->lazy, buf, len);
    return SIMSYNC_OK;
}

int
simsync_lazy_set(struct simsync_node *n, const char *list)
{
    char bad[32];
    uint32_t mask = 0;

    if (!n->bound)
        return node_fail(n, SIMSYNC_ESTATE,
                         "register first; lazy classes are part of the "
                         "binding");
    if (strcmp(list, "none") != 0 &&
        class_mask_parse(list, &mask, bad, sizeof(bad)) != SIMSYNC_OK)
        return node_fail(n, SIMSYNC_EINVAL, "unknown class '%s'", bad);
    n->lazy = mask;
    return node_save_binding(n);
}

/* "class/name" -> class and name (pointing into s). */
static int
split_item(struct simsync_node *n, const char *s, int *cls, const char **name)
{
    const char *slash = s ? strchr(s, '/') : NULL;
    char cname[16];

    if (slash == NULL || (size_t)(slash - s) >= sizeof(cname))
        return node_fail(n, SIMSYNC_EINVAL,
                         "'%s' is not CLASS/NAME (like contacts/ana.vcf)",
                         s ? s : "");
    memcpy(cname, s, (size_t)(slash - s));
    cname[slash - s] = '\0';
    *cls = class_parse(cname);
    *name = slash + 1;
    if (*cls < 0)
        return node_fail(n, SIMSYNC_EINVAL, "unknown class '%s'", cname);
    if (!replica_name_ok(*name))
        return node_fail(n, SIMSYNC_EINVAL, "'%s' is not a safe item name",
                         *name);
    return SIMSYNC_OK;
}

/* The live record of cls/name into *out (item_record_free). */
static int
live_record(struct simsync_node *n, struct replica *r, int cls,
            const char *name, uint8_t id[ITEM_ID_BYTES],
            Simsync__ItemRecord **out)
{
    struct store_txn *txn;
    int rc;

    keys_item_id(&r->keys, cls, name, id);
    rc = store_txn_begin(r->st, 1, &txn);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = item_get(txn, r->sub, cls, id, out);
    store_txn_abort(txn);
    if (rc == SIMSYNC_OK &&
        ((*out)->n_versions != 1 || (*out)->versions[0]->deleted)) {
        item_record_free(*out);
        *out = NULL;
        rc = SIMSYNC_ENOTFOUND;
    }
    if (rc == SIMSYNC_ENOTFOUND)
        return node_fail(n, rc, "no item %s/%s here (see 'simsync ls %s')",
                         class_name(cls), name, class_name(cls));
    return rc;
}

/* One named item of this terminal: its class, name, id and live record,
 * with the replica set up (on success the caller wipes r's keys and frees
 * *rec). */
struct named_item {
    struct replica r;
    int cls;
    const char *name;
    uint8_t id[ITEM_ID_BYTES];
    Simsync__ItemRecord *rec;
};

static int
item_open(struct simsync_node *n, const char *item, struct named_item *it)
{
    int rc;

    n->err[0] = '\0';
    it->rec = NULL;
    if (!n->bound)
        return node_fail(n, SIMSYNC_ESTATE, "this terminal is not registered");
    rc = split_item(n, item, &it->cls, &it->name);
    if (rc == SIMSYNC_OK)
        rc = replica_setup(n, &it->r);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = live_record(n, &it->r, it->cls, it->name, it->id, &it->rec);
    if (rc != SIMSYNC_OK)
        keys_wipe(&it->r.keys);
    return rc;
}

static void
item_close(struct named_item *it)
{
    item_record_free(it->rec);
    it->rec = NULL;
    keys_wipe(&it->r.keys);
}

/* ------------------------------------------------------------ list */

int
simsync_items(struct simsync_node *n, uint32_t classes,
              simsync_item_info_fn fn, void *arg)
{
    struct store_txn *txn;
    struct store_cursor *cur = NULL;
    uint8_t prefix[SUB_BYTES];
    const uint8_t *k, *v;
    size_t kl, vl;
    int rc;

    if (!n->bound)
        return node_fail(n, SIMSYNC_ESTATE, "this terminal is not registered");
    node_sub_key(n, prefix);
    rc = store_txn_begin(n->st, 1, &txn);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_cursor_open(txn, STORE_ITEMS, &cur);
    if (rc == SIMSYNC_OK)
        rc = store_cursor_seek(cur, prefix, sizeof(prefix), (const void **)&k,
                               &kl, (const void **)&v, &vl);
    while (rc == SIMSYNC_OK && kl > SUB_BYTES &&
           memcmp(k, prefix, SUB_BYTES) == 0) {
        Simsync__ItemRecord *rec =
            pb_unpack(&simsync__item_record__descriptor, vl, v, &rc);
        int cls = k[SUB_BYTES];
        if (rec == NULL) {
            break;
        }
        if ((classes == 0 || (cls < CLS_COUNT && (classes & (1u << cls)))) &&
            rec->name != NULL &&
            rec->n_versions == 1 && !rec->versions[0]->deleted) {
            struct simsync_item_info it;
            const Simsync__Version *ver = rec->versions[0];
            memset(&it, 0, sizeof(it));
            it.cls = class_name(cls);
            it.name = rec->name;
            it.size = ver->size;
            if (ver->content_hash.len == 32)
                memcpy(it.hash, ver->content_hash.data, 32);
            it.local = !rec->remote;
            it.pinned = rec->pinned;
            fn(arg, &it);
        }
        item_record_free(rec);
        rc = store_cursor_next(cur, (const void **)&k, &kl, (const void **)&v,
                               &vl);
    }
    if (cur != NULL)
        store_cursor_close(cur);
    store_txn_abort(txn);
    return rc == SIMSYNC_ENOTFOUND ? SIMSYNC_OK : rc;
}

/* ------------------------------------------------------------ fetch */

struct fetched {
    struct replica *r;
    size_t n, cap;
    uint8_t (*ids)[32];
    uint8_t **blobs;
    size_t *lens;
};

/* Ask the hub for the version's chunks, check each, stage them all. */
static int
fetch_chunks(struct simsync_node *n, struct replica *r,
             const Simsync__Version *v)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT, *in = NULL;
    Simsync__FetchRequest f = SIMSYNC__FETCH_REQUEST__INIT;
    ProtobufCBinaryData *ids;
    struct fetched acc = {0};
    struct link l = {0};
    uint32_t mask;
    int rc;

    ids = calloc(v->n_chunks, sizeof(*ids));
    acc.ids = calloc(v->n_chunks, sizeof(*acc.ids));
    acc.blobs = calloc(v->n_chunks, sizeof(*acc.blobs));
    acc.lens = calloc(v->n_chunks, sizeof(*acc.lens));
    if (ids == NULL || acc.ids == NULL || acc.blobs == NULL || acc.lens == NULL)
        rc = SIMSYNC_ENOMEM;
    else
        rc = link_open(n, n->hub_addr, n->hub_pk, NULL, &l);
    if (rc == SIMSYNC_OK)
        rc = node_hello(n, &l, SIMSYNC__OP__OP_FETCH, n->classes, &mask);
    for (size_t j = 0; rc == SIMSYNC_OK && j < v->n_chunks; j++) {
        if (v->chunks[j]->id.len != 32)
            rc = SIMSYNC_EPROTO;
        else
            ids[j] = v->chunks[j]->id;
    }
    if (rc == SIMSYNC_OK) {
        f.chunk_ids = ids;
        f.n_chunk_ids = v->n_chunks;
        env.msg_case = SIMSYNC__ENVELOPE__MSG_FETCH;
        env.fetch = &f;
        rc = node_send_env(l.ch, &env);
    }
    while (rc == SIMSYNC_OK) {
        const Simsync__ChunkData *cd;
        rc = node_recv_env(l.ch, (void **)&in);
        if (rc != SIMSYNC_OK)
            break;
        if (in->msg_case == SIMSYNC__ENVELOPE__MSG_FETCH_DONE) {
            simsync__envelope__free_unpacked(in, NULL);
            break;
        }
        cd = in->msg_case == SIMSYNC__ENVELOPE__MSG_CHUNK ? in->chunk : NULL;
        if (cd == NULL || cd->id.len != 32 || acc.n == v->n_chunks)
            rc = SIMSYNC_EPROTO;
        else if (cd->blob.len == 0)
            rc = node_fail(n, SIMSYNC_ECRYPTO,
                           "the hub no longer has a chunk of this item");
        else
            rc = replica_check_chunk(r, cd->id.data, cd->blob.data,
                                     cd->blob.len);
        if (rc == SIMSYNC_OK) {
            acc.blobs[acc.n] = malloc(cd->blob.len);
            if (acc.blobs[acc.n] == NULL) {
                rc = SIMSYNC_ENOMEM;
            } else {
                memcpy(acc.blobs[acc.n], cd->blob.data, cd->blob.len);
                memcpy(acc.ids[acc.n], cd->id.data, 32);
                acc.lens[acc.n] = cd->blob.len;
                acc.n++;
            }
        }
        simsync__envelope__free_unpacked(in, NULL);
    }
    link_close(&l);
    if (rc == SIMSYNC_OK) {
        const uint8_t **idp = calloc(acc.n ? acc.n : 1, sizeof(*idp));
        if (idp == NULL) {
            rc = SIMSYNC_ENOMEM;
        } else {
            for (size_t i = 0; i < acc.n; i++)
                idp[i] = acc.ids[i];
            rc = replica_put_chunks(r, acc.n, idp,
                                    (const uint8_t *const *)acc.blobs,
                                    acc.lens);
            free(idp);
        }
    }
    for (size_t i = 0; i < acc.n; i++)
        free(acc.blobs[i]);
    free(acc.blobs);
    free(acc.lens);
    free(acc.ids);
    free(ids);
    return rc;
}

struct write_arg {
    struct replica *r;
    int cls;
    const char *name;
    const uint8_t *id;
    int pin; /* -1 leave, 0 unpin, 1 pin */
};

/* Write the content from the inline body or the staged chunks, then
 * record it as here, in one transaction (the version is unchanged). */
static int
write_fn(struct store_txn *txn, void *arg)
{
    struct write_arg *a = arg;
    Simsync__ItemRecord *old = NULL, rec;
    struct stat st;
    int rc = item_get(txn, a->r->sub, a->cls, a->id, &old);

    if (rc != SIMSYNC_OK)
        return rc;
    if (old->n_versions != 1 || old->versions[0]->deleted) {
        item_record_free(old);
        return SIMSYNC_ENOTFOUND;
    }
    rec = *old;
    if (old->remote) {
        rc = replica_write_version(a->r, txn, a->cls, a->id, a->name,
                                   old->versions[0], &st);
        if (rc == SIMSYNC_OK) {
            folder_stat_fill(&rec, &st);
            rec.remote = 0;
        }
        if (rc == SIMSYNC_OK)
            rc = replica_unstage(a->r, txn, old->versions[0]);
    }
    if (a->pin >= 0)
        rec.pinned = a->pin;
    if (rc == SIMSYNC_OK)
        rc = item_put(txn, a->r->sub, a->cls, a->id, old, &rec);
    item_record_free(old);
    return rc;
}

static int
fetch_item(struct simsync_node *n, const char *item, int pin, int *was_local)
{
    struct named_item it;
    struct write_arg wa;
    int rc = item_open(n, item, &it);

    *was_local = 0;
    if (rc != SIMSYNC_OK)
        return rc;
    *was_local = !it.rec->remote;
    if (it.rec->remote) {
        rc = check_sim_binding(n);
        if (rc == SIMSYNC_OK && it.rec->versions[0]->n_chunks > 0)
            rc = fetch_chunks(n, &it.r, it.rec->versions[0]);
    }
    if (rc == SIMSYNC_OK) {
        wa = (struct write_arg){&it.r, it.cls, it.name, it.id, pin};
        rc = store_write(n->st, write_fn, &wa);
        if (rc == SIMSYNC_ECRYPTO && n->err[0] == '\0')
            node_fail(n, rc,
                      "%s as the hub served it does not match its hash: "
                      "the hub's copy was changed",
                      item);
    }
    item_close(&it);
    if (rc != SIMSYNC_OK && n->err[0] == '\0')
        node_fail(n, rc, "cannot fetch %s: %s", item, simsync_strerror(rc));
    return rc;
}

int
simsync_fetch(struct simsync_node *n, const char *item, int *was_local)
{
    return fetch_item(n, item, -1, was_local);
}

int
simsync_pin(struct simsync_node *n, const char *item, int on, int *was_local)
{
    return fetch_item(n, item, on ? 1 : 0, was_local);
}

/* ------------------------------------------------------------ evict */

struct evict_arg {
    struct simsync_node *n;
    struct replica *r;
    int cls;
    const char *name;
    const uint8_t *id;
    uint64_t freed;
};

static int
evict_fn(struct store_txn *txn, void *arg)
{
    struct evict_arg *a = arg;
    Simsync__ItemRecord *old = NULL, rec;
    const Simsync__Version *v;
    struct vv hubk = VV_INIT;
    struct stat st;
    int rc = item_get(txn, a->r->sub, a->cls, a->id, &old);

    if (rc != SIMSYNC_OK)
        return rc;
    v = old->versions[0];
    if (old->n_versions != 1 || v->deleted) {
        rc = SIMSYNC_ENOTFOUND;
        goto out;
    }
    if (old->remote)
        goto out; /* nothing here to free */
    if (old->pinned) {
        rc = node_fail(a->n, SIMSYNC_EREFUSED,
                       "%s/%s is pinned; unpin it first ('simsync unpin')",
                       class_name(a->cls), a->name);
        goto out;
    }
    /* The file must be the recorded version, and the hub must have it:
     * otherwise evicting would lose an edit. */
    if (folder_stat(a->r, a->cls, a->name, &st) != SIMSYNC_OK ||
        !folder_stat_matches(old, &st)) {
        rc = node_fail(a->n, SIMSYNC_EREFUSED,
                       "%s/%s changed since the last sync; sync first",
                       class_name(a->cls), a->name);
        goto out;
    }
    rc = journal_knowledge_get(
        txn, a->r->sub, a->cls,
        session_ack_peer(node_peer_of(a->n->hub_pk)), &hubk);
    for (size_t i = 0; rc == SIMSYNC_OK && i < v->n_dots; i++)
        if (v->dots[i]->replica == a->r->self &&
            vv_get(&hubk, v->dots[i]->replica) < v->dots[i]->counter)
            rc = node_fail(a->n, SIMSYNC_EREFUSED,
                           "%s/%s has an edit the hub does not have yet; "
                           "sync first",
                           class_name(a->cls), a->name);
    if (rc != SIMSYNC_OK)
        goto out;
    rec = *old;
    rec.remote = 1;
    rec.present = 0;
    rec.st_size = 0;
    rec.st_ino = 0;
    rec.st_mtime_ns = 0;
    rec.st_ctime_ns = 0;
    rc = item_put(txn, a->r->sub, a->cls, a->id, old, &rec);
    /* Recorded as remote first: a crash before the unlink leaves a file
     * the next scan recognises by its hash. */
    if (rc == SIMSYNC_OK) {
        rc = folder_remove(a->r, a->cls, a->name);
        a->freed = (uint64_t)st.st_size;
    }
out:
    vv_free(&hubk);
    item_record_free(old);
    return rc;
}

int
simsync_evict(struct simsync_node *n, const char *item, uint64_t *freed)
{
    struct named_item it;
    struct evict_arg ea;
    int rc = item_open(n, item, &it);

    *freed = 0;
    if (rc != SIMSYNC_OK)
        return rc;
    ea = (struct evict_arg){n, &it.r, it.cls, it.name, it.id, 0};
    rc = store_write(n->st, evict_fn, &ea);
    *freed = ea.freed;
    item_close(&it);
    if (rc != SIMSYNC_OK && n->err[0] == '\0')
        node_fail(n, rc, "cannot evict %s: %s", item, simsync_strerror(rc));
    return rc;
}
