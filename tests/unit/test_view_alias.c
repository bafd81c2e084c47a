/*
 * Views without copies (src/runtime/view_alias.c), no GPU: the pure stride
 * computations on odd shapes (row-major, NHWC, sliced sources), the decision
 * for real nodes (Reshape, Flatten, Squeeze, Unsqueeze, Identity, Gather,
 * Slice) with every refusal, and the context side on hand-made rep lists:
 * EDVR's 4-D NHWC -> 5-D view -> per-frame select ends up as an NHWC alias of
 * the conv output, aliases of aliases and of Concat-in-place outputs land at
 * the right address, roots live as long as their last alias, and what must
 * copy (constants, another dtype, off-grid offsets, offsets into a caller's
 * buffer, KILN_NO_VIEW_ALIAS=1) keeps its copy.
 */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include "runtime/context.h"
#include "test_main.h"
#include <string.h>

static kiln_cuda_tensor tensor(kiln_dtype dt, int rank, const int64_t *dims, kiln_layout lay)
{
    kiln_cuda_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dt;
    t.rank = rank;
    for (int d = 0; d < rank; d++) t.dims[d] = dims[d];
    kiln__cuda_strides(&t, lay);
    return t;
}

static kiln_cuda_tensor shape_only(kiln_dtype dt, int rank, const int64_t *dims)
{
    kiln_cuda_tensor t = tensor(dt, rank, dims, KILN_LAYOUT_ROW_MAJOR);
    memset(t.strides, 0x7f, sizeof t.strides); /* must be overwritten */
    return t;
}

static bool strides_are(const kiln_cuda_tensor *t, const int64_t *want)
{
    for (int d = 0; d < t->rank; d++)
        if (t->dims[d] != 1 && t->strides[d] != want[d]) return false;
    return true;
}

/* Walks every element in row-major order of both and checks they hit the same address:
 * the definition of a correct reshape view. */
static bool same_order(const kiln_cuda_tensor *a, int64_t a_off, const kiln_cuda_tensor *b, int64_t b_off)
{
    int64_t n = 1, m = 1;
    for (int d = 0; d < a->rank; d++) n *= a->dims[d];
    for (int d = 0; d < b->rank; d++) m *= b->dims[d];
    if (n != m) return false;
    for (int64_t i = 0; i < n; i++) {
        int64_t r = i, pa = a_off, pb = b_off;
        for (int d = a->rank - 1; d >= 0; d--) {
            pa += (r % a->dims[d]) * a->strides[d];
            r /= a->dims[d];
        }
        r = i;
        for (int d = b->rank - 1; d >= 0; d--) {
            pb += (r % b->dims[d]) * b->strides[d];
            r /= b->dims[d];
        }
        if (pa != pb) return false;
    }
    return true;
}

static bool reshape_ok(const kiln_cuda_tensor *src, int rank, const int64_t *dims, kiln_cuda_tensor *out)
{
    *out = shape_only(src->dtype, rank, dims);
    if (!kiln__view_reshape(src, out)) return false;
    CHECK(same_order(src, 0, out, 0));
    return true;
}

static void test_reshape_strides(void)
{
    kiln_dtype h = KILN_DT_FLOAT16;
    kiln_cuda_tensor o;
    /* row-major: any reshape */
    kiln_cuda_tensor rm = tensor(h, 3, (int64_t[]){2, 3, 5}, KILN_LAYOUT_ROW_MAJOR);
    CHECK(reshape_ok(&rm, 2, (int64_t[]){6, 5}, &o) && strides_are(&o, (int64_t[]){5, 1}));
    CHECK(reshape_ok(&rm, 1, (int64_t[]){30}, &o));
    CHECK(reshape_ok(&rm, 5, (int64_t[]){1, 2, 1, 15, 1}, &o) && strides_are(&o, (int64_t[]){0, 15, 0, 1, 0}));
    CHECK(reshape_ok(&rm, 2, (int64_t[]){10, 3}, &o));
    CHECK(!reshape_ok(&rm, 2, (int64_t[]){7, 5}, &o)); /* 35 != 30 elements */
    /* EDVR: (T, C, H, W) NHWC -> (1, T, C, H, W): 5-D channels-last strides */
    int64_t T = 5, C = 3, H = 4, W = 7;
    kiln_cuda_tensor nh = tensor(h, 4, (int64_t[]){T, C, H, W}, KILN_LAYOUT_NHWC);
    CHECK(reshape_ok(&nh, 5, (int64_t[]){1, T, C, H, W}, &o) &&
          strides_are(&o, (int64_t[]){0, H * W * C, 1, W * C, C}));
    /* (T, C, H*W): H and W merge, C stays apart */
    CHECK(reshape_ok(&nh, 3, (int64_t[]){T, C, H * W}, &o) && strides_are(&o, (int64_t[]){H * W * C, 1, C}));
    /* (T, C*H*W) would put C outermost inside a frame: not a view of NHWC */
    CHECK(!reshape_ok(&nh, 2, (int64_t[]){T, C * H * W}, &o));
    CHECK(reshape_ok(&nh, 5, (int64_t[]){1, T, C, W, H}, &o));   /* H*W re-split: still in order */
    CHECK(!reshape_ok(&nh, 3, (int64_t[]){T, C * H, W}, &o));     /* C and H are not adjacent in NHWC */
    /* (1, T*C, H, W) from (T, C, H, W) NHWC: T and C are not adjacent in memory */
    CHECK(!reshape_ok(&nh, 4, (int64_t[]){1, T * C, H, W}, &o));
    /* NHWC with C == 1 is row-major */
    kiln_cuda_tensor c1 = tensor(h, 4, (int64_t[]){2, 1, 3, 5}, KILN_LAYOUT_NHWC);
    CHECK(reshape_ok(&c1, 2, (int64_t[]){2, 15}, &o) && strides_are(&o, (int64_t[]){15, 1}));
    /* a sliced source (4 of 8 columns... 6 of 8): rows stay separate chunks */
    kiln_cuda_tensor sl = tensor(h, 2, (int64_t[]){4, 6}, KILN_LAYOUT_ROW_MAJOR);
    sl.strides[0] = 8;
    CHECK(reshape_ok(&sl, 3, (int64_t[]){4, 2, 3}, &o) && strides_are(&o, (int64_t[]){8, 3, 1}));
    CHECK(!reshape_ok(&sl, 1, (int64_t[]){24}, &o));
    CHECK(!reshape_ok(&sl, 2, (int64_t[]){2, 12}, &o));
    CHECK(!reshape_ok(&sl, 2, (int64_t[]){8, 3}, &o)); /* 3 of a row of 6: the 4 would straddle */
    /* scalars and unit tensors */
    kiln_cuda_tensor sc = tensor(h, 0, NULL, KILN_LAYOUT_ROW_MAJOR);
    CHECK(reshape_ok(&sc, 2, (int64_t[]){1, 1}, &o));
    /* zero-sized: never a view (nothing to save, and offsets would be meaningless) */
    kiln_cuda_tensor z = tensor(h, 2, (int64_t[]){0, 4}, KILN_LAYOUT_ROW_MAJOR);
    CHECK(!reshape_ok(&z, 2, (int64_t[]){4, 0}, &o));
    /* a stride of 0 (broadcast) is refused */
    kiln_cuda_tensor b0 = tensor(h, 2, (int64_t[]){3, 4}, KILN_LAYOUT_ROW_MAJOR);
    b0.strides[0] = 0;
    CHECK(!reshape_ok(&b0, 1, (int64_t[]){12}, &o));
    /* huge dims: no overflow, just a refusal */
    kiln_cuda_tensor big = tensor(h, 2, (int64_t[]){1 << 20, 1 << 20}, KILN_LAYOUT_ROW_MAJOR);
    o = shape_only(h, 2, (int64_t[]){(int64_t)1 << 40, 1});
    CHECK(kiln__view_reshape(&big, &o));
    o.dims[0] = INT64_MAX / 2; /* set by hand: no strides computed for it */
    o.dims[1] = 4;
    CHECK(!kiln__view_reshape(&big, &o));
}

static void test_select_slice(void)
{
    kiln_dtype h = KILN_DT_FLOAT16;
    int64_t T = 5, C = 3, H = 4, W = 7, off = -1;
    kiln_cuda_tensor nh = tensor(h, 4, (int64_t[]){T, C, H, W}, KILN_LAYOUT_NHWC);
    kiln_cuda_tensor v5 = shape_only(h, 5, (int64_t[]){1, T, C, H, W});
    CHECK(kiln__view_reshape(&nh, &v5));
    /* x[:, 2] of the 5-D view: an NHWC frame */
    kiln_cuda_tensor o = shape_only(h, 4, (int64_t[]){1, C, H, W});
    CHECK(kiln__view_select(&v5, 1, 2, 0, &o, &off) && off == 2 * H * W * C &&
          strides_are(&o, (int64_t[]){0, 1, W * C, C}));
    CHECK(kiln__view_select(&v5, 1, -1, 0, &o, &off) && off == 4 * H * W * C);
    CHECK(!kiln__view_select(&v5, 1, 5, 0, &o, &off));
    CHECK(!kiln__view_select(&v5, 1, -6, 0, &o, &off));
    CHECK(!kiln__view_select(&v5, 5, 0, 0, &o, &off)); /* axis out of range */
    kiln_cuda_tensor bad = shape_only(h, 4, (int64_t[]){1, C, W, H});
    CHECK(!kiln__view_select(&v5, 1, 0, 0, &bad, &off)); /* dims do not match */
    /* a one-element index of rank 1 keeps a unit axis */
    kiln_cuda_tensor o5 = shape_only(h, 5, (int64_t[]){1, 1, C, H, W});
    CHECK(kiln__view_select(&v5, 1, 3, 1, &o5, &off) && off == 3 * H * W * C);
    /* select on an inner axis of a row-major tensor: strided, still a view */
    kiln_cuda_tensor rm = tensor(h, 3, (int64_t[]){2, 3, 5}, KILN_LAYOUT_ROW_MAJOR);
    kiln_cuda_tensor o2 = shape_only(h, 2, (int64_t[]){2, 5});
    CHECK(kiln__view_select(&rm, 1, 1, 0, &o2, &off) && off == 5 && strides_are(&o2, (int64_t[]){15, 1}));

    /* Slice: x[1:3, :, ::2] of (4, 3, 6) */
    kiln_cuda_tensor s = tensor(h, 3, (int64_t[]){4, 3, 6}, KILN_LAYOUT_ROW_MAJOR);
    kiln_cuda_tensor so = shape_only(h, 3, (int64_t[]){2, 3, 3});
    CHECK(kiln__view_slice(&s, (int64_t[]){1, 0, 0}, (int64_t[]){1, 1, 2}, (int64_t[]){2, 3, 3}, &so, &off) &&
          off == 18 && strides_are(&so, (int64_t[]){18, 6, 2}));
    CHECK(!kiln__view_slice(&s, (int64_t[]){1, 0, 5}, (int64_t[]){1, 1, -2}, (int64_t[]){2, 3, 3}, &so, &off));
    CHECK(!kiln__view_slice(&s, (int64_t[]){1, 0, 0}, (int64_t[]){1, 1, 2}, (int64_t[]){2, 3, 2}, &so, &off));
    CHECK(!kiln__view_slice(&s, (int64_t[]){3, 0, 0}, (int64_t[]){1, 1, 2}, (int64_t[]){2, 3, 3}, &so, &off)); /* past the end */
    kiln_cuda_tensor s0 = shape_only(h, 3, (int64_t[]){0, 3, 6});
    CHECK(!kiln__view_slice(&s, (int64_t[]){0, 0, 0}, (int64_t[]){1, 1, 1}, (int64_t[]){0, 3, 6}, &s0, &off));
}

/* ---- nodes ---- */

static kiln_network *net;

static int tensor_index(const char *name) { return kiln__net_find_tensor(net, name); }

static const kiln_node *node_named(const char *name)
{
    for (int i = 0; i < net->n_nodes; i++)
        if (!strcmp(net->nodes[i].name, name)) return &net->nodes[i];
    return NULL;
}

static int node_idx(const char *name)
{
    const kiln_node *n = node_named(name);
    return n ? (int)(n - net->nodes) : -1;
}

enum { T = 5, C = 8, H = 4, W = 8 }; /* a frame of C*H*W fp16 = 512 bytes: on the 256-byte grid */

static void make_net(void)
{
    CHECK(kiln_network_create(&net) == KILN_OK);
    CHECK(kiln_network_add_input(net, "feat", KILN_DT_FLOAT, 4, (int64_t[]){T, C, H, W}, NULL) == KILN_OK);
    CHECK(kiln_network_add_input(net, "odd", KILN_DT_FLOAT, 4, (int64_t[]){T, 3, 3, 5}, NULL) == KILN_OK);
    CHECK(kiln_network_add_input(net, "x", KILN_DT_FLOAT, 5, (int64_t[]){1, T, C, H, W}, NULL) == KILN_OK);
    int64_t shape5[5] = {1, T, C, H, W}, shape4[4] = {1, T * C, H, W}, i2 = 2, two[2] = {1, 2};
    CHECK(kiln_network_add_constant(net, "shape5", KILN_DT_INT64, 1, (int64_t[]){5}, shape5, sizeof shape5) == KILN_OK);
    CHECK(kiln_network_add_constant(net, "shape4", KILN_DT_INT64, 1, (int64_t[]){4}, shape4, sizeof shape4) == KILN_OK);
    CHECK(kiln_network_add_constant(net, "i2", KILN_DT_INT64, 0, NULL, &i2, sizeof i2) == KILN_OK);
    CHECK(kiln_network_add_constant(net, "two", KILN_DT_INT64, 1, (int64_t[]){2}, two, sizeof two) == KILN_OK);
    int32_t i3 = 3;
    CHECK(kiln_network_add_constant(net, "i3", KILN_DT_INT32, 1, (int64_t[]){1}, &i3, sizeof i3) == KILN_OK);
    int64_t st[1] = {1}, en[1] = {3}, ax[1] = {1}, sp[1] = {1}, sn[1] = {-1};
    CHECK(kiln_network_add_constant(net, "st", KILN_DT_INT64, 1, (int64_t[]){1}, st, sizeof st) == KILN_OK);
    CHECK(kiln_network_add_constant(net, "en", KILN_DT_INT64, 1, (int64_t[]){1}, en, sizeof en) == KILN_OK);
    CHECK(kiln_network_add_constant(net, "ax", KILN_DT_INT64, 1, (int64_t[]){1}, ax, sizeof ax) == KILN_OK);
    CHECK(kiln_network_add_constant(net, "sp", KILN_DT_INT64, 1, (int64_t[]){1}, sp, sizeof sp) == KILN_OK);
    CHECK(kiln_network_add_constant(net, "sn", KILN_DT_INT64, 1, (int64_t[]){1}, sn, sizeof sn) == KILN_OK);
    kiln_attr_value ax1 = {.name = "axis", .type = KILN_ATTR_INT, .i = 1};
#define NODE(name, op, nin, ins, out, na, attrs)                                                                   \
    CHECK(kiln_network_add_node(net, name, op, "", nin, (const char *const[])ins, 1, (const char *[]){out}, na, attrs) == KILN_OK)
#define L(...) {__VA_ARGS__}
    NODE("relu", "Relu", 1, L("feat"), "f", 0, NULL);
    NODE("view5", "Reshape", 2, L("f", "shape5"), "f5", 0, NULL);
    NODE("sel", "Gather", 2, L("f5", "i2"), "fr", 1, &ax1);
    NODE("sel3", "Gather", 2, L("f5", "i3"), "fr3", 1, &ax1);
    NODE("sel2", "Gather", 2, L("f5", "two"), "fr2", 1, &ax1);
    NODE("view4", "Reshape", 2, L("f5", "shape4"), "f4", 0, NULL);
    NODE("flat", "Flatten", 1, L("fr"), "ff", 0, NULL);
    NODE("id", "Identity", 1, L("fr"), "fi", 0, NULL);
    NODE("sq", "Squeeze", 1, L("fr"), "fs", 0, NULL);
    NODE("uns", "Unsqueeze", 2, L("fr", "ax"), "fu", 0, NULL);
    NODE("slice", "Slice", 5, L("f5", "st", "en", "ax", "sp"), "fsl", 0, NULL);
    NODE("rslice", "Slice", 5, L("f5", "en", "st", "ax", "sn"), "frs", 0, NULL);
    NODE("add", "Add", 2, L("f", "f"), "fa", 0, NULL);
    NODE("relu_odd", "Relu", 1, L("odd"), "o", 0, NULL);
    NODE("view5_odd", "Reshape", 2, L("o", "shape5"), "o5", 0, NULL);
    NODE("sel_odd", "Gather", 2, L("o5", "i2"), "o5s", 1, &ax1);
    NODE("xsel", "Gather", 2, L("x", "i2"), "xc", 1, &ax1);
    NODE("xview", "Reshape", 2, L("x", "shape5"), "xv", 0, NULL);
    NODE("cat", "Concat", 2, L("f", "fa"), "fc", 1, &ax1);
    /* prob.unsqueeze(2).expand(b, t, c, h, w).reshape(b, t * c, h, w) */
    int64_t pshape[5] = {1, T, C, H, W}, rshape[4] = {1, T * C, H, W};
    CHECK(kiln_network_add_input(net, "p", KILN_DT_FLOAT, 5, (int64_t[]){1, T, 1, H, W}, NULL) == KILN_OK);
    CHECK(kiln_network_add_constant(net, "pshape", KILN_DT_INT64, 1, (int64_t[]){5}, pshape, sizeof pshape) == KILN_OK);
    CHECK(kiln_network_add_constant(net, "rshape", KILN_DT_INT64, 1, (int64_t[]){4}, rshape, sizeof rshape) == KILN_OK);
    NODE("expand", "Expand", 2, L("p", "pshape"), "pe", 0, NULL);
    NODE("pview", "Reshape", 2, L("pe", "rshape"), "pv", 0, NULL);
    NODE("expand2", "Expand", 2, L("p", "pshape"), "pe2", 0, NULL); /* read twice */
    NODE("pview2", "Reshape", 2, L("pe2", "rshape"), "pv2", 0, NULL);
    NODE("pmul", "Mul", 2, L("pe2", "pe2"), "pm", 0, NULL);
    NODE("cat3", "Concat", 3, L("f", "fa", "o"), "fc3", 1, &ax1);
#undef NODE
#undef L
}

static const kiln_value *hv(const char *name)
{
    int t = tensor_index(name);
    return t >= 0 && net->tensors[t].kind == KILN_TENSOR_CONSTANT ? &net->tensors[t].v : NULL;
}

/* kiln__view_of on node `name` with the host values of its constant inputs. */
static bool decide(const char *name, const kiln_cuda_tensor *src, kiln_cuda_tensor *out, int64_t *off,
                   kiln_layout prefer)
{
    const kiln_node *nd = node_named(name);
    if (!nd) return false;
    const kiln_value *host[8] = {0};
    for (int j = 0; j < nd->n_in && j < 8; j++)
        if (nd->in[j] >= 0) host[j] = hv(net->tensors[nd->in[j]].name);
    return kiln__view_of(nd, host, src, prefer, out, off);
}

static void test_nodes(void)
{
    kiln_dtype h = KILN_DT_FLOAT16;
    int64_t off = -1;
    kiln_cuda_tensor f = tensor(h, 4, (int64_t[]){T, C, H, W}, KILN_LAYOUT_NHWC);
    kiln_cuda_tensor f5 = shape_only(h, 5, (int64_t[]){1, T, C, H, W});
    CHECK(decide("view5", &f, &f5, &off, KILN_LAYOUT_ROW_MAJOR) && off == 0);
    CHECK(strides_are(&f5, (int64_t[]){0, H * W * C, 1, W * C, C}));
    kiln_cuda_tensor fr = shape_only(h, 4, (int64_t[]){1, C, H, W});
    CHECK(decide("sel", &f5, &fr, &off, KILN_LAYOUT_NHWC) && off == 2 * C * H * W);
    /* exactly the NHWC strides a fresh rep would have, unit N included */
    kiln_cuda_tensor want = tensor(h, 4, (int64_t[]){1, C, H, W}, KILN_LAYOUT_NHWC);
    CHECK(!memcmp(fr.strides, want.strides, sizeof(int64_t) * 4));
    /* int32 index of shape [1]: keeps a unit axis */
    kiln_cuda_tensor fr3 = shape_only(h, 5, (int64_t[]){1, 1, C, H, W});
    CHECK(decide("sel3", &f5, &fr3, &off, KILN_LAYOUT_ROW_MAJOR) && off == 3 * C * H * W);
    /* two indices: a real gather */
    kiln_cuda_tensor fr2 = shape_only(h, 5, (int64_t[]){1, 2, C, H, W});
    CHECK(!decide("sel2", &f5, &fr2, &off, KILN_LAYOUT_ROW_MAJOR));
    /* (1, T*C, H, W) from the channels-last 5-D view: not expressible */
    kiln_cuda_tensor f4 = shape_only(h, 4, (int64_t[]){1, T * C, H, W});
    CHECK(!decide("view4", &f5, &f4, &off, KILN_LAYOUT_NHWC));
    /* ... but from a row-major 5-D tensor it is */
    kiln_cuda_tensor f5r = tensor(h, 5, (int64_t[]){1, T, C, H, W}, KILN_LAYOUT_ROW_MAJOR);
    CHECK(decide("view4", &f5r, &f4, &off, KILN_LAYOUT_NHWC) && strides_are(&f4, (int64_t[]){0, H * W, W, 1}));
    /* Flatten / Identity / Squeeze / Unsqueeze of the NHWC frame */
    kiln_cuda_tensor fnh = tensor(h, 4, (int64_t[]){1, C, H, W}, KILN_LAYOUT_NHWC);
    kiln_cuda_tensor ff = shape_only(h, 2, (int64_t[]){1, C * H * W});
    CHECK(!decide("flat", &fnh, &ff, &off, KILN_LAYOUT_ROW_MAJOR)); /* NHWC flattened is a permutation */
    kiln_cuda_tensor frm = tensor(h, 4, (int64_t[]){1, C, H, W}, KILN_LAYOUT_ROW_MAJOR);
    CHECK(decide("flat", &frm, &ff, &off, KILN_LAYOUT_ROW_MAJOR));
    kiln_cuda_tensor fi = shape_only(h, 4, (int64_t[]){1, C, H, W});
    CHECK(decide("id", &fnh, &fi, &off, KILN_LAYOUT_NHWC) && !memcmp(fi.strides, fnh.strides, sizeof(int64_t) * 4));
    kiln_cuda_tensor fs = shape_only(h, 3, (int64_t[]){C, H, W});
    CHECK(decide("sq", &fnh, &fs, &off, KILN_LAYOUT_ROW_MAJOR) && strides_are(&fs, (int64_t[]){1, W * C, C}));
    kiln_cuda_tensor fu = shape_only(h, 5, (int64_t[]){1, 1, C, H, W});
    CHECK(decide("uns", &fnh, &fu, &off, KILN_LAYOUT_ROW_MAJOR) && strides_are(&fu, (int64_t[]){0, 0, 1, W * C, C}));
    /* Slice f5[:, 1:3] and the reversed f5[:, 3:1:-1] */
    kiln_cuda_tensor fsl = shape_only(h, 5, (int64_t[]){1, 2, C, H, W});
    CHECK(decide("slice", &f5r, &fsl, &off, KILN_LAYOUT_ROW_MAJOR) && off == C * H * W);
    CHECK(!decide("rslice", &f5r, &fsl, &off, KILN_LAYOUT_ROW_MAJOR));
    /* other dtype, other ops */
    kiln_cuda_tensor f32 = shape_only(KILN_DT_FLOAT, 5, (int64_t[]){1, T, C, H, W});
    CHECK(!decide("view5", &f, &f32, &off, KILN_LAYOUT_ROW_MAJOR));
    kiln_cuda_tensor fa = shape_only(h, 4, (int64_t[]){T, C, H, W});
    CHECK(!decide("add", &f, &fa, &off, KILN_LAYOUT_NHWC));
    /* an index not known on the host */
    const kiln_node *sel = node_named("sel");
    const kiln_value *none[2] = {NULL, NULL};
    CHECK(!kiln__view_of(sel, none, &f5r, KILN_LAYOUT_ROW_MAJOR, &fr, &off));
}

/* ---- the context side ---- */

typedef struct fixture {
    kiln_context ctx;
    kiln_rep reps[32];
    kiln_step steps[16];
    int ins[16][4], outs[16][1];
    kiln_value *vals;
    bool *host_known;
} fixture;

static void init(fixture *f)
{
    memset(f, 0, sizeof *f);
    f->ctx.net = net;
    f->ctx.reps = f->reps;
    f->ctx.cap_reps = 32;
    f->ctx.steps = f->steps;
    f->vals = calloc((size_t)net->n_tensors, sizeof *f->vals);
    f->host_known = calloc((size_t)net->n_tensors, sizeof(bool));
    for (int t = 0; t < net->n_tensors; t++)
        if (net->tensors[t].kind == KILN_TENSOR_CONSTANT) {
            f->vals[t] = net->tensors[t].v;
            f->host_known[t] = true;
        }
    f->ctx.vals = f->vals;
    f->ctx.host_known = f->host_known;
}

static void fini(fixture *f)
{
    free(f->vals);
    free(f->host_known);
}

static int rep(fixture *f, const char *tname, kiln_dtype dt, int rank, const int64_t *dims, kiln_layout lay, int where,
               int first, int last)
{
    int r = f->ctx.n_reps++;
    kiln_rep *p = &f->reps[r];
    memset(p, 0, sizeof *p);
    p->tensor = tensor_index(tname);
    p->where = where;
    p->first = first;
    p->last = last;
    p->alias_of = -1;
    p->t = tensor(dt, rank, dims, lay);
    return r;
}

static int step(fixture *f, const char *node, int n_in, const int *in, int out)
{
    int s = f->ctx.n_steps++;
    kiln_step *st = &f->steps[s];
    memset(st, 0, sizeof *st);
    st->kind = STEP_LAUNCH;
    st->node = node_idx(node);
    for (int j = 0; j < n_in; j++) f->ins[s][j] = in[j];
    f->outs[s][0] = out;
    st->in_reps = f->ins[s];
    st->out_reps = f->outs[s];
    return s;
}

/* The runtime's hook: a new rep for the node's output in layout `lay`, then the decision. */
static int view(fixture *f, const char *node, const char *out, int rank, const int64_t *dims, kiln_dtype dt,
                kiln_layout lay, bool *ok)
{
    int r = rep(f, out, dt, rank, dims, lay, REP_ARENA, -1, -1);
    *ok = kiln__view_alias_candidate(&f->ctx, node_named(node)) && kiln__context_view_alias(&f->ctx, node_idx(node), r);
    return r;
}

/* EDVR: relu -> view(b, t, c, h, w) -> x[:, 2] -> conv; the select is an NHWC alias of relu's output. */
static void test_edvr_chain(void)
{
    fixture f;
    init(&f);
    kiln_dtype h = KILN_DT_FLOAT16;
    bool ok = false;
    int a = rep(&f, "f", h, 4, (int64_t[]){T, C, H, W}, KILN_LAYOUT_NHWC, REP_ARENA, 0, 0);
    step(&f, "relu", 0, NULL, a);
    CHECK(kiln__context_view_has_source(&f.ctx, tensor_index("f"), h));
    CHECK(!kiln__context_view_has_source(&f.ctx, tensor_index("f"), KILN_DT_FLOAT));
    int v5 = view(&f, "view5", "f5", 5, (int64_t[]){1, T, C, H, W}, h, KILN_LAYOUT_ROW_MAJOR, &ok);
    CHECK(ok && f.reps[v5].alias_of == a && f.reps[v5].alias_off == 0 && f.reps[v5].first == 0);
    int sel = view(&f, "sel", "fr", 4, (int64_t[]){1, C, H, W}, h, KILN_LAYOUT_NHWC, &ok);
    size_t frame = (size_t)C * H * W * 2;
    CHECK(ok && f.reps[sel].alias_of == v5 && f.reps[sel].alias_off == 2 * frame);
    kiln_cuda_tensor want = tensor(h, 4, (int64_t[]){1, C, H, W}, KILN_LAYOUT_NHWC);
    CHECK(!memcmp(f.reps[sel].t.strides, want.strides, sizeof(int64_t) * 4));
    /* an alias of an alias of an alias: Squeeze of the frame */
    int sq = view(&f, "sq", "fs", 3, (int64_t[]){C, H, W}, h, KILN_LAYOUT_ROW_MAJOR, &ok);
    CHECK(ok && f.reps[sq].alias_of == sel && f.reps[sq].alias_off == 0);
    /* (1, T*C, H, W) from channels-last: the node must copy */
    int v4 = view(&f, "view4", "f4", 4, (int64_t[]){1, T * C, H, W}, h, KILN_LAYOUT_NHWC, &ok);
    CHECK(!ok && f.reps[v4].alias_of < 0);
    f.ctx.n_reps--; /* as the runtime does */
    /* consumers read the frame at step 5, the squeezed view at step 7 */
    f.reps[sel].last = 5;
    f.reps[sq].last = 7;
    int c = rep(&f, "fa", h, 4, (int64_t[]){1, C, H, W}, KILN_LAYOUT_NHWC, REP_ARENA, 5, 6);
    step(&f, "add", 1, (int[]){sel}, c);
    kiln__context_alias_concats(&f.ctx);
    CHECK(f.reps[a].first == 0 && f.reps[a].last == 7); /* the root lives until the last view is read */
    f.reps[a].t.ptr = (void *)(uintptr_t)0x200000;
    kiln__context_place_aliases(&f.ctx);
    CHECK((uintptr_t)f.reps[v5].t.ptr == 0x200000);
    CHECK((uintptr_t)f.reps[sel].t.ptr == 0x200000 + 2 * frame);
    CHECK((uintptr_t)f.reps[sq].t.ptr == 0x200000 + 2 * frame);
    fini(&f);
}

/* Views and Concat in place: a view of a Concat input keeps that input out of the Concat's
 * memory (the Concat copies it); a view of a Concat output follows the output into its root. */
static void test_concat_interplay(void)
{
    kiln_dtype h = KILN_DT_FLOAT16;
    {
        fixture f;
        init(&f);
        int a = rep(&f, "f", h, 4, (int64_t[]){1, C, H, W}, KILN_LAYOUT_ROW_MAJOR, REP_ARENA, 0, 2);
        step(&f, "relu", 0, NULL, a);
        int b = rep(&f, "fa", h, 4, (int64_t[]){1, C, H, W}, KILN_LAYOUT_ROW_MAJOR, REP_ARENA, 1, 2);
        step(&f, "add", 1, (int[]){a}, b);
        int c = rep(&f, "fc", h, 4, (int64_t[]){1, 2 * C, H, W}, KILN_LAYOUT_ROW_MAJOR, REP_ARENA, 2, 3);
        int s = step(&f, "cat", 2, (int[]){a, b}, c);
        /* now a view of 'f' (a Concat input) and one of 'fc' (its output) */
        int vf = rep(&f, "f5", h, 5, (int64_t[]){1, 1, C, H, W}, KILN_LAYOUT_ROW_MAJOR, REP_ARENA, -1, 4);
        f.reps[vf].alias_of = a; /* as kiln__context_view_alias leaves it */
        f.reps[vf].first = 0;
        kiln__context_alias_concats(&f.ctx);
        CHECK(!f.steps[s].skip && f.reps[a].alias_of < 0); /* 'f' has a view: it stays where it is */
        CHECK(f.reps[b].alias_of == c);                      /* the other input still goes in place */
        CHECK(f.reps[a].last == 4);
        fini(&f);
    }
    {
        /* RRDB-like chain c1 = cat(f, fa) inside c2, with a view of c1 */
        fixture f;
        init(&f);
        int a = rep(&f, "f", h, 4, (int64_t[]){1, C, H, W}, KILN_LAYOUT_ROW_MAJOR, REP_ARENA, 0, 3);
        step(&f, "relu", 0, NULL, a);
        int b = rep(&f, "fa", h, 4, (int64_t[]){1, C, H, W}, KILN_LAYOUT_ROW_MAJOR, REP_ARENA, 1, 3);
        step(&f, "add", 1, (int[]){a}, b);
        int c1 = rep(&f, "fc", h, 4, (int64_t[]){1, 2 * C, H, W}, KILN_LAYOUT_ROW_MAJOR, REP_ARENA, 2, 2);
        int s1 = step(&f, "cat", 2, (int[]){a, b}, c1);
        /* the view: 'fc' seen as 5-D (a Reshape node reading 'fc' does not exist in the net;
         * the alias is set up as the hook leaves it) */
        int v = rep(&f, "f5", h, 5, (int64_t[]){1, 2, C, H, W}, KILN_LAYOUT_ROW_MAJOR, REP_ARENA, 2, 9);
        f.reps[v].alias_of = c1;
        int x2 = rep(&f, "o", h, 4, (int64_t[]){1, C, H, W}, KILN_LAYOUT_ROW_MAJOR, REP_ARENA, 3, 4);
        step(&f, "relu_odd", 0, NULL, x2);
        int c2 = rep(&f, "fc3", h, 4, (int64_t[]){1, 3 * C, H, W}, KILN_LAYOUT_ROW_MAJOR, REP_ARENA, 4, 5);
        int s2 = step(&f, "cat3", 3, (int[]){a, b, x2}, c2);
        kiln__context_alias_concats(&f.ctx);
        CHECK(f.steps[s2].skip);
        CHECK(f.steps[s1].skip && f.reps[c1].alias_of == c2);
        CHECK(f.reps[c2].last == 9); /* the view of c1 keeps the root alive */
        f.reps[c2].t.ptr = (void *)(uintptr_t)0x300000;
        kiln__context_place_aliases(&f.ctx);
        CHECK((uintptr_t)f.reps[v].t.ptr == 0x300000);
        fini(&f);
    }
}

static void test_refusals(void)
{
    kiln_dtype h = KILN_DT_FLOAT16;
    bool ok = false;
    {
        /* a constant source: copy (constants are per-resolution buffers with their own lifetime rules) */
        fixture f;
        init(&f);
        rep(&f, "f", h, 4, (int64_t[]){T, C, H, W}, KILN_LAYOUT_NHWC, REP_CONST, -2, -2);
        view(&f, "view5", "f5", 5, (int64_t[]){1, T, C, H, W}, h, KILN_LAYOUT_ROW_MAJOR, &ok);
        CHECK(!ok);
        fini(&f);
    }
    {
        /* another dtype only: no source */
        fixture f;
        init(&f);
        rep(&f, "f", KILN_DT_FLOAT, 4, (int64_t[]){T, C, H, W}, KILN_LAYOUT_NHWC, REP_ARENA, 0, 0);
        view(&f, "view5", "f5", 5, (int64_t[]){1, T, C, H, W}, h, KILN_LAYOUT_ROW_MAJOR, &ok);
        CHECK(!ok);
        fini(&f);
    }
    {
        /* odd frame (3x3x5 fp16 = 90 bytes): select off the 256-byte grid copies; the view itself is fine */
        fixture f;
        init(&f);
        rep(&f, "o", h, 4, (int64_t[]){T, 3, 3, 5}, KILN_LAYOUT_NHWC, REP_ARENA, 0, 0);
        int v = view(&f, "view5_odd", "o5", 5, (int64_t[]){1, T, 3, 3, 5}, h, KILN_LAYOUT_ROW_MAJOR, &ok);
        CHECK(ok && f.reps[v].alias_off == 0);
        view(&f, "sel_odd", "o5s", 4, (int64_t[]){1, 3, 3, 5}, h, KILN_LAYOUT_NHWC, &ok);
        CHECK(!ok);
        fini(&f);
    }
    {
        /* a caller's input: offset 0 yes (its address is patched at enqueue), an offset into it no */
        fixture f;
        init(&f);
        int x = rep(&f, "x", h, 5, (int64_t[]){1, T, C, H, W}, KILN_LAYOUT_ROW_MAJOR, REP_USER_IN, -1, -1);
        int xv = view(&f, "xview", "xv", 5, (int64_t[]){1, T, C, H, W}, h, KILN_LAYOUT_ROW_MAJOR, &ok);
        CHECK(ok && f.reps[xv].alias_of == x && f.reps[xv].first == -1);
        view(&f, "xsel", "xc", 4, (int64_t[]){1, C, H, W}, h, KILN_LAYOUT_NHWC, &ok);
        CHECK(!ok); /* 512 bytes in: on the grid, but inside the caller's buffer */
        fini(&f);
    }
    {
        /* the switch */
        fixture f;
        init(&f);
        rep(&f, "f", h, 4, (int64_t[]){T, C, H, W}, KILN_LAYOUT_NHWC, REP_ARENA, 0, 0);
        setenv("KILN_NO_VIEW_ALIAS", "1", 1);
        CHECK(!kiln__view_alias_enabled());
        view(&f, "view5", "f5", 5, (int64_t[]){1, T, C, H, W}, h, KILN_LAYOUT_ROW_MAJOR, &ok);
        CHECK(!ok);
        setenv("KILN_NO_VIEW_ALIAS", "0", 1);
        CHECK(kiln__view_alias_enabled());
        unsetenv("KILN_NO_VIEW_ALIAS");
        f.ctx.n_reps--;
        view(&f, "view5", "f5", 5, (int64_t[]){1, T, C, H, W}, h, KILN_LAYOUT_ROW_MAJOR, &ok);
        CHECK(ok);
        /* Add is no view op */
        CHECK(!kiln__view_alias_candidate(&f.ctx, node_named("add")));
        fini(&f);
    }
}

/* The producer side: Expand laid out so that the reshape after it is a packed NHWC alias. */
static void test_producer_layout(void)
{
    kiln_dtype h = KILN_DT_FLOAT16;
    /* the pure part: (1, T, C, H, W) strides under which the view (1, T*C, H, W) is NHWC */
    kiln_cuda_tensor u = tensor(h, 4, (int64_t[]){1, T * C, H, W}, KILN_LAYOUT_NHWC);
    kiln_cuda_tensor p = tensor(h, 5, (int64_t[]){1, T, C, H, W}, KILN_LAYOUT_ROW_MAJOR);
    CHECK(kiln__view_producer_strides(&u, &p) && strides_are(&p, (int64_t[]){0, C, 1, W * T * C, T * C}));
    kiln_cuda_tensor back = shape_only(h, 4, (int64_t[]){1, T * C, H, W});
    CHECK(kiln__view_reshape(&p, &back) && !memcmp(back.strides + 1, u.strides + 1, sizeof(int64_t) * 3));
    for (int d = 0; d < 5; d++) CHECK(p.strides[d] > 0); /* unit dims too: reformats refuse <= 0 */
    /* a view that splits NHWC's channel run across non-adjacent producer dims: none */
    kiln_cuda_tensor q = tensor(h, 4, (int64_t[]){1, C, H * W, 1}, KILN_LAYOUT_ROW_MAJOR);
    kiln_cuda_tensor u2 = tensor(h, 4, (int64_t[]){1, C * H, W, 1}, KILN_LAYOUT_NHWC);
    CHECK(!kiln__view_producer_strides(&u2, &q));

    /* the context side needs an engine: NHWC, every node on the GPU in fp16 */
    static kiln_engine eng;
    static kiln_layer_plan plan[64];
    memset(&eng, 0, sizeof eng);
    for (int i = 0; i < 64; i++) plan[i] = (kiln_layer_plan){.on_gpu = 1, .compute = KILN_DT_FLOAT16};
    eng.hdr.layout = KILN_LAYOUT_NHWC;
    eng.plan = plan;
    CHECK(net->n_nodes <= 64);
    fixture f;
    init(&f);
    f.ctx.eng = &eng;
    int tv = tensor_index("pv"), tv2 = tensor_index("pv2");
    f.vals[tv].dtype = f.vals[tv2].dtype = KILN_DT_FLOAT;
    f.vals[tv].shape = f.vals[tv2].shape = kiln__shape_of(4, (int64_t[]){1, T * C, H, W});
    int64_t d5[5] = {1, T, C, H, W};
    int e = rep(&f, "pe", h, 5, d5, KILN_LAYOUT_ROW_MAJOR, REP_ARENA, 0, 0);
    kiln__context_view_producer_layout(&f.ctx, node_idx("expand"), e);
#ifdef KILN_HAVE_CUDA
    CHECK(strides_are(&f.reps[e].t, (int64_t[]){0, C, 1, W * T * C, T * C}));
    /* and the view then aliases it, packed NHWC */
    bool ok = false;
    int v = view(&f, "pview", "pv", 4, (int64_t[]){1, T * C, H, W}, h, KILN_LAYOUT_NHWC, &ok);
    kiln_cuda_tensor want = tensor(h, 4, (int64_t[]){1, T * C, H, W}, KILN_LAYOUT_NHWC);
    CHECK(ok && f.reps[v].alias_of == e && !memcmp(f.reps[v].t.strides, want.strides, sizeof(int64_t) * 4));
#else
    /* no GPU backend: the reader has no GPU op, nothing changes */
    CHECK(strides_are(&f.reps[e].t, (int64_t[]){0, T * C * H * W / T, H * W, W, 1}));
#endif
    /* read twice (Reshape and Mul): keeps its layout */
    int e2 = rep(&f, "pe2", h, 5, d5, KILN_LAYOUT_ROW_MAJOR, REP_ARENA, 1, 1);
    kiln__context_view_producer_layout(&f.ctx, node_idx("expand2"), e2);
    CHECK(strides_are(&f.reps[e2].t, (int64_t[]){0, C * H * W, H * W, W, 1}));
    /* reader pinned to fp32: no alias possible, no change */
    int e3 = rep(&f, "pe", h, 5, d5, KILN_LAYOUT_ROW_MAJOR, REP_ARENA, 2, 2);
    plan[node_idx("pview")].compute = KILN_DT_FLOAT;
    kiln__context_view_producer_layout(&f.ctx, node_idx("expand"), e3);
    CHECK(strides_are(&f.reps[e3].t, (int64_t[]){0, C * H * W, H * W, W, 1}));
    plan[node_idx("pview")].compute = KILN_DT_FLOAT16;
    /* a row-major engine: the reader wants row-major, which the plain layout already gives */
    eng.hdr.layout = KILN_LAYOUT_ROW_MAJOR;
    int e4 = rep(&f, "pe", h, 5, d5, KILN_LAYOUT_ROW_MAJOR, REP_ARENA, 3, 3);
    kiln__context_view_producer_layout(&f.ctx, node_idx("expand"), e4);
    CHECK(strides_are(&f.reps[e4].t, (int64_t[]){0, C * H * W, H * W, W, 1}));
    eng.hdr.layout = KILN_LAYOUT_NHWC;
    /* the switch */
    setenv("KILN_NO_VIEW_ALIAS", "1", 1);
    int e5 = rep(&f, "pe", h, 5, d5, KILN_LAYOUT_ROW_MAJOR, REP_ARENA, 4, 4);
    kiln__context_view_producer_layout(&f.ctx, node_idx("expand"), e5);
    CHECK(strides_are(&f.reps[e5].t, (int64_t[]){0, C * H * W, H * W, W, 1}));
    unsetenv("KILN_NO_VIEW_ALIAS");
    /* not an Expand */
    int e6 = rep(&f, "fa", h, 4, (int64_t[]){T, C, H, W}, KILN_LAYOUT_NHWC, REP_ARENA, 5, 5);
    kiln_cuda_tensor before = f.reps[e6].t;
    kiln__context_view_producer_layout(&f.ctx, node_idx("add"), e6);
    CHECK(!memcmp(&before, &f.reps[e6].t, sizeof before));
    fini(&f);
}

int main(void)
{
    test_reshape_strides();
    test_select_slice();
    make_net();
    test_nodes();
    test_edvr_chain();
    test_concat_interplay();
    test_refusals();
    test_producer_layout();
    kiln_network_free(net);
    return TEST_SUMMARY("test_view_alias");
}
