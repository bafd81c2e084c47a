/* Model test helpers: see compare.h. */
#include "compare.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int test_fail(const char *what, const char *detail)
{
    printf("FAIL %s: %s\n", what, detail);
    return 1;
}

int test_compare(const char *what, const kiln_host_tensor *got, const kiln_host_tensor *exp, double max_abs,
                 double rtol)
{
    if (got->dtype != KILN_DT_FLOAT || exp->dtype != KILN_DT_FLOAT) return test_fail(what, "outputs are not float32");
    if (got->rank != exp->rank) return test_fail(what, "rank differs");
    for (int i = 0; i < got->rank; i++)
        if (got->dims[i] != exp->dims[i]) return test_fail(what, "shape differs");
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

void test_input_shape(const kiln_network *net, int i, kiln_dtype *dt, int *rank, int64_t dims[KILN_MAX_DIMS])
{
    kiln_network_input_shape(net, i, dt, rank, dims);
    for (int d = 0; d < *rank; d++)
        if (dims[d] == KILN_DIM_SYMBOLIC) dims[d] = 1;
}

int test_run_fixture(kiln_network *net, const char *dir, double max_abs)
{
    char path[4096];
    kiln_host_tensor in, out, exp;
    memset(&in, 0, sizeof in);
    memset(&out, 0, sizeof out);
    memset(&exp, 0, sizeof exp);
    int rc = 1;
    snprintf(path, sizeof path, "%s/test_data_set_0/input_0.pb", dir);
    if (kiln_tensor_read_pb(path, &in)) {
        test_fail(path, kiln_last_error());
        goto done;
    }
    in.name[0] = 0;
    snprintf(path, sizeof path, "%s/test_data_set_0/output_0.pb", dir);
    if (kiln_tensor_read_pb(path, &exp)) {
        test_fail(path, kiln_last_error());
        goto done;
    }
    if (kiln_reference_run(net, 1, &in, 1, &out)) {
        test_fail(dir, kiln_network_last_error(net));
        goto done;
    }
    rc = test_compare(dir, &out, &exp, max_abs, 0);
done:
    kiln_host_tensor_release(&in);
    kiln_host_tensor_release(&out);
    kiln_host_tensor_release(&exp);
    kiln_network_free(net);
    return rc;
}

int test_run_light(kiln_network *net, const char *what, const char *expected_pb)
{
    int n_in = kiln_network_input_count(net), rc = 1;
    kiln_host_tensor *in = calloc((size_t)n_in + 1, sizeof *in), out, exp;
    memset(&out, 0, sizeof out);
    memset(&exp, 0, sizeof exp);
    if (!in) {
        test_fail(what, "out of memory");
        goto done;
    }
    for (int i = 0; i < n_in; i++) {
        kiln_dtype dt;
        test_input_shape(net, i, &dt, &in[i].rank, in[i].dims);
        if (dt != KILN_DT_FLOAT) {
            test_fail(what, "non-float input");
            goto done;
        }
        in[i].dtype = dt;
        int64_t n = kiln_host_tensor_numel(&in[i]);
        float *p = malloc((size_t)n * sizeof *p + 1);
        if (!p) {
            test_fail(what, "out of memory");
            goto done;
        }
        for (int64_t k = 0; k < n; k++) p[k] = (float)k / (float)n;
        in[i].data = p;
        in[i].nbytes = (size_t)n * sizeof *p;
    }
    if (kiln_tensor_read_pb(expected_pb, &exp)) {
        test_fail(expected_pb, kiln_last_error());
        goto done;
    }
    if (kiln_reference_run(net, n_in, in, 1, &out)) {
        test_fail(what, kiln_network_last_error(net));
        goto done;
    }
    /* ONNX's runner checks these with rtol 1e-3 and atol 1e-7 scaled to the output range */
    rc = test_compare(what, &out, &exp, 1e-5, 1e-3);
done:
    for (int i = 0; in && i < n_in; i++) kiln_host_tensor_release(&in[i]);
    free(in);
    kiln_host_tensor_release(&out);
    kiln_host_tensor_release(&exp);
    kiln_network_free(net);
    return rc;
}
