/*
 * ONNX writer round trip (kiln surgeon): import -> kiln_onnx_write -> import ->
 * run on the CPU reference, against the stored outputs, with model_test.c's
 * tolerances. Also checks that what the importer kept (opsets, names,
 * metadata) comes back unchanged in the written file.
 *
 *   kiln_roundtrip_test --fixture DIR OUTDIR [--external]
 *   kiln_roundtrip_test --light MODEL.onnx EXPECTED.pb OUTDIR [--external]
 *   kiln_roundtrip_test --synthetic OUTDIR   a hand-made model with every kept field
 *   kiln_roundtrip_test --resize-scales-initializer MODEL.onnx
 *       every Resize reads its scales/sizes from an initializer (sanitize's done-when)
 */
#include "../common/compare.h"
#include "ir/ir.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool same_str(const char *a, const char *b) { return !strcmp(a ? a : "", b ? b : ""); }

/* What the writer must keep: the same graph, names, opsets and metadata. */
static int check_kept(const char *what, const kiln_network *a, const kiln_network *b)
{
    char msg[512];
    if (a->n_nodes != b->n_nodes || a->n_inputs != b->n_inputs || a->n_outputs != b->n_outputs) {
        snprintf(msg, sizeof msg, "graph differs: %d/%d nodes, %d/%d inputs, %d/%d outputs", a->n_nodes, b->n_nodes,
                 a->n_inputs, b->n_inputs, a->n_outputs, b->n_outputs);
        return test_fail(what, msg);
    }
    for (int i = 0; i < a->n_nodes; i++) {
        const kiln_node *x = &a->nodes[i], *y = &b->nodes[i];
        if (strcmp(x->name, y->name) || strcmp(x->op_type, y->op_type) || strcmp(x->domain, y->domain) ||
            x->n_in != y->n_in || x->n_out != y->n_out || x->n_attrs != y->n_attrs ||
            !same_str(x->doc_string, y->doc_string)) {
            snprintf(msg, sizeof msg, "node %d differs ('%s' %s vs '%s' %s)", i, x->name, x->op_type, y->name, y->op_type);
            return test_fail(what, msg);
        }
        for (int k = 0; k < x->n_attrs; k++) {
            const kiln_attr *p = &x->attrs[k], *q = &y->attrs[k];
            bool same = !strcmp(p->name, q->name) && p->type == q->type && p->i == q->i && p->n == q->n &&
                        (p->f == q->f || (isnan(p->f) && isnan(q->f))) && p->s_len == q->s_len &&
                        (!p->s_len || !memcmp(p->s, q->s, p->s_len));
            if (same && p->ints) same = !memcmp(p->ints, q->ints, sizeof(int64_t) * (size_t)p->n);
            if (same && p->floats) same = !memcmp(p->floats, q->floats, sizeof(float) * (size_t)p->n);
            if (same && p->t) same = q->t && p->t->nbytes == q->t->nbytes && p->t->dtype == q->t->dtype &&
                                     (!p->t->nbytes || !memcmp(p->t->data, q->t->data, p->t->nbytes));
            if (!same) {
                snprintf(msg, sizeof msg, "node '%s': attribute '%s' differs", x->name, p->name);
                return test_fail(what, msg);
            }
        }
        for (int k = 0; k < x->n_in; k++)
            if ((x->in[k] < 0) != (y->in[k] < 0) ||
                (x->in[k] >= 0 && strcmp(a->tensors[x->in[k]].name, b->tensors[y->in[k]].name))) {
                snprintf(msg, sizeof msg, "node '%s': input %d differs", x->name, k);
                return test_fail(what, msg);
            }
    }
    if (a->ir_version != b->ir_version || a->n_opsets != b->n_opsets || a->n_meta != b->n_meta ||
        !same_str(a->producer_name, b->producer_name) || !same_str(a->producer_version, b->producer_version) ||
        !same_str(a->graph_name, b->graph_name) || !same_str(a->graph_doc, b->graph_doc) ||
        !same_str(a->model_doc, b->model_doc) || a->opset != b->opset)
        return test_fail(what, "model metadata (ir_version, opsets, producer, graph name, doc strings) differs");
    for (int i = 0; i < a->n_opsets; i++)
        if (strcmp(a->opset_domains[i], b->opset_domains[i]) || a->opset_versions[i] != b->opset_versions[i])
            return test_fail(what, "opset imports differ");
    for (int i = 0; i < a->n_meta; i++)
        if (strcmp(a->meta_keys[i], b->meta_keys[i]) || strcmp(a->meta_values[i], b->meta_values[i]))
            return test_fail(what, "metadata_props differ");
    for (int i = 0; i < a->n_inputs; i++) {
        const kiln_tensor *x = &a->tensors[a->inputs[i]], *y = &b->tensors[b->inputs[i]];
        if (strcmp(x->name, y->name) || x->v.dtype != y->v.dtype || x->v.shape.rank != y->v.shape.rank)
            return test_fail(what, "graph inputs differ");
        for (int d = 0; d < x->v.shape.rank; d++) {
            kiln_dim p = x->v.shape.d[d], q = y->v.shape.d[d];
            if (p.sym != q.sym && !(p.sym >= 0 && q.sym >= 0 && !strcmp(a->syms[p.sym], b->syms[q.sym])))
                return test_fail(what, "graph input dims (or their symbolic names) differ");
            if (p.sym == KILN_SYM_CONST && p.add != q.add) return test_fail(what, "graph input dims differ");
        }
    }
    for (int i = 0; i < a->n_outputs; i++) {
        const kiln_tensor *x = &a->tensors[a->outputs[i]], *y = &b->tensors[b->outputs[i]];
        if (strcmp(x->name, y->name)) return test_fail(what, "graph outputs differ");
        if ((x->decl == NULL) != (y->decl == NULL)) return test_fail(what, "declared output type lost");
        if (x->decl) {
            if (x->decl->rank != y->decl->rank || x->decl->elem_type != y->decl->elem_type)
                return test_fail(what, "declared output type differs");
            for (int d = 0; d < x->decl->rank; d++)
                if (x->decl->dims[d] != y->decl->dims[d] || !same_str(x->decl->names[d], y->decl->names[d]))
                    return test_fail(what, "declared output dims differ");
        }
    }
    return 0;
}

/* Parses `path`, writes it to OUTDIR/NAME.onnx, parses that back; *net_out is the re-read network. */
static int round_trip(const char *path, const char *outdir, const char *name, bool external, kiln_network **net_out)
{
    kiln_network *a = NULL, *b = NULL;
    if (kiln_onnx_parse(path, NULL, &a)) return test_fail(path, kiln_last_error());
    char out[4096];
    snprintf(out, sizeof out, "%s/%s%s.onnx", outdir, name, external ? "_ext" : "");
    kiln_onnx_write_options o = {.struct_size = sizeof o, .external_data = external ? 1 : 0};
    if (kiln_onnx_write(a, out, &o)) {
        kiln_network_free(a);
        return test_fail(out, kiln_last_error());
    }
    if (kiln_onnx_parse(out, NULL, &b)) {
        kiln_network_free(a);
        return test_fail(out, kiln_last_error());
    }
    int rc = check_kept(out, a, b);
    kiln_network_free(a);
    if (rc) {
        kiln_network_free(b);
        return rc;
    }
    *net_out = b;
    return 0;
}

static const char *leaf(const char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    static char buf[512];
    size_t s = n;
    while (s > 0 && path[s - 1] != '/') s--;
    snprintf(buf, sizeof buf, "%.*s", (int)(n - s), path + s);
    char *dot = strstr(buf, ".onnx");
    if (dot) *dot = 0;
    return buf;
}

/* Every Resize's scales (or sizes) input is an initializer, not computed and not a Constant node. */
static int resize_scales_initializer(const char *path)
{
    kiln_network *net = NULL;
    if (kiln_onnx_parse(path, NULL, &net)) return test_fail(path, kiln_last_error());
    int n = 0, bad = 0;
    for (int i = 0; i < net->n_nodes; i++) {
        const kiln_node *nd = &net->nodes[i];
        if (strcmp(nd->op_type, "Resize")) continue;
        n++;
        int slot = nd->opset < 11 ? 1 : (nd->n_in > 2 && nd->in[2] >= 0) ? 2 : 3;
        int t = slot < nd->n_in ? nd->in[slot] : -1;
        bool ok = t >= 0 && net->tensors[t].kind == KILN_TENSOR_CONSTANT;
        printf("%s Resize '%s': input %d '%s' is %san initializer\n", ok ? "PASS" : "FAIL", nd->name, slot,
               t >= 0 ? net->tensors[t].name : "", ok ? "" : "NOT ");
        bad += !ok;
    }
    kiln_network_free(net);
    if (!n) return test_fail(path, "no Resize node");
    return bad ? 1 : 0;
}

static char *dup(const char *s) { return strdup(s); }

/*
 * A hand-made model with everything the writer must keep: metadata_props, doc strings,
 * producer, opsets of three domains, every attribute type, a custom-domain node,
 * value_info with symbolic names, an output declared with a dim name. Written, read
 * back, compared field by field.
 */
static int synthetic(const char *outdir)
{
    kiln_network *a = NULL, *b = NULL;
    int rc = 1;
    char path[4096];
    snprintf(path, sizeof path, "%s/synthetic.onnx", outdir);
    if (kiln_network_create(&a)) return test_fail("synthetic", "create");
    kiln_network_set_opset(a, 17);
    int64_t dims[4] = {1, 3, KILN_DIM_SYMBOLIC, KILN_DIM_SYMBOLIC};
    const char *syms[4] = {NULL, NULL, "height", "width"};
    float w[3] = {1.5f, -2.f, 0.25f};
    int64_t wd[4] = {1, 3, 1, 1};
    int64_t iv[3] = {1, -2, 3};
    float fv[2] = {0.5f, -0.0f};
    const char *sv[2] = {"a", "bc"};
    kiln_host_tensor tv = {.dtype = KILN_DT_FLOAT, .rank = 4, .dims = {1, 3, 1, 1}, .data = w, .nbytes = sizeof w};
    kiln_attr_value cattr = {.name = "value", .type = KILN_ATTR_TENSOR, .t = &tv};
    kiln_attr_value custom[6] = {
        {.name = "i", .type = KILN_ATTR_INT, .i = -7},
        {.name = "f", .type = KILN_ATTR_FLOAT, .f = 0.125f},
        {.name = "s", .type = KILN_ATTR_STRING, .s = "text", .s_len = 4},
        {.name = "ints", .type = KILN_ATTR_INTS, .ints = iv, .n = 3},
        {.name = "floats", .type = KILN_ATTR_FLOATS, .floats = fv, .n = 2},
        {.name = "strings", .type = KILN_ATTR_STRINGS, .strings = sv, .n = 2},
    };
    const char *in1[1] = {"x"}, *out1[1] = {"c"}, *in2[2] = {"x", "w"}, *out2[1] = {"y"}, *in3[2] = {"y", "c"},
               *out3[1] = {"z"}, *in4[1] = {"z"}, *out4[1] = {"out"};
    if (kiln_network_add_input(a, "x", KILN_DT_FLOAT, 4, dims, syms) ||
        kiln_network_add_constant(a, "w", KILN_DT_FLOAT, 4, wd, w, sizeof w) ||
        kiln_network_add_node(a, "const", "Constant", "", 0, in1, 1, out1, 1, &cattr) ||
        kiln_network_add_node(a, "mul", "Mul", "", 2, in2, 1, out2, 0, NULL) ||
        kiln_network_add_node(a, "add", "Add", "", 2, in3, 1, out3, 0, NULL) ||
        kiln_network_add_node(a, "custom", "MyOp", "my.domain", 1, in4, 1, out4, 6, custom) ||
        kiln_network_mark_output(a, "out")) {
        printf("FAIL synthetic: building: %s\n", kiln_network_last_error(a));
        goto done;
    }
    a->ir_version = 9;
    a->producer_name = dup("kiln-test");
    a->producer_version = dup("9.9");
    a->model_doc = dup("model doc");
    a->model_domain = dup("org.test");
    a->model_version = 42;
    a->graph_name = dup("g");
    a->graph_doc = dup("graph doc");
    a->n_meta = 2;
    a->meta_keys = calloc(2, sizeof(char *));
    a->meta_values = calloc(2, sizeof(char *));
    a->meta_keys[0] = dup("k1");
    a->meta_values[0] = dup("v1");
    a->meta_keys[1] = dup("k2");
    a->meta_values[1] = dup("");
    a->n_opsets = 3;
    a->opset_domains = calloc(3, sizeof(char *));
    a->opset_versions = calloc(3, sizeof(int64_t));
    a->opset_domains[0] = dup("");
    a->opset_versions[0] = 17;
    a->opset_domains[1] = dup("my.domain");
    a->opset_versions[1] = 3;
    a->opset_domains[2] = dup("unused.domain");
    a->opset_versions[2] = 1;
    a->nodes[1].doc_string = dup("node doc");
    int t = kiln__net_find_tensor(a, "out");
    kiln_tensor_decl *d = calloc(1, sizeof *d);
    d->elem_type = KILN_DT_FLOAT;
    d->rank = 4;
    d->dims[0] = 1;
    d->dims[1] = 3;
    d->dims[2] = -1;
    d->names[2] = dup("out_h");
    d->dims[3] = -1; /* unknown: neither value nor name */
    a->tensors[t].decl = d;
    a->tensors[t].doc_string = dup("output doc");
    a->tensors[kiln__net_find_tensor(a, "w")].doc_string = dup("weight doc");
    kiln_onnx_write_options o = {.struct_size = sizeof o};
    if (kiln_onnx_write(a, path, &o)) {
        printf("FAIL synthetic: write: %s\n", kiln_last_error());
        goto done;
    }
    if (kiln_onnx_parse(path, NULL, &b)) {
        printf("FAIL synthetic: read back: %s\n", kiln_last_error());
        goto done;
    }
    if (check_kept(path, a, b)) goto done;
    const kiln_node *cb = &b->nodes[3];
    const kiln_attr *sa = kiln__node_attr(cb, "strings");
    bool ok = sa && sa->n == 2 && !strcmp(sa->strings[0], "a") && !strcmp(sa->strings[1], "bc") &&
              !strcmp(b->model_domain ? b->model_domain : "", "org.test") && b->model_version == 42 &&
              !strcmp(b->tensors[kiln__net_find_tensor(b, "w")].doc_string ? b->tensors[kiln__net_find_tensor(b, "w")].doc_string : "", "weight doc") &&
              !strcmp(b->tensors[kiln__net_find_tensor(b, "out")].doc_string ? b->tensors[kiln__net_find_tensor(b, "out")].doc_string : "", "output doc") &&
              !strcmp(b->opset_domains[2], "unused.domain");
    const kiln_tensor_decl *db = b->tensors[kiln__net_find_tensor(b, "out")].decl;
    ok = ok && db && db->dims[3] == -1 && !db->names[3] && db->names[2] && !strcmp(db->names[2], "out_h");
    if (!ok) {
        printf("FAIL synthetic: STRINGS attribute, model domain/version, tensor doc strings or opsets not kept\n");
        goto done;
    }
    /* After shape inference the intermediate tensors get value_info with the symbolic names. */
    kiln_network_infer_shapes(a);
    snprintf(path, sizeof path, "%s/synthetic_inferred.onnx", outdir);
    kiln_network_free(b);
    b = NULL;
    if (kiln_onnx_write(a, path, &o) || kiln_onnx_parse(path, NULL, &b)) {
        printf("FAIL synthetic: inferred write/read: %s\n", kiln_last_error());
        goto done;
    }
    const kiln_tensor_decl *dy = b->tensors[kiln__net_find_tensor(b, "y")].decl;
    if (!dy || dy->rank != 4 || !dy->names[2] || strcmp(dy->names[2], "height") || dy->dims[1] != 3) {
        printf("FAIL synthetic: value_info of 'y' is not float[1,3,height,width]\n");
        goto done;
    }
    printf("PASS synthetic: metadata, doc strings, opsets, every attribute type, value_info kept\n");
    rc = 0;
done:
    kiln_network_free(a);
    kiln_network_free(b);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--synthetic")) return synthetic(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "--resize-scales-initializer")) return resize_scales_initializer(argv[2]);
    bool external = argc > 1 && !strcmp(argv[argc - 1], "--external");
    if (external) argc--;
    if (argc == 4 && !strcmp(argv[1], "--fixture")) {
        char path[4096];
        snprintf(path, sizeof path, "%s/model.onnx", argv[2]);
        kiln_network *net = NULL;
        if (round_trip(path, argv[3], leaf(argv[2]), external, &net)) return 1;
        return test_run_fixture(net, argv[2], 1e-4);
    }
    if (argc == 5 && !strcmp(argv[1], "--light")) {
        kiln_network *net = NULL;
        if (round_trip(argv[2], argv[4], leaf(argv[2]), external, &net)) return 1;
        return test_run_light(net, argv[2], argv[3]);
    }
    fprintf(stderr, "usage: kiln_roundtrip_test --fixture DIR OUTDIR [--external] | --light MODEL.onnx EXPECTED.pb OUTDIR "
                    "[--external]\n");
    return 2;
}
