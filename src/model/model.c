/* src/model/model.c - build, initialise, forward and backward a network. */
#include "model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>

#include "core/rng.h"

const char *const nb_arch_names[NB_ARCH_COUNT + 1] = {
    [NB_ARCH_MLP] = "mlp",       [NB_ARCH_CNN] = "cnn", [NB_ARCH_RESNET] = "resnet",
    [NB_ARCH_DLN] = "dln",       [NB_ARCH_COUNT] = NULL,
};
const char *const nb_act_names[NB_ACT_COUNT + 1] = {
    [NB_ACT_RELU] = "relu", [NB_ACT_SIGMOID] = "sigmoid", [NB_ACT_TANH] = "tanh",
    [NB_ACT_COUNT] = NULL,
};
const char *const nb_init_names[NB_INIT_COUNT + 1] = {
    [NB_INIT_KAIMING] = "kaiming", [NB_INIT_GLOROT] = "glorot", [NB_INIT_SMALL] = "small",
    [NB_INIT_COUNT] = NULL,
};
const char *const nb_dropout_place_names[NB_DROPOUT_COUNT + 1] = {
    [NB_DROPOUT_CLASSIFIER] = "classifier", [NB_DROPOUT_BEFORE_NORM] = "before_norm",
    [NB_DROPOUT_COUNT] = NULL,
};

const char *nb_arch_name(enum nb_arch a)
{
    return (a >= 0 && a < NB_ARCH_COUNT) ? nb_arch_names[a] : "?";
}

static const char *check_depth(double v)
{
    long long d = (long long)v;
    return (d - 2) % 6 == 0 ? NULL : "must be 6n+2: 8, 14, 20, 32, 56, ...";
}

#define INF HUGE_VAL
#define AT(m) NB_KEY_AT(struct nb_model_desc, m)
#define AT_ARRAY(m, n) NB_KEY_AT_ARRAY(struct nb_model_desc, m, n)
const struct nb_key nb_model_keys[] = {
    { NB_K_ENUM("model", "arch", "cnn", nb_arch_names,
                "network: mlp, cnn (small VGG), resnet (6n+2), dln (deep linear)"),
      AT(arch) },
    { NB_K_ILIST("model", "widths", "256 256 256", 1, 1e6, 0,
                 "mlp hidden widths, space-separated in one value"),
      AT_ARRAY(widths, n_widths) },
    { NB_K_ENUM("model", "activation", "relu", nb_act_names, "hidden activation"), AT(act) },
    { NB_K_INT("model", "depth", "8", 8, 1000, 0, "resnet depth 6n+2 (8, 14, 20, 32, 56, ...)"),
      .check = check_depth, AT(depth) },
    { NB_K_INT("model", "dln_layers", "25", 1, 1000, 0, "deep linear network: number of layers"),
      AT(dln_layers) },
    { NB_K_INT("model", "dln_dim", "10", 1, 100000, 0,
               "deep linear network: width of every layer") },
    { NB_K_ENUM("model", "placement", "pre", nb_norm_placement_names,
                "pre: conv -> norm -> relu; post: conv -> relu -> norm"),
      AT(placement) },
    { NB_K_BOOL("model", "bias_before_norm", "false",
                "keep the bias of a conv/linear layer followed by a norm"),
      AT(bias_before_norm) },
    { NB_K_("model", "linear_norm", NB_KEY_BOOL, "true", 0, 0, NB_KF_ADDED,
            "cnn: a norm after the hidden linear layer too; false = after the "
            "convs only (as in ResNet's classifier)"),
      AT(linear_norm) },
    { NB_K_BOOL("model", "zero_init_last_gamma", "false",
                "resnet: gamma = 0 in the last norm of each block"),
      AT(zero_init_last_gamma) },
    { NB_K_ENUM("model", "init", "kaiming", nb_init_names,
                "weight init: kaiming (fan_in, relu gain), glorot, small "
                "(normal with init_std)"),
      AT(init) },
    { NB_K_FLT("model", "init_std", "0.01", 0, INF, NB_KF_MIN_EXCL,
               "standard deviation of init = small"),
      AT(init_std) },
    { NB_K_FLT("model", "dropout", "0", 0, 1, NB_KF_MAX_EXCL, "dropout probability; 0 = none"),
      AT(dropout) },
    { NB_K_ENUM("model", "dropout_place", "classifier", nb_dropout_place_names,
                "classifier: before the last linear layer; before_norm: before "
                "every norm"),
      AT(dropout_place) },
    { NB_K_("model", "conv_algo", NB_KEY_ENUM, "auto", 0, 0, NB_KF_ADDED,
            "how 3x3 convolutions compute: auto (Winograd from 8 input channels, "
            "im2col below), im2col, winograd (where the stride is 1); they round "
            "differently, so a verdict can be checked against the choice"),
      .enum_values = nb_conv_algo_names, AT(conv_algo) },
    { NB_K_STR("model", "init_from", "", NB_KF_ADDED | NB_KF_SELECTOR,
               "start from the weights.nbw of a run of another experiment under the "
               "same results_dir: EXPERIMENT, EXPERIMENT/RUN_ID or "
               "EXPERIMENT/KEY=VALUE,... (its one done run with weights that matches, "
               "of this run's seed unless a KEY is seeds); empty = initialise") },
};
#undef AT
#undef AT_ARRAY
const int nb_model_n_keys = (int)(sizeof nb_model_keys / sizeof nb_model_keys[0]);

void nb_model_desc_default(struct nb_model_desc *d)
{
    memset(d, 0, sizeof *d);
    d->input = (struct nb_shape){1, 28, 28};
    d->outputs = 10;
    d->loss = NB_LOSS_XENT;
    nb_norm_opts_default(&d->norm);
    nb_keys_default(nb_model_keys, nb_model_n_keys, d);
}

/* ---- building ----------------------------------------------------------- */

struct builder {
    struct nb_model *m;
    int cap;
    int cur;              /* activation index the next layer reads */
    struct nb_shape shape; /* its per-sample shape */
    struct nb_shape *shapes; /* shape of every activation */
    struct nb_error *err;
    int counter[16];      /* per-kind numbering for names */
};

enum { K_CONV, K_LINEAR, K_NORM, K_ACT, K_POOL, K_DROP, K_ADD, K_OTHER };

static int push(struct builder *b, const struct nb_layer_ops *ops, int kind,
                const char *prefix, const void *opts, int in2)
{
    struct nb_model *m = b->m;
    if (m->n_layers + 1 >= b->cap) {
        int cap = b->cap ? 2 * b->cap : 32;
        struct nb_layer *l = realloc(m->layers, (size_t)cap * sizeof *l);
        int *ii = realloc(m->in_idx, (size_t)cap * sizeof *ii);
        if (l)
            m->layers = l;
        if (ii)
            m->in_idx = ii;
        int *i2 = realloc(m->in2_idx, (size_t)cap * sizeof *i2);
        if (i2)
            m->in2_idx = i2;
        struct nb_shape *sh = realloc(b->shapes, (size_t)(cap + 1) * sizeof *sh);
        if (sh)
            b->shapes = sh;
        if (!l || !ii || !i2 || !sh)
            return nb_error_set(b->err, NB_ENOMEM, NULL, 0, "out of memory building the model");
        b->cap = cap;
    }
    int i = m->n_layers;
    struct nb_layer *l = &m->layers[i];
    memset(l, 0, sizeof *l);
    if (in2 >= 0)
        l->in2 = b->shapes[in2];
    char name[32];
    snprintf(name, sizeof name, "%s%d", prefix, ++b->counter[kind]);
    int rc = nb_layer_setup(l, ops, name, &b->shape, m->max_batch, opts, b->err);
    if (rc)
        return rc;
    m->in_idx[i] = b->cur;
    m->in2_idx[i] = in2;
    m->n_layers++;
    b->cur = i + 1;
    b->shape = l->out;
    b->shapes[b->cur] = l->out;
    return 0;
}

/* Adds a norm layer for the current activation unless the scheme is none
 * (and not noisy).  dense: the activation is an (N, C) feature vector. */
static int push_norm(struct builder *b, bool dense)
{
    const struct nb_model_desc *d = &b->m->desc;
    struct nb_norm_opts o = d->norm;
    if (o.type == NB_NORM_NONE && !o.noisy)
        return 0;
    if (dense && !d->linear_norm)
        return 0;
    if (o.type == NB_NORM_INSTANCE && dense) {
        if (d->arch == NB_ARCH_CNN)
            return 0; /* workloads.md: the hidden linear layer gets no norm */
        return nb_error_set(b->err, NB_EINVAL, NULL, 0,
                            "instance norm is undefined on the (N, C) output of a linear layer "
                            "(one element per channel) in a %s",
                            nb_arch_name(d->arch)),
               nb_error_key(b->err, "norm.type");
    }
    if (o.type == NB_NORM_GROUP && o.groups == 0)
        o.groups = nb_norm_default_groups(b->shape.c);
    if (d->dropout > 0 && d->dropout_place == NB_DROPOUT_BEFORE_NORM) {
        struct nb_dropout_opts dp = {(float)d->dropout};
        int rc = push(b, &nb_dropout_ops, K_DROP, "dropout", &dp, -1);
        if (rc)
            return rc;
    }
    return push(b, &nb_norm_ops, K_NORM, "norm", &o, -1);
}

static bool has_norm(const struct nb_model_desc *d)
{
    return d->norm.type != NB_NORM_NONE;
}

static int push_act(struct builder *b)
{
    if (b->m->desc.act == NB_ACT_SIGMOID)
        return push(b, &nb_sigmoid_ops, K_ACT, "sigmoid", NULL, -1);
    if (b->m->desc.act == NB_ACT_TANH)
        return push(b, &nb_tanh_ops, K_ACT, "tanh", NULL, -1);
    return push(b, &nb_relu_ops, K_ACT, "relu", NULL, -1);
}

/* conv (or linear) -> norm -> act, or conv -> act -> norm (post). */
static int push_block(struct builder *b, const struct nb_layer_ops *ops,
                      int kind, const char *prefix, void *opts, bool *bias,
                      bool dense, bool act)
{
    const struct nb_model_desc *d = &b->m->desc;
    bool norm_follows = has_norm(d) && d->placement == NB_PLACE_PRE &&
                        !(dense && (d->norm.type == NB_NORM_INSTANCE || !d->linear_norm));
    *bias = !norm_follows || d->bias_before_norm;
    int rc = push(b, ops, kind, prefix, opts, -1);
    if (rc)
        return rc;
    if (d->placement == NB_PLACE_PRE) {
        if ((rc = push_norm(b, dense)))
            return rc;
        return act ? push_act(b) : 0;
    }
    if (act && (rc = push_act(b)))
        return rc;
    return push_norm(b, dense);
}

/* The layer algorithm for a 3x3, pad-1 convolution at this stride under
 * the model's conv_algo: Winograd only where it applies (stride 1). */
static enum nb_conv_algo conv_algo_at(const struct builder *b, int stride)
{
    enum nb_conv_algo a = b->m->desc.conv_algo;
    return a == NB_CONV_WINOGRAD && stride != 1 ? NB_CONV_IM2COL : a;
}

static int conv_block(struct builder *b, int out_c, int stride, bool act)
{
    struct nb_conv2d_opts o = {.out_c = out_c, .k = 3, .stride = stride, .pad = 1,
                               .algo = conv_algo_at(b, stride)};
    return push_block(b, &nb_conv2d_ops, K_CONV, "conv", &o, &o.bias, false, act);
}

static int linear_block(struct builder *b, int out, bool act)
{
    struct nb_linear_opts o = {.out = out};
    return push_block(b, &nb_linear_ops, K_LINEAR, "linear", &o, &o.bias, true, act);
}

static int classifier(struct builder *b)
{
    const struct nb_model_desc *d = &b->m->desc;
    int rc;
    if (d->dropout > 0 && d->dropout_place == NB_DROPOUT_CLASSIFIER) {
        struct nb_dropout_opts dp = {(float)d->dropout};
        if ((rc = push(b, &nb_dropout_ops, K_DROP, "dropout", &dp, -1)))
            return rc;
    }
    struct nb_linear_opts o = {.out = d->outputs, .bias = true};
    return push(b, &nb_linear_ops, K_LINEAR, "linear", &o, -1);
}

static int build_mlp(struct builder *b)
{
    const struct nb_model_desc *d = &b->m->desc;
    int rc;
    if (d->n_widths < 1)
        return nb_error_set(b->err, NB_EINVAL, NULL, 0, "mlp needs at least one hidden width"),
               nb_error_key(b->err, "model.widths");
    for (int i = 0; i < d->n_widths; i++)
        if ((rc = linear_block(b, d->widths[i], true)))
            return rc;
    return classifier(b);
}

static int build_cnn(struct builder *b)
{
    int rc;
    struct nb_pool_opts pool = {2, 2};
    if ((rc = conv_block(b, 16, 1, true)) || (rc = conv_block(b, 16, 1, true)) ||
        (rc = push(b, &nb_maxpool_ops, K_POOL, "maxpool", &pool, -1)) ||
        (rc = conv_block(b, 32, 1, true)) || (rc = conv_block(b, 32, 1, true)) ||
        (rc = push(b, &nb_maxpool_ops, K_POOL, "maxpool", &pool, -1)) ||
        (rc = push(b, &nb_flatten_ops, K_OTHER, "flatten", NULL, -1)) ||
        (rc = linear_block(b, 128, true)))
        return rc;
    return classifier(b);
}

/* CIFAR-style ResNet (He et al. 2016, section 4.2): depth 6n+2, stages of
 * 16, 32, 64 channels, option-A shortcuts.  pre: conv-norm-relu-conv-norm,
 * add, relu.  post: conv-relu-norm-conv, add, relu-norm. */
static int build_resnet(struct builder *b)
{
    const struct nb_model_desc *d = &b->m->desc;
    if (d->depth < 8 || (d->depth - 2) % 6)
        return nb_error_set(b->err, NB_EINVAL, NULL, 0,
                            "resnet depth must be 6n+2 with n >= 1 (8, 14, 20, ...), not %d",
                            d->depth),
               nb_error_key(b->err, "model.depth");
    int n = (d->depth - 2) / 6, rc;
    if ((rc = conv_block(b, 16, 1, true)))
        return rc;
    static const int widths[3] = {16, 32, 64};
    for (int s = 0; s < 3; s++)
        for (int k = 0; k < n; k++) {
            int skip = b->cur;
            int stride = (s > 0 && k == 0) ? 2 : 1;
            if ((rc = conv_block(b, widths[s], stride, true)))
                return rc;
            if (d->placement == NB_PLACE_PRE) {
                if ((rc = conv_block(b, widths[s], 1, false)) ||
                    (rc = push(b, &nb_add_ops, K_ADD, "add", NULL, skip)) ||
                    (rc = push_act(b)))
                    return rc;
            } else {
                struct nb_conv2d_opts o = {.out_c = widths[s], .k = 3, .stride = 1, .pad = 1,
                                           .bias = true, .algo = conv_algo_at(b, 1)};
                if ((rc = push(b, &nb_conv2d_ops, K_CONV, "conv", &o, -1)) ||
                    (rc = push(b, &nb_add_ops, K_ADD, "add", NULL, skip)) ||
                    (rc = push_act(b)) || (rc = push_norm(b, false)))
                    return rc;
            }
        }
    if ((rc = push(b, &nb_gap_ops, K_POOL, "gap", NULL, -1)))
        return rc;
    return classifier(b);
}

/* Deep linear network (Santurkar A.1): k square layers, no activation,
 * no bias; with a norm, Linear -> Norm between layers. */
static int build_dln(struct builder *b)
{
    const struct nb_model_desc *d = &b->m->desc;
    int dim = (int)nb_shape_numel(&d->input), rc;
    if (d->dln_layers < 1)
        return nb_error_set(b->err, NB_EINVAL, NULL, 0, "dln needs at least one layer"),
               nb_error_key(b->err, "model.dln_layers");
    if (d->outputs != dim)
        return nb_error_set(b->err, NB_EINVAL, NULL, 0,
                            "dln layers are square: outputs (%d) must equal the input size (%d)",
                            d->outputs, dim),
               nb_error_key(b->err, "model.arch");
    for (int i = 0; i < d->dln_layers - 1; i++) {
        struct nb_linear_opts o = {.out = dim, .bias = d->bias_before_norm};
        if ((rc = push(b, &nb_linear_ops, K_LINEAR, "linear", &o, -1)) ||
            (rc = push_norm(b, true)))
            return rc;
    }
    struct nb_linear_opts o = {.out = dim, .bias = false};
    return push(b, &nb_linear_ops, K_LINEAR, "linear", &o, -1);
}

static int bind(struct nb_model *m, struct nb_error *err)
{
    size_t np = 0, ns = 0, scratch = 0, maxact = 0;
    int rc;
    for (int i = 0; i < m->n_layers; i++) {
        struct nb_layer *l = &m->layers[i];
        for (int p = 0; p < l->n_params; p++) {
            l->params[p].offset = np;
            np += l->params[p].count;
        }
        for (int s = 0; s < l->n_state; s++) {
            l->state[s].offset = ns;
            ns += l->state[s].count;
        }
        if (l->scratch > scratch)
            scratch = l->scratch;
    }
    if ((rc = nb_arena_init(&m->params, np, err)) ||
        (rc = nb_arena_init(&m->grads, np, err)) ||
        (rc = nb_arena_init(&m->opt, np, err)) ||
        (rc = nb_arena_init(&m->state, ns, err)))
        return rc;
    m->n_params = np;
    for (int i = 0; i < m->n_layers; i++) {
        struct nb_layer *l = &m->layers[i];
        for (int p = 0; p < l->n_params; p++) {
            l->params[p].value = m->params.data + l->params[p].offset;
            l->params[p].grad = m->grads.data + l->params[p].offset;
        }
        for (int s = 0; s < l->n_state; s++)
            l->state[s].value = m->state.data + l->state[s].offset;
        l->ctx = &m->ctx;
    }
    m->acts = calloc((size_t)m->n_layers + 1, sizeof *m->acts);
    m->dacts = calloc((size_t)m->n_layers + 1, sizeof *m->dacts);
    m->written = calloc((size_t)m->n_layers + 1, sizeof *m->written);
    if (!m->acts || !m->dacts || !m->written)
        return nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
    for (int a = 0; a <= m->n_layers; a++) {
        const struct nb_shape *s = a == 0 ? &m->layers[0].in : &m->layers[a - 1].out;
        size_t count = (size_t)m->max_batch * nb_shape_numel(s);
        if (count > maxact)
            maxact = count;
        m->acts[a] = nb_alloc_floats(count);
        m->dacts[a] = nb_alloc_floats(count);
        if (!m->acts[a] || !m->dacts[a])
            return nb_error_set(err, NB_ENOMEM, NULL, 0,
                                "cannot allocate activations for batch %d", m->max_batch);
    }
    m->prof_fwd = calloc((size_t)m->n_layers, sizeof *m->prof_fwd);
    m->prof_bwd = calloc((size_t)m->n_layers, sizeof *m->prof_bwd);
    if (!m->prof_fwd || !m->prof_bwd)
        return nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
    m->tmp = nb_alloc_floats(maxact);
    m->ctx.scratch_count = scratch;
    m->ctx.scratch = nb_alloc_floats(scratch ? scratch : 1);
    if (!m->tmp || !m->ctx.scratch)
        return nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
    return 0;
}

/* One initial weight of a layer with fan-in fi and fan-out fo, drawn
 * from r by d's scheme. */
static double init_draw(const struct nb_model_desc *d, gsl_rng *r, double fi,
                        double fo)
{
    switch (d->init) {
    case NB_INIT_KAIMING: /* normal, fan_in, ReLU gain sqrt(2) */
        return sqrt(2.0 / fi) * gsl_ran_gaussian_ziggurat(r, 1.0);
    case NB_INIT_GLOROT: {
        double a = sqrt(6.0 / (fi + fo));
        return a * (2.0 * gsl_rng_uniform(r) - 1.0);
    }
    case NB_INIT_SMALL:
        return d->init_std * gsl_ran_gaussian_ziggurat(r, 1.0);
    case NB_INIT_COUNT:
        break;
    }
    NB_ASSERT(!"init refused by nb_model_build");
    return NAN;
}

void nb_model_init_params(struct nb_model *m, uint64_t seed)
{
    gsl_rng *r = nb_rng_alloc(seed, NB_STREAM_INIT);
    NB_ASSERT(r);
    const struct nb_model_desc *d = &m->desc;
    if (m->params.count) /* data may be NULL when count is 0 */
        memset(m->params.data, 0, m->params.count * sizeof(float));
    if (m->state.count)
        memset(m->state.data, 0, m->state.count * sizeof(float));
    for (int i = 0; i < m->n_layers; i++) {
        struct nb_layer *l = &m->layers[i];
        for (int p = 0; p < l->n_params; p++) {
            struct nb_param *pp = &l->params[p];
            if (!(pp->flags & NB_PARAM_WEIGHT))
                continue;
            double fi = pp->fan_in > 0 ? pp->fan_in : 1, fo = pp->fan_out > 0 ? pp->fan_out : 1;
            for (size_t k = 0; k < pp->count; k++)
                pp->value[k] = (float)init_draw(d, r, fi, fo);
        }
        if (l->ops->init)
            l->ops->init(l);
    }
    /* zero-init of the last gamma of each residual block: the norm right
     * before each add (pre placement) */
    if (d->arch == NB_ARCH_RESNET && d->zero_init_last_gamma)
        for (int i = 1; i < m->n_layers; i++)
            if (m->layers[i].ops == &nb_add_ops && m->layers[i - 1].ops == &nb_norm_ops)
                for (int p = 0; p < m->layers[i - 1].n_params; p++)
                    if (strcmp(m->layers[i - 1].params[p].name, "gamma") == 0)
                        memset(m->layers[i - 1].params[p].value, 0,
                               m->layers[i - 1].params[p].count * sizeof(float));
    gsl_rng_free(r);
}

int nb_model_build(struct nb_model *m, const struct nb_model_desc *d,
                   int max_batch, uint64_t seed, struct nb_error *err)
{
    memset(m, 0, sizeof *m);
    m->desc = *d;
    m->max_batch = max_batch;
    if (max_batch < 1)
        return nb_error_set(err, NB_EINVAL, NULL, 0, "batch size must be >= 1, not %d", max_batch),
               nb_error_key(err, "train.batch");
    if ((int)d->arch < 0 || d->arch >= NB_ARCH_COUNT)
        return nb_error_set(err, NB_EINVAL, NULL, 0, "unknown architecture %d", (int)d->arch),
               nb_error_key(err, "model.arch");
    if ((int)d->init < 0 || d->init >= NB_INIT_COUNT)
        return nb_error_set(err, NB_EINVAL, NULL, 0, "unknown init scheme %d", (int)d->init),
               nb_error_key(err, "model.init");
    struct builder b = {.m = m, .shape = d->input, .err = err};
    b.shapes = malloc(sizeof *b.shapes);
    if (!b.shapes)
        return nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
    b.shapes[0] = d->input;
    int rc;
    switch (d->arch) {
    case NB_ARCH_MLP:
    case NB_ARCH_DLN:
        if (!d->linear_norm && has_norm(d)) {
            rc = nb_error_set(err, NB_EINVAL, NULL, 0,
                              "linear_norm = false leaves the %s without any norm "
                              "(its layers are all linear); use norm type none instead",
                              nb_arch_name(d->arch));
            nb_error_key(err, "model.linear_norm");
            break;
        }
        rc = d->arch == NB_ARCH_MLP ? build_mlp(&b) : build_dln(&b);
        break;
    case NB_ARCH_CNN:
        if (d->input.h % 4 || d->input.w % 4) {
            rc = nb_error_set(err, NB_EINVAL, NULL, 0,
                              "cnn needs an input height and width divisible by 4 (two 2x2 pools), not %dx%d",
                              d->input.h, d->input.w);
            nb_error_key(err, "model.input"); /* the data's shape: no key of its own */
            break;
        }
        rc = build_cnn(&b);
        break;
    case NB_ARCH_RESNET: rc = build_resnet(&b); break;
    case NB_ARCH_COUNT: NB_ASSERT(!"arch refused above"); rc = NB_EINVAL; break;
    }
    if (!rc) {
        const struct nb_layer_ops *loss = d->loss == NB_LOSS_MSE ? &nb_mse_ops : &nb_xent_ops;
        rc = push(&b, loss, K_OTHER, d->loss == NB_LOSS_MSE ? "mse" : "xent", NULL, -1);
    }
    free(b.shapes);
    if (rc)
        return rc;
    if ((rc = bind(m, err)))
        return rc;
    nb_model_init_params(m, seed);
    return 0;
}

void nb_model_free(struct nb_model *m)
{
    for (int i = 0; i < m->n_layers; i++)
        nb_layer_destroy(&m->layers[i]);
    if (m->acts)
        for (int a = 0; a <= m->n_layers; a++) {
            free(m->acts[a]);
            free(m->dacts[a]);
        }
    free(m->acts);
    free(m->dacts);
    free(m->written);
    free(m->tmp);
    free(m->prof_fwd);
    free(m->prof_bwd);
    free(m->layers);
    free(m->in_idx);
    free(m->in2_idx);
    free(m->ctx.scratch);
    nb_arena_free(&m->params);
    nb_arena_free(&m->grads);
    nb_arena_free(&m->opt);
    nb_arena_free(&m->state);
    memset(m, 0, sizeof *m);
}

/* ---- running ------------------------------------------------------------ */

double nb_model_forward(struct nb_model *m, const float *x, const int *labels,
                        const float *targets, int n, enum nb_mode mode)
{
    NB_ASSERT(n >= 1 && n <= m->max_batch);
    size_t nin = (size_t)n * nb_shape_numel(&m->layers[0].in);
    memcpy(m->acts[0], x, nin * sizeof(float));
    m->ctx.labels = labels;
    m->ctx.targets = targets;
    for (int i = 0; i < m->n_layers; i++) {
        struct nb_layer *l = &m->layers[i];
        l->x2 = m->in2_idx[i] >= 0 ? m->acts[m->in2_idx[i]] : NULL;
        double t0 = m->profile ? nb_now() : 0;
        l->ops->forward(l, m->acts[m->in_idx[i]], m->acts[i + 1], n, mode);
        if (m->profile)
            m->prof_fwd[i] += nb_now() - t0;
    }
    const float *loss = m->acts[m->n_layers];
    double s = 0;
    for (int k = 0; k < n; k++)
        s += loss[k];
    return s / n;
}

/* Where a backward writes the gradient of activation a into the buffers
 * da (m->dacts, or the R-backward's R{dacts}): straight into da[a] when it
 * is the first consumer seen, else into tmp (added after). */
static float *grad_target(struct nb_model *m, float **da, int a)
{
    if (a == 0)
        return NULL; /* the input needs no gradient */
    return m->written[a] ? m->tmp : da[a];
}

static void grad_commit(struct nb_model *m, float **da, int a, int n)
{
    if (a == 0)
        return;
    size_t count = (size_t)n * nb_shape_numel(&m->layers[a - 1].out);
    if (m->written[a]) {
        float *d = da[a];
        for (size_t k = 0; k < count; k++)
            d[k] += m->tmp[k];
    }
    m->written[a] = true;
}

void nb_model_backward(struct nb_model *m, int n)
{
    nb_model_backward_part(m, n, n);
}

void nb_model_backward_part(struct nb_model *m, int n, int total)
{
    NB_ASSERT(n >= 1 && n <= m->max_batch && total >= n);
    if (!m->grads_zero)
        memset(m->grads.data, 0, m->grads.count * sizeof(float));
    m->grads_zero = false;
    memset(m->written, 0, ((size_t)m->n_layers + 1) * sizeof *m->written);
    float *dl = m->dacts[m->n_layers];
    for (int k = 0; k < n; k++)
        dl[k] = 1.0f / (float)total;
    for (int i = m->n_layers - 1; i >= 0; i--) {
        struct nb_layer *l = &m->layers[i];
        int a = m->in_idx[i], a2 = m->in2_idx[i];
        double t0 = m->profile ? nb_now() : 0;
        if (a2 >= 0) {
            /* the shortcut input: its gradient goes to dx2.  The add is
             * always the last consumer of its shortcut activation, so in
             * reverse order it writes first and never needs tmp, which
             * stays free for the main input. */
            l->x2 = m->acts[a2];
            float *t2 = grad_target(m, m->dacts, a2);
            NB_ASSERT(t2 != m->tmp);
            l->dx2 = t2;
            l->ops->backward(l, m->acts[a], m->acts[i + 1], m->dacts[i + 1],
                             grad_target(m, m->dacts, a), n);
            grad_commit(m, m->dacts, a, n);
            grad_commit(m, m->dacts, a2, n);
        } else {
            l->ops->backward(l, m->acts[a], m->acts[i + 1], m->dacts[i + 1],
                             grad_target(m, m->dacts, a), n);
            grad_commit(m, m->dacts, a, n);
        }
        if (m->profile)
            m->prof_bwd[i] += nb_now() - t0;
    }
}

/* ---- exact Hessian-vector products ------------------------------------- */

void nb_hvp_free(struct nb_hvp *h)
{
    if (h->racts)
        for (int a = 0; a <= h->n_layers; a++)
            free(h->racts[a]);
    if (h->rdacts)
        for (int a = 0; a <= h->n_layers; a++)
            free(h->rdacts[a]);
    free(h->racts);
    free(h->rdacts);
    free(h->rwork);
    free(h->dir);
    free(h->hv);
    memset(h, 0, sizeof *h);
}

int nb_hvp_init(struct nb_hvp *h, const struct nb_model *m, struct nb_error *err)
{
    memset(h, 0, sizeof *h);
    h->n_layers = m->n_layers;
    h->max_batch = m->max_batch;
    h->n_params = m->n_params;
    size_t maxact = 0;
    h->racts = calloc((size_t)m->n_layers + 1, sizeof *h->racts);
    h->rdacts = calloc((size_t)m->n_layers + 1, sizeof *h->rdacts);
    if (!h->racts || !h->rdacts)
        goto nomem;
    for (int a = 0; a <= m->n_layers; a++) {
        const struct nb_shape *s = a == 0 ? &m->layers[0].in : &m->layers[a - 1].out;
        size_t count = (size_t)m->max_batch * nb_shape_numel(s);
        maxact = count > maxact ? count : maxact;
        h->racts[a] = nb_alloc_floats(count); /* zeroed: racts[0] stays 0 */
        h->rdacts[a] = nb_alloc_floats(count);
        if (!h->racts[a] || !h->rdacts[a])
            goto nomem;
    }
    h->rwork_count = maxact;
    size_t np = m->n_params ? m->n_params : 1;
    if (!(h->rwork = nb_alloc_floats(maxact)) || !(h->dir = nb_alloc_floats(np)) ||
        !(h->hv = nb_alloc_floats(np)))
        goto nomem;
    return 0;
nomem:
    nb_hvp_free(h);
    return nb_error_set(err, NB_ENOMEM, NULL, 0,
                        "out of memory for the Hessian-vector buffers (batch %d)",
                        m->max_batch);
}

int nb_model_hvp_unsupported(const struct nb_model *m, enum nb_mode mode)
{
    for (int i = 0; i < m->n_layers; i++)
        if (!nb_layer_rsupports(&m->layers[i], mode))
            return i;
    return -1;
}

/* Points every parameter's rdir/rgrad views and ctx->rwork into h (NULL
 * h: back to NULL). */
static void hvp_bind(struct nb_model *m, struct nb_hvp *h)
{
    for (int i = 0; i < m->n_layers; i++) {
        struct nb_layer *l = &m->layers[i];
        for (int p = 0; p < l->n_params; p++) {
            l->params[p].rdir = h ? h->dir + l->params[p].offset : NULL;
            l->params[p].rgrad = h ? h->hv + l->params[p].offset : NULL;
        }
        l->rx2 = NULL;
        l->rdx2 = NULL;
    }
    m->ctx.rwork = h ? h->rwork : NULL;
    m->ctx.rwork_count = h ? h->rwork_count : 0;
}

/* R{x} of layer i: NULL for the model's input (R{x} = 0) where the kind
 * takes it (rx_null_ok), else its buffer (racts[0] holds zeros). */
static const float *hvp_rx(const struct nb_model *m, const struct nb_hvp *h, int i)
{
    int a = m->in_idx[i];
    return a == 0 && m->layers[i].ops->rx_null_ok ? NULL : h->racts[a];
}

double nb_model_hvp(struct nb_model *m, struct nb_hvp *h, int n)
{
    NB_ASSERT(h->n_layers == m->n_layers && h->n_params == m->n_params);
    NB_ASSERT(n >= 1 && n <= m->max_batch && n <= h->max_batch);
    hvp_bind(m, h);
    if (m->n_params)
        memset(h->hv, 0, m->n_params * sizeof *h->hv);
    /* R-forward: R{a_(i+1)} from R{a_in} and the direction */
    for (int i = 0; i < m->n_layers; i++) {
        struct nb_layer *l = &m->layers[i];
        int a = m->in_idx[i], a2 = m->in2_idx[i];
        l->x2 = a2 >= 0 ? m->acts[a2] : NULL;
        l->rx2 = a2 >= 0 ? h->racts[a2] : NULL;
        l->ops->rforward(l, m->acts[a], m->acts[i + 1], hvp_rx(m, h, i), h->racts[i + 1], n);
    }
    double rl = 0;
    for (int k = 0; k < n; k++)
        rl += h->racts[m->n_layers][k];
    /* R-backward: the loss's dy (1/n) is a constant, R{dy} = 0 */
    memset(m->written, 0, ((size_t)m->n_layers + 1) * sizeof *m->written);
    memset(h->rdacts[m->n_layers], 0, (size_t)n * sizeof(float));
    for (int i = m->n_layers - 1; i >= 0; i--) {
        struct nb_layer *l = &m->layers[i];
        int a = m->in_idx[i], a2 = m->in2_idx[i];
        if (a2 >= 0) { /* as in the backward: the shortcut's target first */
            l->x2 = m->acts[a2];
            l->rx2 = h->racts[a2];
            float *t2 = grad_target(m, h->rdacts, a2);
            NB_ASSERT(t2 != m->tmp);
            l->rdx2 = t2;
        }
        l->ops->rbackward(l, m->acts[a], m->acts[i + 1], hvp_rx(m, h, i), m->dacts[i + 1],
                          h->rdacts[i + 1], grad_target(m, h->rdacts, a), n);
        grad_commit(m, h->rdacts, a, n);
        if (a2 >= 0)
            grad_commit(m, h->rdacts, a2, n);
    }
    hvp_bind(m, NULL);
    return rl / n;
}

const float *nb_model_logits(const struct nb_model *m)
{
    return m->acts[m->n_layers - 1];
}

int nb_model_correct(const struct nb_model *m, const int *labels, int n)
{
    const float *z = nb_model_logits(m);
    int c = m->desc.outputs, hits = 0;
    for (int k = 0; k < n; k++) {
        const float *row = z + (size_t)k * c;
        int best = 0;
        for (int j = 1; j < c; j++)
            if (row[j] > row[best])
                best = j;
        hits += best == labels[k];
    }
    return hits;
}

void nb_model_print(const struct nb_model *m, FILE *fp)
{
    for (int i = 0; i < m->n_layers; i++) {
        const struct nb_layer *l = &m->layers[i];
        size_t np = 0;
        for (int p = 0; p < l->n_params; p++)
            np += l->params[p].count;
        fprintf(fp, "  %-10s %-8s (%d,%d,%d) -> (%d,%d,%d)  params %zu\n", l->name,
                l->ops->kind, l->in.c, l->in.h, l->in.w, l->out.c, l->out.h, l->out.w, np);
    }
    fprintf(fp, "  total parameters: %zu\n", m->n_params);
}

int nb_model_check_batch(const struct nb_model *m, int n, struct nb_error *err)
{
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].ops == &nb_norm_ops) {
            int rc = nb_norm_check_batch(&m->layers[i], n, err);
            if (rc)
                return rc;
        }
    return 0;
}
