/* test_pack.c -- packed change batches between two trusted replicas
 * (pack.h, docs/protocol.md 11.4), through real sessions in memory:
 *  - 300 small contacts travel packed in a small fraction of their bytes
 *    (and of what the plain form takes);
 *  - every field survives: names with odd bytes, mode, mtime, moved_from
 *    (a renamed chunked file, whose chunks still travel sealed),
 *    tombstones, resolved conflicts and their copies: the receiver's
 *    records equal the sender's, sealed parts compared opened;
 *  - a decompression bomb, an over-declared size, a truncated or garbage
 *    stream, a bad name or too many changes inside a valid stream, and
 *    either form where the session expects the other are refused with
 *    EPROTO, an Error for the peer, and nothing stored or written. */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <limits.h>
#include <zstd.h>
#include <cmocka.h>

#include "blob.h"
#include "crypt.h"
#include "folder.h"
#include "pack.h"
#include "session.h"

#define NODES 3

struct world {
    char dir[256];
    struct store *st[NODES];
    struct replica r[NODES];
};

static void
rm_rf(const char *path)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    assert_int_equal(system(cmd), 0);
}

static void
world_open(struct world *w, const char *tag)
{
    uint8_t datakey[32];
    char path[PATH_MAX + 64];

    memset(w, 0, sizeof(*w));
    snprintf(w->dir, sizeof(w->dir), "/tmp/simsync-pack-%d-%s", (int)getpid(),
             tag);
    rm_rf(w->dir);
    assert_int_equal(mkdir(w->dir, 0700), 0);
    crypt_random(datakey, sizeof(datakey));
    for (int i = 0; i < NODES; i++) {
        struct replica *r = &w->r[i];
        snprintf(path, sizeof(path), "%s/store%d", w->dir, i);
        assert_int_equal(store_open(path, 0, &w->st[i]), SIMSYNC_OK);
        r->st = w->st[i];
        memset(r->sub, 0x42, SUB_BYTES);
        r->self = 0x2000 + (uint64_t)i * 0x10001;
        r->trusted = 1;
        r->now_ms = 1700000000000ull + (uint64_t)i;
        assert_int_equal(keys_derive(datakey, &r->keys), SIMSYNC_OK);
        snprintf(r->data_dir, sizeof(r->data_dir), "%s/data%d", w->dir, i);
        assert_int_equal(mkdir(r->data_dir, 0700), 0);
        snprintf(path, sizeof(path), "%s/contacts", r->data_dir);
        assert_int_equal(mkdir(path, 0700), 0);
    }
}

static void
world_close(struct world *w)
{
    for (int i = 0; i < NODES; i++) {
        keys_wipe(&w->r[i].keys);
        store_close(w->st[i]);
    }
    rm_rf(w->dir);
}

static void
put_file(struct world *w, int node, const char *name, const void *data,
         size_t len)
{
    char path[PATH_MAX + 64];
    FILE *f;

    snprintf(path, sizeof(path), "%s/contacts/%s", w->r[node].data_dir, name);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void
put_text(struct world *w, int node, const char *name, const char *text)
{
    put_file(w, node, name, text, strlen(text));
}

/* The vCard of contact i, as the link benchmark makes them. */
static size_t
vcard(char *buf, size_t cap, int i)
{
    int n =
        snprintf(buf, cap,
                 "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Person%04d;Given%04d;;;\r\n"
                 "FN:Given%04d Person%04d\r\nTEL;TYPE=CELL:+4479%08d\r\n"
                 "TEL;TYPE=HOME:+44207%07d\r\n"
                 "EMAIL;TYPE=INTERNET:given%04d.person%04d@example.org\r\n"
                 "ADR;TYPE=HOME:;;%d High Street;Springfield;;%05d;UK\r\n"
                 "ORG:Company %d Ltd\r\nNOTE:met at event %d\r\nEND:VCARD\r\n",
                 i, i, i, i, i * 7919, i * 31, i, i, i % 200 + 1, 10000 + i,
                 i % 97, i % 13);
    return (size_t)n;
}

struct traffic {
    uint64_t bytes; /* plaintext of every frame, both ways */
    int packed;     /* PackedBatch messages seen */
    int plain;      /* ChangeBatch messages seen */
};

static void
observe(struct traffic *t, const uint8_t *frame, size_t len)
{
    Simsync__Envelope *e = simsync__envelope__unpack(NULL, len, frame);

    assert_non_null(e);
    t->bytes += len;
    t->packed += e->msg_case == SIMSYNC__ENVELOPE__MSG_PACKED;
    t->plain += e->msg_case == SIMSYNC__ENVELOPE__MSG_BATCH;
    simsync__envelope__free_unpacked(e, NULL);
}

/* Move frames between two sessions until both finish or one fails. */
static int
pump(struct session *a, struct session *b, struct traffic *t)
{
    for (int rounds = 0; rounds < 100000; rounds++) {
        struct session *from = (rounds & 1) ? b : a, *to = (rounds & 1) ? a : b;
        uint8_t *frame;
        size_t len;
        int progress = 0;

        while (session_output(from, &frame, &len) == SIMSYNC_OK) {
            int rc;
            if (t != NULL)
                observe(t, frame, len);
            rc = session_input(to, frame, len);
            free(frame);
            progress = 1;
            if (rc != SIMSYNC_OK)
                return rc;
        }
        if (session_finished(a) && session_finished(b))
            return SIMSYNC_OK;
        if (!progress && rounds > 2 && (rounds & 1))
            return SIMSYNC_EPROTO;
    }
    return SIMSYNC_EPROTO;
}

/* A direct sync: node i connects to node j, both scan first. */
static int
peer_sync(struct world *w, int i, int j, int packed, struct traffic *t)
{
    struct session *a = NULL, *b = NULL;
    struct session_cfg ac = {&w->r[i],
                             1u << CLS_CONTACTS,
                             0x100u + (unsigned)j,
                             1,
                             NULL,
                             SESSION_BOTH,
                             0,
                             packed};
    struct session_cfg bc = {&w->r[j],
                             1u << CLS_CONTACTS,
                             0x100u + (unsigned)i,
                             0,
                             NULL,
                             SESSION_BOTH,
                             0,
                             packed};
    struct scan_stats ss;
    int rc;

    assert_int_equal(folder_scan(&w->r[i], 1u << CLS_CONTACTS, 1, &ss),
                     SIMSYNC_OK);
    assert_int_equal(folder_scan(&w->r[j], 1u << CLS_CONTACTS, 1, &ss),
                     SIMSYNC_OK);
    assert_int_equal(session_new(&ac, &a), SIMSYNC_OK);
    assert_int_equal(session_new(&bc, &b), SIMSYNC_OK);
    rc = pump(a, b, t);
    if (rc == SIMSYNC_OK && packed)
        assert_true(session_get_stats(a)->batches_packed > 0 ||
                    session_get_stats(b)->batches_packed > 0);
    session_free(a);
    session_free(b);
    return rc;
}

/* ------------------------------------------------------------ records */

struct ids {
    uint8_t (*v)[ITEM_ID_BYTES];
    size_t n;
};

static int
collect_id(const struct dot *d, const uint8_t id[ITEM_ID_BYTES], void *arg)
{
    struct ids *ids = arg;

    (void)d;
    for (size_t i = 0; i < ids->n; i++)
        if (memcmp(ids->v[i], id, ITEM_ID_BYTES) == 0)
            return 0;
    ids->v = realloc(ids->v, (ids->n + 1) * sizeof(*ids->v));
    assert_non_null(ids->v);
    memcpy(ids->v[ids->n++], id, ITEM_ID_BYTES);
    return 0;
}

static void
item_ids(struct replica *r, struct ids *ids)
{
    struct store_txn *txn;
    struct vv none = VV_INIT;

    ids->v = NULL;
    ids->n = 0;
    assert_int_equal(store_txn_begin(r->st, 1, &txn), SIMSYNC_OK);
    assert_int_equal(
        journal_scan(txn, r->sub, CLS_CONTACTS, &none, collect_id, ids),
        SIMSYNC_OK);
    store_txn_abort(txn);
}

static Simsync__ItemRecord *
record_of(struct replica *r, const uint8_t id[ITEM_ID_BYTES])
{
    Simsync__ItemRecord *rec = NULL;
    struct store_txn *txn;

    assert_int_equal(store_txn_begin(r->st, 1, &txn), SIMSYNC_OK);
    assert_int_equal(item_get(txn, r->sub, CLS_CONTACTS, id, &rec), SIMSYNC_OK);
    store_txn_abort(txn);
    return rec;
}

static void
same_bytes(ProtobufCBinaryData a, ProtobufCBinaryData b)
{
    assert_int_equal(a.len, b.len);
    if (a.len > 0)
        assert_memory_equal(a.data, b.data, a.len);
}

static void
same_msg(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    uint8_t *pa, *pb;
    size_t la, lb;

    if (a == NULL || b == NULL) {
        assert_true(a == b);
        return;
    }
    assert_int_equal(record_pack(a, &pa, &la), SIMSYNC_OK);
    assert_int_equal(record_pack(b, &pb, &lb), SIMSYNC_OK);
    assert_int_equal(la, lb);
    assert_memory_equal(pa, pb, la);
    free(pa);
    free(pb);
}

/* Version a of sender r and version b of receiver q are the same version:
 * every clear field equal, meta and body equal once opened. */
static void
same_version(struct replica *r, struct replica *q,
             const uint8_t id[ITEM_ID_BYTES], const Simsync__Version *a,
             const Simsync__Version *b, int *names_seen)
{
    Simsync__ItemMeta *ma = NULL, *mb = NULL;

    same_msg(&a->vv->base, &b->vv->base);
    assert_int_equal(a->n_dots, b->n_dots);
    for (size_t i = 0; i < a->n_dots; i++)
        same_msg(&a->dots[i]->base, &b->dots[i]->base);
    assert_int_equal(a->hlc, b->hlc);
    assert_int_equal(a->author, b->author);
    assert_int_equal(a->deleted, b->deleted);
    same_bytes(a->content_hash, b->content_hash);
    assert_int_equal(a->size, b->size);
    assert_int_equal(a->hash_kind, b->hash_kind);
    assert_int_equal(a->n_chunks, b->n_chunks);
    for (size_t i = 0; i < a->n_chunks; i++)
        same_msg(&a->chunks[i]->base, &b->chunks[i]->base);
    assert_int_equal(replica_open_meta(r, CLS_CONTACTS, id, a, &ma),
                     SIMSYNC_OK);
    assert_int_equal(replica_open_meta(q, CLS_CONTACTS, id, b, &mb),
                     SIMSYNC_OK);
    same_msg(&ma->base, &mb->base);
    (*names_seen)++;
    simsync__item_meta__free_unpacked(ma, NULL);
    simsync__item_meta__free_unpacked(mb, NULL);
    assert_int_equal(a->inline_body.len > 0, b->inline_body.len > 0);
    if (a->inline_body.len > 0) {
        uint8_t *pa, *pb;
        size_t la, lb;
        assert_int_equal(blob_decode(r->keys.seal, id, ITEM_ID_BYTES,
                                     a->inline_body.data, a->inline_body.len,
                                     INLINE_MAX, &pa, &la),
                         SIMSYNC_OK);
        assert_int_equal(blob_decode(q->keys.seal, id, ITEM_ID_BYTES,
                                     b->inline_body.data, b->inline_body.len,
                                     INLINE_MAX, &pb, &lb),
                         SIMSYNC_OK);
        assert_int_equal(la, lb);
        assert_memory_equal(pa, pb, la);
        free(pa);
        free(pb);
    }
}

/* Every item of node i is in node j with the same version. Returns the
 * number of items compared. */
static size_t
same_records(struct world *w, int i, int j)
{
    struct ids ids;
    int seen = 0;

    item_ids(&w->r[i], &ids);
    for (size_t k = 0; k < ids.n; k++) {
        Simsync__ItemRecord *a = record_of(&w->r[i], ids.v[k]);
        Simsync__ItemRecord *b = record_of(&w->r[j], ids.v[k]);
        assert_int_equal(a->n_versions, 1);
        assert_int_equal(b->n_versions, 1);
        same_version(&w->r[i], &w->r[j], ids.v[k], a->versions[0],
                     b->versions[0], &seen);
        item_record_free(a);
        item_record_free(b);
    }
    free(ids.v);
    return ids.n;
}

static size_t
count_items(struct replica *r)
{
    struct ids ids;

    item_ids(r, &ids);
    free(ids.v);
    return ids.n;
}

static size_t
count_files(struct replica *r)
{
    char path[PATH_MAX + 64];
    struct dirent *e;
    size_t n = 0;
    DIR *d;

    snprintf(path, sizeof(path), "%s/contacts", r->data_dir);
    d = opendir(path);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* ------------------------------------------------------------ tests */

static void
small_items_travel_packed_in_a_fraction_of_their_bytes(void **state)
{
    struct world w;
    struct traffic packed = {0}, plain = {0};
    char buf[512];
    size_t vbytes = 0;

    (void)state;
    world_open(&w, "small");
    for (int i = 0; i < 300; i++) {
        char name[32];
        size_t n = vcard(buf, sizeof(buf), i);
        snprintf(name, sizeof(name), "c%d.vcf", i);
        put_file(&w, 0, name, buf, n);
        vbytes += n;
    }
    assert_int_equal(peer_sync(&w, 0, 1, 1, &packed), SIMSYNC_OK);
    assert_int_equal(peer_sync(&w, 0, 2, 0, &plain), SIMSYNC_OK);
    /* Both receivers hold the sender's 300 items. */
    assert_int_equal(same_records(&w, 0, 1), 300);
    assert_int_equal(same_records(&w, 0, 2), 300);
    assert_int_equal(count_files(&w.r[1]), 300);
    /* Packed: every batch, and the whole session in under a sixth of the
     * vCard bytes; plain: over them. */
    assert_true(packed.packed >= 2);
    assert_int_equal(packed.plain, 0);
    assert_int_equal(plain.packed, 0);
    assert_true(plain.plain >= 2);
    assert_true(packed.bytes * 6 < vbytes);
    assert_true(plain.bytes > vbytes);
    print_message("300 contacts, %zu vCard bytes: packed %llu, plain %llu\n",
                  vbytes, (unsigned long long)packed.bytes,
                  (unsigned long long)plain.bytes);
    world_close(&w);
}

static void
set_times(struct world *w, int node, const char *name, long sec, long nsec,
          mode_t mode)
{
    char path[PATH_MAX + 64];
    struct timespec ts[2] = {{sec, nsec}, {sec, nsec}};

    snprintf(path, sizeof(path), "%s/contacts/%s", w->r[node].data_dir, name);
    assert_int_equal(chmod(path, mode), 0);
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void
every_field_survives_the_packed_form(void **state)
{
    static const char *odd[] = {
        "with space.vcf",   "caf\xc3\xa9 \xe2\x82\xac.vcf",
        "tab\there.vcf",    "ctl\x01\x7f.vcf",
        "quote'\"\\.vcf",   "-dash",
        "sub/dir/deep.vcf", "empty.vcf"};
    struct world w;
    struct traffic t = {0};
    struct scan_stats ss;
    char path[PATH_MAX + 64], path2[PATH_MAX + 64];
    uint8_t *big = malloc(100000);
    Simsync__ItemRecord *rec;
    Simsync__ItemMeta *m;
    uint8_t id[ITEM_ID_BYTES];

    (void)state;
    world_open(&w, "fields");
    for (size_t i = 0; i < 100000; i++)
        big[i] = (uint8_t)(i * 2654435761u >> 13);
    snprintf(path, sizeof(path), "%s/contacts/sub/dir", w.r[0].data_dir);
    snprintf(path2, sizeof(path2), "mkdir -p '%s'", path);
    assert_int_equal(system(path2), 0);
    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++)
        put_text(&w, 0, odd[i], strcmp(odd[i], "empty.vcf") ? odd[i] : "");
    set_times(&w, 0, "with space.vcf", 1234567890, 123456789, 0640);
    set_times(&w, 0, "tab\there.vcf", 987654321, 1, 0600);
    put_file(&w, 0, "big.bin", big, 100000);
    put_text(&w, 0, "gone.vcf", "FN:Gone\n");
    /* A conflict: nodes 0 and 2 write conf.vcf at once. */
    put_text(&w, 0, "conf.vcf", "FN:Conf from 0\n");
    put_text(&w, 2, "conf.vcf", "FN:Conf from 2\n");
    assert_int_equal(folder_scan(&w.r[0], 1u << CLS_CONTACTS, 1, &ss),
                     SIMSYNC_OK);
    /* A rename of the chunked file (moved_from) and a deletion. */
    snprintf(path, sizeof(path), "%s/contacts/big.bin", w.r[0].data_dir);
    snprintf(path2, sizeof(path2), "%s/contacts/big2.bin", w.r[0].data_dir);
    assert_int_equal(rename(path, path2), 0);
    snprintf(path, sizeof(path), "%s/contacts/gone.vcf", w.r[0].data_dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(folder_scan(&w.r[0], 1u << CLS_CONTACTS, 1, &ss),
                     SIMSYNC_OK);
    assert_int_equal(ss.renamed, 1);
    /* Node 2 brings its side of the conflict to node 0 (plain): node 0
     * resolves, keeping a copy. */
    assert_int_equal(peer_sync(&w, 2, 0, 0, NULL), SIMSYNC_OK);
    /* Everything node 0 holds goes to node 1 packed. */
    assert_int_equal(peer_sync(&w, 0, 1, 1, &t), SIMSYNC_OK);
    assert_true(t.packed > 0);
    assert_int_equal(t.plain, 0);
    /* 8 odd names, big, big2, gone, conf and its copy. */
    assert_int_equal(same_records(&w, 0, 1), 13);
    assert_int_equal(same_records(&w, 1, 0), 13);
    /* The packed form carried what the checks above compare: */
    keys_item_id(&w.r[1].keys, CLS_CONTACTS, "big2.bin", id);
    rec = record_of(&w.r[1], id);
    assert_int_equal(
        replica_open_meta(&w.r[1], CLS_CONTACTS, id, rec->versions[0], &m),
        SIMSYNC_OK);
    assert_string_equal(m->moved_from, "big.bin");
    assert_true(rec->versions[0]->n_chunks > 0);
    simsync__item_meta__free_unpacked(m, NULL);
    item_record_free(rec);
    keys_item_id(&w.r[1].keys, CLS_CONTACTS, "gone.vcf", id);
    rec = record_of(&w.r[1], id);
    assert_true(rec->versions[0]->deleted);
    item_record_free(rec);
    keys_item_id(&w.r[1].keys, CLS_CONTACTS, "with space.vcf", id);
    rec = record_of(&w.r[1], id);
    assert_int_equal(
        replica_open_meta(&w.r[1], CLS_CONTACTS, id, rec->versions[0], &m),
        SIMSYNC_OK);
    assert_int_equal(m->mode, 0640);
    assert_int_equal(m->mtime_ns, 1234567890123456789ll);
    simsync__item_meta__free_unpacked(m, NULL);
    item_record_free(rec);
    /* The files: the renamed content, the conflict copy, no deletion. */
    snprintf(path, sizeof(path),
             "cmp -s '%s/contacts/big2.bin' "
             "'%s/contacts/big2.bin'",
             w.r[0].data_dir, w.r[1].data_dir);
    assert_int_equal(system(path), 0);
    snprintf(path, sizeof(path), "%s/contacts/gone.vcf", w.r[1].data_dir);
    assert_int_not_equal(access(path, F_OK), 0);
    assert_int_equal(count_files(&w.r[1]), count_files(&w.r[0]));
    /* Node 1 edits one item and deletes another; a packed sync brings
     * them to node 2 (which had the rest from node 0). */
    put_text(&w, 1, "with space.vcf", "FN:edited on 1\n");
    snprintf(path, sizeof(path), "%s/contacts/-dash", w.r[1].data_dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(peer_sync(&w, 1, 2, 1, NULL), SIMSYNC_OK);
    assert_int_equal(same_records(&w, 1, 2), 13);
    free(big);
    world_close(&w);
}

/* ------------------------------------------------------------ refusals */

/* Compress `len` bytes as a new stream piece, flushed (a fresh frame). */
static uint8_t *
zstream(const void *src, size_t len, size_t *zlen)
{
    ZSTD_CCtx *c = ZSTD_createCCtx();
    size_t cap = ZSTD_compressBound(len) + 64;
    uint8_t *out = malloc(cap);
    ZSTD_inBuffer in = {src, len, 0};
    ZSTD_outBuffer ob = {out, cap, 0};
    size_t r;

    assert_non_null(c);
    do
        r = ZSTD_compressStream2(c, &ob, &in, ZSTD_e_flush);
    while (!ZSTD_isError(r) && r != 0);
    assert_false(ZSTD_isError(r));
    ZSTD_freeCCtx(c);
    *zlen = ob.pos;
    return out;
}

enum spoil {
    OVER_DECLARED,  /* size over PACK_PLAIN_MAX */
    UNDER_DECLARED, /* a real batch declaring less than it holds */
    BOMB,           /* 64 MiB of zeros declared as 1000 bytes */
    TRUNCATED,      /* the first half of a real batch */
    GARBAGE,        /* random bytes */
    BAD_NAME,       /* a valid stream whose change is named "../x" */
    TOO_MANY,       /* a valid stream of 257 empty changes */
    PLAIN_IN_PACKED,
    PACKED_IN_PLAIN
};

/* Node 0 sends 20 contacts to node 1, but the first batch is replaced by
 * a spoiled one. The receiver must fail with EPROTO, queue an Error with
 * that code, and store and write nothing. */
static void
refuse(enum spoil how)
{
    struct world w;
    struct session *snd = NULL, *rcv = NULL;
    int packed = how != PLAIN_IN_PACKED; /* the sender's form */
    struct session_cfg sc = {&w.r[0], 1u << CLS_CONTACTS, 0x101, 1,
                             NULL,    SESSION_SEND_ONLY,  0,     packed};
    struct session_cfg rc_ = {
        &w.r[1], 1u << CLS_CONTACTS, 0x100, 0,
        NULL,    SESSION_RECV_ONLY,  0,     how != PACKED_IN_PLAIN};
    Simsync__Envelope *env, out = SIMSYNC__ENVELOPE__INIT;
    Simsync__PackedBatch pb = SIMSYNC__PACKED_BATCH__INIT;
    struct scan_stats ss;
    uint8_t *frame, *z = NULL, *bomb = NULL, *spoiled;
    size_t len, zlen = 0, slen;
    char buf[512];
    int rc;

    world_open(&w, "refuse");
    for (int i = 0; i < 20; i++) {
        char name[32];
        snprintf(name, sizeof(name), "c%d.vcf", i);
        put_file(&w, 0, name, buf, vcard(buf, sizeof(buf), i));
    }
    assert_int_equal(folder_scan(&w.r[0], 1u << CLS_CONTACTS, 1, &ss),
                     SIMSYNC_OK);
    assert_int_equal(session_new(&sc, &snd), SIMSYNC_OK);
    assert_int_equal(session_new(&rc_, &rcv), SIMSYNC_OK);
    /* Knowledge to the sender; its first batch back. */
    assert_int_equal(session_output(rcv, &frame, &len), SIMSYNC_OK);
    assert_int_equal(session_input(snd, frame, len), SIMSYNC_OK);
    free(frame);
    assert_int_equal(session_output(snd, &frame, &len), SIMSYNC_OK);
    env = simsync__envelope__unpack(NULL, len, frame);
    assert_non_null(env);
    assert_int_equal(env->msg_case, packed ? SIMSYNC__ENVELOPE__MSG_PACKED
                                           : SIMSYNC__ENVELOPE__MSG_BATCH);
    spoiled = frame; /* the plain cases send the frame as it is */
    slen = len;
    if (how != PLAIN_IN_PACKED && how != PACKED_IN_PLAIN) {
        pb.size = env->packed->size;
        pb.z = env->packed->z;
        switch (how) {
        case OVER_DECLARED:
            pb.size = PACK_PLAIN_MAX + 1;
            break;
        case UNDER_DECLARED:
            pb.size -= 1;
            break;
        case BOMB:
            bomb = calloc(1, 64u << 20);
            assert_non_null(bomb);
            z = zstream(bomb, 64u << 20, &zlen);
            pb.size = 1000;
            break;
        case TRUNCATED:
            pb.z.len /= 2;
            break;
        case GARBAGE:
            z = malloc(zlen = 700);
            crypt_random(z, zlen);
            break;
        case BAD_NAME: {
            Simsync__PackedChanges pcs = SIMSYNC__PACKED_CHANGES__INIT;
            Simsync__PackedChange pc = SIMSYNC__PACKED_CHANGE__INIT, *pcp = &pc;
            Simsync__ItemMeta m = SIMSYNC__ITEM_META__INIT;
            Simsync__Version v = SIMSYNC__VERSION__INIT;
            Simsync__Dot d = SIMSYNC__DOT__INIT, *dp = &d;
            uint8_t *plain, *mb;
            size_t plen, mlen;
            m.name = "../x";
            assert_int_equal(record_pack(&m.base, &mb, &mlen), SIMSYNC_OK);
            d.replica = 7;
            d.counter = 1;
            v.dots = &dp;
            v.n_dots = 1;
            v.size = 2;
            pc.version = &v;
            pc.meta.data = mb;
            pc.meta.len = mlen;
            pc.body.data = (uint8_t *)"hi";
            pc.body.len = 2;
            pcs.seq = 1;
            pcs.changes = &pcp;
            pcs.n_changes = 1;
            assert_int_equal(record_pack(&pcs.base, &plain, &plen), SIMSYNC_OK);
            z = zstream(plain, plen, &zlen);
            pb.size = plen;
            free(plain);
            free(mb);
            break;
        }
        case TOO_MANY: {
            uint8_t many[257 * 2];
            for (size_t i = 0; i < sizeof(many); i += 2) {
                many[i] = 0x12; /* field 2, length-delimited */
                many[i + 1] = 0;
            }
            z = zstream(many, sizeof(many), &zlen);
            pb.size = sizeof(many);
            break;
        }
        default:
            break;
        }
        if (z != NULL) {
            pb.z.data = z;
            pb.z.len = zlen;
        }
        out.msg_case = SIMSYNC__ENVELOPE__MSG_PACKED;
        out.packed = &pb;
        assert_int_equal(record_pack(&out.base, &spoiled, &slen), SIMSYNC_OK);
    }
    rc = session_input(rcv, spoiled, slen);
    assert_int_equal(rc, SIMSYNC_EPROTO);
    /* The peer is told, with the protocol error's code. */
    {
        uint8_t *ef;
        size_t el;
        Simsync__Envelope *e;
        assert_int_equal(session_output(rcv, &ef, &el), SIMSYNC_OK);
        e = simsync__envelope__unpack(NULL, el, ef);
        assert_non_null(e);
        assert_int_equal(e->msg_case, SIMSYNC__ENVELOPE__MSG_ERROR);
        assert_int_equal(e->error->code, (uint32_t)-SIMSYNC_EPROTO);
        print_message("refused: %s\n", e->error->text);
        simsync__envelope__free_unpacked(e, NULL);
        free(ef);
    }
    assert_int_equal(count_items(&w.r[1]), 0);
    assert_int_equal(count_files(&w.r[1]), 0);
    /* A failed session takes nothing more. */
    assert_int_equal(session_input(rcv, frame, len), SIMSYNC_ESTATE);
    if (spoiled != frame)
        free(spoiled);
    simsync__envelope__free_unpacked(env, NULL);
    free(frame);
    free(z);
    free(bomb);
    session_free(snd);
    session_free(rcv);
    world_close(&w);
}

static void
over_declared_size_is_refused(void **state)
{
    (void)state;
    refuse(OVER_DECLARED);
}

static void
more_output_than_declared_is_refused(void **state)
{
    (void)state;
    refuse(UNDER_DECLARED);
}

static void
decompression_bomb_is_refused(void **state)
{
    (void)state;
    refuse(BOMB);
}

static void
truncated_batch_is_refused(void **state)
{
    (void)state;
    refuse(TRUNCATED);
}

static void
garbage_batch_is_refused(void **state)
{
    (void)state;
    refuse(GARBAGE);
}

static void
unsafe_name_in_a_valid_stream_is_refused(void **state)
{
    (void)state;
    refuse(BAD_NAME);
}

static void
too_many_changes_are_refused_before_decoding(void **state)
{
    (void)state;
    refuse(TOO_MANY);
}

static void
each_form_is_refused_where_the_other_was_agreed(void **state)
{
    (void)state;
    refuse(PLAIN_IN_PACKED);
    refuse(PACKED_IN_PLAIN);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            small_items_travel_packed_in_a_fraction_of_their_bytes),
        cmocka_unit_test(every_field_survives_the_packed_form),
        cmocka_unit_test(over_declared_size_is_refused),
        cmocka_unit_test(more_output_than_declared_is_refused),
        cmocka_unit_test(decompression_bomb_is_refused),
        cmocka_unit_test(truncated_batch_is_refused),
        cmocka_unit_test(garbage_batch_is_refused),
        cmocka_unit_test(unsafe_name_in_a_valid_stream_is_refused),
        cmocka_unit_test(too_many_changes_are_refused_before_decoding),
        cmocka_unit_test(each_form_is_refused_where_the_other_was_agreed),
    };
    if (crypt_init() != SIMSYNC_OK)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
