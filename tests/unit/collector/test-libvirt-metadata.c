/* SPDX-License-Identifier: MIT */
/* libvirt domain XML: UUID, name, vsock CID, tether metadata (good, missing, hostile, oversized), and the
 * registration derived from it. */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "collector-test.h"
#include "libvirt-metadata.h"
#include "macro.h"

#define UUID "4dea22b3-1d52-d8f3-2516-782e98ab3fa0"
#define NS "https://tether.dev/xmlns/libvirt/1"

static char *domain_xml(const char *devices, const char *metadata) {
        char *x;
        assert_true(
                asprintf(
                        &x,
                        "<domain type='kvm' id='3'>\n"
                        "  <name>web-1</name>\n"
                        "  <uuid>" UUID "</uuid>\n"
                        "  <metadata>%s</metadata>\n"
                        "  <memory unit='KiB'>1048576</memory>\n"
                        "  <devices>%s</devices>\n"
                        "</domain>\n",
                        metadata ?: "",
                        devices ?: "") > 0);
        return x;
}

static int parse(const char *xml, LibvirtDomainInfo *i) {
        const char *err = NULL;
        int r = libvirt_domain_info_parse(xml, strlen(xml), i, &err);
        if (r == -EINVAL)
                assert_non_null(err);
        return r;
}

static void test_vsock_cid(void **state) {
        char *x = domain_xml("<vsock model='virtio'><cid auto='no' address='42'/></vsock>", NULL);
        LibvirtDomainInfo i;
        const char *k[2], *v[2];
        MachineSpec spec;

        assert_int_equal(parse(x, &i), 0);
        assert_string_equal(i.uuid, UUID);
        assert_string_equal(i.name, "web-1");
        assert_true(i.has_vsock);
        assert_int_equal(i.vsock_cid, 42);
        assert_false(i.metadata.present);
        assert_null(i.metadata_error);
        assert_true(libvirt_domain_info_wanted(&i));

        /* Running: machine id = UUID, the CID; stopped: no CID. */
        libvirt_domain_info_to_spec(&i, true, k, v, &spec);
        assert_string_equal(spec.machine_id, UUID);
        assert_int_equal(spec.cid, 42);
        assert_null(spec.uds_path);
        assert_int_equal(spec.source, MACHINE_SOURCE_LIBVIRT);
        assert_string_equal(spec.source_id, UUID);
        assert_int_equal(spec.n_attrs, 2);
        assert_string_equal(spec.attr_keys[0], "libvirt.domain.name");
        assert_string_equal(spec.attr_values[0], "web-1");
        assert_string_equal(spec.attr_keys[1], "libvirt.domain.uuid");
        assert_int_equal(machine_spec_validate(&spec, 4817, NULL), 0);
        libvirt_domain_info_to_spec(&i, false, k, v, &spec);
        assert_int_equal(spec.cid, 0);
        assert_int_equal(machine_spec_validate(&spec, 4817, NULL), 0); /* a libvirt machine may hold no CID */

        libvirt_domain_info_done(&i);
        free(x);
}

static void test_vsock_auto_without_address(void **state) {
        char *x = domain_xml("<vsock model='virtio'><cid auto='yes'/></vsock>", NULL);
        LibvirtDomainInfo i;

        assert_int_equal(parse(x, &i), 0);
        assert_true(i.has_vsock);
        assert_int_equal(i.vsock_cid, 0);
        assert_true(libvirt_domain_info_wanted(&i));
        libvirt_domain_info_done(&i);
        free(x);
}

static void test_no_vsock_no_metadata(void **state) {
        char *x = domain_xml("<disk type='file'/>", "<other:thing xmlns:other='https://example.com/x' id='nope'/>");
        LibvirtDomainInfo i;

        assert_int_equal(parse(x, &i), 0);
        assert_false(i.has_vsock);
        assert_false(i.metadata.present);
        assert_false(libvirt_domain_info_wanted(&i));
        libvirt_domain_info_done(&i);
        free(x);
}

static void test_metadata_full(void **state) {
        char *x = domain_xml(
                "<vsock model='virtio'><cid auto='no' address='7'/></vsock>",
                "<tether:machine xmlns:tether='" NS
                "' id='vm-42' request-id='req-1' service='api' "
                "ready='source:sd_notify' traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'/>");
        LibvirtDomainInfo i;
        const char *k[2], *v[2];
        MachineSpec spec;

        assert_int_equal(parse(x, &i), 0);
        assert_true(i.metadata.present);
        assert_string_equal(i.metadata.machine_id, "vm-42");
        assert_string_equal(i.metadata.request_id, "req-1");
        assert_string_equal(i.metadata.service_name, "api");
        assert_string_equal(i.metadata.ready_condition, "source:sd_notify");
        assert_string_equal(i.metadata.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        libvirt_domain_info_to_spec(&i, true, k, v, &spec);
        assert_string_equal(spec.machine_id, "vm-42");
        assert_string_equal(spec.request_id, "req-1");
        assert_string_equal(spec.service_name, "api");
        assert_string_equal(spec.ready_condition, "source:sd_notify");
        assert_int_equal(spec.cid, 7);
        assert_int_equal(machine_spec_validate(&spec, 4817, NULL), 0);
        libvirt_domain_info_done(&i);
        free(x);
}

static void test_metadata_cid_and_uds_without_vsock(void **state) {
        /* QEMU command-line passthrough (vhost-user-vsock) has no <vsock>: the metadata says how. */
        char *a = domain_xml(NULL, "<t:machine xmlns:t='" NS "' cid='99'/>");
        char *b = domain_xml(NULL, "<tether:machine xmlns:tether='" NS "' uds-path='/run/tether-vsock/vm.sock'/>");
        char *c = domain_xml(
                "<vsock model='virtio'><cid auto='no' address='5'/></vsock>",
                "<tether:machine xmlns:tether='" NS "' cid='6'/>");
        LibvirtDomainInfo i;
        const char *k[2], *v[2];
        MachineSpec spec;

        /* Any prefix: the namespace decides. */
        assert_int_equal(parse(a, &i), 0);
        assert_false(i.has_vsock);
        assert_true(i.metadata.present);
        assert_int_equal(i.metadata.cid, 99);
        assert_true(libvirt_domain_info_wanted(&i));
        libvirt_domain_info_to_spec(&i, true, k, v, &spec);
        assert_int_equal(spec.cid, 99);
        libvirt_domain_info_done(&i);

        assert_int_equal(parse(b, &i), 0);
        libvirt_domain_info_to_spec(&i, true, k, v, &spec);
        assert_int_equal(spec.cid, 0);
        assert_string_equal(spec.uds_path, "/run/tether-vsock/vm.sock");
        /* A uds_path holds whether or not the domain runs. */
        libvirt_domain_info_to_spec(&i, false, k, v, &spec);
        assert_string_equal(spec.uds_path, "/run/tether-vsock/vm.sock");
        libvirt_domain_info_done(&i);

        /* The device's CID wins over the metadata's. */
        assert_int_equal(parse(c, &i), 0);
        libvirt_domain_info_to_spec(&i, true, k, v, &spec);
        assert_int_equal(spec.cid, 5);
        libvirt_domain_info_done(&i);
        free(a);
        free(b);
        free(c);
}

static void expect_bad_metadata(const char *metadata, const char *why) {
        char *x = domain_xml("<vsock model='virtio'><cid auto='no' address='42'/></vsock>", metadata);
        LibvirtDomainInfo i;

        assert_int_equal(parse(x, &i), 0);
        if (!i.metadata_error)
                fail_msg("metadata accepted: %s (%s)", metadata, why);
        /* Ignored as a whole: the vsock device still registers the domain, under its UUID. */
        assert_false(i.metadata.present);
        assert_null(i.metadata.machine_id);
        assert_null(i.metadata.request_id);
        assert_int_equal(i.vsock_cid, 42);
        libvirt_domain_info_done(&i);
        free(x);
}

static void test_metadata_hostile(void **state) {
        char big[4096], *m;

        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';

        expect_bad_metadata("<tether:machine xmlns:tether='" NS "' cid='2'/>", "reserved CID");
        expect_bad_metadata("<tether:machine xmlns:tether='" NS "' cid='4294967295'/>", "VMADDR_CID_ANY");
        expect_bad_metadata("<tether:machine xmlns:tether='" NS "' cid='99999999999'/>", "overflow");
        expect_bad_metadata("<tether:machine xmlns:tether='" NS "' cid='-5'/>", "negative");
        expect_bad_metadata("<tether:machine xmlns:tether='" NS "' cid='12abc'/>", "trailing junk");
        expect_bad_metadata("<tether:machine xmlns:tether='" NS "' cid=''/>", "empty CID");
        expect_bad_metadata("<tether:machine xmlns:tether='" NS "' id=''/>", "empty id");
        expect_bad_metadata(
                "<tether:machine xmlns:tether='" NS "' cid='5' uds-path='/run/x.sock'/>", "cid and uds-path");

        assert_true(asprintf(&m, "<tether:machine xmlns:tether='" NS "' request-id='%s'/>", big) > 0);
        expect_bad_metadata(m, "request-id over 1024 bytes");
        free(m);
        assert_true(asprintf(&m, "<tether:machine xmlns:tether='" NS "' id='%.200s'/>", big) > 0);
        expect_bad_metadata(m, "id over 128 bytes");
        free(m);
        assert_true(asprintf(&m, "<tether:machine xmlns:tether='" NS "' uds-path='/%s'/>", big) > 0);
        expect_bad_metadata(m, "uds-path over 1024 bytes");
        free(m);
        assert_true(asprintf(&m, "<tether:machine xmlns:tether='" NS "' traceparent='%.100s'/>", big) > 0);
        expect_bad_metadata(m, "traceparent over 64 bytes");
        free(m);
}

static void test_metadata_values_checked_by_validation(void **state) {
        /* Within bounds but semantically wrong: parsed, then refused by machine_spec_validate() (the watcher
         * logs it and does not register the domain). */
        char *x = domain_xml(
                "<vsock model='virtio'><cid auto='no' address='42'/></vsock>",
                "<tether:machine xmlns:tether='" NS "' id='../../etc' traceparent='nope' ready='sometimes'/>");
        LibvirtDomainInfo i;
        const char *k[2], *v[2], *err = NULL;
        MachineSpec spec;

        assert_int_equal(parse(x, &i), 0);
        assert_true(i.metadata.present);
        libvirt_domain_info_to_spec(&i, true, k, v, &spec);
        assert_int_equal(machine_spec_validate(&spec, 4817, &err), -EINVAL);
        assert_non_null(err);
        libvirt_domain_info_done(&i);
        free(x);
}

static void test_not_a_domain(void **state) {
        static const char *const bad[] = {
                "",
                "not xml at all",
                "<network><name>default</name></network>",
                "<domain><name>x</name></domain>",                            /* no uuid */
                "<domain><uuid>not-a-uuid</uuid></domain>",                   /* bad uuid */
                "<domain><uuid>" UUID "</uuid>",                              /* truncated */
                "<x:domain xmlns:x='urn:x'><uuid>" UUID "</uuid></x:domain>", /* namespaced root */
        };
        for (size_t n = 0; n < ELEMENTSOF(bad); n++) {
                LibvirtDomainInfo i;
                const char *err = NULL;
                assert_int_equal(libvirt_domain_info_parse(bad[n], strlen(bad[n]), &i, &err), -EINVAL);
                assert_non_null(err);
        }
}

static void test_entities_not_expanded(void **state) {
        /* A billion-laughs style document must neither expand nor fetch anything. */
        const char *x =
                "<?xml version='1.0'?>\n"
                "<!DOCTYPE domain [<!ENTITY a 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'>"
                "<!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'>"
                "<!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;'>"
                "<!ENTITY ext SYSTEM 'file:///etc/passwd'>]>\n"
                "<domain><uuid>" UUID
                "</uuid><name>&ext;</name>"
                "<metadata><tether:machine xmlns:tether='" NS "' request-id='&c;'/></metadata></domain>";
        LibvirtDomainInfo i;
        const char *err = NULL;
        int r = libvirt_domain_info_parse(x, strlen(x), &i, &err);

        if (r == 0) {
                /* Whatever was kept is bounded and has nothing from /etc/passwd. */
                assert_true(!i.name || !strstr(i.name, "root"));
                assert_true(!i.metadata.request_id || strlen(i.metadata.request_id) <= MACHINE_STRING_MAX);
                libvirt_domain_info_done(&i);
        } else
                assert_int_equal(r, -EINVAL);
}

static void test_oversized_document(void **state) {
        size_t n = LIBVIRT_DOMAIN_XML_MAX + 1;
        char *x = malloc(n + 1);
        LibvirtDomainInfo i;
        const char *err = NULL;

        assert_non_null(x);
        memset(x, ' ', n);
        memcpy(x, "<domain>", 8);
        x[n] = '\0';
        assert_int_equal(libvirt_domain_info_parse(x, n, &i, &err), -EINVAL);
        assert_non_null(err);
        free(x);
}

static void test_uuid_uppercase_normalised(void **state) {
        const char *x =
                "<domain><uuid>4DEA22B3-1D52-D8F3-2516-782E98AB3FA0</uuid>"
                "<devices><vsock><cid address='3'/></vsock></devices></domain>";
        LibvirtDomainInfo i;

        assert_int_equal(parse(x, &i), 0);
        assert_string_equal(i.uuid, UUID);
        assert_null(i.name);
        assert_int_equal(i.vsock_cid, 3);
        libvirt_domain_info_done(&i);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_vsock_cid),
                cmocka_unit_test(test_vsock_auto_without_address),
                cmocka_unit_test(test_no_vsock_no_metadata),
                cmocka_unit_test(test_metadata_full),
                cmocka_unit_test(test_metadata_cid_and_uds_without_vsock),
                cmocka_unit_test(test_metadata_hostile),
                cmocka_unit_test(test_metadata_values_checked_by_validation),
                cmocka_unit_test(test_not_a_domain),
                cmocka_unit_test(test_entities_not_expanded),
                cmocka_unit_test(test_oversized_document),
                cmocka_unit_test(test_uuid_uppercase_normalised),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
