/* SPDX-License-Identifier: MIT */
/* Container detection: the decision from a stat() result, and the real thing in a new pid namespace. */
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "pidns.h"

static void test_decision_from_stat(void **state) {
        struct stat st = {};

        /* The initial pid namespace's inode is fixed. */
        st.st_ino = (ino_t) PROC_PID_INIT_INO;
        assert_true(pidns_is_initial_from_stat(0, &st));

        /* Any other pid namespace is a container. */
        st.st_ino = (ino_t) 4026532461u;
        assert_false(pidns_is_initial_from_stat(0, &st));
        st.st_ino = (ino_t) (PROC_PID_INIT_INO + 1);
        assert_false(pidns_is_initial_from_stat(0, &st));

        /* No /proc, or no pid namespaces in the kernel: treated as initial, whatever st holds. */
        st.st_ino = (ino_t) 4026532461u;
        assert_true(pidns_is_initial_from_stat(-ENOENT, &st));
        assert_true(pidns_is_initial_from_stat(-EACCES, &st));
}

/* A process in a pid namespace of its own is not in the initial one. Needs CAP_SYS_ADMIN: skipped without. */
static void test_new_pid_namespace_is_not_initial(void **state) {
        pid_t child = fork();
        assert_true(child >= 0);
        if (child == 0) {
                /* 2: could not unshare; else the grandchild's answer (0/1). */
                if (unshare(CLONE_NEWPID) < 0)
                        _exit(2);
                pid_t inner = fork();
                if (inner < 0)
                        _exit(3);
                if (inner == 0)
                        _exit(pidns_is_initial() ? 1 : 0);
                int status;
                if (waitpid(inner, &status, 0) != inner || !WIFEXITED(status))
                        _exit(4);
                _exit(WEXITSTATUS(status));
        }

        int status;
        assert_int_equal(waitpid(child, &status, 0), child);
        assert_true(WIFEXITED(status));
        if (WEXITSTATUS(status) == 2)
                skip();
        assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_decision_from_stat),
                cmocka_unit_test(test_new_pid_namespace_is_not_initial),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
