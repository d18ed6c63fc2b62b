/* SPDX-License-Identifier: MIT */
/* Room vsock: tether-vsock, the vhost-user-vsock backend; guest ports to hybrid vsock sockets. */
/* tether-vsock: a vhost-user-vsock device backend, one process per VM. Command line only; everything else is in
 * tether-vsock-core (vsock-device.h). */

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "macro.h"
#include "vsock-device.h"
#include "vsock-log.h"

static void help(void) {
        printf("Usage: tether-vsock --socket VHOST_SOCK --uds-path PATH --cid N [OPTIONS]\n"
               "\n"
               "A vhost-user-vsock backend with Firecracker's hybrid vsock mapping: guest port P connects to the\n"
               "Unix socket PATH_P; host clients connect to PATH and write \"CONNECT <port>\\n\".\n"
               "\n"
               "  --socket PATH          vhost-user socket to listen on (QEMU's -chardev socket,path=)\n"
               "  --uds-path PATH        hybrid vsock base path\n"
               "  --cid N                the guest's CID (>= 3), served as the device config\n"
               "  --max-connections N    connections per VM (default %u)\n"
               "  --exit-on-disconnect   exit when the frontend disconnects instead of waiting for another\n"
               "  --log-level LEVEL      debug, info, notice, warning, error (default info)\n"
               "  --help, --version\n",
               VSOCK_MUX_MAX_CONNECTIONS_DEFAULT);
}

static int parse_u64(const char *s, uint64_t *ret) {
        char *end;
        unsigned long long v;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno != 0 || end == s || *end != '\0' || s[0] == '-')
                return -EINVAL;
        *ret = v;
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

int main(int argc, char **argv) {
        enum { ARG_SOCKET = 0x100, ARG_UDS, ARG_CID, ARG_MAX_CONN, ARG_EXIT, ARG_LOG, ARG_VERSION };
        static const struct option options[] = {
                { "socket", required_argument, NULL, ARG_SOCKET },
                { "uds-path", required_argument, NULL, ARG_UDS },
                { "cid", required_argument, NULL, ARG_CID },
                { "max-connections", required_argument, NULL, ARG_MAX_CONN },
                { "exit-on-disconnect", no_argument, NULL, ARG_EXIT },
                { "log-level", required_argument, NULL, ARG_LOG },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {},
        };
        const char *socket_path = NULL;
        VsockDeviceConfig config = {};
        sd_event *e = NULL;
        VsockDevice *d = NULL;
        uint64_t v;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case ARG_SOCKET:
                        socket_path = optarg;
                        break;
                case ARG_UDS:
                        config.uds_path = optarg;
                        break;
                case ARG_CID:
                        if (parse_u64(optarg, &v) < 0 || v < 3 || v >= UINT32_MAX) {
                                fprintf(stderr, "tether-vsock: --cid must be a number from 3 to %u\n", UINT32_MAX - 1);
                                return EXIT_FAILURE;
                        }
                        config.guest_cid = v;
                        break;
                case ARG_MAX_CONN:
                        if (parse_u64(optarg, &v) < 0 || v == 0 || v > 65536) {
                                fprintf(stderr, "tether-vsock: --max-connections must be 1..65536\n");
                                return EXIT_FAILURE;
                        }
                        config.max_connections = (uint32_t) v;
                        break;
                case ARG_EXIT:
                        config.exit_on_disconnect = true;
                        break;
                case ARG_LOG:
                        r = vsock_log_level_from_string(optarg);
                        if (r < 0) {
                                fprintf(stderr, "tether-vsock: unknown log level '%s'\n", optarg);
                                return EXIT_FAILURE;
                        }
                        vsock_log_set_max_level(r);
                        break;
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                case ARG_VERSION:
                        printf("tether-vsock %s\n", TETHER_VERSION);
                        return EXIT_SUCCESS;
                default:
                        return EXIT_FAILURE;
                }
        if (optind < argc || !socket_path || !config.uds_path || config.guest_cid == 0) {
                fprintf(stderr, "tether-vsock: --socket, --uds-path and --cid are required (see --help)\n");
                return EXIT_FAILURE;
        }

        /* Writes to Unix sockets use MSG_NOSIGNAL; this covers anything else. */
        (void) signal(SIGPIPE, SIG_IGN);

        r = sd_event_default(&e);
        if (r >= 0)
                r = vsock_device_new(e, &config, &d);
        if (r < 0) {
                fprintf(stderr,
                        "tether-vsock[cid=%llu uds=%s]: error: cannot set up the device: %s\n",
                        (unsigned long long) config.guest_cid,
                        config.uds_path,
                        strerror(-r));
                goto finish;
        }
        r = vsock_device_listen_uds(d);
        if (r < 0) {
                vsock_log(LOG_ERR, r, vsock_device_ident(d), "cannot listen on %s: %m", config.uds_path);
                goto finish;
        }
        r = vsock_device_listen_vhost(d, socket_path);
        if (r < 0) {
                vsock_log(
                        LOG_ERR,
                        r,
                        vsock_device_ident(d),
                        "cannot listen on the vhost-user socket %s: %m",
                        socket_path);
                goto finish;
        }

        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        (void) sigprocmask(SIG_BLOCK, &mask, NULL);
        r = sd_event_add_signal(e, NULL, SIGTERM, on_signal, NULL);
        if (r >= 0)
                r = sd_event_add_signal(e, NULL, SIGINT, on_signal, NULL);
        if (r < 0) {
                vsock_log(LOG_ERR, r, vsock_device_ident(d), "cannot watch signals: %m");
                goto finish;
        }

        vsock_log(LOG_INFO, 0, vsock_device_ident(d), "waiting for the frontend on %s", socket_path);
        (void) sd_notify(false, "READY=1");
        r = sd_event_loop(e);
        if (r < 0)
                vsock_log(LOG_ERR, r, vsock_device_ident(d), "event loop failed: %m");
        else
                vsock_log(LOG_INFO, 0, vsock_device_ident(d), "exiting");

finish:
        vsock_device_free(d);
        sd_event_unref(e);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
