/* test_namepool.c -- chunks named on the pool's threads get the same ids as
 * named inline, every chunk reaches the sink once, a sink's error comes
 * back from namepool_wait (and later puts are refused). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "crypt.h"
#include "namepool.h"

#define N 300

struct seen {
    pthread_mutex_t mu;
    size_t calls;
    uint8_t sum[32]; /* XOR of the ids seen: order does not matter */
    int fail_at;     /* the sink fails its fail_at-th call (0: never) */
};

static int
sink(void *arg, const uint8_t id[32], const uint8_t *data, size_t len)
{
    struct seen *s = arg;
    int rc = SIMSYNC_OK;

    (void)data;
    (void)len;
    pthread_mutex_lock(&s->mu);
    s->calls++;
    for (int i = 0; i < 32; i++)
        s->sum[i] ^= id[i];
    if (s->fail_at != 0 && s->calls == (size_t)s->fail_at)
        rc = SIMSYNC_ENOSPC;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int
setup(void **state)
{
    (void)state;
    return crypt_init() == SIMSYNC_OK ? 0 : -1;
}

static uint8_t key[32];

/* Chunk i: i * 997 % 70000 + 1 bytes of a pattern. */
static size_t
chunk(uint8_t *buf, size_t i)
{
    size_t len = i * 997 % 70000 + 1;

    for (size_t j = 0; j < len; j++)
        buf[j] = (uint8_t)(j * 31 + i);
    return len;
}

static void
ids_match_inline_naming_and_every_chunk_is_sunk_once(void **state)
{
    static uint8_t ids[N][32], buf[70001];
    uint8_t want[32], sum[32] = {0};
    struct seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct namepool *p;

    (void)state;
    memset(key, 7, sizeof(key));
    assert_int_equal(namepool_new(key, sink, &s, &p), SIMSYNC_OK);
    for (size_t i = 0; i < N; i++) {
        size_t len = chunk(buf, i);
        assert_int_equal(namepool_put(p, buf, len, ids[i]), SIMSYNC_OK);
        /* The copy is the pool's: the caller's buffer may change now. */
        memset(buf, 0xEE, len);
    }
    assert_int_equal(namepool_wait(p), SIMSYNC_OK);
    for (size_t i = 0; i < N; i++) {
        size_t len = chunk(buf, i);
        crypt_hash(want, 32, buf, len, key, sizeof(key));
        assert_memory_equal(ids[i], want, 32);
        for (int k = 0; k < 32; k++)
            sum[k] ^= want[k];
    }
    assert_int_equal(s.calls, N);
    assert_memory_equal(s.sum, sum, 32);
    namepool_free(p);
    namepool_free(NULL);
}

static void
sink_error_comes_back_from_wait_and_stops_puts(void **state)
{
    static uint8_t ids[N][32], buf[70001];
    struct seen s = {.mu = PTHREAD_MUTEX_INITIALIZER, .fail_at = 5};
    struct namepool *p;
    size_t taken = 0;
    int rc = SIMSYNC_OK;

    (void)state;
    assert_int_equal(namepool_new(key, sink, &s, &p), SIMSYNC_OK);
    for (size_t i = 0; i < N && rc == SIMSYNC_OK; i++) {
        rc = namepool_put(p, buf, chunk(buf, i), ids[i]);
        taken += rc == SIMSYNC_OK;
    }
    assert_int_equal(namepool_wait(p), rc == SIMSYNC_OK ? SIMSYNC_ENOSPC : rc);
    assert_true(taken >= 4);
    /* Named but not handed on after the error. */
    assert_true(s.calls >= 5 && s.calls <= taken);
    /* The error was cleared by the wait: the pool works again. */
    assert_int_equal(namepool_put(p, buf, chunk(buf, 1), ids[0]), SIMSYNC_OK);
    assert_int_equal(namepool_wait(p), SIMSYNC_OK);
    namepool_free(p);
}

static void
no_sink_names_only(void **state)
{
    uint8_t id[32], want[32], buf[100];
    struct namepool *p;

    (void)state;
    memset(buf, 3, sizeof(buf));
    assert_int_equal(namepool_new(key, NULL, NULL, &p), SIMSYNC_OK);
    assert_int_equal(namepool_put(p, buf, sizeof(buf), id), SIMSYNC_OK);
    assert_int_equal(namepool_wait(p), SIMSYNC_OK);
    crypt_hash(want, 32, buf, sizeof(buf), key, sizeof(key));
    assert_memory_equal(id, want, 32);
    /* Nothing in flight: a wait returns at once. */
    assert_int_equal(namepool_wait(p), SIMSYNC_OK);
    namepool_free(p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ids_match_inline_naming_and_every_chunk_is_sunk_once),
        cmocka_unit_test(sink_error_comes_back_from_wait_and_stops_puts),
        cmocka_unit_test(no_sink_names_only),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
