/* SPDX-License-Identifier: MIT */
#include "record.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

char *record_string(const char *s, size_t max) {
        char *clean = utf8_sanitize(s ?: "", strlen(s ?: ""), NULL);
        if (clean)
                utf8_truncate(clean, max);
        return clean;
}

/* Valid, bounded copies of attrs (key, value, ..., NULL) into storage; the copies go to strings (freed by the caller,
 * *n_strings of them). Returns how many attributes are in ptrs, or -ENOMEM. */
static int build_attrs(
        const char *const *attrs,
        Tether__Attribute storage[static RECORD_MAX_ATTRS],
        Tether__Attribute *ptrs[static RECORD_MAX_ATTRS],
        char **strings,
        size_t *n_strings) {
        size_t n_attrs = 0;

        for (size_t i = 0; attrs && attrs[i] && attrs[i + 1] && n_attrs < RECORD_MAX_ATTRS; i += 2) {
                Tether__Attribute *a = &storage[n_attrs];
                tether__attribute__init(a);
                if (!(a->key = strings[(*n_strings)++] = record_string(attrs[i], RECORD_MAX_STRING)))
                        return -ENOMEM;
                if (!(a->value = strings[(*n_strings)++] = record_string(attrs[i + 1], RECORD_MAX_STRING)))
                        return -ENOMEM;
                if (!a->key[0])
                        continue; /* keys must not be empty */
                ptrs[n_attrs++] = a;
        }
        return (int) n_attrs;
}

int record_milestone(Replay *r, const char *name, uint64_t boottime_ns, const char *const *attrs) {
        Tether__Attribute attr_storage[RECORD_MAX_ATTRS];
        Tether__Attribute *attr_ptrs[RECORD_MAX_ATTRS];
        char *strings[2 * RECORD_MAX_ATTRS + 1] = {};
        size_t n_strings = 0;
        int k = -ENOMEM;

        Tether__Milestone m = TETHER__MILESTONE__INIT;
        if (!(m.name = strings[n_strings++] = record_string(name, RECORD_MAX_STRING)))
                goto finish;
        if (!m.name[0]) {
                k = -EINVAL;
                goto finish;
        }
        if ((k = build_attrs(attrs, attr_storage, attr_ptrs, strings, &n_strings)) < 0)
                goto finish;
        m.boottime_ns = boottime_ns;
        m.attributes = attr_ptrs;
        m.n_attributes = (size_t) k;

        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        e.msg_case = TETHER__ENVELOPE__MSG_MILESTONE;
        e.milestone = &m;
        k = replay_append(r, &e, NULL);

finish:
        for (size_t i = 0; i < n_strings; i++)
                free(strings[i]);
        return k;
}

int record_phase(
        Replay *r,
        const char *name,
        uint64_t start_ns,
        uint64_t end_ns,
        bool failed,
        const char *message,
        const char *const *attrs) {
        Tether__Attribute attr_storage[RECORD_MAX_ATTRS];
        Tether__Attribute *attr_ptrs[RECORD_MAX_ATTRS];
        char *strings[2 * RECORD_MAX_ATTRS + 2] = {};
        size_t n_strings = 0;
        int k = -ENOMEM;

        Tether__Phase p = TETHER__PHASE__INIT;
        if (!(p.name = strings[n_strings++] = record_string(name, RECORD_MAX_STRING)))
                goto finish;
        if (!p.name[0] || end_ns < start_ns) {
                k = -EINVAL;
                goto finish;
        }
        if (!(p.message = strings[n_strings++] = record_string(message, RECORD_MAX_STRING)))
                goto finish;
        if ((k = build_attrs(attrs, attr_storage, attr_ptrs, strings, &n_strings)) < 0)
                goto finish;
        p.start_boottime_ns = start_ns;
        p.end_boottime_ns = end_ns;
        p.status = failed ? TETHER__PHASE_STATUS__PHASE_STATUS_ERROR : TETHER__PHASE_STATUS__PHASE_STATUS_OK;
        p.attributes = attr_ptrs;
        p.n_attributes = (size_t) k;

        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        e.msg_case = TETHER__ENVELOPE__MSG_PHASE;
        e.phase = &p;
        k = replay_append(r, &e, NULL);

finish:
        for (size_t i = 0; i < n_strings; i++)
                free(strings[i]);
        return k;
}

int record_log(
        Replay *r, Tether__LogStream stream, const char *source, uint64_t boottime_ns, const void *data, size_t len) {
        const uint8_t *p = data;

        do {
                size_t n = MIN(len, (size_t) RECORD_MAX_LOG_DATA);
                Tether__Log l = TETHER__LOG__INIT;
                l.stream = stream;
                l.source = (char *) source;
                l.boottime_ns = boottime_ns;
                l.data.data = (uint8_t *) p;
                l.data.len = n;

                Tether__Envelope e = TETHER__ENVELOPE__INIT;
                e.msg_case = TETHER__ENVELOPE__MSG_LOG;
                e.log = &l;
                int k = replay_append(r, &e, NULL);
                if (k < 0)
                        return k;
                p += n;
                len -= n;
        } while (len > 0);
        return 0;
}

int record_journal(
        Replay *r,
        const char *source,
        uint64_t boottime_ns,
        unsigned priority,
        const char *cursor,
        const void *data,
        size_t len) {
        _cleanup_free_ char *s = record_string(source, RECORD_MAX_STRING);
        _cleanup_free_ char *c = record_string(cursor, RECORD_MAX_STRING);
        if (!s || !c)
                return -ENOMEM;

        Tether__Log l = TETHER__LOG__INIT;
        l.stream = TETHER__LOG_STREAM__LOG_STREAM_JOURNAL;
        l.source = s;
        l.boottime_ns = boottime_ns;
        l.priority = priority <= 8 ? priority : 0;
        l.cursor = c;
        l.data.data = (uint8_t *) data;
        l.data.len = MIN(len, (size_t) RECORD_MAX_LOG_DATA);

        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        e.msg_case = TETHER__ENVELOPE__MSG_LOG;
        e.log = &l;
        return replay_append(r, &e, NULL);
}

int record_ready(Replay *r, const char *source, const char *detail, uint64_t boottime_ns) {
        Tether__Ready rd = TETHER__READY__INIT;
        char *s = record_string(source, RECORD_MAX_STRING);
        char *d = record_string(detail, RECORD_MAX_STRING);
        int k = -ENOMEM;

        if (s && d) {
                rd.source = s;
                rd.detail = d;
                rd.boottime_ns = boottime_ns;
                Tether__Envelope e = TETHER__ENVELOPE__INIT;
                e.msg_case = TETHER__ENVELOPE__MSG_READY;
                e.ready = &rd;
                k = replay_append(r, &e, NULL);
        }
        free(s);
        free(d);
        return k;
}

int record_exit(Replay *r, int code, int signal, bool oom_killed, uint64_t boottime_ns, const char *reason) {
        Tether__Exit x = TETHER__EXIT__INIT;
        char *why = record_string(reason, RECORD_MAX_STRING);
        if (!why)
                return -ENOMEM;

        x.code = code;
        x.signal = signal;
        x.oom_killed = oom_killed;
        x.boottime_ns = boottime_ns;
        x.reason = why;
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        e.msg_case = TETHER__ENVELOPE__MSG_EXIT;
        e.exit = &x;
        int k = replay_append(r, &e, NULL);
        free(why);
        return k;
}
