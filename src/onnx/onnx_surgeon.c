/*
 * kiln surgeon's library side (issue 5): sanitize (constant folding, cleanup,
 * topological order, repeated until nothing changes) and the graph dumps of
 * `kiln build --dump-graph-after` (the builder's passes on a copy, written as
 * ONNX after the chosen pass).
 */
#include "../passes/passes.h"
#include "kiln_graph.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_ROUNDS 100

static kiln_status net_fail(kiln_network *net, kiln_status s, const char *msg)
{
    snprintf(net->last_error, sizeof net->last_error, "%s", msg);
    kiln__set_last_error(net->last_error);
    return s;
}

/* Op-type histogram: counts[i] for names[i] (pointers into the network's nodes: copy before edits). */
typedef struct op_hist {
    char (*names)[64];
    int *counts;
    int n;
} op_hist;

static bool hist_build(const kiln_network *net, op_hist *h)
{
    h->names = kiln__calloc((size_t)net->n_nodes + 1, sizeof *h->names);
    h->counts = kiln__calloc((size_t)net->n_nodes + 1, sizeof *h->counts);
    h->n = 0;
    if (!h->names || !h->counts) return false;
    for (int i = 0; i < net->n_nodes; i++) {
        const char *op = net->nodes[i].op_type;
        int k = 0;
        while (k < h->n && strcmp(h->names[k], op)) k++;
        if (k == h->n) snprintf(h->names[h->n++], sizeof h->names[0], "%s", op);
        h->counts[k]++;
    }
    return true;
}

static void hist_free(op_hist *h)
{
    free(h->names);
    free(h->counts);
    memset(h, 0, sizeof *h);
}

static void report_add(kiln_sanitize_report *r, const char *op, int count)
{
    for (int i = 0; i < r->n_ops; i++)
        if (!strcmp(r->op_type[i], op)) {
            r->op_count[i] += count;
            return;
        }
    if (r->n_ops == KILN_SANITIZE_MAX_OPS) return;
    snprintf(r->op_type[r->n_ops], sizeof r->op_type[0], "%s", op);
    r->op_count[r->n_ops++] = count;
}

/* One constant-folding round; *folded gets the nodes folded (by op type into r). */
static kiln_status fold_round(kiln_network *net, const kiln_sanitize_options *o, kiln_sanitize_report *r, int *folded)
{
    *folded = 0;
    op_hist before = {0}, after = {0};
    if (!hist_build(net, &before)) {
        hist_free(&before);
        return net_fail(net, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    kiln_pass_options po;
    memset(&po, 0, sizeof po);
    po.precision = KILN_PREC_FP32;
    po.fold_max_bytes = o->fold_max_bytes;
    /* Shape/Size fold where the inferred shape is a constant (true for every value of the
     * symbolic dims); when static inference is impossible (an op kiln does not know), only
     * nodes over constants fold. */
    po.static_shapes = true;
    kiln_pass_stats st;
    memset(&st, 0, sizeof st);
    kiln_err err = {{0}};
    kiln_err probe = {{0}};
    if (kiln__net_infer_shapes(net, &probe)) po.static_shapes = false;
    kiln_status s = kiln__pass_fold_constants(net, &po, &st, &err);
    if (s) {
        hist_free(&before);
        kiln__err_prefix(&err, "constant folding");
        return net_fail(net, s, err.msg);
    }
    *folded = st.changes;
    if (st.changes) {
        if (!hist_build(net, &after)) {
            hist_free(&before);
            hist_free(&after);
            return net_fail(net, KILN_ERR_OUT_OF_MEMORY, "out of memory");
        }
        for (int i = 0; i < before.n; i++) {
            int now = 0;
            for (int k = 0; k < after.n; k++)
                if (!strcmp(after.names[k], before.names[i])) now = after.counts[k];
            if (before.counts[i] > now) report_add(r, before.names[i], before.counts[i] - now);
        }
    }
    hist_free(&before);
    hist_free(&after);
    r->folded_nodes += st.changes;
    return KILN_OK;
}

kiln_status kiln_network_sanitize(kiln_network *net, const kiln_sanitize_options *opts, kiln_sanitize_report *report)
{
    if (!net) return KILN_ERR_INVALID_ARG;
    if (!opts || opts->struct_size != sizeof *opts)
        return net_fail(net, KILN_ERR_INVALID_ARG, "kiln_network_sanitize: options missing or struct_size wrong");
    kiln_sanitize_report local;
    kiln_sanitize_report *r = report ? report : &local;
    memset(r, 0, sizeof *r);
    r->nodes_before = net->n_nodes;
    int limit = opts->num_passes > 0 ? opts->num_passes : MAX_ROUNDS;
    kiln_status s = KILN_OK;
    for (int round = 0; round < limit; round++) {
        int changed = 0;
        if (opts->fold_constants) {
            int folded = 0;
            if ((s = fold_round(net, opts, r, &folded))) return s;
            changed += folded;
        }
        if (opts->cleanup) {
            int rn = 0, rt = 0;
            if ((s = kiln_graph_cleanup(net, KILN_GRAPH_CLEANUP_INPUTS, &rn, &rt))) return s;
            r->removed_nodes += rn;
            r->removed_tensors += rt;
            changed += rn + rt;
        }
        r->rounds++;
        if (!changed) break;
    }
    if (opts->toposort && (s = kiln_graph_toposort(net))) return s;
    r->nodes_after = net->n_nodes;
    return KILN_OK;
}

/* --- pass dumps ------------------------------------------------------------ */

int kiln_pass_name_valid(const char *name, const char **list)
{
    static char names[1024];
    if (!names[0]) {
        int n;
        const kiln_pass *p = kiln__passes(&n);
        size_t pos = 0;
        for (int i = 0; i < n && pos < sizeof names; i++)
            pos += (size_t)snprintf(names + pos, sizeof names - pos, "%s%s", i ? ", " : "", p[i].name);
        if (pos < sizeof names) snprintf(names + pos, sizeof names - pos, ", all");
    }
    if (list) *list = names;
    return name && (!strcmp(name, "all") || kiln__pass_find(name)) ? 1 : 0;
}

typedef struct dump_ctx {
    const char *pass, *dir;
    int written;
    kiln_status st;
    char err[1024];
} dump_ctx;

static void after_pass(const char *pass, kiln_network *net, void *user)
{
    dump_ctx *c = user;
    if (c->st || (strcmp(c->pass, "all") && strcmp(c->pass, pass))) return;
    /* The writer takes types from static inference; a pass may leave them stale. */
    kiln_err e;
    kiln__net_infer_shapes(net, &e);
    size_t len = strlen(c->dir) + strlen(pass) + 8;
    char *path = kiln__malloc(len);
    if (!path) {
        c->st = KILN_ERR_OUT_OF_MEMORY;
        snprintf(c->err, sizeof c->err, "out of memory");
        return;
    }
    snprintf(path, len, "%s/%s.onnx", c->dir, pass);
    c->st = kiln_onnx_write(net, path, NULL);
    if (c->st) snprintf(c->err, sizeof c->err, "%s", kiln_last_error());
    else c->written++;
    free(path);
}

kiln_status kiln_network_dump_passes(const kiln_network *net, const char *pass, const char *dir, int static_shapes,
                                     int precision, int *n_written)
{
    if (n_written) *n_written = 0;
    if (!net || !pass || !dir || !*dir) {
        kiln__set_last_error("kiln_network_dump_passes: network, pass or folder missing");
        return KILN_ERR_INVALID_ARG;
    }
    const char *list;
    if (!kiln_pass_name_valid(pass, &list)) {
        char msg[1200];
        snprintf(msg, sizeof msg, "unknown pass '%s' (passes: %s)", pass, list);
        kiln__set_last_error(msg);
        return KILN_ERR_INVALID_ARG;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 && mkdir(dir, 0777) != 0) {
        char msg[1200];
        snprintf(msg, sizeof msg, "cannot create dump folder '%s': %s", dir, strerror(errno));
        kiln__set_last_error(msg);
        return KILN_ERR_IO;
    }
    kiln_err err = {{0}};
    kiln_network *copy = NULL;
    kiln_status s = kiln__net_clone(net, &copy, &err);
    if (s) {
        kiln__set_last_error(err.msg);
        return s;
    }
    kiln_pass_options po;
    memset(&po, 0, sizeof po);
    po.static_shapes = static_shapes != 0;
    po.precision = (kiln_precision)precision;
    dump_ctx c = {.pass = pass, .dir = dir};
    s = kiln__passes_run(copy, &po, after_pass, &c, &err);
    kiln_network_free(copy);
    if (c.st) {
        kiln__set_last_error(c.err);
        return c.st;
    }
    if (s) {
        kiln__set_last_error(err.msg);
        return s;
    }
    if (n_written) *n_written = c.written;
    return KILN_OK;
}
