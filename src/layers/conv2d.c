/* src/layers/conv2d.c - 2-D convolution (cross-correlation, as PyTorch's
 * nn.Conv2d) by im2col + sgemm, and by Winograd F(2x2, 3x3) for 3x3,
 * stride-1, pad-1 convolutions (see its section below; nb_conv2d_opts.algo
 * chooses).
 *
 * Shapes: x (N, C, H, W) -> y (N, O, OH, OW) with
 *   OH = (H + 2 pad - k) / stride + 1,   OW likewise,
 * weight [O, C*k*k] row-major (= PyTorch's (O, C, k, k)), optional bias [O].
 *
 *   y[n, o, oh, ow] = b[o] + sum_{c, i, j} w[o, c, i, j]
 *                         * x[n, c, oh*stride - pad + i, ow*stride - pad + j]
 * (x read as 0 outside the image).
 *
 * The hot loop of the project.  With K = C*k*k and P = OH*OW, a tile of
 * nb samples (or, when one sample's columns exceed the budget, a band of
 * output rows of one sample; then P below is the band's rows * OW) is
 * unrolled into one column matrix
 *   col (K, nb*P),  col[(c*k + i)*k + j, s*P + q] = x[s, c, ih(q, i), iw(q, j)]
 * and the three products are sgemms on its column blocks col_s (K, P)
 * (leading dimension nb*P):
 *   forward   y_s (O, P)    = W (O, K) col_s (K, P)
 *   weights   dW (O, K)    += dy_s (O, P) col_s^T (P, K), computed as
 *             dWt (K, O)    = sum_s col_s (K, P) dy_s^T (P, O) in scratch and
 *             added transposed once per backward (this orientation of the
 *             product runs 12-20% faster in OpenBLAS for M = O = 16, 32)
 *   input     dcol_s (K, P) = W^T (K, O) dy_s (O, P),  dx_s += col2im(dcol_s)
 * y_s and dy_s are used in place (NCHW, leading dimension OH*OW), so there
 * are no transposing copies.  The gemms run per sample: M = O is small but
 * N = P and K are not, and OpenBLAS runs these shapes as fast per sample
 * as on a whole tile (one (O, nb*P) product measured no faster and needs
 * the copies).  The tile bounds the scratch and keeps col in cache between
 * im2col and the gemms; col and dWt live in the model's shared scratch
 * (l->scratch floats, sized at setup), so forward and backward never
 * allocate.
 *
 * Stride-1 convolutions with OW == W ("same" padding, the cnn workload)
 * take fast paths: im2col copies each kernel row (c, i, j) as one block
 * (the plane shifted by (i - pad, j - pad)) and zeroes the wrapped border
 * columns; col2im adds each row back as one block (vectorizable at -O2).
 * A 1x1, stride-1, unpadded convolution skips im2col: col is x itself.
 * (Tried and dropped: computing dx as a correlation of dy with the flipped
 * kernel, which avoids col2im's scatter-add; it measured no faster.  The
 * Winograd path does compute dx that way, where it pays.) */
#include "layers/layer.h"

#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cblas.h>

/* Floats of one tile's column matrix (measured on the cnn workload with
 * OpenBLAS on a 1 MiB L2: 64K to 128K floats are equally good, 256K and
 * more a few percent slower). */
#ifndef CONV_COL_BUDGET
#define CONV_COL_BUDGET ((size_t)96 * 1024)
#endif

/* One correlation: input (c, h, w) -> output (oh, ow), kernel k, stride
 * s, zero padding pad on each side. */
struct conv_geom {
    int c, h, w;
    int k, s, pad;
    int oh, ow;
};

/* Winograd F(2x2, 3x3) geometry of one plane, and its kernels (see the
 * Winograd section). */
struct wino_geom {
    int h, w;   /* plane (input of the correlation; = output plane) */
    int th, tw; /* tiles per column and row: ceil(h/2), ceil(w/2) */
    size_t sp;  /* floats per sub-plane (see the Winograd section) */
};
struct wino_kernels {
    void (*split)(const struct wino_geom *g, const float *x, int ty0,
                  int ty1, float *s);
    void (*bt)(const struct wino_geom *g, const float *s, int nt, float *v,
               size_t vs);
    void (*at)(const struct wino_geom *g, const float *s, int nt, float *v,
               size_t vs);
    void (*out)(const struct wino_geom *g, const float *m, size_t ms,
                int ty0, int ty1, float *y, float bias);
    void (*filter)(float *u, const float *w, int oc, float *wt);
    void (*fgrad)(float *dw, const float *du, int oc, float *t);
};

const char *const nb_conv_algo_names[NB_CONV_ALGO_COUNT + 1] = {
    [NB_CONV_AUTO] = "auto", [NB_CONV_IM2COL] = "im2col", [NB_CONV_WINOGRAD] = "winograd",
    [NB_CONV_ALGO_COUNT] = NULL,
};

struct conv_priv {
    struct conv_geom g; /* x (C, H, W) -> y (O, OH, OW) */
    int o;              /* output channels */
    int kk;             /* C*k*k: rows of col, columns of W */
    int p, hw;          /* OH*OW, H*W */
    int chunk;          /* samples per im2col tile */
    int rows;           /* output rows per im2col tile (OH unless chunk 1) */
    size_t col_floats;  /* scratch floats of col */
    int direct;         /* 1x1, stride 1, pad 0: col is x itself */
    int w_idx, b_idx;
    int algo;           /* NB_CONV_IM2COL or NB_CONV_WINOGRAD; with Winograd,
                         * chunk and rows count samples and tile rows of
                         * one Winograd chunk, and: */
    struct wino_geom wg;
    const struct wino_kernels *wk;
    size_t wino_off[4]; /* scratch offsets of V, Da (M), Vb, sub-planes */
};

/* ---- im2col / col2im ------------------------------------------------- */

/* Output positions o in [0, n_out) whose input position o*s + off lies in
 * [0, n_in): the range [*lo, *hi). */
static void valid_range(int n_out, int n_in, int s, int off, int *lo, int *hi)
{
    int a = off < 0 ? (-off + s - 1) / s : 0;
    int b = n_in - off <= 0 ? 0 : (n_in - off + s - 1) / s;
    if (a > n_out)
        a = n_out;
    if (b > n_out)
        b = n_out;
    if (b < a)
        b = a;
    *lo = a;
    *hi = b;
}

/* Unrolls output rows [ra, rb) of one sample into columns
 * [0, (rb - ra)*OW) of a column matrix with leading dimension ld:
 *   col[(c*k + i)*k + j, (oh - ra)*OW + ow]
 *       = x[c, oh*s - pad + i, ow*s - pad + j]   (0 outside the image). */
static void im2col(const struct conv_geom *g,
                   const float *x, /* x: (C, H, W) */
                   float *col,     /* col: (C*k*k, ld), columns [0, T) */
                   size_t ld, int ra, int rb)
{
    const int k = g->k, s = g->s, H = g->h, W = g->w, OW = g->ow;
    const size_t T = (size_t)(rb - ra) * OW;
    for (int c = 0; c < g->c; c++) {
        const float *xc = x + (size_t)c * H * W; /* xc: (H, W) */
        for (int i = 0; i < k; i++) {
            int oh0, oh1; /* rows of the tile that read inside the image */
            valid_range(g->oh, H, s, i - g->pad, &oh0, &oh1);
            oh0 = oh0 > ra ? oh0 : ra;
            oh1 = oh1 < rb ? oh1 : rb;
            for (int j = 0; j < k; j++) {
                float *row = col + (size_t)((c * k + i) * k + j) * ld; /* (T) */
                const int off = j - g->pad; /* iw = ow*s + off */
                int ow0, ow1;
                valid_range(OW, W, s, off, &ow0, &ow1);
                if (oh0 >= oh1 || ow0 == ow1) {
                    memset(row, 0, T * sizeof *row);
                    continue;
                }
                memset(row, 0, (size_t)(oh0 - ra) * OW * sizeof *row);
                memset(row + (size_t)(oh1 - ra) * OW, 0,
                       (size_t)(rb - oh1) * OW * sizeof *row);
                if (s == 1 && OW == W) {
                    /* rows are contiguous in both: one block copy of the
                     * plane shifted by (i - pad, j - pad), then zero the
                     * ow0 / OW - ow1 columns that wrapped around */
                    size_t d0 = (size_t)(oh0 - ra) * OW + ow0;
                    size_t d1 = (size_t)(oh1 - 1 - ra) * OW + ow1;
                    const float *src =
                        xc + (size_t)(oh0 - g->pad + i) * W + (ow0 + off);
                    memcpy(row + d0, src, (d1 - d0) * sizeof *row);
                    for (int oh = oh0; oh < oh1; oh++) {
                        float *r = row + (size_t)(oh - ra) * OW;
                        for (int ow = 0; ow < ow0; ow++)
                            r[ow] = 0.0f;
                        for (int ow = ow1; ow < OW; ow++)
                            r[ow] = 0.0f;
                    }
                    continue;
                }
                for (int oh = oh0; oh < oh1; oh++) {
                    float *r = row + (size_t)(oh - ra) * OW; /* r: (OW) */
                    const float *xr = xc + (size_t)(oh * s - g->pad + i) * W;
                    for (int ow = 0; ow < ow0; ow++)
                        r[ow] = 0.0f;
                    if (s == 1)
                        memcpy(r + ow0, xr + ow0 + off,
                               (size_t)(ow1 - ow0) * sizeof *r);
                    else
                        for (int ow = ow0; ow < ow1; ow++)
                            r[ow] = xr[ow * s + off];
                    for (int ow = ow1; ow < OW; ow++)
                        r[ow] = 0.0f;
                }
            }
        }
    }
}

/* d[i] += a[i], i < n; the fixed 8-wide inner loop lets -O2 vectorize. */
static void add_block(float *restrict d, const float *restrict a, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int t = 0; t < 8; t++)
            d[i + t] += a[i + t];
    for (; i < n; i++)
        d[i] += a[i];
}

/* a[i] += b, i < n (blocked like add_block). */
static void add_scalar(float *a, /* a: (n) */
                       float b, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int t = 0; t < 8; t++)
            a[i + t] += b;
    for (; i < n; i++)
        a[i] += b;
}

/* sum_i a[i] in double, over 4 independent accumulators: a single
 * accumulator is bound by the latency of one addition per element. */
static double sum_floats(const float *a, /* a: (n) */
                         size_t n)
{
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        a0 += a[i];
        a1 += a[i + 1];
        a2 += a[i + 2];
        a3 += a[i + 3];
    }
    for (; i < n; i++)
        a0 += a[i];
    return (a0 + a1) + (a2 + a3);
}

/* The adjoint of im2col for output rows [ra, rb) of one sample, ADDING
 * into dx:
 *   dx[c, ih, iw] += sum over (i, j, oh in [ra, rb), ow) with
 *                    oh*s - pad + i = ih and ow*s - pad + j = iw of
 *                    dcol[(c*k + i)*k + j, (oh - ra)*OW + ow].
 * dcol is scratch: the stride-1 path zeroes its entries that fall outside
 * the image, so that each kernel row is one contiguous block addition. */
static void col2im(const struct conv_geom *g,
                   float *dcol, /* dcol: (C*k*k, ld), columns [0, T) */
                   size_t ld,
                   float *dx,   /* dx: (C, H, W) */
                   int ra, int rb)
{
    const int k = g->k, s = g->s, H = g->h, W = g->w, OW = g->ow;
    for (int c = 0; c < g->c; c++) {
        float *dxc = dx + (size_t)c * H * W; /* dxc: (H, W) */
        for (int i = 0; i < k; i++) {
            int oh0, oh1;
            valid_range(g->oh, H, s, i - g->pad, &oh0, &oh1);
            oh0 = oh0 > ra ? oh0 : ra;
            oh1 = oh1 < rb ? oh1 : rb;
            for (int j = 0; j < k; j++) {
                float *row = dcol + (size_t)((c * k + i) * k + j) * ld;
                const int off = j - g->pad;
                int ow0, ow1;
                valid_range(OW, W, s, off, &ow0, &ow1);
                if (oh0 >= oh1 || ow0 == ow1)
                    continue;
                if (s == 1 && OW == W) {
                    /* mirror of im2col's block copy */
                    for (int oh = oh0; oh < oh1; oh++) {
                        float *r = row + (size_t)(oh - ra) * OW;
                        for (int ow = 0; ow < ow0; ow++)
                            r[ow] = 0.0f;
                        for (int ow = ow1; ow < OW; ow++)
                            r[ow] = 0.0f;
                    }
                    size_t d0 = (size_t)(oh0 - ra) * OW + ow0;
                    size_t d1 = (size_t)(oh1 - 1 - ra) * OW + ow1;
                    add_block(dxc + (size_t)(oh0 - g->pad + i) * W + (ow0 + off),
                              row + d0, d1 - d0);
                    continue;
                }
                for (int oh = oh0; oh < oh1; oh++) {
                    const float *r = row + (size_t)(oh - ra) * OW; /* (OW) */
                    float *dr = dxc + (size_t)(oh * s - g->pad + i) * W; /* (W) */
                    for (int ow = ow0; ow < ow1; ow++)
                        dr[ow * s + off] += r[ow];
                }
            }
        }
    }
}

/* ---- Winograd F(2x2, 3x3) ------------------------------------------- */

/* Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks"
 * (CVPR 2016), for 3x3 kernels, stride 1, padding 1 (so OH = H, OW = W).
 * The output is cut into 2x2 tiles, th = ceil(H/2) by tw = ceil(W/2) per
 * plane; tile (ty, tx) reads the 4x4 input patch of rows 2ty-1 .. 2ty+2
 * and columns 2tx-1 .. 2tx+2 (0 outside the image).  With
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],
 *   G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],  A^T = [1 1 1 0; 0 1 -1 -1]
 * the 16 transformed positions xi = 4a + b of a chunk of T tiles are
 *   V[xi] (C, T) = (B^T d B)[a, b]      input patches
 *   U[xi] (O, C) = (G g G^T)[a, b]      kernels
 *   M[xi] (O, T) = U[xi] V[xi]          16 sgemms
 *   y tile (2x2) = A^T M A              cropped at odd H or W
 * which costs 16 O C T multiply-adds against 36 O C T for the direct
 * convolution.  Backward differentiates the same algorithm:
 *   weights  dU[xi] (O, C) = sum over chunks Da[xi] (O, T) V[xi]^T (T, C),
 *            Da = A dy A^T (the 2x2 dy tile, 0 outside), dW += G^T dU G
 *            (this is Winograd F(3x3, 2x2) on the tiles);
 *   input    dx is the stride-1 pad-1 correlation of dy with the kernel
 *            rotated by 180 degrees with C and O swapped; since G rev(g)
 *            is G g with rows 0 and 3 swapped, its transform is
 *            U'[4a + b] = U[4 p(a) + p(b)]^T with p = (3, 1, 2, 0), so
 *            dM[xi] (C, T) = U[p(xi)]^T (C, O) Vb[xi] (O, T) with
 *            Vb = B^T dy B, and dx tile = A^T dM A.
 * Chunks are whole samples (tile index s*Tb + ty*tw + tx) or, when one
 * sample's buffers exceed the budget, bands of tile rows of one sample,
 * as in the im2col path.
 *
 * The transforms vectorize over tiles.  Each plane is first split into 8
 * sub-planes by the parity of the padded row r = h + 1 and column
 * j = w + 1 and by a shift of one tile column: sub-plane (r % 2, j % 2,
 * shift) holds in row R, column c the padded x[2R + r % 2][2c + j % 2 +
 * 2 shift], in rows of tw floats.  Element (k, l) of the patch of tile
 * (ty, tx) is then at row ty + k / 2, column tx of sub-plane (k % 2,
 * l % 2, l / 2): at a fixed offset from the tile index ty tw + tx, so
 * B^T d B and A e A^T run as one loop over the tiles of a band with
 * contiguous loads and stores.  The split deinterleaves with shuffles and
 * prefetches the next plane; the output transform runs per tile row and
 * interleaves the two columns of each tile with shuffles.  The kernels use
 * GCC/Clang generic vectors (8 and 4 floats; no target flags needed;
 * scalar code for other compilers), and on x86-64 the same C is also
 * compiled for AVX2 + FMA and picked at setup with __builtin_cpu_supports.
 * The kernel transforms run as loops over the O C kernels (through a
 * transposed copy of the weights), so they cost little even at batch 2.
 *
 * Measured on the cnn's layers (one Zen 4 core, OpenBLAS Haswell kernels,
 * batch 2 to 128, effective GFLOP/s = direct-convolution FLOPs / time):
 * im2col runs them at 65-88, Winograd at 110-155 (forward and dx
 * fastest, dW slowest: its sgemms have K = T and OpenBLAS packs both
 * operands). */

/* Floats of the chunk buffers V, Da, Vb (16 T (C + 2 O) in backward; see
 * wino_setup): 160K to 384K measured equal on the cnn's layers, 96K and
 * below slower (sgemms with fewer than ~200 columns). */
#ifndef CONV_WINO_BUDGET
#define CONV_WINO_BUDGET ((size_t)160 * 1024)
#endif
/* The fewest tiles per chunk (the sgemms' columns) when the budget holds
 * fewer (layers with C + 2 O above ~800). */
#ifndef CONV_WINO_MIN_T
#define CONV_WINO_MIN_T ((size_t)192)
#endif

/* Auto picks Winograd for 3x3, stride-1, pad-1 convolutions with at least
 * this many input channels.  Forward + backward against im2col, 28x28 and
 * 14x14 planes, batch 64: C = 1, 2 about 2x slower; C = 4 even (slower
 * with O = 32 at 14x14); C = 6 10% faster; C = 8 1.45x; C = 16, 32
 * 1.7-1.9x. */
#ifndef CONV_WINO_MIN_C
#define CONV_WINO_MIN_C 8
#endif

/* Build knobs for testing the fallbacks: NB_CONV_NO_AVX2 keeps the
 * target's generic vector code only; NB_CONV_SCALAR turns every vector
 * path off. */
#if (defined(__GNUC__) || defined(__clang__)) && !defined(NB_CONV_SCALAR)
#define WINO_INLINE static inline __attribute__((always_inline))
/* 8 and 4 floats (in the AVX2 build one AVX or SSE register; otherwise
 * two or one SSE registers); the *u types are the unaligned, may-alias
 * views used for loads and stores. */
typedef float wv8 __attribute__((vector_size(32)));
typedef float wv8u __attribute__((vector_size(32), aligned(4), may_alias));
typedef float wv4 __attribute__((vector_size(16)));
typedef float wv4u __attribute__((vector_size(16), aligned(4), may_alias));
#define WV8_LD(p) (*(const wv8u *)(p))
#define WV8_ST(p, v) (*(wv8u *)(p) = (v))
#define WV4_LD(p) (*(const wv4u *)(p))
#define WV4_ST(p, v) (*(wv4u *)(p) = (v))
#if defined(__clang__)
#define WV_SHUF(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#define WV8_SHUF(a, b, ...) WV_SHUF(a, b, __VA_ARGS__)
#define WV4_SHUF(a, b, ...) WV_SHUF(a, b, __VA_ARGS__)
#else
typedef int wv8i __attribute__((vector_size(32)));
typedef int wv4i __attribute__((vector_size(16)));
#define WV8_SHUF(a, b, ...) __builtin_shuffle(a, b, (wv8i){__VA_ARGS__})
#define WV4_SHUF(a, b, ...) __builtin_shuffle(a, b, (wv4i){__VA_ARGS__})
#endif
/* even / odd elements of the pair (a, b); interleaved low / high halves */
#define WV8_EVEN(a, b) WV8_SHUF(a, b, 0, 2, 4, 6, 8, 10, 12, 14)
#define WV8_ODD(a, b) WV8_SHUF(a, b, 1, 3, 5, 7, 9, 11, 13, 15)
#define WV8_ZIPLO(a, b) WV8_SHUF(a, b, 0, 8, 1, 9, 2, 10, 3, 11)
#define WV8_ZIPHI(a, b) WV8_SHUF(a, b, 4, 12, 5, 13, 6, 14, 7, 15)
#define WV4_EVEN(a, b) WV4_SHUF(a, b, 0, 2, 4, 6)
#define WV4_ODD(a, b) WV4_SHUF(a, b, 1, 3, 5, 7)
#define WV4_ZIPLO(a, b) WV4_SHUF(a, b, 0, 4, 1, 5)
#define WV4_ZIPHI(a, b) WV4_SHUF(a, b, 2, 6, 3, 7)
#define WINO_VEC 1
#else
#define WINO_INLINE static inline
#define WINO_VEC 0
#endif
/* the scalar "vectors" of the tails and of other compilers */
#define WS_LD(p) (*(p))
#define WS_ST(p, v) (*(p) = (v))
#define WS_EVEN(a, b) (a)
#define WS_ODD(a, b) (b)

/* Runs STEP(i) for i covering [0, n) in steps of 8, 4 or 1 floats (the
 * widest that fits n; 8 only when w8): STEP##8, STEP##4, STEP##1 are the
 * three widths.  A last vector step that would pass n is moved back to
 * n - width, so it recomputes some elements (the same values) and i never
 * passes n. */
#if WINO_VEC
#define WINO_FOR(n, i, STEP, w8)                                            \
    do {                                                                    \
        int i = 0;                                                          \
        if ((w8) && (n) >= 8) {                                             \
            for (; i < (n); i += 8) {                                       \
                if (i > (n) - 8)                                            \
                    i = (n) - 8;                                            \
                STEP##8(i);                                                 \
            }                                                               \
        } else if ((n) >= 4) {                                              \
            for (; i < (n); i += 4) {                                       \
                if (i > (n) - 4)                                            \
                    i = (n) - 4;                                            \
                STEP##4(i);                                                 \
            }                                                               \
        } else {                                                            \
            for (; i < (n); i++)                                            \
                STEP##1(i);                                                 \
        }                                                                   \
    } while (0)
#else
#define WINO_FOR(n, i, STEP, w8)                                            \
    do {                                                                    \
        (void)(w8);                                                         \
        for (int i = 0; i < (n); i++)                                       \
            STEP##1(i);                                                     \
    } while (0)
#endif

/* One step of the split of a row: the pairs (x[2c], x[2c + 1]), c in
 * [c, c + width), go to s10[c] and s11[c - 1] (even columns) and to
 * s01[c] and s00[c + 1] (odd ones). */
#define WINO_SPLIT_STEP(VT, N, LD, ST, EVEN, ODD, c)                        \
    do {                                                                    \
        VT a_ = LD(xr + 2 * (c)), b_ = LD(xr + 2 * (c) + (N));          \
        VT ev_ = EVEN(a_, b_), od_ = ODD(a_, b_);                           \
        ST(d10 + (c), ev_);                                                 \
        ST(d11 + (c) - 1, ev_);                                             \
        ST(d01 + (c), od_);                                                 \
        ST(d00 + (c) + 1, od_);                                             \
    } while (0)
#define WINO_SPLIT8(c) WINO_SPLIT_STEP(wv8, 8, WV8_LD, WV8_ST, WV8_EVEN, WV8_ODD, c)
#define WINO_SPLIT4(c) WINO_SPLIT_STEP(wv4, 4, WV4_LD, WV4_ST, WV4_EVEN, WV4_ODD, c)
#define WINO_SPLIT1(c) WINO_SPLIT_STEP(float, 1, WS_LD, WS_ST, WS_EVEN, WS_ODD, c)

/* Splits the padded rows r in [2 ty0, 2 ty1 + 2) of plane x into the 8
 * sub-planes of tile rows [ty0, ty1): sub-plane q = 4 (r % 2) + 2 (j % 2)
 * + shift starts at s + q sp + 8 and has rows R = r / 2 - ty0 of tw
 * floats, element [R][c] = padded x[r][2c + j % 2 + 2 shift] (0 outside
 * the image).  The vector steps read x only inside the row; they write
 * s11[R][-1] (the 8 floats before each sub-plane are slack) and s00[R][tw]
 * (the next row, or the slack after), which are then restored. */
WINO_INLINE void wino_split_body(const struct wino_geom *g,
                                 const float *restrict x, /* x: (H, W) */
                                 int ty0, int ty1, float *restrict s,
                                 int w8)
{
    const int W = g->w, W2 = g->w / 2, tw = g->tw;
    const size_t sp = g->sp;
    for (int r = 2 * ty0; r < 2 * ty1 + 2; r++) {
        const int h = r - 1;
        float *restrict d00 = s + 8 + (size_t)(r & 1) * 4 * sp +
                              (size_t)(r / 2 - ty0) * tw;
        float *restrict d01 = d00 + sp, *restrict d10 = d00 + 2 * sp;
        float *restrict d11 = d00 + 3 * sp;
        if (h < 0 || h >= g->h) {
            memset(d00, 0, (size_t)tw * sizeof *d00);
            memset(d01, 0, (size_t)tw * sizeof *d01);
            memset(d10, 0, (size_t)tw * sizeof *d10);
            memset(d11, 0, (size_t)tw * sizeof *d11);
            continue;
        }
        const float *restrict xr = x + (size_t)h * W; /* xr: (W) */
#if WINO_VEC
        /* the same row of the next plane (the next channel, or the next
         * sample's first): x comes from memory, the plane's own rows
         * are too few for the hardware prefetcher to get ahead */
        for (int i = 0; i < W; i += 16)
            __builtin_prefetch(xr + (size_t)g->h * W + i);
#endif
        WINO_FOR(W2, c, WINO_SPLIT, w8);
        d00[0] = 0.0f;  /* x[-1] */
        d11[-1] = 0.0f; /* the row before: x[2 tw] = 0 */
        if (W & 1) {
            d10[W2] = xr[W - 1];
            d01[W2] = 0.0f;
            if (W2 > 0)
                d11[W2 - 1] = xr[W - 1];
            d11[W2] = 0.0f;
        } else {
            d11[W2 - 1] = 0.0f;
        }
    }
}

/* Pointer to patch element (k, l) (row k, column l of the 4x4 padded
 * patch) of tile 0 in the sub-planes s; tile j is at offset j. */
#define WINO_PATCH(s, g, k, l)                                              \
    ((s) + 8 +                                                              \
     (size_t)(4 * ((k) & 1) + 2 * ((l) & 1) + ((l) >> 1)) * (g)->sp +       \
     (size_t)((k) >> 1) * (g)->tw)

/* One step of B^T d B for tiles j .. (VT: 8, 4 or 1 tiles): column l of
 * the patch is combined by B^T into c0l..c3l (rows a), then each row a by
 * B into outputs 4a .. 4a + 3.  Written out so that all stays in
 * registers. */
#define WINO_BT_COL(VT, LD, l, j)                                           \
    VT c0##l, c1##l, c2##l, c3##l;                                          \
    do {                                                                    \
        VT d0 = LD(p[0][l] + (j)), d1 = LD(p[1][l] + (j));                  \
        VT d2 = LD(p[2][l] + (j)), d3 = LD(p[3][l] + (j));                  \
        c0##l = d0 - d2;                                                    \
        c1##l = d1 + d2;                                                    \
        c2##l = d2 - d1;                                                    \
        c3##l = d1 - d3;                                                    \
    } while (0)
#define WINO_BT_ROW(ST, a, j)                                               \
    do {                                                                    \
        ST(v + (4 * a + 0) * vs + (j), c##a##0 - c##a##2);                  \
        ST(v + (4 * a + 1) * vs + (j), c##a##1 + c##a##2);                  \
        ST(v + (4 * a + 2) * vs + (j), c##a##2 - c##a##1);                  \
        ST(v + (4 * a + 3) * vs + (j), c##a##1 - c##a##3);                  \
    } while (0)
#define WINO_BT_STEP(VT, LD, ST, j)                                         \
    do {                                                                    \
        WINO_BT_COL(VT, LD, 0, j);                                          \
        WINO_BT_COL(VT, LD, 1, j);                                          \
        WINO_BT_COL(VT, LD, 2, j);                                          \
        WINO_BT_COL(VT, LD, 3, j);                                          \
        WINO_BT_ROW(ST, 0, j);                                              \
        WINO_BT_ROW(ST, 1, j);                                              \
        WINO_BT_ROW(ST, 2, j);                                              \
        WINO_BT_ROW(ST, 3, j);                                              \
    } while (0)
#define WINO_BT8(j) WINO_BT_STEP(wv8, WV8_LD, WV8_ST, j)
#define WINO_BT4(j) WINO_BT_STEP(wv4, WV4_LD, WV4_ST, j)
#define WINO_BT1(j) WINO_BT_STEP(float, WS_LD, WS_ST, j)

/* v[xi * vs + j] = (B^T d_j B)[xi] for the nt tiles of the sub-planes s. */
WINO_INLINE void wino_bt_body(const struct wino_geom *g,
                              const float *restrict s, int nt,
                              float *restrict v, size_t vs)
{
    const float *p[4][4];
    for (int k = 0; k < 4; k++)
        for (int l = 0; l < 4; l++)
            p[k][l] = WINO_PATCH(s, g, k, l);
    WINO_FOR(nt, j, WINO_BT, 1);
}

/* One step of A e A^T for the 2x2 dy tiles j .. (the patch centre). */
#define WINO_AT_STEP(VT, LD, ST, j)                                         \
    do {                                                                    \
        VT d00 = LD(p11 + (j)), d01 = LD(p12 + (j));                        \
        VT d10 = LD(p21 + (j)), d11 = LD(p22 + (j));                        \
        VT p1 = d00 + d10, q1 = d01 + d11; /* rows of A e: (p_a, q_a) */    \
        VT p2 = d00 - d10, q2 = d01 - d11;                                  \
        ST(v + 0 * vs + (j), d00);                                          \
        ST(v + 1 * vs + (j), d00 + d01);                                    \
        ST(v + 2 * vs + (j), d00 - d01);                                    \
        ST(v + 3 * vs + (j), -d01);                                         \
        ST(v + 4 * vs + (j), p1);                                           \
        ST(v + 5 * vs + (j), p1 + q1);                                      \
        ST(v + 6 * vs + (j), p1 - q1);                                      \
        ST(v + 7 * vs + (j), -q1);                                          \
        ST(v + 8 * vs + (j), p2);                                           \
        ST(v + 9 * vs + (j), p2 + q2);                                      \
        ST(v + 10 * vs + (j), p2 - q2);                                     \
        ST(v + 11 * vs + (j), -q2);                                         \
        ST(v + 12 * vs + (j), -d10);                                        \
        ST(v + 13 * vs + (j), -(d10 + d11));                                \
        ST(v + 14 * vs + (j), d11 - d10);                                   \
        ST(v + 15 * vs + (j), d11);                                         \
    } while (0)
#define WINO_AT8(j) WINO_AT_STEP(wv8, WV8_LD, WV8_ST, j)
#define WINO_AT4(j) WINO_AT_STEP(wv4, WV4_LD, WV4_ST, j)
#define WINO_AT1(j) WINO_AT_STEP(float, WS_LD, WS_ST, j)

/* v[xi * vs + j] = (A e_j A^T)[xi], e_j the 2x2 tile j of the plane split
 * into the sub-planes s (rows 1-2, columns 1-2 of its padded patch). */
WINO_INLINE void wino_at_body(const struct wino_geom *g,
                              const float *restrict s, int nt,
                              float *restrict v, size_t vs)
{
    const float *p11 = WINO_PATCH(s, g, 1, 1), *p12 = WINO_PATCH(s, g, 1, 2);
    const float *p21 = WINO_PATCH(s, g, 2, 1), *p22 = WINO_PATCH(s, g, 2, 2);
    WINO_FOR(nt, j, WINO_AT, 1);
}

/* One step of A^T M A + bias for tiles tx .. of one tile row: column l
 * of M is combined by A^T into q0l, q1l, then each row by A into the
 * outputs (a, b); row a of the 2x2 tiles is stored interleaved at
 * y_a[2 tx ..]. */
#define WINO_OUT_COL(VT, LD, l, j)                                          \
    VT q0##l, q1##l;                                                        \
    do {                                                                    \
        VT m0 = LD(mt + (0 + l) * ms + (j));                                \
        VT m1 = LD(mt + (4 + l) * ms + (j));                                \
        VT m2 = LD(mt + (8 + l) * ms + (j));                                \
        VT m3 = LD(mt + (12 + l) * ms + (j));                               \
        q0##l = m0 + m1 + m2;                                               \
        q1##l = m1 - m2 - m3;                                               \
    } while (0)
#define WINO_OUT_STEP(VT, N, LD, ST, ZIPLO, ZIPHI, tx)                      \
    do {                                                                    \
        WINO_OUT_COL(VT, LD, 0, tx);                                        \
        WINO_OUT_COL(VT, LD, 1, tx);                                        \
        WINO_OUT_COL(VT, LD, 2, tx);                                        \
        WINO_OUT_COL(VT, LD, 3, tx);                                        \
        VT y00_ = q00 + q01 + q02 + bias, y01_ = q01 - q02 - q03 + bias;    \
        ST(y0 + 2 * (tx), ZIPLO(y00_, y01_));                               \
        ST(y0 + 2 * (tx) + (N), ZIPHI(y00_, y01_));                         \
        if (two) {                                                          \
            VT y10_ = q10 + q11 + q12 + bias;                               \
            VT y11_ = q11 - q12 - q13 + bias;                               \
            ST(y1 + 2 * (tx), ZIPLO(y10_, y11_));                           \
            ST(y1 + 2 * (tx) + (N), ZIPHI(y10_, y11_));                     \
        }                                                                   \
    } while (0)
#define WS_ZIPLO(a, b) (a)
#define WS_ZIPHI(a, b) (b)
#define WINO_OUT8(tx) WINO_OUT_STEP(wv8, 8, WV8_LD, WV8_ST, WV8_ZIPLO, WV8_ZIPHI, tx)
#define WINO_OUT4(tx) WINO_OUT_STEP(wv4, 4, WV4_LD, WV4_ST, WV4_ZIPLO, WV4_ZIPHI, tx)
#define WINO_OUT1(tx) WINO_OUT_STEP(float, 1, WS_LD, WS_ST, WS_ZIPLO, WS_ZIPHI, tx)

/* y (2x2 tiles) = A^T M A + bias for tile rows [ty0, ty1), M read at
 * mm[xi * ms + (ty - ty0) tw + tx]; OVERWRITES rows [2 ty0, min(2 ty1, H))
 * of the plane y (H, W). */
WINO_INLINE void wino_out_body(const struct wino_geom *g,
                               const float *restrict mm, size_t ms, int ty0,
                               int ty1, float *restrict y, float bias, int w8)
{
    const int W = g->w, W2 = g->w / 2, tw = g->tw;
    for (int ty = ty0; ty < ty1; ty++) {
        const float *restrict mt = mm + (size_t)(ty - ty0) * tw;
        float *restrict y0 = y + (size_t)2 * ty * W; /* y0, y1: (W) */
        float *restrict y1 = y0 + W;
        const bool two = 2 * ty + 1 < g->h;
        WINO_FOR(W2, tx, WINO_OUT, w8);
        if (W & 1) { /* the last tile column: its first output column */
            const int tx = tw - 1;
            WINO_OUT_COL(float, WS_LD, 0, tx);
            WINO_OUT_COL(float, WS_LD, 1, tx);
            WINO_OUT_COL(float, WS_LD, 2, tx);
            y0[W - 1] = q00 + q01 + q02 + bias;
            if (two)
                y1[W - 1] = q10 + q11 + q12 + bias;
        }
    }
}

/* One step of U = G g G^T for kernels k .. (VT: 8, 4 or 1 kernels), from
 * the transposed weights wt (9, OC): row i of g goes through G into
 * r0j..r3j, then each row a through G into outputs 4a .. 4a + 3. */
#define WINO_FILTER_COL(VT, LD, j, k)                                       \
    VT r0##j, r1##j, r2##j, r3##j;                                          \
    do {                                                                    \
        VT g0 = LD(wt + (0 + j) * oc + (k)), g1 = LD(wt + (3 + j) * oc + (k)); \
        VT g2 = LD(wt + (6 + j) * oc + (k));                                \
        r0##j = g0;                                                         \
        r1##j = 0.5f * (g0 + g1 + g2);                                      \
        r2##j = 0.5f * (g0 - g1 + g2);                                      \
        r3##j = g2;                                                         \
    } while (0)
#define WINO_FILTER_ROW(ST, a, k)                                           \
    do {                                                                    \
        ST(u + (4 * a + 0) * oc + (k), r##a##0);                            \
        ST(u + (4 * a + 1) * oc + (k), 0.5f * (r##a##0 + r##a##1 + r##a##2)); \
        ST(u + (4 * a + 2) * oc + (k), 0.5f * (r##a##0 - r##a##1 + r##a##2)); \
        ST(u + (4 * a + 3) * oc + (k), r##a##2);                            \
    } while (0)
#define WINO_FILTER_STEP(VT, LD, ST, k)                                     \
    do {                                                                    \
        WINO_FILTER_COL(VT, LD, 0, k);                                      \
        WINO_FILTER_COL(VT, LD, 1, k);                                      \
        WINO_FILTER_COL(VT, LD, 2, k);                                      \
        WINO_FILTER_ROW(ST, 0, k);                                          \
        WINO_FILTER_ROW(ST, 1, k);                                          \
        WINO_FILTER_ROW(ST, 2, k);                                          \
        WINO_FILTER_ROW(ST, 3, k);                                          \
    } while (0)
#define WINO_FILTER8(k) WINO_FILTER_STEP(wv8, WV8_LD, WV8_ST, k)
#define WINO_FILTER4(k) WINO_FILTER_STEP(wv4, WV4_LD, WV4_ST, k)
#define WINO_FILTER1(k) WINO_FILTER_STEP(float, WS_LD, WS_ST, k)

/* u[xi][k] = (G g_k G^T)[xi], xi = 4a + b, for the oc = O C kernels
 * g_k = w[k] (3x3); wt (9 oc floats) is work space. */
WINO_INLINE void wino_filter_body(float *restrict u,       /* u: (16, OC) */
                                  const float *restrict w, /* w: (OC, 9) */
                                  int oc, float *restrict wt)
{
    for (int k = 0; k < oc; k++) /* wt (9, OC) = w^T */
        for (int i = 0; i < 9; i++)
            wt[(size_t)i * oc + k] = w[(size_t)9 * k + i];
    WINO_FOR(oc, k, WINO_FILTER, 1);
}

/* One step of dg = G^T Z G for kernels k ..: row b of Z = dU[.][k]
 * goes through G^T into r0b..r2b (rows i), then each row i through G into
 * the outputs 3i .. 3i + 2, stored transposed at t (9, OC). */
#define WINO_FGRAD_COL(VT, LD, b, k)                                        \
    VT r0##b, r1##b, r2##b;                                                 \
    do {                                                                    \
        VT z0 = LD(du + (0 + b) * oc + (k)), z1 = LD(du + (4 + b) * oc + (k)); \
        VT z2 = LD(du + (8 + b) * oc + (k));                                \
        VT z3 = LD(du + (12 + b) * oc + (k));                               \
        r0##b = z0 + 0.5f * (z1 + z2);                                      \
        r1##b = 0.5f * (z1 - z2);                                           \
        r2##b = 0.5f * (z1 + z2) + z3;                                      \
    } while (0)
#define WINO_FGRAD_ROW(ST, i, k)                                            \
    do {                                                                    \
        ST(t + (3 * i + 0) * oc + (k), r##i##0 + 0.5f * (r##i##1 + r##i##2)); \
        ST(t + (3 * i + 1) * oc + (k), 0.5f * (r##i##1 - r##i##2));         \
        ST(t + (3 * i + 2) * oc + (k), 0.5f * (r##i##1 + r##i##2) + r##i##3); \
    } while (0)
#define WINO_FGRAD_STEP(VT, LD, ST, k)                                      \
    do {                                                                    \
        WINO_FGRAD_COL(VT, LD, 0, k);                                       \
        WINO_FGRAD_COL(VT, LD, 1, k);                                       \
        WINO_FGRAD_COL(VT, LD, 2, k);                                       \
        WINO_FGRAD_COL(VT, LD, 3, k);                                       \
        WINO_FGRAD_ROW(ST, 0, k);                                           \
        WINO_FGRAD_ROW(ST, 1, k);                                           \
        WINO_FGRAD_ROW(ST, 2, k);                                           \
    } while (0)
#define WINO_FGRAD8(k) WINO_FGRAD_STEP(wv8, WV8_LD, WV8_ST, k)
#define WINO_FGRAD4(k) WINO_FGRAD_STEP(wv4, WV4_LD, WV4_ST, k)
#define WINO_FGRAD1(k) WINO_FGRAD_STEP(float, WS_LD, WS_ST, k)

/* dw[k] (3x3) += G^T dU[.][k] G, the adjoint of wino_filter_body; t (9 oc
 * floats) is work space. */
WINO_INLINE void wino_fgrad_body(float *restrict dw,       /* dw: (OC, 9) */
                                 const float *restrict du, /* du: (16, OC) */
                                 int oc, float *restrict t)
{
    WINO_FOR(oc, k, WINO_FGRAD, 1);
    for (int k = 0; k < oc; k++)
        for (int i = 0; i < 9; i++)
            dw[(size_t)9 * k + i] += t[(size_t)i * oc + k];
}

/* The kernels above, compiled for the build's target and (x86-64 with
 * GCC or Clang) for AVX2 + FMA; wino_setup picks one set.  W8: whether the
 * shuffling kernels (split, out) take 8-float steps; not in the generic
 * set, where GCC lowers 8-float shuffles without AVX to slow code (the
 * 28x28 layer's forward measured 35% slower with them). */
#define WINO_KERNEL_SET(NAME, ATTR, W8)                                         \
    static ATTR void wino_split_##NAME(const struct wino_geom *g,           \
                                       const float *x, int ty0, int ty1,    \
                                       float *s)                            \
    {                                                                       \
        wino_split_body(g, x, ty0, ty1, s, W8);                             \
    }                                                                       \
    static ATTR void wino_bt_##NAME(const struct wino_geom *g,              \
                                    const float *s, int nt, float *v,       \
                                    size_t vs)                              \
    {                                                                       \
        wino_bt_body(g, s, nt, v, vs);                                      \
    }                                                                       \
    static ATTR void wino_at_##NAME(const struct wino_geom *g,              \
                                    const float *s, int nt, float *v,       \
                                    size_t vs)                              \
    {                                                                       \
        wino_at_body(g, s, nt, v, vs);                                      \
    }                                                                       \
    static ATTR void wino_out_##NAME(const struct wino_geom *g,             \
                                     const float *m, size_t ms, int ty0,    \
                                     int ty1, float *y, float bias)         \
    {                                                                       \
        wino_out_body(g, m, ms, ty0, ty1, y, bias, W8);                     \
    }                                                                       \
    static ATTR void wino_filter_##NAME(float *u, const float *w, int oc,  \
                                        float *wt)                          \
    {                                                                       \
        wino_filter_body(u, w, oc, wt);                                     \
    }                                                                       \
    static ATTR void wino_fgrad_##NAME(float *dw, const float *du, int oc,  \
                                       float *t)                            \
    {                                                                       \
        wino_fgrad_body(dw, du, oc, t);                                     \
    }                                                                       \
    static const struct wino_kernels wino_kernels_##NAME = {                \
        wino_split_##NAME, wino_bt_##NAME,     wino_at_##NAME,              \
        wino_out_##NAME,   wino_filter_##NAME, wino_fgrad_##NAME}

WINO_KERNEL_SET(generic, , 0);

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(NB_CONV_NO_AVX2) && !defined(NB_CONV_SCALAR)
#define WINO_AVX2 1
WINO_KERNEL_SET(avx2, __attribute__((target("avx2,fma"))), 1);
#else
#define WINO_AVX2 0
#endif

static const struct wino_kernels *wino_pick_kernels(void)
{
#if WINO_AVX2
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return &wino_kernels_avx2;
#endif
    return &wino_kernels_generic;
}

/* Winograd forward: y = conv(x) (+ bias), OVERWRITING y; x: (n, C, H, W),
 * y: (n, O, H, W). */
static void wino_forward(const struct nb_layer *l, const float *x, float *y,
                         int n)
{
    const struct conv_priv *p = l->priv;
    const struct wino_geom *g = &p->wg;
    const struct wino_kernels *wk = p->wk;
    const int O = p->o, C = p->g.c, P = p->p, tw = g->tw;
    const size_t oc = (size_t)O * C;
    const float *w = l->params[p->w_idx].value; /* w: (O, C, 3, 3) */
    const float *b = p->b_idx >= 0 ? l->params[p->b_idx].value : NULL;
    float *u = l->ctx->scratch;       /* u: (16, O, C) */
    float *v = u + p->wino_off[0];    /* v: (16, C, T) */
    float *mm = u + p->wino_off[1];   /* mm: (16, O, T) */
    float *sub = u + p->wino_off[3];  /* sub: 8 sub-planes */
    wk->filter(u, w, (int)oc, u + 16 * oc); /* work space: dU's */
    for (int s0 = 0; s0 < n; s0 += p->chunk) {
        const int nb = n - s0 < p->chunk ? n - s0 : p->chunk;
        for (int ty0 = 0; ty0 < g->th; ty0 += p->rows) {
            const int ty1 = ty0 + p->rows < g->th ? ty0 + p->rows : g->th;
            const size_t tb = (size_t)(ty1 - ty0) * tw; /* tiles per sample */
            const size_t T = (size_t)nb * tb;
            for (int s = 0; s < nb; s++)
                for (int c = 0; c < C; c++) {
                    wk->split(g, x + ((size_t)(s0 + s) * C + c) * p->hw,
                             ty0, ty1, sub);
                    wk->bt(g, sub, (int)tb, v + c * T + s * tb, (size_t)C * T);
                }
            /* M[xi] (O, T) = U[xi] (O, C) V[xi] (C, T) */
            for (int xi = 0; xi < 16; xi++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, O,
                            (int)T, C, 1.0f, u + xi * oc, C, v + xi * C * T,
                            (int)T, 0.0f, mm + xi * O * T, (int)T);
            for (int s = 0; s < nb; s++)
                for (int o = 0; o < O; o++)
                    wk->out(g, mm + o * T + s * tb, (size_t)O * T, ty0, ty1,
                           y + ((size_t)(s0 + s) * O + o) * P, b ? b[o] : 0.0f);
        }
    }
}

/* Winograd backward: ADDS the weight gradient of x (n, C, H, W) and
 * dy (n, O, H, W) into dW and, when dx is not NULL, OVERWRITES dx
 * (n, C, H, W) with the input gradient.  (db is done by the caller.) */
static void wino_backward(const struct nb_layer *l, const float *x,
                          const float *dy, float *dx, int n)
{
    const struct conv_priv *p = l->priv;
    const struct wino_geom *g = &p->wg;
    const struct wino_kernels *wk = p->wk;
    const int O = p->o, C = p->g.c, P = p->p, tw = g->tw;
    const size_t oc = (size_t)O * C;
    const float *w = l->params[p->w_idx].value; /* w: (O, C, 3, 3) */
    float *dw = l->params[p->w_idx].grad;       /* dw: (O, C, 3, 3) */
    float *u = l->ctx->scratch;                 /* u: (16, O, C) */
    float *du = u + 16 * oc;                    /* du: (16, O, C) */
    float *v = u + p->wino_off[0];   /* v: (16, C, T); then dM (16, C, T) */
    float *da = u + p->wino_off[1];  /* da: (16, O, T) */
    float *vb = u + p->wino_off[2];  /* vb: (16, O, T) */
    float *sub = u + p->wino_off[3]; /* sub: 8 sub-planes */
    if (dx)
        wk->filter(u, w, (int)oc, du); /* before dU is written */
    float beta = 0.0f; /* the first chunk initialises dU */
    for (int s0 = 0; s0 < n; s0 += p->chunk) {
        const int nb = n - s0 < p->chunk ? n - s0 : p->chunk;
        for (int ty0 = 0; ty0 < g->th; ty0 += p->rows) {
            const int ty1 = ty0 + p->rows < g->th ? ty0 + p->rows : g->th;
            const size_t tb = (size_t)(ty1 - ty0) * tw;
            const size_t T = (size_t)nb * tb;
            for (int s = 0; s < nb; s++) {
                for (int c = 0; c < C; c++) {
                    wk->split(g, x + ((size_t)(s0 + s) * C + c) * p->hw,
                             ty0, ty1, sub);
                    wk->bt(g, sub, (int)tb, v + c * T + s * tb, (size_t)C * T);
                }
                for (int o = 0; o < O; o++) {
                    wk->split(g, dy + ((size_t)(s0 + s) * O + o) * P, ty0, ty1,
                             sub);
                    wk->at(g, sub, (int)tb, da + o * T + s * tb,
                          (size_t)O * T);
                    if (dx)
                        wk->bt(g, sub, (int)tb, vb + o * T + s * tb,
                              (size_t)O * T);
                }
            }
            /* dU[xi] (O, C) (+)= Da[xi] (O, T) V[xi]^T (T, C) */
            for (int xi = 0; xi < 16; xi++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, O, C,
                            (int)T, 1.0f, da + xi * O * T, (int)T,
                            v + xi * C * T, (int)T, beta, du + xi * oc, C);
            beta = 1.0f;
            if (!dx)
                continue;
            /* dM[xi] (C, T) = U[p(xi)]^T (C, O) Vb[xi] (O, T), into v */
            static const int flip[16] = {15, 13, 14, 12, 7, 5, 6, 4,
                                         11, 9, 10, 8, 3, 1, 2, 0};
            for (int xi = 0; xi < 16; xi++)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C,
                            (int)T, O, 1.0f, u + flip[xi] * oc, C,
                            vb + xi * O * T, (int)T, 0.0f, v + xi * C * T,
                            (int)T);
            for (int s = 0; s < nb; s++)
                for (int c = 0; c < C; c++)
                    wk->out(g, v + c * T + s * tb, (size_t)C * T, ty0, ty1,
                           dx + ((size_t)(s0 + s) * C + c) * p->hw, 0.0f);
        }
    }
    if (n > 0)
        wk->fgrad(dw, du, (int)oc, u); /* U is no longer needed */
}

/* ---- the layer ------------------------------------------------------ */

/* Resolves opts->algo (see nb_conv2d_opts) to NB_CONV_IM2COL or
 * NB_CONV_WINOGRAD.  The auto rule depends on the shapes only, so a model
 * picks the same algorithm on every run. */
static int conv_pick_algo(const struct nb_layer *l,
                          const struct nb_conv2d_opts *o, int *algo,
                          struct nb_error *err)
{
    const bool wino_ok = o->k == 3 && o->stride == 1 && o->pad == 1;
    int a = (int)o->algo;
    if (a < NB_CONV_AUTO || a >= NB_CONV_ALGO_COUNT)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "layer %s: conv2d algo must be 0 (auto), "
                            "1 (im2col) or 2 (winograd), not %d", l->name, a);
    if (a == NB_CONV_WINOGRAD && !wino_ok)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "layer %s: conv2d Winograd needs a 3x3 kernel, "
                            "stride 1 and padding 1 (got k %d, stride %d, "
                            "pad %d)", l->name, o->k, o->stride, o->pad);
    if (a == NB_CONV_AUTO)
        a = wino_ok && l->in.c >= CONV_WINO_MIN_C ? NB_CONV_WINOGRAD : NB_CONV_IM2COL;
    *algo = a;
    return 0;
}

/* Winograd tiles, chunks and scratch (replaces the im2col sizing). */
static void wino_setup(struct nb_layer *l, struct conv_priv *p)
{
    struct wino_geom *g = &p->wg;
    const size_t O = (size_t)p->o, C = (size_t)p->g.c;
    g->h = p->g.h;
    g->w = p->g.w;
    g->th = (g->h + 1) / 2;
    g->tw = (g->w + 1) / 2;
    p->wk = wino_pick_kernels();
    /* chunk buffers per tile: V (C) and, in backward, Da and Vb (O each);
     * forward's M uses Da's space */
    const size_t per_tile = 16 * (C + 2 * O);
    const size_t ts = (size_t)g->th * g->tw;
    /* tiles per chunk: as many as the budget holds, but at least
     * CONV_WINO_MIN_T (wide layers) */
    size_t tiles = CONV_WINO_BUDGET / per_tile;
    tiles = tiles > CONV_WINO_MIN_T ? tiles : CONV_WINO_MIN_T;
    size_t chunk = tiles / ts, rows = (size_t)g->th;
    if (chunk < 1) {
        chunk = 1;
        rows = tiles / g->tw;
        rows = rows < 1 ? 1 : rows > (size_t)g->th ? (size_t)g->th : rows;
        size_t bands = ((size_t)g->th + rows - 1) / rows;
        rows = ((size_t)g->th + bands - 1) / bands;
    }
    if (chunk > (size_t)l->max_batch)
        chunk = (size_t)l->max_batch;
    p->chunk = (int)chunk;
    p->rows = (int)rows;
    const size_t tmax = chunk * rows * g->tw;
#define UP16(v) (((v) + 15) / 16 * 16)
    /* the 8 sub-planes of a band, each with 8 floats of slack before and
     * after */
    g->sp = UP16((rows + 1) * g->tw + 16);
    /* scratch: U, dU (16, O, C) each; V (16, C, tmax); Da (16, O, tmax);
     * Vb (16, O, tmax); the kernel work space */
    p->wino_off[0] = UP16(32 * O * C);
    p->wino_off[1] = p->wino_off[0] + UP16(16 * C * tmax);
    p->wino_off[2] = p->wino_off[1] + UP16(16 * O * tmax);
    p->wino_off[3] = p->wino_off[2] + UP16(16 * O * tmax);
#undef UP16
    l->scratch = p->wino_off[3] + 8 * g->sp;
}

static int conv_setup(struct nb_layer *l, const void *opts,
                      struct nb_error *err)
{
    const struct nb_conv2d_opts *o = opts;
    if (!o)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "layer %s: conv2d needs options", l->name);
    if (o->out_c <= 0)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "layer %s: conv2d output channels must be > 0, "
                            "not %d", l->name, o->out_c);
    if (o->k <= 0)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "layer %s: conv2d kernel size must be > 0, not %d",
                            l->name, o->k);
    if (o->stride <= 0)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "layer %s: conv2d stride must be > 0, not %d",
                            l->name, o->stride);
    if (o->pad < 0)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "layer %s: conv2d padding must be >= 0, not %d",
                            l->name, o->pad);
    const struct nb_shape *in = &l->in;
    if (o->k > in->h + 2 * o->pad || o->k > in->w + 2 * o->pad)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "layer %s: conv2d kernel %d is larger than the "
                            "padded input %dx%d (pad %d)", l->name, o->k,
                            in->h + 2 * o->pad, in->w + 2 * o->pad, o->pad);
    struct conv_priv *p = calloc(1, sizeof *p);
    if (!p)
        return nb_error_set(err, NB_ENOMEM, NULL, 0,
                            "layer %s: out of memory", l->name);
    l->priv = p;
    const int k = o->k;
    p->o = o->out_c;
    p->g = (struct conv_geom){
        .c = in->c, .h = in->h, .w = in->w, .k = k, .s = o->stride,
        .pad = o->pad,
        .oh = (in->h + 2 * o->pad - k) / o->stride + 1,
        .ow = (in->w + 2 * o->pad - k) / o->stride + 1,
    };
    p->kk = in->c * k * k;
    p->p = p->g.oh * p->g.ow;
    p->hw = in->h * in->w;
    p->direct = k == 1 && o->stride == 1 && o->pad == 0;
    p->b_idx = -1;
    int rc = conv_pick_algo(l, o, &p->algo, err);
    if (rc)
        return rc;

    /* tiles: as many whole samples as fit the column budget or, when one
     * sample does not fit, as many output rows of one sample */
    size_t per = (size_t)p->kk * (size_t)p->p;
    size_t chunk = CONV_COL_BUDGET / per, rows = (size_t)p->g.oh;
    if (chunk < 1) {
        chunk = 1;
        rows = CONV_COL_BUDGET / ((size_t)p->kk * p->g.ow);
        rows = rows < 1 ? 1 : rows > (size_t)p->g.oh ? (size_t)p->g.oh : rows;
        size_t tiles = ((size_t)p->g.oh + rows - 1) / rows; /* balance them */
        rows = ((size_t)p->g.oh + tiles - 1) / tiles;
    }
    if (chunk > (size_t)l->max_batch)
        chunk = (size_t)l->max_batch;
    p->chunk = (int)chunk;
    p->rows = (int)rows;
    p->col_floats = chunk * (size_t)p->kk * rows * p->g.ow;
    /* scratch: col (K, chunk*rows*OW), then dWt (K, O) */
    l->scratch = p->direct ? 0 : p->col_floats + (size_t)p->kk * p->o;
    if (p->algo == NB_CONV_WINOGRAD)
        wino_setup(l, p);

    p->w_idx = nb_layer_add_param(l, "weight", (size_t)p->o * p->kk,
                                  NB_PARAM_WEIGHT, err);
    if (p->w_idx < 0)
        return err ? err->status : NB_EINVAL;
    l->params[p->w_idx].fan_in = p->kk;
    l->params[p->w_idx].fan_out = p->o * k * k;
    l->params[p->w_idx].filters = p->o;
    if (o->bias) {
        p->b_idx = nb_layer_add_param(l, "bias", (size_t)p->o, NB_PARAM_BIAS,
                                      err);
        if (p->b_idx < 0)
            return err ? err->status : NB_EINVAL;
    }
    l->out = (struct nb_shape){p->o, p->g.oh, p->g.ow};
    return 0;
}

static void conv_forward(struct nb_layer *l, const float *x, float *y, int n,
                         enum nb_mode mode)
{
    NB_UNUSED(mode);
    const struct conv_priv *p = l->priv;
    NB_ASSERT(p && n >= 0 && n <= l->max_batch);
    const int O = p->o, K = p->kk, P = p->p;
    const size_t xs = (size_t)p->g.c * p->hw;   /* floats per x sample */
    const size_t ys = (size_t)O * P;            /* floats per y sample */
    const float *w = l->params[p->w_idx].value; /* w: (O, K) */

    if (p->algo == NB_CONV_WINOGRAD) {
        NB_ASSERT(l->ctx && l->ctx->scratch_count >= l->scratch);
        wino_forward(l, x, y, n); /* adds the bias */
        return;
    }
    if (p->direct) {
        /* y_s (O, P) = W (O, C) x_s (C, P) */
        for (int s = 0; s < n; s++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, O, P, K,
                        1.0f, w, K, x + s * xs, P, 0.0f, y + s * ys, P);
    } else {
        NB_ASSERT(l->ctx && l->ctx->scratch_count >= l->scratch);
        float *col = l->ctx->scratch; /* col: (K, nb*T) */
        const int OW = p->g.ow;
        for (int s0 = 0; s0 < n; s0 += p->chunk) {
            int nb = n - s0 < p->chunk ? n - s0 : p->chunk;
            for (int ra = 0; ra < p->g.oh; ra += p->rows) {
                int rb = ra + p->rows < p->g.oh ? ra + p->rows : p->g.oh;
                const int T = (rb - ra) * OW; /* columns per sample */
                const size_t ld = (size_t)nb * T;
                for (int s = 0; s < nb; s++)
                    im2col(&p->g, x + (s0 + s) * xs, col + (size_t)s * T, ld,
                           ra, rb);
                /* y_s[:, tile] (O, T) = W (O, K) col_s (K, T) */
                for (int s = 0; s < nb; s++)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, O,
                                T, K, 1.0f, w, K, col + (size_t)s * T,
                                (int)ld, 0.0f,
                                y + (s0 + s) * ys + (size_t)ra * OW, P);
            }
        }
    }
    if (p->b_idx >= 0) {
        const float *b = l->params[p->b_idx].value; /* b: (O) */
        for (int s = 0; s < n; s++)
            for (int o = 0; o < O; o++) {
                add_scalar(y + s * ys + (size_t)o * P, b[o], (size_t)P);
            }
    }
}

static void conv_backward(struct nb_layer *l, const float *x, const float *y,
                          const float *dy, float *dx, int n)
{
    NB_UNUSED(y);
    const struct conv_priv *p = l->priv;
    NB_ASSERT(p && n >= 0 && n <= l->max_batch);
    const int O = p->o, K = p->kk, P = p->p, HW = p->hw, C = p->g.c;
    const size_t xs = (size_t)C * HW;
    const size_t ys = (size_t)O * P;
    const float *w = l->params[p->w_idx].value; /* w: (O, K) */
    float *dw = l->params[p->w_idx].grad;       /* dw: (O, K) */

    /* db[o] += sum_{s, q} dy[s, o, q] */
    if (p->b_idx >= 0) {
        float *db = l->params[p->b_idx].grad; /* db: (O) */
        for (int o = 0; o < O; o++) {
            double acc = 0.0;
            for (int s = 0; s < n; s++)
                acc += sum_floats(dy + s * ys + (size_t)o * P, (size_t)P);
            db[o] += (float)acc;
        }
    }

    if (p->algo == NB_CONV_WINOGRAD) {
        NB_ASSERT(l->ctx && l->ctx->scratch_count >= l->scratch);
        wino_backward(l, x, dy, dx, n);
        return;
    }
    if (p->direct) {
        for (int s = 0; s < n; s++) {
            const float *xsmp = x + s * xs; /* xsmp: (C, P) */
            const float *dys = dy + s * ys; /* dys: (O, P) */
            /* dW (O, C) += dy_s (O, P) x_s^T (P, C) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, O, K, P,
                        1.0f, dys, P, xsmp, P, 1.0f, dw, K);
            /* dx_s (C, P) = W^T (C, O) dy_s (O, P) */
            if (dx)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, P, O,
                            1.0f, w, K, dys, P, 0.0f, dx + s * xs, P);
        }
        return;
    }

    NB_ASSERT(l->ctx && l->ctx->scratch_count >= l->scratch);
    float *col = l->ctx->scratch;      /* col: (K, nb*T) */
    float *dwt = col + p->col_floats;  /* dwt: (K, O) */
    const int OW = p->g.ow;
    float beta = 0.0f; /* the first product initialises dWt */
    for (int s0 = 0; s0 < n; s0 += p->chunk) {
        int nb = n - s0 < p->chunk ? n - s0 : p->chunk;
        if (dx)
            memset(dx + s0 * xs, 0, (size_t)nb * xs * sizeof *dx);
        for (int ra = 0; ra < p->g.oh; ra += p->rows) {
            int rb = ra + p->rows < p->g.oh ? ra + p->rows : p->g.oh;
            const int T = (rb - ra) * OW; /* columns per sample */
            const size_t ld = (size_t)nb * T;
            for (int s = 0; s < nb; s++)
                im2col(&p->g, x + (s0 + s) * xs, col + (size_t)s * T, ld, ra,
                       rb);
            /* dWt (K, O) (+)= col_s (K, T) dy_s[:, tile]^T (T, O) */
            for (int s = 0; s < nb; s++) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, K, O, T,
                            1.0f, col + (size_t)s * T, (int)ld,
                            dy + (s0 + s) * ys + (size_t)ra * OW, P, beta,
                            dwt, O);
                beta = 1.0f;
            }
            if (!dx)
                continue;
            /* dcol_s (K, T) = W^T (K, O) dy_s[:, tile] (O, T), into col's
             * space; then dx_s += col2im(dcol_s) */
            for (int s = 0; s < nb; s++)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, T, O,
                            1.0f, w, K, dy + (s0 + s) * ys + (size_t)ra * OW,
                            P, 0.0f, col + (size_t)s * T, (int)ld);
            for (int s = 0; s < nb; s++)
                col2im(&p->g, col + (size_t)s * T, ld, dx + (s0 + s) * xs, ra,
                       rb);
        }
    }
    /* dW[o, r] += dWt[r, o] */
    if (n > 0)
        for (int o = 0; o < O; o++)
            for (int r = 0; r < K; r++)
                dw[(size_t)o * K + r] += dwt[(size_t)r * O + o];
}

static void conv_destroy(struct nb_layer *l)
{
    free(l->priv);
    l->priv = NULL;
}

const struct nb_layer_ops nb_conv2d_ops = {
    .kind = "conv2d",
    .setup = conv_setup,
    .init = NULL,
    .forward = conv_forward,
    .backward = conv_backward,
    .destroy = conv_destroy,
};
