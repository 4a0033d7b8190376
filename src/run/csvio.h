/* src/run/csvio.h - CSV files the harness writes and reads back, over
 * libcsv (csv.h, -lcsv).
 *
 * The files (metrics.csv, timing.csv, summary.csv, probes.csv) follow one
 * dialect, so that gnuplot, awk, R and pandas read them without options:
 *  - a header row, then one row per line ('\n'); every row has as many
 *    fields as the header;
 *  - numbers unquoted, doubles in the shortest of %.15g/%.16g/%.17g that
 *    reads back to the same double (nb_format_double), non-finite values
 *    as nan, inf and -inf;
 *  - a string is written bare when it is non-empty and made only of
 *    [A-Za-z0-9_.+/-] (every categorical value, every number), otherwise
 *    quoted by libcsv's csv_fwrite (embedded quotes doubled); strings with
 *    CR or LF are refused, so one line is always one row;
 *  - a missing value is an empty unquoted field; an empty string is "".
 *
 * Reading is strict (CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL |
 * CSV_EMPTY_IS_NULL): a stray quote, a row with a different field count, a
 * last row without its newline (a file cut short) are errors
 * "FILE:LINE: message", so a damaged file is never read as shifted
 * columns.
 *
 * Nothing here keeps global state; writers and tables are caller-owned
 * (init / free, free safe on a zeroed struct). */
#ifndef NB_HARNESS_CSVIO_H
#define NB_HARNESS_CSVIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "core/error.h"

/* ---- writing ------------------------------------------------------------ */

struct nb_csvw {
    FILE *fp;
    char path[1024];
    int ncols; /* fields per row (the header's) */
    int col;   /* fields written in the current row */
    int failed; /* an error happened; reported by end_row / close */
    struct nb_error err;
};

/* Creates (truncates) path and writes the header row of ncols names.
 * Returns 0, or NB_EIO (path and strerror in err) / NB_EINVAL (a bad
 * header name). */
int nb_csvw_open(struct nb_csvw *w, const char *path,
                 const char *const *header, int ncols, struct nb_error *err);

/* Field writers: append one field to the current row (the separator is
 * written for them).  They never fail on their own; an error (too many
 * fields, CR/LF in a string, I/O) is remembered and reported by
 * nb_csvw_end_row. */
void nb_csvw_str(struct nb_csvw *w, const char *s);    /* NULL = missing */
void nb_csvw_double(struct nb_csvw *w, double v);
void nb_csvw_long(struct nb_csvw *w, long long v);
void nb_csvw_missing(struct nb_csvw *w);

/* Ends the row ('\n') and flushes it to the kernel, so a killed process
 * leaves whole rows.  Returns 0, or the first error of the row (NB_EINVAL
 * for a wrong field count, NB_EIO). */
int nb_csvw_end_row(struct nb_csvw *w, struct nb_error *err);

/* Closes the file, after fsync when sync is set.  Returns 0 or NB_EIO.
 * Safe on a zeroed or closed writer. */
int nb_csvw_close(struct nb_csvw *w, bool sync, struct nb_error *err);

/* True when s is written bare (non-empty, only [A-Za-z0-9_.+/-]). */
bool nb_csv_is_bare(const char *s);

/* ---- reading ------------------------------------------------------------ */

struct nb_csv_table {
    int ncols;
    char **header;  /* ncols names */
    size_t nrows;   /* data rows (the header excluded) */
    char **cells;   /* nrows * ncols, row-major; NULL = missing value */
};

/* Reads path strictly into t (zeroed first).  Returns 0, NB_EIO (cannot
 * open / read), NB_EFORMAT ("FILE:LINE: ..." for a malformed file: parse
 * error, field count differing from the header, empty or duplicate header
 * name, no header, last row without newline) or NB_ENOMEM; t is left
 * freed on error. */
int nb_csv_read(const char *path, struct nb_csv_table *t,
                struct nb_error *err);

/* The same for the len bytes at buf (the text of a file named name in
 * messages). */
int nb_csv_read_mem(const char *buf, size_t len, const char *name,
                    struct nb_csv_table *t, struct nb_error *err);

/* Frees t; safe on a zeroed or freed table. */
void nb_csv_table_free(struct nb_csv_table *t);

/* Column index of name, or -1. */
int nb_csv_col(const struct nb_csv_table *t, const char *name);

/* Cell (row, col): its text, or NULL when missing. */
const char *nb_csv_cell(const struct nb_csv_table *t, size_t row, int col);

/* Parses cell (row, col) as a double (strtod with a full end-pointer
 * check; nan/inf accepted).  A missing cell gives NAN and returns 0 when
 * missing_ok, else NB_EFORMAT; text that is not a number is NB_EFORMAT
 * with err naming path, the line (row + 2) and the column. */
int nb_csv_double(const struct nb_csv_table *t, size_t row, int col,
                  bool missing_ok, const char *path, double *v,
                  struct nb_error *err);

#endif
