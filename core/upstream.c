/* upstream.c -- backup chunks sent while the scan cuts them. See upstream.h.
 *
 * The queue is a ring of UP_SLOTS slots, filled in order by upstream_put()
 * (the scan's thread), sealed in order by UP_WORKERS threads and emptied
 * in order by the sender thread. The sender takes every slot put since its
 * last query, asks the hub about their ids in one ChunkQuery, then sends
 * the wanted ones as they become sealed and frees the slots. Sealing does
 * not wait for the hub's answer: a chunk the scan just cut is new content,
 * which the hub lacks but for rare duplicates, so the work is seldom
 * wasted and the sealing overlaps the round trip. */
#include "upstream.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blob.h"
#include "chunker.h"
#include "crypt.h"
#include "node.h"

#define UP_SLOTS 512          /* chunks queued, sealed or waiting to be sent */
#define UP_BYTES (16u << 20)  /* and their plaintext bytes, at most */
#define UP_WORKERS 2  /* sealing threads */

enum slot_state { SLOT_QUEUED, SLOT_SEALING, SLOT_SEALED };

struct slot {
    uint8_t id[32];
    uint8_t *data; /* plaintext, until sealed */
    size_t len;
    uint8_t *blob; /* sealed, until sent */
    size_t blen;
    int rc;
    enum slot_state state;
};

struct upstream {
    upstream_open_fn open; /* borrowed, with open_arg */
    void *open_arg;
    struct chan *ch; /* from open(); the sender's until finish */
    uint8_t key[32];
    uint8_t last_id[32]; /* the last id queried (the keepalive's) */
    int have_last;
    struct slot slot[UP_SLOTS];
    /* Positions count up forever; slot i is slot[i % UP_SLOTS].
     * head <= seal <= tail, tail - head <= UP_SLOTS. */
    uint64_t head; /* next to send (the sender's) */
    uint64_t seal; /* next to seal */
    uint64_t tail; /* next to fill */
    int closing;   /* no more puts */
    int quit;      /* threads stop now */
    int err;       /* first error; puts fail with it */
    size_t queued; /* plaintext bytes of the slots in use */
    uint64_t start_ms;  /* when the upstream started (the scan with it) */
    uint64_t waited_ms; /* how long puts have waited for room in all */
    struct upstream_stats stats;
    pthread_mutex_t mu;
    pthread_cond_t work;  /* sealers: a slot to seal, or the end */
    pthread_cond_t ready; /* sender: a slot put or sealed, or the end */
    pthread_cond_t room;  /* upstream_put: a slot freed, or an error */
    pthread_t sender, workers[UP_WORKERS];
    size_t nworkers;
    int sender_up;
};

static void
fail(struct upstream *u, int rc)
{
    if (u->err == SIMSYNC_OK)
        u->err = rc;
    u->quit = 1;
    pthread_cond_broadcast(&u->work);
    pthread_cond_broadcast(&u->ready);
    pthread_cond_broadcast(&u->room);
}

static void *
seal_main(void *arg)
{
    struct upstream *u = arg;

    pthread_mutex_lock(&u->mu);
    for (;;) {
        while (!u->quit && u->seal == u->tail && !u->closing)
            pthread_cond_wait(&u->work, &u->mu);
        if (u->quit || u->seal == u->tail)
            break;
        struct slot *s = &u->slot[u->seal++ % UP_SLOTS];
        s->state = SLOT_SEALING;
        pthread_mutex_unlock(&u->mu);

        uint8_t *blob = NULL;
        size_t blen = 0;
        int rc = blob_encode(u->key, s->id, 32, s->data, s->len, &blob, &blen);
        free(s->data);

        pthread_mutex_lock(&u->mu);
        s->data = NULL;
        s->blob = blob;
        s->blen = blen;
        s->rc = rc;
        s->state = SLOT_SEALED;
        pthread_cond_signal(&u->ready);
    }
    pthread_mutex_unlock(&u->mu);
    return NULL;
}

/* Ask the hub about the ids of slots [from, to); *want gets its answer. */
static int
query(struct upstream *u, uint64_t from, uint64_t to, Simsync__Envelope **want)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__ChunkQuery q = SIMSYNC__CHUNK_QUERY__INIT;
    ProtobufCBinaryData *ids = calloc(to - from, sizeof(*ids));
    int rc;

    if (ids == NULL)
        return SIMSYNC_ENOMEM;
    for (uint64_t i = from; i < to; i++) {
        ids[q.n_ids].data = u->slot[i % UP_SLOTS].id;
        ids[q.n_ids].len = 32;
        q.n_ids++;
    }
    memcpy(u->last_id, ids[q.n_ids - 1].data, 32);
    u->have_last = 1;
    q.ids = ids;
    env.msg_case = SIMSYNC__ENVELOPE__MSG_CHUNK_QUERY;
    env.chunk_query = &q;
    rc = node_send_env(u->ch, &env);
    if (rc == SIMSYNC_OK)
        rc = node_recv_kind(u->ch, SIMSYNC__ENVELOPE__MSG_WANT,
                            (void **)want);
    if (rc == SIMSYNC_OK && (*want)->want->n_ids > q.n_ids)
        rc = SIMSYNC_EPROTO; /* more than was asked */
    free(ids);
    return rc;
}

/* Is id in the hub's answer? Every copy of it is moved past n_ids (swapped
 * to the end, so the message still owns and frees them all once n_ids is
 * set back), so that a chunk queued several times in one query (the hub
 * then lists it as often) is sent once. */
static int
take_wanted(Simsync__ChunkWant *w, const uint8_t id[32])
{
    int found = 0;

    for (size_t i = 0; i < w->n_ids;) {
        if (w->ids[i].len == 32 && memcmp(w->ids[i].data, id, 32) == 0) {
            ProtobufCBinaryData t = w->ids[i];
            w->ids[i] = w->ids[--w->n_ids];
            w->ids[w->n_ids] = t;
            found = 1;
        } else {
            i++;
        }
    }
    return found;
}

static int
send_chunk(struct upstream *u, const uint8_t id[32], uint8_t *blob,
           size_t blen)
{
    return node_send_chunk(u->ch, id, 32, blob, blen);
}

static uint64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Wait for a change, at most ms milliseconds. Returns 0 or ETIMEDOUT.
 * Called and returns with u->mu held. */
static int
timed_wait(struct upstream *u, pthread_cond_t *cv, uint64_t ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return pthread_cond_timedwait(cv, &u->mu, &ts);
}

static int
idle_wait(struct upstream *u)
{
    return timed_wait(u, &u->ready, UPSTREAM_KEEPALIVE_MS);
}

/* Ask again about the last id queried: the hub has it (it was sent or
 * the hub had it), so nothing is sent; the connection stays alive.
 * Called and returns with u->mu held. */
static int
keepalive(struct upstream *u)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT, *in = NULL;
    Simsync__ChunkQuery q = SIMSYNC__CHUNK_QUERY__INIT;
    ProtobufCBinaryData id = {32, u->last_id};
    int rc;

    pthread_mutex_unlock(&u->mu);
    q.ids = &id;
    q.n_ids = 1;
    env.msg_case = SIMSYNC__ENVELOPE__MSG_CHUNK_QUERY;
    env.chunk_query = &q;
    rc = node_send_env(u->ch, &env);
    if (rc == SIMSYNC_OK)
        rc = node_recv_kind(u->ch, SIMSYNC__ENVELOPE__MSG_WANT, (void **)&in);
    if (in != NULL)
        simsync__envelope__free_unpacked(in, NULL);
    pthread_mutex_lock(&u->mu);
    return rc;
}

static void *
send_main(void *arg)
{
    struct upstream *u = arg;

    pthread_mutex_lock(&u->mu);
    for (;;) {
        while (!u->quit && u->head == u->tail && !u->closing) {
            if (idle_wait(u) == ETIMEDOUT && u->have_last) {
                int rc = keepalive(u);
                if (rc != SIMSYNC_OK) {
                    fail(u, rc);
                    break;
                }
            }
        }
        if (u->quit || u->head == u->tail)
            break;
        uint64_t from = u->head, to = u->tail;
        Simsync__Envelope *in = NULL;
        int rc = SIMSYNC_OK;
        size_t nwant = 0;
        pthread_mutex_unlock(&u->mu);

        if (u->ch == NULL)
            rc = u->open(u->open_arg, &u->ch);
        /* The ids are written before tail moves and not touched again
         * until the slot is freed below: reading them unlocked is safe. */
        if (rc == SIMSYNC_OK)
            rc = query(u, from, to, &in);
        if (in != NULL)
            nwant = in->want->n_ids;

        pthread_mutex_lock(&u->mu);
        for (uint64_t i = from; i < to; i++) {
            struct slot *s = &u->slot[i % UP_SLOTS];
            while (!u->quit && s->state != SLOT_SEALED)
                pthread_cond_wait(&u->ready, &u->mu);
            if (u->quit)
                break;
            uint8_t *blob = s->blob;
            size_t blen = s->blen;
            if (rc == SIMSYNC_OK)
                rc = s->rc;
            pthread_mutex_unlock(&u->mu);
            if (rc == SIMSYNC_OK && take_wanted(in->want, s->id)) {
                rc = send_chunk(u, s->id, blob, blen);
                if (rc == SIMSYNC_OK) {
                    u->stats.chunks++;
                    u->stats.bytes += blen;
                }
            } else if (rc == SIMSYNC_OK) {
                u->stats.have++;
            }
            free(blob);
            pthread_mutex_lock(&u->mu);
            s->blob = NULL;
            s->state = SLOT_QUEUED;
            u->queued -= s->len;
            u->head = i + 1;
            pthread_cond_signal(&u->room);
            if (rc != SIMSYNC_OK)
                break;
        }
        if (in != NULL) {
            in->want->n_ids = nwant; /* the taken ones too (take_wanted) */
            simsync__envelope__free_unpacked(in, NULL);
        }
        if (rc != SIMSYNC_OK)
            fail(u, rc);
        if (u->quit)
            break;
    }
    pthread_mutex_unlock(&u->mu);
    return NULL;
}

static void
stop_threads(struct upstream *u)
{
    for (size_t i = 0; i < u->nworkers; i++)
        pthread_join(u->workers[i], NULL);
    if (u->sender_up)
        pthread_join(u->sender, NULL);
    u->nworkers = 0;
    u->sender_up = 0;
}

int
upstream_start(upstream_open_fn open, void *arg, const uint8_t seal_key[32],
               struct upstream **out)
{
    struct upstream *u = calloc(1, sizeof(*u));
    pthread_condattr_t ca;

    *out = NULL;
    if (u == NULL)
        return SIMSYNC_ENOMEM;
    u->open = open;
    u->open_arg = arg;
    u->start_ms = mono_ms();
    memcpy(u->key, seal_key, 32);
    pthread_mutex_init(&u->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&u->work, NULL);
    pthread_cond_init(&u->ready, &ca);
    pthread_cond_init(&u->room, &ca);
    pthread_condattr_destroy(&ca);
    for (; u->nworkers < UP_WORKERS; u->nworkers++)
        if (pthread_create(&u->workers[u->nworkers], NULL, seal_main, u) != 0)
            break;
    u->sender_up = u->nworkers > 0 &&
                   pthread_create(&u->sender, NULL, send_main, u) == 0;
    if (!u->sender_up) {
        pthread_mutex_lock(&u->mu);
        fail(u, SIMSYNC_ENOMEM);
        pthread_mutex_unlock(&u->mu);
        upstream_finish(u, NULL);
        return SIMSYNC_ENOMEM;
    }
    *out = u;
    return SIMSYNC_OK;
}

int
upstream_put(struct upstream *u, const uint8_t id[32], const uint8_t *data,
             size_t len)
{
    int rc;

    if (len > CHUNKER_MAX_DEFAULT)
        return SIMSYNC_EINVAL;
    pthread_mutex_lock(&u->mu);
    while (u->err == SIMSYNC_OK &&
           (u->tail - u->head == UP_SLOTS || u->queued + len > UP_BYTES)) {
        /* Full: wait for room as long as the scan has waited less in all
         * than it has worked, so the upload at most doubles its time. */
        uint64_t t0 = mono_ms(), work = t0 - u->start_ms - u->waited_ms;
        if (u->waited_ms >= work)
            break;
        timed_wait(u, &u->room, work - u->waited_ms);
        u->waited_ms += mono_ms() - t0;
    }
    rc = u->err;
    if (rc == SIMSYNC_OK &&
        (u->tail - u->head == UP_SLOTS || u->queued + len > UP_BYTES)) {
        u->stats.skipped++; /* full: the upload after the snapshot sends it */
    } else if (rc == SIMSYNC_OK) {
        struct slot *s = &u->slot[u->tail % UP_SLOTS];
        s->data = malloc(len ? len : 1);
        if (s->data == NULL) {
            rc = SIMSYNC_ENOMEM;
        } else {
            memcpy(s->data, data, len);
            memcpy(s->id, id, 32);
            s->len = len;
            s->blob = NULL;
            s->rc = SIMSYNC_OK;
            s->state = SLOT_QUEUED;
            u->queued += len;
            u->tail++;
            pthread_cond_signal(&u->work);
            pthread_cond_signal(&u->ready);
        }
    }
    pthread_mutex_unlock(&u->mu);
    return rc;
}

int
upstream_sink(void *arg, const uint8_t id[32], const uint8_t *data,
              size_t len)
{
    return upstream_put(arg, id, data, len);
}

int
upstream_finish(struct upstream *u, struct upstream_stats *stats)
{
    int rc;

    if (stats != NULL)
        memset(stats, 0, sizeof(*stats));
    if (u == NULL)
        return SIMSYNC_OK;
    pthread_mutex_lock(&u->mu);
    u->closing = 1;
    pthread_cond_broadcast(&u->work);
    pthread_cond_broadcast(&u->ready);
    pthread_mutex_unlock(&u->mu);
    stop_threads(u);
    /* After an error some slots may still hold data or blobs. */
    for (size_t i = 0; i < UP_SLOTS; i++) {
        free(u->slot[i].data);
        free(u->slot[i].blob);
    }
    rc = u->err;
    if (stats != NULL)
        *stats = u->stats;
    crypt_wipe(u->key, sizeof(u->key));
    pthread_cond_destroy(&u->work);
    pthread_cond_destroy(&u->ready);
    pthread_cond_destroy(&u->room);
    pthread_mutex_destroy(&u->mu);
    free(u);
    return rc;
}
