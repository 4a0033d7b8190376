/* tests/sumfix.c - see sumfix.h. */
#include "sumfix.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "config/sweep.h"
#include "tap.h"

double sumfix_acc(int n, int bs, int seed)
{
    return 0.80 + 0.02 * n + 0.001 * seed - (n == 1 && bs == 8 ? 0.05 : 0.0);
}

double sumfix_loss(int n, int bs, int seed)
{
    return (1.0 + 0.1 * n) * (bs == 8 ? 1.2 : 1.0) + 0.01 * seed;
}

double sumfix_lmin(int n, int step, int seed)
{
    (void)n;
    return 1.0 + 0.01 * step + 0.001 * seed;
}

double sumfix_lmax(int n, int step, int seed)
{
    return sumfix_lmin(n, step, seed) * (n == 0 ? 5.0 : 1.2);
}

static FILE *open_w(const char *dir, const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    if (!fp)
        tap_bail("cannot write %s", path);
    return fp;
}

static void write_run(const char *rdir, const struct nb_run *run, int n, int bs, int seed)
{
    mkdir(rdir, 0777);
    FILE *fp = open_w(rdir, "config.ini");
    nb_run_write_ini(fp, run);
    fclose(fp);
    bool diverged = n == 1 && bs == 8 && seed == 2;
    if (n == 2 && bs == 32 && seed == 1) {
        fp = open_w(rdir, "error.txt");
        fputs("error = synthetic failure\n", fp);
        fclose(fp);
        return;
    }
    fp = open_w(rdir, "metrics.csv");
    fputs("step,epoch,lr,train_loss,train_acc,test_loss,test_acc,grad_norm\n", fp);
    double acc = sumfix_acc(n, bs, seed), l0 = sumfix_loss(n, bs, seed);
    if (n == 0 && bs == 32 && seed == 0)
        fprintf(fp, "25,0.25,0.4,%.17g,0.5,2,0.5,1\n", 2 * l0);
    int rows = diverged ? 2 : 4;
    for (int r = 1; r <= rows; r++) {
        double a = acc - 0.1 * (4 - r) / 4.0;
        if (diverged && r == 2)
            fprintf(fp, "%d,%.17g,0.1,nan,0.1,nan,0.1,inf\n", 50 * r, 0.5 * r);
        else
            fprintf(fp, "%d,%.17g,0.1,%.17g,%.17g,%.17g,%.17g,1.5\n", 50 * r, 0.5 * r,
                    l0 / r, a + 0.05, 1.0 - a, a);
    }
    fclose(fp);
    fp = open_w(rdir, "timing.csv");
    fputs("step,time\n", fp);
    for (int r = 1; r <= rows; r++)
        fprintf(fp, "%d,%d\n", 50 * r, 10 * r);
    fclose(fp);
    if (bs == 32 && n < 2) {
        fp = open_w(rdir, "probes.csv");
        fputs("step,probe,layer,layer_index,param,param_value,stat,value,bn_mode\n", fp);
        for (int step = 0; step <= 20; step += 10) {
            double lmin = sumfix_lmin(n, step, seed), lmax = sumfix_lmax(n, step, seed);
            for (int e = 0; e < 3; e++) {
                double eta = 0.2 * (e + 1);
                double l = lmin + (lmax - lmin) * e / 2.0;
                fprintf(fp, "%d,landscape,,-1,eta,%.17g,loss,%.17g,probe\n", step, eta, l);
                fprintf(fp, "%d,landscape,,-1,eta,%.17g,grad_change,%.17g,probe\n", step, eta,
                        (n == 0 ? 10.0 : 0.5) * (e + 1));
            }
            fprintf(fp, "%d,landscape,,-1,,,loss_min,%.17g,probe\n", step, lmin);
            fprintf(fp, "%d,landscape,,-1,,,loss_max,%.17g,probe\n", step, lmax);
            fprintf(fp, "%d,landscape,,-1,,,grad_change_min,%.17g,probe\n", step,
                    n == 0 ? 10.0 : 0.5);
            fprintf(fp, "%d,landscape,,-1,,,grad_change_max,%.17g,probe\n", step,
                    n == 0 ? 30.0 : 1.5);
            fprintf(fp, "%d,landscape,,-1,,,beta_eff,%.17g,probe\n", step,
                    (n == 0 ? 40.0 : 8.0) + seed);
            fprintf(fp, "%d,landscape,,-1,,,loss0,%.17g,probe\n", step, lmin);
            fprintf(fp, "%d,landscape,,-1,,,seconds,0.01,probe\n", step);
            for (int L = 1; L <= 2; L++) {
                fprintf(fp, "%d,ics,linear%d,%d,lr,0.4,l2,%.17g,probe\n", step, L, 2 * L,
                        0.1 * L * (n + 1) + 0.01 * seed);
                fprintf(fp, "%d,ics,linear%d,%d,lr,0.4,cos,%.17g,probe\n", step, L, 2 * L,
                        L == 1 ? 1.0 : 0.9 - 0.1 * n);
            }
            static const char *const pp[] = {"p15", "p50", "p85"};
            for (int q = 0; q < 3; q++)
                fprintf(fp, "%d,dist,linear1,0,out,,%s,%.17g,train\n", step, pp[q],
                        -1.0 + q + 0.01 * step);
        }
        fprintf(fp, "200,hessian,,-1,samples,100,lambda_max,%.17g,eval\n",
                (n == 0 ? 50.0 : 5.0) + seed);
        fprintf(fp, "200,hessian,,-1,samples,100,trace,%.17g,eval\n",
                (n == 0 ? 500.0 : 40.0) + seed);
        fclose(fp);
        /* as the probe writes it (probe.h): a 1-D slice is one block, a
         * 2-D slice's scans are a blank line apart, slices two */
        fp = open_w(rdir, "slice.csv");
        fputs("step,a,b,loss,acc\n", fp);
        for (int i = 0; i < 5; i++) {
            double a = -1 + 0.5 * i;
            fprintf(fp, "100,%g,0,%.17g,0.5\n", a,
                    (n == 0 ? 4.0 : 1.0) * a * a + 0.1 + 0.01 * seed);
        }
        if (n == 0) {
            fputs("\n\n", fp);
            for (int i = 0; i < 3; i++) {
                if (i)
                    fputs("\n", fp);
                for (int j = 0; j < 3; j++)
                    fprintf(fp, "200,%d,%d,%.17g,0.5\n", i - 1, j - 1,
                            (i - 1) * (i - 1) + 2.0 * (j - 1) * (j - 1) + 0.1 + seed);
            }
        }
        fclose(fp);
    }
    fp = open_w(rdir, "DONE");
    fprintf(fp, "run_id = %s\nstatus = %s\nsteps = %d\nwall_seconds = %d\n", run->run_id,
            diverged ? "diverged" : "done", 50 * rows, 100 + seed);
    fclose(fp);
}

const char *sumfix_make(const char *dir)
{
    static char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s/fx.ini", dir);
    FILE *fp = fopen(cfg, "w");
    if (!fp)
        tap_bail("cannot write %s", cfg);
    fprintf(fp, "[experiment]\nname = fx\nresults_dir = %s\nseeds = 0..2\n"
                "target_accuracy = 0.8\nzip = train.batch, optim.lr\n"
                "[model]\narch = mlp\nwidths = 16\n"
                "[norm]\ntype = none, batch, group\ngroups = 4\n"
                "[train]\nbatch = 8, 32\nepochs = 2\n"
                "[optim]\nlr = 0.1, 0.4\n"
                "[data]\nsource = blobs\n",
            dir);
    fclose(fp);
    struct nb_sweep sw;
    struct nb_error err;
    nb_error_clear(&err);
    if (nb_sweep_load(cfg, &sw, &err)) {
        char buf[1024];
        tap_bail("fixture config: %s", nb_error_format(&err, buf, sizeof buf));
    }
    char edir[4200];
    snprintf(edir, sizeof edir, "%s/fx", dir);
    mkdir(edir, 0777);
    for (size_t i = 0; i < sw.n_runs; i++) {
        const struct nb_run *run = &sw.runs[i];
        const char *nt = nb_run_get_str(run, "norm", "type");
        int n = !strcmp(nt, "none") ? 0 : !strcmp(nt, "batch") ? 1 : 2;
        int bs = (int)nb_run_get_int(run, "train", "batch");
        int seed = (int)run->seed;
        if (n == 2 && bs == 32 && seed == 2)
            continue; /* pending */
        char rdir[4300];
        snprintf(rdir, sizeof rdir, "%s/%s", edir, run->run_id);
        write_run(rdir, run, n, bs, seed);
    }
    nb_sweep_free(&sw);
    return cfg;
}
