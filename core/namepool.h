/* namepool.h -- naming a large file's chunks on other threads while the
 * scan reads on.
 *
 * Naming a chunk (its id: keyed BLAKE2b-256 of its bytes) costs more CPU
 * than reading and cutting it, and a scan does all three on one thread. A
 * namepool takes each chunk as it is cut (a copy), names it on one of its
 * threads into the slot the caller gave, hands it to a sink (a backup's
 * upstream) if the caller gave one, and lets the caller wait until every
 * chunk given so far is named. So reading and cutting the next chunk
 * overlaps naming the last ones.
 *
 * At most NAMEPOOL_MAX_BYTES of copies are in flight: namepool_put waits
 * for room. A pool whose threads could not be started names each chunk on
 * the caller's thread, in namepool_put: slower, never wrong.
 *
 * Threads: one thread (the scan's) calls put, wait and free; the sink is
 * called on the pool's threads, so it must be thread-safe. */
#ifndef SIMSYNC_NAMEPOOL_H
#define SIMSYNC_NAMEPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "simsync.h"

#define NAMEPOOL_THREADS 2
#define NAMEPOOL_MAX_BYTES (8u << 20)

struct namepool;

/* Gets each named chunk: its id and bytes (both borrowed for the call).
 * A non-OK return is kept as the pool's error (namepool_wait). */
typedef int (*namepool_sink_fn)(void *arg, const uint8_t id[32],
                                const uint8_t *data, size_t len);

/* A pool naming chunks with the 32-byte `key` (copied), handing them to
 * sink(sink_arg) when sink is not NULL (borrowed until namepool_free).
 * Returns SIMSYNC_OK or SIMSYNC_ENOMEM. */
int namepool_new(const uint8_t key[32], namepool_sink_fn sink, void *sink_arg,
                 struct namepool **out) SIMSYNC_MUST_CHECK;

/* Name data[0..len) (copied) into id_out, which must stay valid and
 * untouched until the next namepool_wait returned. Returns SIMSYNC_OK,
 * SIMSYNC_ENOMEM, or an earlier error of the pool (the chunk is then not
 * taken). */
int namepool_put(struct namepool *p, const uint8_t *data, size_t len,
                 uint8_t id_out[32]) SIMSYNC_MUST_CHECK;

/* Wait until every chunk put so far is named (and sunk). Returns SIMSYNC_OK
 * or the first error since the last wait (a sink's, or SIMSYNC_ENOMEM),
 * which is then cleared. */
int namepool_wait(struct namepool *p) SIMSYNC_MUST_CHECK;

/* Wait for what is in flight, stop the threads, wipe and free. NULL-safe. */
void namepool_free(struct namepool *p);

#endif /* SIMSYNC_NAMEPOOL_H */
