/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#pragma once

/* Persistence in the state directory, so that a killed and restarted tetherd neither loses nor duplicates a
 * record it acked:
 *
 *   <dir>/machines/<machine_id>/machine.json       the registration (replaced atomically)
 *   <dir>/machines/<machine_id>/boot-<index>.rec   one append-only file per boot
 *
 * A boot file is the magic "TETHERB1" followed by entries
 *   u32le body_len | u32le crc32(body) | body = u8 type | u64le host_receive_unix_ns | payload
 * type 'B' (first entry): JSON {"boot_id","trace_id","index","created_unix_ns"}
 *      'H': a Hello envelope as received (protobuf)    'R': a record envelope as received (protobuf)
 *      'C': JSON {"offset_ns","error_ns"[,"fixed":true]}, a new kept clock estimate, or the fixed mapping
 *      'I': u64le seq_offset | agent instance id (1..64 bytes): an agent instance first seen in this boot
 * 'R' records carry the stored seq (wire seq + the instance's seq_offset; LogDropped ranges translated alike).
 * The CRC is zlib's crc32() (IEEE 802.3).
 *
 * Writing and syncing never wait on the event loop's thread for a disk:
 *  - appended entries collect in the boot file's write buffer; store_boot_flush() writes them with one
 *    write() (the session calls it once per wakeup, so a burst of records costs one system call);
 *  - store_request_sync() hands fdatasync to the syncer's threads (syncer.h) and reports completion through
 *    the boot file's durability handler. Marks are the caller's watermarks (the session uses the boot's stored
 *    seq): a sync submitted after mark M was appended makes M durable. At most one sync per file is in flight;
 *    requests meanwhile are coalesced into the next one, submitted the moment the previous completes (group
 *    commit: the busier the disk, the more each sync covers).
 * Records are acked only once durable (docs/architecture.md). A torn tail (a crash in the middle of a write) is
 * detected by length/CRC on load and truncated away: it was never acked, so the agent resends it. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "list.h"
#include "registry.h"
#include "stats.h"
#include "syncer.h"

#define STORE_BOOT_MAGIC "TETHERB1"
#define STORE_ENTRY_HEADER_SIZE 8u      /* len + crc */
#define STORE_ENTRY_BODY_HEADER_SIZE 9u /* type + receive time */
#define STORE_ENTRY_MAX (1u << 20)
/* A boot file's write buffer is written out when it would grow beyond this (and at the end of every wakeup). */
#define STORE_WRITE_BUFFER_MAX (256u * 1024u)

typedef enum StoreEntryType {
        STORE_ENTRY_BOOT = 'B',
        STORE_ENTRY_HELLO = 'H',
        STORE_ENTRY_RECORD = 'R',
        STORE_ENTRY_CLOCK = 'C',
        STORE_ENTRY_INSTANCE = 'I',
} StoreEntryType;

/* A boot file's bound: the file is the log store (docs/architecture.md, Bounds). */
#define STORE_BOOT_FILE_BYTES_DEFAULT (UINT64_C(1) << 30)

typedef struct StoreConfig {
        const char *dir;
        uint64_t max_boot_bytes; /* 0: STORE_BOOT_FILE_BYTES_DEFAULT */
        bool sync;               /* fdatasync before acks (default true) */
        unsigned sync_threads;   /* 0: SYNCER_THREADS_DEFAULT */
} StoreConfig;

typedef struct Store Store;
typedef struct BootFile BootFile;

/* A boot's mark became durable (or a sync failed: error < 0, the mark is still advanced: what failed to reach
 * the disk is counted in stats->persist_errors, and holding acks back forever would only make the agent
 * resend records that tetherd already has). Called from store_dispatch_syncs(). */
typedef void (*StoreDurableHandler)(Boot *b, uint64_t durable_mark, int error, void *userdata);

struct BootFile {
        Store *store;
        Boot *boot;
        LIST_FIELDS(BootFile, files);
        char *path;
        char *dir;
        int fd;           /* -1 while closed: opened lazily on the first append */
        uint64_t size;    /* bytes appended: written + buffered */
        uint64_t written; /* bytes in the file */
        uint8_t *wbuf;    /* entries appended but not written yet */
        size_t wlen, wcap;
        uint64_t wentries; /* entries in wbuf */
        uint8_t *lost;     /* the entries of the last failed write, until store_take_lost() */
        size_t lost_len;
        bool dirty;          /* written since the last sync was submitted */
        bool needs_dir_sync; /* a new file: its directory entry must become durable with the first sync */
        bool full;           /* reached max_boot_bytes */
        bool broken;         /* a write failed and could not be rolled back: nothing more is written */
        uint64_t mark_requested, mark_submitted, mark_durable;
        SyncJob *sync_job; /* in flight, or NULL */
        StoreDurableHandler on_durable;
        void *on_durable_userdata;
};

struct Store {
        char *dir;
        char *machines_dir;
        uint64_t max_boot_bytes;
        bool sync;
        Stats *stats;
        Syncer *syncer; /* NULL when not syncing */
        int machines_dir_fd;
        int lock_fd; /* <dir>/lock, flock()ed for as long as the store is open */
        LIST_HEAD(BootFile, files);
        LIST_HEAD(MachineSave, saves); /* registrations on their way to the disk */
};

/* Creates <dir>/machines if needed. Returns 0 or -errno. */
int store_open(const StoreConfig *config, Stats *stats, Store **ret);
/* Closes every boot file (writing and syncing what is pending, on this thread) and detaches them from their
 * boots. */
Store *store_free(Store *s);

/* The fd to watch for completed syncs (-1 when not syncing), and the function to call when it is readable. */
int store_sync_fd(const Store *s);
void store_dispatch_syncs(Store *s);

/* A registration reached the disk (error 0: m->persisted is set), or could not (-errno: what was written of it is
 * removed again). Called from store_dispatch_syncs(). */
typedef void (*StoreSavedHandler)(Store *s, Machine *m, int error, void *userdata);

/* Writes machine.json (creating the machine's directory) and makes it durable without waiting on this thread:
 * the file is written to "<dir>/.machine.json.tmp" here, and the syncer's threads sync it with the machines
 * directory (the machine's own directory entry); on completion it is renamed into place here and the syncer
 * syncs the machine's directory (the rename); then done() is called. Saves of one machine go one at a time: one
 * asked for while another is on its way is written when that one completes, from the machine as it is then (the
 * newest registration wins), and done() is called for both once it is durable. done may be NULL.
 * Returns 1 when done() will be called; 0 when the registration was written here and nothing needs to wait
 * (the store does not sync: --no-sync; done() is not called); -errno on failure (done() is not called). */
int store_save_machine(Store *s, Machine *m, StoreSavedHandler done, void *userdata);
/* Deletes the machine's directory with every boot file; the directory's removal is synced by the syncer and
 * nobody waits for it (a crash within that sync may bring the registration back: delete it again). A save on its
 * way is abandoned: its done() is called with -ECANCELED. Returns 0 or -errno. */
int store_remove_machine(Store *s, Machine *m);

/* Creates the boot file ('B' entry) unless it exists. Returns 1 when it created it, 0 when it existed, or
 * -errno (the boot has no file then). */
int store_begin_boot(Store *s, Machine *m, Boot *b);
/* Makes a boot's file writable again after a failure: creates it if the boot has none, cuts off a partial entry a
 * failed rollback left. Tries nothing while the file system has less than 1 MiB free (-ENOSPC). Returns 1 when
 * it created the file, 0 when the file is usable, or -errno. */
int store_repair_boot(Store *s, Machine *m, Boot *b);
/* Closes and deletes a boot's file (evicted boot). Returns 0 or -errno. */
int store_remove_boot(Store *s, Boot *b);

/* Appends one entry to the boot file's write buffer (writing the buffer out first when it is full). Returns 0 and,
 * if ret_offset is not NULL, the offset the entry's header will have in the file; -EFBIG when the boot reached
 * max_boot_bytes; -EMSGSIZE when the entry is too large; -EIO when an earlier write failed and its rollback too;
 * -ENOENT when the boot has no file; or -errno of a failed write of the buffer (-ENOSPC for a write's EFBIG; the
 * file is rolled back to its last whole entry, and later entries take the offsets of the lost ones: readers check
 * the seqs they find; persist_errors counts it, the caller decides what the lost entries mean). */
int store_append(
        Store *s,
        Boot *b,
        StoreEntryType type,
        uint64_t recv_unix_ns,
        const void *payload,
        size_t len,
        uint64_t *ret_offset);
/* 'C' entry: a new provisional estimate, or (fixed) the boot's fixed clock mapping. */
int store_append_clock(Store *s, Boot *b, uint64_t recv_unix_ns, const ClockEstimate *e, bool fixed);
/* Appends an 'I' entry: an agent instance of this boot and its seq offset. Returns as store_append(), or -EINVAL
 * (empty or too long id). */
int store_append_instance(
        Store *s, Boot *b, uint64_t recv_unix_ns, const uint8_t *id, size_t id_len, uint64_t seq_offset);

/* Writes the boot file's buffered entries with one write(), making them readable from the file (call before
 * reading a boot file: appends may be buffered until the loop's next wakeup). Returns 0 (also when nothing was buffered
 * or the boot has no file), or -errno: the entries of the buffer were lost (counted in stats as persist_errors; the
 * file is rolled back to its last whole entry). */
int store_boot_flush(Store *s, Boot *b);
/* The entries of the boot file's last failed write (store_boot_flush() or a write an append started), oldest
 * first: fn gets each one's type, receive time and payload, so that a caller can keep them until the file can be
 * written again (fn NULL: they are not wanted). They are then freed (also when fn fails; its error is returned).
 * Returns 0 when there were none. */
typedef int (*StoreLostFn)(StoreEntryType type, uint64_t recv_unix_ns, const void *payload, size_t len, void *userdata);
int store_take_lost(Store *s, Boot *b, StoreLostFn fn, void *userdata);
/* Appends what a restarted tetherd needs of a boot besides its records, for a file created after the boot began:
 * every agent instance with its seq offset, and the clock mapping. Returns 0 or the first append's -errno. */
int store_append_boot_state(Store *s, Boot *b, uint64_t recv_unix_ns);
/* Bytes of the boot's file that are written (entries at offsets beyond were lost if a write failed). */
uint64_t store_boot_written(const Store *s, const Boot *b);

/* Asks for everything appended to the boot's file so far to become durable, covering mark. Returns 1 when mark
 * is durable already (nothing written since the last completed sync, no file, or syncing off); 0 when
 * handler(b, mark', error, userdata) will be called from store_dispatch_syncs() once a sync covering it
 * completed (the handler replaces the boot file's earlier one; a NULL handler keeps it); -errno (then nothing was
 * submitted; the caller may retry). Buffered entries are written first (errors counted as in store_boot_flush()). */
int store_request_sync(Store *s, Boot *b, uint64_t mark, StoreDurableHandler handler, void *userdata);
/* Forgets the boot file's durability handler if it is userdata's. */
void store_forget_sync_handler(Store *s, Boot *b, void *userdata);
/* The highest durable mark of the boot (fallback when the boot has no file: nothing on disk to wait for). */
uint64_t store_durable_mark(const Store *s, const Boot *b, uint64_t fallback);

/* Writes and fdatasyncs now, on this thread (shutdown, tests), making mark durable. Returns 1 if it synced, 0
 * if nothing was to do, -errno (counted; the mark advances all the same, as for a failed sync on the threads). */
int store_sync(Store *s, Boot *b, uint64_t mark);

/* One entry of a boot file, as store_scan_boot() finds it. payload points into a buffer valid during the
 * callback only. */
typedef struct StoreEntryView {
        uint64_t offset;      /* of the entry's header */
        uint64_t next_offset; /* of the entry after it */
        StoreEntryType type;
        uint64_t recv_unix_ns;
        const uint8_t *payload;
        size_t len;
} StoreEntryView;

/* Returns 0 to go on, > 0 to stop (returned by store_scan_boot()), or -errno (likewise). */
typedef int (*StoreScanFn)(const StoreEntryView *v, void *userdata);

/* Reads a boot's file from offset (an entry's header, or 0 for the first entry) in file order, calling fn for
 * each complete entry, up to what was written so far (after store_boot_flush()). Returns fn's positive value
 * when it stopped, 0 at the end of the file (or when the boot has no file), -EBADMSG at an entry that is cut
 * short or fails its CRC, or -errno. */
int store_scan_boot(Store *s, Boot *b, uint64_t offset, StoreScanFn fn, void *userdata);

typedef struct StoreLoadReport {
        size_t machines;
        size_t machines_skipped;
        size_t boots;
        size_t records;
        size_t torn_tails; /* boot files truncated back to their last complete entry */
} StoreLoadReport;

/* Re-registers every machine and replays every boot file into the registry. Broken files are skipped or
 * truncated with a warning; the rest still loads. Returns 0 or -errno (the machines directory is unreadable). */
int store_load(Store *s, Registry *r, StoreLoadReport *ret);

/* CRC-32 (IEEE 802.3, zlib's crc32()), exposed for tests that craft torn or corrupt files. */
uint32_t store_crc32(const void *data, size_t n);
