/* src/normbench.c - the command line. */
#include "config.h"
#include <stdio.h>
int main(void) { puts("normbench " PACKAGE_VERSION); return 0; }
