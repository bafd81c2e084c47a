/*
 * Engine file round trip and damage, on the CPU (no GPU needed): an engine for an SR fixture is
 * written, read back and compared; then truncated, bit-flipped, re-versioned and wrong-magic
 * copies must each fail with a message naming the problem, without crashing (ASan build too).
 *
 *   kiln_test_engine_file SHARED_DIR TMP_DIR
 */
#include "build/engine.h"
#include "test_main.h"
#include <stdlib.h>
#include <string.h>

/* Reading must fail and the message must contain `want`. */
static void expect_damaged(const char *path, const char *want)
{
    kiln_engine_header h;
    kiln_network *net = NULL;
    kiln_layer_plan *plan = NULL;
    kiln_shape_profile *prof = NULL;
    int n_prof = 0;
    kiln_err err = {{0}};
    kiln_status s = kiln__engine_file_read(path, &h, &net, &plan, &prof, &n_prof, &err);
    CHECK(s != KILN_OK);
    CHECK(net == NULL && plan == NULL && prof == NULL);
    if (!strstr(err.msg, want)) printf("  message for %s: '%s' (wanted '%s')\n", path, err.msg, want);
    CHECK(strstr(err.msg, want) != NULL);
    /* the public describe path gives the same answer */
    char *text = NULL;
    CHECK(kiln_engine_describe_file(path, &text) != KILN_OK);
    CHECK(text == NULL);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: kiln_test_engine_file SHARED_DIR TMP_DIR\n");
        return 2;
    }
    char model[4096], path[4096], bad[4200];
    snprintf(model, sizeof model, "%s/sr-fixtures/rrdb_tiny_x4/model.onnx", argv[1]);
    snprintf(path, sizeof path, "%s/engine_file_test.kiln", argv[2]);
    kiln_network *net = NULL;
    if (kiln_onnx_parse(model, NULL, &net)) {
        printf("cannot parse %s: %s\n", model, kiln_last_error());
        return 1;
    }
    kiln_layer_plan *plan = calloc((size_t)net->n_nodes, sizeof *plan);
    for (int i = 0; i < net->n_nodes; i++) plan[i] = (kiln_layer_plan){.on_gpu = i % 2, .compute = KILN_DT_FLOAT16, .tactic = i % 3, .tactic_ms = 0.5f};
    kiln_engine_header h = {.format_version = KILN_ENGINE_FORMAT_VERSION, .cc_major = 9, .cc_minor = 0, .cuda_runtime = 13000,
                            .cudnn = 91400, .cublas = 130000, .precision = KILN_PREC_FP16, .layout = KILN_LAYOUT_NHWC};
    snprintf(h.kiln_version, sizeof h.kiln_version, "0.1.0");
    snprintf(h.gpu_name, sizeof h.gpu_name, "NVIDIA H200");
    kiln_shape_profile prof = {.rank = 4, .min = {1, 3, 16, 16}, .opt = {1, 3, 64, 64}, .max = {1, 3, 256, 256}};
    snprintf(prof.name, sizeof prof.name, "input");
    kiln_err err = {{0}};
    CHECK(kiln__engine_file_write(path, &h, net, plan, &prof, 1, &err) == KILN_OK);
    CHECK(kiln_engine_file_probe(path) == 1);

    /* round trip */
    kiln_engine_header h2;
    kiln_network *net2 = NULL;
    kiln_layer_plan *plan2 = NULL;
    kiln_shape_profile *prof2 = NULL;
    int n_prof2 = 0;
    CHECK(kiln__engine_file_read(path, &h2, &net2, &plan2, &prof2, &n_prof2, &err) == KILN_OK);
    if (net2) {
        CHECK(!strcmp(h2.gpu_name, "NVIDIA H200") && h2.cc_major == 9 && h2.cudnn == 91400 && h2.layout == KILN_LAYOUT_NHWC);
        CHECK(net2->n_nodes == net->n_nodes && net2->n_inputs == net->n_inputs && net2->n_outputs == net->n_outputs);
        for (int i = 0; i < net->n_nodes && i < net2->n_nodes; i++) {
            CHECK(!strcmp(net->nodes[i].op_type, net2->nodes[i].op_type));
            CHECK(plan2[i].on_gpu == plan[i].on_gpu && plan2[i].tactic == plan[i].tactic);
        }
        CHECK(n_prof2 == 1 && prof2[0].max[3] == 256);
        /* same weights, same results on the reference backend */
        kiln_host_tensor in, out1, out2;
        snprintf(bad, sizeof bad, "%s/sr-fixtures/rrdb_tiny_x4/test_data_set_0/input_0.pb", argv[1]);
        CHECK(kiln_tensor_read_pb(bad, &in) == KILN_OK);
        in.name[0] = 0;
        CHECK(kiln_reference_run(net, 1, &in, 1, &out1) == KILN_OK);
        CHECK(kiln_reference_run(net2, 1, &in, 1, &out2) == KILN_OK);
        CHECK(out1.nbytes == out2.nbytes && !memcmp(out1.data, out2.data, out1.nbytes));
        kiln_host_tensor_release(&in);
        kiln_host_tensor_release(&out1);
        kiln_host_tensor_release(&out2);
        char *text = NULL;
        CHECK(kiln_engine_describe_file(path, &text) == KILN_OK && text && strstr(text, "NVIDIA H200"));
        free(text);
    }
    kiln_network_free(net2);
    free(plan2);
    free(prof2);

    /* damage */
    size_t len = 0;
    uint8_t *good = slurp(path, &len);
    CHECK(good && len > 64);
    if (good) {
        uint8_t *b = malloc(len);
        size_t cuts[] = {0, 4, 12, 40, len / 3, len / 2, len - 9, len - 1};
        for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
            snprintf(bad, sizeof bad, "%s/engine_truncated.kiln", argv[2]);
            spit(bad, good, cuts[k]);
            expect_damaged(bad, cuts[k] < 8 ? "not a kiln engine" : "damaged");
        }
        /* a flipped bit anywhere after the magic is caught by the checksum (or the format check) */
        size_t flips[] = {9, 20, 200, len / 4, len / 2, len - 20, len - 3};
        for (size_t k = 0; k < sizeof flips / sizeof flips[0]; k++) {
            memcpy(b, good, len);
            b[flips[k]] ^= 0x10;
            snprintf(bad, sizeof bad, "%s/engine_flipped.kiln", argv[2]);
            spit(bad, b, len);
            expect_damaged(bad, flips[k] < 12 ? "version" : "damaged");
        }
        memcpy(b, good, len);
        b[0] = 'X';
        snprintf(bad, sizeof bad, "%s/engine_magic.kiln", argv[2]);
        spit(bad, b, len);
        expect_damaged(bad, "not a kiln engine");
        CHECK(kiln_engine_file_probe(bad) == 0);
        memcpy(b, good, len);
        b[8] = 99; /* format version */
        snprintf(bad, sizeof bad, "%s/engine_version.kiln", argv[2]);
        spit(bad, b, len);
        expect_damaged(bad, "format version 99");
        snprintf(bad, sizeof bad, "%s/no_such_engine.kiln", argv[2]);
        expect_damaged(bad, "cannot open");
        free(b);
    }
    free(good);
    free(plan);
    kiln_network_free(net);
    return TEST_SUMMARY("test_engine_file");
}
