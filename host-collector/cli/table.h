/* SPDX-License-Identifier: MIT */
/* Room cli: the tether command line, a client of tetherd's HTTP API only. */
#pragma once

/* A plain text table: a header row, columns as wide as their widest cell, two spaces between columns, the
 * last column not padded. Cells are sanitized for the terminal when added. */

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

typedef struct Table Table;

/* NULL on allocation failure. */
Table *table_new(size_t n_columns, const char *const *headers, bool ascii);
Table *table_free(Table *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(Table *, table_free);

/* Right-aligns a column (numbers, durations). */
void table_set_right_aligned(Table *t, size_t column, bool right);

/* Adds a row of n_columns cells, copied; a NULL cell shows as "-". Returns 0 or -ENOMEM. */
int table_add_row(Table *t, const char *const *cells);

size_t table_n_rows(const Table *t);

/* Renders header and rows, each line ending in '\n'. Returns 0 or -ENOMEM. */
int table_format(const Table *t, char **ret);
