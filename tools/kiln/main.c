/* kiln: build, run and inspect neural network engines. */
#include "cli.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: kiln <command> [options]\n"
            "\n"
            "commands:\n"
            "  run MODEL [--inputs DIR | --input NAME=FILE ...] [--save-outputs DIR] [--backend cpu]\n"
            "            run a model on the reference (CPU) backend\n"
            "  inspect MODEL\n"
            "            inputs, outputs, shapes, op histogram, opset and what cannot run\n"
            "  version   print the version\n");
}

int cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("kiln: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

kiln_status cli_read_tensor(const char *path, kiln_host_tensor *out)
{
    size_t n = strlen(path);
    if (n > 4 && !strcmp(path + n - 4, ".npy")) return kiln_tensor_read_npy(path, out);
    return kiln_tensor_read_pb(path, out);
}

void cli_format_tensor_type(const kiln_host_tensor *t, char *buf, unsigned long len)
{
    size_t pos = (size_t)snprintf(buf, len, "%s[", kiln_dtype_name(t->dtype));
    for (int i = 0; i < t->rank && pos < len; i++)
        pos += (size_t)snprintf(buf + pos, len - pos, "%s%lld", i ? "," : "", (long long)t->dims[i]);
    if (pos < len) snprintf(buf + pos, len - pos, "]");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "run")) return kiln_cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "inspect")) return kiln_cmd_inspect(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("kiln %d.%d.%d\n", KILN_VERSION_MAJOR, KILN_VERSION_MINOR, KILN_VERSION_PATCH);
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    cli_error("unknown command '%s'", cmd);
    usage(stderr);
    return 2;
}
