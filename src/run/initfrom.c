/* src/run/initfrom.c - [model] init_from: which run of another experiment
 * a run starts from (runner.h), found among that experiment's run
 * directories with the readers the runner and summarize use (DONE for
 * the status, config.ini through nb_sweep_load for the values). */
#include "run/runner.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/checkpoint.h"

#include "run/runner_impl.h"

/* Whether path is a directory. */
static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Whether s names a run directory: 16 lowercase hex digits. */
static bool is_run_dir_name(const char *s)
{
    if (strlen(s) != 16)
        return false;
    for (int i = 0; i < 16; i++)
        if (!strchr("0123456789abcdef", s[i]))
            return false;
    return true;
}

/* qsort order of strings (run directory names). */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The run directories of exp (sorted names, malloc'd; *n of them), or
 * NULL with *n = 0 (none, or an error: NB_EIO / NB_ENOMEM in *rc). */
static char **run_dirs(const char *exp, size_t *n, int *rc, struct nb_error *err)
{
    *n = 0;
    *rc = 0;
    DIR *d = opendir(exp);
    if (!d) {
        *rc = nb_error_set(err, NB_EIO, exp, 0, "cannot read: %s", strerror(errno));
        return NULL;
    }
    char **v = NULL;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!is_run_dir_name(e->d_name))
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            char **p = realloc(v, cap * sizeof *p);
            if (!p)
                break;
            v = p;
        }
        if (!(v[*n] = strdup(e->d_name)))
            break;
        (*n)++;
    }
    bool whole = e == NULL;
    closedir(d);
    if (!whole) {
        for (size_t i = 0; i < *n; i++)
            free(v[i]);
        free(v);
        *n = 0;
        *rc = nb_error_oom(err);
        return NULL;
    }
    if (*n)
        qsort(v, *n, sizeof *v, cmp_str);
    return v;
}

/* What a scan of an experiment's runs found. */
struct scan {
    size_t runs, done, with_weights; /* run directories; done; of those with weights */
    size_t fit_values;               /* ... with the selector's values, any seed */
    size_t matched;
    char first[17], ids[200];        /* the first match; the first few, listed */
    char seeds[200];                 /* seeds of the runs with the values */
    struct nb_sweep first_sw;        /* config.ini of the first match */
    bool *differ;                    /* [nb_key_count()]: a match differs from it */
};

/* Adds run directory exp/id to s (done, with weights, matching sel for
 * seed); returns a status (out of memory). */
static int scan_one(struct scan *s, const char *exp, const char *id,
                    const struct nb_selector *sel, uint64_t seed, struct nb_error *err)
{
    char dir[PATH_SZ], path[PATH_SZ + 32];
    rn_pathf(dir, sizeof dir, "%s/%s", exp, id);
    s->runs++;
    if (rn_done_state_dir(dir, id) != NB_STATE_DONE)
        return 0;
    s->done++;
    if (access(rn_pathf(path, sizeof path, "%s/%s", dir, NB_CKPT_FILE), F_OK) != 0)
        return 0;
    s->with_weights++;
    struct nb_sweep sw;
    struct nb_error e;
    if (nb_sweep_load(rn_pathf(path, sizeof path, "%s/config.ini", dir), &sw, &e) ||
        sw.n_runs != 1) {
        nb_sweep_free(&sw); /* not a run's config: not a candidate */
        return 0;
    }
    const struct nb_run *r = &sw.runs[0];
    struct nb_selector any = *sel;
    any.names_seed = true;
    if (!nb_selector_match(&any, r, seed)) {
        nb_sweep_free(&sw);
        return 0;
    }
    size_t k = strlen(s->seeds);
    if (k + 24 < sizeof s->seeds)
        snprintf(s->seeds + k, sizeof s->seeds - k, "%s%" PRIu64, k ? ", " : "", r->seed);
    s->fit_values++;
    if (!nb_selector_match(sel, r, seed)) {
        nb_sweep_free(&sw);
        return 0;
    }
    k = strlen(s->ids);
    if (s->matched < 4 && k + 20 < sizeof s->ids)
        snprintf(s->ids + k, sizeof s->ids - k, "%s%s", k ? ", " : "", id);
    if (s->matched++ == 0) {
        snprintf(s->first, sizeof s->first, "%s", id);
        s->first_sw = sw;
        s->differ = calloc((size_t)nb_key_count(), sizeof *s->differ);
        return s->differ ? 0 : nb_error_oom(err);
    }
    for (int i = 0; i < nb_key_count(); i++)
        if (r->vals[i] && strcmp(r->vals[i]->text, s->first_sw.runs[0].vals[i]->text))
            s->differ[i] = true;
    nb_sweep_free(&sw);
    return 0;
}

/* The error of a scan that matched no run, or several; label names the
 * selector in the message ("init_from = TEXT"). */
static int scan_error(const struct scan *s, const char *exp, const char *label,
                      const struct nb_selector *sel, uint64_t seed, struct nb_error *err)
{
    const char *name = sel->experiment;
    if (s->matched > 1) {
        nb_error_set(err, NB_EINVAL, exp, 0,
                     "%s: %zu runs of experiment %s match (%s%s), it must "
                     "name one", label, s->matched, name, s->ids, s->matched > 4 ? ", ..." : "");
        char keys[300] = "";
        size_t k = 0;
        for (int i = 0, shown = 0; i < nb_key_count() && shown < 4; i++)
            if (s->differ[i] && !(nb_key_at(i)->flags & (NB_KF_META | NB_KF_STRUCT)) &&
                k < sizeof keys) {
                k += (size_t)snprintf(keys + k, sizeof keys - k, "%s%s.%s", shown ? ", " : "",
                                      nb_key_at(i)->section, nb_key_at(i)->key);
                shown++;
            }
        return nb_error_hint(err, "add KEY=VALUE for %s%s, or give %s/RUN_ID",
                             keys[0] ? "a key they differ in: " : "the keys they differ in",
                             keys, name);
    }
    if (s->done == 0) {
        nb_error_set(err, NB_ENOENT, exp, 0,
                     "%s: 0 runs of experiment %s match: none of its %zu runs "
                     "is done", label, name, s->runs);
        return nb_error_hint(err, "run `normbench reproduce %s` first (or `normbench run` "
                             "on its config)", name);
    }
    if (s->with_weights == 0) {
        nb_error_set(err, NB_ENOENT, exp, 0,
                     "%s: 0 runs of experiment %s match: none of its %zu done "
                     "runs has a %s", label, name, s->done, NB_CKPT_FILE);
        return nb_error_hint(err, "run %s with [train] save_weights = true", name);
    }
    if (s->fit_values == 0) {
        nb_error_set(err, NB_ENOENT, exp, 0,
                     "%s: 0 runs of experiment %s match: none of its %zu done "
                     "runs with weights has the values asked", label, name, s->with_weights);
        return nb_error_hint(err, "see `normbench status` or summary.csv of %s for its runs' "
                             "values", name);
    }
    nb_error_set(err, NB_ENOENT, exp, 0,
                 "%s: 0 runs of experiment %s match: %zu done run%s with "
                 "weights %s the values, none of seed %" PRIu64 " (seeds %s)", label, name,
                 s->fit_values, s->fit_values == 1 ? "" : "s",
                 s->fit_values == 1 ? "has" : "have", seed, s->seeds);
    return nb_error_hint(err, "run %s for seed %" PRIu64 ", or name the seed the runs "
                         "start from (%s/seeds=N)", name, seed, name);
}

/* nb_init_resolve (seed: the selecting run's) and nb_init_resolve_any
 * (seed NULL: runs of every seed fit); label names the selector in the
 * messages. */
static int resolve(const char *selector, const uint64_t *seed, const char *label,
                   const char *root, struct nb_init_source *src, struct nb_error *err)
{
    memset(src, 0, sizeof *src);
    struct nb_selector sel;
    int rc = nb_selector_parse(selector, NULL, 0, &sel, err);
    if (rc)
        return rc;
    if (!seed)
        sel.names_seed = true; /* nb_selector_match then leaves the seed alone */
    char exp[PATH_SZ];
    rn_pathf(exp, sizeof exp, "%s/%s", root, sel.experiment);
    snprintf(src->experiment, sizeof src->experiment, "%s", sel.experiment);
    if (!is_dir(exp)) {
        nb_error_set(err, NB_ENOENT, exp, 0,
                     "%s: experiment %s has no results (no such directory)",
                     label, sel.experiment);
        return nb_error_hint(err, "run `normbench reproduce %s` first (or `normbench run` "
                             "on its config)", sel.experiment);
    }
    if (sel.run_id[0]) {
        char dir[PATH_SZ + 32];
        rn_pathf(dir, sizeof dir, "%s/%s", exp, sel.run_id);
        if (rn_done_state_dir(dir, sel.run_id) != NB_STATE_DONE) {
            nb_error_set(err, NB_ENOENT, dir, 0,
                         "%s: the run is not done (%s)", label,
                         !is_dir(dir) ? "no such run directory"
                         : rn_done_state_dir(dir, sel.run_id) == NB_STATE_DIVERGED
                             ? "it diverged" : "no DONE");
            return nb_error_hint(err, "run `normbench reproduce %s` first (or `normbench "
                                 "run` on its config)", sel.experiment);
        }
        snprintf(src->run_id, sizeof src->run_id, "%s", sel.run_id);
        rn_pathf(src->path, sizeof src->path, "%s/%s", dir, NB_CKPT_FILE);
        return 0;
    }
    size_t n;
    char **ids = run_dirs(exp, &n, &rc, err);
    if (rc)
        return rc;
    struct scan s;
    memset(&s, 0, sizeof s);
    for (size_t i = 0; i < n && !rc; i++)
        rc = scan_one(&s, exp, ids[i], &sel, seed ? *seed : 0, err);
    if (!rc && s.matched != 1)
        rc = scan_error(&s, exp, label, &sel, seed ? *seed : 0, err);
    if (!rc) {
        snprintf(src->run_id, sizeof src->run_id, "%s", s.first);
        rn_pathf(src->path, sizeof src->path, "%s/%s/%s", exp, s.first, NB_CKPT_FILE);
    }
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    nb_sweep_free(&s.first_sw);
    free(s.differ);
    return rc;
}

int nb_init_resolve(const char *selector, uint64_t seed, const char *root,
                    struct nb_init_source *src, struct nb_error *err)
{
    char label[NB_SEL_TEXT_MAX + 16];
    snprintf(label, sizeof label, "init_from = %s", selector);
    return resolve(selector, &seed, label, root, src, err);
}

int nb_init_resolve_any(const char *selector, const char *root, struct nb_init_source *src,
                        struct nb_error *err)
{
    return resolve(selector, NULL, selector, root, src, err);
}

int nb_runner_check_sources(const struct nb_sweep *sw, const struct nb_runner_opts *o,
                            const char *const *made, int n_made, struct nb_error *err)
{
    size_t n = o->indices ? o->n_indices : sw->n_runs;
    for (size_t k = 0; k < n; k++) {
        const struct nb_run *r = &sw->runs[o->indices ? o->indices[k] : k];
        const char *text = nb_run_get_str(r, "model", "init_from");
        if (!*text)
            continue;
        struct nb_selector sel;
        struct nb_error e;
        if (nb_selector_parse(text, NULL, 0, &sel, &e))
            return nb_run_error(r, err, "model", "init_from", "%s", e.msg);
        bool here = false;
        for (int i = 0; i < n_made && !here; i++)
            here = !strcmp(made[i], sel.experiment);
        char exp[PATH_SZ];
        rn_pathf(exp, sizeof exp, "%s/%s", rn_results_root(o->results_dir, r), sel.experiment);
        if (here || is_dir(exp))
            continue;
        nb_run_error(r, err, "model", "init_from",
                     "init_from = %s: experiment %s has no results (%s does not exist)", text,
                     sel.experiment, exp);
        return nb_error_hint(err, "run `normbench reproduce %s` first (or `normbench run` on "
                             "its config), with the same results directory", sel.experiment);
    }
    return 0;
}
