/* test_kiosk.c -- the pure pieces of the shop kiosk: the credential text
 * (round trip, every malformed form refused) and the signed registration
 * (it verifies with the kiosk's key for its hub only, and changing any
 * field, or the key, breaks it; the fields cannot be shifted into each
 * other). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "crypt.h"
#include "kiosk.h"
#include "node.h"

static void
fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 13);
}

/* A credential for kiosk "shop-1" of a hub whose key is made from seed 9. */
static void
make_cred(struct kiosk_cred *c)
{
    uint8_t hub_pk[32];

    memset(c, 0, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "shop-1");
    fill(hub_pk, sizeof(hub_pk), 9);
    node_id_of(hub_pk, c->hub_id);
    fill(c->seed, sizeof(c->seed), 3);
}

static void
credential_round_trips(void **state)
{
    struct kiosk_cred c, back;
    char text[SIMSYNC_KIOSK_CRED_MAX], padded[SIMSYNC_KIOSK_CRED_MAX + 8];

    (void)state;
    assert_int_equal(crypt_init(), SIMSYNC_OK);
    make_cred(&c);
    assert_int_equal(kiosk_cred_format(&c, text, sizeof(text)), SIMSYNC_OK);
    assert_true(strncmp(text, "simsync-kiosk1:shop-1:", 22) == 0);
    assert_int_equal(kiosk_cred_parse(text, &back), SIMSYNC_OK);
    assert_memory_equal(&c, &back, sizeof(c));
    /* As read from a file: blanks around, a newline after. */
    snprintf(padded, sizeof(padded), "  %s \r\n", text);
    assert_int_equal(kiosk_cred_parse(padded, &back), SIMSYNC_OK);
    assert_memory_equal(&c, &back, sizeof(c));
    /* Too small a buffer is an error, not a truncated credential. */
    assert_int_equal(kiosk_cred_format(&c, text, 40), SIMSYNC_EINVAL);
}

static void
malformed_credentials_are_refused(void **state)
{
    struct kiosk_cred c, back;
    char good[SIMSYNC_KIOSK_CRED_MAX], bad[SIMSYNC_KIOSK_CRED_MAX + 8];
    const char *name_at, *seed_at;

    (void)state;
    make_cred(&c);
    assert_int_equal(kiosk_cred_format(&c, good, sizeof(good)), SIMSYNC_OK);
    name_at = good + strlen("simsync-kiosk1:");
    seed_at = strrchr(good, ':') + 1;

    assert_int_equal(kiosk_cred_parse(NULL, &back), SIMSYNC_EINVAL);
    assert_int_equal(kiosk_cred_parse("", &back), SIMSYNC_EINVAL);
    /* Another prefix (a future version, or a typo). */
    snprintf(bad, sizeof(bad), "simsync-kiosk2:%s", name_at);
    assert_int_equal(kiosk_cred_parse(bad, &back), SIMSYNC_EINVAL);
    /* A seed one digit short, one digit long, or not hex. */
    snprintf(bad, sizeof(bad), "%.*s", (int)strlen(good) - 1, good);
    assert_int_equal(kiosk_cred_parse(bad, &back), SIMSYNC_EINVAL);
    snprintf(bad, sizeof(bad), "%s0", good);
    assert_int_equal(kiosk_cred_parse(bad, &back), SIMSYNC_EINVAL);
    snprintf(bad, sizeof(bad), "%.*sg", (int)strlen(good) - 1, good);
    assert_int_equal(kiosk_cred_parse(bad, &back), SIMSYNC_EINVAL);
    /* A name with a blank, an empty name. */
    snprintf(bad, sizeof(bad), "simsync-kiosk1:sh op:%s", name_at + 7);
    assert_int_equal(kiosk_cred_parse(bad, &back), SIMSYNC_EINVAL);
    snprintf(bad, sizeof(bad), "simsync-kiosk1::%s", name_at + 7);
    assert_int_equal(kiosk_cred_parse(bad, &back), SIMSYNC_EINVAL);
    /* A hub ID in lower case, or cut short. */
    snprintf(bad, sizeof(bad), "%s", good);
    bad[strlen("simsync-kiosk1:shop-1:")] = 'a';
    assert_int_equal(kiosk_cred_parse(bad, &back), SIMSYNC_EINVAL);
    snprintf(bad, sizeof(bad), "simsync-kiosk1:shop-1:ABCD-EFGH:%s", seed_at);
    assert_int_equal(kiosk_cred_parse(bad, &back), SIMSYNC_EINVAL);
    /* Something after the seed. */
    snprintf(bad, sizeof(bad), "%s extra", good);
    assert_int_equal(kiosk_cred_parse(bad, &back), SIMSYNC_EINVAL);
    /* A refused parse leaves no secret behind. */
    {
        struct kiosk_cred zero;
        memset(&zero, 0, sizeof(zero));
        assert_memory_equal(&back, &zero, sizeof(zero));
    }
}

static void
names_are_checked(void **state)
{
    (void)state;
    assert_true(kiosk_name_valid("shop-1"));
    assert_true(kiosk_name_valid("Mall_2.floor-3"));
    assert_true(kiosk_name_valid("12345678901234567890123456789012"));
    assert_false(kiosk_name_valid("123456789012345678901234567890123"));
    assert_false(kiosk_name_valid(""));
    assert_false(kiosk_name_valid(NULL));
    assert_false(kiosk_name_valid("shop 1"));
    assert_false(kiosk_name_valid("shop:1"));
    assert_false(kiosk_name_valid("shop/1"));
}

/* A signed request of kiosk c for hub `hub_id`. */
struct signed_req {
    Simsync__KioskRegister req;
    char kiosk[KIOSK_NAME_MAX + 1], sub[16], tid[64];
    uint8_t node_pk[32], nonce[KIOSK_NONCE_BYTES], sig[64];
};

static void
make_req(struct signed_req *s, const struct kiosk_cred *c)
{
    simsync__kiosk_register__init(&s->req);
    snprintf(s->kiosk, sizeof(s->kiosk), "%s", c->name);
    snprintf(s->sub, sizeof(s->sub), "440101234567890");
    snprintf(s->tid, sizeof(s->tid), "356938035643809");
    fill(s->node_pk, sizeof(s->node_pk), 77);
    fill(s->nonce, sizeof(s->nonce), 5);
    s->req.proto = 1;
    s->req.kiosk = s->kiosk;
    s->req.subscriber = s->sub;
    s->req.terminal_id = s->tid;
    s->req.node_pk.data = s->node_pk;
    s->req.node_pk.len = 32;
    s->req.time_ms = 1700000000000ull;
    s->req.nonce.data = s->nonce;
    s->req.nonce.len = sizeof(s->nonce);
    s->req.signature.data = s->sig;
    s->req.signature.len = sizeof(s->sig);
    assert_int_equal(kiosk_request_sign(c, c->hub_id, &s->req), SIMSYNC_OK);
}

static void
signature_covers_every_field(void **state)
{
    struct kiosk_cred c, other;
    struct signed_req s;
    uint8_t pk[32], sk[64], opk[32];
    char other_hub[KIOSK_HUB_ID_MAX];

    (void)state;
    make_cred(&c);
    assert_int_equal(crypt_sign_seed_keypair(pk, sk, c.seed), SIMSYNC_OK);
    make_req(&s, &c);
    assert_int_equal(kiosk_request_verify(&s.req, c.hub_id, pk), SIMSYNC_OK);

    /* Another hub: the request was not meant for it. */
    fill(opk, sizeof(opk), 10);
    node_id_of(opk, other_hub);
    assert_int_equal(kiosk_request_verify(&s.req, other_hub, pk),
                     SIMSYNC_ECRYPTO);
    /* Another key (a forged credential under the same name). */
    other = c;
    other.seed[31] ^= 1;
    assert_int_equal(crypt_sign_seed_keypair(opk, sk, other.seed), SIMSYNC_OK);
    assert_int_equal(kiosk_request_verify(&s.req, c.hub_id, opk),
                     SIMSYNC_ECRYPTO);

#define BROKEN_BY(change, undo)                                                \
    do {                                                                       \
        change;                                                                \
        assert_int_equal(kiosk_request_verify(&s.req, c.hub_id, pk),           \
                         SIMSYNC_ECRYPTO);                                     \
        undo;                                                                  \
        assert_int_equal(kiosk_request_verify(&s.req, c.hub_id, pk),           \
                         SIMSYNC_OK);                                          \
    } while (0)
    BROKEN_BY(s.kiosk[0] = 'S', s.kiosk[0] = 's');
    BROKEN_BY(s.sub[14] = '1', s.sub[14] = '0');
    BROKEN_BY(s.tid[0] = '4', s.tid[0] = '3');
    BROKEN_BY(s.node_pk[31] ^= 0x80, s.node_pk[31] ^= 0x80);
    BROKEN_BY(s.req.time_ms++, s.req.time_ms--);
    BROKEN_BY(s.nonce[0] ^= 1, s.nonce[0] ^= 1);
    BROKEN_BY(s.sig[10] ^= 4, s.sig[10] ^= 4);
#undef BROKEN_BY
    /* Malformed fields fail closed. */
    s.req.nonce.len = 15;
    assert_int_equal(kiosk_request_verify(&s.req, c.hub_id, pk),
                     SIMSYNC_ECRYPTO);
    s.req.nonce.len = 16;
    s.req.signature.len = 63;
    assert_int_equal(kiosk_request_verify(&s.req, c.hub_id, pk),
                     SIMSYNC_ECRYPTO);
    crypt_wipe(sk, sizeof(sk));
}

static void
fields_cannot_shift_into_each_other(void **state)
{
    uint8_t pk[32], nonce[KIOSK_NONCE_BYTES], a[KIOSK_SIGNED_MAX],
        b[KIOSK_SIGNED_MAX];
    size_t la, lb;

    (void)state;
    fill(pk, sizeof(pk), 1);
    fill(nonce, sizeof(nonce), 2);
    /* "shop" + "12345" vs "shop1" + "2345": same concatenation. */
    la = kiosk_signed_bytes("HUB", "shop", "12345", "t", pk, 1, nonce, a,
                            sizeof(a));
    lb = kiosk_signed_bytes("HUB", "shop1", "2345", "t", pk, 1, nonce, b,
                            sizeof(b));
    assert_true(la > 0 && lb > 0);
    assert_int_equal(la, lb);
    assert_memory_not_equal(a, b, la);
    /* A field too long for the buffer is refused, not cut. */
    assert_int_equal(
        kiosk_signed_bytes("HUB", "shop", "12345", "t", pk, 1, nonce, a, 60),
        0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(credential_round_trips),
        cmocka_unit_test(malformed_credentials_are_refused),
        cmocka_unit_test(names_are_checked),
        cmocka_unit_test(signature_covers_every_field),
        cmocka_unit_test(fields_cannot_shift_into_each_other),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
