/*
 * GPU ops of the resize family: Resize and Upsample (k_resize.cu), and
 * GridSample (2 or 3 spatial dims; its schema lives in the sampling family).
 *
 * Output dims, per-axis scales and the region of interest come from the
 * schema's own kiln__resize_geometry, fed with the host values of roi /
 * scales / sizes, so the GPU and the CPU reference agree on every opset's
 * rules. Those inputs must be known on the host (constants or shape
 * computations); otherwise the node stays on the CPU.
 */
#include "cuda_backend.h"
#include "../ir/ops_resize.h"
#include "../ir/ops_sampling.h"
#include <string.h>

/* Keep in step with k_resize.cu. */
#define KRS_MAXR 8
enum { KRS_NEAREST, KRS_LINEAR, KRS_CUBIC };
enum { KRS_HALF_PIXEL, KRS_HALF_PIXEL_SYMMETRIC, KRS_PYTORCH_HALF_PIXEL, KRS_ALIGN_CORNERS, KRS_ASYMMETRIC,
       KRS_TF_HALF_PIXEL_FOR_NN, KRS_TF_CROP_AND_RESIZE };
enum { KRS_ROUND_PREFER_FLOOR, KRS_ROUND_PREFER_CEIL, KRS_FLOOR, KRS_CEIL, KRS_SIMPLE };
typedef struct krs_axis {
    double scale, roi_s, roi_e;
    int64_t in_len, out_len;
    int resized;
    int taps;
} krs_axis;
typedef struct krs_args {
    int mode, ctm, nearest, exclude_outside, antialias;
    double cubic_a;
    float extrapolation;
    uint64_t extrap_bits;
    int dt, es;
    int rank;
    const void *x;
    int64_t xstr[KRS_MAXR];
    void *y;
    int64_t ystr[KRS_MAXR];
    krs_axis ax[KRS_MAXR];
    void *ws;
    size_t ws_bytes;
} krs_args;
int kiln__krs_plan(krs_args *a);
size_t kiln__krs_workspace(const krs_args *a);
int kiln__krs_resize(const krs_args *a, void *stream);

enum { KGS_NEAREST, KGS_LINEAR, KGS_CUBIC };
enum { KGS_ZEROS, KGS_BORDER, KGS_REFLECTION };
typedef struct kgs_args {
    int mode, padding, align_corners;
    int dt;
    int rank;
    const void *x;
    int64_t xdims[5], xstr[5];
    const void *grid;
    int64_t gstr[5];
    void *y;
    int64_t ydims[5], ystr[5];
} kgs_args;
int kiln__kgs_gridsample(const kgs_args *a, void *stream);

_Static_assert(KRS_NEAREST == (int)KILN_RESIZE_NEAREST && KRS_LINEAR == (int)KILN_RESIZE_LINEAR &&
                   KRS_CUBIC == (int)KILN_RESIZE_CUBIC,
               "k_resize.cu modes follow kiln_resize_mode");
_Static_assert(KRS_HALF_PIXEL == (int)KILN_RESIZE_CTM_HALF_PIXEL &&
                   KRS_HALF_PIXEL_SYMMETRIC == (int)KILN_RESIZE_CTM_HALF_PIXEL_SYMMETRIC &&
                   KRS_PYTORCH_HALF_PIXEL == (int)KILN_RESIZE_CTM_PYTORCH_HALF_PIXEL &&
                   KRS_ALIGN_CORNERS == (int)KILN_RESIZE_CTM_ALIGN_CORNERS &&
                   KRS_ASYMMETRIC == (int)KILN_RESIZE_CTM_ASYMMETRIC &&
                   KRS_TF_HALF_PIXEL_FOR_NN == (int)KILN_RESIZE_CTM_TF_HALF_PIXEL_FOR_NN &&
                   KRS_TF_CROP_AND_RESIZE == (int)KILN_RESIZE_CTM_TF_CROP_AND_RESIZE,
               "k_resize.cu transformations follow kiln_resize_ctm");
_Static_assert(KRS_ROUND_PREFER_FLOOR == (int)KILN_RESIZE_NEAREST_ROUND_PREFER_FLOOR &&
                   KRS_ROUND_PREFER_CEIL == (int)KILN_RESIZE_NEAREST_ROUND_PREFER_CEIL &&
                   KRS_FLOOR == (int)KILN_RESIZE_NEAREST_FLOOR && KRS_CEIL == (int)KILN_RESIZE_NEAREST_CEIL &&
                   KRS_SIMPLE == (int)KILN_RESIZE_NEAREST_SIMPLE,
               "k_resize.cu nearest modes follow kiln_resize_nearest");
_Static_assert(KGS_NEAREST == (int)KILN_GRIDSAMPLE_NEAREST && KGS_LINEAR == (int)KILN_GRIDSAMPLE_LINEAR &&
                   KGS_CUBIC == (int)KILN_GRIDSAMPLE_CUBIC && KGS_ZEROS == (int)KILN_GRIDSAMPLE_ZEROS &&
                   KGS_BORDER == (int)KILN_GRIDSAMPLE_BORDER && KGS_REFLECTION == (int)KILN_GRIDSAMPLE_REFLECTION,
               "k_resize.cu GridSample codes follow ops_sampling.h");

#define MAX_IN 8

static bool is_float(kiln_dtype t) { return t == KILN_DT_FLOAT || t == KILN_DT_FLOAT16; }

static bool elem_ok(kiln_dtype t)
{
    size_t s = kiln_dtype_size(t);
    return t != KILN_DT_STRING && t != KILN_DT_UNDEFINED && (s == 1 || s == 2 || s == 4 || s == 8);
}

static bool has_input(const kiln_node *node, int i) { return i >= 0 && i < node->n_in && node->in[i] >= 0; }

/* Statically known to have no elements (an omitted roi / scales written as an empty tensor). */
static bool is_empty(const kiln_value *v)
{
    return v->shape.rank >= 0 && kiln__shape_is_const(&v->shape) && kiln__shape_numel(&v->shape) == 0;
}

static bool known_on_host(const kiln_value *v) { return v->data || v->symval_n > 0; }

/* The resize parameter inputs this node uses are known on the host. */
static bool host_inputs_ok(const kiln_node *node, const kiln_resize_params *p, const kiln_value *const *in)
{
    int slots[3] = {p->scales_input, p->sizes_input,
                    (p->ctm == KILN_RESIZE_CTM_TF_CROP_AND_RESIZE && !p->upsample) ? p->roi_input : -1};
    for (int k = 0; k < 3; k++) {
        int i = slots[k];
        if (!has_input(node, i) || !in[i]) continue;
        if (!is_empty(in[i]) && !known_on_host(in[i])) return false;
    }
    return true;
}

static bool supports_resize(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    const kiln_resize_params *p = node->params;
    if (!p || node->n_in > MAX_IN || !in[0] || out[0].dtype != in[0]->dtype) return false;
    int r = in[0]->shape.rank;
    if (r == 0 || r > KRS_MAXR) return false;
    if (p->mode == KILN_RESIZE_NEAREST ? !elem_ok(in[0]->dtype) : !is_float(in[0]->dtype)) return false;
    return host_inputs_ok(node, p, in);
}

/* A shape-only stand-in for an input not known on the host (its contents unused). */
static void shape_value(const kiln_cuda_tensor *t, kiln_value *v)
{
    memset(v, 0, sizeof *v);
    v->dtype = t->dtype;
    v->shape = kiln__shape_of(t->rank, t->dims);
}

/* Everything kiln__krs_resize needs but the workspace. */
static kiln_status resize_setup(const kiln_cuda_launch *l, krs_args *a, kiln_err *err)
{
    const kiln_node *node = l->node;
    const kiln_resize_params *p = l->params;
    const kiln_cuda_tensor *x = &l->in[0], *y = &l->out[0];
    if (!p || node->n_in > MAX_IN)
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): attributes not parsed", node->name, node->op_type);
    int r = x->rank;
    if (r < 1 || r > KRS_MAXR || y->rank != r)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): rank %d not supported on the GPU", node->name,
                          node->op_type, r);
    if (y->dtype != x->dtype || (p->mode == KILN_RESIZE_NEAREST ? !elem_ok(x->dtype) : !is_float(x->dtype)))
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): type %s not supported on the GPU", node->name,
                          node->op_type, kiln_dtype_name(x->dtype));
    kiln_value stand[MAX_IN];
    const kiln_value *vin[MAX_IN];
    for (int i = 0; i < node->n_in; i++) {
        vin[i] = NULL;
        if (!has_input(node, i)) continue;
        if (i > 0 && l->host[i]) {
            vin[i] = l->host[i];
            continue;
        }
        shape_value(&l->in[i], &stand[i]);
        vin[i] = &stand[i];
    }
    int need[3] = {p->scales_input, p->sizes_input,
                   (p->ctm == KILN_RESIZE_CTM_TF_CROP_AND_RESIZE && !p->upsample) ? p->roi_input : -1};
    for (int k = 0; k < 3; k++) {
        int i = need[k];
        if (i < 1 || i >= node->n_in || !vin[i] || vin[i]->data || is_empty(vin[i])) continue;
        return kiln__fail(err, KILN_ERR_UNSUPPORTED,
                          "node '%s' (%s): input %d must be known on the host for the GPU kernel", node->name,
                          node->op_type, i);
    }
    int64_t out_dims[KILN_MAX_DIMS];
    double scales[KILN_MAX_DIMS], roi[2 * KILN_MAX_DIMS];
    kiln_status s = kiln__resize_geometry(node, p, vin, r, x->dims, out_dims, scales, roi, err);
    if (s) return s;
    int64_t total = 1;
    for (int i = 0; i < r; i++) {
        if (y->dims[i] != out_dims[i])
            return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): output dim %d is %lld, geometry says %lld",
                              node->name, node->op_type, i, (long long)y->dims[i], (long long)out_dims[i]);
        total *= out_dims[i];
    }
    for (int i = 0; i < r && total > 0; i++)
        if (x->dims[i] == 0)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): input dim %d is 0", node->name, node->op_type, i);
    memset(a, 0, sizeof *a);
    a->mode = (int)p->mode;
    a->ctm = (int)p->ctm;
    a->nearest = (int)p->nearest;
    a->exclude_outside = p->exclude_outside;
    a->antialias = p->antialias;
    a->cubic_a = p->cubic_a;
    a->extrapolation = p->extrapolation;
    a->dt = x->dtype;
    a->es = (int)kiln_dtype_size(x->dtype);
    /* The extrapolation value in X's own type, for the bit-exact nearest gather. */
    kiln_value ev;
    memset(&ev, 0, sizeof ev);
    ev.dtype = x->dtype;
    ev.data = &a->extrap_bits;
    if (x->dtype == KILN_DT_BOOL) a->extrap_bits = p->extrapolation != 0;
    else kiln__value_set_f64(&ev, 0, (double)p->extrapolation);
    a->rank = r;
    a->x = x->ptr;
    a->y = y->ptr;
    for (int i = 0; i < r; i++) {
        a->xstr[i] = x->strides[i];
        a->ystr[i] = y->strides[i];
        a->ax[i].scale = scales[i];
        a->ax[i].roi_s = roi[i];
        a->ax[i].roi_e = roi[r + i];
        a->ax[i].in_len = x->dims[i];
        a->ax[i].out_len = out_dims[i];
    }
    if (kiln__krs_plan(a))
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): antialiasing filter too wide for the GPU kernel",
                          node->name, node->op_type);
    return KILN_OK;
}

static size_t resize_workspace(const kiln_cuda_launch *l)
{
    krs_args a;
    kiln_err err;
    memset(&err, 0, sizeof err);
    if (resize_setup(l, &a, &err)) return 0;
    return kiln__krs_workspace(&a);
}

static kiln_status launch_resize(const kiln_cuda_launch *l, kiln_err *err)
{
    krs_args a;
    kiln_status s = resize_setup(l, &a, err);
    if (s) return s;
    size_t need = kiln__krs_workspace(&a);
    if (need && (!l->ex->workspace || l->ex->workspace_bytes < need))
        return kiln__fail(err, KILN_ERR_LIMIT, "node '%s' (%s): needs %zu bytes of workspace, has %zu", l->node->name,
                          l->node->op_type, need, l->ex->workspace_bytes);
    a.ws = l->ex->workspace;
    a.ws_bytes = l->ex->workspace_bytes;
    return kiln__cuda_check(kiln__krs_resize(&a, l->ex->stream), l->node, "resize kernel", err);
}

/* ---- GridSample ---- */

static bool supports_gridsample(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    if (!node->params || node->n_in != 2 || !in[0] || !in[1]) return false;
    kiln_dtype dt = in[0]->dtype;
    int r = in[0]->shape.rank;
    return is_float(dt) && in[1]->dtype == dt && out[0].dtype == dt && (r == 4 || r == 5) && in[1]->shape.rank == r;
}

static kiln_status launch_gridsample(const kiln_cuda_launch *l, kiln_err *err)
{
    const kiln_node *node = l->node;
    const kiln_gridsample_params *p = l->params;
    const kiln_cuda_tensor *x = &l->in[0], *g = &l->in[1], *y = &l->out[0];
    if (!p) return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (GridSample): attributes not parsed", node->name);
    int r = x->rank, sp = r - 2;
    if ((r != 4 && r != 5) || g->rank != r || y->rank != r || !is_float(x->dtype) || g->dtype != x->dtype ||
        y->dtype != x->dtype)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (GridSample): only 4-D and 5-D float inputs run on the GPU",
                          node->name);
    bool ok = g->dims[0] == x->dims[0] && g->dims[r - 1] == sp && y->dims[0] == x->dims[0] && y->dims[1] == x->dims[1];
    for (int k = 0; k < sp; k++) ok = ok && y->dims[2 + k] == g->dims[1 + k];
    if (!ok)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (GridSample): X, grid and output shapes do not match",
                          node->name);
    int64_t total = 1;
    for (int i = 0; i < r; i++) total *= y->dims[i];
    for (int k = 0; k < sp && total > 0; k++)
        if (x->dims[2 + k] == 0)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (GridSample): X has an empty spatial dim", node->name);
    kgs_args a;
    memset(&a, 0, sizeof a);
    a.mode = (int)p->mode;
    a.padding = (int)p->padding;
    a.align_corners = p->align_corners;
    a.dt = x->dtype;
    a.rank = r;
    a.x = x->ptr;
    a.grid = g->ptr;
    a.y = y->ptr;
    for (int i = 0; i < r; i++) {
        a.xdims[i] = x->dims[i];
        a.xstr[i] = x->strides[i];
        a.gstr[i] = g->strides[i];
        a.ydims[i] = y->dims[i];
        a.ystr[i] = y->strides[i];
    }
    return kiln__cuda_check(kiln__kgs_gridsample(&a, l->ex->stream), node, "grid sample kernel", err);
}

const kiln_cuda_op kiln__cuda_ops_resize[] = {
    {.op_type = "Resize", .domain = "", .supports = supports_resize, .workspace = resize_workspace,
     .launch = launch_resize},
    {.op_type = "Upsample", .domain = "", .supports = supports_resize, .workspace = resize_workspace,
     .launch = launch_resize},
    {.op_type = "GridSample", .domain = "", .supports = supports_gridsample, .launch = launch_gridsample},
    {0},
};
