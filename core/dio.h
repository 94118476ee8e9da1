/* dio.h -- file writes past the page cache (O_DIRECT), done by a
 * background thread from a small pool of aligned buffers: the thread that
 * produces the data hands over a full buffer and goes on; it waits only
 * when every buffer of the pool is in flight.
 *
 * On this kind of machine a fresh page of page cache costs more than the
 * copy into it (a buffered write of 1 GiB into cold memory: 2.4 s of
 * system time, the same write direct: 0.3 s), and a direct write waits
 * for the disk: so the waiting is moved to another thread.
 *
 * A buffer is taken with dio_get and given back by dio_write (which
 * queues it; it returns to the pool once written) or dio_put (unused).
 * Writes are done one at a time, in the order they were queued; each gets
 * a ticket, and tickets finish in order. The file must stay open until
 * its last write's ticket is done. A write the file system refuses as a
 * direct write (EINVAL: another alignment, or no O_DIRECT at all) is done
 * again buffered after O_DIRECT is turned off on that file, and so is the
 * rest of a short write. A failure is stored in the int given with the
 * write, before its ticket counts as done.
 *
 * Threads: one producing thread uses a dio at a time. */
#ifndef SIMSYNC_DIO_H
#define SIMSYNC_DIO_H

#include <stddef.h>
#include <stdint.h>
#include "simsync.h"

#define DIO_ALIGN 4096 /* buffer address, size and file offsets */

struct dio;

/* A pool of nbuf buffers of bufsize bytes (a multiple of DIO_ALIGN) and
 * its thread. *out returned. SIMSYNC_OK, SIMSYNC_EINVAL, SIMSYNC_ENOMEM. */
int dio_new(size_t bufsize, unsigned nbuf, struct dio **out) SIMSYNC_MUST_CHECK;
/* Wait for the queued writes, stop the thread, free. NULL-safe. */
void dio_free(struct dio *d);

size_t dio_bufsize(const struct dio *d);
/* A free buffer of dio_bufsize bytes, aligned (waits for one). */
uint8_t *dio_get(struct dio *d);
/* Give back a buffer from dio_get without writing it. */
void dio_put(struct dio *d, uint8_t *buf);
/* Queue: write len bytes (a multiple of DIO_ALIGN unless O_DIRECT is off)
 * of buf at offset off of fd. buf belongs to the pool again. On failure
 * *err gets SIMSYNC_ENOSPC or SIMSYNC_EIO (it is not touched otherwise).
 * Returns the write's ticket, never 0. */
uint64_t dio_write(struct dio *d, int fd, uint8_t *buf, size_t len,
                   uint64_t off, int *err);
/* The last ticket done (every ticket before it is done too). */
uint64_t dio_done(struct dio *d);
/* Wait until `ticket` is done. */
void dio_wait(struct dio *d, uint64_t ticket);

#endif /* SIMSYNC_DIO_H */
