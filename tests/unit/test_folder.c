/* test_folder.c -- where a restore may write: safe names only, never
 * through or onto a symlink, never outside the class folder. */
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

#include "folder.h"

static char dir[64];

static void
put_file(const char *path)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("x\n", f);
    fclose(f);
}

static void
target_refuses_unsafe_names_and_symlinks(void **state)
{
    struct replica r;
    char p[256], outside[256];

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/simsync-folder-%d", (int)getpid());
    memset(&r, 0, sizeof(r));
    snprintf(r.data_dir, sizeof(r.data_dir), "%s/data", dir);
    snprintf(outside, sizeof(outside), "%s/outside", dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(mkdir(r.data_dir, 0700), 0);
    assert_int_equal(mkdir(outside, 0700), 0);
    snprintf(p, sizeof(p), "%s/contacts", r.data_dir);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/contacts/real.vcf", r.data_dir);
    put_file(p);
    snprintf(p, sizeof(p), "%s/contacts/link.vcf", r.data_dir);
    assert_int_equal(symlink("/etc/hostname", p), 0);
    snprintf(p, sizeof(p), "%s/contacts/sub", r.data_dir);
    assert_int_equal(symlink(outside, p), 0);
    snprintf(p, sizeof(p), "%s/contacts/folder", r.data_dir);
    assert_int_equal(mkdir(p, 0700), 0);

    /* Allowed: a new name, an existing regular file, missing folders. */
    assert_true(folder_target_ok(&r, CLS_CONTACTS, "new.vcf"));
    assert_true(folder_target_ok(&r, CLS_CONTACTS, "real.vcf"));
    assert_true(folder_target_ok(&r, CLS_CONTACTS, "a/b/c.vcf"));
    assert_true(folder_target_ok(&r, CLS_CONTACTS, "folder/x.vcf"));
    /* Refused: escapes, absolute names, symlinks, a folder as the name. */
    assert_false(folder_target_ok(&r, CLS_CONTACTS, "../x"));
    assert_false(folder_target_ok(&r, CLS_CONTACTS, "a/../../x"));
    assert_false(folder_target_ok(&r, CLS_CONTACTS, "/etc/passwd"));
    assert_false(folder_target_ok(&r, CLS_CONTACTS, ""));
    assert_false(folder_target_ok(&r, CLS_CONTACTS, "link.vcf"));
    assert_false(folder_target_ok(&r, CLS_CONTACTS, "sub/x.vcf"));
    assert_false(folder_target_ok(&r, CLS_CONTACTS, "sub/deeper/x.vcf"));
    assert_false(folder_target_ok(&r, CLS_CONTACTS, "real.vcf/x"));
    assert_false(folder_target_ok(&r, CLS_CONTACTS, "folder"));

    snprintf(p, sizeof(p), "rm -rf %s", dir);
    assert_int_equal(system(p), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(target_refuses_unsafe_names_and_symlinks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
