/* src/run/csvio.c - see csvio.h. */
#include "run/csvio.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <csv.h>

#include "config/keys.h"

/* ---- writing ------------------------------------------------------------ */

bool nb_csv_is_bare(const char *s)
{
    if (!s || !*s)
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '+' ||
              c == '-' || c == '/'))
            return false;
    }
    return true;
}

static void w_fail(struct nb_csvw *w, int status, const char *fmt,
                   const char *detail)
{
    if (w->failed)
        return;
    w->failed = status;
    nb_error_set(&w->err, status, w->path, 0, fmt, detail);
}

/* Separator before a field; false when the row is already full. */
static bool w_begin_field(struct nb_csvw *w)
{
    if (!w->fp) {
        w_fail(w, NB_EIO, "%s", "write to a closed CSV writer");
        return false;
    }
    if (w->col >= w->ncols) {
        w_fail(w, NB_EINVAL, "%s", "more fields than header columns");
        return false;
    }
    if (w->col++ > 0 && putc(',', w->fp) == EOF)
        w_fail(w, NB_EIO, "write error: %s", strerror(errno));
    return true;
}

static void w_put(struct nb_csvw *w, const char *s)
{
    if (fputs(s, w->fp) == EOF)
        w_fail(w, NB_EIO, "write error: %s", strerror(errno));
}

void nb_csvw_str(struct nb_csvw *w, const char *s)
{
    if (!w_begin_field(w) || !s)
        return;
    if (strpbrk(s, "\r\n")) {
        w_fail(w, NB_EINVAL, "refusing a value with a line break: '%.60s'", s);
        return;
    }
    if (nb_csv_is_bare(s))
        w_put(w, s);
    else if (csv_fwrite(w->fp, s, strlen(s)) == EOF)
        w_fail(w, NB_EIO, "write error: %s", strerror(errno));
}

void nb_csvw_double(struct nb_csvw *w, double v)
{
    if (!w_begin_field(w))
        return;
    char buf[40];
    if (isnan(v))
        w_put(w, "nan");
    else if (isinf(v))
        w_put(w, v > 0 ? "inf" : "-inf");
    else if (v == 0)
        w_put(w, signbit(v) ? "-0" : "0");
    else
        w_put(w, nb_format_double(v, buf, sizeof buf));
}

void nb_csvw_long(struct nb_csvw *w, long long v)
{
    if (!w_begin_field(w))
        return;
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    w_put(w, buf);
}

void nb_csvw_missing(struct nb_csvw *w)
{
    w_begin_field(w);
}

int nb_csvw_end_row(struct nb_csvw *w, struct nb_error *err)
{
    if (!w->failed && w->col != w->ncols) {
        char detail[64];
        snprintf(detail, sizeof detail, "%d of %d", w->col, w->ncols);
        w_fail(w, NB_EINVAL, "row with %s fields", detail);
    }
    if (w->fp && !w->failed) {
        if (putc('\n', w->fp) == EOF || fflush(w->fp) == EOF)
            w_fail(w, NB_EIO, "write error: %s", strerror(errno));
    }
    w->col = 0;
    if (w->failed) {
        if (err)
            *err = w->err;
        return w->failed;
    }
    return 0;
}

int nb_csvw_open(struct nb_csvw *w, const char *path,
                 const char *const *header, int ncols, struct nb_error *err)
{
    memset(w, 0, sizeof *w);
    snprintf(w->path, sizeof w->path, "%s", path);
    for (int i = 0; i < ncols; i++)
        if (!nb_csv_is_bare(header[i]))
            return nb_error_set(err, NB_EINVAL, path, 0,
                                "bad CSV column name '%s'", header[i]);
    w->fp = fopen(path, "w");
    if (!w->fp)
        return nb_error_set(err, NB_EIO, path, 0, "cannot create: %s",
                            strerror(errno));
    w->ncols = ncols;
    for (int i = 0; i < ncols; i++)
        nb_csvw_str(w, header[i]);
    int rc = nb_csvw_end_row(w, err);
    if (rc) {
        fclose(w->fp);
        w->fp = NULL;
    }
    return rc;
}

int nb_csvw_close(struct nb_csvw *w, bool sync, struct nb_error *err)
{
    if (!w->fp)
        return 0;
    int rc = 0;
    if (fflush(w->fp) == EOF || (sync && fsync(fileno(w->fp)) != 0))
        rc = nb_error_set(err, NB_EIO, w->path, 0, "write error: %s",
                          strerror(errno));
    if (fclose(w->fp) != 0 && !rc)
        rc = nb_error_set(err, NB_EIO, w->path, 0, "write error: %s",
                          strerror(errno));
    w->fp = NULL;
    return rc;
}

/* ---- reading ------------------------------------------------------------ */

struct reader {
    struct nb_csv_table *t;
    const char *path;
    long line;       /* line of the row being parsed (1-based) */
    char **row;      /* fields of the current row */
    int nrow, caprow;
    size_t caprows;  /* capacity of t->cells in rows */
    int status;      /* first error */
    struct nb_error *err;
    bool unterminated;
};

__attribute__((format(printf, 3, 4))) static void
r_fail(struct reader *r, int status, const char *fmt, ...)
{
    if (r->status)
        return;
    r->status = status;
    va_list ap;
    va_start(ap, fmt);
    nb_error_vset(r->err, status, r->path, (int)r->line, fmt, ap);
    va_end(ap);
}

static void r_field(void *data, size_t len, void *user)
{
    struct reader *r = user;
    if (r->status)
        return;
    if (r->nrow == r->caprow) {
        int cap = r->caprow ? 2 * r->caprow : 16;
        char **p = realloc(r->row, (size_t)cap * sizeof *p);
        if (!p) {
            r_fail(r, NB_ENOMEM, "out of memory");
            return;
        }
        r->row = p;
        r->caprow = cap;
    }
    char *s = NULL;
    if (data) {
        s = malloc(len + 1);
        if (!s) {
            r_fail(r, NB_ENOMEM, "out of memory");
            return;
        }
        memcpy(s, data, len);
        s[len] = '\0';
    }
    r->row[r->nrow++] = s;
}

static void r_free_row(struct reader *r)
{
    for (int i = 0; i < r->nrow; i++)
        free(r->row[i]);
    r->nrow = 0;
}

static void r_row(int c, void *user)
{
    struct reader *r = user;
    struct nb_csv_table *t = r->t;
    if (c == -1)
        r->unterminated = true;
    if (r->status) {
        r_free_row(r);
        return;
    }
    if (!t->header) {
        for (int i = 0; i < r->nrow; i++) {
            if (!r->row[i] || !r->row[i][0]) {
                r_fail(r, NB_EFORMAT, "empty name of column %d in the header",
                       i + 1);
                r_free_row(r);
                return;
            }
            for (int j = 0; j < i; j++)
                if (!strcmp(r->row[i], r->row[j])) {
                    r_fail(r, NB_EFORMAT, "columns %d and %d have the same name",
                           j + 1, i + 1);
                    r_free_row(r);
                    return;
                }
        }
        t->header = r->row;
        t->ncols = r->nrow;
        r->row = NULL;
        r->nrow = r->caprow = 0;
    } else {
        if (r->nrow != t->ncols) {
            r_fail(r, NB_EFORMAT, "row has %d fields, the header %d",
                   r->nrow, t->ncols);
            r_free_row(r);
            return;
        }
        if (t->nrows == r->caprows) {
            size_t cap = r->caprows ? 2 * r->caprows : 64;
            char **p = realloc(t->cells, cap * (size_t)t->ncols * sizeof *p);
            if (!p) {
                r_fail(r, NB_ENOMEM, "out of memory");
                r_free_row(r);
                return;
            }
            t->cells = p;
            r->caprows = cap;
        }
        memcpy(t->cells + t->nrows * (size_t)t->ncols, r->row,
               (size_t)t->ncols * sizeof *r->row);
        t->nrows++;
        r->nrow = 0;
    }
    r->line++;
}

/* Reads fp (closed here) into t; path names it in messages. */
static int read_stream(FILE *fp, const char *path, struct nb_csv_table *t,
                       struct nb_error *err)
{
    struct csv_parser p;
    struct reader r = {.t = t, .path = path, .line = 1, .err = err};
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL |
                         CSV_EMPTY_IS_NULL) != 0) {
        fclose(fp);
        return nb_error_set(err, NB_ENOMEM, path, 0, "cannot set up libcsv");
    }
    char buf[65536];
    size_t n;
    while (!r.status && (n = fread(buf, 1, sizeof buf, fp)) > 0) {
        if (csv_parse(&p, buf, n, r_field, r_row, &r) != n && !r.status) {
            int e = csv_error(&p);
            r.status = e == CSV_EPARSE ? NB_EFORMAT : NB_ENOMEM;
            nb_error_set(err, r.status, path, (int)r.line,
                         "malformed CSV (%s)", csv_strerror(e));
        }
    }
    if (!r.status && ferror(fp))
        r.status = nb_error_set(err, NB_EIO, path, 0, "read error: %s",
                                strerror(errno));
    if (!r.status && csv_fini(&p, r_field, r_row, &r) != 0 && !r.status) {
        r.status = NB_EFORMAT;
        nb_error_set(err, r.status, path, (int)r.line,
                     "malformed CSV (%s)", csv_strerror(csv_error(&p)));
    }
    csv_free(&p);
    fclose(fp);
    r_free_row(&r);
    free(r.row);
    if (!r.status && r.unterminated)
        r.status = nb_error_set(err, NB_EFORMAT, path, (int)r.line - 1,
                                "last row has no line end (the file was cut "
                                "short)");
    if (!r.status && !t->header)
        r.status = nb_error_set(err, NB_EFORMAT, path, 0,
                                "no header row (empty file)");
    if (r.status)
        nb_csv_table_free(t);
    return r.status;
}

int nb_csv_read(const char *path, struct nb_csv_table *t, struct nb_error *err)
{
    memset(t, 0, sizeof *t);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return nb_error_set(err, NB_EIO, path, 0, "cannot open: %s",
                            strerror(errno));
    return read_stream(fp, path, t, err);
}

int nb_csv_read_mem(const char *buf, size_t len, const char *name,
                    struct nb_csv_table *t, struct nb_error *err)
{
    memset(t, 0, sizeof *t);
    if (len == 0)
        return nb_error_set(err, NB_EFORMAT, name, 0, "no header row (empty file)");
    FILE *fp = fmemopen((void *)buf, len, "rb");
    if (!fp)
        return nb_error_set(err, NB_ENOMEM, name, 0, "cannot read from memory: %s",
                            strerror(errno));
    return read_stream(fp, name, t, err);
}

void nb_csv_table_free(struct nb_csv_table *t)
{
    if (!t)
        return;
    if (t->header)
        for (int i = 0; i < t->ncols; i++)
            free(t->header[i]);
    free(t->header);
    if (t->cells)
        for (size_t i = 0; i < t->nrows * (size_t)t->ncols; i++)
            free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}

int nb_csv_col(const struct nb_csv_table *t, const char *name)
{
    for (int i = 0; i < t->ncols; i++)
        if (!strcmp(t->header[i], name))
            return i;
    return -1;
}

const char *nb_csv_cell(const struct nb_csv_table *t, size_t row, int col)
{
    NB_ASSERT(row < t->nrows && col >= 0 && col < t->ncols);
    return t->cells[row * (size_t)t->ncols + (size_t)col];
}

int nb_csv_double(const struct nb_csv_table *t, size_t row, int col,
                  bool missing_ok, const char *path, double *v,
                  struct nb_error *err)
{
    const char *s = nb_csv_cell(t, row, col);
    *v = NAN;
    if (!s) {
        if (missing_ok)
            return 0;
        return nb_error_set(err, NB_EFORMAT, path, (int)(row + 2),
                            "column %s: missing value", t->header[col]);
    }
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end || (errno == ERANGE && isinf(x)))
        return nb_error_set(err, NB_EFORMAT, path, (int)(row + 2),
                            "column %s: '%s' is not a number", t->header[col], s);
    *v = x;
    return 0;
}
