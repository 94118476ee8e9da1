/* alloc_fault.c -- counting allocation wrappers for the allocation fault
 * loop (see alloc_fault.h for how they are linked in and what they do not
 * see). Each __wrap_X counts the call while armed, fails the armed one,
 * and otherwise hands over to __real_X, which the linker binds to the
 * real function (the C library's, or the sanitizer's interceptor). */
#include <errno.h>
#include <execinfo.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#include "alloc_fault.h"

void *__real_malloc(size_t size);
void *__real_calloc(size_t nmemb, size_t size);
void *__real_realloc(void *ptr, size_t size);
char *__real_strdup(const char *s);
int __real_posix_memalign(void **memptr, size_t alignment, size_t size);

void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t nmemb, size_t size);
void *__wrap_realloc(void *ptr, size_t size);
char *__wrap_strdup(const char *s);
int __wrap_posix_memalign(void **memptr, size_t alignment, size_t size);

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

void *
__wrap_malloc(size_t size)
{
    if (hit()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_malloc(size);
}

void *
__wrap_calloc(size_t nmemb, size_t size)
{
    if (hit()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_calloc(nmemb, size);
}

/* A failed realloc leaves the old block as it was, as the real one does. */
void *
__wrap_realloc(void *ptr, size_t size)
{
    if (hit()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_realloc(ptr, size);
}

char *
__wrap_strdup(const char *s)
{
    if (hit()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_strdup(s);
}

int
__wrap_posix_memalign(void **memptr, size_t alignment, size_t size)
{
    if (hit())
        return ENOMEM;
    return __real_posix_memalign(memptr, alignment, size);
}
