/* SPDX-License-Identifier: MIT */
/* Room cli: the tether command line, a client of tetherd's HTTP API only. */
#include "args.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"
#include "macro.h"
#include "syslog-priority.h"
#include "time-util.h"
#include "traceparent.h"

static const struct {
        const char *name;
        CliCommand command;
        bool takes_machine_id;
} commands[] = {
        { "ls", CLI_COMMAND_LS, false },
        { "register", CLI_COMMAND_REGISTER, true },
        { "get", CLI_COMMAND_GET, true },
        { "rm", CLI_COMMAND_RM, true },
        { "wait-ready", CLI_COMMAND_WAIT_READY, true },
        { "logs", CLI_COMMAND_LOGS, true },
        { "events", CLI_COMMAND_EVENTS, false },
        { "trace", CLI_COMMAND_TRACE, true },
        { "top", CLI_COMMAND_TOP, false },
        { "help", CLI_COMMAND_HELP, false },
};

enum {
        ARG_SOCKET = 0x100,
        ARG_URL,
        ARG_JSON,
        ARG_ASCII,
        ARG_VERSION,
        ARG_CID,
        ARG_UDS,
        ARG_TRACEPARENT,
        ARG_REQUEST_ID,
        ARG_SERVICE,
        ARG_READY,
        ARG_ATTR,
        ARG_TIMEOUT,
        ARG_SINCE,
        ARG_STREAM,
        ARG_MACHINE,
        ARG_INTERVAL,
};

/* Every option is accepted before and after the command; commands reject the ones that make no sense. */
static const struct option options[] = { { "socket", required_argument, NULL, ARG_SOCKET },
                                         { "url", required_argument, NULL, ARG_URL },
                                         { "json", no_argument, NULL, ARG_JSON },
                                         { "ascii", no_argument, NULL, ARG_ASCII },
                                         { "help", no_argument, NULL, 'h' },
                                         { "version", no_argument, NULL, ARG_VERSION },
                                         { "cid", required_argument, NULL, ARG_CID },
                                         { "uds", required_argument, NULL, ARG_UDS },
                                         { "traceparent", required_argument, NULL, ARG_TRACEPARENT },
                                         { "request-id", required_argument, NULL, ARG_REQUEST_ID },
                                         { "service", required_argument, NULL, ARG_SERVICE },
                                         { "ready", required_argument, NULL, ARG_READY },
                                         { "attr", required_argument, NULL, ARG_ATTR },
                                         { "timeout", required_argument, NULL, ARG_TIMEOUT },
                                         { "since", required_argument, NULL, ARG_SINCE },
                                         { "follow", no_argument, NULL, 'f' },
                                         { "stream", required_argument, NULL, ARG_STREAM },
                                         { "priority", required_argument, NULL, 'p' },
                                         { "machine", required_argument, NULL, ARG_MACHINE },
                                         { "interval", required_argument, NULL, ARG_INTERVAL },
                                         {} };

static int fail(CliArgs *args, const char *fmt, ...) _printf_(2, 3);
static int fail(CliArgs *args, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(args->error, sizeof(args->error), fmt, ap);
        va_end(ap);
        return -EINVAL;
}

bool machine_id_is_valid(const char *id) {
        size_t n = strlen(id);

        if (n == 0 || n > MACHINE_ID_MAX)
                return false;
        return strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-") == n;
}

int parse_attribute(const char *s, char **ret_key, char **ret_value) {
        const char *eq = strchr(s, '=');

        if (!eq || eq == s)
                return -EINVAL;

        _cleanup_free_ char *key = strndup(s, (size_t) (eq - s));
        _cleanup_free_ char *value = strdup(eq + 1);
        if (!key || !value)
                return -ENOMEM;

        *ret_key = TAKE_PTR(key);
        *ret_value = TAKE_PTR(value);
        return 0;
}

bool ready_condition_is_valid(const char *s) {
        if (strcmp(s, "any") == 0)
                return true;
        if (strncmp(s, "source:", 7) == 0)
                return s[7] != '\0';
        if (strncmp(s, "milestone:", 10) == 0)
                return s[10] != '\0';
        return false;
}

bool log_streams_are_valid(const char *s) {
        static const char *const known[] = { "stdout", "stderr", "console", "kmsg", "journal" };

        for (;;) {
                size_t n = strcspn(s, ",");
                bool found = false;

                for (size_t i = 0; i < ELEMENTSOF(known); i++)
                        if (n == strlen(known[i]) && strncmp(s, known[i], n) == 0)
                                found = true;
                if (!found)
                        return false;
                if (s[n] == '\0')
                        return true;
                s += n + 1;
        }
}

static int parse_cid(const char *s, int64_t *ret) {
        char *end;

        if (!(*s >= '0' && *s <= '9'))
                return -EINVAL;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno != 0 || *end != '\0' || v > UINT32_MAX)
                return -EINVAL;
        /* 0 hypervisor, 1 local, 2 host; U32_MAX is VMADDR_CID_ANY. */
        if (v < 3 || v == UINT32_MAX)
                return -ERANGE;
        *ret = (int64_t) v;
        return 0;
}

static const char *option_name(int c) {
        for (const struct option *o = options; o->name; o++)
                if (o->val == c)
                        return o->name;
        return "?";
}

/* Which options each command takes, beyond the global ones. */
static bool option_allowed(CliCommand command, int c) {
        switch (c) {
        case ARG_SOCKET:
        case ARG_URL:
        case ARG_JSON:
        case ARG_ASCII:
        case 'h':
        case ARG_VERSION:
                return true;
        case ARG_CID:
        case ARG_UDS:
        case ARG_TRACEPARENT:
        case ARG_REQUEST_ID:
        case ARG_SERVICE:
        case ARG_READY:
        case ARG_ATTR:
                return command == CLI_COMMAND_REGISTER;
        case ARG_TIMEOUT:
        case ARG_SINCE:
                return command == CLI_COMMAND_WAIT_READY;
        case 'f':
                return command == CLI_COMMAND_LOGS || command == CLI_COMMAND_EVENTS;
        case ARG_STREAM:
        case 'p':
                return command == CLI_COMMAND_LOGS;
        case ARG_MACHINE:
                return command == CLI_COMMAND_EVENTS;
        case ARG_INTERVAL:
                return command == CLI_COMMAND_TOP;
        default:
                return false;
        }
}

static int add_attribute(CliArgs *args, const char *s) {
        _cleanup_free_ char *key = NULL, *value = NULL;
        int r = parse_attribute(s, &key, &value);
        if (r == -EINVAL)
                return fail(args, "invalid --attr '%s': expected KEY=VALUE", s);
        if (r < 0)
                return r;

        for (size_t i = 0; i < args->n_attributes; i++)
                if (strcmp(args->attributes[i].key, key) == 0)
                        return fail(args, "--attr %s given twice", key);
        if (args->n_attributes >= REGISTER_ATTRIBUTES_MAX)
                return fail(args, "too many --attr (at most %d)", REGISTER_ATTRIBUTES_MAX);

        CliAttribute *a = reallocarray(args->attributes, args->n_attributes + 1, sizeof(CliAttribute));
        if (!a)
                return -ENOMEM;
        args->attributes = a;
        args->attributes[args->n_attributes++] = (CliAttribute) { TAKE_PTR(key), TAKE_PTR(value) };
        return 0;
}

static int handle_option(CliArgs *args, int c, const char *arg) {
        int r;

        switch (c) {
        case ARG_SOCKET:
                if (!*arg)
                        return fail(args, "--socket needs a path");
                args->socket_path = arg;
                args->url = NULL;
                return 0;
        case ARG_URL:
                if (strncmp(arg, "http://", 7) != 0 || arg[7] == '\0')
                        return fail(args, "--url must look like http://127.0.0.1:PORT, got '%s'", arg);
                args->url = arg;
                args->socket_path = NULL;
                return 0;
        case ARG_JSON:
                args->json = true;
                return 0;
        case ARG_ASCII:
                args->ascii = true;
                return 0;
        case 'h':
                args->command = CLI_COMMAND_HELP;
                return 0;
        case ARG_VERSION:
                args->command = CLI_COMMAND_VERSION;
                return 0;
        case ARG_CID:
                r = parse_cid(arg, &args->cid);
                if (r < 0)
                        return fail(args, "invalid --cid '%s': expected a guest CID (3 .. 4294967294)", arg);
                return 0;
        case ARG_UDS:
                if (!*arg)
                        return fail(args, "--uds needs a path");
                args->uds_path = arg;
                return 0;
        case ARG_TRACEPARENT: {
                TraceParent tp;
                if (traceparent_parse(arg, &tp) < 0)
                        return fail(args, "invalid --traceparent '%s': expected 00-<32 hex>-<16 hex>-<2 hex>", arg);
                args->traceparent = arg;
                return 0;
        }
        case ARG_REQUEST_ID:
                args->request_id = arg;
                return 0;
        case ARG_SERVICE:
                args->service_name = arg;
                return 0;
        case ARG_READY:
                if (!ready_condition_is_valid(arg))
                        return fail(args, "invalid --ready '%s': expected any, source:NAME or milestone:NAME", arg);
                args->ready_condition = arg;
                return 0;
        case ARG_ATTR:
                return add_attribute(args, arg);
        case ARG_TIMEOUT:
                r = parse_seconds(arg, WAIT_READY_TIMEOUT_MAX_MS, &args->timeout_ms);
                if (r == -ERANGE)
                        return fail(
                                args,
                                "--timeout %s is too long (at most %" PRIu64 " s)",
                                arg,
                                WAIT_READY_TIMEOUT_MAX_MS / 1000);
                if (r < 0)
                        return fail(args, "invalid --timeout '%s': expected seconds, e.g. 30 or 2.5", arg);
                return 0;
        case ARG_SINCE:
                if (strcmp(arg, "now") == 0)
                        args->since_unix_ns = now_ns(CLOCK_REALTIME);
                else if (parse_epoch_ns(arg, &args->since_unix_ns) < 0)
                        return fail(
                                args,
                                "invalid --since '%s': expected now or seconds since the epoch, e.g. "
                                "$(date +%%s.%%N)",
                                arg);
                return 0;
        case 'f':
                args->follow = true;
                return 0;
        case ARG_STREAM:
                if (!log_streams_are_valid(arg))
                        return fail(
                                args,
                                "invalid --stream '%s': expected a comma-separated list of stdout, "
                                "stderr, console, kmsg",
                                arg);
                args->streams = arg;
                return 0;
        case 'p': {
                uint8_t mask;
                if (syslog_priority_mask_from_string(arg, &mask) < 0)
                        return fail(
                                args,
                                "invalid --priority '%s': expected a syslog priority (0-7, emerg, alert, crit, err, "
                                "warning, notice, info, debug) or a range of two, e.g. err..warning",
                                arg);
                args->priority = arg;
                return 0;
        }
        case ARG_INTERVAL:
                r = parse_seconds(arg, TOP_INTERVAL_MAX_MS, &args->interval_ms);
                if (r < 0 || (args->interval_ms > 0 && args->interval_ms < 100))
                        return fail(args, "invalid --interval '%s': expected 0 or 0.1 to 3600 seconds", arg);
                return 0;
        case ARG_MACHINE:
                if (!machine_id_is_valid(arg))
                        return fail(args, "invalid machine id '%s': expected 1-128 of A-Z a-z 0-9 . _ : -", arg);
                args->machine_filter = arg;
                return 0;
        default:
                return fail(args, "unexpected option");
        }
}

/* One getopt pass over argv. Before the command (command == NULL) it stops at the first non-option; after it,
 * GNU getopt permutes so options may follow the machine id ("tether logs vm-42 -f"). Returns the index of the
 * first operand, or -EINVAL. */
static int parse_options(CliArgs *args, int argc, char *argv[], const char *command, CliCommand command_id) {
        opterr = 0;
        optind = 0; /* GNU: full reinitialization, so parsing can run more than once (tests) */

        int c;
        while ((c = getopt_long(argc, argv, command ? ":hfp:" : "+:h", options, NULL)) >= 0) {
                if (c == '?') {
                        if (optopt > 0 && optopt < 0x100)
                                return fail(args, "unknown option '-%c'", optopt);
                        return fail(args, "unknown option '%s'", argv[optind - 1]);
                }
                if (c == ':')
                        return fail(args, "option '%s' needs a value", argv[optind - 1]);
                if (!command && !option_allowed(CLI_COMMAND_HELP, c))
                        return fail(args, "--%s goes after the command", option_name(c));
                if (command && !option_allowed(command_id, c))
                        return fail(args, "%s does not take --%s", command, option_name(c));

                int r = handle_option(args, c, optarg);
                if (r < 0)
                        return r;
        }
        return optind;
}

int cli_args_parse(int argc, char *argv[], const char *env_socket, CliArgs *args) {
        *args = (CliArgs) {
                .command = CLI_COMMAND_LS, /* replaced below; HELP/VERSION set by options win */
                .cid = -1,
                .timeout_ms = WAIT_READY_TIMEOUT_DEFAULT_MS,
                .interval_ms = TOP_INTERVAL_DEFAULT_MS,
                .socket_path = env_socket && *env_socket ? env_socket : TETHER_SOCKET_DEFAULT,
        };

        int first = parse_options(args, argc, argv, NULL, CLI_COMMAND_HELP);
        if (first < 0)
                return first;
        if (args->command == CLI_COMMAND_HELP || args->command == CLI_COMMAND_VERSION)
                return 0;
        if (first >= argc)
                return fail(args, "missing command (try --help)");

        const char *name = argv[first];
        size_t i;
        for (i = 0; i < ELEMENTSOF(commands); i++)
                if (strcmp(name, commands[i].name) == 0)
                        break;
        if (i >= ELEMENTSOF(commands))
                return fail(args, "unknown command '%s' (try --help)", name);
        args->command = commands[i].command;
        if (args->command == CLI_COMMAND_HELP)
                return 0;

        /* The command's own options and operands: argv[first] acts as argv[0] of the sub-parse. */
        int sub_argc = argc - first;
        char **sub_argv = argv + first;
        int operand = parse_options(args, sub_argc, sub_argv, name, commands[i].command);
        if (operand < 0)
                return operand;
        if (args->command == CLI_COMMAND_HELP || args->command == CLI_COMMAND_VERSION)
                return 0;

        int n_operands = sub_argc - operand;
        if (commands[i].takes_machine_id) {
                if (n_operands < 1)
                        return fail(args, "%s needs a machine id", name);
                if (n_operands > 1)
                        return fail(args, "%s takes one machine id, got extra '%s'", name, sub_argv[operand + 1]);
                args->machine_id = sub_argv[operand];
                if (!machine_id_is_valid(args->machine_id))
                        return fail(
                                args,
                                "invalid machine id '%s': expected 1-128 of A-Z a-z 0-9 . _ : -",
                                args->machine_id);
        } else if (n_operands > 0)
                return fail(args, "%s takes no arguments, got '%s'", name, sub_argv[operand]);

        if (args->command == CLI_COMMAND_REGISTER && (args->cid >= 0) == (args->uds_path != NULL))
                return fail(args, "register needs exactly one of --cid N and --uds PATH");

        return 0;
}

void cli_args_done(CliArgs *args) {
        for (size_t i = 0; i < args->n_attributes; i++) {
                free(args->attributes[i].key);
                free(args->attributes[i].value);
        }
        free(args->attributes);
        args->attributes = NULL;
        args->n_attributes = 0;
}

const char *cli_usage(void) {
        return "Usage: tether [--socket PATH | --url http://127.0.0.1:PORT] [--json] [--ascii] COMMAND ...\n"
               "\n"
               "Talks to tetherd, the node-local collector of microVM boot traces, logs and readiness.\n"
               "\n"
               "Commands:\n"
               "  ls                              list machines\n"
               "  register ID (--cid N | --uds PATH) [--traceparent TP] [--request-id R] [--service S]\n"
               "              [--ready any|source:NAME|milestone:NAME] [--attr KEY=VALUE ...]\n"
               "                                  register a machine\n"
               "  get ID                          show a machine\n"
               "  rm ID                           delete a machine\n"
               "  wait-ready ID [--timeout S] [--since T]\n"
               "                                  wait until the machine is ready (default 30 s); with --since\n"
               "                                  (now, or epoch seconds), only a state reached after T answers\n"
               "                                  exit 0 ready, 1 timed out, 2 failed before ready, 3 error\n"
               "  logs [-f] [--stream S,...] [-p P] ID\n"
               "                                  print the current boot's output (S: stdout, stderr,\n"
               "                                  console, kmsg, journal); -f follows until the boot ends;\n"
               "                                  -p: lines of syslog priority P (err, 3) or more important,\n"
               "                                  or of a range (err..warning)\n"
               "  events [-f] [--machine ID]      print lifecycle events; -f follows\n"
               "  trace ID                        show the boot trace as a waterfall\n"
               "  top [--interval S]              the machines' state, uptime, CPU, memory, memory pressure,\n"
               "                                  log rate and ready time, refreshed every S s (default 2) on\n"
               "                                  a terminal; otherwise (and with --json) one snapshot, rates\n"
               "                                  over S s (0: one request, no rates)\n"
               "\n"
               "Options:\n"
               "  --socket PATH   tetherd API socket (default $TETHER_SOCKET or " TETHER_SOCKET_DEFAULT
               ")\n"
               "  --url URL       talk HTTP to tetherd's TCP port instead\n"
               "  --json          print the API's JSON instead of the human form\n"
               "  --ascii         plain ASCII output (automatic when the locale is not UTF-8)\n"
               "  -h, --help      this text\n"
               "  --version       print the version\n";
}
