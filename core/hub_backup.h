/* hub_backup.h -- the hub's side of backup generations (hub_backup.c):
 * taking a generation, listing generations, serving manifests and chunks.
 * Called by hub.c once a terminal's Hello is authenticated. */
#ifndef SIMSYNC_HUB_BACKUP_H
#define SIMSYNC_HUB_BACKUP_H

#include "chan.h"
#include "journal.h"
#include "simsync.pb-c.h"

struct simsync_node;
struct store_txn;

/* gens db keys: subscriber | gen (8, big-endian) | kind | piece (4). */
#define GEN_KEY_BYTES (SUB_BYTES + 13)
#define GEN_KIND_RECORD 0
#define GEN_KIND_PIECE 1

/* OP_BACKUP: BackupBegin ... BackupEnd, then BackupComplete. *gen_out is
 * the committed generation (0 when none). */
int hub_backup(struct simsync_node *n, struct chan *ch,
               const uint8_t sub[SUB_BYTES], const char *terminal_id,
               uint64_t *gen_out);
/* OP_GENERATIONS: send the GenerationList of the subscriber. */
int hub_generations(struct simsync_node *n, struct chan *ch,
                    const uint8_t sub[SUB_BYTES]);
/* OP_FETCH: answer FetchRequests until the terminal closes. */
int hub_fetch(struct simsync_node *n, struct chan *ch,
              const uint8_t sub[SUB_BYTES]);
/* Visit the generation records of a subscriber in order. */
int hub_gen_each(struct store_txn *txn, const uint8_t sub[SUB_BYTES],
                 int (*fn)(Simsync__GenerationRecord *rec, void *arg),
                 void *arg);

#endif /* SIMSYNC_HUB_BACKUP_H */
