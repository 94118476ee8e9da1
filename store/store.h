/* store.h -- the node's LMDB environment: named databases, transactions,
 * cursors, map growth. This module is the only one that includes <lmdb.h>;
 * everything above it sees bytes and our own error codes.
 *
 * Databases (keys are big-endian so range scans follow numeric order; the
 * key layouts are documented in core/journal.h):
 *   items      subscriber|class|item id        -> ItemRecord
 *   journal    subscriber|class|origin|counter|item id -> ''  (latest dots)
 *   knowledge  subscriber|class|peer|origin    -> counter
 *   chunks     subscriber|chunk id             -> refcount | sealed blob
 *   stage      subscriber|chunk id             -> sealed blob (in transit)
 *   registry   subscriber|terminal id          -> Registration (hub),
 *                                                  PeerRecord (a trusted
 *                                                  node's paired peers)
 *   subs       subscriber                      -> SubscriberRecord
 *   tombs      subscriber|class|item id        -> ''  (items that are
 *                                                  one tombstone)
 *   conflicts  subscriber|class|item id        -> ConflictRecord
 *   meta       ascii name                      -> value (schema, epoch...)
 *   gens       subscriber|gen|0                -> GenerationRecord (hub)
 *              subscriber|gen|1|piece          -> sealed manifest piece
 *   sched      subscriber|terminal id ("" any) -> ScheduleRecord (hub)
 *   events     subscriber|seq                  -> HistoryEvent (hub)
 *   jobs       subscriber|terminal id|0|job id -> RestoreJob (hub)
 *   kiosk      'k'|name -> KioskRecord, 'a'|seq -> KioskAudit,
 *              'n'|nonce -> signing time (hub: shop kiosks, audit, replays)
 *
 * Threads: a store may be shared by threads. Each thread runs at most one
 * transaction at a time (never nest). Map growth waits until no transaction
 * of this process is active, so a thread must never wait for another thread
 * while it holds a transaction.
 *
 * Caveats: pointers returned by store_get and cursors point into the map and
 * stay valid only until the transaction ends or the same key is written. */
#ifndef SIMSYNC_STORE_H
#define SIMSYNC_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "simsync.h"

#define STORE_SCHEMA_VERSION 1

enum store_db {
    STORE_ITEMS,
    STORE_JOURNAL,
    STORE_KNOWLEDGE,
    STORE_CHUNKS,
    STORE_STAGE,
    STORE_REGISTRY,
    STORE_SUBS,
    STORE_TOMBS,
    STORE_CONFLICTS,
    STORE_META,
    STORE_GENS,
    STORE_SCHED,
    STORE_EVENTS,
    STORE_JOBS,
    STORE_KIOSK,
    STORE_NDB
};

struct store;
struct store_txn;
struct store_cursor;

/* Open (creating if needed) the environment in directory `dir`.
 * `map_size` is the initial map size in bytes (0: 64 MiB); it doubles when
 * full. A new store gets a schema version and a random 16-byte epoch in
 * meta. Returns SIMSYNC_OK, SIMSYNC_EIO, SIMSYNC_ENOMEM or SIMSYNC_ESTATE
 * (schema from a newer version). *out is returned to the caller. */
int store_open(const char *dir, size_t map_size,
               struct store **out) SIMSYNC_MUST_CHECK;
void store_close(struct store *st); /* NULL-safe */

/* The store's epoch: 16 random bytes made when it was created. */
void store_epoch(const struct store *st, uint8_t epoch[16]);
size_t store_map_size(struct store *st);

/* Begin a transaction. Write transactions are serialised by LMDB. */
int store_txn_begin(struct store *st, int readonly,
                    struct store_txn **out) SIMSYNC_MUST_CHECK;
/* Commit; the txn is freed whatever the result. SIMSYNC_ENOSPC when the
 * map is full (call store_grow, then redo the work) or the disk is,
 * SIMSYNC_EIO. */
int store_txn_commit(struct store_txn *txn) SIMSYNC_MUST_CHECK;
void store_txn_abort(struct store_txn *txn); /* NULL-safe */

/* Run fn(txn, arg) in a write transaction and commit. When the map fills
 * up (in fn or at commit) the transaction is aborted, the map doubled and
 * fn run again, up to a limit. fn must therefore be safe to re-run.
 * A full disk is no full map: SIMSYNC_ENOSPC then comes back at once,
 * with nothing committed and the map as it was.
 * Returns fn's error, or the commit's. */
int store_write(struct store *st, int (*fn)(struct store_txn *, void *),
                void *arg) SIMSYNC_MUST_CHECK;
/* Double the map size (no transaction of this thread may be active). */
int store_grow(struct store *st);

/* Point *val at the value of key; SIMSYNC_ENOTFOUND if absent. */
int store_get(struct store_txn *txn, enum store_db db, const void *key,
              size_t klen, const void **val, size_t *vlen);
/* Insert or replace. SIMSYNC_ENOSPC when the map is full. */
int store_put(struct store_txn *txn, enum store_db db, const void *key,
              size_t klen, const void *val, size_t vlen);
/* Delete; SIMSYNC_ENOTFOUND if absent. */
int store_del(struct store_txn *txn, enum store_db db, const void *key,
              size_t klen);

/* Cursors iterate in key order. store_cursor_seek positions at the first
 * key >= `key` and returns it; store_cursor_next moves one forward. Both
 * return SIMSYNC_ENOTFOUND past the end. Key/value pointers as store_get.
 * store_cursor_open sets *out to NULL first, so a failed open may be
 * closed like an open one; it returns SIMSYNC_ENOMEM, SIMSYNC_EINVAL or
 * LMDB's error mapped. */
int store_cursor_open(struct store_txn *txn, enum store_db db,
                      struct store_cursor **out);
int store_cursor_seek(struct store_cursor *cur, const void *key, size_t klen,
                      const void **k, size_t *kl, const void **v, size_t *vl);
int store_cursor_next(struct store_cursor *cur, const void **k, size_t *kl,
                      const void **v, size_t *vl);
/* Delete the entry the cursor is on (write transactions). */
int store_cursor_del(struct store_cursor *cur);
void store_cursor_close(struct store_cursor *cur); /* NULL-safe */

/* Call fn for every entry from the first key >= seek while the key's
 * first plen bytes equal seek's (plen 0: to the end). fn returns
 * SIMSYNC_OK to go on; anything else stops the scan and is returned. */
typedef int (*store_scan_fn)(const void *k, size_t kl, const void *v,
                             size_t vl, void *arg);
int store_scan(struct store_txn *txn, enum store_db db, const void *seek,
               size_t seeklen, size_t plen, store_scan_fn fn, void *arg);

/* Fault injection for tests: the Nth put/commit from now fails with
 * SIMSYNC_EIO (0 disables). Process-wide. */
void store_fault_fail_nth(long n);
/* The calls still to go before the armed fault (0: none armed, or it has
 * fired). A fault loop arms call N, runs its workload, and stops once a
 * run leaves this above 0: the workload makes fewer than N calls. */
long store_fault_pending(void);

/* Big-endian helpers for keys. */
static inline void
store_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static inline uint64_t
store_get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

#endif /* SIMSYNC_STORE_H */
