/* replica.h -- one subscriber's data on one node, and the decisions taken
 * when a version arrives from elsewhere.
 *
 * Two kinds of replica share this interface:
 *  - trusted (terminal, desktop): holds the data keys, keeps exactly one
 *    version per item, mirrors items as files in the class folders, and
 *    resolves concurrent versions deterministically (same winner on every
 *    node: later hybrid logical clock, then author replica), keeping the
 *    loser as a conflict copy named after the loser (author, hlc) and
 *    listing it in the conflict inbox;
 *  - hub: cannot read anything, keeps concurrent versions as siblings and
 *    collapses them only when a dominating version or equal content (same
 *    keyed content hash) arrives.
 * Deletions are tombstone versions. A concurrent edit beats a delete. */
#ifndef SIMSYNC_REPLICA_H
#define SIMSYNC_REPLICA_H

#include <limits.h>
#include <stdint.h>
#include "crypt.h"
#include "journal.h"
#include "keys.h"

#define INLINE_MAX (32u * 1024) /* larger items are chunked */
#define CHUNK_ID_BYTES 32
#define ITEM_SIZE_MAX                                                          \
    (1ull << 28) /* 256 MiB: larger items are refused                          \
                  * (the chunk list must fit a frame) */

struct replica {
    struct store *st;        /* borrowed */
    uint8_t sub[SUB_BYTES];  /* store key of the subscriber */
    uint64_t self;           /* this replica's id; 0 on the hub */
    int trusted;             /* 1: terminal or desktop */
    struct datakeys keys;    /* trusted only */
    char data_dir[PATH_MAX]; /* trusted only: parent of class folders */
    uint64_t now_ms;         /* wall clock, set by the caller */
    /* Trusted: write files without fsync; the caller syncs the filesystem
     * before it commits the records of a batch of files (restore). */
    int defer_sync;
    /* Trusted: classes taken as metadata only. A new version of an item
     * whose content is not here (and not pinned) is recorded without its
     * content: ItemRecord.remote. */
    uint32_t lazy;
    /* Trusted, optional (NULL: none): every chunk the scan cuts while it
     * records a file is also handed here with its id (a backup's upstream,
     * see upstream.h); data is borrowed for the call. A non-OK return
     * stops the scan with that error. */
    int (*chunk_sink)(void *arg, const uint8_t id[32], const uint8_t *data,
                      size_t len);
    void *chunk_sink_arg;
};

/* Would applying v to `rec` (NULL: a new item) of class cls leave the
 * content remote (a lazy class, not here, not pinned)? */
int replica_lazy_skip(const struct replica *r, int cls,
                      const Simsync__ItemRecord *rec);

struct apply_stats {
    uint64_t applied;   /* versions that changed something */
    uint64_t skipped;   /* already known or superseded */
    uint64_t conflicts; /* conflict copies made (trusted) */
    uint64_t siblings;  /* concurrent versions kept (hub) */
};

/* Which chunks of this batch would be needed to apply it and are not on
 * this node yet (hub: chunks db; trusted: staging area)? Appends their ids
 * (32 bytes each, no duplicates) to *ids and *nids, which the caller frees. */
int replica_missing_chunks(struct replica *r, Simsync__Change *const *ch,
                           size_t n, uint8_t **ids, size_t *nids);
/* Keep one arriving chunk (its own committed transaction, so a cut link
 * never re-sends it). */
int replica_put_chunk(struct replica *r, const uint8_t id[CHUNK_ID_BYTES],
                      const uint8_t *blob, size_t len);
/* Trusted: does the blob open under the seal key and hash to its id?
 * (SIMSYNC_OK on the hub, which cannot tell.) */
int replica_check_chunk(struct replica *r, const uint8_t id[CHUNK_ID_BYTES],
                        const uint8_t *blob, size_t len);
/* Keep n checked chunks in one committed transaction. */
int replica_put_chunks(struct replica *r, size_t n, const uint8_t *const *ids,
                       const uint8_t *const *blobs, const size_t *lens);
/* The blob of one chunk of an item version this node sends. *blob
 * returned to the caller. SIMSYNC_ENOTFOUND if it is gone or changed. */
int replica_get_chunk(struct replica *r, int cls,
                      const uint8_t item_id[ITEM_ID_BYTES],
                      const Simsync__Version *v,
                      const uint8_t id[CHUNK_ID_BYTES], uint8_t **blob,
                      size_t *len);

/* Apply a batch in one write transaction: all of it or none of it. For a
 * trusted replica, files are written (temp file + rename) before the
 * commit; a crash in between is healed by the next scan, which sees the
 * file and records it as a change with equal content.
 * Afterwards the resume cursor for `peer` is raised to the batch's dots;
 * a trusted replica also records `pending_down` (per class, what the peer
 * still has to send; NULL: unchanged) in the same transaction. */
int replica_apply_batch(struct replica *r, Simsync__Change *const *ch, size_t n,
                        uint64_t peer, const uint64_t *pending_down,
                        struct apply_stats *stats);
/* Drop the staged chunks of v (trusted: after its content was written). */
int replica_unstage(struct replica *r, struct store_txn *txn,
                    const Simsync__Version *v);

/* Tombstone purging. A tombstone may go once every registered terminal
 * has acknowledged it: the horizon of a class is the meet of what each
 * terminal acknowledged (its ack slot in the knowledge table, see
 * session_ack_peer). replica_horizon computes it for the given ack slots
 * (none: an empty horizon). replica_purge removes, in txn, every item of
 * the class that is a single tombstone whose vector the horizon covers,
 * with its journal entry; *purged (may be NULL) counts them. */
int replica_horizon(struct replica *r, struct store_txn *txn, int cls,
                    const uint64_t *ack_slots, size_t n, struct vv *out);
int replica_purge(struct replica *r, struct store_txn *txn, int cls,
                  const struct vv *horizon, uint64_t *purged);
/* Number of tombstones of a class (for status). */
int replica_tombstones(struct replica *r, struct store_txn *txn, int cls,
                       uint64_t *count);

/* Writing the content of version v to the file `name` of class cls as
 * it arrives (restore): replica_out_begin makes a temp file next to the
 * name (folders created, every component opened with O_NOFOLLOW);
 * replica_out_put appends plaintext (more than v->size: SIMSYNC_EPROTO);
 * replica_out_commit checks the size and the keyed content hash
 * (SIMSYNC_EPROTO / SIMSYNC_ECRYPTO, and the temp file is removed), then
 * renames the file over the name (fsync first unless r->defer_sync) and
 * fills *st from the open file. Nothing is written under `name` unless
 * every check passed. replica_out_abort removes the temp file; it accepts
 * a writer that is already committed, aborted or failed to begin.
 * replica_out_inline puts a version's inline body (item_id: the item the
 * body was sealed for).
 *
 * replica_out_put_chunk puts one whole chunk whose plaintext was just
 * opened from a blob sealed under its id (blob_decode with the chunk id
 * as associated data). The AEAD tag already proves that a holder of the
 * data key sealed these bytes for this id, the same holders who can
 * compute chunk ids, so for a HASH_KIND_CHUNKS version the bytes are not
 * hashed again: the id and length must be those of the version's next
 * chunk (else the commit fails with SIMSYNC_ECRYPTO, as for a chunk that
 * does not hash to its id). For other kinds, or mid-chunk, it is
 * replica_out_put.
 *
 * With a dio (may be NULL), a version of at least dio_bufsize bytes is
 * written past the page cache by the dio's thread. Then
 * replica_out_commit, once the checks passed, returns SIMSYNC_EAGAIN
 * while the file's writes are in flight (nothing renamed yet): call it
 * again when replica_out_busy is 0, or after replica_out_wait. A failed
 * write fails the commit.
 *
 * `r`, `name`, `v` and `dio` are borrowed until commit or abort; the
 * writer must not move while its writes are in flight. A writer is used by
 * one thread at a time. */
struct stat;
struct dio;
/* Version.hash_kind values. */
#define HASH_KIND_WHOLE 0 /* content_hash: keyed BLAKE2b of the plaintext */
#define HASH_KIND_CHUNKS 1 /* content_hash: replica_chunk_list_hash() */

/* The content hash of a chunked version of kind HASH_KIND_CHUNKS: keyed
 * BLAKE2b-256 (content key) of a label, v->size and, for each chunk, its
 * size and id, all in order. Each id is the keyed hash of its chunk's
 * plaintext, so this names the content as surely as hashing it whole,
 * without a second pass over it. Returns SIMSYNC_OK or SIMSYNC_EPROTO (a
 * chunk id that is not 32 bytes). */
int replica_chunk_list_hash(const struct datakeys *k, const Simsync__Version *v,
                            uint8_t out[32]);

struct replica_out {
    const Simsync__Version *v;  /* borrowed */
    int dfd, fd;                /* parent folder, temp file; -1: closed */
    const char *base;           /* last component of the name */
    char tmp[64];               /* temp file name in dfd */
    int durable;                /* fsync before the rename */
    uint64_t total;             /* bytes put so far */
    struct crypt_hash_state hs; /* keyed content hash so far */
    int checked;                /* commit: size and hash matched */
    struct dio *dio;            /* direct writes, or NULL: buffered */
    uint8_t *dbuf;              /* the dio buffer being filled, or NULL */
    size_t dlen;                /* bytes in it */
    uint64_t doff;              /* file offset of dbuf */
    uint64_t last;              /* ticket of the last queued write, or 0 */
    int werr;                   /* a failed write (set by the dio thread) */
    /* HASH_KIND_CHUNKS: each chunk of v is checked against its id as the
     * bytes go by (hs hashes the current chunk, keyed with cid_key). */
    int by_chunks;
    size_t cj;                  /* the chunk being put */
    uint64_t cfill;             /* its bytes put so far */
    int bad;                    /* a chunk did not match its id */
    uint8_t cid_key[32];
};
int replica_out_begin(struct replica *r, int cls, const char *name,
                      const Simsync__Version *v, struct dio *dio,
                      struct replica_out *o) SIMSYNC_MUST_CHECK;
int replica_out_put(struct replica_out *o, const void *plain,
                    size_t len) SIMSYNC_MUST_CHECK;
int replica_out_put_chunk(struct replica_out *o,
                          const uint8_t id[CHUNK_ID_BYTES], const void *plain,
                          size_t len) SIMSYNC_MUST_CHECK;
int replica_out_inline(struct replica_out *o, const struct replica *r,
                       const uint8_t item_id[ITEM_ID_BYTES]) SIMSYNC_MUST_CHECK;
int replica_out_commit(struct replica_out *o,
                       struct stat *st) SIMSYNC_MUST_CHECK;
int replica_out_busy(const struct replica_out *o);
void replica_out_wait(struct replica_out *o);
void replica_out_abort(struct replica_out *o);

/* Write version v of item_id to `name` of class cls from its inline body
 * or its staged chunks (STORE_STAGE), through a replica_out (the same
 * checks), and fill *st (fetch of a lazy item). */
int replica_write_version(struct replica *r, struct store_txn *txn, int cls,
                          const uint8_t item_id[ITEM_ID_BYTES],
                          const char *name, const Simsync__Version *v,
                          struct stat *st) SIMSYNC_MUST_CHECK;

/* Decode the sealed metadata of a version (trusted only) and check that
 * the name belongs to `item_id`. *meta returned (free_unpacked). */
int replica_open_meta(const struct replica *r, int cls,
                      const uint8_t item_id[ITEM_ID_BYTES],
                      const Simsync__Version *v, Simsync__ItemMeta **meta);

/* Is `name` a safe relative path inside a class folder? (no "..", not
 * absolute, no empty components, no NUL, at most PATH_MAX/2 bytes) */
int replica_name_ok(const char *name);

#endif /* SIMSYNC_REPLICA_H */
