/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#pragma once

/* One message of systemd's own notification protocol as PID 1 sends it to the VMM (`vmm.notify_socket`,
 * docs/agentless.md): `KEY=VALUE` lines joined by "\n", perhaps without a trailing newline, one message per
 * connection. Pure: bytes in, a typed message out; the guest controls every byte, so sizes and counts are
 * bounded, values are sanitized (valid UTF-8, no NUL, cut at VMM_NOTIFY_VALUE_MAX bytes) and unknown keys are
 * only counted. X_SYSTEMD_MACHINE_ID is informational: identity is the transport's. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A message above this many bytes is refused whole (systemd's are a few hundred bytes). */
#define VMM_NOTIFY_MESSAGE_MAX 4096u
/* Bytes of a value kept (cut at a character boundary). */
#define VMM_NOTIFY_VALUE_MAX 256u
/* Keys are [A-Z0-9_], at most this long. */
#define VMM_NOTIFY_KEY_MAX 64u
/* X_SYSTEMD_UNIT_ACTIVE/INACTIVE lines kept per message (systemd sends one); more are counted as dropped. */
#define VMM_NOTIFY_UNITS_MAX 8u

typedef struct VmmNotifyUnit {
        char *name;
        bool active; /* X_SYSTEMD_UNIT_ACTIVE (true) or X_SYSTEMD_UNIT_INACTIVE */
} VmmNotifyUnit;

typedef struct VmmNotify {
        bool ready;     /* READY=1 */
        char *status;   /* STATUS= */
        char *hostname; /* X_SYSTEMD_HOSTNAME= */
        char *machine_id;
        VmmNotifyUnit units[VMM_NOTIFY_UNITS_MAX]; /* in message order */
        size_t n_units;
        bool exit_status_set;
        int32_t exit_status;    /* EXIT_STATUS= */
        char *shutdown;         /* X_SYSTEMD_SHUTDOWN= (reboot, halt, poweroff, kexec, or what the guest said) */
        char *reboot_parameter; /* X_SYSTEMD_REBOOT_PARAMETER= */
        size_t n_unknown;       /* well-formed lines with a key this parser does not know (ignored) */
        size_t n_invalid;       /* lines that are not KEY=VALUE, or a known key with a value it cannot take */
        size_t n_units_dropped; /* unit lines beyond VMM_NOTIFY_UNITS_MAX */
        size_t n_sanitized;     /* values with invalid UTF-8 or NUL replaced, or cut */
} VmmNotify;

/* Parses one message. Returns 0 (ret filled; free with vmm_notify_done()), -EMSGSIZE (above
 * VMM_NOTIFY_MESSAGE_MAX), -EBADMSG (not a single well-formed KEY=VALUE line: garbage or empty), or -ENOMEM.
 * ret is untouched on failure. */
int vmm_notify_parse(const void *data, size_t size, VmmNotify *ret);
void vmm_notify_done(VmmNotify *n);

/* True when the message says nothing tetherd acts on (no ready, unit, shutdown/exit, status or identity). */
bool vmm_notify_is_empty(const VmmNotify *n);
