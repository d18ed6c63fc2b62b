/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent-config.h"
#include "agent-log.h"
#include "agent.h"
#include "cli.h"
#include "fileio.h"
#include "format.h"
#include "init.h"
#include "modules.h"
#include "time-util.h"

#define CONFIG_FILE_MAX (64u * 1024u)
#define KERNEL_CMDLINE_MAX (64u * 1024u)

/* Before the configuration could be read, this is all that says how a failed init should end. */
static bool argv_says_shutdown_exit(int argc, char *const *argv) {
        for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
                if (strcmp(argv[i], "--shutdown=exit") == 0 ||
                    (strcmp(argv[i], "--shutdown") == 0 && i + 1 < argc && strcmp(argv[i + 1], "exit") == 0))
                        return true;
        return false;
}

/* In init mode nothing may leave the machine hanging: power off, or exit under --shutdown=exit. Powering
 * off is only ever attempted by PID 1 (a PID 1 in a PID namespace just ends its namespace). */
static int finish_init(ShutdownAction action, int code) {
        if (action != SHUTDOWN_EXIT && getpid() == 1) {
                log_info(action == SHUTDOWN_REBOOT ? "rebooting (shutdown=reboot)" : "powering off");
                init_poweroff(action == SHUTDOWN_REBOOT);
        }
        return code;
}

/* Init mode: loads the configured kernel modules in order, before the transport needs vsock. A failure is
 * logged and counted, never fatal: the driver may be built in, or the workload may not need it. */
static void load_modules(char *const *modules, AgentTimes *times) {
        uint64_t start = now_ns(CLOCK_BOOTTIME);

        for (size_t i = 0; modules[i]; i++) {
                int r = module_load(modules[i]);
                times->modules_count++;
                if (r < 0) {
                        times->modules_failed++;
                        log_warning_errno(r, "Failed to load kernel module %s: %m", modules[i]);
                } else
                        log_debug("kernel module %s %s", modules[i], r > 0 ? "loaded" : "was already loaded");
        }
        times->modules_done_ns = now_ns(CLOCK_BOOTTIME);
        log_info(
                "kernel modules: %u of %u loaded in %llu ms",
                times->modules_count - times->modules_failed,
                times->modules_count,
                (unsigned long long) ((times->modules_done_ns - start) / NSEC_PER_MSEC));
}

int main(int argc, char *argv[]) {
        AgentTimes times = { .init_start_ns = now_ns(CLOCK_BOOTTIME) };
        bool is_pid1 = getpid() == 1;
        _cleanup_free_ char *file_text = NULL, *cmdline = NULL;
        ConfigArgs args = {};
        AgentConfig config;
        ConfigError err = {};
        int r;

        config_init(&config);

        if (!is_pid1 && argc >= 2) {
                if (strcmp(argv[1], "notify") == 0)
                        return cli_notify(argc - 1, argv + 1);
                if (strcmp(argv[1], "milestone") == 0)
                        return cli_milestone(argc - 1, argv + 1);
        }

        r = config_args_parse(argc, argv, &args, &err);
        if (r >= 0 && args.help) {
                cli_help();
                goto done;
        }
        if (r >= 0 && args.version) {
                cli_version();
                goto done;
        }

        const char *path = args.config_file ?: CONFIG_DEFAULT_FILE;
        if (r >= 0) {
                r = read_full_file(path, CONFIG_FILE_MAX, &file_text, NULL);
                if (r == -ENOENT && !args.config_file)
                        r = 0;
                else if (r < 0)
                        format(err.text, sizeof(err.text), "cannot read configuration file %s: %s", path, strerror(-r));
        }

        /* A first pass only to learn the mode: init mode reads the kernel command line, which needs /proc. */
        if (r >= 0)
                r = config_load(&config, &args, file_text, path, NULL, is_pid1, &err);

        AgentMode mode = r >= 0 ? config.mode : is_pid1 ? AGENT_MODE_INIT : AGENT_MODE_SERVICE;
        if (mode == AGENT_MODE_INIT) {
                times.mount_failures = init_mount_api_filesystems();
                times.mounts_done_ns = now_ns(CLOCK_BOOTTIME);
                init_ensure_std_fds();
                int lo = init_loopback_up();
                if (lo < 0)
                        log_warning_errno(lo, "Failed to bring up the loopback interface: %m");

                if (r >= 0) {
                        int k = read_full_file("/proc/cmdline", KERNEL_CMDLINE_MAX, &cmdline, NULL);
                        if (k < 0)
                                log_warning_errno(k, "Failed to read /proc/cmdline: %m");
                        config_done(&config);
                        r = config_load(&config, &args, file_text, path, cmdline, is_pid1, &err);
                }
        }

        if (r < 0) {
                if (r == -ENOMEM)
                        log_error("out of memory reading the configuration");
                else
                        log_error("%s", err.text);
                if (mode != AGENT_MODE_INIT) {
                        r = 1;
                        goto done;
                }
                ShutdownAction action = argv_says_shutdown_exit(argc, argv) || config.shutdown == SHUTDOWN_EXIT ?
                        SHUTDOWN_EXIT :
                        SHUTDOWN_POWEROFF;
                r = finish_init(action, 1);
                goto done;
        }

        if (config.verbose)
                log_set_max_level(LOG_DEBUG);
        if (config.mode == AGENT_MODE_INIT) {
                /* The kernel starts init with no PATH at all. */
                (void) setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 0);
                if (config.modules)
                        load_modules(config.modules, &times);
        }

        int code = 1;
        r = agent_run(&config, &times, agent_plugin, &code);
        if (r < 0)
                code = 1;
        r = config.mode == AGENT_MODE_INIT ? finish_init(config.shutdown, code) : code;

done:
        config_args_done(&args);
        config_done(&config);
        return r;
}
