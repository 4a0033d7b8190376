/* src/layers/norm_sync.c - merging the parts of a batch: the devices that
 * norm.c simulates in one process, and the ranks of a run split over
 * processes (core/comm.h), which are those devices for real.
 *
 * A part's statistics are (count, mean, biased variance) per channel (lp:
 * the count, the mean and its sum or max quantity).  In one process,
 * devices = K puts part k's in slot k of the set arrays (smean, svar,
 * scnt: slot k holds channels [k*C, (k+1)*C)).  Over K ranks, each rank
 * computes its own part into slot 0, and norm_gather_parts puts every
 * rank's part in its slot, so from there on the merge (sync) or the
 * running update (local BN) reads the same K slots in the same order as
 * the simulation does, on every rank. */
#include <stdint.h>
#include <string.h>

#include "layers/norm_impl.h"

/* Sync: merge the nparts part statistics into part 0, in order, with
 * SyncBatchNorm's pairwise formula (batch_norm_gather_stats_with_counts);
 * empty parts are skipped. */
void norm_unite_parts(struct norm_priv *P, int nparts)
{
    const int C = P->C;
    for (int c = 0; c < C; c++) {
        double cn = 0, avg = 0, acc = 0;
        for (int k = 0; k < nparts; k++) {
            size_t s = (size_t)k * C + c;
            double ck = P->scnt[s], mk = P->smean[s], vk = P->svar[s];
            if (ck <= 0)
                continue;
            if (P->moments) {
                double f = 1.0 / (cn + ck);
                acc += vk * ck + (avg - mk) * (avg - mk) * cn * ck * f;
            } else if (P->lp_p == 0) {
                acc = vk > acc ? vk : acc;
            } else {
                acc += vk;
            }
            avg = (cn * avg + ck * mk) / (cn + ck);
            cn += ck;
        }
        P->smean[c] = avg;
        P->scnt[c] = cn;
        P->svar[c] = P->moments ? (cn > 0 ? acc / cn : 0) : acc;
    }
}

int norm_gather_parts(struct norm_priv *P, const struct nb_comm *cm, int n)
{
    const int C = P->C, K = cm->size;
    const size_t row = (size_t)3 * C;
    NB_ASSERT(K == P->max_parts && P->xsend && P->xrecv);
    memcpy(P->xsend, P->scnt, (size_t)C * sizeof *P->xsend);
    memcpy(P->xsend + C, P->smean, (size_t)C * sizeof *P->xsend);
    memcpy(P->xsend + 2 * C, P->svar, (size_t)C * sizeof *P->xsend);
    cm->allgather(cm, P->xsend, P->xrecv, row);
    for (int k = 0; k < K; k++) {
        const double *r = P->xrecv + (size_t)k * row;
        memcpy(P->scnt + (size_t)k * C, r, (size_t)C * sizeof *r);
        memcpy(P->smean + (size_t)k * C, r + C, (size_t)C * sizeof *r);
        memcpy(P->svar + (size_t)k * C, r + 2 * C, (size_t)C * sizeof *r);
        /* only this rank's part has samples here */
        P->pstart[k] = k <= cm->rank ? 0 : n;
    }
    P->pstart[K] = n;
    return K;
}

bool norm_lower_rank_has_max(const struct norm_priv *P, const struct nb_comm *cm,
                             int c, double max)
{
    const size_t row = (size_t)3 * P->C;
    for (int k = 0; k < cm->rank; k++)
        if (P->xrecv[(size_t)k * row + 2 * (size_t)P->C + c] == max)
            return true;
    return false;
}

void norm_sum_backward(struct norm_priv *P, const struct nb_comm *cm)
{
    const int C = P->C;
    memcpy(P->xsend, P->g1, (size_t)C * sizeof *P->xsend);
    memcpy(P->xsend + C, P->g2, (size_t)C * sizeof *P->xsend);
    nb_comm_sum(cm, P->xsend, (size_t)2 * C, P->xrecv, (size_t)2 * C);
    memcpy(P->g1, P->xsend, (size_t)C * sizeof *P->g1);
    memcpy(P->g2, P->xsend + C, (size_t)C * sizeof *P->g2);
}
