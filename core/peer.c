/* peer.c -- pairing two trusted nodes of one subscriber, the list of
 * paired peers, and the connecting side of a sync with one. See peer.h
 * for the pairing exchange and docs/peers.md for the design. The serving
 * side is peer_serve.c. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypt.h"
#include "hub_sched.h"
#include "link.h"
#include "pbcheck.h"
#include "peer.h"
#include "transport.h"

#define PAIR_TIMEOUT_S 300         /* default wait for the other node / user */
#define PAIR_HANDSHAKE_MS 30000    /* a pairing handshake, once connected */
#define PEER_LINK_TIMEOUT_MS 60000 /* as a sync with the hub */

/* ------------------------------------------------------------ pure */

void
peer_pair_key(const struct datakeys *k, uint8_t out[PEER_KEY_BYTES])
{
    crypt_hash(out, PEER_KEY_BYTES, "simsync-pair-key", 16, k->verifier,
               sizeof(k->verifier));
}

int
peer_pair_proof(const uint8_t key[PEER_KEY_BYTES], enum peer_side side,
                const uint8_t h[PEER_HASH_BYTES], const uint8_t node_pk[32],
                const char *terminal_id, uint8_t out[PEER_PROOF_BYTES])
{
    struct crypt_hash_state st;
    size_t tl = terminal_id != NULL ? strlen(terminal_id) : 0;
    uint8_t b;

    memset(out, 0, PEER_PROOF_BYTES);
    if (tl > 255)
        return SIMSYNC_EINVAL;
    crypt_hash_init(&st, PEER_PROOF_BYTES, key, PEER_KEY_BYTES);
    crypt_hash_update(&st, "simsync-pair-proof", 18);
    b = (uint8_t)side;
    crypt_hash_update(&st, &b, 1);
    crypt_hash_update(&st, h, PEER_HASH_BYTES);
    crypt_hash_update(&st, node_pk, 32);
    b = (uint8_t)tl;
    crypt_hash_update(&st, &b, 1);
    crypt_hash_update(&st, terminal_id != NULL ? terminal_id : "", tl);
    crypt_hash_final(&st, out, PEER_PROOF_BYTES);
    return SIMSYNC_OK;
}

int
peer_pair_check(const uint8_t key[PEER_KEY_BYTES], enum peer_side side,
                const uint8_t h[PEER_HASH_BYTES], const uint8_t node_pk[32],
                const char *terminal_id, const uint8_t *proof, size_t len)
{
    uint8_t want[PEER_PROOF_BYTES];
    int ok;

    if (proof == NULL || len != PEER_PROOF_BYTES ||
        peer_pair_proof(key, side, h, node_pk, terminal_id, want) != SIMSYNC_OK)
        return SIMSYNC_EREFUSED;
    ok = crypt_equal(want, proof, PEER_PROOF_BYTES);
    crypt_wipe(want, sizeof(want));
    return ok ? SIMSYNC_OK : SIMSYNC_EREFUSED;
}

void
peer_pair_commit(const uint8_t h[PEER_HASH_BYTES],
                 const uint8_t nonce[PEER_NONCE_BYTES], uint8_t out[32])
{
    struct crypt_hash_state st;

    crypt_hash_init(&st, 32, NULL, 0);
    crypt_hash_update(&st, "simsync-pair-commit", 19);
    crypt_hash_update(&st, h, PEER_HASH_BYTES);
    crypt_hash_update(&st, nonce, PEER_NONCE_BYTES);
    crypt_hash_final(&st, out, 32);
}

void
peer_pair_code(const uint8_t h[PEER_HASH_BYTES],
               const uint8_t n_i[PEER_NONCE_BYTES],
               const uint8_t n_r[PEER_NONCE_BYTES], char out[PEER_CODE_LEN + 1])
{
    struct crypt_hash_state st;
    uint8_t d[32];
    uint64_t v;

    crypt_hash_init(&st, 32, NULL, 0);
    crypt_hash_update(&st, "simsync-pair-code", 17);
    crypt_hash_update(&st, h, PEER_HASH_BYTES);
    crypt_hash_update(&st, n_i, PEER_NONCE_BYTES);
    crypt_hash_update(&st, n_r, PEER_NONCE_BYTES);
    crypt_hash_final(&st, d, sizeof(d));
    /* 2^64 mod 10^6 is tiny next to 2^64: the bias is below 10^-13. */
    v = store_get_be64(d) % 1000000u;
    for (int i = PEER_CODE_LEN - 1; i >= 0; i--, v /= 10)
        out[i] = (char)('0' + v % 10);
    out[PEER_CODE_LEN] = '\0';
}

/* ------------------------------------------------------------ records */

static const char *
role_name(Simsync__Role role)
{
    switch (role) {
    case SIMSYNC__ROLE__ROLE_TERMINAL:
        return "terminal";
    case SIMSYNC__ROLE__ROLE_DESKTOP:
        return "desktop";
    default:
        return "unknown";
    }
}

static Simsync__Role
own_role(const struct simsync_node *n)
{
    return strcmp(n->role, "desktop") == 0 ? SIMSYNC__ROLE__ROLE_DESKTOP
                                           : SIMSYNC__ROLE__ROLE_TERMINAL;
}

static void
record_to_peer(const Simsync__PeerRecord *rec, struct simsync_peer *p)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->terminal_id, sizeof(p->terminal_id), "%s",
             rec->terminal_id ? rec->terminal_id : "");
    if (rec->node_pk.len == 32)
        node_id_of(rec->node_pk.data, p->node_id);
    snprintf(p->role, sizeof(p->role), "%s", role_name(rec->role));
    snprintf(p->addr, sizeof(p->addr), "%s", rec->addr ? rec->addr : "");
    p->paired_ms = rec->paired_ms;
    p->last_sync_ms = rec->last_sync_ms;
}

struct find_arg {
    const char *id;
    const uint8_t *pk;
    Simsync__PeerRecord *found;
};

static int
find_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
    struct find_arg *a = arg;
    Simsync__PeerRecord *rec = simsync__peer_record__unpack(NULL, vl, v);
    int hit = 0;

    (void)k;
    (void)kl;
    if (rec == NULL || rec->node_pk.len != 32 || rec->terminal_id == NULL) {
        if (rec != NULL)
            simsync__peer_record__free_unpacked(rec, NULL);
        return SIMSYNC_OK; /* not a peer record we can use: skip it */
    }
    if (a->id != NULL) {
        char nid[NODE_ID_LEN];
        node_id_of(rec->node_pk.data, nid);
        hit = strcmp(rec->terminal_id, a->id) == 0 || strcmp(nid, a->id) == 0;
    } else if (a->pk != NULL) {
        hit = crypt_equal(rec->node_pk.data, a->pk, 32);
    }
    if (!hit) {
        simsync__peer_record__free_unpacked(rec, NULL);
        return SIMSYNC_OK;
    }
    a->found = rec;
    return SIMSYNC_EEXIST; /* stop the scan */
}

int
peer_find(struct store *st, const uint8_t sub[SUB_BYTES], const char *id,
          const uint8_t *pk, Simsync__PeerRecord **out)
{
    struct find_arg a = {id, pk, NULL};
    struct store_txn *txn;
    int rc;

    *out = NULL;
    if (id == NULL && pk == NULL)
        return SIMSYNC_EINVAL;
    rc = store_txn_begin(st, 1, &txn);
    if (rc != SIMSYNC_OK)
        return rc;
    rc =
        store_scan(txn, STORE_REGISTRY, sub, SUB_BYTES, SUB_BYTES, find_fn, &a);
    store_txn_abort(txn);
    if (rc == SIMSYNC_EEXIST && a.found != NULL) {
        *out = a.found;
        return SIMSYNC_OK;
    }
    return rc == SIMSYNC_OK ? SIMSYNC_ENOTFOUND : rc;
}

struct put_arg {
    const uint8_t *sub;
    const Simsync__PeerRecord *rec;
};

static int
put_fn(struct store_txn *txn, void *arg)
{
    struct put_arg *a = arg;
    uint8_t key[SUB_BYTES + 64], *buf;
    size_t klen = hub_tid_key(key, a->sub, a->rec->terminal_id), len;
    int rc = record_pack(&a->rec->base, &buf, &len);

    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_put(txn, STORE_REGISTRY, key, klen, buf, len);
    free(buf);
    return rc;
}

int
peer_touch(struct store *st, const uint8_t sub[SUB_BYTES], const uint8_t pk[32],
           const char *addr)
{
    Simsync__PeerRecord *rec = NULL;
    struct put_arg a = {sub, NULL};
    char *old_addr;
    int rc = peer_find(st, sub, NULL, pk, &rec);

    if (rc == SIMSYNC_ENOTFOUND)
        return SIMSYNC_OK; /* unpaired meanwhile: nothing to remember */
    if (rc != SIMSYNC_OK)
        return rc;
    old_addr = rec->addr;
    if (addr != NULL && addr[0] != '\0')
        rec->addr = (char *)addr;
    rec->last_sync_ms = node_now_ms();
    a.rec = rec;
    rc = store_write(st, put_fn, &a);
    rec->addr = old_addr;
    simsync__peer_record__free_unpacked(rec, NULL);
    return rc;
}

/* ------------------------------------------------------------ pairing */

static int
send_pair_hello(struct chan *ch, const struct simsync_node *n,
                const uint8_t proof[PEER_PROOF_BYTES], const uint8_t *commit)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__PairHello ph = SIMSYNC__PAIR_HELLO__INIT;

    ph.proto = SIMSYNC_PROTO_VERSION;
    ph.role = own_role(n);
    ph.terminal_id = (char *)n->terminal_id;
    ph.proof.data = (uint8_t *)proof;
    ph.proof.len = PEER_PROOF_BYTES;
    if (commit != NULL) {
        ph.commit.data = (uint8_t *)commit;
        ph.commit.len = 32;
    }
    env.msg_case = SIMSYNC__ENVELOPE__MSG_PAIR_HELLO;
    env.pair_hello = &ph;
    return node_send_env(ch, &env);
}

static int
send_pair_nonce(struct chan *ch, const uint8_t nonce[PEER_NONCE_BYTES])
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__PairNonce pn = SIMSYNC__PAIR_NONCE__INIT;

    pn.nonce.data = (uint8_t *)nonce;
    pn.nonce.len = PEER_NONCE_BYTES;
    env.msg_case = SIMSYNC__ENVELOPE__MSG_PAIR_NONCE;
    env.pair_nonce = &pn;
    return node_send_env(ch, &env);
}

static int
send_pair_confirm(struct chan *ch, int ok)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__PairConfirm pc = SIMSYNC__PAIR_CONFIRM__INIT;

    pc.ok = ok != 0;
    env.msg_case = SIMSYNC__ENVELOPE__MSG_PAIR_CONFIRM;
    env.pair_confirm = &pc;
    return node_send_env(ch, &env);
}

/* Everything the exchange needs to remember until the peer is pinned. */
struct pairing {
    struct simsync_node *n;
    struct chan *ch;
    int initiator;
    uint8_t h[PEER_HASH_BYTES];
    uint8_t key[PEER_KEY_BYTES]; /* pairing key: wiped at the end */
    uint8_t peer_pk[32];
    Simsync__Envelope *hello; /* the peer's PairHello (owned) */
    uint8_t n_i[PEER_NONCE_BYTES], n_r[PEER_NONCE_BYTES];
    char code[PEER_CODE_LEN + 1];
    const char *where; /* the peer, for messages */
};

/* Receive the peer's PairHello and check its proof. A node of another
 * subscriber is told so and refused here. */
static int
recv_peer_hello(struct pairing *p)
{
    struct simsync_node *n = p->n;
    Simsync__PairHello *ph;
    int rc = node_recv_kind(p->ch, SIMSYNC__ENVELOPE__MSG_PAIR_HELLO,
                            (void **)&p->hello);

    if (rc == SIMSYNC_EREFUSED)
        return node_fail(n, rc,
                         "%s refused the pairing: this node does not hold "
                         "its subscriber's key (the two nodes belong to "
                         "different subscribers); nothing was pinned",
                         p->where);
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc, "pairing with %s failed: %s", p->where,
                         simsync_strerror(rc));
    ph = p->hello->pair_hello;
    if (ph->proto != SIMSYNC_PROTO_VERSION || !hub_tid_valid(ph->terminal_id) ||
        (!p->initiator && ph->commit.len != 0) ||
        (p->initiator && ph->commit.len != 32)) {
        node_send_error(p->ch, SIMSYNC_EPROTO, "malformed pairing hello");
        return node_fail(n, SIMSYNC_EPROTO,
                         "pairing with %s failed: it sent a malformed "
                         "pairing hello (another protocol version?)",
                         p->where);
    }
    rc = peer_pair_check(
        p->key, p->initiator ? PEER_SIDE_RESPONDER : PEER_SIDE_INITIATOR, p->h,
        p->peer_pk, ph->terminal_id, ph->proof.data, ph->proof.len);
    if (rc != SIMSYNC_OK) {
        node_send_error(p->ch, SIMSYNC_EREFUSED,
                        "not a node of the same subscriber");
        return node_fail(n, SIMSYNC_EREFUSED,
                         "%s (terminal %s) does not hold this subscriber's "
                         "key: it belongs to another subscriber, so it "
                         "cannot pair with this node; nothing was pinned",
                         p->where, ph->terminal_id);
    }
    return SIMSYNC_OK;
}

/* Nonces: the responder committed to n_R in its hello; the initiator
 * reveals n_I first. */
static int
exchange_nonces(struct pairing *p)
{
    Simsync__Envelope *env = NULL;
    uint8_t commit[32];
    int rc;

    if (p->initiator) {
        crypt_random(p->n_i, sizeof(p->n_i));
        rc = send_pair_nonce(p->ch, p->n_i);
    } else {
        rc = node_recv_kind(p->ch, SIMSYNC__ENVELOPE__MSG_PAIR_NONCE,
                            (void **)&env);
        if (rc == SIMSYNC_OK && env->pair_nonce->nonce.len != PEER_NONCE_BYTES)
            rc = SIMSYNC_EPROTO;
        if (rc == SIMSYNC_OK)
            memcpy(p->n_i, env->pair_nonce->nonce.data, PEER_NONCE_BYTES);
        if (rc == SIMSYNC_OK)
            rc = send_pair_nonce(p->ch, p->n_r);
    }
    if (rc == SIMSYNC_OK && p->initiator) {
        rc = node_recv_kind(p->ch, SIMSYNC__ENVELOPE__MSG_PAIR_NONCE,
                            (void **)&env);
        if (rc == SIMSYNC_OK && env->pair_nonce->nonce.len != PEER_NONCE_BYTES)
            rc = SIMSYNC_EPROTO;
        if (rc == SIMSYNC_OK) {
            memcpy(p->n_r, env->pair_nonce->nonce.data, PEER_NONCE_BYTES);
            peer_pair_commit(p->h, p->n_r, commit);
            if (!crypt_equal(commit, p->hello->pair_hello->commit.data, 32)) {
                node_send_error(p->ch, SIMSYNC_ECRYPTO,
                                "nonce does not match its commitment");
                rc = node_fail(p->n, SIMSYNC_ECRYPTO,
                               "%s revealed a nonce that does not match "
                               "its commitment: the pairing code could "
                               "have been forced; nothing was pinned",
                               p->where);
            }
        }
    }
    if (env != NULL)
        simsync__envelope__free_unpacked(env, NULL);
    if (rc != SIMSYNC_OK && p->n->err[0] == '\0')
        node_fail(p->n, rc, "pairing with %s failed: %s", p->where,
                  simsync_strerror(rc));
    if (rc == SIMSYNC_OK)
        peer_pair_code(p->h, p->n_i, p->n_r, p->code);
    return rc;
}

struct pin_arg {
    const uint8_t *sub;
    const Simsync__PeerRecord *rec;
};

/* The terminal ID under which a key is pinned already ("" none). */
struct same_key {
    const uint8_t *pk;
    char tid[64];
};

static int
same_key_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
    struct same_key *a = arg;
    Simsync__PeerRecord *rec = simsync__peer_record__unpack(NULL, vl, v);

    (void)k;
    (void)kl;
    if (rec != NULL && rec->node_pk.len == 32 && rec->terminal_id != NULL &&
        crypt_equal(rec->node_pk.data, a->pk, 32))
        snprintf(a->tid, sizeof(a->tid), "%s", rec->terminal_id);
    if (rec != NULL)
        simsync__peer_record__free_unpacked(rec, NULL);
    return SIMSYNC_OK;
}

static int
pin_fn(struct store_txn *txn, void *arg)
{
    struct pin_arg *a = arg;
    struct put_arg pa = {a->sub, a->rec};
    struct same_key sk;
    uint8_t key[SUB_BYTES + 64];
    size_t klen;
    int rc;

    /* One record per key: a node that paired before under another
     * terminal ID (it was registered again) loses its old record. */
    memset(&sk, 0, sizeof(sk));
    sk.pk = a->rec->node_pk.data;
    rc = store_scan(txn, STORE_REGISTRY, a->sub, SUB_BYTES, SUB_BYTES,
                    same_key_fn, &sk);
    if (rc == SIMSYNC_OK && sk.tid[0] != '\0' &&
        strcmp(sk.tid, a->rec->terminal_id) != 0) {
        klen = hub_tid_key(key, a->sub, sk.tid);
        rc = store_del(txn, STORE_REGISTRY, key, klen);
    }
    if (rc != SIMSYNC_OK)
        return rc;
    return put_fn(txn, &pa);
}

/* Both users answered: tell the peer, learn its answer, pin on yes/yes. */
static int
confirm_and_pin(struct pairing *p, int ok, const char *peer_addr,
                struct simsync_peer *out)
{
    struct simsync_node *n = p->n;
    Simsync__PairHello *ph = p->hello->pair_hello;
    Simsync__PeerRecord rec = SIMSYNC__PEER_RECORD__INIT;
    Simsync__Envelope *env = NULL;
    uint8_t sub[SUB_BYTES];
    struct pin_arg a;
    int rc = send_pair_confirm(p->ch, ok);

    if (!ok)
        return node_fail(n, SIMSYNC_EREFUSED,
                         "the pairing code %s was not confirmed on this "
                         "node; nothing was pinned",
                         p->code);
    if (rc == SIMSYNC_OK)
        rc = node_recv_kind(p->ch, SIMSYNC__ENVELOPE__MSG_PAIR_CONFIRM,
                            (void **)&env);
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc,
                         "pairing with %s failed while waiting for its "
                         "user's answer: %s; nothing was pinned",
                         p->where, simsync_strerror(rc));
    ok = env->pair_confirm->ok;
    simsync__envelope__free_unpacked(env, NULL);
    if (!ok)
        return node_fail(n, SIMSYNC_EREFUSED,
                         "%s refused the pairing: its user did not confirm "
                         "the code %s; nothing was pinned",
                         p->where, p->code);
    rec.terminal_id = ph->terminal_id;
    rec.node_pk.data = p->peer_pk;
    rec.node_pk.len = 32;
    rec.role = ph->role;
    rec.addr = (char *)(peer_addr != NULL ? peer_addr : "");
    rec.paired_ms = node_now_ms();
    node_sub_key(n, sub);
    a.sub = sub;
    a.rec = &rec;
    rc = store_write(n->st, pin_fn, &a);
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc, "cannot keep the paired node: %s",
                         simsync_strerror(rc));
    if (out != NULL)
        record_to_peer(&rec, out);
    return SIMSYNC_OK;
}

int
peer_pair_conn(struct simsync_node *n, struct conn *c, int initiator,
               const char *peer_addr, const struct simsync_pair_opts *o,
               struct simsync_peer *out)
{
    struct pairing p;
    struct replica r;
    struct simsync_peer who;
    uint8_t proof[PEER_PROOF_BYTES], commit[32];
    unsigned timeout_s = o->timeout_s ? o->timeout_s : PAIR_TIMEOUT_S;
    int rc, ok;

    memset(&p, 0, sizeof(p));
    p.n = n;
    p.initiator = initiator;
    p.where = peer_addr != NULL ? peer_addr : "the other node";
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    n->err[0] = '\0';
    rc = replica_setup(n, &r); /* the data key: only its pairing key stays */
    if (rc != SIMSYNC_OK)
        return rc;
    peer_pair_key(&r.keys, p.key);
    keys_wipe(&r.keys);
    conn_set_timeout(c, PAIR_HANDSHAKE_MS);
    rc = chan_handshake(c, initiator, &n->ident, NULL, &p.ch);
    if (rc != SIMSYNC_OK) {
        crypt_wipe(p.key, sizeof(p.key));
        return node_fail(n, rc, "secure handshake with %s failed: %s", p.where,
                         simsync_strerror(rc));
    }
    /* From here the users may take their time. */
    conn_set_timeout(c, (int)(timeout_s > 3600 ? 3600000 : timeout_s * 1000));
    chan_peer_key(p.ch, p.peer_pk);
    rc = chan_handshake_hash(p.ch, p.h);
    if (rc == SIMSYNC_OK && crypt_equal(p.peer_pk, n->ident.sign_pk, 32)) {
        node_send_error(p.ch, SIMSYNC_EINVAL, "a node cannot pair with itself");
        rc = node_fail(n, SIMSYNC_EINVAL,
                       "%s is this node itself: pair two different nodes",
                       p.where);
    }
    if (rc == SIMSYNC_OK)
        rc = peer_pair_proof(
            p.key, initiator ? PEER_SIDE_INITIATOR : PEER_SIDE_RESPONDER, p.h,
            n->ident.sign_pk, n->terminal_id, proof);
    /* The initiator proves first; the responder answers only a node of
     * its own subscriber, and commits to its nonce in that answer. */
    if (rc == SIMSYNC_OK && initiator) {
        rc = send_pair_hello(p.ch, n, proof, NULL);
        if (rc == SIMSYNC_OK)
            rc = recv_peer_hello(&p);
    } else if (rc == SIMSYNC_OK) {
        rc = recv_peer_hello(&p);
        if (rc == SIMSYNC_OK) {
            crypt_random(p.n_r, sizeof(p.n_r));
            peer_pair_commit(p.h, p.n_r, commit);
            rc = send_pair_hello(p.ch, n, proof, commit);
        }
    }
    if (rc == SIMSYNC_OK)
        rc = exchange_nonces(&p);
    if (rc == SIMSYNC_OK) {
        Simsync__PeerRecord rec = SIMSYNC__PEER_RECORD__INIT;
        rec.terminal_id = p.hello->pair_hello->terminal_id;
        rec.node_pk.data = p.peer_pk;
        rec.node_pk.len = 32;
        rec.role = p.hello->pair_hello->role;
        rec.addr = (char *)(peer_addr != NULL ? peer_addr : "");
        record_to_peer(&rec, &who);
        ok = o->confirm(o->arg, p.code, &who) == 1;
        rc = confirm_and_pin(&p, ok, peer_addr, out);
    }
    if (rc != SIMSYNC_OK && n->err[0] == '\0')
        node_fail(n, rc, "pairing with %s failed: %s", p.where,
                  simsync_strerror(rc));
    crypt_wipe(p.key, sizeof(p.key));
    crypt_wipe(proof, sizeof(proof));
    if (p.hello != NULL)
        simsync__envelope__free_unpacked(p.hello, NULL);
    chan_free(p.ch);
    return rc;
}

static int
check_pairable(struct simsync_node *n)
{
    if (strcmp(n->role, "hub") == 0)
        return node_fail(n, SIMSYNC_ESTATE,
                         "a hub never holds the subscriber's key and cannot "
                         "pair; pair a terminal or a desktop");
    if (!n->bound)
        return node_fail(n, SIMSYNC_ESTATE,
                         "this node is not registered: pairing proves the "
                         "subscriber's key, which registering gives; run "
                         "'simsync register' first");
    return SIMSYNC_OK;
}

int
simsync_link_check(const char *addr, int listening, char *why, size_t why_len)
{
    struct link_addr a;

    return link_addr_parse(addr, listening ? LINK_LISTEN : LINK_CONNECT, &a,
                           why, why_len);
}

/* Wait up to timeout_ms for one connection on l. */
static int
accept_one(struct listener *l, int timeout_ms, struct conn **out)
{
    uint64_t until = node_now_ms() + (uint64_t)timeout_ms;

    *out = NULL;
    for (;;) {
        uint64_t now = node_now_ms();
        struct pollfd pfd = {listener_pollfd(l), POLLIN, 0};
        int rc;

        if (now >= until)
            return SIMSYNC_ETIMEOUT;
        /* A slice at a time: a signal or a clock step is noticed soon. */
        if (poll(&pfd, 1, until - now > 1000 ? 1000 : (int)(until - now)) <= 0)
            continue;
        rc = listener_accept(l, out);
        if (rc != SIMSYNC_EAGAIN)
            return rc;
    }
}

int
simsync_pair(struct simsync_node *n, const struct simsync_pair_opts *o,
             struct simsync_peer *out)
{
    struct listener *l = NULL;
    struct conn *c = NULL;
    char addr[128];
    unsigned timeout_s;
    int rc;

    if (out != NULL)
        memset(out, 0, sizeof(*out));
    n->err[0] = '\0';
    if (o == NULL || o->confirm == NULL ||
        (o->listen == NULL) == (o->peer == NULL))
        return node_fail(n, SIMSYNC_EINVAL,
                         "pairing needs either an address to listen on or "
                         "one to connect to, and a confirmation");
    rc = check_pairable(n);
    if (rc != SIMSYNC_OK)
        return rc;
    timeout_s = o->timeout_s ? o->timeout_s : PAIR_TIMEOUT_S;
    if (o->peer != NULL) {
        rc = link_connect(o->peer, &c);
        if (rc != SIMSYNC_OK)
            return node_fail(n, rc,
                             "cannot reach a pairing node at %s: %s (%s; "
                             "run 'simsync pair --listen ADDR' there "
                             "first)",
                             o->peer, simsync_strerror(rc),
                             link_strerror(errno));
        rc = peer_pair_conn(n, c, 1, o->peer, o, out);
        conn_close(c);
        return rc;
    }
    rc = link_listen(o->listen, &l);
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc, "cannot listen on %s: %s (%s)", o->listen,
                         simsync_strerror(rc), link_strerror(errno));
    link_listener_addr(l, addr, sizeof(addr));
    if (o->listening != NULL)
        o->listening(o->arg, addr);
    rc = accept_one(l, (int)(timeout_s > 86400 ? 86400000 : timeout_s * 1000),
                    &c);
    listener_close(l);
    if (rc == SIMSYNC_ETIMEOUT)
        return node_fail(n, rc,
                         "no node came to pair on %s within %u s; run "
                         "'simsync pair --peer %s' on the other node",
                         addr, timeout_s, addr);
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc, "cannot accept a pairing on %s: %s", addr,
                         simsync_strerror(rc));
    rc = peer_pair_conn(n, c, 0, NULL, o, out);
    conn_close(c);
    return rc;
}

/* ------------------------------------------------------------ listing */

struct list_arg {
    struct simsync_peer *v;
    size_t n, cap;
};

static int
list_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
    struct list_arg *a = arg;
    Simsync__PeerRecord *rec = simsync__peer_record__unpack(NULL, vl, v);

    (void)k;
    (void)kl;
    if (rec == NULL)
        return SIMSYNC_OK;
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 8;
        struct simsync_peer *nv = realloc(a->v, nc * sizeof(*nv));
        if (nv == NULL) {
            simsync__peer_record__free_unpacked(rec, NULL);
            return SIMSYNC_ENOMEM;
        }
        a->v = nv;
        a->cap = nc;
    }
    record_to_peer(rec, &a->v[a->n++]);
    simsync__peer_record__free_unpacked(rec, NULL);
    return SIMSYNC_OK;
}

int
simsync_peers(struct simsync_node *n, struct simsync_peer **out, size_t *count)
{
    struct list_arg a = {NULL, 0, 0};
    struct store_txn *txn;
    uint8_t sub[SUB_BYTES];
    int rc;

    *out = NULL;
    *count = 0;
    n->err[0] = '\0';
    rc = check_pairable(n);
    if (rc != SIMSYNC_OK)
        return rc;
    node_sub_key(n, sub);
    rc = store_txn_begin(n->st, 1, &txn);
    if (rc != SIMSYNC_OK)
        return rc;
    rc =
        store_scan(txn, STORE_REGISTRY, sub, SUB_BYTES, SUB_BYTES, list_fn, &a);
    store_txn_abort(txn);
    if (rc != SIMSYNC_OK) {
        free(a.v);
        return rc;
    }
    *out = a.v;
    *count = a.n;
    return SIMSYNC_OK;
}

struct unpair_arg {
    const uint8_t *sub;
    const char *tid;
};

static int
unpair_fn(struct store_txn *txn, void *arg)
{
    struct unpair_arg *a = arg;
    uint8_t key[SUB_BYTES + 64];
    size_t klen = hub_tid_key(key, a->sub, a->tid);

    return store_del(txn, STORE_REGISTRY, key, klen);
}

int
simsync_unpair(struct simsync_node *n, const char *id)
{
    Simsync__PeerRecord *rec = NULL;
    struct unpair_arg a;
    uint8_t sub[SUB_BYTES];
    int rc;

    n->err[0] = '\0';
    rc = check_pairable(n);
    if (rc != SIMSYNC_OK)
        return rc;
    if (id == NULL || *id == '\0')
        return node_fail(n, SIMSYNC_EINVAL, "name the peer to unpair");
    node_sub_key(n, sub);
    rc = peer_find(n->st, sub, id, NULL, &rec);
    if (rc == SIMSYNC_ENOTFOUND)
        return node_fail(n, rc,
                         "no paired node has the terminal ID or node ID "
                         "'%s'; 'simsync peers' lists them",
                         id);
    if (rc != SIMSYNC_OK)
        return rc;
    a.sub = sub;
    a.tid = rec->terminal_id;
    rc = store_write(n->st, unpair_fn, &a);
    simsync__peer_record__free_unpacked(rec, NULL);
    return rc;
}

/* ------------------------------------------------------------ syncing */

int
peer_pack_enabled(void)
{
    const char *v = getenv("SIMSYNC_PEER_PACK");

    return v == NULL || strcmp(v, "0") != 0;
}

static int
peer_hello(struct simsync_node *n, struct link *l, const char *where, int op,
           uint32_t classes, uint32_t *mask, int *packed)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT, *reply = NULL;
    Simsync__Hello hello = SIMSYNC__HELLO__INIT;
    uint32_t cls_list[CLS_COUNT], ncls = 0;
    int rc;

    *mask = 0;
    for (int c = 0; c < CLS_COUNT; c++)
        if (classes & (1u << c))
            cls_list[ncls++] = (uint32_t)c;
    hello.proto = SIMSYNC_PROTO_VERSION;
    hello.role = own_role(n);
    hello.subscriber = n->subscriber;
    hello.terminal_id = n->terminal_id;
    hello.classes = cls_list;
    hello.n_classes = ncls;
    hello.op = (Simsync__Op)op;
    hello.features = peer_pack_enabled() ? SIMSYNC__FEATURE__FEATURE_PACKED : 0;
    *packed = 0;
    env.msg_case = SIMSYNC__ENVELOPE__MSG_HELLO;
    env.hello = &hello;
    rc = node_send_env(l->ch, &env);
    if (rc == SIMSYNC_OK)
        rc = node_recv_kind(l->ch, SIMSYNC__ENVELOPE__MSG_HELLO_REPLY,
                            (void **)&reply);
    if (rc == SIMSYNC_OK) {
        for (size_t i = 0; i < reply->hello_reply->n_classes; i++)
            if (reply->hello_reply->classes[i] < CLS_COUNT)
                *mask |= 1u << reply->hello_reply->classes[i];
        *mask &= classes;
        *packed = (hello.features & reply->hello_reply->features &
                   SIMSYNC__FEATURE__FEATURE_PACKED) != 0;
    }
    if (reply)
        simsync__envelope__free_unpacked(reply, NULL);
    if (rc == SIMSYNC_EREFUSED)
        return node_fail(n, rc,
                         "the node at %s refused this one: it has not paired "
                         "with it (or unpaired it). Pair again with "
                         "'simsync pair'",
                         where);
    if (rc == SIMSYNC_EMASSDEL)
        return node_fail(n, rc,
                         "the node at %s would delete many items at once "
                         "from its own folders; nothing was synced. Check "
                         "its class folders, then confirm there with "
                         "'simsync sync --allow-delete'",
                         where);
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc, "the node at %s did not accept the session: %s",
                         where, simsync_strerror(rc));
    return SIMSYNC_OK;
}

int
peer_connect(struct simsync_node *n, struct peer_target *t, int op,
             uint32_t classes, struct link *l, uint32_t *mask)
{
    Simsync__PeerRecord *rec = NULL;
    uint8_t sub[SUB_BYTES], pin[32];
    const char *addr = t->addr;
    char id[NODE_ID_LEN];
    int rc, pinned = 0;

    memset(l, 0, sizeof(*l));
    memset(t->pk, 0, sizeof(t->pk));
    t->addr_used[0] = '\0';
    node_sub_key(n, sub);
    if (t->with != NULL) {
        rc = peer_find(n->st, sub, t->with, NULL, &rec);
        if (rc == SIMSYNC_ENOTFOUND)
            return node_fail(n, rc,
                             "no paired node has the terminal ID or node "
                             "ID '%s'; 'simsync peers' lists them",
                             t->with);
        if (rc != SIMSYNC_OK)
            return node_fail(n, rc, "cannot read the paired nodes: %s",
                             simsync_strerror(rc));
        memcpy(pin, rec->node_pk.data, 32);
        pinned = 1;
        if (addr == NULL && rec->addr != NULL && rec->addr[0] != '\0') {
            snprintf(t->addr_used, sizeof(t->addr_used), "%s", rec->addr);
            addr = t->addr_used;
        }
        simsync__peer_record__free_unpacked(rec, NULL);
        rec = NULL;
        if (addr == NULL)
            return node_fail(n, SIMSYNC_ESTATE,
                             "no address is known for the paired node %s; "
                             "give it with --peer HOST:PORT",
                             t->with);
    } else if (addr == NULL) {
        return node_fail(n, SIMSYNC_EINVAL, "no peer address given");
    } else {
        /* Any paired node may answer there; none paired at all is a
         * refusal before anything is sent. */
        struct simsync_peer *all = NULL;
        size_t count = 0;
        rc = simsync_peers(n, &all, &count);
        free(all);
        if (rc != SIMSYNC_OK)
            return rc;
        if (count == 0)
            return node_fail(n, SIMSYNC_EREFUSED,
                             "this node has not paired with any node, so it "
                             "syncs with none: pair first with 'simsync "
                             "pair' (both nodes of the same subscriber)");
    }
    if (addr != t->addr_used)
        snprintf(t->addr_used, sizeof(t->addr_used), "%s", addr);
    rc = link_connect(addr, &l->conn);
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc,
                         "cannot reach the peer at %s: %s (%s; is 'simsync "
                         "serve', 'simsync listen' or 'simsync daemon "
                         "--listen' running there?)",
                         addr, simsync_strerror(rc), link_strerror(errno));
    conn_set_timeout(l->conn, PEER_LINK_TIMEOUT_MS);
    rc = chan_handshake(l->conn, 1, &n->ident, pinned ? pin : NULL, &l->ch);
    if (rc != SIMSYNC_OK) {
        link_close(l);
        if (rc == SIMSYNC_EREFUSED)
            return node_fail(n, rc,
                             "the node at %s is not the paired node %s (key "
                             "mismatch); nothing was sent",
                             addr, t->with);
        return node_fail(n, rc, "secure handshake with %s failed: %s", addr,
                         simsync_strerror(rc));
    }
    chan_peer_key(l->ch, t->pk);
    if (!pinned) {
        rc = peer_find(n->st, sub, NULL, t->pk, &rec);
        if (rec != NULL)
            simsync__peer_record__free_unpacked(rec, NULL);
        if (rc != SIMSYNC_OK) {
            link_close(l);
            node_id_of(t->pk, id);
            if (rc == SIMSYNC_ENOTFOUND)
                return node_fail(n, SIMSYNC_EREFUSED,
                                 "the node at %s (node ID %s) is not paired "
                                 "with this one; nothing was sent. Pair "
                                 "first with 'simsync pair'",
                                 addr, id);
            return node_fail(n, rc, "cannot read the paired nodes: %s",
                             simsync_strerror(rc));
        }
    }
    rc = peer_hello(n, l, addr, op, classes, mask, &t->packed);
    if (rc != SIMSYNC_OK)
        link_close(l);
    return rc;
}

int
simsync_sync_peer(struct simsync_node *n, const char *addr, const char *with,
                  int allow_mass_delete, struct simsync_sync_report *rep)
{
    struct peer_target t;
    struct node_sync_opts o;

    memset(rep, 0, sizeof(*rep));
    memset(&t, 0, sizeof(t));
    memset(&o, 0, sizeof(o));
    n->err[0] = '\0';
    if (addr == NULL && with == NULL)
        return node_fail(n, SIMSYNC_EINVAL,
                         "name the peer: an address, a paired node, or "
                         "both");
    if (strcmp(n->role, "hub") == 0)
        return node_fail(n, SIMSYNC_ESTATE,
                         "a hub does not sync with peers; it serves "
                         "terminals");
    t.addr = addr;
    t.with = with;
    o.peer = &t;
    o.allow_mass_delete = allow_mass_delete;
    o.dir = NODE_SYNC_BOTH;
    return node_sync(n, &o, rep);
}
