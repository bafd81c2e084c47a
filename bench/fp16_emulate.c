/*
 * fp16 rounding emulated on the CPU reference (a study tool, not a test): where an fp16
 * engine's error comes from, without a GPU. It inserts Cast(float16) -> Cast(float) pairs
 * into the model where an fp16 engine rounds, runs kiln's CPU reference, and prints the
 * mean relative error sum|a-b|/sum|b| against the plain fp32 run (the metric).
 *
 *   kiln_fp16_emulate MODEL.onnx HxW FLAGS
 *
 * Input: 1x3xHxW, uniform in [0.001, 1) (as bench.py's). FLAGS, any of:
 *   w  conv filters rounded to nearest fp16      s  conv filters rounded as kiln writes them
 *   b  conv biases rounded                            (src/build/fp16_round.c: filter sums kept)
 *   a  every node output rounded (a Conv whose one reader is an activation: after that only)
 *   i  the graph input rounded (every reader)    j  the graph input rounded for Conv readers only
 *   o  the graph output rounded
 *   p  PRelu as the old fused epilogue: (1 - S)h * relu(x) + Sh * x, both factors rounded
 *   q  PRelu slope rounded (the epilogue since 68544b9: relu(x) + Sh * (x - relu(x)))
 *   -  nothing (checks the tool: 0)
 * Environment: ONLY=Conv,PRelu,...  'a' rounds only these ops' outputs; CONV_FROM=k, CONV_TO=k
 * limit w/s/b/a to convs k.. / ..k (0-based, in node order).
 */
#define _POSIX_C_SOURCE 200809L
#include "build/engine.h"
#include "kiln.h"
#include "kiln_graph.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int n_cast;

static float r16(float x) { return kiln__f16_to_f32(kiln__f32_to_f16(x)); }

/* Readers of t (and the graph output, if t is one) read t rounded to fp16 instead. */
static int round_readers(kiln_network *net, const char *t, const char *only_op)
{
    int cons[4096];
    int nc = kiln_graph_consumers(net, t, cons, 4096);
    char h[600], r[600], n1[64], n2[64];
    snprintf(h, sizeof h, "%.500s__h%d", t, n_cast);
    snprintf(r, sizeof r, "%.500s__r%d", t, n_cast);
    snprintf(n1, sizeof n1, "emu_q%d_a", n_cast);
    snprintf(n2, sizeof n2, "emu_q%d_b", n_cast++);
    kiln_attr_value a16 = {.name = "to", .type = KILN_ATTR_INT, .i = KILN_DT_FLOAT16};
    kiln_attr_value a32 = {.name = "to", .type = KILN_ATTR_INT, .i = KILN_DT_FLOAT};
    const char *i1[] = {t}, *o1[] = {h}, *i2[] = {h}, *o2[] = {r};
    if (kiln_graph_add_node(net, n1, "Cast", "", 1, i1, 1, o1, 1, &a16) ||
        kiln_graph_add_node(net, n2, "Cast", "", 1, i2, 1, o2, 1, &a32))
        return fprintf(stderr, "kiln_fp16_emulate: %s\n", kiln_network_last_error(net)), -1;
    for (int c = 0; c < nc; c++) {
        if (only_op && strcmp(kiln_graph_node_op(net, cons[c]), only_op)) continue;
        for (int s = 0; s < kiln_graph_node_input_count(net, cons[c]); s++)
            if (!strcmp(kiln_graph_node_input(net, cons[c], s), t)) kiln_graph_set_node_input(net, cons[c], s, r);
    }
    for (int o = 0; !only_op && o < kiln_network_output_count(net); o++)
        if (!strcmp(kiln_network_output_name(net, o), t)) {
            const char *names[] = {r};
            kiln_graph_set_outputs(net, 1, names);
        }
    return 0;
}

/* A constant replaced by f(constant) under a new name, for node input `slot`. */
static int replace_const(kiln_network *net, int node, int slot, const char *suffix, void (*f)(float *, const kiln_host_tensor *))
{
    kiln_host_tensor t = {0};
    const char *name = kiln_graph_node_input(net, node, slot);
    if (kiln_graph_constant_data(net, name, &t) || t.dtype != KILN_DT_FLOAT)
        return fprintf(stderr, "kiln_fp16_emulate: '%s' is not a float constant\n", name), -1;
    f(t.data, &t);
    char nm[600];
    snprintf(nm, sizeof nm, "%.500s__%s", name, suffix);
    snprintf(t.name, sizeof t.name, "%.200s", nm);
    int rc = kiln_graph_add_constant(net, nm, &t) || kiln_graph_set_node_input(net, node, slot, nm);
    kiln_host_tensor_release(&t);
    return rc ? -1 : 0;
}

static void filter_kept(float *w, const kiln_host_tensor *t)
{
    int64_t n = kiln_host_tensor_numel(t), taps = 1;
    for (int d = 2; d < t->rank; d++) taps *= t->dims[d];
    float *out = malloc(sizeof(float) * (size_t)n);
    if (!out) return;
    kiln__f16_round_groups(w, out, n / taps, taps);
    memcpy(w, out, sizeof(float) * (size_t)n);
    free(out);
}

static void nearest(float *w, const kiln_host_tensor *t)
{
    for (int64_t i = 0; i < kiln_host_tensor_numel(t); i++) w[i] = r16(w[i]);
}

static bool is_act(const char *op) { return !strcmp(op, "PRelu") || !strcmp(op, "LeakyRelu") || !strcmp(op, "Relu"); }

/* PRelu(x, S) as the fused conv epilogue computes it in fp16 (old: p, new: q). */
static int prelu_as_epilogue(kiln_network *net, int node, bool old_form)
{
    char y[512], x[512], s[512], nm[4][600], t[4][600];
    snprintf(y, sizeof y, "%s", kiln_graph_node_output(net, node, 0));
    snprintf(x, sizeof x, "%s", kiln_graph_node_input(net, node, 0));
    snprintf(s, sizeof s, "%s", kiln_graph_node_input(net, node, 1));
    kiln_host_tensor sh = {0};
    if (kiln_graph_constant_data(net, s, &sh) || sh.dtype != KILN_DT_FLOAT) return -1;
    kiln_host_tensor s1 = sh;
    s1.data = malloc(sh.nbytes);
    if (!s1.data) return -1;
    float *a = sh.data, *b = s1.data;
    for (int64_t i = 0; i < kiln_host_tensor_numel(&sh); i++) {
        a[i] = r16(a[i]);
        b[i] = old_form ? r16(1.0f - a[i]) : 1.0f - a[i]; /* new form: exactly 1 - Sh on the positive side */
    }
    for (int k = 0; k < 4; k++) snprintf(t[k], sizeof t[k], "%.500s__emu%d", y, k);
    snprintf(sh.name, sizeof sh.name, "%.200s__sh", s);
    snprintf(s1.name, sizeof s1.name, "%.200s__s1", s);
    int cons[256];
    int nc = kiln_graph_consumers(net, y, cons, 256);
    bool fail = kiln_graph_add_constant(net, NULL, &sh) || kiln_graph_add_constant(net, NULL, &s1);
    const char *in0[] = {x}, *in1[] = {t[0], s1.name}, *in2[] = {x, sh.name}, *in3[] = {t[1], t[2]};
    const char *const *ins[4] = {in0, in1, in2, in3};
    const char *ops[4] = {"Relu", "Mul", "Mul", "Add"};
    for (int k = 0; k < 4 && !fail; k++) {
        snprintf(nm[k], sizeof nm[k], "emu_prelu%d_%d", node, k);
        const char *out[] = {t[k]};
        fail = kiln_graph_add_node(net, nm[k], ops[k], "", k ? 2 : 1, ins[k], 1, out, 0, NULL) != KILN_OK;
    }
    for (int c = 0; c < nc && !fail; c++)
        for (int sl = 0; sl < kiln_graph_node_input_count(net, cons[c]); sl++)
            if (!strcmp(kiln_graph_node_input(net, cons[c], sl), y)) kiln_graph_set_node_input(net, cons[c], sl, t[3]);
    kiln_host_tensor_release(&sh);
    free(s1.data);
    return fail ? -1 : 0;
}

static int emulate(kiln_network *net, const char *fl)
{
    const char *only = getenv("ONLY");
    int lo = getenv("CONV_FROM") ? atoi(getenv("CONV_FROM")) : 0;
    int hi = getenv("CONV_TO") ? atoi(getenv("CONV_TO")) : 1 << 30;
    int n0 = kiln_graph_node_count(net), ci = -1, nt = 0;
    char **todo = calloc((size_t)n0 + 2, sizeof *todo);
    if (!todo) return -1;
    for (int n = 0; n < n0; n++) {
        const char *op = kiln_graph_node_op(net, n);
        if (!strcmp(op, "Conv")) ci++;
        if (ci < lo || ci > hi) continue;
        if (!strcmp(op, "Conv") && (strchr(fl, 'w') || strchr(fl, 's')) &&
            replace_const(net, n, 1, "w16", strchr(fl, 's') ? filter_kept : nearest))
            return -1;
        if (!strcmp(op, "Conv") && strchr(fl, 'b') && kiln_graph_node_input_count(net, n) > 2 &&
            replace_const(net, n, 2, "b16", nearest))
            return -1;
        if (!strchr(fl, 'a') || (only && !strstr(only, op))) continue;
        const char *out = kiln_graph_node_output(net, n, 0);
        int cons[64];
        int nc = kiln_graph_consumers(net, out, cons, 64);
        bool fused = !strcmp(op, "Conv") && nc == 1 && is_act(kiln_graph_node_op(net, cons[0]));
        bool is_out = false;
        for (int o = 0; o < kiln_network_output_count(net); o++) is_out |= !strcmp(kiln_network_output_name(net, o), out);
        if (!fused && !is_out) todo[nt++] = strdup(out);
    }
    for (int n = 0; n < n0 && (strchr(fl, 'p') || strchr(fl, 'q')); n++)
        if (!strcmp(kiln_graph_node_op(net, n), "PRelu")) {
            char y[512];
            snprintf(y, sizeof y, "%s", kiln_graph_node_output(net, n, 0));
            if (prelu_as_epilogue(net, n, strchr(fl, 'p') != NULL)) return -1;
            for (int k = 0; k < nt; k++) /* round the epilogue's result, not the unused PRelu output */
                if (!strcmp(todo[k], y)) {
                    free(todo[k]);
                    char t3[600];
                    snprintf(t3, sizeof t3, "%.500s__emu3", y);
                    todo[k] = strdup(t3);
                }
        }
    const char *in = kiln_network_input_name(net, 0);
    if (strchr(fl, 'i')) todo[nt++] = strdup(in);
    int rc = 0;
    for (int k = 0; k < nt && !rc; k++) rc = round_readers(net, todo[k], NULL);
    if (!rc && strchr(fl, 'j')) rc = round_readers(net, in, "Conv");
    if (!rc && strchr(fl, 'o')) rc = round_readers(net, kiln_network_output_name(net, 0), NULL);
    for (int k = 0; k < nt; k++) free(todo[k]);
    free(todo);
    return rc;
}

int main(int argc, char **argv)
{
    int h = 0, w = 0;
    if (argc != 4 || sscanf(argv[2], "%dx%d", &h, &w) != 2 || h <= 0 || w <= 0 || (int64_t)h * w > (1 << 26)) {
        fprintf(stderr, "usage: kiln_fp16_emulate MODEL.onnx HxW FLAGS (see the comment at the top of bench/fp16_emulate.c)\n");
        return 2;
    }
    if (argv[3][strspn(argv[3], "wsbaijopq-")] || !argv[3][0]) {
        fprintf(stderr, "kiln_fp16_emulate: FLAGS '%s': letters of wsbaijopq (or -) only\n", argv[3]);
        return 2;
    }
    kiln_network *ref_net = NULL, *net = NULL;
    if (kiln_onnx_parse(argv[1], NULL, &ref_net) || kiln_onnx_parse(argv[1], NULL, &net))
        return fprintf(stderr, "kiln_fp16_emulate: %s\n", kiln_last_error()), 1;
    /* sanitized (Identity removed, constants folded) so that filters and slopes are constants */
    kiln_sanitize_options so = {.struct_size = sizeof so, .fold_constants = 1, .cleanup = 1, .toposort = 1};
    if (kiln_network_sanitize(ref_net, &so, NULL) || kiln_network_sanitize(net, &so, NULL))
        return fprintf(stderr, "kiln_fp16_emulate: %s\n", kiln_last_error()), 1;
    kiln_host_tensor in = {.dtype = KILN_DT_FLOAT, .rank = 4, .dims = {1, 3, h, w}};
    in.nbytes = sizeof(float) * 3 * (size_t)h * (size_t)w;
    float *p = in.data = malloc(in.nbytes);
    if (!p) return 1;
    uint32_t s = 12345u;
    for (int64_t i = 0; i < 3 * (int64_t)h * w; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = 0.001f + 0.999f * (float)((s >> 8) / 16777216.0);
    }
    kiln_host_tensor ref = {0}, out = {0};
    int rc = 1;
    if (kiln_reference_run(ref_net, 1, &in, 1, &ref)) fprintf(stderr, "kiln_fp16_emulate: %s\n", kiln_network_last_error(ref_net));
    else if (emulate(net, argv[3])) fprintf(stderr, "kiln_fp16_emulate: could not insert the roundings\n");
    else if (kiln_reference_run(net, 1, &in, 1, &out)) fprintf(stderr, "kiln_fp16_emulate: %s\n", kiln_network_last_error(net));
    else if (kiln_host_tensor_numel(&out) != kiln_host_tensor_numel(&ref)) fprintf(stderr, "kiln_fp16_emulate: output sizes differ\n");
    else {
        const float *a = out.data, *b = ref.data;
        double sd = 0, sb = 0;
        for (int64_t i = 0; i < kiln_host_tensor_numel(&ref); i++) {
            sd += fabs((double)a[i] - b[i]);
            sb += fabs((double)b[i]);
        }
        printf("%s %dx%d flags %-8s roundings %4d  mean rel (sum|a-b|/sum|b|) %.3e\n", argv[1], h, w, argv[3], n_cast,
               sb > 0 ? sd / sb : 0.0);
        rc = 0;
    }
    kiln_host_tensor_release(&ref);
    kiln_host_tensor_release(&out);
    free(in.data);
    kiln_network_free(ref_net);
    kiln_network_free(net);
    return rc;
}
