/* SPDX-License-Identifier: MIT */
#pragma once

/* The agent's configuration: defaults < config file < kernel command line < command-line options.
 * Every source is parsed here from text, so the whole precedence chain is testable without a VM.
 * Library code: never logs; errors come back as -EINVAL plus a message naming the key. */

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define CONFIG_DEFAULT_FILE "/etc/tether/agent.conf"
#define CONFIG_DEFAULT_CID 2u
#define CONFIG_DEFAULT_PORT 4817u
#define CONFIG_DEFAULT_NOTIFY_SOCKET "/run/tether/notify"
#define CONFIG_DEFAULT_TRACEPARENT_FILE "/run/tether/traceparent"
#define CONFIG_DEFAULT_REPLAY_BYTES (UINT64_C(1) << 20)
#define CONFIG_MIN_REPLAY_BYTES (UINT64_C(64) << 10)
#define CONFIG_MAX_REPLAY_BYTES (UINT64_C(1) << 30)
#define CONFIG_DEFAULT_LOG_STALL_TIMEOUT_MS 5000u
#define CONFIG_MAX_LOG_STALL_TIMEOUT_MS 600000u
#define CONFIG_DEFAULT_STOP_TIMEOUT_MS 10000u
#define CONFIG_DEFAULT_SAMPLE_INTERVAL_MS 10000u
#define CONFIG_MAX_STOP_TIMEOUT_MS 3600000u
#define CONFIG_MAX_PROBES 8u
#define CONFIG_MAX_MODULES 32u
#define CONFIG_MAX_MODULE_PATH 255u /* bytes */

typedef enum AgentMode {
        AGENT_MODE_AUTO, /* init if PID 1, service otherwise */
        AGENT_MODE_INIT,
        AGENT_MODE_SERVICE,
} AgentMode;

typedef enum TransportKind {
        TRANSPORT_VSOCK,
        TRANSPORT_UNIX,
} TransportKind;

typedef enum ShutdownAction {
        SHUTDOWN_POWEROFF,
        SHUTDOWN_REBOOT, /* Firecracker ends the VM on a guest reboot, not on power-off */
        SHUTDOWN_EXIT,
} ShutdownAction;

/* What a full replay buffer does to the workload's output (docs/agent.md, "Flow control"). */
typedef enum LogPolicy {
        LOG_POLICY_BLOCK, /* stop reading the pipes while tetherd takes the output; drop once it stalls */
        LOG_POLICY_DROP,  /* never stop reading: the oldest unsent Log records go */
} LogPolicy;

typedef enum ProbeKind {
        PROBE_TCP,
        PROBE_UNIX,
        PROBE_FILE,
        PROBE_EXEC,
} ProbeKind;

typedef struct ProbeSpec {
        ProbeKind kind;
        char *spec;                   /* as written, e.g. "tcp:8080"; becomes the Ready detail */
        struct sockaddr_storage addr; /* PROBE_TCP */
        socklen_t addr_len;
        char *path;  /* PROBE_UNIX, PROBE_FILE */
        char **argv; /* PROBE_EXEC */
} ProbeSpec;

typedef struct AgentConfig {
        AgentMode mode;
        TransportKind transport;
        char *unix_path;
        uint32_t cid;
        uint32_t port;
        ProbeSpec probes[CONFIG_MAX_PROBES];
        size_t n_probes;
        bool ready_exec_started;
        uint32_t probe_interval_ms;
        uint32_t probe_timeout_ms;
        uint64_t replay_bytes;
        LogPolicy log_policy;
        uint32_t log_stall_timeout_ms; /* block: how long without progress before dropping instead */
        uint32_t stop_timeout_ms;      /* after SIGTERM/SIGINT to the workload's group: SIGKILL (0: never) */
        char *notify_socket;
        char *traceparent_file; /* NULL: not written */
        bool traceparent_file_disabled;
        ShutdownAction shutdown;
        int kmsg; /* -1 until resolved: on in init mode, off in service mode */
        bool console;
        uint32_t flush_timeout_ms;
        uint32_t sample_interval_ms; /* resource samples (sample.h); 0: off */
        char **command;              /* NULL: no workload */
        char **modules;              /* kernel modules to load in init mode, in order; NULL: none */
        bool verbose;
} AgentConfig;

typedef struct ConfigError {
        char text[320];
} ConfigError;

/* What the command line said, before it is merged with the other sources. */
typedef struct ConfigArgs {
        char **keys;       /* option names as config keys ("replay_bytes") */
        char **values;     /* parallel to keys */
        char **command;    /* after "--" or the first non-option argument; NULL if none */
        char *config_file; /* --config=FILE, NULL if not given */
        bool help;
        bool version;
} ConfigArgs;

int config_args_parse(int argc, char *const *argv, ConfigArgs *ret, ConfigError *err);
void config_args_done(ConfigArgs *a);

void config_init(AgentConfig *c);
void config_done(AgentConfig *c);

/* Sets one key (config-file spelling, no "tether." prefix). name is how the user wrote it, used in the
 * error message ("--cid", "tether.cid", "agent.conf:3: cid"). Returns 0 or -EINVAL/-ENOMEM. */
int config_set(AgentConfig *c, const char *key, const char *value, const char *name, ConfigError *err);

/* key=value lines, '#' comments, optional double quotes around a value. Stops at the first error. */
int config_parse_file(AgentConfig *c, const char *text, const char *filename, ConfigError *err);

/* The kernel's own tokenisation (double quotes group words; quotes around a value are removed); applies
 * the tether.* keys, ignores everything else and stops at "--". Stops at the first error. */
int config_parse_kernel_cmdline(AgentConfig *c, const char *text, ConfigError *err);

/* Builds the configuration from all sources, lowest precedence first: defaults, file_text (may be NULL),
 * cmdline_text (may be NULL), args. Keeps applying after an error (so that e.g. a valid --shutdown still
 * counts) and returns the first error. Resolves AGENT_MODE_AUTO with is_pid1 and the kmsg default. */
int config_load(
        AgentConfig *c,
        const ConfigArgs *args,
        const char *file_text,
        const char *filename,
        const char *cmdline_text,
        bool is_pid1,
        ConfigError *err);

/* Parses one --ready list into c (replacing earlier probes). Exposed for tests. */
int config_parse_ready(AgentConfig *c, const char *value, const char *name, ConfigError *err);


const char *agent_mode_to_string(AgentMode m);
const char *log_policy_to_string(LogPolicy p);
