/* out: JSON strings, aligned tables and the listings built on both (see
 * out.h). Everything goes to stdout except where a FILE is given. */
#include "cli/out.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/utf8.h"

void json_str(FILE *f, const char *s, ssize_t len)
{
    if (!s) {
        fputs("null", f);
        return;
    }
    size_t n = len < 0 ? strlen(s) : (size_t)len;
    const unsigned char *p = (const unsigned char *)s;
    putc('"', f);
    for (size_t i = 0; i < n;) {
        unsigned char ch = p[i];
        if (ch == '"' || ch == '\\') {
            putc('\\', f);
            putc(ch, f);
            i++;
        } else if (ch == '\n') {
            fputs("\\n", f);
            i++;
        } else if (ch == '\t') {
            fputs("\\t", f);
            i++;
        } else if (ch == '\r') {
            fputs("\\r", f);
            i++;
        } else if (ch < 0x20 || ch == 0x7f) {
            fprintf(f, "\\u%04x", ch);
            i++;
        } else if (ch < 0x80) {
            putc(ch, f);
            i++;
        } else {
            size_t l = utf8_seq_len(p + i, n - i);
            if (l) {
                fwrite(p + i, 1, l, f);
                i += l;
            } else {
                fprintf(f, "\\u%04x", ch);
                i++;
            }
        }
    }
    putc('"', f);
}

struct table {
    int ncols;
    size_t nrows, cap;
    char **cells; /* nrows * ncols */
};

static void table_add(struct table *t, va_list ap)
{
    if (t->nrows == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 16;
        char **cells = realloc(t->cells, nc * (size_t)t->ncols * sizeof(*cells));
        if (!cells)
            abort();
        t->cells = cells;
        t->cap = nc;
    }
    for (int i = 0; i < t->ncols; i++) {
        const char *s = va_arg(ap, const char *);
        t->cells[t->nrows * (size_t)t->ncols + (size_t)i] = strdup(s ? s : "");
    }
    t->nrows++;
}

struct table *table_new(int ncols, ...)
{
    struct table *t = calloc(1, sizeof(*t));
    if (!t)
        abort();
    t->ncols = ncols;
    va_list ap;
    va_start(ap, ncols);
    table_add(t, ap);
    va_end(ap);
    return t;
}

void table_row(struct table *t, ...)
{
    va_list ap;
    va_start(ap, t);
    table_add(t, ap);
    va_end(ap);
}

void table_print(struct table *t, FILE *f)
{
    size_t w[32] = {0};
    for (size_t r = 0; r < t->nrows; r++)
        for (int c = 0; c < t->ncols && c < 32; c++) {
            size_t l = strlen(t->cells[r * (size_t)t->ncols + (size_t)c]);
            if (l > w[c])
                w[c] = l;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (int c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * (size_t)t->ncols + (size_t)c];
            if (c == t->ncols - 1)
                fprintf(f, "%s\n", s);
            else
                fprintf(f, "%-*s  ", (int)w[c], s);
        }
    }
}

void table_free(struct table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nrows * (size_t)t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}

/* ---- listings --------------------------------------------------------------- */

struct out {
    bool json;
    bool in_row;      /* JSON: an object is open */
    size_t rows;      /* rows started */
    size_t members;   /* members of the current object */
    struct table *t;  /* text mode with columns */
    int ncols;
};

struct out *out_new(const struct cli *c, int ncols, ...)
{
    struct out *o = calloc(1, sizeof(*o));
    if (!o)
        abort();
    o->json = c->json;
    o->ncols = ncols;
    if (o->json) {
        putchar('[');
    } else if (ncols > 0) {
        o->t = calloc(1, sizeof(*o->t));
        if (!o->t)
            abort();
        o->t->ncols = ncols;
        va_list ap;
        va_start(ap, ncols);
        table_add(o->t, ap);
        va_end(ap);
    }
    return o;
}

bool out_json(const struct out *o)
{
    return o->json;
}

void out_row(struct out *o)
{
    if (o->json) {
        if (o->in_row)
            putchar('}');
        fputs(o->rows ? ",{" : "{", stdout);
        o->in_row = true;
        o->members = 0;
    }
    o->rows++;
}

/* The separator and "key": of the next member; false in text mode. */
static bool member(struct out *o, const char *key)
{
    if (!o->json)
        return false;
    if (o->members++)
        putchar(',');
    json_str(stdout, key, -1);
    putchar(':');
    return true;
}

void out_strn(struct out *o, const char *key, const char *s, ssize_t len)
{
    if (member(o, key))
        json_str(stdout, s, len);
}

void out_str(struct out *o, const char *key, const char *s)
{
    out_strn(o, key, s, -1);
}

void out_int(struct out *o, const char *key, int64_t v)
{
    if (member(o, key))
        printf("%lld", (long long)v);
}

void out_int_or_null(struct out *o, const char *key, int64_t v)
{
    if (v < 0)
        out_raw(o, key, "null");
    else
        out_int(o, key, v);
}

void out_bool(struct out *o, const char *key, bool v)
{
    out_raw(o, key, v ? "true" : "false");
}

void out_raw(struct out *o, const char *key, const char *json)
{
    if (member(o, key) && json)
        fputs(json, stdout);
}

void out_cells(struct out *o, ...)
{
    if (!o->t)
        return;
    va_list ap;
    va_start(ap, o);
    table_add(o->t, ap);
    va_end(ap);
}

void out_end(struct out *o, const char *json_tail)
{
    if (o->json) {
        fputs(o->in_row ? "}]" : "]", stdout);
        fputs(json_tail ? json_tail : "", stdout);
    } else if (o->t) {
        table_print(o->t, stdout);
    }
    table_free(o->t);
    free(o);
}
