/* src/core/comm.c - see comm.h. */
#include "core/comm.h"

#include <string.h>

#include "core/error.h"

void nb_comm_slice(const struct nb_comm *c, int n, int *start, int *end)
{
    if (!nb_comm_active(c)) {
        *start = 0;
        *end = n;
        return;
    }
    NB_ASSERT(c->rank >= 0 && c->rank < c->size && n >= 0);
    *start = (int)((long long)c->rank * n / c->size);
    *end = (int)((long long)(c->rank + 1) * n / c->size);
}

void nb_comm_sum(const struct nb_comm *c, double *buf, size_t count, double *work,
                 size_t chunk)
{
    if (!nb_comm_active(c))
        return;
    NB_ASSERT(work && chunk >= 1);
    const size_t K = (size_t)c->size;
    for (size_t off = 0; off < count; off += chunk) {
        size_t m = count - off < chunk ? count - off : chunk;
        c->allgather(c, buf + off, work, m);
        for (size_t i = 0; i < m; i++) {
            double s = work[i];
            for (size_t k = 1; k < K; k++)
                s += work[k * m + i];
            buf[off + i] = s;
        }
    }
}

double nb_comm_root(const struct nb_comm *c, double v)
{
    if (!nb_comm_active(c))
        return v;
    double all[NB_COMM_MAX_RANKS];
    NB_ASSERT(c->size <= NB_COMM_MAX_RANKS);
    c->allgather(c, &v, all, 1);
    return all[0];
}

int nb_comm_first(const struct nb_comm *c, bool failed)
{
    if (!nb_comm_active(c))
        return failed ? 0 : -1;
    double all[NB_COMM_MAX_RANKS], mine = failed ? 1.0 : 0.0;
    NB_ASSERT(c->size <= NB_COMM_MAX_RANKS);
    c->allgather(c, &mine, all, 1);
    for (int k = 0; k < c->size; k++)
        if (all[k] != 0)
            return k;
    return -1;
}
