/* src/harness/config.c - see config.h. */
#include "harness/config.h"
#include "core/text.h"
#include "data/data.h" /* NB_IDX_INFER_MAX_CLASSES */

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* ======================================================================
 * The key table
 * ====================================================================== */

static const char *const v_arch[] = {"mlp", "cnn", "resnet", "dln", NULL};
static const char *const v_act[] = {"relu", "sigmoid", NULL};
static const char *const v_place[] = {"pre", "post", NULL};
static const char *const v_init[] = {"kaiming", "glorot", "small", NULL};
static const char *const v_dplace[] = {"classifier", "before_norm", NULL};
static const char *const v_norm[] = {"none", "batch", "layer", "instance",
                                     "group", "lp", NULL};
static const char *const v_lp[] = {"1", "2", "inf", NULL};
static const char *const v_conv[] = {"pytorch", "keras", NULL};
static const char *const v_rvar[] = {"unbiased", "biased", NULL};
static const char *const v_ghost[] = {"per_subbatch", "per_step", NULL};
static const char *const v_evst[] = {"ema", "precise", "target", NULL};
static const char *const v_sched[] = {"constant", "step", "multistep",
                                      "cosine", NULL};
static const char *const v_source[] = {"fashion-mnist", "mnist", "idx",
                                       "cifar10", "blobs", "dln", NULL};
static const char *const v_stdz[] = {"dataset", "computed", "given", "none",
                                     NULL};
static const char *const v_corr[] = {"none", "noise", "blur", "contrast",
                                     "invert", NULL};
static const char *const v_rmode[] = {"padcrop", "bilinear", NULL};
static const char *const v_spacing[] = {"lin", "log", NULL};
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
    K_ENUM("model", "arch", "cnn", v_arch,
           "network: mlp, cnn (small VGG), resnet (6n+2), dln (deep linear)"),
    K_ILIST("model", "widths", "256 256 256", 1, 1e6, 0,
            "mlp hidden widths, space-separated in one value"),
    K_ENUM("model", "activation", "relu", v_act, "hidden activation"),
    {"model", "depth", NB_KEY_INT, "8", 8, 1000, NULL,
     "resnet depth 6n+2 (8, 14, 20, 32, 56, ...)", 0, NULL, 0, check_depth, "model.depth"},
    K_INT("model", "dln_layers", "25", 1, 1000, 0,
          "deep linear network: number of layers"),
    K_INT("model", "dln_dim", "10", 1, 100000, 0,
          "deep linear network: width of every layer"),
    K_ENUM("model", "placement", "pre", v_place,
           "pre: conv -> norm -> relu; post: conv -> relu -> norm"),
    K_BOOL("model", "bias_before_norm", "false",
           "keep the bias of a conv/linear layer followed by a norm"),
    {"model", "linear_norm", NB_KEY_BOOL, "true", 0, 0, NULL,
     "cnn: a norm after the hidden linear layer too; false = after the "
     "convs only (as in ResNet's classifier)", NB_KF_ADDED, NULL, 0, NULL, "model.linear_norm"},
    K_BOOL("model", "zero_init_last_gamma", "false",
           "resnet: gamma = 0 in the last norm of each block"),
    K_ENUM("model", "init", "kaiming", v_init,
           "weight init: kaiming (fan_in, relu gain), glorot, small "
           "(normal with init_std)"),
    K_FLT("model", "init_std", "0.01", 0, INF, NB_KF_MIN_EXCL,
          "standard deviation of init = small"),
    K_FLT("model", "dropout", "0", 0, 1, NB_KF_MAX_EXCL,
          "dropout probability; 0 = none"),
    K_ENUM("model", "dropout_place", "classifier", v_dplace,
           "classifier: before the last linear layer; before_norm: before "
           "every norm"),

    /* [norm] */
    K_ENUM("norm", "type", "none", v_norm, "normalization scheme"),
    K_INT("norm", "groups", "0", 0, 65536, 0,
          "group norm: groups G (must divide the channels); 0 = per-layer "
          "default min(8, C/4) from workloads.md"),
    K_ENUM("norm", "lp", "2", v_lp, "lp norm: which norm of x scales it"),
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
          "precise BN: training samples used to recompute statistics"),

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
    K_ENUM("optim", "schedule", "constant", v_sched,
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
    K_ENUM("data", "source", "fashion-mnist", v_source,
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
    K_ENUM("data", "standardize", "dataset", v_stdz,
           "dataset: published mean/std; computed: from the training set; "
           "given: mean and std below; none"),
    K_FLIST("data", "mean", "", -INF, INF, 0,
            "standardize = given: per-channel means, space-separated"),
    K_FLIST("data", "std", "", 0, INF, NB_KF_MIN_EXCL,
            "standardize = given: per-channel stds, space-separated"),
    K_ENUM("data", "corruption", "none", v_corr,
           "corruption of the test set (domain shift)"),
    K_INT("data", "severity", "3", 1, 5, 0, "corruption severity"),
    K_INT("data", "resize", "0", 0, 4096, 0,
          "resize images to this side length; 0 = native"),
    K_ENUM("data", "resize_mode", "padcrop", v_rmode,
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
    K_ENUM("probe", "eta_spacing", "lin", v_spacing,
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

static int is_blank(int c) { return c == ' ' || c == '\t'; }

static char *ltrim(char *s)
{
    while (is_blank((unsigned char)*s))
        s++;
    return s;
}

static void rtrim(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
}

/* Cuts an inline comment: ';' or '#' preceded by a blank. */
static void strip_comment(char *s)
{
    if (!s[0])
        return;
    for (size_t i = 1; s[i]; i++)
        if ((s[i] == ';' || s[i] == '#') && is_blank((unsigned char)s[i - 1])) {
            s[i] = '\0';
            break;
        }
}

static int oom(struct nb_error *err)
{
    return nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
}

/* Optimal string alignment distance, case-insensitive. */
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
    default: return "?";
    }
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
static int parse_double(const char *s, double *v)
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
static int parse_ll(const char *s, long long *v)
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
        int rc = parse_ll(s, &x);
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
        int rc = parse_double(s, &v);
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
    return sb_puts(out, buf) ? oom(err) : 0;
}

int nb_key_canon(const struct nb_key *k, const char *text, const char *file,
                 int line, char **out, struct nb_error *err)
{
    struct nb_text b = {0};
    int rc = 0;
    *out = NULL;
    if (sb_puts(&b, ""))
        return oom(err);
    for (const char *p = text; *p; p++)
        if (iscntrl((unsigned char)*p) && *p != '\t') {
            free(b.s);
            return nb_error_set(err, NB_EINVAL, file, line,
                                "control character in the value of [%s] %s",
                                k->section, k->key);
        }
    if (k->word && !strcmp(text, k->word)) {
        rc = sb_puts(&b, k->word) ? oom(err) : 0;
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
        rc = sb_puts(&b, v ? "true" : "false") ? oom(err) : 0;
        break;
    }
    case NB_KEY_ENUM: {
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
            rc = nb_error_set(err, NB_EINVAL, file, line,
                              "bad value '%s' for [%s] %s", text, k->section,
                              k->key);
            const char *c = nb_closest(text, k->enum_values, n);
            if (c)
                nb_error_hint(err, "did you mean '%s'? allowed values: %s", c,
                              list);
            else
                nb_error_hint(err, "allowed values: %s", list);
            break;
        }
        rc = sb_puts(&b, text) ? oom(err) : 0;
        break;
    }
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
        rc = sb_puts(&b, text) ? oom(err) : 0;
        break;
    case NB_KEY_INT_LIST:
    case NB_KEY_FLOAT_LIST: {
        char *copy = strdup(text), *save = NULL;
        double prev = -HUGE_VAL;
        int first = 1;
        if (!copy) {
            rc = oom(err);
            break;
        }
        for (char *tok = strtok_r(copy, " \t", &save); tok;
             tok = strtok_r(NULL, " \t", &save)) {
            size_t at = b.n;
            if (!first && sb_puts(&b, " ")) {
                rc = oom(err);
                break;
            }
            rc = canon_number(k, tok, k->type == NB_KEY_INT_LIST, file, line,
                              &b, err);
            if (rc)
                break;
            double v = strtod(b.s + at + !first, NULL);
            if ((k->flags & NB_KF_INCREASING) && v <= prev) {
                rc = nb_error_set(err, NB_EINVAL, file, line,
                                  "[%s] %s must be strictly increasing ('%s')",
                                  k->section, k->key, text);
                break;
            }
            prev = v;
            first = 0;
        }
        free(copy);
        break;
    }
    default:
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

/* ======================================================================
 * The INI reader
 * ====================================================================== */

#define NB_INI_MAX_DEPTH 32

struct ini_ctx {
    nb_ini_handler handler;
    void *user;
    const char *text; /* nb_ini_parse_text: the top-level file's text */
    int next_id;
    const char *stack_path[NB_INI_MAX_DEPTH];
    char *stack_real[NB_INI_MAX_DEPTH];
    int depth;
};

struct pending {
    int active;
    char *key;
    int line;
    struct nb_text val;
    size_t *seg_off;
    int *seg_line;
    int n_segs, cap_segs;
};

int nb_ini_item_line(const struct nb_ini_item *it, size_t off)
{
    int line = it->line;
    for (int j = 0; j < it->n_segs; j++)
        if (it->seg_off[j] <= off)
            line = it->seg_line[j];
    return line;
}

static int pend_seg(struct pending *p, const char *text, int line)
{
    if (p->n_segs == p->cap_segs) {
        int cap = p->cap_segs ? 2 * p->cap_segs : 4;
        size_t *o = realloc(p->seg_off, (size_t)cap * sizeof *o);
        if (!o)
            return NB_ENOMEM;
        p->seg_off = o;
        int *l = realloc(p->seg_line, (size_t)cap * sizeof *l);
        if (!l)
            return NB_ENOMEM;
        p->seg_line = l;
        p->cap_segs = cap;
    }
    if (p->val.n > 0 && *text && sb_puts(&p->val, " "))
        return NB_ENOMEM;
    p->seg_off[p->n_segs] = p->val.n;
    p->seg_line[p->n_segs] = line;
    p->n_segs++;
    return sb_puts(&p->val, text);
}

static int parse_file(struct ini_ctx *ctx, const char *path,
                      const char *from_file, int from_line,
                      struct nb_error *err);

static int flush(struct ini_ctx *ctx, struct pending *p, const char *file,
                 int file_id, const char *section, int section_line,
                 struct nb_error *err)
{
    if (!p->active)
        return 0;
    p->active = 0;
    if (!strcmp(p->key, "include")) {
        const char *v = p->val.s;
        if (!*v)
            return nb_error_set(err, NB_EINVAL, file, p->line,
                                "include needs a file name");
        char *inc;
        const char *slash = strrchr(file, '/');
        if (v[0] == '/' || !slash) {
            inc = strdup(v);
        } else {
            size_t dl = (size_t)(slash - file) + 1;
            inc = malloc(dl + strlen(v) + 1);
            if (inc) {
                memcpy(inc, file, dl);
                strcpy(inc + dl, v);
            }
        }
        if (!inc)
            return oom(err);
        int rc = parse_file(ctx, inc, file, p->line, err);
        free(inc);
        return rc;
    }
    struct nb_ini_item it = {
        .file = file, .file_id = file_id, .line = p->line,
        .section = section, .section_line = section_line, .key = p->key,
        .value = p->val.s, .n_segs = p->n_segs, .seg_off = p->seg_off,
        .seg_line = p->seg_line,
    };
    return ctx->handler(ctx->user, &it, err);
}

static int valid_key_name(const char *k)
{
    if (!*k)
        return 0;
    for (; *k; k++)
        if (!isalnum((unsigned char)*k) && *k != '_')
            return 0;
    return 1;
}

/* Reads one line, its '\n' included, into *buf (NUL-terminated) and sets
 * *len (0 at end of file).  *total counts the file's bytes so far.  A read
 * error, a NUL byte, a line longer than NB_INI_MAX_LINE or a file larger
 * than NB_INI_MAX_FILE is an error at path:lineno. */
static int read_line(FILE *fp, char **buf, size_t *cap, size_t *len,
                     long *total, const char *path, int lineno,
                     struct nb_error *err)
{
    size_t n = 0;
    for (;;) {
        errno = 0;
        int c = getc(fp);
        if (c == EOF) {
            if (ferror(fp))
                return nb_error_set(err, NB_EIO, path, lineno, "read error: %s",
                                    strerror(errno));
            break;
        }
        if (c == '\0')
            return nb_error_set(err, NB_EINVAL, path, lineno,
                                "NUL byte in column %zu (not a text file?)",
                                n + 1);
        if (n == NB_INI_MAX_LINE)
            return nb_error_set(err, NB_EINVAL, path, lineno,
                                "line longer than %d bytes", NB_INI_MAX_LINE);
        if (++*total > NB_INI_MAX_FILE)
            return nb_error_set(err, NB_EINVAL, path, lineno,
                                "file larger than %ld bytes", NB_INI_MAX_FILE);
        if (n + 2 > *cap) {
            size_t c2 = *cap ? 2 * *cap : 256;
            char *b = realloc(*buf, c2);
            if (!b)
                return oom(err);
            *buf = b;
            *cap = c2;
        }
        (*buf)[n++] = (char)c;
        if (c == '\n')
            break;
    }
    if (*buf)
        (*buf)[n] = '\0';
    *len = n;
    return 0;
}

static int parse_lines(struct ini_ctx *ctx, FILE *fp, const char *path,
                       int file_id, struct nb_error *err)
{
    char *line = NULL, *section = strdup("");
    size_t cap = 0, len;
    long total = 0;
    int lineno = 0, section_line = 0, rc = 0;
    struct pending p = {0};
    if (!section)
        return oom(err);
    for (;;) {
        if ((rc = read_line(fp, &line, &cap, &len, &total, path, lineno + 1, err)))
            break;
        if (len == 0)
            break;
        lineno++;
        char *s = line;
        if (lineno == 1 && !strncmp(s, "\xEF\xBB\xBF", 3))
            s += 3;
        rtrim(s); /* drops \n and \r */
        char *t = ltrim(s);
        if (*t == ';' || *t == '#')
            continue; /* comment lines never end a value */
        if (!*t) {
            if ((rc = flush(ctx, &p, path, file_id, section, section_line, err)))
                break;
            continue;
        }
        if (t != s && p.active) { /* continuation line */
            strip_comment(t);
            rtrim(t);
            if (pend_seg(&p, t, lineno)) {
                rc = oom(err);
                break;
            }
            continue;
        }
        if ((rc = flush(ctx, &p, path, file_id, section, section_line, err)))
            break;
        if (*t == '[') {
            strip_comment(t);
            rtrim(t);
            char *close = strchr(t, ']');
            if (!close || close[1]) {
                rc = nb_error_set(err, NB_EINVAL, path, lineno,
                                  close ? "text after ']' in section header '%s'"
                                        : "malformed section header '%s' (missing ']')",
                                  t);
                break;
            }
            *close = '\0';
            char *name = ltrim(t + 1);
            rtrim(name);
            if (!*name) {
                rc = nb_error_set(err, NB_EINVAL, path, lineno,
                                  "empty section name");
                break;
            }
            free(section);
            section = strdup(name);
            if (!section) {
                rc = oom(err);
                break;
            }
            section_line = lineno;
            struct nb_ini_item it = {.file = path, .file_id = file_id,
                                     .line = lineno, .section = section,
                                     .section_line = lineno};
            if ((rc = ctx->handler(ctx->user, &it, err)))
                break;
            continue;
        }
        char *eq = strchr(t, '=');
        if (!eq) {
            strip_comment(t);
            rtrim(t);
            rc = nb_error_set(err, NB_EINVAL, path, lineno,
                              "expected 'key = value' or '[section]', got '%.80s'",
                              t);
            break;
        }
        *eq = '\0';
        rtrim(t);
        if (!valid_key_name(t)) {
            rc = *t ? nb_error_set(err, NB_EINVAL, path, lineno,
                                   "bad key name '%.80s'", t)
                    : nb_error_set(err, NB_EINVAL, path, lineno,
                                   "missing key before '='");
            break;
        }
        char *v = eq + 1;
        strip_comment(v);
        v = ltrim(v);
        rtrim(v);
        free(p.key);
        p.key = strdup(t);
        p.val.n = 0;
        p.n_segs = 0;
        if (!p.key || sb_puts(&p.val, "") || pend_seg(&p, v, lineno)) {
            rc = oom(err);
            break;
        }
        p.line = lineno;
        p.active = 1;
    }
    if (!rc)
        rc = flush(ctx, &p, path, file_id, section, section_line, err);
    free(p.key);
    free(p.val.s);
    free(p.seg_off);
    free(p.seg_line);
    free(line);
    free(section);
    return rc;
}

static int parse_file(struct ini_ctx *ctx, const char *path,
                      const char *from_file, int from_line,
                      struct nb_error *err)
{
    bool in_memory = ctx->text && ctx->depth == 0;
    FILE *fp = in_memory ? fmemopen((void *)ctx->text, strlen(ctx->text), "r")
                         : fopen(path, "r");
    if (!fp) {
        int e = errno;
        if (from_file)
            return nb_error_set(err, NB_EIO, from_file, from_line,
                                "cannot open included file '%s': %s", path,
                                strerror(e));
        return nb_error_set(err, NB_EIO, path, 0, "cannot open: %s",
                            strerror(e));
    }
    struct stat st;
    if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(fp);
        if (from_file)
            return nb_error_set(err, NB_EIO, from_file, from_line,
                                "cannot open included file '%s': %s", path,
                                strerror(EISDIR));
        return nb_error_set(err, NB_EIO, path, 0, "cannot open: %s",
                            strerror(EISDIR));
    }
    char *real = in_memory ? NULL : realpath(path, NULL);
    if (!real)
        real = strdup(path);
    if (!real) {
        fclose(fp);
        return oom(err);
    }
    for (int i = 0; i < ctx->depth; i++)
        if (!strcmp(ctx->stack_real[i], real)) {
            char chain[600];
            size_t n = 0;
            chain[0] = '\0';
            for (int j = i; j < ctx->depth; j++)
                n += (size_t)snprintf(chain + (n < sizeof chain ? n : sizeof chain - 1),
                                      n < sizeof chain ? sizeof chain - n : 1,
                                      "%s -> ", ctx->stack_path[j]);
            snprintf(chain + (n < sizeof chain ? n : sizeof chain - 1),
                     n < sizeof chain ? sizeof chain - n : 1, "%s", path);
            free(real);
            fclose(fp);
            return nb_error_set(err, NB_EINVAL, from_file, from_line,
                                "include cycle: %s", chain);
        }
    if (ctx->depth == NB_INI_MAX_DEPTH) {
        free(real);
        fclose(fp);
        return nb_error_set(err, NB_EINVAL, from_file, from_line,
                            "includes nested more than %d deep",
                            NB_INI_MAX_DEPTH);
    }
    ctx->stack_path[ctx->depth] = path;
    ctx->stack_real[ctx->depth] = real;
    ctx->depth++;
    int rc = parse_lines(ctx, fp, path, ctx->next_id++, err);
    ctx->depth--;
    free(real);
    fclose(fp);
    return rc;
}

int nb_ini_parse(const char *path, nb_ini_handler handler, void *user,
                 struct nb_error *err)
{
    struct ini_ctx ctx = {.handler = handler, .user = user};
    return parse_file(&ctx, path, NULL, 0, err);
}

int nb_ini_parse_text(const char *name, const char *text, nb_ini_handler handler,
                      void *user, struct nb_error *err)
{
    struct ini_ctx ctx = {.handler = handler, .user = user, .text = text};
    return parse_file(&ctx, name, NULL, 0, err);
}

/* ======================================================================
 * Splitting a value into sweep elements
 * ====================================================================== */

#define NB_MAX_AXIS_VALUES 100000

struct items {
    char **v;
    int *line;
    int n, cap;
};

static int items_push(struct items *it, char *s, int line)
{
    if (it->n == it->cap) {
        int cap = it->cap ? 2 * it->cap : 8;
        char **v = realloc(it->v, (size_t)cap * sizeof *v);
        if (!v)
            return NB_ENOMEM;
        it->v = v;
        int *l = realloc(it->line, (size_t)cap * sizeof *l);
        if (!l)
            return NB_ENOMEM;
        it->line = l;
        it->cap = cap;
    }
    it->v[it->n] = s;
    it->line[it->n] = line;
    it->n++;
    return 0;
}

/* items_push of a copy of s. */
static int items_push_copy(struct items *it, const char *s, int line)
{
    char *c = strdup(s);
    if (!c || items_push(it, c, line)) {
        free(c);
        return NB_ENOMEM;
    }
    return 0;
}

static void items_free(struct items *it)
{
    for (int i = 0; i < it->n; i++)
        free(it->v[i]);
    free(it->v);
    free(it->line);
    memset(it, 0, sizeof *it);
}

/* Splits s at top-level separator sep (outside parentheses) into trimmed
 * pieces; off[i] is the byte offset of piece i in s.  Returns the count,
 * or -1 on allocation failure.  The pieces point into buf (a copy). */
static int split_top(const char *s, char sep, char **buf, char ***pieces,
                     size_t **off)
{
    size_t len = strlen(s);
    int n = 1, depth = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '(')
            depth++;
        else if (s[i] == ')' && depth > 0)
            depth--;
        else if (s[i] == sep && depth == 0)
            n++;
    }
    *buf = strdup(s);
    *pieces = malloc((size_t)n * sizeof **pieces);
    *off = malloc((size_t)n * sizeof **off);
    if (!*buf || !*pieces || !*off) {
        free(*buf);
        free(*pieces);
        free(*off);
        return -1;
    }
    char *b = *buf;
    int k = 0;
    size_t start = 0;
    depth = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && b[i] == '(')
            depth++;
        else if (i < len && b[i] == ')' && depth > 0)
            depth--;
        else if (i == len || (b[i] == sep && depth == 0)) {
            b[i] = '\0';
            char *p = b + start;
            while (isspace((unsigned char)*p))
                p++;
            rtrim(p);
            (*pieces)[k] = p;
            (*off)[k] = (size_t)(p - b);
            k++;
            start = i + 1;
        }
    }
    return n;
}

/* lin(a, b, n) / log(a, b, n): returns 1 when s is a generator (values
 * appended as text), 0 when it is not one, < 0 on error. */
static int expand_generator(const struct nb_key *k, const char *s,
                            const char *file, int line, struct items *out,
                            struct nb_error *err)
{
    int is_log;
    if (!strncmp(s, "lin", 3))
        is_log = 0;
    else if (!strncmp(s, "log", 3))
        is_log = 1;
    else
        return 0;
    const char *p = s + 3;
    while (is_blank((unsigned char)*p))
        p++;
    if (*p != '(')
        return 0;
    size_t len = strlen(p);
    if (p[len - 1] != ')')
        return nb_error_set(err, NB_EINVAL, file, line,
                            "malformed generator '%s' (expected %s(a, b, n))",
                            s, is_log ? "log" : "lin");
    char *args = strndup(p + 1, len - 2), *buf;
    char **pc;
    size_t *off;
    if (!args)
        return oom(err);
    int n = split_top(args, ',', &buf, &pc, &off);
    free(args);
    if (n < 0)
        return oom(err);
    double a = 0, b = 0;
    long long cnt = 0;
    int rc = 0;
    if (n != 3 || parse_double(pc[0], &a) || parse_double(pc[1], &b) ||
        parse_ll(pc[2], &cnt))
        rc = nb_error_set(err, NB_EINVAL, file, line,
                          "malformed generator '%s' (expected %s(a, b, n) "
                          "with numbers a, b and an integer n)",
                          s, is_log ? "log" : "lin");
    else if (cnt < 2 || cnt > NB_MAX_AXIS_VALUES)
        rc = nb_error_set(err, NB_EINVAL, file, line,
                          "generator '%s': n must be in [2, %d]", s,
                          NB_MAX_AXIS_VALUES);
    else if (is_log && (a <= 0 || b <= 0))
        rc = nb_error_set(err, NB_EINVAL, file, line,
                          "generator '%s': log needs a > 0 and b > 0", s);
    free(buf);
    free(pc);
    free(off);
    if (rc)
        return rc;
    for (long long i = 0; i < cnt; i++) {
        double t = (double)i / (double)(cnt - 1), v;
        if (i == 0)
            v = a;
        else if (i == cnt - 1)
            v = b;
        else if (is_log)
            v = exp(log(a) + (log(b) - log(a)) * t);
        else
            v = a + (b - a) * t;
        char txt[64];
        if (k->type == NB_KEY_INT) {
            double r = nearbyint(v);
            if (fabs(v - r) > 1e-9 * (fabs(v) > 1 ? fabs(v) : 1))
                return nb_error_set(err, NB_EINVAL, file, line,
                                    "generator '%s' gives the non-integer "
                                    "value %.15g for integer key [%s] %s",
                                    s, v, k->section, k->key);
            snprintf(txt, sizeof txt, "%.0f", r);
        } else {
            /* round to 15 significant digits: lin(0.1, 0.5, 5) gives
             * 0.1 0.2 0.3 0.4 0.5, not 0.30000000000000004 */
            snprintf(txt, sizeof txt, "%.15g", v);
        }
        if (items_push_copy(out, txt, line))
            return oom(err);
    }
    return 1;
}

/* a..b (integers, inclusive): 1 when s is a range, 0 when not, < 0 on
 * error. */
static int expand_range(const char *s, const char *file, int line,
                        struct items *out, struct nb_error *err)
{
    const char *dots = strstr(s, "..");
    if (!dots)
        return 0;
    char lo[64], hi[64];
    size_t nl = (size_t)(dots - s);
    if (nl == 0 || nl >= sizeof lo || strlen(dots + 2) >= sizeof hi)
        return 0;
    memcpy(lo, s, nl);
    lo[nl] = '\0';
    rtrim(lo);
    snprintf(hi, sizeof hi, "%s", ltrim((char *)dots + 2));
    long long a, b;
    if (parse_ll(lo, &a) || parse_ll(hi, &b))
        return 0;
    if (a > b)
        return nb_error_set(err, NB_EINVAL, file, line,
                            "empty range '%s' (a..b needs a <= b)", s);
    if (b - a >= NB_MAX_AXIS_VALUES)
        return nb_error_set(err, NB_EINVAL, file, line,
                            "range '%s' has more than %d values", s,
                            NB_MAX_AXIS_VALUES);
    for (long long x = a; x <= b; x++) {
        char txt[32];
        snprintf(txt, sizeof txt, "%lld", x);
        if (items_push_copy(out, txt, line))
            return oom(err);
    }
    return 1;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(**(char *const *const *)a, **(char *const *const *)b);
}

/* Expands the value of item it for key k into canonical elements. */
static int expand_value(const struct nb_key *k, const struct nb_ini_item *it,
                        struct nb_config_val *cv, struct nb_error *err)
{
    char *buf, **pc;
    size_t *off;
    int n = split_top(it->value, ',', &buf, &pc, &off);
    if (n < 0)
        return oom(err);
    struct items raw = {0}, canon = {0};
    int rc = 0, is_axis = n > 1;
    int numeric = k->type == NB_KEY_INT || k->type == NB_KEY_FLOAT;
    for (int i = 0; i < n && !rc; i++) {
        int line = nb_ini_item_line(it, off[i]);
        if (n > 1 && !*pc[i]) {
            rc = nb_error_set(err, NB_EINVAL, it->file, line,
                              "empty element in the list for [%s] %s",
                              k->section, k->key);
            break;
        }
        int g = 0;
        if (numeric) {
            g = expand_generator(k, pc[i], it->file, line, &raw, err);
            if (g == 0)
                g = expand_range(pc[i], it->file, line, &raw, err);
        }
        if (g < 0) {
            rc = g;
            break;
        }
        if (g > 0) {
            is_axis = 1;
            continue;
        }
        if (items_push_copy(&raw, pc[i], line))
            rc = oom(err);
    }
    free(buf);
    free(pc);
    free(off);
    if (!rc && is_axis && (k->flags & NB_KF_NOSWEEP))
        rc = nb_error_set(err, NB_EINVAL, it->file, it->line,
                          "[%s] %s cannot be swept (no lists, ranges or "
                          "generators)", k->section, k->key);
    if (!rc && raw.n > NB_MAX_AXIS_VALUES)
        rc = nb_error_set(err, NB_EINVAL, it->file, it->line,
                          "[%s] %s has more than %d values", k->section,
                          k->key, NB_MAX_AXIS_VALUES);
    for (int i = 0; i < raw.n && !rc; i++) {
        char *c;
        rc = nb_key_canon(k, raw.v[i], it->file, raw.line[i], &c, err);
        if (!rc && items_push(&canon, c, raw.line[i])) {
            free(c);
            rc = oom(err);
        }
    }
    if (!rc && canon.n > 1) { /* distinct values */
        char ***ord = malloc((size_t)canon.n * sizeof *ord);
        if (!ord)
            rc = oom(err);
        for (int i = 0; !rc && i < canon.n; i++)
            ord[i] = &canon.v[i];
        if (!rc) {
            qsort(ord, (size_t)canon.n, sizeof *ord, cmp_str_ptr);
            for (int i = 1; i < canon.n; i++)
                if (!strcmp(*ord[i], *ord[i - 1])) {
                    int a = (int)(ord[i - 1] - canon.v), b = (int)(ord[i] - canon.v);
                    int later = a > b ? a : b, first = a < b ? a : b;
                    rc = nb_error_set(err, NB_EINVAL, it->file,
                                      canon.line[later],
                                      "duplicate value %s in the list for "
                                      "[%s] %s (also at line %d)",
                                      canon.v[later], k->section, k->key,
                                      canon.line[first]);
                    break;
                }
        }
        free(ord);
    }
    items_free(&raw);
    if (rc) {
        items_free(&canon);
        return rc;
    }
    cv->is_axis = is_axis;
    cv->n_items = canon.n;
    cv->items = canon.v;
    cv->item_line = canon.line;
    return 0;
}

/* ======================================================================
 * The config: handler and load
 * ====================================================================== */

struct nb_config_seen {
    int file_id, key, line;
};

static const char *intern(struct nb_config *cfg, const char *file)
{
    for (int i = 0; i < cfg->n_files; i++)
        if (!strcmp(cfg->files[i], file))
            return cfg->files[i];
    char **f = realloc(cfg->files, (size_t)(cfg->n_files + 1) * sizeof *f);
    if (!f)
        return NULL;
    cfg->files = f;
    if (!(f[cfg->n_files] = strdup(file)))
        return NULL;
    return f[cfg->n_files++];
}

static void val_free(struct nb_config_val *v)
{
    free(v->value);
    for (int i = 0; i < v->n_items; i++)
        free(v->items[i]);
    free(v->items);
    free(v->item_line);
    memset(v, 0, sizeof *v);
}

/* Resolves a key name in zip/exclude; what = "zip" or "exclude". */
static int resolve_name(const char *name, const char *what, const char *file,
                        int line, struct nb_error *err)
{
    int idx = nb_key_lookup_name(name);
    if (idx == -2) {
        char alts[200];
        size_t n = 0;
        alts[0] = '\0';
        for (int i = 0; i < nb_n_keys; i++)
            if (!strcmp(nb_keys[i].key, name))
                n += (size_t)snprintf(alts + (n < sizeof alts ? n : sizeof alts - 1),
                                      n < sizeof alts ? sizeof alts - n : 1,
                                      "%s%s.%s", n ? " or " : "",
                                      nb_keys[i].section, nb_keys[i].key);
        nb_error_set(err, NB_EINVAL, file, line, "%s: key '%s' is ambiguous",
                     what, name);
        nb_error_hint(err, "write %s", alts);
        return -1;
    }
    if (idx < 0) {
        nb_error_set(err, NB_EINVAL, file, line, "%s: unknown key '%s'", what,
                     name);
        const char *names[512];
        char store[512][64];
        int n = 0;
        const char *dot = strchr(name, '.');
        for (int i = 0; i < nb_n_keys && n < 512; i++) {
            if (dot)
                snprintf(store[n], sizeof store[n], "%s.%s", nb_keys[i].section,
                         nb_keys[i].key);
            else
                snprintf(store[n], sizeof store[n], "%s", nb_keys[i].key);
            names[n] = store[n];
            n++;
        }
        const char *c = nb_closest(name, names, n);
        if (c)
            nb_error_hint(err, "did you mean '%s'?", c);
        return -1;
    }
    if (nb_keys[idx].flags & NB_KF_STRUCT) {
        nb_error_set(err, NB_EINVAL, file, line, "%s: [%s] %s cannot be used here",
                     what, nb_keys[idx].section, nb_keys[idx].key);
        return -1;
    }
    return idx;
}

static int parse_zip(struct nb_config *cfg, const struct nb_ini_item *it,
                     const char *file, struct nb_error *err)
{
    if (!*it->value)
        return 0; /* `zip =`: no group */
    char *buf, **pc;
    size_t *off;
    int n = split_top(it->value, ',', &buf, &pc, &off), rc = 0;
    if (n < 0)
        return oom(err);
    struct nb_zip z = {.file = file, .line = it->line};
    z.keys = malloc((size_t)n * sizeof *z.keys);
    z.key_line = malloc((size_t)n * sizeof *z.key_line);
    if (!z.keys || !z.key_line)
        rc = oom(err);
    for (int i = 0; i < n && !rc; i++) {
        int line = nb_ini_item_line(it, off[i]);
        int idx = resolve_name(pc[i], "zip", file, line, err);
        if (idx < 0) {
            rc = NB_EINVAL;
            break;
        }
        if (!strcmp(nb_keys[idx].key, "seeds")) {
            rc = nb_error_set(err, NB_EINVAL, file, line,
                              "zip: experiment.seeds cannot be zipped (seeds "
                              "is always the innermost axis)");
            break;
        }
        for (int j = 0; j < z.n; j++)
            if (z.keys[j] == idx)
                rc = nb_error_set(err, NB_EINVAL, file, line,
                                  "zip: %s.%s is listed twice",
                                  nb_keys[idx].section, nb_keys[idx].key);
        z.keys[z.n] = idx;
        z.key_line[z.n] = line;
        z.n++;
    }
    if (!rc && z.n < 2)
        rc = nb_error_set(err, NB_EINVAL, file, it->line,
                          "zip needs at least two keys");
    free(buf);
    free(pc);
    free(off);
    if (!rc) {
        struct nb_zip *zs = realloc(cfg->zips, (size_t)(cfg->n_zips + 1) * sizeof *zs);
        if (!zs)
            rc = oom(err);
        else {
            cfg->zips = zs;
            zs[cfg->n_zips++] = z;
            return 0;
        }
    }
    free(z.keys);
    free(z.key_line);
    return rc;
}

static void rule_free(struct nb_rule *r)
{
    for (int t = 0; t < r->n_terms; t++) {
        for (int i = 0; i < r->terms[t].n_vals; i++)
            free(r->terms[t].vals[i]);
        free(r->terms[t].vals);
    }
    free(r->terms);
    memset(r, 0, sizeof *r);
}

/* One rule "a=x & b!=y|z"; offset base of text within the item value. */
static int parse_rule(const struct nb_ini_item *it, const char *file,
                      const char *text, size_t base, struct nb_rule *r,
                      struct nb_error *err)
{
    char *buf, **pc;
    size_t *off;
    int line = nb_ini_item_line(it, base);
    int n = split_top(text, '&', &buf, &pc, &off), rc = 0;
    if (n < 0)
        return oom(err);
    r->file = file;
    r->line = line;
    r->terms = calloc((size_t)n, sizeof *r->terms);
    if (!r->terms)
        rc = oom(err);
    for (int i = 0; i < n && !rc; i++) {
        struct nb_rule_term *t = &r->terms[r->n_terms];
        char *s = pc[i], *eq = strchr(s, '=');
        line = nb_ini_item_line(it, base + off[i]);
        if (!eq) {
            rc = nb_error_set(err, NB_EINVAL, file, line,
                              "exclude: expected KEY=VALUE, got '%s'", s);
            break;
        }
        t->negate = eq > s && eq[-1] == '!';
        *(t->negate ? eq - 1 : eq) = '\0';
        char *name = s;
        rtrim(name);
        int idx = resolve_name(name, "exclude", file, line, err);
        if (idx < 0) {
            rc = NB_EINVAL;
            break;
        }
        t->key = idx;
        r->n_terms++;
        char *vbuf, **vp;
        size_t *voff;
        int nv = split_top(eq + 1, '|', &vbuf, &vp, &voff);
        if (nv < 0) {
            rc = oom(err);
            break;
        }
        t->vals = calloc((size_t)nv, sizeof *t->vals);
        if (!t->vals)
            rc = oom(err);
        for (int j = 0; j < nv && !rc; j++) {
            rc = nb_key_canon(&nb_keys[idx], vp[j], file, line, &t->vals[j], err);
            if (!rc)
                t->n_vals++;
        }
        free(vbuf);
        free(vp);
        free(voff);
    }
    free(buf);
    free(pc);
    free(off);
    return rc;
}

static int parse_exclude(struct nb_config *cfg, const struct nb_ini_item *it,
                         const char *file, struct nb_error *err)
{
    if (!*it->value)
        return 0;
    char *buf, **pc;
    size_t *off;
    int n = split_top(it->value, ',', &buf, &pc, &off), rc = 0;
    if (n < 0)
        return oom(err);
    for (int i = 0; i < n && !rc; i++) {
        if (!*pc[i]) {
            rc = nb_error_set(err, NB_EINVAL, file, nb_ini_item_line(it, off[i]),
                              "exclude: empty rule");
            break;
        }
        struct nb_rule r = {0};
        rc = parse_rule(it, file, pc[i], off[i], &r, err);
        if (!rc) {
            struct nb_rule *rs = realloc(cfg->rules, (size_t)(cfg->n_rules + 1) * sizeof *rs);
            if (!rs)
                rc = oom(err);
            else {
                cfg->rules = rs;
                rs[cfg->n_rules++] = r;
                continue;
            }
        }
        rule_free(&r);
    }
    free(buf);
    free(pc);
    free(off);
    return rc;
}

static int section_known(const char *s)
{
    for (int i = 0; nb_sections[i]; i++)
        if (!strcmp(nb_sections[i], s))
            return 1;
    return 0;
}

static int unknown_key(const struct nb_ini_item *it, struct nb_error *err)
{
    nb_error_set(err, NB_EINVAL, it->file, it->line, "unknown key '%s' in [%s]",
                 it->key, it->section);
    const char *other = NULL;
    for (int i = 0; i < nb_n_keys; i++)
        if (!strcmp(nb_keys[i].key, it->key)) {
            other = nb_keys[i].section;
            break;
        }
    if (other)
        return nb_error_hint(err, "'%s' is a key of [%s]", it->key, other);
    const char *names[256];
    int n = 0;
    for (int i = 0; i < nb_n_keys && n < 256; i++)
        if (!strcmp(nb_keys[i].section, it->section))
            names[n++] = nb_keys[i].key;
    const char *c = nb_closest(it->key, names, n);
    if (c)
        return nb_error_hint(err, "did you mean '%s'?", c);
    /* names other tools use */
    static const char *const alias[][3] = {
        {"optim", "learning_rate", "lr"}, {"optim", "wd", "weight_decay"},
        {"train", "batch_size", "batch"}, {"train", "steps", "max_steps"},
        {"norm", "epsilon", "eps"},       {"norm", "norm", "type"},
        {"model", "width", "widths"},     {"experiment", "seed", "seeds"},
    };
    const char *an[16];
    int na = 0;
    for (size_t i = 0; i < sizeof alias / sizeof alias[0]; i++)
        if (!strcmp(alias[i][0], it->section))
            an[na++] = alias[i][1];
    if ((c = nb_closest(it->key, an, na)))
        for (size_t i = 0; i < sizeof alias / sizeof alias[0]; i++)
            if (!strcmp(alias[i][0], it->section) && !strcmp(alias[i][1], c))
                return nb_error_hint(err, "did you mean '%s'?", alias[i][2]);
    return nb_error_hint(err, "'normbench config --help' lists the keys of [%s]",
                         it->section);
}

static int cfg_handler(void *user, const struct nb_ini_item *it,
                       struct nb_error *err)
{
    struct nb_config *cfg = user;
    if (!it->key) {
        if (section_known(it->section))
            return 0;
        int n = 0;
        while (nb_sections[n])
            n++;
        nb_error_set(err, NB_EINVAL, it->file, it->line, "unknown section [%s]",
                     it->section);
        const char *c = nb_closest(it->section, nb_sections, n);
        if (c)
            return nb_error_hint(err, "did you mean [%s]?", c);
        return nb_error_hint(err, "sections: experiment, model, norm, optim, "
                                  "train, data, probe");
    }
    if (!it->section[0]) {
        nb_error_set(err, NB_EINVAL, it->file, it->line,
                     "key '%s' outside of any section", it->key);
        for (int i = 0; i < nb_n_keys; i++)
            if (!strcmp(nb_keys[i].key, it->key))
                return nb_error_hint(err, "put it under [%s]", nb_keys[i].section);
        return err ? err->status : NB_EINVAL;
    }
    int idx = nb_key_lookup(it->section, it->key);
    if (idx < 0)
        return unknown_key(it, err);
    const struct nb_key *k = &nb_keys[idx];
    const char *file = intern(cfg, it->file);
    if (!file)
        return oom(err);
    if (k->type == NB_KEY_NAMES)
        return parse_zip(cfg, it, file, err);
    if (k->type == NB_KEY_RULES)
        return parse_exclude(cfg, it, file, err);
    for (int i = 0; i < cfg->n_seen; i++)
        if (cfg->seen[i].file_id == it->file_id && cfg->seen[i].key == idx)
            return nb_error_set(err, NB_EINVAL, it->file, it->line,
                                "duplicate key '%s' in [%s] (first set at line %d)",
                                it->key, it->section, cfg->seen[i].line);
    if (cfg->n_seen == cfg->cap_seen) {
        int cap = cfg->cap_seen ? 2 * cfg->cap_seen : 64;
        struct nb_config_seen *s = realloc(cfg->seen, (size_t)cap * sizeof *s);
        if (!s)
            return oom(err);
        cfg->seen = s;
        cfg->cap_seen = cap;
    }
    cfg->seen[cfg->n_seen++] = (struct nb_config_seen){it->file_id, idx, it->line};
    struct nb_config_val v = {0};
    int rc = expand_value(k, it, &v, err);
    if (rc)
        return rc;
    v.value = strdup(it->value);
    if (!v.value) {
        val_free(&v);
        return oom(err);
    }
    v.file = file;
    v.line = it->line;
    v.seq = cfg->seq++;
    val_free(&cfg->set[idx]); /* later assignments override */
    cfg->set[idx] = v;
    return 0;
}

/* nb_config_load and nb_config_load_text: text NULL reads path */
static int config_load(const char *path, const char *text, struct nb_config *cfg,
                       struct nb_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->path = strdup(path);
    cfg->set = calloc((size_t)nb_n_keys, sizeof *cfg->set);
    if (!cfg->path || !cfg->set) {
        nb_config_free(cfg);
        return oom(err);
    }
    int rc = text ? nb_ini_parse_text(path, text, cfg_handler, cfg, err)
                  : nb_ini_parse(path, cfg_handler, cfg, err);
    if (rc)
        nb_config_free(cfg);
    return rc;
}

int nb_config_load(const char *path, struct nb_config *cfg, struct nb_error *err)
{
    return config_load(path, NULL, cfg, err);
}

int nb_config_load_text(const char *name, const char *text, struct nb_config *cfg,
                        struct nb_error *err)
{
    return config_load(name, text, cfg, err);
}

void nb_config_free(struct nb_config *cfg)
{
    if (!cfg)
        return;
    if (cfg->set)
        for (int i = 0; i < nb_n_keys; i++)
            val_free(&cfg->set[i]);
    free(cfg->set);
    for (int i = 0; i < cfg->n_zips; i++) {
        free(cfg->zips[i].keys);
        free(cfg->zips[i].key_line);
    }
    free(cfg->zips);
    for (int i = 0; i < cfg->n_rules; i++)
        rule_free(&cfg->rules[i]);
    free(cfg->rules);
    for (int i = 0; i < cfg->n_files; i++)
        free(cfg->files[i]);
    free(cfg->files);
    free(cfg->seen);
    free(cfg->path);
    memset(cfg, 0, sizeof *cfg);
}
