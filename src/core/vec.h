/* src/core/vec.h - GCC/Clang generic vectors of 8 and 4 floats for the
 * hand-vectorized kernels (layers/conv_winograd.c, pool.c, activation.c)
 * and the AVX2 dispatch (NB_VEC_AVX2) of those and optim.c: no target
 * flags needed (in an AVX2 function one AVX or SSE register, otherwise
 * two or one SSE registers).  NB_VEC is 1 where they exist (GCC or Clang,
 * and NB_NO_VEC not defined), else 0 and the kernels use scalar code. */
#ifndef NB_CORE_VEC_H
#define NB_CORE_VEC_H

#if (defined(__GNUC__) || defined(__clang__)) && !defined(NB_NO_VEC)
#define NB_VEC 1
/* the *u types are the unaligned, may-alias views of loads and stores */
typedef float wv8 __attribute__((vector_size(32)));
typedef float wv8u __attribute__((vector_size(32), aligned(4), may_alias));
typedef float wv4 __attribute__((vector_size(16)));
typedef float wv4u __attribute__((vector_size(16), aligned(4), may_alias));
#define WV8_LD(p) (*(const wv8u *)(p))
#define WV8_ST(p, v) (*(wv8u *)(p) = (v))
#define WV4_LD(p) (*(const wv4u *)(p))
#define WV4_ST(p, v) (*(wv4u *)(p) = (v))
/* int vectors of the same widths: lane masks of comparisons (-1 true,
 * 0 false) and indices */
typedef int wv8i __attribute__((vector_size(32)));
typedef int wv4i __attribute__((vector_size(16)));
typedef int wv8iu __attribute__((vector_size(32), aligned(4), may_alias));
typedef int wv4iu __attribute__((vector_size(16), aligned(4), may_alias));
#define WV8I_ST(p, v) (*(wv8iu *)(p) = (v))
#define WV8I_LD(p) (*(const wv8iu *)(p))
#define WV4I_ST(p, v) (*(wv4iu *)(p) = (v))
#define WV4I_LD(p) (*(const wv4iu *)(p))
#if defined(__clang__)
#define WV_SHUF(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#define WV8_SHUF(a, b, ...) WV_SHUF(a, b, __VA_ARGS__)
#define WV4_SHUF(a, b, ...) WV_SHUF(a, b, __VA_ARGS__)
#else
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
/* mask ? a : b, lane by lane, for float vectors and an int mask */
#define WV8_SEL(mask, a, b) ((wv8)(((wv8i)(a) & (mask)) | ((wv8i)(b) & ~(mask))))
#define WV4_SEL(mask, a, b) ((wv4)(((wv4i)(a) & (mask)) | ((wv4i)(b) & ~(mask))))
#else
#define NB_VEC 0
#endif

/* Whether kernels can also be compiled for AVX2 (__attribute__((target(
 * "avx2"))) and picked at run time with __builtin_cpu_supports). */
#if NB_VEC && defined(__x86_64__)
#define NB_VEC_AVX2 1
#else
#define NB_VEC_AVX2 0
#endif

/* NAME_avx2 where the CPU has AVX2 (and the build made it), else
 * NAME_generic: a kernel compiled twice, once with ATTR
 * __attribute__((target("avx2"))), picked per call. */
#if NB_VEC_AVX2
#define NB_VEC_PICK(NAME) (__builtin_cpu_supports("avx2") ? NAME##_avx2 : NAME##_generic)
#else
#define NB_VEC_PICK(NAME) NAME##_generic
#endif

#endif
