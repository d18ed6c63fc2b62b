/* SPDX-License-Identifier: MIT */
#include "agent-config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "format.h"
#include "macro.h"
#include "strv.h"

#define UNIX_PATH_MAX_LEN (sizeof(((struct sockaddr_un *) NULL)->sun_path) - 1)

static int config_error(ConfigError *err, const char *format, ...) _printf_(2, 3);
static int config_error(ConfigError *err, const char *format, ...) {
        if (err) {
                va_list ap;
                va_start(ap, format);
                vformat(err->text, sizeof(err->text), format, ap);
                va_end(ap);
        }
        return -EINVAL;
}

const char *agent_mode_to_string(AgentMode m) {
        switch (m) {
        case AGENT_MODE_INIT:
                return "init";
        case AGENT_MODE_SERVICE:
                return "service";
        default:
                return "auto";
        }
}

const char *log_policy_to_string(LogPolicy p) {
        return p == LOG_POLICY_DROP ? "drop" : "block";
}

static void probe_spec_done(ProbeSpec *p) {
        free(p->spec);
        free(p->path);
        strv_free(p->argv);
        *p = (ProbeSpec) {};
}

static void config_clear_probes(AgentConfig *c) {
        for (size_t i = 0; i < c->n_probes; i++)
                probe_spec_done(&c->probes[i]);
        c->n_probes = 0;
        c->ready_exec_started = false;
}

void config_init(AgentConfig *c) {
        *c = (AgentConfig) {
                .mode = AGENT_MODE_AUTO,
                .transport = TRANSPORT_VSOCK,
                .cid = CONFIG_DEFAULT_CID,
                .port = CONFIG_DEFAULT_PORT,
                .probe_interval_ms = 100,
                .probe_timeout_ms = 1000,
                .replay_bytes = CONFIG_DEFAULT_REPLAY_BYTES,
                .log_policy = LOG_POLICY_BLOCK,
                .log_stall_timeout_ms = CONFIG_DEFAULT_LOG_STALL_TIMEOUT_MS,
                .stop_timeout_ms = CONFIG_DEFAULT_STOP_TIMEOUT_MS,
                .shutdown = SHUTDOWN_POWEROFF,
                .kmsg = -1,
                .flush_timeout_ms = 1000,
                .sample_interval_ms = CONFIG_DEFAULT_SAMPLE_INTERVAL_MS,
        };
}

void config_done(AgentConfig *c) {
        if (!c)
                return;
        config_clear_probes(c);
        free(c->unix_path);
        free(c->notify_socket);
        free(c->traceparent_file);
        strv_free(c->command);
        strv_free(c->modules);
        config_init(c);
}

static int parse_u64(const char *s, uint64_t *ret) {
        if (!s || !isdigit((unsigned char) *s))
                return -EINVAL;
        errno = 0;
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno != 0 || *end)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* An integer with an optional binary K/M/G suffix. */
static int parse_size(const char *s, uint64_t *ret) {
        if (!s || !isdigit((unsigned char) *s))
                return -EINVAL;
        errno = 0;
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno != 0)
                return -EINVAL;
        unsigned shift = 0;
        if (*end) {
                switch (*end) {
                case 'K':
                case 'k':
                        shift = 10;
                        break;
                case 'M':
                case 'm':
                        shift = 20;
                        break;
                case 'G':
                case 'g':
                        shift = 30;
                        break;
                default:
                        return -EINVAL;
                }
                end++;
                if (*end == 'i' && end[1] == 'B')
                        end += 2;
                else if (*end == 'B')
                        end++;
                if (*end)
                        return -EINVAL;
        }
        if (v > (UINT64_MAX >> shift))
                return -EINVAL;
        *ret = (uint64_t) v << shift;
        return 0;
}

static int parse_bool(const char *s) {
        static const char *const yes[] = { "1", "yes", "true", "on", "y" };
        static const char *const no[] = { "0", "no", "false", "off", "n" };
        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                if (strcasecmp(s, yes[i]) == 0)
                        return 1;
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                if (strcasecmp(s, no[i]) == 0)
                        return 0;
        return -EINVAL;
}

static int set_range(const char *value, uint64_t min, uint64_t max, uint32_t *ret, const char *name, ConfigError *err) {
        uint64_t v;
        if (parse_u64(value, &v) < 0 || v < min || v > max)
                return config_error(
                        err,
                        "invalid value for %s: '%s' (expected an integer from %llu to %llu)",
                        name,
                        value,
                        (unsigned long long) min,
                        (unsigned long long) max);
        *ret = (uint32_t) v;
        return 0;
}

static int set_string(char **field, const char *value) {
        char *copy = strdup(value);
        if (!copy)
                return -ENOMEM;
        free(*field);
        *field = copy;
        return 0;
}

static int parse_socket_path(const char *value, const char *what, const char *name, ConfigError *err) {
        if (!*value)
                return config_error(err, "invalid value for %s: %s path is empty", name, what);
        if (strlen(value) > UNIX_PATH_MAX_LEN)
                return config_error(
                        err,
                        "invalid value for %s: %s path longer than %zu bytes",
                        name,
                        what,
                        (size_t) UNIX_PATH_MAX_LEN);
        return 0;
}

/* HOST is an IPv4 literal, "localhost" or a bracketed IPv6 literal: a static init has no resolver to ask. */
static int parse_tcp_target(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len) {
        const char *colon, *host_end;
        char host[64] = "127.0.0.1";
        bool v6 = false;

        if (*s == '[') {
                host_end = strchr(s, ']');
                if (!host_end || host_end[1] != ':')
                        return -EINVAL;
                colon = host_end + 1;
                if ((size_t) (host_end - s - 1) >= sizeof(host))
                        return -EINVAL;
                memcpy(host, s + 1, (size_t) (host_end - s - 1));
                host[host_end - s - 1] = '\0';
                v6 = true;
        } else if ((colon = strrchr(s, ':'))) {
                if ((size_t) (colon - s) >= sizeof(host) || colon == s)
                        return -EINVAL;
                memcpy(host, s, (size_t) (colon - s));
                host[colon - s] = '\0';
        }

        uint64_t port;
        if (parse_u64(colon ? colon + 1 : s, &port) < 0 || port < 1 || port > 65535)
                return -EINVAL;

        if (strcmp(host, "localhost") == 0)
                strcpy(host, "127.0.0.1");

        struct sockaddr_storage ss = {};
        if (!v6) {
                struct sockaddr_in *in = (struct sockaddr_in *) &ss;
                in->sin_family = AF_INET;
                in->sin_port = htons((uint16_t) port);
                if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
                        return -EINVAL;
                *ret_len = sizeof(*in);
        } else {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &ss;
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons((uint16_t) port);
                if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
                        return -EINVAL;
                *ret_len = sizeof(*in6);
        }
        *ret = ss;
        return 0;
}

static int parse_one_probe(ProbeSpec *p, const char *spec, const char *name, ConfigError *err) {
        const char *arg;
        int r;

        *p = (ProbeSpec) {};
        if (!(p->spec = strdup(spec)))
                return -ENOMEM;

        if ((arg = strchr(spec, ':')) && (size_t) (arg - spec) == 3 && strncmp(spec, "tcp", 3) == 0) {
                p->kind = PROBE_TCP;
                if (parse_tcp_target(arg + 1, &p->addr, &p->addr_len) < 0)
                        return config_error(
                                err,
                                "invalid value for %s: '%s' (expected tcp:PORT, tcp:IPV4:PORT or "
                                "tcp:[IPV6]:PORT)",
                                name,
                                spec);
                return 0;
        }
        if (strncmp(spec, "unix:", 5) == 0) {
                p->kind = PROBE_UNIX;
                if ((r = parse_socket_path(spec + 5, "probe socket", name, err)) < 0)
                        return r;
                return (p->path = strdup(spec + 5)) ? 0 : -ENOMEM;
        }
        if (strncmp(spec, "file:", 5) == 0) {
                p->kind = PROBE_FILE;
                if (!spec[5])
                        return config_error(err, "invalid value for %s: '%s' (empty path)", name, spec);
                return (p->path = strdup(spec + 5)) ? 0 : -ENOMEM;
        }
        if (strncmp(spec, "exec:", 5) == 0) {
                p->kind = PROBE_EXEC;
                r = shell_split(spec + 5, &p->argv);
                if (r == -ENOMEM)
                        return r;
                if (r < 0 || strv_length(p->argv) == 0)
                        return config_error(
                                err, "invalid value for %s: '%s' (empty command or unbalanced quotes)", name, spec);
                return 0;
        }
        return config_error(
                err,
                "invalid value for %s: unknown readiness source '%s' (expected sd_notify, tcp:PORT, "
                "tcp:HOST:PORT, unix:PATH, file:PATH, exec:CMDLINE or exec-started)",
                name,
                spec);
}

int config_parse_ready(AgentConfig *c, const char *value, const char *name, ConfigError *err) {
        AgentConfig n = { .n_probes = 0 };
        int r = 0;

        const char *p = value;
        while (p && *p) {
                const char *comma;
                size_t len;

                /* exec: takes the rest of the list: a command line may well contain commas. */
                if (strncmp(p, "exec:", 5) == 0)
                        comma = NULL;
                else
                        comma = strchr(p, ',');
                len = comma ? (size_t) (comma - p) : strlen(p);

                _cleanup_free_ char *item = strndup(p, len);
                if (!item) {
                        r = -ENOMEM;
                        break;
                }
                p = comma ? comma + 1 : NULL;

                if (len == 0 || strcmp(item, "sd_notify") == 0)
                        continue;
                if (strcmp(item, "exec-started") == 0) {
                        n.ready_exec_started = true;
                        continue;
                }
                if (n.n_probes >= CONFIG_MAX_PROBES) {
                        r = config_error(err, "invalid value for %s: more than %u probes", name, CONFIG_MAX_PROBES);
                        break;
                }
                r = parse_one_probe(&n.probes[n.n_probes], item, name, err);
                n.n_probes++; /* even on failure, so that the cleanup below frees the partial spec */
                if (r < 0)
                        break;
        }

        if (r < 0) {
                config_clear_probes(&n);
                return r;
        }

        config_clear_probes(c);
        memcpy(c->probes, n.probes, sizeof(n.probes));
        c->n_probes = n.n_probes;
        c->ready_exec_started = n.ready_exec_started;
        return 0;
}

/* Parses one --modules list (PATH[,PATH...], absolute paths, at most CONFIG_MAX_MODULES of at most
 * CONFIG_MAX_MODULE_PATH bytes) into c, replacing an earlier list; an empty value means none. */
static int config_parse_modules(AgentConfig *c, const char *value, const char *name, ConfigError *err) {
        _cleanup_strv_free_ char **l = NULL;
        size_t n = 0;
        int r;

        for (const char *p = value; *p;) {
                const char *comma = strchr(p, ',');
                size_t len = comma ? (size_t) (comma - p) : strlen(p);

                if (len == 0 || p[0] != '/')
                        return config_error(
                                err,
                                "invalid value for %s: '%.*s' (expected absolute paths of .ko files, separated by "
                                "commas)",
                                name,
                                (int) MIN(len, (size_t) CONFIG_MAX_MODULE_PATH),
                                p);
                if (len > CONFIG_MAX_MODULE_PATH)
                        return config_error(
                                err,
                                "invalid value for %s: module path longer than %u bytes",
                                name,
                                CONFIG_MAX_MODULE_PATH);
                if (++n > CONFIG_MAX_MODULES)
                        return config_error(
                                err, "invalid value for %s: more than %u modules", name, CONFIG_MAX_MODULES);

                _cleanup_free_ char *item = strndup(p, len);
                if (!item)
                        return -ENOMEM;
                if ((r = strv_push(&l, item)) < 0)
                        return r;

                if (!comma)
                        break;
                p = comma + 1;
                if (!*p) /* "a.ko," */
                        return config_error(err, "invalid value for %s: '%s' (empty module path)", name, value);
        }

        strv_free(c->modules);
        c->modules = TAKE_PTR(l);
        return 0;
}

int config_set(AgentConfig *c, const char *key, const char *value, const char *name, ConfigError *err) {
        int r, b;

        if (strcmp(key, "mode") == 0) {
                if (strcmp(value, "init") == 0)
                        c->mode = AGENT_MODE_INIT;
                else if (strcmp(value, "service") == 0)
                        c->mode = AGENT_MODE_SERVICE;
                else
                        return config_error(err, "invalid value for %s: '%s' (expected init or service)", name, value);
                return 0;
        }
        if (strcmp(key, "transport") == 0) {
                if (strcmp(value, "vsock") == 0) {
                        c->transport = TRANSPORT_VSOCK;
                        return 0;
                }
                if (strncmp(value, "unix:", 5) == 0) {
                        if ((r = parse_socket_path(value + 5, "socket", name, err)) < 0)
                                return r;
                        if ((r = set_string(&c->unix_path, value + 5)) < 0)
                                return r;
                        c->transport = TRANSPORT_UNIX;
                        return 0;
                }
                return config_error(err, "invalid value for %s: '%s' (expected vsock or unix:PATH)", name, value);
        }
        if (strcmp(key, "cid") == 0)
                /* VMADDR_CID_ANY (2^32-1) cannot be connected to. */
                return set_range(value, 0, UINT32_MAX - 1, &c->cid, name, err);
        if (strcmp(key, "port") == 0)
                return set_range(value, 1, UINT32_MAX - 1, &c->port, name, err);
        if (strcmp(key, "ready") == 0)
                return config_parse_ready(c, value, name, err);
        if (strcmp(key, "modules") == 0)
                return config_parse_modules(c, value, name, err);
        if (strcmp(key, "probe_interval_ms") == 0)
                return set_range(value, 10, 60000, &c->probe_interval_ms, name, err);
        if (strcmp(key, "probe_timeout_ms") == 0)
                return set_range(value, 10, 600000, &c->probe_timeout_ms, name, err);
        if (strcmp(key, "flush_timeout_ms") == 0)
                return set_range(value, 0, 600000, &c->flush_timeout_ms, name, err);
        if (strcmp(key, "sample_interval_ms") == 0) {
                /* tetherd keeps at most one sample per guest second: faster would only be refused. */
                int k = set_range(value, 0, 3600000, &c->sample_interval_ms, name, err);
                if (k == 0 && c->sample_interval_ms > 0 && c->sample_interval_ms < 1000)
                        return config_error(
                                err, "invalid value for %s: '%s' (expected 0 or 1000 to 3600000)", name, value);
                return k;
        }
        if (strcmp(key, "replay_bytes") == 0) {
                uint64_t v;
                if (parse_size(value, &v) < 0 || v < CONFIG_MIN_REPLAY_BYTES || v > CONFIG_MAX_REPLAY_BYTES)
                        return config_error(
                                err, "invalid value for %s: '%s' (expected a size from 64K to 1G)", name, value);
                c->replay_bytes = v;
                return 0;
        }
        if (strcmp(key, "log_policy") == 0) {
                if (strcmp(value, "block") == 0)
                        c->log_policy = LOG_POLICY_BLOCK;
                else if (strcmp(value, "drop") == 0)
                        c->log_policy = LOG_POLICY_DROP;
                else
                        return config_error(err, "invalid value for %s: '%s' (expected block or drop)", name, value);
                return 0;
        }
        if (strcmp(key, "log_stall_timeout_ms") == 0)
                return set_range(value, 0, CONFIG_MAX_LOG_STALL_TIMEOUT_MS, &c->log_stall_timeout_ms, name, err);
        if (strcmp(key, "stop_timeout_ms") == 0)
                return set_range(value, 0, CONFIG_MAX_STOP_TIMEOUT_MS, &c->stop_timeout_ms, name, err);
        if (strcmp(key, "notify_socket") == 0) {
                if ((r = parse_socket_path(value, "notify socket", name, err)) < 0)
                        return r;
                return set_string(&c->notify_socket, value);
        }
        if (strcmp(key, "traceparent_file") == 0) {
                if (!*value) {
                        free(c->traceparent_file);
                        c->traceparent_file = NULL;
                        c->traceparent_file_disabled = true;
                        return 0;
                }
                c->traceparent_file_disabled = false;
                return set_string(&c->traceparent_file, value);
        }
        if (strcmp(key, "shutdown") == 0) {
                if (strcmp(value, "poweroff") == 0)
                        c->shutdown = SHUTDOWN_POWEROFF;
                else if (strcmp(value, "reboot") == 0)
                        c->shutdown = SHUTDOWN_REBOOT;
                else if (strcmp(value, "exit") == 0)
                        c->shutdown = SHUTDOWN_EXIT;
                else
                        return config_error(
                                err, "invalid value for %s: '%s' (expected poweroff, reboot or exit)", name, value);
                return 0;
        }
        if (strcmp(key, "kmsg") == 0 || strcmp(key, "console") == 0 || strcmp(key, "verbose") == 0) {
                if ((b = parse_bool(value)) < 0)
                        return config_error(err, "invalid value for %s: '%s' (expected 1 or 0)", name, value);
                if (key[0] == 'k')
                        c->kmsg = b;
                else if (key[0] == 'c')
                        c->console = b;
                else
                        c->verbose = b;
                return 0;
        }
        if (strcmp(key, "exec") == 0) {
                char **argv = NULL;
                r = shell_split(value, &argv);
                if (r == -ENOMEM)
                        return r;
                if (r < 0 || strv_length(argv) == 0) {
                        strv_free(argv);
                        return config_error(
                                err, "invalid value for %s: '%s' (empty command or unbalanced quotes)", name, value);
                }
                strv_free(c->command);
                c->command = argv;
                return 0;
        }
        return config_error(err, "unknown setting %s", name);
}

static bool is_space(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Removes one pair of double quotes around a whole value, as the kernel does on its command line. */
static void strip_quotes(char *v) {
        size_t n = strlen(v);
        if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
                memmove(v, v + 1, n - 2);
                v[n - 2] = '\0';
        }
}

int config_parse_file(AgentConfig *c, const char *text, const char *filename, ConfigError *err) {
        unsigned line_no = 0;
        const char *p = text;

        while (*p) {
                const char *eol = strchr(p, '\n');
                size_t len = eol ? (size_t) (eol - p) : strlen(p);
                line_no++;

                _cleanup_free_ char *line = strndup(p, len);
                if (!line)
                        return -ENOMEM;
                p = eol ? eol + 1 : p + len;

                char *s = line;
                while (is_space(*s))
                        s++;
                char *e = s + strlen(s);
                while (e > s && is_space(e[-1]))
                        *--e = '\0';
                if (!*s || *s == '#')
                        continue;

                char *eq = strchr(s, '=');
                if (!eq)
                        return config_error(err, "%s:%u: expected key=value, got '%s'", filename, line_no, s);
                char *k_end = eq;
                while (k_end > s && is_space(k_end[-1]))
                        k_end--;
                *k_end = '\0';
                char *value = eq + 1;
                while (is_space(*value))
                        value++;
                strip_quotes(value);

                char name[128];
                format(name, sizeof(name), "%s:%u: %s", filename, line_no, s);
                int r = config_set(c, s, value, name, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

int config_parse_kernel_cmdline(AgentConfig *c, const char *text, ConfigError *err) {
        _cleanup_free_ char *copy = strdup(text);
        if (!copy)
                return -ENOMEM;

        char *p = copy;
        for (;;) {
                while (is_space(*p))
                        p++;
                if (!*p)
                        break;

                /* Like the kernel's next_arg(): a double quote toggles "inside quotes", where blanks do not
                 * end the word. */
                char *word = p;
                bool in_quote = false;
                while (*p && (in_quote || !is_space(*p))) {
                        if (*p == '"')
                                in_quote = !in_quote;
                        p++;
                }
                if (*p)
                        *p++ = '\0';

                if (strcmp(word, "--") == 0)
                        break;
                strip_quotes(word); /* "tether.x=a b" quoted as a whole */
                if (strncmp(word, "tether.", 7) != 0)
                        continue;

                char *eq = strchr(word, '=');
                char *value = eq ? eq + 1 : (char *) "1";
                if (eq)
                        *eq = '\0';
                strip_quotes(value);

                int r = config_set(c, word + 7, value, word, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

static bool is_bool_option(const char *key) {
        return strcmp(key, "kmsg") == 0 || strcmp(key, "console") == 0 || strcmp(key, "verbose") == 0;
}

void config_args_done(ConfigArgs *a) {
        if (!a)
                return;
        strv_free(a->keys);
        strv_free(a->values);
        strv_free(a->command);
        free(a->config_file);
        *a = (ConfigArgs) {};
}

static int args_push(ConfigArgs *a, const char *key, const char *value) {
        int r = strv_push(&a->keys, key);
        if (r < 0)
                return r;
        r = strv_push(&a->values, value);
        if (r < 0) {
                size_t n = strv_length(a->keys);
                free(a->keys[n - 1]);
                a->keys[n - 1] = NULL;
        }
        return r;
}

static const char *const option_keys[] = {
        "mode",
        "transport",
        "cid",
        "port",
        "ready",
        "probe_interval_ms",
        "probe_timeout_ms",
        "flush_timeout_ms",
        "sample_interval_ms",
        "replay_bytes",
        "log_policy",
        "log_stall_timeout_ms",
        "stop_timeout_ms",
        "notify_socket",
        "traceparent_file",
        "shutdown",
        "kmsg",
        "console",
        "verbose",
        "modules",
};

static bool is_known_option(const char *key) {
        for (size_t i = 0; i < ELEMENTSOF(option_keys); i++)
                if (strcmp(option_keys[i], key) == 0)
                        return true;
        return false;
}

int config_args_parse(int argc, char *const *argv, ConfigArgs *ret, ConfigError *err) {
        ConfigArgs a = {};
        int r = 0, i;

        for (i = 1; i < argc; i++) {
                const char *arg = argv[i];

                if (strcmp(arg, "--") == 0) {
                        i++;
                        break;
                }
                if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
                        a.help = true;
                        continue;
                }
                if (strcmp(arg, "--version") == 0) {
                        a.version = true;
                        continue;
                }
                if (arg[0] != '-')
                        break; /* the command starts here: what the kernel hands init after its own "--" */
                if (arg[1] != '-') {
                        r = config_error(err, "unknown option %s", arg);
                        goto fail;
                }

                /* --some-key[=value] → some_key */
                const char *eq = strchr(arg, '=');
                size_t klen = eq ? (size_t) (eq - arg - 2) : strlen(arg + 2);
                char key[64];
                if (klen == 0 || klen >= sizeof(key)) {
                        r = config_error(err, "unknown option %s", arg);
                        goto fail;
                }
                for (size_t j = 0; j < klen; j++)
                        key[j] = arg[2 + j] == '-' ? '_' : arg[2 + j];
                key[klen] = '\0';

                const char *value = eq ? eq + 1 : NULL;
                if (!value && strncmp(key, "no_", 3) == 0 && is_bool_option(key + 3)) {
                        memmove(key, key + 3, strlen(key + 3) + 1);
                        value = "0";
                } else if (!value && is_bool_option(key))
                        value = "1";

                if (strcmp(key, "config") != 0 && !is_known_option(key)) {
                        r = config_error(err, "unknown option --%.*s", (int) klen, arg + 2);
                        goto fail;
                }
                if (!value) {
                        if (i + 1 >= argc) {
                                r = config_error(err, "option --%.*s needs a value", (int) klen, arg + 2);
                                goto fail;
                        }
                        value = argv[++i];
                }

                if (strcmp(key, "config") == 0) {
                        free(a.config_file);
                        if (!(a.config_file = strdup(value))) {
                                r = -ENOMEM;
                                goto fail;
                        }
                        continue;
                }
                if ((r = args_push(&a, key, value)) < 0)
                        goto fail;
        }

        if (i < argc) {
                if ((r = strv_copy(argv + i, &a.command)) < 0)
                        goto fail;
        }

        *ret = a;
        return 0;

fail:
        config_args_done(&a);
        return r;
}

int config_load(
        AgentConfig *c,
        const ConfigArgs *args,
        const char *file_text,
        const char *filename,
        const char *cmdline_text,
        bool is_pid1,
        ConfigError *err) {
        ConfigError first = {};
        int r = 0, k;

        config_init(c);

        if (file_text) {
                k = config_parse_file(c, file_text, filename ?: "config", r < 0 ? NULL : &first);
                if (k < 0 && r >= 0)
                        r = k;
        }
        if (cmdline_text) {
                k = config_parse_kernel_cmdline(c, cmdline_text, r < 0 ? NULL : &first);
                if (k < 0 && r >= 0)
                        r = k;
        }
        if (args) {
                for (size_t i = 0; args->keys && args->keys[i]; i++) {
                        char name[80];
                        format(name, sizeof(name), "--%s", args->keys[i]);
                        for (char *s = name + 2; *s; s++)
                                if (*s == '_')
                                        *s = '-';
                        k = config_set(c, args->keys[i], args->values[i], name, r < 0 ? NULL : &first);
                        if (k < 0 && r >= 0)
                                r = k;
                }
                if (args->command) {
                        char **copy;
                        if ((k = strv_copy(args->command, &copy)) < 0) {
                                if (r >= 0)
                                        r = k;
                        } else {
                                strv_free(c->command);
                                c->command = copy;
                        }
                }
        }

        if (c->mode == AGENT_MODE_AUTO)
                c->mode = is_pid1 ? AGENT_MODE_INIT : AGENT_MODE_SERVICE;
        if (c->kmsg < 0)
                c->kmsg = c->mode == AGENT_MODE_INIT;
        if (!c->notify_socket && set_string(&c->notify_socket, CONFIG_DEFAULT_NOTIFY_SOCKET) < 0 && r >= 0)
                r = -ENOMEM;
        if (!c->traceparent_file && !c->traceparent_file_disabled &&
            set_string(&c->traceparent_file, CONFIG_DEFAULT_TRACEPARENT_FILE) < 0 && r >= 0)
                r = -ENOMEM;

        if (r < 0 && err)
                *err = first;
        return r;
}
