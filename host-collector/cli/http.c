/* SPDX-License-Identifier: MIT */
/* Room cli: the tether command line, a client of tetherd's HTTP API only. */
#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "duration.h"
#include "str-util.h"

struct HttpClient {
        CURL *curl;
        char *socket_path; /* NULL when talking TCP */
        char *base_url;    /* "http://localhost" for the socket */
        const volatile sig_atomic_t *cancel;
        char curl_error[CURL_ERROR_SIZE];
        char error[512];
};

typedef struct Transfer {
        HttpClient *client;
        HttpResponse response;
        size_t body_allocated;

        HttpLineHandler handler; /* NULL: collect the body */
        void *userdata;
        bool status_known;
        bool lines; /* 2xx stream: hand out lines instead of collecting */
        char *line;
        size_t line_len;
        size_t line_allocated;

        int error; /* why a callback stopped the transfer */
} Transfer;

int http_client_new(const char *socket_path, const char *base_url, HttpClient **ret) {
        if (!socket_path == !base_url || (socket_path && !*socket_path) || (base_url && !*base_url))
                return -EINVAL;

        HttpClient *c = calloc(1, sizeof(HttpClient));
        if (!c)
                return -ENOMEM;

        c->curl = curl_easy_init();
        c->socket_path = socket_path ? strdup(socket_path) : NULL;
        /* The host part is ignored on a Unix socket; a trailing '/' of a given URL would double up with paths. */
        c->base_url = socket_path ? strdup("http://localhost") :
                                    strndup(base_url, strlen(base_url) - (base_url[strlen(base_url) - 1] == '/'));
        if (!c->curl || (socket_path && !c->socket_path) || !c->base_url) {
                http_client_free(c);
                return -ENOMEM;
        }

        *ret = c;
        return 0;
}

HttpClient *http_client_free(HttpClient *c) {
        if (!c)
                return NULL;
        if (c->curl)
                curl_easy_cleanup(c->curl);
        free(c->socket_path);
        free(c->base_url);
        free(c);
        return NULL;
}

void http_client_set_cancel_flag(HttpClient *c, const volatile sig_atomic_t *flag) {
        c->cancel = flag;
}

const char *http_client_error(const HttpClient *c) {
        return c->error[0] ? c->error : "unknown error";
}

static const char *http_client_endpoint(const HttpClient *c) {
        return c->socket_path ?: c->base_url;
}

void http_response_done(HttpResponse *r) {
        free(r->body);
        *r = (HttpResponse) {};
}

static bool cancelled(const HttpClient *c) {
        return c->cancel && *c->cancel;
}

static int append(char **buf, size_t *len, size_t *allocated, const char *data, size_t n, size_t max) {
        if (n > max - *len)
                return -EMSGSIZE;
        if (*len + n + 1 > *allocated) {
                size_t a = MAX(*allocated * 2, *len + n + 1);
                a = MAX(a, (size_t) 4096);
                char *b = realloc(*buf, a);
                if (!b)
                        return -ENOMEM;
                *buf = b;
                *allocated = a;
        }
        memcpy(*buf + *len, data, n);
        *len += n;
        (*buf)[*len] = '\0';
        return 0;
}

static int deliver_line(Transfer *t) {
        size_t len = t->line_len;

        if (len > 0 && t->line[len - 1] == '\r')
                len--;
        t->line_len = 0;
        if (!t->line)
                return t->handler("", 0, t->userdata);
        t->line[len] = '\0';
        return t->handler(t->line, len, t->userdata);
}

static int feed_lines(Transfer *t, const char *data, size_t n) {
        while (n > 0) {
                const char *nl = memchr(data, '\n', n);
                size_t chunk = nl ? (size_t) (nl - data) : n;

                int r = append(&t->line, &t->line_len, &t->line_allocated, data, chunk, HTTP_LINE_MAX);
                if (r < 0)
                        return r;
                if (!nl)
                        break;

                r = deliver_line(t);
                if (r < 0)
                        return r;
                data += chunk + 1;
                n -= chunk + 1;
        }
        return 0;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *userdata) {
        Transfer *t = userdata;
        size_t n = size * nmemb;
        int r;

        if (cancelled(t->client)) {
                t->error = -ECANCELED;
                return 0;
        }

        if (t->handler && !t->status_known) {
                long status = 0;
                curl_easy_getinfo(t->client->curl, CURLINFO_RESPONSE_CODE, &status);
                t->lines = status >= 200 && status < 300;
                t->status_known = true;
        }

        if (t->lines)
                r = feed_lines(t, data, n);
        else
                r = append(&t->response.body, &t->response.size, &t->body_allocated, data, n, HTTP_BODY_MAX);
        if (r < 0) {
                t->error = r;
                return 0; /* makes curl fail the transfer with CURLE_WRITE_ERROR */
        }
        return n;
}

static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
        Transfer *t = userdata;

        if (cancelled(t->client)) {
                t->error = -ECANCELED;
                return 1;
        }
        return 0;
}

static void transfer_done(Transfer *t) {
        http_response_done(&t->response);
        free(t->line);
        t->line = NULL;
}

static int fail(HttpClient *c, int r, const char *fmt, ...) _printf_(3, 4);
static int fail(HttpClient *c, int r, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(c->error, sizeof(c->error), fmt, ap);
        va_end(ap);
        return r;
}

static int perform(
        HttpClient *c, const char *method, const char *path, const char *body, uint64_t timeout_ms, Transfer *t) {
        CURL *curl = c->curl;
        struct curl_slist *headers = NULL, *h;
        CURLcode code;

        c->error[0] = '\0';
        c->curl_error[0] = '\0';

        _cleanup_free_ char *url = str_printf("%s%s", c->base_url, path);
        if (!url)
                return fail(c, -ENOMEM, "out of memory");

        curl_easy_reset(curl);
        h = curl_slist_append(headers, "Accept: application/json, application/x-ndjson");
        if (h)
                headers = h;
        if (body) {
                h = curl_slist_append(headers, "Content-Type: application/json");
                if (h)
                        headers = h;
                /* No "Expect: 100-continue" round trip for our small bodies. */
                h = curl_slist_append(headers, "Expect:");
                if (h)
                        headers = h;
        }

        code = curl_easy_setopt(curl, CURLOPT_URL, url);
        if (code == CURLE_OK && c->socket_path)
                code = curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, c->socket_path);
        /* tetherd is local: an http_proxy from the environment must never see these requests. */
        if (code == CURLE_OK)
                code = curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
        if (code == CURLE_OK)
                code = curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        /* ".." is a valid machine id: send paths as they are instead of resolving dot segments. */
        if (code == CURLE_OK)
                code = curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);
        if (code == CURLE_OK)
                code = curl_easy_setopt(curl, CURLOPT_USERAGENT, "tether/" TETHER_VERSION);
        if (code == CURLE_OK)
                code = curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, c->curl_error);
        if (code == CURLE_OK)
                code = curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long) HTTP_CONNECT_TIMEOUT_MS);
        if (code == CURLE_OK && timeout_ms > 0)
                code = curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long) MIN(timeout_ms, (uint64_t) LONG_MAX));
        if (code == CURLE_OK)
                code = curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        if (code == CURLE_OK)
                code = curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_write);
        if (code == CURLE_OK)
                code = curl_easy_setopt(curl, CURLOPT_WRITEDATA, t);
        if (code == CURLE_OK)
                code = curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
        if (code == CURLE_OK)
                code = curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
        if (code == CURLE_OK)
                code = curl_easy_setopt(curl, CURLOPT_XFERINFODATA, t);
        if (code == CURLE_OK && body) {
                code = curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
                if (code == CURLE_OK)
                        code = curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long) strlen(body));
        }
        if (code == CURLE_OK && strcmp(method, body ? "POST" : "GET") != 0)
                code = curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
        if (code != CURLE_OK) {
                curl_slist_free_all(headers);
                return fail(c, -EIO, "cannot set up the request: %s", curl_easy_strerror(code));
        }

        code = curl_easy_perform(curl);
        curl_slist_free_all(headers);

        const char *endpoint = http_client_endpoint(c);
        const char *detail = c->curl_error[0] ? c->curl_error : curl_easy_strerror(code);
        switch (code) {
        case CURLE_OK:
                break;
        case CURLE_COULDNT_CONNECT: {
                long os_errno = 0;
                curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &os_errno);
                int e = os_errno > 0 ? (int) os_errno : ECONNREFUSED;
                return fail(c, -e, "cannot connect to %s: %s (is tetherd running?)", endpoint, strerror(e));
        }
        case CURLE_OPERATION_TIMEDOUT: {
                char d[DURATION_MAX];
                return fail(
                        c,
                        -ETIMEDOUT,
                        "no answer from tetherd at %s within %s",
                        endpoint,
                        format_duration(timeout_ms * NSEC_PER_MSEC, true, d));
        }
        case CURLE_ABORTED_BY_CALLBACK:
                return fail(c, -ECANCELED, "interrupted");
        case CURLE_WRITE_ERROR:
                if (t->error == -ECANCELED)
                        return fail(c, -ECANCELED, "interrupted");
                if (t->error == -EMSGSIZE)
                        return fail(c, -EMSGSIZE, "response from tetherd at %s is too large", endpoint);
                if (t->error == -ENOMEM)
                        return fail(c, -ENOMEM, "out of memory");
                if (t->error < 0)
                        return fail(c, t->error, "stopped reading from tetherd: %s", strerror(-t->error));
                return fail(c, -EIO, "cannot read the response from %s: %s", endpoint, detail);
        case CURLE_OUT_OF_MEMORY:
                return fail(c, -ENOMEM, "out of memory");
        case CURLE_GOT_NOTHING:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_PARTIAL_FILE:
                return fail(c, -ECONNRESET, "connection to tetherd at %s lost: %s", endpoint, detail);
        default:
                return fail(c, -EIO, "request to tetherd at %s failed: %s", endpoint, detail);
        }

        /* A stream that ended without a final newline still delivers its last line. */
        if (t->lines && t->line_len > 0) {
                int r = deliver_line(t);
                if (r < 0)
                        return fail(c, r, "stopped reading from tetherd: %s", strerror(-r));
        }

        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &t->response.status);
        if (!t->response.body) {
                t->response.body = strdup("");
                if (!t->response.body)
                        return fail(c, -ENOMEM, "out of memory");
        }
        return 0;
}

int http_request(
        HttpClient *c, const char *method, const char *path, const char *body, uint64_t timeout_ms, HttpResponse *ret) {
        _cleanup_(transfer_done) Transfer t = { .client = c };

        int r = perform(c, method, path, body, timeout_ms, &t);
        if (r < 0)
                return r;

        *ret = t.response;
        t.response = (HttpResponse) {};
        return 0;
}

int http_stream_lines(HttpClient *c, const char *path, HttpLineHandler handler, void *userdata, HttpResponse *ret) {
        _cleanup_(transfer_done) Transfer t = { .client = c, .handler = handler, .userdata = userdata };

        int r = perform(c, "GET", path, NULL, 0, &t);
        if (r < 0)
                return r;

        *ret = t.response;
        t.response = (HttpResponse) {};
        return 0;
}
