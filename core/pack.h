/* pack.h -- the packed form of a change batch between two paired trusted
 * nodes (docs/protocol.md 11.4).
 *
 * In the normal form every change carries its name and content sealed
 * alone (a nonce and a tag each), its 16-byte item id and 32-byte content
 * hash, and a 300-byte contact compressed alone gains little: a batch of
 * small items costs more on the wire than the items themselves. Between
 * two trusted nodes of one subscriber both ends hold the data key and the
 * secure channel already encrypts and authenticates end to end, so the
 * per-item seals are only needed by the hub. A packed batch carries, for
 * each change, the version in clear without what the receiver can derive
 * (item id: keys_item_id(class, name); the content hash of an inline body;
 * the entry when it is the version's first dot), the encoded ItemMeta and
 * the plaintext inline body; the whole batch is encoded (PackedChanges)
 * and compressed into one zstd stream per session direction, flushed at
 * the end of each batch: each batch decodes on arrival, and later batches
 * reuse the earlier ones as context.
 *
 * The receiver rebuilds exactly the sealed changes the sender holds, up to
 * the random nonces: it seals the same ItemMeta bytes and the same body
 * with its own key, recomputes the item id and the content hash, and
 * hands the batch to the unchanged apply path. Chunked items keep their
 * chunk lists (and their sealed chunks, sent as ChunkData as before).
 *
 * This module and blob.c are the only ones that include <zstd.h>. */
#ifndef SIMSYNC_PACK_H
#define SIMSYNC_PACK_H

#include <stddef.h>
#include <stdint.h>
#include "keys.h"
#include "simsync.pb-c.h"

/* Largest decompressed PackedChanges: a larger declared `size`, or more
 * output than declared, is refused before or while decompressing. The
 * sender keeps every batch under it (session.c). */
#define PACK_PLAIN_MAX (4u << 20)
/* Most changes in one batch (as SESSION_BATCH_ITEMS): counted in the
 * encoding before it is decoded. */
#define PACK_CHANGES_MAX 256
/* Window of the stream: the decoder refuses a larger one, so a peer
 * cannot make it hold more than 2 MiB of history. */
#define PACK_WINDOW_LOG 21
#define PACK_LEVEL 9
/* What one change may add to a batch's decompressed size beyond its
 * sealed version and plaintext body (field tags, lengths, an entry). */
#define PACK_CHANGE_SLACK 64

/* One direction of a session: the sender's compressor or the receiver's
 * decompressor. Never both. */
struct pack_stream;

/* A new compressor (tx) or decompressor (rx). *out returned (free with
 * pack_stream_free). SIMSYNC_OK or SIMSYNC_ENOMEM. */
int pack_tx_new(struct pack_stream **out) SIMSYNC_MUST_CHECK;
int pack_rx_new(struct pack_stream **out) SIMSYNC_MUST_CHECK;
void pack_stream_free(struct pack_stream *p); /* NULL-safe */

/* Sender: the packed form of batch b, whose changes are sealed as the
 * store holds them (under k, the subscriber's keys). *z (returned, free)
 * gets the next piece of the stream, *size the decompressed size.
 * Returns SIMSYNC_OK, SIMSYNC_EPROTO (a change whose meta or body does not
 * open, whose name does not give its item id, or a live unchunked version
 * without a body), SIMSYNC_ETOOBIG (the encoded batch is over
 * PACK_PLAIN_MAX), SIMSYNC_ENOMEM. After an error the stream is unusable. */
int pack_encode(struct pack_stream *tx, const struct datakeys *k,
                const Simsync__ChangeBatch *b, uint8_t **z, size_t *zlen,
                uint64_t *size) SIMSYNC_MUST_CHECK;

/* Receiver: decompress the next batch (zlen bytes at z, untrusted,
 * declaring `size` decompressed bytes) and rebuild it as an Envelope
 * holding a ChangeBatch of sealed changes (*out returned, free with
 * simsync__envelope__free_unpacked). Returns SIMSYNC_OK or SIMSYNC_EPROTO
 * (declared size 0 or over PACK_PLAIN_MAX, output over or under it, no
 * change or over PACK_CHANGES_MAX of them, a
 * window over 2^PACK_WINDOW_LOG, corrupt or truncated data, an
 * undecodable PackedChanges, a change without a valid name, a body on a
 * version that has none, an inline body over 32 KiB, a missing content
 * hash on a chunked version), SIMSYNC_ENOMEM; *why (may be NULL) then
 * names the fault in a few words. After an error the stream is unusable
 * (the session fails). */
int pack_decode(struct pack_stream *rx, const struct datakeys *k,
                const uint8_t *z, size_t zlen, uint64_t size,
                Simsync__Envelope **out, const char **why) SIMSYNC_MUST_CHECK;

#endif /* SIMSYNC_PACK_H */
