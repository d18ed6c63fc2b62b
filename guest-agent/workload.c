/* SPDX-License-Identifier: MIT */
#include "workload.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"
#include "strv.h"

void reset_signals_for_exec(void) {
        sigset_t none;
        sigemptyset(&none);
        /* Ignored dispositions survive exec(); the agent ignores SIGPIPE, the workload must not. */
        struct sigaction dfl = { .sa_handler = SIG_DFL };
        for (int sig = 1; sig < NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        (void) sigaction(sig, &dfl, NULL);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);
}

int exec_errno_to_exit_code(int error) {
        return error == ENOENT || error == ENOTDIR ? 127 : 126;
}

int wait_status_to_exit_code(int status, int *ret_signal) {
        int sig = 0, code;
        if (WIFEXITED(status))
                code = WEXITSTATUS(status);
        else if (WIFSIGNALED(status)) {
                sig = WTERMSIG(status);
                code = 128 + sig;
        } else
                code = 255;
        if (ret_signal)
                *ret_signal = sig;
        return code;
}

static size_t env_name_len(const char *assignment) {
        const char *eq = strchr(assignment, '=');
        return eq ? (size_t) (eq - assignment) : strlen(assignment);
}

int env_override(char *const *base, char *const *overrides, char ***ret) {
        size_t nb = strv_length(base), no = strv_length(overrides), n = 0;
        char **env = calloc(nb + no + 1, sizeof(char *));
        if (!env)
                return -ENOMEM;

        for (size_t i = 0; i < nb; i++) {
                size_t len = env_name_len(base[i]);
                bool replaced = false;
                for (size_t j = 0; j < no && !replaced; j++)
                        replaced = env_name_len(overrides[j]) == len && strncmp(base[i], overrides[j], len) == 0;
                if (replaced)
                        continue;
                if (!(env[n++] = strdup(base[i]))) {
                        strv_free(env);
                        return -ENOMEM;
                }
        }
        for (size_t j = 0; j < no; j++)
                if (!(env[n++] = strdup(overrides[j]))) {
                        strv_free(env);
                        return -ENOMEM;
                }
        *ret = env;
        return 0;
}

static _noreturn_ void child(
        char *const *argv, char *const *envp, int cgroup_procs_fd, int out_w, int err_w, int exec_w) {
        int e;

        /* "0": the writer itself. Before exec, so that everything the workload starts is in the cgroup too. */
        if (cgroup_procs_fd >= 0)
                (void) !write(cgroup_procs_fd, "0", 1);

        /* Its own process group (as tini -g): signals for the workload go to everything it started, and a
         * stop can SIGKILL them all. The parent sets it too, so that it holds before either runs on. */
        (void) setpgid(0, 0);
        /* A workload reading a terminal that is the agent's must be its foreground group, or the reads stop
         * it (SIGTTIN). Taking the terminal from the background raises SIGTTOU: ignored for the call (the
         * dispositions are reset below). */
        if (isatty(STDIN_FILENO)) {
                (void) signal(SIGTTOU, SIG_IGN);
                (void) tcsetpgrp(STDIN_FILENO, getpid());
        }
        /* dup2() gives fresh descriptors without CLOEXEC: only these pipe ends survive exec. */
        if (dup2(out_w, STDOUT_FILENO) < 0 || dup2(err_w, STDERR_FILENO) < 0) {
                e = errno;
                goto fail;
        }
        reset_signals_for_exec();
        execvpe(argv[0], argv, envp);
        e = errno;
fail:
        (void) write_all(exec_w, &e, sizeof(e));
        _exit(127);
}

int workload_spawn(char *const *argv, char *const *envp, int cgroup_procs_fd, Workload *ret) {
        int out[2] = { -1, -1 }, err[2] = { -1, -1 }, ex[2] = { -1, -1 };
        int r;

        if (!argv || !argv[0])
                return -EINVAL;

        if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 || pipe2(ex, O_CLOEXEC) < 0) {
                r = -errno;
                goto fail;
        }

        pid_t pid = fork();
        if (pid < 0) {
                r = -errno;
                goto fail;
        }
        if (pid == 0)
                child(argv, envp, cgroup_procs_fd, out[1], err[1], ex[1]);
        (void) setpgid(pid, pid);

        out[1] = safe_close(out[1]);
        err[1] = safe_close(err[1]);
        ex[1] = safe_close(ex[1]);

        /* Blocks only until the child's exec (EOF) or its failure report: no waiting for the workload. */
        int exec_errno = 0;
        ssize_t k = RETRY_ON_EINTR(read(ex[0], &exec_errno, sizeof(exec_errno)));
        if (k != (ssize_t) sizeof(exec_errno))
                exec_errno = 0;
        ex[0] = safe_close(ex[0]);

        if (fcntl(out[0], F_SETFL, O_NONBLOCK) < 0 || fcntl(err[0], F_SETFL, O_NONBLOCK) < 0) {
                /* The child runs already; blocking pipes would stall the loop, so give up on its output. */
                out[0] = safe_close(out[0]);
                err[0] = safe_close(err[0]);
        }

        *ret = (Workload) {
                .pid = pid,
                .stdout_fd = out[0],
                .stderr_fd = err[0],
                .exec_errno = exec_errno,
        };
        return 0;

fail:
        for (int i = 0; i < 2; i++) {
                safe_close(out[i]);
                safe_close(err[i]);
                safe_close(ex[i]);
        }
        return r;
}
