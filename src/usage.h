/* src/usage.h - the command line's help text (usage.c). */
#ifndef NB_USAGE_H
#define NB_USAGE_H

#include <stdio.h>

/* Prints `normbench --help` to fp. */
void nb_usage(FILE *fp);

#endif
