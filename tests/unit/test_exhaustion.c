/* test_exhaustion.c -- the store when the disk fills up: on a 2 MiB tmpfs
 * mounted for the test (root only; skipped otherwise), writes fail with
 * SIMSYNC_ENOSPC, not EIO; the map is not grown for a full disk; every
 * value committed before stays readable, also after a reopen; and once
 * the file system has room again, writes succeed. (The map filling up,
 * which growing does cure, is test_journal's map_grows_when_full.) */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "crypt.h"
#include "store.h"

#define VAL_BYTES (64u * 1024)
#define MAP_BYTES (8u << 20) /* larger than the file system: never full */

static char base[64], fs[96];
static int mounted;

static int
setup(void **state)
{
    (void)state;
    if (crypt_init() != SIMSYNC_OK)
        return -1;
    snprintf(base, sizeof(base), "/tmp/simsync-exhaust-%d", (int)getpid());
    snprintf(fs, sizeof(fs), "%s/fs", base);
    if (mkdir(base, 0700) != 0 || mkdir(fs, 0700) != 0)
        return -1;
    mounted = mount("tmpfs", fs, "tmpfs", 0, "size=2m") == 0;
    return 0;
}

static int
teardown(void **state)
{
    char cmd[128];

    (void)state;
    if (mounted)
        (void)umount2(fs, MNT_DETACH);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
    return system(cmd) == 0 ? 0 : -1;
}

struct val_arg {
    uint32_t i;
};

static void
make_val(uint8_t *v, uint32_t i)
{
    memset(v, (int)(i & 0xff), VAL_BYTES);
    memcpy(v, &i, sizeof(i));
}

static int
put_val(struct store_txn *t, void *arg)
{
    struct val_arg *a = arg;
    uint8_t key[8], *v = malloc(VAL_BYTES);
    int rc;

    if (v == NULL)
        return SIMSYNC_ENOMEM;
    store_be64(key, a->i);
    make_val(v, a->i);
    rc = store_put(t, STORE_META, key, sizeof(key), v, VAL_BYTES);
    free(v);
    return rc;
}

/* Values 0..n-1 are all there, byte for byte. */
static void
check_vals(struct store *st, uint32_t n)
{
    struct store_txn *t;
    uint8_t key[8], *want = malloc(VAL_BYTES);

    assert_non_null(want);
    assert_int_equal(store_txn_begin(st, 1, &t), SIMSYNC_OK);
    for (uint32_t i = 0; i < n; i++) {
        const void *v;
        size_t vl;

        store_be64(key, i);
        assert_int_equal(store_get(t, STORE_META, key, 8, &v, &vl), SIMSYNC_OK);
        assert_int_equal(vl, VAL_BYTES);
        make_val(want, i);
        assert_memory_equal(v, want, VAL_BYTES);
    }
    store_txn_abort(t);
    free(want);
}

static void
full_disk_is_enospc_keeps_data_and_recovers(void **state)
{
    char dir[128];
    struct store *st;
    struct val_arg a = {0};
    int rc = SIMSYNC_OK;

    (void)state;
    if (!mounted)
        skip(); /* mounting a tmpfs needs root */
    snprintf(dir, sizeof(dir), "%s/store", fs);
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(store_open(dir, MAP_BYTES, &st), SIMSYNC_OK);

    /* 64 KiB at a time into 2 MiB: the disk fills up well before 64. */
    for (a.i = 0; a.i < 64; a.i++) {
        rc = store_write(st, put_val, &a);
        if (rc != SIMSYNC_OK)
            break;
    }
    assert_int_equal(rc, SIMSYNC_ENOSPC);
    assert_true(a.i > 4);
    assert_int_equal(store_map_size(st), MAP_BYTES);
    /* Asking again changes nothing and fails the same way. */
    assert_int_equal(store_write(st, put_val, &a), SIMSYNC_ENOSPC);
    check_vals(st, a.i);

    /* Reopened: still whole. */
    store_close(st);
    assert_int_equal(store_open(dir, MAP_BYTES, &st), SIMSYNC_OK);
    check_vals(st, a.i);

    /* Room again: the write that failed now succeeds. */
    assert_int_equal(mount("tmpfs", fs, "tmpfs", MS_REMOUNT, "size=16m"), 0);
    assert_int_equal(store_write(st, put_val, &a), SIMSYNC_OK);
    check_vals(st, a.i + 1);
    store_close(st);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(full_disk_is_enospc_keeps_data_and_recovers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
