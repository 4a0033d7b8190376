/* tests/t_summarize.c - summaries over hand-made run directories
 * (tests/sumfix.c): grouping, labels, replicates, per-run scalars,
 * aggregates, aligned curves, probe tables, selections, figure tables,
 * and malformed run files reported as FILE:LINE. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "config/keys.h"
#include "run/csvio.h"
#include "analyze/summarize.h"
#include "config/sweep.h"
#include "sumfix.h"
#include "tap.h"

static char dir[4096];

static int find_group(const struct nb_summary *s, const char *label)
{
    for (int g = 0; g < s->n_groups; g++)
        if (!strcmp(s->groups[g].label, label))
            return g;
    return -1;
}

static const struct nb_sum_run *find_run(const struct nb_summary *s, int g, int rep)
{
    const struct nb_sum_group *G = &s->groups[g];
    return rep < G->n_runs ? &s->runs[G->runs[rep]] : NULL;
}

/* Value of column name in the row of table t where column key == val. */
static double cell(const struct nb_csv_table *t, const char *key, const char *val,
                   const char *name)
{
    int ck = nb_csv_col(t, key), cn = nb_csv_col(t, name);
    if (ck < 0 || cn < 0)
        return NAN;
    for (size_t r = 0; r < t->nrows; r++) {
        const char *v = nb_csv_cell(t, r, ck);
        if (v && !strcmp(v, val)) {
            const char *x = nb_csv_cell(t, r, cn);
            return x ? strtod(x, NULL) : NAN;
        }
    }
    return NAN;
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    if (!fp)
        tap_bail("cannot write %s", path);
    fputs(text, fp);
    fclose(fp);
}

static struct nb_metric metric(const char *name)
{
    struct nb_metric m;
    struct nb_error e;
    if (nb_metric_parse(name, "x", 1, &m, &e))
        tap_bail("metric %s: %s", name, e.msg);
    return m;
}

/* A filter from text (the check module parses these in the program;
 * here they are built by hand to keep this test independent of it). */
static struct nb_sum_filter filt(const char *key, enum nb_cmp op, const char *v)
{
    struct nb_sum_filter f;
    memset(&f, 0, sizeof f);
    if (!strcmp(key, "step"))
        f.key = NB_FK_STEP;
    else if (!strcmp(key, "layer"))
        f.key = NB_FK_LAYER;
    else
        f.key = nb_key_lookup_name(key);
    f.op = op;
    f.n_vals = 1;
    f.vals = malloc(sizeof *f.vals);
    f.num = malloc(sizeof *f.num);
    f.vals[0] = strdup(v);
    char *end;
    f.num[0] = strtod(v, &end);
    if (*end || end == v)
        f.num[0] = NAN;
    f.text = strdup(key);
    return f;
}

static size_t sel(const struct nb_summary *s, const char *mname, struct nb_sum_filter *f,
                  int nf, int mode, double *first)
{
    struct nb_metric m = metric(mname);
    struct nb_sum_point *p;
    size_t n;
    struct nb_error e;
    nb_error_clear(&e);
    int rc = nb_summary_select(s, &m, f, nf, mode, &p, &n, &e);
    if (rc)
        tap_diag("select %s: %s", mname, e.msg);
    *first = n ? p[0].value : NAN;
    free(p);
    nb_metric_free(&m);
    return rc ? (size_t)-1 : n;
}

static void test_sweep_summary(const char *cfg)
{
    struct nb_sweep sw;
    struct nb_error e;
    nb_error_clear(&e);
    ok(nb_sweep_load(cfg, &sw, &e) == 0, "fixture config loads");
    struct nb_summary s;
    nb_summary_init(&s);
    char edir[4200];
    snprintf(edir, sizeof edir, "%s/fx", dir);
    is_int(nb_summary_add_sweep(&s, &sw, edir, &e), 0, "add_sweep");
    is_int(nb_summary_group(&s, &e), 0, "group");
    is_int((long long)s.n_runs, 18, "18 runs");
    is_int(s.n_groups, 6, "6 groups (seeds are replicates)");
    is_int(s.max_reps, 3, "3 replicates");
    is_int(s.n_vary, 3, "varying keys: norm.type, train.batch, optim.lr");
    int nlab = 0;
    for (int j = 0; j < s.n_vary; j++)
        nlab += s.in_label[j];
    is_int(nlab, 2, "lr (zipped to the batch size) is left out of labels");
    is_str(s.groups[0].label, "none bs=8", "group order follows the sweep (0)");
    is_str(s.groups[3].label, "batch bs=32", "group order follows the sweep (3)");
    int gb8 = find_group(&s, "batch bs=8"), gg32 = find_group(&s, "group bs=32");
    int gn32 = find_group(&s, "none bs=32"), gn8 = find_group(&s, "none bs=8");
    ok(gb8 >= 0 && gg32 >= 0 && gn32 >= 0 && gn8 >= 0, "labels name the norm and batch");
    if (gb8 < 0 || gg32 < 0 || gn32 < 0 || gn8 < 0)
        tap_bail("groups missing");
    is_str(s.groups[gb8].title, "batch bs=8 (n=3; 1 diverged)", "title with a diverged run");
    is_str(s.groups[gg32].title, "group bs=32 (n=1; 2 missing)", "title with missing runs");
    is_int(s.groups[gg32].n_missing, 2, "failed + pending = missing");
    is_int(find_run(&s, gg32, 1)->status, NB_SUM_FAILED, "error.txt: failed");
    is_int(find_run(&s, gg32, 2)->status, NB_SUM_PENDING, "no directory: pending");
    is_int(find_run(&s, gb8, 2)->status, NB_SUM_DIVERGED, "DONE status diverged");
    for (int k = 0; k < 3; k++)
        is_int((long long)find_run(&s, gn8, k)->seed, k, "replicate %d is seed %d", k, k);

    const struct nb_sum_run *r = find_run(&s, gn8, 1);
    is_close(r->sc[NB_SC_FINAL_TEST_ACC], sumfix_acc(0, 8, 1), 1e-12, 0, "final_test_acc");
    is_close(r->sc[NB_SC_FINAL_TEST_ERROR], 100 * (1 - sumfix_acc(0, 8, 1)), 1e-9, 0,
             "final_test_error in percent");
    is_close(r->sc[NB_SC_BEST_TEST_ACC], sumfix_acc(0, 8, 1), 1e-12, 0, "best_test_acc");
    is_close(r->sc[NB_SC_FINAL_TRAIN_LOSS], sumfix_loss(0, 8, 1) / 4, 1e-12, 0,
             "final_train_loss");
    is_close(r->sc[NB_SC_MIN_TRAIN_LOSS], sumfix_loss(0, 8, 1) / 4, 1e-12, 0, "min_train_loss");
    is_close(r->sc[NB_SC_STEPS], 200, 0, 0, "steps");
    is_close(r->sc[NB_SC_EPOCHS], 2, 0, 0, "epochs");
    is_close(r->sc[NB_SC_WALL_TIME], 101, 0, 0, "wall_time from DONE");
    is_close(r->sc[NB_SC_STEPS_TO_TARGET], 200, 0, 0, "steps_to_target (none)");
    is_close(find_run(&s, find_group(&s, "group bs=8"), 0)->sc[NB_SC_STEPS_TO_TARGET], 150,
             0, 0, "steps_to_target (group reaches 0.8 at step 150)");
    is_close(r->steps_per_epoch, 100, 1e-9, 0, "steps per epoch");
    double t5[4];
    for (int i = 0; i < 4; i++)
        t5[i] = 100 * (1 - (sumfix_acc(0, 8, 1) - 0.1 * (3 - i) / 4.0));
    is_close(r->sc[NB_SC_FINAL5_TEST_ERROR], 0.5 * (t5[1] + t5[2]), 1e-9, 0,
             "final5_test_error: median of the last evaluations");
    const struct nb_sum_run *d = find_run(&s, gb8, 2);
    ok(isnan(d->sc[NB_SC_FINAL_TEST_ERROR]), "a diverged run has no final error");
    is_close(d->sc[NB_SC_DIVERGED], 1, 0, 0, "diverged = 1");
    is_close(d->sc[NB_SC_STEPS], 100, 0, 0, "a diverged run keeps its steps");

    /* tables */
    char tdir[4300], path[4400];
    snprintf(tdir, sizeof tdir, "%s/tables", dir);
    is_int(nb_summary_write_tables(&s, tdir, &e), 0, "write_tables");
    struct nb_csv_table t;
    snprintf(path, sizeof path, "%s/groups.csv", tdir);
    is_int(nb_csv_read(path, &t, &e), 0, "groups.csv reads back strictly");
    is_int((long long)t.nrows, 6, "groups.csv: one row per group");
    ok(nb_csv_col(&t, "norm.type") >= 0 && nb_csv_col(&t, "train.batch") >= 0 &&
           nb_csv_col(&t, "optim.lr") >= 0,
       "groups.csv repeats the varying keys");
    double m0 = 0;
    for (int k = 0; k < 3; k++)
        m0 += 100 * (1 - sumfix_acc(0, 8, k)) / 3;
    is_close(cell(&t, "label", "none bs=8", "final_test_error_mean"), m0, 1e-9, 0,
             "mean over seeds");
    is_close(cell(&t, "label", "none bs=8", "final_test_error_std"), 0.1, 1e-9, 0,
             "sample standard deviation");
    is_close(cell(&t, "label", "none bs=8", "final_test_error_min"),
             100 * (1 - sumfix_acc(0, 8, 2)), 1e-9, 0, "min");
    is_close(cell(&t, "label", "batch bs=8", "final_test_error_n"), 2, 0, 0,
             "n counts finite values (the diverged run drops out)");
    is_close(cell(&t, "label", "batch bs=8", "final_test_error_mean"),
             50 * (2 - sumfix_acc(1, 8, 0) - sumfix_acc(1, 8, 1)), 1e-9, 0,
             "the mean leaves the diverged run out");
    is_close(cell(&t, "label", "batch bs=8", "diverged_mean"), 1.0 / 3, 1e-12, 0,
             "diverged_mean = fraction diverged");
    is_close(cell(&t, "label", "group bs=32", "n_missing"), 2, 0, 0, "n_missing");
    nb_csv_table_free(&t);

    snprintf(path, sizeof path, "%s/curves.csv", tdir);
    is_int(nb_csv_read(path, &t, &e), 0, "curves.csv reads back");
    {
        int cs = nb_csv_col(&t, "step"), cl = nb_csv_col(&t, "label"),
            cn = nb_csv_col(&t, "n"), cm = nb_csv_col(&t, "train_loss_mean"),
            ce = nb_csv_col(&t, "test_error_mean");
        ok(cs >= 0 && cl >= 0 && cn >= 0 && cm >= 0 && ce >= 0, "curves.csv columns");
        int n25 = -1, n50 = -1, sorted = 1, last_sid = -1;
        double lm50 = NAN;
        int csid = nb_csv_col(&t, "sid");
        for (size_t i = 0; i < t.nrows; i++) {
            int sid = atoi(nb_csv_cell(&t, i, csid));
            sorted &= sid >= last_sid;
            last_sid = sid;
            if (strcmp(nb_csv_cell(&t, i, cl), "none bs=32"))
                continue;
            if (!strcmp(nb_csv_cell(&t, i, cs), "25"))
                n25 = atoi(nb_csv_cell(&t, i, cn));
            if (!strcmp(nb_csv_cell(&t, i, cs), "50")) {
                n50 = atoi(nb_csv_cell(&t, i, cn));
                lm50 = strtod(nb_csv_cell(&t, i, cm), NULL);
            }
        }
        ok(sorted, "curves.csv: each series contiguous (sorted by sid)");
        is_int(n25, 1, "an evaluation only one seed has: n = 1");
        is_int(n50, 3, "aligned step: n = 3");
        is_close(lm50, (sumfix_loss(0, 32, 0) + sumfix_loss(0, 32, 1) + sumfix_loss(0, 32, 2)) / 3,
                 1e-9, 0, "train loss averaged at the aligned step");
    }
    nb_csv_table_free(&t);

    snprintf(path, sizeof path, "%s/probes.csv", tdir);
    is_int(nb_csv_read(path, &t, &e), 0, "probes.csv reads back");
    {
        int cl = nb_csv_col(&t, "label"), cst = nb_csv_col(&t, "stat"),
            cs = nb_csv_col(&t, "step"), cm = nb_csv_col(&t, "mean"), cn = nb_csv_col(&t, "n");
        double v = NAN;
        int n = -1;
        for (size_t i = 0; i < t.nrows; i++)
            if (!strcmp(nb_csv_cell(&t, i, cl), "none bs=32") &&
                !strcmp(nb_csv_cell(&t, i, cst), "loss_range") &&
                !strcmp(nb_csv_cell(&t, i, cs), "10")) {
                v = strtod(nb_csv_cell(&t, i, cm), NULL);
                n = atoi(nb_csv_cell(&t, i, cn));
            }
        double want = 0;
        for (int k = 0; k < 3; k++)
            want += (sumfix_lmax(0, 10, k) - sumfix_lmin(0, 10, k)) / 3;
        is_close(v, want, 1e-9, 0, "derived landscape loss_range, averaged");
        is_int(n, 3, "probe rows aggregated over 3 seeds");
    }
    nb_csv_table_free(&t);

    /* selections */
    struct nb_sum_filter f[3];
    double v;
    f[0] = filt("norm.type", NB_CMP_EQ, "batch");
    f[1] = filt("train.batch", NB_CMP_EQ, "8");
    is_int((long long)sel(&s, "final_test_error", f, 2, NB_SEL_MEAN, &v), 1, "scalar: one group");
    is_close(v, 50 * (2 - sumfix_acc(1, 8, 0) - sumfix_acc(1, 8, 1)), 1e-9, 0,
             "scalar mean over the finite replicates");
    is_int((long long)sel(&s, "final_test_error", f, 2, 0, &v), 1, "replicate 0");
    is_close(v, 100 * (1 - sumfix_acc(1, 8, 0)), 1e-9, 0, "replicate 0's value");
    is_int((long long)sel(&s, "final_test_error", f, 2, 2, &v), 0,
           "replicate 2 diverged: nothing selected");
    is_int((long long)sel(&s, "diverged", f, 2, 2, &v), 1, "but its diverged flag is");
    nb_sum_filter_free(&f[0]);
    nb_sum_filter_free(&f[1]);
    f[0] = filt("norm.type", NB_CMP_EQ, "none");
    f[1] = filt("train.batch", NB_CMP_EQ, "32");
    f[2] = filt("step", NB_CMP_GE, "50");
    is_int((long long)sel(&s, "test_acc", f, 3, NB_SEL_MEAN, &v), 4, "per-step metric: 4 steps");
    is_int((long long)sel(&s, "test_acc", f, 2, NB_SEL_MEAN, &v), 5, "without the step filter: 5");
    is_close(v, 0.5, 1e-12, 0, "the extra step's only value");
    is_int((long long)sel(&s, "landscape.loss_range", f, 2, NB_SEL_MEAN, &v), 3,
           "probe stat: 3 steps");
    is_int((long long)sel(&s, "landscape.loss", f, 2, NB_SEL_MEAN, &v), 9,
           "per-eta probe stat: 3 steps x 3 etas");
    is_int((long long)sel(&s, "landscape.loss_range", f, 2, 1, &v), 3, "replicate 1");
    is_close(v, sumfix_lmax(0, 0, 1) - sumfix_lmin(0, 0, 1), 1e-12, 0,
             "replicate 1's first point is step 0");
    nb_sum_filter_free(&f[2]);
    f[2] = filt("layer", NB_CMP_EQ, "linear2");
    is_int((long long)sel(&s, "ics.cos", f, 3, NB_SEL_MEAN, &v), 3, "ics.cos of one layer");
    is_close(v, 0.9, 1e-12, 0, "its value");
    {
        struct nb_metric m = metric("final_test_error");
        struct nb_sum_point *p;
        size_t n;
        nb_error_clear(&e);
        is_int(nb_summary_select(&s, &m, f, 3, NB_SEL_MEAN, &p, &n, &e), NB_EINVAL,
               "a layer filter on a scalar is an error");
        contains(e.msg, "does not apply", "  and says so");
        nb_metric_free(&m);
    }
    for (int i = 0; i < 3; i++)
        nb_sum_filter_free(&f[i]);

    /* figure tables */
    struct nb_metric beta;
    if (nb_metric_parse("landscape.beta_eff", "t", 1, &beta, &e))
        tap_bail("landscape.beta_eff: %s", e.msg);
    for (int k = 0; k < NB_FIG_COUNT; k++) {
        const char *kind = nb_fig_kind_name(k);
        struct nb_fig_spec fs = {.kind = k, .x = nb_key_lookup("train", "batch"),
                                 .scalar = NB_SC_FINAL_TEST_ERROR};
        if (k == NB_FIG_VS_LR)
            fs.x = nb_key_lookup("optim", "lr");
        if (k == NB_FIG_TRACE) { /* a probe's stat over training */
            fs.scalar = -1;
            fs.probe = &beta;
        }
        snprintf(path, sizeof path, "%s/fig_%s.csv", tdir, kind);
        nb_error_clear(&e);
        int rc = nb_summary_figure_table(&s, &fs, path, &e);
        is_int(rc, 0, "figure table %s", kind);
        if (rc)
            tap_diag("%s", e.msg);
        struct stat st;
        ok(stat(path, &st) == 0 && st.st_size > 100, "  %s is written", kind);
    }
    /* the slice figures: each group's last slice of the dimension, its step */
    snprintf(path, sizeof path, "%s/fig_slice1d.csv", tdir);
    is_int(nb_csv_read(path, &t, &e), 0, "slice1d table reads back");
    {
        int cs = nb_csv_col(&t, "series"), cst = nb_csv_col(&t, "step"),
            ca = nb_csv_col(&t, "a"), cb = nb_csv_col(&t, "b");
        is_int((long long)t.nrows, 10, "slice1d: 2 series (none, batch at bs=32) x 5 points");
        ok(cst >= 0 && cb < 0 && t.nrows == 10 && !strcmp(nb_csv_cell(&t, 0, cst), "100") &&
               !strcmp(nb_csv_cell(&t, 9, cst), "100"),
           "slice1d: a step column (the 1-D slices' step, 100), no b");
        ok(t.nrows == 10 && !strcmp(nb_csv_cell(&t, 0, ca), "-1") &&
               !strcmp(nb_csv_cell(&t, 4, ca), "1") &&
               !strcmp(nb_csv_cell(&t, 5, cs), "batch bs=32 (n=3)"),
           "slice1d: a from -1 to 1 per series");
        is_close(cell(&t, "a", "0", "loss_mean"), 0.11, 1e-12, 0,
                 "slice1d: the loss at the centre, mean over 3 seeds");
    }
    nb_csv_table_free(&t);
    snprintf(path, sizeof path, "%s/fig_slice2d.csv", tdir);
    is_int(nb_csv_read(path, &t, &e), 0, "slice2d table reads back");
    {
        int cst = nb_csv_col(&t, "step"), cb = nb_csv_col(&t, "b");
        ok(t.nrows == 9 && cst >= 0 && cb >= 0 && !strcmp(nb_csv_cell(&t, 4, cst), "200") &&
               !strcmp(nb_csv_cell(&t, 4, cb), "0"),
           "slice2d: none's 3 x 3 grid at step 200 (%zu rows)", t.nrows);
    }
    nb_csv_table_free(&t);
    {
        struct nb_fig_spec fs = {.kind = NB_FIG_TRACE, .scalar = NB_SC_FINAL_TEST_ERROR};
        snprintf(path, sizeof path, "%s/fig_trace_noprobe.csv", tdir);
        ok(nb_summary_figure_table(&s, &fs, path, &e) == NB_EINVAL,
           "a trace figure without a probe stat is refused");
    }
    nb_metric_free(&beta);
    snprintf(path, sizeof path, "%s/fig_vs_batch.csv", tdir);
    is_int(nb_csv_read(path, &t, &e), 0, "vs_batch table reads back");
    {
        int cs = nb_csv_col(&t, "series"), csid = nb_csv_col(&t, "sid");
        is_int((long long)t.nrows, 6, "vs_batch: 3 series x 2 batch sizes");
        is_str(nb_csv_cell(&t, 0, cs), "none (n=3)", "series label without the x key, with n");
        is_str(nb_csv_cell(&t, 5, csid), "2", "3 series");
        is_str(nb_csv_cell(&t, 2, cs), "batch (n=3; 1 run diverged)", "diverged runs counted");
    }
    nb_csv_table_free(&t);
    /* series = KEYS: only the named keys make a series */
    {
        int ks[1] = {nb_key_lookup("norm", "type")};
        struct nb_fig_spec fs = {.kind = NB_FIG_VS_BATCH, .x = nb_key_lookup("train", "batch"),
                                 .scalar = NB_SC_FINAL_TEST_ERROR, .series = ks, .n_series = 1};
        snprintf(path, sizeof path, "%s/fig_series1.csv", tdir);
        is_int(nb_summary_figure_table(&s, &fs, path, &e), 0, "series = norm.type");
        is_int(nb_csv_read(path, &t, &e), 0, "  reads back");
        int csid = nb_csv_col(&t, "sid");
        ok(t.nrows == 6 && !strcmp(nb_csv_cell(&t, 5, csid), "2"),
           "  the same 3 series as by default");
        nb_csv_table_free(&t);
        ks[0] = nb_key_lookup("optim", "lr"); /* zipped to x: names no series key */
        snprintf(path, sizeof path, "%s/fig_series2.csv", tdir);
        is_int(nb_summary_figure_table(&s, &fs, path, &e), 0, "series = optim.lr");
        is_int(nb_csv_read(path, &t, &e), 0, "  reads back");
        csid = nb_csv_col(&t, "sid");
        int other = 0;
        for (size_t r = 0; r < t.nrows; r++)
            other += strcmp(nb_csv_cell(&t, r, csid), "0") != 0;
        ok(t.nrows == 6 && other == 0, "  one series: norm.type no longer splits them");
        nb_csv_table_free(&t);
    }
    {
        struct nb_sum_filter w = filt("norm.type", NB_CMP_EQ, "batch");
        struct nb_fig_spec fs = {.kind = NB_FIG_SLICE2D, .where = &w, .n_where = 1};
        snprintf(path, sizeof path, "%s/fig_none.csv", tdir);
        nb_error_clear(&e);
        is_int(nb_summary_figure_table(&s, &fs, path, &e), NB_ENOENT,
               "a figure with nothing to draw: NB_ENOENT");
        struct stat st;
        ok(stat(path, &st) != 0, "  and no file left behind");
        nb_sum_filter_free(&w);
    }
    nb_summary_free(&s);
    nb_sweep_free(&sw);
}

static void test_dir_summary(void)
{
    struct nb_summary s;
    struct nb_error e;
    nb_error_clear(&e);
    nb_summary_init(&s);
    char edir[4200];
    snprintf(edir, sizeof edir, "%s/fx", dir);
    is_int(nb_summary_add_dir(&s, edir, &e), 0, "add_dir");
    is_int(nb_summary_group(&s, &e), 0, "group (directory)");
    is_int((long long)s.n_runs, 17, "every run directory (the pending run has none)");
    is_int(s.n_groups, 6, "6 groups");
    is_str(s.groups[0].label, "batch lr=0.1", "directory order: sorted by the varying keys");
    ok(find_group(&s, "none lr=0.4") >= 0, "keys in table order: lr labels, batch follows");
    nb_summary_free(&s);
}

static void test_bad_files(void)
{
    char rdir[4300], path[4400], buf[2048];
    struct nb_error e;
    struct nb_summary s;
    /* a run dir copied from the fixture, then damaged */
    snprintf(rdir, sizeof rdir, "%s/bad", dir);
    mkdir(rdir, 0777);
    snprintf(path, sizeof path, "%s/config.ini", rdir);
    write_file(path, "[model]\narch = mlp\n[data]\nsource = blobs\n");
    snprintf(path, sizeof path, "%s/DONE", rdir);
    write_file(path, "status = done\n");
    snprintf(path, sizeof path, "%s/metrics.csv", rdir);
    write_file(path, "step,epoch,test_acc\n1,0.5,0.3\n2,1\n");
    nb_summary_init(&s);
    nb_error_clear(&e);
    is_int(nb_summary_add_run_dir(&s, rdir, &e), NB_EFORMAT, "a short metrics row");
    char want[4500];
    snprintf(want, sizeof want, "%s:3:", path);
    contains(nb_error_format(&e, buf, sizeof buf), want, "  reported at FILE:LINE");
    nb_summary_free(&s);

    write_file(path, "step,epoch,test_acc\n1,0.5,0.3\n2,1,abc\n");
    nb_summary_init(&s);
    nb_error_clear(&e);
    is_int(nb_summary_add_run_dir(&s, rdir, &e), NB_EFORMAT, "a word in a number column");
    contains(nb_error_format(&e, buf, sizeof buf), want, "  reported at FILE:LINE");
    nb_summary_free(&s);

    write_file(path, "step,epoch,test_acc\n1,0.5,0.3\n2,1,0.4\n");
    snprintf(path, sizeof path, "%s/probes.csv", rdir);
    write_file(path, "step,probe,layer,param,param_value,stat\n0,landscape,,,,loss0\n");
    nb_summary_init(&s);
    nb_error_clear(&e);
    is_int(nb_summary_add_run_dir(&s, rdir, &e), NB_EFORMAT, "probes.csv without value");
    contains(e.msg, "no column 'value'", "  names the column");
    nb_summary_free(&s);

    write_file(path, "step,probe,layer,param,param_value,stat,value\n0,landscape,,,,loss0,1\n"
                     "5,landscape,,,,loss0");
    nb_summary_init(&s);
    nb_error_clear(&e);
    is_int(nb_summary_add_run_dir(&s, rdir, &e), NB_EFORMAT, "probes.csv cut short");
    snprintf(want, sizeof want, "%s:3:", path);
    contains(nb_error_format(&e, buf, sizeof buf), want, "  at its last line");
    nb_summary_free(&s);

    remove(path);
    snprintf(path, sizeof path, "%s/slice.csv", rdir);
    write_file(path, "a,b,loss,acc\n0,0,1,1\n0,1,1,1\n\n1,0,1,1\n\n");
    nb_summary_init(&s);
    nb_error_clear(&e);
    is_int(nb_summary_add_run_dir(&s, rdir, &e), NB_EFORMAT, "a ragged 2-D slice");
    contains(e.msg, "not a grid", "  is not a grid");
    nb_summary_free(&s);
    remove(path);
    nb_summary_init(&s);
    is_int(nb_summary_add_run_dir(&s, rdir, &e), 0, "the repaired run reads");
    is_int(s.runs[0].status, NB_SUM_DONE, "DONE without run_id: done");
    nb_summary_free(&s);

    /* A long run: the derived landscape rows grow the probe table many
     * times while it is scanned (this used to read freed memory). */
    {
        enum { STEPS = 4000 };
        snprintf(path, sizeof path, "%s/probes.csv", rdir);
        FILE *fp = fopen(path, "w");
        if (!fp)
            tap_bail("cannot write %s", path);
        fputs("step,probe,layer,param,param_value,stat,value\n", fp);
        for (int k = 0; k < STEPS; k++)
            fprintf(fp, "%d,landscape,,,,loss_min,%d\n%d,landscape,,,,loss_max,%d\n", k, k,
                    k, 3 * k);
        fclose(fp);
        nb_summary_init(&s);
        is_int(nb_summary_add_run_dir(&s, rdir, &e), 0, "a probes.csv of %d landscape steps reads",
               STEPS);
        int lr = nb_summary_str_find(&s, "loss_range");
        size_t found = 0, right = 0;
        const struct nb_sum_run *r = &s.runs[0];
        for (size_t i = 0; i < r->n_probes; i++)
            if (r->probes[i].stat == lr) {
                found++;
                right += r->probes[i].value == 2.0 * (double)r->probes[i].step;
            }
        ok(found == STEPS && right == STEPS,
           "every step gets its derived loss_range = max - min (%zu rows, %zu right)", found,
           right);
        nb_summary_free(&s);
        remove(path);
    }
}

static void test_stats(void)
{
    double v[] = {3, NAN, 1, 2, INFINITY, 4};
    double m, sd, lo, hi, med;
    is_int(nb_stats(v, 6, &m, &sd, &lo, &hi, &med), 4, "nb_stats counts finite values");
    is_close(m, 2.5, 1e-15, 0, "mean");
    is_close(sd, sqrt(5.0 / 3), 1e-15, 0, "sample std");
    is_close(lo, 1, 0, 0, "min");
    is_close(hi, 4, 0, 0, "max");
    is_close(med, 2.5, 0, 0, "median (even count)");
    double one[] = {7};
    nb_stats(one, 1, &m, &sd, NULL, NULL, &med);
    is_close(sd, 0, 0, 0, "std of one value is 0");
    double none[] = {NAN};
    is_int(nb_stats(none, 1, &m, NULL, NULL, NULL, NULL), 0, "no finite value");
    ok(isnan(m), "  mean NaN");
}

/* A figure's x = norm.momentum is PyTorch's m whatever a run wrote: a
 * run in Keras's convention at 0.9 draws at 0.1, beside PyTorch's 0.1. */
static void test_momentum_axis(void)
{
    static const char *const spell[2][2] = {{"pytorch", "0.1"}, {"keras", "0.9"}};
    struct nb_summary s;
    struct nb_error e;
    nb_error_clear(&e);
    nb_summary_init(&s);
    for (int k = 0; k < 2; k++) {
        char path[4400], rdir[4300];
        snprintf(path, sizeof path, "%s/mom_%s.ini", dir, spell[k][0]);
        FILE *fp = fopen(path, "w");
        if (!fp)
            tap_bail("cannot write %s", path);
        fprintf(fp, "[norm]\ntype = batch\nmomentum_convention = %s\nmomentum = %s\n",
                spell[k][0], spell[k][1]);
        fclose(fp);
        struct nb_sweep sw;
        if (nb_sweep_load(path, &sw, &e))
            tap_bail("%s", e.msg);
        snprintf(rdir, sizeof rdir, "%s/mom_%s", dir, spell[k][0]);
        mkdir(rdir, 0777);
        snprintf(path, sizeof path, "%s/config.ini", rdir);
        if (!(fp = fopen(path, "w")))
            tap_bail("cannot write %s", path);
        nb_run_write_ini(fp, &sw.runs[0]);
        fclose(fp);
        snprintf(path, sizeof path, "%s/metrics.csv", rdir);
        if (!(fp = fopen(path, "w")))
            tap_bail("cannot write %s", path);
        fputs("step,epoch,lr,train_loss,train_acc,test_loss,test_acc,grad_norm\n"
              "10,1,0.1,0.5,0.8,0.6,0.75,1\n", fp);
        fclose(fp);
        snprintf(path, sizeof path, "%s/DONE", rdir);
        if (!(fp = fopen(path, "w")))
            tap_bail("cannot write %s", path);
        fprintf(fp, "run_id = %s\nstatus = done\n", sw.runs[0].run_id);
        fclose(fp);
        nb_sweep_free(&sw);
        is_int(nb_summary_add_run_dir(&s, rdir, &e), 0, "momentum %s in %s: added", spell[k][1],
               spell[k][0]);
    }
    is_int(nb_summary_group(&s, &e), 0, "grouped");
    struct nb_fig_spec fs = {.kind = NB_FIG_VS_LR, .x = nb_key_lookup("norm", "momentum"),
                             .scalar = NB_SC_FINAL_TEST_ERROR};
    char path[4300];
    snprintf(path, sizeof path, "%s/fig_momentum.csv", dir);
    is_int(nb_summary_figure_table(&s, &fs, path, &e), 0, "vs_lr over norm.momentum");
    struct nb_csv_table t;
    is_int(nb_csv_read(path, &t, &e), 0, "  reads back");
    int cx = nb_csv_col(&t, "x"), cl = nb_csv_col(&t, "xlabel");
    ok(t.nrows == 2 && cx >= 0 && !strcmp(nb_csv_cell(&t, 0, cx), nb_csv_cell(&t, 1, cx)) &&
           fabs(atof(nb_csv_cell(&t, 0, cx)) - 0.1) < 1e-15,
       "  Keras 0.9 draws at PyTorch's 0.1, where PyTorch's 0.1 does");
    ok(cl >= 0 && t.nrows > 0 && strstr(nb_csv_cell(&t, 0, cl), "Keras: 1 - m") &&
           !strchr(nb_csv_cell(&t, 0, cl), ','),
       "  the axis says which convention (and has no comma for gnuplot)");
    nb_csv_table_free(&t);
    nb_summary_free(&s);
}

/* slice.csv as the probe writes it (probe.h), and as it was written
 * before its step column; malformed ones reported at FILE:LINE. */
static void test_slice_files(void)
{
    char rdir[4300], path[4400], want[4500], buf[2048];
    struct nb_error e;
    struct nb_summary s;
    snprintf(rdir, sizeof rdir, "%s/slices", dir);
    mkdir(rdir, 0777);
    snprintf(path, sizeof path, "%s/config.ini", rdir);
    write_file(path, "[model]\narch = mlp\n[data]\nsource = blobs\n");
    snprintf(path, sizeof path, "%s/DONE", rdir);
    write_file(path, "status = done\n");
    snprintf(path, sizeof path, "%s/slice.csv", rdir);
    snprintf(want, sizeof want, "%s:", path);

    /* two 1-D slices (one block each) and a 2-D one, two blank lines apart */
    write_file(path, "step,a,b,loss,acc\n"
                     "3,-1,0,4,0.1\n3,0,0,1,0.5\n3,1,0,3,0.2\n\n\n"
                     "7,-1,0,2,0.3\n7,0,0,0.5,0.9\n7,1,0,2.5,0.4\n\n\n"
                     "9,-1,-1,5,0\n9,-1,1,6,0\n\n9,1,-1,7,0\n9,1,1,8,0\n");
    nb_summary_init(&s);
    nb_error_clear(&e);
    is_int(nb_summary_add_run_dir(&s, rdir, &e), 0, "slice.csv: the probe's format reads");
    const struct nb_sum_run *r = s.n_runs ? &s.runs[0] : NULL;
    is_int(r ? r->n_slices : -1, 3, "  three slices");
    if (r && r->n_slices == 3) {
        const struct nb_sum_slice *a = &r->slices[0], *b = &r->slices[1], *c = &r->slices[2];
        ok(a->dim == 1 && a->na == 3 && a->nb == 1,
           "  a block of points is a 1-D slice of 3 x 1 (dim %d, %d x %d)", a->dim, a->na, a->nb);
        ok(a->a[0] == -1 && a->a[2] == 1 && a->loss[1] == 1 && a->acc[1] == 0.5,
           "  its points in order along a");
        is_int(a->step, 3, "  at the step of its lines");
        ok(b->dim == 1 && b->step == 7 && b->loss[1] == 0.5, "  the second 1-D slice, at step 7");
        ok(c->dim == 2 && c->na == 2 && c->nb == 2 && c->step == 9 && c->b[1] == 1 &&
               c->loss[3] == 8,
           "  scans a blank line apart are a 2-D slice (dim %d, %d x %d, step %ld)", c->dim,
           c->na, c->nb, c->step);
    }
    nb_summary_free(&s);

    /* a slice.csv without the step column (written before it) */
    write_file(path, "a,b,loss,acc\n-1,0,4,0.1\n0,0,1,0.5\n1,0,3,0.2\n");
    nb_summary_init(&s);
    nb_error_clear(&e);
    is_int(nb_summary_add_run_dir(&s, rdir, &e), 0, "slice.csv without step reads");
    r = s.n_runs ? &s.runs[0] : NULL;
    ok(r && r->n_slices == 1 && r->slices[0].dim == 1 && r->slices[0].na == 3 &&
           r->slices[0].step == -1 && r->slices[0].loss[2] == 3,
       "  a 1-D slice of 3 points, step unknown (-1)");
    nb_summary_free(&s);

    /* an empty slice.csv: no slice was taken */
    write_file(path, "");
    nb_summary_init(&s);
    is_int(nb_summary_add_run_dir(&s, rdir, &e), 0, "an empty slice.csv reads");
    is_int(s.n_runs ? s.runs[0].n_slices : -1, 0, "  with no slices");
    nb_summary_free(&s);

    static const struct {
        const char *text, *msg, *what;
        int line;
    } bad[] = {
        {"step,a,b,loss,acc\n3,-1,0,4,0.1\n5,0,0,1,0.5\n", "step 5 in a slice taken at step 3",
         "a step that changes inside a slice", 3},
        {"step,a,b,lost,acc\n3,-1,0,4,0.1\n", "unknown column 'lost'", "an unknown column", 1},
        {"step,a,b,acc\n3,-1,0,0.1\n", "no column 'loss'", "a missing column", 1},
        {"step,a,b,loss,acc\n3,-1,0,4\n", "expected 5 fields", "a short row", 2},
        {"step,a,b,loss,acc\n3,-1,0,4,0.1,9\n", "expected 5 fields", "a long row", 2},
        {"step,a,b,loss,acc\n3,-1,x,4,0.1\n", "'x' is not a number", "a word for a number", 2},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        write_file(path, bad[k].text);
        nb_summary_init(&s);
        nb_error_clear(&e);
        is_int(nb_summary_add_run_dir(&s, rdir, &e), NB_EFORMAT, "slice.csv: %s", bad[k].what);
        snprintf(want, sizeof want, "%s:%d: %s", path, bad[k].line, bad[k].msg);
        contains(nb_error_format(&e, buf, sizeof buf), want, "  reported at FILE:LINE");
        nb_summary_free(&s);
    }
}

int main(void)
{
    snprintf(dir, sizeof dir, "%s", tap_tmpdir("t_summarize"));
    const char *cfg = sumfix_make(dir);
    test_stats();
    test_sweep_summary(cfg);
    test_dir_summary();
    test_bad_files();
    test_momentum_axis();
    test_slice_files();
    tap_done_testing();
    return tap_exit();
}
