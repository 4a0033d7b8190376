/* src/usage.c - the text of `normbench --help` (help2man writes the manual
 * page from it), kept out of normbench.c so that file stays the verbs. */
#include "usage.h"

#include "config/keys.h"
#include "run/fold.h"

/* fold's options, in the verb's own help and in the whole usage. */
static void fold_options(FILE *fp)
{
    fprintf(fp,
            "  -o, --out FILE  also write the folded network's checkpoint (weights.nbw's\n"
            "    format; the layout of the run's config with [norm] type = none)\n"
            "  --results-dir DIR (%s)  where a SELECTOR's experiment folder is\n"
            "  --rounds N (%d; at most %d)  interleaved timing rounds\n"
            "  exit status: 0 folded, 1 a damaged run or checkpoint, 2 usage or a run that\n"
            "  cannot be folded\n",
            nb_key_at(nb_key_lookup("experiment", "results_dir"))->def, NB_FOLD_ROUNDS,
            NB_FOLD_MAX_ROUNDS);
}

void nb_usage_fold(FILE *fp, bool full)
{
    fprintf(fp, "usage: normbench fold RUN_DIR|SELECTOR [-o FILE] [--results-dir DIR] "
                "[--rounds N]\n");
    if (!full) {
        fprintf(fp, "see normbench fold --help\n");
        return;
    }
    fprintf(fp,
            "folds every eval-mode batch norm of a finished run (its weights.nbw, from\n"
            "[train] save_weights = true) into the conv or linear layer before it, and\n"
            "prints, as key = value lines: the layers folded, the largest absolute logit\n"
            "difference folded vs unfolded over the run's test set (its first\n"
            "[train] eval_samples), and both networks' inference time over the same\n"
            "samples (medians of A/B rounds) with their ratio.  RUN_DIR is\n"
            "RESULTS_DIR/EXPERIMENT/RUN_ID; a SELECTOR names a run as [model] init_from\n"
            "does (EXPERIMENT, EXPERIMENT/RUN_ID, EXPERIMENT/KEY=VALUE,...), of any seed.\n"
            "Refused: placement post (a ReLU between layer and norm), norms other than\n"
            "batch and lp (no fixed statistics).\n");
    fold_options(fp);
}

void nb_usage(FILE *fp)
{
    fprintf(fp,
            "usage: normbench VERB [options]\n"
            "\n"
            "verbs:\n"
            "  run CONFIG [-j N] [--index LIST]   run a sweep (skips done runs, resumes)\n"
            "  list CONFIG [--count]              the resolved runs: INDEX RUN_ID swept keys\n"
            "  status CONFIG [--missing]          done/diverged/failed/running/pending counts\n"
            "  slurm CONFIG [--submit]            the missing runs as Slurm job arrays\n"
            "  config --help | --check CONFIG     every config key / validate a config\n"
            "  summarize CONFIG|DIR [-o DIR]      tidy tables of a sweep's runs (mean, std, min, max, n)\n"
            "  plot EXPERIMENT [--quick]          summarize and draw the experiment's figures\n"
            "  reproduce EXPERIMENT [-j N] [--quick]  run, summarize, plot, check, write the report\n"
            "  train [CONFIG] [SECTION.KEY=VALUE ...] [options]\n"
            "                     train one model (one run of the config keys) and print\n"
            "                     its loss and test accuracy at each evaluation\n"
            "  fold RUN_DIR|SELECTOR [-o FILE]    fold a done run's batch norms into its\n"
            "                     convs: layers folded, max logit difference, time ratio\n"
            "  bench [options]    training throughput of the workloads and a norm micro-benchmark\n"
            "  version            version, git revision and BLAS\n"
            "\n"
            "train options (shorthands for SECTION.KEY=VALUE; every default is the config\n"
            "key's, see `normbench config --help`):\n"
            "  --arch (model.arch)  --norm (norm.type)  --placement (model.placement)\n"
            "  --groups (norm.groups)  --batch (train.batch)  --lr (optim.lr)\n"
            "  --momentum (optim.momentum)  --epochs (train.epochs)  --max-steps (train.max_steps)\n"
            "  --seed (experiment.seeds)  --data (data.source)  --dir (data.dir)\n"
            "  --subset (data.train_subset)  --eval-every (train.eval_every)\n"
            "  --threads (train.threads)  --fallback (data.fallback = true)\n"
            "run options:\n"
            "  -j, --jobs N (1; 0 = one per CPU)  --index LIST (e.g. 3 or 0-7,9; repeatable)\n"
            "  --run-id ID  --results-dir DIR  --progress auto|bar|lines|none  -q, --quiet\n"
            "  --stale-after SECONDS (300)  --no-summary\n"
            "  under mpirun -np K (a build with --with-mpi): each run trained over the K ranks;\n"
            "  --rank-timeout SECONDS (1800; 0 = none): a rank waiting longer aborts the job\n"
            "status options:\n"
            "  --missing  --format ranges|lines (ranges: 0-3,7 for sbatch --array)\n"
            "  --results-dir DIR  --stale-after SECONDS\n"
            "exit status: 0 all runs done (or diverged), 1 some runs failed or a run\n"
            "  could not start, 2 config or usage error, 128+N interrupted by signal N\n"
            "reproduce and plot options (EXPERIMENT: experiments/NAME.ini or NAME):\n"
            "  -j, --jobs N  --quick (shrunk data and steps; the verdict means nothing)\n"
            "  --results DIR (results)  --no-run (report the runs on disk)  --plots DIR\n"
            "  --format png,svg,pdf (png)  --progress auto|bar|lines|none  -q, --quiet\n"
            "summarize options: -o, --out DIR (EXP/tables)  --results-dir DIR  --archive DIR\n"
            "  --long DIR (also the long-format tables: run_id and swept keys on every row)\n"
            "bench options:\n"
            "  --arch mlp|cnn  --norms none,batch,...  --batches 2,8,32,64,128  --windows N  --steps N\n"
            "  --norm-only | --no-norm-bench  --conv-algo auto|im2col|winograd\n"
            "fold options (normbench fold --help says more):\n");
    fold_options(fp);
}
