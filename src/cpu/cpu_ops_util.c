/*
 * Helpers shared by the CPU kernel families; see cpu_ops_util.h.
 */
#include "cpu_ops_util.h"
#include <string.h>

kiln_status kiln__cpu_elem_size(const kiln_node *node, kiln_dtype dt, size_t *es, kiln_err *err)
{
    *es = kiln_dtype_size(dt);
    if (*es == 0 || dt == KILN_DT_STRING)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): type %s unsupported on CPU",
                          node->name, node->op_type, kiln_dtype_name(dt));
    return KILN_OK;
}

void kiln__cpu_strided_copy(char *dst, const char *src, int64_t base, int rank, const int64_t *dims,
                            const int64_t *sstr, size_t es)
{
    int64_t total = 1;
    for (int i = 0; i < rank; i++) total *= dims[i];
    if (total == 0) return;
    if (rank == 0) {
        memcpy(dst, src + base * (int64_t)es, es);
        return;
    }
    int64_t inner = dims[rank - 1], istr = sstr[rank - 1];
    int64_t rows = total / inner, idx[KILN_CPU_MAX_VIEW] = {0}, off = base;
    for (int64_t r = 0; r < rows; r++) {
        const char *s = src + off * (int64_t)es;
        if (istr == 1) {
            memcpy(dst, s, (size_t)inner * es);
        } else {
            int64_t step = istr * (int64_t)es;
            for (int64_t i = 0; i < inner; i++) kiln__cpu_copy_elem(dst + (size_t)i * es, s + i * step, es);
        }
        dst += (size_t)inner * es;
        for (int k = rank - 2; k >= 0; k--) {
            off += sstr[k];
            if (++idx[k] < dims[k]) break;
            off -= sstr[k] * dims[k];
            idx[k] = 0;
        }
    }
}

float *kiln__cpu_half_to_f32(const kiln_value *v)
{
    int64_t n = kiln__value_numel(v);
    float *buf = kiln__malloc((size_t)n * sizeof *buf);
    if (!buf) return NULL;
    const uint16_t *h = v->data;
    for (int64_t i = 0; i < n; i++)
        buf[i] = v->dtype == KILN_DT_FLOAT16 ? kiln__f16_to_f32(h[i]) : kiln__bf16_to_f32(h[i]);
    return buf;
}

void kiln__cpu_f32_to_half(kiln_value *v, const float *buf)
{
    int64_t n = kiln__value_numel(v);
    uint16_t *h = v->data;
    for (int64_t i = 0; i < n; i++)
        h[i] = v->dtype == KILN_DT_FLOAT16 ? kiln__f32_to_f16(buf[i]) : kiln__f32_to_bf16(buf[i]);
}
