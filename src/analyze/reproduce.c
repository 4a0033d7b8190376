/* src/analyze/reproduce.c - see reproduce.h. */
#include <config.h> /* autoconf's: NB_GNUPLOT */

#include "analyze/reproduce.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buildinfo.h" /* NB_GIT_REVISION: the pre-registration's revision */
#include "analyze/archive.h"
#include "analyze/check.h"
#include "analyze/prereg.h"
#include "analyze/report.h"
#include "analyze/rerun.h"
#include "config/runcfg.h"
#include "run/runner.h"
#include "analyze/summarize.h"
#include "config/sweep.h"

#define PATH_SZ 4096

void nb_repro_opts_default(struct nb_repro_opts *o)
{
    memset(o, 0, sizeof *o);
    o->jobs = 1;
    o->run = true;
    o->figures = true;
    o->report = true;
    o->progress = NB_PROGRESS_AUTO;
}

/* Is p a regular file? */
static bool is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Is p a regular file this process may execute? */
static bool is_exec(const char *p)
{
    return is_file(p) && access(p, X_OK) == 0;
}

/* dirname into buf ("." when none). */
static const char *dir_of(const char *path, char *buf, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(buf, size, ".");
    else if (slash == path)
        snprintf(buf, size, "/");
    else
        snprintf(buf, size, "%.*s", (int)(slash - path), path);
    return buf;
}

/* The part of path after its last '/'. */
static const char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* ======================================================================
 * Finding things
 * ====================================================================== */

#ifndef NB_PKGDATADIR
#define NB_PKGDATADIR ""
#endif

/* Where an installed normbench keeps plots/, experiments/ and configs/:
 * next to the running binary (BIN/../share/normbench, so a DESTDIR or
 * moved install works too), else the configured $(pkgdatadir); NULL when
 * neither has the plots. */
static const char *installed_dir(char *buf, size_t size)
{
    char exe[PATH_SZ], probe[PATH_SZ + 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(buf, size, "%.3000s/../share/normbench", exe);
            snprintf(probe, sizeof probe, "%.3000s/plots/curves.gp", buf);
            if (is_file(probe))
                return buf;
        }
    }
    snprintf(buf, size, "%s", NB_PKGDATADIR);
    snprintf(probe, sizeof probe, "%.3000s/plots/curves.gp", buf);
    return buf[0] && is_file(probe) ? buf : NULL;
}

int nb_experiment_find(const char *name, char *buf, size_t size, struct nb_error *err)
{
    if (is_file(name)) {
        snprintf(buf, size, "%s", name);
        return 0;
    }
    const char *cands[] = {"experiments/%s.ini", "experiments/%s", "%s.ini"};
    for (int i = 0; i < 3; i++) {
        snprintf(buf, size, cands[i], name);
        if (is_file(buf))
            return 0;
    }
    char inst[PATH_SZ];
    if (installed_dir(inst, sizeof inst) && !strchr(name, '/')) {
        snprintf(buf, size, "%.3000s/experiments/%s.ini", inst, name);
        if (is_file(buf))
            return 0;
    }
    nb_error_set(err, NB_ENOENT, NULL, 0, "no experiment '%s' (neither a file nor "
                                          "experiments/%s.ini)", name, name);
    DIR *d = opendir("experiments");
    if (d) {
        char list[512] = "";
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
            size_t l = strlen(de->d_name);
            if (l > 4 && !strcmp(de->d_name + l - 4, ".ini") && n < sizeof list - 1)
                n += (size_t)snprintf(list + n, sizeof list - n, "%s%.*s", n ? ", " : "",
                                      (int)(l - 4), de->d_name);
        }
        closedir(d);
        if (n)
            nb_error_hint(err, "experiments here: %s", list);
    } else {
        nb_error_hint(err, "run from the source tree (where experiments/ is), install "
                           "normbench (make install), or give a path");
    }
    return NB_ENOENT;
}

const char *nb_gnuplot_path(const struct nb_env *e, char *buf, size_t size)
{
    const char *env = e ? e->gnuplot : NULL;
    if (env && *env) {
        if (strchr(env, '/'))
            return is_exec(env) ? env : NULL;
        /* a bare name: search PATH below */
    }
    const char *want = env && *env ? env : "gnuplot";
    if (!(env && *env) && NB_GNUPLOT[0] && is_exec(NB_GNUPLOT))
        return NB_GNUPLOT;
    const char *path = e ? e->path : NULL;
    if (!path)
        path = "/usr/bin:/bin";
    while (*path) {
        const char *colon = strchr(path, ':');
        size_t n = colon ? (size_t)(colon - path) : strlen(path);
        snprintf(buf, size, "%.*s/%s", (int)n, n ? path : ".", want);
        if (is_exec(buf))
            return buf;
        if (!colon)
            break;
        path = colon + 1;
    }
    return NULL;
}

int nb_gnuplot_run(const char *gp, const char *script, const char *in, const char *out,
                   const char *arg3, const char *log, struct nb_error *err)
{
    if (!gp)
        return nb_error_set(err, NB_ENOENT, NULL, 0,
                            "gnuplot not found (apt-get install gnuplot-nox fonts-liberation)");
    remove(out);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return nb_error_set(err, NB_EIO, NULL, 0, "cannot fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0666);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) {
            dup2(nul, STDIN_FILENO);
            close(nul);
        }
        /* -d: no ~/.gnuplot, so the figure depends on the script only */
        execl(gp, "gnuplot", "-d", "-c", script, in, out, arg3, (char *)NULL);
        _exit(127);
    }
    int ws;
    while (waitpid(pid, &ws, 0) < 0)
        if (errno != EINTR)
            return nb_error_set(err, NB_EIO, NULL, 0, "waitpid: %s", strerror(errno));
    struct stat st;
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
        if (WIFEXITED(ws) && WEXITSTATUS(ws) == 127)
            return nb_error_set(err, NB_EIO, gp, 0, "cannot run gnuplot");
        return nb_error_set(err, NB_EIO, script, 0, "gnuplot failed (%s %d)%s%s",
                            WIFEXITED(ws) ? "exit status" : "signal",
                            WIFEXITED(ws) ? WEXITSTATUS(ws) : WTERMSIG(ws),
                            log ? "; see " : "", log ? log : "");
    }
    if (stat(out, &st) != 0 || st.st_size == 0)
        return nb_error_set(err, NB_EIO, script, 0, "gnuplot wrote no output%s%s",
                            log ? "; see " : "", log ? log : "");
    return 0;
}

/* The plots directory: opts, env's NORMBENCH_PLOTS, EXPERIMENTS/../plots,
 * ./plots, the installed one; NULL when none holds curves.gp. */
static const char *find_plots(const char *opt, const struct nb_env *e, const char *exp_path,
                              char *buf, size_t size)
{
    char dir[PATH_SZ], probe[PATH_SZ + 32];
    const char *env = e ? e->plots : NULL;
    const char *cands[5] = {opt, env && *env ? env : NULL, NULL, "plots", NULL};
    dir_of(exp_path, dir, sizeof dir);
    char rel[PATH_SZ + 16], inst[PATH_SZ], instp[PATH_SZ + 16];
    snprintf(rel, sizeof rel, "%s/../plots", dir);
    cands[2] = rel;
    if (installed_dir(inst, sizeof inst)) {
        snprintf(instp, sizeof instp, "%.3000s/plots", inst);
        cands[4] = instp;
    }
    for (int i = 0; i < 5; i++) {
        if (!cands[i])
            continue;
        snprintf(probe, sizeof probe, "%s/curves.gp", cands[i]);
        if (is_file(probe)) {
            snprintf(buf, size, "%s", cands[i]);
            return buf;
        }
        if (i == 0)
            return NULL; /* an explicit --plots that is wrong: no guessing */
    }
    return NULL;
}

/* ======================================================================
 * Overlay configs
 * ====================================================================== */

/* Writes path: include the original, place the runs under root, apply
 * the quick overrides (when quick). */
static int write_overlay(const char *path, const char *orig, const char *root,
                         const char *exp_name, const struct nb_experiment *e, bool quick,
                         struct nb_error *err)
{
    char *real = realpath(orig, NULL);
    if (!real)
        return nb_error_set(err, NB_EIO, orig, 0, "cannot resolve: %s", strerror(errno));
    char tmp[PATH_SZ + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *fp = fopen(tmp, "w");
    if (!fp) {
        free(real);
        return nb_error_set(err, NB_EIO, tmp, 0, "cannot create: %s", strerror(errno));
    }
    fprintf(fp, "; generated by normbench reproduce%s from %s: the config below, its runs\n"
                "; placed under %s%s\n",
            quick ? " --quick" : "", e->path, root,
            quick ? ", with the experiment's [quick ...] overrides" : "");
    fprintf(fp, "include = %s\n\n[experiment]\nname = %s\nresults_dir = %s\n", real, exp_name,
            root);
    free(real);
    for (int s = 0; nb_sections[s]; s++) {
        bool head = !strcmp(nb_sections[s], "experiment");
        for (int i = 0; quick && i < e->n_quick; i++) {
            const struct nb_exp_override *q = &e->quick[i];
            if (strcmp(q->section, nb_sections[s]))
                continue;
            if (!head) {
                fprintf(fp, "\n[%s]\n", q->section);
                head = true;
            }
            fprintf(fp, "%s = %s\n", q->key, q->value);
        }
    }
    bool bad = ferror(fp);
    if (fclose(fp) != 0 || bad) {
        remove(tmp);
        return nb_error_set(err, NB_EIO, path, 0, "cannot write: %s", strerror(errno));
    }
    return nb_commit_file(tmp, path, err);
}

/* ======================================================================
 * The pipeline
 * ====================================================================== */

/* Prints "normbench: " and one line of progress to o->out (stderr by
 * default). */
__attribute__((format(printf, 2, 3))) static void say(const struct nb_repro_opts *o,
                                                      const char *fmt, ...)
{
    FILE *fp = o->out ? o->out : stderr;
    va_list ap;
    va_start(ap, fmt);
    fputs("normbench: ", fp);
    vfprintf(fp, fmt, ap);
    fputc('\n', fp);
    va_end(ap);
    fflush(fp);
}

struct cfgrun {
    struct nb_sweep sw;
    bool loaded;
    char path[PATH_SZ];
    char exp_dir[PATH_SZ];
    size_t first, n; /* its runs in the summary */
};

/* The files of a figure NAME: NAME.csv (its data), the image formats
 * (--format), NAME.log (gnuplot's messages). */
static const char *const fig_sfx[] = {"csv", "paper.csv", "png", "svg", "pdf", "log", NULL};

/* The paper overlay of figure f: dir/NAME.paper.csv with pid (the
 * reference series, 0..), series (the table row and the label), x and
 * value, which vs_common.gp draws on a second y axis when present. */
static int write_paper_csv(const struct nb_experiment *e, const struct nb_exp_figure *f,
                           const char *path, struct nb_error *err)
{
    const struct nb_exp_table *t = &e->tables[f->paper_table];
    FILE *fp = fopen(path, "w");
    if (!fp)
        return nb_error_set(err, NB_EIO, path, 0, "cannot create: %s", strerror(errno));
    fputs("pid,series,x,value\n", fp);
    int pid = -1;
    const char *last = NULL;
    for (int i = 0; i < t->n_paper; i++) {
        const struct nb_exp_paper *p = &t->paper[i];
        if (!p->col)
            continue;
        if (!last || strcmp(last, p->row))
            pid++, last = p->row;
        /* gnuplot splits fields at every comma, quoted or not */
        char label[300];
        snprintf(label, sizeof label, "%s (%s)", p->row, f->paper_label ? f->paper_label : "paper");
        for (char *q = label; *q; q++)
            if (*q == ',' || *q == '"')
                *q = ';';
        fprintf(fp, "%d,%s,%s,%.10g\n", pid, label, p->col, p->value);
    }
    bool bad = ferror(fp);
    if (fclose(fp) != 0 || bad)
        return nb_error_set(err, NB_EIO, path, 0, "write error");
    return 0;
}

/* Writes every figure's CSV into REPORT_DIR/figures and draws it with
 * plots/KIND.gp in each format; counts what was drawn and what failed, with
 * the reason per figure. */
static int draw_figures(const struct nb_experiment *e, const struct nb_summary *s,
                        const char *report_dir, const char *plots, const char *formats,
                        const struct nb_repro_opts *o, struct nb_report_fig *figs,
                        char (*fig_file)[PATH_SZ], char (*fig_table)[PATH_SZ],
                        char (*fig_why)[600], int *drawn, int *failed,
                        struct nb_error *err)
{
    char fdir[PATH_SZ];
    snprintf(fdir, sizeof fdir, "%.3000s/figures", report_dir);
    int rc = nb_mkdirs(fdir, err);
    if (rc)
        return rc;
    char gpbuf[PATH_SZ];
    const char *gp = nb_gnuplot_path(o->env, gpbuf, sizeof gpbuf);
    *drawn = 0;
    *failed = 0;
    for (int i = 0; i < e->n_figs; i++) {
        const struct nb_exp_figure *f = &e->figs[i];
        struct nb_report_fig *rf = &figs[i];
        memset(rf, 0, sizeof *rf);
        char table[PATH_SZ + 300];
        snprintf(table, sizeof table, "%s/%s.csv", fdir, f->name);
        for (int k = 0; fig_sfx[k]; k++) { /* no stale file of an earlier call */
            char old[PATH_SZ + 300];
            snprintf(old, sizeof old, "%s/%s.%s", fdir, f->name, fig_sfx[k]);
            remove(old);
        }
        struct nb_fig_spec spec = {.kind = f->kind, .x = f->x, .scalar = f->scalar,
                                   .probe = f->scalar < 0 ? &f->probe : NULL,
                                   .where = f->where, .n_where = f->n_where,
                                   .param = f->param, .series = f->series,
                                   .n_series = f->n_series};
        struct nb_error e2;
        nb_error_clear(&e2);
        rc = nb_summary_figure_table(s, &spec, table, &e2);
        if (rc == NB_ENOENT) {
            snprintf(fig_why[i], sizeof fig_why[i], "nothing to draw (%.500s)", e2.msg);
            rf->why = fig_why[i];
            say(o, "figure %s: %s", f->name, fig_why[i]);
            continue;
        }
        if (rc) {
            *err = e2;
            return rc;
        }
        if (f->paper_table >= 0) {
            char ppath[PATH_SZ + 320];
            snprintf(ppath, sizeof ppath, "%s/%s.paper.csv", fdir, f->name);
            if ((rc = write_paper_csv(e, f, ppath, err)))
                return rc;
        }
        snprintf(fig_table[i], sizeof fig_table[i], "figures/%s.csv", f->name);
        rf->table = fig_table[i];
        if (!plots || !gp) {
            snprintf(fig_why[i], sizeof fig_why[i], "%s",
                     !gp ? "gnuplot is not installed (apt-get install gnuplot-nox "
                           "fonts-liberation)"
                         : "the plots/ directory with the gnuplot scripts was not found "
                           "(--plots DIR or NORMBENCH_PLOTS)");
            rf->why = fig_why[i];
            continue;
        }
        char script[PATH_SZ + 64];
        snprintf(script, sizeof script, "%s/%s.gp", plots, nb_fig_kind_name(f->kind));
        /* every requested format; the first one is the report's image */
        char fmts[128];
        snprintf(fmts, sizeof fmts, "%s", formats && *formats ? formats : "png");
        bool first = true;
        for (char *fmt = strtok(fmts, ","); fmt; fmt = strtok(NULL, ",")) {
            char out[PATH_SZ + 300], log[PATH_SZ + 300];
            snprintf(out, sizeof out, "%s/%s.%s", fdir, f->name, fmt);
            snprintf(log, sizeof log, "%s/%s.log", fdir, f->name);
            nb_error_clear(&e2);
            if (nb_gnuplot_run(gp, script, table, out, f->yscale, log, &e2)) {
                char buf[600];
                nb_error_format(&e2, buf, sizeof buf);
                if (first) {
                    snprintf(fig_why[i], sizeof fig_why[i], "%s", buf);
                    rf->why = fig_why[i];
                }
                say(o, "figure %s: %s", f->name, buf);
                (*failed)++;
                break;
            }
            if (first) {
                snprintf(fig_file[i], sizeof fig_file[i], "figures/%s.%s", f->name, fmt);
                rf->file = fig_file[i];
                (*drawn)++;
            }
            first = false;
        }
    }
    return 0;
}

/* ======================================================================
 * Staging: everything is written into DIR/.staging-PID first and moved
 * into place at the end, each file only when its bytes changed, so that
 * a refusal or a failure midway leaves the old files as they were.
 * ====================================================================== */


/* Removes the files of dir and dir/SUB for the subdirectories named, then
 * the directories (a staging area: nothing deeper). */
static void stage_remove(const char *dir)
{
    static const char *const subs[] = {"tables", "figures", ""};
    for (int i = 0; i < 3; i++) {
        char d[PATH_SZ + 64];
        snprintf(d, sizeof d, "%s%s%s", dir, subs[i][0] ? "/" : "", subs[i]);
        DIR *dp = opendir(d);
        struct dirent *de;
        while (dp && (de = readdir(dp))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            char f[PATH_SZ + 400];
            snprintf(f, sizeof f, "%s/%.300s", d, de->d_name);
            remove(f);
        }
        if (dp)
            closedir(dp);
        rmdir(d);
    }
}

/* Moves stage/NAME to final/NAME when it exists (and differs), else
 * removes final/NAME. */
static int stage_commit(const char *stage, const char *final, const char *name,
                        struct nb_error *err)
{
    char from[PATH_SZ + 400], to[PATH_SZ + 400];
    snprintf(from, sizeof from, "%.3500s/%.300s", stage, name);
    snprintf(to, sizeof to, "%.3500s/%.300s", final, name);
    if (!is_file(from)) {
        remove(to);
        return 0;
    }
    return nb_commit_file(from, to, err);
}

int nb_repro_write_tables(const struct nb_summary *s, const char *dir, struct nb_error *err)
{
    char stage[PATH_SZ + 64];
    snprintf(stage, sizeof stage, "%.3800s.staging-%ld", dir, (long)getpid());
    stage_remove(stage);
    int rc = nb_summary_write_tables(s, stage, err);
    if (!rc)
        rc = nb_mkdirs(dir, err);
    for (int i = 0; !rc && nb_sum_table_files[i]; i++)
        rc = stage_commit(stage, dir, nb_sum_table_files[i], err);
    stage_remove(stage);
    return rc;
}

int nb_repro_missing(const struct nb_summary *s, const char *where, const char *archive,
                     const char *command, struct nb_error *err)
{
    size_t miss = 0;
    char list[600] = "";
    size_t used = 0;
    int kexp = nb_key_lookup("experiment", "name");
    for (size_t i = 0; i < s->n_runs; i++) {
        const struct nb_sum_run *r = &s->runs[i];
        if (r->status != NB_SUM_PENDING)
            continue;
        if (++miss <= 5 && used < sizeof list)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s (%s)",
                                     miss > 1 ? ", " : "", r->run_id,
                                     kexp >= 0 && r->vals[kexp] ? r->vals[kexp] : "?");
    }
    if (!miss)
        return 0;
    if (miss > 5 && used < sizeof list)
        snprintf(list + used, sizeof list - used, " and %zu more", miss - 5);
    nb_error_set(err, NB_ENOENT, NULL, 0,
                 "%s: %zu of %zu runs have neither a finished run directory nor an entry in "
                 "%s: %s; nothing was written",
                 where, miss, s->n_runs, archive, list);
    nb_error_hint(err, "make them with `%s` (it runs what is missing), or restore the run "
                       "directories",
                  command);
    return NB_ENOENT;
}

/* The date of the pre-registration (the only clock reproduce reads). */
static const char *utc_now(char *buf, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%d %H:%M UTC", &tm);
    return buf;
}

/* The state of one nb_reproduce call, shared by its steps; repro_free
 * frees what they made. */
struct repro {
    const struct nb_repro_opts *o;
    struct nb_experiment e;
    char epath[PATH_SZ];
    int n;             /* e.n_configs */
    struct cfgrun *cr; /* [n] */
    struct nb_summary s;
    struct nb_archive old, arch; /* on disk (have_old), of these runs (built) */
    bool have_old, built, staged;
    bool complete;     /* no run failed or pending */
    bool save_archive; /* arch replaces old */
    char root[PATH_SZ], report_dir[PATH_SZ + 256];
    char ppath[PATH_SZ + 400]; /* the pre-registration */
    char cmd[PATH_SZ + 128];   /* the command that makes the runs */
    char adir[PATH_SZ + 300];  /* the archive */
    char stage[PATH_SZ], tdir[PATH_SZ + 300];
    struct nb_check_result *results;
    struct nb_report_fig *figs;
    char (*fig_file)[PATH_SZ];
    char (*fig_table)[PATH_SZ];
    char (*fig_why)[600];
    struct nb_report_cfg *rcfg;
    int *reg;
    struct nb_prereg prereg;
    struct nb_rerun *rr; /* the reruns (rerun.h) */
    int n_rr;
    int *own;            /* [n_checks]: outcomes on these runs alone */
};

/* The arrays of R sized by its experiment; returns a status. */
static int repro_alloc(struct repro *R, struct nb_error *err)
{
    const struct nb_experiment *e = &R->e;
    R->cr = calloc((size_t)R->n, sizeof *R->cr);
    R->results = calloc((size_t)e->n_checks + 1, sizeof *R->results);
    R->figs = calloc((size_t)e->n_figs + 1, sizeof *R->figs);
    R->fig_file = calloc((size_t)e->n_figs + 1, sizeof *R->fig_file);
    R->fig_table = calloc((size_t)e->n_figs + 1, sizeof *R->fig_table);
    R->fig_why = calloc((size_t)e->n_figs + 1, sizeof *R->fig_why);
    R->rcfg = calloc((size_t)R->n, sizeof *R->rcfg);
    R->reg = calloc((size_t)e->n_checks + 1, sizeof *R->reg);
    R->own = calloc((size_t)e->n_checks + 1, sizeof *R->own);
    if (!R->cr || !R->results || !R->figs || !R->fig_file || !R->fig_table || !R->fig_why ||
        !R->rcfg || !R->reg || !R->own)
        return nb_error_oom(err);
    return 0;
}

/* Sets ROOT (from the first config, the original) and ROOT/NAME, makes
 * the latter, and loads every config: through an overlay under
 * ROOT/NAME/configs with --quick or --results; returns a status. */
static int repro_load_configs(struct repro *R, struct nb_error *err)
{
    const struct nb_repro_opts *o = R->o;
    const struct nb_experiment *e = &R->e;
    int rc;
    {
        struct nb_sweep sw0;
        if ((rc = nb_sweep_load(e->config_paths[0], &sw0, err)))
            return rc;
        const char *rd =
            o->results ? o->results : nb_run_get_str(&sw0.runs[0], "experiment", "results_dir");
        snprintf(R->root, sizeof R->root, "%s%s", rd[0] ? rd : ".", o->quick ? "/quick" : "");
        nb_sweep_free(&sw0);
    }
    snprintf(R->report_dir, sizeof R->report_dir, "%s/%s", R->root, e->name);
    if ((rc = nb_mkdirs(R->report_dir, err)))
        return rc;
    bool overlay = o->quick || o->results;
    for (int i = 0; i < R->n; i++) {
        struct cfgrun *c = &R->cr[i];
        if (overlay) {
            struct nb_sweep orig;
            if ((rc = nb_sweep_load(e->config_paths[i], &orig, err)))
                return rc;
            char name[256];
            snprintf(name, sizeof name, "%s", nb_run_get_str(&orig.runs[0], "experiment", "name"));
            nb_sweep_free(&orig);
            char cdir[PATH_SZ + 300];
            snprintf(cdir, sizeof cdir, "%s/configs", R->report_dir);
            if ((rc = nb_mkdirs(cdir, err)))
                return rc;
            snprintf(c->path, sizeof c->path, "%.3000s/%.900s", cdir, base_of(e->config_paths[i]));
            if ((rc = write_overlay(c->path, e->config_paths[i], R->root, name, e, o->quick, err)))
                return rc;
        } else {
            snprintf(c->path, sizeof c->path, "%s", e->config_paths[i]);
        }
        if ((rc = nb_sweep_load_checked(c->path, nb_runcfg_check, &c->sw, err)))
            return rc;
        c->loaded = true;
        nb_runner_exp_dir(&c->sw, NULL, c->exp_dir, sizeof c->exp_dir);
    }
    return 0;
}

/* Sets the pre-registration's path and, when this call runs and there is
 * none yet, writes it (the checks, before the first run); returns a
 * status. */
static int repro_preregister(struct repro *R, struct nb_error *err)
{
    snprintf(R->ppath, sizeof R->ppath, "%s/%s", R->report_dir, NB_PREREG_FILE);
    if (!R->o->run || access(R->ppath, F_OK) == 0)
        return 0;
    long before = 0;
    for (int i = 0; i < R->n; i++)
        for (size_t k = 0; k < R->cr[i].sw.n_runs; k++) {
            char dpath[PATH_SZ + 64];
            snprintf(dpath, sizeof dpath, "%.3000s/%s/DONE", R->cr[i].exp_dir,
                     R->cr[i].sw.runs[k].run_id);
            before += access(dpath, F_OK) == 0;
        }
    char when[64];
    int rc = nb_prereg_write(R->ppath, R->epath, R->e.checks, R->e.n_checks,
                             utc_now(when, sizeof when), NB_GIT_REVISION, before, err);
    if (rc)
        return rc;
    say(R->o, "%s: checks pre-registered in %s%s", R->e.name, R->ppath,
        before ? " (after runs existed: they will be marked post hoc)" : "");
    return 0;
}

/* Before anything runs: every config's init_from names an experiment
 * with results, or one of the experiment's earlier configs; returns a
 * status (NB_EINVAL at the config line). */
static int repro_check_sources(struct repro *R, struct nb_error *err)
{
    const char **made = calloc((size_t)R->n + 1, sizeof *made);
    if (!made)
        return nb_error_oom(err);
    int rc = 0;
    for (int i = 0; i < R->n && !rc; i++) {
        struct nb_runner_opts ro;
        nb_runner_opts_default(&ro);
        rc = nb_runner_check_sources(&R->cr[i].sw, &ro, made, i, err);
        made[i] = nb_run_get_str(&R->cr[i].sw.runs[0], "experiment", "name");
    }
    free(made);
    return rc;
}

/* Runs every config's sweep; returns a status (NB_EIO when a signal
 * stopped it). */
static int repro_run(struct repro *R, struct nb_error *err)
{
    const struct nb_repro_opts *o = R->o;
    for (int i = 0; i < R->n; i++) {
        struct cfgrun *c = &R->cr[i];
        say(o, "%s: %zu runs of %s, %d at a time, into %s/", R->e.name, c->sw.n_runs, c->path,
            o->jobs, c->exp_dir);
        struct nb_runner_opts ro;
        nb_runner_opts_default(&ro);
        ro.jobs = o->jobs > 0 ? o->jobs : 1;
        ro.progress = o->progress;
        ro.env = o->env;
        struct nb_runner_report rep;
        int rc = nb_runner_run(&c->sw, &ro, &rep, err);
        if (rc)
            return rc;
        say(o, "%s: %zu done, %zu diverged, %zu failed (%zu were done before)", base_of(c->path),
            rep.done, rep.diverged, rep.failed, rep.skipped);
        if (rep.signal)
            return nb_error_set(err, NB_EIO, NULL, 0, "stopped by signal %d", rep.signal);
    }
    return 0;
}

/* Sets R->cmd, the command that makes the runs (no -j: the report is the
 * same for any number of workers). */
static void repro_command(struct repro *R)
{
    const struct nb_repro_opts *o = R->o;
    char shown[PATH_SZ];
    /* an experiment of an experiments/ folder by its name (how it was
     * given does not change the report), any other by its path */
    char edir[PATH_SZ];
    dir_of(R->epath, edir, sizeof edir);
    const char *base = base_of(R->epath);
    size_t bl = strlen(base);
    if (!strcmp(base_of(edir), "experiments") && bl > 4 && !strcmp(base + bl - 4, ".ini"))
        snprintf(shown, sizeof shown, "%.*s", (int)(bl - 4), base);
    else
        snprintf(shown, sizeof shown, "%s", R->epath);
    snprintf(R->cmd, sizeof R->cmd, "normbench reproduce %s%s%s%s", shown,
             o->quick ? " --quick" : "", o->results ? " --results " : "",
             o->results ? o->results : "");
}

/* Loads the archive (the data of runs whose directories are gone), adds
 * every config's runs to the summary and groups them; without running,
 * refuses when a run has no data; returns a status. */
static int repro_summarize(struct repro *R, struct nb_error *err)
{
    snprintf(R->adir, sizeof R->adir, "%s/archive", R->report_dir);
    struct nb_error e2;
    nb_error_clear(&e2);
    int rc = nb_archive_load(R->adir, &R->old, &e2);
    if (rc && rc != NB_ENOENT) {
        *err = e2;
        return rc;
    }
    R->have_old = rc == 0;
    if (R->have_old)
        nb_summary_set_fallback(&R->s, nb_archive_fallback, &R->old);
    for (int i = 0; i < R->n; i++) {
        struct cfgrun *c = &R->cr[i];
        c->first = R->s.n_runs;
        if ((rc = nb_summary_add_sweep(&R->s, &c->sw, c->exp_dir, err)))
            return rc;
        c->n = R->s.n_runs - c->first;
    }
    if ((rc = nb_summary_group(&R->s, err)))
        return rc;
    /* without running, every run must have its data: never a report, a
     * table or a figure of fewer runs over the ones there are */
    if (!R->o->run)
        return nb_repro_missing(&R->s, R->report_dir, R->adir, R->cmd, err);
    return 0;
}

/* Fills the report's per-config counts and R->complete. */
static void repro_count(struct repro *R)
{
    bool complete = true;
    for (int i = 0; i < R->n; i++) {
        struct nb_report_cfg *c = &R->rcfg[i];
        const struct cfgrun *cr = &R->cr[i];
        c->path = cr->path;
        c->exp_dir = cr->exp_dir;
        c->total = cr->n;
        /* runs are in insertion order until grouping sorts nothing in
         * sweep mode: count by run_id membership */
        for (size_t k = 0; k < R->s.n_runs; k++) {
            const struct nb_sum_run *r = &R->s.runs[k];
            if (r->order < (long)cr->first || r->order >= (long)(cr->first + cr->n))
                continue;
            c->done += r->status == NB_SUM_DONE;
            c->diverged += r->status == NB_SUM_DIVERGED;
            c->failed += r->status == NB_SUM_FAILED;
            c->pending += r->status == NB_SUM_PENDING;
        }
        complete &= c->failed == 0 && c->pending == 0;
    }
    R->complete = complete;
}

/* Draws the figures into the staging area (when asked) and says why
 * each one was not; returns a status, NB_EIO for `plot` (no report)
 * when no figure was drawn. */
static int repro_figures(struct repro *R, struct nb_repro_result *res, struct nb_error *err)
{
    const struct nb_repro_opts *o = R->o;
    const struct nb_experiment *e = &R->e;
    char plots[PATH_SZ], plots_gp[PATH_SZ];
    const char *pd = find_plots(o->plots_dir, o->env, R->epath, plots, sizeof plots);
    res->figs_total = e->n_figs;
    for (int i = 0; i < e->n_figs; i++)
        R->figs[i].why = "figures were not requested";
    if (o->figures) {
        if (!pd)
            say(o, "no plots/ directory with the gnuplot scripts (--plots DIR): figures "
                   "skipped");
        else if (!nb_gnuplot_path(o->env, plots_gp, sizeof plots_gp))
            say(o, "gnuplot not found: figures skipped (apt-get install gnuplot-nox "
                   "fonts-liberation)");
        int rc = draw_figures(e, &R->s, R->stage, pd, o->formats, o, R->figs, R->fig_file,
                              R->fig_table, R->fig_why, &res->figs_drawn, &res->figs_failed, err);
        if (rc)
            return rc;
        /* a message that points at a gnuplot log: where the log will be */
        size_t sl = strlen(R->stage);
        for (int i = 0; i < e->n_figs; i++) {
            char *p = strstr(R->fig_why[i], R->stage);
            if (p) {
                char tail[600];
                snprintf(tail, sizeof tail, "%s", p + sl);
                *p = '\0';
                size_t used = strlen(R->fig_why[i]);
                snprintf(p, sizeof R->fig_why[i] - used, "%s%s", R->report_dir, tail);
            }
        }
    }
    snprintf(res->figures, sizeof res->figures, "%.2000s/figures", R->report_dir);
    if (!o->report && o->figures && res->figs_drawn == 0)
        /* plot: figures that were drawn before stay as they are */
        return nb_error_set(err, NB_EIO, NULL, 0,
                            "%s: no figure drawn (%d in the experiment; the messages above "
                            "say why); nothing was written",
                            e->name, e->n_figs);
    return 0;
}

/* Loads the experiment's reruns (rerun.h) and makes each check's result
 * count with the outcome every rerun agrees on (R->own keeps the one on
 * these runs); returns a status. */
static int repro_reruns(struct repro *R, struct nb_error *err)
{
    const struct nb_experiment *e = &R->e;
    const struct nb_sweep **sw = calloc((size_t)R->n + 1, sizeof *sw);
    bool *post_hoc = calloc((size_t)e->n_checks + 1, sizeof *post_hoc);
    int rc = 0;
    if (!sw || !post_hoc)
        rc = nb_error_oom(err);
    for (int i = 0; !rc && i < R->n; i++)
        sw[i] = &R->cr[i].sw;
    for (int i = 0; !rc && i < e->n_checks; i++)
        post_hoc[i] = R->results[i].post_hoc;
    if (!rc)
        rc = nb_reruns_load(R->report_dir, e, post_hoc, sw, R->n, &R->rr, &R->n_rr, err);
    free(sw);
    free(post_hoc);
    if (rc)
        return rc;
    for (int i = 0; i < e->n_checks; i++) {
        R->own[i] = R->results[i].outcome;
        for (int k = 0; k < R->n_rr; k++)
            R->results[i].outcome =
                nb_outcome_agree(R->results[i].outcome, R->rr[k].results[i].outcome);
    }
    return 0;
}

/* Evaluates the checks against their registration, the verdict, builds
 * the archive of these runs and writes report.md and verdict.txt into
 * the staging area; returns a status. */
static int repro_report(struct repro *R, struct nb_repro_result *res, struct nb_error *err)
{
    const struct nb_repro_opts *o = R->o;
    struct nb_experiment *e = &R->e;
    int rc = nb_prereg_read(R->ppath, &R->prereg, err);
    if (rc)
        return rc;
    for (int i = 0; i < e->n_checks; i++) {
        if ((rc = nb_check_eval(&e->checks[i], &R->s, &R->results[i], err)))
            return rc;
        R->reg[i] = nb_prereg_status(&R->prereg, &e->checks[i]);
        R->results[i].post_hoc = R->reg[i] != NB_REG_OK;
    }
    if ((rc = repro_reruns(R, err)))
        return rc;
    bool complete = R->complete;
    for (int k = 0; k < R->n_rr; k++)
        complete &= R->rr[k].missing == 0;
    for (int i = 0; i < e->n_checks; i++)
        res->checks_pass += R->results[i].outcome == NB_OUT_PASS;
    res->checks_total = e->n_checks;
    res->verdict = nb_verdict_of(e->checks, R->results, e->n_checks, complete);
    /* the archive of these runs; its meta facts say when, by what and
     * where they were made (not when this report was written) */
    if ((rc = nb_archive_build(&R->s, R->have_old ? &R->old : NULL, &R->arch, err)))
        return rc;
    R->built = true;
    for (int k = 0; k < R->n_rr; k++)
        R->rr[k].same_metrics = nb_archive_same_table(&R->rr[k].a, &R->arch, NB_AR_METRICS);
    struct nb_archive_facts facts;
    nb_archive_facts(&R->arch, &facts);
    /* never an archive of fewer finished runs over one of more (runs
     * that failed here, a config that lost runs) */
    size_t fin_new = nb_archive_finished(&R->arch), fin_old = 0;
    if (R->have_old)
        fin_old = nb_archive_finished(&R->old);
    R->save_archive = R->arch.n_runs > 0 && (!R->have_old || fin_new >= fin_old);
    if (R->have_old && fin_new < fin_old)
        say(o, "%s kept as it is: it has %zu finished runs, these results %zu", R->adir, fin_old,
            fin_new);
    struct nb_report_in in = { .e = e,
                               .s = &R->s,
                               .results = R->results,
                               .figs = R->figs,
                               .cfgs = R->rcfg,
                               .quick = o->quick,
                               .verdict = res->verdict,
                               .complete = R->complete,
                               .tables_dir = "tables",
                               .command = R->cmd,
                               .reg = R->reg,
                               .prereg = &R->prereg,
                               .reruns = R->rr,
                               .n_reruns = R->n_rr,
                               .own = R->n_rr ? R->own : NULL,
                               .when = facts.when[0] ? facts.when : NULL,
                               .version = facts.version,
                               .machine = facts.machine,
                               .n_test = facts.n_test };
    char path[PATH_SZ + 300];
    snprintf(path, sizeof path, "%s/report.md", R->stage);
    if ((rc = nb_report_write(path, &in, err)))
        return rc;
    snprintf(path, sizeof path, "%s/verdict.txt", R->stage);
    return nb_verdict_write(path, &in, err);
}

/* Moves what was staged into place (tables, figures when drawn, report,
 * verdict and archive with a report); returns a status. */
static int repro_commit(struct repro *R, struct nb_error *err)
{
    char final[PATH_SZ + 300], sdir[PATH_SZ + 300];
    snprintf(final, sizeof final, "%s/tables", R->report_dir);
    int rc = nb_mkdirs(final, err);
    if (rc)
        return rc;
    for (int i = 0; nb_sum_table_files[i]; i++)
        if ((rc = stage_commit(R->tdir, final, nb_sum_table_files[i], err)))
            return rc;
    if (R->o->figures) {
        snprintf(final, sizeof final, "%s/figures", R->report_dir);
        snprintf(sdir, sizeof sdir, "%s/figures", R->stage);
        if ((rc = nb_mkdirs(final, err)))
            return rc;
        for (int i = 0; i < R->e.n_figs; i++)
            for (int k = 0; fig_sfx[k]; k++) {
                char name[400];
                snprintf(name, sizeof name, "%.300s.%s", R->e.figs[i].name, fig_sfx[k]);
                if ((rc = stage_commit(sdir, final, name, err)))
                    return rc;
            }
    }
    if (R->o->report) {
        if ((rc = stage_commit(R->stage, R->report_dir, "report.md", err)) ||
            (rc = stage_commit(R->stage, R->report_dir, "verdict.txt", err)))
            return rc;
        if (R->save_archive && (rc = nb_archive_save(&R->arch, R->adir, err)))
            return rc;
    }
    return 0;
}

/* Frees what the steps made (the experiment included) and removes the
 * staging area. */
static void repro_free(struct repro *R)
{
    if (R->staged)
        stage_remove(R->stage);
    if (R->have_old)
        nb_archive_free(&R->old);
    if (R->built)
        nb_archive_free(&R->arch);
    for (int i = 0; i < R->e.n_checks && R->results; i++)
        nb_check_result_free(&R->results[i]);
    free(R->results);
    free(R->figs), free(R->fig_file), free(R->fig_table), free(R->fig_why), free(R->rcfg),
        free(R->reg), free(R->own);
    nb_reruns_free(R->rr, R->n_rr, R->e.n_checks);
    nb_prereg_free(&R->prereg);
    for (int i = 0; R->cr && i < R->n; i++)
        if (R->cr[i].loaded)
            nb_sweep_free(&R->cr[i].sw);
    free(R->cr);
    nb_summary_free(&R->s);
    nb_experiment_free(&R->e);
}

int nb_reproduce(const char *experiment, const struct nb_repro_opts *o,
                 struct nb_repro_result *res, struct nb_error *err)
{
    memset(res, 0, sizeof *res);
    res->verdict = -1;
    struct repro R = { .o = o };
    int rc = nb_experiment_find(experiment, R.epath, sizeof R.epath, err);
    if (rc)
        return rc;
    if ((rc = nb_experiment_load(R.epath, &R.e, err)))
        return rc;
    R.n = R.e.n_configs;
    nb_summary_init(&R.s);
    if (nb_experiment_keep_probes(&R.e, &R.s)) {
        rc = nb_error_oom(err);
        goto out;
    }
    if ((rc = repro_alloc(&R, err)) || (rc = repro_load_configs(&R, err)) ||
        (o->run && (rc = repro_check_sources(&R, err))) ||
        (rc = repro_preregister(&R, err)) || (o->run && (rc = repro_run(&R, err))))
        goto out;
    repro_command(&R);
    if ((rc = repro_summarize(&R, err)))
        goto out;
    snprintf(R.stage, sizeof R.stage, "%.3000s/.staging-%ld", R.report_dir, (long)getpid());
    stage_remove(R.stage);
    if ((rc = nb_mkdirs(R.stage, err)))
        goto out;
    R.staged = true;
    snprintf(R.tdir, sizeof R.tdir, "%s/tables", R.stage);
    if ((rc = nb_summary_write_tables(&R.s, R.tdir, err)))
        goto out;
    repro_count(&R);
    res->complete = R.complete;
    if ((rc = repro_figures(&R, res, err)) || (o->report && (rc = repro_report(&R, res, err))) ||
        (rc = repro_commit(&R, err)))
        goto out;
    /* everything is in place: the index of the results */
    if (!o->report)
        goto out;
    snprintf(res->report, sizeof res->report, "%.2000s/report.md", R.report_dir);
    char edir[PATH_SZ];
    dir_of(R.epath, edir, sizeof edir);
    if ((rc = nb_index_write(R.root, edir, o->quick, err)))
        goto out;
    snprintf(res->index, sizeof res->index, "%.2000s/index.md", R.root);
out:
    repro_free(&R);
    return rc;
}
