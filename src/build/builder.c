/*
 * The builder: copies the network, runs the optimization passes, decides per
 * node where it runs and in which precision, converts the weights into the form
 * each GPU op reads (weights.c; stored so in the engine file) and uploads them,
 * times each op's tactics at the opt shapes (with a timing cache), and returns
 * an engine.
 */
#include "../passes/passes.h"
#include "../runtime/context.h"
#include "../plugin/plugin.h" /* unknown-op error (issue 4) */
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>

typedef struct layer_pin {
    char name[256];
    kiln_precision p;
    bool automatic; /* the builder's own (fp16_keep.c's accuracy rules), not the caller's */
} layer_pin;

struct kiln_builder_config {
    kiln_precision precision;
    layer_pin *pins;
    int n_pins;
    kiln_shape_profile *profiles;
    int n_profiles;
    char timing_cache[4096];
    int verbose;
    char last_error[1024];
};

kiln_status kiln_builder_config_create(kiln_builder_config **out)
{
    if (!out) return KILN_ERR_INVALID_ARG;
    *out = calloc(1, sizeof **out);
    if (!*out) return KILN_ERR_OUT_OF_MEMORY;
    (*out)->precision = KILN_PREC_TF32;
    return KILN_OK;
}

void kiln_builder_config_free(kiln_builder_config *cfg)
{
    if (!cfg) return;
    free(cfg->pins);
    free(cfg->profiles);
    free(cfg);
}

const char *kiln_builder_config_last_error(const kiln_builder_config *cfg) { return cfg ? cfg->last_error : ""; }

kiln_status kiln_builder_config_set_precision(kiln_builder_config *cfg, kiln_precision p)
{
    if (!cfg || (p != KILN_PREC_FP32 && p != KILN_PREC_TF32 && p != KILN_PREC_FP16)) return KILN_ERR_INVALID_ARG;
    cfg->precision = p;
    return KILN_OK;
}

kiln_status kiln_builder_config_set_layer_precision(kiln_builder_config *cfg, const char *node, kiln_precision p)
{
    if (!cfg || !node || strlen(node) >= 256) return KILN_ERR_INVALID_ARG;
    layer_pin *np = realloc(cfg->pins, sizeof *np * (size_t)(cfg->n_pins + 1));
    if (!np) return KILN_ERR_OUT_OF_MEMORY;
    cfg->pins = np;
    snprintf(np[cfg->n_pins].name, sizeof np[cfg->n_pins].name, "%s", node);
    np[cfg->n_pins++].p = p;
    return KILN_OK;
}

kiln_status kiln_builder_config_set_shape_range(kiln_builder_config *cfg, const char *input, int rank, const int64_t *min,
                                                const int64_t *opt, const int64_t *max)
{
    if (!cfg || !input || !min || !opt || !max) return KILN_ERR_INVALID_ARG;
    if (rank < 0 || rank > KILN_MAX_DIMS || strlen(input) >= 256) {
        snprintf(cfg->last_error, sizeof cfg->last_error, "shape range for '%s': rank %d is not supported", input, rank);
        return KILN_ERR_INVALID_ARG;
    }
    for (int d = 0; d < rank; d++)
        if (min[d] < 0 || min[d] > opt[d] || opt[d] > max[d]) {
            snprintf(cfg->last_error, sizeof cfg->last_error,
                     "shape range for '%s': dimension %d needs 0 <= min <= opt <= max, got %lld, %lld, %lld", input, d,
                     (long long)min[d], (long long)opt[d], (long long)max[d]);
            kiln__set_last_error(cfg->last_error);
            return KILN_ERR_INVALID_ARG;
        }
    kiln_shape_profile *p = NULL;
    for (int i = 0; i < cfg->n_profiles; i++)
        if (!strcmp(cfg->profiles[i].name, input)) p = &cfg->profiles[i];
    if (!p) {
        kiln_shape_profile *np = realloc(cfg->profiles, sizeof *np * (size_t)(cfg->n_profiles + 1));
        if (!np) return KILN_ERR_OUT_OF_MEMORY;
        cfg->profiles = np;
        p = &np[cfg->n_profiles++];
    }
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", input);
    p->rank = rank;
    memcpy(p->min, min, sizeof(int64_t) * (size_t)rank);
    memcpy(p->opt, opt, sizeof(int64_t) * (size_t)rank);
    memcpy(p->max, max, sizeof(int64_t) * (size_t)rank);
    return KILN_OK;
}

kiln_status kiln_builder_config_set_timing_cache(kiln_builder_config *cfg, const char *path)
{
    if (!cfg) return KILN_ERR_INVALID_ARG;
    snprintf(cfg->timing_cache, sizeof cfg->timing_cache, "%s", path ? path : "");
    return KILN_OK;
}

kiln_status kiln_builder_config_set_verbose(kiln_builder_config *cfg, int verbose)
{
    if (!cfg) return KILN_ERR_INVALID_ARG;
    cfg->verbose = verbose;
    return KILN_OK;
}

/* --- timing cache: one line per layer signature: "key<TAB>tactic<TAB>ms" ------------ */

typedef struct cache_entry {
    char *key;
    int tactic;
    float ms;
} cache_entry;

typedef struct timing_cache {
    cache_entry *e;
    int n;
    bool dirty;
} timing_cache;

static void cache_load(timing_cache *c, const char *path)
{
    FILE *f = path[0] ? fopen(path, "r") : NULL;
    if (!f) return;
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        char *tab1 = strchr(line, '\t');
        if (!tab1) continue;
        *tab1 = 0;
        int tactic = 0;
        float ms = 0;
        if (sscanf(tab1 + 1, "%d\t%f", &tactic, &ms) != 2 || tactic < 0) continue;
        cache_entry *ne = realloc(c->e, sizeof *ne * (size_t)(c->n + 1));
        if (!ne) break;
        c->e = ne;
        c->e[c->n].key = kiln__strdup(line);
        c->e[c->n].tactic = tactic;
        c->e[c->n++].ms = ms;
    }
    fclose(f);
}

static const cache_entry *cache_find(const timing_cache *c, const char *key)
{
    for (int i = 0; i < c->n; i++)
        if (c->e[i].key && !strcmp(c->e[i].key, key)) return &c->e[i];
    return NULL;
}

static void cache_put(timing_cache *c, const char *key, int tactic, float ms)
{
    cache_entry *ne = realloc(c->e, sizeof *ne * (size_t)(c->n + 1));
    if (!ne) return;
    c->e = ne;
    c->e[c->n].key = kiln__strdup(key);
    c->e[c->n].tactic = tactic;
    c->e[c->n++].ms = ms;
    c->dirty = true;
}

static void cache_save(const timing_cache *c, const char *path, kiln_err *err)
{
    if (!path[0] || !c->dirty) return;
    size_t cap = 4096, pos = 0;
    for (int i = 0; i < c->n; i++) cap += strlen(c->e[i].key ? c->e[i].key : "") + 64;
    char *buf = malloc(cap);
    if (!buf) return;
    for (int i = 0; i < c->n; i++)
        if (c->e[i].key) pos += (size_t)snprintf(buf + pos, cap - pos, "%s\t%d\t%.6f\n", c->e[i].key, c->e[i].tactic, c->e[i].ms);
    kiln__write_file_atomic(path, buf, pos, err);
    free(buf);
}

static void cache_free(timing_cache *c)
{
    for (int i = 0; i < c->n; i++) free(c->e[i].key);
    free(c->e);
}

/* Layer signature: op, attributes, input/output dims, dtypes, layout, engine precision, tactic count, GPU and
 * library versions (and "|strict" for a layer the builder keeps in fp32 without TF32). */
static void layer_key(const kiln_engine *eng, const kiln_context *ctx, const kiln_step *st, int n_tactics, char *buf, size_t len)
{
    const kiln_node *nd = &eng->net->nodes[st->node];
    /* the engine's precision too: an fp32 (no TF32) build's tactic list differs from a tf32 one's */
    size_t pos = (size_t)snprintf(buf, len, "%s|cc%d%d|cudnn%d|cublas%d|p%d|%s/%s|t%d|", eng->gpu.name, eng->gpu.cc_major,
                                  eng->gpu.cc_minor, eng->gpu.cudnn_version, eng->gpu.cublas_version, (int)eng->hdr.precision,
                                  nd->domain, nd->op_type, n_tactics);
    for (int a = 0; a < nd->n_attrs && pos < len; a++) {
        const kiln_attr *at = &nd->attrs[a];
        if (!strcmp(at->name, "fused_nodes")) continue;
        pos += (size_t)snprintf(buf + pos, len - pos, "%s=", at->name);
        if (at->type == KILN_ATTR_INT) pos += (size_t)snprintf(buf + pos, len - pos, "%lld", (long long)at->i);
        else if (at->type == KILN_ATTR_FLOAT) pos += (size_t)snprintf(buf + pos, len - pos, "%g", at->f);
        else if (at->type == KILN_ATTR_STRING) pos += (size_t)snprintf(buf + pos, len - pos, "%s", at->s);
        else if (at->type == KILN_ATTR_INTS)
            for (int64_t k = 0; k < at->n && pos < len; k++) pos += (size_t)snprintf(buf + pos, len - pos, "%lld,", (long long)at->ints[k]);
        pos += (size_t)snprintf(buf + pos < buf + len ? buf + pos : buf, pos < len ? len - pos : 0, ";");
    }
    for (int j = 0; j < nd->n_in && pos < len; j++) {
        if (nd->in[j] < 0) continue;
        const kiln_value *v = &ctx->vals[nd->in[j]];
        pos += (size_t)snprintf(buf + pos, len - pos, "|%s[", kiln_dtype_name(st->in_reps[j] >= 0 ? ctx->reps[st->in_reps[j]].t.dtype : v->dtype));
        for (int d = 0; d < v->shape.rank && pos < len; d++) pos += (size_t)snprintf(buf + pos, len - pos, "%lld,", (long long)v->shape.d[d].add);
        if (pos < len) pos += (size_t)snprintf(buf + pos, len - pos, "]");
    }
    if (pos < len) snprintf(buf + pos, len - pos, "|layout%d", eng->hdr.layout);
    for (char *c = buf; *c; c++)
        if (*c == '\t' || *c == '\n') *c = ' ';
}

static kiln_status fill_random(void *dev, kiln_dtype dt, int64_t n, kiln_err *err)
{
    size_t es = kiln_dtype_size(dt);
    uint8_t *h = kiln__calloc((size_t)n + 1, es);
    if (!h) return KILN_ERR_OUT_OF_MEMORY;
    kiln_value v = {.dtype = dt, .data = h};
    uint32_t r = 0x9e3779b9u;
    for (int64_t i = 0; i < n; i++) {
        r = r * 1664525u + 1013904223u;
        double x = (double)(r >> 8) / (double)(1u << 24);
        if (dt == KILN_DT_FLOAT || dt == KILN_DT_FLOAT16 || dt == KILN_DT_DOUBLE) kiln__value_set_f64(&v, i, x * 2 - 1);
        else kiln__value_set_i64(&v, i, 0);
    }
    kiln_status s = kiln__gpu_memcpy_h2d(dev, h, (size_t)n * es, NULL, err);
    if (!s) s = kiln__gpu_sync(NULL, err);
    free(h);
    return s;
}

/* Times every tactic of every GPU launch at the opt shapes; keeps the fastest. */
/* GPU time of one launch, in ms, `reps` samples. The launch is captured
 * TIMING_BATCH times into a CUDA graph and the graph replayed between two
 * events: timing single eager launches would measure the host's enqueue cost
 * (cuDNN's host work can exceed a small kernel's run time), which the engine
 * never pays because it replays a graph too. Ops that cannot be captured are
 * timed eagerly, TIMING_BATCH launches per sample. Returns the samples taken. */
#define TIMING_BATCH 8
static int time_launch(const kiln_cuda_op *op, const kiln_cuda_launch *l, void *stream, void *ev0, void *ev1,
                       float *times, int reps, kiln_err *terr)
{
    void *graph = NULL;
    bool captured = !kiln__gpu_graph_begin(stream, terr);
    for (int b = 0; captured && b < TIMING_BATCH; b++)
        if (op->launch(l, terr)) captured = false;
    if (!kiln__gpu_graph_end(stream, &graph, terr) && captured && graph) {
        /* first replay uploads the graph */
        if (kiln__gpu_graph_launch(graph, stream, terr) || kiln__gpu_sync(stream, terr)) captured = false;
    } else {
        captured = false;
    }
    if (!captured) {
        kiln__gpu_graph_destroy(graph);
        graph = NULL;
        terr->msg[0] = 0;
        (void)kiln__gpu_sync(stream, terr);
        terr->msg[0] = 0;
    }
    int nt = 0;
    for (int rep = 0; rep < reps; rep++) {
        kiln_status ls = kiln__gpu_event_record(ev0, stream, terr);
        if (graph)
            ls = ls ? ls : kiln__gpu_graph_launch(graph, stream, terr);
        else
            for (int b = 0; b < TIMING_BATCH && !ls; b++) ls = op->launch(l, terr);
        if (!ls) ls = kiln__gpu_event_record(ev1, stream, terr);
        float ms = 0;
        if (ls || kiln__gpu_event_elapsed(ev0, ev1, &ms, terr)) break;
        times[nt++] = ms / TIMING_BATCH;
    }
    kiln__gpu_graph_destroy(graph);
    return nt;
}

static bool pinned(const kiln_builder_config *cfg, const char *name)
{
    for (int k = 0; k < cfg->n_pins; k++)
        if (!strcmp(cfg->pins[k].name, name)) return true;
    return false;
}

/* Appends a line to the engine's build log (best effort: a note lost to OOM is only a note). */
static void build_note(kiln_engine *eng, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    size_t old = eng->build_log ? strlen(eng->build_log) : 0, add = strlen(line);
    char *nb = realloc(eng->build_log, old + add + 1);
    if (!nb) return;
    memcpy(nb + old, line, add + 1);
    eng->build_log = nb;
}

static kiln_status time_tactics(kiln_engine *eng, const kiln_builder_config *cfg, kiln_err *err)
{
    kiln_context *ctx = NULL;
    kiln_status s = kiln_context_create(eng, &ctx);
    if (s) return kiln__fail(err, s, "%s", kiln_last_error());
    kiln_network *net = eng->net;
    void **bufs = kiln__calloc((size_t)(net->n_inputs + net->n_outputs) + 1, sizeof(void *));
    void *stream = NULL, *ev0 = NULL, *ev1 = NULL, *ws = NULL;
    timing_cache cache = {0};
    cache_load(&cache, cfg->timing_cache);
    if (!bufs) s = KILN_ERR_OUT_OF_MEMORY;
    if (!s) s = kiln__context_resolve(ctx, err);
    /* real buffers with random data, so the timing sees real memory traffic */
    for (int i = 0; i < net->n_inputs && !s; i++) {
        int t = net->inputs[i];
        int64_t n = kiln__value_numel(&ctx->vals[t]);
        s = kiln__gpu_malloc(&bufs[i], (size_t)(n + 1) * kiln_dtype_size(ctx->vals[t].dtype), err);
        if (!s) s = fill_random(bufs[i], ctx->vals[t].dtype, n, err);
        if (!s) s = kiln_context_set_tensor_address(ctx, net->tensors[t].name, bufs[i]);
    }
    for (int o = 0; o < net->n_outputs && !s; o++) {
        int t = net->outputs[o];
        int64_t n = kiln__value_numel(&ctx->vals[t]);
        s = kiln__gpu_malloc(&bufs[net->n_inputs + o], (size_t)(n + 1) * kiln_dtype_size(ctx->vals[t].dtype), err);
        if (!s) s = kiln_context_set_tensor_address(ctx, net->tensors[t].name, bufs[net->n_inputs + o]);
    }
    if (!s) s = kiln__gpu_stream_create(&stream, err);
    if (!s) s = kiln__gpu_event_create(&ev0, err);
    if (!s) s = kiln__gpu_event_create(&ev1, err);
    if (!s) s = kiln__gpu_exec_set_stream(&ctx->ex, stream, err);
    /* one full run so every activation holds real values */
    if (!s) s = kiln__context_run_steps(ctx, stream, err);
    if (!s) s = kiln__gpu_sync(stream, err);
    for (int i = 0; i < ctx->n_steps && !s; i++) {
        kiln_step *st = &ctx->steps[i];
        if (st->kind != STEP_LAUNCH) continue;
        const kiln_node *nd = &net->nodes[st->node];
        const kiln_cuda_op *op = kiln__cuda_op_find(nd->domain, nd->op_type);
        if (!op->tactic_count) continue;
        kiln_cuda_tensor din[64], dout[64];
        const kiln_value *host[64];
        kiln__context_step_tensors(ctx, st, din, dout, host);
        kiln_cuda_exec ex = ctx->ex;
        kiln_cuda_launch l = {.node = nd, .params = nd->params, .in = din, .host = host, .out = dout, .state = eng->state[st->node], .ex = &ex,
                              .strict_fp32 = (eng->plan[st->node].on_gpu & KILN_PLAN_STRICT_FP32) != 0};
        int n_tactics = op->tactic_count(&l);
        if (n_tactics <= 1) continue;
        char key[4096];
        layer_key(eng, ctx, st, n_tactics, key, sizeof key);
        if (l.strict_fp32) strncat(key, "|strict", sizeof key - strlen(key) - 1);
        const cache_entry *ce = cache_find(&cache, key);
        if (ce && ce->tactic < n_tactics) {
            eng->plan[st->node].tactic = ce->tactic;
            eng->plan[st->node].tactic_ms = ce->ms;
            continue;
        }
        float best_ms = 1e30f;
        int best = 0;
        for (int tac = 0; tac < n_tactics; tac++) {
            l.tactic = tac;
            size_t wsb = op->workspace ? op->workspace(&l) : 0;
            kiln__gpu_free(ws);
            ws = NULL;
            if (wsb && kiln__gpu_malloc(&ws, wsb, err)) {
                err->msg[0] = 0;
                continue; /* a tactic whose workspace does not fit is not a candidate */
            }
            ex.workspace = ws;
            ex.workspace_bytes = wsb;
            kiln_err terr = {{0}};
            if (op->launch(&l, &terr) || kiln__gpu_sync(stream, &terr)) continue;
            float times[7];
            int nt = time_launch(op, &l, stream, ev0, ev1, times, 7, &terr);
            if (nt < 7) continue;
            for (int a = 1; a < nt; a++)
                for (int b = a; b > 0 && times[b] < times[b - 1]; b--) {
                    float tmp = times[b];
                    times[b] = times[b - 1];
                    times[b - 1] = tmp;
                }
            if (times[nt / 2] < best_ms) {
                best_ms = times[nt / 2];
                best = tac;
            }
        }
        eng->plan[st->node].tactic = best;
        eng->plan[st->node].tactic_ms = best_ms < 1e29f ? best_ms : 0;
        cache_put(&cache, key, best, eng->plan[st->node].tactic_ms);
    }
    kiln_err cerr = {{0}};
    if (!s) cache_save(&cache, cfg->timing_cache, &cerr);
    cache_free(&cache);
    kiln__gpu_free(ws);
    kiln__gpu_event_destroy(ev0);
    kiln__gpu_event_destroy(ev1);
    kiln_context_free(ctx);
    kiln__gpu_stream_destroy(stream);
    for (int i = 0; bufs && i < net->n_inputs + net->n_outputs; i++) kiln__gpu_free(bufs[i]);
    free(bufs);
    return s;
}

static kiln_status build(const kiln_network *src, const kiln_builder_config *cfg, kiln_engine **out, kiln_err *err)
{
    /* plugins (issue 4): an op neither kiln nor a loaded plugin knows stops the build first, GPU or not */
    for (int i = 0; i < src->n_nodes; i++)
        if (!src->nodes[i].schema) return kiln__plugin_unknown_op(err, &src->nodes[i]);
    kiln_gpu_info gpu;
    kiln_status s = kiln__gpu_init(&gpu, err);
    if (s) return s;
    /* every shape flag must name an input */
    for (int p = 0; p < cfg->n_profiles; p++) {
        bool found = false;
        for (int i = 0; i < src->n_inputs; i++) found |= !strcmp(src->tensors[src->inputs[i]].name, cfg->profiles[p].name);
        if (!found) {
            char names[2048] = "";
            size_t pos = 0;
            for (int i = 0; i < src->n_inputs && pos < sizeof names; i++)
                pos += (size_t)snprintf(names + pos, sizeof names - pos, "%s'%s'", i ? ", " : "", src->tensors[src->inputs[i]].name);
            return kiln__fail(err, KILN_ERR_NOT_FOUND, "shape given for '%s', which is not an input; inputs: %s", cfg->profiles[p].name, names);
        }
    }
    for (int i = 0; i < src->n_inputs; i++) {
        const kiln_tensor *t = &src->tensors[src->inputs[i]];
        const kiln_shape_profile *pr = NULL;
        for (int p = 0; p < cfg->n_profiles; p++)
            if (!strcmp(cfg->profiles[p].name, t->name)) pr = &cfg->profiles[p];
        if (pr && pr->rank != t->v.shape.rank)
            return kiln__fail(err, KILN_ERR_SHAPE, "shape for '%s' has %d dims, the input has %d", t->name, pr->rank, t->v.shape.rank);
        for (int d = 0; d < t->v.shape.rank; d++) {
            kiln_dim dd = t->v.shape.d[d];
            if (!kiln__dim_is_const(dd) && !pr) {
                char sh[256];
                kiln__shape_str(src, &t->v.shape, sh, sizeof sh);
                return kiln__fail(err, KILN_ERR_SHAPE, "input '%s' %s has dynamic dimensions: give its shapes (--shapes=%s:... or --minShapes/--optShapes/--maxShapes)",
                                  t->name, sh, t->name);
            }
            if (pr && kiln__dim_is_const(dd) && (pr->min[d] != dd.add || pr->max[d] != dd.add))
                return kiln__fail(err, KILN_ERR_SHAPE, "shape for '%s': dimension %d is fixed at %lld in the model", t->name, d, (long long)dd.add);
        }
    }
    kiln_engine *eng = calloc(1, sizeof *eng);
    if (!eng) return KILN_ERR_OUT_OF_MEMORY;
    s = kiln__net_clone(src, &eng->net, err);
    /* an input whose profile is one shape becomes static, so shape computations fold */
    bool static_shapes = true;
    for (int i = 0; !s && i < eng->net->n_inputs; i++) {
        kiln_tensor *t = &eng->net->tensors[eng->net->inputs[i]];
        for (int p = 0; p < cfg->n_profiles; p++) {
            const kiln_shape_profile *pr = &cfg->profiles[p];
            if (strcmp(pr->name, t->name)) continue;
            bool fixed = true;
            for (int d = 0; d < pr->rank; d++) fixed &= pr->min[d] == pr->max[d];
            if (fixed)
                for (int d = 0; d < pr->rank; d++) t->v.shape.d[d] = kiln__dim_const(pr->min[d]);
            else static_shapes = false;
        }
    }
    /* fp16: layers kept fp32 for accuracy (fp16_keep.c) become pins the caller did not give;
     * the caller's pins win. KILN_FP16_PLAIN=1 skips the rule (A/B). */
    kiln_builder_config with_auto;
    layer_pin *all_pins = NULL;
    int n_chain = 0, n_skip = 0, n_first = 0;
    const char *plain = getenv("KILN_FP16_PLAIN");
    if (!s && cfg->precision == KILN_PREC_FP16 && !(plain && plain[0] == '1')) {
        /* the rule reads tensor types, which the network before the passes may not have yet:
         * it looks at a typed copy (the passes' own folding stays as it is) */
        kiln_network *typed = NULL;
        kiln_err terr = {{0}};
        if (kiln__net_clone(eng->net, &typed, &terr) || kiln_network_infer_shapes(typed)) {
            kiln_network_free(typed);
            typed = NULL; /* an untyped graph: the passes will say what is wrong with it */
        }
        bool *keep = typed ? kiln__calloc((size_t)typed->n_nodes + 1, sizeof(bool)) : NULL;
        all_pins = typed ? kiln__calloc((size_t)cfg->n_pins + (size_t)typed->n_nodes + 1, sizeof *all_pins) : NULL;
        if (typed && (!keep || !all_pins || kiln__fp16_keep_fp32(typed, keep, &n_chain, &n_skip, &n_first))) {
            s = kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        } else if (typed) {
            int n = cfg->n_pins;
            if (n) memcpy(all_pins, cfg->pins, sizeof *all_pins * (size_t)n);
            for (int i = 0; i < typed->n_nodes; i++) {
                const char *nm = typed->nodes[i].name;
                if (!keep[i] || !nm || strlen(nm) >= sizeof all_pins[0].name || pinned(cfg, nm)) continue;
                snprintf(all_pins[n].name, sizeof all_pins[n].name, "%s", nm);
                all_pins[n].p = KILN_PREC_FP32;
                all_pins[n++].automatic = true;
            }
            with_auto = *cfg;
            with_auto.pins = all_pins;
            with_auto.n_pins = n;
            cfg = &with_auto;
        }
        free(keep);
        kiln_network_free(typed);
    }
    if (!s) {
        const char **pins = kiln__calloc((size_t)cfg->n_pins + 1, sizeof *pins);
        for (int i = 0; pins && i < cfg->n_pins; i++) pins[i] = cfg->pins[i].name;
        kiln_pass_options po = {.static_shapes = static_shapes, .precision = cfg->precision, .pinned = pins, .n_pinned = cfg->n_pins};
        s = kiln__passes_run(eng->net, &po, NULL, NULL, err);
        free(pins);
    }
    if (!s) {
        for (int p = 0; p < cfg->n_pins; p++) {
            bool found = cfg->pins[p].automatic; /* one of the builder's own, perhaps removed as dead */
            for (int i = 0; i < eng->net->n_nodes && !found; i++) found |= !strcmp(eng->net->nodes[i].name, cfg->pins[p].name);
            if (!found) {
                s = kiln__fail(err, KILN_ERR_NOT_FOUND, "--layerPrecisions names '%s', which is not a layer of the optimized network", cfg->pins[p].name);
                break;
            }
        }
    }
    if (!s) {
        eng->gpu = gpu;
        eng->hdr.format_version = KILN_ENGINE_FORMAT_VERSION;
        snprintf(eng->hdr.kiln_version, sizeof eng->hdr.kiln_version, "%d.%d.%d", KILN_VERSION_MAJOR, KILN_VERSION_MINOR, KILN_VERSION_PATCH);
        snprintf(eng->hdr.gpu_name, sizeof eng->hdr.gpu_name, "%s", gpu.name);
        eng->hdr.cc_major = gpu.cc_major;
        eng->hdr.cc_minor = gpu.cc_minor;
        eng->hdr.cuda_runtime = gpu.cuda_runtime_version;
        eng->hdr.cudnn = gpu.cudnn_version;
        eng->hdr.cublas = gpu.cublas_version;
        eng->hdr.precision = cfg->precision;
        /* fp16 tensor-core convolutions want channels last */
        eng->hdr.layout = cfg->precision == KILN_PREC_FP16 ? KILN_LAYOUT_NHWC : KILN_LAYOUT_ROW_MAJOR;
        eng->n_profiles = cfg->n_profiles;
        eng->profiles = kiln__calloc((size_t)cfg->n_profiles + 1, sizeof *eng->profiles);
        eng->plan = kiln__calloc((size_t)eng->net->n_nodes + 1, sizeof *eng->plan);
        if (!eng->profiles || !eng->plan) s = kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    if (!s) {
        memcpy(eng->profiles, cfg->profiles, sizeof *eng->profiles * (size_t)cfg->n_profiles);
        for (int i = 0; i < eng->net->n_nodes; i++) {
            const kiln_node *nd = &eng->net->nodes[i];
            kiln_precision p = cfg->precision;
            bool strict = false; /* the builder's own fp32 pins get fp32 math: TF32 would round as fp16 does */
            for (int k = 0; k < cfg->n_pins; k++)
                if (!strcmp(cfg->pins[k].name, nd->name)) {
                    p = cfg->pins[k].p;
                    strict = cfg->pins[k].automatic && p == KILN_PREC_FP32;
                }
            eng->plan[i].on_gpu = kiln__cuda_op_find(nd->domain, nd->op_type) != NULL ? KILN_PLAN_GPU : 0;
            if (eng->plan[i].on_gpu && strict) eng->plan[i].on_gpu |= KILN_PLAN_STRICT_FP32;
            eng->plan[i].compute = p == KILN_PREC_FP16 ? KILN_DT_FLOAT16 : KILN_DT_FLOAT;
        }
        s = kiln__net_toposort(eng->net, &eng->order, err);
        if (n_chain + n_skip + n_first)
            build_note(eng, "[I] fp16: %d node(s) of long residual chains, %d of the input-image skip and %d first conv(s) of "
                            "the image keep fp32 for accuracy (KILN_FP16_PLAIN=1 keeps them fp16)\n", n_chain, n_skip, n_first);
    }
    /* ask each op whether it takes these types and shapes (at the opt shapes) */
    if (!s) {
        kiln_context *ctx = NULL;
        s = kiln_context_create(eng, &ctx);
        if (s) kiln__fail(err, s, "%s", kiln_last_error());
        if (!s) s = kiln__context_resolve_shapes(ctx, err);
        for (int i = 0; !s && i < eng->net->n_nodes; i++) {
            const kiln_node *nd = &eng->net->nodes[i];
            const kiln_cuda_op *op = kiln__cuda_op_find(nd->domain, nd->op_type);
            if (!op || !op->supports || !eng->plan[i].on_gpu) continue;
            const kiln_value *in[64];
            for (int j = 0; j < nd->n_in && j < 64; j++) in[j] = nd->in[j] >= 0 ? &ctx->vals[nd->in[j]] : NULL;
            if (nd->n_out > 0 && nd->out[0] >= 0 && !op->supports(nd, in, &ctx->vals[nd->out[0]])) eng->plan[i].on_gpu = 0;
        }
        for (int i = 0; !s && i < eng->net->n_nodes; i++) {
            const kiln_node *nd = &eng->net->nodes[i];
            const kiln_value *in[64];
            for (int j = 0; j < nd->n_in && j < 64; j++) in[j] = nd->in[j] >= 0 ? &ctx->vals[nd->in[j]] : NULL;
            const kiln_value *o0 = nd->n_out > 0 && nd->out[0] >= 0 ? &ctx->vals[nd->out[0]] : NULL;
            bool host_only = nd->n_out > 0;
            for (int j = 0; j < nd->n_out; j++)
                if (nd->out[j] >= 0 && !ctx->host_known[nd->out[j]]) host_only = false;
            if (host_only) continue; /* computed at shape resolution, never a layer */
            char why[256];
            if (eng->plan[i].compute == KILN_DT_FLOAT16 && !pinned(cfg, nd->name) && kiln__fp16_needs_fp32(nd, in, o0, why, sizeof why)) {
                eng->plan[i].compute = KILN_DT_FLOAT;
                build_note(eng, "[W] layer '%s' (%s) runs in fp32: %s (--layerPrecisions=%s:fp16 overrides)\n", nd->name,
                           nd->op_type, why, nd->name);
            }
            if (!eng->plan[i].on_gpu)
                build_note(eng, "[W] layer '%s' (%s) has no GPU kernel for its types/shapes: it runs on the CPU, with copies\n",
                           nd->name, nd->op_type);
        }
        kiln_context_free(ctx);
    }
    /* weights into run-time form once, here; the engine then loads them as a saved one would */
    if (!s) s = kiln__weights_pack(eng, err);
    if (!s) s = kiln__engine_prepare(eng, err);
    if (!s) s = time_tactics(eng, cfg, err);
    free(all_pins);
    if (s) {
        kiln_engine_free(eng);
        return s;
    }
    *out = eng;
    return KILN_OK;
}

kiln_status kiln_build(const kiln_network *net, const kiln_builder_config *cfg, kiln_engine **out)
{
    if (!net || !out) return KILN_ERR_INVALID_ARG;
    *out = NULL;
    kiln_builder_config defaults = {.precision = KILN_PREC_TF32};
    if (!cfg) cfg = &defaults;
    kiln_err err = {{0}};
    kiln_status s = build(net, cfg, out, &err);
    if (s) kiln__set_last_error(err.msg[0] ? err.msg : kiln_status_str(s));
    return s;
}
