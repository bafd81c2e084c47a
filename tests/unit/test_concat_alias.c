/*
 * Concat in place (src/runtime/concat_alias.c) on hand-made step lists, no GPU:
 * RRDB's chain of dense-block Concats must end up in one buffer with both
 * Concat steps skipped, and every case that must copy (NHWC, N > 1, a slice
 * off the 256-byte grid, an input used twice, a graph input, another dtype)
 * must keep its copy.
 */
#include "runtime/context.h"
#include "test_main.h"
#include <string.h>

enum { H = 8, W = 8 };

static kiln_network *net;
static int n_relu, n_cat1, n_cat2;

static int node_index(const char *name)
{
    for (int i = 0; i < kiln_network_node_count(net); i++)
        if (!strcmp(kiln_network_node_name(net, i), name)) return i;
    return -1;
}

static void make_net(void)
{
    int64_t d64[4] = {1, 64, H, W}, d32[4] = {1, 32, H, W};
    CHECK(kiln_network_create(&net) == KILN_OK);
    CHECK(kiln_network_add_input(net, "a", KILN_DT_FLOAT, 4, d64, NULL) == KILN_OK);
    CHECK(kiln_network_add_input(net, "b", KILN_DT_FLOAT, 4, d32, NULL) == KILN_OK);
    CHECK(kiln_network_add_input(net, "c", KILN_DT_FLOAT, 4, d32, NULL) == KILN_OK);
    CHECK(kiln_network_add_activation(net, "relu", "a", KILN_ACT_RELU, 0, "ra") == KILN_OK);
    const char *i1[2] = {"a", "b"}, *i2[3] = {"a", "b", "c"};
    CHECK(kiln_network_add_concat(net, "cat1", 2, i1, 1, "c1") == KILN_OK);
    CHECK(kiln_network_add_concat(net, "cat2", 3, i2, 1, "c2") == KILN_OK);
    n_relu = node_index("relu");
    n_cat1 = node_index("cat1");
    n_cat2 = node_index("cat2");
    CHECK(n_relu >= 0 && n_cat1 >= 0 && n_cat2 >= 0);
}

typedef struct fixture {
    kiln_context ctx;
    kiln_rep reps[16];
    kiln_step steps[16];
    int ins[16][4], outs[16][1];
} fixture;

static int rep(fixture *f, int64_t n, int64_t c, int64_t h, int64_t w, kiln_dtype dt, kiln_layout lay, int where,
               int first, int last)
{
    int r = f->ctx.n_reps++;
    kiln_rep *p = &f->reps[r];
    memset(p, 0, sizeof *p);
    p->tensor = -1;
    p->where = where;
    p->first = first;
    p->last = last;
    p->alias_of = -1;
    p->t.dtype = dt;
    p->t.rank = 4;
    p->t.dims[0] = n;
    p->t.dims[1] = c;
    p->t.dims[2] = h;
    p->t.dims[3] = w;
    kiln__cuda_strides(&p->t, lay);
    return r;
}

static int step(fixture *f, int node, int n_in, const int *in, int out)
{
    int s = f->ctx.n_steps++;
    kiln_step *st = &f->steps[s];
    memset(st, 0, sizeof *st);
    st->kind = STEP_LAUNCH;
    st->node = node;
    for (int j = 0; j < n_in; j++) f->ins[s][j] = in[j];
    f->outs[s][0] = out;
    st->in_reps = f->ins[s];
    st->out_reps = f->outs[s];
    return s;
}

static void init(fixture *f)
{
    memset(f, 0, sizeof *f);
    f->ctx.net = net;
    f->ctx.reps = f->reps;
    f->ctx.steps = f->steps;
}

/* RRDB: c1 = cat(x, x1), c2 = cat(x, x1, x2): one buffer, no copies. */
static void test_chain(void)
{
    fixture f;
    init(&f);
    kiln_dtype fl = KILN_DT_FLOAT;
    int x = rep(&f, 1, 64, H, W, fl, KILN_LAYOUT_ROW_MAJOR, REP_ARENA, 0, 4);
    int x1 = rep(&f, 1, 32, H, W, fl, KILN_LAYOUT_ROW_MAJOR, REP_ARENA, 1, 4);
    int c1 = rep(&f, 1, 96, H, W, fl, KILN_LAYOUT_ROW_MAJOR, REP_ARENA, 2, 3);
    int x2 = rep(&f, 1, 32, H, W, fl, KILN_LAYOUT_ROW_MAJOR, REP_ARENA, 3, 4);
    int c2 = rep(&f, 1, 128, H, W, fl, KILN_LAYOUT_ROW_MAJOR, REP_ARENA, 4, 5);
    step(&f, n_relu, 0, NULL, x);
    step(&f, n_relu, 0, NULL, x1);
    int s1 = step(&f, n_cat1, 2, (int[]){x, x1}, c1);
    step(&f, n_relu, 1, (int[]){c1}, x2);
    int s2 = step(&f, n_cat2, 3, (int[]){x, x1, x2}, c2);
    step(&f, n_relu, 1, (int[]){c2}, -1);
    kiln__context_alias_concats(&f.ctx);
    size_t plane = (size_t)H * W * sizeof(float);
    CHECK(f.steps[s1].skip && f.steps[s2].skip);
    CHECK(f.reps[c2].alias_of < 0);
    CHECK(f.reps[x].alias_of == c2 && f.reps[x].alias_off == 0);
    CHECK(f.reps[x1].alias_of == c2 && f.reps[x1].alias_off == 64 * plane);
    CHECK(f.reps[x2].alias_of == c2 && f.reps[x2].alias_off == 96 * plane);
    CHECK(f.reps[c1].alias_of == c2 && f.reps[c1].alias_off == 0);
    /* the root lives from the first write of x to the last read of c2 */
    CHECK(f.reps[c2].first == 0 && f.reps[c2].last == 5);
    f.reps[c2].t.ptr = (void *)(uintptr_t)0x100000;
    kiln__context_place_aliases(&f.ctx);
    CHECK((uintptr_t)f.reps[x1].t.ptr == 0x100000 + 64 * plane);
    CHECK((uintptr_t)f.reps[c1].t.ptr == 0x100000);
    CHECK((uintptr_t)f.reps[x2].t.ptr == 0x100000 + 96 * plane);
}

/* One Concat cat(x, x1) under a condition; returns whether its step was skipped and
 * whether x1 went into the output. */
static void one_concat(int64_t n, int64_t cx, int64_t h, int64_t w, kiln_layout lay, int where_x1, kiln_dtype dt_x1,
                       bool same_twice, bool *skipped, bool *x1_in)
{
    fixture f;
    init(&f);
    kiln_dtype fl = KILN_DT_FLOAT;
    int x = rep(&f, n, cx, h, w, fl, lay, REP_ARENA, 0, 2);
    int x1 = same_twice ? x : rep(&f, n, 32, h, w, dt_x1, lay, where_x1, where_x1 == REP_ARENA ? 1 : -1, 2);
    int c = rep(&f, n, cx + (same_twice ? cx : 32), h, w, fl, lay, REP_ARENA, 2, 3);
    step(&f, n_relu, 0, NULL, x);
    int s = step(&f, n_cat1, 2, (int[]){x, x1}, c);
    kiln__context_alias_concats(&f.ctx);
    *skipped = f.steps[s].skip;
    *x1_in = !same_twice && f.reps[x1].alias_of == c;
}

static void test_must_copy(void)
{
    bool skip, in;
    kiln_dtype fl = KILN_DT_FLOAT;
    one_concat(1, 64, H, W, KILN_LAYOUT_ROW_MAJOR, REP_ARENA, fl, false, &skip, &in);
    CHECK(skip && in); /* the plain case, for contrast */
    one_concat(1, 64, H, W, KILN_LAYOUT_NHWC, REP_ARENA, fl, false, &skip, &in);
    CHECK(!skip && !in); /* channel slices of NHWC are not contiguous */
    one_concat(2, 64, H, W, KILN_LAYOUT_ROW_MAJOR, REP_ARENA, fl, false, &skip, &in);
    CHECK(!skip && !in); /* N > 1 */
    one_concat(1, 5, 3, 3, KILN_LAYOUT_ROW_MAJOR, REP_ARENA, fl, false, &skip, &in);
    CHECK(!skip && !in); /* x1 would start 180 bytes in: off the 256-byte grid */
    one_concat(1, 64, H, W, KILN_LAYOUT_ROW_MAJOR, REP_USER_IN, fl, false, &skip, &in);
    CHECK(!skip && !in); /* the caller's buffer cannot move */
    one_concat(1, 64, H, W, KILN_LAYOUT_ROW_MAJOR, REP_ARENA, KILN_DT_FLOAT16, false, &skip, &in);
    CHECK(!skip && !in); /* another dtype: the Concat converts */
    one_concat(1, 64, H, W, KILN_LAYOUT_ROW_MAJOR, REP_ARENA, fl, true, &skip, &in);
    CHECK(!skip); /* cat(x, x): x can live in one slice only */
}

int main(void)
{
    make_net();
    test_chain();
    test_must_copy();
    kiln_network_free(net);
    return TEST_SUMMARY("test_concat_alias");
}
