/* SPDX-License-Identifier: MIT */
#pragma once

/* The pure parts of forwarding the journal (tether-agent-systemd): where reading starts, which source and priority
 * an entry gets. Never logs.
 *
 * Resuming: reading starts at the first Welcome of the agent process, never before (the journal holds what waits,
 * not the replay buffer). With a cursor in that Welcome (the newest entry tetherd stored for this boot, whichever
 * agent process sent it) reading continues right after that entry; without one, from the boot's first entry.
 * Later Welcomes change nothing: what the replay buffer holds is resent by seq. So a restarted agent sends no
 * entry twice and loses none. */

#include <stdbool.h>
#include <stddef.h>

typedef enum JournalStart {
        JOURNAL_WAIT,         /* no Welcome yet: do not read */
        JOURNAL_FROM_HEAD,    /* seek to the boot's first entry */
        JOURNAL_AFTER_CURSOR, /* seek to the cursor; skip the entry there if it is the cursor's */
        JOURNAL_READING,      /* positioned: go on with the next entry */
} JournalStart;

typedef struct JournalResume {
        JournalStart start;
        char *cursor; /* JOURNAL_AFTER_CURSOR */
} JournalResume;

void journal_resume_done(JournalResume *j);

/* A Welcome (journal_cursor "" when it has none). Only the first one counts. Returns 0 or -ENOMEM. */
int journal_resume_welcome(JournalResume *j, const char *journal_cursor);

/* After seeking (JOURNAL_FROM_HEAD / JOURNAL_AFTER_CURSOR): the state is JOURNAL_READING. For AFTER_CURSOR,
 * on_cursor says whether the first entry read after the seek is the cursor's own entry: returns true when that entry
 * must be skipped (sent before), false when it is new (the cursor's entry is gone, e.g. rotated away: the
 * seek landed on the next one). */
bool journal_resume_first_entry(JournalResume *j, bool on_cursor);

/* Log.priority of a PRIORITY= field value (its bytes, not NUL-terminated): 1 + the syslog priority 0 … 7, or 0 when
 * absent or not a single digit 0 … 7. */
unsigned journal_priority(const char *value, size_t len);

/* The fields of an entry that name its source; each NULL when absent (NUL-terminated copies). */
typedef struct JournalOrigin {
        const char *unit;       /* _SYSTEMD_UNIT */
        const char *user_unit;  /* _SYSTEMD_USER_UNIT */
        const char *identifier; /* SYSLOG_IDENTIFIER */
        const char *comm;       /* _COMM */
        const char *transport;  /* _TRANSPORT */
} JournalOrigin;

/* The Log.source of an entry: the unit, else the user unit, else "kernel" for the kernel's messages, else the
 * syslog identifier, else the command name, else "journal". */
const char *journal_source(const JournalOrigin *o);
