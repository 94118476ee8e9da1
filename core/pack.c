/* pack.c -- packed change batches between paired trusted nodes: open the
 * sealed parts and compress the batch into the session's stream on the
 * way out; decompress under a hard cap, check, and seal again on the way
 * in. See pack.h. Plaintext buffers are wiped before they are freed. */
#include "pack.h"

#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "blob.h"
#include "crypt.h"
#include "journal.h"
#include "pbcheck.h"
#include "replica.h"

#define META_MAX 65536 /* sealed meta a receiver accepts (protocol 7.8) */

struct pack_stream {
    ZSTD_CCtx *cctx; /* tx */
    ZSTD_DCtx *dctx; /* rx */
    int broken;      /* an error left the stream out of step */
};

int
pack_tx_new(struct pack_stream **out)
{
    struct pack_stream *p = calloc(1, sizeof(*p));
    size_t r;

    *out = NULL;
    if (p == NULL)
        return SIMSYNC_ENOMEM;
    p->cctx = ZSTD_createCCtx();
    if (p->cctx == NULL) {
        free(p);
        return SIMSYNC_ENOMEM;
    }
    r = ZSTD_CCtx_setParameter(p->cctx, ZSTD_c_compressionLevel, PACK_LEVEL);
    if (!ZSTD_isError(r))
        r = ZSTD_CCtx_setParameter(p->cctx, ZSTD_c_windowLog, PACK_WINDOW_LOG);
    /* One frame for the whole direction: its size is never known. */
    if (!ZSTD_isError(r))
        r = ZSTD_CCtx_setParameter(p->cctx, ZSTD_c_contentSizeFlag, 0);
    if (!ZSTD_isError(r))
        r = ZSTD_CCtx_setParameter(p->cctx, ZSTD_c_checksumFlag, 0);
    if (ZSTD_isError(r)) {
        pack_stream_free(p);
        return SIMSYNC_ENOMEM;
    }
    *out = p;
    return SIMSYNC_OK;
}

int
pack_rx_new(struct pack_stream **out)
{
    struct pack_stream *p = calloc(1, sizeof(*p));

    *out = NULL;
    if (p == NULL)
        return SIMSYNC_ENOMEM;
    p->dctx = ZSTD_createDCtx();
    if (p->dctx == NULL ||
        ZSTD_isError(ZSTD_DCtx_setParameter(p->dctx, ZSTD_d_windowLogMax,
                                            PACK_WINDOW_LOG))) {
        pack_stream_free(p);
        return SIMSYNC_ENOMEM;
    }
    *out = p;
    return SIMSYNC_OK;
}

void
pack_stream_free(struct pack_stream *p)
{
    if (p == NULL)
        return;
    ZSTD_freeCCtx(p->cctx);
    ZSTD_freeDCtx(p->dctx);
    free(p);
}

static void
wipe_free(void *p, size_t len)
{
    if (p == NULL)
        return;
    crypt_wipe(p, len);
    free(p);
}

/* ------------------------------------------------------------ sender */

/* What one change needs while it is packed: the opened parts. */
struct opened {
    uint8_t *meta; /* encoded ItemMeta */
    size_t mlen;
    uint8_t *body; /* plaintext inline body, or NULL */
    size_t blen;
};

/* Open change c's meta and body and fill *pc (pointing into *o and c). */
static int
open_change(const struct datakeys *k, const Simsync__Change *c,
            Simsync__PackedChange *pc, Simsync__Version *vc, Simsync__Dot *ent,
            struct opened *o)
{
    const Simsync__Version *v = c->version;
    Simsync__ItemMeta *m = NULL;
    uint8_t id[ITEM_ID_BYTES], hash[32];
    int rc = SIMSYNC_OK;

    if (v == NULL || c->item_id.len != ITEM_ID_BYTES || c->cls >= CLS_COUNT ||
        v->meta.len < CRYPT_SEAL_OVERHEAD || v->meta.len > META_MAX)
        return SIMSYNC_EPROTO;
    o->mlen = v->meta.len - CRYPT_SEAL_OVERHEAD;
    o->meta = malloc(o->mlen ? o->mlen : 1);
    if (o->meta == NULL)
        return SIMSYNC_ENOMEM;
    if (crypt_unseal(o->meta, v->meta.data, v->meta.len, c->item_id.data,
                     ITEM_ID_BYTES, k->seal) != SIMSYNC_OK)
        return SIMSYNC_EPROTO;
    /* The receiver derives the item id from the name: it must be the one
     * the change is sent for. */
    m = pb_unpack(&simsync__item_meta__descriptor, o->mlen, o->meta, &rc);
    if (m != NULL && m->name == NULL)
        rc = SIMSYNC_EPROTO;
    if (rc == SIMSYNC_OK) {
        keys_item_id(k, (int)c->cls, m->name, id);
        if (!crypt_equal(id, c->item_id.data, ITEM_ID_BYTES))
            rc = SIMSYNC_EPROTO;
    }
    if (m != NULL)
        simsync__item_meta__free_unpacked(m, NULL);
    if (rc != SIMSYNC_OK)
        return rc;

    *vc = *v;
    vc->meta.data = NULL;
    vc->meta.len = 0;
    vc->inline_body.data = NULL;
    vc->inline_body.len = 0;
    simsync__packed_change__init(pc);
    pc->cls = c->cls;
    pc->version = vc;
    pc->meta.data = o->meta;
    pc->meta.len = o->mlen;
    pc->content_hash = v->content_hash;
    if (!v->deleted && v->n_chunks == 0) {
        /* Live and unchunked: the body travels in clear. */
        if (v->inline_body.len == 0)
            return SIMSYNC_EPROTO;
        rc = blob_decode(k->seal, c->item_id.data, ITEM_ID_BYTES,
                         v->inline_body.data, v->inline_body.len, INLINE_MAX,
                         &o->body, &o->blen);
        if (rc != SIMSYNC_OK)
            return rc == SIMSYNC_ENOMEM ? rc : SIMSYNC_EPROTO;
        pc->body.data = o->body;
        pc->body.len = o->blen;
        crypt_hash(hash, sizeof(hash), o->body, o->blen, k->content, 32);
        if (v->hash_kind == HASH_KIND_WHOLE && v->content_hash.len == 32 &&
            memcmp(hash, v->content_hash.data, 32) == 0)
            pc->content_hash.len = 0; /* the receiver derives it */
    } else if (v->inline_body.len != 0) {
        return SIMSYNC_EPROTO; /* a body on a tombstone or chunked item */
    }
    if (pc->content_hash.len == 0)
        pc->content_hash.data = NULL;
    vc->content_hash.data = NULL;
    vc->content_hash.len = 0;
    if (c->entry != NULL &&
        !(v->n_dots > 0 && v->dots[0]->replica == c->entry->replica &&
          v->dots[0]->counter == c->entry->counter)) {
        *ent = *c->entry;
        pc->entry = ent;
    }
    return SIMSYNC_OK;
}

/* Compress `len` bytes at `in` into the stream, flushed: *z returned. */
static int
deflate_flush(struct pack_stream *tx, const uint8_t *in, size_t len,
              uint8_t **z, size_t *zlen)
{
    size_t cap = ZSTD_compressBound(len) + 64, r;
    ZSTD_inBuffer ib = {in, len, 0};
    ZSTD_outBuffer ob;
    uint8_t *buf = malloc(cap);

    if (buf == NULL)
        return SIMSYNC_ENOMEM;
    ob = (ZSTD_outBuffer){buf, cap, 0};
    do {
        if (ob.pos == ob.size) {
            uint8_t *nb = realloc(ob.dst, ob.size * 2);
            if (nb == NULL) {
                free(ob.dst);
                return SIMSYNC_ENOMEM;
            }
            ob.dst = nb;
            ob.size *= 2;
        }
        r = ZSTD_compressStream2(tx->cctx, &ob, &ib, ZSTD_e_flush);
    } while (!ZSTD_isError(r) && r != 0);
    if (ZSTD_isError(r)) {
        free(ob.dst);
        return ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation
                   ? SIMSYNC_ENOMEM
                   : SIMSYNC_EPROTO;
    }
    *z = ob.dst;
    *zlen = ob.pos;
    return SIMSYNC_OK;
}

int
pack_encode(struct pack_stream *tx, const struct datakeys *k,
            const Simsync__ChangeBatch *b, uint8_t **z, size_t *zlen,
            uint64_t *size)
{
    Simsync__PackedChanges pcs = SIMSYNC__PACKED_CHANGES__INIT;
    Simsync__PackedChange *pc = NULL, **pcp = NULL;
    Simsync__Version *vc = NULL;
    Simsync__Dot *ent = NULL;
    struct opened *o = NULL;
    uint8_t *plain = NULL;
    size_t n = b->n_changes, plen = 0;
    int rc = SIMSYNC_OK;

    *z = NULL;
    *zlen = 0;
    *size = 0;
    if (tx == NULL || tx->cctx == NULL || tx->broken)
        return SIMSYNC_EINVAL;
    pc = calloc(n ? n : 1, sizeof(*pc));
    pcp = calloc(n ? n : 1, sizeof(*pcp));
    vc = calloc(n ? n : 1, sizeof(*vc));
    ent = calloc(n ? n : 1, sizeof(*ent));
    o = calloc(n ? n : 1, sizeof(*o));
    if (pc == NULL || pcp == NULL || vc == NULL || ent == NULL || o == NULL)
        rc = SIMSYNC_ENOMEM;
    for (size_t i = 0; rc == SIMSYNC_OK && i < n; i++) {
        rc = open_change(k, b->changes[i], &pc[i], &vc[i], &ent[i], &o[i]);
        pcp[i] = &pc[i];
    }
    if (rc == SIMSYNC_OK) {
        pcs.seq = b->seq;
        pcs.changes = pcp;
        pcs.n_changes = n;
        pcs.remaining = b->remaining;
        pcs.n_remaining = b->n_remaining;
        rc = record_pack(&pcs.base, &plain, &plen);
    }
    if (rc == SIMSYNC_OK && plen > PACK_PLAIN_MAX)
        rc = SIMSYNC_ETOOBIG;
    if (rc == SIMSYNC_OK)
        rc = deflate_flush(tx, plain, plen, z, zlen);
    if (rc == SIMSYNC_OK)
        *size = plen;
    else
        tx->broken = 1;
    wipe_free(plain, plen);
    for (size_t i = 0; o != NULL && i < n; i++) {
        wipe_free(o[i].meta, o[i].mlen);
        wipe_free(o[i].body, o[i].blen);
    }
    free(o);
    free(ent);
    free(vc);
    free(pcp);
    free(pc);
    return rc;
}

/* ------------------------------------------------------------ receiver */

/* Decompress exactly `size` bytes from z. Every byte of z must be used,
 * and the stream must hold nothing more for this batch. */
static int
inflate_exact(struct pack_stream *rx, const uint8_t *z, size_t zlen,
              size_t size, uint8_t **out, const char **why)
{
    ZSTD_inBuffer ib = {z, zlen, 0};
    ZSTD_outBuffer ob;
    uint8_t *buf = malloc(size), extra;
    size_t r;

    if (buf == NULL)
        return SIMSYNC_ENOMEM;
    ob = (ZSTD_outBuffer){buf, size, 0};
    for (;;) {
        size_t in0 = ib.pos, out0 = ob.pos;
        r = ZSTD_decompressStream(rx->dctx, &ob, &ib);
        if (ZSTD_isError(r)) {
            *why =
                ZSTD_getErrorCode(r) == ZSTD_error_frameParameter_windowTooLarge
                    ? "packed batch asks for too large a window"
                    : "packed batch does not decompress";
            wipe_free(buf, size);
            return ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation
                       ? SIMSYNC_ENOMEM
                       : SIMSYNC_EPROTO;
        }
        if (ib.pos == ib.size || ob.pos == ob.size ||
            (ib.pos == in0 && ob.pos == out0))
            break; /* done, full, or stuck: the checks below tell */
    }
    if (ib.pos < ib.size) {
        *why = "packed batch holds more than its declared size";
        wipe_free(buf, size);
        return SIMSYNC_EPROTO;
    }
    while (ob.pos < ob.size) {
        /* The decoder may still hold output of what it read. */
        ZSTD_inBuffer none = {NULL, 0, 0};
        size_t before = ob.pos;
        r = ZSTD_decompressStream(rx->dctx, &ob, &none);
        if (ZSTD_isError(r) || ob.pos == before)
            break;
    }
    if (ob.pos < ob.size) {
        *why = "packed batch is truncated";
        wipe_free(buf, size);
        return SIMSYNC_EPROTO;
    }
    {
        /* Nothing beyond the declared size may be left over. */
        ZSTD_inBuffer none = {NULL, 0, 0};
        ZSTD_outBuffer one = {&extra, 1, 0};
        r = ZSTD_decompressStream(rx->dctx, &one, &none);
        if (ZSTD_isError(r) || one.pos != 0) {
            *why = "packed batch holds more than its declared size";
            wipe_free(buf, size);
            return SIMSYNC_EPROTO;
        }
    }
    *out = buf;
    return SIMSYNC_OK;
}

/* Read a varint at p[*off..len); 0 when it is cut short or too long. */
static int
varint(const uint8_t *p, size_t len, size_t *off, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && *off < len; shift += 7) {
        uint8_t b = p[(*off)++];
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return 1;
    }
    return 0;
}

/* Count the changes (field 2) of an encoded PackedChanges without
 * decoding it, so that a batch of millions of empty changes is refused
 * before one allocation is made for each. -1: not a valid encoding. */
static long
count_changes(const uint8_t *p, size_t len)
{
    size_t off = 0;
    long n = 0;
    uint64_t tag, v;

    while (off < len) {
        if (!varint(p, len, &off, &tag))
            return -1;
        switch (tag & 7) {
        case 0:
            if (!varint(p, len, &off, &v))
                return -1;
            break;
        case 1:
            if (len - off < 8)
                return -1;
            off += 8;
            break;
        case 2:
            if (!varint(p, len, &off, &v) || v > len - off)
                return -1;
            off += (size_t)v;
            n += (tag >> 3) == 2;
            break;
        case 5:
            if (len - off < 4)
                return -1;
            off += 4;
            break;
        default:
            return -1;
        }
    }
    return n;
}

/* Owned pieces of one rebuilt change. */
struct sealed {
    uint8_t id[ITEM_ID_BYTES];
    uint8_t hash[32];
    uint8_t *meta; /* sealed ItemMeta */
    size_t mlen;
    uint8_t *body; /* blob */
};

static int
rebuild_change(const struct datakeys *k, const Simsync__PackedChange *pc,
               Simsync__Change *c, Simsync__Version *v, struct sealed *s,
               const char **why)
{
    Simsync__ItemMeta *m;
    size_t blen = 0;
    int live, rc = SIMSYNC_OK;

    if (pc->cls >= CLS_COUNT || pc->version == NULL ||
        pc->version->n_dots == 0 || pc->version->meta.len != 0 ||
        pc->version->inline_body.len != 0 ||
        pc->version->content_hash.len != 0 || pc->meta.len > META_MAX) {
        *why = "malformed packed change";
        return SIMSYNC_EPROTO;
    }
    /* The name, checked as replica_open_meta checks a sealed one: a NUL
     * inside a string makes the record pack back shorter. */
    m = pb_unpack(&simsync__item_meta__descriptor, pc->meta.len, pc->meta.data,
                  &rc);
    if (m == NULL)
        *why =
            rc == SIMSYNC_ENOMEM ? "out of memory" : "malformed packed change";
    else if (m->name == NULL || !replica_name_ok(m->name) ||
             simsync__item_meta__get_packed_size(m) != pc->meta.len)
        rc = SIMSYNC_EPROTO;
    if (rc == SIMSYNC_OK)
        keys_item_id(k, (int)pc->cls, m->name, s->id);
    if (m != NULL)
        simsync__item_meta__free_unpacked(m, NULL);
    if (rc != SIMSYNC_OK) {
        *why = "packed change without a valid name";
        return rc;
    }
    *v = *pc->version;
    live = !v->deleted && v->n_chunks == 0;
    if ((!live && pc->body.len != 0) || pc->body.len > INLINE_MAX ||
        (pc->content_hash.len != 0 && pc->content_hash.len != 32) ||
        (!v->deleted && v->n_chunks > 0 && pc->content_hash.len == 0)) {
        *why = "malformed packed change";
        return SIMSYNC_EPROTO;
    }
    s->mlen = pc->meta.len + CRYPT_SEAL_OVERHEAD;
    s->meta = malloc(s->mlen);
    if (s->meta == NULL)
        return SIMSYNC_ENOMEM;
    rc = crypt_seal(s->meta, pc->meta.data, pc->meta.len, s->id, ITEM_ID_BYTES,
                    k->seal);
    if (rc == SIMSYNC_OK && live)
        rc = blob_encode(k->seal, s->id, ITEM_ID_BYTES, pc->body.data,
                         pc->body.len, &s->body, &blen);
    if (rc != SIMSYNC_OK)
        return rc;
    v->meta.data = s->meta;
    v->meta.len = s->mlen;
    if (live) {
        v->inline_body.data = s->body;
        v->inline_body.len = blen;
    }
    if (pc->content_hash.len == 32) {
        v->content_hash = pc->content_hash;
    } else if (live) {
        crypt_hash(s->hash, sizeof(s->hash), pc->body.data, pc->body.len,
                   k->content, 32);
        v->content_hash.data = s->hash;
        v->content_hash.len = sizeof(s->hash);
    }
    simsync__change__init(c);
    c->cls = pc->cls;
    c->item_id.data = s->id;
    c->item_id.len = ITEM_ID_BYTES;
    c->version = v;
    c->entry = pc->entry != NULL ? pc->entry : v->dots[0];
    return SIMSYNC_OK;
}

int
pack_decode(struct pack_stream *rx, const struct datakeys *k, const uint8_t *z,
            size_t zlen, uint64_t size, Simsync__Envelope **out,
            const char **why)
{
    Simsync__PackedChanges *pcs = NULL;
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__ChangeBatch b = SIMSYNC__CHANGE_BATCH__INIT;
    Simsync__Change *ch = NULL, **chp = NULL;
    Simsync__Version *vs = NULL;
    struct sealed *sl = NULL;
    const char *dummy;
    uint8_t *plain = NULL, *packed = NULL;
    size_t n = 0, plen = 0;
    int rc;

    *out = NULL;
    if (why == NULL)
        why = &dummy;
    *why = NULL;
    if (rx == NULL || rx->dctx == NULL || rx->broken) {
        *why = "packed stream out of step";
        return SIMSYNC_EPROTO;
    }
    if (size == 0 || size > PACK_PLAIN_MAX) {
        *why = "packed batch declares a size over its limit";
        rx->broken = 1;
        return SIMSYNC_EPROTO;
    }
    rc = inflate_exact(rx, z, zlen, (size_t)size, &plain, why);
    if (rc == SIMSYNC_OK) {
        long count = count_changes(plain, (size_t)size);
        if (count < 1 || count > PACK_CHANGES_MAX) {
            *why = count > PACK_CHANGES_MAX
                       ? "packed batch with too many changes"
                       : "undecodable packed batch";
            rc = SIMSYNC_EPROTO;
        }
    }
    if (rc == SIMSYNC_OK) {
        pcs = pb_unpack(&simsync__packed_changes__descriptor, (size_t)size,
                        plain, &rc);
        if (pcs == NULL && rc == SIMSYNC_ENOMEM) {
            *why = "out of memory";
        } else if (pcs == NULL || !pb_decoded_ok(&pcs->base) ||
                   pcs->n_changes == 0) {
            *why = "undecodable packed batch";
            rc = SIMSYNC_EPROTO;
        }
    }
    if (rc == SIMSYNC_OK) {
        n = pcs->n_changes;
        ch = calloc(n, sizeof(*ch));
        chp = calloc(n, sizeof(*chp));
        vs = calloc(n, sizeof(*vs));
        sl = calloc(n, sizeof(*sl));
        if (ch == NULL || chp == NULL || vs == NULL || sl == NULL)
            rc = SIMSYNC_ENOMEM;
    }
    for (size_t i = 0; rc == SIMSYNC_OK && i < n; i++) {
        rc = rebuild_change(k, pcs->changes[i], &ch[i], &vs[i], &sl[i], why);
        chp[i] = &ch[i];
    }
    if (rc == SIMSYNC_OK) {
        b.seq = pcs->seq;
        b.changes = chp;
        b.n_changes = n;
        b.remaining = pcs->remaining;
        b.n_remaining = pcs->n_remaining;
        env.msg_case = SIMSYNC__ENVELOPE__MSG_BATCH;
        env.batch = &b;
        rc = record_pack(&env.base, &packed, &plen);
    }
    if (rc == SIMSYNC_OK) {
        *out = simsync__envelope__unpack(NULL, plen, packed);
        if (*out == NULL)
            rc = SIMSYNC_ENOMEM;
    }
    if (rc != SIMSYNC_OK) {
        rx->broken = 1;
        if (*why == NULL)
            *why = simsync_strerror(rc);
    }
    free(packed);
    for (size_t i = 0; sl != NULL && i < n; i++) {
        free(sl[i].meta);
        free(sl[i].body);
    }
    free(sl);
    free(vs);
    free(chp);
    free(ch);
    if (pcs != NULL)
        simsync__packed_changes__free_unpacked(pcs, NULL);
    wipe_free(plain, (size_t)size);
    return rc;
}
