/* src/core/text.c - see text.h. */
#include "core/text.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Makes room for extra more bytes and the NUL; false when it cannot. */
static bool reserve(struct nb_text *t, size_t extra)
{
    if (t->failed)
        return false;
    if (t->n + extra + 1 <= t->cap)
        return true;
    size_t cap = t->cap ? t->cap : 256;
    while (cap < t->n + extra + 1)
        cap *= 2;
    char *s = realloc(t->s, cap);
    if (!s) {
        t->failed = true;
        return false;
    }
    t->s = s;
    t->cap = cap;
    return true;
}

void nb_text_put(struct nb_text *t, const char *p, size_t n)
{
    if (!reserve(t, n))
        return;
    memcpy(t->s + t->n, p, n);
    t->n += n;
    t->s[t->n] = '\0';
}

void nb_text_puts(struct nb_text *t, const char *p)
{
    nb_text_put(t, p, strlen(p));
}

void nb_text_printf(struct nb_text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        t->failed = true;
        return;
    }
    if (!reserve(t, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(t->s + t->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->n += (size_t)n;
}

void nb_text_free(struct nb_text *t)
{
    free(t->s);
    memset(t, 0, sizeof *t);
}

char *nb_trim_left(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

void nb_trim_right(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
}
