/* journal.c -- item records, the latest-dot index, knowledge, counters.
 * See journal.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "pbcheck.h"

static const char *const class_names[CLS_COUNT] = {
    "contacts", "mail", "browser",  "archive",
    "apps",     "pim",  "settings", "rights",
};

const char *
class_name(int cls)
{
    return (cls >= 0 && cls < CLS_COUNT) ? class_names[cls] : NULL;
}

int
class_parse(const char *name)
{
    for (int i = 0; i < CLS_COUNT; i++)
        if (strcmp(name, class_names[i]) == 0)
            return i;
    return -1;
}

int
class_mask_parse(const char *list, uint32_t *mask, char *bad, size_t badlen)
{
    const char *p = list;

    *mask = 0;
    if (list == NULL || *list == '\0')
        return SIMSYNC_EINVAL;
    if (strcmp(list, "all") == 0) {
        *mask = CLS_ALL;
        return SIMSYNC_OK;
    }
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char word[32];
        int c;

        if (n == 0 || n >= sizeof(word)) {
            if (bad != NULL && badlen > 0)
                snprintf(bad, badlen, "%.*s", (int)(n < 31 ? n : 31), p);
            return SIMSYNC_EINVAL;
        }
        memcpy(word, p, n);
        word[n] = '\0';
        c = class_parse(word);
        if (c < 0) {
            if (bad != NULL && badlen > 0)
                snprintf(bad, badlen, "%s", word);
            return SIMSYNC_EINVAL;
        }
        *mask |= 1u << c;
        p += n;
        if (*p == ',')
            p++;
    }
    return SIMSYNC_OK;
}

void
class_mask_format(uint32_t mask, char *buf, size_t len)
{
    size_t off = 0;

    if (len == 0)
        return;
    buf[0] = '\0';
    for (int i = 0; i < CLS_COUNT; i++) {
        if (!(mask & (1u << i)))
            continue;
        int n = snprintf(buf + off, len - off, "%s%s", off ? "," : "",
                         class_names[i]);
        if (n < 0 || (size_t)n >= len - off)
            return;
        off += (size_t)n;
    }
}

void
item_key(uint8_t out[ITEM_KEY_BYTES], const uint8_t sub[SUB_BYTES], int cls,
         const uint8_t id[ITEM_ID_BYTES])
{
    memcpy(out, sub, SUB_BYTES);
    out[SUB_BYTES] = (uint8_t)cls;
    memcpy(out + SUB_BYTES + 1, id, ITEM_ID_BYTES);
}

static void
journal_key(uint8_t out[SUB_BYTES + 17], const uint8_t sub[SUB_BYTES], int cls,
            uint64_t origin, uint64_t counter)
{
    memcpy(out, sub, SUB_BYTES);
    out[SUB_BYTES] = (uint8_t)cls;
    store_be64(out + SUB_BYTES + 1, origin);
    store_be64(out + SUB_BYTES + 9, counter);
}

#define JKEY_BYTES (SUB_BYTES + 17 + ITEM_ID_BYTES)

/* A journal entry's key ends with the item id, so that an item's index
 * entries are exactly its own even if two items ever share a dot (dots
 * derived from other clocks, see replica.c). */
static void
journal_entry_key(uint8_t out[JKEY_BYTES], const uint8_t sub[SUB_BYTES],
                  int cls, uint64_t origin, uint64_t counter,
                  const uint8_t id[ITEM_ID_BYTES])
{
    journal_key(out, sub, cls, origin, counter);
    memcpy(out + SUB_BYTES + 17, id, ITEM_ID_BYTES);
}

int
record_pack(const ProtobufCMessage *m, uint8_t **buf, size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(n ? n : 1);

    if (b == NULL)
        return SIMSYNC_ENOMEM;
    protobuf_c_message_pack(m, b);
    *buf = b;
    *len = n;
    return SIMSYNC_OK;
}

void
item_record_free(Simsync__ItemRecord *rec)
{
    if (rec != NULL)
        simsync__item_record__free_unpacked(rec, NULL);
}

int
item_get(struct store_txn *txn, const uint8_t sub[SUB_BYTES], int cls,
         const uint8_t id[ITEM_ID_BYTES], Simsync__ItemRecord **out)
{
    uint8_t key[ITEM_KEY_BYTES];
    const void *v;
    size_t vl;
    int rc;

    *out = NULL;
    item_key(key, sub, cls, id);
    rc = store_get(txn, STORE_ITEMS, key, sizeof(key), &v, &vl);
    if (rc != SIMSYNC_OK)
        return rc;
    if (vl > RECORD_MAX)
        return SIMSYNC_EPROTO;
    *out = pb_unpack(&simsync__item_record__descriptor, vl, v, &rc);
    return *out ? SIMSYNC_OK : rc;
}

static int
index_dots(struct store_txn *txn, const uint8_t sub[SUB_BYTES], int cls,
           const uint8_t id[ITEM_ID_BYTES], const Simsync__ItemRecord *rec,
           int add)
{
    uint8_t key[JKEY_BYTES];
    int rc;

    if (rec == NULL)
        return SIMSYNC_OK;
    for (size_t i = 0; i < rec->n_versions; i++) {
        const Simsync__Version *v = rec->versions[i];
        for (size_t j = 0; j < v->n_dots; j++) {
            journal_entry_key(key, sub, cls, v->dots[j]->replica,
                              v->dots[j]->counter, id);
            if (add) {
                rc = store_put(txn, STORE_JOURNAL, key, sizeof(key), "", 0);
            } else {
                rc = store_del(txn, STORE_JOURNAL, key, sizeof(key));
                if (rc == SIMSYNC_ENOTFOUND)
                    rc = SIMSYNC_OK;
            }
            if (rc != SIMSYNC_OK)
                return rc;
        }
    }
    return SIMSYNC_OK;
}

int
item_put(struct store_txn *txn, const uint8_t sub[SUB_BYTES], int cls,
         const uint8_t id[ITEM_ID_BYTES], const Simsync__ItemRecord *old,
         const Simsync__ItemRecord *rec)
{
    uint8_t key[ITEM_KEY_BYTES];
    uint8_t *buf;
    size_t len;
    int rc;

    rc = index_dots(txn, sub, cls, id, old, 0);
    if (rc != SIMSYNC_OK)
        return rc;
    item_key(key, sub, cls, id);
    /* The tombstone index lets a purge visit tombstones only. */
    if (rec != NULL && rec->n_versions == 1 && rec->versions[0]->deleted)
        rc = store_put(txn, STORE_TOMBS, key, sizeof(key), "", 0);
    else if (old != NULL && old->n_versions == 1 && old->versions[0]->deleted)
        rc = store_del(txn, STORE_TOMBS, key, sizeof(key));
    if (rc == SIMSYNC_ENOTFOUND)
        rc = SIMSYNC_OK;
    if (rc != SIMSYNC_OK)
        return rc;
    if (rec == NULL) {
        rc = store_del(txn, STORE_ITEMS, key, sizeof(key));
        return rc == SIMSYNC_ENOTFOUND ? SIMSYNC_OK : rc;
    }
    rc = record_pack(&rec->base, &buf, &len);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_put(txn, STORE_ITEMS, key, sizeof(key), buf, len);
    free(buf);
    if (rc != SIMSYNC_OK)
        return rc;
    return index_dots(txn, sub, cls, id, rec, 1);
}

static int
meta_u64(struct store_txn *txn, const char *name, uint64_t *v)
{
    const void *p;
    size_t l;
    int rc = store_get(txn, STORE_META, name, strlen(name), &p, &l);

    if (rc == SIMSYNC_ENOTFOUND) {
        *v = 0;
        return SIMSYNC_OK;
    }
    if (rc != SIMSYNC_OK)
        return rc;
    if (l != 8)
        return SIMSYNC_EPROTO;
    *v = store_get_be64(p);
    return SIMSYNC_OK;
}

static int
meta_put_u64(struct store_txn *txn, const char *name, uint64_t v)
{
    uint8_t b[8];

    store_be64(b, v);
    return store_put(txn, STORE_META, name, strlen(name), b, sizeof(b));
}

int
journal_pending_down_get(struct store_txn *txn, uint64_t out[CLS_COUNT])
{
    const uint8_t *p;
    size_t l;
    int rc =
        store_get(txn, STORE_META, "pending_down", 12, (const void **)&p, &l);

    memset(out, 0, CLS_COUNT * sizeof(*out));
    if (rc == SIMSYNC_ENOTFOUND)
        return SIMSYNC_OK;
    if (rc != SIMSYNC_OK)
        return rc;
    if (l != CLS_COUNT * 8)
        return SIMSYNC_EPROTO;
    for (int c = 0; c < CLS_COUNT; c++)
        out[c] = store_get_be64(p + 8 * c);
    return SIMSYNC_OK;
}

int
journal_pending_down_put(struct store_txn *txn, const uint64_t v[CLS_COUNT])
{
    uint8_t b[CLS_COUNT * 8];

    for (int c = 0; c < CLS_COUNT; c++)
        store_be64(b + 8 * c, v[c]);
    return store_put(txn, STORE_META, "pending_down", 12, b, sizeof(b));
}

int
journal_next_counter(struct store_txn *txn, uint64_t *counter)
{
    uint64_t c;
    int rc = meta_u64(txn, "counter", &c);

    if (rc != SIMSYNC_OK)
        return rc;
    if (c == UINT64_MAX)
        return SIMSYNC_ETOOBIG;
    *counter = c + 1;
    return meta_put_u64(txn, "counter", c + 1);
}

int
journal_counter_get(struct store_txn *txn, uint64_t *counter)
{
    return meta_u64(txn, "counter", counter);
}

int
journal_hlc_next(struct store_txn *txn, uint64_t now_ms, uint64_t *hlc)
{
    uint64_t last, wall = now_ms << 16, next;
    int rc = meta_u64(txn, "hlc", &last);

    if (rc != SIMSYNC_OK)
        return rc;
    next = wall > last ? wall : last + 1;
    *hlc = next;
    return meta_put_u64(txn, "hlc", next);
}

int
journal_hlc_observe(struct store_txn *txn, uint64_t hlc)
{
    uint64_t last;
    int rc = meta_u64(txn, "hlc", &last);

    if (rc != SIMSYNC_OK || hlc <= last)
        return rc;
    return meta_put_u64(txn, "hlc", hlc);
}

static void
knowledge_key(uint8_t out[SUB_BYTES + 17], const uint8_t sub[SUB_BYTES],
              int cls, uint64_t peer, uint64_t origin)
{
    journal_key(out, sub, cls, peer, origin);
}

int
journal_knowledge_get(struct store_txn *txn, const uint8_t sub[SUB_BYTES],
                      int cls, uint64_t peer, struct vv *out)
{
    uint8_t key[SUB_BYTES + 17];
    struct store_cursor *cur;
    const uint8_t *k, *v;
    size_t kl, vl;
    int rc;

    vv_clear(out);
    knowledge_key(key, sub, cls, peer, 0);
    rc = store_cursor_open(txn, STORE_KNOWLEDGE, &cur);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_cursor_seek(cur, key, sizeof(key), (const void **)&k, &kl,
                           (const void **)&v, &vl);
    while (rc == SIMSYNC_OK) {
        if (kl != sizeof(key) || memcmp(k, key, SUB_BYTES + 9) != 0)
            break;
        if (vl != 8) {
            rc = SIMSYNC_EPROTO;
            break;
        }
        rc = vv_set(out, store_get_be64(k + SUB_BYTES + 9), store_get_be64(v));
        if (rc != SIMSYNC_OK)
            break;
        rc = store_cursor_next(cur, (const void **)&k, &kl, (const void **)&v,
                               &vl);
    }
    store_cursor_close(cur);
    return rc == SIMSYNC_ENOTFOUND ? SIMSYNC_OK : rc;
}

int
journal_knowledge_raise(struct store_txn *txn, const uint8_t sub[SUB_BYTES],
                        int cls, uint64_t peer, const struct vv *k)
{
    struct vv cur = VV_INIT;
    uint8_t key[SUB_BYTES + 17], val[8];
    int rc = journal_knowledge_get(txn, sub, cls, peer, &cur);

    for (size_t i = 0; rc == SIMSYNC_OK && i < k->n; i++) {
        if (vv_get(&cur, k->e[i].replica) >= k->e[i].counter)
            continue;
        knowledge_key(key, sub, cls, peer, k->e[i].replica);
        store_be64(val, k->e[i].counter);
        rc =
            store_put(txn, STORE_KNOWLEDGE, key, sizeof(key), val, sizeof(val));
    }
    vv_free(&cur);
    return rc;
}

int
journal_knowledge_drop(struct store_txn *txn, const uint8_t sub[SUB_BYTES],
                       int cls, uint64_t peer)
{
    uint8_t key[SUB_BYTES + 17];
    struct store_cursor *cur;
    const uint8_t *k;
    size_t kl;
    int rc;

    if (peer == 0)
        return SIMSYNC_EINVAL;
    knowledge_key(key, sub, cls, peer, 0);
    rc = store_cursor_open(txn, STORE_KNOWLEDGE, &cur);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_cursor_seek(cur, key, sizeof(key), (const void **)&k, &kl, NULL,
                           NULL);
    while (rc == SIMSYNC_OK && kl == sizeof(key) &&
           memcmp(k, key, SUB_BYTES + 9) == 0) {
        rc = store_cursor_del(cur);
        if (rc == SIMSYNC_OK)
            rc = store_cursor_seek(cur, key, sizeof(key), (const void **)&k,
                                   &kl, NULL, NULL);
    }
    store_cursor_close(cur);
    return rc == SIMSYNC_ENOTFOUND ? SIMSYNC_OK : rc;
}

int
journal_scan(struct store_txn *txn, const uint8_t sub[SUB_BYTES], int cls,
             const struct vv *above, journal_entry_fn cb, void *arg)
{
    uint8_t key[SUB_BYTES + 17];
    struct store_cursor *cur;
    const uint8_t *k, *v;
    size_t kl, vl;
    uint64_t origin, counter, floor;
    int rc;

    journal_key(key, sub, cls, 0, 0);
    rc = store_cursor_open(txn, STORE_JOURNAL, &cur);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_cursor_seek(cur, key, sizeof(key), (const void **)&k, &kl,
                           (const void **)&v, &vl);
    while (rc == SIMSYNC_OK) {
        if (kl != JKEY_BYTES || memcmp(k, key, SUB_BYTES + 1) != 0)
            break;
        origin = store_get_be64(k + SUB_BYTES + 1);
        counter = store_get_be64(k + SUB_BYTES + 9);
        floor = vv_get(above, origin);
        if (counter <= floor) {
            /* Jump past what the peer has of this origin. */
            if (floor == UINT64_MAX) {
                if (origin == UINT64_MAX)
                    break;
                journal_key(key, sub, cls, origin + 1, 0);
            } else {
                journal_key(key, sub, cls, origin, floor + 1);
            }
            rc = store_cursor_seek(cur, key, sizeof(key), (const void **)&k,
                                   &kl, (const void **)&v, &vl);
            continue;
        }
        struct dot d = {origin, counter};
        rc = cb(&d, k + SUB_BYTES + 17, arg);
        if (rc != 0)
            break;
        rc = store_cursor_next(cur, (const void **)&k, &kl, (const void **)&v,
                               &vl);
    }
    store_cursor_close(cur);
    return rc == SIMSYNC_ENOTFOUND ? SIMSYNC_OK : rc;
}

int
vv_from_pb_dots(struct vv *v, Simsync__Dot *const *dots, size_t n)
{
    struct dot stackbuf[16] = {{0, 0}}, *e = stackbuf;
    int rc;

    if (n > VV_MAX_ENTRIES)
        return SIMSYNC_ETOOBIG;
    if (n > 16) {
        e = malloc(n * sizeof(*e));
        if (e == NULL)
            return SIMSYNC_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        e[i].replica = dots[i]->replica;
        e[i].counter = dots[i]->counter;
    }
    rc = vv_from_entries(v, e, n);
    if (e != stackbuf)
        free(e);
    return rc;
}

int
vv_from_pb(struct vv *v, const Simsync__VersionVector *pb)
{
    if (pb == NULL) {
        vv_clear(v);
        return SIMSYNC_OK;
    }
    return vv_from_pb_dots(v, pb->entries, pb->n_entries);
}

int
vv_to_pb(Simsync__VersionVector *pb, const struct vv *v)
{
    Simsync__Dot *d;
    Simsync__Dot **p;

    simsync__version_vector__init(pb);
    if (v->n == 0)
        return SIMSYNC_OK;
    /* One block: the pointer array followed by the dots. */
    p = malloc(v->n * (sizeof(*p) + sizeof(*d)));
    if (p == NULL)
        return SIMSYNC_ENOMEM;
    d = (Simsync__Dot *)(p + v->n);
    for (size_t i = 0; i < v->n; i++) {
        simsync__dot__init(&d[i]);
        d[i].replica = v->e[i].replica;
        d[i].counter = v->e[i].counter;
        p[i] = &d[i];
    }
    pb->entries = p;
    pb->n_entries = v->n;
    return SIMSYNC_OK;
}

void
pb_vv_free(Simsync__VersionVector *pb)
{
    if (pb == NULL)
        return;
    free(pb->entries);
    pb->entries = NULL;
    pb->n_entries = 0;
}
