/* SPDX-License-Identifier: MIT */
/* A libvirt domain's XML as tetherd's libvirt watcher reads it (libvirt_domain_info_parse(): libxml2 on the
 * document, the UUID, name, vsock CID and the <tether:machine> metadata element), then what the watcher does
 * with it: the registration it builds (libvirt_domain_info_to_spec()), for the domain stopped and running, added
 * to a registry and updated, rendered for the API and machine.json. Whoever can define or edit a domain writes
 * this XML. Must never crash or leak; what is parsed is either an error with a reason or a domain whose every
 * field keeps the bounds libvirt-metadata.h gives; a domain without tether metadata always registers (its id is
 * its UUID); what registers renders and reads back to the same registration.
 *
 * Input: the domain XML. */

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "libvirt-metadata.h"
#include "machine-json.h"
#include "macro.h"
#include "registry.h"
#include "render.h"
#include "utf8.h"

#define VSOCK_PORT 4817u

/* A string the parser kept: NULL, or 1..max bytes of UTF-8 (no NUL inside: strlen is its length). */
static void check_string(const char *s, size_t max) {
        if (!s)
                return;
        size_t n = strlen(s);
        FUZZ_ASSERT(n >= 1 && n <= max);
        FUZZ_ASSERT(utf8_is_valid(s, n));
}

/* A CID the parser kept: 0 (none) or 3 .. UINT32_MAX-1. */
static bool cid_is_valid(uint32_t cid) {
        return cid == 0 || (cid >= 3 && cid != UINT32_MAX);
}

static void check_info(const LibvirtDomainInfo *i) {
        const LibvirtMetadata *m = &i->metadata;

        /* The UUID is canonical and lower case: the watcher finds machines by it (source_id). */
        FUZZ_ASSERT(strlen(i->uuid) == 36);
        for (size_t k = 0; k < 36; k++) {
                char c = i->uuid[k];
                if (k == 8 || k == 13 || k == 18 || k == 23)
                        FUZZ_ASSERT(c == '-');
                else
                        FUZZ_ASSERT((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
        }
        check_string(i->name, LIBVIRT_DOMAIN_NAME_MAX);
        FUZZ_ASSERT(cid_is_valid(i->vsock_cid));
        FUZZ_ASSERT(i->has_vsock || i->vsock_cid == 0);

        /* Invalid metadata is ignored as a whole: nothing of it is kept. */
        if (!m->present) {
                FUZZ_ASSERT(!m->machine_id && !m->request_id && !m->service_name && !m->ready_condition);
                FUZZ_ASSERT(!m->traceparent && !m->uds_path && m->cid == 0);
        } else
                FUZZ_ASSERT(!i->metadata_error);
        check_string(m->machine_id, MACHINE_ID_MAX);
        check_string(m->request_id, MACHINE_STRING_MAX);
        check_string(m->service_name, MACHINE_STRING_MAX);
        check_string(m->ready_condition, MACHINE_STRING_MAX);
        check_string(m->traceparent, 64);
        check_string(m->uds_path, MACHINE_STRING_MAX);
        FUZZ_ASSERT(cid_is_valid(m->cid));
        FUZZ_ASSERT(!(m->cid && m->uds_path));

        FUZZ_ASSERT(libvirt_domain_info_wanted(i) == (i->has_vsock || m->present));
}

/* The registration of the domain, as the watcher builds it. */
static void check_spec(const LibvirtDomainInfo *i, bool active, const MachineSpec *spec) {
        const LibvirtMetadata *m = &i->metadata;

        FUZZ_ASSERT(strcmp(spec->machine_id, m->machine_id ?: i->uuid) == 0);
        FUZZ_ASSERT(spec->source == MACHINE_SOURCE_LIBVIRT && strcmp(spec->source_id, i->uuid) == 0);
        FUZZ_ASSERT(spec->uds_path == m->uds_path);
        /* A stopped domain holds no CID; a uds-path excludes one. */
        if (!active || m->uds_path)
                FUZZ_ASSERT(spec->cid == 0);
        else
                FUZZ_ASSERT(spec->cid == (i->vsock_cid ?: m->cid));
        FUZZ_ASSERT(spec->n_attrs == (i->name ? 2u : 1u));
        FUZZ_ASSERT(strcmp(spec->attr_keys[spec->n_attrs - 1], "libvirt.domain.uuid") == 0);
        FUZZ_ASSERT(strcmp(spec->attr_values[spec->n_attrs - 1], i->uuid) == 0);
}

/* A machine the registry took: it is the spec's, renders, and its machine.json reads back to the same one. */
static void check_registered(const Machine *machine, const MachineSpec *spec) {
        const char *err = NULL;
        MachineSpecJson again;

        FUZZ_ASSERT(strcmp(machine->id, spec->machine_id) == 0 && machine->cid == spec->cid);
        FUZZ_ASSERT(machine->source == MACHINE_SOURCE_LIBVIRT && strcmp(machine->source_id, spec->source_id) == 0);

        json_t *api = render_machine(machine, "fuzz");
        FUZZ_ASSERT(api);
        char *api_text = json_dumps(api, JSON_COMPACT);
        FUZZ_ASSERT(api_text);
        free(api_text);
        json_decref(api);

        json_t *saved = machine_registration_to_json(machine);
        FUZZ_ASSERT(saved);
        FUZZ_ASSERT(machine_spec_from_json(saved, &again, &err) >= 0);
        FUZZ_ASSERT(machine_spec_validate(&again.spec, VSOCK_PORT, &err) >= 0);
        FUZZ_ASSERT(strcmp(again.spec.machine_id, machine->id) == 0);
        FUZZ_ASSERT(again.spec.cid == machine->cid);
        FUZZ_ASSERT(again.spec.source == MACHINE_SOURCE_LIBVIRT);
        FUZZ_ASSERT(again.spec.source_id && strcmp(again.spec.source_id, machine->source_id) == 0);
        FUZZ_ASSERT(!again.spec.uds_path == !machine->uds_path);
        FUZZ_ASSERT(again.spec.n_attrs == machine->n_attrs);
        json_decref(saved); /* again's strings pointed into it */
}

/* The watcher's course for a domain defined stopped, then started: registered without a CID, then updated with
 * the running domain's. */
static void check_registration(const LibvirtDomainInfo *i) {
        RegistryConfig rc = { .node_id = "fuzz",
                              .max_machines = 4,
                              .max_boots = 2,
                              .max_events = 16,
                              .vsock_port = VSOCK_PORT,
                              .boot_limits = BOOT_LIMITS_DEFAULT };
        const char *keys[2], *values[2], *err = NULL;
        Stats stats = {};
        Registry *reg = NULL;
        Machine *machine = NULL;
        MachineSpec stopped, running;
        int r;

        libvirt_domain_info_to_spec(i, false, keys, values, &stopped);
        check_spec(i, false, &stopped);

        FUZZ_ASSERT(registry_new(&rc, &stats, &reg) >= 0);
        r = registry_add_machine(reg, &stopped, &machine, &err);
        if (r < 0) {
                FUZZ_ASSERT(r == -EINVAL && err);
                /* Only tether metadata can make a domain unregistrable: the UUID is a valid machine id, and the
                 * name and UUID valid attribute values. */
                FUZZ_ASSERT(i->metadata.present);
                registry_free(reg);
                return;
        }
        check_registered(machine, &stopped);

        /* The same domain running: same id and uds-path, so an update, which cannot fail in a registry where no
         * other machine holds the CID. */
        const char *keys2[2], *values2[2];
        libvirt_domain_info_to_spec(i, true, keys2, values2, &running);
        check_spec(i, true, &running);
        FUZZ_ASSERT(registry_update_machine(reg, machine, &running, &err) >= 0);
        check_registered(machine, &running);
        registry_free(reg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        LibvirtDomainInfo info = {};
        const char *err = NULL;
        int r;

        /* A copy without a terminating NUL: the parser reads len bytes only. */
        char *xml = malloc(MAX(size, (size_t) 1));
        FUZZ_ASSERT(xml);
        memcpy(xml, data, size);
        r = libvirt_domain_info_parse(xml, size, &info, &err);
        free(xml);
        if (r < 0) {
                FUZZ_ASSERT(r == -EINVAL && err);
                /* Untouched: the watcher's cleanup frees it anyway. */
                FUZZ_ASSERT(!info.name && !info.metadata.present && !info.metadata.machine_id);
                libvirt_domain_info_done(&info);
                return 0;
        }
        FUZZ_ASSERT(r == 0);
        check_info(&info);
        /* Registered whether the watcher wants it or not: the registration it would build must hold either way. */
        check_registration(&info);
        libvirt_domain_info_done(&info);
        return 0;
}
