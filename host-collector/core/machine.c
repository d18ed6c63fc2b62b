/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#include "machine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "macro.h"
#include "utf8.h"

static const char *const machine_state_names[_MACHINE_STATE_MAX] = {
        [MACHINE_REGISTERED] = "registered", [MACHINE_BOOTING] = "booting", [MACHINE_READY] = "ready",
        [MACHINE_EXITED] = "exited",         [MACHINE_CRASHED] = "crashed", [MACHINE_DISCONNECTED] = "disconnected",
        [MACHINE_STOPPED] = "stopped",
};

const char *machine_state_to_string(MachineState s) {
        return (unsigned) s < _MACHINE_STATE_MAX ? machine_state_names[s] : "unknown";
}

static const char *const machine_source_names[_MACHINE_SOURCE_MAX] = {
        [MACHINE_SOURCE_API] = "api",
        [MACHINE_SOURCE_LIBVIRT] = "libvirt",
};

const char *machine_source_to_string(MachineSource s) {
        return (unsigned) s < _MACHINE_SOURCE_MAX ? machine_source_names[s] : "unknown";
}

int machine_source_from_string(const char *s) {
        for (MachineSource i = 0; i < _MACHINE_SOURCE_MAX; i++)
                if (strcmp(s, machine_source_names[i]) == 0)
                        return (int) i;
        return -EINVAL;
}

bool machine_id_is_valid(const char *id) {
        size_t n = id ? strlen(id) : 0;

        if (n == 0 || n > MACHINE_ID_MAX)
                return false;
        /* The id names a directory in the state directory. */
        if (strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
                return false;
        for (const char *p = id; *p; p++)
                if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                      strchr("._:-", *p)))
                        return false;
        return true;
}

/* Absolute and canonical: no empty, "." or ".." component, no trailing slash. Two spellings of one path would
 * be two machines' sockets at one place ("//x", "/a/./x", "/a/b/../x"): the second registration would replace
 * the first one's live socket, and deleting either would remove the other's. */
static bool path_is_canonical(const char *p) {
        if (p[0] != '/')
                return false;
        for (const char *c = p + 1;;) {
                const char *e = strchrnul(c, '/');
                size_t n = (size_t) (e - c);
                if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
                        return false;
                if (!*e)
                        return true;
                c = e + 1;
        }
}

static bool text_valid(const char *s, size_t max) {
        size_t n = strnlen(s, max + 1);
        return n <= max && utf8_is_valid(s, n);
}

int machine_spec_validate(const MachineSpec *spec, uint32_t vsock_port, const char **ret_error) {
        const char *err = NULL;

        if (!machine_id_is_valid(spec->machine_id))
                err = "machine_id must match [A-Za-z0-9._:-]{1,128} (and not be \".\" or \"..\")";
        else if ((unsigned) spec->source >= _MACHINE_SOURCE_MAX)
                err = "unknown source";
        else if (spec->cid != 0 && spec->uds_path)
                err = "exactly one of cid and uds_path is required";
        else if (spec->cid == 0 && !spec->uds_path && spec->source != MACHINE_SOURCE_LIBVIRT)
                err = "exactly one of cid and uds_path is required";
        else if (spec->source_id && !text_valid(spec->source_id, MACHINE_SOURCE_ID_MAX))
                err = "source_id must be valid UTF-8 of at most 64 bytes";
        else if (spec->cid != 0 && spec->cid < 3)
                err = "cid must be >= 3 (0-2 are reserved)";
        else if (spec->cid == UINT32_MAX)
                err = "cid must not be VMADDR_CID_ANY";
        else if (spec->uds_path) {
                char port[16];
                snprintf(port, sizeof(port), "_%u", vsock_port);
                if (!path_is_canonical(spec->uds_path))
                        err = "uds_path must be an absolute, canonical path (no empty, \".\" or \"..\" component, "
                              "no trailing slash)";
                else if (strlen(spec->uds_path) + strlen(port) >= sizeof(((struct sockaddr_un *) NULL)->sun_path))
                        err = "uds_path too long for a Unix socket address";
                else if (!text_valid(spec->uds_path, MACHINE_STRING_MAX))
                        err = "uds_path must be valid UTF-8";
        }
        if (!err && (spec->socket_uid_set || spec->socket_gid_set || spec->socket_mode) && !spec->uds_path)
                err = "socket_uid, socket_gid and socket_mode apply to a uds_path";
        if (!err && spec->socket_mode > 0777)
                err = "socket_mode must be an octal file mode between 0001 and 0777";
        if (!err &&
            ((spec->socket_uid_set && spec->socket_uid == UINT32_MAX) ||
             (spec->socket_gid_set && spec->socket_gid == UINT32_MAX)))
                err = "socket_uid and socket_gid must be below 4294967295";
        if (!err && spec->traceparent && *spec->traceparent) {
                TraceParent tp;
                if (traceparent_parse(spec->traceparent, &tp) < 0)
                        err = "traceparent is not a valid W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)";
        }
        if (!err && spec->request_id && !text_valid(spec->request_id, MACHINE_STRING_MAX))
                err = "request_id must be valid UTF-8 of at most 1024 bytes";
        if (!err && spec->service_name && !text_valid(spec->service_name, MACHINE_STRING_MAX))
                err = "service_name must be valid UTF-8 of at most 1024 bytes";
        if (!err && spec->n_attrs > MACHINE_ATTRIBUTES_MAX)
                err = "at most 32 attributes";
        for (size_t i = 0; !err && i < spec->n_attrs; i++)
                if (!spec->attr_keys[i][0] || !text_valid(spec->attr_keys[i], MACHINE_STRING_MAX) ||
                    !text_valid(spec->attr_values[i], MACHINE_STRING_MAX))
                        err = "attribute keys must be non-empty, keys and values valid UTF-8 of at most 1024 bytes";
        if (!err) {
                ReadyCondition c;
                int r = ready_condition_parse(spec->ready_condition, &c);
                if (r == -ENOMEM)
                        return -ENOMEM;
                if (r < 0)
                        err = "ready_condition must be \"any\", \"source:<name>\" or \"milestone:<name>\"";
                else
                        ready_condition_done(&c);
        }

        if (err) {
                if (ret_error)
                        *ret_error = err;
                return -EINVAL;
        }
        return 0;
}

int machine_new(const MachineSpec *spec, const char *default_service_name, Machine **ret) {
        int r;

        Machine *m = calloc(1, sizeof(Machine));
        if (!m)
                return -ENOMEM;
        m->cid = spec->cid;
        m->socket_uid_set = spec->socket_uid_set;
        m->socket_gid_set = spec->socket_gid_set;
        m->socket_uid = spec->socket_uid;
        m->socket_gid = spec->socket_gid;
        m->socket_mode = spec->socket_mode;
        m->log_ratelimit = RATELIMIT_INIT(MACHINE_LOG_RATELIMIT_INTERVAL_NS, MACHINE_LOG_RATELIMIT_BURST);
        m->registered_unix_ns = spec->registered_unix_ns;
        m->source = spec->source;

        if (!(m->id = strdup(spec->machine_id)))
                goto oom;
        if (spec->cid != 0 && asprintf(&m->cid_key, "cid:%u", spec->cid) < 0) {
                m->cid_key = NULL;
                goto oom;
        }
        if (strdup_or_null(spec->uds_path, &m->uds_path) < 0 || strdup_or_null(spec->request_id, &m->request_id) < 0 ||
            strdup_or_null(spec->source_id, &m->source_id) < 0 ||
            strdup_or_null(spec->service_name ?: default_service_name, &m->service_name) < 0)
                goto oom;
        if (spec->traceparent && *spec->traceparent) {
                if (traceparent_parse(spec->traceparent, &m->parent) < 0) {
                        machine_free(m);
                        return -EINVAL;
                }
                m->has_parent = true;
                if (!(m->traceparent = strdup(spec->traceparent)))
                        goto oom;
        }
        if (attrs_from_arrays(spec->attr_keys, spec->attr_values, spec->n_attrs, &m->attrs) < 0)
                goto oom;
        m->n_attrs = spec->n_attrs;
        r = ready_condition_parse(spec->ready_condition, &m->ready_condition);
        if (r < 0) {
                machine_free(m);
                return r;
        }
        m->next_boot_index = 1;
        *ret = m;
        return 0;

oom:
        machine_free(m);
        return -ENOMEM;
}

Machine *machine_free(Machine *m) {
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n_boots; i++)
                boot_free(m->boots[i]);
        free(m->boots);
        free(m->samples);
        free(m->id);
        free(m->cid_key);
        free(m->uds_path);
        free(m->traceparent);
        free(m->request_id);
        free(m->service_name);
        free(m->source_id);
        attrs_free(m->attrs, m->n_attrs);
        ready_condition_done(&m->ready_condition);
        free(m->state_reason);
        free(m);
        return NULL;
}

int machine_add_boot(Machine *m, Boot *b, size_t max_boots, Boot **ret_evicted) {
        Boot **a = realloc(m->boots, (m->n_boots + 1) * sizeof(Boot *));
        if (!a)
                return -ENOMEM;
        m->boots = a;
        m->boots[m->n_boots++] = b;
        m->current = b;
        if (b->index >= m->next_boot_index)
                m->next_boot_index = b->index + 1;

        *ret_evicted = NULL;
        if (m->n_boots > MAX(max_boots, (size_t) 1))
                for (size_t i = 0; i < m->n_boots; i++) {
                        if (m->boots[i] == m->current)
                                continue;
                        *ret_evicted = m->boots[i];
                        memmove(&m->boots[i], &m->boots[i + 1], (m->n_boots - i - 1) * sizeof(Boot *));
                        m->n_boots--;
                        break;
                }
        return 0;
}

Boot *machine_find_boot(const Machine *m, const char *boot_id) {
        for (size_t i = 0; i < m->n_boots; i++)
                if (strcmp(m->boots[i]->boot_id, boot_id) == 0)
                        return m->boots[i];
        return NULL;
}

Boot *machine_find_boot_by_index(const Machine *m, uint64_t index) {
        for (size_t i = 0; i < m->n_boots; i++)
                if (m->boots[i]->index == index)
                        return m->boots[i];
        return NULL;
}

MachineState machine_state_from_boot(const Machine *m) {
        const Boot *b = m->current;

        if (!b)
                return MACHINE_REGISTERED;
        if (b->exit.set)
                return boot_exit_is_crash(b) ? MACHINE_CRASHED : MACHINE_EXITED;
        if (b->ready.set)
                return MACHINE_READY;
        return MACHINE_BOOTING;
}
