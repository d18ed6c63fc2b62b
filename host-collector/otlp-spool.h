/* SPDX-License-Identifier: MIT */
#pragma once

/* The on-disk spool of export requests the backend could not take: one file per encoded request body, named
 * "<seq>-<signal>-<items>-<encoding>.otlp" (seq: 20 decimal digits, increasing; encoding: "gzip" or
 * "identity"), written to a temporary name and renamed, replayed oldest first per signal, bounded in bytes.
 * It survives a tetherd restart (files are not fsynced: a host crash may lose the newest). Never logs. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stats.h"

typedef struct OtlpSpool OtlpSpool;

typedef struct OtlpSpoolEntry {
        uint64_t id; /* the seq */
        ExportSignal signal;
        uint64_t items;
        bool gzip;
        uint64_t bytes;
} OtlpSpoolEntry;

/* Creates the directory if needed and indexes the files in it (temporary leftovers are removed, unknown names
 * ignored). Returns 0 or -errno. */
int otlp_spool_open(const char *dir, uint64_t max_bytes, OtlpSpool **ret);
OtlpSpool *otlp_spool_free(OtlpSpool *s);

/* Writes one request. Returns 0, -ENOSPC when it would exceed max_bytes, or -errno (write failed; nothing
 * kept). */
int otlp_spool_push(OtlpSpool *s, ExportSignal signal, const uint8_t *body, size_t len, uint64_t items, bool gzip);

/* The oldest entry of a signal, or NULL. */
const OtlpSpoolEntry *otlp_spool_oldest(const OtlpSpool *s, ExportSignal signal);
/* Reads an entry's body. Returns 0 or -errno (e.g. the file vanished: the caller removes the entry). */
int otlp_spool_read(const OtlpSpool *s, const OtlpSpoolEntry *e, uint8_t **ret, size_t *ret_len);
/* Deletes an entry (after delivery or rejection). Returns 0 or -errno from unlink (the entry is forgotten). */
int otlp_spool_remove(OtlpSpool *s, uint64_t id);

uint64_t otlp_spool_bytes(const OtlpSpool *s);
size_t otlp_spool_count(const OtlpSpool *s, ExportSignal signal);
