/* SPDX-License-Identifier: MIT */
/* tetherd: the node-local collector. Everything but option parsing lives in the tetherd-core library. */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "config.h"
#include "jsonlog.h"
#include "macro.h"
#include "server.h"

static void help(void) {
        printf("tetherd [OPTIONS...]\n\n"
               "Collects boot milestones, logs and readiness from tether agents and serves them over HTTP.\n\n"
               "  -h --help                       Show this help\n"
               "     --version                    Show the version\n"
               "     --api-socket PATH            HTTP API Unix socket (default %s, \"\" for none)\n"
               "     --api-port N                 Also serve the API on 127.0.0.1:N\n"
               "     --vsock-port N               Agent port (default %u)\n"
               "     --no-vsock                   Do not listen on AF_VSOCK (hybrid vsock sockets only)\n"
               "     --state-dir DIR              Persist registrations and records (default %s,\n"
               "                                  \"\" keeps everything in memory)\n"
               "     --node-id ID                 This node's id (default: the hostname)\n"
               "     --service-name NAME          Default service name of machines (default tether)\n"
               "     --max-log-bytes-per-boot N   Log bytes kept in memory per boot (default 8 MiB)\n"
               "     --max-boots N                Boots kept per machine (default 4)\n"
               "     --max-machines N             Registered machines (default 4096)\n"
               "     --log-format FORMAT          json, journal or auto (default auto)\n"
               "     --log-level LEVEL            debug, info, warning or error (default info)\n",
               TETHERD_API_SOCKET_DEFAULT,
               TETHER_VSOCK_PORT_DEFAULT,
               TETHERD_STATE_DIR_DEFAULT);
}

static int parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *ret) {
        char *end;
        uint64_t mult = 1;

        if (!s || !*s || *s == '-')
                return -EINVAL;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno != 0 || end == s)
                return -EINVAL;
        if (strcmp(end, "K") == 0 || strcmp(end, "KiB") == 0)
                mult = UINT64_C(1) << 10;
        else if (strcmp(end, "M") == 0 || strcmp(end, "MiB") == 0)
                mult = UINT64_C(1) << 20;
        else if (strcmp(end, "G") == 0 || strcmp(end, "GiB") == 0)
                mult = UINT64_C(1) << 30;
        else if (*end != '\0')
                return -EINVAL;
        if (v > max / mult || v * mult < min || v * mult > max)
                return -ERANGE;
        *ret = v * mult;
        return 0;
}

enum {
        ARG_VERSION = 0x100,
        ARG_API_SOCKET,
        ARG_API_PORT,
        ARG_VSOCK_PORT,
        ARG_NO_VSOCK,
        ARG_STATE_DIR,
        ARG_NODE_ID,
        ARG_SERVICE_NAME,
        ARG_MAX_LOG_BYTES,
        ARG_MAX_BOOTS,
        ARG_MAX_MACHINES,
        ARG_LOG_FORMAT,
        ARG_LOG_LEVEL,
};

static int parse_argv(int argc, char *argv[], ServerConfig *c, LogTarget *log_target, int *log_level) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "api-socket", required_argument, NULL, ARG_API_SOCKET },
                { "api-port", required_argument, NULL, ARG_API_PORT },
                { "vsock-port", required_argument, NULL, ARG_VSOCK_PORT },
                { "no-vsock", no_argument, NULL, ARG_NO_VSOCK },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "node-id", required_argument, NULL, ARG_NODE_ID },
                { "service-name", required_argument, NULL, ARG_SERVICE_NAME },
                { "max-log-bytes-per-boot", required_argument, NULL, ARG_MAX_LOG_BYTES },
                { "max-boots", required_argument, NULL, ARG_MAX_BOOTS },
                { "max-machines", required_argument, NULL, ARG_MAX_MACHINES },
                { "log-format", required_argument, NULL, ARG_LOG_FORMAT },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                {},
        };
        uint64_t v;
        int opt, r;

        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (opt) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("tetherd %s\n", TETHER_VERSION);
                        return 0;
                case ARG_API_SOCKET:
                        c->api_socket = optarg;
                        break;
                case ARG_API_PORT:
                        if (parse_size(optarg, 1, 65535, &v) < 0) {
                                fprintf(stderr, "Invalid --api-port: %s\n", optarg);
                                return -EINVAL;
                        }
                        c->api_port = (uint16_t) v;
                        break;
                case ARG_VSOCK_PORT:
                        if (parse_size(optarg, 1, UINT32_MAX - 1, &v) < 0) {
                                fprintf(stderr, "Invalid --vsock-port: %s\n", optarg);
                                return -EINVAL;
                        }
                        c->vsock_port = (uint32_t) v;
                        break;
                case ARG_NO_VSOCK:
                        c->vsock = false;
                        break;
                case ARG_STATE_DIR:
                        c->state_dir = optarg;
                        break;
                case ARG_NODE_ID:
                        if (!*optarg || strlen(optarg) > 255) {
                                fprintf(stderr, "Invalid --node-id: %s\n", optarg);
                                return -EINVAL;
                        }
                        c->node_id = optarg;
                        break;
                case ARG_SERVICE_NAME:
                        if (!*optarg) {
                                fprintf(stderr, "--service-name must not be empty\n");
                                return -EINVAL;
                        }
                        c->service_name = optarg;
                        break;
                case ARG_MAX_LOG_BYTES:
                        if (parse_size(optarg, 1024, UINT64_C(1) << 40, &v) < 0) {
                                fprintf(stderr, "Invalid --max-log-bytes-per-boot (at least 1024): %s\n", optarg);
                                return -EINVAL;
                        }
                        c->max_log_bytes_per_boot = v;
                        break;
                case ARG_MAX_BOOTS:
                        if (parse_size(optarg, 1, 1024, &v) < 0) {
                                fprintf(stderr, "Invalid --max-boots (1-1024): %s\n", optarg);
                                return -EINVAL;
                        }
                        c->max_boots = (size_t) v;
                        break;
                case ARG_MAX_MACHINES:
                        if (parse_size(optarg, 1, 1000000, &v) < 0) {
                                fprintf(stderr, "Invalid --max-machines (1-1000000): %s\n", optarg);
                                return -EINVAL;
                        }
                        c->max_machines = (size_t) v;
                        break;
                case ARG_LOG_FORMAT:
                        r = log_target_from_string(optarg);
                        if (r < 0) {
                                fprintf(stderr, "Invalid --log-format (json, journal, auto): %s\n", optarg);
                                return -EINVAL;
                        }
                        *log_target = r;
                        break;
                case ARG_LOG_LEVEL:
                        r = log_level_from_string(optarg);
                        if (r < 0) {
                                fprintf(stderr, "Invalid --log-level (debug, info, warning, error): %s\n", optarg);
                                return -EINVAL;
                        }
                        *log_level = r;
                        break;
                case '?':
                        return -EINVAL;
                default:
                        return -EINVAL;
                }

        if (optind < argc) {
                fprintf(stderr, "%s takes no arguments.\n", program_invocation_short_name);
                return -EINVAL;
        }
        return 1;
}

/* One fd per connection plus one per open boot file: the default soft limit of 1024 is too low for
 * thousands of machines. */
static void raise_fd_limit(void) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) >= 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
        }
}

int main(int argc, char *argv[]) {
        ServerConfig config;
        LogTarget log_target = LOG_TARGET_AUTO;
        int log_level = LOG_INFO, r;
        char hostname[256] = "";
        Server *server = NULL;

        server_config_init(&config);
        r = parse_argv(argc, argv, &config, &log_target, &log_level);
        if (r <= 0)
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

        if (!config.node_id) {
                if (gethostname(hostname, sizeof(hostname) - 1) < 0 || !*hostname)
                        snprintf(hostname, sizeof(hostname), "localhost");
                config.node_id = hostname;
        }
        log_setup(log_target, log_level, config.node_id);
        signal(SIGPIPE, SIG_IGN);
        raise_fd_limit();

        r = server_new(&config, &server);
        if (r < 0)
                return EXIT_FAILURE;
        r = server_start(server);
        if (r >= 0)
                r = server_run(server);
        server_free(server);
        log_info("tetherd stopped.");
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
