/* node.h -- internals shared by the node modules (node.c: home, identity,
 * SIM, registration and the terminal's side of a sync; hub.c: the hub). */
#ifndef SIMSYNC_NODE_H
#define SIMSYNC_NODE_H

#include <limits.h>
#include <stdint.h>
#include "chan.h"
#include "replica.h"
#include "simsync.h"
#include "simsync.pb-c.h"
#include "store.h"

#define NODE_ID_LEN 40

struct simsync_node {
    char home[PATH_MAX];
    char role[16]; /* terminal, desktop, hub */
    char terminal_id[64];
    char data_dir[PATH_MAX];
    /* Hello.batch_bytes for the sync being opened (a limited download);
     * node_sync sets it around its Hello. */
    uint64_t sync_batch_bytes;
    /* Hub: how long a connection may stay silent, and how long it may take
     * from accept to its first message (0: HUB_IDLE_DEFAULT_MS). */
    int hub_idle_ms;
    struct chan_identity ident;
    uint64_t replica; /* node key + store epoch */
    struct store *st;
    char err[512];
    /* Terminal binding (when bound). */
    int bound;
    char hub_addr[256];
    uint8_t hub_pk[32];
    char subscriber[16];
    uint32_t classes;
    uint32_t lazy; /* classes taken as metadata only (binding "lazy=") */
    /* Hub: key for keyed subscriber hashes. */
    uint8_t pepper[32];
};

/* Set the node's error message (printf-style) and return `code`. */
int node_fail(struct simsync_node *n, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fingerprint of an Ed25519 key as shown to people. */
void node_id_of(const uint8_t pk[32], char out[NODE_ID_LEN]);
/* 64-bit peer id of a key, for resume cursors. Never 0. */
uint64_t node_peer_of(const uint8_t pk[32]);

/* "<home>/name" into buf. Returns SIMSYNC_OK or SIMSYNC_EINVAL (too
 * long). */
int node_path_in(const struct simsync_node *n, const char *name, char *buf,
                 size_t len);

/* Write a small file atomically (temporary file, fsync, rename) with mode
 * 0600. Returns SIMSYNC_OK, SIMSYNC_ENOSPC or SIMSYNC_EIO. */
int node_file_put(const char *path, const void *data, size_t len);
/* Read a small file of fewer than cap bytes into buf, NUL-terminated; *len
 * (may be NULL) its size. Returns SIMSYNC_OK, SIMSYNC_ENOTFOUND,
 * SIMSYNC_ETOOBIG (cap bytes or more) or SIMSYNC_EIO. */
int node_file_get(const char *path, void *buf, size_t cap, size_t *len);

/* Send one encoded envelope over ch / receive and decode one. */
int node_send_env(struct chan *ch, const void *env);
/* The same in the urgent lane (chan.h): for control messages (a BUSY
 * answer, an error) that must not wait behind queued bulk. */
int node_send_env_urgent(struct chan *ch, const void *env);
int node_recv_env(struct chan *ch, void **env);
/* Send a ChunkData envelope for the sealed chunk `blob` (blen bytes, maybe
 * 0: "not here") with chan_send_sealed, so the blob, already ciphertext
 * under the data key, is authenticated by the channel but not encrypted a
 * second time. */
int node_send_chunk(struct chan *ch, const uint8_t *id, size_t idlen,
                    const uint8_t *blob, size_t blen);
/* Receive one envelope that must be of kind `kind` (a Simsync__Envelope
 * msg case): another kind is SIMSYNC_EPROTO; an Error frame becomes its
 * code, as in node_recv_env. */
int node_recv_kind(struct chan *ch, int kind, void **env);
/* The text of the last Error frame node_recv_env turned into a code on
 * this thread (printable ASCII, at most 159 characters; it comes from the
 * peer), or "". Valid until the next node_recv_env on the thread. */
const char *node_peer_error(void);
/* Forget it, before an exchange whose failure should quote the peer. */
void node_peer_error_clear(void);
/* Send an Error frame (for a peer we give up on). */
int node_send_error(struct chan *ch, int code, const char *text);

/* Drive a session over a chan until it finishes or fails. */
struct session;
int node_pump(struct chan *ch, struct session *s);

uint64_t node_now_ms(void);

/* A secure link from a terminal to its hub. */
struct link {
    struct conn *conn;
    struct chan *ch;
};
/* Connect to addr and run the handshake, pinning pin_pk (NULL: any) and
 * checking hub_id (NULL: no check). Sets the node's error on failure. */
int link_open(struct simsync_node *n, const char *addr, const uint8_t *pin_pk,
              const char *hub_id, struct link *l);
void link_close(struct link *l);
/* Hello for operation `op` (Simsync__Op) and these classes; *mask gets the
 * classes the hub accepted. */
int node_hello(struct simsync_node *n, struct link *l, int op, uint32_t classes,
               uint32_t *mask);
/* node_hello for OP_BACKUP, asking the hub to schedule the next backup
 * next_in_ms from now (0: no wish). */
int node_hello_next(struct simsync_node *n, struct link *l, int op,
                    uint32_t classes, uint32_t *mask, uint64_t next_in_ms);

/* node_jobs.c: what a Hello carries for notices and restore jobs, and
 * keeping what the HelloReply brings (meta "notices", "notices_seen",
 * "job:<id>", "jobs_done"). */
struct hello_state {
    uint64_t notices_seen;
    uint64_t done[32];
    size_t ndone;
};
int node_hello_prepare(struct simsync_node *n, struct hello_state *hs);
int node_hello_absorb(struct simsync_node *n, const struct hello_state *hs,
                      Simsync__Notice *const *notices, size_t nnotices,
                      Simsync__RestoreJob *const *jobs, size_t njobs);
/* Add a notice made on this terminal. */
int node_notice_local(struct simsync_node *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Leave a restore for o->to_terminal at the hub; *id gets the job id. */
int node_job_leave(struct simsync_node *n, const struct simsync_restore_opts *o,
                   uint64_t *id);
/* How many restore jobs wait here. */
int node_jobs_waiting(struct simsync_node *n, size_t *count);
/* Keep a job the hub pushed on a control connection. */
int node_job_store(struct simsync_node *n, const Simsync__RestoreJob *j);

/* node_backup.c: is a backup of this terminal running (lock held)?
 * Leaves the node's error alone. */
int node_backup_running(const struct simsync_node *n);

/* The newest generation this terminal knows to exist (made here, or in
 * the last checked listing) and its creation time; 0, 0 when none. */
int node_backup_newest(struct simsync_node *n, uint64_t *gen, uint64_t *ms);

/* Does a `simsync daemon` hold this home (its lock is taken)? */
int node_daemon_running(const char *home);

/* Regular files (and their bytes) in the class folders this node does not
 * sync, never uploaded; `names` gets those classes, comma-separated. */
void node_unsynced_files(struct simsync_node *n, uint64_t *files,
                         uint64_t *bytes, char *names, size_t len);

/* Chunk ids asked or fetched per message. */
#define NODE_QUERY_IDS 4096
/* Largest manifest plaintext a terminal opens. */
#define NODE_MANIFEST_PLAIN_MAX (1u << 30)
/* Associated data of generation `gen`'s sealed manifest. */
#define NODE_MANIFEST_AD_BYTES (16 + 8)
void node_manifest_ad(uint8_t ad[NODE_MANIFEST_AD_BYTES], uint64_t gen);
/* The hub's generation listing (an Envelope holding a GenerationList). */
int node_gen_list(struct simsync_node *n, Simsync__Envelope **out);
/* Check a listing against the newest generation this terminal has seen
 * (rollback, foreign or forged entries: SIMSYNC_ECRYPTO with the node's
 * error set), then remember its newest generation. */
int node_gen_check(struct simsync_node *n, const Simsync__GenerationList *gl);

/* One request on a fresh link to the registered hub: Hello{op}, the
 * envelope `req` (NULL: none), then one answer of kind `kind` into *out
 * (free_unpacked by the caller). */
int node_request(struct simsync_node *n, int op, const void *req, int kind,
                 void **out);

/* node.c: a sync with the hub, both ways or one way, within limits (the
 * daemon's syncs; simsync_sync is BOTH without limits). */
enum node_sync_dir { NODE_SYNC_BOTH, NODE_SYNC_UPLOAD, NODE_SYNC_DOWNLOAD };
struct node_sync_opts {
    const char *hub_addr; /* NULL: the registered hub */
    int allow_mass_delete;
    enum node_sync_dir dir;
    /* Limits, 0 for none. The sync stops between two frames once one is
     * reached and returns SIMSYNC_EAGAIN: what was committed stays, and
     * the next sync resumes after it. */
    uint64_t max_bytes, max_ms;           /* the whole sync */
    uint64_t up_max_bytes, up_max_ms;     /* its upload phase */
    uint64_t down_max_bytes, down_max_ms; /* its download phase */
    /* A paired peer instead of the hub (peer.h); NULL: the hub. */
    struct peer_target *peer;
};
int node_sync(struct simsync_node *n, const struct node_sync_opts *o,
              struct simsync_sync_report *rep);
/* This terminal's changes the hub has not acknowledged. */
struct node_pending {
    uint64_t items;   /* changed items (deletions too) */
    uint64_t bytes;   /* their plaintext bytes, at least 1 per item, so that
                       * 0 means nothing pending */
    uint64_t counter; /* the local change counter: grows with every local
                       * change recorded, by whatever recorded it */
};
/* Fill *out; with scan, the class folders are scanned first (stats into
 * *ss, may be NULL; SIMSYNC_EMASSDEL when the scan stops at the
 * mass-delete guard). */
struct scan_stats;
int node_pending_up(struct simsync_node *n, int scan, struct scan_stats *ss,
                    struct node_pending *out);

/* Write <home>/binding from n (hub, key, subscriber, classes, lazy). */
int node_save_binding(struct simsync_node *n);

/* The inserted SIM must be the bound subscriber's. */
int check_sim_binding(struct simsync_node *n);
/* The terminal's replica: data keys, store, subscriber, data folder. */
int replica_setup(struct simsync_node *n, struct replica *r);
/* The store key of this trusted node's subscriber (as in replica_setup). */
void node_sub_key(const struct simsync_node *n, uint8_t out[SUB_BYTES]);

#endif /* SIMSYNC_NODE_H */
