/*
 * Weights in run-time form (engine file v3). The builder converts every constant a GPU
 * op reads into the form that op reads it in (dtype, layout, transform), once, into one
 * blob; the engine file stores the blob and loading uploads it as it is. Pure C: the
 * conversion never needs a GPU, and an engine file can be written and read without one.
 */
#include "engine.h"
#include <stdlib.h>
#include <string.h>

static bool is_float(kiln_dtype dt) { return dt == KILN_DT_FLOAT || dt == KILN_DT_FLOAT16; }

#ifdef KILN_HAVE_CUDA
bool kiln__cuda_plugin_nhwc(const kiln_cuda_op *op, const kiln_node *n, const kiln_value *vals, kiln_dtype compute);
#endif

/* Whether the runtime hands node i's 4-D float tensors row-major: the op says so, except a
 * plugin node that takes NHWC in an NHWC engine (context.c's op_row_major asks the same
 * question; here over the network's static types and ranks, which are what it looks at). */
static bool node_row_major(const kiln_engine *eng, const kiln_cuda_op *op, int node)
{
    if (!op || !op->row_major) return false;
#ifdef KILN_HAVE_CUDA
    if (eng->hdr.layout == KILN_LAYOUT_NHWC && !op->prepare && !op->prepare_packed) {
        const kiln_network *net = eng->net;
        kiln_value *vals = kiln__calloc((size_t)net->n_tensors + 1, sizeof *vals);
        bool nhwc = false;
        if (vals) {
            for (int t = 0; t < net->n_tensors; t++) {
                vals[t].dtype = net->tensors[t].v.dtype;
                vals[t].shape = net->tensors[t].v.shape;
            }
            nhwc = kiln__cuda_plugin_nhwc(op, &net->nodes[node], vals, (kiln_dtype)eng->plan[node].compute);
            free(vals);
        }
        if (nhwc) return false;
    }
#endif
    return true;
}

/* The form for constant input j of node i given whether the node is handed row-major tensors:
 * float constants in the node's compute type; NHWC for 4-D float ones of an NHWC engine
 * unless row-major (context.c applies the same rule when it asks for a constant). */
static void want_rm(const kiln_engine *eng, int node, int j, bool rm, kiln_dtype *dt, kiln_layout *layout)
{
    const kiln_node *nd = &eng->net->nodes[node];
    const kiln_value *v = &eng->net->tensors[nd->in[j]].v;
    bool f = is_float(v->dtype);
    *dt = f ? (kiln_dtype)eng->plan[node].compute : v->dtype;
    *layout = !rm && eng->hdr.layout == KILN_LAYOUT_NHWC && v->shape.rank == 4 && f ? KILN_LAYOUT_NHWC : KILN_LAYOUT_ROW_MAJOR;
}

/* The rule promised to prepare_packed ops (their constants) and the one the runtime applies
 * to other ops' constants. */
void kiln__wform_want(const kiln_engine *eng, int node, int j, kiln_dtype *dt, kiln_layout *layout)
{
    const kiln_node *nd = &eng->net->nodes[node];
    want_rm(eng, node, j, node_row_major(eng, kiln__cuda_op_find(nd->domain, nd->op_type), node), dt, layout);
}

int kiln__wform_find(const kiln_engine *eng, int tensor, kiln_dtype dt, kiln_layout layout, int transform)
{
    for (int k = 0; k < eng->w.n_forms; k++) {
        const kiln_wform *f = &eng->w.forms[k];
        if (f->tensor == tensor && f->dtype == (int32_t)dt && f->layout == (int32_t)layout && f->transform == transform)
            return k;
    }
    return -1;
}

void kiln__wform_view(const kiln_engine *eng, int k, kiln_cuda_tensor *t)
{
    const kiln_wform *f = &eng->w.forms[k];
    const kiln_value *v = &eng->net->tensors[f->tensor].v;
    memset(t, 0, sizeof *t);
    t->dtype = (kiln_dtype)f->dtype;
    t->rank = v->shape.rank;
    for (int d = 0; d < t->rank; d++) t->dims[d] = v->shape.d[d].add;
    kiln__cuda_strides(t, (kiln_layout)f->layout);
    t->ptr = eng->w_dev && f->offset < eng->w.bytes ? (char *)eng->w_dev + f->offset : NULL;
}

/* Writes v (row-major, its own dtype) into dst as dt with the strides of layout, applying
 * the transform. The common cases (fp32 -> fp16 / fp32, any layout) avoid the per-element
 * dtype switch. */
static void convert(const kiln_value *v, const kiln_wform *f, uint8_t *dst, bool filter)
{
    int64_t n = kiln__value_numel(v);
    /* a conv filter going to fp16: rounded so each k x k filter keeps its sum (fp16_round.c) */
    float *kept = NULL;
    if (filter && v->dtype == KILN_DT_FLOAT && f->dtype == KILN_DT_FLOAT16 && f->transform == KILN_WFORM_COPY &&
        v->shape.rank >= 3 && n > 0) {
        int64_t taps = 1;
        for (int d = 2; d < v->shape.rank; d++) taps *= v->shape.d[d].add;
        kept = taps > 1 ? malloc(sizeof(float) * (size_t)n) : NULL;
        if (kept) kiln__f16_round_groups(v->data, kept, n / taps, taps);
    }
    kiln_cuda_tensor t = {0};
    t.rank = v->shape.rank;
    for (int d = 0; d < t.rank; d++) t.dims[d] = v->shape.d[d].add;
    kiln__cuda_strides(&t, (kiln_layout)f->layout);
    bool plain = f->layout == KILN_LAYOUT_ROW_MAJOR || t.rank != 4;
    if (plain && f->transform == KILN_WFORM_COPY && f->dtype == (int32_t)v->dtype) {
        memcpy(dst, v->data, (size_t)f->nbytes);
        free(kept);
        return;
    }
    kiln_value out = {.dtype = (kiln_dtype)f->dtype, .data = dst};
    bool one_minus = f->transform == KILN_WFORM_ONE_MINUS;
    const float *src32 = kept ? kept : v->dtype == KILN_DT_FLOAT ? v->data : NULL;
    int64_t idx[KILN_MAX_DIMS] = {0}, off = 0;
    for (int64_t i = 0; i < n; i++) {
        if (src32 && f->dtype == KILN_DT_FLOAT16) {
            uint16_t h = kiln__f32_to_f16(one_minus ? 1.0f - src32[i] : src32[i]);
            memcpy(dst + off * 2, &h, 2);
        } else if (src32 && f->dtype == KILN_DT_FLOAT) {
            float x = one_minus ? 1.0f - src32[i] : src32[i];
            memcpy(dst + off * 4, &x, 4);
        } else if (is_float(v->dtype) || v->dtype == KILN_DT_DOUBLE) {
            double x = kiln__value_get_f64(v, i);
            kiln__value_set_f64(&out, off, one_minus ? (double)(1.0f - (float)x) : x);
        } else {
            kiln__value_set_i64(&out, off, kiln__value_get_i64(v, i));
        }
        if (plain) {
            off++;
            continue;
        }
        /* advance the row-major source coordinate and the destination offset together */
        for (int d = t.rank - 1; d >= 0; d--) {
            off += t.strides[d];
            if (++idx[d] < t.dims[d]) break;
            off -= t.strides[d] * t.dims[d];
            idx[d] = 0;
        }
    }
    free(kept);
}

static kiln_status add_form(kiln_weights *w, int *cap, int tensor, kiln_dtype dt, kiln_layout layout, int transform,
                            const kiln_value *v, kiln_err *err)
{
    for (int k = 0; k < w->n_forms; k++)
        if (w->forms[k].tensor == tensor && w->forms[k].dtype == (int32_t)dt && w->forms[k].layout == (int32_t)layout &&
            w->forms[k].transform == transform)
            return KILN_OK;
    size_t bytes = kiln_dtype_size(dt);
    for (int d = 0; d < v->shape.rank; d++)
        if (v->shape.d[d].add < 0 || kiln__mul_overflow(bytes, (size_t)v->shape.d[d].add, &bytes))
            return kiln__fail(err, KILN_ERR_LIMIT, "constant of %d dims is too large", v->shape.rank);
    if (w->n_forms == *cap) {
        int nc = *cap ? *cap * 2 : 64;
        kiln_wform *nf = realloc(w->forms, sizeof *nf * (size_t)nc);
        if (!nf) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        w->forms = nf;
        *cap = nc;
    }
    w->forms[w->n_forms++] = (kiln_wform){.tensor = tensor, .dtype = dt, .layout = layout, .transform = transform, .nbytes = bytes};
    return KILN_OK;
}

kiln_status kiln__weights_pack(kiln_engine *eng, kiln_err *err)
{
    kiln_network *net = eng->net;
    kiln__weights_free(&eng->w);
    /* KILN_WEIGHTS_AT_LOAD=1 (A/B only): no run-time forms and every original kept, so the
     * engine converts at load as format 2 did and the two load times can be compared */
    const char *ab = getenv("KILN_WEIGHTS_AT_LOAD");
    if (ab && ab[0] == '1') return KILN_OK;
    kiln_weights *w = &eng->w;
    int cap = 0;
    kiln_status s = KILN_OK;
    /* tensors that are some conv's filter (input 1): their fp16 forms keep each filter's sum */
    bool *filter = kiln__calloc((size_t)net->n_tensors + 1, sizeof(bool));
    if (!filter) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    for (int i = 0; i < net->n_nodes; i++) {
        const kiln_node *nd = &net->nodes[i];
        bool conv = (!nd->domain[0] && (!strcmp(nd->op_type, "Conv") || !strcmp(nd->op_type, "ConvTranspose"))) ||
                    (!strcmp(nd->domain, "kiln") && !strcmp(nd->op_type, "FusedConv"));
        if (conv && nd->n_in > 1 && nd->in[1] >= 0) filter[nd->in[1]] = true;
    }
    /* which forms: one per (constant, form a GPU reader wants) */
    for (int i = 0; i < net->n_nodes && !s; i++) {
        const kiln_node *nd = &net->nodes[i];
        const kiln_cuda_op *op = eng->plan[i].on_gpu ? kiln__cuda_op_find(nd->domain, nd->op_type) : NULL;
        if (!op) continue;
        bool rm = node_row_major(eng, op, i);
        for (int j = 0; j < nd->n_in && !s; j++) {
            int t = nd->in[j];
            if (t < 0 || net->tensors[t].kind != KILN_TENSOR_CONSTANT || !net->tensors[t].v.data) continue;
            const kiln_value *v = &net->tensors[t].v;
            kiln_dtype dt;
            kiln_layout lay;
            want_rm(eng, i, j, rm, &dt, &lay);
            s = add_form(w, &cap, t, dt, lay, KILN_WFORM_COPY, v, err);
            /* FusedConv's PRelu slope: cuDNN's fused graph computes (1-S)*relu(v) + S*v */
            if (!s && op->prepare_packed && j == 3 && is_float(v->dtype) && !strcmp(nd->domain, "kiln") &&
                !strcmp(nd->op_type, "FusedConv"))
                s = add_form(w, &cap, t, dt, lay, KILN_WFORM_ONE_MINUS, v, err);
        }
    }
    /* where: aligned offsets in one blob */
    uint64_t total = 0;
    for (int k = 0; k < w->n_forms && !s; k++) {
        w->forms[k].offset = total;
        /* an empty constant gets a slot too: a device pointer that is not NULL (NULL means omitted) */
        uint64_t span = w->forms[k].nbytes ? w->forms[k].nbytes : 1;
        uint64_t next = total + (span + KILN_WBLOB_ALIGN - 1) / KILN_WBLOB_ALIGN * KILN_WBLOB_ALIGN;
        if (next < total) s = kiln__fail(err, KILN_ERR_LIMIT, "weights too large");
        total = next;
    }
    uint8_t *blob = s ? NULL : kiln__calloc((size_t)total + 1, 1);
    if (!s && !blob) s = kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory for %llu bytes of weights", (unsigned long long)total);
    for (int k = 0; k < w->n_forms && !s; k++)
        if (w->forms[k].nbytes)
            convert(&net->tensors[w->forms[k].tensor].v, &w->forms[k], blob + w->forms[k].offset, filter[w->forms[k].tensor]);
    free(filter);
    w->mem = blob;
    w->blob = blob;
    w->bytes = total;
    /* originals no one else reads: every reader a GPU op that takes run-time forms */
    bool *read = NULL, *other = NULL;
    if (!s) {
        w->no_host = kiln__calloc((size_t)net->n_tensors + 1, sizeof(bool));
        read = kiln__calloc((size_t)net->n_tensors + 1, sizeof(bool));
        other = kiln__calloc((size_t)net->n_tensors + 1, sizeof(bool));
        if (!w->no_host || !read || !other) s = kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int i = 0; i < net->n_nodes && !s; i++) {
        const kiln_node *nd = &net->nodes[i];
        const kiln_cuda_op *op = eng->plan[i].on_gpu ? kiln__cuda_op_find(nd->domain, nd->op_type) : NULL;
        for (int j = 0; j < nd->n_in; j++) {
            int t = nd->in[j];
            if (t < 0 || net->tensors[t].kind != KILN_TENSOR_CONSTANT) continue;
            read[t] = true;
            bool packed = op && op->prepare_packed;
            if (packed) {
                kiln_dtype dt;
                kiln_layout lay;
                kiln__wform_want(eng, i, j, &dt, &lay);
                packed = kiln__wform_find(eng, t, dt, lay, KILN_WFORM_COPY) >= 0;
            }
            if (!packed) other[t] = true;
        }
    }
    for (int o = 0; o < net->n_outputs && !s; o++) other[net->outputs[o]] = true;
    for (int t = 0; t < net->n_tensors && !s; t++) {
        const kiln_tensor *tt = &net->tensors[t];
        w->no_host[t] = tt->kind == KILN_TENSOR_CONSTANT && tt->v.data && !tt->is_output && read[t] && !other[t];
    }
    free(read);
    free(other);
    if (s) {
        kiln__weights_free(w);
        return s;
    }
    /* the engine in memory is then the one a load gives: originals of those are dropped */
    for (int t = 0; t < net->n_tensors; t++)
        if (w->no_host[t]) {
            free(net->tensors[t].v.data);
            net->tensors[t].v.data = NULL;
            net->tensors[t].v.nbytes = 0;
        }
    return KILN_OK;
}
