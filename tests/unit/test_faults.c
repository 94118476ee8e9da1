/* test_faults.c -- fault loops at the store and transport wrappers (issue 6
 * item 3): fail call N for N = 1, 2, ... of a full sync workload until a
 * run makes fewer than N calls, checking the invariants after every run.
 *
 * The workload: terminal A uploads its changes to the hub (new, edited and
 * deleted contacts, a new chunked file), then terminal B downloads them;
 * both start from a template in which all three had converged on a base.
 * Each N starts from a fresh copy of the template.
 *
 * The store loop fails the Nth LMDB put or commit (store_fault_fail_nth),
 * anywhere: scans, applies, chunk writes, knowledge. The transport loop
 * runs the same syncs over the secure channel on an in-memory link (the hub
 * side on a thread, as a hub connection thread runs) and fails the Nth
 * conn_send or conn_recv (conn_fault_fail_nth), which also cuts that link.
 *
 * The allocation loops are this file built again as test_faults_alloc
 * (SIMSYNC_ALLOC_FAULTS, tests/CMakeLists.txt), linked with --wrap for
 * malloc, calloc, realloc, strdup and posix_memalign so that each call
 * libsimsync's own code makes goes through alloc_fault.c. They fail the
 * Nth of them, once with the sessions joined directly and once through the
 * channel on a link (which adds the handshake, chan and the transport).
 * Allocations inside shared libraries (liblmdb, libprotobuf-c's unpack,
 * libzstd, libsodium, the C library's realpath, fopen, opendir) are not
 * seen there: --wrap rewrites only the references of the objects it
 * links. test_faults_alloc_libs (SIMSYNC_ALLOC_FAULTS_LIBS) sees them: it
 * defines malloc and its kin itself, so every allocation of the process
 * is failed in turn; the one a run may get over is libcrypto's context
 * for the bulk cipher, which crypt.c replaces by libsodium. A
 * failing run must also report the failure: ENOMEM, or on a link ECLOSED
 * when the failure was at the other end. Leaks on those error paths show
 * under ASan (LeakSanitizer) and valgrind.
 *
 * After each failing run:
 *   - nothing half-written: every file in B's folder is byte for byte A's
 *     current version or the base version of that name, and no temp file
 *     is left; A's folder is untouched;
 *   - knowledge never ahead of data: every journal entry of the sender
 *     (A for the hub, the hub for B) that the receiver's knowledge claims
 *     is in the receiver's store, at that version or later, with every
 *     chunk of it on the hub and its file on B;
 *   - no acknowledged item lost and the next clean run converges: a run
 *     without faults completes and leaves B's folder equal to A's, the
 *     files B held after the failing run included.
 *
 * SIMSYNC_FAULT_MAX (default 0: no limit) caps N for a quick run; the CI
 * run goes through every call. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
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

#include "chan.h"
#include "crypt.h"
#include "folder.h"
#include "node.h"
#include "session.h"
#include "transport.h"

#ifdef SIMSYNC_ALLOC_FAULTS
#include "alloc_fault.h"
#endif

#define SLOT_A 0x41ull   /* the hub's knowledge slot for A */
#define SLOT_B 0x42ull   /* ... for B */
#define SLOT_HUB 0x48ull /* the terminals' slot for the hub */
#define BATCH 16384      /* small batches: faults land between them */
#define MAX_FILES 64

/* A name and its content, as read from a folder. */
struct file {
    char name[64];
    uint8_t *data;
    size_t len;
};

struct folder_copy {
    struct file f[MAX_FILES];
    int n;
};

struct world {
    char dir[PATH_MAX];
    struct store *st[3]; /* A, hub, B */
    struct replica a, hub, b;
};

static uint8_t datakey[32];
static struct chan_identity id_term, id_hub;

/* ------------------------------------------------------------ files */

static void run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Run a shell command made like printf; it must succeed. */
static void
run(const char *fmt, ...)
{
    char cmd[2 * PATH_MAX + 64];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    assert_int_equal(system(cmd), 0);
}

static void
write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char path[PATH_MAX + 128];
    FILE *f;

    snprintf(path, sizeof(path), "%s/contacts/%s", dir, name);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void
write_random(const char *dir, const char *name, size_t len)
{
    uint8_t *buf = malloc(len);

    assert_non_null(buf);
    crypt_random(buf, len);
    write_file(dir, name, buf, len);
    free(buf);
}

static void
write_contact(const char *dir, const char *name, const char *what)
{
    char text[256];
    int n = snprintf(text, sizeof(text),
                     "BEGIN:VCARD\nFN:%s %s\nNOTE:%0120d\nEND:VCARD\n", name,
                     what, 7);

    write_file(dir, name, text, (size_t)n);
}

static void
folder_free(struct folder_copy *fc)
{
    for (int i = 0; i < fc->n; i++)
        free(fc->f[i].data);
    fc->n = 0;
}

/* Read every file of <data>/contacts (none may be a temp file). */
static void
folder_read(const char *data_dir, struct folder_copy *fc)
{
    char path[PATH_MAX + 128];
    struct dirent *e;
    DIR *d;

    fc->n = 0;
    snprintf(path, sizeof(path), "%s/contacts", data_dir);
    d = opendir(path);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        struct file *f;
        struct stat sb;
        FILE *fp;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (strncmp(e->d_name, ".simsync-tmp", 12) == 0)
            fail_msg("a temp file is left: %s", e->d_name);
        assert_true(fc->n < MAX_FILES);
        f = &fc->f[fc->n++];
        snprintf(f->name, sizeof(f->name), "%s", e->d_name);
        snprintf(path, sizeof(path), "%s/contacts/%s", data_dir, e->d_name);
        assert_int_equal(stat(path, &sb), 0);
        f->len = (size_t)sb.st_size;
        f->data = malloc(f->len + 1);
        fp = fopen(path, "rb");
        assert_non_null(fp);
        assert_int_equal(fread(f->data, 1, f->len, fp), f->len);
        fclose(fp);
    }
    closedir(d);
}

static const struct file *
find(const struct folder_copy *fc, const char *name)
{
    for (int i = 0; i < fc->n; i++)
        if (strcmp(fc->f[i].name, name) == 0)
            return &fc->f[i];
    return NULL;
}

static int
same(const struct file *x, const struct file *y)
{
    return x != NULL && y != NULL && x->len == y->len &&
           memcmp(x->data, y->data, x->len) == 0;
}

/* Every file of `got` is the same file in `want` or in `base`; with
 * `exact`, got and want hold the same names too. */
static void
folder_check(const struct folder_copy *got, const struct folder_copy *want,
             const struct folder_copy *base, int exact, const char *what)
{
    for (int i = 0; i < got->n; i++) {
        const struct file *f = &got->f[i];
        if (!same(f, find(want, f->name)) &&
            (exact || !same(f, find(base, f->name))))
            fail_msg("%s: %s (%zu bytes) is neither version", what, f->name,
                     f->len);
    }
    if (exact && got->n != want->n)
        fail_msg("%s: %d files, want %d", what, got->n, want->n);
}

/* ------------------------------------------------------------ world */

static void
world_open(struct world *w, const char *dir)
{
    struct replica *r[3] = {&w->a, &w->hub, &w->b};
    static const char *names[3] = {"a", "hub", "b"};
    char path[PATH_MAX + 64];

    memset(w, 0, sizeof(*w));
    snprintf(w->dir, sizeof(w->dir), "%s", dir);
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s.store", dir, names[i]);
        assert_int_equal(store_open(path, 0, &w->st[i]), SIMSYNC_OK);
        r[i]->st = w->st[i];
        memset(r[i]->sub, 0x5a, SUB_BYTES);
        r[i]->now_ms = 1700000000000ull;
    }
    for (int i = 0; i < 3; i += 2) {
        r[i]->self = i == 0 ? 0xA000Aull : 0xB000Bull;
        r[i]->trusted = 1;
        assert_int_equal(keys_derive(datakey, &r[i]->keys), SIMSYNC_OK);
        snprintf(r[i]->data_dir, sizeof(r[i]->data_dir), "%s/%s.data", dir,
                 names[i]);
    }
}

static void
world_close(struct world *w)
{
    for (int i = 0; i < 3; i++)
        store_close(w->st[i]);
    keys_wipe(&w->a.keys);
    keys_wipe(&w->b.keys);
}

/* ------------------------------------------------------------ syncs */

static void
cfgs(struct world *w, struct replica *t, uint64_t slot, struct session_cfg *tc,
     struct session_cfg *hc)
{
    memset(tc, 0, sizeof(*tc));
    memset(hc, 0, sizeof(*hc));
    tc->r = t;
    tc->classes = hc->classes = 1u << CLS_CONTACTS;
    tc->peer = SLOT_HUB;
    tc->initiator = 1;
    tc->dirs = hc->dirs = SESSION_BOTH;
    tc->batch_bytes = hc->batch_bytes = BATCH;
    hc->r = &w->hub;
    hc->peer = slot;
}

/* Sessions joined directly, frame by frame (the store loop). */
static int
pump_direct(struct session *a, struct session *b)
{
    for (int rounds = 0; rounds < 1000000; rounds++) {
        struct session *from = (rounds & 1) ? b : a, *to = (rounds & 1) ? a : b;
        int progress = 0;
        uint8_t *frame;
        size_t len;

        while (session_output(from, &frame, &len) == SIMSYNC_OK) {
            int rc = session_input(to, frame, len);
            free(frame);
            progress = 1;
            if (rc != SIMSYNC_OK)
                return rc;
        }
        if (session_finished(a) && session_finished(b))
            return SIMSYNC_OK;
        if (!progress && rounds > 2 && (rounds & 1))
            return SIMSYNC_EPROTO;
    }
    return SIMSYNC_EPROTO;
}

/* The hub's end of a linked sync, on its own thread. */
struct hub_end {
    struct conn *c;
    struct session_cfg cfg;
    int rc;
};

static void *
hub_thread(void *arg)
{
    struct hub_end *h = arg;
    struct session *s = NULL;
    struct chan *ch = NULL;

    h->rc = chan_handshake(h->c, 0, &id_hub, NULL, &ch);
    if (h->rc == SIMSYNC_OK)
        h->rc = session_new(&h->cfg, &s);
    if (h->rc == SIMSYNC_OK)
        h->rc = node_pump(ch, s);
    session_free(s);
    chan_free(ch);
    conn_close(h->c); /* the terminal sees the end at once */
    return NULL;
}

/* One sync of terminal t with the hub: a scan, then the sessions, joined
 * directly (linked 0) or through chan over an in-memory link (linked 1).
 * Returns the first failure. */
static int
sync_one(struct world *w, struct replica *t, uint64_t slot, int linked)
{
    struct session_cfg tc, hc;
    struct session *ts = NULL, *hs = NULL;
    struct scan_stats ss;
    int rc;

    rc = folder_scan(t, 1u << CLS_CONTACTS, 1, &ss);
    if (rc != SIMSYNC_OK)
        return rc;
    cfgs(w, t, slot, &tc, &hc);
    if (!linked) {
        rc = session_new(&tc, &ts);
        if (rc == SIMSYNC_OK)
            rc = session_new(&hc, &hs);
        if (rc == SIMSYNC_OK)
            rc = pump_direct(ts, hs);
    } else {
        struct conn *c[2];
        struct hub_end h;
        struct chan *ch = NULL;
        pthread_t th;

        rc = transport_mem_pair(&c[0], &c[1]);
        if (rc != SIMSYNC_OK) /* the allocation loop fails it too */
            return rc;
        conn_set_timeout(c[0], 20000);
        conn_set_timeout(c[1], 20000);
        h.c = c[1];
        h.cfg = hc;
        h.rc = SIMSYNC_OK;
        assert_int_equal(pthread_create(&th, NULL, hub_thread, &h), 0);
        rc = chan_handshake(c[0], 1, &id_term, id_hub.sign_pk, &ch);
        if (rc == SIMSYNC_OK)
            rc = session_new(&tc, &ts);
        if (rc == SIMSYNC_OK)
            rc = node_pump(ch, ts);
        chan_free(ch);
        conn_close(c[0]);
        assert_int_equal(pthread_join(th, NULL), 0);
        if (rc == SIMSYNC_OK)
            rc = h.rc;
    }
    session_free(ts);
    session_free(hs);
    return rc;
}

/* The workload: A uploads, then B downloads. Both run even when the
 * first fails, as two terminals would. */
static int
workload(struct world *w, int linked)
{
    int ra = sync_one(w, &w->a, SLOT_A, linked);
    int rb = sync_one(w, &w->b, SLOT_B, linked);

    return ra != SIMSYNC_OK ? ra : rb;
}

/* ------------------------------------------------------------ invariants */

struct cover_arg {
    struct replica *recv;
    struct store_txn *txn;
    const struct vv *k;
    const char *what;
    uint64_t checked;
};

/* The receiver holds the sender's entry (d, id) if its knowledge says so. */
static int
cover_fn(const struct dot *d, const uint8_t id[ITEM_ID_BYTES], void *arg)
{
    struct cover_arg *c = arg;
    Simsync__ItemRecord *rec = NULL;
    const Simsync__Version *found = NULL;
    int rc;

    if (d->counter > vv_get(c->k, d->replica))
        return 0;
    c->checked++;
    rc = item_get(c->txn, c->recv->sub, CLS_CONTACTS, id, &rec);
    if (rc != SIMSYNC_OK)
        fail_msg("%s: knowledge covers %llx:%llu but the item is missing "
                 "(%s)",
                 c->what, (unsigned long long)d->replica,
                 (unsigned long long)d->counter, simsync_strerror(rc));
    for (size_t i = 0; i < rec->n_versions && found == NULL; i++) {
        struct vv v = VV_INIT;
        assert_int_equal(vv_from_pb(&v, rec->versions[i]->vv), SIMSYNC_OK);
        if (vv_get(&v, d->replica) >= d->counter)
            found = rec->versions[i];
        vv_free(&v);
    }
    if (found == NULL)
        fail_msg("%s: knowledge covers %llx:%llu, the item is older", c->what,
                 (unsigned long long)d->replica,
                 (unsigned long long)d->counter);
    if (!found->deleted && !c->recv->trusted) {
        for (size_t i = 0; i < found->n_chunks; i++) {
            uint8_t *blob = NULL;
            size_t len;
            rc = replica_get_chunk(c->recv, CLS_CONTACTS, id, found,
                                   found->chunks[i]->id.data, &blob, &len);
            free(blob);
            if (rc != SIMSYNC_OK)
                fail_msg("%s: knowledge covers an item whose chunk %zu is "
                         "missing (%s)",
                         c->what, i, simsync_strerror(rc));
        }
    }
    if (!found->deleted && c->recv->trusted && rec->n_versions == 1 &&
        !rec->present)
        fail_msg("%s: knowledge covers %s but its file is not there", c->what,
                 rec->name);
    item_record_free(rec);
    return 0;
}

/* Knowledge never ahead of data, from `send` to `recv`, for the
 * receiver's own knowledge and its resume cursor for `slot`. */
static uint64_t
check_cover(struct replica *send, struct replica *recv, uint64_t slot,
            const char *what)
{
    struct store_txn *ts, *tr;
    struct vv k = VV_INIT, all = VV_INIT;
    struct cover_arg c = {recv, NULL, &k, what, 0};
    uint64_t peers[2] = {0, slot};

    assert_int_equal(store_txn_begin(send->st, 1, &ts), SIMSYNC_OK);
    assert_int_equal(store_txn_begin(recv->st, 1, &tr), SIMSYNC_OK);
    c.txn = tr;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(
            journal_knowledge_get(tr, recv->sub, CLS_CONTACTS, peers[i], &k),
            SIMSYNC_OK);
        assert_int_equal(
            journal_scan(ts, send->sub, CLS_CONTACTS, &all, cover_fn, &c), 0);
        vv_free(&k);
    }
    store_txn_abort(tr);
    store_txn_abort(ts);
    return c.checked;
}

/* ------------------------------------------------------------ the loop */

struct loop {
    char template[PATH_MAX];
    struct folder_copy base, want; /* B's folder before, A's folder */
    long absorbed; /* failed allocations crypt.c's fallback got over */
};

static void
template_make(struct loop *L)
{
    struct world w;
    char path[PATH_MAX + 64], name[32];

    /* A tmpfs when there is one: each run copies the template and
     * commits many small transactions. */
    snprintf(L->template, sizeof(L->template), "%s/simsync-faults-%d",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp",
             (int)getpid());
    run("rm -rf '%s'", L->template);
    assert_int_equal(mkdir(L->template, 0700), 0);
    world_open(&w, L->template);
    snprintf(path, sizeof(path), "%s/contacts", w.a.data_dir);
    run("mkdir -p '%s' '%s/contacts'", path, w.b.data_dir);
    for (int i = 0; i < 12; i++) {
        snprintf(name, sizeof(name), "c%02d.vcf", i);
        write_contact(w.a.data_dir, name, "base");
    }
    write_random(w.a.data_dir, "photo.jpg", 200000);
    assert_int_equal(workload(&w, 0), SIMSYNC_OK);
    folder_read(w.b.data_dir, &L->base);
    /* A's changes: new, edited, deleted, and a new chunked file. */
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof(name), "n%02d.vcf", i);
        write_contact(w.a.data_dir, name, "new");
    }
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof(name), "c%02d.vcf", i);
        write_contact(w.a.data_dir, name, "edited");
    }
    snprintf(path, sizeof(path), "%s/contacts/c11.vcf", w.a.data_dir);
    assert_int_equal(unlink(path), 0);
    write_random(w.a.data_dir, "video.bin", 300000);
    folder_read(w.a.data_dir, &L->want);
    world_close(&w);
}

/* What a loop fails: the Nth LMDB put/commit, conn send/recv, or (in the
 * test_faults_alloc build) allocation of libsimsync's own code. */
enum fault_kind { FAULT_STORE, FAULT_CONN, FAULT_ALLOC };

static const char *const kind_name[] = {"store", "transport", "allocation"};

static void
fault_arm(enum fault_kind kind, long n)
{
    switch (kind) {
    case FAULT_STORE:
        store_fault_fail_nth(n);
        break;
    case FAULT_CONN:
        conn_fault_fail_nth(n);
        break;
    case FAULT_ALLOC:
#ifdef SIMSYNC_ALLOC_FAULTS
        alloc_fault_fail_nth(n);
#else
        fail_msg("allocation faults need the test_faults_alloc build");
#endif
        break;
    }
}

static long
fault_pending(enum fault_kind kind)
{
    switch (kind) {
    case FAULT_STORE:
        return store_fault_pending();
    case FAULT_CONN:
        return conn_fault_pending();
    case FAULT_ALLOC:
#ifdef SIMSYNC_ALLOC_FAULTS
        return alloc_fault_pending();
#endif
        break;
    }
    return 0;
}

/* One N: copy the template, arm the fault, run, check, run clean, check.
 * Returns 1 if the fault fired (the loop goes on), 0 if the workload made
 * fewer than n calls. */
static int
one_run(struct loop *L, long n, enum fault_kind kind, int linked,
        uint64_t *covered)
{
    struct folder_copy got;
    struct world w;
    char dir[PATH_MAX + 16], what[80];
#ifdef SIMSYNC_ALLOC_FAULTS_LIBS
    unsigned long fallbacks = crypt_bulk_fallbacks(); /* before the run */
#endif
    int rc, fired;

    snprintf(dir, sizeof(dir), "%s.run", L->template);
    run("rm -rf '%s' && cp -a '%s' '%s'", dir, L->template, dir);
    world_open(&w, dir);
    fault_arm(kind, n); /* armed around the workload only */
    rc = workload(&w, linked);
    fired = fault_pending(kind) == 0;
    fault_arm(kind, 0);
    if (!fired) {
        assert_int_equal(rc, SIMSYNC_OK);
        world_close(&w);
        run("rm -rf '%s'", dir);
        return 0;
    }
    snprintf(what, sizeof(what), "%s fault at call %ld%s", kind_name[kind], n,
             kind == FAULT_ALLOC ? (linked ? " (linked)" : " (direct)") : "");
#ifdef SIMSYNC_ALLOC_FAULTS_LIBS
    /* One failed allocation may be got over: libcrypto's context for the
     * bulk cipher (crypt.c then seals that message with libsodium, and
     * counts it). Then the run must have completed in full. */
    if (kind == FAULT_ALLOC && rc == SIMSYNC_OK) {
        if (crypt_bulk_fallbacks() != fallbacks + 1)
            fail_msg("%s: the workload completed without the bulk cipher's "
                     "fallback: the failure was swallowed",
                     what);
        folder_read(w.b.data_dir, &got);
        folder_check(&got, &L->want, &L->base, 1, what);
        folder_free(&got);
        L->absorbed++;
        world_close(&w);
        run("rm -rf '%s'", dir);
        return 1;
    }
#endif
    /* A failed allocation is reported, not swallowed: ENOMEM, or on a link
     * the peer's end closing when the failure was on its side. */
    if (kind == FAULT_ALLOC && rc != SIMSYNC_ENOMEM &&
        !(linked && rc == SIMSYNC_ECLOSED))
        fail_msg("%s: the workload returned %s", what, simsync_strerror(rc));
    /* Nothing half-written; A untouched. */
    folder_read(w.b.data_dir, &got);
    folder_check(&got, &L->want, &L->base, 0, what);
    folder_free(&got);
    folder_read(w.a.data_dir, &got);
    folder_check(&got, &L->want, &L->base, 1, what);
    folder_free(&got);
    /* Knowledge never ahead of data. */
    *covered += check_cover(&w.a, &w.hub, SLOT_A, what);
    *covered += check_cover(&w.hub, &w.b, SLOT_HUB, what);
    /* The next clean run converges. */
    rc = workload(&w, linked);
    if (rc != SIMSYNC_OK)
        fail_msg("%s: the clean run after it failed: %s", what,
                 simsync_strerror(rc));
    folder_read(w.b.data_dir, &got);
    folder_check(&got, &L->want, &L->base, 1, what);
    folder_free(&got);
    check_cover(&w.a, &w.hub, SLOT_A, what);
    check_cover(&w.hub, &w.b, SLOT_HUB, what);
    world_close(&w);
    run("rm -rf '%s'", dir);
    return 1;
}

static long
fault_max(void)
{
    const char *s = getenv("SIMSYNC_FAULT_MAX");

    return s != NULL ? strtol(s, NULL, 10) : 0;
}

static void
fault_loop(enum fault_kind kind, int linked)
{
    struct loop L;
    uint64_t covered = 0;
    long n, max = fault_max();

    memset(&L, 0, sizeof(L));
    template_make(&L);
    for (n = 1; max == 0 || n <= max; n++)
        if (!one_run(&L, n, kind, linked, &covered))
            break;
#ifdef SIMSYNC_ALLOC_FAULTS
    if (kind == FAULT_ALLOC && !(max != 0 && n > max))
        printf("# the last run made %ld allocations\n", alloc_fault_calls());
#endif
#ifdef SIMSYNC_ALLOC_FAULTS_LIBS
    printf("# %ld failed allocations were libcrypto's cipher context: the "
           "message went to libsodium and the run completed\n",
           L.absorbed);
#endif
    printf("# %s fault loop%s: %ld failing runs (%s), %llu covered entries "
           "checked\n",
           kind_name[kind],
           kind == FAULT_ALLOC ? (linked ? " (linked)" : " (direct)") : "",
           n - 1,
           max != 0 && n > max ? "capped by SIMSYNC_FAULT_MAX"
                               : "every call of the workload",
           (unsigned long long)covered);
    folder_free(&L.base);
    folder_free(&L.want);
    run("rm -rf '%s'", L.template);
    /* The loop must have run through real failures. */
    assert_true(n - 1 >= (max != 0 && max < 20 ? max : 20));
}

#ifndef SIMSYNC_ALLOC_FAULTS
static void
store_fault_at_every_call_keeps_invariants(void **state)
{
    (void)state;
    fault_loop(FAULT_STORE, 0);
}

static void
transport_fault_at_every_call_keeps_invariants(void **state)
{
    (void)state;
    fault_loop(FAULT_CONN, 1);
}
#else
/* The sessions joined directly: scans, applies, the store, the codec. */
static void
alloc_fault_at_every_call_keeps_invariants(void **state)
{
    (void)state;
    fault_loop(FAULT_ALLOC, 0);
}

/* Through the secure channel on an in-memory link, the hub's end on its
 * own thread: adds the handshake, chan, the transport and node_pump. */
static void
alloc_fault_on_a_linked_sync_keeps_invariants(void **state)
{
    (void)state;
    fault_loop(FAULT_ALLOC, 1);
}
#endif

int
main(void)
{
    const struct CMUnitTest tests[] = {
#ifndef SIMSYNC_ALLOC_FAULTS
        cmocka_unit_test(store_fault_at_every_call_keeps_invariants),
        cmocka_unit_test(transport_fault_at_every_call_keeps_invariants),
#else
        cmocka_unit_test(alloc_fault_at_every_call_keeps_invariants),
        cmocka_unit_test(alloc_fault_on_a_linked_sync_keeps_invariants),
#endif
    };

    if (crypt_init() != SIMSYNC_OK)
        return 1;
    crypt_random(datakey, sizeof(datakey));
    if (crypt_sign_keypair(id_term.sign_pk, id_term.sign_sk) != SIMSYNC_OK ||
        crypt_sign_keypair(id_hub.sign_pk, id_hub.sign_sk) != SIMSYNC_OK)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
