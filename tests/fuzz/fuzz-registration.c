/* SPDX-License-Identifier: MIT */
/* What a local API client sends to register a machine (POST /v1/machines), and what tetherd reads back from a
 * state directory (machine.json, which a crafted state dir controls): JSON parsing, the spec's validation,
 * adding it to a registry, rendering it for the API and for machine.json. Must never crash or leak; what is
 * accepted renders and reads back to the same registration.
 *
 * Input: the JSON body. */

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "machine-json.h"
#include "registry.h"
#include "render.h"

/* A registration the registry took: it renders, and its machine.json reads back to the same one. */
static void check_accepted(const Machine *m, uint32_t vsock_port) {
        const char *err = NULL;
        MachineSpecJson again;

        json_t *api = render_machine(m, "fuzz");
        FUZZ_ASSERT(api);
        char *api_text = json_dumps(api, JSON_COMPACT);
        FUZZ_ASSERT(api_text);
        free(api_text);
        json_decref(api);

        json_t *saved = machine_registration_to_json(m);
        FUZZ_ASSERT(saved);
        FUZZ_ASSERT(machine_spec_from_json(saved, &again, &err) >= 0);
        FUZZ_ASSERT(machine_spec_validate(&again.spec, vsock_port, &err) >= 0);
        FUZZ_ASSERT(strcmp(again.spec.machine_id, m->id) == 0);
        FUZZ_ASSERT(again.spec.cid == m->cid);
        FUZZ_ASSERT(!again.spec.uds_path == !m->uds_path);
        FUZZ_ASSERT(again.spec.n_attrs == m->n_attrs);
        FUZZ_ASSERT(again.spec.socket_mode == m->socket_mode && again.spec.socket_uid_set == m->socket_uid_set);
        json_decref(saved); /* again's strings pointed into it */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        RegistryConfig rc = { .node_id = "fuzz",
                              .max_machines = 4,
                              .max_boots = 2,
                              .max_events = 16,
                              .vsock_port = 4817,
                              .boot_limits = BOOT_LIMITS_DEFAULT };
        Stats stats = {};
        Registry *reg = NULL;
        MachineSpecJson spec;
        const char *err = NULL;
        Machine *m = NULL;

        json_t *o = json_loadb((const char *) data, size, JSON_REJECT_DUPLICATES, NULL);
        if (!o)
                return 0;
        if (machine_spec_from_json(o, &spec, &err) < 0) {
                FUZZ_ASSERT(err);
                json_decref(o);
                return 0;
        }
        FUZZ_ASSERT(registry_new(&rc, &stats, &reg) >= 0);
        if (registry_add_machine(reg, &spec.spec, &m, &err) >= 0)
                check_accepted(m, rc.vsock_port);
        else
                FUZZ_ASSERT(err);
        registry_free(reg);
        json_decref(o);
        return 0;
}
