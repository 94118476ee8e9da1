/* dio.c -- direct writes on a background thread. See dio.h. */
#define _GNU_SOURCE /* O_DIRECT */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dio.h"

struct dio_job {
    int fd;
    uint8_t *buf;
    size_t len;
    uint64_t off;
    int *err;
};

struct dio {
    size_t bufsize;
    unsigned nbuf;
    uint8_t *mem; /* the buffers, one block */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* broadcast on every change below */
    uint8_t **free;    /* free buffers (a stack) */
    unsigned nfree;
    struct dio_job *q; /* queued writes, a ring of nbuf */
    unsigned qhead, qlen;
    uint64_t queued, done; /* tickets */
    int quit;
};

/* pwrite all of it; a refused direct write (EINVAL) and the rest of a
 * short one are written again with O_DIRECT off. */
static int
write_job(const struct dio_job *j)
{
    size_t done = 0;

    while (done < j->len) {
        ssize_t n =
            pwrite(j->fd, j->buf + done, j->len - done, (off_t)(j->off + done));
        if (n > 0) {
            done += (size_t)n;
            if (done < j->len) {
                int fl = fcntl(j->fd, F_GETFL);
                if (fl >= 0 && (fl & O_DIRECT))
                    (void)fcntl(j->fd, F_SETFL, fl & ~O_DIRECT);
            }
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EINVAL) {
            int fl = fcntl(j->fd, F_GETFL);
            if (fl >= 0 && (fl & O_DIRECT) &&
                fcntl(j->fd, F_SETFL, fl & ~O_DIRECT) == 0)
                continue;
        }
        return n < 0 && (errno == ENOSPC || errno == EDQUOT) ? SIMSYNC_ENOSPC
                                                             : SIMSYNC_EIO;
    }
    return SIMSYNC_OK;
}

static void *
dio_main(void *arg)
{
    struct dio *d = arg;

    pthread_mutex_lock(&d->mu);
    for (;;) {
        struct dio_job j;
        int rc;

        while (d->qlen == 0 && !d->quit)
            pthread_cond_wait(&d->cv, &d->mu);
        if (d->qlen == 0)
            break;
        j = d->q[d->qhead];
        pthread_mutex_unlock(&d->mu);
        rc = write_job(&j);
        pthread_mutex_lock(&d->mu);
        if (rc != SIMSYNC_OK)
            *j.err = rc;
        d->qhead = (d->qhead + 1) % d->nbuf;
        d->qlen--;
        d->free[d->nfree++] = j.buf;
        d->done++;
        pthread_cond_broadcast(&d->cv);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

int
dio_new(size_t bufsize, unsigned nbuf, struct dio **out)
{
    struct dio *d;

    *out = NULL;
    if (bufsize == 0 || bufsize % DIO_ALIGN != 0 || nbuf == 0)
        return SIMSYNC_EINVAL;
    d = calloc(1, sizeof(*d));
    if (d == NULL)
        return SIMSYNC_ENOMEM;
    d->bufsize = bufsize;
    d->nbuf = nbuf;
    d->free = calloc(nbuf, sizeof(*d->free));
    d->q = calloc(nbuf, sizeof(*d->q));
    if (d->free == NULL || d->q == NULL ||
        posix_memalign((void **)&d->mem, DIO_ALIGN, bufsize * nbuf) != 0)
        goto fail;
    for (unsigned i = 0; i < nbuf; i++)
        d->free[d->nfree++] = d->mem + (size_t)i * bufsize;
    if (pthread_mutex_init(&d->mu, NULL) != 0)
        goto fail;
    if (pthread_cond_init(&d->cv, NULL) != 0) {
        pthread_mutex_destroy(&d->mu);
        goto fail;
    }
    if (pthread_create(&d->thread, NULL, dio_main, d) != 0) {
        pthread_cond_destroy(&d->cv);
        pthread_mutex_destroy(&d->mu);
        goto fail;
    }
    *out = d;
    return SIMSYNC_OK;
fail:
    free(d->mem);
    free(d->free);
    free(d->q);
    free(d);
    return SIMSYNC_ENOMEM;
}

void
dio_free(struct dio *d)
{
    if (d == NULL)
        return;
    pthread_mutex_lock(&d->mu);
    d->quit = 1;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->thread, NULL);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    free(d->mem);
    free(d->free);
    free(d->q);
    free(d);
}

size_t
dio_bufsize(const struct dio *d)
{
    return d->bufsize;
}

uint8_t *
dio_get(struct dio *d)
{
    uint8_t *buf;

    pthread_mutex_lock(&d->mu);
    while (d->nfree == 0)
        pthread_cond_wait(&d->cv, &d->mu);
    buf = d->free[--d->nfree];
    pthread_mutex_unlock(&d->mu);
    return buf;
}

void
dio_put(struct dio *d, uint8_t *buf)
{
    pthread_mutex_lock(&d->mu);
    d->free[d->nfree++] = buf;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

uint64_t
dio_write(struct dio *d, int fd, uint8_t *buf, size_t len, uint64_t off,
          int *err)
{
    uint64_t ticket;

    pthread_mutex_lock(&d->mu);
    /* At most nbuf buffers exist, so the ring never overflows. */
    d->q[(d->qhead + d->qlen) % d->nbuf] =
        (struct dio_job){fd, buf, len, off, err};
    d->qlen++;
    ticket = ++d->queued;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    return ticket;
}

uint64_t
dio_done(struct dio *d)
{
    uint64_t done;

    pthread_mutex_lock(&d->mu);
    done = d->done;
    pthread_mutex_unlock(&d->mu);
    return done;
}

void
dio_wait(struct dio *d, uint64_t ticket)
{
    pthread_mutex_lock(&d->mu);
    while (d->done < ticket)
        pthread_cond_wait(&d->cv, &d->mu);
    pthread_mutex_unlock(&d->mu);
}
