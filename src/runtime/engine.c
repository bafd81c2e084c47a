/* Engine lifecycle: device preparation of weights, save, load with checks, description. */
#include "context.h"
#include "../plugin/plugin.h" /* plugin records (issue 4) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Uploads the weights (already in run-time form: one allocation, one copy) and prepares
 * per-node device state from them. Converts nothing, except for an op that has no
 * prepare_packed, or a constant the engine holds in no matching form (then prepare
 * converts the original, as engine format 2 did). */
kiln_status kiln__engine_prepare(kiln_engine *eng, kiln_err *err)
{
    kiln_network *net = eng->net;
    kiln_status s = kiln__gpu_init(&eng->gpu, err);
    if (s) return s;
    if (!eng->order && (s = kiln__net_toposort(net, &eng->order, err))) return s;
    eng->state = kiln__calloc((size_t)net->n_nodes + 1, sizeof(void *));
    if (!eng->state) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    if (eng->w.bytes) {
        s = kiln__gpu_malloc(&eng->w_dev, (size_t)eng->w.bytes, err);
        if (!s) s = kiln__gpu_memcpy_h2d(eng->w_dev, eng->w.blob, (size_t)eng->w.bytes, NULL, err);
        if (s) return s;
    }
    for (int i = 0; i < net->n_nodes; i++) {
        const kiln_node *nd = &net->nodes[i];
        if (!eng->plan[i].on_gpu) continue;
        const kiln_cuda_op *op = kiln__cuda_op_find(nd->domain, nd->op_type);
        if (!op) {
            eng->plan[i].on_gpu = 0;
            continue;
        }
        if (!op->prepare && !op->prepare_packed) continue; /* constants: the runtime's reps of the forms */
        const kiln_value *host[64];
        kiln_cuda_tensor dev[128];
        if (nd->n_in > 64) return kiln__fail(err, KILN_ERR_LIMIT, "node '%s': too many inputs", nd->name);
        memset(dev, 0, sizeof(kiln_cuda_tensor) * 2 * (size_t)nd->n_in);
        bool packed = op->prepare_packed != NULL, originals = true;
        for (int j = 0; j < nd->n_in; j++) {
            int t = nd->in[j];
            bool c = t >= 0 && net->tensors[t].kind == KILN_TENSOR_CONSTANT;
            host[j] = c && net->tensors[t].v.data ? &net->tensors[t].v : NULL;
            if (!c) continue;
            if (!host[j] && kiln__value_numel(&net->tensors[t].v) > 0) originals = false;
            kiln_dtype dt;
            kiln_layout lay;
            kiln__wform_want(eng, i, j, &dt, &lay);
            int k = kiln__wform_find(eng, t, dt, lay, KILN_WFORM_COPY);
            if (k < 0) packed = false;
            else kiln__wform_view(eng, k, &dev[j]);
            if ((k = kiln__wform_find(eng, t, dt, lay, KILN_WFORM_ONE_MINUS)) >= 0) kiln__wform_view(eng, k, &dev[nd->n_in + j]);
        }
        if (packed)
            s = op->prepare_packed(nd, nd->params, host, dev, (kiln_dtype)eng->plan[i].compute, (kiln_layout)eng->hdr.layout,
                                   &eng->state[i], err);
        else if (op->prepare && originals)
            s = op->prepare(nd, nd->params, host, (kiln_dtype)eng->plan[i].compute, (kiln_layout)eng->hdr.layout, &eng->state[i], err);
        else
            s = kiln__fail(err, KILN_ERR_PARSE, "a constant has neither its run-time form nor its original in the engine");
        if (s) {
            kiln__err_prefix(err, "preparing node '%s' (%s)", nd->name, nd->op_type);
            return s;
        }
    }
    return kiln__gpu_sync(NULL, err);
}

void kiln_engine_free(kiln_engine *eng)
{
    if (!eng) return;
    if (eng->net) {
        for (int i = 0; eng->state && i < eng->net->n_nodes; i++) {
            if (!eng->state[i]) continue;
            const kiln_node *nd = &eng->net->nodes[i];
            const kiln_cuda_op *op = kiln__cuda_op_find(nd->domain, nd->op_type);
            if (op && op->release) op->release(eng->state[i]);
        }
    }
    kiln__gpu_free(eng->w_dev);
    kiln__weights_free(&eng->w);
    free(eng->build_log);
    free(eng->state);
    free(eng->plan);
    free(eng->profiles);
    free(eng->order);
    kiln_network_free(eng->net);
    free(eng);
}

kiln_status kiln_engine_save(const kiln_engine *eng, const char *path)
{
    if (!eng || !path) return KILN_ERR_INVALID_ARG;
    kiln_err err = {{0}};
    kiln_status s = kiln__engine_file_write_w(path, &eng->hdr, eng->net, eng->plan, eng->profiles, eng->n_profiles, &eng->w, &err);
    if (s) kiln__set_last_error(err.msg);
    return s;
}

static kiln_status mismatch(kiln_err *err, const char *path, const char *field, const char *file_v, const char *here_v)
{
    return kiln__fail(err, KILN_ERR_UNSUPPORTED, "engine '%s' was built for %s %s; this machine has %s %s: rebuild it here",
                      path, field, file_v, field, here_v);
}

kiln_status kiln_engine_load(const char *path, kiln_engine **out)
{
    if (!path || !out) return KILN_ERR_INVALID_ARG;
    *out = NULL;
    kiln_err err = {{0}};
    kiln_engine *eng = calloc(1, sizeof *eng);
    if (!eng) return KILN_ERR_OUT_OF_MEMORY;
    kiln_status s = kiln__engine_file_read_w(path, &eng->hdr, &eng->net, &eng->plan, &eng->profiles, &eng->n_profiles, &eng->w, &err);
    if (!s) {
        char a[64];
        snprintf(a, sizeof a, "%d.%d.%d", KILN_VERSION_MAJOR, KILN_VERSION_MINOR, KILN_VERSION_PATCH);
        if (strcmp(eng->hdr.kiln_version, a)) s = mismatch(&err, path, "kiln version", eng->hdr.kiln_version, a);
    }
    if (!s) s = kiln__gpu_init(&eng->gpu, &err);
    if (!s) {
        char a[300], b[300];
        snprintf(a, sizeof a, "sm_%d%d", eng->hdr.cc_major, eng->hdr.cc_minor);
        snprintf(b, sizeof b, "sm_%d%d", eng->gpu.cc_major, eng->gpu.cc_minor);
        if (strcmp(a, b)) s = mismatch(&err, path, "GPU", a, b);
        else if (strcmp(eng->hdr.gpu_name, eng->gpu.name)) s = mismatch(&err, path, "GPU", eng->hdr.gpu_name, eng->gpu.name);
        else if (eng->hdr.cudnn / 100 != eng->gpu.cudnn_version / 100) {
            snprintf(a, sizeof a, "%d", eng->hdr.cudnn);
            snprintf(b, sizeof b, "%d", eng->gpu.cudnn_version);
            s = mismatch(&err, path, "cuDNN", a, b);
        } else if (eng->hdr.cuda_runtime / 1000 != eng->gpu.cuda_runtime_version / 1000) {
            snprintf(a, sizeof a, "%d", eng->hdr.cuda_runtime);
            snprintf(b, sizeof b, "%d", eng->gpu.cuda_runtime_version);
            s = mismatch(&err, path, "CUDA runtime", a, b);
        }
    }
    /* types and shapes of activations (the file keeps only the graph) */
    if (!s) {
        kiln_err ierr = {{0}};
        kiln__net_infer_shapes(eng->net, &ierr);
    }
    if (!s) s = kiln__engine_prepare(eng, &err);
    if (s) {
        kiln__set_last_error(err.msg);
        kiln_engine_free(eng);
        return s;
    }
    *out = eng;
    return KILN_OK;
}

int kiln_engine_io_count(const kiln_engine *eng) { return eng ? eng->net->n_inputs + eng->net->n_outputs : 0; }

const char *kiln_engine_io_name(const kiln_engine *eng, int i)
{
    if (!eng || i < 0) return NULL;
    if (i < eng->net->n_inputs) return eng->net->tensors[eng->net->inputs[i]].name;
    i -= eng->net->n_inputs;
    return i < eng->net->n_outputs ? eng->net->tensors[eng->net->outputs[i]].name : NULL;
}

int kiln_engine_io_is_input(const kiln_engine *eng, int i) { return eng && i >= 0 && i < eng->net->n_inputs; }

static const char *prec_name(int p) { return p == KILN_PREC_FP16 ? "fp16" : p == KILN_PREC_TF32 ? "tf32" : "fp32"; }

kiln_status kiln_engine_describe(const kiln_engine *eng, char **text)
{
    if (!eng || !text) return KILN_ERR_INVALID_ARG;
    size_t cap = 4096 + (size_t)eng->net->n_nodes * 256, pos = 0;
    char *b = malloc(cap);
    if (!b) return KILN_ERR_OUT_OF_MEMORY;
#define P(...) pos += (size_t)snprintf(b + pos, pos < cap ? cap - pos : 0, __VA_ARGS__)
    const kiln_engine_header *h = &eng->hdr;
    P("engine format %u, kiln %s\n", h->format_version, h->kiln_version);
    P("built for: %s (sm_%d%d), CUDA runtime %d, cuDNN %d, cuBLAS %d\n", h->gpu_name, h->cc_major, h->cc_minor, h->cuda_runtime, h->cudnn, h->cublas);
    P("precision: %s, activation layout: %s\n", prec_name(h->precision), h->layout == KILN_LAYOUT_NHWC ? "NHWC" : "NCHW");
    /* weights in run-time form (engine file v3) */
    {
        int only = 0, kept = 0;
        for (int t = 0; t < eng->net->n_tensors; t++)
            if (eng->net->tensors[t].kind == KILN_TENSOR_CONSTANT) {
                if (eng->w.no_host && eng->w.no_host[t]) only++;
                else kept++;
            }
        P("weights: %d run-time forms, %.2f MiB (uploaded as stored); %d constants only in run-time form, %d also in original form\n",
          eng->w.n_forms, (double)eng->w.bytes / 1048576.0, only, kept);
    }
    for (int i = 0; i < eng->net->n_inputs; i++) {
        const kiln_tensor *t = &eng->net->tensors[eng->net->inputs[i]];
        char sh[256];
        kiln__shape_str(eng->net, &t->v.shape, sh, sizeof sh);
        P("input  %s: %s%s\n", t->name, kiln_dtype_name(t->v.dtype), sh);
    }
    for (int p = 0; p < eng->n_profiles; p++) {
        const kiln_shape_profile *pr = &eng->profiles[p];
        P("profile %s: min ", pr->name);
        for (int d = 0; d < pr->rank; d++) P("%s%lld", d ? "x" : "", (long long)pr->min[d]);
        P(" opt ");
        for (int d = 0; d < pr->rank; d++) P("%s%lld", d ? "x" : "", (long long)pr->opt[d]);
        P(" max ");
        for (int d = 0; d < pr->rank; d++) P("%s%lld", d ? "x" : "", (long long)pr->max[d]);
        P("\n");
    }
    for (int i = 0; i < eng->net->n_outputs; i++) {
        const kiln_tensor *t = &eng->net->tensors[eng->net->outputs[i]];
        P("output %s: %s\n", t->name, kiln_dtype_name(t->v.dtype));
    }
    P("layers (%d):\n", eng->net->n_nodes);
    for (int k = 0; k < eng->net->n_nodes; k++) {
        int i = eng->order ? eng->order[k] : k;
        const kiln_node *nd = &eng->net->nodes[i];
        const kiln_layer_plan *pl = &eng->plan[i];
        const kiln_attr *f = kiln__node_attr(nd, "fused_nodes");
        P("  %-40s %-16s %-4s %-8s tactic %d", nd->name, nd->op_type, pl->on_gpu ? "gpu" : "cpu",
          pl->compute == KILN_DT_FLOAT16 ? "fp16" : "fp32", pl->tactic);
        if (pl->tactic_ms > 0) P(" (%.4f ms)", pl->tactic_ms);
        if (pl->on_gpu & KILN_PLAN_STRICT_FP32) P("  strict fp32 (no TF32)");
        if (f && f->type == KILN_ATTR_STRING && f->s[0]) P("  fuses %s", f->s);
        /* plugins (issue 4): the plugin a node needs (recorded in the engine file) */
        const kiln_plugin_class *pc = kiln__plugin_schema_class(nd->schema);
        if (pc) {
            char id[512];
            kiln__plugin_id_str(pc, id, sizeof id);
            P("  plugin %s", id);
        }
        P("\n");
        if (pos + 512 > cap) {
            char *nb = realloc(b, cap * 2);
            if (!nb) break;
            b = nb;
            cap *= 2;
        }
    }
#undef P
    *text = b;
    return KILN_OK;
}

const char *kiln_engine_build_log(const kiln_engine *eng) { return eng && eng->build_log ? eng->build_log : ""; }

int kiln_cuda_available(const char **why)
{
    static _Thread_local char msg[1024];
    kiln_err err = {{0}};
    kiln_gpu_info info;
    if (kiln__gpu_init(&info, &err)) {
        snprintf(msg, sizeof msg, "%s", err.msg);
        if (why) *why = msg;
        return 0;
    }
    if (why) *why = "";
    return 1;
}

kiln_status kiln_engine_describe_file(const char *path, char **text)
{
    if (!path || !text) return KILN_ERR_INVALID_ARG;
    *text = NULL;
    kiln_err err = {{0}};
    kiln_engine *eng = calloc(1, sizeof *eng);
    if (!eng) return KILN_ERR_OUT_OF_MEMORY;
    kiln_status s = kiln__engine_file_read_w(path, &eng->hdr, &eng->net, &eng->plan, &eng->profiles, &eng->n_profiles, &eng->w, &err);
    if (!s) s = kiln__net_toposort(eng->net, &eng->order, &err);
    if (!s) s = kiln_engine_describe(eng, text);
    if (s) kiln__set_last_error(err.msg[0] ? err.msg : kiln_status_str(s));
    kiln_engine_free(eng);
    return s;
}
