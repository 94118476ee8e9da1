/* test_chunker.c -- FastCDC chunking: size bounds, determinism, average
 * size, boundary stability under an insert, end-of-input handling, and the
 * file descriptor helper. Random inputs come from fixed seeds, printed when
 * a check fails, so every failure can be replayed. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <errno.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chunker.h"
#include "crypt.h"

#define MIB ((size_t)1024 * 1024)
#define HASH_BYTES 32

/* Deterministic pseudo-random bytes (splitmix64). */
static void
fill_random(uint8_t *buf, size_t len, uint64_t seed)
{
    uint64_t state = seed, z;
    size_t i, k;

    for (i = 0; i < len; i += 8) {
        state += 0x9e3779b97f4a7c15ULL;
        z = state;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
        for (k = 0; k < 8 && i + k < len; k++)
            buf[i + k] = (uint8_t)(z >> (8 * k));
    }
}

static uint8_t *
random_buffer(size_t len, uint64_t seed)
{
    uint8_t *buf = malloc(len);

    assert_non_null(buf);
    fill_random(buf, len, seed);
    return buf;
}

/* The chunks of a whole in-memory buffer. */
struct chunk_list {
    size_t n;
    size_t cap;
    uint64_t *offset;
    size_t *len;
    uint8_t (*hash)[HASH_BYTES];
};

static void
list_add(struct chunk_list *l, const uint8_t *chunk, size_t len,
         uint64_t offset)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->offset = realloc(l->offset, l->cap * sizeof(*l->offset));
        l->len = realloc(l->len, l->cap * sizeof(*l->len));
        l->hash = realloc(l->hash, l->cap * sizeof(*l->hash));
        assert_non_null(l->offset);
        assert_non_null(l->len);
        assert_non_null(l->hash);
    }
    l->offset[l->n] = offset;
    l->len[l->n] = len;
    assert_int_equal(crypt_hash(l->hash[l->n], HASH_BYTES, chunk, len, NULL, 0),
                     SIMSYNC_OK);
    l->n++;
}

static void
list_free(struct chunk_list *l)
{
    free(l->offset);
    free(l->len);
    free(l->hash);
    memset(l, 0, sizeof(*l));
}

/* Chunk `data` with chunker_cut, giving it the whole rest of the buffer. */
static void
chunk_buffer(const struct chunker_params *p, const uint8_t *data, size_t len,
             struct chunk_list *l)
{
    size_t pos = 0, n;

    memset(l, 0, sizeof(*l));
    while (pos < len) {
        n = chunker_cut(p, data + pos, len - pos, 1);
        assert_true(n > 0 && n <= len - pos);
        list_add(l, data + pos, n, pos);
        pos += n;
    }
}

static int
list_has_hash(const struct chunk_list *l, const uint8_t *hash)
{
    for (size_t i = 0; i < l->n; i++)
        if (memcmp(l->hash[i], hash, HASH_BYTES) == 0)
            return 1;
    return 0;
}

static void
assert_lists_equal(const struct chunk_list *a, const struct chunk_list *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        assert_int_equal(a->offset[i], b->offset[i]);
        assert_int_equal(a->len[i], b->len[i]);
        assert_memory_equal(a->hash[i], b->hash[i], HASH_BYTES);
    }
}

static int
setup(void **state)
{
    (void)state;
    return crypt_init() == SIMSYNC_OK ? 0 : -1;
}

static void
params_check_accepts_defaults_and_rejects_bad_sizes(void **state)
{
    struct chunker_params p = CHUNKER_PARAMS_DEFAULT;
    struct chunker_params d;

    (void)state;
    chunker_params_default(&d);
    assert_int_equal(d.min, 16 * 1024);
    assert_int_equal(d.avg, 64 * 1024);
    assert_int_equal(d.max, 256 * 1024);
    assert_memory_equal(&p, &d, sizeof(p));
    assert_int_equal(chunker_params_check(&p), SIMSYNC_OK);
    assert_int_equal(chunker_params_check(NULL), SIMSYNC_EINVAL);

    p = d;
    p.min = p.avg; /* min must be below avg */
    assert_int_equal(chunker_params_check(&p), SIMSYNC_EINVAL);
    p = d;
    p.max = p.avg; /* avg must be below max */
    assert_int_equal(chunker_params_check(&p), SIMSYNC_EINVAL);
    p = d;
    p.avg = 48 * 1024; /* not a power of two */
    assert_int_equal(chunker_params_check(&p), SIMSYNC_EINVAL);
    p = d;
    p.min = 0;
    assert_int_equal(chunker_params_check(&p), SIMSYNC_EINVAL);
    p = d;
    p.max = CHUNKER_MAX_LIMIT + 1;
    assert_int_equal(chunker_params_check(&p), SIMSYNC_EINVAL);
    p.min = 1024;
    p.avg = 4096;
    p.max = 8192;
    assert_int_equal(chunker_params_check(&p), SIMSYNC_OK);
}

static void
chunk_sizes_stay_within_min_and_max(void **state)
{
    const struct chunker_params p = CHUNKER_PARAMS_DEFAULT;
    const uint64_t seed = 0x1001;
    const size_t len = 4 * MIB + 12345;
    uint8_t *data = random_buffer(len, seed);
    struct chunk_list l;
    size_t total = 0;

    (void)state;
    chunk_buffer(&p, data, len, &l);
    assert_true(l.n > 1);
    for (size_t i = 0; i < l.n; i++) {
        if (i + 1 < l.n && (l.len[i] < p.min || l.len[i] > p.max))
            print_error("seed %#llx: chunk %zu has %zu bytes\n",
                        (unsigned long long)seed, i, l.len[i]);
        if (i + 1 < l.n)
            assert_in_range(l.len[i], p.min, p.max);
        assert_int_equal(l.offset[i], total);
        total += l.len[i];
    }
    assert_int_equal(total, len);
    list_free(&l);
    free(data);
}

static void
uniform_data_is_cut_at_max(void **state)
{
    const struct chunker_params p = CHUNKER_PARAMS_DEFAULT;
    const size_t len = 3 * CHUNKER_MAX_DEFAULT + 100;
    uint8_t *data = calloc(1, len);
    struct chunk_list l;

    (void)state;
    assert_non_null(data);
    chunk_buffer(&p, data, len, &l);
    /* Constant input gives a constant hash: no content boundary, so the
     * size limit alone cuts it. */
    assert_int_equal(l.n, 4);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(l.len[i], p.max);
    assert_int_equal(l.len[3], 100);
    list_free(&l);
    free(data);
}

static void
same_input_gives_same_boundaries(void **state)
{
    const struct chunker_params p = CHUNKER_PARAMS_DEFAULT;
    const size_t len = 2 * MIB;
    uint8_t *a = random_buffer(len, 0x2002);
    uint8_t *b = random_buffer(len, 0x2002);
    struct chunk_list la, lb;

    (void)state;
    chunk_buffer(&p, a, len, &la);
    chunk_buffer(&p, b, len, &lb);
    assert_true(la.n > 2);
    assert_lists_equal(&la, &lb);
    list_free(&la);
    list_free(&lb);
    free(a);
    free(b);
}

static void
cut_does_not_depend_on_lookahead(void **state)
{
    const struct chunker_params p = CHUNKER_PARAMS_DEFAULT;
    const size_t len = 2 * CHUNKER_MAX_DEFAULT;
    uint8_t *data = random_buffer(len, 0x3003);
    size_t full, part, avail;

    (void)state;
    full = chunker_cut(&p, data, len, 0);
    assert_in_range(full, p.min + 1, p.max);
    assert_int_equal(chunker_cut(&p, data, p.max, 0), full);
    assert_int_equal(chunker_cut(&p, data, full, 0), full);
    /* With less data than the boundary needs, the answer is "more". */
    for (avail = 1; avail < full; avail += 997) {
        part = chunker_cut(&p, data, avail, 0);
        assert_int_equal(part, 0);
    }
    /* Cut short by eof before the boundary: the tail is the chunk. */
    assert_int_equal(chunker_cut(&p, data, full - 1, 1), full - 1);
    free(data);
}

static void
average_chunk_size_is_near_target(void **state)
{
    const struct chunker_params p = CHUNKER_PARAMS_DEFAULT;
    const uint64_t seed = 0x4004;
    const size_t len = 16 * MIB;
    uint8_t *data = random_buffer(len, seed);
    struct chunk_list l;
    size_t mean;

    (void)state;
    chunk_buffer(&p, data, len, &l);
    /* Leave the short tail out of the mean. */
    mean = (len - l.len[l.n - 1]) / (l.n - 1);
    if (mean < p.avg / 2 || mean > p.avg + p.avg / 2)
        print_error("seed %#llx: mean chunk %zu bytes over %zu chunks\n",
                    (unsigned long long)seed, mean, l.n);
    assert_in_range(mean, p.avg / 2, p.avg + p.avg / 2);
    list_free(&l);
    free(data);
}

static void
insert_near_start_keeps_most_chunks(void **state)
{
    const struct chunker_params p = CHUNKER_PARAMS_DEFAULT;
    const uint64_t seed = 0x5005;
    const size_t len = 8 * MIB, ins = 100, at = 1000;
    uint8_t *orig = random_buffer(len, seed);
    uint8_t *edit = malloc(len + ins);
    struct chunk_list lo, le;
    size_t shared = 0;

    (void)state;
    assert_non_null(edit);
    memcpy(edit, orig, at);
    fill_random(edit + at, ins, seed + 1);
    memcpy(edit + at + ins, orig + at, len - at);

    chunk_buffer(&p, orig, len, &lo);
    chunk_buffer(&p, edit, len + ins, &le);
    for (size_t i = 0; i < lo.n; i++)
        shared += (size_t)list_has_hash(&le, lo.hash[i]);
    if (shared * 10 < lo.n * 9)
        print_error("seed %#llx: %zu of %zu chunks shared\n",
                    (unsigned long long)seed, shared, lo.n);
    assert_true(shared * 10 >= lo.n * 9);
    /* The edit is in the first chunk: that one must change. */
    assert_false(list_has_hash(&le, lo.hash[0]));
    list_free(&lo);
    list_free(&le);
    free(orig);
    free(edit);
}

static void
tiny_input_is_one_chunk_at_eof(void **state)
{
    const struct chunker_params p = CHUNKER_PARAMS_DEFAULT;
    uint8_t *data = random_buffer(p.min + 10, 0x6006);

    (void)state;
    assert_int_equal(chunker_cut(&p, data, 10, 1), 10);
    assert_int_equal(chunker_cut(&p, data, 1, 1), 1);
    assert_int_equal(chunker_cut(&p, data, 10, 0), 0);
    assert_int_equal(chunker_cut(&p, data, 0, 1), 0);
    assert_int_equal(chunker_cut(&p, NULL, 0, 1), 0);
    assert_int_equal(chunker_cut(&p, data, p.min, 1), p.min);
    assert_int_equal(chunker_cut(&p, data, p.min, 0), 0);
    assert_int_equal(chunker_cut(&p, data, p.min + 10, 1), p.min + 10);
    free(data);
}

/* chunker_fd_each callback: record the chunk; stop with `stop_rc` once
 * `stop_after` chunks were seen (when stop_after > 0). */
struct collect {
    struct chunk_list list;
    size_t stop_after;
    int stop_rc;
};

static int
collect_chunk(const uint8_t *chunk, size_t len, uint64_t offset, void *arg)
{
    struct collect *c = arg;

    list_add(&c->list, chunk, len, offset);
    if (c->stop_after > 0 && c->list.n == c->stop_after)
        return c->stop_rc;
    return 0;
}

static int
temp_file_with(const uint8_t *data, size_t len)
{
    char path[] = "/tmp/simsync-chunker-XXXXXX";
    int fd = mkstemp(path);
    size_t off = 0;
    ssize_t w;

    assert_true(fd >= 0);
    assert_int_equal(unlink(path), 0);
    while (off < len) {
        w = write(fd, data + off, len - off);
        assert_true(w > 0);
        off += (size_t)w;
    }
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

static void
fd_helper_matches_cut_on_whole_buffer(void **state)
{
    const struct chunker_params p = CHUNKER_PARAMS_DEFAULT;
    const size_t len = 3 * MIB + 777;
    uint8_t *data = random_buffer(len, 0x7007);
    struct chunk_list want;
    struct collect got;
    int fd;

    (void)state;
    chunk_buffer(&p, data, len, &want);
    memset(&got, 0, sizeof(got));
    fd = temp_file_with(data, len);
    assert_int_equal(chunker_fd_each(&p, fd, collect_chunk, &got), SIMSYNC_OK);
    close(fd);
    assert_lists_equal(&want, &got.list);
    list_free(&want);
    list_free(&got.list);
    free(data);
}

static void
fd_helper_handles_short_reads_from_a_pipe(void **state)
{
    const struct chunker_params p = CHUNKER_PARAMS_DEFAULT;
    const size_t len = MIB + 4321;
    uint8_t *data = random_buffer(len, 0x8008);
    struct chunk_list want;
    struct collect got;
    int fds[2], status;
    pid_t pid;

    (void)state;
    chunk_buffer(&p, data, len, &want);
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Writer: odd-sized pieces, so reads come back short. */
        size_t off = 0, piece;
        ssize_t w;

        close(fds[0]);
        while (off < len) {
            piece = len - off < 1013 ? len - off : 1013;
            w = write(fds[1], data + off, piece);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                _exit(1);
            off += (size_t)w;
        }
        _exit(0);
    }
    close(fds[1]);
    memset(&got, 0, sizeof(got));
    assert_int_equal(chunker_fd_each(&p, fds[0], collect_chunk, &got),
                     SIMSYNC_OK);
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_lists_equal(&want, &got.list);
    list_free(&want);
    list_free(&got.list);
    free(data);
}

static void
fd_helper_stops_with_callback_error(void **state)
{
    const struct chunker_params p = CHUNKER_PARAMS_DEFAULT;
    const size_t len = 2 * MIB;
    uint8_t *data = random_buffer(len, 0x9009);
    struct collect got;
    int fd;

    (void)state;
    memset(&got, 0, sizeof(got));
    got.stop_after = 3;
    got.stop_rc = SIMSYNC_ENOSPC;
    fd = temp_file_with(data, len);
    assert_int_equal(chunker_fd_each(&p, fd, collect_chunk, &got),
                     SIMSYNC_ENOSPC);
    close(fd);
    assert_int_equal(got.list.n, 3);
    list_free(&got.list);
    free(data);
}

static void
fd_helper_on_empty_stream_gives_no_chunk(void **state)
{
    const struct chunker_params p = CHUNKER_PARAMS_DEFAULT;
    struct collect got;
    int fd;

    (void)state;
    memset(&got, 0, sizeof(got));
    fd = temp_file_with(NULL, 0);
    assert_int_equal(chunker_fd_each(&p, fd, collect_chunk, &got), SIMSYNC_OK);
    close(fd);
    assert_int_equal(got.list.n, 0);
}

static void
fd_helper_rejects_bad_arguments(void **state)
{
    struct chunker_params p = CHUNKER_PARAMS_DEFAULT;
    struct collect got;
    int fds[2];

    (void)state;
    memset(&got, 0, sizeof(got));
    assert_int_equal(chunker_fd_each(&p, -1, collect_chunk, &got),
                     SIMSYNC_EINVAL);
    assert_int_equal(chunker_fd_each(&p, 0, NULL, &got), SIMSYNC_EINVAL);
    /* A descriptor that cannot be read from is an I/O error. */
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(chunker_fd_each(&p, fds[1], collect_chunk, &got),
                     SIMSYNC_EIO);
    close(fds[0]);
    close(fds[1]);
    p.avg = 3000;
    assert_int_equal(chunker_fd_each(&p, 0, collect_chunk, &got),
                     SIMSYNC_EINVAL);
    assert_int_equal(got.list.n, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(params_check_accepts_defaults_and_rejects_bad_sizes),
        cmocka_unit_test(chunk_sizes_stay_within_min_and_max),
        cmocka_unit_test(uniform_data_is_cut_at_max),
        cmocka_unit_test(same_input_gives_same_boundaries),
        cmocka_unit_test(cut_does_not_depend_on_lookahead),
        cmocka_unit_test(average_chunk_size_is_near_target),
        cmocka_unit_test(insert_near_start_keeps_most_chunks),
        cmocka_unit_test(tiny_input_is_one_chunk_at_eof),
        cmocka_unit_test(fd_helper_matches_cut_on_whole_buffer),
        cmocka_unit_test(fd_helper_handles_short_reads_from_a_pipe),
        cmocka_unit_test(fd_helper_stops_with_callback_error),
        cmocka_unit_test(fd_helper_on_empty_stream_gives_no_chunk),
        cmocka_unit_test(fd_helper_rejects_bad_arguments),
    };

    return cmocka_run_group_tests(tests, setup, NULL);
}
