/* SPDX-License-Identifier: MIT */
#pragma once

/* /dev/kmsg: one record per read(), "prio,seq,usec,flags[,...];message\n" followed by optional
 * " KEY=value" dictionary lines. The kernel escapes unprintable bytes in the message as \xNN.
 * The parsers are pure; the reader only does non-blocking reads. Never logs. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KMSG_RECORD_MAX 8192u
#define KMSG_COMM_MAX 64u

typedef struct KmsgRecord {
        unsigned priority; /* syslog facility << 3 | level */
        uint64_t seq;
        uint64_t usec;       /* CLOCK_MONOTONIC at printk, µs */
        char flags;          /* '-' or 'c' (continuation) */
        const char *message; /* escaped as the kernel wrote it, not NUL-terminated */
        size_t message_len;
} KmsgRecord;

/* Parses one record; the message points into buf. Returns 0 or -EBADMSG. */
int kmsg_parse_record(const char *buf, size_t len, KmsgRecord *ret);

/* Decodes the kernel's \xNN escapes of msg into out (at most out_size bytes; the output is never longer than
 * the input). Returns the decoded length. */
size_t kmsg_unescape(const char *msg, size_t len, char *out, size_t out_size);

/* Recognises an OOM kill: "Out of memory: Killed process <pid> (<comm>)..." and the memory cgroup variant
 * "Memory cgroup out of memory: Killed process ...". Returns true and fills pid and comm (NUL-terminated,
 * unescaped) on a match. */
bool kmsg_parse_oom(const char *msg, size_t len, pid_t *ret_pid, char ret_comm[KMSG_COMM_MAX]);

typedef struct KmsgReader {
        int fd;
        uint64_t next_seq; /* expected seq of the next record, 0 before the first */
        uint64_t lost;     /* records the kernel overwrote before we read them (seq gaps) */
} KmsgReader;

/* Opens /dev/kmsg (or path) non-blocking, positioned at the oldest record still held. */
int kmsg_reader_open(KmsgReader *k, const char *path);
void kmsg_reader_close(KmsgReader *k);

/* Reads one record into buf (KMSG_RECORD_MAX bytes is enough). Returns 1 and the parsed record, with
 * *ret_lost set to the records missing just before it; 0 when nothing is left (EAGAIN); or -errno.
 * Malformed records are skipped. */
int kmsg_reader_read(KmsgReader *k, char *buf, size_t size, KmsgRecord *ret, uint64_t *ret_lost);
