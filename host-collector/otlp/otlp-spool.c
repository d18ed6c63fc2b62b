/* SPDX-License-Identifier: MIT */
/* Room otlp: OTLP export of traces, logs and events (encode, queue, spool, libcurl); a core observer. */
#include "otlp-spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs-util.h"
#include "macro.h"

struct OtlpSpool {
        char *dir;
        int dir_fd;
        uint64_t max_bytes, bytes;
        OtlpSpoolEntry *entries; /* sorted by id */
        size_t n, cap;
        uint64_t next_id;
};

static const char *signal_name(ExportSignal s) {
        return export_signal_to_string(s);
}

static int signal_from_name(const char *n) {
        for (int i = 0; i < _EXPORT_SIGNAL_MAX; i++)
                if (strcmp(n, export_signal_to_string(i)) == 0)
                        return i;
        return -EINVAL;
}

static void entry_filename(const OtlpSpoolEntry *e, char *buf, size_t size) {
        snprintf(
                buf,
                size,
                "%020" PRIu64 "-%s-%" PRIu64 "-%s.otlp",
                e->id,
                signal_name(e->signal),
                e->items,
                e->gzip ? "gzip" : "identity");
}

static int parse_filename(const char *name, OtlpSpoolEntry *ret) {
        char sig[32], enc[16];
        uint64_t id, items;
        int n = 0;

        if (sscanf(name, "%20" SCNu64 "-%31[a-z]-%" SCNu64 "-%15[a-z].otlp%n", &id, sig, &items, enc, &n) != 4 ||
            name[n] != '\0' || n == 0)
                return -EINVAL;
        int s = signal_from_name(sig);
        if (s < 0 || id == 0)
                return -EINVAL;
        if (strcmp(enc, "gzip") != 0 && strcmp(enc, "identity") != 0)
                return -EINVAL;
        *ret = (OtlpSpoolEntry) { .id = id, .signal = s, .items = items, .gzip = strcmp(enc, "gzip") == 0 };
        return 0;
}

static int entry_cmp(const void *a, const void *b) {
        uint64_t x = ((const OtlpSpoolEntry *) a)->id, y = ((const OtlpSpoolEntry *) b)->id;
        return x < y ? -1 : x > y;
}

/* Keeps the entries sorted by id: mostly an append; a request that failed in flight goes back before the ones
 * spooled after it was taken. */
static int spool_add_entry(OtlpSpool *s, const OtlpSpoolEntry *e) {
        if (s->n == s->cap) {
                size_t cap = MAX(s->cap * 2, (size_t) 16);
                OtlpSpoolEntry *n = realloc(s->entries, cap * sizeof(OtlpSpoolEntry));
                if (!n)
                        return -ENOMEM;
                s->entries = n;
                s->cap = cap;
        }
        size_t i = s->n;
        while (i > 0 && s->entries[i - 1].id > e->id)
                i--;
        memmove(&s->entries[i + 1], &s->entries[i], (s->n - i) * sizeof(OtlpSpoolEntry));
        s->entries[i] = *e;
        s->n++;
        s->bytes += e->bytes;
        return 0;
}

int otlp_spool_open(const char *dir, uint64_t max_bytes, OtlpSpool **ret) {
        _cleanup_free_ char *copy = strdup(dir);
        int r;

        if (!copy)
                return -ENOMEM;
        r = mkdir_parents(dir, 0700);
        if (r < 0)
                return r;
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return -errno;

        OtlpSpool *s = calloc(1, sizeof(OtlpSpool));
        if (!s)
                return -ENOMEM;
        s->dir = TAKE_PTR(copy);
        s->max_bytes = max_bytes;
        s->next_id = 1;
        s->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (s->dir_fd < 0) {
                r = -errno;
                otlp_spool_free(s);
                return r;
        }

        int fd = fcntl(s->dir_fd, F_DUPFD_CLOEXEC, 3);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        if (!d) {
                r = -errno;
                safe_close(fd);
                otlp_spool_free(s);
                return r;
        }
        struct dirent *de;
        while ((de = readdir(d))) {
                OtlpSpoolEntry e;
                struct stat st;

                if (de->d_name[0] == '.') {
                        if (strncmp(de->d_name, ".tmp-", 5) == 0)
                                (void) unlinkat(s->dir_fd, de->d_name, 0);
                        continue;
                }
                if (parse_filename(de->d_name, &e) < 0)
                        continue;
                if (fstatat(s->dir_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
                        continue;
                e.bytes = (uint64_t) st.st_size;
                e.keys = UINT64_MAX;
                r = spool_add_entry(s, &e);
                if (r < 0) {
                        closedir(d);
                        otlp_spool_free(s);
                        return r;
                }
                s->next_id = MAX(s->next_id, e.id + 1);
        }
        closedir(d);
        if (s->n > 0)
                qsort(s->entries, s->n, sizeof(OtlpSpoolEntry), entry_cmp);
        *ret = s;
        return 0;
}

OtlpSpool *otlp_spool_free(OtlpSpool *s) {
        if (!s)
                return NULL;
        safe_close(s->dir_fd);
        free(s->entries);
        free(s->dir);
        free(s);
        return NULL;
}

uint64_t otlp_spool_next_id(OtlpSpool *s) {
        return s->next_id++;
}

static bool spool_has(const OtlpSpool *s, uint64_t id) {
        for (size_t i = s->n; i > 0; i--)
                if (s->entries[i - 1].id == id)
                        return true;
        return false;
}

int otlp_spool_push(
        OtlpSpool *s,
        uint64_t id,
        ExportSignal signal,
        const struct iovec *iov,
        size_t n_iov,
        uint64_t items,
        bool gzip,
        uint64_t keys) {
        char name[128], tmp[160];
        size_t len = 0;
        int r = 0;

        for (size_t i = 0; i < n_iov; i++)
                len += iov[i].iov_len;
        OtlpSpoolEntry e = { .id = id, .signal = signal, .items = items, .gzip = gzip, .bytes = len, .keys = keys };
        if (id == 0 || id >= s->next_id || spool_has(s, id))
                return -EEXIST;
        if (s->bytes + len > s->max_bytes)
                return -ENOSPC;
        entry_filename(&e, name, sizeof(name));
        snprintf(tmp, sizeof(tmp), ".tmp-%s", name);

        _cleanup_close_ int fd = openat(s->dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        for (size_t i = 0; i < n_iov && r >= 0; i++)
                r = write_all(fd, iov[i].iov_base, iov[i].iov_len);
        if (r < 0) {
                (void) unlinkat(s->dir_fd, tmp, 0);
                return r;
        }
        if (renameat(s->dir_fd, tmp, s->dir_fd, name) < 0) {
                r = -errno;
                (void) unlinkat(s->dir_fd, tmp, 0);
                return r;
        }
        r = spool_add_entry(s, &e);
        if (r < 0) {
                (void) unlinkat(s->dir_fd, name, 0);
                return r;
        }
        return 0;
}

const OtlpSpoolEntry *otlp_spool_entries(const OtlpSpool *s, size_t *ret_n) {
        *ret_n = s->n;
        return s->entries;
}

const OtlpSpoolEntry *otlp_spool_oldest(const OtlpSpool *s, ExportSignal signal) {
        for (size_t i = 0; i < s->n; i++)
                if (s->entries[i].signal == signal)
                        return &s->entries[i];
        return NULL;
}

int otlp_spool_read(const OtlpSpool *s, const OtlpSpoolEntry *e, uint8_t **ret, size_t *ret_len) {
        char name[128];
        struct stat st;

        entry_filename(e, name, sizeof(name));
        _cleanup_close_ int fd = openat(s->dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        size_t len = (size_t) st.st_size;
        _cleanup_free_ uint8_t *buf = malloc(MAX(len, (size_t) 1));
        if (!buf)
                return -ENOMEM;
        ssize_t n = read_full(fd, buf, len);
        if (n < 0)
                return (int) n;
        if ((size_t) n != len)
                return -EIO; /* shrank since fstat */
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

int otlp_spool_remove(OtlpSpool *s, uint64_t id) {
        char name[128];
        int r = 0;

        for (size_t i = 0; i < s->n; i++) {
                if (s->entries[i].id != id)
                        continue;
                entry_filename(&s->entries[i], name, sizeof(name));
                if (unlinkat(s->dir_fd, name, 0) < 0 && errno != ENOENT)
                        r = -errno;
                s->bytes -= s->entries[i].bytes;
                memmove(&s->entries[i], &s->entries[i + 1], (s->n - i - 1) * sizeof(OtlpSpoolEntry));
                s->n--;
                return r;
        }
        return -ENOENT;
}

uint64_t otlp_spool_bytes(const OtlpSpool *s) {
        return s->bytes;
}

size_t otlp_spool_count(const OtlpSpool *s, ExportSignal signal) {
        size_t n = 0;
        for (size_t i = 0; i < s->n; i++)
                n += s->entries[i].signal == signal;
        return n;
}
