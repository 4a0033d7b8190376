/* tests/tap.c - see tap.h. */
#include "tap.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int planned = -1;
static int run;
static int failed;

void tap_plan(int n)
{
    planned = n;
    printf("1..%d\n", n);
    fflush(stdout);
}

void tap_done_testing(void)
{
    if (planned < 0) {
        planned = run;
        printf("1..%d\n", run);
        fflush(stdout);
    }
}

void tap_skip_all(const char *fmt, ...)
{
    va_list ap;
    printf("1..0 # SKIP ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    exit(0);
}

void tap_bail(const char *fmt, ...)
{
    va_list ap;
    printf("Bail out! ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    exit(1);
}

void tap_diag(const char *fmt, ...)
{
    va_list ap;
    char buf[4096];
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    /* one "# " per line */
    char *s = buf;
    while (s && *s) {
        char *nl = strchr(s, '\n');
        if (nl)
            *nl = '\0';
        printf("# %s\n", s);
        s = nl ? nl + 1 : NULL;
    }
    fflush(stdout);
}

void tap_skip(int n, const char *fmt, ...)
{
    char why[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    for (int i = 0; i < n; i++)
        printf("ok %d # SKIP %s\n", ++run, why);
    fflush(stdout);
}

int tap_failures(void) { return failed; }

int tap_exit(void)
{
    if (planned < 0)
        tap_done_testing();
    if (run != planned) {
        tap_diag("planned %d tests but ran %d", planned, run);
        return 255;
    }
    return failed ? 1 : 0;
}

static bool report(const char *file, int line, bool cond, const char *fmt,
                   va_list ap)
{
    char desc[1024];
    vsnprintf(desc, sizeof desc, fmt, ap);
    for (char *p = desc; *p; p++) /* keep the line TAP-clean */
        if (*p == '#' || *p == '\n')
            *p = ' ';
    run++;
    printf("%sok %d - %s\n", cond ? "" : "not ", run, desc);
    if (!cond) {
        failed++;
        printf("#   failed at %s:%d\n", file, line);
    }
    fflush(stdout);
    return cond;
}

bool tap_ok_at(const char *file, int line, bool cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bool r = report(file, line, cond, fmt, ap);
    va_end(ap);
    return r;
}

bool tap_is_int_at(const char *file, int line, long long got, long long want,
                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bool r = report(file, line, got == want, fmt, ap);
    va_end(ap);
    if (!r)
        tap_diag("  got: %lld\n  expected: %lld", got, want);
    return r;
}

static bool close_enough(double got, double want, double atol, double rtol)
{
    if (isnan(want) || isnan(got))
        return isnan(want) && isnan(got);
    if (isinf(want) || isinf(got))
        return got == want;
    return fabs(got - want) <= atol + rtol * fabs(want);
}

bool tap_is_close_at(const char *file, int line, double got, double want,
                     double atol, double rtol, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bool r = report(file, line, close_enough(got, want, atol, rtol), fmt, ap);
    va_end(ap);
    if (!r)
        tap_diag("  got: %.9g\n  expected: %.9g (atol %g, rtol %g, diff %.3g)",
                 got, want, atol, rtol, fabs(got - want));
    return r;
}

bool tap_is_str_at(const char *file, int line, const char *got,
                   const char *want, const char *fmt, ...)
{
    va_list ap;
    bool eq = got && want ? strcmp(got, want) == 0 : got == want;
    va_start(ap, fmt);
    bool r = report(file, line, eq, fmt, ap);
    va_end(ap);
    if (!r)
        tap_diag("  got: '%s'\n  expected: '%s'", got ? got : "(null)",
                 want ? want : "(null)");
    return r;
}

bool tap_contains_at(const char *file, int line, const char *got,
                     const char *needle, const char *fmt, ...)
{
    va_list ap;
    bool has = got && needle && strstr(got, needle) != NULL;
    va_start(ap, fmt);
    bool r = report(file, line, has, fmt, ap);
    va_end(ap);
    if (!r)
        tap_diag("  got: '%s'\n  expected to contain: '%s'",
                 got ? got : "(null)", needle ? needle : "(null)");
    return r;
}

bool tap_arrays_close_at(const char *file, int line, const float *got,
                         const double *want, size_t n, double atol,
                         double rtol, const char *fmt, ...)
{
    size_t worst = 0, bad = 0;
    double worst_excess = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i];
        bool okay = close_enough(g, w, atol, rtol);
        double excess = fabs(g - w) - (atol + rtol * fabs(w));
        if (!okay)
            bad++;
        if (!okay && isnan(excess))
            excess = INFINITY;
        if (excess > worst_excess) {
            worst_excess = excess;
            worst = i;
        }
    }
    va_list ap;
    va_start(ap, fmt);
    bool r = report(file, line, bad == 0, fmt, ap);
    va_end(ap);
    if (!r && n > 0)
        tap_diag("  %zu of %zu elements differ; worst [%zu]: got %.9g, "
                 "expected %.9g (atol %g, rtol %g)",
                 bad, n, worst, (double)got[worst], want[worst], atol, rtol);
    return r;
}

const char *tap_srcpath(const char *rel)
{
    static char buf[4096];
    const char *src = getenv("srcdir");
    snprintf(buf, sizeof buf, "%s/tests/data/%s", src && *src ? src : ".",
             rel);
    return buf;
}

const char *tap_tmpdir(const char *name)
{
    static char buf[4096];
    mkdir("tests", 0777);
    mkdir("tests/tmp", 0777);
    /* the pid names it for a reader; mkdtemp's suffix keeps a directory
     * an earlier run left under a recycled pid from colliding */
    snprintf(buf, sizeof buf, "tests/tmp/%s-%ld-XXXXXX", name, (long)getpid());
    if (!mkdtemp(buf)) {
        perror(buf);
        tap_bail("cannot create scratch directory %s", buf);
    }
    return buf;
}
