/* SPDX-License-Identifier: MIT */
/* Room otlp: OTLP export of traces, logs and events (encode, queue, spool, libcurl); a core observer. */
#include "otlp-http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "macro.h"
#include "time-util.h"

struct OtlpHttp {
        sd_event *event;
        CURLM *multi;
        sd_event_source *timer;
};

struct OtlpHttpCall {
        OtlpHttp *http;
        CURL *easy;
        char *url;
        char **headers;
        size_t n_headers;
        struct curl_slist *slist;
        bool busy;
        OtlpHttpDone done;
        void *userdata;
        char error[CURL_ERROR_SIZE];
        char *retry_after;
        char *content_type;
        uint8_t *body;
        size_t body_len;
};

static void check_done(OtlpHttp *h);

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        OtlpHttp *h = userdata;
        int action = 0, running;

        if (revents & EPOLLIN)
                action |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                action |= CURL_CSELECT_OUT;
        if (revents & (EPOLLERR | EPOLLHUP))
                action |= CURL_CSELECT_ERR;
        (void) curl_multi_socket_action(h->multi, fd, action, &running);
        check_done(h);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        OtlpHttp *h = userdata;
        int running;

        (void) curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        check_done(h);
        return 0;
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
        OtlpHttp *h = userp;
        sd_event_source *src = socketp;
        uint32_t events = 0;

        if (what == CURL_POLL_REMOVE) {
                if (src) {
                        sd_event_source_disable_unref(src);
                        curl_multi_assign(h->multi, fd, NULL);
                }
                return 0;
        }
        if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
                events |= EPOLLIN;
        if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
                events |= EPOLLOUT;
        if (src) {
                if (sd_event_source_set_io_events(src, events) < 0)
                        return -1;
                return 0;
        }
        if (sd_event_add_io(h->event, &src, fd, events, on_io, h) < 0)
                return -1;
        (void) sd_event_source_set_description(src, "otlp-http-io");
        curl_multi_assign(h->multi, fd, src);
        return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp) {
        OtlpHttp *h = userp;

        if (timeout_ms < 0)
                return sd_event_source_set_enabled(h->timer, SD_EVENT_OFF) < 0 ? -1 : 0;
        if (sd_event_source_set_time_relative(h->timer, (uint64_t) timeout_ms * USEC_PER_MSEC) < 0 ||
            sd_event_source_set_enabled(h->timer, SD_EVENT_ONESHOT) < 0)
                return -1;
        return 0;
}

int otlp_http_new(sd_event *event, OtlpHttp **ret) {
        int r;

        OtlpHttp *h = calloc(1, sizeof(OtlpHttp));
        if (!h)
                return -ENOMEM;
        h->event = sd_event_ref(event);
        h->multi = curl_multi_init();
        if (!h->multi) {
                otlp_http_free(h);
                return -ENOMEM;
        }
        r = sd_event_add_time(event, &h->timer, CLOCK_MONOTONIC, UINT64_MAX, USEC_PER_MSEC, on_timer, h);
        if (r < 0) {
                otlp_http_free(h);
                return r;
        }
        (void) sd_event_source_set_enabled(h->timer, SD_EVENT_OFF);
        (void) sd_event_source_set_description(h->timer, "otlp-http-timer");
        curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
        curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
        curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
        curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
        *ret = h;
        return 0;
}

OtlpHttp *otlp_http_free(OtlpHttp *h) {
        if (!h)
                return NULL;
        if (h->multi)
                curl_multi_cleanup(h->multi);
        sd_event_source_disable_unref(h->timer);
        sd_event_unref(h->event);
        free(h);
        return NULL;
}

static size_t on_header(char *buf, size_t size, size_t n, void *userdata) {
        OtlpHttpCall *c = userdata;
        size_t len = size * n;
        char **target = NULL;
        size_t skip = 0;

        if (len > 12 && strncasecmp(buf, "Retry-After:", 12) == 0) {
                target = &c->retry_after;
                skip = 12;
        } else if (len > 13 && strncasecmp(buf, "Content-Type:", 13) == 0) {
                target = &c->content_type;
                skip = 13;
        }
        if (target) {
                const char *v = buf + skip, *end = buf + len;
                while (v < end && (*v == ' ' || *v == '\t'))
                        v++;
                while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
                        end--;
                free(*target);
                *target = strndup(v, (size_t) (end - v));
        }
        return len;
}

static size_t on_write(char *buf, size_t size, size_t n, void *userdata) {
        OtlpHttpCall *c = userdata;
        size_t len = size * n, keep = MIN(len, OTLP_HTTP_RESPONSE_MAX - c->body_len);

        if (keep > 0) {
                uint8_t *b = realloc(c->body, c->body_len + keep);
                if (!b)
                        return len; /* the answer's status still counts */
                memcpy(b + c->body_len, buf, keep);
                c->body = b;
                c->body_len += keep;
        }
        return len;
}

int otlp_http_call_new(
        OtlpHttp *h,
        const char *url,
        const char *const *headers,
        size_t n_headers,
        uint64_t timeout_ns,
        OtlpHttpCall **ret) {
        OtlpHttpCall *c = calloc(1, sizeof(OtlpHttpCall));
        if (!c)
                return -ENOMEM;
        c->http = h;
        c->url = strdup(url);
        c->headers = calloc(n_headers + 1, sizeof(char *));
        c->easy = curl_easy_init();
        if (!c->url || !c->headers || !c->easy) {
                otlp_http_call_free(c);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n_headers; i++) {
                c->headers[i] = strdup(headers[i]);
                if (!c->headers[i]) {
                        otlp_http_call_free(c);
                        return -ENOMEM;
                }
                c->n_headers++;
        }
        curl_easy_setopt(c->easy, CURLOPT_URL, c->url);
        curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c->easy, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
        curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS, (long) (timeout_ns / NSEC_PER_MSEC));
        curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c);
        curl_easy_setopt(c->easy, CURLOPT_ERRORBUFFER, c->error);
        curl_easy_setopt(c->easy, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c->easy, CURLOPT_HEADERDATA, c);
        curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
        curl_easy_setopt(c->easy, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c->easy, CURLOPT_USERAGENT, "tetherd-otlp");
        *ret = c;
        return 0;
}

static void call_reset_response(OtlpHttpCall *c) {
        c->retry_after = mfree(c->retry_after);
        c->content_type = mfree(c->content_type);
        c->body = mfree(c->body);
        c->body_len = 0;
        c->error[0] = '\0';
}

void otlp_http_call_cancel(OtlpHttpCall *c) {
        if (!c || !c->busy)
                return;
        curl_multi_remove_handle(c->http->multi, c->easy);
        c->busy = false;
        call_reset_response(c);
}

OtlpHttpCall *otlp_http_call_free(OtlpHttpCall *c) {
        if (!c)
                return NULL;
        otlp_http_call_cancel(c);
        if (c->easy)
                curl_easy_cleanup(c->easy);
        curl_slist_free_all(c->slist);
        for (size_t i = 0; i < c->n_headers; i++)
                free(c->headers[i]);
        free(c->headers);
        free(c->url);
        call_reset_response(c);
        free(c);
        return NULL;
}

int otlp_http_call_start(
        OtlpHttpCall *c,
        const char *content_type,
        bool gzip,
        const uint8_t *body,
        size_t len,
        OtlpHttpDone done,
        void *userdata) {
        struct curl_slist *l = NULL, *n;
        char ct[128];

        if (c->busy)
                return -EBUSY;
        call_reset_response(c);

        snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
        /* No "Expect: 100-continue" round trip on larger bodies. */
        if (!(n = curl_slist_append(l, ct)) || !(l = n, n = curl_slist_append(l, "Expect:")))
                goto oom;
        l = n;
        if (gzip) {
                if (!(n = curl_slist_append(l, "Content-Encoding: gzip")))
                        goto oom;
                l = n;
        }
        for (size_t i = 0; i < c->n_headers; i++) {
                if (!(n = curl_slist_append(l, c->headers[i])))
                        goto oom;
                l = n;
        }
        curl_slist_free_all(c->slist);
        c->slist = l;
        curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->slist);
        curl_easy_setopt(c->easy, CURLOPT_POST, 1L);
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, (const char *) body);
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) len);
        c->done = done;
        c->userdata = userdata;
        if (curl_multi_add_handle(c->http->multi, c->easy) != CURLM_OK)
                return -ENOMEM;
        c->busy = true;
        return 0;
oom:
        curl_slist_free_all(l);
        return -ENOMEM;
}

static void check_done(OtlpHttp *h) {
        CURLMsg *msg;
        int left;

        while ((msg = curl_multi_info_read(h->multi, &left))) {
                OtlpHttpCall *c = NULL;
                long status = 0;

                if (msg->msg != CURLMSG_DONE)
                        continue;
                curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &c);
                CURLcode result = msg->data.result;
                if (result == CURLE_OK)
                        curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
                curl_multi_remove_handle(h->multi, msg->easy_handle);
                if (!c)
                        continue;
                c->busy = false;
                OtlpHttpResponse resp = {
                        .status = status,
                        .result = result,
                        .error = c->error[0] ? c->error : curl_easy_strerror(result),
                        .retry_after = c->retry_after,
                        .content_type = c->content_type,
                        .body = c->body,
                        .body_len = c->body_len,
                };
                if (c->done)
                        c->done(c, &resp, c->userdata);
        }
}

void otlp_http_drain(OtlpHttp *h, uint64_t timeout_ns) {
        uint64_t deadline = now_ns(CLOCK_MONOTONIC) + timeout_ns;
        int running = 1;

        while (running > 0 && now_ns(CLOCK_MONOTONIC) < deadline) {
                if (curl_multi_perform(h->multi, &running) != CURLM_OK)
                        break;
                check_done(h);
                if (running <= 0)
                        break;
                (void) curl_multi_poll(h->multi, NULL, 0, 100, NULL);
        }
        check_done(h);
}
