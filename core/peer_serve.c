/* peer_serve.c -- the accepting side of syncs between trusted peers: a
 * registered terminal or desktop serves the subscriber's other paired
 * nodes, as the hub serves terminals, but as a trusted replica.
 *
 * One thread accepts and serves one connection at a time. Sessions block
 * on the channel (the sans-I/O session is pumped by node_pump), so they
 * cannot run inside the daemon's poll loop without stalling it; a thread
 * of its own lets `simsync serve` and the daemon (`--listen`) share this
 * code unchanged. One session at a time is plenty for one person's
 * terminals; a connection that stalls is dropped after the inactivity
 * timeout.
 *
 * Threads: the server thread uses the node's store, identity, subscriber,
 * terminal ID and classes, which nobody changes while it runs, and a copy
 * of the replica made by peer_serve_start (the subscriber's data keys). It
 * never writes the node's error text, which the daemon's threads use; it
 * reports through its log callback. A session here runs alongside the
 * daemon's own syncs like two `simsync sync` processes on one home: LMDB
 * serialises the writes, and every write re-checks the files it decides
 * on inside its transaction. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypt.h"
#include "folder.h"
#include "link.h"
#include "peer.h"
#include "session.h"
#include "transport.h"

#define SERVE_HELLO_MS 10000   /* handshake and Hello from a new connection */
#define SERVE_SESSION_MS 60000 /* inactivity within a session */

struct peer_server {
    struct simsync_node *n; /* borrowed */
    struct replica tmpl;    /* keys, store, subscriber, folder (wiped) */
    struct listener *l[PEER_SERVE_MAX]; /* owned */
    size_t nl;
    char addr_at[PEER_SERVE_MAX][128]; /* each listener's bound address */
    pthread_t th;
    atomic_int stop;
    char addr[PEER_SERVE_MAX * 130]; /* all of them, ", " between */
    struct peer_serve_hooks hooks;
};

static void serve_log(struct peer_server *ps, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
serve_log(struct peer_server *ps, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    if (ps->hooks.log == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    ps->hooks.log(ps->hooks.arg, line);
}

/* Check the Hello of a paired peer. Returns SIMSYNC_OK, or an error after
 * telling the peer. */
static int
check_hello(struct peer_server *ps, struct chan *ch, const Simsync__Hello *h,
            const Simsync__PeerRecord *rec)
{
    const struct simsync_node *n = ps->n;

    if (h->proto != SIMSYNC_PROTO_VERSION) {
        node_send_error(ch, SIMSYNC_EPROTO, "unsupported protocol version");
        return SIMSYNC_EPROTO;
    }
    if (h->subscriber == NULL || strcmp(h->subscriber, n->subscriber) != 0 ||
        h->terminal_id == NULL ||
        strcmp(h->terminal_id, rec->terminal_id) != 0) {
        node_send_error(ch, SIMSYNC_EREFUSED,
                        "hello does not match the paired node");
        return SIMSYNC_EREFUSED;
    }
    if (h->op != SIMSYNC__OP__OP_SYNC && h->op != SIMSYNC__OP__OP_UPLOAD &&
        h->op != SIMSYNC__OP__OP_DOWNLOAD) {
        node_send_error(ch, SIMSYNC_ESTATE,
                        "a paired node serves syncs only; backups and "
                        "restores go through the hub");
        return SIMSYNC_ESTATE;
    }
    return SIMSYNC_OK;
}

/* The session with a paired peer that said Hello: scan, HelloReply, then
 * the two phases with this node as responder. */
static int
serve_session(struct peer_server *ps, struct conn *c, struct chan *ch,
              const Simsync__Hello *h, const uint8_t pk[32],
              const Simsync__PeerRecord *rec)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__HelloReply rep = SIMSYNC__HELLO_REPLY__INIT;
    struct session_cfg cfg;
    struct session *s = NULL;
    struct scan_stats ss;
    struct replica r = ps->tmpl;
    uint32_t classes[CLS_COUNT], ncls = 0, mask = 0;
    int rc;

    for (size_t i = 0; i < h->n_classes && i < CLS_COUNT; i++) {
        uint32_t cl = h->classes[i];
        if (cl < CLS_COUNT && (ps->n->classes & (1u << cl)) &&
            !(mask & (1u << cl))) {
            mask |= 1u << cl;
            classes[ncls++] = cl;
        }
    }
    /* This node's own edits must be recorded before it sends (and before
     * an incoming version of the same item is applied). */
    r.now_ms = node_now_ms();
    rc = folder_scan(&r, ps->n->classes, 0, &ss);
    if (rc == SIMSYNC_EMASSDEL) {
        node_send_error(ch, rc,
                        "the serving node's scan stopped at the "
                        "mass-delete guard");
        serve_log(ps,
                  "sync with %s refused: the class folders here would lose "
                  "%llu items at once; confirm with 'simsync sync "
                  "--allow-delete'",
                  rec->terminal_id, (unsigned long long)ss.guarded);
        keys_wipe(&r.keys);
        return rc;
    }
    if (rc != SIMSYNC_OK) {
        node_send_error(ch, rc, "the serving node cannot scan its folders");
        serve_log(ps, "sync with %s failed: scanning %s: %s", rec->terminal_id,
                  r.data_dir, simsync_strerror(rc));
        return rc;
    }
    rep.proto = SIMSYNC_PROTO_VERSION;
    rep.classes = classes;
    rep.n_classes = ncls;
    /* Packed batches when the peer offers them (and this node has them
     * on): both hold the data key, and the channel protects the batch. */
    if ((h->features & SIMSYNC__FEATURE__FEATURE_PACKED) && peer_pack_enabled())
        rep.features = SIMSYNC__FEATURE__FEATURE_PACKED;
    env.msg_case = SIMSYNC__ENVELOPE__MSG_HELLO_REPLY;
    env.hello_reply = &rep;
    rc = node_send_env(ch, &env);
    if (rc != SIMSYNC_OK) {
        keys_wipe(&r.keys);
        return rc;
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg.r = &r;
    cfg.classes = mask;
    cfg.peer = node_peer_of(pk);
    cfg.initiator = 0;
    cfg.horizon = NULL; /* only the hub knows every terminal's acks */
    cfg.packed = rep.features != 0;
    cfg.dirs = h->op == SIMSYNC__OP__OP_UPLOAD     ? SESSION_RECV_ONLY
               : h->op == SIMSYNC__OP__OP_DOWNLOAD ? SESSION_SEND_ONLY
                                                   : SESSION_BOTH;
    r.now_ms = node_now_ms();
    conn_set_timeout(c, SERVE_SESSION_MS);
    rc = session_new(&cfg, &s);
    if (rc != SIMSYNC_OK) {
        serve_log(ps, "sync with %s: cannot start: %s", rec->terminal_id,
                  session_start_why(rc));
        node_send_error(ch, rc, session_start_why(rc));
    }
    if (rc == SIMSYNC_OK)
        rc = node_pump(ch, s);
    if (s != NULL) {
        const struct session_stats *st = session_get_stats(s);
        /* Committed batches stay even when the session failed later. */
        if (st->apply.applied > 0 && ps->hooks.applied != NULL)
            ps->hooks.applied(ps->hooks.arg, st->apply.applied);
        serve_log(ps,
                  "sync with %s: %s; received %llu, sent %llu changes, "
                  "%llu applied, %llu conflicts",
                  rec->terminal_id,
                  rc == SIMSYNC_OK ? "ok" : simsync_strerror(rc),
                  (unsigned long long)st->recv_items,
                  (unsigned long long)st->sent_items,
                  (unsigned long long)st->apply.applied,
                  (unsigned long long)st->apply.conflicts);
    }
    session_free(s);
    if (rc == SIMSYNC_OK)
        rc = peer_touch(ps->n->st, r.sub, pk, NULL);
    keys_wipe(&r.keys);
    return rc;
}

/* One connection, start to end. */
static void
serve_conn(struct peer_server *ps, struct conn *c)
{
    Simsync__Envelope *env = NULL;
    Simsync__PeerRecord *rec = NULL;
    struct chan *ch = NULL;
    uint8_t pk[32];
    char id[NODE_ID_LEN];
    int rc;

    conn_set_timeout(c, SERVE_HELLO_MS);
    rc = chan_handshake(c, 0, &ps->n->ident, NULL, &ch);
    if (rc == SIMSYNC_OK)
        rc = chan_peer_key(ch, pk);
    /* Read the first message before answering anything, so that a
     * refusal is not lost to a reset of unread data. */
    if (rc == SIMSYNC_OK)
        rc = node_recv_env(ch, (void **)&env);
    if (rc != SIMSYNC_OK) {
        if (rc != SIMSYNC_ECLOSED)
            serve_log(ps, "connection failed before a hello: %s",
                      simsync_strerror(rc));
        goto out;
    }
    node_id_of(pk, id);
    rc = peer_find(ps->n->st, ps->tmpl.sub, NULL, pk, &rec);
    if (rc != SIMSYNC_OK) {
        node_send_error(ch, rc == SIMSYNC_ENOTFOUND ? SIMSYNC_EREFUSED : rc,
                        rc == SIMSYNC_ENOTFOUND
                            ? "this node has not paired with yours"
                            : "the serving node cannot read its store");
        serve_log(ps, "refused node %s: %s", id,
                  rc == SIMSYNC_ENOTFOUND ? "not paired with this node"
                                          : simsync_strerror(rc));
        goto out;
    }
    if (env->msg_case != SIMSYNC__ENVELOPE__MSG_HELLO) {
        node_send_error(ch, SIMSYNC_EPROTO,
                        env->msg_case == SIMSYNC__ENVELOPE__MSG_PAIR_HELLO
                            ? "pairing is done with 'simsync pair', not on "
                              "the serving port"
                            : "expected hello");
        serve_log(ps, "refused %s: it did not start with a hello",
                  rec->terminal_id);
        goto out;
    }
    rc = check_hello(ps, ch, env->hello, rec);
    if (rc != SIMSYNC_OK) {
        serve_log(ps, "refused %s: %s", rec->terminal_id, simsync_strerror(rc));
        goto out;
    }
    (void)serve_session(ps, c, ch, env->hello, pk, rec);
out:
    if (rec != NULL)
        simsync__peer_record__free_unpacked(rec, NULL);
    if (env != NULL)
        simsync__envelope__free_unpacked(env, NULL);
    chan_free(ch);
}

static void *
serve_main(void *arg)
{
    struct peer_server *ps = arg;

    while (!atomic_load(&ps->stop)) {
        struct pollfd pfd[PEER_SERVE_MAX];
        size_t i;

        for (i = 0; i < ps->nl; i++)
            pfd[i] = (struct pollfd){listener_pollfd(ps->l[i]), POLLIN, 0};
        if (poll(pfd, (nfds_t)ps->nl, 200) <= 0)
            continue;
        /* One session at a time, whichever link it came on. */
        for (i = 0; i < ps->nl && !atomic_load(&ps->stop); i++) {
            struct conn *c;

            if (!(pfd[i].revents & POLLIN) ||
                listener_accept(ps->l[i], &c) != SIMSYNC_OK)
                continue;
            serve_conn(ps, c);
            conn_close(c);
        }
    }
    return NULL;
}

static void
close_listeners(struct peer_server *ps)
{
    for (size_t i = 0; i < ps->nl; i++)
        listener_close(ps->l[i]);
    ps->nl = 0;
}

int
peer_serve_start(struct simsync_node *n, const char *const *addrs,
                 size_t naddrs, const struct peer_serve_hooks *hooks,
                 struct peer_server **out)
{
    struct peer_server *ps;
    size_t used = 0;
    int rc;

    *out = NULL;
    if (addrs == NULL || naddrs == 0 || naddrs > PEER_SERVE_MAX)
        return node_fail(n, SIMSYNC_EINVAL,
                         "serving needs 1 to %d addresses to listen on",
                         PEER_SERVE_MAX);
    if (strcmp(n->role, "hub") == 0)
        return node_fail(n, SIMSYNC_ESTATE,
                         "a hub serves with 'simsync hub serve'; 'simsync "
                         "serve' is for terminals and desktops");
    if (!n->bound)
        return node_fail(n, SIMSYNC_ESTATE,
                         "this node is not registered: serving needs the "
                         "subscriber's key; run 'simsync register' first");
    ps = calloc(1, sizeof(*ps));
    if (ps == NULL)
        return SIMSYNC_ENOMEM;
    ps->n = n;
    if (hooks != NULL)
        ps->hooks = *hooks;
    rc = replica_setup(n, &ps->tmpl);
    if (rc != SIMSYNC_OK) {
        free(ps);
        return rc;
    }
    for (ps->nl = 0; ps->nl < naddrs; ps->nl++) {
        const char *a = addrs[ps->nl];
        char *at = ps->addr_at[ps->nl];

        rc = link_listen(a, &ps->l[ps->nl]);
        if (rc != SIMSYNC_OK) {
            int err = errno;

            close_listeners(ps);
            keys_wipe(&ps->tmpl.keys);
            free(ps);
            return node_fail(n, rc, "cannot listen on %s: %s (%s)", a,
                             simsync_strerror(rc), link_strerror(err));
        }
        if (link_listener_addr(ps->l[ps->nl], at, sizeof(ps->addr_at[0])) !=
            SIMSYNC_OK)
            snprintf(at, sizeof(ps->addr_at[0]), "%s", a);
        used += (size_t)snprintf(ps->addr + used, sizeof(ps->addr) - used,
                                 "%s%s", used ? ", " : "", at);
    }
    if (pthread_create(&ps->th, NULL, serve_main, ps) != 0) {
        close_listeners(ps);
        keys_wipe(&ps->tmpl.keys);
        free(ps);
        return node_fail(n, SIMSYNC_ENOMEM, "cannot start the server thread");
    }
    *out = ps;
    return SIMSYNC_OK;
}

const char *
peer_serve_addr(const struct peer_server *s)
{
    return s->addr;
}

size_t
peer_serve_count(const struct peer_server *s)
{
    return s->nl;
}

const char *
peer_serve_addr_at(const struct peer_server *s, size_t i)
{
    return i < s->nl ? s->addr_at[i] : "";
}

void
peer_serve_stop(struct peer_server *s)
{
    if (s == NULL)
        return;
    atomic_store(&s->stop, 1);
    pthread_join(s->th, NULL);
    close_listeners(s);
    keys_wipe(&s->tmpl.keys);
    crypt_wipe(&s->tmpl, sizeof(s->tmpl));
    free(s);
}

int
simsync_serve(struct simsync_node *n, const struct simsync_serve_opts *o,
              volatile int *stop)
{
    struct peer_server *ps;
    const char *addrs[PEER_SERVE_MAX];
    size_t naddrs = 0;
    int rc;

    n->err[0] = '\0';
    if (o == NULL || o->listen == NULL)
        return node_fail(n, SIMSYNC_EINVAL, "serve needs an address");
    if (o->n_more >= PEER_SERVE_MAX)
        return node_fail(n, SIMSYNC_EINVAL,
                         "serve listens on at most %d addresses at once",
                         PEER_SERVE_MAX);
    addrs[naddrs++] = o->listen;
    for (size_t i = 0; i < o->n_more; i++)
        addrs[naddrs++] = o->more[i];
    struct peer_serve_hooks hooks = {o->log, NULL, o->arg};

    rc = peer_serve_start(n, addrs, naddrs, &hooks, &ps);
    if (rc != SIMSYNC_OK)
        return rc;
    for (size_t i = 0; o->listening != NULL && i < peer_serve_count(ps); i++)
        o->listening(o->arg, peer_serve_addr_at(ps, i));
    while (!*stop)
        (void)poll(NULL, 0, 200);
    peer_serve_stop(ps);
    return SIMSYNC_OK;
}
