/* alloc_fault.c -- counting allocation wrappers for the allocation fault
 * loops (see alloc_fault.h for how they are linked in and what each
 * sees). Each wrapper counts the call while armed, fails the armed one,
 * and otherwise hands over to the real allocator.
 *
 * Built two ways:
 *   - default: __wrap_X for the linker's --wrap, handing over to __real_X
 *     (the C library's function, or the sanitizer's interceptor);
 *   - ALLOC_FAULT_INTERPOSE: the program itself defines malloc, calloc,
 *     realloc, free and the aligned allocators, so the dynamic linker
 *     binds every allocation of the process to them, the shared
 *     libraries' and the C library's own included (glibc routes its
 *     internal calls through these symbols too); they hand over to
 *     glibc's __libc_X. Not with a sanitizer, which defines them itself. */
#include <errno.h>
#include <execinfo.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#include "alloc_fault.h"

static atomic_long countdown; /* calls to go; 0: disarmed or fired */
static atomic_long calls;     /* calls counted while armed */

void
alloc_fault_fail_nth(long n)
{
    if (n > 0)
        atomic_store(&calls, 0);
    atomic_store(&countdown, n > 0 ? n : 0);
}

long
alloc_fault_pending(void)
{
    return atomic_load(&countdown);
}

long
alloc_fault_calls(void)
{
    return atomic_load(&calls);
}

/* With SIMSYNC_ALLOC_FAULT_TRACE set, print the stack of the failed
 * call on stderr (build with -rdynamic or read it with addr2line). */
static void
trace(void)
{
    void *frames[32];
    int n;

    if (getenv("SIMSYNC_ALLOC_FAULT_TRACE") == NULL)
        return;
    n = backtrace(frames, 32);
    backtrace_symbols_fd(frames, n, STDERR_FILENO);
}

/* Count one call; 1 if it is the one to fail. */
static int
hit(void)
{
    long n = atomic_load(&countdown);

    while (n > 0) {
        if (atomic_compare_exchange_weak(&countdown, &n, n - 1)) {
            atomic_fetch_add(&calls, 1);
            if (n == 1)
                trace();
            return n == 1;
        }
    }
    return 0;
}

/* WRAP(f) is the name this build defines for f, REAL(f) the allocator
 * it hands over to. */
#ifndef ALLOC_FAULT_INTERPOSE
#define WRAP(f) __wrap_##f
#define REAL(f) __real_##f
char *__real_strdup(const char *s);
char *__wrap_strdup(const char *s);
int __real_posix_memalign(void **memptr, size_t alignment, size_t size);
#else
#define WRAP(f) f
#define REAL(f) __libc_##f
void *__libc_memalign(size_t alignment, size_t size);
void *__libc_valloc(size_t size);
void *__libc_pvalloc(size_t size);
void __libc_free(void *ptr);
/* Old allocators the headers declare only with _GNU_SOURCE. */
void *memalign(size_t alignment, size_t size);
void *pvalloc(size_t size);
#endif

void *REAL(malloc)(size_t size);
void *REAL(calloc)(size_t nmemb, size_t size);
void *REAL(realloc)(void *ptr, size_t size);
void *WRAP(malloc)(size_t size);
void *WRAP(calloc)(size_t nmemb, size_t size);
void *WRAP(realloc)(void *ptr, size_t size);
int WRAP(posix_memalign)(void **memptr, size_t alignment, size_t size);

/* Fail the armed call: NULL with errno ENOMEM, as the C library does. */
#define FAIL_IF_HIT()                                                          \
    do {                                                                       \
        if (hit()) {                                                           \
            errno = ENOMEM;                                                    \
            return NULL;                                                       \
        }                                                                      \
    } while (0)

void *
WRAP(malloc)(size_t size)
{
    FAIL_IF_HIT();
    return REAL(malloc)(size);
}

void *
WRAP(calloc)(size_t nmemb, size_t size)
{
    FAIL_IF_HIT();
    return REAL(calloc)(nmemb, size);
}

/* A failed realloc leaves the old block as it was, as the real one does. */
void *
WRAP(realloc)(void *ptr, size_t size)
{
    FAIL_IF_HIT();
    return REAL(realloc)(ptr, size);
}

#ifndef ALLOC_FAULT_INTERPOSE
char *
__wrap_strdup(const char *s)
{
    FAIL_IF_HIT();
    return __real_strdup(s);
}

int
__wrap_posix_memalign(void **memptr, size_t alignment, size_t size)
{
    if (hit())
        return ENOMEM;
    return __real_posix_memalign(memptr, alignment, size);
}
#else
/* The C library's strdup and the rest allocate through malloc above. */
void
free(void *ptr)
{
    __libc_free(ptr);
}

void *
memalign(size_t alignment, size_t size)
{
    FAIL_IF_HIT();
    return __libc_memalign(alignment, size);
}

void *
aligned_alloc(size_t alignment, size_t size)
{
    return memalign(alignment, size);
}

int
posix_memalign(void **memptr, size_t alignment, size_t size)
{
    void *p;

    if (alignment == 0 || alignment % sizeof(void *) != 0 ||
        (alignment & (alignment - 1)) != 0)
        return EINVAL;
    if (hit())
        return ENOMEM;
    p = __libc_memalign(alignment, size);
    if (p == NULL)
        return ENOMEM;
    *memptr = p;
    return 0;
}

void *
valloc(size_t size)
{
    FAIL_IF_HIT();
    return __libc_valloc(size);
}

void *
pvalloc(size_t size)
{
    FAIL_IF_HIT();
    return __libc_pvalloc(size);
}
#endif
