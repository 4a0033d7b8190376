/* src/probe/hessian.c - curvature after PyHessian (Yao et al. 2020;
 * claims.md 5.5): the top Hessian eigenvalue by power iteration and the
 * trace by Hutchinson's estimator with Rademacher vectors, both with
 * PyHessian's stopping rule (relative change < tol, at most max_iter
 * iterations), over the parameters of every layer (norm gains and shifts
 * included) and the mean loss over the first hessian_samples training
 * samples, in EVAL (running statistics) or PROBE (batch statistics per
 * chunk of the training batch) mode.
 *
 * Hessian-vector products (hessian_hvp):
 *  - exact (the default wherever the model allows it): Pearlmutter's
 *    R-operator, model.h nb_model_hvp, per chunk after its forward and
 *    backward, as PyHessian's double backward does: H v of the loss the
 *    forward computed, on the linear piece of the ReLUs and max-pools it is
 *    on.  No step size, no truncation error; float rounding only (the
 *    chunks' products are summed in double).  Every layer kind has the
 *    R-operators, the norm layers in every mode except two with batch
 *    statistics: lp norm and batch renorm (norm_rop.c).
 *  - fd (hessian_hvp = fd, and auto where a layer has no exact product,
 *    i.e. hessian_mode = probe with lp norm or renorm): central
 *    differences of exact gradients,
 *      H v ~ (g(theta + h v) - g(theta - h v)) / (2 h),  ||v|| = 1,
 *    h = hessian_fd_rel * max(1, ||theta||): the truncation error is
 *    O(h^2) (nil for a quadratic loss) and float rounding of theta +- h v
 *    is about 6e-8 ||theta|| / h = 6e-5 relative.  Wrong where the step
 *    crosses a ReLU or max-pool kink: on a ReLU net without norm the
 *    difference quotient of a weight whose step flips a unit is the jump
 *    of the gradient over 2h, of either sign and unbounded as h -> 0,
 *    though every diagonal entry of the true Hessian is >= 0 there (the
 *    loss along one weight is convex on each linear piece); issue 17
 *    measured a trace of -670 +- 120 that way.  The rows say which
 *    (hvp_exact).
 * An exact product costs a forward, a backward and the R-passes of every
 * chunk: 2.6-2.8 training steps of its samples on the cnn and the mlp
 * (with or without batch norm, batch 128, measured on the 2-core VM);
 * central differences cost two forwards and backwards, 2.0.  So a call on
 * N samples costs about 2.7 N / batch training steps per product, times
 * lambda_iters + trace_iters (36 on a fresh cnn: 22 s on 200 samples).
 *
 * Hutchinson's trace comes with a 95 % interval, mean -+ t_{0.975, k-1}
 * sd / sqrt(k) over its k Rademacher vectors; power iteration with
 * lambda_residual = ||H v - lambda v|| / |lambda| at its last vector. */
#include "probe/probe_impl.h"

#include <math.h>
#include <string.h>

#include <gsl/gsl_cdf.h>

#include "core/rng.h"

/* H v into p->acc2 (double) for unit v (float, n_params), by central
 * differences with step h. */
static void hvp_fd(struct nb_probe *p, struct nb_model *m, const float *v,
                   double h, size_t count, int chunk, enum nb_mode mode)
{
    size_t np = p->n_params;
    nbp_set_params(p, m, h, v, 0, NULL);
    nbp_pass(p, m, count, chunk, mode, true, NULL);
    memcpy(p->acc2, p->acc, np * sizeof *p->acc2);
    nbp_set_params(p, m, -h, v, 0, NULL);
    nbp_pass(p, m, count, chunk, mode, true, NULL);
    double s = 1.0 / (2.0 * h);
    for (size_t i = 0; i < np; i++)
        p->acc2[i] = (p->acc2[i] - p->acc[i]) * s;
}

/* H v into p->acc2: exact (parameters at theta) or by differences. */
static void hvp(struct nb_probe *p, struct nb_model *m, const float *v, bool exact,
                double h, size_t count, int chunk, enum nb_mode mode)
{
    if (exact)
        nbp_pass_hvp(p, m, v, count, chunk, mode);
    else
        hvp_fd(p, m, v, h, count, chunk, mode);
}

static double dot_fd(const float *v, const double *w, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)v[i] * w[i];
    return s;
}

static void hessian(struct nb_probe *p, struct nb_model *m, const struct nbp_batch *b,
                    long step)
{
    (void)b;
    const enum nb_mode mode = p->o.hessian_mode == NB_HESSIAN_PROBE ? NB_PROBE : NB_EVAL;
    const char *bn = nb_mode_name(mode);
    const size_t np = p->n_params;
    const double tol = p->o.hessian_tol;
    const int maxit = p->o.hessian_max_iter;
    int chunk;
    size_t N = nbp_pass_samples(p, m, p->o.hessian_samples, mode, &chunk);
    struct nb_probe_row r = nbp_row(m, step, NB_PROBE_HESSIAN, -1, bn);
    r.param = "samples";
    r.param_value = (double)N;
    if (N == 0 || np == 0) {
        nbp_emit(p, &r, "lambda_max", NAN);
        return;
    }
    /* exact wherever the model has it (nb_probe_check_model refused
     * hessian_hvp = exact without it at step 0, and frozen statistics
     * only add support later) */
    const bool exact = p->o.hessian_hvp != NB_HVP_FD && p->hvp.hv &&
                       nb_model_hvp_unsupported(m, mode) < 0;
    NB_ASSERT(exact || p->o.hessian_hvp != NB_HVP_EXACT);
    if (exact)
        p->hessian_exact++;
    else
        p->hessian_fd++;
    double h = exact ? NAN : p->o.hessian_fd_rel * fmax(1.0, nbp_norm(p->theta, np));
    memcpy(m->params.data, p->theta, np * sizeof(float));
    double loss = nbp_pass(p, m, N, chunk, mode, false, NULL);

    /* power iteration (PyHessian's eigenvalues(top_n = 1)) */
    float *v = p->v;
    for (size_t i = 0; i < np; i++)
        v[i] = nb_rng_normal(p->rng);
    double vn = nbp_norm(v, np);
    for (size_t i = 0; i < np; i++)
        v[i] = (float)(v[i] / vn);
    double lambda = NAN, resid = NAN;
    int lit = 0;
    bool lconv = false;
    for (int it = 0; it < maxit; it++) {
        hvp(p, m, v, exact, h, N, chunk, mode);
        double tmp = dot_fd(v, p->acc2, np);
        double hn = 0, rn = 0;
        for (size_t i = 0; i < np; i++) {
            double d = p->acc2[i] - tmp * (double)v[i];
            hn += p->acc2[i] * p->acc2[i];
            rn += d * d;
        }
        hn = sqrt(hn);
        resid = sqrt(rn) / fabs(tmp);
        lit++;
        bool done = it > 0 && fabs(lambda - tmp) / (fabs(lambda) + 1e-6) < tol;
        lambda = tmp;
        if (done) {
            lconv = true;
            break;
        }
        if (!(hn > 0) || !isfinite(hn))
            break;
        for (size_t i = 0; i < np; i++)
            v[i] = (float)(p->acc2[i] / hn);
    }

    /* Hutchinson: tr H = E[z^T H z], z Rademacher; z^T H z = P v^T H v
     * with v = z / sqrt(P).  PyHessian's rule: stop when the running mean
     * moves by less than tol relative to the previous mean (which starts
     * at 0, so at least two vectors). */
    const double P = (double)np, inv = 1.0 / sqrt(P);
    double mean = 0, m2 = 0, prev = 0;
    int tit = 0;
    bool tconv = false;
    for (int it = 0; it < maxit; it++) {
        unsigned long bits = 0;
        for (size_t i = 0; i < np; i++) {
            if (i % 32 == 0)
                bits = gsl_rng_get(p->rng);
            v[i] = (float)((bits & 1UL) ? inv : -inv);
            bits >>= 1;
        }
        hvp(p, m, v, exact, h, N, chunk, mode);
        double s = P * dot_fd(v, p->acc2, np);
        tit++;
        double d = s - mean;
        mean += d / tit;
        m2 += d * (s - mean);
        if (fabs(mean - prev) / (fabs(prev) + 1e-6) < tol) {
            tconv = true;
            break;
        }
        prev = mean;
    }
    double se = tit > 1 ? sqrt(m2 / (tit - 1) / tit) : NAN;
    double half = tit > 1 ? gsl_cdf_tdist_Pinv(0.975, (double)(tit - 1)) * se : NAN;

    nbp_emit(p, &r, "loss", loss);
    nbp_emit(p, &r, "lambda_max", lambda);
    nbp_emit(p, &r, "lambda_iters", lit);
    nbp_emit(p, &r, "lambda_converged", lconv);
    nbp_emit(p, &r, "lambda_residual", resid);
    nbp_emit(p, &r, "trace", mean);
    nbp_emit(p, &r, "trace_iters", tit);
    nbp_emit(p, &r, "trace_converged", tconv);
    nbp_emit(p, &r, "trace_stderr", se);
    nbp_emit(p, &r, "trace_ci_lo", mean - half);
    nbp_emit(p, &r, "trace_ci_hi", mean + half);
    nbp_emit(p, &r, "hvp_exact", exact);
    nbp_emit(p, &r, "fd_step", h);
}

const char *const nbp_hessian_stats[] = {
    "loss",         "lambda_max",      "lambda_iters", "lambda_converged", "lambda_residual",
    "trace",        "trace_iters",     "trace_converged", "trace_stderr",  "trace_ci_lo",
    "trace_ci_hi",  "hvp_exact",       "fd_step",      "seconds",          NULL};

static bool hessian_due(const struct nb_probe_opts *o, long step)
{
    return o->hessian && o->hessian_every > 0 && step % o->hessian_every == 0;
}

static bool hessian_at_end(const struct nb_probe_opts *o, long steps)
{
    (void)steps;
    return o->hessian;
}

static const char *hessian_mode(const struct nb_probe_opts *o)
{
    return nb_hessian_mode_names[o->hessian_mode];
}

const struct nbp_ops nbp_hessian_ops = {
    .phase = NBP_AT_THETA,
    .uses_data = true,
    .due = hessian_due,
    .at_end = hessian_at_end,
    .mode = hessian_mode,
    .run = hessian,
};
