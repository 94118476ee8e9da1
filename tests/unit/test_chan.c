/* test_chan.c -- the secure channel over in-memory links: handshake and
 * key pinning, messages both ways, hostile frame lengths, truncation,
 * replay/reorder/tampering, garbage before the handshake, protocol version
 * mismatch, a peer whose node key does not match its Noise key, and a link
 * cut at every byte of the handshake.
 *
 * Each test makes a transport_mem_pair; the side that is not driven by the
 * test thread runs in a pthread. Every conn gets a timeout, so a wrong
 * implementation fails with SIMSYNC_ETIMEOUT instead of hanging. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "chan.h"
#include "crypt.h"
#include "frame.h"
#include "node.h"
#include "noise.h"
#include "simsync.pb-c.h"
#include "transport.h"

#define TIMEOUT_MS 10000

/* One side of a handshake, run in a thread or inline. */
struct side {
    struct conn *conn;
    int initiator;
    const struct chan_identity *id;
    const uint8_t *expect;
    struct chan *ch;
    int rc;
};

static void *
run_side(void *arg)
{
    struct side *s = arg;

    s->rc = chan_handshake(s->conn, s->initiator, s->id, s->expect, &s->ch);
    return NULL;
}

static void
make_identity(struct chan_identity *id)
{
    assert_int_equal(crypt_sign_keypair(id->sign_pk, id->sign_sk), SIMSYNC_OK);
}

static void
make_pair(struct conn **a, struct conn **b)
{
    assert_int_equal(transport_mem_pair(a, b), SIMSYNC_OK);
    conn_set_timeout(*a, TIMEOUT_MS);
    conn_set_timeout(*b, TIMEOUT_MS);
}

/* Handshake ini (on ca) against res (on cb, in a thread). */
static void
handshake_both(struct side *ini, struct side *res)
{
    pthread_t t;

    ini->initiator = 1;
    res->initiator = 0;
    assert_int_equal(pthread_create(&t, NULL, run_side, res), 0);
    run_side(ini);
    assert_int_equal(pthread_join(t, NULL), 0);
}

/* A connected, authenticated pair of chans. */
struct duo {
    struct chan_identity ida, idb;
    struct conn *ca, *cb;
    struct chan *a, *b;
};

/* A handshaken pair; b's link asks for a bulk window of b_window bytes
 * (0: the default). */
static void
duo_open_window(struct duo *l, size_t b_window)
{
    struct side ini, res;

    memset(l, 0, sizeof(*l));
    make_identity(&l->ida);
    make_identity(&l->idb);
    make_pair(&l->ca, &l->cb);
    l->cb->link_window = b_window;
    if (b_window != 0) {
        /* Let the socket pair take far more than the window (2 MiB and
         * up), so only the credit can hold a sender back. */
        int big = 4 << 20;

        assert_int_equal(setsockopt(conn_pollfd(l->ca), SOL_SOCKET,
                                    SO_SNDBUF, &big, sizeof(big)),
                         0);
    }
    memset(&ini, 0, sizeof(ini));
    memset(&res, 0, sizeof(res));
    ini.conn = l->ca;
    ini.id = &l->ida;
    ini.expect = l->idb.sign_pk;
    res.conn = l->cb;
    res.id = &l->idb;
    res.expect = l->ida.sign_pk;
    handshake_both(&ini, &res);
    assert_int_equal(ini.rc, SIMSYNC_OK);
    assert_int_equal(res.rc, SIMSYNC_OK);
    l->a = ini.ch;
    l->b = res.ch;
}

static void
duo_open(struct duo *l)
{
    duo_open_window(l, 0);
}

static void
duo_close(struct duo *l)
{
    chan_free(l->a);
    chan_free(l->b);
    conn_close(l->ca);
    conn_close(l->cb);
}

static void
put_u32(uint8_t p[4], uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Read one whole frame raw from c into buf (cap bytes); returns its total
 * length including the header. */
static size_t
read_raw_frame(struct conn *c, uint8_t *buf, size_t cap)
{
    size_t n;

    assert_int_equal(conn_recv_all(c, buf, FRAME_HEADER_BYTES), SIMSYNC_OK);
    assert_int_equal(frame_header_check(buf, cap - FRAME_HEADER_BYTES, &n),
                     SIMSYNC_OK);
    assert_int_equal(conn_recv_all(c, buf + FRAME_HEADER_BYTES, n), SIMSYNC_OK);
    return FRAME_HEADER_BYTES + n;
}

static int
setup(void **state)
{
    (void)state;
    return crypt_init() == SIMSYNC_OK ? 0 : -1;
}

/* ---- tests ------------------------------------------------------------- */

static void
handshake_authenticates_both_nodes_and_messages_flow_both_ways(void **state)
{
    struct duo l;
    struct chan_stats st;
    uint8_t pk[32], ha[64], hb[64];
    const uint8_t *m;
    size_t n;

    (void)state;
    duo_open(&l);
    assert_int_equal(chan_peer_key(l.a, pk), SIMSYNC_OK);
    assert_memory_equal(pk, l.idb.sign_pk, 32);
    assert_int_equal(chan_peer_key(l.b, pk), SIMSYNC_OK);
    assert_memory_equal(pk, l.ida.sign_pk, 32);
    assert_int_equal(chan_handshake_hash(l.a, ha), SIMSYNC_OK);
    assert_int_equal(chan_handshake_hash(l.b, hb), SIMSYNC_OK);
    assert_memory_equal(ha, hb, 64);

    assert_int_equal(chan_send(l.a, "hello", 5), SIMSYNC_OK);
    assert_int_equal(chan_send(l.a, "again", 5), SIMSYNC_OK);
    assert_int_equal(chan_recv(l.b, &m, &n), SIMSYNC_OK);
    assert_int_equal(n, 5);
    assert_memory_equal(m, "hello", 5);
    assert_int_equal(chan_recv(l.b, &m, &n), SIMSYNC_OK);
    assert_memory_equal(m, "again", 5);
    assert_int_equal(chan_send(l.b, "reply!", 6), SIMSYNC_OK);
    assert_int_equal(chan_recv(l.a, &m, &n), SIMSYNC_OK);
    assert_int_equal(n, 6);
    assert_memory_equal(m, "reply!", 6);

    /* Handshake: 4+32, 4+32+48+48, 4+48+48 bytes on the wire. After it,
     * a frame is a 4-byte length, a type byte, the ciphertext and a
     * 16-byte tag. Small messages need no credit frames. */
    chan_stats(l.a, &st);
    assert_int_equal(st.handshake_sent, 36 + 100);
    assert_int_equal(st.handshake_recv, 132);
    assert_int_equal(st.plain_sent, 10);
    assert_int_equal(st.wire_sent, 10 + 2 * (4 + 1 + 16));
    assert_int_equal(st.frames_sent, 2);
    assert_int_equal(st.plain_recv, 6);
    assert_int_equal(st.wire_recv, 6 + 4 + 1 + 16);
    chan_stats(l.b, &st);
    assert_int_equal(st.wire_recv, 10 + 2 * (4 + 1 + 16));
    assert_int_equal(st.frames_recv, 2);
    assert_int_equal(st.credit_frames_sent, 0);

    /* The peer leaving is SIMSYNC_ECLOSED. */
    chan_free(l.a);
    l.a = NULL;
    conn_close(l.ca);
    l.ca = NULL;
    assert_int_equal(chan_recv(l.b, &m, &n), SIMSYNC_ECLOSED);
    assert_null(m);
    assert_int_equal(n, 0);
    duo_close(&l);
}

struct bulk {
    struct chan *ch;
    const uint8_t *data;
    size_t len;
    int rc;
};

static void *
send_bulk(void *arg)
{
    struct bulk *b = arg;

    b->rc = chan_send(b->ch, b->data, b->len);
    return NULL;
}

static void
largest_message_round_trips_and_larger_is_refused(void **state)
{
    struct duo l;
    struct bulk bk;
    pthread_t t;
    uint8_t *big;
    const uint8_t *m;
    size_t n;

    (void)state;
    big = malloc(FRAME_MAX_PLAINTEXT + 1);
    assert_non_null(big);
    crypt_random(big, FRAME_MAX_PLAINTEXT + 1);
    duo_open(&l);

    /* Over the cap, or empty: refused locally, channel still usable. */
    assert_int_equal(chan_send(l.a, big, FRAME_MAX_PLAINTEXT + 1),
                     SIMSYNC_ETOOBIG);
    assert_int_equal(chan_send(l.a, big, 0), SIMSYNC_EINVAL);

    /* 1 MiB is more than the socket buffers: send from a thread. */
    bk.ch = l.a;
    bk.data = big;
    bk.len = FRAME_MAX_PLAINTEXT;
    assert_int_equal(pthread_create(&t, NULL, send_bulk, &bk), 0);
    assert_int_equal(chan_recv(l.b, &m, &n), SIMSYNC_OK);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(bk.rc, SIMSYNC_OK);
    assert_int_equal(n, FRAME_MAX_PLAINTEXT);
    assert_memory_equal(m, big, FRAME_MAX_PLAINTEXT);

    assert_int_equal(chan_send(l.a, "x", 1), SIMSYNC_OK);
    assert_int_equal(chan_recv(l.b, &m, &n), SIMSYNC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(m[0], 'x');
    duo_close(&l);
    free(big);
}

static void
pinned_key_mismatch_is_refused(void **state)
{
    struct chan_identity a, b, stranger;
    struct side ini, res;
    struct conn *ca, *cb;

    (void)state;
    make_identity(&a);
    make_identity(&b);
    make_identity(&stranger);

    /* The initiator expects someone else. */
    make_pair(&ca, &cb);
    memset(&ini, 0, sizeof(ini));
    memset(&res, 0, sizeof(res));
    ini.conn = ca;
    ini.id = &a;
    ini.expect = stranger.sign_pk;
    res.conn = cb;
    res.id = &b;
    /* The responder thread blocks on message 3 until we hang up. */
    {
        pthread_t t;

        res.initiator = 0;
        assert_int_equal(pthread_create(&t, NULL, run_side, &res), 0);
        ini.initiator = 1;
        run_side(&ini);
        assert_int_equal(ini.rc, SIMSYNC_EREFUSED);
        assert_null(ini.ch);
        conn_close(ca);
        assert_int_equal(pthread_join(t, NULL), 0);
    }
    assert_int_equal(res.rc, SIMSYNC_ECLOSED);
    assert_null(res.ch);
    conn_close(cb);

    /* The responder expects someone else: it refuses message 3. */
    make_pair(&ca, &cb);
    memset(&ini, 0, sizeof(ini));
    memset(&res, 0, sizeof(res));
    ini.conn = ca;
    ini.id = &a;
    res.conn = cb;
    res.id = &b;
    res.expect = stranger.sign_pk;
    handshake_both(&ini, &res);
    assert_int_equal(res.rc, SIMSYNC_EREFUSED);
    assert_null(res.ch);
    /* The initiator finished its part; the link dies on first use. */
    assert_int_equal(ini.rc, SIMSYNC_OK);
    conn_close(cb);
    {
        const uint8_t *m;
        size_t n;

        assert_int_equal(chan_recv(ini.ch, &m, &n), SIMSYNC_ECLOSED);
    }
    chan_free(ini.ch);
    conn_close(ca);
}

static void
identity_with_mismatched_halves_is_rejected(void **state)
{
    struct chan_identity a, b;
    struct chan *ch = (struct chan *)&ch;
    struct conn *ca, *cb;

    (void)state;
    make_identity(&a);
    make_identity(&b);
    memcpy(a.sign_pk, b.sign_pk, 32);
    make_pair(&ca, &cb);
    assert_int_equal(chan_handshake(ca, 1, &a, NULL, &ch), SIMSYNC_EINVAL);
    assert_null(ch);
    conn_close(ca);
    conn_close(cb);
}

static void
hostile_frame_lengths_are_rejected_before_allocation(void **state)
{
    static const struct {
        uint32_t len;
        int rc;
    } cases[] = {
        {0, SIMSYNC_EPROTO},
        {1, SIMSYNC_EPROTO},
        {CHAN_TAG_BYTES, SIMSYNC_EPROTO},
        {1 + CHAN_TAG_BYTES, SIMSYNC_EPROTO}, /* a type and a tag only */
        {CHAN_MAX_FRAME + 1, SIMSYNC_ETOOBIG},
        {0x7FFFFFFFu, SIMSYNC_ETOOBIG},
        {0xFFFFFFFFu, SIMSYNC_ETOOBIG},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct duo l;
        struct chan_stats st;
        uint8_t hdr[4];
        const uint8_t *m = (const uint8_t *)"x";
        size_t n = 99;

        duo_open(&l);
        put_u32(hdr, cases[i].len);
        /* Only the header: a reader that trusted it would wait for the
         * body (and time out) after allocating it. */
        assert_int_equal(conn_send_all(l.ca, hdr, sizeof(hdr)), SIMSYNC_OK);
        assert_int_equal(chan_recv(l.b, &m, &n), cases[i].rc);
        assert_null(m);
        assert_int_equal(n, 0);
        chan_stats(l.b, &st);
        assert_int_equal(st.buffer_bytes, 0);
        assert_int_equal(st.wire_recv, 4);
        /* The stream is out of step now: the chan stays closed. */
        assert_int_equal(chan_recv(l.b, &m, &n), SIMSYNC_ECLOSED);
        assert_int_equal(chan_send(l.b, "y", 1), SIMSYNC_ECLOSED);
        duo_close(&l);
    }
}

static void
truncated_frame_reports_closed(void **state)
{
    uint8_t frame[256];
    const uint8_t *m;
    size_t n, len;

    (void)state;
    /* Cut inside the body, and inside the header. */
    for (int in_header = 0; in_header < 2; in_header++) {
        struct duo l;

        duo_open(&l);
        assert_int_equal(chan_send(l.a, "a whole message", 15), SIMSYNC_OK);
        len = read_raw_frame(l.cb, frame, sizeof(frame));
        assert_int_equal(len, 4 + 1 + 15 + 16);
        assert_int_equal(conn_send_all(l.ca, frame, in_header ? 2 : len - 1),
                         SIMSYNC_OK);
        chan_free(l.a);
        l.a = NULL;
        conn_close(l.ca);
        l.ca = NULL;
        assert_int_equal(chan_recv(l.b, &m, &n), SIMSYNC_ECLOSED);
        assert_null(m);
        duo_close(&l);
    }
}

static void
replayed_reordered_or_altered_frames_fail(void **state)
{
    uint8_t f1[128], f2[128];
    const uint8_t *m;
    size_t n, l1, l2;
    struct duo l;

    (void)state;
    /* Replay: the same frame twice. The test takes the frame off the wire
     * at B and puts it back twice from A's end. */
    duo_open(&l);
    assert_int_equal(chan_send(l.a, "pay 10", 6), SIMSYNC_OK);
    l1 = read_raw_frame(l.cb, f1, sizeof(f1));
    assert_int_equal(conn_send_all(l.ca, f1, l1), SIMSYNC_OK);
    assert_int_equal(conn_send_all(l.ca, f1, l1), SIMSYNC_OK);
    assert_int_equal(chan_recv(l.b, &m, &n), SIMSYNC_OK);
    assert_memory_equal(m, "pay 10", 6);
    assert_int_equal(chan_recv(l.b, &m, &n), SIMSYNC_ECRYPTO);
    assert_null(m);
    assert_int_equal(chan_recv(l.b, &m, &n), SIMSYNC_ECLOSED);
    duo_close(&l);

    /* Reorder: second frame first. */
    duo_open(&l);
    assert_int_equal(chan_send(l.a, "first", 5), SIMSYNC_OK);
    assert_int_equal(chan_send(l.a, "second", 6), SIMSYNC_OK);
    l1 = read_raw_frame(l.cb, f1, sizeof(f1));
    l2 = read_raw_frame(l.cb, f2, sizeof(f2));
    assert_int_equal(conn_send_all(l.ca, f2, l2), SIMSYNC_OK);
    assert_int_equal(conn_send_all(l.ca, f1, l1), SIMSYNC_OK);
    assert_int_equal(chan_recv(l.b, &m, &n), SIMSYNC_ECRYPTO);
    duo_close(&l);

    /* One bit flipped in the ciphertext. */
    duo_open(&l);
    assert_int_equal(chan_send(l.a, "secret", 6), SIMSYNC_OK);
    l1 = read_raw_frame(l.cb, f1, sizeof(f1));
    f1[FRAME_HEADER_BYTES + 2] ^= 0x01;
    assert_int_equal(conn_send_all(l.ca, f1, l1), SIMSYNC_OK);
    assert_int_equal(chan_recv(l.b, &m, &n), SIMSYNC_ECRYPTO);
    duo_close(&l);
}

static void
garbage_before_handshake_fails_it(void **state)
{
    static const char http[] = "GET / HTTP/1.1\r\nHost: hub\r\n\r\n";
    struct chan_identity a, b;
    struct chan *ch;
    struct conn *ca, *cb;
    uint8_t junk[4 + 96];

    (void)state;
    make_identity(&a);
    make_identity(&b);

    /* Another protocol entirely: "GET " read as a length is far over the
     * handshake cap. */
    make_pair(&ca, &cb);
    assert_int_equal(conn_send_all(ca, http, sizeof(http) - 1), SIMSYNC_OK);
    assert_int_equal(chan_handshake(cb, 0, &b, NULL, &ch), SIMSYNC_ETOOBIG);
    assert_null(ch);
    conn_close(ca);
    conn_close(cb);

    /* Well-framed junk as message 1 (32 "key" bytes + 16 stray bytes):
     * message 1 carries no payload in our protocol. */
    make_pair(&ca, &cb);
    put_u32(junk, 48);
    crypt_random(junk + 4, 48);
    assert_int_equal(conn_send_all(ca, junk, 4 + 48), SIMSYNC_OK);
    assert_int_equal(chan_handshake(cb, 0, &b, NULL, &ch), SIMSYNC_EPROTO);
    assert_null(ch);
    conn_close(ca);
    conn_close(cb);

    /* Well-framed junk as message 2 to an initiator: it cannot be
     * authenticated. */
    make_pair(&ca, &cb);
    put_u32(junk, 96);
    crypt_random(junk + 4, 96);
    assert_int_equal(conn_send_all(cb, junk, sizeof(junk)), SIMSYNC_OK);
    assert_int_equal(chan_handshake(ca, 1, &a, NULL, &ch), SIMSYNC_ECRYPTO);
    assert_null(ch);
    conn_close(ca);
    conn_close(cb);

    /* Junk ahead of a real initiator's first message. */
    {
        struct side ini, res;

        make_pair(&ca, &cb);
        memset(&ini, 0, sizeof(ini));
        memset(&res, 0, sizeof(res));
        put_u32(junk, 20);
        crypt_random(junk + 4, 20);
        assert_int_equal(conn_send_all(ca, junk, 4 + 20), SIMSYNC_OK);
        ini.conn = ca;
        ini.id = &a;
        res.conn = cb;
        res.id = &b;
        /* Run the responder alone: it must fail on the junk frame. */
        res.initiator = 0;
        run_side(&res);
        assert_int_equal(res.rc, SIMSYNC_EPROTO);
        conn_close(cb);
        ini.initiator = 1;
        run_side(&ini);
        assert_true(ini.rc < 0);
        assert_null(ini.ch);
        conn_close(ca);
    }
}

/* A hand-driven initiator (noise.h directly) to act as a misbehaving or
 * different-version peer against a real chan responder. */
struct fake {
    struct conn *conn;
    struct noise_hs *hs;
    uint8_t buf[FRAME_HEADER_BYTES + NOISE_MAX_MSG];
};

static void
fake_send(struct fake *f, const uint8_t *payload, size_t len)
{
    size_t n;

    assert_int_equal(noise_hs_write_message(f->hs, payload, len,
                                            f->buf + FRAME_HEADER_BYTES,
                                            NOISE_MAX_MSG, &n),
                     SIMSYNC_OK);
    assert_int_equal(frame_header_encode(f->buf, n), SIMSYNC_OK);
    assert_int_equal(conn_send_all(f->conn, f->buf, FRAME_HEADER_BYTES + n),
                     SIMSYNC_OK);
}

static int
fake_recv(struct fake *f, uint8_t *payload, size_t cap, size_t *plen)
{
    size_t len = read_raw_frame(f->conn, f->buf, sizeof(f->buf));

    return noise_hs_read_message(f->hs, f->buf + FRAME_HEADER_BYTES,
                                 len - FRAME_HEADER_BYTES, payload, cap, plen);
}

static struct fake *
fake_new(struct conn *c, const struct chan_identity *id, uint8_t version)
{
    struct fake *f = calloc(1, sizeof(*f));
    uint8_t prologue[10], xsk[32];

    assert_non_null(f);
    memcpy(prologue, "simsync/1", 9);
    prologue[9] = version;
    assert_int_equal(crypt_sign_sk_to_x25519(xsk, id->sign_sk), SIMSYNC_OK);
    assert_int_equal(noise_hs_new(&f->hs, 1, prologue, sizeof(prologue), xsk),
                     SIMSYNC_OK);
    f->conn = c;
    return f;
}

static void
fake_free(struct fake *f)
{
    noise_hs_free(f->hs);
    free(f);
}

static void
other_protocol_version_fails_handshake(void **state)
{
    struct chan_identity a, b;
    struct side res;
    struct fake *f;
    struct conn *ca, *cb;
    pthread_t t;
    uint8_t pl[64] = {0};
    size_t n;

    (void)state;
    make_identity(&a);
    make_identity(&b);

    /* Same wire format, version byte + 1: message 2 does not verify. */
    make_pair(&ca, &cb);
    memset(&res, 0, sizeof(res));
    res.conn = cb;
    res.id = &b;
    assert_int_equal(pthread_create(&t, NULL, run_side, &res), 0);
    f = fake_new(ca, &a, (uint8_t)(SIMSYNC_PROTO_VERSION + 1));
    fake_send(f, NULL, 0);
    assert_int_equal(fake_recv(f, pl, sizeof(pl), &n), SIMSYNC_ECRYPTO);
    conn_close(ca);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(res.rc, SIMSYNC_ECLOSED);
    assert_null(res.ch);
    fake_free(f);
    conn_close(cb);

    /* The same hand-driven peer with our version completes: the wire
     * format is exactly what chan.h documents. */
    make_pair(&ca, &cb);
    memset(&res, 0, sizeof(res));
    res.conn = cb;
    res.id = &b;
    res.expect = a.sign_pk;
    assert_int_equal(pthread_create(&t, NULL, run_side, &res), 0);
    f = fake_new(ca, &a, SIMSYNC_PROTO_VERSION);
    fake_send(f, NULL, 0);
    assert_int_equal(fake_recv(f, pl, sizeof(pl), &n), SIMSYNC_OK);
    assert_int_equal(n, 32);
    assert_memory_equal(pl, b.sign_pk, 32);
    fake_send(f, a.sign_pk, 32);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(res.rc, SIMSYNC_OK);
    chan_free(res.ch);
    fake_free(f);
    conn_close(ca);
    conn_close(cb);
}

static void
node_key_not_matching_noise_key_is_refused(void **state)
{
    struct chan_identity a, b, other;
    struct side res;
    struct fake *f;
    struct conn *ca, *cb;
    pthread_t t;
    uint8_t pl[64] = {0};
    size_t n;

    (void)state;
    make_identity(&a);
    make_identity(&b);
    make_identity(&other);

    /* The peer holds a's Noise key but claims to be `other`, with no pin
     * on the responder: the key binding alone must refuse it. */
    make_pair(&ca, &cb);
    memset(&res, 0, sizeof(res));
    res.conn = cb;
    res.id = &b;
    assert_int_equal(pthread_create(&t, NULL, run_side, &res), 0);
    f = fake_new(ca, &a, SIMSYNC_PROTO_VERSION);
    fake_send(f, NULL, 0);
    assert_int_equal(fake_recv(f, pl, sizeof(pl), &n), SIMSYNC_OK);
    fake_send(f, other.sign_pk, 32);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(res.rc, SIMSYNC_EREFUSED);
    assert_null(res.ch);

    /* A payload of the wrong size is malformed. */
    fake_free(f);
    conn_close(ca);
    conn_close(cb);
    make_pair(&ca, &cb);
    memset(&res, 0, sizeof(res));
    res.conn = cb;
    res.id = &b;
    assert_int_equal(pthread_create(&t, NULL, run_side, &res), 0);
    f = fake_new(ca, &a, SIMSYNC_PROTO_VERSION);
    fake_send(f, NULL, 0);
    assert_int_equal(fake_recv(f, pl, sizeof(pl), &n), SIMSYNC_OK);
    fake_send(f, pl, 33);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(res.rc, SIMSYNC_EPROTO);
    fake_free(f);
    conn_close(ca);
    conn_close(cb);
}

static void
link_cut_at_any_handshake_byte_fails_cleanly(void **state)
{
    /* Bytes the initiator moves: 36 out, 132 in, 100 out. */
    const long long total = 36 + 132 + 100;
    struct chan_identity a, b;

    (void)state;
    make_identity(&a);
    make_identity(&b);
    for (long long cut = 0; cut <= total; cut++) {
        struct side ini, res;
        struct conn *ca, *cb;

        make_pair(&ca, &cb);
        conn_fault_cut_after(ca, cut);
        memset(&ini, 0, sizeof(ini));
        memset(&res, 0, sizeof(res));
        ini.conn = ca;
        ini.id = &a;
        res.conn = cb;
        res.id = &b;
        handshake_both(&ini, &res);
        if (cut < total) {
            assert_int_not_equal(ini.rc, SIMSYNC_OK);
            assert_null(ini.ch);
        } else {
            assert_int_equal(ini.rc, SIMSYNC_OK);
        }
        /* The responder never completes on a partial message 3. */
        if (cut < total)
            assert_int_not_equal(res.rc, SIMSYNC_OK);
        else
            assert_int_equal(res.rc, SIMSYNC_OK);
        chan_free(ini.ch);
        chan_free(res.ch);
        conn_close(ca);
        conn_close(cb);
    }
}

/* ---- lanes and credit -------------------------------------------------- */

static uint8_t *
pattern(size_t len, uint8_t seed)
{
    uint8_t *p = malloc(len);

    assert_non_null(p);
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(i * 31 + seed);
    return p;
}

struct pieces {
    struct chan *ch;
    uint64_t limit; /* stop once this many bulk pieces are out */
};

static int
stop_after_pieces(void *arg)
{
    struct pieces *p = arg;
    struct chan_stats st;

    chan_stats(p->ch, &st);
    return st.bulk_frames_sent >= p->limit;
}

struct flusher {
    struct chan *ch;
    int rc;
};

static void *
flush_all(void *arg)
{
    struct flusher *f = arg;

    f->rc = chan_flush(f->ch, NULL, NULL);
    return NULL;
}

static void
urgent_message_overtakes_queued_bulk(void **state)
{
    enum { N = 3, LEN = 100 * 1024 };
    struct duo l;
    struct pieces pc;
    struct flusher fl;
    struct chan_stats st;
    pthread_t t;
    uint8_t *want[N];
    const uint8_t *m;
    size_t n;

    (void)state;
    duo_open(&l);
    chan_set_link(l.a, 8192); /* a slow link: 8 KiB pieces */
    for (int i = 0; i < N; i++) {
        want[i] = pattern(LEN, (uint8_t)i);
        uint8_t *copy = malloc(LEN);
        assert_non_null(copy);
        memcpy(copy, want[i], LEN);
        assert_int_equal(chan_queue(l.a, copy, LEN), SIMSYNC_OK);
    }
    /* Four pieces of the first message go out, then the caller stops to
     * send a cancel. */
    pc.ch = l.a;
    pc.limit = 4;
    assert_int_equal(chan_flush(l.a, stop_after_pieces, &pc), SIMSYNC_EAGAIN);
    chan_stats(l.a, &st);
    assert_int_equal(st.bulk_frames_sent, 4);
    assert_int_equal(chan_queued(l.a), N * LEN - 4 * 8192);
    assert_int_equal(chan_queue_urgent(l.a, "cancel", 6), SIMSYNC_OK);
    fl.ch = l.a;
    assert_int_equal(pthread_create(&t, NULL, flush_all, &fl), 0);

    /* The cancel arrives first, ahead of the rest of the bulk, and the
     * bulk messages after it are whole and in order. */
    assert_int_equal(chan_recv(l.b, &m, &n), SIMSYNC_OK);
    assert_int_equal(n, 6);
    assert_memory_equal(m, "cancel", 6);
    for (int i = 0; i < N; i++) {
        assert_int_equal(chan_recv(l.b, &m, &n), SIMSYNC_OK);
        assert_int_equal(n, LEN);
        assert_memory_equal(m, want[i], LEN);
        free(want[i]);
    }
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(fl.rc, SIMSYNC_OK);
    assert_int_equal(chan_queued(l.a), 0);
    duo_close(&l);
}

static int
stop_without_credit(void *arg)
{
    struct chan_stats st;

    chan_stats(arg, &st);
    return st.credit == 0;
}

struct receiver {
    struct chan *ch;
    size_t len;
    uint8_t *got;
    int rc;
};

static void *
receive_one(void *arg)
{
    struct receiver *r = arg;
    const uint8_t *m;
    size_t n;

    r->rc = chan_recv(r->ch, &m, &n);
    if (r->rc == SIMSYNC_OK) {
        r->got = malloc(n);
        memcpy(r->got, m, n);
        r->len = n;
    }
    return NULL;
}

static void
credit_holds_back_a_fast_sender(void **state)
{
    enum { LEN = 1024 * 1024 };
    struct duo l;
    struct chan_stats st;
    struct receiver r;
    pthread_t t;
    uint8_t *want = pattern(LEN, 7), *copy = malloc(LEN);

    (void)state;
    /* b's link wants at most 64 KiB of bulk in flight towards it; the
     * socket pair itself would take far more. */
    duo_open_window(&l, CHAN_INITIAL_CREDIT);
    chan_set_link(l.a, 8192);
    assert_non_null(copy);
    memcpy(copy, want, LEN);
    assert_int_equal(chan_queue(l.a, copy, LEN), SIMSYNC_OK);
    /* b reads nothing yet: a stops as soon as its credit is spent. */
    assert_int_equal(chan_flush(l.a, stop_without_credit, l.a),
                     SIMSYNC_EAGAIN);
    chan_stats(l.a, &st);
    assert_int_equal(st.credit, 0);
    assert_int_equal(st.bulk_frames_sent, CHAN_INITIAL_CREDIT / 8192);
    assert_int_equal(chan_queued(l.a), LEN - CHAN_INITIAL_CREDIT);
    assert_int_equal(st.wire_sent,
                     CHAN_INITIAL_CREDIT + st.bulk_frames_sent * (4 + 1 + 16));

    /* Once b reads, it answers a's asks with credit and a finishes,
     * waiting for credit again and again (16 windows' worth). */
    r.ch = l.b;
    r.got = NULL;
    assert_int_equal(pthread_create(&t, NULL, receive_one, &r), 0);
    assert_int_equal(chan_flush(l.a, NULL, NULL), SIMSYNC_OK);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(r.rc, SIMSYNC_OK);
    assert_int_equal(r.len, LEN);
    assert_memory_equal(r.got, want, LEN);
    chan_stats(l.a, &st);
    assert_true(st.credit_waits >= LEN / CHAN_INITIAL_CREDIT - 1);
    chan_stats(l.b, &st);
    assert_true(st.credit_frames_sent >= LEN / CHAN_INITIAL_CREDIT - 1);
    free(r.got);
    free(want);
    duo_close(&l);
}

struct talker {
    struct chan *ch;
    uint8_t *got;
    size_t len;
    int rc;
};

static void *
talk_then_receive(void *arg)
{
    struct talker *tk = arg;
    const uint8_t *m;
    size_t n;

    tk->rc = chan_send(tk->ch, "first", 5);
    if (tk->rc == SIMSYNC_OK)
        tk->rc = chan_send_urgent(tk->ch, "busy", 4);
    if (tk->rc == SIMSYNC_OK)
        tk->rc = chan_recv(tk->ch, &m, &n);
    if (tk->rc == SIMSYNC_OK) {
        tk->got = malloc(n);
        memcpy(tk->got, m, n);
        tk->len = n;
    }
    return NULL;
}

static void
messages_arriving_while_waiting_for_credit_are_kept(void **state)
{
    enum { LEN = 128 * 1024 };
    struct duo l;
    struct talker tk;
    pthread_t t;
    const uint8_t *m;
    size_t n;
    uint8_t *want = pattern(LEN, 3);

    (void)state;
    duo_open_window(&l, CHAN_INITIAL_CREDIT);
    chan_set_link(l.a, 8192);
    tk.ch = l.b;
    tk.got = NULL;
    assert_int_equal(pthread_create(&t, NULL, talk_then_receive, &tk), 0);
    /* a runs out of credit half way and reads b's two messages before
     * b's credit comes; they wait for a's chan_recv. */
    assert_int_equal(chan_send(l.a, want, LEN), SIMSYNC_OK);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(tk.rc, SIMSYNC_OK);
    assert_int_equal(tk.len, LEN);
    assert_memory_equal(tk.got, want, LEN);
    assert_int_equal(chan_recv(l.a, &m, &n), SIMSYNC_OK);
    assert_int_equal(n, 5);
    assert_memory_equal(m, "first", 5);
    assert_int_equal(chan_recv(l.a, &m, &n), SIMSYNC_OK);
    assert_int_equal(n, 4);
    assert_memory_equal(m, "busy", 4);
    /* Urgent messages have a cap; the chan stays usable. */
    assert_int_equal(chan_send_urgent(l.a, want, CHAN_MAX_URGENT + 1),
                     SIMSYNC_ETOOBIG);
    /* a spent all its credit: even two bytes wait until b reads. */
    {
        struct receiver r;

        r.ch = l.b;
        r.got = NULL;
        assert_int_equal(pthread_create(&t, NULL, receive_one, &r), 0);
        assert_int_equal(chan_send(l.a, "ok", 2), SIMSYNC_OK);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(r.rc, SIMSYNC_OK);
        assert_int_equal(r.len, 2);
        assert_memory_equal(r.got, "ok", 2);
        free(r.got);
    }
    free(tk.got);
    free(want);
    duo_close(&l);
}

/* chan_send_sealed: the sealed tail goes in clear but authenticated, the
 * rest encrypted; the receiver gets the message whole; a changed byte of
 * the tail, or a sealed piece passed off as an encrypted one, fails. */
static void
sealed_tail_travels_in_clear_but_authenticated(void **state)
{
    static const char head[] = "chunk-id:", tail[] = "ALREADY-SEALED-BYTES";
    uint8_t msg[64], f1[128], f2[128], big[100], *bigmsg;
    size_t hl = sizeof(head) - 1, tl = sizeof(tail) - 1, n, l1, l2;
    const uint8_t *m;
    struct duo l;

    (void)state;
    memcpy(msg, head, hl);
    memcpy(msg + hl, tail, tl);

    duo_open(&l);
    assert_int_equal(chan_send_sealed(l.a, msg, hl + tl, hl + tl + 1),
                     SIMSYNC_EINVAL);
    assert_int_equal(chan_send_sealed(l.a, msg, hl + tl, tl), SIMSYNC_OK);
    l1 = read_raw_frame(l.cb, f1, sizeof(f1));
    l2 = read_raw_frame(l.cb, f2, sizeof(f2));
    /* [len][3][head encrypted + tag], then [len][6][tail][tag]. */
    assert_int_equal(l1, FRAME_HEADER_BYTES + 1 + hl + CHAN_TAG_BYTES);
    assert_int_equal(f1[FRAME_HEADER_BYTES], 3);
    assert_true(memcmp(f1 + FRAME_HEADER_BYTES + 1, head, hl) != 0);
    assert_int_equal(l2, FRAME_HEADER_BYTES + 1 + tl + CHAN_TAG_BYTES);
    assert_int_equal(f2[FRAME_HEADER_BYTES], 6);
    assert_memory_equal(f2 + FRAME_HEADER_BYTES + 1, tail, tl);
    assert_int_equal(conn_send_all(l.ca, f1, l1), SIMSYNC_OK);
    assert_int_equal(conn_send_all(l.ca, f2, l2), SIMSYNC_OK);
    assert_int_equal(chan_recv(l.b, &m, &n), SIMSYNC_OK);
    assert_int_equal(n, hl + tl);
    assert_memory_equal(m, msg, n);
    duo_close(&l);

    /* One byte of the clear tail changed on the way. */
    duo_open(&l);
    assert_int_equal(chan_send_sealed(l.a, msg, hl + tl, tl), SIMSYNC_OK);
    l1 = read_raw_frame(l.cb, f1, sizeof(f1));
    l2 = read_raw_frame(l.cb, f2, sizeof(f2));
    f2[FRAME_HEADER_BYTES + 5] ^= 0x20;
    assert_int_equal(conn_send_all(l.ca, f1, l1), SIMSYNC_OK);
    assert_int_equal(conn_send_all(l.ca, f2, l2), SIMSYNC_OK);
    assert_int_equal(chan_recv(l.b, &m, &n), SIMSYNC_ECRYPTO);
    duo_close(&l);

    /* The sealed piece relabelled as an encrypted end piece (type 2). */
    duo_open(&l);
    assert_int_equal(chan_send_sealed(l.a, msg, hl + tl, tl), SIMSYNC_OK);
    l1 = read_raw_frame(l.cb, f1, sizeof(f1));
    l2 = read_raw_frame(l.cb, f2, sizeof(f2));
    f2[FRAME_HEADER_BYTES] = 2;
    assert_int_equal(conn_send_all(l.ca, f1, l1), SIMSYNC_OK);
    assert_int_equal(conn_send_all(l.ca, f2, l2), SIMSYNC_OK);
    assert_int_equal(chan_recv(l.b, &m, &n), SIMSYNC_ECRYPTO);
    duo_close(&l);

    /* On a link of 16-byte pieces, a message all sealed: seven pieces, the
     * message whole at the other end. */
    duo_open(&l);
    chan_set_link(l.a, 16);
    bigmsg = pattern(sizeof(big), 7);
    assert_int_equal(chan_send_sealed(l.a, bigmsg, sizeof(big), sizeof(big)),
                     SIMSYNC_OK);
    assert_int_equal(chan_recv(l.b, &m, &n), SIMSYNC_OK);
    assert_int_equal(n, sizeof(big));
    assert_memory_equal(m, bigmsg, n);
    free(bigmsg);
    duo_close(&l);
}

/* node_send_chunk: a ChunkData's blob (already sealed) goes in a sealed
 * piece, its id encrypted; the peer decodes the same envelope. */
static void
chunk_blob_goes_sealed_and_id_encrypted(void **state)
{
    uint8_t id[32], blob[300], f1[512], f2[512];
    size_t l1, l2;
    const uint8_t *m;
    size_t n;
    Simsync__Envelope *env;
    struct duo l;

    (void)state;
    memset(id, 0xA5, sizeof(id));
    for (size_t i = 0; i < sizeof(blob); i++)
        blob[i] = (uint8_t)(i * 7 + 1);
    duo_open(&l);
    assert_int_equal(node_send_chunk(l.a, id, sizeof(id), blob, sizeof(blob)),
                     SIMSYNC_OK);
    l1 = read_raw_frame(l.cb, f1, sizeof(f1));
    l2 = read_raw_frame(l.cb, f2, sizeof(f2));
    assert_int_equal(f1[FRAME_HEADER_BYTES], 3);
    for (size_t i = 0; i + 8 <= l1; i++)
        assert_true(memcmp(f1 + i, id, 8) != 0);
    assert_int_equal(f2[FRAME_HEADER_BYTES], 6);
    assert_int_equal(l2, FRAME_HEADER_BYTES + 1 + sizeof(blob) + CHAN_TAG_BYTES);
    assert_memory_equal(f2 + FRAME_HEADER_BYTES + 1, blob, sizeof(blob));
    assert_int_equal(conn_send_all(l.ca, f1, l1), SIMSYNC_OK);
    assert_int_equal(conn_send_all(l.ca, f2, l2), SIMSYNC_OK);
    assert_int_equal(chan_recv(l.b, &m, &n), SIMSYNC_OK);
    env = simsync__envelope__unpack(NULL, n, m);
    assert_non_null(env);
    assert_int_equal(env->msg_case, SIMSYNC__ENVELOPE__MSG_CHUNK);
    assert_memory_equal(env->chunk->id.data, id, sizeof(id));
    assert_int_equal(env->chunk->blob.len, sizeof(blob));
    assert_memory_equal(env->chunk->blob.data, blob, sizeof(blob));
    simsync__envelope__free_unpacked(env, NULL);

    /* An empty blob ("not here"): one encrypted frame, nothing in clear. */
    assert_int_equal(node_send_chunk(l.a, id, sizeof(id), blob, 0), SIMSYNC_OK);
    l1 = read_raw_frame(l.cb, f1, sizeof(f1));
    assert_int_equal(f1[FRAME_HEADER_BYTES], 2);
    duo_close(&l);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            handshake_authenticates_both_nodes_and_messages_flow_both_ways),
        cmocka_unit_test(largest_message_round_trips_and_larger_is_refused),
        cmocka_unit_test(pinned_key_mismatch_is_refused),
        cmocka_unit_test(identity_with_mismatched_halves_is_rejected),
        cmocka_unit_test(hostile_frame_lengths_are_rejected_before_allocation),
        cmocka_unit_test(truncated_frame_reports_closed),
        cmocka_unit_test(urgent_message_overtakes_queued_bulk),
        cmocka_unit_test(credit_holds_back_a_fast_sender),
        cmocka_unit_test(messages_arriving_while_waiting_for_credit_are_kept),
        cmocka_unit_test(replayed_reordered_or_altered_frames_fail),
        cmocka_unit_test(sealed_tail_travels_in_clear_but_authenticated),
        cmocka_unit_test(chunk_blob_goes_sealed_and_id_encrypted),
        cmocka_unit_test(garbage_before_handshake_fails_it),
        cmocka_unit_test(other_protocol_version_fails_handshake),
        cmocka_unit_test(node_key_not_matching_noise_key_is_refused),
        cmocka_unit_test(link_cut_at_any_handshake_byte_fails_cleanly),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
