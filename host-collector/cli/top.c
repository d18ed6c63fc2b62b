/* SPDX-License-Identifier: MIT */
/* Room cli: the tether command line, a client of tetherd's HTTP API only. */
#include "top.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "duration.h"
#include "format.h"
#include "macro.h"
#include "term.h"

/* What one row shows; has_* false: unknown ("-", null). */
typedef struct TopRow {
        const char *machine_id, *state, *request_id;
        bool has_uptime, has_cpu, has_memory, has_pressure, has_log_rate, has_ready;
        uint64_t uptime_ns, memory_used_bytes, memory_total_bytes, ready_ns;
        double cpu_busy_ratio, memory_pressure_pct, log_bytes_per_second;
} TopRow;

static bool json_number(const json_t *o, const char *key, double *ret) {
        const json_t *v = json_object_get(o, key);
        if (!json_is_number(v))
                return false;
        *ret = json_number_value(v);
        return true;
}

static void top_row(const json_t *m, const json_t *prev_by_id, uint64_t elapsed_ns, uint64_t now_unix_ns, TopRow *ret) {
        const json_t *boot = json_object_get(m, "boot"), *ready = json_object_get(boot, "ready");
        const json_t *res = json_object_get(m, "resources");
        TopRow r = {
                .machine_id = json_str(m, "machine_id") ?: "?",
                .state = json_str(m, "state") ?: "?",
                .request_id = nonempty(json_str(m, "request_id")),
        };
        uint64_t t;

        if (json_is_object(res)) {
                r.has_uptime = json_u64(res, "uptime_ns", &r.uptime_ns);
                /* A connected guest's uptime goes on between its samples (10 s apart by default). */
                if (r.has_uptime && json_object_get(m, "connected") == json_true() &&
                    json_u64(res, "time_unix_ns", &t) && now_unix_ns > t)
                        r.uptime_ns += now_unix_ns - t;
                r.has_cpu = json_number(res, "cpu_busy_ratio", &r.cpu_busy_ratio);
                r.has_memory = json_u64(res, "memory_used_bytes", &r.memory_used_bytes) &&
                        json_u64(res, "memory_total_bytes", &r.memory_total_bytes);
                r.has_pressure = json_number(res, "memory_pressure_some_avg10_pct", &r.memory_pressure_pct);
        }
        r.has_ready = json_u64(ready, "kernel_to_ready_ns", &r.ready_ns) ||
                json_u64(ready, "init_to_ready_ns", &r.ready_ns);

        /* The log rate: the current boot's log bytes against the previous answer's, for the same boot. */
        const json_t *pm = json_object_get(prev_by_id, r.machine_id), *pboot = json_object_get(pm, "boot");
        const char *boot_id = json_str(boot, "boot_id"), *pboot_id = json_str(pboot, "boot_id");
        uint64_t now_bytes, prev_bytes;
        if (elapsed_ns > 0 && boot_id && pboot_id && strcmp(boot_id, pboot_id) == 0 &&
            json_u64(boot, "log_bytes", &now_bytes) && json_u64(pboot, "log_bytes", &prev_bytes) &&
            now_bytes >= prev_bytes) {
                r.has_log_rate = true;
                r.log_bytes_per_second = (double) (now_bytes - prev_bytes) * 1e9 / (double) elapsed_ns;
        }
        *ret = r;
}

/* The previous answer's machines by id, for the rates. NULL prev: an empty index. */
static json_t *index_by_id(const json_t *prev) {
        json_t *idx = json_object(), *m;
        size_t i;

        if (!idx)
                return NULL;
        json_array_foreach(json_object_get(prev, "machines"), i, m) {
                const char *id = json_str(m, "machine_id");
                if (id && json_object_set(idx, id, m) < 0) {
                        json_decref(idx);
                        return NULL;
                }
        }
        return idx;
}

/* 59s, 1m02s, 3h04m, 12d05h: two units at most, as top shows uptimes. */
static char *format_uptime(uint64_t ns, char buf[static 24]) {
        uint64_t s = ns / NSEC_PER_SEC;

        if (s < 60)
                snprintf(buf, 24, "%" PRIu64 "s", s);
        else if (s < 3600)
                snprintf(buf, 24, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
        else if (s < 86400)
                snprintf(buf, 24, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, s % 3600 / 60);
        else
                snprintf(buf, 24, "%" PRIu64 "d%02" PRIu64 "h", s / 86400, s % 86400 / 3600);
        return buf;
}

/* 1023, 1.5K, 12M, 2.0G: at most 4 characters and a unit. */
static char *format_size(double v, char buf[static 16]) {
        static const char units[] = "BKMGTP";
        size_t u = 0;

        while (v >= 1023.5 && u + 1 < sizeof(units) - 1) {
                v /= 1024;
                u++;
        }
        if (u == 0)
                snprintf(buf, 16, "%.0f%c", v, units[u]);
        else
                snprintf(buf, 16, v < 9.95 ? "%.1f%c" : "%.0f%c", v, units[u]);
        return buf;
}

/* Columns after the machine id: name, width. */
static const struct {
        const char *name;
        int width;
} columns[] = {
        { "STATE", 12 }, { "UPTIME", 9 }, { "CPU", 5 }, { "MEM", 11 }, { "MPSI", 5 }, { "LOG/S", 6 }, { "READY", 8 },
};

static int fixed_width(void) {
        int w = 0;
        for (size_t i = 0; i < ELEMENTSOF(columns); i++)
                w += 1 + columns[i].width;
        return w;
}

static void put_row(FILE *f, const TopRow *r, int id_width, bool ascii) {
        char up[24] = "-", cpu[16] = "-", mem[40] = "-", psi[16] = "-", logs[24] = "-", ready[DURATION_MAX] = "-",
             a[16], b[16];

        if (r->has_uptime)
                format_uptime(r->uptime_ns, up);
        if (r->has_cpu)
                snprintf(cpu, sizeof(cpu), "%.0f%%", r->cpu_busy_ratio * 100);
        if (r->has_memory)
                snprintf(
                        mem,
                        sizeof(mem),
                        "%s/%s",
                        format_size((double) r->memory_used_bytes, a),
                        format_size((double) r->memory_total_bytes, b));
        if (r->has_pressure)
                snprintf(psi, sizeof(psi), "%.1f", r->memory_pressure_pct);
        if (r->has_log_rate)
                format_size(r->log_bytes_per_second, logs);
        if (r->has_ready)
                format_duration(r->ready_ns, ascii, ready);

        _cleanup_free_ char *safe_id = terminal_sanitize(r->machine_id, false, ascii);
        _cleanup_free_ char *id = safe_id ? truncate_to_width(safe_id, (size_t) id_width, ascii) : NULL;
        _cleanup_free_ char *safe_state = terminal_sanitize(r->state, false, ascii);
        /* printf pads by bytes: pad by columns so that a cut id ending in "…" lines up. */
        const char *shown = id ?: "?";
        fprintf(f, "%s%*s", shown, (int) (id_width - (int) display_width(shown)), "");
        fprintf(f,
                " %-*.*s %*s %*s %*s %*s %*s %*s\n",
                columns[0].width,
                columns[0].width,
                safe_state ?: "?",
                columns[1].width,
                up,
                columns[2].width,
                cpu,
                columns[3].width,
                mem,
                columns[4].width,
                psi,
                columns[5].width,
                logs,
                columns[6].width,
                ready);
}

int top_format(
        const json_t *now,
        const json_t *prev,
        uint64_t elapsed_ns,
        uint64_t now_unix_ns,
        unsigned width,
        unsigned max_rows,
        bool ascii,
        char **ret) {
        const json_t *machines = json_object_get(now, "machines");
        if (!json_is_array(machines))
                return -EINVAL;

        json_auto_t *prev_by_id = index_by_id(prev);
        _cleanup_free_ json_t **sorted = machines_sorted(machines);
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, n = json_array_size(machines);
        if (!prev_by_id || !sorted)
                return -ENOMEM;
        FILE *f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;

        /* The summary: when, how many machines in each state that has any. */
        static const char *const states[] = { "ready",   "booting",      "registered", "exited",
                                              "crashed", "disconnected", "stopped" };
        size_t count[ELEMENTSOF(states)] = {};
        for (size_t i = 0; i < n; i++)
                for (size_t s = 0; s < ELEMENTSOF(states); s++)
                        if (strcmp(json_str(sorted[i], "state") ?: "", states[s]) == 0)
                                count[s]++;
        char ts[TIMESTAMP_MAX], line[512];
        format_timestamp(now_unix_ns, ts);
        size_t k = (size_t) snprintf(
                line, sizeof(line), "tether top  %.8s  %zu machine%s", ts + 11, n, n == 1 ? "" : "s");
        const char *sep = ": ";
        for (size_t s = 0; s < ELEMENTSOF(states); s++)
                if (count[s] > 0 && k < sizeof(line)) {
                        k += (size_t) snprintf(line + k, sizeof(line) - k, "%s%zu %s", sep, count[s], states[s]);
                        sep = ", ";
                }
        _cleanup_free_ char *summary = truncate_to_width(line, MAX(width, TOP_WIDTH_MIN), ascii);
        fprintf(f, "%s\n", summary ?: line);

        int id_width = MAX((int) MAX(width, TOP_WIDTH_MIN) - fixed_width(), 8);
        fprintf(f, "%-*s", id_width, "MACHINE");
        for (size_t i = 0; i < ELEMENTSOF(columns); i++)
                fprintf(f, i == 0 ? " %-*s" : " %*s", columns[i].width, columns[i].name);
        fputc('\n', f);

        size_t shown = max_rows > 0 ? MIN(n, (size_t) max_rows) : n;
        if (shown < n && shown > 0)
                shown--; /* room for the "more" line */
        for (size_t i = 0; i < shown; i++) {
                TopRow r;
                top_row(sorted[i], prev_by_id, elapsed_ns, now_unix_ns, &r);
                put_row(f, &r, id_width, ascii);
        }
        if (shown < n)
                fprintf(f, "(%zu more)\n", n - shown);

        if (fclose(f) != 0)
                return -ENOMEM;
        *ret = TAKE_PTR(buf);
        return 0;
}

static json_t *u64_or_null(bool has, uint64_t v) {
        return has ? json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t) v) : json_null();
}

static json_t *real_or_null(bool has, double v) {
        return has ? json_real(v) : json_null();
}

int top_json(const json_t *now, const json_t *prev, uint64_t elapsed_ns, uint64_t now_unix_ns, json_t **ret) {
        const json_t *machines = json_object_get(now, "machines");
        if (!json_is_array(machines))
                return -EINVAL;

        json_auto_t *prev_by_id = index_by_id(prev);
        _cleanup_free_ json_t **sorted = machines_sorted(machines);
        json_auto_t *rows = json_array();
        if (!prev_by_id || !sorted || !rows)
                return -ENOMEM;

        for (size_t i = 0; i < json_array_size(machines); i++) {
                TopRow r;
                top_row(sorted[i], prev_by_id, elapsed_ns, now_unix_ns, &r);
                json_t *o = json_pack(
                        "{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                        "machine_id",
                        r.machine_id,
                        "state",
                        r.state,
                        "request_id",
                        r.request_id ? json_string(r.request_id) : json_null(),
                        "uptime_ns",
                        u64_or_null(r.has_uptime, r.uptime_ns),
                        "cpu_busy_ratio",
                        real_or_null(r.has_cpu, r.cpu_busy_ratio),
                        "memory_used_bytes",
                        u64_or_null(r.has_memory, r.memory_used_bytes),
                        "memory_total_bytes",
                        u64_or_null(r.has_memory, r.memory_total_bytes),
                        "memory_pressure_some_avg10_pct",
                        real_or_null(r.has_pressure, r.memory_pressure_pct),
                        "log_bytes_per_second",
                        real_or_null(r.has_log_rate, r.log_bytes_per_second),
                        "ready_ns",
                        u64_or_null(r.has_ready, r.ready_ns));
                if (!o || json_array_append_new(rows, o) < 0)
                        return -ENOMEM;
        }
        json_t *o = json_pack(
                "{s:I, s:I, s:O}",
                "time_unix_ns",
                (json_int_t) now_unix_ns,
                "interval_ns",
                (json_int_t) elapsed_ns,
                "machines",
                rows);
        if (!o)
                return -ENOMEM;
        *ret = o;
        return 0;
}
