/* SPDX-License-Identifier: MIT */
/* Room otlp: OTLP export of traces, logs and events (encode, queue, spool, libcurl); a core observer. */
#include "otlp-env.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hexdecoct.h"
#include "macro.h"

void otlp_env_done(OtlpEnv *e) {
        for (size_t i = 0; i < e->n_headers; i++)
                free(e->headers[i]);
        free(e->headers);
        *e = (OtlpEnv) {};
}

static bool is_ows(char c) {
        return c == ' ' || c == '\t';
}

/* Trims [*b, *e) of optional whitespace. */
static void trim(const char **b, const char **e) {
        while (*b < *e && is_ows(**b))
                (*b)++;
        while (*e > *b && is_ows((*e)[-1]))
                (*e)--;
}

/* "key=value" (one entry) → "key=value" with the value percent-decoded. */
static int parse_entry(const char *b, const char *e, char **ret) {
        const char *eq = memchr(b, '=', (size_t) (e - b));
        if (!eq)
                return -EINVAL;
        const char *kb = b, *ke = eq, *vb = eq + 1, *ve = e;
        trim(&kb, &ke);
        trim(&vb, &ve);
        if (kb == ke)
                return -EINVAL;

        char *out = malloc((size_t) (ke - kb) + 1 + (size_t) (ve - vb) + 1), *o = out;
        if (!out)
                return -ENOMEM;
        memcpy(o, kb, (size_t) (ke - kb));
        o += ke - kb;
        *o++ = '=';
        for (const char *p = vb; p < ve; p++) {
                char c = *p;
                if (c == '%') {
                        if (ve - p < 3 || unhexchar(p[1]) < 0 || unhexchar(p[2]) < 0) {
                                free(out);
                                return -EINVAL;
                        }
                        c = (char) (unhexchar(p[1]) * 16 + unhexchar(p[2]));
                        p += 2;
                }
                if (c == '\r' || c == '\n' || c == '\0') {
                        free(out);
                        return -EINVAL;
                }
                *o++ = c;
        }
        *o = '\0';
        *ret = out;
        return 0;
}

int otlp_parse_headers_env(const char *s, char ***ret, size_t *ret_n) {
        char **list = NULL;
        size_t n = 0;
        int r = 0;

        for (const char *p = s; *p;) {
                const char *comma = strchr(p, ','), *end = comma ?: p + strlen(p);
                const char *b = p, *e = end;

                p = comma ? comma + 1 : end;
                trim(&b, &e);
                if (b == e)
                        continue; /* "a=1,,b=2" and a trailing comma */
                char **nl = realloc(list, (n + 1) * sizeof(char *));
                if (!nl) {
                        r = -ENOMEM;
                        break;
                }
                list = nl;
                r = parse_entry(b, e, &list[n]);
                if (r < 0)
                        break;
                n++;
        }
        if (r < 0) {
                for (size_t i = 0; i < n; i++)
                        free(list[i]);
                free(list);
                return r;
        }
        *ret = list;
        *ret_n = n;
        return 0;
}

static bool is_http_url(const char *s) {
        return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
}

int otlp_config_from_env(OtlpConfig *c, OtlpEnv *e, const char *(*get)(const char *name), const char **ret_bad) {
        static const char *const endpoints[] = {
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        };
        const char **targets[] = { &c->endpoint, &c->traces_endpoint, &c->logs_endpoint, &c->metrics_endpoint };
        const char *v;
        int r;

#define BAD(name, err)                   \
        do {                             \
                if (ret_bad)             \
                        *ret_bad = name; \
                return (err);            \
        } while (0)

        v = get("OTEL_EXPORTER_OTLP_PROTOCOL");
        if (v && *v && strcmp(v, "http/protobuf") != 0)
                BAD("OTEL_EXPORTER_OTLP_PROTOCOL", -EPROTONOSUPPORT);

        for (size_t i = 0; i < ELEMENTSOF(endpoints); i++) {
                v = get(endpoints[i]);
                if (!v || !*v)
                        continue;
                if (!is_http_url(v))
                        BAD(endpoints[i], -EINVAL);
                *targets[i] = v;
        }

        v = get("OTEL_EXPORTER_OTLP_COMPRESSION");
        if (v && *v) {
                if (strcmp(v, "gzip") == 0)
                        c->gzip = true;
                else if (strcmp(v, "none") == 0)
                        c->gzip = false;
                else
                        BAD("OTEL_EXPORTER_OTLP_COMPRESSION", -EINVAL);
        }

        v = get("OTEL_EXPORTER_OTLP_TIMEOUT");
        if (v && *v) {
                char *end;
                errno = 0;
                unsigned long long ms = strtoull(v, &end, 10);
                if (errno || *end || end == v || ms == 0 || ms > 3600000)
                        BAD("OTEL_EXPORTER_OTLP_TIMEOUT", -EINVAL);
                c->request_timeout_ns = (uint64_t) ms * NSEC_PER_MSEC;
        }

        v = get("OTEL_EXPORTER_OTLP_HEADERS");
        if (v && *v) {
                char **h;
                size_t n;
                r = otlp_parse_headers_env(v, &h, &n);
                if (r < 0)
                        BAD("OTEL_EXPORTER_OTLP_HEADERS", r);
                otlp_env_done(e);
                e->headers = h;
                e->n_headers = n;
                c->headers = (const char *const *) h;
                c->n_headers = n;
        }
#undef BAD
        return 0;
}
