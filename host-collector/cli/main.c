/* SPDX-License-Identifier: MIT */
/* Room cli: the tether command line, a client of tetherd's HTTP API only. */
#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cli-log.h"
#include "commands.h"
#include "config.h"
#include "http.h"
#include "term.h"

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig) {
        interrupted = 1;
}

int main(int argc, char *argv[]) {
        _cleanup_(http_client_freep) HttpClient *http = NULL;
        CliArgs args;
        int r;

        r = cli_args_parse(argc, argv, getenv("TETHER_SOCKET"), &args);
        int usage_exit = args.command == CLI_COMMAND_WAIT_READY ? WAIT_READY_EXIT_ERROR : 1;
        if (r < 0) {
                if (r == -ENOMEM)
                        log_error_errno(r, "out of memory");
                else
                        log_error("%s", args.error);
                cli_args_done(&args);
                return usage_exit;
        }

        if (args.command == CLI_COMMAND_HELP) {
                fputs(cli_usage(), stdout);
                cli_args_done(&args);
                return 0;
        }
        if (args.command == CLI_COMMAND_VERSION) {
                puts("tether " TETHER_VERSION);
                cli_args_done(&args);
                return 0;
        }

        /* SIGINT ends a followed stream cleanly (flushed, exit 0); elsewhere it kills as usual. */
        if (args.follow || args.command == CLI_COMMAND_TOP) {
                struct sigaction sa = { .sa_handler = on_interrupt };
                sigemptyset(&sa.sa_mask);
                sigaction(SIGINT, &sa, NULL);
        }

        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                log_error("cannot initialize libcurl");
                cli_args_done(&args);
                return usage_exit;
        }

        r = http_client_new(args.socket_path, args.url, &http);
        if (r < 0) {
                log_error_errno(r, "cannot set up the HTTP client: %m");
                cli_args_done(&args);
                curl_global_cleanup();
                return usage_exit;
        }
        http_client_set_cancel_flag(http, &interrupted);

        CliContext ctx = {
                .http = http,
                .json = args.json,
                .ascii = args.ascii || !locale_is_utf8(getenv("LC_ALL"), getenv("LC_CTYPE"), getenv("LANG")),
                .stdout_is_tty = isatty(STDOUT_FILENO) > 0,
                .width = terminal_width(getenv("COLUMNS"), STDOUT_FILENO),
                .height = terminal_height(getenv("LINES"), STDOUT_FILENO),
                .interrupted = &interrupted,
        };

        int exit_code = cli_run(&ctx, &args);

        http = http_client_free(http);
        curl_global_cleanup();
        cli_args_done(&args);
        return exit_code;
}
