/* alloc_fault.h -- fail the Nth allocation made by libsimsync's own code
 * (or by the whole process).
 *
 * A test program linked with
 *     -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,
 *     --wrap=posix_memalign
 * sends every call to those functions from its own objects and from the
 * objects of the static libsimsync through the counting wrappers of
 * alloc_fault.c. While armed, the Nth such call fails as the C library
 * would when memory runs out (NULL; ENOMEM for posix_memalign), and every
 * later one succeeds again.
 *
 * Not counted there: allocations made inside shared libraries (liblmdb,
 * libprotobuf-c's unpack and pack helpers, libzstd, libsodium, and the C
 * library itself, e.g. realpath(), fopen(), opendir(), pthread_create()),
 * since --wrap only rewrites references in the objects being linked.
 * alloc_fault.c built with ALLOC_FAULT_INTERPOSE counts those as well:
 * the program then defines malloc and its kin, so every allocation of the
 * process goes through the counter (not with a sanitizer or valgrind,
 * which replace malloc themselves).
 *
 * The counter is process-wide and thread safe. Arm it only around the
 * code under test: the test's own allocations go through it too. */
#ifndef SIMSYNC_ALLOC_FAULT_H
#define SIMSYNC_ALLOC_FAULT_H

/* Fail the nth wrapped allocation from now (n >= 1), and start counting
 * from 0 for alloc_fault_calls(); 0 disarms and keeps the count. */
void alloc_fault_fail_nth(long n);

/* The calls still to go before the armed fault (0: none armed, or it has
 * fired). A loop arms call N, runs its workload, and stops once a run
 * leaves this above 0: the workload made fewer than N allocations. */
long alloc_fault_pending(void);

/* Wrapped allocations counted since the fault was last armed: up to and
 * including the failed one, or every one of a run that made fewer than N. */
long alloc_fault_calls(void);

#endif
