/* SPDX-License-Identifier: MIT */
/* Room libvirt: the libvirt watcher; registers and retires machines through core's manager. */
#include "libvirt-metadata.h"

#include <errno.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "utf8.h"

static void xml_doc_freep(xmlDocPtr *d) {
        if (*d)
                xmlFreeDoc(*d);
}

static void xml_ctxt_freep(xmlParserCtxtPtr *c) {
        if (*c)
                xmlFreeParserCtxt(*c);
}

static void xml_char_freep(xmlChar **p) {
        if (*p)
                xmlFree(*p);
}
#define _cleanup_xml_ _cleanup_(xml_char_freep)

static bool name_is(const xmlNode *n, const char *name) {
        return n->type == XML_ELEMENT_NODE && strcmp((const char *) n->name, name) == 0;
}

static const xmlNode *child(const xmlNode *parent, const char *name) {
        for (const xmlNode *n = parent ? parent->children : NULL; n; n = n->next)
                if (name_is(n, name) && !n->ns)
                        return n;
        return NULL;
}

/* Parses a decimal CID, 3 .. UINT32_MAX-1 (0-2 are reserved, UINT32_MAX is VMADDR_CID_ANY). */
static int parse_cid(const char *s, uint32_t *ret) {
        uint64_t v = 0;

        if (!s || !*s || strlen(s) > 10)
                return -EINVAL;
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                v = v * 10 + (uint64_t) (*p - '0');
        }
        if (v < 3 || v >= UINT32_MAX)
                return -EINVAL;
        *ret = (uint32_t) v;
        return 0;
}

/* A bounded copy of an attribute: -ENOENT when absent, -EINVAL when empty, too long or not UTF-8. */
static int get_prop(const xmlNode *n, const char *name, size_t max, char **ret) {
        _cleanup_xml_ xmlChar *v = xmlGetNoNsProp(n, (const xmlChar *) name);
        size_t len;

        if (!v)
                return -ENOENT;
        len = strnlen((const char *) v, max + 1);
        if (len == 0 || len > max || !utf8_is_valid((const char *) v, len))
                return -EINVAL;
        char *copy = strndup((const char *) v, len);
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}

static void metadata_done(LibvirtMetadata *m) {
        free(m->machine_id);
        free(m->request_id);
        free(m->service_name);
        free(m->ready_condition);
        free(m->traceparent);
        free(m->uds_path);
        *m = (LibvirtMetadata) {};
}

static int parse_metadata(const xmlNode *e, LibvirtMetadata *ret, const char **ret_error) {
        static const struct {
                const char *attr;
                size_t max;
                size_t offset;
                const char *error;
        } fields[] = {
                { "id", MACHINE_ID_MAX, offsetof(LibvirtMetadata, machine_id), "id: empty, too long or not UTF-8" },
                { "request-id",
                  MACHINE_STRING_MAX,
                  offsetof(LibvirtMetadata, request_id),
                  "request-id: empty, longer than 1024 bytes or not UTF-8" },
                { "service",
                  MACHINE_STRING_MAX,
                  offsetof(LibvirtMetadata, service_name),
                  "service: empty, longer than 1024 bytes or not UTF-8" },
                { "ready",
                  MACHINE_STRING_MAX,
                  offsetof(LibvirtMetadata, ready_condition),
                  "ready: empty, longer than 1024 bytes or not UTF-8" },
                { "traceparent", 64, offsetof(LibvirtMetadata, traceparent), "traceparent: empty or too long" },
                { "uds-path",
                  MACHINE_STRING_MAX,
                  offsetof(LibvirtMetadata, uds_path),
                  "uds-path: empty, longer than 1024 bytes or not UTF-8" },
        };
        LibvirtMetadata m = { .present = true };
        int r;

        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                r = get_prop(e, fields[i].attr, fields[i].max, (char **) ((uint8_t *) &m + fields[i].offset));
                if (r == -ENOENT)
                        continue;
                if (r < 0) {
                        metadata_done(&m);
                        if (r == -EINVAL)
                                *ret_error = fields[i].error;
                        return r;
                }
        }

        _cleanup_xml_ xmlChar *cid = xmlGetNoNsProp(e, (const xmlChar *) "cid");
        if (cid && parse_cid((const char *) cid, &m.cid) < 0) {
                metadata_done(&m);
                *ret_error = "cid: not a number between 3 and 4294967294";
                return -EINVAL;
        }
        if (m.cid && m.uds_path) {
                metadata_done(&m);
                *ret_error = "cid and uds-path are exclusive";
                return -EINVAL;
        }
        *ret = m;
        return 0;
}

static const xmlNode *find_metadata_element(const xmlNode *domain) {
        const xmlNode *metadata = child(domain, "metadata");

        for (const xmlNode *n = metadata ? metadata->children : NULL; n; n = n->next)
                if (name_is(n, TETHER_LIBVIRT_ELEMENT) && n->ns && n->ns->href &&
                    strcmp((const char *) n->ns->href, TETHER_LIBVIRT_NS) == 0)
                        return n;
        return NULL;
}

static int parse_uuid(const xmlNode *domain, char ret[37]) {
        const xmlNode *u = child(domain, "uuid");
        _cleanup_xml_ xmlChar *text = u ? xmlNodeGetContent(u) : NULL;
        const char *t = (const char *) text;

        /* Canonical form only (libvirt writes it so): 8-4-4-4-12 hex digits. */
        if (!t || strlen(t) != 36)
                return -EINVAL;
        for (size_t i = 0; i < 36; i++) {
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;
                char c = t[i];
                if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
                        return -EINVAL;
        }
        for (size_t i = 0; i < 36; i++)
                ret[i] = (char) (t[i] >= 'A' && t[i] <= 'F' ? t[i] - 'A' + 'a' : t[i]);
        ret[36] = '\0';
        return 0;
}

static int parse_name(const xmlNode *domain, char **ret) {
        const xmlNode *n = child(domain, "name");
        _cleanup_xml_ xmlChar *text = n ? xmlNodeGetContent(n) : NULL;
        size_t len;

        *ret = NULL;
        if (!text)
                return 0;
        len = strnlen((const char *) text, LIBVIRT_DOMAIN_NAME_MAX + 1);
        if (len == 0 || len > LIBVIRT_DOMAIN_NAME_MAX || !utf8_is_valid((const char *) text, len))
                return 0; /* only informative: left out */
        *ret = strndup((const char *) text, len);
        return *ret ? 0 : -ENOMEM;
}

static void parse_vsock(const xmlNode *domain, LibvirtDomainInfo *i) {
        const xmlNode *vsock = child(child(domain, "devices"), "vsock");
        const xmlNode *cid = child(vsock, "cid");

        i->has_vsock = vsock != NULL;
        if (!cid)
                return;
        _cleanup_xml_ xmlChar *address = xmlGetNoNsProp(cid, (const xmlChar *) "address");
        if (address && parse_cid((const char *) address, &i->vsock_cid) < 0)
                i->vsock_cid = 0;
}

int libvirt_domain_info_parse(const char *xml, size_t len, LibvirtDomainInfo *ret, const char **ret_error) {
        _cleanup_(xml_ctxt_freep) xmlParserCtxtPtr ctxt = NULL;
        _cleanup_(xml_doc_freep) xmlDocPtr doc = NULL;
        LibvirtDomainInfo i = {};
        const xmlNode *root, *meta;
        int r;

        if (!xml || len == 0 || len > LIBVIRT_DOMAIN_XML_MAX || len > INT32_MAX) {
                *ret_error = "domain XML empty or too large";
                return -EINVAL;
        }
        ctxt = xmlNewParserCtxt();
        if (!ctxt)
                return -ENOMEM;
        /* No network, no DTD, no entity substitution, no error output (library code never logs). */
        doc = xmlCtxtReadMemory(
                ctxt,
                xml,
                (int) len,
                "domain.xml",
                "UTF-8",
                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA);
        root = doc ? xmlDocGetRootElement(doc) : NULL;
        if (!root || !name_is(root, "domain") || root->ns) {
                *ret_error = "not a libvirt domain XML document";
                return -EINVAL;
        }
        if (parse_uuid(root, i.uuid) < 0) {
                *ret_error = "domain XML without a valid <uuid>";
                return -EINVAL;
        }
        r = parse_name(root, &i.name);
        if (r < 0)
                return r;
        parse_vsock(root, &i);

        meta = find_metadata_element(root);
        if (meta) {
                r = parse_metadata(meta, &i.metadata, &i.metadata_error);
                if (r == -ENOMEM) {
                        libvirt_domain_info_done(&i);
                        return r;
                }
        }
        *ret = i;
        return 0;
}

void libvirt_domain_info_done(LibvirtDomainInfo *i) {
        if (!i)
                return;
        free(i->name);
        metadata_done(&i->metadata);
        *i = (LibvirtDomainInfo) {};
}

bool libvirt_domain_info_wanted(const LibvirtDomainInfo *i) {
        return i->has_vsock || i->metadata.present;
}

void libvirt_domain_info_to_spec(
        const LibvirtDomainInfo *i,
        bool active,
        const char *attr_keys[2],
        const char *attr_values[2],
        MachineSpec *ret) {
        const LibvirtMetadata *m = &i->metadata;
        size_t n = 0;

        *ret = (MachineSpec) {
                .machine_id = m->machine_id ?: i->uuid,
                .traceparent = m->traceparent,
                .request_id = m->request_id,
                .service_name = m->service_name,
                .ready_condition = m->ready_condition,
                .source = MACHINE_SOURCE_LIBVIRT,
                .source_id = i->uuid,
                .attr_keys = attr_keys,
                .attr_values = attr_values,
        };
        if (m->uds_path)
                ret->uds_path = m->uds_path;
        else if (active)
                ret->cid = i->vsock_cid ?: m->cid;

        if (i->name) {
                attr_keys[n] = "libvirt.domain.name";
                attr_values[n++] = i->name;
        }
        attr_keys[n] = "libvirt.domain.uuid";
        attr_values[n++] = i->uuid;
        ret->n_attrs = n;
}
