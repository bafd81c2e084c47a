/*
 * The generic GPU op of plugin classes: maps kiln_cuda_op's supports /
 * tactic_count / workspace / launch onto the plugin's supports_format /
 * tactic_count / workspace_size / enqueue.
 *
 * Two kinds of nodes come here:
 *   - plugin nodes (no built-in schema): the instance is node->params;
 *   - nodes of a built-in op (e.g. ONNX DeformConv, which has kiln's schema
 *     and CPU kernel) for which a plugin class of that name exists: the
 *     instance is created from the node's attributes for each call (create
 *     must be cheap; it is host work only, so CUDA graph capture is fine).
 * The op is marked row_major, so the runtime hands it row-major tensors,
 * except per node in NHWC engines: when the class's supports_format accepts
 * NHWC at every 4-D float position (kiln__cuda_plugin_nhwc, asked by the
 * runtime's context), those positions come NHWC (channels-last strides) and
 * everything else row-major. The answer depends only on the class, the
 * instance, the compute type and the tensors' ranks and types, so a saved
 * engine resolves to the same layouts when it is loaded again. The op has no
 * `prepare`, so constant inputs arrive as device tensors in the node's compute
 * type (4-D float weights NHWC too when the node takes NHWC).
 */
#include "cuda_backend.h"
#include "../plugin/plugin.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IO 64

/* The class and instance of a node; *owned set when the caller must destroy it. */
static const kiln_plugin_class *node_instance(const kiln_node *n, const void **inst, void **owned, kiln_err *err)
{
    *owned = NULL;
    *inst = NULL;
    const kiln_plugin_class *c = kiln__plugin_schema_class(n->schema);
    if (c) {
        const kiln__plugin_params *p = n->params;
        if (!p || !p->inst) {
            if (err) kiln__fail(err, KILN_ERR_INTERNAL, "node '%s': plugin instance missing", n->name);
            return NULL;
        }
        *inst = p->inst;
        return c;
    }
    c = kiln__plugin_class_for_node(n);
    if (!c) {
        if (err) kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): no plugin class", n->name, n->op_type);
        return NULL;
    }
    kiln_err tmp;
    void *o = NULL;
    if (kiln__plugin_create_for_node(c, n, &o, err ? err : &tmp)) return NULL;
    *owned = o;
    *inst = o;
    return c;
}

static int32_t layout_of(const kiln_cuda_tensor *t)
{
    if (t->rank == 4 && t->strides[1] == 1 && t->dims[1] > 1 && t->strides[3] == t->dims[1]) return KILN_PLUGIN_LAYOUT_NHWC;
    return KILN_PLUGIN_LAYOUT_ROW_MAJOR;
}

static void to_tensor(const kiln_cuda_tensor *c, kiln_plugin_tensor *t)
{
    memset(t, 0, sizeof *t);
    /* an omitted input has rank 0 and no pointer; a present input may have a NULL pointer at
     * planning time (workspace sizes), so presence comes from the dtype */
    t->present = c->dtype != KILN_DT_UNDEFINED;
    t->data = c->ptr;
    t->dtype = (int32_t)c->dtype;
    t->rank = c->rank;
    for (int d = 0; d < c->rank && d < KILN_MAX_DIMS; d++) {
        t->dims[d] = c->dims[d];
        t->strides[d] = c->strides[d];
    }
    t->layout = layout_of(c);
}

static void tensors(const kiln_cuda_launch *l, kiln_plugin_tensor *ti, kiln_plugin_tensor *to)
{
    for (int i = 0; i < l->node->n_in && i < MAX_IO; i++) {
        if (l->node->in[i] < 0) memset(&ti[i], 0, sizeof ti[i]);
        else to_tensor(&l->in[i], &ti[i]);
    }
    for (int j = 0; j < l->node->n_out && j < MAX_IO; j++) {
        if (l->node->out[j] < 0) memset(&to[j], 0, sizeof to[j]);
        else to_tensor(&l->out[j], &to[j]);
    }
}

static bool is_float(kiln_dtype dt) { return dt == KILN_DT_FLOAT || dt == KILN_DT_FLOAT16 || dt == KILN_DT_DOUBLE || dt == KILN_DT_BFLOAT16; }

/* Asks supports_format position by position for one candidate: float positions in `fdt`, row-major. */
static bool accepts(const kiln_plugin_class *c, const void *inst, const kiln_node *n, const kiln_value *const *in, const int32_t *out_dt,
                    int32_t fdt)
{
    int ni = n->n_in, no = n->n_out;
    kiln_plugin_format f[2 * MAX_IO];
    for (int i = 0; i < ni; i++) {
        kiln_dtype dt = in[i] ? in[i]->dtype : KILN_DT_UNDEFINED;
        f[i] = (kiln_plugin_format){is_float(dt) ? fdt : (int32_t)dt, KILN_PLUGIN_LAYOUT_ROW_MAJOR};
    }
    for (int j = 0; j < no; j++)
        f[ni + j] = (kiln_plugin_format){is_float((kiln_dtype)out_dt[j]) ? fdt : out_dt[j], KILN_PLUGIN_LAYOUT_ROW_MAJOR};
    for (int pos = 0; pos < ni + no; pos++) {
        if (pos < ni && !in[pos]) continue; /* omitted input */
        if (c->supports_format) {
            if (c->supports_format(inst, pos, f, ni, no) != 1) return false;
        } else if (f[pos].dtype != KILN_PLUGIN_DT_FLOAT && (pos >= ni || is_float((kiln_dtype)f[pos].dtype))) {
            return false; /* default: FLOAT row-major only */
        }
    }
    return true;
}

static bool plugin_supports(const kiln_node *n, const kiln_value *const *in, const kiln_value *out0)
{
    if (n->n_in > MAX_IO || n->n_out > MAX_IO) return false;
    const void *inst;
    void *owned;
    const kiln_plugin_class *c = node_instance(n, &inst, &owned, NULL);
    if (!c) return false;
    bool ok = c->enqueue != NULL;
    int32_t idt[MAX_IO + 1] = {0}, odt[MAX_IO + 1] = {0};
    for (int i = 0; ok && i < n->n_in; i++) idt[i] = in[i] ? (int32_t)in[i]->dtype : 0;
    char msg[256];
    if (ok && c->get_output_types(inst, idt, n->n_in, odt, n->n_out, msg, sizeof msg) != KILN_PLUGIN_OK) ok = false;
    /* the engine's precision decides FLOAT or FLOAT16 after this question: both must be accepted */
    if (ok) ok = accepts(c, inst, n, in, odt, KILN_PLUGIN_DT_FLOAT) && accepts(c, inst, n, in, odt, KILN_PLUGIN_DT_FLOAT16);
    if (owned) c->destroy(owned);
    return ok;
}

static int plugin_tactic_count(const kiln_cuda_launch *l)
{
    const void *inst;
    void *owned;
    const kiln_plugin_class *c = node_instance(l->node, &inst, &owned, NULL);
    if (!c || !c->tactic_count || l->node->n_in > MAX_IO || l->node->n_out > MAX_IO) {
        if (owned) c->destroy(owned);
        return 1;
    }
    kiln_plugin_tensor ti[MAX_IO], to[MAX_IO];
    tensors(l, ti, to);
    int n = c->tactic_count(inst, ti, l->node->n_in, to, l->node->n_out);
    if (owned) c->destroy(owned);
    return n < 1 ? 1 : n > 64 ? 64 : n;
}

static size_t plugin_workspace(const kiln_cuda_launch *l)
{
    const void *inst;
    void *owned;
    const kiln_plugin_class *c = node_instance(l->node, &inst, &owned, NULL);
    if (!c || !c->workspace_size || l->node->n_in > MAX_IO || l->node->n_out > MAX_IO) {
        if (owned) c->destroy(owned);
        return 0;
    }
    kiln_plugin_tensor ti[MAX_IO], to[MAX_IO];
    tensors(l, ti, to);
    size_t ws = c->workspace_size(inst, ti, l->node->n_in, to, l->node->n_out, l->tactic);
    if (owned) c->destroy(owned);
    /* an absurd request (plugin bug) becomes an allocation failure reported by the runtime */
    return ws;
}

static kiln_status plugin_launch(const kiln_cuda_launch *l, kiln_err *err)
{
    const kiln_node *n = l->node;
    if (n->n_in > MAX_IO || n->n_out > MAX_IO) return kiln__fail(err, KILN_ERR_LIMIT, "node '%s': too many inputs/outputs", n->name);
    const void *inst;
    void *owned;
    const kiln_plugin_class *c = node_instance(n, &inst, &owned, err);
    if (!c) return err->msg[0] ? KILN_ERR_INTERNAL : kiln__fail(err, KILN_ERR_INTERNAL, "node '%s': no plugin", n->name);
    kiln_status s = KILN_OK;
    if (!c->enqueue) {
        char id[512];
        kiln__plugin_id_str(c, id, sizeof id);
        s = kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s': plugin %s has no enqueue (GPU) implementation", n->name, id);
    } else {
        kiln_plugin_tensor ti[MAX_IO], to[MAX_IO];
        tensors(l, ti, to);
        char msg[512] = "";
        int rc = c->enqueue(inst, ti, n->n_in, to, n->n_out, l->ex->workspace, l->ex->workspace_bytes, l->tactic, l->ex->stream, msg,
                            sizeof msg);
        msg[sizeof msg - 1] = 0;
        if (rc != KILN_PLUGIN_OK) s = kiln__plugin_fail(err, rc, n, c, "enqueue", msg);
    }
    if (owned) c->destroy(owned);
    return s;
}

static const kiln_cuda_op plugin_op = {
    .op_type = "",
    .domain = "",
    .supports = plugin_supports,
    .tactic_count = plugin_tactic_count,
    .workspace = plugin_workspace,
    .launch = plugin_launch,
    .row_major = true,
};

const kiln_cuda_op *kiln__cuda_plugin_op_find(const char *op_type);

const kiln_cuda_op *kiln__cuda_plugin_op_find(const char *op_type)
{
    return kiln__plugin_name_registered(op_type) ? &plugin_op : NULL;
}

static bool is_f32_f16(kiln_dtype dt) { return dt == KILN_DT_FLOAT || dt == KILN_DT_FLOAT16; }

bool kiln__cuda_plugin_nhwc(const kiln_cuda_op *op, const kiln_node *n, const kiln_value *vals, kiln_dtype compute);

/*
 * Whether plugin node n takes its 4-D float tensors NHWC in an NHWC engine whose float positions have
 * type `compute`: asks supports_format position by position (inputs, then outputs) for the combination
 * "4-D FLOAT/FLOAT16 tensors NHWC in `compute`, everything else row-major in its own type", the
 * combination the runtime would then hand over (its layout choice for 4-D floats). `vals` are the
 * context's values (indexed by tensor). No supports_format: no (FLOAT row-major only).
 */
bool kiln__cuda_plugin_nhwc(const kiln_cuda_op *op, const kiln_node *n, const kiln_value *vals, kiln_dtype compute)
{
    if (op != &plugin_op || !n || !vals || (compute != KILN_DT_FLOAT && compute != KILN_DT_FLOAT16)) return false;
    if (n->n_in > MAX_IO || n->n_out > MAX_IO) return false;
    const void *inst;
    void *owned;
    const kiln_plugin_class *c = node_instance(n, &inst, &owned, NULL);
    if (!c) return false;
    bool ok = c->supports_format != NULL && c->enqueue != NULL, any = false;
    int ni = n->n_in, no = n->n_out;
    kiln_plugin_format f[2 * MAX_IO];
    for (int pos = 0; ok && pos < ni + no; pos++) {
        int t = pos < ni ? n->in[pos] : n->out[pos - ni];
        f[pos] = (kiln_plugin_format){0, KILN_PLUGIN_LAYOUT_ROW_MAJOR};
        if (t < 0) continue;
        const kiln_value *v = &vals[t];
        bool fl = is_f32_f16(v->dtype);
        f[pos].dtype = fl ? (int32_t)compute : (int32_t)v->dtype;
        if (fl && v->shape.rank == 4) {
            f[pos].layout = KILN_PLUGIN_LAYOUT_NHWC;
            any = true;
        }
    }
    ok = ok && any; /* nothing 4-D: nothing to gain, keep the row-major contract */
    for (int pos = 0; ok && pos < ni + no; pos++) {
        int t = pos < ni ? n->in[pos] : n->out[pos - ni];
        if (t < 0) continue; /* omitted */
        if (c->supports_format(inst, pos, f, ni, no) != 1) ok = false;
    }
    if (owned) c->destroy(owned);
    return ok;
}
