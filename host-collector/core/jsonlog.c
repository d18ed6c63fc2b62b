/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#include "jsonlog.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <time.h>
#include <unistd.h>

#include "time-util.h"
#include "utf8.h"

static LogTarget log_target = LOG_TARGET_JSON;
static int log_max_level = LOG_INFO;
static char log_node_id[256];

void log_setup(LogTarget target, int max_level, const char *node_id) {
        if (target == LOG_TARGET_AUTO)
                target = getenv("JOURNAL_STREAM") ? LOG_TARGET_JOURNAL : LOG_TARGET_JSON;
        /* sd_journal_send() drops messages silently when journald is not running: never lose them. */
        if (target == LOG_TARGET_JOURNAL && access("/run/systemd/journal/socket", F_OK) < 0)
                target = LOG_TARGET_JSON;
        log_target = target;
        log_max_level = max_level;
        snprintf(log_node_id, sizeof(log_node_id), "%s", node_id ?: "");
}

int log_get_max_level(void) {
        return log_max_level;
}

static const char *level_to_string(int level) {
        switch (level) {
        case LOG_DEBUG:
                return "debug";
        case LOG_INFO:
                return "info";
        case LOG_NOTICE:
                return "notice";
        case LOG_WARNING:
                return "warning";
        default:
                return "error";
        }
}

int log_level_from_string(const char *s) {
        static const struct {
                const char *name;
                int level;
        } table[] = {
                { "debug", LOG_DEBUG },     { "info", LOG_INFO }, { "notice", LOG_NOTICE },
                { "warning", LOG_WARNING }, { "error", LOG_ERR }, { "err", LOG_ERR },
        };
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (strcmp(s, table[i].name) == 0)
                        return table[i].level;
        return -EINVAL;
}

int log_target_from_string(const char *s) {
        if (strcmp(s, "auto") == 0)
                return LOG_TARGET_AUTO;
        if (strcmp(s, "json") == 0)
                return LOG_TARGET_JSON;
        if (strcmp(s, "journal") == 0)
                return LOG_TARGET_JOURNAL;
        return -EINVAL;
}

static void format_time(char *buf, size_t n) {
        struct timespec ts;
        struct tm tm;

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf + k, n - k, ".%06ldZ", ts.tv_nsec / 1000);
}

static void emit_json(int level, int error, const LogFields *f, const char *msg) {
        char when[64];

        format_time(when, sizeof(when));
        json_t *o = json_object();
        if (!o) {
                fputs("{\"level\":\"error\",\"msg\":\"out of memory while logging\"}\n", stderr);
                return;
        }

        /* Messages may quote guest-controlled text: never let invalid UTF-8 lose the line. */
        _cleanup_free_ char *clean = utf8_sanitize(msg, strlen(msg), NULL);

        json_object_set_new(o, "time", json_string(when));
        json_object_set_new(o, "level", json_string(level_to_string(level)));
        json_object_set_new(o, "msg", json_string(clean ?: "(unprintable message)"));
        if (log_node_id[0])
                json_object_set_new(o, "node_id", json_string(log_node_id));
        if (f && f->machine_id)
                json_object_set_new(o, "machine_id", json_string(f->machine_id));
        if (f && f->request_id)
                json_object_set_new(o, "request_id", json_string(f->request_id));
        if (f && f->transition)
                json_object_set_new(o, "transition", json_string(f->transition));
        if (error != 0)
                json_object_set_new(o, "errno", json_integer(error));

        char *line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        json_decref(o);
        if (!line) {
                fputs("{\"level\":\"error\",\"msg\":\"out of memory while logging\"}\n", stderr);
                return;
        }

        /* One write per line keeps lines whole when stderr is shared (json_dumps leaves room for no newline,
         * so write it separately only if the realloc fails). */
        size_t len = strlen(line);
        char *withnl = realloc(line, len + 2);
        if (withnl) {
                line = withnl;
                line[len] = '\n';
                (void) !write(STDERR_FILENO, line, len + 1);
        } else {
                (void) !write(STDERR_FILENO, line, len);
                (void) !write(STDERR_FILENO, "\n", 1);
        }
        free(line);
}

static void emit_journal(int level, int error, const LogFields *f, const char *msg) {
        char *fields[8];
        struct iovec iov[8];
        size_t n = 0;

        if (asprintf(&fields[n], "MESSAGE=%s", msg) >= 0)
                n++;
        if (asprintf(&fields[n], "PRIORITY=%i", level) >= 0)
                n++;
        if (log_node_id[0] && asprintf(&fields[n], "TETHER_NODE_ID=%s", log_node_id) >= 0)
                n++;
        if (f && f->machine_id && asprintf(&fields[n], "TETHER_MACHINE_ID=%s", f->machine_id) >= 0)
                n++;
        if (f && f->request_id && asprintf(&fields[n], "TETHER_REQUEST_ID=%s", f->request_id) >= 0)
                n++;
        if (f && f->transition && asprintf(&fields[n], "TETHER_TRANSITION=%s", f->transition) >= 0)
                n++;
        if (error != 0 && asprintf(&fields[n], "ERRNO=%i", error) >= 0)
                n++;
        if (asprintf(&fields[n], "SYSLOG_IDENTIFIER=tetherd") >= 0)
                n++;

        for (size_t i = 0; i < n; i++)
                iov[i] = (struct iovec) { .iov_base = fields[i], .iov_len = strlen(fields[i]) };
        if (sd_journal_sendv(iov, (int) n) < 0)
                emit_json(level, error, f, msg);
        for (size_t i = 0; i < n; i++)
                free(fields[i]);
}

static void emit(int level, int error, const LogFields *fields, const char *msg) {
        if (log_target == LOG_TARGET_JOURNAL)
                emit_journal(level, error, fields, msg);
        else
                emit_json(level, error, fields, msg);
}

int log_emit(int level, int error, const LogFields *fields, const char *fmt, ...) {
        int saved_errno = errno;
        char *msg = NULL;
        va_list ap;

        if (error < 0)
                error = -error;
        if (level > log_max_level)
                goto finish;
        if (fields && fields->ratelimit) {
                uint64_t suppressed = 0;
                if (!ratelimit_below(fields->ratelimit, now_ns(CLOCK_MONOTONIC), &suppressed))
                        goto finish;
                if (suppressed > 0) {
                        _cleanup_free_ char *note = NULL;
                        if (asprintf(
                                    &note,
                                    "Suppressed %" PRIu64 " log lines about machine %s (more than %u in %u s).",
                                    suppressed,
                                    fields->machine_id ?: "(none)",
                                    fields->ratelimit->burst,
                                    (unsigned) (fields->ratelimit->interval_ns / NSEC_PER_SEC)) >= 0) {
                                LogFields plain = *fields;
                                plain.transition = NULL;
                                emit(LOG_WARNING, 0, &plain, note);
                        }
                }
        }

        errno = error; /* for %m */
        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);

        emit(level, error, fields, msg ?: fmt);
        free(msg);

finish:
        errno = saved_errno;
        return -error;
}
