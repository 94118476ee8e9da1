/* upstream.h -- backup chunks sent while the scan cuts them.
 *
 * A backup scans the class folders first (the records must describe the
 * files), and the scan reads, cuts and names every new chunk. Instead of
 * reading and naming each chunk a second time for the upload, the backup
 * hands the scan's chunks to an upstream as they are cut: worker threads
 * compress and seal them, and a sender thread asks the hub which ones it
 * lacks (ChunkQuery / ChunkWant, as for the upload after the snapshot)
 * and sends those. The bytes sent are the very bytes the chunk id was
 * computed from, so no check is needed, and the upload overlaps the scan.
 *
 * The upload after the snapshot is unchanged and stays the authority: it
 * queries every chunk of the generation and sends what the hub still
 * lacks (a file that changed between the scan and the snapshot). A chunk
 * streamed here that ends up in no generation is an unused chunk on the
 * hub, reclaimed like any other.
 *
 * The sender opens the link itself, through the caller's `open` function,
 * when the first chunk arrives: a scan that cuts no chunk opens nothing,
 * and one that takes long before its first chunk does not keep an idle
 * connection. From then on the sender owns the channel: the caller must
 * not use it until upstream_finish() returned. While the scan records
 * files without chunks the sender repeats its last query every
 * UPSTREAM_KEEPALIVE_MS, so that the hub's inactivity timeout does not
 * end the connection (the hub has that chunk: it costs one small round
 * trip and changes nothing). */
#ifndef SIMSYNC_UPSTREAM_H
#define SIMSYNC_UPSTREAM_H
#include <stddef.h>
#include <stdint.h>

struct chan;
struct upstream;

/* What an upstream sent. */
struct upstream_stats {
    uint64_t chunks;     /* chunks sent */
    uint64_t bytes;      /* sealed bytes sent */
    uint64_t have;       /* chunks the hub had already */
    uint64_t skipped;    /* not queued: the queue was full */
};

#define UPSTREAM_KEEPALIVE_MS 20000

/* Opens the link for the upstream, on the sender thread: *ch gets a
 * channel inside a backup (after BackupReady), borrowed by the upstream
 * until upstream_finish(). Returns SIMSYNC_OK or an error. */
typedef int (*upstream_open_fn)(void *arg, struct chan **ch);

/* Start an upstream that opens its link with open(arg) (both borrowed
 * until upstream_finish) and seals with `seal_key` (32 bytes, copied).
 * Returns SIMSYNC_OK, SIMSYNC_ENOMEM. */
int upstream_start(upstream_open_fn open, void *arg,
                   const uint8_t seal_key[32], struct upstream **out);

/* Queue one chunk: its id (32 bytes) and plaintext (len bytes, at most
 * 256 KiB), both copied. When the queue is full (the link or the hub is
 * slower than the scan) it waits for room, but only as long as the scan
 * has waited less in all than it has worked: past that, the chunk is left
 * to the upload after the snapshot. So a slow link at most doubles the
 * scan, and with it the time over which the generation's files are read.
 * Returns SIMSYNC_OK,
 * or the first error of the upstream (its link failed, or a protocol
 * error), after which it accepts nothing more. */
int upstream_put(struct upstream *u, const uint8_t id[32], const uint8_t *data,
                 size_t len);

/* Send what is queued, stop the threads and free the upstream (NULL is a
 * no-op). Returns SIMSYNC_OK or the upstream's first error; *stats (may be
 * NULL) gets what was sent either way. */
int upstream_finish(struct upstream *u, struct upstream_stats *stats);

/* The chunk sink for struct replica: arg is a struct upstream. */
int upstream_sink(void *arg, const uint8_t id[32], const uint8_t *data,
                  size_t len);
#endif /* SIMSYNC_UPSTREAM_H */
