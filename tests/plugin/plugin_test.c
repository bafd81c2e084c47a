/*
 * Plugin registry, IR integration, CPU path and engine-file records, on the
 * CPU (no GPU needed). Uses the example ScaledTanh library and the models
 * written by make_model.
 *
 *   kiln_plugin_test PLUGIN_LIB MODELS_DIR TMP_DIR
 */
#include "build/engine.h"
#include "plugin/plugin.h"
#include "../unit/test_main.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Re-seals a patched engine file (engine file format 3's checksum: engine_file.c; wts). */
static void reseal(uint8_t *b, size_t n) { kiln__engine_file_reseal(b, n); }

static bool contains(const char *s, const char *sub) { return s && strstr(s, sub) != NULL; }

/* An in-process class whose state never deserializes: a damaged plugin record. */
static int t_create(const kiln_plugin_host *h, const kiln_plugin_attr *a, int n, void **inst, char *err, size_t len)
{
    *inst = malloc(4);
    return *inst ? 0 : KILN_PLUGIN_ERR_OUT_OF_MEMORY;
}
static void t_destroy(void *p) { free(p); }
static int t_types(const void *i, const int32_t *in, int ni, int32_t *out, int no, char *err, size_t len)
{
    out[0] = in[0];
    return 0;
}
static int t_shapes(const void *i, const kiln_plugin_shape_input *in, int ni, kiln_plugin_shape *out, int no, char *err, size_t len)
{
    out[0] = in[0].shape;
    return 0;
}
static int t_exec(const void *i, const kiln_plugin_tensor *in, int ni, const kiln_plugin_tensor *out, int no, char *err, size_t len)
{
    return 0;
}
static int t_ser(const void *i, void *buf, size_t cap, size_t *size, char *err, size_t len)
{
    *size = 3;
    if (buf) memcpy(buf, "abc", 3);
    return 0;
}
static int t_deser(const kiln_plugin_host *h, const void *d, size_t n, void **inst, char *err, size_t len)
{
    snprintf(err, len, "state rejected (test)");
    return KILN_PLUGIN_ERR_INVALID_ARG;
}
static const kiln_plugin_class t_class = {
    .abi_version = 1, .struct_size = sizeof(kiln_plugin_class), .name = "TestRejectState", .plugin_namespace = "test",
    .min_inputs = 1, .max_inputs = 1, .min_outputs = 1, .max_outputs = 1, .create = t_create, .destroy = t_destroy,
    .get_output_types = t_types, .get_output_shapes = t_shapes, .execute = t_exec, .serialize = t_ser, .deserialize = t_deser,
};

static kiln_status write_engine(const char *path, const kiln_network *net)
{
    kiln_layer_plan *plan = calloc((size_t)net->n_nodes + 1, sizeof *plan);
    for (int i = 0; i < net->n_nodes; i++) plan[i] = (kiln_layer_plan){.on_gpu = 1, .compute = KILN_DT_FLOAT};
    kiln_engine_header h = {.format_version = KILN_ENGINE_FORMAT_VERSION, .cc_major = 9, .precision = KILN_PREC_FP32};
    snprintf(h.kiln_version, sizeof h.kiln_version, "0.1.0");
    snprintf(h.gpu_name, sizeof h.gpu_name, "test");
    kiln_shape_profile prof = {.rank = 4, .min = {1, 3, 5, 7}, .opt = {1, 3, 5, 7}, .max = {1, 3, 5, 7}};
    snprintf(prof.name, sizeof prof.name, "X");
    kiln_err err = {{0}};
    kiln_status s = kiln__engine_file_write(path, &h, net, plan, &prof, 1, &err);
    if (s) printf("engine write: %s\n", err.msg);
    free(plan);
    return s;
}

static kiln_status read_engine(const char *path, kiln_network **net, char *msg, size_t len)
{
    kiln_engine_header h;
    kiln_layer_plan *plan = NULL;
    kiln_shape_profile *prof = NULL;
    int n_prof = 0;
    kiln_err err = {{0}};
    kiln_status s = kiln__engine_file_read(path, &h, net, &plan, &prof, &n_prof, &err);
    snprintf(msg, len, "%s", err.msg);
    free(plan);
    free(prof);
    return s;
}

/* Re-seals the patched engine b, writes it to path and reads it back: the status; the
 * message, printed after `what`, in msg. */
static kiln_status read_patched(const char *what, const char *path, uint8_t *b, size_t n, char *msg, size_t len)
{
    kiln_network *net = NULL;
    reseal(b, n);
    spit(path, b, n);
    kiln_status s = read_engine(path, &net, msg, len);
    printf("%s: %s\n", what, msg);
    kiln_network_free(net);
    return s;
}

static int run_model(kiln_network *net, const char *dir, double *max_err)
{
    char p[4096];
    kiln_host_tensor in, exp, out;
    memset(&out, 0, sizeof out);
    snprintf(p, sizeof p, "%s/test_data_set_0/input_0.pb", dir);
    if (kiln_tensor_read_pb(p, &in)) return -1;
    snprintf(p, sizeof p, "%s/test_data_set_0/output_0.pb", dir);
    if (kiln_tensor_read_pb(p, &exp)) return -1;
    snprintf(in.name, sizeof in.name, "X");
    kiln_status s = kiln_reference_run(net, 1, &in, 1, &out);
    *max_err = 0;
    if (!s) {
        int64_t n = kiln_host_tensor_numel(&exp);
        if (out.dtype != KILN_DT_FLOAT || kiln_host_tensor_numel(&out) != n) s = KILN_ERR_SHAPE;
        for (int64_t i = 0; !s && i < n; i++) {
            double d = fabs(((float *)out.data)[i] - ((float *)exp.data)[i]);
            if (d > *max_err) *max_err = d;
        }
    }
    kiln_host_tensor_release(&in);
    kiln_host_tensor_release(&exp);
    kiln_host_tensor_release(&out);
    return s;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: kiln_plugin_test PLUGIN_LIB MODELS_DIR TMP_DIR\n");
        return 2;
    }
    char model[4096], dir[4096], unknown[4096], eng[4096], eng_bad[4200];
    snprintf(dir, sizeof dir, "%s/scaled_tanh", argv[2]);
    snprintf(model, sizeof model, "%s/model.onnx", dir);
    snprintf(unknown, sizeof unknown, "%s/unknown_op/model.onnx", argv[2]);
    snprintf(eng, sizeof eng, "%s/plugin_test.kiln", argv[3]);
    snprintf(eng_bad, sizeof eng_bad, "%s/plugin_test_bad.kiln", argv[3]);
    int builtins = kiln_plugin_count();

    /* 0. the header's dim helpers give kiln's normalized forms */
    {
        kiln_dim k = kiln__dim_sym(0);
        kiln_plugin_dim q = {0, 0, 1, 0, 1};
        const int64_t ops[][2] = {{0, 3}, {2, 2}, {1, 2}, {0, -1}, {2, 3}, {1, 4}, {0, 5}, {2, 1}};
        for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
            int64_t op = ops[i][0], c = ops[i][1];
            k = op == 0 ? kiln__dim_add(k, c) : op == 1 ? kiln__dim_mul(k, c) : kiln__dim_div(k, c);
            q = op == 0 ? kiln_plugin_dim_add(q, c) : op == 1 ? kiln_plugin_dim_mul(q, c) : kiln_plugin_dim_div(q, c);
            CHECK(k.sym == q.sym && (k.sym < 0 || (k.mul == q.mul && k.add == q.add && k.div == q.div)));
            for (int64_t sv = 1; sv < 40 && k.sym >= 0; sv += 7)
                CHECK(kiln_plugin_dim_eval(q, sv) == kiln_plugin__floor_div(k.mul * sv + k.add, k.div));
        }
        CHECK(kiln_plugin_dim_div(kiln_plugin_dim_const(-7), 2).add == -4);
    }

    /* 1. before loading: the node stays unknown and running it names op, node and "no plugins" */
    kiln_network *net = NULL;
    CHECK(kiln_onnx_parse(model, NULL, &net) == KILN_OK);
    double e = 0;
    if (net) {
        CHECK(run_model(net, dir, &e) == KILN_ERR_UNSUPPORTED);
        const char *m = kiln_network_last_error(net);
        printf("unknown op error: %s\n", m);
        CHECK(contains(m, "ScaledTanh") && contains(m, "tanh_plugin") && contains(m, "load one with --plugins"));
        if (builtins == 0) CHECK(contains(m, "no plugins loaded"));
        kiln_network_free(net);
        net = NULL;
    }

    /* 2. load, run, compare */
    CHECK(kiln_plugin_load(argv[1]) == KILN_OK);
    CHECK(kiln_plugin_count() == builtins + 1);
    const char *nm = NULL, *ver = NULL, *ns = NULL;
    CHECK(kiln_plugin_get(builtins, &nm, &ver, &ns) == KILN_OK && !strcmp(nm, "ScaledTanh") && !strcmp(ver, "1") && !strcmp(ns, ""));
    /* loading it again registers nothing and says why */
    CHECK(kiln_plugin_load(argv[1]) != KILN_OK && contains(kiln_last_error(), "already registered"));
    CHECK(kiln_plugin_load("/nonexistent/libnothing.so") == KILN_ERR_IO && contains(kiln_last_error(), "cannot be loaded"));
    CHECK(kiln_onnx_parse(model, NULL, &net) == KILN_OK);
    if (net) {
        CHECK(run_model(net, dir, &e) == KILN_OK);
        printf("ScaledTanh+Relu on the CPU: max abs error %.3g\n", e);
        CHECK(e < 1e-5);
        /* static inference keeps the symbolic H and W through the plugin */
        CHECK(kiln_network_infer_shapes(net) == KILN_OK);
        char desc[256] = "";
        kiln_network_describe_tensor(net, "Y", desc, sizeof desc);
        printf("Y: %s\n", desc);
        CHECK(contains(desc, "h") && contains(desc, "w") && contains(desc, "float32"));
        /* a copy keeps a working instance; freeing both frees each once (ASan) */
        kiln_network *copy = NULL;
        kiln_err err = {{0}};
        CHECK(kiln__net_clone(net, &copy, &err) == KILN_OK);
        if (copy) {
            CHECK(run_model(copy, dir, &e) == KILN_OK && e < 1e-5);
            kiln_network_free(copy);
        }

        /* 3. engine file: the plugin record and its state round-trip */
        CHECK(write_engine(eng, net) == KILN_OK);
        kiln_network *net2 = NULL;
        char msg[1024];
        CHECK(read_engine(eng, &net2, msg, sizeof msg) == KILN_OK);
        if (net2) {
            int k = -1;
            for (int i = 0; i < net2->n_nodes; i++)
                if (!strcmp(net2->nodes[i].op_type, "ScaledTanh")) k = i;
            CHECK(k >= 0 && kiln__plugin_schema_class(net2->nodes[k].schema) != NULL);
            if (k >= 0) {
                uint8_t *st = NULL;
                size_t sl = 0;
                CHECK(kiln__plugin_serialize(&net2->nodes[k], &st, &sl, &err) == KILN_OK);
                float alpha = 0, beta = 0;
                if (sl == 12) {
                    memcpy(&alpha, st + 4, 4);
                    memcpy(&beta, st + 8, 4);
                }
                CHECK(sl == 12 && alpha == 2.0f && beta == 0.5f);
                free(st);
            }
            CHECK(kiln_network_infer_shapes(net2) == KILN_OK);
            kiln_network_free(net2);
        }
        /* an engine whose plugin (version) is not registered: names it and --plugins */
        size_t n = 0;
        uint8_t *b = slurp(eng, &n);
        const uint8_t pat[] = {10, 0, 0, 0, 'S', 'c', 'a', 'l', 'e', 'd', 'T', 'a', 'n', 'h', 1, 0, 0, 0, '1'};
        size_t at = 0;
        for (size_t i = 0; b && i + sizeof pat <= n; i++)
            if (!memcmp(b + i, pat, sizeof pat)) at = i + sizeof pat - 1;
        CHECK(at > 0);
        if (at) {
            b[at] = '9';
            CHECK(read_patched("missing plugin", eng_bad, b, n, msg, sizeof msg) == KILN_ERR_NOT_FOUND);
            CHECK(contains(msg, "ScaledTanh") && contains(msg, "version 9") && contains(msg, "--plugins") && contains(msg, "tanh_plugin"));
            /* a damaged record (bad flag) */
            b[at] = '1';
            size_t flag = at - sizeof pat + 1 - 4;
            b[flag] = 7;
            CHECK(read_patched("damaged record", eng_bad, b, n, msg, sizeof msg) == KILN_ERR_PARSE);
            CHECK(contains(msg, "damaged"));
            /* damaged state: the plugin's deserialize refuses the bytes */
            b[flag] = 1;
            size_t state = at + 1 + 4 + 0 + 8; /* after version: namespace "" (u32 0), u64 length 12, then STH1 */
            if (state + 4 <= n && !memcmp(b + state, "STH1", 4)) {
                b[state] = 'X';
                CHECK(read_patched("damaged state", eng_bad, b, n, msg, sizeof msg) == KILN_ERR_PARSE);
                CHECK(contains(msg, "plugin state damaged") && contains(msg, "STH1"));
            } else {
                CHECK(!"state bytes not where expected");
            }
        }
        free(b);
        kiln_network_free(net);
        net = NULL;
    }

    /* 4. register in-process; a class whose state does not deserialize fails the engine load clearly */
    CHECK(kiln_plugin_register(&t_class) == KILN_OK);
    CHECK(kiln_plugin_register(&t_class) != KILN_OK && contains(kiln_last_error(), "already registered"));
    kiln_network *tn = NULL;
    CHECK(kiln_network_create(&tn) == KILN_OK);
    if (tn) {
        int64_t d[2] = {2, 3};
        const char *xin[1] = {"x"}, *yout[1] = {"y"};
        CHECK(kiln_network_add_input(tn, "x", KILN_DT_FLOAT, 2, d, NULL) == KILN_OK);
        kiln_attr_value av = {.name = "plugin_namespace", .type = KILN_ATTR_STRING, .s = "test", .s_len = 4};
        CHECK(kiln_network_add_node(tn, "t", "TestRejectState", "", 1, xin, 1, yout, 1, &av) == KILN_OK);
        CHECK(kiln_network_mark_output(tn, "y") == KILN_OK);
        CHECK(kiln_network_infer_shapes(tn) == KILN_OK);
        /* wrong namespace: no match, so the node stays unknown */
        kiln_attr_value av2 = {.name = "plugin_namespace", .type = KILN_ATTR_STRING, .s = "other", .s_len = 5};
        const char *yout2[1] = {"y2"};
        CHECK(kiln_network_add_node(tn, "t2", "TestRejectState", "", 1, xin, 1, yout2, 1, &av2) == KILN_OK);
        CHECK(tn->nodes[1].schema == NULL && tn->nodes[0].schema != NULL);
        kiln_network_free(tn);
        tn = NULL;
        CHECK(kiln_network_create(&tn) == KILN_OK);
        CHECK(kiln_network_add_input(tn, "x", KILN_DT_FLOAT, 2, d, NULL) == KILN_OK);
        CHECK(kiln_network_add_node(tn, "t", "TestRejectState", "test", 1, xin, 1, yout, 0, NULL) == KILN_OK); /* domain as namespace */
        CHECK(tn->nodes[0].schema != NULL);
        CHECK(kiln_network_mark_output(tn, "y") == KILN_OK);
        char path[4200], msg[1024];
        snprintf(path, sizeof path, "%s/plugin_test_state.kiln", argv[3]);
        CHECK(write_engine(path, tn) == KILN_OK);
        kiln_network *n2 = NULL;
        CHECK(read_engine(path, &n2, msg, sizeof msg) == KILN_ERR_PARSE);
        printf("rejected state: %s\n", msg);
        CHECK(contains(msg, "state rejected (test)") && contains(msg, "test::TestRejectState/1"));
        kiln_network_free(n2);
        kiln_network_free(tn);
    }

    /* 5. an op nobody provides: the error lists what is loaded */
    CHECK(kiln_onnx_parse(unknown, NULL, &net) == KILN_OK);
    if (net) {
        kiln_host_tensor in;
        memset(&in, 0, sizeof in);
        snprintf(in.name, sizeof in.name, "X");
        in.dtype = KILN_DT_FLOAT;
        in.rank = 4;
        int64_t dd[4] = {1, 3, 5, 7};
        memcpy(in.dims, dd, sizeof dd);
        float buf[105] = {0};
        in.data = buf;
        in.nbytes = sizeof buf;
        kiln_host_tensor out;
        memset(&out, 0, sizeof out);
        CHECK(kiln_reference_run(net, 1, &in, 1, &out) == KILN_ERR_UNSUPPORTED);
        const char *m = kiln_network_last_error(net);
        printf("unknown op error: %s\n", m);
        CHECK(contains(m, "mmcv::NoSuchOp") && contains(m, "mystery") && contains(m, "ScaledTanh/1") && contains(m, "test::TestRejectState/1"));
        kiln_host_tensor_release(&out);
        kiln_network_free(net);
    }
    return TEST_SUMMARY("plugin_test");
}
