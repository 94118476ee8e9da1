/* node.c -- a node's home directory, identity, SIM state, registration,
 * and the terminal's side of a sync. The hub's side is in hub.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crypt.h"
#include "folder.h"
#include "node.h"
#include "pbcheck.h"
#include "peer.h"
#include "pwguard.h"
#include "session.h"
#include "sim.h"
#include "transport.h"
#include "utf8.h"

/* ------------------------------------------------------------ helpers */

static void keep_peer_error(const char *text);

int
node_fail(struct simsync_node *n, int code, const char *fmt, ...)
{
    va_list ap;

    if (n != NULL) {
        va_start(ap, fmt);
        vsnprintf(n->err, sizeof(n->err), fmt, ap);
        va_end(ap);
    }
    return code;
}

uint64_t
node_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void
node_id_of(const uint8_t pk[32], char out[NODE_ID_LEN])
{
    static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    uint8_t h[20];
    size_t o = 0;

    crypt_hash(h, 20, pk, 32, NULL, 0);
    /* 160 bits -> 32 base32 characters in groups of four. */
    for (int i = 0; i < 32; i++) {
        int bit = i * 5, byte = bit / 8, off = bit % 8;
        unsigned v = (unsigned)h[byte] << 8 | (byte + 1 < 20 ? h[byte + 1] : 0);
        v = (v >> (11 - off)) & 31;
        if (i > 0 && i % 4 == 0)
            out[o++] = '-';
        out[o++] = b32[v];
    }
    out[o] = '\0';
}

uint64_t
node_peer_of(const uint8_t pk[32])
{
    uint8_t h[16];
    uint64_t v;

    crypt_hash(h, 16, pk, 32, NULL, 0);
    v = store_get_be64(h);
    return v ? v : 1;
}

int
node_path_in(const struct simsync_node *n, const char *name, char *buf,
             size_t len)
{
    size_t hl = strlen(n->home), nl = strlen(name);

    if (hl + 1 + nl >= len)
        return SIMSYNC_EINVAL;
    memcpy(buf, n->home, hl);
    buf[hl] = '/';
    memcpy(buf + hl + 1, name, nl + 1);
    return SIMSYNC_OK;
}

int
node_file_put(const char *path, const void *data, size_t len)
{
    char tmp[PATH_MAX + 16];
    int fd, rc = SIMSYNC_OK;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return errno == ENOSPC ? SIMSYNC_ENOSPC : SIMSYNC_EIO;
    /* fchmod: a temporary file left by a crash may have another mode. */
    if (fchmod(fd, 0600) != 0 || write(fd, data, len) != (ssize_t)len ||
        fsync(fd) != 0)
        rc = errno == ENOSPC ? SIMSYNC_ENOSPC : SIMSYNC_EIO;
    close(fd);
    if (rc == SIMSYNC_OK && rename(tmp, path) != 0)
        rc = SIMSYNC_EIO;
    if (rc != SIMSYNC_OK)
        unlink(tmp);
    return rc;
}

int
node_file_get(const char *path, void *buf, size_t cap, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    ssize_t r;

    if (fd < 0)
        return errno == ENOENT ? SIMSYNC_ENOTFOUND : SIMSYNC_EIO;
    r = read(fd, buf, cap);
    close(fd);
    if (r < 0)
        return SIMSYNC_EIO;
    if ((size_t)r == cap)
        return SIMSYNC_ETOOBIG;
    ((char *)buf)[r] = '\0';
    if (len != NULL)
        *len = (size_t)r;
    return SIMSYNC_OK;
}

/* Find "key=value" in a text of lines; copy value into out. */
static int
kv_get(const char *text, const char *key, char *out, size_t len)
{
    size_t kl = strlen(key);
    const char *p = text;

    while (p != NULL && *p != '\0') {
        if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
            const char *v = p + kl + 1, *e = strchr(v, '\n');
            size_t n = e ? (size_t)(e - v) : strlen(v);
            if (n >= len)
                return SIMSYNC_ETOOBIG;
            memcpy(out, v, n);
            out[n] = '\0';
            return SIMSYNC_OK;
        }
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return SIMSYNC_ENOTFOUND;
}

/* ------------------------------------------------------------ init/open */

int
simsync_init(const char *home, const char *role, const char *terminal_id,
             const char *data_dir)
{
    char path[PATH_MAX + 64], text[PATH_MAX + 256], tid[64];
    uint8_t pk[32], sk[64];
    struct stat st;
    struct store *store;
    int rc;

    if (home == NULL || role == NULL ||
        (strcmp(role, "terminal") != 0 && strcmp(role, "hub") != 0 &&
         strcmp(role, "desktop") != 0 && strcmp(role, "kiosk") != 0))
        return SIMSYNC_EINVAL;
    if (terminal_id != NULL &&
        (strlen(terminal_id) == 0 || strlen(terminal_id) >= sizeof(tid) ||
         strpbrk(terminal_id, "\n=") != NULL))
        return SIMSYNC_EINVAL;
    rc = crypt_init();
    if (rc != SIMSYNC_OK)
        return rc;
    if (mkdir(home, 0700) != 0 && errno != EEXIST)
        return SIMSYNC_EIO;
    rc = simsync_erase_resume(home, NULL, NULL, 0);
    if (rc != SIMSYNC_OK)
        return rc;
    snprintf(path, sizeof(path), "%s/config", home);
    if (stat(path, &st) == 0)
        return SIMSYNC_EEXIST;
    if (terminal_id == NULL) {
        /* An IMEI-like 15-digit id. */
        for (int i = 0; i < 15; i++)
            tid[i] = (char)('0' + crypt_random_u32() % 10);
        tid[15] = '\0';
    } else {
        snprintf(tid, sizeof(tid), "%s", terminal_id);
    }
    rc = crypt_sign_keypair(pk, sk);
    if (rc != SIMSYNC_OK)
        return rc;
    snprintf(path, sizeof(path), "%s/node.key", home);
    rc = node_file_put(path, sk, sizeof(sk));
    crypt_wipe(sk, sizeof(sk));
    if (rc != SIMSYNC_OK)
        return rc;
    if (strcmp(role, "hub") == 0) {
        uint8_t pepper[32];
        crypt_random(pepper, sizeof(pepper));
        snprintf(path, sizeof(path), "%s/hub.pepper", home);
        rc = node_file_put(path, pepper, sizeof(pepper));
        if (rc != SIMSYNC_OK)
            return rc;
    }
    snprintf(path, sizeof(path), "%s/store", home);
    rc = store_open(path, 0, &store);
    if (rc != SIMSYNC_OK)
        return rc;
    store_close(store);
    if (data_dir != NULL) {
        snprintf(text, sizeof(text), "role=%s\nterminal_id=%s\ndata=%s\n", role,
                 tid, data_dir);
    } else {
        snprintf(text, sizeof(text), "role=%s\nterminal_id=%s\n", role, tid);
    }
    snprintf(path, sizeof(path), "%s/config", home);
    return node_file_put(path, text, strlen(text));
}

static int
load_binding(struct simsync_node *n)
{
    char path[PATH_MAX + 64], text[2048], v[256];
    int rc;

    node_path_in(n, "binding", path, sizeof(path));
    rc = node_file_get(path, text, sizeof(text), NULL);
    if (rc == SIMSYNC_ENOTFOUND)
        return SIMSYNC_OK;
    if (rc != SIMSYNC_OK)
        return rc;
    if (kv_get(text, "hub", n->hub_addr, sizeof(n->hub_addr)) != SIMSYNC_OK ||
        kv_get(text, "hub_key", v, sizeof(v)) != SIMSYNC_OK ||
        crypt_hex_decode(n->hub_pk, 32, v, strlen(v)) != SIMSYNC_OK ||
        kv_get(text, "subscriber", n->subscriber, sizeof(n->subscriber)) !=
            SIMSYNC_OK ||
        kv_get(text, "classes", v, sizeof(v)) != SIMSYNC_OK ||
        class_mask_parse(v, &n->classes, NULL, 0) != SIMSYNC_OK)
        return SIMSYNC_EPROTO;
    n->lazy = 0;
    if (kv_get(text, "lazy", v, sizeof(v)) == SIMSYNC_OK && v[0] != '\0' &&
        class_mask_parse(v, &n->lazy, NULL, 0) != SIMSYNC_OK)
        return SIMSYNC_EPROTO;
    n->bound = 1;
    return SIMSYNC_OK;
}

int
node_save_binding(struct simsync_node *n)
{
    char path[PATH_MAX + 64], text[2048], hex[65], cls[128], lazy[128];

    crypt_hex_encode(hex, n->hub_pk, 32);
    class_mask_format(n->classes, cls, sizeof(cls));
    lazy[0] = '\0';
    if (n->lazy != 0)
        class_mask_format(n->lazy, lazy, sizeof(lazy));
    snprintf(text, sizeof(text),
             "hub=%s\nhub_key=%s\nsubscriber=%s\nclasses=%s\nlazy=%s\n",
             n->hub_addr, hex, n->subscriber, cls, lazy);
    node_path_in(n, "binding", path, sizeof(path));
    return node_file_put(path, text, strlen(text));
}

int
simsync_node_open(const char *home, struct simsync_node **out)
{
    struct simsync_node *n;
    char path[PATH_MAX + 64], text[PATH_MAX + 256];
    uint8_t epoch[16], h[8 + 48];
    size_t len;
    int rc;

    *out = NULL;
    rc = crypt_init();
    if (rc != SIMSYNC_OK)
        return rc;
    if (simsync_erase_pending(home)) {
        /* An erase was cut short: finish it; no node is left to open. */
        rc = simsync_erase_resume(home, NULL, NULL, 0);
        return rc == SIMSYNC_OK ? SIMSYNC_ESTATE : rc;
    }
    n = calloc(1, sizeof(*n));
    if (n == NULL)
        return SIMSYNC_ENOMEM;
    snprintf(n->home, sizeof(n->home), "%s", home);
    node_path_in(n, "config", path, sizeof(path));
    rc = node_file_get(path, text, sizeof(text), NULL);
    if (rc == SIMSYNC_ENOTFOUND)
        rc = SIMSYNC_ESTATE;
    if (rc == SIMSYNC_OK &&
        (kv_get(text, "role", n->role, sizeof(n->role)) != SIMSYNC_OK ||
         kv_get(text, "terminal_id", n->terminal_id, sizeof(n->terminal_id)) !=
             SIMSYNC_OK))
        rc = SIMSYNC_EPROTO;
    if (rc == SIMSYNC_OK &&
        kv_get(text, "data", n->data_dir, sizeof(n->data_dir)) != SIMSYNC_OK)
        snprintf(n->data_dir, sizeof(n->data_dir), "%s/data", home);
    if (rc == SIMSYNC_OK) {
        /* One byte more than a key, for file_get's terminator and to
         * notice a file that is too long. */
        uint8_t key[sizeof(n->ident.sign_sk) + 2];
        node_path_in(n, "node.key", path, sizeof(path));
        rc = node_file_get(path, key, sizeof(key), &len);
        if (rc == SIMSYNC_OK && len != sizeof(n->ident.sign_sk))
            rc = SIMSYNC_EPROTO;
        if (rc == SIMSYNC_OK) {
            memcpy(n->ident.sign_sk, key, sizeof(n->ident.sign_sk));
            memcpy(n->ident.sign_pk, n->ident.sign_sk + 32, 32);
        }
        crypt_wipe(key, sizeof(key));
    }
    if (rc == SIMSYNC_OK && strcmp(n->role, "hub") == 0) {
        uint8_t buf[33];
        node_path_in(n, "hub.pepper", path, sizeof(path));
        rc = node_file_get(path, buf, sizeof(buf), &len);
        if (rc == SIMSYNC_OK && len != 32)
            rc = SIMSYNC_EPROTO;
        if (rc == SIMSYNC_OK)
            memcpy(n->pepper, buf, 32);
        crypt_wipe(buf, sizeof(buf));
    }
    if (rc == SIMSYNC_OK) {
        node_path_in(n, "store", path, sizeof(path));
        rc = store_open(path, 0, &n->st);
    }
    if (rc == SIMSYNC_OK)
        rc = load_binding(n);
    if (rc != SIMSYNC_OK) {
        simsync_node_close(n);
        return rc;
    }
    /* Replica id: node key and store epoch, so a recreated store is a new
     * replica whose counters never continue the old ones. */
    store_epoch(n->st, epoch);
    memcpy(h, n->ident.sign_pk, 32);
    memcpy(h + 32, epoch, 16);
    {
        uint8_t r[16];
        crypt_hash(r, 16, h, 48, NULL, 0);
        n->replica = store_get_be64(r);
        if (n->replica == 0)
            n->replica = 1;
    }
    *out = n;
    return SIMSYNC_OK;
}

void
simsync_node_close(struct simsync_node *n)
{
    if (n == NULL)
        return;
    store_close(n->st);
    crypt_wipe(n, sizeof(*n));
    free(n);
}

const char *
simsync_node_errmsg(const struct simsync_node *n)
{
    return n ? n->err : "";
}

int
simsync_node_id(struct simsync_node *n, char *buf, size_t len)
{
    char id[NODE_ID_LEN];

    node_id_of(n->ident.sign_pk, id);
    if (strlen(id) >= len)
        return SIMSYNC_EINVAL;
    memcpy(buf, id, strlen(id) + 1);
    return SIMSYNC_OK;
}

const char *
simsync_node_role(const struct simsync_node *n)
{
    return n->role;
}

const char *
simsync_node_terminal_id(const struct simsync_node *n)
{
    return n->terminal_id;
}

/* ------------------------------------------------------------ SIM */

int
simsync_sim_create(const char *file, const char *subscriber, const char *pin,
                   const char *puk)
{
    int rc = crypt_init();

    return rc != SIMSYNC_OK ? rc : sim_file_create(file, subscriber, pin, puk);
}

int
simsync_sim_unblock(const char *file, const char *puk, const char *new_pin)
{
    struct sim *s;
    int rc = crypt_init();

    if (rc == SIMSYNC_OK)
        rc = sim_open(file, &s);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = sim_unblock(s, puk, new_pin);
    sim_close(s);
    return rc;
}

/* Terminals and desktops hold the subscriber's data; hubs and kiosks
 * never do. */
static int
is_trusted(const struct simsync_node *n)
{
    return strcmp(n->role, "terminal") == 0 || strcmp(n->role, "desktop") == 0;
}

int
simsync_sim_insert(struct simsync_node *n, const char *file, const char *pin)
{
    char path[PATH_MAX + 64], text[PATH_MAX + 64], sub[SIM_SUBSCRIBER_BUF];
    char abs[PATH_MAX];
    struct sim *s;
    int rc;

    if (!is_trusted(n))
        return node_fail(n, SIMSYNC_ESTATE,
                         "a %s has no SIM slot (a kiosk reads a SIM with "
                         "'simsync kiosk register --sim FILE')",
                         n->role);
    if (realpath(file, abs) == NULL)
        return node_fail(n, SIMSYNC_ENOSIM, "no SIM file at %s", file);
    rc = sim_open(abs, &s);
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc, "cannot read the SIM %s: %s", file,
                         simsync_strerror(rc));
    rc = sim_verify_pin(s, pin);
    if (rc != SIMSYNC_OK) {
        struct sim_status st;
        int left = sim_status(s, &st) == SIMSYNC_OK ? st.pin_tries_left : 0;
        sim_close(s);
        if (rc == SIMSYNC_EBLOCKED)
            return node_fail(n, rc,
                             "the SIM is blocked; unblock it with "
                             "'simsync sim unblock %s --puk PUK --new-pin PIN'",
                             file);
        return node_fail(n, rc, "the SIM refused the PIN (%d tr%s left)", left,
                         left == 1 ? "y" : "ies");
    }
    rc = sim_subscriber(s, sub, sizeof(sub));
    sim_close(s);
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc, "cannot read the subscriber ID from the SIM");
    snprintf(text, sizeof(text), "file=%s\nsubscriber=%s\n", abs, sub);
    node_path_in(n, "sim", path, sizeof(path));
    return node_file_put(path, text, strlen(text));
}

int
simsync_sim_remove(struct simsync_node *n)
{
    char path[PATH_MAX + 64];

    node_path_in(n, "sim", path, sizeof(path));
    if (unlink(path) != 0 && errno != ENOENT)
        return SIMSYNC_EIO;
    return SIMSYNC_OK;
}

/* The subscriber of the inserted SIM, checking the card is still there. */
static int
inserted_subscriber(struct simsync_node *n, char sub[16], char *file,
                    size_t flen)
{
    char path[PATH_MAX + 64], text[PATH_MAX + 64];
    struct sim *s;
    struct sim_status st;
    int rc;

    node_path_in(n, "sim", path, sizeof(path));
    rc = node_file_get(path, text, sizeof(text), NULL);
    if (rc == SIMSYNC_ENOTFOUND)
        return node_fail(n, SIMSYNC_ENOSIM,
                         "no SIM inserted; run 'simsync sim insert FILE'");
    if (rc != SIMSYNC_OK || kv_get(text, "file", file, flen) != SIMSYNC_OK ||
        kv_get(text, "subscriber", sub, 16) != SIMSYNC_OK)
        return node_fail(n, SIMSYNC_EPROTO, "unreadable SIM state %s", path);
    rc = sim_open(file, &s);
    if (rc == SIMSYNC_OK) {
        rc = sim_status(s, &st);
        if (rc == SIMSYNC_OK && st.blocked)
            rc = SIMSYNC_EBLOCKED;
        sim_close(s);
    }
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc == SIMSYNC_EBLOCKED ? rc : SIMSYNC_ENOSIM,
                         "the inserted SIM (%s) is not usable: %s", file,
                         simsync_strerror(rc));
    return SIMSYNC_OK;
}

int
simsync_sim_info(struct simsync_node *n, struct simsync_sim_info *out)
{
    struct sim *s;
    struct sim_status st;

    memset(out, 0, sizeof(*out));
    out->bound = n->bound;
    if (inserted_subscriber(n, out->subscriber, out->file, sizeof(out->file)) !=
        SIMSYNC_OK) {
        n->err[0] = '\0';
        return SIMSYNC_OK;
    }
    out->inserted = 1;
    out->matches_binding =
        n->bound && strcmp(out->subscriber, n->subscriber) == 0;
    if (sim_open(out->file, &s) == SIMSYNC_OK) {
        if (sim_status(s, &st) == SIMSYNC_OK) {
            out->pin_tries_left = st.pin_tries_left;
            out->puk_tries_left = st.puk_tries_left;
            out->blocked = st.blocked;
        }
        sim_close(s);
    }
    return SIMSYNC_OK;
}

/* ------------------------------------------------------------ wire */

static int
send_env(struct chan *ch, const void *env, int urgent)
{
    uint8_t *buf;
    size_t len;
    int rc = record_pack(env, &buf, &len);

    if (rc != SIMSYNC_OK)
        return rc;
    /* A control message too big for the urgent lane goes in order. */
    rc = urgent && len <= CHAN_MAX_URGENT ? chan_send_urgent(ch, buf, len)
                                          : chan_send(ch, buf, len);
    free(buf);
    return rc;
}

int
node_send_env(struct chan *ch, const void *env)
{
    return send_env(ch, env, 0);
}

int
node_send_env_urgent(struct chan *ch, const void *env)
{
    return send_env(ch, env, 1);
}

int
node_send_chunk(struct chan *ch, const uint8_t *id, size_t idlen,
                const uint8_t *blob, size_t blen)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__ChunkData cd = SIMSYNC__CHUNK_DATA__INIT;
    uint8_t *buf;
    size_t len;
    int rc;

    cd.id.data = (uint8_t *)id;
    cd.id.len = idlen;
    cd.blob.data = (uint8_t *)blob;
    cd.blob.len = blen;
    env.msg_case = SIMSYNC__ENVELOPE__MSG_CHUNK;
    env.chunk = &cd;
    rc = record_pack(&env.base, &buf, &len);
    if (rc != SIMSYNC_OK)
        return rc;
    rc =
        chan_send_sealed(ch, buf, len, frame_sealed_tail(buf, len, blob, blen));
    free(buf);
    return rc;
}

int
node_recv_env(struct chan *ch, void **out)
{
    const uint8_t *msg;
    size_t len;
    Simsync__Envelope *env;
    int rc = chan_recv(ch, &msg, &len);

    *out = NULL;
    if (rc != SIMSYNC_OK)
        return rc;
    env = pb_unpack(&simsync__envelope__descriptor, len, msg, &rc);
    if (env == NULL)
        return rc;
    if (!pb_decoded_ok(&env->base)) {
        simsync__envelope__free_unpacked(env, NULL);
        return SIMSYNC_EPROTO;
    }
    if (env->msg_case == SIMSYNC__ENVELOPE__MSG_ERROR) {
        int code = session_peer_error(env->error->code);
        keep_peer_error(env->error->text);
        simsync__envelope__free_unpacked(env, NULL);
        return code;
    }
    *out = env;
    return SIMSYNC_OK;
}

int
node_recv_kind(struct chan *ch, int kind, void **out)
{
    Simsync__Envelope *env;
    int rc = node_recv_env(ch, (void **)&env);

    *out = NULL;
    if (rc != SIMSYNC_OK)
        return rc;
    if ((int)env->msg_case != kind) {
        simsync__envelope__free_unpacked(env, NULL);
        return SIMSYNC_EPROTO;
    }
    *out = env;
    return SIMSYNC_OK;
}

int
node_send_error(struct chan *ch, int code, const char *text)
{
    uint8_t *frame;
    size_t len;
    int rc = session_error_frame(code, text, &frame, &len);

    if (rc == SIMSYNC_OK) {
        /* An error ends the exchange: it goes ahead of queued bulk. */
        rc = len <= CHAN_MAX_URGENT ? chan_send_urgent(ch, frame, len)
                                    : chan_send(ch, frame, len);
        free(frame);
    }
    return rc;
}

int
node_pump(struct chan *ch, struct session *s)
{
    int rc;

    for (;;) {
        uint8_t *frame;
        size_t len, sealed;
        const uint8_t *msg;

        while ((rc = session_output_sealed(s, &frame, &len, &sealed)) ==
               SIMSYNC_OK) {
            rc = chan_send_sealed(ch, frame, len, sealed);
            free(frame);
            if (rc != SIMSYNC_OK)
                return rc;
        }
        if (session_finished(s))
            return SIMSYNC_OK;
        rc = chan_recv(ch, &msg, &len);
        if (rc != SIMSYNC_OK)
            return rc;
        rc = session_input(s, msg, len);
        if (rc != SIMSYNC_OK) {
            /* Tell the peer why before giving up. */
            while (session_output(s, &frame, &len) == SIMSYNC_OK) {
                int src = chan_send(ch, frame, len);
                free(frame);
                if (src != SIMSYNC_OK)
                    break;
            }
            return rc;
        }
    }
}

static void
sub_key_terminal(const char *subscriber, uint8_t out[SUB_BYTES])
{
    struct crypt_hash_state st;

    crypt_hash_init(&st, SUB_BYTES, NULL, 0);
    crypt_hash_update(&st, "simsync-subscriber", 18);
    crypt_hash_update(&st, subscriber, strlen(subscriber));
    crypt_hash_final(&st, out, SUB_BYTES);
}

void
link_close(struct link *l)
{
    chan_free(l->ch);
    conn_close(l->conn);
    l->ch = NULL;
    l->conn = NULL;
}

int
link_open(struct simsync_node *n, const char *addr, const uint8_t *pin_pk,
          const char *hub_id, struct link *l)
{
    uint8_t pk[32];
    char id[NODE_ID_LEN];
    int rc;

    memset(l, 0, sizeof(*l));
    rc = transport_tcp.connect(addr, &l->conn);
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc, "cannot reach the hub at %s: %s", addr,
                         simsync_strerror(rc));
    conn_set_timeout(l->conn, 60000);
    rc = chan_handshake(l->conn, 1, &n->ident, pin_pk, &l->ch);
    if (rc != SIMSYNC_OK) {
        link_close(l);
        if (rc == SIMSYNC_EREFUSED)
            return node_fail(n, rc,
                             "the peer at %s is not the hub this terminal is "
                             "bound to (key mismatch)",
                             addr);
        return node_fail(n, rc, "secure handshake with %s failed: %s", addr,
                         simsync_strerror(rc));
    }
    if (hub_id != NULL) {
        chan_peer_key(l->ch, pk);
        node_id_of(pk, id);
        if (strcmp(id, hub_id) != 0) {
            link_close(l);
            return node_fail(n, SIMSYNC_EREFUSED,
                             "the hub at %s has ID %s, not %s", addr, id,
                             hub_id);
        }
    }
    return SIMSYNC_OK;
}

/* ------------------------------------------------------------ keys */

static int
datakey_load(struct simsync_node *n, uint8_t key[32])
{
    char path[PATH_MAX + 64];
    uint8_t box[32 + CRYPT_BOX_OVERHEAD + 1], xpk[32], xsk[32];
    size_t len;
    int rc;

    node_path_in(n, "datakey.box", path, sizeof(path));
    rc = node_file_get(path, box, sizeof(box), &len);
    if (rc == SIMSYNC_ENOTFOUND)
        return node_fail(n, SIMSYNC_ESTATE,
                         "this terminal is not registered; run "
                         "'simsync register'");
    if (rc != SIMSYNC_OK || len != 32 + CRYPT_BOX_OVERHEAD)
        return node_fail(n, SIMSYNC_EPROTO, "unreadable data key %s", path);
    crypt_sign_pk_to_x25519(xpk, n->ident.sign_pk);
    crypt_sign_sk_to_x25519(xsk, n->ident.sign_sk);
    rc = crypt_box_open(key, box, len, xpk, xsk);
    crypt_wipe(xsk, sizeof(xsk));
    if (rc != SIMSYNC_OK)
        return node_fail(n, SIMSYNC_ECRYPTO,
                         "the data key does not open with this node's key");
    return SIMSYNC_OK;
}

int
replica_setup(struct simsync_node *n, struct replica *r)
{
    uint8_t key[32];
    int rc;

    memset(r, 0, sizeof(*r));
    rc = datakey_load(n, key);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = keys_derive(key, &r->keys);
    crypt_wipe(key, sizeof(key));
    if (rc != SIMSYNC_OK)
        return rc;
    r->st = n->st;
    sub_key_terminal(n->subscriber, r->sub);
    r->self = n->replica;
    r->trusted = 1;
    r->lazy = n->lazy;
    snprintf(r->data_dir, sizeof(r->data_dir), "%s", n->data_dir);
    r->now_ms = node_now_ms();
    return SIMSYNC_OK;
}

void
node_sub_key(const struct simsync_node *n, uint8_t out[SUB_BYTES])
{
    sub_key_terminal(n->subscriber, out);
}

/* ------------------------------------------------------------ peer errors */

/* The text of the last Error frame received on this thread (see
 * node_peer_error). */
static _Thread_local char peer_err[160];

const char *
node_peer_error(void)
{
    return peer_err;
}

void
node_peer_error_clear(void)
{
    peer_err[0] = '\0';
}

/* Keep the peer's error text, as printable ASCII only: it comes from the
 * other side and goes to a person's terminal. */
static void
keep_peer_error(const char *text)
{
    text_printable(peer_err, sizeof(peer_err), text);
}

/* ------------------------------------------------------------ register */

/* The base wait of the password guard: config key password_delay_ms (tests
 * set it low), else PWGUARD_DEFAULT_BASE_MS. */
static uint64_t
password_base_delay(const struct simsync_node *n)
{
    char path[PATH_MAX + 64], text[PATH_MAX + 256], v[32], *end;
    unsigned long long ms;

    if (node_path_in(n, "config", path, sizeof(path)) != SIMSYNC_OK ||
        node_file_get(path, text, sizeof(text), NULL) != SIMSYNC_OK ||
        kv_get(text, "password_delay_ms", v, sizeof(v)) != SIMSYNC_OK)
        return PWGUARD_DEFAULT_BASE_MS;
    errno = 0;
    ms = strtoull(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || ms > PWGUARD_MAX_WAIT_MS)
        return PWGUARD_DEFAULT_BASE_MS;
    return ms;
}

/* Write the guard state over the locked file fd. */
static int
guard_save(int fd, const struct pwguard *g)
{
    char text[PWGUARD_TEXT_MAX];
    size_t len;

    if (pwguard_format(g, text, sizeof(text)) != SIMSYNC_OK)
        return SIMSYNC_EINVAL;
    len = strlen(text);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, text, len, 0) != (ssize_t)len ||
        fsync(fd) != 0)
        return errno == ENOSPC ? SIMSYNC_ENOSPC : SIMSYNC_EIO;
    return SIMSYNC_OK;
}

/* Check `password` against the stored hash under the guard (pwguard.h):
 * <home>/password.guard is locked for the whole check, so programs run at
 * once take turns and share one count. */
static int
password_check_guarded(struct simsync_node *n, const char *hash,
                       const char *password)
{
    char path[PATH_MAX + 64], text[PWGUARD_TEXT_MAX + 1];
    struct pwguard g;
    uint64_t now = node_now_ms(), wait = 0;
    ssize_t got;
    int fd, rc, parse_rc;

    node_path_in(n, "password.guard", path, sizeof(path));
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return node_fail(n, SIMSYNC_EIO, "cannot open %s: %s", path,
                         strerror(errno));
    if (flock(fd, LOCK_EX) != 0) {
        close(fd);
        return node_fail(n, SIMSYNC_EIO, "cannot lock %s", path);
    }
    got = pread(fd, text, sizeof(text) - 1, 0);
    text[got > 0 ? got : 0] = '\0';
    parse_rc = pwguard_parse(text, &g);
    switch (pwguard_check(&g, now, &wait)) {
    case PWGUARD_LOCKED:
        close(fd);
        return node_fail(n, SIMSYNC_EPASSWORD,
                         "%s: the terminal password is locked; nothing was "
                         "checked. Erase this terminal ('simsync erase') and "
                         "set it up again",
                         parse_rc == SIMSYNC_OK
                             ? "too many wrong terminal passwords"
                             : "the password guard file is damaged");
    case PWGUARD_WAIT:
        close(fd);
        return node_fail(n, SIMSYNC_EPASSWORD,
                         "after %u wrong terminal password%s, wait %llu s "
                         "before the next attempt (nothing was checked)",
                         (unsigned)g.failures, g.failures == 1 ? "" : "s",
                         (unsigned long long)(wait + 999) / 1000);
    case PWGUARD_TRY:
        break;
    }
    if (crypt_pwhash_verify(hash, password, strlen(password)) == SIMSYNC_OK) {
        if (g.failures > 0) {
            pwguard_succeeded(&g);
            rc = guard_save(fd, &g);
        } else {
            rc = SIMSYNC_OK;
        }
        close(fd);
        return rc;
    }
    pwguard_failed(&g, now, password_base_delay(n));
    rc = guard_save(fd, &g);
    close(fd);
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc, "cannot record the failed attempt in %s",
                         path);
    if (g.failures >= PWGUARD_MAX_FAILURES)
        return node_fail(n, SIMSYNC_EPASSWORD,
                         "wrong terminal password (%u in a row): the terminal "
                         "password is now locked",
                         (unsigned)g.failures);
    pwguard_check(&g, now, &wait);
    return node_fail(n, SIMSYNC_EPASSWORD,
                     "wrong terminal password (%u in a row; %d left before "
                     "the lockout; the next attempt in %llu s)",
                     (unsigned)g.failures,
                     PWGUARD_MAX_FAILURES - (int)g.failures,
                     (unsigned long long)(wait + 999) / 1000);
}

static int
password_check_or_set(struct simsync_node *n, const char *password)
{
    char path[PATH_MAX + 64], hash[CRYPT_PWHASH_STR_BYTES + 1];
    int rc;

    if (password == NULL || *password == '\0')
        return node_fail(n, SIMSYNC_EINVAL,
                         "a terminal password is needed (--password-file, "
                         "$SIMSYNC_PASSWORD or a prompt)");
    node_path_in(n, "password", path, sizeof(path));
    rc = node_file_get(path, hash, sizeof(hash), NULL);
    if (rc == SIMSYNC_OK)
        return password_check_guarded(n, hash, password);
    if (rc != SIMSYNC_ENOTFOUND)
        return rc;
    rc = crypt_pwhash_str(hash, password, strlen(password));
    if (rc == SIMSYNC_OK)
        rc = node_file_put(path, hash, strlen(hash) + 1);
    return rc;
}

/* Registration, with a terminal password (FIG 10-A) or, with `kiosk`,
 * completing a binding a shop kiosk made (FIG 19: no password). */
static int
register_run(struct simsync_node *n, const char *hub_addr, const char *hub_id,
             const char *classes, const char *pin, const char *password,
             int kiosk, const char *recovery, char *recovery_out,
             size_t recovery_len)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT, *rep = NULL;
    Simsync__Register reg = SIMSYNC__REGISTER__INIT;
    Simsync__RegisterKeys keys = SIMSYNC__REGISTER_KEYS__INIT;
    char sub[16], file[1024], pwhash[CRYPT_PWHASH_STR_BYTES], bad[32];
    char genrec[64], path[PATH_MAX];
    uint32_t cls_list[CLS_COUNT], mask = CLS_ALL, ncls = 0;
    uint8_t datakey[32], rkey[32], salt[CRYPT_SALT_BYTES];
    uint8_t wrap[32 + CRYPT_SEAL_OVERHEAD], box[32 + CRYPT_BOX_OVERHEAD];
    uint8_t xpk[32], check[32], vpk[32], proof[64];
    struct datakeys dk;
    struct link l;
    struct sim *s;
    int rc;

    if (!is_trusted(n))
        return node_fail(n, SIMSYNC_ESTATE, "only terminals register");
    if (classes != NULL &&
        class_mask_parse(classes, &mask, bad, sizeof(bad)) != SIMSYNC_OK)
        return node_fail(n, SIMSYNC_EINVAL,
                         "unknown class '%s' (classes: contacts, mail, "
                         "browser, archive, apps, pim, settings, rights)",
                         bad);
    rc = inserted_subscriber(n, sub, file, sizeof(file));
    if (rc != SIMSYNC_OK)
        return rc;
    /* The SIM itself checks the PIN again: registering is an owner act. */
    rc = sim_open(file, &s);
    if (rc == SIMSYNC_OK) {
        rc = sim_verify_pin(s, pin ? pin : "");
        sim_close(s);
    }
    if (rc == SIMSYNC_EINVAL)
        rc = SIMSYNC_EPIN;
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc, "the SIM refused the PIN: %s",
                         simsync_strerror(rc));
    if (kiosk) {
        /* The kiosk bound this terminal without a password (FIG 19). */
        pwhash[0] = '\0';
    } else {
        rc = password_check_or_set(n, password);
        if (rc != SIMSYNC_OK)
            return rc;
        rc = crypt_pwhash_str(pwhash, password, strlen(password));
        if (rc != SIMSYNC_OK)
            return rc;
    }
    rc = link_open(n, hub_addr, NULL, hub_id, &l);
    if (rc != SIMSYNC_OK)
        return rc;
    for (int c = 0; c < CLS_COUNT; c++)
        if (mask & (1u << c))
            cls_list[ncls++] = (uint32_t)c;
    reg.subscriber = sub;
    reg.terminal_id = n->terminal_id;
    reg.password_hash = pwhash;
    reg.classes = cls_list;
    reg.n_classes = ncls;
    reg.kiosk = kiosk != 0;
    env.msg_case = SIMSYNC__ENVELOPE__MSG_REGISTER;
    env.register_ = &reg;
    peer_err[0] = '\0';
    rc = node_send_env(l.ch, &env);
    if (rc == SIMSYNC_OK)
        rc = node_recv_kind(l.ch, SIMSYNC__ENVELOPE__MSG_REGISTER_REPLY,
                            (void **)&rep);
    if (rc != SIMSYNC_OK) {
        link_close(&l);
        if (rep)
            simsync__envelope__free_unpacked(rep, NULL);
        if (kiosk && rc == SIMSYNC_EREFUSED)
            return node_fail(n, rc,
                             "the hub holds no kiosk registration of this "
                             "terminal (%s, this node key) for the SIM's "
                             "subscriber; have it registered at the shop, "
                             "or register with a password",
                             n->terminal_id);
        return node_fail(n, rc, "the hub refused the registration: %s%s%s",
                         simsync_strerror(rc), peer_err[0] ? ": " : "",
                         peer_err);
    }
    if (rep->register_reply->subscriber_is_new) {
        crypt_random(datakey, sizeof(datakey));
        if (recovery == NULL) {
            uint8_t rnd[16];
            crypt_random(rnd, sizeof(rnd));
            crypt_hex_encode(genrec, rnd, sizeof(rnd));
            recovery = genrec;
            if (recovery_out != NULL && recovery_len > strlen(genrec))
                memcpy(recovery_out, genrec, strlen(genrec) + 1);
        }
        crypt_random(salt, sizeof(salt));
        rc = crypt_pwhash_key(rkey, recovery, strlen(recovery), salt);
        if (rc == SIMSYNC_OK)
            rc = crypt_seal(wrap, datakey, 32, NULL, 0, rkey);
        keys.recovery_salt.data = salt;
        keys.recovery_salt.len = sizeof(salt);
        keys.recovery_wrap.data = wrap;
        keys.recovery_wrap.len = sizeof(wrap);
    } else {
        Simsync__RegisterReply *rr = rep->register_reply;
        if (recovery == NULL) {
            rc = node_fail(n, SIMSYNC_EREFUSED,
                           "this subscriber already has data: give its "
                           "recovery secret (--recovery-file or "
                           "$SIMSYNC_RECOVERY)");
        } else if (rr->recovery_salt.len != CRYPT_SALT_BYTES ||
                   rr->recovery_wrap.len != sizeof(wrap)) {
            rc = SIMSYNC_EPROTO;
        } else {
            rc = crypt_pwhash_key(rkey, recovery, strlen(recovery),
                                  rr->recovery_salt.data);
            if (rc == SIMSYNC_OK &&
                crypt_unseal(datakey, rr->recovery_wrap.data,
                             rr->recovery_wrap.len, NULL, 0,
                             rkey) != SIMSYNC_OK)
                rc = node_fail(n, SIMSYNC_EREFUSED,
                               "wrong recovery secret for this subscriber");
        }
    }
    crypt_wipe(rkey, sizeof(rkey));
    if (rc == SIMSYNC_OK)
        rc = keys_derive(datakey, &dk);
    if (rc == SIMSYNC_OK) {
        uint8_t vsk[64], hh[64];
        crypt_hash(check, 32, "simsync-key-check", 17, dk.check, 32);
        /* Prove to the hub that we hold the data key: sign this session's
         * handshake hash with the key derived from it. */
        rc = crypt_sign_seed_keypair(vpk, vsk, dk.verifier);
        if (rc == SIMSYNC_OK)
            rc = chan_handshake_hash(l.ch, hh);
        if (rc == SIMSYNC_OK)
            rc = crypt_sign(proof, hh, sizeof(hh), vsk);
        crypt_wipe(vsk, sizeof(vsk));
        keys_wipe(&dk);
        if (!rep->register_reply->subscriber_is_new &&
            (rep->register_reply->key_check.len != 32 ||
             !crypt_equal(check, rep->register_reply->key_check.data, 32)))
            rc = node_fail(n, SIMSYNC_ECRYPTO,
                           "the hub's key check does not match this key");
    }
    simsync__envelope__free_unpacked(rep, NULL);
    rep = NULL;
    if (rc == SIMSYNC_OK) {
        crypt_sign_pk_to_x25519(xpk, n->ident.sign_pk);
        rc = crypt_box_seal(box, datakey, 32, xpk);
    }
    if (rc == SIMSYNC_OK) {
        keys.wrapped_key.data = box;
        keys.wrapped_key.len = sizeof(box);
        keys.key_check.data = check;
        keys.key_check.len = sizeof(check);
        keys.verifier_pk.data = vpk;
        keys.verifier_pk.len = sizeof(vpk);
        keys.key_proof.data = proof;
        keys.key_proof.len = sizeof(proof);
        simsync__envelope__init(&env);
        env.msg_case = SIMSYNC__ENVELOPE__MSG_REGISTER_KEYS;
        env.register_keys = &keys;
        rc = node_send_env(l.ch, &env);
    }
    if (rc == SIMSYNC_OK)
        rc = node_recv_kind(l.ch, SIMSYNC__ENVELOPE__MSG_REGISTER_DONE,
                            (void **)&rep);
    if (rep)
        simsync__envelope__free_unpacked(rep, NULL);
    if (rc == SIMSYNC_OK) {
        chan_peer_key(l.ch, n->hub_pk);
        snprintf(n->hub_addr, sizeof(n->hub_addr), "%s", hub_addr);
        snprintf(n->subscriber, sizeof(n->subscriber), "%s", sub);
        n->classes = mask;
        node_path_in(n, "datakey.box", path, sizeof(path));
        rc = node_file_put(path, box, sizeof(box));
        if (rc == SIMSYNC_OK)
            rc = node_save_binding(n);
        if (rc == SIMSYNC_OK)
            n->bound = 1;
    }
    crypt_wipe(datakey, sizeof(datakey));
    link_close(&l);
    if (rc != SIMSYNC_OK && n->err[0] == '\0')
        node_fail(n, rc, "registration failed: %s", simsync_strerror(rc));
    return rc;
}

int
simsync_register(struct simsync_node *n, const char *hub_addr,
                 const char *hub_id, const char *classes, const char *pin,
                 const char *password, const char *recovery, char *recovery_out,
                 size_t recovery_len)
{
    return register_run(n, hub_addr, hub_id, classes, pin, password, 0,
                        recovery, recovery_out, recovery_len);
}

int
simsync_register_kiosk(struct simsync_node *n, const char *hub_addr,
                       const char *hub_id, const char *classes, const char *pin,
                       const char *recovery, char *recovery_out,
                       size_t recovery_len)
{
    return register_run(n, hub_addr, hub_id, classes, pin, NULL, 1, recovery,
                        recovery_out, recovery_len);
}

int
simsync_node_key(struct simsync_node *n, char *buf, size_t len)
{
    if (len < 65)
        return SIMSYNC_EINVAL;
    crypt_hex_encode(buf, n->ident.sign_pk, 32);
    return SIMSYNC_OK;
}

int
simsync_classes_get(struct simsync_node *n, char *buf, size_t len)
{
    class_mask_format(n->bound ? n->classes : CLS_ALL, buf, len);
    return SIMSYNC_OK;
}

int
simsync_classes_set(struct simsync_node *n, const char *list)
{
    char bad[32];
    uint32_t mask;

    if (!n->bound)
        return node_fail(n, SIMSYNC_ESTATE,
                         "register first; classes are part of the binding");
    if (class_mask_parse(list, &mask, bad, sizeof(bad)) != SIMSYNC_OK)
        return node_fail(n, SIMSYNC_EINVAL, "unknown class '%s'", bad);
    n->classes = mask;
    return node_save_binding(n);
}

/* ------------------------------------------------------------ sync */

int
check_sim_binding(struct simsync_node *n)
{
    char sub[16], file[1024];
    int rc;

    if (!n->bound)
        return node_fail(n, SIMSYNC_EREFUSED,
                         "this terminal is not registered for any "
                         "subscriber; run 'simsync register'");
    rc = inserted_subscriber(n, sub, file, sizeof(file));
    if (rc != SIMSYNC_OK)
        return rc;
    if (strcmp(sub, n->subscriber) != 0)
        return node_fail(n, SIMSYNC_EREFUSED,
                         "the inserted SIM belongs to another subscriber; "
                         "this terminal is bound to a different one, so "
                         "nothing is uploaded or downloaded");
    return SIMSYNC_OK;
}

static int
meta_put_now(struct store_txn *txn, void *arg)
{
    uint8_t b[8];

    store_be64(b, *(uint64_t *)arg);
    return store_put(txn, STORE_META, "last_sync", 9, b, sizeof(b));
}

int
node_hello(struct simsync_node *n, struct link *l, int op, uint32_t classes,
           uint32_t *mask)
{
    return node_hello_next(n, l, op, classes, mask, 0);
}

int
node_hello_next(struct simsync_node *n, struct link *l, int op,
                uint32_t classes, uint32_t *mask, uint64_t next_in_ms)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT, *reply = NULL;
    Simsync__Hello hello = SIMSYNC__HELLO__INIT;
    uint32_t cls_list[CLS_COUNT], ncls = 0;
    struct hello_state hs;
    int rc;

    *mask = 0;
    rc = node_hello_prepare(n, &hs);
    if (rc != SIMSYNC_OK)
        return rc;
    for (int c = 0; c < CLS_COUNT; c++)
        if (classes & (1u << c))
            cls_list[ncls++] = (uint32_t)c;
    hello.proto = SIMSYNC_PROTO_VERSION;
    hello.role = strcmp(n->role, "desktop") == 0 ? SIMSYNC__ROLE__ROLE_DESKTOP
                                                 : SIMSYNC__ROLE__ROLE_TERMINAL;
    hello.subscriber = n->subscriber;
    hello.terminal_id = n->terminal_id;
    hello.classes = cls_list;
    hello.n_classes = ncls;
    hello.op = (Simsync__Op)op;
    hello.notices_seen = hs.notices_seen;
    hello.jobs_done = hs.done;
    hello.n_jobs_done = hs.ndone;
    hello.next_backup_in_ms = next_in_ms;
    hello.batch_bytes = n->sync_batch_bytes;
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
        rc = node_hello_absorb(n, &hs, reply->hello_reply->notices,
                               reply->hello_reply->n_notices,
                               reply->hello_reply->jobs,
                               reply->hello_reply->n_jobs);
    }
    if (reply)
        simsync__envelope__free_unpacked(reply, NULL);
    if (rc == SIMSYNC_EREFUSED)
        return node_fail(n, rc,
                         "the hub refused this terminal: it is not "
                         "registered there for this subscriber with this key");
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc, "the hub did not accept the session: %s",
                         simsync_strerror(rc));
    return SIMSYNC_OK;
}

int
node_request(struct simsync_node *n, int op, const void *req, int kind,
             void **out)
{
    struct link l = {0};
    uint32_t mask;
    int rc = link_open(n, n->hub_addr, n->hub_pk, NULL, &l);

    *out = NULL;
    if (rc == SIMSYNC_OK)
        rc = node_hello(n, &l, op, n->classes, &mask);
    if (rc == SIMSYNC_OK && req != NULL)
        rc = node_send_env(l.ch, req);
    if (rc == SIMSYNC_OK)
        rc = node_recv_kind(l.ch, kind, out);
    link_close(&l);
    return rc;
}

/* The batch size to ask for under byte limits a and b (0: none). */
static uint64_t
batch_for(uint64_t a, uint64_t b)
{
    uint64_t lim = a == 0 ? b : b == 0 ? a : a < b ? a : b, batch;

    if (lim == 0)
        return 0;
    batch = lim / 4;
    return batch < 65536 ? 65536 : batch;
}

/* Has the sync reached one of o's limits? sending: in the upload phase,
 * which started at phase_t0. */
static int
over_limit(const struct node_sync_opts *o, const struct session_stats *ss,
           int sending, uint64_t t0, uint64_t phase_t0, uint64_t now)
{
    uint64_t ms = now - t0, phase_ms = now - phase_t0;

    if ((o->max_ms > 0 && ms >= o->max_ms) ||
        (o->max_bytes > 0 && ss->sent_bytes + ss->recv_bytes >= o->max_bytes))
        return 1;
    if (sending)
        return (o->up_max_ms > 0 && phase_ms >= o->up_max_ms) ||
               (o->up_max_bytes > 0 && ss->sent_bytes >= o->up_max_bytes);
    return (o->down_max_ms > 0 && phase_ms >= o->down_max_ms) ||
           (o->down_max_bytes > 0 && ss->recv_bytes >= o->down_max_bytes);
}

/* Milliseconds until the nearest time limit (at most the link's usual 60 s
 * inactivity timeout). */
static int
time_left(const struct node_sync_opts *o, int sending, uint64_t t0,
          uint64_t phase_t0, uint64_t now)
{
    uint64_t left = 60000, phase_max = sending ? o->up_max_ms : o->down_max_ms;

    if (o->max_ms > 0)
        left = o->max_ms > now - t0 ? o->max_ms - (now - t0) : 1;
    if (phase_max > 0) {
        uint64_t p =
            phase_max > now - phase_t0 ? phase_max - (now - phase_t0) : 1;
        left = p < left ? p : left;
    }
    return left > 60000 ? 60000 : (int)left;
}

/* node_pump within o's limits. They are checked where both sides agree on
 * what is committed: after the peer acknowledged a batch we sent, after we
 * applied a batch we received, and when a phase ends; the sync stops there
 * before sending anything more. So a stopped sync never leaves sent data
 * unacknowledged, and each sync makes at least one batch of progress. A
 * time limit also bounds each wait for the peer. The SIM is checked at the
 * same points and before each received message is applied: a SIM taken
 * out (or swapped) during the sync stops it there, so nothing more moves
 * without the bound SIM, and nothing is left half applied. */
/* The sync stops because the bound SIM left (check_sim_binding failed). */
static int
sim_gone(struct simsync_node *n)
{
    return node_fail(n, SIMSYNC_EREFUSED,
                     "the bound SIM was taken out or changed during the "
                     "sync; it stopped after the last whole batch, and what "
                     "was moved is kept");
}

static int
pump_limited(struct simsync_node *n, struct link *l, struct session *s,
             const struct node_sync_opts *o)
{
    const struct session_stats *st = session_get_stats(s);
    uint64_t t0 = node_now_ms(), phase_t0 = t0, now, mark = 0, phases = 0;
    int sending = session_sending(s), rc;

    for (;;) {
        uint8_t *frame;
        size_t len, sealed;
        const uint8_t *msg;

        now = node_now_ms();
        if (session_sending(s) != sending) {
            sending = session_sending(s);
            phase_t0 = now;
            phases++;
        }
        if (!session_finished(s) &&
            st->batches_acked + st->batches_recv + phases != mark) {
            mark = st->batches_acked + st->batches_recv + phases;
            if (over_limit(o, st, sending, t0, phase_t0, now))
                return SIMSYNC_EAGAIN;
            if (check_sim_binding(n) != SIMSYNC_OK)
                return sim_gone(n);
        }
        while ((rc = session_output_sealed(s, &frame, &len, &sealed)) ==
               SIMSYNC_OK) {
            rc = chan_send_sealed(l->ch, frame, len, sealed);
            free(frame);
            if (rc != SIMSYNC_OK)
                return rc;
        }
        if (session_finished(s))
            return SIMSYNC_OK;
        conn_set_timeout(l->conn, time_left(o, sending, t0, phase_t0, now));
        rc = chan_recv(l->ch, &msg, &len);
        if (rc == SIMSYNC_ETIMEOUT &&
            over_limit(o, st, sending, t0, phase_t0, node_now_ms()))
            return SIMSYNC_EAGAIN;
        if (rc != SIMSYNC_OK)
            return rc;
        /* Nothing received is applied once the SIM is gone. */
        if (check_sim_binding(n) != SIMSYNC_OK)
            return sim_gone(n);
        rc = session_input(s, msg, len);
        if (rc != SIMSYNC_OK) {
            /* Tell the peer why before giving up. */
            while (session_output(s, &frame, &len) == SIMSYNC_OK) {
                int src = chan_send(l->ch, frame, len);
                free(frame);
                if (src != SIMSYNC_OK)
                    break;
            }
            return rc;
        }
    }
}

int
simsync_sync(struct simsync_node *n, const char *hub_addr,
             int allow_mass_delete, struct simsync_sync_report *rep)
{
    struct node_sync_opts o;

    memset(&o, 0, sizeof(o));
    o.hub_addr = hub_addr;
    o.allow_mass_delete = allow_mass_delete;
    o.dir = NODE_SYNC_BOTH;
    return node_sync(n, &o, rep);
}

int
simsync_sync_limited(struct simsync_node *n, const struct simsync_sync_opts *o,
                     struct simsync_sync_report *rep)
{
    struct node_sync_opts no;

    if (o == NULL || o->dir < 0 || o->dir > 2)
        return SIMSYNC_EINVAL;
    memset(&no, 0, sizeof(no));
    no.hub_addr = o->hub_addr;
    no.allow_mass_delete = o->allow_mass_delete;
    no.dir = o->dir == 1   ? NODE_SYNC_UPLOAD
             : o->dir == 2 ? NODE_SYNC_DOWNLOAD
                           : NODE_SYNC_BOTH;
    no.max_bytes = o->max_bytes;
    no.max_ms = o->max_ms;
    return node_sync(n, &no, rep);
}

int
node_sync(struct simsync_node *n, const struct node_sync_opts *o,
          struct simsync_sync_report *rep)
{
    static const int ops[] = {SIMSYNC__OP__OP_SYNC, SIMSYNC__OP__OP_UPLOAD,
                              SIMSYNC__OP__OP_DOWNLOAD};
    static const enum session_dirs dirs[] = {SESSION_BOTH, SESSION_SEND_ONLY,
                                             SESSION_RECV_ONLY};
    struct scan_stats scan;
    struct replica r;
    struct session *s = NULL;
    struct session_cfg cfg = {0};
    struct chan_stats cs;
    struct link l;
    uint32_t mask = 0;
    uint64_t t0 = node_now_ms(), now;
    int rc, scan_rc;

    memset(rep, 0, sizeof(*rep));
    n->err[0] = '\0';
    if ((unsigned)o->dir > (unsigned)NODE_SYNC_DOWNLOAD)
        return SIMSYNC_EINVAL;
    rc = check_sim_binding(n);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = replica_setup(n, &r);
    if (rc != SIMSYNC_OK)
        return rc;
    /* Even a download-only sync scans first: a local edit must be known
     * before an incoming version of the same item is applied. */
    scan_rc = folder_scan(&r, n->classes, o->allow_mass_delete, &scan);
    rep->scanned = scan.files;
    rep->unchanged = scan.unchanged;
    rep->added = scan.added;
    rep->edited = scan.edited;
    rep->deleted = scan.deleted;
    rep->renamed = scan.renamed;
    rep->guarded = scan.guarded;
    if (scan_rc == SIMSYNC_EMASSDEL) {
        keys_wipe(&r.keys);
        return node_fail(n, scan_rc,
                         "this sync would delete %llu items; nothing was "
                         "synced. Check the class folders, then confirm "
                         "with 'simsync sync --allow-delete'",
                         (unsigned long long)scan.guarded);
    }
    if (scan_rc != SIMSYNC_OK) {
        keys_wipe(&r.keys);
        return node_fail(n, scan_rc, "scanning %s failed: %s", n->data_dir,
                         simsync_strerror(scan_rc));
    }
    if (o->peer != NULL) {
        /* A paired peer: its own pinned key, its own knowledge slots. */
        rc = peer_connect(n, o->peer, ops[o->dir], n->classes, &l, &mask);
        if (rc != SIMSYNC_OK) {
            keys_wipe(&r.keys);
            return rc;
        }
        cfg.peer = node_peer_of(o->peer->pk);
        cfg.packed = o->peer->packed;
    } else {
        rc = link_open(n, o->hub_addr ? o->hub_addr : n->hub_addr, n->hub_pk,
                       NULL, &l);
        if (rc != SIMSYNC_OK) {
            keys_wipe(&r.keys);
            return rc;
        }
        /* A byte limit asks for batches of a quarter of it (64 KiB at
         * least), so the sync stops near the limit, not a whole 8 MiB
         * batch past. */
        n->sync_batch_bytes = batch_for(o->max_bytes, o->down_max_bytes);
        rc = node_hello(n, &l, ops[o->dir], n->classes, &mask);
        n->sync_batch_bytes = 0;
        if (rc != SIMSYNC_OK) {
            link_close(&l);
            keys_wipe(&r.keys);
            return rc;
        }
        cfg.peer = node_peer_of(n->hub_pk);
    }
    cfg.r = &r;
    cfg.classes = mask;
    cfg.initiator = 1;
    cfg.dirs = dirs[o->dir];
    cfg.batch_bytes = batch_for(o->max_bytes, o->up_max_bytes);
    rc = session_new(&cfg, &s);
    if (rc != SIMSYNC_OK)
        node_fail(n, rc, "sync with the %s failed: %s",
                  o->peer != NULL ? "peer" : "hub", session_start_why(rc));
    if (rc == SIMSYNC_OK)
        rc = pump_limited(n, &l, s, o);
    if (s != NULL) {
        const struct session_stats *ss = session_get_stats(s);
        rep->sent_items = ss->sent_items;
        rep->sent_bytes = ss->sent_bytes;
        rep->recv_items = ss->recv_items;
        rep->recv_bytes = ss->recv_bytes;
        rep->chunks_sent = ss->chunks_sent;
        rep->chunks_recv = ss->chunks_recv;
        rep->applied = ss->apply.applied;
        rep->conflicts = ss->apply.conflicts;
        rep->purged = ss->purged;
        rep->packed_batches = ss->batches_packed;
        if (rc != SIMSYNC_OK && session_peer_failed(s))
            node_fail(n, rc,
                      "sync with the %s failed: the %s reports: %s%s%s "
                      "(what was committed is kept)",
                      o->peer != NULL ? "peer" : "hub",
                      o->peer != NULL ? "peer" : "hub", simsync_strerror(rc),
                      session_peer_text(s)[0] != '\0' ? ": " : "",
                      session_peer_text(s));
    }
    chan_stats(l.ch, &cs);
    rep->wire_sent = cs.wire_sent;
    rep->wire_recv = cs.wire_recv;
    rep->handshake_bytes = cs.handshake_sent + cs.handshake_recv;
    session_free(s);
    link_close(&l);
    keys_wipe(&r.keys);
    now = node_now_ms();
    rep->seconds = (double)(now - t0) / 1000.0;
    /* "last_sync" is the last sync with the hub; a peer keeps its own. */
    if (rc == SIMSYNC_OK && o->peer != NULL)
        rc = peer_touch(n->st, r.sub, o->peer->pk, o->peer->addr_used);
    else if (rc == SIMSYNC_OK)
        rc = store_write(n->st, meta_put_now, &now);
    if (rc == SIMSYNC_EAGAIN)
        node_fail(n, rc,
                  "the sync stopped at its limit; what was moved is "
                  "kept, and the next sync goes on from there");
    if (rc != SIMSYNC_OK && n->err[0] == '\0')
        node_fail(n, rc, "sync with the %s failed: %s%s",
                  o->peer != NULL ? "peer" : "hub", simsync_strerror(rc),
                  (rc == SIMSYNC_ECLOSED || rc == SIMSYNC_ETIMEOUT)
                      ? " (what was committed is kept; run sync again to "
                        "resume)"
                      : "");
    return rc;
}

/* ------------------------------------------------------------ status */

struct pending_count {
    uint64_t self, n;
};

static int
count_own(const struct dot *d, const uint8_t id[ITEM_ID_BYTES], void *arg)
{
    struct pending_count *p = arg;

    (void)id;
    if (d->replica == p->self)
        p->n++;
    return 0;
}

/* Count records with prefix (sub|cls) in db; live items only for items. */
static int
count_prefix(struct store_txn *txn, enum store_db db, const uint8_t *prefix,
             size_t plen, int live_only, uint64_t *out)
{
    struct store_cursor *cur;
    const uint8_t *k, *v;
    size_t kl, vl;
    int rc;

    *out = 0;
    rc = store_cursor_open(txn, db, &cur);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_cursor_seek(cur, prefix, plen, (const void **)&k, &kl,
                           (const void **)&v, &vl);
    while (rc == SIMSYNC_OK && kl >= plen && memcmp(k, prefix, plen) == 0) {
        if (live_only) {
            Simsync__ItemRecord *rec =
                simsync__item_record__unpack(NULL, vl, v);
            if (rec && rec->n_versions == 1 && !rec->versions[0]->deleted)
                (*out)++;
            item_record_free(rec);
        } else {
            (*out)++;
        }
        rc = store_cursor_next(cur, (const void **)&k, &kl, (const void **)&v,
                               &vl);
    }
    store_cursor_close(cur);
    return rc == SIMSYNC_ENOTFOUND ? SIMSYNC_OK : rc;
}

int
simsync_status(struct simsync_node *n, struct simsync_class_status *out,
               size_t cap, size_t *count, uint64_t *last_sync_ms)
{
    struct store_txn *txn;
    uint8_t sub[SUB_BYTES], prefix[SUB_BYTES + 1];
    struct vv hubk = VV_INIT;
    uint64_t down[CLS_COUNT];
    const void *v;
    size_t vl;
    int rc;

    *count = 0;
    *last_sync_ms = 0;
    if (!n->bound)
        return node_fail(n, SIMSYNC_ESTATE, "this terminal is not registered");
    sub_key_terminal(n->subscriber, sub);
    rc = store_txn_begin(n->st, 1, &txn);
    if (rc != SIMSYNC_OK)
        return rc;
    if (store_get(txn, STORE_META, "last_sync", 9, &v, &vl) == SIMSYNC_OK &&
        vl == 8)
        *last_sync_ms = store_get_be64(v);
    rc = journal_pending_down_get(txn, down);
    for (int c = 0; rc == SIMSYNC_OK && c < CLS_COUNT && *count < cap; c++) {
        struct simsync_class_status *cs = &out[*count];
        struct pending_count pc = {n->replica, 0};
        memset(cs, 0, sizeof(*cs));
        cs->name = class_name(c);
        cs->selected = (n->classes >> c) & 1;
        memcpy(prefix, sub, SUB_BYTES);
        prefix[SUB_BYTES] = (uint8_t)c;
        rc = count_prefix(txn, STORE_ITEMS, prefix, sizeof(prefix), 1,
                          &cs->items);
        if (rc == SIMSYNC_OK)
            rc = count_prefix(txn, STORE_CONFLICTS, prefix, sizeof(prefix), 0,
                              &cs->conflicts);
        if (rc == SIMSYNC_OK)
            rc = count_prefix(txn, STORE_TOMBS, prefix, sizeof(prefix), 0,
                              &cs->tombstones);
        /* Own changes above what the hub acknowledged (the hub's
         * knowledge of us is what our last complete upload told it). */
        if (rc == SIMSYNC_OK)
            rc = journal_knowledge_get(
                txn, sub, c, session_ack_peer(node_peer_of(n->hub_pk)), &hubk);
        if (rc == SIMSYNC_OK)
            rc = journal_scan(txn, sub, c, &hubk, count_own, &pc);
        cs->pending_up = pc.n;
        cs->pending_down = down[c];
        (*count)++;
    }
    store_txn_abort(txn);
    vv_free(&hubk);
    return rc;
}

struct pending_up {
    struct store_txn *txn;
    const uint8_t *sub;
    int cls;
    uint64_t self, items, bytes;
};

static int
sum_own(const struct dot *d, const uint8_t id[ITEM_ID_BYTES], void *arg)
{
    struct pending_up *p = arg;
    Simsync__ItemRecord *rec = NULL;
    uint64_t size = 0;

    if (d->replica != p->self)
        return 0;
    if (item_get(p->txn, p->sub, p->cls, id, &rec) == SIMSYNC_OK &&
        rec->n_versions == 1 && !rec->versions[0]->deleted)
        size = rec->versions[0]->size;
    item_record_free(rec);
    p->items++;
    p->bytes += size > 0 ? size : 1;
    return 0;
}

int
node_pending_up(struct simsync_node *n, int scan, struct scan_stats *ss,
                struct node_pending *out)
{
    struct scan_stats local;
    struct store_txn *txn = NULL;
    struct replica r;
    struct vv hubk = VV_INIT;
    int rc;

    memset(out, 0, sizeof(*out));
    if (ss == NULL)
        ss = &local;
    memset(ss, 0, sizeof(*ss));
    if (!n->bound)
        return node_fail(n, SIMSYNC_ESTATE, "this terminal is not registered");
    rc = replica_setup(n, &r);
    if (rc != SIMSYNC_OK)
        return rc;
    if (scan)
        rc = folder_scan(&r, n->classes, 0, ss);
    keys_wipe(&r.keys);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_txn_begin(n->st, 1, &txn);
    if (rc == SIMSYNC_OK)
        rc = journal_counter_get(txn, &out->counter);
    for (int c = 0; rc == SIMSYNC_OK && c < CLS_COUNT; c++) {
        struct pending_up p = {txn, r.sub, c, n->replica, 0, 0};
        if (!(n->classes & (1u << c)))
            continue;
        rc = journal_knowledge_get(
            txn, r.sub, c, session_ack_peer(node_peer_of(n->hub_pk)), &hubk);
        if (rc == SIMSYNC_OK)
            rc = journal_scan(txn, r.sub, c, &hubk, sum_own, &p);
        out->items += p.items;
        out->bytes += p.bytes;
    }
    store_txn_abort(txn);
    vv_free(&hubk);
    return rc;
}

/* ------------------------------------------------------------ conflicts */

int
simsync_conflicts(struct simsync_node *n, struct simsync_conflict *out,
                  size_t cap, size_t *count)
{
    struct store_txn *txn;
    struct store_cursor *cur;
    uint8_t sub[SUB_BYTES];
    const uint8_t *k, *v;
    size_t kl, vl;
    struct replica r;
    int rc;

    *count = 0;
    if (!n->bound)
        return node_fail(n, SIMSYNC_ESTATE, "this terminal is not registered");
    memset(&r, 0, sizeof(r));
    snprintf(r.data_dir, sizeof(r.data_dir), "%s", n->data_dir);
    sub_key_terminal(n->subscriber, sub);
    rc = store_txn_begin(n->st, 1, &txn);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_cursor_open(txn, STORE_CONFLICTS, &cur);
    if (rc == SIMSYNC_OK)
        rc = store_cursor_seek(cur, sub, SUB_BYTES, (const void **)&k, &kl,
                               (const void **)&v, &vl);
    while (rc == SIMSYNC_OK && kl > SUB_BYTES &&
           memcmp(k, sub, SUB_BYTES) == 0) {
        Simsync__ConflictRecord *cr =
            simsync__conflict_record__unpack(NULL, vl, v);
        struct stat st;
        /* A copy deleted elsewhere (resolved on another terminal) is no
         * longer a conflict here. */
        if (cr != NULL && cr->cls < CLS_COUNT &&
            folder_stat(&r, (int)cr->cls, cr->copy_name, &st) == SIMSYNC_OK) {
            if (*count < cap) {
                struct simsync_conflict *c = &out[*count];
                snprintf(c->cls, sizeof(c->cls), "%s",
                         class_name((int)cr->cls));
                snprintf(c->name, sizeof(c->name), "%s", cr->name);
                snprintf(c->copy_name, sizeof(c->copy_name), "%s",
                         cr->copy_name);
                c->copy_is_mine = cr->copy_is_mine;
            }
            (*count)++;
        }
        if (cr)
            simsync__conflict_record__free_unpacked(cr, NULL);
        rc = store_cursor_next(cur, (const void **)&k, &kl, (const void **)&v,
                               &vl);
    }
    store_cursor_close(cur);
    store_txn_abort(txn);
    return rc == SIMSYNC_ENOTFOUND ? SIMSYNC_OK : rc;
}

struct resolve_arg {
    struct simsync_node *n;
    struct replica *r;
    const char *item;
    const char *keep;
    int found;
};

int
simsync_conflict_resolve(struct simsync_node *n, const char *item,
                         const char *keep)
{
    struct simsync_conflict *list;
    size_t count = 0, i;
    struct replica r;
    struct scan_stats st;
    int rc, cls = -1;
    const char *slash = item ? strchr(item, '/') : NULL;
    char cname[16];

    if (keep == NULL ||
        (strcmp(keep, "mine") != 0 && strcmp(keep, "theirs") != 0 &&
         strcmp(keep, "both") != 0))
        return node_fail(n, SIMSYNC_EINVAL,
                         "--keep takes mine, theirs or both");
    if (slash == NULL || (size_t)(slash - item) >= sizeof(cname))
        return node_fail(
            n, SIMSYNC_EINVAL,
            "name the item as CLASS/NAME, e.g. contacts/alice.vcf");
    memcpy(cname, item, (size_t)(slash - item));
    cname[slash - item] = '\0';
    cls = class_parse(cname);
    if (cls < 0)
        return node_fail(n, SIMSYNC_EINVAL, "unknown class '%s'", cname);
    list = calloc(256, sizeof(*list));
    if (list == NULL)
        return SIMSYNC_ENOMEM;
    rc = simsync_conflicts(n, list, 256, &count);
    for (i = 0; rc == SIMSYNC_OK && i < count && i < 256; i++)
        if (strcmp(list[i].cls, cname) == 0 &&
            (strcmp(list[i].name, slash + 1) == 0 ||
             strcmp(list[i].copy_name, slash + 1) == 0))
            break;
    if (rc == SIMSYNC_OK && (i == count || i == 256))
        rc = node_fail(n, SIMSYNC_ENOTFOUND,
                       "no conflict for %s; 'simsync conflicts' lists them",
                       item);
    if (rc == SIMSYNC_OK)
        rc = replica_setup(n, &r);
    if (rc == SIMSYNC_OK) {
        struct simsync_conflict *c = &list[i];
        int want_copy = strcmp(keep, "both") != 0 &&
                        ((strcmp(keep, "mine") == 0) == c->copy_is_mine);
        if (want_copy)
            rc = folder_copy(&r, cls, c->copy_name, c->name);
        if (rc == SIMSYNC_OK && strcmp(keep, "both") != 0)
            rc = folder_remove(&r, cls, c->copy_name);
        if (rc == SIMSYNC_OK) {
            /* Record the outcome as local changes now, then drop the
             * inbox entry. */
            uint8_t id[ITEM_ID_BYTES], key[ITEM_KEY_BYTES], sub[SUB_BYTES];
            struct store_txn *txn;
            rc = folder_scan(&r, 1u << cls, 1, &st);
            keys_item_id(&r.keys, cls, c->copy_name, id);
            sub_key_terminal(n->subscriber, sub);
            item_key(key, sub, cls, id);
            if (rc == SIMSYNC_OK)
                rc = store_txn_begin(n->st, 0, &txn);
            if (rc == SIMSYNC_OK) {
                rc = store_del(txn, STORE_CONFLICTS, key, sizeof(key));
                if (rc == SIMSYNC_OK || rc == SIMSYNC_ENOTFOUND)
                    rc = store_txn_commit(txn);
                else
                    store_txn_abort(txn);
            }
        }
        keys_wipe(&r.keys);
    }
    free(list);
    return rc;
}

int
simsync_classes_parse(const char *list, uint32_t *mask, char *bad,
                      size_t badlen)
{
    return class_mask_parse(list, mask, bad, badlen);
}

void
simsync_classes_format(uint32_t mask, char *buf, size_t len)
{
    class_mask_format(mask, buf, len);
}
