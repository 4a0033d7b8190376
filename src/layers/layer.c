/* src/layers/layer.c - helpers shared by every layer kind. */
#include "layers/layer.h"

#include <stdio.h>
#include <string.h>

static const char *const mode_names[] = {
    [NB_TRAIN] = "train", [NB_EVAL] = "eval", [NB_PROBE] = "probe",
};
_Static_assert(sizeof mode_names / sizeof mode_names[0] == NB_MODE_COUNT,
               "mode_names out of sync with enum nb_mode");

const char *nb_mode_name(enum nb_mode m)
{
    return (m >= 0 && m < NB_MODE_COUNT) ? mode_names[m] : "?";
}

int nb_layer_add_param(struct nb_layer *l, const char *name, size_t count,
                       unsigned flags, struct nb_error *err)
{
    if (l->n_params >= NB_MAX_PARAMS) {
        nb_error_set(err, NB_EINVAL, NULL, 0,
                     "layer %s: too many parameter blocks", l->name);
        return -1;
    }
    struct nb_param *p = &l->params[l->n_params];
    memset(p, 0, sizeof *p);
    p->name = name;
    p->count = count;
    p->flags = flags;
    return l->n_params++;
}

int nb_layer_add_state(struct nb_layer *l, const char *name, size_t count,
                       struct nb_error *err)
{
    if (l->n_state >= NB_MAX_STATE) {
        nb_error_set(err, NB_EINVAL, NULL, 0,
                     "layer %s: too many state blocks", l->name);
        return -1;
    }
    struct nb_state *s = &l->state[l->n_state];
    memset(s, 0, sizeof *s);
    s->name = name;
    s->count = count;
    return l->n_state++;
}

int nb_layer_setup(struct nb_layer *l, const struct nb_layer_ops *ops,
                   const char *name, const struct nb_shape *in, int max_batch,
                   const void *opts, struct nb_error *err)
{
    struct nb_shape in2 = l->in2;
    memset(l, 0, sizeof *l);
    l->in2 = in2;
    l->ops = ops;
    snprintf(l->name, sizeof l->name, "%s", name ? name : ops->kind);
    l->in = *in;
    l->max_batch = max_batch;
    if (in->c <= 0 || in->h <= 0 || in->w <= 0 || max_batch <= 0)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "layer %s: bad input shape (%d,%d,%d) or batch %d",
                            l->name, in->c, in->h, in->w, max_batch);
    int rc = ops->setup(l, opts, err);
    if (rc) {
        if (ops->destroy)
            ops->destroy(l);
        l->priv = NULL;
        l->ops = NULL;
    }
    return rc;
}

void nb_layer_destroy(struct nb_layer *l)
{
    if (l->ops && l->ops->destroy)
        l->ops->destroy(l);
    memset(l, 0, sizeof *l);
}

bool nb_layer_rsupports(const struct nb_layer *l, enum nb_mode mode)
{
    if (!l->ops || !l->ops->rforward || !l->ops->rbackward)
        return false;
    return !l->ops->rsupports || l->ops->rsupports(l, mode);
}

void nb_layer_rbackward_adjoint(struct nb_layer *l, const float *x,
                                const float *y, const float *rx,
                                const float *dy, const float *rdy,
                                float *rdx, int n)
{
    NB_UNUSED(rx);
    NB_UNUSED(dy);
    NB_ASSERT(l->n_params == 0);
    l->ops->backward(l, x, y, rdy, rdx, n);
}
