/*
 * Weights in run-time form (engine file v3), on the GPU: a model is built, saved and loaded
 * back; loading is timed (whole kiln_engine_load, and the file read alone); several contexts
 * are made on the loaded engine and run on the same input: their outputs must be identical
 * and the built engine's too, and every constant a context reads on the device must be the
 * engine's one shared copy (no context converts or uploads a constant of its own).
 *
 *   kiln_weights_test MODEL.onnx INPUT.pb [--precision fp32|tf32|fp16] [--contexts N] [--file F]
 *
 * Exit 77 (CTest: skipped) when no GPU is present.
 */
#include "runtime/context.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Runs ctx on in; out gets output 0 on the host (malloc'ed). */
static int run(kiln_engine *eng, kiln_context *ctx, const kiln_host_tensor *in, void **out, size_t *out_bytes, char *why, size_t wl)
{
    kiln_err err = {{0}};
    void *d_in = NULL, *d_out = NULL, *stream = NULL;
    const char *oname = kiln_engine_io_name(eng, 1);
    int rank, rc = 1;
    int64_t dims[KILN_MAX_DIMS];
    *out = NULL;
    if (kiln_context_set_input_shape(ctx, kiln_engine_io_name(eng, 0), in->rank, in->dims) ||
        kiln__gpu_malloc(&d_in, in->nbytes, &err) || kiln__gpu_memcpy_h2d(d_in, in->data, in->nbytes, NULL, &err) ||
        kiln__gpu_sync(NULL, &err) || kiln_context_set_tensor_address(ctx, kiln_engine_io_name(eng, 0), d_in) ||
        kiln__gpu_stream_create(&stream, &err) || kiln_context_get_shape(ctx, oname, &rank, dims)) {
        snprintf(why, wl, "%s%s", err.msg, kiln_context_last_error(ctx));
        goto done;
    }
    size_t n = kiln_dtype_size(kiln_context_get_dtype(ctx, oname));
    for (int d = 0; d < rank; d++) n *= (size_t)dims[d];
    *out_bytes = n;
    *out = malloc(n + 1);
    if (kiln__gpu_malloc(&d_out, n + 1, &err) || kiln_context_set_tensor_address(ctx, oname, d_out)) {
        snprintf(why, wl, "%s%s", err.msg, kiln_context_last_error(ctx));
        goto done;
    }
    for (int it = 0; it < 2; it++)
        if (kiln_context_enqueue(ctx, stream) || kiln__gpu_sync(stream, &err)) {
            snprintf(why, wl, "%s%s", kiln_context_last_error(ctx), err.msg);
            goto done;
        }
    if (kiln__gpu_memcpy_d2h(*out, d_out, n, stream, &err) || kiln__gpu_sync(stream, &err)) {
        snprintf(why, wl, "%s", err.msg);
        goto done;
    }
    rc = 0;
done:
    kiln__gpu_free(d_in);
    kiln__gpu_free(d_out);
    kiln__gpu_stream_destroy(stream);
    return rc;
}

int main(int argc, char **argv)
{
    const char *model = NULL, *input = NULL, *prec = "fp16", *file = "/tmp/kiln_weights_test.kiln";
    int n_ctx = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--precision") && i + 1 < argc) prec = argv[++i];
        else if (!strcmp(argv[i], "--contexts") && i + 1 < argc) n_ctx = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--file") && i + 1 < argc) file = argv[++i];
        else if (!model) model = argv[i];
        else if (!input) input = argv[i];
    }
    if (!model || !input || n_ctx < 1 || n_ctx > 16) {
        fprintf(stderr, "usage: kiln_weights_test MODEL.onnx INPUT.pb [--precision fp32|tf32|fp16] [--contexts N] [--file F]\n");
        return 2;
    }
    const char *why_not = NULL;
    if (!kiln_cuda_available(&why_not)) {
        printf("SKIPPED: %s\n", why_not);
        return 77;
    }
    kiln_network *net = NULL;
    kiln_host_tensor in;
    memset(&in, 0, sizeof in);
    if (kiln_onnx_parse(model, NULL, &net) || kiln_tensor_read_pb(input, &in)) {
        printf("FAIL %s: %s\n", model, kiln_last_error());
        return 1;
    }
    snprintf(in.name, sizeof in.name, "%s", kiln_network_input_name(net, 0));
    kiln_builder_config *cfg;
    kiln_builder_config_create(&cfg);
    kiln_precision p = !strcmp(prec, "fp16") ? KILN_PREC_FP16 : !strcmp(prec, "tf32") ? KILN_PREC_TF32 : KILN_PREC_FP32;
    kiln_builder_config_set_precision(cfg, p);
    kiln_builder_config_set_shape_range(cfg, in.name, in.rank, in.dims, in.dims, in.dims);
    kiln_engine *built = NULL, *eng = NULL;
    char why[2048] = "";
    int rc = 0;
    if (kiln_build(net, cfg, &built) || kiln_engine_save(built, file)) {
        printf("FAIL %s %s: build/save: %s\n", model, prec, kiln_last_error());
        return 1;
    }
    /* load time: best of 3 (the first pays for the file cache and the CUDA context warm-up) */
    double best = 1e30, best_read = 1e30;
    for (int k = 0; k < 3; k++) {
        kiln_engine_free(eng);
        eng = NULL;
        double t0 = now_ms();
        if (kiln_engine_load(file, &eng)) {
            printf("FAIL %s %s: load: %s\n", model, prec, kiln_last_error());
            return 1;
        }
        double t = now_ms() - t0;
        best = t < best ? t : best;
        kiln_engine_header h;
        kiln_network *n2 = NULL;
        kiln_layer_plan *pl = NULL;
        kiln_shape_profile *pr = NULL;
        int np = 0;
        kiln_weights w;
        kiln_err err = {{0}};
        t0 = now_ms();
        kiln_status s = kiln__engine_file_read_w(file, &h, &n2, &pl, &pr, &np, &w, &err);
        t = now_ms() - t0;
        best_read = t < best_read ? t : best_read;
        if (s) printf("FAIL read: %s\n", err.msg);
        kiln_network_free(n2);
        free(pl);
        free(pr);
        kiln__weights_free(&w);
    }
    int only = 0;
    for (int t = 0; t < eng->net->n_tensors; t++) only += eng->w.no_host && eng->w.no_host[t];
    FILE *f = fopen(file, "rb");
    long fsize = 0;
    if (f && !fseek(f, 0, SEEK_END)) fsize = ftell(f);
    if (f) fclose(f);
    printf("%s %s: file %.2f MiB, weights %d forms %.2f MiB (%d constants only in run-time form); load %.1f ms (file read+check+parse %.1f ms)\n",
           model, prec, (double)fsize / 1048576.0, eng->w.n_forms, (double)eng->w.bytes / 1048576.0, only, best, best_read);

    void *ref = NULL;
    size_t ref_n = 0;
    kiln_context *c0 = NULL;
    if (kiln_context_create(built, &c0) || run(built, c0, &in, &ref, &ref_n, why, sizeof why)) {
        printf("FAIL %s %s: run of the built engine: %s %s\n", model, prec, why, kiln_last_error());
        return 1;
    }
    kiln_context_free(c0);
    kiln_context *ctx[16] = {0};
    int const_reps = 0, own = 0;
    for (int c = 0; c < n_ctx; c++) {
        void *got = NULL;
        size_t got_n = 0;
        if (kiln_context_create(eng, &ctx[c]) || run(eng, ctx[c], &in, &got, &got_n, why, sizeof why)) {
            printf("FAIL %s %s: context %d: %s %s\n", model, prec, c, why, kiln_last_error());
            rc = 1;
            free(got);
            continue;
        }
        bool same = got_n == ref_n && !memcmp(got, ref, ref_n);
        if (!same) {
            printf("FAIL %s %s: context %d of the loaded engine differs from the built engine\n", model, prec, c);
            rc = 1;
        }
        free(got);
        /* every device copy of a constant is the engine's */
        const kiln_context *x = ctx[c];
        for (int r = 0; r < x->n_reps; r++) {
            const kiln_rep *rep = &x->reps[r];
            if (rep->where != REP_CONST || eng->net->tensors[rep->tensor].kind != KILN_TENSOR_CONSTANT) continue;
            if (kiln__value_numel(&eng->net->tensors[rep->tensor].v) == 0) continue; /* nothing to share */
            const_reps++;
            const char *p0 = eng->w_dev, *q = rep->t.ptr;
            bool inside = p0 && q >= p0 && q < p0 + eng->w.bytes;
            if (!inside || rep->first == -2) {
                own++;
                printf("  context %d has its own copy of constant '%s' (%s)\n", c, eng->net->tensors[rep->tensor].name,
                       kiln_dtype_name(rep->t.dtype));
            }
        }
    }
    printf("%s %s %s: %d contexts, outputs identical to the built engine's; %d device reps of constants, %d outside the engine's shared copy\n",
           rc || own ? "FAIL" : "PASS", model, prec, n_ctx, const_reps, own);
    rc |= own != 0;
    for (int c = 0; c < n_ctx; c++) kiln_context_free(ctx[c]);
    free(ref);
    kiln_engine_free(eng);
    kiln_engine_free(built);
    kiln_builder_config_free(cfg);
    kiln_network_free(net);
    kiln_host_tensor_release(&in);
    return rc;
}
