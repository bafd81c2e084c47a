/* Symbolic dimensions: floor((mul*S + add) / div), closed under what conv nets do to H and W. */
#include "ir.h"
#include <stdio.h>
#include <string.h>

kiln_dim kiln__dim_const(int64_t v) { return (kiln_dim){KILN_SYM_CONST, 0, v, 1}; }
kiln_dim kiln__dim_unknown(void) { return (kiln_dim){KILN_SYM_UNKNOWN, 0, 0, 1}; }
kiln_dim kiln__dim_sym(int32_t sym) { return (kiln_dim){sym, 1, 0, 1}; }

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

/* Symbolic coefficients stay far from int64 limits so later arithmetic cannot overflow. */
#define DIM_LIMIT ((int64_t)1 << 48)
static bool overflow_guard(int64_t v) { return v > DIM_LIMIT || v < -DIM_LIMIT; }

/* a*b and a+b, false when the result leaves +-2^48 (a model declaring absurd dims) */
static bool mul_ok(int64_t a, int64_t b, int64_t *r) { return !__builtin_mul_overflow(a, b, r) && !overflow_guard(*r); }
static bool add_ok(int64_t a, int64_t b, int64_t *r) { return !__builtin_add_overflow(a, b, r) && !overflow_guard(*r); }

kiln_dim kiln__dim_add(kiln_dim d, int64_t c)
{
    if (d.sym == KILN_SYM_UNKNOWN) return d;
    int64_t r, cd;
    if (d.sym == KILN_SYM_CONST) return add_ok(d.add, c, &r) ? kiln__dim_const(r) : kiln__dim_unknown();
    /* floor(x/d) + c == floor((x + c*d)/d) */
    if (!mul_ok(c, d.div, &cd) || !add_ok(d.add, cd, &r)) return kiln__dim_unknown();
    d.add = r;
    return d;
}

kiln_dim kiln__dim_mul(kiln_dim d, int64_t c)
{
    if (d.sym == KILN_SYM_UNKNOWN) return d;
    int64_t r, rm, ra;
    if (d.sym == KILN_SYM_CONST) return mul_ok(d.add, c, &r) ? kiln__dim_const(r) : kiln__dim_unknown();
    if (c == 0) return kiln__dim_const(0);
    if (c < 0) return kiln__dim_unknown();
    if (d.div == 1 || (d.mul % d.div == 0 && d.add % d.div == 0)) {
        int64_t m = (d.div == 1) ? d.mul : d.mul / d.div, a = (d.div == 1) ? d.add : d.add / d.div;
        if (!mul_ok(m, c, &rm) || !mul_ok(a, c, &ra)) return kiln__dim_unknown();
        return (kiln_dim){d.sym, rm, ra, 1};
    }
    return kiln__dim_unknown();
}

kiln_dim kiln__dim_div(kiln_dim d, int64_t c)
{
    if (c <= 0 || d.sym == KILN_SYM_UNKNOWN) return c <= 0 ? kiln__dim_unknown() : d;
    if (d.sym == KILN_SYM_CONST) return kiln__dim_const(floor_div(d.add, c));
    /* floor(floor(x/a)/c) == floor(x/(a*c)) */
    int64_t nd;
    if (!mul_ok(d.div, c, &nd)) return kiln__dim_unknown();
    d.div = nd;
    /* when div divides mul, floor((m*S + a)/d) == (m/d)*S + floor(a/d): back to div 1 */
    if (d.mul % d.div == 0) {
        d.mul /= d.div;
        d.add = floor_div(d.add, d.div);
        d.div = 1;
    }
    return d;
}

kiln_dim kiln__dim_add_dim(kiln_dim a, kiln_dim b)
{
    if (a.sym == KILN_SYM_UNKNOWN || b.sym == KILN_SYM_UNKNOWN) return kiln__dim_unknown();
    if (a.sym == KILN_SYM_CONST) return kiln__dim_add(b, a.add);
    if (b.sym == KILN_SYM_CONST) return kiln__dim_add(a, b.add);
    int64_t m, c;
    if (a.sym == b.sym && a.sym >= 0 && a.div == 1 && b.div == 1 && add_ok(a.mul, b.mul, &m) && add_ok(a.add, b.add, &c))
        return (kiln_dim){a.sym, m, c, 1};
    return kiln__dim_unknown();
}

bool kiln__dim_equal(kiln_dim a, kiln_dim b)
{
    if (a.sym == KILN_SYM_UNKNOWN || b.sym == KILN_SYM_UNKNOWN) return false;
    if (a.sym == KILN_SYM_CONST || b.sym == KILN_SYM_CONST)
        return a.sym == b.sym && a.add == b.add;
    return a.sym == b.sym && a.mul == b.mul && a.add == b.add && a.div == b.div;
}

kiln_dim kiln__dim_broadcast(kiln_dim a, kiln_dim b, bool *ok)
{
    *ok = true;
    if (kiln__dim_is_const(a) && a.add == 1) return b;
    if (kiln__dim_is_const(b) && b.add == 1) return a;
    if (kiln__dim_is_const(a) && kiln__dim_is_const(b)) {
        if (a.add != b.add) *ok = false;
        return a;
    }
    if (kiln__dim_equal(a, b)) return a;
    /* one symbolic, one constant != 1: the symbol must equal the constant */
    if (kiln__dim_is_const(a)) return a;
    if (kiln__dim_is_const(b)) return b;
    return kiln__dim_unknown();
}

kiln_shape kiln__shape_of(int rank, const int64_t *dims)
{
    kiln_shape s;
    memset(&s, 0, sizeof s);
    s.rank = rank;
    for (int i = 0; i < rank && i < KILN_MAX_DIMS; i++) s.d[i] = kiln__dim_const(dims[i]);
    return s;
}

int64_t kiln__shape_numel(const kiln_shape *s)
{
    if (s->rank < 0) return -1;
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++) {
        if (!kiln__dim_is_const(s->d[i]) || s->d[i].add < 0) return -1;
        if (__builtin_mul_overflow(n, s->d[i].add, &n)) return -1;
    }
    return n;
}

bool kiln__shape_is_const(const kiln_shape *s)
{
    if (s->rank < 0) return false;
    for (int i = 0; i < s->rank; i++)
        if (!kiln__dim_is_const(s->d[i])) return false;
    return true;
}

void kiln__dim_str(const kiln_network *net, kiln_dim d, char *buf, size_t len)
{
    if (d.sym == KILN_SYM_CONST) {
        snprintf(buf, len, "%lld", (long long)d.add);
        return;
    }
    if (d.sym == KILN_SYM_UNKNOWN || !net || d.sym >= net->n_syms) {
        snprintf(buf, len, "?");
        return;
    }
    const char *name = net->syms[d.sym];
    char core[160];
    if (d.mul == 1) snprintf(core, sizeof core, "%s", name);
    else snprintf(core, sizeof core, "%lld*%s", (long long)d.mul, name);
    char expr[200];
    if (d.add > 0) snprintf(expr, sizeof expr, "%s+%lld", core, (long long)d.add);
    else if (d.add < 0) snprintf(expr, sizeof expr, "%s-%lld", core, (long long)-d.add);
    else snprintf(expr, sizeof expr, "%s", core);
    if (d.div != 1) snprintf(buf, len, "(%s)/%lld", expr, (long long)d.div);
    else snprintf(buf, len, "%s", expr);
}

void kiln__shape_str(const kiln_network *net, const kiln_shape *s, char *buf, size_t len)
{
    if (s->rank < 0) {
        snprintf(buf, len, "[?]");
        return;
    }
    size_t pos = 0;
    pos += (size_t)snprintf(buf + pos, len - pos, "[");
    for (int i = 0; i < s->rank && pos < len; i++) {
        char d[200];
        kiln__dim_str(net, s->d[i], d, sizeof d);
        pos += (size_t)snprintf(buf + pos, len - pos, "%s%s", i ? "," : "", d);
    }
    if (pos < len) snprintf(buf + pos, len - pos, "]");
}
