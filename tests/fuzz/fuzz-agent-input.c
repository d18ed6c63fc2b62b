/* SPDX-License-Identifier: MIT */
/* What reaches the agent from inside the guest or from its boot configuration: sd_notify datagrams (any
 * process in the guest may send them), /dev/kmsg records, the config file and the kernel command line. Must
 * never crash, leak or read out of bounds, and what the parsers keep must hold their promises (valid UTF-8,
 * bounded strings and counts).
 *
 * Input: byte 0 picks the parser (mod 4), the rest is its input. */

#include <string.h>

#include "agent-config.h"
#include "fuzz.h"
#include "kmsg.h"
#include "macro.h"
#include "notify.h"
#include "utf8.h"

static void fuzz_notify(const char *data, size_t len) {
        NotifyMessage m = {};

        if (notify_message_parse(data, len, &m) < 0)
                return;
        FUZZ_ASSERT(m.n_attrs <= NOTIFY_MAX_ATTRS);
        if (m.status) {
                FUZZ_ASSERT(strlen(m.status) <= NOTIFY_MAX_STRING);
                FUZZ_ASSERT(utf8_is_valid(m.status, strlen(m.status)));
        }
        if (m.milestone) {
                FUZZ_ASSERT(*m.milestone);
                FUZZ_ASSERT(strlen(m.milestone) <= NOTIFY_MAX_STRING);
                FUZZ_ASSERT(utf8_is_valid(m.milestone, strlen(m.milestone)));
        }
        for (size_t i = 0; i < m.n_attrs; i++) {
                FUZZ_ASSERT(m.attr_keys[i] && *m.attr_keys[i] && m.attr_values[i]);
                FUZZ_ASSERT(utf8_is_valid(m.attr_values[i], strlen(m.attr_values[i])));
        }
        notify_message_done(&m);
}

static void fuzz_kmsg(const char *data, size_t len) {
        KmsgRecord r;

        if (kmsg_parse_record(data, len, &r) < 0)
                return;
        FUZZ_ASSERT(r.message >= data && r.message + r.message_len <= data + len);
        FUZZ_ASSERT(r.priority <= 1023);
}

static void fuzz_config(const char *text, bool cmdline) {
        AgentConfig c;
        ConfigError err = {};

        config_init(&c);
        int r = cmdline ? config_parse_kernel_cmdline(&c, text, &err) : config_parse_file(&c, text, "fuzz.conf", &err);
        if (r < 0)
                FUZZ_ASSERT(err.text[0] != '\0'); /* a refusal says why */
        FUZZ_ASSERT(c.n_probes <= CONFIG_MAX_PROBES);
        FUZZ_ASSERT(c.log_stall_timeout_ms <= CONFIG_MAX_LOG_STALL_TIMEOUT_MS);
        FUZZ_ASSERT(c.stop_timeout_ms <= CONFIG_MAX_STOP_TIMEOUT_MS);
        config_done(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        const char *in = (const char *) data + 1;
        size_t len = size - 1;

        switch (data[0] % 4) {
        case 0:
                fuzz_notify(in, len);
                break;
        case 1:
                fuzz_kmsg(in, len);
                break;
        default: {
                /* Text parsers take NUL-terminated strings: what a file or /proc/cmdline read gives them. */
                _cleanup_free_ char *text = malloc(len + 1);
                if (!text)
                        return 0;
                memcpy(text, in, len);
                text[len] = '\0';
                fuzz_config(text, data[0] % 4 == 3);
                break;
        }
        }
        return 0;
}
