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
    CHECK(n == 7 && !strcmp(list[0].name, "eliminate_identity"));
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
    CHECK(!strcmp(seen, "eliminate_identity,fold_constants,remove_dead_nodes,fold_batchnorm_into_conv"));
    CHECK(count_op(net, "Conv") == 1 && count_op(net, "Relu") == 1 && net->n_nodes == 2);
    CHECK(kiln__passes_run(net, NULL, NULL, NULL, &err) == KILN_OK && net->n_nodes == 1);
    kiln_network_free(net);
}

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
    if (models) test_models(shared);
    return TEST_SUMMARY("test_passes");
}
