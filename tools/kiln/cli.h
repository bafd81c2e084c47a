/* The kiln command-line tool: one file per subcommand, over the public API only. */
#ifndef KILN_CLI_H
#define KILN_CLI_H

#include "kiln.h"
#include <stdbool.h>
#include <stddef.h>

int kiln_cmd_run(int argc, char **argv);
int kiln_cmd_inspect(int argc, char **argv);
int kiln_cmd_build(int argc, char **argv);
int kiln_cmd_exec(int argc, char **argv);
int kiln_cmd_compare(int argc, char **argv);

/* Prints "kiln: <what>" to stderr; returns the exit code to use (1). */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Loads a tensor from .pb or .npy by extension. */
kiln_status cli_read_tensor(const char *path, kiln_host_tensor *out);
/* "float32[1,3,64,64]" */
void cli_format_tensor_type(const kiln_host_tensor *t, char *buf, unsigned long len);

/* --- GPU commands: shape and builder flags (shape_flags.c) -------------------------- */

#define CLI_MAX_IO 64

/* One "name:1x3x64x64" entry of a shape flag. */
typedef struct cli_shape {
    char name[256];
    int rank;
    int64_t dims[KILN_MAX_DIMS];
} cli_shape;

typedef struct cli_shape_list {
    cli_shape v[CLI_MAX_IO];
    int n;
} cli_shape_list;

typedef struct cli_layer_precision {
    char name[256];
    kiln_precision p;
} cli_layer_precision;

/* Builder flags shared by build, exec and compare. */
typedef struct cli_build_opts {
    int fp16, no_tf32, best, verbose;
    const char *timing_cache;
    cli_shape_list shapes, min, opt, max;
    cli_layer_precision *pins;
    int n_pins;
    const char *first_build_flag; /* for "has no effect with --loadEngine" */
} cli_build_opts;

/* "--name=value" or "--name value": 1 and *value set when argv[*i] is that flag (advancing *i
 * past a separate value), 0 when it is another flag, -1 after printing an error. */
int cli_flag_value(int argc, char **argv, int *i, const char *name, const char **value);
/* A flag without a value: 1 when argv[i] is exactly it, -1 (error printed) for "name=...", else 0. */
int cli_flag_bool(const char *arg, const char *name);
/* Parses a strictly positive integer / non-negative finite number; error printed naming the flag. */
int cli_parse_int(const char *flag, const char *s, long long lo, long long hi, long long *out);
int cli_parse_double(const char *flag, const char *s, double *out);
/* Splits a comma-separated trtexec list entry "name:value" (name may be in single quotes).
 * last_colon: split at the last ':' (shapes), else the first (file names). Returns 0 or prints. */
int cli_split_entry(const char *flag, const char *entry, bool last_colon, char *name, size_t name_len,
                    const char **value);
/* Appends the entries of a shape flag ("in:1x3x64x64,mask:1x1x64x64") to list; 0 or error printed. */
int cli_parse_shapes(const char *flag, const char *spec, cli_shape_list *list);
const cli_shape *cli_shape_find(const cli_shape_list *list, const char *name);
/* "1x3x64x64" into buf */
void cli_format_dims(int rank, const int64_t *dims, char *buf, size_t len);

/* Consumes argv[*i] when it is a builder flag: 1 consumed, 0 not one, -1 error printed. */
int cli_build_flag(cli_build_opts *o, int argc, char **argv, int *i);
void cli_build_opts_free(cli_build_opts *o);
/* Checks the shape flags against the model's inputs (names, ranks, fixed dims, min <= opt <= max,
 * --shapes inside the range) before any GPU work; inputs[] (may be NULL) are loaded input
 * tensors whose shapes fix dynamic inputs that no flag names. 0 or error printed. */
int cli_build_check(cli_build_opts *o, const kiln_network *net, const kiln_host_tensor *inputs, int n_inputs);
/* Builds (after cli_build_check) and saves when save_path is set; 0 or error printed
 * (when errbuf is set, the error goes there instead of being printed). */
int cli_build_engine(const cli_build_opts *o, const kiln_network *net, const char *save_path, kiln_engine **out,
                     char *errbuf, size_t errlen);
/* 0 when a CUDA device can be used, else prints "kiln: no CUDA device: <why>" and returns 1. */
int cli_require_gpu(void);
/* Reads --loadInputs entries ("name:file[,name:file]" or a directory of input_N.pb/.npy) into
 * tensors named after the inputs; names are checked against names[]. 0 or error printed. */
int cli_load_inputs(const char *spec, const char *const *names, int n_names, kiln_host_tensor *out, int *n_out);

/* --- GPU commands: running an engine (cmd_exec.c) ------------------------------------- */

typedef struct cli_binding {
    const char *name;
    int is_input;
    kiln_dtype dtype;
    int rank;
    int64_t dims[KILN_MAX_DIMS];
    size_t bytes;
    void *dev;        /* device buffer */
    void *pinned;     /* page-locked host copy (inputs: the values; outputs: results) */
    kiln_host_tensor host; /* inputs: values given to the engine (and the CPU reference) */
} cli_binding;

typedef struct cli_engine_run {
    kiln_engine *eng;
    kiln_context *ctx;
    void *stream;
    cli_binding *b; /* one per engine input and output, in engine order */
    int n;
} cli_engine_run;

/* Creates a context, sets input shapes (--shapes entries, else the loaded tensor's shape, else
 * the engine's default), allocates device and pinned buffers, fills inputs (loaded values or
 * random non-zero values) and copies them to the device. 0 or error printed. */
int cli_engine_setup(cli_engine_run *r, kiln_engine *eng, const cli_shape_list *shapes,
                     const kiln_host_tensor *loaded, int n_loaded);
/* One inference: enqueue, outputs back to the pinned buffers, synchronize. 0 or error printed. */
int cli_engine_infer(cli_engine_run *r);
/* Output k (k-th output in engine order) as a host tensor (a copy; release with kiln_host_tensor_release). */
int cli_engine_output(const cli_engine_run *r, int k, kiln_host_tensor *out);
void cli_engine_release(cli_engine_run *r);

/* float16 bits <-> float (round to nearest even), for tensors the CLI fills or reads. */
float cli_f16_to_f32(uint16_t h);
uint16_t cli_f32_to_f16(float f);
/* Element i of a host tensor as double (NaN for types that have no numeric value). */
double cli_elem_f64(const kiln_host_tensor *t, int64_t i);

#endif
