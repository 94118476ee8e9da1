/* noise.c -- Noise_XX_25519_ChaChaPoly_BLAKE2b from the Noise specification
 * (revision 34), sections 5 (processing rules), 7 (patterns) and 12
 * (BLAKE2b: HASHLEN 64, BLOCKLEN 128). No I/O: bytes in, bytes out.
 *
 * The three objects of the spec map onto this file as follows:
 *   CipherState      struct noise_cipher  (k, n; "empty" when has_k == 0)
 *   SymmetricState   struct symmetric     (cs, ck, h)
 *   HandshakeState   struct noise_hs      (s, e, rs, re, role, message index)
 * The handshake pattern is a table of tokens walked by one loop for writing
 * and one for reading, so the code reads like the spec's pseudo-code.
 *
 * HMAC-BLAKE2b is built by hand (RFC 2104 over unkeyed BLAKE2b-512 with a
 * 128-byte block), as the spec defines HMAC-HASH; it is not BLAKE2b's own
 * keyed mode. */
#include <stdlib.h>
#include <string.h>

#include "crypt.h"
#include "noise.h"

#define BLOCKLEN 128 /* BLAKE2b block length, for HMAC */

struct noise_cipher {
    uint8_t k[NOISE_KEYLEN]; /* the key, valid when has_k */
    int has_k;               /* 0: "empty", encryption is the identity */
    uint64_t n;              /* next nonce; UINT64_MAX means exhausted */
};

struct symmetric {
    struct noise_cipher cs;    /* handshake-time cipher */
    uint8_t ck[NOISE_HASHLEN]; /* chaining key */
    uint8_t h[NOISE_HASHLEN];  /* handshake hash */
};

/* Tokens of a message pattern. */
enum token { TOK_END = 0, TOK_E, TOK_S, TOK_EE, TOK_ES, TOK_SE, TOK_SS };

#define XX_MESSAGES 3
#define MAX_TOKENS 5

/* Noise_XX: -> e; <- e, ee, s, es; -> s, se. */
static const unsigned char xx_pattern[XX_MESSAGES][MAX_TOKENS] = {
    {TOK_E, TOK_END},
    {TOK_E, TOK_EE, TOK_S, TOK_ES, TOK_END},
    {TOK_S, TOK_SE, TOK_END},
};

struct noise_hs {
    struct symmetric ss;
    int initiator;             /* 1 initiator, 0 responder */
    int step;                  /* messages done so far, 0..XX_MESSAGES */
    int dead;                  /* a read/DH failed: refuse everything */
    uint8_t s_sk[NOISE_DHLEN]; /* local static key pair */
    uint8_t s_pk[NOISE_DHLEN];
    uint8_t e_sk[NOISE_DHLEN]; /* local ephemeral key pair */
    uint8_t e_pk[NOISE_DHLEN];
    int has_e;               /* e_sk/e_pk hold a key (fixed or made) */
    int e_sent;              /* e has gone out: it can no longer change */
    uint8_t re[NOISE_DHLEN]; /* remote ephemeral public key */
    uint8_t rs[NOISE_DHLEN]; /* remote static public key */
    int has_re;
    int has_rs;
};

/* ---- CipherState -------------------------------------------------------- */

static void
cipher_init_key(struct noise_cipher *cs, const uint8_t k[NOISE_KEYLEN])
{
    memcpy(cs->k, k, NOISE_KEYLEN);
    cs->has_k = 1;
    cs->n = 0;
}

/* EncryptWithAd. out holds ptlen (+ tag when keyed); out may equal pt. */
static int
cipher_encrypt_ad(struct noise_cipher *cs, const uint8_t *ad, size_t adlen,
                  const uint8_t *pt, size_t ptlen, uint8_t *out)
{
    int rc;

    if (!cs->has_k) {
        if (ptlen > 0 && out != pt)
            memmove(out, pt, ptlen);
        return SIMSYNC_OK;
    }
    if (cs->n == UINT64_MAX)
        return SIMSYNC_ESTATE;
    rc = crypt_aead_encrypt(out, pt, ptlen, ad, adlen, cs->n, cs->k);
    if (rc == SIMSYNC_OK)
        cs->n++;
    return rc;
}

/* DecryptWithAd. out holds ctlen (- tag when keyed); out may equal ct. The
 * nonce advances only on success. */
static int
cipher_decrypt_ad(struct noise_cipher *cs, const uint8_t *ad, size_t adlen,
                  const uint8_t *ct, size_t ctlen, uint8_t *out)
{
    int rc;

    if (!cs->has_k) {
        if (ctlen > 0 && out != ct)
            memmove(out, ct, ctlen);
        return SIMSYNC_OK;
    }
    if (cs->n == UINT64_MAX)
        return SIMSYNC_ESTATE;
    if (ctlen < NOISE_TAGLEN)
        return SIMSYNC_ECRYPTO;
    rc = crypt_aead_decrypt(out, ct, ctlen, ad, adlen, cs->n, cs->k);
    if (rc != SIMSYNC_OK) {
        crypt_wipe(out, ctlen - NOISE_TAGLEN);
        return SIMSYNC_ECRYPTO;
    }
    cs->n++;
    return SIMSYNC_OK;
}

int
noise_cipher_encrypt(struct noise_cipher *cs, const uint8_t *ad, size_t adlen,
                     const uint8_t *pt, size_t ptlen, uint8_t *out, size_t cap,
                     size_t *out_len)
{
    int rc;

    if (out_len != NULL)
        *out_len = 0;
    if (cs == NULL || out == NULL || out_len == NULL ||
        (pt == NULL && ptlen > 0) || (ad == NULL && adlen > 0) || !cs->has_k)
        return SIMSYNC_EINVAL;
    if (ptlen > SIZE_MAX - NOISE_TAGLEN || cap < ptlen + NOISE_TAGLEN)
        return SIMSYNC_ETOOBIG;
    rc = cipher_encrypt_ad(cs, ad, adlen, pt, ptlen, out);
    if (rc == SIMSYNC_OK)
        *out_len = ptlen + NOISE_TAGLEN;
    return rc;
}

int
noise_cipher_decrypt(struct noise_cipher *cs, const uint8_t *ad, size_t adlen,
                     const uint8_t *ct, size_t ctlen, uint8_t *out, size_t cap,
                     size_t *out_len)
{
    int rc;

    if (out_len != NULL)
        *out_len = 0;
    if (cs == NULL || out_len == NULL || (ct == NULL && ctlen > 0) ||
        (ad == NULL && adlen > 0) || !cs->has_k)
        return SIMSYNC_EINVAL;
    if (ctlen < NOISE_TAGLEN)
        return SIMSYNC_ECRYPTO;
    if (cap < ctlen - NOISE_TAGLEN)
        return SIMSYNC_ETOOBIG;
    if (out == NULL && ctlen > NOISE_TAGLEN)
        return SIMSYNC_EINVAL;
    rc = cipher_decrypt_ad(cs, ad, adlen, ct, ctlen, out);
    if (rc == SIMSYNC_OK)
        *out_len = ctlen - NOISE_TAGLEN;
    return rc;
}

void
noise_cipher_set_nonce(struct noise_cipher *cs, uint64_t n)
{
    if (cs != NULL)
        cs->n = n;
}

uint64_t
noise_cipher_nonce(const struct noise_cipher *cs)
{
    return cs != NULL ? cs->n : 0;
}

void
noise_cipher_free(struct noise_cipher *cs)
{
    if (cs == NULL)
        return;
    crypt_wipe(cs, sizeof(*cs));
    free(cs);
}

/* ---- HMAC / HKDF (spec section 4.3) ------------------------------------ */

/* HMAC-BLAKE2b(key, d1 || d2). keylen <= BLOCKLEN (ours are all 64). */
static int
hmac(uint8_t out[NOISE_HASHLEN], const uint8_t *key, size_t keylen,
     const uint8_t *d1, size_t l1, const uint8_t *d2, size_t l2)
{
    uint8_t pad[BLOCKLEN];
    uint8_t inner[NOISE_HASHLEN];
    struct crypt_hash_state st;
    int rc;

    if (keylen > BLOCKLEN)
        return SIMSYNC_EINVAL;
    memset(pad, 0, sizeof(pad));
    memcpy(pad, key, keylen);
    for (size_t i = 0; i < BLOCKLEN; i++)
        pad[i] ^= 0x36;
    rc = crypt_hash_init(&st, NOISE_HASHLEN, NULL, 0);
    if (rc == SIMSYNC_OK)
        rc = crypt_hash_update(&st, pad, BLOCKLEN);
    if (rc == SIMSYNC_OK && l1 > 0)
        rc = crypt_hash_update(&st, d1, l1);
    if (rc == SIMSYNC_OK && l2 > 0)
        rc = crypt_hash_update(&st, d2, l2);
    if (rc == SIMSYNC_OK)
        rc = crypt_hash_final(&st, inner, NOISE_HASHLEN);

    for (size_t i = 0; i < BLOCKLEN; i++)
        pad[i] ^= 0x36 ^ 0x5c;
    if (rc == SIMSYNC_OK)
        rc = crypt_hash_init(&st, NOISE_HASHLEN, NULL, 0);
    if (rc == SIMSYNC_OK)
        rc = crypt_hash_update(&st, pad, BLOCKLEN);
    if (rc == SIMSYNC_OK)
        rc = crypt_hash_update(&st, inner, NOISE_HASHLEN);
    if (rc == SIMSYNC_OK)
        rc = crypt_hash_final(&st, out, NOISE_HASHLEN);

    crypt_wipe(pad, sizeof(pad));
    crypt_wipe(inner, sizeof(inner));
    crypt_wipe(&st, sizeof(st));
    return rc;
}

/* HKDF(chaining_key, ikm, 2 or 3): out3 may be NULL for two outputs. */
static int
hkdf(const uint8_t ck[NOISE_HASHLEN], const uint8_t *ikm, size_t ikm_len,
     uint8_t out1[NOISE_HASHLEN], uint8_t out2[NOISE_HASHLEN],
     uint8_t out3[NOISE_HASHLEN])
{
    uint8_t temp_key[NOISE_HASHLEN];
    const uint8_t one = 0x01, two = 0x02, three = 0x03;
    int rc;

    rc = hmac(temp_key, ck, NOISE_HASHLEN, ikm, ikm_len, NULL, 0);
    if (rc == SIMSYNC_OK)
        rc = hmac(out1, temp_key, NOISE_HASHLEN, &one, 1, NULL, 0);
    if (rc == SIMSYNC_OK)
        rc = hmac(out2, temp_key, NOISE_HASHLEN, out1, NOISE_HASHLEN, &two, 1);
    if (rc == SIMSYNC_OK && out3 != NULL)
        rc =
            hmac(out3, temp_key, NOISE_HASHLEN, out2, NOISE_HASHLEN, &three, 1);
    crypt_wipe(temp_key, sizeof(temp_key));
    return rc;
}

/* ---- SymmetricState ---------------------------------------------------- */

static int
mix_hash(struct symmetric *ss, const uint8_t *data, size_t len)
{
    struct crypt_hash_state st;
    int rc;

    rc = crypt_hash_init(&st, NOISE_HASHLEN, NULL, 0);
    if (rc == SIMSYNC_OK)
        rc = crypt_hash_update(&st, ss->h, NOISE_HASHLEN);
    if (rc == SIMSYNC_OK && len > 0)
        rc = crypt_hash_update(&st, data, len);
    if (rc == SIMSYNC_OK)
        rc = crypt_hash_final(&st, ss->h, NOISE_HASHLEN);
    crypt_wipe(&st, sizeof(st));
    return rc;
}

static int
mix_key(struct symmetric *ss, const uint8_t *ikm, size_t len)
{
    uint8_t ck[NOISE_HASHLEN];
    uint8_t temp_k[NOISE_HASHLEN];
    int rc;

    rc = hkdf(ss->ck, ikm, len, ck, temp_k, NULL);
    if (rc == SIMSYNC_OK) {
        memcpy(ss->ck, ck, NOISE_HASHLEN);
        /* HASHLEN 64: temp_k is truncated to 32 bytes. */
        cipher_init_key(&ss->cs, temp_k);
    }
    crypt_wipe(ck, sizeof(ck));
    crypt_wipe(temp_k, sizeof(temp_k));
    return rc;
}

/* EncryptAndHash: out receives len (+ tag once keyed) bytes. */
static int
encrypt_and_hash(struct symmetric *ss, const uint8_t *pt, size_t len,
                 uint8_t *out)
{
    size_t outlen = len + (ss->cs.has_k ? NOISE_TAGLEN : 0);
    int rc;

    rc = cipher_encrypt_ad(&ss->cs, ss->h, NOISE_HASHLEN, pt, len, out);
    if (rc == SIMSYNC_OK)
        rc = mix_hash(ss, out, outlen);
    return rc;
}

/* DecryptAndHash: ct is len bytes (tag included once keyed); out must not
 * overlap ct, which is hashed after decryption. */
static int
decrypt_and_hash(struct symmetric *ss, const uint8_t *ct, size_t len,
                 uint8_t *out)
{
    int rc;

    rc = cipher_decrypt_ad(&ss->cs, ss->h, NOISE_HASHLEN, ct, len, out);
    if (rc == SIMSYNC_OK)
        rc = mix_hash(ss, ct, len);
    return rc;
}

/* ---- HandshakeState ---------------------------------------------------- */

int
noise_hs_new(struct noise_hs **out, int initiator, const uint8_t *prologue,
             size_t prologue_len, const uint8_t static_sk[32])
{
    static const char name[] = NOISE_PROTOCOL_NAME;
    struct noise_hs *hs;
    int rc;

    _Static_assert(sizeof(name) - 1 <= NOISE_HASHLEN, "name fits in h");
    if (out == NULL)
        return SIMSYNC_EINVAL;
    *out = NULL;
    if (static_sk == NULL || (prologue == NULL && prologue_len > 0))
        return SIMSYNC_EINVAL;
    hs = calloc(1, sizeof(*hs));
    if (hs == NULL)
        return SIMSYNC_ENOMEM;
    hs->initiator = initiator ? 1 : 0;

    /* InitializeSymmetric: the name is short, so h = name zero-padded. */
    memcpy(hs->ss.h, name, sizeof(name) - 1);
    memcpy(hs->ss.ck, hs->ss.h, NOISE_HASHLEN);
    rc = mix_hash(&hs->ss, prologue, prologue_len);

    memcpy(hs->s_sk, static_sk, NOISE_DHLEN);
    if (rc == SIMSYNC_OK)
        rc = crypt_x25519_base(hs->s_pk, hs->s_sk);
    if (rc != SIMSYNC_OK) {
        noise_hs_free(hs);
        return rc;
    }
    *out = hs;
    return SIMSYNC_OK;
}

int
noise_hs_fix_ephemeral(struct noise_hs *hs, const uint8_t e_sk[32])
{
    if (hs == NULL || e_sk == NULL)
        return SIMSYNC_EINVAL;
    if (hs->e_sent || hs->dead)
        return SIMSYNC_ESTATE;
    memcpy(hs->e_sk, e_sk, NOISE_DHLEN);
    hs->has_e = 1;
    return crypt_x25519_base(hs->e_pk, hs->e_sk);
}

void
noise_hs_free(struct noise_hs *hs)
{
    if (hs == NULL)
        return;
    crypt_wipe(hs, sizeof(*hs));
    free(hs);
}

int
noise_hs_is_done(const struct noise_hs *hs)
{
    return hs != NULL && !hs->dead && hs->step == XX_MESSAGES;
}

int
noise_hs_my_turn(const struct noise_hs *hs)
{
    if (hs == NULL || hs->dead || hs->step >= XX_MESSAGES)
        return 0;
    /* Even-numbered messages (0, 2) are the initiator's. */
    return (hs->step % 2 == 0) == (hs->initiator == 1);
}

int
noise_hs_remote_static(const struct noise_hs *hs, uint8_t pk[32])
{
    if (hs == NULL || pk == NULL)
        return SIMSYNC_EINVAL;
    if (!hs->has_rs || hs->dead)
        return SIMSYNC_ESTATE;
    memcpy(pk, hs->rs, NOISE_DHLEN);
    return SIMSYNC_OK;
}

int
noise_hs_hash(const struct noise_hs *hs, uint8_t h[NOISE_HASHLEN])
{
    if (hs == NULL || h == NULL)
        return SIMSYNC_EINVAL;
    if (!noise_hs_is_done(hs))
        return SIMSYNC_ESTATE;
    memcpy(h, hs->ss.h, NOISE_HASHLEN);
    return SIMSYNC_OK;
}

/* Bytes the current message adds around its payload (keys, tags). */
static size_t
message_overhead(const struct noise_hs *hs)
{
    const unsigned char *tok = xx_pattern[hs->step];
    int keyed = hs->ss.cs.has_k;
    size_t n = 0;

    for (int i = 0; i < MAX_TOKENS && tok[i] != TOK_END; i++) {
        switch (tok[i]) {
        case TOK_E:
            n += NOISE_DHLEN;
            break;
        case TOK_S:
            n += NOISE_DHLEN + (keyed ? NOISE_TAGLEN : 0);
            break;
        default: /* every DH token ends in MixKey */
            keyed = 1;
            break;
        }
    }
    return n + (keyed ? NOISE_TAGLEN : 0);
}

/* The DH of a ee/es/se/ss token, mixed into the key. es is DH(e, rs) for
 * the initiator and DH(s, re) for the responder; se the other way round. */
static int
mix_dh(struct noise_hs *hs, int token)
{
    const uint8_t *sk, *pk;
    uint8_t shared[NOISE_DHLEN];
    int rc;

    switch (token) {
    case TOK_EE:
        sk = hs->e_sk;
        pk = hs->re;
        rc = hs->has_e && hs->has_re ? SIMSYNC_OK : SIMSYNC_ESTATE;
        break;
    case TOK_ES:
        sk = hs->initiator ? hs->e_sk : hs->s_sk;
        pk = hs->initiator ? hs->rs : hs->re;
        rc = (hs->initiator ? hs->has_e && hs->has_rs : hs->has_re)
                 ? SIMSYNC_OK
                 : SIMSYNC_ESTATE;
        break;
    case TOK_SE:
        sk = hs->initiator ? hs->s_sk : hs->e_sk;
        pk = hs->initiator ? hs->re : hs->rs;
        rc = (hs->initiator ? hs->has_re : hs->has_e && hs->has_rs)
                 ? SIMSYNC_OK
                 : SIMSYNC_ESTATE;
        break;
    case TOK_SS:
        sk = hs->s_sk;
        pk = hs->rs;
        rc = hs->has_rs ? SIMSYNC_OK : SIMSYNC_ESTATE;
        break;
    default:
        return SIMSYNC_EINVAL;
    }
    if (rc != SIMSYNC_OK)
        return rc;
    /* crypt_x25519 refuses an all-zero result (low-order peer key). */
    rc = crypt_x25519(shared, sk, pk);
    if (rc == SIMSYNC_OK)
        rc = mix_key(&hs->ss, shared, NOISE_DHLEN);
    else
        rc = SIMSYNC_ECRYPTO;
    crypt_wipe(shared, sizeof(shared));
    return rc;
}

static int
make_ephemeral(struct noise_hs *hs)
{
    if (hs->has_e)
        return SIMSYNC_OK;
    crypt_random(hs->e_sk, NOISE_DHLEN);
    hs->has_e = 1;
    return crypt_x25519_base(hs->e_pk, hs->e_sk);
}

int
noise_hs_write_message(struct noise_hs *hs, const uint8_t *payload,
                       size_t payload_len, uint8_t *out, size_t cap,
                       size_t *out_len)
{
    static const uint8_t empty[1];
    const unsigned char *tok;
    size_t need, pos = 0;
    int rc = SIMSYNC_OK;

    if (out_len != NULL)
        *out_len = 0;
    if (hs == NULL || out == NULL || out_len == NULL ||
        (payload == NULL && payload_len > 0))
        return SIMSYNC_EINVAL;
    if (!noise_hs_my_turn(hs))
        return SIMSYNC_ESTATE;
    if (payload == NULL)
        payload = empty;
    if (payload_len > NOISE_MAX_MSG)
        return SIMSYNC_ETOOBIG;
    need = message_overhead(hs) + payload_len;
    if (need > NOISE_MAX_MSG || need > cap)
        return SIMSYNC_ETOOBIG;

    tok = xx_pattern[hs->step];
    for (int i = 0; rc == SIMSYNC_OK && i < MAX_TOKENS && tok[i] != TOK_END;
         i++) {
        switch (tok[i]) {
        case TOK_E:
            rc = make_ephemeral(hs);
            if (rc != SIMSYNC_OK)
                break;
            hs->e_sent = 1;
            memcpy(out + pos, hs->e_pk, NOISE_DHLEN);
            pos += NOISE_DHLEN;
            rc = mix_hash(&hs->ss, hs->e_pk, NOISE_DHLEN);
            break;
        case TOK_S: {
            size_t n = NOISE_DHLEN + (hs->ss.cs.has_k ? NOISE_TAGLEN : 0);
            rc = encrypt_and_hash(&hs->ss, hs->s_pk, NOISE_DHLEN, out + pos);
            pos += n;
            break;
        }
        default:
            rc = mix_dh(hs, tok[i]);
            break;
        }
    }
    if (rc == SIMSYNC_OK) {
        rc = encrypt_and_hash(&hs->ss, payload, payload_len, out + pos);
        pos += payload_len + (hs->ss.cs.has_k ? NOISE_TAGLEN : 0);
    }
    if (rc != SIMSYNC_OK) {
        hs->dead = 1;
        crypt_wipe(out, need);
        return rc;
    }
    hs->step++;
    *out_len = pos;
    return SIMSYNC_OK;
}

int
noise_hs_read_message(struct noise_hs *hs, const uint8_t *msg, size_t len,
                      uint8_t *payload, size_t cap, size_t *payload_len)
{
    uint8_t empty[1];
    const unsigned char *tok;
    size_t overhead, plain, pos = 0;
    int rc = SIMSYNC_OK;

    if (payload_len != NULL)
        *payload_len = 0;
    if (hs == NULL || payload_len == NULL || (msg == NULL && len > 0) ||
        (payload == NULL && cap > 0))
        return SIMSYNC_EINVAL;
    if (hs->dead || hs->step >= XX_MESSAGES || noise_hs_my_turn(hs))
        return SIMSYNC_ESTATE;
    if (payload == NULL)
        payload = empty; /* cap is 0: only an empty payload fits */
    if (len > NOISE_MAX_MSG)
        return SIMSYNC_ETOOBIG;
    overhead = message_overhead(hs);
    if (len < overhead) {
        hs->dead = 1;
        return SIMSYNC_EPROTO;
    }
    plain = len - overhead;
    if (plain > cap)
        return SIMSYNC_ETOOBIG;

    tok = xx_pattern[hs->step];
    for (int i = 0; rc == SIMSYNC_OK && i < MAX_TOKENS && tok[i] != TOK_END;
         i++) {
        switch (tok[i]) {
        case TOK_E:
            memcpy(hs->re, msg + pos, NOISE_DHLEN);
            hs->has_re = 1;
            pos += NOISE_DHLEN;
            rc = mix_hash(&hs->ss, hs->re, NOISE_DHLEN);
            break;
        case TOK_S: {
            size_t n = NOISE_DHLEN + (hs->ss.cs.has_k ? NOISE_TAGLEN : 0);
            rc = decrypt_and_hash(&hs->ss, msg + pos, n, hs->rs);
            if (rc == SIMSYNC_OK)
                hs->has_rs = 1;
            pos += n;
            break;
        }
        default:
            rc = mix_dh(hs, tok[i]);
            break;
        }
    }
    if (rc == SIMSYNC_OK)
        rc = decrypt_and_hash(&hs->ss, msg + pos, len - pos, payload);
    if (rc != SIMSYNC_OK) {
        hs->dead = 1;
        if (cap > 0)
            crypt_wipe(payload, plain);
        return rc;
    }
    hs->step++;
    *payload_len = plain;
    return SIMSYNC_OK;
}

int
noise_hs_split(struct noise_hs *hs, struct noise_cipher **send,
               struct noise_cipher **recv)
{
    uint8_t k1[NOISE_HASHLEN], k2[NOISE_HASHLEN];
    struct noise_cipher *c1, *c2;
    int rc;

    if (send != NULL)
        *send = NULL;
    if (recv != NULL)
        *recv = NULL;
    if (hs == NULL || send == NULL || recv == NULL)
        return SIMSYNC_EINVAL;
    if (!noise_hs_is_done(hs))
        return SIMSYNC_ESTATE;
    c1 = calloc(1, sizeof(*c1));
    c2 = calloc(1, sizeof(*c2));
    if (c1 == NULL || c2 == NULL) {
        free(c1);
        free(c2);
        return SIMSYNC_ENOMEM;
    }
    rc = hkdf(hs->ss.ck, NULL, 0, k1, k2, NULL);
    if (rc == SIMSYNC_OK) {
        /* c1 carries initiator -> responder, c2 the other way. */
        cipher_init_key(c1, k1);
        cipher_init_key(c2, k2);
    }
    crypt_wipe(k1, sizeof(k1));
    crypt_wipe(k2, sizeof(k2));
    if (rc != SIMSYNC_OK) {
        noise_cipher_free(c1);
        noise_cipher_free(c2);
        return rc;
    }
    /* The ephemeral keys have done their work. */
    crypt_wipe(hs->e_sk, sizeof(hs->e_sk));
    *send = hs->initiator ? c1 : c2;
    *recv = hs->initiator ? c2 : c1;
    return SIMSYNC_OK;
}
