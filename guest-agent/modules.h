/* SPDX-License-Identifier: MIT */
#pragma once

/* Loading kernel modules from files, for init mode: a distribution kernel (Debian's cloud kernel) has virtio
 * PCI and vsock as modules, and nothing else would load them before the agent connects. No dependency
 * resolution, no modprobe: the caller gives the .ko files in dependency order. Library code: never logs. */

/* Loads one uncompressed module with finit_module(fd, "", 0). Returns 1 when it was loaded, 0 when a module
 * of that name was already loaded (EEXIST), or -errno (-ENOENT: no such file, -ENOEXEC: not a module, e.g. a
 * compressed one, -EPERM: not allowed, -ENOSYS: no module support). */
int module_load(const char *path);
