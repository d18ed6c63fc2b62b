/* SPDX-License-Identifier: MIT */
#pragma once

/* The libFuzzer entry points every tests/fuzz/fuzz-NAME.c target defines (LLVMFuzzerInitialize optionally).
 * fuzz-main.c calls the same functions to replay a saved corpus in builds without libFuzzer. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A broken invariant is a finding: abort so libFuzzer saves the input and the replay test fails. */
#define FUZZ_ASSERT(expr)                                                                            \
        do {                                                                                         \
                if (!(expr)) {                                                                       \
                        fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #expr); \
                        abort();                                                                     \
                }                                                                                    \
        } while (0)
