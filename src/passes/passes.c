/* The ordered pass list and the driver that runs it. */
#include "passes.h"
#include <stdio.h>
#include <string.h>

/*
 * Order matters: Identity/Dropout go first so that constant folding does not
 * copy weights through them and conv patterns are not broken by them; folding
 * turns weight subgraphs (and static shape subgraphs) into constants, which
 * the BatchNormalization folding and the conv fusion need to see.
 */
static const kiln_pass pass_list[] = {
    {"eliminate_identity", kiln__pass_eliminate_identity},
    {"fold_constants", kiln__pass_fold_constants},
    {"remove_dead_nodes", kiln__pass_remove_dead_nodes},
    /* batch_branches (session 3): after dead nodes are gone, before the conv folds and fusions so
     * that they see the batched convs */
    {"batch_branches", kiln__pass_batch_branches},
    {"split_to_slice", kiln__pass_split_to_slice},
    {"fold_batchnorm_into_conv", kiln__pass_fold_batchnorm_into_conv},
    {"fold_scale_into_conv", kiln__pass_fold_scale_into_conv},
    {"hoist_activation", kiln__pass_hoist_activation},
    {"fuse_conv_activation", kiln__pass_fuse_conv_activation},
};

const kiln_pass *kiln__passes(int *count)
{
    *count = (int)(sizeof pass_list / sizeof pass_list[0]);
    return pass_list;
}

const kiln_pass *kiln__pass_find(const char *name)
{
    if (!name) return NULL;
    for (size_t i = 0; i < sizeof pass_list / sizeof pass_list[0]; i++)
        if (!strcmp(pass_list[i].name, name)) return &pass_list[i];
    return NULL;
}

static bool skipped(const kiln_pass_options *opts, const char *name)
{
    for (int i = 0; i < opts->n_skip; i++)
        if (opts->skip[i] && !strcmp(opts->skip[i], name)) return true;
    return false;
}

kiln_status kiln__passes_run(kiln_network *net, const kiln_pass_options *opts,
                             void (*after)(const char *pass, kiln_network *net, void *user), void *user,
                             kiln_err *err)
{
    kiln_pass_options defaults;
    if (!opts) {
        memset(&defaults, 0, sizeof defaults);
        defaults.precision = KILN_PREC_TF32;
        opts = &defaults;
    }
    if (!net) return kiln__fail(err, KILN_ERR_INVALID_ARG, "no network");
    for (size_t i = 0; i < sizeof pass_list / sizeof pass_list[0]; i++) {
        const kiln_pass *p = &pass_list[i];
        if (skipped(opts, p->name)) continue;
        kiln_pass_stats st;
        memset(&st, 0, sizeof st);
        st.nodes_before = net->n_nodes;
        kiln_status s = p->run(net, opts, &st, err);
        if (s) {
            kiln__err_prefix(err, "pass %s", p->name);
            return s;
        }
        st.nodes_after = net->n_nodes;
        if (!st.summary[0]) kiln__pass_note(&st, "no change");
        if (opts->log) opts->log(p->name, &st, opts->log_user);
        if (after) after(p->name, net, user);
    }
    /* Leaves every activation with its type and shape for the new graph (and proves it consistent). */
    kiln_status s = kiln__net_infer_shapes(net, err);
    if (s) kiln__err_prefix(err, "after the passes");
    return s;
}
