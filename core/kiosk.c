/* kiosk.c -- the shop registration kiosk (seed 003 FIG 18/19) on the
 * kiosk's and the handset's side: credentials and the signed request, the
 * kiosk's home (credential, its own audit), `kiosk register`, `kiosk send`
 * and the handset's `kiosk offer`. The hub's side is hub_kiosk.c; see
 * kiosk.h and docs/kiosk.md.
 *
 * The kiosk holds no user data and no data key: its home has its node key
 * (for the secure channel), the credential and kiosk.audit. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypt.h"
#include "journal.h"
#include "kiosk.h"
#include "link.h"
#include "node.h"
#include "pbcheck.h"
#include "session.h"
#include "sim.h"
#include "transport.h"

#define CRED_PREFIX "simsync-kiosk1:"
#define SIGN_LABEL "simsync-kiosk-register-1"
#define OFFER_TIMEOUT_S 300
#define LINK_TIMEOUT_MS 30000
#define SAVED_MAX 4096 /* a saved request is a few hundred bytes */

/* ------------------------------------------------------------ helpers */

static int
tid_ok(const char *s)
{
    size_t len = s ? strlen(s) : 0;

    if (len == 0 || len > 63)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] < 0x21 || s[i] > 0x7e)
            return 0;
    return 1;
}

static int
is_kiosk(const struct simsync_node *n)
{
    return strcmp(n->role, "kiosk") == 0;
}

/* ------------------------------------------------------------ credential */

int
kiosk_name_valid(const char *name)
{
    size_t len = name ? strlen(name) : 0;

    if (len == 0 || len > KIOSK_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
              (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

/* A hub ID: base32 letters and digits in groups of four joined by '-'. */
static int
hub_id_valid(const char *id)
{
    size_t len = strlen(id);

    if (len != NODE_ID_LEN - 1)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = id[i];
        if (i % 5 == 4
                ? ch != '-'
                : !((ch >= 'A' && ch <= 'Z') || (ch >= '2' && ch <= '7')))
            return 0;
    }
    return 1;
}

int
kiosk_cred_format(const struct kiosk_cred *c, char *buf, size_t len)
{
    char seed[65];
    int r;

    if (!kiosk_name_valid(c->name) || !hub_id_valid(c->hub_id))
        return SIMSYNC_EINVAL;
    crypt_hex_encode(seed, c->seed, 32);
    r = snprintf(buf, len, CRED_PREFIX "%s:%s:%s", c->name, c->hub_id, seed);
    crypt_wipe(seed, sizeof(seed));
    if (r < 0 || (size_t)r >= len) {
        if (len > 0)
            crypt_wipe(buf, len);
        return SIMSYNC_EINVAL;
    }
    return SIMSYNC_OK;
}

int
kiosk_cred_parse(const char *text, struct kiosk_cred *out)
{
    const char *p, *name, *hub, *seed, *end;
    size_t nl, hl, sl;

    memset(out, 0, sizeof(*out));
    if (text == NULL)
        return SIMSYNC_EINVAL;
    p = text;
    while (*p == ' ' || *p == '\t')
        p++;
    if (strncmp(p, CRED_PREFIX, strlen(CRED_PREFIX)) != 0)
        return SIMSYNC_EINVAL;
    name = p + strlen(CRED_PREFIX);
    hub = strchr(name, ':');
    if (hub == NULL)
        return SIMSYNC_EINVAL;
    nl = (size_t)(hub - name);
    hub++;
    seed = strchr(hub, ':');
    if (seed == NULL)
        return SIMSYNC_EINVAL;
    hl = (size_t)(seed - hub);
    seed++;
    end = seed + strcspn(seed, " \t\r\n");
    sl = (size_t)(end - seed);
    while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
        end++;
    if (*end != '\0' || nl == 0 || nl > KIOSK_NAME_MAX ||
        hl >= sizeof(out->hub_id))
        return SIMSYNC_EINVAL;
    memcpy(out->name, name, nl);
    memcpy(out->hub_id, hub, hl);
    if (!kiosk_name_valid(out->name) || !hub_id_valid(out->hub_id) ||
        crypt_hex_decode(out->seed, 32, seed, sl) != SIMSYNC_OK) {
        crypt_wipe(out, sizeof(*out));
        return SIMSYNC_EINVAL;
    }
    return SIMSYNC_OK;
}

/* ------------------------------------------------------------ signing */

static int
put_field(uint8_t *buf, size_t cap, size_t *off, const char *s)
{
    size_t len = strlen(s);

    if (len > 255 || *off + 1 + len > cap)
        return -1;
    buf[(*off)++] = (uint8_t)len;
    memcpy(buf + *off, s, len);
    *off += len;
    return 0;
}

size_t
kiosk_signed_bytes(const char *hub_id, const char *kiosk,
                   const char *subscriber, const char *terminal_id,
                   const uint8_t node_pk[32], uint64_t time_ms,
                   const uint8_t nonce[KIOSK_NONCE_BYTES], uint8_t *buf,
                   size_t cap)
{
    size_t off = strlen(SIGN_LABEL);

    if (off + 32 + 8 + KIOSK_NONCE_BYTES > cap)
        return 0;
    memcpy(buf, SIGN_LABEL, off);
    if (put_field(buf, cap, &off, hub_id) != 0 ||
        put_field(buf, cap, &off, kiosk) != 0 ||
        put_field(buf, cap, &off, subscriber) != 0 ||
        put_field(buf, cap, &off, terminal_id) != 0 ||
        off + 32 + 8 + KIOSK_NONCE_BYTES > cap)
        return 0;
    memcpy(buf + off, node_pk, 32);
    off += 32;
    store_be64(buf + off, time_ms);
    off += 8;
    memcpy(buf + off, nonce, KIOSK_NONCE_BYTES);
    return off + KIOSK_NONCE_BYTES;
}

static size_t
request_bytes(const Simsync__KioskRegister *req, const char *hub_id,
              uint8_t *buf, size_t cap)
{
    if (req->kiosk == NULL || req->subscriber == NULL ||
        req->terminal_id == NULL || req->node_pk.len != 32 ||
        req->nonce.len != KIOSK_NONCE_BYTES)
        return 0;
    return kiosk_signed_bytes(hub_id, req->kiosk, req->subscriber,
                              req->terminal_id, req->node_pk.data, req->time_ms,
                              req->nonce.data, buf, cap);
}

int
kiosk_request_sign(const struct kiosk_cred *c, const char *hub_id,
                   Simsync__KioskRegister *req)
{
    uint8_t msg[KIOSK_SIGNED_MAX], pk[32], sk[64];
    size_t len = request_bytes(req, hub_id, msg, sizeof(msg));
    int rc;

    if (len == 0 || req->signature.len != 64 || req->signature.data == NULL)
        return SIMSYNC_EINVAL;
    rc = crypt_sign_seed_keypair(pk, sk, c->seed);
    if (rc == SIMSYNC_OK)
        rc = crypt_sign(req->signature.data, msg, len, sk);
    crypt_wipe(sk, sizeof(sk));
    return rc;
}

int
kiosk_request_verify(const Simsync__KioskRegister *req, const char *hub_id,
                     const uint8_t pk[32])
{
    uint8_t msg[KIOSK_SIGNED_MAX];
    size_t len = request_bytes(req, hub_id, msg, sizeof(msg));

    if (len == 0 || req->signature.len != 64)
        return SIMSYNC_ECRYPTO;
    return crypt_verify(req->signature.data, msg, len, pk) == SIMSYNC_OK
               ? SIMSYNC_OK
               : SIMSYNC_ECRYPTO;
}

/* ------------------------------------------------------------ links */

/* Links are the peer code's: tcp:, rfcomm:, usb (transports/link.h). */
int
kiosk_connect(const char *addr, struct conn **out)
{
    return link_connect(addr, out);
}

int
kiosk_listen(const char *addr, struct listener **out)
{
    return link_listen(addr, out);
}

/* Receive one envelope; an Error frame becomes its code with its text in
 * why (len bytes). */
static int
recv_env(struct chan *ch, Simsync__Envelope **out, char *why, size_t len)
{
    const uint8_t *msg;
    size_t ml;
    Simsync__Envelope *env;
    int rc = chan_recv(ch, &msg, &ml);

    *out = NULL;
    if (len > 0)
        why[0] = '\0';
    if (rc != SIMSYNC_OK)
        return rc;
    env = pb_unpack(&simsync__envelope__descriptor, ml, msg, &rc);
    if (env == NULL)
        return rc;
    if (!pb_decoded_ok(&env->base)) {
        simsync__envelope__free_unpacked(env, NULL);
        return SIMSYNC_EPROTO;
    }
    if (env->msg_case == SIMSYNC__ENVELOPE__MSG_ERROR) {
        rc = session_peer_error(env->error->code);
        if (len > 0 && env->error->text != NULL)
            snprintf(why, len, "%s", env->error->text);
        simsync__envelope__free_unpacked(env, NULL);
        return rc;
    }
    *out = env;
    return SIMSYNC_OK;
}

/* ------------------------------------------------------------ kiosk home */

int
simsync_kiosk_enroll(struct simsync_node *n, const char *credential)
{
    struct kiosk_cred c;
    char path[PATH_MAX + 32], text[SIMSYNC_KIOSK_CRED_MAX];
    int rc;

    n->err[0] = '\0';
    if (!is_kiosk(n))
        return node_fail(n, SIMSYNC_ESTATE,
                         "this node is a %s; a kiosk is made with 'simsync "
                         "init --role kiosk'",
                         n->role);
    if (kiosk_cred_parse(credential, &c) != SIMSYNC_OK)
        return node_fail(n, SIMSYNC_EINVAL,
                         "this is not a kiosk credential (expected one line "
                         "'simsync-kiosk1:NAME:HUB-ID:KEY' as 'simsync hub "
                         "kiosk add' printed it)");
    rc = kiosk_cred_format(&c, text, sizeof(text));
    crypt_wipe(&c, sizeof(c));
    if (rc == SIMSYNC_OK)
        rc = node_path_in(n, "kiosk.credential", path, sizeof(path));
    if (rc == SIMSYNC_OK) {
        size_t len = strlen(text);
        text[len] = '\n';
        rc = node_file_put(path, text, len + 1);
    }
    crypt_wipe(text, sizeof(text));
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc, "cannot store the kiosk credential in %s: %s",
                         n->home, simsync_strerror(rc));
    return SIMSYNC_OK;
}

static int
cred_load(struct simsync_node *n, struct kiosk_cred *c)
{
    char path[PATH_MAX + 32], text[SIMSYNC_KIOSK_CRED_MAX + 8];
    size_t len;
    int rc;

    memset(c, 0, sizeof(*c));
    if (!is_kiosk(n))
        return node_fail(n, SIMSYNC_ESTATE,
                         "this node is a %s, not a kiosk (make one with "
                         "'simsync init --role kiosk --credential-file F')",
                         n->role);
    rc = node_path_in(n, "kiosk.credential", path, sizeof(path));
    if (rc == SIMSYNC_OK)
        rc = node_file_get(path, text, sizeof(text), &len);
    if (rc == SIMSYNC_ENOTFOUND)
        return node_fail(n, SIMSYNC_ESTATE,
                         "this kiosk has no credential; give it the one "
                         "'simsync hub kiosk add NAME' printed with "
                         "'simsync kiosk enroll --credential-file F'");
    if (rc == SIMSYNC_OK) {
        text[len] = '\0';
        rc = kiosk_cred_parse(text, c) == SIMSYNC_OK ? SIMSYNC_OK
                                                     : SIMSYNC_EPROTO;
    }
    crypt_wipe(text, sizeof(text));
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc, "cannot read the kiosk credential %s: %s", path,
                         simsync_strerror(rc));
    return SIMSYNC_OK;
}

/* Append one line to the kiosk's own audit (best effort: the hub's audit
 * is the record that counts). */
static void
kiosk_audit_local(struct simsync_node *n, const char *result,
                  const struct simsync_kiosk_result *r, const char *detail)
{
    char path[PATH_MAX + 32], line[600];
    int fd, len;

    if (node_path_in(n, "kiosk.audit", path, sizeof(path)) != SIMSYNC_OK)
        return;
    len =
        snprintf(line, sizeof(line), "%llu\t%s\t%s\t%s\t%s\t%s\n",
                 (unsigned long long)node_now_ms(), result,
                 r->terminal_id[0] ? r->terminal_id : "-",
                 r->node_id[0] ? r->node_id : "-",
                 r->subscriber_masked[0] ? r->subscriber_masked : "-", detail);
    if (len < 0)
        return;
    if ((size_t)len >= sizeof(line))
        len = (int)sizeof(line) - 1;
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW,
              0600);
    if (fd < 0)
        return;
    if (write(fd, line, (size_t)len) != len) {
        /* Nothing more to do: the hub keeps the authoritative audit. */
    }
    close(fd);
}

static void
mask_subscriber(const char *sub, char out[20])
{
    size_t len = strlen(sub);

    if (len <= 4) {
        snprintf(out, 20, "****");
        return;
    }
    snprintf(out, 20, "****%s", sub + len - 4);
}

/* ------------------------------------------------------------ handset */

/* Read the terminal ID and node key a handset offers at `peer`. */
static int
read_offer(struct simsync_node *n, const char *peer, char *tid, size_t tlen,
           uint8_t pk[32])
{
    struct conn *c = NULL;
    struct chan *ch = NULL;
    Simsync__Envelope *env = NULL;
    uint8_t chan_pk[32];
    char why[256];
    int rc;

    rc = kiosk_connect(peer, &c);
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc,
                         "cannot reach the handset at %s: %s (%s; run "
                         "'simsync kiosk offer --listen ADDR' on it first)",
                         peer, simsync_strerror(rc), link_strerror(errno));
    conn_set_timeout(c, LINK_TIMEOUT_MS);
    rc = chan_handshake(c, 1, &n->ident, NULL, &ch);
    if (rc == SIMSYNC_OK)
        rc = chan_peer_key(ch, chan_pk);
    if (rc == SIMSYNC_OK)
        rc = recv_env(ch, &env, why, sizeof(why));
    if (rc == SIMSYNC_OK) {
        const Simsync__KioskOffer *o = env->kiosk_offer;
        if (env->msg_case != SIMSYNC__ENVELOPE__MSG_KIOSK_OFFER ||
            o->proto != SIMSYNC_PROTO_VERSION || !tid_ok(o->terminal_id) ||
            strlen(o->terminal_id) >= tlen || o->node_pk.len != 32)
            rc = node_fail(n, SIMSYNC_EPROTO,
                           "the handset at %s sent no valid offer", peer);
        else if (!crypt_equal(o->node_pk.data, chan_pk, 32))
            /* The key offered must be the one that ran the handshake. */
            rc = node_fail(n, SIMSYNC_EPROTO,
                           "the handset at %s offered a node key that is "
                           "not its own (it differs from its channel key)",
                           peer);
        else {
            memcpy(tid, o->terminal_id, strlen(o->terminal_id) + 1);
            memcpy(pk, chan_pk, 32);
        }
    } else {
        node_fail(n, rc, "cannot read the handset's offer at %s: %s%s%s", peer,
                  simsync_strerror(rc), why[0] ? ": " : "", why);
    }
    if (env)
        simsync__envelope__free_unpacked(env, NULL);
    chan_free(ch);
    conn_close(c);
    return rc;
}

int
simsync_kiosk_offer(struct simsync_node *n, const struct simsync_offer_opts *o,
                    char *kiosk_node)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__KioskOffer offer = SIMSYNC__KIOSK_OFFER__INIT;
    struct listener *l = NULL;
    struct conn *c = NULL;
    struct chan *ch = NULL;
    char addr[256];
    uint8_t pk[32];
    uint64_t until;
    unsigned timeout_s;
    int rc;

    n->err[0] = '\0';
    if (kiosk_node != NULL)
        kiosk_node[0] = '\0';
    if (strcmp(n->role, "terminal") != 0 && strcmp(n->role, "desktop") != 0)
        return node_fail(n, SIMSYNC_ESTATE,
                         "only a terminal offers itself to a kiosk; this "
                         "node is a %s",
                         n->role);
    if (o == NULL || o->listen == NULL)
        return node_fail(n, SIMSYNC_EINVAL,
                         "an address to listen on is needed");
    timeout_s = o->timeout_s ? o->timeout_s : OFFER_TIMEOUT_S;
    rc = kiosk_listen(o->listen, &l);
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc, "cannot listen on %s: %s (%s)", o->listen,
                         simsync_strerror(rc), link_strerror(errno));
    if (link_listener_addr(l, addr, sizeof(addr)) != SIMSYNC_OK)
        snprintf(addr, sizeof(addr), "%s", o->listen);
    if (o->listening != NULL)
        o->listening(o->arg, addr);
    until = node_now_ms() + (uint64_t)timeout_s * 1000;
    rc = SIMSYNC_ETIMEOUT;
    while (node_now_ms() < until) {
        struct pollfd pfd = {listener_pollfd(l), POLLIN, 0};
        if (poll(&pfd, 1, 500) <= 0)
            continue;
        rc = listener_accept(l, &c);
        if (rc != SIMSYNC_EAGAIN)
            break;
        rc = SIMSYNC_ETIMEOUT;
    }
    listener_close(l);
    if (rc == SIMSYNC_ETIMEOUT)
        return node_fail(n, rc, "no kiosk came to %s within %u s", addr,
                         timeout_s);
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc, "cannot accept the kiosk on %s: %s", addr,
                         simsync_strerror(rc));
    conn_set_timeout(c, LINK_TIMEOUT_MS);
    rc = chan_handshake(c, 0, &n->ident, NULL, &ch);
    if (rc == SIMSYNC_OK) {
        /* Public data only: the terminal ID and the node key. */
        offer.proto = SIMSYNC_PROTO_VERSION;
        offer.terminal_id = n->terminal_id;
        offer.node_pk.data = n->ident.sign_pk;
        offer.node_pk.len = 32;
        env.msg_case = SIMSYNC__ENVELOPE__MSG_KIOSK_OFFER;
        env.kiosk_offer = &offer;
        rc = node_send_env(ch, &env);
    }
    if (rc == SIMSYNC_OK && kiosk_node != NULL &&
        chan_peer_key(ch, pk) == SIMSYNC_OK)
        node_id_of(pk, kiosk_node);
    if (rc == SIMSYNC_OK) {
        /* Let the kiosk read it and hang up first. */
        const uint8_t *msg;
        size_t ml;
        conn_set_timeout(c, 5000);
        if (chan_recv(ch, &msg, &ml) == SIMSYNC_OK) {
            /* The kiosk sends nothing: whatever came is ignored. */
        }
    }
    chan_free(ch);
    conn_close(c);
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc, "the offer to the kiosk failed: %s",
                         simsync_strerror(rc));
    return SIMSYNC_OK;
}

/* ------------------------------------------------------------ register */

/* Send a signed request to the hub and read its answer. */
static int
send_request(struct simsync_node *n, const char *hub_addr, const char *hub_id,
             const Simsync__KioskRegister *req, struct simsync_kiosk_result *r)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT, *in = NULL;
    struct link l;
    char why[256];
    int rc;

    rc = link_open(n, hub_addr, NULL, hub_id, &l);
    if (rc != SIMSYNC_OK) {
        kiosk_audit_local(n, "failed", r, n->err);
        return rc;
    }
    env.msg_case = SIMSYNC__ENVELOPE__MSG_KIOSK_REGISTER;
    env.kiosk_register = (Simsync__KioskRegister *)req;
    rc = node_send_env(l.ch, &env);
    why[0] = '\0';
    if (rc == SIMSYNC_OK)
        rc = recv_env(l.ch, &in, why, sizeof(why));
    if (rc == SIMSYNC_OK && in->msg_case != SIMSYNC__ENVELOPE__MSG_KIOSK_REPLY)
        rc = SIMSYNC_EPROTO;
    if (rc == SIMSYNC_OK) {
        r->subscriber_is_new = in->kiosk_reply->subscriber_is_new;
        r->notified = in->kiosk_reply->notified;
        kiosk_audit_local(n, "registered", r,
                          r->subscriber_is_new ? "new subscriber"
                                               : "known subscriber");
    } else {
        if (why[0] != '\0')
            node_fail(n, rc, "the hub refused the registration: %s", why);
        else
            node_fail(n, rc, "the registration at the hub failed: %s",
                      simsync_strerror(rc));
        kiosk_audit_local(n, rc == SIMSYNC_EREFUSED ? "refused" : "failed", r,
                          n->err);
    }
    if (in)
        simsync__envelope__free_unpacked(in, NULL);
    link_close(&l);
    return rc;
}

/* Check the PIN on the kiosk's SIM reader and read its subscriber. */
static int
sim_check(struct simsync_node *n, const char *file, const char *pin,
          char sub[SIM_SUBSCRIBER_BUF])
{
    struct sim *s;
    int rc = sim_open(file, &s);

    if (rc != SIMSYNC_OK)
        return node_fail(n, SIMSYNC_ENOSIM, "cannot read the SIM %s: %s", file,
                         simsync_strerror(rc));
    /* The SIM checks the PIN itself (3 tries, then blocked). */
    rc = sim_verify_pin(s, pin ? pin : "");
    if (rc == SIMSYNC_EINVAL)
        rc = SIMSYNC_EPIN;
    if (rc != SIMSYNC_OK) {
        struct sim_status st;
        int left = sim_status(s, &st) == SIMSYNC_OK ? st.pin_tries_left : 0;
        sim_close(s);
        if (rc == SIMSYNC_EBLOCKED)
            return node_fail(n, rc,
                             "the SIM is blocked; unblock it with 'simsync "
                             "sim unblock %s --puk PUK --new-pin PIN'",
                             file);
        return node_fail(n, rc, "the SIM refused the PIN (%d tr%s left)", left,
                         left == 1 ? "y" : "ies");
    }
    rc = sim_subscriber(s, sub, SIM_SUBSCRIBER_BUF);
    sim_close(s);
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc, "cannot read the subscriber ID from the SIM");
    return SIMSYNC_OK;
}

int
simsync_kiosk_register(struct simsync_node *n,
                       const struct simsync_kiosk_request *q,
                       struct simsync_kiosk_result *r)
{
    Simsync__KioskRegister req = SIMSYNC__KIOSK_REGISTER__INIT;
    struct kiosk_cred cred;
    char sub[SIM_SUBSCRIBER_BUF], tid[64];
    uint8_t pk[32], nonce[KIOSK_NONCE_BYTES], sig[64];
    int rc;

    memset(r, 0, sizeof(*r));
    n->err[0] = '\0';
    if (q == NULL || q->sim_file == NULL ||
        (q->save == NULL && (q->hub_addr == NULL || q->hub_id == NULL)) ||
        (q->terminal_peer != NULL) ==
            (q->terminal_id != NULL || q->node_key != NULL) ||
        (q->terminal_peer == NULL &&
         (q->terminal_id == NULL || q->node_key == NULL)))
        return node_fail(n, SIMSYNC_EINVAL,
                         "a kiosk registration needs the hub, the SIM, and "
                         "either the handset's link or its terminal ID and "
                         "node key");
    if (q->terminal_peer == NULL) {
        if (!tid_ok(q->terminal_id))
            return node_fail(n, SIMSYNC_EINVAL,
                             "--terminal-id must be 1-63 printable "
                             "characters without blanks");
        uint8_t xpk[32];
        if (crypt_hex_decode(pk, 32, q->node_key, strlen(q->node_key)) !=
            SIMSYNC_OK)
            return node_fail(n, SIMSYNC_EINVAL,
                             "--node-key must be 64 hex digits (the "
                             "handset shows it with 'simsync id --json')");
        /* Many typing mistakes give no valid key at all: catch them here
         * rather than at the handset's completion. */
        if (crypt_sign_pk_to_x25519(xpk, pk) != SIMSYNC_OK)
            return node_fail(n, SIMSYNC_EINVAL,
                             "--node-key is not a valid node key; check it "
                             "against 'simsync id --json' on the handset");
    }
    rc = cred_load(n, &cred);
    if (rc != SIMSYNC_OK)
        return rc;
    snprintf(r->kiosk, sizeof(r->kiosk), "%s", cred.name);
    if (q->hub_id != NULL && strcmp(q->hub_id, cred.hub_id) != 0) {
        crypt_wipe(&cred, sizeof(cred));
        return node_fail(n, SIMSYNC_EREFUSED,
                         "this kiosk's credential was issued by the hub %s, "
                         "not by %s",
                         cred.hub_id, q->hub_id);
    }
    /* FIG 19 S71-S73: the PIN, checked by the SIM, then its subscriber. */
    rc = sim_check(n, q->sim_file, q->pin, sub);
    if (rc == SIMSYNC_OK)
        mask_subscriber(sub, r->subscriber_masked);
    if (rc == SIMSYNC_OK && q->subscriber != NULL &&
        strcmp(q->subscriber, sub) != 0)
        rc = node_fail(n, SIMSYNC_EREFUSED,
                       "the SIM carries another subscriber than the one "
                       "typed (--subscriber); check the card and the number");
    if (rc != SIMSYNC_OK) {
        if (q->terminal_id != NULL)
            snprintf(r->terminal_id, sizeof(r->terminal_id), "%s",
                     q->terminal_id);
        kiosk_audit_local(n, "refused", r, n->err);
        crypt_wipe(&cred, sizeof(cred));
        return rc;
    }
    if (q->terminal_peer != NULL)
        rc = read_offer(n, q->terminal_peer, tid, sizeof(tid), pk);
    else
        snprintf(tid, sizeof(tid), "%s", q->terminal_id);
    if (rc != SIMSYNC_OK) {
        kiosk_audit_local(n, "failed", r, n->err);
        crypt_wipe(&cred, sizeof(cred));
        return rc;
    }
    snprintf(r->terminal_id, sizeof(r->terminal_id), "%s", tid);
    node_id_of(pk, r->node_id);
    crypt_random(nonce, sizeof(nonce));
    req.proto = SIMSYNC_PROTO_VERSION;
    req.kiosk = cred.name;
    req.subscriber = sub;
    req.terminal_id = tid;
    req.node_pk.data = pk;
    req.node_pk.len = 32;
    req.time_ms = node_now_ms();
    req.nonce.data = nonce;
    req.nonce.len = sizeof(nonce);
    req.signature.data = sig;
    req.signature.len = sizeof(sig);
    rc = kiosk_request_sign(&cred, cred.hub_id, &req);
    if (rc != SIMSYNC_OK) {
        crypt_wipe(&cred, sizeof(cred));
        return node_fail(n, rc, "cannot sign the registration");
    }
    if (q->save != NULL) {
        uint8_t *buf;
        size_t len;
        rc = record_pack(&req.base, &buf, &len);
        if (rc == SIMSYNC_OK) {
            rc = node_file_put(q->save, buf, len);
            free(buf);
        }
        if (rc != SIMSYNC_OK)
            rc = node_fail(n, rc, "cannot write the request to %s: %s", q->save,
                           simsync_strerror(rc));
        else {
            r->saved = 1;
            kiosk_audit_local(n, "saved", r, q->save);
        }
    } else {
        rc = send_request(n, q->hub_addr, cred.hub_id, &req, r);
    }
    crypt_wipe(&cred, sizeof(cred));
    crypt_wipe(sub, sizeof(sub));
    return rc;
}

int
simsync_kiosk_send(struct simsync_node *n, const char *hub_addr,
                   const char *hub_id, const char *file,
                   struct simsync_kiosk_result *r)
{
    Simsync__KioskRegister *req;
    struct kiosk_cred cred;
    uint8_t buf[SAVED_MAX];
    size_t len;
    int rc;

    memset(r, 0, sizeof(*r));
    n->err[0] = '\0';
    rc = cred_load(n, &cred);
    if (rc != SIMSYNC_OK)
        return rc;
    snprintf(r->kiosk, sizeof(r->kiosk), "%s", cred.name);
    if (hub_id != NULL && strcmp(hub_id, cred.hub_id) != 0) {
        crypt_wipe(&cred, sizeof(cred));
        return node_fail(n, SIMSYNC_EREFUSED,
                         "this kiosk's credential was issued by another hub "
                         "than %s",
                         hub_id);
    }
    rc = node_file_get(file, buf, sizeof(buf), &len);
    if (rc != SIMSYNC_OK) {
        crypt_wipe(&cred, sizeof(cred));
        return node_fail(n, rc, "cannot read the saved request %s: %s", file,
                         simsync_strerror(rc));
    }
    req = simsync__kiosk_register__unpack(NULL, len, buf);
    if (req == NULL || !pb_decoded_ok(&req->base) ||
        !tid_ok(req->terminal_id) || req->node_pk.len != 32 ||
        req->subscriber == NULL) {
        if (req)
            simsync__kiosk_register__free_unpacked(req, NULL);
        crypt_wipe(&cred, sizeof(cred));
        return node_fail(n, SIMSYNC_EPROTO,
                         "%s is not a saved kiosk registration", file);
    }
    snprintf(r->terminal_id, sizeof(r->terminal_id), "%s", req->terminal_id);
    node_id_of(req->node_pk.data, r->node_id);
    mask_subscriber(req->subscriber, r->subscriber_masked);
    rc = send_request(n, hub_addr, cred.hub_id, req, r);
    simsync__kiosk_register__free_unpacked(req, NULL);
    crypt_wipe(&cred, sizeof(cred));
    return rc;
}

/* ------------------------------------------------------------ own audit */

/* Copy the tab-ended field at *p into out (len bytes) and move past it. */
static void
take_field(const char **p, char *out, size_t len)
{
    size_t n = strcspn(*p, "\t\n");

    snprintf(out, len, "%.*s", (int)(n < len ? n : len - 1), *p);
    *p += n;
    if (**p == '\t')
        (*p)++;
}

int
simsync_kiosk_attempts(struct simsync_node *n,
                       struct simsync_kiosk_attempt **out, size_t *count)
{
    char path[PATH_MAX + 32], line[1024];
    struct simsync_kiosk_attempt *v = NULL;
    size_t cnt = 0, cap = 0;
    FILE *f;

    *out = NULL;
    *count = 0;
    n->err[0] = '\0';
    if (!is_kiosk(n))
        return node_fail(n, SIMSYNC_ESTATE, "this node is a %s, not a kiosk",
                         n->role);
    if (node_path_in(n, "kiosk.audit", path, sizeof(path)) != SIMSYNC_OK)
        return SIMSYNC_EINVAL;
    f = fopen(path, "re");
    if (f == NULL)
        return errno == ENOENT
                   ? SIMSYNC_OK
                   : node_fail(n, SIMSYNC_EIO, "cannot read %s", path);
    while (fgets(line, sizeof(line), f) != NULL) {
        struct simsync_kiosk_attempt *e;
        const char *p = line;
        char num[24];
        if (cnt == cap) {
            size_t nc = cap ? cap * 2 : 32;
            void *nv = realloc(v, nc * sizeof(*v));
            if (nv == NULL) {
                fclose(f);
                free(v);
                return SIMSYNC_ENOMEM;
            }
            v = nv;
            cap = nc;
        }
        e = &v[cnt];
        memset(e, 0, sizeof(*e));
        take_field(&p, num, sizeof(num));
        e->time_ms = strtoull(num, NULL, 10);
        take_field(&p, e->result, sizeof(e->result));
        take_field(&p, e->terminal_id, sizeof(e->terminal_id));
        take_field(&p, e->node_id, sizeof(e->node_id));
        take_field(&p, e->subscriber_masked, sizeof(e->subscriber_masked));
        take_field(&p, e->detail, sizeof(e->detail));
        if (e->time_ms != 0 && e->result[0] != '\0')
            cnt++; /* a damaged line is skipped */
    }
    fclose(f);
    *out = v;
    *count = cnt;
    return SIMSYNC_OK;
}
