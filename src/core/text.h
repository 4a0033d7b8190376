/* src/core/text.h - a growable NUL-terminated text, the one used wherever
 * normbench builds a string of unknown length (canonical configs, archive
 * CSV, meta.txt, the train verb's config).
 *
 * Appending never fails loudly: when an allocation fails the text is
 * marked failed, later appends do nothing, and the owner checks `failed`
 * once at the end (and reports NB_ENOMEM).  s is NULL until the first
 * append; after one it is always NUL-terminated.  Zero-initialize
 * (struct nb_text t = {0}) and free with nb_text_free. */
#ifndef NB_CORE_TEXT_H
#define NB_CORE_TEXT_H

#include <stdbool.h>
#include <stddef.h>

struct nb_text {
    char *s;
    size_t n, cap; /* bytes used (without the NUL), bytes allocated */
    bool failed;   /* an allocation failed; the text is incomplete */
};

/* Appends n bytes of p. */
void nb_text_put(struct nb_text *t, const char *p, size_t n);
/* Appends the string p. */
void nb_text_puts(struct nb_text *t, const char *p);
/* Appends printf-formatted text. */
void nb_text_printf(struct nb_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Frees the text and zeroes it. */
void nb_text_free(struct nb_text *t);

/* Trimming in place: nb_trim_left returns s past its leading blanks
 * (spaces and tabs), nb_trim_right cuts trailing white space (isspace). */
char *nb_trim_left(char *s);
void nb_trim_right(char *s);

#endif
