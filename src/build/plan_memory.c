/*
 * Activation memory planner: each tensor has a size and a lifetime (first and
 * last step that touches it). Largest first, each goes to the lowest offset
 * where it overlaps nothing that is alive at the same time (best fit by
 * offset). The result is compared with the lower bound: the largest sum of
 * sizes alive at one step.
 */
#include "engine.h"
#include <stdlib.h>

#define ALIGN 256

typedef struct placed {
    size_t off, end;
    int first, last;
} placed;

static int by_size_desc(const void *a, const void *b, void *req_)
{
    const kiln_mem_request *req = req_;
    int x = *(const int *)a, y = *(const int *)b;
    if (req[x].bytes != req[y].bytes) return req[x].bytes < req[y].bytes ? 1 : -1;
    return x - y;
}

static int cmp_placed(const void *a, const void *b)
{
    const placed *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* qsort_r is not C11; a small insertion sort keeps this portable and n is small. */
static void sort_indices(int *idx, int n, kiln_mem_request *req)
{
    for (int i = 1; i < n; i++) {
        int v = idx[i], j = i - 1;
        while (j >= 0 && by_size_desc(&idx[j], &v, req) > 0) {
            idx[j + 1] = idx[j];
            j--;
        }
        idx[j + 1] = v;
    }
}

size_t kiln__plan_memory(kiln_mem_request *req, int n, size_t *lower_bound)
{
    int *idx = calloc((size_t)n + 1, sizeof *idx);
    placed *pl = calloc((size_t)n + 1, sizeof *pl), *live = calloc((size_t)n + 1, sizeof *live);
    size_t total = 0;
    if (!idx || !pl || !live) {
        /* without memory to plan, give every tensor its own range */
        for (int i = 0; i < n; i++) {
            req[i].offset = total;
            total += (req[i].bytes + ALIGN - 1) / ALIGN * ALIGN;
        }
        free(idx);
        free(pl);
        free(live);
        if (lower_bound) *lower_bound = total;
        return total;
    }
    for (int i = 0; i < n; i++) idx[i] = i;
    sort_indices(idx, n, req);
    int n_placed = 0;
    for (int k = 0; k < n; k++) {
        kiln_mem_request *r = &req[idx[k]];
        size_t size = (r->bytes + ALIGN - 1) / ALIGN * ALIGN;
        int n_live = 0;
        for (int p = 0; p < n_placed; p++)
            if (pl[p].first <= r->last && r->first <= pl[p].last) live[n_live++] = pl[p];
        qsort(live, (size_t)n_live, sizeof *live, cmp_placed);
        /* smallest gap that fits, else the end */
        size_t best = (size_t)-1, best_gap = (size_t)-1, cursor = 0;
        for (int p = 0; p < n_live; p++) {
            if (live[p].off > cursor) {
                size_t gap = live[p].off - cursor;
                if (gap >= size && gap < best_gap) {
                    best = cursor;
                    best_gap = gap;
                }
            }
            if (live[p].end > cursor) cursor = live[p].end;
        }
        if (best == (size_t)-1) best = cursor;
        r->offset = best;
        pl[n_placed++] = (placed){best, best + size, r->first, r->last};
        if (best + size > total) total = best + size;
    }
    if (lower_bound) {
        int max_step = 0;
        for (int i = 0; i < n; i++) max_step = req[i].last > max_step ? req[i].last : max_step;
        size_t lb = 0;
        for (int s = 0; s <= max_step; s++) {
            size_t sum = 0;
            for (int i = 0; i < n; i++)
                if (req[i].first <= s && s <= req[i].last) sum += (req[i].bytes + ALIGN - 1) / ALIGN * ALIGN;
            lb = sum > lb ? sum : lb;
        }
        *lower_bound = lb;
    }
    free(idx);
    free(pl);
    free(live);
    return total;
}
