/* test_journal.c -- the store and the journal: map growth, epochs, the
 * latest-dot index, knowledge and resume cursors, fault injection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "crypt.h"
#include "journal.h"

struct fx {
    char dir[128];
    struct store *st;
};

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    snprintf(f->dir, sizeof(f->dir), "/tmp/simsync-journal-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    if (store_open(f->dir, 1u << 20, &f->st) != SIMSYNC_OK)
        return -1;
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;
    char cmd[200];

    store_close(f->st);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

struct blob_arg {
    int i;
};

static int
put_big(struct store_txn *txn, void *arg)
{
    struct blob_arg *a = arg;
    static uint8_t val[256 * 1024];
    char key[32];

    memset(val, a->i, sizeof(val));
    snprintf(key, sizeof(key), "big-%04d", a->i);
    return store_put(txn, STORE_META, key, strlen(key), val, sizeof(val));
}

static void
map_grows_when_full(void **state)
{
    struct fx *f = *state;
    size_t before = store_map_size(f->st);

    /* 16 MiB into a 1 MiB map. */
    for (int i = 0; i < 64; i++) {
        struct blob_arg a = {i};
        assert_int_equal(store_write(f->st, put_big, &a), SIMSYNC_OK);
    }
    assert_true(store_map_size(f->st) > before);
    {
        struct store_txn *t;
        const uint8_t *v;
        size_t vl;
        assert_int_equal(store_txn_begin(f->st, 1, &t), SIMSYNC_OK);
        assert_int_equal(
            store_get(t, STORE_META, "big-0063", 8, (const void **)&v, &vl),
            SIMSYNC_OK);
        assert_int_equal(vl, 256 * 1024);
        assert_int_equal(v[0], 63);
        store_txn_abort(t);
    }
}

static void
epoch_is_kept_on_reopen_and_new_per_store(void **state)
{
    struct fx *f = *state;
    uint8_t e1[16], e2[16], e3[16];
    char other[160];
    struct store *o;

    store_epoch(f->st, e1);
    store_close(f->st);
    assert_int_equal(store_open(f->dir, 0, &f->st), SIMSYNC_OK);
    store_epoch(f->st, e2);
    assert_memory_equal(e1, e2, 16);
    snprintf(other, sizeof(other), "%s/other", f->dir);
    assert_int_equal(store_open(other, 0, &o), SIMSYNC_OK);
    store_epoch(o, e3);
    assert_memory_not_equal(e1, e3, 16);
    store_close(o);
}

/* An item record with one version carrying the given dots. */
static void
put_item(struct store_txn *txn, const uint8_t sub[16], int cls,
         const uint8_t id[16], const Simsync__ItemRecord *old, uint64_t replica,
         uint64_t counter)
{
    Simsync__ItemRecord rec = SIMSYNC__ITEM_RECORD__INIT;
    Simsync__Version v = SIMSYNC__VERSION__INIT, *vp = &v;
    Simsync__Dot d = SIMSYNC__DOT__INIT, *dp = &d;

    d.replica = replica;
    d.counter = counter;
    v.dots = &dp;
    v.n_dots = 1;
    rec.versions = &vp;
    rec.n_versions = 1;
    assert_int_equal(item_put(txn, sub, cls, id, old, &rec), SIMSYNC_OK);
}

struct seen {
    struct dot d[16];
    int n;
};

static int
collect(const struct dot *d, const uint8_t id[16], void *arg)
{
    struct seen *s = arg;

    (void)id;
    s->d[s->n++] = *d;
    return 0;
}

static void
journal_keeps_latest_dot_and_scans_above_knowledge(void **state)
{
    struct fx *f = *state;
    uint8_t sub[16] = {1}, x[16] = {2}, y[16] = {3};
    struct store_txn *t;
    Simsync__ItemRecord *old;
    struct vv above = VV_INIT;
    struct seen s = {0};

    assert_int_equal(store_txn_begin(f->st, 0, &t), SIMSYNC_OK);
    put_item(t, sub, CLS_CONTACTS, x, NULL, 7, 1);
    for (uint64_t c = 2; c <= 50; c++) {
        /* 50 edits of one item cost one journal entry. */
        assert_int_equal(item_get(t, sub, CLS_CONTACTS, x, &old), SIMSYNC_OK);
        put_item(t, sub, CLS_CONTACTS, x, old, 7, c);
        item_record_free(old);
    }
    put_item(t, sub, CLS_CONTACTS, y, NULL, 9, 4);
    put_item(t, sub, CLS_PIM, y, NULL, 9, 5); /* another class */
    assert_int_equal(store_txn_commit(t), SIMSYNC_OK);

    assert_int_equal(store_txn_begin(f->st, 1, &t), SIMSYNC_OK);
    assert_int_equal(journal_scan(t, sub, CLS_CONTACTS, &above, collect, &s),
                     SIMSYNC_OK);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.d[0].replica, 7);
    assert_int_equal(s.d[0].counter, 50);
    assert_int_equal(s.d[1].replica, 9);
    /* Above knowledge {7:50}: only origin 9's entry. */
    s.n = 0;
    assert_int_equal(vv_set(&above, 7, 50), SIMSYNC_OK);
    assert_int_equal(journal_scan(t, sub, CLS_CONTACTS, &above, collect, &s),
                     SIMSYNC_OK);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.d[0].replica, 9);
    assert_int_equal(s.d[0].counter, 4);
    /* Above {7:50, 9:4}: nothing. */
    s.n = 0;
    assert_int_equal(vv_set(&above, 9, 4), SIMSYNC_OK);
    assert_int_equal(journal_scan(t, sub, CLS_CONTACTS, &above, collect, &s),
                     SIMSYNC_OK);
    assert_int_equal(s.n, 0);
    store_txn_abort(t);
    vv_free(&above);
}

static void
knowledge_raises_never_lowers_and_resume_cursors_drop(void **state)
{
    struct fx *f = *state;
    uint8_t sub[16] = {4};
    struct store_txn *t;
    struct vv k = VV_INIT, got = VV_INIT;

    assert_int_equal(store_txn_begin(f->st, 0, &t), SIMSYNC_OK);
    vv_set(&k, 1, 10);
    vv_set(&k, 2, 3);
    assert_int_equal(journal_knowledge_raise(t, sub, CLS_MAIL, 0, &k),
                     SIMSYNC_OK);
    vv_clear(&k);
    vv_set(&k, 1, 4); /* lower: ignored */
    vv_set(&k, 3, 1);
    assert_int_equal(journal_knowledge_raise(t, sub, CLS_MAIL, 0, &k),
                     SIMSYNC_OK);
    assert_int_equal(journal_knowledge_raise(t, sub, CLS_MAIL, 77, &k),
                     SIMSYNC_OK);
    assert_int_equal(journal_knowledge_get(t, sub, CLS_MAIL, 0, &got),
                     SIMSYNC_OK);
    assert_int_equal(vv_get(&got, 1), 10);
    assert_int_equal(vv_get(&got, 2), 3);
    assert_int_equal(vv_get(&got, 3), 1);
    assert_int_equal(journal_knowledge_drop(t, sub, CLS_MAIL, 77), SIMSYNC_OK);
    assert_int_equal(journal_knowledge_get(t, sub, CLS_MAIL, 77, &got),
                     SIMSYNC_OK);
    assert_int_equal(got.n, 0);
    assert_int_equal(journal_knowledge_get(t, sub, CLS_MAIL, 0, &got),
                     SIMSYNC_OK);
    assert_int_equal(got.n, 3); /* own knowledge untouched */
    assert_int_equal(store_txn_commit(t), SIMSYNC_OK);
    vv_free(&k);
    vv_free(&got);
}

static int
put_one(struct store_txn *txn, void *arg)
{
    (void)arg;
    return store_put(txn, STORE_META, "probe", 5, "x", 1);
}

static void
failed_commit_leaves_nothing_behind(void **state)
{
    struct fx *f = *state;
    struct store_txn *t;
    const void *v;
    size_t vl;

    store_fault_fail_nth(2); /* the put passes, the commit fails */
    assert_int_equal(store_write(f->st, put_one, NULL), SIMSYNC_EIO);
    store_fault_fail_nth(0);
    assert_int_equal(store_txn_begin(f->st, 1, &t), SIMSYNC_OK);
    assert_int_equal(store_get(t, STORE_META, "probe", 5, &v, &vl),
                     SIMSYNC_ENOTFOUND);
    store_txn_abort(t);
}

static void
counter_refuses_to_wrap(void **state)
{
    struct fx *f = *state;
    struct store_txn *t;
    uint8_t max[8];
    uint64_t c;

    assert_int_equal(store_txn_begin(f->st, 0, &t), SIMSYNC_OK);
    assert_int_equal(journal_next_counter(t, &c), SIMSYNC_OK);
    assert_int_equal(c, 1);
    store_be64(max, UINT64_MAX);
    assert_int_equal(store_put(t, STORE_META, "counter", 7, max, 8),
                     SIMSYNC_OK);
    assert_int_equal(journal_next_counter(t, &c), SIMSYNC_ETOOBIG);
    store_txn_abort(t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(map_grows_when_full, setup, teardown),
        cmocka_unit_test_setup_teardown(
            epoch_is_kept_on_reopen_and_new_per_store, setup, teardown),
        cmocka_unit_test_setup_teardown(
            journal_keeps_latest_dot_and_scans_above_knowledge, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            knowledge_raises_never_lowers_and_resume_cursors_drop, setup,
            teardown),
        cmocka_unit_test_setup_teardown(failed_commit_leaves_nothing_behind,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(counter_refuses_to_wrap, setup,
                                        teardown),
    };
    if (crypt_init() != SIMSYNC_OK)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
