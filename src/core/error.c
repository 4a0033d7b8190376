/* src/core/error.c - see error.h. */
#include "core/error.h"

#include <stdlib.h>
#include <string.h>

/* indexed by -status */
static const char *const status_names[] = {
    [-NB_OK] = "ok",
    [-NB_EINVAL] = "invalid argument",
    [-NB_ENOMEM] = "out of memory",
    [-NB_EIO] = "I/O error",
    [-NB_EFORMAT] = "malformed input",
    [-NB_ERANGE] = "value out of range",
    [-NB_ENOENT] = "not found",
    [-NB_EDIVERGED] = "diverged",
};
_Static_assert(sizeof status_names / sizeof status_names[0] == NB_STATUS_COUNT_,
               "status_names out of sync with enum nb_status");

const char *nb_status_str(int status)
{
    int i = -status;
    if (i < 0 || i >= NB_STATUS_COUNT_)
        return "unknown status";
    return status_names[i];
}

void nb_error_clear(struct nb_error *e)
{
    if (e)
        memset(e, 0, sizeof *e);
}

int nb_error_vset(struct nb_error *e, int status, const char *file, int line,
                  const char *fmt, va_list ap)
{
    if (!e)
        return status;
    e->status = status;
    snprintf(e->file, sizeof e->file, "%s", file ? file : "");
    e->line = line;
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    e->hint[0] = '\0';
    e->key[0] = '\0';
    return status;
}

int nb_error_set(struct nb_error *e, int status, const char *file, int line,
                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    nb_error_vset(e, status, file, line, fmt, ap);
    va_end(ap);
    return status;
}

int nb_error_key(struct nb_error *e, const char *key)
{
    if (!e)
        return NB_EINVAL;
    snprintf(e->key, sizeof e->key, "%s", key ? key : "");
    return e->status;
}

int nb_error_oom(struct nb_error *e)
{
    return nb_error_set(e, NB_ENOMEM, NULL, 0, "out of memory");
}

int nb_error_hint(struct nb_error *e, const char *fmt, ...)
{
    va_list ap;
    if (!e)
        return NB_EINVAL;
    va_start(ap, fmt);
    vsnprintf(e->hint, sizeof e->hint, fmt, ap);
    va_end(ap);
    return e->status;
}

const char *nb_error_format(const struct nb_error *e, char *buf, size_t size)
{
    if (!e->file[0])
        snprintf(buf, size, "%s", e->msg);
    else if (e->line > 0)
        snprintf(buf, size, "%s:%d: %s", e->file, e->line, e->msg);
    else
        snprintf(buf, size, "%s: %s", e->file, e->msg);
    return buf;
}

void nb_error_print(FILE *fp, const char *prog, const struct nb_error *e)
{
    char buf[2048];
    nb_error_format(e, buf, sizeof buf);
    if (prog && !e->file[0])
        fprintf(fp, "%s: %s\n", prog, buf);
    else
        fprintf(fp, "%s\n", buf);
    if (e->hint[0])
        fprintf(fp, "hint: %s\n", e->hint);
}

void nb_assert_fail(const char *expr, const char *file, int line,
                    const char *func)
{
    fflush(stdout);
    fprintf(stderr, "%s:%d: %s: assertion failed: %s\n", file, line, func,
            expr);
    abort();
}
