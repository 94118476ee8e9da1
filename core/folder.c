/* folder.c -- class folders of a trusted node: safe paths, recording files
 * as versions, scanning. See folder.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blob.h"
#include "chunker.h"
#include "crypt.h"
#include "folder.h"

#define SCAN_BATCH 256
#define MASS_DELETE_MAX 1000

int
replica_name_ok(const char *name)
{
    const char *p = name;
    size_t len;

    if (name == NULL || *name == '\0' || *name == '/')
        return 0;
    len = strlen(name);
    if (len > PATH_MAX / 2)
        return 0;
    while (*p != '\0') {
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') ||
            (n == 2 && p[0] == '.' && p[1] == '.'))
            return 0;
        if (n > NAME_MAX)
            return 0;
        p += n;
        if (*p == '/')
            p++;
        else
            break;
    }
    return name[len - 1] != '/';
}

static int
errno_to_err(int e)
{
    switch (e) {
    case ENOENT:
        return SIMSYNC_ENOTFOUND;
    case ENOSPC:
    case EDQUOT:
        return SIMSYNC_ENOSPC;
    case ENOMEM:
        return SIMSYNC_ENOMEM;
    case ELOOP:
    case ENOTDIR:
    case EISDIR:
        return SIMSYNC_EREFUSED;
    default:
        return SIMSYNC_EIO;
    }
}

static int
open_class_dir(const struct replica *r, int cls, int create)
{
    char path[PATH_MAX];
    int fd, n;

    n = snprintf(path, sizeof(path), "%s/%s", r->data_dir, class_name(cls));
    if (n < 0 || (size_t)n >= sizeof(path))
        return SIMSYNC_EINVAL;
    fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create) {
        (void)mkdir(r->data_dir, 0700);
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return errno_to_err(errno);
        fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    return fd < 0 ? errno_to_err(errno) : fd;
}

int
folder_open_parent(const struct replica *r, int cls, const char *name,
                   int create, const char **base)
{
    char comp[NAME_MAX + 1];
    const char *p = name;
    int fd;

    if (!replica_name_ok(name))
        return SIMSYNC_EINVAL;
    fd = open_class_dir(r, cls, create);
    if (fd < 0)
        return fd;
    for (;;) {
        const char *slash = strchr(p, '/');
        int nfd;
        if (slash == NULL)
            break;
        memcpy(comp, p, (size_t)(slash - p));
        comp[slash - p] = '\0';
        if (create && mkdirat(fd, comp, 0700) != 0 && errno != EEXIST) {
            int e = errno;
            close(fd);
            return errno_to_err(e);
        }
        nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (nfd < 0) {
            int e = errno;
            close(fd);
            return errno_to_err(e);
        }
        close(fd);
        fd = nfd;
        p = slash + 1;
    }
    *base = p;
    return fd;
}

int
folder_make_tmp(int dirfd, char *tmpname, size_t len)
{
    for (int i = 0; i < 16; i++) {
        int fd;
        /* The pid lets a later scan remove what a killed writer left. */
        snprintf(tmpname, len, "%s%ld-%08x", FOLDER_TMP_PREFIX, (long)getpid(),
                 crypt_random_u32());
        fd = openat(dirfd, tmpname,
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0)
            return fd;
        if (errno != EEXIST)
            return errno_to_err(errno);
    }
    return SIMSYNC_EIO;
}

int
folder_commit_tmp(int dirfd, int tmpfd, const char *tmpname, const char *base,
                  struct stat *st)
{
    if (fsync(tmpfd) != 0 || renameat(dirfd, tmpname, dirfd, base) != 0) {
        int e = errno;
        unlinkat(dirfd, tmpname, 0);
        return errno_to_err(e);
    }
    /* After the rename: it changes the inode's ctime, which the stat
     * cache compares. */
    if (fstat(tmpfd, st) != 0)
        return errno_to_err(errno);
    (void)fsync(dirfd);
    return SIMSYNC_OK;
}

int
folder_stat(const struct replica *r, int cls, const char *name, struct stat *st)
{
    const char *base;
    int dfd = folder_open_parent(r, cls, name, 0, &base);
    int rc = SIMSYNC_OK;

    if (dfd < 0)
        return dfd == SIMSYNC_EREFUSED ? SIMSYNC_ENOTFOUND : dfd;
    if (fstatat(dfd, base, st, AT_SYMLINK_NOFOLLOW) != 0)
        rc = errno_to_err(errno);
    close(dfd);
    return rc;
}

int
folder_stat_matches(const Simsync__ItemRecord *rec, const struct stat *st)
{
    return rec->present && rec->st_size == (uint64_t)st->st_size &&
           rec->st_ino == (uint64_t)st->st_ino &&
           rec->st_mtime_ns ==
               (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec &&
           rec->st_ctime_ns ==
               (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
}

void
folder_stat_fill(Simsync__ItemRecord *rec, const struct stat *st)
{
    rec->present = 1;
    rec->st_size = (uint64_t)st->st_size;
    rec->st_ino = (uint64_t)st->st_ino;
    rec->st_mtime_ns =
        (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    rec->st_ctime_ns =
        (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
}

int
folder_remove(const struct replica *r, int cls, const char *name)
{
    const char *base;
    int dfd = folder_open_parent(r, cls, name, 0, &base);
    int rc = SIMSYNC_OK;

    if (dfd == SIMSYNC_ENOTFOUND)
        return SIMSYNC_OK;
    if (dfd < 0)
        return dfd;
    if (unlinkat(dfd, base, 0) != 0 && errno != ENOENT)
        rc = errno_to_err(errno);
    close(dfd);
    return rc;
}

/* Copy the current local file `from` to `to` (both in class cls). */
int
folder_copy(const struct replica *r, int cls, const char *from, const char *to)
{
    const char *b1, *b2;
    char tmp[64];
    uint8_t buf[65536];
    struct stat st;
    int d1, d2, in, out, rc = SIMSYNC_OK;
    ssize_t n;

    d1 = folder_open_parent(r, cls, from, 0, &b1);
    if (d1 < 0)
        return d1;
    in = openat(d1, b1, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    close(d1);
    if (in < 0)
        return SIMSYNC_EIO;
    d2 = folder_open_parent(r, cls, to, 1, &b2);
    if (d2 < 0) {
        close(in);
        return d2;
    }
    out = folder_make_tmp(d2, tmp, sizeof(tmp));
    if (out < 0) {
        close(in);
        close(d2);
        return out;
    }
    while ((n = read(in, buf, sizeof(buf))) > 0)
        if (write(out, buf, (size_t)n) != n) {
            rc = SIMSYNC_EIO;
            break;
        }
    if (n < 0)
        rc = SIMSYNC_EIO;
    if (rc == SIMSYNC_OK)
        rc = folder_commit_tmp(d2, out, tmp, b2, &st);
    else
        unlinkat(d2, tmp, 0);
    close(in);
    close(out);
    close(d2);
    return rc;
}

/* State while chunking a large file. */
struct chunk_acc {
    const struct replica *r;
    struct crypt_hash_state content;
    Simsync__ChunkRef *refs;
    size_t n, cap;
    uint8_t (*ids)[CHUNK_ID_BYTES];
};

static int
on_chunk(const uint8_t *data, size_t len, uint64_t off, void *arg)
{
    struct chunk_acc *a = arg;

    (void)off;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        void *r1 = realloc(a->refs, cap * sizeof(*a->refs));
        if (r1 == NULL)
            return SIMSYNC_ENOMEM;
        a->refs = r1;
        void *r2 = realloc(a->ids, cap * CHUNK_ID_BYTES);
        if (r2 == NULL)
            return SIMSYNC_ENOMEM;
        a->ids = r2;
        a->cap = cap;
    }
    keys_chunk_id(&a->r->keys, data, len, a->ids[a->n]);
    simsync__chunk_ref__init(&a->refs[a->n]);
    a->refs[a->n].size = len;
    a->n++;
    return crypt_hash_update(&a->content, data, len);
}

static int
read_all(int fd, uint8_t *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n == 0 ? SIMSYNC_EAGAIN : errno_to_err(errno);
        got += (size_t)n;
    }
    return SIMSYNC_OK;
}

int
folder_record(struct replica *r, struct store_txn *txn, int cls,
              const char *name, const struct vv *base,
              const Simsync__Version *clock, const Simsync__ItemRecord *old)
{
    Simsync__ItemRecord rec = SIMSYNC__ITEM_RECORD__INIT;
    Simsync__Version v = SIMSYNC__VERSION__INIT, *vp = &v;
    Simsync__ItemMeta meta = SIMSYNC__ITEM_META__INIT;
    Simsync__VersionVector vvpb;
    Simsync__Dot dot = SIMSYNC__DOT__INIT, *dotp = &dot;
    Simsync__ChunkRef **refp = NULL;
    struct chunk_acc acc = {0};
    struct vv vv = VV_INIT;
    uint8_t id[ITEM_ID_BYTES], chash[32];
    uint8_t *body = NULL, *plain = NULL, *mbuf = NULL, *mseal = NULL;
    size_t body_len = 0, mlen;
    const char *bname;
    struct stat st;
    int dfd, fd = -1, rc;

    memset(&vvpb, 0, sizeof(vvpb));
    keys_item_id(&r->keys, cls, name, id);
    dfd = folder_open_parent(r, cls, name, 0, &bname);
    if (dfd >= 0) {
        fd = openat(dfd, bname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        close(dfd);
    }
    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
        close(fd);
        fd = -1;
    }
    if (fd >= 0) {
        if ((uint64_t)st.st_size > ITEM_SIZE_MAX) {
            rc = SIMSYNC_ETOOBIG;
            goto out;
        }
        crypt_hash_init(&acc.content, 32, r->keys.content, 32);
        if ((size_t)st.st_size <= INLINE_MAX) {
            plain = malloc((size_t)st.st_size + 1);
            rc = plain ? read_all(fd, plain, (size_t)st.st_size)
                       : SIMSYNC_ENOMEM;
            if (rc != SIMSYNC_OK)
                goto out;
            crypt_hash_update(&acc.content, plain, (size_t)st.st_size);
            rc = blob_encode(r->keys.seal, id, sizeof(id), plain,
                             (size_t)st.st_size, &body, &body_len);
            if (rc != SIMSYNC_OK)
                goto out;
            v.inline_body.data = body;
            v.inline_body.len = body_len;
        } else {
            struct chunker_params p;
            acc.r = r;
            chunker_params_default(&p);
            rc = chunker_fd_each(&p, fd, on_chunk, &acc);
            if (rc != SIMSYNC_OK)
                goto out;
            refp = malloc((acc.n ? acc.n : 1) * sizeof(*refp));
            if (refp == NULL) {
                rc = SIMSYNC_ENOMEM;
                goto out;
            }
            for (size_t i = 0; i < acc.n; i++) {
                acc.refs[i].id.data = acc.ids[i];
                acc.refs[i].id.len = CHUNK_ID_BYTES;
                refp[i] = &acc.refs[i];
            }
            v.chunks = refp;
            v.n_chunks = acc.n;
        }
        crypt_hash_final(&acc.content, chash, sizeof(chash));
        v.content_hash.data = chash;
        v.content_hash.len = sizeof(chash);
        v.size = (uint64_t)st.st_size;
        meta.mode = st.st_mode & 07777;
        meta.mtime_ns =
            (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        folder_stat_fill(&rec, &st);
    } else {
        v.deleted = 1;
    }
    meta.name = (char *)name;
    rc = record_pack(&meta.base, &mbuf, &mlen);
    if (rc != SIMSYNC_OK)
        goto out;
    mseal = malloc(mlen + CRYPT_SEAL_OVERHEAD);
    if (mseal == NULL) {
        rc = SIMSYNC_ENOMEM;
        goto out;
    }
    rc = crypt_seal(mseal, mbuf, mlen, id, sizeof(id), r->keys.seal);
    if (rc != SIMSYNC_OK)
        goto out;
    v.meta.data = mseal;
    v.meta.len = mlen + CRYPT_SEAL_OVERHEAD;

    rec.versions = &vp;
    rec.n_versions = 1;
    rec.name = (char *)name;
    if (clock != NULL) {
        /* Same clock as `clock` (a conflict copy): no new change. */
        v.vv = clock->vv;
        v.dots = clock->dots;
        v.n_dots = clock->n_dots;
        v.hlc = clock->hlc;
        v.author = clock->author;
        rc = item_put(txn, r->sub, cls, id, old, &rec);
        goto out;
    }
    rc = journal_next_counter(txn, &dot.counter);
    if (rc == SIMSYNC_OK)
        rc = base ? vv_copy(&vv, base) : SIMSYNC_OK;
    if (rc == SIMSYNC_OK)
        rc = vv_set(&vv, r->self, dot.counter);
    if (rc == SIMSYNC_OK)
        rc = vv_to_pb(&vvpb, &vv);
    if (rc != SIMSYNC_OK)
        goto out;
    dot.replica = r->self;
    v.vv = &vvpb;
    v.dots = &dotp;
    v.n_dots = 1;
    v.author = r->self;
    rc = journal_hlc_next(txn, r->now_ms, &v.hlc);
    if (rc == SIMSYNC_OK)
        rc = journal_knowledge_raise(
            txn, r->sub, cls, 0,
            &(struct vv){1, 1, &(struct dot){r->self, dot.counter}});
    if (rc == SIMSYNC_OK)
        rc = item_put(txn, r->sub, cls, id, old, &rec);
out:
    if (fd >= 0)
        close(fd);
    free(plain);
    free(body);
    free(mbuf);
    free(mseal);
    free(refp);
    free(acc.refs);
    free(acc.ids);
    pb_vv_free(&vvpb);
    vv_free(&vv);
    return rc;
}

/* ---------------------------------------------------------------- scan */

struct name_list {
    char **v;
    size_t n, cap;
};

static int
names_add(struct name_list *l, const char *s)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **nv = realloc(l->v, cap * sizeof(*nv));
        if (nv == NULL)
            return SIMSYNC_ENOMEM;
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n] = strdup(s);
    if (l->v[l->n] == NULL)
        return SIMSYNC_ENOMEM;
    l->n++;
    return SIMSYNC_OK;
}

static void
names_free(struct name_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

/* A temp file whose writer is gone (killed mid-write) is removed; one of
 * a live process is left alone. */
static void
remove_stale_tmp(int dfd, const char *name)
{
    const char *p = name + strlen(FOLDER_TMP_PREFIX);
    char *end;
    long pid = strtol(p, &end, 10);

    if (end == p || *end != '-' || pid <= 0)
        pid = 0; /* unknown writer: an old format, remove it */
    if (pid != 0 && (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
        return;
    (void)unlinkat(dfd, name, 0);
}

/* Collect regular files below dirfd (consumed) as relative names. */
static int
walk(int dirfd_in, const char *prefix, struct name_list *out, int depth)
{
    DIR *d = fdopendir(dirfd_in);
    struct dirent *e;
    int rc = SIMSYNC_OK;

    if (d == NULL) {
        close(dirfd_in);
        return SIMSYNC_EIO;
    }
    while (rc == SIMSYNC_OK && (e = readdir(d)) != NULL) {
        char rel[PATH_MAX];
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (strncmp(e->d_name, FOLDER_TMP_PREFIX, strlen(FOLDER_TMP_PREFIX)) ==
            0) {
            remove_stale_tmp(dirfd(d), e->d_name);
            continue;
        }
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (snprintf(rel, sizeof(rel), "%s%s%s", prefix, *prefix ? "/" : "",
                     e->d_name) >= (int)sizeof(rel) / 2)
            continue;
        if (S_ISREG(st.st_mode)) {
            rc = names_add(out, rel);
        } else if (S_ISDIR(st.st_mode) && depth < 32) {
            int sub = openat(dirfd(d), e->d_name,
                             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0)
                rc = walk(sub, rel, out, depth + 1);
        }
    }
    closedir(d);
    return rc;
}

static int
live(const Simsync__ItemRecord *rec)
{
    return rec->n_versions == 1 && !rec->versions[0]->deleted;
}

/* Keyed content hash of a file, to tell a touch from an edit. */
static int
file_hash(struct replica *r, int cls, const char *name, uint8_t out[32])
{
    struct crypt_hash_state hs;
    uint8_t buf[65536];
    const char *base;
    int dfd = folder_open_parent(r, cls, name, 0, &base), fd;
    ssize_t n;

    if (dfd < 0)
        return dfd;
    fd = openat(dfd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    close(dfd);
    if (fd < 0)
        return errno_to_err(errno);
    crypt_hash_init(&hs, 32, r->keys.content, 32);
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        crypt_hash_update(&hs, buf, (size_t)n);
    close(fd);
    if (n < 0)
        return SIMSYNC_EIO;
    return crypt_hash_final(&hs, out, 32);
}

int
folder_refresh(struct replica *r, struct store_txn *txn, int cls,
               const char *name, const uint8_t id[ITEM_ID_BYTES],
               Simsync__ItemRecord *rec, int *changed)
{
    struct vv base = VV_INIT;
    struct stat st;
    uint8_t h[32];
    int rc = SIMSYNC_OK, have = folder_stat(r, cls, name, &st) == SIMSYNC_OK;

    *changed = 0;
    if (rec != NULL && live(rec) && have && folder_stat_matches(rec, &st))
        return SIMSYNC_OK;
    if ((rec == NULL || !live(rec)) && !have)
        return SIMSYNC_OK; /* nothing there, nothing known: no change */
    if (rec != NULL && live(rec) && have &&
        file_hash(r, cls, name, h) == SIMSYNC_OK &&
        rec->versions[0]->content_hash.len == 32 &&
        memcmp(h, rec->versions[0]->content_hash.data, 32) == 0) {
        /* Touched, not edited: refresh the stat cache only. */
        folder_stat_fill(rec, &st);
        return item_put(txn, r->sub, cls, id, rec, rec);
    }
    if (rec != NULL)
        rc = vv_from_pb(&base, rec->versions[0]->vv);
    if (rc == SIMSYNC_OK)
        rc = folder_record(r, txn, cls, name, &base, NULL, rec);
    *changed = 1;
    vv_free(&base);
    return rc;
}

struct scan_batch {
    struct replica *r;
    int cls;
    char **names;
    size_t n;
    int tombstones; /* names are items to delete */
    struct scan_stats *stats;
};

static int
scan_batch_fn(struct store_txn *txn, void *arg)
{
    struct scan_batch *b = arg;
    struct scan_stats local = {0};
    struct vv base = VV_INIT;
    int rc = SIMSYNC_OK;

    for (size_t i = 0; rc == SIMSYNC_OK && i < b->n; i++) {
        Simsync__ItemRecord *rec = NULL;
        uint8_t id[ITEM_ID_BYTES];
        const char *name = b->names[i];
        int changed, was_live;

        keys_item_id(&b->r->keys, b->cls, name, id);
        rc = item_get(txn, b->r->sub, b->cls, id, &rec);
        if (rc == SIMSYNC_ENOTFOUND)
            rc = SIMSYNC_OK;
        if (rc != SIMSYNC_OK)
            break;
        if (b->tombstones) {
            rc = vv_from_pb(&base, rec->versions[0]->vv);
            if (rc == SIMSYNC_OK)
                rc = folder_record(b->r, txn, b->cls, name, &base, NULL, rec);
            local.deleted++;
            item_record_free(rec);
            continue;
        }
        local.files++;
        was_live = rec != NULL && live(rec);
        rc = folder_refresh(b->r, txn, b->cls, name, id, rec, &changed);
        if (!changed)
            local.unchanged++;
        else if (was_live)
            local.edited++;
        else
            local.added++;
        item_record_free(rec);
    }
    vv_free(&base);
    if (rc == SIMSYNC_OK) {
        b->stats->files += local.files;
        b->stats->unchanged += local.unchanged;
        b->stats->added += local.added;
        b->stats->edited += local.edited;
        b->stats->deleted += local.deleted;
    }
    return rc;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names of live items of a class that have no file any more. */
static int
find_gone(struct replica *r, int cls, struct name_list *files,
          struct name_list *gone, uint64_t *live_count)
{
    struct store_txn *txn;
    struct store_cursor *cur;
    uint8_t prefix[SUB_BYTES + 1];
    const uint8_t *k, *v;
    size_t kl, vl;
    int rc;

    *live_count = 0;
    memcpy(prefix, r->sub, SUB_BYTES);
    prefix[SUB_BYTES] = (uint8_t)cls;
    rc = store_txn_begin(r->st, 1, &txn);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_cursor_open(txn, STORE_ITEMS, &cur);
    if (rc == SIMSYNC_OK)
        rc = store_cursor_seek(cur, prefix, sizeof(prefix), (const void **)&k,
                               &kl, (const void **)&v, &vl);
    while (rc == SIMSYNC_OK && kl == ITEM_KEY_BYTES &&
           memcmp(k, prefix, sizeof(prefix)) == 0) {
        Simsync__ItemRecord *rec = simsync__item_record__unpack(NULL, vl, v);
        if (rec == NULL) {
            rc = SIMSYNC_EPROTO;
            break;
        }
        if (live(rec) && rec->name != NULL) {
            const char *key = rec->name;
            (*live_count)++;
            if (files->n == 0 || bsearch(&key, files->v, files->n,
                                         sizeof(char *), cmp_str) == NULL)
                rc = names_add(gone, rec->name);
        }
        item_record_free(rec);
        if (rc == SIMSYNC_OK)
            rc = store_cursor_next(cur, (const void **)&k, &kl,
                                   (const void **)&v, &vl);
    }
    store_cursor_close(cur);
    store_txn_abort(txn);
    return rc == SIMSYNC_ENOTFOUND ? SIMSYNC_OK : rc;
}

int
folder_scan(struct replica *r, uint32_t classes, int allow_mass_delete,
            struct scan_stats *stats)
{
    int result = SIMSYNC_OK;

    memset(stats, 0, sizeof(*stats));
    for (int cls = 0; cls < CLS_COUNT; cls++) {
        struct name_list files = {0}, gone = {0};
        uint64_t live_count;
        int dfd, rc;

        if (!(classes & (1u << cls)))
            continue;
        dfd = open_class_dir(r, cls, 0);
        if (dfd == SIMSYNC_ENOTFOUND) {
            /* A missing folder is not a request to delete everything: a
             * class with live items is skipped and its folder is not
             * recreated (an empty new folder would read as deletions);
             * a class with nothing in it just gets its folder. */
            struct name_list none = {0};
            rc = find_gone(r, cls, &none, &gone, &live_count);
            names_free(&gone);
            if (rc != SIMSYNC_OK)
                return rc;
            if (live_count == 0) {
                dfd = open_class_dir(r, cls, 1);
                if (dfd >= 0)
                    close(dfd);
            }
            continue;
        }
        if (dfd < 0)
            return dfd;
        rc = walk(dfd, "", &files, 0);
        if (rc == SIMSYNC_OK && files.n > 0)
            qsort(files.v, files.n, sizeof(char *), cmp_str);
        for (size_t i = 0; rc == SIMSYNC_OK && i < files.n; i += SCAN_BATCH) {
            struct scan_batch b = {
                r,
                cls,
                files.v + i,
                files.n - i < SCAN_BATCH ? files.n - i : SCAN_BATCH,
                0,
                stats};
            rc = store_write(r->st, scan_batch_fn, &b);
        }
        if (rc == SIMSYNC_OK)
            rc = find_gone(r, cls, &files, &gone, &live_count);
        if (rc == SIMSYNC_OK && gone.n > 0 && !allow_mass_delete &&
            (gone.n > MASS_DELETE_MAX ||
             (live_count > 2 && gone.n * 2 > live_count))) {
            stats->guarded += gone.n;
            result = SIMSYNC_EMASSDEL;
        } else {
            for (size_t i = 0; rc == SIMSYNC_OK && i < gone.n;
                 i += SCAN_BATCH) {
                struct scan_batch b = {
                    r,
                    cls,
                    gone.v + i,
                    gone.n - i < SCAN_BATCH ? gone.n - i : SCAN_BATCH,
                    1,
                    stats};
                rc = store_write(r->st, scan_batch_fn, &b);
            }
        }
        names_free(&files);
        names_free(&gone);
        if (rc != SIMSYNC_OK)
            return rc;
    }
    return result;
}
