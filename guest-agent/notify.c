/* SPDX-License-Identifier: MIT */
#include "notify.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"
#include "socket-util.h"
#include "utf8.h"

void notify_message_done(NotifyMessage *m) {
        if (!m)
                return;
        free(m->status);
        free(m->milestone);
        for (size_t i = 0; i < m->n_attrs; i++) {
                free(m->attr_keys[i]);
                free(m->attr_values[i]);
        }
        *m = (NotifyMessage) {};
}

/* A bounded, valid UTF-8 copy: cut at NOTIFY_MAX_STRING bytes without splitting a character. */
static char *bounded_string(const char *s, size_t n) {
        char *clean = utf8_sanitize(s, n, NULL);
        if (clean)
                utf8_truncate(clean, NOTIFY_MAX_STRING);
        return clean;
}

static bool line_has_key(const char *line, size_t len, const char *key, const char **ret_value, size_t *ret_len) {
        size_t k = strlen(key);
        if (len <= k || memcmp(line, key, k) != 0 || line[k] != '=')
                return false;
        *ret_value = line + k + 1;
        *ret_len = len - k - 1;
        return true;
}

static int replace(char **field, const char *v, size_t n) {
        char *s = bounded_string(v, n);
        if (!s)
                return -ENOMEM;
        free(*field);
        *field = s;
        return 0;
}

int notify_message_parse(const char *data, size_t len, NotifyMessage *ret) {
        NotifyMessage m = {};
        const char *p = data, *end = data + len;
        int r = 0;

        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t n = nl ? (size_t) (nl - p) : (size_t) (end - p);
                const char *line = p, *v;
                size_t vn;
                p = nl ? nl + 1 : end;

                if (line_has_key(line, n, "READY", &v, &vn))
                        m.ready = vn == 1 && v[0] == '1';
                else if (line_has_key(line, n, "STOPPING", &v, &vn))
                        m.stopping = vn == 1 && v[0] == '1';
                else if (line_has_key(line, n, "X_TETHER_NOTIFY", &v, &vn))
                        m.from_cli = vn == 1 && v[0] == '1';
                else if (line_has_key(line, n, "STATUS", &v, &vn)) {
                        if ((r = replace(&m.status, v, vn)) < 0)
                                goto fail;
                } else if (line_has_key(line, n, "X_TETHER_MILESTONE", &v, &vn)) {
                        if (vn > 0 && (r = replace(&m.milestone, v, vn)) < 0)
                                goto fail;
                } else if (line_has_key(line, n, "X_TETHER_ATTR", &v, &vn)) {
                        const char *eq = memchr(v, '=', vn);
                        if (!eq || eq == v || m.n_attrs >= NOTIFY_MAX_ATTRS) {
                                m.n_dropped_attrs++;
                                continue;
                        }
                        char *key = bounded_string(v, (size_t) (eq - v));
                        char *value = bounded_string(eq + 1, vn - (size_t) (eq - v) - 1);
                        if (!key || !value) {
                                free(key);
                                free(value);
                                r = -ENOMEM;
                                goto fail;
                        }
                        m.attr_keys[m.n_attrs] = key;
                        m.attr_values[m.n_attrs] = value;
                        m.n_attrs++;
                }
        }

        *ret = m;
        return 0;

fail:
        notify_message_done(&m);
        return r;
}

/* Appends s[0..n) and a newline to a growing buffer. */
static int append_line(char **buf, size_t *len, const char *prefix, const char *s) {
        size_t pn = strlen(prefix), sn = strlen(s);
        char *nb = realloc(*buf, *len + pn + sn + 2);
        if (!nb)
                return -ENOMEM;
        memcpy(nb + *len, prefix, pn);
        memcpy(nb + *len + pn, s, sn);
        *len += pn + sn;
        nb[(*len)++] = '\n';
        nb[*len] = '\0';
        *buf = nb;
        return 0;
}

int notify_format_assignments(char *const *assignments, char **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        int r;

        for (char *const *a = assignments; a && *a; a++) {
                const char *eq = strchr(*a, '=');
                if (!eq || eq == *a || strchr(*a, '\n'))
                        return -EINVAL;
                if ((r = append_line(&buf, &len, "", *a)) < 0)
                        return r;
        }
        if ((r = append_line(&buf, &len, "", "X_TETHER_NOTIFY=1")) < 0)
                return r;
        *ret = TAKE_PTR(buf);
        return 0;
}

int notify_format_milestone(const char *name, char *const *attrs, char **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, n = 0;
        int r;

        if (!name || !*name || strchr(name, '\n'))
                return -EINVAL;
        if ((r = append_line(&buf, &len, "X_TETHER_MILESTONE=", name)) < 0)
                return r;
        for (char *const *a = attrs; a && *a; a++) {
                const char *eq = strchr(*a, '=');
                if (!eq || eq == *a || strchr(*a, '\n') || ++n > NOTIFY_MAX_ATTRS)
                        return -EINVAL;
                if ((r = append_line(&buf, &len, "X_TETHER_ATTR=", *a)) < 0)
                        return r;
        }
        *ret = TAKE_PTR(buf);
        return 0;
}

static int sockaddr_un_set(struct sockaddr_un *sa, const char *path, socklen_t *ret_len) {
        size_t n = strlen(path);
        if (n == 0 || n >= sizeof(sa->sun_path))
                return -EINVAL;
        *sa = (struct sockaddr_un) { .sun_family = AF_UNIX };
        memcpy(sa->sun_path, path, n);
        if (path[0] == '@') {
                sa->sun_path[0] = '\0'; /* abstract namespace: the name is not NUL-terminated */
                *ret_len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + n);
        } else
                *ret_len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + n + 1);
        return 0;
}

int notify_socket_open(const char *path) {
        struct sockaddr_un sa;
        socklen_t sa_len;
        int r;

        if ((r = sockaddr_un_set(&sa, path, &sa_len)) < 0)
                return r;

        if (path[0] != '@') {
                if ((r = mkdir_parents(path, 0755)) < 0)
                        return r;
                if (unlink(path) < 0 && errno != ENOENT)
                        return -errno;
        }

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *) &sa, sa_len) < 0)
                return -errno;
        /* Workloads often drop privileges; sd_notify() must still reach us. */
        if (path[0] != '@' && chmod(path, 0666) < 0)
                return -errno;

        return TAKE_FD(fd);
}

int notify_socket_receive(int fd, char *buf, size_t size) {
        if (size < 2)
                return -EINVAL;

        union {
                struct cmsghdr align;
                uint8_t buf[CMSG_SPACE(sizeof(int) * 16)];
        } control;
        struct iovec iov = { .iov_base = buf, .iov_len = size - 1 };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof(control),
        };

        ssize_t n = RETRY_ON_EINTR(recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC));
        if (n < 0)
                return errno == EWOULDBLOCK ? -EAGAIN : -errno;

        (void) cmsg_take_fds(&mh, NULL, 0);
        if ((size_t) n > size - 1 || (mh.msg_flags & MSG_TRUNC))
                return -EMSGSIZE;
        buf[n] = '\0';
        return (int) n;
}

int notify_send(const char *path, const char *data, size_t len) {
        struct sockaddr_un sa;
        socklen_t sa_len;
        int r;

        if ((r = sockaddr_un_set(&sa, path, &sa_len)) < 0)
                return r;

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        ssize_t n = sendto(fd, data, len, MSG_NOSIGNAL, (struct sockaddr *) &sa, sa_len);
        if (n < 0)
                return -errno;
        if ((size_t) n != len)
                return -EIO;
        return 0;
}
