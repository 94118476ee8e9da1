/* test_sync_sim.c -- randomized convergence: several trusted replicas and
 * one hub, all in this process, random edits, deletes and concurrent
 * edits, random pairwise syncs (both ways, upload-only or download-only)
 * through the hub with the link cut at random frames (and, in a second
 * test, direct syncs between two nodes too). After a final round
 * every replica's folders must be identical, and every edit ever made must
 * be present in some file, or have been seen and replaced by a later edit
 * on some replica (nothing vanishes unseen).
 *
 * Seeds: SIMSYNC_SIM_SEEDS (count, default 60) starting at
 * SIMSYNC_SIM_SEED (default 1). A failing seed is printed. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <limits.h>
#include <cmocka.h>

#include "crypt.h"
#include "folder.h"
#include "session.h"
#include "chunker.h"
#include "simsync.pb-c.h"

#define MAX_NODES 5
#define NAMES 6
#define MAX_EDITS 4096

struct node {
    struct store *st;
    struct replica r;
};

struct world {
    char dir[256];
    int nnodes;
    struct node nodes[MAX_NODES];
    struct store *hubst;
    struct replica hub;
    /* Every content ever written, and whether some replica replaced it
     * while seeing it. */
    char *edits[MAX_EDITS];
    int replaced[MAX_EDITS];
    int nedits;
    uint64_t rng;
};

static uint64_t
rnd(struct world *w)
{
    /* xorshift64* */
    w->rng ^= w->rng >> 12;
    w->rng ^= w->rng << 25;
    w->rng ^= w->rng >> 27;
    return w->rng * 2685821657736338717ull;
}

static void
rm_rf(const char *path)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    assert_int_equal(system(cmd), 0);
}

static void
file_path(const struct node *n, const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s/contacts/%s", n->r.data_dir, name);
}

static int
read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n;

    if (f == NULL)
        return -1;
    n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
    return (int)n;
}

static int
edit_index(struct world *w, const char *content)
{
    for (int i = 0; i < w->nedits; i++)
        if (strcmp(w->edits[i], content) == 0)
            return i;
    return -1;
}

/* What the node currently shows in `name` is being replaced by it. */
static void
mark_replaced(struct world *w, const struct node *n, const char *name)
{
    char path[PATH_MAX + 64], buf[256];
    int i;

    file_path(n, name, path, sizeof(path));
    if (read_file(path, buf, sizeof(buf)) >= 0 && (i = edit_index(w, buf)) >= 0)
        w->replaced[i] = 1;
}

static void
do_edit(struct world *w, int ni)
{
    struct node *n = &w->nodes[ni];
    char name[32], path[512], content[128];
    FILE *f;
    int which = (int)(rnd(w) % NAMES);

    snprintf(name, sizeof(name), "c%d.vcf", which);
    file_path(n, name, path, sizeof(path));
    if (rnd(w) % 5 == 0) {
        mark_replaced(w, n, name);
        unlink(path);
        return;
    }
    if (w->nedits >= MAX_EDITS)
        return;
    mark_replaced(w, n, name);
    snprintf(content, sizeof(content), "BEGIN:VCARD\nFN:n%d e%d\nEND:VCARD\n",
             ni, w->nedits);
    w->edits[w->nedits++] = strdup(content);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

/* Chunk frames moved with a non-empty blob, and how many of them said
 * their blob may go sealed (all of them must). */
static size_t chunk_frames, sealed_frames;

/* A ChunkData frame's blob is exactly the tail session_output_sealed
 * marks; any other frame marks none. */
static void
check_sealed_mark(const uint8_t *frame, size_t len, size_t sealed)
{
    Simsync__Envelope *env = simsync__envelope__unpack(NULL, len, frame);

    assert_non_null(env);
    if (env->msg_case == SIMSYNC__ENVELOPE__MSG_CHUNK &&
        env->chunk->blob.len > 0) {
        chunk_frames++;
        assert_int_equal(sealed, env->chunk->blob.len);
        assert_memory_equal(frame + len - sealed, env->chunk->blob.data,
                            sealed);
        sealed_frames++;
    } else {
        assert_int_equal(sealed, 0);
    }
    simsync__envelope__free_unpacked(env, NULL);
}

/* Move frames between two sessions until both finish, one fails, or the
 * link is cut after `cut` frames (-1: never). */
static int
pump(struct session *a, struct session *b, int cut)
{
    int moved = 0;

    for (int rounds = 0; rounds < 100000; rounds++) {
        int progress = 0;
        struct session *from = (rounds & 1) ? b : a, *to = (rounds & 1) ? a : b;
        uint8_t *frame;
        size_t len, sealed;

        while (session_output_sealed(from, &frame, &len, &sealed) ==
               SIMSYNC_OK) {
            int rc;
            check_sealed_mark(frame, len, sealed);
            if (cut >= 0 && moved >= cut) {
                free(frame);
                return SIMSYNC_ECLOSED;
            }
            rc = session_input(to, frame, len);
            free(frame);
            moved++;
            progress = 1;
            if (rc != SIMSYNC_OK)
                return rc;
        }
        if (session_finished(a) && session_finished(b))
            return SIMSYNC_OK;
        if (!progress && rounds > 2 && (rounds & 1))
            return SIMSYNC_EPROTO; /* neither side has anything to say */
    }
    return SIMSYNC_EPROTO;
}

/* What the hub does before a sync: the horizon is the meet of every
 * node's acknowledgements; tombstones under it are purged. */
struct purge_arg {
    struct world *w;
    struct vv *hz;
};

static int
hub_purge_fn(struct store_txn *txn, void *arg)
{
    struct purge_arg *a = arg;
    uint64_t slots[MAX_NODES];

    for (int i = 0; i < a->w->nnodes; i++)
        slots[i] = session_ack_peer(1000u + (unsigned)i);
    int rc = replica_horizon(&a->w->hub, txn, CLS_CONTACTS, slots,
                             (size_t)a->w->nnodes, &a->hz[CLS_CONTACTS]);
    if (rc == SIMSYNC_OK)
        rc = replica_purge(&a->w->hub, txn, CLS_CONTACTS, &a->hz[CLS_CONTACTS],
                           NULL);
    return rc;
}

static uint64_t
tombstones(struct replica *r)
{
    struct store_txn *txn;
    uint64_t n = 0;

    assert_int_equal(store_txn_begin(r->st, 1, &txn), SIMSYNC_OK);
    assert_int_equal(replica_tombstones(r, txn, CLS_CONTACTS, &n), SIMSYNC_OK);
    store_txn_abort(txn);
    return n;
}

/* A sync of node ni with the hub; dirs is the terminal's side
 * (SESSION_SEND_ONLY: upload only), the hub takes the other. */
static int
do_sync_dirs(struct world *w, int ni, int cut, enum session_dirs dirs)
{
    struct node *n = &w->nodes[ni];
    struct session *t = NULL, *h = NULL;
    struct vv hz[CLS_COUNT];
    enum session_dirs hub_dirs = dirs == SESSION_SEND_ONLY   ? SESSION_RECV_ONLY
                                 : dirs == SESSION_RECV_ONLY ? SESSION_SEND_ONLY
                                                             : SESSION_BOTH;
    struct session_cfg tc = {
        &n->r, 1u << CLS_CONTACTS, 0x4855420000000001ull, 1, NULL, dirs, 0, 0};
    struct session_cfg hc = {
        &w->hub, 1u << CLS_CONTACTS, 1000u + (unsigned)ni, 0, hz, hub_dirs, 0,
        0};
    struct purge_arg pa = {w, hz};
    struct scan_stats ss;
    int rc;

    for (int c = 0; c < CLS_COUNT; c++)
        hz[c] = (struct vv)VV_INIT;
    rc = folder_scan(&n->r, 1u << CLS_CONTACTS, 1, &ss);
    assert_int_equal(rc, SIMSYNC_OK);
    assert_int_equal(store_write(w->hubst, hub_purge_fn, &pa), SIMSYNC_OK);
    assert_int_equal(session_new(&tc, &t), SIMSYNC_OK);
    assert_int_equal(session_new(&hc, &h), SIMSYNC_OK);
    rc = pump(t, h, cut);
    session_free(t);
    session_free(h);
    for (int c = 0; c < CLS_COUNT; c++)
        vv_free(&hz[c]);
    return rc;
}

static int
do_sync(struct world *w, int ni, int cut)
{
    return do_sync_dirs(w, ni, cut, SESSION_BOTH);
}

/* The knowledge-table slot a node keeps for peer node i. */
static uint64_t
peer_id(int i)
{
    return 0x5045455200000000ull + (uint64_t)i + 1;
}

/* A direct sync between two trusted nodes, as `sync --peer` and `serve`
 * run it: node ni initiates (dirs is its side), node nj responds as a
 * trusted replica; each keeps the other in its own slots, and no horizon
 * travels (only the hub knows every terminal's acknowledgements). */
static int
do_peer_sync(struct world *w, int ni, int nj, int cut, enum session_dirs dirs)
{
    struct node *a = &w->nodes[ni], *b = &w->nodes[nj];
    struct session *t = NULL, *s = NULL;
    enum session_dirs other = dirs == SESSION_SEND_ONLY   ? SESSION_RECV_ONLY
                              : dirs == SESSION_RECV_ONLY ? SESSION_SEND_ONLY
                                                          : SESSION_BOTH;
    /* Half of the direct syncs send their batches packed, as paired
     * peers that both offer it do. */
    int packed = (int)(rnd(w) & 1);
    struct session_cfg tc = {&a->r, 1u << CLS_CONTACTS, peer_id(nj), 1, NULL,
                             dirs, 0, packed};
    struct session_cfg sc = {&b->r, 1u << CLS_CONTACTS, peer_id(ni), 0, NULL,
                             other, 0, packed};
    struct scan_stats ss;
    int rc;

    assert_int_equal(folder_scan(&a->r, 1u << CLS_CONTACTS, 1, &ss),
                     SIMSYNC_OK);
    assert_int_equal(folder_scan(&b->r, 1u << CLS_CONTACTS, 1, &ss),
                     SIMSYNC_OK);
    assert_int_equal(session_new(&tc, &t), SIMSYNC_OK);
    assert_int_equal(session_new(&sc, &s), SIMSYNC_OK);
    rc = pump(t, s, cut);
    session_free(t);
    session_free(s);
    return rc;
}

static void
world_open(struct world *w, uint64_t seed, int nnodes)
{
    uint8_t datakey[32];
    char path[PATH_MAX + 64];

    memset(w, 0, sizeof(*w));
    w->rng = seed * 0x9E3779B97F4A7C15ull + 1;
    w->nnodes = nnodes;
    snprintf(w->dir, sizeof(w->dir), "/tmp/simsync-sim-%d-%llu", (int)getpid(),
             (unsigned long long)seed);
    rm_rf(w->dir);
    assert_int_equal(mkdir(w->dir, 0700), 0);
    snprintf(path, sizeof(path), "%s/hub", w->dir);
    assert_int_equal(store_open(path, 0, &w->hubst), SIMSYNC_OK);
    w->hub.st = w->hubst;
    memset(w->hub.sub, 0x42, SUB_BYTES);
    crypt_random(datakey, sizeof(datakey));
    for (int i = 0; i < nnodes; i++) {
        struct node *n = &w->nodes[i];
        snprintf(path, sizeof(path), "%s/store%d", w->dir, i);
        assert_int_equal(store_open(path, 0, &n->st), SIMSYNC_OK);
        n->r.st = n->st;
        memset(n->r.sub, 0x42, SUB_BYTES);
        n->r.self = 0x1000 + (uint64_t)i * 0x10001;
        n->r.trusted = 1;
        assert_int_equal(keys_derive(datakey, &n->r.keys), SIMSYNC_OK);
        snprintf(n->r.data_dir, sizeof(n->r.data_dir), "%s/data%d", w->dir, i);
        assert_int_equal(mkdir(n->r.data_dir, 0700), 0);
        snprintf(path, sizeof(path), "%s/contacts", n->r.data_dir);
        assert_int_equal(mkdir(path, 0700), 0);
    }
}

static void
world_close(struct world *w)
{
    for (int i = 0; i < w->nnodes; i++)
        store_close(w->nodes[i].st);
    store_close(w->hubst);
    for (int i = 0; i < w->nedits; i++)
        free(w->edits[i]);
    rm_rf(w->dir);
}

/* Sorted "name\ncontent" listing of a node's contacts folder. */
static char *
snapshot(const struct node *n)
{
    char path[PATH_MAX + 64], names[64][256], *out;
    size_t cap = 1 << 16, off = 0;
    int count = 0;
    DIR *d;
    struct dirent *e;

    snprintf(path, sizeof(path), "%s/contacts", n->r.data_dir);
    d = opendir(path);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL && count < 64) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(names[count++], sizeof(names[0]), "%s", e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)count, sizeof(names[0]),
          (int (*)(const void *, const void *))strcmp);
    out = calloc(1, cap);
    for (int i = 0; i < count; i++) {
        char fp[PATH_MAX + 400], buf[256];
        snprintf(fp, sizeof(fp), "%s/%s", path, names[i]);
        read_file(fp, buf, sizeof(buf));
        off +=
            (size_t)snprintf(out + off, cap - off, "%s\n%s\n", names[i], buf);
    }
    return out;
}

static int
content_present(struct world *w, const char *content)
{
    char *snap = snapshot(&w->nodes[0]);
    int found = strstr(snap, content) != NULL;

    free(snap);
    return found;
}

/* One random run. With `peers`, a sync step is a direct sync between
 * two nodes half of the time (without, the draws are as they always
 * were, so old seeds replay the same runs). */
static int
run_seed(uint64_t seed, int peers)
{
    struct world w;
    int nnodes = 3 + (int)(seed % 3), steps;
    int failed = 0;

    world_open(&w, seed, nnodes);
    steps = 40 + (int)(rnd(&w) % 40);
    for (int s = 0; s < steps; s++) {
        int ni = (int)(rnd(&w) % (uint64_t)nnodes);
        switch (rnd(&w) % 3) {
        case 0:
        case 1:
            do_edit(&w, ni);
            break;
        default: {
            int cut = (rnd(&w) % 4 == 0) ? (int)(rnd(&w) % 12) : -1;
            static const enum session_dirs pick[4] = {
                SESSION_BOTH, SESSION_BOTH, SESSION_SEND_ONLY,
                SESSION_RECV_ONLY};
            enum session_dirs dirs = pick[rnd(&w) % 4];
            int rc;
            if (peers && rnd(&w) % 2 == 0) {
                int nj = (ni + 1 + (int)(rnd(&w) % (uint64_t)(nnodes - 1))) %
                         nnodes;
                rc = do_peer_sync(&w, ni, nj, cut, dirs);
            } else {
                rc = do_sync_dirs(&w, ni, cut, dirs);
            }
            if (cut < 0 && rc != SIMSYNC_OK) {
                fprintf(stderr, "seed %llu: sync of node %d failed: %s\n",
                        (unsigned long long)seed, ni, simsync_strerror(rc));
                failed = 1;
            }
        }
        }
        if (failed)
            break;
    }
    /* Final rounds without cuts: everyone converges. */
    for (int round = 0; !failed && round < 3; round++)
        for (int i = 0; i < nnodes && !failed; i++)
            if (do_sync(&w, i, -1) != SIMSYNC_OK) {
                fprintf(stderr, "seed %llu: final sync of node %d failed\n",
                        (unsigned long long)seed, i);
                failed = 1;
            }
    /* Quiet rounds: every node acknowledges everything, so every
     * tombstone is purged everywhere, and nothing comes back. */
    for (int round = 0; !failed && round < 3; round++)
        for (int i = 0; i < nnodes && !failed; i++)
            failed = do_sync(&w, i, -1) != SIMSYNC_OK;
    for (int i = 0; !failed && i <= nnodes; i++) {
        struct replica *r = i < nnodes ? &w.nodes[i].r : &w.hub;
        uint64_t left = tombstones(r);
        if (left != 0) {
            fprintf(stderr, "seed %llu: %llu tombstones left on %s %d\n",
                    (unsigned long long)seed, (unsigned long long)left,
                    i < nnodes ? "node" : "hub", i);
            failed = 1;
        }
    }
    if (!failed) {
        char *first = snapshot(&w.nodes[0]);
        for (int i = 1; i < nnodes && !failed; i++) {
            char *other = snapshot(&w.nodes[i]);
            if (strcmp(first, other) != 0) {
                fprintf(stderr,
                        "seed %llu: node 0 and node %d differ:\n--- 0\n%s"
                        "--- %d\n%s",
                        (unsigned long long)seed, i, first, i, other);
                failed = 1;
            }
            free(other);
        }
        free(first);
    }
    for (int i = 0; !failed && i < w.nedits; i++)
        if (!w.replaced[i] && !content_present(&w, w.edits[i])) {
            fprintf(stderr, "seed %llu: edit lost: %s",
                    (unsigned long long)seed, w.edits[i]);
            failed = 1;
        }
    world_close(&w);
    if (failed)
        fprintf(stderr,
                "replay with SIMSYNC_SIM_SEED=%llu SIMSYNC_SIM_SEEDS=1\n",
                (unsigned long long)seed);
    return failed;
}

static void
run_seeds(uint64_t default_count, int peers)
{
    const char *e1 = getenv("SIMSYNC_SIM_SEED"),
               *e2 = getenv("SIMSYNC_SIM_SEEDS");
    uint64_t first = e1 ? strtoull(e1, NULL, 10) : 1;
    uint64_t count = e2 ? strtoull(e2, NULL, 10) : default_count;
    int failures = 0;

    for (uint64_t s = first; s < first + count; s++)
        failures += run_seed(s, peers);
    assert_int_equal(failures, 0);
}

static void
random_nodes_converge_without_losing_edits(void **state)
{
    (void)state;
    run_seeds(200, 0);
}

/* Nodes that also sync directly with each other (a desktop serving its
 * handsets), in any order with the hub: knowledge and acknowledgements
 * are per peer, so everything still converges, no edit is lost, no
 * deletion comes back and every tombstone is purged in the end. */
static void
direct_syncs_between_nodes_converge_with_the_hub(void **state)
{
    (void)state;
    run_seeds(60, 1);
}

static void
concurrent_edits_keep_both(void **state)
{
    struct world w;
    char path[PATH_MAX + 64], buf[256];
    char *a, *b;
    FILE *f;

    (void)state;
    world_open(&w, 777, 2);
    for (int i = 0; i < 2; i++) {
        file_path(&w.nodes[i], "alice.vcf", path, sizeof(path));
        f = fopen(path, "w");
        assert_non_null(f);
        fprintf(f, "FN:Alice version %d\n", i);
        fclose(f);
    }
    assert_int_equal(do_sync(&w, 0, -1), SIMSYNC_OK);
    assert_int_equal(do_sync(&w, 1, -1), SIMSYNC_OK);
    assert_int_equal(do_sync(&w, 0, -1), SIMSYNC_OK);
    a = snapshot(&w.nodes[0]);
    b = snapshot(&w.nodes[1]);
    assert_string_equal(a, b);
    assert_non_null(strstr(a, "FN:Alice version 0"));
    assert_non_null(strstr(a, "FN:Alice version 1"));
    assert_non_null(strstr(a, ".conflict-"));
    free(a);
    free(b);
    (void)buf;
    world_close(&w);
}

static void
delete_propagates_and_edit_beats_concurrent_delete(void **state)
{
    struct world w;
    char path[PATH_MAX + 64];
    char *a;
    FILE *f;

    (void)state;
    world_open(&w, 4242, 2);
    file_path(&w.nodes[0], "bob.vcf", path, sizeof(path));
    f = fopen(path, "w");
    fputs("FN:Bob\n", f);
    fclose(f);
    file_path(&w.nodes[0], "carol.vcf", path, sizeof(path));
    f = fopen(path, "w");
    fputs("FN:Carol\n", f);
    fclose(f);
    assert_int_equal(do_sync(&w, 0, -1), SIMSYNC_OK);
    assert_int_equal(do_sync(&w, 1, -1), SIMSYNC_OK);
    /* Node 0 deletes bob; node 1 edits bob meanwhile; node 0 deletes
     * carol, which nobody edits. */
    file_path(&w.nodes[0], "bob.vcf", path, sizeof(path));
    unlink(path);
    file_path(&w.nodes[0], "carol.vcf", path, sizeof(path));
    unlink(path);
    file_path(&w.nodes[1], "bob.vcf", path, sizeof(path));
    f = fopen(path, "w");
    fputs("FN:Bob edited\n", f);
    fclose(f);
    assert_int_equal(do_sync(&w, 0, -1), SIMSYNC_OK);
    assert_int_equal(do_sync(&w, 1, -1), SIMSYNC_OK);
    assert_int_equal(do_sync(&w, 0, -1), SIMSYNC_OK);
    a = snapshot(&w.nodes[0]);
    assert_non_null(strstr(a, "FN:Bob edited"));
    assert_null(strstr(a, "carol"));
    free(a);
    a = snapshot(&w.nodes[1]);
    assert_non_null(strstr(a, "FN:Bob edited"));
    assert_null(strstr(a, "carol"));
    free(a);
    world_close(&w);
}

/* Upload-only sends this node's changes and applies nothing; download-only
 * applies the hub's changes and sends nothing. */
static void
upload_only_and_download_only_move_one_way(void **state)
{
    struct world w;
    char path[PATH_MAX + 64];
    char *a, *b;
    FILE *f;

    (void)state;
    world_open(&w, 31, 2);
    file_path(&w.nodes[0], "a.vcf", path, sizeof(path));
    f = fopen(path, "w");
    fputs("FN:from 0\n", f);
    fclose(f);
    file_path(&w.nodes[1], "b.vcf", path, sizeof(path));
    f = fopen(path, "w");
    fputs("FN:from 1\n", f);
    fclose(f);
    assert_int_equal(do_sync_dirs(&w, 0, -1, SESSION_SEND_ONLY), SIMSYNC_OK);
    /* Node 1 uploads b.vcf but must not receive a.vcf. */
    assert_int_equal(do_sync_dirs(&w, 1, -1, SESSION_SEND_ONLY), SIMSYNC_OK);
    a = snapshot(&w.nodes[1]);
    assert_null(strstr(a, "FN:from 0"));
    free(a);
    /* Node 0 downloads b.vcf; node 1's copy of a.vcf still waits. */
    assert_int_equal(do_sync_dirs(&w, 0, -1, SESSION_RECV_ONLY), SIMSYNC_OK);
    a = snapshot(&w.nodes[0]);
    assert_non_null(strstr(a, "FN:from 1"));
    free(a);
    /* An edit on node 0 is not sent by a download-only sync. */
    file_path(&w.nodes[0], "a.vcf", path, sizeof(path));
    f = fopen(path, "w");
    fputs("FN:from 0, edited\n", f);
    fclose(f);
    assert_int_equal(do_sync_dirs(&w, 0, -1, SESSION_RECV_ONLY), SIMSYNC_OK);
    assert_int_equal(do_sync_dirs(&w, 1, -1, SESSION_RECV_ONLY), SIMSYNC_OK);
    a = snapshot(&w.nodes[1]);
    assert_non_null(strstr(a, "FN:from 0\n"));
    assert_null(strstr(a, "edited"));
    free(a);
    /* A full round converges. */
    assert_int_equal(do_sync(&w, 0, -1), SIMSYNC_OK);
    assert_int_equal(do_sync(&w, 1, -1), SIMSYNC_OK);
    a = snapshot(&w.nodes[0]);
    b = snapshot(&w.nodes[1]);
    assert_string_equal(a, b);
    assert_non_null(strstr(a, "FN:from 0, edited"));
    free(a);
    free(b);
    world_close(&w);
}

static void
large_file_is_chunked_and_resumes_after_cuts(void **state)
{
    struct world w;
    char path[PATH_MAX + 64], path2[PATH_MAX + 64];
    uint8_t *data = malloc(3 << 20), *back = malloc(3 << 20);
    FILE *f;
    int ok = 0;

    (void)state;
    world_open(&w, 99, 2);
    for (size_t i = 0; i < (3u << 20); i++)
        data[i] = (uint8_t)(rnd(&w) >> 56);
    snprintf(path, sizeof(path), "%s/contacts/photo.jpg",
             w.nodes[0].r.data_dir);
    f = fopen(path, "wb");
    fwrite(data, 1, 3u << 20, f);
    fclose(f);
    /* Upload in pieces: every attempt cut after a few frames. */
    for (int i = 0; i < 200 && !ok; i++)
        ok = do_sync(&w, 0, 3 + i % 5) == SIMSYNC_OK;
    assert_int_equal(do_sync(&w, 0, -1), SIMSYNC_OK);
    for (int i = 0; i < 200 && !ok; i++)
        ok = do_sync(&w, 1, 3 + i % 5) == SIMSYNC_OK;
    assert_int_equal(do_sync(&w, 1, -1), SIMSYNC_OK);
    snprintf(path2, sizeof(path2), "%s/contacts/photo.jpg",
             w.nodes[1].r.data_dir);
    f = fopen(path2, "rb");
    assert_non_null(f);
    assert_int_equal(fread(back, 1, 3u << 20, f), 3u << 20);
    fclose(f);
    assert_memory_equal(data, back, 3u << 20);
    /* Its chunks went as sealed pieces, both ways through the hub. */
    assert_true(chunk_frames >= 2 * ((3u << 20) / CHUNKER_MAX_DEFAULT));
    assert_int_equal(sealed_frames, chunk_frames);
    free(data);
    free(back);
    world_close(&w);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(concurrent_edits_keep_both),
        cmocka_unit_test(delete_propagates_and_edit_beats_concurrent_delete),
        cmocka_unit_test(large_file_is_chunked_and_resumes_after_cuts),
        cmocka_unit_test(upload_only_and_download_only_move_one_way),
        cmocka_unit_test(random_nodes_converge_without_losing_edits),
        cmocka_unit_test(direct_syncs_between_nodes_converge_with_the_hub),
    };
    if (crypt_init() != SIMSYNC_OK)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
