/* SPDX-License-Identifier: MIT */
/* Room cli: the tether command line, a client of tetherd's HTTP API only. */
#include "format.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "duration.h"
#include "macro.h"
#include "str-util.h"
#include "syslog-priority.h"
#include "table.h"
#include "term.h"

/* Keys of `tether get` take this many columns, then one space, then the value. */
#define DETAIL_KEY_WIDTH 13

const char *json_str(const json_t *obj, const char *key) {
        const json_t *v = json_object_get(obj, key);
        return json_is_string(v) ? json_string_value(v) : NULL;
}

const char *nonempty(const char *s) {
        return s && *s ? s : NULL;
}

bool json_u64(const json_t *obj, const char *key, uint64_t *ret) {
        const json_t *v = json_object_get(obj, key);

        if (!json_is_integer(v) || json_integer_value(v) < 0)
                return false;
        *ret = (uint64_t) json_integer_value(v);
        return true;
}

char *format_timestamp(uint64_t unix_ns, char buf[static TIMESTAMP_MAX]) {
        time_t sec = (time_t) (unix_ns / NSEC_PER_SEC);
        struct tm tm;
        char base[32];

        if (!localtime_r(&sec, &tm) || strftime(base, sizeof(base), "%Y-%m-%d %H:%M:%S", &tm) == 0) {
                snprintf(buf, TIMESTAMP_MAX, "@%" PRIu64, unix_ns);
                return buf;
        }
        snprintf(buf, TIMESTAMP_MAX, "%s.%03u", base, (unsigned) (unix_ns % NSEC_PER_SEC / NSEC_PER_MSEC));
        return buf;
}

char *api_error_message(long status, const json_t *body, const char *raw_body) {
        const char *error = nonempty(json_str(body, "error"));
        if (error)
                return terminal_sanitize(error, false, false);

        if (raw_body && *raw_body) {
                _cleanup_free_ char *trimmed = strndup(raw_body, MIN(strlen(raw_body), (size_t) 200));
                if (!trimmed)
                        return NULL;
                trimmed[strcspn(trimmed, "\r\n")] = '\0';
                if (*trimmed)
                        return terminal_sanitize(trimmed, false, false);
        }
        return str_printf("HTTP %ld", status);
}

static int compare_machines(const void *a, const void *b) {
        const char *x = json_str(*(json_t *const *) a, "machine_id");
        const char *y = json_str(*(json_t *const *) b, "machine_id");
        return strcmp(x ?: "", y ?: "");
}

json_t **machines_sorted(const json_t *machines) {
        size_t n = json_array_size(machines);
        json_t **sorted = calloc(MAX(n, (size_t) 1), sizeof(json_t *));

        if (!sorted)
                return NULL;
        for (size_t i = 0; i < n; i++)
                sorted[i] = json_array_get(machines, i);
        qsort(sorted, n, sizeof(json_t *), compare_machines);
        return sorted;
}

static char *transport_of(const json_t *m) {
        uint64_t cid;
        const char *uds = nonempty(json_str(m, "uds_path"));

        if (json_u64(m, "cid", &cid))
                return str_printf("cid:%" PRIu64, cid);
        if (uds)
                return str_printf("uds:%s", uds);
        return strdup("-");
}

int format_machine_table(const json_t *doc, bool ascii, char **ret) {
        const json_t *machines = json_object_get(doc, "machines");
        if (!json_is_array(machines))
                return -EINVAL;

        size_t n = json_array_size(machines);
        _cleanup_free_ json_t **sorted = machines_sorted(machines);
        if (!sorted)
                return -ENOMEM;

        static const char *const headers[] = { "MACHINE", "STATE", "TRANSPORT", "BOOT", "READY", "REQUEST" };
        _cleanup_(table_freep) Table *t = table_new(ELEMENTSOF(headers), headers, ascii);
        if (!t)
                return -ENOMEM;
        table_set_right_aligned(t, 4, true);

        for (size_t i = 0; i < n; i++) {
                const json_t *m = sorted[i];
                const json_t *boot = json_object_get(m, "boot");
                const json_t *ready = json_object_get(boot, "ready");
                char ready_s[DURATION_MAX], boot_s[9];
                uint64_t k2r;

                _cleanup_free_ char *transport = transport_of(m);
                if (!transport)
                        return -ENOMEM;

                const char *boot_id = nonempty(json_str(boot, "boot_id"));
                if (boot_id)
                        snprintf(boot_s, sizeof(boot_s), "%.8s", boot_id);

                const char *cells[] = {
                        json_str(m, "machine_id"),
                        json_str(m, "state"),
                        transport,
                        boot_id ? boot_s : NULL,
                        /* A container has no kernel start of its own: its boot is timed from init. */
                        json_u64(ready, "kernel_to_ready_ns", &k2r) || json_u64(ready, "init_to_ready_ns", &k2r) ?
                                format_duration(k2r, ascii, ready_s) :
                                NULL,
                        nonempty(json_str(m, "request_id")),
                };
                int r = table_add_row(t, cells);
                if (r < 0)
                        return r;
        }

        return table_format(t, ret);
}

static void detail(FILE *f, size_t indent, const char *key, const char *value, bool ascii) {
        _cleanup_free_ char *safe = terminal_sanitize(value, false, ascii);
        fprintf(f, "%*s%-*s %s\n", (int) indent, "", DETAIL_KEY_WIDTH - (int) indent, key, safe ?: "?");
}

static void detailf(FILE *f, size_t indent, const char *key, bool ascii, const char *fmt, ...) _printf_(5, 6);
static void detailf(FILE *f, size_t indent, const char *key, bool ascii, const char *fmt, ...) {
        va_list ap;
        char *value;

        va_start(ap, fmt);
        int r = vasprintf(&value, fmt, ap);
        va_end(ap);
        if (r < 0)
                return;
        detail(f, indent, key, value, ascii);
        free(value);
}

static void detail_time(FILE *f, size_t indent, const char *key, const json_t *obj, const char *member, bool ascii) {
        uint64_t ns;
        char ts[TIMESTAMP_MAX];

        if (json_u64(obj, member, &ns) && ns > 0)
                detail(f, indent, key, format_timestamp(ns, ts), ascii);
}

static void format_boot(FILE *f, const json_t *boot, bool ascii) {
        char d1[DURATION_MAX], d2[DURATION_MAX];
        uint64_t v, v2;

        detail(f, 0, "boot", json_str(boot, "boot_id") ?: "-", ascii);
        if (nonempty(json_str(boot, "trace_id")))
                detail(f, 2, "trace", json_str(boot, "trace_id"), ascii);
        if (nonempty(json_str(boot, "kernel_release")) || nonempty(json_str(boot, "hostname")))
                detailf(f,
                        2,
                        "kernel",
                        ascii,
                        "%s on host %s",
                        json_str(boot, "kernel_release") ?: "?",
                        json_str(boot, "hostname") ?: "?");
        if (nonempty(json_str(boot, "agent_version")))
                detailf(f,
                        2,
                        "agent",
                        ascii,
                        "%s (%s mode)",
                        json_str(boot, "agent_version"),
                        json_str(boot, "agent_mode") ?: "?");
        detail_time(f, 2, "started", boot, "kernel_start_unix_ns", ascii);
        if (json_u64(boot, "clock_error_ns", &v))
                detailf(f, 2, "clock error", ascii, "%s%s", ascii ? "+/-" : "\u00b1", format_duration(v, ascii, d1));

        const json_t *ready = json_object_get(boot, "ready");
        if (json_is_object(ready)) {
                const char *source = json_str(ready, "source") ?: "?";
                const char *det = nonempty(json_str(ready, "detail"));
                bool registered = json_u64(ready, "registered_to_ready_ns", &v2);
                /* A container has no kernel start and is timed from init's, which is shown only together with
                 * the time since registration. */
                const char *since = json_u64(ready, "kernel_to_ready_ns", &v) ? "kernel" :
                        registered && json_u64(ready, "init_to_ready_ns", &v) ? "init" :
                                                                                NULL;
                if (since)
                        detailf(f,
                                2,
                                "ready",
                                ascii,
                                "%s after %s start%s%s%s, source %s%s%s%s",
                                format_duration(v, ascii, d1),
                                since,
                                registered ? ", " : "",
                                registered ? format_duration(v2, ascii, d2) : "",
                                registered ? " after registration" : "",
                                source,
                                det ? " (" : "",
                                det ?: "",
                                det ? ")" : "");
                else
                        detailf(f, 2, "ready", ascii, "source %s", source);
                detail_time(f, 2, "ready at", ready, "ready_unix_ns", ascii);
        } else
                detail(f, 2, "ready", "not yet", ascii);

        const json_t *exit = json_object_get(boot, "exit");
        if (json_is_object(exit)) {
                uint64_t code = 0, sig = 0;
                const char *reason = nonempty(json_str(exit, "reason"));
                bool oom = json_is_true(json_object_get(exit, "oom_killed"));

                json_u64(exit, "code", &code);
                json_u64(exit, "signal", &sig);
                if (sig > 0)
                        detailf(f,
                                2,
                                "exit",
                                ascii,
                                "killed by signal %" PRIu64 "%s%s%s",
                                sig,
                                oom ? " (OOM killed)" : "",
                                reason ? ": " : "",
                                reason ?: "");
                else
                        detailf(f,
                                2,
                                "exit",
                                ascii,
                                "code %" PRIu64 "%s%s%s",
                                code,
                                oom ? " (OOM killed)" : "",
                                reason ? ": " : "",
                                reason ?: "");
                detail_time(f, 2, "exit at", exit, "exit_unix_ns", ascii);
        }

        uint64_t records = 0, last_seq = 0, log_bytes = 0, dropped = 0, errors = 0;
        json_u64(boot, "records", &records);
        json_u64(boot, "last_seq", &last_seq);
        json_u64(boot, "log_bytes", &log_bytes);
        json_u64(boot, "logs_dropped", &dropped);
        json_u64(boot, "protocol_errors", &errors);
        detailf(f,
                2,
                "records",
                ascii,
                "%" PRIu64 " (last seq %" PRIu64 "), %" PRIu64 " log bytes",
                records,
                last_seq,
                log_bytes);
        detailf(f, 2, "dropped", ascii, "%" PRIu64 " log records", dropped);
        detailf(f, 2, "errors", ascii, "%" PRIu64 " protocol errors", errors);
}

int format_machine_details(const json_t *m, bool ascii, char **ret) {
        if (!json_is_object(m))
                return -EINVAL;

        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;

        uint64_t boots = 0;
        _cleanup_free_ char *transport = transport_of(m);

        detail(f, 0, "machine", json_str(m, "machine_id") ?: "?", ascii);
        detailf(f,
                0,
                "state",
                ascii,
                "%s (%s)",
                json_str(m, "state") ?: "?",
                json_is_true(json_object_get(m, "connected")) ? "agent connected" : "no agent connected");
        if (nonempty(json_str(m, "node_id")))
                detail(f, 0, "node", json_str(m, "node_id"), ascii);
        detail(f, 0, "transport", transport ?: "-", ascii);
        if (nonempty(json_str(m, "service_name")))
                detail(f, 0, "service", json_str(m, "service_name"), ascii);
        if (nonempty(json_str(m, "request_id")))
                detail(f, 0, "request", json_str(m, "request_id"), ascii);
        if (nonempty(json_str(m, "traceparent")))
                detail(f, 0, "traceparent", json_str(m, "traceparent"), ascii);
        detail(f, 0, "ready when", json_str(m, "ready_condition") ?: "any", ascii);
        detail_time(f, 0, "registered", m, "registered_unix_ns", ascii);

        const json_t *attrs = json_object_get(m, "attributes");
        if (json_is_object(attrs) && json_object_size(attrs) > 0) {
                const char *key;
                const json_t *value;
                bool first = true;
                json_object_foreach((json_t *) attrs, key, value) {
                        _cleanup_free_ char *v = json_is_string(value) ? strdup(json_string_value(value)) :
                                                                         json_dumps(value, JSON_ENCODE_ANY);
                        detailf(f, 0, first ? "attributes" : "", ascii, "%s=%s", key, v ?: "?");
                        first = false;
                }
        }

        if (json_u64(m, "boots", &boots))
                detailf(f, 0, "boots", ascii, "%" PRIu64, boots);

        const json_t *boot = json_object_get(m, "boot");
        if (json_is_object(boot))
                format_boot(f, boot, ascii);
        else
                detail(f, 0, "boot", "none yet (no agent has connected)", ascii);

        if (fclose(f) != 0)
                return -ENOMEM;
        *ret = TAKE_PTR(buf);
        return 0;
}

static bool has_suffix(const char *s, const char *suffix) {
        size_t n = strlen(s), m = strlen(suffix);
        return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* key=value for the details of an event: *_unix_ns as times, *_ns as durations (key without the suffix),
 * strings quoted when they contain blanks. */
static void write_event_detail(FILE *f, const char *key, const json_t *value, bool ascii) {
        char buf[MAX(TIMESTAMP_MAX, DURATION_MAX)];
        _cleanup_free_ char *safe_key = terminal_sanitize(key, false, ascii);

        if (!safe_key)
                return;

        if (json_is_integer(value) && json_integer_value(value) >= 0 && has_suffix(key, "_unix_ns")) {
                fprintf(f,
                        "  %.*s=%s",
                        (int) (strlen(safe_key) - strlen("_unix_ns")),
                        safe_key,
                        format_timestamp((uint64_t) json_integer_value(value), buf));
                return;
        }
        if (json_is_integer(value) && json_integer_value(value) >= 0 && has_suffix(key, "_ns")) {
                fprintf(f,
                        "  %.*s=%s",
                        (int) (strlen(safe_key) - strlen("_ns")),
                        safe_key,
                        format_duration((uint64_t) json_integer_value(value), ascii, buf));
                return;
        }

        _cleanup_free_ char *text = json_is_string(value) ? strdup(json_string_value(value)) :
                                                            json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);
        _cleanup_free_ char *safe = text ? terminal_sanitize(text, false, ascii) : NULL;
        if (!safe)
                return;
        bool quote = json_is_string(value) && (!*safe || strpbrk(safe, " \t\"=") != NULL);
        fprintf(f, quote ? "  %s=\"%s\"" : "  %s=%s", safe_key, safe);
}

int format_event_line(const json_t *event, bool ascii, char **ret) {
        static const char *const shown_first[] = { "machine_id", "transition", "time_unix_ns" };
        /* Repeated on every event of a node: noise in a terminal, still in --json. */
        static const char *const hidden[] = { "node_id" };

        if (!json_is_object(event))
                return -EINVAL;

        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;

        char ts[TIMESTAMP_MAX];
        uint64_t t;
        _cleanup_free_ char *machine = terminal_sanitize(json_str(event, "machine_id") ?: "-", false, ascii);
        _cleanup_free_ char *transition = terminal_sanitize(json_str(event, "transition") ?: "?", false, ascii);

        fprintf(f,
                "%s  %-12s  %-12s",
                json_u64(event, "time_unix_ns", &t) ? format_timestamp(t, ts) : "-",
                machine ?: "?",
                transition ?: "?");

        const char *key;
        const json_t *value;
        json_object_foreach((json_t *) event, key, value) {
                bool skip = json_is_null(value);
                for (size_t i = 0; i < ELEMENTSOF(shown_first); i++)
                        skip = skip || strcmp(key, shown_first[i]) == 0;
                for (size_t i = 0; i < ELEMENTSOF(hidden); i++)
                        skip = skip || strcmp(key, hidden[i]) == 0;
                if (json_is_string(value) && !*json_string_value(value))
                        skip = true;
                if (!skip)
                        write_event_detail(f, key, value, ascii);
        }

        if (fclose(f) != 0)
                return -ENOMEM;
        /* Trailing blanks from the padded columns of an event without details. */
        size_t n = strlen(buf);
        while (n > 0 && buf[n - 1] == ' ')
                buf[--n] = '\0';
        *ret = TAKE_PTR(buf);
        return 0;
}

int format_log_record(const json_t *record, const LogFormat *lf, char **ret) {
        const json_t *dropped = json_object_get(record, "dropped");
        if (json_is_object(dropped)) {
                uint64_t records = 0, bytes = 0;
                json_u64(dropped, "records", &records);
                json_u64(dropped, "bytes", &bytes);
                _cleanup_free_ char *reason = terminal_sanitize(
                        json_str(dropped, "reason") ?: "unknown", false, lf->ascii);
                if (!reason)
                        return -ENOMEM;
                char *s = str_printf(
                        "-- %" PRIu64 " records (%" PRIu64 " bytes) dropped: %s --", records, bytes, reason);
                if (!s)
                        return -ENOMEM;
                *ret = s;
                return 0;
        }

        const char *line = json_str(record, "line");
        if (!line)
                return -EINVAL;

        _cleanup_free_ char *text = lf->sanitize ? terminal_sanitize(line, true, false) : strdup(line);
        if (!text)
                return -ENOMEM;

        const char *stream = json_str(record, "stream");
        bool prefix = lf->prefix_streams && stream && *stream && strcmp(stream, "stdout") != 0;
        _cleanup_free_ char *safe_stream = prefix ? terminal_sanitize(stream, false, lf->ascii) : NULL;
        if (prefix && !safe_stream)
                return -ENOMEM;

        /* A line with a syslog priority (the journal's) is tagged with its name: "[err] ...". */
        uint64_t priority;
        char tag[16] = "";
        if (json_u64(record, "priority", &priority) && priority <= SYSLOG_PRIORITY_MAX)
                snprintf(tag, sizeof(tag), "[%s] ", syslog_priority_to_string((unsigned) priority));

        char *s = prefix || *tag ? str_printf("%s%s%s%s", prefix ? safe_stream : "", prefix ? ": " : "", tag, text) :
                                   TAKE_PTR(text);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int format_ready(const char *machine_id, const json_t *body, bool ascii, char **ret) {
        const json_t *ready = json_object_get(body, "ready");
        const char *arrow = ascii ? "->" : "\u2192";
        char d[DURATION_MAX];
        uint64_t v;

        _cleanup_free_ char *source = terminal_sanitize(json_str(ready, "source") ?: "unknown", false, ascii);
        _cleanup_free_ char *det = nonempty(json_str(ready, "detail")) ?
                terminal_sanitize(json_str(ready, "detail"), false, ascii) :
                NULL;
        _cleanup_free_ char *suffix = det ? str_printf(" (%s)", det) : strdup("");
        if (!source || !suffix)
                return -ENOMEM;

        /* The longest span known: a container has no kernel start, and init.start may be unknown too. */
        const char *since = json_u64(ready, "kernel_to_ready_ns", &v) ? "kernel" :
                json_u64(ready, "init_to_ready_ns", &v)               ? "init" :
                json_u64(ready, "registered_to_ready_ns", &v)         ? "registered" :
                                                                        NULL;
        char *s = since ? str_printf(
                                  "%s ready after %s (%s%sready), source %s%s",
                                  machine_id,
                                  format_duration(v, ascii, d),
                                  since,
                                  arrow,
                                  source,
                                  suffix) :
                          str_printf("%s ready, source %s%s", machine_id, source, suffix);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int format_not_ready(
        const char *machine_id, long status, const json_t *body, const char *raw_body, bool ascii, char **ret) {
        _cleanup_free_ char *error = api_error_message(status, body, raw_body);
        _cleanup_free_ char *state = terminal_sanitize(json_str(body, "state") ?: "unknown", false, ascii);
        if (!error || !state)
                return -ENOMEM;

        char *s;
        switch (status) {
        case 504: {
                const json_t *seen = json_object_get(body, "agent_seen");
                bool no_agent = json_is_false(seen) && !strstr(error, "no agent");
                s = str_printf(
                        "%s not ready: %s (state %s)%s",
                        machine_id,
                        error,
                        state,
                        no_agent ? "; no agent has connected for this machine" : "");
                break;
        }
        case 409: {
                const char *reason_raw = nonempty(json_str(body, "reason"));
                _cleanup_free_ char *reason = reason_raw ? terminal_sanitize(reason_raw, false, ascii) : NULL;
                if (reason_raw && !reason)
                        return -ENOMEM;
                if (reason && strcmp(reason, error) != 0)
                        s = str_printf("%s failed before ready: %s (state %s: %s)", machine_id, error, state, reason);
                else
                        s = str_printf("%s failed before ready: %s (state %s)", machine_id, error, state);
                break;
        }
        default:
                s = str_printf("%s: %s (HTTP %ld)", machine_id, error, status);
        }
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}
