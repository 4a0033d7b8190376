/* tests/tap.h - a small TAP producer for normbench's test programs.
 *
 * Output goes to stdout in the TAP 12 form that Automake's tap-driver.sh
 * reads: a plan "1..N" (first, or last with done_testing), then one
 * "ok N - description" / "not ok N - description" per check, "# ..."
 * diagnostics.  Failures print the caller's file:line and both values.
 * The test program ends with `return tap_exit();` (non-zero if any check
 * failed or the plan was not met). */
#ifndef NB_TESTS_TAP_H
#define NB_TESTS_TAP_H

#include <stdbool.h>
#include <stddef.h>

void tap_plan(int n);
void tap_done_testing(void);
_Noreturn void tap_skip_all(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
_Noreturn void tap_bail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tap_skip(int n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int tap_exit(void);
int tap_failures(void);

bool tap_ok_at(const char *file, int line, bool cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
bool tap_is_int_at(const char *file, int line, long long got, long long want,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Passes when |got - want| <= atol + rtol * |want| (NaN never passes
 * unless both are NaN). */
bool tap_is_close_at(const char *file, int line, double got, double want,
                     double atol, double rtol, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
bool tap_is_str_at(const char *file, int line, const char *got,
                   const char *want, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Passes when needle occurs in got. */
bool tap_contains_at(const char *file, int line, const char *got,
                     const char *needle, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Compares two float arrays element-wise with is_close semantics; one TAP
 * line; on failure diagnoses the worst index and both values. */
bool tap_arrays_close_at(const char *file, int line, const float *got,
                         const double *want, size_t n, double atol,
                         double rtol, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));

#define ok(...) tap_ok_at(__FILE__, __LINE__, __VA_ARGS__)
#define is_int(...) tap_is_int_at(__FILE__, __LINE__, __VA_ARGS__)
#define is_close(...) tap_is_close_at(__FILE__, __LINE__, __VA_ARGS__)
#define is_str(...) tap_is_str_at(__FILE__, __LINE__, __VA_ARGS__)
#define contains(...) tap_contains_at(__FILE__, __LINE__, __VA_ARGS__)
#define arrays_close(...) tap_arrays_close_at(__FILE__, __LINE__, __VA_ARGS__)

/* Paths: fixtures live under $srcdir/tests/data (srcdir from the
 * environment, "." when unset); scratch files go under the build tree.
 * Both return a static buffer overwritten by the next call. */
const char *tap_srcpath(const char *rel);
/* Creates (once) and returns a fresh scratch directory for this test
 * program under ./tests/tmp/<name>-<pid>-XXXXXX (mkdtemp: a directory an
 * earlier run left under a recycled pid does not collide); removed by
 * nobody: make clean does. */
const char *tap_tmpdir(const char *name);

#endif
