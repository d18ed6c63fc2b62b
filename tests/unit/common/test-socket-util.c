/* SPDX-License-Identifier: MIT */
/* mkdir_parents() and unix_stream_listen(): the listening sockets tetherd creates for its API and for every
 * machine registered with a hybrid-vsock path. */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "fs-util.h"
#include "macro.h"
#include "socket-util.h"

static char dir[] = "/tmp/tether-test-socket-util.XXXXXX";

static int setup(void **state) {
        return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
        char cmd[PATH_MAX + 16];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        return system(cmd) == 0 ? 0 : -1;
}

static void test_mkdir_parents(void **state) {
        char path[PATH_MAX], sub[PATH_MAX];
        struct stat st;

        snprintf(path, sizeof(path), "%s/a/b/c/file", dir);
        assert_int_equal(mkdir_parents(path, 0700), 0);
        snprintf(sub, sizeof(sub), "%s/a/b/c", dir);
        assert_int_equal(stat(sub, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(st.st_mode & 0777, 0700);
        /* The last component is the file's own name: not created. */
        assert_int_equal(stat(path, &st), -1);
        /* Existing directories are fine. */
        assert_int_equal(mkdir_parents(path, 0700), 0);

        /* A regular file where a directory should be. */
        snprintf(path, sizeof(path), "%s/plain", dir);
        int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        close(fd);
        snprintf(path, sizeof(path), "%s/plain/x/y", dir);
        assert_int_equal(mkdir_parents(path, 0755), -ENOTDIR);

        assert_int_equal(mkdir_parents("relative-name", 0755), 0);
}

static void test_listen_connect_and_mode(void **state) {
        char path[PATH_MAX];
        struct stat st;

        snprintf(path, sizeof(path), "%s/run/vm_4817", dir);
        _cleanup_close_ int fd = unix_stream_listen(path, 0660);
        assert_true(fd >= 0);
        assert_int_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
        assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
        assert_int_equal(lstat(path, &st), 0);
        assert_true(S_ISSOCK(st.st_mode));
        assert_int_equal(st.st_mode & 0777, 0660);

        _cleanup_close_ int c = unix_stream_connect(path);
        assert_true(c >= 0);
        assert_int_equal(fcntl(c, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
        assert_false(fcntl(c, F_GETFL) & O_NONBLOCK);
        _cleanup_close_ int a = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        assert_true(a >= 0);

        snprintf(path, sizeof(path), "%s/run/nobody-listens", dir);
        assert_int_equal(unix_stream_connect(path), -ENOENT);
}

static void test_stale_socket_replaced(void **state) {
        char path[PATH_MAX];

        snprintf(path, sizeof(path), "%s/stale_4817", dir);
        int first = unix_stream_listen(path, 0);
        assert_true(first >= 0);
        close(first); /* the socket file stays: a previous run that died */

        _cleanup_close_ int second = unix_stream_listen(path, 0);
        assert_true(second >= 0);
}

static void test_refuses_other_files_and_long_paths(void **state) {
        char path[PATH_MAX];
        struct stat st;

        snprintf(path, sizeof(path), "%s/not-a-socket", dir);
        int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(unix_stream_listen(path, 0), -EEXIST);
        assert_int_equal(lstat(path, &st), 0);
        assert_true(S_ISREG(st.st_mode)); /* not ours to delete */

        char longpath[sizeof(((struct sockaddr_un *) NULL)->sun_path) + 8];
        memset(longpath, 'x', sizeof(longpath) - 1);
        longpath[0] = '/';
        longpath[sizeof(longpath) - 1] = '\0';
        assert_int_equal(unix_stream_listen(longpath, 0), -ENAMETOOLONG);
        assert_int_equal(unix_stream_listen("", 0), -ENAMETOOLONG);
        assert_int_equal(unix_stream_connect(longpath), -ENAMETOOLONG);
}

/* A path an untrusted client chose: no symbolic link on the way, parents created 0711, and only the socket
 * that was bound is ever removed. */
static void test_untrusted_paths(void **state) {
        char path[PATH_MAX], target[PATH_MAX], link[PATH_MAX];
        struct stat st, bound;

        snprintf(target, sizeof(target), "%s/elsewhere", dir);
        assert_int_equal(mkdir(target, 0700), 0);
        snprintf(link, sizeof(link), "%s/link", dir);
        assert_int_equal(symlink(target, link), 0);
        snprintf(path, sizeof(path), "%s/link/sub/vm_4817", dir);
        assert_int_equal(unix_stream_listen_full(path, 0, UNIX_LISTEN_NO_SYMLINKS, (uid_t) -1, NULL), -ELOOP);
        snprintf(path, sizeof(path), "%s/elsewhere/sub", dir);
        assert_int_equal(lstat(path, &st), -1); /* nothing was created behind the link */
        /* Trusted paths may go through links (the API socket an administrator chose). */
        snprintf(path, sizeof(path), "%s/link/api.sock", dir);
        _cleanup_close_ int trusted = unix_stream_listen(path, 0);
        assert_true(trusted >= 0);

        snprintf(path, sizeof(path), "%s/made/for/vm_4817", dir);
        _cleanup_close_ int fd = unix_stream_listen_full(path, 0, UNIX_LISTEN_NO_SYMLINKS, (uid_t) -1, &bound);
        assert_true(fd >= 0);
        snprintf(target, sizeof(target), "%s/made/for", dir);
        assert_int_equal(stat(target, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0711);

        /* Replaced by somebody else's file: not removed. */
        assert_int_equal(unlink(path), 0);
        int f = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        assert_true(f >= 0);
        close(f);
        assert_int_equal(unix_socket_unlink(path, &bound), 0);
        assert_int_equal(lstat(path, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(unlink(path), 0);

        /* Still the one bound: removed. */
        _cleanup_close_ int fd2 = unix_stream_listen_full(path, 0, UNIX_LISTEN_NO_SYMLINKS, (uid_t) -1, &bound);
        assert_true(fd2 >= 0);
        assert_int_equal(unix_socket_unlink(path, &bound), 1);
        assert_int_equal(lstat(path, &st), -1);

        /* A dead socket another user made is theirs, not stale: never replaced. */
        int dead = unix_stream_listen(path, 0);
        assert_true(dead >= 0);
        close(dead);
        if (geteuid() == 0) {
                assert_int_equal(lchown(path, 65534, 65534), 0);
                assert_int_equal(unix_stream_listen(path, 0), -EEXIST);
                assert_int_equal(lstat(path, &st), 0);
                assert_true(S_ISSOCK(st.st_mode));
                /* Unless that is the owner the caller gives its socket there. */
                _cleanup_close_ int again = unix_stream_listen_full(path, 0, UNIX_LISTEN_NO_SYMLINKS, 65534, NULL);
                assert_true(again >= 0);
        }
        /* One somebody listens on is not stale either. */
        assert_int_equal(unlink(path), 0);
        _cleanup_close_ int live = unix_stream_listen(path, 0);
        assert_true(live >= 0);
        assert_int_equal(unix_stream_listen(path, 0), -EADDRINUSE);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_mkdir_parents),
                cmocka_unit_test(test_untrusted_paths),
                cmocka_unit_test(test_listen_connect_and_mode),
                cmocka_unit_test(test_stale_socket_replaced),
                cmocka_unit_test(test_refuses_other_files_and_long_paths),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
