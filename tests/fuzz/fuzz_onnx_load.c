/*
 * libFuzzer target for the ONNX loader: the bytes become a model file, which is
 * parsed, shape-inferred (constant folding runs CPU kernels on small constants),
 * described and checked for support, then freed. Any crash, sanitizer report or
 * leak is a bug: bad files must only ever produce an error status.
 *
 * The loader takes a path, so each input is written to a file in a private
 * folder (under /dev/shm when it exists, to keep the disk out of the loop).
 * External data resolves inside that folder only. When KILN_FUZZ_EXTERNAL_DATA
 * names a file (compile-time default or environment), it is copied there as
 * "model.onnx.data", so dynamo-exported seeds load their weights too.
 *
 * Every model that loads is also written back with the ONNX writer (the
 * surgeon's kiln_onnx_write) and that file parsed again: whatever the importer
 * accepts, the writer must turn into a file the importer accepts again.
 */
#include "kiln.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char model_path[4096];
static char written_path[4096];

static int copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    if (!in) return -1;
    FILE *out = fopen(to, "wb");
    if (!out) {
        fclose(in);
        return -1;
    }
    char buf[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) rc = -1;
    fclose(in);
    if (fclose(out) != 0) rc = -1;
    return rc;
}

static char work_dir[4096];

static void remove_work_dir(void)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/model.onnx", work_dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/model.onnx.data", work_dir);
    unlink(p);
    unlink(written_path);
    rmdir(work_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    snprintf(work_dir, sizeof work_dir, "%s/kiln-fuzz.XXXXXX", base);
    if (!mkdtemp(work_dir)) {
        perror("fuzz_onnx_load: mkdtemp");
        abort();
    }
    atexit(remove_work_dir);
    snprintf(model_path, sizeof model_path, "%s/model.onnx", work_dir);
    snprintf(written_path, sizeof written_path, "%s/written.onnx", work_dir);

    const char *data = getenv("KILN_FUZZ_EXTERNAL_DATA");
#ifdef KILN_FUZZ_DEFAULT_EXTERNAL_DATA
    if (!data) data = KILN_FUZZ_DEFAULT_EXTERNAL_DATA;
#endif
    if (data && *data) {
        char to[4200];
        snprintf(to, sizeof to, "%s/model.onnx.data", work_dir);
        if (copy_file(data, to) != 0) fprintf(stderr, "fuzz_onnx_load: cannot copy '%s' (external-data seeds will not load)\n", data);
    }
    return 0;
}

static void touch_network(kiln_network *net)
{
    static char buf[65536];
    (void)kiln_network_infer_shapes(net);
    for (int i = 0; i < kiln_network_input_count(net); i++) {
        kiln_dtype dt;
        int rank;
        int64_t dims[KILN_MAX_DIMS];
        (void)kiln_network_input_shape(net, i, &dt, &rank, dims);
        (void)kiln_network_describe_tensor(net, kiln_network_input_name(net, i), buf, sizeof buf);
    }
    for (int i = 0; i < kiln_network_output_count(net); i++)
        (void)kiln_network_describe_tensor(net, kiln_network_output_name(net, i), buf, sizeof buf);
    int n = kiln_network_node_count(net);
    size_t sum = 0;
    for (int i = 0; i < n; i++) {
        /* Read every string so ASan sees any that is not terminated. */
        sum += strlen(kiln_network_node_name(net, i)) + strlen(kiln_network_node_op(net, i));
        const char *dom = kiln_network_node_domain(net, i);
        if (dom) sum += strlen(dom);
    }
    (void)sum;
    (void)kiln_network_unsupported_report(net, buf, sizeof buf);
    /* A tiny buffer must be handled too (truncation, not overflow). */
    char small[8];
    (void)kiln_network_unsupported_report(net, small, sizeof small);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fopen(model_path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();

    kiln_network *net = NULL;
    kiln_onnx_options opts = {.max_file_bytes = 64u << 20};
    kiln_status st = kiln_onnx_parse(model_path, &opts, &net);
    if (st == KILN_OK) {
        if (!net) abort(); /* success must give a network */
        touch_network(net);
        kiln_onnx_write_options wo = {.struct_size = sizeof wo};
        if (kiln_onnx_write(net, written_path, &wo) == KILN_OK) {
            kiln_network *back = NULL;
            if (kiln_onnx_parse(written_path, &opts, &back) != KILN_OK) {
                fprintf(stderr, "fuzz_onnx_load: the written model does not load again: %s\n", kiln_last_error());
                abort();
            }
            kiln_network_free(back);
        }
        kiln_network_free(net);
    } else {
        if (net) abort(); /* failure must leave *out NULL */
        if (!kiln_last_error()[0]) abort(); /* and say why */
    }
    return 0;
}
