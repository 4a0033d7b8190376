/* tests/t_archive.c - the archive (analyze/archive.h) over the hand-made
 * run directories of tests/sumfix.c (done, diverged, failed and pending
 * runs; probes; 1-D and 2-D slices): built from the run directories and
 * read back with them gone, the summary writes the same tables and figure
 * tables byte for byte; rebuilt from itself it is the same archive; the
 * facts come from the runs' meta.txt; a damaged archive is FILE:LINE. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zlib.h>

#include "core/error.h"
#include "analyze/archive.h"
#include "analyze/summarize.h"
#include "config/sweep.h"
#include "sumfix.h"
#include "tap.h"

static char dir[4096];

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0, k;
    char tmp[8192];
    while ((k = fread(tmp, 1, sizeof tmp, fp)) > 0) {
        if (n + k + 1 > cap) {
            cap = 2 * (n + k + 1);
            buf = realloc(buf, cap);
            if (!buf)
                tap_bail("out of memory");
        }
        memcpy(buf + n, tmp, k);
        n += k;
    }
    fclose(fp);
    if (!buf)
        buf = calloc(1, 1);
    else
        buf[n] = '\0';
    return buf;
}

static bool same_file(const char *a, const char *b)
{
    char *x = slurp(a), *y = slurp(b);
    bool same = x && y && !strcmp(x, y);
    free(x), free(y);
    return same;
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    if (!fp)
        tap_bail("cannot write %s", path);
    fputs(text, fp);
    fclose(fp);
}

/* The summary of the fixture sweep, its runs read from edir, the archive
 * (may be NULL) as the fallback; tables and figure tables into out. */
static void summarize(const char *cfg, const char *edir, struct nb_archive *a,
                      const char *out, struct nb_summary *s)
{
    struct nb_sweep sw;
    struct nb_error e;
    nb_error_clear(&e);
    if (nb_sweep_load(cfg, &sw, &e))
        tap_bail("%s: %s", cfg, e.msg);
    nb_summary_init(s);
    if (a)
        nb_summary_set_fallback(s, nb_archive_fallback, a);
    if (nb_summary_add_sweep(s, &sw, edir, &e) || nb_summary_group(s, &e) ||
        nb_summary_write_tables(s, out, &e))
        tap_bail("summary: %s", e.msg);
    nb_sweep_free(&sw);
    static const int kinds[] = {NB_FIG_CURVES, NB_FIG_LANDSCAPE, NB_FIG_ICS, NB_FIG_DIST,
                                NB_FIG_SLICE1D, NB_FIG_SLICE2D};
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
        char path[4400];
        snprintf(path, sizeof path, "%s/fig-%s.csv", out, nb_fig_kind_name(kinds[i]));
        struct nb_fig_spec f = {.kind = kinds[i], .x = -1, .scalar = NB_SC_FINAL_TEST_ERROR};
        nb_error_clear(&e);
        int rc = nb_summary_figure_table(s, &f, path, &e);
        if (rc && rc != NB_ENOENT)
            tap_bail("figure %s: %s", nb_fig_kind_name(kinds[i]), e.msg);
    }
}

static void test_round_trip(const char *cfg)
{
    char edir[4200], gone[4200], adir[4200], adir2[4200], t1[4200], t2[4200];
    snprintf(edir, sizeof edir, "%s/fx", dir);
    snprintf(gone, sizeof gone, "%s/fx.gone", dir);
    snprintf(adir, sizeof adir, "%s/archive", dir);
    snprintf(adir2, sizeof adir2, "%s/archive2", dir);
    snprintf(t1, sizeof t1, "%s/tables1", dir);
    snprintf(t2, sizeof t2, "%s/tables2", dir);
    struct nb_error e;
    nb_error_clear(&e);

    /* a meta.txt for two runs: the facts read them */
    struct nb_summary s1;
    summarize(cfg, edir, NULL, t1, &s1);
    int metas = 0;
    for (size_t i = 0; i < s1.n_runs && metas < 2; i++) {
        if (s1.runs[i].status != NB_SUM_DONE)
            continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/meta.txt", s1.runs[i].dir);
        write_file(path, metas == 0 ? "run_id = x\ngit_revision = abc1234\npackage = normbench "
                                      "0.1.0\nstart_utc = 2026-01-02T03:04:05Z\nend_utc = "
                                      "2026-01-02T04:00:00Z\ncpu = Test CPU\ncpus_online = 8\n"
                                      "blas = openblas (kernels Haswell)\nconv_algo = auto\n"
                                      "wall_seconds = 3600\ncpu_seconds = 5400\n"
                                      "params = 1234\n"
                                    : "git_revision = abc1234\npackage = normbench 0.1.0\n"
                                      "start_utc = 2026-01-01T23:00:00Z\nend_utc = "
                                      "2026-01-03T01:00:00Z\ncpu = Test CPU\ncpus_online = 8\n"
                                      "wall_seconds = 3600\ncpu_seconds = 1800\n");
        metas++;
    }
    {
        /* params: the summary's scalar from meta.txt, NaN without it (the
         * summary read again, now that two runs have a meta.txt) */
        nb_summary_free(&s1);
        summarize(cfg, edir, NULL, t1, &s1);
        int with = 0, nan = 0;
        for (size_t i = 0; i < s1.n_runs; i++) {
            with += s1.runs[i].sc[NB_SC_PARAMS] == 1234;
            nan += isnan(s1.runs[i].sc[NB_SC_PARAMS]);
        }
        ok(with == 1 && nan == (int)s1.n_runs - 1,
           "params: meta.txt's trainable parameters, NaN for runs without it");
    }
    struct nb_archive a;
    is_int(nb_archive_build(&s1, NULL, &a, &e), 0, "the archive builds from run directories");
    size_t done = 0, pending = 0;
    for (size_t i = 0; i < s1.n_runs; i++)
        pending += s1.runs[i].status == NB_SUM_PENDING;
    done = s1.n_runs - pending;
    is_int((long long)a.n_runs, (long long)done, "one archive row per run with data (%zu)",
           done);
    ok(pending > 0, "the fixture has a pending run (%zu)", pending);
    ok(a.t[NB_AR_PROBES].nrows > 0 && a.t[NB_AR_SLICES].nrows > 0,
       "probes and slices are archived");
    is_int(nb_archive_save(&a, adir, &e), 0, "saved");
    struct nb_archive_facts f;
    nb_archive_facts(&a, &f);
    is_int((long long)f.n_runs, 2, "facts: the runs with a meta.txt");
    is_str(f.when, "2026-01-01 23:00 to 2026-01-03 01:00 UTC", "facts: first start to last end");
    contains(f.version, "2 runs made by normbench 0.1.0 (git abc1234; CPU time 2.00 h, wall "
                        "time 2.00 h",
             "facts: revision, CPU and wall time summed");
    contains(f.machine, "Test CPU (8 CPUs online)", "facts: the runs' CPU");
    contains(f.machine, "openblas (kernels Haswell)", "facts: the BLAS kernels");
    nb_archive_free(&a);

    /* the run directories gone: everything from the archive */
    if (rename(edir, gone) != 0)
        tap_bail("cannot move %s", edir);
    struct nb_archive b;
    is_int(nb_archive_load(adir, &b, &e), 0, "the archive loads");
    struct nb_summary s2;
    summarize(cfg, edir, &b, t2, &s2);
    is_int((long long)s2.n_runs, (long long)s1.n_runs, "the same runs");
    int st_same = 1, sc_same = 1, pr_same = 1, sl_same = 1, arch = 0;
    for (size_t i = 0; i < s1.n_runs; i++) {
        const struct nb_sum_run *x = &s1.runs[i], *y = &s2.runs[i];
        st_same &= x->status == y->status;
        arch += y->archived;
        for (int k = 0; k < NB_SC_COUNT; k++)
            sc_same &= (isnan(x->sc[k]) && isnan(y->sc[k])) || x->sc[k] == y->sc[k];
        pr_same &= x->n_probes == y->n_probes &&
                   (!x->n_probes || !memcmp(x->probes, y->probes,
                                            x->n_probes * sizeof *x->probes));
        sl_same &= x->n_slices == y->n_slices;
        for (int k = 0; sl_same && k < x->n_slices; k++) {
            const struct nb_sum_slice *p = &x->slices[k], *q = &y->slices[k];
            size_t m = (size_t)p->na * (size_t)p->nb;
            sl_same &= p->dim == q->dim && p->na == q->na && p->nb == q->nb &&
                       p->step == q->step && !memcmp(p->b, q->b, m * sizeof *p->b) &&
                       !memcmp(p->a, q->a, m * sizeof *p->a) &&
                       !memcmp(p->loss, q->loss, m * sizeof *p->loss);
        }
    }
    ok(st_same, "every status (done, diverged, failed, pending) is the same");
    is_int(arch, (int)done, "the runs with data come from the archive");
    ok(sc_same, "every per-run scalar is the same double");
    ok(pr_same, "every probe row is the same");
    ok(sl_same, "every slice is the same grid at the same step");
    static const char *const names[] = {"runs.csv",          "groups.csv",
                                        "curves.csv",        "probes.csv",
                                        "fig-curves.csv",    "fig-landscape.csv",
                                        "fig-ics.csv",       "fig-dist.csv",
                                        "fig-slice1d.csv",   "fig-slice2d.csv", NULL};
    for (int i = 0; names[i]; i++) {
        char p1[4400], p2[4400];
        snprintf(p1, sizeof p1, "%s/%s", t1, names[i]);
        snprintf(p2, sizeof p2, "%s/%s", t2, names[i]);
        ok(same_file(p1, p2), "%s is byte-identical from the archive", names[i]);
    }

    /* rebuilt from itself: the same archive */
    struct nb_archive c;
    is_int(nb_archive_build(&s2, &b, &c, &e), 0, "the archive builds from the archive");
    is_int(nb_archive_save(&c, adir2, &e), 0, "saved again");
    static const char *const files[] = {"runs.csv", "metrics.csv", "probes.csv",
                                        "slices.csv", NULL};
    for (int i = 0; files[i]; i++) {
        char p1[4400], p2[4400];
        snprintf(p1, sizeof p1, "%s/%s", adir, files[i]);
        snprintf(p2, sizeof p2, "%s/%s", adir2, files[i]);
        ok(same_file(p1, p2), "archive %s is the same when rebuilt from itself", files[i]);
    }
    /* a run the archive does not have: no data (the summary keeps it pending) */
    struct nb_sum_runsrc src;
    memset(&src, 0, sizeof src);
    is_int(nb_archive_fallback(&b, "0123456789abcdef", &src, &e), 0,
           "an unknown run has no data in the archive");
    nb_archive_free(&c);
    nb_summary_free(&s1);
    nb_summary_free(&s2);
    nb_archive_free(&b);
    if (rename(gone, edir) != 0)
        tap_bail("cannot move %s back", gone);
}

/* The archive's probes.csv gzip-compressed (as it is written when large)
 * reads the same. */
static void test_gzip(const char *cfg)
{
    char adir[4200], plain[4400], gzp[4400], edir[4200], gone[4200], t2[4200], t3[4200];
    snprintf(adir, sizeof adir, "%s/archive", dir);
    snprintf(plain, sizeof plain, "%s/probes.csv", adir);
    snprintf(gzp, sizeof gzp, "%s/probes.csv.gz", adir);
    snprintf(edir, sizeof edir, "%s/fx", dir);
    snprintf(gone, sizeof gone, "%s/fx.gone", dir);
    snprintf(t2, sizeof t2, "%s/tables2", dir);
    snprintf(t3, sizeof t3, "%s/tables3", dir);
    char *text = slurp(plain);
    if (!text)
        tap_bail("no %s", plain);
    gzFile gz = gzopen(gzp, "wb9");
    if (!gz || gzwrite(gz, text, (unsigned)strlen(text)) != (int)strlen(text) ||
        gzclose(gz) != Z_OK)
        tap_bail("cannot write %s", gzp);
    free(text);
    remove(plain);
    if (rename(edir, gone) != 0)
        tap_bail("cannot move %s", edir);
    struct nb_archive a;
    struct nb_error e;
    nb_error_clear(&e);
    is_int(nb_archive_load(adir, &a, &e), 0, "an archive with probes.csv.gz loads");
    struct nb_summary s;
    summarize(cfg, edir, &a, t3, &s);
    char p2[4400], p3[4400];
    snprintf(p2, sizeof p2, "%s/probes.csv", t2);
    snprintf(p3, sizeof p3, "%s/probes.csv", t3);
    ok(same_file(p2, p3), "  and gives the same probes table");
    nb_summary_free(&s);
    nb_archive_free(&a);
    if (rename(gone, edir) != 0)
        tap_bail("cannot move %s back", gone);
}

static void test_damaged(void)
{
    char adir[4200], path[4400];
    snprintf(adir, sizeof adir, "%s/damaged", dir);
    mkdir(adir, 0777);
    struct nb_archive a;
    struct nb_error e;
    nb_error_clear(&e);
    is_int(nb_archive_load(adir, &a, &e), NB_ENOENT, "no runs.csv: no archive");
    snprintf(path, sizeof path, "%s/runs.csv", adir);
    write_file(path, "run_id,status,seed,wall_time\nx,done,1,2\n");
    is_int(nb_archive_load(adir, &a, &e), NB_EFORMAT, "a runs.csv without config column");
    contains(e.msg, "column 2 must be 'config'", "  says which column");
    ok(strstr(e.file, "runs.csv") != NULL && e.line == 1, "  at runs.csv:1");
    write_file(path, "run_id,config,status,seed,a.b,wall_time\n"
                     "r1,c,done,1,x,2\nr2,c,pending,1,x,2\n");
    is_int(nb_archive_load(adir, &a, &e), NB_EFORMAT, "a pending run in runs.csv");
    ok(e.line == 3, "  at its line (3)");
    write_file(path, "run_id,config,status,seed,a.b,wall_time\nr1,c,done,1,x,2\n");
    snprintf(path, sizeof path, "%s/metrics.csv", adir);
    write_file(path, "run_id,a.b,step\nr1,x,1\nr9,x,2\n");
    is_int(nb_archive_load(adir, &a, &e), NB_EFORMAT, "metrics of a run runs.csv lacks");
    contains(e.msg, "run 'r9' is not in runs.csv", "  names it");
    ok(e.line == 3, "  at its line (3)");
    write_file(path, "run_id,a.b,step\nr1,x,1\n");
    is_int(nb_archive_load(adir, &a, &e), 0, "a small archive loads");
    ok(nb_archive_has(&a, "r1") && !nb_archive_has(&a, "r2"), "  and has its run");
    nb_archive_free(&a);
}

int main(void)
{
    snprintf(dir, sizeof dir, "%s", tap_tmpdir("t_archive"));
    const char *cfg = sumfix_make(dir);
    test_round_trip(cfg);
    test_gzip(cfg);
    test_damaged();
    tap_done_testing();
    return tap_exit();
}
