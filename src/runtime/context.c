/*
 * Execution context. For each set of input shapes it resolves every tensor's
 * shape on the host (the ops' own shape inference), evaluates on the host what
 * depends only on shapes and constants, turns the rest into a list of steps
 * (GPU launches, reformats between precisions/layouts, CPU fallbacks), places
 * activations in one arena by lifetime, and captures the steps in a CUDA graph
 * that is replayed while shapes and addresses stay the same.
 */
#include "context.h"
#include "../cpu/cpu.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Host evaluation of nodes whose inputs are all known on the host is limited to small results. */
#define HOST_EVAL_MAX_BYTES (1 << 20)

static kiln_status ctx_fail(kiln_context *ctx, kiln_status s, const kiln_err *err)
{
    snprintf(ctx->last_error, sizeof ctx->last_error, "%s", err->msg[0] ? err->msg : kiln_status_str(s));
    kiln__set_last_error(ctx->last_error);
    return s;
}

static bool is_float(kiln_dtype dt) { return dt == KILN_DT_FLOAT || dt == KILN_DT_FLOAT16; }

static int input_index(const kiln_network *net, const char *name)
{
    for (int i = 0; i < net->n_inputs; i++)
        if (!strcmp(net->tensors[net->inputs[i]].name, name)) return i;
    return -1;
}

static int output_index(const kiln_network *net, const char *name)
{
    for (int i = 0; i < net->n_outputs; i++)
        if (!strcmp(net->tensors[net->outputs[i]].name, name)) return i;
    return -1;
}

static void io_names(const kiln_network *net, char *buf, size_t len)
{
    size_t pos = 0;
    buf[0] = 0;
    for (int i = 0; i < net->n_inputs && pos < len; i++)
        pos += (size_t)snprintf(buf + pos, len - pos, "%s'%s' (input)", pos ? ", " : "", net->tensors[net->inputs[i]].name);
    for (int i = 0; i < net->n_outputs && pos < len; i++)
        pos += (size_t)snprintf(buf + pos, len - pos, "%s'%s' (output)", pos ? ", " : "", net->tensors[net->outputs[i]].name);
}

static void free_resolution(kiln_context *ctx)
{
    if (ctx->vals)
        for (int t = 0; t < ctx->net->n_tensors; t++)
            if (ctx->owned[t]) free(ctx->vals[t].data);
    for (int r = 0; r < ctx->n_reps; r++)
        if (ctx->reps[r].where == REP_CONST && ctx->reps[r].first == -2) kiln__gpu_free(ctx->reps[r].t.ptr);
    for (int s = 0; s < ctx->n_steps; s++) {
        free(ctx->steps[s].in_reps);
        free(ctx->steps[s].out_reps);
    }
    ctx->n_steps = ctx->n_reps = 0;
    if (ctx->vals) memset(ctx->owned, 0, sizeof(bool) * (size_t)ctx->net->n_tensors);
    kiln__gpu_graph_destroy(ctx->graph);
    ctx->graph = NULL;
    ctx->resolved = false;
}

kiln_status kiln_context_create(kiln_engine *eng, kiln_context **out)
{
    if (!eng || !out) return KILN_ERR_INVALID_ARG;
    *out = NULL;
    kiln_err err = {{0}};
    kiln_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return KILN_ERR_OUT_OF_MEMORY;
    ctx->eng = eng;
    ctx->net = eng->net;
    kiln_network *net = eng->net;
    ctx->in_dims = calloc((size_t)net->n_inputs + 1, sizeof *ctx->in_dims);
    ctx->in_rank = calloc((size_t)net->n_inputs + 1, sizeof *ctx->in_rank);
    ctx->in_ptr = calloc((size_t)net->n_inputs + 1, sizeof(void *));
    ctx->out_ptr = calloc((size_t)net->n_outputs + 1, sizeof(void *));
    ctx->vals = calloc((size_t)net->n_tensors + 1, sizeof *ctx->vals);
    ctx->host_known = calloc((size_t)net->n_tensors + 1, sizeof(bool));
    ctx->owned = calloc((size_t)net->n_tensors + 1, sizeof(bool));
    ctx->use_graph = true;
    if (!ctx->in_dims || !ctx->in_rank || !ctx->in_ptr || !ctx->out_ptr || !ctx->vals || !ctx->host_known || !ctx->owned) {
        kiln_context_free(ctx);
        return KILN_ERR_OUT_OF_MEMORY;
    }
    /* default shapes: the declared ones when static, else the profile's opt */
    for (int i = 0; i < net->n_inputs; i++) {
        const kiln_tensor *t = &net->tensors[net->inputs[i]];
        ctx->in_rank[i] = t->v.shape.rank;
        for (int d = 0; d < t->v.shape.rank; d++)
            ctx->in_dims[i][d] = kiln__dim_is_const(t->v.shape.d[d]) ? t->v.shape.d[d].add : -1;
        for (int p = 0; p < eng->n_profiles; p++)
            if (!strcmp(eng->profiles[p].name, t->name))
                for (int d = 0; d < eng->profiles[p].rank && d < KILN_MAX_DIMS; d++) ctx->in_dims[i][d] = eng->profiles[p].opt[d];
    }
    kiln_status s = kiln__gpu_exec_create(&ctx->ex, NULL, &err);
    if (s) {
        kiln_context_free(ctx);
        kiln__set_last_error(err.msg);
        return s;
    }
    ctx->ex_ready = true;
    ctx->ex.precision = (kiln_precision)eng->hdr.precision;
    /* one Cast node per target type, used for reformats */
    if (kiln_network_create(&ctx->cast_net)) {
        kiln_context_free(ctx);
        return KILN_ERR_OUT_OF_MEMORY;
    }
    static const kiln_dtype targets[] = {KILN_DT_FLOAT, KILN_DT_FLOAT16, KILN_DT_INT64, KILN_DT_INT32, KILN_DT_BOOL,
                                         KILN_DT_UINT8, KILN_DT_INT8, KILN_DT_DOUBLE};
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        char oname[32];
        snprintf(oname, sizeof oname, "to_%d", (int)targets[i]);
        const char *in = "x", *o = oname;
        kiln_attr_value a = {.name = "to", .type = KILN_ATTR_INT, .i = targets[i]};
        kiln_network_add_node(ctx->cast_net, oname, "Cast", "", 1, &in, 1, &o, 1, &a);
    }
    *out = ctx;
    return KILN_OK;
}

void kiln_context_free(kiln_context *ctx)
{
    if (!ctx) return;
    free_resolution(ctx);
    for (int i = 0; i < ctx->n_events; i++) kiln__gpu_event_destroy(ctx->events[i]);
    free(ctx->events);
    kiln__gpu_free(ctx->arena);
    kiln__gpu_free(ctx->workspace);
    if (ctx->ex_ready) kiln__gpu_exec_destroy(&ctx->ex);
    kiln_network_free(ctx->cast_net);
    free(ctx->reps);
    free(ctx->steps);
    free(ctx->in_dims);
    free(ctx->in_rank);
    free(ctx->in_ptr);
    free(ctx->out_ptr);
    free(ctx->vals);
    free(ctx->host_known);
    free(ctx->owned);
    free(ctx);
}

const char *kiln_context_last_error(const kiln_context *ctx) { return ctx ? ctx->last_error : "no context"; }

static void range_text(const kiln_engine *eng, const kiln_network *net, char *buf, size_t len)
{
    size_t pos = 0;
    buf[0] = 0;
    for (int i = 0; i < net->n_inputs && pos < len; i++) {
        const kiln_tensor *t = &net->tensors[net->inputs[i]];
        char decl[256];
        kiln__shape_str(net, &t->v.shape, decl, sizeof decl);
        pos += (size_t)snprintf(buf + pos, len - pos, "%s'%s' %s", i ? "; " : "", t->name, decl);
        for (int p = 0; p < eng->n_profiles && pos < len; p++) {
            const kiln_shape_profile *pr = &eng->profiles[p];
            if (strcmp(pr->name, t->name)) continue;
            pos += (size_t)snprintf(buf + pos, len - pos, " from ");
            for (int d = 0; d < pr->rank && pos < len; d++) pos += (size_t)snprintf(buf + pos, len - pos, "%s%lld", d ? "x" : "", (long long)pr->min[d]);
            pos += (size_t)snprintf(buf + pos, len - pos, " to ");
            for (int d = 0; d < pr->rank && pos < len; d++) pos += (size_t)snprintf(buf + pos, len - pos, "%s%lld", d ? "x" : "", (long long)pr->max[d]);
        }
    }
}

kiln_status kiln_context_set_input_shape(kiln_context *ctx, const char *name, int rank, const int64_t *dims)
{
    if (!ctx || !name || !dims) return KILN_ERR_INVALID_ARG;
    kiln_err err = {{0}};
    kiln_network *net = ctx->net;
    char ranges[2048];
    int i = input_index(net, name);
    if (i < 0) {
        range_text(ctx->eng, net, ranges, sizeof ranges);
        return ctx_fail(ctx, kiln__fail(&err, KILN_ERR_NOT_FOUND, "no input named '%s'; inputs: %s", name, ranges), &err);
    }
    const kiln_tensor *t = &net->tensors[net->inputs[i]];
    range_text(ctx->eng, net, ranges, sizeof ranges);
    if (rank != t->v.shape.rank)
        return ctx_fail(ctx, kiln__fail(&err, KILN_ERR_SHAPE, "input '%s': rank %d given, the engine takes rank %d (%s)", name, rank, t->v.shape.rank, ranges), &err);
    for (int d = 0; d < rank; d++) {
        kiln_dim dd = t->v.shape.d[d];
        if (dims[d] < 0 || (kiln__dim_is_const(dd) && dd.add != dims[d]))
            return ctx_fail(ctx, kiln__fail(&err, KILN_ERR_SHAPE, "input '%s': dimension %d = %lld is outside what the engine takes (%s)", name, d, (long long)dims[d], ranges), &err);
    }
    for (int p = 0; p < ctx->eng->n_profiles; p++) {
        const kiln_shape_profile *pr = &ctx->eng->profiles[p];
        if (strcmp(pr->name, name)) continue;
        for (int d = 0; d < rank; d++)
            if (dims[d] < pr->min[d] || dims[d] > pr->max[d])
                return ctx_fail(ctx, kiln__fail(&err, KILN_ERR_SHAPE, "input '%s': dimension %d = %lld is outside the profile (%s)", name, d, (long long)dims[d], ranges), &err);
    }
    bool same = true;
    for (int d = 0; d < rank; d++) same &= ctx->in_dims[i][d] == dims[d];
    if (!same) {
        memcpy(ctx->in_dims[i], dims, sizeof(int64_t) * (size_t)rank);
        free_resolution(ctx);
    }
    return KILN_OK;
}

kiln_status kiln_context_set_tensor_address(kiln_context *ctx, const char *name, void *ptr)
{
    if (!ctx || !name) return KILN_ERR_INVALID_ARG;
    kiln_err err = {{0}};
    int i = input_index(ctx->net, name), o = output_index(ctx->net, name);
    if (i < 0 && o < 0) {
        char names[2048];
        io_names(ctx->net, names, sizeof names);
        return ctx_fail(ctx, kiln__fail(&err, KILN_ERR_NOT_FOUND, "no input or output named '%s'; the engine has %s", name, names), &err);
    }
    void **slot = i >= 0 ? &ctx->in_ptr[i] : &ctx->out_ptr[o];
    if (*slot != ptr) {
        *slot = ptr;
        /* the captured graph holds the old address */
        kiln__gpu_graph_destroy(ctx->graph);
        ctx->graph = NULL;
        for (int r = 0; r < ctx->n_reps; r++) {
            kiln_rep *rep = &ctx->reps[r];
            if ((rep->where == REP_USER_IN && i >= 0 && rep->tensor == ctx->net->inputs[i]) ||
                (rep->where == REP_USER_OUT && o >= 0 && rep->tensor == ctx->net->outputs[o]))
                rep->t.ptr = ptr;
        }
        /* views of a caller's input follow its address (view_alias.c) */
        if (ctx->resolved) kiln__context_place_aliases(ctx);
    }
    return KILN_OK;
}

/* --- resolution ----------------------------------------------------------- */

static int new_rep(kiln_context *ctx, int tensor, kiln_dtype dt, kiln_layout layout, int where)
{
    if (ctx->n_reps == ctx->cap_reps) {
        int cap = ctx->cap_reps ? ctx->cap_reps * 2 : 256;
        kiln_rep *r = realloc(ctx->reps, sizeof *r * (size_t)cap);
        if (!r) return -1;
        ctx->reps = r;
        ctx->cap_reps = cap;
    }
    kiln_rep *r = &ctx->reps[ctx->n_reps];
    memset(r, 0, sizeof *r);
    r->tensor = tensor;
    r->where = where;
    r->first = r->last = -1;
    r->alias_of = -1;
    const kiln_value *v = &ctx->vals[tensor];
    r->t.dtype = dt;
    r->t.rank = v->shape.rank;
    for (int d = 0; d < v->shape.rank; d++) r->t.dims[d] = v->shape.d[d].add;
    kiln__cuda_strides(&r->t, layout);
    return ctx->n_reps++;
}

static int new_step(kiln_context *ctx, step_kind kind, int node)
{
    if (ctx->n_steps == ctx->cap_steps) {
        int cap = ctx->cap_steps ? ctx->cap_steps * 2 : 256;
        kiln_step *s = realloc(ctx->steps, sizeof *s * (size_t)cap);
        if (!s) return -1;
        ctx->steps = s;
        ctx->cap_steps = cap;
    }
    kiln_step *s = &ctx->steps[ctx->n_steps];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->node = node;
    s->src = s->dst = -1;
    return ctx->n_steps++;
}

static size_t rep_bytes(const kiln_rep *r)
{
    size_t n = 1;
    for (int d = 0; d < r->t.rank; d++) {
        if (r->t.dims[d] == 0) return 0;
        n += (size_t)((r->t.dims[d] - 1) * r->t.strides[d]);
    }
    return n * kiln_dtype_size(r->t.dtype);
}

static bool rep_matches(const kiln_rep *r, kiln_dtype dt, kiln_layout layout)
{
    if (r->t.dtype != dt) return false;
    kiln_cuda_tensor want = r->t;
    kiln__cuda_strides(&want, layout);
    for (int d = 0; d < r->t.rank; d++)
        if (r->t.dims[d] > 1 && want.strides[d] != r->t.strides[d]) return false;
    return true;
}

static kiln_layout layout_for(const kiln_context *ctx, int tensor)
{
    const kiln_value *v = &ctx->vals[tensor];
    return (ctx->eng->hdr.layout == KILN_LAYOUT_NHWC && v->shape.rank == 4 && is_float(v->dtype)) ? KILN_LAYOUT_NHWC
                                                                                                 : KILN_LAYOUT_ROW_MAJOR;
}

/* --- plugin layouts (issue 4, dcn): a row-major-only op is handed row-major tensors, except a
 * plugin node in an NHWC engine whose class accepts NHWC at every 4-D float position
 * (cuda_ops_plugin.c asks its supports_format): it takes layout_for() like any other op. --- */
#ifdef KILN_HAVE_CUDA
bool kiln__cuda_plugin_nhwc(const kiln_cuda_op *op, const kiln_node *n, const kiln_value *vals, kiln_dtype compute);
#endif
static bool op_row_major(const kiln_context *ctx, const kiln_cuda_op *op, const kiln_node *nd, kiln_dtype compute)
{
    if (!op->row_major) return false;
#ifdef KILN_HAVE_CUDA
    if (ctx->eng->hdr.layout == KILN_LAYOUT_NHWC && kiln__cuda_plugin_nhwc(op, nd, ctx->vals, compute)) return false;
#else
    (void)ctx;
    (void)nd;
    (void)compute;
#endif
    return true;
}
/* --- end plugin layouts --- */

/* Uploads a host value into its own device buffer now (once per resolution). */
static int upload_rep(kiln_context *ctx, int tensor, kiln_err *err)
{
    const kiln_value *v = &ctx->vals[tensor];
    int r = new_rep(ctx, tensor, v->dtype, KILN_LAYOUT_ROW_MAJOR, REP_CONST);
    if (r < 0) return -1;
    kiln_rep *rep = &ctx->reps[r];
    rep->first = -2; /* owned by the resolution */
    if (kiln__gpu_malloc(&rep->t.ptr, v->nbytes + 16, err)) return -1;
    if (kiln__gpu_memcpy_h2d(rep->t.ptr, v->data, v->nbytes, NULL, err)) return -1;
    return r;
}

static kiln_status launch_cast(kiln_context *ctx, const kiln_cuda_tensor *src, kiln_cuda_tensor *dst, const kiln_step *st,
                               kiln_err *err);

/* A representation of `tensor` with dtype/layout; adds upload or reformat work as needed. */
static int get_rep(kiln_context *ctx, int tensor, kiln_dtype dt, kiln_layout layout, int step_now, kiln_err *err)
{
    for (int r = 0; r < ctx->n_reps; r++)
        if (ctx->reps[r].tensor == tensor && rep_matches(&ctx->reps[r], dt, layout)) {
            if (step_now > ctx->reps[r].last) ctx->reps[r].last = step_now;
            return r;
        }
    /* --- weights in run-time form (engine v3; owner: wts): the engine's device copy, shared by
     * every context, when the builder made this form (it makes the one each GPU reader wants) --- */
    if (ctx->net->tensors[tensor].kind == KILN_TENSOR_CONSTANT && ctx->eng->w_dev) {
        int k = kiln__wform_find(ctx->eng, tensor, dt, layout, KILN_WFORM_COPY);
        if (k >= 0) {
            int r = new_rep(ctx, tensor, dt, layout, REP_CONST);
            if (r < 0) return -1;
            kiln__wform_view(ctx->eng, k, &ctx->reps[r].t);
            return r;
        }
    }
    /* --- end weights in run-time form --- */
    int src = -1;
    for (int r = 0; r < ctx->n_reps && src < 0; r++)
        if (ctx->reps[r].tensor == tensor && ctx->reps[r].where != REP_USER_OUT) src = r;
    if (src < 0) {
        const kiln_tensor *t = &ctx->net->tensors[tensor];
        /* weights in run-time form (owner: wts): another form of the constant, converted below */
        int k = -1;
        for (int q = 0; t->kind == KILN_TENSOR_CONSTANT && ctx->eng->w_dev && q < ctx->eng->w.n_forms && k < 0; q++)
            if (ctx->eng->w.forms[q].tensor == tensor && ctx->eng->w.forms[q].transform == KILN_WFORM_COPY) k = q;
        if (k >= 0) {
            src = new_rep(ctx, tensor, (kiln_dtype)ctx->eng->w.forms[k].dtype, (kiln_layout)ctx->eng->w.forms[k].layout, REP_CONST);
            if (src < 0) return -1;
            kiln__wform_view(ctx->eng, k, &ctx->reps[src].t);
        } else if (ctx->host_known[tensor]) {
            src = upload_rep(ctx, tensor, err);
            if (src < 0) return -1;
        } else {
            kiln__fail(err, KILN_ERR_INTERNAL, "tensor '%s' has no device copy", t->name);
            return -1;
        }
        if (rep_matches(&ctx->reps[src], dt, layout)) return src;
    }
    if (ctx->reps[src].where == REP_CONST) {
        /* constants are converted once per resolution, not per run */
        int r = new_rep(ctx, tensor, dt, layout, REP_CONST);
        if (r < 0) return -1;
        kiln_rep *rep = &ctx->reps[r];
        rep->first = -2;
        if (kiln__gpu_malloc(&rep->t.ptr, rep_bytes(rep) + 16, err)) return -1;
        kiln_step tmp = {.kind = STEP_REFORMAT};
        if (launch_cast(ctx, &ctx->reps[src].t, &rep->t, &tmp, err) || kiln__gpu_sync(NULL, err)) return -1;
        return r;
    }
    int r = new_rep(ctx, tensor, dt, layout, REP_ARENA);
    int s = new_step(ctx, STEP_REFORMAT, -1);
    if (r < 0 || s < 0) return -1;
    ctx->steps[s].src = src;
    ctx->steps[s].dst = r;
    ctx->reps[r].first = s;
    ctx->reps[r].last = step_now > s ? step_now : s;
    if (s > ctx->reps[src].last) ctx->reps[src].last = s;
    return r;
}

static kiln_status host_eval(kiln_context *ctx, const kiln_node *nd, const kiln_value *const *in, kiln_value *out,
                             kiln_err *err)
{
    const kiln_cpu_kernel *k = kiln__cpu_kernel_find(nd->domain, nd->op_type);
    if (!k) return KILN_ERR_UNSUPPORTED;
    for (int j = 0; j < nd->n_out; j++) {
        int64_t numel = kiln__shape_numel(&out[j].shape);
        size_t nbytes = (size_t)numel * kiln_dtype_size(out[j].dtype);
        out[j].data = kiln__calloc(1, nbytes);
        out[j].nbytes = nbytes;
        if (!out[j].data) return KILN_ERR_OUT_OF_MEMORY;
    }
    return k->run(nd, nd->params, in, out, err);
}

kiln_status kiln__context_resolve_shapes(kiln_context *ctx, kiln_err *err)
{
    kiln_engine *eng = ctx->eng;
    kiln_network *net = ctx->net;
    free_resolution(ctx);
    ctx->needs_sync = false;
    for (int t = 0; t < net->n_tensors; t++) {
        memset(&ctx->vals[t], 0, sizeof ctx->vals[t]);
        ctx->vals[t].shape.rank = -1;
        ctx->host_known[t] = false;
        if (net->tensors[t].kind == KILN_TENSOR_CONSTANT) {
            ctx->vals[t] = net->tensors[t].v;
            /* weights in run-time form (owner: wts): a constant kept only in that form has no host bytes */
            ctx->host_known[t] = !(eng->w.no_host && eng->w.no_host[t]);
        }
    }
    for (int i = 0; i < net->n_inputs; i++) {
        int t = net->inputs[i];
        for (int d = 0; d < ctx->in_rank[i]; d++)
            if (ctx->in_dims[i][d] < 0)
                return kiln__fail(err, KILN_ERR_SHAPE, "input '%s': shape not set (dimension %d is dynamic): call kiln_context_set_input_shape",
                                  net->tensors[t].name, d);
        ctx->vals[t].dtype = net->tensors[t].v.dtype;
        ctx->vals[t].shape = kiln__shape_of(ctx->in_rank[i], ctx->in_dims[i]);
    }
    /* shapes, and host values of what depends only on shapes and constants */
    for (int k = 0; k < net->n_nodes; k++) {
        const kiln_node *nd = &net->nodes[eng->order[k]];
        const kiln_value *in[64];
        kiln_value out[64];
        if (nd->n_in > 64 || nd->n_out > 64) return kiln__fail(err, KILN_ERR_LIMIT, "node '%s': too many inputs", nd->name);
        if (!nd->schema) return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s': unknown op %s", nd->name, nd->op_type);
        bool all_host = true;
        for (int j = 0; j < nd->n_in; j++) {
            in[j] = nd->in[j] >= 0 ? &ctx->vals[nd->in[j]] : NULL;
            if (in[j] && !ctx->host_known[nd->in[j]]) all_host = false;
        }
        memset(out, 0, sizeof(kiln_value) * (size_t)nd->n_out);
        for (int j = 0; j < nd->n_out; j++) out[j].shape.rank = -1;
        kiln_status s = nd->schema->infer(nd, nd->params, in, out, err);
        if (s) return s;
        size_t bytes = 0;
        for (int j = 0; j < nd->n_out; j++) {
            int64_t numel = kiln__shape_numel(&out[j].shape);
            if (numel < 0)
                return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (%s): output %d has no concrete shape for these input shapes", nd->name, nd->op_type, j);
            bytes += (size_t)numel * kiln_dtype_size(out[j].dtype);
        }
        bool known = false;
        /* small results, and anything the GPU would not run anyway, are computed here once */
        bool gpu_node = eng->plan && eng->plan[eng->order[k]].on_gpu;
        if (all_host && (bytes <= HOST_EVAL_MAX_BYTES || !gpu_node)) {
            s = host_eval(ctx, nd, in, out, err);
            if (s == KILN_OK) known = true;
            else if (s != KILN_ERR_UNSUPPORTED) return s;
        }
        if (!known) {
            /* shape-only results (Shape, Size, ...) come back as constant symvals */
            bool all_sym = true;
            for (int j = 0; j < nd->n_out; j++) {
                int64_t numel = kiln__shape_numel(&out[j].shape);
                bool ok = out[j].dtype == KILN_DT_INT64 && out[j].symval_n == numel && numel > 0;
                for (int e = 0; ok && e < numel; e++) ok = kiln__dim_is_const(out[j].symval[e]);
                all_sym &= ok;
            }
            if (all_sym && nd->n_out > 0) {
                known = true;
                for (int j = 0; j < nd->n_out; j++) {
                    int64_t numel = kiln__shape_numel(&out[j].shape);
                    free(out[j].data);
                    out[j].data = kiln__calloc((size_t)numel, sizeof(int64_t));
                    if (!out[j].data) return KILN_ERR_OUT_OF_MEMORY;
                    out[j].nbytes = (size_t)numel * sizeof(int64_t);
                    for (int e = 0; e < numel; e++) ((int64_t *)out[j].data)[e] = out[j].symval[e].add;
                }
            }
        }
        for (int j = 0; j < nd->n_out; j++) {
            int t = nd->out[j];
            if (t < 0) {
                free(out[j].data);
                continue;
            }
            if (!known) {
                free(out[j].data);
                out[j].data = NULL;
            }
            ctx->vals[t] = out[j];
            ctx->host_known[t] = known;
            ctx->owned[t] = known;
        }
    }
    return KILN_OK;
}

/* The tensors a step's launch sees: device views of its inputs (dims alone for values known only
 * on the host), host values where known, device views of its outputs. */
void kiln__context_step_tensors(const kiln_context *ctx, const kiln_step *st, kiln_cuda_tensor *din,
                                kiln_cuda_tensor *dout, const kiln_value **host)
{
    const kiln_node *nd = &ctx->net->nodes[st->node];
    for (int j = 0; j < nd->n_in; j++) {
        int t = nd->in[j];
        memset(&din[j], 0, sizeof din[j]);
        if (st->in_reps[j] >= 0) din[j] = ctx->reps[st->in_reps[j]].t;
        else if (t >= 0) {
            din[j].dtype = ctx->vals[t].dtype;
            din[j].rank = ctx->vals[t].shape.rank;
            for (int d = 0; d < din[j].rank; d++) din[j].dims[d] = ctx->vals[t].shape.d[d].add;
            kiln__cuda_strides(&din[j], KILN_LAYOUT_ROW_MAJOR);
        }
        host[j] = t >= 0 && ctx->host_known[t] ? &ctx->vals[t] : NULL;
    }
    for (int j = 0; j < nd->n_out; j++) {
        memset(&dout[j], 0, sizeof dout[j]);
        if (st->out_reps[j] >= 0) dout[j] = ctx->reps[st->out_reps[j]].t;
    }
}

kiln_status kiln__context_resolve(kiln_context *ctx, kiln_err *err)
{
    kiln_engine *eng = ctx->eng;
    kiln_network *net = ctx->net;
    kiln_status rs = kiln__context_resolve_shapes(ctx, err);
    if (rs) return rs;
    /* steps */
    for (int i = 0; i < net->n_inputs; i++) {
        int t = net->inputs[i];
        int r = new_rep(ctx, t, net->tensors[t].v.dtype, KILN_LAYOUT_ROW_MAJOR, REP_USER_IN);
        if (r < 0) return KILN_ERR_OUT_OF_MEMORY;
        ctx->reps[r].t.ptr = ctx->in_ptr[i];
    }
    for (int k = 0; k < net->n_nodes; k++) {
        int ni = eng->order[k];
        const kiln_node *nd = &net->nodes[ni];
        bool all_known = true;
        for (int j = 0; j < nd->n_out; j++)
            if (nd->out[j] >= 0 && !ctx->host_known[nd->out[j]]) all_known = false;
        if (all_known) continue;
        const kiln_layer_plan *pl = &eng->plan[ni];
        const kiln_cuda_op *op = pl->on_gpu ? kiln__cuda_op_find(nd->domain, nd->op_type) : NULL;
        /* --- view aliases (view_alias.c, helper alias): a view op whose output is strides over its
         * input's memory takes no step. The rep a copy would read is taken first when the input has
         * none in this dtype yet (a caller's fp32 input in an fp16 engine), so it can be viewed too. --- */
        if (op && kiln__view_alias_candidate(ctx, nd)) {
            int t0 = nd->in[0], to = nd->out[0];
            kiln_dtype want = is_float(ctx->vals[t0].dtype) ? (kiln_dtype)pl->compute : ctx->vals[t0].dtype;
            if (!kiln__context_view_has_source(ctx, t0, want) &&
                get_rep(ctx, t0, want, op->row_major ? KILN_LAYOUT_ROW_MAJOR : layout_for(ctx, t0), ctx->n_steps, err) < 0)
                return err->msg[0] ? KILN_ERR_BACKEND : KILN_ERR_OUT_OF_MEMORY;
            kiln_dtype odt = is_float(ctx->vals[to].dtype) ? (kiln_dtype)pl->compute : ctx->vals[to].dtype;
            int r = new_rep(ctx, to, odt, layout_for(ctx, to), REP_ARENA);
            if (r < 0) return KILN_ERR_OUT_OF_MEMORY;
            if (kiln__context_view_alias(ctx, ni, r)) continue;
            ctx->n_reps--; /* not a view: the node copies, below */
        }
        /* --- end view aliases --- */
        int s = new_step(ctx, op ? STEP_LAUNCH : STEP_CPU, ni);
        if (s < 0) return KILN_ERR_OUT_OF_MEMORY;
        /* a CPU step synchronizes the stream: no graph capture */
        if (!op) ctx->needs_sync = true;
        int *in_reps = malloc(sizeof(int) * ((size_t)nd->n_in + 1));
        int *out_reps = malloc(sizeof(int) * ((size_t)nd->n_out + 1));
        if (!in_reps || !out_reps) {
            free(in_reps);
            free(out_reps);
            return KILN_ERR_OUT_OF_MEMORY;
        }
        ctx->steps[s].in_reps = in_reps;
        ctx->steps[s].out_reps = out_reps;
        kiln_dtype compute = (kiln_dtype)pl->compute;
        const bool rm = op && op_row_major(ctx, op, nd, compute); /* plugin layouts (dcn) */
        for (int j = 0; j < nd->n_in; j++) {
            int t = nd->in[j];
            in_reps[j] = -1;
            if (t < 0) continue;
            if (!op) {
                if (ctx->host_known[t]) continue;
                ctx->needs_sync = true;
                in_reps[j] = get_rep(ctx, t, ctx->vals[t].dtype, KILN_LAYOUT_ROW_MAJOR, ctx->n_steps, err);
            } else {
                if (net->tensors[t].kind == KILN_TENSOR_CONSTANT && (op->prepare || op->prepare_packed)) continue; /* wts: prepare_packed */
                kiln_dtype want = is_float(ctx->vals[t].dtype) ? compute : ctx->vals[t].dtype;
                in_reps[j] = get_rep(ctx, t, want, rm ? KILN_LAYOUT_ROW_MAJOR : layout_for(ctx, t), ctx->n_steps, err);
            }
            if (in_reps[j] < 0) return err->msg[0] ? KILN_ERR_BACKEND : KILN_ERR_OUT_OF_MEMORY;
        }
        /* get_rep may have added reformat steps: this node's step must come after them */
        if (ctx->n_steps - 1 != s) {
            kiln_step mine = ctx->steps[s];
            memmove(&ctx->steps[s], &ctx->steps[s + 1], sizeof(kiln_step) * (size_t)(ctx->n_steps - 1 - s));
            ctx->steps[ctx->n_steps - 1] = mine;
            for (int r = 0; r < ctx->n_reps; r++) {
                if (ctx->reps[r].first > s) ctx->reps[r].first--;
                if (ctx->reps[r].last > s) ctx->reps[r].last--;
            }
            s = ctx->n_steps - 1;
            for (int j = 0; j < nd->n_in; j++)
                if (in_reps[j] >= 0 && ctx->reps[in_reps[j]].last < s) ctx->reps[in_reps[j]].last = s;
        }
        for (int j = 0; j < nd->n_out; j++) {
            int t = nd->out[j];
            out_reps[j] = -1;
            if (t < 0) continue;
            kiln_dtype dt = ctx->vals[t].dtype;
            if (op && is_float(dt)) dt = compute;
            int r = new_rep(ctx, t, dt, op && !rm ? layout_for(ctx, t) : KILN_LAYOUT_ROW_MAJOR, REP_ARENA);
            if (r < 0) return KILN_ERR_OUT_OF_MEMORY;
            if (op) kiln__context_view_producer_layout(ctx, ni, r); /* view aliases: laid out for its reader (view_alias.c) */
            ctx->reps[r].first = ctx->reps[r].last = s;
            out_reps[j] = r;
        }
    }
    /* graph outputs into the caller's buffers, in the model's type, row-major */
    for (int o = 0; o < net->n_outputs; o++) {
        int t = net->outputs[o];
        int src = -1;
        for (int r = 0; r < ctx->n_reps && src < 0; r++)
            if (ctx->reps[r].tensor == t && ctx->reps[r].where != REP_USER_OUT) src = r;
        if (src < 0) {
            if (ctx->host_known[t]) src = upload_rep(ctx, t, err);
            else if (net->tensors[t].kind == KILN_TENSOR_INPUT) src = -1;
            if (src < 0) return kiln__fail(err, KILN_ERR_INTERNAL, "output '%s' has no device copy", net->tensors[t].name);
        }
        kiln_dtype model_dt = ctx->vals[t].dtype;
        int dst = new_rep(ctx, t, model_dt, KILN_LAYOUT_ROW_MAJOR, REP_USER_OUT);
        int s = new_step(ctx, STEP_REFORMAT, -1);
        if (dst < 0 || s < 0) return KILN_ERR_OUT_OF_MEMORY;
        ctx->reps[dst].t.ptr = ctx->out_ptr[o];
        ctx->steps[s].src = src;
        ctx->steps[s].dst = dst;
        if (ctx->reps[src].last < s) ctx->reps[src].last = s;
    }
    /* arena: concat inputs in place first, then every remaining tensor by lifetime */
    kiln__context_alias_concats(ctx);
    kiln_mem_request *req = calloc((size_t)ctx->n_reps + 1, sizeof *req);
    int *req_rep = calloc((size_t)ctx->n_reps + 1, sizeof *req_rep);
    if (!req || !req_rep) {
        free(req);
        free(req_rep);
        return KILN_ERR_OUT_OF_MEMORY;
    }
    int n_req = 0;
    for (int r = 0; r < ctx->n_reps; r++) {
        if (ctx->reps[r].where != REP_ARENA || ctx->reps[r].alias_of >= 0) continue;
        req[n_req] = (kiln_mem_request){.bytes = rep_bytes(&ctx->reps[r]) + 16, .first = ctx->reps[r].first,
                                        .last = ctx->reps[r].last < ctx->reps[r].first ? ctx->reps[r].first : ctx->reps[r].last};
        req_rep[n_req++] = r;
    }
    size_t lb = 0;
    size_t need = kiln__plan_memory(req, n_req, &lb);
    ctx->arena_bytes = need;
    ctx->arena_lower_bound = lb;
    if (need > ctx->arena_cap) {
        kiln__gpu_free(ctx->arena);
        ctx->arena = NULL;
        ctx->arena_cap = 0;
        kiln_status s = kiln__gpu_malloc(&ctx->arena, need, err);
        if (s) {
            free(req);
            free(req_rep);
            return s;
        }
        ctx->arena_cap = need;
    }
    for (int q = 0; q < n_req; q++) ctx->reps[req_rep[q]].t.ptr = (char *)ctx->arena + req[q].offset;
    kiln__context_place_aliases(ctx);
    free(req);
    free(req_rep);
    /* workspace: the largest any launch asks for */
    size_t ws = 0;
    for (int s = 0; s < ctx->n_steps; s++) {
        kiln_step *st = &ctx->steps[s];
        if (st->kind != STEP_LAUNCH) continue;
        const kiln_node *nd = &net->nodes[st->node];
        const kiln_cuda_op *op = kiln__cuda_op_find(nd->domain, nd->op_type);
        if (!op->workspace) continue;
        kiln_cuda_tensor din[64], dout[64];
        const kiln_value *host[64];
        kiln__context_step_tensors(ctx, st, din, dout, host);
        kiln_cuda_launch l = {.node = nd, .params = nd->params, .in = din, .host = host, .out = dout,
                              .state = eng->state ? eng->state[st->node] : NULL, .tactic = eng->plan[st->node].tactic, .ex = &ctx->ex,
                              .strict_fp32 = (eng->plan[st->node].on_gpu & KILN_PLAN_STRICT_FP32) != 0};
        st->workspace = op->workspace(&l);
        if (st->workspace > ws) ws = st->workspace;
    }
    if (ws > ctx->workspace_cap) {
        kiln__gpu_free(ctx->workspace);
        ctx->workspace = NULL;
        ctx->workspace_cap = 0;
        kiln_status s = kiln__gpu_malloc(&ctx->workspace, ws, err);
        if (s) return s;
        ctx->workspace_cap = ws;
    }
    ctx->ex.workspace = ctx->workspace;
    ctx->ex.workspace_bytes = ctx->workspace_cap;
    /* uploads and constant conversions above ran on the default stream */
    kiln_status s = kiln__gpu_sync(NULL, err);
    if (s) return s;
    ctx->resolved = true;
    return KILN_OK;
}

/* --- running -------------------------------------------------------------- */

static kiln_status launch_cast(kiln_context *ctx, const kiln_cuda_tensor *src, kiln_cuda_tensor *dst, const kiln_step *st,
                               kiln_err *err)
{
    const kiln_cuda_op *op = kiln__cuda_op_find("", "Cast");
    if (!op) return kiln__fail(err, KILN_ERR_UNSUPPORTED, "the GPU backend has no Cast op for reformats");
    char oname[32];
    snprintf(oname, sizeof oname, "to_%d", (int)dst->dtype);
    const kiln_node *node = NULL;
    for (int i = 0; i < ctx->cast_net->n_nodes; i++)
        if (!strcmp(ctx->cast_net->nodes[i].name, oname)) node = &ctx->cast_net->nodes[i];
    if (!node) return kiln__fail(err, KILN_ERR_UNSUPPORTED, "no reformat to %s", kiln_dtype_name(dst->dtype));
    const kiln_value *host[1] = {NULL};
    kiln_cuda_launch l = {.node = node, .params = node->params, .in = src, .host = host, .out = dst, .ex = &ctx->ex};
    (void)st;
    return op->launch(&l, err);
}

static kiln_status run_cpu_step(kiln_context *ctx, kiln_step *st, void *stream, kiln_err *err)
{
    const kiln_node *nd = &ctx->net->nodes[st->node];
    const kiln_value *in[64];
    kiln_value tmp_in[64], out[64];
    kiln_status s = kiln__gpu_sync(stream, err);
    if (s) return s;
    memset(tmp_in, 0, sizeof tmp_in);
    for (int j = 0; j < nd->n_in && !s; j++) {
        int t = nd->in[j];
        in[j] = t >= 0 ? &ctx->vals[t] : NULL;
        if (t < 0 || st->in_reps[j] < 0) continue;
        tmp_in[j] = ctx->vals[t];
        tmp_in[j].nbytes = (size_t)kiln__value_numel(&ctx->vals[t]) * kiln_dtype_size(ctx->vals[t].dtype);
        tmp_in[j].data = kiln__malloc(tmp_in[j].nbytes);
        if (!tmp_in[j].data) s = KILN_ERR_OUT_OF_MEMORY;
        else s = kiln__gpu_memcpy_d2h(tmp_in[j].data, ctx->reps[st->in_reps[j]].t.ptr, tmp_in[j].nbytes, stream, err);
        in[j] = &tmp_in[j];
    }
    if (!s) s = kiln__gpu_sync(stream, err);
    memset(out, 0, sizeof(kiln_value) * (size_t)nd->n_out);
    if (!s) s = kiln__cpu_run_node(nd, in, out, err);
    for (int j = 0; j < nd->n_out && !s; j++)
        if (st->out_reps[j] >= 0) s = kiln__gpu_memcpy_h2d(ctx->reps[st->out_reps[j]].t.ptr, out[j].data, out[j].nbytes, stream, err);
    if (!s) s = kiln__gpu_sync(stream, err);
    for (int j = 0; j < nd->n_out; j++) free(out[j].data);
    for (int j = 0; j < nd->n_in; j++) free(tmp_in[j].data);
    return s;
}

static kiln_status run_step(kiln_context *ctx, kiln_step *st, void *stream, kiln_err *err)
{
    kiln_network *net = ctx->net;
    if (st->skip) return KILN_OK;
    if (st->kind == STEP_REFORMAT) return launch_cast(ctx, &ctx->reps[st->src].t, &ctx->reps[st->dst].t, st, err);
    if (st->kind == STEP_CPU) return run_cpu_step(ctx, st, stream, err);
    const kiln_node *nd = &net->nodes[st->node];
    const kiln_cuda_op *op = kiln__cuda_op_find(nd->domain, nd->op_type);
    kiln_cuda_tensor din[64], dout[64];
    const kiln_value *host[64];
    kiln__context_step_tensors(ctx, st, din, dout, host);
    kiln_cuda_launch l = {.node = nd, .params = nd->params, .in = din, .host = host, .out = dout,
                          .state = ctx->eng->state ? ctx->eng->state[st->node] : NULL, .tactic = ctx->eng->plan[st->node].tactic, .ex = &ctx->ex,
                          .strict_fp32 = (ctx->eng->plan[st->node].on_gpu & KILN_PLAN_STRICT_FP32) != 0};
    return op->launch(&l, err);
}

kiln_status kiln__context_run_steps(kiln_context *ctx, void *stream, kiln_err *err)
{
    kiln_status s = kiln__gpu_exec_set_stream(&ctx->ex, stream, err);
    if (s) return s;
    if (ctx->profiling && ctx->n_events < 2 * ctx->n_steps) {
        void **ev = realloc(ctx->events, sizeof(void *) * 2 * (size_t)ctx->n_steps);
        if (!ev) return KILN_ERR_OUT_OF_MEMORY;
        ctx->events = ev;
        while (ctx->n_events < 2 * ctx->n_steps) {
            s = kiln__gpu_event_create(&ctx->events[ctx->n_events], err);
            if (s) return s;
            ctx->n_events++;
        }
    }
    for (int i = 0; i < ctx->n_steps && !s; i++) {
        if (ctx->profiling) kiln__gpu_event_record(ctx->events[2 * i], stream, err);
        s = run_step(ctx, &ctx->steps[i], stream, err);
        if (ctx->profiling) kiln__gpu_event_record(ctx->events[2 * i + 1], stream, err);
    }
    if (!s && ctx->profiling) {
        for (int i = 0; i < ctx->n_steps && !s; i++)
            s = kiln__gpu_event_elapsed(ctx->events[2 * i], ctx->events[2 * i + 1], &ctx->steps[i].last_ms, err);
    }
    return s;
}

kiln_status kiln_context_enqueue(kiln_context *ctx, void *stream)
{
    if (!ctx) return KILN_ERR_INVALID_ARG;
    kiln_err err = {{0}};
    kiln_status s = KILN_OK;
    if (!ctx->resolved && (s = kiln__context_resolve(ctx, &err))) return ctx_fail(ctx, s, &err);
    for (int i = 0; i < ctx->net->n_inputs; i++)
        if (!ctx->in_ptr[i])
            return ctx_fail(ctx, kiln__fail(&err, KILN_ERR_INVALID_ARG, "input '%s' has no address: call kiln_context_set_tensor_address",
                                            ctx->net->tensors[ctx->net->inputs[i]].name), &err);
    for (int o = 0; o < ctx->net->n_outputs; o++)
        if (!ctx->out_ptr[o])
            return ctx_fail(ctx, kiln__fail(&err, KILN_ERR_INVALID_ARG, "output '%s' has no address: call kiln_context_set_tensor_address",
                                            ctx->net->tensors[ctx->net->outputs[o]].name), &err);
    bool capture = ctx->use_graph && !ctx->needs_sync && !ctx->profiling;
    if (!capture) {
        s = kiln__context_run_steps(ctx, stream, &err);
        return s ? ctx_fail(ctx, s, &err) : KILN_OK;
    }
    if (ctx->graph && ctx->graph_stream != stream) {
        kiln__gpu_graph_destroy(ctx->graph);
        ctx->graph = NULL;
    }
    if (!ctx->graph) {
        s = kiln__gpu_graph_begin(stream, &err);
        if (s) return ctx_fail(ctx, s, &err);
        kiln_status rs = kiln__context_run_steps(ctx, stream, &err);
        void *g = NULL;
        kiln_err err2 = {{0}};
        s = kiln__gpu_graph_end(stream, &g, &err2);
        if (rs) {
            kiln__gpu_graph_destroy(g);
            return ctx_fail(ctx, rs, &err);
        }
        if (s) {
            /* capture failed (an op that cannot be captured): run uncaptured from now on */
            ctx->use_graph = false;
            s = kiln__context_run_steps(ctx, stream, &err);
            return s ? ctx_fail(ctx, s, &err) : KILN_OK;
        }
        ctx->graph = g;
        ctx->graph_stream = stream;
    }
    s = kiln__gpu_graph_launch(ctx->graph, stream, &err);
    return s ? ctx_fail(ctx, s, &err) : KILN_OK;
}

kiln_status kiln_context_get_shape(kiln_context *ctx, const char *name, int *rank, int64_t *dims)
{
    if (!ctx || !name || !rank || !dims) return KILN_ERR_INVALID_ARG;
    kiln_err err = {{0}};
    int t = kiln__net_find_tensor(ctx->net, name);
    if (t < 0 || (input_index(ctx->net, name) < 0 && output_index(ctx->net, name) < 0)) {
        char names[2048];
        io_names(ctx->net, names, sizeof names);
        return ctx_fail(ctx, kiln__fail(&err, KILN_ERR_NOT_FOUND, "no input or output named '%s'; the engine has %s", name, names), &err);
    }
    kiln_status s;
    if (!ctx->resolved && (s = kiln__context_resolve(ctx, &err))) return ctx_fail(ctx, s, &err);
    *rank = ctx->vals[t].shape.rank;
    for (int d = 0; d < *rank; d++) dims[d] = ctx->vals[t].shape.d[d].add;
    return KILN_OK;
}

kiln_dtype kiln_context_get_dtype(kiln_context *ctx, const char *name)
{
    if (!ctx || !name) return KILN_DT_UNDEFINED;
    int t = kiln__net_find_tensor(ctx->net, name);
    if (t < 0) return KILN_DT_UNDEFINED;
    kiln_err err = {{0}};
    if (!ctx->resolved && ctx->net->tensors[t].v.dtype == KILN_DT_UNDEFINED && kiln__context_resolve_shapes(ctx, &err) == KILN_OK)
        return ctx->vals[t].dtype;
    return ctx->resolved ? ctx->vals[t].dtype : ctx->net->tensors[t].v.dtype;
}

kiln_status kiln_context_set_cuda_graph(kiln_context *ctx, int on)
{
    if (!ctx) return KILN_ERR_INVALID_ARG;
    ctx->use_graph = on != 0;
    if (!ctx->use_graph) {
        kiln__gpu_graph_destroy(ctx->graph);
        ctx->graph = NULL;
    }
    return KILN_OK;
}

kiln_status kiln_context_set_profiling(kiln_context *ctx, int on)
{
    if (!ctx) return KILN_ERR_INVALID_ARG;
    ctx->profiling = on != 0;
    return KILN_OK;
}

int kiln_context_profile_count(const kiln_context *ctx) { return ctx ? ctx->n_steps : 0; }

kiln_status kiln_context_profile_get(const kiln_context *ctx, int i, const char **layer, double *ms)
{
    if (!ctx || i < 0 || i >= ctx->n_steps) return KILN_ERR_INVALID_ARG;
    const kiln_step *st = &ctx->steps[i];
    if (st->kind == STEP_REFORMAT) *layer = "(reformat)";
    else {
        const kiln_node *nd = &ctx->net->nodes[st->node];
        const kiln_attr *fused = kiln__node_attr(nd, "fused_nodes");
        *layer = fused && fused->type == KILN_ATTR_STRING && fused->s[0] ? fused->s : nd->name;
    }
    *ms = st->last_ms;
    return KILN_OK;
}

kiln_status kiln_context_memory(kiln_context *ctx, size_t *arena_bytes, size_t *lower_bound_bytes, size_t *workspace_bytes)
{
    if (!ctx) return KILN_ERR_INVALID_ARG;
    kiln_err err = {{0}};
    kiln_status s;
    if (!ctx->resolved && (s = kiln__context_resolve(ctx, &err))) return ctx_fail(ctx, s, &err);
    if (arena_bytes) *arena_bytes = ctx->arena_bytes;
    if (lower_bound_bytes) *lower_bound_bytes = ctx->arena_lower_bound;
    if (workspace_bytes) *workspace_bytes = ctx->workspace_cap;
    return KILN_OK;
}
