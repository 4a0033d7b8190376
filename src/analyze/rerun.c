/* src/analyze/rerun.c - an experiment's reruns (rerun.h): each one's
 * archive read as a summary of the experiment's runs and its checks
 * evaluated on it. */
#include "analyze/rerun.h"
#include "analyze/report.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names of the directories in dir, sorted (*names malloc'd, each
 * too; none when dir does not exist).  0 or a negative status. */
static int list_dirs(const char *dir, char ***names, int *n, struct nb_error *err)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char path[4608];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        char **p = realloc(*names, (size_t)(*n + 1) * sizeof *p);
        char *s = strdup(de->d_name);
        if (!p || !s) {
            free(s);
            if (p)
                *names = p;
            rc = nb_error_oom(err);
            break;
        }
        *names = p;
        (*names)[(*n)++] = s;
    }
    closedir(d);
    if (!rc && *n > 1)
        qsort(*names, (size_t)*n, sizeof **names, cmp_name);
    return rc;
}

/* Loads one rerun into r (r->label and r->dir set); 0 or a status. */
static int load_one(struct nb_rerun *r, const struct nb_experiment *e, const bool *post_hoc,
                    const struct nb_sweep *const *sw, int n_sw, struct nb_error *err)
{
    const struct nb_check *checks = e->checks;
    const int n_checks = e->n_checks;
    char adir[4700];
    snprintf(adir, sizeof adir, "%s/archive", r->dir);
    int rc = nb_archive_load(adir, &r->a, err);
    if (rc == NB_ENOENT)
        return nb_error_set(err, NB_ENOENT, adir, 0,
                            "a rerun needs its runs' archive here (runs.csv, metrics.csv, "
                            "...)");
    if (rc)
        return rc;
    nb_archive_facts(&r->a, &r->facts);
    if (nb_experiment_keep_probes(e, &r->s))
        return nb_error_oom(err);
    nb_summary_set_fallback(&r->s, nb_archive_fallback, &r->a);
    /* r->dir has no run directories: every run comes from the archive */
    for (int i = 0; i < n_sw; i++)
        if ((rc = nb_summary_add_sweep(&r->s, sw[i], r->dir, err)))
            return rc;
    if ((rc = nb_summary_group(&r->s, err)))
        return rc;
    r->total = r->s.n_runs;
    for (int g = 0; g < r->s.n_groups; g++)
        r->missing += (size_t)r->s.groups[g].n_missing; /* failed or pending */
    r->results = calloc((size_t)n_checks + 1, sizeof *r->results);
    if (!r->results)
        return nb_error_oom(err);
    for (int i = 0; i < n_checks; i++) {
        if ((rc = nb_check_eval(&checks[i], &r->s, &r->results[i], err)))
            return rc;
        r->results[i].post_hoc = post_hoc[i];
        r->pass += r->results[i].outcome == NB_OUT_PASS && !post_hoc[i];
    }
    r->verdict = nb_verdict_of(checks, r->results, n_checks, r->missing == 0);
    return 0;
}

int nb_reruns_load(const char *report_dir, const struct nb_experiment *e,
                   const bool *post_hoc, const struct nb_sweep *const *sw, int n_sw,
                   struct nb_rerun **out, int *n_out, struct nb_error *err)
{
    const int n_checks = e->n_checks;
    *out = NULL;
    *n_out = 0;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/%s", report_dir, NB_RERUN_DIR);
    char **names;
    int n;
    int rc = list_dirs(dir, &names, &n, err);
    if (rc || n == 0) {
        free(names);
        return rc;
    }
    struct nb_rerun *r = calloc((size_t)n, sizeof *r);
    if (!r)
        rc = nb_error_oom(err);
    for (int i = 0; i < n && !rc; i++) {
        snprintf(r[i].label, sizeof r[i].label, "%s", names[i]);
        snprintf(r[i].dir, sizeof r[i].dir, "%s/%s", dir, names[i]);
        nb_summary_init(&r[i].s);
        *n_out = i + 1;
        rc = load_one(&r[i], e, post_hoc, sw, n_sw, err);
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    *out = r;
    if (rc) {
        nb_reruns_free(r, *n_out, n_checks);
        *out = NULL;
        *n_out = 0;
    }
    return rc;
}

void nb_reruns_free(struct nb_rerun *r, int n, int n_checks)
{
    for (int i = 0; r && i < n; i++) {
        for (int k = 0; r[i].results && k < n_checks; k++)
            nb_check_result_free(&r[i].results[k]);
        free(r[i].results);
        nb_summary_free(&r[i].s);
        nb_archive_free(&r[i].a);
    }
    free(r);
}
