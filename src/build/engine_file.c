/*
 * The engine file. Layout:
 *   "KILNENG\0"  u32 format version  u32 header length  header text (key=value lines)
 *   u64 body length  body (little-endian binary: network, per-node plan, shape profiles,
 *                          then the weights in run-time form: a table of forms and one blob)
 *   u64 blob length  u64 sum64 of the blob (says whether damage is in the weights)
 *   u64 checksum of header text, body and the two fields before it (sum64 below)
 * The header is text so a person (and kiln inspect) can read what an engine
 * was built for; the loader checks each field against this machine.
 * Version 3 (issue 3): a constant may be stored only in run-time form (no original
 * bytes), the weight blob is uploaded as stored, and the checksum reads 8-byte
 * words in four lanes (byte-wise FNV-1a took ~190 ms on 67 MB of fp32 weights).
 */
#include "engine.h"
#include "../plugin/plugin.h" /* plugin records (issue 4) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char MAGIC[8] = {'K', 'I', 'L', 'N', 'E', 'N', 'G', 0};
#define MAX_ENGINE_BYTES ((uint64_t)64 << 30)

/* --- writer --------------------------------------------------------------- */

typedef struct wbuf {
    uint8_t *p;
    size_t n, cap;
    bool oom;
} wbuf;

static void put(wbuf *b, const void *src, size_t n)
{
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 16;
        while (cap < b->n + n) cap *= 2;
        uint8_t *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
/* The engine targets little-endian hosts (x86-64, aarch64), as CUDA does. */
static void put_u32(wbuf *b, uint32_t v) { put(b, &v, 4); }
static void put_i32(wbuf *b, int32_t v) { put(b, &v, 4); }
static void put_i64(wbuf *b, int64_t v) { put(b, &v, 8); }
static void put_u64(wbuf *b, uint64_t v) { put(b, &v, 8); }
static void put_f32(wbuf *b, float v) { put(b, &v, 4); }
static void put_str(wbuf *b, const char *s)
{
    uint32_t n = (uint32_t)strlen(s ? s : "");
    put_u32(b, n);
    put(b, s ? s : "", n);
}

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* Checksum of a byte run, chained through h: four lanes of 8-byte words, each
 * step (xor, multiply by an odd prime, xor-shift) a bijection of the lane, so
 * any damage confined to one word always changes the sum; bytes past the last
 * 32-byte group go through byte-wise FNV-1a. ~10x faster than byte-wise FNV. */
static uint64_t sum64(uint64_t h, const uint8_t *p, size_t n)
{
    const uint64_t P = 1099511628211ull;
    uint64_t l[4] = {h, h ^ 0x9e3779b97f4a7c15ull, h ^ 0xc2b2ae3d27d4eb4full, h ^ 0x165667b19e3779f9ull};
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++) {
            uint64_t w;
            memcpy(&w, p + i + 8 * k, 8);
            l[k] = (l[k] ^ w) * P;
            l[k] ^= l[k] >> 29;
        }
    uint64_t m = l[0];
    for (int k = 1; k < 4; k++) m = (m ^ l[k]) * P; /* each lane enters through a bijection */
    return fnv(m, p + i, n - i);
}
#define SUM_SEED 1469598103934665603ull

kiln_status kiln__engine_file_write(const char *path, const kiln_engine_header *h, const kiln_network *net,
                                    const kiln_layer_plan *plan, const kiln_shape_profile *prof, int n_prof, kiln_err *err)
{
    return kiln__engine_file_write_w(path, h, net, plan, prof, n_prof, NULL, err);
}

kiln_status kiln__engine_file_write_w(const char *path, const kiln_engine_header *h, const kiln_network *net,
                                      const kiln_layer_plan *plan, const kiln_shape_profile *prof, int n_prof,
                                      const kiln_weights *w, kiln_err *err)
{
    char hdr[2048];
    int hl = snprintf(hdr, sizeof hdr,
                      "kiln_version=%s\ngpu=%s\ncc=%d.%d\ncuda_runtime=%d\ncudnn=%d\ncublas=%d\nprecision=%d\nlayout=%d\noptions_hash=%llu\n",
                      h->kiln_version, h->gpu_name, h->cc_major, h->cc_minor, h->cuda_runtime, h->cudnn, h->cublas, h->precision,
                      h->layout, (unsigned long long)h->options_hash);
    wbuf b = {0};
    put_i64(&b, net->opset);
    put_u32(&b, (uint32_t)net->n_syms);
    for (int i = 0; i < net->n_syms; i++) put_str(&b, net->syms[i]);
    put_u32(&b, (uint32_t)net->n_inputs);
    for (int i = 0; i < net->n_inputs; i++) {
        const kiln_tensor *t = &net->tensors[net->inputs[i]];
        put_str(&b, t->name);
        put_u32(&b, (uint32_t)t->v.dtype);
        put_u32(&b, (uint32_t)t->v.shape.rank);
        for (int d = 0; d < t->v.shape.rank; d++) {
            kiln_dim dd = t->v.shape.d[d];
            /* inputs carry plain symbols or constants */
            put_i32(&b, dd.sym >= 0 ? dd.sym : -1);
            put_i64(&b, kiln__dim_is_const(dd) ? dd.add : -1);
        }
    }
    uint32_t n_const = 0;
    for (int t = 0; t < net->n_tensors; t++) n_const += net->tensors[t].kind == KILN_TENSOR_CONSTANT;
    put_u32(&b, n_const);
    for (int t = 0; t < net->n_tensors; t++) {
        const kiln_tensor *tt = &net->tensors[t];
        if (tt->kind != KILN_TENSOR_CONSTANT) continue;
        put_str(&b, tt->name);
        put_u32(&b, (uint32_t)tt->v.dtype);
        put_u32(&b, (uint32_t)tt->v.shape.rank);
        for (int d = 0; d < tt->v.shape.rank; d++) put_i64(&b, tt->v.shape.d[d].add);
        /* v3: whether the original bytes follow (not when only the run-time form is kept) */
        bool keep = !(w && w->no_host && w->no_host[t]);
        put_u32(&b, keep ? 1u : 0u);
        if (!keep) continue;
        put_u64(&b, tt->v.nbytes);
        put(&b, tt->v.data, tt->v.nbytes);
    }
    put_u32(&b, (uint32_t)net->n_nodes);
    for (int i = 0; i < net->n_nodes; i++) {
        const kiln_node *n = &net->nodes[i];
        put_str(&b, n->name);
        put_str(&b, n->op_type);
        put_str(&b, n->domain);
        put_i64(&b, n->opset);
        put_u32(&b, (uint32_t)n->n_in);
        for (int j = 0; j < n->n_in; j++) put_str(&b, n->in[j] >= 0 ? net->tensors[n->in[j]].name : "");
        put_u32(&b, (uint32_t)n->n_out);
        for (int j = 0; j < n->n_out; j++) put_str(&b, n->out[j] >= 0 ? net->tensors[n->out[j]].name : "");
        put_u32(&b, (uint32_t)n->n_attrs);
        for (int a = 0; a < n->n_attrs; a++) {
            const kiln_attr *at = &n->attrs[a];
            put_str(&b, at->name);
            put_u32(&b, (uint32_t)at->type);
            switch (at->type) {
            case KILN_ATTR_INT: put_i64(&b, at->i); break;
            case KILN_ATTR_FLOAT: put_f32(&b, at->f); break;
            case KILN_ATTR_STRING: put_u64(&b, at->s_len); put(&b, at->s, at->s_len); break;
            case KILN_ATTR_INTS: put_u64(&b, (uint64_t)at->n); put(&b, at->ints, sizeof(int64_t) * (size_t)at->n); break;
            case KILN_ATTR_FLOATS: put_u64(&b, (uint64_t)at->n); put(&b, at->floats, sizeof(float) * (size_t)at->n); break;
            case KILN_ATTR_STRINGS:
                put_u64(&b, (uint64_t)at->n);
                for (int64_t k = 0; k < at->n; k++) put_str(&b, at->strings[k]);
                break;
            case KILN_ATTR_TENSOR:
                put_u32(&b, (uint32_t)at->t->dtype);
                put_u32(&b, (uint32_t)at->t->shape.rank);
                for (int d = 0; d < at->t->shape.rank; d++) put_i64(&b, at->t->shape.d[d].add);
                put_u64(&b, at->t->nbytes);
                put(&b, at->t->data, at->t->nbytes);
                break;
            }
        }
        put_i32(&b, plan[i].on_gpu);
        put_i32(&b, plan[i].compute);
        put_i32(&b, plan[i].tactic);
        put_f32(&b, plan[i].tactic_ms);
        /* --- plugins (issue 4): which plugin a plugin node needs, and its serialized state --- */
        const kiln_plugin_class *pc = kiln__plugin_schema_class(n->schema);
        put_u32(&b, pc ? 1u : 0u);
        if (pc) {
            uint8_t *st = NULL;
            size_t sl = 0;
            kiln_status ps = kiln__plugin_serialize(n, &st, &sl, err);
            if (ps) {
                free(b.p);
                return ps;
            }
            put_str(&b, pc->name);
            put_str(&b, kiln__plugin_version(pc));
            put_str(&b, kiln__plugin_namespace(pc));
            put_u64(&b, sl);
            put(&b, st, sl);
            free(st);
        }
    }
    put_u32(&b, (uint32_t)net->n_outputs);
    for (int i = 0; i < net->n_outputs; i++) put_str(&b, net->tensors[net->outputs[i]].name);
    put_u32(&b, (uint32_t)n_prof);
    for (int p = 0; p < n_prof; p++) {
        put_str(&b, prof[p].name);
        put_u32(&b, (uint32_t)prof[p].rank);
        for (int d = 0; d < prof[p].rank; d++) {
            put_i64(&b, prof[p].min[d]);
            put_i64(&b, prof[p].opt[d]);
            put_i64(&b, prof[p].max[d]);
        }
    }
    /* v3: weights in run-time form: the table, then the blob as the device gets it */
    int n_forms = w ? w->n_forms : 0;
    put_u32(&b, (uint32_t)n_forms);
    for (int k = 0; k < n_forms; k++) {
        const kiln_wform *fm = &w->forms[k];
        put_str(&b, net->tensors[fm->tensor].name);
        put_i32(&b, fm->dtype);
        put_i32(&b, fm->layout);
        put_i32(&b, fm->transform);
        put_u64(&b, fm->offset);
        put_u64(&b, fm->nbytes);
    }
    put_u64(&b, n_forms ? w->bytes : 0);
    if (n_forms) put(&b, w->blob, (size_t)w->bytes);
    wbuf f = {0};
    put(&f, MAGIC, 8);
    put_u32(&f, KILN_ENGINE_FORMAT_VERSION);
    put_u32(&f, (uint32_t)hl);
    put(&f, hdr, (size_t)hl);
    put_u64(&f, b.n);
    size_t body_at = f.n;
    put(&f, b.p, b.n);
    /* trailer: the weight blob's length and its own sum (they name the damaged part), then the sum of all */
    uint64_t wbytes = n_forms ? w->bytes : 0;
    put_u64(&f, wbytes);
    put_u64(&f, sum64(SUM_SEED, n_forms ? w->blob : (const uint8_t *)"", (size_t)wbytes));
    uint64_t sum = f.oom ? 0 : sum64(sum64(SUM_SEED, (const uint8_t *)hdr, (size_t)hl), f.p + body_at, f.n - body_at);
    put_u64(&f, sum);
    kiln_status s;
    if (b.oom || f.oom) s = kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory writing engine '%s'", path);
    else s = kiln__write_file_atomic(path, f.p, f.n, err);
    free(b.p);
    free(f.p);
    return s;
}

/* --- reader --------------------------------------------------------------- */

typedef struct rbuf {
    const uint8_t *p;
    size_t n, pos;
    bool bad;
} rbuf;

static bool get(rbuf *r, void *dst, size_t n)
{
    if (r->bad || n > r->n - r->pos) {
        r->bad = true;
        if (dst && n <= 64) memset(dst, 0, n);
        return false;
    }
    if (dst) memcpy(dst, r->p + r->pos, n);
    r->pos += n;
    return true;
}
static uint32_t get_u32(rbuf *r) { uint32_t v = 0; get(r, &v, 4); return v; }
static int32_t get_i32(rbuf *r) { int32_t v = 0; get(r, &v, 4); return v; }
static int64_t get_i64(rbuf *r) { int64_t v = 0; get(r, &v, 8); return v; }
static uint64_t get_u64(rbuf *r) { uint64_t v = 0; get(r, &v, 8); return v; }
static float get_f32(rbuf *r) { float v = 0; get(r, &v, 4); return v; }
/* A string into an owned buffer; strings over 64 KiB mean damage. */
static char *get_str(rbuf *r)
{
    uint32_t n = get_u32(r);
    if (r->bad || n > 65536 || n > r->n - r->pos) {
        r->bad = true;
        return NULL;
    }
    char *s = kiln__strndup((const char *)r->p + r->pos, n);
    r->pos += n;
    if (!s) r->bad = true;
    return s;
}
/* A pointer to n bytes inside the buffer. */
static const void *get_span(rbuf *r, uint64_t n)
{
    if (r->bad || n > r->n - r->pos) {
        r->bad = true;
        return NULL;
    }
    const void *p = r->p + r->pos;
    r->pos += (size_t)n;
    return p;
}

static bool header_field(const char *hdr, const char *key, char *out, size_t len)
{
    size_t kl = strlen(key);
    for (const char *line = hdr; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t ll = nl ? (size_t)(nl - line) : strlen(line);
        if (ll > kl && !strncmp(line, key, kl) && line[kl] == '=') {
            size_t vl = ll - kl - 1 < len - 1 ? ll - kl - 1 : len - 1;
            memcpy(out, line + kl + 1, vl);
            out[vl] = 0;
            return true;
        }
        line = nl ? nl + 1 : NULL;
    }
    return false;
}

#define DAMAGED(what) \
    do { s = kiln__fail(err, KILN_ERR_PARSE, "engine file '%s' is damaged: %s (at byte %zu)", path, what, r.pos); goto done; } while (0)

kiln_status kiln__engine_file_read(const char *path, kiln_engine_header *h, kiln_network **net_out,
                                   kiln_layer_plan **plan_out, kiln_shape_profile **prof_out, int *n_prof_out, kiln_err *err)
{
    return kiln__engine_file_read_w(path, h, net_out, plan_out, prof_out, n_prof_out, NULL, err);
}

static bool float_dt(int32_t dt) { return dt == KILN_DT_FLOAT || dt == KILN_DT_FLOAT16; }

/* The weights section (v3): the table of run-time forms and the blob. Validates every
 * entry against the network read before it; on success the blob stays in `data`, whose
 * ownership passes to w (NULL: forms are checked, then dropped). */
static const char *read_weights(rbuf *r, kiln_network *net, const bool *no_data, kiln_weights *w)
{
    uint32_t n = get_u32(r);
    if (r->bad || n > (1u << 22)) return "weights (form count)";
    kiln_wform *forms = kiln__calloc((size_t)n + 1, sizeof *forms);
    if (!forms) return "weights (out of memory)";
    bool *has_form = kiln__calloc((size_t)net->n_tensors + 1, sizeof(bool));
    const char *why = has_form ? NULL : "weights (out of memory)";
    for (uint32_t k = 0; k < n && !why; k++) {
        kiln_wform *fm = &forms[k];
        char *name = get_str(r);
        fm->tensor = name ? kiln__net_find_tensor(net, name) : -1;
        free(name);
        fm->dtype = get_i32(r);
        fm->layout = get_i32(r);
        fm->transform = get_i32(r);
        fm->offset = get_u64(r);
        fm->nbytes = get_u64(r);
        if (r->bad) why = "weights (form table truncated)";
        else if (fm->tensor < 0 || net->tensors[fm->tensor].kind != KILN_TENSOR_CONSTANT)
            why = "weights (a form of something that is not a constant)";
        else if (kiln_dtype_size((kiln_dtype)fm->dtype) == 0 || (fm->layout != KILN_LAYOUT_ROW_MAJOR && fm->layout != KILN_LAYOUT_NHWC) ||
                 (fm->transform != KILN_WFORM_COPY && fm->transform != KILN_WFORM_ONE_MINUS))
            why = "weights (bad dtype, layout or transform of a form)";
        else {
            const kiln_value *v = &net->tensors[fm->tensor].v;
            size_t need = kiln_dtype_size((kiln_dtype)fm->dtype);
            for (int d = 0; d < v->shape.rank && !why; d++)
                if (kiln__mul_overflow(need, (size_t)v->shape.d[d].add, &need)) why = "weights (form size)";
            if (!why && (fm->nbytes != need || (fm->layout == KILN_LAYOUT_NHWC && v->shape.rank != 4) ||
                         (fm->transform == KILN_WFORM_ONE_MINUS && !float_dt(fm->dtype)) || fm->offset % KILN_WBLOB_ALIGN))
                why = "weights (a form does not match its constant)";
            for (uint32_t q = 0; q < k && !why; q++)
                if (forms[q].tensor == fm->tensor && forms[q].dtype == fm->dtype && forms[q].layout == fm->layout &&
                    forms[q].transform == fm->transform)
                    why = "weights (a form listed twice)";
            if (!why) has_form[fm->tensor] = true;
        }
    }
    uint64_t bytes = why ? 0 : get_u64(r);
    if (!why && r->bad) why = "weights (blob length)";
    for (uint32_t k = 0; k < n && !why; k++)
        if (forms[k].offset > bytes || forms[k].nbytes > bytes - forms[k].offset) why = "weights (a form outside the blob)";
    const uint8_t *blob = why ? NULL : get_span(r, bytes);
    if (!why && !blob && bytes) why = "weights (blob truncated)";
    /* a constant stored without its original bytes must have a run-time form */
    for (int t = 0; t < net->n_tensors && !why; t++)
        if (no_data[t] && !has_form[t]) why = "constants (one kept in no form)";
    free(has_form);
    if (why || !w) {
        free(forms);
        return why;
    }
    w->forms = forms;
    w->n_forms = (int)n;
    w->blob = blob;
    w->bytes = bytes;
    return NULL;
}

kiln_status kiln__engine_file_read_w(const char *path, kiln_engine_header *h, kiln_network **net_out,
                                     kiln_layer_plan **plan_out, kiln_shape_profile **prof_out, int *n_prof_out,
                                     kiln_weights *w_out, kiln_err *err)
{
    if (w_out) memset(w_out, 0, sizeof *w_out);
    bool *no_data = NULL;     /* per tensor: stored only in run-time form */
    int *no_data_list = NULL; /* their indices, while the constants are read */
    int n_no_data = 0;
    *net_out = NULL;
    *plan_out = NULL;
    *prof_out = NULL;
    *n_prof_out = 0;
    memset(h, 0, sizeof *h);
    uint8_t *data = NULL;
    size_t len = 0;
    kiln_status s = kiln__read_file(path, MAX_ENGINE_BYTES, &data, &len, err);
    if (s) return s;
    kiln_network *net = NULL;
    kiln_layer_plan *plan = NULL;
    kiln_shape_profile *prof = NULL;
    char *hdr = NULL;
    rbuf r = {data, len, 0, false};
    char magic[8];
    if (!get(&r, magic, 8) || memcmp(magic, MAGIC, 8)) {
        s = kiln__fail(err, KILN_ERR_PARSE, "'%s' is not a kiln engine file (wrong magic bytes)", path);
        goto done;
    }
    h->format_version = get_u32(&r);
    if (h->format_version != KILN_ENGINE_FORMAT_VERSION) {
        s = kiln__fail(err, KILN_ERR_UNSUPPORTED, "engine '%s' has format version %u; this kiln reads version %d: rebuild it",
                       path, h->format_version, KILN_ENGINE_FORMAT_VERSION);
        goto done;
    }
    uint32_t hl = get_u32(&r);
    const char *hp = get_span(&r, hl);
    if (!hp || hl > 65536) DAMAGED("header truncated");
    hdr = kiln__strndup(hp, hl);
    uint64_t bl = get_u64(&r);
    size_t body_start = r.pos;
    if (r.bad || bl > len - r.pos || len - r.pos - bl != 24) DAMAGED("truncated or trailing bytes");
    uint64_t stored, wbytes, wsum;
    memcpy(&wbytes, data + body_start + bl, 8);
    memcpy(&wsum, data + body_start + bl + 8, 8);
    memcpy(&stored, data + body_start + bl + 16, 8);
    uint64_t sum = sum64(sum64(SUM_SEED, (const uint8_t *)hp, hl), data + body_start, (size_t)bl + 16);
    if (!hdr || sum != stored) {
        /* which part: the weight blob ends the body and has its own sum */
        bool in_w = wbytes <= bl && sum64(SUM_SEED, data + body_start + bl - wbytes, (size_t)wbytes) != wsum;
        s = kiln__fail(err, KILN_ERR_PARSE, "engine file '%s' is damaged: checksum mismatch %s (stored %016llx, computed %016llx)", path,
                       in_w ? "in the weights" : "outside the weights (header, graph, plan)", (unsigned long long)stored,
                       (unsigned long long)sum);
        goto done;
    }
    char v[300];
    if (!header_field(hdr, "kiln_version", h->kiln_version, sizeof h->kiln_version)) DAMAGED("no kiln_version in header");
    if (!header_field(hdr, "gpu", h->gpu_name, sizeof h->gpu_name)) DAMAGED("no gpu in header");
    if (!header_field(hdr, "cc", v, sizeof v) || sscanf(v, "%d.%d", &h->cc_major, &h->cc_minor) != 2) DAMAGED("no cc in header");
    if (header_field(hdr, "cuda_runtime", v, sizeof v)) h->cuda_runtime = atoi(v);
    if (header_field(hdr, "cudnn", v, sizeof v)) h->cudnn = atoi(v);
    if (header_field(hdr, "cublas", v, sizeof v)) h->cublas = atoi(v);
    if (header_field(hdr, "precision", v, sizeof v)) h->precision = atoi(v);
    if (header_field(hdr, "layout", v, sizeof v)) h->layout = atoi(v);
    if (header_field(hdr, "options_hash", v, sizeof v)) h->options_hash = strtoull(v, NULL, 10);
    if (h->precision < 0 || h->precision > 2 || h->layout < 0 || h->layout > 1) DAMAGED("bad precision or layout");
    r.n = body_start + (size_t)bl;
    if (kiln_network_create(&net)) {
        s = KILN_ERR_OUT_OF_MEMORY;
        goto done;
    }
    int64_t opset = get_i64(&r);
    if (kiln_network_set_opset(net, opset)) DAMAGED("bad opset");
    uint32_t n_syms = get_u32(&r);
    if (n_syms > 4096) DAMAGED("symbol count");
    char **syms = kiln__calloc(n_syms + 1, sizeof *syms);
    if (!syms) DAMAGED("out of memory");
    for (uint32_t i = 0; i < n_syms && !r.bad; i++) syms[i] = get_str(&r);
    uint32_t n_in = get_u32(&r);
    if (n_in > 4096) r.bad = true;
    for (uint32_t i = 0; i < n_in && !r.bad && !s; i++) {
        char *name = get_str(&r);
        uint32_t dt = get_u32(&r), rank = get_u32(&r);
        int64_t dims[KILN_MAX_DIMS];
        const char *sn[KILN_MAX_DIMS];
        if (rank > KILN_MAX_DIMS) r.bad = true;
        for (uint32_t d = 0; d < rank && !r.bad; d++) {
            int32_t sym = get_i32(&r);
            int64_t val = get_i64(&r);
            dims[d] = sym >= 0 ? KILN_DIM_SYMBOLIC : val;
            sn[d] = sym >= 0 && (uint32_t)sym < n_syms ? syms[sym] : NULL;
            if (sym >= 0 && (uint32_t)sym >= n_syms) r.bad = true;
        }
        if (!r.bad && name && kiln_network_add_input(net, name, (kiln_dtype)dt, (int)rank, dims, sn))
            s = kiln__fail(err, KILN_ERR_PARSE, "engine file '%s' is damaged: %s", path, net->last_error);
        free(name);
    }
    for (uint32_t i = 0; i < n_syms; i++) free(syms[i]);
    free(syms);
    if (s) goto done;
    if (r.bad) DAMAGED("inputs");
    uint32_t n_const = get_u32(&r);
    for (uint32_t i = 0; i < n_const && !r.bad && !s; i++) {
        char *name = get_str(&r);
        uint32_t dt = get_u32(&r), rank = get_u32(&r);
        int64_t dims[KILN_MAX_DIMS];
        if (rank > KILN_MAX_DIMS) r.bad = true;
        for (uint32_t d = 0; d < rank && !r.bad; d++) dims[d] = get_i64(&r);
        uint32_t has_data = get_u32(&r); /* v3: 0 when only the run-time form is stored */
        if (has_data > 1) r.bad = true;
        if (has_data == 1) {
            uint64_t nb = get_u64(&r);
            const void *p = get_span(&r, nb);
            if (!r.bad && name && kiln_network_add_constant(net, name, (kiln_dtype)dt, (int)rank, dims, p, (size_t)nb))
                s = kiln__fail(err, KILN_ERR_PARSE, "engine file '%s' is damaged: %s", path, net->last_error);
        } else if (!r.bad && name) {
            /* dtype and shape only: its bytes are in the weight blob, in run-time form */
            size_t n = kiln_dtype_size((kiln_dtype)dt);
            bool ok = n > 0 && *name && kiln__net_find_tensor(net, name) < 0;
            for (uint32_t d = 0; d < rank && ok; d++) ok = dims[d] >= 0 && !kiln__mul_overflow(n, (size_t)dims[d], &n);
            int t = ok ? kiln__net_tensor(net, name) : -1;
            if (t < 0) s = kiln__fail(err, KILN_ERR_PARSE, "engine file '%s' is damaged: constant '%s' (no data) is invalid", path, name);
            else {
                kiln_tensor *tt = &net->tensors[t];
                tt->kind = KILN_TENSOR_CONSTANT;
                tt->v.dtype = (kiln_dtype)dt;
                tt->v.shape = kiln__shape_of((int)rank, dims);
                tt->v.data = NULL;
                tt->v.nbytes = 0;
                int *nl = realloc(no_data_list, sizeof(int) * ((size_t)n_no_data + 1));
                if (!nl) s = kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory reading '%s'", path);
                else {
                    no_data_list = nl;
                    no_data_list[n_no_data++] = t;
                }
            }
        }
        free(name);
    }
    if (s) goto done;
    if (r.bad) DAMAGED("constants");
    const char *bad_what = "nodes"; /* plugins (issue 4): says when a plugin record is the damage */
    uint32_t n_nodes = get_u32(&r);
    if (n_nodes > (1u << 22)) DAMAGED("node count");
    plan = kiln__calloc(n_nodes + 1, sizeof *plan);
    if (!plan) DAMAGED("out of memory");
    for (uint32_t i = 0; i < n_nodes && !r.bad && !s; i++) {
        char *name = get_str(&r), *op = get_str(&r), *dom = get_str(&r);
        int64_t nopset = get_i64(&r);
        uint32_t ni = get_u32(&r);
        if (ni > 4096) r.bad = true;
        char **ins = kiln__calloc(ni + 1, sizeof *ins);
        for (uint32_t j = 0; ins && j < ni && !r.bad; j++) ins[j] = get_str(&r);
        uint32_t no = get_u32(&r);
        if (no > 4096) r.bad = true;
        char **outs = kiln__calloc(no + 1, sizeof *outs);
        for (uint32_t j = 0; outs && j < no && !r.bad; j++) outs[j] = get_str(&r);
        uint32_t na = get_u32(&r);
        if (na > 4096) r.bad = true;
        kiln_attr_value *av = kiln__calloc(na + 1, sizeof *av);
        kiln_host_tensor *ht = kiln__calloc(na + 1, sizeof *ht);
        char **strs_to_free = NULL;
        int64_t n_strs = 0;
        for (uint32_t a = 0; av && ht && a < na && !r.bad; a++) {
            av[a].name = get_str(&r);
            av[a].type = (kiln_attr_type)get_u32(&r);
            switch (av[a].type) {
            case KILN_ATTR_INT: av[a].i = get_i64(&r); break;
            case KILN_ATTR_FLOAT: av[a].f = get_f32(&r); break;
            case KILN_ATTR_STRING: {
                uint64_t sl = get_u64(&r);
                av[a].s = get_span(&r, sl);
                av[a].s_len = (size_t)sl;
                break;
            }
            case KILN_ATTR_INTS: {
                uint64_t n = get_u64(&r);
                if (n > (1u << 24)) r.bad = true;
                av[a].n = (int64_t)n;
                av[a].ints = get_span(&r, n * 8); /* unaligned-safe: network.c memcpy's it */
                break;
            }
            case KILN_ATTR_FLOATS: {
                uint64_t n = get_u64(&r);
                if (n > (1u << 24)) r.bad = true;
                av[a].n = (int64_t)n;
                av[a].floats = get_span(&r, n * 4);
                break;
            }
            case KILN_ATTR_STRINGS: {
                uint64_t n = get_u64(&r);
                if (n > 4096) r.bad = true;
                char **strs = r.bad ? NULL : kiln__calloc((size_t)n + 1, sizeof *strs);
                for (uint64_t k = 0; strs && k < n && !r.bad; k++) strs[k] = get_str(&r);
                av[a].strings = (const char *const *)strs;
                av[a].n = (int64_t)n;
                free(strs_to_free);
                strs_to_free = strs;
                n_strs = (int64_t)n;
                break;
            }
            case KILN_ATTR_TENSOR: {
                ht[a].dtype = (kiln_dtype)get_u32(&r);
                ht[a].rank = (int)get_u32(&r);
                if (ht[a].rank < 0 || ht[a].rank > KILN_MAX_DIMS) r.bad = true;
                for (int d = 0; d < ht[a].rank && !r.bad; d++) ht[a].dims[d] = get_i64(&r);
                uint64_t nb = get_u64(&r);
                ht[a].data = (void *)get_span(&r, nb);
                ht[a].nbytes = (size_t)nb;
                av[a].t = &ht[a];
                break;
            }
            default: r.bad = true;
            }
        }
        kiln_layer_plan pl = {.on_gpu = get_i32(&r), .compute = get_i32(&r), .tactic = get_i32(&r), .tactic_ms = get_f32(&r)};
        /* --- plugins (issue 4): the plugin record, checked before the node is made --- */
        uint32_t has_plugin = get_u32(&r);
        char *pname = NULL, *pver = NULL, *pns = NULL;
        const void *pstate = NULL;
        uint64_t pstate_len = 0;
        if (has_plugin > 1) r.bad = true;
        if (r.bad) bad_what = "nodes (a plugin record)";
        if (has_plugin == 1 && !r.bad) {
            pname = get_str(&r);
            pver = get_str(&r);
            pns = get_str(&r);
            pstate_len = get_u64(&r);
            pstate = get_span(&r, pstate_len);
            if (!pname || !pver || !pns || !*pname || (op && strcmp(pname, op))) r.bad = true;
            if (r.bad) bad_what = "nodes (a plugin record)";
            if (!r.bad && !kiln__plugin_find_exact(pname, pver, pns)) {
                char list[700];
                kiln__plugin_list_str(list, sizeof list);
                s = kiln__fail(err, KILN_ERR_NOT_FOUND,
                               "engine '%s' needs plugin %s%s%s version %s for node '%s', which is not loaded (%s): pass --plugins=<library that provides it>",
                               path, pns, *pns ? "::" : "", pname, pver, name ? name : "?", list);
            }
        }
        if (!r.bad && (!ins || !outs || !av || !ht || !name || !op || !dom)) r.bad = true;
        if (!r.bad && (pl.tactic < 0 || (pl.compute != KILN_DT_FLOAT && pl.compute != KILN_DT_FLOAT16))) r.bad = true;
        /* on_gpu: 0, KILN_PLAN_GPU, or KILN_PLAN_GPU | KILN_PLAN_STRICT_FP32 */
        if (!r.bad && pl.on_gpu != 0 && pl.on_gpu != KILN_PLAN_GPU && pl.on_gpu != (KILN_PLAN_GPU | KILN_PLAN_STRICT_FP32))
            r.bad = true;
        if (!r.bad && !s) {
            int64_t saved = net->opset;
            net->opset = nopset;
            if (kiln_network_add_node(net, name, op, dom, (int)ni, (const char *const *)ins, (int)no, (const char *const *)outs, (int)na, av))
                s = kiln__fail(err, KILN_ERR_PARSE, "engine file '%s' is damaged: %s", path, net->last_error);
            net->opset = saved;
            plan[i] = pl;
            /* plugins (issue 4): the node must have found that very plugin; then its state replaces the instance */
            if (!s) {
                kiln_node *nn = &net->nodes[net->n_nodes - 1];
                const kiln_plugin_class *pc = kiln__plugin_schema_class(nn->schema);
                const kiln_plugin_class *want = has_plugin == 1 ? kiln__plugin_find_exact(pname, pver, pns) : NULL;
                if (pc != want)
                    s = kiln__fail(err, KILN_ERR_PARSE, "engine file '%s' is damaged: plugin record of node '%s' does not match its op", path, name);
                else if (pc && pstate_len) {
                    kiln_err perr = {{0}};
                    if (kiln__plugin_deserialize(nn, pstate, (size_t)pstate_len, &perr))
                        s = kiln__fail(err, KILN_ERR_PARSE, "engine file '%s': plugin state damaged: %s", path, perr.msg);
                }
            }
        }
        free(pname);
        free(pver);
        free(pns);
        for (uint32_t j = 0; ins && j < ni; j++) free(ins[j]);
        for (uint32_t j = 0; outs && j < no; j++) free(outs[j]);
        for (uint32_t a = 0; av && a < na; a++) free((void *)av[a].name);
        for (int64_t k = 0; strs_to_free && k < n_strs; k++) free(strs_to_free[k]);
        free(strs_to_free);
        free(ins);
        free(outs);
        free(av);
        free(ht);
        free(name);
        free(op);
        free(dom);
    }
    if (s) goto done;
    if (r.bad) DAMAGED(bad_what);
    uint32_t n_out = get_u32(&r);
    for (uint32_t i = 0; i < n_out && !r.bad && !s; i++) {
        char *name = get_str(&r);
        if (name && kiln_network_mark_output(net, name)) s = kiln__fail(err, KILN_ERR_PARSE, "engine file '%s' is damaged: %s", path, net->last_error);
        free(name);
    }
    if (s) goto done;
    uint32_t n_prof = get_u32(&r);
    if (n_prof > 4096) r.bad = true;
    prof = r.bad ? NULL : kiln__calloc(n_prof + 1, sizeof *prof);
    for (uint32_t p = 0; prof && p < n_prof && !r.bad; p++) {
        char *name = get_str(&r);
        snprintf(prof[p].name, sizeof prof[p].name, "%s", name ? name : "");
        free(name);
        prof[p].rank = (int)get_u32(&r);
        if (prof[p].rank < 0 || prof[p].rank > KILN_MAX_DIMS) r.bad = true;
        for (int d = 0; d < prof[p].rank && !r.bad; d++) {
            prof[p].min[d] = get_i64(&r);
            prof[p].opt[d] = get_i64(&r);
            prof[p].max[d] = get_i64(&r);
        }
    }
    if (r.bad || !prof) DAMAGED("profiles");
    /* v3: weights in run-time form */
    no_data = kiln__calloc((size_t)net->n_tensors + 1, sizeof(bool));
    if (!no_data) DAMAGED("out of memory");
    for (int k = 0; k < n_no_data; k++) no_data[no_data_list[k]] = true;
    {
        const char *why = read_weights(&r, net, no_data, w_out);
        if (why) DAMAGED(why);
        if (r.pos != r.n) DAMAGED("unexpected bytes after the weights");
        if (w_out && w_out->bytes != wbytes) DAMAGED("weights (blob length in the trailer)");
    }

    /* a structurally valid graph: every name resolves, no cycle */
    int *order = NULL;
    s = kiln__net_toposort(net, &order, err);
    free(order);
    if (s) {
        kiln__err_prefix(err, "engine file '%s' is damaged", path);
        goto done;
    }
    *net_out = net;
    *plan_out = plan;
    *prof_out = prof;
    *n_prof_out = (int)n_prof;
    net = NULL;
    plan = NULL;
    prof = NULL;
    if (w_out) {
        /* the blob stays where it was read: the file buffer becomes the weights' memory */
        w_out->mem = data;
        w_out->no_host = no_data;
        data = NULL;
        no_data = NULL;
    }
done:
    if (s && w_out) kiln__weights_free(w_out);
    kiln_network_free(net);
    free(plan);
    free(prof);
    free(hdr);
    free(data);
    free(no_data);
    free(no_data_list);
    return s;
}

void kiln__weights_free(kiln_weights *w)
{
    if (!w) return;
    free(w->forms);
    free(w->mem);
    free(w->no_host);
    memset(w, 0, sizeof *w);
}

void kiln__engine_file_reseal(uint8_t *b, size_t n)
{
    uint32_t hl;
    if (n < 32) return;
    memcpy(&hl, b + 12, 4);
    if (hl > n - 32) return;
    uint64_t sum = sum64(sum64(SUM_SEED, b + 16, hl), b + 16 + hl + 8, n - 8 - (16 + hl + 8));
    memcpy(b + n - 8, &sum, 8); /* the trailer's blob length and sum are covered, kept as they are */
}

int kiln_engine_file_probe(const char *path)
{
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (!f) return 0;
    char m[8];
    size_t n = fread(m, 1, 8, f);
    fclose(f);
    return n == 8 && !memcmp(m, MAGIC, 8);
}
