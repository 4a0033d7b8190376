/* src/core/arena.h - flat float blocks and the shape of a sample.
 *
 * normbench keeps every trainable parameter of a model in one arena, the
 * gradients in a second arena with the same offsets, optimizer buffers in a
 * third and non-trainable state (running statistics, counters) in a
 * fourth.  Layers hold views (pointers) into them. */
#ifndef NB_CORE_ARENA_H
#define NB_CORE_ARENA_H

#include <stddef.h>

#include "core/error.h"

/* Shape of one sample in NCHW layout; a dense vector has h = w = 1. */
struct nb_shape {
    int c, h, w;
};

static inline size_t nb_shape_numel(const struct nb_shape *s)
{
    return (size_t)s->c * (size_t)s->h * (size_t)s->w;
}

struct nb_arena {
    float *data;  /* 64-byte aligned, zeroed at init */
    size_t count; /* floats */
};

/* Allocates count zeroed floats (count 0 is allowed and gives data NULL).
 * Returns 0 or NB_ENOMEM with err filled. */
int nb_arena_init(struct nb_arena *a, size_t count, struct nb_error *err);

/* Frees the block; safe on a zeroed arena. */
void nb_arena_free(struct nb_arena *a);

/* Aligned zeroed allocation helper for layer caches and workspaces;
 * returns NULL on failure.  Free with free(). */
float *nb_alloc_floats(size_t count);

/* Monotonic clock in seconds. */
double nb_now(void);

#endif
