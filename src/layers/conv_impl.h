/* src/layers/conv_impl.h - what conv2d.c (the layer, im2col + sgemm) and
 * conv_winograd.c (Winograd F(2x2, 3x3)) share, included by nothing else. */
#ifndef NB_LAYERS_CONV_IMPL_H
#define NB_LAYERS_CONV_IMPL_H

#include <stddef.h>

#include "core/arena.h"
#include "layers/layer.h"

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

/* The Winograd kernels for this CPU (AVX2 + FMA, or the generic vectors). */
const struct wino_kernels *conv_wino_pick_kernels(void);

/* Winograd forward: y = conv(x) (+ bias), OVERWRITING y; x: (n, C, H, W),
 * y: (n, O, H, W). */
void conv_wino_forward(const struct nb_layer *l, const float *x, float *y, int n);

/* Winograd backward: ADDS the weight gradient of x (n, C, H, W) and
 * dy (n, O, H, W) into dW and, when dx is not NULL, OVERWRITES dx
 * (n, C, H, W) with the input gradient.  (db is done by the caller.) */
void conv_wino_backward(const struct nb_layer *l, const float *x, const float *dy, float *dx,
                        int n);

/* The bench profile's GEMM clock (nb_ctx.gemm_seconds): conv_gemm_on
 * starts it when a profile asks, conv_gemm_off adds the seconds since. */
static inline double conv_gemm_on(const struct nb_layer *l)
{
    return l->ctx && l->ctx->gemm_seconds ? nb_now() : 0.0;
}
static inline void conv_gemm_off(const struct nb_layer *l, double t0)
{
    if (l->ctx && l->ctx->gemm_seconds)
        *l->ctx->gemm_seconds += nb_now() - t0;
}

#endif
