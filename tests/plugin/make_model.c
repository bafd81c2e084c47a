/*
 * Writes the plugin test models with protobuf-c (no Python here):
 *   DIR/scaled_tanh/model.onnx   X[1,3,h,w] -> example::ScaledTanh(alpha 2, beta 0.5) -> Relu -> Z
 *   DIR/scaled_tanh/test_data_set_0/{input_0,output_0}.pb   (X 1x3x5x7, Z computed here)
 *   DIR/unknown_op/model.onnx    X -> mmcv::NoSuchOp -> Y
 */
#include "kiln_onnx.pb-c.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef Kiln__Onnx__ModelProto Model;

/* Everything the messages point to lives here, so nothing needs freeing (the sanitizer build runs this). */
static _Alignas(16) unsigned char arena[1 << 16];
static size_t arena_used;
static void *arena_calloc(size_t n, size_t size)
{
    size_t b = (n * size + 15) & ~(size_t)15;
    if (arena_used + b > sizeof arena) abort();
    void *p = arena + arena_used;
    arena_used += b;
    memset(p, 0, b);
    return p;
}

static int write_msg(const char *path, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n + 1);
    if (!buf) return 1;
    protobuf_c_message_pack(m, buf);
    FILE *f = fopen(path, "wb");
    int rc = !f || fwrite(buf, 1, n, f) != n;
    if (f && fclose(f)) rc = 1;
    free(buf);
    if (rc) fprintf(stderr, "make_model: cannot write %s\n", path);
    return rc;
}

static Kiln__Onnx__TensorShapeProto__Dimension dims_store[16];
static Kiln__Onnx__TensorShapeProto__Dimension *dimp_store[16];
static int n_dims_used;

static Kiln__Onnx__ValueInfoProto *value_info(const char *name, int rank, const int64_t *dims, const char *const *syms)
{
    Kiln__Onnx__ValueInfoProto *vi = arena_calloc(1, sizeof *vi);
    Kiln__Onnx__TypeProto *tp = arena_calloc(1, sizeof *tp);
    Kiln__Onnx__TypeProto__Tensor *tt = arena_calloc(1, sizeof *tt);
    Kiln__Onnx__TensorShapeProto *sh = arena_calloc(1, sizeof *sh);
    kiln__onnx__value_info_proto__init(vi);
    kiln__onnx__type_proto__init(tp);
    kiln__onnx__type_proto__tensor__init(tt);
    kiln__onnx__tensor_shape_proto__init(sh);
    sh->n_dim = (size_t)rank;
    sh->dim = &dimp_store[n_dims_used];
    for (int d = 0; d < rank; d++) {
        Kiln__Onnx__TensorShapeProto__Dimension *dm = &dims_store[n_dims_used];
        kiln__onnx__tensor_shape_proto__dimension__init(dm);
        if (syms && syms[d]) {
            dm->value_case = KILN__ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dm->dim_param = (char *)syms[d];
        } else {
            dm->value_case = KILN__ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dm->dim_value = dims[d];
        }
        dimp_store[n_dims_used++] = dm;
    }
    tt->has_elem_type = 1;
    tt->elem_type = 1;
    tt->shape = sh;
    tp->value_case = KILN__ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vi->name = (char *)name;
    vi->type = tp;
    return vi;
}

static Kiln__Onnx__AttributeProto *fattr(const char *name, float v)
{
    Kiln__Onnx__AttributeProto *a = arena_calloc(1, sizeof *a);
    kiln__onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = 1; /* FLOAT */
    a->has_f = 1;
    a->f = v;
    return a;
}

static int write_model(const char *path, Kiln__Onnx__NodeProto **nodes, int n_nodes, const char *custom_domain,
                       Kiln__Onnx__ValueInfoProto *in, Kiln__Onnx__ValueInfoProto *out)
{
    Kiln__Onnx__GraphProto g;
    kiln__onnx__graph_proto__init(&g);
    g.name = "plugin_test";
    g.n_node = (size_t)n_nodes;
    g.node = nodes;
    g.n_input = 1;
    g.input = &in;
    g.n_output = 1;
    g.output = &out;
    Kiln__Onnx__OperatorSetIdProto os[2], *osp[2] = {&os[0], &os[1]};
    kiln__onnx__operator_set_id_proto__init(&os[0]);
    kiln__onnx__operator_set_id_proto__init(&os[1]);
    os[0].domain = "";
    os[0].has_version = 1;
    os[0].version = 17;
    os[1].domain = (char *)custom_domain;
    os[1].has_version = 1;
    os[1].version = 1;
    Model m;
    kiln__onnx__model_proto__init(&m);
    m.has_ir_version = 1;
    m.ir_version = 8;
    m.producer_name = "kiln tests/plugin/make_model";
    m.n_opset_import = 2;
    m.opset_import = osp;
    m.graph = &g;
    return write_msg(path, &m.base);
}

static int write_tensor(const char *path, const char *name, int rank, const int64_t *dims, const float *v, size_t n)
{
    Kiln__Onnx__TensorProto t;
    kiln__onnx__tensor_proto__init(&t);
    t.name = (char *)name;
    t.n_dims = (size_t)rank;
    t.dims = (int64_t *)dims;
    t.has_data_type = 1;
    t.data_type = 1;
    t.has_raw_data = 1;
    t.raw_data.len = n * sizeof(float);
    t.raw_data.data = (uint8_t *)v;
    return write_msg(path, &t.base);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_model DIR\n");
        return 2;
    }
    char p[4096];
    const char *dir = argv[1];
    mkdir(dir, 0777);
    snprintf(p, sizeof p, "%s/scaled_tanh", dir);
    mkdir(p, 0777);
    snprintf(p, sizeof p, "%s/scaled_tanh/test_data_set_0", dir);
    mkdir(p, 0777);
    snprintf(p, sizeof p, "%s/unknown_op", dir);
    mkdir(p, 0777);

    const int64_t sdims[4] = {1, 3, 0, 0};
    const char *const syms[4] = {NULL, NULL, "h", "w"};
    /* model 1: ScaledTanh then Relu */
    Kiln__Onnx__NodeProto n1, n2, *nodes[2] = {&n1, &n2};
    kiln__onnx__node_proto__init(&n1);
    kiln__onnx__node_proto__init(&n2);
    char *x = "X", *y = "Y", *z = "Z";
    Kiln__Onnx__AttributeProto *attrs[2] = {fattr("alpha", 2.0f), fattr("beta", 0.5f)};
    n1.name = "tanh_plugin";
    n1.op_type = "ScaledTanh";
    n1.domain = "example";
    n1.n_input = 1;
    n1.input = &x;
    n1.n_output = 1;
    n1.output = &y;
    n1.n_attribute = 2;
    n1.attribute = attrs;
    n2.name = "relu";
    n2.op_type = "Relu";
    n2.n_input = 1;
    n2.input = &y;
    n2.n_output = 1;
    n2.output = &z;
    snprintf(p, sizeof p, "%s/scaled_tanh/model.onnx", dir);
    if (write_model(p, nodes, 2, "example", value_info("X", 4, sdims, syms), value_info("Z", 4, sdims, syms))) return 1;

    const int64_t dims[4] = {1, 3, 5, 7};
    float xin[105], zout[105];
    for (int i = 0; i < 105; i++) {
        xin[i] = (float)(i - 52) / 13.0f;
        float v = 2.0f * tanhf(0.5f * xin[i]);
        zout[i] = v > 0 ? v : 0;
    }
    snprintf(p, sizeof p, "%s/scaled_tanh/test_data_set_0/input_0.pb", dir);
    if (write_tensor(p, "X", 4, dims, xin, 105)) return 1;
    snprintf(p, sizeof p, "%s/scaled_tanh/test_data_set_0/output_0.pb", dir);
    if (write_tensor(p, "Z", 4, dims, zout, 105)) return 1;

    /* model 2: an op nobody provides */
    Kiln__Onnx__NodeProto u;
    kiln__onnx__node_proto__init(&u);
    Kiln__Onnx__NodeProto *un[1] = {&u};
    u.name = "mystery";
    u.op_type = "NoSuchOp";
    u.domain = "mmcv";
    u.n_input = 1;
    u.input = &x;
    u.n_output = 1;
    u.output = &y;
    snprintf(p, sizeof p, "%s/unknown_op/model.onnx", dir);
    if (write_model(p, un, 1, "mmcv", value_info("X", 4, dims, NULL), value_info("Y", 4, dims, NULL))) return 1;
    return 0;
}
