/* SPDX-License-Identifier: MIT */
#pragma once

/* Cleanup helpers in the style of systemd's macro.h. Destructors accept NULL/-1. */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _noreturn_ __attribute__((noreturn))
#define _likely_(x) (__builtin_expect(!!(x), 1))
#define _unlikely_(x) (__builtin_expect(!!(x), 0))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#define NSEC_PER_SEC UINT64_C(1000000000)
#define NSEC_PER_MSEC UINT64_C(1000000)
#define NSEC_PER_USEC UINT64_C(1000)
#define USEC_PER_SEC UINT64_C(1000000)
#define USEC_PER_MSEC UINT64_C(1000)

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

/* free() that returns NULL, for p = mfree(p). */
static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

/* a + b, or UINT64_MAX when that does not fit: counters fed by guest-supplied numbers never wrap around. */
static inline uint64_t add_sat(uint64_t a, uint64_t b) {
        return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* a * b, or UINT64_MAX when that does not fit. */
static inline uint64_t mul_sat(uint64_t a, uint64_t b) {
        return b != 0 && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

/* Closes fd unless negative, preserves errno; returns -1 so callers can write fd = safe_close(fd). */
static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                close(fd);
                errno = saved;
        }
        return -1;
}

static inline void closep(int *fd) {
        safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Takes ownership: returns the value and resets the variable so cleanup does nothing. */
#define TAKE_PTR(p)                       \
        ({                                \
                __typeof__(p) _tp_ = (p); \
                (p) = NULL;               \
                _tp_;                     \
        })
#define TAKE_FD(fd)              \
        ({                       \
                int _tf_ = (fd); \
                (fd) = -1;       \
                _tf_;            \
        })

/* Declares a cleanup function funcp(type **) calling func(type *). */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func) \
        static inline void func##p(type *p) {   \
                if (*p)                         \
                        *p = func(*p);          \
        }

/* Runs a system call again while it fails with EINTR: a signal arrived before it did anything. Evaluates to the
 * last call's result, with errno as that call left it. */
#define RETRY_ON_EINTR(expr)                        \
        ({                                          \
                __typeof__(expr) _re_;              \
                do                                  \
                        _re_ = (expr);              \
                while (_re_ < 0 && errno == EINTR); \
                _re_;                               \
        })

#define RET_NERRNO(expr)                \
        ({                              \
                int _r_ = (expr);       \
                _r_ < 0 ? -errno : _r_; \
        })

/* errno as a negative value, never 0 (guards against callers that forgot to set errno). */
static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}
