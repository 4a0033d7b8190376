/* tests/t_runner.c - the harness's CSV layer (libcsv round trip of awkward
 * strings and numbers, strict reading of damaged files) and the mapping
 * of a resolved run onto the training structs, with the cross-key check.
 * The runner itself (pool, locks, resume, engines) is tested through the
 * command line by tests/sweep.sh. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/error.h"
#include "run/csvio.h"
#include "run/progress.h"
#include "config/runcfg.h"
#include "config/sweep.h"
#include "layers/norm.h"
#include "tap.h"

static char dir[4096];

static const char *pth(const char *name)
{
    static char bufs[4][4200];
    static int next;
    char *p = bufs[next++ % 4];
    snprintf(p, 4200, "%s/%s", dir, name);
    return p;
}

static const char *wr(const char *name, const char *text)
{
    const char *p = pth(name);
    FILE *fp = fopen(p, "w");
    if (!fp)
        tap_bail("cannot write %s", p);
    fputs(text, fp);
    fclose(fp);
    return p;
}

static bool same_double(double a, double b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return memcmp(&a, &b, sizeof a) == 0;
}

/* ---- CSV round trip ------------------------------------------------------ */

static const char *const awkward[] = {
    "plain",
    "with,comma",
    "with \"quotes\" inside",
    "  leading and trailing spaces  ",
    "",
    "\"",
    "\"\"",
    ",",
    "'single'",
    "semi;colon #hash",
    "tab\there",
    "unicode \xc3\xa9 \xc3\xbc \xe4\xb8\xad",
    "a\"\"b",
    "results/x y/z",
    "-1e-05",
    "back\\slash",
};
#define N_AWK ((int)(sizeof awkward / sizeof awkward[0]))

static const double numbers[] = {0.1, 1.0 / 3.0, 1e-300, -2.5e300, 123456789.125,
                                 4.9406564584124654e-324, -0.0, 1e22, 0.3};
#define N_NUM ((int)(sizeof numbers / sizeof numbers[0]))

static void test_round_trip(void)
{
    const char *path = pth("awkward.csv");
    const char *const header[] = {"id", "text", "num", "missing"};
    struct nb_csvw w;
    struct nb_error e;
    nb_error_clear(&e);
    is_int(nb_csvw_open(&w, path, header, 4, &e), 0, "csv: open writer");
    int nrows = N_AWK + N_NUM + 3;
    for (int i = 0; i < nrows; i++) {
        nb_csvw_long(&w, i);
        nb_csvw_str(&w, i < N_AWK ? awkward[i] : "x");
        if (i >= N_AWK && i < N_AWK + N_NUM)
            nb_csvw_double(&w, numbers[i - N_AWK]);
        else if (i == N_AWK + N_NUM)
            nb_csvw_double(&w, NAN);
        else if (i == N_AWK + N_NUM + 1)
            nb_csvw_double(&w, INFINITY);
        else if (i == N_AWK + N_NUM + 2)
            nb_csvw_double(&w, -INFINITY);
        else
            nb_csvw_long(&w, -9007199254740993LL);
        nb_csvw_missing(&w);
        if (nb_csvw_end_row(&w, &e))
            break;
    }
    is_int(nb_csvw_close(&w, true, &e), 0, "csv: close writer with fsync");

    struct nb_csv_table t;
    int rc = nb_csv_read(path, &t, &e);
    if (!is_int(rc, 0, "csv: strict read of what we wrote")) {
        char buf[1024];
        tap_diag("%s", nb_error_format(&e, buf, sizeof buf));
        return;
    }
    is_int(t.ncols, 4, "csv: 4 columns");
    is_int((long long)t.nrows, nrows, "csv: every row read back");
    int tc = nb_csv_col(&t, "text"), nc = nb_csv_col(&t, "num"),
        mc = nb_csv_col(&t, "missing");
    ok(tc == 1 && nc == 2 && mc == 3 && nb_csv_col(&t, "nope") == -1,
       "csv: columns by name");
    for (int i = 0; i < N_AWK; i++) {
        const char *got = nb_csv_cell(&t, (size_t)i, tc);
        ok(got && !strcmp(got, awkward[i]), "csv: string %d round-trips ('%s' -> '%s')", i,
           awkward[i], got ? got : "(missing)");
    }
    ok(nb_csv_cell(&t, 4, tc) != NULL, "csv: an empty string is \"\", not missing");
    bool all_missing = true;
    for (int i = 0; i < nrows; i++)
        all_missing &= nb_csv_cell(&t, (size_t)i, mc) == NULL;
    ok(all_missing, "csv: missing values read back as missing");
    for (int i = 0; i < N_NUM; i++) {
        double v;
        rc = nb_csv_double(&t, (size_t)(N_AWK + i), nc, false, path, &v, &e);
        ok(rc == 0 && same_double(v, numbers[i]), "csv: %.17g round-trips bit for bit (%s)",
           numbers[i], nb_csv_cell(&t, (size_t)(N_AWK + i), nc));
    }
    double v;
    nb_csv_double(&t, (size_t)(N_AWK + N_NUM), nc, false, path, &v, &e);
    ok(isnan(v), "csv: nan round-trips");
    nb_csv_double(&t, (size_t)(N_AWK + N_NUM + 1), nc, false, path, &v, &e);
    ok(isinf(v) && v > 0, "csv: inf round-trips");
    nb_csv_double(&t, (size_t)(N_AWK + N_NUM + 2), nc, false, path, &v, &e);
    ok(isinf(v) && v < 0, "csv: -inf round-trips");
    is_str(nb_csv_cell(&t, 0, nc), "-9007199254740993", "csv: 64-bit integers exact");
    rc = nb_csv_double(&t, 0, tc, false, path, &v, &e);
    is_int(rc, NB_EFORMAT, "csv: text is not a number");
    char buf[1024];
    snprintf(buf, sizeof buf, "%s:2: column text: 'plain' is not a number", path);
    is_str(nb_error_format(&e, buf + 512, 512), buf, "csv: the error names file, line and column");
    rc = nb_csv_double(&t, 0, mc, false, path, &v, &e);
    is_int(rc, NB_EFORMAT, "csv: a missing value is an error unless allowed");
    rc = nb_csv_double(&t, 0, mc, true, path, &v, &e);
    ok(rc == 0 && isnan(v), "csv: a missing value reads as NaN when allowed");
    nb_csv_table_free(&t);
    nb_csv_table_free(&t);
    ok(t.header == NULL && t.nrows == 0, "csv: table free is idempotent");

    /* bare when safe, quoted otherwise: categorical values stay bare */
    ok(nb_csv_is_bare("group") && nb_csv_is_bare("1e-05") && nb_csv_is_bare("fashion-mnist") &&
           !nb_csv_is_bare("a b") && !nb_csv_is_bare("") && !nb_csv_is_bare("a,b"),
       "csv: bare values are [A-Za-z0-9_.+/-]+");
    FILE *fp = fopen(path, "r");
    char line[256] = "";
    if (fp) {
        if (!fgets(line, sizeof line, fp) || !fgets(line, sizeof line, fp))
            line[0] = '\0';
        fclose(fp);
    }
    is_str(line, "0,plain,-9007199254740993,\n", "csv: a plain row is written bare");
}

static void test_writer_errors(void)
{
    struct nb_csvw w;
    struct nb_error e;
    const char *const h2[] = {"a", "b"};
    const char *const bad[] = {"a", "b c"};
    char buf[1024];
    is_int(nb_csvw_open(&w, pth("bad-header.csv"), bad, 2, &e), NB_EINVAL,
           "csv: a column name that needs quotes is refused");
    is_int(nb_csvw_open(&w, pth("w.csv"), h2, 2, &e), 0, "csv: open");
    nb_csvw_str(&w, "line\nbreak");
    nb_csvw_str(&w, "x");
    is_int(nb_csvw_end_row(&w, &e), NB_EINVAL, "csv: a line break in a value is refused");
    contains(nb_error_format(&e, buf, sizeof buf), "line break", "csv: ... and said so");
    nb_csvw_close(&w, false, NULL);
    is_int(nb_csvw_open(&w, pth("w2.csv"), h2, 2, &e), 0, "csv: open again");
    nb_csvw_str(&w, "only one");
    is_int(nb_csvw_end_row(&w, &e), NB_EINVAL, "csv: a short row is refused");
    nb_csvw_close(&w, false, NULL);
    is_int(nb_csvw_open(&w, "/nonexistent-dir/x.csv", h2, 2, &e), NB_EIO,
           "csv: an uncreatable file is NB_EIO");
    struct nb_csvw z;
    memset(&z, 0, sizeof z);
    is_int(nb_csvw_close(&z, true, &e), 0, "csv: close is safe on a zeroed writer");
}

static void reader_error(const char *name, const char *text, int line, const char *msg)
{
    struct nb_csv_table t;
    struct nb_error e;
    char got[1024], want[1024];
    nb_error_clear(&e);
    const char *p = wr(name, text);
    int rc = nb_csv_read(p, &t, &e);
    is_int(rc, NB_EFORMAT, "csv read %s: NB_EFORMAT", name);
    if (line)
        snprintf(want, sizeof want, "%s:%d: %s", p, line, msg);
    else
        snprintf(want, sizeof want, "%s: %s", p, msg);
    is_str(nb_error_format(&e, got, sizeof got), want, "csv read %s: message", name);
    ok(t.header == NULL && t.cells == NULL, "csv read %s: table left empty", name);
}

static void test_reader_errors(void)
{
    reader_error("quote.csv", "a,b\n1,x\"y\n", 2, "malformed CSV (error parsing data while strict checking enabled)");
    reader_error("count.csv", "a,b\n1,2\n3\n", 3, "row has 1 fields, the header 2");
    reader_error("extra.csv", "a,b\n1,2,\n", 2, "row has 3 fields, the header 2");
    reader_error("cut.csv", "a,b\n1,2\n3,4", 3, "last row has no line end (the file was cut short)");
    reader_error("unterminated.csv", "a,b\n1,\"open\n", 2, "malformed CSV (error parsing data while strict checking enabled)");
    reader_error("empty.csv", "", 0, "no header row (empty file)");
    reader_error("dup.csv", "a,a\n1,2\n", 1, "columns 1 and 2 have the same name");
    reader_error("noname.csv", "a,,c\n1,2,3\n", 1, "empty name of column 2 in the header");
    struct nb_csv_table t;
    struct nb_error e;
    is_int(nb_csv_read(pth("does-not-exist.csv"), &t, &e), NB_EIO, "csv read: missing file is NB_EIO");
    is_int(nb_csv_read(wr("crlf.csv", "a,b\r\n1,2\r\n"), &t, &e), 0, "csv read: CRLF line ends");
    ok(t.nrows == 1 && !strcmp(nb_csv_cell(&t, 0, 1), "2"), "csv read: CRLF row content");
    nb_csv_table_free(&t);
}

/* ---- runs -> structs ----------------------------------------------------- */

static int load(const char *name, const char *text, struct nb_sweep *sw, bool check)
{
    struct nb_error e;
    nb_error_clear(&e);
    int rc = nb_sweep_load_checked(wr(name, text), check ? nb_runcfg_check : NULL, sw, &e);
    if (rc) {
        char buf[2048];
        tap_diag("unexpected error: %s", nb_error_format(&e, buf, sizeof buf));
    }
    return rc;
}

static void test_mapping(void)
{
    struct nb_sweep sw;
    struct nb_error e;
    if (load("map.ini",
             "[experiment]\nseeds = 7\ntarget_accuracy = 0.8\n"
             "[model]\narch = cnn\nplacement = post\ndropout = 0.25\nlinear_norm = false\n"
             "[norm]\ntype = batch\nmomentum = none\nnorm_batch = 8\n"
             "ghost_update = per_step\nrenorm = true\neval_stats = precise\n"
             "[optim]\nlr = 0.03\nmomentum = 0.5\nnesterov = true\nschedule = multistep\n"
             "milestones = 2 5\n"
             "[train]\nbatch = 32\nepochs = 3\neval_every = 7\ndrop_last = false\n"
             "threads = 2\n"
             "[data]\nsource = blobs\ntrain_subset = 640\nresize = 32\n",
             &sw, true)) {
        ok(0, "mapping: config loads");
        return;
    }
    struct nb_runcfg rc;
    is_int(nb_runcfg_from_run(&sw.runs[0], &rc, &e), 0, "mapping: from_run");
    const struct nb_train_spec *s = &rc.train;
    const struct nb_norm_opts *n = &s->model.norm;
    ok(s->seed == 7 && s->batch == 32 && s->epochs == 3 && s->eval_every == 7 &&
           !s->drop_last && rc.threads == 2 && rc.target_acc == 0.8,
       "mapping: seed, batch, epochs, eval_every, drop_last, threads, target");
    ok(s->model.arch == NB_ARCH_CNN && s->model.placement == NB_PLACE_POST &&
           s->model.dropout == 0.25 && !s->model.linear_norm,
       "mapping: arch, placement, dropout, linear_norm");
    ok(n->type == NB_NORM_BATCH && n->momentum_cumulative && n->norm_batch == 8 &&
           n->ghost_update_per_step && n->renorm && !n->frozen && s->eval_stats == NB_EVAL_STATS_PRECISE,
       "mapping: norm options (momentum none, ghost, renorm, frozen off, precise)");
    ok(s->sched.lr == 0.03 && s->sgd.momentum == 0.5 && s->sgd.nesterov &&
           s->sched.kind == NB_SCHED_MULTISTEP && s->sched.n_milestones == 2 &&
           s->sched.milestones[1] == 5,
       "mapping: optimizer and schedule");
    ok(isinf(s->diverge_loss), "mapping: diverge_loss inf");
    ok(rc.data.source == NB_SRC_BLOBS && rc.data.train_subset == 640 &&
           rc.data.resize_h == 32 && rc.data.resize_w == 32,
       "mapping: data options");
    ok(s->model.input.h == 32 && s->model.outputs == 10 && s->model.loss == NB_LOSS_XENT,
       "mapping: nominal shape until the data are bound");
    /* bind: renorm auto over the real run length (640/32 = 20 steps x 3) */
    struct nb_data d;
    memset(&d, 0, sizeof d);
    d.train.n = 640;
    d.train.shape = (struct nb_shape){1, 32, 32};
    d.train.classes = 10;
    is_int(nb_runcfg_bind_data(&rc, &sw.runs[0], &d, &e), 0, "mapping: bind_data");
    ok(n->renorm_warmup == 2 && n->renorm_dmax_steps == 9 && n->renorm_rmax_steps == 15,
       "mapping: renorm auto = 5k/25k/40k of 160k steps, scaled to 60 steps (%ld %ld %ld)",
       n->renorm_warmup, n->renorm_dmax_steps, n->renorm_rmax_steps);
    nb_sweep_free(&sw);

    if (!load("idx.ini", "[data]\nsource = idx\ndir = /nonexistent\nclasses = 26\n", &sw,
              false)) {
        nb_runcfg_from_run(&sw.runs[0], &rc, &e);
        ok(rc.data.classes == 26 && rc.train.model.outputs == 26,
           "mapping: [data] classes for idx, also the nominal outputs");
        nb_sweep_free(&sw);
    }

    if (!load("dln.ini", "[model]\narch = dln\ndln_dim = 6\n[data]\nsource = dln\n", &sw, true)) {
        nb_runcfg_from_run(&sw.runs[0], &rc, &e);
        ok(rc.data.synth.shape.c == 6 && rc.train.model.input.c == 6 &&
               rc.train.model.outputs == 6 && rc.train.model.loss == NB_LOSS_MSE,
           "mapping: dln regression with dln_dim");
        nb_sweep_free(&sw);
    } else {
        ok(0, "mapping: dln config loads");
    }
}

static void check_error(const char *name, const char *text, int line, const char *msg)
{
    struct nb_sweep sw;
    struct nb_error e;
    char got[2048], want[2048];
    nb_error_clear(&e);
    const char *p = wr(name, text);
    int rc = nb_sweep_load_checked(p, nb_runcfg_check, &sw, &e);
    is_int(rc, NB_EINVAL, "check %s: refused", name);
    snprintf(want, sizeof want, "%s:%d: %s", p, line, msg);
    is_str(nb_error_format(&e, got, sizeof got), want, "check %s: message", name);
}

/* probe.slice_at (issue 17): steps in any order, -1 anywhere (the last
 * step), each step once; a step past the end is refused at its line,
 * before any run where the config gives the run's length, else when the
 * data are bound. */
static void test_slice_at(void)
{
    /* 64 samples in batches of 16: 4 steps an epoch, 8 in 2 epochs */
    static const struct {
        const char *list, *canon;
        long want[4];
        int n;
    } cases[] = {
        {"2 -1", "-1 2", {2, 8}, 2},           /* -1 last: was "not increasing" */
        {"-1 2", "-1 2", {2, 8}, 2},           /* as before */
        {"8 -1 2 2 0", "-1 0 2 8", {0, 2, 8}, 3}, /* duplicates, -1 = 8 */
        {"5 3", "3 5", {3, 5}, 2},
        {"-1", "-1", {8}, 1},
    };
    char text[512], name[64];
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        struct nb_sweep sw;
        struct nb_error e;
        nb_error_clear(&e);
        snprintf(name, sizeof name, "slice%zu.ini", k);
        snprintf(text, sizeof text,
                 "[train]\nbatch = 16\nepochs = 2\n[data]\nsource = blobs\n"
                 "train_subset = 64\n[probe]\nslice = true\nslice_at = %s\n",
                 cases[k].list);
        if (load(name, text, &sw, true)) {
            ok(0, "slice_at = %s loads", cases[k].list);
            continue;
        }
        is_str(nb_run_get_str(&sw.runs[0], "probe", "slice_at"), cases[k].canon,
               "slice_at = %s: canonical '%s' (sorted, each once)", cases[k].list,
               cases[k].canon);
        struct nb_runcfg rc;
        struct nb_data d;
        memset(&d, 0, sizeof d);
        d.train.n = 64;
        d.train.shape = (struct nb_shape){1, 28, 28};
        d.train.classes = 10;
        int r = nb_runcfg_from_run(&sw.runs[0], &rc, &e);
        if (!r)
            r = nb_runcfg_bind_data(&rc, &sw.runs[0], &d, &e);
        bool same = !r && rc.probe.n_slice_at == cases[k].n && rc.probe.slice_at == rc.slice_at;
        char wl[64] = "";
        for (int i = 0; i < cases[k].n; i++) {
            same = same && rc.slice_at[i] == cases[k].want[i];
            snprintf(wl + strlen(wl), sizeof wl - strlen(wl), " %ld", cases[k].want[i]);
        }
        ok(same, "slice_at = %s over 8 steps:%s", cases[k].list, wl);
        nb_sweep_free(&sw);
    }
    check_error("slice-end.ini",
                "[train]\nbatch = 16\nepochs = 2\n[data]\nsource = blobs\ntrain_subset = 64\n"
                "[probe]\nslice = true\nslice_at = 2 9\n",
                9,
                "[probe] slice_at: step 9 is past the end of training (the run has 8 steps, "
                "2 epochs of 4 steps: 64 training samples in batches of 16)");
    check_error("slice-max.ini",
                "[train]\nmax_steps = 5\n[data]\nsource = blobs\n[probe]\nslice = true\n"
                "slice_at = 6\n",
                7,
                "[probe] slice_at: step 6 is past the end of training (the run has 5 steps, "
                "[train] max_steps = 5)");
    /* off: slice_at is not checked */
    struct nb_sweep sw;
    ok(load("slice-off.ini", "[train]\nmax_steps = 5\n[probe]\nslice = false\nslice_at = 6\n",
            &sw, true) == 0,
       "slice_at past the end with slice = false: no error (no slice is taken)");
    nb_sweep_free(&sw);

    /* idx: the length is known once the data are loaded */
    const char *idx = "[train]\nbatch = 10\nepochs = 2\n[data]\nsource = idx\n"
                      "dir = /nonexistent\nclasses = 10\n[probe]\nslice = true\n"
                      "slice_at = 5 -1\n";
    int loaded = load("slice-idx.ini", idx, &sw, true);
    ok(loaded == 0, "slice_at on idx data loads (the length is unknown before loading)");
    if (loaded)
        return;
    struct nb_runcfg rc;
    struct nb_data d;
    struct nb_error e;
    char got[2048], want[2048];
    memset(&d, 0, sizeof d);
    d.train.n = 20; /* 2 steps an epoch: 4 */
    d.train.shape = (struct nb_shape){1, 28, 28};
    d.train.classes = 10;
    nb_error_clear(&e);
    int r = nb_runcfg_from_run(&sw.runs[0], &rc, &e);
    is_int(r ? r : nb_runcfg_bind_data(&rc, &sw.runs[0], &d, &e), NB_EINVAL,
           "slice_at = 5 -1 on 20 idx samples (4 steps): refused when the data are bound");
    snprintf(want, sizeof want,
             "%s:10: [probe] slice_at: step 5 is past the end of training (the run has 4 "
             "steps, 2 epochs of 2 steps: 20 training samples in batches of 10)",
             sw.path);
    contains(nb_error_format(&e, got, sizeof got), want, "  at slice_at's FILE:LINE");
    is_str(e.hint, "slice_at takes steps 0 (the initial weights) to 4 (the final ones); -1 is "
                   "the last step",
           "  with a hint");
    d.train.n = 30; /* 3 steps an epoch: 6 */
    nb_runcfg_from_run(&sw.runs[0], &rc, &e);
    ok(nb_runcfg_bind_data(&rc, &sw.runs[0], &d, &e) == 0 && rc.probe.n_slice_at == 2 &&
           rc.slice_at[0] == 5 && rc.slice_at[1] == 6,
       "slice_at = 5 -1 on 30 idx samples (6 steps): 5 6");
    nb_sweep_free(&sw);
}

/* One set of defaults: an empty config resolves to the C defaults of the
 * structs the training core, the model, the norm layers, SGD and the data
 * module take (review D2: the table and the C functions disagreed) */
static void test_defaults(void)
{
    struct nb_sweep sw;
    struct nb_error e;
    nb_error_clear(&e);
    const char *p = wr("defaults.ini", "[experiment]\nname = defaults\n");
    if (nb_sweep_load(p, &sw, &e)) {
        ok(0, "the empty config loads: %s", e.msg);
        return;
    }
    struct nb_runcfg rc;
    is_int(nb_runcfg_from_run(&sw.runs[0], &rc, &e), 0, "defaults: runcfg");
    struct nb_train_spec d;
    nb_train_spec_default(&d);
    const struct nb_train_spec *t = &rc.train;
    is_int(t->batch, d.batch, "defaults agree: train.batch (%d)", d.batch);
    is_int(t->epochs, d.epochs, "defaults agree: train.epochs (%d)", d.epochs);
    is_int(t->max_steps, d.max_steps, "defaults agree: train.max_steps");
    is_int(t->eval_every, d.eval_every, "defaults agree: train.eval_every");
    is_int(t->eval_every_epoch, d.eval_every_epoch, "defaults agree: train.eval_every_epoch");
    is_int(t->eval_samples, d.eval_samples, "defaults agree: train.eval_samples");
    is_int(t->drop_last, d.drop_last, "defaults agree: train.drop_last");
    ok(t->diverge_loss == d.diverge_loss, "defaults agree: train.diverge_loss (%g)", d.diverge_loss);
    is_int(t->eval_stats, d.eval_stats, "defaults agree: norm.eval_stats");
    is_int(t->precise_samples, d.precise_samples, "defaults agree: norm.precise_samples (%d)",
           d.precise_samples);
    ok(t->sched.lr == d.sched.lr, "defaults agree: optim.lr (%g)", d.sched.lr);
    is_int(t->sched.kind, d.sched.kind, "defaults agree: optim.schedule");
    ok(t->sgd.momentum == d.sgd.momentum, "defaults agree: optim.momentum (%g)", d.sgd.momentum);
    ok(t->sgd.weight_decay == d.sgd.weight_decay, "defaults agree: optim.weight_decay");
    is_int(t->sgd.nesterov, d.sgd.nesterov, "defaults agree: optim.nesterov");
    const struct nb_model_desc *m = &t->model, *dm = &d.model;
    is_int(m->arch, dm->arch, "defaults agree: model.arch");
    is_int(m->act, dm->act, "defaults agree: model.activation");
    is_int(m->placement, dm->placement, "defaults agree: model.placement");
    is_int(m->init, dm->init, "defaults agree: model.init");
    is_int(m->depth, dm->depth, "defaults agree: model.depth");
    is_int(m->dln_layers, dm->dln_layers, "defaults agree: model.dln_layers");
    is_int(m->bias_before_norm, dm->bias_before_norm, "defaults agree: model.bias_before_norm");
    is_int(m->linear_norm, dm->linear_norm, "defaults agree: model.linear_norm");
    ok(m->dropout == dm->dropout, "defaults agree: model.dropout");
    is_int(m->conv_algo, dm->conv_algo, "defaults agree: model.conv_algo");
    is_int(m->norm.type, dm->norm.type, "defaults agree: norm.type");
    is_int(m->norm.groups, dm->norm.groups, "defaults agree: norm.groups");
    ok(m->norm.eps == dm->norm.eps, "defaults agree: norm.eps");
    ok(m->norm.momentum == dm->norm.momentum, "defaults agree: norm.momentum");
    is_int(m->norm.affine, dm->norm.affine, "defaults agree: norm.affine");
    const struct nb_norm_opts *no = &m->norm, *dn = &dm->norm;
    is_int(no->lp, dn->lp, "defaults agree: norm.lp");
    is_int(no->momentum_cumulative, dn->momentum_cumulative, "defaults agree: norm.momentum none");
    is_int(no->momentum_keras, dn->momentum_keras, "defaults agree: norm.momentum_convention");
    is_int(no->running_var_biased, dn->running_var_biased, "defaults agree: norm.running_var");
    is_int(no->norm_batch, dn->norm_batch, "defaults agree: norm.norm_batch");
    is_int(no->ghost_update_per_step, dn->ghost_update_per_step,
           "defaults agree: norm.ghost_update");
    is_int(no->sync, dn->sync, "defaults agree: norm.sync");
    is_int(no->devices, dn->devices, "defaults agree: norm.devices");
    is_int(no->renorm, dn->renorm, "defaults agree: norm.renorm");
    ok(no->renorm_rmax == dn->renorm_rmax && no->renorm_dmax == dn->renorm_dmax,
       "defaults agree: norm.renorm_rmax, renorm_dmax");
    ok(no->renorm_momentum == dn->renorm_momentum, "defaults agree: norm.renorm_momentum");
    is_int(no->frozen, dn->frozen, "defaults agree: norm.frozen");
    is_int(no->frozen_from, dn->frozen_from, "defaults agree: norm.frozen_from");
    is_int(no->noisy, dn->noisy, "defaults agree: norm.noisy");
    ok(no->noise_mu == dn->noise_mu && no->noise_sigma == dn->noise_sigma &&
           no->noise_rmu == dn->noise_rmu && no->noise_rsigma == dn->noise_rsigma,
       "defaults agree: norm.noise_mu, noise_sigma, noise_rmu, noise_rsigma");
    ok(m->init_std == dm->init_std, "defaults agree: model.init_std");
    is_int(m->zero_init_last_gamma, dm->zero_init_last_gamma,
           "defaults agree: model.zero_init_last_gamma");
    is_int(m->dropout_place, dm->dropout_place, "defaults agree: model.dropout_place");
    is_int(m->n_widths, dm->n_widths, "defaults agree: model.widths (count)");
    ok(m->n_widths == dm->n_widths && !memcmp(m->widths, dm->widths,
                                               (size_t)dm->n_widths * sizeof *dm->widths),
       "defaults agree: model.widths");
    struct nb_data_opts dd;
    nb_data_opts_default(&dd);
    is_int(rc.data.source, dd.source, "defaults agree: data.source");
    is_int(rc.data.standardize, dd.standardize, "defaults agree: data.standardize");
    is_int(rc.data.fallback_to_synthetic, dd.fallback_to_synthetic, "defaults agree: data.fallback");
    is_int((long long)rc.data.train_subset, (long long)dd.train_subset,
           "defaults agree: data.train_subset");
    ok(rc.data.val_split == dd.val_split, "defaults agree: data.val_split");
    struct nb_probe_opts dp;
    nb_probe_opts_default(&dp);
    const struct nb_probe_opts *po = &rc.probe;
    is_int(po->landscape_every, dp.landscape_every, "defaults agree: probe.landscape_every");
    ok(po->eta_min == dp.eta_min && po->eta_max == dp.eta_max,
       "defaults agree: probe.eta_min, eta_max");
    is_int(po->eta_points, dp.eta_points, "defaults agree: probe.eta_points");
    is_int(po->eta_spacing, dp.eta_spacing, "defaults agree: probe.eta_spacing");
    is_int(po->ics_every, dp.ics_every, "defaults agree: probe.ics_every");
    is_int(po->dist_every, dp.dist_every, "defaults agree: probe.dist_every");
    is_int(po->hessian_every, dp.hessian_every, "defaults agree: probe.hessian_every");
    is_int(po->hessian_samples, dp.hessian_samples, "defaults agree: probe.hessian_samples");
    is_int(po->hessian_mode, dp.hessian_mode, "defaults agree: probe.hessian_mode");
    is_int(po->hessian_hvp, dp.hessian_hvp, "defaults agree: probe.hessian_hvp");
    is_int(po->slice_dim, dp.slice_dim, "defaults agree: probe.slice_dim");
    is_int(po->slice_points, dp.slice_points, "defaults agree: probe.slice_points");
    ok(po->slice_range == dp.slice_range, "defaults agree: probe.slice_range");
    is_int(po->slice_samples, dp.slice_samples, "defaults agree: probe.slice_samples");
    nb_sweep_free(&sw);
}

static void test_check(void)
{
    check_error("groups.ini", "[norm]\ntype = group\ngroups = 3\n[data]\nsource = blobs\n", 3,
                "layer norm1: group norm needs the group count to divide the channels "
                "(G = 3, C = 16)");
    check_error("ghost.ini", "[norm]\ntype = batch\nnorm_batch = 24\n[train]\nbatch = 64\n", 3,
                "ghost batch norm_batch = 24 does not divide [train] batch = 64");
    check_error("devices.ini",
                "[norm]\ntype = batch\nsync = true\ndevices = 3\n[train]\nbatch = 32\n", 4,
                "devices = 3 does not divide [train] batch = 32 (every device gets the "
                "same share)");
    check_error("both.ini", "[norm]\ntype = batch\nnorm_batch = 4\ndevices = 2\n", 4,
                "give either norm_batch (4) or devices (2), not both");
    check_error("hvp.ini",
                "[norm]\ntype = lp\n[probe]\nhessian = true\nhessian_mode = probe\n"
                "hessian_hvp = exact\n[data]\nsource = blobs\n", 6,
                "[probe] hessian_hvp = exact, but layer norm1 (norm) has no exact "
                "Hessian-vector product with hessian_mode = probe (lp norm and batch renorm "
                "with batch statistics have none)");
    check_error("bn1.ini", "[model]\narch = mlp\n[norm]\ntype = batch\n[train]\nbatch = 8, 1\n", 6,
                "layer norm1: batch norm needs more than one value per channel in training "
                "(batch 1 x 1 x 1 = 1) (run 1: train.batch=1)");
    check_error("inst.ini", "[model]\narch = dln\n[norm]\ntype = instance\n[data]\nsource = dln\n", 4,
                "instance norm is undefined on the (N, C) output of a linear layer (one "
                "element per channel) in a dln");
    check_error("renorm.ini", "[norm]\ntype = group\nrenorm = true\n", 3,
                "renorm is defined for batch norm only (type = group)");
    check_error("big.ini", "[train]\nbatch = 4096\n[data]\nsource = blobs\ntrain_subset = 1000\n", 2,
                "batch 4096 is larger than the training set (1000 samples)");
    check_error("dln.ini", "[model]\narch = dln\n", 2,
                "dln layers are square: outputs (10) must equal the input size (784)");
    /* the key the module names (nb_error.key), not the message's words,
     * picks the line: the linear_norm line, though the message says norm */
    check_error("lnorm.ini",
                "[model]\narch = dln\nlinear_norm = false\n[norm]\ntype = batch\n[data]\n"
                "source = dln\n",
                3, "linear_norm = false leaves the dln without any norm (its layers are all "
                   "linear); use norm type none instead");
    check_error("widths.ini", "[model]\narch = mlp\nwidths = 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n", 3,
                "[model] widths takes at most 16 values (got 17)");
    check_error("mean.ini", "[data]\nstandardize = given\nmean = 0.1 0.2\nstd = 1 1\n", 3,
                "per-channel means that differ are not supported: the data module "
                "standardizes every channel with one mean and std");

    /* a big sweep over lr and seeds builds a handful of models: one per
     * norm type (the learning rate and the seed do not change the model) */
    struct nb_sweep sw;
    nb_runcfg_cache_clear();
    double t0 = nb_now();
    int rc = load("big-sweep.ini",
                  "[experiment]\nseeds = 0..49\n[norm]\ntype = none, batch, group\n"
                  "[optim]\nlr = log(1e-3, 1e-1, 8)\n[data]\nsource = blobs\n",
                  &sw, true);
    double dt = nb_now() - t0;
    ok(rc == 0 && sw.n_runs == 1200, "check: a 1200-run sweep passes");
    is_int((long long)nb_runcfg_cache_size(), 3, "check: ... builds 3 models (verdicts cached per model)");
    tap_diag("the 1200-run check took %.3f s", dt);
    if (!rc)
        nb_sweep_free(&sw);
    nb_runcfg_cache_clear();
}

/* The progress line names each running run's epoch out of its planned
 * epochs: whole epochs as integers, a max_steps fraction as a fraction. */
static void test_progress(void)
{
    struct nb_progress p;
    ok(nb_progress_init(&p, NB_PROGRESS_NONE, stderr, NULL, 3, 2) == 0, "progress: init");
    nb_progress_start(&p, 0, 4);
    nb_progress_update(&p, 0, 60, 100, 0.3, 0.5);
    nb_progress_start(&p, 1, 7);
    nb_progress_update(&p, 1, 150, 300, 1.5, 3);
    char buf[512];
    nb_progress_status(&p, buf, sizeof buf, true);
    ok(strstr(buf, " #4:ep 0.3/0.5") != NULL, "progress: a run stopped by max_steps: ep 0.3/0.5");
    ok(strstr(buf, " #7:ep 1.5/3") != NULL && !strstr(buf, "3.0"),
       "progress: whole epochs: ep 1.5/3");
    nb_progress_free(&p);
}

/* nb_runcfg_check_ranks: what a run split over K MPI ranks needs, at the
 * config line to change (run 0 of each config) */
static void ranks_error(const char *name, const char *text, int K, int line, const char *msg,
                        const char *hint)
{
    struct nb_sweep sw;
    struct nb_error e;
    char got[2048], want[2048];
    if (load(name, text, &sw, true)) {
        ok(0, "ranks %s: config loads", name);
        return;
    }
    nb_error_clear(&e);
    int rc = nb_runcfg_check_ranks(&sw.runs[0], K, &e);
    is_int(rc, msg ? NB_EINVAL : 0, "ranks %s: %s on %d ranks", name,
           msg ? "refused" : "accepted", K);
    if (msg) {
        if (line)
            snprintf(want, sizeof want, "%s:%d: %s", pth(name), line, msg);
        else /* a default: the file as a whole */
            snprintf(want, sizeof want, "%s: %s", pth(name), msg);
        is_str(nb_error_format(&e, got, sizeof got), want, "ranks %s: message", name);
        contains(e.hint, hint, "ranks %s: hint", name);
    }
    nb_sweep_free(&sw);
}

static void test_ranks(void)
{
    const char *bn = "[norm]\ntype = batch\nsync = true\ndevices = 2\n"
                     "[train]\nbatch = 32\n[data]\nsource = blobs\ntrain_subset = 640\n";
    ranks_error("r_ok.ini", bn, 2, 0, NULL, NULL);
    ranks_error("r_ok1.ini", bn, 1, 0, NULL, NULL);
    ranks_error("r_dev.ini", bn, 4, 4,
                "[norm] devices = 2, but the run has 4 MPI ranks: each rank is one device "
                "of batch norm", "set devices = 4");
    ranks_error("r_lp.ini", "[norm]\ntype = lp\n[data]\nsource = blobs\n", 2, 0,
                "[norm] devices = 1, but the run has 2 MPI ranks: each rank is one device "
                "of lp norm", "or run it with mpirun -np 1");
    ranks_error("r_gn.ini", "[norm]\ntype = group\ngroups = 4\n[train]\nbatch = 10\n"
                "[data]\nsource = blobs\n", 3, 0, NULL, NULL);
    ranks_error("r_b.ini", "[norm]\ntype = group\ngroups = 4\n[train]\nbatch = 2\n"
                "[data]\nsource = blobs\n", 3, 5,
                "batch 2 is smaller than the 3 MPI ranks of the run (each rank takes a slice "
                "of every batch)", "");
    ranks_error("r_last.ini", "[model]\narch = mlp\n[norm]\ntype = layer\n[train]\n"
                "batch = 32\ndrop_last = false\n[data]\nsource = blobs\ntrain_subset = 641\n",
                2, 7,
                "the last batch of an epoch has 1 sample(s) (641 % 32), fewer than the 2 "
                "MPI ranks of the run", "drop_last = true");
    ranks_error("r_probe.ini", "[probe]\nlandscape = true\n[data]\nsource = blobs\n", 2, 2,
                "[probe] landscape is on, but probes measure the activations of one process "
                "and this run is split over 2 MPI ranks", "without mpirun");
}

int main(void)
{
    snprintf(dir, sizeof dir, "%s", tap_tmpdir("t_runner"));
    test_round_trip();
    test_writer_errors();
    test_reader_errors();
    test_mapping();
    test_defaults();
    test_check();
    test_slice_at();
    test_ranks();
    test_progress();
    tap_done_testing();
    return tap_exit();
}
