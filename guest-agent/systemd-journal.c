/* SPDX-License-Identifier: MIT */
#include "systemd-journal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

void journal_resume_done(JournalResume *j) {
        free(j->cursor);
        *j = (JournalResume) {};
}

int journal_resume_welcome(JournalResume *j, const char *journal_cursor) {
        if (j->start != JOURNAL_WAIT)
                return 0;
        if (journal_cursor && *journal_cursor) {
                char *c = strdup(journal_cursor);
                if (!c)
                        return -ENOMEM;
                free(j->cursor);
                j->cursor = c;
                j->start = JOURNAL_AFTER_CURSOR;
        } else
                j->start = JOURNAL_FROM_HEAD;
        return 0;
}

bool journal_resume_first_entry(JournalResume *j, bool on_cursor) {
        bool skip = j->start == JOURNAL_AFTER_CURSOR && on_cursor;
        j->start = JOURNAL_READING;
        j->cursor = mfree(j->cursor);
        return skip;
}

unsigned journal_priority(const char *value, size_t len) {
        if (!value || len != 1 || value[0] < '0' || value[0] > '7')
                return 0;
        return (unsigned) (value[0] - '0') + 1;
}

const char *journal_source(const JournalOrigin *o) {
        if (o->unit && *o->unit)
                return o->unit;
        if (o->user_unit && *o->user_unit)
                return o->user_unit;
        if (o->transport && strcmp(o->transport, "kernel") == 0)
                return "kernel";
        if (o->identifier && *o->identifier)
                return o->identifier;
        if (o->comm && *o->comm)
                return o->comm;
        return "journal";
}
