/* SPDX-License-Identifier: MIT */
/* Room otlp: OTLP export of traces, logs and events (encode, queue, spool, libcurl); a core observer. */
#pragma once

/* HTTP POSTs on one libcurl multi handle driven by sd-event (CURLMOPT_SOCKETFUNCTION/TIMERFUNCTION → io and
 * time sources), so exporting never blocks the loop. A call owns one easy handle, reused for every request so
 * the multi's connection cache keeps the connection alive. Never logs. */

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

typedef struct OtlpHttp OtlpHttp;
typedef struct OtlpHttpCall OtlpHttpCall;

#define OTLP_HTTP_RESPONSE_MAX (64u * 1024u)

typedef struct OtlpHttpResponse {
        long status;             /* 0: no HTTP answer */
        CURLcode result;         /* CURLE_OK when an answer came */
        const char *error;       /* curl's message when result != CURLE_OK */
        const char *retry_after; /* the Retry-After header, or NULL */
        const char *content_type;
        const uint8_t *body; /* at most OTLP_HTTP_RESPONSE_MAX bytes */
        size_t body_len;
} OtlpHttpResponse;

typedef void (*OtlpHttpDone)(OtlpHttpCall *c, const OtlpHttpResponse *r, void *userdata);

int otlp_http_new(sd_event *event, OtlpHttp **ret);
/* Aborts running calls (their callbacks are not run). */
OtlpHttp *otlp_http_free(OtlpHttp *h);

/* A call slot posting to url with these extra "Name: value" headers (copied). */
int otlp_http_call_new(
        OtlpHttp *h,
        const char *url,
        const char *const *headers,
        size_t n_headers,
        uint64_t timeout_ns,
        OtlpHttpCall **ret);
OtlpHttpCall *otlp_http_call_free(OtlpHttpCall *c);

/* Starts one POST; body stays borrowed until done runs (or the call is cancelled). Returns 0, -EBUSY (a request
 * is running) or -errno. done runs from the event loop, never from within this function. */
int otlp_http_call_start(
        OtlpHttpCall *c,
        const char *content_type,
        bool gzip,
        const uint8_t *body,
        size_t len,
        OtlpHttpDone done,
        void *userdata);
void otlp_http_call_cancel(OtlpHttpCall *c);

/* Runs the transfers without the event loop until none is left or timeout_ns passed (shutdown). */
void otlp_http_drain(OtlpHttp *h, uint64_t timeout_ns);
