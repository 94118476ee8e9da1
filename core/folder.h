/* folder.h -- the class folders of a trusted node: safe file access under
 * <data>/<class>/, turning a file into a new local version, and scanning a
 * class for adds, edits, deletes and renames.
 *
 * Every path is opened component by component with O_NOFOLLOW from the
 * class folder down, so nothing is ever read or written through a symlink
 * or outside the class folder. */
#ifndef SIMSYNC_FOLDER_H
#define SIMSYNC_FOLDER_H

#include <sys/stat.h>
#include "replica.h"

#define FOLDER_TMP_PREFIX ".simsync-tmp-"

/* Open the directory that holds `name` in class `cls`, creating missing
 * directories when `create`. *base points into name (its last component).
 * Returns an fd or a negative SIMSYNC_E* code. */
int folder_open_parent(const struct replica *r, int cls, const char *name,
                       int create, const char **base);

/* Atomically replace `name` with the content of the open temp file
 * `tmpfd` named `tmpname` in `dirfd`: fsync (when `durable`; otherwise the
 * caller syncs the filesystem before recording the file), rename, fill
 * *st. */
int folder_commit_tmp(int dirfd, int tmpfd, const char *tmpname,
                      const char *base, int durable, struct stat *st);
/* Make a temp file next to `base` in dirfd; returns fd, writes its name. */
int folder_make_tmp(int dirfd, char *tmpname, size_t len);

/* lstat `name` (no symlinks followed). SIMSYNC_ENOTFOUND if absent. */
int folder_stat(const struct replica *r, int cls, const char *name,
                struct stat *st);
/* Does the record's stat cache match `st`? */
int folder_stat_matches(const Simsync__ItemRecord *rec, const struct stat *st);
void folder_stat_fill(Simsync__ItemRecord *rec, const struct stat *st);

/* May a restore write `name` in class cls? A safe relative name
 * (replica_name_ok), no symlink among the folders that exist on the way,
 * and nothing but a regular file (or nothing) at the name itself. */
int folder_target_ok(const struct replica *r, int cls, const char *name);
/* folder_target_ok and folder_stat in one walk: SIMSYNC_OK (a regular
 * file is there; *st gets its lstat), SIMSYNC_ENOTFOUND (nothing there:
 * a restore may make it, and the missing folders on the way), or
 * SIMSYNC_EREFUSED (an unsafe name, a symlink on the way or at the name,
 * something else than a regular file, or the way cannot be opened). */
int folder_target_stat(const struct replica *r, int cls, const char *name,
                       struct stat *st);

/* Copy the file `from` over `to` (both in class cls), atomically. */
int folder_copy(const struct replica *r, int cls, const char *from,
                const char *to);

/* Remove `name` (and nothing else); absent is fine. */
int folder_remove(const struct replica *r, int cls, const char *name);

/* Record the current content of file `name` as a new local version of its
 * item: vv = base + a fresh dot of this replica, stamped now by this
 * replica. With `clock` instead, the version takes clock's vv, dots, hlc
 * and author and no new change is made (a conflict copy keeps the loser's
 * clock, so every node that resolves the conflict makes the same copy).
 * A missing file records a tombstone. `old` is the item's previous record
 * (may be NULL). */
int folder_record(struct replica *r, struct store_txn *txn, int cls,
                  const char *name, const struct vv *base,
                  const Simsync__Version *clock,
                  const Simsync__ItemRecord *old);

/* folder_record for the file `name` just written from version `v` and
 * checked against its content hash; *st is its stat, taken from the open
 * file after the rename (borrowed for the call). Nothing is read: a
 * chunked version's chunk list and hash are kept, and so is an inline
 * body when `body_ok` says it was sealed for this name's item id (else
 * the file is read and its body sealed again). */
int folder_record_written(struct replica *r, struct store_txn *txn, int cls,
                          const char *name, const struct vv *base,
                          const Simsync__ItemRecord *old,
                          const Simsync__Version *v, int body_ok,
                          const struct stat *st);

/* Bring the record of `name` up to date with its file: nothing when the
 * stat cache matches, a stat refresh when only metadata changed (same
 * content hash), else a new local version (or tombstone). *changed tells
 * which. `rec` may be NULL (new file). */
int folder_refresh(struct replica *r, struct store_txn *txn, int cls,
                   const char *name, const uint8_t id[ITEM_ID_BYTES],
                   Simsync__ItemRecord *rec, int *changed);

struct scan_stats {
    uint64_t files;     /* files looked at */
    uint64_t unchanged; /* skipped on the stat cache alone */
    uint64_t added, edited, deleted, renamed;
    uint64_t guarded; /* deletions withheld by the mass-delete guard */
};

/* Scan class folders in `classes` and record local changes. A missing
 * class folder never emits deletions. A scan that would delete more than
 * half of a class (of more than 2 items) or more than 1000 items stops
 * with SIMSYNC_EMASSDEL unless `allow_mass_delete`. */
int folder_scan(struct replica *r, uint32_t classes, int allow_mass_delete,
                struct scan_stats *stats);

#endif /* SIMSYNC_FOLDER_H */
