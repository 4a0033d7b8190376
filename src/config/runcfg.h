/* src/config/runcfg.h - one resolved run (sweep.h's struct nb_run) as the
 * structs the training core, the data module and the probes take, and the
 * cross-key check that needs the model.
 *
 * nb_runcfg_from_run binds each module's key table (core/opt.h) into its
 * struct in one loop (the table says where each value goes), then the few
 * values that have no one member (data.mean/std/resize, model.dln_dim,
 * probe.slice_at, train.threads, experiment.target_accuracy).  What
 * depends on the data (input shape, classes or regression targets, the
 * run length behind renorm's `auto` schedule) is filled first from the
 * source's nominal shape and then, once the data are loaded, by
 * nb_runcfg_bind_data (renorm's auto steps stay -1 until then).
 *
 * nb_runcfg_check is the nb_run_check_fn for nb_sweep_load_checked: it
 * rejects, at the line that set the offending key, combinations the model
 * or the loop would refuse later: group counts that do not divide a norm
 * layer's channels (with the per-layer default for groups = 0), instance
 * norm without spatial extent, batch statistics over one value (batch 1,
 * ghost batches or device parts of one sample without spatial extent), a
 * ghost batch (norm.norm_batch) or a device count not dividing
 * train.batch, norm_batch together with devices, renorm on a norm other
 * than batch, a dln on data that is not square, a batch larger than the
 * training set, a probe.slice_at step past the end of training, ...  It
 * builds the model (with a small batch) once per
 * distinct model-relevant configuration and caches the verdict, so a
 * sweep of 1000 runs over learning rates and seeds builds a handful of
 * models. */
#ifndef NB_HARNESS_RUNCFG_H
#define NB_HARNESS_RUNCFG_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "data/data.h"
#include "config/selector.h"
#include "config/sweep.h"
#include "run/train.h"
#include "probe/probe.h"

#define NB_RUNCFG_MAX_SLICES 64

struct nb_runcfg {
    struct nb_train_spec train; /* seed, model, sgd, schedule, loop */
    struct nb_data_opts data;
    int threads;                /* [train] threads: BLAS threads */
    bool save_weights;          /* [train] save_weights: the runner writes
                                   weights.nbw at the end of training */
    char init_from[NB_SEL_TEXT_MAX]; /* [model] init_from: the canonical
                                   selector of the run to start from ("" =
                                   none); the runner resolves and reads it
                                   into train.init */
    double target_acc;          /* [experiment] target_accuracy (0 = off) */
    /* [probe]: probes is true when any analysis is on; probe.slice_at
     * points into slice_at (so copy the struct with care: re-point it, or
     * let nb_probe_init copy it as it does) */
    bool probes;
    struct nb_probe_opts probe;
    long slice_at[NB_RUNCFG_MAX_SLICES];
};

/* Fills rc from run: everything but the data-dependent parts, for which
 * the source's nominal shape stands in (see nb_runcfg_nominal).  Returns
 * 0, or NB_EINVAL with err at the offending key (more mlp widths,
 * milestones or slice steps than the structs hold, per-channel
 * standardization values that differ: the data module takes one mean and
 * std, probe options nb_probe_opts_check refuses). */
int nb_runcfg_from_run(const struct nb_run *run, struct nb_runcfg *rc,
                       struct nb_error *err);

/* Completes rc (from run) for data d: input shape, outputs and loss
 * (cross-entropy over the classes, or mean squared error over the
 * regression targets), renorm's auto schedule (5k, 25k and 40k of 160k
 * steps, scaled to this run's length in steps), and probe.slice_at
 * against that length: -1 becomes the last step (the length), the list
 * sorted with each step once.  Returns 0, or NB_EINVAL with err at
 * slice_at's FILE:LINE when a step is past the end (nb_runcfg_check says
 * so before any run where the length is known without loading: all
 * sources but idx without max_steps).  run gives that FILE:LINE; it may
 * be NULL when rc->probes is false, as nothing can fail then. */
int nb_runcfg_bind_data(struct nb_runcfg *rc, const struct nb_run *run,
                        const struct nb_data *d, struct nb_error *err);

/* The nominal per-sample shape, class count (0 for regression) and target
 * dimension of a data source before anything is loaded: 1x28x28 and 10
 * classes for fashion-mnist, mnist, blobs and idx (assumed), 3x32x32 for
 * cifar10, (dim)x1x1 regression for dln; data.resize applied.  Returns the
 * training-set size the options will give (after split and subset), or 0
 * when it cannot be known without reading files (idx). */
size_t nb_runcfg_nominal(const struct nb_data_opts *o, struct nb_shape *shape,
                         int *classes, int *tdim);

/* The cross-key check (an nb_run_check_fn).  Returns 0 or NB_EINVAL with
 * err at FILE:LINE of the key to change, and a hint where the fix is
 * obvious (e.g. the group counts that divide every norm layer). */
int nb_runcfg_check(const struct nb_run *run, struct nb_error *err);

/* The checks of a run split over `ranks` processes (mpirun -np K, for K
 * > 1): batch and lp norm need [norm] devices = ranks (the ranks are the
 * devices), every batch a sample per rank (also the last partial one,
 * where the training-set size is known before loading), and probes must
 * be off (they read one process's activations).  Returns 0 or NB_EINVAL
 * with err at FILE:LINE of the key to change, and a hint. */
int nb_runcfg_check_ranks(const struct nb_run *run, int ranks, struct nb_error *err);

/* Drops the check's cache of verdicts (the module's one piece of global
 * state; per process, not thread-safe).  Harmless to call any time. */
void nb_runcfg_cache_clear(void);

/* The number of verdicts cached (distinct model-relevant configurations
 * checked since the last clear). */
size_t nb_runcfg_cache_size(void);

#endif
