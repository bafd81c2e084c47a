/* kiln: build, run and inspect neural network engines. */
#include "cli.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int cli_plugins_take(int *argc, char **argv); /* plugin_flags.c (issue 4) */

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
            "  build MODEL --saveEngine=FILE [--fp16|--noTF32|--best] [--shapes=|--minShapes= --optShapes= --maxShapes=] ...\n"
            "            optimize a model for this GPU and save the engine (kiln build --help)\n"
            "  exec (--onnx=MODEL | --loadEngine=FILE) [options]\n"
            "            run an engine on the GPU and time it, as trtexec (kiln exec --help)\n"
            "  compare MODEL [--engine=FILE | build flags] [--atol= --rtol= --check-error-stat=] [--mark-all]\n"
            "            the GPU engine against the CPU reference, per output (kiln compare --help)\n"
            "  surgeon (sanitize|extract|replace-op|set-attr|remove-node|rename) IN -o OUT [options]\n"
            "            clean and edit an ONNX graph and write it back as ONNX (kiln surgeon --help)\n"
            "  version   print the version\n"
            "\n"
            "any command takes --plugins=LIB (repeatable): load a plugin library (include/kiln_plugin.h) first\n");
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

static int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("kiln %d.%d.%d\n", KILN_VERSION_MAJOR, KILN_VERSION_MINOR, KILN_VERSION_PATCH);
    return 0;
}

static int cmd_help(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    usage(stdout);
    return 0;
}

/* surgeon (issue 5): cmd_surgeon.c */
int kiln_cmd_surgeon(int argc, char **argv);

/* The one list of commands: dispatch and the "unknown command" message both use it. */
static const struct {
    const char *name, *alias;
    int (*fn)(int argc, char **argv);
} commands[] = {
    {"run", NULL, kiln_cmd_run},
    {"inspect", NULL, kiln_cmd_inspect},
    {"build", NULL, kiln_cmd_build},
    {"exec", NULL, kiln_cmd_exec},
    {"compare", NULL, kiln_cmd_compare},
    {"surgeon", NULL, kiln_cmd_surgeon}, /* surgeon (issue 5) */
    {"version", "--version", cmd_version},
    {"help", "--help", cmd_help},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

int main(int argc, char **argv)
{
    /* Usage errors are one stderr line (exit 2); the full usage is for 'kiln help' on stdout. */
    if (argc < 2) {
        fprintf(stderr, "kiln: no command given (try 'kiln help')\n");
        return 2;
    }
    /* --plugins=LIB, any command (issue 4): loaded here, removed from argv */
    if (cli_plugins_take(&argc, argv)) return 1;
    if (argc < 2) {
        fprintf(stderr, "kiln: no command given (try 'kiln help')\n");
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h")) return cmd_help(argc - 1, argv + 1);
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(cmd, commands[i].name) || (commands[i].alias && !strcmp(cmd, commands[i].alias)))
            return commands[i].fn(argc - 1, argv + 1);
    char list[256] = "";
    size_t pos = 0;
    for (size_t i = 0; i < N_COMMANDS && pos < sizeof list; i++)
        pos += (size_t)snprintf(list + pos, sizeof list - pos, "%s%s", i ? ", " : "", commands[i].name);
    fprintf(stderr, "kiln: unknown command '%s' (commands: %s)\n", cmd, list);
    return 2;
}
