/* fuzz.h -- what every fuzz target shares.
 *
 * A target is one file, fuzz_<name>.c, defining LLVMFuzzerTestOneInput():
 * it feeds the bytes to one decoder and checks what the decoder promises
 * (an accepted input is within its caps, a refused one leaves nothing
 * behind). The same file links either with libFuzzer (clang,
 * -DSIMSYNC_FUZZ=ON: coverage-guided runs, scripts/fuzz.sh) or with
 * replay.c (any compiler: ctest replays the corpus in tests/fuzz/corpus,
 * which holds real messages, the malformed cases and every crash found). */
#ifndef SIMSYNC_FUZZ_H
#define SIMSYNC_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken promise: report it and abort, so the fuzzer keeps the input. */
#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
            abort();                                                           \
        }                                                                      \
    } while (0)

#endif /* SIMSYNC_FUZZ_H */
