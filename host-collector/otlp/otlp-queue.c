/* SPDX-License-Identifier: MIT */
/* Room otlp: OTLP export of traces, logs and events (encode, queue, spool, libcurl); a core observer. */
#include "otlp-queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "macro.h"
#include "otlp-json.h"

/* zlib's deflate state for windowBits 15, memLevel 8 (zconf.h: (1 << (windowBits+2)) + (1 << (memLevel+9))),
 * plus its bookkeeping: counted while the stream exists. */
#define ZSTREAM_COST ((UINT64_C(1) << 17) + (UINT64_C(1) << 17) + UINT64_C(8192))
/* Level 3: ~3x faster than 6 on log text for ~10% more bytes; the CPU is the node's, the bytes are local. */
#define GZIP_LEVEL 3
/* Buffers kept for the next batches, so that a steady stream allocates nothing. */
#define POOL_MAX 4u
#define POOL_BUF_MAX (UINT64_C(8) << 20)
#define BUF_MIN 4096u

typedef struct Buf {
        uint8_t *data;
        size_t len, cap;
} Buf;

typedef struct Group {
        OtlpBlob *resource;
        Buf buf;
        size_t items;
        uint64_t data_bytes; /* item bytes, counted in resource->pending_bytes until the batch is freed */
} Group;

struct OtlpBatchPrivate {
        OtlpBatch *next;
        Group groups[OTLP_BATCH_GROUPS];
        size_t n_groups;
        uint64_t data_bytes;
        uint64_t first_ns;
        Buf frames;           /* request framing: headers of the groups, resources, scope */
        struct iovec *pieces; /* frames and group buffers, in request order */
        size_t n_pieces, pieces_cap;
        size_t piece, offset; /* progress through the pieces (protobuf) */
        uint64_t total;       /* request bytes before gzip */
        Buf out;              /* the body being written */
        bool started;
        bool broken; /* could not be encoded: dropped when taken */
};

struct OtlpQueue {
        ExportSignal signal;
        OtlpQueueLimits limits;
        OtlpBatch *open;
        OtlpBatch *head, *tail; /* sealed, oldest first */
        size_t items;           /* in open and sealed batches */
        uint64_t bytes;
        uint64_t pending; /* item bytes not yet released, and what is held */
        uint64_t pool_bytes;
        Buf pool[POOL_MAX];
        size_t n_pool;
        z_stream z;
        bool z_init;
        OtlpBatch *z_owner; /* the batch the stream is compressing */
        size_t last_group;  /* of the open batch: the next item is likely of the same resource */
        Buf *reserved;
        size_t reserved_at;
};

static void buf_free(OtlpQueue *q, Buf *b) {
        q->bytes -= b->cap;
        free(b->data);
        *b = (Buf) {};
}

/* Makes room for n more bytes. Checks the bound unless unbounded (work on sealed batches must complete). */
static int buf_reserve(OtlpQueue *q, Buf *b, size_t n, bool bounded) {
        if (b->len + n <= b->cap)
                return 0;
        size_t cap = MAX(MAX(b->cap * 2, (size_t) BUF_MIN), b->len + n);
        if (bounded && q->bytes + (cap - b->cap) > q->limits.max_bytes) {
                /* Doubling is a guess: settle for what is needed when that fits. */
                cap = b->len + n;
                if (q->bytes + (cap - b->cap) > q->limits.max_bytes)
                        return -ENOBUFS;
        }
        uint8_t *d = realloc(b->data, cap);
        if (!d)
                return -ENOMEM;
        q->bytes += cap - b->cap;
        b->data = d;
        b->cap = cap;
        return 0;
}

static void buf_put(Buf *b, const void *p, size_t n) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
}

static void pool_put(OtlpQueue *q, Buf *b) {
        /* At most a quarter of the bound waits for reuse. */
        if (b->cap > 0 && q->n_pool < POOL_MAX && b->cap <= POOL_BUF_MAX &&
            q->pool_bytes + b->cap <= q->limits.max_bytes / 4) {
                b->len = 0;
                q->pool_bytes += b->cap;
                q->pool[q->n_pool++] = *b;
                *b = (Buf) {};
        } else
                buf_free(q, b);
}

static void pool_clear(OtlpQueue *q) {
        for (size_t i = 0; i < q->n_pool; i++)
                buf_free(q, &q->pool[i]);
        q->n_pool = 0;
        q->pool_bytes = 0;
}

static Buf pool_get(OtlpQueue *q) {
        if (q->n_pool == 0)
                return (Buf) {};
        /* The largest: a steady stream reuses the buffer it grew. */
        size_t best = 0;
        for (size_t i = 1; i < q->n_pool; i++)
                if (q->pool[i].cap > q->pool[best].cap)
                        best = i;
        Buf b = q->pool[best];
        q->pool[best] = q->pool[--q->n_pool];
        q->pool_bytes -= b.cap;
        return b;
}

int otlp_queue_new(ExportSignal signal, const OtlpQueueLimits *limits, OtlpQueue **ret) {
        if (limits->batch_items == 0 || limits->max_bytes == 0 || limits->batch_bytes == 0)
                return -EINVAL;
        if ((unsigned) signal >= _EXPORT_SIGNAL_MAX)
                return -EINVAL;
        OtlpQueue *q = calloc(1, sizeof(OtlpQueue));
        if (!q)
                return -ENOMEM;
        q->signal = signal;
        q->limits = *limits;
        q->limits.gzip = limits->gzip && limits->format == OTLP_FORMAT_PROTOBUF;
        *ret = q;
        return 0;
}

static void batch_free(OtlpQueue *q, OtlpBatch *b) {
        if (!b)
                return;
        OtlpBatchPrivate *p = b->priv;
        if (q->z_owner == b) {
                (void) deflateReset(&q->z);
                q->z_owner = NULL;
        }
        for (size_t i = 0; i < p->n_groups; i++) {
                p->groups[i].resource->pending_bytes -= p->groups[i].data_bytes;
                otlp_blob_unref(p->groups[i].resource);
                pool_put(q, &p->groups[i].buf);
        }
        buf_free(q, &p->frames);
        buf_free(q, &p->out);
        q->bytes -= p->pieces_cap * sizeof(struct iovec);
        free(p->pieces);
        free(b->iov);
        q->bytes -= sizeof(OtlpBatch) + sizeof(OtlpBatchPrivate);
        q->pending -= p->data_bytes;
        free(p);
        free(b);
}

static size_t batch_list_free(OtlpQueue *q, OtlpBatch *b) {
        size_t items = 0;
        while (b) {
                OtlpBatch *n = b->priv->next;
                items += b->items;
                batch_free(q, b);
                b = n;
        }
        return items;
}

size_t otlp_queue_clear(OtlpQueue *q) {
        size_t n = batch_list_free(q, q->head) + batch_list_free(q, q->open);
        q->head = q->tail = q->open = NULL;
        q->items = 0;
        return n;
}

OtlpQueue *otlp_queue_free(OtlpQueue *q) {
        if (!q)
                return NULL;
        otlp_queue_clear(q);
        pool_clear(q);
        if (q->z_init)
                deflateEnd(&q->z);
        free(q);
        return NULL;
}

static bool batch_full(const OtlpQueue *q, const OtlpBatch *b) {
        return b->items >= q->limits.batch_items || b->priv->data_bytes >= q->limits.batch_bytes;
}

static void seal_open(OtlpQueue *q) {
        OtlpBatch *b = TAKE_PTR(q->open);
        if (q->tail)
                q->tail->priv->next = b;
        else
                q->head = b;
        q->tail = b;
}

int otlp_queue_seal(OtlpQueue *q, uint64_t now_ns, bool force) {
        if (!q->open || q->open->items == 0)
                return 0;
        if (!force && !batch_full(q, q->open) && now_ns < otlp_queue_deadline(q))
                return 0;
        seal_open(q);
        return 1;
}

uint64_t otlp_queue_deadline(const OtlpQueue *q) {
        if (!q->open || q->open->items == 0)
                return UINT64_MAX;
        return add_sat(q->open->priv->first_ns, q->limits.batch_delay_ns);
}

static int open_batch(OtlpQueue *q, uint64_t now_ns) {
        uint64_t cost = sizeof(OtlpBatch) + sizeof(OtlpBatchPrivate);

        if (q->bytes + cost > q->limits.max_bytes)
                return -ENOBUFS;
        OtlpBatch *b = calloc(1, sizeof(OtlpBatch));
        OtlpBatchPrivate *p = calloc(1, sizeof(OtlpBatchPrivate));
        if (!b || !p) {
                free(b);
                free(p);
                return -ENOMEM;
        }
        b->priv = p;
        p->first_ns = now_ns;
        q->bytes += cost;
        q->open = b;
        q->last_group = 0;
        return 0;
}

static int reserve(OtlpQueue *q, OtlpBlob *resource, uint64_t key, size_t size, uint64_t now_ns, uint8_t **ret);

int otlp_queue_reserve(OtlpQueue *q, OtlpBlob *resource, uint64_t key, size_t size, uint64_t now_ns, uint8_t **ret) {
        int r = reserve(q, resource, key, size, now_ns, ret);
        if (r == -ENOBUFS && q->n_pool > 0) {
                /* Buffers kept for reuse give way to items. */
                pool_clear(q);
                r = reserve(q, resource, key, size, now_ns, ret);
        }
        return r;
}

static int reserve(OtlpQueue *q, OtlpBlob *resource, uint64_t key, size_t size, uint64_t now_ns, uint8_t **ret) {
        int r;

        /* A batch always takes its first item, however large. */
        if (q->open && q->open->items > 0 &&
            (batch_full(q, q->open) || q->open->priv->data_bytes + size > q->limits.batch_bytes))
                seal_open(q);
        if (!q->open) {
                r = open_batch(q, now_ns);
                if (r < 0)
                        return r;
        }
        OtlpBatch *b = q->open;
        OtlpBatchPrivate *p = b->priv;
        Group *g = NULL;
        if (q->last_group < p->n_groups && p->groups[q->last_group].resource == resource)
                g = &p->groups[q->last_group];
        else
                for (size_t i = 0; i < p->n_groups && !g; i++)
                        if (p->groups[i].resource == resource) {
                                g = &p->groups[i];
                                q->last_group = i;
                        }
        if (!g && p->n_groups == OTLP_BATCH_GROUPS) {
                /* One request holds so many resources at most: the next begins. */
                seal_open(q);
                return reserve(q, resource, key, size, now_ns, ret);
        }

        /* Framing: protobuf items are field 2 of their ScopeSpans/ScopeLogs; JSON items are separated. */
        size_t frame = q->limits.format == OTLP_FORMAT_PROTOBUF ? 1 + otlp_varint_size(size) :
                                                                  (g && g->items > 0 ? 1 : 0);
        Buf fresh = {};
        Buf *buf = g ? &g->buf : &fresh;
        if (!g)
                fresh = pool_get(q);
        r = buf_reserve(q, buf, frame + size, true);
        if (r < 0) {
                if (!g)
                        pool_put(q, &fresh);
                return r;
        }
        if (!g) {
                q->last_group = p->n_groups;
                g = &p->groups[p->n_groups++];
                *g = (Group) { .resource = otlp_blob_ref(resource), .buf = fresh };
                buf = &g->buf;
        }
        if (q->limits.format == OTLP_FORMAT_PROTOBUF)
                buf->len = (size_t) (otlp_put_field_header(buf->data + buf->len, 2, size) - buf->data);
        else if (frame)
                buf->data[buf->len++] = ',';
        if (b->items == 0)
                p->first_ns = now_ns;
        b->keys |= key;
        q->reserved = buf;
        q->reserved_at = buf->len;
        *ret = buf->data + buf->len;
        return 0;
}

int otlp_queue_reserve_items(
        OtlpQueue *q,
        OtlpBlob *resource,
        uint64_t key,
        size_t size,
        uint64_t now_ns,
        uint8_t **ret,
        size_t *ret_room,
        size_t *ret_items) {
        if (q->limits.format != OTLP_FORMAT_JSON)
                return -EINVAL;
        int r = otlp_queue_reserve(q, resource, key, size, now_ns, ret);
        if (r < 0)
                return r;
        /* What the buffer holds already, within what the batch may still take (the caller's separators count as
         * item bytes here: a little less room, never more). The first item fits either way. */
        const OtlpBatch *b = q->open;
        uint64_t data = b->priv->data_bytes;
        uint64_t batch_room = data < q->limits.batch_bytes ? q->limits.batch_bytes - data : 0;
        *ret_room = MAX(size, (size_t) MIN((uint64_t) (q->reserved->cap - q->reserved->len), batch_room));
        *ret_items = q->limits.batch_items - MIN(b->items, q->limits.batch_items - 1);
        return 0;
}

void otlp_queue_commit_items(OtlpQueue *q, size_t len, size_t items) {
        OtlpBatch *b = q->open;
        Buf *buf = TAKE_PTR(q->reserved);
        /* Item bytes, without the separators between the items of a run. */
        size_t data = len - (items - 1);

        buf->len = q->reserved_at + len;
        Group *g = &b->priv->groups[q->last_group];
        b->items += items;
        g->items += items;
        g->data_bytes += data;
        g->resource->pending_bytes += data;
        b->priv->data_bytes += data;
        q->pending += data;
        q->items += items;
}

void otlp_queue_commit(OtlpQueue *q, size_t len) {
        otlp_queue_commit_items(q, len, 1);
}

size_t otlp_queue_items(const OtlpQueue *q) {
        return q->items;
}

uint64_t otlp_queue_bytes(const OtlpQueue *q) {
        return q->bytes;
}

uint64_t otlp_queue_pending_bytes(const OtlpQueue *q) {
        return q->pending;
}

void otlp_queue_hold(OtlpQueue *q, int64_t delta) {
        q->bytes += (uint64_t) delta;
        q->pending += (uint64_t) delta;
}

void otlp_queue_untake(OtlpQueue *q, OtlpBatch *b) {
        b->priv->next = q->head;
        q->head = b;
        if (!q->tail)
                q->tail = b;
        q->items += b->items;
}

OtlpBatch *otlp_queue_head(const OtlpQueue *q) {
        return q->head;
}

/* ---- finishing ---- */

static int add_piece(OtlpQueue *q, OtlpBatchPrivate *p, const void *base, size_t len) {
        if (p->n_pieces == p->pieces_cap) {
                size_t n = MAX(p->pieces_cap * 2, (size_t) 8);
                struct iovec *v = realloc(p->pieces, n * sizeof(struct iovec));
                if (!v)
                        return -ENOMEM;
                q->bytes += (n - p->pieces_cap) * sizeof(struct iovec);
                p->pieces = v;
                p->pieces_cap = n;
        }
        p->pieces[p->n_pieces++] = (struct iovec) { (void *) base, len };
        p->total += len;
        return 0;
}

/* Frames, and the list of pieces that make the request. Frames are written first, then the pieces point into
 * them: the frames buffer does not move any more. Pieces hold frame offsets until then. */
static int batch_frame(OtlpQueue *q, OtlpBatch *b) {
        OtlpBatchPrivate *p = b->priv;
        /* The OTLP/JSON member names of each signal's request, resource and scope lists. */
        static const char *const json_open[_EXPORT_SIGNAL_MAX] = {
                [EXPORT_SIGNAL_TRACES] = "{\"resourceSpans\":[",
                [EXPORT_SIGNAL_LOGS] = "{\"resourceLogs\":[",
                [EXPORT_SIGNAL_METRICS] = "{\"resourceMetrics\":[",
        };
        static const char *const json_mid[_EXPORT_SIGNAL_MAX] = {
                [EXPORT_SIGNAL_TRACES] = ",\"scopeSpans\":[{\"scope\":",
                [EXPORT_SIGNAL_LOGS] = ",\"scopeLogs\":[{\"scope\":",
                [EXPORT_SIGNAL_METRICS] = ",\"scopeMetrics\":[{\"scope\":",
        };
        static const char *const json_items[_EXPORT_SIGNAL_MAX] = {
                [EXPORT_SIGNAL_TRACES] = ",\"spans\":[",
                [EXPORT_SIGNAL_LOGS] = ",\"logRecords\":[",
                [EXPORT_SIGNAL_METRICS] = ",\"metrics\":[",
        };
        bool json = q->limits.format == OTLP_FORMAT_JSON;
        size_t scope_len, need = 64;
        const uint8_t *scope_pb = otlp_scope_protobuf(&scope_len);
        const char *scope_json = json ? otlp_scope_json(&scope_len) : NULL;
        size_t offs[2 * OTLP_BATCH_GROUPS + 2], lens[2 * OTLP_BATCH_GROUPS + 2];
        int r;

        /* Sizes first: one allocation for the frames. */
        for (size_t i = 0; i < p->n_groups; i++) {
                const char *rj = NULL;
                size_t rl = p->groups[i].resource->len;
                if (json) {
                        r = otlp_blob_resource_json(p->groups[i].resource, &rj, &rl);
                        if (r < 0)
                                return r == -ENOMEM ? r : -EBADMSG;
                }
                need += rl + scope_len + 96;
        }
        r = buf_reserve(q, &p->frames, need, false);
        if (r < 0)
                return r;

        Buf *f = &p->frames;
        size_t at = 0, n = 0;
        if (json) {
                const char *open = json_open[q->signal];
                buf_put(f, open, strlen(open));
        }
        for (size_t i = 0; i < p->n_groups; i++) {
                Group *g = &p->groups[i];
                if (json) {
                        const char *rj;
                        size_t rl;
                        (void) otlp_blob_resource_json(g->resource, &rj, &rl);
                        if (i > 0)
                                buf_put(f, ",", 1);
                        buf_put(f, "{\"resource\":", 12);
                        buf_put(f, rj, rl);
                        const char *mid = json_mid[q->signal];
                        buf_put(f, mid, strlen(mid));
                        buf_put(f, scope_json, scope_len);
                        const char *items = json_items[q->signal];
                        buf_put(f, items, strlen(items));
                } else {
                        /* ResourceX{resource=1, scope_x=2}; ScopeX{scope=1, items=2}: the same numbers for both. */
                        size_t sl = otlp_field_size(scope_len) + g->buf.len;
                        size_t rl = otlp_field_size(g->resource->len) + otlp_field_size(sl);
                        uint8_t *o = f->data + f->len;
                        o = otlp_put_field_header(o, 1, rl);
                        o = otlp_put_field_header(o, 1, g->resource->len);
                        memcpy(o, g->resource->data, g->resource->len);
                        o += g->resource->len;
                        o = otlp_put_field_header(o, 2, sl);
                        o = otlp_put_field_header(o, 1, scope_len);
                        memcpy(o, scope_pb, scope_len);
                        o += scope_len;
                        f->len = (size_t) (o - f->data);
                }
                offs[n] = at;
                lens[n++] = f->len - at;
                at = f->len;
                if (json) {
                        buf_put(f, "]}]}", 4);
                        /* the closing of group i is the opening of the next piece of frames */
                }
        }
        if (json)
                buf_put(f, "]}\n", 3);

        /* Pieces: frame, group, frame, group, ..., frame (JSON closes each group and the line). */
        for (size_t i = 0; i < n; i++) {
                size_t end = i + 1 < n ? offs[i + 1] : f->len;
                r = add_piece(q, p, f->data + offs[i], lens[i]);
                if (r >= 0)
                        r = add_piece(q, p, p->groups[i].buf.data, p->groups[i].buf.len);
                size_t close_at = offs[i] + lens[i];
                if (r >= 0 && end > close_at)
                        r = add_piece(q, p, f->data + close_at, end - close_at);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int z_setup(OtlpQueue *q) {
        if (q->z_init)
                return deflateReset(&q->z) == Z_OK ? 0 : -ENOMEM;
        /* 15 + 16: a gzip header and trailer rather than zlib's. */
        if (deflateInit2(&q->z, GZIP_LEVEL, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
                return -ENOMEM;
        q->z_init = true;
        q->bytes += ZSTREAM_COST;
        return 0;
}

/* Compresses up to budget bytes of the pieces. Returns 1 when done, 0 when not yet, -ENOMEM. */
static int batch_deflate(OtlpQueue *q, OtlpBatch *b, uint64_t budget, uint64_t *done) {
        OtlpBatchPrivate *p = b->priv;
        int r;

        if (q->z_owner != b) {
                r = z_setup(q);
                if (r < 0)
                        return r;
                q->z_owner = b;
                p->piece = p->offset = 0;
        }
        for (;;) {
                bool last = p->piece >= p->n_pieces;
                size_t in = last ? 0 : MIN(p->pieces[p->piece].iov_len - p->offset, (size_t) (64u << 10));
                /* Compressed logs are mostly far smaller; the buffer grows when they are not. */
                r = buf_reserve(q, &p->out, MAX((size_t) (p->total / 8), (size_t) 1024), false);
                if (r < 0)
                        return r;
                q->z.next_in = last ? Z_NULL : (Bytef *) p->pieces[p->piece].iov_base + p->offset;
                q->z.avail_in = (uInt) in;
                q->z.next_out = p->out.data + p->out.len;
                q->z.avail_out = (uInt) (p->out.cap - p->out.len);
                int z = deflate(&q->z, last ? Z_FINISH : Z_NO_FLUSH);
                if (z == Z_STREAM_ERROR)
                        return -ENOMEM;
                size_t used = in - q->z.avail_in;
                p->out.len = p->out.cap - q->z.avail_out;
                p->offset += used;
                *done += used;
                if (!last && p->offset == p->pieces[p->piece].iov_len) {
                        p->piece++;
                        p->offset = 0;
                }
                if (last && z == Z_STREAM_END) {
                        q->z_owner = NULL;
                        return 1;
                }
                if (!last && *done >= budget)
                        return 0;
        }
}

static void batch_done(OtlpQueue *q, OtlpBatch *b) {
        OtlpBatchPrivate *p = b->priv;

        if (q->limits.format == OTLP_FORMAT_JSON) {
                /* The line is written straight from the pieces. */
                b->iov = TAKE_PTR(p->pieces);
                b->n_iov = p->n_pieces;
                p->n_pieces = 0;
                b->body_len = p->total;
        } else {
                b->body = p->out.data;
                b->body_len = p->out.len;
                b->gzip = q->limits.gzip;
                /* The items are in the body now: their buffers serve the next batches. */
                for (size_t i = 0; i < p->n_groups; i++)
                        pool_put(q, &p->groups[i].buf);
                q->bytes -= p->pieces_cap * sizeof(struct iovec);
                p->pieces = mfree(p->pieces);
                p->n_pieces = p->pieces_cap = 0;
                buf_free(q, &p->frames);
        }
        b->ready = true;
}

/* Advances b by about budget bytes (*done: how many went). Returns 1 when it is ready, 0 when not yet, -errno. */
static int batch_advance(OtlpQueue *q, OtlpBatch *b, uint64_t budget, uint64_t *done) {
        OtlpBatchPrivate *p = b->priv;
        int r;

        if (p->broken)
                return -EBADMSG;
        if (b->ready)
                return 1;
        if (!p->started) {
                r = batch_frame(q, b);
                if (r < 0)
                        return r;
                p->started = true;
                if (q->limits.format == OTLP_FORMAT_JSON) {
                        *done += p->total;
                        batch_done(q, b);
                        return 1;
                }
        }
        if (q->limits.gzip) {
                r = batch_deflate(q, b, budget, done);
                if (r <= 0)
                        return r;
        } else {
                /* One contiguous body: libcurl and the spool take it as is. */
                r = buf_reserve(q, &p->out, p->total, false);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < p->n_pieces; i++)
                        buf_put(&p->out, p->pieces[i].iov_base, p->pieces[i].iov_len);
                *done += p->total;
        }
        batch_done(q, b);
        return 1;
}

int otlp_queue_work(OtlpQueue *q, uint64_t budget) {
        uint64_t spent = 0;

        for (OtlpBatch *b = q->head; b; b = b->priv->next) {
                if (b->ready)
                        continue;
                if (spent >= budget)
                        return 1;
                int r = batch_advance(q, b, budget - spent, &spent);
                if (r == -EBADMSG) {
                        /* Taking it out drops it; the batches behind it go on. */
                        b->priv->broken = b->ready = true;
                        continue;
                }
                if (r < 0)
                        return r;
                if (r == 0)
                        return 1;
        }
        return 0;
}

static void unlink_head(OtlpQueue *q) {
        OtlpBatch *b = q->head;
        q->head = b->priv->next;
        if (!q->head)
                q->tail = NULL;
        b->priv->next = NULL;
        q->items -= b->items;
}

int otlp_queue_take(OtlpQueue *q, OtlpBatch **ret, size_t *ret_dropped) {
        OtlpBatch *b = q->head;

        *ret_dropped = 0;
        if (!b) {
                *ret = NULL;
                return 0;
        }
        uint64_t done = 0;
        int r = batch_advance(q, b, UINT64_MAX, &done);
        if (r == -EBADMSG) {
                unlink_head(q);
                *ret_dropped = b->items;
                batch_free(q, b);
                return r;
        }
        if (r < 0)
                return r;
        unlink_head(q);
        *ret = b;
        return 0;
}

void otlp_queue_release(OtlpQueue *q, OtlpBatch *b) {
        batch_free(q, b);
}

int otlp_batch_group(const OtlpBatch *b, size_t i, OtlpBlob **ret_resource, size_t *ret_items) {
        const OtlpBatchPrivate *p = b->priv;

        if (i >= p->n_groups)
                return -ENOENT;
        *ret_resource = p->groups[i].resource;
        *ret_items = p->groups[i].items;
        return 0;
}
