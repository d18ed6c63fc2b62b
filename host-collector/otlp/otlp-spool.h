/* SPDX-License-Identifier: MIT */
/* Room otlp: OTLP export of traces, logs and events (encode, queue, spool, libcurl); a core observer. */
#pragma once

/* The on-disk spool of export requests the backend could not take: one file per encoded request body, named
 * "<seq>-<signal>-<items>-<encoding>.otlp" (seq: 20 decimal digits, increasing; encoding: "gzip" or
 * "identity"), written to a temporary name and renamed, replayed oldest first per signal, bounded in bytes.
 * It survives a tetherd restart (files are not fsynced: a host crash may lose the newest). Never logs. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "stats.h"

typedef struct OtlpSpool OtlpSpool;

typedef struct OtlpSpoolEntry {
        uint64_t id; /* the seq */
        ExportSignal signal;
        uint64_t items;
        bool gzip;
        uint64_t bytes;
        uint64_t keys; /* the request's order keys (all bits for files found at start-up: unknown) */
} OtlpSpoolEntry;

/* Creates the directory if needed and indexes the files in it (temporary leftovers are removed, unknown names
 * ignored). Returns 0 or -errno. */
int otlp_spool_open(const char *dir, uint64_t max_bytes, OtlpSpool **ret);
OtlpSpool *otlp_spool_free(OtlpSpool *s);

/* A new id, greater than every id in the spool and every one handed out before: the caller numbers its requests
 * with these, in the order they are to be delivered, whether they are spooled or not. */
uint64_t otlp_spool_next_id(OtlpSpool *s);
/* Writes one request under id (from otlp_spool_next_id(), not in the spool). Replay is in id order, whatever the
 * order of the pushes. iov: the body in pieces. Returns 0, -ENOSPC when it would exceed max_bytes, -EEXIST, or
 * -errno (write failed; nothing kept). */
int otlp_spool_push(
        OtlpSpool *s,
        uint64_t id,
        ExportSignal signal,
        const struct iovec *iov,
        size_t n_iov,
        uint64_t items,
        bool gzip,
        uint64_t keys);

/* Every entry, oldest (smallest id) first; valid until the spool changes. */
const OtlpSpoolEntry *otlp_spool_entries(const OtlpSpool *s, size_t *ret_n);
/* The oldest entry of a signal, or NULL. */
const OtlpSpoolEntry *otlp_spool_oldest(const OtlpSpool *s, ExportSignal signal);
/* Reads an entry's body. Returns 0 or -errno (e.g. the file vanished: the caller removes the entry). */
int otlp_spool_read(const OtlpSpool *s, const OtlpSpoolEntry *e, uint8_t **ret, size_t *ret_len);
/* Deletes an entry (after delivery or rejection). Returns 0 or -errno from unlink (the entry is forgotten). */
int otlp_spool_remove(OtlpSpool *s, uint64_t id);

uint64_t otlp_spool_bytes(const OtlpSpool *s);
size_t otlp_spool_count(const OtlpSpool *s, ExportSignal signal);
