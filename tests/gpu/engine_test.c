/*
 * Engine test: a whole model built for the GPU (fp32 strict, tf32, fp16),
 * run on the stored input, compared with the CPU reference on the same input;
 * then saved, loaded back and run again (same result expected bit for bit).
 *
 *   kiln_engine_test MODEL.onnx INPUT.pb [--precision fp32|tf32|fp16] [--save FILE]
 *   kiln_engine_test --light MODEL.onnx      (ONNX's dummy input: arange(n)/n)
 *
 * Exit 77 (CTest: skipped) when no GPU is present.
 */
#include "cuda/gpu.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run_engine(kiln_engine *eng, const kiln_host_tensor *in, kiln_host_tensor *out, int n_out, const char **why)
{
    kiln_context *ctx = NULL;
    kiln_err err = {{0}};
    static char msg[2048];
    void *d_in = NULL, *stream = NULL;
    void *d_out[16] = {0};
    int rc = 1;
    if (kiln_context_create(eng, &ctx)) {
        *why = kiln_last_error();
        return 1;
    }
    if (kiln_context_set_input_shape(ctx, kiln_engine_io_name(eng, 0), in->rank, in->dims) ||
        kiln__gpu_malloc(&d_in, in->nbytes, &err) || kiln__gpu_memcpy_h2d(d_in, in->data, in->nbytes, NULL, &err) ||
        kiln__gpu_sync(NULL, &err) || kiln_context_set_tensor_address(ctx, kiln_engine_io_name(eng, 0), d_in) ||
        kiln__gpu_stream_create(&stream, &err)) {
        snprintf(msg, sizeof msg, "%s%s", err.msg, kiln_context_last_error(ctx));
        goto done;
    }
    for (int o = 0; o < n_out; o++) {
        const char *name = kiln_engine_io_name(eng, 1 + o);
        int rank;
        int64_t dims[KILN_MAX_DIMS];
        if (kiln_context_get_shape(ctx, name, &rank, dims)) {
            snprintf(msg, sizeof msg, "%s", kiln_context_last_error(ctx));
            goto done;
        }
        memset(&out[o], 0, sizeof out[o]);
        snprintf(out[o].name, sizeof out[o].name, "%s", name);
        out[o].dtype = kiln_context_get_dtype(ctx, name);
        out[o].rank = rank;
        memcpy(out[o].dims, dims, sizeof dims);
        out[o].nbytes = (size_t)kiln_host_tensor_numel(&out[o]) * kiln_dtype_size(out[o].dtype);
        out[o].data = malloc(out[o].nbytes + 1);
        if (kiln__gpu_malloc(&d_out[o], out[o].nbytes + 1, &err) || kiln_context_set_tensor_address(ctx, name, d_out[o])) {
            snprintf(msg, sizeof msg, "%s%s", err.msg, kiln_context_last_error(ctx));
            goto done;
        }
    }
    /* twice: the second replays the captured graph */
    for (int it = 0; it < 2; it++)
        if (kiln_context_enqueue(ctx, stream) || kiln__gpu_sync(stream, &err)) {
            snprintf(msg, sizeof msg, "%s%s", kiln_context_last_error(ctx), err.msg);
            goto done;
        }
    for (int o = 0; o < n_out; o++)
        if (kiln__gpu_memcpy_d2h(out[o].data, d_out[o], out[o].nbytes, stream, &err) || kiln__gpu_sync(stream, &err)) {
            snprintf(msg, sizeof msg, "%s", err.msg);
            goto done;
        }
    rc = 0;
done:
    *why = msg;
    kiln__gpu_free(d_in);
    for (int o = 0; o < 16; o++) kiln__gpu_free(d_out[o]);
    kiln__gpu_stream_destroy(stream);
    kiln_context_free(ctx);
    return rc;
}

int main(int argc, char **argv)
{
    const char *model = NULL, *input = NULL, *save = NULL, *prec = "fp32";
    int light = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--precision") && i + 1 < argc) prec = argv[++i];
        else if (!strcmp(argv[i], "--save") && i + 1 < argc) save = argv[++i];
        else if (!strcmp(argv[i], "--light")) light = 1;
        else if (!model) model = argv[i];
        else input = argv[i];
    }
    if (!model || (!input && !light)) {
        fprintf(stderr, "usage: kiln_engine_test MODEL.onnx INPUT.pb [--precision fp32|tf32|fp16] [--save FILE] | --light MODEL.onnx\n");
        return 2;
    }
    const char *why = NULL;
    if (!kiln_cuda_available(&why)) {
        printf("SKIPPED: %s\n", why);
        return 77;
    }
    kiln_network *net = NULL;
    if (kiln_onnx_parse(model, NULL, &net)) {
        printf("FAIL %s: %s\n", model, kiln_last_error());
        return 1;
    }
    kiln_host_tensor in;
    memset(&in, 0, sizeof in);
    if (light) {
        kiln_dtype dt;
        int64_t dims[KILN_MAX_DIMS];
        kiln_network_input_shape(net, 0, &dt, &in.rank, dims);
        in.dtype = dt;
        int64_t n = 1;
        for (int d = 0; d < in.rank; d++) n *= (in.dims[d] = dims[d] == KILN_DIM_SYMBOLIC ? 1 : dims[d]);
        in.nbytes = (size_t)n * 4;
        in.data = malloc(in.nbytes);
        for (int64_t k = 0; k < n; k++) ((float *)in.data)[k] = (float)k / (float)n;
    } else if (kiln_tensor_read_pb(input, &in)) {
        printf("FAIL %s: %s\n", input, kiln_last_error());
        return 1;
    }
    snprintf(in.name, sizeof in.name, "%s", kiln_network_input_name(net, 0));
    int n_out = kiln_network_output_count(net);
    kiln_host_tensor ref[16], got[16], again[16];
    if (n_out > 16 || kiln_reference_run(net, 1, &in, n_out, ref)) {
        printf("FAIL %s: reference: %s\n", model, kiln_network_last_error(net));
        return 1;
    }
    kiln_builder_config *cfg;
    kiln_builder_config_create(&cfg);
    kiln_precision p = !strcmp(prec, "fp16") ? KILN_PREC_FP16 : !strcmp(prec, "tf32") ? KILN_PREC_TF32 : KILN_PREC_FP32;
    kiln_builder_config_set_precision(cfg, p);
    int64_t dims[KILN_MAX_DIMS];
    memcpy(dims, in.dims, sizeof dims);
    kiln_builder_config_set_shape_range(cfg, in.name, in.rank, dims, dims, dims);
    kiln_engine *eng = NULL;
    if (kiln_build(net, cfg, &eng)) {
        printf("FAIL %s %s: build: %s\n", model, prec, kiln_last_error());
        return 1;
    }
    char *desc = NULL;
    if (!kiln_engine_describe(eng, &desc)) {
        int gpu = 0, cpu = 0;
        for (char *line = strstr(desc, "layers ("); line; line = strchr(line + 1, '\n')) {
            if (strstr(line, " gpu ") && strchr(line + 1, '\n') > strstr(line, " gpu ")) gpu++;
            else if (strstr(line, " cpu ") && strchr(line + 1, '\n') > strstr(line, " cpu ")) {
                cpu++;
                char *nl = strchr(line + 1, '\n');
                printf("  cpu layer:%.*s\n", nl ? (int)(nl - line - 1) : 80, line + 1);
            }
        }
        printf("%s %s: %d layers on the GPU, %d on the CPU\n", model, prec, gpu, cpu);
        free(desc);
    }
    if (run_engine(eng, &in, got, n_out, &why)) {
        printf("FAIL %s %s: run: %s\n", model, prec, why);
        return 1;
    }
    int rc = 0;
    for (int o = 0; o < n_out; o++) {
        int64_t n = kiln_host_tensor_numel(&ref[o]);
        if (ref[o].dtype != KILN_DT_FLOAT || got[o].dtype != KILN_DT_FLOAT || kiln_host_tensor_numel(&got[o]) != n) {
            printf("FAIL %s %s: output %d type/shape differs\n", model, prec, o);
            rc = 1;
            continue;
        }
        const float *a = got[o].data, *b = ref[o].data;
        double max_abs = 0, sum_rel = 0, sum_abs = 0, sum_ref = 0, sse = 0, peak = 0;
        int64_t nan = 0;
        for (int64_t k = 0; k < n; k++) {
            if (isnan(a[k]) || isinf(a[k])) nan++;
            double d = fabs((double)a[k] - b[k]);
            max_abs = d > max_abs ? d : max_abs;
            sum_abs += d;
            sum_ref += fabs(b[k]);
            sum_rel += d / (fabs(b[k]) > 1e-3 ? fabs(b[k]) : 1e-3);
            sse += d * d;
            peak = fabs(b[k]) > peak ? fabs(b[k]) : peak;
        }
        double mean_rel = sum_abs / (sum_ref > 0 ? sum_ref : 1);
        double psnr = sse > 0 ? 10 * log10(peak * peak / (sse / (double)n)) : 999;
        double limit = p == KILN_PREC_FP16 ? 1e-2 : p == KILN_PREC_TF32 ? 2e-3 : 1e-5;
        bool ok = nan == 0 && mean_rel <= limit;
        printf("%s %s %s output %d: max abs %.3g, mean rel (sum|d|/sum|ref|) %.3g (limit %.0e), mean elementwise rel %.3g, PSNR %.1f dB, NaN/Inf %lld\n",
               ok ? "PASS" : "FAIL", model, prec, o, max_abs, mean_rel, limit, sum_rel / (double)n, psnr, (long long)nan);
        rc |= !ok;
    }
    if (save) {
        kiln_engine *loaded = NULL;
        if (kiln_engine_save(eng, save) || kiln_engine_load(save, &loaded)) {
            printf("FAIL %s: save/load: %s\n", model, kiln_last_error());
            rc = 1;
        } else if (run_engine(loaded, &in, again, n_out, &why)) {
            printf("FAIL %s: run after load: %s\n", model, why);
            rc = 1;
        } else {
            for (int o = 0; o < n_out; o++) {
                bool same = again[o].nbytes == got[o].nbytes && !memcmp(again[o].data, got[o].data, got[o].nbytes);
                double md = 0;
                for (int64_t k = 0; again[o].nbytes == got[o].nbytes && k < (int64_t)(got[o].nbytes / 4); k++) {
                    double d = fabs((double)((float *)again[o].data)[k] - ((float *)got[o].data)[k]);
                    md = d > md ? d : md;
                }
                printf("%s %s: engine saved and loaded, output %d %s (max diff %.3g)\n", same ? "PASS" : "FAIL", model, o, same ? "identical" : "differs", md);
                rc |= !same;
                kiln_host_tensor_release(&again[o]);
            }
        }
        kiln_engine_free(loaded);
    }
    for (int o = 0; o < n_out; o++) {
        kiln_host_tensor_release(&ref[o]);
        kiln_host_tensor_release(&got[o]);
    }
    kiln_host_tensor_release(&in);
    kiln_engine_free(eng);
    kiln_builder_config_free(cfg);
    kiln_network_free(net);
    return rc;
}
