/* src/core/rng.h - seeded GSL random streams, one per purpose, and the
 * byte hash the seeds and the identities use.
 *
 * Each stream is seeded from (run seed, purpose) by a SplitMix64 mixing
 * hash, so that e.g. changing the batch size (which changes how many draws
 * the data-order stream makes) never changes the initial weights. */
#ifndef NB_CORE_RNG_H
#define NB_CORE_RNG_H

#include <stddef.h>
#include <stdint.h>
#include <gsl/gsl_rng.h>

enum nb_stream {
    NB_STREAM_INIT = 0, /* weight initialisation */
    NB_STREAM_DATA,     /* data order (shuffling), subsets, splits */
    NB_STREAM_DROPOUT,  /* dropout masks in TRAIN mode */
    NB_STREAM_NOISE,    /* noisy batch norm (Santurkar Alg. 1) */
    NB_STREAM_PROBE,    /* probe directions, probe-mode draws */
    NB_STREAM_SYNTH,    /* synthetic data sets */
    NB_STREAM_COUNT
};

/* FNV-1a 64 of n bytes: the one byte hash of normbench (the run identity,
 * config/sweep.h; the checksum of a weight checkpoint, model/checkpoint.h).
 * Not cryptographic: it detects accidents, not tampering. */
uint64_t nb_fnv1a64(const void *data, size_t n);

/* SplitMix64 finaliser over (seed, purpose). */
uint64_t nb_seed_mix(uint64_t seed, uint64_t purpose);

/* The seed actually given to gsl_rng_set for stream s of run seed. */
unsigned long nb_stream_seed(uint64_t seed, enum nb_stream s);

/* Allocates an mt19937 generator seeded for (seed, s); NULL if out of
 * memory.  Free with gsl_rng_free. */
gsl_rng *nb_rng_alloc(uint64_t seed, enum nb_stream s);

/* Short name of a stream ("init", "data", ...). */
const char *nb_stream_name(enum nb_stream s);

/* Standard normal draw as float (Box-Muller via GSL's ziggurat). */
float nb_rng_normal(gsl_rng *r);

#endif
