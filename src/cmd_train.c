/* src/cmd_train.c - the verbs of one run without a run directory:
 * `train` (one run of the config keys, printed as it goes) and `bench`
 * (throughput and the norm layers' speed). */
#include <config.h> /* autoconf's */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buildinfo.h"
#include "cli.h"
#include "config/keys.h"
#include "config/runcfg.h"
#include "config/sweep.h"
#include "core/blas.h"
#include "core/text.h"
#include "run/bench.h"
#include "run/train.h"
#include "usage.h"

static const char *const prog = nb_cli_prog;

/* Up to max positive integers separated by commas into out: their count,
 * or -1 when s is not such a list. */
static int parse_int_list(const char *s, int *out, int max)
{
    int n = 0;
    char *end;
    while (*s && n < max) {
        long v = strtol(s, &end, 10);
        if (end == s || v <= 0)
            return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return n;
}

/* train's hook: one line per evaluation on stdout. */
static int train_print(void *user, const struct nb_metrics *r)
{
    (void)user;
    printf("step %6ld  epoch %5.2f  lr %.4g  train loss %.4f  train acc %.4f  "
           "test loss %.4f  test acc %.4f  (%.1f s)\n",
           r->step, r->epoch, r->lr, r->train_loss, r->train_acc, r->test_loss, r->test_acc,
           r->time);
    fflush(stdout);
    return 0;
}

/* `train`: one run of the config keys, with the same table, defaults and
 * checks as `run`: CONFIG (optional), then SECTION.KEY=VALUE arguments and
 * the shorthand options in command-line order (a later one overrides). */
/* Appends "[section]\nkey = value\n" for the override SECTION.KEY=VALUE
 * (a section is repeated per line: the reader takes the last one). */
static int tt_override(const char **vals, const char *verb, const char *arg)
{
    const char *eq = strchr(arg, '='), *dot = strchr(arg, '.');
    if (!eq || !dot || dot > eq) {
        fprintf(stderr, "%s: %s: expected SECTION.KEY=VALUE, not '%s'\n", prog, verb, arg);
        return -1;
    }
    char section[64], key[128];
    snprintf(section, sizeof section, "%.*s", (int)(dot - arg), arg);
    snprintf(key, sizeof key, "%.*s", (int)(eq - dot - 1), dot + 1);
    int k = nb_key_lookup(section, key);
    if (k < 0) {
        fprintf(stderr, "%s: %s: unknown key '%s.%s' (normbench config --help lists them)\n",
                prog, verb, section, key);
        return -1;
    }
    if (strchr(eq + 1, '\n')) {
        fprintf(stderr, "%s: %s: a value with a line break in '%s'\n", prog, verb, arg);
        return -1;
    }
    vals[k] = eq + 1; /* a later assignment of the key wins */
    return 0;
}

/* train's arguments into t, a config text: CONFIG (first) as an include,
 * then SECTION.KEY=VALUE and the shorthand options in command-line order;
 * returns -1 to go on, or the exit status (0 after --help) after printing
 * why. */
static int tt_parse(int argc, char **argv, struct nb_text *t)
{
    /* the shorthand options: which key each sets */
    static const struct { int c; const char *opt, *section, *key; } keyopt[] = {
        {'a', "--arch", "model", "arch"},          {'n', "--norm", "norm", "type"},
        {'p', "--placement", "model", "placement"}, {'g', "--groups", "norm", "groups"},
        {'b', "--batch", "train", "batch"},         {'l', "--lr", "optim", "lr"},
        {'m', "--momentum", "optim", "momentum"},   {'e', "--epochs", "train", "epochs"},
        {'S', "--max-steps", "train", "max_steps"}, {'s', "--seed", "experiment", "seeds"},
        {'d', "--data", "data", "source"},          {'D', "--dir", "data", "dir"},
        {'u', "--subset", "data", "train_subset"},  {'E', "--eval-every", "train", "eval_every"},
        {'t', "--threads", "train", "threads"}};
    static const struct option opts[] = {
        {"arch", 1, 0, 'a'}, {"norm", 1, 0, 'n'}, {"placement", 1, 0, 'p'},
        {"groups", 1, 0, 'g'}, {"batch", 1, 0, 'b'}, {"lr", 1, 0, 'l'},
        {"momentum", 1, 0, 'm'}, {"epochs", 1, 0, 'e'}, {"max-steps", 1, 0, 'S'},
        {"seed", 1, 0, 's'}, {"data", 1, 0, 'd'}, {"dir", 1, 0, 'D'},
        {"subset", 1, 0, 'u'}, {"eval-every", 1, 0, 'E'}, {"threads", 1, 0, 't'},
        {"fallback", 0, 0, 'F'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int c, rc = -1;
    bool cfg_seen = false, any = false;
    const char **vals = calloc((size_t)nb_key_count(), sizeof *vals); /* by key: the last value */
    if (!vals) {
        fprintf(stderr, "%s: train: out of memory\n", prog);
        return 1;
    }
    optind = 1;
    /* '-' as the first character: non-options come back in order as 1 */
    while (rc < 0 && (c = getopt_long(argc, argv, "-h", opts, NULL)) != -1) {
        if (c == 1) {
            if (strchr(optarg, '=')) {
                if (tt_override(vals, "train", optarg))
                    rc = 2;
                any = true;
            } else if (!cfg_seen && !any) {
                if (nb_cli_path_check("train", "CONFIG", optarg))
                    rc = 2;
                /* the config first, so that everything after overrides it */
                nb_text_printf(t, "include = %s\n", optarg);
                cfg_seen = true;
            } else {
                fprintf(stderr,
                        "%s: train: unexpected argument '%s' (CONFIG comes first; "
                        "keys are SECTION.KEY=VALUE)\n",
                        prog, optarg);
                rc = 2;
            }
            continue;
        }
        any = true;
        if (c == 'h') {
            nb_usage(stdout);
            rc = 0;
            continue;
        }
        if (c == 'F') {
            vals[nb_key_lookup("data", "fallback")] = "true";
            continue;
        }
        size_t i = 0;
        while (i < sizeof keyopt / sizeof keyopt[0] && keyopt[i].c != c)
            i++;
        if (i == sizeof keyopt / sizeof keyopt[0]) {
            nb_usage(stderr);
            rc = 2;
        } else if ((c == 'D' && nb_cli_path_check("train", "--dir", optarg)) ||
                   nb_cli_opt_check("train", keyopt[i].opt, keyopt[i].section, keyopt[i].key,
                                    optarg)) {
            rc = 2;
        } else {
            vals[nb_key_lookup(keyopt[i].section, keyopt[i].key)] = optarg;
        }
    }
    /* each key once, with its last value, after the config's include */
    for (int k = 0; k < nb_key_count() && rc < 0; k++)
        if (vals[k])
            nb_text_printf(t, "[%s]\n%s = %s\n", nb_key_at(k)->section, nb_key_at(k)->key, vals[k]);
    free(vals);
    if (rc < 0 && t->failed) {
        fprintf(stderr, "%s: train: out of memory\n", prog);
        rc = 1;
    }
    if (rc < 0 && !t->s)
        nb_text_puts(t, "\n");
    return rc;
}

/* The one run of train's config text, with the checks `run` makes,
 * resolved into cfg and seed; returns -1 to go on, or the exit status
 * after printing why not. */
static int tt_load(const char *text, struct nb_runcfg *cfg, uint64_t *seed, struct nb_error *err)
{
    struct nb_sweep sw;
    /* the checks `run` makes, at the argument's line of the text */
    int r = nb_sweep_load_text("command line", text, nb_runcfg_check, &sw, err);
    if (r) { /* a config error, as `run` */
        nb_error_print(stderr, prog, err);
        return 2;
    }
    if (sw.n_runs != 1) {
        fprintf(stderr,
                "%s: train: the config is a sweep of %zu runs; train makes one "
                "(use `normbench run`)\n",
                prog, sw.n_runs);
        nb_sweep_free(&sw);
        return 2;
    }
    r = nb_runcfg_from_run(&sw.runs[0], cfg, err);
    *seed = sw.runs[0].seed;
    if (!r && cfg->init_from[0]) {
        r = nb_run_error(&sw.runs[0], err, "model", "init_from",
                         "train: init_from = %s takes its weights from the run directories "
                         "of `normbench run`, which train does not use", cfg->init_from);
        nb_error_hint(err, "put the keys in a config file and use `normbench run`");
    }
    nb_sweep_free(&sw);
    if (r) {
        nb_error_print(stderr, prog, err);
        return nb_cli_exit_status(r);
    }
    return -1;
}

/* Trains cfg's model on its data, printing every evaluation and the
 * result; returns the exit status. */
static int tt_train(struct nb_runcfg *cfg, uint64_t seed, struct nb_error *err)
{
    if (cfg->probes) {
        fprintf(stderr, "%s: train: the config's probes are not run here (use `normbench run`)\n",
                prog);
        cfg->probes = false; /* so binding the data has no slice steps to check */
    }
    if (cfg->save_weights)
        fprintf(stderr, "%s: train: [train] save_weights needs a run directory: no weights are "
                "written here (use `normbench run`)\n", prog);
    nb_blas_set_threads(cfg->threads);
    struct nb_data data;
    int r = nb_data_prepare(&cfg->data, seed, &data, err);
    if (r) {
        nb_error_print(stderr, prog, err);
        return nb_cli_exit_status(r);
    }
    if (data.notice[0])
        fprintf(stderr, "%s: %s\n", prog, data.notice);
    if ((r = nb_runcfg_bind_data(cfg, NULL, &data, err))) { /* no probes: cannot fail */
        nb_data_free(&data);
        nb_error_print(stderr, prog, err);
        return nb_cli_exit_status(r);
    }
    const struct nb_train_spec *spec = &cfg->train;
    char desc[512];
    fprintf(stderr, "%s: %s; %s norm=%s batch=%d lr=%g momentum=%g seed=%llu blas=%s\n", prog,
            nb_data_describe(&data, desc, sizeof desc), nb_arch_name(spec->model.arch),
            nb_norm_type_name(spec->model.norm.type), spec->batch, spec->sched.lr,
            spec->sgd.momentum, (unsigned long long)spec->seed, nb_blas_name());
    struct nb_train_hooks hooks = { .on_metrics = train_print };
    struct nb_train_result res;
    r = nb_train_val(spec, &data.train, &data.val, &data.test, &hooks, cfg->target_acc, &res, err);
    nb_data_free(&data);
    if (r) { /* NB_EINVAL: the options do not fit the data (batch > set) */
        nb_error_print(stderr, prog, err);
        return nb_cli_exit_status(r);
    }
    if (res.status == NB_TRAIN_DIVERGED) {
        fprintf(stderr, "%s: training diverged at step %ld\n", prog, res.steps);
        return 1;
    }
    printf("final: steps %ld  test loss %.4f  test accuracy %.4f  (%.1f s, %.0f img/s)\n",
           res.steps, res.last.test_loss, res.last.test_acc, res.seconds,
           res.steps * (double)spec->batch / res.seconds);
    return 0;
}

int nb_cmd_train(int argc, char **argv)
{
    struct nb_text t = { 0 };
    struct nb_error err;
    nb_error_clear(&err);
    struct nb_runcfg cfg;
    uint64_t seed;
    int rc = tt_parse(argc, argv, &t);
    if (rc < 0)
        rc = tt_load(t.s, &cfg, &seed, &err);
    if (rc < 0)
        rc = tt_train(&cfg, seed, &err);
    nb_text_free(&t);
    return rc;
}

int nb_cmd_bench(int argc, char **argv)
{
    struct nb_bench_opts o;
    struct nb_error err;
    nb_bench_opts_default(&o);
    int norm_bench = 1, throughput = 1;
    static const struct option opts[] = {
        {"arch", 1, 0, 'a'}, {"norms", 1, 0, 'n'}, {"batches", 1, 0, 'b'},
        {"windows", 1, 0, 'w'}, {"steps", 1, 0, 's'}, {"norm-only", 0, 0, 'N'},
        {"no-norm-bench", 0, 0, 'T'}, {"conv-algo", 1, 0, 'c'}, {"help", 0, 0, 'h'},
        {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': {
            int a = nb_name_index(nb_conv_algo_names, optarg);
            if (a < 0) {
                fprintf(stderr, "%s: bench: --conv-algo must be auto, im2col or winograd\n",
                        prog);
                return 2;
            }
            o.conv_algo = (enum nb_conv_algo)a;
            break;
        }
        case 'a':
            o.arch = (enum nb_arch)nb_name_index(nb_arch_names, optarg);
            if (o.arch != NB_ARCH_CNN && o.arch != NB_ARCH_MLP) {
                fprintf(stderr, "%s: bench: --arch must be cnn or mlp\n", prog);
                return 2;
            }
            break;
        case 'n': {
            o.n_norms = 0;
            char buf[256];
            snprintf(buf, sizeof buf, "%s", optarg);
            for (char *tok = strtok(buf, ","); tok && o.n_norms < 8; tok = strtok(NULL, ","))
                if (nb_norm_type_parse(tok, &o.norms[o.n_norms++])) {
                    fprintf(stderr, "%s: bench: unknown norm '%s'\n", prog, tok);
                    return 2;
                }
            break;
        }
        case 'b':
            o.n_batches = parse_int_list(optarg, o.batches, 8);
            if (o.n_batches <= 0) {
                fprintf(stderr, "%s: bench: --batches takes positive integers, e.g. 2,8,32\n", prog);
                return 2;
            }
            break;
        case 'w':
        case 's': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (end == optarg || *end || v < 1 || v > 1000000) {
                fprintf(stderr, "%s: bench: --%s takes a count >= 1, not '%s'\n", prog,
                        c == 'w' ? "windows" : "steps", optarg);
                return 2;
            }
            *(c == 'w' ? &o.windows : &o.steps) = (int)v;
            break;
        }
        case 'N': throughput = 0; break;
        case 'T': norm_bench = 0; break;
        case 'h': nb_usage(stdout); return 0;
        default: nb_usage(stderr); return 2;
        }
    }
    if (o.windows < 1 || o.steps < 1) {
        fprintf(stderr, "%s: bench: --windows and --steps must be >= 1\n", prog);
        return 2;
    }
    nb_blas_set_threads(1);
    printf("# normbench %s (%s), BLAS %s (kernels %s), 1 thread, conv algorithm %s\n",
           PACKAGE_VERSION, NB_GIT_REVISION, nb_blas_name(), nb_blas_core(),
           o.conv_algo == NB_CONV_AUTO ? "auto (winograd for 3x3/s1/p1 with C >= 8)"
                                       : nb_conv_algo_names[o.conv_algo]);
    if (throughput && nb_bench_throughput(stdout, &o, &err)) {
        nb_error_print(stderr, prog, &err);
        return 1;
    }
    if (norm_bench && nb_norm_bench(stdout, 0.3)) {
        fprintf(stderr, "%s: bench: out of memory\n", prog);
        return 1;
    }
    return 0;
}
