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

static bool is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

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

static const char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* ======================================================================
 * Finding things
 * ====================================================================== */

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
        nb_error_hint(err, "run from the source tree (where experiments/ is) or give a path");
    }
    return NB_ENOENT;
}

const char *nb_gnuplot_path(char *buf, size_t size)
{
    const char *env = getenv("GNUPLOT");
    if (env && *env) {
        if (strchr(env, '/'))
            return is_exec(env) ? env : NULL;
        /* a bare name: search PATH below */
    }
    const char *want = env && *env ? env : "gnuplot";
    if (!(env && *env) && NB_GNUPLOT[0] && is_exec(NB_GNUPLOT))
        return NB_GNUPLOT;
    const char *path = getenv("PATH");
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

int nb_gnuplot_run(const char *script, const char *in, const char *out, const char *log,
                   struct nb_error *err)
{
    char gpbuf[PATH_SZ];
    const char *gp = nb_gnuplot_path(gpbuf, sizeof gpbuf);
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
        execl(gp, "gnuplot", "-d", "-c", script, in, out, (char *)NULL);
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

/* The plots directory: opts, $NORMBENCH_PLOTS, EXPERIMENTS/../plots,
 * ./plots; NULL when none holds curves.gp. */
static const char *find_plots(const char *opt, const char *exp_path, char *buf, size_t size)
{
    char dir[PATH_SZ], probe[PATH_SZ + 32];
    const char *env = getenv("NORMBENCH_PLOTS");
    const char *cands[4] = {opt, env && *env ? env : NULL, NULL, "plots"};
    dir_of(exp_path, dir, sizeof dir);
    char rel[PATH_SZ + 16];
    snprintf(rel, sizeof rel, "%s/../plots", dir);
    cands[2] = rel;
    for (int i = 0; i < 4; i++) {
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

static void say(const struct nb_repro_opts *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void say(const struct nb_repro_opts *o, const char *fmt, ...)
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
    const char *gp = nb_gnuplot_path(gpbuf, sizeof gpbuf);
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
                                   .where = f->where, .n_where = f->n_where,
                                   .param = f->param};
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
            if (nb_gnuplot_run(script, table, out, log, &e2)) {
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

int nb_reproduce(const char *experiment, const struct nb_repro_opts *o,
                 struct nb_repro_result *res, struct nb_error *err)
{
    memset(res, 0, sizeof *res);
    res->verdict = -1;
    char epath[PATH_SZ];
    int rc = nb_experiment_find(experiment, epath, sizeof epath, err);
    if (rc)
        return rc;
    struct nb_experiment e;
    if ((rc = nb_experiment_load(epath, &e, err)))
        return rc;
    int n = e.n_configs;
    struct cfgrun *cr = calloc((size_t)n, sizeof *cr);
    struct nb_summary s;
    nb_summary_init(&s);
    struct nb_archive old, arch;
    bool have_old = false, built = false, staged = false;
    char stage[PATH_SZ];
    struct nb_check_result *results = calloc((size_t)e.n_checks + 1, sizeof *results);
    struct nb_report_fig *figs = calloc((size_t)e.n_figs + 1, sizeof *figs);
    char(*fig_file)[PATH_SZ] = calloc((size_t)e.n_figs + 1, sizeof *fig_file);
    char(*fig_table)[PATH_SZ] = calloc((size_t)e.n_figs + 1, sizeof *fig_table);
    char(*fig_why)[600] = calloc((size_t)e.n_figs + 1, sizeof *fig_why);
    struct nb_report_cfg *rcfg = calloc((size_t)n, sizeof *rcfg);
    int *reg = calloc((size_t)e.n_checks + 1, sizeof *reg);
    struct nb_prereg prereg = {0};
    if (!cr || !results || !figs || !fig_file || !fig_table || !fig_why || !rcfg || !reg) {
        rc = nb_error_oom(err);
        goto out;
    }
    /* ROOT from the first config (the original) */
    char root[PATH_SZ], report_dir[PATH_SZ + 256];
    {
        struct nb_sweep sw0;
        if ((rc = nb_sweep_load(e.config_paths[0], &sw0, err)))
            goto out;
        const char *rd = o->results ? o->results
                                    : nb_run_get_str(&sw0.runs[0], "experiment", "results_dir");
        snprintf(root, sizeof root, "%s%s", rd[0] ? rd : ".", o->quick ? "/quick" : "");
        nb_sweep_free(&sw0);
    }
    snprintf(report_dir, sizeof report_dir, "%s/%s", root, e.name);
    if ((rc = nb_mkdirs(report_dir, err)))
        goto out;
    bool overlay = o->quick || o->results;
    for (int i = 0; i < n; i++) {
        if (overlay) {
            struct nb_sweep orig;
            if ((rc = nb_sweep_load(e.config_paths[i], &orig, err)))
                goto out;
            char name[256];
            snprintf(name, sizeof name, "%s",
                     nb_run_get_str(&orig.runs[0], "experiment", "name"));
            nb_sweep_free(&orig);
            char cdir[PATH_SZ + 300];
            snprintf(cdir, sizeof cdir, "%s/configs", report_dir);
            if ((rc = nb_mkdirs(cdir, err)))
                goto out;
            snprintf(cr[i].path, sizeof cr[i].path, "%.3000s/%.900s", cdir,
                     base_of(e.config_paths[i]));
            if ((rc = write_overlay(cr[i].path, e.config_paths[i], root, name, &e, o->quick,
                                    err)))
                goto out;
        } else {
            snprintf(cr[i].path, sizeof cr[i].path, "%s", e.config_paths[i]);
        }
        if ((rc = nb_sweep_load_checked(cr[i].path, nb_runcfg_check, &cr[i].sw, err)))
            goto out;
        cr[i].loaded = true;
        nb_runner_exp_dir(&cr[i].sw, NULL, cr[i].exp_dir, sizeof cr[i].exp_dir);
    }
    /* pre-register the checks before the first run */
    char ppath[PATH_SZ + 400];
    snprintf(ppath, sizeof ppath, "%s/%s", report_dir, NB_PREREG_FILE);
    if (o->run && access(ppath, F_OK) != 0) {
        long before = 0;
        for (int i = 0; i < n; i++)
            for (size_t k = 0; k < cr[i].sw.n_runs; k++) {
                char dpath[PATH_SZ + 64];
                snprintf(dpath, sizeof dpath, "%.3000s/%s/DONE", cr[i].exp_dir,
                         cr[i].sw.runs[k].run_id);
                before += access(dpath, F_OK) == 0;
            }
        char when[64];
        if ((rc = nb_prereg_write(ppath, epath, e.checks, e.n_checks, utc_now(when, sizeof when),
                                  NB_GIT_REVISION, before, err)))
            goto out;
        say(o, "%s: checks pre-registered in %s%s", e.name, ppath,
            before ? " (after runs existed: they will be marked post hoc)" : "");
    }
    /* run */
    if (o->run) {
        for (int i = 0; i < n; i++) {
            say(o, "%s: %zu runs of %s, %d at a time, into %s/", e.name, cr[i].sw.n_runs,
                cr[i].path, o->jobs, cr[i].exp_dir);
            struct nb_runner_opts ro;
            nb_runner_opts_default(&ro);
            ro.jobs = o->jobs > 0 ? o->jobs : 1;
            ro.progress = o->progress;
            struct nb_runner_report rep;
            if ((rc = nb_runner_run(&cr[i].sw, &ro, &rep, err)))
                goto out;
            say(o, "%s: %zu done, %zu diverged, %zu failed (%zu were done before)",
                base_of(cr[i].path), rep.done, rep.diverged, rep.failed, rep.skipped);
            if (rep.signal) {
                rc = nb_error_set(err, NB_EIO, NULL, 0, "stopped by signal %d", rep.signal);
                goto out;
            }
        }
    }
    /* the command that makes the runs (no -j: the report is the same for
     * any number of workers) */
    char cmd[PATH_SZ + 128], shown[PATH_SZ];
    {
        /* an experiment of an experiments/ folder by its name (how it was
         * given does not change the report), any other by its path */
        char edir[PATH_SZ];
        dir_of(epath, edir, sizeof edir);
        const char *base = base_of(epath);
        size_t bl = strlen(base);
        if (!strcmp(base_of(edir), "experiments") && bl > 4 && !strcmp(base + bl - 4, ".ini"))
            snprintf(shown, sizeof shown, "%.*s", (int)(bl - 4), base);
        else
            snprintf(shown, sizeof shown, "%s", epath);
    }
    snprintf(cmd, sizeof cmd, "normbench reproduce %s%s%s%s", shown, o->quick ? " --quick" : "",
             o->results ? " --results " : "", o->results ? o->results : "");
    /* the archive: the data of runs whose directories are gone */
    char adir[PATH_SZ + 300];
    snprintf(adir, sizeof adir, "%s/archive", report_dir);
    {
        struct nb_error e2;
        nb_error_clear(&e2);
        int r = nb_archive_load(adir, &old, &e2);
        if (r && r != NB_ENOENT) {
            *err = e2;
            rc = r;
            goto out;
        }
        have_old = r == 0;
        if (have_old)
            nb_summary_set_fallback(&s, nb_archive_fallback, &old);
    }
    /* summarize */
    for (int i = 0; i < n; i++) {
        cr[i].first = s.n_runs;
        if ((rc = nb_summary_add_sweep(&s, &cr[i].sw, cr[i].exp_dir, err)))
            goto out;
        cr[i].n = s.n_runs - cr[i].first;
    }
    if ((rc = nb_summary_group(&s, err)))
        goto out;
    /* without running, every run must have its data: never a report, a
     * table or a figure of fewer runs over the ones there are */
    if (!o->run && (rc = nb_repro_missing(&s, report_dir, adir, cmd, err)))
        goto out;
    snprintf(stage, sizeof stage, "%.3000s/.staging-%ld", report_dir, (long)getpid());
    stage_remove(stage);
    if ((rc = nb_mkdirs(stage, err)))
        goto out;
    staged = true;
    char tdir[PATH_SZ + 300];
    snprintf(tdir, sizeof tdir, "%s/tables", stage);
    if ((rc = nb_summary_write_tables(&s, tdir, err)))
        goto out;
    bool complete = true;
    for (int i = 0; i < n; i++) {
        struct nb_report_cfg *c = &rcfg[i];
        c->path = cr[i].path;
        c->exp_dir = cr[i].exp_dir;
        c->total = cr[i].n;
        /* runs are in insertion order until grouping sorts nothing in
         * sweep mode: count by run_id membership */
        for (size_t k = 0; k < s.n_runs; k++) {
            const struct nb_sum_run *r = &s.runs[k];
            if (r->order < (long)cr[i].first || r->order >= (long)(cr[i].first + cr[i].n))
                continue;
            c->done += r->status == NB_SUM_DONE;
            c->diverged += r->status == NB_SUM_DIVERGED;
            c->failed += r->status == NB_SUM_FAILED;
            c->pending += r->status == NB_SUM_PENDING;
        }
        complete &= c->failed == 0 && c->pending == 0;
    }
    res->complete = complete;
    /* figures */
    char plots[PATH_SZ], plots_gp[PATH_SZ];
    const char *pd = find_plots(o->plots_dir, epath, plots, sizeof plots);
    res->figs_total = e.n_figs;
    for (int i = 0; i < e.n_figs; i++)
        figs[i].why = "figures were not requested";
    if (o->figures) {
        if (!pd)
            say(o, "no plots/ directory with the gnuplot scripts (--plots DIR): figures "
                   "skipped");
        else if (!nb_gnuplot_path(plots_gp, sizeof plots_gp))
            say(o, "gnuplot not found: figures skipped (apt-get install gnuplot-nox "
                   "fonts-liberation)");
        if ((rc = draw_figures(&e, &s, stage, pd, o->formats, o, figs, fig_file,
                               fig_table, fig_why, &res->figs_drawn, &res->figs_failed,
                               err)))
            goto out;
        /* a message that points at a gnuplot log: where the log will be */
        size_t sl = strlen(stage);
        for (int i = 0; i < e.n_figs; i++) {
            char *p = strstr(fig_why[i], stage);
            if (p) {
                char tail[600];
                snprintf(tail, sizeof tail, "%s", p + sl);
                *p = '\0';
                size_t used = strlen(fig_why[i]);
                snprintf(p, sizeof fig_why[i] - used, "%s%s", report_dir, tail);
            }
        }
    }
    snprintf(res->figures, sizeof res->figures, "%.2000s/figures", report_dir);
    if (!o->report && o->figures && res->figs_drawn == 0) {
        /* plot: figures that were drawn before stay as they are */
        rc = nb_error_set(err, NB_EIO, NULL, 0,
                          "%s: no figure drawn (%d in the experiment; the messages above "
                          "say why); nothing was written",
                          e.name, e.n_figs);
        goto out;
    }
    bool save_archive = false;
    if (o->report) {
        /* checks, their registration, verdict, report */
        if ((rc = nb_prereg_read(ppath, &prereg, err)))
            goto out;
        for (int i = 0; i < e.n_checks; i++) {
            if ((rc = nb_check_eval(&e.checks[i], &s, &results[i], err)))
                goto out;
            reg[i] = nb_prereg_status(&prereg, &e.checks[i]);
            results[i].post_hoc = reg[i] != NB_REG_OK;
            res->checks_pass += results[i].outcome == NB_OUT_PASS;
        }
        res->checks_total = e.n_checks;
        res->verdict = nb_verdict_of(e.checks, results, e.n_checks, complete);
        /* the archive of these runs; its meta facts say when, by what and
         * where they were made (not when this report was written) */
        if ((rc = nb_archive_build(&s, have_old ? &old : NULL, &arch, err)))
            goto out;
        built = true;
        struct nb_archive_facts facts;
        nb_archive_facts(&arch, &facts);
        /* never an archive of fewer finished runs over one of more (runs
         * that failed here, a config that lost runs) */
        size_t fin_new = nb_archive_finished(&arch), fin_old = 0;
        if (have_old)
            fin_old = nb_archive_finished(&old);
        save_archive = arch.n_runs > 0 && (!have_old || fin_new >= fin_old);
        if (have_old && fin_new < fin_old)
            say(o, "%s kept as it is: it has %zu finished runs, these results %zu", adir,
                fin_old, fin_new);
        struct nb_report_in in = {.e = &e, .s = &s, .results = results, .figs = figs,
                                  .cfgs = rcfg, .quick = o->quick, .verdict = res->verdict,
                                  .complete = complete, .tables_dir = "tables", .command = cmd,
                                  .reg = reg, .prereg = &prereg,
                                  .when = facts.when[0] ? facts.when : NULL,
                                  .version = facts.version, .machine = facts.machine,
                                  .n_test = facts.n_test};
        char path[PATH_SZ + 300];
        snprintf(path, sizeof path, "%s/report.md", stage);
        if ((rc = nb_report_write(path, &in, err)))
            goto out;
        snprintf(path, sizeof path, "%s/verdict.txt", stage);
        if ((rc = nb_verdict_write(path, &in, err)))
            goto out;
    }
    /* everything is written: into place */
    {
        char final[PATH_SZ + 300], sdir[PATH_SZ + 300];
        snprintf(final, sizeof final, "%s/tables", report_dir);
        if ((rc = nb_mkdirs(final, err)))
            goto out;
        for (int i = 0; nb_sum_table_files[i]; i++)
            if ((rc = stage_commit(tdir, final, nb_sum_table_files[i], err)))
                goto out;
        if (o->figures) {
            snprintf(final, sizeof final, "%s/figures", report_dir);
            snprintf(sdir, sizeof sdir, "%s/figures", stage);
            if ((rc = nb_mkdirs(final, err)))
                goto out;
            for (int i = 0; i < e.n_figs; i++)
                for (int k = 0; fig_sfx[k]; k++) {
                    char name[400];
                    snprintf(name, sizeof name, "%.300s.%s", e.figs[i].name, fig_sfx[k]);
                    if ((rc = stage_commit(sdir, final, name, err)))
                        goto out;
                }
        }
        if (o->report) {
            if ((rc = stage_commit(stage, report_dir, "report.md", err)) ||
                (rc = stage_commit(stage, report_dir, "verdict.txt", err)))
                goto out;
            if (save_archive && (rc = nb_archive_save(&arch, adir, err)))
                goto out;
        }
    }
    if (!o->report)
        goto out;
    snprintf(res->report, sizeof res->report, "%.2000s/report.md", report_dir);
    char edir[PATH_SZ];
    dir_of(epath, edir, sizeof edir);
    if ((rc = nb_index_write(root, edir, o->quick, err)))
        goto out;
    snprintf(res->index, sizeof res->index, "%.2000s/index.md", root);
out:
    if (staged)
        stage_remove(stage);
    if (have_old)
        nb_archive_free(&old);
    if (built)
        nb_archive_free(&arch);
    for (int i = 0; i < e.n_checks && results; i++)
        nb_check_result_free(&results[i]);
    free(results);
    free(figs), free(fig_file), free(fig_table), free(fig_why), free(rcfg), free(reg);
    nb_prereg_free(&prereg);
    for (int i = 0; cr && i < n; i++)
        if (cr[i].loaded)
            nb_sweep_free(&cr[i].sw);
    free(cr);
    nb_summary_free(&s);
    nb_experiment_free(&e);
    return rc;
}
