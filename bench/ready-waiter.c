/* SPDX-License-Identifier: MIT */
/* tether-ready-waiter: the waiter of bench/readiness-latency and bench/scale, an orchestrator's long-poll in C.
 *
 *   tether-ready-waiter API-SOCKET-PATH REQUEST-PATH
 *
 * Connects to tetherd's API socket, sends "GET REQUEST-PATH HTTP/1.1" (Connection: close), prints "parked" on
 * stdout once the request is written, then reads the response with blocking read()s and reads CLOCK_REALTIME and
 * CLOCK_BOOTTIME (back to back) right after the read that completes it: status line and headers plus
 * Content-Length bytes of body; without a Content-Length, the last read that returned data before EOF; with
 * Transfer-Encoding: chunked, the EOF (the body is then de-chunked). Then it prints one JSON line:
 *
 *   {"returned_unix_ns": N, "returned_boottime_ns": N, "status": N, "body": "the response body"}
 *
 * and exits 0; on any error it prints a message on stderr and exits 1. Its own process, so that what it measures
 * is the answer reaching a client, not a Python bench's other threads holding the GIL. */

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fs-util.h"
#include "macro.h"
#include "socket-util.h"
#include "time-util.h"
#include "utf8.h"

#define RESPONSE_MAX (64u * 1024u * 1024u)

typedef struct Response {
        char *buf;
        size_t size, allocated;
        size_t header_size; /* status line and headers with the blank line; 0 until complete */
        int status;
        bool chunked;
        bool have_length;
        size_t length;
        uint64_t returned_unix_ns, returned_boottime_ns;
} Response;

static void response_done(Response *r) {
        free(r->buf);
}

/* Parses status line, Content-Length and Transfer-Encoding once the headers are all in. */
static int parse_head(Response *r) {
        char *end = r->size >= 4 ? memmem(r->buf, r->size, "\r\n\r\n", 4) : NULL;
        const char *length = NULL, *encoding = NULL;

        if (!end)
                return 0;
        size_t header_size = (size_t) (end - r->buf) + 4;
        _cleanup_free_ char *head = strndup(r->buf, header_size - 2); /* each line ends in CRLF */
        if (!head)
                return -ENOMEM;
        if (sscanf(head, "HTTP/1.%*1[01] %3d", &r->status) != 1 || r->status < 100 || r->status > 599)
                return -EBADMSG;

        for (char *line = strstr(head, "\r\n") + 2, *next; *line; line = next + 2) {
                next = strstr(line, "\r\n");
                *next = '\0';
                char *colon = strchr(line, ':');
                if (!colon)
                        return -EBADMSG;
                *colon = '\0';
                char *v = colon + 1 + strspn(colon + 1, " \t");
                v[strcspn(v, " \t")] = '\0';
                if (strcasecmp(line, "Content-Length") == 0)
                        length = v;
                else if (strcasecmp(line, "Transfer-Encoding") == 0)
                        encoding = v;
        }

        if (encoding && strcasecmp(encoding, "identity") != 0) {
                if (strcasecmp(encoding, "chunked") != 0)
                        return -EBADMSG;
                r->chunked = true; /* wins over a Content-Length (RFC 9112, 6.3) */
        } else if (length) {
                char *e;
                errno = 0;
                unsigned long long n = strtoull(length, &e, 10);
                if (errno != 0 || e == length || *e != '\0' || *length == '-' || n > RESPONSE_MAX)
                        return -EBADMSG;
                r->have_length = true;
                r->length = (size_t) n;
        }
        r->header_size = header_size;
        return 0;
}

static void stamp(Response *r) {
        r->returned_unix_ns = now_ns(CLOCK_REALTIME);
        r->returned_boottime_ns = now_ns(CLOCK_BOOTTIME);
}

/* Reads the response: returns once it is complete (Content-Length) or at EOF. */
static int read_response(int fd, Response *r) {
        for (;;) {
                if (r->allocated - r->size < 4096) {
                        size_t n = MAX(r->allocated * 2, (size_t) 65536);
                        if (n > RESPONSE_MAX)
                                return -EFBIG;
                        char *p = realloc(r->buf, n + 1);
                        if (!p)
                                return -ENOMEM;
                        r->buf = p;
                        r->allocated = n;
                }
                ssize_t k = read(fd, r->buf + r->size, r->allocated - r->size);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0) {
                        if (r->header_size == 0)
                                return -EBADMSG; /* EOF before the headers ended */
                        if (r->chunked)
                                stamp(r);
                        else if (r->have_length)
                                return -EBADMSG; /* EOF before Content-Length bytes of body */
                        return 0;
                }
                if (!r->chunked)
                        stamp(r); /* the last read with data before EOF, unless the length says sooner */
                r->size += (size_t) k;
                if (r->header_size == 0) {
                        int q = parse_head(r);
                        if (q < 0)
                                return q;
                }
                if (r->header_size > 0 && r->have_length && r->size - r->header_size >= r->length)
                        return 0;
        }
}

/* De-chunks body[0..n) in place: returns the decoded length or -EBADMSG. Extensions and trailers are skipped. */
static ssize_t dechunk(char *body, size_t n) {
        size_t in = 0, out = 0;

        for (;;) {
                char *eol = memmem(body + in, n - in, "\r\n", 2), *e;
                if (!eol)
                        return -EBADMSG;
                *eol = '\0';
                errno = 0;
                unsigned long long size = strtoull(body + in, &e, 16);
                if (errno != 0 || e == body + in || (*e != '\0' && *e != ';' && *e != ' '))
                        return -EBADMSG;
                in = (size_t) (eol - body) + 2;
                if (size == 0)
                        return (ssize_t) out;
                if (size > n - in || n - in - size < 2 || memcmp(body + in + size, "\r\n", 2) != 0)
                        return -EBADMSG;
                memmove(body + out, body + in, size);
                out += size;
                in += size + 2;
        }
}

static void print_json_string(FILE *f, const char *s, size_t n) {
        fputc('"', f);
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];
                if (c == '"' || c == '\\')
                        fprintf(f, "\\%c", c);
                else if (c == '\n')
                        fputs("\\n", f);
                else if (c == '\r')
                        fputs("\\r", f);
                else if (c == '\t')
                        fputs("\\t", f);
                else if (c < 0x20 || c == 0x7f)
                        fprintf(f, "\\u%04x", c);
                else
                        fputc(c, f);
        }
        fputc('"', f);
}

int main(int argc, char *argv[]) {
        _cleanup_(response_done) Response r = {};
        _cleanup_free_ char *request = NULL;
        _cleanup_close_ int fd = -1;
        int q;

        if (argc != 3) {
                fprintf(stderr, "Usage: %s API-SOCKET-PATH REQUEST-PATH\n", argv[0]);
                return 1;
        }
        fd = unix_stream_connect(argv[1]);
        if (fd < 0) {
                fprintf(stderr, "Failed to connect to %s: %s\n", argv[1], strerror(-fd));
                return 1;
        }
        if (asprintf(&request, "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", argv[2]) < 0) {
                fprintf(stderr, "Out of memory\n");
                return 1;
        }
        q = write_all(fd, request, strlen(request));
        if (q < 0) {
                fprintf(stderr, "Failed to send the request: %s\n", strerror(-q));
                return 1;
        }
        if (puts("parked") < 0 || fflush(stdout) != 0) {
                fprintf(stderr, "Failed to write to stdout: %m\n");
                return 1;
        }

        q = read_response(fd, &r);
        if (q < 0) {
                fprintf(stderr,
                        "Failed to read the response (%zu bytes in, %s): %s\n",
                        r.size,
                        r.header_size > 0 ? "headers complete" : "headers incomplete",
                        strerror(-q));
                return 1;
        }
        fd = safe_close(fd);

        char *body = r.buf + r.header_size;
        size_t body_size = r.size - r.header_size;
        if (r.have_length)
                body_size = MIN(body_size, r.length);
        else if (r.chunked) {
                ssize_t k = dechunk(body, body_size);
                if (k < 0) {
                        fprintf(stderr, "Malformed chunked body\n");
                        return 1;
                }
                body_size = (size_t) k;
        }
        if (!utf8_is_valid(body, body_size)) {
                fprintf(stderr, "The response body is not UTF-8 (or has a NUL byte): status %d\n", r.status);
                return 1;
        }
        printf("{\"returned_unix_ns\": %" PRIu64 ", \"returned_boottime_ns\": %" PRIu64
               ", \"status\": %d, "
               "\"body\": ",
               r.returned_unix_ns,
               r.returned_boottime_ns,
               r.status);
        print_json_string(stdout, body, body_size);
        fputs("}\n", stdout);
        if (fflush(stdout) != 0) {
                fprintf(stderr, "Failed to write to stdout: %m\n");
                return 1;
        }
        return 0;
}
