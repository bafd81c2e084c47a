/* The kiln command-line tool: one file per subcommand, over the public API only. */
#ifndef KILN_CLI_H
#define KILN_CLI_H

#include "kiln.h"

int kiln_cmd_run(int argc, char **argv);
int kiln_cmd_inspect(int argc, char **argv);

/* Prints "kiln: <what>" to stderr; returns the exit code to use (1). */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Loads a tensor from .pb or .npy by extension. */
kiln_status cli_read_tensor(const char *path, kiln_host_tensor *out);
/* "float32[1,3,64,64]" */
void cli_format_tensor_type(const kiln_host_tensor *t, char *buf, unsigned long len);

#endif
