/* SPDX-License-Identifier: MIT */
#include "init.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdbool.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent-log.h"
#include "macro.h"

typedef struct MountPoint {
        const char *source, *target, *type, *options;
        unsigned long flags;
        bool always; /* mount even if something is there already */
} MountPoint;

static const MountPoint mount_table[] = {
        { "proc", "/proc", "proc", NULL, MS_NOSUID | MS_NODEV | MS_NOEXEC, true },
        { "sysfs", "/sys", "sysfs", NULL, MS_NOSUID | MS_NODEV | MS_NOEXEC, false },
        { "devtmpfs", "/dev", "devtmpfs", "mode=0755", MS_NOSUID, false },
        { "devpts", "/dev/pts", "devpts", "mode=0620,ptmxmode=0666", MS_NOSUID | MS_NOEXEC, false },
        { "tmpfs", "/dev/shm", "tmpfs", "mode=1777", MS_NOSUID | MS_NODEV, false },
        { "tmpfs", "/run", "tmpfs", "mode=0755", MS_NOSUID | MS_NODEV, false },
};

/* A mount point is a directory on another device than its parent (or the root). */
static bool is_mount_point(const char *path) {
        struct stat st, parent;
        char up[64];

        if (stat(path, &st) < 0)
                return false;
        size_t n = strlen(path);
        if (n + 4 > sizeof(up))
                return false;
        memcpy(up, path, n);
        memcpy(up + n, "/..", 4);
        if (stat(up, &parent) < 0)
                return false;
        return st.st_dev != parent.st_dev || st.st_ino == parent.st_ino;
}

int init_workload_cgroup(void) {
        static const char root[] = "/sys/fs/cgroup";
        int fd;

        (void) mkdir(root, 0755);
        if (!is_mount_point(root) && mount("cgroup2", root, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
                return -errno;
        fd = open("/sys/fs/cgroup/cgroup.subtree_control", O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        int r = write(fd, "+memory", 7) < 0 ? -errno : 0;
        close(fd);
        if (r < 0)
                return r;
        if (mkdir("/sys/fs/cgroup" INIT_WORKLOAD_CGROUP, 0755) < 0 && errno != EEXIST)
                return -errno;
        fd = open("/sys/fs/cgroup" INIT_WORKLOAD_CGROUP "/cgroup.procs", O_WRONLY | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

unsigned init_mount_api_filesystems(void) {
        unsigned failed = 0;

        for (size_t i = 0; i < ELEMENTSOF(mount_table); i++) {
                const MountPoint *m = &mount_table[i];

                if (mkdir(m->target, 0755) < 0 && errno != EEXIST) {
                        log_warning_errno(errno, "Failed to create %s: %m", m->target);
                        failed++;
                        continue;
                }
                if (!m->always && is_mount_point(m->target))
                        continue;
                if (mount(m->source, m->target, m->type, m->flags, m->options) < 0 && errno != EBUSY) {
                        log_warning_errno(errno, "Failed to mount %s on %s: %m", m->type, m->target);
                        failed++;
                }
        }
        return failed;
}

void init_ensure_std_fds(void) {
        for (int fd = 0; fd <= 2; fd++) {
                if (fcntl(fd, F_GETFD) >= 0)
                        continue;
                /* Lower fds are taken first, so this lands on fd (no CLOEXEC: the workload inherits it). */
                int k = open("/dev/console", O_RDWR | O_NOCTTY);
                if (k < 0)
                        k = open("/dev/null", O_RDWR | O_NOCTTY);
                if (k >= 0 && k != fd) {
                        (void) dup2(k, fd);
                        close(k);
                }
        }
}

void init_poweroff(bool restart) {
        sync();
        (void) reboot(restart ? RB_AUTOBOOT : RB_POWER_OFF);
        log_error_errno(errno, "Failed to %s: %m; halting", restart ? "reboot" : "power off");
        (void) reboot(RB_HALT_SYSTEM);
        for (;;)
                pause();
}

int init_loopback_up(void) {
        struct ifreq ifr = {};
        _cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return -errno;
        strncpy(ifr.ifr_name, "lo", sizeof(ifr.ifr_name) - 1);
        if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
                return -errno;
        if (ifr.ifr_flags & IFF_UP)
                return 0;
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
                return -errno;
        return 1;
}
