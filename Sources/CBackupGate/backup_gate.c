/* The backup gate's argument check (see include/backup_gate.h).
 *
 * Allowed is exactly what `rsync -a --delete [-z] [--stats] [-H] [--numeric-ids] [-v]`
 * sends to the server for a push into the host's current/ or a pull from its current/
 * or its snapshots. Everything else is refused by default: an option not on the list
 * below is an error, not something to pass through. The destination of a push is
 * forced (the host's current/), never taken from the client. */
#define _GNU_SOURCE
#include "backup_gate.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Letters of a server-side short option cluster we accept: -a's "logDtpr", -H, -z, -v.
 * Not 's' (--secluded-args: the real arguments would travel over the protocol, past
 * this check), not 'e' as an option (only as the trailing capability string). */
static const char short_ok[] = "logDtprHzv";

struct long_opt {
    const char *name;
    int push;  /* allowed on a push */
    int pull;  /* allowed on a pull */
};

static const struct long_opt long_ok[] = {
    {"--delete", 1, 0},
    {"--stats", 1, 1},
    {"--numeric-ids", 1, 1},
    {NULL, 0, 0},
};

/* Reasons said by name for the options an attacker reaches for first. */
static const char *const long_refused[] = {
    "--rsh", "--rsync-path", "--daemon", "--files-from", "--remove-source-files", "--remove-sent-files",
    "--inplace", "--append", "--log-file", "--temp-dir", "--partial-dir", "--backup-dir", "--link-dest",
    "--copy-dest", "--compare-dest", "--write-batch", "--read-batch", "--only-write-batch",
    "--secluded-args", "--protect-args", "--copy-unsafe-links", "--keep-dirlinks", "--no-munge-links",
    "--insecure-links", "--write-devices", "--copy-devices", "--super", "--config", NULL,
};

static void say(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int bg_valid_host(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n > 32 || name[0] == '-') return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return 0;
    }
    return 1;
}

int bg_split(const char *command, char **words, int max) {
    int count = 0;
    const char *p = command;
    size_t cap = strlen(command) + 1;
    while (*p) {
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) break;
        if (count == max) goto fail;
        char *w = malloc(cap);
        if (!w) goto fail;
        size_t len = 0;
        while (*p && *p != ' ' && *p != '\t') {
            if (*p == '\\') {
                p++;
                if (!*p) {
                    free(w);
                    goto fail;
                }
            }
            w[len++] = *p++;
        }
        w[len] = 0;
        words[count++] = w;
    }
    return count;
fail:
    for (int i = 0; i < count; i++) free(words[i]);
    return -1;
}

/* -[short_ok]*(e[0-9]*\.[A-Za-z0-9_]*)? with at least one letter: rrsync's pattern. */
static int short_cluster_ok(const char *w, char *bad) {
    if (w[0] != '-' || w[1] == 0 || w[1] == '-') return 0;
    for (const char *c = w + 1; *c; c++) {
        if (*c == 'e') {
            const char *q = c + 1;
            while (*q >= '0' && *q <= '9') q++;
            if (*q != '.') {
                *bad = 'e';
                return 0;
            }
            for (q++; *q; q++) {
                if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') || *q == '_')) {
                    *bad = 'e';
                    return 0;
                }
            }
            return 1;
        }
        if (!strchr(short_ok, *c)) {
            *bad = *c;
            return 0;
        }
    }
    return 1;
}

enum area { AREA_NONE, AREA_CURRENT, AREA_SNAPSHOTS };

/* A client path as a relative path below the host's area: the area it starts with and
 * what follows, with "." components dropped and a trailing slash kept (it means "the
 * contents of" to rsync). Refuses "..", absolute paths, "~", wildcards, control bytes. */
static int client_path(const char *arg, int pull, enum area *area, char *rest, size_t restlen, char *err,
                       size_t errlen) {
    if (arg[0] == '/' || arg[0] == '~') {
        say(err, errlen, "path \"%s\": only paths inside your own backup area (current/, snapshots/) are served", arg);
        return -1;
    }
    for (const char *c = arg; *c; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f || strchr("*?[", *c)) {
            say(err, errlen, "path \"%s\": wildcards and control characters are not accepted", arg);
            return -1;
        }
    }
    size_t n = strlen(arg);
    int trailing = n > 0 && arg[n - 1] == '/';
    char *copy = strdup(arg);
    if (!copy) {
        say(err, errlen, "out of memory");
        return -1;
    }
    *area = AREA_NONE;
    rest[0] = 0;
    size_t used = 0;
    int first = 1, rc = 0, named = 0;
    char *save = NULL;
    for (char *part = strtok_r(copy, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
        if (strcmp(part, ".") == 0) continue;
        if (strcmp(part, "..") == 0) {
            say(err, errlen, "path \"%s\": \"..\" is not accepted", arg);
            rc = -1;
            break;
        }
        if (first) {
            first = 0;
            named = 1;
            if (strcmp(part, "current") == 0) {
                *area = AREA_CURRENT;
                continue;
            }
            if (pull && strcmp(part, "snapshots") == 0) {
                *area = AREA_SNAPSHOTS;
                continue;
            }
            say(err, errlen, "path \"%s\": %s", arg,
                pull ? "restore from current/... or snapshots/STAMP/..." : "a push goes into your current/ only");
            rc = -1;
            break;
        }
        size_t len = strlen(part);
        if (used + len + 2 >= restlen) {
            say(err, errlen, "path \"%s\" is too long", arg);
            rc = -1;
            break;
        }
        memcpy(rest + used, part, len);
        used += len;
        rest[used++] = '/';
        rest[used] = 0;
    }
    free(copy);
    if (rc < 0) return rc;
    if (*area == AREA_NONE) *area = AREA_CURRENT; /* "." or "" is current/ */
    if (!pull && used > 0) {
        say(err, errlen, "path \"%s\": a push goes into your current/ itself, not below it", arg);
        return -1;
    }
    /* The caller puts back the client's trailing slash, or its absence. */
    if (used > 0) rest[used - 1] = 0;
    /* "." (what the client sends for "host:") means the contents of current/. */
    return trailing || !named ? 1 : 0;
}

static int add(struct bg_plan *plan, const char *fmt, ...) {
    if (plan->argc >= BG_MAX_ARGS) return -1;
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) return -1;
    plan->argv[plan->argc++] = s;
    plan->argv[plan->argc] = NULL;
    return 0;
}

int bg_plan_command(const char *host, const char *command, struct bg_plan *plan, char *err, size_t errlen) {
    memset(plan, 0, sizeof *plan);
    if (!bg_valid_host(host)) {
        say(err, errlen, "this key is bound to no valid host name");
        return -1;
    }
    char *w[BG_MAX_ARGS];
    int n = bg_split(command, w, BG_MAX_ARGS);
    if (n < 0) {
        say(err, errlen, "the command cannot be parsed");
        return -1;
    }
    int rc = -1, i = 0;
    if (n < 2 || strcmp(w[0], "rsync") != 0 || strcmp(w[1], "--server") != 0) {
        say(err, errlen, "this key only runs rsync into the backup of %s (no shell, scp or sftp)", host);
        goto out;
    }
    i = 2;
    if (i < n && strcmp(w[i], "--sender") == 0) {
        plan->sender = 1;
        i++;
    }
    const char *opts[BG_MAX_ARGS];
    int nopts = 0;
    for (; i < n && strcmp(w[i], ".") != 0; i++) {
        const char *o = w[i];
        char bad = 0;
        if (o[0] == '-' && o[1] != '-') {
            if (!short_cluster_ok(o, &bad)) {
                if (bad == 's')
                    say(err, errlen, "option -s (--secluded-args) is not accepted: the arguments must be checked");
                else if (bad)
                    say(err, errlen, "option -%c is not accepted by this backup server", bad);
                else
                    say(err, errlen, "option \"%s\" is not accepted by this backup server", o);
                goto out;
            }
            opts[nopts++] = o;
            continue;
        }
        const char *eq = strchr(o, '=');
        size_t len = eq ? (size_t)(eq - o) : strlen(o);
        int found = 0;
        for (const struct long_opt *l = long_ok; l->name; l++) {
            if (strlen(l->name) == len && strncmp(o, l->name, len) == 0 && !eq) {
                if (plan->sender ? !l->pull : !l->push) break;
                found = 1;
            }
        }
        if (!found) {
            for (const char *const *r = long_refused; *r; r++) {
                if (strlen(*r) == len && strncmp(o, *r, len) == 0) {
                    say(err, errlen, "option %.*s is refused by this backup server", (int)len, o);
                    goto out;
                }
            }
            if (strcmp(o, "--sender") == 0)
                say(err, errlen, "--sender must come right after --server");
            else
                say(err, errlen, "option %.*s is not accepted by this backup server", (int)len, o);
            goto out;
        }
        opts[nopts++] = o;
    }
    if (i >= n) {
        say(err, errlen, "not an rsync server command (no \".\" argument)");
        goto out;
    }
    i++; /* the "." */
    int npaths = n - i;
    if (plan->sender ? (npaths < 1 || npaths > 8) : npaths != 1) {
        say(err, errlen, plan->sender ? "a restore names 1 to 8 paths" : "a push names exactly one destination");
        goto out;
    }
    char rests[8][1024];
    int trailing[8];
    enum area area = AREA_NONE;
    for (int k = 0; k < npaths; k++) {
        enum area a;
        int t = client_path(w[i + k], plan->sender, &a, rests[k], sizeof rests[k], err, errlen);
        if (t < 0) goto out;
        if (area != AREA_NONE && a != area) {
            say(err, errlen, "a restore reads either current/ or snapshots/, not both at once");
            goto out;
        }
        area = a;
        trailing[k] = t;
    }
    char base[256];
    if (area == AREA_SNAPSHOTS)
        snprintf(base, sizeof base, "%s/%s", BG_SNAPSHOT_ROOT, host);
    else
        snprintf(base, sizeof base, "%s/%s/current", BG_DATA_ROOT, host);

    if (add(plan, "%s", BG_RSYNC) || add(plan, "--server")) goto nomem;
    if (plan->sender && add(plan, "--sender")) goto nomem;
    for (int k = 0; k < nopts; k++)
        if (add(plan, "%s", opts[k])) goto nomem;
    /* Forced: received symlinks are stored unusable (and given back as they were on a
     * restore); no device or special file is made; operator paths (filter merge files
     * named over the protocol) cannot resolve outside the area. */
    /* --fake-super: owners, groups, devices and modes the backup user cannot set are
     * kept in xattrs (user.rsync.%stat) and given back on a restore. */
    if (add(plan, "--munge-links") || add(plan, "--confine-root=%s", base) || add(plan, "--fake-super")) goto nomem;
    if (!plan->sender && add(plan, "--drop-D")) goto nomem;
    if (add(plan, "--") || add(plan, ".")) goto nomem;
    if (!plan->sender) {
        if (add(plan, "%s/", base)) goto nomem;
    } else {
        for (int k = 0; k < npaths; k++) {
            if (rests[k][0] == 0) {
                if (add(plan, "%s%s", base, trailing[k] ? "/" : "")) goto nomem;
            } else if (add(plan, "%s/%s%s", base, rests[k], trailing[k] ? "/" : "")) {
                goto nomem;
            }
        }
    }
    rc = 0;
    goto out;
nomem:
    say(err, errlen, "out of memory");
out:
    for (int k = 0; k < n; k++) free(w[k]);
    if (rc < 0) bg_plan_free(plan);
    return rc;
}

void bg_plan_free(struct bg_plan *plan) {
    for (int i = 0; i < plan->argc; i++) free(plan->argv[i]);
    plan->argc = 0;
    plan->argv[0] = NULL;
}

const char *bg_plan_arg(const struct bg_plan *plan, int i) {
    return i >= 0 && i < plan->argc ? plan->argv[i] : NULL;
}
