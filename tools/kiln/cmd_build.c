/* kiln build: optimize an ONNX model for this GPU and save the engine file. */
#include "cli.h"
#include "kiln_graph.h" /* surgeon (issue 5): --dump-graph-after */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void build_usage(void)
{
    printf("usage: kiln build MODEL --saveEngine=FILE [options]\n"
           "  --fp16 | --best | --noTF32   precision (default tf32; --best = fp16 with fp32 fallback)\n"
           "  --shapes=in:1x3x64x64[,...]  static shapes for dynamic inputs\n"
           "  --minShapes= --optShapes= --maxShapes=   dynamic-shape range (only --optShapes: min = max = opt)\n"
           "  --layerPrecisions=layer:fp32[,...]  pin layers (names of the optimized network, see kiln inspect ENGINE)\n"
           "  --timingCacheFile=FILE  reuse and update tactic timings\n"
           "  --verbose               print the engine: header, layers, tactics, precisions, memory\n"
           "  --dump-graph-after=PASS  write the graph after optimization pass PASS (or 'all') as ONNX\n"
           "                          to DIR/PASS.onnx; without --saveEngine only the dumps are made (no GPU needed)\n"
           "  --dump-dir=DIR          folder of the dumps (default: current folder)\n");
}

/* --- surgeon (issue 5): --dump-graph-after --------------------------------------------- */
/* The builder's passes on a copy of the model with the build's fixed shapes, written as ONNX. */
static int dump_graphs(const cli_build_opts *bo, const char *model, const char *pass, const char *dir)
{
    kiln_network *net = NULL;
    int rc = 1, n = 0;
    if (kiln_onnx_parse(model, NULL, &net)) return cli_error("%s", kiln_last_error());
    /* As the builder: an input whose range is one shape becomes static, so shape computations fold. */
    int static_shapes = 1;
    for (int j = 0; j < bo->min.n; j++) {
        const cli_shape *mn = &bo->min.v[j], *mx = cli_shape_find(&bo->max, mn->name);
        int fixed = mx && mx->rank == mn->rank;
        for (int d = 0; fixed && d < mn->rank; d++) fixed = mn->dims[d] == mx->dims[d];
        if (!fixed) {
            static_shapes = 0;
            continue;
        }
        if (kiln_graph_set_input_shape(net, mn->name, mn->rank, mn->dims, NULL)) {
            cli_error("--dump-graph-after: %s", kiln_network_last_error(net));
            goto done;
        }
    }
    kiln_precision p = bo->fp16 || bo->best ? KILN_PREC_FP16 : bo->no_tf32 ? KILN_PREC_FP32 : KILN_PREC_TF32;
    if (kiln_network_dump_passes(net, pass, dir, static_shapes, (int)p, &n)) {
        cli_error("--dump-graph-after: %s", kiln_last_error());
        goto done;
    }
    printf("[I] wrote %d graph dump%s to %s\n", n, n == 1 ? "" : "s", dir);
    rc = 0;
done:
    kiln_network_free(net);
    return rc;
}
/* --- end surgeon --- */

int kiln_cmd_build(int argc, char **argv)
{
    cli_build_opts bo;
    memset(&bo, 0, sizeof bo);
    const char *model = NULL, *save = NULL, *v = NULL;
    const char *dump_pass = NULL, *dump_dir = "."; /* surgeon (issue 5) */
    kiln_network *net = NULL;
    kiln_engine *eng = NULL;
    int rc = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            build_usage();
            cli_build_opts_free(&bo);
            return 0;
        }
        if ((r = cli_build_flag(&bo, argc, argv, &i))) {
            if (r < 0) goto done;
            continue;
        }
        if ((r = cli_flag_value(argc, argv, &i, "--saveEngine", &v))) {
            if (r < 0) goto done;
            save = v;
            continue;
        }
        /* surgeon (issue 5): --dump-graph-after / --dump-dir */
        if ((r = cli_flag_value(argc, argv, &i, "--dump-graph-after", &v))) {
            const char *list;
            if (r < 0) goto done;
            if (!kiln_pass_name_valid(v, &list)) {
                cli_error("--dump-graph-after: unknown pass '%s' (passes: %s)", v, list);
                goto done;
            }
            dump_pass = v;
            continue;
        }
        if ((r = cli_flag_value(argc, argv, &i, "--dump-dir", &v))) {
            if (r < 0) goto done;
            dump_dir = v;
            continue;
        }
        if ((r = cli_flag_value(argc, argv, &i, "--onnx", &v))) {
            if (r < 0) goto done;
            if (model) {
                cli_error("build: more than one model ('%s' and '%s')", model, v);
                goto done;
            }
            model = v;
            continue;
        }
        if (a[0] == '-') {
            cli_error("build: unknown option '%s' (kiln build --help lists them)", a);
            goto done;
        }
        if (model) {
            cli_error("build: unexpected argument '%s' (one model only)", a);
            goto done;
        }
        model = a;
    }
    if (!model) {
        cli_error("build: no model given (usage: kiln build MODEL --saveEngine=FILE [options])");
        goto done;
    }
    if (!save && !dump_pass) {
        cli_error("build: --saveEngine=FILE is required (where to write the engine)");
        goto done;
    }
    if (kiln_onnx_parse(model, NULL, &net)) {
        cli_error("%s", kiln_last_error());
        goto done;
    }
    if (cli_build_check(&bo, net, NULL, 0)) goto done;
    if (dump_pass && dump_graphs(&bo, model, dump_pass, dump_dir)) goto done; /* surgeon (issue 5) */
    if (!save) {
        rc = 0; /* dumps only */
        goto done;
    }
    if (cli_require_gpu()) goto done;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (cli_build_engine(&bo, net, save, &eng, NULL, 0)) goto done;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("[I] Engine built from %s in %.3f s (%s), saved to %s\n", model, secs,
           bo.fp16 || bo.best ? "fp16" : bo.no_tf32 ? "fp32" : "tf32", save);
    if (bo.verbose) {
        char *text = NULL;
        if (kiln_engine_describe(eng, &text)) {
            cli_error("describe: %s", kiln_last_error());
            goto done;
        }
        printf("%s", text);
        free(text);
    }
    rc = 0;
done:
    kiln_engine_free(eng);
    kiln_network_free(net);
    cli_build_opts_free(&bo);
    return rc;
}
