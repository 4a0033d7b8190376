/* src/probe/stats.c - activation distribution statistics (Santurkar
 * Fig. 2/8, Ioffe Fig. 1) and gradient statistics per layer, read off the
 * training forward/backward of the step: no forward of their own. */
#include "probe/probe_impl.h"

#include <math.h>
#include <string.h>

#include "layers/norm.h"

int nbp_dist_tensors(const struct nb_model *m, int *act, int *layer,
                     bool *is_input)
{
    bool has_norm = false;
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].ops == &nb_norm_ops)
            has_norm = true;
    int k = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const struct nb_layer_ops *ops = m->layers[i].ops;
        if (has_norm && ops == &nb_norm_ops) {
            if (act) {
                act[k] = m->in_idx[i];
                act[k + 1] = i + 1;
            }
            if (layer)
                layer[k] = layer[k + 1] = i;
            if (is_input) {
                is_input[k] = true;
                is_input[k + 1] = false;
            }
            k += 2;
        } else if (!has_norm && (ops == &nb_conv2d_ops || ops == &nb_linear_ops)) {
            if (act)
                act[k] = i + 1;
            if (layer)
                layer[k] = i;
            if (is_input)
                is_input[k] = false;
            k++;
        }
    }
    return k;
}

static void swapf(float *a, float *b)
{
    float t = *a;
    *a = *b;
    *b = t;
}

/* Hoare selection: reorders x[0..n) so that x[k] is the k-th smallest,
 * with x[i] <= x[k] for i < k and x[i] >= x[k] for i > k.  Expected O(n),
 * robust to many equal values (ReLU zeros); bounds-checked scans so that
 * NaN cannot run off the ends. */
static void select_k(float *x, size_t n, size_t k)
{
    ptrdiff_t lo = 0, hi = (ptrdiff_t)n - 1, kk = (ptrdiff_t)k;
    while (hi > lo) {
        ptrdiff_t mid = lo + (hi - lo) / 2;
        if (x[mid] < x[lo])
            swapf(&x[mid], &x[lo]);
        if (x[hi] < x[lo])
            swapf(&x[hi], &x[lo]);
        if (x[hi] < x[mid])
            swapf(&x[hi], &x[mid]);
        float pivot = x[mid];
        ptrdiff_t i = lo, j = hi;
        while (i <= j) {
            while (i < hi && x[i] < pivot)
                i++;
            while (j > lo && x[j] > pivot)
                j--;
            if (i <= j) {
                swapf(&x[i], &x[j]);
                i++;
                j--;
            }
        }
        /* now x[lo..j] <= pivot <= x[i..hi], and x(j..i) == pivot */
        if (kk <= j)
            hi = j;
        else if (kk >= i)
            lo = i;
        else
            return;
    }
}

static float min_of(const float *x, size_t n)
{
    float v = x[0];
    for (size_t i = 1; i < n; i++)
        if (x[i] < v)
            v = x[i];
    return v;
}

double nb_probe_percentile(float *x, size_t n, double q)
{
    if (n == 0)
        return NAN;
    double pos = q * (double)(n - 1);
    if (pos < 0)
        pos = 0;
    if (pos > (double)(n - 1))
        pos = (double)(n - 1);
    size_t k = (size_t)floor(pos);
    double f = pos - (double)k;
    select_k(x, n, k);
    double a = x[k];
    if (f == 0 || k + 1 >= n)
        return a;
    double b = min_of(x + k + 1, n - k - 1);
    return a + f * (b - a);
}

/* Three increasing percentiles of x[0..n) sharing the partial order:
 * after selecting the k-th, everything right of it is >= it, so the next
 * selection runs on x[k+1..n). */
static void percentiles3(float *x, size_t n, const double q[3], double out[3])
{
    size_t base = 0;
    for (int j = 0; j < 3; j++) {
        double pos = q[j] * (double)(n - 1);
        size_t k = (size_t)floor(pos);
        double f = pos - (double)k;
        double a;
        if (k < base) {
            /* only when k == base - 1: x[k] is the previous selection */
            a = x[k];
        } else {
            select_k(x + base, n - base, k - base);
            a = x[k];
            base = k + 1;
        }
        double b = (f > 0 && k + 1 < n) ? min_of(x + k + 1, n - k - 1) : a;
        out[j] = a + f * (b - a);
    }
}

/* Statistics of one tensor: activation `act` (n samples), the input
 * (in) or output of layer `layer`. */
static void dist_one(struct nb_probe *p, struct nb_model *m, int n, long step,
                     int act, int layer, bool in)
{
    static const double q[3] = {0.15, 0.50, 0.85};
    static const char *const qn[3] = {"p15", "p50", "p85"};
    static const char *const dn[3] = {"p15_drift", "p50_drift", "p85_drift"};
    const struct nb_shape *sh = act == 0 ? &m->layers[0].in : &m->layers[act - 1].out;
    size_t cnt = (size_t)n * nb_shape_numel(sh);
    NB_ASSERT(cnt >= 1 && cnt <= p->scratch_count);
    const float *full = m->acts[act], *v = full;
    long unit = p->o.dist_unit;
    if (unit >= 0) {
        /* unit k alone: its values over the batch and positions (NCHW) */
        if (unit >= sh->c)
            return;
        size_t hw = (size_t)sh->h * (size_t)sh->w;
        for (int i = 0; i < n; i++)
            memcpy(p->scratch + (size_t)i * hw,
                   v + ((size_t)i * (size_t)sh->c + (size_t)unit) * hw, hw * sizeof(float));
        cnt = (size_t)n * hw;
        v = p->scratch;
    }
    double s = 0, m2 = 0;
    for (size_t i = 0; i < cnt; i++) /* two passes, in double */
        s += v[i];
    double mean = s / (double)cnt;
    for (size_t i = 0; i < cnt; i++) {
        double d = (double)v[i] - mean;
        m2 += d * d;
    }
    double var = m2 / (double)cnt;
    if (v != p->scratch)
        memcpy(p->scratch, v, cnt * sizeof(float));
    double pq[3];
    percentiles3(p->scratch, cnt, q, pq);
    struct nb_probe_row r = nbp_row(m, step, NB_PROBE_DIST, layer, "train");
    r.param = in ? "in" : "out"; /* which tensor; the unit, if one */
    if (unit >= 0)
        r.param_value = (double)unit;
    nbp_emit(p, &r, "mean", mean);
    nbp_emit(p, &r, "var", var);
    for (int j = 0; j < 3; j++)
        nbp_emit(p, &r, qn[j], pq[j]);
    size_t slot = 2 * (size_t)layer + (in ? 0 : 1);
    if (!p->first_valid[slot]) {
        for (int j = 0; j < 3; j++)
            p->first_q[3 * slot + (size_t)j] = pq[j];
        p->first_valid[slot] = true;
    }
    for (int j = 0; j < 3; j++)
        nbp_emit(p, &r, dn[j], fabs(pq[j] - p->first_q[3 * slot + (size_t)j]));
    /* per channel (unit): mean and variance over the samples and, for
     * conv, the H x W positions (Santurkar's convention), their changes
     * since the last call averaged over the channels (over unit k alone
     * with dist_unit = k) */
    int C = sh->c, c0 = unit >= 0 ? (int)unit : 0, c1 = unit >= 0 ? (int)unit + 1 : C;
    size_t HW = (size_t)sh->h * (size_t)sh->w, numel = (size_t)C * HW;
    NB_ASSERT(C <= p->dist_cmax);
    double *pcm = p->prev_cmean + slot * (size_t)p->dist_cmax;
    double *pcv = p->prev_cvar + slot * (size_t)p->dist_cmax;
    double cdm = 0, cdv = 0;
    for (int c = c0; c < c1; c++) {
        double cs = 0, cm2 = 0;
        for (int i = 0; i < n; i++) {
            const float *pl = full + (size_t)i * numel + (size_t)c * HW;
            for (size_t j = 0; j < HW; j++)
                cs += pl[j];
        }
        double cn = (double)n * (double)HW, cmean = cs / cn;
        for (int i = 0; i < n; i++) {
            const float *pl = full + (size_t)i * numel + (size_t)c * HW;
            for (size_t j = 0; j < HW; j++) {
                double d = (double)pl[j] - cmean;
                cm2 += d * d;
            }
        }
        double cvar = cm2 / cn;
        cdm += fabs(cmean - pcm[c]);
        cdv += fabs(cvar - pcv[c]);
        pcm[c] = cmean;
        pcv[c] = cvar;
    }
    if (p->prev_valid[slot]) {
        nbp_emit(p, &r, "dmean", fabs(mean - p->prev_mean[slot]));
        nbp_emit(p, &r, "dvar", fabs(var - p->prev_var[slot]));
        nbp_emit(p, &r, "cdmean", cdm / (c1 - c0));
        nbp_emit(p, &r, "cdvar", cdv / (c1 - c0));
    }
    p->prev_mean[slot] = mean;
    p->prev_var[slot] = var;
    p->prev_valid[slot] = true;
}

/* The tensors of nbp_dist_tensors, in the same order, read off the
 * activations of the training forward (which must still be in m->acts). */
static void dist(struct nb_probe *p, struct nb_model *m, const struct nbp_batch *b, long step)
{
    const int n = b->n;
    bool has_norm = false;
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].ops == &nb_norm_ops)
            has_norm = true;
    for (int i = 0; i < m->n_layers; i++) {
        const struct nb_layer_ops *ops = m->layers[i].ops;
        if (has_norm && ops == &nb_norm_ops) {
            dist_one(p, m, n, step, m->in_idx[i], i, true);
            dist_one(p, m, n, step, i + 1, i, false);
        } else if (!has_norm && (ops == &nb_conv2d_ops || ops == &nb_linear_ops)) {
            dist_one(p, m, n, step, i + 1, i, false);
        }
    }
}

static void gradstats(struct nb_probe *p, struct nb_model *m, const struct nbp_batch *b,
                      long step)
{
    (void)b;
    double total = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const struct nb_layer *l = &m->layers[i];
        if (l->n_params == 0)
            continue;
        double gs = 0, ws = 0;
        for (int k = 0; k < l->n_params; k++) {
            const float *g = p->g + l->params[k].offset, *w = p->theta + l->params[k].offset;
            for (size_t j = 0; j < l->params[k].count; j++) {
                gs += (double)g[j] * (double)g[j];
                ws += (double)w[j] * (double)w[j];
            }
        }
        total += gs;
        struct nb_probe_row r = nbp_row(m, step, NB_PROBE_GRADSTATS, i, "train");
        nbp_emit(p, &r, "grad_norm", sqrt(gs));
        nbp_emit(p, &r, "weight_norm", sqrt(ws));
    }
    struct nb_probe_row r = nbp_row(m, step, NB_PROBE_GRADSTATS, -1, "train");
    nbp_emit(p, &r, "grad_norm", sqrt(total));
}

const char *const nbp_dist_stats[] = {
    "mean",   "var",   "p15",       "p50",       "p85",       "dmean",   "dvar",
    "cdmean", "cdvar", "p15_drift", "p50_drift", "p85_drift", "seconds", NULL};

static bool dist_due(const struct nb_probe_opts *o, long step)
{
    return o->dist && step % o->dist_every == 0;
}

/* both read the training step's own (TRAIN mode) pass */
static const char *train_mode(const struct nb_probe_opts *o)
{
    (void)o;
    return "train";
}

const struct nbp_ops nbp_dist_ops = {
    .phase = NBP_ON_TRAINING_PASS,
    .due = dist_due,
    .mode = train_mode,
    .run = dist,
};

const char *const nbp_gradstats_stats[] = {"grad_norm", "weight_norm", "seconds", NULL};

/* gradstats shares dist's schedule (dist_every) */
static bool gradstats_due(const struct nb_probe_opts *o, long step)
{
    return o->gradstats && step % o->dist_every == 0;
}

const struct nbp_ops nbp_gradstats_ops = {
    .phase = NBP_ON_TRAINING_PASS,
    .due = gradstats_due,
    .mode = train_mode,
    .run = gradstats,
};
