/* tests/t_checkpoint.c - weight checkpoints (model/checkpoint.h): the
 * byte layout, bit-exact round trips of parameters and running
 * statistics (in memory and through a file), every damaged file refused
 * with an error naming it, a checkpoint of another model refused with
 * what differs, and training started from a checkpoint. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "model/checkpoint.h"
#include "run/train.h"
#include "tap.h"

static char dir[512];   /* this program's scratch directory */

static void fill(float *x, size_t n, unsigned long seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(2.385 * gsl_rng_uniform(r) - 1.1);
    gsl_rng_free(r);
}

/* An mlp on 1x4x4 inputs (widths as given) with norm type t, built for
 * batches of 8 from seed. */
static void build(struct nb_model *m, const int *widths, int nw, enum nb_norm_type t,
                  uint64_t seed)
{
    struct nb_model_desc d;
    struct nb_error e;
    nb_model_desc_default(&d);
    d.arch = NB_ARCH_MLP;
    d.input = (struct nb_shape){1, 4, 4};
    d.outputs = 3;
    d.n_widths = nw;
    memcpy(d.widths, widths, (size_t)nw * sizeof *widths);
    d.norm.type = t;
    if (t == NB_NORM_GROUP)
        d.norm.groups = 2;
    if (nb_model_build(m, &d, 8, seed, &e))
        tap_bail("build: %s", e.msg);
}

/* A few TRAIN forwards so that the running statistics move away from
 * their initial 0 and 1. */
static void warm_up(struct nb_model *m)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    m->ctx.rng_dropout = m->ctx.rng_noise = m->ctx.rng_probe = r;
    float x[8 * 16];
    int y[8] = {0, 1, 2, 0, 1, 2, 0, 1};
    for (int k = 0; k < 3; k++) {
        fill(x, 8 * 16, 40 + (unsigned long)k);
        nb_model_forward(m, x, y, NULL, 8, NB_TRAIN);
    }
    m->ctx.rng_dropout = m->ctx.rng_noise = m->ctx.rng_probe = NULL;
    gsl_rng_free(r);
}

static bool same_bits(const float *a, const float *b, size_t n)
{
    return n == 0 || memcmp(a, b, n * sizeof *a) == 0;
}

/* Writes n bytes of buf to path; bails out when it cannot. */
static void put_file(const char *path, const void *buf, size_t n)
{
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(buf, 1, n, fp) != n || fclose(fp) != 0)
        tap_bail("cannot write %s", path);
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The layout of the file image, byte by byte. */
static void test_layout(void)
{
    static const int w[] = {5};
    struct nb_model m;
    struct nb_error e;
    build(&m, w, 1, NB_NORM_BATCH, 3);
    m.params.data[0] = 1.0f;   /* 0x3f800000 */
    m.params.data[1] = -2.5f;  /* 0xc0200000 */
    unsigned char *buf;
    size_t len;
    uint64_t h = 0;
    ok(nb_ckpt_encode(&m, &buf, &len, &h, &e) == 0, "encode an mlp with batch norm");
    int T = 0;
    for (int i = 0; i < m.n_layers; i++)
        T += m.layers[i].n_params + m.layers[i].n_state;
    is_int((long long)len, 32 + 64LL * T + 4LL * (long long)(m.params.count + m.state.count) + 8,
           "size = 32 + 64 T + 4 (P + S) + 8");
    ok(!memcmp(buf, "\x89NBW\r\n\x1a\n", 8), "the magic");
    is_int(le32(buf + 8), 1, "version 1, little-endian");
    is_int(le32(buf + 12), T, "T, the tensor records");
    is_int(le32(buf + 16), (long long)m.params.count, "P, the parameter floats");
    is_int(le32(buf + 24), (long long)m.state.count, "S, the state floats");
    is_str((const char *)buf + 32 + 8, "linear", "record 0: kind linear");
    is_str((const char *)buf + 32 + 24, "weight", "record 0: name weight");
    const unsigned char *f = buf + 32 + 64 * T;
    ok(f[0] == 0x00 && f[1] == 0x00 && f[2] == 0x80 && f[3] == 0x3f,
       "1.0f stored as 00 00 80 3f (binary32, little-endian)");
    ok(f[4] == 0x00 && f[5] == 0x00 && f[6] == 0x20 && f[7] == 0xc0,
       "-2.5f stored as 00 00 20 c0");
    uint64_t tail = 0;
    for (int i = 7; i >= 0; i--)
        tail = tail << 8 | buf[len - 8 + (size_t)i];
    ok(tail == h && h == nb_fnv1a64(buf, len - 8),
       "the last 8 bytes: FNV-1a 64 of everything before them (returned too)");
    free(buf);
    nb_model_free(&m);
}

/* Round trips, in memory and through a file: every bit of the
 * parameters and the running statistics comes back. */
static void test_round_trip(void)
{
    static const int w[] = {6, 4};
    char path[1024];
    struct nb_model a, b;
    struct nb_error e;
    build(&a, w, 2, NB_NORM_BATCH, 7);
    warm_up(&a);
    fill(a.params.data, a.params.count, 11);
    /* values whose bits a careless conversion would change */
    a.params.data[0] = -0.0f;
    a.params.data[1] = INFINITY;
    a.params.data[2] = 1e-41f; /* subnormal */
    uint32_t nan_bits = 0x7fc01234u;
    memcpy(&a.params.data[3], &nan_bits, sizeof nan_bits);
    bool moved = false;
    for (size_t i = 0; i < a.state.count; i++)
        moved |= a.state.data[i] != 0.0f && a.state.data[i] != 1.0f;
    ok(a.state.count > 0 && moved, "batch norm has running statistics that moved (%zu floats)",
       a.state.count);

    unsigned char *buf;
    size_t len;
    uint64_t h;
    struct nb_ckpt ck;
    if (nb_ckpt_encode(&a, &buf, &len, &h, &e))
        tap_bail("encode: %s", e.msg);
    ok(nb_ckpt_decode(buf, len, "mem", &ck, &e) == 0, "decode the image");
    ok(ck.checksum == h && ck.version == 1, "decode: checksum and version");
    build(&b, w, 2, NB_NORM_BATCH, 99); /* another init: other values */
    ok(!same_bits(a.params.data, b.params.data, a.params.count),
       "a model from another seed starts elsewhere");
    ok(nb_ckpt_apply(&ck, &b, &e) == 0, "apply to a model of the same layout");
    ok(same_bits(a.params.data, b.params.data, a.params.count),
       "parameters bit-exact after the round trip (-0, inf, a subnormal, a NaN payload)");
    ok(same_bits(a.state.data, b.state.data, a.state.count),
       "running statistics bit-exact after the round trip");
    nb_ckpt_free(&ck);
    nb_model_free(&b);

    snprintf(path, sizeof path, "%s/a.nbw", dir);
    put_file(path, buf, len);
    build(&b, w, 2, NB_NORM_BATCH, 98);
    int rc = nb_ckpt_read(path, &ck, &e);
    ok(rc == 0, "read the file back");
    ok(rc == 0 && nb_ckpt_apply(&ck, &b, &e) == 0 &&
           same_bits(a.params.data, b.params.data, a.params.count) &&
           same_bits(a.state.data, b.state.data, a.state.count),
       "through the file: parameters and statistics bit-exact");
    is_str(ck.path, path, "the checkpoint remembers its file");
    nb_ckpt_free(&ck);
    nb_model_free(&b);

    /* without norms: no state at all */
    struct nb_model c, d;
    build(&c, w, 2, NB_NORM_NONE, 5);
    build(&d, w, 2, NB_NORM_NONE, 6);
    unsigned char *cbuf;
    size_t clen;
    ok(nb_ckpt_encode(&c, &cbuf, &clen, NULL, &e) == 0 &&
           nb_ckpt_decode(cbuf, clen, "none", &ck, &e) == 0 && ck.n_state == 0 &&
           nb_ckpt_apply(&ck, &d, &e) == 0 && same_bits(c.params.data, d.params.data,
                                                        c.params.count),
       "a model without norms (no state) round-trips");
    nb_ckpt_free(&ck);
    free(cbuf);
    nb_model_free(&c);
    nb_model_free(&d);
    free(buf);
    nb_model_free(&a);
}

/* One damaged file: written, read, refused with status want and an error
 * that names it and says what. */
static void refused(const char *dir, const char *name, const unsigned char *buf, size_t len,
                    int want, const char *what)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.nbw", dir, name);
    put_file(path, buf, len);
    struct nb_ckpt ck;
    struct nb_error e;
    nb_error_clear(&e);
    int rc = nb_ckpt_read(path, &ck, &e);
    is_int(rc, want, "%s: refused", name);
    is_str(e.file, path, "%s: the error names the file", name);
    contains(e.msg, what, "%s: the error says '%s'", name, what);
    nb_ckpt_free(&ck);
}

static void test_damaged(void)
{
    static const int w[] = {6};
    struct nb_model m;
    struct nb_error e;
    build(&m, w, 1, NB_NORM_BATCH, 2);
    warm_up(&m);
    unsigned char *buf;
    size_t len;
    if (nb_ckpt_encode(&m, &buf, &len, NULL, &e))
        tap_bail("encode: %s", e.msg);
    unsigned char *c = malloc(len + 4);

    char path[1024];
    struct nb_ckpt ck;
    snprintf(path, sizeof path, "%s/no-such.nbw", dir);
    is_int(nb_ckpt_read(path, &ck, &e), NB_ENOENT, "missing: NB_ENOENT");
    is_str(e.file, path, "missing: the error names the file");
    contains(e.msg, "cannot open", "missing: cannot open");
    nb_ckpt_free(&ck);

    memcpy(c, buf, len);
    c[len / 2] ^= 0x01; /* a parameter or state byte */
    refused(dir, "flipped", c, len, NB_EFORMAT, "checksum mismatch");
    memcpy(c, buf, len);
    c[len - 3] ^= 0x80; /* the checksum itself */
    refused(dir, "flipped-sum", c, len, NB_EFORMAT, "checksum mismatch");
    refused(dir, "truncated", buf, len - 1, NB_EFORMAT, "truncated");
    refused(dir, "truncated-head", buf, 20, NB_EFORMAT, "truncated");
    refused(dir, "empty", buf, 0, NB_EFORMAT, "truncated");
    memcpy(c, buf, len);
    memset(c + len, 0, 4);
    refused(dir, "trailing", c, len + 4, NB_EFORMAT, "4 trailing bytes");
    memcpy(c, buf, len);
    c[0] = 'P';
    refused(dir, "magic", c, len, NB_EFORMAT, "wrong magic");
    refused(dir, "text", (const unsigned char *)"step,loss\n1,2\n", 14, NB_EFORMAT,
            "wrong magic");
    memcpy(c, buf, len);
    c[8] = 2;
    refused(dir, "version", c, len, NB_EFORMAT, "unsupported checkpoint format version 2");

    free(c);
    free(buf);
    nb_model_free(&m);
}

/* A checkpoint of another model: refused with what differs, the model
 * left as it was. */
static void mismatch(const struct nb_model *src, struct nb_model *dst, const char *label,
                     const char *what)
{
    char path[1024];
    unsigned char *buf;
    size_t len;
    struct nb_ckpt ck;
    struct nb_error e;
    snprintf(path, sizeof path, "%s/%s.nbw", dir, label);
    if (nb_ckpt_encode(src, &buf, &len, NULL, &e))
        tap_bail("encode: %s", e.msg);
    put_file(path, buf, len);
    free(buf);
    if (nb_ckpt_read(path, &ck, &e))
        tap_bail("read: %s", e.msg);
    float *before = malloc(dst->params.count * sizeof *before);
    memcpy(before, dst->params.data, dst->params.count * sizeof *before);
    nb_error_clear(&e);
    is_int(nb_ckpt_apply(&ck, dst, &e), NB_EINVAL, "%s: refused", label);
    is_str(e.file, path, "%s: the error names the file", label);
    contains(e.msg, what, "%s: it says what differs", label);
    tap_diag("  %s", e.msg);
    ok(same_bits(before, dst->params.data, dst->params.count), "%s: the model is unchanged",
       label);
    free(before);
    nb_ckpt_free(&ck);
}

static void test_other_model(void)
{
    static const int w6[] = {6}, w8[] = {8}, w66[] = {6, 6};
    struct nb_model a, b;
    build(&a, w6, 1, NB_NORM_BATCH, 1);
    build(&b, w8, 1, NB_NORM_BATCH, 1);
    mismatch(&a, &b, "width",
             "parameter tensor 0 is layer 0 (linear) weight of 96 values in the checkpoint, "
             "layer 0 (linear) weight of 128 values in the model");
    nb_model_free(&b);
    build(&b, w6, 1, NB_NORM_GROUP, 1);
    mismatch(&a, &b, "norm-type", "the checkpoint has 8 tensors (129 parameters, 13 state "
                                  "values), the model 5 (129, 0)");
    nb_model_free(&b);
    build(&b, w66, 2, NB_NORM_BATCH, 1);
    mismatch(&a, &b, "depth", "layout mismatch: parameter tensor 3 is layer 3 (linear) weight");
    nb_model_free(&b);
    nb_model_free(&a);
}

/* Training from a checkpoint: at the first step (before the update) the
 * parameters are the checkpoint's. */
struct seen {
    const struct nb_ckpt *ck;
    bool checked, same;
};

static void on_step(void *user, struct nb_model *m, const float *x, const int *y,
                    const float *t, int n, long step, double lr)
{
    struct seen *s = user;
    NB_UNUSED(x), NB_UNUSED(y), NB_UNUSED(t), NB_UNUSED(n), NB_UNUSED(lr);
    if (step == 0) {
        s->checked = true;
        s->same = m->params.count == s->ck->n_params &&
                  same_bits(m->params.data, s->ck->params, m->params.count);
    }
}

static void test_train_from(void)
{
    struct nb_synth_opts so;
    struct nb_dataset tr, te;
    struct nb_error e;
    nb_synth_opts_default(&so);
    so.n_train = 64;
    so.n_test = 32;
    so.classes = 3;
    so.shape = (struct nb_shape){1, 4, 4};
    if (nb_synth_blobs(&so, &tr, &te, &e))
        tap_bail("blobs: %s", e.msg);
    struct nb_train_spec spec;
    nb_train_spec_default(&spec);
    spec.model.arch = NB_ARCH_MLP;
    spec.model.input = so.shape;
    spec.model.outputs = 3;
    spec.model.n_widths = 1;
    spec.model.widths[0] = 6;
    spec.model.norm.type = NB_NORM_BATCH;
    spec.batch = 8;
    spec.max_steps = 3;
    spec.seed = 4;
    struct nb_model src;
    static const int w[] = {6};
    build(&src, w, 1, NB_NORM_BATCH, 77);
    warm_up(&src);
    unsigned char *buf;
    size_t len;
    struct nb_ckpt ck;
    if (nb_ckpt_encode(&src, &buf, &len, NULL, &e) || nb_ckpt_decode(buf, len, "src", &ck, &e))
        tap_bail("checkpoint: %s", e.msg);
    struct seen s = {.ck = &ck};
    struct nb_train_hooks hooks = {.user = &s, .on_step = on_step};
    struct nb_train_result res;
    spec.init = &ck;
    ok(nb_train(&spec, &tr, &te, &hooks, 0, &res, &e) == 0 && res.status == NB_TRAIN_DONE,
       "train from a checkpoint");
    ok(s.checked && s.same, "step 0 sees the checkpoint's parameters, not the seed's init");
    s.checked = s.same = false;
    spec.init = NULL;
    nb_train(&spec, &tr, &te, &hooks, 0, &res, &e);
    ok(s.checked && !s.same, "without it, step 0 sees the seed's init");
    spec.init = &ck;
    spec.model.widths[0] = 7;
    nb_error_clear(&e);
    is_int(nb_train(&spec, &tr, &te, &hooks, 0, &res, &e), NB_EINVAL,
           "train from a checkpoint of another layout: refused before any step");
    is_str(e.file, "src", "  the error names the checkpoint");
    nb_ckpt_free(&ck);
    free(buf);
    nb_model_free(&src);
    nb_dataset_free(&tr);
    nb_dataset_free(&te);
}

int main(void)
{
    snprintf(dir, sizeof dir, "%s", tap_tmpdir("t_checkpoint"));
    test_layout();
    test_round_trip();
    test_damaged();
    test_other_model();
    test_train_from();
    tap_done_testing();
    return tap_exit();
}
