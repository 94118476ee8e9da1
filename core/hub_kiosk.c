/* hub_kiosk.c -- the hub's side of shop kiosks (seed 003 FIG 18/19):
 * issuing and revoking kiosk credentials, checking a kiosk's signed
 * registration, recording the binding (subscriber, terminal ID, node key;
 * no password, no key yet), the audit, and the notices that tell the
 * subscriber's other terminals. See kiosk.h and docs/kiosk.md.
 *
 * Everything lives in the kiosk db (store.h):
 *   'k' | name   -> KioskRecord (public key only)
 *   'a' | seq    -> KioskAudit (subscriber as a keyed-hash tag)
 *   'n' | nonce  -> signing time, 8 bytes (replays)
 *   's'          -> last audit seq, 8 bytes
 * A request's checks, the nonce, the binding, the kiosk's counter and the
 * audit line are written in one transaction: two copies of one request
 * racing each other cannot both pass. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypt.h"
#include "hub_sched.h"
#include "journal.h"
#include "kiosk.h"
#include "node.h"
#include "pbcheck.h"

#define AUDIT_SEQ_KEY "s"

static int
need_hub(struct simsync_node *n)
{
    n->err[0] = '\0';
    if (strcmp(n->role, "hub") != 0)
        return node_fail(n, SIMSYNC_ESTATE,
                         "this node is a %s; kiosks are managed on the hub's "
                         "home",
                         n->role);
    return SIMSYNC_OK;
}

static size_t
kiosk_key(uint8_t *key, const char *name)
{
    size_t len = strlen(name);

    key[0] = 'k';
    memcpy(key + 1, name, len);
    return 1 + len;
}

/* The record of kiosk `name` in txn (*out NULL when there is none). */
static int
kiosk_get(struct store_txn *txn, const char *name, Simsync__KioskRecord **out)
{
    uint8_t key[1 + KIOSK_NAME_MAX];
    const void *v;
    size_t vl;
    int rc = store_get(txn, STORE_KIOSK, key, kiosk_key(key, name), &v, &vl);

    *out = NULL;
    if (rc == SIMSYNC_ENOTFOUND)
        return SIMSYNC_OK;
    if (rc != SIMSYNC_OK)
        return rc;
    *out = pb_unpack(&simsync__kiosk_record__descriptor, vl, v, &rc);
    return *out == NULL ? rc : SIMSYNC_OK;
}

static int
kiosk_put(struct store_txn *txn, const Simsync__KioskRecord *rec)
{
    uint8_t key[1 + KIOSK_NAME_MAX], *buf;
    size_t len;
    int rc = record_pack(&rec->base, &buf, &len);

    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_put(txn, STORE_KIOSK, key, kiosk_key(key, rec->name), buf, len);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------ admin */

struct add_arg {
    const char *name;
    const uint8_t *pk;
    int exists; /* out: an active kiosk has the name */
};

static int
add_fn(struct store_txn *txn, void *arg)
{
    struct add_arg *a = arg;
    Simsync__KioskRecord *old = NULL, rec = SIMSYNC__KIOSK_RECORD__INIT;
    int rc = kiosk_get(txn, a->name, &old);

    a->exists = 0;
    if (rc != SIMSYNC_OK)
        return rc;
    if (old != NULL && old->removed_ms == 0) {
        simsync__kiosk_record__free_unpacked(old, NULL);
        a->exists = 1;
        return SIMSYNC_EEXIST;
    }
    rec.name = (char *)a->name;
    rec.pk.data = (uint8_t *)a->pk;
    rec.pk.len = 32;
    rec.added_ms = node_now_ms();
    rec.registrations = old ? old->registrations : 0;
    if (old)
        simsync__kiosk_record__free_unpacked(old, NULL);
    return kiosk_put(txn, &rec);
}

int
simsync_hub_kiosk_add(struct simsync_node *n, const char *name, char *cred,
                      size_t len)
{
    struct kiosk_cred c;
    struct add_arg a;
    uint8_t pk[32], sk[64];
    int rc = need_hub(n);

    if (rc != SIMSYNC_OK)
        return rc;
    if (cred == NULL || len < SIMSYNC_KIOSK_CRED_MAX)
        return node_fail(n, SIMSYNC_EINVAL, "no room for the credential");
    cred[0] = '\0';
    if (!kiosk_name_valid(name))
        return node_fail(n, SIMSYNC_EINVAL,
                         "a kiosk name is 1-%d letters, digits, '.', '_' or "
                         "'-'",
                         KIOSK_NAME_MAX);
    memset(&c, 0, sizeof(c));
    snprintf(c.name, sizeof(c.name), "%s", name);
    node_id_of(n->ident.sign_pk, c.hub_id);
    crypt_random(c.seed, sizeof(c.seed));
    rc = crypt_sign_seed_keypair(pk, sk, c.seed);
    crypt_wipe(sk, sizeof(sk));
    if (rc == SIMSYNC_OK)
        rc = kiosk_cred_format(&c, cred, len);
    crypt_wipe(&c, sizeof(c));
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc, "cannot make a kiosk credential");
    a = (struct add_arg){name, pk, 0};
    rc = store_write(n->st, add_fn, &a);
    if (rc != SIMSYNC_OK) {
        crypt_wipe(cred, len);
        cred[0] = '\0';
        if (a.exists)
            return node_fail(n, SIMSYNC_EEXIST,
                             "a kiosk named '%s' exists already; remove it "
                             "first ('simsync hub kiosk remove %s') to issue "
                             "a new credential",
                             name, name);
        return node_fail(n, rc, "cannot record the kiosk: %s",
                         simsync_strerror(rc));
    }
    return SIMSYNC_OK;
}

struct remove_arg {
    const char *name;
    int found;
};

static int
remove_fn(struct store_txn *txn, void *arg)
{
    struct remove_arg *a = arg;
    Simsync__KioskRecord *rec = NULL;
    int rc = kiosk_get(txn, a->name, &rec);

    a->found = 0;
    if (rc != SIMSYNC_OK)
        return rc;
    if (rec == NULL || rec->removed_ms != 0) {
        if (rec)
            simsync__kiosk_record__free_unpacked(rec, NULL);
        return SIMSYNC_ENOTFOUND;
    }
    a->found = 1;
    rec->removed_ms = node_now_ms();
    rc = kiosk_put(txn, rec);
    simsync__kiosk_record__free_unpacked(rec, NULL);
    return rc;
}

int
simsync_hub_kiosk_remove(struct simsync_node *n, const char *name)
{
    struct remove_arg a = {name, 0};
    int rc = need_hub(n);

    if (rc != SIMSYNC_OK)
        return rc;
    if (!kiosk_name_valid(name))
        return node_fail(n, SIMSYNC_ENOTFOUND, "no kiosk is named '%s'", name);
    rc = store_write(n->st, remove_fn, &a);
    if (rc == SIMSYNC_ENOTFOUND)
        return node_fail(n, rc,
                         "no active kiosk is named '%s' ('simsync hub kiosk "
                         "list' shows them)",
                         name);
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc, "cannot remove the kiosk: %s",
                         simsync_strerror(rc));
    return SIMSYNC_OK;
}

/* A growing array of fixed-size entries for the listings. */
struct vec {
    void *v;
    size_t n, cap, size;
};

static void *
vec_push(struct vec *a)
{
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 16;
        void *nv = realloc(a->v, nc * a->size);
        if (nv == NULL)
            return NULL;
        a->v = nv;
        a->cap = nc;
    }
    memset((char *)a->v + a->n * a->size, 0, a->size);
    return (char *)a->v + a->n++ * a->size;
}

static int
list_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
    struct vec *a = arg;
    Simsync__KioskRecord *rec = simsync__kiosk_record__unpack(NULL, vl, v);
    struct simsync_kiosk *e;

    (void)k;
    (void)kl;
    if (rec == NULL)
        return SIMSYNC_EPROTO;
    e = vec_push(a);
    if (e == NULL) {
        simsync__kiosk_record__free_unpacked(rec, NULL);
        return SIMSYNC_ENOMEM;
    }
    snprintf(e->name, sizeof(e->name), "%s", rec->name);
    if (rec->pk.len == 32)
        node_id_of(rec->pk.data, e->id);
    e->added_ms = rec->added_ms;
    e->removed_ms = rec->removed_ms;
    e->registrations = rec->registrations;
    simsync__kiosk_record__free_unpacked(rec, NULL);
    return SIMSYNC_OK;
}

static int
scan_prefix(struct simsync_node *n, char prefix, store_scan_fn fn, void *arg)
{
    struct store_txn *txn;
    uint8_t seek[1] = {(uint8_t)prefix};
    int rc = store_txn_begin(n->st, 1, &txn);

    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_scan(txn, STORE_KIOSK, seek, 1, 1, fn, arg);
    store_txn_abort(txn);
    return rc;
}

int
simsync_hub_kiosk_list(struct simsync_node *n, struct simsync_kiosk **out,
                       size_t *count)
{
    struct vec a = {NULL, 0, 0, sizeof(struct simsync_kiosk)};
    int rc = need_hub(n);

    *out = NULL;
    *count = 0;
    if (rc != SIMSYNC_OK)
        return rc;
    rc = scan_prefix(n, 'k', list_fn, &a);
    if (rc != SIMSYNC_OK) {
        free(a.v);
        return node_fail(n, rc, "cannot read the kiosks: %s",
                         simsync_strerror(rc));
    }
    *out = a.v;
    *count = a.n;
    return SIMSYNC_OK;
}

static int
audit_list_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
    struct vec *a = arg;
    Simsync__KioskAudit *rec;
    struct simsync_kiosk_audit *e;
    int rc;

    (void)k;
    if (kl != 9)
        return SIMSYNC_OK;
    rec = pb_unpack(&simsync__kiosk_audit__descriptor, vl, v, &rc);
    if (rec == NULL)
        return rc;
    e = vec_push(a);
    if (e == NULL) {
        simsync__kiosk_audit__free_unpacked(rec, NULL);
        return SIMSYNC_ENOMEM;
    }
    e->seq = rec->seq;
    e->time_ms = rec->time_ms;
    snprintf(e->kiosk, sizeof(e->kiosk), "%s", rec->kiosk);
    snprintf(e->terminal_id, sizeof(e->terminal_id), "%s", rec->terminal_id);
    snprintf(e->node_id, sizeof(e->node_id), "%s", rec->node_id);
    snprintf(e->subscriber_tag, sizeof(e->subscriber_tag), "%s",
             rec->subscriber_tag);
    e->accepted = rec->accepted;
    snprintf(e->detail, sizeof(e->detail), "%s", rec->detail);
    simsync__kiosk_audit__free_unpacked(rec, NULL);
    return SIMSYNC_OK;
}

int
simsync_hub_audit(struct simsync_node *n, struct simsync_kiosk_audit **out,
                  size_t *count)
{
    struct vec a = {NULL, 0, 0, sizeof(struct simsync_kiosk_audit)};
    int rc = need_hub(n);

    *out = NULL;
    *count = 0;
    if (rc != SIMSYNC_OK)
        return rc;
    rc = scan_prefix(n, 'a', audit_list_fn, &a);
    if (rc != SIMSYNC_OK) {
        free(a.v);
        return node_fail(n, rc, "cannot read the kiosk audit: %s",
                         simsync_strerror(rc));
    }
    *out = a.v;
    *count = a.n;
    return SIMSYNC_OK;
}

/* ------------------------------------------------------------ register */

/* Printable copy of an untrusted string for the audit ("?" when unusable). */
static void
clean_copy(char *out, size_t len, const char *in)
{
    size_t i = 0;

    if (in != NULL)
        for (; in[i] != '\0' && i + 1 < len; i++)
            out[i] = in[i] > 0x20 && in[i] < 0x7f ? in[i] : '?';
    out[i] = '\0';
    if (i == 0)
        snprintf(out, len, "?");
}

/* The subscriber as the audit shows it: 16 hex digits of a keyed hash
 * under its own label, so it matches no store key and reveals no ID. */
static void
sub_tag(const struct simsync_node *n, const char *subscriber, char out[20])
{
    static const char hx[] = "0123456789abcdef";
    uint8_t h[8];
    struct crypt_hash_state st;

    crypt_hash_init(&st, sizeof(h), n->pepper, 32);
    crypt_hash_update(&st, "simsync-kiosk-audit", 19);
    crypt_hash_update(&st, subscriber, strlen(subscriber));
    crypt_hash_final(&st, h, sizeof(h));
    for (int i = 0; i < 8; i++) {
        out[2 * i] = hx[h[i] >> 4];
        out[2 * i + 1] = hx[h[i] & 15];
    }
    out[16] = '\0';
}

/* Append one audit line in txn. */
static int
audit_put(struct store_txn *txn, Simsync__KioskAudit *e)
{
    uint8_t key[9], *buf, b[8];
    const void *v;
    size_t vl, len;
    uint64_t seq = 0;
    int rc;

    if (store_get(txn, STORE_KIOSK, AUDIT_SEQ_KEY, 1, &v, &vl) == SIMSYNC_OK &&
        vl == 8)
        seq = store_get_be64(v);
    seq++;
    store_be64(b, seq);
    rc = store_put(txn, STORE_KIOSK, AUDIT_SEQ_KEY, 1, b, 8);
    if (rc != SIMSYNC_OK)
        return rc;
    e->seq = seq;
    key[0] = 'a';
    store_be64(key + 1, seq);
    rc = record_pack(&e->base, &buf, &len);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_put(txn, STORE_KIOSK, key, sizeof(key), buf, len);
    free(buf);
    return rc;
}

struct reg_arg {
    struct simsync_node *n;
    const Simsync__KioskRegister *req;
    const char *hub_id;
    uint8_t sub[SUB_BYTES];
    Simsync__KioskAudit *audit;
    uint64_t now;
    /* out */
    int sub_is_new;
    char why[200]; /* a refusal's reason, for the kiosk and the audit */
};

static int refuse(struct reg_arg *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
refuse(struct reg_arg *a, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(a->why, sizeof(a->why), fmt, ap);
    va_end(ap);
    return SIMSYNC_EREFUSED;
}

static int
reg_fn(struct store_txn *txn, void *arg)
{
    struct reg_arg *a = arg;
    const Simsync__KioskRegister *req = a->req;
    Simsync__KioskRecord *krec = NULL;
    Simsync__Registration *old = NULL, reg = SIMSYNC__REGISTRATION__INIT;
    uint8_t nkey[1 + KIOSK_NONCE_BYTES], rkey[SUB_BYTES + 64], b[8], *buf;
    const void *v;
    size_t vl, rlen, len;
    int rc;

    a->why[0] = '\0';
    a->sub_is_new = 0;
    rc = kiosk_get(txn, req->kiosk, &krec);
    if (rc != SIMSYNC_OK)
        return rc;
    if (krec == NULL)
        return refuse(a, "unknown kiosk '%s'", req->kiosk);
    if (krec->removed_ms != 0) {
        simsync__kiosk_record__free_unpacked(krec, NULL);
        return refuse(a, "the kiosk '%s' was removed", req->kiosk);
    }
    if (krec->pk.len != 32 ||
        kiosk_request_verify(req, a->hub_id, krec->pk.data) != SIMSYNC_OK) {
        simsync__kiosk_record__free_unpacked(krec, NULL);
        return refuse(a,
                      "the signature does not verify with the key of kiosk "
                      "'%s' (forged or damaged credential)",
                      req->kiosk);
    }
    if (req->time_ms + KIOSK_MAX_AGE_MS < a->now ||
        req->time_ms > a->now + KIOSK_MAX_AHEAD_MS) {
        simsync__kiosk_record__free_unpacked(krec, NULL);
        return refuse(a, "%s",
                      "signed outside the accepted time window "
                      "(24 hours back, 10 minutes ahead)");
    }
    nkey[0] = 'n';
    memcpy(nkey + 1, req->nonce.data, KIOSK_NONCE_BYTES);
    if (store_get(txn, STORE_KIOSK, nkey, sizeof(nkey), &v, &vl) ==
        SIMSYNC_OK) {
        simsync__kiosk_record__free_unpacked(krec, NULL);
        return refuse(a, "%s",
                      "replayed: this signed registration was "
                      "presented before");
    }
    rlen = hub_tid_key(rkey, a->sub, req->terminal_id);
    if (store_get(txn, STORE_REGISTRY, rkey, rlen, &v, &vl) == SIMSYNC_OK) {
        old = pb_unpack(&simsync__registration__descriptor, vl, v, &rc);
        if (old == NULL) {
            simsync__kiosk_record__free_unpacked(krec, NULL);
            return rc;
        }
        /* A kiosk binding the terminal has not completed yet is made
         * again (a mistyped node key can be corrected); a complete one is
         * the terminal's own and stays. */
        if (old->wrapped_key.len != 0 || old->kiosk[0] == '\0') {
            if (old->node_pk.len != 32 ||
                !crypt_equal(old->node_pk.data, req->node_pk.data, 32))
                rc = refuse(a, "%s",
                            "this terminal ID is registered for "
                            "the subscriber with another node key");
            else
                rc = refuse(a, "%s",
                            "this terminal is registered for the "
                            "subscriber already");
        }
        simsync__registration__free_unpacked(old, NULL);
        if (rc != SIMSYNC_OK) {
            simsync__kiosk_record__free_unpacked(krec, NULL);
            return rc;
        }
    }
    a->sub_is_new =
        store_get(txn, STORE_SUBS, a->sub, SUB_BYTES, &v, &vl) != SIMSYNC_OK;
    store_be64(b, req->time_ms);
    rc = store_put(txn, STORE_KIOSK, nkey, sizeof(nkey), b, 8);
    if (rc == SIMSYNC_OK) {
        /* The binding: no password, no wrapped key until the terminal
         * completes it (Register.kiosk). */
        reg.terminal_id = req->terminal_id;
        reg.node_pk = req->node_pk;
        reg.password_hash = "";
        reg.registered_ms = a->now;
        reg.kiosk = req->kiosk;
        rc = record_pack(&reg.base, &buf, &len);
        if (rc == SIMSYNC_OK) {
            rc = store_put(txn, STORE_REGISTRY, rkey, rlen, buf, len);
            free(buf);
        }
    }
    if (rc == SIMSYNC_OK) {
        krec->registrations++;
        rc = kiosk_put(txn, krec);
    }
    simsync__kiosk_record__free_unpacked(krec, NULL);
    if (rc == SIMSYNC_OK) {
        a->audit->accepted = 1;
        a->audit->detail = a->sub_is_new ? "registered (new subscriber)"
                                         : "registered (known subscriber)";
        rc = audit_put(txn, a->audit);
    }
    return rc;
}

static int
audit_only_fn(struct store_txn *txn, void *arg)
{
    return audit_put(txn, arg);
}

/* Record a refusal; it stands even when the audit cannot be written. */
static void
audit_write(struct simsync_node *n, Simsync__KioskAudit *e)
{
    if (store_write(n->st, audit_only_fn, e) != SIMSYNC_OK)
        fprintf(stderr, "hub: cannot write the kiosk audit\n");
}

/* Tell the subscriber's other terminals; returns how many. */
struct others {
    const char *tid;
    char (*v)[64];
    size_t n, cap;
};

static int
others_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
    struct others *o = arg;
    size_t tl = kl - SUB_BYTES;

    (void)v;
    (void)vl;
    if (kl <= SUB_BYTES || tl >= 64 || o->n == o->cap)
        return SIMSYNC_OK;
    memcpy(o->v[o->n], (const uint8_t *)k + SUB_BYTES, tl);
    o->v[o->n][tl] = '\0';
    if (strcmp(o->v[o->n], o->tid) != 0)
        o->n++;
    return SIMSYNC_OK;
}

static uint32_t
announce(struct simsync_node *n, const uint8_t sub[SUB_BYTES],
         const Simsync__KioskRegister *req, const char *node_id)
{
    char v[64][64];
    struct others o = {req->terminal_id, v, 0, 64};
    struct store_txn *txn;
    uint32_t told = 0;

    if (store_txn_begin(n->st, 1, &txn) != SIMSYNC_OK)
        return 0;
    (void)store_scan(txn, STORE_REGISTRY, sub, SUB_BYTES, SUB_BYTES, others_fn,
                     &o);
    store_txn_abort(txn);
    for (size_t i = 0; i < o.n; i++)
        if (hub_event(n->st, sub, v[i], "kiosk", 0, 0, 1,
                      "the shop kiosk '%s' registered a new terminal for "
                      "this SIM: terminal ID %s, node ID %s. If that was "
                      "not you, tell your operator",
                      req->kiosk, req->terminal_id, node_id) == SIMSYNC_OK)
            told++;
    return told;
}

/* A node key the handset could hold: a valid Ed25519 point (a terminal
 * with any other key could never complete the binding). */
static int
node_key_valid(const uint8_t pk[32])
{
    uint8_t xpk[32];

    return crypt_sign_pk_to_x25519(xpk, pk) == SIMSYNC_OK;
}

int
hub_kiosk_register(struct simsync_node *n, struct chan *ch,
                   const Simsync__KioskRegister *req)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__KioskReply rep = SIMSYNC__KIOSK_REPLY__INIT;
    Simsync__KioskAudit audit = SIMSYNC__KIOSK_AUDIT__INIT;
    char kname[KIOSK_NAME_MAX + 1], tid[64], node_id[NODE_ID_LEN] = "";
    char tag[20] = "", hub_id[NODE_ID_LEN];
    struct reg_arg a;
    int rc;

    clean_copy(kname, sizeof(kname), req->kiosk);
    clean_copy(tid, sizeof(tid), req->terminal_id);
    if (req->node_pk.len == 32)
        node_id_of(req->node_pk.data, node_id);
    if (hub_sub_valid(req->subscriber))
        sub_tag(n, req->subscriber, tag);
    audit.time_ms = node_now_ms();
    audit.kiosk = kname;
    audit.terminal_id = tid;
    audit.node_id = node_id;
    audit.subscriber_tag = tag;
    memset(&a, 0, sizeof(a));
    if (req->proto != SIMSYNC_PROTO_VERSION || !kiosk_name_valid(req->kiosk) ||
        !hub_sub_valid(req->subscriber) || !hub_tid_valid(req->terminal_id) ||
        req->node_pk.len != 32 || req->nonce.len != KIOSK_NONCE_BYTES ||
        req->signature.len != 64 || !node_key_valid(req->node_pk.data)) {
        audit.detail = "refused: malformed request";
        audit_write(n, &audit);
        node_send_error(ch, SIMSYNC_EPROTO, "malformed kiosk registration");
        return SIMSYNC_EPROTO;
    }
    node_id_of(n->ident.sign_pk, hub_id);
    a.n = n;
    a.req = req;
    a.hub_id = hub_id;
    a.audit = &audit;
    a.now = audit.time_ms;
    hub_sub_key(n, req->subscriber, a.sub);
    rc = store_write(n->st, reg_fn, &a);
    if (rc != SIMSYNC_OK) {
        char detail[240];
        const char *why = a.why[0] ? a.why : simsync_strerror(rc);
        snprintf(detail, sizeof(detail), "refused: %s", why);
        audit.accepted = 0;
        audit.detail = detail;
        audit_write(n, &audit);
        node_send_error(ch, rc == SIMSYNC_EREFUSED ? rc : SIMSYNC_EIO, why);
        return rc;
    }
    rep.subscriber_is_new = a.sub_is_new;
    rep.notified = announce(n, a.sub, req, node_id);
    env.msg_case = SIMSYNC__ENVELOPE__MSG_KIOSK_REPLY;
    env.kiosk_reply = &rep;
    return node_send_env(ch, &env);
}
