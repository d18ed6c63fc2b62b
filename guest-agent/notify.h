/* SPDX-License-Identifier: MIT */
#pragma once

/* The agent's notify socket (NOTIFY_SOCKET, a Unix datagram socket). A datagram is sd_notify's format:
 * KEY=VALUE lines separated by '\n'. Besides systemd's keys (READY=1, STATUS=..., STOPPING=1) the agent
 * understands its own, sent by `tether-agent notify` / `tether-agent milestone`:
 *
 *   X_TETHER_NOTIFY=1        the message comes from `tether-agent notify` (READY=1 then has source "notify")
 *   X_TETHER_MILESTONE=NAME  record a milestone NAME, stamped when the agent receives the datagram
 *   X_TETHER_ATTR=KEY=VALUE  an attribute of that milestone (repeatable, at most NOTIFY_MAX_ATTRS)
 *
 * The parser and formatters are pure; the socket helpers do I/O. Never logs. */

#include <stdbool.h>
#include <stddef.h>

#define NOTIFY_DATAGRAM_MAX 16384u
#define NOTIFY_MAX_ATTRS 32u
#define NOTIFY_MAX_STRING 1024u

typedef struct NotifyMessage {
        bool ready;      /* READY=1 */
        bool from_cli;   /* X_TETHER_NOTIFY=1 */
        bool stopping;   /* STOPPING=1 */
        char *status;    /* STATUS=, valid UTF-8, at most NOTIFY_MAX_STRING bytes */
        char *milestone; /* X_TETHER_MILESTONE= */
        char *attr_keys[NOTIFY_MAX_ATTRS];
        char *attr_values[NOTIFY_MAX_ATTRS];
        size_t n_attrs;
        size_t n_dropped_attrs; /* beyond NOTIFY_MAX_ATTRS, or without a key */
} NotifyMessage;

/* Parses one datagram (not NUL-terminated, may contain anything). Lines without '=' and unknown keys are
 * ignored; strings are made valid UTF-8 (U+FFFD) and cut to NOTIFY_MAX_STRING bytes. An empty milestone
 * name is ignored. Returns 0 or -ENOMEM. */
int notify_message_parse(const char *data, size_t len, NotifyMessage *ret);
void notify_message_done(NotifyMessage *m);

/* Joins KEY=VALUE assignments with '\n' and appends X_TETHER_NOTIFY=1. Returns 0, -EINVAL when an
 * assignment has no '=' or contains a newline, or -ENOMEM. */
int notify_format_assignments(char *const *assignments, char **ret);

/* X_TETHER_MILESTONE=NAME plus one X_TETHER_ATTR= line per k=v. Returns 0, -EINVAL (empty name, a
 * newline anywhere, an attribute without '=' or with an empty key, more than NOTIFY_MAX_ATTRS), -ENOMEM. */
int notify_format_milestone(const char *name, char *const *attrs, char **ret);

/* Creates the directory if needed, replaces a stale socket and binds a non-blocking datagram socket at path
 * ("@name": abstract). Returns the fd or -errno. */
int notify_socket_open(const char *path);

/* Receives one datagram into buf (NUL-terminated; size includes room for the NUL). Any passed file
 * descriptors are closed. Returns the length, -EAGAIN when there is none, -EMSGSIZE if it was truncated,
 * or -errno. */
int notify_socket_receive(int fd, char *buf, size_t size);

/* Sends one datagram to the socket at path. Returns 0 or -errno. */
int notify_send(const char *path, const char *data, size_t len);
