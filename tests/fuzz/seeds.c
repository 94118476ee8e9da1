/* seeds.c -- write the seed corpus of every fuzz target from real
 * messages made by the project's own encoders, plus the malformed cases
 * each decoder must refuse.
 *
 * Usage: fuzz_seeds OUTDIR    (writes OUTDIR/<target>/<case>; the
 * committed corpus in tests/fuzz/corpus was made this way, crashes found
 * by fuzzing are added there by hand under their own names) */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <zstd.h>

#include "blob.h"
#include "crypt.h"
#include "frame.h"
#include "fuzz.h"
#include "keys.h"
#include "noise.h"
#include "pack.h"
#include "simsync.pb-c.h"

static const char *outdir;
static int failed;

static void
put(const char *target, const char *name, const void *data, size_t len)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", outdir, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        failed = 1;
    snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len) {
        fprintf(stderr, "seeds: cannot write %s\n", path);
        failed = 1;
    }
    if (f != NULL)
        fclose(f);
}

/* A protobuf-c message, packed, as a seed. */
static void
put_msg(const char *target, const char *name, const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len ? len : 1);

    if (buf == NULL) {
        failed = 1;
        return;
    }
    protobuf_c_message_pack(m, buf);
    put(target, name, buf, len);
    free(buf);
}

/* ------------------------------------------------------------ frame */

static void
frame_seeds(void)
{
    static const struct {
        const char *name;
        uint32_t len;
    } cases[] = {
        {"len-0", 0},
        {"len-1", 1},
        {"len-cap-minus-1", FRAME_MAX_PLAINTEXT - 1},
        {"len-cap", FRAME_MAX_PLAINTEXT},
        {"len-cap-plus-1", FRAME_MAX_PLAINTEXT + 1},
        {"len-7fffffff", 0x7FFFFFFFu},
        {"len-ffffffff", 0xFFFFFFFFu},
        {"len-handshake-max", FRAME_MAX_HANDSHAKE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t buf[4 + 5] = {0};
        buf[0] = (uint8_t)(cases[i].len >> 24);
        buf[1] = (uint8_t)(cases[i].len >> 16);
        buf[2] = (uint8_t)(cases[i].len >> 8);
        buf[3] = (uint8_t)cases[i].len;
        memcpy(buf + 4, "hello", 5);
        put("frame", cases[i].name, buf, sizeof(buf));
    }
    put("frame", "truncated-header", "\0\0\1", 3);
}

/* ------------------------------------------------------------ blob */

static const uint8_t blob_key[32] = {
    0x42, 0x6c, 0x6f, 0x62, 0x20, 0x66, 0x75, 0x7a, 0x7a, 0x20, 0x6b,
    0x65, 0x79, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09,
    0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13};
static const uint8_t blob_ad[] = "chunk-id";

/* mode 1 (sealed here), cap byte, then the inner bytes. */
static void
put_inner(const char *name, uint8_t cap_byte, const uint8_t *inner,
          size_t len)
{
    uint8_t *buf = malloc(2 + len);
    if (buf == NULL) {
        failed = 1;
        return;
    }
    buf[0] = 1;
    buf[1] = cap_byte;
    memcpy(buf + 2, inner, len);
    put("blob", name, buf, 2 + len);
    free(buf);
}

/* The inner bytes (flag | payload) of a real blob of `pt`. */
static uint8_t *
inner_of(const uint8_t *pt, size_t len, size_t *ilen)
{
    uint8_t *blob = NULL, *inner;
    size_t blen = 0;

    if (blob_encode(blob_key, blob_ad, sizeof(blob_ad), pt, len, &blob,
                    &blen) != SIMSYNC_OK)
        return NULL;
    inner = malloc(blen);
    if (inner != NULL &&
        crypt_unseal(inner, blob, blen, blob_ad, sizeof(blob_ad), blob_key) !=
            SIMSYNC_OK) {
        free(inner);
        inner = NULL;
    }
    *ilen = blen - CRYPT_SEAL_OVERHEAD;
    free(blob);
    return inner;
}

/* A zstd frame of `len` zero bytes without a declared content size: the
 * decoder learns the size only by decompressing. */
static uint8_t *
zstd_no_size(size_t len, size_t *flen)
{
    ZSTD_CCtx *c = ZSTD_createCCtx();
    uint8_t *zero = calloc(1, len), *out;
    size_t cap = ZSTD_compressBound(len) + 1, r;
    ZSTD_outBuffer ob;
    ZSTD_inBuffer ib = {zero, len, 0};

    out = malloc(cap);
    if (c == NULL || zero == NULL || out == NULL) {
        free(out);
        out = NULL;
        goto done;
    }
    out[0] = BLOB_FLAG_ZSTD;
    ob.dst = out + 1;
    ob.size = cap - 1;
    ob.pos = 0;
    ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 19);
    do {
        r = ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_end);
    } while (!ZSTD_isError(r) && r != 0);
    *flen = 1 + ob.pos;
done:
    ZSTD_freeCCtx(c);
    free(zero);
    return out;
}

static void
blob_seeds(void)
{
    static const uint8_t text[] =
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ana Lima\r\nTEL:+55 11 5555 0100\r\n"
        "EMAIL:ana@example.org\r\nEND:VCARD\r\nBEGIN:VCARD\r\nVERSION:3.0\r\n"
        "FN:Ana Lima\r\nTEL:+55 11 5555 0100\r\nEND:VCARD\r\n";
    uint8_t *inner, *big;
    size_t ilen;

    inner = inner_of(text, sizeof(text) - 1, &ilen);
    if (inner != NULL) {
        put_inner("zstd-vcard", 0, inner, ilen);
        put_inner("zstd-truncated", 0, inner, ilen - 3);
        inner[ilen - 1] ^= 0x55;
        put_inner("zstd-corrupt", 0, inner, ilen);
        free(inner);
    }
    {
        uint8_t raw[6] = {BLOB_FLAG_RAW, 'h', 'e', 'l', 'l', 'o'};
        put_inner("raw-hello", 0, raw, sizeof(raw));
        raw[0] = 7;
        put_inner("unknown-flag", 0, raw, sizeof(raw));
        put_inner("empty", 0, raw, 0);
    }
    /* 4 MiB of zeros, declared: refused by its declared size at 1 KiB. */
    big = calloc(1, 4u << 20);
    if (big != NULL) {
        inner = inner_of(big, 4u << 20, &ilen);
        if (inner != NULL) {
            put_inner("bomb-declared-4m-cap-1k", 0, inner, ilen);
            put_inner("bomb-declared-4m-cap-1m", 10, inner, ilen);
            free(inner);
        }
        free(big);
    }
    /* 1 GiB of zeros, size not declared: stopped by the cap while
     * decompressing. */
    inner = zstd_no_size((size_t)1 << 30, &ilen);
    if (inner != NULL) {
        put_inner("bomb-1k-to-1g", 10, inner, ilen);
        free(inner);
    }
    {
        /* A frame header asking for a 2 GiB window (exponent 21 + 10). */
        uint8_t win[] = {BLOB_FLAG_ZSTD, 0x28, 0xB5, 0x2F, 0xFD, 0x00,
                         (uint8_t)((31 - 10) << 3), 0x01, 0x00, 0x00};
        put_inner("window-2g", 10, win, sizeof(win));
        uint8_t skippable[] = {BLOB_FLAG_ZSTD, 0x50, 0x2A, 0x4D, 0x18,
                               0x00, 0x00, 0x00, 0x00};
        put_inner("skippable-frame", 0, skippable, sizeof(skippable));
    }
    {
        /* mode 0: a genuine blob under another key (a foreign hub's). */
        uint8_t other[32] = {9}, *blob = NULL, *buf;
        size_t blen = 0;
        if (blob_encode(other, blob_ad, sizeof(blob_ad), text, 20, &blob,
                        &blen) == SIMSYNC_OK &&
            (buf = malloc(2 + blen)) != NULL) {
            buf[0] = 0;
            buf[1] = 0;
            memcpy(buf + 2, blob, blen);
            put("blob", "foreign-key", buf, 2 + blen);
            free(buf);
        }
        free(blob);
    }
}

/* ------------------------------------------------------------ noise */

static const uint8_t resp_sk[32] = {
    0x4e, 0x6f, 0x69, 0x73, 0x65, 0x20, 0x66, 0x75, 0x7a, 0x7a, 0x20,
    0x72, 0x65, 0x73, 0x70, 0x6f, 0x6e, 0x64, 0x65, 0x72, 0x21, 0x22,
    0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c};
static const uint8_t resp_eph[32] = {
    0x45, 0x70, 0x68, 0x65, 0x6d, 0x65, 0x72, 0x61, 0x6c, 0x20, 0x66,
    0x75, 0x7a, 0x7a, 0x20, 0x6b, 0x65, 0x79, 0x31, 0x32, 0x33, 0x34,
    0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e};
static const uint8_t prologue[] = "simsync fuzz";

static void
put_noise(const char *name, const uint8_t *m1, size_t l1, const uint8_t *m3,
          size_t l3)
{
    uint8_t *buf = malloc(2 + l1 + l3);
    if (buf == NULL) {
        failed = 1;
        return;
    }
    buf[0] = (uint8_t)(l1 >> 8);
    buf[1] = (uint8_t)l1;
    memcpy(buf + 2, m1, l1);
    if (l3 > 0)
        memcpy(buf + 2 + l1, m3, l3);
    put("noise", name, buf, 2 + l1 + l3);
    free(buf);
}

static void
noise_seeds(void)
{
    static uint8_t m1[NOISE_MAX_MSG], m2[NOISE_MAX_MSG], m3[NOISE_MAX_MSG];
    static uint8_t pl[NOISE_MAX_MSG];
    uint8_t init_sk[32] = {7, 7, 7}, init_eph[32] = {5, 5, 5}, zero[32] = {0};
    struct noise_hs *i = NULL, *r = NULL;
    size_t l1 = 0, l2 = 0, l3 = 0, pll;

    /* A genuine handshake against the target's fixed responder. */
    if (noise_hs_new(&i, 1, prologue, sizeof(prologue), init_sk) != 0 ||
        noise_hs_new(&r, 0, prologue, sizeof(prologue), resp_sk) != 0 ||
        noise_hs_fix_ephemeral(i, init_eph) != 0 ||
        noise_hs_fix_ephemeral(r, resp_eph) != 0 ||
        noise_hs_write_message(i, (const uint8_t *)"hello", 5, m1,
                               sizeof(m1), &l1) != 0 ||
        noise_hs_read_message(r, m1, l1, pl, sizeof(pl), &pll) != 0 ||
        noise_hs_write_message(r, (const uint8_t *)"ok", 2, m2, sizeof(m2),
                               &l2) != 0 ||
        noise_hs_read_message(i, m2, l2, pl, sizeof(pl), &pll) != 0 ||
        noise_hs_write_message(i, (const uint8_t *)"hi", 2, m3, sizeof(m3),
                               &l3) != 0) {
        fprintf(stderr, "seeds: the reference handshake failed\n");
        failed = 1;
    } else {
        put_noise("genuine", m1, l1, m3, l3);
        put_noise("genuine-msg1-only", m1, l1, NULL, 0);
        put_noise("msg3-truncated", m1, l1, m3, l3 - 1);
        put_noise("msg1-short", m1, 31, NULL, 0);
        memcpy(m1, zero, 32);
        put_noise("ephemeral-all-zero", m1, l1, m3, l3);
        m1[0] = 1;
        put_noise("ephemeral-low-order-1", m1, l1, m3, l3);
    }
    noise_hs_free(i);
    noise_hs_free(r);
    put_noise("empty", m1, 0, NULL, 0);
}

/* ------------------------------------------------------------ messages */

static void
message_seeds(void)
{
    uint8_t id[32] = {1, 2, 3}, item[16] = {4, 5, 6}, hash[32] = {7};
    Simsync__Dot dot = SIMSYNC__DOT__INIT, dmax = SIMSYNC__DOT__INIT;
    Simsync__Dot *dots[2] = {&dot, &dmax};
    Simsync__VersionVector vv = SIMSYNC__VERSION_VECTOR__INIT;
    Simsync__ChunkRef cr = SIMSYNC__CHUNK_REF__INIT, *crs[1] = {&cr};
    Simsync__Version v = SIMSYNC__VERSION__INIT, *vs[1] = {&v};
    Simsync__Change ch = SIMSYNC__CHANGE__INIT, *chs[1] = {&ch};
    Simsync__ChangeBatch b = SIMSYNC__CHANGE_BATCH__INIT;
    Simsync__Envelope e = SIMSYNC__ENVELOPE__INIT;
    Simsync__Hello h = SIMSYNC__HELLO__INIT;
    Simsync__ChunkData cd = SIMSYNC__CHUNK_DATA__INIT;
    Simsync__ChunkQuery q = SIMSYNC__CHUNK_QUERY__INIT;
    Simsync__Error err = SIMSYNC__ERROR__INIT;
    Simsync__Manifest m = SIMSYNC__MANIFEST__INIT;
    Simsync__ItemRecord rec = SIMSYNC__ITEM_RECORD__INIT;
    ProtobufCBinaryData ids[2] = {{32, id}, {31, id}};
    uint32_t classes[2] = {0, 3};

    dot.replica = 0x1122334455667788ull;
    dot.counter = 42;
    dmax.replica = 0x99;
    dmax.counter = UINT64_MAX;
    vv.entries = dots;
    vv.n_entries = 2;
    cr.id.data = id;
    cr.id.len = 32;
    cr.size = 65536;
    v.vv = &vv;
    v.dots = dots;
    v.n_dots = 1;
    v.hlc = 123456789;
    v.author = dot.replica;
    v.content_hash.data = hash;
    v.content_hash.len = 32;
    v.size = 65536;
    v.meta.data = hash;
    v.meta.len = 32;
    v.chunks = crs;
    v.n_chunks = 1;
    ch.cls = 1;
    ch.item_id.data = item;
    ch.item_id.len = sizeof(item);
    ch.version = &v;
    ch.entry = &dot;
    b.seq = 7;
    b.changes = chs;
    b.n_changes = 1;

    e.msg_case = SIMSYNC__ENVELOPE__MSG_BATCH;
    e.batch = &b;
    put_msg("envelope", "change-batch", &e.base);
    h.proto = 1;
    h.role = SIMSYNC__ROLE__ROLE_TERMINAL;
    h.terminal_id = "imei-fuzz";
    h.classes = classes;
    h.n_classes = 2;
    e.msg_case = SIMSYNC__ENVELOPE__MSG_HELLO;
    e.hello = &h;
    put_msg("envelope", "hello", &e.base);
    cd.id.data = id;
    cd.id.len = 32;
    cd.blob.data = hash;
    cd.blob.len = 32;
    e.msg_case = SIMSYNC__ENVELOPE__MSG_CHUNK;
    e.chunk = &cd;
    put_msg("envelope", "chunk", &e.base);
    q.ids = ids;
    q.n_ids = 2;
    e.msg_case = SIMSYNC__ENVELOPE__MSG_CHUNK_QUERY;
    e.chunk_query = &q;
    put_msg("envelope", "chunk-query-bad-id", &e.base);
    err.code = 5;
    err.text = "refused";
    e.msg_case = SIMSYNC__ENVELOPE__MSG_ERROR;
    e.error = &err;
    put_msg("envelope", "error", &e.base);
    put("envelope", "empty", "", 0);
    put("envelope", "unknown-field-99", "\x9a\x06\x01\x00", 4);
    put("envelope", "length-over-end", "\x42\xff\xff\xff\x7f\x00", 6);

    m.gen = 3;
    m.prev_digest.data = hash;
    m.prev_digest.len = 32;
    m.created_ms = 1700000000000ull;
    m.terminal_id = "imei-fuzz";
    m.classes = classes;
    m.n_classes = 2;
    m.items = chs;
    m.n_items = 1;
    put_msg("manifest", "one-item", &m.base);
    dot.counter = 0;
    put_msg("manifest", "counter-zero", &m.base);
    dot.counter = 42;

    rec.versions = vs;
    rec.n_versions = 1;
    rec.name = "contacts/ana.vcf";
    rec.st_size = 65536;
    put_msg("record", "one-version", &rec.base);
    vv.n_entries = 0;
    put_msg("record", "empty-vv", &rec.base);
}

/* ------------------------------------------------------------ names */

static void
name_seeds(void)
{
    static char longname[4098];

    put("name", "plain", "photos/2026/beach.jpg", 21);
    put("name", "dotdot", "../x", 4);
    put("name", "dotdot-inner", "a/../../x", 9);
    put("name", "absolute", "/etc/x", 6);
    put("name", "nul-inside", "a\0/../x", 7);
    put("name", "dot", "./a", 3);
    put("name", "double-slash", "a//b", 4);
    put("name", "trailing-slash", "a/", 2);
    put("name", "invalid-utf8", "caf\xc3(\xff.txt", 10);
    memset(longname, 'a', sizeof(longname));
    for (size_t i = 200; i < sizeof(longname); i += 201)
        longname[i] = '/';
    put("name", "path-4097", longname, 4097);
    memset(longname, 'b', 256);
    put("name", "component-256", longname, 256);
}

/* ------------------------------------------------------------ pack */

/* The data key fuzz_pack.c opens with. */
static const uint8_t pack_datakey[32] = {
    0x50, 0x61, 0x63, 0x6b, 0x20, 0x66, 0x75, 0x7a, 0x7a, 0x20, 0x6b,
    0x65, 0x79, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09,
    0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13};

/* A stream piece as fuzz_pack.c reads it (mode 0): BE32 declared size,
 * BE16 length, the bytes. Appended to buf at *off. */
static void
piece(uint8_t *buf, size_t *off, uint32_t declared, const uint8_t *z,
      size_t len)
{
    buf[(*off)++] = (uint8_t)(declared >> 24);
    buf[(*off)++] = (uint8_t)(declared >> 16);
    buf[(*off)++] = (uint8_t)(declared >> 8);
    buf[(*off)++] = (uint8_t)declared;
    buf[(*off)++] = (uint8_t)(len >> 8);
    buf[(*off)++] = (uint8_t)len;
    memcpy(buf + *off, z, len);
    *off += len;
}

/* A sealed change of contact `name` (body NULL: a tombstone). */
static void
sealed_change(const struct datakeys *k, const char *name, const char *body,
              Simsync__Change *c, Simsync__Version *v, Simsync__Dot **dp,
              uint8_t id[16], uint8_t *meta, uint8_t **blob)
{
    Simsync__ItemMeta m = SIMSYNC__ITEM_META__INIT;
    uint8_t mb[256];
    size_t mlen, blen;

    m.name = (char *)name;
    m.mode = 0600;
    m.mtime_ns = 1700000000123456789ll;
    mlen = protobuf_c_message_pack(&m.base, mb);
    keys_item_id(k, 0, name, id);
    if (crypt_seal(meta, mb, mlen, id, 16, k->seal) != SIMSYNC_OK)
        failed = 1;
    simsync__version__init(v);
    v->meta.data = meta;
    v->meta.len = mlen + CRYPT_SEAL_OVERHEAD;
    v->dots = dp;
    v->n_dots = 1;
    v->hlc = 1700000000000ull << 16;
    v->author = dp[0]->replica;
    v->deleted = body == NULL;
    *blob = NULL;
    if (body != NULL) {
        if (blob_encode(k->seal, id, 16, (const uint8_t *)body, strlen(body),
                        blob, &blen) != SIMSYNC_OK)
            failed = 1;
        v->inline_body.data = *blob;
        v->inline_body.len = blen;
        v->size = strlen(body);
    }
    simsync__change__init(c);
    c->cls = 0;
    c->item_id.data = id;
    c->item_id.len = 16;
    c->version = v;
    c->entry = dp[0];
}

static void
pack_seeds(void)
{
    static uint8_t buf[1 << 16], zeros[1 << 22];
    struct datakeys k;
    struct pack_stream *tx = NULL;
    Simsync__Dot d[3] = {SIMSYNC__DOT__INIT, SIMSYNC__DOT__INIT,
                         SIMSYNC__DOT__INIT};
    Simsync__Dot *dps[3] = {&d[0], &d[1], &d[2]};
    Simsync__Change c[3], *cp[3] = {&c[0], &c[1], &c[2]};
    Simsync__Version v[3];
    Simsync__ChangeBatch b = SIMSYNC__CHANGE_BATCH__INIT;
    uint8_t id[3][16], meta[3][300], *blob[3], *z[2], *plain;
    size_t zlen[2], off, plen;
    uint64_t size[2];

    if (keys_derive(pack_datakey, &k) != SIMSYNC_OK ||
        pack_tx_new(&tx) != SIMSYNC_OK) {
        failed = 1;
        return;
    }
    for (int i = 0; i < 3; i++) {
        d[i].replica = 0x1122334455667788ull;
        d[i].counter = (uint64_t)i + 1;
    }
    sealed_change(&k, "ana.vcf", "BEGIN:VCARD\r\nFN:Ana\r\nEND:VCARD\r\n",
                  &c[0], &v[0], &dps[0], id[0], meta[0], &blob[0]);
    sealed_change(&k, "sub/b\x01 o.vcf", "", &c[1], &v[1], &dps[1], id[1],
                  meta[1], &blob[1]);
    sealed_change(&k, "gone.vcf", NULL, &c[2], &v[2], &dps[2], id[2], meta[2],
                  &blob[2]);
    /* Two batches of one stream: the second reuses the first as context. */
    b.seq = 1;
    b.changes = cp;
    b.n_changes = 3;
    if (pack_encode(tx, &k, &b, &z[0], &zlen[0], &size[0]) != SIMSYNC_OK)
        failed = 1;
    b.seq = 2;
    b.n_changes = 1;
    if (pack_encode(tx, &k, &b, &z[1], &zlen[1], &size[1]) != SIMSYNC_OK)
        failed = 1;
    off = 0;
    buf[off++] = 0;
    piece(buf, &off, (uint32_t)size[0], z[0], zlen[0]);
    put("pack", "one-batch", buf, off);
    piece(buf, &off, (uint32_t)size[1], z[1], zlen[1]);
    put("pack", "two-batches", buf, off);
    off = 1;
    piece(buf, &off, (uint32_t)size[0], z[0], zlen[0] / 2);
    put("pack", "truncated", buf, off);
    off = 1;
    piece(buf, &off, (uint32_t)size[0] - 1, z[0], zlen[0]);
    put("pack", "under-declared", buf, off);
    off = 1;
    piece(buf, &off, PACK_PLAIN_MAX + 1, z[0], zlen[0]);
    put("pack", "over-limit", buf, off);
    off = 1;
    piece(buf, &off, (uint32_t)size[1], z[1], zlen[1]);
    put("pack", "second-without-first", buf, off);
    /* 4 MiB of zeros declared as 1000 bytes: at level 3 (a 2 MiB window,
     * accepted) and at level 19 (a 4 MiB window, refused first). */
    for (int level = 3; level <= 19; level += 16) {
        size_t cap = ZSTD_compressBound(sizeof(zeros));
        uint8_t *bomb = malloc(cap);
        size_t bl = bomb ? ZSTD_compress(bomb, cap, zeros, sizeof(zeros),
                                         level)
                         : 0;
        if (bomb == NULL || ZSTD_isError(bl) || bl + 7 > sizeof(buf)) {
            failed = 1;
        } else {
            off = 1;
            piece(buf, &off, 1000, bomb, bl);
            put("pack",
                level == 3 ? "bomb-4m-declared-1000" : "bomb-window-4m", buf,
                off);
        }
        free(bomb);
    }
    /* Mode 1: the plaintext of the first batch, and a bad name in it. */
    {
        Simsync__PackedChanges pcs = SIMSYNC__PACKED_CHANGES__INIT;
        Simsync__PackedChange pc = SIMSYNC__PACKED_CHANGE__INIT, *pcp = &pc;
        Simsync__ItemMeta m = SIMSYNC__ITEM_META__INIT;
        Simsync__Version pv = SIMSYNC__VERSION__INIT;
        Simsync__Dot *dp = &d[0];
        uint8_t mb[64];
        m.name = "../x";
        pv.dots = &dp;
        pv.n_dots = 1;
        pv.size = 2;
        pc.version = &pv;
        pc.meta.data = mb;
        pc.meta.len = protobuf_c_message_pack(&m.base, mb);
        pc.body.data = (uint8_t *)"hi";
        pc.body.len = 2;
        pcs.seq = 1;
        pcs.changes = &pcp;
        pcs.n_changes = 1;
        plen = protobuf_c_message_get_packed_size(&pcs.base);
        plain = malloc(plen + 1);
        if (plain == NULL) {
            failed = 1;
        } else {
            plain[0] = 1;
            protobuf_c_message_pack(&pcs.base, plain + 1);
            put("pack", "plain-dotdot-name", plain, plen + 1);
            m.name = "ok.vcf";
            pc.meta.len = protobuf_c_message_pack(&m.base, mb);
            plen = protobuf_c_message_get_packed_size(&pcs.base);
            protobuf_c_message_pack(&pcs.base, plain + 1);
            put("pack", "plain-one-change", plain, plen + 1);
            free(plain);
        }
        /* 257 empty changes: refused before they are decoded. */
        buf[0] = 1;
        for (size_t i = 1; i < 1 + 257 * 2; i += 2) {
            buf[i] = 0x12;
            buf[i + 1] = 0;
        }
        put("pack", "plain-257-changes", buf, 1 + 257 * 2);
    }
    for (int i = 0; i < 3; i++)
        free(blob[i]);
    free(z[0]);
    free(z[1]);
    pack_stream_free(tx);
    keys_wipe(&k);
}

int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seeds OUTDIR\n");
        return 2;
    }
    outdir = argv[1];
    if (mkdir(outdir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "seeds: cannot make %s: %s\n", outdir,
                strerror(errno));
        return 1;
    }
    frame_seeds();
    blob_seeds();
    noise_seeds();
    message_seeds();
    name_seeds();
    pack_seeds();
    return failed;
}
