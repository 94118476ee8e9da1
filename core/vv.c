/* vv.c -- version vectors: compare, merge, set. See vv.h. */
#include <stdlib.h>
#include <string.h>

#include "vv.h"

void
vv_free(struct vv *v)
{
    if (v == NULL)
        return;
    free(v->e);
    v->e = NULL;
    v->n = v->cap = 0;
}

void
vv_clear(struct vv *v)
{
    v->n = 0;
}

static int
reserve(struct vv *v, size_t n)
{
    struct dot *e;
    size_t cap;

    if (n <= v->cap)
        return SIMSYNC_OK;
    if (n > VV_MAX_ENTRIES)
        return SIMSYNC_ETOOBIG;
    cap = v->cap ? v->cap * 2 : 4;
    while (cap < n)
        cap *= 2;
    e = realloc(v->e, cap * sizeof(*e));
    if (e == NULL)
        return SIMSYNC_ENOMEM;
    v->e = e;
    v->cap = cap;
    return SIMSYNC_OK;
}

int
vv_copy(struct vv *dst, const struct vv *src)
{
    int rc;

    if (dst == src)
        return SIMSYNC_OK;
    dst->n = 0;
    rc = reserve(dst, src->n);
    if (rc != SIMSYNC_OK)
        return rc;
    if (src->n > 0)
        memcpy(dst->e, src->e, src->n * sizeof(*src->e));
    dst->n = src->n;
    return SIMSYNC_OK;
}

/* Index of the first entry with replica >= r. */
static size_t
lower_bound(const struct vv *v, uint64_t r)
{
    size_t lo = 0, hi = v->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v->e[mid].replica < r)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

uint64_t
vv_get(const struct vv *v, uint64_t replica)
{
    size_t i = lower_bound(v, replica);

    return (i < v->n && v->e[i].replica == replica) ? v->e[i].counter : 0;
}

int
vv_set(struct vv *v, uint64_t replica, uint64_t counter)
{
    size_t i = lower_bound(v, replica);
    int rc;

    if (i < v->n && v->e[i].replica == replica) {
        if (counter == 0) {
            memmove(&v->e[i], &v->e[i + 1], (v->n - i - 1) * sizeof(*v->e));
            v->n--;
        } else {
            v->e[i].counter = counter;
        }
        return SIMSYNC_OK;
    }
    if (counter == 0)
        return SIMSYNC_OK;
    rc = reserve(v, v->n + 1);
    if (rc != SIMSYNC_OK)
        return rc;
    memmove(&v->e[i + 1], &v->e[i], (v->n - i) * sizeof(*v->e));
    v->e[i].replica = replica;
    v->e[i].counter = counter;
    v->n++;
    return SIMSYNC_OK;
}

int
vv_raise(struct vv *v, uint64_t replica, uint64_t counter)
{
    if (vv_get(v, replica) >= counter)
        return SIMSYNC_OK;
    return vv_set(v, replica, counter);
}

int
vv_merge(struct vv *into, const struct vv *other)
{
    for (size_t i = 0; i < other->n; i++) {
        int rc = vv_raise(into, other->e[i].replica, other->e[i].counter);
        if (rc != SIMSYNC_OK)
            return rc;
    }
    return SIMSYNC_OK;
}

int
vv_meet(struct vv *into, const struct vv *other)
{
    size_t w = 0;

    for (size_t i = 0; i < into->n; i++) {
        uint64_t c = vv_get(other, into->e[i].replica);
        if (c == 0)
            continue;
        into->e[w].replica = into->e[i].replica;
        into->e[w].counter = c < into->e[i].counter ? c : into->e[i].counter;
        w++;
    }
    into->n = w;
    return SIMSYNC_OK;
}

int
vv_has_dot(const struct vv *v, const struct dot *d)
{
    return vv_get(v, d->replica) >= d->counter;
}

enum vv_order
vv_compare(const struct vv *a, const struct vv *b)
{
    size_t i = 0, j = 0;
    int a_more = 0, b_more = 0;

    /* Merge walk over both sorted entry lists. */
    while (i < a->n || j < b->n) {
        if (j >= b->n || (i < a->n && a->e[i].replica < b->e[j].replica)) {
            a_more = 1;
            i++;
        } else if (i >= a->n || b->e[j].replica < a->e[i].replica) {
            b_more = 1;
            j++;
        } else {
            if (a->e[i].counter > b->e[j].counter)
                a_more = 1;
            else if (a->e[i].counter < b->e[j].counter)
                b_more = 1;
            i++;
            j++;
        }
        if (a_more && b_more)
            return VV_CONCURRENT;
    }
    if (a_more)
        return VV_GREATER;
    if (b_more)
        return VV_LESSER;
    return VV_EQUAL;
}

static int
cmp_dot(const void *x, const void *y)
{
    const struct dot *a = x, *b = y;

    return (a->replica > b->replica) - (a->replica < b->replica);
}

int
vv_from_entries(struct vv *v, const struct dot *e, size_t n)
{
    int rc;

    v->n = 0;
    if (n > VV_MAX_ENTRIES)
        return SIMSYNC_ETOOBIG;
    rc = reserve(v, n);
    if (rc != SIMSYNC_OK)
        return rc;
    if (n > 0)
        memcpy(v->e, e, n * sizeof(*e));
    if (n > 0)
        qsort(v->e, n, sizeof(*v->e), cmp_dot);
    for (size_t i = 0; i < n; i++) {
        if (v->e[i].counter == 0 ||
            (i > 0 && v->e[i].replica == v->e[i - 1].replica)) {
            v->n = 0;
            return SIMSYNC_EPROTO;
        }
    }
    v->n = n;
    return SIMSYNC_OK;
}
