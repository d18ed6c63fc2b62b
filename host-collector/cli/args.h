/* SPDX-License-Identifier: MIT */
/* Room cli: the tether command line, a client of tetherd's HTTP API only. */
#pragma once

/* Command line of the tether CLI. Parsing is pure (no output, no environment lookups besides what the caller
 * passes in); problems come back as a message in CliArgs.error. Strings point into argv. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TETHER_SOCKET_DEFAULT "/run/tether/api.sock"
#define WAIT_READY_TIMEOUT_DEFAULT_MS UINT64_C(30000)
#define WAIT_READY_TIMEOUT_MAX_MS UINT64_C(3600000) /* the server's maximum */
#define TOP_INTERVAL_DEFAULT_MS UINT64_C(2000)
#define TOP_INTERVAL_MAX_MS UINT64_C(3600000)
#define MACHINE_ID_MAX 128
#define REGISTER_ATTRIBUTES_MAX 32

typedef enum CliCommand {
        CLI_COMMAND_HELP,
        CLI_COMMAND_VERSION,
        CLI_COMMAND_LS,
        CLI_COMMAND_REGISTER,
        CLI_COMMAND_GET,
        CLI_COMMAND_RM,
        CLI_COMMAND_WAIT_READY,
        CLI_COMMAND_LOGS,
        CLI_COMMAND_EVENTS,
        CLI_COMMAND_TRACE,
        CLI_COMMAND_TOP,
} CliCommand;

typedef struct CliAttribute {
        char *key;   /* allocated */
        char *value; /* allocated */
} CliAttribute;

typedef struct CliArgs {
        const char *socket_path; /* exactly one of socket_path and url is set after a successful parse */
        const char *url;
        bool json;
        bool ascii;

        CliCommand command;
        const char *machine_id;

        /* register */
        int64_t cid; /* -1: not given */
        const char *uds_path;
        const char *traceparent;
        const char *request_id;
        const char *service_name;
        const char *ready_condition;
        CliAttribute *attributes;
        size_t n_attributes;

        /* wait-ready */
        uint64_t timeout_ms;
        uint64_t since_unix_ns; /* --since; 0: not given */

        /* top */
        uint64_t interval_ms;

        /* logs, events */
        bool follow;
        const char *streams;        /* logs --stream, as given (comma separated) */
        const char *priority;       /* logs -p/--priority, as given (validated: a syslog priority or range) */
        const char *machine_filter; /* events --machine */

        char error[512];
} CliArgs;

/* Parses argv. env_socket is $TETHER_SOCKET (may be NULL). Returns 0, or -EINVAL with args->error set, or
 * -ENOMEM. Reorders argv (GNU getopt). Call cli_args_done() in every case. */
int cli_args_parse(int argc, char *argv[], const char *env_socket, CliArgs *args);
void cli_args_done(CliArgs *args);

/* [A-Za-z0-9._:-]{1,128}, as tetherd requires. */
bool machine_id_is_valid(const char *id);

/* "key=value" with a non-empty key; the value may be empty. Returns 0 or -EINVAL, -ENOMEM. */
int parse_attribute(const char *s, char **ret_key, char **ret_value);

/* "any", "source:<name>" or "milestone:<name>" with a non-empty name. */
bool ready_condition_is_valid(const char *s);

/* Comma-separated subset of stdout, stderr, console, kmsg (no empty items). */
bool log_streams_are_valid(const char *s);

/* Usage text for --help. */
const char *cli_usage(void);
