/* test_noise.c -- Noise_XX_25519_ChaChaPoly_BLAKE2b against the published
 * cacophony test vectors, plus the failures the handshake must produce:
 * tampering, a different prologue (downgrade), low-order keys, size caps,
 * nonce replay and exhaustion.
 *
 * The vectors file is read at run time from $SIMSYNC_VECTORS, or else from
 * SIMSYNC_SOURCE_DIR/../shared/vectors/; the vector test is skipped only when
 * the file is absent. A small scanner picks out the fields we need: no JSON
 * library. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "crypt.h"
#include "noise.h"

#ifndef SIMSYNC_SOURCE_DIR
#define SIMSYNC_SOURCE_DIR "."
#endif

#define VECTORS_REL "/../shared/vectors/noise_25519_chachapoly_blake2b.json"
#define XX_NAME "\"Noise_XX_25519_ChaChaPoly_BLAKE2b\""
#define MAX_VEC_MSGS 8
#define BUF 1024

/* ---- the vector file --------------------------------------------------- */

struct hexfield {
    uint8_t b[BUF];
    size_t n;
};

struct xx_vector {
    struct hexfield init_prologue, init_static, init_ephemeral;
    struct hexfield resp_prologue, resp_static, resp_ephemeral;
    struct hexfield handshake_hash;
    struct hexfield payload[MAX_VEC_MSGS];
    struct hexfield ciphertext[MAX_VEC_MSGS];
    size_t nmsgs;
};

/* The whole file as a NUL-terminated string (caller frees), or NULL when it
 * does not exist. Any other failure fails the test. */
static char *
read_vectors_file(void)
{
    char path[4096];
    const char *env = getenv("SIMSYNC_VECTORS");
    FILE *f;
    char *buf;
    long size;
    int n;

    if (env != NULL && env[0] != '\0')
        n = snprintf(path, sizeof(path), "%s", env);
    else
        n = snprintf(path, sizeof(path), "%s%s", SIMSYNC_SOURCE_DIR,
                     VECTORS_REL);
    assert_true(n > 0 && (size_t)n < sizeof(path));
    f = fopen(path, "rb");
    if (f == NULL) {
        assert_int_equal(errno, ENOENT);
        return NULL;
    }
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    size = ftell(f);
    assert_true(size > 0 && size < 64L * 1024 * 1024);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    buf = malloc((size_t)size + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
    buf[size] = '\0';
    fclose(f);
    return buf;
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Parse `"KEY" : "hex"` at or after p, stopping at end. Returns the position
 * just after the value, or NULL when the key is not in [p, end). */
static const char *
scan_hex(const char *p, const char *end, const char *key, struct hexfield *out)
{
    char quoted[64];
    const char *k;
    size_t klen;

    assert_true(snprintf(quoted, sizeof(quoted), "\"%s\"", key) <
                (int)sizeof(quoted));
    klen = strlen(quoted);
    for (k = p; k + klen <= end; k++)
        if (memcmp(k, quoted, klen) == 0)
            break;
    if (k + klen > end)
        return NULL;
    p = k + klen;
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    assert_true(p < end && *p == ':');
    p++;
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    assert_true(p < end && *p == '"');
    p++;
    out->n = 0;
    while (p < end && *p != '"') {
        int hi = hexval(p[0]), lo = p + 1 < end ? hexval(p[1]) : -1;
        assert_true(hi >= 0 && lo >= 0);
        assert_true(out->n < sizeof(out->b));
        out->b[out->n++] = (uint8_t)(hi << 4 | lo);
        p += 2;
    }
    assert_true(p < end);
    return p + 1;
}

/* Find the object holding "protocol_name": XX_NAME and fill v. */
static void
parse_xx_vector(const char *json, struct xx_vector *v)
{
    const char *name = strstr(json, XX_NAME);
    const char *start, *end, *p;
    int depth = 0, in_str = 0;

    assert_non_null(name);
    for (start = name; start > json && *start != '{'; start--)
        ;
    assert_true(*start == '{');
    /* Match braces to the end of this object, minding strings. */
    for (end = start; *end != '\0'; end++) {
        if (in_str) {
            if (*end == '\\' && end[1] != '\0')
                end++;
            else if (*end == '"')
                in_str = 0;
        } else if (*end == '"') {
            in_str = 1;
        } else if (*end == '{') {
            depth++;
        } else if (*end == '}' && --depth == 0) {
            break;
        }
    }
    assert_true(*end == '}');

    memset(v, 0, sizeof(*v));
    assert_non_null(scan_hex(start, end, "init_prologue", &v->init_prologue));
    assert_non_null(scan_hex(start, end, "init_static", &v->init_static));
    assert_non_null(scan_hex(start, end, "init_ephemeral", &v->init_ephemeral));
    assert_non_null(scan_hex(start, end, "resp_prologue", &v->resp_prologue));
    assert_non_null(scan_hex(start, end, "resp_static", &v->resp_static));
    assert_non_null(scan_hex(start, end, "resp_ephemeral", &v->resp_ephemeral));
    assert_non_null(scan_hex(start, end, "handshake_hash", &v->handshake_hash));
    p = strstr(start, "\"messages\"");
    assert_true(p != NULL && p < end);
    while (v->nmsgs < MAX_VEC_MSGS) {
        const char *q = scan_hex(p, end, "payload", &v->payload[v->nmsgs]);
        if (q == NULL)
            break;
        p = scan_hex(q, end, "ciphertext", &v->ciphertext[v->nmsgs]);
        assert_non_null(p);
        v->nmsgs++;
    }
}

/* ---- helpers ----------------------------------------------------------- */

static int
setup(void **state)
{
    (void)state;
    return crypt_init() == SIMSYNC_OK ? 0 : -1;
}

static void
new_pair(struct noise_hs **ini, struct noise_hs **res, const char *pro_i,
         const char *pro_r)
{
    uint8_t si[32], sr[32];

    crypt_random(si, sizeof(si));
    crypt_random(sr, sizeof(sr));
    assert_int_equal(
        noise_hs_new(ini, 1, (const uint8_t *)pro_i, strlen(pro_i), si),
        SIMSYNC_OK);
    assert_int_equal(
        noise_hs_new(res, 0, (const uint8_t *)pro_r, strlen(pro_r), sr),
        SIMSYNC_OK);
}

/* Move one handshake message from `w` to `r`; returns read's result. */
static int
relay(struct noise_hs *w, struct noise_hs *r)
{
    uint8_t msg[BUF], pl[BUF];
    size_t n, pn;

    assert_int_equal(noise_hs_write_message(w, NULL, 0, msg, sizeof(msg), &n),
                     SIMSYNC_OK);
    return noise_hs_read_message(r, msg, n, pl, sizeof(pl), &pn);
}

/* ---- tests ------------------------------------------------------------- */

static void
xx_handshake_and_transport_match_cacophony_vectors(void **state)
{
    struct xx_vector *v;
    struct noise_hs *ini, *res;
    struct noise_cipher *ini_tx, *ini_rx, *res_tx, *res_rx;
    uint8_t out[BUF], pl[BUF], h[NOISE_HASHLEN], rs[32], pub[32];
    size_t n, pn;
    char *json;

    (void)state;
    json = read_vectors_file();
    if (json == NULL) {
        skip();
        return;
    }
    v = calloc(1, sizeof(*v));
    assert_non_null(v);
    parse_xx_vector(json, v);
    free(json);
    assert_int_equal(v->nmsgs, 6);
    assert_int_equal(v->init_static.n, 32);
    assert_int_equal(v->resp_static.n, 32);
    assert_int_equal(v->handshake_hash.n, NOISE_HASHLEN);

    assert_int_equal(noise_hs_new(&ini, 1, v->init_prologue.b,
                                  v->init_prologue.n, v->init_static.b),
                     SIMSYNC_OK);
    assert_int_equal(noise_hs_new(&res, 0, v->resp_prologue.b,
                                  v->resp_prologue.n, v->resp_static.b),
                     SIMSYNC_OK);
    assert_int_equal(noise_hs_fix_ephemeral(ini, v->init_ephemeral.b),
                     SIMSYNC_OK);
    assert_int_equal(noise_hs_fix_ephemeral(res, v->resp_ephemeral.b),
                     SIMSYNC_OK);

    /* Handshake: messages 0 and 2 from the initiator, 1 from the
     * responder. */
    for (size_t i = 0; i < 3; i++) {
        struct noise_hs *w = i % 2 == 0 ? ini : res;
        struct noise_hs *r = i % 2 == 0 ? res : ini;

        assert_false(noise_hs_is_done(ini));
        assert_int_equal(noise_hs_write_message(w, v->payload[i].b,
                                                v->payload[i].n, out,
                                                sizeof(out), &n),
                         SIMSYNC_OK);
        assert_int_equal(n, v->ciphertext[i].n);
        assert_memory_equal(out, v->ciphertext[i].b, n);
        assert_int_equal(noise_hs_read_message(r, out, n, pl, sizeof(pl), &pn),
                         SIMSYNC_OK);
        assert_int_equal(pn, v->payload[i].n);
        assert_memory_equal(pl, v->payload[i].b, pn);
    }
    assert_true(noise_hs_is_done(ini));
    assert_true(noise_hs_is_done(res));

    assert_int_equal(noise_hs_hash(ini, h), SIMSYNC_OK);
    assert_memory_equal(h, v->handshake_hash.b, NOISE_HASHLEN);
    assert_int_equal(noise_hs_hash(res, h), SIMSYNC_OK);
    assert_memory_equal(h, v->handshake_hash.b, NOISE_HASHLEN);

    /* Each side learnt the other's static public key. */
    assert_int_equal(noise_hs_remote_static(ini, rs), SIMSYNC_OK);
    assert_int_equal(crypt_x25519_base(pub, v->resp_static.b), SIMSYNC_OK);
    assert_memory_equal(rs, pub, 32);
    assert_int_equal(noise_hs_remote_static(res, rs), SIMSYNC_OK);
    assert_int_equal(crypt_x25519_base(pub, v->init_static.b), SIMSYNC_OK);
    assert_memory_equal(rs, pub, 32);

    assert_int_equal(noise_hs_split(ini, &ini_tx, &ini_rx), SIMSYNC_OK);
    assert_int_equal(noise_hs_split(res, &res_tx, &res_rx), SIMSYNC_OK);

    /* Transport: the vectors keep alternating, so message 3 is the
     * responder's, 4 the initiator's, 5 the responder's. */
    for (size_t i = 3; i < v->nmsgs; i++) {
        struct noise_cipher *tx = i % 2 == 0 ? ini_tx : res_tx;
        struct noise_cipher *rx = i % 2 == 0 ? res_rx : ini_rx;

        assert_int_equal(noise_cipher_encrypt(tx, NULL, 0, v->payload[i].b,
                                              v->payload[i].n, out, sizeof(out),
                                              &n),
                         SIMSYNC_OK);
        assert_int_equal(n, v->ciphertext[i].n);
        assert_memory_equal(out, v->ciphertext[i].b, n);
        assert_int_equal(
            noise_cipher_decrypt(rx, NULL, 0, out, n, pl, sizeof(pl), &pn),
            SIMSYNC_OK);
        assert_int_equal(pn, v->payload[i].n);
        assert_memory_equal(pl, v->payload[i].b, pn);
    }

    noise_cipher_free(ini_tx);
    noise_cipher_free(ini_rx);
    noise_cipher_free(res_tx);
    noise_cipher_free(res_rx);
    noise_hs_free(ini);
    noise_hs_free(res);
    free(v);
}

static void
random_keys_handshake_agrees_and_turns_are_enforced(void **state)
{
    struct noise_hs *ini, *res;
    struct noise_cipher *a_tx, *a_rx, *b_tx, *b_rx, *x, *y;
    uint8_t hi[NOISE_HASHLEN], hr[NOISE_HASHLEN], msg[BUF], pl[BUF];
    size_t n, pn;

    (void)state;
    memset(msg, 0, sizeof(msg));
    new_pair(&ini, &res, "p", "p");
    /* The responder may not speak first; nobody may split early. */
    assert_false(noise_hs_my_turn(res));
    assert_true(noise_hs_my_turn(ini));
    assert_int_equal(noise_hs_write_message(res, NULL, 0, msg, sizeof(msg), &n),
                     SIMSYNC_ESTATE);
    assert_int_equal(noise_hs_read_message(ini, msg, 32, pl, sizeof(pl), &pn),
                     SIMSYNC_ESTATE);
    assert_int_equal(noise_hs_split(ini, &x, &y), SIMSYNC_ESTATE);
    assert_null(x);
    assert_null(y);
    assert_int_equal(noise_hs_hash(ini, hi), SIMSYNC_ESTATE);

    assert_int_equal(relay(ini, res), SIMSYNC_OK);
    assert_int_equal(noise_hs_remote_static(ini, hi), SIMSYNC_ESTATE);
    assert_int_equal(relay(res, ini), SIMSYNC_OK);
    /* An ephemeral cannot be replaced once sent. */
    assert_int_equal(noise_hs_fix_ephemeral(ini, hi), SIMSYNC_ESTATE);
    assert_int_equal(relay(ini, res), SIMSYNC_OK);
    assert_true(noise_hs_is_done(ini));
    assert_true(noise_hs_is_done(res));
    assert_int_equal(noise_hs_write_message(ini, NULL, 0, msg, sizeof(msg), &n),
                     SIMSYNC_ESTATE);

    assert_int_equal(noise_hs_hash(ini, hi), SIMSYNC_OK);
    assert_int_equal(noise_hs_hash(res, hr), SIMSYNC_OK);
    assert_memory_equal(hi, hr, NOISE_HASHLEN);

    assert_int_equal(noise_hs_split(ini, &a_tx, &a_rx), SIMSYNC_OK);
    assert_int_equal(noise_hs_split(res, &b_tx, &b_rx), SIMSYNC_OK);
    assert_int_equal(noise_cipher_encrypt(a_tx, NULL, 0,
                                          (const uint8_t *)"hello", 5, msg,
                                          sizeof(msg), &n),
                     SIMSYNC_OK);
    assert_int_equal(n, 5 + NOISE_TAGLEN);
    /* Keys are directional: the sender's own receive key does not work. */
    assert_int_equal(
        noise_cipher_decrypt(a_rx, NULL, 0, msg, n, pl, sizeof(pl), &pn),
        SIMSYNC_ECRYPTO);
    assert_int_equal(
        noise_cipher_decrypt(b_rx, NULL, 0, msg, n, pl, sizeof(pl), &pn),
        SIMSYNC_OK);
    assert_int_equal(pn, 5);
    assert_memory_equal(pl, "hello", 5);

    noise_cipher_free(a_tx);
    noise_cipher_free(a_rx);
    noise_cipher_free(b_tx);
    noise_cipher_free(b_rx);
    noise_hs_free(ini);
    noise_hs_free(res);
}

static void
tampered_handshake_message_fails(void **state)
{
    struct noise_hs *ini, *res;
    uint8_t msg[BUF], pl[BUF];
    size_t n, pn;

    (void)state;
    /* Every byte of message 2 is authenticated (e through the hash, the
     * rest by tags); flip one bit at a few places. */
    for (size_t at = 0; at < 96; at += 31) {
        new_pair(&ini, &res, "p", "p");
        assert_int_equal(relay(ini, res), SIMSYNC_OK);
        assert_int_equal(noise_hs_write_message(res, (const uint8_t *)"xy", 2,
                                                msg, sizeof(msg), &n),
                         SIMSYNC_OK);
        msg[at] ^= 0x04;
        memset(pl, 0xAA, sizeof(pl));
        assert_int_equal(
            noise_hs_read_message(ini, msg, n, pl, sizeof(pl), &pn),
            SIMSYNC_ECRYPTO);
        assert_int_equal(pn, 0);
        assert_false(noise_hs_is_done(ini));
        /* The handshake is dead afterwards. */
        assert_int_equal(
            noise_hs_write_message(ini, NULL, 0, msg, sizeof(msg), &n),
            SIMSYNC_ESTATE);
        noise_hs_free(ini);
        noise_hs_free(res);
    }

    /* Message 3 tampered: the responder refuses it. */
    new_pair(&ini, &res, "p", "p");
    assert_int_equal(relay(ini, res), SIMSYNC_OK);
    assert_int_equal(relay(res, ini), SIMSYNC_OK);
    assert_int_equal(noise_hs_write_message(ini, NULL, 0, msg, sizeof(msg), &n),
                     SIMSYNC_OK);
    msg[n - 1] ^= 0x80;
    assert_int_equal(noise_hs_read_message(res, msg, n, pl, sizeof(pl), &pn),
                     SIMSYNC_ECRYPTO);
    assert_int_equal(noise_hs_remote_static(res, pl), SIMSYNC_ESTATE);
    assert_false(noise_hs_is_done(res));
    noise_hs_free(ini);
    noise_hs_free(res);
}

static void
different_prologue_fails_handshake(void **state)
{
    struct noise_hs *ini, *res;

    (void)state;
    /* Same keys and messages, but the two sides claim different protocol
     * versions in the prologue: the first authenticated message fails. */
    new_pair(&ini, &res, "simsync/1\x01", "simsync/1\x02");
    assert_int_equal(relay(ini, res), SIMSYNC_OK);
    assert_int_equal(relay(res, ini), SIMSYNC_ECRYPTO);
    assert_false(noise_hs_is_done(ini));
    noise_hs_free(ini);
    noise_hs_free(res);
}

static void
low_order_ephemeral_from_peer_fails(void **state)
{
    /* All zero, and the point of order 1 (u = 1). */
    static const uint8_t bad[2][32] = {{0}, {1}};
    struct noise_hs *ini, *res;
    uint8_t msg[BUF], pl[BUF];
    size_t n, pn;

    (void)state;
    for (int k = 0; k < 2; k++) {
        /* The responder gets a low-order e: its ee fails. */
        new_pair(&ini, &res, "p", "p");
        assert_int_equal(
            noise_hs_write_message(ini, NULL, 0, msg, sizeof(msg), &n),
            SIMSYNC_OK);
        memcpy(msg, bad[k], 32);
        assert_int_equal(
            noise_hs_read_message(res, msg, n, pl, sizeof(pl), &pn),
            SIMSYNC_OK);
        assert_int_equal(
            noise_hs_write_message(res, NULL, 0, msg, sizeof(msg), &n),
            SIMSYNC_ECRYPTO);
        assert_int_equal(
            noise_hs_write_message(res, NULL, 0, msg, sizeof(msg), &n),
            SIMSYNC_ESTATE);
        noise_hs_free(ini);
        noise_hs_free(res);

        /* The initiator gets a low-order e in message 2. */
        new_pair(&ini, &res, "p", "p");
        assert_int_equal(relay(ini, res), SIMSYNC_OK);
        assert_int_equal(
            noise_hs_write_message(res, NULL, 0, msg, sizeof(msg), &n),
            SIMSYNC_OK);
        memcpy(msg, bad[k], 32);
        assert_int_equal(
            noise_hs_read_message(ini, msg, n, pl, sizeof(pl), &pn),
            SIMSYNC_ECRYPTO);
        noise_hs_free(ini);
        noise_hs_free(res);
    }
}

static void
payload_and_message_caps_are_respected(void **state)
{
    struct noise_hs *ini, *res;
    uint8_t *big, *msg, *pl;
    size_t n, pn;

    (void)state;
    big = calloc(1, NOISE_MAX_MSG + 64);
    msg = malloc(NOISE_MAX_MSG + 64);
    pl = malloc(NOISE_MAX_MSG + 64);
    assert_non_null(big);
    assert_non_null(msg);
    assert_non_null(pl);

    new_pair(&ini, &res, "p", "p");
    /* Over the 65535 Noise limit. */
    assert_int_equal(noise_hs_write_message(ini, big, NOISE_MAX_PAYLOAD1 + 1,
                                            msg, NOISE_MAX_MSG + 64, &n),
                     SIMSYNC_ETOOBIG);
    /* Output buffer one byte short: nothing past it is touched, state is
     * unchanged (the same call then succeeds). */
    memset(msg, 0x5A, NOISE_MAX_MSG + 64);
    assert_int_equal(noise_hs_write_message(ini, big, 10, msg, 32 + 9, &n),
                     SIMSYNC_ETOOBIG);
    assert_int_equal(n, 0);
    for (size_t i = 0; i < 64; i++)
        assert_int_equal(msg[i], 0x5A);
    assert_int_equal(noise_hs_write_message(ini, big, NOISE_MAX_PAYLOAD1, msg,
                                            NOISE_MAX_MSG, &n),
                     SIMSYNC_OK);
    assert_int_equal(n, NOISE_MAX_MSG);

    /* Reading: a message over the limit, a payload buffer too small. */
    assert_int_equal(noise_hs_read_message(res, msg, NOISE_MAX_MSG + 1, pl,
                                           NOISE_MAX_MSG + 64, &pn),
                     SIMSYNC_ETOOBIG);
    memset(pl, 0x5A, 64);
    assert_int_equal(noise_hs_read_message(res, msg, n, pl, 40, &pn),
                     SIMSYNC_ETOOBIG);
    assert_int_equal(pn, 0);
    assert_int_equal(pl[0], 0x5A);
    assert_int_equal(
        noise_hs_read_message(res, msg, n, pl, NOISE_MAX_PAYLOAD1, &pn),
        SIMSYNC_OK);
    assert_int_equal(pn, NOISE_MAX_PAYLOAD1);

    /* Message 2 with the largest payload; then a truncated message 2. */
    assert_int_equal(noise_hs_write_message(res, big, NOISE_MAX_PAYLOAD2 + 1,
                                            msg, NOISE_MAX_MSG + 64, &n),
                     SIMSYNC_ETOOBIG);
    assert_int_equal(
        noise_hs_write_message(res, big, 3, msg, NOISE_MAX_MSG, &n),
        SIMSYNC_OK);
    assert_int_equal(n, 32 + 48 + 3 + 16);
    assert_int_equal(
        noise_hs_read_message(ini, msg, 32 + 48 + 15, pl, NOISE_MAX_MSG, &pn),
        SIMSYNC_EPROTO);
    noise_hs_free(ini);
    noise_hs_free(res);
    free(big);
    free(msg);
    free(pl);
}

static void
transport_refuses_replay_and_exhausted_nonce(void **state)
{
    struct noise_hs *ini, *res;
    struct noise_cipher *a_tx, *a_rx, *b_tx, *b_rx;
    uint8_t ct[64], pt[64];
    size_t n, pn;

    (void)state;
    new_pair(&ini, &res, "", "");
    assert_int_equal(relay(ini, res), SIMSYNC_OK);
    assert_int_equal(relay(res, ini), SIMSYNC_OK);
    assert_int_equal(relay(ini, res), SIMSYNC_OK);
    assert_int_equal(noise_hs_split(ini, &a_tx, &a_rx), SIMSYNC_OK);
    assert_int_equal(noise_hs_split(res, &b_tx, &b_rx), SIMSYNC_OK);

    assert_int_equal(noise_cipher_encrypt(a_tx, NULL, 0, (const uint8_t *)"one",
                                          3, ct, sizeof(ct), &n),
                     SIMSYNC_OK);
    assert_int_equal(
        noise_cipher_decrypt(b_rx, NULL, 0, ct, n, pt, sizeof(pt), &pn),
        SIMSYNC_OK);
    /* The same ciphertext again: the nonce moved on, so it fails, and a
     * failure does not advance the nonce. */
    assert_int_equal(
        noise_cipher_decrypt(b_rx, NULL, 0, ct, n, pt, sizeof(pt), &pn),
        SIMSYNC_ECRYPTO);
    assert_int_equal(noise_cipher_nonce(b_rx), 1);
    /* Encrypt output cap: ETOOBIG, no nonce consumed. */
    assert_int_equal(noise_cipher_encrypt(a_tx, NULL, 0, (const uint8_t *)"one",
                                          3, ct, 3 + NOISE_TAGLEN - 1, &n),
                     SIMSYNC_ETOOBIG);
    assert_int_equal(noise_cipher_nonce(a_tx), 1);

    /* 2^64-2 is the last usable nonce; 2^64-1 is refused both ways. */
    noise_cipher_set_nonce(a_tx, UINT64_MAX - 1);
    noise_cipher_set_nonce(b_rx, UINT64_MAX - 1);
    assert_int_equal(noise_cipher_encrypt(a_tx, NULL, 0, (const uint8_t *)"two",
                                          3, ct, sizeof(ct), &n),
                     SIMSYNC_OK);
    assert_int_equal(
        noise_cipher_decrypt(b_rx, NULL, 0, ct, n, pt, sizeof(pt), &pn),
        SIMSYNC_OK);
    assert_memory_equal(pt, "two", 3);
    assert_int_equal(noise_cipher_encrypt(a_tx, NULL, 0,
                                          (const uint8_t *)"three", 5, ct,
                                          sizeof(ct), &n),
                     SIMSYNC_ESTATE);
    assert_int_equal(
        noise_cipher_decrypt(b_rx, NULL, 0, ct, 21, pt, sizeof(pt), &pn),
        SIMSYNC_ESTATE);

    noise_cipher_free(a_tx);
    noise_cipher_free(a_rx);
    noise_cipher_free(b_tx);
    noise_cipher_free(b_rx);
    noise_hs_free(ini);
    noise_hs_free(res);
    noise_hs_free(NULL);
    noise_cipher_free(NULL);
}

/* crypt_hex_encode/crypt_hex_decode: lower-case out, either case in, and
 * nothing but exactly 2n hex digits accepted. */
static void
hex_codec_is_strict(void **state)
{
    const uint8_t bin[4] = {0x00, 0x9f, 0xa0, 0xff};
    uint8_t out[4];
    char hex[9];

    (void)state;
    crypt_hex_encode(hex, bin, sizeof(bin));
    assert_string_equal(hex, "009fa0ff");
    assert_int_equal(crypt_hex_decode(out, 4, "009FA0fF", 8), SIMSYNC_OK);
    assert_memory_equal(out, bin, 4);
    assert_int_equal(crypt_hex_decode(out, 4, "009fa0f", 7), SIMSYNC_EINVAL);
    assert_int_equal(crypt_hex_decode(out, 4, "009fa0fff0", 10),
                     SIMSYNC_EINVAL);
    assert_int_equal(crypt_hex_decode(out, 4, "009fa0fg", 8), SIMSYNC_EINVAL);
    assert_int_equal(crypt_hex_decode(out, 4, " 09fa0ff", 8), SIMSYNC_EINVAL);
    assert_int_equal(crypt_hex_decode(out, 4, "+9fa0ff0", 8), SIMSYNC_EINVAL);
    assert_int_equal(crypt_hex_decode(out, 4, "009f:0ff", 8), SIMSYNC_EINVAL);
    assert_int_equal(crypt_hex_decode(out, 0, "", 0), SIMSYNC_OK);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(xx_handshake_and_transport_match_cacophony_vectors),
        cmocka_unit_test(random_keys_handshake_agrees_and_turns_are_enforced),
        cmocka_unit_test(tampered_handshake_message_fails),
        cmocka_unit_test(different_prologue_fails_handshake),
        cmocka_unit_test(low_order_ephemeral_from_peer_fails),
        cmocka_unit_test(payload_and_message_caps_are_respected),
        cmocka_unit_test(transport_refuses_replay_and_exhausted_nonce),
        cmocka_unit_test(hex_codec_is_strict),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
