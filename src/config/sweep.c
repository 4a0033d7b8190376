/* src/config/sweep.c - see sweep.h. */
#define _GNU_SOURCE /* qsort_r */
#include "config/sweep.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/text.h"
#include "layers/norm.h"

/* The most runs a sweep may have (the fuzz build lowers it: expanding
 * 10^5 runs under the sanitizers outlasts the fuzzer's time limit). */
#ifndef NB_MAX_RUNS
#define NB_MAX_RUNS 100000
#endif

struct nb_sweep_store {
    struct nb_config cfg;
    struct nb_val *defvals;  /* [nb_key_count()] */
    struct nb_val **setvals; /* [nb_key_count()]: one per element, or NULL */
    const struct nb_val **slots; /* n_runs x nb_key_count() */
    struct nb_val name_val;
    char *name;
};

/* A product dimension: one axis, or a zip group of axes. */
struct dim {
    int n_members;
    const int *members; /* key indices */
    int single;         /* storage when n_members == 1 */
    int n_vals;
    long seq;
};

/* ---- canonical text ----------------------------------------------------- */


/* Keys whose value changes nothing in a given run: the identity takes
 * their default instead, so such runs share the run_id of the run with
 * the default (and runs at the default keep the ids they always had).
 *   train.threads            BLAS threads never change results
 *   model.bias_before_norm   no norm follows a conv/linear layer (no norm,
 *                            or post placement), except in the dln, whose
 *                            linear layers take it regardless
 *   model.dropout_place      no dropout (dropout = 0)
 *   norm.noise_eval          no noise (noisy = false)
 *   norm.renorm_momentum     no batch renormalization (renorm = false)
 *   norm.frozen_from         no frozen BN (frozen = false) */
static bool is(const struct nb_run *run, const char *sec, const char *key, const char *v)
{
    return !strcmp(nb_run_get_str(run, sec, key), v);
}

static bool no_op(const struct nb_run *run, const struct nb_key *k)
{
    if (!strcmp(k->section, "train") && !strcmp(k->key, "threads"))
        return true;
    if (!strcmp(k->section, "model") && !strcmp(k->key, "bias_before_norm"))
        return !is(run, "model", "arch", "dln") &&
               (is(run, "norm", "type", "none") || is(run, "model", "placement", "post"));
    if (!strcmp(k->section, "model") && !strcmp(k->key, "dropout_place"))
        return nb_run_get_double(run, "model", "dropout") == 0;
    if (!strcmp(k->section, "norm") && !strcmp(k->key, "noise_eval"))
        return is(run, "norm", "noisy", "false");
    if (!strcmp(k->section, "norm") && !strcmp(k->key, "renorm_momentum"))
        return is(run, "norm", "renorm", "false");
    if (!strcmp(k->section, "norm") && !strcmp(k->key, "frozen_from"))
        return is(run, "norm", "frozen", "false");
    return false;
}

/* The identity's text of key k, whose text in run is v: the default for
 * a no-op key; in the Keras momentum convention the convention as pytorch
 * and the momenta as the PyTorch values the layer computes with
 * (nb_norm_momentum_from_keras, written in buf), so that momentum = 0.99
 * with keras and 0.01 with pytorch are one run. */
static const char *identity_text(const struct nb_run *run, const struct nb_key *k,
                                 const char *v, char *buf, size_t size)
{
    if (no_op(run, k))
        return k->def;
    bool conv = !strcmp(k->section, "norm") && !strcmp(k->key, "momentum_convention");
    bool mom = nb_norm_key_is_momentum(k->section, k->key);
    if (!(conv || mom) ||
        !is(run, "norm", "momentum_convention", "keras"))
        return v;
    if (conv)
        return "pytorch";
    if (k->word && !strcmp(v, k->word)) /* momentum = none: no convention */
        return v;
    return nb_format_double(nb_norm_momentum_from_keras(strtod(v, NULL)), buf, size);
}

static char *canonical(const struct nb_run *run, int identity)
{
    struct nb_text b = {0};
    const char *sec = NULL;
    nb_text_puts(&b, "");
    for (int i = 0; i < nb_key_count(); i++) {
        const struct nb_key *k = nb_key_at(i);
        if (k->flags & NB_KF_STRUCT) /* zip / exclude: no value (vals[i] NULL) */
            continue;
        char buf[40];
        const char *v = run->vals[i]->text;
        if (identity)
            v = identity_text(run, k, v, buf, sizeof buf);
        if ((identity && (k->flags & NB_KF_META)) ||
            (identity && (k->flags & NB_KF_ADDED) && !strcmp(v, k->def)))
            continue;
        if (!sec || strcmp(sec, k->section)) {
            if (sec)
                nb_text_puts(&b, "\n");
            nb_text_puts(&b, "[");
            nb_text_puts(&b, k->section);
            nb_text_puts(&b, "]\n");
            sec = k->section;
        }
        nb_text_puts(&b, k->key);
        nb_text_puts(&b, v[0] ? " = " : " =");
        nb_text_puts(&b, v);
        nb_text_puts(&b, "\n");
    }
    if (b.failed) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

char *nb_run_canonical(const struct nb_run *run) { return canonical(run, 1); }

int nb_run_write_ini(FILE *fp, const struct nb_run *run)
{
    char *s = canonical(run, 0);
    if (!s)
        return NB_ENOMEM;
    int rc = fputs(s, fp) < 0 || ferror(fp) ? NB_EIO : 0;
    free(s);
    return rc;
}

/* ---- getters ------------------------------------------------------------ */

static int key_of(const char *section, const char *key)
{
    int idx = nb_key_lookup(section, key);
    if (idx < 0)
        fprintf(stderr, "normbench: no config key [%s] %s\n", section, key);
    NB_ASSERT(idx >= 0);
    return idx;
}

static const char *text_of(const struct nb_run *run, int idx)
{
    NB_ASSERT(run->vals[idx] != NULL);
    return run->vals[idx]->text;
}

bool nb_run_is_word(const struct nb_run *run, const char *section,
                    const char *key)
{
    int idx = key_of(section, key);
    const struct nb_key *k = nb_key_at(idx);
    return k->word && !strcmp(text_of(run, idx), k->word);
}

long long nb_run_get_int(const struct nb_run *run, const char *section,
                         const char *key)
{
    int idx = key_of(section, key);
    const struct nb_key *k = nb_key_at(idx);
    NB_ASSERT(k->type == NB_KEY_INT);
    const char *t = text_of(run, idx);
    if (k->word && !strcmp(t, k->word))
        return (long long)k->word_value;
    return strtoll(t, NULL, 10);
}

double nb_run_get_double(const struct nb_run *run, const char *section,
                         const char *key)
{
    int idx = key_of(section, key);
    const struct nb_key *k = nb_key_at(idx);
    NB_ASSERT(k->type == NB_KEY_INT || k->type == NB_KEY_FLOAT);
    const char *t = text_of(run, idx);
    if (k->word && !strcmp(t, k->word))
        return k->word_value;
    return strtod(t, NULL);
}

bool nb_run_get_bool(const struct nb_run *run, const char *section,
                     const char *key)
{
    int idx = key_of(section, key);
    NB_ASSERT(nb_key_at(idx)->type == NB_KEY_BOOL);
    return !strcmp(text_of(run, idx), "true");
}

int nb_run_get_enum(const struct nb_run *run, const char *section,
                    const char *key)
{
    int idx = key_of(section, key);
    const struct nb_key *k = nb_key_at(idx);
    NB_ASSERT(k->type == NB_KEY_ENUM);
    const char *t = text_of(run, idx);
    int i = nb_name_index(k->enum_values, t);
    NB_ASSERT(i >= 0 && "enum value not in the table");
    return i;
}

const char *nb_run_get_str(const struct nb_run *run, const char *section,
                           const char *key)
{
    return text_of(run, key_of(section, key));
}

int nb_run_get_int_list(const struct nb_run *run, const char *section,
                        const char *key, long long *out, int max)
{
    int idx = key_of(section, key);
    NB_ASSERT(nb_key_at(idx)->type == NB_KEY_INT_LIST);
    const char *p = text_of(run, idx);
    int n = 0;
    while (*p) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p)
            break;
        if (n < max)
            out[n] = v;
        n++;
        p = end;
    }
    return n;
}

int nb_run_get_double_list(const struct nb_run *run, const char *section,
                           const char *key, double *out, int max)
{
    int idx = key_of(section, key);
    NB_ASSERT(nb_key_at(idx)->type == NB_KEY_FLOAT_LIST);
    const char *p = text_of(run, idx);
    int n = 0;
    while (*p) {
        char *end;
        double v = strtod(p, &end);
        if (end == p)
            break;
        if (n < max)
            out[n] = v;
        n++;
        p = end;
    }
    return n;
}

/* ---- checks ------------------------------------------------------------- */

int nb_run_error(const struct nb_run *run, struct nb_error *err,
                 const char *section, const char *key, const char *fmt, ...)
{
    int idx = key_of(section, key);
    const struct nb_val *v = run->vals[idx];
    va_list ap;
    va_start(ap, fmt);
    nb_error_vset(err, NB_EINVAL, v ? v->file : NULL, v ? v->line : 0, fmt, ap);
    va_end(ap);
    return NB_EINVAL;
}

int nb_run_check_builtin(const struct nb_run *run, struct nb_error *err)
{
    if (nb_run_get_int(run, "train", "epochs") == 0 &&
        nb_run_get_int(run, "train", "max_steps") == 0 &&
        !nb_run_get_str(run, "model", "init_from")[0]) {
        nb_run_error(run, err, "train", "epochs",
                     "nothing to train: [train] epochs and max_steps are both 0");
        return nb_error_hint(err, "with [model] init_from, a run of no steps evaluates "
                                  "the loaded weights");
    }
    if (nb_run_get_bool(run, "probe", "landscape") &&
        nb_run_get_double(run, "probe", "eta_min") >
            nb_run_get_double(run, "probe", "eta_max"))
        return nb_run_error(run, err, "probe", "eta_max",
                            "[probe] eta_min %s is larger than eta_max %s",
                            nb_run_get_str(run, "probe", "eta_min"),
                            nb_run_get_str(run, "probe", "eta_max"));
    if (!strcmp(nb_run_get_str(run, "data", "standardize"), "given")) {
        double dummy;
        int nm = nb_run_get_double_list(run, "data", "mean", &dummy, 0);
        int ns = nb_run_get_double_list(run, "data", "std", &dummy, 0);
        if (nm == 0 || nm != ns)
            return nb_run_error(run, err, "data", "standardize",
                                "standardize = given needs [data] mean and std "
                                "with one value per channel each (got %d and %d)",
                                nm, ns);
    }
    if (!strcmp(nb_run_get_str(run, "model", "arch"), "mlp") &&
        !strcmp(nb_run_get_str(run, "norm", "type"), "instance"))
        return nb_run_error(run, err, "norm", "type",
                            "instance norm is undefined on an mlp (one element "
                            "per channel)");
    if (!strcmp(nb_run_get_str(run, "optim", "schedule"), "multistep") &&
        !nb_run_get_str(run, "optim", "milestones")[0])
        return nb_run_error(run, err, "optim", "schedule",
                            "schedule = multistep needs [optim] milestones");
    return 0;
}

/* Appends " (run K: k=v ...)" to err->msg so a cross-key error names the
 * combination that failed. */
static void add_run_context(const struct nb_run *run, struct nb_error *err)
{
    if (!err || run->n_swept == 0)
        return;
    size_t n = strlen(err->msg), size = sizeof err->msg;
    n += (size_t)snprintf(err->msg + n, n < size ? size - n : 0, " (run %zu:",
                          run->index);
    for (int i = 0; i < run->n_swept && n < size; i++) {
        const struct nb_key *k = nb_key_at(run->swept[i]);
        n += (size_t)snprintf(err->msg + n, size - n, " %s.%s=%s", k->section,
                              k->key, run->vals[run->swept[i]]->text);
    }
    if (n < size)
        snprintf(err->msg + n, size - n, ")");
}

/* ---- expansion ---------------------------------------------------------- */

static int rule_matches(const struct nb_rule *r, const struct nb_val **vals)
{
    for (int t = 0; t < r->n_terms; t++) {
        const struct nb_rule_term *term = &r->terms[t];
        const char *v = vals[term->key]->text;
        int in = 0;
        for (int j = 0; j < term->n_vals && !in; j++)
            in = !strcmp(v, term->vals[j]);
        if (in == term->negate)
            return 0;
    }
    return 1;
}

static int cmp_dim(const void *a, const void *b)
{
    const struct dim *x = a, *y = b;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

static char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    s = s ? s + 1 : path;
    char *name = strdup(*s ? s : "experiment");
    if (!name)
        return NULL;
    char *dot = strrchr(name, '.');
    if (dot && dot != name)
        *dot = '\0';
    for (char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' || *p == '-'))
            *p = '_';
    return name;
}

static int cmp_run_hash(const void *a, const void *b)
{
    const struct nb_run *const *x = a, *const *y = b;
    uint64_t hx = (*x)->hash, hy = (*y)->hash;
    return (hx > hy) - (hx < hy);
}

/* Builds the per-key value records (defaults and every element). */
static int build_values(struct nb_sweep *sw, struct nb_error *err)
{
    struct nb_sweep_store *st = sw->store;
    struct nb_config *cfg = &st->cfg;
    st->defvals = calloc((size_t)nb_key_count(), sizeof *st->defvals);
    st->setvals = calloc((size_t)nb_key_count(), sizeof *st->setvals);
    if (!st->defvals || !st->setvals)
        return nb_error_oom(err);
    for (int i = 0; i < nb_key_count(); i++) {
        st->defvals[i] = (struct nb_val){nb_key_at(i)->def, cfg->path, 0};
        const struct nb_config_val *cv = &cfg->set[i];
        if (!cv->value)
            continue;
        st->setvals[i] = calloc((size_t)cv->n_items, sizeof **st->setvals);
        if (!st->setvals[i])
            return nb_error_oom(err);
        for (int j = 0; j < cv->n_items; j++)
            st->setvals[i][j] = (struct nb_val){cv->items[j], cv->file,
                                                cv->item_line[j]};
    }
    int iname = nb_key_lookup("experiment", "name");
    const struct nb_config_val *nv = &cfg->set[iname];
    if (!nv->value || !nv->items[0][0]) {
        st->name = base_name(cfg->path);
        if (!st->name)
            return nb_error_oom(err);
        st->name_val = (struct nb_val){st->name, cfg->path,
                                       nv->value ? nv->line : 0};
    }
    return 0;
}

/* Ordering of value positions by the tuple of the axes they index
 * (qsort_r's context: the config and the axes). */
struct tuple_ctx {
    const struct nb_config *cfg;
    const int *keys;
    int n;
};

static int cmp_tuple(const void *pa, const void *pb, void *ctx)
{
    const struct tuple_ctx *t = ctx;
    int a = *(const int *)pa, b = *(const int *)pb;
    for (int j = 0; j < t->n; j++) {
        int c = strcmp(t->cfg->set[t->keys[j]].items[a], t->cfg->set[t->keys[j]].items[b]);
        if (c)
            return c;
    }
    return (a > b) - (a < b); /* stable: equal tuples in list order */
}

/* Do the tuples at positions a and b differ (1) or not (0)? */
static int tuples_differ(const struct tuple_ctx *t, int a, int b)
{
    for (int j = 0; j < t->n; j++)
        if (strcmp(t->cfg->set[t->keys[j]].items[a], t->cfg->set[t->keys[j]].items[b]))
            return 1;
    return 0;
}

/* The earliest repeat among the tuples of the n axes keys (all of one
 * length): 0, or 1 with *later the first position whose tuple occurred
 * before and *first that earlier position; -1 out of memory.  Sorted,
 * not pairwise: a range may hold 10^5 values. */
static int find_repeat(const struct nb_config *cfg, const int *keys, int n, int *first,
                       int *later)
{
    int len = cfg->set[keys[0]].n_items;
    if (len < 2)
        return 0;
    int *ord = malloc((size_t)len * sizeof *ord);
    if (!ord)
        return -1;
    for (int i = 0; i < len; i++)
        ord[i] = i;
    struct tuple_ctx t = {cfg, keys, n};
    qsort_r(ord, (size_t)len, sizeof *ord, cmp_tuple, &t);
    int found = 0;
    /* equal tuples are adjacent, in list order: a run's first element is
     * the first occurrence, its second the earliest repeat */
    for (int i = 1; i < len; i++)
        if (!tuples_differ(&t, ord[i - 1], ord[i]) && (i < 2 || tuples_differ(&t, ord[i - 2], ord[i])) &&
            (!found || ord[i] < *later)) {
            *first = ord[i - 1];
            *later = ord[i];
            found = 1;
        }
    free(ord);
    return found;
}

/* Key k's list (not zipped) names every value once: NB_EINVAL at the
 * later line of a repeated one, else a status. */
static int distinct_values(const struct nb_config *cfg, int k, struct nb_error *err)
{
    const struct nb_config_val *cv = &cfg->set[k];
    const struct nb_key *key = nb_key_at(k);
    int a, b, r = find_repeat(cfg, &k, 1, &a, &b);
    if (r < 0)
        return nb_error_oom(err);
    if (r)
        return nb_error_set(err, NB_EINVAL, cv->file, cv->item_line[b],
                            "duplicate value %s in the list for [%s] %s (also at line %d)",
                            cv->items[b], key->section, key->key, cv->item_line[a]);
    return 0;
}

/* Zip zp's axes name every combination once (a key may repeat a value,
 * as in arms that share a batch size): NB_EINVAL at the zip line for a
 * repeated one, else a status. */
static int distinct_tuples(const struct nb_config *cfg, const struct nb_zip *zp,
                           struct nb_error *err)
{
    int a, b, r = find_repeat(cfg, zp->keys, zp->n, &a, &b);
    if (r < 0)
        return nb_error_oom(err);
    if (r) {
        const struct nb_key *k0 = nb_key_at(zp->keys[0]);
        int rc = nb_error_set(err, NB_EINVAL, zp->file, zp->line,
                              "zip: combinations %d and %d are the same (%s.%s = %s, ...)", a + 1,
                              b + 1, k0->section, k0->key, cfg->set[zp->keys[0]].items[a]);
        nb_error_hint(err, "zipped axes may repeat a value, but each position must make a "
                           "different combination");
        return rc;
    }
    return 0;
}

/* The sweep's axes as dims (each zip one dim, each other list key one,
 * seeds none) in product order, after checking the zips and that no
 * combination or value is listed twice; n_dims gets their count; returns
 * a status. */
static int build_dims(const struct nb_config *cfg, struct dim *dims, int *n_dims,
                      struct nb_error *err)
{
    int iseeds = nb_key_lookup("experiment", "seeds");
    int *zip_of = malloc((size_t)nb_key_count() * sizeof *zip_of);
    int rc = 0, nd = 0;
    if (!zip_of)
        return nb_error_oom(err);
    for (int i = 0; i < nb_key_count(); i++)
        zip_of[i] = -1;
    for (int z = 0; z < cfg->n_zips; z++) {
        const struct nb_zip *zp = &cfg->zips[z];
        for (int j = 0; j < zp->n; j++) {
            int k = zp->keys[j];
            const struct nb_key *key = nb_key_at(k);
            if (!cfg->set[k].is_axis) {
                rc = nb_error_set(err, NB_EINVAL, zp->file, zp->key_line[j],
                                  "zip: %s.%s is not a sweep axis (it has a "
                                  "single value)",
                                  key->section, key->key);
                goto out;
            }
            if (zip_of[k] >= 0) {
                rc = nb_error_set(err, NB_EINVAL, zp->file, zp->key_line[j],
                                  "zip: %s.%s is already zipped at %s:%d", key->section, key->key,
                                  cfg->zips[zip_of[k]].file, cfg->zips[zip_of[k]].line);
                goto out;
            }
            zip_of[k] = z;
            if (cfg->set[k].n_items != cfg->set[zp->keys[0]].n_items) {
                const struct nb_key *k0 = nb_key_at(zp->keys[0]);
                rc = nb_error_set(err, NB_EINVAL, zp->file, zp->line,
                                  "zip: %s.%s has %d values but %s.%s has %d", k0->section, k0->key,
                                  cfg->set[zp->keys[0]].n_items, key->section, key->key,
                                  cfg->set[k].n_items);
                nb_error_hint(err, "zipped axes advance together and need "
                                   "the same number of values");
                goto out;
            }
        }
        if ((rc = distinct_tuples(cfg, zp, err)))
            goto out;
        struct dim *d = &dims[nd++];
        d->n_members = zp->n;
        d->members = zp->keys;
        d->n_vals = cfg->set[zp->keys[0]].n_items;
        d->seq = cfg->set[zp->keys[0]].seq;
        for (int j = 1; j < zp->n; j++)
            if (cfg->set[zp->keys[j]].seq < d->seq)
                d->seq = cfg->set[zp->keys[j]].seq;
    }
    for (int i = 0; i < nb_key_count(); i++) {
        if (!cfg->set[i].value || !cfg->set[i].is_axis || zip_of[i] >= 0)
            continue;
        if ((rc = distinct_values(cfg, i, err)))
            goto out;
        if (i == iseeds)
            continue;
        struct dim *d = &dims[nd++];
        d->single = i;
        d->n_members = 1;
        d->n_vals = cfg->set[i].n_items;
        d->seq = cfg->set[i].seq;
    }
    qsort(dims, (size_t)nd, sizeof *dims, cmp_dim);
    for (int i = 0; i < nd; i++)
        if (dims[i].n_members == 1)
            dims[i].members = &dims[i].single; /* qsort moved it */
    *n_dims = nd;
out:
    free(zip_of);
    return rc;
}

/* Fills st->slots with the values of every combination no exclude rule
 * drops: an odometer over dims (first outermost), seeds innermost, each
 * key not on an axis at base; n_out gets their count; returns a status
 * (NB_EINVAL for too many combinations, or none left). */
static int enumerate(struct nb_sweep *sw, const struct dim *dims, int n_dims,
                     const struct nb_val **base, size_t *n_out, struct nb_error *err)
{
    struct nb_sweep_store *st = sw->store;
    const struct nb_config *cfg = &st->cfg;
    int iseeds = nb_key_lookup("experiment", "seeds");
    int n_seeds = cfg->set[iseeds].value ? cfg->set[iseeds].n_items : 1;
    double total = n_seeds;
    for (int d = 0; d < n_dims; d++)
        total *= dims[d].n_vals;
    if (total > NB_MAX_RUNS)
        return nb_error_set(err, NB_EINVAL, cfg->path, 0,
                            "the sweep has %.0f combinations (more than %d)", total, NB_MAX_RUNS);
    size_t *ctr = calloc((size_t)nb_key_count() + 1, sizeof *ctr);
    const struct nb_val **cur = calloc((size_t)nb_key_count(), sizeof *cur);
    size_t n_combos = (size_t)total, n_runs = 0, cap_runs = 0;
    int rc = 0;
    if (!ctr || !cur) {
        rc = nb_error_oom(err);
        goto out;
    }
    for (size_t c = 0; c < n_combos; c++) {
        size_t rem = c;
        int s = (int)(rem % (size_t)n_seeds);
        rem /= (size_t)n_seeds;
        for (int d = n_dims - 1; d >= 0; d--) {
            ctr[d] = rem % (size_t)dims[d].n_vals;
            rem /= (size_t)dims[d].n_vals;
        }
        memcpy(cur, base, (size_t)nb_key_count() * sizeof *cur);
        for (int d = 0; d < n_dims; d++)
            for (int j = 0; j < dims[d].n_members; j++) {
                int k = dims[d].members[j];
                cur[k] = &st->setvals[k][ctr[d]];
            }
        if (cfg->set[iseeds].value)
            cur[iseeds] = &st->setvals[iseeds][s];
        int drop = 0;
        for (int r = 0; r < cfg->n_rules && !drop; r++)
            drop = rule_matches(&cfg->rules[r], cur);
        if (drop)
            continue;
        if (n_runs == cap_runs) {
            size_t cap = cap_runs ? 2 * cap_runs : 16;
            const struct nb_val **sl = realloc(st->slots, cap * (size_t)nb_key_count() * sizeof *sl);
            if (!sl) {
                rc = nb_error_oom(err);
                goto out;
            }
            st->slots = sl;
            cap_runs = cap;
        }
        memcpy(st->slots + n_runs * (size_t)nb_key_count(), cur, (size_t)nb_key_count() * sizeof *cur);
        n_runs++;
    }
    if (n_runs == 0)
        rc = nb_error_set(err, NB_EINVAL, cfg->rules[0].file, cfg->rules[0].line,
                          "exclude rules remove every combination: the sweep "
                          "has no runs");
    *n_out = n_runs;
out:
    free(ctr);
    free(cur);
    return rc;
}

/* Makes sw->runs from the n_runs slots: values, seed, the built-in checks
 * and check (when non-NULL), hash and run_id; returns a status, err
 * naming the run that failed a check. */
static int make_runs(struct nb_sweep *sw, size_t n_runs, nb_run_check_fn check,
                     struct nb_error *err)
{
    int iseeds = nb_key_lookup("experiment", "seeds");
    sw->runs = calloc(n_runs, sizeof *sw->runs);
    if (!sw->runs)
        return nb_error_oom(err);
    sw->n_runs = n_runs;
    for (size_t i = 0; i < n_runs; i++) {
        struct nb_run *run = &sw->runs[i];
        run->index = i;
        run->vals = sw->store->slots + i * (size_t)nb_key_count();
        run->n_swept = sw->n_swept;
        run->swept = sw->swept;
        run->seed = strtoull(run->vals[iseeds]->text, NULL, 10);
        int rc;
        if ((rc = nb_run_check_builtin(run, err)) || (check && (rc = check(run, err)))) {
            add_run_context(run, err);
            return rc;
        }
        char *text = nb_run_canonical(run);
        if (!text)
            return nb_error_oom(err);
        run->hash = nb_fnv1a64(text, strlen(text));
        free(text);
        snprintf(run->run_id, sizeof run->run_id, "%016" PRIx64, run->hash);
    }
    return 0;
}

/* Distinct configurations give distinct ids; checks it anyway: returns
 * NB_EINVAL when two runs share a run_id (err says in which keys, which
 * change nothing, they differ), else a status. */
static int check_run_ids(const struct nb_sweep *sw, struct nb_error *err)
{
    size_t n_runs = sw->n_runs;
    const struct nb_run **order = malloc(n_runs * sizeof *order);
    int rc = 0;
    if (!order)
        return nb_error_oom(err);
    for (size_t i = 0; i < n_runs; i++)
        order[i] = &sw->runs[i];
    qsort(order, n_runs, sizeof *order, cmp_run_hash);
    for (size_t i = 1; i < n_runs && !rc; i++) {
        if (order[i]->hash != order[i - 1]->hash)
            continue;
        size_t a = order[i - 1]->index, b = order[i]->index;
        /* the keys in which they differ change nothing (no_op) */
        char diff[512] = "";
        size_t dl = 0;
        for (int k = 0; k < nb_key_count() && dl < sizeof diff; k++) {
            const struct nb_key *key = nb_key_at(k);
            if (key->flags & (NB_KF_STRUCT | NB_KF_META) || !strcmp(key->section, "experiment"))
                continue;
            const char *va = order[i - 1]->vals[k]->text, *vb = order[i]->vals[k]->text;
            if (strcmp(va, vb))
                dl += (size_t)snprintf(diff + dl, sizeof diff - dl, "%s%s.%s = %s / %s",
                                       dl ? ", " : "", key->section, key->key, va, vb);
        }
        rc = nb_error_set(err, NB_EINVAL, sw->store->cfg.path, 0,
                          "runs %zu and %zu have the same run_id %s%s%s%s", a < b ? a : b,
                          a < b ? b : a, order[i]->run_id, diff[0] ? ": they differ only in " : "",
                          diff, diff[0] ? ", which make the same run" : "");
        if (diff[0])
            nb_error_hint(err, "sweep only settings that change the run (threads never "
                               "does; bias_before_norm needs a norm after the layer, "
                               "dropout_place needs dropout, noise_eval needs noisy, "
                               "renorm_momentum needs renorm, frozen_from needs "
                               "frozen; Keras momentum m is "
                               "PyTorch 1 - m)");
    }
    free(order);
    return rc;
}

/* Expands the config in sw's store into sw's runs: the values, the axes,
 * the combinations, the runs with their checks and run_ids; returns a
 * status (sweep_load frees sw on failure). */
static int expand(struct nb_sweep *sw, nb_run_check_fn check, struct nb_error *err)
{
    struct nb_sweep_store *st = sw->store;
    struct nb_config *cfg = &st->cfg;
    int iseeds = nb_key_lookup("experiment", "seeds");
    int iname = nb_key_lookup("experiment", "name");
    int rc = build_values(sw, err);
    if (rc)
        return rc;

    /* base values and axes */
    const struct nb_val **base = calloc((size_t)nb_key_count(), sizeof *base);
    struct dim *dims = calloc((size_t)nb_key_count(), sizeof *dims);
    int n_dims = 0;
    size_t n_runs = 0;
    if (!base || !dims) {
        rc = nb_error_oom(err);
        goto out;
    }
    for (int i = 0; i < nb_key_count(); i++) {
        if (nb_key_at(i)->flags & NB_KF_STRUCT)
            continue;
        base[i] = st->setvals[i] ? &st->setvals[i][0] : &st->defvals[i];
    }
    if (st->name)
        base[iname] = &st->name_val;
    if ((rc = build_dims(cfg, dims, &n_dims, err)))
        goto out;

    /* swept keys, product order, seeds last */
    sw->swept = malloc(((size_t)nb_key_count() + 1) * sizeof *sw->swept);
    if (!sw->swept) {
        rc = nb_error_oom(err);
        goto out;
    }
    for (int d = 0; d < n_dims; d++)
        for (int j = 0; j < dims[d].n_members; j++)
            sw->swept[sw->n_swept++] = dims[d].members[j];
    if (cfg->set[iseeds].value && cfg->set[iseeds].is_axis)
        sw->swept[sw->n_swept++] = iseeds;

    if ((rc = enumerate(sw, dims, n_dims, base, &n_runs, err)) ||
        (rc = make_runs(sw, n_runs, check, err)))
        goto out;
    rc = check_run_ids(sw, err);
out:
    free(base);
    free(dims);
    return rc;
}

/* nb_sweep_load_checked and nb_sweep_load_text: text NULL reads path */
static int sweep_load(const char *path, const char *text, nb_run_check_fn check,
                      struct nb_sweep *sweep, struct nb_error *err)
{
    memset(sweep, 0, sizeof *sweep);
    sweep->path = strdup(path);
    sweep->store = calloc(1, sizeof *sweep->store);
    if (!sweep->path || !sweep->store) {
        nb_sweep_free(sweep);
        return nb_error_oom(err);
    }
    int rc = text ? nb_config_load_text(path, text, &sweep->store->cfg, err)
                  : nb_config_load(path, &sweep->store->cfg, err);
    if (!rc)
        rc = expand(sweep, check, err);
    if (rc)
        nb_sweep_free(sweep);
    return rc;
}

int nb_sweep_load_checked(const char *path, nb_run_check_fn check,
                          struct nb_sweep *sweep, struct nb_error *err)
{
    return sweep_load(path, NULL, check, sweep, err);
}

int nb_sweep_load_text(const char *name, const char *text, nb_run_check_fn check,
                       struct nb_sweep *sweep, struct nb_error *err)
{
    return sweep_load(name, text, check, sweep, err);
}

int nb_sweep_load(const char *path, struct nb_sweep *sweep,
                  struct nb_error *err)
{
    return nb_sweep_load_checked(path, NULL, sweep, err);
}

void nb_sweep_free(struct nb_sweep *sweep)
{
    if (!sweep)
        return;
    struct nb_sweep_store *st = sweep->store;
    if (st) {
        if (st->setvals)
            for (int i = 0; i < nb_key_count(); i++)
                free(st->setvals[i]);
        free(st->setvals);
        free(st->defvals);
        free(st->slots);
        free(st->name);
        nb_config_free(&st->cfg);
        free(st);
    }
    free(sweep->runs);
    free(sweep->swept);
    free(sweep->path);
    memset(sweep, 0, sizeof *sweep);
}

void nb_sweep_print_list(FILE *fp, const struct nb_sweep *sweep)
{
    for (size_t i = 0; i < sweep->n_runs; i++) {
        const struct nb_run *run = &sweep->runs[i];
        fprintf(fp, "%zu\t%s", run->index, run->run_id);
        for (int j = 0; j < run->n_swept; j++) {
            const struct nb_key *k = nb_key_at(run->swept[j]);
            fprintf(fp, "\t%s.%s=%s", k->section, k->key,
                    run->vals[run->swept[j]]->text);
        }
        fputc('\n', fp);
    }
}

long nb_sweep_find(const struct nb_sweep *sweep, const char *run_id)
{
    for (size_t i = 0; i < sweep->n_runs; i++)
        if (!strcmp(sweep->runs[i].run_id, run_id))
            return (long)i;
    return -1;
}
