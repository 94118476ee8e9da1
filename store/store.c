/* store.c -- LMDB behind store.h. See store.h for the contract.
 *
 * Map growth: LMDB can change the map size only while this process has no
 * transaction open, so every transaction holds the read side of a
 * writer-preferring rwlock and store_grow takes the write side. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <lmdb.h>

#include "crypt.h"
#include "store.h"

#define DEFAULT_MAP (64u << 20)
#define GROW_RETRIES 16
/* Below this much free space, a failed write is taken for a full disk. */
#define DISK_FULL_BYTES (1u << 20)

static const char *const db_names[STORE_NDB] = {
    "items",    "journal", "knowledge", "chunks",    "stage",
    "registry", "subs",    "tombs",     "conflicts", "meta", "gens",
    "sched",    "events",  "jobs",      "kiosk",
};

struct store {
    MDB_env *env;
    MDB_dbi dbi[STORE_NDB];
    pthread_rwlock_t grow_lock; /* read: a txn is open; write: resizing */
    size_t map_size;
    uint8_t epoch[16];
};

struct store_txn {
    struct store *st;
    MDB_txn *txn;
    int failed; /* a put hit MAP_FULL: only abort is useful now */
};

struct store_cursor {
    MDB_cursor *cur;
};

static atomic_long fault_countdown;

void
store_fault_fail_nth(long n)
{
    atomic_store(&fault_countdown, n);
}

long
store_fault_pending(void)
{
    return atomic_load(&fault_countdown);
}

static int
fault_hit(void)
{
    long n = atomic_load(&fault_countdown);
    while (n > 0) {
        if (atomic_compare_exchange_weak(&fault_countdown, &n, n - 1))
            return n == 1;
    }
    return 0;
}

static int
map_err(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return SIMSYNC_OK;
    case MDB_NOTFOUND:
        return SIMSYNC_ENOTFOUND;
    case MDB_MAP_FULL:
        return SIMSYNC_ENOSPC;
    case ENOSPC:
        return SIMSYNC_ENOSPC;
    case ENOMEM:
        return SIMSYNC_ENOMEM;
    case MDB_BAD_VALSIZE:
        return SIMSYNC_EINVAL;
    case MDB_VERSION_MISMATCH:
    case MDB_INVALID:
        return SIMSYNC_ESTATE;
    default:
        return SIMSYNC_EIO;
    }
}

static int
init_meta(struct store *st)
{
    MDB_txn *txn;
    MDB_val k, v;
    uint8_t schema[4] = {0, 0, 0, STORE_SCHEMA_VERSION};
    int rc;

    rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc != 0)
        return map_err(rc);
    for (int i = 0; i < STORE_NDB; i++) {
        rc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, &st->dbi[i]);
        if (rc != 0)
            goto fail;
    }
    k.mv_data = "schema";
    k.mv_size = 6;
    rc = mdb_get(txn, st->dbi[STORE_META], &k, &v);
    if (rc == MDB_NOTFOUND) {
        v.mv_data = schema;
        v.mv_size = sizeof(schema);
        rc = mdb_put(txn, st->dbi[STORE_META], &k, &v, 0);
        if (rc != 0)
            goto fail;
        crypt_random(st->epoch, sizeof(st->epoch));
        k.mv_data = "epoch";
        k.mv_size = 5;
        v.mv_data = st->epoch;
        v.mv_size = sizeof(st->epoch);
        rc = mdb_put(txn, st->dbi[STORE_META], &k, &v, 0);
        if (rc != 0)
            goto fail;
    } else if (rc != 0) {
        goto fail;
    } else {
        const uint8_t *s = v.mv_data;
        uint32_t ver;
        if (v.mv_size != 4) {
            mdb_txn_abort(txn);
            return SIMSYNC_EPROTO;
        }
        ver = (uint32_t)s[0] << 24 | (uint32_t)s[1] << 16 |
              (uint32_t)s[2] << 8 | s[3];
        if (ver > STORE_SCHEMA_VERSION) {
            mdb_txn_abort(txn);
            return SIMSYNC_ESTATE;
        }
        k.mv_data = "epoch";
        k.mv_size = 5;
        rc = mdb_get(txn, st->dbi[STORE_META], &k, &v);
        if (rc != 0 || v.mv_size != sizeof(st->epoch)) {
            mdb_txn_abort(txn);
            return rc != 0 ? map_err(rc) : SIMSYNC_EPROTO;
        }
        memcpy(st->epoch, v.mv_data, sizeof(st->epoch));
    }
    return map_err(mdb_txn_commit(txn));
fail:
    mdb_txn_abort(txn);
    return map_err(rc);
}

int
store_open(const char *dir, size_t map_size, struct store **out)
{
    struct store *st;
    pthread_rwlockattr_t attr;
    int rc;

    if (dir == NULL || out == NULL)
        return SIMSYNC_EINVAL;
    *out = NULL;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return SIMSYNC_EIO;
    st = calloc(1, sizeof(*st));
    if (st == NULL)
        return SIMSYNC_ENOMEM;
    st->map_size = map_size ? map_size : DEFAULT_MAP;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&st->grow_lock, &attr);
    pthread_rwlockattr_destroy(&attr);

    rc = mdb_env_create(&st->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(st->env, STORE_NDB);
    if (rc == 0)
        rc = mdb_env_set_maxreaders(st->env, 1024);
    if (rc == 0)
        rc = mdb_env_set_mapsize(st->env, st->map_size);
    if (rc == 0)
        rc = mdb_env_open(st->env, dir, MDB_NOTLS, 0600);
    if (rc != 0) {
        int err = map_err(rc);
        store_close(st);
        return err == SIMSYNC_ENOTFOUND ? SIMSYNC_EIO : err;
    }
    {
        MDB_envinfo info;
        if (mdb_env_info(st->env, &info) == 0 && info.me_mapsize > st->map_size)
            st->map_size = info.me_mapsize;
    }
    rc = init_meta(st);
    if (rc != SIMSYNC_OK) {
        store_close(st);
        return rc;
    }
    *out = st;
    return SIMSYNC_OK;
}

void
store_close(struct store *st)
{
    if (st == NULL)
        return;
    if (st->env != NULL)
        mdb_env_close(st->env);
    pthread_rwlock_destroy(&st->grow_lock);
    free(st);
}

void
store_epoch(const struct store *st, uint8_t epoch[16])
{
    memcpy(epoch, st->epoch, 16);
}

size_t
store_map_size(struct store *st)
{
    size_t s;
    pthread_rwlock_rdlock(&st->grow_lock);
    s = st->map_size;
    pthread_rwlock_unlock(&st->grow_lock);
    return s;
}

int
store_grow(struct store *st)
{
    int rc;

    pthread_rwlock_wrlock(&st->grow_lock);
    rc = mdb_env_set_mapsize(st->env, st->map_size * 2);
    if (rc == 0)
        st->map_size *= 2;
    pthread_rwlock_unlock(&st->grow_lock);
    return map_err(rc);
}

/* Another process grew the map: adopt its size (no txn may be active). */
static int
adopt_map_size(struct store *st)
{
    MDB_envinfo info;
    int rc;

    pthread_rwlock_wrlock(&st->grow_lock);
    rc = mdb_env_set_mapsize(st->env, 0);
    if (rc == 0 && mdb_env_info(st->env, &info) == 0)
        st->map_size = info.me_mapsize;
    pthread_rwlock_unlock(&st->grow_lock);
    return map_err(rc);
}

int
store_txn_begin(struct store *st, int readonly, struct store_txn **out)
{
    struct store_txn *t;
    int rc;

    if (st == NULL || out == NULL)
        return SIMSYNC_EINVAL;
    *out = NULL;
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return SIMSYNC_ENOMEM;
    t->st = st;
    for (int attempt = 0;; attempt++) {
        pthread_rwlock_rdlock(&st->grow_lock);
        rc = mdb_txn_begin(st->env, NULL, readonly ? MDB_RDONLY : 0, &t->txn);
        if (rc == 0)
            break;
        pthread_rwlock_unlock(&st->grow_lock);
        if (rc != MDB_MAP_RESIZED || attempt > 2) {
            free(t);
            return map_err(rc);
        }
        rc = adopt_map_size(st);
        if (rc != SIMSYNC_OK) {
            free(t);
            return rc;
        }
    }
    *out = t;
    return SIMSYNC_OK;
}

/* LMDB reports a write that stopped short as EIO, which is what a disk
 * that fills up in the middle of a commit gives: when the store's file
 * system has (almost) no room left, call it by its name. */
static int
disk_full(struct store *st)
{
    const char *path = NULL;
    struct statvfs vfs;

    if (mdb_env_get_path(st->env, &path) != 0 || path == NULL ||
        statvfs(path, &vfs) != 0)
        return 0;
    return (unsigned long long)vfs.f_bavail * vfs.f_frsize < DISK_FULL_BYTES;
}

/* Commit as store_txn_commit; *map_full is set when the map (not the
 * disk) was what ran out, the one case that growing the map cures. */
static int
txn_commit(struct store_txn *t, int *map_full)
{
    int rc;

    *map_full = 0;
    if (t == NULL)
        return SIMSYNC_EINVAL;
    if (t->failed) {
        mdb_txn_abort(t->txn);
        rc = MDB_MAP_FULL;
    } else if (fault_hit()) {
        mdb_txn_abort(t->txn);
        rc = EIO;
    } else {
        rc = mdb_txn_commit(t->txn);
    }
    pthread_rwlock_unlock(&t->st->grow_lock);
    *map_full = rc == MDB_MAP_FULL;
    if (rc == EIO && disk_full(t->st))
        rc = ENOSPC;
    free(t);
    return map_err(rc);
}

int
store_txn_commit(struct store_txn *t)
{
    int map_full;

    return txn_commit(t, &map_full);
}

void
store_txn_abort(struct store_txn *t)
{
    if (t == NULL)
        return;
    mdb_txn_abort(t->txn);
    pthread_rwlock_unlock(&t->st->grow_lock);
    free(t);
}

int
store_write(struct store *st, int (*fn)(struct store_txn *, void *), void *arg)
{
    struct store_txn *t;
    int rc;

    for (int i = 0; i < GROW_RETRIES; i++) {
        int map_full;

        rc = store_txn_begin(st, 0, &t);
        if (rc != SIMSYNC_OK)
            return rc;
        rc = fn(t, arg);
        if (rc == SIMSYNC_OK) {
            rc = txn_commit(t, &map_full);
        } else {
            map_full = t->failed;
            if (t->failed)
                rc = SIMSYNC_ENOSPC;
            store_txn_abort(t);
        }
        /* A full disk (ENOSPC from a write) is not cured by a larger
         * map: it goes back to the caller at once. */
        if (!map_full)
            return rc;
        rc = store_grow(st);
        if (rc != SIMSYNC_OK)
            return rc;
    }
    return SIMSYNC_ENOSPC;
}

int
store_get(struct store_txn *t, enum store_db db, const void *key, size_t klen,
          const void **val, size_t *vlen)
{
    MDB_val k = {klen, (void *)key}, v;
    int rc;

    if ((unsigned)db >= STORE_NDB || klen == 0)
        return SIMSYNC_EINVAL;
    rc = mdb_get(t->txn, t->st->dbi[db], &k, &v);
    if (rc != 0)
        return map_err(rc);
    *val = v.mv_data;
    *vlen = v.mv_size;
    return SIMSYNC_OK;
}

int
store_put(struct store_txn *t, enum store_db db, const void *key, size_t klen,
          const void *val, size_t vlen)
{
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    int rc;

    if ((unsigned)db >= STORE_NDB || klen == 0)
        return SIMSYNC_EINVAL;
    if (t->failed)
        return SIMSYNC_ENOSPC;
    if (fault_hit())
        return SIMSYNC_EIO;
    rc = mdb_put(t->txn, t->st->dbi[db], &k, &v, 0);
    if (rc == MDB_MAP_FULL)
        t->failed = 1;
    return map_err(rc);
}

int
store_del(struct store_txn *t, enum store_db db, const void *key, size_t klen)
{
    MDB_val k = {klen, (void *)key};
    int rc;

    if ((unsigned)db >= STORE_NDB || klen == 0)
        return SIMSYNC_EINVAL;
    rc = mdb_del(t->txn, t->st->dbi[db], &k, NULL);
    if (rc == MDB_MAP_FULL)
        t->failed = 1;
    return map_err(rc);
}

int
store_cursor_open(struct store_txn *t, enum store_db db,
                  struct store_cursor **out)
{
    struct store_cursor *c;
    int rc;

    if (out == NULL)
        return SIMSYNC_EINVAL;
    *out = NULL; /* a caller may close it on any error path */
    if ((unsigned)db >= STORE_NDB)
        return SIMSYNC_EINVAL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return SIMSYNC_ENOMEM;
    rc = mdb_cursor_open(t->txn, t->st->dbi[db], &c->cur);
    if (rc != 0) {
        free(c);
        return map_err(rc);
    }
    *out = c;
    return SIMSYNC_OK;
}

static int
cursor_get(struct store_cursor *c, MDB_val *k, MDB_cursor_op op,
           const void **kp, size_t *kl, const void **vp, size_t *vl)
{
    MDB_val v;
    int rc = mdb_cursor_get(c->cur, k, &v, op);

    if (rc != 0)
        return map_err(rc);
    if (kp != NULL)
        *kp = k->mv_data;
    if (kl != NULL)
        *kl = k->mv_size;
    if (vp != NULL)
        *vp = v.mv_data;
    if (vl != NULL)
        *vl = v.mv_size;
    return SIMSYNC_OK;
}

int
store_cursor_seek(struct store_cursor *c, const void *key, size_t klen,
                  const void **kp, size_t *kl, const void **vp, size_t *vl)
{
    MDB_val k = {klen, (void *)key};

    if (klen == 0)
        return cursor_get(c, &k, MDB_FIRST, kp, kl, vp, vl);
    return cursor_get(c, &k, MDB_SET_RANGE, kp, kl, vp, vl);
}

int
store_cursor_next(struct store_cursor *c, const void **kp, size_t *kl,
                  const void **vp, size_t *vl)
{
    MDB_val k;

    return cursor_get(c, &k, MDB_NEXT, kp, kl, vp, vl);
}

int
store_cursor_del(struct store_cursor *c)
{
    return map_err(mdb_cursor_del(c->cur, 0));
}

void
store_cursor_close(struct store_cursor *c)
{
    if (c == NULL)
        return;
    mdb_cursor_close(c->cur);
    free(c);
}

int
store_scan(struct store_txn *txn, enum store_db db, const void *seek,
           size_t seeklen, size_t plen, store_scan_fn fn, void *arg)
{
    struct store_cursor *cur;
    const void *k, *v;
    size_t kl, vl;
    int rc = store_cursor_open(txn, db, &cur);

    if (rc != SIMSYNC_OK)
        return rc;
    rc = store_cursor_seek(cur, seek, seeklen, &k, &kl, &v, &vl);
    while (rc == SIMSYNC_OK && kl >= plen && memcmp(k, seek, plen) == 0) {
        rc = fn(k, kl, v, vl, arg);
        if (rc != SIMSYNC_OK)
            break;
        rc = store_cursor_next(cur, &k, &kl, &v, &vl);
    }
    store_cursor_close(cur);
    return rc == SIMSYNC_ENOTFOUND ? SIMSYNC_OK : rc;
}
