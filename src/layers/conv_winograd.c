/* src/layers/conv_winograd.c - 3x3, stride-1, pad-1 convolutions by
 * Winograd F(2x2, 3x3) (forward, dx and dW), with AVX2 and generic vector
 * kernels; the layer that uses it is conv2d.c. */
#include "layers/conv_impl.h"

#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cblas.h>

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

/* Build knobs for testing the fallbacks: NB_CONV_NO_AVX2 keeps the
 * target's generic vector code only; NB_CONV_SCALAR turns every vector
 * path off. */
#if defined(NB_CONV_SCALAR) && !defined(NB_NO_VEC)
#define NB_NO_VEC 1
#endif
#include "core/vec.h"
#if NB_VEC
#define WINO_INLINE static inline __attribute__((always_inline))
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

const struct wino_kernels *conv_wino_pick_kernels(void)
{
#if WINO_AVX2
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return &wino_kernels_avx2;
#endif
    return &wino_kernels_generic;
}

/* Winograd forward: y = conv(x) (+ bias), OVERWRITING y; x: (n, C, H, W),
 * y: (n, O, H, W). */
void conv_wino_forward(const struct nb_layer *l, const float *x, float *y, int n)
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
            double t0 = conv_gemm_on(l);
            for (int xi = 0; xi < 16; xi++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, O,
                            (int)T, C, 1.0f, u + xi * oc, C, v + xi * C * T,
                            (int)T, 0.0f, mm + xi * O * T, (int)T);
            conv_gemm_off(l, t0);
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
void conv_wino_backward(const struct nb_layer *l, const float *x, const float *dy, float *dx,
                        int n)
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
            double t0 = conv_gemm_on(l);
            for (int xi = 0; xi < 16; xi++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, O, C,
                            (int)T, 1.0f, da + xi * O * T, (int)T,
                            v + xi * C * T, (int)T, beta, du + xi * oc, C);
            conv_gemm_off(l, t0);
            beta = 1.0f;
            if (!dx)
                continue;
            /* dM[xi] (C, T) = U[p(xi)]^T (C, O) Vb[xi] (O, T), into v */
            static const int flip[16] = {15, 13, 14, 12, 7, 5, 6, 4,
                                         11, 9, 10, 8, 3, 1, 2, 0};
            t0 = conv_gemm_on(l);
            for (int xi = 0; xi < 16; xi++)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C,
                            (int)T, O, 1.0f, u + flip[xi] * oc, C,
                            vb + xi * O * T, (int)T, 0.0f, v + xi * C * T,
                            (int)T);
            conv_gemm_off(l, t0);
            for (int s = 0; s < nb; s++)
                for (int c = 0; c < C; c++)
                    wk->out(g, v + c * T + s * tb, (size_t)C * T, ty0, ty1,
                           dx + ((size_t)(s0 + s) * C + c) * p->hw, 0.0f);
        }
    }
    if (n > 0)
        wk->fgrad(dw, du, (int)oc, u); /* U is no longer needed */
}

