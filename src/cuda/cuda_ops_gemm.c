/*
 * GPU ops of the matmul family through cuBLASLt: MatMul (numpy batch
 * broadcasting, 1-D promotion) and Gemm (alpha, beta, transA/transB, C
 * broadcast to M x N).
 *
 * cuBLASLt is column-major; a row-major D = A B is computed as the
 * column-major D^T = B^T A^T, which is the same memory. Each operand is
 * described by its own strides (row-major, transposed, any leading dimension),
 * so transposes cost nothing; an operand with no unit stride is first packed
 * into the workspace. Batch dims that collapse into one stride run as one
 * strided-batched call (stride 0 for a broadcast operand); a batch broadcast
 * over B alone folds into M (one large GEMM); whatever is left loops on the host.
 * Gemm's C is copied (broadcast) into D first and accumulated with beta.
 *
 * Tactics are cuBLASLt's heuristic results for the shape, best first.
 */
#include "cuda_backend.h"
#include "gpu.h"
#include "../ir/ops_matmul.h"
#include <cublasLt.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Launcher in k_gemm.cu. */
int kiln__cuda_gemm_fill(const kiln_cuda_tensor *dst, const kiln_cuda_tensor *src, float scale, void *stream);

#define GEMM_TACTICS 8
#define GEMM_WS_LIMIT ((size_t)32 << 20)
#define WS_ALIGN ((size_t)256)
#define CACHE_SLOTS 4
#define MAX_HOST_LOOP ((int64_t)1 << 20)

enum { OP_MATMUL, OP_GEMM };

/* One operand as cuBLASLt sees it: a stored column-major matrix, maybe transposed. */
typedef struct mat_lay {
    int trans;
    uint64_t rows, cols;
    int64_t ld;
} mat_lay;

/* What the heuristic depends on. */
typedef struct mm_key {
    int dt, strict;
    mat_lay x, y, d;
    int64_t m, n, k;
    int64_t batch, xbs, ybs, dbs;
    uint32_t ax, ay, ad;
} mm_key;

typedef struct mm_algos {
    bool used;
    mm_key key;
    int n;
    cublasLtMatmulHeuristicResult_t r[GEMM_TACTICS];
} mm_algos;

typedef struct mm_state {
    kiln_dtype dt;
    kiln_cuda_tensor c[3]; /* prepared constant inputs (ptr NULL when not constant) */
    bool shared;           /* c[] are the engine's (prepare_packed): never freed here */
    pthread_mutex_t mu;
    bool mu_ok;
    mm_algos cache[CACHE_SLOTS];
    unsigned next_slot;
} mm_state;

/* The logical problem D[M,N] = alpha * A'[M,K] B'[K,N] (+ beta C), batched. */
typedef struct mm_problem {
    kiln_dtype dt;
    bool strict;
    int64_t M, N, K;
    int64_t a_rs, a_cs, b_rs, b_cs, d_rs, d_cs;
    int nb;
    int64_t bd[KILN_MAX_DIMS], abs_[KILN_MAX_DIMS], bbs[KILN_MAX_DIMS], dbs[KILN_MAX_DIMS];
    const void *a, *b;
    void *d;
    float alpha, beta;
} mm_problem;

/* The problem mapped onto cuBLASLt calls. */
typedef struct mm_plan {
    mm_key key;
    const void *xp, *yp;
    void *dp;
    int n_outer;
    int64_t od[KILN_MAX_DIMS], ox[KILN_MAX_DIMS], oy[KILN_MAX_DIMS], odd[KILN_MAX_DIMS];
    int64_t outer_count;
} mm_plan;

/* Everything one launch needs: operands (maybe repacked), C, plan. */
typedef struct mm_launch {
    int op;
    kiln_dtype dt;
    kiln_cuda_tensor a, b, c, d;
    bool has_c;
    bool trans_a, trans_b;
    float alpha, beta;
    bool pack_a, pack_b, temp_d;
    kiln_cuda_tensor pa, pb, td; /* packed copies / temporary output (ptr set in the workspace) */
    size_t copy_bytes;
    mm_problem pr;
    mm_plan pl;
    bool empty, k_zero;
} mm_launch;

static size_t align_up(size_t v) { return (v + WS_ALIGN - 1) / WS_ALIGN * WS_ALIGN; }

static kiln_status lt_fail(const kiln_node *node, const char *what, cublasStatus_t st, kiln_err *err)
{
    return kiln__fail(err, KILN_ERR_BACKEND, "node '%s' (%s): %s: %s", node->name, node->op_type, what,
                      cublasLtGetStatusString(st));
}

static int64_t numel_of(const kiln_cuda_tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->rank; d++) n *= t->dims[d];
    return n;
}

static void row_major(kiln_cuda_tensor *t)
{
    int64_t s = 1;
    for (int d = t->rank - 1; d >= 0; d--) {
        t->strides[d] = s;
        s *= t->dims[d];
    }
}

static float attr_num(const kiln_node *node, const char *name, float def)
{
    const kiln_attr *a = kiln__node_attr(node, name);
    if (!a) return def;
    if (a->type == KILN_ATTR_FLOAT) return a->f;
    if (a->type == KILN_ATTR_INT) return (float)a->i;
    return def;
}

/* ------------------------------------------------------------------------ */
/* Problem                                                                   */

/* Fills pr from the (possibly repacked) operands; shapes are checked here. */
static kiln_status build_problem(const kiln_node *node, mm_launch *L, kiln_err *err)
{
    mm_problem *pr = &L->pr;
    const kiln_cuda_tensor *A = L->pack_a ? &L->pa : &L->a, *B = L->pack_b ? &L->pb : &L->b;
    const kiln_cuda_tensor *D = L->temp_d ? &L->td : &L->d;
    memset(pr, 0, sizeof *pr);
    pr->dt = L->dt;
    pr->alpha = L->alpha;
    pr->beta = L->beta;
    pr->a = A->ptr;
    pr->b = B->ptr;
    pr->d = D->ptr;
    int ra = A->rank, rb = B->rank, rd = D->rank;
    if (L->op == OP_GEMM) {
        if (ra != 2 || rb != 2 || rd != 2)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (Gemm): A, B, Y must be 2-D (%d, %d, %d)", node->name, ra,
                              rb, rd);
        int ma = L->trans_a ? 1 : 0, nbx = L->trans_b ? 0 : 1;
        pr->M = A->dims[ma];
        pr->K = A->dims[1 - ma];
        pr->a_rs = A->strides[ma];
        pr->a_cs = A->strides[1 - ma];
        pr->N = B->dims[nbx];
        if (B->dims[1 - nbx] != pr->K)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (Gemm): inner dims %lld and %lld differ", node->name,
                              (long long)pr->K, (long long)B->dims[1 - nbx]);
        pr->b_rs = B->strides[1 - nbx];
        pr->b_cs = B->strides[nbx];
        if (D->dims[0] != pr->M || D->dims[1] != pr->N)
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (Gemm): Y is %lldx%lld, expected %lldx%lld", node->name,
                              (long long)D->dims[0], (long long)D->dims[1], (long long)pr->M, (long long)pr->N);
        pr->d_rs = D->strides[0];
        pr->d_cs = D->strides[1];
        return KILN_OK;
    }
    if (ra < 1 || rb < 1)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (MatMul): inputs must have at least 1 dim", node->name);
    pr->M = ra > 1 ? A->dims[ra - 2] : 1;
    pr->K = A->dims[ra - 1];
    pr->a_rs = ra > 1 ? A->strides[ra - 2] : 0;
    pr->a_cs = A->strides[ra - 1];
    int64_t kb = rb > 1 ? B->dims[rb - 2] : B->dims[0];
    pr->N = rb > 1 ? B->dims[rb - 1] : 1;
    pr->b_rs = rb > 1 ? B->strides[rb - 2] : B->strides[0];
    pr->b_cs = rb > 1 ? B->strides[rb - 1] : 0;
    if (kb != pr->K)
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (MatMul): inner dims %lld and %lld differ", node->name,
                          (long long)pr->K, (long long)kb);
    int ba = ra > 2 ? ra - 2 : 0, bb = rb > 2 ? rb - 2 : 0, nb = ba > bb ? ba : bb;
    if (rd != nb + (ra > 1) + (rb > 1))
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (MatMul): Y has %d dims, expected %d", node->name, rd,
                          nb + (ra > 1) + (rb > 1));
    pr->d_rs = ra > 1 ? D->strides[nb] : 0;
    pr->d_cs = rb > 1 ? D->strides[rd - 1] : 0;
    if ((ra > 1 && D->dims[nb] != pr->M) || (rb > 1 && D->dims[rd - 1] != pr->N))
        return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (MatMul): Y's matrix dims do not match the inputs",
                          node->name);
    pr->nb = nb;
    for (int i = 0; i < nb; i++) {
        int ia = i - (nb - ba), ib = i - (nb - bb);
        int64_t da = ia >= 0 ? A->dims[ia] : 1, db = ib >= 0 ? B->dims[ib] : 1, dd = D->dims[i];
        if ((da != dd && da != 1) || (db != dd && db != 1))
            return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (MatMul): batch dim %d: A %lld, B %lld, Y %lld",
                              node->name, i, (long long)da, (long long)db, (long long)dd);
        pr->bd[i] = dd;
        pr->abs_[i] = da == 1 ? 0 : A->strides[ia];
        pr->bbs[i] = db == 1 ? 0 : B->strides[ib];
        pr->dbs[i] = D->strides[i];
    }
    return KILN_OK;
}

/* R x C matrix with strides (rs, cs) as a stored column-major matrix, maybe transposed. */
static bool mat_fit(int64_t R, int64_t C, int64_t rs, int64_t cs, mat_lay *o)
{
    if (rs == 1 || R == 1) {
        int64_t ld = C == 1 ? R : cs;
        if (ld >= R && ld >= 1) {
            o->trans = 0;
            o->rows = (uint64_t)R;
            o->cols = (uint64_t)C;
            o->ld = ld;
            return true;
        }
    }
    if (cs == 1 || C == 1) {
        int64_t ld = R == 1 ? C : rs;
        if (ld >= C && ld >= 1) {
            o->trans = 1;
            o->rows = (uint64_t)C;
            o->cols = (uint64_t)R;
            o->ld = ld;
            return true;
        }
    }
    return false;
}

/* Pointer alignment in bytes (power of two, at most 256). */
static uint32_t align_of(const void *p, const int64_t *offs, int n, size_t es)
{
    uintptr_t v = (uintptr_t)p | 256;
    for (int i = 0; i < n; i++) v |= (uintptr_t)(offs[i] * (int64_t)es);
    return (uint32_t)(v & (~v + 1));
}

/*
 * Maps the problem onto cuBLASLt. Returns a bitmask of operands that cannot be
 * described (1 A, 2 B, 4 D) and must be repacked; 0 on success.
 * allow_batched false puts every batch dim on the host loop.
 */
static int plan_problem(const mm_problem *pr0, mm_plan *pl, bool allow_batched)
{
    mm_problem pr = *pr0;
    memset(pl, 0, sizeof *pl);
    /* Drop batch dims of size 1, then merge neighbours whose strides compose. */
    int nb = 0;
    int64_t bd[KILN_MAX_DIMS], sa[KILN_MAX_DIMS], sb[KILN_MAX_DIMS], sd[KILN_MAX_DIMS];
    for (int i = 0; i < pr.nb; i++) {
        if (pr.bd[i] == 1) continue;
        if (nb > 0 && sa[nb - 1] == pr.abs_[i] * pr.bd[i] && sb[nb - 1] == pr.bbs[i] * pr.bd[i] &&
            sd[nb - 1] == pr.dbs[i] * pr.bd[i]) {
            bd[nb - 1] *= pr.bd[i];
            sa[nb - 1] = pr.abs_[i];
            sb[nb - 1] = pr.bbs[i];
            sd[nb - 1] = pr.dbs[i];
            continue;
        }
        bd[nb] = pr.bd[i];
        sa[nb] = pr.abs_[i];
        sb[nb] = pr.bbs[i];
        sd[nb] = pr.dbs[i];
        nb++;
    }
    /* B shared by the innermost batch group and A, D stacked along M: one taller GEMM. */
    if (nb > 0 && sb[nb - 1] == 0 && sa[nb - 1] != 0 && sd[nb - 1] != 0 && (pr.M == 1 || (sa[nb - 1] == pr.M * pr.a_rs && sd[nb - 1] == pr.M * pr.d_rs))) {
        if (pr.M == 1) {
            pr.a_rs = sa[nb - 1];
            pr.d_rs = sd[nb - 1];
        }
        pr.M *= bd[nb - 1];
        nb--;
    }
    int64_t batch = 1, xbs = 0, ybs = 0, dbs = 0;
    if (nb > 0 && allow_batched && bd[nb - 1] <= INT_MAX) {
        batch = bd[nb - 1];
        nb--;
    }
    mm_key *k = &pl->key;
    int bad = 0;
    bool swap;
    if (pr.d_cs == 1 || pr.N == 1) swap = true;
    else if (pr.d_rs == 1 || pr.M == 1) swap = false;
    else return 4;
    if (swap) {
        /* D^T[N,M] = B'^T[N,K] A'^T[K,M]. */
        if (!mat_fit(pr.N, pr.M, pr.d_cs, pr.d_rs, &k->d) || k->d.trans) return 4;
        if (!mat_fit(pr.N, pr.K, pr.b_cs, pr.b_rs, &k->x)) bad |= 2;
        if (!mat_fit(pr.K, pr.M, pr.a_cs, pr.a_rs, &k->y)) bad |= 1;
        k->m = pr.N;
        k->n = pr.M;
        pl->xp = pr.b;
        pl->yp = pr.a;
    } else {
        if (!mat_fit(pr.M, pr.N, pr.d_rs, pr.d_cs, &k->d) || k->d.trans) return 4;
        if (!mat_fit(pr.M, pr.K, pr.a_rs, pr.a_cs, &k->x)) bad |= 1;
        if (!mat_fit(pr.K, pr.N, pr.b_rs, pr.b_cs, &k->y)) bad |= 2;
        k->m = pr.M;
        k->n = pr.N;
        pl->xp = pr.a;
        pl->yp = pr.b;
    }
    if (bad) return bad;
    if (batch > 1) {
        xbs = swap ? sb[nb] : sa[nb];
        ybs = swap ? sa[nb] : sb[nb];
        dbs = sd[nb];
    }
    k->k = pr.K;
    k->batch = batch;
    k->xbs = xbs;
    k->ybs = ybs;
    k->dbs = dbs;
    k->dt = pr.dt;
    k->strict = pr.strict;
    pl->dp = pr.d;
    pl->n_outer = nb;
    pl->outer_count = 1;
    for (int i = 0; i < nb; i++) {
        pl->od[i] = bd[i];
        pl->ox[i] = swap ? sb[i] : sa[i];
        pl->oy[i] = swap ? sa[i] : sb[i];
        pl->odd[i] = sd[i];
        pl->outer_count *= bd[i];
    }
    size_t es = kiln_dtype_size(pr.dt);
    k->ax = align_of(pl->xp, pl->ox, nb, es);
    k->ay = align_of(pl->yp, pl->oy, nb, es);
    k->ad = align_of(pl->dp, pl->odd, nb, es);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Launch assembly                                                           */

static kiln_status gather(const kiln_cuda_launch *l, const mm_state *st, mm_launch *L, kiln_err *err)
{
    const kiln_node *node = l->node;
    memset(L, 0, sizeof *L);
    L->op = !strcmp(node->op_type, "Gemm") ? OP_GEMM : OP_MATMUL;
    const kiln_cuda_tensor *in[3] = {NULL, NULL, NULL};
    for (int i = 0; i < node->n_in && i < 3; i++) {
        /* Presence comes from the graph: addresses may not be bound yet when the
         * runtime asks for the workspace. */
        if (node->in[i] < 0) continue;
        in[i] = st && (st->c[i].ptr || (st->c[i].rank > 0 && numel_of(&st->c[i]) == 0)) ? &st->c[i] : &l->in[i];
    }
    if (!in[0] || !in[1] || node->n_out < 1)
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): A and B are required", node->name,
                          node->op_type);
    L->a = *in[0];
    L->b = *in[1];
    L->d = l->out[0];
    L->dt = L->a.dtype;
    if (L->dt != KILN_DT_FLOAT && L->dt != KILN_DT_FLOAT16)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): type %s is not supported on the GPU", node->name,
                          node->op_type, kiln_dtype_name(L->dt));
    if (L->b.dtype != L->dt || L->d.dtype != L->dt)
        return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (%s): A is %s, B %s, Y %s", node->name, node->op_type,
                          kiln_dtype_name(L->dt), kiln_dtype_name(L->b.dtype), kiln_dtype_name(L->d.dtype));
    L->alpha = 1.0f;
    if (L->op == OP_GEMM) {
        const kiln_gemm_params *gp = node->params;
        L->alpha = gp ? gp->alpha : attr_num(node, "alpha", 1.0f);
        L->beta = gp ? gp->beta : attr_num(node, "beta", 1.0f);
        L->trans_a = gp ? gp->trans_a : kiln__attr_int(node, "transA", 0) != 0;
        L->trans_b = gp ? gp->trans_b : kiln__attr_int(node, "transB", 0) != 0;
        if (in[2] && L->beta != 0.0f) {
            L->c = *in[2];
            L->has_c = true;
            if (L->c.dtype != L->dt || L->c.rank > 2)
                return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (Gemm): C is %s with %d dims", node->name,
                                  kiln_dtype_name(L->c.dtype), L->c.rank);
        }
        if (!L->has_c) L->beta = 0.0f;
    }
    kiln_status s = build_problem(node, L, err);
    if (s) return s;
    L->pr.strict = L->dt == KILN_DT_FLOAT && l->ex->precision == KILN_PREC_FP32;
    if (L->has_c) {
        /* C must broadcast one way to (M, N). */
        int64_t want[2] = {L->pr.M, L->pr.N};
        for (int i = 0; i < L->c.rank; i++) {
            int64_t cd = L->c.dims[i], wd = want[2 - L->c.rank + i];
            if (cd != 1 && cd != wd)
                return kiln__fail(err, KILN_ERR_SHAPE, "node '%s' (Gemm): C dim %d is %lld, cannot broadcast to %lld",
                                  node->name, i, (long long)cd, (long long)wd);
        }
    }
    L->empty = numel_of(&L->d) == 0;
    L->k_zero = L->pr.K == 0;
    if (L->empty || L->k_zero) return KILN_OK;
    if (L->pr.M > INT_MAX || L->pr.N > INT_MAX || L->pr.K > INT_MAX)
        return kiln__fail(err, KILN_ERR_LIMIT, "node '%s' (%s): matrix dims %lldx%lldx%lld exceed cuBLASLt's limits",
                          node->name, node->op_type, (long long)L->pr.M, (long long)L->pr.N, (long long)L->pr.K);
    /* Repack what cuBLASLt cannot describe, then plan again (packed row-major always
     * fits; an output that needs a temporary is found first, its operands next). */
    size_t es = kiln_dtype_size(L->dt);
    for (int round = 0; round < 3; round++) {
        int bad = plan_problem(&L->pr, &L->pl, true);
        if (!bad) break;
        if (round == 2) return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): operand layout not describable",
                                     node->name, node->op_type);
        if (bad & 1) {
            L->pack_a = true;
            L->pa = L->a;
            row_major(&L->pa);
        }
        if (bad & 2) {
            L->pack_b = true;
            L->pb = L->b;
            row_major(&L->pb);
        }
        if (bad & 4) {
            L->temp_d = true;
            L->td = L->d;
            row_major(&L->td);
        }
        if ((s = build_problem(node, L, err))) return s;
        L->pr.strict = L->dt == KILN_DT_FLOAT && l->ex->precision == KILN_PREC_FP32;
    }
    if (L->pl.outer_count > MAX_HOST_LOOP)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): %lld separate GEMMs needed", node->name,
                          node->op_type, (long long)L->pl.outer_count);
    L->copy_bytes = (L->pack_a ? align_up((size_t)numel_of(&L->pa) * es) : 0) +
                    (L->pack_b ? align_up((size_t)numel_of(&L->pb) * es) : 0) +
                    (L->temp_d ? align_up((size_t)numel_of(&L->td) * es) : 0);
    return KILN_OK;
}

/* cuBLASLt descriptors for a plan (stack objects: no allocation, no sharing). */
typedef struct lt_descs {
    cublasLtMatmulDescOpaque_t op;
    cublasLtMatrixLayoutOpaque_t x, y, d;
} lt_descs;

static cublasStatus_t set_layout(cublasLtMatrixLayoutOpaque_t *lay, cudaDataType_t t, const mat_lay *m, int64_t batch,
                                 int64_t bstride)
{
    cublasStatus_t s = cublasLtMatrixLayoutInit(lay, t, m->rows, m->cols, m->ld);
    if (s || batch <= 1) return s;
    int32_t bc = (int32_t)batch;
    s = cublasLtMatrixLayoutSetAttribute(lay, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc);
    if (!s) s = cublasLtMatrixLayoutSetAttribute(lay, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &bstride, sizeof bstride);
    return s;
}

static cublasStatus_t make_descs(const mm_key *k, lt_descs *ds)
{
    cudaDataType_t t = k->dt == KILN_DT_FLOAT16 ? CUDA_R_16F : CUDA_R_32F;
    cublasComputeType_t ct = k->dt == KILN_DT_FLOAT && !k->strict ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    cublasStatus_t s = cublasLtMatmulDescInit(&ds->op, ct, CUDA_R_32F);
    int32_t ta = k->x.trans ? CUBLAS_OP_T : CUBLAS_OP_N, tb = k->y.trans ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (!s) s = cublasLtMatmulDescSetAttribute(&ds->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    if (!s) s = cublasLtMatmulDescSetAttribute(&ds->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    if (!s) s = set_layout(&ds->x, t, &k->x, k->batch, k->xbs);
    if (!s) s = set_layout(&ds->y, t, &k->y, k->batch, k->ybs);
    if (!s) s = set_layout(&ds->d, t, &k->d, k->batch, k->dbs);
    return s;
}

static cublasStatus_t query(const kiln_cuda_launch *l, const mm_key *k, lt_descs *ds, mm_algos *out)
{
    cublasLtMatmulPreferenceOpaque_t pref;
    cublasStatus_t s = cublasLtMatmulPreferenceInit(&pref);
    uint64_t ws = GEMM_WS_LIMIT;
    if (!s) s = cublasLtMatmulPreferenceSetAttribute(&pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    if (!s) s = cublasLtMatmulPreferenceSetAttribute(&pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &k->ax, sizeof k->ax);
    if (!s) s = cublasLtMatmulPreferenceSetAttribute(&pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &k->ay, sizeof k->ay);
    if (!s) s = cublasLtMatmulPreferenceSetAttribute(&pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &k->ad, sizeof k->ad);
    if (!s) s = cublasLtMatmulPreferenceSetAttribute(&pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &k->ad, sizeof k->ad);
    int n = 0;
    if (!s)
        s = cublasLtMatmulAlgoGetHeuristic(l->ex->cublaslt, &ds->op, &ds->x, &ds->y, &ds->d, &ds->d, &pref,
                                           GEMM_TACTICS, out->r, &n);
    out->n = 0;
    if (s) return s;
    for (int i = 0; i < n; i++)
        if (out->r[i].state == CUBLAS_STATUS_SUCCESS) out->r[out->n++] = out->r[i];
    return CUBLAS_STATUS_SUCCESS;
}

/*
 * The heuristic results for the plan (cached in the state when there is one).
 * A strided batch that cuBLASLt refuses (e.g. a zero batch stride) is replanned
 * as a host loop of single GEMMs.
 */
static kiln_status get_algos(const kiln_cuda_launch *l, mm_state *st, mm_launch *L, lt_descs *ds, mm_algos *local,
                             const mm_algos **out, kiln_err *err)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (attempt && plan_problem(&L->pr, &L->pl, false))
            return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): replanning failed", l->node->name,
                              l->node->op_type);
        cublasStatus_t cs = make_descs(&L->pl.key, ds);
        if (cs) return lt_fail(l->node, "descriptors", cs, err);
        if (st)
            for (int i = 0; i < CACHE_SLOTS; i++)
                if (st->cache[i].used && !memcmp(&st->cache[i].key, &L->pl.key, sizeof L->pl.key)) {
                    *out = &st->cache[i];
                    return KILN_OK;
                }
        mm_algos *al = st ? &st->cache[st->next_slot++ % CACHE_SLOTS] : local;
        memset(al, 0, sizeof *al);
        cs = query(l, &L->pl.key, ds, al);
        if (!cs && al->n > 0) {
            al->key = L->pl.key;
            al->used = true;
            *out = al;
            return KILN_OK;
        }
        if (L->pl.key.batch <= 1 || L->pl.outer_count * L->pl.key.batch > MAX_HOST_LOOP) {
            if (cs) return lt_fail(l->node, "cublasLtMatmulAlgoGetHeuristic", cs, err);
            return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): cuBLASLt has no algorithm for %lldx%lldx%lld",
                              l->node->name, l->node->op_type, (long long)L->pl.key.m, (long long)L->pl.key.n,
                              (long long)L->pl.key.k);
        }
    }
    return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): cuBLASLt has no algorithm", l->node->name,
                      l->node->op_type);
}

/* Result index for a tactic: the tactic itself when valid and its workspace fits, else the best that fits. */
static int pick(const mm_algos *al, int tactic, size_t avail)
{
    if (tactic >= 0 && tactic < al->n && al->r[tactic].workspaceSize <= avail) return tactic;
    for (int i = 0; i < al->n; i++)
        if (al->r[i].workspaceSize <= avail) return i;
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Table callbacks                                                           */

static kiln_status mm_prepare(const kiln_node *node, const void *params, const kiln_value *const *host, kiln_dtype dt,
                              kiln_layout layout, void **state, kiln_err *err)
{
    *state = NULL;
    if (dt != KILN_DT_FLOAT && dt != KILN_DT_FLOAT16)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): compute type %s is not supported on the GPU",
                          node->name, node->op_type, kiln_dtype_name(dt));
    mm_state *st = kiln__calloc(1, sizeof *st);
    if (!st) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "node '%s' (%s): out of memory", node->name, node->op_type);
    st->dt = dt;
    if (pthread_mutex_init(&st->mu, NULL) != 0) {
        free(st);
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): cannot create a mutex", node->name, node->op_type);
    }
    st->mu_ok = true;
    kiln_status s = KILN_OK;
    for (int i = 0; i < node->n_in && i < 3 && !s; i++) {
        const kiln_value *v = host[i];
        if (!v || !v->data) continue;
        kiln_cuda_tensor *t = &st->c[i];
        int r = v->shape.rank;
        if (r < 0 || r > KILN_MAX_DIMS || !kiln__shape_is_const(&v->shape)) continue;
        int64_t n = kiln__value_numel(v);
        size_t es = kiln_dtype_size(dt), bytes;
        t->dtype = dt;
        t->rank = r;
        for (int d = 0; d < r; d++) t->dims[d] = v->shape.d[d].add;
        row_major(t);
        if (n <= 0) continue; /* an empty constant needs no memory; its dims are kept */
        if (kiln__mul_overflow((size_t)n, es, &bytes)) {
            s = kiln__fail(err, KILN_ERR_LIMIT, "node '%s' (%s): constant input %d is too large", node->name,
                           node->op_type, i);
            break;
        }
        uint8_t *h = kiln__malloc(bytes);
        if (!h) {
            s = kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "node '%s' (%s): out of host memory", node->name, node->op_type);
            break;
        }
        for (int64_t j = 0; j < n; j++) {
            float f = (float)kiln__value_get_f64(v, j);
            if (dt == KILN_DT_FLOAT16) {
                uint16_t hv = kiln__f32_to_f16(f);
                memcpy(h + j * 2, &hv, 2);
            } else {
                memcpy(h + j * 4, &f, 4);
            }
        }
        s = kiln__gpu_malloc(&t->ptr, bytes, err);
        if (!s) s = kiln__gpu_memcpy_h2d(t->ptr, h, bytes, NULL, err);
        if (!s) s = kiln__gpu_sync(NULL, err);
        free(h);
    }
    if (s) {
        for (int i = 0; i < 3; i++)
            if (st->c[i].ptr) kiln__gpu_free(st->c[i].ptr);
        pthread_mutex_destroy(&st->mu);
        free(st);
        return s;
    }
    *state = st;
    return KILN_OK;
}

/* Engine file v3: constant inputs come converted (dt, row-major: the op is row_major) and on
 * the device, in the engine's memory shared by every context; nothing to convert or upload. */
static kiln_status mm_prepare_packed(const kiln_node *node, const void *params, const kiln_value *const *host,
                                     const kiln_cuda_tensor *dev, kiln_dtype dt, kiln_layout layout, void **state,
                                     kiln_err *err)
{
    (void)params;
    (void)host;
    (void)layout;
    *state = NULL;
    if (dt != KILN_DT_FLOAT && dt != KILN_DT_FLOAT16)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): compute type %s is not supported on the GPU",
                          node->name, node->op_type, kiln_dtype_name(dt));
    for (int i = 0; i < node->n_in && i < 3; i++)
        if (dev[i].rank > 0 && dev[i].ptr && dev[i].dtype != dt)
            return kiln__fail(err, KILN_ERR_DTYPE, "node '%s' (%s): constant input %d is %s in the engine, the layer computes in %s",
                              node->name, node->op_type, i, kiln_dtype_name(dev[i].dtype), kiln_dtype_name(dt));
    mm_state *st = kiln__calloc(1, sizeof *st);
    if (!st) return kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "node '%s' (%s): out of memory", node->name, node->op_type);
    st->dt = dt;
    st->shared = true;
    if (pthread_mutex_init(&st->mu, NULL) != 0) {
        free(st);
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): cannot create a mutex", node->name, node->op_type);
    }
    st->mu_ok = true;
    /* a constant input has dims (and a pointer unless empty); others stay zero */
    for (int i = 0; i < node->n_in && i < 3; i++)
        if (dev[i].ptr || (dev[i].rank > 0 && numel_of(&dev[i]) == 0)) st->c[i] = dev[i];
    *state = st;
    return KILN_OK;
}

static void mm_release(void *state)
{
    mm_state *st = state;
    if (!st) return;
    for (int i = 0; i < 3 && !st->shared; i++)
        if (st->c[i].ptr) kiln__gpu_free(st->c[i].ptr);
    if (st->mu_ok) pthread_mutex_destroy(&st->mu);
    free(st);
}

static void lock(mm_state *st)
{
    if (st) pthread_mutex_lock(&st->mu);
}

static void unlock(mm_state *st)
{
    if (st) pthread_mutex_unlock(&st->mu);
}

static int mm_tactic_count(const kiln_cuda_launch *l)
{
    mm_state *st = l->state;
    mm_launch L;
    lt_descs ds;
    mm_algos local;
    const mm_algos *al = NULL;
    kiln_err err;
    int n = 1;
    lock(st);
    if (!gather(l, st, &L, &err) && !L.empty && !L.k_zero && !get_algos(l, st, &L, &ds, &local, &al, &err))
        n = al->n;
    unlock(st);
    return n > 0 ? n : 1;
}

static size_t mm_workspace(const kiln_cuda_launch *l)
{
    mm_state *st = l->state;
    mm_launch L;
    lt_descs ds;
    mm_algos local;
    const mm_algos *al = NULL;
    kiln_err err;
    size_t ws = 0;
    lock(st);
    if (!gather(l, st, &L, &err) && !L.empty && !L.k_zero) {
        ws = L.copy_bytes;
        if (!get_algos(l, st, &L, &ds, &local, &al, &err)) {
            int i = pick(al, l->tactic, GEMM_WS_LIMIT);
            if (i >= 0) ws += align_up(al->r[i].workspaceSize);
        }
    }
    unlock(st);
    return ws;
}

/* D (or its temporary) = C broadcast to (M, N), before the GEMM adds alpha * A B on top. */
static kiln_status fill_c(const kiln_cuda_launch *l, const mm_launch *L, const kiln_cuda_tensor *D, float scale,
                          kiln_err *err)
{
    kiln_cuda_tensor c;
    const kiln_cuda_tensor *src = NULL;
    if (L->has_c) {
        memset(&c, 0, sizeof c);
        c.ptr = L->c.ptr;
        c.dtype = L->c.dtype;
        c.rank = 2;
        for (int i = 0; i < 2; i++) {
            int ci = i - (2 - L->c.rank);
            bool bc = ci < 0 || L->c.dims[ci] == 1;
            c.dims[i] = D->dims[i];
            c.strides[i] = bc ? 0 : L->c.strides[ci];
        }
        src = &c;
    }
    int rc = kiln__cuda_gemm_fill(D, src, scale, l->ex->stream);
    return kiln__cuda_check(rc, l->node, "placing C", err);
}

static kiln_status launch_locked(const kiln_cuda_launch *l, mm_state *st, kiln_err *err)
{
    const kiln_node *node = l->node;
    mm_launch L;
    kiln_status s = gather(l, st, &L, err);
    if (s || L.empty) return s;
    if (!L.d.ptr || (!L.k_zero && (!L.a.ptr || !L.b.ptr)) || (L.has_c && !L.c.ptr))
        return kiln__fail(err, KILN_ERR_INVALID_ARG, "node '%s' (%s): an input or output has no device address",
                          node->name, node->op_type);
    if (L.k_zero) {
        /* No products: D = beta * C, or zeros. */
        return fill_c(l, &L, &L.d, L.beta, err);
    }
    if (L.copy_bytes > l->ex->workspace_bytes || (L.copy_bytes && !l->ex->workspace))
        return kiln__fail(err, KILN_ERR_LIMIT, "node '%s' (%s): needs %zu bytes of workspace for copies, has %zu",
                          node->name, node->op_type, L.copy_bytes, l->ex->workspace_bytes);
    size_t es = kiln_dtype_size(L.dt), off = 0;
    uint8_t *base = l->ex->workspace;
    if (L.pack_a) {
        L.pa.ptr = base + off;
        off += align_up((size_t)numel_of(&L.pa) * es);
        if ((s = kiln__cuda_check(kiln__cuda_gemm_fill(&L.pa, &L.a, 1.0f, l->ex->stream), node, "packing A", err)))
            return s;
    }
    if (L.pack_b) {
        L.pb.ptr = base + off;
        off += align_up((size_t)numel_of(&L.pb) * es);
        if ((s = kiln__cuda_check(kiln__cuda_gemm_fill(&L.pb, &L.b, 1.0f, l->ex->stream), node, "packing B", err)))
            return s;
    }
    if (L.temp_d) {
        L.td.ptr = base + off;
        off += align_up((size_t)numel_of(&L.td) * es);
    }
    /* Pointers moved into the workspace: plan again with the final addresses. */
    if ((s = build_problem(node, &L, err))) return s;
    L.pr.strict = L.dt == KILN_DT_FLOAT && l->ex->precision == KILN_PREC_FP32;
    if (plan_problem(&L.pr, &L.pl, true))
        return kiln__fail(err, KILN_ERR_INTERNAL, "node '%s' (%s): operand layout not describable", node->name,
                          node->op_type);
    lt_descs ds;
    mm_algos local;
    const mm_algos *al = NULL;
    if ((s = get_algos(l, st, &L, &ds, &local, &al, err))) return s;
    size_t avail = l->ex->workspace_bytes - off;
    int i = pick(al, l->tactic, avail);
    if (i < 0)
        return kiln__fail(err, KILN_ERR_LIMIT, "node '%s' (%s): no cuBLASLt algorithm fits the %zu bytes of workspace left",
                          node->name, node->op_type, avail);
    const cublasLtMatmulHeuristicResult_t *r = &al->r[i];
    void *ws = r->workspaceSize ? base + off : NULL;
    const kiln_cuda_tensor *D = L.temp_d ? &L.td : &L.d;
    if (L.has_c && (s = fill_c(l, &L, D, 1.0f, err))) return s;
    float alpha = L.alpha, beta = L.has_c ? L.beta : 0.0f;
    const mm_plan *pl = &L.pl;
    int64_t idx[KILN_MAX_DIMS] = {0};
    for (int64_t it = 0; it < pl->outer_count; it++) {
        int64_t ox = 0, oy = 0, od = 0;
        for (int d = 0; d < pl->n_outer; d++) {
            ox += idx[d] * pl->ox[d];
            oy += idx[d] * pl->oy[d];
            od += idx[d] * pl->odd[d];
        }
        const uint8_t *xp = (const uint8_t *)pl->xp + ox * (int64_t)es, *yp = (const uint8_t *)pl->yp + oy * (int64_t)es;
        uint8_t *dp = (uint8_t *)pl->dp + od * (int64_t)es;
        cublasStatus_t cs = cublasLtMatmul(l->ex->cublaslt, &ds.op, &alpha, xp, &ds.x, yp, &ds.y, &beta, dp, &ds.d, dp,
                                           &ds.d, &r->algo, ws, r->workspaceSize, l->ex->stream);
        if (cs) return lt_fail(node, "cublasLtMatmul", cs, err);
        for (int d = pl->n_outer - 1; d >= 0; d--) {
            if (++idx[d] < pl->od[d]) break;
            idx[d] = 0;
        }
    }
    if (L.temp_d) {
        int rc = kiln__cuda_gemm_fill(&L.d, &L.td, 1.0f, l->ex->stream);
        if ((s = kiln__cuda_check(rc, node, "storing Y", err))) return s;
    }
    return KILN_OK;
}

static kiln_status mm_launch_fn(const kiln_cuda_launch *l, kiln_err *err)
{
    mm_state *st = l->state;
    lock(st);
    kiln_status s = launch_locked(l, st, err);
    unlock(st);
    return s;
}

static bool mm_supports(const kiln_node *node, const kiln_value *const *in, const kiln_value *out)
{
    if (node->n_in < 2 || !in[0] || !in[1]) return false;
    kiln_dtype dt = in[0]->dtype;
    if (dt != KILN_DT_FLOAT && dt != KILN_DT_FLOAT16) return false;
    for (int i = 1; i < node->n_in; i++)
        if (in[i] && in[i]->dtype != dt) return false;
    return true;
}

const kiln_cuda_op kiln__cuda_ops_gemm[] = {
    {.op_type = "MatMul", .domain = "", .supports = mm_supports, .prepare = mm_prepare, .prepare_packed = mm_prepare_packed, .release = mm_release,
     .tactic_count = mm_tactic_count, .workspace = mm_workspace, .launch = mm_launch_fn, .row_major = true},
    {.op_type = "Gemm", .domain = "", .supports = mm_supports, .prepare = mm_prepare, .prepare_packed = mm_prepare_packed, .release = mm_release,
     .tactic_count = mm_tactic_count, .workspace = mm_workspace, .launch = mm_launch_fn, .row_major = true},
    {0},
};
