/* SPDX-License-Identifier: MIT */
#pragma once

/* OTLP/JSON (the protobuf JSON mapping with OTLP's exceptions): lowerCamelCase keys, trace/span ids as hex
 * (other bytes base64), enums as integers, 64-bit integers as strings, default values left out, strings that
 * are not UTF-8 sanitized (U+FFFD). Pure. */

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "stats.h"

/* Any OTLP message as one compact JSON object (no newline) in *ret. Returns 0 or -ENOMEM (also: nested deeper
 * than 64 levels). */
int otlp_message_to_json(const ProtobufCMessage *m, char **ret);

/* Decodes an encoded Export{Trace,Logs}ServiceRequest and returns it as one compact JSON line (no newline) in
 * *ret. Returns 0, -EBADMSG (does not decode), -EINVAL (signal) or -ENOMEM. */
int otlp_request_to_json(ExportSignal signal, const uint8_t *body, size_t len, char **ret);
