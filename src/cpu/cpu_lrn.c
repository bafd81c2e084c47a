/*
 * CPU reference kernel of the lrn family: LRN across channels.
 * square_sum[c] covers channels c - floor((size-1)/2) .. c + ceil((size-1)/2),
 * clipped to the tensor; y = x / (bias + alpha / size * square_sum)^beta.
 */
#include "cpu.h"
#include <math.h>
#include <stdlib.h>

/* Same layout as in src/ir/ops_lrn.c; kiln__lrn_params_size guards drift. */
typedef struct lrn_params {
    int64_t size;
    float alpha;
    float beta;
    float bias;
} lrn_params;

extern const size_t kiln__lrn_params_size;

/* Channel window [lo, hi] for channel c of C. */
static void window(int64_t c, int64_t C, int64_t size, int64_t *lo, int64_t *hi)
{
    int64_t before = (size - 1) / 2, after = size - 1 - before;
    *lo = c - before < 0 ? 0 : c - before;
    *hi = c + after > C - 1 ? C - 1 : c + after;
}

/*
 * Float math for float, float16 and bfloat16 (converted through a float copy);
 * x and y are N x C x S. sq is scratch of S floats.
 */
static void lrn_f32(const lrn_params *p, const float *x, float *y, int64_t N, int64_t C, int64_t S,
                    float *sq)
{
    float scale = p->alpha / (float)p->size;
    for (int64_t n = 0; n < N; n++) {
        const float *xn = x + n * C * S;
        float *yn = y + n * C * S;
        for (int64_t c = 0; c < C; c++) {
            int64_t lo, hi;
            window(c, C, p->size, &lo, &hi);
            for (int64_t s = 0; s < S; s++) sq[s] = 0;
            for (int64_t k = lo; k <= hi; k++) {
                const float *xk = xn + k * S;
                for (int64_t s = 0; s < S; s++) sq[s] += xk[s] * xk[s];
            }
            const float *xc = xn + c * S;
            float *yc = yn + c * S;
            for (int64_t s = 0; s < S; s++) yc[s] = xc[s] / powf(p->bias + scale * sq[s], p->beta);
        }
    }
}

static void lrn_f64(const lrn_params *p, const double *x, double *y, int64_t N, int64_t C,
                    int64_t S, double *sq)
{
    double scale = (double)p->alpha / (double)p->size;
    for (int64_t n = 0; n < N; n++) {
        const double *xn = x + n * C * S;
        double *yn = y + n * C * S;
        for (int64_t c = 0; c < C; c++) {
            int64_t lo, hi;
            window(c, C, p->size, &lo, &hi);
            for (int64_t s = 0; s < S; s++) sq[s] = 0;
            for (int64_t k = lo; k <= hi; k++) {
                const double *xk = xn + k * S;
                for (int64_t s = 0; s < S; s++) sq[s] += xk[s] * xk[s];
            }
            const double *xc = xn + c * S;
            double *yc = yn + c * S;
            for (int64_t s = 0; s < S; s++)
                yc[s] = xc[s] / pow((double)p->bias + scale * sq[s], (double)p->beta);
        }
    }
}

static kiln_status run_lrn(const kiln_node *node, const void *params, const kiln_value *const *in,
                           kiln_value *out, kiln_err *err)
{
    const lrn_params *p = params;
    if (kiln__lrn_params_size != sizeof(lrn_params) || !p)
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (LRN): params layout", node->name);
    const kiln_value *x = in[0];
    int64_t N = x->shape.d[0].add, C = x->shape.d[1].add, S = 1;
    for (int i = 2; i < x->shape.rank; i++) S *= x->shape.d[i].add;
    int64_t total = kiln__value_numel(x);
    if (total == 0) return KILN_OK;
    kiln_dtype dt = x->dtype;
    if (dt == KILN_DT_DOUBLE) {
        double *sq = kiln__malloc(sizeof(double) * (size_t)S);
        if (!sq) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "node '%s' (LRN): out of memory", node->name);
        lrn_f64(p, x->data, out[0].data, N, C, S, sq);
        free(sq);
        return KILN_OK;
    }
    if (dt == KILN_DT_FLOAT) {
        float *sq = kiln__malloc(sizeof(float) * (size_t)S);
        if (!sq) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "node '%s' (LRN): out of memory", node->name);
        lrn_f32(p, x->data, out[0].data, N, C, S, sq);
        free(sq);
        return KILN_OK;
    }
    if (dt != KILN_DT_FLOAT16 && dt != KILN_DT_BFLOAT16)
        return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (LRN): type %s unsupported", node->name,
                          kiln_dtype_name(dt));
    /* Half types: widen to float, compute, narrow. */
    float *buf = kiln__calloc((size_t)total * 2 + (size_t)S, sizeof(float));
    if (!buf) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "node '%s' (LRN): out of memory", node->name);
    float *xf = buf, *yf = buf + total, *sq = buf + 2 * total;
    for (int64_t i = 0; i < total; i++) xf[i] = (float)kiln__value_get_f64(x, i);
    lrn_f32(p, xf, yf, N, C, S, sq);
    for (int64_t i = 0; i < total; i++) kiln__value_set_f64(&out[0], i, yf[i]);
    free(buf);
    return KILN_OK;
}

const kiln_cpu_kernel kiln__cpu_lrn[] = {
    {"LRN", "", run_lrn},
    {0},
};
