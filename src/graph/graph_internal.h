/* Internal helpers shared by the public graph API files (src/graph). */
#ifndef KILN_GRAPH_INTERNAL_H
#define KILN_GRAPH_INTERNAL_H

#include "../passes/passes.h"
#include "kiln_graph.h"

/* Failure of an edit: text into net->last_error and kiln_last_error(); returns s. */
kiln_status kiln__gapi_fail(kiln_network *net, kiln_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Failure of a lookup (const network): text into kiln_last_error() only. */
kiln_status kiln__gapi_lfail(kiln_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The node at index i, or NULL. */
static inline const kiln_node *kiln__gapi_node(const kiln_network *net, int i)
{
    return (net && i >= 0 && i < net->n_nodes) ? &net->nodes[i] : NULL;
}
/* An input, initializer or a tensor some node writes. */
static inline bool kiln__gapi_defined(const kiln_network *net, int t)
{
    return net->tensors[t].kind != KILN_TENSOR_ACTIVATION || net->tensors[t].producer >= 0;
}
/* An initializer or the output of a Constant node. */
bool kiln__gapi_constlike(const kiln_network *net, int t);

#endif
