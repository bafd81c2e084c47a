/*
 * Tests of the graph passes (src/passes): small hand-built graphs for every
 * rewrite and for the cases that must not be rewritten, then whole models:
 * every SR fixture and ONNX "light" model is run on the reference backend
 * before and after the passes with the same random input, and must agree
 * within 1e-4 * max(1, max|ref|).
 *
 *   kiln_test_passes [--shared DIR] [--no-models] [-v]
 * DIR holds sr-fixtures/ and onnx-tests/light/ (default: ../shared beside the source tree).
 */
#include "../common/compare.h"
#include "cpu/cpu.h"
#include "ir/ir.h"
#include "passes/passes.h"
#include "test_main.h"
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef KILN_TEST_SHARED_DIR
#define KILN_TEST_SHARED_DIR "../shared"
#endif

static bool verbose;

/* ---- helpers ------------------------------------------------------------ */

static uint64_t rng_state;
static void rng_seed(uint64_t s) { rng_state = s * 0x9E3779B97F4A7C15ull + 1; }
/* Uniform in [lo, hi), never exactly zero. */
static float rng_uniform(float lo, float hi)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    float u = (float)((rng_state >> 11) * (1.0 / 9007199254740992.0));
    float v = lo + (hi - lo) * u;
    return v == 0.0f ? 0.5f * hi : v;
}

static void add_rand_const(kiln_network *net, const char *name, int rank, const int64_t *dims, float lo, float hi)
{
    int64_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    float *p = malloc((size_t)n * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = rng_uniform(lo, hi);
    CHECK(kiln_network_add_constant(net, name, KILN_DT_FLOAT, rank, dims, p, (size_t)n * sizeof *p) == KILN_OK);
    free(p);
}

static void add_scalar(kiln_network *net, const char *name, float v)
{
    CHECK(kiln_network_add_constant(net, name, KILN_DT_FLOAT, 0, NULL, &v, sizeof v) == KILN_OK);
}

static void fill_random(kiln_host_tensor *h, const char *name, kiln_dtype dt, int rank, const int64_t *dims)
{
    memset(h, 0, sizeof *h);
    snprintf(h->name, sizeof h->name, "%s", name ? name : "");
    h->dtype = dt;
    h->rank = rank;
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        h->dims[i] = dims[i];
        n *= dims[i];
    }
    size_t es = kiln_dtype_size(dt);
    h->nbytes = (size_t)n * es;
    h->data = calloc(1, h->nbytes + 1);
    kiln_value v = {.dtype = dt, .data = h->data, .nbytes = h->nbytes};
    for (int64_t i = 0; i < n; i++) {
        if (dt == KILN_DT_INT64 || dt == KILN_DT_INT32) kiln__value_set_i64(&v, i, 1 + (int64_t)(rng_uniform(0, 3)));
        else kiln__value_set_f64(&v, i, rng_uniform(-1.0f, 1.0f));
    }
}

static void pass_log(const char *pass, const kiln_pass_stats *st, void *user)
{
    if (verbose || (user && *(bool *)user))
        printf("    %-26s %4d -> %4d nodes: %s\n", pass, st->nodes_before, st->nodes_after, st->summary);
}

/* Clone of net, optimized. NULL (and a message) on failure. */
static kiln_network *optimized(const kiln_network *net, kiln_pass_options *opts)
{
    kiln_network *o = NULL;
    kiln_err err = {{0}};
    if (kiln__net_clone(net, &o, &err)) {
        printf("clone failed: %s\n", err.msg);
        return NULL;
    }
    kiln_pass_options local = {0};
    if (!opts) opts = &local;
    if (!opts->log) opts->log = pass_log;
    if (kiln__passes_run(o, opts, NULL, NULL, &err)) {
        printf("passes failed: %s\n", err.msg);
        kiln_network_free(o);
        return NULL;
    }
    return o;
}

static int count_op(const kiln_network *net, const char *op)
{
    int n = 0;
    for (int i = 0; i < net->n_nodes; i++) n += !strcmp(net->nodes[i].op_type, op);
    return n;
}

static const kiln_node *find_node(const kiln_network *net, const char *name)
{
    for (int i = 0; i < net->n_nodes; i++)
        if (!strcmp(net->nodes[i].name, name)) return &net->nodes[i];
    return NULL;
}

/* Largest |a-b| over all outputs, and max |a|; -1 when shapes/types differ or a run fails. */
static double compare_runs(kiln_network *a, kiln_network *b, int n_in, const kiln_host_tensor *in, double *ref_max)
{
    int no = kiln_network_output_count(a);
    if (no != kiln_network_output_count(b)) return -1;
    kiln_host_tensor *oa = calloc((size_t)no + 1, sizeof *oa), *ob = calloc((size_t)no + 1, sizeof *ob);
    double worst = 0;
    *ref_max = 0;
    if (kiln_reference_run(a, n_in, in, no, oa)) {
        printf("reference run (original) failed: %s\n", kiln_network_last_error(a));
        worst = -1;
    } else if (kiln_reference_run(b, n_in, in, no, ob)) {
        printf("reference run (optimized) failed: %s\n", kiln_network_last_error(b));
        worst = -1;
        for (int o = 0; o < no; o++) kiln_host_tensor_release(&oa[o]);
    } else {
        for (int o = 0; o < no && worst >= 0; o++) {
            if (oa[o].dtype != ob[o].dtype || oa[o].rank != ob[o].rank || oa[o].nbytes != ob[o].nbytes ||
                strcmp(oa[o].name, ob[o].name)) {
                printf("output %d differs in name/type/shape\n", o);
                worst = -1;
                break;
            }
            for (int d = 0; d < oa[o].rank; d++)
                if (oa[o].dims[d] != ob[o].dims[d]) worst = -1;
            if (worst < 0) break;
            kiln_value va = {.dtype = oa[o].dtype, .data = oa[o].data}, vb = {.dtype = ob[o].dtype, .data = ob[o].data};
            int64_t n = kiln_host_tensor_numel(&oa[o]);
            bool fl = oa[o].dtype == KILN_DT_FLOAT || oa[o].dtype == KILN_DT_DOUBLE || oa[o].dtype == KILN_DT_FLOAT16 ||
                      oa[o].dtype == KILN_DT_BFLOAT16;
            for (int64_t i = 0; i < n; i++) {
                if (!fl) {
                    if (kiln__value_get_i64(&va, i) != kiln__value_get_i64(&vb, i)) worst = INFINITY;
                    continue;
                }
                double x = kiln__value_get_f64(&va, i), y = kiln__value_get_f64(&vb, i);
                if (isnan(x) && isnan(y)) continue;
                double d = fabs(x - y);
                if (!(d <= worst)) worst = d;
                if (fabs(x) > *ref_max) *ref_max = fabs(x);
            }
        }
        for (int o = 0; o < no; o++) {
            kiln_host_tensor_release(&oa[o]);
            kiln_host_tensor_release(&ob[o]);
        }
    }
    free(oa);
    free(ob);
    return worst;
}

/* Runs both networks on one random input [dims] named "x" and checks they agree. */
static void check_same(kiln_network *a, kiln_network *b, int rank, const int64_t *dims)
{
    kiln_host_tensor in;
    fill_random(&in, "", KILN_DT_FLOAT, rank, dims);
    double ref_max, d = compare_runs(a, b, 1, &in, &ref_max);
    double tol = 1e-4 * (ref_max > 1 ? ref_max : 1);
    CHECK(d >= 0 && d <= tol);
    if (!(d >= 0 && d <= tol)) printf("  max abs diff %g (allowed %g)\n", d, tol);
    kiln_host_tensor_release(&in);
}

/* Runs both networks on random float inputs "x" [xd, 4-d] and `second` [rank, dims] and checks
 * they agree within 1e-4 * max(1, max|ref|). */
static void check_same2(kiln_network *a, kiln_network *b, const int64_t *xd, const char *second, int rank,
                        const int64_t *dims)
{
    kiln_host_tensor in[2];
    fill_random(&in[0], "x", KILN_DT_FLOAT, 4, xd);
    fill_random(&in[1], second, KILN_DT_FLOAT, rank, dims);
    double ref, d = compare_runs(a, b, 2, in, &ref);
    CHECK(d >= 0 && d <= 1e-4 * (ref > 1 ? ref : 1));
    kiln_host_tensor_release(&in[0]);
    kiln_host_tensor_release(&in[1]);
}

static kiln_network *new_net(int64_t opset)
{
    kiln_network *net = NULL;
    CHECK(kiln_network_create(&net) == KILN_OK);
    kiln_network_set_opset(net, opset);
    return net;
}

/* x: [1, c, h, w] with h and w symbolic. */
static void add_image_input(kiln_network *net, const char *name, int64_t c)
{
    int64_t dims[4] = {1, c, KILN_DIM_SYMBOLIC, KILN_DIM_SYMBOLIC};
    const char *syms[4] = {NULL, NULL, "h", "w"};
    CHECK(kiln_network_add_input(net, name, KILN_DT_FLOAT, 4, dims, syms) == KILN_OK);
}

static void add_conv3(kiln_network *net, const char *name, const char *x, int64_t cin, int64_t cout, const char *y)
{
    char w[64], b[64];
    snprintf(w, sizeof w, "%s.w", name);
    snprintf(b, sizeof b, "%s.b", name);
    int64_t wd[4] = {cout, cin, 3, 3}, bd[1] = {cout};
    add_rand_const(net, w, 4, wd, -0.3f, 0.3f);
    add_rand_const(net, b, 1, bd, -0.2f, 0.2f);
    CHECK(kiln_network_add_conv(net, name, x, w, b, 3, 3, 1, 1, 1, 1, y) == KILN_OK);
}

static void add_bn(kiln_network *net, const char *name, const char *x, int64_t c, const char *y)
{
    char nm[4][64];
    const char *what[4] = {"scale", "bias", "mean", "var"};
    float lo[4] = {0.5f, -0.5f, -0.3f, 0.2f}, hi[4] = {1.5f, 0.5f, 0.3f, 2.0f};
    for (int i = 0; i < 4; i++) {
        snprintf(nm[i], sizeof nm[i], "%s.%s", name, what[i]);
        add_rand_const(net, nm[i], 1, &c, lo[i], hi[i]);
    }
    const char *in[5] = {x, nm[0], nm[1], nm[2], nm[3]};
    kiln_attr_value eps = {.name = "epsilon", .type = KILN_ATTR_FLOAT, .f = 1e-3f};
    CHECK(kiln_network_add_node(net, name, "BatchNormalization", "", 5, in, 1, &y, 1, &eps) == KILN_OK);
}

static const int64_t img[4] = {1, 4, 9, 7};

/* ---- hand-built patterns ------------------------------------------------ */

/* Conv -> BN -> Relu becomes one FusedConv (Relu), named after the conv, listing all three. */
static void test_conv_bn_relu(void)
{
    kiln_network *net = new_net(17);
    add_image_input(net, "x", 4);
    add_conv3(net, "conv", "x", 4, 6, "c");
    add_bn(net, "bn", "c", 6, "n");
    kiln_network_add_activation(net, "relu", "n", KILN_ACT_RELU, 0, "y");
    kiln_network_mark_output(net, "y");
    kiln_network *o = optimized(net, NULL);
    CHECK(o != NULL);
    if (!o) return;
    CHECK(o->n_nodes == 1);
    const kiln_node *f = find_node(o, "conv");
    CHECK(f && !strcmp(f->op_type, "FusedConv") && !strcmp(f->domain, "kiln"));
    CHECK(f && !strcmp(kiln__attr_string(f, "activation", "?"), "Relu"));
    CHECK(f && !strcmp(kiln__attr_string(f, "fused_nodes", ""), "conv,bn,relu"));
    CHECK(kiln__net_find_tensor(o, "y") >= 0 && o->tensors[kiln__net_find_tensor(o, "y")].is_output);
    /* the old W, B and the BN constants are gone */
    CHECK(kiln__net_find_tensor(o, "conv.w") < 0 && kiln__net_find_tensor(o, "bn.var") < 0);
    check_same(net, o, 4, img);
    kiln_network_free(o);
    kiln_network_free(net);
}

/* RRDB's tail: Conv -> LeakyRelu -> Mul 0.2 -> Add x. */
static void test_conv_leaky_scale_residual(void)
{
    kiln_network *net = new_net(17);
    add_image_input(net, "x", 4);
    add_conv3(net, "conv", "x", 4, 4, "c");
    kiln_network_add_activation(net, "lrelu", "c", KILN_ACT_LEAKY_RELU, 0.2f, "a");
    add_scalar(net, "s", 0.2f);
    kiln_network_add_elementwise(net, "mul", "Mul", "s", "a", "m");
    kiln_network_add_elementwise(net, "add", "Add", "x", "m", "y");
    kiln_network_mark_output(net, "y");
    kiln_network *o = optimized(net, NULL);
    CHECK(o && o->n_nodes == 1);
    if (!o) return;
    const kiln_node *f = &o->nodes[0];
    CHECK(!strcmp(f->op_type, "FusedConv") && f->n_in == 5 && f->in[3] < 0);
    CHECK(!strcmp(o->tensors[f->in[4]].name, "x"));
    CHECK(kiln__attr_float(f, "out_scale", 0) == 0.2f && kiln__attr_float(f, "act_alpha", 0) == 0.2f);
    CHECK(!strcmp(kiln__attr_string(f, "fused_nodes", ""), "conv,lrelu,mul,add"));
    check_same(net, o, 4, img);
    /* an optimized network copies like any other (the builder copies before building) */
    kiln_network *c = NULL;
    kiln_err err = {{0}};
    CHECK(kiln__net_clone(o, &c, &err) == KILN_OK);
    if (c) check_same(net, c, 4, img);
    kiln_network_free(c);
    kiln_network_free(o);
    kiln_network_free(net);
}

/* PRelu with a [C,1,1] slope becomes PRelu with S; a single-value slope becomes LeakyRelu. */
static void test_conv_prelu(void)
{
    for (int scalar = 0; scalar < 2; scalar++) {
        kiln_network *net = new_net(17);
        add_image_input(net, "x", 4);
        add_conv3(net, "conv", "x", 4, 5, "c");
        int64_t sd[3] = {scalar ? 1 : 5, 1, 1};
        add_rand_const(net, "slope", 3, sd, 0.05f, 0.4f);
        CHECK(kiln_network_add_prelu(net, "prelu", "c", "slope", "y") == KILN_OK);
        kiln_network_mark_output(net, "y");
        kiln_network *o = optimized(net, NULL);
        CHECK(o && o->n_nodes == 1);
        if (!o) continue;
        const kiln_node *f = &o->nodes[0];
        CHECK(!strcmp(kiln__attr_string(f, "activation", "?"), scalar ? "LeakyRelu" : "PRelu"));
        CHECK(scalar ? f->n_in == 3 : (f->n_in == 4 && f->in[3] >= 0));
        check_same(net, o, 4, img);
        kiln_network_free(o);
        kiln_network_free(net);
    }
    /* a slope along W (last axis) is not per channel: left alone */
    kiln_network *net = new_net(17);
    int64_t xd[4] = {1, 4, 5, 5};
    CHECK(kiln_network_add_input(net, "x", KILN_DT_FLOAT, 4, xd, NULL) == KILN_OK);
    add_conv3(net, "conv", "x", 4, 5, "c");
    int64_t sd[1] = {5};
    add_rand_const(net, "slope", 1, sd, 0.05f, 0.4f);
    kiln_network_add_prelu(net, "prelu", "c", "slope", "y");
    kiln_network_mark_output(net, "y");
    kiln_network *o = optimized(net, NULL);
    CHECK(o && o->n_nodes == 2 && count_op(o, "Conv") == 1);
    if (o) check_same(net, o, 4, xd);
    kiln_network_free(o);
    kiln_network_free(net);
}

/* Sigmoid, Tanh, Clip (inputs, opset 11+; attributes, opset 6; one bound omitted). */
static void test_conv_other_acts(void)
{
    const char *ops[] = {"Sigmoid", "Tanh", "Clip", "Clip6", "ClipMaxOnly"};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        bool clip6 = !strcmp(ops[k], "Clip6");
        kiln_network *net = new_net(clip6 ? 6 : 17);
        add_image_input(net, "x", 4);
        add_conv3(net, "conv", "x", 4, 3, "c");
        const char *in = "c", *out = "y";
        if (!strcmp(ops[k], "Sigmoid") || !strcmp(ops[k], "Tanh")) {
            CHECK(kiln_network_add_node(net, "act", ops[k], "", 1, &in, 1, &out, 0, NULL) == KILN_OK);
        } else if (clip6) {
            kiln_attr_value a[2] = {{.name = "min", .type = KILN_ATTR_FLOAT, .f = -0.1f},
                                    {.name = "max", .type = KILN_ATTR_FLOAT, .f = 0.15f}};
            CHECK(kiln_network_add_node(net, "act", "Clip", "", 1, &in, 1, &out, 2, a) == KILN_OK);
        } else {
            add_scalar(net, "lo", -0.1f);
            add_scalar(net, "hi", 0.15f);
            bool max_only = !strcmp(ops[k], "ClipMaxOnly");
            const char *ins[3] = {"c", max_only ? "" : "lo", "hi"};
            CHECK(kiln_network_add_node(net, "act", "Clip", "", 3, ins, 1, &out, 0, NULL) == KILN_OK);
        }
        kiln_network_mark_output(net, "y");
        kiln_network *o = optimized(net, NULL);
        CHECK(o && o->n_nodes == 1 && !strcmp(o->nodes[0].op_type, "FusedConv"));
        if (o) {
            const char *act = kiln__attr_string(&o->nodes[0], "activation", "?");
            CHECK(!strcmp(act, strncmp(ops[k], "Clip", 4) ? ops[k] : "Clip"));
            if (!strcmp(ops[k], "ClipMaxOnly")) CHECK(isinf(kiln__attr_float(&o->nodes[0], "act_alpha", 0)));
            check_same(net, o, 4, img);
        }
        kiln_network_free(o);
        kiln_network_free(net);
    }
}

/* Conv -> DepthToSpace -> LeakyRelu: the activation moves before DepthToSpace and fuses into the
 * conv (both modes); a per-channel PRelu, a second reader or a pinned node keeps the order. */
static void test_hoist_activation(void)
{
    static const int64_t small[4] = {1, 4, 5, 3};
    for (int variant = 0; variant < 5; variant++) {
        kiln_network *net = new_net(17);
        add_image_input(net, "x", 4);
        add_conv3(net, "conv", "x", 4, 8, "c");
        kiln_attr_value da[2] = {{.name = "blocksize", .type = KILN_ATTR_INT, .i = 2},
                                 {.name = "mode", .type = KILN_ATTR_STRING, .s = variant == 1 ? "CRD" : "DCR", .s_len = 3}};
        const char *c = "c", *d = "d", *y = "y";
        CHECK(kiln_network_add_node(net, "d2s", "DepthToSpace", "", 1, &c, 1, &d, 2, da) == KILN_OK);
        if (variant == 2) {
            int64_t sd[3] = {2, 1, 1};
            add_rand_const(net, "slope", 3, sd, 0.1f, 0.3f);
            const char *ins[2] = {"d", "slope"};
            CHECK(kiln_network_add_node(net, "act", "PRelu", "", 2, ins, 1, &y, 0, NULL) == KILN_OK);
        } else {
            kiln_network_add_activation(net, "act", "d", KILN_ACT_LEAKY_RELU, 0.2f, "y");
        }
        kiln_network_mark_output(net, "y");
        if (variant == 3) kiln_network_mark_output(net, "d");
        const char *pin[1] = {"act"};
        kiln_pass_options po = {.pinned = pin, .n_pinned = variant == 4 ? 1 : 0};
        kiln_network *o = optimized(net, &po);
        CHECK(o != NULL);
        if (!o) continue;
        bool hoisted = variant < 2;
        CHECK(o->n_nodes == (hoisted ? 2 : 3));
        CHECK(!strcmp(o->nodes[0].op_type, hoisted ? "FusedConv" : "Conv"));
        CHECK(!strcmp(o->nodes[1].op_type, "DepthToSpace"));
        if (hoisted) CHECK(!strcmp(kiln__attr_string(&o->nodes[0], "activation", "?"), "LeakyRelu"));
        int yt = kiln__net_find_tensor(o, "y");
        CHECK(yt >= 0 && o->tensors[yt].is_output);
        check_same(net, o, 4, small);
        kiln_network_free(o);
        kiln_network_free(net);
    }
}

/* --- split_to_slice (lead, session 3) --- */
/* conv -> Split(3 along C) -> Concat(o1, o2) and Sigmoid(o3) (DCNv2's offset/mask head) becomes two
 * Slices; refused: outputs glued out of order, an output read twice, a different Concat axis. */
static void test_split_to_slice(void)
{
    static const int64_t small[4] = {1, 4, 7, 5};
    for (int variant = 0; variant < 6; variant++) {
        kiln_network *net = new_net(variant == 5 ? 18 : 17);
        add_image_input(net, "x", 4);
        add_conv3(net, "conv", "x", 4, 12, "c");
        const char *souts[3] = {"o1", "o2", "o3"};
        if (variant == 1) {
            int64_t sz[3] = {2, 6, 4}, d1 = 3;
            CHECK(kiln_network_add_constant(net, "sizes", KILN_DT_INT64, 1, &d1, sz, sizeof sz) == KILN_OK);
            const char *ins[2] = {"c", "sizes"};
            kiln_attr_value ax = {.name = "axis", .type = KILN_ATTR_INT, .i = 1};
            CHECK(kiln_network_add_node(net, "split", "Split", "", 2, ins, 3, souts, 1, &ax) == KILN_OK);
        } else {
            const char *in = "c";
            kiln_attr_value at[2] = {{.name = "axis", .type = KILN_ATTR_INT, .i = 1},
                                     {.name = "num_outputs", .type = KILN_ATTR_INT, .i = 3}};
            CHECK(kiln_network_add_node(net, "split", "Split", "", 1, &in, 3, souts, variant == 5 ? 2 : 1, at) ==
                  KILN_OK);
        }
        const char *cin[2] = {variant == 2 ? "o2" : "o1", variant == 2 ? "o1" : "o2"};
        kiln_attr_value cax = {.name = "axis", .type = KILN_ATTR_INT, .i = variant == 4 ? 2 : -3};
        const char *off = "off", *msk = "mask";
        CHECK(kiln_network_add_node(net, "cat", "Concat", "", 2, cin, 1, &off, 1, &cax) == KILN_OK);
        const char *o3 = "o3";
        CHECK(kiln_network_add_node(net, "sig", "Sigmoid", "", 1, &o3, 1, &msk, 0, NULL) == KILN_OK);
        kiln_network_mark_output(net, "off");
        kiln_network_mark_output(net, "mask");
        if (variant == 3) kiln_network_mark_output(net, "o2");
        kiln_network *o = optimized(net, NULL);
        CHECK(o != NULL);
        if (!o) {
            kiln_network_free(net);
            continue;
        }
        bool rewritten = variant <= 1 || variant == 5;
        CHECK(count_op(o, "Split") == (rewritten ? 0 : 1));
        CHECK(count_op(o, "Slice") == (rewritten ? 2 : 0));
        check_same(net, o, 4, small);
        kiln_network_free(o);
        kiln_network_free(net);
    }
}
/* --- end split_to_slice --- */

/* Mul (folded into W, no bias made) and Add without an activation; Add with the conv output second. */
static void test_conv_mul_add_only(void)
{
    kiln_network *net = new_net(17);
    add_image_input(net, "x", 4);
    add_image_input(net, "z", 6);
    int64_t wd[4] = {6, 4, 3, 3};
    add_rand_const(net, "w", 4, wd, -0.3f, 0.3f);
    CHECK(kiln_network_add_conv(net, "conv", "x", "w", NULL, 3, 3, 1, 1, 1, 1, "c") == KILN_OK);
    add_scalar(net, "s", 0.5f);
    kiln_network_add_elementwise(net, "mul", "Mul", "c", "s", "m");
    kiln_network_add_elementwise(net, "add", "Add", "z", "m", "y");
    kiln_network_mark_output(net, "y");
    kiln_network *o = optimized(net, NULL);
    CHECK(o && o->n_nodes == 1);
    if (o) {
        const kiln_node *f = &o->nodes[0];
        CHECK(f->n_in == 5 && f->in[2] < 0 && f->in[3] < 0 && !strcmp(kiln__attr_string(f, "activation", "?"), ""));
        int64_t zd[4] = {1, 6, 9, 7};
        check_same2(net, o, img, "z", 4, zd);
    }
    kiln_network_free(o);
    kiln_network_free(net);
}

/* ResNet's bottleneck end: Conv -> Add z -> Relu is one FusedConv with act_after_residual = 1;
 * Conv -> Relu -> Add -> Relu takes the first Relu only (one activation per node). */
static void test_conv_add_relu(void)
{
    for (int pre = 0; pre < 2; pre++) {
        kiln_network *net = new_net(17);
        add_image_input(net, "x", 4);
        add_image_input(net, "z", 4);
        add_conv3(net, "conv", "x", 4, 4, "c");
        const char *sum = "c";
        if (pre) {
            kiln_network_add_activation(net, "relu0", "c", KILN_ACT_RELU, 0, "r0");
            sum = "r0";
        }
        kiln_network_add_elementwise(net, "add", "Add", sum, "z", "a");
        kiln_network_add_activation(net, "relu", "a", KILN_ACT_RELU, 0, "y");
        kiln_network_mark_output(net, "y");
        kiln_network *o = optimized(net, NULL);
        CHECK(o && count_op(o, "FusedConv") == 1 && o->n_nodes == (pre ? 2 : 1));
        if (o) {
            const kiln_node *f = find_node(o, "conv");
            CHECK(f && f->n_in == 5 && !strcmp(kiln__attr_string(f, "activation", "?"), "Relu"));
            CHECK(f && kiln__attr_int(f, "act_after_residual", 0) == (pre ? 0 : 1));
            if (!pre) CHECK(f && !strcmp(kiln__attr_string(f, "fused_nodes", ""), "conv,add,relu"));
            check_same2(net, o, img, "z", 4, img);
            /* the attribute survives a copy (the builder copies before building) */
            kiln_network *c = NULL;
            kiln_err err = {{0}};
            CHECK(kiln__net_clone(o, &c, &err) == KILN_OK);
            const kiln_node *fc = c ? find_node(c, "conv") : NULL;
            CHECK(fc && kiln__attr_int(fc, "act_after_residual", 0) == (pre ? 0 : 1));
            kiln_network_free(c);
        }
        kiln_network_free(o);
        kiln_network_free(net);
    }
    /* a bad act_after_residual is refused by the schema */
    kiln_network *net = new_net(17);
    add_image_input(net, "x", 4);
    int64_t wd[4] = {4, 4, 3, 3};
    add_rand_const(net, "w", 4, wd, -0.3f, 0.3f);
    const char *in[2] = {"x", "w"}, *out = "y";
    kiln_attr_value at = {.name = "act_after_residual", .type = KILN_ATTR_INT, .i = 2};
    CHECK(kiln_network_add_node(net, "f", "FusedConv", "kiln", 2, in, 1, &out, 1, &at) == KILN_ERR_INVALID_ARG);
    at.i = 1;
    const char *out2 = "y2";
    CHECK(kiln_network_add_node(net, "f2", "FusedConv", "kiln", 2, in, 1, &out2, 1, &at) == KILN_OK);
    kiln_network_free(net);
}

/* Caffe2's BatchNorm export: Conv -> BN -> Mul [C,1,1] -> Add [C,1,1] -> Relu is one FusedConv;
 * Sub of a per-channel constant and Mul by a scalar fold too; Sub from a constant does not. */
static void test_fold_scale(void)
{
    kiln_network *net = new_net(17);
    add_image_input(net, "x", 4);
    add_conv3(net, "conv", "x", 4, 6, "c");
    add_bn(net, "bn", "c", 6, "n");
    int64_t cd[3] = {6, 1, 1};
    add_rand_const(net, "sc", 3, cd, 0.5f, 1.5f);
    add_rand_const(net, "sh", 3, cd, -0.5f, 0.5f);
    add_scalar(net, "two", 2.0f);
    kiln_network_add_elementwise(net, "mul", "Mul", "sc", "n", "m");
    kiln_network_add_elementwise(net, "add", "Add", "m", "sh", "a");
    kiln_network_add_elementwise(net, "sub", "Sub", "a", "sh", "s");
    kiln_network_add_elementwise(net, "mul2", "Mul", "s", "two", "t");
    kiln_network_add_activation(net, "relu", "t", KILN_ACT_RELU, 0, "y");
    kiln_network_mark_output(net, "y");
    kiln_network *o = optimized(net, NULL);
    CHECK(o && o->n_nodes == 1 && !strcmp(o->nodes[0].op_type, "FusedConv"));
    if (o) {
        CHECK(!strcmp(kiln__attr_string(&o->nodes[0], "fused_nodes", ""), "conv,bn,mul,add,sub,mul2,relu"));
        check_same(net, o, 4, img);
    }
    kiln_network_free(o);
    kiln_network_free(net);

    /* sh - conv: the conv output is the subtrahend, not folded */
    net = new_net(17);
    add_image_input(net, "x", 4);
    add_conv3(net, "conv", "x", 4, 6, "c");
    add_rand_const(net, "sh", 3, cd, -0.5f, 0.5f);
    kiln_network_add_elementwise(net, "sub", "Sub", "sh", "c", "y");
    kiln_network_mark_output(net, "y");
    o = optimized(net, NULL);
    CHECK(o && count_op(o, "Sub") == 1);
    if (o) check_same(net, o, 4, img);
    kiln_network_free(o);
    kiln_network_free(net);
}

/* A two-input Sum (old opsets' Add) fuses as the residual. */
static void test_conv_sum(void)
{
    kiln_network *net = new_net(6);
    add_image_input(net, "x", 4);
    add_conv3(net, "conv", "x", 4, 4, "c");
    const char *in[2] = {"x", "c"}, *out = "y";
    CHECK(kiln_network_add_node(net, "sum", "Sum", "", 2, in, 1, &out, 0, NULL) == KILN_OK);
    kiln_network_mark_output(net, "y");
    kiln_network *o = optimized(net, NULL);
    CHECK(o && o->n_nodes == 1 && o->nodes[0].n_in == 5);
    if (o) check_same(net, o, 4, img);
    kiln_network_free(o);
    kiln_network_free(net);
}

/* float64: a scale that float cannot hold exactly stays a Mul (the attribute is FLOAT). */
static void test_double_scale(void)
{
    kiln_network *net = new_net(17);
    int64_t xd[4] = {1, 2, 5, 5}, wd[4] = {3, 2, 3, 3};
    CHECK(kiln_network_add_input(net, "x", KILN_DT_DOUBLE, 4, xd, NULL) == KILN_OK);
    double w[54], s = 0.1, half = 0.5;
    for (int i = 0; i < 54; i++) w[i] = rng_uniform(-0.5f, 0.5f);
    kiln_network_add_constant(net, "w", KILN_DT_DOUBLE, 4, wd, w, sizeof w);
    kiln_network_add_constant(net, "s", KILN_DT_DOUBLE, 0, NULL, &s, sizeof s);
    kiln_network_add_constant(net, "half", KILN_DT_DOUBLE, 0, NULL, &half, sizeof half);
    CHECK(kiln_network_add_conv(net, "conv", "x", "w", NULL, 3, 3, 1, 1, 1, 1, "c") == KILN_OK);
    kiln_network_add_activation(net, "relu", "c", KILN_ACT_RELU, 0, "r");
    kiln_network_add_elementwise(net, "mul", "Mul", "r", "s", "y");
    kiln_network_add_activation(net, "relu2", "y", KILN_ACT_RELU, 0, "y2");
    CHECK(kiln_network_add_conv(net, "conv2", "x", "w", NULL, 3, 3, 1, 1, 1, 1, "c2") == KILN_OK);
    kiln_network_add_activation(net, "relu3", "c2", KILN_ACT_RELU, 0, "r2");
    kiln_network_add_elementwise(net, "mul2", "Mul", "r2", "half", "z");
    kiln_network_mark_output(net, "y2");
    kiln_network_mark_output(net, "z");
    kiln_network *o = optimized(net, NULL);
    CHECK(o && count_op(o, "FusedConv") == 2 && count_op(o, "Mul") == 1);
    if (o) {
        const kiln_node *f = find_node(o, "conv"), *f2 = find_node(o, "conv2");
        CHECK(f && kiln__attr_float(f, "out_scale", 0) == 1.0f && f2 && kiln__attr_float(f2, "out_scale", 0) == 0.5f);
        kiln_host_tensor in;
        fill_random(&in, "x", KILN_DT_DOUBLE, 4, xd);
        double ref, d = compare_runs(net, o, 1, &in, &ref);
        CHECK(d >= 0 && d <= 1e-12);
        kiln_host_tensor_release(&in);
    }
    kiln_network_free(o);
    kiln_network_free(net);
}

/* The cases that must not fuse. */
static void test_not_fusable(void)
{
    /* conv output read twice (Relu and Add): nothing fuses */
    kiln_network *net = new_net(17);
    add_image_input(net, "x", 4);
    add_conv3(net, "conv", "x", 4, 4, "c");
    kiln_network_add_activation(net, "relu", "c", KILN_ACT_RELU, 0, "r");
    kiln_network_add_elementwise(net, "add", "Add", "r", "c", "y");
    kiln_network_mark_output(net, "y");
    kiln_network *o = optimized(net, NULL);
    CHECK(o && count_op(o, "Conv") == 1 && count_op(o, "FusedConv") == 0 && o->n_nodes == 3);
    if (o) check_same(net, o, 4, img);
    kiln_network_free(o);
    kiln_network_free(net);

    /* conv output is a graph output: the Relu stays */
    net = new_net(17);
    add_image_input(net, "x", 4);
    add_conv3(net, "conv", "x", 4, 4, "c");
    kiln_network_add_activation(net, "relu", "c", KILN_ACT_RELU, 0, "y");
    kiln_network_mark_output(net, "c");
    kiln_network_mark_output(net, "y");
    o = optimized(net, NULL);
    CHECK(o && count_op(o, "Conv") == 1 && o->n_nodes == 2);
    if (o) check_same(net, o, 4, img);
    kiln_network_free(o);
    kiln_network_free(net);

    /* graph output in the middle: conv+relu fuse, the Mul after the output does not */
    net = new_net(17);
    add_image_input(net, "x", 4);
    add_conv3(net, "conv", "x", 4, 4, "c");
    kiln_network_add_activation(net, "relu", "c", KILN_ACT_RELU, 0, "r");
    add_scalar(net, "s", 3.0f);
    kiln_network_add_elementwise(net, "mul", "Mul", "r", "s", "y");
    kiln_network_mark_output(net, "r");
    kiln_network_mark_output(net, "y");
    o = optimized(net, NULL);
    CHECK(o && count_op(o, "FusedConv") == 1 && count_op(o, "Mul") == 1 && o->n_nodes == 2);
    if (o) {
        const kiln_node *f = find_node(o, "conv");
        CHECK(f && !strcmp(o->tensors[f->out[0]].name, "r"));
        check_same(net, o, 4, img);
    }
    kiln_network_free(o);
    kiln_network_free(net);

    /* Mul by a constant that varies along H (not per channel): not folded, not fused */
    net = new_net(17);
    CHECK(kiln_network_add_input(net, "x", KILN_DT_FLOAT, 4, img, NULL) == KILN_OK);
    add_conv3(net, "conv", "x", 4, 4, "c");
    int64_t hd[4] = {1, 1, 9, 1};
    add_rand_const(net, "v", 4, hd, 0.5f, 1.0f);
    kiln_network_add_elementwise(net, "mul", "Mul", "c", "v", "y");
    kiln_network_mark_output(net, "y");
    o = optimized(net, NULL);
    CHECK(o && count_op(o, "Conv") == 1 && o->n_nodes == 2);
    if (o) check_same(net, o, 4, img);
    kiln_network_free(o);
    kiln_network_free(net);

    /* Add whose other input broadcasts ([1,4,1,1] graph input): the Relu fuses, the Add does not */
    net = new_net(17);
    CHECK(kiln_network_add_input(net, "x", KILN_DT_FLOAT, 4, img, NULL) == KILN_OK);
    int64_t ud[4] = {1, 4, 1, 1};
    CHECK(kiln_network_add_input(net, "u", KILN_DT_FLOAT, 4, ud, NULL) == KILN_OK);
    add_conv3(net, "conv", "x", 4, 4, "c");
    kiln_network_add_activation(net, "relu", "c", KILN_ACT_RELU, 0, "r");
    kiln_network_add_elementwise(net, "add", "Add", "r", "u", "y");
    kiln_network_mark_output(net, "y");
    o = optimized(net, NULL);
    CHECK(o && count_op(o, "FusedConv") == 1 && count_op(o, "Add") == 1 && o->n_nodes == 2);
    if (o) {
        check_same2(net, o, img, "u", 4, ud);
    }
    kiln_network_free(o);
    kiln_network_free(net);

    /* pinned conv: left as it is; pinned Relu: the conv does not absorb it */
    for (int which = 0; which < 2; which++) {
        net = new_net(17);
        add_image_input(net, "x", 4);
        add_conv3(net, "conv", "x", 4, 4, "c");
        add_bn(net, "bn", "c", 4, "n");
        kiln_network_add_activation(net, "relu", "n", KILN_ACT_RELU, 0, "y");
        kiln_network_mark_output(net, "y");
        const char *pins[1] = {which ? "relu" : "conv"};
        kiln_pass_options po = {.pinned = pins, .n_pinned = 1};
        o = optimized(net, &po);
        CHECK(o && count_op(o, "Relu") == 1);
        CHECK(o && count_op(o, "BatchNormalization") == (which ? 0 : 1));
        if (o) check_same(net, o, 4, img);
        kiln_network_free(o);
        kiln_network_free(net);
    }
}

/* BN folding: not when the conv output has another reader or BN statistics are not constant;
 * not (with fp16) when the folded weights overflow float16. */
static void test_bn_cases(void)
{
    kiln_network *net = new_net(17);
    add_image_input(net, "x", 4);
    add_conv3(net, "conv", "x", 4, 4, "c");
    add_bn(net, "bn", "c", 4, "n");
    kiln_network_add_elementwise(net, "add", "Add", "n", "c", "y");
    kiln_network_mark_output(net, "y");
    kiln_network *o = optimized(net, NULL);
    CHECK(o && count_op(o, "BatchNormalization") == 1 && count_op(o, "Conv") == 1);
    if (o) check_same(net, o, 4, img);
    kiln_network_free(o);
    kiln_network_free(net);

    /* mean is a graph input */
    net = new_net(17);
    add_image_input(net, "x", 4);
    int64_t four = 4;
    CHECK(kiln_network_add_input(net, "mean", KILN_DT_FLOAT, 1, &four, NULL) == KILN_OK);
    add_conv3(net, "conv", "x", 4, 4, "c");
    add_rand_const(net, "g", 1, &four, 0.5f, 1.0f);
    add_rand_const(net, "b", 1, &four, 0.5f, 1.0f);
    add_rand_const(net, "v", 1, &four, 0.5f, 1.0f);
    const char *in[5] = {"c", "g", "b", "mean", "v"}, *out = "y";
    kiln_network_add_node(net, "bn", "BatchNormalization", "", 5, in, 1, &out, 0, NULL);
    kiln_network_mark_output(net, "y");
    o = optimized(net, NULL);
    CHECK(o && count_op(o, "BatchNormalization") == 1);
    kiln_network_free(o);
    kiln_network_free(net);

    /* huge scale: fp32 folds, fp16 keeps the pair */
    for (int fp16 = 0; fp16 < 2; fp16++) {
        net = new_net(17);
        add_image_input(net, "x", 4);
        add_conv3(net, "conv", "x", 4, 4, "c");
        float g[4] = {1e6f, 1e6f, 1e6f, 1e6f}, z[4] = {0, 0, 0, 0}, one[4] = {1, 1, 1, 1};
        kiln_network_add_constant(net, "g", KILN_DT_FLOAT, 1, &four, g, sizeof g);
        kiln_network_add_constant(net, "z", KILN_DT_FLOAT, 1, &four, z, sizeof z);
        kiln_network_add_constant(net, "one", KILN_DT_FLOAT, 1, &four, one, sizeof one);
        const char *bin[5] = {"c", "g", "z", "z", "one"};
        kiln_network_add_node(net, "bn", "BatchNormalization", "", 5, bin, 1, &out, 0, NULL);
        kiln_network_mark_output(net, "y");
        kiln_pass_options po = {.precision = fp16 ? KILN_PREC_FP16 : KILN_PREC_TF32};
        o = optimized(net, &po);
        CHECK(o && count_op(o, "BatchNormalization") == (fp16 ? 1 : 0));
        if (o) check_same(net, o, 4, img);
        kiln_network_free(o);
        kiln_network_free(net);
    }
}

/* Identity and Dropout: removed, renamed into a graph output, or kept. */
static void test_identity(void)
{
    kiln_network *net = new_net(17);
    add_image_input(net, "x", 4);
    const char *a = "x", *b = "xi";
    kiln_network_add_node(net, "id0", "Identity", "", 1, &a, 1, &b, 0, NULL);
    add_conv3(net, "conv", "xi", 4, 4, "c");
    /* Dropout with training_mode constant false and an unused mask */
    bool f = false;
    kiln_network_add_constant(net, "train", KILN_DT_BOOL, 0, NULL, &f, 1);
    add_scalar(net, "ratio", 0.3f);
    const char *din[3] = {"c", "ratio", "train"}, *dout[2] = {"d", "mask"};
    CHECK(kiln_network_add_node(net, "drop", "Dropout", "", 3, din, 2, dout, 0, NULL) == KILN_OK);
    kiln_network_add_activation(net, "relu", "d", KILN_ACT_RELU, 0, "r");
    /* r -> Identity -> graph output "y": the fused conv writes "y" directly */
    a = "r";
    b = "y";
    kiln_network_add_node(net, "id1", "Identity", "", 1, &a, 1, &b, 0, NULL);
    kiln_network_mark_output(net, "y");
    /* graph input straight to a graph output through Identity: kept */
    a = "x";
    b = "x_copy";
    kiln_network_add_node(net, "id2", "Identity", "", 1, &a, 1, &b, 0, NULL);
    kiln_network_mark_output(net, "x_copy");
    kiln_network *o = optimized(net, NULL);
    CHECK(o && o->n_nodes == 2 && count_op(o, "Identity") == 1 && count_op(o, "FusedConv") == 1);
    if (o) {
        const kiln_node *fc = find_node(o, "conv");
        CHECK(fc && !strcmp(o->tensors[fc->out[0]].name, "y") && !strcmp(o->tensors[fc->in[0]].name, "x"));
        CHECK(o->n_outputs == 2 && !strcmp(o->tensors[o->outputs[0]].name, "y"));
        CHECK(kiln__net_find_tensor(o, "mask") < 0 && kiln__net_find_tensor(o, "train") < 0);
        check_same(net, o, 4, img);
    }
    kiln_network_free(o);
    kiln_network_free(net);

    /* Dropout whose mask is read: kept */
    net = new_net(17);
    add_image_input(net, "x", 4);
    const char *din2[1] = {"x"}, *dout2[2] = {"d", "mask"};
    kiln_network_add_node(net, "drop", "Dropout", "", 1, din2, 2, dout2, 0, NULL);
    kiln_network_mark_output(net, "d");
    kiln_network_mark_output(net, "mask");
    o = optimized(net, NULL);
    CHECK(o && count_op(o, "Dropout") == 1);
    kiln_network_free(o);
    kiln_network_free(net);
}

/* Constant folding: weight subgraphs, static shape chains, the size limit; dead nodes. */
static void test_fold_and_dead(void)
{
    for (int is_static = 0; is_static < 2; is_static++) {
        kiln_network *net = new_net(17);
        int64_t xd[4] = {1, 4, 6, 5};
        CHECK(kiln_network_add_input(net, "x", KILN_DT_FLOAT, 4, xd, NULL) == KILN_OK);
        int64_t unused_d[1] = {3};
        CHECK(kiln_network_add_input(net, "unused", KILN_DT_FLOAT, 1, unused_d, NULL) == KILN_OK);
        /* weight stored as [3,3,4,6] and transposed to [6,4,3,3] */
        int64_t wt[4] = {3, 3, 4, 6};
        add_rand_const(net, "wt", 4, wt, -0.3f, 0.3f);
        int64_t perm[4] = {3, 2, 0, 1};
        kiln_attr_value pa = {.name = "perm", .type = KILN_ATTR_INTS, .ints = perm, .n = 4};
        const char *ti = "wt", *to = "w";
        CHECK(kiln_network_add_node(net, "transpose", "Transpose", "", 1, &ti, 1, &to, 1, &pa) == KILN_OK);
        CHECK(kiln_network_add_conv(net, "conv", "x", "w", NULL, 3, 3, 1, 1, 1, 1, "c") == KILN_OK);
        /* flatten through Shape -> Gather(0) -> Unsqueeze -> Concat(-1) -> Reshape */
        const char *si = "c", *so = "shp";
        kiln_network_add_node(net, "shape", "Shape", "", 1, &si, 1, &so, 0, NULL);
        int64_t zero = 0, minus1 = -1, one = 1;
        kiln_network_add_constant(net, "idx0", KILN_DT_INT64, 0, NULL, &zero, sizeof zero);
        kiln_network_add_constant(net, "ax0", KILN_DT_INT64, 1, &one, &zero, sizeof zero);
        kiln_network_add_constant(net, "m1", KILN_DT_INT64, 1, &one, &minus1, sizeof minus1);
        const char *gi[2] = {"shp", "idx0"}, *go = "n0";
        kiln_network_add_node(net, "gather", "Gather", "", 2, gi, 1, &go, 0, NULL);
        const char *ui[2] = {"n0", "ax0"}, *uo = "n0u";
        kiln_network_add_node(net, "unsq", "Unsqueeze", "", 2, ui, 1, &uo, 0, NULL);
        const char *ci[2] = {"n0u", "m1"}, *co = "newshape";
        kiln_attr_value axis = {.name = "axis", .type = KILN_ATTR_INT, .i = 0};
        kiln_network_add_node(net, "concat", "Concat", "", 2, ci, 1, &co, 1, &axis);
        const char *ri[2] = {"c", "newshape"}, *ro = "y";
        kiln_network_add_node(net, "reshape", "Reshape", "", 2, ri, 1, &ro, 0, NULL);
        kiln_network_mark_output(net, "y");
        /* a dead branch and an unused constant */
        add_scalar(net, "lonely", 1.0f);
        kiln_network_add_activation(net, "dead_relu", "c", KILN_ACT_RELU, 0, "dead");
        kiln_pass_options po = {.static_shapes = is_static};
        kiln_network *o = optimized(net, &po);
        CHECK(o != NULL);
        if (!o) continue;
        CHECK(count_op(o, "Transpose") == 0 && count_op(o, "Relu") == 0);
        CHECK(count_op(o, "Shape") == (is_static ? 0 : 1) && count_op(o, "Reshape") == 1);
        CHECK(o->n_nodes == (is_static ? 2 : 6));
        CHECK(kiln__net_find_tensor(o, "lonely") < 0 && kiln__net_find_tensor(o, "wt") < 0);
        CHECK(o->n_inputs == 2 && kiln__net_find_tensor(o, "unused") >= 0);
        check_same2(net, o, xd, "unused", 1, unused_d);
        kiln_network_free(o);

        /* with a 100-byte limit the 864-byte transposed weight is not folded */
        kiln_pass_options small = {.static_shapes = is_static, .fold_max_bytes = 100};
        o = optimized(net, &small);
        CHECK(o && count_op(o, "Transpose") == 1);
        kiln_network_free(o);
        kiln_network_free(net);
    }
}

/* FusedConv's schema: validation of attributes and inputs. */
static void test_fused_schema(void)
{
    kiln_network *net = new_net(17);
    add_image_input(net, "x", 4);
    int64_t wd[4] = {4, 4, 3, 3};
    add_rand_const(net, "w", 4, wd, -1, 1);
    int64_t ks[2] = {3, 3}, pads[4] = {1, 1, 1, 1};
    kiln_attr_value at[3] = {{.name = "kernel_shape", .type = KILN_ATTR_INTS, .ints = ks, .n = 2},
                             {.name = "pads", .type = KILN_ATTR_INTS, .ints = pads, .n = 4},
                             {.name = "activation", .type = KILN_ATTR_STRING, .s = "Gelu", .s_len = 4}};
    const char *in[4] = {"x", "w", "", "x"}, *out = "y";
    CHECK(kiln_network_add_node(net, "f1", "FusedConv", "kiln", 2, in, 1, &out, 3, at) == KILN_ERR_INVALID_ARG);
    CHECK(strstr(kiln_network_last_error(net), "Gelu") != NULL);
    at[2].s = "PRelu";
    at[2].s_len = 5;
    const char *out2 = "y2";
    CHECK(kiln_network_add_node(net, "f2", "FusedConv", "kiln", 2, in, 1, &out2, 3, at) == KILN_ERR_GRAPH);
    kiln_network_free(net);

    /* Z of the wrong shape is caught by infer at run time */
    net = new_net(17);
    add_image_input(net, "x", 4);
    int64_t zd[4] = {1, 4, 2, 2};
    CHECK(kiln_network_add_input(net, "z", KILN_DT_FLOAT, 4, zd, NULL) == KILN_OK);
    add_rand_const(net, "w", 4, wd, -1, 1);
    at[2].s = "Relu";
    at[2].s_len = 4;
    const char *in3[5] = {"x", "w", "", "", "z"};
    CHECK(kiln_network_add_node(net, "f3", "FusedConv", "kiln", 5, in3, 1, &out, 3, at) == KILN_OK);
    kiln_network_mark_output(net, "y");
    kiln_host_tensor hin[2], hout;
    fill_random(&hin[0], "x", KILN_DT_FLOAT, 4, img);
    fill_random(&hin[1], "z", KILN_DT_FLOAT, 4, zd);
    CHECK(kiln_reference_run(net, 2, hin, 1, &hout) == KILN_ERR_SHAPE);
    CHECK(strstr(kiln_network_last_error(net), "f3") != NULL);
    kiln_host_tensor_release(&hin[0]);
    kiln_host_tensor_release(&hin[1]);
    kiln_network_free(net);
}

static void record_pass(const char *pass, kiln_network *net, void *user)
{
    char *buf = user;
    size_t len = strlen(buf);
    snprintf(buf + len, 512 - len, "%s%s", len ? "," : "", pass);
}

/* The pass list, the after-callback, skipping, and idempotence (a second run changes nothing). */
static void test_driver(void)
{
    int n;
    const kiln_pass *list = kiln__passes(&n);
    CHECK(n == 9 && !strcmp(list[0].name, "eliminate_identity")); /* + batch_branches, split_to_slice (session 3) */
    CHECK(kiln__pass_find("fuse_conv_activation") != NULL && kiln__pass_find("nope") == NULL);
    kiln_network *net = new_net(17);
    add_image_input(net, "x", 4);
    add_conv3(net, "conv", "x", 4, 4, "c");
    add_bn(net, "bn", "c", 4, "n");
    kiln_network_add_activation(net, "relu", "n", KILN_ACT_RELU, 0, "y");
    kiln_network_mark_output(net, "y");
    char seen[512] = "";
    const char *skip[3] = {"fuse_conv_activation", "fold_scale_into_conv", "hoist_activation"};
    kiln_pass_options po = {.skip = skip, .n_skip = 3};
    kiln_err err = {{0}};
    CHECK(kiln__passes_run(net, &po, record_pass, seen, &err) == KILN_OK);
    CHECK(!strcmp(seen, "eliminate_identity,fold_constants,remove_dead_nodes,batch_branches,split_to_slice,"
                        "fold_batchnorm_into_conv"));
    CHECK(count_op(net, "Conv") == 1 && count_op(net, "Relu") == 1 && net->n_nodes == 2);
    CHECK(kiln__passes_run(net, NULL, NULL, NULL, &err) == KILN_OK && net->n_nodes == 1);
    kiln_network_free(net);
}

/* --- batch_branches (session 3) ---------------------------------------------- */

static int count_convs(const kiln_network *net) { return count_op(net, "Conv") + count_op(net, "FusedConv"); }

/* Runs both networks on random float inputs (names[i], rank 4, dims[i]) and checks they agree. */
static void check_same_n(kiln_network *a, kiln_network *b, int n, const char *const *names, const int64_t (*dims)[4])
{
    kiln_host_tensor in[8];
    for (int i = 0; i < n; i++) fill_random(&in[i], names[i], KILN_DT_FLOAT, 4, dims[i]);
    double ref, d = compare_runs(a, b, n, in, &ref);
    double tol = 1e-4 * (ref > 1 ? ref : 1);
    CHECK(d >= 0 && d <= tol);
    if (!(d >= 0 && d <= tol)) printf("  max abs diff %g (allowed %g)\n", d, tol);
    for (int i = 0; i < n; i++) kiln_host_tensor_release(&in[i]);
}

/* Branches b = 0..k-1, EDVR's shape: y_b = conv2(lrelu(conv1(cat(x_b, ref)))) + ref, the same weights
 * for all; ref is a shared activation (repeated for the Concat, broadcast by the Add when n == 1). */
static kiln_network *branch_net(int k, int64_t n, int64_t c, bool sym, int64_t opset)
{
    kiln_network *net = new_net(opset);
    int64_t xd[4] = {n, c, sym ? KILN_DIM_SYMBOLIC : 7, sym ? KILN_DIM_SYMBOLIC : 5};
    const char *syms[4] = {NULL, NULL, "h", "w"};
    CHECK(kiln_network_add_input(net, "ref", KILN_DT_FLOAT, 4, xd, syms) == KILN_OK);
    int64_t w1[4] = {c, 2 * c, 3, 3}, w2[4] = {c, c, 3, 3}, bd[1] = {c};
    add_rand_const(net, "w1", 4, w1, -0.3f, 0.3f);
    add_rand_const(net, "b1", 1, bd, -0.2f, 0.2f);
    add_rand_const(net, "w2", 4, w2, -0.3f, 0.3f);
    for (int b = 0; b < k; b++) {
        char x[32], cat[32], c1[32], a1[32], c2[32], y[32], nm[32];
        snprintf(x, sizeof x, "x%d", b);
        snprintf(cat, sizeof cat, "cat%d", b);
        snprintf(c1, sizeof c1, "c1_%d", b);
        snprintf(a1, sizeof a1, "a1_%d", b);
        snprintf(c2, sizeof c2, "c2_%d", b);
        snprintf(y, sizeof y, "y%d", b);
        CHECK(kiln_network_add_input(net, x, KILN_DT_FLOAT, 4, xd, syms) == KILN_OK);
        const char *ci[2] = {x, "ref"};
        snprintf(nm, sizeof nm, "concat%d", b);
        CHECK(kiln_network_add_concat(net, nm, 2, ci, 1, cat) == KILN_OK);
        snprintf(nm, sizeof nm, "conv1_%d", b);
        CHECK(kiln_network_add_conv(net, nm, cat, "w1", "b1", 3, 3, 1, 1, 1, 1, c1) == KILN_OK);
        snprintf(nm, sizeof nm, "lrelu%d", b);
        CHECK(kiln_network_add_activation(net, nm, c1, KILN_ACT_LEAKY_RELU, 0.1f, a1) == KILN_OK);
        snprintf(nm, sizeof nm, "conv2_%d", b);
        CHECK(kiln_network_add_conv(net, nm, a1, "w2", NULL, 3, 3, 1, 1, 1, 1, c2) == KILN_OK);
        snprintf(nm, sizeof nm, "add%d", b);
        CHECK(kiln_network_add_elementwise(net, nm, "Add", c2, "ref", y) == KILN_OK);
        kiln_network_mark_output(net, y);
    }
    return net;
}

static void check_branch_net(kiln_network *net, kiln_network *o, int k, int64_t n, int64_t c)
{
    const char *names[5] = {"ref", "x0", "x1", "x2", "x3"};
    int64_t dims[5][4];
    for (int i = 0; i <= k; i++) {
        dims[i][0] = n;
        dims[i][1] = c;
        dims[i][2] = 7;
        dims[i][3] = 5;
    }
    check_same_n(net, o, k + 1, names, (const int64_t(*)[4])dims);
}

/* Two and three branches (batch 1 and 2, fixed and symbolic H/W): one conv per weight remains,
 * the graph outputs keep their names, the results agree. */
static void test_batch_basic(void)
{
    for (int k = 2; k <= 3; k++)
        for (int variant = 0; variant < 4; variant++) {
            int64_t n = variant == 2 ? 2 : 1, c = 3;
            bool sym = variant == 1;
            /* variant 3: opset 11, Split's sizes as an attribute */
            kiln_network *net = branch_net(k, n, c, sym, variant == 3 ? 11 : 17);
            kiln_network *o = optimized(net, NULL);
            CHECK(o != NULL);
            if (!o) continue;
            CHECK(count_convs(o) == 2);
            /* one Split(axis 0) back into the branch outputs, one Concat of the inputs, one of ref's copies */
            /* batch 2: ref is repeated for the Add too, which then fuses into the conv */
            CHECK(count_op(o, "Split") == 1 && count_op(o, "Add") == (n == 1 ? 1 : 0));
            CHECK(o->n_outputs == k && !strcmp(o->tensors[o->outputs[k - 1]].name, k == 2 ? "y1" : "y2"));
            check_branch_net(net, o, k, n, c);
            kiln_network_free(o);
            /* KILN_NO_BATCH_BRANCHES=1 skips the pass */
            setenv("KILN_NO_BATCH_BRANCHES", "1", 1);
            o = optimized(net, NULL);
            unsetenv("KILN_NO_BATCH_BRANCHES");
            CHECK(o && count_convs(o) == 2 * k && count_op(o, "Split") == 0);
            kiln_network_free(o);
            /* a pinned member stays alone; with three branches the other two still batch */
            const char *pin[1] = {"conv1_0"};
            kiln_pass_options po = {.pinned = pin, .n_pinned = 1};
            o = optimized(net, &po);
            CHECK(o && find_node(o, "conv1_0") && !strcmp(find_node(o, "conv1_0")->op_type, "Conv"));
            if (o) {
                CHECK(count_convs(o) == (k == 2 ? 3 : 4)); /* k = 3: branches 1 and 2 batch, branch 0 not */
                check_branch_net(net, o, k, n, c);
            }
            kiln_network_free(o);
            kiln_network_free(net);
        }
}

/* Same weights on a chain (x -> conv W -> relu -> conv W): dependent, not batched. Same weights
 * with different attributes (dilation 1 vs 2, same output shape): not batched. Different LeakyRelu
 * slopes after batched convs: the convs batch, the activations do not. */
static void test_batch_refused(void)
{
    kiln_network *net = new_net(17);
    add_image_input(net, "x", 4);
    int64_t wd[4] = {4, 4, 3, 3};
    add_rand_const(net, "w", 4, wd, -0.3f, 0.3f);
    CHECK(kiln_network_add_conv(net, "conv_a", "x", "w", NULL, 3, 3, 1, 1, 1, 1, "a") == KILN_OK);
    kiln_network_add_activation(net, "relu", "a", KILN_ACT_RELU, 0, "r");
    CHECK(kiln_network_add_conv(net, "conv_b", "r", "w", NULL, 3, 3, 1, 1, 1, 1, "y") == KILN_OK);
    kiln_network_mark_output(net, "y");
    kiln_network *o = optimized(net, NULL);
    CHECK(o && count_convs(o) == 2 && count_op(o, "Split") == 0 && count_op(o, "Concat") == 0);
    if (o) check_same(net, o, 4, img);
    kiln_network_free(o);
    kiln_network_free(net);

    net = new_net(17);
    add_image_input(net, "x0", 4);
    add_image_input(net, "x1", 4);
    add_rand_const(net, "w", 4, wd, -0.3f, 0.3f);
    CHECK(kiln_network_add_conv(net, "conv0", "x0", "w", NULL, 3, 3, 1, 1, 1, 1, "y0") == KILN_OK);
    CHECK(kiln_network_add_conv(net, "conv1", "x1", "w", NULL, 3, 3, 1, 2, 2, 1, "y1") == KILN_OK);
    kiln_network_mark_output(net, "y0");
    kiln_network_mark_output(net, "y1");
    o = optimized(net, NULL);
    CHECK(o && count_convs(o) == 2 && count_op(o, "Split") == 0);
    const char *names[2] = {"x0", "x1"};
    const int64_t dims[2][4] = {{1, 4, 9, 7}, {1, 4, 9, 7}};
    if (o) check_same_n(net, o, 2, names, dims);
    kiln_network_free(o);
    kiln_network_free(net);

    net = new_net(17);
    add_image_input(net, "x0", 4);
    add_image_input(net, "x1", 4);
    add_rand_const(net, "w", 4, wd, -0.3f, 0.3f);
    CHECK(kiln_network_add_conv(net, "conv0", "x0", "w", NULL, 3, 3, 1, 1, 1, 1, "c0") == KILN_OK);
    CHECK(kiln_network_add_conv(net, "conv1", "x1", "w", NULL, 3, 3, 1, 1, 1, 1, "c1") == KILN_OK);
    kiln_network_add_activation(net, "act0", "c0", KILN_ACT_LEAKY_RELU, 0.1f, "y0");
    kiln_network_add_activation(net, "act1", "c1", KILN_ACT_LEAKY_RELU, 0.2f, "y1");
    kiln_network_mark_output(net, "y0");
    kiln_network_mark_output(net, "y1");
    o = optimized(net, NULL);
    CHECK(o && count_convs(o) == 1 && count_op(o, "LeakyRelu") == 2 && count_op(o, "Split") == 1);
    if (o) check_same_n(net, o, 2, names, dims);
    kiln_network_free(o);
    kiln_network_free(net);
}

/* EDVR's frame loop: X [1, k, C, H, W], Gather(X, i, axis=1) -> conv -> lrelu -> Unsqueeze(1),
 * stacked by Concat(axis 1). Becomes Squeeze -> one conv -> Reshape: no Gather, Split or Concat left. */
static void test_batch_gather_stack(void)
{
    for (int k = 2; k <= 4; k++) {
        /* k = 4: opset 11 (Squeeze and Unsqueeze take axes as attributes) */
        bool old = k == 4;
        kiln_network *net = new_net(old ? 11 : 17);
        int64_t xd[5] = {1, k, 3, 6, 5};
        CHECK(kiln_network_add_input(net, "x", KILN_DT_FLOAT, 5, xd, NULL) == KILN_OK);
        int64_t wd[4] = {4, 3, 3, 3}, one = 1;
        add_rand_const(net, "w", 4, wd, -0.3f, 0.3f);
        kiln_network_add_constant(net, "ax1", KILN_DT_INT64, 1, &one, &one, sizeof one);
        const char *stack[4];
        char un[4][32];
        CHECK(k <= 4);
        for (int i = 0; i < k; i++) {
            char idx[32], g[32], cv[32], a[32], nm[32];
            int64_t v = i == k - 1 ? -1 : i; /* a negative index too */
            snprintf(idx, sizeof idx, "i%d", i);
            kiln_network_add_constant(net, idx, KILN_DT_INT64, 0, NULL, &v, sizeof v);
            snprintf(g, sizeof g, "g%d", i);
            snprintf(cv, sizeof cv, "c%d", i);
            snprintf(a, sizeof a, "a%d", i);
            snprintf(un[i], sizeof un[i], "u%d", i);
            const char *gi[2] = {"x", idx}, *go = g;
            kiln_attr_value ax = {.name = "axis", .type = KILN_ATTR_INT, .i = 1};
            snprintf(nm, sizeof nm, "gather%d", i);
            CHECK(kiln_network_add_node(net, nm, "Gather", "", 2, gi, 1, &go, 1, &ax) == KILN_OK);
            snprintf(nm, sizeof nm, "conv%d", i);
            CHECK(kiln_network_add_conv(net, nm, g, "w", NULL, 3, 3, 1, 1, 1, 1, cv) == KILN_OK);
            snprintf(nm, sizeof nm, "lrelu%d", i);
            kiln_network_add_activation(net, nm, cv, KILN_ACT_LEAKY_RELU, 0.1f, a);
            const char *ui[2] = {a, "ax1"}, *uo = un[i];
            kiln_attr_value ua = {.name = "axes", .type = KILN_ATTR_INTS, .ints = &one, .n = 1};
            snprintf(nm, sizeof nm, "unsq%d", i);
            CHECK(kiln_network_add_node(net, nm, "Unsqueeze", "", old ? 1 : 2, ui, 1, &uo, old ? 1 : 0, &ua) ==
                  KILN_OK);
            stack[i] = un[i];
        }
        CHECK(kiln_network_add_concat(net, "stack", k, stack, 1, "y") == KILN_OK);
        kiln_network_mark_output(net, "y");
        kiln_network *o = optimized(net, NULL);
        CHECK(o && count_convs(o) == 1 && count_op(o, "Gather") == 0 && count_op(o, "Split") == 0 &&
              count_op(o, "Concat") == 0);

        if (o) {
            kiln_host_tensor in;
            fill_random(&in, "x", KILN_DT_FLOAT, 5, xd);
            double ref, d = compare_runs(net, o, 1, &in, &ref);
            CHECK(d >= 0 && d <= 1e-4 * (ref > 1 ? ref : 1));
            kiln_host_tensor_release(&in);
        }
        kiln_network_free(o);
        kiln_network_free(net);
    }
}

/* Resize between batched convs: with scales (1 on N) the Resize batches as it is; with sizes its
 * N entry is rewritten; a Resize of N itself stays per branch. */
static void test_batch_resize(void)
{
    for (int mode = 0; mode < 3; mode++) {
        kiln_network *net = new_net(13);
        int64_t xd[4] = {1, 3, 5, 4};
        int64_t wd[4] = {3, 3, 3, 3};
        add_rand_const(net, "w", 4, wd, -0.3f, 0.3f);
        add_rand_const(net, "w2", 4, wd, -0.3f, 0.3f);
        float sc[4] = {mode == 2 ? 2.0f : 1.0f, 1, 2, 3};
        int64_t four = 4, sz[4] = {1, 3, 10, 12};
        kiln_network_add_constant(net, "scales", KILN_DT_FLOAT, 1, &four, sc, sizeof sc);
        kiln_network_add_constant(net, "sizes", KILN_DT_INT64, 1, &four, sz, sizeof sz);
        const char *names[3] = {"x0", "x1", "x2"};
        for (int b = 0; b < 3; b++) {
            char c[32], r[32], y[32], nm[32];
            snprintf(c, sizeof c, "c%d", b);
            snprintf(r, sizeof r, "r%d", b);
            snprintf(y, sizeof y, "y%d", b);
            CHECK(kiln_network_add_input(net, names[b], KILN_DT_FLOAT, 4, xd, NULL) == KILN_OK);
            snprintf(nm, sizeof nm, "conv%d", b);
            CHECK(kiln_network_add_conv(net, nm, names[b], "w", NULL, 3, 3, 1, 1, 1, 1, c) == KILN_OK);
            const char *ri[4] = {c, "", mode == 1 ? "" : "scales", mode == 1 ? "sizes" : ""}, *ro = r;
            kiln_attr_value md = {.name = "mode", .type = KILN_ATTR_STRING, .s = "linear", .s_len = 6};
            snprintf(nm, sizeof nm, "resize%d", b);
            CHECK(kiln_network_add_node(net, nm, "Resize", "", 4, ri, 1, &ro, 1, &md) == KILN_OK);
            snprintf(nm, sizeof nm, "conv2_%d", b);
            CHECK(kiln_network_add_conv(net, nm, r, "w2", NULL, 3, 3, 1, 1, 1, 1, y) == KILN_OK);
            kiln_network_mark_output(net, y);
        }
        kiln_network *o = optimized(net, NULL);
        CHECK(o != NULL);
        if (!o) continue;
        /* mode 2 resizes N: the Resizes stay per branch (the convs before and after still batch) */
        CHECK(count_op(o, "Resize") == (mode == 2 ? 3 : 1) && count_convs(o) == 2);
        const int64_t dims[3][4] = {{1, 3, 5, 4}, {1, 3, 5, 4}, {1, 3, 5, 4}};
        check_same_n(net, o, 3, names, dims);
        kiln_network_free(o);
        kiln_network_free(net);
    }
}

/* DeformConv branches (X, offset and mask per branch, EDVR's pack) with a Split along channels and
 * a Sigmoid on the way; odd sizes, batch 2 per branch; ONNX DeformConv and mmcv's op (the plugin). */
static void test_batch_deform(void)
{
    for (int mmcv = 0; mmcv < 2; mmcv++) {
        kiln_network *net = new_net(19);
        int64_t xd[4] = {2, 4, 5, 7}, wo[4] = {27, 4, 3, 3}, wd[4] = {3, 4, 3, 3}, bd[1] = {3}, three = 3;
        add_rand_const(net, "w_off", 4, wo, -0.2f, 0.2f);
        add_rand_const(net, "w", 4, wd, -0.3f, 0.3f);
        add_rand_const(net, "b", 1, bd, -0.2f, 0.2f);
        int64_t parts[3] = {9, 9, 9};
        kiln_network_add_constant(net, "parts", KILN_DT_INT64, 1, &three, parts, sizeof parts);
        const char *names[2] = {"x0", "x1"};
        for (int br = 0; br < 2; br++) {
            char o[32], s[3][32], off[32], m[32], y[32], nm[32];
            CHECK(kiln_network_add_input(net, names[br], KILN_DT_FLOAT, 4, xd, NULL) == KILN_OK);
            snprintf(o, sizeof o, "o%d", br);
            snprintf(nm, sizeof nm, "conv_off%d", br);
            CHECK(kiln_network_add_conv(net, nm, names[br], "w_off", NULL, 3, 3, 1, 1, 1, 1, o) == KILN_OK);
            for (int j = 0; j < 3; j++) snprintf(s[j], sizeof s[j], "s%d_%d", br, j);
            const char *si[2] = {o, "parts"}, *so[3] = {s[0], s[1], s[2]};
            kiln_attr_value ax = {.name = "axis", .type = KILN_ATTR_INT, .i = 1};
            snprintf(nm, sizeof nm, "split%d", br);
            CHECK(kiln_network_add_node(net, nm, "Split", "", 2, si, 3, so, 1, &ax) == KILN_OK);
            snprintf(off, sizeof off, "off%d", br);
            const char *ci[2] = {s[0], s[1]};
            snprintf(nm, sizeof nm, "cat%d", br);
            CHECK(kiln_network_add_concat(net, nm, 2, ci, 1, off) == KILN_OK);
            snprintf(m, sizeof m, "m%d", br);
            snprintf(nm, sizeof nm, "sig%d", br);
            CHECK(kiln_network_add_activation(net, nm, s[2], KILN_ACT_SIGMOID, 0, m) == KILN_OK);
            snprintf(y, sizeof y, "y%d", br);
            const char *di[5] = {names[br], "w", off, "b", m}, *mi[5] = {names[br], off, m, "w", "b"}, *dout = y;
            int64_t ks[2] = {3, 3}, pads[4] = {1, 1, 1, 1};
            kiln_attr_value da[2] = {{.name = "kernel_shape", .type = KILN_ATTR_INTS, .ints = ks, .n = 2},
                                     {.name = "pads", .type = KILN_ATTR_INTS, .ints = pads, .n = 4}};
            kiln_attr_value ma = {.name = "padding", .type = KILN_ATTR_INTS, .ints = pads, .n = 2};
            snprintf(nm, sizeof nm, "dcn%d", br);
            if (mmcv)
                CHECK(kiln_network_add_node(net, nm, "MMCVModulatedDeformConv2d", "mmcv", 5, mi, 1, &dout, 1, &ma) ==
                      KILN_OK);
            else
                CHECK(kiln_network_add_node(net, nm, "DeformConv", "", 5, di, 1, &dout, 2, da) == KILN_OK);
            kiln_network_mark_output(net, y);
        }
        kiln_network *o = optimized(net, NULL);
        CHECK(o && count_op(o, mmcv ? "MMCVModulatedDeformConv2d" : "DeformConv") == 1 && count_convs(o) == 1 &&
              count_op(o, "Sigmoid") == 1);
        const int64_t dims[2][4] = {{2, 4, 5, 7}, {2, 4, 5, 7}};
        if (o) check_same_n(net, o, 2, names, dims);
        kiln_network_free(o);
        kiln_network_free(net);
    }
}

/* Conv -> Slice (along H) -> Transpose (H, W) -> ReduceMean (channels) -> Sigmoid per branch: all of it
 * batches; a Slice along axis 0 ends the group (the conv before it still batches). */
static void test_batch_ops(void)
{
    for (int axis0 = 0; axis0 < 2; axis0++) {
        kiln_network *net = new_net(17);
        int64_t wd[4] = {4, 4, 3, 3}, one = 1, st[1] = {1}, en[1] = {5}, ax[1] = {axis0 ? 0 : 2};
        add_rand_const(net, "w", 4, wd, -0.3f, 0.3f);
        kiln_network_add_constant(net, "st", KILN_DT_INT64, 1, &one, st, sizeof st);
        kiln_network_add_constant(net, "en", KILN_DT_INT64, 1, &one, en, sizeof en);
        kiln_network_add_constant(net, "ax", KILN_DT_INT64, 1, &one, ax, sizeof ax);
        const char *names[2] = {"x0", "x1"};
        for (int b = 0; b < 2; b++) {
            char c[32], sl[32], tr[32], rd[32], y[32], nm[32];
            int64_t xd[4] = {axis0 ? 6 : 1, 4, 6, 5};
            CHECK(kiln_network_add_input(net, names[b], KILN_DT_FLOAT, 4, xd, NULL) == KILN_OK);
            snprintf(c, sizeof c, "c%d", b);
            snprintf(sl, sizeof sl, "sl%d", b);
            snprintf(tr, sizeof tr, "tr%d", b);
            snprintf(rd, sizeof rd, "rd%d", b);
            snprintf(y, sizeof y, "y%d", b);
            snprintf(nm, sizeof nm, "conv%d", b);
            CHECK(kiln_network_add_conv(net, nm, names[b], "w", NULL, 3, 3, 1, 1, 1, 1, c) == KILN_OK);
            const char *si[4] = {c, "st", "en", "ax"}, *so = sl;
            snprintf(nm, sizeof nm, "slice%d", b);
            CHECK(kiln_network_add_node(net, nm, "Slice", "", 4, si, 1, &so, 0, NULL) == KILN_OK);
            int64_t perm[4] = {0, 1, 3, 2}, rax[1] = {1};
            kiln_attr_value pa = {.name = "perm", .type = KILN_ATTR_INTS, .ints = perm, .n = 4};
            const char *ti = sl, *to = tr, *ri = tr, *ro = rd;
            snprintf(nm, sizeof nm, "transpose%d", b);
            CHECK(kiln_network_add_node(net, nm, "Transpose", "", 1, &ti, 1, &to, 1, &pa) == KILN_OK);
            kiln_attr_value ra = {.name = "axes", .type = KILN_ATTR_INTS, .ints = rax, .n = 1};
            snprintf(nm, sizeof nm, "reduce%d", b);
            CHECK(kiln_network_add_node(net, nm, "ReduceMean", "", 1, &ri, 1, &ro, 1, &ra) == KILN_OK);
            snprintf(nm, sizeof nm, "sig%d", b);
            CHECK(kiln_network_add_activation(net, nm, rd, KILN_ACT_SIGMOID, 0, y) == KILN_OK);
            kiln_network_mark_output(net, y);
        }
        kiln_network *o = optimized(net, NULL);
        CHECK(o && count_convs(o) == 1 && count_op(o, "Slice") == (axis0 ? 2 : 1) &&
              count_op(o, "Sigmoid") == (axis0 ? 2 : 1) && count_op(o, "ReduceMean") == (axis0 ? 2 : 1));
        const int64_t dims[2][4] = {{axis0 ? 6 : 1, 4, 6, 5}, {axis0 ? 6 : 1, 4, 6, 5}};
        if (o) check_same_n(net, o, 2, names, dims);
        kiln_network_free(o);
        kiln_network_free(net);
    }
}

/* One frame of a batch seen as [1, k, ...]: Gather(Reshape(x), i, axis=1) becomes a Slice of x
 * along axis 0 (the 5-D view goes); as a graph output too. */
static void test_batch_gather_slice(void)
{
    for (int as_output = 0; as_output < 2; as_output++) {
        kiln_network *net = new_net(17);
        int64_t xd[4] = {3, 4, 6, 5}, wd[4] = {4, 4, 3, 3}, five = 5, shp[5] = {1, 3, 4, 6, 5}, idx = 2;
        CHECK(kiln_network_add_input(net, "x", KILN_DT_FLOAT, 4, xd, NULL) == KILN_OK);
        add_rand_const(net, "w", 4, wd, -0.3f, 0.3f);
        kiln_network_add_constant(net, "shp", KILN_DT_INT64, 1, &five, shp, sizeof shp);
        kiln_network_add_constant(net, "idx", KILN_DT_INT64, 0, NULL, &idx, sizeof idx);
        CHECK(kiln_network_add_conv(net, "conv", "x", "w", NULL, 3, 3, 1, 1, 1, 1, "c") == KILN_OK);
        const char *ri[2] = {"c", "shp"}, *ro = "v", *gi[2] = {"v", "idx"}, *go = "g";
        CHECK(kiln_network_add_node(net, "view", "Reshape", "", 2, ri, 1, &ro, 0, NULL) == KILN_OK);
        kiln_attr_value ax = {.name = "axis", .type = KILN_ATTR_INT, .i = 1};
        CHECK(kiln_network_add_node(net, "select", "Gather", "", 2, gi, 1, &go, 1, &ax) == KILN_OK);
        if (as_output) {
            kiln_network_mark_output(net, "g");
        } else {
            CHECK(kiln_network_add_conv(net, "conv2", "g", "w", NULL, 3, 3, 1, 1, 1, 1, "y") == KILN_OK);
            kiln_network_mark_output(net, "y");
        }
        kiln_network_mark_output(net, "c");
        kiln_network *o = optimized(net, NULL);
        CHECK(o && count_op(o, "Gather") == 0 && count_op(o, "Slice") == 1 && count_op(o, "Reshape") == 0);
        if (o) {
            kiln_host_tensor in;
            fill_random(&in, "x", KILN_DT_FLOAT, 4, xd);
            double ref, d = compare_runs(net, o, 1, &in, &ref);
            CHECK(d >= 0 && d <= 1e-4 * (ref > 1 ? ref : 1));
            kiln_host_tensor_release(&in);
        }
        kiln_network_free(o);
        kiln_network_free(net);
    }
}

static void test_batch_branches(void)
{
    test_batch_gather_slice();
    test_batch_ops();
    test_batch_basic();
    test_batch_refused();
    test_batch_gather_stack();
    test_batch_resize();
    test_batch_deform();
}
/* --- end batch_branches ---------------------------------------------------------- */

/* ---- whole models ------------------------------------------------------- */

typedef struct model_totals {
    int models, passed;
} model_totals;

static void count_changes(const char *pass, const kiln_pass_stats *st, void *user)
{
    if (st->changes) (*(int *)user)++;
    if (verbose) printf("      (second run) %s: %s\n", pass, st->summary);
}

static void print_ops(const kiln_network *net)
{
    char line[1024] = "";
    size_t pos = 0;
    bool *seen = calloc((size_t)net->n_nodes + 1, 1);
    for (int i = 0; i < net->n_nodes; i++) {
        if (seen[i]) continue;
        int c = 0;
        for (int j = i; j < net->n_nodes; j++)
            if (!strcmp(net->nodes[i].op_type, net->nodes[j].op_type)) {
                seen[j] = true;
                c++;
            }
        if (pos < sizeof line) pos += (size_t)snprintf(line + pos, sizeof line - pos, " %s:%d", net->nodes[i].op_type, c);
    }
    free(seen);
    printf("    ops after:%s\n", line);
}

/*
 * ONNX's light models replace every initializer by a ConstantOfShape of one
 * value, so all channels compute the same thing and a wrong fold could go
 * unseen. Each such weight becomes a random constant instead (the original
 * and the optimized network then share them): positive for BatchNormalization
 * scale and variance, scaled by 1/sqrt(fan-in) for weights so activations stay
 * in range through deep nets. Results over 64 MiB keep their ConstantOfShape.
 */
static void randomize_light_weights(kiln_network *net)
{
    bool *deleted = calloc((size_t)net->n_nodes + 1, sizeof(bool));
    int changed = 0;
    for (int i = 0; i < net->n_nodes; i++) {
        kiln_node *n = &net->nodes[i];
        if (strcmp(n->op_type, "ConstantOfShape") || n->n_in != 1 || n->out[0] < 0) continue;
        const kiln_value *sv = kiln__graph_const(net, n->in[0]);
        const kiln_attr *va = kiln__node_attr(n, "value");
        if (!sv || (va && va->t && va->t->dtype != KILN_DT_FLOAT)) continue;
        int64_t dims[KILN_MAX_DIMS], numel = 1;
        int rank = (int)kiln__value_numel(sv);
        if (rank > KILN_MAX_DIMS) continue;
        for (int d = 0; d < rank; d++) numel *= (dims[d] = kiln__value_get_i64(sv, d));
        if (numel * 4 > (64 << 20)) continue;
        int t = n->out[0];
        /* role from the readers */
        float lo = -0.1f, hi = 0.1f;
        for (int k = 0; k < net->n_nodes; k++)
            for (int j = 0; j < net->nodes[k].n_in; j++) {
                if (net->nodes[k].in[j] != t) continue;
                const char *op = net->nodes[k].op_type;
                if (!strcmp(op, "BatchNormalization") && (j == 1 || j == 4)) {
                    lo = 0.5f;
                    hi = 1.5f;
                } else if (j == 1 && rank >= 2 && dims[0] > 0 &&
                           (!strcmp(op, "Conv") || !strcmp(op, "Gemm") || !strcmp(op, "MatMul"))) {
                    hi = (float)sqrt(3.0 / (double)(numel / dims[0]));
                    lo = -hi;
                }
            }
        float *p = malloc((size_t)numel * sizeof *p + 1);
        for (int64_t k = 0; k < numel; k++) p[k] = rng_uniform(lo, hi);
        kiln_tensor *tt = &net->tensors[t];
        free(tt->v.data);
        memset(&tt->v, 0, sizeof tt->v);
        tt->v.dtype = KILN_DT_FLOAT;
        tt->v.shape = kiln__shape_of(rank, dims);
        tt->v.data = p;
        tt->v.nbytes = (size_t)numel * sizeof *p;
        tt->kind = KILN_TENSOR_CONSTANT;
        tt->producer = -1;
        deleted[i] = true;
        changed++;
    }
    kiln_err err = {{0}};
    if (changed) CHECK(kiln__graph_compact(net, deleted, &err) == KILN_OK);
    free(deleted);
}

/* One model: optimize (dynamic or static shapes), compare on a random input. */
static void check_model(const char *label, const char *path, const char *inputs_dir, bool light, model_totals *tot)
{
    kiln_network *net = NULL;
    if (kiln_onnx_parse(path, NULL, &net)) {
        printf("SKIP %s: %s\n", label, kiln_last_error());
        return;
    }
    char unsup[512];
    if (kiln_network_unsupported_report(net, unsup, sizeof unsup) > 0) {
        printf("SKIP %s: the cpu backend cannot run it: %s", label, unsup);
        kiln_network_free(net);
        return;
    }
    int parsed_nodes = net->n_nodes;
    if (light) randomize_light_weights(net);
    int n_in = kiln_network_input_count(net);
    kiln_host_tensor *in = calloc((size_t)n_in + 1, sizeof *in);
    for (int i = 0; i < n_in; i++) {
        kiln_dtype dt;
        int rank;
        int64_t dims[KILN_MAX_DIMS];
        test_input_shape(net, i, &dt, &rank, dims);
        char p[4096];
        kiln_host_tensor ref;
        snprintf(p, sizeof p, "%s/input_%d.pb", inputs_dir ? inputs_dir : "", i);
        if (inputs_dir && kiln_tensor_read_pb(p, &ref) == KILN_OK) {
            rank = ref.rank;
            memcpy(dims, ref.dims, sizeof dims);
            kiln_host_tensor_release(&ref);
        }
        fill_random(&in[i], kiln_network_input_name(net, i), dt, rank, dims);
    }
    for (int is_static = 0; is_static < 2; is_static++) {
        tot->models++;
        kiln_network *o = NULL;
        kiln_err err = {{0}};
        bool ok = kiln__net_clone(net, &o, &err) == KILN_OK;
        if (ok && is_static)
            for (int i = 0; i < n_in; i++) {
                kiln_tensor *t = &o->tensors[o->inputs[i]];
                t->v.shape = kiln__shape_of(in[i].rank, in[i].dims);
            }
        printf("%s (%s shapes)\n", label, is_static ? "static" : "dynamic");
        bool show = true;
        kiln_pass_options po = {.static_shapes = is_static, .log = pass_log, .log_user = &show};
        if (ok && kiln__passes_run(o, &po, NULL, NULL, &err)) {
            printf("  FAIL passes: %s\n", err.msg);
            ok = false;
        }
        if (!ok) {
            CHECK(ok);
            kiln_network_free(o);
            continue;
        }
        if (verbose) print_ops(o);
        /* a second run finds nothing more to do */
        int changed = 0;
        kiln_pass_options po2 = {.static_shapes = is_static, .log = count_changes, .log_user = &changed};
        CHECK(kiln__passes_run(o, &po2, NULL, NULL, &err) == KILN_OK);
        CHECK(changed == 0);
        double ref, d = compare_runs(net, o, n_in, in, &ref);
        double tol = 1e-4 * (ref > 1 ? ref : 1);
        bool pass = d >= 0 && d <= tol;
        CHECK(pass);
        tot->passed += pass;
        char parsed[64] = "";
        if (parsed_nodes != net->n_nodes) snprintf(parsed, sizeof parsed, " (%d as parsed)", parsed_nodes);
        printf("  %s nodes %d%s -> %d, max abs diff %.3g (allowed %.3g, max|ref| %.3g)\n", pass ? "PASS" : "FAIL",
               net->n_nodes, parsed, o->n_nodes, d, tol, ref);
        kiln_network_free(o);
    }
    for (int i = 0; i < n_in; i++) kiln_host_tensor_release(&in[i]);
    free(in);
    kiln_network_free(net);
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted entries of dir ending with suffix (or directories when suffix is NULL). */
static int list_dir(const char *dir, const char *suffix, char ***out)
{
    DIR *d = opendir(dir);
    *out = NULL;
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        size_t l = strlen(e->d_name), sl = suffix ? strlen(suffix) : 0;
        if (suffix && (l < sl || strcmp(e->d_name + l - sl, suffix))) continue;
        *out = realloc(*out, sizeof(char *) * (size_t)(n + 1));
        (*out)[n++] = strdup(e->d_name);
    }
    closedir(d);
    if (n) qsort(*out, (size_t)n, sizeof(char *), name_cmp);
    return n;
}

static void test_models(const char *shared)
{
    model_totals tot = {0};
    char dir[4096], path[4096], inputs[4096];
    char **names;
    snprintf(dir, sizeof dir, "%s/sr-fixtures", shared);
    int n = list_dir(dir, NULL, &names);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s/model.onnx", dir, names[i]);
        snprintf(inputs, sizeof inputs, "%s/%s/test_data_set_0", dir, names[i]);
        struct stat st;
        if (stat(path, &st) == 0) check_model(names[i], path, inputs, false, &tot);
        free(names[i]);
    }
    free(names);
    snprintf(dir, sizeof dir, "%s/onnx-tests/light", shared);
    n = list_dir(dir, ".onnx", &names);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        check_model(names[i], path, NULL, true, &tot);
        free(names[i]);
    }
    free(names);
    printf("models: %d of %d runs agree\n", tot.passed, tot.models);
    CHECK(tot.models > 0);
}

int main(int argc, char **argv)
{
    const char *shared = KILN_TEST_SHARED_DIR;
    bool models = true;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--shared") && i + 1 < argc) shared = argv[++i];
        else if (!strcmp(argv[i], "--no-models")) models = false;
        else if (!strcmp(argv[i], "-v")) verbose = true;
    }
    rng_seed(12345);
    test_conv_bn_relu();
    test_conv_leaky_scale_residual();
    test_conv_prelu();
    test_conv_other_acts();
    test_hoist_activation();
    test_split_to_slice();
    test_conv_mul_add_only();
    test_conv_sum();
    test_conv_add_relu();
    test_fold_scale();
    test_double_scale();
    test_not_fusable();
    test_bn_cases();
    test_identity();
    test_fold_and_dead();
    test_fused_schema();
    test_driver();
    test_batch_branches(); /* batch_branches (session 3) */
    if (models) test_models(shared);
    return TEST_SUMMARY("test_passes");
}
