/* src/model/checkpoint.c - see checkpoint.h. */
#include "model/checkpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/rng.h"

_Static_assert(sizeof(float) == 4, "the format stores binary32 floats");
_Static_assert(sizeof NB_CKPT_MAGIC == 9, "the magic is 8 bytes");

enum {
    HEAD = 32, /* magic, version, T, P, S */
    REC = 64,  /* one layout record */
    TAIL = 8   /* the checksum */
};

/* ---- little-endian fields ----------------------------------------------- */

/* Stores v at p in 4 bytes, least significant first. */
static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Stores v at p in 8 bytes, least significant first. */
static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* The 4-byte little-endian integer at p. */
static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

/* The 8-byte little-endian integer at p. */
static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* The bits of f, little-endian (NaN payloads and signed zeros kept). */
static void put_f32(unsigned char *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    put_u32(p, u);
}

/* The float whose bits are the little-endian 4 bytes at p. */
static float get_f32(const unsigned char *p)
{
    uint32_t u = get_u32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- the model's layout ------------------------------------------------- */

/* One tensor of a model, in file order. */
struct mtensor {
    uint32_t layer;
    enum nb_ckpt_arena arena;
    const char *kind, *name;
    size_t count;
    float *value;
};

/* m's tensors in file order (every layer's parameters, then every
 * layer's state blocks) in a malloc'd array (*n entries; NULL and 0 when
 * there are none or allocation failed: *oom says which). */
static struct mtensor *model_tensors(const struct nb_model *m, int *n, bool *oom)
{
    int total = 0;
    for (int i = 0; i < m->n_layers; i++)
        total += m->layers[i].n_params + m->layers[i].n_state;
    *n = 0;
    *oom = false;
    if (!total)
        return NULL;
    struct mtensor *t = malloc((size_t)total * sizeof *t);
    if (!t) {
        *oom = true;
        return NULL;
    }
    for (int a = 0; a < NB_CKPT_ARENA_COUNT; a++)
        for (int i = 0; i < m->n_layers; i++) {
            const struct nb_layer *l = &m->layers[i];
            int k = a == NB_CKPT_PARAMS ? l->n_params : l->n_state;
            for (int j = 0; j < k; j++)
                t[(*n)++] = a == NB_CKPT_PARAMS
                                ? (struct mtensor){(uint32_t)i, NB_CKPT_PARAMS, l->ops->kind,
                                                   l->params[j].name, l->params[j].count,
                                                   l->params[j].value}
                                : (struct mtensor){(uint32_t)i, NB_CKPT_STATE, l->ops->kind,
                                                   l->state[j].name, l->state[j].count,
                                                   l->state[j].value};
        }
    return t;
}

/* ---- writing ------------------------------------------------------------ */

int nb_ckpt_encode(const struct nb_model *m, unsigned char **buf, size_t *len,
                   uint64_t *checksum, struct nb_error *err)
{
    *buf = NULL;
    *len = 0;
    int T;
    bool oom;
    struct mtensor *t = model_tensors(m, &T, &oom);
    if (oom)
        return nb_error_oom(err);
    size_t P = m->params.count, S = m->state.count, sums[NB_CKPT_ARENA_COUNT] = {0, 0};
    for (int k = 0; k < T; k++) {
        sums[t[k].arena] += t[k].count;
        if (strlen(t[k].kind) > NB_CKPT_KIND_LEN || strlen(t[k].name) > NB_CKPT_NAME_LEN) {
            nb_error_set(err, NB_EINVAL, NULL, 0,
                         "layer %u: kind '%s' or tensor name '%s' is longer than the "
                         "%d or %d bytes a checkpoint records", t[k].layer, t[k].kind,
                         t[k].name, NB_CKPT_KIND_LEN, NB_CKPT_NAME_LEN);
            free(t);
            return NB_EINVAL;
        }
    }
    NB_ASSERT(sums[NB_CKPT_PARAMS] == P && sums[NB_CKPT_STATE] == S); /* bind()'s arenas */
    size_t n = HEAD + (size_t)REC * (size_t)T + 4 * (P + S) + TAIL;
    unsigned char *b = calloc(n, 1);
    if (!b) {
        free(t);
        return nb_error_oom(err);
    }
    memcpy(b, NB_CKPT_MAGIC, 8);
    put_u32(b + 8, NB_CKPT_VERSION);
    put_u32(b + 12, (uint32_t)T);
    put_u64(b + 16, P);
    put_u64(b + 24, S);
    unsigned char *r = b + HEAD, *f = b + HEAD + (size_t)REC * (size_t)T;
    for (int k = 0; k < T; k++, r += REC) {
        put_u32(r, t[k].layer);
        put_u32(r + 4, (uint32_t)t[k].arena);
        memcpy(r + 8, t[k].kind, strlen(t[k].kind));   /* NUL-padded by calloc */
        memcpy(r + 24, t[k].name, strlen(t[k].name));
        put_u64(r + 56, t[k].count);
        for (size_t i = 0; i < t[k].count; i++, f += 4)
            put_f32(f, t[k].value[i]);
    }
    NB_ASSERT(f == b + n - TAIL);
    uint64_t h = nb_fnv1a64(b, n - TAIL);
    put_u64(b + n - TAIL, h);
    free(t);
    if (checksum)
        *checksum = h;
    *buf = b;
    *len = n;
    return 0;
}

/* ---- reading ------------------------------------------------------------ */

/* A name field of a record (len bytes, NUL-padded) as a string. */
static void get_name(char *out, const unsigned char *p, size_t len)
{
    memcpy(out, p, len);
    out[len] = '\0';
}

/* The header's sizes against len: 0, or NB_EFORMAT with err set. */
static int check_size(const unsigned char *buf, size_t len, const char *name,
                      struct nb_error *err)
{
    uint64_t T = get_u32(buf + 12), P = get_u64(buf + 16), S = get_u64(buf + 24);
    /* P, S < 2^60 keep the sum below 2^64; a real arena is far smaller */
    if (P >> 60 || S >> 60)
        return nb_error_set(err, NB_EFORMAT, name, 0,
                            "malformed header: %llu parameters and %llu state values",
                            (unsigned long long)P, (unsigned long long)S);
    uint64_t want = HEAD + REC * T + 4 * (P + S) + TAIL;
    if (want > len)
        return nb_error_set(err, NB_EFORMAT, name, 0,
                            "truncated: %zu bytes, its header announces %llu (%llu tensors, "
                            "%llu parameters, %llu state values)",
                            len, (unsigned long long)want, (unsigned long long)T,
                            (unsigned long long)P, (unsigned long long)S);
    if (want < len)
        return nb_error_set(err, NB_EFORMAT, name, 0,
                            "%zu bytes, but its header announces %llu: %llu trailing bytes",
                            len, (unsigned long long)want, (unsigned long long)(len - want));
    return 0;
}

int nb_ckpt_decode(const unsigned char *buf, size_t len, const char *name,
                   struct nb_ckpt *ck, struct nb_error *err)
{
    memset(ck, 0, sizeof *ck);
    snprintf(ck->path, sizeof ck->path, "%s", name);
    size_t lead = len < 8 ? len : 8;
    if (memcmp(buf, NB_CKPT_MAGIC, lead) != 0)
        return nb_error_set(err, NB_EFORMAT, name, 0,
                            "not a normbench weight checkpoint (wrong magic)");
    if (len < HEAD + TAIL)
        return nb_error_set(err, NB_EFORMAT, name, 0,
                            "truncated: %zu bytes, a checkpoint has at least %d", len,
                            HEAD + TAIL);
    ck->version = get_u32(buf + 8);
    if (ck->version != NB_CKPT_VERSION) {
        nb_error_set(err, NB_EFORMAT, name, 0,
                     "unsupported checkpoint format version %u (this normbench reads "
                     "version %d)", ck->version, NB_CKPT_VERSION);
        return nb_error_hint(err, "write it again with this normbench ([train] "
                             "save_weights = true)");
    }
    int rc = check_size(buf, len, name, err);
    if (rc)
        return rc;
    uint64_t stored = get_u64(buf + len - TAIL), h = nb_fnv1a64(buf, len - TAIL);
    if (stored != h)
        return nb_error_set(err, NB_EFORMAT, name, 0,
                            "checksum mismatch (stored %016llx, computed %016llx): the file "
                            "is damaged", (unsigned long long)stored, (unsigned long long)h);
    ck->checksum = stored;
    ck->n_tensors = (int)get_u32(buf + 12);
    ck->n_params = (size_t)get_u64(buf + 16);
    ck->n_state = (size_t)get_u64(buf + 24);
    ck->tensors = calloc(ck->n_tensors ? (size_t)ck->n_tensors : 1, sizeof *ck->tensors);
    ck->params = malloc((ck->n_params ? ck->n_params : 1) * sizeof(float));
    ck->state = malloc((ck->n_state ? ck->n_state : 1) * sizeof(float));
    if (!ck->tensors || !ck->params || !ck->state)
        return nb_error_oom(err);
    uint64_t sums[NB_CKPT_ARENA_COUNT] = {0, 0};
    uint32_t last_arena = 0;
    const unsigned char *r = buf + HEAD;
    for (int k = 0; k < ck->n_tensors; k++, r += REC) {
        struct nb_ckpt_tensor *t = &ck->tensors[k];
        uint32_t a = get_u32(r + 4);
        t->layer = get_u32(r);
        t->count = get_u64(r + 56);
        get_name(t->kind, r + 8, NB_CKPT_KIND_LEN);
        get_name(t->name, r + 24, NB_CKPT_NAME_LEN);
        if (a >= NB_CKPT_ARENA_COUNT || a < last_arena || t->count > ck->n_params + ck->n_state)
            return nb_error_set(err, NB_EFORMAT, name, 0,
                                "malformed layout record %d (arena %u, %llu values)", k, a,
                                (unsigned long long)t->count);
        t->arena = (enum nb_ckpt_arena)a;
        last_arena = a;
        sums[a] += t->count;
    }
    if (sums[NB_CKPT_PARAMS] != ck->n_params || sums[NB_CKPT_STATE] != ck->n_state)
        return nb_error_set(err, NB_EFORMAT, name, 0,
                            "malformed layout: its records hold %llu parameters and %llu "
                            "state values, its header says %zu and %zu",
                            (unsigned long long)sums[NB_CKPT_PARAMS],
                            (unsigned long long)sums[NB_CKPT_STATE], ck->n_params, ck->n_state);
    const unsigned char *f = buf + HEAD + (size_t)REC * (size_t)ck->n_tensors;
    for (size_t i = 0; i < ck->n_params; i++, f += 4)
        ck->params[i] = get_f32(f);
    for (size_t i = 0; i < ck->n_state; i++, f += 4)
        ck->state[i] = get_f32(f);
    return 0;
}

int nb_ckpt_read(const char *path, struct nb_ckpt *ck, struct nb_error *err)
{
    memset(ck, 0, sizeof *ck);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return nb_error_set(err, errno == ENOENT ? NB_ENOENT : NB_EIO, path, 0,
                            "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return nb_error_set(err, NB_EIO, path, 0, "not a regular file");
    }
    size_t len = (size_t)st.st_size, got = 0;
    unsigned char *buf = malloc(len ? len : 1);
    if (!buf) {
        fclose(fp);
        return nb_error_oom(err);
    }
    while (got < len) {
        size_t k = fread(buf + got, 1, len - got, fp);
        if (k == 0)
            break;
        got += k;
    }
    int bad = ferror(fp);
    fclose(fp);
    int rc = bad ? nb_error_set(err, NB_EIO, path, 0, "read error") : 0;
    if (!rc)
        rc = nb_ckpt_decode(buf, got, path, ck, err);
    free(buf);
    return rc;
}

/* ---- loading into a model ----------------------------------------------- */

/* "layer 2 (norm) gamma of 16 values" into buf. */
static const char *describe(char *buf, size_t size, uint32_t layer, const char *kind,
                            const char *name, unsigned long long count)
{
    snprintf(buf, size, "layer %u (%s) %s of %llu value%s", layer, kind, name, count,
             count == 1 ? "" : "s");
    return buf;
}

int nb_ckpt_apply(const struct nb_ckpt *ck, struct nb_model *m, struct nb_error *err)
{
    int T;
    bool oom;
    struct mtensor *t = model_tensors(m, &T, &oom);
    if (oom)
        return nb_error_oom(err);
    int n = T < ck->n_tensors ? T : ck->n_tensors, k = 0;
    for (; k < n; k++) {
        const struct nb_ckpt_tensor *c = &ck->tensors[k];
        if (c->layer != t[k].layer || c->arena != t[k].arena || strcmp(c->kind, t[k].kind) ||
            strcmp(c->name, t[k].name) || c->count != t[k].count)
            break;
    }
    if (k < n || T != ck->n_tensors) {
        char a[160], b[160];
        if (k < n)
            nb_error_set(err, NB_EINVAL, ck->path, 0,
                         "layout mismatch: %s tensor %d is %s in the checkpoint, %s in "
                         "the model",
                         ck->tensors[k].arena == NB_CKPT_STATE ? "state" : "parameter", k,
                         describe(a, sizeof a, ck->tensors[k].layer, ck->tensors[k].kind,
                                  ck->tensors[k].name, ck->tensors[k].count),
                         describe(b, sizeof b, t[k].layer, t[k].kind, t[k].name, t[k].count));
        else
            nb_error_set(err, NB_EINVAL, ck->path, 0,
                         "layout mismatch: the checkpoint has %d tensors (%zu parameters, "
                         "%zu state values), the model %d (%zu, %zu)", ck->n_tensors,
                         ck->n_params, ck->n_state, T, m->params.count, m->state.count);
        free(t);
        return nb_error_hint(err, "the checkpoint was written by a model of another "
                             "architecture: its [model] and [norm] keys and its data's "
                             "shape must match this run's");
    }
    const float *src[NB_CKPT_ARENA_COUNT] = {ck->params, ck->state};
    for (k = 0; k < T; k++) {
        if (t[k].count)
            memcpy(t[k].value, src[t[k].arena], t[k].count * sizeof(float));
        src[t[k].arena] += t[k].count;
    }
    free(t);
    return 0;
}

void nb_ckpt_free(struct nb_ckpt *ck)
{
    free(ck->tensors);
    free(ck->params);
    free(ck->state);
    memset(ck, 0, sizeof *ck);
}
