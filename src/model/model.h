/* src/model/model.h - a network built from a description: the layer list,
 * its activations, and the four arenas.
 *
 * Layer i reads activation in_idx[i] (and in2_idx[i] >= 0 for a residual
 * add) and writes activation i + 1; activation 0 is the input batch.  The
 * last layer is the loss: its output is the per-sample loss, and the
 * model's loss is their mean.  Parameters live in one arena, gradients in a
 * second with the same offsets, optimizer buffers in a third (owned by the
 * optimizer, allocated here for convenience) and non-trainable state in a
 * fourth. */
#ifndef NB_MODEL_MODEL_H
#define NB_MODEL_MODEL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/arena.h"
#include "core/error.h"
#include "data/data.h"
#include "layers/layer.h"
#include "layers/norm.h"

enum nb_arch { NB_ARCH_MLP = 0, NB_ARCH_CNN, NB_ARCH_RESNET, NB_ARCH_DLN, NB_ARCH_COUNT };
enum nb_act { NB_ACT_RELU = 0, NB_ACT_SIGMOID, NB_ACT_TANH, NB_ACT_COUNT };
enum nb_init { NB_INIT_KAIMING = 0, NB_INIT_GLOROT, NB_INIT_SMALL, NB_INIT_COUNT };
enum nb_loss { NB_LOSS_XENT = 0, NB_LOSS_MSE };
enum nb_dropout_place {
    NB_DROPOUT_CLASSIFIER = 0, /* before the last linear layer */
    NB_DROPOUT_BEFORE_NORM,    /* before every norm (Li et al. 2019) */
    NB_DROPOUT_COUNT
};

/* Names by enumerator, NULL-terminated: the config keys model.arch,
 * model.activation, model.init and model.dropout_place take their values
 * from these tables (keys.c), and the enums map by index. */
extern const char *const nb_arch_names[];
extern const char *const nb_act_names[];
extern const char *const nb_init_names[];
extern const char *const nb_dropout_place_names[];

#define NB_MAX_WIDTHS 16

struct nb_model_desc {
    enum nb_arch arch;
    struct nb_shape input;  /* per-sample input shape */
    int outputs;            /* classes (xent) or target dimension (mse) */
    /* mlp */
    int widths[NB_MAX_WIDTHS];
    int n_widths;
    enum nb_act act;
    /* resnet: depth 6n+2 */
    int depth;
    /* deep linear network: k square layers of dimension input.c*h*w */
    int dln_layers;
    /* normalization: type, options; groups 0 = the per-layer default
     * nb_norm_default_groups(C): the largest divisor of C that is at most
     * min(8, C/4) (workloads.md: 4 on 16 channels, 8 on 32 and 128) */
    struct nb_norm_opts norm;
    enum nb_norm_placement placement;
    bool bias_before_norm;     /* keep the bias of a conv/linear before a norm */
    bool linear_norm;          /* mlp/cnn: norm after the hidden linear layers
                                * (default); false = the convs only */
    bool zero_init_last_gamma; /* resnet: gamma 0 in each block's last norm */
    enum nb_init init;
    double init_std;           /* NB_INIT_SMALL */
    double dropout;            /* 0 = none */
    enum nb_dropout_place dropout_place;
    /* how the 3x3 convolutions compute: auto (conv2d's rule), im2col, or
     * winograd wherever the shape allows (stride 1), im2col elsewhere */
    enum nb_conv_algo conv_algo;
    enum nb_loss loss;
};

/* The [model] config keys of struct nb_model_desc (core/opt.h), with their
 * defaults: cnn, relu, mlp widths 256 256 256, resnet depth 8, dln 25
 * layers, pre placement, Kaiming init, no dropout, conv_algo auto.
 * model.dln_dim has no member: it is the synthetic data's dimension;
 * model.init_from neither: the runner resolves it to a checkpoint
 * (run/runner.h) that training loads (nb_train_spec.init). */
extern const struct nb_key nb_model_keys[];
extern const int nb_model_n_keys;

/* Defaults: nb_model_keys' and nb_norm_keys', on (1,28,28) input with 10
 * classes and cross-entropy. */
void nb_model_desc_default(struct nb_model_desc *d);

const char *nb_arch_name(enum nb_arch a);

struct nb_model {
    struct nb_layer *layers;
    int n_layers;
    int *in_idx, *in2_idx;
    float **acts;   /* n_layers + 1 activations, max_batch samples each */
    float **dacts;  /* their gradients */
    float *tmp;     /* for activations with two consumers */
    bool *written;  /* per activation, during backward */
    struct nb_arena params, grads, opt, state;
    /* Every gradient is 0 (nb_sgd_step leaves them so, in its own pass):
     * the next backward need not clear them first.  Whoever else writes
     * to grads.data between a step and the next backward clears it. */
    bool grads_zero;
    struct nb_ctx ctx;
    int max_batch;
    struct nb_model_desc desc;
    size_t n_params;
    /* Per-layer timing for `normbench bench`: when profile is set, forward
     * and backward add each layer's seconds to prof_fwd[i] / prof_bwd[i]. */
    bool profile;
    double *prof_fwd, *prof_bwd;
};

/* Builds the network for batches of up to max_batch samples and
 * initialises it from the init stream of `seed`.  Returns 0 or a negative
 * status with err filled (unknown arch, impossible norm, ...); m is then
 * safe to free. */
int nb_model_build(struct nb_model *m, const struct nb_model_desc *d,
                   int max_batch, uint64_t seed, struct nb_error *err);

/* Frees everything; safe on a zeroed or failed model. */
void nb_model_free(struct nb_model *m);

/* Re-initialises parameters and state from the init stream of seed. */
void nb_model_init_params(struct nb_model *m, uint64_t seed);

/* Forward of n <= max_batch samples x (n, input) with labels (xent) or
 * targets (mse); returns the mean loss.  The logits stay in
 * nb_model_logits(m). */
double nb_model_forward(struct nb_model *m, const float *x, const int *labels,
                        const float *targets, int n, enum nb_mode mode);

/* Backward of the mean loss of the most recent forward: OVERWRITES the
 * gradient arena. */
void nb_model_backward(struct nb_model *m, int n);

/* The same when the n samples of the forward are a slice of a batch of
 * `total` (a run split over processes): the gradient of the slice's loss
 * sum / total, so the sum over the slices is the batch's mean-loss
 * gradient.  nb_model_backward(m, n) = nb_model_backward_part(m, n, n). */
void nb_model_backward_part(struct nb_model *m, int n, int total);

/* Output of the last layer before the loss: (n, outputs). */
const float *nb_model_logits(const struct nb_model *m);

/* Number of the n samples whose argmax logit equals the label. */
int nb_model_correct(const struct nb_model *m, const int *labels, int n);

/* Total FLOP-free description: one line per layer to fp. */
void nb_model_print(const struct nb_model *m, FILE *fp);

/* Checks that every norm layer accepts a training batch of n samples
 * (batch norm needs more than one value per channel). */
int nb_model_check_batch(const struct nb_model *m, int n, struct nb_error *err);

/* ---- exact Hessian-vector products ----------------------------------------
 *
 * Pearlmutter's R-operator (layer.h): after a forward and a backward of n
 * samples, one R-forward (R{a} of every activation, the directional
 * derivative along the parameter direction v) and one R-backward (R{dL/da}
 * and R{dL/dtheta}) give H v, the Hessian of the mean loss of those
 * samples times v, exactly up to float rounding: no step size, no
 * truncation error, and a ReLU's or a max-pool's kink is never straddled
 * (the Hessian of the linear piece the forward is on).  About two
 * training steps' work.  Every layer of the model must have exact
 * R-operators in the forward's mode (nb_model_hvp_unsupported). */

/* What the R-passes need beside the model: caller-owned (the Hessian probe
 * holds one), allocated once for models of m's layout by nb_hvp_init; a
 * call allocates nothing. */
struct nb_hvp {
    int n_layers, max_batch;
    size_t n_params;
    float **racts;   /* n_layers + 1: R{activation a}, max_batch samples
                        each; racts[0] (the input) stays 0 */
    float **rdacts;  /* n_layers + 1: R{dL/d activation a} */
    float *rwork;    /* the layers' workspace (nb_ctx.rwork) */
    size_t rwork_count;
    float *dir;      /* n_params: the direction v, in the parameter
                        arena's layout; the caller fills it */
    float *hv;       /* n_params: H v, written by nb_model_hvp */
};

/* Allocates h for models like m (its layers and parameter count) and
 * products of up to m->max_batch samples.  Returns 0 or NB_ENOMEM with err filled; h is then safe to
 * free. */
int nb_hvp_init(struct nb_hvp *h, const struct nb_model *m, struct nb_error *err);

/* Frees everything; safe on a zeroed or failed h. */
void nb_hvp_free(struct nb_hvp *h);

/* The index of the first layer of m without exact R-operators after a
 * forward in mode (layer.h: nb_layer_rsupports), or -1 when every layer
 * has them. */
int nb_model_hvp_unsupported(const struct nb_model *m, enum nb_mode mode);

/* After nb_model_forward of n samples and nb_model_backward(m, n) of it,
 * at the same parameters: OVERWRITES h->hv with H h->dir, H the Hessian
 * of the mean loss of the n samples, and returns R{mean loss} = grad . dir
 * (the directional derivative, a check).  Overwrites h's R-values, the
 * activation-gradient temporaries the backward left (m->tmp) and the
 * shared scratch; leaves the forward's activations and gradients, the
 * gradient arena and the parameters as they were.  Asserts that h was
 * made for m's layout and that nb_model_hvp_unsupported(m, mode of the
 * forward) is -1 (the caller checks), and n <= h->max_batch. */
double nb_model_hvp(struct nb_model *m, struct nb_hvp *h, int n);

/* Recomputes the population statistics of every norm layer over the
 * first `samples` samples of ds (all when 0) in batches of `batch` (the
 * normalization batch of training), weights frozen: precise BN, or
 * "recompute the statistics on this data" for a shifted domain, by
 * formula f (norm.h).  Training's RNG streams are not touched.  Returns
 * the number of samples used (> 0: whole batches, at least `samples` when
 * ds has them), or NB_EINVAL (batch outside 1..max_batch, or ds smaller
 * than one batch) / NB_ENOMEM with err filled and the statistics
 * unchanged. */
int nb_model_recompute_bn(struct nb_model *m, const struct nb_dataset *ds,
                          int batch, size_t samples, enum nb_pop_formula f,
                          struct nb_error *err);

/* After nb_model_recompute_bn: rewrites every norm layer's statistics
 * from the same pass by formula f. */
void nb_model_recompute_write(struct nb_model *m, enum nb_pop_formula f);

/* Builds in out the same network without normalization layers, with every
 * eval-mode norm folded into the preceding conv/linear's weight and bias
 * (placement pre; batch or lp norms): out is the network of m's
 * description with norm type none (and no noise), and gives m's logits in
 * EVAL mode.  Returns the number of norm layers folded (>= 0; each norm
 * layer of m, every one of which follows a conv or linear layer, maybe
 * through a dropout that EVAL makes the identity), or NB_EINVAL with err
 * filled (placement post: a ReLU sits between the layer and its norm; a
 * norm without population statistics: layer, group, instance) or
 * NB_ENOMEM, out then freed. */
int nb_model_fold(const struct nb_model *m, struct nb_model *out,
                  struct nb_error *err);

#endif
