/*
 * Model tests: a whole model on the reference backend against a stored output.
 *
 *   kiln_model_test --fixture DIR [--max-abs E]    DIR/model.onnx + DIR/test_data_set_0
 *   kiln_model_test --light MODEL.onnx EXPECTED.pb  ONNX's light models: the input is
 *       arange(n).reshape(shape) / n as float32, symbolic dims set to 1 (ONNX's runner).
 */
#include "kiln.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, const char *detail)
{
    printf("FAIL %s: %s\n", what, detail);
    return 1;
}

static int compare(const char *what, const kiln_host_tensor *got, const kiln_host_tensor *exp, double max_abs,
                   double rtol)
{
    if (got->dtype != KILN_DT_FLOAT || exp->dtype != KILN_DT_FLOAT) return fail(what, "outputs are not float32");
    if (got->rank != exp->rank) return fail(what, "rank differs");
    for (int i = 0; i < got->rank; i++)
        if (got->dims[i] != exp->dims[i]) return fail(what, "shape differs");
    int64_t n = kiln_host_tensor_numel(exp), bad = 0;
    double worst = 0;
    const float *g = got->data, *e = exp->data;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)g[i] - (double)e[i]);
        if (!(d <= worst)) worst = d;
        if (!(d <= max_abs + rtol * fabs((double)e[i]))) bad++;
    }
    printf("%s %s: %lld values, max abs error %.3g (allowed %.3g + %.3g*|expected|)\n", bad ? "FAIL" : "PASS", what,
           (long long)n, worst, max_abs, rtol);
    return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "--fixture")) {
        double max_abs = argc >= 5 && !strcmp(argv[3], "--max-abs") ? atof(argv[4]) : 1e-4;
        char path[4096];
        snprintf(path, sizeof path, "%s/model.onnx", argv[2]);
        kiln_network *net = NULL;
        if (kiln_onnx_parse(path, NULL, &net)) return fail(argv[2], kiln_last_error());
        kiln_host_tensor in, out, exp;
        memset(&out, 0, sizeof out);
        snprintf(path, sizeof path, "%s/test_data_set_0/input_0.pb", argv[2]);
        if (kiln_tensor_read_pb(path, &in)) return fail(path, kiln_last_error());
        in.name[0] = 0;
        snprintf(path, sizeof path, "%s/test_data_set_0/output_0.pb", argv[2]);
        if (kiln_tensor_read_pb(path, &exp)) return fail(path, kiln_last_error());
        if (kiln_reference_run(net, 1, &in, 1, &out)) return fail(argv[2], kiln_network_last_error(net));
        int rc = compare(argv[2], &out, &exp, max_abs, 0);
        kiln_host_tensor_release(&in);
        kiln_host_tensor_release(&out);
        kiln_host_tensor_release(&exp);
        kiln_network_free(net);
        return rc;
    }
    if (argc == 4 && !strcmp(argv[1], "--light")) {
        kiln_network *net = NULL;
        if (kiln_onnx_parse(argv[2], NULL, &net)) return fail(argv[2], kiln_last_error());
        int n_in = kiln_network_input_count(net);
        kiln_host_tensor *in = calloc((size_t)n_in + 1, sizeof *in);
        for (int i = 0; i < n_in; i++) {
            kiln_dtype dt;
            int rank;
            int64_t dims[KILN_MAX_DIMS];
            kiln_network_input_shape(net, i, &dt, &rank, dims);
            if (dt != KILN_DT_FLOAT) return fail(argv[2], "non-float input");
            in[i].dtype = dt;
            in[i].rank = rank;
            int64_t n = 1;
            for (int d = 0; d < rank; d++) {
                in[i].dims[d] = dims[d] == KILN_DIM_SYMBOLIC ? 1 : dims[d];
                n *= in[i].dims[d];
            }
            float *p = malloc((size_t)n * sizeof *p);
            for (int64_t k = 0; k < n; k++) p[k] = (float)k / (float)n;
            in[i].data = p;
            in[i].nbytes = (size_t)n * sizeof *p;
        }
        kiln_host_tensor out, exp;
        memset(&out, 0, sizeof out);
        if (kiln_tensor_read_pb(argv[3], &exp)) return fail(argv[3], kiln_last_error());
        if (kiln_reference_run(net, n_in, in, 1, &out)) return fail(argv[2], kiln_network_last_error(net));
        /* ONNX's runner checks these with rtol 1e-3 and atol 1e-7 scaled to the output range */
        int rc = compare(argv[2], &out, &exp, 1e-5, 1e-3);
        for (int i = 0; i < n_in; i++) kiln_host_tensor_release(&in[i]);
        free(in);
        kiln_host_tensor_release(&out);
        kiln_host_tensor_release(&exp);
        kiln_network_free(net);
        return rc;
    }
    fprintf(stderr, "usage: kiln_model_test --fixture DIR [--max-abs E] | --light MODEL.onnx EXPECTED.pb\n");
    return 2;
}
