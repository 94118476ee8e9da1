/* fuzz_name.c -- restore path validation: replica_name_ok() must agree
 * with a second, plainly written statement of the rule on every input
 * (cut at the first NUL, as a C string would be): relative, at most
 * PATH_MAX/2 bytes, no empty, "." or ".." component, none over NAME_MAX,
 * no trailing slash. A name that passes can never leave a class folder. */
#include <limits.h>
#include <string.h>

#include "fuzz.h"
#include "replica.h"

static int
reference_ok(const char *name)
{
    size_t len = strlen(name), start = 0;

    if (len == 0 || len > PATH_MAX / 2 || name[0] == '/' ||
        name[len - 1] == '/')
        return 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && name[i] != '/')
            continue;
        size_t n = i - start;
        if (n == 0 || n > NAME_MAX ||
            (n == 1 && name[start] == '.') ||
            (n == 2 && name[start] == '.' && name[start + 1] == '.'))
            return 0;
        start = i + 1;
    }
    return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *name;
    int ok;

    if (size > 3 * PATH_MAX)
        return 0;
    name = malloc(size + 1);
    if (name == NULL)
        return 0;
    memcpy(name, data, size);
    name[size] = '\0';
    ok = replica_name_ok(name);
    FUZZ_CHECK(ok == reference_ok(name));
    if (ok) {
        FUZZ_CHECK(strstr(name, "//") == NULL);
        FUZZ_CHECK(strncmp(name, "../", 3) != 0 && strcmp(name, "..") != 0);
        FUZZ_CHECK(strstr(name, "/../") == NULL);
    }
    free(name);
    return 0;
}
