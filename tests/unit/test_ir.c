/* Unit tests of the IR: symbolic dims, float16, network API errors, toposort, shape inference. */
#include "cpu/cpu.h"
#include "ir/ir.h"
#include "test_main.h"
#include <math.h>
#include <string.h>

static void test_dims(void)
{
    kiln_dim h = kiln__dim_sym(0);
    /* conv 3x3 pad 1 stride 1 keeps H */
    kiln_dim c = kiln__dim_add(kiln__dim_div(kiln__dim_add(h, 2 - 2 - 1 + 1), 1), 0);
    CHECK(kiln__dim_equal(c, h));
    /* x4 upsampling then stride-2 conv (k3 p1): floor((4H + 2 - 3)/2) + 1 = 2H */
    kiln_dim up = kiln__dim_mul(h, 4);
    kiln_dim s2 = kiln__dim_add(kiln__dim_div(kiln__dim_add(up, 2 - 3), 2), 1);
    CHECK(kiln__dim_equal(s2, kiln__dim_mul(h, 2)));
    /* floor((H - 1)/2) + 1 stays symbolic, and evaluates right for H = 7 */
    kiln_dim odd = kiln__dim_add(kiln__dim_div(kiln__dim_add(h, -1), 2), 1);
    CHECK(odd.sym == 0);
    CHECK((odd.mul * 7 + odd.add) / odd.div == 4);
    CHECK(kiln__dim_is_const(kiln__dim_mul(h, 0)));
    bool ok;
    kiln_dim b = kiln__dim_broadcast(kiln__dim_const(1), h, &ok);
    CHECK(ok && kiln__dim_equal(b, h));
    kiln__dim_broadcast(kiln__dim_const(2), kiln__dim_const(3), &ok);
    CHECK(!ok);
    kiln_network *net;
    kiln_network_create(&net);
    kiln__net_symbol(net, "height");
    char buf[64];
    kiln__dim_str(net, kiln__dim_add(kiln__dim_mul(h, 2), 1), buf, sizeof buf);
    CHECK(!strcmp(buf, "2*height+1"));
    kiln_network_free(net);
}

static void test_half(void)
{
    float vals[] = {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f, 0.333333f};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        float back = kiln__f16_to_f32(kiln__f32_to_f16(vals[i]));
        CHECK(fabsf(back - vals[i]) <= fabsf(vals[i]) * 1e-3f);
    }
    CHECK(kiln__f32_to_f16(1e6f) == 0x7c00);
    CHECK(isnan(kiln__f16_to_f32(kiln__f32_to_f16(NAN))));
    CHECK(kiln__bf16_to_f32(kiln__f32_to_bf16(1.5f)) == 1.5f);
}

static void test_network_errors(void)
{
    kiln_network *net;
    CHECK(kiln_network_create(&net) == KILN_OK);
    int64_t dims[2] = {2, 3};
    float data[6] = {1, 2, 3, 4, 5, 6};
    CHECK(kiln_network_add_constant(net, "w", KILN_DT_FLOAT, 2, dims, data, sizeof data) == KILN_OK);
    /* data shorter than the shape says */
    CHECK(kiln_network_add_constant(net, "w2", KILN_DT_FLOAT, 2, dims, data, 8) == KILN_ERR_SHAPE);
    CHECK(strstr(kiln_network_last_error(net), "w2") != NULL);
    int64_t neg[2] = {-4, 3};
    CHECK(kiln_network_add_input(net, "x", KILN_DT_FLOAT, 2, neg, NULL) == KILN_ERR_SHAPE);
    CHECK(kiln_network_add_input(net, "x", KILN_DT_FLOAT, 2, dims, NULL) == KILN_OK);
    const char *in[2] = {"x", "w"}, *out = "y";
    CHECK(kiln_network_add_node(net, "add", "Add", "", 2, in, 1, &out, 0, NULL) == KILN_OK);
    /* a second producer of y */
    CHECK(kiln_network_add_node(net, "add2", "Add", "", 2, in, 1, &out, 0, NULL) == KILN_ERR_GRAPH);
    kiln_network_free(net);

    /* a cycle and a dangling name are found by toposort */
    CHECK(kiln_network_create(&net) == KILN_OK);
    CHECK(kiln_network_add_input(net, "x", KILN_DT_FLOAT, 2, dims, NULL) == KILN_OK);
    const char *a_in[2] = {"x", "b"}, *a_out = "a", *b_in[1] = {"a"}, *b_out = "b";
    kiln_network_add_node(net, "n_a", "Add", "", 2, a_in, 1, &a_out, 0, NULL);
    kiln_network_add_node(net, "n_b", "Relu", "", 1, b_in, 1, &b_out, 0, NULL);
    kiln_network_mark_output(net, "b");
    int *order = NULL;
    kiln_err err = {{0}};
    CHECK(kiln__net_toposort(net, &order, &err) == KILN_ERR_GRAPH);
    CHECK(strstr(err.msg, "cycle") != NULL);
    kiln_network_free(net);

    CHECK(kiln_network_create(&net) == KILN_OK);
    const char *d_in[1] = {"nowhere"}, *d_out = "y";
    kiln_network_add_node(net, "relu", "Relu", "", 1, d_in, 1, &d_out, 0, NULL);
    CHECK(kiln__net_toposort(net, &order, &err) == KILN_ERR_GRAPH);
    CHECK(strstr(err.msg, "nowhere") != NULL);
    kiln_network_free(net);
}

int main(void)
{
    test_dims();
    test_half();
    test_network_errors();
    return TEST_SUMMARY("test_ir");
}
