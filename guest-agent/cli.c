/* SPDX-License-Identifier: MIT */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent-config.h"
#include "agent-log.h"
#include "config.h"
#include "fileio.h"
#include "notify.h"

/* Parses "[--socket PATH|--socket=PATH]" at argv[1]; returns the index of the first other argument, or -1. */
static int parse_socket_option(int argc, char *const *argv, const char **ret_socket) {
        const char *socket = getenv("NOTIFY_SOCKET");
        int i = 1;

        if (!socket || !*socket)
                socket = CONFIG_DEFAULT_NOTIFY_SOCKET;

        if (i < argc && strncmp(argv[i], "--socket=", 9) == 0)
                socket = argv[i++] + 9;
        else if (i < argc && strcmp(argv[i], "--socket") == 0) {
                if (i + 1 >= argc) {
                        log_error("--socket needs a path");
                        return -1;
                }
                socket = argv[i + 1];
                i += 2;
        }
        if (i < argc && strcmp(argv[i], "--") == 0)
                i++;
        *ret_socket = socket;
        return i;
}

static int send_message(const char *socket, const char *message) {
        int r = notify_send(socket, message, strlen(message));
        if (r < 0) {
                log_error_errno(r, "Failed to send to the agent's notify socket %s: %m", socket);
                return 1;
        }
        return 0;
}

int cli_notify(int argc, char *const *argv) {
        const char *socket;
        int i = parse_socket_option(argc, argv, &socket);
        if (i < 0)
                return 1;
        if (i >= argc) {
                log_error("usage: tether-agent notify [--socket PATH] KEY=VALUE...");
                return 1;
        }

        _cleanup_free_ char *message = NULL;
        if (notify_format_assignments(argv + i, &message) < 0) {
                log_error("each argument must be KEY=VALUE without newlines");
                return 1;
        }
        return send_message(socket, message);
}

int cli_milestone(int argc, char *const *argv) {
        const char *socket;
        int i = parse_socket_option(argc, argv, &socket);
        if (i < 0)
                return 1;
        if (i >= argc) {
                log_error("usage: tether-agent milestone [--socket PATH] NAME [KEY=VALUE...]");
                return 1;
        }

        _cleanup_free_ char *message = NULL;
        if (notify_format_milestone(argv[i], argv + i + 1, &message) < 0) {
                log_error(
                        "a milestone needs a non-empty NAME and at most %u KEY=VALUE attributes, without newlines",
                        NOTIFY_MAX_ATTRS);
                return 1;
        }
        return send_message(socket, message);
}

static void print(const char *s) {
        (void) write_all(STDOUT_FILENO, s, strlen(s));
}

void cli_help(void) {
        print("tether-agent [OPTIONS] [--] [COMMAND [ARGS...]]\n"
              "tether-agent notify [--socket PATH] KEY=VALUE...\n"
              "tether-agent milestone [--socket PATH] NAME [KEY=VALUE...]\n"
              "\n"
              "Reports boot milestones, workload output, exit and readiness to tetherd.\n"
              "\n"
              "  --mode=init|service        default: init when PID 1\n"
              "  --transport=vsock|unix:PATH\n"
              "  --cid=N --port=N           vsock peer (default 2, 4817)\n"
              "  --config=FILE              default /etc/tether/agent.conf if it exists\n"
              "  --ready=SPEC[,SPEC...]     sd_notify, tcp:[HOST:]PORT, unix:PATH, file:PATH,\n"
              "                             exec-started, exec:CMDLINE (last)\n"
              "  --probe-interval-ms=N      default 100\n"
              "  --probe-timeout-ms=N       default 1000\n"
              "  --replay-bytes=SIZE        default 1M\n"
              "  --log-policy=block|drop    full replay buffer: pause the workload's output, or drop\n"
              "                             the oldest (default block)\n"
              "  --log-stall-timeout-ms=N   block: drop after N ms without an ack, default 5000\n"
              "  --stop-timeout-ms=N        SIGKILL the workload's processes N ms after forwarding SIGTERM or\n"
              "                             SIGINT to them, default 10000 (0: never)\n"
              "  --notify-socket=PATH       default /run/tether/notify\n"
              "  --traceparent-file=PATH    default /run/tether/traceparent, empty: none\n"
              "  --shutdown=poweroff|reboot|exit  init mode, default poweroff (reboot: Firecracker)\n"
              "  --flush-timeout-ms=N       final flush wait, default 1000\n"
              "  --sample-interval-ms=N     resource samples, default 10000 (0: off)\n"
              "  --kmsg / --no-kmsg         follow /dev/kmsg (default: init mode only)\n"
              "  --console                  echo workload output to /dev/console\n"
              "  --modules=PATH[,PATH...]   init mode: kernel modules (.ko) to load first\n"
              "  --verbose                  debug messages\n"
              "  --help, --version\n"
              "\n"
              "Kernel command line (init mode): tether.KEY=VALUE with the keys above\n"
              "(underscores: tether.replay_bytes=), plus tether.exec=\"CMD ARGS\".\n");
}

void cli_version(void) {
        print("tether-agent " TETHER_VERSION "\n");
}
