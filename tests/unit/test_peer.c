/* test_peer.c -- pairing of trusted peers: the pure pieces (pairing key,
 * proof, commitment, code) and the whole exchange between two real nodes
 * over an in-memory link: nodes of one subscriber pin each other with the
 * same code; a node of another subscriber, or a code a user does not
 * confirm, pins nothing on either side. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "crypt.h"
#include "peer.h"
#include "transport.h"

/* ------------------------------------------------------------ pure */

static void
fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 7);
}

static void
pair_keys(uint8_t a[PEER_KEY_BYTES], uint8_t b[PEER_KEY_BYTES])
{
    uint8_t dk[32];
    struct datakeys k;

    fill(dk, sizeof(dk), 1);
    assert_int_equal(keys_derive(dk, &k), SIMSYNC_OK);
    peer_pair_key(&k, a);
    fill(dk, sizeof(dk), 2);
    assert_int_equal(keys_derive(dk, &k), SIMSYNC_OK);
    peer_pair_key(&k, b);
    keys_wipe(&k);
}

static void
code_is_six_digits_and_depends_on_every_input(void **state)
{
    uint8_t h[64], ni[32], nr[32];
    char c1[7], c2[7];

    (void)state;
    fill(h, sizeof(h), 3);
    fill(ni, sizeof(ni), 4);
    fill(nr, sizeof(nr), 5);
    peer_pair_code(h, ni, nr, c1);
    assert_int_equal(strlen(c1), 6);
    assert_int_equal(strspn(c1, "0123456789"), 6);
    peer_pair_code(h, ni, nr, c2);
    assert_string_equal(c1, c2); /* both ends compute the same */
    h[63] ^= 1;
    peer_pair_code(h, ni, nr, c2);
    assert_string_not_equal(c1, c2);
    h[63] ^= 1;
    ni[0] ^= 1;
    peer_pair_code(h, ni, nr, c2);
    assert_string_not_equal(c1, c2);
    ni[0] ^= 1;
    nr[31] ^= 0x80;
    peer_pair_code(h, ni, nr, c2);
    assert_string_not_equal(c1, c2);
    /* The nonces are not interchangeable. */
    nr[31] ^= 0x80;
    peer_pair_code(h, nr, ni, c2);
    assert_string_not_equal(c1, c2);
}

static void
proof_checks_only_under_the_same_data_key(void **state)
{
    uint8_t ka[PEER_KEY_BYTES], kb[PEER_KEY_BYTES], h[64], pk[32];
    uint8_t proof[PEER_PROOF_BYTES];

    (void)state;
    pair_keys(ka, kb);
    assert_memory_not_equal(ka, kb, PEER_KEY_BYTES);
    fill(h, sizeof(h), 9);
    fill(pk, sizeof(pk), 10);
    assert_int_equal(
        peer_pair_proof(ka, PEER_SIDE_INITIATOR, h, pk, "imei-T", proof),
        SIMSYNC_OK);
    assert_int_equal(peer_pair_check(ka, PEER_SIDE_INITIATOR, h, pk, "imei-T",
                                     proof, sizeof(proof)),
                     SIMSYNC_OK);
    assert_int_equal(peer_pair_check(kb, PEER_SIDE_INITIATOR, h, pk, "imei-T",
                                     proof, sizeof(proof)),
                     SIMSYNC_EREFUSED);
}

static void
proof_is_bound_to_side_connection_key_and_terminal(void **state)
{
    uint8_t ka[PEER_KEY_BYTES], kb[PEER_KEY_BYTES], h[64], pk[32];
    uint8_t proof[PEER_PROOF_BYTES];
    char longid[300];

    (void)state;
    pair_keys(ka, kb);
    fill(h, sizeof(h), 11);
    fill(pk, sizeof(pk), 12);
    assert_int_equal(
        peer_pair_proof(ka, PEER_SIDE_RESPONDER, h, pk, "desk-1", proof),
        SIMSYNC_OK);
    /* Reflected back as the other side's proof. */
    assert_int_equal(peer_pair_check(ka, PEER_SIDE_INITIATOR, h, pk, "desk-1",
                                     proof, sizeof(proof)),
                     SIMSYNC_EREFUSED);
    /* Replayed on another connection. */
    h[0] ^= 1;
    assert_int_equal(peer_pair_check(ka, PEER_SIDE_RESPONDER, h, pk, "desk-1",
                                     proof, sizeof(proof)),
                     SIMSYNC_EREFUSED);
    h[0] ^= 1;
    /* Presented by another node key or under another terminal ID. */
    pk[5] ^= 1;
    assert_int_equal(peer_pair_check(ka, PEER_SIDE_RESPONDER, h, pk, "desk-1",
                                     proof, sizeof(proof)),
                     SIMSYNC_EREFUSED);
    pk[5] ^= 1;
    assert_int_equal(peer_pair_check(ka, PEER_SIDE_RESPONDER, h, pk, "desk-2",
                                     proof, sizeof(proof)),
                     SIMSYNC_EREFUSED);
    /* Truncated, or flipped in one bit. */
    assert_int_equal(peer_pair_check(ka, PEER_SIDE_RESPONDER, h, pk, "desk-1",
                                     proof, sizeof(proof) - 1),
                     SIMSYNC_EREFUSED);
    proof[31] ^= 1;
    assert_int_equal(peer_pair_check(ka, PEER_SIDE_RESPONDER, h, pk, "desk-1",
                                     proof, sizeof(proof)),
                     SIMSYNC_EREFUSED);
    proof[31] ^= 1;
    assert_int_equal(peer_pair_check(ka, PEER_SIDE_RESPONDER, h, pk, "desk-1",
                                     proof, sizeof(proof)),
                     SIMSYNC_OK);
    memset(longid, 'x', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    assert_int_equal(
        peer_pair_proof(ka, PEER_SIDE_RESPONDER, h, pk, longid, proof),
        SIMSYNC_EINVAL);
}

static void
commitment_binds_the_nonce_and_the_connection(void **state)
{
    uint8_t h[64], n[32], c1[32], c2[32];

    (void)state;
    fill(h, sizeof(h), 13);
    fill(n, sizeof(n), 14);
    peer_pair_commit(h, n, c1);
    peer_pair_commit(h, n, c2);
    assert_memory_equal(c1, c2, 32);
    n[7] ^= 1;
    peer_pair_commit(h, n, c2);
    assert_memory_not_equal(c1, c2, 32);
    n[7] ^= 1;
    h[40] ^= 1;
    peer_pair_commit(h, n, c2);
    assert_memory_not_equal(c1, c2, 32);
}

/* ------------------------------------------------------------ exchange */

struct side {
    struct simsync_node *n;
    struct conn *c;
    int initiator;
    int answer; /* what this side's user says */
    int asked;
    char code[8];
    struct simsync_peer got;
    int rc;
};

static int
confirm(void *arg, const char *code, const struct simsync_peer *p)
{
    struct side *s = arg;

    (void)p;
    s->asked = 1;
    snprintf(s->code, sizeof(s->code), "%s", code);
    return s->answer;
}

static void *
run_side(void *arg)
{
    struct side *s = arg;
    struct simsync_pair_opts o;

    memset(&o, 0, sizeof(o));
    o.confirm = confirm;
    o.arg = s;
    o.timeout_s = 10;
    o.peer = s->initiator ? "mem" : NULL;
    o.listen = s->initiator ? NULL : "mem";
    s->rc = peer_pair_conn(s->n, s->c, s->initiator,
                           s->initiator ? "mem" : NULL, &o, &s->got);
    return NULL;
}

static void
write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* A registered trusted node without a hub: its data key sealed to its
 * node key and a binding, as registration leaves them. */
static struct simsync_node *
make_node(const char *dir, const char *name, uint8_t datakey_seed,
          const char *subscriber)
{
    char home[512], path[600], text[512];
    uint8_t dk[32], xpk[32], box[32 + CRYPT_BOX_OVERHEAD];
    struct simsync_node *n;

    snprintf(home, sizeof(home), "%s/%s", dir, name);
    assert_int_equal(simsync_init(home, "terminal", name, NULL), SIMSYNC_OK);
    assert_int_equal(simsync_node_open(home, &n), SIMSYNC_OK);
    fill(dk, sizeof(dk), datakey_seed);
    crypt_sign_pk_to_x25519(xpk, n->ident.sign_pk);
    assert_int_equal(crypt_box_seal(box, dk, sizeof(dk), xpk), SIMSYNC_OK);
    simsync_node_close(n);
    snprintf(path, sizeof(path), "%s/datakey.box", home);
    write_file(path, box, sizeof(box));
    snprintf(text, sizeof(text),
             "hub=127.0.0.1:1\nhub_key=%064d\nsubscriber=%s\n"
             "classes=contacts\n",
             0, subscriber);
    snprintf(path, sizeof(path), "%s/binding", home);
    write_file(path, text, strlen(text));
    assert_int_equal(simsync_node_open(home, &n), SIMSYNC_OK);
    return n;
}

static size_t
npeers(struct simsync_node *n)
{
    struct simsync_peer *list = NULL;
    size_t count = 0;

    assert_int_equal(simsync_peers(n, &list, &count), SIMSYNC_OK);
    free(list);
    return count;
}

static void
run_pairing(struct side *a, struct side *b)
{
    pthread_t t;

    assert_int_equal(transport_mem_pair(&a->c, &b->c), SIMSYNC_OK);
    a->initiator = 1;
    b->initiator = 0;
    assert_int_equal(pthread_create(&t, NULL, run_side, a), 0);
    run_side(b);
    assert_int_equal(pthread_join(t, NULL), 0);
    conn_close(a->c);
    conn_close(b->c);
}

struct world {
    char dir[64];
    struct side a, b;
};

static void
world_open(struct world *w, uint8_t seed_b, const char *sub_b)
{
    memset(w, 0, sizeof(*w));
    snprintf(w->dir, sizeof(w->dir), "/tmp/simsync-peer-XXXXXX");
    assert_non_null(mkdtemp(w->dir));
    w->a.n = make_node(w->dir, "imei-T", 1, "440101234567890");
    w->b.n = make_node(w->dir, "desk-1", seed_b, sub_b);
    w->a.answer = w->b.answer = 1;
}

static void
world_close(struct world *w)
{
    char cmd[128];

    simsync_node_close(w->a.n);
    simsync_node_close(w->b.n);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", w->dir);
    assert_int_equal(system(cmd), 0);
}

static void
same_subscriber_nodes_pin_each_other_with_one_code(void **state)
{
    struct world w;
    Simsync__PeerRecord *rec = NULL;
    uint8_t sub[SUB_BYTES];

    (void)state;
    world_open(&w, 1, "440101234567890");
    run_pairing(&w.a, &w.b);
    assert_int_equal(w.a.rc, SIMSYNC_OK);
    assert_int_equal(w.b.rc, SIMSYNC_OK);
    assert_true(w.a.asked && w.b.asked);
    assert_string_equal(w.a.code, w.b.code);
    assert_string_equal(w.a.got.terminal_id, "desk-1");
    assert_string_equal(w.b.got.terminal_id, "imei-T");
    assert_string_equal(w.a.got.addr, "mem"); /* where it was reached */
    assert_string_equal(w.b.got.addr, "");
    /* Each pinned exactly the other's node key. */
    node_sub_key(w.a.n, sub);
    assert_int_equal(
        peer_find(w.a.n->st, sub, NULL, w.b.n->ident.sign_pk, &rec),
        SIMSYNC_OK);
    assert_string_equal(rec->terminal_id, "desk-1");
    simsync__peer_record__free_unpacked(rec, NULL);
    node_sub_key(w.b.n, sub);
    assert_int_equal(peer_find(w.b.n->st, sub, "imei-T", NULL, &rec),
                     SIMSYNC_OK);
    assert_memory_equal(rec->node_pk.data, w.a.n->ident.sign_pk, 32);
    simsync__peer_record__free_unpacked(rec, NULL);
    /* Pairing again replaces the record rather than adding one. */
    run_pairing(&w.a, &w.b);
    assert_int_equal(w.a.rc, SIMSYNC_OK);
    assert_int_equal(w.b.rc, SIMSYNC_OK);
    assert_int_equal(npeers(w.a.n), 1);
    assert_int_equal(npeers(w.b.n), 1);
    assert_int_equal(simsync_unpair(w.b.n, "imei-T"), SIMSYNC_OK);
    assert_int_equal(npeers(w.b.n), 0);
    assert_int_equal(simsync_unpair(w.b.n, "imei-T"), SIMSYNC_ENOTFOUND);
    world_close(&w);
}

static void
node_of_another_subscriber_is_refused_and_nothing_pinned(void **state)
{
    struct world w;

    (void)state;
    world_open(&w, 2, "440109999999999");
    run_pairing(&w.a, &w.b);
    assert_int_equal(w.a.rc, SIMSYNC_EREFUSED);
    assert_int_equal(w.b.rc, SIMSYNC_EREFUSED);
    assert_false(w.a.asked || w.b.asked); /* no code was ever shown */
    assert_int_equal(npeers(w.a.n), 0);
    assert_int_equal(npeers(w.b.n), 0);
    world_close(&w);
}

static void
unconfirmed_code_pins_nothing_on_either_side(void **state)
{
    struct world w;

    (void)state;
    for (int who = 0; who < 2; who++) {
        world_open(&w, 1, "440101234567890");
        if (who == 0)
            w.a.answer = 0;
        else
            w.b.answer = 0;
        run_pairing(&w.a, &w.b);
        assert_int_equal(w.a.rc, SIMSYNC_EREFUSED);
        assert_int_equal(w.b.rc, SIMSYNC_EREFUSED);
        assert_int_equal(npeers(w.a.n), 0);
        assert_int_equal(npeers(w.b.n), 0);
        world_close(&w);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(code_is_six_digits_and_depends_on_every_input),
        cmocka_unit_test(proof_checks_only_under_the_same_data_key),
        cmocka_unit_test(proof_is_bound_to_side_connection_key_and_terminal),
        cmocka_unit_test(commitment_binds_the_nonce_and_the_connection),
        cmocka_unit_test(same_subscriber_nodes_pin_each_other_with_one_code),
        cmocka_unit_test(
            node_of_another_subscriber_is_refused_and_nothing_pinned),
        cmocka_unit_test(unconfirmed_code_pins_nothing_on_either_side),
    };
    if (crypt_init() != SIMSYNC_OK)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
