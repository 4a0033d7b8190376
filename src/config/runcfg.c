/* src/config/runcfg.c - see runcfg.h. */
#include "config/runcfg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/text.h"
#include "layers/norm.h"
#include "model/model.h"

/* Binds the keys of one module table (registered in keys.c) from run into
 * base: one loop, the table says where each value goes.  Returns 0, or
 * NB_EINVAL with err at the key whose value does not fit its member. */
static int bind(const struct nb_run *run, const struct nb_key *keys, void *base,
                struct nb_error *err)
{
    int n, first = nb_key_table_index(keys, &n);
    for (int j = 0; j < n; j++) {
        struct nb_error e;
        nb_error_clear(&e);
        if (nb_key_store(&keys[j], run->vals[first + j]->text, base, &e))
            return nb_run_error(run, err, keys[j].section, keys[j].key, "%s", e.msg);
    }
    return 0;
}

/* The [data] values that have no one member: per-channel mean and std (the
 * data module takes one of each), resize (both sides), and the deep
 * linear network's dimension (model.dln_dim, the synthetic data's). */
static int bind_data_rest(const struct nb_run *run, struct nb_data_opts *o,
                          struct nb_error *err)
{
    double mean[64], std[64];
    int nm = nb_run_get_double_list(run, "data", "mean", mean, 64);
    int ns = nb_run_get_double_list(run, "data", "std", std, 64);
    for (int i = 1; i < nm && i < 64; i++)
        if (mean[i] != mean[0])
            return nb_run_error(run, err, "data", "mean",
                                "per-channel means that differ are not "
                                "supported: the data module standardizes "
                                "every channel with one mean and std");
    for (int i = 1; i < ns && i < 64; i++)
        if (std[i] != std[0])
            return nb_run_error(run, err, "data", "std",
                                "per-channel stds that differ are not "
                                "supported: the data module standardizes "
                                "every channel with one mean and std");
    if (nm > 0)
        o->mean = (float)mean[0];
    if (ns > 0)
        o->std = (float)std[0];
    o->resize_h = o->resize_w = (int)nb_run_get_int(run, "data", "resize");
    if (o->source == NB_SRC_DLN) {
        int d = (int)nb_run_get_int(run, "model", "dln_dim");
        o->synth.shape = (struct nb_shape){d, 1, 1};
    }
    return 0;
}

/* probe.slice_at into rc's array, and the probes' own check. */
static int bind_probe_rest(const struct nb_run *run, struct nb_runcfg *rc,
                           struct nb_error *err)
{
    struct nb_probe_opts *o = &rc->probe;
    long long at[NB_RUNCFG_MAX_SLICES];
    int nat = nb_run_get_int_list(run, "probe", "slice_at", at, NB_RUNCFG_MAX_SLICES);
    if (nat > NB_RUNCFG_MAX_SLICES)
        return nb_run_error(run, err, "probe", "slice_at",
                            "at most %d slice steps (got %d)",
                            NB_RUNCFG_MAX_SLICES, nat);
    for (int i = 0; i < nat; i++)
        rc->slice_at[i] = (long)at[i];
    o->slice_at = nat ? rc->slice_at : NULL;
    o->n_slice_at = nat;
    o->eval_samples = rc->train.eval_samples;
    rc->probes = nb_probe_opts_any(o);
    if (!rc->probes)
        return 0;
    struct nb_error e;
    nb_error_clear(&e);
    if (nb_probe_opts_check(o, &e)) {
        int k = nb_key_lookup_name(e.key);
        return nb_run_error(run, err, "probe", k >= 0 ? nb_key_at(k)->key : "landscape",
                            "%s", e.msg);
    }
    return 0;
}

int nb_runcfg_from_run(const struct nb_run *run, struct nb_runcfg *rc,
                       struct nb_error *err)
{
    memset(rc, 0, sizeof *rc);
    struct nb_train_spec *s = &rc->train;
    struct nb_model_desc *m = &s->model;
    struct nb_optim_opts optim;
    nb_train_spec_default(s);
    nb_optim_opts_default(&optim);
    nb_data_opts_default(&rc->data);
    nb_probe_opts_default(&rc->probe);
    s->seed = run->seed;
    int r;
    if ((r = bind(run, nb_model_keys, m, err)) || (r = bind(run, nb_norm_keys, &m->norm, err)) ||
        (r = bind(run, nb_train_norm_keys, s, err)) || (r = bind(run, nb_optim_keys, &optim, err)) ||
        (r = bind(run, nb_train_keys, s, err)) || (r = bind(run, nb_data_keys, &rc->data, err)) ||
        (r = bind(run, nb_probe_keys, &rc->probe, err)))
        return r;
    s->sgd = optim.sgd;
    s->sched = optim.sched;
    if (m->n_widths == 0 && m->arch == NB_ARCH_MLP)
        return nb_run_error(run, err, "model", "widths",
                            "an mlp needs at least one hidden width");
    rc->threads = (int)nb_run_get_int(run, "train", "threads");
    rc->save_weights = nb_run_get_bool(run, "train", "save_weights");
    snprintf(rc->init_from, sizeof rc->init_from, "%s",
             nb_run_get_str(run, "model", "init_from")); /* canonical: it fits */
    rc->target_acc = nb_run_get_double(run, "experiment", "target_accuracy");
    if ((r = bind_data_rest(run, &rc->data, err)) || (r = bind_probe_rest(run, rc, err)))
        return r;

    /* the nominal shape until the data are loaded */
    int classes, tdim;
    nb_runcfg_nominal(&rc->data, &m->input, &classes, &tdim);
    m->outputs = classes > 0 ? classes : tdim;
    m->loss = classes > 0 ? NB_LOSS_XENT : NB_LOSS_MSE;
    return 0;
}

static long total_steps(const struct nb_train_spec *s, size_t n)
{
    if (s->max_steps > 0)
        return s->max_steps;
    size_t b = (size_t)s->batch;
    size_t spe = s->drop_last ? n / b : (n + b - 1) / b;
    return (long)spe * s->epochs;
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* probe.slice_at for a run of `steps` updates on n training samples: -1
 * becomes steps (the last step), then the list is sorted, each step once;
 * a step past the end is an error at slice_at's line.  Nothing to do
 * when the slice probe is off. */
static int resolve_slice_at(struct nb_runcfg *rc, const struct nb_run *run, long steps,
                            size_t n, struct nb_error *err)
{
    struct nb_probe_opts *o = &rc->probe;
    if (!rc->probes || !o->slice || o->n_slice_at == 0)
        return 0;
    for (int i = 0; i < o->n_slice_at; i++) {
        if (rc->slice_at[i] < 0)
            rc->slice_at[i] = steps;
        if (rc->slice_at[i] <= steps)
            continue;
        NB_ASSERT(run != NULL); /* nb_runcfg_bind_data's contract: probes on */
        const struct nb_train_spec *s = &rc->train;
        char why[160];
        if (s->max_steps > 0)
            snprintf(why, sizeof why, "[train] max_steps = %ld", s->max_steps);
        else
            snprintf(why, sizeof why, "%d epoch%s of %ld steps: %zu training samples in "
                     "batches of %d", s->epochs, s->epochs == 1 ? "" : "s",
                     s->epochs ? steps / s->epochs : 0, n, s->batch);
        nb_run_error(run, err, "probe", "slice_at",
                     "[probe] slice_at: step %ld is past the end of training (the run has "
                     "%ld steps, %s)", rc->slice_at[i], steps, why);
        return nb_error_hint(err, "slice_at takes steps 0 (the initial weights) to %ld (the "
                             "final ones); -1 is the last step", steps);
    }
    qsort(rc->slice_at, (size_t)o->n_slice_at, sizeof *rc->slice_at, cmp_long);
    int k = 0;
    for (int i = 0; i < o->n_slice_at; i++)
        if (k == 0 || rc->slice_at[i] != rc->slice_at[k - 1])
            rc->slice_at[k++] = rc->slice_at[i];
    o->n_slice_at = k;
    return 0;
}

int nb_runcfg_bind_data(struct nb_runcfg *rc, const struct nb_run *run,
                        const struct nb_data *d, struct nb_error *err)
{
    struct nb_model_desc *m = &rc->train.model;
    m->input = d->train.shape;
    if (d->train.classes > 0) {
        m->outputs = d->train.classes;
        m->loss = NB_LOSS_XENT;
    } else {
        m->outputs = d->train.tdim;
        m->loss = NB_LOSS_MSE;
    }
    long steps = total_steps(&rc->train, d->train.n);
    nb_norm_resolve_auto(&m->norm, steps);
    return resolve_slice_at(rc, run, steps, d->train.n, err);
}

size_t nb_runcfg_nominal(const struct nb_data_opts *o, struct nb_shape *shape,
                         int *classes, int *tdim)
{
    size_t n = 0;
    *shape = (struct nb_shape){1, 28, 28};
    *classes = 10;
    *tdim = 0;
    switch (o->source) {
    case NB_SRC_FASHION_MNIST:
    case NB_SRC_MNIST:
        n = 60000;
        break;
    case NB_SRC_CIFAR10:
        *shape = (struct nb_shape){3, 32, 32};
        n = 50000;
        break;
    case NB_SRC_BLOBS:
        n = o->synth.n_train ? o->synth.n_train : 10000;
        if (o->synth.classes)
            *classes = o->synth.classes;
        if (o->synth.shape.c)
            *shape = o->synth.shape;
        break;
    case NB_SRC_DLN: {
        int d = o->synth.shape.c ? o->synth.shape.c : 10;
        *shape = (struct nb_shape){d, 1, 1};
        *classes = 0;
        *tdim = d;
        n = o->synth.n_train ? o->synth.n_train : 1000;
        break;
    }
    case NB_SRC_IDX: /* read from the files at run time */
    case NB_SRC_COUNT:
        if (o->classes > 0)
            *classes = o->classes;
        break;
    }
    if (o->resize_h > 0 && o->source != NB_SRC_DLN) {
        shape->h = o->resize_h;
        shape->w = o->resize_w;
    }
    if (n) {
        size_t n_val = 0;
        if (o->val_split > 0.0 && o->val_split < 1.0)
            n_val = (size_t)floor(o->val_split * (double)n + 0.5);
        else if (o->val_split >= 1.0)
            n_val = (size_t)o->val_split;
        n = n_val < n ? n - n_val : 0;
        if (o->train_subset && o->train_subset < n)
            n = o->train_subset;
    }
    return n;
}

/* ======================================================================
 * The check
 * ====================================================================== */

/* A cached verdict: 0, or the key to blame with message and hint. */
struct verdict {
    uint64_t hash;
    char *key;
    int status;
    const char *section, *name; /* blamed key (static strings) */
    char msg[768];
    char hint[256];
};

static struct verdict *cache;
static size_t n_cache, cap_cache;

void nb_runcfg_cache_clear(void)
{
    for (size_t i = 0; i < n_cache; i++)
        free(cache[i].key);
    free(cache);
    cache = NULL;
    n_cache = cap_cache = 0;
}

size_t nb_runcfg_cache_size(void) { return n_cache; }


/* The part of a run that decides the model check: every [model] and
 * [norm] key plus the loop and data facts the check uses. */
static char *model_key(const struct nb_run *run, const struct nb_runcfg *rc,
                       size_t ntrain)
{
    struct nb_text b = {0};
    for (int i = 0; i < nb_key_count(); i++)
        if (!strcmp(nb_key_at(i)->section, "model") ||
            !strcmp(nb_key_at(i)->section, "norm"))
            nb_text_printf(&b, "%s%s\n", nb_key_at(i)->key, run->vals[i]->text);
    const struct nb_train_spec *s = &rc->train;
    const struct nb_norm_opts *n = &s->model.norm;
    char extra[256];
    snprintf(extra, sizeof extra,
             "batch %d drop_last %d input %dx%dx%d outputs %d loss %d n %zu "
             "renorm %ld %ld %ld hessian %d %d %d",
             s->batch, (int)s->drop_last, s->model.input.c, s->model.input.h,
             s->model.input.w, s->model.outputs, (int)s->model.loss, ntrain,
             n->renorm_warmup, n->renorm_dmax_steps, n->renorm_rmax_steps,
             (int)(rc->probes && rc->probe.hessian), (int)rc->probe.hessian_hvp,
             (int)rc->probe.hessian_mode);
    nb_text_printf(&b, "%s\n", extra);
    if (b.failed) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

/* The config key a model error is about, as the module named it in
 * e->key: "model.input" (the data's shape, which has no key) is data.resize
 * when the data are resized, else model.arch; an error without a key is
 * the architecture's. */
static void blame(const struct nb_error *e, const struct nb_runcfg *rc, const char **sec,
                  const char **key)
{
    int k = nb_key_lookup_name(e->key);
    if (!strcmp(e->key, "model.input"))
        k = nb_key_lookup_name(rc->data.resize_h ? "data.resize" : "model.arch");
    if (k < 0)
        k = nb_key_lookup_name("model.arch");
    *sec = nb_key_at(k)->section;
    *key = nb_key_at(k)->key;
}

/* The channel counts of the norm layers of desc (built with G = 1), as a
 * hint of the group counts that would fit. */
static void groups_hint(const struct nb_model_desc *desc, char *hint, size_t size)
{
    struct nb_model_desc d = *desc;
    struct nb_model m;
    struct nb_error e;
    d.norm.groups = 1;
    hint[0] = '\0';
    if (nb_model_build(&m, &d, 2, 0, &e) == 0) {
        int chans[64], nc = 0;
        for (int i = 0; i < m.n_layers; i++) {
            if (m.layers[i].ops != &nb_norm_ops)
                continue;
            int c = m.layers[i].in.c, seen = 0;
            for (int j = 0; j < nc; j++)
                seen |= chans[j] == c;
            if (!seen && nc < 64)
                chans[nc++] = c;
        }
        size_t k = (size_t)snprintf(hint, size, "the norm layers have");
        for (int j = 0; j < nc && k < size; j++)
            k += (size_t)snprintf(hint + k, size - k, "%s %d", j ? "," : "", chans[j]);
        if (k < size)
            k += (size_t)snprintf(hint + k, size - k, " channels; groups that divide "
                                                      "them all:");
        for (int g = 1; nc > 0 && g <= chans[0] && k < size; g++) {
            int ok = 1;
            for (int j = 0; j < nc; j++)
                ok &= chans[j] % g == 0;
            if (ok)
                k += (size_t)snprintf(hint + k, size - k, " %d", g);
        }
        if (k < size)
            snprintf(hint + k, size - k, " (or 0: per layer the largest divisor <= min(8, C/4))");
    }
    nb_model_free(&m);
}

/* Builds the model for a few samples and checks the training batches,
 * and the probes' demands on the model (probe.h nb_probe_check_model). */
static void model_verdict(const struct nb_runcfg *rc, size_t ntrain,
                          struct verdict *v)
{
    const struct nb_train_spec *s = &rc->train;
    const struct nb_norm_opts *n = &s->model.norm;
    bool bsets = nb_norm_type_over_batch(n->type);
    int B = s->batch;
    /* A batch that behaves as the real one in every batch check: at most
     * two samples per statistics set (ghost batch, device part). */
    int small = B < 2 ? B : 2;
    if (bsets && n->devices > 1)
        small = n->devices * (B / n->devices < 2 ? B / n->devices : 2);
    else if (bsets && n->norm_batch > 0)
        small = B < 2 * n->norm_batch ? B : 2 * n->norm_batch;
    if (small < 1)
        small = 1;
    int rem = (!s->drop_last && ntrain) ? (int)(ntrain % (size_t)B) : 0;
    int mb = rem > small ? rem : small;
    struct nb_model m;
    struct nb_error e;
    nb_error_clear(&e);
    v->status = 0;
    int r = nb_model_build(&m, &s->model, mb, 0, &e);
    if (r == NB_ENOMEM) {
        nb_model_free(&m);
        return; /* cannot tell here; the run will say */
    }
    if (r) {
        blame(&e, rc, &v->section, &v->name);
        if (!strcmp(v->name, "groups"))
            groups_hint(&s->model, v->hint, sizeof v->hint);
        else if (!strcmp(v->name, "arch") && rc->train.model.arch == NB_ARCH_DLN)
            snprintf(v->hint, sizeof v->hint,
                     "a deep linear network needs [data] source = dln");
        else if (!strcmp(v->name, "batch"))
            snprintf(v->hint, sizeof v->hint,
                     "use a batch of at least 2, a norm without batch "
                     "statistics (layer, group), or frozen = true with "
                     "frozen_from = 0");
    } else if ((r = nb_model_check_batch(&m, small, &e))) {
        blame(&e, rc, &v->section, &v->name);
    } else if (rem && (r = nb_model_check_batch(&m, rem, &e))) {
        v->section = "train";
        v->name = "drop_last";
        snprintf(v->hint, sizeof v->hint,
                 "the last batch of an epoch has %d sample(s) (%zu %% %d): "
                 "set drop_last = true", rem, ntrain, B);
    } else if (rc->probes && (r = nb_probe_check_model(&rc->probe, &m, &e))) {
        blame(&e, rc, &v->section, &v->name);
    }
    nb_model_free(&m);
    if (r) {
        v->status = NB_EINVAL;
        snprintf(v->msg, sizeof v->msg, "%s", e.msg);
        if (!v->hint[0] && e.hint[0])
            snprintf(v->hint, sizeof v->hint, "%s", e.hint);
    }
}

static int divisors_hint(struct nb_error *err, int b)
{
    char buf[200];
    size_t k = (size_t)snprintf(buf, sizeof buf, "divisors of %d:", b);
    int shown = 0;
    for (int d = 1; d <= b && k < sizeof buf; d++)
        if (b % d == 0 && shown++ < 16)
            k += (size_t)snprintf(buf + k, sizeof buf - k, " %d", d);
    return nb_error_hint(err, "%s", buf);
}

int nb_runcfg_check(const struct nb_run *run, struct nb_error *err)
{
    struct nb_runcfg rc;
    int r = nb_runcfg_from_run(run, &rc, err);
    if (r)
        return r;
    const struct nb_train_spec *s = &rc.train;
    const struct nb_norm_opts *n = &s->model.norm;
    struct nb_shape shape;
    int classes, tdim;
    size_t ntrain = nb_runcfg_nominal(&rc.data, &shape, &classes, &tdim);

    /* the data and the loop */
    if (rc.data.train_subset && ntrain && rc.data.train_subset > ntrain)
        return nb_run_error(run, err, "data", "train_subset",
                            "train_subset = %zu but the training set has only "
                            "%zu samples", rc.data.train_subset, ntrain);
    if (ntrain && (size_t)s->batch > ntrain)
        return nb_run_error(run, err, "train", "batch",
                            "batch %d is larger than the training set (%zu "
                            "samples)", s->batch, ntrain);

    /* batch-statistics options that must fit the batch */
    bool bsets = nb_norm_type_over_batch(n->type);
    if (bsets && n->norm_batch > 0 && n->devices > 1)
        return nb_run_error(run, err, "norm", "devices",
                            "give either norm_batch (%d) or devices (%d), not "
                            "both", n->norm_batch, n->devices);
    if (bsets && n->norm_batch > 0 && s->batch % n->norm_batch) {
        nb_run_error(run, err, "norm", "norm_batch",
                     "ghost batch norm_batch = %d does not divide [train] "
                     "batch = %d", n->norm_batch, s->batch);
        return divisors_hint(err, s->batch);
    }
    if (bsets && n->devices > 1 && s->batch % n->devices) {
        nb_run_error(run, err, "norm", "devices",
                     "devices = %d does not divide [train] batch = %d (every "
                     "device gets the same share)", n->devices, s->batch);
        return divisors_hint(err, s->batch);
    }
    if (s->model.dropout > 0 && s->model.dropout_place == NB_DROPOUT_BEFORE_NORM &&
        n->type == NB_NORM_NONE)
        return nb_run_error(run, err, "model", "dropout_place",
                            "dropout_place = before_norm with norm type none: there is "
                            "no norm to put dropout before, so dropout %g would apply "
                            "nowhere (use dropout_place = classifier, or a norm)",
                            s->model.dropout);
    if (n->renorm && n->type != NB_NORM_BATCH)
        return nb_run_error(run, err, "norm", "renorm",
                            "renorm is defined for batch norm only (type = %s)",
                            nb_norm_type_name(n->type));
    nb_norm_resolve_auto(&rc.train.model.norm, ntrain ? total_steps(s, ntrain)
                                                : s->max_steps > 0 ? s->max_steps
                                                                   : 160000);
    /* slice steps, where the run's length is known before loading */
    if (ntrain || s->max_steps > 0) {
        long steps = ntrain ? total_steps(s, ntrain) : s->max_steps;
        if ((r = resolve_slice_at(&rc, run, steps, ntrain, err)))
            return r;
    }

    /* the model, once per distinct model-relevant configuration */
    char *key = model_key(run, &rc, ntrain);
    if (!key)
        return nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
    uint64_t h = nb_fnv1a64(key, strlen(key));
    struct verdict *v = NULL;
    for (size_t i = 0; i < n_cache && !v; i++)
        if (cache[i].hash == h && !strcmp(cache[i].key, key))
            v = &cache[i];
    if (v) {
        free(key);
    } else {
        if (n_cache == cap_cache) {
            size_t cap = cap_cache ? 2 * cap_cache : 16;
            struct verdict *p = realloc(cache, cap * sizeof *p);
            if (!p) {
                free(key);
                return nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
            }
            cache = p;
            cap_cache = cap;
        }
        v = &cache[n_cache++];
        memset(v, 0, sizeof *v);
        v->hash = h;
        v->key = key;
        model_verdict(&rc, ntrain, v);
    }
    if (!v->status)
        return 0;
    nb_run_error(run, err, v->section, v->name, "%s", v->msg);
    if (v->hint[0])
        nb_error_hint(err, "%s", v->hint);
    return NB_EINVAL;
}

int nb_runcfg_check_ranks(const struct nb_run *run, int ranks, struct nb_error *err)
{
    struct nb_runcfg rc;
    int r = nb_runcfg_from_run(run, &rc, err);
    if (r || ranks <= 1)
        return r;
    const struct nb_train_spec *s = &rc.train;
    const struct nb_norm_opts *n = &s->model.norm;
    struct nb_shape shape;
    int classes, tdim;
    size_t ntrain = nb_runcfg_nominal(&rc.data, &shape, &classes, &tdim);
    int rem = (!s->drop_last && ntrain) ? (int)(ntrain % (size_t)s->batch) : 0;
    if (nb_norm_type_over_batch(n->type) && n->devices != ranks) {
        nb_run_error(run, err, "norm", "devices",
                     "[norm] devices = %d, but the run has %d MPI ranks: each rank is "
                     "one device of %s norm", n->devices, ranks, nb_norm_type_name(n->type));
        return nb_error_hint(err, "set devices = %d (with sync = true for statistics over "
                             "the whole batch), or run it with mpirun -np %d", ranks,
                             n->devices);
    }
    if (s->batch < ranks)
        return nb_run_error(run, err, "train", "batch",
                            "batch %d is smaller than the %d MPI ranks of the run (each "
                            "rank takes a slice of every batch)", s->batch, ranks);
    if (rem > 0 && rem < ranks) {
        nb_run_error(run, err, "train", "drop_last",
                     "the last batch of an epoch has %d sample(s) (%zu %% %d), fewer "
                     "than the %d MPI ranks of the run", rem, ntrain, s->batch, ranks);
        return nb_error_hint(err, "set drop_last = true");
    }
    /* each probe's on/off key is [probe] NAME */
    for (int k = 0; rc.probes && k < NB_PROBE_KIND_COUNT; k++)
        if (nb_run_get_bool(run, "probe", nb_probe_kinds[k].name)) {
            nb_run_error(run, err, "probe", nb_probe_kinds[k].name,
                         "[probe] %s is on, but probes measure the activations of one "
                         "process and this run is split over %d MPI ranks",
                         nb_probe_kinds[k].name, ranks);
            return nb_error_hint(err, "run the probes without mpirun (the same config "
                                 "in one process computes the same training)");
        }
    return 0;
}
