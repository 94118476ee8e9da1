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
#include "pbcheck.h"

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
        nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (nfd < 0 && errno == ENOENT && create) {
            if (mkdirat(fd, comp, 0700) != 0 && errno != EEXIST) {
                int e = errno;
                close(fd);
                return errno_to_err(e);
            }
            nfd = openat(fd, comp,
                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
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
                  int durable, struct stat *st)
{
    if ((durable && fsync(tmpfd) != 0) ||
        renameat(dirfd, tmpname, dirfd, base) != 0) {
        int e = errno;
        unlinkat(dirfd, tmpname, 0);
        return errno_to_err(e);
    }
    /* After the rename: it changes the inode's ctime, which the stat
     * cache compares. */
    if (fstat(tmpfd, st) != 0)
        return errno_to_err(errno);
    if (durable)
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
folder_target_stat(const struct replica *r, int cls, const char *name,
                   struct stat *st)
{
    const char *base;
    int dfd, rc;

    if (!replica_name_ok(name))
        return SIMSYNC_EREFUSED;
    /* Components are opened with O_NOFOLLOW: a symlinked folder on the
     * way is refused; a missing one is made later, as a real folder. */
    dfd = folder_open_parent(r, cls, name, 0, &base);
    if (dfd == SIMSYNC_ENOTFOUND)
        return SIMSYNC_ENOTFOUND;
    if (dfd < 0)
        return SIMSYNC_EREFUSED;
    if (fstatat(dfd, base, st, AT_SYMLINK_NOFOLLOW) != 0)
        rc = errno == ENOENT ? SIMSYNC_ENOTFOUND : SIMSYNC_EREFUSED;
    else
        rc = S_ISREG(st->st_mode) ? SIMSYNC_OK : SIMSYNC_EREFUSED;
    close(dfd);
    return rc;
}

int
folder_target_ok(const struct replica *r, int cls, const char *name)
{
    struct stat st;
    int rc = folder_target_stat(r, cls, name, &st);

    return rc == SIMSYNC_OK || rc == SIMSYNC_ENOTFOUND;
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

/* After a file of `name` went away, remove the folders above it that are
 * now empty (directories are not items; an emptied one would linger). */
static void
remove_empty_parents(const struct replica *r, int cls, const char *name)
{
    char dir[PATH_MAX];
    size_t len = strlen(name);

    if (len >= sizeof(dir))
        return;
    memcpy(dir, name, len + 1);
    for (;;) {
        char *slash = strrchr(dir, '/');
        const char *base;
        int dfd, gone;
        if (slash == NULL)
            return;
        *slash = '\0';
        dfd = folder_open_parent(r, cls, dir, 0, &base);
        if (dfd < 0)
            return;
        gone = unlinkat(dfd, base, AT_REMOVEDIR) == 0;
        close(dfd);
        if (!gone)
            return;
    }
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
    if (rc == SIMSYNC_OK)
        remove_empty_parents(r, cls, name);
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
        rc = folder_commit_tmp(d2, out, tmp, b2, 1, &st);
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
    int no_sink; /* do not hand the chunks to r->chunk_sink */
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
    if (a->r->chunk_sink != NULL && !a->no_sink) {
        int rc = a->r->chunk_sink(a->r->chunk_sink_arg, a->ids[a->n - 1],
                                  data, len);
        if (rc != SIMSYNC_OK)
            return rc;
    }
    return SIMSYNC_OK;
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

/* The content of a renamed file: the version it had under its old name
 * (from NULL: a file just written from that version; then st is the
 * written file's stat and body_ok tells that v's inline body was sealed
 * for this name, so both can be kept as they are). */
struct move_src {
    const char *from;
    const Simsync__Version *v;
    const struct stat *st;
    int body_ok;
};

static int
record_file(struct replica *r, struct store_txn *txn, int cls, const char *name,
            const struct vv *base, const Simsync__Version *clock,
            const Simsync__ItemRecord *old, const struct move_src *move)
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
    int dfd, fd = -1, rc, moved = 0, have, written;

    memset(&vvpb, 0, sizeof(vvpb));
    keys_item_id(&r->keys, cls, name, id);
    /* A file just written from move->v: its stat is known and nothing of
     * it needs to be read (an inline body sealed for another name does:
     * it is sealed again for this one). */
    written = move != NULL && move->st != NULL &&
              move->v->size == (uint64_t)move->st->st_size &&
              move->v->content_hash.len == sizeof(chash) &&
              (move->v->n_chunks > 0 || move->body_ok);
    if (written) {
        st = *move->st;
    } else {
        dfd = folder_open_parent(r, cls, name, 0, &bname);
        if (dfd >= 0) {
            fd = openat(dfd, bname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            close(dfd);
        }
        if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
            close(fd);
            fd = -1;
        }
    }
    have = written || fd >= 0;
    if (have) {
        if ((uint64_t)st.st_size > ITEM_SIZE_MAX) {
            rc = SIMSYNC_ETOOBIG;
            goto out;
        }
        crypt_hash_init(&acc.content, 32, r->keys.content, 32);
        if (move != NULL && move->v->n_chunks > 0 &&
            move->v->size == (uint64_t)st.st_size &&
            move->v->content_hash.len == sizeof(chash)) {
            /* A rename: the chunk list and hash stay, nothing is read;
             * receivers copy their own file of the old name. */
            v.chunks = move->v->chunks;
            v.n_chunks = move->v->n_chunks;
            v.hash_kind = move->v->hash_kind;
            memcpy(chash, move->v->content_hash.data, sizeof(chash));
            meta.moved_from = (char *)move->from;
            moved = 1;
        } else if (written) {
            /* Restored: the inline body stays as sealed for this name. */
            v.inline_body = move->v->inline_body;
            v.hash_kind = move->v->hash_kind;
            memcpy(chash, move->v->content_hash.data, sizeof(chash));
            moved = 1;
        } else if ((size_t)st.st_size <= INLINE_MAX) {
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
        v.size = (uint64_t)st.st_size;
        if (v.n_chunks > 0 && !moved) {
            /* A file written to while it was read: the version is what
             * was read (its size is its chunks'); the stat kept below is
             * the one from before, so the next scan reads it again. */
            uint64_t total = 0;
            for (size_t i = 0; i < v.n_chunks; i++)
                total += v.chunks[i]->size;
            v.size = total;
            if (total > ITEM_SIZE_MAX) {
                rc = SIMSYNC_ETOOBIG;
                goto out;
            }
            /* Named by its chunk list: no second pass over the bytes. */
            v.hash_kind = HASH_KIND_CHUNKS;
            rc = replica_chunk_list_hash(&r->keys, &v, chash);
            if (rc != SIMSYNC_OK)
                goto out;
        } else if (!moved) {
            crypt_hash_final(&acc.content, chash, sizeof(chash));
        }
        v.content_hash.data = chash;
        v.content_hash.len = sizeof(chash);
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

int
folder_record(struct replica *r, struct store_txn *txn, int cls,
              const char *name, const struct vv *base,
              const Simsync__Version *clock, const Simsync__ItemRecord *old)
{
    return record_file(r, txn, cls, name, base, clock, old, NULL);
}

int
folder_record_written(struct replica *r, struct store_txn *txn, int cls,
                      const char *name, const struct vv *base,
                      const Simsync__ItemRecord *old, const Simsync__Version *v,
                      int body_ok, const struct stat *st)
{
    struct move_src src = {NULL, v, st, body_ok};

    return record_file(r, txn, cls, name, base, NULL, old, &src);
}

/* ---------------------------------------------------------------- scan */

/* One regular file found by the walk, with the stat fields the cache
 * compares. */
struct fentry {
    char *name;
    struct stat st;
    int known; /* a live item has this name */
};

struct flist {
    struct fentry *v;
    size_t n, cap;
};

/* A live item whose file is gone; `moved` when the file was renamed. */
struct gone {
    char *name;
    uint64_t ino, size;
    int64_t mtime_ns;
    int chunked, moved;
};

struct glist {
    struct gone *v;
    size_t n, cap;
};

static int
grow(void **v, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return SIMSYNC_OK;
    size_t nc = *cap ? *cap * 2 : 64;
    void *nv = realloc(*v, nc * size);
    if (nv == NULL)
        return SIMSYNC_ENOMEM;
    *v = nv;
    *cap = nc;
    return SIMSYNC_OK;
}

static void
flist_free(struct flist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].name);
    free(l->v);
}

static void
glist_free(struct glist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].name);
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

/* Collect the regular files below dirfd (consumed), with their stat. */
static int
walk(int dirfd_in, const char *prefix, struct flist *out, int depth)
{
    DIR *d = fdopendir(dirfd_in);
    struct dirent *e;
    int rc = SIMSYNC_OK;

    if (d == NULL) {
        int err = errno;

        close(dirfd_in);
        return errno_to_err(err);
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
            struct fentry *f;
            rc = grow((void **)&out->v, &out->cap, out->n, sizeof(*out->v));
            if (rc != SIMSYNC_OK)
                break;
            f = &out->v[out->n];
            f->name = strdup(rel);
            if (f->name == NULL) {
                rc = SIMSYNC_ENOMEM;
                break;
            }
            f->st = st;
            f->known = 0;
            out->n++;
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

/* The content hash of a file as version v would have it (v->hash_kind),
 * to tell a touch from an edit. */
static int
file_hash(struct replica *r, int cls, const char *name,
          const Simsync__Version *v, uint8_t out[32])
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
    if (v->hash_kind == HASH_KIND_CHUNKS) {
        /* Cut it again: the same bytes give the same list. */
        Simsync__Version cut = SIMSYNC__VERSION__INIT;
        Simsync__ChunkRef **refp = NULL;
        struct chunk_acc acc = {0};
        struct chunker_params p;
        int rc;
        acc.r = r;
        acc.no_sink = 1;
        chunker_params_default(&p);
        rc = chunker_fd_each(&p, fd, on_chunk, &acc);
        close(fd);
        if (rc == SIMSYNC_OK) {
            refp = malloc((acc.n ? acc.n : 1) * sizeof(*refp));
            rc = refp != NULL ? SIMSYNC_OK : SIMSYNC_ENOMEM;
        }
        if (rc == SIMSYNC_OK) {
            for (size_t i = 0; i < acc.n; i++) {
                acc.refs[i].id.data = acc.ids[i];
                acc.refs[i].id.len = CHUNK_ID_BYTES;
                refp[i] = &acc.refs[i];
                cut.size += acc.refs[i].size;
            }
            cut.chunks = refp;
            cut.n_chunks = acc.n;
            rc = replica_chunk_list_hash(&r->keys, &cut, out);
        }
        free(refp);
        free(acc.refs);
        free(acc.ids);
        return rc;
    }
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
    int same = 0;

    *changed = 0;
    if (rec != NULL && live(rec) && have && folder_stat_matches(rec, &st))
        return SIMSYNC_OK;
    if (rec != NULL && live(rec) && rec->remote && !have)
        return SIMSYNC_OK; /* lazy: the content is on the hub only */
    if ((rec == NULL || !live(rec)) && !have)
        return SIMSYNC_OK; /* nothing there, nothing known: no change */
    if (rec != NULL && live(rec) && have) {
        /* Out of memory is no answer to "same content?": a touched file
         * must not be taken for an edit because the hash could not be
         * made. (A file gone or unreadable meanwhile reads as changed.) */
        int hrc = file_hash(r, cls, name, rec->versions[0], h);

        if (hrc == SIMSYNC_ENOMEM)
            return hrc;
        same = hrc == SIMSYNC_OK && rec->versions[0]->content_hash.len == 32 &&
               memcmp(h, rec->versions[0]->content_hash.data, 32) == 0;
    }
    if (same) {
        /* Touched, not edited (or the content of a remote item came
         * back): refresh the stat cache only. */
        folder_stat_fill(rec, &st);
        rec->remote = 0;
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

/* The work a scan found for one class, as names. */
struct scan_work {
    char **changed; /* files whose stat differs from their item, new files */
    size_t nchanged, capchanged;
    char **moves; /* pairs: new name, old name */
    size_t nmoves, capmoves;
};

static void
work_free(struct scan_work *w)
{
    for (size_t i = 0; i < w->nchanged; i++)
        free(w->changed[i]);
    for (size_t i = 0; i < w->nmoves; i++)
        free(w->moves[i]);
    free(w->changed);
    free(w->moves);
}

static int
add_name(char ***v, size_t *n, size_t *cap, const char *name)
{
    int rc = grow((void **)v, cap, *n, sizeof(**v));

    if (rc != SIMSYNC_OK)
        return rc;
    (*v)[*n] = strdup(name);
    if ((*v)[*n] == NULL)
        return SIMSYNC_ENOMEM;
    (*n)++;
    return SIMSYNC_OK;
}

enum batch_kind { BATCH_FILES, BATCH_MOVES, BATCH_TOMBSTONES };

struct scan_batch {
    struct replica *r;
    int cls;
    enum batch_kind kind;
    char **names; /* BATCH_MOVES: pairs */
    size_t n;
    int moved; /* BATCH_TOMBSTONES: the files were renamed, not deleted */
    struct scan_stats *stats;
};

/* Record one rename: the new name gets the old item's content (no read),
 * unless the file no longer looks like the old item's; then it is an
 * ordinary new file. */
static int
record_move(struct replica *r, struct store_txn *txn, int cls, const char *to,
            const char *from, int *moved)
{
    Simsync__ItemRecord *src = NULL, *dst = NULL;
    uint8_t sid[ITEM_ID_BYTES], did[ITEM_ID_BYTES];
    struct vv base = VV_INIT;
    struct stat st;
    int rc, changed;

    *moved = 0;
    keys_item_id(&r->keys, cls, from, sid);
    keys_item_id(&r->keys, cls, to, did);
    rc = item_get(txn, r->sub, cls, sid, &src);
    if (rc == SIMSYNC_OK)
        rc = item_get(txn, r->sub, cls, did, &dst);
    if (rc == SIMSYNC_ENOTFOUND)
        rc = SIMSYNC_OK;
    if (rc != SIMSYNC_OK)
        goto out;
    if (src != NULL && live(src) && src->versions[0]->n_chunks > 0 &&
        (dst == NULL || !live(dst)) &&
        folder_stat(r, cls, to, &st) == SIMSYNC_OK &&
        (uint64_t)st.st_ino == src->st_ino &&
        (uint64_t)st.st_size == src->st_size &&
        (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec ==
            src->st_mtime_ns) {
        struct move_src m = {from, src->versions[0], NULL, 0};
        if (dst != NULL)
            rc = vv_from_pb(&base, dst->versions[0]->vv);
        if (rc == SIMSYNC_OK)
            rc = record_file(r, txn, cls, to, &base, NULL, dst, &m);
        *moved = 1;
    } else {
        rc = folder_refresh(r, txn, cls, to, did, dst, &changed);
    }
out:
    item_record_free(src);
    item_record_free(dst);
    vv_free(&base);
    return rc;
}

static int
scan_batch_fn(struct store_txn *txn, void *arg)
{
    struct scan_batch *b = arg;
    struct scan_stats local = {0};
    struct vv base = VV_INIT;
    size_t step = b->kind == BATCH_MOVES ? 2 : 1;
    int rc = SIMSYNC_OK;

    for (size_t i = 0; rc == SIMSYNC_OK && i + step <= b->n; i += step) {
        Simsync__ItemRecord *rec = NULL;
        uint8_t id[ITEM_ID_BYTES];
        const char *name = b->names[i];
        int changed, was_live;

        if (b->kind == BATCH_MOVES) {
            rc =
                record_move(b->r, txn, b->cls, name, b->names[i + 1], &changed);
            if (changed)
                local.renamed++;
            else
                local.added++;
            continue;
        }
        keys_item_id(&b->r->keys, b->cls, name, id);
        rc = item_get(txn, b->r->sub, b->cls, id, &rec);
        if (rc == SIMSYNC_ENOTFOUND)
            rc = SIMSYNC_OK;
        if (rc != SIMSYNC_OK)
            break;
        if (b->kind == BATCH_TOMBSTONES) {
            /* Still live and still without a file (checked again: this is
             * a new transaction). */
            struct stat st;
            if (rec != NULL && live(rec) && !rec->remote &&
                folder_stat(b->r, b->cls, name, &st) == SIMSYNC_ENOTFOUND) {
                rc = vv_from_pb(&base, rec->versions[0]->vv);
                if (rc == SIMSYNC_OK)
                    rc = folder_record(b->r, txn, b->cls, name, &base, NULL,
                                       rec);
                if (!b->moved)
                    local.deleted++;
            }
            item_record_free(rec);
            continue;
        }
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
        b->stats->unchanged += local.unchanged;
        b->stats->added += local.added;
        b->stats->edited += local.edited;
        b->stats->deleted += local.deleted;
        b->stats->renamed += local.renamed;
    }
    return rc;
}

static int
cmp_fentry(const void *a, const void *b)
{
    return strcmp(((const struct fentry *)a)->name,
                  ((const struct fentry *)b)->name);
}

/* One pass over the live items of a class in a read snapshot, against the
 * sorted file list: unchanged files are settled on the stat cache alone,
 * without a write transaction; files whose stat differs and files with no
 * live item go to w->changed; live items without a file go to *gone. */
static int
classify(struct replica *r, int cls, struct flist *files, struct scan_work *w,
         struct glist *gone, uint64_t *live_count, uint64_t *unchanged)
{
    struct store_txn *txn;
    struct store_cursor *cur = NULL;
    uint8_t prefix[SUB_BYTES + 1];
    const uint8_t *k, *v;
    size_t kl, vl;
    int rc;

    *live_count = *unchanged = 0;
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
        Simsync__ItemRecord *rec =
            pb_unpack(&simsync__item_record__descriptor, vl, v, &rc);
        if (rec == NULL) {
            break;
        }
        if (live(rec) && rec->name != NULL) {
            struct fentry key = {.name = rec->name}, *f = NULL;
            (*live_count)++;
            if (files->n > 0)
                f = bsearch(&key, files->v, files->n, sizeof(*f), cmp_fentry);
            if (f != NULL) {
                f->known = 1;
                if (folder_stat_matches(rec, &f->st))
                    (*unchanged)++;
                else
                    rc = add_name(&w->changed, &w->nchanged, &w->capchanged,
                                  f->name);
            } else if (rec->remote) {
                (*unchanged)++; /* lazy: no file is what it should be */
            } else {
                rc = grow((void **)&gone->v, &gone->cap, gone->n,
                          sizeof(*gone->v));
                if (rc == SIMSYNC_OK) {
                    struct gone *g = &gone->v[gone->n];
                    g->name = strdup(rec->name);
                    g->ino = rec->st_ino;
                    g->size = rec->st_size;
                    g->mtime_ns = rec->st_mtime_ns;
                    g->chunked = rec->versions[0]->n_chunks > 0;
                    g->moved = 0;
                    if (g->name == NULL)
                        rc = SIMSYNC_ENOMEM;
                    else
                        gone->n++;
                }
            }
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

static int
cmp_gone_ino(const void *a, const void *b)
{
    const struct gone *x = a, *y = b;
    return x->ino < y->ino ? -1 : x->ino > y->ino;
}

/* Pair new files with gone items of the same inode, size and mtime: a
 * rename (or a move between subfolders). Only chunked items are paired:
 * a small item's content is re-read anyway, it costs nothing. */
static int
find_moves(struct flist *files, struct glist *gone, struct scan_work *w)
{
    int rc = SIMSYNC_OK;

    if (gone->n == 0)
        return SIMSYNC_OK;
    qsort(gone->v, gone->n, sizeof(*gone->v), cmp_gone_ino);
    for (size_t i = 0; rc == SIMSYNC_OK && i < files->n; i++) {
        struct fentry *f = &files->v[i];
        uint64_t ino = (uint64_t)f->st.st_ino, size = (uint64_t)f->st.st_size;
        int64_t mtime_ns =
            (int64_t)f->st.st_mtim.tv_sec * 1000000000 + f->st.st_mtim.tv_nsec;
        struct gone key = {.ino = ino}, *g;
        if (f->known || size <= INLINE_MAX)
            continue;
        g = bsearch(&key, gone->v, gone->n, sizeof(*g), cmp_gone_ino);
        /* Walk back to the first entry of this inode. */
        while (g != NULL && g > gone->v && (g - 1)->ino == ino)
            g--;
        for (; g != NULL && g < gone->v + gone->n && g->ino == ino; g++) {
            if (g->moved || !g->chunked || g->size != size ||
                g->mtime_ns != mtime_ns)
                continue;
            g->moved = 1;
            f->known = 1; /* not a new file any more */
            rc = add_name(&w->moves, &w->nmoves, &w->capmoves, f->name);
            if (rc == SIMSYNC_OK)
                rc = add_name(&w->moves, &w->nmoves, &w->capmoves, g->name);
            break;
        }
    }
    return rc;
}

static int
run_batches(struct replica *r, int cls, enum batch_kind kind, char **names,
            size_t n, int moved, struct scan_stats *stats)
{
    size_t per = kind == BATCH_MOVES ? 2 * SCAN_BATCH : SCAN_BATCH;
    int rc = SIMSYNC_OK;

    for (size_t i = 0; rc == SIMSYNC_OK && i < n; i += per) {
        struct scan_batch b = {
            r, cls, kind, names + i, n - i < per ? n - i : per, moved, stats};
        rc = store_write(r->st, scan_batch_fn, &b);
    }
    return rc;
}

/* Scan one class folder (open as dfd, consumed). */
static int
scan_class(struct replica *r, int cls, int dfd, int allow_mass_delete,
           struct scan_stats *stats)
{
    struct flist files = {0};
    struct glist gone = {0};
    struct scan_work w = {0};
    char **del = NULL, **moved_del = NULL;
    size_t ndel = 0, nmoved = 0;
    uint64_t live_count, unchanged;
    int rc, result = SIMSYNC_OK;

    rc = walk(dfd, "", &files, 0);
    if (rc == SIMSYNC_OK && files.n > 0)
        qsort(files.v, files.n, sizeof(*files.v), cmp_fentry);
    if (rc == SIMSYNC_OK)
        rc = classify(r, cls, &files, &w, &gone, &live_count, &unchanged);
    if (rc == SIMSYNC_OK)
        rc = find_moves(&files, &gone, &w);
    for (size_t i = 0; rc == SIMSYNC_OK && i < files.n; i++)
        if (!files.v[i].known)
            rc = add_name(&w.changed, &w.nchanged, &w.capchanged,
                          files.v[i].name);
    stats->files += files.n;
    stats->unchanged += unchanged;
    /* Files first, then renames, then deletions: a rename's new item
     * travels before its old name's tombstone. */
    if (rc == SIMSYNC_OK)
        rc = run_batches(r, cls, BATCH_FILES, w.changed, w.nchanged, 0, stats);
    if (rc == SIMSYNC_OK)
        rc = run_batches(r, cls, BATCH_MOVES, w.moves, w.nmoves, 0, stats);
    if (rc == SIMSYNC_OK && gone.n > 0) {
        del = malloc(gone.n * sizeof(*del));
        moved_del = malloc(gone.n * sizeof(*moved_del));
        if (del == NULL || moved_del == NULL)
            rc = SIMSYNC_ENOMEM;
        for (size_t i = 0; rc == SIMSYNC_OK && i < gone.n; i++) {
            if (gone.v[i].moved)
                moved_del[nmoved++] = gone.v[i].name;
            else
                del[ndel++] = gone.v[i].name;
        }
    }
    if (rc == SIMSYNC_OK)
        rc = run_batches(r, cls, BATCH_TOMBSTONES, moved_del, nmoved, 1, stats);
    /* The mass-delete guard counts deletions, not renames. A folder left
     * with no file at all deletes nothing without a confirmation once it
     * held two items or more, however few: an emptied folder (storage not
     * mounted, a tool that cleared it) looks the same as one the user
     * emptied. Deleting the one last item of a class stays a plain edit. */
    if (rc == SIMSYNC_OK && ndel > 0 && !allow_mass_delete &&
        (ndel > MASS_DELETE_MAX || (files.n == 0 && ndel >= 2) ||
         (live_count > 2 && ndel * 2 > live_count))) {
        stats->guarded += ndel;
        result = SIMSYNC_EMASSDEL;
    } else if (rc == SIMSYNC_OK) {
        rc = run_batches(r, cls, BATCH_TOMBSTONES, del, ndel, 0, stats);
    }
    free(del);
    free(moved_del);
    flist_free(&files);
    glist_free(&gone);
    work_free(&w);
    return rc != SIMSYNC_OK ? rc : result;
}

/* Live items of a class (for a missing folder). */
static int
count_live(struct replica *r, int cls, uint64_t *live_count)
{
    struct flist none = {0};
    struct scan_work w = {0};
    struct glist gone = {0};
    uint64_t unchanged;
    int rc = classify(r, cls, &none, &w, &gone, live_count, &unchanged);

    glist_free(&gone);
    work_free(&w);
    return rc;
}

int
folder_scan(struct replica *r, uint32_t classes, int allow_mass_delete,
            struct scan_stats *stats)
{
    int result = SIMSYNC_OK;

    memset(stats, 0, sizeof(*stats));
    for (int cls = 0; cls < CLS_COUNT; cls++) {
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
            rc = count_live(r, cls, &live_count);
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
        rc = scan_class(r, cls, dfd, allow_mass_delete, stats);
        if (rc == SIMSYNC_EMASSDEL)
            result = rc;
        else if (rc != SIMSYNC_OK)
            return rc;
    }
    return result;
}
