/* SPDX-License-Identifier: MIT */
#include "sample.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "format.h"
#include "fs-util.h"
#include "macro.h"

/* Skips blanks, reads decimal digits (saturating). Returns the position after them, or NULL without any. */
static const char *scan_u64(const char *p, uint64_t *ret) {
        uint64_t v = 0;

        while (*p == ' ' || *p == '\t')
                p++;
        if (*p < '0' || *p > '9')
                return NULL;
        for (; *p >= '0' && *p <= '9'; p++)
                v = add_sat(mul_sat(v, 10), (uint64_t) (*p - '0'));
        *ret = v;
        return p;
}

/* "12.34" as 1234: a decimal in hundredths, further digits cut. */
static const char *scan_centi(const char *p, uint64_t *ret) {
        uint64_t whole, frac = 0;

        if (!(p = scan_u64(p, &whole)))
                return NULL;
        if (*p == '.')
                p++;
        for (int i = 0; i < 2; i++) {
                frac *= 10;
                if (*p >= '0' && *p <= '9')
                        frac += (uint64_t) (*p++ - '0');
        }
        while (*p >= '0' && *p <= '9')
                p++;
        *ret = add_sat(mul_sat(whole, 100), frac);
        return p;
}

/* The line of text that starts with prefix, positioned after it; NULL if there is none. */
static const char *find_line(const char *text, const char *prefix) {
        size_t n = strlen(prefix);

        for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
                if (strncmp(p, prefix, n) == 0)
                        return p + n;
        return NULL;
}

int sample_parse_stat(const char *text, uint64_t ticks_per_s, uint64_t ret_ns[8]) {
        const char *p = find_line(text, "cpu ");
        uint64_t v[8] = {};
        size_t n = 0;

        if (!p || ticks_per_s == 0)
                return -EINVAL;
        /* Older kernels have fewer columns (steal since 2.6.11); newer ones more (guest time, counted in user). */
        while (n < ELEMENTSOF(v) && (p = scan_u64(p, &v[n])))
                n++;
        if (n < 4)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(v); i++)
                ret_ns[i] = mul_sat(v[i], NSEC_PER_SEC / ticks_per_s);
        return 0;
}

int sample_parse_meminfo(const char *text, uint64_t ret_bytes[5]) {
        static const char *const keys[5] = { "MemTotal:", "MemAvailable:", "MemFree:", "SwapTotal:", "SwapFree:" };
        uint64_t v[5] = {};

        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                const char *p = find_line(text, keys[i]);
                if (!p || !(p = scan_u64(p, &v[i])))
                        continue;
                if (strncmp(p, " kB", 3) == 0)
                        v[i] = mul_sat(v[i], 1024);
        }
        if (v[0] == 0)
                return -EINVAL;
        if (!find_line(text, "MemAvailable:"))
                v[1] = v[2];
        /* What the host checks (a guest cannot report more available than it has) holds for any kernel. */
        v[1] = MIN(v[1], v[0]);
        v[2] = MIN(v[2], v[0]);
        v[4] = MIN(v[4], v[3]);
        memcpy(ret_bytes, v, sizeof(v));
        return 0;
}

int sample_parse_loadavg(const char *text, uint32_t ret_centi[3]) {
        const char *p = text;
        uint32_t v[3];

        for (size_t i = 0; i < 3; i++) {
                uint64_t c;
                if (!(p = scan_centi(p, &c)))
                        return -EINVAL;
                v[i] = (uint32_t) MIN(c, (uint64_t) UINT32_MAX);
        }
        memcpy(ret_centi, v, sizeof(v));
        return 0;
}

/* The value after "key=" in the line at p (up to its end), or NULL. */
static const char *find_field(const char *p, const char *key) {
        size_t n = strlen(key);

        for (; p && *p && *p != '\n'; p++)
                if ((p[-1] == ' ') && strncmp(p, key, n) == 0)
                        return p + n;
        return NULL;
}

/* One "some"/"full" line: avg10 in hundredths of a percent, total µs as ns. */
static int parse_pressure_line(const char *p, uint64_t *ret_avg10, uint64_t *ret_total_ns) {
        const char *a = find_field(p, "avg10="), *t = find_field(p, "total=");
        uint64_t avg, total;

        if (!a || !t || !scan_centi(a, &avg) || !scan_u64(t, &total))
                return -EINVAL;
        *ret_avg10 = MIN(avg, (uint64_t) 10000);
        *ret_total_ns = mul_sat(total, NSEC_PER_USEC);
        return 0;
}

int sample_parse_pressure(const char *text, uint64_t ret[4]) {
        uint64_t v[4] = {};

        if (parse_pressure_line(find_line(text, "some "), &v[0], &v[2]) < 0)
                return -EINVAL;
        (void) parse_pressure_line(find_line(text, "full "), &v[1], &v[3]);
        memcpy(ret, v, sizeof(v));
        return 0;
}

int sample_parse_keyed(const char *text, const char *key, uint64_t *ret) {
        char prefix[64];

        int k = format(prefix, sizeof(prefix), "%s ", key);
        if (k < 0 || (size_t) k >= sizeof(prefix))
                return -ENOENT;
        const char *p = find_line(text, prefix);
        return p && scan_u64(p, ret) ? 0 : -ENOENT;
}

uint32_t sample_parse_cpu_list(const char *text) {
        const char *p = text;
        uint32_t n = 0;

        for (;;) {
                uint64_t first, last;
                if (!(p = scan_u64(p, &first)))
                        return n;
                last = first;
                if (*p == '-' && !(p = scan_u64(p + 1, &last)))
                        return n;
                if (last >= first && last - first < UINT32_MAX - n)
                        n += (uint32_t) (last - first + 1);
                if (*p++ != ',')
                        return n;
        }
}

int sample_parse_cgroup_path(const char *text, char *ret, size_t size) {
        const char *p = find_line(text, "0::");
        if (!p)
                return -ENOENT;
        size_t n = strcspn(p, "\n");
        if (n == 0 || n >= size)
                return -ENAMETOOLONG;
        memcpy(ret, p, n);
        ret[n] = '\0';
        return 0;
}

/* Reads what fits of a small file (proc and cgroup files are read whole in one go, up to size - 1 bytes). */
static int read_text(char *buf, size_t size, const char *fmt, const char *a, const char *b) {
        char path[512];

        int k = format(path, sizeof(path), fmt, a, b);
        if (k < 0 || (size_t) k >= sizeof(path))
                return -ENAMETOOLONG;
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        ssize_t n = read_full(fd, buf, size - 1);
        int r = n < 0 ? (int) n : 0;
        close(fd);
        if (r == 0)
                buf[n] = '\0';
        return r;
}

int sample_collect(
        const char *proc_root,
        const char *sys_root,
        const char *cgroup,
        uint64_t boottime_ns,
        ResourceSampleData *ret) {
        static const char *const pressure[3] = { "cpu", "memory", "io" };
        /* /proc/stat's first line is all we need; the per-CPU and interrupt lines after it can be long. */
        char buf[2048];
        ResourceSampleData *d = ret;
        Tether__ResourceSample *pb = &d->pb;
        int r;

        *d = (ResourceSampleData) {};
        tether__resource_sample__init(pb);
        pb->boottime_ns = boottime_ns;
        if (read_text(buf, sizeof(buf), "%s%s", sys_root, "/devices/system/cpu/online") == 0)
                pb->cpus = sample_parse_cpu_list(buf);

        r = read_text(buf, sizeof(buf), "%s/stat%s", proc_root, "");
        if (r < 0)
                return r;
        if (sample_parse_stat(buf, SAMPLE_USER_HZ, d->cpu_ns) == 0) {
                pb->cpu_ns = d->cpu_ns;
                pb->n_cpu_ns = ELEMENTSOF(d->cpu_ns);
        }
        if (read_text(buf, sizeof(buf), "%s/meminfo%s", proc_root, "") == 0 &&
            sample_parse_meminfo(buf, d->memory_bytes) == 0) {
                pb->memory_bytes = d->memory_bytes;
                pb->n_memory_bytes = ELEMENTSOF(d->memory_bytes);
        }
        if (read_text(buf, sizeof(buf), "%s/loadavg%s", proc_root, "") == 0 &&
            sample_parse_loadavg(buf, d->load_centi) == 0) {
                pb->load_centi = d->load_centi;
                pb->n_load_centi = ELEMENTSOF(d->load_centi);
        }
        uint64_t **psi[3] = { &pb->psi_cpu, &pb->psi_memory, &pb->psi_io };
        size_t *n_psi[3] = { &pb->n_psi_cpu, &pb->n_psi_memory, &pb->n_psi_io };
        for (size_t i = 0; i < 3; i++)
                if (read_text(buf, sizeof(buf), "%s/pressure/%s", proc_root, pressure[i]) == 0 &&
                    sample_parse_pressure(buf, d->psi[i]) == 0) {
                        *psi[i] = d->psi[i];
                        *n_psi[i] = ELEMENTSOF(d->psi[i]);
                }

        /* The workload's cgroup: its memory.current exists only where the memory controller is enabled. */
        const char *cg = cgroup;
        if (!cg || read_text(buf, sizeof(buf), "%s/fs/cgroup%s/memory.current", sys_root, cg) < 0 ||
            !scan_u64(buf, &d->cgroup_memory[0]))
                return 0;
        if (read_text(buf, sizeof(buf), "%s/fs/cgroup%s/memory.peak", sys_root, cg) == 0)
                (void) scan_u64(buf, &d->cgroup_memory[1]);
        if (read_text(buf, sizeof(buf), "%s/fs/cgroup%s/memory.events", sys_root, cg) == 0) {
                (void) sample_parse_keyed(buf, "oom", &d->cgroup_memory[2]);
                (void) sample_parse_keyed(buf, "oom_kill", &d->cgroup_memory[3]);
        }
        pb->cgroup_memory = d->cgroup_memory;
        pb->n_cgroup_memory = ELEMENTSOF(d->cgroup_memory);
        return 0;
}
