/*
 * Folds Resize scales into an initializer with the graph editing API
 * (include/kiln_graph.h) — what people did in Python with onnx-graphsurgeon
 * when TensorRT's parser said "Resize scales must be an initializer!".
 *
 * An opset-11 export without constant folding computes Resize's scales as a
 * Concat of Constants (often through Unsqueeze and Cast). For every Resize
 * whose scales come from a Concat, this program walks up from the Concat to
 * check that only constants feed it, computes the value, adds it as one float
 * initializer, points the Resize at it, and removes what is left unused.
 *
 *   example_fix_resize_scales MODEL.onnx [-o OUT.onnx] [--check FIXTURE_DIR]
 *
 * -o writes the edited model with kiln_onnx_write. --check runs the edited
 * graph (read back from OUT when -o is given) on the CPU reference with the
 * fixture's test_data_set_0/input_0.pb and compares it with output_0.pb.
 */
#include "kiln.h"
#include "kiln_graph.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * True when tensor `t` is a constant: an initializer, a Constant node's output,
 * or the output of an Unsqueeze/Squeeze/Cast/Reshape/Identity whose inputs are
 * all constants. `why` gets the reason when it is not.
 */
static int from_constants(const kiln_network *net, const char *t, int depth, char *why, size_t len)
{
    kiln_graph_tensor_info info;
    if (depth > 32) return snprintf(why, len, "'%s': too deep", t), 0;
    if (kiln_graph_tensor_info_get(net, t, &info) != KILN_OK) return snprintf(why, len, "%s", kiln_last_error()), 0;
    if (info.is_constant) return 1;
    if (info.producer < 0) return snprintf(why, len, "'%s' is a graph input", t), 0;
    const char *op = kiln_graph_node_op(net, info.producer);
    if (!strcmp(op, "Constant")) return 1;
    static const char *const pass_through[] = {"Unsqueeze", "Squeeze", "Cast", "Reshape", "Identity", "Concat"};
    int ok = 0;
    for (size_t i = 0; i < sizeof pass_through / sizeof *pass_through; i++) ok |= !strcmp(op, pass_through[i]);
    if (!ok) return snprintf(why, len, "'%s' is computed by %s node '%s'", t, op, kiln_graph_node_name(net, info.producer)), 0;
    for (int j = 0; j < kiln_graph_node_input_count(net, info.producer); j++) {
        const char *in = kiln_graph_node_input(net, info.producer, j);
        if (in[0] && !from_constants(net, in, depth + 1, why, len)) return 0;
    }
    return 1;
}

/* The scales as float32 (Resize wants float scales whatever the Concat computed in). */
static int to_float(const kiln_host_tensor *v, float *out, int64_t max, int64_t *n)
{
    int64_t cnt = kiln_host_tensor_numel(v);
    if (cnt < 0 || cnt > max) return -1;
    for (int64_t i = 0; i < cnt; i++) {
        switch (v->dtype) {
        case KILN_DT_FLOAT: out[i] = ((const float *)v->data)[i]; break;
        case KILN_DT_DOUBLE: out[i] = (float)((const double *)v->data)[i]; break;
        case KILN_DT_INT64: out[i] = (float)((const int64_t *)v->data)[i]; break;
        case KILN_DT_INT32: out[i] = (float)((const int32_t *)v->data)[i]; break;
        default: return -1;
        }
    }
    *n = cnt;
    return 0;
}

/* Replaces the scales of Resize node `r` (scales in input `slot`); 1 done, 0 skipped, -1 error. */
static int fix_resize(kiln_network *net, int r, int slot)
{
    const char *rname = kiln_graph_node_name(net, r);
    if (kiln_graph_node_input_count(net, r) <= slot) return 0;
    const char *scales = kiln_graph_node_input(net, r, slot);
    if (!scales[0]) return 0; /* sizes used instead */
    int concat = kiln_graph_producer(net, scales);
    if (concat < 0 || strcmp(kiln_graph_node_op(net, concat), "Concat")) {
        printf("  %s: scales '%s' do not come from a Concat; left alone\n", rname, scales);
        return 0;
    }
    char why[512] = "";
    if (!from_constants(net, scales, 0, why, sizeof why)) {
        printf("  %s: scales are not constant (%s); left alone\n", rname, why);
        return 0;
    }
    kiln_host_tensor v;
    if (kiln_graph_evaluate(net, scales, &v) != KILN_OK) {
        fprintf(stderr, "fix_resize_scales: %s: %s\n", rname, kiln_last_error());
        return -1;
    }
    float f[KILN_MAX_DIMS * 2];
    int64_t n = 0;
    int bad = to_float(&v, f, KILN_MAX_DIMS * 2, &n);
    kiln_host_tensor_release(&v);
    if (bad) {
        fprintf(stderr, "fix_resize_scales: %s: scales of an unexpected type or size\n", rname);
        return -1;
    }
    /* one new initializer, named after the Resize (made unique) */
    char name[300];
    snprintf(name, sizeof name, "%.250s_scales", rname);
    for (int k = 1; kiln_graph_find_tensor(net, name) >= 0; k++) snprintf(name, sizeof name, "%.250s_scales_%d", rname, k);
    kiln_host_tensor c = {.dtype = KILN_DT_FLOAT, .rank = 1, .dims = {n}, .data = f, .nbytes = (size_t)n * sizeof(float)};
    if (kiln_graph_add_constant(net, name, &c) != KILN_OK || kiln_graph_set_node_input(net, r, slot, name) != KILN_OK) {
        fprintf(stderr, "fix_resize_scales: %s: %s\n", rname, kiln_network_last_error(net));
        return -1;
    }
    printf("  %s: scales [", rname);
    for (int64_t i = 0; i < n; i++) printf("%s%g", i ? ", " : "", (double)f[i]);
    printf("] from Concat '%s' -> initializer '%s'\n", kiln_graph_node_name(net, concat), name);
    return 1;
}

static int check_fixture(kiln_network *net, const char *dir)
{
    char path[4096];
    kiln_host_tensor in, want, got;
    memset(&got, 0, sizeof got);
    snprintf(path, sizeof path, "%s/test_data_set_0/input_0.pb", dir);
    if (kiln_tensor_read_pb(path, &in)) return fprintf(stderr, "fix_resize_scales: %s\n", kiln_last_error()), 1;
    snprintf(path, sizeof path, "%s/test_data_set_0/output_0.pb", dir);
    if (kiln_tensor_read_pb(path, &want)) {
        kiln_host_tensor_release(&in);
        return fprintf(stderr, "fix_resize_scales: %s\n", kiln_last_error()), 1;
    }
    in.name[0] = 0; /* by position */
    int rc = 1;
    if (kiln_network_output_count(net) < 1 || kiln_reference_run(net, 1, &in, 1, &got) != KILN_OK) {
        fprintf(stderr, "fix_resize_scales: run: %s\n", kiln_network_last_error(net));
    } else if (got.nbytes != want.nbytes || got.dtype != KILN_DT_FLOAT || want.dtype != KILN_DT_FLOAT) {
        fprintf(stderr, "fix_resize_scales: output has %zu bytes, the fixture %zu\n", got.nbytes, want.nbytes);
    } else {
        const float *g = got.data, *w = want.data;
        size_t n = got.nbytes / sizeof(float), bad = 0;
        double worst = 0;
        for (size_t i = 0; i < n; i++) {
            double d = fabs((double)g[i] - w[i]);
            if (d > worst) worst = d;
            if (!(d <= 1e-5 + 1e-3 * fabs((double)w[i]))) bad++;
        }
        printf("check: %zu values, max abs error %.3g, %zu outside tolerance -> %s\n", n, worst, bad, bad ? "FAIL" : "PASS");
        rc = bad ? 1 : 0;
    }
    kiln_host_tensor_release(&in);
    kiln_host_tensor_release(&want);
    kiln_host_tensor_release(&got);
    return rc;
}

int main(int argc, char **argv)
{
    const char *model = NULL, *out = NULL, *fixture = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--check") && i + 1 < argc) fixture = argv[++i];
        else if (!model && argv[i][0] != '-') model = argv[i];
        else model = NULL, i = argc;
    }
    if (!model) {
        fprintf(stderr, "usage: example_fix_resize_scales MODEL.onnx [-o OUT.onnx] [--check FIXTURE_DIR]\n");
        return 2;
    }
    kiln_network *net = NULL;
    if (kiln_onnx_parse(model, NULL, &net) != KILN_OK) {
        fprintf(stderr, "fix_resize_scales: %s\n", kiln_last_error());
        return 1;
    }
    int nodes_before = kiln_graph_node_count(net);
    /* Resize's scales input: slot 2 from opset 11 (X, roi, scales, sizes), slot 1 in opset 10 */
    int slot = kiln_network_opset(net) >= 11 ? 2 : 1;
    /* collect the names first: edits renumber nodes */
    int n_resize = 0;
    char **resizes = calloc((size_t)nodes_before + 1, sizeof *resizes);
    for (int i = 0; resizes && i < nodes_before; i++)
        if (!strcmp(kiln_graph_node_op(net, i), "Resize") && !kiln_graph_node_domain(net, i)[0])
            resizes[n_resize++] = strdup(kiln_graph_node_name(net, i));
    int fixed = 0, rc = 0;
    printf("%s: %d nodes, %d Resize\n", model, nodes_before, n_resize);
    for (int i = 0; i < n_resize && !rc; i++) {
        int r = resizes[i] ? kiln_graph_find_node(net, resizes[i]) : -1;
        int k = r >= 0 ? fix_resize(net, r, slot) : -1;
        if (k < 0) rc = 1;
        else fixed += k;
    }
    int rn = 0, rt = 0;
    if (!rc && kiln_graph_cleanup(net, 0, &rn, &rt) != KILN_OK) {
        fprintf(stderr, "fix_resize_scales: cleanup: %s\n", kiln_network_last_error(net));
        rc = 1;
    }
    if (!rc) {
        printf("fixed %d Resize; cleanup removed %d nodes and %d tensors; %d -> %d nodes\n", fixed, rn, rt, nodes_before,
               kiln_graph_node_count(net));
        if (fixed == 0 && n_resize > 0) printf("no Resize had Concat scales\n");
    }
    /* the model as written, read back: what another tool will see */
    kiln_network *check = net;
    if (!rc && out) {
        if (kiln_onnx_write(net, out, NULL) != KILN_OK) {
            fprintf(stderr, "fix_resize_scales: writing %s: %s\n", out, kiln_last_error());
            rc = 1;
        } else if (kiln_onnx_parse(out, NULL, &check) != KILN_OK) {
            fprintf(stderr, "fix_resize_scales: reading back %s: %s\n", out, kiln_last_error());
            check = NULL;
            rc = 1;
        } else {
            printf("wrote %s\n", out);
        }
    }
    /* every Resize we looked at now reads an initializer */
    for (int i = 0; !rc && i < n_resize; i++) {
        int r = kiln_graph_find_node(check, resizes[i]);
        kiln_graph_tensor_info info;
        const char *sc = r >= 0 && kiln_graph_node_input_count(check, r) > slot ? kiln_graph_node_input(check, r, slot) : "";
        int is_init = sc[0] && kiln_graph_tensor_info_get(check, sc, &info) == KILN_OK && info.is_constant;
        printf("  %s: scales '%s' %s\n", resizes[i], sc, is_init ? "is an initializer" : "is NOT an initializer");
        if (!is_init && sc[0]) rc = 1;
    }
    if (!rc && fixture) rc = check_fixture(check, fixture);
    if (check != net) kiln_network_free(check);
    for (int i = 0; i < n_resize; i++) free(resizes[i]);
    free(resizes);
    kiln_network_free(net);
    return rc;
}
