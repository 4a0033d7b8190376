/* src/layers/norm_kernels.c - see norm_kernels.h.
 *
 * The build uses plain -O2, at which GCC 12 does not vectorize loops with
 * a run-time trip count nor any floating-point reduction.  These loops are
 * the memory-bound core of every norm layer, so with GCC or Clang they are
 * written with generic vector types (16 bytes: SSE2 on x86-64, NEON on
 * AArch64; no target flags needed), 8 floats per step, and a scalar tail.
 * Other compilers get the scalar loops only.  Unaligned loads and stores
 * go through memcpy, which compiles to single unaligned moves. */
#include "layers/norm_kernels.h"

#include <math.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define NB_NORMK_VEC 1
typedef float v4f __attribute__((vector_size(16)));
typedef float v2f __attribute__((vector_size(8)));
typedef double v2d __attribute__((vector_size(16)));

static inline v4f ld4(const float *p)
{
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void st4(float *p, v4f v) { memcpy(p, &v, sizeof v); }

/* two floats at p widened to double */
static inline v2d ld2d(const float *p)
{
    v2f v;
    memcpy(&v, p, sizeof v);
    return __builtin_convertvector(v, v2d);
}

static inline v4f splat4(float a) { return (v4f){a, a, a, a}; }
static inline v2d splat2d(double a) { return (v2d){a, a}; }
#else
#define NB_NORMK_VEC 0
#endif

void nb_normk_moments(double *mean, double *m2, const float *x, size_t m)
{
    const double x0 = x[0];
    double s = 0, q = 0;
    size_t i = 0;
#if NB_NORMK_VEC
    v2d vs0 = splat2d(0), vs1 = vs0, vs2 = vs0, vs3 = vs0;
    v2d vq0 = vs0, vq1 = vs0, vq2 = vs0, vq3 = vs0;
    const v2d o = splat2d(x0);
    for (; i + 8 <= m; i += 8) {
        v2d a = ld2d(x + i) - o, b = ld2d(x + i + 2) - o;
        v2d c = ld2d(x + i + 4) - o, d = ld2d(x + i + 6) - o;
        vs0 += a;
        vs1 += b;
        vs2 += c;
        vs3 += d;
        vq0 += a * a;
        vq1 += b * b;
        vq2 += c * c;
        vq3 += d * d;
    }
    v2d vs = (vs0 + vs1) + (vs2 + vs3), vq = (vq0 + vq1) + (vq2 + vq3);
    s = vs[0] + vs[1];
    q = vq[0] + vq[1];
#endif
    for (; i < m; i++) {
        double d = (double)x[i] - x0;
        s += d;
        q += d * d;
    }
    double ds = s / (double)m;
    *mean = x0 + ds;
    double v = q - s * ds;
    *m2 = v > 0 ? v : 0;
}

void nb_normk_lp_partial(double *mean, double *q, const float *x, size_t m,
                         int p)
{
    double s = 0, a = 0;
    size_t i = 0;
    if (p == 0) { /* inf: max |x| (exact in float) */
        float mx = 0;
        for (i = 0; i < m; i++) {
            float v = fabsf(x[i]);
            s += x[i];
            mx = v > mx ? v : mx;
        }
        *mean = s / (double)m;
        *q = mx;
        return;
    }
#if NB_NORMK_VEC
    v2d vs0 = splat2d(0), vs1 = vs0, va0 = vs0, va1 = vs0;
    if (p == 1) {
        const v2d sign = splat2d(-0.0);
        for (; i + 4 <= m; i += 4) {
            v2d u = ld2d(x + i), w = ld2d(x + i + 2);
            vs0 += u;
            vs1 += w;
            /* |u| by clearing the sign bit */
            typedef long long v2l __attribute__((vector_size(16)));
            va0 += (v2d)((v2l)u & ~(v2l)sign);
            va1 += (v2d)((v2l)w & ~(v2l)sign);
        }
    } else {
        for (; i + 4 <= m; i += 4) {
            v2d u = ld2d(x + i), w = ld2d(x + i + 2);
            vs0 += u;
            vs1 += w;
            va0 += u * u;
            va1 += w * w;
        }
    }
    v2d vs = vs0 + vs1, va = va0 + va1;
    s = vs[0] + vs[1];
    a = va[0] + va[1];
#endif
    for (; i < m; i++) {
        double v = x[i];
        s += v;
        a += p == 1 ? fabs(v) : v * v;
    }
    *mean = s / (double)m;
    *q = a;
}

size_t nb_normk_argabs(const float *x, size_t m, float amax)
{
    for (size_t i = 0; i < m; i++)
        if (fabsf(x[i]) == amax)
            return i;
    return 0;
}

void nb_normk_affine(float *y, const float *x, float a, float mu, float b,
                     size_t m)
{
    size_t i = 0;
#if NB_NORMK_VEC
    const v4f va = splat4(a), vm = splat4(mu), vb = splat4(b);
    for (; i + 8 <= m; i += 8) {
        st4(y + i, va * (ld4(x + i) - vm) + vb);
        st4(y + i + 4, va * (ld4(x + i + 4) - vm) + vb);
    }
#endif
    for (; i < m; i++)
        y[i] = a * (x[i] - mu) + b;
}

void nb_normk_scale_shift(float *y, const float *s, const float *t, size_t m)
{
    for (size_t i = 0; i < m; i++)
        y[i] = s[i] * y[i] + t[i];
}

void nb_normk_bwd_sums(double *sdy, double *sdyx, const float *dy,
                       const float *x, float mu, size_t m)
{
    double s = 0, q = 0;
    size_t i = 0;
#if NB_NORMK_VEC
    v2d vs0 = splat2d(0), vs1 = vs0, vs2 = vs0, vs3 = vs0;
    v2d vq0 = vs0, vq1 = vs0, vq2 = vs0, vq3 = vs0;
    const v2d vm = splat2d(mu);
    for (; i + 8 <= m; i += 8) {
        v2d g0 = ld2d(dy + i), g1 = ld2d(dy + i + 2);
        v2d g2 = ld2d(dy + i + 4), g3 = ld2d(dy + i + 6);
        vs0 += g0;
        vs1 += g1;
        vs2 += g2;
        vs3 += g3;
        vq0 += g0 * (ld2d(x + i) - vm);
        vq1 += g1 * (ld2d(x + i + 2) - vm);
        vq2 += g2 * (ld2d(x + i + 4) - vm);
        vq3 += g3 * (ld2d(x + i + 6) - vm);
    }
    v2d vs = (vs0 + vs1) + (vs2 + vs3), vq = (vq0 + vq1) + (vq2 + vq3);
    s = vs[0] + vs[1];
    q = vq[0] + vq[1];
#endif
    for (; i < m; i++) {
        double g = dy[i];
        s += g;
        q += g * ((double)x[i] - (double)mu);
    }
    *sdy = s;
    *sdyx = q;
}

void nb_normk_bwd_dx(float *dx, const float *dy, const float *x, float A,
                     float B, float mu, float C0, size_t m)
{
    size_t i = 0;
#if NB_NORMK_VEC
    const v4f va = splat4(A), vb = splat4(B), vm = splat4(mu), vc = splat4(C0);
    for (; i + 8 <= m; i += 8) {
        st4(dx + i, va * ld4(dy + i) + vb * (ld4(x + i) - vm) + vc);
        st4(dx + i + 4,
            va * ld4(dy + i + 4) + vb * (ld4(x + i + 4) - vm) + vc);
    }
#endif
    for (; i < m; i++)
        dx[i] = A * dy[i] + B * (x[i] - mu) + C0;
}

void nb_normk_bwd_dx_sign(float *dx, const float *dy, const float *x, float A,
                          float C0, float E, size_t m)
{
    for (size_t i = 0; i < m; i++) {
        float sg = x[i] > 0 ? 1.0f : x[i] < 0 ? -1.0f : 0.0f;
        dx[i] = A * dy[i] + C0 + E * sg;
    }
}

void nb_normk_mul(float *out, const float *a, const float *b, size_t m)
{
    size_t i = 0;
#if NB_NORMK_VEC
    for (; i + 8 <= m; i += 8) {
        st4(out + i, ld4(a + i) * ld4(b + i));
        st4(out + i + 4, ld4(a + i + 4) * ld4(b + i + 4));
    }
#endif
    for (; i < m; i++)
        out[i] = a[i] * b[i];
}
