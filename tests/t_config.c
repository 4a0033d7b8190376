/* tests/t_config.c - strict INI reader, key table, sweep expansion, run
 * identity.  Every config is written by the test into its scratch
 * directory, so error messages can be checked with exact paths and
 * lines. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "config/keys.h"
#include "config/selector.h"
#include "config/sweep.h"
#include "data/data.h"
#include "layers/norm.h"
#include "model/model.h"
#include "optim/optim.h"
#include "probe/probe.h"
#include "run/train.h"
#include "tap.h"

static char dir[4096];

/* Writes dir/name; returns the path (one of a few rotating buffers). */
static const char *wr(const char *name, const char *text)
{
    static char bufs[4][4200];
    static int next;
    char *path = bufs[next++ % 4];
    snprintf(path, 4200, "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    if (!fp)
        tap_bail("cannot write %s", path);
    fputs(text, fp);
    fclose(fp);
    return path;
}

/* Writes n bytes of text (NUL bytes included) to dir/name; returns the
 * path like wr. */
static const char *wrn(const char *name, const char *text, size_t n)
{
    const char *path = wr(name, "");
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(text, 1, n, fp) != n || fclose(fp))
        tap_bail("cannot write %s", path);
    return path;
}

static const char *pth(const char *name)
{
    static char bufs[4][4200];
    static int next;
    char *path = bufs[next++ % 4];
    snprintf(path, 4200, "%s/%s", dir, name);
    return path;
}

/* Loads text as dir/name expecting failure with status NB_EINVAL, message
 * "dir/name:line: msg" and (when hint is non-NULL) that hint. */
#define ERR(name, text, line, msg, hint) \
    check_err(__LINE__, name, text, NULL, line, msg, hint, NULL, NB_EINVAL)
#define ERR_CHECK(name, text, fn, line, msg) \
    check_err(__LINE__, name, text, NULL, line, msg, NULL, fn, NB_EINVAL)

static void check_err(int tl, const char *name, const char *text,
                      const char *errfile, int line, const char *msg,
                      const char *hint, nb_run_check_fn fn, int status)
{
    struct nb_sweep sw;
    struct nb_error e;
    char got[2048], want[2048];
    nb_error_clear(&e);
    const char *path = wr(name, text);
    int rc = nb_sweep_load_checked(path, fn, &sw, &e);
    tap_is_int_at(__FILE__, tl, rc, status, "%s: load fails with %s", name,
                  nb_status_str(status));
    nb_error_format(&e, got, sizeof got);
    if (line > 0)
        snprintf(want, sizeof want, "%s:%d: %s", errfile ? errfile : path, line, msg);
    else
        snprintf(want, sizeof want, "%s: %s", errfile ? errfile : path, msg);
    tap_is_str_at(__FILE__, tl, got, want, "%s: message", name);
    if (hint)
        tap_is_str_at(__FILE__, tl, e.hint, hint, "%s: hint", name);
    tap_ok_at(__FILE__, tl, sw.runs == NULL && sw.n_runs == 0,
              "%s: sweep left empty", name);
}

static int load(const char *name, const char *text, struct nb_sweep *sw)
{
    struct nb_error e;
    nb_error_clear(&e);
    int rc = nb_sweep_load(wr(name, text), sw, &e);
    if (rc) {
        char buf[2048];
        tap_diag("%s refused (expected only where the test says so): %s (hint: %s)", name,
                 nb_error_format(&e, buf, sizeof buf), e.hint);
    }
    return rc;
}

/* "k=v k=v | k=v k=v" over the swept keys (bare key names). */
static const char *table(const struct nb_sweep *sw)
{
    static char buf[8192];
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sw->n_runs; i++) {
        const struct nb_run *r = &sw->runs[i];
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s", i ? " | " : "");
        for (int j = 0; j < r->n_swept; j++)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s=%s", j ? " " : "",
                                  nb_key_at(r->swept[j])->key,
                                  r->vals[r->swept[j]]->text);
    }
    return buf;
}

/* Values of one key over all runs, space-separated. */
static const char *column(const struct nb_sweep *sw, const char *sec,
                          const char *key)
{
    static char buf[8192];
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sw->n_runs; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", i ? " " : "",
                              nb_run_get_str(&sw->runs[i], sec, key));
    return buf;
}

static const char *run_id_of(const struct nb_sweep *sw, const char *sec,
                             const char *key, const char *val)
{
    for (size_t i = 0; i < sw->n_runs; i++)
        if (!strcmp(nb_run_get_str(&sw->runs[i], sec, key), val))
            return sw->runs[i].run_id;
    return "(none)";
}

static int check_small_batch(const struct nb_run *run, struct nb_error *err)
{
    if (nb_run_get_int(run, "train", "batch") < 16)
        return nb_run_error(run, err, "train", "batch", "batch %lld is too small",
                            nb_run_get_int(run, "train", "batch"));
    return 0;
}

static int check_groups(const struct nb_run *run, struct nb_error *err)
{
    if (nb_run_get_int(run, "norm", "groups") == 0 &&
        nb_run_get_enum(run, "norm", "type") == 4)
        return nb_run_error(run, err, "norm", "groups", "groups must be set");
    return 0;
}

static void test_errors(void)
{
    char want[8192];

    ERR("unknown_key.ini", "[optim]\nlr = 0.1\nmomentun = 0.9\n", 3,
        "unknown key 'momentun' in [optim]", "did you mean 'momentum'?");
    ERR("unknown_key2.ini", "[optim]\n\nlerning_rate = 0.1\n", 3,
        "unknown key 'lerning_rate' in [optim]", "did you mean 'lr'?");
    ERR("unknown_key3.ini", "[train]\nlr = 0.1\n", 2,
        "unknown key 'lr' in [train]", "'lr' is a key of [optim]");
    ERR("unknown_key4.ini", "[train]\nbatch_size = 64\n", 2,
        "unknown key 'batch_size' in [train]", "did you mean 'batch'?");
    ERR("unknown_key5.ini", "[probe]\nzzzz = 1\n", 2,
        "unknown key 'zzzz' in [probe]",
        "'normbench config --help' lists the keys of [probe]");
    ERR("unknown_section.ini", "[experiment]\nname = t\n[optimizer]\nlr = 0.1\n",
        3, "unknown section [optimizer]", "did you mean [optim]?");
    ERR("outside.ini", "; no section yet\nlr = 0.1\n", 2,
        "key 'lr' outside of any section", "put it under [optim]");
    ERR("dup.ini", "[optim]\nlr = 0.1\nmomentum = 0.9\nlr = 0.2\n", 4,
        "duplicate key 'lr' in [optim] (first set at line 2)", NULL);
    ERR("dup_sections.ini", "[optim]\nlr = 0.1\n[train]\nbatch = 8\n[optim]\nlr = 0.2\n",
        6, "duplicate key 'lr' in [optim] (first set at line 2)", NULL);
    ERR("noeq.ini", "[optim]\nlr 0.1   ; comment\n", 2,
        "expected 'key = value' or '[section]', got 'lr 0.1'", NULL);
    ERR("nokey.ini", "[optim]\n = 0.1\n", 2, "missing key before '='", NULL);
    ERR("badhdr.ini", "[optim\nlr = 0.1\n", 1,
        "malformed section header '[optim' (missing ']')", NULL);

    ERR("malformed.ini", "[optim]\nlr = 0.1x\n", 2,
        "malformed number '0.1x' for [optim] lr", NULL);
    ERR("malformed_int.ini", "[train]\nbatch = 12.5\n", 2,
        "malformed integer '12.5' for [train] batch", NULL);
    ERR("nan.ini", "[optim]\nlr = nan\n", 2, "malformed number 'nan' for [optim] lr",
        NULL);
    ERR("hex.ini", "[optim]\nlr = 0x1p-3\n", 2,
        "malformed number '0x1p-3' for [optim] lr", NULL);
    ERR("missing.ini", "[optim]\nlr =\n", 2, "missing value for [optim] lr", NULL);
    ERR("inf.ini", "[optim]\nlr = inf\n", 2,
        "infinite value 'inf' not allowed for [optim] lr", NULL);
    ERR("range_lr.ini", "[optim]\nlr = 0\n", 2,
        "value 0 is out of range for [optim] lr (must be > 0)", NULL);
    ERR("range_dropout.ini", "[model]\ndropout = 1\n", 2,
        "value 1 is out of range for [model] dropout (must be in [0, 1))", NULL);
    ERR("range_batch.ini", "[train]\nbatch = 0\n", 2,
        "value 0 is out of range for [train] batch (must be >= 1)", NULL);
    ERR("range_sev.ini", "[data]\nseverity = 6\n", 2,
        "value 6 is out of range for [data] severity (must be in [1, 5])", NULL);
    ERR("range_huge.ini", "[optim]\nlr = 1e999\n", 2,
        "value 1e999 is out of range for [optim] lr (must be > 0)", NULL);
    ERR("range_int.ini", "[train]\nepochs = 99999999999999999999\n", 2,
        "value 99999999999999999999 is out of range for [train] epochs "
        "(must be in [0, 1000000])", NULL);
    ERR("enum.ini", "[norm]\ntype = bn\n", 2, "bad value 'bn' for [norm] type",
        "allowed values: none, batch, layer, instance, group, lp");
    ERR("enum2.ini", "[norm]\ntype = batch, grop\n", 2,
        "bad value 'grop' for [norm] type",
        "did you mean 'group'? allowed values: none, batch, layer, instance, "
        "group, lp");
    ERR("bool.ini", "[norm]\naffine = maybe\n", 2,
        "bad value 'maybe' for [norm] affine (expected a boolean)",
        "allowed values: true, false, yes, no, 1, 0");
    ERR("word.ini", "[norm]\nmomentum = nope\n", 2,
        "malformed number 'nope' for [norm] momentum", "a number or 'none'");
    ERR("depth.ini", "[model]\narch = resnet\ndepth = 10\n", 3,
        "bad value 10 for [model] depth (must be 6n+2: 8, 14, 20, 32, 56, ...)",
        NULL);
    ERR("name.ini", "[experiment]\nname = my exp\n", 2,
        "bad value 'my exp' for [experiment] name (only A-Z a-z 0-9 _ . - "
        "allowed)", NULL);
    ERR("nosweep.ini", "[experiment]\nname = a, b\n", 2,
        "[experiment] name cannot be swept (no lists, ranges or generators)", NULL);
    ERR("widths.ini", "[model]\nwidths = 256 0 256\n", 2,
        "value 0 is out of range in [model] widths (must be >= 1)", NULL);
    ERR("milestones.ini", "[optim]\nmilestones = 30 20\n", 2,
        "[optim] milestones must be strictly increasing ('30 20')", NULL);
    ERR("std.ini", "[data]\nstd = 0.3 0\n", 2,
        "value 0 is out of range in [data] std (must be > 0)", NULL);

    /* sweep values: the line of the bad element, continuation included */
    ERR("list_cont.ini", "[optim]\nlr = 0.1, 0.2,\n     -0.5, 0.4\n", 3,
        "value -0.5 is out of range for [optim] lr (must be > 0)", NULL);
    ERR("list_empty.ini", "[optim]\nlr = 0.1,,0.2\n", 2,
        "empty element in the list for [optim] lr", NULL);
    ERR("list_dup.ini", "[optim]\nlr = 0.1,\n  0.2,\n  1e-1\n", 4,
        "duplicate value 0.1 in the list for [optim] lr (also at line 2)", NULL);
    ERR("gen_log.ini", "[optim]\nlr = log(0, 1, 3)\n", 2,
        "generator 'log(0, 1, 3)': log needs a > 0 and b > 0", NULL);
    ERR("gen_bad.ini", "[optim]\nlr = lin(0.1, 1)\n", 2,
        "malformed generator 'lin(0.1, 1)' (expected lin(a, b, n) with numbers "
        "a, b and an integer n)", NULL);
    ERR("gen_n.ini", "[optim]\nlr = lin(0.1, 1, 1)\n", 2,
        "generator 'lin(0.1, 1, 1)': n must be in [2, 100000]", NULL);
    ERR("gen_int.ini", "[train]\nbatch = log(1, 100, 4)\n", 2,
        "generator 'log(1, 100, 4)' gives the non-integer value 4.64158883361278 "
        "for integer key [train] batch", NULL);
    ERR("gen_range.ini", "[optim]\nlr = lin(0, 1, 3)\n", 2,
        "value 0 is out of range for [optim] lr (must be > 0)", NULL);
    ERR("range_empty.ini", "[experiment]\nseeds = 4..0\n", 2,
        "empty range '4..0' (a..b needs a <= b)", NULL);

    /* zip and exclude */
    ERR("zip_len.ini",
        "[experiment]\nzip = optim.lr, train.batch\n[optim]\nlr = 0.1, 0.2, 0.3\n"
        "[train]\nbatch = 32, 64\n",
        2, "zip: optim.lr has 3 values but train.batch has 2",
        "zipped axes advance together and need the same number of values");
    ERR("zip_single.ini",
        "[experiment]\nzip = lr,\n  batch\n[optim]\nlr = 0.1, 0.2\n[train]\nbatch = 32\n",
        3, "zip: train.batch is not a sweep axis (it has a single value)", NULL);
    ERR("zip_ambig.ini", "[experiment]\nzip = momentum, lr\n", 2,
        "zip: key 'momentum' is ambiguous", "write norm.momentum or optim.momentum");
    ERR("zip_unknown.ini", "[experiment]\nzip = optim.lrr, train.batch\n", 2,
        "zip: unknown key 'optim.lrr'", "did you mean 'optim.lr'?");
    ERR("zip_seeds.ini", "[experiment]\nseeds = 0..2\nzip = seeds, lr\n", 3,
        "zip: experiment.seeds cannot be zipped (seeds is always the innermost "
        "axis)", NULL);
    snprintf(want, sizeof want, "zip: optim.lr is already zipped at %s:2",
             pth("zip_twice.ini"));
    ERR("zip_twice.ini",
        "[experiment]\nzip = lr, batch\nzip = lr, weight_decay\n[optim]\n"
        "lr = 0.1, 0.2\nweight_decay = 0, 0.1\n[train]\nbatch = 32, 64\n",
        3, want, NULL);
    ERR("excl_key.ini", "[experiment]\nexclude = norm.typo=none\n", 2,
        "exclude: unknown key 'norm.typo'", "did you mean 'norm.type'?");
    ERR("excl_val.ini", "[experiment]\nexclude = lr=0.1 &\n   type=bn\n", 3,
        "bad value 'bn' for [norm] type", NULL);
    ERR("excl_syntax.ini", "[experiment]\nexclude = type\n", 2,
        "exclude: expected KEY=VALUE, got 'type'", NULL);
    ERR("excl_all.ini",
        "[experiment]\nexclude = type=none, type=batch\n[norm]\ntype = none, batch\n",
        2, "exclude rules remove every combination: the sweep has no runs", NULL);

    /* cross-key checks: built in, and the hook */
    ERR("cross_mlp.ini",
        "[model]\narch = mlp\n[norm]\ntype = batch,\n  instance\n", 5,
        "instance norm is undefined on an mlp (one element per channel) "
        "(run 1: norm.type=instance)", NULL);
    ERR("cross_multistep.ini", "[optim]\nschedule = multistep\n", 2,
        "schedule = multistep needs [optim] milestones", NULL);
    ERR_CHECK("hook.ini",
              "[train]\nbatch = 64,\n  32,\n  8\n[optim]\nlr = 0.1, 0.2\n",
              check_small_batch, 4,
              "batch 8 is too small (run 4: train.batch=8 optim.lr=0.1)");
    ERR_CHECK("hook_default.ini", "[norm]\ntype = group\n", check_groups, 0,
              "groups must be set");

    /* include: cycle, missing file */
    snprintf(want, sizeof want, "include cycle: %s -> %s -> %s", pth("cyc_a.ini"),
             pth("cyc_b.ini"), pth("cyc_a.ini"));
    wr("cyc_b.ini", "; b\n[train]\ninclude = cyc_a.ini\n");
    check_err(__LINE__, "cyc_a.ini", "[optim]\nlr = 0.1\ninclude = cyc_b.ini\n",
              pth("cyc_b.ini"), 3, want, NULL, NULL, NB_EINVAL);
    snprintf(want, sizeof want, "include cycle: %s -> %s", pth("self.ini"),
             pth("self.ini"));
    ERR("self.ini", "include = self.ini\n", 1, want, NULL);
    snprintf(want, sizeof want, "cannot open included file '%s': No such file or "
             "directory", pth("nonexistent.ini"));
    check_err(__LINE__, "inc_missing.ini", "[optim]\ninclude = nonexistent.ini\n",
              NULL, 2, want, NULL, NULL, NB_EIO);

    /* include = a directory: an error at the include line */
    snprintf(want, sizeof want, "cannot open included file '%s': Is a directory",
             pth("."));
    check_err(__LINE__, "inc_dir.ini", "[optim]\ninclude = .\n", NULL, 2, want, NULL,
              NULL, NB_EIO);

    struct nb_sweep sw;
    struct nb_error e;
    char buf[2048];
    nb_error_clear(&e);
    is_int(nb_sweep_load(dir, &sw, &e), NB_EIO, "a directory as the config: NB_EIO");
    snprintf(want, sizeof want, "%s: cannot open: Is a directory", dir);
    is_str(nb_error_format(&e, buf, sizeof buf), want, "... with its path");
    nb_error_clear(&e);
    is_int(nb_sweep_load(pth("no_such_file.ini"), &sw, &e), NB_EIO,
           "missing config: NB_EIO");
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory",
             pth("no_such_file.ini"));
    is_str(nb_error_format(&e, buf, sizeof buf), want, "missing config: message");
}

static void test_sweeps(void)
{
    struct nb_sweep sw;

    ok(load("empty.ini", "", &sw) == 0 && sw.n_runs == 1 && sw.n_swept == 0,
       "empty config: one run, nothing swept");
    is_str(nb_run_get_str(&sw.runs[0], "experiment", "name"), "empty",
           "name defaults to the config's base name");
    is_int((long long)strlen(sw.runs[0].run_id), 16, "run_id is 16 hex digits");
    nb_sweep_free(&sw);

    ok(load("product.ini",
            "[experiment]\nseeds = 0..1\n[norm]\ntype = batch, group\n"
            "[train]\nbatch = 8, 32\n",
            &sw) == 0,
       "product loads");
    is_int((long long)sw.n_runs, 8, "product: 2 x 2 x 2 seeds = 8 runs");
    is_str(table(&sw),
           "type=batch batch=8 seeds=0 | type=batch batch=8 seeds=1 | "
           "type=batch batch=32 seeds=0 | type=batch batch=32 seeds=1 | "
           "type=group batch=8 seeds=0 | type=group batch=8 seeds=1 | "
           "type=group batch=32 seeds=0 | type=group batch=32 seeds=1",
           "product: first axis outermost, seeds innermost");
    ok(sw.runs[5].seed == 1 && sw.runs[5].index == 5, "run seed and index");
    nb_sweep_free(&sw);

    ok(load("order.ini",
            "[train]\nbatch = 8, 32\n[norm]\ntype = batch, group\n", &sw) == 0,
       "file order loads");
    is_str(table(&sw),
           "batch=8 type=batch | batch=8 type=group | batch=32 type=batch | "
           "batch=32 type=group",
           "axes in file order");
    nb_sweep_free(&sw);

    ok(load("zip.ini",
            "[norm]\ntype = batch, none\n[optim]\nlr = 0.1, 0.2, 0.4\n"
            "[train]\nbatch = 32, 64, 128\n[experiment]\nzip = lr, train.batch\n",
            &sw) == 0,
       "zip loads");
    is_str(table(&sw),
           "type=batch lr=0.1 batch=32 | type=batch lr=0.2 batch=64 | "
           "type=batch lr=0.4 batch=128 | type=none lr=0.1 batch=32 | "
           "type=none lr=0.2 batch=64 | type=none lr=0.4 batch=128",
           "zip advances lr and batch together");
    nb_sweep_free(&sw);

    /* arms: a zipped key may repeat a value; a repeated combination is
     * an error, as is a repeated value of a key not zipped */
    ok(load("zip_arms.ini",
            "[optim]\nlr = 0.1, 0.5, 0.5\n[train]\nbatch = 128, 4096, 4096\n"
            "[norm]\nnorm_batch = 0, 0, 128\n[experiment]\nzip = lr, batch, norm_batch\n",
            &sw) == 0,
       "zip arms with repeated values load");
    is_str(table(&sw), "lr=0.1 batch=128 norm_batch=0 | lr=0.5 batch=4096 norm_batch=0 | "
                       "lr=0.5 batch=4096 norm_batch=128",
           "  one run per arm");
    {
        struct nb_sweep nl;
        ok(load("zip_arms_named.ini",
                "[optim]\nlr = 0.1, 0.5, 0.5\n[train]\nbatch = 128, 4096, 4096\n"
                "[norm]\nnorm_batch = 0, 0, 128\n[experiment]\narm = SB, LB, LB+GBN\n"
                "zip = arm, lr, batch, norm_batch\n",
                &nl) == 0 && nl.n_runs == 3,
           "arms named by experiment.arm load");
        bool same = nl.n_runs == 3;
        for (size_t i = 0; i < 3 && same; i++)
            same = !strcmp(nl.runs[i].run_id, sw.runs[i].run_id);
        ok(same, "  an arm's label is not part of the run identity");
        nb_sweep_free(&nl);
    }
    nb_sweep_free(&sw);
    ERR("zip_dup.ini",
        "[experiment]\nzip = lr, batch\n[optim]\nlr = 0.1, 0.5, 0.1\n[train]\nbatch = 8, 8, 8\n",
        2, "zip: combinations 1 and 3 are the same (optim.lr = 0.1, ...)",
        "zipped axes may repeat a value, but each position must make a different "
        "combination");
    ERR("seeds_dup.ini", "[experiment]\nseeds = 1, 2, 1\n", 2,
        "duplicate value 1 in the list for [experiment] seeds (also at line 2)", NULL);

    ok(load("zip_pos.ini",
            "[train]\nbatch = 32, 64\n[norm]\ntype = batch, none\n"
            "[optim]\nlr = 0.1, 0.2\n[experiment]\nzip = lr, batch\n",
            &sw) == 0,
       "zip position loads");
    is_str(table(&sw),
           "lr=0.1 batch=32 type=batch | lr=0.1 batch=32 type=none | "
           "lr=0.2 batch=64 type=batch | lr=0.2 batch=64 type=none",
           "zip group sits at its first axis in the file");
    nb_sweep_free(&sw);

    ok(load("exclude.ini",
            "[experiment]\nexclude = norm.type=none & model.placement=post\n"
            "[norm]\ntype = none, batch\n[model]\nplacement = pre, post\n",
            &sw) == 0,
       "exclude loads");
    is_str(table(&sw),
           "type=none placement=pre | type=batch placement=pre | "
           "type=batch placement=post",
           "exclude drops none/post");
    is_int((long long)sw.runs[2].index, 2, "indices are contiguous after exclude");
    nb_sweep_free(&sw);

    ok(load("exclude2.ini",
            "[experiment]\nexclude = type=none & batch=8|16, type=layer & "
            "batch!=64\nexclude = type=batch & batch=64\n"
            "[norm]\ntype = none, batch, layer\n[train]\nbatch = 8, 16, 64\n",
            &sw) == 0,
       "several exclude rules load");
    is_str(table(&sw),
           "type=none batch=64 | type=batch batch=8 | type=batch batch=16 | "
           "type=layer batch=64",
           "exclude: ',' rules, repeated lines, A|B and !=");
    nb_sweep_free(&sw);

    ok(load("gen_log.ini", "[optim]\nlr = log(1e-3, 1e-1, 3)\n", &sw) == 0 &&
           sw.n_swept == 1,
       "log generator is an axis");
    is_str(column(&sw, "optim", "lr"), "0.001 0.01 0.1", "log(1e-3, 1e-1, 3)");
    nb_sweep_free(&sw);
    ok(load("gen_log5.ini", "[optim]\nlr = log(1e-3, 1e-1, 5)\n", &sw) == 0, "log 5");
    is_str(column(&sw, "optim", "lr"),
           "0.001 0.00316227766016838 0.01 0.0316227766016838 0.1",
           "log(1e-3, 1e-1, 5) rounds to 15 digits");
    nb_sweep_free(&sw);
    ok(load("gen_lin.ini", "[optim]\nmomentum = lin(0.1, 0.5, 5)\n", &sw) == 0, "lin");
    is_str(column(&sw, "optim", "momentum"), "0.1 0.2 0.3 0.4 0.5",
           "lin(0.1, 0.5, 5) gives round values");
    nb_sweep_free(&sw);
    ok(load("gen_int.ini", "[train]\nbatch = log(2, 128, 7)\n", &sw) == 0, "int log");
    is_str(column(&sw, "train", "batch"), "2 4 8 16 32 64 128",
           "log(2, 128, 7) on an integer key");
    nb_sweep_free(&sw);
    ok(load("gen_mix.ini", "[optim]\nlr = 0.5, lin(0.1, 0.3, 3)\n", &sw) == 0, "mixed");
    is_str(column(&sw, "optim", "lr"), "0.5 0.1 0.2 0.3",
           "list elements and generators concatenate");
    nb_sweep_free(&sw);
    ok(load("range.ini", "[experiment]\nseeds = 3..5\n[norm]\ngroups = 0..1\n", &sw) == 0,
       "ranges load");
    is_str(table(&sw), "groups=0 seeds=3 | groups=0 seeds=4 | groups=0 seeds=5 | "
                       "groups=1 seeds=3 | groups=1 seeds=4 | groups=1 seeds=5",
           "integer ranges a..b; seeds innermost although written first");
    nb_sweep_free(&sw);
    ok(load("seeds_list.ini", "[experiment]\nseeds = 1, 2, 3\n", &sw) == 0 &&
           sw.n_runs == 3 && sw.runs[2].seed == 3,
       "seeds as a list");
    ok(strcmp(sw.runs[0].run_id, sw.runs[1].run_id) != 0,
       "different seeds, different run_ids");
    nb_sweep_free(&sw);

    ok(load("bool_axis.ini", "[norm]\naffine = yes, 0\n", &sw) == 0, "bool axis");
    is_str(column(&sw, "norm", "affine"), "true false", "booleans are canonical");
    nb_sweep_free(&sw);
    ok(load("widths_axis.ini", "[model]\nwidths = 256  256, 512\n", &sw) == 0, "list axis");
    is_str(column(&sw, "model", "widths"), "256 256 512",
           "a comma list of space lists is an axis of lists");
    nb_sweep_free(&sw);

    /* a line far beyond inih's 200 bytes */
    char big[8192];
    size_t n = (size_t)snprintf(big, sizeof big, "[optim]\nlr = ");
    for (int i = 1; i <= 300; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, "%s%d", i > 1 ? ", " : "", i);
    snprintf(big + n, sizeof big - n, "\n");
    ok(load("long.ini", big, &sw) == 0 && sw.n_runs == 300 &&
           nb_run_get_double(&sw.runs[299], "optim", "lr") == 300,
       "a %zu-byte line parses", n);
    nb_sweep_free(&sw);
}

static void test_syntax(void)
{
    struct nb_sweep sw;

    struct nb_error e;
    char got[2048], want[2048];
    nb_error_clear(&e);
    const char *p = wr("syntax_hash.ini",
                       "\xEF\xBB\xBF# comment\r\n[model]   ; section comment\r\n"
                       "widths = 512 ; first\r\n   256 # second\r\n; a comment "
                       "line\r\n   128\r\n\r\n[optim]\r\nlr=0.2\r\n"
                       "weight_decay = 5e-4#not a comment\n");
    ok(nb_sweep_load(p, &sw, &e) == NB_EINVAL,
       "'#' without a blank before it is part of the value");
    snprintf(want, sizeof want, "%s:10: malformed number '5e-4#not a comment' "
             "for [optim] weight_decay", p);
    is_str(nb_error_format(&e, got, sizeof got), want,
           "line count survives BOM, CRLF, comments and continuations");
    ok(load("syntax.ini",
            "\xEF\xBB\xBF# comment\r\n[model]   ; section comment\r\n"
            "widths = 512 ; first\r\n   256 # second\r\n; a comment line\r\n"
            "   128\r\n\r\n[optim]\r\nlr=0.2\r\nweight_decay = 5e-4 #comment\n",
            &sw) == 0,
       "BOM, CRLF, comments, continuation lines");
    is_str(nb_run_get_str(&sw.runs[0], "model", "widths"), "512 256 128",
           "continuation lines join with one space");
    is_str(nb_run_get_str(&sw.runs[0], "optim", "lr"), "0.2", "key=value without blanks");
    is_str(nb_run_get_str(&sw.runs[0], "optim", "weight_decay"), "0.0005",
           "5e-4 is canonical 0.0005");
    nb_sweep_free(&sw);

    ok(load("blank_ends.ini", "[model]\nwidths = 64\n\n  arch = mlp\n", &sw) == 0,
       "blank line ends a value");
    is_str(nb_run_get_str(&sw.runs[0], "model", "arch"), "mlp",
           "an indented key after a blank line is a key");
    nb_sweep_free(&sw);

    ok(load("canon.ini",
            "[norm]\neps = 1e-5\nmomentum = none\nrenorm_warmup = 100\n"
            "[optim]\nlr = 1E-1\nweight_decay = 0.30000000000000004\n"
            "[train]\nbatch = +64\ndiverge_loss = 1e3\n"
            "[data]\nmean = 0.2860 \nstd = 3.530e-1\nstandardize = given\n",
            &sw) == 0,
       "canonical values load");
    const struct nb_run *r = &sw.runs[0];
    is_str(nb_run_get_str(r, "norm", "eps"), "1e-05", "1e-5 -> 1e-05");
    is_str(nb_run_get_str(r, "optim", "lr"), "0.1", "1E-1 -> 0.1");
    is_str(nb_run_get_str(r, "optim", "weight_decay"), "0.30000000000000004",
           "17 digits where 15 do not round-trip");
    is_str(nb_run_get_str(r, "train", "batch"), "64", "+64 -> 64");
    is_str(nb_run_get_str(r, "train", "diverge_loss"), "1000", "1e3 -> 1000");
    is_str(nb_run_get_str(r, "data", "mean"), "0.286", "lists canonical");
    is_str(nb_run_get_str(r, "data", "std"), "0.353", "lists canonical (2)");

    /* getters */
    is_close(nb_run_get_double(r, "optim", "lr"), 0.1, 0, 0, "get_double");
    is_int(nb_run_get_int(r, "train", "batch"), 64, "get_int");
    ok(nb_run_get_bool(r, "norm", "affine"), "get_bool default true");
    is_int(nb_run_get_enum(r, "data", "standardize"), 2, "get_enum index");
    ok(nb_run_is_word(r, "norm", "momentum") &&
           isnan(nb_run_get_double(r, "norm", "momentum")),
       "momentum = none: is_word, get_double NAN");
    ok(nb_run_is_word(r, "norm", "renorm_dmax_steps") &&
           nb_run_get_int(r, "norm", "renorm_dmax_steps") == -1 &&
           !nb_run_is_word(r, "norm", "renorm_warmup") &&
           nb_run_get_int(r, "norm", "renorm_warmup") == 100,
       "renorm steps: auto -> -1, numbers as given");
    ok(isinf(nb_run_get_double(r, "train", "diverge_loss")) == 0, "diverge_loss finite");
    long long w[8];
    is_int(nb_run_get_int_list(r, "model", "widths", w, 8), 3, "int list count");
    ok(w[0] == 256 && w[2] == 256, "int list values");
    double m[4];
    ok(nb_run_get_double_list(r, "data", "mean", m, 4) == 1 && m[0] == 0.286,
       "double list");
    nb_sweep_free(&sw);
}

static void test_identity(void)
{
    struct nb_sweep a, b, c;
    const char *text = "[norm]\ntype = batch, group\n[optim]\nlr = 0.1, 0.2\n";

    ok(load("id.ini", text, &a) == 0 && load("id.ini", text, &b) == 0, "id loads twice");
    int same = a.n_runs == b.n_runs;
    for (size_t i = 0; same && i < a.n_runs; i++)
        same = !strcmp(a.runs[i].run_id, b.runs[i].run_id);
    ok(same, "run_ids stable across loads");
    nb_sweep_free(&b);

    ok(load("id_more.ini",
            "[experiment]\nname = renamed\n[norm]\ntype = batch, group\n"
            "[optim]\nlr = 0.05, 0.1,\n   2e-1\n",
            &b) == 0 && b.n_runs == 6,
       "adding an axis value (and renaming) loads");
    int kept = 1;
    for (size_t i = 0; i < a.n_runs; i++) {
        long j = nb_sweep_find(&b, a.runs[i].run_id);
        kept &= j >= 0 &&
                !strcmp(nb_run_get_str(&b.runs[j], "optim", "lr"),
                        nb_run_get_str(&a.runs[i], "optim", "lr")) &&
                !strcmp(nb_run_get_str(&b.runs[j], "norm", "type"),
                        nb_run_get_str(&a.runs[i], "norm", "type"));
    }
    ok(kept, "existing runs keep their run_id (index and name do not count)");
    ok(b.runs[1].index == 1 && !strcmp(b.runs[1].run_id, a.runs[0].run_id),
       "run 0 of the old sweep is run 1 of the new one");
    nb_sweep_free(&b);

    ok(load("id_axis.ini", "[train]\nbatch = 64, 128\n", &b) == 0 &&
           load("empty.ini", "", &c) == 0,
       "a new axis including the default loads");
    is_str(run_id_of(&b, "train", "batch", "128"), c.runs[0].run_id,
           "the default value's run keeps the default config's run_id");
    nb_sweep_free(&b);

    /* a key added after 0.1.0 (NB_KF_ADDED) counts only when not default:
     * runs made before it existed keep their ids.  The literal is the id
     * 0.1.0 gave the default config; results on disk depend on it. */
    is_str(c.runs[0].run_id, "0bc6f2937e4b50d4", "the default config's run_id is that of 0.1.0");
    ok(load("id_added.ini", "[model]\nlinear_norm = yes, false\n", &b) == 0 && b.n_runs == 2,
       "added key swept loads");
    is_str(run_id_of(&b, "model", "linear_norm", "true"), c.runs[0].run_id,
           "added key at its default: the old run_id");
    ok(strcmp(run_id_of(&b, "model", "linear_norm", "false"), c.runs[0].run_id) != 0,
       "added key off its default: a new run_id");
    nb_sweep_free(&b);

    /* settings that change nothing take the default's identity: the run
     * at the default keeps its id, a no-op one shares it, and sweeping one
     * is an error that says why */
    ok(load("id_threads.ini", "[train]\nthreads = 4\n", &b) == 0 && b.n_runs == 1,
       "threads = 4 loads");
    is_str(b.runs[0].run_id, c.runs[0].run_id,
           "threads (never changes results) takes the default's identity");
    nb_sweep_free(&b);
    ERR("id_threads2.ini", "[train]\nthreads = 1, 4\n", 0,
        "runs 0 and 1 have the same run_id 0bc6f2937e4b50d4: they differ only in "
        "train.threads = 1 / 4, which make the same run",
        "sweep only settings that change the run (threads never does; bias_before_norm "
        "needs a norm after the layer, dropout_place needs dropout, noise_eval needs "
        "noisy, renorm_momentum needs renorm, frozen_from needs frozen; Keras momentum m is "
        "PyTorch 1 - m)");
    ok(load("id_bias.ini", "[norm]\ntype = none\n[model]\nbias_before_norm = true\n", &b) == 0,
       "bias_before_norm without a norm loads");
    is_str(b.runs[0].run_id, c.runs[0].run_id, "  with the default's identity");
    nb_sweep_free(&b);
    ok(load("id_bias2.ini", "[norm]\ntype = batch\n[model]\nbias_before_norm = false, true\n"
                            "placement = post\n", &b) != 0,
       "bias_before_norm swept with post placement: refused (one identity)");
    ok(load("id_bias3.ini", "[norm]\ntype = batch\n[model]\nbias_before_norm = false, true\n",
            &b) == 0 && b.n_runs == 2 && strcmp(b.runs[0].run_id, b.runs[1].run_id) != 0,
       "bias_before_norm before a norm (pre): two identities");
    nb_sweep_free(&b);
    ok(load("id_dplace.ini", "[model]\ndropout_place = before_norm\n", &b) == 0,
       "dropout_place without dropout loads");
    is_str(b.runs[0].run_id, c.runs[0].run_id, "  with the default's identity");
    nb_sweep_free(&b);
    ok(load("id_dplace2.ini", "[model]\ndropout = 0.5\ndropout_place = classifier, before_norm\n"
                              "[norm]\ntype = batch\n", &b) == 0 &&
           b.n_runs == 2 && strcmp(b.runs[0].run_id, b.runs[1].run_id) != 0,
       "dropout_place with dropout and a norm: two identities");
    nb_sweep_free(&b);
    ok(load("id_neval.ini", "[norm]\nnoise_eval = mean\n", &b) == 0,
       "noise_eval without noise loads");
    is_str(b.runs[0].run_id, c.runs[0].run_id, "  with the default's identity");
    nb_sweep_free(&b);
    ok(load("id_neval2.ini", "[norm]\ntype = batch\nnoisy = false\nnoise_eval = off, mean\n",
            &b) != 0,
       "noise_eval swept without noise: refused (one identity)");
    ok(load("id_neval3.ini", "[norm]\ntype = batch\nnoisy = true\nnoise_eval = off, mean\n",
            &b) == 0 && b.n_runs == 2 && strcmp(b.runs[0].run_id, b.runs[1].run_id) != 0,
       "noise_eval with noise: two identities");
    /* the literal: the id of this config before noise_eval existed */
    is_str(run_id_of(&b, "norm", "noise_eval", "off"), "ba0487031da3b681",
           "noise_eval = off (added after 0.1.0): a noisy run keeps the id it had before");
    nb_sweep_free(&b);

    /* one run per momentum convention pair: keras m is pytorch 1 - m (the
     * layer computes with nb_norm_momentum_from_keras; t_norm) */
    ok(load("id_keras.ini", "[norm]\ntype = batch\nmomentum = 0.99\nmomentum_convention = keras\n",
            &b) == 0 && b.n_runs == 1,
       "keras momentum 0.99 loads");
    {
        struct nb_sweep t;
        ok(load("id_torch.ini", "[norm]\ntype = batch\nmomentum = 0.01\n", &t) == 0 &&
               t.n_runs == 1,
           "pytorch momentum 0.01 loads");
        is_str(b.runs[0].run_id, t.runs[0].run_id, "  keras 0.99 and pytorch 0.01: one run_id");
        nb_sweep_free(&t);
    }
    nb_sweep_free(&b);
    ok(load("id_keras2.ini", "[norm]\nmomentum = 0.9\nmomentum_convention = keras\n", &b) == 0,
       "keras momentum 0.9 loads");
    is_str(b.runs[0].run_id, c.runs[0].run_id, "  with the identity of the default (pytorch 0.1)");
    nb_sweep_free(&b);
    ERR("id_keras3.ini",
        "[norm]\ntype = batch\nmomentum_convention = keras, pytorch\nmomentum = 0.99, 0.01\n"
        "[experiment]\nzip = norm.momentum_convention, norm.momentum\n",
        0,
        "runs 0 and 1 have the same run_id 9faeefdcc65d6eae: they differ only in "
        "norm.momentum = 0.99 / 0.01, norm.momentum_convention = keras / pytorch, which make "
        "the same run",
        NULL);
    ok(load("id_keras4.ini", "[norm]\ntype = batch\nmomentum = none\nmomentum_convention = "
                             "keras, pytorch\n", &b) != 0,
       "momentum = none in both conventions: refused (one run)");
    ok(load("id_rmom.ini", "[norm]\ntype = batch\nrenorm_momentum = 0.5, 0.1\n", &b) != 0,
       "renorm_momentum swept without renorm: refused (one identity)");
    ok(load("id_rmom2.ini", "[norm]\ntype = batch\nrenorm = true\nrenorm_momentum = 0.5, 0.1\n",
            &b) == 0 && b.n_runs == 2 && strcmp(b.runs[0].run_id, b.runs[1].run_id) != 0,
       "renorm_momentum with renorm: two identities");
    nb_sweep_free(&b);
    ok(load("id_frozen.ini", "[norm]\ntype = batch\nfrozen_from = 0, 100\n", &b) != 0,
       "frozen_from swept without frozen: refused (one identity)");
    ok(load("id_frozen2.ini", "[norm]\ntype = batch\nfrozen = true\nfrozen_from = 0, 100\n",
            &b) == 0 && b.n_runs == 2 && strcmp(b.runs[0].run_id, b.runs[1].run_id) != 0,
       "frozen_from with frozen: two identities");
    nb_sweep_free(&b);

    /* round trip through config.ini */
    const struct nb_run *r = &a.runs[3];
    FILE *fp = fopen(pth("roundtrip.ini"), "w");
    ok(fp && nb_run_write_ini(fp, r) == 0, "write resolved ini");
    fclose(fp);
    struct nb_error e;
    nb_error_clear(&e);
    ok(nb_sweep_load(pth("roundtrip.ini"), &b, &e) == 0 && b.n_runs == 1 &&
           b.n_swept == 0,
       "resolved ini loads as one run");
    is_str(b.runs[0].run_id, r->run_id, "round trip keeps the run_id");
    char *t1 = NULL, *t2 = NULL;
    size_t l1 = 0, l2 = 0;
    FILE *m1 = open_memstream(&t1, &l1), *m2 = open_memstream(&t2, &l2);
    nb_run_write_ini(m1, r);
    nb_run_write_ini(m2, &b.runs[0]);
    fclose(m1);
    fclose(m2);
    is_str(t2, t1, "round trip gives the same text");
    contains(t1, "[optim]\nlr = 0.2\n", "config.ini holds canonical values");
    contains(t1, "name = id\n", "config.ini holds the name");
    char *canon = nb_run_canonical(r);
    ok(canon && !strstr(canon, "name =") && !strstr(canon, "zip") &&
           strstr(canon, "seeds = 0\n"),
       "identity text: no name, no zip/exclude, the seed");
    ok(nb_fnv1a64(canon, strlen(canon)) == r->hash, "run hash = FNV-1a of the text");
    free(canon);
    free(t1);
    free(t2);
    nb_sweep_free(&b);

    /* help is a valid config giving the defaults */
    fp = fopen(pth("help.ini"), "w");
    nb_config_help(fp);
    fclose(fp);
    nb_error_clear(&e);
    ok(nb_sweep_load(pth("help.ini"), &b, &e) == 0 && b.n_runs == 1,
       "config --help output loads");
    is_str(b.runs[0].run_id, c.runs[0].run_id, "help output = the defaults");
    nb_sweep_free(&b);
    int defaults_ok = 1;
    for (int i = 0; i < nb_key_count(); i++) {
        if (nb_key_at(i)->flags & NB_KF_STRUCT)
            continue;
        char *out = NULL;
        if (nb_key_canon(nb_key_at(i), nb_key_at(i)->def, "t", 0, &out, &e) != 0 ||
            strcmp(out, nb_key_at(i)->def)) {
            tap_diag("default of [%s] %s is not canonical", nb_key_at(i)->section,
                     nb_key_at(i)->key);
            defaults_ok = 0;
        }
        free(out);
        for (int j = 0; j < i; j++)
            if (!strcmp(nb_key_at(i)->section, nb_key_at(j)->section) &&
                !strcmp(nb_key_at(i)->key, nb_key_at(j)->key))
                defaults_ok = 0;
    }
    ok(defaults_ok, "every default is valid and canonical; keys unique");

    /* list output */
    char *lt = NULL;
    size_t ll = 0;
    FILE *ml = open_memstream(&lt, &ll);
    nb_sweep_print_list(ml, &a);
    fclose(ml);
    char want[1024];
    snprintf(want, sizeof want,
             "0\t%s\tnorm.type=batch\toptim.lr=0.1\n1\t%s\tnorm.type=batch\toptim.lr=0.2\n"
             "2\t%s\tnorm.type=group\toptim.lr=0.1\n3\t%s\tnorm.type=group\toptim.lr=0.2\n",
             a.runs[0].run_id, a.runs[1].run_id, a.runs[2].run_id, a.runs[3].run_id);
    is_str(lt, want, "nb_sweep_print_list format");
    free(lt);
    is_int(nb_sweep_find(&a, "0000000000000000"), -1, "find unknown run_id");
    nb_sweep_free(&a);
    nb_sweep_free(&c);
    nb_sweep_free(&c); /* safe twice */
}

static void test_include(void)
{
    struct nb_sweep sw;
    wr("inc_base.ini", "[optim]\nlr = 0.5\nmomentum = 0.8\n[train]\nbatch = 16, 32\n");

    ok(load("inc_main.ini", "include = inc_base.ini\n[optim]\nlr = 0.05\n[train]\n"
                            "batch = 64\n", &sw) == 0 && sw.n_runs == 1,
       "include then override");
    const struct nb_run *r = &sw.runs[0];
    ok(!strcmp(nb_run_get_str(r, "optim", "lr"), "0.05") &&
           !strcmp(nb_run_get_str(r, "optim", "momentum"), "0.8") &&
           !strcmp(nb_run_get_str(r, "train", "batch"), "64"),
       "later keys override included ones; others are inherited");
    ok(r->vals[nb_key_lookup("optim", "momentum")]->line == 3 &&
           strstr(r->vals[nb_key_lookup("optim", "momentum")]->file, "inc_base.ini"),
       "inherited value remembers its file and line");
    nb_sweep_free(&sw);

    ok(load("inc_after.ini", "[optim]\nlr = 0.3\ninclude = inc_base.ini\n", &sw) == 0,
       "include after a key");
    is_str(table(&sw), "batch=16 | batch=32", "included axis");
    is_str(nb_run_get_str(&sw.runs[0], "optim", "lr"), "0.5",
           "the include, coming later, overrides");
    nb_sweep_free(&sw);

    struct nb_error e;
    char buf[2048], want[2048];
    nb_error_clear(&e);
    ok(nb_sweep_load(wr("inc_dup.ini", "[optim]\nlr = 0.3\ninclude = inc_base.ini\n"
                                       "lr = 0.4\n"), &sw, &e) == NB_EINVAL,
       "duplicate around an include");
    snprintf(want, sizeof want, "%s:4: duplicate key 'lr' in [optim] (first set at "
             "line 2)", pth("inc_dup.ini"));
    is_str(nb_error_format(&e, buf, sizeof buf), want,
           "duplicates within one file are errors even across an include");

    wr("inc_common.ini", "[norm]\neps = 0.001\n");
    wr("inc_x.ini", "include = inc_common.ini\n[optim]\nlr = 0.2\n");
    wr("inc_y.ini", "include = inc_common.ini\n[train]\nbatch = 8\n");
    ok(load("inc_diamond.ini", "include = inc_x.ini\ninclude = inc_y.ini\n", &sw) == 0 &&
           !strcmp(nb_run_get_str(&sw.runs[0], "norm", "eps"), "0.001"),
       "a file included twice (diamond) is not a cycle or duplicate");
    nb_sweep_free(&sw);

    wr("inc_train.ini", "[train]\nbatch = 7\n");
    ok(load("inc_section.ini", "[optim]\ninclude = inc_train.ini\nlr = 0.2\n", &sw) == 0 &&
           nb_run_get_int(&sw.runs[0], "train", "batch") == 7 &&
           nb_run_get_double(&sw.runs[0], "optim", "lr") == 0.2,
       "the section continues after an include");
    nb_sweep_free(&sw);

    mkdir(pth("sub"), 0777);
    wr("sub/child.ini", "[optim]\nlr = 0.7\n");
    ok(load("sub/parent.ini", "include = child.ini\n", &sw) == 0 &&
           nb_run_get_double(&sw.runs[0], "optim", "lr") == 0.7,
       "include paths are relative to the including file");
    nb_sweep_free(&sw);

    ok(load("inc_zip.ini",
            "include = inc_base.ini\n[optim]\nlr = 0.1, 0.2\n[experiment]\n"
            "zip = batch, lr\nexclude = lr=0.2\n", &sw) == 0,
       "zip over an included axis");
    is_str(table(&sw), "batch=16 lr=0.1", "included axis zipped and excluded");
    nb_sweep_free(&sw);
}

/* Loads path expecting status and the message "path:line: msg". */
static void load_fails(int tl, const char *path, int status, int line, const char *msg)
{
    struct nb_sweep sw;
    struct nb_error e;
    char got[2048], want[2048];
    nb_error_clear(&e);
    int rc = nb_sweep_load(path, &sw, &e);
    tap_is_int_at(__FILE__, tl, rc, status, "%s: load fails", path);
    if (!rc)
        nb_sweep_free(&sw);
    snprintf(want, sizeof want, "%s:%d: %s", path, line, msg);
    tap_is_str_at(__FILE__, tl, nb_error_format(&e, got, sizeof got), want, "... message");
}

/* What is not a text config: NUL bytes, endless lines, endless files. */
static void test_limits(void)
{
    static const char nul[] = "[train]\nbatch = 16\nmax_steps = 4\0" "0\n";
    load_fails(__LINE__, wrn("nul.ini", nul, sizeof nul - 1), NB_EINVAL, 3,
               "NUL byte in column 14 (not a text file?)");
    static const char nul2[] = "[train]\n\0";
    load_fails(__LINE__, wrn("nul2.ini", nul2, sizeof nul2 - 1), NB_EINVAL, 2,
               "NUL byte in column 1 (not a text file?)");

    /* a line of NB_INI_MAX_LINE bytes ('\n' included) is fine, one more is not */
    size_t n = NB_INI_MAX_LINE + 16;
    char *big = malloc(n);
    if (!big)
        tap_bail("out of memory");
    memcpy(big, "[train]\n#", 9);
    memset(big + 9, 'x', n - 9);
    big[8 + NB_INI_MAX_LINE - 1] = '\n';
    struct nb_sweep sw;
    struct nb_error e;
    nb_error_clear(&e);
    ok(nb_sweep_load(wrn("line_max.ini", big, 8 + NB_INI_MAX_LINE), &sw, &e) == 0,
       "a line of %d bytes loads", NB_INI_MAX_LINE);
    nb_sweep_free(&sw);
    big[8 + NB_INI_MAX_LINE - 1] = 'x';
    big[8 + NB_INI_MAX_LINE] = '\n';
    char msg[256];
    snprintf(msg, sizeof msg, "line longer than %d bytes", NB_INI_MAX_LINE);
    load_fails(__LINE__, wrn("line_long.ini", big, 8 + NB_INI_MAX_LINE + 1), NB_EINVAL, 2,
               msg);
    free(big);

    /* a file of comment lines one byte over NB_INI_MAX_FILE */
    const char *path = pth("file_big.ini");
    FILE *fp = fopen(path, "w");
    if (!fp)
        tap_bail("cannot write %s", path);
    long left = NB_INI_MAX_FILE + 1, lines = 0;
    while (left > 0) {
        fputs(left >= 8 ? "# 34567\n" : "#", fp);
        left -= left >= 8 ? 8 : 1;
        lines++;
    }
    if (fclose(fp))
        tap_bail("cannot write %s", path);
    snprintf(msg, sizeof msg, "file larger than %ld bytes", NB_INI_MAX_FILE);
    load_fails(__LINE__, path, NB_EINVAL, (int)lines, msg);
}

/* every enum key that picks a C enum takes the module's own name table
 * (so runcfg.c's casts map by enumerator), and that table names every
 * enumerator before its NULL */
static void test_enum_tables(void)
{
    static const struct {
        const char *section, *key;
        const char *const *names;
        int count;
    } t[] = {
        {"model", "arch", nb_arch_names, NB_ARCH_COUNT},
        {"model", "activation", nb_act_names, NB_ACT_COUNT},
        {"model", "placement", nb_norm_placement_names, NB_PLACE_COUNT},
        {"model", "init", nb_init_names, NB_INIT_COUNT},
        {"model", "dropout_place", nb_dropout_place_names, NB_DROPOUT_COUNT},
        {"model", "conv_algo", nb_conv_algo_names, NB_CONV_ALGO_COUNT},
        {"norm", "type", nb_norm_type_names, NB_NORM_TYPE_COUNT},
        {"norm", "lp", nb_norm_lp_names, NB_LP_COUNT},
        {"optim", "schedule", nb_sched_names, NB_SCHED_COUNT},
        {"data", "source", nb_data_source_names, NB_SRC_COUNT},
        {"data", "standardize", nb_std_mode_names, NB_STD_COUNT},
        {"data", "corruption", nb_corruption_names, NB_CORRUPT_COUNT},
        {"data", "resize_mode", nb_resize_mode_names, NB_RESIZE_COUNT},
        {"probe", "eta_spacing", nb_probe_spacing_names, NB_SPACING_COUNT},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int k = nb_key_lookup(t[i].section, t[i].key);
        ok(k >= 0 && nb_key_at(k)->enum_values == t[i].names, "%s.%s takes the module's name table",
           t[i].section, t[i].key);
        int n = 0;
        while (t[i].names[n])
            n++;
        is_int(n, t[i].count, "  which names all %d enumerators", t[i].count);
    }
}

/* every key's full name is its section, a dot and its key */
static void test_key_names(void)
{
    int bad = 0;
    for (int i = 0; i < nb_key_count(); i++) {
        char want[256];
        snprintf(want, sizeof want, "%s.%s", nb_key_at(i)->section, nb_key_at(i)->key);
        if (!nb_key_at(i)->full || strcmp(nb_key_at(i)->full, want)) {
            tap_diag("key %d: full name '%s', want '%s'", i,
                 nb_key_at(i)->full ? nb_key_at(i)->full : "(null)", want);
            bad++;
        }
    }
    is_int(bad, 0, "every key's full name is section.key (%d keys)", nb_key_count());
}

/* The modules' key tables (core/opt.h): every one is registered, in the
 * canonical section order, and every row that names a member writes its
 * default into exactly that member's bytes (a wrong width or offset
 * would spill into its neighbours) and reads back as the default. */
static void test_module_tables(void)
{
    static const struct {
        const char *name, *section;
        const struct nb_key *keys;
        const int *n;
        size_t size;
    } t[] = {
        {"model", "model", nb_model_keys, &nb_model_n_keys, sizeof(struct nb_model_desc)},
        {"norm", "norm", nb_norm_keys, &nb_norm_n_keys, sizeof(struct nb_norm_opts)},
        {"train (norm)", "norm", nb_train_norm_keys, &nb_train_norm_n_keys,
         sizeof(struct nb_train_spec)},
        {"optim", "optim", nb_optim_keys, &nb_optim_n_keys, sizeof(struct nb_optim_opts)},
        {"train", "train", nb_train_keys, &nb_train_n_keys, sizeof(struct nb_train_spec)},
        {"data", "data", nb_data_keys, &nb_data_n_keys, sizeof(struct nb_data_opts)},
        {"probe", "probe", nb_probe_keys, &nb_probe_n_keys, sizeof(struct nb_probe_opts)},
    };
    int total = nb_key_count(), prev_end = -1;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int n, first = nb_key_table_index(t[i].keys, &n);
        ok(first >= 0 && n == *t[i].n && first >= prev_end,
           "table %s registered after the one before (rows %d..%d)", t[i].name, first,
           first + n - 1);
        prev_end = first + n;
        int bad = 0, bound = 0;
        unsigned char *a = malloc(t[i].size), *b = malloc(t[i].size);
        for (int j = 0; j < *t[i].n; j++) {
            const struct nb_key *k = &t[i].keys[j];
            bad += strcmp(k->section, t[i].section) != 0;
            if (k->field == NB_FIELD_NONE)
                continue;
            bound++;
            memset(a, 0xa5, t[i].size);
            memcpy(b, a, t[i].size);
            struct nb_error e;
            nb_error_clear(&e);
            if (nb_key_store(k, k->def, b, &e) || k->off + k->cap > t[i].size) {
                tap_diag("%s: its default does not bind: %s", k->full, e.msg);
                bad++;
                continue;
            }
            for (size_t x = 0; x < t[i].size; x++) {
                bool inside = (x >= k->off && x < k->off + k->cap) ||
                              (k->field == NB_FIELD_INT_ARRAY && x >= k->count_off &&
                               x < k->count_off + sizeof(int)) ||
                              (k->word_flag && x == k->word_off);
                if (!inside && a[x] != b[x]) {
                    tap_diag("%s: storing its default changed byte %zu outside the member",
                             k->full, x);
                    bad++;
                    break;
                }
            }
            const char *at = (const char *)b + k->off;
            double v = NAN;
            switch (k->field) {
            case NB_FIELD_INT: case NB_FIELD_ENUM: v = *(const int *)(const void *)at; break;
            case NB_FIELD_LONG: v = (double)*(const long *)(const void *)at; break;
            case NB_FIELD_SIZE: v = (double)*(const size_t *)(const void *)at; break;
            case NB_FIELD_DOUBLE: v = *(const double *)(const void *)at; break;
            case NB_FIELD_BOOL: v = *(const bool *)(const void *)at; break;
            case NB_FIELD_NONE: case NB_FIELD_INT_ARRAY: case NB_FIELD_CHARS: break;
            }
            double want = NAN;
            if (k->word && !strcmp(k->def, k->word))
                want = k->word_value;
            else if (k->type == NB_KEY_BOOL)
                want = !strcmp(k->def, "true");
            else if (k->type == NB_KEY_ENUM)
                for (int m = 0; k->enum_values[m]; m++)
                    if (!strcmp(k->def, k->enum_values[m]))
                        want = k->field == NB_FIELD_BOOL ? m > 0 : m;
            if (k->type == NB_KEY_INT || k->type == NB_KEY_FLOAT)
                if (!(k->word && !strcmp(k->def, k->word)))
                    want = strtod(k->def, NULL);
            if (!isnan(want) && v != want) {
                tap_diag("%s: default '%s' reads back as %g", k->full, k->def, v);
                bad++;
            }
        }
        is_int(bad, 0, "table %s: %d of %d rows bind into their own members, in section [%s]",
               t[i].name, bound, *t[i].n, t[i].section);
        free(a);
        free(b);
    }
    is_int(prev_end, total, "the tables end the flat list (%d keys)", total);
}

/* [model] init_from's run selectors (config/selector.h) and the two keys
 * added for weight checkpoints: canonical text, one value with commas, a
 * sweep axis of selectors, errors at their line, matching; run_ids at
 * the defaults unchanged. */
static void test_selector(void)
{
    struct nb_sweep a, b, c;
    ok(load("sel_default.ini", "", &c) == 0, "the default config loads");
    ok(load("sel_explicit.ini", "[model]\ninit_from =\n[train]\nsave_weights = false\n", &a) == 0,
       "init_from and save_weights at their defaults load");
    is_str(a.runs[0].run_id, c.runs[0].run_id,
           "init_from = (empty) and save_weights = false: the default's run_id");
    is_str(c.runs[0].run_id, "0bc6f2937e4b50d4", "  which is 0.1.0's");
    nb_sweep_free(&a);
    ok(load("sel_save.ini", "[train]\nsave_weights = true\n", &a) == 0 &&
           strcmp(a.runs[0].run_id, c.runs[0].run_id) != 0,
       "save_weights = true: a run_id of its own");
    nb_sweep_free(&a);

    ok(load("sel_canon.ini", "[model]\ninit_from =  pre / lr = 0.10,\n  norm.type=batch\n", &a) == 0,
       "a selector with spaces, a bare key and a continuation line loads");
    is_str(nb_run_get_str(&a.runs[0], "model", "init_from"), "pre/norm.type=batch,optim.lr=0.1",
           "canonical: section.key, canonical values, table order, no spaces");
    is_int((long long)a.n_runs, 1, "  one value, not a sweep of two");
    ok(load("sel_canon2.ini", "[model]\ninit_from = pre/optim.lr=0.1,type=batch\n", &b) == 0 &&
           !strcmp(a.runs[0].run_id, b.runs[0].run_id),
       "  another spelling of the same selector: the same run_id");
    ok(strcmp(a.runs[0].run_id, c.runs[0].run_id) != 0, "  not the default's run_id");
    nb_sweep_free(&a);
    nb_sweep_free(&b);
    ok(load("sel_id.ini", "[model]\ninit_from = pre/0123456789ABCDEF\n", &a) == 0,
       "EXPERIMENT/RUN_ID loads");
    is_str(nb_run_get_str(&a.runs[0], "model", "init_from"), "pre/0123456789abcdef",
           "  the RUN_ID in lower case");
    nb_sweep_free(&a);
    ok(load("sel_axis.ini",
            "[model]\ninit_from = pre/type=batch,lr=0.1, pre/type=group, other\n"
            "[norm]\ntype = batch, group, none\n[experiment]\nzip = init_from, norm.type\n",
            &a) == 0, "a sweep axis of three selectors zipped with norm.type loads");
    is_str(column(&a, "model", "init_from"),
           "pre/norm.type=batch,optim.lr=0.1 pre/norm.type=group other",
           "  its three values: KEY=VALUE pieces continue their selector");
    nb_sweep_free(&a);

    ERR("sel_unknown.ini", "[model]\ninit_from = pre/lerning=0.1\n", 2,
        "init_from: unknown key 'lerning'", NULL);
    ERR("sel_ambiguous.ini", "[model]\ninit_from = pre/momentum=0.9\n", 2,
        "init_from: key 'momentum' is ambiguous", "write norm.momentum or optim.momentum");
    ERR("sel_value.ini", "[model]\n\ninit_from = pre/lr=-1\n", 3,
        "value -1 is out of range for [optim] lr (must be > 0)", NULL);
    ERR("sel_enum.ini", "[model]\ninit_from = pre/norm.type=bach\n", 2,
        "bad value 'bach' for [norm] type", NULL);
    ERR("sel_twice.ini", "[model]\ninit_from = pre/lr=0.1,optim.lr=0.2\n", 2,
        "init_from: optim.lr is given twice", NULL);
    ERR("sel_self.ini", "[model]\ninit_from = pre/init_from=x\n", 2,
        "init_from: [model] init_from cannot select a run", NULL);
    ERR("sel_zip.ini", "[model]\ninit_from = pre/zip=a\n", 2,
        "init_from: [experiment] zip cannot be used here", NULL);
    ERR("sel_runid.ini", "[model]\ninit_from = pre/0123\n", 2,
        "init_from: '0123' is not a RUN_ID (16 hex digits) or KEY=VALUE terms", NULL);
    ERR("sel_name.ini", "[model]\ninit_from = ../x\n", 2,
        "init_from: expected EXPERIMENT, EXPERIMENT/RUN_ID or EXPERIMENT/KEY=VALUE,KEY=VALUE, "
        "got '../x'", "EXPERIMENT is an [experiment] name: A-Z a-z 0-9 _ . -");
    ERR("sel_empty.ini", "[model]\ninit_from = pre/\n", 2,
        "init_from: expected EXPERIMENT, EXPERIMENT/RUN_ID or EXPERIMENT/KEY=VALUE,KEY=VALUE, "
        "got 'pre/'", NULL);
    ERR("sel_leading.ini", "[model]\ninit_from = lr=0.1\n", 2,
        "init_from: expected EXPERIMENT, EXPERIMENT/RUN_ID or EXPERIMENT/KEY=VALUE,KEY=VALUE, "
        "got 'lr=0.1'", NULL);

    /* matching: the values given, and the selecting run's seed unless
     * the selector names one */
    struct nb_selector sel;
    struct nb_error e;
    ok(load("sel_cands.ini", "[experiment]\nseeds = 0..1\n[norm]\ntype = batch, group\n", &a) == 0 &&
           a.n_runs == 4, "four candidates: batch and group, seeds 0 and 1");
    ok(nb_selector_parse("pre/type=group", NULL, 0, &sel, &e) == 0, "parse pre/type=group");
    int hits = 0, which = -1;
    for (size_t i = 0; i < a.n_runs; i++)
        if (nb_selector_match(&sel, &a.runs[i], 1))
            hits++, which = (int)i;
    ok(hits == 1 && a.runs[which].seed == 1 &&
           !strcmp(nb_run_get_str(&a.runs[which], "norm", "type"), "group"),
       "pre/type=group for seed 1: the group run of seed 1 alone");
    ok(nb_selector_parse("pre/seeds=0", NULL, 0, &sel, &e) == 0 && sel.names_seed,
       "parse pre/seeds=0: it names the seed");
    hits = 0;
    for (size_t i = 0; i < a.n_runs; i++)
        hits += nb_selector_match(&sel, &a.runs[i], 1) && a.runs[i].seed == 0;
    is_int(hits, 2, "pre/seeds=0 for seed 1: both runs of seed 0");
    nb_sweep_free(&a);
    nb_sweep_free(&c);
}

int main(void)
{
    snprintf(dir, sizeof dir, "%s", tap_tmpdir("t_config"));
    test_key_names();
    test_module_tables();
    test_enum_tables();
    test_errors();
    test_sweeps();
    test_syntax();
    test_identity();
    test_include();
    test_limits();
    test_selector();
    tap_done_testing();
    return tap_exit();
}
