/* SPDX-License-Identifier: MIT */
#include "pidns.h"

#include <errno.h>

bool pidns_is_initial_from_stat(int stat_result, const struct stat *st) {
        if (stat_result < 0)
                return true;
        return (uint64_t) st->st_ino == PROC_PID_INIT_INO;
}

bool pidns_is_initial(void) {
        struct stat st;
        int r = stat(PIDNS_SELF_PATH, &st) < 0 ? -errno : 0;

        return pidns_is_initial_from_stat(r, &st);
}
