/* hub.c -- the hub: accepts terminals, registers them, and syncs each
 * subscriber's ciphertext. It never holds a data key; subscriber IDs are
 * stored only as keyed hashes (the key, hub.pepper, never leaves the hub)
 * and are never logged.
 *
 * One thread per connection: LMDB serialises writers and lets readers run
 * alongside, and each connection's work is a sans-I/O session driven by
 * node_pump. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "crypt.h"
#include "hub_backup.h"
#include "hub_sched.h"
#include "kiosk.h"
#include "node.h"
#include "pbcheck.h"
#include "session.h"
#include "transport.h"

/* Connections served at once, at most; the open-file limit (raised to its
 * hard value at serve) may make it fewer: HUB_FD_RESERVE descriptors stay
 * for the store, the scheduler and the listener. */
#define HUB_MAX_CONNS 4096
#define HUB_FD_RESERVE 64
#define HUB_IDLE_DEFAULT_MS 120000

/* One accepted connection. Until its first message has arrived it is
 * *greeting*: it sits in the greeting list (oldest first), where the
 * accept loop closes it once it is older than the idle timeout, however
 * slowly it trickles bytes, or sooner when the hub is full and a new
 * client needs its place. Nobody authenticated is ever closed that way. */
struct hub_conn {
    struct simsync_node *n;
    struct conn *conn;
    long long accepted_ms;        /* mono_ms() at accept */
    int greeting;                 /* in the greeting list (hub_lock) */
    int cut;                      /* shut down by the accept loop */
    struct hub_conn *prev, *next; /* greeting list links (hub_lock) */
};

static pthread_mutex_t hub_lock = PTHREAD_MUTEX_INITIALIZER;
static int hub_active;
static struct hub_conn *greet_head, *greet_tail; /* under hub_lock */

/* A clock for deadlines that the wall clock's jumps do not move. */
static long long
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void hub_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Take hc out of the greeting list (hub_lock held). */
static void
greet_unlink(struct hub_conn *hc)
{
    if (!hc->greeting)
        return;
    if (hc->prev)
        hc->prev->next = hc->next;
    else
        greet_head = hc->next;
    if (hc->next)
        hc->next->prev = hc->prev;
    else
        greet_tail = hc->prev;
    hc->prev = hc->next = NULL;
    hc->greeting = 0;
}

/* Shut a greeting connection down: its thread's blocked read returns
 * SIMSYNC_ECLOSED, and the thread cleans up as after any failure
 * (hub_lock held, so the thread cannot have closed the conn yet). */
static void
greet_cut(struct hub_conn *hc)
{
    int fd = conn_pollfd(hc->conn);

    if (fd >= 0)
        (void)shutdown(fd, SHUT_RDWR);
    hc->cut = 1;
}

/* Cut greeting connections older than idle_ms; with `evict`, also the
 * oldest one not cut yet. Returns how many were cut, and logs it: the
 * client only sees its link closed. */
static int
greet_sweep(long long now, int idle_ms, int evict)
{
    int cut = 0, idle = 0;

    pthread_mutex_lock(&hub_lock);
    for (struct hub_conn *hc = greet_head; hc != NULL; hc = hc->next) {
        if (hc->cut)
            continue;
        if (now - hc->accepted_ms >= idle_ms) {
            greet_cut(hc);
            idle++;
        } else if (evict && idle == 0) {
            greet_cut(hc); /* no expired one made room: the oldest */
            cut++;
            evict = 0;
        } else {
            break; /* the rest are younger */
        }
    }
    pthread_mutex_unlock(&hub_lock);
    if (idle > 0)
        hub_log("closed %d connection%s silent for %d s before a first "
                "message",
                idle, idle == 1 ? "" : "s", idle_ms / 1000);
    if (cut > 0)
        hub_log("closed the oldest connection still greeting to make room "
                "for a new one");
    return idle + cut;
}

int
simsync_hub_set_idle_timeout(struct simsync_node *n, unsigned seconds)
{
    if (n == NULL || seconds == 0 || seconds > 86400)
        return SIMSYNC_EINVAL;
    n->hub_idle_ms = (int)seconds * 1000;
    return SIMSYNC_OK;
}

static int
idle_ms_of(const struct simsync_node *n)
{
    return n->hub_idle_ms > 0 ? n->hub_idle_ms : HUB_IDLE_DEFAULT_MS;
}

/* How many connections this process can hold: raise the soft open-file
 * limit to the hard one, keep HUB_FD_RESERVE for everything else. */
static int
conn_limit(void)
{
    struct rlimit rl;
    long long room;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 256;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t want = rl.rlim_max;

        if (want == RLIM_INFINITY || want > 65536)
            want = 65536;
        if (want > rl.rlim_cur) {
            struct rlimit up = {want, rl.rlim_max};

            if (setrlimit(RLIMIT_NOFILE, &up) == 0)
                rl.rlim_cur = want;
        }
    }
    room = rl.rlim_cur == RLIM_INFINITY
               ? HUB_MAX_CONNS
               : (long long)rl.rlim_cur - HUB_FD_RESERVE;
    if (room > HUB_MAX_CONNS)
        room = HUB_MAX_CONNS;
    return room < 16 ? 16 : (int)room;
}

static void hub_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
hub_log(const char *fmt, ...)
{
    va_list ap;

    const char *quiet = getenv("SIMSYNC_QUIET");

    if (quiet != NULL && *quiet != '\0')
        return;
    va_start(ap, fmt);
    fputs("hub: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Keyed hash of a subscriber ID: the hub's store key for it. */
void
hub_sub_key(const struct simsync_node *n, const char *subscriber,
            uint8_t out[SUB_BYTES])
{
    crypt_hash(out, SUB_BYTES, subscriber, strlen(subscriber), n->pepper, 32);
}

int
hub_sub_valid(const char *s)
{
    size_t len = s ? strlen(s) : 0;

    if (len < 5 || len > 15)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

int
hub_tid_valid(const char *s)
{
    size_t len = s ? strlen(s) : 0;

    if (len == 0 || len > 63)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] < 0x21 || s[i] > 0x7e)
            return 0;
    return 1;
}

size_t
hub_tid_key(uint8_t *key, const uint8_t sub[SUB_BYTES], const char *tid)
{
    size_t tl = strlen(tid);

    memcpy(key, sub, SUB_BYTES);
    memcpy(key + SUB_BYTES, tid, tl);
    return SUB_BYTES + tl;
}

static int
get_reg(struct simsync_node *n, const uint8_t sub[SUB_BYTES], const char *tid,
        Simsync__Registration **out)
{
    struct store_txn *txn;
    uint8_t key[SUB_BYTES + 64];
    size_t klen;
    const void *v;
    size_t vl;
    int rc;

    *out = NULL;
    klen = hub_tid_key(key, sub, tid);
    rc = store_txn_begin(n->st, 1, &txn);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_get(txn, STORE_REGISTRY, key, klen, &v, &vl);
    if (rc == SIMSYNC_OK) {
        *out = pb_unpack(&simsync__registration__descriptor, vl, v, &rc);
    }
    store_txn_abort(txn);
    return rc;
}

struct reg_write {
    const uint8_t *sub;
    const Simsync__Registration *reg;
    const Simsync__SubscriberRecord *subrec; /* NULL: keep existing */
};

static int
reg_write_fn(struct store_txn *txn, void *arg)
{
    struct reg_write *w = arg;
    uint8_t key[SUB_BYTES + 64], *buf;
    size_t klen, len;
    int rc;

    if (w->subrec != NULL) {
        rc = record_pack(&w->subrec->base, &buf, &len);
        if (rc != SIMSYNC_OK)
            return rc;
        rc = store_put(txn, STORE_SUBS, w->sub, SUB_BYTES, buf, len);
        free(buf);
        if (rc != SIMSYNC_OK)
            return rc;
    }
    klen = hub_tid_key(key, w->sub, w->reg->terminal_id);
    rc = record_pack(&w->reg->base, &buf, &len);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_put(txn, STORE_REGISTRY, key, klen, buf, len);
    free(buf);
    return rc;
}

static int
hub_register(struct simsync_node *n, struct chan *ch,
             const Simsync__Register *req, const uint8_t peer_pk[32])
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT, *in = NULL;
    Simsync__RegisterReply rep = SIMSYNC__REGISTER_REPLY__INIT;
    Simsync__RegisterDone done = SIMSYNC__REGISTER_DONE__INIT;
    Simsync__SubscriberRecord *subrec = NULL,
                              newsub = SIMSYNC__SUBSCRIBER_RECORD__INIT;
    Simsync__Registration *old = NULL, reg = SIMSYNC__REGISTRATION__INIT;
    uint8_t sub[SUB_BYTES];
    char kiosk[64] = "";
    struct store_txn *txn;
    const void *v;
    size_t vl;
    int rc;

    if (!hub_sub_valid(req->subscriber) || !hub_tid_valid(req->terminal_id) ||
        req->password_hash == NULL ||
        (strlen(req->password_hash) == 0 && !req->kiosk) ||
        strlen(req->password_hash) >= 128 || req->n_classes > CLS_COUNT) {
        node_send_error(ch, SIMSYNC_EPROTO, "malformed registration");
        return SIMSYNC_EPROTO;
    }
    hub_sub_key(n, req->subscriber, sub);
    rc = get_reg(n, sub, req->terminal_id, &old);
    if (rc == SIMSYNC_OK && (old->node_pk.len != 32 ||
                             !crypt_equal(old->node_pk.data, peer_pk, 32))) {
        simsync__registration__free_unpacked(old, NULL);
        hub_log("registration refused: terminal id taken by another key");
        node_send_error(ch, SIMSYNC_EREFUSED,
                        "this terminal ID is registered with another key");
        return SIMSYNC_EREFUSED;
    }
    /* Without a password, only a binding a kiosk made for exactly this
     * subscriber, terminal ID and node key can be completed (FIG 19). */
    if (req->kiosk && (old == NULL || old->kiosk[0] == '\0')) {
        if (old)
            simsync__registration__free_unpacked(old, NULL);
        hub_log("registration refused: terminal %s has no kiosk binding",
                req->terminal_id);
        node_send_error(ch, SIMSYNC_EREFUSED,
                        "no kiosk registration for this terminal and key");
        return SIMSYNC_EREFUSED;
    }
    if (old != NULL && old->kiosk[0] != '\0')
        snprintf(kiosk, sizeof(kiosk), "%s", old->kiosk);
    if (old)
        simsync__registration__free_unpacked(old, NULL);
    rc = store_txn_begin(n->st, 1, &txn);
    if (rc != SIMSYNC_OK)
        return rc;
    if (store_get(txn, STORE_SUBS, sub, SUB_BYTES, &v, &vl) == SIMSYNC_OK)
        subrec = simsync__subscriber_record__unpack(NULL, vl, v);
    store_txn_abort(txn);
    rep.subscriber_is_new = subrec == NULL;
    if (subrec != NULL) {
        rep.recovery_salt = subrec->recovery_salt;
        rep.recovery_wrap = subrec->recovery_wrap;
        rep.key_check = subrec->key_check;
    }
    env.msg_case = SIMSYNC__ENVELOPE__MSG_REGISTER_REPLY;
    env.register_reply = &rep;
    rc = node_send_env(ch, &env);
    if (rc == SIMSYNC_OK)
        rc = node_recv_env(ch, (void **)&in);
    if (rc == SIMSYNC_OK &&
        (in->msg_case != SIMSYNC__ENVELOPE__MSG_REGISTER_KEYS ||
         in->register_keys->wrapped_key.len == 0 ||
         in->register_keys->wrapped_key.len > 256 ||
         in->register_keys->key_proof.len != 64 ||
         (subrec == NULL && (in->register_keys->verifier_pk.len != 32 ||
                             in->register_keys->recovery_salt.len != 16 ||
                             in->register_keys->recovery_wrap.len == 0 ||
                             in->register_keys->recovery_wrap.len > 256 ||
                             in->register_keys->key_check.len != 32))))
        rc = SIMSYNC_EPROTO;
    if (rc == SIMSYNC_OK) {
        /* The terminal must hold the subscriber's data key: it signed this
         * session's handshake hash with the key derived from it. */
        const ProtobufCBinaryData *vpk =
            subrec ? &subrec->verifier_pk : &in->register_keys->verifier_pk;
        uint8_t hh[64];
        rc = chan_handshake_hash(ch, hh);
        if (rc == SIMSYNC_OK &&
            (vpk->len != 32 ||
             crypt_verify(in->register_keys->key_proof.data, hh, sizeof(hh),
                          vpk->data) != SIMSYNC_OK)) {
            hub_log("registration refused: no proof of the subscriber key");
            node_send_error(ch, SIMSYNC_EREFUSED,
                            "the terminal did not prove it holds the "
                            "subscriber's key");
            rc = SIMSYNC_EREFUSED;
        }
    }
    if (rc == SIMSYNC_OK) {
        struct reg_write w = {sub, &reg, NULL};
        reg.terminal_id = req->terminal_id;
        reg.node_pk.data = (uint8_t *)peer_pk;
        reg.node_pk.len = 32;
        reg.password_hash = req->password_hash;
        reg.classes = req->classes;
        reg.n_classes = req->n_classes;
        reg.registered_ms = node_now_ms();
        reg.wrapped_key = in->register_keys->wrapped_key;
        reg.kiosk = kiosk;
        if (subrec == NULL) {
            newsub.recovery_salt = in->register_keys->recovery_salt;
            newsub.recovery_wrap = in->register_keys->recovery_wrap;
            newsub.key_check = in->register_keys->key_check;
            newsub.verifier_pk = in->register_keys->verifier_pk;
            newsub.created_ms = reg.registered_ms;
            w.subrec = &newsub;
        }
        rc = store_write(n->st, reg_write_fn, &w);
    }
    if (rc == SIMSYNC_OK) {
        simsync__envelope__init(&env);
        env.msg_case = SIMSYNC__ENVELOPE__MSG_REGISTER_DONE;
        env.register_done = &done;
        rc = node_send_env(ch, &env);
        hub_log("registered terminal %s (%s subscriber%s)", req->terminal_id,
                subrec ? "known" : "new",
                req->kiosk ? ", completing a kiosk registration" : "");
    } else if (rc == SIMSYNC_EPROTO) {
        node_send_error(ch, rc, "malformed registration keys");
    }
    if (in)
        simsync__envelope__free_unpacked(in, NULL);
    if (subrec)
        simsync__subscriber_record__free_unpacked(subrec, NULL);
    return rc;
}

/* How the log names a session of op: "upload from terminal X", ... */
static const char *
session_verb(Simsync__Op op)
{
    return op == SIMSYNC__OP__OP_UPLOAD     ? "upload from"
           : op == SIMSYNC__OP__OP_DOWNLOAD ? "download to"
                                            : "sync";
}

/* Tombstone purging before a sync: the horizon of each class is what
 * every terminal registered for the subscriber acknowledged (a terminal
 * that does not sync a class acknowledges nothing of it, which holds the
 * class's tombstones back). The hub purges under it and announces it. */
struct purge_arg {
    struct replica *r;
    uint32_t mask;
    struct vv *hz;
    uint64_t purged;
};

static int
purge_fn(struct store_txn *txn, void *arg)
{
    struct purge_arg *a = arg;
    struct store_cursor *cur;
    uint64_t *slots = NULL;
    size_t n = 0, cap = 0;
    const uint8_t *k, *v;
    size_t kl, vl;
    int rc;

    a->purged = 0;
    rc = store_cursor_open(txn, STORE_REGISTRY, &cur);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_cursor_seek(cur, a->r->sub, SUB_BYTES, (const void **)&k, &kl,
                           (const void **)&v, &vl);
    while (rc == SIMSYNC_OK && kl > SUB_BYTES &&
           memcmp(k, a->r->sub, SUB_BYTES) == 0) {
        Simsync__Registration *reg =
            pb_unpack(&simsync__registration__descriptor, vl, v, &rc);
        if (reg == NULL) {
            break;
        }
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 8;
            uint64_t *ns = realloc(slots, nc * sizeof(*ns));
            if (ns == NULL)
                rc = SIMSYNC_ENOMEM;
            else {
                slots = ns;
                cap = nc;
            }
        }
        if (rc == SIMSYNC_OK && reg->node_pk.len == 32)
            slots[n++] = session_ack_peer(node_peer_of(reg->node_pk.data));
        simsync__registration__free_unpacked(reg, NULL);
        if (rc == SIMSYNC_OK)
            rc = store_cursor_next(cur, (const void **)&k, &kl,
                                   (const void **)&v, &vl);
    }
    store_cursor_close(cur);
    if (rc == SIMSYNC_ENOTFOUND)
        rc = SIMSYNC_OK;
    for (int c = 0; rc == SIMSYNC_OK && c < CLS_COUNT; c++) {
        uint64_t p = 0;
        if (!(a->mask & (1u << c)))
            continue;
        rc = replica_horizon(a->r, txn, c, slots, n, &a->hz[c]);
        if (rc == SIMSYNC_OK)
            rc = replica_purge(a->r, txn, c, &a->hz[c], &p);
        a->purged += p;
    }
    free(slots);
    return rc;
}

static int
hub_sync(struct simsync_node *n, struct chan *ch, struct conn *conn,
         const Simsync__Hello *h, const uint8_t peer_pk[32])
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__HelloReply rep = SIMSYNC__HELLO_REPLY__INIT;
    Simsync__Registration *reg = NULL;
    struct replica r;
    struct session *s = NULL;
    struct session_cfg cfg = {0};
    struct vv hz[CLS_COUNT];
    struct purge_arg pa;
    uint32_t classes[CLS_COUNT], ncls = 0, mask = 0;
    uint64_t notices_sent;
    int rc;

    if (h->proto != SIMSYNC_PROTO_VERSION) {
        node_send_error(ch, SIMSYNC_EPROTO, "unsupported protocol version");
        return SIMSYNC_EPROTO;
    }
    if (!hub_sub_valid(h->subscriber) || !hub_tid_valid(h->terminal_id)) {
        node_send_error(ch, SIMSYNC_EPROTO, "malformed hello");
        return SIMSYNC_EPROTO;
    }
    memset(&r, 0, sizeof(r));
    hub_sub_key(n, h->subscriber, r.sub);
    /* FIG 13/14: subscriber + terminal ID + node key must match a
     * registration. */
    rc = get_reg(n, r.sub, h->terminal_id, &reg);
    if (rc != SIMSYNC_OK || reg->node_pk.len != 32 ||
        !crypt_equal(reg->node_pk.data, peer_pk, 32)) {
        if (reg)
            simsync__registration__free_unpacked(reg, NULL);
        hub_log("sync refused for terminal %s: no matching registration",
                h->terminal_id);
        node_send_error(ch, SIMSYNC_EREFUSED,
                        "terminal not registered for this subscriber");
        return SIMSYNC_EREFUSED;
    }
    simsync__registration__free_unpacked(reg, NULL);
    for (size_t i = 0; i < h->n_classes && i < CLS_COUNT; i++)
        if (h->classes[i] < CLS_COUNT && !(mask & (1u << h->classes[i]))) {
            mask |= 1u << h->classes[i];
            classes[ncls++] = h->classes[i];
        }
    rep.proto = SIMSYNC_PROTO_VERSION;
    rep.classes = classes;
    rep.n_classes = ncls;
    rc = hub_hello_extras(n, r.sub, h, &rep);
    if (rc != SIMSYNC_OK) {
        node_send_error(ch, rc, "the hub cannot read its store");
        return rc;
    }
    notices_sent = h->notices_seen;
    for (size_t i = 0; i < rep.n_notices; i++)
        if (rep.notices[i]->seq > notices_sent)
            notices_sent = rep.notices[i]->seq;
    env.msg_case = SIMSYNC__ENVELOPE__MSG_HELLO_REPLY;
    env.hello_reply = &rep;
    rc = node_send_env(ch, &env);
    hub_hello_extras_free(&rep);
    if (rc != SIMSYNC_OK)
        return rc;
    if (h->op != SIMSYNC__OP__OP_SYNC && h->op != SIMSYNC__OP__OP_UPLOAD &&
        h->op != SIMSYNC__OP__OP_DOWNLOAD) {
        uint64_t gen = 0;
        switch (h->op) {
        case SIMSYNC__OP__OP_BACKUP:
            hub_gc_enter();
            rc = hub_backup(n, ch, r.sub, h->terminal_id, &gen);
            hub_gc_leave();
            hub_log("backup from terminal %s: %s, generation %llu",
                    h->terminal_id, simsync_strerror(rc),
                    (unsigned long long)gen);
            if (rc == SIMSYNC_OK && h->next_backup_in_ms > 0)
                rc = hub_sched_next_in(n, r.sub, h->terminal_id,
                                       h->next_backup_in_ms);
            return rc;
        case SIMSYNC__OP__OP_GENERATIONS:
            return hub_generations(n, ch, r.sub);
        case SIMSYNC__OP__OP_FETCH:
            return hub_fetch(n, ch, r.sub);
        case SIMSYNC__OP__OP_CONTROL:
            hub_log("terminal %s connected for backup requests",
                    h->terminal_id);
            rc = hub_control(n, ch, conn, r.sub, h, notices_sent);
            hub_log("terminal %s disconnected: %s", h->terminal_id,
                    simsync_strerror(rc));
            return rc;
        case SIMSYNC__OP__OP_HISTORY:
            return hub_history(n, ch, r.sub);
        case SIMSYNC__OP__OP_FORGET:
            return hub_forget(n, ch, r.sub, h->terminal_id);
        case SIMSYNC__OP__OP_RESTORE_JOB:
            return hub_restore_job(n, ch, r.sub, h->terminal_id);
        case SIMSYNC__OP__OP_UNREGISTER:
            return hub_unregister(n, ch, r.sub, h->terminal_id);
        default:
            node_send_error(ch, SIMSYNC_EPROTO, "unknown operation");
            return SIMSYNC_EPROTO;
        }
    }
    r.st = n->st;
    r.trusted = 0;
    r.now_ms = node_now_ms();
    cfg.r = &r;
    cfg.classes = mask;
    cfg.peer = node_peer_of(peer_pk);
    cfg.initiator = 0;
    /* A terminal's upload-only sync is this side's receive phase alone. */
    cfg.batch_bytes = h->batch_bytes; /* the session caps it */
    cfg.dirs = h->op == SIMSYNC__OP__OP_UPLOAD     ? SESSION_RECV_ONLY
               : h->op == SIMSYNC__OP__OP_DOWNLOAD ? SESSION_SEND_ONLY
                                                   : SESSION_BOTH;
    for (int c = 0; c < CLS_COUNT; c++)
        hz[c] = (struct vv)VV_INIT;
    pa = (struct purge_arg){&r, mask, hz, 0};
    rc = store_write(n->st, purge_fn, &pa);
    cfg.horizon = rc == SIMSYNC_OK ? hz : NULL;
    rc = session_new(&cfg, &s);
    if (rc != SIMSYNC_OK) {
        /* Said to the terminal, which would otherwise only see its link
         * closed, and kept here. */
        hub_log("%s terminal %s: cannot start: %s", session_verb(h->op),
                h->terminal_id, session_start_why(rc));
        node_send_error(ch, rc, session_start_why(rc));
    }
    hub_gc_enter();
    if (rc == SIMSYNC_OK)
        rc = node_pump(ch, s);
    hub_gc_leave();
    if (s != NULL) {
        const struct session_stats *st = session_get_stats(s);
        hub_log("%s terminal %s: %s; received %llu, sent %llu changes, "
                "purged %llu tombstones",
                session_verb(h->op), h->terminal_id, simsync_strerror(rc),
                (unsigned long long)st->recv_items,
                (unsigned long long)st->sent_items,
                (unsigned long long)pa.purged);
        if (st->apply.applied > 0)
            hub_changes_announce(r.sub, h->terminal_id);
    }
    session_free(s);
    for (int c = 0; c < CLS_COUNT; c++)
        vv_free(&hz[c]);
    return rc;
}

/* A shop kiosk's registration (hub_kiosk.c), logged without the
 * subscriber. */
static int
hub_kiosk(struct simsync_node *n, struct chan *ch,
          const Simsync__KioskRegister *req)
{
    int rc = hub_kiosk_register(n, ch, req);

    hub_log("kiosk registration of terminal %s: %s",
            hub_tid_valid(req->terminal_id) ? req->terminal_id : "?",
            simsync_strerror(rc));
    return rc;
}

/* After a failure the hub has queued an Error frame, but the peer may be
 * in the middle of sending a batch of chunks: closing with its data
 * unread would reset the connection and the peer would see "link closed"
 * instead of the reason. So: no more sending (FIN after the Error), then
 * read and drop what still comes, for at most HUB_DRAIN_MS or
 * HUB_DRAIN_BYTES, until the peer closes. */
#define HUB_DRAIN_MS 5000
#define HUB_DRAIN_BYTES (32u << 20)

static void
drain_before_close(struct conn *c)
{
    uint8_t buf[16384];
    long long end = mono_ms() + HUB_DRAIN_MS;
    size_t total = 0;
    int fd = conn_pollfd(c);

    if (fd < 0 || shutdown(fd, SHUT_WR) != 0)
        return;
    while (total < HUB_DRAIN_BYTES) {
        long long left = end - mono_ms();
        size_t n = 0;

        if (left <= 0)
            break;
        conn_set_timeout(c, (int)left);
        if (conn_recv(c, buf, sizeof(buf), &n) != SIMSYNC_OK || n == 0)
            break;
        total += n;
    }
}

static void *
hub_conn_main(void *arg)
{
    struct hub_conn *hc = arg;
    struct chan *ch = NULL;
    Simsync__Envelope *env = NULL;
    uint8_t pk[32];
    int rc;

    conn_set_timeout(hc->conn, idle_ms_of(hc->n));
    rc = chan_handshake(hc->conn, 0, &hc->n->ident, NULL, &ch);
    if (rc == SIMSYNC_OK)
        rc = chan_peer_key(ch, pk);
    if (rc == SIMSYNC_OK)
        rc = node_recv_env(ch, (void **)&env);
    pthread_mutex_lock(&hub_lock);
    greet_unlink(hc);
    if (hc->cut && rc != SIMSYNC_OK)
        rc = SIMSYNC_ETIMEOUT; /* cut by the accept loop */
    pthread_mutex_unlock(&hub_lock);
    if (rc == SIMSYNC_OK) {
        if (env->msg_case == SIMSYNC__ENVELOPE__MSG_HELLO)
            rc = hub_sync(hc->n, ch, hc->conn, env->hello, pk);
        else if (env->msg_case == SIMSYNC__ENVELOPE__MSG_REGISTER)
            rc = hub_register(hc->n, ch, env->register_, pk);
        else if (env->msg_case == SIMSYNC__ENVELOPE__MSG_KIOSK_REGISTER)
            rc = hub_kiosk(hc->n, ch, env->kiosk_register);
        else
            node_send_error(ch, SIMSYNC_EPROTO, "expected hello or register");
    } else if (rc != SIMSYNC_ECLOSED && rc != SIMSYNC_ETIMEOUT) {
        hub_log("connection failed: %s", simsync_strerror(rc));
    }
    if (env)
        simsync__envelope__free_unpacked(env, NULL);
    if (rc != SIMSYNC_OK && rc != SIMSYNC_ECLOSED && rc != SIMSYNC_ETIMEOUT &&
        ch != NULL)
        drain_before_close(hc->conn);
    chan_free(ch);
    conn_close(hc->conn);
    free(hc);
    pthread_mutex_lock(&hub_lock);
    hub_active--;
    pthread_mutex_unlock(&hub_lock);
    return NULL;
}

/* Count the entries of a whole database; fn (may be NULL) sees each. */
static int
count_db(struct store_txn *txn, enum store_db db,
         void (*fn)(const void *v, size_t vl, struct simsync_hub_stats *),
         struct simsync_hub_stats *st, uint64_t *count)
{
    struct store_cursor *cur;
    const void *k, *v;
    size_t kl, vl;
    int rc = store_cursor_open(txn, db, &cur);

    *count = 0;
    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_cursor_seek(cur, "", 0, &k, &kl, &v, &vl);
    while (rc == SIMSYNC_OK) {
        (*count)++;
        if (fn != NULL)
            fn(v, vl, st);
        rc = store_cursor_next(cur, &k, &kl, &v, &vl);
    }
    store_cursor_close(cur);
    return rc == SIMSYNC_ENOTFOUND ? SIMSYNC_OK : rc;
}

static void
stat_item(const void *v, size_t vl, struct simsync_hub_stats *st)
{
    Simsync__ItemRecord *rec = simsync__item_record__unpack(NULL, vl, v);

    if (rec == NULL)
        return;
    if (rec->n_versions > 1)
        st->siblings++;
    else if (rec->n_versions == 1 && !rec->versions[0]->deleted)
        st->items++;
    item_record_free(rec);
}

static void
stat_chunk(const void *v, size_t vl, struct simsync_hub_stats *st)
{
    (void)v;
    st->chunk_bytes += vl;
}

int
simsync_hub_stats(struct simsync_node *n, struct simsync_hub_stats *out)
{
    struct store_txn *txn;
    uint64_t all;
    int rc;

    memset(out, 0, sizeof(*out));
    if (strcmp(n->role, "hub") != 0)
        return node_fail(n, SIMSYNC_ESTATE, "this node is a %s, not a hub",
                         n->role);
    rc = store_txn_begin(n->st, 1, &txn);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = count_db(txn, STORE_SUBS, NULL, out, &out->subscribers);
    if (rc == SIMSYNC_OK)
        rc = count_db(txn, STORE_REGISTRY, NULL, out, &out->terminals);
    if (rc == SIMSYNC_OK)
        rc = count_db(txn, STORE_ITEMS, stat_item, out, &all);
    if (rc == SIMSYNC_OK)
        rc = count_db(txn, STORE_TOMBS, NULL, out, &out->tombstones);
    if (rc == SIMSYNC_OK)
        rc = count_db(txn, STORE_CHUNKS, stat_chunk, out, &out->chunks);
    store_txn_abort(txn);
    return rc;
}

int
simsync_hub_serve(struct simsync_node *n, const char *listen_addr,
                  volatile int *stop, char *bound_addr, size_t bound_len)
{
    struct listener *l;
    char addr[128];
    int rc, max_conns;

    if (strcmp(n->role, "hub") != 0)
        return node_fail(n, SIMSYNC_ESTATE,
                         "this node is a %s; serve from a node made with "
                         "'simsync init --role hub'",
                         n->role);
    rc = transport_tcp.listen(listen_addr, &l);
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc, "cannot listen on %s: %s", listen_addr,
                         simsync_strerror(rc));
    rc = hub_sched_start(n, stop);
    if (rc != SIMSYNC_OK) {
        listener_close(l);
        return node_fail(n, rc, "cannot start the backup scheduler");
    }
    listener_addr(l, addr, sizeof(addr));
    if (bound_addr != NULL)
        snprintf(bound_addr, bound_len, "%s", addr);
    max_conns = conn_limit();
    hub_log("listening on %s", addr);
    hub_log("up to %d connections, idle timeout %d s", max_conns,
            idle_ms_of(n) / 1000);
    while (!*stop) {
        struct pollfd pfd = {listener_pollfd(l), POLLIN, 0};
        struct hub_conn *hc;
        pthread_t th;
        pthread_attr_t attr;
        struct conn *c;
        int full;

        (void)greet_sweep(mono_ms(), idle_ms_of(n), 0);
        if (poll(&pfd, 1, 200) <= 0)
            continue;
        rc = listener_accept(l, &c);
        if (rc != SIMSYNC_OK) {
            /* Out of descriptors (or a transient error): make room by
             * dropping the oldest greeting connection, and do not spin. */
            (void)greet_sweep(mono_ms(), idle_ms_of(n), 1);
            usleep(10000);
            continue;
        }
        pthread_mutex_lock(&hub_lock);
        full = hub_active >= max_conns;
        pthread_mutex_unlock(&hub_lock);
        /* Full: a connection still greeting gives up its place; when
         * every place is held by authenticated peers, the new one waits
         * for the next try. */
        if (full && greet_sweep(mono_ms(), idle_ms_of(n), 1) == 0) {
            conn_close(c);
            continue;
        }
        hc = calloc(1, sizeof(*hc));
        if (hc == NULL) {
            conn_close(c);
            continue;
        }
        hc->n = n;
        hc->conn = c;
        hc->accepted_ms = mono_ms();
        pthread_mutex_lock(&hub_lock);
        hub_active++;
        hc->greeting = 1;
        hc->prev = greet_tail;
        if (greet_tail)
            greet_tail->next = hc;
        else
            greet_head = hc;
        greet_tail = hc;
        pthread_mutex_unlock(&hub_lock);
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 1u << 20);
        if (pthread_create(&th, &attr, hub_conn_main, hc) != 0) {
            pthread_mutex_lock(&hub_lock);
            greet_unlink(hc);
            hub_active--;
            pthread_mutex_unlock(&hub_lock);
            conn_close(c);
            free(hc);
        }
        pthread_attr_destroy(&attr);
    }
    listener_close(l);
    hub_sched_stop();
    /* Let running sessions finish before the store goes away. */
    for (int i = 0; i < 300; i++) {
        int active;
        pthread_mutex_lock(&hub_lock);
        active = hub_active;
        pthread_mutex_unlock(&hub_lock);
        if (active == 0)
            break;
        usleep(100000);
    }
    hub_log("stopped");
    return SIMSYNC_OK;
}
