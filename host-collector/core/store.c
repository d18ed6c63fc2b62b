/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <zlib.h>

#include "envelope-cleanup.h"
#include "fs-util.h"
#include "jsonlog.h"
#include "machine-json.h"
#include "macro.h"
#include "traceparent.h"

#define MACHINE_FILE "machine.json"
#define MACHINE_FILE_MAX (1u << 20)

uint32_t store_crc32(const void *data, size_t n) {
        uLong c = crc32(0L, Z_NULL, 0);

        /* zlib takes uInt lengths; entries are far below 4 GiB, but stay correct for any n. */
        for (const Bytef *p = data; n > 0;) {
                uInt k = (uInt) MIN(n, (size_t) UINT32_MAX);
                c = crc32(c, p, k);
                p += k;
                n -= k;
        }
        return (uint32_t) c;
}

static void put_u32(uint8_t *p, uint32_t v) {
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v) {
        for (int i = 0; i < 8; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p) {
        uint64_t v = 0;
        for (int i = 7; i >= 0; i--)
                v = v << 8 | p[i];
        return v;
}

static int mkdir_p_one(const char *path, mode_t mode) {
        if (mkdir(path, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

static int mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);
        int r;

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = '\0';
                r = mkdir_p_one(p, mode);
                *s = '/';
                if (r < 0)
                        return r;
        }
        return mkdir_p_one(p, mode);
}

/* One tetherd per state directory: a second one would replay, rewrite and serve the first one's machines.
 * The lock goes with the process (flock), also when it is killed. */
static int store_lock(Store *s) {
        _cleanup_free_ char *path = NULL;

        if (asprintf(&path, "%s/lock", s->dir) < 0)
                return -ENOMEM;
        s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
        if (s->lock_fd < 0)
                return -errno;
        if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0)
                return errno == EWOULDBLOCK ? -EBUSY : -errno;
        return 0;
}

int store_open(const StoreConfig *config, Stats *stats, Store **ret) {
        int r;

        if (!config->dir || !*config->dir)
                return -EINVAL;
        Store *s = calloc(1, sizeof(Store));
        if (!s)
                return -ENOMEM;
        s->max_boot_bytes = config->max_boot_bytes ?: STORE_BOOT_FILE_BYTES_DEFAULT;
        s->sync = config->sync;
        s->machines_dir_fd = -1;
        s->lock_fd = -1;
        s->stats = stats;
        if (!(s->dir = strdup(config->dir)) || asprintf(&s->machines_dir, "%s/machines", config->dir) < 0) {
                s->machines_dir = NULL;
                store_free(s);
                return -ENOMEM;
        }
        r = mkdir_p(s->machines_dir, 0750);
        if (r >= 0)
                r = store_lock(s);
        if (r >= 0) {
                s->machines_dir_fd = open(s->machines_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (s->machines_dir_fd < 0)
                        r = -errno;
        }
        if (r >= 0 && s->sync)
                r = syncer_new(config->sync_threads ?: SYNCER_THREADS_DEFAULT, &s->syncer);
        if (r < 0) {
                store_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

int store_sync_fd(const Store *s) {
        return s->syncer ? syncer_fd(s->syncer) : -1;
}

void store_dispatch_syncs(Store *s) {
        if (s->syncer)
                (void) syncer_dispatch(s->syncer);
}

static int boot_file_write_buffer(BootFile *f);

/* sync_now: write and fdatasync what is pending on this thread (tetherd exits); otherwise pending data goes to
 * the syncer and nobody waits for it (the boot is dropped from memory, its file stays). */
static BootFile *boot_file_free(BootFile *f, bool sync_now) {
        if (!f)
                return NULL;
        (void) boot_file_write_buffer(f);
        syncer_cancel(f->sync_job);
        if (f->fd >= 0) {
                if ((f->dirty || f->sync_job) && f->store->sync) {
                        if (sync_now || !f->store->syncer)
                                (void) fdatasync(f->fd);
                        else
                                (void) syncer_submit(f->store->syncer, f->fd, -1, NULL, NULL, NULL);
                }
                safe_close(f->fd);
        }
        LIST_REMOVE(files, f->store->files, f);
        if (f->boot)
                f->boot->store_file = NULL;
        free(f->wbuf);
        free(f->lost);
        free(f->path);
        free(f->dir);
        free(f);
        return NULL;
}

static MachineSave *machine_save_free(MachineSave *ms);

Store *store_free(Store *s) {
        if (!s)
                return NULL;
        while (s->files)
                boot_file_free(s->files, true);
        /* Registrations on their way stay on their way (the syncer completes what was submitted); nobody is told:
         * tetherd is going away. */
        while (s->saves)
                machine_save_free(s->saves);
        /* Joins the threads after the syncs already submitted completed. */
        s->syncer = syncer_free(s->syncer);
        safe_close(s->machines_dir_fd);
        safe_close(s->lock_fd);
        free(s->dir);
        free(s->machines_dir);
        free(s);
        return NULL;
}

static char *machine_dir(const Store *s, const Machine *m) {
        char *p;
        if (asprintf(&p, "%s/%s", s->machines_dir, m->id) < 0)
                return NULL;
        return p;
}

typedef struct SaveWaiter SaveWaiter;
struct SaveWaiter {
        SaveWaiter *next;
        StoreSavedHandler done;
        void *userdata;
};

/* A registration on its way to the disk (store_save_machine()). */
struct MachineSave {
        Store *store;
        Machine *machine;
        LIST_FIELDS(MachineSave, saves);
        SyncJob *job;
        int fd;       /* the temporary file, while it is synced */
        int dir_fd;   /* the machine's directory */
        bool renamed; /* in place: the directory's sync is on its way */
        bool again;   /* saved again meanwhile: write the machine as it is now once this one completes */
        SaveWaiter *waiters, *next_waiters; /* answered by this save, by the next one */
};

static char *machine_file_path(const Store *s, const Machine *m, bool tmp) {
        char *p;
        if (asprintf(&p, "%s/%s/%s" MACHINE_FILE "%s", s->machines_dir, m->id, tmp ? "." : "", tmp ? ".tmp" : "") < 0)
                return NULL;
        return p;
}

/* Writes the registration to the temporary file and returns it open in *ret_fd; with ret_fd NULL (not syncing)
 * renames it into place at once. */
static int machine_file_write(Store *s, Machine *m, const char *dir, int *ret_fd) {
        _cleanup_free_ char *text = NULL, *path = machine_file_path(s, m, true), *final = NULL;
        _cleanup_close_ int fd = -1;
        int r;

        if (!path || (!ret_fd && !(final = machine_file_path(s, m, false))))
                return -ENOMEM;
        json_t *o = machine_registration_to_json(m);
        if (!o)
                return -ENOMEM;
        text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
        json_decref(o);
        if (!text)
                return -ENOMEM;

        r = mkdir_p_one(dir, 0750);
        if (r < 0)
                return r;
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
        if (fd < 0)
                return -errno;
        r = write_all(fd, text, strlen(text));
        if (r >= 0 && !ret_fd && rename(path, final) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlink(path);
                return r;
        }
        if (ret_fd)
                *ret_fd = TAKE_FD(fd);
        return 0;
}

static void on_save_synced(SyncJob *job, int error, void *userdata);

/* Writes the temporary file and hands its sync (and the machines directory's: a new machine's directory entry)
 * to the syncer. */
static int machine_save_start(MachineSave *ms) {
        Store *s = ms->store;
        _cleanup_free_ char *dir = machine_dir(s, ms->machine);
        int r;

        if (!dir)
                return -ENOMEM;
        ms->renamed = false;
        r = machine_file_write(s, ms->machine, dir, &ms->fd);
        if (r < 0)
                return r;
        if (ms->dir_fd < 0 && (ms->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
                return -errno;
        return syncer_submit(s->syncer, ms->fd, s->machines_dir_fd, on_save_synced, ms, &ms->job);
}

static void save_waiters_free(SaveWaiter *w) {
        while (w) {
                SaveWaiter *next = w->next;
                free(w);
                w = next;
        }
}

/* Closes the temporary file, and removes it unless it was renamed into place. */
static void machine_save_drop_tmp(MachineSave *ms) {
        if (ms->fd >= 0 && !ms->renamed) {
                _cleanup_free_ char *tmp = machine_file_path(ms->store, ms->machine, true);
                if (tmp)
                        (void) unlink(tmp);
        }
        ms->fd = safe_close(ms->fd);
}

static MachineSave *machine_save_free(MachineSave *ms) {
        if (!ms)
                return NULL;
        syncer_cancel(ms->job);
        machine_save_drop_tmp(ms);
        safe_close(ms->dir_fd);
        save_waiters_free(ms->waiters);
        save_waiters_free(ms->next_waiters);
        LIST_REMOVE(saves, ms->store->saves, ms);
        ms->machine->store_save = NULL;
        free(ms);
        return NULL;
}

/* Tells the waiters and frees them. The handlers may remove the machine: nothing here touches it after the first
 * call. */
static void save_waiters_notify(Store *s, Machine *m, SaveWaiter *w, int error) {
        while (w) {
                SaveWaiter *next = w->next;
                if (w->done)
                        w->done(s, m, error, w->userdata);
                free(w);
                w = next;
        }
}

static void machine_save_complete(MachineSave *ms, int error) {
        Store *s = ms->store;
        Machine *m = ms->machine;
        SaveWaiter *answered = TAKE_PTR(ms->waiters);

        machine_save_drop_tmp(ms); /* after a success it was renamed and closed already */
        if (error >= 0)
                m->persisted = true;

        if (ms->again) {
                /* The machine changed meanwhile: its newest registration is what the waiters get. */
                ms->again = false;
                ms->waiters = TAKE_PTR(ms->next_waiters);
                int r = machine_save_start(ms);
                if (r < 0) {
                        /* The newest registration did not reach the disk: nobody's did, as far as they know. */
                        SaveWaiter **tail = &answered;
                        while (*tail)
                                tail = &(*tail)->next;
                        *tail = TAKE_PTR(ms->waiters);
                        machine_save_free(ms);
                        save_waiters_notify(s, m, answered, r);
                        return;
                }
        } else
                machine_save_free(ms);
        save_waiters_notify(s, m, answered, error);
}

static void on_save_synced(SyncJob *job, int error, void *userdata) {
        MachineSave *ms = userdata;
        Store *s = ms->store;
        int r;

        ms->job = NULL;
        if (error < 0 || ms->renamed)
                return machine_save_complete(ms, error);

        _cleanup_free_ char *tmp = machine_file_path(s, ms->machine, true),
                            *final = machine_file_path(s, ms->machine, false);
        if (!tmp || !final)
                return machine_save_complete(ms, -ENOMEM);
        if (rename(tmp, final) < 0)
                return machine_save_complete(ms, -errno);
        ms->renamed = true;
        ms->fd = safe_close(ms->fd);
        r = syncer_submit(s->syncer, -1, ms->dir_fd, on_save_synced, ms, &ms->job);
        if (r < 0)
                machine_save_complete(ms, r);
}

int store_save_machine(Store *s, Machine *m, StoreSavedHandler done, void *userdata) {
        _cleanup_free_ char *dir = NULL;
        int r;

        if (!s->syncer) {
                if (!(dir = machine_dir(s, m)))
                        return -ENOMEM;
                r = machine_file_write(s, m, dir, NULL);
                if (r < 0)
                        return r;
                m->persisted = true;
                return 0;
        }

        SaveWaiter *w = calloc(1, sizeof(SaveWaiter));
        if (!w)
                return -ENOMEM;
        *w = (SaveWaiter) { .done = done, .userdata = userdata };

        if (m->store_save) {
                /* One on its way already: this one follows it, with whatever changed meanwhile. */
                w->next = m->store_save->next_waiters;
                m->store_save->next_waiters = w;
                m->store_save->again = true;
                return 1;
        }

        MachineSave *ms = calloc(1, sizeof(MachineSave));
        if (!ms) {
                free(w);
                return -ENOMEM;
        }
        *ms = (MachineSave) { .store = s, .machine = m, .fd = -1, .dir_fd = -1, .waiters = w };
        LIST_PREPEND(saves, s->saves, ms);
        m->store_save = ms;
        r = machine_save_start(ms);
        if (r < 0) {
                machine_save_free(ms);
                return r;
        }
        return 1;
}

int store_remove_machine(Store *s, Machine *m) {
        _cleanup_free_ char *dir = machine_dir(s, m);
        int r = 0;

        if (!dir)
                return -ENOMEM;
        if (m->store_save) {
                MachineSave *ms = m->store_save;
                SaveWaiter *w = TAKE_PTR(ms->waiters), *next = TAKE_PTR(ms->next_waiters);
                machine_save_free(ms);
                save_waiters_notify(s, m, w, -ECANCELED);
                save_waiters_notify(s, m, next, -ECANCELED);
        }
        for (size_t i = 0; i < m->n_boots; i++)
                if (m->boots[i]->store_file) {
                        BootFile *f = m->boots[i]->store_file;
                        f->dirty = false; /* about to be deleted: no point syncing */
                        f->wlen = 0;
                        boot_file_free(f, false);
                }

        DIR *d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : -errno;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT && r == 0)
                        r = -errno;
        }
        closedir(d);
        if (rmdir(dir) < 0 && errno != ENOENT && r == 0)
                r = -errno;
        if (s->syncer)
                (void) syncer_submit(s->syncer, -1, s->machines_dir_fd, NULL, NULL, NULL);
        m->persisted = false;
        return r;
}

static int boot_file_new(Store *s, Machine *m, Boot *b, uint64_t size, BootFile **ret) {
        BootFile *f = calloc(1, sizeof(BootFile));
        if (!f)
                return -ENOMEM;
        *f = (BootFile) { .store = s, .boot = b, .fd = -1, .size = size, .written = size };
        if (!(f->dir = machine_dir(s, m)) || asprintf(&f->path, "%s/boot-%08" PRIu64 ".rec", f->dir, b->index) < 0) {
                free(f->dir);
                free(f);
                return -ENOMEM;
        }
        LIST_PREPEND(files, s->files, f);
        b->store_file = f;
        *ret = f;
        return 0;
}

static int boot_file_open(BootFile *f) {
        if (f->fd >= 0)
                return 0;
        f->fd = open(f->path, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (f->fd < 0)
                return -errno;
        return 0;
}

/* Writes the buffered entries with one write(). On failure the file is rolled back to its last whole entry. */
static int boot_file_write_buffer(BootFile *f) {
        Stats *st = f->store->stats;
        int r;

        if (f->wlen == 0)
                return 0;
        r = boot_file_open(f);
        if (r >= 0)
                r = write_all(f->fd, f->wbuf, f->wlen);
        if (r < 0) {
                /* Keep the file a sequence of whole entries: a half-written one would be truncated on load
                 * anyway, but everything appended after it would be lost with it. */
                if (f->fd < 0 || ftruncate(f->fd, (off_t) f->written) < 0)
                        f->broken = true;
                /* Not dropped: none of them is acked (the session takes them out of the file's ack mark and has
                 * the agent resend them). */
                if (st)
                        st->persist_errors++;
                f->size = f->written;
                /* Kept for store_take_lost(): the entries of an earlier failure nobody took are of no use now. */
                free(f->lost);
                f->lost = TAKE_PTR(f->wbuf);
                f->lost_len = f->wlen;
                f->wcap = 0;
        } else {
                f->written += f->wlen;
                f->dirty = true;
        }
        f->wlen = 0;
        f->wentries = 0;
        /* A burst's buffer is not kept for an idle boot: a thousand quiet boots hold none. */
        if (f->wcap > 4096) {
                f->wbuf = mfree(f->wbuf);
                f->wcap = 0;
        }
        return r;
}

static int append_entry(BootFile *f, StoreEntryType type, uint64_t recv_unix_ns, const void *payload, size_t len) {
        size_t body = STORE_ENTRY_BODY_HEADER_SIZE + len, total = STORE_ENTRY_HEADER_SIZE + body;
        int r;

        if (f->broken)
                return -EIO;
        if (body > STORE_ENTRY_MAX)
                return -EMSGSIZE;
        if (f->full || f->size + total > f->store->max_boot_bytes) {
                f->full = true;
                return -EFBIG;
        }
        if (f->wlen > 0 && f->wlen + total > STORE_WRITE_BUFFER_MAX) {
                r = boot_file_write_buffer(f);
                if (r < 0)
                        /* -EFBIG means the boot's bound to callers; a write's (RLIMIT_FSIZE) is a lack of space. */
                        return r == -EFBIG ? -ENOSPC : r;
        }
        if (f->wlen + total > f->wcap) {
                size_t cap = MAX(MAX(f->wcap * 2, (size_t) 4096), f->wlen + total);
                uint8_t *p = realloc(f->wbuf, cap);
                if (!p)
                        return -ENOMEM;
                f->wbuf = p;
                f->wcap = cap;
        }

        uint8_t *h = f->wbuf + f->wlen, *b = h + STORE_ENTRY_HEADER_SIZE;
        b[0] = (uint8_t) type;
        put_u64(b + 1, recv_unix_ns);
        if (len > 0)
                memcpy(b + STORE_ENTRY_BODY_HEADER_SIZE, payload, len);
        put_u32(h, (uint32_t) body);
        put_u32(h + 4, store_crc32(b, body));
        f->wlen += total;
        f->wentries++;
        f->size += total;
        return 0;
}

int store_begin_boot(Store *s, Machine *m, Boot *b) {
        _cleanup_free_ char *header = NULL;
        char trace[33];
        BootFile *f;
        int r;

        if (b->store_file)
                return 0;
        r = boot_file_new(s, m, b, 0, &f);
        if (r < 0)
                return r;
        r = mkdir_p_one(f->dir, 0750);
        if (r < 0) {
                boot_file_free(f, false);
                return r;
        }
        f->fd = open(f->path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0640);
        if (f->fd < 0) {
                r = -errno;
                boot_file_free(f, false);
                return r;
        }

        hex_encode(b->trace_id, 16, trace);
        json_t *o = json_pack(
                "{s:s, s:s, s:I, s:I}",
                "boot_id",
                b->boot_id,
                "trace_id",
                trace,
                "index",
                (json_int_t) b->index,
                "created_unix_ns",
                (json_int_t) b->first_seen_unix_ns);
        if (o && b->host_start_unix_ns)
                json_object_set_new(o, "host_start_unix_ns", json_integer((json_int_t) b->host_start_unix_ns));
        header = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!header) {
                boot_file_free(f, false);
                return -ENOMEM;
        }

        r = write_all(f->fd, STORE_BOOT_MAGIC, strlen(STORE_BOOT_MAGIC));
        if (r >= 0) {
                f->size = f->written = strlen(STORE_BOOT_MAGIC);
                r = append_entry(f, STORE_ENTRY_BOOT, b->first_seen_unix_ns, header, strlen(header));
        }
        if (r >= 0)
                r = boot_file_write_buffer(f);
        if (r < 0) {
                _cleanup_free_ char *path = strdup(f->path);
                f->dirty = false;
                boot_file_free(f, false);
                if (path)
                        (void) unlink(path);
                return r;
        }
        /* Nothing in it is acked yet: the file and its directory entry become durable with its first sync, off
         * this thread, before the first Ack. */
        f->needs_dir_sync = true;
        return 1;
}

/* Below this much free space a repair is not tried: the resend it asks for would fail again. */
#define STORE_REPAIR_MIN_FREE_BYTES (1u << 20)

int store_repair_boot(Store *s, Machine *m, Boot *b) {
        BootFile *f = b->store_file;
        struct statvfs sv;

        if (statvfs(s->dir, &sv) < 0)
                return -errno;
        /* tetherd usually runs as root, which may use the blocks reserved for it. */
        uint64_t free_blocks = geteuid() == 0 ? sv.f_bfree : sv.f_bavail;
        if (free_blocks < STORE_REPAIR_MIN_FREE_BYTES / MAX(sv.f_frsize, (unsigned long) 1))
                return -ENOSPC;
        if (!f)
                return store_begin_boot(s, m, b);
        if (f->broken) {
                /* A failed write whose rollback failed too: cut the partial entry off now. */
                int r = boot_file_open(f);
                if (r < 0)
                        return r;
                if (ftruncate(f->fd, (off_t) f->written) < 0)
                        return -errno;
                f->size = f->written;
                f->broken = false;
        }
        return 0;
}

int store_remove_boot(Store *s, Boot *b) {
        BootFile *f = b ? b->store_file : NULL;
        if (!f)
                return 0;

        _cleanup_free_ char *path = strdup(f->path);
        f->dirty = false; /* about to be deleted: no point writing or syncing */
        f->wlen = 0;
        boot_file_free(f, false);
        if (!path)
                return -ENOMEM;
        if (unlink(path) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

int store_append(
        Store *s,
        Boot *b,
        StoreEntryType type,
        uint64_t recv_unix_ns,
        const void *payload,
        size_t len,
        uint64_t *ret_offset) {
        BootFile *f = b->store_file;
        int r;

        if (!f)
                return -ENOENT;
        uint64_t offset = f->size;
        r = append_entry(f, type, recv_unix_ns, payload, len);
        if (r < 0)
                return r;
        if (ret_offset)
                *ret_offset = offset;
        return 0;
}

int store_append_clock(Store *s, Boot *b, uint64_t recv_unix_ns, const ClockEstimate *e, bool fixed) {
        char buf[128];
        int n = snprintf(
                buf,
                sizeof(buf),
                "{\"offset_ns\":%" PRIi64 ",\"error_ns\":%" PRIu64 "%s}",
                e->offset_ns,
                e->error_ns,
                fixed ? ",\"fixed\":true" : "");
        return store_append(s, b, STORE_ENTRY_CLOCK, recv_unix_ns, buf, (size_t) n, NULL);
}

int store_append_instance(
        Store *s, Boot *b, uint64_t recv_unix_ns, const uint8_t *id, size_t id_len, uint64_t seq_offset) {
        uint8_t buf[8 + BOOT_INSTANCE_ID_MAX];

        /* Binary, not JSON like 'B' and 'C': an offset comes from guest-chosen seqs and may exceed INT64_MAX. */
        if (id_len == 0 || id_len > BOOT_INSTANCE_ID_MAX)
                return -EINVAL;
        put_u64(buf, seq_offset);
        memcpy(buf + 8, id, id_len);
        return store_append(s, b, STORE_ENTRY_INSTANCE, recv_unix_ns, buf, 8 + id_len, NULL);
}

int store_boot_flush(Store *s, Boot *b) {
        BootFile *f = b ? b->store_file : NULL;
        return f ? boot_file_write_buffer(f) : 0;
}

int store_take_lost(Store *s, Boot *b, StoreLostFn fn, void *userdata) {
        BootFile *f = b ? b->store_file : NULL;
        int r = 0;

        if (!f || !f->lost)
                return 0;
        _cleanup_free_ uint8_t *lost = TAKE_PTR(f->lost);
        size_t len = f->lost_len, off = 0;
        f->lost_len = 0;
        if (!fn)
                return 0;
        /* Whole entries written by append_entry(): no need to check their CRCs. */
        while (r >= 0 && off + STORE_ENTRY_HEADER_SIZE + STORE_ENTRY_BODY_HEADER_SIZE <= len) {
                uint32_t body = get_u32(lost + off);
                const uint8_t *p = lost + off + STORE_ENTRY_HEADER_SIZE;
                if (body < STORE_ENTRY_BODY_HEADER_SIZE || off + STORE_ENTRY_HEADER_SIZE + body > len)
                        return -EBADMSG;
                r = fn((StoreEntryType) p[0],
                       get_u64(p + 1),
                       p + STORE_ENTRY_BODY_HEADER_SIZE,
                       body - STORE_ENTRY_BODY_HEADER_SIZE,
                       userdata);
                off += STORE_ENTRY_HEADER_SIZE + body;
        }
        return r < 0 ? r : 0;
}

int store_append_boot_state(Store *s, Boot *b, uint64_t recv_unix_ns) {
        int r;

        for (size_t i = 0; i < b->n_instances; i++) {
                r = store_append_instance(
                        s, b, recv_unix_ns, b->instances[i].id, b->instances[i].id_len, b->instances[i].seq_offset);
                if (r < 0)
                        return r;
        }
        if (b->clock.valid)
                return store_append_clock(s, b, recv_unix_ns, &b->clock, b->clock_fixed);
        return 0;
}

uint64_t store_boot_written(const Store *s, const Boot *b) {
        const BootFile *f = b ? b->store_file : NULL;
        return f ? f->written : 0;
}

static int boot_file_submit_sync(BootFile *f);

static void on_sync_done(SyncJob *job, int error, void *userdata) {
        BootFile *f = userdata;
        Stats *st = f->store->stats;

        f->sync_job = NULL;
        if (st) {
                st->syncs++;
                if (error < 0)
                        st->persist_errors++;
        }
        if (error >= 0)
                f->needs_dir_sync = false;
        f->mark_durable = MAX(f->mark_durable, f->mark_submitted);
        if (f->mark_requested > f->mark_durable) {
                if (!f->dirty)
                        /* Nothing was written after the completed sync was submitted: it covered every record up to
                         * the newest mark too. */
                        f->mark_durable = f->mark_requested;
                else if (boot_file_submit_sync(f) < 0)
                        /* Retried at the next request; the marks stay honest meanwhile. */
                        f->mark_submitted = f->mark_durable;
        }
        if (f->on_durable)
                f->on_durable(f->boot, f->mark_durable, error, f->on_durable_userdata);
}

static int boot_file_submit_sync(BootFile *f) {
        _cleanup_close_ int dfd = -1;
        int r;

        if (f->needs_dir_sync) {
                /* The directory entry of a new file, synced by the same job after the file. */
                dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd < 0)
                        return -errno;
        }
        r = syncer_submit(f->store->syncer, f->fd, dfd, on_sync_done, f, &f->sync_job);
        if (r < 0)
                return r;
        f->mark_submitted = f->mark_requested;
        f->dirty = false;
        return 0;
}

int store_request_sync(Store *s, Boot *b, uint64_t mark, StoreDurableHandler handler, void *userdata) {
        BootFile *f = b ? b->store_file : NULL;
        int r;

        if (!f)
                return 1;
        (void) boot_file_write_buffer(f); /* a failure is counted; what was written before still counts */
        f->mark_requested = MAX(f->mark_requested, mark);
        if (!s->syncer || f->fd < 0 || (!f->dirty && !f->sync_job)) {
                /* Nothing written since the last completed sync (or nothing to sync with). */
                f->mark_durable = MAX(f->mark_durable, f->mark_requested);
                return 1;
        }
        if (handler) {
                f->on_durable = handler;
                f->on_durable_userdata = userdata;
        }
        if (f->sync_job)
                return 0; /* the next sync is submitted when this one completes */
        r = boot_file_submit_sync(f);
        if (r < 0) {
                f->on_durable = NULL;
                return r;
        }
        return 0;
}

void store_forget_sync_handler(Store *s, Boot *b, void *userdata) {
        BootFile *f = b ? b->store_file : NULL;
        if (f && f->on_durable_userdata == userdata) {
                f->on_durable = NULL;
                f->on_durable_userdata = NULL;
        }
}

uint64_t store_durable_mark(const Store *s, const Boot *b, uint64_t fallback) {
        const BootFile *f = b ? b->store_file : NULL;
        return f ? f->mark_durable : fallback;
}

int store_sync(Store *s, Boot *b, uint64_t mark) {
        BootFile *f = b ? b->store_file : NULL;
        int r;

        if (!f)
                return 0;
        r = boot_file_write_buffer(f);
        f->mark_requested = MAX(f->mark_requested, mark);
        if (r < 0)
                return r;
        if (f->fd < 0 || (!f->dirty && !f->sync_job) || !s->sync) {
                f->dirty = false;
                f->mark_durable = MAX(f->mark_durable, f->mark_requested);
                return 0;
        }
        r = fdatasync(f->fd) < 0 ? -errno : 0;
        if (r >= 0 && f->needs_dir_sync) {
                _cleanup_close_ int dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd < 0 || fsync(dfd) < 0)
                        r = -errno;
                else
                        f->needs_dir_sync = false;
        }
        /* As for a sync on the threads: a failure is counted and the mark still advances. */
        f->dirty = false;
        f->mark_durable = MAX(f->mark_durable, f->mark_requested);
        if (s->stats) {
                s->stats->syncs++;
                if (r < 0)
                        s->stats->persist_errors++;
        }
        return r < 0 ? r : 1;
}

/* ---- reading back ---- */

#define SCAN_BUFFER_SIZE (64u << 10)

typedef struct ScanBuffer {
        int fd;
        uint8_t *buf;
        size_t cap;
        uint64_t pos; /* file offset of buf[0] */
        size_t have;
} ScanBuffer;

static void scan_buffer_done(ScanBuffer *sb) {
        free(sb->buf);
        sb->buf = NULL;
        sb->fd = safe_close(sb->fd);
}

/* Makes [offset, offset + n) of the file available in the buffer, reading ahead up to end. Returns a pointer to
 * it, or NULL with errno set (EBADMSG: the file is shorter). */
static const uint8_t *scan_need(ScanBuffer *sb, uint64_t offset, size_t n, uint64_t end) {
        if (offset >= sb->pos && offset + n <= sb->pos + sb->have)
                return sb->buf + (offset - sb->pos);
        if (offset + n > end) {
                errno = EBADMSG;
                return NULL;
        }
        if (n > sb->cap) {
                uint8_t *a = realloc(sb->buf, n);
                if (!a) {
                        errno = ENOMEM;
                        return NULL;
                }
                sb->buf = a;
                sb->cap = n;
        }
        size_t want = (size_t) MIN((uint64_t) sb->cap, end - offset), got = 0;
        sb->pos = offset;
        sb->have = 0;
        while (got < want) {
                ssize_t k = pread(sb->fd, sb->buf + got, want - got, (off_t) (offset + got));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return NULL;
                if (k == 0)
                        break;
                got += (size_t) k;
        }
        sb->have = got;
        if (got < n) {
                errno = EBADMSG;
                return NULL;
        }
        return sb->buf;
}

int store_scan_boot(Store *s, Boot *b, uint64_t offset, StoreScanFn fn, void *userdata) {
        _cleanup_(scan_buffer_done) ScanBuffer sb = { .fd = -1 };
        BootFile *f;
        int r;

        r = store_boot_flush(s, b);
        if (r < 0)
                return r;
        f = b->store_file;
        if (!f)
                return 0;
        /* What was written; appends after this call are for the next scan. */
        uint64_t end = f->size;
        offset = MAX(offset, (uint64_t) strlen(STORE_BOOT_MAGIC));
        if (offset >= end)
                return 0;

        sb.fd = open(f->path, O_RDONLY | O_CLOEXEC);
        if (sb.fd < 0)
                return -errno;
        sb.cap = SCAN_BUFFER_SIZE;
        sb.buf = malloc(sb.cap);
        if (!sb.buf)
                return -ENOMEM;

        r = 0;
        while (offset < end && r == 0) {
                const uint8_t *p = scan_need(&sb, offset, STORE_ENTRY_HEADER_SIZE, end);
                if (!p) {
                        r = -errno;
                        break;
                }
                uint32_t len = get_u32(p), crc = get_u32(p + 4);
                if (len < STORE_ENTRY_BODY_HEADER_SIZE || len > STORE_ENTRY_MAX) {
                        r = -EBADMSG;
                        break;
                }
                p = scan_need(&sb, offset, STORE_ENTRY_HEADER_SIZE + len, end);
                if (!p) {
                        r = -errno;
                        break;
                }
                const uint8_t *body = p + STORE_ENTRY_HEADER_SIZE;
                if (store_crc32(body, len) != crc) {
                        r = -EBADMSG;
                        break;
                }
                StoreEntryView v = {
                        .offset = offset,
                        .next_offset = offset + STORE_ENTRY_HEADER_SIZE + len,
                        .type = (StoreEntryType) body[0],
                        .recv_unix_ns = get_u64(body + 1),
                        .payload = body + STORE_ENTRY_BODY_HEADER_SIZE,
                        .len = len - STORE_ENTRY_BODY_HEADER_SIZE,
                };
                r = fn(&v, userdata);
                offset = v.next_offset;
        }
        return r;
}

/* ---- loading ---- */

static int unhex_trace_id(const char *s, uint8_t out[16]) {
        if (!s || strlen(s) != 32)
                return -EINVAL;
        for (int i = 0; i < 16; i++) {
                int v = 0;
                for (int j = 0; j < 2; j++) {
                        char c = s[2 * i + j];
                        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
                        if (d < 0)
                                return -EINVAL;
                        v = v << 4 | d;
                }
                out[i] = (uint8_t) v;
        }
        return 0;
}

static int replay_entry(
        Store *s,
        Registry *reg,
        Machine *m,
        Boot **b,
        uint64_t index,
        uint64_t file_offset,
        uint8_t type,
        uint64_t recv,
        const uint8_t *payload,
        size_t len,
        size_t *records) {
        _cleanup_envelope_ Tether__Envelope *e = NULL;
        EnvelopeLimits limits = ENVELOPE_LIMITS_DEFAULT;
        int r;

        if (!*b) {
                /* The first entry creates the boot. */
                if (type != STORE_ENTRY_BOOT)
                        return -EBADMSG;
                json_error_t jerr;
                json_t *o = json_loadb((const char *) payload, len, 0, &jerr);
                const char *boot_id = json_string_value(json_object_get(o, "boot_id"));
                const char *trace = json_string_value(json_object_get(o, "trace_id"));
                uint64_t created = (uint64_t) json_integer_value(json_object_get(o, "created_unix_ns"));
                json_int_t host_start = json_integer_value(json_object_get(o, "host_start_unix_ns"));
                uint8_t trace_id[16];
                Boot *nb, *evicted = NULL;

                if (!boot_id || unhex_trace_id(trace, trace_id) < 0 || machine_find_boot(m, boot_id)) {
                        json_decref(o);
                        return -EBADMSG;
                }
                r = boot_new(index, boot_id, trace_id, &reg->config.boot_limits, &nb);
                json_decref(o);
                if (r < 0)
                        return r;
                nb->first_seen_unix_ns = created;
                nb->host_start_unix_ns = host_start > 0 ? (uint64_t) host_start : 0;
                r = machine_add_boot(m, nb, reg->config.max_boots, &evicted);
                if (r < 0) {
                        boot_free(nb);
                        return r;
                }
                if (evicted) {
                        (void) store_remove_boot(s, evicted);
                        boot_free(evicted);
                }
                *b = nb;
                return 0;
        }

        switch (type) {
        case STORE_ENTRY_HELLO:
                if (envelope_unpack(payload, len, &e) < 0 || e->msg_case != TETHER__ENVELOPE__MSG_HELLO ||
                    envelope_validate(e, &limits) != PROTOCOL_ERROR_NONE)
                        return -EBADMSG;
                return boot_update_from_hello(*b, e->hello, recv);
        case STORE_ENTRY_RECORD: {
                BootApplyResult res;
                if (envelope_unpack(payload, len, &e) < 0 || !envelope_is_record(e) ||
                    envelope_validate(e, &limits) != PROTOCOL_ERROR_NONE)
                        return -EBADMSG;
                /* The file is the log store: log records are indexed, not held in memory. */
                r = boot_apply_record_at(*b, &m->ready_condition, e, recv, file_offset, BOOT_APPLY_INDEX_ONLY, &res);
                if (r < 0)
                        return r;
                if (!res.duplicate)
                        (*records)++;
                return 0;
        }
        case STORE_ENTRY_CLOCK: {
                json_t *o = json_loadb((const char *) payload, len, 0, NULL);
                json_t *off = json_object_get(o, "offset_ns"), *err = json_object_get(o, "error_ns");
                if (!json_is_integer(off) || !json_is_integer(err)) {
                        json_decref(o);
                        return -EBADMSG;
                }
                ClockEstimate ce = {
                        .valid = true,
                        .offset_ns = (int64_t) json_integer_value(off),
                        .error_ns = (uint64_t) json_integer_value(err),
                        /* The sample's monotonic time is meaningless after a restart: treat it as old, so a
                         * fresh sample within 2x replaces it. */
                        .taken_monotonic_ns = 0,
                };
                bool fixed = json_is_true(json_object_get(o, "fixed"));
                json_decref(o);
                boot_restore_clock(*b, &ce, fixed);
                return 0;
        }
        case STORE_ENTRY_INSTANCE: {
                uint64_t offset;
                if (len <= 8 || len > 8 + BOOT_INSTANCE_ID_MAX ||
                    boot_find_instance(*b, payload + 8, len - 8, &offset) > 0)
                        return -EBADMSG;
                return boot_add_instance(*b, payload + 8, len - 8, get_u64(payload));
        }
        default:
                return -EBADMSG;
        }
}

static int load_boot_file(
        Store *s,
        Registry *reg,
        Machine *m,
        const char *dir,
        const char *name,
        uint64_t index,
        StoreLoadReport *report) {
        _cleanup_free_ char *path = NULL;
        _cleanup_free_ uint8_t *body = NULL;
        _cleanup_close_ int fd = -1;
        uint8_t magic[8], hdr[STORE_ENTRY_HEADER_SIZE];
        size_t records = 0;
        uint64_t good;
        Boot *b = NULL;
        bool torn = false;
        ssize_t k;
        int r;

        if (asprintf(&path, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return log_warning_errno(errno, "Failed to open %s, skipping: %m", path);
        k = read_full(fd, magic, sizeof(magic));
        if (k != (ssize_t) sizeof(magic) || memcmp(magic, STORE_BOOT_MAGIC, sizeof(magic)) != 0) {
                log_warning("%s is not a tether boot file, skipping it.", path);
                return 0;
        }
        good = sizeof(magic);
        body = malloc(STORE_ENTRY_MAX);
        if (!body)
                return -ENOMEM;

        for (;;) {
                k = read_full(fd, hdr, sizeof(hdr));
                if (k == 0)
                        break;
                if (k < 0)
                        return log_warning_errno((int) k, "Failed to read %s: %m", path);
                uint32_t len = get_u32(hdr), crc = get_u32(hdr + 4);
                if (k < (ssize_t) sizeof(hdr) || len < STORE_ENTRY_BODY_HEADER_SIZE || len > STORE_ENTRY_MAX) {
                        torn = true;
                        break;
                }
                k = read_full(fd, body, len);
                if (k < 0)
                        return log_warning_errno((int) k, "Failed to read %s: %m", path);
                if ((size_t) k < len || store_crc32(body, len) != crc) {
                        torn = true;
                        break;
                }
                r = replay_entry(
                        s,
                        reg,
                        m,
                        &b,
                        index,
                        good,
                        body[0],
                        get_u64(body + 1),
                        body + STORE_ENTRY_BODY_HEADER_SIZE,
                        len - STORE_ENTRY_BODY_HEADER_SIZE,
                        &records);
                if (r == -ENOMEM)
                        return log_oom();
                if (r < 0) {
                        if (!b) {
                                log_warning("%s does not start with a valid boot entry, skipping it.", path);
                                return 0;
                        }
                        /* Written by us after validation, with a good CRC: should never happen. Skip just the
                         * entry; the rest of the boot is still good data. */
                        log_warning("Skipping an invalid entry at offset %" PRIu64 " of %s.", good, path);
                }
                good += sizeof(hdr) + len;
        }

        if (torn) {
                /* Only a write interrupted by a crash leaves this; it was never acked. */
                log_warning("Truncating the incomplete tail of %s at offset %" PRIu64 ".", path, good);
                if (ftruncate(fd, (off_t) good) < 0)
                        log_warning_errno(errno, "Failed to truncate %s: %m", path);
                report->torn_tails++;
        }
        if (!b) {
                log_warning("%s holds no boot, skipping it.", path);
                return 0;
        }

        /* What the file holds is what a restarted tetherd acks (Welcome.acked_seq): make sure it is on disk, not
         * just in the page cache of a kernel that might still crash. Cheap for a file that is clean. */
        if (s->sync && fdatasync(fd) < 0)
                log_warning_errno(errno, "Failed to sync %s: %m", path);

        BootFile *f;
        r = boot_file_new(s, m, b, good, &f);
        if (r < 0)
                return log_oom();
        /* Closed until the boot's agent reconnects and appends. */
        f->mark_requested = f->mark_submitted = f->mark_durable = b->last_seq;
        report->boots++;
        report->records += records;
        return 0;
}

static int compare_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static int load_machine(Store *s, Registry *reg, const char *id, StoreLoadReport *report) {
        _cleanup_free_ char *dir = NULL, *path = NULL;
        _cleanup_free_ uint64_t *indexes = NULL;
        size_t n_indexes = 0, cap = 0;
        json_error_t jerr;
        MachineSpecJson spec;
        const char *err = NULL;
        Machine *m;
        int r;

        if (asprintf(&dir, "%s/%s", s->machines_dir, id) < 0 || asprintf(&path, "%s/" MACHINE_FILE, dir) < 0)
                return -ENOMEM;

        json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
        if (!o) {
                report->machines_skipped++;
                log_warning("Failed to load %s, skipping machine: %s", path, jerr.text);
                return 0;
        }
        r = machine_spec_from_json(o, &spec, &err);
        if (r >= 0 && strcmp(spec.spec.machine_id, id) != 0) {
                r = -EINVAL;
                err = "machine_id does not match the directory name";
        }
        if (r >= 0)
                r = registry_add_machine(reg, &spec.spec, &m, &err);
        json_decref(o);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                report->machines_skipped++;
                log_warning("Skipping the machine in %s: %s", path, err ?: "invalid");
                return 0;
        }
        m->persisted = true;
        report->machines++;

        DIR *d = opendir(dir);
        if (!d)
                return log_warning_errno(errno, "Failed to list %s: %m", dir);
        struct dirent *de;
        while ((de = readdir(d))) {
                uint64_t index;
                char tail[8];
                if (sscanf(de->d_name, "boot-%" SCNu64 "%7s", &index, tail) != 2 || strcmp(tail, ".rec") != 0)
                        continue;
                /* No boot after it could get an index of its own (machine_add_boot(): next_boot_index would wrap to
                 * 0, and a new boot's file replace a loaded one's). tetherd never gets there by counting boots. */
                if (index == UINT64_MAX) {
                        log_warning("Skipping %s/%s: its boot index leaves none for the next boot.", dir, de->d_name);
                        continue;
                }
                if (n_indexes == cap) {
                        cap = cap ? cap * 2 : 8;
                        uint64_t *a = realloc(indexes, cap * sizeof(uint64_t));
                        if (!a) {
                                closedir(d);
                                return log_oom();
                        }
                        indexes = a;
                }
                indexes[n_indexes++] = index;
        }
        closedir(d);
        if (n_indexes > 0)
                qsort(indexes, n_indexes, sizeof(uint64_t), compare_u64);

        for (size_t i = 0; i < n_indexes; i++) {
                char name[64];
                snprintf(name, sizeof(name), "boot-%08" PRIu64 ".rec", indexes[i]);
                r = load_boot_file(s, reg, m, dir, name, indexes[i], report);
                if (r == -ENOMEM)
                        return r;
        }

        /* Current is the boot whose agent said Hello last, as it was before the restart (an agent may resume an
         * older boot); the newest index when none said it later. */
        for (size_t i = 0; i < m->n_boots; i++)
                if (m->current && m->boots[i]->last_hello_unix_ns > m->current->last_hello_unix_ns)
                        m->current = m->boots[i];
        /* A boot's mapping never changes once shown: one loaded from a file of an older tetherd (no fixed 'C'
         * entry) keeps what it was shown with before the restart. */
        for (size_t i = 0; i < m->n_boots; i++)
                (void) boot_fix_clock(m->boots[i]);
        m->agent_seen = m->n_boots > 0;
        m->state = machine_state_from_boot(m);
        if (m->current && m->current->exit.set)
                (void) free_and_strdup(&m->state_reason, m->current->exit.reason);
        return 0;
}

static int compare_strings(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int store_load(Store *s, Registry *reg, StoreLoadReport *ret) {
        StoreLoadReport report = {};
        char **names = NULL;
        size_t n = 0, cap = 0;
        int r = 0;

        DIR *d = opendir(s->machines_dir);
        if (!d)
                return -errno;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                if (n == cap) {
                        cap = cap ? cap * 2 : 16;
                        char **a = realloc(names, cap * sizeof(char *));
                        if (!a) {
                                r = -ENOMEM;
                                break;
                        }
                        names = a;
                }
                if (!(names[n] = strdup(de->d_name))) {
                        r = -ENOMEM;
                        break;
                }
                n++;
        }
        closedir(d);

        if (r >= 0 && n > 0) {
                /* Registration order is lost on disk; a stable order beats readdir's. */
                qsort(names, n, sizeof(char *), compare_strings);
                for (size_t i = 0; i < n && r >= 0; i++)
                        r = load_machine(s, reg, names[i], &report);
        }
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
        if (r < 0)
                return r;
        if (ret)
                *ret = report;
        return 0;
}
