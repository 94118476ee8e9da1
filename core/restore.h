/* restore.h -- writing the items of a generation onto this terminal, once
 * node_restore.c has decided which items go where.
 *
 * Items are added one by one; restore_finish writes them, in an order
 * that spreads the small (inline) items among the chunked ones, in
 * batches (RESTORE_BATCH_ITEMS items or RESTORE_BATCH_BYTES bytes). For
 * each batch the calling thread
 * asks the hub for the batch's distinct chunks in the order its files use
 * them, and unseals and decompresses each one as it arrives; a writer
 * thread appends the plaintext to the temp file of the item being written,
 * after checking it against its chunk id (on whichever thread has time for
 * it, always before the first byte of it is written), and renames the file
 * over its name once the whole content matched the version's hash
 * (replica_out). A recorder thread takes the batches the writer is done
 * with, syncs the filesystem (syncfs) and records their items in one
 * transaction, as new local changes. The three overlap: while batch k is
 * written, batches before it may be recorded and batch k+1 fetched.
 *
 * Nothing fetched is kept across runs: a restore that was interrupted
 * fetches again what it still needs; a file renamed before the crash and
 * not recorded is found by the next scan, its temp files are removed by
 * it.
 *
 * Memory: at most RESTORE_AHEAD chunks wait for the writer, plus the
 * chunks a batch uses again later (kept until their last use), plus
 * RESTORE_SLOTS batches of item lists.
 *
 * Threads: one restore at a time per replica; every call below is made by
 * the thread that made the restore. */
#ifndef SIMSYNC_RESTORE_H
#define SIMSYNC_RESTORE_H

#include <stdint.h>
#include "node.h"

#define RESTORE_BATCH_ITEMS 1024
#define RESTORE_BATCH_BYTES (64u << 20)
/* Batches being fetched, written or waiting to be recorded. */
#define RESTORE_SLOTS 6
/* Chunks unsealed and not yet reached by the writer. */
#define RESTORE_AHEAD 64
/* Files of at least this size are written past the page cache by a
 * background thread (dio), through RESTORE_DIRECT_BUFS buffers of this
 * size; at most RESTORE_PENDING written files wait for their rename. */
#define RESTORE_DIRECT_BYTES (1u << 20)
#define RESTORE_DIRECT_BUFS 4
#define RESTORE_PENDING 64

enum restore_kind { RESTORE_NEW, RESTORE_OVERWRITE, RESTORE_KEEP_BOTH };

struct restore;

/* What a restore did: items whose files are in place and recorded. */
struct restore_counts {
    uint64_t restored, overwritten, kept_both;
    uint64_t chunks_fetched;
};

/* Send one FetchRequest on l and hand every answer (each must be of kind
 * `kind`, a Simsync__Envelope msg case) to fn until FetchDone. fn's error
 * stops it (the link is then out of step). */
int restore_fetch_run(struct link *l, Simsync__FetchRequest *f, int kind,
                      int (*fn)(const Simsync__Envelope *in, void *arg),
                      void *arg);

/* Start a restore that writes through r (r->defer_sync must be set) and
 * fetches on l; both borrowed until restore_free. *out returned. Returns
 * SIMSYNC_OK or SIMSYNC_ENOMEM. */
int restore_new(struct replica *r, struct link *l,
                struct restore **out) SIMSYNC_MUST_CHECK;

/* Add one item: version v of manifest item `item_id` (the id its inline
 * body was sealed for) goes to `name` (copied) of class cls. v and
 * item_id are borrowed until restore_finish. Nothing is fetched or
 * written yet. Returns SIMSYNC_OK or SIMSYNC_ENOMEM. */
int restore_add(struct restore *rs, int cls, const uint8_t *item_id,
                const char *name, const Simsync__Version *v,
                enum restore_kind kind) SIMSYNC_MUST_CHECK;

/* When `last` (0: the caller stopped, nothing is written), fetch, write
 * and record every item added; then wait until the threads are done and
 * fill *counts (also after a failure: what was done). Returns SIMSYNC_OK
 * or the restore's first error. */
int restore_finish(struct restore *rs, int last,
                   struct restore_counts *counts) SIMSYNC_MUST_CHECK;

/* After a failure: "class/name" of the item whose content failed a check
 * or could not be written (nothing was written under its name), or NULL
 * when the failure was not one item's. Valid until restore_free. */
const char *restore_failed_item(const struct restore *rs);

/* Stop the writer if it still runs, free everything. NULL-safe. */
void restore_free(struct restore *rs);

#endif /* SIMSYNC_RESTORE_H */
