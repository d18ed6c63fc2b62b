/* SPDX-License-Identifier: MIT */
/* module_load()'s failures. Nothing here can load a module: the files are missing or not modules. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "modules.h"

static void test_missing_file(void **state) {
        assert_int_equal(module_load("/nonexistent/tether-test/virtio.ko"), -ENOENT);
}

static void test_not_a_module(void **state) {
        char path[] = "/tmp/tether-test-module-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        /* What a .ko.xz starts with: the kernel must refuse it (ENOEXEC as root, EPERM without
         * CAP_SYS_MODULE), and it is never taken for "already loaded". */
        static const char xz[] =
                "\xfd"
                "7zXZ\0\0\4\xe6\xd6\xb4\x46";
        assert_int_equal(write(fd, xz, sizeof(xz)), (ssize_t) sizeof(xz));
        close(fd);

        int r = module_load(path);
        assert_true(r < 0);
        assert_int_not_equal(r, -ENOENT);
        unlink(path);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_missing_file),
                cmocka_unit_test(test_not_a_module),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
