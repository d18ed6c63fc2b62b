/* SPDX-License-Identifier: MIT */
/* Room api: the HTTP API, long-polls, streams and /metrics on libmicrohttpd; sees the model through core. */
/* The API's answers, and the query parameters it reads. */
#include "api-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* ---- responses ---- */

enum MHD_Result api_respond_raw(
        struct MHD_Connection *conn, unsigned status, char *body, size_t len, const char *content_type) {
        struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
                free(body);
                return MHD_NO;
        }
        if (content_type)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
        enum MHD_Result ret = MHD_queue_response(conn, status, resp);
        MHD_destroy_response(resp);
        return ret;
}

/* Consumes o. */
enum MHD_Result api_respond_json(struct MHD_Connection *conn, unsigned status, json_t *o) {
        if (!o)
                return api_respond_raw(
                        conn,
                        MHD_HTTP_INTERNAL_SERVER_ERROR,
                        strdup("{\"error\":\"out of memory\"}\n"),
                        25,
                        "application/json");
        char *text = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (!text)
                return MHD_NO;
        size_t n = strlen(text);
        char *body = realloc(text, n + 2);
        if (!body) {
                free(text);
                return MHD_NO;
        }
        body[n] = '\n';
        body[n + 1] = '\0';
        return api_respond_raw(conn, status, body, n + 1, "application/json");
}

enum MHD_Result api_respond_error(struct MHD_Connection *conn, unsigned status, const char *fmt, ...) {
        _cleanup_free_ char *text = NULL, *clean = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&text, fmt, ap) < 0)
                text = NULL;
        va_end(ap);
        /* Messages quote what the client sent (a boot, a stream name): a JSON string must be valid UTF-8, or the
         * answer would be 500 "out of memory" instead of this one. */
        if (text && !(clean = utf8_sanitize(text, strlen(text), NULL)))
                return api_respond_json(conn, status, NULL);
        return api_respond_json(conn, status, json_pack("{s:s}", "error", clean ?: "error"));
}

const char *api_query(struct MHD_Connection *conn, const char *key) {
        return MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, key);
}

bool api_query_bool(struct MHD_Connection *conn, const char *key) {
        const char *v = api_query(conn, key);
        return v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0 || *v == '\0');
}

int api_parse_u64(const char *s, uint64_t *ret) {
        char *end;
        if (!s || !*s || *s == '-')
                return -EINVAL;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno != 0 || *end != '\0')
                return -EINVAL;
        *ret = v;
        return 0;
}

Boot *api_find_boot_param(Machine *m, const char *boot) {
        uint64_t index;

        if (!boot || strcmp(boot, "current") == 0)
                return m->current;
        Boot *b = machine_find_boot(m, boot);
        if (!b && api_parse_u64(boot, &index) >= 0)
                b = machine_find_boot_by_index(m, index);
        return b;
}
