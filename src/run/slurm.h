/* src/run/slurm.h - a sweep's missing runs as Slurm job arrays.
 *
 * nb_slurm_plan writes one array script that runs task T as
 *   normbench run CONFIG --index $((SLURM_ARRAY_TASK_ID + ${NB_OFFSET:-0}))
 * and lists the sbatch commands that submit the runs still missing
 * (pending or failed, as `status --missing` says): one command per block
 * of max_array indices, since Slurm refuses array indices at or above its
 * MaxArraySize (1001 by default); a block starting at B gets
 * --export=ALL,NB_OFFSET=B and array indices relative to B.  Runs are
 * claimed by the runner, so submitting twice never runs a run twice. */
#ifndef NB_RUN_SLURM_H
#define NB_RUN_SLURM_H

#include <stddef.h>

#include "config/sweep.h"
#include "core/error.h"
#include "core/text.h"

struct nb_slurm_opts {
    const char *config;      /* the config's path as given */
    const char *binary;      /* the normbench the tasks run (absolute) */
    const char *results_dir; /* NULL: the config's */
    const char *script;      /* NULL: EXP/slurm/sweep.sbatch */
    int max_array;           /* Slurm's MaxArraySize (indices < it); >= 1 */
    int throttle;            /* tasks at once per array (%K); 0: no limit */
    double stale_after;      /* seconds, as `status` */
};

/* Writes the script (when runs are missing) and appends one sbatch command
 * line per block to cmds.  *n_missing gets the runs still to do (0: no
 * script, no command); script_path the script's path.  0, or NB_EIO /
 * NB_ENOMEM with err set. */
/* Appends the indices v[0..n) (ascending) minus base as ranges, the
 * form of sbatch --array and `status --missing`: "0-4,7". */
void nb_slurm_ranges(struct nb_text *t, const size_t *v, size_t n, size_t base);

int nb_slurm_plan(const struct nb_sweep *sw, const struct nb_slurm_opts *o,
                  struct nb_text *cmds, size_t *n_missing, char *script_path, size_t size,
                  struct nb_error *err);

#endif
