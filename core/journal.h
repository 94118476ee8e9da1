/* journal.h -- the change journal on top of the store: item records, the
 * index of each item's latest dots, knowledge vectors, counters and the
 * hybrid logical clock. No sockets, no globals: state lives in the store
 * transaction it is given.
 *
 * Key layouts (big-endian):
 *   item      sub(16) | class(1) | item id(16)
 *   journal   sub(16) | class(1) | origin(8) | counter(8) | item id(16)
 *   knowledge sub(16) | class(1) | peer(8) | origin(8)     -> counter(8)
 * Peer 0 is the node's own complete knowledge; other peers hold the resume
 * cursor of an interrupted stream from that peer. */
#ifndef SIMSYNC_JOURNAL_H
#define SIMSYNC_JOURNAL_H

#include <stdint.h>
#include "simsync.h"
#include "simsync.pb-c.h"
#include "store.h"
#include "vv.h"

#define SUB_BYTES 16
#define ITEM_ID_BYTES 16
#define ITEM_KEY_BYTES (SUB_BYTES + 1 + ITEM_ID_BYTES)
#define RECORD_MAX (4u << 20) /* largest record we accept from the store */

enum item_class {
    CLS_CONTACTS,
    CLS_MAIL,
    CLS_BROWSER,
    CLS_ARCHIVE,
    CLS_APPS,
    CLS_PIM,
    CLS_SETTINGS,
    CLS_RIGHTS,
    CLS_COUNT
};
#define CLS_ALL ((1u << CLS_COUNT) - 1)

const char *class_name(int cls);   /* NULL when out of range */
int class_parse(const char *name); /* class or -1 */
/* Parse "contacts,pim" (or "all") into a bit mask; SIMSYNC_EINVAL names
 * the bad word in `bad` (may be NULL). */
int class_mask_parse(const char *list, uint32_t *mask, char *bad,
                     size_t badlen);
/* Format a mask as "contacts,pim" into buf. */
void class_mask_format(uint32_t mask, char *buf, size_t len);

void item_key(uint8_t out[ITEM_KEY_BYTES], const uint8_t sub[SUB_BYTES],
              int cls, const uint8_t id[ITEM_ID_BYTES]);

/* Encode any message for the store; *buf returned to the caller (free). */
int record_pack(const ProtobufCMessage *m, uint8_t **buf, size_t *len);

/* Load an item record; SIMSYNC_ENOTFOUND if absent, SIMSYNC_EPROTO if the
 * stored bytes do not decode. *out returned (item_record_free). */
int item_get(struct store_txn *txn, const uint8_t sub[SUB_BYTES], int cls,
             const uint8_t id[ITEM_ID_BYTES], Simsync__ItemRecord **out);
void item_record_free(Simsync__ItemRecord *rec); /* NULL-safe */
/* Store `rec` (NULL deletes the item) and move the journal index from the
 * dots of `old` (may be NULL) to the dots of `rec`. */
int item_put(struct store_txn *txn, const uint8_t sub[SUB_BYTES], int cls,
             const uint8_t id[ITEM_ID_BYTES], const Simsync__ItemRecord *old,
             const Simsync__ItemRecord *rec);

/* Take the next counter of this replica (meta "counter"). Fails with
 * SIMSYNC_ETOOBIG rather than wrap at 2^64-1. */
int journal_next_counter(struct store_txn *txn, uint64_t *counter);
/* The last counter taken (0: none yet): it grows with every local change
 * recorded, whoever recorded it. */
int journal_counter_get(struct store_txn *txn, uint64_t *counter);
/* The hybrid logical clock: next timestamp for a local change at wall
 * time now_ms, and folding in a timestamp seen from elsewhere. */
int journal_hlc_next(struct store_txn *txn, uint64_t now_ms, uint64_t *hlc);
int journal_hlc_observe(struct store_txn *txn, uint64_t hlc);

/* Entries per class the peer still had for this node when its last
 * batch was committed (0 after a complete stream): meta "pending_down". */
int journal_pending_down_get(struct store_txn *txn, uint64_t out[CLS_COUNT]);
int journal_pending_down_put(struct store_txn *txn,
                             const uint64_t v[CLS_COUNT]);

/* Knowledge of (sub, class) with respect to `peer` (0: own). */
int journal_knowledge_get(struct store_txn *txn, const uint8_t sub[SUB_BYTES],
                          int cls, uint64_t peer, struct vv *out);
/* Raise each origin's counter to at least the one in `k`. */
int journal_knowledge_raise(struct store_txn *txn, const uint8_t sub[SUB_BYTES],
                            int cls, uint64_t peer, const struct vv *k);
/* Forget the resume cursor of `peer` (peer != 0). */
int journal_knowledge_drop(struct store_txn *txn, const uint8_t sub[SUB_BYTES],
                           int cls, uint64_t peer);

/* Call cb for every journal entry of (sub, class) whose counter is above
 * `above[origin]`, by origin then increasing counter. Cost is proportional
 * to the entries returned plus the number of origins. cb may stop the walk
 * by returning non-zero, which is returned. */
typedef int (*journal_entry_fn)(const struct dot *d,
                                const uint8_t id[ITEM_ID_BYTES], void *arg);
int journal_scan(struct store_txn *txn, const uint8_t sub[SUB_BYTES], int cls,
                 const struct vv *above, journal_entry_fn cb, void *arg);

/* Conversions between struct vv / struct dot and their wire forms. The
 * decoders validate (SIMSYNC_EPROTO / SIMSYNC_ETOOBIG). Encoders allocate
 * with malloc; free with pb_vv_free / pb_dots_free. */
int vv_from_pb(struct vv *v, const Simsync__VersionVector *pb);
int vv_to_pb(Simsync__VersionVector *pb, const struct vv *v);
void pb_vv_free(Simsync__VersionVector *pb);
int vv_from_pb_dots(struct vv *v, Simsync__Dot *const *dots, size_t n);

#endif /* SIMSYNC_JOURNAL_H */
