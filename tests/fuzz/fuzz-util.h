/* SPDX-License-Identifier: MIT */
#pragma once

/* Helpers the targets that need files share: one scratch directory per process (removed at exit), emptied
 * between inputs; and the checks of rendered JSON every renderer target makes. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "macro.h"
#include "utf8.h"

static char fuzz_scratch_path[256];

static inline int fuzz_remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        (void) st;
        (void) ftw;
        return type == FTW_DP ? rmdir(path) : unlink(path);
}

/* Removes everything below dir (and dir itself with itself). */
static inline void fuzz_remove_tree(const char *dir, bool itself) {
        struct stat st;

        if (lstat(dir, &st) < 0)
                return;
        if (itself) {
                (void) nftw(dir, fuzz_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
                return;
        }
        DIR *d = opendir(dir);
        if (!d)
                return;
        struct dirent *de;
        while ((de = readdir(d))) {
                _cleanup_free_ char *p = NULL;
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (asprintf(&p, "%s/%s", dir, de->d_name) < 0)
                        continue;
                (void) nftw(p, fuzz_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        }
        closedir(d);
}

static inline void fuzz_scratch_cleanup(void) {
        if (fuzz_scratch_path[0])
                fuzz_remove_tree(fuzz_scratch_path, true);
}

/* The process's scratch directory, created on first use, empty for every input that calls this. In $TMPDIR, else
 * in /dev/shm when there is one (a file system on disk makes every input cost milliseconds of metadata writes),
 * else in /tmp. */
static inline const char *fuzz_scratch_dir(void) {
        if (!fuzz_scratch_path[0]) {
                const char *tmp = getenv("TMPDIR");
                if (!tmp || !*tmp)
                        tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
                snprintf(fuzz_scratch_path, sizeof(fuzz_scratch_path), "%s/tether-fuzz-XXXXXX", tmp);
                FUZZ_ASSERT(mkdtemp(fuzz_scratch_path));
                atexit(fuzz_scratch_cleanup);
        } else
                fuzz_remove_tree(fuzz_scratch_path, false);
        return fuzz_scratch_path;
}

static inline int fuzz_write_file(const char *path, const void *data, size_t len) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
        const uint8_t *p = data;

        if (fd < 0)
                return -errno;
        while (len > 0) {
                ssize_t k = write(fd, p, len);
                if (k < 0)
                        return -errno;
                p += k;
                len -= (size_t) k;
        }
        return 0;
}

/* The whole file in a NUL-terminated buffer (NULL and *ret_len 0 when it does not exist). */
static inline char *fuzz_read_file(const char *path, size_t *ret_len) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;

        *ret_len = 0;
        if (fd < 0)
                return NULL;
        FUZZ_ASSERT(fstat(fd, &st) >= 0);
        char *buf = malloc((size_t) st.st_size + 1);
        FUZZ_ASSERT(buf);
        size_t done = 0;
        while (done < (size_t) st.st_size) {
                ssize_t k = read(fd, buf + done, (size_t) st.st_size - done);
                FUZZ_ASSERT(k >= 0);
                if (k == 0)
                        break;
                done += (size_t) k;
        }
        buf[done] = '\0';
        *ret_len = done;
        return buf;
}

/* Every string (keys included) of a JSON value is valid UTF-8 without NUL: what jansson accepts anyway, checked
 * again on what the renderers built. */
static inline void fuzz_check_json_strings(const json_t *v) {
        const char *key;
        json_t *item;
        size_t i;

        switch (json_typeof(v)) {
        case JSON_STRING:
                FUZZ_ASSERT(utf8_is_valid(json_string_value(v), json_string_length(v)));
                break;
        case JSON_OBJECT:
                json_object_foreach((json_t *) v, key, item) {
                        FUZZ_ASSERT(utf8_is_valid(key, strlen(key)));
                        fuzz_check_json_strings(item);
                }
                break;
        case JSON_ARRAY:
                json_array_foreach(v, i, item) fuzz_check_json_strings(item);
                break;
        default:
                break;
        }
}

/* A rendered object: not NULL (allocation failures aside, which the fuzzer does not cause), serializes, and the
 * text parses back to an equal value. Consumes o; returns the parsed copy (the caller frees it). */
static inline json_t *fuzz_check_rendered(json_t *o) {
        FUZZ_ASSERT(o);
        fuzz_check_json_strings(o);
        char *text = json_dumps(o, JSON_COMPACT | JSON_ENCODE_ANY);
        FUZZ_ASSERT(text);
        json_error_t err;
        json_t *back = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
        if (!back) {
                fprintf(stderr, "rendered JSON does not parse (%s): %s\n", err.text, text);
                abort();
        }
        FUZZ_ASSERT(json_equal(o, back));
        free(text);
        json_decref(o);
        return back;
}

/* Text a renderer wrote as JSON (one object): parses. Returns it (the caller frees it). */
static inline json_t *fuzz_check_json_text(const char *text, size_t len) {
        json_error_t err;
        json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
        if (!o) {
                fprintf(stderr, "JSON does not parse (%s): %.*s\n", err.text, (int) MIN(len, (size_t) 4096), text);
                abort();
        }
        fuzz_check_json_strings(o);
        return o;
}
