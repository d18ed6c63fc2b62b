/* SPDX-License-Identifier: MIT */
/* Room libvirt: the libvirt watcher; registers and retires machines through core's manager. */
#pragma once

/* What tetherd reads from a libvirt domain's XML (virDomainGetXMLDesc): its UUID and name, the vsock device's
 * CID (<devices><vsock><cid address='N'/></vsock>) and tether's metadata element (docs/libvirt.md):
 *
 *   <metadata>
 *     <tether:machine xmlns:tether="https://tether.dev/xmlns/libvirt/1" id="vm-42" request-id="req-1"
 *                     service="api" ready="source:sd_notify" traceparent="00-...-01" cid="42"
 *                     uds-path="/run/vm-42/vsock.sock"/>
 *   </metadata>
 *
 * Pure (libxml2 on a string, no I/O, no logging). The XML comes from whoever can define or edit the domain:
 * its size and every string taken from it are bounded, entities are not expanded, nothing is fetched. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "machine.h"

#define TETHER_LIBVIRT_NS "https://tether.dev/xmlns/libvirt/1"
#define TETHER_LIBVIRT_NS_PREFIX "tether"
#define TETHER_LIBVIRT_ELEMENT "machine"

/* Bigger domain XML is refused. */
#define LIBVIRT_DOMAIN_XML_MAX (UINT64_C(4) << 20)
/* A domain name longer than this is cut (it is only an attribute). */
#define LIBVIRT_DOMAIN_NAME_MAX 256u

typedef struct LibvirtMetadata {
        bool present; /* a <tether:machine> element was found and is valid */
        char *machine_id;
        char *request_id;
        char *service_name;
        char *ready_condition;
        char *traceparent;
        uint32_t cid; /* 0: not given */
        char *uds_path;
} LibvirtMetadata;

typedef struct LibvirtDomainInfo {
        char uuid[37]; /* "" if the XML has none */
        char *name;    /* may be NULL */
        bool has_vsock;
        uint32_t vsock_cid; /* 0: no <vsock>, or no address yet (auto='yes' on a domain that is not running) */
        LibvirtMetadata metadata;
        /* The metadata element was there but invalid (ignored as a whole): a static reason, else NULL. */
        const char *metadata_error;
} LibvirtDomainInfo;

/* Parses a domain's XML. Returns 0; -EINVAL with a static reason in *ret_error when the XML is not a domain
 * (unparsable, too big, not <domain>, no valid <uuid>); -ENOMEM. A bad metadata element does not fail the
 * parse: it is ignored and metadata_error says why. */
int libvirt_domain_info_parse(const char *xml, size_t len, LibvirtDomainInfo *ret, const char **ret_error);
void libvirt_domain_info_done(LibvirtDomainInfo *i);

/* Whether tetherd registers this domain: it has a vsock device, or tether metadata. */
bool libvirt_domain_info_wanted(const LibvirtDomainInfo *i);

/* The registration of a domain (source libvirt, source_id the UUID): machine id = the metadata's id, else the
 * UUID; CID = the vsock device's, else the metadata's, and only while the domain is active (CIDs are host-global
 * among running VMs: a stopped domain holds none); uds_path from the metadata (then no CID). The attributes
 * libvirt.domain.name and libvirt.domain.uuid go to attr_keys/attr_values (2 entries of the caller's arrays).
 * Strings are borrowed from i. */
void libvirt_domain_info_to_spec(
        const LibvirtDomainInfo *i,
        bool active,
        const char *attr_keys[2],
        const char *attr_values[2],
        MachineSpec *ret);
