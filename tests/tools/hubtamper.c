/* hubtamper.c -- a test tool that plays a malicious or broken hub: it edits
 * a hub's store directly, as someone with write access to the hub's disk
 * could, so integration tests can check that terminals notice.
 *
 *   hubtamper HUB_HOME chunk            flip one byte in the middle of the
 *                                       largest chunk value (any subscriber)
 *                                       and print that value's size
 *   hubtamper HUB_HOME drop-latest      delete the newest generation (record
 *                                       and manifest pieces) of every
 *                                       subscriber: a hub serving an older
 *                                       state
 *   hubtamper HUB_HOME fake-forget GEN  mark generation GEN of every
 *                                       subscriber forgotten with a token no
 *                                       terminal made (32 zero bytes), drop
 *                                       its pieces and chunk list as a real
 *                                       forget does
 *   hubtamper HUB_HOME swap             exchange the generations (records
 *                                       and manifest pieces) of the two
 *                                       subscribers that have any: a hub
 *                                       serving another subscriber's
 *                                       backups
 *   hubtamper HUB_HOME replicas N       add N replicas, one change each, to
 *                                       the contacts knowledge of every
 *                                       subscriber (the first 64 in key
 *                                       order): what N terminal stores
 *                                       that each made a change leave
 *                                       behind, without registering them
 *
 * The store is HUB_HOME/store, opened as node.c opens it. The hub may be
 * running: LMDB lets another process write to the same environment, and
 * each command is one store_write transaction, so the hub sees all of a
 * change or none of it.
 *
 * Exit status: 0 something was changed; 1 nothing to tamper with, or the
 * store failed (a message on stderr); 2 usage errors. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hub_backup.h"
#include "journal.h"
#include "simsync.pb-c.h"
#include "store.h"

#define EXIT_NOTHING 1
#define EXIT_USAGE 2
#define CHUNK_KEY_BYTES (SUB_BYTES + 32)
#define GEN_PREFIX_BYTES (SUB_BYTES + 8) /* subscriber | gen */
#define GEN_KIND_AT (SUB_BYTES + 8)      /* offset of the kind byte */

static const char *prog = "hubtamper";

static void
usage(void)
{
    fprintf(stderr,
            "usage: %s HUB_HOME chunk\n"
            "       %s HUB_HOME drop-latest\n"
            "       %s HUB_HOME fake-forget GEN\n"
            "       %s HUB_HOME swap\n"
            "       %s HUB_HOME replicas N\n",
            prog, prog, prog, prog, prog);
}

/* The subscriber part of a key, as hex, for messages. */
static void
sub_hex(const uint8_t *sub, char out[2 * SUB_BYTES + 1])
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < SUB_BYTES; i++) {
        out[2 * i] = digits[sub[i] >> 4];
        out[2 * i + 1] = digits[sub[i] & 15];
    }
    out[2 * SUB_BYTES] = '\0';
}

/* ------------------------------------------------------------ key lists */

/* Copies of gens db keys: cursor pointers die with the transaction or at
 * the first write, so keys to change are copied before anything is. */
struct keylist {
    uint8_t (*k)[GEN_KEY_BYTES];
    size_t n, cap;
};

static void
keylist_clear(struct keylist *l)
{
    free(l->k);
    memset(l, 0, sizeof(*l));
}

static int
keylist_add(struct keylist *l, const uint8_t *key)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        void *nk = realloc(l->k, cap * sizeof(*l->k));
        if (nk == NULL)
            return SIMSYNC_ENOMEM;
        l->k = nk;
        l->cap = cap;
    }
    memcpy(l->k[l->n++], key, GEN_KEY_BYTES);
    return SIMSYNC_OK;
}

/* Append to `out` the generation record keys (kind 0) to tamper with:
 * those of generation `gen`, or with gen 0 the newest of each subscriber.
 * Keys sort by subscriber, then generation, so the newest record of a
 * subscriber is the last one seen before the subscriber changes. */
static int
find_records(struct store_txn *txn, uint64_t gen, struct keylist *out)
{
    struct store_cursor *cur;
    const uint8_t *k;
    const void *v;
    size_t kl, vl;
    int rc = store_cursor_open(txn, STORE_GENS, &cur);

    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_cursor_seek(cur, "", 0, (const void **)&k, &kl, &v, &vl);
    while (rc == SIMSYNC_OK) {
        if (kl == GEN_KEY_BYTES && k[GEN_KIND_AT] == GEN_KIND_RECORD) {
            if (gen == 0 && out->n > 0 &&
                memcmp(out->k[out->n - 1], k, SUB_BYTES) == 0)
                memcpy(out->k[out->n - 1], k, GEN_KEY_BYTES);
            else if (gen == 0 || store_get_be64(k + SUB_BYTES) == gen)
                rc = keylist_add(out, k);
        }
        if (rc == SIMSYNC_OK)
            rc = store_cursor_next(cur, (const void **)&k, &kl, &v, &vl);
    }
    store_cursor_close(cur);
    return rc == SIMSYNC_ENOTFOUND ? SIMSYNC_OK : rc;
}

/* Append to `out` every gens key that starts with prefix[0..plen). */
static int
find_prefixed(struct store_txn *txn, const uint8_t *prefix, size_t plen,
              struct keylist *out)
{
    struct store_cursor *cur;
    const uint8_t *k;
    const void *v;
    size_t kl, vl;
    int rc = store_cursor_open(txn, STORE_GENS, &cur);

    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_cursor_seek(cur, prefix, plen, (const void **)&k, &kl, &v, &vl);
    while (rc == SIMSYNC_OK && kl >= plen && memcmp(k, prefix, plen) == 0) {
        if (kl == GEN_KEY_BYTES)
            rc = keylist_add(out, k);
        if (rc == SIMSYNC_OK)
            rc = store_cursor_next(cur, (const void **)&k, &kl, &v, &vl);
    }
    store_cursor_close(cur);
    return rc == SIMSYNC_ENOTFOUND ? SIMSYNC_OK : rc;
}

static int
delete_all(struct store_txn *txn, const struct keylist *l)
{
    int rc = SIMSYNC_OK;

    for (size_t i = 0; rc == SIMSYNC_OK && i < l->n; i++)
        rc = store_del(txn, STORE_GENS, l->k[i], GEN_KEY_BYTES);
    return rc;
}

/* ------------------------------------------------------------ chunk */

struct chunk_edit {
    uint8_t key[CHUNK_KEY_BYTES];
    size_t size;   /* bytes of the changed value; 0: no chunk found */
    size_t offset; /* the byte flipped */
};

static int
chunk_fn(struct store_txn *txn, void *arg)
{
    struct chunk_edit *e = arg;
    struct store_cursor *cur;
    const uint8_t *k, *v;
    uint8_t *copy;
    size_t kl, vl;
    int rc = store_cursor_open(txn, STORE_CHUNKS, &cur);

    memset(e, 0, sizeof(*e));
    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_cursor_seek(cur, "", 0, (const void **)&k, &kl,
                           (const void **)&v, &vl);
    while (rc == SIMSYNC_OK) {
        if (kl == CHUNK_KEY_BYTES && vl > e->size) {
            memcpy(e->key, k, kl);
            e->size = vl;
        }
        rc = store_cursor_next(cur, (const void **)&k, &kl, (const void **)&v,
                               &vl);
    }
    store_cursor_close(cur);
    if (rc != SIMSYNC_ENOTFOUND)
        return rc;
    if (e->size == 0)
        return SIMSYNC_ENOTFOUND;
    rc = store_get(txn, STORE_CHUNKS, e->key, sizeof(e->key), (const void **)&v,
                   &vl);
    if (rc != SIMSYNC_OK)
        return rc;
    copy = malloc(vl);
    if (copy == NULL)
        return SIMSYNC_ENOMEM;
    memcpy(copy, v, vl);
    /* The value is a refcount, then the sealed blob: the middle byte of a
     * sizeable chunk is ciphertext. */
    e->offset = vl / 2;
    copy[e->offset] ^= 0xff;
    rc = store_put(txn, STORE_CHUNKS, e->key, sizeof(e->key), copy, vl);
    free(copy);
    return rc;
}

static int
cmd_chunk(struct store *st, const char *home)
{
    struct chunk_edit e;
    char hex[2 * SUB_BYTES + 1];
    int rc = store_write(st, chunk_fn, &e);

    if (rc == SIMSYNC_ENOTFOUND) {
        fprintf(stderr,
                "%s: the hub in %s holds no chunks: nothing to "
                "tamper with\n",
                prog, home);
        return EXIT_NOTHING;
    }
    if (rc != SIMSYNC_OK) {
        fprintf(stderr, "%s: changing a chunk in %s/store failed: %s\n", prog,
                home, simsync_strerror(rc));
        return EXIT_NOTHING;
    }
    sub_hex(e.key, hex);
    fprintf(stderr, "%s: subscriber %s: flipped byte %zu of a %zu-byte chunk\n",
            prog, hex, e.offset, e.size);
    printf("%zu\n", e.size);
    return 0;
}

/* ------------------------------------------------------------ drop-latest */

struct drop_edit {
    struct keylist recs; /* the newest record of each subscriber */
    struct keylist dels; /* every key of those generations */
};

static int
drop_fn(struct store_txn *txn, void *arg)
{
    struct drop_edit *d = arg;
    int rc;

    /* store_write may run this again after growing the map. */
    keylist_clear(&d->recs);
    keylist_clear(&d->dels);
    rc = find_records(txn, 0, &d->recs);
    if (rc == SIMSYNC_OK && d->recs.n == 0)
        rc = SIMSYNC_ENOTFOUND;
    for (size_t i = 0; rc == SIMSYNC_OK && i < d->recs.n; i++)
        rc = find_prefixed(txn, d->recs.k[i], GEN_PREFIX_BYTES, &d->dels);
    if (rc == SIMSYNC_OK)
        rc = delete_all(txn, &d->dels);
    return rc;
}

static int
cmd_drop_latest(struct store *st, const char *home)
{
    struct drop_edit d;
    char hex[2 * SUB_BYTES + 1];
    int rc;

    memset(&d, 0, sizeof(d));
    rc = store_write(st, drop_fn, &d);
    if (rc == SIMSYNC_ENOTFOUND) {
        fprintf(stderr,
                "%s: the hub in %s holds no generations: nothing to "
                "tamper with\n",
                prog, home);
    } else if (rc != SIMSYNC_OK) {
        fprintf(stderr, "%s: dropping generations in %s/store failed: %s\n",
                prog, home, simsync_strerror(rc));
    } else {
        for (size_t i = 0; i < d.recs.n; i++) {
            sub_hex(d.recs.k[i], hex);
            printf("subscriber %s: dropped generation %llu\n", hex,
                   (unsigned long long)store_get_be64(d.recs.k[i] + SUB_BYTES));
        }
    }
    keylist_clear(&d.recs);
    keylist_clear(&d.dels);
    return rc == SIMSYNC_OK ? 0 : EXIT_NOTHING;
}

/* ------------------------------------------------------------ fake-forget */

struct forge_edit {
    uint64_t gen;
    struct keylist recs;   /* records of generation gen */
    struct keylist pieces; /* their manifest pieces */
};

/* Rewrite one generation record as forgotten, with a token of zeros and
 * no chunk list (what a hub keeps of a forgotten generation). */
static int
forge_record(struct store_txn *txn, const uint8_t *key)
{
    static const uint8_t zeros[32];
    Simsync__GenerationRecord *rec;
    ProtobufCBinaryData tok;
    const uint8_t *v;
    uint8_t *buf;
    size_t vl, len, nrefs;
    int rc =
        store_get(txn, STORE_GENS, key, GEN_KEY_BYTES, (const void **)&v, &vl);

    if (rc != SIMSYNC_OK)
        return rc;
    rec = simsync__generation_record__unpack(NULL, vl, v);
    if (rec == NULL || rec->info == NULL) {
        if (rec != NULL)
            simsync__generation_record__free_unpacked(rec, NULL);
        return SIMSYNC_EPROTO;
    }
    /* Pack with our fields, then put the unpacked ones back so that
     * free_unpacked frees what unpack allocated. */
    tok = rec->info->forget_token;
    nrefs = rec->n_chunk_refs;
    rec->info->forgotten = 1;
    rec->info->forget_token.data = (uint8_t *)zeros;
    rec->info->forget_token.len = sizeof(zeros);
    rec->n_chunk_refs = 0;
    rc = record_pack(&rec->base, &buf, &len);
    rec->info->forget_token = tok;
    rec->n_chunk_refs = nrefs;
    simsync__generation_record__free_unpacked(rec, NULL);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_put(txn, STORE_GENS, key, GEN_KEY_BYTES, buf, len);
    free(buf);
    return rc;
}

static int
forge_fn(struct store_txn *txn, void *arg)
{
    struct forge_edit *f = arg;
    int rc;

    keylist_clear(&f->recs);
    keylist_clear(&f->pieces);
    rc = find_records(txn, f->gen, &f->recs);
    if (rc == SIMSYNC_OK && f->recs.n == 0)
        rc = SIMSYNC_ENOTFOUND;
    for (size_t i = 0; rc == SIMSYNC_OK && i < f->recs.n; i++) {
        uint8_t prefix[GEN_PREFIX_BYTES + 1];
        memcpy(prefix, f->recs.k[i], GEN_PREFIX_BYTES);
        prefix[GEN_PREFIX_BYTES] = GEN_KIND_PIECE;
        rc = find_prefixed(txn, prefix, sizeof(prefix), &f->pieces);
    }
    for (size_t i = 0; rc == SIMSYNC_OK && i < f->recs.n; i++)
        rc = forge_record(txn, f->recs.k[i]);
    if (rc == SIMSYNC_OK)
        rc = delete_all(txn, &f->pieces);
    return rc;
}

static int
parse_gen(const char *s, uint64_t *gen)
{
    unsigned long long v;
    char *end;

    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v == 0)
        return -1;
    *gen = v;
    return 0;
}

static int
cmd_fake_forget(struct store *st, const char *home, uint64_t gen)
{
    struct forge_edit f;
    char hex[2 * SUB_BYTES + 1];
    int rc;

    memset(&f, 0, sizeof(f));
    f.gen = gen;
    rc = store_write(st, forge_fn, &f);
    if (rc == SIMSYNC_ENOTFOUND) {
        fprintf(stderr,
                "%s: no subscriber of the hub in %s has generation "
                "%llu: nothing to tamper with\n",
                prog, home, (unsigned long long)gen);
    } else if (rc != SIMSYNC_OK) {
        fprintf(stderr, "%s: forging a forget in %s/store failed: %s\n", prog,
                home, simsync_strerror(rc));
    } else {
        for (size_t i = 0; i < f.recs.n; i++) {
            sub_hex(f.recs.k[i], hex);
            printf("subscriber %s: generation %llu marked forgotten without "
                   "a valid token\n",
                   hex, (unsigned long long)gen);
        }
    }
    keylist_clear(&f.recs);
    keylist_clear(&f.pieces);
    return rc == SIMSYNC_OK ? 0 : EXIT_NOTHING;
}

/* ------------------------------------------------------------ swap */

/* Every generations entry, copied: keys and values. */
struct swap_edit {
    struct keylist keys;
    void **vals;
    size_t *lens;
    uint8_t sub[2][SUB_BYTES]; /* the two subscribers */
};

static void
swap_clear(struct swap_edit *e)
{
    for (size_t i = 0; i < e->keys.n && e->vals != NULL; i++)
        free(e->vals[i]);
    free(e->vals);
    free(e->lens);
    keylist_clear(&e->keys);
    e->vals = NULL;
    e->lens = NULL;
}

static int
swap_fn(struct store_txn *txn, void *arg)
{
    struct swap_edit *e = arg;
    size_t nsubs = 0;
    const void *v;
    size_t vl;
    int rc;

    swap_clear(e);
    rc = find_prefixed(txn, (const uint8_t *)"", 0, &e->keys);
    if (rc != SIMSYNC_OK)
        return rc;
    for (size_t i = 0; i < e->keys.n; i++) {
        const uint8_t *k = e->keys.k[i];
        if (nsubs > 0 && memcmp(k, e->sub[nsubs - 1], SUB_BYTES) == 0)
            continue;
        if (nsubs == 2)
            return SIMSYNC_EINVAL; /* a third subscriber */
        memcpy(e->sub[nsubs++], k, SUB_BYTES);
    }
    if (nsubs != 2)
        return SIMSYNC_ENOTFOUND;
    e->vals = calloc(e->keys.n, sizeof(*e->vals));
    e->lens = calloc(e->keys.n, sizeof(*e->lens));
    if (e->vals == NULL || e->lens == NULL)
        return SIMSYNC_ENOMEM;
    for (size_t i = 0; rc == SIMSYNC_OK && i < e->keys.n; i++) {
        rc = store_get(txn, STORE_GENS, e->keys.k[i], GEN_KEY_BYTES, &v, &vl);
        if (rc == SIMSYNC_OK && (e->vals[i] = malloc(vl ? vl : 1)) == NULL)
            rc = SIMSYNC_ENOMEM;
        if (rc == SIMSYNC_OK) {
            memcpy(e->vals[i], v, vl);
            e->lens[i] = vl;
        }
    }
    if (rc == SIMSYNC_OK)
        rc = delete_all(txn, &e->keys);
    for (size_t i = 0; rc == SIMSYNC_OK && i < e->keys.n; i++) {
        uint8_t *k = e->keys.k[i];
        int which = memcmp(k, e->sub[0], SUB_BYTES) == 0 ? 1 : 0;
        memcpy(k, e->sub[which], SUB_BYTES);
        rc = store_put(txn, STORE_GENS, k, GEN_KEY_BYTES, e->vals[i],
                       e->lens[i]);
    }
    return rc;
}

static int
cmd_swap(struct store *st, const char *home)
{
    struct swap_edit e;
    char a[2 * SUB_BYTES + 1], b[2 * SUB_BYTES + 1];
    int rc;

    memset(&e, 0, sizeof(e));
    rc = store_write(st, swap_fn, &e);
    if (rc == SIMSYNC_OK) {
        sub_hex(e.sub[0], a);
        sub_hex(e.sub[1], b);
        printf("swapped %zu generation entries of subscribers %s and %s\n",
               e.keys.n, a, b);
    } else {
        fprintf(stderr,
                "%s: swapping generations in %s/store failed: %s (it needs "
                "exactly two subscribers with generations)\n",
                prog, home, simsync_strerror(rc));
    }
    swap_clear(&e);
    return rc == SIMSYNC_OK ? 0 : EXIT_NOTHING;
}

/* ------------------------------------------------------------ main */

/* ------------------------------------------------------------ replicas */

struct replicas_edit {
    uint64_t n;    /* replicas to add to each subscriber */
    uint64_t subs; /* subscribers changed */
};

/* Knowledge rows sub | class | peer 0 | origin -> counter 1 (journal.h),
 * origins from a range no replica_id is likely to fall in twice. */
static int
replicas_fn(struct store_txn *txn, void *arg)
{
    struct replicas_edit *e = arg;
    struct store_cursor *cur;
    const uint8_t *k;
    size_t kl;
    uint8_t subs[64][SUB_BYTES];
    size_t nsub = 0;
    int rc = store_cursor_open(txn, STORE_SUBS, &cur);

    if (rc == SIMSYNC_OK)
        rc = store_cursor_seek(cur, "", 0, (const void **)&k, &kl, NULL, NULL);
    while (rc == SIMSYNC_OK && nsub < 64) {
        if (kl == SUB_BYTES)
            memcpy(subs[nsub++], k, SUB_BYTES);
        rc = store_cursor_next(cur, (const void **)&k, &kl, NULL, NULL);
    }
    store_cursor_close(cur);
    if (rc != SIMSYNC_ENOTFOUND && rc != SIMSYNC_OK)
        return rc;
    rc = SIMSYNC_OK;
    for (size_t i = 0; rc == SIMSYNC_OK && i < nsub; i++) {
        for (uint64_t r = 0; rc == SIMSYNC_OK && r < e->n; r++) {
            uint8_t key[SUB_BYTES + 17], val[8];

            memcpy(key, subs[i], SUB_BYTES);
            key[SUB_BYTES] = CLS_CONTACTS;
            store_be64(key + SUB_BYTES + 1, 0);
            store_be64(key + SUB_BYTES + 9, 0x7a7a000000000000ull + r);
            store_be64(val, 1);
            rc = store_put(txn, STORE_KNOWLEDGE, key, sizeof(key), val,
                           sizeof(val));
        }
    }
    e->subs = nsub;
    return rc == SIMSYNC_OK && nsub == 0 ? SIMSYNC_ENOTFOUND : rc;
}

static int
cmd_replicas(struct store *st, const char *home, uint64_t n)
{
    struct replicas_edit e = {n, 0};
    int rc = store_write(st, replicas_fn, &e);

    if (rc == SIMSYNC_ENOTFOUND) {
        fprintf(stderr, "%s: the hub in %s has no subscriber\n", prog, home);
        return EXIT_NOTHING;
    }
    if (rc != SIMSYNC_OK) {
        fprintf(stderr, "%s: adding replicas in %s/store failed: %s\n", prog,
                home, simsync_strerror(rc));
        return EXIT_NOTHING;
    }
    fprintf(stderr,
            "%s: %llu replicas added to the contacts knowledge of "
            "%llu subscriber%s\n",
            prog, (unsigned long long)n, (unsigned long long)e.subs,
            e.subs == 1 ? "" : "s");
    return 0;
}

int
main(int argc, char **argv)
{
    char path[4096], data[4096 + 16];
    struct store *st = NULL;
    struct stat sb;
    uint64_t gen = 0;
    int code, rc;

    if (argc < 3) {
        usage();
        return EXIT_USAGE;
    }
    if (strcmp(argv[2], "chunk") == 0 || strcmp(argv[2], "drop-latest") == 0 ||
        strcmp(argv[2], "swap") == 0) {
        if (argc != 3) {
            usage();
            return EXIT_USAGE;
        }
    } else if (strcmp(argv[2], "replicas") == 0) {
        if (argc != 4 || parse_gen(argv[3], &gen) != 0 || gen > 100000) {
            fprintf(stderr, "%s: replicas takes a count from 1 to 100000\n",
                    prog);
            usage();
            return EXIT_USAGE;
        }
    } else if (strcmp(argv[2], "fake-forget") == 0) {
        if (argc != 4 || parse_gen(argv[3], &gen) != 0) {
            fprintf(stderr,
                    "%s: fake-forget takes one generation number "
                    "(1 or more)\n",
                    prog);
            usage();
            return EXIT_USAGE;
        }
    } else {
        fprintf(stderr, "%s: unknown command '%s'\n", prog, argv[2]);
        usage();
        return EXIT_USAGE;
    }
    if (snprintf(path, sizeof(path), "%s/store", argv[1]) >=
        (int)sizeof(path)) {
        fprintf(stderr, "%s: HUB_HOME is too long\n", prog);
        return EXIT_USAGE;
    }
    /* store_open would make an empty store: require an existing one. */
    snprintf(data, sizeof(data), "%s/data.mdb", path);
    if (stat(data, &sb) != 0) {
        fprintf(stderr,
                "%s: no hub store in %s (%s): is HUB_HOME a hub's "
                "home?\n",
                prog, path, strerror(errno));
        return EXIT_NOTHING;
    }
    rc = store_open(path, 0, &st);
    if (rc != SIMSYNC_OK) {
        fprintf(stderr, "%s: cannot open the store %s: %s\n", prog, path,
                simsync_strerror(rc));
        return EXIT_NOTHING;
    }
    if (strcmp(argv[2], "chunk") == 0)
        code = cmd_chunk(st, argv[1]);
    else if (strcmp(argv[2], "drop-latest") == 0)
        code = cmd_drop_latest(st, argv[1]);
    else if (strcmp(argv[2], "swap") == 0)
        code = cmd_swap(st, argv[1]);
    else if (strcmp(argv[2], "replicas") == 0)
        code = cmd_replicas(st, argv[1], gen);
    else
        code = cmd_fake_forget(st, argv[1], gen);
    store_close(st);
    return code;
}
