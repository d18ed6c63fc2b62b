/* SPDX-License-Identifier: MIT */
/* tetherd: the node-local collector. main: options and process-wide setup (curl, libvirt events), then the daemon. */

#include <curl/curl.h>
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
#include "otlp-env.h"
#include "server.h"

static void help(void) {
        printf("tetherd [OPTIONS...]\n\n"
               "Collects boot milestones, logs and readiness from tether agents and serves them over HTTP.\n\n"
               "  -h --help                       Show this help\n"
               "     --version                    Show the version\n"
               "     --api-socket PATH            HTTP API Unix socket (default %s, \"\" for none)\n"
               "     --api-port N                 Also serve the API on 127.0.0.1:N\n"
               "     --api-max-connections N      Per API socket; beyond, new clients get 503 (default 4096)\n"
               "     --api-request-timeout-ms N   A request's headers and body must arrive within this\n"
               "                                  (default 10000); slower clients are disconnected\n"
               "     --metrics-per-machine        /metrics also has each machine's latest resource sample\n"
               "                                  (tether_guest_*: up to 18 series a machine; default off)\n"
               "     --vsock-port N               Agent port (default %u)\n"
               "     --no-vsock                   Do not listen on AF_VSOCK (hybrid vsock sockets only)\n"
               "     --vmm-notify-port N          systemd's own notifications, for guests without an agent\n"
               "                                  (vmm.notify_socket; default %u, 0 for none)\n"
               "     --state-dir DIR              Persist registrations and records (default %s,\n"
               "                                  \"\" keeps everything in memory)\n"
               "     --node-id ID                 This node's id (default: the hostname)\n"
               "     --service-name NAME          Default service name of machines (default tether)\n"
               "     --log-memory-bytes N         Log data kept in memory, all boots together (default\n"
               "                                  32 MiB; with a state dir 16 MiB, the rest read from the files)\n"
               "     --max-log-bytes-per-boot N   A boot's share of it at most (default 8 MiB)\n"
               "     --unwritten-memory-bytes N   Copies of records a failed write kept out of boot files,\n"
               "                                  all boots together, written once the disk takes them\n"
               "                                  (default 32 MiB, at most 1 MiB per boot; 0: the agents\n"
               "                                  resend them instead)\n"
               "     --max-boot-file-bytes N      Bound of a boot's file in the state dir (default 1 GiB)\n"
               "     --max-boots N                Boots kept per machine (default 4)\n"
               "     --max-machines N             Registered machines (default 4096)\n"
               "     --max-events N               Events kept for /v1/events (default 4096)\n"
               "     --max-event-bytes N          ... and their bytes (default 8 MiB); the machine holding\n"
               "                                  the most gives up its oldest first\n"
               "     --log-format FORMAT          json, journal or auto (default auto)\n"
               "     --log-level LEVEL            debug, info, warning or error (default info)\n"
               "     --uds-root DIR               Machine sockets (uds_path) only below DIR (repeatable;\n"
               "                                  default: anywhere tetherd can write)\n"
               "     --libvirt-uri URI            Watch libvirt domains (e.g. qemu:///system): register those\n"
               "                                  with a vsock device or tether metadata (docs/libvirt.md)\n"
               "     --otlp=on|off                OpenTelemetry export (default on)\n"
               "     --otlp-endpoint URL          OTLP/HTTP base URL (e.g. http://127.0.0.1:4318)\n"
               "     --otlp-traces-endpoint URL   Full URL for traces (default <endpoint>/v1/traces)\n"
               "     --otlp-logs-endpoint URL     Full URL for logs (default <endpoint>/v1/logs)\n"
               "     --otlp-metrics-endpoint URL  Full URL for metrics (default <endpoint>/v1/metrics)\n"
               "     --otlp-metrics-interval-ms N tetherd's own metrics every N ms (default 30000, 0: off)\n"
               "     --otlp-header NAME=VALUE     Extra request header (repeatable)\n"
               "     --otlp-compression gzip|none Request body encoding (default gzip)\n"
               "     --otlp-queue-bytes N         In-memory queue per signal (default 4 MiB)\n"
               "     --otlp-spool-dir DIR         Spool while the backend is down (default\n"
               "                                  <state-dir>/otlp-spool, \"\" for none)\n"
               "     --otlp-spool-bytes N         Spool bound (default 256 MiB)\n"
               "     --otlp-file PATH             OTLP/JSON lines when no endpoint is set (default\n"
               "                                  <state-dir>/otlp.jsonl, \"\" for none)\n"
               "     --otlp-file-max-bytes N      Rotate the file to PATH.1 beyond this (default 64 MiB)\n"
               "     --otlp-batch-delay-ms N      Longest wait before a batch goes out (default 1000)\n"
               "     --otlp-retry-max-ms N        Longest backoff between retries (default 5000)\n"
               "\nOTEL_EXPORTER_OTLP_ENDPOINT, _TRACES_ENDPOINT, _LOGS_ENDPOINT, _METRICS_ENDPOINT, _HEADERS,\n"
               "_COMPRESSION, _TIMEOUT and _PROTOCOL (http/protobuf only) apply too; the options above override them.\n",
               TETHERD_API_SOCKET_DEFAULT,
               TETHER_VSOCK_PORT_DEFAULT,
               TETHER_NOTIFY_PORT_DEFAULT,
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
        ARG_VMM_NOTIFY_PORT,
        ARG_NO_VSOCK,
        ARG_STATE_DIR,
        ARG_NODE_ID,
        ARG_SERVICE_NAME,
        ARG_MAX_LOG_BYTES,
        ARG_LOG_MEMORY_BYTES,
        ARG_UNWRITTEN_MEMORY_BYTES,
        ARG_MAX_BOOT_FILE_BYTES,
        ARG_MAX_BOOTS,
        ARG_MAX_MACHINES,
        ARG_API_MAX_CONNECTIONS,
        ARG_UDS_ROOT,
        ARG_MAX_EVENTS,
        ARG_MAX_EVENT_BYTES,
        ARG_API_REQUEST_TIMEOUT,
        ARG_METRICS_PER_MACHINE,
        ARG_LOG_FORMAT,
        ARG_LOG_LEVEL,
        ARG_OTLP,
        ARG_OTLP_ENDPOINT,
        ARG_OTLP_TRACES_ENDPOINT,
        ARG_OTLP_LOGS_ENDPOINT,
        ARG_OTLP_METRICS_ENDPOINT,
        ARG_OTLP_METRICS_INTERVAL,
        ARG_OTLP_HEADER,
        ARG_OTLP_COMPRESSION,
        ARG_OTLP_QUEUE_BYTES,
        ARG_OTLP_SPOOL_DIR,
        ARG_OTLP_SPOOL_BYTES,
        ARG_OTLP_FILE,
        ARG_OTLP_FILE_MAX_BYTES,
        ARG_OTLP_BATCH_DELAY,
        ARG_OTLP_RETRY_MAX,
        ARG_LIBVIRT_URI,
};

#define OTLP_HEADERS_MAX 32u
static const char *otlp_headers[OTLP_HEADERS_MAX];

#define UDS_ROOTS_MAX 32u
static const char *uds_roots[UDS_ROOTS_MAX + 1];
static unsigned n_uds_roots;

static bool is_http_url(const char *s) {
        return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
}

static int parse_argv(int argc, char *argv[], ServerConfig *c, LogTarget *log_target, int *log_level) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "api-socket", required_argument, NULL, ARG_API_SOCKET },
                { "api-port", required_argument, NULL, ARG_API_PORT },
                { "api-max-connections", required_argument, NULL, ARG_API_MAX_CONNECTIONS },
                { "api-request-timeout-ms", required_argument, NULL, ARG_API_REQUEST_TIMEOUT },
                { "metrics-per-machine", no_argument, NULL, ARG_METRICS_PER_MACHINE },
                { "vsock-port", required_argument, NULL, ARG_VSOCK_PORT },
                { "vmm-notify-port", required_argument, NULL, ARG_VMM_NOTIFY_PORT },
                { "no-vsock", no_argument, NULL, ARG_NO_VSOCK },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "node-id", required_argument, NULL, ARG_NODE_ID },
                { "service-name", required_argument, NULL, ARG_SERVICE_NAME },
                { "max-log-bytes-per-boot", required_argument, NULL, ARG_MAX_LOG_BYTES },
                { "log-memory-bytes", required_argument, NULL, ARG_LOG_MEMORY_BYTES },
                { "unwritten-memory-bytes", required_argument, NULL, ARG_UNWRITTEN_MEMORY_BYTES },
                { "max-boot-file-bytes", required_argument, NULL, ARG_MAX_BOOT_FILE_BYTES },
                { "max-boots", required_argument, NULL, ARG_MAX_BOOTS },
                { "max-machines", required_argument, NULL, ARG_MAX_MACHINES },
                { "max-events", required_argument, NULL, ARG_MAX_EVENTS },
                { "max-event-bytes", required_argument, NULL, ARG_MAX_EVENT_BYTES },
                { "log-format", required_argument, NULL, ARG_LOG_FORMAT },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                { "otlp", required_argument, NULL, ARG_OTLP },
                { "otlp-endpoint", required_argument, NULL, ARG_OTLP_ENDPOINT },
                { "otlp-traces-endpoint", required_argument, NULL, ARG_OTLP_TRACES_ENDPOINT },
                { "otlp-logs-endpoint", required_argument, NULL, ARG_OTLP_LOGS_ENDPOINT },
                { "otlp-metrics-endpoint", required_argument, NULL, ARG_OTLP_METRICS_ENDPOINT },
                { "otlp-metrics-interval-ms", required_argument, NULL, ARG_OTLP_METRICS_INTERVAL },
                { "otlp-header", required_argument, NULL, ARG_OTLP_HEADER },
                { "otlp-compression", required_argument, NULL, ARG_OTLP_COMPRESSION },
                { "otlp-queue-bytes", required_argument, NULL, ARG_OTLP_QUEUE_BYTES },
                { "otlp-spool-dir", required_argument, NULL, ARG_OTLP_SPOOL_DIR },
                { "otlp-spool-bytes", required_argument, NULL, ARG_OTLP_SPOOL_BYTES },
                { "otlp-file", required_argument, NULL, ARG_OTLP_FILE },
                { "otlp-file-max-bytes", required_argument, NULL, ARG_OTLP_FILE_MAX_BYTES },
                { "otlp-batch-delay-ms", required_argument, NULL, ARG_OTLP_BATCH_DELAY },
                { "otlp-retry-max-ms", required_argument, NULL, ARG_OTLP_RETRY_MAX },
                { "libvirt-uri", required_argument, NULL, ARG_LIBVIRT_URI },
                { "uds-root", required_argument, NULL, ARG_UDS_ROOT },
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
                case ARG_API_MAX_CONNECTIONS:
                        if (parse_size(optarg, 1, 1000000, &v) < 0) {
                                fprintf(stderr, "Invalid --api-max-connections (1-1000000): %s\n", optarg);
                                return -EINVAL;
                        }
                        c->api_config.max_connections = (unsigned) v;
                        break;
                case ARG_METRICS_PER_MACHINE:
                        c->api_config.metrics_per_machine = true;
                        break;
                case ARG_API_REQUEST_TIMEOUT:
                        if (parse_size(optarg, 100, 3600 * 1000, &v) < 0) {
                                fprintf(stderr, "Invalid --api-request-timeout-ms (100-3600000): %s\n", optarg);
                                return -EINVAL;
                        }
                        c->api_config.request_timeout_ns = v * NSEC_PER_MSEC;
                        break;
                case ARG_VSOCK_PORT:
                        if (parse_size(optarg, 1, UINT32_MAX - 1, &v) < 0) {
                                fprintf(stderr, "Invalid --vsock-port: %s\n", optarg);
                                return -EINVAL;
                        }
                        c->vsock_port = (uint32_t) v;
                        break;
                case ARG_VMM_NOTIFY_PORT:
                        if (parse_size(optarg, 0, UINT32_MAX - 1, &v) < 0) {
                                fprintf(stderr, "Invalid --vmm-notify-port: %s\n", optarg);
                                return -EINVAL;
                        }
                        c->notify_port = (uint32_t) v;
                        break;
                case ARG_NO_VSOCK:
                        c->vsock = false;
                        break;
                case ARG_UDS_ROOT:
                        if (optarg[0] != '/' || n_uds_roots >= UDS_ROOTS_MAX) {
                                fprintf(stderr,
                                        "Invalid --uds-root (an absolute path, at most %u): %s\n",
                                        UDS_ROOTS_MAX,
                                        optarg);
                                return -EINVAL;
                        }
                        uds_roots[n_uds_roots++] = optarg;
                        c->uds_roots = uds_roots;
                        break;
                case ARG_LIBVIRT_URI:
#if HAVE_LIBVIRT
                        if (!*optarg || strlen(optarg) > 1024) {
                                fprintf(stderr, "Invalid --libvirt-uri: %s\n", optarg);
                                return -EINVAL;
                        }
                        c->libvirt_uri = optarg;
                        break;
#else
                        fprintf(stderr,
                                "--libvirt-uri is not supported: this tetherd was built without libvirt "
                                "(meson -Dlibvirt=enabled, needs libvirt-dev and libxml2-dev).\n");
                        return -EOPNOTSUPP;
#endif
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
                case ARG_LOG_MEMORY_BYTES:
                        if (parse_size(optarg, 64 * 1024, UINT64_C(1) << 40, &v) < 0) {
                                fprintf(stderr, "Invalid --log-memory-bytes (at least 64K): %s\n", optarg);
                                return -EINVAL;
                        }
                        c->log_memory_bytes = v;
                        break;
                case ARG_UNWRITTEN_MEMORY_BYTES:
                        if (parse_size(optarg, 0, UINT64_C(1) << 40, &v) < 0) {
                                fprintf(stderr, "Invalid --unwritten-memory-bytes: %s\n", optarg);
                                return -EINVAL;
                        }
                        c->unwritten_memory_bytes = v;
                        break;
                case ARG_MAX_BOOT_FILE_BYTES:
                        if (parse_size(optarg, 64 * 1024, UINT64_C(1) << 50, &v) < 0) {
                                fprintf(stderr, "Invalid --max-boot-file-bytes (at least 64K): %s\n", optarg);
                                return -EINVAL;
                        }
                        c->max_disk_bytes_per_boot = v;
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
                case ARG_MAX_EVENTS:
                        if (parse_size(optarg, 16, 10000000, &v) < 0) {
                                fprintf(stderr, "Invalid --max-events (16-10000000): %s\n", optarg);
                                return -EINVAL;
                        }
                        c->max_events = (size_t) v;
                        break;
                case ARG_MAX_EVENT_BYTES:
                        if (parse_size(optarg, 64 * 1024, UINT64_C(1) << 34, &v) < 0) {
                                fprintf(stderr, "Invalid --max-event-bytes (64K-16G): %s\n", optarg);
                                return -EINVAL;
                        }
                        c->max_event_bytes = (size_t) v;
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
                case ARG_OTLP:
                        if (strcmp(optarg, "off") == 0 || strcmp(optarg, "no") == 0 || strcmp(optarg, "false") == 0)
                                c->otlp = false;
                        else if (strcmp(optarg, "on") == 0 || strcmp(optarg, "yes") == 0 || strcmp(optarg, "true") == 0)
                                c->otlp = true;
                        else {
                                fprintf(stderr, "Invalid --otlp (on, off): %s\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_OTLP_ENDPOINT:
                case ARG_OTLP_TRACES_ENDPOINT:
                case ARG_OTLP_LOGS_ENDPOINT:
                case ARG_OTLP_METRICS_ENDPOINT:
                        if (!is_http_url(optarg)) {
                                fprintf(stderr, "Invalid OTLP endpoint (http:// or https:// URL): %s\n", optarg);
                                return -EINVAL;
                        }
                        if (opt == ARG_OTLP_ENDPOINT)
                                c->otlp_config.endpoint = optarg;
                        else if (opt == ARG_OTLP_TRACES_ENDPOINT)
                                c->otlp_config.traces_endpoint = optarg;
                        else if (opt == ARG_OTLP_LOGS_ENDPOINT)
                                c->otlp_config.logs_endpoint = optarg;
                        else
                                c->otlp_config.metrics_endpoint = optarg;
                        break;
                case ARG_OTLP_HEADER: {
                        _cleanup_free_ char *h = NULL;
                        if (otlp_header_from_option(optarg, &h) < 0 || c->otlp_config.n_headers >= OTLP_HEADERS_MAX) {
                                fprintf(stderr,
                                        "Invalid --otlp-header (NAME=VALUE, at most %u): %s\n",
                                        OTLP_HEADERS_MAX,
                                        optarg);
                                return -EINVAL;
                        }
                        /* The command line's headers replace OTEL_EXPORTER_OTLP_HEADERS. */
                        if (c->otlp_config.headers != otlp_headers)
                                c->otlp_config.n_headers = 0;
                        otlp_headers[c->otlp_config.n_headers++] = optarg;
                        c->otlp_config.headers = otlp_headers;
                        break;
                }
                case ARG_OTLP_COMPRESSION:
                        if (strcmp(optarg, "gzip") == 0)
                                c->otlp_config.gzip = true;
                        else if (strcmp(optarg, "none") == 0)
                                c->otlp_config.gzip = false;
                        else {
                                fprintf(stderr, "Invalid --otlp-compression (gzip, none): %s\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_OTLP_QUEUE_BYTES:
                        if (parse_size(optarg, 64 * 1024, UINT64_C(1) << 40, &c->otlp_config.queue_bytes) < 0) {
                                fprintf(stderr, "Invalid --otlp-queue-bytes (at least 64K): %s\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_OTLP_SPOOL_DIR:
                        c->otlp_config.spool_dir = *optarg ? optarg : NULL;
                        c->otlp_no_spool = !*optarg;
                        break;
                case ARG_OTLP_SPOOL_BYTES:
                        if (parse_size(optarg, 64 * 1024, UINT64_C(1) << 50, &c->otlp_config.spool_bytes) < 0) {
                                fprintf(stderr, "Invalid --otlp-spool-bytes (at least 64K): %s\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_OTLP_FILE:
                        c->otlp_config.file_path = *optarg ? optarg : NULL;
                        c->otlp_no_file = !*optarg;
                        break;
                case ARG_OTLP_FILE_MAX_BYTES:
                        if (parse_size(optarg, 4096, UINT64_C(1) << 50, &c->otlp_config.file_max_bytes) < 0) {
                                fprintf(stderr, "Invalid --otlp-file-max-bytes (at least 4K): %s\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_OTLP_BATCH_DELAY:
                        if (parse_size(optarg, 1, 60000, &v) < 0) {
                                fprintf(stderr, "Invalid --otlp-batch-delay-ms (1-60000): %s\n", optarg);
                                return -EINVAL;
                        }
                        c->otlp_config.batch_delay_ns = v * NSEC_PER_MSEC;
                        break;
                case ARG_OTLP_METRICS_INTERVAL:
                        if (parse_size(optarg, 0, 86400000, &v) < 0 || (v > 0 && v < 1000)) {
                                fprintf(stderr,
                                        "Invalid --otlp-metrics-interval-ms (0, or 1000-86400000): %s\n",
                                        optarg);
                                return -EINVAL;
                        }
                        c->otlp_config.metrics_interval_ns = v * NSEC_PER_MSEC;
                        break;
                case ARG_OTLP_RETRY_MAX:
                        if (parse_size(optarg, 1, 3600000, &v) < 0) {
                                fprintf(stderr, "Invalid --otlp-retry-max-ms (1-3600000): %s\n", optarg);
                                return -EINVAL;
                        }
                        c->otlp_config.backoff_max_ns = v * NSEC_PER_MSEC;
                        c->otlp_config.backoff_initial_ns = MIN(
                                c->otlp_config.backoff_initial_ns, c->otlp_config.backoff_max_ns);
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
        if (c->notify_port != 0 && c->notify_port == c->vsock_port) {
                fprintf(stderr, "--vmm-notify-port must differ from --vsock-port (%u).\n", c->vsock_port);
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

static const char *env_get(const char *name) {
        return getenv(name);
}

int main(int argc, char *argv[]) {
        _cleanup_(otlp_env_done) OtlpEnv otlp_env = {};
        ServerConfig config;
        LogTarget log_target = LOG_TARGET_AUTO;
        int log_level = LOG_INFO, r;
        char hostname[256] = "";
        Server *server = NULL;

        server_config_init(&config);
        const char *bad = NULL;
        r = otlp_config_from_env(&config.otlp_config, &otlp_env, env_get, &bad);
        if (r == -EPROTONOSUPPORT) {
                fprintf(stderr,
                        "%s=%s: tetherd exports OTLP/HTTP with protobuf only (http/protobuf)\n",
                        bad,
                        getenv(bad));
                return EXIT_FAILURE;
        }
        if (r < 0) {
                fprintf(stderr, "Invalid %s: %s\n", bad ?: "OTEL_EXPORTER_OTLP_*", bad ? getenv(bad) : strerror(-r));
                return EXIT_FAILURE;
        }
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
        /* Process-wide state belongs to the process: libcurl's, for the OTLP/HTTP exporter, before any thread. */
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                log_error("Failed to initialize libcurl.");
                return EXIT_FAILURE;
        }

        r = server_new(&config, &server);
        if (r >= 0)
                r = server_start(server);
        if (r >= 0)
                r = server_run(server);
        server_free(server);
        curl_global_cleanup();
        if (server)
                log_info("tetherd stopped.");
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
