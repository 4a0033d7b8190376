/* src/config/keys.c - see config.h: the key table, checking and
 * canonicalizing one value against its key, and `config --help`. */
#include "config/keys.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/text.h"
#include "data/data.h" /* NB_IDX_INFER_MAX_CLASSES, value names */
#include "layers/norm.h"
#include "model/model.h"
#include "optim/optim.h"
#include "probe/probe.h"

/* ======================================================================
 * The key table
 * ====================================================================== */

/* Value lists of the enum keys.  A key whose value picks a C enum takes
 * the module's own name table (norm.h, model.h, optim.h, data.h, probe.h:
 * NULL-terminated, by enumerator), so the index runcfg.c casts is the
 * enumerator by construction.  The lists below map to booleans or modes
 * in runcfg.c by name. */
static const char *const v_conv[] = {"pytorch", "keras", NULL};
static const char *const v_rvar[] = {"unbiased", "biased", NULL};
static const char *const v_ghost[] = {"per_subbatch", "per_step", NULL};
static const char *const v_evst[] = {"ema", "precise", "target", NULL};
static const char *const v_hmode[] = {"eval", "probe", NULL};

static const char *check_depth(double v)
{
    long long d = (long long)v;
    return (d - 2) % 6 == 0 ? NULL : "must be 6n+2: 8, 14, 20, 32, 56, ...";
}

#define NB_STR_(x) #x
#define NB_STR(x) NB_STR_(x)
#define INF HUGE_VAL
#define K_INT(s, k, def, lo, hi, fl, doc) \
    {s, k, NB_KEY_INT, def, lo, hi, NULL, doc, fl, NULL, 0, NULL, s "." k}
#define K_FLT(s, k, def, lo, hi, fl, doc) \
    {s, k, NB_KEY_FLOAT, def, lo, hi, NULL, doc, fl, NULL, 0, NULL, s "." k}
#define K_BOOL(s, k, def, doc) \
    {s, k, NB_KEY_BOOL, def, 0, 0, NULL, doc, 0, NULL, 0, NULL, s "." k}
#define K_ENUM(s, k, def, vals, doc) \
    {s, k, NB_KEY_ENUM, def, 0, 0, vals, doc, 0, NULL, 0, NULL, s "." k}
#define K_STR(s, k, def, fl, doc) \
    {s, k, NB_KEY_STRING, def, 0, 0, NULL, doc, fl, NULL, 0, NULL, s "." k}
#define K_ILIST(s, k, def, lo, hi, fl, doc) \
    {s, k, NB_KEY_INT_LIST, def, lo, hi, NULL, doc, fl, NULL, 0, NULL, s "." k}
#define K_FLIST(s, k, def, lo, hi, fl, doc) \
    {s, k, NB_KEY_FLOAT_LIST, def, lo, hi, NULL, doc, fl, NULL, 0, NULL, s "." k}

#define NB_META_FIXED (NB_KF_META | NB_KF_NOSWEEP)
#define NB_STRUCT_KEY (NB_KF_REPEAT | NB_KF_STRUCT | NB_KF_NOSWEEP)

const char *const nb_sections[] = {"experiment", "model", "norm", "optim",
                                   "train", "data", "probe", NULL};

const struct nb_key nb_keys[] = {
    /* [experiment] */
    K_STR("experiment", "name", "", NB_KF_IDENT | NB_META_FIXED,
          "experiment name, results go to RESULTS_DIR/NAME/RUN_ID/; "
          "empty = the config file's base name"),
    K_STR("experiment", "results_dir", "results", NB_META_FIXED,
          "directory holding one folder per experiment"),
    K_INT("experiment", "seeds", "0", 0, 4294967295.0, 0,
          "run seed; a list or range (0..4) is the replicate axis, always "
          "the innermost"),
    {"experiment", "zip", NB_KEY_NAMES, "", 0, 0, NULL,
     "sweep axes that advance together, e.g. optim.lr, train.batch "
     "(equal lengths; one group per zip line)",
     NB_STRUCT_KEY, NULL, 0, NULL, "experiment.zip"},
    {"experiment", "exclude", NB_KEY_RULES, "", 0, 0, NULL,
     "drop combinations: norm.type=none & model.placement=post; rules "
     "separated by ',' or on several exclude lines; KEY=A|B, KEY!=A",
     NB_STRUCT_KEY, NULL, 0, NULL, "experiment.exclude"},
    K_FLT("experiment", "target_accuracy", "0", 0, 1, NB_META_FIXED,
          "test accuracy for \"steps to target\" in summaries; 0 = off"),

    /* [model] */
    K_ENUM("model", "arch", "cnn", nb_arch_names,
           "network: mlp, cnn (small VGG), resnet (6n+2), dln (deep linear)"),
    K_ILIST("model", "widths", "256 256 256", 1, 1e6, 0,
            "mlp hidden widths, space-separated in one value"),
    K_ENUM("model", "activation", "relu", nb_act_names, "hidden activation"),
    {"model", "depth", NB_KEY_INT, "8", 8, 1000, NULL,
     "resnet depth 6n+2 (8, 14, 20, 32, 56, ...)", 0, NULL, 0, check_depth, "model.depth"},
    K_INT("model", "dln_layers", "25", 1, 1000, 0,
          "deep linear network: number of layers"),
    K_INT("model", "dln_dim", "10", 1, 100000, 0,
          "deep linear network: width of every layer"),
    K_ENUM("model", "placement", "pre", nb_norm_placement_names,
           "pre: conv -> norm -> relu; post: conv -> relu -> norm"),
    K_BOOL("model", "bias_before_norm", "false",
           "keep the bias of a conv/linear layer followed by a norm"),
    {"model", "linear_norm", NB_KEY_BOOL, "true", 0, 0, NULL,
     "cnn: a norm after the hidden linear layer too; false = after the "
     "convs only (as in ResNet's classifier)", NB_KF_ADDED, NULL, 0, NULL, "model.linear_norm"},
    K_BOOL("model", "zero_init_last_gamma", "false",
           "resnet: gamma = 0 in the last norm of each block"),
    K_ENUM("model", "init", "kaiming", nb_init_names,
           "weight init: kaiming (fan_in, relu gain), glorot, small "
           "(normal with init_std)"),
    K_FLT("model", "init_std", "0.01", 0, INF, NB_KF_MIN_EXCL,
          "standard deviation of init = small"),
    K_FLT("model", "dropout", "0", 0, 1, NB_KF_MAX_EXCL,
          "dropout probability; 0 = none"),
    K_ENUM("model", "dropout_place", "classifier", nb_dropout_place_names,
           "classifier: before the last linear layer; before_norm: before "
           "every norm"),
    {"model", "conv_algo", NB_KEY_ENUM, "auto", 0, 0, nb_conv_algo_names,
     "how 3x3 convolutions compute: auto (Winograd from 8 input channels, "
     "im2col below), im2col, winograd (where the stride is 1); they round "
     "differently, so a verdict can be checked against the choice",
     NB_KF_ADDED, NULL, 0, NULL, "model.conv_algo"},

    /* [norm] */
    K_ENUM("norm", "type", "none", nb_norm_type_names, "normalization scheme"),
    K_INT("norm", "groups", "0", 0, 65536, 0,
          "group norm: groups G (must divide the channels); 0 = per layer "
          "the largest divisor of C that is at most min(8, C/4) "
          "(workloads.md)"),
    K_ENUM("norm", "lp", "2", nb_norm_lp_names, "lp norm: which norm of x scales it"),
    K_BOOL("norm", "affine", "true", "per-channel gamma and beta"),
    K_FLT("norm", "eps", "1e-05", 0, INF, NB_KF_MIN_EXCL,
          "added to the variance inside the square root"),
    {"norm", "momentum", NB_KEY_FLOAT, "0.1", 0, 1, NULL,
     "running statistics update rate (see momentum_convention); none = "
     "cumulative average", 0, "none", NAN, NULL, "norm.momentum"},
    K_ENUM("norm", "momentum_convention", "pytorch", v_conv,
           "pytorch: momentum weighs the new batch; keras: weighs the old "
           "value (0.99 = pytorch 0.01)"),
    K_ENUM("norm", "running_var", "unbiased", v_rvar,
           "running variance estimator: n/(n-1) (PyTorch) or biased"),
    K_INT("norm", "norm_batch", "0", 0, 1e7, 0,
          "ghost BN: statistics over sub-batches of this many samples; "
          "0 = the whole batch"),
    K_ENUM("norm", "ghost_update", "per_subbatch", v_ghost,
           "ghost BN running statistics: once per sub-batch (PyTorch "
           "chunks) or once per step from averaged statistics (Keras)"),
    K_BOOL("norm", "sync", "false",
           "synchronized BN: statistics over all devices' sub-batches"),
    K_INT("norm", "devices", "1", 1, 4096, 0,
          "number of (simulated) devices the batch is split over"),
    K_BOOL("norm", "renorm", "false", "batch renormalization (Ioffe 2017)"),
    K_FLT("norm", "renorm_rmax", "3", 1, INF, 0, "final r_max"),
    K_FLT("norm", "renorm_dmax", "5", 0, INF, 0, "final d_max"),
    {"norm", "renorm_warmup", NB_KEY_INT, "auto", 0, 1e12, NULL,
     "steps of plain BN (r_max 1, d_max 0); auto = 5k/160k of the run",
     0, "auto", -1, NULL, "norm.renorm_warmup"},
    {"norm", "renorm_rmax_steps", NB_KEY_INT, "auto", 0, 1e12, NULL,
     "step at which r_max reaches its final value; auto = 40k/160k of "
     "the run", 0, "auto", -1, NULL, "norm.renorm_rmax_steps"},
    {"norm", "renorm_dmax_steps", NB_KEY_INT, "auto", 0, 1e12, NULL,
     "step at which d_max reaches its final value; auto = 25k/160k of "
     "the run", 0, "auto", -1, NULL, "norm.renorm_dmax_steps"},
    K_FLT("norm", "renorm_momentum", "0.01", 0, 1, NB_KF_MIN_EXCL,
          "update rate of renorm's moving mean and std (weight of the new "
          "batch)"),
    K_BOOL("norm", "frozen", "false",
           "frozen BN: use running statistics in training from frozen_from"),
    K_INT("norm", "frozen_from", "0", 0, 1e12, 0,
          "first step of frozen BN (with frozen = true)"),
    K_BOOL("norm", "noisy", "false",
           "noisy BN (Santurkar Alg. 1): per-step random shift and scale "
           "after the norm"),
    K_FLT("norm", "noise_mu", "0.5", 0, INF, 0, "noisy BN: n_mu"),
    K_FLT("norm", "noise_sigma", "1.25", 0, INF, 0, "noisy BN: n_sigma"),
    K_FLT("norm", "noise_rmu", "0.1", 0, INF, 0, "noisy BN: r_mu"),
    K_FLT("norm", "noise_rsigma", "0.1", 0, INF, 0, "noisy BN: r_sigma"),
    K_ENUM("norm", "eval_stats", "ema", v_evst,
           "population statistics for evaluation: running averages (ema), "
           "recomputed on training data before each evaluation (precise "
           "BN), or recomputed on the evaluation data itself (target: "
           "domain shift)"),
    K_INT("norm", "precise_samples", "1000", 1, 1e9, 0,
          "precise/target BN: samples used to recompute the statistics "
          "(training or evaluation data), in whole batches of train.batch"),

    /* [optim] */
    K_FLT("optim", "lr", "0.1", 0, INF, NB_KF_MIN_EXCL,
          "learning rate (peak value with warmup and schedules)"),
    K_FLT("optim", "momentum", "0.9", 0, 1, NB_KF_MAX_EXCL,
          "SGD momentum; 0 = plain SGD"),
    K_BOOL("optim", "nesterov", "false", "Nesterov momentum"),
    K_FLT("optim", "weight_decay", "0", 0, INF, 0, "L2 weight decay"),
    K_BOOL("optim", "decay_norm_and_bias", "false",
           "apply weight decay to norm gains/biases and layer biases too"),
    K_FLT("optim", "clip_norm", "0", 0, INF, 0,
          "clip the global gradient norm to this; 0 = off"),
    K_ENUM("optim", "schedule", "constant", nb_sched_names,
           "learning-rate schedule after the warmup"),
    K_INT("optim", "step_size", "30", 1, 1e9, 0,
          "schedule = step: epochs between decays"),
    K_FLT("optim", "gamma", "0.1", 0, 1, NB_KF_MIN_EXCL,
          "step and multistep: decay factor"),
    K_ILIST("optim", "milestones", "", 1, 1e9, NB_KF_INCREASING,
            "schedule = multistep: epochs of the decays, space-separated "
            "in one value"),
    K_INT("optim", "warmup_steps", "0", 0, 1e12, 0,
          "linear warmup steps; 0 = none"),
    K_FLT("optim", "warmup_start", "0", 0, 1, 0,
          "learning-rate factor at step 0 of the warmup"),

    /* [train] */
    K_INT("train", "batch", "128", 1, 1e7, 0, "SGD batch size"),
    K_INT("train", "epochs", "10", 0, 1e6, 0, "epochs of training"),
    K_INT("train", "max_steps", "0", 0, 1e12, 0,
          "steps of training; 0 = from epochs"),
    K_INT("train", "eval_every", "0", 0, 1e12, 0,
          "evaluate every this many steps; 0 = only per epoch"),
    K_BOOL("train", "eval_every_epoch", "true",
           "evaluate at the end of every epoch"),
    K_INT("train", "eval_samples", "0", 0, 1e9, 0,
          "test samples per evaluation; 0 = the whole test set"),
    K_BOOL("train", "drop_last", "true",
           "drop the last incomplete batch of an epoch"),
    K_FLT("train", "diverge_loss", "inf", 0, INF,
          NB_KF_MIN_EXCL | NB_KF_INF,
          "stop as diverged when the loss exceeds this (or is not finite)"),
    K_INT("train", "threads", "1", 1, 256, 0, "BLAS threads per run"),

    /* [data] */
    K_ENUM("data", "source", "fashion-mnist", nb_data_source_names,
           "data set; blobs and dln are synthetic"),
    K_STR("data", "dir", "", 0,
          "directory of the data files; empty = the source's default"),
    {"data", "classes", NB_KEY_INT, "0", 0, 256, NULL,
     "idx: number of classes (labels 0..classes-1); 0 = the largest "
     "training label + 1, at most " NB_STR(NB_IDX_INFER_MAX_CLASSES),
     NB_KF_ADDED, NULL, 0, NULL, "data.classes"},
    K_INT("data", "train_subset", "0", 0, 1e9, 0,
          "use this many training samples; 0 = all"),
    K_BOOL("data", "balanced", "false",
           "train_subset takes the same count from every class"),
    K_FLT("data", "val_split", "0", 0, 1, NB_KF_MAX_EXCL,
          "fraction of the training set held out for validation"),
    K_ENUM("data", "standardize", "dataset", nb_std_mode_names,
           "dataset: published mean/std; computed: from the training set; "
           "given: mean and std below; none"),
    K_FLIST("data", "mean", "", -INF, INF, 0,
            "standardize = given: per-channel means, space-separated"),
    K_FLIST("data", "std", "", 0, INF, NB_KF_MIN_EXCL,
            "standardize = given: per-channel stds, space-separated"),
    K_ENUM("data", "corruption", "none", nb_corruption_names,
           "corruption of the test set (domain shift)"),
    K_INT("data", "severity", "3", 1, 5, 0, "corruption severity"),
    K_INT("data", "resize", "0", 0, 4096, 0,
          "resize images to this side length; 0 = native"),
    K_ENUM("data", "resize_mode", "padcrop", nb_resize_mode_names,
           "how to resize: zero padding / center crop, or bilinear"),
    K_BOOL("data", "fallback", "false",
           "use synthetic data when the data files are missing"),

    /* [probe] */
    K_BOOL("probe", "landscape", "false",
           "loss landscape along the gradient (Santurkar)"),
    K_INT("probe", "landscape_every", "50", 1, 1e12, 0,
          "steps between landscape probes (1 = every step, as Santurkar; "
          "about 8 training steps each)"),
    K_FLT("probe", "eta_min", "0.5", 0, INF, NB_KF_MIN_EXCL,
          "smallest step, as a multiple of lr"),
    K_FLT("probe", "eta_max", "4", 0, INF, NB_KF_MIN_EXCL,
          "largest step, as a multiple of lr"),
    K_INT("probe", "eta_points", "8", 2, 1000, 0, "steps probed"),
    K_ENUM("probe", "eta_spacing", "lin", nb_probe_spacing_names,
           "spacing of the probed steps"),
    K_BOOL("probe", "ics", "false", "internal covariate shift (Def. 2.1)"),
    K_INT("probe", "ics_every", "100", 1, 1e12, 0, "steps between ICS probes"),
    K_BOOL("probe", "dist", "false", "activation distribution statistics"),
    K_INT("probe", "dist_every", "100", 1, 1e12, 0,
          "steps between distribution probes"),
    K_BOOL("probe", "gradstats", "false", "gradient statistics per layer"),
    K_BOOL("probe", "hessian", "false",
           "Hessian top eigenvalue (power iteration) and trace (Hutchinson)"),
    K_INT("probe", "hessian_every", "0", 0, 1e12, 0,
          "steps between Hessian probes; 0 = at the end only"),
    K_INT("probe", "hessian_samples", "1000", 1, 1e9, 0,
          "training samples for the Hessian"),
    K_ENUM("probe", "hessian_mode", "eval", v_hmode,
           "norm statistics during the Hessian: running (eval) or batch "
           "(probe)"),
    K_BOOL("probe", "slice", "false",
           "filter-normalized loss slices (Li et al. 2018)"),
    K_ILIST("probe", "slice_at", "", -1, 1e12, NB_KF_INCREASING,
            "steps at which to take slices, space-separated, -1 = the end "
            "of training; empty = the end only"),
    K_INT("probe", "slice_dim", "1", 1, 2, 0, "1-D or 2-D slices"),
    K_INT("probe", "slice_points", "51", 2, 10001, 0, "points per axis"),
    K_FLT("probe", "slice_range", "1", 0, INF, NB_KF_MIN_EXCL,
          "slice coordinates span [-range, range]"),
    K_INT("probe", "slice_samples", "1000", 0, 1e9, 0,
          "training samples per slice point; 0 = all"),
    K_BOOL("probe", "slice_recompute_bn", "false",
           "recompute norm running statistics at every slice point"),
};

const int nb_n_keys = (int)(sizeof nb_keys / sizeof nb_keys[0]);

int nb_key_lookup(const char *section, const char *key)
{
    for (int i = 0; i < nb_n_keys; i++)
        if (!strcmp(nb_keys[i].section, section) && !strcmp(nb_keys[i].key, key))
            return i;
    return -1;
}

int nb_key_lookup_name(const char *name)
{
    const char *dot = strchr(name, '.');
    if (dot) {
        char sec[64];
        size_t n = (size_t)(dot - name);
        if (n >= sizeof sec)
            return -1;
        memcpy(sec, name, n);
        sec[n] = '\0';
        return nb_key_lookup(sec, dot + 1);
    }
    int found = -1;
    for (int i = 0; i < nb_n_keys; i++)
        if (!strcmp(nb_keys[i].key, name)) {
            if (found >= 0)
                return -2;
            found = i;
        }
    return found;
}

/* ======================================================================
 * Small helpers
 * ====================================================================== */

/* Appends p to b; 0, or NB_ENOMEM once an allocation has failed. */
static int sb_puts(struct nb_text *b, const char *p)
{
    nb_text_puts(b, p);
    return b->failed ? NB_ENOMEM : 0;
}

static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return INT_MAX;
    int d[65][65];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int ca = tolower((unsigned char)a[i - 1]);
            int cb = tolower((unsigned char)b[j - 1]);
            int cost = ca != cb;
            int v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v)
                v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[la][lb];
}

const char *nb_closest(const char *word, const char *const *cands, int n)
{
    const char *best = NULL;
    int bestd = INT_MAX;
    size_t lw = strlen(word);
    for (int i = 0; i < n; i++) {
        int d = edit_distance(word, cands[i]);
        size_t lc = strlen(cands[i]);
        size_t lmax = lw > lc ? lw : lc;
        int close = d <= 2 || (size_t)d * 3 <= lmax;
        /* "batch_size" -> "batch", "optimizer" -> "optim" */
        if (!close && lw >= 3 && lc >= 3 &&
            (strncasecmp(word, cands[i], lc) == 0 ||
             strncasecmp(word, cands[i], lw) == 0))
            close = 1, d = (int)(lmax - (lw < lc ? lw : lc));
        if (close && d < bestd && d < (int)lmax) {
            bestd = d;
            best = cands[i];
        }
    }
    return best;
}

static const char *type_name(const struct nb_key *k)
{
    switch (k->type) {
    case NB_KEY_INT: return "int";
    case NB_KEY_FLOAT: return "float";
    case NB_KEY_BOOL: return "bool";
    case NB_KEY_ENUM: return "enum";
    case NB_KEY_STRING: return "string";
    case NB_KEY_INT_LIST: return "int list";
    case NB_KEY_FLOAT_LIST: return "float list";
    case NB_KEY_NAMES: return "key names";
    case NB_KEY_RULES: return "rules";
    case NB_KEY_TYPE_COUNT: break;
    }
    return "?";
}

char *nb_format_double(double v, char *buf, size_t size)
{
    if (isinf(v)) {
        snprintf(buf, size, "%s", v > 0 ? "inf" : "-inf");
        return buf;
    }
    if (v == 0) { /* also -0 */
        snprintf(buf, size, "0");
        return buf;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return buf;
}

static void fmt_bound(const struct nb_key *k, double v, char *buf, size_t size)
{
    if (k->type == NB_KEY_INT || k->type == NB_KEY_INT_LIST)
        snprintf(buf, size, "%.0f", v);
    else
        nb_format_double(v, buf, size);
}

/* "> 0", "in [0, 1)", "" when unbounded. */
static void range_text(const struct nb_key *k, int full, char *buf,
                       size_t size)
{
    char lo[40], hi[40];
    fmt_bound(k, k->min, lo, sizeof lo);
    fmt_bound(k, k->max, hi, sizeof hi);
    int has_lo = !isinf(k->min), has_hi = !isinf(k->max);
    /* integer keys with huge maxima read better as ">= 0" */
    if (!full && (k->type == NB_KEY_INT || k->type == NB_KEY_INT_LIST) &&
        k->max >= 1e6)
        has_hi = 0;
    if (has_lo && has_hi)
        snprintf(buf, size, "in %c%s, %s%c", k->flags & NB_KF_MIN_EXCL ? '(' : '[',
                 lo, hi, k->flags & NB_KF_MAX_EXCL ? ')' : ']');
    else if (has_lo)
        snprintf(buf, size, "%s %s", k->flags & NB_KF_MIN_EXCL ? ">" : ">=", lo);
    else if (has_hi)
        snprintf(buf, size, "%s %s", k->flags & NB_KF_MAX_EXCL ? "<" : "<=", hi);
    else
        buf[0] = '\0';
}

static void enum_list(const struct nb_key *k, const char *sep, char *buf,
                      size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; k->enum_values[i]; i++)
        n += (size_t)snprintf(buf + (n < size ? n : size - 1),
                              n < size ? size - n : 1, "%s%s", i ? sep : "",
                              k->enum_values[i]);
}

/* ======================================================================
 * Values
 * ====================================================================== */

/* 0 ok, -1 malformed, -2 out of the range of the C type, -3 infinite. */
int nb_key_parse_double(const char *s, double *v)
{
    if (!*s || isspace((unsigned char)*s))
        return -1;
    for (const char *p = s; *p; p++)
        if (*p == 'x' || *p == 'X')
            return -1; /* no hex floats */
    const char *q = s + (*s == '+' || *s == '-');
    if (!strcasecmp(q, "inf") || !strcasecmp(q, "infinity")) {
        *v = *s == '-' ? -HUGE_VAL : HUGE_VAL;
        return -3;
    }
    if (!isdigit((unsigned char)*q) && *q != '.')
        return -1; /* nan, words */
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (*end)
        return -1;
    if (errno == ERANGE)
        return -2;
    *v = d;
    return 0;
}

/* 0 ok, -1 malformed, -2 out of range of long long. */
int nb_key_parse_ll(const char *s, long long *v)
{
    if (!*s || isspace((unsigned char)*s))
        return -1;
    const char *q = s + (*s == '+' || *s == '-');
    if (!isdigit((unsigned char)*q))
        return -1;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (*end)
        return -1;
    if (errno == ERANGE)
        return -2;
    *v = x;
    return 0;
}

static int parse_bool(const char *s, int *b)
{
    if (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcmp(s, "1"))
        *b = 1;
    else if (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcmp(s, "0"))
        *b = 0;
    else
        return -1;
    return 0;
}

static int out_of_range(const struct nb_key *k, double v)
{
    if (v < k->min || (v == k->min && (k->flags & NB_KF_MIN_EXCL)))
        return 1;
    if (v > k->max || (v == k->max && (k->flags & NB_KF_MAX_EXCL)))
        return 1;
    return 0;
}

/* Checks one number (text s, element of a list when in_list) and appends
 * its canonical form to out. */
static int canon_number(const struct nb_key *k, const char *s, int is_int,
                        const char *file, int line, struct nb_text *out,
                        struct nb_error *err)
{
    char buf[64];
    double v;
    const char *what = is_int ? "integer" : "number";
    const char *where = (k->type == NB_KEY_INT_LIST || k->type == NB_KEY_FLOAT_LIST)
                            ? " in" : " for";
    if (is_int) {
        long long x;
        int rc = nb_key_parse_ll(s, &x);
        if (rc == -1)
            return nb_error_set(err, NB_EINVAL, file, line,
                                "malformed integer '%s'%s [%s] %s", s, where,
                                k->section, k->key);
        if (rc == -2 || fabs((double)x) > 9007199254740992.0 ||
            out_of_range(k, (double)x)) {
            char r[96];
            range_text(k, rc == -2 || (double)x >= k->max, r, sizeof r);
            return nb_error_set(err, NB_EINVAL, file, line,
                                "value %s is out of range%s [%s] %s (must be %s)",
                                s, where, k->section, k->key, r);
        }
        v = (double)x;
        snprintf(buf, sizeof buf, "%lld", x);
    } else {
        int rc = nb_key_parse_double(s, &v);
        if (rc == -1)
            return nb_error_set(err, NB_EINVAL, file, line,
                                "malformed %s '%s'%s [%s] %s", what, s, where,
                                k->section, k->key);
        if (rc == -3 && !(k->flags & NB_KF_INF))
            return nb_error_set(err, NB_EINVAL, file, line,
                                "infinite value '%s' not allowed%s [%s] %s", s,
                                where, k->section, k->key);
        if (rc == -2 || out_of_range(k, v)) {
            char r[96];
            range_text(k, rc == -2 || v >= k->max, r, sizeof r);
            return nb_error_set(err, NB_EINVAL, file, line,
                                "value %s is out of range%s [%s] %s (must be %s)",
                                s, where, k->section, k->key, r);
        }
        nb_format_double(v, buf, sizeof buf);
    }
    if (k->check) {
        const char *why = k->check(v);
        if (why)
            return nb_error_set(err, NB_EINVAL, file, line,
                                "bad value %s for [%s] %s (%s)", s, k->section,
                                k->key, why);
    }
    return sb_puts(out, buf) ? nb_error_oom(err) : 0;
}

/* Checks that text is one of k's enum values and appends it to out;
 * returns a status (the hint names the closest value, or them all). */
static int canon_enum(const struct nb_key *k, const char *text, const char *file, int line,
                      struct nb_text *out, struct nb_error *err)
{
    int found = 0;
    for (int i = 0; k->enum_values[i]; i++)
        if (!strcmp(text, k->enum_values[i]))
            found = 1;
    if (!found) {
        char list[200];
        int n = 0;
        while (k->enum_values[n])
            n++;
        enum_list(k, ", ", list, sizeof list);
        int rc = nb_error_set(err, NB_EINVAL, file, line, "bad value '%s' for [%s] %s", text,
                              k->section, k->key);
        const char *c = nb_closest(text, k->enum_values, n);
        if (c)
            nb_error_hint(err, "did you mean '%s'? allowed values: %s", c, list);
        else
            nb_error_hint(err, "allowed values: %s", list);
        return rc;
    }
    return sb_puts(out, text) ? nb_error_oom(err) : 0;
}

/* Checks every number of the list text (strictly increasing when k says
 * so) and appends their canonical forms, one space apart, to out;
 * returns a status. */
static int canon_list(const struct nb_key *k, const char *text, const char *file, int line,
                      struct nb_text *out, struct nb_error *err)
{
    char *copy = strdup(text), *save = NULL;
    double prev = -HUGE_VAL;
    int first = 1, rc = 0;
    if (!copy)
        return nb_error_oom(err);
    for (char *tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        size_t at = out->n;
        if (!first && sb_puts(out, " ")) {
            rc = nb_error_oom(err);
            break;
        }
        rc = canon_number(k, tok, k->type == NB_KEY_INT_LIST, file, line, out, err);
        if (rc)
            break;
        double v = strtod(out->s + at + !first, NULL);
        if ((k->flags & NB_KF_INCREASING) && v <= prev) {
            rc = nb_error_set(err, NB_EINVAL, file, line,
                              "[%s] %s must be strictly increasing ('%s')", k->section, k->key,
                              text);
            break;
        }
        prev = v;
        first = 0;
    }
    free(copy);
    return rc;
}

int nb_key_canon(const struct nb_key *k, const char *text, const char *file,
                 int line, char **out, struct nb_error *err)
{
    struct nb_text b = {0};
    int rc = 0;
    *out = NULL;
    if (sb_puts(&b, ""))
        return nb_error_oom(err);
    for (const char *p = text; *p; p++)
        if (iscntrl((unsigned char)*p) && *p != '\t') {
            free(b.s);
            return nb_error_set(err, NB_EINVAL, file, line,
                                "control character in the value of [%s] %s",
                                k->section, k->key);
        }
    if (k->word && !strcmp(text, k->word)) {
        rc = sb_puts(&b, k->word) ? nb_error_oom(err) : 0;
        goto done;
    }
    switch (k->type) {
    case NB_KEY_INT:
    case NB_KEY_FLOAT:
        if (!*text) {
            rc = nb_error_set(err, NB_EINVAL, file, line,
                              "missing value for [%s] %s", k->section, k->key);
            break;
        }
        rc = canon_number(k, text, k->type == NB_KEY_INT, file, line, &b, err);
        if (rc && k->word && err && err->status && strstr(err->msg, "malformed"))
            nb_error_hint(err, "a number or '%s'", k->word);
        break;
    case NB_KEY_BOOL: {
        int v;
        if (parse_bool(text, &v) != 0) {
            rc = nb_error_set(err, NB_EINVAL, file, line,
                              "bad value '%s' for [%s] %s (expected a boolean)",
                              text, k->section, k->key);
            nb_error_hint(err, "allowed values: true, false, yes, no, 1, 0");
            break;
        }
        rc = sb_puts(&b, v ? "true" : "false") ? nb_error_oom(err) : 0;
        break;
    }
    case NB_KEY_ENUM:
        rc = canon_enum(k, text, file, line, &b, err);
        break;
    case NB_KEY_STRING:
        if (k->flags & NB_KF_IDENT)
            for (const char *p = text; *p; p++)
                if (!isalnum((unsigned char)*p) && !strchr("_.-", *p)) {
                    rc = nb_error_set(err, NB_EINVAL, file, line,
                                      "bad value '%s' for [%s] %s (only "
                                      "A-Z a-z 0-9 _ . - allowed)",
                                      text, k->section, k->key);
                    goto done;
                }
        rc = sb_puts(&b, text) ? nb_error_oom(err) : 0;
        break;
    case NB_KEY_INT_LIST:
    case NB_KEY_FLOAT_LIST:
        rc = canon_list(k, text, file, line, &b, err);
        break;
    case NB_KEY_NAMES: /* zip and exclude: parsed by config.c */
    case NB_KEY_RULES:
    case NB_KEY_TYPE_COUNT:
        rc = nb_error_set(err, NB_EINVAL, file, line,
                          "[%s] %s takes no plain value", k->section, k->key);
        break;
    }
done:
    if (rc) {
        free(b.s);
        return rc;
    }
    *out = b.s;
    return 0;
}

/* ======================================================================
 * Help
 * ====================================================================== */

void nb_config_help(FILE *out)
{
    fputs("; normbench configuration keys (normbench config --help).\n"
          "; This text is a valid config file that gives the defaults.\n"
          "; A comma list, lin(a, b, n), log(a, b, n) or an integer range "
          "a..b\n"
          "; makes a key a sweep axis; see [experiment] zip, exclude, "
          "seeds.\n"
          "; `include = FILE` reads FILE (relative to this file) in place; "
          "later\n"
          "; assignments override earlier and included ones.\n",
          out);
    const char *sec = NULL;
    for (int i = 0; i < nb_n_keys; i++) {
        const struct nb_key *k = &nb_keys[i];
        if (!sec || strcmp(sec, k->section)) {
            fprintf(out, "\n[%s]\n", k->section);
            sec = k->section;
        }
        char r[200] = "";
        if (k->type == NB_KEY_ENUM) {
            enum_list(k, "|", r, sizeof r);
        } else if (k->type == NB_KEY_INT || k->type == NB_KEY_FLOAT ||
                   k->type == NB_KEY_INT_LIST || k->type == NB_KEY_FLOAT_LIST) {
            int list = k->type == NB_KEY_INT_LIST || k->type == NB_KEY_FLOAT_LIST;
            if (list)
                strcpy(r, "each ");
            range_text(k, 0, r + (list ? 5 : 0), sizeof r - (list ? 5 : 0));
            if (list && !r[5])
                r[0] = '\0';
        } else if (k->type == NB_KEY_STRING && (k->flags & NB_KF_IDENT)) {
            snprintf(r, sizeof r, "[A-Za-z0-9_.-]");
        }
        fprintf(out, "; %s%s%s", type_name(k), r[0] ? " " : "", r);
        if (k->word)
            fprintf(out, " or %s", k->word);
        if (k->flags & NB_KF_INF)
            fprintf(out, " or inf");
        if ((k->flags & NB_KF_NOSWEEP) && !(k->flags & NB_KF_STRUCT))
            fprintf(out, ", not sweepable");
        if (k->flags & NB_KF_REPEAT)
            fprintf(out, ", repeatable");
        if (k->flags & NB_KF_ADDED)
            fprintf(out, ", new since 0.1.0 (in run_id only when not default)");
        fprintf(out, ": %s\n", k->doc);
        fprintf(out, "%s =%s%s\n", k->key, k->def[0] ? " " : "", k->def);
    }
}

