/* vv.h -- version vectors and dots.
 *
 * A replica is one store of one node (node ID plus the store's epoch, hashed
 * to 64 bits: see replica_id in node.c). A dot (replica, counter) names one
 * change. A version vector maps replicas to the highest counter seen; its
 * entries are kept sorted by replica, without zero counters, so equal
 * vectors have equal encodings. Pure code: no I/O, no globals. */
#ifndef SIMSYNC_VV_H
#define SIMSYNC_VV_H

#include <stddef.h>
#include <stdint.h>
#include "simsync.h"

/* Upper bound on entries accepted from anywhere: a subscriber has a handful
 * of replicas over its life; anything near this is malformed input. */
#define VV_MAX_ENTRIES 4096

struct dot {
    uint64_t replica;
    uint64_t counter;
};

struct vv {
    size_t n;      /* entries in use */
    size_t cap;    /* entries allocated */
    struct dot *e; /* sorted by replica, counters > 0; owned */
};

enum vv_order {
    VV_EQUAL,     /* same knowledge */
    VV_GREATER,   /* a dominates b: b happened before a */
    VV_LESSER,    /* b dominates a */
    VV_CONCURRENT /* neither: a conflict */
};

#define VV_INIT                                                                \
    {                                                                          \
        0, 0, NULL                                                             \
    }

void vv_free(struct vv *v);  /* frees entries; NULL-safe; v reusable */
void vv_clear(struct vv *v); /* keeps the allocation */
int vv_copy(struct vv *dst, const struct vv *src);

/* The counter of `replica`, 0 when absent. */
uint64_t vv_get(const struct vv *v, uint64_t replica);
/* Set the counter of `replica` (0 removes it). SIMSYNC_ENOMEM,
 * SIMSYNC_ETOOBIG past VV_MAX_ENTRIES. */
int vv_set(struct vv *v, uint64_t replica, uint64_t counter);
/* Raise the counter of `replica` to at least `counter`. */
int vv_raise(struct vv *v, uint64_t replica, uint64_t counter);
/* into = pointwise max(into, other). */
int vv_merge(struct vv *into, const struct vv *other);
/* into = pointwise min(into, other): what both know (entries missing from
 * either drop out). */
int vv_meet(struct vv *into, const struct vv *other);
/* Does v contain the change `d` (v[d.replica] >= d.counter)? */
int vv_has_dot(const struct vv *v, const struct dot *d);

enum vv_order vv_compare(const struct vv *a, const struct vv *b);

/* Build a vector from unsorted entries (e.g. decoded from the wire).
 * Rejects duplicates and zero counters with SIMSYNC_EPROTO, more than
 * VV_MAX_ENTRIES with SIMSYNC_ETOOBIG. */
int vv_from_entries(struct vv *v, const struct dot *e, size_t n);

#endif /* SIMSYNC_VV_H */
