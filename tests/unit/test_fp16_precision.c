/*
 * fp16 accuracy at build time, no GPU: the filter rounding that keeps each k x k
 * filter's sum (src/build/fp16_round.c) on random filters of odd sizes, tiny and
 * huge values, exact values, inf/NaN and the plain cases (1 tap, too many taps);
 * and which layers an fp16 build keeps fp32 for accuracy (src/build/fp16_keep.c):
 * a long ESRGAN-style residual chain (x + 0.2 * branch, and the block-level
 * x + 0.2 * chain) is kept whole, a short one and a ResNet-style chain broken by
 * Relu are not, the input-image skip through Slice + Resize is kept, and so is the
 * 3-channel conv reading the image (not the conv after it).
 */
#define _DEFAULT_SOURCE /* DT_DIR */
#include "build/engine.h"
#include "test_main.h"
#include <dirent.h>
#include <math.h>
#include <string.h>

static uint32_t rng = 12345u;
static float urand(void)
{
    rng = rng * 1664525u + 1013904223u;
    return (float)((rng >> 8) / 16777216.0);
}

static float nearest16(float x) { return kiln__f16_to_f32(kiln__f32_to_f16(x)); }

/* the fp16 spacing around x: distance between its two fp16 neighbours */
static double spacing(float x)
{
    float r = nearest16(x);
    uint16_t h = kiln__f32_to_f16(r);
    float up = kiln__f16_to_f32((uint16_t)(h + 1)), dn = kiln__f16_to_f32((uint16_t)(h - 1));
    if ((h & 0x7fff) == 0) return kiln__f16_to_f32(1);
    return fmax(fabs((double)up - r), fabs((double)r - dn));
}

static void test_round_random(int64_t taps, float scale)
{
    enum { G = 4000 };
    float *src = malloc(sizeof(float) * G * (size_t)taps), *dst = malloc(sizeof(float) * G * (size_t)taps);
    for (int64_t i = 0; i < G * taps; i++) src[i] = (urand() * 2 - 1) * scale;
    kiln__f16_round_groups(src, dst, G, taps);
    int not_fp16 = 0, too_far = 0, worse = 0;
    double sum_near = 0, sum_kept = 0;
    for (int64_t g = 0; g < G; g++) {
        double e_near = 0, e_kept = 0, ulp_min = 1e30;
        for (int64_t k = 0; k < taps; k++) {
            float x = src[g * taps + k], y = dst[g * taps + k];
            if (nearest16(y) != y) not_fp16++;
            if (fabs((double)y - x) > spacing(x) * 1.0000001) too_far++;
            e_near += (double)nearest16(x) - x;
            e_kept += (double)y - x;
            if (nearest16(x) != x && spacing(x) < ulp_min) ulp_min = spacing(x);
        }
        if (fabs(e_kept) > fabs(e_near) + 1e-12) worse++;
        sum_near += fabs(e_near);
        sum_kept += fabs(e_kept);
    }
    CHECK(not_fp16 == 0);
    CHECK(too_far == 0);
    CHECK(worse == 0);
    if (taps > 1) CHECK(sum_kept < (taps >= 9 ? 0.2 : 0.5) * sum_near); /* 9 taps: ~0.15x */
    printf("  %lld taps, scale %g: mean |filter sum error| nearest %.3g, kept %.3g\n", (long long)taps, scale,
           sum_near / G, sum_kept / G);
    free(src);
    free(dst);
}

static void test_round_edges(void)
{
    /* exact fp16 values stay as they are */
    float ex[9] = {0.5f, -0.25f, 1.0f, 0, 2.0f, -3.0f, 0.125f, 1024.0f, -0.0f}, out[9];
    kiln__f16_round_groups(ex, out, 1, 9);
    CHECK(memcmp(ex, out, sizeof ex) == 0);
    /* 1 tap and > 64 taps: plain nearest */
    float one[5] = {0.1f, 0.2f, 0.3f, 1e-6f, 70000.0f}, o1[5];
    kiln__f16_round_groups(one, o1, 5, 1);
    for (int i = 0; i < 5; i++) CHECK(o1[i] == nearest16(one[i]) || (isinf(o1[i]) && isinf(nearest16(one[i]))));
    float big[100], ob[100];
    for (int i = 0; i < 100; i++) big[i] = urand() * 0.01f;
    kiln__f16_round_groups(big, ob, 1, 100);
    for (int i = 0; i < 100; i++) CHECK(ob[i] == nearest16(big[i]));
    /* a group holding inf/NaN or beyond fp16's range: nearest, no NaN made from finite values */
    float bad[9] = {0.1f, INFINITY, 0.3f, NAN, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f}, obad[9];
    kiln__f16_round_groups(bad, obad, 1, 9);
    CHECK(isinf(obad[1]) && isnan(obad[3]) && obad[0] == nearest16(0.1f));
    float huge[4] = {65519.0f, 70000.0f, 1.0f, 0.3f}, oh[4];
    kiln__f16_round_groups(huge, oh, 1, 4);
    for (int i = 0; i < 4; i++) CHECK(!isnan(oh[i]));
    /* subnormal-range filters (tiny weights) */
    float tiny[9], ot[9];
    for (int i = 0; i < 9; i++) tiny[i] = (urand() - 0.5f) * 1e-6f;
    kiln__f16_round_groups(tiny, ot, 1, 9);
    for (int i = 0; i < 9; i++) CHECK(nearest16(ot[i]) == ot[i] && fabs((double)ot[i] - tiny[i]) <= 6e-8);
}

/* ---- which layers keep fp32 ---- */

static const int64_t dims4[4] = {1, 4, 6, 5};

static void node(kiln_network *net, const char *name, const char *op, int n_in, const char *a, const char *b, const char *y)
{
    const char *in[2] = {a, b};
    CHECK(kiln_network_add_node(net, name, op, "", n_in, in, 1, &y, 0, NULL) == KILN_OK);
}

static bool kept(const kiln_network *net, const bool *keep, const char *name)
{
    for (int i = 0; i < net->n_nodes; i++)
        if (!strcmp(net->nodes[i].name, name)) return keep[i];
    printf("  no node %s\n", name);
    return false;
}

/* n steps of t = t + 0.2 * relu(t) (through_relu: ResNet-like t = relu(t + relu(t))), then
 * one block-level out = x + 0.2 * t. */
static kiln_network *chain_net(int n, bool through_relu)
{
    kiln_network *net = NULL;
    CHECK(kiln_network_create(&net) == KILN_OK);
    CHECK(kiln_network_add_input(net, "x", KILN_DT_FLOAT, 4, dims4, NULL) == KILN_OK);
    float s = 0.2f;
    CHECK(kiln_network_add_constant(net, "s", KILN_DT_FLOAT, 0, NULL, &s, sizeof s) == KILN_OK);
    node(net, "first", "Tanh", 1, "x", NULL, "feat"); /* the trunk starts at a computed tensor */
    char prev[64] = "feat";
    for (int k = 0; k < n; k++) {
        char r[64], rn[64], m[64], mn[64], a[64], an[64];
        snprintf(r, sizeof r, "r%d", k);
        snprintf(rn, sizeof rn, "relu%d", k);
        snprintf(m, sizeof m, "m%d", k);
        snprintf(mn, sizeof mn, "mul%d", k);
        snprintf(a, sizeof a, "a%d", k);
        snprintf(an, sizeof an, "add%d", k);
        node(net, rn, "Relu", 1, prev, NULL, r);
        node(net, mn, "Mul", 2, r, "s", m);
        node(net, an, "Add", 2, m, prev, a);
        snprintf(prev, sizeof prev, "%s", a);
        if (through_relu) {
            char q[64], qn[64];
            snprintf(q, sizeof q, "q%d", k);
            snprintf(qn, sizeof qn, "post%d", k);
            node(net, qn, "Relu", 1, a, NULL, q);
            snprintf(prev, sizeof prev, "%s", q);
        }
    }
    node(net, "block_mul", "Mul", 2, prev, "s", "bm");
    node(net, "block_add", "Add", 2, "bm", "feat", "out");
    CHECK(kiln_network_mark_output(net, "out") == KILN_OK);
    CHECK(kiln_network_infer_shapes(net) == KILN_OK); /* the builder sees inferred types */
    return net;
}

static void test_keep_chains(void)
{
    for (int v = 0; v < 3; v++) {
        int n = v == 1 ? 10 : 20;
        kiln_network *net = chain_net(n, v == 2);
        bool *keep = calloc((size_t)net->n_nodes + 1, sizeof(bool));
        int nc = -1, ns = -1, nf = -1;
        CHECK(kiln__fp16_keep_fp32(net, keep, &nc, &ns, &nf) == 0);
        if (v == 0) { /* 20 steps + the block add (21 Adds) and the block's Mul: all fp32 */
            CHECK(nc == 22);
            CHECK(kept(net, keep, "add0") && kept(net, keep, "add19") && kept(net, keep, "block_add"));
            CHECK(kept(net, keep, "block_mul"));
            CHECK(!kept(net, keep, "mul0") && !kept(net, keep, "relu5")); /* the branch stays fp16 */
        } else {
            CHECK(nc == 0); /* 11 steps; or broken by Relu */
            CHECK(!kept(net, keep, "add0") && !kept(net, keep, "block_add"));
        }
        CHECK(ns == 0 && nf == 0);
        free(keep);
        kiln_network_free(net);
    }
}

static void test_keep_skip(void)
{
    /* out = conv-ish branch + Resize(Slice(x)) */
    kiln_network *net = NULL;
    CHECK(kiln_network_create(&net) == KILN_OK);
    CHECK(kiln_network_add_input(net, "x", KILN_DT_FLOAT, 4, dims4, NULL) == KILN_OK);
    int64_t st = 0, en = 3, ax = 1, one = 1;
    CHECK(kiln_network_add_constant(net, "st", KILN_DT_INT64, 1, &one, &st, sizeof st) == KILN_OK);
    CHECK(kiln_network_add_constant(net, "en", KILN_DT_INT64, 1, &one, &en, sizeof en) == KILN_OK);
    CHECK(kiln_network_add_constant(net, "ax", KILN_DT_INT64, 1, &one, &ax, sizeof ax) == KILN_OK);
    const char *sl_in[4] = {"x", "st", "en", "ax"}, *sl_out = "xs";
    CHECK(kiln_network_add_node(net, "slice", "Slice", "", 4, sl_in, 1, &sl_out, 0, NULL) == KILN_OK);
    float sc[4] = {1, 1, 2, 2};
    int64_t four = 4;
    CHECK(kiln_network_add_constant(net, "scales", KILN_DT_FLOAT, 1, &four, sc, sizeof sc) == KILN_OK);
    const char *rs_in[3] = {"xs", "", "scales"}, *rs_out = "up";
    CHECK(kiln_network_add_node(net, "resize", "Resize", "", 3, rs_in, 1, &rs_out, 0, NULL) == KILN_OK);
    /* the image's first conv (3 input channels) and a conv of computed features (not kept) */
    float wv[2 * 3 * 3 * 3], w2v[2 * 2 * 1 * 1];
    for (int i = 0; i < 54; i++) wv[i] = urand() - 0.5f;
    for (int i = 0; i < 4; i++) w2v[i] = urand() - 0.5f;
    int64_t wd[4] = {2, 3, 3, 3}, w2d[4] = {2, 2, 1, 1}, pads[4] = {1, 1, 1, 1};
    CHECK(kiln_network_add_constant(net, "w", KILN_DT_FLOAT, 4, wd, wv, sizeof wv) == KILN_OK);
    CHECK(kiln_network_add_constant(net, "w2", KILN_DT_FLOAT, 4, w2d, w2v, sizeof w2v) == KILN_OK);
    kiln_attr_value pa = {.name = "pads", .type = KILN_ATTR_INTS, .ints = pads, .n = 4};
    const char *c_in[2] = {"xs", "w"}, *c_out = "f", *c2_in[2] = {"f", "w2"}, *c2_out = "f2";
    CHECK(kiln_network_add_node(net, "first_conv", "Conv", "", 2, c_in, 1, &c_out, 1, &pa) == KILN_OK);
    CHECK(kiln_network_add_node(net, "second_conv", "Conv", "", 2, c2_in, 1, &c2_out, 0, NULL) == KILN_OK);
    CHECK(kiln_network_mark_output(net, "f2") == KILN_OK);
    node(net, "branch", "Sigmoid", 1, "up", NULL, "b");
    node(net, "tanh", "Tanh", 1, "b", NULL, "c");
    node(net, "skip_add", "Add", 2, "c", "up", "out");
    CHECK(kiln_network_mark_output(net, "out") == KILN_OK);
    CHECK(kiln_network_infer_shapes(net) == KILN_OK);
    bool keep[16] = {0};
    int nc = -1, ns = -1, nf = -1;
    CHECK(net->n_nodes < 16 && kiln__fp16_keep_fp32(net, keep, &nc, &ns, &nf) == 0);
    CHECK(nc == 0 && ns == 3 && nf == 1);
    CHECK(kept(net, keep, "skip_add") && kept(net, keep, "resize") && kept(net, keep, "slice"));
    CHECK(kept(net, keep, "first_conv") && !kept(net, keep, "second_conv"));
    CHECK(!kept(net, keep, "branch") && !kept(net, keep, "tanh"));
    kiln_network_free(net);
}

/* The rule over every model under dir (ONNX node tests, fixtures): no crash, no leak (ASan),
 * marks only within the node count. Models that fail to load or type are skipped, as the
 * builder skips the rule for them. */
static int walk_models(const char *dir, int *rule_runs, int *marked)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        size_t l = strlen(e->d_name);
        if (l > 5 && !strcmp(e->d_name + l - 5, ".onnx")) {
            kiln_network *net = NULL;
            n++;
            if (kiln_onnx_parse(p, NULL, &net) == KILN_OK && kiln_network_infer_shapes(net) == KILN_OK) {
                bool *keep = calloc((size_t)net->n_nodes + 1, sizeof(bool));
                int nc, ns, nf;
                CHECK(keep && kiln__fp16_keep_fp32(net, keep, &nc, &ns, &nf) == 0);
                CHECK(nc >= 0 && ns >= 0 && nf >= 0 && nc + ns + nf <= net->n_nodes);
                (*rule_runs)++;
                *marked += nc + ns + nf;
                free(keep);
            }
            kiln_network_free(net);
        } else if (e->d_type == DT_DIR || e->d_type == DT_UNKNOWN) {
            n += walk_models(p, rule_runs, marked);
        }
    }
    closedir(d);
    return n;
}

int main(int argc, char **argv)
{
    if (argc > 1) { /* kiln_test_fp16_precision DIR...: the layer rule over real models */
        int models = 0, runs = 0, marked = 0;
        for (int i = 1; i < argc; i++) models += walk_models(argv[i], &runs, &marked);
        printf("fp16 keep-fp32 rule over %d models (%d typed): %d nodes marked\n", models, runs, marked);
        CHECK(runs > 0);
        return TEST_SUMMARY("unit_fp16_precision_models");
    }
    printf("filter rounding that keeps sums:\n");
    test_round_random(9, 0.05f);
    test_round_random(9, 3.0f);
    test_round_random(25, 0.01f);
    test_round_random(4, 0.5f);
    test_round_random(1, 0.05f);
    test_round_edges();
    test_keep_chains();
    test_keep_skip();
    return TEST_SUMMARY("unit_fp16_precision");
}
