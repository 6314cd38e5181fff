/* out: how every `weir` command prints. JSON strings, aligned tables, and
 * listings: one set of rows that is a table in text and an array of objects
 * with --format json, so a command states each row once and the brackets,
 * commas and null handling live here.
 *
 *   struct out *o = out_new(c, 2, "GROUP", "STATE");   // JSON: "["
 *   for (...) {
 *       out_row(o);                                    // JSON: "{" (or ",{")
 *       out_str(o, "group", g);                        // JSON members
 *       out_str(o, "state", st);
 *       out_cells(o, g, st);                           // the table's row
 *   }
 *   out_end(o, "\n");                                  // "]\n", or the table
 *
 * Members are written in JSON mode only and cells in text mode only; a listing
 * may be the value of a member of an enclosing one (out_key, then a nested
 * out_new ... out_end). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

struct cli;

/* A JSON string literal of @len bytes (-1: NUL-terminated; NULL: null). Bytes
 * that are not valid UTF-8 are written as \u00XX. */
void json_str(FILE *f, const char *s, ssize_t len);

/* Tables: columns separated by at least two spaces, widths from the rows. */
struct table;
struct table *table_new(int ncols, ...);
void table_row(struct table *t, ...); /* ncols strings (NULL: empty), copied */
void table_print(struct table *t, FILE *f);
void table_free(struct table *t);

/* A listing on stdout: in JSON mode prints "[" at once; in text mode collects a
 * table with @ncols column headers (0: no table; the caller prints its own
 * text). */
struct out *out_new(const struct cli *c, int ncols, ...);
bool out_json(const struct out *o);
/* Starts the next row (JSON: the next object). */
void out_row(struct out *o);
/* JSON members of the current object; @s NULL is null. */
void out_str(struct out *o, const char *key, const char *s);
void out_strn(struct out *o, const char *key, const char *s, ssize_t len);
void out_int(struct out *o, const char *key, int64_t v);
void out_int_or_null(struct out *o, const char *key, int64_t v); /* null when negative */
void out_bool(struct out *o, const char *key, bool v);
/* A member whose value is @json as it is; NULL writes only the key, for the
 * caller to write the value (a nested listing) next. */
void out_raw(struct out *o, const char *key, const char *json);
/* The current row's ncols table cells (text mode). */
void out_cells(struct out *o, ...);
/* Closes the listing — JSON: "]" then @json_tail (e.g. "\n" or "}\n"); text:
 * prints the table — and frees @o. */
void out_end(struct out *o, const char *json_tail);
