/* SPDX-License-Identifier: MIT */
#pragma once

/* Encoding, decoding and validation of tether.Envelope frames. Library code: never logs. */

#include <stddef.h>
#include <stdint.h>

#include "tether.pb-c.h"

/* The versions this code speaks: Hello.protocol_version is the lowest, Hello.max_protocol_version the highest;
 * Welcome.protocol_version the one chosen. Version 2 adds ResourceSample. */
#define TETHER_PROTOCOL_VERSION 1u
#define TETHER_PROTOCOL_VERSION_MAX 2u
#define TETHER_PROTOCOL_VERSION_SAMPLES 2u

/* The version to speak with a peer that speaks lowest..highest (highest 0 or below lowest: lowest only, as an
 * older agent's Hello says): the highest both speak, or 0 when there is none. */
uint32_t envelope_negotiate_version(uint32_t lowest, uint32_t highest);

/* Bounds a receiver enforces on everything a peer controls. */
typedef struct EnvelopeLimits {
        uint32_t max_attributes;   /* per Milestone/Phase */
        uint32_t max_string_bytes; /* names, keys, values, sources, details */
        uint32_t max_log_bytes;    /* Log.data */
} EnvelopeLimits;

/* ResourceSample's arrays: at most this many entries each (version 2 defines up to 8). */
#define ENVELOPE_SAMPLE_ARRAY_MAX 16u

#define ENVELOPE_LIMITS_DEFAULT \
        ((EnvelopeLimits) { .max_attributes = 32, .max_string_bytes = 1024, .max_log_bytes = 16384 })

/* Why a frame was refused; stable names used in logs and metrics labels. */
typedef enum ProtocolError {
        PROTOCOL_ERROR_NONE = 0,
        PROTOCOL_ERROR_FRAME_TOO_LARGE,
        PROTOCOL_ERROR_FRAME_EMPTY,
        PROTOCOL_ERROR_DECODE_FAILED,
        PROTOCOL_ERROR_UNKNOWN_MESSAGE,
        PROTOCOL_ERROR_INVALID_UTF8,
        PROTOCOL_ERROR_TOO_MANY_ATTRIBUTES,
        PROTOCOL_ERROR_STRING_TOO_LONG,
        PROTOCOL_ERROR_LOG_TOO_LARGE,
        PROTOCOL_ERROR_INVALID_FIELD,
        PROTOCOL_ERROR_SEQ_MISSING,
        PROTOCOL_ERROR_SEQ_REGRESSION,
        PROTOCOL_ERROR_UNEXPECTED_MESSAGE,
        PROTOCOL_ERROR_VERSION_MISMATCH,
        _PROTOCOL_ERROR_MAX,
} ProtocolError;

const char *protocol_error_to_string(ProtocolError e);

/* True for the record messages that carry a sequence number and are acked/replayed. */
int envelope_is_record(const Tether__Envelope *e);

/* Serializes e as one frame (length header + payload) into a newly allocated buffer.
 * Returns 0, -EMSGSIZE if the payload would exceed TETHER_FRAME_MAX, or -ENOMEM. */
int envelope_pack_frame(const Tether__Envelope *e, uint8_t **ret_frame, size_t *ret_len);

/* Serializes e (payload only, no header) into out if it fits. Returns the payload length,
 * or -EMSGSIZE (too large for out or the frame limit). */
int envelope_pack_into(const Tether__Envelope *e, uint8_t *out, size_t out_size);

/* Decodes a frame payload. Returns 0 and a message to free with envelope_free(), or -EBADMSG. */
int envelope_unpack(const uint8_t *payload, size_t len, Tether__Envelope **ret);
void envelope_free(Tether__Envelope *e);

/* Checks a decoded envelope against the limits: a message is set, strings are valid UTF-8 and within
 * bounds, attribute counts, log size, records carry seq >= 1 and others seq 0. Returns
 * PROTOCOL_ERROR_NONE or the first problem found. */
ProtocolError envelope_validate(const Tether__Envelope *e, const EnvelopeLimits *limits);
