/* test_erase.c -- the wipe of a collective erase, on hand-made homes: it
 * removes exactly what simsync owns, never follows a symlink out,
 * overwrites key files in place, honours a custom data folder, stops on a
 * marker it did not write, and is finished by node open and init. The
 * sync-and-acknowledge half runs against a real hub in
 * tests/integration/95-erase.sh. */
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

#include "simsync.h"

static char base[64];

static const char *
at(const char *rel)
{
    static char bufs[4][512];
    static int next;
    char *b = bufs[next++ % 4];

    snprintf(b, 512, "%s/%s", base, rel);
    return b;
}

static void
put(const char *rel, const char *content)
{
    FILE *f = fopen(at(rel), "w");

    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static void
dir(const char *rel)
{
    assert_int_equal(mkdir(at(rel), 0700), 0);
}

static int
exists(const char *rel)
{
    struct stat st;

    return lstat(at(rel), &st) == 0;
}

static void
marker(const char *text)
{
    put("home/erase.pending", text);
}

static int
setup(void **state)
{
    (void)state;
    snprintf(base, sizeof(base), "/tmp/simsync-erase-%d", (int)getpid());
    assert_int_equal(mkdir(base, 0700), 0);
    dir("home");
    dir("outside");
    return 0;
}

static int
teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
    return system(cmd) == 0 ? 0 : -1;
}

static void
resume_without_marker_changes_nothing(void **state)
{
    struct simsync_erase_report rep;

    (void)state;
    put("home/config", "role=terminal\n");
    put("home/node.key", "k");
    assert_int_equal(simsync_erase_pending(at("home")), 0);
    assert_int_equal(simsync_erase_resume(at("home"), &rep, NULL, 0),
                     SIMSYNC_OK);
    assert_int_equal(rep.resumed, 0);
    assert_true(exists("home/config"));
    assert_true(exists("home/node.key"));
}

static void
resume_removes_what_simsync_owns_and_nothing_else(void **state)
{
    struct simsync_erase_report rep;
    char err[512], key[64], buf[80];
    int fd;

    (void)state;
    memset(key, 'K', sizeof(key));
    fd = open(at("home/node.key"), O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, key, sizeof(key)), (int)sizeof(key));
    close(fd);
    /* A second name for the key's inode: shows it was overwritten. */
    assert_int_equal(link(at("home/node.key"), at("outside/keycopy")), 0);
    put("home/datakey.box", "box");
    put("outside/secret", "secret\n");
    assert_int_equal(symlink(at("outside/secret"), at("home/password")), 0);
    for (const char *const *f =
             (const char *const[]){"home/config", "home/config.tmp",
                                   "home/binding", "home/sim",
                                   "home/backup.lock", "home/notes.txt", NULL};
         *f != NULL; f++)
        put(*f, "x\n");
    dir("home/store");
    put("home/store/data.mdb", "db");
    put("home/store/lock.mdb", "lk");
    dir("home/data");
    dir("home/data/contacts");
    dir("home/data/contacts/sub");
    dir("home/data/contacts/sub/deep");
    put("home/data/contacts/a.vcf", "FN:A\n");
    put("home/data/contacts/sub/deep/b.vcf", "FN:B\n");
    dir("outside/dir");
    put("outside/dir/keep.txt", "keep\n");
    assert_int_equal(symlink(at("outside/dir"), at("home/data/contacts/out")),
                     0);
    dir("home/data/archive");
    put("home/data/archive/p.jpg", "0123456789");
    assert_int_equal(symlink(at("outside/dir"), at("home/data/pim")), 0);
    dir("home/data/notes"); /* not a class folder: not ours */
    put("home/data/notes/n.txt", "n\n");
    marker("simsync-erase 1\n");

    assert_int_equal(simsync_erase_pending(at("home")), 1);
    assert_int_equal(simsync_erase_resume(at("home"), &rep, err, sizeof(err)),
                     SIMSYNC_OK);
    assert_string_equal(err, "");
    assert_int_equal(rep.resumed, 1);
    assert_int_equal(simsync_erase_pending(at("home")), 0);
    /* Keys 3 (one a link), store 2, contacts 3 (one a link), archive 1,
     * pim (a link) 1, node files 5. */
    assert_int_equal(rep.removed_files, 15);
    /* contacts/sub/deep, contacts/sub, contacts, archive, store. */
    assert_int_equal(rep.removed_dirs, 5);
    for (const char *const *f =
             (const char *const[]){"home/node.key", "home/datakey.box",
                                   "home/password", "home/config",
                                   "home/config.tmp", "home/binding",
                                   "home/sim", "home/backup.lock", "home/store",
                                   "home/data/contacts", "home/data/archive",
                                   "home/data/pim", "home/erase.pending", NULL};
         *f != NULL; f++)
        if (exists(*f))
            fail_msg("%s is still there", *f);
    /* Not ours: stays. The data folder holds a foreign folder: stays. */
    assert_true(exists("home/notes.txt"));
    assert_true(exists("home/data/notes/n.txt"));
    assert_true(exists("outside/dir/keep.txt"));
    fd = open(at("outside/secret"), O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, buf, sizeof(buf)), 7);
    close(fd);
    assert_memory_equal(buf, "secret\n", 7);
    /* The key's bytes were zeroed before its name went. */
    memset(key, 0, sizeof(key));
    fd = open(at("outside/keycopy"), O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, buf, sizeof(buf)), 64);
    close(fd);
    assert_memory_equal(buf, key, 64);
}

static void
resume_uses_the_recorded_data_folder(void **state)
{
    char text[600];

    (void)state;
    dir("custom");
    dir("custom/contacts");
    put("custom/contacts/x.vcf", "FN:X\n");
    put("custom/foreign.txt", "f\n");
    dir("home/data");
    dir("home/data/contacts"); /* the default: not this node's */
    put("home/data/contacts/y.vcf", "FN:Y\n");
    put("home/config", "x\n");
    snprintf(text, sizeof(text), "simsync-erase 1\ndata=%s\n", at("custom"));
    marker(text);
    assert_int_equal(simsync_erase_resume(at("home"), NULL, NULL, 0),
                     SIMSYNC_OK);
    assert_false(exists("custom/contacts"));
    assert_true(exists("custom/foreign.txt"));
    assert_true(exists("home/data/contacts/y.vcf"));
    assert_false(exists("home/config"));
}

static void
a_foreign_marker_stops_the_wipe(void **state)
{
    char err[512];

    (void)state;
    put("home/config", "x\n");
    marker("not a marker\n");
    assert_int_equal(simsync_erase_resume(at("home"), NULL, err, sizeof(err)),
                     SIMSYNC_EPROTO);
    assert_non_null(strstr(err, "not one simsync wrote"));
    assert_true(exists("home/config"));
    assert_true(exists("home/erase.pending"));
    marker("simsync-erase 1\ndata=relative/path\n");
    assert_int_equal(simsync_erase_resume(at("home"), NULL, NULL, 0),
                     SIMSYNC_EPROTO);
    assert_true(exists("home/config"));
}

static void
node_open_finishes_an_erase_and_finds_no_node(void **state)
{
    struct simsync_node *n = (struct simsync_node *)1;

    (void)state;
    assert_int_equal(simsync_init(at("home"), "terminal", "t-1", NULL),
                     SIMSYNC_OK);
    marker("simsync-erase 1\n");
    assert_int_equal(simsync_node_open(at("home"), &n), SIMSYNC_ESTATE);
    assert_null(n);
    assert_false(exists("home/config"));
    assert_false(exists("home/node.key"));
    assert_false(exists("home/store"));
    assert_false(exists("home/erase.pending"));
}

static void
init_finishes_an_erase_then_initialises(void **state)
{
    struct simsync_node *n = NULL;

    (void)state;
    assert_int_equal(simsync_init(at("home"), "terminal", "t-old", NULL),
                     SIMSYNC_OK);
    assert_int_equal(simsync_init(at("home"), "terminal", "t-new", NULL),
                     SIMSYNC_EEXIST);
    marker("simsync-erase 1\n");
    assert_int_equal(simsync_init(at("home"), "terminal", "t-new", NULL),
                     SIMSYNC_OK);
    assert_int_equal(simsync_node_open(at("home"), &n), SIMSYNC_OK);
    assert_string_equal(simsync_node_terminal_id(n), "t-new");
    simsync_node_close(n);
    assert_false(exists("home/erase.pending"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(resume_without_marker_changes_nothing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            resume_removes_what_simsync_owns_and_nothing_else, setup, teardown),
        cmocka_unit_test_setup_teardown(resume_uses_the_recorded_data_folder,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_foreign_marker_stops_the_wipe, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            node_open_finishes_an_erase_and_finds_no_node, setup, teardown),
        cmocka_unit_test_setup_teardown(init_finishes_an_erase_then_initialises,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
