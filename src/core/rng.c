/* src/core/rng.c - see rng.h. */
#include "core/rng.h"

#include <gsl/gsl_randist.h>

static const char *const stream_names[] = {
    [NB_STREAM_INIT] = "init",
    [NB_STREAM_DATA] = "data",
    [NB_STREAM_DROPOUT] = "dropout",
    [NB_STREAM_NOISE] = "noise",
    [NB_STREAM_PROBE] = "probe",
    [NB_STREAM_SYNTH] = "synth",
};
_Static_assert(sizeof stream_names / sizeof stream_names[0] == NB_STREAM_COUNT,
               "stream_names out of sync with enum nb_stream");

uint64_t nb_fnv1a64(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

uint64_t nb_seed_mix(uint64_t seed, uint64_t purpose)
{
    /* SplitMix64 (Steele, Lea, Flood 2014) applied twice so that nearby
     * (seed, purpose) pairs land far apart. */
    uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (purpose + 1);
    for (int i = 0; i < 2; i++) {
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z = z ^ (z >> 31);
        z += 0x9e3779b97f4a7c15ULL;
    }
    return z;
}

unsigned long nb_stream_seed(uint64_t seed, enum nb_stream s)
{
    /* mt19937 uses 32 bits of its seed; 0 would be replaced by GSL's
     * default, so avoid it. */
    unsigned long v = (unsigned long)(nb_seed_mix(seed, (uint64_t)s) & 0xffffffffUL);
    return v ? v : 1UL;
}

gsl_rng *nb_rng_alloc(uint64_t seed, enum nb_stream s)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (r)
        gsl_rng_set(r, nb_stream_seed(seed, s));
    return r;
}

const char *nb_stream_name(enum nb_stream s)
{
    return (s >= 0 && s < NB_STREAM_COUNT) ? stream_names[s] : "?";
}

float nb_rng_normal(gsl_rng *r)
{
    return (float)gsl_ran_gaussian_ziggurat(r, 1.0);
}
