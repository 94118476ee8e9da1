/* node_restore.c -- the terminal's side of reading generations back:
 * fetching and checking a manifest (digest, key, link to the previous
 * generation), listing a generation's items, and restoring them onto this
 * terminal, or leaving the restore as a job for another one.
 *
 * A restore decides here, item by item, what goes where (on-conflict
 * modes, refused names, unchanged items); restore.c then fetches the
 * chunks, checks each one against its id, writes it straight into its
 * item's temporary file, renames the file over the name once the whole
 * content matched its hash, and records the items as new local changes,
 * so they sync like edits. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blob.h"
#include "crypt.h"
#include "folder.h"
#include "node.h"
#include "pbcheck.h"
#include "restore.h"
#include "transport.h"

/* ------------------------------------------------------------ manifest */

/* The sealed manifest as it arrives, at most `cap` bytes. */
struct manifest_acc {
    uint8_t *buf;
    size_t len, cap;
    struct crypt_hash_state hs;
};

static int
manifest_piece(const Simsync__Envelope *in, void *arg)
{
    struct manifest_acc *a = arg;
    const ProtobufCBinaryData *b = &in->piece->blob;

    if (a->len + b->len > a->cap)
        return SIMSYNC_EPROTO;
    if (a->buf == NULL && (a->buf = malloc(a->cap ? a->cap : 1)) == NULL)
        return SIMSYNC_ENOMEM;
    memcpy(a->buf + a->len, b->data, b->len);
    a->len += b->len;
    return crypt_hash_update(&a->hs, b->data, b->len);
}

/* Fetch, check and open the manifest of `gen`: the listing must pass the
 * rollback check, the pieces must hash to the listed digest, the blob must
 * open under our key with this generation number, and its link to the
 * previous generation must match that one's digest when it is listed. */
static int
open_manifest(struct simsync_node *n, struct replica *r, struct link *l,
              uint64_t gen, Simsync__Manifest **out)
{
    Simsync__Envelope *list = NULL;
    Simsync__FetchRequest f = SIMSYNC__FETCH_REQUEST__INIT;
    const Simsync__GenerationInfo *info = NULL, *prev = NULL;
    struct manifest_acc acc = {0};
    uint8_t ad[NODE_MANIFEST_AD_BYTES], digest[32];
    uint8_t *plain = NULL;
    size_t plen = 0;
    int rc;

    *out = NULL;
    rc = node_gen_list(n, &list);
    if (rc == SIMSYNC_OK)
        rc = node_gen_check(n, list->generations);
    if (rc != SIMSYNC_OK)
        goto out;
    for (size_t i = 0; i < list->generations->n_gens; i++) {
        if (list->generations->gens[i]->gen == gen)
            info = list->generations->gens[i];
        if (gen > 1 && list->generations->gens[i]->gen == gen - 1)
            prev = list->generations->gens[i];
    }
    if (info == NULL || info->forgotten) {
        rc = node_fail(n, SIMSYNC_ENOTFOUND,
                       "the hub has no generation %llu%s; see 'simsync "
                       "backup list'",
                       (unsigned long long)gen,
                       info ? " any more (it was forgotten)" : "");
        goto out;
    }
    rc = link_open(n, n->hub_addr, n->hub_pk, NULL, l);
    if (rc == SIMSYNC_OK) {
        uint32_t mask;
        rc = node_hello(n, l, SIMSYNC__OP__OP_FETCH, n->classes, &mask);
    }
    if (rc != SIMSYNC_OK)
        goto out;
    f.gen = gen;
    f.manifest = 1;
    acc.cap = info->manifest_bytes;
    crypt_hash_init(&acc.hs, 32, NULL, 0);
    rc = restore_fetch_run(l, &f, SIMSYNC__ENVELOPE__MSG_PIECE, manifest_piece,
                           &acc);
    if (rc != SIMSYNC_OK)
        goto out;
    crypt_hash_final(&acc.hs, digest, sizeof(digest));
    node_manifest_ad(ad, gen);
    if (acc.len != info->manifest_bytes ||
        !crypt_equal(digest, info->digest.data, 32)) {
        rc = node_fail(n, SIMSYNC_ECRYPTO,
                       "generation %llu as served by the hub does not match "
                       "its digest: the hub's copy was changed",
                       (unsigned long long)gen);
        goto out;
    }
    rc = blob_decode(r->keys.seal, ad, sizeof(ad), acc.buf, acc.len,
                     NODE_MANIFEST_PLAIN_MAX, &plain, &plen);
    if (rc != SIMSYNC_OK) {
        rc = node_fail(n, SIMSYNC_ECRYPTO,
                       "generation %llu does not open with this "
                       "subscriber's key as generation %llu: it is "
                       "foreign, renumbered or damaged",
                       (unsigned long long)gen, (unsigned long long)gen);
        goto out;
    }
    *out = pb_unpack(&simsync__manifest__descriptor, plen, plain, &rc);
    if (*out == NULL && rc == SIMSYNC_ENOMEM) {
        rc = node_fail(n, rc, "out of memory reading generation %llu",
                       (unsigned long long)gen);
        goto out;
    }
    if (*out == NULL || (*out)->gen != gen) {
        rc = node_fail(n, SIMSYNC_ECRYPTO, "generation %llu is malformed",
                       (unsigned long long)gen);
        goto out;
    }
    if (prev != NULL &&
        ((*out)->prev_digest.len != 32 || prev->digest.len != 32 ||
         !crypt_equal((*out)->prev_digest.data, prev->digest.data, 32))) {
        rc = node_fail(n, SIMSYNC_ECRYPTO,
                       "generation %llu does not follow generation %llu "
                       "as the hub lists it: the history was changed",
                       (unsigned long long)gen, (unsigned long long)gen - 1);
        goto out;
    }
out:
    if (rc != SIMSYNC_OK && *out != NULL) {
        simsync__manifest__free_unpacked(*out, NULL);
        *out = NULL;
    }
    if (list)
        simsync__envelope__free_unpacked(list, NULL);
    free(acc.buf);
    free(plain);
    return rc;
}

int
simsync_backup_show(struct simsync_node *n, uint64_t gen, simsync_item_fn fn,
                    void *arg)
{
    Simsync__Manifest *m = NULL;
    struct replica r;
    struct link l = {0};
    int rc;

    n->err[0] = '\0';
    if (!n->bound)
        return node_fail(n, SIMSYNC_ESTATE, "this terminal is not registered");
    rc = replica_setup(n, &r);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = open_manifest(n, &r, &l, gen, &m);
    link_close(&l);
    for (size_t i = 0; rc == SIMSYNC_OK && i < m->n_items; i++) {
        const Simsync__Change *c = m->items[i];
        Simsync__ItemMeta *meta = NULL;
        if (c->cls >= CLS_COUNT || c->version == NULL ||
            c->item_id.len != ITEM_ID_BYTES ||
            replica_open_meta(&r, (int)c->cls, c->item_id.data, c->version,
                              &meta) != SIMSYNC_OK) {
            rc = node_fail(n, SIMSYNC_ECRYPTO,
                           "generation %llu holds a damaged item",
                           (unsigned long long)gen);
            break;
        }
        fn(arg, "item", class_name((int)c->cls), meta->name, c->version->size);
        simsync__item_meta__free_unpacked(meta, NULL);
    }
    if (m)
        simsync__manifest__free_unpacked(m, NULL);
    keys_wipe(&r.keys);
    return rc;
}

/* ------------------------------------------------------------ restore */

/* Does "class/name" match one of the --item filters? */
static int
item_selected(const struct simsync_restore_opts *o, int cls, const char *name)
{
    const char *cn = class_name(cls);
    size_t cl = strlen(cn);

    if (o->nitems == 0)
        return 1;
    for (size_t i = 0; i < o->nitems; i++)
        if (strncmp(o->items[i], cn, cl) == 0 && o->items[i][cl] == '/' &&
            strcmp(o->items[i] + cl + 1, name) == 0)
            return 1;
    return 0;
}

/* Name for a restored copy kept next to a differing local item. */
static void
restored_name(char *out, size_t len, const char *name, uint64_t gen)
{
    const char *slash = strrchr(name, '/');
    const char *dot = strrchr(slash ? slash + 1 : name, '.');
    size_t stem = dot && dot != (slash ? slash + 1 : name)
                      ? (size_t)(dot - name)
                      : strlen(name);

    snprintf(out, len, "%.*s.restored-%03llu%s", (int)stem, name,
             (unsigned long long)gen, dot && stem < strlen(name) ? dot : "");
}

int
simsync_restore(struct simsync_node *n, const struct simsync_restore_opts *o,
                simsync_item_fn fn, void *arg,
                struct simsync_restore_report *rep)
{
    Simsync__Manifest *m = NULL;
    struct replica r;
    struct link l = {0};
    struct restore *rs = NULL;
    struct restore_counts done = {0};
    uint64_t unasked = 0;
    int rc;

    memset(rep, 0, sizeof(*rep));
    n->err[0] = '\0';
    if (!n->bound)
        return node_fail(n, SIMSYNC_ESTATE, "this terminal is not registered");
    rc = check_sim_binding(n);
    if (rc == SIMSYNC_OK && o->to_terminal != NULL &&
        strcmp(o->to_terminal, n->terminal_id) != 0)
        return node_job_leave(n, o, &rep->job);
    if (rc == SIMSYNC_OK)
        rc = replica_setup(n, &r);
    if (rc != SIMSYNC_OK)
        return rc;
    r.defer_sync = 1;
    rc = open_manifest(n, &r, &l, o->gen, &m);
    if (rc == SIMSYNC_OK && !o->dry_run)
        rc = restore_new(&r, &l, &rs);
    for (size_t i = 0; rc == SIMSYNC_OK && i < m->n_items; i++) {
        const Simsync__Change *c = m->items[i];
        Simsync__ItemMeta *meta = NULL;
        Simsync__ItemRecord *local = NULL;
        struct store_txn *txn;
        enum simsync_on_conflict mode = o->on_conflict;
        char target[PATH_MAX];
        const char *action;
        struct stat st;
        int cls = (int)c->cls, differs = 0, exists = 0, trc;

        if (c->cls >= CLS_COUNT || c->version == NULL ||
            c->item_id.len != ITEM_ID_BYTES || c->version->deleted ||
            replica_open_meta(&r, cls, c->item_id.data, c->version, &meta) !=
                SIMSYNC_OK) {
            rc = node_fail(n, SIMSYNC_ECRYPTO,
                           "generation %llu holds a damaged item",
                           (unsigned long long)o->gen);
            break;
        }
        if ((o->classes != 0 && !(o->classes & (1u << cls))) ||
            !item_selected(o, cls, meta->name)) {
            simsync__item_meta__free_unpacked(meta, NULL);
            continue;
        }
        snprintf(target, sizeof(target), "%s", meta->name);
        trc = folder_target_stat(&r, cls, meta->name, &st);
        if (trc != SIMSYNC_OK && trc != SIMSYNC_ENOTFOUND) {
            rep->refused++;
            fn(arg, "refused", class_name(cls), meta->name, c->version->size);
            simsync__item_meta__free_unpacked(meta, NULL);
            continue;
        }
        exists = trc == SIMSYNC_OK;
        /* What is here now: the file as it is, and its record. */
        rc = store_txn_begin(r.st, 1, &txn);
        if (rc == SIMSYNC_OK) {
            uint8_t id[ITEM_ID_BYTES];
            keys_item_id(&r.keys, cls, meta->name, id);
            if (item_get(txn, r.sub, cls, id, &local) != SIMSYNC_OK)
                local = NULL;
            store_txn_abort(txn);
            if (exists) {
                /* Compare by content: the local file as it is now. */
                differs = 1;
                if (local != NULL && local->n_versions == 1 &&
                    !local->versions[0]->deleted &&
                    folder_stat_matches(local, &st) &&
                    local->versions[0]->hash_kind ==
                        c->version->hash_kind &&
                    local->versions[0]->content_hash.len == 32 &&
                    c->version->content_hash.len == 32 &&
                    memcmp(local->versions[0]->content_hash.data,
                           c->version->content_hash.data, 32) == 0)
                    differs = 0;
            }
        }
        item_record_free(local);
        if (rc != SIMSYNC_OK) {
            simsync__item_meta__free_unpacked(meta, NULL);
            break;
        }
        if (exists && !differs) {
            rep->unchanged++;
            fn(arg, "unchanged", class_name(cls), meta->name, c->version->size);
            simsync__item_meta__free_unpacked(meta, NULL);
            continue;
        }
        action = "restore";
        if (exists) {
            if (mode == SIMSYNC_ON_CONFLICT_ASK && !o->dry_run) {
                if (o->ask != NULL) {
                    mode = o->ask(o->ask_arg, class_name(cls), meta->name);
                } else {
                    /* Nobody to ask: leave it, and say so at the end. */
                    unasked++;
                    mode = SIMSYNC_ON_CONFLICT_SKIP;
                }
            }
            if (mode == SIMSYNC_ON_CONFLICT_SKIP) {
                rep->skipped++;
                fn(arg, "skip", class_name(cls), meta->name, c->version->size);
                simsync__item_meta__free_unpacked(meta, NULL);
                continue;
            }
            if (mode == SIMSYNC_ON_CONFLICT_KEEP_BOTH) {
                restored_name(target, sizeof(target), meta->name, o->gen);
                action = "keep-both";
            } else if (mode == SIMSYNC_ON_CONFLICT_OVERWRITE) {
                action = "overwrite";
            } else {
                action = "ask";
            }
        }
        fn(arg, action, class_name(cls), target, c->version->size);
        if (!o->dry_run)
            rc = restore_add(rs, cls, c->item_id.data, target, c->version,
                             !exists ? RESTORE_NEW
                             : mode == SIMSYNC_ON_CONFLICT_KEEP_BOTH
                                 ? RESTORE_KEEP_BOTH
                                 : RESTORE_OVERWRITE);
        simsync__item_meta__free_unpacked(meta, NULL);
    }
    if (rs != NULL) {
        /* The items are written once every one is decided, and only if
         * deciding went well; what was done before a failure counts. */
        int frc = restore_finish(rs, rc == SIMSYNC_OK, &done);
        if (rc == SIMSYNC_OK)
            rc = frc;
        rep->restored = done.restored;
        rep->overwritten = done.overwritten;
        rep->kept_both = done.kept_both;
        rep->chunks_fetched = done.chunks_fetched;
        if ((rc == SIMSYNC_ECRYPTO || rc == SIMSYNC_EPROTO) &&
            n->err[0] == '\0')
            node_fail(n, rc,
                      "%s from generation %llu failed its integrity check (a "
                      "chunk on the hub was changed); nothing was written "
                      "for it",
                      restore_failed_item(rs) ? restore_failed_item(rs)
                                              : "an item",
                      (unsigned long long)o->gen);
        restore_free(rs);
    }
    link_close(&l);
    if (m)
        simsync__manifest__free_unpacked(m, NULL);
    keys_wipe(&r.keys);
    if (rc == SIMSYNC_OK && unasked > 0)
        rc = node_fail(n, SIMSYNC_EREFUSED,
                       "%llu items exist here and differ from generation "
                       "%llu and there was no terminal to ask; they were "
                       "left as they are: rerun with --on-conflict "
                       "overwrite, keep-both or skip",
                       (unsigned long long)unasked, (unsigned long long)o->gen);
    if (rc == SIMSYNC_OK && rep->refused > 0)
        rc = node_fail(n, SIMSYNC_EREFUSED,
                       "%llu items with unsafe names or symlinked targets "
                       "were refused; nothing was written for them",
                       (unsigned long long)rep->refused);
    if (rc == SIMSYNC_OK && o->delete_after && !o->dry_run) {
        struct simsync_forget_opts fo = {0};
        struct simsync_forget_report fr;
        fo.gens = &o->gen;
        fo.ngens = 1;
        rc = simsync_backup_forget(n, &fo, NULL, NULL, &fr);
        rep->forgotten = rc == SIMSYNC_OK && fr.forgotten == 1;
    }
    if (rc != SIMSYNC_OK && n->err[0] == '\0')
        node_fail(n, rc, "the restore failed: %s", simsync_strerror(rc));
    return rc;
}
