/* src/probe/landscape.c - Santurkar et al. (2018): the loss landscape
 * along the gradient (claims.md 1.a-1.c) and internal covariate shift
 * (Definition 2.1, claims.md 1.d).  Both run PROBE-mode forwards on the
 * training batch of the step. */
#include "probe/probe_impl.h"

#include <math.h>
#include <string.h>

/* min/max that let a NaN through to the max (a diverged point shows). */
static void band(const double *v, int n, double *lo, double *hi)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    bool nan = false;
    for (int i = 0; i < n; i++) {
        if (isnan(v[i])) {
            nan = true;
            continue;
        }
        if (v[i] < *lo)
            *lo = v[i];
        if (v[i] > *hi)
            *hi = v[i];
    }
    if (nan)
        *hi = NAN;
    if (*lo == INFINITY)
        *lo = NAN;
}

/* At w with the training gradient g (p->g) and the reference gradient
 * g0 = grad L(w) (p->gref), for each eta on the grid (a multiple of lr):
 *   loss[eta]  = L(w - eta g)
 *   dg[eta]    = ||grad L(w - eta g) - g0||_2
 *   beta[eta]  = dg[eta] / (eta ||g||_2)
 * then the band (min, max) of loss and dg and beta_eff = max beta. */
static void landscape(struct nb_probe *p, struct nb_model *m, const struct nbp_batch *b,
                      long step)
{
    const float *x = b->x, *t = b->t;
    const int *y = b->y;
    const int n = b->n;
    const double lr = b->lr, loss0 = b->loss0;
    const int P = p->o.eta_points;
    const size_t np = p->n_params;
    double *L = p->lscratch, *DG = L + P, *B = DG + P;
    double gnorm = nbp_norm(p->g, np);
    struct nb_probe_row r = nbp_row(m, step, NB_PROBE_LANDSCAPE, -1, "probe");
    r.param = "eta";
    for (int k = 0; k < P; k++) {
        double eta = p->eta[k] * lr;
        nbp_set_params(p, m, -eta, p->g, 0, NULL);
        L[k] = nbp_forward(p, m, x, y, t, n, NB_PROBE);
        nb_model_backward(m, n);
        const float *gr = m->grads.data, *g0 = p->gref;
        double s = 0;
        for (size_t i = 0; i < np; i++) {
            double d = (double)gr[i] - (double)g0[i];
            s += d * d;
        }
        DG[k] = sqrt(s);
        B[k] = (eta > 0 && gnorm > 0) ? DG[k] / (eta * gnorm) : NAN;
        r.param_value = eta;
        nbp_emit(p, &r, "loss", L[k]);
        nbp_emit(p, &r, "grad_change", DG[k]);
        nbp_emit(p, &r, "beta", B[k]);
    }
    double lmin, lmax, dmin, dmax, bmin, bmax;
    band(L, P, &lmin, &lmax);
    band(DG, P, &dmin, &dmax);
    band(B, P, &bmin, &bmax);
    r = nbp_row(m, step, NB_PROBE_LANDSCAPE, -1, "probe");
    nbp_emit(p, &r, "loss0", loss0);
    nbp_emit(p, &r, "grad_norm", gnorm);
    nbp_emit(p, &r, "loss_min", lmin);
    nbp_emit(p, &r, "loss_max", lmax);
    nbp_emit(p, &r, "grad_change_min", dmin);
    nbp_emit(p, &r, "grad_change_max", dmax);
    nbp_emit(p, &r, "beta_eff", bmax);
}

/* The weight parameter of layer i (conv/linear), or NULL. */
static const struct nb_param *weight_of(const struct nb_layer *l)
{
    for (int k = 0; k < l->n_params; k++)
        if (l->params[k].flags & NB_PARAM_WEIGHT)
            return &l->params[k];
    return NULL;
}

/* Plain SGD step w = theta - lr g on every parameter of layers [a, b);
 * returns the number of parameters stepped. */
static size_t step_layers(struct nb_probe *p, struct nb_model *m, int a, int b,
                          double lr)
{
    size_t done = 0;
    for (int i = a; i < b; i++) {
        const struct nb_layer *l = &m->layers[i];
        for (int k = 0; k < l->n_params; k++) {
            size_t off = l->params[k].offset, cnt = l->params[k].count;
            float *w = m->params.data + off;
            const float *th = p->theta + off, *g = p->g + off;
            for (size_t j = 0; j < cnt; j++)
                w[j] = (float)((double)th[j] - lr * (double)g[j]);
            done += cnt;
        }
    }
    return done;
}

/* For the conv/linear layers in order, G_i = the weight gradient at w
 * (p->gref), G'_i = the same gradient on the same batch after every
 * parameter of the layers before layer i took the step theta - lr g
 * (the training gradient); the parameters of layer i and after stay.
 * Incremental: each forward adds the layers since the previous weight
 * layer to the stepped set.  While nothing precedes (the first layer),
 * G' = G. */
static void ics(struct nb_probe *p, struct nb_model *m, const struct nbp_batch *b, long step)
{
    const float *x = b->x, *t = b->t;
    const int *y = b->y;
    const int n = b->n;
    const double lr = b->lr;
    memcpy(m->params.data, p->theta, p->n_params * sizeof(float));
    int upto = 0;       /* layers [0, upto) are stepped */
    size_t stepped = 0; /* parameters stepped so far */
    for (int i = 0; i < m->n_layers; i++) {
        const struct nb_param *w = weight_of(&m->layers[i]);
        if (!w)
            continue;
        stepped += step_layers(p, m, upto, i, lr);
        upto = i;
        const float *G = p->gref + w->offset, *Gs = G;
        if (stepped) {
            nbp_forward(p, m, x, y, t, n, NB_PROBE);
            nb_model_backward(m, n);
            Gs = m->grads.data + w->offset;
        }
        double gg = 0, ss = 0, gs = 0, dd = 0;
        for (size_t j = 0; j < w->count; j++) {
            double a = G[j], b = Gs[j];
            gg += a * a;
            ss += b * b;
            gs += a * b;
            dd += (a - b) * (a - b);
        }
        double cs = (gg > 0 && ss > 0) ? gs / (sqrt(gg) * sqrt(ss)) : NAN;
        struct nb_probe_row r = nbp_row(m, step, NB_PROBE_ICS, i, "probe");
        r.param = "lr";
        r.param_value = lr;
        nbp_emit(p, &r, "l2", sqrt(dd));
        nbp_emit(p, &r, "cos", cs);
        nbp_emit(p, &r, "grad_norm", sqrt(gg));
        nbp_emit(p, &r, "grad_norm_shifted", sqrt(ss));
    }
}

const char *const nbp_landscape_stats[] = {
    "loss",     "grad_change",     "beta",            "loss0",    "grad_norm", "loss_min",
    "loss_max", "grad_change_min", "grad_change_max", "beta_eff", "seconds",   NULL};

static bool landscape_due(const struct nb_probe_opts *o, long step)
{
    return o->landscape && step % o->landscape_every == 0;
}

/* both probes forward in PROBE mode (batch statistics, no running-stat update) */
static const char *probe_mode(const struct nb_probe_opts *o)
{
    (void)o;
    return "probe";
}

const struct nbp_ops nbp_landscape_ops = {
    .phase = NBP_ON_REFERENCE_GRADIENT,
    .due = landscape_due,
    .mode = probe_mode,
    .run = landscape,
};

const char *const nbp_ics_stats[] = {"l2", "cos", "grad_norm", "grad_norm_shifted", "seconds",
                                     NULL};

static bool ics_due(const struct nb_probe_opts *o, long step)
{
    return o->ics && step % o->ics_every == 0;
}

const struct nbp_ops nbp_ics_ops = {
    .phase = NBP_ON_REFERENCE_GRADIENT,
    .due = ics_due,
    .mode = probe_mode,
    .run = ics,
};
