/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#include "machine-json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int get_string(json_t *o, const char *key, const char **ret, const char **ret_error, const char *err) {
        json_t *v = json_object_get(o, key);

        if (!v || json_is_null(v)) {
                *ret = NULL;
                return 0;
        }
        if (!json_is_string(v)) {
                *ret_error = err;
                return -EINVAL;
        }
        *ret = json_string_value(v);
        return 0;
}

int machine_spec_from_json(json_t *o, MachineSpecJson *ret, const char **ret_error) {
        MachineSpecJson s = {};
        json_t *v;

        if (!json_is_object(o)) {
                *ret_error = "body must be a JSON object";
                return -EINVAL;
        }
        if (get_string(o, "machine_id", &s.spec.machine_id, ret_error, "machine_id must be a string") < 0 ||
            get_string(o, "uds_path", &s.spec.uds_path, ret_error, "uds_path must be a string") < 0 ||
            get_string(o, "traceparent", &s.spec.traceparent, ret_error, "traceparent must be a string") < 0 ||
            get_string(o, "request_id", &s.spec.request_id, ret_error, "request_id must be a string") < 0 ||
            get_string(o, "service_name", &s.spec.service_name, ret_error, "service_name must be a string") < 0 ||
            get_string(o, "ready_condition", &s.spec.ready_condition, ret_error, "ready_condition must be a string") <
                    0)
                return -EINVAL;
        if (!s.spec.machine_id) {
                *ret_error = "machine_id is required";
                return -EINVAL;
        }

        v = json_object_get(o, "cid");
        if (v && !json_is_null(v)) {
                if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) >= UINT32_MAX) {
                        *ret_error = "cid must be an integer between 3 and 4294967294";
                        return -EINVAL;
                }
                s.spec.cid = (uint32_t) json_integer_value(v);
        }

        v = json_object_get(o, "source");
        if (v && !json_is_null(v)) {
                int k = json_is_string(v) ? machine_source_from_string(json_string_value(v)) : -EINVAL;
                if (k < 0) {
                        *ret_error = "source must be \"api\" or \"libvirt\"";
                        return -EINVAL;
                }
                s.spec.source = (MachineSource) k;
        }
        if (get_string(o, "source_id", &s.spec.source_id, ret_error, "source_id must be a string") < 0)
                return -EINVAL;

        v = json_object_get(o, "socket_uid");
        if (v && !json_is_null(v)) {
                if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= UINT32_MAX) {
                        *ret_error = "socket_uid must be a numeric user id";
                        return -EINVAL;
                }
                s.spec.socket_uid_set = true;
                s.spec.socket_uid = (uint32_t) json_integer_value(v);
        }
        v = json_object_get(o, "socket_gid");
        if (v && !json_is_null(v)) {
                if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= UINT32_MAX) {
                        *ret_error = "socket_gid must be a numeric group id";
                        return -EINVAL;
                }
                s.spec.socket_gid_set = true;
                s.spec.socket_gid = (uint32_t) json_integer_value(v);
        }
        v = json_object_get(o, "socket_mode");
        if (v && !json_is_null(v)) {
                const char *t = json_is_string(v) ? json_string_value(v) : "";
                char *end = NULL;
                unsigned long mode = strtoul(t, &end, 8);
                if (!*t || *end || t[0] == '-' || t[0] == '+' || mode == 0 || mode > 0777) {
                        *ret_error = "socket_mode must be an octal file mode string between \"0001\" and \"0777\"";
                        return -EINVAL;
                }
                s.spec.socket_mode = (uint32_t) mode;
        }

        v = json_object_get(o, "registered_unix_ns");
        if (v && json_is_integer(v) && json_integer_value(v) > 0)
                s.spec.registered_unix_ns = (uint64_t) json_integer_value(v);

        v = json_object_get(o, "attributes");
        if (v && !json_is_null(v)) {
                const char *key;
                json_t *value;

                if (!json_is_object(v)) {
                        *ret_error = "attributes must be an object of strings";
                        return -EINVAL;
                }
                if (json_object_size(v) > MACHINE_ATTRIBUTES_MAX) {
                        *ret_error = "at most 32 attributes";
                        return -EINVAL;
                }
                json_object_foreach(v, key, value) {
                        if (!json_is_string(value)) {
                                *ret_error = "attributes must be an object of strings";
                                return -EINVAL;
                        }
                        s.keys[s.spec.n_attrs] = key;
                        s.values[s.spec.n_attrs] = json_string_value(value);
                        s.spec.n_attrs++;
                }
        }

        *ret = s;
        ret->spec.attr_keys = ret->keys;
        ret->spec.attr_values = ret->values;
        return 0;
}

static json_t *string_or_null(const char *s) {
        return s ? json_string(s) : json_null();
}

/* socket_uid, socket_gid and socket_mode ("0660"; null when unset). */
static void machine_socket_to_json(json_t *o, const Machine *m) {
        char mode[8];

        snprintf(mode, sizeof(mode), "%04o", m->socket_mode);
        json_object_set_new(o, "socket_uid", m->socket_uid_set ? json_integer(m->socket_uid) : json_null());
        json_object_set_new(o, "socket_gid", m->socket_gid_set ? json_integer(m->socket_gid) : json_null());
        json_object_set_new(o, "socket_mode", m->socket_mode ? json_string(mode) : json_null());
}

json_t *boot_exit_to_json(const Boot *b) {
        return json_pack(
                "{s:i, s:i, s:b, s:s?}",
                "code",
                b->exit.code,
                "signal",
                b->exit.signal,
                "oom_killed",
                b->exit.oom_killed,
                "reason",
                b->exit.reason);
}

json_t *machine_registration_to_json(const Machine *m) {
        json_t *o = json_object(), *attrs = json_object();
        char *cond = ready_condition_to_string(&m->ready_condition);

        if (!o || !attrs || !cond) {
                json_decref(o);
                json_decref(attrs);
                free(cond);
                return NULL;
        }
        for (size_t i = 0; i < m->n_attrs; i++)
                json_object_set_new(attrs, m->attrs[i].key, json_string(m->attrs[i].value));

        json_object_set_new(o, "version", json_integer(1));
        json_object_set_new(o, "machine_id", json_string(m->id));
        json_object_set_new(o, "cid", m->cid ? json_integer(m->cid) : json_null());
        json_object_set_new(o, "uds_path", string_or_null(m->uds_path));
        json_object_set_new(o, "traceparent", string_or_null(m->traceparent));
        json_object_set_new(o, "request_id", string_or_null(m->request_id));
        json_object_set_new(o, "service_name", string_or_null(m->service_name));
        json_object_set_new(o, "attributes", attrs);
        json_object_set_new(o, "ready_condition", json_string(cond));
        json_object_set_new(o, "registered_unix_ns", json_integer((json_int_t) m->registered_unix_ns));
        json_object_set_new(o, "source", json_string(machine_source_to_string(m->source)));
        json_object_set_new(o, "source_id", string_or_null(m->source_id));
        machine_socket_to_json(o, m);
        free(cond);
        return o;
}
