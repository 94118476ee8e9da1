/* test_malformed.c -- the malformed-input corpus that the module tests do
 * not already hold (docs/robustness.md maps every case to its test):
 * frame lengths around each cap, a header cut at every byte, a second
 * handshake on an open channel, unknown and out-of-turn messages, chunks
 * before they were wanted and after the session ended, store keys of 0,
 * 511 and 512 bytes, a 10^6-entry vector from the wire, counters at
 * 2^64-1, names with a NUL or over 4096 bytes, and invalid UTF-8.
 *
 * Each case checks the error code and that nothing was written (no store
 * entry, no file, no buffer held beyond the cap). */
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "chan.h"
#include "crypt.h"
#include "folder.h"
#include "frame.h"
#include "journal.h"
#include "keys.h"
#include "noise.h"
#include "session.h"
#include "store.h"
#include "transport.h"
#include "utf8.h"
#include "vv.h"

#define TIMEOUT_MS 10000

static char tmpdir[64];

static int
setup(void **state)
{
    (void)state;
    if (crypt_init() != SIMSYNC_OK)
        return -1;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/simsync-malformed-%d",
             (int)getpid());
    return mkdir(tmpdir, 0700);
}

static int
teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void
put_u32(uint8_t p[4], uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* ------------------------------------------------------------ channel */

struct side {
    struct conn *conn;
    int initiator;
    struct chan_identity id;
    struct chan *ch;
    int rc;
};

static void *
run_side(void *arg)
{
    struct side *s = arg;

    s->rc = chan_handshake(s->conn, s->initiator, &s->id, NULL, &s->ch);
    return NULL;
}

/* Two authenticated chans over an in-memory pair. */
struct link {
    struct side a, b;
};

static void
link_open(struct link *l)
{
    pthread_t t;

    memset(l, 0, sizeof(*l));
    assert_int_equal(transport_mem_pair(&l->a.conn, &l->b.conn), SIMSYNC_OK);
    conn_set_timeout(l->a.conn, TIMEOUT_MS);
    conn_set_timeout(l->b.conn, TIMEOUT_MS);
    assert_int_equal(crypt_sign_keypair(l->a.id.sign_pk, l->a.id.sign_sk),
                     SIMSYNC_OK);
    assert_int_equal(crypt_sign_keypair(l->b.id.sign_pk, l->b.id.sign_sk),
                     SIMSYNC_OK);
    l->a.initiator = 1;
    assert_int_equal(pthread_create(&t, NULL, run_side, &l->b), 0);
    run_side(&l->a);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(l->a.rc, SIMSYNC_OK);
    assert_int_equal(l->b.rc, SIMSYNC_OK);
}

static void
link_close(struct link *l)
{
    chan_free(l->a.ch);
    chan_free(l->b.ch);
    conn_close(l->a.conn);
    conn_close(l->b.conn);
}

/* Raw bytes written on a conn from a thread (a frame near 1 MiB does not
 * fit in the in-memory link's buffer while the reader is this thread). */
struct raw_writer {
    struct conn *c;
    const uint8_t *buf;
    size_t len;
    int rc;
};

static void *
write_raw(void *arg)
{
    struct raw_writer *w = arg;

    w->rc = conn_send_all(w->c, w->buf, w->len);
    return NULL;
}

/* The length check itself, at every edge of both caps. */
static void
frame_lengths_around_each_cap(void **state)
{
    static const size_t caps[2] = {FRAME_MAX_HANDSHAKE, CHAN_MAX_FRAME};
    uint8_t hdr[4];
    size_t len;

    (void)state;
    for (int i = 0; i < 2; i++) {
        const struct {
            uint32_t claim;
            int rc;
        } cases[] = {
            {0, SIMSYNC_EPROTO},
            {1, SIMSYNC_OK},
            {(uint32_t)caps[i] - 1, SIMSYNC_OK},
            {(uint32_t)caps[i], SIMSYNC_OK},
            {(uint32_t)caps[i] + 1, SIMSYNC_ETOOBIG},
            {0x7FFFFFFFu, SIMSYNC_ETOOBIG},
            {0xFFFFFFFFu, SIMSYNC_ETOOBIG},
        };

        for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
            put_u32(hdr, cases[k].claim);
            len = 12345;
            assert_int_equal(frame_header_check(hdr, caps[i], &len),
                             cases[k].rc);
            if (cases[k].rc == SIMSYNC_OK)
                assert_int_equal(len, cases[k].claim);
        }
    }
    assert_int_equal(frame_header_encode(hdr, 0), SIMSYNC_EPROTO);
}

/* Forged frames of exactly cap-1 and cap bytes after the handshake: the
 * length is accepted, the body read into a buffer no larger than the cap,
 * and authentication refuses it. */
static void
forged_frames_at_the_cap_fail_authentication(void **state)
{
    static const size_t lens[2] = {CHAN_MAX_FRAME - 1, CHAN_MAX_FRAME};
    uint8_t *buf = malloc(4 + CHAN_MAX_FRAME);

    (void)state;
    assert_non_null(buf);
    for (int i = 0; i < 2; i++) {
        struct link l;
        struct raw_writer w;
        struct chan_stats st;
        pthread_t t;
        const uint8_t *m = buf;
        size_t n = 1;

        link_open(&l);
        put_u32(buf, (uint32_t)lens[i]);
        crypt_random(buf + 4, lens[i]);
        w.c = l.a.conn;
        w.buf = buf;
        w.len = 4 + lens[i];
        assert_int_equal(pthread_create(&t, NULL, write_raw, &w), 0);
        assert_int_equal(chan_recv(l.b.ch, &m, &n), SIMSYNC_ECRYPTO);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(w.rc, SIMSYNC_OK);
        assert_null(m);
        assert_int_equal(n, 0);
        chan_stats(l.b.ch, &st);
        assert_true(st.buffer_bytes <= 2 * (size_t)CHAN_MAX_FRAME);
        assert_int_equal(st.plain_recv, 0);
        link_close(&l);
    }
    free(buf);
}

/* A link that ends after 0, 1, 2 or 3 bytes of a header: closed, both in
 * the handshake and after it. */
static void
header_cut_at_every_byte(void **state)
{
    uint8_t hdr[4];

    (void)state;
    put_u32(hdr, 40);
    for (size_t cut = 0; cut < 4; cut++) {
        struct link l;
        struct conn *ca, *cb;
        struct chan_identity id;
        struct chan *ch = NULL;
        const uint8_t *m;
        size_t n;

        /* After the handshake. */
        link_open(&l);
        assert_int_equal(conn_send_all(l.a.conn, hdr, cut), SIMSYNC_OK);
        conn_close(l.a.conn);
        l.a.conn = NULL;
        assert_int_equal(chan_recv(l.b.ch, &m, &n), SIMSYNC_ECLOSED);
        link_close(&l);

        /* In the handshake (the responder waiting for message 1). */
        assert_int_equal(transport_mem_pair(&ca, &cb), SIMSYNC_OK);
        conn_set_timeout(cb, TIMEOUT_MS);
        assert_int_equal(crypt_sign_keypair(id.sign_pk, id.sign_sk),
                         SIMSYNC_OK);
        assert_int_equal(conn_send_all(ca, hdr, cut), SIMSYNC_OK);
        conn_close(ca);
        assert_int_equal(chan_handshake(cb, 0, &id, NULL, &ch),
                         SIMSYNC_ECLOSED);
        assert_null(ch);
        conn_close(cb);
    }
}

/* A peer that starts a new Noise handshake on an established channel:
 * message 1 is read as a transport frame and fails authentication; the
 * channel is closed for good. */
static void
second_handshake_on_an_open_channel_fails(void **state)
{
    struct link l;
    struct noise_hs *hs;
    uint8_t sk[32], msg[256], frame[4 + 256];
    size_t n;
    const uint8_t *m;
    size_t mlen;

    (void)state;
    link_open(&l);
    crypt_random(sk, sizeof(sk));
    assert_int_equal(noise_hs_new(&hs, 1, (const uint8_t *)"x", 1, sk),
                     SIMSYNC_OK);
    assert_int_equal(noise_hs_write_message(hs, NULL, 0, msg, sizeof(msg), &n),
                     SIMSYNC_OK);
    noise_hs_free(hs);
    put_u32(frame, (uint32_t)n);
    memcpy(frame + 4, msg, n);
    assert_int_equal(conn_send_all(l.a.conn, frame, 4 + n), SIMSYNC_OK);
    assert_int_equal(chan_recv(l.b.ch, &m, &mlen), SIMSYNC_ECRYPTO);
    assert_int_equal(chan_send(l.b.ch, "x", 1), SIMSYNC_ECLOSED);
    link_close(&l);
}

/* ------------------------------------------------------------ session */

/* Two hub-side replicas (no keys) over one fresh store each. */
struct pair {
    struct store *st[2];
    struct replica r[2];
    struct session *s[2]; /* 0: initiator, 1: responder */
};

static void
pair_open(struct pair *p, const char *name)
{
    char dir[160];

    memset(p, 0, sizeof(*p));
    for (int i = 0; i < 2; i++) {
        struct session_cfg cfg;

        snprintf(dir, sizeof(dir), "%s/%s-%d", tmpdir, name, i);
        assert_int_equal(mkdir(dir, 0700), 0);
        assert_int_equal(store_open(dir, 1u << 20, &p->st[i]), SIMSYNC_OK);
        p->r[i].st = p->st[i];
        memset(p->r[i].sub, 0x5a, SUB_BYTES);
        memset(&cfg, 0, sizeof(cfg));
        cfg.r = &p->r[i];
        cfg.classes = 1u << CLS_CONTACTS;
        cfg.peer = 100 + (uint64_t)i;
        cfg.initiator = i == 0;
        assert_int_equal(session_new(&cfg, &p->s[i]), SIMSYNC_OK);
    }
}

static void
pair_close(struct pair *p)
{
    for (int i = 0; i < 2; i++) {
        session_free(p->s[i]);
        store_close(p->st[i]);
    }
}

/* Entries in one database of a store. */
static size_t
count_entries(struct store *st, enum store_db db)
{
    struct store_txn *t;
    struct store_cursor *c;
    const void *k, *v;
    size_t kl, vl, n = 0;
    int rc;

    assert_int_equal(store_txn_begin(st, 1, &t), SIMSYNC_OK);
    assert_int_equal(store_cursor_open(t, db, &c), SIMSYNC_OK);
    for (rc = store_cursor_seek(c, "", 0, &k, &kl, &v, &vl); rc == SIMSYNC_OK;
         rc = store_cursor_next(c, &k, &kl, &v, &vl))
        n++;
    assert_int_equal(rc, SIMSYNC_ENOTFOUND);
    store_cursor_close(c);
    store_txn_abort(t);
    return n;
}

/* Pack an envelope into a malloc'd buffer. */
static uint8_t *
pack_env(const Simsync__Envelope *env, size_t *len)
{
    uint8_t *buf;

    *len = simsync__envelope__get_packed_size(env);
    buf = malloc(*len ? *len : 1);
    assert_non_null(buf);
    assert_int_equal(simsync__envelope__pack(env, buf), *len);
    return buf;
}

static uint8_t *
chunk_env(size_t *len)
{
    static uint8_t id[CHUNK_ID_BYTES], blob[64];
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__ChunkData cd = SIMSYNC__CHUNK_DATA__INIT;

    memset(id, 0x11, sizeof(id));
    memset(blob, 0x22, sizeof(blob));
    cd.id.data = id;
    cd.id.len = sizeof(id);
    cd.blob.data = blob;
    cd.blob.len = sizeof(blob);
    env.msg_case = SIMSYNC__ENVELOPE__MSG_CHUNK;
    env.chunk = &cd;
    return pack_env(&env, len);
}

/* Drain what s has to say into t; returns the first error. */
static int
relay(struct session *s, struct session *t)
{
    uint8_t *f;
    size_t n;
    int rc = SIMSYNC_OK;

    while (rc == SIMSYNC_OK && session_output(s, &f, &n) == SIMSYNC_OK) {
        rc = session_input(t, f, n);
        free(f);
    }
    return rc;
}

/* Unknown message types, bytes that are no message, a second Hello and a
 * chunk nobody asked for: each fails the session with EPROTO, and a failed
 * session takes nothing more. */
static void
unknown_and_out_of_turn_messages_are_refused(void **state)
{
    /* Field 99 (length-delimited, 2 bytes): a message type from a later
     * version. Then an envelope with nothing set, then junk. */
    static const uint8_t unknown[] = {0x9a, 0x06, 0x02, 0x08, 0x01};
    static const uint8_t empty[] = {0x00};
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    const struct {
        const uint8_t *b;
        size_t n;
    } raw[] = {{unknown, sizeof(unknown)}, {empty, 0}, {junk, sizeof(junk)}};
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__Hello hello = SIMSYNC__HELLO__INIT;
    uint8_t *f;
    size_t n;

    (void)state;
    for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]) + 2; i++) {
        struct pair p;
        char name[16];
        int want = SIMSYNC_EPROTO;

        snprintf(name, sizeof(name), "u%zu", i);
        pair_open(&p, name);
        if (i < sizeof(raw) / sizeof(raw[0])) {
            f = malloc(raw[i].n + 1);
            assert_non_null(f);
            memcpy(f, raw[i].b, raw[i].n);
            n = raw[i].n;
        } else if (i == sizeof(raw) / sizeof(raw[0])) {
            env.msg_case = SIMSYNC__ENVELOPE__MSG_HELLO;
            env.hello = &hello;
            f = pack_env(&env, &n);
        } else {
            f = chunk_env(&n);
        }
        /* The responder waits for the first batch. */
        assert_int_equal(session_input(p.s[1], f, n), want);
        free(f);
        /* Failed for good, and a real chunk is not taken any more. */
        f = chunk_env(&n);
        assert_int_equal(session_input(p.s[1], f, n), SIMSYNC_ESTATE);
        free(f);
        assert_false(session_finished(p.s[1]));
        assert_int_equal(count_entries(p.st[1], STORE_CHUNKS), 0);
        pair_close(&p);
    }
}

/* A whole (empty) session runs to its end; a chunk sent after it is
 * refused and stored nowhere. */
static void
chunk_after_done_is_refused(void **state)
{
    struct pair p;
    uint8_t *f;
    size_t n;

    (void)state;
    pair_open(&p, "done");
    for (int round = 0; round < 16; round++) {
        assert_int_equal(relay(p.s[0], p.s[1]), SIMSYNC_OK);
        assert_int_equal(relay(p.s[1], p.s[0]), SIMSYNC_OK);
    }
    assert_true(session_finished(p.s[0]));
    assert_true(session_finished(p.s[1]));
    for (int i = 0; i < 2; i++) {
        f = chunk_env(&n);
        assert_int_not_equal(session_input(p.s[i], f, n), SIMSYNC_OK);
        free(f);
        assert_int_equal(count_entries(p.st[i], STORE_CHUNKS), 0);
    }
    pair_close(&p);
}

/* -------------------------------------------------------------- store */

struct put_arg {
    size_t klen;
    int rc;
};

static int
put_key(struct store_txn *t, void *arg)
{
    struct put_arg *a = arg;
    uint8_t key[600];

    memset(key, 'k', sizeof(key));
    a->rc = store_put(t, STORE_META, key, a->klen, "v", 1);
    return a->rc;
}

/* LMDB's largest key is 511 bytes: 0 and 512 are refused with EINVAL and
 * leave the database as it was; 511 is stored. */
static void
empty_511_and_512_byte_keys(void **state)
{
    char dir[160];
    struct store *st;
    struct put_arg a;
    size_t before;

    (void)state;
    snprintf(dir, sizeof(dir), "%s/keys", tmpdir);
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(store_open(dir, 1u << 20, &st), SIMSYNC_OK);
    before = count_entries(st, STORE_META);

    a.klen = 0;
    assert_int_equal(store_write(st, put_key, &a), SIMSYNC_EINVAL);
    a.klen = 512;
    assert_int_equal(store_write(st, put_key, &a), SIMSYNC_EINVAL);
    a.klen = 599;
    assert_int_equal(store_write(st, put_key, &a), SIMSYNC_EINVAL);
    assert_int_equal(count_entries(st, STORE_META), before);

    a.klen = 511;
    assert_int_equal(store_write(st, put_key, &a), SIMSYNC_OK);
    assert_int_equal(count_entries(st, STORE_META), before + 1);
    store_close(st);
}

/* ------------------------------------------------------- vectors, names */

/* 10^6 entries arriving in a wire vector are refused before any vector
 * is built; counters at 2^64-1 decode, merge and stay at the top. */
static void
huge_and_maximal_wire_vectors(void **state)
{
    Simsync__VersionVector pb = SIMSYNC__VERSION_VECTOR__INIT;
    Simsync__Dot *dots, **ptrs;
    struct vv v = VV_INIT, w = VV_INIT;
    const size_t n = 1000000;

    (void)state;
    dots = calloc(n, sizeof(*dots));
    ptrs = calloc(n, sizeof(*ptrs));
    assert_non_null(dots);
    assert_non_null(ptrs);
    for (size_t i = 0; i < n; i++) {
        simsync__dot__init(&dots[i]);
        dots[i].replica = i + 1;
        dots[i].counter = 1;
        ptrs[i] = &dots[i];
    }
    pb.n_entries = n;
    pb.entries = ptrs;
    assert_int_equal(vv_from_pb(&v, &pb), SIMSYNC_ETOOBIG);
    assert_int_equal(v.n, 0);
    assert_int_equal(vv_from_pb_dots(&v, ptrs, n), SIMSYNC_ETOOBIG);
    assert_int_equal(v.n, 0);

    /* One more than allowed is refused too; exactly the limit is taken. */
    pb.n_entries = VV_MAX_ENTRIES + 1;
    assert_int_equal(vv_from_pb(&v, &pb), SIMSYNC_ETOOBIG);
    pb.n_entries = VV_MAX_ENTRIES;
    assert_int_equal(vv_from_pb(&v, &pb), SIMSYNC_OK);
    assert_int_equal(v.n, VV_MAX_ENTRIES);
    vv_free(&v);

    /* 2^64-1: no wrap when raised, merged or raised again. */
    dots[0].counter = UINT64_MAX;
    pb.n_entries = 1;
    assert_int_equal(vv_from_pb(&v, &pb), SIMSYNC_OK);
    assert_int_equal(vv_get(&v, 1), UINT64_MAX);
    assert_int_equal(vv_raise(&v, 1, 5), SIMSYNC_OK);
    assert_int_equal(vv_get(&v, 1), UINT64_MAX);
    assert_int_equal(vv_set(&w, 1, UINT64_MAX - 1), SIMSYNC_OK);
    assert_int_equal(vv_merge(&w, &v), SIMSYNC_OK);
    assert_int_equal(vv_get(&w, 1), UINT64_MAX);
    assert_int_equal(vv_compare(&w, &v), VV_EQUAL);
    vv_free(&v);
    vv_free(&w);
    free(ptrs);
    free(dots);
}

/* Paths over the limit (4097 bytes, and one component over NAME_MAX) are
 * refused; so are the escapes, whatever follows them. */
static void
long_and_escaping_names_are_refused(void **state)
{
    char *name = malloc(4098);
    struct replica r;

    (void)state;
    assert_non_null(name);
    /* 4097 bytes of short components: "a/a/a/.../a". */
    for (size_t i = 0; i < 4097; i++)
        name[i] = (i & 1) ? '/' : 'a';
    name[4097] = '\0';
    assert_false(replica_name_ok(name));
    /* The largest accepted length, and one more. */
    name[PATH_MAX / 2] = '\0';
    if (name[PATH_MAX / 2 - 1] == '/')
        name[PATH_MAX / 2 - 1] = 'a';
    assert_true(replica_name_ok(name));
    name[PATH_MAX / 2] = 'b';
    name[PATH_MAX / 2 + 1] = '\0';
    assert_false(replica_name_ok(name));
    /* One component of NAME_MAX + 1 bytes. */
    memset(name, 'c', NAME_MAX + 1);
    name[NAME_MAX + 1] = '\0';
    assert_false(replica_name_ok(name));
    name[NAME_MAX] = '\0';
    assert_true(replica_name_ok(name));
    free(name);

    assert_false(replica_name_ok("../x"));
    assert_false(replica_name_ok("a/../../x"));
    assert_false(replica_name_ok("/etc/x"));
    assert_false(replica_name_ok("a/./b"));
    assert_false(replica_name_ok("a//b"));

    /* The write path says the same, on a real folder. */
    memset(&r, 0, sizeof(r));
    snprintf(r.data_dir, sizeof(r.data_dir), "%s/names", tmpdir);
    assert_int_equal(mkdir(r.data_dir, 0700), 0);
    assert_false(folder_target_ok(&r, CLS_CONTACTS, "../x"));
    assert_false(folder_target_ok(&r, CLS_CONTACTS, "/etc/x"));
}

/* Seal an ItemMeta whose name field holds `len` raw bytes (possibly with
 * a NUL inside) under the id of `id_name`. */
static void
seal_meta(const struct datakeys *k, const char *raw, size_t len,
          const char *id_name, uint8_t id[ITEM_ID_BYTES], uint8_t *out,
          size_t *outlen)
{
    uint8_t plain[128];

    assert_true(len < 100);
    plain[0] = 0x0a; /* field 1, length-delimited */
    plain[1] = (uint8_t)len;
    memcpy(plain + 2, raw, len);
    keys_item_id(k, CLS_CONTACTS, id_name, id);
    assert_int_equal(
        crypt_seal(out, plain, len + 2, id, ITEM_ID_BYTES, k->seal),
        SIMSYNC_OK);
    *outlen = len + 2 + CRYPT_SEAL_OVERHEAD;
}

/* A name with a NUL inside cannot be written to a folder as sent: it is
 * refused with EPROTO, whichever name its item id was made from. */
static void
names_with_nul_are_refused(void **state)
{
    static const char raw[] = "a.vcf\0../../x";
    struct replica r;
    Simsync__Version v = SIMSYNC__VERSION__INIT;
    Simsync__ItemMeta *meta;
    uint8_t id[ITEM_ID_BYTES], sealed[256];
    size_t n;
    uint8_t dk[32];

    (void)state;
    memset(&r, 0, sizeof(r));
    r.trusted = 1;
    crypt_random(dk, sizeof(dk));
    assert_int_equal(keys_derive(dk, &r.keys), SIMSYNC_OK);

    /* Sanity: the same name without the NUL opens. */
    seal_meta(&r.keys, "a.vcf", 5, "a.vcf", id, sealed, &n);
    v.meta.data = sealed;
    v.meta.len = n;
    assert_int_equal(replica_open_meta(&r, CLS_CONTACTS, id, &v, &meta),
                     SIMSYNC_OK);
    assert_string_equal(meta->name, "a.vcf");
    simsync__item_meta__free_unpacked(meta, NULL);

    /* The id of the part before the NUL: a reader that stops at the NUL
     * would take it for "a.vcf". */
    seal_meta(&r.keys, raw, sizeof(raw) - 1, "a.vcf", id, sealed, &n);
    v.meta.len = n;
    assert_int_equal(replica_open_meta(&r, CLS_CONTACTS, id, &v, &meta),
                     SIMSYNC_EPROTO);
    assert_null(meta);
}

/* Names are bytes, as on Linux: invalid UTF-8 is a valid name (refusing
 * it would leave a user's file unsynced), and what prints names checks
 * the encoding with utf8_seq_len. */
static void
invalid_utf8_is_detected(void **state)
{
    static const struct {
        const char *s;
        size_t want; /* length of the first sequence; 0: invalid */
    } cases[] = {
        {"a", 1},
        {"\xc3\xa9", 2},         /* e acute */
        {"\xe2\x82\xac", 3},     /* euro sign */
        {"\xf0\x9f\x98\x80", 4}, /* U+1F600 */
        {"\xff", 0},             /* never in UTF-8 */
        {"\x80", 0},             /* a lone continuation */
        {"\xc0\xaf", 0},         /* overlong '/' */
        {"\xe0\x80\xaf", 0},     /* overlong '/' again */
        {"\xed\xa0\x80", 0},     /* a UTF-16 surrogate */
        {"\xf4\x90\x80\x80", 0}, /* over U+10FFFF */
        {"\xe2\x82", 0},         /* cut short */
        {"\xc3", 0},             /* cut short at the end */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(utf8_seq_len(cases[i].s, strlen(cases[i].s)),
                         cases[i].want);
    assert_int_equal(utf8_valid("caf\xc3\xa9.vcf", 9), 1);
    assert_int_equal(utf8_valid("caf\xe9.vcf", 8), 0);
    assert_true(replica_name_ok("caf\xe9.vcf"));
}

/* A peer's error text goes to a person's terminal: control bytes (an
 * escape sequence, a newline) and non-ASCII come out as '?', and it is
 * cut to the buffer. */
static void
peer_text_is_made_printable(void **state)
{
    char out[8];

    (void)state;
    text_printable(out, sizeof(out), "ok\x1b[2J\n\xc3\xa9zzzz");
    assert_string_equal(out, "ok?[2J?");
    text_printable(out, sizeof(out), NULL);
    assert_string_equal(out, "");
    text_printable(out, 1, "abc");
    assert_string_equal(out, "");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(frame_lengths_around_each_cap),
        cmocka_unit_test(forged_frames_at_the_cap_fail_authentication),
        cmocka_unit_test(header_cut_at_every_byte),
        cmocka_unit_test(second_handshake_on_an_open_channel_fails),
        cmocka_unit_test(unknown_and_out_of_turn_messages_are_refused),
        cmocka_unit_test(chunk_after_done_is_refused),
        cmocka_unit_test(empty_511_and_512_byte_keys),
        cmocka_unit_test(huge_and_maximal_wire_vectors),
        cmocka_unit_test(long_and_escaping_names_are_refused),
        cmocka_unit_test(names_with_nul_are_refused),
        cmocka_unit_test(invalid_utf8_is_detected),
        cmocka_unit_test(peer_text_is_made_printable),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
