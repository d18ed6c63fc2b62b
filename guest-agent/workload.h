/* SPDX-License-Identifier: MIT */
#pragma once

/* Starting the workload with its stdout/stderr on pipes, learning whether exec() succeeded (a CLOEXEC pipe:
 * EOF means exec happened, an errno means it failed), and turning wait statuses into exit codes.
 * Never logs. */

#include <stdbool.h>
#include <sys/types.h>

typedef struct Workload {
        pid_t pid;
        int stdout_fd; /* read ends, non-blocking, CLOEXEC */
        int stderr_fd;
        int exec_errno; /* 0: exec succeeded; otherwise the child exits 127 and this says why */
} Workload;

/* Forks and execs argv[0] (searched in $PATH) with envp. With cgroup_procs_fd >= 0 (a cgroup.procs opened for
 * writing) the child moves itself into that cgroup first (best effort). Returns 0 when a child was started
 * (check exec_errno), or -errno if not even that worked. */
int workload_spawn(char *const *argv, char *const *envp, int cgroup_procs_fd, Workload *ret);


/* 126 when the file exists but cannot be executed, 127 when it does not exist. */
int exec_errno_to_exit_code(int error);

/* The exit code convention of shells: the status for a normal exit, 128+signal for a signal death (and the
 * signal in *ret_signal, 0 otherwise). */
int wait_status_to_exit_code(int status, int *ret_signal);

/* A copy of base with every variable named in overrides ("NAME=value") replaced or added. */
int env_override(char *const *base, char *const *overrides, char ***ret);

/* Puts the calling child back into a pristine signal state (empty mask, default dispositions) before exec. */
void reset_signals_for_exec(void);
