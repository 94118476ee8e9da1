/* test_replica_out.c -- writing a version's content as it arrives: the
 * file appears under its name byte for byte, at every size and piece
 * size, with direct writes on a dio thread (O_DIRECT) and buffered ones;
 * a wrong hash, a wrong size or an abort leave nothing under the name and
 * no temp file. */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "crypt.h"
#include "dio.h"
#include "folder.h"
#include "keys.h"

#define DCAP (64u * 1024) /* small, so that sizes cross it often */

struct fixture {
    char dir[64];
    struct replica r;
    struct dio *dio;
    uint8_t *data;
    size_t cap;
};

static int
setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    assert_int_equal(crypt_init(), SIMSYNC_OK);
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/simsync-out-%d", (int)getpid());
    snprintf(fx->r.data_dir, sizeof(fx->r.data_dir), "%s/data", fx->dir);
    assert_int_equal(mkdir(fx->dir, 0700), 0);
    assert_int_equal(mkdir(fx->r.data_dir, 0700), 0);
    fx->r.trusted = 1;
    fx->r.defer_sync = 1;
    crypt_random(fx->r.keys.content, sizeof(fx->r.keys.content));
    assert_int_equal(dio_new(DCAP, 2, &fx->dio), SIMSYNC_OK);
    fx->cap = 5 * DCAP + 12345;
    fx->data = malloc(fx->cap);
    assert_non_null(fx->data);
    crypt_random(fx->data, fx->cap);
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *fx = *state;
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
    assert_int_equal(system(cmd), 0);
    dio_free(fx->dio);
    free(fx->data);
    free(fx);
    return 0;
}

/* A version of `size` bytes of fx->data (hash set into `hash`). */
static void
make_version(struct fixture *fx, size_t size, uint8_t hash[32],
             Simsync__Version *v)
{
    simsync__version__init(v);
    crypt_hash(hash, 32, fx->data, size, fx->r.keys.content, 32);
    v->size = size;
    v->content_hash.data = hash;
    v->content_hash.len = 32;
}

/* Commit, waiting for the direct writes when it says so. */
static int
commit(struct replica_out *o, struct stat *st)
{
    int rc = replica_out_commit(o, st);

    if (rc == SIMSYNC_EAGAIN) {
        assert_true(o->dio != NULL);
        replica_out_wait(o);
        assert_false(replica_out_busy(o));
        rc = replica_out_commit(o, st);
    }
    return rc;
}

static int
file_is(struct fixture *fx, const char *name, const uint8_t *want, size_t len)
{
    char p[256];
    uint8_t *got = malloc(len + 1);
    FILE *f;
    size_t n;
    int same;

    snprintf(p, sizeof(p), "%s/contacts/%s", fx->r.data_dir, name);
    f = fopen(p, "rb");
    if (f == NULL || got == NULL) {
        if (f != NULL)
            fclose(f);
        free(got);
        return 0;
    }
    n = fread(got, 1, len + 1, f);
    fclose(f);
    same = n == len && memcmp(got, want, len) == 0;
    free(got);
    return same;
}

static int
unlink_entry(struct fixture *fx, const char *name)
{
    char p[256];

    snprintf(p, sizeof(p), "%s/contacts/%s", fx->r.data_dir, name);
    return unlink(p);
}

/* Entries in the class folder (temp files included). */
static int
entries(struct fixture *fx)
{
    char p[256];
    struct dirent *e;
    DIR *d;
    int n = 0;

    snprintf(p, sizeof(p), "%s/contacts", fx->r.data_dir);
    d = opendir(p);
    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void
content_arrives_whole_at_every_size_direct_or_not(void **state)
{
    struct fixture *fx = *state;
    const size_t sizes[] = {0,        1,    4095,     4096,     4097,
                            DCAP - 1, DCAP, DCAP + 1, 2 * DCAP, 3 * DCAP + 4097,
                            fx->cap};
    const size_t pieces[] = {1000, 4096, DCAP, 77777};

    for (int direct = 0; direct < 2; direct++)
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
            for (size_t k = 0; k < sizeof(pieces) / sizeof(pieces[0]); k++) {
                Simsync__Version v;
                struct replica_out o;
                struct stat st;
                uint8_t hash[32];
                size_t off = 0;

                if (sizes[i] > 70000 && pieces[k] == 1000)
                    continue; /* slow and adds nothing */
                make_version(fx, sizes[i], hash, &v);
                assert_int_equal(replica_out_begin(&fx->r, CLS_CONTACTS,
                                                   "f.bin", &v,
                                                   direct ? fx->dio : NULL, &o),
                                 SIMSYNC_OK);
                while (off < sizes[i]) {
                    size_t n =
                        sizes[i] - off < pieces[k] ? sizes[i] - off : pieces[k];
                    assert_int_equal(replica_out_put(&o, fx->data + off, n),
                                     SIMSYNC_OK);
                    off += n;
                }
                assert_int_equal(commit(&o, &st), SIMSYNC_OK);
                assert_int_equal((size_t)st.st_size, sizes[i]);
                assert_true(file_is(fx, "f.bin", fx->data, sizes[i]));
                assert_int_equal(entries(fx), 1); /* no temp file left */
            }
}

static void
wrong_content_leaves_nothing_under_the_name(void **state)
{
    struct fixture *fx = *state;
    const size_t size = 2 * DCAP + 100;
    Simsync__Version v;
    struct replica_out o;
    struct stat st;
    uint8_t hash[32], last;

    make_version(fx, size, hash, &v);
    for (int direct = 0; direct < 2; direct++) {
        struct dio *dio = direct ? fx->dio : NULL;

        /* One byte changed: the hash does not match. */
        assert_int_equal(
            replica_out_begin(&fx->r, CLS_CONTACTS, "g.bin", &v, dio, &o),
            SIMSYNC_OK);
        assert_int_equal(replica_out_put(&o, fx->data, size - 1), SIMSYNC_OK);
        last = fx->data[size - 1] ^ 1;
        assert_int_equal(replica_out_put(&o, &last, 1), SIMSYNC_OK);
        assert_int_equal(commit(&o, &st), SIMSYNC_ECRYPTO);
        assert_int_equal(entries(fx), 0);
        /* Too short, then too long. */
        assert_int_equal(
            replica_out_begin(&fx->r, CLS_CONTACTS, "g.bin", &v, dio, &o),
            SIMSYNC_OK);
        assert_int_equal(replica_out_put(&o, fx->data, size - 1), SIMSYNC_OK);
        assert_int_equal(commit(&o, &st), SIMSYNC_EPROTO);
        assert_int_equal(entries(fx), 0);
        assert_int_equal(
            replica_out_begin(&fx->r, CLS_CONTACTS, "g.bin", &v, dio, &o),
            SIMSYNC_OK);
        assert_int_equal(replica_out_put(&o, fx->data, size), SIMSYNC_OK);
        assert_int_equal(replica_out_put(&o, fx->data, 1), SIMSYNC_EPROTO);
        replica_out_abort(&o);
        replica_out_abort(&o); /* twice is fine */
        assert_int_equal(entries(fx), 0);
    }
}

/* A version named by its chunk list (HASH_KIND_CHUNKS): three chunks of
 * fx->data, ids keyed with the chunk key. */
struct listed {
    Simsync__Version v;
    Simsync__ChunkRef refs[3], *refp[3];
    uint8_t ids[3][32], hash[32];
};

static void
make_listed(struct fixture *fx, struct listed *l)
{
    const size_t sizes[3] = {DCAP + 3, 7, 2 * DCAP - 1};
    size_t off = 0;

    simsync__version__init(&l->v);
    for (int i = 0; i < 3; i++) {
        simsync__chunk_ref__init(&l->refs[i]);
        keys_chunk_id(&fx->r.keys, fx->data + off, sizes[i], l->ids[i]);
        l->refs[i].id.data = l->ids[i];
        l->refs[i].id.len = 32;
        l->refs[i].size = sizes[i];
        l->refp[i] = &l->refs[i];
        off += sizes[i];
    }
    l->v.size = off;
    l->v.chunks = l->refp;
    l->v.n_chunks = 3;
    l->v.hash_kind = HASH_KIND_CHUNKS;
    assert_int_equal(replica_chunk_list_hash(&fx->r.keys, &l->v, l->hash),
                     SIMSYNC_OK);
    l->v.content_hash.data = l->hash;
    l->v.content_hash.len = 32;
}

static void
a_chunk_list_version_checks_every_chunk_against_its_id(void **state)
{
    struct fixture *fx = *state;
    const size_t pieces[] = {1, 4096, 77777};
    struct listed l;
    struct replica_out o;
    struct stat st;
    uint8_t flip;

    crypt_random(fx->r.keys.chunk_id, sizeof(fx->r.keys.chunk_id));
    make_listed(fx, &l);
    for (int direct = 0; direct < 2; direct++) {
        struct dio *dio = direct ? fx->dio : NULL;
        /* Whole, in pieces that straddle the chunk boundaries. */
        for (size_t k = 0; k < sizeof(pieces) / sizeof(pieces[0]); k++) {
            size_t off = 0;
            if (pieces[k] == 1 && direct)
                continue;
            assert_int_equal(
                replica_out_begin(&fx->r, CLS_CONTACTS, "l.bin", &l.v, dio, &o),
                SIMSYNC_OK);
            while (off < l.v.size) {
                size_t n = l.v.size - off < pieces[k] ? l.v.size - off
                                                      : pieces[k];
                assert_int_equal(replica_out_put(&o, fx->data + off, n),
                                 SIMSYNC_OK);
                off += n;
            }
            assert_int_equal(commit(&o, &st), SIMSYNC_OK);
            assert_true(file_is(fx, "l.bin", fx->data, l.v.size));
        }
        /* One byte of the middle chunk changed: its id does not match. */
        assert_int_equal(unlink_entry(fx, "l.bin"), 0);
        assert_int_equal(
            replica_out_begin(&fx->r, CLS_CONTACTS, "l.bin", &l.v, dio, &o),
            SIMSYNC_OK);
        assert_int_equal(replica_out_put(&o, fx->data, DCAP + 5), SIMSYNC_OK);
        flip = fx->data[DCAP + 5] ^ 1;
        assert_int_equal(replica_out_put(&o, &flip, 1), SIMSYNC_OK);
        assert_int_equal(replica_out_put(&o, fx->data + DCAP + 6,
                                         l.v.size - DCAP - 6),
                         SIMSYNC_OK);
        assert_int_equal(commit(&o, &st), SIMSYNC_ECRYPTO);
        assert_int_equal(entries(fx), 0);
    }
    /* A list that is not the hashed one is refused before anything is
     * written. */
    l.refs[1].size = 8;
    assert_int_equal(
        replica_out_begin(&fx->r, CLS_CONTACTS, "l.bin", &l.v, NULL, &o),
        SIMSYNC_ECRYPTO);
    assert_int_equal(entries(fx), 0);
}

/* Put chunks `from`..2 of l whole, as opened under their ids. */
static void
put_opened(struct fixture *fx, struct listed *l, struct replica_out *o,
           const size_t off[3], int from)
{
    for (int i = from; i < 3; i++)
        assert_int_equal(replica_out_put_chunk(o, l->ids[i], fx->data + off[i],
                                               l->refs[i].size),
                         SIMSYNC_OK);
}

/* Chunks opened under their ids go in whole, unhashed, but must be the
 * list's next chunk, id and size: any other is refused at the commit
 * with nothing under the name. */
static void
opened_chunks_must_be_the_next_of_the_list(void **state)
{
    struct fixture *fx = *state;
    struct listed l;
    struct replica_out o;
    struct stat st;
    const size_t off[3] = {0, DCAP + 3, DCAP + 10};
    uint8_t other[32];

    crypt_random(fx->r.keys.chunk_id, sizeof(fx->r.keys.chunk_id));
    make_listed(fx, &l);
    for (int direct = 0; direct < 2; direct++) {
        struct dio *dio = direct ? fx->dio : NULL;
        assert_int_equal(
            replica_out_begin(&fx->r, CLS_CONTACTS, "l.bin", &l.v, dio, &o),
            SIMSYNC_OK);
        put_opened(fx, &l, &o, off, 0);
        assert_int_equal(commit(&o, &st), SIMSYNC_OK);
        assert_true(file_is(fx, "l.bin", fx->data, l.v.size));
        assert_int_equal(unlink_entry(fx, "l.bin"), 0);

        /* Mixed with plain puts: a chunk put in pieces is hashed. */
        assert_int_equal(
            replica_out_begin(&fx->r, CLS_CONTACTS, "l.bin", &l.v, dio, &o),
            SIMSYNC_OK);
        assert_int_equal(replica_out_put(&o, fx->data, 5), SIMSYNC_OK);
        assert_int_equal(replica_out_put_chunk(&o, l.ids[0], fx->data + 5,
                                               l.refs[0].size - 5),
                         SIMSYNC_OK);
        put_opened(fx, &l, &o, off, 1);
        assert_int_equal(commit(&o, &st), SIMSYNC_OK);
        assert_true(file_is(fx, "l.bin", fx->data, l.v.size));
        assert_int_equal(unlink_entry(fx, "l.bin"), 0);
    }

    /* Another id, the chunks out of order, or a wrong length. */
    crypt_random(other, sizeof(other));
    for (int bad = 0; bad < 3; bad++) {
        assert_int_equal(
            replica_out_begin(&fx->r, CLS_CONTACTS, "l.bin", &l.v, NULL, &o),
            SIMSYNC_OK);
        assert_int_equal(replica_out_put_chunk(&o, bad == 0 ? other : l.ids[0],
                                               fx->data, l.refs[0].size),
                         SIMSYNC_OK);
        if (bad == 1) {
            assert_int_equal(replica_out_put_chunk(&o, l.ids[2],
                                                   fx->data + off[1],
                                                   l.refs[1].size),
                             SIMSYNC_OK);
            assert_int_equal(replica_out_put_chunk(&o, l.ids[1],
                                                   fx->data + off[2],
                                                   l.refs[2].size),
                             SIMSYNC_OK);
        } else if (bad == 2) {
            assert_int_equal(replica_out_put_chunk(&o, l.ids[1],
                                                   fx->data + off[1], 6),
                             SIMSYNC_OK);
            assert_int_equal(replica_out_put(&o, fx->data + off[1] + 6,
                                             l.v.size - off[1] - 6),
                             SIMSYNC_OK);
        } else {
            assert_int_equal(replica_out_put(&o, fx->data + off[1],
                                             l.v.size - off[1]),
                             SIMSYNC_OK);
        }
        assert_int_equal(commit(&o, &st), SIMSYNC_ECRYPTO);
        assert_int_equal(entries(fx), 0);
    }
}

static void
a_symlinked_folder_is_refused(void **state)
{
    struct fixture *fx = *state;
    Simsync__Version v;
    struct replica_out o;
    uint8_t hash[32];
    char p[256], outside[256];

    snprintf(outside, sizeof(outside), "%s/outside", fx->dir);
    assert_int_equal(mkdir(outside, 0700), 0);
    snprintf(p, sizeof(p), "%s/contacts", fx->r.data_dir);
    mkdir(p, 0700);
    snprintf(p, sizeof(p), "%s/contacts/sub", fx->r.data_dir);
    assert_int_equal(symlink(outside, p), 0);
    make_version(fx, 10, hash, &v);
    assert_int_not_equal(
        replica_out_begin(&fx->r, CLS_CONTACTS, "sub/x.bin", &v, fx->dio, &o),
        SIMSYNC_OK);
    replica_out_abort(&o);
    assert_int_not_equal(
        replica_out_begin(&fx->r, CLS_CONTACTS, "../x.bin", &v, fx->dio, &o),
        SIMSYNC_OK);
    replica_out_abort(&o);
    assert_int_equal(rmdir(outside), 0); /* still empty */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            content_arrives_whole_at_every_size_direct_or_not, setup, teardown),
        cmocka_unit_test_setup_teardown(
            wrong_content_leaves_nothing_under_the_name, setup, teardown),
        cmocka_unit_test_setup_teardown(
            a_chunk_list_version_checks_every_chunk_against_its_id, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            opened_chunks_must_be_the_next_of_the_list, setup, teardown),
        cmocka_unit_test_setup_teardown(a_symlinked_folder_is_refused, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
