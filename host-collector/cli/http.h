/* SPDX-License-Identifier: MIT */
/* Room cli: the tether command line, a client of tetherd's HTTP API only. */
#pragma once

/* A small blocking HTTP/1.1 client for tetherd's API (libcurl), over its Unix socket or a TCP URL. Library
 * code: it never prints; a failed call leaves a one-line description in http_client_error(). */

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define HTTP_BODY_MAX (64U * 1024U * 1024U)
#define HTTP_LINE_MAX (8U * 1024U * 1024U)
#define HTTP_CONNECT_TIMEOUT_MS 5000U

typedef struct HttpClient HttpClient;

typedef struct HttpResponse {
        long status;
        char *body; /* NUL-terminated (also when empty), owned */
        size_t size;
} HttpResponse;

/* Exactly one of socket_path (a Unix socket) and base_url ("http://127.0.0.1:PORT"). Returns 0, -EINVAL,
 * -ENOMEM. */
int http_client_new(const char *socket_path, const char *base_url, HttpClient **ret);
HttpClient *http_client_free(HttpClient *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(HttpClient *, http_client_free);

/* While *flag is non-zero transfers abort with -ECANCELED (checked about once a second and on every read). */
void http_client_set_cancel_flag(HttpClient *c, const volatile sig_atomic_t *flag);

/* "cannot connect to /run/tether/api.sock: No such file or directory (is tetherd running?)" and the like. */
const char *http_client_error(const HttpClient *c);


void http_response_done(HttpResponse *r);

/* Performs one request; body (JSON) may be NULL. timeout_ms 0 means no overall limit. Any HTTP status is a
 * success (check ret->status). Returns 0, or on transport failure: -ECONNREFUSED/-ENOENT/... (cannot connect),
 * -ETIMEDOUT, -ECANCELED, -EMSGSIZE (body over HTTP_BODY_MAX), -ENOMEM, -EIO. */
int http_request(
        HttpClient *c, const char *method, const char *path, const char *body, uint64_t timeout_ms, HttpResponse *ret);

/* Called for each line of a 2xx response as it arrives, without the line end. A negative return aborts the
 * transfer and becomes the result of http_stream_lines(). */
typedef int (*HttpLineHandler)(const char *line, size_t len, void *userdata);

/* GET path and hand each line of a 2xx body to handler as soon as it arrives (NDJSON streams); a non-2xx body
 * is collected into ret->body instead. No overall timeout. Returns 0 when the response ended (any status),
 * the handler's error, or the errors of http_request(). */
int http_stream_lines(HttpClient *c, const char *path, HttpLineHandler handler, void *userdata, HttpResponse *ret);
