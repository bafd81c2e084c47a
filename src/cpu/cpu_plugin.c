/*
 * The generic CPU kernel of plugin nodes: calls the class's host `execute`
 * on row-major host buffers, or says clearly that the plugin has none.
 */
#include "cpu.h"
#include "../plugin/plugin.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void to_tensor(const kiln_value *v, kiln_plugin_tensor *t)
{
    memset(t, 0, sizeof *t);
    if (!v) return;
    t->present = 1;
    t->data = v->data;
    t->dtype = (int32_t)v->dtype;
    t->rank = v->shape.rank;
    int64_t dims[KILN_MAX_DIMS];
    for (int d = 0; d < v->shape.rank; d++) dims[d] = t->dims[d] = v->shape.d[d].add;
    kiln_plugin_row_major_strides(t->rank, dims, t->strides);
    t->layout = KILN_PLUGIN_LAYOUT_ROW_MAJOR;
}

static kiln_status plugin_run(const kiln_node *node, const void *params, const kiln_value *const *in, kiln_value *out,
                              kiln_err *err)
{
    const kiln_plugin_class *c = kiln__plugin_schema_class(node->schema);
    const kiln__plugin_params *p = params;
    if (!c || !p || !p->inst)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s' (%s): kiln's op has no CPU kernel and a plugin of that name only runs on the GPU",
                          node->name, node->op_type);
    char id[512];
    kiln__plugin_id_str(c, id, sizeof id);
    if (!c->execute)
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s': plugin %s has no host execute, so it cannot run on the CPU (use a GPU engine: kiln build/exec)",
                          node->name, id);
    kiln_plugin_tensor *ti = kiln__calloc((size_t)node->n_in + 1, sizeof *ti);
    kiln_plugin_tensor *to = kiln__calloc((size_t)node->n_out + 1, sizeof *to);
    kiln_status s = KILN_OK;
    if (!ti || !to) s = kiln__fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
    for (int i = 0; !s && i < node->n_in; i++) to_tensor(in[i], &ti[i]);
    for (int j = 0; !s && j < node->n_out; j++) to_tensor(node->out[j] >= 0 ? &out[j] : NULL, &to[j]);
    if (!s) {
        char msg[512] = "";
        int rc = c->execute(p->inst, ti, node->n_in, to, node->n_out, msg, sizeof msg);
        msg[sizeof msg - 1] = 0;
        if (rc != KILN_PLUGIN_OK) s = kiln__plugin_fail(err, rc, node, c, "execute", msg);
    }
    free(ti);
    free(to);
    return s;
}

static const kiln_cpu_kernel plugin_kernel = {"", "", plugin_run};

const kiln_cpu_kernel *kiln__cpu_plugin_kernel_find(const char *op_type)
{
    return kiln__plugin_name_registered(op_type) ? &plugin_kernel : NULL;
}
