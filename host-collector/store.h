/* SPDX-License-Identifier: MIT */
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
 *      'C': JSON {"offset_ns","error_ns"}, a new kept clock estimate
 *      'I': u64le seq_offset | agent instance id (1..64 bytes): an agent instance first seen in this boot
 * 'R' records carry the stored seq (wire seq + the instance's seq_offset; LogDropped ranges translated alike).
 * Records are written before they are acked, and store_sync() (fdatasync) runs before every Ack. A torn tail
 * (a crash in the middle of a write) is detected by length/CRC on load and truncated away: it was never
 * acked, so the agent resends it. See docs/architecture.md. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "list.h"
#include "registry.h"
#include "stats.h"

#define STORE_BOOT_MAGIC "TETHERB1"
#define STORE_ENTRY_HEADER_SIZE 8u      /* len + crc */
#define STORE_ENTRY_BODY_HEADER_SIZE 9u /* type + receive time */
#define STORE_ENTRY_MAX (1u << 20)

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
} StoreConfig;

typedef struct Store Store;
typedef struct BootFile BootFile;

struct BootFile {
        Store *store;
        Boot *boot;
        LIST_FIELDS(BootFile, files);
        char *path;
        int fd; /* -1 while closed: opened lazily on the first append */
        uint64_t size;
        bool dirty;  /* written since the last sync */
        bool full;   /* reached max_boot_bytes */
        bool broken; /* a write failed: nothing more is written for this boot */
};

struct Store {
        char *dir;
        char *machines_dir;
        uint64_t max_boot_bytes;
        bool sync;
        Stats *stats;
        LIST_HEAD(BootFile, files);
};

/* Creates <dir>/machines if needed. Returns 0 or -errno. */
int store_open(const StoreConfig *config, Stats *stats, Store **ret);
/* Closes every boot file (syncing dirty ones) and detaches them from their boots. */
Store *store_free(Store *s);

/* Writes machine.json for a newly registered machine (and creates its directory). Returns 0 or -errno. */
int store_save_machine(Store *s, Machine *m);
/* Deletes the machine's directory with every boot file. Returns 0 or -errno. */
int store_remove_machine(Store *s, Machine *m);

/* Creates the boot file ('B' entry) unless it exists. Returns 0 or -errno. */
int store_begin_boot(Store *s, Machine *m, Boot *b);
/* Closes and deletes a boot's file (evicted boot). Returns 0 or -errno. */
int store_remove_boot(Store *s, Boot *b);
/* Closes the file of a boot that is about to be freed, keeping it on disk. */
void store_detach_boot(Store *s, Boot *b);

/* Appends one entry. Returns 0 and, if ret_offset is not NULL, the offset of the entry's header in the file;
 * -EFBIG when the boot reached max_boot_bytes; -EIO when an earlier write failed; or -errno of the failed write
 * (the file is rolled back to the previous entry). */
int store_append(
        Store *s,
        Boot *b,
        StoreEntryType type,
        uint64_t recv_unix_ns,
        const void *payload,
        size_t len,
        uint64_t *ret_offset);
int store_append_clock(Store *s, Boot *b, uint64_t recv_unix_ns, const ClockEstimate *e);
/* Appends an 'I' entry: an agent instance of this boot and its seq offset. Returns as store_append(), or -EINVAL
 * (empty or too long id). */
int store_append_instance(
        Store *s, Boot *b, uint64_t recv_unix_ns, const uint8_t *id, size_t id_len, uint64_t seq_offset);

/* fdatasync when something was written since the last sync (and syncing is enabled). Returns 1 if it
 * synced, 0 if nothing was to do, -errno. */
int store_sync(Store *s, Boot *b);

/* Makes everything appended to the boot's file so far readable from the file (appends may be buffered until
 * the loop's next wakeup). Call before reading a boot file. Returns 0 or -errno. */
int store_boot_flush(Store *s, Boot *b);

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

/* CRC-32 (IEEE 802.3), exposed for tests that craft torn or corrupt files. */
uint32_t store_crc32(const void *data, size_t n);
