/* SPDX-License-Identifier: MIT */
/* Room cli: the tether command line, a client of tetherd's HTTP API only. */
#include "table.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "term.h"

struct Table {
        size_t n_columns;
        size_t n_rows; /* rows[0] is the header */
        size_t n_allocated;
        char ***rows;
        bool *right;
        bool ascii;
};

static char **row_free(char **row, size_t n_columns) {
        if (!row)
                return NULL;
        for (size_t i = 0; i < n_columns; i++)
                free(row[i]);
        free(row);
        return NULL;
}

Table *table_free(Table *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_rows; i++)
                row_free(t->rows[i], t->n_columns);
        free(t->rows);
        free(t->right);
        free(t);
        return NULL;
}

static int table_append(Table *t, const char *const *cells) {
        if (t->n_rows == t->n_allocated) {
                size_t n = MAX((size_t) 8, t->n_allocated * 2);
                char ***rows = reallocarray(t->rows, n, sizeof(char **));
                if (!rows)
                        return -ENOMEM;
                t->rows = rows;
                t->n_allocated = n;
        }

        char **row = calloc(t->n_columns, sizeof(char *));
        if (!row)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_columns; i++) {
                row[i] = terminal_sanitize(cells[i] ? cells[i] : "-", false, t->ascii);
                if (!row[i]) {
                        row_free(row, t->n_columns);
                        return -ENOMEM;
                }
        }

        t->rows[t->n_rows++] = row;
        return 0;
}

Table *table_new(size_t n_columns, const char *const *headers, bool ascii) {
        _cleanup_(table_freep) Table *t = calloc(1, sizeof(Table));
        if (!t)
                return NULL;

        t->n_columns = n_columns;
        t->ascii = ascii;
        t->right = calloc(n_columns, sizeof(bool));
        if (!t->right)
                return NULL;
        if (table_append(t, headers) < 0)
                return NULL;

        return TAKE_PTR(t);
}

void table_set_right_aligned(Table *t, size_t column, bool right) {
        if (column < t->n_columns)
                t->right[column] = right;
}

int table_add_row(Table *t, const char *const *cells) {
        return table_append(t, cells);
}

size_t table_n_rows(const Table *t) {
        return t->n_rows - 1;
}

int table_format(const Table *t, char **ret) {
        _cleanup_free_ size_t *widths = calloc(t->n_columns, sizeof(size_t));
        if (!widths)
                return -ENOMEM;

        for (size_t r = 0; r < t->n_rows; r++)
                for (size_t c = 0; c < t->n_columns; c++)
                        widths[c] = MAX(widths[c], display_width(t->rows[r][c]));

        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        _cleanup_fclose_ FILE *f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;

        for (size_t r = 0; r < t->n_rows; r++) {
                for (size_t c = 0; c < t->n_columns; c++) {
                        const char *cell = t->rows[r][c];
                        size_t pad = widths[c] - display_width(cell);
                        bool last = c + 1 == t->n_columns;

                        if (c > 0)
                                fputs("  ", f);
                        if (t->right[c])
                                fprintf(f, "%*s%s", (int) pad, "", cell);
                        else
                                fprintf(f, "%s%*s", cell, last ? 0 : (int) pad, "");
                }
                fputc('\n', f);
        }

        if (fclose(TAKE_PTR(f)) != 0)
                return -ENOMEM;

        *ret = TAKE_PTR(buf);
        return 0;
}
