/* src/cli.h - what the command line's files share (the program, not the
 * library): the name its messages start with, the exit status of a failed
 * setup, the checks of option values, and the verbs that live outside
 * normbench.c.  Only these files print to the terminal and choose exit
 * statuses. */
#ifndef NB_CLI_H
#define NB_CLI_H

/* "normbench": every message of the command line starts with it. */
extern const char nb_cli_prog[];

/* Exit status of a failed setup: 2 when the user's input is wrong (an
 * option, a config, a path), 1 otherwise. */
int nb_cli_exit_status(int rc);

/* Checks an option's value against the config key of the same meaning
 * (the key table owns every range); prints the error and returns -1 when
 * it does not fit. */
int nb_cli_opt_check(const char *verb, const char *opt, const char *section, const char *key,
                     const char *text);

/* A path given as "" (an unset variable, typically) is a usage error,
 * never the working directory or a default: prints it, returns -1. */
int nb_cli_path_check(const char *verb, const char *what, const char *s);

/* `normbench train ARGS` and `normbench bench ARGS` (cmd_train.c), argv[0]
 * being the verb: the exit status. */
int nb_cmd_train(int argc, char **argv);
int nb_cmd_bench(int argc, char **argv);

#endif
