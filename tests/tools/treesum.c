/* treesum.c -- digests of a folder tree for the kill loops
 * (tests/integration/killlib.sh), in one process: what find | sort |
 * xargs sha256sum and a python set lookup did in six.
 *
 * Usage: treesum DIR
 *        treesum --known FILE DIR
 *
 * The first form prints one line per regular file below DIR, "HEX  ./PATH"
 * (HEX: 32-byte BLAKE2b of the content), sorted by path bytes. Files whose
 * name starts with ".simsync-tmp" (the temporaries of interrupted writes)
 * and anything that is not a regular file (symlinks included) are left
 * out. The second form prints nothing and exits 0 when every such line is
 * one of FILE's lines (nothing half-written under an item's name), else
 * prints the first five lines that are not on stderr and exits 1. A DIR
 * that does not exist is an empty tree. Exit 2: usage error, or a file or
 * folder that cannot be read. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypt.h"

#define DIGEST_BYTES 32
#define TMP_PREFIX ".simsync-tmp"

/* A growing array of malloc'd strings. */
struct lines {
    char **v;
    size_t n, cap;
};

static void
die(const char *what, const char *path)
{
    fprintf(stderr, "treesum: %s %s: %s\n", what, path, strerror(errno));
    exit(2);
}

static void
lines_add(struct lines *l, char *s)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        char **v = realloc(l->v, cap * sizeof(*v));

        if (v == NULL) {
            fputs("treesum: out of memory\n", stderr);
            exit(2);
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = s;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Order of the tree's lines: by the path after "HEX  ". */
static int
cmp_path(const void *a, const void *b)
{
    return strcmp(*(char *const *)a + 2 * DIGEST_BYTES + 2,
                  *(char *const *)b + 2 * DIGEST_BYTES + 2);
}

/* "HEX  ./REL" for the regular file at `path`. */
static char *
digest_line(const char *path, const char *rel)
{
    static unsigned char buf[1 << 16];
    struct crypt_hash_state st;
    uint8_t d[DIGEST_BYTES];
    size_t len;
    char *line;
    ssize_t r;
    int fd;

    fd = open(path, O_RDONLY | O_NOFOLLOW);
    if (fd < 0)
        die("cannot open", path);
    if (crypt_hash_init(&st, sizeof(d), NULL, 0) != 0) {
        fputs("treesum: hash init failed\n", stderr);
        exit(2);
    }
    while ((r = read(fd, buf, sizeof(buf))) != 0) {
        if (r < 0) {
            if (errno == EINTR)
                continue;
            die("cannot read", path);
        }
        (void)crypt_hash_update(&st, buf, (size_t)r);
    }
    close(fd);
    (void)crypt_hash_final(&st, d, sizeof(d));

    len = 2 * sizeof(d) + 4 + strlen(rel) + 1;
    line = malloc(len);
    if (line == NULL) {
        fputs("treesum: out of memory\n", stderr);
        exit(2);
    }
    for (size_t i = 0; i < sizeof(d); i++)
        snprintf(line + 2 * i, 3, "%02x", d[i]);
    snprintf(line + 2 * sizeof(d), len - 2 * sizeof(d), "  ./%s", rel);
    return line;
}

/* Add a line for every regular file below `dir`; `rel` is its path below
 * the top ("" for the top itself). */
static void
walk(const char *dir, const char *rel, struct lines *out)
{
    struct dirent *e;
    DIR *d;

    d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT && *rel == '\0')
            return; /* no tree at all */
        die("cannot open folder", dir);
    }
    while ((e = readdir(d)) != NULL) {
        char path[4096], sub[4096];
        struct stat sb;

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >=
                sizeof(path) ||
            (size_t)snprintf(sub, sizeof(sub), "%s%s%s", rel,
                             *rel ? "/" : "", e->d_name) >= sizeof(sub)) {
            fprintf(stderr, "treesum: path too long below %s\n", dir);
            exit(2);
        }
        if (lstat(path, &sb) != 0) {
            if (errno == ENOENT)
                continue; /* removed while we looked */
            die("cannot stat", path);
        }
        if (S_ISDIR(sb.st_mode))
            walk(path, sub, out);
        else if (S_ISREG(sb.st_mode) &&
                 strncmp(e->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) != 0)
            lines_add(out, digest_line(path, sub));
    }
    closedir(d);
}

/* The lines of `path`, sorted, without their newlines. */
static void
read_known(const char *path, struct lines *out)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    FILE *f;

    f = fopen(path, "r");
    if (f == NULL)
        die("cannot open", path);
    while ((n = getline(&line, &cap, f)) >= 0) {
        if (n > 0 && line[n - 1] == '\n')
            line[n - 1] = '\0';
        lines_add(out, line);
        line = NULL;
        cap = 0;
    }
    free(line);
    fclose(f);
    if (out->n > 1) /* qsort and bsearch want a real array, even of 0 */
        qsort(out->v, out->n, sizeof(*out->v), cmp_str);
}

int
main(int argc, char **argv)
{
    struct lines tree = {0}, known = {0};
    const char *known_path = NULL;
    size_t bad = 0;

    if (argc == 4 && strcmp(argv[1], "--known") == 0)
        known_path = argv[2];
    else if (argc != 2 || argv[1][0] == '-') {
        fputs("usage: treesum DIR | treesum --known FILE DIR\n", stderr);
        return 2;
    }
    if (crypt_init() != 0) {
        fputs("treesum: cannot initialise the crypto library\n", stderr);
        return 2;
    }
    walk(argv[argc - 1], "", &tree);
    if (tree.n > 1)
        qsort(tree.v, tree.n, sizeof(*tree.v), cmp_path);

    if (known_path == NULL) {
        for (size_t i = 0; i < tree.n; i++)
            printf("%s\n", tree.v[i]);
        return fflush(stdout) == 0 ? 0 : 2;
    }
    read_known(known_path, &known);
    for (size_t i = 0; i < tree.n; i++) {
        if (known.n > 0 &&
            bsearch(&tree.v[i], known.v, known.n, sizeof(*known.v),
                    cmp_str) != NULL)
            continue;
        if (bad++ < 5)
            fprintf(stderr, "%s\n", tree.v[i]);
    }
    return bad == 0 ? 0 : 1;
}
