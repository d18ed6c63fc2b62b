/* SPDX-License-Identifier: MIT */
/* Room cli: the tether command line, a client of tetherd's HTTP API only. */
#pragma once

/* The tether commands: each turns its arguments into API calls and prints the answer, human or --json. */

#include <signal.h>
#include <stdbool.h>

#include "args.h"
#include "http.h"

/* Exit codes of wait-ready (docs/cli.md). */
enum {
        WAIT_READY_EXIT_READY = 0,
        WAIT_READY_EXIT_TIMEOUT = 1,
        WAIT_READY_EXIT_FAILED = 2,
        WAIT_READY_EXIT_ERROR = 3,
};

/* The HTTP client waits this much longer than the server-side timeout of a long-poll, so the server answers
 * (504 with its reason) before the client gives up. */
#define WAIT_READY_CLIENT_MARGIN_MIN_MS UINT64_C(5000)

typedef struct CliContext {
        HttpClient *http;
        bool json;
        bool ascii;
        bool stdout_is_tty;
        unsigned width;
        unsigned height;                          /* 0: unknown */
        const volatile sig_atomic_t *interrupted; /* set by SIGINT while following a stream */
} CliContext;

/* 200 → 0 ready, 504 → 1 timed out, 409 → 2 failed before ready, anything else → 3. */
int wait_ready_exit_code(long http_status);

/* The client-side timeout of a long-poll with the given server-side timeout. */
uint64_t wait_ready_client_timeout_ms(uint64_t server_timeout_ms);

/* Runs args->command and returns the process exit code (docs/cli.md); problems are already printed. */
int cli_run(const CliContext *ctx, const CliArgs *args);
