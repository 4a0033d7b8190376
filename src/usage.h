/* src/usage.h - the command line's help text (usage.c). */
#ifndef NB_USAGE_H
#define NB_USAGE_H

#include <stdbool.h>
#include <stdio.h>

/* Prints `normbench --help` to fp. */
void nb_usage(FILE *fp);

/* Prints `normbench fold --help` to fp, or (full false) its usage line
 * and where to read more. */
void nb_usage_fold(FILE *fp, bool full);

#endif
