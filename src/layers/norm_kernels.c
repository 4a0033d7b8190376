/* src/layers/norm_kernels.c - see norm_kernels.h.
 *
 * The build uses plain -O2, at which GCC 12 does not vectorize loops with
 * a run-time trip count nor any floating-point reduction.  These loops are
 * the memory-bound core of every norm layer, so with GCC or Clang they are
 * written with generic vector types (16 bytes: SSE2 on x86-64, NEON on
 * AArch64; no target flags needed), 8 floats per step, and a scalar tail.
 * The float -> double widening of the reductions uses SSE2 intrinsics on
 * x86-64 (cvtps2pd; GCC lowers the generic conversion to scalar code).
 * Other compilers get the scalar loops only.  Unaligned loads and stores
 * go through memcpy, which compiles to single unaligned moves. */
#include "layers/norm_kernels.h"

#include <math.h>
#include <string.h>

/* Build knobs for testing the fallbacks: NB_NORMK_NO_AVX2 keeps the
 * 16-byte paths only; NB_NORMK_SCALAR turns every vector path off. */
#if defined(__SSE2__) && !defined(NB_NORMK_SCALAR)
#define NB_NORMK_SSE2 1
#include <emmintrin.h>
/* a0 + a1 + a2 + a3, summed over both lanes */
static inline double hsum4_pd(__m128d a0, __m128d a1, __m128d a2, __m128d a3)
{
    double h[2];
    _mm_storeu_pd(h, _mm_add_pd(_mm_add_pd(a0, a1), _mm_add_pd(a2, a3)));
    return h[0] + h[1];
}
#else
#define NB_NORMK_SSE2 0
#endif

/* x86-64 with GCC or Clang: the two hot double reductions also have an
 * AVX2 + FMA version (4 doubles per operation), chosen at run time with
 * __builtin_cpu_supports, so the build needs no -m flags and runs on any
 * x86-64.  Both versions accumulate in double; only the order of the
 * additions differs. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(NB_NORMK_NO_AVX2) && !defined(NB_NORMK_SCALAR)
#define NB_NORMK_AVX2 1
#include <immintrin.h>
#define NB_AVX2_FN __attribute__((target("avx2,fma")))

static inline int have_avx2(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

static NB_AVX2_FN double hsum256(__m256d v)
{
    __m128d lo = _mm256_castpd256_pd128(v), hi = _mm256_extractf128_pd(v, 1);
    lo = _mm_add_pd(lo, hi);
    return _mm_cvtsd_f64(_mm_add_sd(lo, _mm_unpackhi_pd(lo, lo)));
}

/* sums of (x_i - x0) and (x_i - x0)^2 over i < m rounded down to 4;
 * returns the count done */
static NB_AVX2_FN size_t moments_avx2(double *s_out, double *q_out,
                                      const float *x, size_t m, double x0)
{
    const __m256d o = _mm256_set1_pd(x0);
    __m256d s0 = _mm256_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
    __m256d q0 = s0, q1 = s0, q2 = s0, q3 = s0;
    size_t i = 0;
    for (; i + 16 <= m; i += 16) {
        __m256d a = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i)), o);
        __m256d b = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i + 4)), o);
        __m256d c = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i + 8)), o);
        __m256d d = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i + 12)), o);
        s0 = _mm256_add_pd(s0, a);
        s1 = _mm256_add_pd(s1, b);
        s2 = _mm256_add_pd(s2, c);
        s3 = _mm256_add_pd(s3, d);
        q0 = _mm256_fmadd_pd(a, a, q0);
        q1 = _mm256_fmadd_pd(b, b, q1);
        q2 = _mm256_fmadd_pd(c, c, q2);
        q3 = _mm256_fmadd_pd(d, d, q3);
    }
    for (; i + 4 <= m; i += 4) {
        __m256d a = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i)), o);
        s0 = _mm256_add_pd(s0, a);
        q0 = _mm256_fmadd_pd(a, a, q0);
    }
    *s_out = hsum256(_mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3)));
    *q_out = hsum256(_mm256_add_pd(_mm256_add_pd(q0, q1), _mm256_add_pd(q2, q3)));
    return i;
}

/* sums of dy_i and dy_i (x_i - mu) over i < m rounded down to 4 */
static NB_AVX2_FN size_t bwd_sums_avx2(double *s_out, double *q_out,
                                       const float *dy, const float *x,
                                       double mu, size_t m)
{
    const __m256d vm = _mm256_set1_pd(mu);
    __m256d s0 = _mm256_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
    __m256d q0 = s0, q1 = s0, q2 = s0, q3 = s0;
    size_t i = 0;
#define NB_BWD_STEP(k, S, Q)                                                \
    do {                                                                    \
        __m256d g = _mm256_cvtps_pd(_mm_loadu_ps(dy + i + (k)));            \
        __m256d u = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i + (k))), vm); \
        S = _mm256_add_pd(S, g);                                            \
        Q = _mm256_fmadd_pd(g, u, Q);                                       \
    } while (0)
    for (; i + 16 <= m; i += 16) {
        NB_BWD_STEP(0, s0, q0);
        NB_BWD_STEP(4, s1, q1);
        NB_BWD_STEP(8, s2, q2);
        NB_BWD_STEP(12, s3, q3);
    }
    for (; i + 4 <= m; i += 4)
        NB_BWD_STEP(0, s0, q0);
#undef NB_BWD_STEP
    *s_out = hsum256(_mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3)));
    *q_out = hsum256(_mm256_add_pd(_mm256_add_pd(q0, q1), _mm256_add_pd(q2, q3)));
    return i;
}

/* y_i = a (x_i - mu) + b over i < m rounded down to 8 */
static NB_AVX2_FN size_t affine_avx2(float *y, const float *x, float a,
                                     float mu, float b, size_t m)
{
    const __m256 va = _mm256_set1_ps(a), vm = _mm256_set1_ps(mu),
                 vb = _mm256_set1_ps(b);
    size_t i = 0;
    for (; i + 16 <= m; i += 16) {
        __m256 u = _mm256_sub_ps(_mm256_loadu_ps(x + i), vm);
        __m256 v = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vm);
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, u, vb));
        _mm256_storeu_ps(y + i + 8, _mm256_fmadd_ps(va, v, vb));
    }
    for (; i + 8 <= m; i += 8) {
        __m256 u = _mm256_sub_ps(_mm256_loadu_ps(x + i), vm);
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, u, vb));
    }
    return i;
}

/* dx_i = A dy_i + B (x_i - mu) + C0 over i < m rounded down to 8 */
static NB_AVX2_FN size_t bwd_dx_avx2(float *dx, const float *dy,
                                     const float *x, float A, float B,
                                     float mu, float C0, size_t m)
{
    const __m256 va = _mm256_set1_ps(A), vb = _mm256_set1_ps(B),
                 vm = _mm256_set1_ps(mu), vc = _mm256_set1_ps(C0);
    size_t i = 0;
    for (; i + 8 <= m; i += 8) {
        __m256 u = _mm256_sub_ps(_mm256_loadu_ps(x + i), vm);
        __m256 t = _mm256_fmadd_ps(vb, u, vc);
        _mm256_storeu_ps(dx + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(dy + i), t));
    }
    return i;
}

static NB_AVX2_FN size_t rstd_avx2(double *rstd, const double *var,
                                   double eps, size_t n)
{
    const __m256d one = _mm256_set1_pd(1.0), ve = _mm256_set1_pd(eps);
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        _mm256_storeu_pd(rstd + i,
                         _mm256_div_pd(one, _mm256_sqrt_pd(_mm256_add_pd(
                                                _mm256_loadu_pd(var + i), ve))));
    return i;
}

static NB_AVX2_FN size_t col_add_avx2(double *acc, const float *x, size_t C)
{
    size_t c = 0;
    for (; c + 4 <= C; c += 4)
        _mm256_storeu_pd(acc + c, _mm256_add_pd(_mm256_loadu_pd(acc + c),
                                                _mm256_cvtps_pd(_mm_loadu_ps(x + c))));
    return c;
}

static NB_AVX2_FN size_t col_sqdev_avx2(double *acc, const float *x,
                                        const double *mean, size_t C)
{
    size_t c = 0;
    for (; c + 4 <= C; c += 4) {
        __m256d d = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + c)),
                                  _mm256_loadu_pd(mean + c));
        _mm256_storeu_pd(acc + c, _mm256_fmadd_pd(d, d, _mm256_loadu_pd(acc + c)));
    }
    return c;
}

static NB_AVX2_FN size_t col_bwd_avx2(double *sdy, double *sdyx,
                                      const float *dy, const float *x,
                                      const float *mu, size_t C)
{
    size_t c = 0;
    for (; c + 4 <= C; c += 4) {
        __m256d g = _mm256_cvtps_pd(_mm_loadu_ps(dy + c));
        __m256d u = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + c)),
                                  _mm256_cvtps_pd(_mm_loadu_ps(mu + c)));
        _mm256_storeu_pd(sdy + c, _mm256_add_pd(_mm256_loadu_pd(sdy + c), g));
        _mm256_storeu_pd(sdyx + c, _mm256_fmadd_pd(g, u, _mm256_loadu_pd(sdyx + c)));
    }
    return c;
}

static NB_AVX2_FN size_t col_affine_avx2(float *y, const float *x,
                                         const float *a, const float *mu,
                                         const float *b, size_t C)
{
    size_t c = 0;
    for (; c + 8 <= C; c += 8) {
        __m256 u = _mm256_sub_ps(_mm256_loadu_ps(x + c), _mm256_loadu_ps(mu + c));
        _mm256_storeu_ps(y + c, _mm256_fmadd_ps(_mm256_loadu_ps(a + c), u,
                                                _mm256_loadu_ps(b + c)));
    }
    return c;
}

static NB_AVX2_FN size_t col_dx_avx2(float *dx, const float *dy,
                                     const float *x, const float *A,
                                     const float *B, const float *mu,
                                     const float *C0, size_t C)
{
    size_t c = 0;
    for (; c + 8 <= C; c += 8) {
        __m256 u = _mm256_sub_ps(_mm256_loadu_ps(x + c), _mm256_loadu_ps(mu + c));
        __m256 t = _mm256_fmadd_ps(_mm256_loadu_ps(B + c), u, _mm256_loadu_ps(C0 + c));
        _mm256_storeu_ps(dx + c, _mm256_fmadd_ps(_mm256_loadu_ps(A + c),
                                                 _mm256_loadu_ps(dy + c), t));
    }
    return c;
}

static NB_AVX2_FN size_t gain_affine_avx2(float *y, const float *x,
                                          const float *gamma,
                                          const float *beta, float a,
                                          float mu, size_t m)
{
    const __m256 va = _mm256_set1_ps(a), vm = _mm256_set1_ps(mu);
    size_t j = 0;
    for (; j + 8 <= m; j += 8) {
        __m256 u = _mm256_sub_ps(_mm256_loadu_ps(x + j), vm);
        __m256 g = _mm256_mul_ps(_mm256_loadu_ps(gamma + j), va);
        _mm256_storeu_ps(y + j, _mm256_fmadd_ps(g, u, _mm256_loadu_ps(beta + j)));
    }
    return j;
}

static NB_AVX2_FN size_t gain_bwd_avx2(double *cdb, double *cda, double *g1,
                                       double *g2, const float *dy,
                                       const float *x, const float *gamma,
                                       float mu, double rstd, size_t m)
{
    const __m256d vm = _mm256_set1_pd(mu), vr = _mm256_set1_pd(rstd);
    __m256d s1 = _mm256_setzero_pd(), s2 = s1;
    size_t j = 0;
    for (; j + 4 <= m; j += 4) {
        __m256d g = _mm256_cvtps_pd(_mm_loadu_ps(dy + j));
        __m256d u = _mm256_mul_pd(
            _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + j)), vm), vr);
        __m256d gg = _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(gamma + j)), g);
        _mm256_storeu_pd(cdb + j, _mm256_add_pd(_mm256_loadu_pd(cdb + j), g));
        _mm256_storeu_pd(cda + j, _mm256_fmadd_pd(g, u, _mm256_loadu_pd(cda + j)));
        s1 = _mm256_add_pd(s1, gg);
        s2 = _mm256_fmadd_pd(gg, u, s2);
    }
    *g1 += hsum256(s1);
    *g2 += hsum256(s2);
    return j;
}

static NB_AVX2_FN size_t gain_dx_avx2(float *dx, const float *dy,
                                      const float *x, const float *gamma,
                                      float a, float B, float mu, float C0,
                                      size_t m)
{
    const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(B),
                 vm = _mm256_set1_ps(mu), vc = _mm256_set1_ps(C0);
    size_t j = 0;
    for (; j + 8 <= m; j += 8) {
        __m256 u = _mm256_sub_ps(_mm256_loadu_ps(x + j), vm);
        __m256 t = _mm256_fmadd_ps(vb, u, vc);
        __m256 g = _mm256_mul_ps(_mm256_loadu_ps(gamma + j), va);
        _mm256_storeu_ps(dx + j, _mm256_fmadd_ps(g, _mm256_loadu_ps(dy + j), t));
    }
    return j;
}
#else
#define NB_NORMK_AVX2 0
#endif

#if (defined(__GNUC__) || defined(__clang__)) && !defined(NB_NORMK_SCALAR)
#define NB_NORMK_VEC 1
typedef float v4f __attribute__((vector_size(16)));
typedef float v2f __attribute__((vector_size(8)));
typedef double v2d __attribute__((vector_size(16)));
typedef long long v2l __attribute__((vector_size(16)));

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
#if NB_NORMK_AVX2
    if (m >= 16 && have_avx2())
        i = moments_avx2(&s, &q, x, m, x0);
    else
#endif
#if NB_NORMK_SSE2
    {
    __m128d s0 = _mm_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
    __m128d q0 = s0, q1 = s0, q2 = s0, q3 = s0;
    const __m128d o = _mm_set1_pd(x0);
    for (; i + 8 <= m; i += 8) {
        __m128 u = _mm_loadu_ps(x + i), v = _mm_loadu_ps(x + i + 4);
        __m128d a = _mm_sub_pd(_mm_cvtps_pd(u), o);
        __m128d b = _mm_sub_pd(_mm_cvtps_pd(_mm_movehl_ps(u, u)), o);
        __m128d c = _mm_sub_pd(_mm_cvtps_pd(v), o);
        __m128d d = _mm_sub_pd(_mm_cvtps_pd(_mm_movehl_ps(v, v)), o);
        s0 = _mm_add_pd(s0, a);
        s1 = _mm_add_pd(s1, b);
        s2 = _mm_add_pd(s2, c);
        s3 = _mm_add_pd(s3, d);
        q0 = _mm_add_pd(q0, _mm_mul_pd(a, a));
        q1 = _mm_add_pd(q1, _mm_mul_pd(b, b));
        q2 = _mm_add_pd(q2, _mm_mul_pd(c, c));
        q3 = _mm_add_pd(q3, _mm_mul_pd(d, d));
    }
    s = hsum4_pd(s0, s1, s2, s3);
    q = hsum4_pd(q0, q1, q2, q3);
    }
#elif NB_NORMK_VEC
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
#if NB_NORMK_AVX2
    if (m >= 8 && have_avx2())
        i = affine_avx2(y, x, a, mu, b, m);
#endif
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

void nb_normk_bwd_sums(double *sdy, double *sdyx, const float *dy,
                       const float *x, float mu, size_t m)
{
    double s = 0, q = 0;
    size_t i = 0;
#if NB_NORMK_AVX2
    if (m >= 16 && have_avx2())
        i = bwd_sums_avx2(&s, &q, dy, x, mu, m);
    else
#endif
#if NB_NORMK_SSE2
    {
    __m128d s0 = _mm_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
    __m128d q0 = s0, q1 = s0, q2 = s0, q3 = s0;
    const __m128d vm = _mm_set1_pd(mu);
    for (; i + 8 <= m; i += 8) {
        __m128 g = _mm_loadu_ps(dy + i), h = _mm_loadu_ps(dy + i + 4);
        __m128 u = _mm_loadu_ps(x + i), v = _mm_loadu_ps(x + i + 4);
        __m128d g0 = _mm_cvtps_pd(g), g1 = _mm_cvtps_pd(_mm_movehl_ps(g, g));
        __m128d g2 = _mm_cvtps_pd(h), g3 = _mm_cvtps_pd(_mm_movehl_ps(h, h));
        s0 = _mm_add_pd(s0, g0);
        s1 = _mm_add_pd(s1, g1);
        s2 = _mm_add_pd(s2, g2);
        s3 = _mm_add_pd(s3, g3);
        q0 = _mm_add_pd(q0, _mm_mul_pd(g0, _mm_sub_pd(_mm_cvtps_pd(u), vm)));
        q1 = _mm_add_pd(q1, _mm_mul_pd(g1, _mm_sub_pd(
                                               _mm_cvtps_pd(_mm_movehl_ps(u, u)), vm)));
        q2 = _mm_add_pd(q2, _mm_mul_pd(g2, _mm_sub_pd(_mm_cvtps_pd(v), vm)));
        q3 = _mm_add_pd(q3, _mm_mul_pd(g3, _mm_sub_pd(
                                               _mm_cvtps_pd(_mm_movehl_ps(v, v)), vm)));
    }
    s = hsum4_pd(s0, s1, s2, s3);
    q = hsum4_pd(q0, q1, q2, q3);
    }
#elif NB_NORMK_VEC
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
#if NB_NORMK_AVX2
    if (m >= 8 && have_avx2())
        i = bwd_dx_avx2(dx, dy, x, A, B, mu, C0, m);
#endif
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

void nb_normk_col_add(double *acc, const float *x, size_t C)
{
    size_t c = 0;
#if NB_NORMK_AVX2
    if (have_avx2())
        c = col_add_avx2(acc, x, C);
#endif
    for (; c < C; c++)
        acc[c] += x[c];
}

void nb_normk_col_sqdev(double *acc, const float *x, const double *mean,
                        size_t C)
{
    size_t c = 0;
#if NB_NORMK_AVX2
    if (have_avx2())
        c = col_sqdev_avx2(acc, x, mean, C);
#endif
    for (; c < C; c++) {
        double d = x[c] - mean[c];
        acc[c] += d * d;
    }
}

void nb_normk_col_bwd(double *sdy, double *sdyx, const float *dy,
                      const float *x, const float *mu, size_t C)
{
    size_t c = 0;
#if NB_NORMK_AVX2
    if (have_avx2())
        c = col_bwd_avx2(sdy, sdyx, dy, x, mu, C);
#endif
    for (; c < C; c++) {
        double g = dy[c];
        sdy[c] += g;
        sdyx[c] += g * ((double)x[c] - (double)mu[c]);
    }
}

void nb_normk_col_affine(float *y, const float *x, const float *a,
                         const float *mu, const float *b, size_t C)
{
    size_t c = 0;
#if NB_NORMK_AVX2
    if (have_avx2())
        c = col_affine_avx2(y, x, a, mu, b, C);
#endif
    for (; c < C; c++)
        y[c] = a[c] * (x[c] - mu[c]) + b[c];
}

void nb_normk_col_dx(float *dx, const float *dy, const float *x,
                     const float *A, const float *B, const float *mu,
                     const float *C0, size_t C)
{
    size_t c = 0;
#if NB_NORMK_AVX2
    if (have_avx2())
        c = col_dx_avx2(dx, dy, x, A, B, mu, C0, C);
#endif
    for (; c < C; c++)
        dx[c] = A[c] * dy[c] + B[c] * (x[c] - mu[c]) + C0[c];
}

void nb_normk_gain_affine(float *y, const float *x, const float *gamma,
                          const float *beta, float a, float mu, size_t m)
{
    size_t j = 0;
#if NB_NORMK_AVX2
    if (have_avx2())
        j = gain_affine_avx2(y, x, gamma, beta, a, mu, m);
#endif
    for (; j < m; j++)
        y[j] = (gamma[j] * a) * (x[j] - mu) + beta[j];
}

void nb_normk_gain_bwd(double *cdb, double *cda, double *g1, double *g2,
                       const float *dy, const float *x, const float *gamma,
                       float mu, double rstd, size_t m)
{
    size_t j = 0;
#if NB_NORMK_AVX2
    if (have_avx2())
        j = gain_bwd_avx2(cdb, cda, g1, g2, dy, x, gamma, mu, rstd, m);
#endif
    double s1 = 0, s2 = 0;
    for (; j < m; j++) {
        double g = dy[j], u = rstd * ((double)x[j] - (double)mu);
        double gg = (double)gamma[j] * g;
        cdb[j] += g;
        cda[j] += g * u;
        s1 += gg;
        s2 += gg * u;
    }
    *g1 += s1;
    *g2 += s2;
}

void nb_normk_gain_dx(float *dx, const float *dy, const float *x,
                      const float *gamma, float a, float B, float mu,
                      float C0, size_t m)
{
    size_t j = 0;
#if NB_NORMK_AVX2
    if (have_avx2())
        j = gain_dx_avx2(dx, dy, x, gamma, a, B, mu, C0, m);
#endif
    for (; j < m; j++)
        dx[j] = (gamma[j] * a) * dy[j] + B * (x[j] - mu) + C0;
}

void nb_normk_rstd(double *rstd, const double *var, double eps, size_t n)
{
    size_t i = 0;
#if NB_NORMK_AVX2
    if (n >= 4 && have_avx2())
        i = rstd_avx2(rstd, var, eps, n);
#endif
#if NB_NORMK_SSE2
    const __m128d one = _mm_set1_pd(1.0), ve = _mm_set1_pd(eps);
    for (; i + 2 <= n; i += 2)
        _mm_storeu_pd(rstd + i, _mm_div_pd(one, _mm_sqrt_pd(_mm_add_pd(
                                                   _mm_loadu_pd(var + i), ve))));
#endif
    for (; i < n; i++)
        rstd[i] = 1.0 / sqrt(var[i] + eps);
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
