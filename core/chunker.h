/* chunker.h -- content-defined chunking (FastCDC) for large item bodies.
 *
 * A large body is cut into chunks whose boundaries depend on the content
 * only, so inserting or deleting bytes moves the boundaries near the edit
 * and leaves the others in place: unchanged chunks keep their ids and need
 * not be stored or sent again.
 *
 * The algorithm is FastCDC (Xia et al., USENIX ATC 2016): a gear rolling
 * hash (fp = (fp << 1) + gear[byte]) is tested against a bit mask at every
 * byte; the first `min` bytes of a chunk are skipped; below `avg` a mask
 * with two more bits than log2(avg) makes a cut less likely, above it a mask
 * with two fewer bits makes one more likely ("normalized chunking"), which
 * narrows the spread of chunk sizes; a chunk never exceeds `max`.
 *
 * The boundaries are part of the storage format: changing the gear table,
 * the masks or the defaults changes every chunk id. chunker_cut() is pure
 * (no I/O, no allocation, no globals besides a constant table) and safe to
 * call from any thread. */
#ifndef SIMSYNC_CHUNKER_H
#define SIMSYNC_CHUNKER_H

#include <stddef.h>
#include <stdint.h>
#include "simsync.h"

#define CHUNKER_MIN_DEFAULT ((size_t)16 * 1024)  /* 16 KiB */
#define CHUNKER_AVG_DEFAULT ((size_t)64 * 1024)  /* 64 KiB */
#define CHUNKER_MAX_DEFAULT ((size_t)256 * 1024) /* 256 KiB */

/* Bounds accepted by chunker_params_check(). */
#define CHUNKER_MIN_LIMIT ((size_t)64)               /* smallest `min` */
#define CHUNKER_MAX_LIMIT ((size_t)64 * 1024 * 1024) /* largest `max` */

/* Chunk size parameters, in bytes. Valid when
 * CHUNKER_MIN_LIMIT <= min < avg < max <= CHUNKER_MAX_LIMIT and avg is a
 * power of two. */
struct chunker_params {
    size_t min; /* no chunk but the last is shorter than this */
    size_t avg; /* target (normalisation point), a power of two */
    size_t max; /* no chunk is longer than this */
};

/* Initialiser for the defaults, e.g.
 * struct chunker_params p = CHUNKER_PARAMS_DEFAULT; */
#define CHUNKER_PARAMS_DEFAULT                                                 \
    {                                                                          \
        CHUNKER_MIN_DEFAULT, CHUNKER_AVG_DEFAULT, CHUNKER_MAX_DEFAULT          \
    }

/* Fill *p with the defaults (16 KiB / 64 KiB / 256 KiB). */
void chunker_params_default(struct chunker_params *p);

/* SIMSYNC_OK when *p is valid (see struct chunker_params), else
 * SIMSYNC_EINVAL. `p` may be NULL (EINVAL). */
int chunker_params_check(const struct chunker_params *p) SIMSYNC_MUST_CHECK;

/* Find the end of the chunk that starts at data[0].
 *
 * [in] p     valid parameters (checked with assert(): passing invalid ones
 *            is a programming error; validate user input with
 *            chunker_params_check() first).
 * [in] data  `len` bytes, borrowed for the call; may be NULL when len is 0.
 * [in] eof   nonzero when no data follows data[len - 1].
 *
 * Returns the chunk length, in 1..len, or 0:
 *  - a boundary found in the data is returned whatever follows it, so the
 *    answer never depends on how much lookahead the caller supplied;
 *  - with len >= p->max and no boundary before, returns p->max;
 *  - with eof and no boundary, returns len (the tail is the last chunk,
 *    and may be shorter than p->min);
 *  - otherwise (len < p->max, !eof, no boundary yet) returns 0: call again
 *    with at least p->max bytes, or with eof set. Also 0 when len is 0. */
size_t chunker_cut(const struct chunker_params *p, const uint8_t *data,
                   size_t len, int eof);

/* Read `fd` to its end and call `cb` once per chunk, in order, with the
 * chunks chunker_cut() gives on the whole stream. The callback gets
 * `chunk` (borrowed until it returns), holding the `len` bytes that start
 * at byte `offset` of the stream, and `arg` untouched; it returns 0 to go
 * on, and any other value stops the walk and is returned as is.
 *
 * Reads in blocks into a buffer of 2 * p->max bytes (wiped before it is
 * freed); retries on EINTR and short reads, so pipes and sockets work. An
 * empty stream gives no callback. The descriptor is borrowed and not
 * closed; it is left at its end, or wherever the walk stopped.
 *
 * Returns SIMSYNC_OK, SIMSYNC_EINVAL (bad params, NULL cb or fd < 0),
 * SIMSYNC_ENOMEM, SIMSYNC_EIO (read failed), or the callback's nonzero
 * return value. */
int chunker_fd_each(const struct chunker_params *p, int fd,
                    int (*cb)(const uint8_t *chunk, size_t len, uint64_t offset,
                              void *arg),
                    void *arg) SIMSYNC_MUST_CHECK;

#endif /* SIMSYNC_CHUNKER_H */
