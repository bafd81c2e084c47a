/*
 * Engine file round trip and damage, on the CPU (no GPU needed): an engine for an SR fixture is
 * written, read back and compared; then truncated, bit-flipped, re-versioned and wrong-magic
 * copies must each fail with a message naming the problem, without crashing (ASan build too).
 * Format 3: weights in run-time form (fp16, NHWC) round-trip byte for byte, constants stored
 * only in that form come back without host bytes, a version-2 file is refused naming both
 * versions, and damage inside the weight blob or a bad form table is caught.
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

/* fp16 NHWC form of a 4-D fp32 constant, as the builder makes it (weights.c). */
static void to_f16_nhwc(const kiln_value *v, uint16_t *dst)
{
    int64_t M = v->shape.d[0].add, C = v->shape.d[1].add, H = v->shape.d[2].add, W = v->shape.d[3].add;
    const float *src = v->data;
    for (int64_t m = 0; m < M; m++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t w = 0; w < W; w++)
                    dst[((m * H + h) * W + w) * C + c] = kiln__f32_to_f16(src[((m * C + c) * H + h) * W + w]);
}

/* Weights in run-time form: every 4-D fp32 constant as fp16 NHWC, kept only in that form;
 * 1-D ones also as fp16 with 1 - x (the FusedConv slope form), original kept. */
static void make_weights(const kiln_network *net, kiln_weights *w)
{
    memset(w, 0, sizeof *w);
    w->forms = calloc((size_t)net->n_tensors * 2 + 1, sizeof *w->forms);
    w->no_host = calloc((size_t)net->n_tensors + 1, sizeof(bool));
    uint64_t off = 0;
    for (int t = 0; t < net->n_tensors; t++) {
        const kiln_tensor *tt = &net->tensors[t];
        if (tt->kind != KILN_TENSOR_CONSTANT || tt->v.dtype != KILN_DT_FLOAT) continue;
        int rank = tt->v.shape.rank;
        if (rank != 4 && rank != 1) continue;
        uint64_t nb = (uint64_t)kiln__value_numel(&tt->v) * 2;
        w->forms[w->n_forms++] = (kiln_wform){.tensor = t, .dtype = KILN_DT_FLOAT16, .layout = rank == 4 ? KILN_LAYOUT_NHWC : KILN_LAYOUT_ROW_MAJOR,
                                              .transform = rank == 4 ? KILN_WFORM_COPY : KILN_WFORM_ONE_MINUS, .offset = off, .nbytes = nb};
        off += (nb + KILN_WBLOB_ALIGN - 1) / KILN_WBLOB_ALIGN * KILN_WBLOB_ALIGN;
        w->no_host[t] = rank == 4;
    }
    uint8_t *blob = calloc((size_t)off + 1, 1);
    for (int k = 0; k < w->n_forms; k++) {
        const kiln_value *v = &net->tensors[w->forms[k].tensor].v;
        uint16_t *dst = (uint16_t *)(blob + w->forms[k].offset);
        if (w->forms[k].layout == KILN_LAYOUT_NHWC) to_f16_nhwc(v, dst);
        else
            for (int64_t i = 0; i < kiln__value_numel(v); i++) dst[i] = kiln__f32_to_f16(1.0f - ((const float *)v->data)[i]);
    }
    w->mem = blob;
    w->blob = blob;
    w->bytes = off;
}

static kiln_status read_w(const char *path, kiln_network **net, kiln_weights *w, kiln_err *err)
{
    kiln_engine_header h;
    kiln_layer_plan *plan = NULL;
    kiln_shape_profile *prof = NULL;
    int n_prof = 0;
    kiln_status s = kiln__engine_file_read_w(path, &h, net, &plan, &prof, &n_prof, w, err);
    free(plan);
    free(prof);
    return s;
}

/* Writes net with weights w; reading it must fail naming `want`. */
static void expect_bad_weights(const char *path, const kiln_engine_header *h, const kiln_network *net, const kiln_layer_plan *plan,
                               const kiln_shape_profile *prof, const kiln_weights *w, const char *want)
{
    kiln_err err = {{0}};
    CHECK(kiln__engine_file_write_w(path, h, net, plan, prof, 1, w, &err) == KILN_OK);
    expect_damaged(path, want);
}

static void weights_cases(const char *shared, const char *tmp, const kiln_network *net, const kiln_layer_plan *plan,
                          const kiln_engine_header *h, const kiln_shape_profile *prof)
{
    char path[4096], bad[4200];
    snprintf(path, sizeof path, "%s/engine_weights_test.kiln", tmp);
    kiln_weights w;
    make_weights(net, &w);
    CHECK(w.n_forms > 10 && w.bytes > 10000);
    kiln_err err = {{0}};
    CHECK(kiln__engine_file_write_w(path, h, net, plan, prof, 1, &w, &err) == KILN_OK);

    /* round trip: forms, blob and which constants lost their original */
    kiln_network *net2 = NULL;
    kiln_weights w2;
    CHECK(read_w(path, &net2, &w2, &err) == KILN_OK);
    if (net2) {
        CHECK(w2.n_forms == w.n_forms && w2.bytes == w.bytes && !memcmp(w2.blob, w.blob, (size_t)w.bytes));
        for (int k = 0; k < w.n_forms && k < w2.n_forms; k++) {
            const kiln_wform *a = &w.forms[k], *b = &w2.forms[k];
            CHECK(!strcmp(net->tensors[a->tensor].name, net2->tensors[b->tensor].name));
            CHECK(a->dtype == b->dtype && a->layout == b->layout && a->transform == b->transform && a->offset == b->offset &&
                  a->nbytes == b->nbytes);
        }
        int only = 0, kept = 0;
        for (int t = 0; t < net->n_tensors; t++) {
            const kiln_tensor *a = &net->tensors[t];
            if (a->kind != KILN_TENSOR_CONSTANT) continue;
            int t2 = kiln__net_find_tensor(net2, a->name);
            CHECK(t2 >= 0);
            if (t2 < 0) continue;
            const kiln_tensor *b = &net2->tensors[t2];
            CHECK(b->kind == KILN_TENSOR_CONSTANT && b->v.dtype == a->v.dtype && b->v.shape.rank == a->v.shape.rank);
            CHECK(kiln__value_numel(&b->v) == kiln__value_numel(&a->v));
            CHECK(w2.no_host[t2] == w.no_host[t]);
            if (w.no_host[t]) {
                only++;
                CHECK(b->v.data == NULL);
            } else {
                kept++;
                CHECK(b->v.nbytes == a->v.nbytes && (!a->v.nbytes || !memcmp(b->v.data, a->v.data, a->v.nbytes)));
            }
        }
        CHECK(only > 0 && kept > 0);
        /* the graph-only reader (inspect) takes the same file */
        char *text = NULL;
        CHECK(kiln_engine_describe_file(path, &text) == KILN_OK && text && strstr(text, "run-time forms"));
        if (text && !strstr(text, "run-time forms")) printf("%s", text);
        free(text);
    }
    kiln_network_free(net2);
    kiln__weights_free(&w2);

    size_t len = 0;
    uint8_t *good = slurp(path, &len);
    CHECK(good && len > w.bytes);
    if (good) {
        uint8_t *b = malloc(len);
        /* a version-2 file (original-form weights) is refused, naming the field and both versions */
        memcpy(b, good, len);
        b[8] = 2;
        snprintf(bad, sizeof bad, "%s/engine_v2.kiln", tmp);
        spit(bad, b, len);
        expect_damaged(bad, "format version 2; this kiln reads version 3");
        /* the blob is the last part of the body (then blob length, blob sum, checksum): damage inside it */
        size_t blob_at = len - 24 - (size_t)w.bytes;
        size_t flips[] = {blob_at, blob_at + 1, blob_at + (size_t)w.bytes / 2, blob_at + (size_t)w.bytes / 2 + 7, len - 25};
        for (size_t k = 0; k < sizeof flips / sizeof flips[0]; k++) {
            memcpy(b, good, len);
            b[flips[k]] ^= 0x01;
            snprintf(bad, sizeof bad, "%s/engine_blob_flip.kiln", tmp);
            spit(bad, b, len);
            expect_damaged(bad, "checksum mismatch in the weights");
        }
        /* two flips of the same bit in two words of one lane (32 bytes apart) */
        memcpy(b, good, len);
        b[blob_at + 64 + 7] ^= 0x80;
        b[blob_at + 96 + 7] ^= 0x80;
        snprintf(bad, sizeof bad, "%s/engine_blob_flip2.kiln", tmp);
        spit(bad, b, len);
        expect_damaged(bad, "checksum mismatch in the weights");
        /* damage before the blob (graph) and in the trailer's fields is named as outside the weights */
        size_t outside[] = {blob_at - 9, 300, len - 20, len - 12, len - 2};
        for (size_t k = 0; k < sizeof outside / sizeof outside[0]; k++) {
            memcpy(b, good, len);
            b[outside[k]] ^= 0x04;
            snprintf(bad, sizeof bad, "%s/engine_graph_flip.kiln", tmp);
            spit(bad, b, len);
            expect_damaged(bad, k == 2 || k == 3 ? "checksum mismatch" : "checksum mismatch outside the weights");
        }
        size_t cuts[] = {blob_at - 1, blob_at + 3, blob_at + (size_t)w.bytes / 2, len - 8, len - 24};
        for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
            snprintf(bad, sizeof bad, "%s/engine_blob_cut.kiln", tmp);
            spit(bad, good, cuts[k]);
            expect_damaged(bad, "damaged");
        }
        free(b);
    }
    free(good);

    /* a checksummed file whose form table is wrong is still refused */
    snprintf(bad, sizeof bad, "%s/engine_bad_forms.kiln", tmp);
    uint64_t keep_off = w.forms[1].offset;
    w.forms[1].offset = w.bytes + KILN_WBLOB_ALIGN;
    expect_bad_weights(bad, h, net, plan, prof, &w, "outside the blob");
    w.forms[1].offset = keep_off;
    w.forms[1].nbytes += 2;
    expect_bad_weights(bad, h, net, plan, prof, &w, "does not match its constant");
    w.forms[1].nbytes -= 2;
    int32_t keep_layout = w.forms[0].layout;
    w.forms[0].layout = 7;
    expect_bad_weights(bad, h, net, plan, prof, &w, "bad dtype, layout or transform");
    w.forms[0].layout = keep_layout;
    w.forms[1] = w.forms[0];
    w.forms[1].offset = w.forms[2].offset; /* same form twice */
    expect_bad_weights(bad, h, net, plan, prof, &w, "listed twice");
    /* a constant stored without its original and without a form */
    kiln_weights none = {.no_host = w.no_host};
    expect_bad_weights(bad, h, net, plan, prof, &none, "kept in no form");
    kiln__weights_free(&w);
    (void)shared;
}

/* The builder's packing (weights.c) on a fake fp16 NHWC engine where every node runs on the
 * GPU: conv weights in fp16 NHWC, bias in fp16, kept only in that form (originals freed), the
 * rest untouched. Needs the GPU op table (a CUDA build; no GPU needed). */
static void pack_cases(const char *shared, const char *tmp)
{
    if (!kiln__cuda_op_find("", "Conv")) {
        printf("  pack cases skipped: no CUDA op table in this build\n");
        return;
    }
    char model[4096], path[4096];
    snprintf(model, sizeof model, "%s/sr-fixtures/rrdb_tiny_x4/model.onnx", shared);
    snprintf(path, sizeof path, "%s/engine_pack_test.kiln", tmp);
    kiln_network *orig = NULL, *net = NULL;
    CHECK(kiln_onnx_parse(model, NULL, &orig) == KILN_OK && kiln_onnx_parse(model, NULL, &net) == KILN_OK);
    if (!orig || !net) return;
    kiln_engine eng;
    memset(&eng, 0, sizeof eng);
    eng.net = net;
    eng.plan = calloc((size_t)net->n_nodes + 1, sizeof *eng.plan);
    for (int i = 0; i < net->n_nodes; i++) eng.plan[i] = (kiln_layer_plan){.on_gpu = 1, .compute = KILN_DT_FLOAT16};
    eng.hdr = (kiln_engine_header){.format_version = KILN_ENGINE_FORMAT_VERSION, .cc_major = 9, .precision = KILN_PREC_FP16,
                                   .layout = KILN_LAYOUT_NHWC};
    snprintf(eng.hdr.kiln_version, sizeof eng.hdr.kiln_version, "0.1.0");
    kiln_err err = {{0}};
    CHECK(kiln__weights_pack(&eng, &err) == KILN_OK);
    int convs = 0, checked = 0, flipped = 0;
    for (int i = 0; i < net->n_nodes; i++) {
        const kiln_node *nd = &net->nodes[i];
        if (strcmp(nd->op_type, "Conv")) continue;
        convs++;
        int w = nd->in[1], b = nd->n_in > 2 ? nd->in[2] : -1;
        const kiln_value *ow = &orig->tensors[kiln__net_find_tensor(orig, net->tensors[w].name)].v;
        int k = kiln__wform_find(&eng, w, KILN_DT_FLOAT16, KILN_LAYOUT_NHWC, KILN_WFORM_COPY);
        CHECK(k >= 0 && eng.w.no_host[w] && net->tensors[w].v.data == NULL);
        if (k < 0) continue;
        /* filters are rounded so that each k x k filter keeps its sum (fp16_round.c): the blob
         * holds exactly that, NHWC, within one ulp of plain rounding everywhere */
        int64_t nw = kiln__value_numel(ow), taps = ow->shape.d[2].add * ow->shape.d[3].add;
        uint16_t *want = calloc((size_t)nw + 1, 2), *plain = calloc((size_t)nw + 1, 2);
        float *kept = calloc((size_t)nw + 1, sizeof(float));
        kiln__f16_round_groups(ow->data, kept, nw / taps, taps);
        kiln_value kv = *ow;
        kv.data = kept;
        to_f16_nhwc(&kv, want);
        to_f16_nhwc(ow, plain);
        CHECK(eng.w.forms[k].nbytes == (uint64_t)nw * 2 && eng.w.forms[k].offset % KILN_WBLOB_ALIGN == 0);
        CHECK(!memcmp(eng.w.blob + eng.w.forms[k].offset, want, (size_t)eng.w.forms[k].nbytes));
        for (int64_t e = 0; e < nw; e++) {
            int d = (int)(want[e] & 0x7fff) - (int)(plain[e] & 0x7fff);
            if (d < -1 || d > 1 || ((want[e] ^ plain[e]) & 0x8000 && (want[e] & 0x7fff) && (plain[e] & 0x7fff))) {
                CHECK(!"a filter value moved more than one ulp from nearest");
                break;
            }
            if (want[e] != plain[e]) flipped++;
        }
        free(want);
        free(plain);
        free(kept);
        kiln_cuda_tensor t;
        kiln__wform_view(&eng, k, &t);
        CHECK(t.dtype == KILN_DT_FLOAT16 && t.rank == 4 && t.strides[1] == 1 && t.strides[3] == t.dims[1] && t.ptr == NULL);
        if (b >= 0) {
            int kb = kiln__wform_find(&eng, b, KILN_DT_FLOAT16, KILN_LAYOUT_ROW_MAJOR, KILN_WFORM_COPY);
            const float *ob = orig->tensors[kiln__net_find_tensor(orig, net->tensors[b].name)].v.data;
            CHECK(kb >= 0 && eng.w.no_host[b]);
            if (kb >= 0) CHECK(((const uint16_t *)(eng.w.blob + eng.w.forms[kb].offset))[0] == kiln__f32_to_f16(ob[0]));
        }
        checked++;
    }
    CHECK(convs > 0 && checked == convs);
    CHECK(flipped > 0); /* the sum-keeping rounding did move some values off nearest */
    /* constants of non-conv readers (here: none of the fixture's other ops prepare) keep their originals */
    for (int t = 0; t < net->n_tensors; t++)
        if (net->tensors[t].kind == KILN_TENSOR_CONSTANT && !eng.w.no_host[t]) CHECK(net->tensors[t].v.data != NULL || net->tensors[t].v.nbytes == 0);
    /* saved and read back: same blob, same constants without originals */
    kiln_shape_profile prof = {.rank = 4, .min = {1, 3, 16, 16}, .opt = {1, 3, 16, 16}, .max = {1, 3, 16, 16}};
    snprintf(prof.name, sizeof prof.name, "%s", net->tensors[net->inputs[0]].name);
    CHECK(kiln__engine_file_write_w(path, &eng.hdr, net, eng.plan, &prof, 1, &eng.w, &err) == KILN_OK);
    kiln_network *back = NULL;
    kiln_weights w2;
    CHECK(read_w(path, &back, &w2, &err) == KILN_OK);
    if (back) {
        CHECK(w2.n_forms == eng.w.n_forms && w2.bytes == eng.w.bytes && !memcmp(w2.blob, eng.w.blob, (size_t)w2.bytes));
        for (int t = 0; t < net->n_tensors; t++) {
            if (net->tensors[t].kind != KILN_TENSOR_CONSTANT) continue;
            int t2 = kiln__net_find_tensor(back, net->tensors[t].name);
            CHECK(t2 >= 0 && w2.no_host[t2] == eng.w.no_host[t]);
        }
    }
    kiln_network_free(back);
    kiln__weights_free(&w2);
    kiln__weights_free(&eng.w);
    free(eng.plan);
    kiln_network_free(net);
    kiln_network_free(orig);
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
    for (int i = 0; i < net->n_nodes; i++)
        plan[i] = (kiln_layer_plan){.on_gpu = i % 3 == 2 ? KILN_PLAN_GPU | KILN_PLAN_STRICT_FP32 : i % 2,
                                    .compute = KILN_DT_FLOAT16, .tactic = i % 3, .tactic_ms = 0.5f};
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
    /* a layer plan with bits the format does not have (strict without GPU, unknown bits) */
    for (int v = 0; v < 2; v++) {
        int32_t keep0 = plan[0].on_gpu;
        plan[0].on_gpu = v ? 8 | KILN_PLAN_GPU : KILN_PLAN_STRICT_FP32;
        snprintf(bad, sizeof bad, "%s/engine_file_bad_plan.kiln", argv[2]);
        CHECK(kiln__engine_file_write(bad, &h, net, plan, &prof, 1, &err) == KILN_OK);
        expect_damaged(bad, "damaged");
        plan[0].on_gpu = keep0;
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
    weights_cases(argv[1], argv[2], net, plan, &h, &prof);
    pack_cases(argv[1], argv[2]);
    free(plan);
    kiln_network_free(net);
    return TEST_SUMMARY("test_engine_file");
}
