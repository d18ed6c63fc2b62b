/* SPDX-License-Identifier: MIT */
/* Replays saved fuzz inputs without libFuzzer: runs LLVMFuzzerTestOneInput on every file named on the command
 * line, and on every regular file inside each directory named (in name order, so runs are reproducible).
 * Fails when an input cannot be read or when there was nothing to run, so a lost corpus does not pass. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs-util.h"
#include "fuzz.h"
#include "macro.h"

/* Inputs larger than this are not fuzz inputs anyone saved on purpose. */
#define REPLAY_MAX_BYTES (16u * 1024u * 1024u)

__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv) {
        return 0;
}

static int read_file(const char *path, uint8_t **ret_data, size_t *ret_size) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        _cleanup_free_ uint8_t *data = NULL;
        struct stat st;
        ssize_t k;

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_size > REPLAY_MAX_BYTES)
                return -EFBIG;

        /* One spare byte so that an empty file still gets a valid, distinct pointer. */
        data = malloc((size_t) st.st_size + 1);
        if (!data)
                return -ENOMEM;
        k = read_full(fd, data, (size_t) st.st_size);
        if (k < 0)
                return (int) k;

        *ret_data = TAKE_PTR(data);
        *ret_size = (size_t) k;
        return 0;
}

static int run_file(const char *path) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t size = 0;
        int r;

        r = read_file(path, &data, &size);
        if (r < 0) {
                fprintf(stderr, "fuzz-main: failed to read %s: %s\n", path, strerror(-r));
                return r;
        }
        LLVMFuzzerTestOneInput(data, size);
        return 0;
}

/* Runs path/name if it is a regular file (subdirectories are not descended into). */
static int run_entry(const char *path, const char *name, size_t *ran) {
        _cleanup_free_ char *file = NULL;
        struct stat st;
        int r;

        if (asprintf(&file, "%s/%s", path, name) < 0)
                return -ENOMEM;
        if (stat(file, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return 0;
        r = run_file(file);
        if (r < 0)
                return r;
        (*ran)++;
        return 0;
}

static int run_directory(const char *path, size_t *ran) {
        struct dirent **entries = NULL;
        int n, r = 0;

        n = scandir(path, &entries, NULL, alphasort);
        if (n < 0) {
                r = -errno;
                fprintf(stderr, "fuzz-main: failed to list %s: %s\n", path, strerror(-r));
                return r;
        }
        for (int i = 0; i < n; i++) {
                if (r >= 0 && entries[i]->d_name[0] != '.')
                        r = run_entry(path, entries[i]->d_name, ran);
                free(entries[i]);
        }
        free(entries);
        if (r < 0)
                fprintf(stderr, "fuzz-main: failed to replay %s: %s\n", path, strerror(-r));
        return r;
}

int main(int argc, char **argv) {
        size_t ran = 0;
        int r;

        if (argc < 2) {
                fprintf(stderr, "usage: %s FILE|DIRECTORY...\n", argv[0]);
                return EXIT_FAILURE;
        }
        LLVMFuzzerInitialize(&argc, &argv);

        for (int i = 1; i < argc; i++) {
                struct stat st;

                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "fuzz-main: %s: %s\n", argv[i], strerror(errno));
                        return EXIT_FAILURE;
                }
                if (S_ISDIR(st.st_mode))
                        r = run_directory(argv[i], &ran);
                else {
                        r = run_file(argv[i]);
                        if (r >= 0)
                                ran++;
                }
                if (r < 0)
                        return EXIT_FAILURE;
        }

        if (ran == 0) {
                fprintf(stderr, "fuzz-main: no inputs found\n");
                return EXIT_FAILURE;
        }
        printf("fuzz-main: %zu inputs ran without a finding\n", ran);
        return EXIT_SUCCESS;
}
