/* namepool.c -- chunk naming on worker threads. See namepool.h.
 *
 * Jobs go through one FIFO under one mutex; `pending` counts the jobs put
 * and not yet finished, `bytes` their copies. Workers sleep on `work`, the
 * caller on `done` (waiting for room or for the end). */
#include "namepool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "crypt.h"

struct job {
    struct job *next;
    uint8_t *data; /* owned copy */
    size_t len;
    uint8_t *id; /* the caller's slot */
};

struct namepool {
    uint8_t key[32];
    namepool_sink_fn sink;
    void *sink_arg;
    pthread_mutex_t mu;
    pthread_cond_t work; /* a job queued, or quit */
    pthread_cond_t done; /* a job finished */
    struct job *head, *tail;
    size_t pending; /* put and not finished */
    size_t bytes;   /* of their copies */
    int err;        /* first error since the last wait */
    int quit;
    pthread_t th[NAMEPOOL_THREADS];
    size_t nth;
};

/* Name one chunk and hand it on; returns the sink's result. */
static int
name_one(struct namepool *p, const struct job *j, int sink)
{
    crypt_hash(j->id, 32, j->data, j->len, p->key, sizeof(p->key));
    return sink && p->sink != NULL
               ? p->sink(p->sink_arg, j->id, j->data, j->len)
               : SIMSYNC_OK;
}

static void
job_free(struct job *j)
{
    crypt_wipe(j->data, j->len);
    free(j->data);
    free(j);
}

static void *
worker(void *arg)
{
    struct namepool *p = arg;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        struct job *j;

        while (p->head == NULL && !p->quit)
            pthread_cond_wait(&p->work, &p->mu);
        if (p->head == NULL)
            break; /* quit, and nothing left */
        j = p->head;
        p->head = j->next;
        if (p->head == NULL)
            p->tail = NULL;
        /* After an error the chunk is still named (the caller's slot gets
         * a real id) but no longer handed on. */
        int sink = p->err == SIMSYNC_OK;
        pthread_mutex_unlock(&p->mu);

        int rc = name_one(p, j, sink);
        size_t len = j->len;
        job_free(j);

        pthread_mutex_lock(&p->mu);
        if (rc != SIMSYNC_OK && p->err == SIMSYNC_OK)
            p->err = rc;
        p->pending--;
        p->bytes -= len;
        pthread_cond_broadcast(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int
namepool_new(const uint8_t key[32], namepool_sink_fn sink, void *sink_arg,
             struct namepool **out)
{
    struct namepool *p = calloc(1, sizeof(*p));

    *out = NULL;
    if (p == NULL)
        return SIMSYNC_ENOMEM;
    memcpy(p->key, key, sizeof(p->key));
    p->sink = sink;
    p->sink_arg = sink_arg;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    /* Threads that cannot start leave the naming to namepool_put. */
    for (; p->nth < NAMEPOOL_THREADS; p->nth++)
        if (pthread_create(&p->th[p->nth], NULL, worker, p) != 0)
            break;
    *out = p;
    return SIMSYNC_OK;
}

int
namepool_put(struct namepool *p, const uint8_t *data, size_t len,
             uint8_t id_out[32])
{
    struct job *j = malloc(sizeof(*j));
    int rc;

    if (j == NULL)
        return SIMSYNC_ENOMEM;
    j->next = NULL;
    j->len = len;
    j->id = id_out;
    j->data = malloc(len ? len : 1);
    if (j->data == NULL) {
        free(j);
        return SIMSYNC_ENOMEM;
    }
    memcpy(j->data, data, len);
    if (p->nth == 0) {
        rc = p->err != SIMSYNC_OK ? p->err : name_one(p, j, 1);
        job_free(j);
        if (rc != SIMSYNC_OK && p->err == SIMSYNC_OK)
            p->err = rc;
        return rc;
    }
    pthread_mutex_lock(&p->mu);
    /* Room: at most NAMEPOOL_MAX_BYTES in flight (one chunk always fits). */
    while (p->err == SIMSYNC_OK && p->pending > 0 &&
           p->bytes + len > NAMEPOOL_MAX_BYTES)
        pthread_cond_wait(&p->done, &p->mu);
    rc = p->err;
    if (rc == SIMSYNC_OK) {
        if (p->tail != NULL)
            p->tail->next = j;
        else
            p->head = j;
        p->tail = j;
        p->pending++;
        p->bytes += len;
        pthread_cond_signal(&p->work);
    }
    pthread_mutex_unlock(&p->mu);
    if (rc != SIMSYNC_OK)
        job_free(j);
    return rc;
}

int
namepool_wait(struct namepool *p)
{
    int rc;

    pthread_mutex_lock(&p->mu);
    while (p->pending > 0)
        pthread_cond_wait(&p->done, &p->mu);
    rc = p->err;
    p->err = SIMSYNC_OK;
    pthread_mutex_unlock(&p->mu);
    return rc;
}

void
namepool_free(struct namepool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < p->nth; i++)
        pthread_join(p->th[i], NULL);
    /* The workers drained the queue before they quit. */
    crypt_wipe(p->key, sizeof(p->key));
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
