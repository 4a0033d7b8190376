/* src/run/slurm.c - see slurm.h. */
#include "run/slurm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "run/runner.h"
#include "run/runner_impl.h" /* rn_mkdir_p */

/* Appends s to t in single quotes, as a shell word. */
static void shell_word(struct nb_text *t, const char *s)
{
    nb_text_puts(t, "'");
    for (; *s; s++)
        if (*s == '\'')
            nb_text_puts(t, "'\\''");
        else
            nb_text_put(t, s, 1);
    nb_text_puts(t, "'");
}

void nb_slurm_ranges(struct nb_text *t, const size_t *v, size_t n, size_t base)
{
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && v[j + 1] == v[j] + 1)
            j++;
        nb_text_printf(t, "%s%zu", i ? "," : "", v[i] - base);
        if (j > i)
            nb_text_printf(t, "-%zu", v[j] - base);
        i = j + 1;
    }
}

/* The array script: one run of the config per task. */
static int write_script(const char *path, const struct nb_slurm_opts *o, const char *name,
                        const char *exp, struct nb_error *err)
{
    struct nb_text t = {0};
    nb_text_printf(&t, "#!/bin/sh\n# written by `normbench slurm`: task T of an array runs "
                       "run T + NB_OFFSET of the config\n");
    nb_text_printf(&t, "#SBATCH --job-name=normbench-%s\n#SBATCH --cpus-per-task=1\n", name);
    nb_text_printf(&t, "#SBATCH --output=%s/slurm/%%A_%%a.out\n", exp);
    nb_text_puts(&t, "exec ");
    shell_word(&t, o->binary);
    nb_text_puts(&t, " run ");
    shell_word(&t, o->config);
    nb_text_puts(&t, " --index \"$((SLURM_ARRAY_TASK_ID + ${NB_OFFSET:-0}))\"");
    if (o->results_dir) {
        nb_text_puts(&t, " --results-dir ");
        shell_word(&t, o->results_dir);
    }
    nb_text_puts(&t, " --progress lines --no-summary\n");
    if (t.failed) {
        nb_text_free(&t);
        return nb_error_oom(err);
    }
    FILE *fp = fopen(path, "w");
    if (!fp) {
        int e = errno;
        nb_text_free(&t);
        return nb_error_set(err, NB_EIO, path, 0, "cannot write: %s", strerror(e));
    }
    size_t w = fwrite(t.s, 1, t.n, fp);
    int bad = fclose(fp) != 0 || w != t.n;
    nb_text_free(&t);
    if (bad)
        return nb_error_set(err, NB_EIO, path, 0, "write error");
    chmod(path, 0755);
    return 0;
}

int nb_slurm_plan(const struct nb_sweep *sw, const struct nb_slurm_opts *o,
                  struct nb_text *cmds, size_t *n_missing, char *script_path, size_t size,
                  struct nb_error *err)
{
    *n_missing = 0;
    size_t *miss = malloc((sw->n_runs + 1) * sizeof *miss);
    if (!miss)
        return nb_error_oom(err);
    size_t n = 0;
    for (size_t i = 0; i < sw->n_runs; i++) {
        enum nb_run_state st = nb_runner_state(sw, i, o->results_dir, o->stale_after);
        if (st == NB_STATE_PENDING || st == NB_STATE_FAILED)
            miss[n++] = i;
    }
    *n_missing = n;
    char exp[2048];
    nb_runner_exp_dir(sw, o->results_dir, exp, sizeof exp);
    if (o->script)
        snprintf(script_path, size, "%s", o->script);
    else
        snprintf(script_path, size, "%s/slurm/sweep.sbatch", exp);
    int rc = 0;
    if (n > 0) {
        char dir[2100];
        snprintf(dir, sizeof dir, "%s/slurm", exp);
        rc = rn_mkdir_p(dir, err);
        if (!rc)
            rc = write_script(script_path, o, nb_run_get_str(&sw->runs[0], "experiment", "name"),
                              exp, err);
    }
    size_t max = (size_t)(o->max_array > 0 ? o->max_array : 1001);
    for (size_t i = 0; i < n && !rc;) {
        size_t base = miss[i] / max * max, j = i;
        while (j < n && miss[j] < base + max)
            j++;
        nb_text_puts(cmds, "sbatch --array=");
        nb_slurm_ranges(cmds, miss + i, j - i, base);
        if (o->throttle > 0)
            nb_text_printf(cmds, "%%%d", o->throttle);
        if (base > 0)
            nb_text_printf(cmds, " --export=ALL,NB_OFFSET=%zu", base);
        nb_text_puts(cmds, " ");
        shell_word(cmds, script_path);
        nb_text_puts(cmds, "\n");
        i = j;
    }
    free(miss);
    if (!rc && cmds->failed)
        rc = nb_error_oom(err);
    return rc;
}
