/*
 * Built-in DeformConv plugin test.
 *
 * CPU part (always): kiln__cpu_deform_conv_f32 and the plugin classes' execute
 * (ONNX "DeformConv" and mmcv's "MMCVModulatedDeformConv2d" input order)
 * against kiln's built-in DeformConv CPU kernel, on random inputs whose
 * offsets reach outside the image (border handling), odd sizes, groups,
 * offset groups, stride 2, dilation 2, asymmetric pads, with and without mask
 * and bias; plus bad attributes and shapes that must be refused.
 * Plugin layouts (CUDA builds, no GPU needed): which plugin nodes the runtime
 * hands NHWC tensors in NHWC engines (kiln__cuda_plugin_nhwc), with test
 * classes that accept row-major only, NHWC, NHWC on inputs only, or have no
 * supports_format.
 * GPU part (SKIPPED, exit 77, without a GPU): the plugin's enqueue in fp32
 * and fp16, NCHW, NHWC and mixed layouts, every tactic (0-5: the strided
 * kernels; 6-18: the fast kernel for channel-contiguous X, which copies an NCHW
 * X first), against the CPU reference (fp32: 1e-4 relative + 1e-5 of the
 * output's scale; fp16: 2e-3 relative + 2e-3 of the output's scale, the oracle
 * seeing the fp16-rounded inputs); the fp16 engine hands the plugin NHWC
 * tensors; then timings of the EDVR-M shapes (64 channels, 3x3, 8 deformable
 * groups; CUDA events, median of 11 samples of 10 back-to-back launches after warm-up),
 * old (t0-5) vs new (t6-18).
 *
 *   kiln_deform_conv_test [--no-timing] [--cpu-only] [-v]
 */
#include "cpu/cpu.h"
#include "cuda/gpu.h"
#include "runtime/context.h"
#ifdef KILN_HAVE_CUDA
#include "cuda/cuda_backend.h"
#endif
#include "kiln_plugin.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const kiln_plugin_class *const kiln__plugin_deform_conv_classes[];

static int verbose, n_fail;
static uint32_t rng = 0x9e3779b9u;

static float frand(void) /* [-1, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return (float)(rng & 0xffffff) / (float)0x800000 - 1.0f;
}

typedef struct cfg {
    const char *name;
    int64_t n, c, h, w, m, kh, kw, sh, sw, ph, pw, peh, pew, dh, dw, group, og;
    int mask, bias;
    float off_range; /* offsets uniform in +-off_range pixels */
} cfg;

static const cfg cases[] = {
    {"basic 3x3", 1, 4, 7, 9, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1.5f},
    {"mask+bias, far offsets", 2, 6, 11, 13, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 9.0f},
    {"groups 2, og 3", 1, 6, 9, 10, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, 3, 1, 1, 3.0f},
    {"stride 2, asym pads", 2, 5, 13, 11, 6, 3, 2, 2, 2, 1, 0, 2, 1, 1, 1, 1, 1, 1, 0, 4.0f},
    {"dilation 2", 1, 3, 15, 12, 4, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1, 1, 0, 1, 2.5f},
    {"1x1 kernel, no pad", 3, 8, 5, 6, 9, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 2, 1, 1, 2.0f},
    {"vector path 64ch og8", 1, 64, 17, 23, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 8, 1, 1, 6.0f},
    {"vector path, groups 2, 80 out", 2, 32, 9, 21, 80, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 1, 0, 3.0f},
    {"100 ch (partial K chunk)", 1, 40, 10, 10, 100, 3, 3, 2, 1, 1, 1, 1, 1, 1, 2, 1, 5, 1, 1, 20.0f},
    {"EDVR-M 45x80", 1, 64, 45, 80, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 8, 1, 1, 5.0f},
    {"EDVR-M 23x40 N=5", 5, 64, 23, 40, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 8, 1, 1, 5.0f},
    /* shapes for the fast kernel's edges (tactics 6-18): C not a multiple of 8 (fp16 falls back, fp32
     * takes 4-channel vectors), odd H/W, stride 2, dilation, groups, no mask, no bias, several K chunks
     * and M tiles, taps not a multiple of the taps per chunk, Y channels not a multiple of 8 */
    {"12ch og3, stride 2, dil 2, no mask/bias", 1, 12, 19, 17, 10, 3, 3, 2, 2, 2, 1, 2, 1, 2, 1, 1, 3, 0, 0, 3.0f},
    {"16ch groups 2 og2, 24 out, no bias", 2, 16, 13, 15, 24, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 1, 0, 4.0f},
    {"136ch og17 (3 K chunks), stride 2", 1, 136, 11, 9, 72, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 17, 1, 1, 2.5f},
    {"5x3 kernel, dil (2,1), 32ch og4, no mask", 1, 32, 14, 19, 40, 5, 3, 1, 1, 4, 1, 4, 1, 2, 1, 1, 4, 0, 1, 3.0f},
    {"EDVR-M odd 31x57", 1, 64, 31, 57, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 8, 1, 1, 5.0f},
    {"128 out (2 M tiles), 24ch og3, stride 2, 5x5", 1, 24, 12, 13, 128, 5, 5, 2, 2, 2, 2, 2, 2, 1, 1, 1, 3, 1, 1, 3.0f},
    /* edvr_tiny's DeformConv shapes (16 channels, og 2: 36-value offset and 18-value mask records) */
    {"edvr_tiny 16ch og2 4x4 N=3", 3, 16, 4, 4, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 3.0f},
    {"edvr_tiny 16ch og2 16x16", 1, 16, 16, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 3.0f},
};

typedef struct data {
    int64_t xd[4], wd[4], od[4], md[4], bd[1], yd[4];
    float *x, *w, *off, *mask, *b;
    int64_t oh, ow;
} data;

static int64_t prod(const int64_t *d, int r)
{
    int64_t n = 1;
    for (int i = 0; i < r; i++) n *= d[i];
    return n;
}

static float *rand_buf(int64_t n, float scale)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = frand() * scale;
    return p;
}

static void make_data(const cfg *c, data *d)
{
    memset(d, 0, sizeof *d);
    d->oh = (c->h + c->ph + c->peh - (c->dh * (c->kh - 1) + 1)) / c->sh + 1;
    d->ow = (c->w + c->pw + c->pew - (c->dw * (c->kw - 1) + 1)) / c->sw + 1;
    int64_t taps = c->kh * c->kw;
    int64_t xd[4] = {c->n, c->c, c->h, c->w}, wd[4] = {c->m, c->c / c->group, c->kh, c->kw};
    int64_t od[4] = {c->n, c->og * taps * 2, d->oh, d->ow}, md[4] = {c->n, c->og * taps, d->oh, d->ow};
    int64_t yd[4] = {c->n, c->m, d->oh, d->ow};
    memcpy(d->xd, xd, sizeof xd);
    memcpy(d->wd, wd, sizeof wd);
    memcpy(d->od, od, sizeof od);
    memcpy(d->md, md, sizeof md);
    memcpy(d->yd, yd, sizeof yd);
    d->bd[0] = c->m;
    d->x = rand_buf(prod(xd, 4), 1.0f);
    d->w = rand_buf(prod(wd, 4), 1.0f / sqrtf((float)(wd[1] * taps)));
    d->off = rand_buf(prod(od, 4), c->off_range);
    d->mask = c->mask ? rand_buf(prod(md, 4), 1.0f) : NULL;
    if (d->mask)
        for (int64_t i = 0; i < prod(md, 4); i++) d->mask[i] = 0.5f + 0.5f * d->mask[i]; /* sigmoid-like [0, 1) */
    d->b = c->bias ? rand_buf(c->m, 0.5f) : NULL;
}

static void free_data(data *d)
{
    free(d->x);
    free(d->w);
    free(d->off);
    free(d->mask);
    free(d->b);
}

static float round_h(float v) { return kiln__f16_to_f32(kiln__f32_to_f16(v)); }

static void round_all(const cfg *c, data *d)
{
    float *bufs[5] = {d->x, d->w, d->off, d->mask, d->b};
    int64_t ns[5] = {prod(d->xd, 4), prod(d->wd, 4), prod(d->od, 4), prod(d->md, 4), c->m};
    for (int i = 0; i < 5; i++)
        if (bufs[i])
            for (int64_t k = 0; k < ns[i]; k++) bufs[i][k] = round_h(bufs[i][k]);
}

/* kiln's built-in DeformConv CPU kernel through a one-node network: the oracle. */
static float *builtin_ref(const cfg *c, const data *d)
{
    kiln_network *net = NULL;
    float *res = NULL;
    if (kiln_network_create(&net) || kiln_network_set_opset(net, 19)) goto out;
    const char *names[5] = {"X", "W", "offset", c->bias ? "B" : "", c->mask ? "mask" : ""};
    const int64_t *dims[5] = {d->xd, d->wd, d->od, d->bd, d->md};
    const int ranks[5] = {4, 4, 4, 1, 4};
    for (int i = 0; i < 5; i++)
        if (*names[i] && kiln_network_add_input(net, names[i], KILN_DT_FLOAT, ranks[i], dims[i], NULL)) goto out;
    int64_t dil[2] = {c->dh, c->dw}, ks[2] = {c->kh, c->kw}, pads[4] = {c->ph, c->pw, c->peh, c->pew},
            st[2] = {c->sh, c->sw};
    kiln_attr_value at[6];
    memset(at, 0, sizeof at);
    at[0] = (kiln_attr_value){.name = "dilations", .type = KILN_ATTR_INTS, .ints = dil, .n = 2};
    at[1] = (kiln_attr_value){.name = "group", .type = KILN_ATTR_INT, .i = c->group};
    at[2] = (kiln_attr_value){.name = "kernel_shape", .type = KILN_ATTR_INTS, .ints = ks, .n = 2};
    at[3] = (kiln_attr_value){.name = "offset_group", .type = KILN_ATTR_INT, .i = c->og};
    at[4] = (kiln_attr_value){.name = "pads", .type = KILN_ATTR_INTS, .ints = pads, .n = 4};
    at[5] = (kiln_attr_value){.name = "strides", .type = KILN_ATTR_INTS, .ints = st, .n = 2};
    const char *outs[1] = {"Y"};
    int n_in = c->mask ? 5 : c->bias ? 4 : 3;
    if (kiln_network_add_node(net, "dc", "DeformConv", "", n_in, names, 1, outs, 6, at)) {
        printf("FAIL  %s: add DeformConv node: %s\n", c->name, kiln_network_last_error(net));
        goto out;
    }
    const kiln_node *nd = &net->nodes[net->n_nodes - 1];
    kiln_value v[5];
    const kiln_value *in[5] = {0};
    float *ptrs[5] = {d->x, d->w, d->off, d->b, d->mask};
    memset(v, 0, sizeof v);
    for (int i = 0; i < n_in; i++) {
        if (!*names[i]) continue;
        v[i].dtype = KILN_DT_FLOAT;
        v[i].shape = kiln__shape_of(ranks[i], dims[i]);
        v[i].data = ptrs[i];
        v[i].nbytes = (size_t)prod(dims[i], ranks[i]) * sizeof(float);
        in[i] = &v[i];
    }
    kiln_value outv;
    memset(&outv, 0, sizeof outv);
    kiln_err err = {{0}};
    if (kiln__cpu_run_node(nd, in, &outv, &err)) {
        printf("FAIL  %s: built-in CPU DeformConv: %s\n", c->name, err.msg);
        free(outv.data);
        goto out;
    }
    res = outv.data;
out:
    kiln_network_free(net);
    return res;
}

/* max |a-b| check: |a-b| <= atol + rtol*|ref|, atol = at_scale * max(|ref|, 1) */
static bool compare(const char *what, const float *got, const float *ref, int64_t n, double rtol, double at_scale)
{
    double maxref = 0, worst = 0;
    for (int64_t i = 0; i < n; i++)
        if (fabs(ref[i]) > maxref) maxref = fabs(ref[i]);
    double atol = at_scale * (maxref > 1 ? maxref : 1);
    int64_t bad = -1;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - ref[i]);
        if (e > worst) worst = e;
        if (!(e <= atol + rtol * fabs(ref[i])) && bad < 0) bad = i;
    }
    if (bad >= 0) {
        printf("FAIL  %s: [%lld] got %.7g, expected %.7g (max abs err %.3g, max |ref| %.3g)\n", what, (long long)bad,
               got[bad], ref[bad], worst, maxref);
        n_fail++;
        return false;
    }
    if (verbose) printf("PASS  %s (max abs err %.3g, max |ref| %.3g)\n", what, worst, maxref);
    return true;
}

static void set_tensor(kiln_plugin_tensor *t, void *p, int32_t dt, int rank, const int64_t *dims, bool nhwc)
{
    memset(t, 0, sizeof *t);
    t->data = p;
    t->dtype = dt;
    t->rank = rank;
    t->present = 1;
    for (int i = 0; i < rank; i++) t->dims[i] = dims[i];
    kiln_plugin_row_major_strides(rank, dims, t->strides);
    t->layout = KILN_PLUGIN_LAYOUT_ROW_MAJOR;
    if (nhwc && rank == 4) {
        t->strides[1] = 1;
        t->strides[3] = dims[1];
        t->strides[2] = dims[1] * dims[3];
        t->strides[0] = dims[1] * dims[3] * dims[2];
        t->layout = KILN_PLUGIN_LAYOUT_NHWC;
    }
}

static const kiln_plugin_class *cls_named(const char *name)
{
    for (int i = 0; kiln__plugin_deform_conv_classes[i]; i++)
        if (!strcmp(kiln__plugin_deform_conv_classes[i]->name, name)) return kiln__plugin_deform_conv_classes[i];
    return NULL;
}

/* Attributes for a class instance: ONNX spellings, or mmcv's (symmetric pads only). */
static int make_attrs(const cfg *c, bool mmcv, kiln_plugin_attr *a, int64_t *store)
{
    memset(a, 0, 6 * sizeof *a);
    int64_t *dil = store, *ks = store + 2, *pads = store + 4, *st = store + 8;
    dil[0] = c->dh, dil[1] = c->dw, ks[0] = c->kh, ks[1] = c->kw, st[0] = c->sh, st[1] = c->sw;
    pads[0] = c->ph, pads[1] = c->pw, pads[2] = c->peh, pads[3] = c->pew;
    if (mmcv) {
        a[0] = (kiln_plugin_attr){.name = "stride", .type = KILN_PLUGIN_ATTR_INTS, .n = 2, .ints = st};
        a[1] = (kiln_plugin_attr){.name = "padding", .type = KILN_PLUGIN_ATTR_INTS, .n = 2, .ints = pads};
        a[2] = (kiln_plugin_attr){.name = "dilation", .type = KILN_PLUGIN_ATTR_INTS, .n = 2, .ints = dil};
        a[3] = (kiln_plugin_attr){.name = "groups", .type = KILN_PLUGIN_ATTR_INT, .i = c->group};
        a[4] = (kiln_plugin_attr){.name = "deform_groups", .type = KILN_PLUGIN_ATTR_INT, .i = c->og};
        return 5;
    }
    a[0] = (kiln_plugin_attr){.name = "dilations", .type = KILN_PLUGIN_ATTR_INTS, .n = 2, .ints = dil};
    a[1] = (kiln_plugin_attr){.name = "group", .type = KILN_PLUGIN_ATTR_INT, .i = c->group};
    a[2] = (kiln_plugin_attr){.name = "kernel_shape", .type = KILN_PLUGIN_ATTR_INTS, .n = 2, .ints = ks};
    a[3] = (kiln_plugin_attr){.name = "offset_group", .type = KILN_PLUGIN_ATTR_INT, .i = c->og};
    a[4] = (kiln_plugin_attr){.name = "pads", .type = KILN_PLUGIN_ATTR_INTS, .n = 4, .ints = pads};
    a[5] = (kiln_plugin_attr){.name = "strides", .type = KILN_PLUGIN_ATTR_INTS, .n = 2, .ints = st};
    return 6;
}

/* Input tensors in the class's order; x/w/off/b/mask data pointers given. */
static int plugin_inputs(const cfg *c, const data *d, bool mmcv, void *const *p, int32_t dt, const bool *nhwc,
                         kiln_plugin_tensor *ti)
{
    kiln_plugin_tensor x, w, off, b, mk;
    set_tensor(&x, p[0], dt, 4, d->xd, nhwc[0]);
    set_tensor(&w, p[1], dt, 4, d->wd, nhwc[1]);
    set_tensor(&off, p[2], dt, 4, d->od, nhwc[2]);
    set_tensor(&b, p[3], dt, 1, d->bd, false);
    set_tensor(&mk, p[4], dt, 4, d->md, nhwc[3]);
    if (!c->bias) memset(&b, 0, sizeof b);
    if (!c->mask) memset(&mk, 0, sizeof mk);
    if (mmcv) {
        ti[0] = x, ti[1] = off, ti[2] = mk, ti[3] = w, ti[4] = b;
        return c->bias ? 5 : 4;
    }
    ti[0] = x, ti[1] = w, ti[2] = off, ti[3] = b, ti[4] = mk;
    return c->mask ? 5 : c->bias ? 4 : 3;
}

/* The class's execute (CPU) and get_output_shapes on one case. */
static void check_plugin_cpu(const cfg *c, const data *d, const float *ref, bool mmcv)
{
    const kiln_plugin_class *k = cls_named(mmcv ? "MMCVModulatedDeformConv2d" : "DeformConv");
    char what[256], msg[256] = "";
    snprintf(what, sizeof what, "%s: plugin %s execute", c->name, mmcv ? "MMCVModulatedDeformConv2d" : "DeformConv");
    kiln_plugin_attr at[6];
    int64_t store[12];
    int na = make_attrs(c, mmcv, at, store);
    void *inst = NULL;
    if (!k || k->create(NULL, at, na, &inst, msg, sizeof msg)) {
        printf("FAIL  %s: create: %s\n", what, msg);
        n_fail++;
        return;
    }
    kiln_plugin_tensor ti[5], to;
    void *p[5] = {d->x, d->w, d->off, d->b, d->mask};
    bool rm[4] = {false, false, false, false};
    int n_in = plugin_inputs(c, d, mmcv, p, KILN_PLUGIN_DT_FLOAT, rm, ti);
    /* shapes as the runtime asks: all constant */
    kiln_plugin_shape_input si[5];
    memset(si, 0, sizeof si);
    for (int i = 0; i < n_in; i++) {
        si[i].present = ti[i].present;
        si[i].dtype = ti[i].dtype;
        si[i].shape.rank = ti[i].present ? ti[i].rank : 0;
        for (int j = 0; j < ti[i].rank; j++) si[i].shape.d[j] = kiln_plugin_dim_const(ti[i].dims[j]);
    }
    kiln_plugin_shape os;
    memset(&os, 0, sizeof os);
    if (k->get_output_shapes(inst, si, n_in, &os, 1, msg, sizeof msg) || os.rank != 4 ||
        os.d[0].add != d->yd[0] || os.d[1].add != d->yd[1] || os.d[2].add != d->yd[2] || os.d[3].add != d->yd[3]) {
        printf("FAIL  %s: output shape: %s\n", what, msg);
        n_fail++;
        k->destroy(inst);
        return;
    }
    int64_t ny = prod(d->yd, 4);
    float *y = calloc((size_t)ny, sizeof *y);
    set_tensor(&to, y, KILN_PLUGIN_DT_FLOAT, 4, d->yd, false);
    if (k->execute(inst, ti, n_in, &to, 1, msg, sizeof msg)) {
        printf("FAIL  %s: %s\n", what, msg);
        n_fail++;
    } else {
        compare(what, y, ref, ny, 1e-5, 1e-6);
    }
    free(y);
    k->destroy(inst);
}

/*
 * mmcv's name end to end: a network with an mmcv::MMCVModulatedDeformConv2d node (weight and bias
 * constants, mmcv input order and attribute names) found through the plugin registry, run by the
 * CPU reference executor and, with a GPU, by fp32 and fp16 engines (the generic plugin GPU op).
 */
static kiln_network *mmcv_network(const cfg *c, const data *d)
{
    kiln_network *net = NULL;
    if (kiln_network_create(&net) || kiln_network_set_opset(net, 17)) return net;
    bool ok = !kiln_network_add_input(net, "input", KILN_DT_FLOAT, 4, d->xd, NULL) &&
              !kiln_network_add_input(net, "offset", KILN_DT_FLOAT, 4, d->od, NULL) &&
              !kiln_network_add_input(net, "mask", KILN_DT_FLOAT, 4, d->md, NULL) &&
              !kiln_network_add_constant(net, "weight", KILN_DT_FLOAT, 4, d->wd, d->w,
                                         (size_t)prod(d->wd, 4) * sizeof(float)) &&
              (!c->bias || !kiln_network_add_constant(net, "bias", KILN_DT_FLOAT, 1, d->bd, d->b,
                                                      (size_t)c->m * sizeof(float)));
    int64_t st[2] = {c->sh, c->sw}, pad[2] = {c->ph, c->pw}, dil[2] = {c->dh, c->dw};
    kiln_attr_value at[5];
    memset(at, 0, sizeof at);
    at[0] = (kiln_attr_value){.name = "stride", .type = KILN_ATTR_INTS, .ints = st, .n = 2};
    at[1] = (kiln_attr_value){.name = "padding", .type = KILN_ATTR_INTS, .ints = pad, .n = 2};
    at[2] = (kiln_attr_value){.name = "dilation", .type = KILN_ATTR_INTS, .ints = dil, .n = 2};
    at[3] = (kiln_attr_value){.name = "groups", .type = KILN_ATTR_INT, .i = c->group};
    at[4] = (kiln_attr_value){.name = "deform_groups", .type = KILN_ATTR_INT, .i = c->og};
    const char *ins[5] = {"input", "offset", "mask", "weight", "bias"}, *outs[1] = {"output"};
    if (ok && (kiln_network_add_node(net, "dcn", "MMCVModulatedDeformConv2d", "mmcv", c->bias ? 5 : 4, ins, 1, outs, 5,
                                     at) ||
               kiln_network_mark_output(net, "output")))
        ok = false;
    if (!ok) printf("FAIL  %s: mmcv network: %s\n", c->name, kiln_network_last_error(net));
    if (!ok) n_fail++;
    return net;
}

static void check_mmcv_network_cpu(const cfg *c, const data *d, const float *ref)
{
    kiln_network *net = mmcv_network(c, d);
    if (!net || net->n_nodes == 0) {
        kiln_network_free(net);
        return;
    }
    kiln_host_tensor in[3], out;
    const float *src[3] = {d->x, d->off, d->mask};
    const int64_t *dims[3] = {d->xd, d->od, d->md};
    static const char *const names[3] = {"input", "offset", "mask"};
    for (int i = 0; i < 3; i++) {
        memset(&in[i], 0, sizeof in[i]);
        snprintf(in[i].name, sizeof in[i].name, "%s", names[i]);
        in[i].dtype = KILN_DT_FLOAT;
        in[i].rank = 4;
        memcpy(in[i].dims, dims[i], 4 * sizeof(int64_t));
        in[i].data = (void *)src[i];
        in[i].nbytes = (size_t)prod(dims[i], 4) * sizeof(float);
    }
    memset(&out, 0, sizeof out);
    char what[256];
    snprintf(what, sizeof what, "%s: mmcv network, CPU reference executor", c->name);
    if (kiln_reference_run(net, 3, in, 1, &out)) {
        printf("FAIL  %s: %s\n", what, kiln_network_last_error(net));
        n_fail++;
    } else if (out.dtype != KILN_DT_FLOAT || kiln_host_tensor_numel(&out) != prod(d->yd, 4)) {
        printf("FAIL  %s: output type/size\n", what);
        n_fail++;
    } else {
        compare(what, out.data, ref, prod(d->yd, 4), 1e-5, 1e-6);
    }
    kiln_host_tensor_release(&out);
    kiln_network_free(net);
}

/* ---- plugin layouts: kiln__cuda_plugin_nhwc (cuda_ops_plugin.c), no GPU needed ---- */
#ifdef KILN_HAVE_CUDA
bool kiln__cuda_plugin_nhwc(const kiln_cuda_op *op, const kiln_node *n, const kiln_value *vals, kiln_dtype compute);

static int t_create(const kiln_plugin_host *h, const kiln_plugin_attr *a, int na, void **inst, char *e, size_t el)
{
    (void)h, (void)a, (void)na, (void)e, (void)el;
    *inst = malloc(1);
    return *inst ? KILN_PLUGIN_OK : KILN_PLUGIN_ERR_OUT_OF_MEMORY;
}
static void t_destroy(void *inst) { free(inst); }
static int t_types(const void *inst, const int32_t *in, int n_in, int32_t *out, int n_out, char *e, size_t el)
{
    (void)inst, (void)n_in, (void)e, (void)el;
    for (int j = 0; j < n_out; j++) out[j] = in[0];
    return KILN_PLUGIN_OK;
}
static int t_shapes(const void *inst, const kiln_plugin_shape_input *in, int n_in, kiln_plugin_shape *out, int n_out,
                    char *e, size_t el)
{
    (void)inst, (void)n_in, (void)e, (void)el;
    for (int j = 0; j < n_out; j++) out[j] = in[0].shape;
    return KILN_PLUGIN_OK;
}
static int t_enqueue(const void *inst, const kiln_plugin_tensor *in, int n_in, const kiln_plugin_tensor *out, int n_out,
                     void *ws, size_t wsb, int tactic, void *st, char *e, size_t el)
{
    (void)inst, (void)in, (void)n_in, (void)out, (void)n_out, (void)ws, (void)wsb, (void)tactic, (void)st;
    snprintf(e, el, "not for running");
    return KILN_PLUGIN_ERR_UNSUPPORTED;
}
static bool t_float(int32_t dt) { return dt == KILN_PLUGIN_DT_FLOAT || dt == KILN_PLUGIN_DT_FLOAT16; }
static int f_row_major(const void *inst, int pos, const kiln_plugin_format *f, int n_in, int n_out)
{
    (void)inst, (void)n_in, (void)n_out;
    return t_float(f[pos].dtype) && f[pos].layout == KILN_PLUGIN_LAYOUT_ROW_MAJOR;
}
static int f_any(const void *inst, int pos, const kiln_plugin_format *f, int n_in, int n_out)
{
    (void)inst, (void)n_in, (void)n_out;
    return t_float(f[pos].dtype);
}
static int f_nhwc_inputs_only(const void *inst, int pos, const kiln_plugin_format *f, int n_in, int n_out)
{
    (void)inst, (void)n_out;
    return t_float(f[pos].dtype) && (pos < n_in || f[pos].layout == KILN_PLUGIN_LAYOUT_ROW_MAJOR);
}

#define T_CLASS(sym, nm, fmt)                                                                                     \
    static const kiln_plugin_class sym = {.abi_version = KILN_PLUGIN_ABI_VERSION,                               \
                                          .struct_size = sizeof(kiln_plugin_class),                             \
                                          .name = nm,                                                           \
                                          .min_inputs = 1,                                                      \
                                          .max_inputs = 2,                                                      \
                                          .min_outputs = 1,                                                     \
                                          .max_outputs = 1,                                                     \
                                          .create = t_create,                                                   \
                                          .destroy = t_destroy,                                                 \
                                          .get_output_types = t_types,                                          \
                                          .get_output_shapes = t_shapes,                                        \
                                          .supports_format = fmt,                                               \
                                          .enqueue = t_enqueue}
T_CLASS(t_cls_rm, "DcnTestRowMajor", f_row_major);
T_CLASS(t_cls_any, "DcnTestAnyLayout", f_any);
T_CLASS(t_cls_in, "DcnTestNhwcInputsOnly", f_nhwc_inputs_only);
T_CLASS(t_cls_none, "DcnTestNoFormat", NULL);

/* One node of op_type on a rank-`rank` FLOAT input; whether the runtime would hand it NHWC in fp16 and fp32. */
static void layout_case(const char *op_type, int rank, bool want)
{
    kiln_network *net = NULL;
    int64_t dims[4] = {1, 8, 5, 7};
    const char *ins[1] = {"a"}, *outs[1] = {"b"};
    if (kiln_network_create(&net) || kiln_network_add_input(net, "a", KILN_DT_FLOAT, rank, dims + 4 - rank, NULL) ||
        kiln_network_add_node(net, "n", op_type, "", 1, ins, 1, outs, 0, NULL)) {
        printf("FAIL  plugin layout %s: network: %s\n", op_type, net ? kiln_network_last_error(net) : "");
        n_fail++;
        kiln_network_free(net);
        return;
    }
    const kiln_node *nd = &net->nodes[net->n_nodes - 1];
    kiln_value *vals = calloc((size_t)net->n_tensors, sizeof *vals);
    for (int t = 0; t < net->n_tensors; t++) {
        vals[t].dtype = KILN_DT_FLOAT;
        vals[t].shape.rank = rank;
        for (int d = 0; d < rank; d++) vals[t].shape.d[d] = kiln__dim_const(dims[4 - rank + d]);
    }
    const kiln_cuda_op *op = kiln__cuda_op_find(nd->domain, nd->op_type);
    for (int h = 0; h < 2; h++) {
        bool got = op && kiln__cuda_plugin_nhwc(op, nd, vals, h ? KILN_DT_FLOAT16 : KILN_DT_FLOAT);
        if (got != want) {
            printf("FAIL  plugin layout %s rank %d %s: NHWC %s, expected %s\n", op_type, rank, h ? "fp16" : "fp32",
                   got ? "yes" : "no", want ? "yes" : "no");
            n_fail++;
        } else if (verbose) {
            printf("PASS  plugin layout %s rank %d %s: NHWC %s\n", op_type, rank, h ? "fp16" : "fp32", got ? "yes" : "no");
        }
    }
    free(vals);
    kiln_network_free(net);
}

/* A DeformConv node (the built-in class) takes NHWC: every 4-D position, FLOAT16 and FLOAT. */
static void layout_deform(void)
{
    const cfg c = {"layout", 1, 16, 9, 10, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1.0f};
    data d;
    make_data(&c, &d);
    kiln_network *net = mmcv_network(&c, &d);
    if (!net || net->n_nodes == 0) {
        kiln_network_free(net);
        free_data(&d);
        return;
    }
    const kiln_node *nd = &net->nodes[net->n_nodes - 1];
    kiln_value *vals = calloc((size_t)net->n_tensors, sizeof *vals);
    for (int t = 0; t < net->n_tensors; t++) vals[t] = net->tensors[t].v; /* the inputs' shapes are constant */
    /* the output as the runtime's resolution has it (the network itself has not inferred it) */
    vals[nd->out[0]].dtype = KILN_DT_FLOAT;
    vals[nd->out[0]].shape = kiln__shape_of(4, d.yd);
    const kiln_cuda_op *op = kiln__cuda_op_find(nd->domain, nd->op_type);
    for (int h = 0; h < 2; h++) {
        if (!op || !kiln__cuda_plugin_nhwc(op, nd, vals, h ? KILN_DT_FLOAT16 : KILN_DT_FLOAT)) {
            printf("FAIL  plugin layout: MMCVModulatedDeformConv2d does not take NHWC (%s)\n", h ? "fp16" : "fp32");
            n_fail++;
        } else if (verbose) {
            printf("PASS  plugin layout: MMCVModulatedDeformConv2d takes NHWC (%s)\n", h ? "fp16" : "fp32");
        }
    }
    /* a built-in op that is not a plugin never qualifies */
    const kiln_cuda_op *relu = kiln__cuda_op_find("", "Relu");
    if (relu && kiln__cuda_plugin_nhwc(relu, nd, vals, KILN_DT_FLOAT16)) {
        printf("FAIL  plugin layout: a built-in GPU op was treated as a plugin\n");
        n_fail++;
    }
    free(vals);
    kiln_network_free(net);
    free_data(&d);
}

static void check_plugin_layouts(void)
{
    static bool registered;
    if (!registered) {
        const kiln_plugin_class *cl[4] = {&t_cls_rm, &t_cls_any, &t_cls_in, &t_cls_none};
        for (int i = 0; i < 4; i++)
            if (kiln_plugin_register(cl[i])) {
                printf("FAIL  plugin layout: register %s: %s\n", cl[i]->name, kiln_last_error());
                n_fail++;
                return;
            }
        registered = true;
    }
    layout_case("DcnTestRowMajor", 4, false);      /* row-major only: as before */
    layout_case("DcnTestAnyLayout", 4, true);      /* NHWC accepted at every 4-D float position */
    layout_case("DcnTestAnyLayout", 3, false);     /* nothing 4-D: row-major */
    layout_case("DcnTestNhwcInputsOnly", 4, false); /* asked per position: the output refuses */
    layout_case("DcnTestNoFormat", 4, false);      /* no supports_format: FLOAT row-major only */
    layout_deform();
}
#else
static void check_plugin_layouts(void) {}
#endif

static void *stream;

/* Bad attributes / shapes: refused with a message, no crash. */
static void check_bad(void)
{
    const kiln_plugin_class *k = cls_named("MMCVModulatedDeformConv2d");
    char msg[256] = "";
    void *inst = NULL;
    int64_t zero[2] = {0, 1}, big[2] = {(int64_t)1 << 40, 1}, three[3] = {1, 1, 1};
    kiln_plugin_attr bad[4] = {
        {.name = "stride", .type = KILN_PLUGIN_ATTR_INTS, .n = 2, .ints = zero},
        {.name = "dilation", .type = KILN_PLUGIN_ATTR_INTS, .n = 2, .ints = big},
        {.name = "padding", .type = KILN_PLUGIN_ATTR_INTS, .n = 3, .ints = three},
        {.name = "groups", .type = KILN_PLUGIN_ATTR_STRING, .s = "x", .s_len = 1},
    };
    for (int i = 0; i < 4; i++) {
        msg[0] = 0;
        if (!k->create(NULL, &bad[i], 1, &inst, msg, sizeof msg) || !msg[0]) {
            printf("FAIL  bad attribute '%s' accepted\n", bad[i].name);
            n_fail++;
            if (inst) k->destroy(inst);
            inst = NULL;
        } else if (verbose) {
            printf("PASS  bad attribute '%s': %s\n", bad[i].name, msg);
        }
    }
    /* channel mismatch at shape time and at execute time */
    const cfg c = {"bad", 1, 6, 5, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 4, 1, 1, 1.0f}; /* 6 % og 4 != 0 */
    data d;
    make_data(&c, &d);
    kiln_plugin_attr at[6];
    int64_t store[12];
    int na = make_attrs(&c, true, at, store);
    if (k->create(NULL, at, na, &inst, msg, sizeof msg)) {
        printf("FAIL  bad shapes: create: %s\n", msg);
        n_fail++;
        free_data(&d);
        return;
    }
    kiln_plugin_tensor ti[5], to;
    void *p[5] = {d.x, d.w, d.off, d.b, d.mask};
    bool rm[4] = {false, false, false, false};
    int n_in = plugin_inputs(&c, &d, true, p, KILN_PLUGIN_DT_FLOAT, rm, ti);
    float *y = calloc((size_t)prod(d.yd, 4), sizeof *y);
    set_tensor(&to, y, KILN_PLUGIN_DT_FLOAT, 4, d.yd, false);
    msg[0] = 0;
    if (k->execute(inst, ti, n_in, &to, 1, msg, sizeof msg) == KILN_PLUGIN_OK || !msg[0]) {
        printf("FAIL  bad shapes: offset_group not dividing channels accepted\n");
        n_fail++;
    } else if (verbose) {
        printf("PASS  bad shapes: %s\n", msg);
    }
    /* offset with a wrong channel count */
    ti[1].dims[1] -= 2;
    msg[0] = 0;
    if (k->execute(inst, ti, n_in, &to, 1, msg, sizeof msg) == KILN_PLUGIN_OK) {
        printf("FAIL  bad shapes: short offset accepted\n");
        n_fail++;
    }
    free(y);
    k->destroy(inst);
    free_data(&d);
}

/* ---- GPU ---- */

static size_t span_of(const kiln_plugin_tensor *t)
{
    size_t n = 1;
    for (int i = 0; i < t->rank; i++) {
        if (t->dims[i] == 0) return 0;
        n += (size_t)((t->dims[i] - 1) * t->strides[i]);
    }
    return n;
}

/* Host row-major floats -> device tensor with t's dtype and strides (t->data set). */
static bool upload(kiln_plugin_tensor *t, const float *src)
{
    if (!t->present) return true;
    size_t es = t->dtype == KILN_PLUGIN_DT_FLOAT16 ? 2 : 4, n = span_of(t);
    uint8_t *buf = calloc(n + 1, es);
    int64_t numel = prod(t->dims, t->rank), idx[8] = {0};
    for (int64_t k = 0; k < numel; k++) {
        int64_t off = 0;
        for (int i = 0; i < t->rank; i++) off += idx[i] * t->strides[i];
        if (es == 2) ((uint16_t *)buf)[off] = kiln__f32_to_f16(src[k]);
        else ((float *)buf)[off] = src[k];
        for (int i = t->rank - 1; i >= 0; i--) {
            if (++idx[i] < t->dims[i]) break;
            idx[i] = 0;
        }
    }
    kiln_err err = {{0}};
    void *p = NULL;
    bool ok = !kiln__gpu_malloc(&p, (n + 1) * es, &err) && !kiln__gpu_memcpy_h2d(p, buf, (n + 1) * es, stream, &err) &&
              !kiln__gpu_sync(stream, &err);
    free(buf);
    t->data = p;
    if (!ok) printf("FAIL  upload: %s\n", err.msg);
    return ok;
}

static float *download(const kiln_plugin_tensor *t)
{
    size_t es = t->dtype == KILN_PLUGIN_DT_FLOAT16 ? 2 : 4, n = span_of(t);
    uint8_t *buf = calloc(n + 1, es);
    int64_t numel = prod(t->dims, t->rank), idx[8] = {0};
    float *out = calloc((size_t)numel + 1, sizeof *out);
    kiln_err err = {{0}};
    if (kiln__gpu_memcpy_d2h(buf, t->data, n * es, stream, &err) || kiln__gpu_sync(stream, &err)) {
        printf("FAIL  download: %s\n", err.msg);
        free(buf);
        free(out);
        return NULL;
    }
    for (int64_t k = 0; k < numel; k++) {
        int64_t off = 0;
        for (int i = 0; i < t->rank; i++) off += idx[i] * t->strides[i];
        out[k] = es == 2 ? kiln__f16_to_f32(((uint16_t *)buf)[off]) : ((float *)buf)[off];
        for (int i = t->rank - 1; i >= 0; i--) {
            if (++idx[i] < t->dims[i]) break;
            idx[i] = 0;
        }
    }
    free(buf);
    return out;
}

static void check_mmcv_network_gpu(const cfg *c, const data *d, const float *ref, bool fp16)
{
    char what[256];
    snprintf(what, sizeof what, "%s: mmcv network, %s engine", c->name, fp16 ? "fp16" : "fp32");
    kiln_network *net = mmcv_network(c, d);
    kiln_builder_config *cfgb = NULL;
    kiln_engine *eng = NULL;
    kiln_context *ctx = NULL;
    void *dptr[4] = {NULL};
    float *host = NULL;
    kiln_err err = {{0}};
    const char *why = "";
    static const char *const names[4] = {"input", "offset", "mask", "output"};
    const float *src[3] = {d->x, d->off, d->mask};
    const int64_t *dims[4] = {d->xd, d->od, d->md, d->yd};
    if (!net || net->n_nodes == 0 || kiln_builder_config_create(&cfgb)) goto fail;
    kiln_builder_config_set_precision(cfgb, fp16 ? KILN_PREC_FP16 : KILN_PREC_FP32);
    for (int i = 0; i < 3; i++) kiln_builder_config_set_shape_range(cfgb, names[i], 4, dims[i], dims[i], dims[i]);
    if (kiln_build(net, cfgb, &eng) || kiln_context_create(eng, &ctx)) {
        why = kiln_last_error();
        goto fail;
    }
    for (int i = 0; i < 4; i++) {
        kiln_dtype dt = kiln_context_get_dtype(ctx, names[i]);
        size_t es = dt == KILN_DT_FLOAT16 ? 2 : 4;
        int64_t n = prod(dims[i], 4);
        if ((dt != KILN_DT_FLOAT && dt != KILN_DT_FLOAT16) || kiln__gpu_malloc(&dptr[i], (size_t)n * es + 16, &err)) {
            why = "I/O type or allocation";
            goto fail;
        }
        if (i < 3) {
            kiln_plugin_tensor t;
            set_tensor(&t, NULL, dt == KILN_DT_FLOAT16 ? KILN_PLUGIN_DT_FLOAT16 : KILN_PLUGIN_DT_FLOAT, 4, dims[i], false);
            void *tmp = NULL;
            if (!upload(&t, src[i])) goto fail;
            tmp = t.data; /* upload allocated; copy into the buffer the context uses */
            if (kiln__gpu_memcpy_d2d(dptr[i], tmp, (size_t)n * es, stream, &err) || kiln__gpu_sync(stream, &err)) {
                kiln__gpu_free(tmp);
                goto fail;
            }
            kiln__gpu_free(tmp);
            if (kiln_context_set_input_shape(ctx, names[i], 4, dims[i])) goto ctxfail;
        }
        if (kiln_context_set_tensor_address(ctx, names[i], dptr[i])) goto ctxfail;
    }
    for (int it = 0; it < 2; it++) /* twice: the second may replay a captured graph */
        if (kiln_context_enqueue(ctx, stream) || kiln__gpu_sync(stream, &err)) goto ctxfail;
    /* an NHWC engine hands the plugin NHWC tensors: X and Y channel-contiguous, no reformat around it */
    if (ctx->eng->hdr.layout == KILN_LAYOUT_NHWC) {
        int found = 0;
        for (int s = 0; s < ctx->n_steps; s++) {
            const kiln_step *st = &ctx->steps[s];
            if (st->kind != STEP_LAUNCH || strcmp(ctx->net->nodes[st->node].op_type, "MMCVModulatedDeformConv2d")) continue;
            found = 1;
            const kiln_cuda_tensor *tx = &ctx->reps[st->in_reps[0]].t, *ty = &ctx->reps[st->out_reps[0]].t;
            if (tx->strides[1] != 1 || ty->strides[1] != 1) {
                printf("FAIL  %s: the plugin got X stride C %lld, Y stride C %lld (NHWC expected)\n", what,
                       (long long)tx->strides[1], (long long)ty->strides[1]);
                n_fail++;
            } else if (verbose) {
                printf("PASS  %s: the plugin takes NHWC\n", what);
            }
        }
        if (!found) {
            printf("FAIL  %s: no GPU step for the plugin node\n", what);
            n_fail++;
        }
    }
    {
        kiln_plugin_tensor t;
        kiln_dtype dt = kiln_context_get_dtype(ctx, "output");
        set_tensor(&t, dptr[3], dt == KILN_DT_FLOAT16 ? KILN_PLUGIN_DT_FLOAT16 : KILN_PLUGIN_DT_FLOAT, 4, d->yd, false);
        host = download(&t);
        if (!host) goto fail;
        if (fp16) compare(what, host, ref, prod(d->yd, 4), 2e-3, 2e-3);
        else compare(what, host, ref, prod(d->yd, 4), 1e-4, 1e-5);
    }
    goto done;
ctxfail:
    why = ctx ? kiln_context_last_error(ctx) : "";
fail:
    printf("FAIL  %s: %s%s\n", what, why, err.msg);
    n_fail++;
done:
    free(host);
    for (int i = 0; i < 4; i++) kiln__gpu_free(dptr[i]);
    if (ctx) kiln_context_free(ctx);
    if (eng) kiln_engine_free(eng);
    if (cfgb) kiln_builder_config_free(cfgb);
    kiln_network_free(net);
}

static const char *const layout_names[] = {"nchw", "nhwc", "mixed"};

/* nhwc flags for X, W, offset, mask and Y per layout mode. */
static void layout_flags(int mode, bool *in4, bool *y)
{
    in4[0] = in4[1] = in4[2] = in4[3] = mode == 1;
    *y = mode == 1;
    if (mode == 2) { /* X and Y NHWC, weights row-major, offset/mask NCHW */
        in4[0] = true;
        *y = true;
    }
}

typedef struct gpu_run {
    void *inst;
    const kiln_plugin_class *k;
    kiln_plugin_tensor ti[5], to;
    int n_in;
    void *ws;
    size_t ws_bytes;
} gpu_run;

static bool gpu_setup(const cfg *c, const data *d, bool mmcv, int32_t dt, int mode, gpu_run *g)
{
    memset(g, 0, sizeof *g);
    g->k = cls_named(mmcv ? "MMCVModulatedDeformConv2d" : "DeformConv");
    char msg[256] = "";
    kiln_plugin_attr at[6];
    int64_t store[12];
    int na = make_attrs(c, mmcv, at, store);
    if (!g->k || !g->k->enqueue || g->k->create(NULL, at, na, &g->inst, msg, sizeof msg)) {
        printf("FAIL  %s: gpu create: %s\n", c->name, msg);
        n_fail++;
        return false;
    }
    bool in4[4], ynhwc;
    layout_flags(mode, in4, &ynhwc);
    void *p[5] = {0};
    g->n_in = plugin_inputs(c, d, mmcv, p, dt, in4, g->ti);
    const float *src[5];
    if (mmcv) src[0] = d->x, src[1] = d->off, src[2] = d->mask, src[3] = d->w, src[4] = d->b;
    else src[0] = d->x, src[1] = d->w, src[2] = d->off, src[3] = d->b, src[4] = d->mask;
    for (int i = 0; i < g->n_in; i++)
        if (!upload(&g->ti[i], src[i])) return false;
    set_tensor(&g->to, NULL, dt, 4, d->yd, ynhwc);
    kiln_err err = {{0}};
    size_t es = dt == KILN_PLUGIN_DT_FLOAT16 ? 2 : 4, bytes = (span_of(&g->to) + 1) * es;
    if (kiln__gpu_malloc(&g->to.data, bytes, &err) || kiln__gpu_memset(g->to.data, 0x7f, bytes, stream, &err)) {
        printf("FAIL  %s: %s\n", c->name, err.msg);
        return false;
    }
    return true;
}

static void gpu_teardown(gpu_run *g)
{
    kiln__gpu_free(g->ws);
    for (int i = 0; i < 5; i++) kiln__gpu_free(g->ti[i].data);
    kiln__gpu_free(g->to.data);
    if (g->inst) g->k->destroy(g->inst);
}

/* Enqueues with the workspace the class asks for this tactic (grown on demand). */
static int enqueue(gpu_run *g, int tactic, char *msg, size_t len)
{
    size_t need = g->k->workspace_size ? g->k->workspace_size(g->inst, g->ti, g->n_in, &g->to, 1, tactic) : 0;
    if (need > g->ws_bytes) {
        kiln_err err = {{0}};
        kiln__gpu_free(g->ws);
        g->ws = NULL;
        g->ws_bytes = 0;
        if (kiln__gpu_malloc(&g->ws, need, &err)) {
            snprintf(msg, len, "workspace: %s", err.msg);
            return -1;
        }
        g->ws_bytes = need;
    }
    return g->k->enqueue(g->inst, g->ti, g->n_in, &g->to, 1, g->ws, g->ws_bytes, tactic, stream, msg, len);
}

static void check_gpu(const cfg *c, const data *d16, const float *ref32, const float *ref16, bool mmcv, int32_t dt,
                      int mode)
{
    gpu_run g;
    if (!gpu_setup(c, d16, mmcv, dt, mode, &g)) {
        n_fail++;
        gpu_teardown(&g);
        return;
    }
    int nt = g.k->tactic_count ? g.k->tactic_count(g.inst, g.ti, g.n_in, &g.to, 1) : 1;
    for (int tac = 0; tac < nt; tac++) {
        char what[256], msg[256] = "";
        snprintf(what, sizeof what, "%s: gpu %s %s %s tactic %d", c->name, mmcv ? "mmcv" : "onnx",
                 dt == KILN_PLUGIN_DT_FLOAT16 ? "fp16" : "fp32", layout_names[mode], tac);
        kiln_err err = {{0}};
        size_t es = dt == KILN_PLUGIN_DT_FLOAT16 ? 2 : 4, bytes = (span_of(&g.to) + 1) * es;
        if (kiln__gpu_memset(g.to.data, 0x7f, bytes, stream, &err) || enqueue(&g, tac, msg, sizeof msg) ||
            kiln__gpu_sync(stream, &err)) {
            printf("FAIL  %s: %s%s\n", what, msg, err.msg);
            n_fail++;
            continue;
        }
        float *y = download(&g.to);
        if (!y) n_fail++;
        else if (dt == KILN_PLUGIN_DT_FLOAT16) compare(what, y, ref16, prod(d16->yd, 4), 2e-3, 2e-3);
        else compare(what, y, ref32, prod(d16->yd, 4), 1e-4, 1e-5);
        free(y);
    }
    gpu_teardown(&g);
}

static int cmp_f(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static void timing(void)
{
    static const struct {
        int64_t n, h, w;
    } shapes[] = {{1, 180, 320}, {1, 90, 160}, {1, 45, 80}, {5, 180, 320}, {5, 90, 160}};
    void *e0 = NULL, *e1 = NULL;
    kiln_err err = {{0}};
    if (kiln__gpu_event_create(&e0, &err) || kiln__gpu_event_create(&e1, &err)) {
        printf("FAIL  events: %s\n", err.msg);
        n_fail++;
        return;
    }
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int dtp = 0; dtp < 2; dtp++)
            for (int mode = 0; mode < 3; mode++) {
                if (shapes[s].n == 5 && mode == 2) continue;
                cfg c = {"EDVR-M timing", shapes[s].n, 64, shapes[s].h, shapes[s].w, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1,
                         1, 8, 1, 1, 2.0f}; /* offsets of a few pixels, as a trained net's */
                data d;
                make_data(&c, &d);
                int32_t dt = dtp ? KILN_PLUGIN_DT_FLOAT16 : KILN_PLUGIN_DT_FLOAT;
                gpu_run g;
                char msg[256] = "";
                if (!gpu_setup(&c, &d, false, dt, mode, &g)) {
                    n_fail++;
                    gpu_teardown(&g);
                    free_data(&d);
                    continue;
                }
                int nt = g.k->tactic_count ? g.k->tactic_count(g.inst, g.ti, g.n_in, &g.to, 1) : 1;
                char line[512];
                int len = snprintf(line, sizeof line, "timing: DeformConv %s %-5s N=%lld 64->64 3x3 og=8 %lldx%lld:",
                                   dtp ? "fp16" : "fp32", layout_names[mode], (long long)c.n, (long long)c.h,
                                   (long long)c.w);
                double best = 1e30, best_old = 1e30, best_new = 1e30;
                int best_t = -1;
                for (int tac = 0; tac < nt && tac < 24; tac++) {
                    /* 11 samples of 10 back-to-back launches: the GPU stays busy, so small shapes are not
                     * timed as the host's launch latency */
                    float t[11];
                    bool ok = true;
                    for (int i = 0; i < 10 && ok; i++) ok = !enqueue(&g, tac, msg, sizeof msg);
                    for (int i = 0; i < 11 && ok; i++) {
                        ok = !kiln__gpu_event_record(e0, stream, &err);
                        for (int r = 0; r < 10 && ok; r++) ok = !enqueue(&g, tac, msg, sizeof msg);
                        ok = ok && !kiln__gpu_event_record(e1, stream, &err) && !kiln__gpu_sync(stream, &err) &&
                             !kiln__gpu_event_elapsed(e0, e1, &t[i], &err);
                        t[i] /= 10;
                    }
                    if (!ok) {
                        printf("FAIL  timing tactic %d: %s%s\n", tac, msg, err.msg);
                        n_fail++;
                        continue;
                    }
                    qsort(t, 11, sizeof t[0], cmp_f);
                    double us = t[5] * 1e3;
                    if (us < best) best = us, best_t = tac;
                    if (tac < 6 && us < best_old) best_old = us;
                    if (tac >= 6 && us < best_new) best_new = us;
                    if (len < (int)sizeof line - 16) len += snprintf(line + len, sizeof line - (size_t)len, " t%d %.1f", tac, us);
                }
                double flop = 2.0 * 64 * 64 * 9 * (double)d.yd[2] * d.yd[3] * c.n;
                if (best_t >= 0)
                    printf("%s us | best t%d %.1f us %.1f TFLOP/s | old (t0-5) %.1f us, new (t6-18) %.1f us\n", line,
                           best_t, best, flop / (best * 1e-6) / 1e12, best_old < 1e29 ? best_old : -1.0,
                           best_new < 1e29 ? best_new : -1.0);
                gpu_teardown(&g);
                free_data(&d);
            }
    kiln__gpu_event_destroy(e0);
    kiln__gpu_event_destroy(e1);
}

int main(int argc, char **argv)
{
    bool do_timing = true, cpu_only = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-timing")) do_timing = false;
        else if (!strcmp(argv[i], "--cpu-only")) cpu_only = true;
        else if (!strcmp(argv[i], "-v")) verbose = 1;
        else {
            fprintf(stderr, "usage: kiln_deform_conv_test [--no-timing] [--cpu-only] [-v]\n");
            return 2;
        }
    }
    kiln_err err = {{0}};
    kiln_gpu_info info;
    bool gpu = !cpu_only && !kiln__gpu_init(&info, &err);
    if (gpu && (kiln__gpu_stream_create(&stream, &err))) {
        printf("FAIL: %s\n", err.msg);
        return 1;
    }
    if (gpu) printf("device: %s (sm_%d%d)\n", info.name, info.cc_major, info.cc_minor);
    int n_cases = 0;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const cfg *c = &cases[ci];
        data d;
        make_data(c, &d);
        float *ref = builtin_ref(c, &d);
        if (!ref) {
            n_fail++;
            free_data(&d);
            continue;
        }
        n_cases++;
        /* the plugin's CPU math equals the built-in kernel */
        int64_t ny = prod(d.yd, 4);
        float *y = calloc((size_t)ny, sizeof *y);
        kiln__deform_geom g = {c->n, c->c, c->h, c->w, c->m, d.oh, d.ow, c->kh, c->kw, c->sh, c->sw,
                               c->ph, c->pw, c->dh, c->dw, c->group, c->og};
        char what[256];
        snprintf(what, sizeof what, "%s: kiln__cpu_deform_conv_f32", c->name);
        if (kiln__cpu_deform_conv_f32(&g, d.x, d.w, d.off, d.mask, d.b, y)) {
            printf("FAIL  %s: out of memory\n", what);
            n_fail++;
        } else {
            compare(what, y, ref, ny, 1e-5, 1e-6);
        }
        free(y);
        check_plugin_cpu(c, &d, ref, false);
        bool sym = c->ph == c->peh && c->pw == c->pew;
        if (c->mask && sym) check_plugin_cpu(c, &d, ref, true);
        if (c->mask && sym && (ci == 1 || ci == 6)) check_mmcv_network_cpu(c, &d, ref);
        if (gpu) {
            /* fp16: the oracle sees the fp16-rounded inputs */
            data d16 = d;
            float *bufs[5] = {NULL};
            int64_t ns[5] = {prod(d.xd, 4), prod(d.wd, 4), prod(d.od, 4), prod(d.md, 4), c->m};
            float *src[5] = {d.x, d.w, d.off, d.mask, d.b};
            for (int i = 0; i < 5; i++)
                if (src[i]) {
                    bufs[i] = malloc((size_t)ns[i] * sizeof(float));
                    memcpy(bufs[i], src[i], (size_t)ns[i] * sizeof(float));
                }
            d16.x = bufs[0], d16.w = bufs[1], d16.off = bufs[2], d16.mask = bufs[3], d16.b = bufs[4];
            round_all(c, &d16);
            float *ref16 = builtin_ref(c, &d16);
            for (int mode = 0; mode < 3; mode++) {
                check_gpu(c, &d, ref, NULL, false, KILN_PLUGIN_DT_FLOAT, mode);
                if (ref16) check_gpu(c, &d16, NULL, ref16, false, KILN_PLUGIN_DT_FLOAT16, mode);
            }
            if (c->mask && sym) {
                check_gpu(c, &d, ref, NULL, true, KILN_PLUGIN_DT_FLOAT, 1);
                if (ref16) check_gpu(c, &d16, NULL, ref16, true, KILN_PLUGIN_DT_FLOAT16, 0);
            }
            if (c->mask && sym && (ci == 1 || ci == 6)) {
                check_mmcv_network_gpu(c, &d, ref, false);
                if (ref16) check_mmcv_network_gpu(c, &d16, ref16, true);
            }
            free(ref16);
            for (int i = 0; i < 5; i++) free(bufs[i]);
        }
        free(ref);
        free_data(&d);
    }
    check_bad();
    check_plugin_layouts();
    printf("deform conv: %d cases, %d failures (%s)\n", n_cases, n_fail, gpu ? "CPU and GPU" : "CPU only");
    if (gpu && do_timing) timing(); /* also after failures: the numbers still say which tactic is fast */
    if (gpu) kiln__gpu_stream_destroy(stream);
    if (n_fail) return 1;
    if (!gpu && !cpu_only) {
        printf("SKIPPED: GPU part: %s\n", err.msg);
        return 77;
    }
    return 0;
}
