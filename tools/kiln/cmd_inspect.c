/* kiln inspect: what a model takes and gives, what it is made of, and what cannot run. */
#include "cli.h"
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct op_count {
    const char *op;
    int n;
} op_count;

static int by_count(const void *a, const void *b)
{
    const op_count *x = a, *y = b;
    return x->n != y->n ? y->n - x->n : strcmp(x->op, y->op);
}

int kiln_cmd_inspect(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') return cli_error("inspect: usage: kiln inspect MODEL|ENGINE");
    if (kiln_engine_file_probe(argv[1])) {
        char *text = NULL;
        if (kiln_engine_describe_file(argv[1], &text)) return cli_error("%s", kiln_last_error());
        printf("engine: %s\n%s", argv[1], text);
        free(text);
        return 0;
    }
    kiln_network *net = NULL;
    if (kiln_onnx_parse(argv[1], NULL, &net)) return cli_error("%s", kiln_last_error());
    bool shapes_ok = kiln_network_infer_shapes(net) == KILN_OK;
    printf("model: %s\nopset: %lld\nnodes: %d\n", argv[1], (long long)kiln_network_opset(net), kiln_network_node_count(net));
    char buf[1024];
    printf("inputs:\n");
    for (int i = 0; i < kiln_network_input_count(net); i++) {
        kiln_network_describe_tensor(net, kiln_network_input_name(net, i), buf, sizeof buf);
        printf("  %s: %s\n", kiln_network_input_name(net, i), buf);
    }
    printf("outputs:\n");
    for (int i = 0; i < kiln_network_output_count(net); i++) {
        kiln_network_describe_tensor(net, kiln_network_output_name(net, i), buf, sizeof buf);
        printf("  %s: %s\n", kiln_network_output_name(net, i), buf);
    }
    if (!shapes_ok) {
        /* The model loaded, so this is part of the report (exit 0), not a failure of inspect.
         * The library's message already starts with "shape inference: "; print it once. */
        const char *why = kiln_network_last_error(net);
        static const char prefix[] = "shape inference: ";
        if (!strncmp(why, prefix, sizeof prefix - 1)) why += sizeof prefix - 1;
        printf("shape inference failed: %s\n", why);
    }
    int n = kiln_network_node_count(net), n_ops = 0;
    op_count *hist = calloc((size_t)n + 1, sizeof *hist);
    for (int i = 0; hist && i < n; i++) {
        const char *op = kiln_network_node_op(net, i);
        int j = 0;
        while (j < n_ops && strcmp(hist[j].op, op)) j++;
        if (j == n_ops) hist[n_ops++].op = op;
        hist[j].n++;
    }
    if (hist) qsort(hist, (size_t)n_ops, sizeof *hist, by_count);
    printf("ops:\n");
    for (int j = 0; j < n_ops; j++) printf("  %-24s %d\n", hist[j].op, hist[j].n);
    free(hist);
    static char report[65536];
    int unsup = kiln_network_unsupported_report(net, report, sizeof report);
    if (unsup > 0) {
        printf("cannot run on the cpu backend (%d node(s)):\n%s", unsup, report);
        /* plugins (issue 4): what could have provided them */
        int np = kiln_plugin_count();
        printf("plugins loaded:%s", np ? "" : " none (load with --plugins=LIB)");
        for (int p = 0; p < np; p++) {
            const char *pn, *pv, *pns;
            if (!kiln_plugin_get(p, &pn, &pv, &pns)) printf(" %s%s%s/%s", pns, *pns ? "::" : "", pn, pv);
        }
        printf("\n");
    }
    else
        printf("capability: every node runs on the cpu backend\n");
    kiln_network_free(net);
    return 0;
}
