/* src/normbench.c - the command line: verbs over files a user can read
 * (train and bench are in cmd_train.c).  With cmd_train.c the only place
 * that maps a status to an exit code. */
#include <config.h> /* autoconf's */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gsl/gsl_errno.h>

#include "buildinfo.h"
#include "core/blas.h"
#include "core/env.h"
#include "core/text.h"
#include "run/fold.h"
#include "config/keys.h"
#include "config/runcfg.h"
#include "run/mpi.h"
#include "run/runner.h"
#include "run/slurm.h"
#include "analyze/reproduce.h"
#include "analyze/archive.h"
#include "analyze/summarize.h"
#include "config/sweep.h"
#include "cli.h"
#include "usage.h"

/* The environment variables normbench heeds, read once by main. */
static struct nb_env env;

const char nb_cli_prog[] = "normbench";
static const char *const prog = nb_cli_prog;

int nb_cli_exit_status(int rc)
{
    return rc == NB_EINVAL || rc == NB_ERANGE || rc == NB_ENOENT ? 2 : 1;
}

int nb_cli_opt_check(const char *verb, const char *opt, const char *section, const char *key,
                     const char *text)
{
    int idx = nb_key_lookup(section, key);
    NB_ASSERT(idx >= 0);
    struct nb_error e;
    char *canon = NULL;
    nb_error_clear(&e);
    int rc = nb_key_canon(nb_key_at(idx), text, NULL, 0, &canon, &e);
    free(canon);
    if (rc) {
        fprintf(stderr, "%s: %s: %s %s: %s\n", prog, verb, opt, text, e.msg);
        return -1;
    }
    return 0;
}

int nb_cli_path_check(const char *verb, const char *what, const char *s)
{
    if (*s)
        return 0;
    fprintf(stderr, "%s: %s: %s is an empty string (an unset variable?)\n", prog, verb, what);
    return -1;
}

/* ---- sweeps: run, list, status, config ---------------------------------- */

/* Loads a config with every check (key table, sweep, cross-key, model);
 * prints the error and returns 2 on failure. */
static int load_sweep(const char *path, struct nb_sweep *sw)
{
    struct nb_error err;
    nb_error_clear(&err);
    int rc = nb_sweep_load_checked(path, nb_runcfg_check, sw, &err);
    nb_runcfg_cache_clear();
    /* the ranks of an MPI job other than 0 read the same file: one says it */
    if (rc && !(env.mpi_rank && atoi(env.mpi_rank) > 0)) {
        nb_error_print(stderr, prog, &err);
        return 2;
    }
    return 0;
}

static int parse_count(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

/* Adds the indices of LIST ("3", "0-7,9", "2,5") to idx (deduplicated
 * later); returns -1 on a malformed list. */
static int parse_indices(const char *s, size_t **idx, size_t *n, size_t *cap)
{
    while (*s) {
        char *end;
        if (*s < '0' || *s > '9')
            return -1;
        unsigned long long a = strtoull(s, &end, 10), b = a;
        s = end;
        if (*s == '-') {
            if (s[1] < '0' || s[1] > '9')
                return -1;
            b = strtoull(s + 1, &end, 10);
            s = end;
        }
        if (b < a || b - a > 10000000ULL)
            return -1;
        for (unsigned long long i = a; i <= b; i++) {
            if (*n == *cap) {
                size_t c = *cap ? 2 * *cap : 64;
                size_t *p = realloc(*idx, c * sizeof *p);
                if (!p)
                    return -1;
                *idx = p;
                *cap = c;
            }
            (*idx)[(*n)++] = (size_t)i;
        }
        if (*s == ',')
            s++;
        else if (*s)
            return -1;
    }
    return 0;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

/* run's selection: the runs named by run_id added to the indices, each
 * index checked against sw, then sorted without duplicates into
 * o->indices; returns 0, or 2 after printing why. */
static int run_select(const struct nb_sweep *sw, const char *const *run_ids, int n_ids,
                      size_t **idx, size_t *n_idx, size_t *cap_idx, struct nb_runner_opts *o)
{
    int status = 0;
    for (int k = 0; k < n_ids; k++) {
        long i = nb_sweep_find(sw, run_ids[k]);
        if (i < 0) {
            fprintf(stderr, "%s: run: no run with run_id %s in %s\n", prog, run_ids[k], sw->path);
            status = 2;
        } else {
            char num[32];
            snprintf(num, sizeof num, "%ld", i);
            parse_indices(num, idx, n_idx, cap_idx);
        }
    }
    for (size_t k = 0; k < *n_idx && !status; k++)
        if ((*idx)[k] >= sw->n_runs) {
            fprintf(stderr, "%s: run: index %zu is out of range: %s has %zu runs (0..%zu)\n", prog,
                    (*idx)[k], sw->path, sw->n_runs, sw->n_runs - 1);
            status = 2;
        }
    if (!status && *n_idx) {
        size_t *v = *idx;
        qsort(v, *n_idx, sizeof *v, cmp_size);
        size_t m = 0;
        for (size_t k = 0; k < *n_idx; k++)
            if (m == 0 || v[k] != v[m - 1])
                v[m++] = v[k];
        *n_idx = m;
        o->indices = v;
        o->n_indices = m;
    }
    return status;
}

/* The runs of `run`: in this process and its workers, or, as a rank of
 * an MPI job of several, over the job's ranks (run/mpi.h). */
static int run_sweep(const struct nb_sweep *sw, struct nb_runner_opts *o,
                     struct nb_runner_report *rep, struct nb_error *err)
{
    int ranks = env.mpi_size ? atoi(env.mpi_size) : 1;
    o->out = stdout;
    if (ranks <= 1)
        return nb_runner_run(sw, o, rep, err);
#if NB_HAVE_MPI
    return nb_mpi_run(sw, o, rep, err);
#else
    nb_error_set(err, NB_EINVAL, NULL, 0, "run: started as one of %d MPI ranks, but this "
                 "normbench was built without MPI", ranks);
    return nb_error_hint(err, "build with ./configure --with-mpi (./bootstrap.sh build-mpi), "
                         "or run without mpirun");
#endif
}

static int cmd_run(int argc, char **argv)
{
    struct nb_runner_opts o;
    nb_runner_opts_default(&o);
    o.env = &env;
    size_t *idx = NULL, n_idx = 0, cap_idx = 0;
    const char *run_ids[64];
    int n_ids = 0;
    static const struct option opts[] = {
        {"jobs", 1, 0, 'j'}, {"index", 1, 0, 'i'}, {"run-id", 1, 0, 'r'},
        {"results-dir", 1, 0, 'o'}, {"progress", 1, 0, 'p'}, {"quiet", 0, 0, 'q'},
        {"stale-after", 1, 0, 's'}, {"no-summary", 0, 0, 'S'}, {"help", 0, 0, 'h'},
        {"rank-timeout", 1, 0, 't'},
        {0, 0, 0, 0}};
    int c, status = 0;
    double v;
    optind = 1;
    while ((c = getopt_long(argc, argv, "j:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            if (parse_count(optarg, 0, 4096, &v) || v != (int)v) {
                fprintf(stderr, "%s: run: -j takes a count (0 = one per CPU), not '%s'\n", prog, optarg);
                status = 2;
                break;
            }
            o.jobs = (int)v;
            if (o.jobs == 0) {
                long nc = sysconf(_SC_NPROCESSORS_ONLN);
                o.jobs = nc > 0 ? (int)nc : 1;
            }
            break;
        case 'i':
            if (parse_indices(optarg, &idx, &n_idx, &cap_idx)) {
                fprintf(stderr, "%s: run: bad --index '%s' (expected e.g. 3, 0-7 or 1,4-6)\n", prog, optarg);
                status = 2;
            }
            break;
        case 'r':
            if (n_ids < 64)
                run_ids[n_ids++] = optarg;
            break;
        case 'o':
            if (nb_cli_path_check("run", "--results-dir", optarg))
                status = 2;
            o.results_dir = optarg;
            break;
        case 'p':
            if (nb_progress_mode_parse(optarg, &o.progress)) {
                fprintf(stderr, "%s: run: --progress takes auto, bar, lines or none\n", prog);
                status = 2;
            }
            break;
        case 'q': o.progress = NB_PROGRESS_NONE; break;
        case 's':
            if (parse_count(optarg, 1, 1e9, &o.stale_after)) {
                fprintf(stderr, "%s: run: --stale-after takes seconds >= 1\n", prog);
                status = 2;
            }
            break;
        case 'S': o.summary = false; break;
        case 't':
            if (parse_count(optarg, 0, 1e9, &o.rank_timeout)) {
                fprintf(stderr, "%s: run: --rank-timeout takes seconds >= 0\n", prog);
                status = 2;
            }
            break;
        case 'h': nb_usage(stdout); free(idx); return 0;
        default: status = 2; break;
        }
        if (status)
            break;
    }
    if (!status && optind != argc - 1) {
        fprintf(stderr, "%s: run: expected one CONFIG file\n", prog);
        status = 2;
    }
    if (!status && nb_cli_path_check("run", "CONFIG", argv[optind]))
        status = 2;
    if (status) {
        fprintf(stderr, "usage: normbench run CONFIG [-j N] [--index LIST] [options]; "
                        "see normbench --help\n");
        free(idx);
        return status;
    }
    struct nb_sweep sw;
    if ((status = load_sweep(argv[optind], &sw))) {
        free(idx);
        return status;
    }
    status = run_select(&sw, run_ids, n_ids, &idx, &n_idx, &cap_idx, &o);
    if (!status) {
        struct nb_runner_report rep;
        struct nb_error err;
        nb_error_clear(&err);
        nb_blas_set_threads(1);
        int rc = run_sweep(&sw, &o, &rep, &err);
        if (rc) {
            if (rc != NB_EINVAL || !(env.mpi_rank && atoi(env.mpi_rank) > 0))
                nb_error_print(stderr, prog, &err);
            status = nb_cli_exit_status(rc);
        } else if (rep.signal) {
            status = 128 + rep.signal;
        } else {
            status = rep.failed || rep.done + rep.diverged < rep.total ? 1 : 0;
        }
    }
    nb_sweep_free(&sw);
    free(idx);
    return status;
}

static int cmd_list(int argc, char **argv)
{
    int count = 0, c;
    static const struct option opts[] = {{"count", 0, 0, 'c'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'c')
            count = 1;
        else if (c == 'h') {
            nb_usage(stdout);
            return 0;
        } else
            return 2;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "%s: list: expected one CONFIG file\nusage: normbench list CONFIG [--count]\n", prog);
        return 2;
    }
    if (nb_cli_path_check("list", "CONFIG", argv[optind]))
        return 2;
    struct nb_sweep sw;
    int rc = load_sweep(argv[optind], &sw);
    if (rc)
        return rc;
    if (count)
        printf("%zu\n", sw.n_runs);
    else
        nb_sweep_print_list(stdout, &sw);
    nb_sweep_free(&sw);
    return 0;
}

/* Prints indices as "0-3,7,9" (ranges) or one per line. */
static void print_indices(const size_t *v, size_t n, int lines)
{
    if (lines) {
        for (size_t i = 0; i < n; i++)
            printf("%zu\n", v[i]);
        return;
    }
    struct nb_text t = {0};
    nb_slurm_ranges(&t, v, n, 0);
    if (t.s)
        printf("%s\n", t.s);
    nb_text_free(&t);
}

static int cmd_status(int argc, char **argv)
{
    int missing = 0, lines = 0, c;
    const char *results_dir = NULL;
    double stale_after = 300;
    static const struct option opts[] = {
        {"missing", 0, 0, 'm'}, {"format", 1, 0, 'f'}, {"results-dir", 1, 0, 'o'},
        {"stale-after", 1, 0, 's'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': missing = 1; break;
        case 'f':
            if (!strcmp(optarg, "lines"))
                lines = 1;
            else if (strcmp(optarg, "ranges")) {
                fprintf(stderr, "%s: status: --format takes ranges or lines\n", prog);
                return 2;
            }
            break;
        case 'o':
            if (nb_cli_path_check("status", "--results-dir", optarg))
                return 2;
            results_dir = optarg;
            break;
        case 's':
            if (parse_count(optarg, 1, 1e9, &stale_after)) {
                fprintf(stderr, "%s: status: --stale-after takes seconds >= 1\n", prog);
                return 2;
            }
            break;
        case 'h': nb_usage(stdout); return 0;
        default: return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "%s: status: expected one CONFIG file\n"
                        "usage: normbench status CONFIG [--missing [--format ranges|lines]]\n", prog);
        return 2;
    }
    if (nb_cli_path_check("status", "CONFIG", argv[optind]))
        return 2;
    struct nb_sweep sw;
    int rc = load_sweep(argv[optind], &sw);
    if (rc)
        return rc;
    size_t counts[NB_STATE_COUNT] = {0};
    size_t *miss = malloc(sw.n_runs * sizeof *miss), n_miss = 0;
    if (!miss) {
        nb_sweep_free(&sw);
        fprintf(stderr, "%s: out of memory\n", prog);
        return 1;
    }
    for (size_t i = 0; i < sw.n_runs; i++) {
        enum nb_run_state st = nb_runner_state(&sw, i, results_dir, stale_after);
        counts[st]++;
        if (st == NB_STATE_PENDING || st == NB_STATE_FAILED)
            miss[n_miss++] = i;
    }
    if (missing) {
        print_indices(miss, n_miss, lines);
    } else {
        char exp[2048];
        printf("experiment %s\n", nb_runner_exp_dir(&sw, results_dir, exp, sizeof exp));
        printf("total      %zu\n", sw.n_runs);
        for (int s = 0; s < NB_STATE_COUNT; s++)
            printf("%-10s %zu\n", nb_run_state_name((enum nb_run_state)s), counts[s]);
    }
    free(miss);
    nb_sweep_free(&sw);
    return 0;
}

/* `slurm`: the sweep's missing runs as Slurm job arrays (run/slurm.h):
 * writes the array script and prints, or with --submit runs, the sbatch
 * commands; nothing missing is not an error. */
static int cmd_slurm(int argc, char **argv)
{
    struct nb_slurm_opts o = {.max_array = 1001, .throttle = 32, .stale_after = 300};
    bool submit = false;
    static const struct option opts[] = {
        {"results-dir", 1, 0, 'o'}, {"max-array", 1, 0, 'm'}, {"throttle", 1, 0, 't'},
        {"script", 1, 0, 'S'},      {"submit", 0, 0, 'x'},    {"help", 0, 0, 'h'},
        {0, 0, 0, 0}};
    int c;
    double v;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            if (nb_cli_path_check("slurm", "--results-dir", optarg))
                return 2;
            o.results_dir = optarg;
            break;
        case 'S':
            if (nb_cli_path_check("slurm", "--script", optarg))
                return 2;
            o.script = optarg;
            break;
        case 'm':
        case 't':
            if (parse_count(optarg, c == 'm' ? 1 : 0, 10000000, &v)) {
                fprintf(stderr, "%s: slurm: %s takes a count, not '%s'\n", prog,
                        c == 'm' ? "--max-array" : "--throttle", optarg);
                return 2;
            }
            *(c == 'm' ? &o.max_array : &o.throttle) = (int)v;
            break;
        case 'x': submit = true; break;
        case 'h':
            printf("usage: normbench slurm CONFIG [--results-dir DIR] [--max-array N (1001)]\n"
                   "                      [--throttle K (32; 0 = none)] [--script FILE] [--submit]\n"
                   "writes a Slurm array script (EXP/slurm/sweep.sbatch) whose task T runs run\n"
                   "T + NB_OFFSET of CONFIG, and prints the sbatch commands that submit the runs\n"
                   "still missing, one per block of N indices (Slurm's MaxArraySize);\n"
                   "--submit runs them; nothing missing: says so and exits 0\n");
            return 0;
        default: return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "%s: slurm: expected one CONFIG\n", prog);
        return 2;
    }
    if (nb_cli_path_check("slurm", "CONFIG", argv[optind]))
        return 2;
    struct nb_sweep sw;
    int rc = load_sweep(argv[optind], &sw);
    if (rc)
        return rc;
    char bin[4096], cfg[4096];
    ssize_t n = readlink("/proc/self/exe", bin, sizeof bin - 1);
    snprintf(bin + (n > 0 ? n : 0), sizeof bin - (size_t)(n > 0 ? n : 0), "%s",
             n > 0 ? "" : "normbench");
    char *real = realpath(argv[optind], NULL);
    snprintf(cfg, sizeof cfg, "%s", real ? real : argv[optind]);
    free(real);
    o.binary = bin;
    o.config = cfg;
    struct nb_text cmds = {0};
    struct nb_error err;
    nb_error_clear(&err);
    size_t missing = 0;
    char script[4200];
    rc = nb_slurm_plan(&sw, &o, &cmds, &missing, script, sizeof script, &err);
    if (rc) {
        nb_error_print(stderr, prog, &err);
        rc = 1;
    } else if (missing == 0) {
        printf("%s: nothing to submit: all %zu runs are done\n", sw.path, sw.n_runs);
    } else if (!submit) {
        printf("# %zu of %zu runs to do; the array script is %s\n%s", missing, sw.n_runs, script,
               cmds.s);
    } else {
        for (char *line = strtok(cmds.s, "\n"); line && !rc; line = strtok(NULL, "\n")) {
            fprintf(stderr, "%s: %s\n", prog, line);
            fflush(NULL);
            int st = system(line);
            if (st != 0) {
                fprintf(stderr, "%s: slurm: '%s' failed (is Slurm's sbatch on PATH?)\n", prog,
                        line);
                rc = 1;
            }
        }
    }
    nb_text_free(&cmds);
    nb_sweep_free(&sw);
    return rc;
}

static int cmd_config(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "help") ||
                      !strcmp(argv[1], "-h"))) {
        nb_config_help(stdout);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "--check")) {
        if (nb_cli_path_check("config", "--check CONFIG", argv[2]))
            return 2;
        struct nb_sweep sw;
        int rc = load_sweep(argv[2], &sw);
        if (rc)
            return rc;
        printf("%s: ok, %zu runs\n", sw.path, sw.n_runs);
        nb_sweep_free(&sw);
        return 0;
    }
    fprintf(stderr, "usage: normbench config --help | --check CONFIG\n");
    return 2;
}

/* ---- summarize, plot, reproduce (analyze/summarize.h, reproduce.h) ---- */

/* summarize's options and its argument. */
struct sum_args {
    const char *out, *results_dir, *archive, *long_dir;
    const char *what; /* CONFIG or DIR */
};

/* summarize's command line into a; returns -1 to go on, or the exit
 * status (0 after --help) after printing why. */
static int sum_parse(int argc, char **argv, struct sum_args *a)
{
    static const struct option opts[] = {{"out", 1, 0, 'o'},     {"results-dir", 1, 0, 'r'},
                                         {"archive", 1, 0, 'a'}, {"long", 1, 0, 'l'},
                                         {"help", 0, 0, 'h'},    {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            if (nb_cli_path_check("summarize", "--out", optarg))
                return 2;
            a->out = optarg;
            break;
        case 'r':
            if (nb_cli_path_check("summarize", "--results-dir", optarg))
                return 2;
            a->results_dir = optarg;
            break;
        case 'a':
            if (nb_cli_path_check("summarize", "--archive", optarg))
                return 2;
            a->archive = optarg;
            break;
        case 'l':
            if (nb_cli_path_check("summarize", "--long", optarg))
                return 2;
            a->long_dir = optarg;
            break;
        case 'h':
            printf("usage: normbench summarize CONFIG|RESULTS_DIR [-o DIR] [--results-dir DIR]\n"
                   "                          [--archive DIR] [--long DIR]\n"
                   "writes runs.csv, groups.csv, curves.csv (and probes.csv) into DIR\n"
                   "(default: the experiment's results directory + /tables); runs of CONFIG\n"
                   "without a run directory are read from the archive (default: the\n"
                   "results directory + /archive); refuses when a run has neither.\n"
                   "--long DIR also writes the long-format tables, one row per run\n"
                   "(runs.csv), evaluation (metrics.csv), probe value (probes.csv) and\n"
                   "slice point (slices.csv), each row with its run_id and the swept\n"
                   "keys as section.key columns (the archive's format; a file over 256 KiB\n"
                   "is written as NAME.csv.gz)\n");
            return 0;
        default:
            fprintf(stderr, "usage: normbench summarize CONFIG|RESULTS_DIR [-o DIR]\n");
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "%s: summarize: expected one CONFIG file or results directory\n", prog);
        return 2;
    }
    if (nb_cli_path_check("summarize", "CONFIG|DIR", argv[optind]))
        return 2;
    a->what = argv[optind];
    return -1;
}

static int cmd_summarize(int argc, char **argv)
{
    struct sum_args a = { 0 };
    int rc = sum_parse(argc, argv, &a);
    if (rc >= 0)
        return rc;
    const char *what = a.what, *out = a.out, *results_dir = a.results_dir, *archive = a.archive,
               *long_dir = a.long_dir;
    struct nb_error err;
    nb_error_clear(&err);
    struct nb_summary s;
    nb_summary_init(&s);
    char exp[4096], tables[4200], adir[4200] = "";
    struct stat st;
    struct nb_archive arch;
    bool have_arch = false;
    if (stat(what, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(exp, sizeof exp, "%s", what);
        rc = nb_summary_add_dir(&s, what, &err);
        if (!rc && s.n_runs == 0)
            rc = nb_error_set(&err, NB_ENOENT, what, 0, "no run directories here; nothing "
                                                        "was written");
    } else {
        struct nb_sweep sw;
        if ((rc = nb_sweep_load(what, &sw, &err))) {
            nb_error_print(stderr, prog, &err);
            return 2;
        }
        nb_runner_exp_dir(&sw, results_dir, exp, sizeof exp);
        snprintf(adir, sizeof adir, "%s", archive ? archive : exp);
        if (!archive)
            strncat(adir, "/archive", sizeof adir - strlen(adir) - 1);
        rc = nb_archive_load(adir, &arch, &err);
        have_arch = rc == 0;
        if (rc == NB_ENOENT && !archive)
            rc = 0, nb_error_clear(&err);
        if (have_arch)
            nb_summary_set_fallback(&s, nb_archive_fallback, &arch);
        if (!rc)
            rc = nb_summary_add_sweep(&s, &sw, exp, &err);
        nb_sweep_free(&sw);
    }
    if (!rc)
        rc = nb_summary_group(&s, &err);
    if (!rc && adir[0]) {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "normbench run %s%s%s", what,
                 results_dir ? " --results-dir " : "", results_dir ? results_dir : "");
        rc = nb_repro_missing(&s, exp, adir, cmd, &err);
    }
    snprintf(tables, sizeof tables, "%s", out ? out : exp);
    if (!out)
        strncat(tables, "/tables", sizeof tables - strlen(tables) - 1);
    if (!rc)
        rc = nb_repro_write_tables(&s, tables, &err);
    if (!rc && long_dir) {
        struct nb_archive la;
        rc = nb_archive_build(&s, have_arch ? &arch : NULL, &la, &err);
        if (!rc) {
            rc = nb_archive_save(&la, long_dir, &err);
            nb_archive_free(&la);
        }
    }
    if (have_arch)
        nb_archive_free(&arch);
    if (rc) {
        nb_error_print(stderr, prog, &err);
        nb_summary_free(&s);
        return 1;
    }
    size_t fin = 0;
    for (size_t i = 0; i < s.n_runs; i++)
        fin += s.runs[i].status == NB_SUM_DONE || s.runs[i].status == NB_SUM_DIVERGED;
    bool probes = false;
    for (size_t i = 0; i < s.n_runs; i++)
        probes |= s.runs[i].n_probes > 0;
    printf("%s: %zu runs (%zu finished) in %d groups -> %s/{runs,groups,curves%s}.csv\n", exp,
           s.n_runs, fin, s.n_groups, tables, probes ? ",probes" : "");
    if (long_dir)
        printf("%s: long-format tables (run_id and swept keys on every row) -> %s/\n", exp,
               long_dir);
    nb_summary_free(&s);
    return 0;
}

static int cmd_reproduce(int argc, char **argv, bool full)
{
    struct nb_repro_opts o;
    nb_repro_opts_default(&o);
    o.env = &env;
    o.run = full;
    o.report = full;
    const char *verb = full ? "reproduce" : "plot";
    static const struct option opts[] = {
        {"jobs", 1, 0, 'j'},    {"quick", 0, 0, 'Q'},    {"results", 1, 0, 'r'},
        {"no-run", 0, 0, 'N'},  {"plots", 1, 0, 'P'},    {"format", 1, 0, 'f'},
        {"progress", 1, 0, 'p'}, {"quiet", 0, 0, 'q'},   {"help", 0, 0, 'h'},
        {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "j:qh", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'j': {
            long v = strtol(optarg, &end, 10);
            if (*end || end == optarg || v < 0 || v > 4096) {
                fprintf(stderr, "%s: %s: -j takes a count (0 = one per CPU), not '%s'\n", prog,
                        verb, optarg);
                return 2;
            }
            if (v == 0) {
                long nc = sysconf(_SC_NPROCESSORS_ONLN);
                v = nc > 0 ? nc : 1;
            }
            o.jobs = (int)v;
            break;
        }
        case 'Q': o.quick = true; break;
        case 'r':
            if (nb_cli_path_check(verb, "--results", optarg))
                return 2;
            o.results = optarg;
            break;
        case 'N': o.run = false; break;
        case 'P':
            if (nb_cli_path_check(verb, "--plots", optarg))
                return 2;
            o.plots_dir = optarg;
            break;
        case 'f':
            for (const char *p = optarg; *p;) {
                size_t n = strcspn(p, ",");
                if (!((n == 3 && (!strncmp(p, "png", 3) || !strncmp(p, "svg", 3) ||
                                  !strncmp(p, "pdf", 3))))) {
                    fprintf(stderr, "%s: %s: --format takes png, svg, pdf (comma list)\n",
                            prog, verb);
                    return 2;
                }
                p += n + (p[n] == ',');
            }
            o.formats = optarg;
            break;
        case 'p':
            if (nb_progress_mode_parse(optarg, &o.progress)) {
                fprintf(stderr, "%s: %s: --progress takes auto, bar, lines or none\n", prog,
                        verb);
                return 2;
            }
            break;
        case 'q': o.progress = NB_PROGRESS_NONE; break;
        case 'h': nb_usage(stdout); return 0;
        default:
            fprintf(stderr, "usage: normbench %s EXPERIMENT [options]; see normbench --help\n",
                    verb);
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "%s: %s: expected one EXPERIMENT (experiments/NAME.ini or NAME)\n",
                prog, verb);
        return 2;
    }
    if (nb_cli_path_check(verb, "EXPERIMENT", argv[optind]))
        return 2;
    struct nb_error err;
    nb_error_clear(&err);
    struct nb_repro_result res;
    nb_blas_set_threads(1);
    int rc = nb_reproduce(argv[optind], &o, &res, &err);
    if (rc) {
        nb_error_print(stderr, prog, &err);
        return nb_cli_exit_status(rc);
    }
    if (full) {
        printf("verdict: %s (%d of %d checks pass)%s\n", nb_verdict_name(res.verdict),
               res.checks_pass, res.checks_total,
               o.quick ? " [quick run: the verdict means nothing]" : "");
        printf("report:  %s\n", res.report);
    }
    printf("figures: %s/ (%d of %d drawn)\n", res.figures, res.figs_drawn, res.figs_total);

    if (full)
        printf("index:   %s\n", res.index);
    if (full && !res.complete)
        fprintf(stderr, "%s: some runs failed or did not run; the verdict is inconclusive "
                        "until they finish (run the same command again to resume)\n", prog);
    return (full && !res.complete) || res.figs_failed > 0 ? 1 : 0;
}

/* ---- fold (run/fold.h) ------------------------------------------------------ */

/* fold's report on stdout, key = value lines (README, "Folding batch
 * norm"). */
static void fold_print(const struct nb_fold_report *r, const char *out)
{
    const struct nb_fold_timing *t = &r->time;
    printf("run_dir = %s\nrun_id = %s\nseed = %llu\n", r->run_dir, r->run_id,
           (unsigned long long)r->seed);
    printf("checkpoint = %s\ncheckpoint_checksum = %016llx\n", r->checkpoint,
           (unsigned long long)r->checksum);
    printf("data = %s\nnorm = %s\n", r->data, nb_norm_type_name(r->norm));
    printf("layers_folded = %d\nlayers_unfolded_net = %d\nlayers_folded_net = %d\n", r->folded,
           r->layers, r->layers_folded_net);
    printf("samples = %zu\nmax_abs_logit_diff = %.3g\npredictions_differ = %zu\n", r->samples,
           r->max_abs_diff, r->argmax_differ);
    printf("loss_unfolded = %.6g\nloss_folded = %.6g\naccuracy_unfolded = %.6g\n"
           "accuracy_folded = %.6g\n", t->loss_unfolded, t->loss_folded, t->acc_unfolded,
           t->acc_folded);
    printf("rounds = %d\npasses_per_round = %d\nseconds_unfolded = %.6g\n"
           "seconds_folded = %.6g\ntime_ratio = %.4f\n", t->rounds, t->passes, t->unfolded,
           t->folded, t->ratio);
    if (out)
        printf("out = %s\nout_checksum = %016llx\n", out, (unsigned long long)r->out_checksum);
}

static int cmd_fold(int argc, char **argv)
{
    struct nb_fold_opts o;
    nb_fold_opts_default(&o);
    static const struct option opts[] = {{"out", 1, 0, 'o'}, {"results-dir", 1, 0, 'r'},
                                         {"rounds", 1, 0, 'n'}, {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    double v;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            if (nb_cli_path_check("fold", "-o", optarg))
                return 2;
            o.out = optarg;
            break;
        case 'r':
            if (nb_cli_path_check("fold", "--results-dir", optarg))
                return 2;
            o.results_dir = optarg;
            break;
        case 'n':
            if (parse_count(optarg, 1, NB_FOLD_MAX_ROUNDS, &v) || v != (int)v) {
                fprintf(stderr, "%s: fold: --rounds takes a count 1..%d, not '%s'\n", prog,
                        NB_FOLD_MAX_ROUNDS, optarg);
                return 2;
            }
            o.rounds = (int)v;
            break;
        case 'h': nb_usage_fold(stdout, true); return 0;
        default: nb_usage_fold(stderr, false); return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "%s: fold: expected one RUN_DIR or SELECTOR\n", prog);
        nb_usage_fold(stderr, false);
        return 2;
    }
    if (nb_cli_path_check("fold", "RUN_DIR|SELECTOR", argv[optind]))
        return 2;
    o.run = argv[optind];
    struct nb_fold_report rep;
    struct nb_error err;
    int rc = nb_fold_run(&o, &rep, &err);
    if (rep.notice[0])
        fprintf(stderr, "%s: %s\n", prog, rep.notice);
    if (rc) {
        nb_error_print(stderr, prog, &err);
        return nb_cli_exit_status(rc);
    }
    fold_print(&rep, o.out);
    return 0;
}

int main(int argc, char **argv)
{
    /* Library code reports GSL errors through return values; never abort. */
    gsl_set_error_handler_off();
    /* the one place that reads the environment (core/env.h) */
    env = (struct nb_env){getenv("TERM"), getenv("GNUPLOT"), getenv("PATH"),
                          getenv("NORMBENCH_PLOTS"), getenv("OPENBLAS_CORETYPE"),
                          getenv("OMPI_COMM_WORLD_SIZE"), getenv("OMPI_COMM_WORLD_RANK")};
    if (!env.mpi_size) {
        env.mpi_size = getenv("PMI_SIZE");
        env.mpi_rank = getenv("PMI_RANK");
    }
    if (argc < 2) {
        nb_usage(stderr);
        return 2;
    }
    const char *verb = argv[1];
    if (strcmp(verb, "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(verb, "list") == 0)
        return cmd_list(argc - 1, argv + 1);
    if (strcmp(verb, "slurm") == 0)
        return cmd_slurm(argc - 1, argv + 1);
    if (strcmp(verb, "status") == 0)
        return cmd_status(argc - 1, argv + 1);
    if (strcmp(verb, "config") == 0)
        return cmd_config(argc - 1, argv + 1);
    if (strcmp(verb, "summarize") == 0)
        return cmd_summarize(argc - 1, argv + 1);
    if (strcmp(verb, "plot") == 0)
        return cmd_reproduce(argc - 1, argv + 1, false);
    if (strcmp(verb, "reproduce") == 0)
        return cmd_reproduce(argc - 1, argv + 1, true);
    if (strcmp(verb, "train") == 0)
        return nb_cmd_train(argc - 1, argv + 1);
    if (strcmp(verb, "bench") == 0)
        return nb_cmd_bench(argc - 1, argv + 1);
    if (strcmp(verb, "fold") == 0)
        return cmd_fold(argc - 1, argv + 1);
    if (strcmp(verb, "version") == 0 || strcmp(verb, "--version") == 0) {
#if NB_HAVE_MPI
        printf("normbench %s (git %s), BLAS %s, %s, MPI %s\n", PACKAGE_VERSION, NB_GIT_REVISION,
               nb_blas_name(), NB_BUILD_CC, nb_mpi_library());
#else
        printf("normbench %s (git %s), BLAS %s, %s\n", PACKAGE_VERSION, NB_GIT_REVISION,
               nb_blas_name(), NB_BUILD_CC);
#endif
        return 0;
    }
    if (strcmp(verb, "help") == 0 || strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0) {
        nb_usage(stdout);
        return 0;
    }
    fprintf(stderr, "%s: unknown verb '%s'\n", prog, verb);
    nb_usage(stderr);
    return 2;
}
