/* src/model/checkpoint.h - a model's weights on disk: the parameter arena
 * and the state arena (norm layers' running statistics and counters),
 * with a description of the layout they belong to.
 *
 * A run with [train] save_weights = true writes RUN_DIR/weights.nbw at the
 * end of its training; a run with [model] init_from reads one and starts
 * from it (run/runner.h).  Only the two arenas are saved: the optimizer's
 * buffers and the random streams of the run that wrote the file are not,
 * so a run that loads one starts them fresh.  `normbench fold -o FILE`
 * (run/fold.h) writes a run's network with its batch norms folded in this
 * format too: the layout of the same config at [norm] type = none.
 *
 * The file format, version 1.  Every integer is unsigned little-endian,
 * every float IEEE-754 binary32 little-endian, converted byte by byte
 * whatever the host's order (a file is the same on every machine):
 *
 *   offset        size     field
 *   0             8        magic: 0x89 'N' 'B' 'W' '\r' '\n' 0x1a '\n'
 *                          (as PNG's: a text-mode transfer or a truncation
 *                          to 7 bits breaks it)
 *   8             4        format version: 1
 *   12            4        T: tensor records that follow
 *   16            8        P: floats of the parameter arena
 *   24            8        S: floats of the state arena
 *   32            64 * T   the layout, one record per tensor, in arena
 *                          order (the parameter tensors, then the state
 *                          blocks, each in layer order):
 *                            +0  4   layer index in the model's layer list
 *                            +4  4   arena: 0 parameters, 1 state
 *                            +8  16  layer kind (nb_layer_ops.kind,
 *                                    "conv2d", "norm", ...), NUL-padded
 *                            +24 32  tensor name ("weight", "gamma",
 *                                    "running_mean", ...), NUL-padded
 *                            +56 8   element count
 *                          (the counts of arena 0 sum to P, of arena 1
 *                          to S)
 *   32 + 64 T     4 * P    the parameter arena
 *   ...           4 * S    the state arena
 *   ...           8        checksum: core/rng.h's nb_fnv1a64 (FNV-1a 64)
 *                          of every byte before it
 *
 * A file is its size exactly: 32 + 64 T + 4 (P + S) + 8 bytes.  Loading
 * checks, in order: that the file opens (missing), its magic, its
 * version, its size against the header (truncated, or trailing bytes),
 * the checksum, and that the records add up to P and S; then, against
 * the model it is loaded into, the layout record by record, so that a
 * checkpoint of another architecture is refused with what differs.
 *
 * Functions follow core/error.h: 0 or a negative status with err filled
 * ("FILE: message" naming the checkpoint); nothing prints, nothing
 * exits. */
#ifndef NB_MODEL_CHECKPOINT_H
#define NB_MODEL_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "model/model.h"

#define NB_CKPT_VERSION 1
#define NB_CKPT_MAGIC "\x89NBW\r\n\x1a\n" /* 8 bytes, no NUL counted */
#define NB_CKPT_KIND_LEN 16               /* the record's kind field */
#define NB_CKPT_NAME_LEN 32               /* the record's name field */
/* The name of the file in a run directory. */
#define NB_CKPT_FILE "weights.nbw"

enum nb_ckpt_arena { NB_CKPT_PARAMS = 0, NB_CKPT_STATE = 1, NB_CKPT_ARENA_COUNT };

/* One layout record. */
struct nb_ckpt_tensor {
    uint32_t layer;                  /* index in the model's layer list */
    enum nb_ckpt_arena arena;
    char kind[NB_CKPT_KIND_LEN + 1]; /* NUL-terminated */
    char name[NB_CKPT_NAME_LEN + 1];
    uint64_t count;
};

/* A checkpoint in memory, as read from a file. */
struct nb_ckpt {
    char path[512];                  /* the file it came from (messages) */
    uint32_t version;
    int n_tensors;
    struct nb_ckpt_tensor *tensors;  /* [n_tensors] */
    size_t n_params, n_state;
    float *params, *state;           /* [n_params], [n_state] */
    uint64_t checksum;               /* the stored (and verified) one */
};

/* The file image of m's parameters and state (the format above) in a
 * malloc'd *buf of *len bytes (caller frees), its checksum in *checksum
 * (may be NULL).  Returns 0, or NB_ENOMEM / NB_EINVAL (a layer kind or
 * tensor name longer than its field) with err filled. */
int nb_ckpt_encode(const struct nb_model *m, unsigned char **buf, size_t *len,
                   uint64_t *checksum, struct nb_error *err);

/* Reads the image buf[0..len) into ck (zeroed first; free with
 * nb_ckpt_free, also after a failure), name being the file it came from
 * (errors read "NAME: ...").  Returns 0, or NB_EFORMAT (wrong magic,
 * unsupported version, truncated, trailing bytes, checksum mismatch,
 * records that do not add up) or NB_ENOMEM. */
int nb_ckpt_decode(const unsigned char *buf, size_t len, const char *name,
                   struct nb_ckpt *ck, struct nb_error *err);

/* nb_ckpt_decode of the file at path: NB_ENOENT when it does not exist,
 * NB_EIO when it cannot be read, else as decode. */
int nb_ckpt_read(const char *path, struct nb_ckpt *ck, struct nb_error *err);

/* Copies ck's parameters and state into m's arenas, after checking that
 * ck describes m's layout exactly (the same tensors, in the same order,
 * of the same layer kinds, names and sizes).  Returns 0, or NB_EINVAL
 * with err naming the file and the first difference ("tensor 4: the
 * checkpoint has layer 2 (norm) gamma of 16 values, the model layer 2
 * (norm) gamma of 32"); m is unchanged then. */
int nb_ckpt_apply(const struct nb_ckpt *ck, struct nb_model *m, struct nb_error *err);

/* Frees ck's arrays and zeroes it; safe on a zeroed or freed ck. */
void nb_ckpt_free(struct nb_ckpt *ck);

#endif
