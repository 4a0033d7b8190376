/* src/model/popstats.c - whole-model operations on the normalization
 * layers: population statistics recomputed on data (precise BN, domain
 * shift) and folding eval-mode BN into the preceding conv/linear. */
#include <limits.h>
#include <string.h>

#include "model/model.h"

int nb_model_recompute_bn(struct nb_model *m, const struct nb_dataset *ds,
                          int batch, size_t samples, enum nb_pop_formula f,
                          struct nb_error *err)
{
    if (batch < 1 || batch > m->max_batch)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "recompute: batch %d outside 1..%d", batch, m->max_batch);
    struct nb_loader ld;
    int rc = nb_loader_init(&ld, ds, batch, true, NULL, err);
    if (rc)
        return rc;
    for (int i = 0; i < m->n_layers; i++)
        nb_norm_recompute_begin(&m->layers[i]);
    /* stochastic layers draw from the probe stream, so training's streams
     * see nothing of this */
    gsl_rng *drop = m->ctx.rng_dropout, *noise = m->ctx.rng_noise;
    m->ctx.rng_dropout = m->ctx.rng_noise = m->ctx.rng_probe;
    nb_loader_epoch(&ld);
    size_t want = samples > 0 && samples < ds->n ? samples : ds->n, done = 0;
    const float *x, *t;
    const int *y;
    int n;
    while (done < want && (n = nb_loader_next(&ld, &x, &y, &t)) > 0) {
        nb_model_forward(m, x, y, t, n, NB_TRAIN);
        done += (size_t)n;
    }
    m->ctx.rng_dropout = drop;
    m->ctx.rng_noise = noise;
    /* the loader took at least one whole batch (it refuses a set smaller
     * than one), so every layer's count of batches is positive */
    nb_model_recompute_write(m, f);
    nb_loader_free(&ld);
    return (int)(done < INT_MAX ? done : INT_MAX);
}

void nb_model_recompute_write(struct nb_model *m, enum nb_pop_formula f)
{
    for (int i = 0; i < m->n_layers; i++)
        (void)nb_norm_recompute_end(&m->layers[i], f);
}

/* A dropout right before a norm exists only in the normalized model. */
static bool skipped(const struct nb_model *m, int i)
{
    const struct nb_layer *l = &m->layers[i];
    if (l->ops == &nb_norm_ops)
        return true;
    return l->ops == &nb_dropout_ops && i + 1 < m->n_layers &&
           m->layers[i + 1].ops == &nb_norm_ops;
}

int nb_model_fold(const struct nb_model *m, struct nb_model *out,
                  struct nb_error *err)
{
    memset(out, 0, sizeof *out);
    if (m->desc.placement != NB_PLACE_PRE && m->desc.norm.type != NB_NORM_NONE)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "folding needs placement pre (conv -> norm); with post a ReLU "
                            "sits between the conv and the norm");
    /* every norm must directly follow a conv or linear layer (through a
     * dropout, the identity in EVAL), or it would vanish unfolded */
    for (int i = 0; i < m->n_layers; i++) {
        if (m->layers[i].ops != &nb_norm_ops)
            continue;
        int k = i - 1;
        if (k > 0 && m->layers[k].ops == &nb_dropout_ops)
            k--;
        if (k < 0 || (m->layers[k].ops != &nb_conv2d_ops && m->layers[k].ops != &nb_linear_ops))
            return nb_error_set(err, NB_EINVAL, NULL, 0,
                                "layer %s follows %s, not a conv or linear layer: there is "
                                "nothing to fold it into", m->layers[i].name,
                                k < 0 ? "the input" : m->layers[k].name);
    }
    struct nb_model_desc d = m->desc;
    d.norm.type = NB_NORM_NONE;
    d.norm.noisy = false;
    int rc = nb_model_build(out, &d, m->max_batch, 0, err);
    if (rc)
        return rc;
    int j = 0, folded = 0;
    for (int i = 0; i < m->n_layers; i++) {
        if (skipped(m, i))
            continue;
        const struct nb_layer *src = &m->layers[i];
        struct nb_layer *dst = &out->layers[j++];
        NB_ASSERT(dst->ops == src->ops);
        bool conv = src->ops == &nb_conv2d_ops || src->ops == &nb_linear_ops;
        const struct nb_param *sw = NULL, *sb = NULL;
        struct nb_param *dw = NULL, *db = NULL;
        for (int p = 0; p < src->n_params; p++) {
            if (src->params[p].flags & NB_PARAM_WEIGHT)
                sw = &src->params[p];
            if (src->params[p].flags & NB_PARAM_BIAS)
                sb = &src->params[p];
        }
        for (int p = 0; p < dst->n_params; p++) {
            if (dst->params[p].flags & NB_PARAM_WEIGHT)
                dw = &dst->params[p];
            if (dst->params[p].flags & NB_PARAM_BIAS)
                db = &dst->params[p];
        }
        if (!conv) {
            /* parameter-free layers (or identical ones) copy over */
            for (int p = 0; p < src->n_params && p < dst->n_params; p++)
                memcpy(dst->params[p].value, src->params[p].value,
                       src->params[p].count * sizeof(float));
            continue;
        }
        NB_ASSERT(sw && dw && db && sw->count == dw->count);
        memcpy(dw->value, sw->value, sw->count * sizeof(float));
        if (sb)
            memcpy(db->value, sb->value, sb->count * sizeof(float));
        else
            memset(db->value, 0, db->count * sizeof(float));
        /* the norm that follows this layer, if any */
        int k = i + 1;
        if (k < m->n_layers && m->layers[k].ops == &nb_dropout_ops &&
            k + 1 < m->n_layers && m->layers[k + 1].ops == &nb_norm_ops)
            k++;
        if (k < m->n_layers && m->layers[k].ops == &nb_norm_ops) {
            int out_c = src->out.c;
            rc = nb_norm_fold(&m->layers[k], dw->value, db->value, out_c,
                              dw->count / (size_t)out_c);
            if (rc) {
                nb_error_set(err, rc, NULL, 0, "layer %s: this norm cannot be folded",
                             m->layers[k].name);
                nb_model_free(out);
                return rc;
            }
            folded++;
        }
    }
    NB_ASSERT(j == out->n_layers);
    return folded;
}
