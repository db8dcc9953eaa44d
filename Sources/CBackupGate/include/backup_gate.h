/* The argument check of the backup gate: what a host's key may run, decided from the
 * command line rsync's client sent (SSH_ORIGINAL_COMMAND) and the host name bound to the
 * key. Pure: no I/O, so it is unit-tested without root and without sshd. */
#ifndef BACKUP_GATE_H
#define BACKUP_GATE_H

#include <stddef.h>

#define BG_MAX_ARGS 48

/* Where the jail mounts a host's data (rw) and its snapshots (ro). */
#define BG_DATA_ROOT "/backups"
#define BG_SNAPSHOT_ROOT "/snapshots"
#define BG_RSYNC "/usr/bin/rsync"

struct bg_plan {
    int sender;               /* 1: a pull (restore), 0: a push */
    int argc;
    char *argv[BG_MAX_ARGS + 1]; /* rsync's argv, NULL-terminated; heap strings */
};

/* 1 when `name` may name a host: 1-32 of [a-z0-9-], not starting with '-'. */
int bg_valid_host(const char *name);

/* Splits `command` the way rsync's client escapes its remote arguments: words separated
 * by spaces, a backslash takes the next byte literally. Returns the word count, or -1
 * (too many words, a trailing backslash). Words are heap strings. */
int bg_split(const char *command, char **words, int max);

/* Checks `command` for host `host` and fills `plan` with the rsync argv to exec.
 * Returns 0, or -1 with a one-line reason for the client in `err`. */
int bg_plan_command(const char *host, const char *command, struct bg_plan *plan, char *err, size_t errlen);

void bg_plan_free(struct bg_plan *plan);

/* The plan's argument i (for tests written in Swift, which see C arrays as tuples). */
const char *bg_plan_arg(const struct bg_plan *plan, int i);

#endif
