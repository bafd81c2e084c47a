/*
 * Op schemas of the norm family: BatchNormalization, InstanceNormalization,
 * LayerNormalization, GroupNormalization, LpNormalization.
 */
#include "ops_norm.h"
#include "ops_util.h"
#include <math.h>
#include <string.h>

static kiln_status expect_float_input(const kiln_node *node, const kiln_value *v, const char *what, kiln_err *err)
{
    if (v && v->dtype && !kiln__dtype_is_float(v->dtype))
        return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (%s): %s must be a float type, got %s", node->name,
                          node->op_type, what, kiln_dtype_name(v->dtype));
    return KILN_OK;
}

static kiln_status parse_epsilon(const kiln_node *node, kiln_norm_params *p, float def, kiln_err *err)
{
    kiln_status s = kiln__attr_expect(node, "epsilon", KILN_ATTR_FLOAT, err);
    if (s) return s;
    p->epsilon = kiln__attr_float(node, "epsilon", def);
    if (!isfinite(p->epsilon) || p->epsilon < 0)
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): epsilon is %g", node->name, node->op_type,
                          (double)p->epsilon);
    return KILN_OK;
}

/* When `v` has a constant shape, its element count must be `want` (when want >= 0). */
static kiln_status check_count(const kiln_node *node, const kiln_value *v, const char *what, int64_t want, kiln_err *err)
{
    if (!v || want < 0 || v->shape.rank < 0 || !kiln__shape_is_const(&v->shape)) return KILN_OK;
    int64_t n = kiln__shape_numel(&v->shape);
    if (n != want)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): %s has %lld values, expected %lld", node->name,
                          node->op_type, what, (long long)n, (long long)want);
    return KILN_OK;
}

static int64_t const_dim(const kiln_value *x, int i)
{
    if (x->shape.rank <= i || !kiln__dim_is_const(x->shape.d[i])) return -1;
    return x->shape.d[i].add;
}

/* ---- BatchNormalization ---- */

static kiln_status batchnorm_parse(const kiln_node *node, void *params, kiln_err *err)
{
    kiln_norm_params *p = params;
    kiln_status s = parse_epsilon(node, p, 1e-5f, err);
    if (s) return s;
    if ((s = kiln__attr_expect(node, "momentum", KILN_ATTR_FLOAT, err))) return s;
    if ((s = kiln__attr_expect(node, "training_mode", KILN_ATTR_INT, err))) return s;
    if ((s = kiln__attr_expect(node, "spatial", KILN_ATTR_INT, err))) return s;
    p->momentum = kiln__attr_float(node, "momentum", 0.9f);
    p->spatial = node->opset >= 9 ? 1 : kiln__attr_int(node, "spatial", 1) != 0;
    p->training = node->opset >= 14 && kiln__attr_int(node, "training_mode", 0) != 0;
    /* Before opset 14 extra outputs meant training; only inference is done here. */
    int n_out = 0;
    for (int i = 0; i < node->n_out; i++) n_out += node->out[i] >= 0;
    if (node->opset < 14 && n_out > 1)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED,
                          "node '%s' (BatchNormalization-%lld): training outputs (mean, var, saved_mean, saved_var) are "
                          "not supported; only inference (one output)",
                          node->name, (long long)node->opset);
    if (node->opset >= 14 && !p->training && n_out > 1)
        return kiln__fail(err, KILN_ERR_INVALID_ARG,
                          "node '%s' (BatchNormalization): running_mean / running_var outputs need training_mode=1",
                          node->name);
    return KILN_OK;
}

static kiln_status batchnorm_infer(const kiln_node *node, const void *params, const kiln_value *const *in,
                                   kiln_value *out, kiln_err *err)
{
    const kiln_norm_params *p = params;
    const kiln_value *x = in[0];
    static const char *const names[] = {"X", "scale", "B", "input_mean", "input_var"};
    for (int i = 0; i < 5; i++) {
        if (!in[i])
            return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (BatchNormalization): input %s is missing", node->name,
                              names[i]);
        kiln_status s = expect_float_input(node, in[i], names[i], err);
        if (s) return s;
    }
    if (x->shape.rank >= 0 && x->shape.rank < 2)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (BatchNormalization): X has %d dims, needs at least 2 (N, C, ...)",
                          node->name, x->shape.rank);
    int64_t want = -1;
    if (x->shape.rank >= 2) {
        if (p->spatial) {
            want = const_dim(x, 1);
        } else {
            want = 1;
            for (int i = 1; i < x->shape.rank && want >= 0; i++) {
                int64_t d = const_dim(x, i);
                want = d < 0 ? -1 : want * d;
            }
        }
    }
    for (int i = 1; i < 5; i++) {
        kiln_status s = check_count(node, in[i], names[i], want, err);
        if (s) return s;
    }
    kiln__value_set_type(&out[0], x->dtype, &x->shape);
    for (int i = 1; i < node->n_out && i < 3; i++) {
        if (node->out[i] < 0) continue;
        kiln_shape cs;
        memset(&cs, 0, sizeof cs);
        cs.rank = 1;
        cs.d[0] = x->shape.rank >= 2 ? x->shape.d[1] : kiln__dim_unknown();
        kiln__value_set_type(&out[i], in[i + 2]->dtype, &cs);
    }
    return KILN_OK;
}

/* ---- InstanceNormalization ---- */

static kiln_status instnorm_parse(const kiln_node *node, void *params, kiln_err *err)
{
    return parse_epsilon(node, params, 1e-5f, err);
}

static kiln_status instnorm_infer(const kiln_node *node, const void *params, const kiln_value *const *in,
                                  kiln_value *out, kiln_err *err)
{
    const kiln_value *x = in[0];
    static const char *const names[] = {"input", "scale", "B"};
    for (int i = 0; i < 3; i++) {
        if (!in[i])
            return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (InstanceNormalization): input %s is missing",
                              node->name, names[i]);
        kiln_status s = expect_float_input(node, in[i], names[i], err);
        if (s) return s;
    }
    if (x->shape.rank >= 0 && x->shape.rank < 2)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (InstanceNormalization): input has %d dims, needs at least 2",
                          node->name, x->shape.rank);
    int64_t c = x->shape.rank >= 2 ? const_dim(x, 1) : -1;
    for (int i = 1; i < 3; i++) {
        kiln_status s = check_count(node, in[i], names[i], c, err);
        if (s) return s;
    }
    kiln__value_set_type(&out[0], x->dtype, &x->shape);
    return KILN_OK;
}

/* ---- LayerNormalization ---- */

static kiln_status parse_stash(const kiln_node *node, kiln_norm_params *p, kiln_err *err)
{
    kiln_status s = kiln__attr_expect(node, "stash_type", KILN_ATTR_INT, err);
    if (s) return s;
    p->stash_type = kiln__attr_int(node, "stash_type", KILN_DT_FLOAT);
    int64_t t = p->stash_type;
    if (t != KILN_DT_FLOAT && t != KILN_DT_DOUBLE && t != KILN_DT_FLOAT16 && t != KILN_DT_BFLOAT16)
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): stash_type %lld is not a float type", node->name,
                          node->op_type, (long long)p->stash_type);
    return KILN_OK;
}

static kiln_status layernorm_parse(const kiln_node *node, void *params, kiln_err *err)
{
    kiln_norm_params *p = params;
    kiln_status s = parse_epsilon(node, p, 1e-5f, err);
    if (s) return s;
    if ((s = kiln__attr_expect(node, "axis", KILN_ATTR_INT, err))) return s;
    p->axis = kiln__attr_int(node, "axis", -1);
    return parse_stash(node, p, err);
}

/* `v` must broadcast unidirectionally to x's shape (right-aligned, dims 1 or equal). */
static kiln_status check_unidirectional(const kiln_node *node, const kiln_value *v, const char *what,
                                        const kiln_value *x, kiln_err *err)
{
    if (!v || v->shape.rank < 0 || x->shape.rank < 0) return KILN_OK;
    int r = x->shape.rank, vr = v->shape.rank;
    if (vr > r)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): %s has %d dims, X has %d", node->name, node->op_type, what,
                          vr, r);
    for (int i = 0; i < vr; i++) {
        kiln_dim a = v->shape.d[vr - 1 - i], b = x->shape.d[r - 1 - i];
        if (kiln__dim_is_const(a) && a.add == 1) continue;
        if (kiln__dim_is_const(a) && kiln__dim_is_const(b) && a.add != b.add)
            return kiln__fail(err, KILN_ERR_SHAPE,
                              "node '%s' (%s): %s dim %d is %lld, X's is %lld (must be 1 or equal)", node->name,
                              node->op_type, what, vr - 1 - i, (long long)a.add, (long long)b.add);
    }
    return KILN_OK;
}

static kiln_status layernorm_infer(const kiln_node *node, const void *params, const kiln_value *const *in,
                                   kiln_value *out, kiln_err *err)
{
    const kiln_norm_params *p = params;
    const kiln_value *x = in[0];
    if (!x || !in[1])
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (LayerNormalization): inputs X and Scale are required",
                          node->name);
    static const char *const names[] = {"X", "Scale", "B"};
    for (int i = 0; i < 3 && i < node->n_in; i++) {
        kiln_status s = expect_float_input(node, in[i], names[i], err);
        if (s) return s;
        if (i > 0 && (s = check_unidirectional(node, in[i], names[i], x, err))) return s;
    }
    int r = x->shape.rank;
    if (r >= 0 && (p->axis < -r || p->axis >= r || r == 0))
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (LayerNormalization): axis %lld is out of range for rank %d",
                          node->name, (long long)p->axis, r);
    kiln__value_set_type(&out[0], x->dtype, &x->shape);
    kiln_shape ms;
    memset(&ms, 0, sizeof ms);
    ms.rank = r;
    int axis = r >= 0 ? (int)(p->axis < 0 ? p->axis + r : p->axis) : 0;
    for (int i = 0; i < r; i++) ms.d[i] = i < axis ? x->shape.d[i] : kiln__dim_const(1);
    for (int i = 1; i < node->n_out && i < 3; i++)
        if (node->out[i] >= 0) kiln__value_set_type(&out[i], (kiln_dtype)p->stash_type, &ms);
    return KILN_OK;
}

/* ---- GroupNormalization ---- */

static kiln_status groupnorm_parse(const kiln_node *node, void *params, kiln_err *err)
{
    kiln_norm_params *p = params;
    kiln_status s = parse_epsilon(node, p, 1e-5f, err);
    if (s) return s;
    if ((s = kiln__attr_expect(node, "num_groups", KILN_ATTR_INT, err))) return s;
    if (!kiln__node_attr(node, "num_groups"))
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (GroupNormalization): attribute num_groups is required",
                          node->name);
    p->num_groups = kiln__attr_int(node, "num_groups", 1);
    if (p->num_groups < 1)
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (GroupNormalization): num_groups is %lld", node->name,
                          (long long)p->num_groups);
    /* Opset 18 scaled per group; 21 changed scale and bias to per channel. */
    p->group_scale = node->opset > 0 && node->opset < 21;
    return parse_stash(node, p, err);
}

static kiln_status groupnorm_infer(const kiln_node *node, const void *params, const kiln_value *const *in,
                                   kiln_value *out, kiln_err *err)
{
    const kiln_norm_params *p = params;
    const kiln_value *x = in[0];
    static const char *const names[] = {"X", "scale", "bias"};
    for (int i = 0; i < 3; i++) {
        if (!in[i])
            return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (GroupNormalization): input %s is missing", node->name,
                              names[i]);
        kiln_status s = expect_float_input(node, in[i], names[i], err);
        if (s) return s;
    }
    if (x->shape.rank >= 0 && x->shape.rank < 2)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (GroupNormalization): X has %d dims, needs at least 2", node->name,
                          x->shape.rank);
    int64_t c = x->shape.rank >= 2 ? const_dim(x, 1) : -1;
    if (c >= 0 && c % p->num_groups != 0)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (GroupNormalization): %lld channels do not split into %lld groups",
                          node->name, (long long)c, (long long)p->num_groups);
    for (int i = 1; i < 3; i++) {
        kiln_status s = check_count(node, in[i], names[i], p->group_scale ? p->num_groups : c, err);
        if (s) return s;
    }
    kiln__value_set_type(&out[0], x->dtype, &x->shape);
    return KILN_OK;
}

/* ---- LpNormalization ---- */

static kiln_status lpnorm_parse(const kiln_node *node, void *params, kiln_err *err)
{
    kiln_norm_params *p = params;
    kiln_status s;
    if ((s = kiln__attr_expect(node, "axis", KILN_ATTR_INT, err))) return s;
    if ((s = kiln__attr_expect(node, "p", KILN_ATTR_INT, err))) return s;
    p->axis = kiln__attr_int(node, "axis", -1);
    p->p = kiln__attr_int(node, "p", 2);
    if (p->p != 1 && p->p != 2)
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (LpNormalization): p is %lld, must be 1 or 2", node->name,
                          (long long)p->p);
    return KILN_OK;
}

static kiln_status lpnorm_infer(const kiln_node *node, const void *params, const kiln_value *const *in, kiln_value *out,
                                kiln_err *err)
{
    const kiln_norm_params *p = params;
    const kiln_value *x = in[0];
    kiln_status s = expect_float_input(node, x, "input", err);
    if (s) return s;
    int r = x->shape.rank;
    if (r >= 0 && (r == 0 || p->axis < -r || p->axis >= r))
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (LpNormalization): axis %lld is out of range for rank %d",
                          node->name, (long long)p->axis, r);
    kiln__value_set_type(&out[0], x->dtype, &x->shape);
    return KILN_OK;
}

const kiln_op_schema kiln__ops_norm[] = {
    {"BatchNormalization", "", 1, 5, 5, 1, 5, sizeof(kiln_norm_params), batchnorm_parse, batchnorm_infer},
    {"InstanceNormalization", "", 1, 3, 3, 1, 1, sizeof(kiln_norm_params), instnorm_parse, instnorm_infer},
    {"LayerNormalization", "", 17, 2, 3, 1, 3, sizeof(kiln_norm_params), layernorm_parse, layernorm_infer},
    {"GroupNormalization", "", 18, 3, 3, 1, 1, sizeof(kiln_norm_params), groupnorm_parse, groupnorm_infer},
    {"LpNormalization", "", 1, 1, 1, 1, 1, sizeof(kiln_norm_params), lpnorm_parse, lpnorm_infer},
    {0},
};
