/* session.h -- one sync session as a sans-I/O state machine.
 *
 * A session is fed the frames received from the peer (session_input) and
 * yields the frames to send (session_output). It never opens a socket,
 * sleeps or reads a clock: the caller moves bytes over whatever transport
 * it has and sets replica->now_ms. The store (through the replica) is the
 * one thing it touches.
 *
 * A session has two phases, run in the same order on both sides: the
 * initiator (terminal) sends its changes first, then receives; the
 * responder (hub) receives first, then sends. In each phase:
 *
 *   receiver -> Knowledge          (per class: counter known per origin)
 *   sender   -> ChangeBatch(seq)   (entries above that knowledge)
 *   receiver -> ChunkWant(seq)     (chunks it lacks; when it lacks none
 *                                   it answers BatchAck at once)
 *   sender   -> ChunkData ...      (one per wanted chunk)
 *   receiver -> BatchAck(seq)      (the batch is committed)
 *   ... more batches ...
 *   sender   -> Done(items, bytes, digest, sender knowledge)
 *   receiver -> Complete(items, bytes, digest)
 *
 * See docs/protocol.md for the exact rules. */
#ifndef SIMSYNC_SESSION_H
#define SIMSYNC_SESSION_H

#include "replica.h"

#define SESSION_BATCH_ITEMS 256
#define SESSION_BATCH_BYTES (512u * 1024)
#define SESSION_BATCH_CHUNK_BYTES (8u << 20)

/* Which phases a session runs: both (a sync), or only one. An upload-only
 * sync is SEND_ONLY on the terminal and RECV_ONLY on the hub, a
 * download-only sync the reverse; the two sides agree through Hello.op
 * (OP_UPLOAD, OP_DOWNLOAD). The one phase runs exactly as it would within
 * a full session. */
enum session_dirs {
    SESSION_BOTH = 0,  /* initiator: send, then receive; responder: reverse */
    SESSION_SEND_ONLY, /* this side's send phase only */
    SESSION_RECV_ONLY  /* this side's receive phase only */
};

struct session_cfg {
    struct replica *r; /* borrowed for the session's life */
    uint32_t classes;  /* classes this session syncs */
    uint64_t peer;     /* the peer's id, for resume cursors (non-zero) */
    int initiator;     /* 1: send first, then receive */
    /* Hub only: per class, the tombstone horizon announced in Done (see
     * replica_horizon); NULL announces none. Borrowed. */
    const struct vv *horizon;
    enum session_dirs dirs; /* SESSION_BOTH unless limited */
    /* Largest batch this side sends, in content bytes (inline bodies and
     * chunks): 0 for SESSION_BATCH_CHUNK_BYTES. A batch always carries at
     * least one change. Small batches let a limited sync stop near its
     * limit. */
    uint64_t batch_bytes;
    /* Both sides trusted and agreed on FEATURE_PACKED (peer sessions
     * only): batches travel as PackedBatch (pack.h, docs/protocol.md
     * 11.4), and a plain ChangeBatch is a protocol error, as a packed one
     * is in a session without it. `bytes` of the stream totals then counts
     * inline bodies by their plaintext size. */
    int packed;
};

struct session_stats {
    uint64_t sent_items, sent_bytes; /* changes and content bytes sent */
    uint64_t recv_items, recv_bytes;
    uint64_t batches_sent, batches_recv;
    uint64_t batches_acked; /* sent batches the peer committed */
    uint64_t chunks_sent, chunks_recv;
    struct apply_stats apply;
    uint64_t purged; /* tombstones purged under the peer's horizon */
    uint64_t batches_packed; /* batches sent or received packed */
};

struct session;

/* Start a session. SIMSYNC_OK, SIMSYNC_EINVAL (a bad cfg), SIMSYNC_ENOMEM,
 * a store error, or SIMSYNC_ETOOBIG when the knowledge to announce holds
 * more replicas than a version vector may (VV_MAX_ENTRIES): see
 * session_start_why. */
int session_new(const struct session_cfg *cfg, struct session **out);
/* One sentence on why session_new failed with rc, for a person and for
 * the peer's Error frame. */
const char *session_start_why(int rc);
void session_free(struct session *s); /* NULL-safe */

/* Feed one received frame. Returns SIMSYNC_OK, or an error after which the
 * session is failed (an Error frame for the peer may be queued). A
 * received Error frame returns the peer's code. */
int session_input(struct session *s, const uint8_t *frame, size_t len);
/* Next frame to send; *frame returned to the caller (free). SIMSYNC_EAGAIN
 * when nothing is queued. */
int session_output(struct session *s, uint8_t **frame, size_t *len);
/* The same, and in *sealed how many bytes at the end of the frame are a
 * sealed chunk's blob that may go as sealed pieces (chan_send_sealed). */
int session_output_sealed(struct session *s, uint8_t **frame, size_t *len,
                          size_t *sealed);
/* 1 when every phase of the session completed. */
int session_finished(const struct session *s);
/* 1 while this side is in a send phase (until its peer's Complete). */
int session_sending(const struct session *s);
const struct session_stats *session_get_stats(const struct session *s);

/* The knowledge-table peer slot holding what `peer` acknowledged having
 * received from this node (raised when a send phase completes). */
uint64_t session_ack_peer(uint64_t peer);

/* 1 when the session ended with the peer's Error frame (the failure is
 * the peer's: e.g. SIMSYNC_ENOSPC means the peer's disk is full). */
int session_peer_failed(const struct session *s);
/* The text of that Error frame (printable ASCII, at most 159 bytes;
 * "" when it had none or the session did not end that way). */
const char *session_peer_text(const struct session *s);

/* The local code for an Error frame's code (unknown codes: EPROTO). */
int session_peer_error(uint32_t code);

/* Encode an Error envelope (for callers that fail before a session). */
int session_error_frame(int code, const char *text, uint8_t **frame,
                        size_t *len);

#endif /* SIMSYNC_SESSION_H */
