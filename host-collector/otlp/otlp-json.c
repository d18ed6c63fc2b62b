/* SPDX-License-Identifier: MIT */
/* Room otlp: OTLP export of traces, logs and events (encode, queue, spool, libcurl); a core observer. */
#include "otlp-json.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#        include <emmintrin.h>
#endif

#include "config.h"
#include "macro.h"
#include "otlp_logs_service.pb-c.h"
#include "otlp_metrics_service.pb-c.h"
#include "otlp_resource.pb-c.h"
#include "otlp_trace_service.pb-c.h"
#include "tether.pb-c.h"
#include "traceparent.h"
#include "utf8.h"

/* Why not jansson here: building a json_t tree per record and dumping it cost ~80% of tetherd's CPU under a
 * log flood (bench/log-throughput: 1.0 M lines/s ingested without export, 49 k with it). This walks the decoded
 * message once and appends to one buffer. jansson still parses what it writes in the unit tests. */

typedef struct JsonBuf {
        char *data;
        size_t len, cap;
        bool oom;
} JsonBuf;

static bool buf_reserve(JsonBuf *b, size_t n) {
        if (b->oom)
                return false;
        if (b->len + n + 1 <= b->cap)
                return true;
        size_t cap = MAX(b->cap * 2, b->len + n + 1);
        cap = MAX(cap, (size_t) 4096);
        char *d = realloc(b->data, cap);
        if (!d) {
                b->oom = true;
                return false;
        }
        b->data = d;
        b->cap = cap;
        return true;
}

static void buf_put(JsonBuf *b, const void *p, size_t n) {
        if (!buf_reserve(b, n))
                return;
        memcpy(b->data + b->len, p, n);
        b->len += n;
}

static void buf_putc(JsonBuf *b, char c) {
        if (!buf_reserve(b, 1))
                return;
        b->data[b->len++] = c;
}

static char *put_str(char *o, const char *s) {
        size_t n = strlen(s);
        memcpy(o, s, n);
        return o + n;
}

static char *put_u64(char *o, uint64_t v) {
        char tmp[20];
        size_t n = 0;

        do {
                tmp[sizeof(tmp) - ++n] = (char) ('0' + v % 10);
                v /= 10;
        } while (v);
        memcpy(o, tmp + sizeof(tmp) - n, n);
        return o + n;
}

static void buf_put_u64(JsonBuf *b, uint64_t v) {
        if (!buf_reserve(b, 20))
                return;
        b->len = (size_t) (put_u64(b->data + b->len, v) - b->data);
}

static void buf_put_i64(JsonBuf *b, int64_t v) {
        if (v < 0) {
                buf_putc(b, '-');
                buf_put_u64(b, (uint64_t) 0 - (uint64_t) v);
        } else
                buf_put_u64(b, (uint64_t) v);
}

static void buf_put_double(JsonBuf *b, double v) {
        char tmp[32];

        /* JSON has no NaN or infinities; the protobuf JSON mapping spells them as strings. */
        if (v != v)
                buf_put(b, "\"NaN\"", 5);
        else if (v > 1.7976931348623157e308)
                buf_put(b, "\"Infinity\"", 10);
        else if (v < -1.7976931348623157e308)
                buf_put(b, "\"-Infinity\"", 11);
        else {
                int n = snprintf(tmp, sizeof(tmp), "%.17g", v);
                buf_put(b, tmp, (size_t) n);
        }
}

/* A string decoded from a request as a JSON string: protobuf-c does not validate UTF-8, so the escape sanitizes
 * it as it goes. */
static void buf_put_string(JsonBuf *b, const char *s) {
        size_t n = strlen(s);

        if (!buf_reserve(b, OTLP_JSON_ESCAPED_MAX(n) + 2))
                return;
        b->data[b->len++] = '"';
        b->len += otlp_json_escape_into(s, n, b->data + b->len);
        b->data[b->len++] = '"';
}

static void buf_put_bytes(JsonBuf *b, const ProtobufCBinaryData *d, bool hex) {
        static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

        if (!buf_reserve(b, d->len * 2 + 6))
                return;
        char *o = b->data + b->len;
        *o++ = '"';
        if (hex) {
                hex_encode(d->data, d->len, o); /* its NUL is overwritten by the closing quote */
                o += d->len * 2;
        } else
                for (size_t i = 0; i < d->len; i += 3) {
                        uint32_t v = (uint32_t) d->data[i] << 16;
                        if (i + 1 < d->len)
                                v |= (uint32_t) d->data[i + 1] << 8;
                        if (i + 2 < d->len)
                                v |= d->data[i + 2];
                        *o++ = b64[(v >> 18) & 63];
                        *o++ = b64[(v >> 12) & 63];
                        *o++ = i + 1 < d->len ? b64[(v >> 6) & 63] : '=';
                        *o++ = i + 2 < d->len ? b64[v & 63] : '=';
                }
        *o++ = '"';
        b->len = (size_t) (o - b->data);
}

/* Fields OTLP/JSON encodes as hex rather than base64. */
static bool is_hex_id_field(const char *name) {
        return strcmp(name, "trace_id") == 0 || strcmp(name, "span_id") == 0 || strcmp(name, "parent_span_id") == 0;
}

/* "parent_span_id" → "parentSpanId":, with the separating comma when it is not the first member. */
static void buf_put_key(JsonBuf *b, const char *name, bool *first) {
        if (!*first)
                buf_putc(b, ',');
        *first = false;
        buf_putc(b, '"');
        for (bool up = false; *name; name++) {
                if (*name == '_') {
                        up = true;
                        continue;
                }
                buf_putc(b, up && *name >= 'a' && *name <= 'z' ? (char) (*name - 'a' + 'A') : *name);
                up = false;
        }
        buf_put(b, "\":", 2);
}

static void message_to_json(JsonBuf *b, const ProtobufCMessage *m, unsigned depth);

/* Whether a singular field holds its default value: the JSON mapping leaves those out. */
static bool is_default(const ProtobufCFieldDescriptor *f, const void *p) {
        switch (f->type) {
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32:
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32:
                return *(const uint32_t *) p == 0;
        case PROTOBUF_C_TYPE_ENUM:
                return *(const int *) p == 0;
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
                return *(const uint64_t *) p == 0;
        case PROTOBUF_C_TYPE_FLOAT:
                return *(const float *) p == 0;
        case PROTOBUF_C_TYPE_DOUBLE:
                return *(const double *) p == 0;
        case PROTOBUF_C_TYPE_BOOL:
                return !*(const protobuf_c_boolean *) p;
        case PROTOBUF_C_TYPE_STRING: {
                const char *s = *(char *const *) p;
                return !s || !*s;
        }
        case PROTOBUF_C_TYPE_BYTES:
                return ((const ProtobufCBinaryData *) p)->len == 0;
        case PROTOBUF_C_TYPE_MESSAGE:
                return !*(const ProtobufCMessage *const *) p;
        }
        return true;
}

static void value_to_json(JsonBuf *b, const ProtobufCFieldDescriptor *f, const void *p, unsigned depth) {
        switch (f->type) {
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32:
                buf_put_i64(b, *(const int32_t *) p);
                break;
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32:
                buf_put_u64(b, *(const uint32_t *) p);
                break;
        case PROTOBUF_C_TYPE_ENUM:
                buf_put_i64(b, *(const int *) p);
                break;
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
                /* 64-bit integers are strings in the protobuf JSON mapping */
                buf_putc(b, '"');
                buf_put_i64(b, *(const int64_t *) p);
                buf_putc(b, '"');
                break;
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
                buf_putc(b, '"');
                buf_put_u64(b, *(const uint64_t *) p);
                buf_putc(b, '"');
                break;
        case PROTOBUF_C_TYPE_FLOAT:
                buf_put_double(b, *(const float *) p);
                break;
        case PROTOBUF_C_TYPE_DOUBLE:
                buf_put_double(b, *(const double *) p);
                break;
        case PROTOBUF_C_TYPE_BOOL:
                if (*(const protobuf_c_boolean *) p)
                        buf_put(b, "true", 4);
                else
                        buf_put(b, "false", 5);
                break;
        case PROTOBUF_C_TYPE_STRING: {
                const char *s = *(char *const *) p;
                buf_put_string(b, s ?: "");
                break;
        }
        case PROTOBUF_C_TYPE_BYTES:
                buf_put_bytes(b, p, is_hex_id_field(f->name));
                break;
        case PROTOBUF_C_TYPE_MESSAGE: {
                const ProtobufCMessage *m = *(const ProtobufCMessage *const *) p;
                if (m)
                        message_to_json(b, m, depth + 1);
                else
                        buf_put(b, "{}", 2);
                break;
        }
        }
}

static size_t field_elt_size(ProtobufCType t) {
        switch (t) {
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32:
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32:
        case PROTOBUF_C_TYPE_ENUM:
        case PROTOBUF_C_TYPE_FLOAT:
                return 4;
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
        case PROTOBUF_C_TYPE_DOUBLE:
                return 8;
        case PROTOBUF_C_TYPE_BOOL:
                return sizeof(protobuf_c_boolean);
        case PROTOBUF_C_TYPE_STRING:
        case PROTOBUF_C_TYPE_MESSAGE:
                return sizeof(void *);
        case PROTOBUF_C_TYPE_BYTES:
                return sizeof(ProtobufCBinaryData);
        }
        return 0;
}

/* AnyValue and KeyValueList nest without bound in the schema; what we decode came from our own encoder, but a
 * spooled or corrupted body must not recurse the stack away. */
#define JSON_MAX_DEPTH 64u

static void message_to_json(JsonBuf *b, const ProtobufCMessage *m, unsigned depth) {
        const ProtobufCMessageDescriptor *d = m->descriptor;
        const uint8_t *base = (const uint8_t *) m;
        bool first = true;

        if (depth > JSON_MAX_DEPTH) {
                b->oom = true; /* reported as -ENOMEM by the caller: too deep to write */
                return;
        }
        buf_putc(b, '{');
        for (unsigned i = 0; i < d->n_fields && !b->oom; i++) {
                const ProtobufCFieldDescriptor *f = &d->fields[i];

                if (f->label == PROTOBUF_C_LABEL_REPEATED) {
                        size_t n = *(const size_t *) (base + f->quantifier_offset);
                        const uint8_t *arr = *(const uint8_t *const *) (base + f->offset);
                        if (n == 0)
                                continue;
                        buf_put_key(b, f->name, &first);
                        buf_putc(b, '[');
                        for (size_t j = 0; j < n; j++) {
                                if (j > 0)
                                        buf_putc(b, ',');
                                value_to_json(b, f, arr + j * field_elt_size(f->type), depth);
                        }
                        buf_putc(b, ']');
                } else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
                        if (*(const uint32_t *) (base + f->quantifier_offset) != f->id)
                                continue;
                        buf_put_key(b, f->name, &first);
                        value_to_json(b, f, base + f->offset, depth);
                } else {
                        if (is_default(f, base + f->offset))
                                continue;
                        buf_put_key(b, f->name, &first);
                        value_to_json(b, f, base + f->offset, depth);
                }
        }
        buf_putc(b, '}');
}

int otlp_message_to_json(const ProtobufCMessage *m, char **ret) {
        JsonBuf b = {};

        message_to_json(&b, m, 0);
        if (b.oom || !buf_reserve(&b, 0)) {
                free(b.data);
                return -ENOMEM;
        }
        b.data[b.len] = '\0';
        /* Kept per boot (its resource): give back the buffer's slack, most of its 4 KiB minimum. */
        char *fit = realloc(b.data, b.len + 1);
        *ret = fit ?: b.data;
        return 0;
}

/* Protobuf bytes of message type d as OTLP/JSON (a new string). */
static int protobuf_to_json(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len, char **ret) {
        ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, data);
        if (!m)
                return -EBADMSG;
        int r = otlp_message_to_json(m, ret);
        protobuf_c_message_free_unpacked(m, NULL);
        return r;
}

int otlp_request_to_json(ExportSignal signal, const uint8_t *body, size_t len, char **ret) {
        if (signal == EXPORT_SIGNAL_TRACES)
                return protobuf_to_json(
                        &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor,
                        body,
                        len,
                        ret);
        if (signal == EXPORT_SIGNAL_LOGS)
                return protobuf_to_json(
                        &opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor,
                        body,
                        len,
                        ret);
        if (signal == EXPORT_SIGNAL_METRICS)
                return protobuf_to_json(
                        &opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__descriptor,
                        body,
                        len,
                        ret);
        return -EINVAL;
}

/* ---- written directly: workload log lines, items, resources ---- */

#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/* Whether any of the 8 bytes needs a look: below 0x20, '"', '\\', or not ASCII. */
static bool word_special(uint64_t v) {
        uint64_t q = v ^ (ONES * '"'), b = v ^ (ONES * '\\');
        return (((v - ONES * 0x20) & ~v) | ((q - ONES) & ~q) | ((b - ONES) & ~b) | v) & HIGHS;
}

size_t otlp_json_escape_into(const char *s, size_t n, char *out) {
        static const char hex[] = "0123456789abcdef";
        const uint8_t *p = (const uint8_t *) s;
        char *o = out;
        size_t i = 0;

        while (i < n) {
#ifdef __SSE2__
                /* Copied while scanned: all 16 bytes are stored, the output pointer advances over those before
                 * the first special one. The caller's room (6 per input byte) covers the overshoot. Signed
                 * compare: below 0x20 catches the bytes from 0x80 too. */
                while (i + 16 <= n) {
                        __m128i v = _mm_loadu_si128((const __m128i *) (p + i));
                        __m128i sp = _mm_or_si128(
                                _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),
                                _mm_or_si128(
                                        _mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))));
                        unsigned mask = (unsigned) _mm_movemask_epi8(sp);
                        _mm_storeu_si128((__m128i *) o, v);
                        if (mask) {
                                size_t k = (size_t) __builtin_ctz(mask);
                                i += k;
                                o += k;
                                goto special;
                        }
                        i += 16;
                        o += 16;
                }
#endif
                size_t start = i;
                while (i + 8 <= n) {
                        uint64_t v;
                        memcpy(&v, p + i, 8);
                        if (word_special(v))
                                break;
                        i += 8;
                }
                while (i < n && p[i] >= 0x20 && p[i] < 0x80 && p[i] != '"' && p[i] != '\\')
                        i++;
                memcpy(o, p + start, i - start);
                o += i - start;
#ifdef __SSE2__
special:
#endif
                if (i >= n)
                        break;
                uint8_t c = p[i];
                if (c >= 0x80 || c == 0) {
                        size_t w;
                        i += utf8_copy_char(p + i, n - i, (unsigned char *) o, &w);
                        o += w;
                        continue;
                }
                i++;
                *o++ = '\\';
                switch (c) {
                case '"':
                case '\\':
                        *o++ = (char) c;
                        break;
                case '\n':
                        *o++ = 'n';
                        break;
                case '\r':
                        *o++ = 'r';
                        break;
                case '\t':
                        *o++ = 't';
                        break;
                default:
                        memcpy(o, "u00", 3);
                        o[3] = hex[c >> 4];
                        o[4] = hex[c & 15];
                        o += 5;
                }
        }
        return (size_t) (o - out);
}

static char *put_i64(char *o, int64_t v) {
        if (v < 0) {
                *o++ = '-';
                return put_u64(o, (uint64_t) 0 - (uint64_t) v);
        }
        return put_u64(o, (uint64_t) v);
}

static char *put_attr_str(char *o, const char *key, const char *value) {
        o = put_str(o, "{\"key\":\"");
        o = put_str(o, key);
        o = put_str(o, "\",\"value\":{\"stringValue\":\"");
        o += otlp_json_escape_into(value, strlen(value), o);
        return put_str(o, "\"}}");
}

int otlp_log_template_json(const OtlpLogLine *l, OtlpLogTemplate *ret) {
        char *base = (char *) ret->data, *o = base, *start;
        const char *stream = log_stream_to_string(l->stream);
        size_t src_len = l->source ? strlen(l->source) : 0;

        if (src_len > (OTLP_LOG_TEMPLATE_MAX - 1024) / 6)
                return -E2BIG;
        /* Members in field-number order, as otlp_message_to_json() writes a decoded LogRecord. */
        *o++ = '{';
        if (l->time_unix_ns != 0) {
                o = put_str(o, "\"timeUnixNano\":\"");
                o = put_u64(o, l->time_unix_ns);
                o = put_str(o, "\",");
        }
        OtlpSeverity sev = otlp_log_severity(l->stream, l->priority);
        o = put_str(o, "\"severityNumber\":");
        o = put_u64(o, (uint64_t) sev.number);
        o = put_str(o, ",\"severityText\":\"");
        o = put_str(o, sev.text);
        o = put_str(o, "\",");
        o = put_str(o, "\"body\":{\"stringValue\":\"");
        ret->head_len = (size_t) (o - base);

        start = o;
        o = put_str(o, "\"},\"attributes\":[");
        if (stream) {
                o = put_attr_str(o, "log.iostream", stream);
                *o++ = ',';
        }
        if (l->source) {
                o = put_attr_str(o, "tether.log.source", l->source);
                *o++ = ',';
        }
        o = put_str(o, "{\"key\":\"tether.log.seq\",\"value\":{\"intValue\":\"");
        o = put_i64(o, (int64_t) l->seq);
        o = put_str(o, "\"}}");
        ret->mid_len = (size_t) (o - start);

        start = o;
        *o++ = ']';
        if (l->trace_id) {
                o = put_str(o, ",\"flags\":1,\"traceId\":\"");
                hex_encode(l->trace_id, 16, o);
                o += 32;
                *o++ = '"';
        }
        if (l->span_id) {
                o = put_str(o, ",\"spanId\":\"");
                hex_encode(l->span_id, 8, o);
                o += 16;
                *o++ = '"';
        }
        if (l->observed_unix_ns != 0) {
                o = put_str(o, ",\"observedTimeUnixNano\":\"");
                o = put_u64(o, l->observed_unix_ns);
                *o++ = '"';
        }
        *o++ = '}';
        ret->tail_len = (size_t) (o - start);

        /* Then ',' and the head again, tether.log.partial, and the tail again: after a body, one copy for a
         * whole line (up to the next line's body when one follows), two for a partial one. */
        char *tail = start;
        *o++ = ',';
        memcpy(o, base, ret->head_len);
        o += ret->head_len;
        start = o;
        o = put_str(o, ",{\"key\":\"tether.log.partial\",\"value\":{\"boolValue\":true}}");
        ret->partial_len = (size_t) (o - start);
        memcpy(o, tail, ret->tail_len);
        return 0;
}

size_t otlp_log_line_json_max(const OtlpLogTemplate *t, size_t n) {
        return t->head_len + OTLP_JSON_ESCAPED_MAX(n) + t->mid_len + t->partial_len + t->tail_len;
}

size_t otlp_log_line_json(const OtlpLogTemplate *t, const char *text, size_t n, bool partial, char *out) {
        const uint8_t *d = t->data;
        char *o = out;

        memcpy(o, d, t->head_len);
        o += t->head_len;
        d += t->head_len;
        o += otlp_json_escape_into(text, n, o);
        if (!partial) {
                memcpy(o, d, t->mid_len + t->tail_len);
                return (size_t) (o - out) + t->mid_len + t->tail_len;
        }
        memcpy(o, d, t->mid_len);
        o += t->mid_len;
        d += t->mid_len + t->tail_len + 1 + t->head_len;
        memcpy(o, d, t->partial_len + t->tail_len);
        return (size_t) (o - out) + t->partial_len + t->tail_len;
}

size_t otlp_log_lines_json(
        const OtlpLogTemplate *t,
        const char *text,
        size_t len,
        size_t room,
        size_t max_items,
        char *out,
        size_t *ret_consumed,
        size_t *ret_items) {
        const uint8_t *mid = t->data + t->head_len;
        const char *p = text, *end = text + len;
        size_t items = 0, between = t->mid_len + t->tail_len + 1 + t->head_len;
        char *o = out;

        const char *nl = memchr(p, '\n', len);
        size_t n = nl ? (size_t) (nl - p) : len;
        if (len == 0 || max_items == 0 || otlp_log_line_json_max(t, n) > room) {
                *ret_consumed = *ret_items = 0;
                return 0;
        }
        memcpy(o, t->data, t->head_len);
        o += t->head_len;
        for (;;) {
                o += otlp_json_escape_into(p, n, o);
                items++;
                p += n;
                if (!nl) {
                        /* Without its newline: the last line, partial. */
                        memcpy(o, mid, t->mid_len);
                        o += t->mid_len;
                        memcpy(o, mid + between, t->partial_len + t->tail_len);
                        o += t->partial_len + t->tail_len;
                        break;
                }
                p++;
                /* The next line, when there is one and its most fits after this one's end and the separator:
                 * this line's end, ',' and the next head in one copy. */
                const char *next_nl = NULL;
                size_t next_n = 0;
                bool more = false;
                if (p < end && items < max_items) {
                        next_nl = memchr(p, '\n', (size_t) (end - p));
                        next_n = next_nl ? (size_t) (next_nl - p) : (size_t) (end - p);
                        more = (size_t) (o - out) + t->mid_len + t->tail_len + 1 + otlp_log_line_json_max(t, next_n) <=
                                room;
                }
                if (!more) {
                        memcpy(o, mid, t->mid_len + t->tail_len);
                        o += t->mid_len + t->tail_len;
                        break;
                }
                memcpy(o, mid, between);
                o += between;
                nl = next_nl;
                n = next_n;
        }
        *ret_consumed = (size_t) (p - text);
        *ret_items = items;
        return (size_t) (o - out);
}

int otlp_item_to_json(ExportSignal signal, const uint8_t *data, size_t len, char **ret, size_t *ret_len) {
        const ProtobufCMessageDescriptor *d;
        char *s;
        int r;

        if (signal == EXPORT_SIGNAL_TRACES)
                d = &opentelemetry__proto__trace__v1__span__descriptor;
        else if (signal == EXPORT_SIGNAL_LOGS)
                d = &opentelemetry__proto__logs__v1__log_record__descriptor;
        else if (signal == EXPORT_SIGNAL_METRICS)
                d = &opentelemetry__proto__metrics__v1__metric__descriptor;
        else
                return -EINVAL;
        r = protobuf_to_json(d, data, len, &s);
        if (r < 0)
                return r;
        *ret_len = strlen(s);
        *ret = s;
        return 0;
}

int otlp_blob_resource_json(OtlpBlob *b, const char **ret, size_t *ret_len) {
        if (!b->json) {
                int r = protobuf_to_json(
                        &opentelemetry__proto__resource__v1__resource__descriptor, b->data, b->len, &b->json);
                if (r < 0)
                        return r;
                b->json_len = strlen(b->json);
        }
        *ret = b->json;
        *ret_len = b->json_len;
        return 0;
}

const char *otlp_scope_json(size_t *ret_len) {
        static const char scope[] = "{\"name\":\"" OTLP_SCOPE_NAME "\",\"version\":\"" TETHER_VERSION "\"}";
        *ret_len = sizeof(scope) - 1;
        return scope;
}
