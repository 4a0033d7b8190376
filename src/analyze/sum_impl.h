/* src/analyze/sum_impl.h - what the summary's files share (summarize.c,
 * sum_read.c, sum_select.c, sum_tables.c, sum_figures.c) and nothing else
 * includes.  Each function's contract is at its definition. */
#ifndef NB_HARNESS_SUM_IMPL_H
#define NB_HARNESS_SUM_IMPL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "run/csvio.h"
#include "analyze/summarize.h"

/* Raw per-run points of one group: (coordinates, value, replicate). */
struct rawpt {
    long step;
    int layer, param;
    double pv;
    int layer_key, param_key; /* sort keys: string order of the names */
    double value;
    int rep;
};

struct rawbuf {
    struct rawpt *p;
    size_t n, cap;
};

/* ---- summarize.c ---- */

/* Appends "key=value" (or the bare value) to buf; commas and quotes are
 * replaced so that labels are safe in CSV and gnuplot. */
void sum_label_append(char *buf, size_t size, int key, const char *val);

/* Is key k (over the groups) a function of the keys in keep[0..nk)? */
bool sum_determined(const struct nb_summary *s, int k, const int *keep, int nk);

/* Does path exist (stat succeeds)? */
bool sum_file_exists(const char *path);

/* Parses s fully as a double; false when it is not a number. */
bool sum_parse_num(const char *s, double *v);

/* Compares two canonical values, numbers numerically. */
int sum_cmp_val(const char *a, const char *b);

/* Frees a run's table (names and values); leaves it zeroed. */
void sum_table_free(struct nb_sum_table *t);

/* Interns str; -1 for NULL or "", -2 when out of memory. */
int sum_str_intern(struct nb_summary *s, const char *str);

/* A new zeroed run at the end of s->runs (grown as needed), or NULL with
 * err set when out of memory. */
struct nb_sum_run *sum_run_new(struct nb_summary *s, struct nb_error *err);

/* ---- sum_read.c ---- */

/* Column index of name in t, or -1. */
int sum_col_of(const struct nb_sum_table *t, const char *name);

/* t's value at (row, col); NaN for col -1. */
double sum_tval(const struct nb_sum_table *t, size_t row, int col);

/* Makes room for one more element of `size` bytes in arr, an array of
 * *cap elements holding n: doubles the capacity (first: `first`).
 * Returns the array (moved, perhaps), or NULL when out of memory (arr and
 * *cap are then unchanged). */
void *sum_grow(void *arr, size_t *cap, size_t n, size_t size, size_t first);

/* ---- sum_select.c ---- */

/* Point filters (step, epoch, layer, param, param_value). */
bool sum_point_matches(const struct nb_summary *s, const struct nb_sum_filter *f, int nf, long step,
                       double epoch, int layer, int param, double pv);

/* Steps per epoch of group g (its first run that knows), or NaN. */
double sum_group_spe(const struct nb_summary *s, int g);

/* The order of parameter values (a probe row's param value, NaN where a
 * row has none): NaN first and equal to NaN, then ascending; -1, 0 or 1.
 * Raw points and probe rows both sort and collapse by it. */
int sum_cmp_pv(double a, double b);

/* qsort order of raw points: layer, param, param value, step, replicate. */
int sum_cmp_raw(const void *pa, const void *pb);

/* Do a and b sit at the same coordinates (layer, param, value, step)? */
bool sum_same_point(const struct rawpt *a, const struct rawpt *b);

/* The raw points of metric m in group g that pass the point filters. */
int sum_gather_raw(const struct nb_summary *s, const struct nb_metric *m, int g,
                   const struct nb_sum_filter *f, int nf, struct rawbuf *rb, int *layer_rank,
                   bool *found_col);

/* Ranks of the pooled strings (for sorting layers naturally: a layer
 * name's rank orders conv2 before conv10 only if named so; we sort by
 * the layer_index-free name, which the probe module makes zero-padded
 * or short). */
int *sum_string_ranks(const struct nb_summary *s);

/* ---- sum_tables.c ---- */

/* A double, NaN as a missing field. */
void sum_w_num(struct nb_csvw *w, double v);

/* The sorted distinct evaluation steps of group g's finished runs. */
long *sum_group_steps(const struct nb_summary *s, int g, size_t *n);

/* Row of run r's metrics at step, or -1. */
long sum_row_at_step(const struct nb_sum_run *r, long step);

/* ---- sum_figures.c ---- */

#endif
