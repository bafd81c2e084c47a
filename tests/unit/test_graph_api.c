/*
 * The graph editing API (include/kiln_graph.h): every lookup and edit on a
 * small hand-built graph, the refused edits (unknown names, two data inputs,
 * cycles, taken names, dangling readers) leaving the graph exactly as it was,
 * and edited graphs still computing what they should on the CPU reference.
 */
#include "kiln_graph.h"
#include "test_main.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/*
 *   x[1,2,h,w] -LeakyRelu(r1)-> a -Identity(id1)-> b -Add(add1, +c1)-> c -Mul(mul1, *kc)-> m -Clip(clip1, "", cmax)-> y
 *   Constant(k1) -> kc
 *   a -Transpose(tr1)-> d (dead)          initializer "unused" (read by nobody)
 */
/* String equality that tolerates NULL (a failed lookup must fail the check, not crash). */
static int eq(const char *a, const char *b) { return a && b && !strcmp(a, b); }

static kiln_network *make_net(void)
{
    kiln_network *net = NULL;
    if (kiln_network_create(&net)) return NULL;
    int64_t xd[4] = {1, 2, KILN_DIM_SYMBOLIC, KILN_DIM_SYMBOLIC};
    const char *syms[4] = {NULL, NULL, "h", "w"};
    int64_t cd[4] = {1, 2, 1, 1}, one[1] = {1};
    float c1[2] = {1.0f, -1.0f}, cmax = 3.0f, unused[1] = {7.0f}, two = 2.0f;
    kiln_host_tensor kval = {.dtype = KILN_DT_FLOAT, .rank = 1, .dims = {1}, .data = &two, .nbytes = sizeof two};
    kiln_attr_value alpha = {.name = "alpha", .type = KILN_ATTR_FLOAT, .f = 0.1f};
    int64_t perm[4] = {0, 1, 3, 2};
    kiln_attr_value permv = {.name = "perm", .type = KILN_ATTR_INTS, .ints = perm, .n = 4};
    kiln_attr_value value = {.name = "value", .type = KILN_ATTR_TENSOR, .t = &kval};
    int bad = 0;
    bad |= kiln_network_add_input(net, "x", KILN_DT_FLOAT, 4, xd, syms);
    bad |= kiln_network_add_constant(net, "c1", KILN_DT_FLOAT, 4, cd, c1, sizeof c1);
    bad |= kiln_network_add_constant(net, "cmax", KILN_DT_FLOAT, 0, NULL, &cmax, sizeof cmax);
    bad |= kiln_network_add_constant(net, "unused", KILN_DT_FLOAT, 1, one, unused, sizeof unused);
    bad |= kiln_network_add_node(net, "r1", "LeakyRelu", NULL, 1, (const char *[]){"x"}, 1, (const char *[]){"a"}, 1, &alpha);
    bad |= kiln_network_add_node(net, "id1", "Identity", NULL, 1, (const char *[]){"a"}, 1, (const char *[]){"b"}, 0, NULL);
    bad |= kiln_network_add_node(net, "add1", "Add", NULL, 2, (const char *[]){"b", "c1"}, 1, (const char *[]){"c"}, 0, NULL);
    bad |= kiln_network_add_node(net, "k1", "Constant", NULL, 0, NULL, 1, (const char *[]){"kc"}, 1, &value);
    bad |= kiln_network_add_node(net, "mul1", "Mul", NULL, 2, (const char *[]){"c", "kc"}, 1, (const char *[]){"m"}, 0, NULL);
    bad |= kiln_network_add_node(net, "clip1", "Clip", NULL, 3, (const char *[]){"m", "", "cmax"}, 1, (const char *[]){"y"}, 0, NULL);
    bad |= kiln_network_add_node(net, "tr1", "Transpose", NULL, 1, (const char *[]){"a"}, 1, (const char *[]){"d"}, 1, &permv);
    bad |= kiln_network_mark_output(net, "y");
    if (bad) {
        printf("make_net: %s\n", kiln_network_last_error(net));
        kiln_network_free(net);
        return NULL;
    }
    return net;
}

/* Everything an edit could change, as text: nodes (name, op, domain, io, attrs), tensors, graph io. */
static char *snapshot(const kiln_network *net)
{
    size_t cap = 1 << 16, len = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    s[0] = 0;
#define PUT(...) (len += (size_t)snprintf(s + len, len < cap ? cap - len : 0, __VA_ARGS__))
    for (int i = 0; i < kiln_graph_node_count(net); i++) {
        PUT("%s:%s:%s(", kiln_graph_node_name(net, i), kiln_graph_node_domain(net, i), kiln_graph_node_op(net, i));
        for (int j = 0; j < kiln_graph_node_input_count(net, i); j++) PUT("%s,", kiln_graph_node_input(net, i, j));
        PUT(")->(");
        for (int j = 0; j < kiln_graph_node_output_count(net, i); j++) PUT("%s,", kiln_graph_node_output(net, i, j));
        PUT(")[");
        for (int j = 0; j < kiln_graph_node_attr_count(net, i); j++) {
            kiln_attr_value v;
            const char *an = kiln_graph_node_attr_name(net, i, j);
            kiln_graph_get_attr(net, i, an, &v);
            PUT("%s=%d/%lld/%g/%lld,", an, (int)v.type, (long long)v.i, (double)v.f, (long long)v.n);
        }
        PUT("]\n");
    }
    PUT("tensors:");
    for (int t = 0; t < kiln_graph_tensor_count(net); t++) PUT("%s,", kiln_graph_tensor_name(net, t));
    PUT("\nin:");
    for (int i = 0; i < kiln_network_input_count(net); i++) PUT("%s,", kiln_network_input_name(net, i));
    PUT("\nout:");
    for (int i = 0; i < kiln_network_output_count(net); i++) PUT("%s,", kiln_network_output_name(net, i));
#undef PUT
    return s;
}

/* Checks that a refused edit left the graph as `before` and said why. */
static int same_as(const kiln_network *net, const char *before, const char *what)
{
    char *now = snapshot(net);
    int ok = now && before && eq(now, before);
    if (!ok) printf("graph changed by refused edit '%s':\n--- before\n%s\n--- after\n%s\n", what, before, now);
    free(now);
    return ok;
}

#define REFUSED(net, call, status)                                                                                     \
    do {                                                                                                               \
        char *before_ = snapshot(net);                                                                                 \
        kiln_status s_ = (call);                                                                                       \
        CHECK(s_ == (status));                                                                                         \
        if (s_ != (status)) printf("  %s -> %d (%s)\n", #call, (int)s_, kiln_network_last_error(net));                 \
        CHECK(kiln_network_last_error(net)[0] != 0);                                                                   \
        CHECK(same_as(net, before_, #call));                                                                           \
        free(before_);                                                                                                 \
    } while (0)

/* Runs net on a 1x2x3x4 ramp input; returns output 0 (caller releases). */
static int run_ramp(kiln_network *net, kiln_host_tensor *out)
{
    float xv[24];
    for (int i = 0; i < 24; i++) xv[i] = (float)i * 0.25f - 3.0f;
    kiln_host_tensor in = {.name = "x", .dtype = KILN_DT_FLOAT, .rank = 4, .dims = {1, 2, 3, 4}, .data = xv, .nbytes = sizeof xv};
    memset(out, 0, sizeof *out);
    kiln_status s = kiln_reference_run(net, 1, &in, 1, out);
    if (s) printf("run: %s\n", kiln_network_last_error(net));
    return s;
}

static int same_values(const kiln_host_tensor *a, const kiln_host_tensor *b)
{
    if (a->nbytes != b->nbytes || a->dtype != KILN_DT_FLOAT || b->dtype != KILN_DT_FLOAT) return 0;
    const float *x = a->data, *y = b->data;
    for (size_t i = 0; i < a->nbytes / sizeof(float); i++)
        if (fabsf(x[i] - y[i]) > 1e-6f + 1e-5f * fabsf(y[i])) return 0;
    return 1;
}

/* Expected output of make_net on the ramp: clip(2*(leaky(x)+c1[ch]), max 3). */
static float expect_y(int i)
{
    float x = (float)i * 0.25f - 3.0f, a = x > 0 ? x : 0.1f * x, c = a + (i < 12 ? 1.0f : -1.0f), m = 2.0f * c;
    return m > 3.0f ? 3.0f : m;
}

static void test_lookups(void)
{
    kiln_network *net = make_net();
    CHECK(net != NULL);
    if (!net) return;
    CHECK(kiln_graph_node_count(net) == 7);
    int add = kiln_graph_find_node(net, "add1");
    CHECK(add == 2);
    CHECK(kiln_graph_find_node(net, "nope") == -1);
    CHECK(kiln_graph_find_node(net, NULL) == -1);
    CHECK(eq(kiln_graph_node_name(net, add), "add1"));
    CHECK(eq(kiln_graph_node_op(net, add), "Add"));
    CHECK(eq(kiln_graph_node_domain(net, add), ""));
    CHECK(kiln_graph_node_name(net, 99) == NULL && kiln_graph_node_op(net, -1) == NULL);
    CHECK(kiln_graph_node_input_count(net, add) == 2 && kiln_graph_node_output_count(net, add) == 1);
    CHECK(eq(kiln_graph_node_input(net, add, 1), "c1"));
    CHECK(eq(kiln_graph_node_output(net, add, 0), "c"));
    CHECK(kiln_graph_node_input(net, add, 2) == NULL && kiln_graph_node_output(net, add, -1) == NULL);
    CHECK(kiln_graph_node_input_count(net, 42) == -1);
    int clip = kiln_graph_find_node(net, "clip1");
    CHECK(eq(kiln_graph_node_input(net, clip, 1), "")); /* omitted optional input */

    /* attributes */
    int r1 = kiln_graph_find_node(net, "r1"), tr = kiln_graph_find_node(net, "tr1"), k1 = kiln_graph_find_node(net, "k1");
    CHECK(kiln_graph_node_attr_count(net, r1) == 1);
    CHECK(eq(kiln_graph_node_attr_name(net, r1, 0), "alpha"));
    CHECK(kiln_graph_node_attr_name(net, r1, 1) == NULL);
    float f = 0;
    CHECK(kiln_graph_get_attr_float(net, r1, "alpha", &f) == KILN_OK && fabsf(f - 0.1f) < 1e-7f);
    int64_t iv = 0;
    CHECK(kiln_graph_get_attr_int(net, r1, "alpha", &iv) == KILN_ERR_DTYPE);
    CHECK(strstr(kiln_last_error(), "alpha") != NULL);
    CHECK(kiln_graph_get_attr_int(net, r1, "beta", &iv) == KILN_ERR_NOT_FOUND);
    CHECK(kiln_graph_get_attr_float(net, 99, "alpha", &f) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_graph_get_attr_float(net, r1, NULL, &f) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_graph_get_attr_tensor(net, r1, NULL, NULL) == KILN_ERR_INVALID_ARG);
    kiln_attr_value av;
    CHECK(kiln_graph_get_attr(net, tr, "perm", &av) == KILN_OK && av.type == KILN_ATTR_INTS && av.n == 4 && av.ints[2] == 3);
    const int64_t *pv = NULL;
    int64_t pn = 0;
    CHECK(kiln_graph_get_attr_ints(net, tr, "perm", &pv, &pn) == KILN_OK && pn == 4 && pv[3] == 2);
    const float *fv = NULL;
    CHECK(kiln_graph_get_attr_floats(net, tr, "perm", &fv, &pn) == KILN_ERR_DTYPE);
    const char *sv = NULL;
    CHECK(kiln_graph_get_attr_string(net, tr, "perm", &sv, NULL) == KILN_ERR_DTYPE);
    kiln_host_tensor kt;
    CHECK(kiln_graph_get_attr_tensor(net, k1, "value", &kt) == KILN_OK && kt.rank == 1 && kt.dims[0] == 1 &&
          *(float *)kt.data == 2.0f);
    kiln_host_tensor_release(&kt);
    CHECK(kiln_graph_get_attr_tensor(net, r1, "alpha", &kt) == KILN_ERR_DTYPE);

    /* tensors */
    CHECK(kiln_graph_find_tensor(net, "c") >= 0 && kiln_graph_find_tensor(net, "zz") == -1);
    int nt = kiln_graph_tensor_count(net);
    CHECK(nt == 11); /* the omitted input "" is no tensor */
    int found_y = 0;
    for (int t = 0; t < nt; t++) found_y |= eq(kiln_graph_tensor_name(net, t), "y");
    CHECK(found_y);
    CHECK(kiln_graph_tensor_name(net, nt) == NULL);
    CHECK(kiln_network_infer_shapes(net) == KILN_OK);
    kiln_graph_tensor_info ti;
    CHECK(kiln_graph_tensor_info_get(net, "y", &ti) == KILN_OK);
    CHECK(ti.dtype == KILN_DT_FLOAT && ti.rank == 4 && ti.dims[0] == 1 && ti.dims[1] == 2);
    CHECK(ti.dims[2] == KILN_DIM_SYMBOLIC && eq(ti.dim_text[2], "h") && eq(ti.dim_text[3], "w"));
    CHECK(eq(ti.dim_text[1], "2"));
    CHECK(ti.is_graph_output && !ti.is_graph_input && !ti.is_constant && ti.producer == clip && ti.n_consumers == 0);
    CHECK(kiln_graph_tensor_info_get(net, "x", &ti) == KILN_OK && ti.is_graph_input && ti.producer == -1 && ti.n_consumers == 1);
    CHECK(kiln_graph_tensor_info_get(net, "c1", &ti) == KILN_OK && ti.is_constant && ti.rank == 4);
    CHECK(kiln_graph_tensor_info_get(net, "nope", &ti) == KILN_ERR_NOT_FOUND);
    CHECK(kiln_graph_producer(net, "c") == add);
    CHECK(kiln_graph_producer(net, "x") == -1 && kiln_graph_producer(net, "c1") == -1 && kiln_graph_producer(net, "?") == -1);
    int cons[4] = {-1, -1, -1, -1};
    CHECK(kiln_graph_consumers(net, "a", cons, 4) == 2);
    CHECK((cons[0] == kiln_graph_find_node(net, "id1") && cons[1] == tr));
    CHECK(kiln_graph_consumers(net, "a", NULL, 0) == 2);
    CHECK(kiln_graph_consumers(net, "y", cons, 4) == 0);
    CHECK(kiln_graph_consumers(net, "nope", cons, 4) == -1);

    /* constant values */
    kiln_host_tensor v;
    CHECK(kiln_graph_constant_data(net, "c1", &v) == KILN_OK && v.rank == 4 && v.nbytes == 8 && ((float *)v.data)[1] == -1.0f);
    kiln_host_tensor_release(&v);
    CHECK(kiln_graph_constant_data(net, "kc", &v) == KILN_OK && v.nbytes == 4 && ((float *)v.data)[0] == 2.0f);
    kiln_host_tensor_release(&v);
    CHECK(kiln_graph_constant_data(net, "a", &v) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_graph_constant_data(net, "nope", &v) == KILN_ERR_NOT_FOUND);
    CHECK(kiln_graph_evaluate(net, "a", &v) != KILN_OK);
    CHECK(strstr(kiln_last_error(), "'x'") != NULL); /* names the graph input it depends on */
    CHECK(kiln_graph_evaluate(net, "x", &v) == KILN_ERR_INVALID_ARG);
    kiln_network_free(net);
}

static void test_node_edits(void)
{
    kiln_network *net = make_net();
    if (!net) return;
    kiln_host_tensor base;
    CHECK(run_ramp(net, &base) == KILN_OK);
    if (base.data)
        for (int i = 0; i < 24; i++) CHECK(fabsf(((float *)base.data)[i] - expect_y(i)) < 1e-5f);

    /* replace_op: to an op kiln does not know (a plugin's name), and a refused one */
    int tr = kiln_graph_find_node(net, "tr1");
    CHECK(kiln_graph_replace_op(net, tr, "MyTranspose", "com.example") == KILN_OK);
    CHECK(eq(kiln_graph_node_op(net, tr), "MyTranspose") && eq(kiln_graph_node_domain(net, tr), "com.example"));
    CHECK(kiln_graph_node_known(net, tr) == 0 && kiln_graph_node_known(net, 99) == 0);
    CHECK(kiln_graph_node_attr_count(net, tr) == 1 && eq(kiln_graph_node_input(net, tr, 0), "a"));
    CHECK(kiln_graph_replace_op(net, tr, "Transpose", NULL) == KILN_OK); /* schema found again, perm re-checked */
    CHECK(kiln_graph_node_known(net, tr) == 1);
    int add = kiln_graph_find_node(net, "add1");
    REFUSED(net, kiln_graph_replace_op(net, add, "Relu", NULL), KILN_ERR_GRAPH); /* Relu takes one input */
    REFUSED(net, kiln_graph_replace_op(net, add, "", NULL), KILN_ERR_INVALID_ARG);
    REFUSED(net, kiln_graph_replace_op(net, 99, "Relu", NULL), KILN_ERR_INVALID_ARG);
    CHECK(kiln_graph_replace_op(net, add, "Sub", "ai.onnx") == KILN_OK && eq(kiln_graph_node_domain(net, add), ""));
    CHECK(kiln_graph_replace_op(net, add, "Add", "") == KILN_OK);

    /* attributes */
    int r1 = kiln_graph_find_node(net, "r1");
    CHECK(kiln_graph_set_attr_float(net, r1, "alpha", 0.5f) == KILN_OK);
    float f = 0;
    CHECK(kiln_graph_get_attr_float(net, r1, "alpha", &f) == KILN_OK && f == 0.5f);
    kiln_host_tensor out;
    if (run_ramp(net, &out) == KILN_OK) {
        /* x[0] = -3: leaky 0.5 -> -1.5, +1, *2 = -1 */
        CHECK(fabsf(((float *)out.data)[0] - (-1.0f)) < 1e-6f);
        kiln_host_tensor_release(&out);
    }
    REFUSED(net, kiln_graph_set_attr_string(net, r1, "alpha", "big"), KILN_ERR_INVALID_ARG); /* schema: FLOAT */
    REFUSED(net, kiln_graph_set_attr_int(net, 99, "alpha", 1), KILN_ERR_INVALID_ARG);
    REFUSED(net, kiln_graph_set_attr_int(net, r1, "", 1), KILN_ERR_INVALID_ARG);
    CHECK(kiln_graph_set_attr_float(net, r1, "alpha", 0.1f) == KILN_OK);
    int64_t perm[4] = {0, 1, 2, 3};
    CHECK(kiln_graph_set_attr_ints(net, tr, "perm", perm, 4) == KILN_OK);
    const int64_t *pv;
    int64_t pn;
    CHECK(kiln_graph_get_attr_ints(net, tr, "perm", &pv, &pn) == KILN_OK && pn == 4 && pv[2] == 2);
    REFUSED(net, kiln_graph_set_attr_ints(net, tr, "perm", perm, -1), KILN_ERR_INVALID_ARG);
    float fl[2] = {1.5f, 2.5f};
    CHECK(kiln_graph_replace_op(net, tr, "MyPlugin", "custom") == KILN_OK);
    CHECK(kiln_graph_set_attr_floats(net, tr, "scales", fl, 2) == KILN_OK);
    CHECK(kiln_graph_set_attr_string(net, tr, "mode", "fast") == KILN_OK);
    CHECK(kiln_graph_set_attr_int(net, tr, "k", 7) == KILN_OK);
    const float *fv;
    const char *sv;
    size_t sl = 0;
    int64_t iv = 0;
    CHECK(kiln_graph_get_attr_floats(net, tr, "scales", &fv, &pn) == KILN_OK && pn == 2 && fv[1] == 2.5f);
    CHECK(kiln_graph_get_attr_string(net, tr, "mode", &sv, &sl) == KILN_OK && eq(sv, "fast") && sl == 4);
    CHECK(kiln_graph_get_attr_int(net, tr, "k", &iv) == KILN_OK && iv == 7);
    CHECK(kiln_graph_node_attr_count(net, tr) == 4);
    CHECK(kiln_graph_remove_attr(net, tr, "k") == KILN_OK && kiln_graph_node_attr_count(net, tr) == 3);
    REFUSED(net, kiln_graph_remove_attr(net, tr, "k"), KILN_ERR_NOT_FOUND);
    REFUSED(net, kiln_graph_remove_attr(net, 99, "k"), KILN_ERR_INVALID_ARG);

    /* rename_node */
    CHECK(kiln_graph_rename_node(net, tr, "plug") == KILN_OK && kiln_graph_find_node(net, "plug") == tr);
    REFUSED(net, kiln_graph_rename_node(net, tr, "add1"), KILN_ERR_GRAPH);
    REFUSED(net, kiln_graph_rename_node(net, tr, ""), KILN_ERR_INVALID_ARG);
    /* the plugin node is dead: cleanup takes it (and the unused initializer) so the graph runs again */
    int rn = -1;
    CHECK(kiln_graph_cleanup(net, 0, &rn, NULL) == KILN_OK && rn == 1 && kiln_graph_find_node(net, "plug") == -1);
    r1 = kiln_graph_find_node(net, "r1");

    /* set_node_input: unknown tensor, a cycle, a slot out of range, a required input omitted */
    REFUSED(net, kiln_graph_set_node_input(net, r1, 0, "nope"), KILN_ERR_NOT_FOUND);
    REFUSED(net, kiln_graph_set_node_input(net, r1, 0, "m"), KILN_ERR_GRAPH); /* r1 would read its own descendant */
    CHECK(strstr(kiln_network_last_error(net), "cycle") != NULL);
    REFUSED(net, kiln_graph_set_node_input(net, r1, 2, "x"), KILN_ERR_INVALID_ARG);
    REFUSED(net, kiln_graph_set_node_input(net, r1, 1, "x"), KILN_ERR_GRAPH); /* LeakyRelu takes one input */
    REFUSED(net, kiln_graph_set_node_input(net, r1, 0, ""), KILN_ERR_GRAPH);
    int clip = kiln_graph_find_node(net, "clip1");
    CHECK(kiln_graph_set_node_input(net, clip, 1, "kc") == KILN_OK); /* min = 2 now */
    CHECK(eq(kiln_graph_node_input(net, clip, 1), "kc"));
    if (run_ramp(net, &out) == KILN_OK) {
        for (int i = 0; i < 24; i++) {
            float e = expect_y(i);
            CHECK(fabsf(((float *)out.data)[i] - (e < 2.0f ? 2.0f : e)) < 1e-5f);
        }
        kiln_host_tensor_release(&out);
    }
    CHECK(kiln_graph_set_node_input(net, clip, 1, NULL) == KILN_OK && eq(kiln_graph_node_input(net, clip, 1), ""));

    /* remove_node: Identity bypassed; Add (two data inputs) refused; graph-output producer bypassed */
    int nn = kiln_graph_node_count(net);
    CHECK(kiln_graph_remove_node(net, kiln_graph_find_node(net, "id1")) == KILN_OK);
    CHECK(kiln_graph_node_count(net) == nn - 1 && kiln_graph_find_node(net, "id1") == -1);
    add = kiln_graph_find_node(net, "add1");
    CHECK(eq(kiln_graph_node_input(net, add, 0), "a"));
    CHECK(kiln_graph_find_tensor(net, "b") == -1); /* the bypassed output is gone */
    if (run_ramp(net, &out) == KILN_OK) {
        CHECK(same_values(&out, &base));
        kiln_host_tensor_release(&out);
    }
    int idn = kiln_graph_find_node(net, "add1");
    CHECK(kiln_graph_set_node_input(net, idn, 1, "a") == KILN_OK); /* Add(a, a) */
    REFUSED(net, kiln_graph_remove_node(net, kiln_graph_find_node(net, "add1")), KILN_ERR_GRAPH);
    CHECK(strstr(kiln_network_last_error(net), "2 data inputs") != NULL);
    CHECK(kiln_graph_set_node_input(net, idn, 1, "c1") == KILN_OK);
    REFUSED(net, kiln_graph_remove_node(net, -1), KILN_ERR_INVALID_ARG);
    /* mul1 (c * constant kc) has one data input */
    CHECK(kiln_graph_remove_node(net, kiln_graph_find_node(net, "mul1")) == KILN_OK);
    CHECK(eq(kiln_graph_node_input(net, kiln_graph_find_node(net, "clip1"), 0), "c"));
    /* clip1 writes the graph output y: add1 now writes y, the name is kept */
    CHECK(kiln_graph_remove_node(net, kiln_graph_find_node(net, "clip1")) == KILN_OK);
    CHECK(kiln_network_output_count(net) == 1 && eq(kiln_network_output_name(net, 0), "y"));
    CHECK(eq(kiln_graph_node_output(net, kiln_graph_find_node(net, "add1"), 0), "y"));
    CHECK(kiln_graph_find_tensor(net, "c") == -1);
    if (run_ramp(net, &out) == KILN_OK) {
        const float *o = out.data;
        CHECK(fabsf(o[0] - (-0.3f + 1.0f)) < 1e-6f && fabsf(o[23] - (2.75f - 1.0f)) < 1e-6f);
        kiln_host_tensor_release(&out);
    }
    /* again: r1 now writes y */
    CHECK(kiln_graph_remove_node(net, kiln_graph_find_node(net, "add1")) == KILN_OK);
    CHECK(eq(kiln_graph_node_output(net, kiln_graph_find_node(net, "r1"), 0), "y") && kiln_graph_find_tensor(net, "a") == -1);
    kiln_host_tensor_release(&base);
    kiln_network_free(net);

    /* a node fed directly by the graph input and writing the graph output */
    net = make_net();
    if (!net) return;
    CHECK(kiln_graph_set_outputs(net, 1, (const char *[]){"a"}) == KILN_OK);
    CHECK(kiln_graph_remove_node(net, kiln_graph_find_node(net, "r1")) == KILN_OK);
    CHECK(kiln_network_output_count(net) == 1 && eq(kiln_network_output_name(net, 0), "x"));
    CHECK(eq(kiln_graph_node_input(net, kiln_graph_find_node(net, "id1"), 0), "x"));
    kiln_network_free(net);
}

static void test_replace_add(void)
{
    kiln_network *net = make_net();
    if (!net) return;
    kiln_host_tensor base, out;
    CHECK(run_ramp(net, &base) == KILN_OK);
    int add = kiln_graph_find_node(net, "add1");
    /* replace_node: Add -> Sub with c1 negated: same values */
    float negc[2] = {-1.0f, 1.0f};
    kiln_host_tensor nc = {.dtype = KILN_DT_FLOAT, .rank = 4, .dims = {1, 2, 1, 1}, .data = negc, .nbytes = sizeof negc};
    CHECK(kiln_graph_add_constant(net, "negc1", &nc) == KILN_OK);
    CHECK(kiln_graph_find_tensor(net, "negc1") >= 0);
    REFUSED(net, kiln_graph_add_constant(net, "c1", &nc), KILN_ERR_GRAPH);   /* name taken */
    REFUSED(net, kiln_graph_add_constant(net, "x", &nc), KILN_ERR_GRAPH);    /* a graph input's name */
    kiln_host_tensor badt = nc;
    badt.nbytes = 4;
    REFUSED(net, kiln_graph_add_constant(net, "bad", &badt), KILN_ERR_SHAPE); /* data does not match dims */
    CHECK(kiln_graph_replace_node(net, add, NULL, "Sub", NULL, 2, (const char *[]){"b", "negc1"}, 1,
                                  (const char *[]){"c"}, 0, NULL) == KILN_OK);
    CHECK(eq(kiln_graph_node_op(net, add), "Sub") && eq(kiln_graph_node_name(net, add), "add1"));
    if (run_ramp(net, &out) == KILN_OK) {
        CHECK(same_values(&out, &base));
        kiln_host_tensor_release(&out);
    }
    /* refused: an old output still read (c) would dangle; unknown input; an output defined elsewhere; a cycle; bad attrs */
    REFUSED(net, kiln_graph_replace_node(net, add, NULL, "Sub", NULL, 2, (const char *[]){"b", "negc1"}, 1,
                                         (const char *[]){"c_new"}, 0, NULL), KILN_ERR_GRAPH);
    CHECK(strstr(kiln_network_last_error(net), "'c'") != NULL);
    REFUSED(net, kiln_graph_replace_node(net, add, NULL, "Sub", NULL, 2, (const char *[]){"b", "nope"}, 1,
                                         (const char *[]){"c"}, 0, NULL), KILN_ERR_NOT_FOUND);
    REFUSED(net, kiln_graph_replace_node(net, add, NULL, "Sub", NULL, 2, (const char *[]){"b", "negc1"}, 1,
                                         (const char *[]){"m"}, 0, NULL), KILN_ERR_GRAPH);
    REFUSED(net, kiln_graph_replace_node(net, add, NULL, "Sub", NULL, 2, (const char *[]){"m", "negc1"}, 1,
                                         (const char *[]){"c"}, 0, NULL), KILN_ERR_GRAPH); /* reads its descendant */
    kiln_attr_value bad_axis = {.name = "axis", .type = KILN_ATTR_STRING, .s = "x", .s_len = 1};
    REFUSED(net, kiln_graph_replace_node(net, add, NULL, "Concat", NULL, 2, (const char *[]){"b", "negc1"}, 1,
                                         (const char *[]){"c"}, 1, &bad_axis), KILN_ERR_INVALID_ARG);
    REFUSED(net, kiln_graph_replace_node(net, add, "r1", "Sub", NULL, 2, (const char *[]){"b", "negc1"}, 1,
                                         (const char *[]){"c"}, 0, NULL), KILN_ERR_GRAPH); /* node name taken */
    REFUSED(net, kiln_graph_replace_node(net, add, NULL, "Sub", NULL, 2, (const char *[]){"b", "negc1"}, 2,
                                         (const char *[]){"c", "c"}, 0, NULL), KILN_ERR_GRAPH); /* output twice */

    /* add_node */
    CHECK(kiln_graph_add_node(net, "neg1", "Neg", NULL, 1, (const char *[]){"y"}, 1, (const char *[]){"ny"}, 0, NULL) == KILN_OK);
    CHECK(kiln_graph_producer(net, "ny") == kiln_graph_find_node(net, "neg1"));
    REFUSED(net, kiln_graph_add_node(net, "neg1", "Neg", NULL, 1, (const char *[]){"y"}, 1, (const char *[]){"ny2"}, 0, NULL),
            KILN_ERR_GRAPH); /* name taken */
    REFUSED(net, kiln_graph_add_node(net, "neg2", "Neg", NULL, 1, (const char *[]){"zz"}, 1, (const char *[]){"ny2"}, 0, NULL),
            KILN_ERR_NOT_FOUND); /* unknown input */
    REFUSED(net, kiln_graph_add_node(net, "neg2", "Neg", NULL, 1, (const char *[]){"y"}, 1, (const char *[]){"a"}, 0, NULL),
            KILN_ERR_GRAPH); /* output already defined */
    REFUSED(net, kiln_graph_add_node(net, "neg2", "Neg", NULL, 2, (const char *[]){"y", "y"}, 1, (const char *[]){"q"}, 0, NULL),
            KILN_ERR_GRAPH); /* schema: Neg takes one input */
    REFUSED(net, kiln_graph_add_node(net, "neg2", NULL, NULL, 1, (const char *[]){"y"}, 1, (const char *[]){"q"}, 0, NULL),
            KILN_ERR_INVALID_ARG);
    CHECK(kiln_graph_add_node(net, NULL, "Relu", NULL, 1, (const char *[]){"ny"}, 1, (const char *[]){"rny"}, 0, NULL) == KILN_OK);
    CHECK(kiln_graph_producer(net, "rny") >= 0 && kiln_graph_node_name(net, kiln_graph_producer(net, "rny"))[0]);

    /* evaluate: a value computed from constants only */
    CHECK(kiln_graph_add_node(net, "cadd", "Add", NULL, 2, (const char *[]){"c1", "kc"}, 1, (const char *[]){"c1k"}, 0, NULL) == KILN_OK);
    kiln_host_tensor ev;
    CHECK(kiln_graph_evaluate(net, "c1k", &ev) == KILN_OK);
    CHECK(ev.rank == 4 && ev.nbytes == 8 && ((float *)ev.data)[0] == 3.0f && ((float *)ev.data)[1] == 1.0f);
    kiln_host_tensor_release(&ev);

    /* rename_tensor */
    CHECK(kiln_graph_rename_tensor(net, "y", "output") == KILN_OK);
    CHECK(eq(kiln_network_output_name(net, 0), "output") && kiln_graph_find_tensor(net, "y") == -1);
    CHECK(eq(kiln_graph_node_input(net, kiln_graph_find_node(net, "neg1"), 0), "output"));
    CHECK(kiln_graph_rename_tensor(net, "x", "image") == KILN_OK && eq(kiln_network_input_name(net, 0), "image"));
    REFUSED(net, kiln_graph_rename_tensor(net, "a", "c1"), KILN_ERR_GRAPH); /* existing name */
    REFUSED(net, kiln_graph_rename_tensor(net, "nope", "q"), KILN_ERR_NOT_FOUND);
    REFUSED(net, kiln_graph_rename_tensor(net, "a", ""), KILN_ERR_INVALID_ARG);
    CHECK(kiln_graph_rename_tensor(net, "image", "x") == KILN_OK);
    if (run_ramp(net, &out) == KILN_OK) {
        CHECK(same_values(&out, &base));
        kiln_host_tensor_release(&out);
    }

    /* set_outputs */
    CHECK(kiln_graph_set_outputs(net, 2, (const char *[]){"output", "ny"}) == KILN_OK);
    CHECK(kiln_network_output_count(net) == 2 && eq(kiln_network_output_name(net, 1), "ny"));
    REFUSED(net, kiln_graph_set_outputs(net, 2, (const char *[]){"ny", "ny"}), KILN_ERR_GRAPH);
    REFUSED(net, kiln_graph_set_outputs(net, 1, (const char *[]){"nope"}), KILN_ERR_NOT_FOUND);
    REFUSED(net, kiln_graph_set_outputs(net, 0, NULL), KILN_ERR_INVALID_ARG);
    CHECK(kiln_graph_set_outputs(net, 1, (const char *[]){"output"}) == KILN_OK);
    kiln_host_tensor_release(&base);
    kiln_network_free(net);
}

static void test_graph_edits(void)
{
    kiln_network *net = make_net();
    if (!net) return;
    /* set_input_shape */
    int64_t fixed[4] = {1, 2, 3, 4};
    CHECK(kiln_graph_set_input_shape(net, "x", 4, fixed, NULL) == KILN_OK);
    kiln_graph_tensor_info ti;
    CHECK(kiln_graph_tensor_info_get(net, "y", &ti) == KILN_OK && ti.rank == 4 && ti.dims[2] == 3 && ti.dims[3] == 4);
    kiln_dtype dt;
    int rank;
    int64_t dims[KILN_MAX_DIMS];
    CHECK(kiln_network_input_shape(net, 0, &dt, &rank, dims) == KILN_OK && rank == 4 && dims[3] == 4 && dt == KILN_DT_FLOAT);
    int64_t clash[4] = {1, 3, 3, 4}; /* 3 channels against c1's 2 */
    REFUSED(net, kiln_graph_set_input_shape(net, "x", 4, clash, NULL), KILN_ERR_SHAPE);
    CHECK(kiln_network_input_shape(net, 0, &dt, &rank, dims) == KILN_OK && dims[1] == 2);
    REFUSED(net, kiln_graph_set_input_shape(net, "a", 4, fixed, NULL), KILN_ERR_NOT_FOUND);
    REFUSED(net, kiln_graph_set_input_shape(net, "x", 9, fixed, NULL), KILN_ERR_LIMIT);
    int64_t neg[4] = {1, 2, -5, 4};
    REFUSED(net, kiln_graph_set_input_shape(net, "x", 4, neg, NULL), KILN_ERR_SHAPE);
    int64_t sym[4] = {1, 2, KILN_DIM_SYMBOLIC, KILN_DIM_SYMBOLIC};
    CHECK(kiln_graph_set_input_shape(net, "x", 4, sym, (const char *[]){NULL, NULL, "H", NULL}) == KILN_OK);
    CHECK(kiln_graph_tensor_info_get(net, "y", &ti) == KILN_OK && eq(ti.dim_text[2], "H") && ti.dims[3] == KILN_DIM_SYMBOLIC);

    /* toposort: make the first node read the output of a later one (no cycle) */
    int64_t one[1] = {1};
    float z = 0;
    CHECK(kiln_network_add_input(net, "x2", KILN_DT_FLOAT, 1, one, NULL) == KILN_OK);
    CHECK(kiln_graph_add_node(net, "late", "Relu", NULL, 1, (const char *[]){"x"}, 1, (const char *[]){"xl"}, 0, NULL) == KILN_OK);
    CHECK(kiln_graph_set_node_input(net, kiln_graph_find_node(net, "r1"), 0, "xl") == KILN_OK);
    CHECK(kiln_graph_find_node(net, "late") > kiln_graph_find_node(net, "r1"));
    CHECK(kiln_graph_toposort(net) == KILN_OK);
    CHECK(kiln_graph_find_node(net, "late") < kiln_graph_find_node(net, "r1"));
    (void)z;

    /* cleanup: the dead Transpose, the unused initializer; then the unused input */
    int nodes0 = kiln_graph_node_count(net), rn = -1, rt = -1;
    CHECK(kiln_graph_cleanup(net, 0, &rn, &rt) == KILN_OK);
    CHECK(rn == 1 && kiln_graph_node_count(net) == nodes0 - 1 && kiln_graph_find_node(net, "tr1") == -1);
    CHECK(kiln_graph_find_tensor(net, "unused") == -1 && kiln_graph_find_tensor(net, "d") == -1);
    CHECK(rt >= 2);
    CHECK(kiln_network_input_count(net) == 2); /* kept without the flag */
    CHECK(kiln_graph_cleanup(net, KILN_GRAPH_CLEANUP_INPUTS, &rn, &rt) == KILN_OK);
    CHECK(rn == 0 && rt == 1 && kiln_network_input_count(net) == 1 && kiln_graph_find_tensor(net, "x2") == -1);
    kiln_host_tensor out;
    if (run_ramp(net, &out) == KILN_OK) {
        const float *o = out.data;
        CHECK(fabsf(o[0] - expect_y(0) * 0 - 2.0f * (0.0f + 1.0f)) < 1e-5f); /* relu'd first: leaky(relu(-3)) = 0 */
        kiln_host_tensor_release(&out);
    }
    kiln_network_free(net);

    /* a graph with a cycle: cleanup and toposort refuse, unchanged */
    net = make_net();
    if (!net) return;
    /* built with the plain network API, which does not check cycles */
    kiln_network *cyc = NULL;
    CHECK(kiln_network_create(&cyc) == KILN_OK);
    int64_t d1[1] = {2};
    CHECK(kiln_network_add_input(cyc, "i", KILN_DT_FLOAT, 1, d1, NULL) == KILN_OK);
    CHECK(kiln_network_add_node(cyc, "n1", "Add", NULL, 2, (const char *[]){"i", "q"}, 1, (const char *[]){"p"}, 0, NULL) == KILN_OK);
    CHECK(kiln_network_add_node(cyc, "n2", "Relu", NULL, 1, (const char *[]){"p"}, 1, (const char *[]){"q"}, 0, NULL) == KILN_OK);
    CHECK(kiln_network_mark_output(cyc, "q") == KILN_OK);
    REFUSED(cyc, kiln_graph_toposort(cyc), KILN_ERR_GRAPH);
    REFUSED(cyc, kiln_graph_cleanup(cyc, KILN_GRAPH_CLEANUP_INPUTS, NULL, NULL), KILN_ERR_GRAPH);
    kiln_network_free(cyc);
    kiln_network_free(net);
}

static void test_extract(void)
{
    kiln_network *net = make_net();
    if (!net) return;
    char *before = snapshot(net);
    kiln_network *sub = NULL;
    CHECK(kiln_graph_extract(net, (const char *[]){"a"}, 1, (const char *[]){"c"}, 1, &sub) == KILN_OK);
    CHECK(same_as(net, before, "extract"));
    if (sub) {
        CHECK(kiln_graph_node_count(sub) == 2);
        CHECK(kiln_graph_find_node(sub, "id1") >= 0 && kiln_graph_find_node(sub, "add1") >= 0);
        CHECK(kiln_network_input_count(sub) == 1 && eq(kiln_network_input_name(sub, 0), "a"));
        CHECK(kiln_network_output_count(sub) == 1 && eq(kiln_network_output_name(sub, 0), "c"));
        CHECK(kiln_graph_find_tensor(sub, "unused") == -1 && kiln_graph_find_tensor(sub, "x") == -1);
        kiln_graph_tensor_info ti;
        CHECK(kiln_graph_tensor_info_get(sub, "a", &ti) == KILN_OK && ti.is_graph_input && ti.dtype == KILN_DT_FLOAT &&
              ti.rank == 4 && eq(ti.dim_text[2], "h"));
        CHECK(kiln_graph_tensor_info_get(sub, "c", &ti) == KILN_OK && ti.rank == 4 && eq(ti.dim_text[3], "w"));
        float av[4] = {1, 2, 3, 4}, *o;
        kiln_host_tensor in = {.name = "a", .dtype = KILN_DT_FLOAT, .rank = 4, .dims = {1, 2, 1, 2}, .data = av, .nbytes = sizeof av};
        kiln_host_tensor out;
        memset(&out, 0, sizeof out);
        CHECK(kiln_reference_run(sub, 1, &in, 1, &out) == KILN_OK);
        o = out.data;
        CHECK(o && o[0] == 2 && o[1] == 3 && o[2] == 2 && o[3] == 3);
        kiln_host_tensor_release(&out);
        kiln_network_free(sub);
        sub = NULL;
    }
    /* two outputs, one cut in the middle */
    CHECK(kiln_graph_extract(net, (const char *[]){"x", "c"}, 2, (const char *[]){"y", "d"}, 2, &sub) == KILN_OK);
    if (sub) {
        CHECK(kiln_graph_node_count(sub) == 5 && kiln_network_input_count(sub) == 2); /* r1, tr1, k1, mul1, clip1 */
        CHECK(kiln_graph_find_node(sub, "add1") == -1);
        kiln_network_free(sub);
        sub = NULL;
    }
    /* refused */
    CHECK(kiln_graph_extract(net, NULL, 0, (const char *[]){"c"}, 1, &sub) == KILN_ERR_GRAPH && !sub);
    CHECK(strstr(kiln_last_error(), "graph input 'x'") != NULL);
    CHECK(kiln_graph_extract(net, (const char *[]){"zz"}, 1, (const char *[]){"c"}, 1, &sub) == KILN_ERR_NOT_FOUND);
    CHECK(kiln_graph_extract(net, (const char *[]){"a"}, 1, (const char *[]){"zz"}, 1, &sub) == KILN_ERR_NOT_FOUND);
    CHECK(kiln_graph_extract(net, (const char *[]){"a", "a"}, 2, (const char *[]){"c"}, 1, &sub) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_graph_extract(net, (const char *[]){"c1"}, 1, (const char *[]){"c"}, 1, &sub) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_graph_extract(net, (const char *[]){"a"}, 1, NULL, 0, &sub) == KILN_ERR_INVALID_ARG);
    /* "b" as input while "a" (which feeds b's producer id1) is needed too via tr1: allowed, id1 is not needed */
    CHECK(kiln_graph_extract(net, (const char *[]){"x", "b"}, 2, (const char *[]){"c", "d"}, 2, &sub) == KILN_OK);
    if (sub) {
        CHECK(kiln_graph_find_node(sub, "id1") == -1 && kiln_graph_node_count(sub) == 3);
        kiln_network_free(sub);
        sub = NULL;
    }
    /* an input whose producer is needed for another output */
    CHECK(kiln_graph_extract(net, (const char *[]){"x", "a"}, 2, (const char *[]){"y"}, 1, &sub) == KILN_OK);
    if (sub) kiln_network_free(sub), sub = NULL;
    CHECK(kiln_graph_extract(net, (const char *[]){"x", "b"}, 2, (const char *[]){"a", "c"}, 2, &sub) == KILN_OK);
    if (sub) kiln_network_free(sub), sub = NULL;
    CHECK(same_as(net, before, "extract (all)"));
    free(before);
    kiln_network_free(net);
}

/* Refusals that need special graphs: two used outputs, both ends graph outputs, dangling tensors, cycles via add_node. */
static void test_refusals(void)
{
    kiln_network *net = make_net();
    if (!net) return;
    /* a node kiln does not know with two outputs, both read */
    CHECK(kiln_graph_add_node(net, "sp", "MySplit", "custom", 1, (const char *[]){"a"}, 2, (const char *[]){"s1", "s2"}, 0, NULL) == KILN_OK);
    CHECK(kiln_graph_add_node(net, "u1", "Relu", NULL, 1, (const char *[]){"s1"}, 1, (const char *[]){"u1o"}, 0, NULL) == KILN_OK);
    CHECK(kiln_graph_add_node(net, "u2", "Relu", NULL, 1, (const char *[]){"s2"}, 1, (const char *[]){"u2o"}, 0, NULL) == KILN_OK);
    REFUSED(net, kiln_graph_remove_node(net, kiln_graph_find_node(net, "sp")), KILN_ERR_GRAPH);
    CHECK(strstr(kiln_network_last_error(net), "2 used outputs") != NULL);
    /* only one output read: allowed */
    CHECK(kiln_graph_remove_node(net, kiln_graph_find_node(net, "u2")) == KILN_OK);
    CHECK(kiln_graph_remove_node(net, kiln_graph_find_node(net, "sp")) == KILN_OK);
    CHECK(eq(kiln_graph_node_input(net, kiln_graph_find_node(net, "u1"), 0), "a"));
    CHECK(kiln_graph_find_tensor(net, "s1") == -1 && kiln_graph_find_tensor(net, "s2") == -1);
    /* a node with no data input at all (Constant) */
    REFUSED(net, kiln_graph_remove_node(net, kiln_graph_find_node(net, "k1")), KILN_ERR_GRAPH);
    /* input and output of the node both graph outputs */
    CHECK(kiln_graph_set_outputs(net, 2, (const char *[]){"a", "b"}) == KILN_OK);
    REFUSED(net, kiln_graph_remove_node(net, kiln_graph_find_node(net, "id1")), KILN_ERR_GRAPH);
    kiln_network_free(net);

    /* a graph with a dangling tensor "ghost" (the plain network API allows it) */
    net = make_net();
    if (!net) return;
    CHECK(kiln_network_add_node(net, "g1", "Relu", NULL, 1, (const char *[]){"ghost"}, 1, (const char *[]){"gout"}, 0, NULL) == KILN_OK);
    REFUSED(net, kiln_graph_set_node_input(net, kiln_graph_find_node(net, "add1"), 1, "ghost"), KILN_ERR_GRAPH);
    CHECK(strstr(kiln_network_last_error(net), "not produced") != NULL);
    REFUSED(net, kiln_graph_add_node(net, "g2", "Relu", NULL, 1, (const char *[]){"ghost"}, 1, (const char *[]){"q"}, 0, NULL),
            KILN_ERR_GRAPH);
    REFUSED(net, kiln_graph_set_outputs(net, 1, (const char *[]){"ghost"}), KILN_ERR_GRAPH);
    /* producing ghost from gout would close a loop */
    REFUSED(net, kiln_graph_add_node(net, "g3", "Relu", NULL, 1, (const char *[]){"gout"}, 1, (const char *[]){"ghost"}, 0, NULL),
            KILN_ERR_GRAPH);
    CHECK(strstr(kiln_network_last_error(net), "cycle") != NULL);
    REFUSED(net, kiln_graph_cleanup(net, 0, NULL, NULL), KILN_ERR_GRAPH); /* the graph is not valid as it stands */
    /* producing ghost from x repairs the graph */
    CHECK(kiln_graph_add_node(net, "g4", "Relu", NULL, 1, (const char *[]){"x"}, 1, (const char *[]){"ghost"}, 0, NULL) == KILN_OK);
    CHECK(kiln_graph_toposort(net) == KILN_OK);
    CHECK(kiln_graph_find_node(net, "g4") < kiln_graph_find_node(net, "g1"));
    /* a constant can fill a dangling name too */
    CHECK(kiln_network_add_node(net, "g5", "Relu", NULL, 1, (const char *[]){"ghost2"}, 1, (const char *[]){"g5o"}, 0, NULL) == KILN_OK);
    float gv[1] = {1};
    kiln_host_tensor gt = {.dtype = KILN_DT_FLOAT, .rank = 1, .dims = {1}, .data = gv, .nbytes = sizeof gv};
    CHECK(kiln_graph_add_constant(net, "ghost2", &gt) == KILN_OK);
    CHECK(kiln_graph_toposort(net) == KILN_OK);
    kiln_network_free(net);
}

/* The example's edit on a graph built by hand: Resize scales from Concat(Constant, Cast(Unsqueeze(Constant))). */
static void test_resize_fold_flow(void)
{
    kiln_network *net = NULL;
    CHECK(kiln_network_create(&net) == KILN_OK);
    if (!net) return;
    kiln_network_set_opset(net, 13);
    int64_t xd[4] = {1, 1, 2, 2}, two = 2, ax0 = 0;
    float ones[2] = {1, 1};
    kiln_host_tensor t_ones = {.dtype = KILN_DT_FLOAT, .rank = 1, .dims = {2}, .data = ones, .nbytes = sizeof ones};
    kiln_host_tensor t_two = {.dtype = KILN_DT_INT64, .rank = 0, .data = &two, .nbytes = sizeof two};
    kiln_host_tensor t_ax = {.dtype = KILN_DT_INT64, .rank = 1, .dims = {1}, .data = &ax0, .nbytes = sizeof ax0};
    kiln_attr_value v_ones = {.name = "value", .type = KILN_ATTR_TENSOR, .t = &t_ones};
    kiln_attr_value v_two = {.name = "value", .type = KILN_ATTR_TENSOR, .t = &t_two};
    kiln_attr_value v_ax = {.name = "value", .type = KILN_ATTR_TENSOR, .t = &t_ax};
    kiln_attr_value to_f = {.name = "to", .type = KILN_ATTR_INT, .i = KILN_DT_FLOAT};
    kiln_attr_value ax = {.name = "axis", .type = KILN_ATTR_INT, .i = 0};
    kiln_attr_value mode = {.name = "mode", .type = KILN_ATTR_STRING, .s = "nearest", .s_len = 7};
    int bad = 0;
    bad |= kiln_network_add_input(net, "x", KILN_DT_FLOAT, 4, xd, NULL);
    bad |= kiln_network_add_node(net, "c_nc", "Constant", NULL, 0, NULL, 1, (const char *[]){"nc"}, 1, &v_ones);
    bad |= kiln_network_add_node(net, "c_two", "Constant", NULL, 0, NULL, 1, (const char *[]){"two"}, 1, &v_two);
    bad |= kiln_network_add_node(net, "c_ax", "Constant", NULL, 0, NULL, 1, (const char *[]){"ax"}, 1, &v_ax);
    bad |= kiln_network_add_node(net, "unsq", "Unsqueeze", NULL, 2, (const char *[]){"two", "ax"}, 1, (const char *[]){"two1"}, 0, NULL);
    bad |= kiln_network_add_node(net, "cast", "Cast", NULL, 1, (const char *[]){"two1"}, 1, (const char *[]){"twof"}, 1, &to_f);
    bad |= kiln_network_add_node(net, "cat", "Concat", NULL, 3, (const char *[]){"nc", "twof", "twof"}, 1, (const char *[]){"scales"}, 1, &ax);
    bad |= kiln_network_add_node(net, "rs", "Resize", NULL, 3, (const char *[]){"x", "", "scales"}, 1, (const char *[]){"y"}, 1, &mode);
    bad |= kiln_network_mark_output(net, "y");
    CHECK(bad == 0);
    if (bad) printf("  %s\n", kiln_network_last_error(net));
    float xv[4] = {1, 2, 3, 4};
    kiln_host_tensor in = {.name = "x", .dtype = KILN_DT_FLOAT, .rank = 4, .dims = {1, 1, 2, 2}, .data = xv, .nbytes = sizeof xv};
    kiln_host_tensor before, after, sc;
    memset(&before, 0, sizeof before);
    memset(&after, 0, sizeof after);
    CHECK(kiln_reference_run(net, 1, &in, 1, &before) == KILN_OK && before.nbytes == 16 * sizeof(float));
    CHECK(kiln_graph_producer(net, "scales") == kiln_graph_find_node(net, "cat"));
    CHECK(kiln_graph_evaluate(net, "scales", &sc) == KILN_OK);
    CHECK(sc.dtype == KILN_DT_FLOAT && sc.rank == 1 && sc.dims[0] == 4);
    if (sc.nbytes == 16) {
        const float *f = sc.data;
        CHECK(f[0] == 1 && f[1] == 1 && f[2] == 2 && f[3] == 2);
    }
    CHECK(kiln_graph_add_constant(net, "rs_scales", &sc) == KILN_OK);
    kiln_host_tensor_release(&sc);
    CHECK(kiln_graph_set_node_input(net, kiln_graph_find_node(net, "rs"), 2, "rs_scales") == KILN_OK);
    int rn = 0, rt = 0;
    CHECK(kiln_graph_cleanup(net, 0, &rn, &rt) == KILN_OK);
    CHECK(rn == 6 && kiln_graph_node_count(net) == 1);
    kiln_graph_tensor_info ti;
    CHECK(kiln_graph_tensor_info_get(net, "rs_scales", &ti) == KILN_OK && ti.is_constant && ti.n_consumers == 1);
    CHECK(kiln_graph_find_tensor(net, "scales") == -1 && kiln_graph_find_tensor(net, "two") == -1);
    CHECK(kiln_reference_run(net, 1, &in, 1, &after) == KILN_OK);
    CHECK(same_values(&after, &before));
    kiln_host_tensor_release(&before);
    kiln_host_tensor_release(&after);
    kiln_network_free(net);
}

static void test_null_args(void)
{
    CHECK(kiln_graph_node_count(NULL) == 0 && kiln_graph_find_node(NULL, "a") == -1);
    CHECK(kiln_graph_node_name(NULL, 0) == NULL && kiln_graph_node_input(NULL, 0, 0) == NULL);
    CHECK(kiln_graph_tensor_count(NULL) == 0 && kiln_graph_find_tensor(NULL, "a") == -1);
    CHECK(kiln_graph_replace_op(NULL, 0, "Relu", NULL) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_graph_set_attr_int(NULL, 0, "a", 1) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_graph_set_attr_ints(NULL, 0, "a", NULL, 0) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_graph_remove_attr(NULL, 0, "a") == KILN_ERR_INVALID_ARG);
    CHECK(kiln_graph_remove_node(NULL, 0) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_graph_add_node(NULL, "n", "Relu", NULL, 0, NULL, 0, NULL, 0, NULL) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_graph_add_constant(NULL, "n", NULL) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_graph_rename_tensor(NULL, "a", "b") == KILN_ERR_INVALID_ARG);
    CHECK(kiln_graph_cleanup(NULL, 0, NULL, NULL) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_graph_toposort(NULL) == KILN_ERR_INVALID_ARG);
    kiln_network *sub = (kiln_network *)1;
    CHECK(kiln_graph_extract(NULL, NULL, 0, NULL, 0, &sub) == KILN_ERR_INVALID_ARG && sub == NULL);
    kiln_graph_tensor_info ti;
    CHECK(kiln_graph_tensor_info_get(NULL, "a", &ti) == KILN_ERR_INVALID_ARG);
    kiln_host_tensor h;
    CHECK(kiln_graph_constant_data(NULL, "a", &h) == KILN_ERR_NOT_FOUND);

    /* a real network, NULL or bad arguments: refused, unchanged, no crash */
    kiln_network *net = make_net();
    if (!net) return;
    REFUSED(net, kiln_graph_replace_node(net, 0, NULL, "Relu", NULL, 1, NULL, 1, NULL, 0, NULL), KILN_ERR_INVALID_ARG);
    REFUSED(net, kiln_graph_replace_node(net, 0, NULL, "Relu", NULL, -1, NULL, 1, (const char *[]){"a"}, 0, NULL), KILN_ERR_INVALID_ARG);
    REFUSED(net, kiln_graph_add_node(net, "q", "Relu", NULL, 1, NULL, 1, (const char *[]){"q"}, 0, NULL), KILN_ERR_INVALID_ARG);
    kiln_attr_value noname = {.name = NULL, .type = KILN_ATTR_INT, .i = 1};
    REFUSED(net, kiln_graph_add_node(net, "q", "Relu", NULL, 1, (const char *[]){"x"}, 1, (const char *[]){"q"}, 1, &noname),
            KILN_ERR_INVALID_ARG);
    REFUSED(net, kiln_graph_set_outputs(net, 1, (const char *[]){NULL}), KILN_ERR_NOT_FOUND);
    REFUSED(net, kiln_graph_set_input_shape(net, "x", 4, NULL, NULL), KILN_ERR_LIMIT);
    REFUSED(net, kiln_graph_set_input_shape(net, NULL, 4, NULL, NULL), KILN_ERR_NOT_FOUND);
    REFUSED(net, kiln_graph_rename_tensor(net, NULL, "q"), KILN_ERR_NOT_FOUND);
    REFUSED(net, kiln_graph_rename_tensor(net, "a", NULL), KILN_ERR_INVALID_ARG);
    REFUSED(net, kiln_graph_set_attr_string(net, 0, NULL, "v"), KILN_ERR_INVALID_ARG);
    REFUSED(net, kiln_graph_set_attr_floats(net, 0, "alpha", NULL, 3), KILN_ERR_INVALID_ARG);
    REFUSED(net, kiln_graph_remove_attr(net, 0, NULL), KILN_ERR_INVALID_ARG);
    REFUSED(net, kiln_graph_replace_op(net, 0, NULL, NULL), KILN_ERR_INVALID_ARG);
    REFUSED(net, kiln_graph_add_constant(net, NULL, NULL), KILN_ERR_INVALID_ARG);
    kiln_host_tensor noname_t = {.dtype = KILN_DT_FLOAT, .rank = 0};
    REFUSED(net, kiln_graph_add_constant(net, NULL, &noname_t), KILN_ERR_INVALID_ARG);
    kiln_host_tensor badrank = {.name = "br", .dtype = KILN_DT_FLOAT, .rank = 99};
    REFUSED(net, kiln_graph_add_constant(net, NULL, &badrank), KILN_ERR_LIMIT);
    REFUSED(net, kiln_graph_set_node_input(net, 0, -1, "x"), KILN_ERR_INVALID_ARG);
    sub = NULL;
    CHECK(kiln_graph_extract(net, (const char *[]){NULL}, 1, (const char *[]){"y"}, 1, &sub) == KILN_ERR_NOT_FOUND && !sub);
    CHECK(kiln_graph_extract(net, NULL, 1, (const char *[]){"y"}, 1, &sub) == KILN_ERR_INVALID_ARG && !sub);
    CHECK(kiln_graph_extract(net, NULL, 0, (const char *[]){"y"}, 1, NULL) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_graph_get_attr(net, 0, "alpha", NULL) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_graph_tensor_info_get(net, NULL, &ti) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_graph_constant_data(net, "c1", NULL) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_graph_evaluate(net, NULL, &h) == KILN_ERR_NOT_FOUND);
    CHECK(kiln_graph_consumers(net, NULL, NULL, 0) == -1 && kiln_graph_consumers(net, "a", NULL, 5) == 2);
    kiln_network_free(net);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    test_lookups();
    test_node_edits();
    test_replace_add();
    test_graph_edits();
    test_extract();
    test_refusals();
    test_resize_fold_flow();
    test_null_args();
    return TEST_SUMMARY("test_graph_api");
}
