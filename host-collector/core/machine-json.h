/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#pragma once

/* The registration as JSON: parsed from POST /v1/machines bodies and from machine.json in the state directory,
 * written to machine.json. Pure. */

#include <jansson.h>

#include "machine.h"

typedef struct MachineSpecJson {
        MachineSpec spec; /* strings point into the parsed json_t, which must outlive it */
        const char *keys[MACHINE_ATTRIBUTES_MAX];
        const char *values[MACHINE_ATTRIBUTES_MAX];
} MachineSpecJson;

/* Reads machine_id, cid, uds_path, traceparent, request_id, service_name, attributes, ready_condition and
 * (state directory only) registered_unix_ns, source and source_id. Unknown keys are ignored. Returns 0, or -EINVAL with
 * a static reason in *ret_error (wrong types, too many attributes). Semantic checks are machine_spec_validate()'s. */
int machine_spec_from_json(json_t *o, MachineSpecJson *ret, const char **ret_error);

/* How a boot ended: {"code", "signal", "oom_killed", "reason" (null when none)}, as the exited/crashed events and
 * the API's boot show it. NULL on allocation failure. */
json_t *boot_exit_to_json(const Boot *b);

/* The registration (what machine.json holds: version 1, also the API's view of it, render.c). Returns NULL on
 * allocation failure. */
json_t *machine_registration_to_json(const Machine *m);
