/* src/analyze/sum_read.c - reading run directories (config.ini, metrics,
 * DONE or error.txt, probes.csv streamed, slice.csv) into a summary; see
 * summarize.h. */
#define _GNU_SOURCE /* qsort_r */
#include "analyze/summarize.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <csv.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>

#include "config/keys.h"
#include "probe/probe.h"
#include "run/csvio.h"
#include "run/train.h"

#include "analyze/sum_impl.h"

/* ======================================================================
 * Reading one run directory
 * ====================================================================== */

/* The value of `key = value` (also `key: value`) in a small text file;
 * false when the file or the key is absent. */
static bool kv_file(const char *path, const char *key, char *out, size_t size)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return false;
    char line[1024];
    bool found = false;
    size_t kl = strlen(key);
    while (!found && fgets(line, sizeof line, fp)) {
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (strncmp(p, key, kl) != 0)
            continue;
        p += kl;
        if (*p && !isspace((unsigned char)*p) && *p != '=' && *p != ':')
            continue;
        while (isspace((unsigned char)*p) || *p == '=' || *p == ':')
            p++;
        size_t n = strlen(p);
        while (n && isspace((unsigned char)p[n - 1]))
            n--;
        snprintf(out, size, "%.*s", (int)n, p);
        found = true;
    }
    fclose(fp);
    return found;
}

/* The state of a run directory: DONE (naming this run_id, when it names
 * one) with status done or diverged; error.txt without DONE = failed;
 * anything else pending.  *wall gets DONE's wall_seconds (NaN if none). */
static int run_status_on_disk(const char *dir, const char *run_id, double *wall)
{
    char path[4200], v[128];
    *wall = NAN;
    snprintf(path, sizeof path, "%s/DONE", dir);
    if (sum_file_exists(path)) {
        bool stale = run_id && kv_file(path, "run_id", v, sizeof v) && strcmp(v, run_id);
        if (!stale) {
            if (kv_file(path, "wall_seconds", v, sizeof v))
                sum_parse_num(v, wall);
            if (kv_file(path, "status", v, sizeof v) && !strcmp(v, "diverged"))
                return NB_SUM_DIVERGED;
            return NB_SUM_DONE;
        }
    }
    snprintf(path, sizeof path, "%s/error.txt", dir);
    if (sum_file_exists(path))
        return NB_SUM_FAILED;
    return NB_SUM_PENDING;
}

int sum_col_of(const struct nb_sum_table *t, const char *name)
{
    for (int i = 0; i < t->ncols; i++)
        if (!strcmp(t->names[i], name))
            return i;
    return -1;
}

double sum_tval(const struct nb_sum_table *t, size_t row, int col)
{
    return col < 0 ? NAN : t->v[row * (size_t)t->ncols + (size_t)col];
}

/* metrics.csv (the file at path, or text when not NULL) into a numeric table (columns that are not numbers are
 * left out), with train_error and test_error appended. */
static int read_metrics(const char *path, const char *text, size_t len,
                        struct nb_sum_table *out, struct nb_error *err)
{
    struct nb_csv_table t;
    int rc = text ? nb_csv_read_mem(text, len, path, &t, err) : nb_csv_read(path, &t, err);
    if (rc)
        return rc;
    int *keep = calloc((size_t)t.ncols + 1, sizeof *keep);
    if (!keep) {
        nb_csv_table_free(&t);
        return nb_error_oom(err);
    }
    int nk = 0;
    for (int c = 0; c < t.ncols; c++) {
        const char *first = NULL;
        for (size_t r = 0; r < t.nrows && !first; r++)
            first = nb_csv_cell(&t, r, c);
        double v;
        if (first && !sum_parse_num(first, &v))
            continue; /* a text column */
        keep[nk++] = c;
    }
    int c_tracc = nb_csv_col(&t, "train_acc"), c_teacc = nb_csv_col(&t, "test_acc");
    int extra = (c_tracc >= 0 && nb_csv_col(&t, "train_error") < 0) +
                (c_teacc >= 0 && nb_csv_col(&t, "test_error") < 0);
    memset(out, 0, sizeof *out);
    out->ncols = nk + extra;
    out->names = calloc((size_t)out->ncols, sizeof *out->names);
    out->nrows = t.nrows;
    out->v = malloc((t.nrows ? t.nrows : 1) * (size_t)out->ncols * sizeof *out->v);
    if (!out->names || !out->v) {
        rc = nb_error_oom(err);
        goto done;
    }
    for (int i = 0; i < nk; i++)
        if (!(out->names[i] = strdup(t.header[keep[i]]))) {
            rc = nb_error_oom(err);
            goto done;
        }
    int ci = nk;
    int d_tr = -1, d_te = -1;
    if (c_tracc >= 0 && nb_csv_col(&t, "train_error") < 0)
        out->names[d_tr = ci++] = strdup("train_error");
    if (c_teacc >= 0 && nb_csv_col(&t, "test_error") < 0)
        out->names[d_te = ci++] = strdup("test_error");
    for (int i = nk; i < out->ncols; i++)
        if (!out->names[i]) {
            rc = nb_error_oom(err);
            goto done;
        }
    for (size_t r = 0; r < t.nrows; r++) {
        double *row = out->v + r * (size_t)out->ncols;
        for (int i = 0; i < nk; i++)
            if ((rc = nb_csv_double(&t, r, keep[i], true, path, &row[i], err)))
                goto done;
        double v;
        if (d_tr >= 0) {
            nb_csv_double(&t, r, c_tracc, true, path, &v, NULL);
            row[d_tr] = 100.0 * (1.0 - v);
        }
        if (d_te >= 0) {
            nb_csv_double(&t, r, c_teacc, true, path, &v, NULL);
            row[d_te] = 100.0 * (1.0 - v);
        }
    }
done:
    free(keep);
    nb_csv_table_free(&t);
    if (rc)
        sum_table_free(out);
    return rc;
}

/* Wall time: the last value of timing.csv's time-like column. */
static double read_wall_time(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/timing.csv", dir);
    if (!sum_file_exists(path))
        return NAN;
    struct nb_csv_table t;
    if (nb_csv_read(path, &t, NULL))
        return NAN;
    static const char *const names[] = {"seconds", "wall", "wall_s", "time",
                                        "wall_time", "elapsed", NULL};
    double v = NAN;
    for (int i = 0; names[i] && isnan(v); i++) {
        int c = nb_csv_col(&t, names[i]);
        if (c >= 0 && t.nrows > 0)
            nb_csv_double(&t, t.nrows - 1, c, true, path, &v, NULL);
    }
    nb_csv_table_free(&t);
    return v;
}

/* The run's per-run scalars from its metrics table: final, best and
 * validation-selected test metrics, final training metrics, steps, epochs,
 * steps to target, wall time, diverged. */
static void compute_scalars(struct nb_sum_run *r)
{
    const struct nb_sum_table *t = &r->metrics;
    int c_step = sum_col_of(t, "step"), c_epoch = sum_col_of(t, "epoch");
    int c_tacc = sum_col_of(t, "test_acc"), c_tloss = sum_col_of(t, "test_loss");
    int c_rloss = sum_col_of(t, "train_loss"), c_racc = sum_col_of(t, "train_acc");
    int c_time = sum_col_of(t, "time"), c_vacc = sum_col_of(t, "val_acc");
    for (int i = 0; i < NB_SC_COUNT; i++)
        r->sc[i] = NAN;
    r->sc[NB_SC_DIVERGED] = r->status == NB_SUM_DIVERGED;
    /* steps per epoch from the last row with a positive epoch */
    for (size_t i = t->nrows; i-- > 0;) {
        double st = sum_tval(t, i, c_step), ep = sum_tval(t, i, c_epoch);
        if (st > 0 && ep > 0) {
            r->steps_per_epoch = st / ep;
            break;
        }
    }
    if (t->nrows == 0)
        return;
    size_t last = t->nrows - 1;
    r->sc[NB_SC_STEPS] = sum_tval(t, last, c_step);
    r->sc[NB_SC_EPOCHS] = sum_tval(t, last, c_epoch);
    if (c_time >= 0)
        r->sc[NB_SC_WALL_TIME] = sum_tval(t, last, c_time);
    if (r->status == NB_SUM_DIVERGED)
        return;
    double acc = sum_tval(t, last, c_tacc);
    r->sc[NB_SC_FINAL_TEST_ACC] = acc;
    r->sc[NB_SC_FINAL_TEST_ERROR] = 100.0 * (1.0 - acc);
    r->sc[NB_SC_FINAL_TEST_LOSS] = sum_tval(t, last, c_tloss);
    r->sc[NB_SC_FINAL_TRAIN_LOSS] = sum_tval(t, last, c_rloss);
    r->sc[NB_SC_FINAL_TRAIN_ACC] = sum_tval(t, last, c_racc);
    r->sc[NB_SC_FINAL_TRAIN_ERROR] = 100.0 * (1.0 - sum_tval(t, last, c_racc));
    double best = NAN, minloss = NAN, tail[5];
    int nt = 0;
    for (size_t i = 0; i < t->nrows; i++) {
        double a = sum_tval(t, i, c_tacc), l = sum_tval(t, i, c_rloss);
        if (isfinite(a) && !(a <= best))
            best = a;
        if (isfinite(l) && !(l >= minloss))
            minloss = l;
    }
    for (size_t i = t->nrows; i-- > 0 && nt < 5;) {
        double a = sum_tval(t, i, c_tacc);
        if (isfinite(a))
            tail[nt++] = 100.0 * (1.0 - a);
    }
    r->sc[NB_SC_BEST_TEST_ACC] = best;
    r->sc[NB_SC_BEST_TEST_ERROR] = 100.0 * (1.0 - best);
    /* model selection by validation: the first evaluation with the highest
     * val_acc */
    if (c_vacc >= 0) {
        double bv = NAN;
        for (size_t i = 0; i < t->nrows; i++) {
            double v = sum_tval(t, i, c_vacc);
            if (isfinite(v) && !(v <= bv)) {
                bv = v;
                r->sc[NB_SC_SELECTED_TEST_ACC] = sum_tval(t, i, c_tacc);
            }
        }
        r->sc[NB_SC_SELECTED_TEST_ERROR] = 100.0 * (1.0 - r->sc[NB_SC_SELECTED_TEST_ACC]);
    }
    r->sc[NB_SC_MIN_TRAIN_LOSS] = minloss;
    nb_stats(tail, (size_t)nt, NULL, NULL, NULL, NULL, &r->sc[NB_SC_FINAL5_TEST_ERROR]);
    int kt = nb_key_lookup("experiment", "target_accuracy");
    double target = 0;
    if (kt >= 0 && r->vals[kt])
        sum_parse_num(r->vals[kt], &target);
    if (target > 0)
        for (size_t i = 0; i < t->nrows; i++)
            if (sum_tval(t, i, c_tacc) >= target) {
                r->sc[NB_SC_STEPS_TO_TARGET] = sum_tval(t, i, c_step);
                r->sc[NB_SC_EPOCHS_TO_TARGET] = sum_tval(t, i, c_epoch);
                break;
            }
}

/* ---- probes.csv, streamed ------------------------------------------------ */

enum { PC_STEP, PC_PROBE, PC_LAYER, PC_PARAM, PC_PV, PC_STAT, PC_VALUE, PC_N };
static const char *const pcol_names[PC_N] = {"step", "probe", "layer", "param",
                                             "param_value", "stat", "value"};

struct preader {
    struct nb_summary *s;
    struct nb_sum_run *r;
    const char *path;
    long line;
    int ncols;          /* header fields */
    int col[PC_N];      /* header position of each needed column */
    int nf;             /* fields of the current row */
    char *f[PC_N];      /* the needed fields of the current row */
    bool header_done;
    bool unterminated;
    int status;
    struct nb_error *err;
    char **hdr;         /* header fields while reading the header */
    int nhdr, caphdr;
};

/* Records the probes.csv reader's first error (a message with one %s
 * argument). */
static void pr_fail(struct preader *p, int st, const char *fmt, const char *a)
{
    if (p->status)
        return;
    p->status = st;
    nb_error_set(p->err, st, p->path, (int)p->line, fmt, a);
}

/* libcsv field callback: keeps the header's names, or the needed fields of
 * a row. */
static void pr_field(void *data, size_t len, void *user)
{
    struct preader *p = user;
    (void)len;
    if (p->status)
        return;
    int i = p->nf++;
    const char *s = data; /* NUL-terminated (CSV_APPEND_NULL); NULL if empty */
    if (!p->header_done) {
        if (p->nhdr == p->caphdr) {
            int cap = p->caphdr ? 2 * p->caphdr : 16;
            char **n = realloc(p->hdr, (size_t)cap * sizeof *n);
            if (!n) {
                pr_fail(p, NB_ENOMEM, "%s", "out of memory");
                return;
            }
            p->hdr = n;
            p->caphdr = cap;
        }
        p->hdr[p->nhdr++] = strdup(s ? s : "");
        return;
    }
    for (int c = 0; c < PC_N; c++)
        if (p->col[c] == i) {
            free(p->f[c]);
            p->f[c] = s ? strdup(s) : NULL;
            if (s && !p->f[c])
                pr_fail(p, NB_ENOMEM, "%s", "out of memory");
        }
}

/* libcsv row callback: maps the header's columns, then turns each row into
 * a probe point of the run (strings interned). */
static void pr_row(int c, void *user)
{
    struct preader *p = user;
    if (c == -1)
        p->unterminated = true;
    if (p->status)
        goto next;
    if (!p->header_done) {
        p->ncols = p->nhdr;
        for (int k = 0; k < PC_N; k++) {
            p->col[k] = -1;
            for (int j = 0; j < p->nhdr; j++)
                if (!strcmp(p->hdr[j], pcol_names[k]))
                    p->col[k] = j;
            if (p->col[k] < 0)
                pr_fail(p, NB_EFORMAT, "no column '%s' in the header", pcol_names[k]);
        }
        p->header_done = true;
        goto next;
    }
    if (p->nf != p->ncols) {
        char buf[64];
        snprintf(buf, sizeof buf, "%d fields, the header has %d", p->nf, p->ncols);
        pr_fail(p, NB_EFORMAT, "row with %s", buf);
        goto next;
    }
    /* a stat or layer the experiment does not keep (probe_stats,
     * probe_layers) */
    if (p->f[PC_PROBE] && p->f[PC_STAT] &&
        !nb_summary_keeps_probe(p->s, p->f[PC_PROBE], p->f[PC_STAT], p->f[PC_LAYER]))
        goto next;
    struct nb_sum_prow row;
    double v;
    if (!sum_parse_num(p->f[PC_STEP], &v)) {
        pr_fail(p, NB_EFORMAT, "step '%s' is not a number",
                p->f[PC_STEP] ? p->f[PC_STEP] : "");
        goto next;
    }
    row.step = (long)v;
    row.param_value = NAN;
    if (p->f[PC_PV] && !sum_parse_num(p->f[PC_PV], &row.param_value)) {
        pr_fail(p, NB_EFORMAT, "param_value '%s' is not a number", p->f[PC_PV]);
        goto next;
    }
    row.value = NAN;
    if (p->f[PC_VALUE] && !sum_parse_num(p->f[PC_VALUE], &row.value)) {
        pr_fail(p, NB_EFORMAT, "value '%s' is not a number", p->f[PC_VALUE]);
        goto next;
    }
    row.probe = sum_str_intern(p->s, p->f[PC_PROBE]);
    row.layer = sum_str_intern(p->s, p->f[PC_LAYER]);
    row.param = sum_str_intern(p->s, p->f[PC_PARAM]);
    row.stat = sum_str_intern(p->s, p->f[PC_STAT]);
    if (row.probe == -2 || row.layer == -2 || row.param == -2 || row.stat == -2) {
        pr_fail(p, NB_ENOMEM, "%s", "out of memory");
        goto next;
    }
    if (row.probe < 0 || row.stat < 0) {
        pr_fail(p, NB_EFORMAT, "%s", "empty probe or stat");
        goto next;
    }
    struct nb_sum_run *r = p->r;
    if (r->n_probes == r->cap_probes) {
        size_t cap = r->cap_probes ? 2 * r->cap_probes : 256;
        struct nb_sum_prow *n = realloc(r->probes, cap * sizeof *n);
        if (!n) {
            pr_fail(p, NB_ENOMEM, "%s", "out of memory");
            goto next;
        }
        r->probes = n;
        r->cap_probes = cap;
    }
    r->probes[r->n_probes++] = row;
next:
    for (int k = 0; k < PC_N; k++) {
        free(p->f[k]);
        p->f[k] = NULL;
    }
    p->nf = 0;
    p->line++;
}

/* Makes room for one more element of `size` bytes in arr, an array of
 * *cap elements holding n: doubles the capacity (first: `first`).
 * Returns the array (moved, perhaps), or NULL when out of memory (arr and
 * *cap are then unchanged). */
void *sum_grow(void *arr, size_t *cap, size_t n, size_t size, size_t first)
{
    if (n < *cap)
        return arr;
    size_t c = *cap ? 2 * *cap : first;
    void *p = realloc(arr, c * size);
    if (p)
        *cap = c;
    return p;
}

/* Appends a probe point to run r; 0 or NB_ENOMEM. */
static int push_prow(struct nb_sum_run *r, const struct nb_sum_prow *row)
{
    void *g = sum_grow(r->probes, &r->cap_probes, r->n_probes, sizeof *row, 256);
    if (!g)
        return NB_ENOMEM;
    r->probes = g;
    r->probes[r->n_probes++] = *row;
    return 0;
}

/* landscape loss_range and grad_change_range per step. */
static int derive_landscape(struct nb_summary *s, struct nb_sum_run *r,
                            struct nb_error *err)
{
    int land = nb_summary_str_find(s, "landscape");
    if (land < 0)
        return 0;
    int ids[4] = {nb_summary_str_find(s, "loss_min"), nb_summary_str_find(s, "loss_max"),
                  nb_summary_str_find(s, "grad_change_min"),
                  nb_summary_str_find(s, "grad_change_max")};
    int lr = sum_str_intern(s, nb_sum_derived_stats[0]),
        gr = sum_str_intern(s, nb_sum_derived_stats[1]);
    if (lr == -2 || gr == -2)
        return nb_error_oom(err);
    size_t n = r->n_probes;
    double v[4] = {NAN, NAN, NAN, NAN};
    long step = LONG_MIN;
    for (size_t i = 0; i <= n; i++) {
        const struct nb_sum_prow *p = i < n ? &r->probes[i] : NULL;
        if (p && p->probe != land)
            continue;
        if (!p || p->step != step) {
            if (step != LONG_MIN) {
                struct nb_sum_prow d = {.step = step, .probe = land, .layer = -1,
                                        .param = -1, .param_value = NAN};
                if (!isnan(v[0]) || !isnan(v[1])) {
                    d.stat = lr;
                    d.value = v[1] - v[0];
                    if (push_prow(r, &d))
                        return nb_error_oom(err);
                }
                if (!isnan(v[2]) || !isnan(v[3])) {
                    d.stat = gr;
                    d.value = v[3] - v[2];
                    if (push_prow(r, &d))
                        return nb_error_oom(err);
                }
            }
            if (!p)
                break;
            /* push_prow may have moved r->probes: take p afresh */
            p = &r->probes[i];
            step = p->step;
            v[0] = v[1] = v[2] = v[3] = NAN;
        }
        for (int k = 0; k < 4; k++)
            if (ids[k] >= 0 && p->stat == ids[k] && p->layer < 0)
                v[k] = p->value;
    }
    return 0;
}

/* probes.csv: the file at path, or text when not NULL. */
static int read_probes(struct nb_summary *s, struct nb_sum_run *r,
                       const char *path, const char *text, size_t len,
                       struct nb_error *err)
{
    FILE *fp = text ? fmemopen((void *)text, len, "rb") : fopen(path, "rb");
    if (!fp)
        return nb_error_set(err, NB_EIO, path, 0, "cannot open: %s", strerror(errno));
    struct csv_parser cp;
    struct preader p = {.s = s, .r = r, .path = path, .line = 1, .err = err};
    if (csv_init(&cp, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL | CSV_EMPTY_IS_NULL)) {
        fclose(fp);
        return nb_error_oom(err);
    }
    char buf[65536];
    size_t n;
    while (!p.status && (n = fread(buf, 1, sizeof buf, fp)) > 0)
        if (csv_parse(&cp, buf, n, pr_field, pr_row, &p) != n && !p.status) {
            p.status = NB_EFORMAT;
            nb_error_set(err, NB_EFORMAT, path, (int)p.line, "malformed CSV (%s)",
                         csv_strerror(csv_error(&cp)));
        }
    if (!p.status && csv_fini(&cp, pr_field, pr_row, &p) && !p.status) {
        p.status = NB_EFORMAT;
        nb_error_set(err, NB_EFORMAT, path, (int)p.line, "malformed CSV (%s)",
                     csv_strerror(csv_error(&cp)));
    }
    csv_free(&cp);
    fclose(fp);
    for (int i = 0; i < p.nhdr; i++)
        free(p.hdr[i]);
    free(p.hdr);
    for (int k = 0; k < PC_N; k++)
        free(p.f[k]);
    if (!p.status && p.unterminated)
        p.status = nb_error_set(err, NB_EFORMAT, path, (int)p.line - 1,
                                "last row has no line end (the file was cut short)");
    if (!p.status && !p.header_done)
        p.status = nb_error_set(err, NB_EFORMAT, path, 0, "no header row (empty file)");
    if (!p.status)
        p.status = derive_landscape(s, r, err);
    return p.status;
}

/* ---- slice.csv ------------------------------------------------------------ */

struct slice_build {
    double *a, *b, *loss, *acc;
    size_t n, cap;
    int scans;        /* completed scans */
    int scan_len;     /* points in the first scan */
    size_t in_scan;   /* points in the current scan */
    double step;      /* the slice's step (NaN: no step column, or empty) */
};

/* Appends one slice point (a, b, loss, acc) to b; 0, or -1 when out of
 * memory. */
static int sb_push(struct slice_build *b, const double v[4])
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        double *p[4] = {realloc(b->a, cap * sizeof(double)), NULL, NULL, NULL};
        if (!p[0])
            return -1;
        b->a = p[0];
        if (!(p[1] = realloc(b->b, cap * sizeof(double))))
            return -1;
        b->b = p[1];
        if (!(p[2] = realloc(b->loss, cap * sizeof(double))))
            return -1;
        b->loss = p[2];
        if (!(p[3] = realloc(b->acc, cap * sizeof(double))))
            return -1;
        b->acc = p[3];
        b->cap = cap;
    }
    b->a[b->n] = v[0];
    b->b[b->n] = v[1];
    b->loss[b->n] = v[2];
    b->acc[b->n] = v[3];
    b->n++;
    b->in_scan++;
    return 0;
}

/* Ends the current scan of a slice: its length must match the first scan's. */
static void sb_end_scan(struct slice_build *b)
{
    if (b->in_scan == 0)
        return;
    if (b->scans == 0)
        b->scan_len = (int)b->in_scan;
    b->scans++;
    b->in_scan = 0;
}

/* Moves a finished slice into r; 0, or an error for a ragged grid.  One
 * scan is a 1-D slice (the probe writes its P points as one block): P x 1
 * points along a. */
static int sb_finish(struct nb_sum_run *r, struct slice_build *b, const char *path,
                     int line, struct nb_error *err)
{
    sb_end_scan(b);
    if (b->n == 0)
        return 0;
    if ((size_t)b->scans * (size_t)b->scan_len != b->n) {
        free(b->a), free(b->b), free(b->loss), free(b->acc);
        memset(b, 0, sizeof *b);
        return nb_error_set(err, NB_EFORMAT, path, line,
                            "slice is not a grid (scans of different lengths)");
    }
    struct nb_sum_slice *n = realloc(r->slices, (size_t)(r->n_slices + 1) * sizeof *n);
    if (!n)
        return nb_error_oom(err);
    r->slices = n;
    struct nb_sum_slice *sl = &r->slices[r->n_slices++];
    sl->na = b->scans > 1 ? b->scans : (int)b->n;
    sl->nb = b->scans > 1 ? b->scan_len : 1;
    sl->dim = sl->nb > 1 ? 2 : 1;
    sl->step = isnan(b->step) ? -1 : (long)b->step;
    sl->a = b->a, sl->b = b->b, sl->loss = b->loss, sl->acc = b->acc;
    memset(b, 0, sizeof *b);
    return 0;
}

/* Which column of slice.csv each of nb_probe_slice_cols is, from the
 * header line p (split in place); step may be missing (-1: a file written
 * before it), the others may not.  0, or an error. */
static int slice_header(char *p, int col[NB_SLICE_COL_COUNT], int *ncols, const char *path,
                        struct nb_error *err)
{
    for (int c = 0; c < NB_SLICE_COL_COUNT; c++)
        col[c] = -1;
    int k = 0;
    for (char *f = p;; k++) {
        char *comma = strchr(f, ',');
        if (comma)
            *comma = '\0';
        int c = 0;
        while (c < NB_SLICE_COL_COUNT && strcmp(f, nb_probe_slice_cols[c]))
            c++;
        if (c == NB_SLICE_COL_COUNT || col[c] >= 0)
            return nb_error_set(err, NB_EFORMAT, path, 1, "%s column '%s' in the header",
                                c == NB_SLICE_COL_COUNT ? "unknown" : "a second", f);
        col[c] = k;
        if (!comma)
            break;
        f = comma + 1;
    }
    *ncols = k + 1;
    for (int c = 0; c < NB_SLICE_COL_COUNT; c++)
        if (col[c] < 0 && c != NB_SLICE_STEP)
            return nb_error_set(err, NB_EFORMAT, path, 1, "no column '%s' in the header",
                                nb_probe_slice_cols[c]);
    return 0;
}

/* slice.csv (probe.h): the file at path, or text when not NULL.  Its
 * columns are found by name, so files written before the step column
 * read as well; an empty file (no slice was taken) has no slices. */
static int read_slices(struct nb_sum_run *r, const char *path, const char *text,
                       size_t len, struct nb_error *err)
{
    FILE *fp = text ? fmemopen((void *)text, len, "r") : fopen(path, "r");
    if (!fp)
        return nb_error_set(err, NB_EIO, path, 0, "cannot open: %s", strerror(errno));
    char line[1024];
    int lineno = 0, blanks = 0, rc = 0, col[NB_SLICE_COL_COUNT], ncols = 0;
    struct slice_build b;
    memset(&b, 0, sizeof b);
    b.step = NAN;
    while (fgets(line, sizeof line, fp)) {
        lineno++;
        char *p = line;
        size_t len = strlen(p);
        while (len && (p[len - 1] == '\n' || p[len - 1] == '\r'))
            p[--len] = '\0';
        if (lineno == 1) {
            if ((rc = slice_header(p, col, &ncols, path, err)))
                break;
            continue;
        }
        if (!len) {
            blanks++;
            sb_end_scan(&b);
            continue;
        }
        if (blanks >= 2 && b.n > 0) {
            if ((rc = sb_finish(r, &b, path, lineno, err)))
                break;
            b.step = NAN;
        }
        blanks = 0;
        double f[NB_SLICE_COL_COUNT];
        for (int c = 0; c < NB_SLICE_COL_COUNT; c++)
            f[c] = NAN;
        char *q = p;
        for (int k = 0; k < ncols && !rc; k++) {
            char *comma = strchr(q, ',');
            if (comma)
                *comma = '\0';
            else if (k + 1 < ncols)
                rc = nb_error_set(err, NB_EFORMAT, path, lineno,
                                  "expected %d fields, as the header has", ncols);
            int c = 0;
            while (c < NB_SLICE_COL_COUNT && col[c] != k)
                c++;
            if (!rc && *q && !sum_parse_num(q, &f[c]))
                rc = nb_error_set(err, NB_EFORMAT, path, lineno, "'%s' is not a number", q);
            q = comma ? comma + 1 : q + strlen(q);
        }
        if (!rc && *q)
            rc = nb_error_set(err, NB_EFORMAT, path, lineno,
                              "expected %d fields, as the header has", ncols);
        if (rc)
            break;
        if (b.n == 0)
            b.step = f[NB_SLICE_STEP];
        else if (!(f[NB_SLICE_STEP] == b.step || (isnan(b.step) && isnan(f[NB_SLICE_STEP])))) {
            rc = nb_error_set(err, NB_EFORMAT, path, lineno,
                              "step %g in a slice taken at step %g (slices are separated "
                              "by two blank lines)", f[NB_SLICE_STEP], b.step);
            break;
        }
        double v[4] = {f[NB_SLICE_A], f[NB_SLICE_B], f[NB_SLICE_LOSS], f[NB_SLICE_ACC]};
        if (sb_push(&b, v)) {
            rc = nb_error_oom(err);
            break;
        }
    }
    fclose(fp);
    if (!rc)
        rc = sb_finish(r, &b, path, lineno, err);
    free(b.a), free(b.b), free(b.loss), free(b.acc);
    return rc;
}

/* A number from text (the whole of it), or NaN. */
static double number_or_nan(const char *text)
{
    char *end;
    double x = strtod(text, &end);
    return end != text && !*end ? x : NAN;
}

/* Reads the files of a finished run. */
static int load_run_files(struct nb_summary *s, struct nb_sum_run *r,
                          struct nb_error *err)
{
    char path[4200], v[64];
    int rc;
    snprintf(path, sizeof path, "%s/metrics.csv", r->dir);
    if (sum_file_exists(path) && (rc = read_metrics(path, NULL, 0, &r->metrics, err)))
        return rc;
    double wall = r->sc[NB_SC_WALL_TIME];
    compute_scalars(r);
    snprintf(path, sizeof path, "%s/meta.txt", r->dir);
    if (kv_file(path, "params", v, sizeof v))
        r->sc[NB_SC_PARAMS] = number_or_nan(v);
    if (!isnan(wall))
        r->sc[NB_SC_WALL_TIME] = wall;
    else if (isnan(r->sc[NB_SC_WALL_TIME]))
        r->sc[NB_SC_WALL_TIME] = read_wall_time(r->dir);
    snprintf(path, sizeof path, "%s/probes.csv", r->dir);
    if (sum_file_exists(path) && (rc = read_probes(s, r, path, NULL, 0, err)))
        return rc;
    snprintf(path, sizeof path, "%s/slice.csv", r->dir);
    if (sum_file_exists(path) && (rc = read_slices(r, path, NULL, 0, err)))
        return rc;
    return 0;
}

void nb_summary_set_fallback(struct nb_summary *s, nb_sum_fallback_fn fn, void *user)
{
    s->fallback = fn;
    s->fallback_user = user;
}

/* A run without a finished directory, from the fallback (the same
 * readers as load_run_files, over the texts the fallback gives). */
static int load_run_fallback(struct nb_summary *s, struct nb_sum_run *r,
                             struct nb_error *err)
{
    struct nb_sum_runsrc src;
    memset(&src, 0, sizeof src);
    src.wall_time = src.params = NAN;
    int rc = s->fallback(s->fallback_user, r->run_id, &src, err);
    if (rc <= 0)
        return rc;
    char name[1200];
    r->archived = true;
    r->status = src.status;
    rc = 0;
    if (r->status == NB_SUM_DONE || r->status == NB_SUM_DIVERGED) {
        snprintf(name, sizeof name, "%s: run %s: metrics.csv", src.name ? src.name : "archive",
                 r->run_id);
        if (src.metrics && (rc = read_metrics(name, src.metrics, src.metrics_len,
                                              &r->metrics, err)))
            goto out;
        compute_scalars(r);
        r->sc[NB_SC_WALL_TIME] = src.wall_time;
        r->sc[NB_SC_PARAMS] = src.params;
        snprintf(name, sizeof name, "%s: run %s: probes.csv", src.name ? src.name : "archive",
                 r->run_id);
        if (src.probes && (rc = read_probes(s, r, name, src.probes, src.probes_len, err)))
            goto out;
        snprintf(name, sizeof name, "%s: run %s: slice.csv", src.name ? src.name : "archive",
                 r->run_id);
        if (src.slice && (rc = read_slices(r, name, src.slice, src.slice_len, err)))
            goto out;
    }
out:
    free(src.metrics), free(src.probes), free(src.slice);
    return rc;
}

/* Appends the keys not yet listed to the summary's axis order; 0 or
 * NB_ENOMEM. */
static int add_axes(struct nb_summary *s, const int *keys, int n)
{
    for (int i = 0; i < n; i++) {
        int dup = 0;
        for (int j = 0; j < s->n_axis; j++)
            dup |= s->axis_order[j] == keys[i];
        if (dup)
            continue;
        int *p = realloc(s->axis_order, (size_t)(s->n_axis + 1) * sizeof *p);
        if (!p)
            return NB_ENOMEM;
        s->axis_order = p;
        s->axis_order[s->n_axis++] = keys[i];
    }
    return 0;
}

int nb_summary_add_sweep(struct nb_summary *s, const struct nb_sweep *sw,
                         const char *exp_dir, struct nb_error *err)
{
    if (add_axes(s, sw->swept, sw->n_swept))
        return nb_error_oom(err);
    for (size_t i = 0; i < sw->n_runs; i++) {
        const struct nb_run *run = &sw->runs[i];
        struct nb_sum_run *r = sum_run_new(s, err);
        if (!r)
            return NB_ENOMEM;
        memcpy(r->run_id, run->run_id, sizeof r->run_id);
        r->seed = run->seed;
        for (int k = 0; k < nb_key_count(); k++)
            if (run->vals[k] && !(r->vals[k] = strdup(run->vals[k]->text)))
                return nb_error_oom(err);
        size_t len = strlen(exp_dir) + 20;
        if (!(r->dir = malloc(len)))
            return nb_error_oom(err);
        snprintf(r->dir, len, "%s/%s", exp_dir, run->run_id);
        r->status = run_status_on_disk(r->dir, r->run_id, &r->sc[NB_SC_WALL_TIME]);
        if (r->status == NB_SUM_DONE || r->status == NB_SUM_DIVERGED) {
            int rc = load_run_files(s, r, err);
            if (rc)
                return rc;
        } else if (r->status == NB_SUM_PENDING && s->fallback) {
            int rc = load_run_fallback(s, r, err);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

int nb_summary_add_run_dir(struct nb_summary *s, const char *run_dir,
                           struct nb_error *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/config.ini", run_dir);
    struct nb_sweep sw;
    int rc = nb_sweep_load(path, &sw, err);
    if (rc)
        return rc;
    if (sw.n_runs != 1) {
        nb_sweep_free(&sw);
        return nb_error_set(err, NB_EFORMAT, path, 0,
                            "a run's config.ini must resolve to one run, not %zu",
                            sw.n_runs);
    }
    struct nb_sum_run *r = sum_run_new(s, err);
    if (!r) {
        nb_sweep_free(&sw);
        return NB_ENOMEM;
    }
    const struct nb_run *run = &sw.runs[0];
    memcpy(r->run_id, run->run_id, sizeof r->run_id);
    r->seed = run->seed;
    for (int k = 0; k < nb_key_count(); k++)
        if (run->vals[k] && !(r->vals[k] = strdup(run->vals[k]->text))) {
            nb_sweep_free(&sw);
            return nb_error_oom(err);
        }
    nb_sweep_free(&sw);
    if (!(r->dir = strdup(run_dir)))
        return nb_error_oom(err);
    r->status = run_status_on_disk(run_dir, r->run_id, &r->sc[NB_SC_WALL_TIME]);
    if (r->status == NB_SUM_DONE || r->status == NB_SUM_DIVERGED)
        return load_run_files(s, r, err);
    return 0;
}

/* qsort order of string pointers, by strcmp. */
static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int nb_summary_add_dir(struct nb_summary *s, const char *dir,
                       struct nb_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return nb_error_set(err, NB_EIO, dir, 0, "cannot open directory: %s",
                            strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s/config.ini", dir, e->d_name);
        if (!sum_file_exists(path))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 32;
            char **p = realloc(names, cap * sizeof *p);
            if (!p) {
                rc = nb_error_oom(err);
                break;
            }
            names = p;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = nb_error_oom(err);
            break;
        }
        n++;
    }
    closedir(d);
    if (!rc && names)
        qsort(names, n, sizeof *names, cmp_str_ptr);
    for (size_t i = 0; i < n && !rc; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        rc = nb_summary_add_run_dir(s, path, err);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    s->sort_runs = true;
    return rc;
}

