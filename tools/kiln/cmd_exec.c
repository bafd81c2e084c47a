/*
 * kiln exec: trtexec for kiln engines. Builds an engine from ONNX (or loads one),
 * runs it on the GPU with data already on the device, times each iteration with
 * CUDA events after a warm-up (H2D copy, GPU compute, D2H copy, host enqueue) and
 * prints trtexec's "Performance summary". Also holds the engine-running helpers
 * that kiln compare shares (cli_engine_*).
 */
#include "cli.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* --- float16 and element access ------------------------------------------------------ */

float cli_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) bits = sign | 0x7f800000u | (man << 13);
    else if (exp) bits = sign | ((exp + 112) << 23) | (man << 13);
    else if (!man) bits = sign;
    else {
        /* subnormal: normalize */
        int e = -1;
        do {
            man <<= 1;
            e++;
        } while (!(man & 0x400));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

uint16_t cli_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) return sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0);
    if (absx >= 0x477ff000u) return sign | 0x7c00; /* rounds to infinity */
    if (absx < 0x38800000u) {
        /* float16 subnormal or zero: round the shifted mantissa to nearest even */
        if (absx < 0x33000000u) return sign;
        uint32_t man = (absx & 0x7fffff) | 0x800000;
        int shift = 126 - (int)(absx >> 23); /* 14..24: value = man * 2^-(shift) in units of 2^-24 */
        uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return sign | (uint16_t)half;
    }
    uint32_t r = absx + 0xfff + ((absx >> 13) & 1); /* round to nearest even */
    return sign | (uint16_t)((r - 0x38000000u) >> 13);
}

double cli_elem_f64(const kiln_host_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case KILN_DT_FLOAT: return ((const float *)t->data)[i];
    case KILN_DT_DOUBLE: return ((const double *)t->data)[i];
    case KILN_DT_FLOAT16: return cli_f16_to_f32(((const uint16_t *)t->data)[i]);
    case KILN_DT_BFLOAT16: {
        uint32_t bits = (uint32_t)((const uint16_t *)t->data)[i] << 16;
        float f;
        memcpy(&f, &bits, sizeof f);
        return f;
    }
    case KILN_DT_INT64: return (double)((const int64_t *)t->data)[i];
    case KILN_DT_INT32: return ((const int32_t *)t->data)[i];
    case KILN_DT_INT16: return ((const int16_t *)t->data)[i];
    case KILN_DT_UINT16: return ((const uint16_t *)t->data)[i];
    case KILN_DT_UINT32: return ((const uint32_t *)t->data)[i];
    case KILN_DT_UINT64: return (double)((const uint64_t *)t->data)[i];
    case KILN_DT_INT8: return ((const int8_t *)t->data)[i];
    case KILN_DT_UINT8:
    case KILN_DT_BOOL: return ((const uint8_t *)t->data)[i];
    default: return NAN;
    }
}

/* --- random inputs -------------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64*: fixed seed, so every run sees the same "random" inputs */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

/* Uniform in [-1, 1] with |x| >= 1/1024: never zero, so a kernel that ignores its input shows. */
static double rng_value(uint64_t *s)
{
    double u = (double)(rng_next(s) >> 11) / 9007199254740992.0;
    double x = u * 2 - 1;
    if (fabs(x) < 1.0 / 1024) x = x < 0 ? -1.0 / 1024 : 1.0 / 1024;
    return x;
}

static void fill_random(kiln_host_tensor *t, uint64_t *s)
{
    int64_t n = kiln_host_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        double x = rng_value(s);
        int64_t k = 1 + (int64_t)(rng_next(s) % 3); /* integers: 1..3 */
        switch (t->dtype) {
        case KILN_DT_FLOAT: ((float *)t->data)[i] = (float)x; break;
        case KILN_DT_DOUBLE: ((double *)t->data)[i] = x; break;
        case KILN_DT_FLOAT16: ((uint16_t *)t->data)[i] = cli_f32_to_f16((float)x); break;
        case KILN_DT_BFLOAT16: {
            float f = (float)x;
            uint32_t bits;
            memcpy(&bits, &f, sizeof bits);
            ((uint16_t *)t->data)[i] = (uint16_t)(bits >> 16);
            break;
        }
        case KILN_DT_INT64: ((int64_t *)t->data)[i] = k; break;
        case KILN_DT_UINT64: ((uint64_t *)t->data)[i] = (uint64_t)k; break;
        case KILN_DT_INT32: ((int32_t *)t->data)[i] = (int32_t)k; break;
        case KILN_DT_UINT32: ((uint32_t *)t->data)[i] = (uint32_t)k; break;
        case KILN_DT_INT16: ((int16_t *)t->data)[i] = (int16_t)k; break;
        case KILN_DT_UINT16: ((uint16_t *)t->data)[i] = (uint16_t)k; break;
        case KILN_DT_INT8: ((int8_t *)t->data)[i] = (int8_t)k; break;
        case KILN_DT_UINT8: ((uint8_t *)t->data)[i] = (uint8_t)k; break;
        case KILN_DT_BOOL: ((uint8_t *)t->data)[i] = (uint8_t)(k & 1); break;
        default: break;
        }
    }
}

/* --- running an engine ------------------------------------------------------------------ */

static const kiln_host_tensor *find_loaded(const kiln_host_tensor *loaded, int n, const char *name)
{
    for (int k = 0; k < n; k++)
        if (!strcmp(loaded[k].name, name)) return &loaded[k];
    return NULL;
}

static bool same_dims(int ra, const int64_t *a, int rb, const int64_t *b)
{
    if (ra != rb) return false;
    for (int d = 0; d < ra; d++)
        if (a[d] != b[d]) return false;
    return true;
}

/* Largest tensor the CLI allocates host copies for (elements). */
#define MAX_NUMEL (1LL << 36)

int cli_engine_setup(cli_engine_run *r, kiln_engine *eng, const cli_shape_list *shapes, const kiln_host_tensor *loaded, int n_loaded)
{
    memset(r, 0, sizeof *r);
    r->eng = eng;
    int n_io = kiln_engine_io_count(eng);
    r->b = calloc((size_t)n_io + 1, sizeof *r->b);
    if (!r->b) return cli_error("out of memory");
    if (kiln_context_create(eng, &r->ctx)) return cli_error("context: %s", kiln_last_error());
    /* a --shapes entry naming no input is refused by the context, with the names and ranges */
    for (int j = 0; j < shapes->n; j++) {
        int i = 0;
        while (i < n_io && !(kiln_engine_io_is_input(eng, i) && !strcmp(kiln_engine_io_name(eng, i), shapes->v[j].name))) i++;
        if (i == n_io && kiln_context_set_input_shape(r->ctx, shapes->v[j].name, shapes->v[j].rank, shapes->v[j].dims))
            return cli_error("--shapes: %s", kiln_context_last_error(r->ctx));
    }
    for (int i = 0; i < n_io; i++) {
        if (!kiln_engine_io_is_input(eng, i)) continue;
        const char *name = kiln_engine_io_name(eng, i);
        const cli_shape *sh = cli_shape_find(shapes, name);
        const kiln_host_tensor *ld = find_loaded(loaded, n_loaded, name);
        if (sh && ld && !same_dims(sh->rank, sh->dims, ld->rank, ld->dims)) {
            char a[256], b[256];
            cli_format_dims(sh->rank, sh->dims, a, sizeof a);
            cli_format_dims(ld->rank, ld->dims, b, sizeof b);
            return cli_error("input '%s': --shapes gives %s, the --loadInputs file holds %s", name, a, b);
        }
        if (sh && kiln_context_set_input_shape(r->ctx, name, sh->rank, sh->dims))
            return cli_error("--shapes: %s", kiln_context_last_error(r->ctx));
        if (!sh && ld && kiln_context_set_input_shape(r->ctx, name, ld->rank, ld->dims))
            return cli_error("--loadInputs: %s", kiln_context_last_error(r->ctx));
    }
    if (kiln_stream_create(&r->stream)) return cli_error("stream: %s", kiln_last_error());
    uint64_t seed = 0x6b696c6e2d657865ull;
    for (int i = 0; i < n_io; i++) {
        cli_binding *b = &r->b[r->n++];
        b->name = kiln_engine_io_name(eng, i);
        b->is_input = kiln_engine_io_is_input(eng, i);
        if (kiln_context_get_shape(r->ctx, b->name, &b->rank, b->dims)) return cli_error("%s", kiln_context_last_error(r->ctx));
        b->dtype = kiln_context_get_dtype(r->ctx, b->name);
        size_t es = kiln_dtype_size(b->dtype);
        if (!es) return cli_error("'%s': element type %s is not supported by kiln exec", b->name, kiln_dtype_name(b->dtype));
        int64_t numel = 1;
        for (int d = 0; d < b->rank; d++) {
            if (b->dims[d] < 0 || (b->dims[d] && numel > MAX_NUMEL / b->dims[d]))
                return cli_error("'%s': shape too large", b->name);
            numel *= b->dims[d];
        }
        b->bytes = (size_t)numel * es;
        if (kiln_device_malloc(&b->dev, b->bytes)) return cli_error("'%s': %s", b->name, kiln_last_error());
        if (kiln_host_malloc_pinned(&b->pinned, b->bytes)) return cli_error("'%s': %s", b->name, kiln_last_error());
        if (kiln_context_set_tensor_address(r->ctx, b->name, b->dev)) return cli_error("%s", kiln_context_last_error(r->ctx));
        if (!b->is_input) continue;
        kiln_host_tensor *h = &b->host;
        snprintf(h->name, sizeof h->name, "%s", b->name);
        h->dtype = b->dtype;
        h->rank = b->rank;
        memcpy(h->dims, b->dims, sizeof h->dims);
        h->nbytes = b->bytes;
        h->data = malloc(b->bytes ? b->bytes : 1);
        if (!h->data) return cli_error("out of memory");
        const kiln_host_tensor *ld = find_loaded(loaded, n_loaded, b->name);
        if (ld) {
            char a[256], c[256];
            cli_format_dims(b->rank, b->dims, a, sizeof a);
            cli_format_dims(ld->rank, ld->dims, c, sizeof c);
            if (ld->dtype != b->dtype)
                return cli_error("--loadInputs: input '%s' is %s, the file holds %s", b->name, kiln_dtype_name(b->dtype), kiln_dtype_name(ld->dtype));
            if (!same_dims(b->rank, b->dims, ld->rank, ld->dims) || ld->nbytes != b->bytes)
                return cli_error("--loadInputs: input '%s' is %s, the file holds %s", b->name, a, c);
            memcpy(h->data, ld->data, b->bytes);
        } else {
            fill_random(h, &seed);
        }
        memcpy(b->pinned, h->data, b->bytes);
        if (kiln_memcpy_htod(b->dev, b->pinned, b->bytes, r->stream)) return cli_error("'%s': %s", b->name, kiln_last_error());
    }
    if (kiln_stream_synchronize(r->stream)) return cli_error("%s", kiln_last_error());
    return 0;
}

int cli_engine_infer(cli_engine_run *r)
{
    if (kiln_context_enqueue(r->ctx, r->stream)) return cli_error("enqueue: %s", kiln_context_last_error(r->ctx));
    for (int i = 0; i < r->n; i++)
        if (!r->b[i].is_input && kiln_memcpy_dtoh(r->b[i].pinned, r->b[i].dev, r->b[i].bytes, r->stream))
            return cli_error("'%s': %s", r->b[i].name, kiln_last_error());
    if (kiln_stream_synchronize(r->stream)) return cli_error("inference: %s", kiln_last_error());
    return 0;
}

int cli_engine_output(const cli_engine_run *r, int k, kiln_host_tensor *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < r->n; i++) {
        const cli_binding *b = &r->b[i];
        if (b->is_input || k--) continue;
        snprintf(out->name, sizeof out->name, "%s", b->name);
        out->dtype = b->dtype;
        out->rank = b->rank;
        memcpy(out->dims, b->dims, sizeof out->dims);
        out->nbytes = b->bytes;
        out->data = malloc(b->bytes ? b->bytes : 1);
        if (!out->data) return cli_error("out of memory");
        memcpy(out->data, b->pinned, b->bytes);
        return 0;
    }
    return cli_error("no output %d", k);
}

void cli_engine_release(cli_engine_run *r)
{
    if (r->stream) kiln_stream_synchronize(r->stream);
    for (int i = 0; i < r->n; i++) {
        kiln_device_free(r->b[i].dev);
        kiln_host_free_pinned(r->b[i].pinned);
        free(r->b[i].host.data);
    }
    free(r->b);
    kiln_context_free(r->ctx);
    kiln_stream_destroy(r->stream);
    memset(r, 0, sizeof *r);
}

/* --- timing ------------------------------------------------------------------------------- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

typedef struct iter_times {
    double enq_start, enq_end;          /* host, ms from the start of timing */
    double in_start, compute_start, compute_end, out_end; /* GPU, ms from the begin event */
} iter_times;

typedef struct stats {
    double min, max, mean, median, p90, p95, p99, sd;
} stats;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentiles, as trtexec reports them. */
static stats compute_stats(double *v, int n)
{
    stats s;
    memset(&s, 0, sizeof s);
    if (n <= 0) return s;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += v[i];
    s.mean = sum / n;
    double var = 0;
    for (int i = 0; i < n; i++) var += (v[i] - s.mean) * (v[i] - s.mean);
    s.sd = sqrt(var / n);
    s.min = v[0];
    s.max = v[n - 1];
    s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    double ps[3] = {90, 95, 99}, *out[3] = {&s.p90, &s.p95, &s.p99};
    for (int k = 0; k < 3; k++) {
        int idx = (int)ceil(ps[k] / 100.0 * n) - 1;
        *out[k] = v[idx < 0 ? 0 : idx >= n ? n - 1 : idx];
    }
    return s;
}

static void print_stats(const char *what, const stats *s)
{
    printf("[I] %s: min = %g ms, max = %g ms, mean = %g ms, median = %g ms, percentile(90%%) = %g ms, "
           "percentile(95%%) = %g ms, percentile(99%%) = %g ms\n",
           what, s->min, s->max, s->mean, s->median, s->p90, s->p95, s->p99);
}

#define SLOTS 16
/* Bounds the per-iteration records (and the int counts the statistics take). */
#define MAX_ITERATIONS 100000000LL
/* Profiling runs without a CUDA graph and waits on every layer: keep it short. */
#define MAX_PROFILE_ITERATIONS 1000LL

typedef struct exec_opts {
    const char *onnx, *load_engine, *save_engine, *export_times, *export_profile;
    const char *load_inputs[CLI_MAX_IO];
    int n_load_inputs;
    long long iterations, warmup_ms;
    double duration_s;
    int no_transfers, dump_profile, no_graph;
} exec_opts;

/* Records one iteration into slot events: [0] before H2D, [1] before compute, [2] after compute, [3] after D2H. */
static int enqueue_iteration(cli_engine_run *r, const exec_opts *eo, void **ev, double t0, iter_times *it)
{
    if (kiln_event_record(ev[0], r->stream)) return cli_error("%s", kiln_last_error());
    if (!eo->no_transfers)
        for (int i = 0; i < r->n; i++)
            if (r->b[i].is_input && kiln_memcpy_htod(r->b[i].dev, r->b[i].pinned, r->b[i].bytes, r->stream))
                return cli_error("'%s': %s", r->b[i].name, kiln_last_error());
    if (kiln_event_record(ev[1], r->stream)) return cli_error("%s", kiln_last_error());
    if (it) it->enq_start = now_ms() - t0;
    if (kiln_context_enqueue(r->ctx, r->stream)) return cli_error("enqueue: %s", kiln_context_last_error(r->ctx));
    if (it) it->enq_end = now_ms() - t0;
    if (kiln_event_record(ev[2], r->stream)) return cli_error("%s", kiln_last_error());
    if (!eo->no_transfers)
        for (int i = 0; i < r->n; i++)
            if (!r->b[i].is_input && kiln_memcpy_dtoh(r->b[i].pinned, r->b[i].dev, r->b[i].bytes, r->stream))
                return cli_error("'%s': %s", r->b[i].name, kiln_last_error());
    if (kiln_event_record(ev[3], r->stream)) return cli_error("%s", kiln_last_error());
    return 0;
}

/* Waits for a slot's last event and reads its times relative to the begin event. */
static int harvest(void *begin, void **ev, iter_times *it)
{
    float t[4];
    for (int k = 0; k < 4; k++)
        if (kiln_event_elapsed_ms(begin, ev[k], &t[k])) return cli_error("timing: %s", kiln_last_error());
    it->in_start = t[0];
    it->compute_start = t[1];
    it->compute_end = t[2];
    it->out_end = t[3];
    return 0;
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static int close_checked(FILE *f, const char *flag, const char *path)
{
    bool bad = ferror(f) != 0;
    if (fclose(f) != 0 || bad) return cli_error("%s: cannot write '%s'", flag, path);
    return 0;
}

static int export_times(const char *path, const iter_times *it, int n)
{
    FILE *f = fopen(path, "w");
    if (!f) return cli_error("--exportTimes: cannot create '%s'", path);
    fprintf(f, "[\n");
    for (int i = 0; i < n; i++) {
        const iter_times *t = &it[i];
        fprintf(f, "%s  { \"startEnqMs\" : %.6f, \"endEnqMs\" : %.6f, \"startH2DMs\" : %.6f, \"endH2DMs\" : %.6f, "
                   "\"startComputeMs\" : %.6f, \"endComputeMs\" : %.6f, \"startD2HMs\" : %.6f, \"endD2HMs\" : %.6f, "
                   "\"h2dMs\" : %.6f, \"computeMs\" : %.6f, \"d2hMs\" : %.6f, \"latencyMs\" : %.6f, \"enqueueMs\" : %.6f }\n",
                i ? ", " : "", t->enq_start, t->enq_end, t->in_start, t->compute_start, t->compute_start, t->compute_end,
                t->compute_end, t->out_end, t->compute_start - t->in_start, t->compute_end - t->compute_start,
                t->out_end - t->compute_end, t->out_end - t->in_start, t->enq_end - t->enq_start);
    }
    fprintf(f, "]\n");
    return close_checked(f, "--exportTimes", path);
}

/* Per-layer times with profiling on (no CUDA graph: each layer between its own events). */
static int profile_run(cli_engine_run *r, const exec_opts *eo, long long iters)
{
    int rc = 1, n_steps = 0;
    double *times = NULL; /* [step][iter] */
    const char **names = NULL;
    if (kiln_context_set_profiling(r->ctx, 1)) return cli_error("profiling: %s", kiln_context_last_error(r->ctx));
    for (long long it = 0; it < iters; it++) {
        if (kiln_context_enqueue(r->ctx, r->stream) || kiln_stream_synchronize(r->stream)) {
            cli_error("profiling: %s", kiln_context_last_error(r->ctx));
            goto done;
        }
        int n = kiln_context_profile_count(r->ctx);
        if (it == 0) {
            n_steps = n;
            times = calloc((size_t)(n + 1) * (size_t)iters, sizeof *times);
            names = calloc((size_t)n + 1, sizeof *names);
            if (!times || !names) {
                cli_error("out of memory");
                goto done;
            }
        } else if (n != n_steps) {
            cli_error("profiling: the layer count changed between runs (%d, then %d)", n_steps, n);
            goto done;
        }
        for (int s = 0; s < n; s++) {
            const char *layer = NULL;
            double ms = 0;
            if (kiln_context_profile_get(r->ctx, s, &layer, &ms)) {
                cli_error("profiling: cannot read layer %d", s);
                goto done;
            }
            names[s] = layer;
            times[(size_t)s * (size_t)iters + (size_t)it] = ms;
        }
    }
    double total = 0, *tot = calloc((size_t)n_steps + 1, sizeof *tot), *med = calloc((size_t)n_steps + 1, sizeof *med);
    if (!tot || !med) {
        free(tot);
        free(med);
        cli_error("out of memory");
        goto done;
    }
    for (int s = 0; s < n_steps; s++) {
        double *v = &times[(size_t)s * (size_t)iters];
        for (long long it = 0; it < iters; it++) tot[s] += v[it];
        med[s] = compute_stats(v, (int)iters).median;
        total += tot[s];
    }
    if (eo->dump_profile) {
        printf("\n[I] === Profile (%lld iterations ) ===\n", iters);
        printf("[I]    Time(ms)     Avg.(ms)   Median(ms)   Time(%%)   Layer\n");
        for (int s = 0; s < n_steps; s++)
            printf("[I] %11.2f %12.4f %12.4f %9.1f   %s\n", tot[s], tot[s] / (double)iters, med[s],
                   total > 0 ? 100 * tot[s] / total : 0, names[s]);
        printf("[I] %11.2f %12.4f %12.4f %9.1f   Total\n", total, total / (double)iters, total / (double)iters, 100.0);
    }
    if (eo->export_profile) {
        FILE *f = fopen(eo->export_profile, "w");
        if (!f) {
            cli_error("--exportProfile: cannot create '%s'", eo->export_profile);
        } else {
            fprintf(f, "[\n  { \"count\" : %lld }\n", iters);
            for (int s = 0; s < n_steps; s++) {
                fprintf(f, ", { \"name\" : ");
                json_string(f, names[s]);
                fprintf(f, ", \"timeMs\" : %.6f, \"averageMs\" : %.6f, \"medianMs\" : %.6f, \"percentage\" : %.4f }\n", tot[s],
                        tot[s] / (double)iters, med[s], total > 0 ? 100 * tot[s] / total : 0);
            }
            fprintf(f, "]\n");
            if (!close_checked(f, "--exportProfile", eo->export_profile)) rc = 0;
        }
    } else {
        rc = 0;
    }
    free(tot);
    free(med);
done:
    kiln_context_set_profiling(r->ctx, 0);
    free(times);
    free(names);
    return rc;
}

static void summary(const cli_engine_run *r, const exec_opts *eo, iter_times *it, int n, double gpu_span_ms, double host_ms)
{
    double *v = malloc(sizeof *v * (size_t)n + 1);
    if (!v) return;
    stats lat, enq, h2d, gpu, d2h;
    for (int i = 0; i < n; i++) v[i] = it[i].out_end - it[i].in_start;
    lat = compute_stats(v, n);
    for (int i = 0; i < n; i++) v[i] = it[i].enq_end - it[i].enq_start;
    enq = compute_stats(v, n);
    for (int i = 0; i < n; i++) v[i] = it[i].compute_start - it[i].in_start;
    h2d = compute_stats(v, n);
    double total_compute = 0;
    for (int i = 0; i < n; i++) total_compute += (v[i] = it[i].compute_end - it[i].compute_start);
    gpu = compute_stats(v, n);
    for (int i = 0; i < n; i++) v[i] = it[i].out_end - it[i].compute_end;
    d2h = compute_stats(v, n);
    free(v);
    double qps = gpu_span_ms > 0 ? n / (gpu_span_ms / 1e3) : 0;
    printf("\n[I] === Performance summary ===\n");
    printf("[I] Throughput: %g qps\n", qps);
    print_stats("Latency", &lat);
    print_stats("Enqueue Time", &enq);
    print_stats("H2D Latency", &h2d);
    print_stats("GPU Compute Time", &gpu);
    print_stats("D2H Latency", &d2h);
    printf("[I] Total Host Walltime: %g s\n", host_ms / 1e3);
    printf("[I] Total GPU Compute Time: %g s\n", total_compute / 1e3);
    /* image models: pixels of each 4-D output with 1 or 3 channels per GPU compute median */
    for (int i = 0; i < r->n; i++) {
        const cli_binding *b = &r->b[i];
        if (b->is_input || b->rank != 4 || (b->dims[1] != 1 && b->dims[1] != 3) || gpu.median <= 0) continue;
        double px = (double)b->dims[0] * (double)b->dims[2] * (double)b->dims[3];
        char d[256];
        cli_format_dims(b->rank, b->dims, d, sizeof d);
        printf("[I] Output '%s' %s: %.2f megapixels/s (%g output pixels per GPU compute median)\n", b->name, d,
               px / (gpu.median / 1e3) / 1e6, px);
    }
    if (enq.median > gpu.median) {
        printf("[W] * Throughput may be bound by Enqueue Time rather than GPU Compute and the GPU may be under-utilized.\n");
        printf("[W]   Enqueue median %g ms > GPU compute median %g ms (kiln replays a CUDA graph unless profiling).\n", enq.median,
               gpu.median);
    }
    if (!eo->no_transfers && h2d.median + d2h.median > gpu.median) {
        printf("[W] * Throughput may be bound by host-to-device and device-to-host transfers (H2D + D2H median %g ms > GPU "
               "compute median %g ms) rather than GPU Compute and the GPU may be under-utilized.\n",
               h2d.median + d2h.median, gpu.median);
        printf("[W]   Add --noDataTransfers flag to disable data transfers.\n");
    }
    double cov = gpu.mean > 0 ? 100 * gpu.sd / gpu.mean : 0;
    if (cov > 1.0) {
        printf("[W] * GPU compute time is unstable, with coefficient of variance = %.4g%%.\n", cov);
        printf("[W]   Locking the GPU clock frequency may improve the stability.\n");
    }
    printf("[I] Explanations: Throughput = iterations / GPU time from the first H2D start to the last D2H end; "
           "Latency = H2D + GPU Compute + D2H of one iteration; Enqueue Time = host time of kiln_context_enqueue.\n");
}

static void exec_usage(void)
{
    printf("usage: kiln exec (--onnx=MODEL | --loadEngine=FILE) [options]\n"
           "  --saveEngine=FILE         save the engine built from --onnx (or the loaded one)\n"
           "  --fp16 | --best | --noTF32   precision (default tf32; --best = fp16 with fp32 fallback)\n"
           "  --shapes=in:1x3x64x64[,...]  run-time shapes (static build shapes when no range is given)\n"
           "  --minShapes= --optShapes= --maxShapes=   dynamic-shape range for the build\n"
           "  --layerPrecisions=layer:fp32[,...]  --timingCacheFile=FILE\n"
           "  --iterations=N (10)  --duration=S (3)  --warmUp=MS (200)  --noDataTransfers\n"
           "  --useCudaGraph (default: kiln replays a CUDA graph unless profiling)  --noCudaGraph\n"
           "  --loadInputs=in:file.pb|.npy[,...] or a directory of input_N.pb (default: random, never zero)\n"
           "  --exportTimes=F.json  --dumpProfile  --exportProfile=F.json  --separateProfileRun  --verbose\n");
}

int kiln_cmd_exec(int argc, char **argv)
{
    exec_opts eo = {.iterations = 10, .warmup_ms = 200, .duration_s = 3};
    cli_build_opts bo;
    memset(&bo, 0, sizeof bo);
    int rc = 1;
    kiln_network *net = NULL;
    kiln_engine *eng = NULL;
    kiln_host_tensor loaded[CLI_MAX_IO];
    int n_loaded = 0;
    cli_engine_run run;
    memset(&run, 0, sizeof run);
    iter_times *it = NULL;
    void *ev[SLOTS][4], *ev_begin = NULL, *ev_end = NULL;
    memset(ev, 0, sizeof ev);
    memset(loaded, 0, sizeof loaded);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        int r;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            exec_usage();
            cli_build_opts_free(&bo);
            return 0;
        }
        if ((r = cli_build_flag(&bo, argc, argv, &i))) {
            if (r < 0) goto done;
            continue;
        }
#define VALUE_FLAG(name, dst)                                              \
    if ((r = cli_flag_value(argc, argv, &i, name, &v))) {                  \
        if (r < 0) goto done;                                              \
        dst = v;                                                           \
        continue;                                                          \
    }
        VALUE_FLAG("--onnx", eo.onnx)
        VALUE_FLAG("--loadEngine", eo.load_engine)
        VALUE_FLAG("--saveEngine", eo.save_engine)
        VALUE_FLAG("--exportTimes", eo.export_times)
        VALUE_FLAG("--exportProfile", eo.export_profile)
#undef VALUE_FLAG
        if ((r = cli_flag_value(argc, argv, &i, "--loadInputs", &v))) {
            if (r < 0) goto done;
            if (eo.n_load_inputs == CLI_MAX_IO) {
                cli_error("--loadInputs: given more than %d times", CLI_MAX_IO);
                goto done;
            }
            eo.load_inputs[eo.n_load_inputs++] = v;
            continue;
        }
        if ((r = cli_flag_value(argc, argv, &i, "--iterations", &v))) {
            if (r < 0 || cli_parse_int("--iterations", v, 1, 100000000, &eo.iterations)) goto done;
            continue;
        }
        if ((r = cli_flag_value(argc, argv, &i, "--warmUp", &v))) {
            if (r < 0 || cli_parse_int("--warmUp", v, 0, 3600000, &eo.warmup_ms)) goto done;
            continue;
        }
        if ((r = cli_flag_value(argc, argv, &i, "--duration", &v))) {
            if (r < 0 || cli_parse_double("--duration", v, &eo.duration_s)) goto done;
            if (eo.duration_s > 3600) {
                cli_error("--duration: %s s is more than an hour", v);
                goto done;
            }
            continue;
        }
        if ((r = cli_flag_bool(a, "--noDataTransfers"))) {
            if (r < 0) goto done;
            eo.no_transfers = 1;
            continue;
        }
        if ((r = cli_flag_bool(a, "--dumpProfile"))) {
            if (r < 0) goto done;
            eo.dump_profile = 1;
            continue;
        }
        if ((r = cli_flag_bool(a, "--useCudaGraph")) || (r = cli_flag_bool(a, "--separateProfileRun"))) {
            if (r < 0) goto done;
            continue; /* kiln's defaults already */
        }
        if ((r = cli_flag_bool(a, "--noCudaGraph"))) {
            if (r < 0) goto done;
            eo.no_graph = 1;
            continue;
        }
        if (a[0] == '-') cli_error("exec: unknown option '%s' (kiln exec --help lists them)", a);
        else cli_error("exec: unexpected argument '%s' (give the model as --onnx=MODEL or an engine as --loadEngine=FILE)", a);
        goto done;
    }
    if (!eo.onnx == !eo.load_engine) {
        cli_error(eo.onnx ? "exec: give --onnx or --loadEngine, not both" : "exec: no model: give --onnx=MODEL or --loadEngine=FILE");
        goto done;
    }
    if (eo.load_engine && bo.first_build_flag) {
        cli_error("%s has no effect with --loadEngine (the engine was built with its settings); build with --onnx", bo.first_build_flag);
        goto done;
    }
    const char *in_names[CLI_MAX_IO];
    int n_in = 0;
    if (eo.onnx) {
        if (kiln_onnx_parse(eo.onnx, NULL, &net)) {
            cli_error("%s", kiln_last_error());
            goto done;
        }
        n_in = kiln_network_input_count(net);
        if (n_in > CLI_MAX_IO) {
            cli_error("the model has %d inputs; at most %d are supported", n_in, CLI_MAX_IO);
            goto done;
        }
        for (int i = 0; i < n_in; i++) in_names[i] = kiln_network_input_name(net, i);
        for (int k = 0; k < eo.n_load_inputs; k++)
            if (cli_load_inputs(eo.load_inputs[k], in_names, n_in, loaded, &n_loaded)) goto done;
        if (cli_build_check(&bo, net, loaded, n_loaded)) goto done;
    }
    if (cli_require_gpu()) goto done;
    if (eo.onnx) {
        if (bo.verbose) printf("[I] Building %s engine from %s\n", bo.fp16 || bo.best ? "fp16" : bo.no_tf32 ? "fp32" : "tf32", eo.onnx);
        double t0 = now_ms();
        if (cli_build_engine(&bo, net, eo.save_engine, &eng, NULL, 0)) goto done;
        printf("[I] Engine built in %.3f s%s%s\n", (now_ms() - t0) / 1e3, eo.save_engine ? ", saved to " : "",
               eo.save_engine ? eo.save_engine : "");
    } else {
        double l0 = now_ms(); /* load time (issue 3, owner: wts): read + upload of the run-time weights */
        if (kiln_engine_load(eo.load_engine, &eng)) {
            cli_error("--loadEngine: %s", kiln_last_error());
            goto done;
        }
        printf("[I] Engine loaded from %s in %.1f ms\n", eo.load_engine, now_ms() - l0);
        for (int i = 0; i < kiln_engine_io_count(eng) && n_in < CLI_MAX_IO; i++)
            if (kiln_engine_io_is_input(eng, i)) in_names[n_in++] = kiln_engine_io_name(eng, i);
        for (int k = 0; k < eo.n_load_inputs; k++)
            if (cli_load_inputs(eo.load_inputs[k], in_names, n_in, loaded, &n_loaded)) goto done;
        if (eo.save_engine) {
            if (kiln_engine_save(eng, eo.save_engine)) {
                cli_error("--saveEngine: %s", kiln_last_error());
                goto done;
            }
            printf("[I] Engine saved to %s\n", eo.save_engine);
        }
    }
    if (bo.verbose) {
        char *text = NULL;
        if (!kiln_engine_describe(eng, &text)) printf("%s", text);
        free(text);
    }
    double c0 = now_ms(); /* owner: wts: context creation + first shape resolution */
    if (cli_engine_setup(&run, eng, &bo.shapes, loaded, n_loaded)) goto done;
    printf("[I] Context created (shapes resolved, I/O buffers ready) in %.1f ms\n", now_ms() - c0);
    if (eo.no_graph && kiln_context_set_cuda_graph(run.ctx, 0)) {
        cli_error("--noCudaGraph: %s", kiln_context_last_error(run.ctx));
        goto done;
    }
    for (int i = 0; i < run.n; i++) {
        char d[256];
        cli_format_dims(run.b[i].rank, run.b[i].dims, d, sizeof d);
        printf("[I] %s '%s': %s %s%s\n", run.b[i].is_input ? "Input" : "Output", run.b[i].name, kiln_dtype_name(run.b[i].dtype), d,
               !run.b[i].is_input ? "" : find_loaded(loaded, n_loaded, run.b[i].name) ? " (loaded)" : " (random)");
    }
    for (int s = 0; s < SLOTS; s++)
        for (int k = 0; k < 4; k++)
            if (kiln_event_create(&ev[s][k])) {
                cli_error("%s", kiln_last_error());
                goto done;
            }
    if (kiln_event_create(&ev_begin) || kiln_event_create(&ev_end)) {
        cli_error("%s", kiln_last_error());
        goto done;
    }
    {
        /* the memory plan for these shapes: the arena against the largest sum of tensors alive at once */
        size_t arena = 0, lower = 0, ws = 0;
        if (!kiln_context_memory(run.ctx, &arena, &lower, &ws))
            printf("[I] Activation memory: %.2f MiB arena (lower bound %.2f MiB, %.2fx), workspace %.2f MiB\n",
                   (double)arena / 1048576.0, (double)lower / 1048576.0, lower ? (double)arena / (double)lower : 1.0,
                   (double)ws / 1048576.0);
    }
    /* warm-up: at least one iteration, so the CUDA graph is captured before timing */
    double w0 = now_ms();
    long long n_warm = 0;
    do {
        if (enqueue_iteration(&run, &eo, ev[n_warm % SLOTS], w0, NULL)) goto done;
        n_warm++;
        if (n_warm % SLOTS == 0 && kiln_stream_synchronize(run.stream)) {
            cli_error("warm-up: %s", kiln_last_error());
            goto done;
        }
    } while (now_ms() - w0 < (double)eo.warmup_ms);
    if (kiln_stream_synchronize(run.stream)) {
        cli_error("warm-up: %s", kiln_last_error());
        goto done;
    }
    printf("[I] Warm-up: %lld iteration(s) in %.1f ms\n", n_warm, now_ms() - w0);

    long long cap = 4096, n = 0;
    it = malloc(sizeof *it * (size_t)cap);
    if (!it) {
        cli_error("out of memory");
        goto done;
    }
    double t0 = now_ms();
    if (kiln_event_record(ev_begin, run.stream)) {
        cli_error("%s", kiln_last_error());
        goto done;
    }
    while ((n < eo.iterations || now_ms() - t0 < eo.duration_s * 1e3) && n < MAX_ITERATIONS) {
        if (n == cap) {
            iter_times *ni = realloc(it, sizeof *it * (size_t)(cap * 2));
            if (!ni) {
                cli_error("out of memory after %lld iterations", n);
                goto done;
            }
            it = ni;
            cap *= 2;
        }
        /* a slot is reused SLOTS iterations later: its times are read first */
        if (n >= SLOTS && harvest(ev_begin, ev[n % SLOTS], &it[n - SLOTS])) goto done;
        if (enqueue_iteration(&run, &eo, ev[n % SLOTS], t0, &it[n])) goto done;
        n++;
    }
    if (kiln_event_record(ev_end, run.stream)) {
        cli_error("%s", kiln_last_error());
        goto done;
    }
    for (long long k = n > SLOTS ? n - SLOTS : 0; k < n; k++)
        if (harvest(ev_begin, ev[k % SLOTS], &it[k])) goto done;
    float span = 0;
    if (kiln_event_elapsed_ms(ev_begin, ev_end, &span)) {
        cli_error("timing: %s", kiln_last_error());
        goto done;
    }
    double host_ms = now_ms() - t0;
    printf("[I] Timing: %lld iteration(s) in %.3f s (GPU %.3f s)%s\n", n, host_ms / 1e3, span / 1e3,
           eo.no_transfers ? ", no data transfers" : "");
    summary(&run, &eo, it, (int)n, span, host_ms);
    if (eo.export_times && export_times(eo.export_times, it, (int)n)) goto done;
    if ((eo.dump_profile || eo.export_profile) && profile_run(&run, &eo, eo.iterations < MAX_PROFILE_ITERATIONS ? eo.iterations : MAX_PROFILE_ITERATIONS)) goto done;
    rc = 0;
done:
    free(it);
    for (int s = 0; s < SLOTS; s++)
        for (int k = 0; k < 4; k++) kiln_event_destroy(ev[s][k]);
    kiln_event_destroy(ev_begin);
    kiln_event_destroy(ev_end);
    cli_engine_release(&run);
    for (int k = 0; k < n_loaded; k++) kiln_host_tensor_release(&loaded[k]);
    kiln_engine_free(eng);
    kiln_network_free(net);
    cli_build_opts_free(&bo);
    return rc;
}
