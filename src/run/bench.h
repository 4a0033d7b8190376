/* src/run/bench.h - `normbench bench`: training throughput of the
 * workloads.md networks, with the time split between the parts of a step
 * (nb_bench_part).  A benchmark command, never a timed test. */
#ifndef NB_HARNESS_BENCH_H
#define NB_HARNESS_BENCH_H

#include <stdio.h>

#include "model/model.h"

struct nb_bench_opts {
    enum nb_arch arch;            /* mlp or cnn */
    enum nb_norm_type norms[8];   /* schemes to measure */
    int n_norms;
    int batches[8];
    int n_batches;
    int windows;                  /* timed windows (median taken) */
    int steps;                    /* steps per window */
    int warmup;
    enum nb_conv_algo conv_algo;  /* [model] conv_algo of the models */
};

void nb_bench_opts_default(struct nb_bench_opts *o);

/* The parts of a training step the throughput table splits its time into
 * (one profiled window): the conv layers' GEMMs, the rest of the conv
 * layers (im2col or the Winograd transforms, bias), norm layers,
 * activations, pooling, linear layers, the optimizer step, and the rest
 * (loss, flatten, dropout, the model's own passes). */
enum nb_bench_part {
    NB_BENCH_CONV_GEMM, NB_BENCH_CONV, NB_BENCH_NORM, NB_BENCH_ACT, NB_BENCH_POOL,
    NB_BENCH_LINEAR, NB_BENCH_OPTIM, NB_BENCH_OTHER, NB_BENCH_PARTS
};
extern const char *const nb_bench_part_names[NB_BENCH_PARTS];

/* Measures images/s of full training steps (forward, cross-entropy,
 * backward, SGD momentum 0.9) on one fixed random batch, as
 * ../shared/bench/torch_throughput.py does; prints a table to out.
 * Returns 0 or a negative status with err filled. */
int nb_bench_throughput(FILE *out, const struct nb_bench_opts *o,
                        struct nb_error *err);

#endif
