/* src/core/error.h - status codes, the error record and assertions.
 *
 * Two channels, as in the rest of normbench:
 *  - fallible code (setup, parsing, I/O) returns an int status (0 or a
 *    negative enum nb_status) and fills a struct nb_error with a message in
 *    the GNU form "FILE:LINE: message", plus an optional hint;
 *  - infallible code (kernels, forward/backward, optimizer steps) only
 *    asserts with NB_ASSERT, which stays active under NDEBUG.
 * Library code never calls exit(). */
#ifndef NB_CORE_ERROR_H
#define NB_CORE_ERROR_H

#include <stdarg.h>
#include <stdio.h>

enum nb_status {
    NB_OK = 0,
    NB_EINVAL = -1,  /* bad argument, configuration or combination */
    NB_ENOMEM = -2,  /* allocation failed */
    NB_EIO = -3,     /* file could not be opened, read or written */
    NB_EFORMAT = -4, /* file content is malformed */
    NB_ERANGE = -5,  /* value outside its allowed range */
    NB_ENOENT = -6,  /* file or item not found */
    NB_EDIVERGED = -7, /* training produced NaN/inf */
    NB_STATUS_COUNT_ = 8
};

/* An error report.  file/line locate the input that is wrong (a config
 * line, a data file); line 0 means "the file as a whole", an empty file
 * means "no file".  hint is optional advice ("apt-get install ..."). */
struct nb_error {
    int status;
    char file[512];
    int line;
    char msg[768];
    char hint[256];
    char key[64];  /* the config key the error is about, "section.key"
                      ("norm.groups"); "" when none.  Setup code names it
                      with nb_error_key, so the harness can point at the
                      config line that set it. */
};

/* Returns a static name for a status ("invalid argument", ...). */
const char *nb_status_str(int status);

/* Clears e (safe on NULL). */
void nb_error_clear(struct nb_error *e);

/* Fills e (if non-NULL) and returns status, so callers can write
 * `return nb_error_set(err, NB_EINVAL, path, 12, "bad value '%s'", v);`.
 * file may be NULL (no file). */
int nb_error_set(struct nb_error *e, int status, const char *file, int line,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
int nb_error_vset(struct nb_error *e, int status, const char *file, int line,
                  const char *fmt, va_list ap);

/* Sets the hint of an already filled error; returns e->status. */
int nb_error_hint(struct nb_error *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Names the config key e is about ("section.key"; set after nb_error_set,
 * which clears it); returns e's status (NB_EINVAL when e is NULL), so
 * `return nb_error_key(err, "norm.eps");` follows an nb_error_set. */
int nb_error_key(struct nb_error *e, const char *key);

/* nb_error_set(e, NB_ENOMEM, NULL, 0, "out of memory"): returns NB_ENOMEM. */
int nb_error_oom(struct nb_error *e);

/* Formats "FILE:LINE: msg" ("FILE: msg" when line is 0, "msg" with no
 * file) into buf; returns buf. */
const char *nb_error_format(const struct nb_error *e, char *buf, size_t size);

/* Prints the formatted error, and "hint: ..." on a second line when set,
 * to fp, each line prefixed with prog + ": " when prog is non-NULL and the
 * error has no file. */
void nb_error_print(FILE *fp, const char *prog, const struct nb_error *e);

/* Aborts with location and expression; used by NB_ASSERT. */
_Noreturn void nb_assert_fail(const char *expr, const char *file, int line,
                              const char *func);

#define NB_ASSERT(x)                                                        \
    do {                                                                    \
        if (!(x))                                                           \
            nb_assert_fail(#x, __FILE__, __LINE__, __func__);               \
    } while (0)

#define NB_UNUSED(x) ((void)(x))

#endif
