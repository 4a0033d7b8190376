/* src/probe/probe.c - options, set-up, the per-step driver with its
 * save/restore, the row sink and the cost report.  See probe.h. */
#include "probe/probe_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

#define NBP_KIND_ROW_(U, l) [NB_PROBE_##U] = {#l, nbp_##l##_stats},
const struct nb_probe_kind_info nb_probe_kinds[NB_PROBE_KIND_COUNT] = {
    NB_PROBE_KINDS(NBP_KIND_ROW_)};
#undef NBP_KIND_ROW_

#define NBP_OPS_ROW_(U, l) [NB_PROBE_##U] = &nbp_##l##_ops,
static const struct nbp_ops *const kind_ops[NB_PROBE_KIND_COUNT] = {NB_PROBE_KINDS(NBP_OPS_ROW_)};
#undef NBP_OPS_ROW_

const char *const nb_probe_spacing_names[NB_SPACING_COUNT + 1] = {
    [NB_SPACING_LIN] = "lin", [NB_SPACING_LOG] = "log", [NB_SPACING_COUNT] = NULL,
};

const char *nb_probe_kind_name(enum nb_probe_kind k)
{
    return (k >= 0 && k < NB_PROBE_KIND_COUNT) ? nb_probe_kinds[k].name : NULL;
}

const char *nb_probe_spacing_name(enum nb_probe_spacing s)
{
    return (s >= 0 && s < NB_SPACING_COUNT) ? nb_probe_spacing_names[s] : NULL;
}

int nb_probe_spacing_parse(const char *s, enum nb_probe_spacing *out)
{
    int i = nb_name_index(nb_probe_spacing_names, s);
    if (i >= 0)
        *out = (enum nb_probe_spacing)i;
    return i >= 0 ? 0 : NB_EINVAL;
}

const char *const nb_hessian_mode_names[NB_HESSIAN_MODE_COUNT + 1] = {
    [NB_HESSIAN_EVAL] = "eval", [NB_HESSIAN_PROBE] = "probe", [NB_HESSIAN_MODE_COUNT] = NULL,
};

const char *const nb_hessian_hvp_names[NB_HVP_COUNT + 1] = {
    [NB_HVP_AUTO] = "auto", [NB_HVP_EXACT] = "exact", [NB_HVP_FD] = "fd",
    [NB_HVP_COUNT] = NULL,
};

#define INF HUGE_VAL
#define AT(m) NB_KEY_AT(struct nb_probe_opts, m)
const struct nb_key nb_probe_keys[] = {
    { NB_K_BOOL("probe", "landscape", "false", "loss landscape along the gradient (Santurkar)"),
      AT(landscape) },
    { NB_K_INT("probe", "landscape_every", "50", 1, 1e12, 0,
               "steps between landscape probes (1 = every step, as Santurkar; "
               "about 8 training steps each)"),
      AT(landscape_every) },
    { NB_K_FLT("probe", "eta_min", "0.5", 0, INF, NB_KF_MIN_EXCL,
               "smallest step, as a multiple of lr"),
      AT(eta_min) },
    { NB_K_FLT("probe", "eta_max", "4", 0, INF, NB_KF_MIN_EXCL,
               "largest step, as a multiple of lr"),
      AT(eta_max) },
    { NB_K_INT("probe", "eta_points", "8", 2, 1000, 0, "steps probed"), AT(eta_points) },
    { NB_K_ENUM("probe", "eta_spacing", "lin", nb_probe_spacing_names,
                "spacing of the probed steps"),
      AT(eta_spacing) },
    { NB_K_BOOL("probe", "ics", "false", "internal covariate shift (Def. 2.1)"), AT(ics) },
    { NB_K_INT("probe", "ics_every", "100", 1, 1e12, 0, "steps between ICS probes"),
      AT(ics_every) },
    { NB_K_BOOL("probe", "dist", "false", "activation distribution statistics"), AT(dist) },
    { NB_K_INT("probe", "dist_every", "100", 1, 1e12, 0, "steps between distribution probes"),
      AT(dist_every) },
    { NB_K_INT("probe", "dist_unit", "-1", -1, 1e9, NB_KF_ADDED,
               "distribution probe: -1 = every element of each tensor; k >= 0 = unit "
               "(channel) k alone, over the batch (and positions), as Ioffe's Fig. 1 "
               "follows one sigmoid's input; tensors with fewer units are skipped"),
      AT(dist_unit) },
    { NB_K_BOOL("probe", "gradstats", "false", "gradient statistics per layer"), AT(gradstats) },
    { NB_K_BOOL("probe", "hessian", "false",
                "Hessian top eigenvalue (power iteration) and trace (Hutchinson)"),
      AT(hessian) },
    { NB_K_INT("probe", "hessian_every", "0", 0, 1e12, 0,
               "steps between Hessian probes; 0 = at the end only"),
      AT(hessian_every) },
    { NB_K_INT("probe", "hessian_samples", "1000", 1, 1e9, 0, "training samples for the Hessian"),
      AT(hessian_samples) },
    { NB_K_INT("probe", "hessian_max_iter", "100", 1, 100000, NB_KF_ADDED,
               "Hessian: most products of the power iteration, and of Hutchinson's "
               "trace, each (PyHessian's maxIter)"),
      AT(hessian_max_iter) },
    { NB_K_FLT("probe", "hessian_tol", "0.001", 0, 1, NB_KF_MIN_EXCL | NB_KF_ADDED,
               "Hessian: each estimate stops when it moves by less than this, "
               "relative (PyHessian's tol)"),
      AT(hessian_tol) },
    { NB_K_ENUM("probe", "hessian_mode", "eval", nb_hessian_mode_names,
                "norm statistics during the Hessian: running (eval) or batch "
                "(probe)"),
      AT(hessian_mode) },
    { NB_K_("probe", "hessian_hvp", NB_KEY_ENUM, "auto", 0, 0, NB_KF_ADDED,
            "Hessian-vector products: exact (Pearlmutter's R-operator; refused when a "
            "layer has none in hessian_mode: lp norm and renorm with batch statistics), "
            "fd (central differences of the gradient, as before exact products existed), auto "
            "(exact where every layer has it, fd otherwise; the hvp_exact stat says "
            "which)"),
      .enum_values = nb_hessian_hvp_names, AT(hessian_hvp) },
    { NB_K_BOOL("probe", "slice", "false", "filter-normalized loss slices (Li et al. 2018)"),
      AT(slice) },
    { NB_K_ILIST("probe", "slice_at", "", -1, 1e12, NB_KF_SORTED,
                 "steps at which to take slices, space-separated in any order "
                 "(sorted, each once), from 0 (the initial weights) to the run's "
                 "last step (its number of steps: the final weights), -1 = the "
                 "last step; empty = the last step only") },
    { NB_K_INT("probe", "slice_dim", "1", 1, 2, 0, "1-D or 2-D slices"), AT(slice_dim) },
    { NB_K_INT("probe", "slice_points", "51", 2, 10001, 0, "points per axis"), AT(slice_points) },
    { NB_K_FLT("probe", "slice_range", "1", 0, INF, NB_KF_MIN_EXCL,
               "slice coordinates span [-range, range]"),
      AT(slice_range) },
    { NB_K_INT("probe", "slice_samples", "1000", 0, 1e9, 0,
               "training samples per slice point; 0 = all"),
      AT(slice_samples) },
    { NB_K_BOOL("probe", "slice_recompute_bn", "false",
                "recompute norm running statistics at every slice point"),
      AT(slice_recompute_bn) },
    { NB_K_("probe", "evalstats", NB_KEY_BOOL, "false", 0, 0, NB_KF_ADDED,
            "test error with each choice of evaluation statistics: running averages, "
            "batch statistics, recomputed (exact, Ioffe's Alg. 2, biased) and, with "
            "evalstats_target, recomputed on the test data"),
      AT(evalstats) },
    { NB_K_INT("probe", "evalstats_every", "0", 0, 1e12, NB_KF_ADDED,
               "steps between evalstats probes; 0 = at the end only"),
      AT(evalstats_every) },
    { NB_K_ILIST("probe", "evalstats_samples", "1000", 1, 1e9, NB_KF_INCREASING | NB_KF_ADDED,
                 "evalstats: training samples each recomputation uses (in training "
                 "batches), space-separated"),
      NB_KEY_AT_ARRAY(struct nb_probe_opts, evalstats_samples, n_evalstats_samples) },
    { NB_K_("probe", "evalstats_target", NB_KEY_BOOL, "false", 0, 0, NB_KF_ADDED,
            "evalstats: also statistics recomputed on the test data itself (domain shift)"),
      AT(evalstats_target) },
    { NB_K_("probe", "varshift", NB_KEY_BOOL, "false", 0, 0, NB_KF_ADDED,
            "per batch-norm layer, its running variance over its input's variance at "
            "test time (Var_train / Var_test) against the formula for dropout directly "
            "before it (Li et al. 2019)"),
      AT(varshift) },
    { NB_K_INT("probe", "varshift_every", "0", 0, 1e12, NB_KF_ADDED,
               "steps between varshift probes; 0 = at the end only"),
      AT(varshift_every) },
    { NB_K_INT("probe", "varshift_samples", "10000", 1, 1e9, NB_KF_ADDED,
               "varshift: test samples the test-time moments are taken over (all when "
               "fewer)"),
      AT(varshift_samples) },
    { NB_K_("probe", "fold", NB_KEY_BOOL, "false", 0, 0, NB_KF_ADDED,
            "at the end of training, fold every batch norm into the conv or linear layer "
            "before it (as normbench fold) and compare: max logit difference, predictions "
            "changed, time of a pass folded and unfolded"),
      AT(fold) },
    { NB_K_INT("probe", "fold_samples", "10000", 1, 1e9, NB_KF_ADDED,
               "fold: test samples compared and timed (all when fewer)"),
      AT(fold_samples) },
    { NB_K_INT("probe", "fold_rounds", "5", 1, 1000, NB_KF_ADDED,
               "fold: interleaved timing rounds (the median is kept)"),
      AT(fold_rounds) },
};
#undef AT
const int nb_probe_n_keys = (int)(sizeof nb_probe_keys / sizeof nb_probe_keys[0]);

void nb_probe_opts_default(struct nb_probe_opts *o)
{
    memset(o, 0, sizeof *o);
    o->hessian_fd_rel = 1e-3;
    nb_keys_default(nb_probe_keys, nb_probe_n_keys, o);
}

/* an option error naming its config key (core/error.h) */
#define BAD(key, ...) (nb_error_set(err, NB_EINVAL, NULL, 0, __VA_ARGS__), nb_error_key(err, key))

int nb_probe_opts_check(const struct nb_probe_opts *o, struct nb_error *err)
{
    if (!(o->eta_min > 0) || !isfinite(o->eta_min))
        return BAD("probe.eta_min", "[probe] eta_min must be > 0, not %g", o->eta_min);
    if (!(o->eta_max >= o->eta_min) || !isfinite(o->eta_max))
        return BAD("probe.eta_max", "[probe] eta_max (%g) must be >= eta_min (%g)", o->eta_max, o->eta_min);
    if (o->eta_points < 1)
        return BAD("probe.eta_points", "[probe] eta_points must be >= 1, not %d", o->eta_points);
    if (o->eta_spacing < 0 || o->eta_spacing >= NB_SPACING_COUNT)
        return BAD("probe.eta_spacing", "[probe] eta_spacing must be lin or log");
    if (o->landscape_every < 1 || o->ics_every < 1 || o->dist_every < 1)
        return BAD("probe.landscape_every", "[probe] landscape_every, ics_every and dist_every must be >= 1");
    if (o->hessian_every < 0)
        return BAD("probe.hessian_every", "[probe] hessian_every must be >= 0, not %ld", o->hessian_every);
    if (o->hessian_samples < 1)
        return BAD("probe.hessian_samples", "[probe] hessian_samples must be >= 1, not %ld", o->hessian_samples);
    if (o->hessian_mode != NB_HESSIAN_EVAL && o->hessian_mode != NB_HESSIAN_PROBE)
        return BAD("probe.hessian_mode", "[probe] hessian_mode must be eval or probe");
    if (o->hessian_hvp < 0 || o->hessian_hvp >= NB_HVP_COUNT)
        return BAD("probe.hessian_hvp", "[probe] hessian_hvp must be auto, exact or fd");
    if (!(o->hessian_tol > 0) || o->hessian_max_iter < 1 || !(o->hessian_fd_rel > 0))
        return BAD("probe.hessian", "[probe] the Hessian needs tol > 0, max_iter >= 1 and fd step > 0");
    if (o->slice_dim != 1 && o->slice_dim != 2)
        return BAD("probe.slice_dim", "[probe] slice_dim must be 1 or 2, not %d", o->slice_dim);
    if (o->slice_points < 2)
        return BAD("probe.slice_points", "[probe] slice_points must be >= 2, not %d", o->slice_points);
    if (!(o->slice_range > 0) || !isfinite(o->slice_range))
        return BAD("probe.slice_range", "[probe] slice_range must be > 0, not %g", o->slice_range);
    if (o->slice_samples < 0)
        return BAD("probe.slice_samples", "[probe] slice_samples must be >= 0, not %ld", o->slice_samples);
    if (o->varshift_every < 0)
        return BAD("probe.varshift_every", "[probe] varshift_every must be >= 0, not %ld",
                   o->varshift_every);
    if (o->varshift_samples < 1)
        return BAD("probe.varshift_samples", "[probe] varshift_samples must be >= 1, not %ld",
                   o->varshift_samples);
    if (o->n_slice_at < 0 || (o->n_slice_at > 0 && !o->slice_at))
        return BAD("probe.slice_at", "[probe] slice_at: bad list");
    for (int i = 0; i < o->n_slice_at; i++)
        if (o->slice_at[i] < -1)
            return BAD("probe.slice_at", "[probe] slice_at entries are steps >= 0 or -1 (the end), not %ld",
                       o->slice_at[i]);
    return 0;
}

/* ---- set-up ------------------------------------------------------------- */

/* Whether kind k is on: its bool key [probe] NAME in nb_probe_keys. */
static bool kind_on(const struct nb_probe_opts *o, int k)
{
    for (int i = 0; i < nb_probe_n_keys; i++) {
        const struct nb_key *key = &nb_probe_keys[i];
        if (strcmp(key->key, nb_probe_kinds[k].name))
            continue;
        NB_ASSERT(key->type == NB_KEY_BOOL && key->field == NB_FIELD_BOOL);
        return *(const bool *)((const char *)o + key->off);
    }
    NB_ASSERT(!"a probe kind without its [probe] key");
    return false;
}

bool nb_probe_opts_any(const struct nb_probe_opts *o)
{
    for (int k = 0; k < NB_PROBE_KIND_COUNT; k++)
        if (kind_on(o, k))
            return true;
    return false;
}

/* 0 when ds (what: "a training set") is non-empty and fits m: its
 * samples' size, labels or targets for m's loss; else NB_EINVAL. */
static int check_set(const struct nb_model *m, const struct nb_dataset *ds, const char *what,
                     struct nb_error *err)
{
    size_t numel = nb_shape_numel(&m->layers[0].in);
    if (!ds || ds->n < 1)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "probes: the probes that are on need %s with samples", what);
    if (nb_shape_numel(&ds->shape) != numel)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "probes: data set %s has %zu values per sample, the model takes %zu",
                            ds->name, nb_shape_numel(&ds->shape), numel);
    if (m->desc.loss == NB_LOSS_MSE ? (ds->tdim != m->desc.outputs || !ds->t)
                                    : (ds->classes < 1 || !ds->y))
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "probes: data set %s has no %s for this model's loss", ds->name,
                            m->desc.loss == NB_LOSS_MSE ? "targets of the right size" : "labels");
    return 0;
}

static bool needs_data(const struct nb_probe_opts *o)
{
    for (int k = 0; k < NB_PROBE_KIND_COUNT; k++)
        if (kind_ops[k]->uses_data && kind_on(o, k))
            return true;
    return false;
}

void nb_probe_free(struct nb_probe *p)
{
    free(p->slice_at);
    if (p->rng)
        gsl_rng_free(p->rng);
    if (p->fwd)
        gsl_rng_free(p->fwd);
    free(p->theta);
    free(p->g);
    free(p->gref);
    free(p->opt);
    free(p->state);
    free(p->v);
    free(p->d1);
    free(p->d2);
    free(p->acc);
    free(p->acc2);
    free(p->scratch);
    free(p->prev_mean);
    free(p->prev_var);
    free(p->prev_cmean);
    free(p->prev_cvar);
    free(p->prev_valid);
    free(p->first_q);
    free(p->first_valid);
    free(p->idx);
    free(p->tidx);
    free(p->vs_acc);
    free(p->vs_work);
    free(p->bx);
    free(p->bt);
    free(p->by);
    free(p->eta);
    free(p->lscratch);
    nb_hvp_free(&p->hvp);
    memset(p, 0, sizeof *p);
}

static size_t act_numel(const struct nb_model *m, int a)
{
    return nb_shape_numel(a == 0 ? &m->layers[0].in : &m->layers[a - 1].out);
}

/* nb_probe_init's buffers for the varshift probe: the per-channel sums
 * over every normalized layer's units and one layer's work space.
 * Returns 0, or -1 when out of memory. */
static int alloc_varshift(struct nb_probe *p, const struct nb_model *m)
{
    for (int i = 0; i < m->n_layers; i++) {
        int c = nb_norm_eval_moments(&m->layers[i], NULL, NULL);
        p->vs_channels += c;
        if (c > p->vs_cmax)
            p->vs_cmax = c;
    }
    if (!(p->vs_acc = calloc(2 * (size_t)p->vs_channels + 1, sizeof *p->vs_acc)) ||
        !(p->vs_work = calloc(4 * (size_t)p->vs_cmax + 1, sizeof *p->vs_work)))
        return -1;
    return 0;
}

/* nb_probe_init's buffers for the passes over p->data (directions,
 * double accumulators, the sample index) and for one chunk of samples
 * (training or test set).  Returns 0, or -1 when out of memory. */
static int alloc_passes(struct nb_probe *p, size_t np)
{
    if (needs_data(&p->o)) {
        if (!(p->v = nb_alloc_floats(np)) || !(p->d1 = nb_alloc_floats(np)) ||
            !(p->d2 = nb_alloc_floats(np)) || !(p->acc = calloc(np, sizeof *p->acc)) ||
            !(p->acc2 = calloc(np, sizeof *p->acc2)))
            return -1;
        size_t n = p->data->n, want = 0;
        if (p->o.hessian)
            want = (size_t)p->o.hessian_samples;
        if (p->o.slice) {
            size_t s = p->o.slice_samples > 0 ? (size_t)p->o.slice_samples : n;
            if (s > want)
                want = s;
        }
        p->n_idx = want < n ? want : n;
        if (!(p->idx = malloc(p->n_idx * sizeof *p->idx)))
            return -1;
        for (size_t i = 0; i < p->n_idx; i++)
            p->idx[i] = i;
    }
    if (needs_data(&p->o) || p->test) { /* one chunk of samples */
        size_t cap = (size_t)p->cap;
        if (!(p->bx = nb_alloc_floats(cap * p->in_numel)) ||
            !(p->by = calloc(cap, sizeof *p->by)) ||
            !(p->bt = nb_alloc_floats(cap * (p->tdim ? p->tdim : 1))))
            return -1;
    }
    return 0;
}

/* nb_probe_init's buffers for the dist probe: the previous call's
 * per-channel moments and a scratch copy of the largest tracked tensor.
 * Returns 0, or -1 when out of memory. */
static int alloc_dist(struct nb_probe *p, const struct nb_model *m)
{
    int na = nbp_dist_tensors(m, NULL, NULL, NULL);
    int *act = malloc(((size_t)na + 1) * sizeof *act);
    if (!act)
        return -1;
    nbp_dist_tensors(m, act, NULL, NULL);
    size_t big = 1;
    int cmax = 1;
    for (int i = 0; i < na; i++) {
        if (act_numel(m, act[i]) > big)
            big = act_numel(m, act[i]);
        const struct nb_shape *sh = act[i] == 0 ? &m->layers[0].in : &m->layers[act[i] - 1].out;
        if (sh->c > cmax)
            cmax = sh->c;
    }
    free(act);
    p->dist_cmax = cmax;
    size_t nc = 2 * (size_t)p->n_layers * (size_t)cmax;
    if (!(p->prev_cmean = calloc(nc, sizeof *p->prev_cmean)) ||
        !(p->prev_cvar = calloc(nc, sizeof *p->prev_cvar)))
        return -1;
    p->scratch_count = big * (size_t)p->cap;
    if (!(p->scratch = nb_alloc_floats(p->scratch_count)))
        return -1;
    return 0;
}

/* nb_probe_init's per-tensor history of the dist probe (the last call's
 * moments, the first call's percentiles) and the landscape probe's step
 * sizes eta.
 * Returns 0, or -1 when out of memory. */
static int alloc_history(struct nb_probe *p)
{
    size_t nl = 2 * (size_t)p->n_layers;
    if (!(p->prev_mean = calloc(nl, sizeof *p->prev_mean)) ||
        !(p->prev_var = calloc(nl, sizeof *p->prev_var)) ||
        !(p->prev_valid = calloc(nl, sizeof *p->prev_valid)) ||
        !(p->first_q = calloc(3 * nl, sizeof *p->first_q)) ||
        !(p->first_valid = calloc(nl, sizeof *p->first_valid)) ||
        !(p->eta = calloc((size_t)p->o.eta_points, sizeof *p->eta)) ||
        !(p->lscratch = calloc(3 * (size_t)p->o.eta_points, sizeof *p->lscratch)))
        return -1;
    for (int k = 0; k < p->o.eta_points; k++) {
        double f = p->o.eta_points > 1 ? (double)k / (p->o.eta_points - 1) : 0.0;
        p->eta[k] = p->o.eta_spacing == NB_SPACING_LOG
                        ? p->o.eta_min * pow(p->o.eta_max / p->o.eta_min, f)
                        : p->o.eta_min + (p->o.eta_max - p->o.eta_min) * f;
    }
    return 0;
}

int nb_probe_init(struct nb_probe *p, const struct nb_probe_opts *opts,
                  const struct nb_model *m, uint64_t seed,
                  const struct nb_dataset *train,
                  const struct nb_dataset *eval_set, struct nb_error *err)
{
    memset(p, 0, sizeof *p);
    int rc = nb_probe_opts_check(opts, err);
    if (rc)
        return rc;
    p->o = *opts;
    p->o.slice_at = NULL;
    if (opts->n_slice_at > 0) {
        p->slice_at = malloc((size_t)opts->n_slice_at * sizeof *p->slice_at);
        if (!p->slice_at)
            goto nomem;
        memcpy(p->slice_at, opts->slice_at, (size_t)opts->n_slice_at * sizeof *p->slice_at);
        p->o.slice_at = p->slice_at;
    }
    if (!m || m->n_layers < 1 || !m->params.data)
        return nb_error_set(err, NB_EINVAL, NULL, 0, "probes: no model to size the buffers for");
    p->n_params = m->params.count;
    p->n_state = m->state.count;
    p->n_layers = m->n_layers;
    p->cap = m->max_batch;
    p->in_numel = nb_shape_numel(&m->layers[0].in);
    p->tdim = m->desc.loss == NB_LOSS_MSE ? (size_t)m->desc.outputs : 0;
    /* forwards whose PROBE gradient at theta may differ from training's:
     * random draws, or renorm's r/d from moving statistics that the
     * training forward has just updated */
    p->stochastic = m->desc.dropout > 0 || m->desc.norm.noisy || m->desc.norm.renorm;

    p->data = train ? train : eval_set;
    if (needs_data(&p->o) && (rc = check_set(m, p->data, "a training set", err)))
        return rc;
    if ((rc = nb_probe_check_model(&p->o, m, err)))
        return rc;
    if (p->o.hessian && p->o.hessian_hvp != NB_HVP_FD && (rc = nb_hvp_init(&p->hvp, m, err)))
        return rc;
    if (p->o.evalstats || p->o.varshift || p->o.fold) {
        p->test = eval_set;
        if ((rc = check_set(m, p->test, "a test set", err)))
            return rc;
        if (!(p->tidx = malloc((size_t)p->cap * sizeof *p->tidx)))
            goto nomem;
    }
    if (p->o.varshift && alloc_varshift(p, m))
        goto nomem;

    size_t np = p->n_params ? p->n_params : 1;
    if (!(p->theta = nb_alloc_floats(np)) || !(p->g = nb_alloc_floats(np)) ||
        !(p->gref = nb_alloc_floats(np)) || !(p->opt = nb_alloc_floats(np)) ||
        !(p->state = nb_alloc_floats(p->n_state ? p->n_state : 1)))
        goto nomem;
    if (alloc_passes(p, np) || (p->o.dist && alloc_dist(p, m)) || alloc_history(p))
        goto nomem;
    p->rng = nb_rng_alloc(seed, NB_STREAM_PROBE);
    p->fwd = gsl_rng_alloc(gsl_rng_mt19937);
    if (!p->rng || !p->fwd)
        goto nomem;
    return 0;
nomem:
    return nb_error_set(err, NB_ENOMEM, NULL, 0, "probes: out of memory");
}

int nb_probe_check_model(const struct nb_probe_opts *o, const struct nb_model *m,
                         struct nb_error *err)
{
    if (o->fold) {
        const struct nb_model_desc *d = &m->desc;
        if (d->norm.type != NB_NORM_BATCH && d->norm.type != NB_NORM_LP) {
            BAD("norm.type",
                d->norm.type == NB_NORM_NONE
                    ? "[probe] fold: norm type = none: the network has no norm layer to fold"
                    : "[probe] fold: norm type = %s normalizes each sample with its own "
                      "statistics, also in eval mode: there are no constants to fold",
                nb_norm_type_name(d->norm.type));
            return nb_error_hint(err, "fold takes batch norm (type = batch, or lp), whose eval "
                                      "mode uses the running statistics");
        }
        if (d->placement != NB_PLACE_PRE) {
            BAD("model.placement",
                "[probe] fold: placement = %s puts a ReLU between each conv or linear layer "
                "and its norm (Conv -> ReLU -> BN): there is nothing to fold the norm into",
                nb_norm_placement_names[d->placement]);
            return nb_error_hint(err, "folding needs placement = pre (Conv -> BN -> ReLU)");
        }
    }
    if (!o->hessian || o->hessian_hvp != NB_HVP_EXACT)
        return 0;
    enum nb_mode mode = o->hessian_mode == NB_HESSIAN_PROBE ? NB_PROBE : NB_EVAL;
    int i = nb_model_hvp_unsupported(m, mode);
    if (i < 0)
        return 0;
    BAD("probe.hessian_hvp",
        "[probe] hessian_hvp = exact, but layer %s (%s) has no exact Hessian-vector product "
        "with hessian_mode = %s (lp norm and batch renorm with batch statistics have none)",
        m->layers[i].name, m->layers[i].ops->kind, nb_hessian_mode_names[o->hessian_mode]);
    return nb_error_hint(err, "hessian_mode = eval, or hessian_hvp = auto (central "
                              "differences where the exact product is missing)");
}

int nb_probe_init_desc(struct nb_probe *p, const struct nb_probe_opts *opts,
                       const struct nb_model_desc *d, int max_batch,
                       uint64_t seed, const struct nb_dataset *train,
                       const struct nb_dataset *eval_set,
                       struct nb_error *err)
{
    struct nb_model m;
    memset(p, 0, sizeof *p);
    int rc = nb_model_build(&m, d, max_batch, seed, err);
    if (!rc)
        rc = nb_probe_init(p, opts, &m, seed, train, eval_set, err);
    nb_model_free(&m);
    return rc;
}

void nb_probe_set_sink(struct nb_probe *p, const struct nb_probe_sink *s)
{
    if (s)
        p->sink = *s;
    else
        memset(&p->sink, 0, sizeof p->sink);
}

/* ---- helpers shared by the probes --------------------------------------- */

struct nb_probe_row nbp_row(const struct nb_model *m, long step,
                            enum nb_probe_kind kind, int layer,
                            const char *bn_mode)
{
    return (struct nb_probe_row){
        .step = step,
        .probe = nb_probe_kinds[kind].name,
        .layer = layer >= 0 ? m->layers[layer].name : "",
        .layer_index = layer >= 0 ? layer : -1,
        .param = "",
        .param_value = NAN,
        .stat = "",
        .value = NAN,
        .bn_mode = bn_mode,
    };
}

void nbp_emit(struct nb_probe *p, const struct nb_probe_row *r,
              const char *stat, double value)
{
    if (p->status || !p->sink.row)
        return;
    struct nb_probe_row row = *r;
    row.stat = stat;
    row.value = value;
    int rc = p->sink.row(p->sink.user, &row);
    if (rc) {
        p->status = rc < 0 ? rc : NB_EIO;
        nb_error_set(&p->err, p->status, NULL, 0,
                     "probes: writing a %s row at step %ld failed; probes stopped",
                     row.probe, row.step);
    }
}

double nbp_forward(struct nb_probe *p, struct nb_model *m, const float *x,
                   const int *y, const float *t, int n, enum nb_mode mode)
{
    gsl_rng_set(p->fwd, p->fwd_seed);
    return nb_model_forward(m, x, y, t, n, mode);
}

void nbp_set_params(struct nb_probe *p, struct nb_model *m, double a,
                    const float *d1, double b, const float *d2)
{
    float *w = m->params.data;
    const float *th = p->theta;
    size_t n = p->n_params;
    if (d2)
        for (size_t i = 0; i < n; i++)
            w[i] = (float)((double)th[i] + a * (double)d1[i] + b * (double)d2[i]);
    else
        for (size_t i = 0; i < n; i++)
            w[i] = (float)((double)th[i] + a * (double)d1[i]);
}

double nbp_norm(const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * (double)x[i];
    return sqrt(s);
}

double nbp_dot(const float *x, const float *y, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * (double)y[i];
    return s;
}

size_t nbp_pass_samples(const struct nb_probe *p, const struct nb_model *m,
                        long want, enum nb_mode mode, int *chunk)
{
    size_t n = p->n_idx;
    if (want > 0 && (size_t)want < n)
        n = (size_t)want;
    int cmax = p->cap < m->max_batch ? p->cap : m->max_batch;
    *chunk = cmax;
    if (mode == NB_EVAL || n == 0)
        return n;
    int b = p->train_batch > 0 && p->train_batch < cmax ? p->train_batch : cmax;
    if (n < (size_t)b) {
        b = (int)n;
        n = (size_t)b;
    } else {
        n -= n % (size_t)b;
    }
    struct nb_error e;
    if (b < 1 || nb_model_check_batch(m, b, &e))
        return 0;
    *chunk = b;
    return n;
}

/* nbp_pass and nbp_pass_hvp: the loss, and with grad the gradient into
 * p->acc, and with hvp H p->hvp.dir into p->acc2. */
static double pass(struct nb_probe *p, struct nb_model *m, size_t count, int chunk,
                   enum nb_mode mode, bool grad, bool hvp, long *hits)
{
    const struct nb_dataset *ds = p->data;
    int *y = ds->classes > 0 ? p->by : NULL;
    float *t = ds->tdim > 0 ? p->bt : NULL;
    size_t np = p->n_params;
    grad = grad || hvp;
    if (grad)
        memset(p->acc, 0, np * sizeof *p->acc);
    if (hvp)
        memset(p->acc2, 0, np * sizeof *p->acc2);
    double sl = 0;
    long h = 0;
    unsigned long seed = p->fwd_seed;
    size_t c = 0;
    for (size_t off = 0; off < count; off += (size_t)chunk, c++) {
        int k = (int)(count - off < (size_t)chunk ? count - off : (size_t)chunk);
        nb_dataset_gather(ds, p->idx + off, (size_t)k, p->bx, y, t);
        /* each chunk its own draws, the same in every pass */
        gsl_rng_set(p->fwd, (seed + 0x9e3779b9UL * c) & 0xffffffffUL);
        double loss = nb_model_forward(m, p->bx, y, t, k, mode);
        sl += loss * k;
        if (hits && y)
            h += nb_model_correct(m, y, k);
        if (grad) {
            nb_model_backward(m, k);
            const float *gr = m->grads.data;
            double w = (double)k / (double)count;
            for (size_t i = 0; i < np; i++)
                p->acc[i] += w * (double)gr[i];
            if (hvp) {
                nb_model_hvp(m, &p->hvp, k);
                const float *hv = p->hvp.hv;
                for (size_t i = 0; i < np; i++)
                    p->acc2[i] += w * (double)hv[i];
            }
        }
    }
    if (hits)
        *hits = h;
    return count ? sl / (double)count : NAN;
}

double nbp_pass(struct nb_probe *p, struct nb_model *m, size_t count,
                int chunk, enum nb_mode mode, bool grad, long *hits)
{
    return pass(p, m, count, chunk, mode, grad, false, hits);
}

double nbp_pass_hvp(struct nb_probe *p, struct nb_model *m, const float *v, size_t count,
                    int chunk, enum nb_mode mode)
{
    NB_ASSERT(p->hvp.hv && p->hvp.n_params == p->n_params);
    memcpy(p->hvp.dir, v, p->n_params * sizeof *v);
    return pass(p, m, count, chunk, mode, true, true, NULL);
}

/* ---- the driver ----------------------------------------------------------- */

struct saved_ctx {
    gsl_rng *probe, *dropout, *noise;
    const int *labels;
    const float *targets;
    bool profile;
};

/* Saves the four arenas and the context; points the probe stream at
 * p->fwd.  The training gradient goes to p->g. */
static void save(struct nb_probe *p, struct nb_model *m, struct saved_ctx *c)
{
    NB_ASSERT(m->params.count == p->n_params && m->state.count == p->n_state &&
              m->n_layers == p->n_layers && m->opt.count == p->n_params);
    memcpy(p->theta, m->params.data, p->n_params * sizeof(float));
    memcpy(p->g, m->grads.data, p->n_params * sizeof(float));
    memcpy(p->opt, m->opt.data, p->n_params * sizeof(float));
    if (p->n_state)
        memcpy(p->state, m->state.data, p->n_state * sizeof(float));
    c->probe = m->ctx.rng_probe;
    c->dropout = m->ctx.rng_dropout;
    c->noise = m->ctx.rng_noise;
    c->labels = m->ctx.labels;
    c->targets = m->ctx.targets;
    c->profile = m->profile;
    m->ctx.rng_probe = p->fwd;
    m->profile = false;
    p->fwd_seed = gsl_rng_get(p->rng) & 0xffffffffUL;
}

static void restore(struct nb_probe *p, struct nb_model *m, const struct saved_ctx *c)
{
    memcpy(m->params.data, p->theta, p->n_params * sizeof(float));
    memcpy(m->grads.data, p->g, p->n_params * sizeof(float));
    m->grads_zero = false; /* p->g is the gradient of a backward */
    memcpy(m->opt.data, p->opt, p->n_params * sizeof(float));
    if (p->n_state)
        memcpy(m->state.data, p->state, p->n_state * sizeof(float));
    m->ctx.rng_probe = c->probe;
    m->ctx.rng_dropout = c->dropout;
    m->ctx.rng_noise = c->noise;
    m->ctx.labels = c->labels;
    m->ctx.targets = c->targets;
    m->profile = c->profile;
}

static void account(struct nb_probe *p, struct nb_model *m, long step,
                    enum nb_probe_kind k, double t0)
{
    double dt = nb_now() - t0;
    p->cost[k].calls++;
    p->cost[k].seconds += dt;
    struct nb_probe_row r = nbp_row(m, step, k, -1, kind_ops[k]->mode(&p->o));
    nbp_emit(p, &r, "seconds", dt);
}

/* p->gref for NBP_ON_REFERENCE_GRADIENT: with stochastic layers the
 * gradient in PROBE mode with this call's draws, what every probe forward
 * of the call sees (b->loss0 becomes that forward's loss); else the
 * training gradient. */
static void reference_gradient(struct nb_probe *p, struct nb_model *m, struct nbp_batch *b)
{
    if (p->stochastic) {
        b->loss0 = nbp_forward(p, m, b->x, b->y, b->t, b->n, NB_PROBE);
        nb_model_backward(m, b->n);
        memcpy(p->gref, m->grads.data, p->n_params * sizeof(float));
    } else {
        memcpy(p->gref, p->g, p->n_params * sizeof(float));
    }
}

/* Runs the kinds of `phase` that are due, in enum order, each charged the
 * time since the previous one ended (the reference gradient to the
 * first). */
static void run_phase(struct nb_probe *p, struct nb_model *m, struct nbp_batch *b, long step,
                      const bool due[NB_PROBE_KIND_COUNT], enum nbp_phase phase)
{
    double t0 = nb_now();
    bool first = true;
    for (int k = 0; k < NB_PROBE_KIND_COUNT; k++) {
        const struct nbp_ops *ops = kind_ops[k];
        if (!due[k] || ops->phase != phase)
            continue;
        if (first && phase == NBP_ON_REFERENCE_GRADIENT)
            reference_gradient(p, m, b);
        if (phase == NBP_AT_THETA)
            memcpy(m->params.data, p->theta, p->n_params * sizeof(float));
        ops->run(p, m, b, step);
        account(p, m, step, (enum nb_probe_kind)k, t0);
        t0 = nb_now();
        first = false;
    }
}

void nb_probe_step(struct nb_probe *p, struct nb_model *m, const float *x,
                   const int *y, const float *t, int n, long step, double lr)
{
    if (p->status || step < 0)
        return;
    NB_ASSERT(n >= 1 && n <= p->cap && n <= m->max_batch);
    if (n > p->train_batch) /* also for the probes run at the end */
        p->train_batch = n;
    bool due[NB_PROBE_KIND_COUNT], any = false;
    for (int k = 0; k < NB_PROBE_KIND_COUNT; k++)
        any |= due[k] = kind_ops[k]->due(&p->o, step);
    if (!any)
        return;
    double t_all = nb_now();
    /* the training loss of this batch, before any probe forward */
    const float *lv = m->acts[m->n_layers];
    double loss0 = 0;
    for (int i = 0; i < n; i++)
        loss0 += lv[i];
    struct nbp_batch b = {x, y, t, n, lr, loss0 / n};

    struct saved_ctx c;
    save(p, m, &c);
    run_phase(p, m, &b, step, due, NBP_ON_TRAINING_PASS);
    run_phase(p, m, &b, step, due, NBP_ON_REFERENCE_GRADIENT);
    run_phase(p, m, &b, step, due, NBP_AT_THETA);
    restore(p, m, &c);
    p->calls++;
    p->seconds += nb_now() - t_all;
}

void nb_probe_finish(struct nb_probe *p, struct nb_model *m, long steps)
{
    if (p->status)
        return;
    bool due[NB_PROBE_KIND_COUNT], any = false;
    for (int k = 0; k < NB_PROBE_KIND_COUNT; k++) {
        const struct nbp_ops *ops = kind_ops[k];
        NB_ASSERT(!ops->at_end || ops->phase == NBP_AT_THETA);
        any |= due[k] = ops->at_end && ops->at_end(&p->o, steps);
    }
    if (!any)
        return;
    double t_all = nb_now();
    struct saved_ctx c;
    save(p, m, &c);
    run_phase(p, m, NULL, steps, due, NBP_AT_THETA);
    restore(p, m, &c);
    p->calls++;
    p->seconds += nb_now() - t_all;
}

void nb_probe_cost_report(const struct nb_probe *p, FILE *out,
                          double run_seconds)
{
    fprintf(out, "%-10s %7s %11s %12s %8s\n", "probe", "calls", "seconds",
            "s/call", "share");
    for (int k = 0; k < NB_PROBE_KIND_COUNT; k++) {
        const struct nb_probe_cost *c = &p->cost[k];
        if (!c->calls)
            continue;
        fprintf(out, "%-10s %7ld %11.4f %12.6f", nb_probe_kinds[k].name, c->calls, c->seconds,
                c->seconds / (double)c->calls);
        if (run_seconds > 0)
            fprintf(out, " %7.2f%%", 100.0 * c->seconds / run_seconds);
        fputc('\n', out);
    }
    fprintf(out, "%-10s %7ld %11.4f %12.6f", "all", p->calls, p->seconds,
            p->calls ? p->seconds / (double)p->calls : 0.0);
    if (run_seconds > 0)
        fprintf(out, " %7.2f%%", 100.0 * p->seconds / run_seconds);
    fputc('\n', out);
}
