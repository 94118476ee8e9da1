/* peer.h -- trusted peers: two trusted nodes of one subscriber (a desktop
 * companion and the subscriber's handsets) pair once, then sync with each
 * other directly, over the same secure channel and with the same session
 * as with the hub (docs/peers.md, docs/protocol.md section 11).
 *
 *   peer.c        the pairing proof and code (pure), the list of paired
 *                 peers (registry db), the pairing exchange, and the
 *                 connecting side of a sync with a peer
 *   peer_serve.c  the accepting side: a listener that serves sessions to
 *                 paired peers, one at a time, on its own thread
 *
 * Pairing, on one connection after the Noise handshake (h is its 64-byte
 * handshake hash):
 *
 *   initiator -> PairHello{proto, role, terminal id, proof_I}
 *   responder -> PairHello{proto, role, terminal id, proof_R, commit}
 *   initiator -> PairNonce{n_I}
 *   responder -> PairNonce{n_R}          commit == H(h, n_R)
 *   both show code(h, n_I, n_R); each user confirms or refuses
 *   each      -> PairConfirm{ok}; each pins the other once both said yes
 *
 * proof = MAC under the pairing key (derived from the subscriber's data
 * key, which never travels) over the side, h, the sender's node key and
 * terminal ID: only a node of the same subscriber can make it, and it is
 * bound to this connection. The responder commits to its nonce before it
 * sees the initiator's, so a man in the middle who holds the data key
 * still matches the two codes with probability 10^-6 per attempt. */
#ifndef SIMSYNC_PEER_H
#define SIMSYNC_PEER_H

#include <stddef.h>
#include <stdint.h>
#include "keys.h"
#include "node.h"

#define PEER_KEY_BYTES 32
#define PEER_PROOF_BYTES 32
#define PEER_NONCE_BYTES 32
#define PEER_CODE_LEN 6 /* decimal digits */
#define PEER_HASH_BYTES 64

/* Which end of the pairing connection made a proof. */
enum peer_side {
    PEER_SIDE_INITIATOR = 'I', /* connected (pair --peer) */
    PEER_SIDE_RESPONDER = 'R'  /* accepted (pair --listen) */
};

/* --------------------------------------------------- pure (unit tested) */

/* The pairing key: BLAKE2b-256 keyed with the verifier seed (subkey 6 of
 * the data key) over "simsync-pair-key". */
void peer_pair_key(const struct datakeys *k, uint8_t out[PEER_KEY_BYTES]);

/* The proof a node of side `side` sends: BLAKE2b-256 keyed with the
 * pairing key over "simsync-pair-proof" || side (1 byte) || h (64) ||
 * node_pk (32) || len(terminal_id) (1 byte) || terminal_id.
 * Returns SIMSYNC_OK, or SIMSYNC_EINVAL for a terminal ID of more than
 * 255 bytes. */
int peer_pair_proof(const uint8_t key[PEER_KEY_BYTES], enum peer_side side,
                    const uint8_t h[PEER_HASH_BYTES], const uint8_t node_pk[32],
                    const char *terminal_id, uint8_t out[PEER_PROOF_BYTES]);

/* Check a received proof (len bytes) in constant time. Returns SIMSYNC_OK,
 * or SIMSYNC_EREFUSED when it was not made with this pairing key for
 * exactly this side, handshake hash, key and terminal ID. */
int peer_pair_check(const uint8_t key[PEER_KEY_BYTES], enum peer_side side,
                    const uint8_t h[PEER_HASH_BYTES], const uint8_t node_pk[32],
                    const char *terminal_id, const uint8_t *proof, size_t len);

/* The responder's commitment to its nonce: BLAKE2b-256 over
 * "simsync-pair-commit" || h || nonce. */
void peer_pair_commit(const uint8_t h[PEER_HASH_BYTES],
                      const uint8_t nonce[PEER_NONCE_BYTES], uint8_t out[32]);

/* The code both users compare: the first 8 bytes of BLAKE2b-256 over
 * "simsync-pair-code" || h || n_I || n_R, read big-endian, modulo 10^6,
 * as 6 digits with leading zeros, NUL-terminated. */
void peer_pair_code(const uint8_t h[PEER_HASH_BYTES],
                    const uint8_t n_i[PEER_NONCE_BYTES],
                    const uint8_t n_r[PEER_NONCE_BYTES],
                    char out[PEER_CODE_LEN + 1]);

/* ------------------------------------------------------------ peers */

/* Find the paired peer whose terminal ID or node ID is `id`, or (id NULL)
 * whose key is `pk`, in the records of subscriber key `sub`. *out returned
 * (simsync__peer_record__free_unpacked). SIMSYNC_ENOTFOUND when there is
 * none. Never touches a node's error text (safe on any thread). */
int peer_find(struct store *st, const uint8_t sub[SUB_BYTES], const char *id,
              const uint8_t *pk, Simsync__PeerRecord **out);

/* Run the pairing exchange over `c` (borrowed, connected; the caller
 * closes it), as initiator (1: it connected) or responder. peer_addr is
 * what the initiator connected to (kept in the record), NULL on the
 * responder. On success the peer is pinned and described in *out.
 * Returns SIMSYNC_OK, SIMSYNC_EREFUSED (another subscriber, a code not
 * confirmed here or there: nothing pinned), SIMSYNC_ECRYPTO (a nonce that
 * does not match its commitment), SIMSYNC_ESTATE (not registered, a hub),
 * SIMSYNC_EINVAL (itself), or the channel's errors; the node's error
 * text says what happened. */
int peer_pair_conn(struct simsync_node *n, struct conn *c, int initiator,
                   const char *peer_addr, const struct simsync_pair_opts *o,
                   struct simsync_peer *out);

/* The connecting side of a sync with a paired peer (node_sync). */
struct peer_target {
    const char *addr;    /* [in] HOST:PORT, or NULL: the peer's last known
                          * address (needs `with`) */
    const char *with;    /* [in] terminal ID or node ID of the paired peer,
                          * or NULL: the paired peer that answers at addr */
    uint8_t pk[32];      /* [out] the peer's key, once connected */
    char addr_used[256]; /* [out] where it was reached */
    int packed;          /* [out] both offered FEATURE_PACKED: the session
                          * sends its batches packed (pack.h) */
};
/* Connect to the target, check its key against the pinned ones, and open
 * a session of operation `op` (OP_SYNC, OP_UPLOAD, OP_DOWNLOAD) for
 * `classes`; *mask gets the classes both sides sync. Sets the node's
 * error on failure: SIMSYNC_EREFUSED (not paired here or there),
 * SIMSYNC_ENOTFOUND (no such peer), SIMSYNC_ESTATE (no address known),
 * SIMSYNC_ECONNECT and the channel's errors. */
int peer_connect(struct simsync_node *n, struct peer_target *t, int op,
                 uint32_t classes, struct link *l, uint32_t *mask);
/* 1 unless the environment says SIMSYNC_PEER_PACK=0: whether this node
 * offers (connecting) or accepts (serving) packed batches. The switch
 * exists to test and debug the plain form between peers. */
int peer_pack_enabled(void);

/* After a complete session with the peer of key pk: remember where it
 * answered (addr may be NULL: keep) and when. */
int peer_touch(struct store *st, const uint8_t sub[SUB_BYTES],
               const uint8_t pk[32], const char *addr);

/* ------------------------------------------------------------ serving */

struct peer_server;

/* What the server tells its owner, from the server's thread. */
struct peer_serve_hooks {
    /* One line per connection (may be NULL). */
    void (*log)(void *arg, const char *line);
    /* After a session that changed something here: the number of versions
     * applied (may be NULL). They are not local changes of this node, so
     * nothing else would tell a daemon that they still have to go on to
     * the hub. */
    void (*applied)(void *arg, uint64_t count);
    void *arg;
};

#define PEER_SERVE_MAX 8 /* link addresses one server listens on */

/* Serve paired peers on the link addresses addrs[0..naddrs) (link.h:
 * HOST:PORT, tcp:..., rfcomm:CHANNEL, ...; 1..PEER_SERVE_MAX of them) from
 * a thread of its own, one session at a time over all of them: a peer whose key is not pinned here is refused
 * (Error EREFUSED); a paired one gets a normal session with this node as
 * responder, after a scan of the class folders. hooks (may be NULL) is
 * copied. The node must be a registered trusted node; its error text is
 * set on failure here, never by the server's thread, which uses only the
 * node's store, identity, subscriber and classes (read once: `simsync
 * classes` takes effect when serving starts again). *out returned
 * (peer_serve_stop). */
int peer_serve_start(struct simsync_node *n, const char *const *addrs,
                     size_t naddrs, const struct peer_serve_hooks *hooks,
                     struct peer_server **out);
/* The addresses it listens on, as bound ("127.0.0.1:7172",
 * "rfcomm:BDADDR:3"), separated by ", ". Valid until peer_serve_stop. */
const char *peer_serve_addr(const struct peer_server *s);
/* How many listeners it has, and the bound address of listener i. */
size_t peer_serve_count(const struct peer_server *s);
const char *peer_serve_addr_at(const struct peer_server *s, size_t i);
/* Stop accepting, let a session in flight end, free. NULL-safe. */
void peer_serve_stop(struct peer_server *s);

#endif /* SIMSYNC_PEER_H */
