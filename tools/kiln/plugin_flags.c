/*
 * --plugins=LIB (repeatable, every command): loads plugin libraries before the
 * command parses a model or loads an engine, and takes the flag out of argv
 * so each command's own parser never sees it.
 */
#include "cli.h"
#include <string.h>

int cli_plugins_take(int *argc, char **argv);

int cli_plugins_take(int *argc, char **argv)
{
    int w = 1;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i], *path = NULL;
        if (!strncmp(a, "--plugins=", 10)) path = a + 10;
        else if (!strcmp(a, "--plugins")) {
            if (i + 1 >= *argc) return cli_error("--plugins needs a library path (--plugins=libfoo.so)");
            path = argv[++i];
        } else {
            argv[w++] = argv[i];
            continue;
        }
        if (!*path) return cli_error("--plugins needs a library path (--plugins=libfoo.so)");
        if (kiln_plugin_load(path)) return cli_error("%s", kiln_last_error());
    }
    argv[w] = NULL;
    *argc = w;
    return 0;
}
