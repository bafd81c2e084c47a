/*
 * kiln's graph IR: tensors, nodes, typed attributes, op schemas and symbolic
 * shapes. Nothing here knows about any backend.
 */
#ifndef KILN_IR_H
#define KILN_IR_H

#include "../core/core.h"

/*
 * A dimension. Constant when sym < 0 (value in `add`). Otherwise it is
 * floor((mul * S + add) / div) for symbol S = net->syms[sym], div >= 1.
 * That form is closed under what SR nets do to H and W: add a constant,
 * multiply (when div == 1), floor-divide (conv/pool strides).
 * sym == KILN_SYM_UNKNOWN means "not known statically".
 */
#define KILN_SYM_CONST (-1)
#define KILN_SYM_UNKNOWN (-2)

typedef struct kiln_dim {
    int32_t sym;
    int64_t mul;
    int64_t add;
    int64_t div;
} kiln_dim;

typedef struct kiln_shape {
    int rank; /* -1: rank not known */
    kiln_dim d[KILN_MAX_DIMS];
} kiln_shape;

kiln_dim kiln__dim_const(int64_t v);
kiln_dim kiln__dim_unknown(void);
kiln_dim kiln__dim_sym(int32_t sym);
static inline bool kiln__dim_is_const(kiln_dim d) { return d.sym == KILN_SYM_CONST; }
/* d + c, d * c, floor(d / c) (c > 0), keeping the symbolic form where possible. */
kiln_dim kiln__dim_add(kiln_dim d, int64_t c);
kiln_dim kiln__dim_mul(kiln_dim d, int64_t c);
kiln_dim kiln__dim_div(kiln_dim d, int64_t c);
/* a + b: exact when either is constant, or both share sym and div == 1. */
kiln_dim kiln__dim_add_dim(kiln_dim a, kiln_dim b);
/* Same value for every S (structural equality of the normalized form). */
bool kiln__dim_equal(kiln_dim a, kiln_dim b);
/* Broadcast of two dims (ONNX multidirectional): 1 vs x → x; equal → it. *ok=false on clash. */
kiln_dim kiln__dim_broadcast(kiln_dim a, kiln_dim b, bool *ok);

kiln_shape kiln__shape_of(int rank, const int64_t *dims);
/* Product of constant dims; -1 when any dim is not constant or rank unknown. */
int64_t kiln__shape_numel(const kiln_shape *s);
bool kiln__shape_is_const(const kiln_shape *s);

/*
 * A value as seen by shape inference and by CPU kernels: type, shape and,
 * when known, the contents (row-major, dtype's element size each).
 * At run time data is always set and every dim is constant.
 * Statically data is set for constants only; `symval` may carry the
 * contents of a small int64 tensor (a shape computation) as symbolic dims.
 */
#define KILN_SYMVAL_MAX 16
typedef struct kiln_value {
    kiln_dtype dtype;
    kiln_shape shape;
    void *data;
    size_t nbytes;
    int symval_n;             /* 0: none; else count of entries in symval */
    kiln_dim symval[KILN_SYMVAL_MAX];
} kiln_value;

/* Element count of a value with constant shape (1 for scalars). */
int64_t kiln__value_numel(const kiln_value *v);
/* Reads element i of an integer/bool/float value as int64 / double, any dtype. */
int64_t kiln__value_get_i64(const kiln_value *v, int64_t i);
double kiln__value_get_f64(const kiln_value *v, int64_t i);
/* Writes element i of v converting from double/int64 (any numeric dtype). */
void kiln__value_set_f64(kiln_value *v, int64_t i, double x);
void kiln__value_set_i64(kiln_value *v, int64_t i, int64_t x);

typedef struct kiln_attr {
    char *name;
    kiln_attr_type type;
    int64_t i;
    float f;
    char *s;
    size_t s_len;
    int64_t *ints;
    float *floats;
    char **strings;
    int64_t n;
    kiln_value *t; /* TENSOR: owned; data owned too */
} kiln_attr;

typedef enum kiln_tensor_kind {
    KILN_TENSOR_ACTIVATION = 0,
    KILN_TENSOR_INPUT = 1,
    KILN_TENSOR_CONSTANT = 2
} kiln_tensor_kind;

typedef struct kiln_tensor {
    char *name;
    kiln_tensor_kind kind;
    kiln_value v;       /* dtype + (symbolic) shape; data for constants (owned) */
    int producer;       /* node index, -1 for inputs/constants */
    bool is_output;
    /* --- surgeon (issue 5): ONNX metadata kept for the writer --- */
    struct kiln_tensor_decl *decl; /* declared type from value_info/output, owned; NULL: none */
    char *doc_string;              /* initializer/value_info doc string, owned; NULL: none */
    /* --- end surgeon --- */
} kiln_tensor;

/* --- surgeon (issue 5) --- */
/* A tensor's type as the ONNX file declared it (value_info or graph output), so the writer
 * can give back what it did not change. dims[i] < 0 with names[i] NULL: unknown dim. */
typedef struct kiln_tensor_decl {
    int32_t elem_type; /* ONNX code; 0: none */
    int rank;          /* -1: no shape */
    int64_t dims[KILN_MAX_DIMS];
    char *names[KILN_MAX_DIMS]; /* dim_param or NULL; owned */
} kiln_tensor_decl;
void kiln__tensor_decl_free(kiln_tensor_decl *d);
kiln_tensor_decl *kiln__tensor_decl_clone(const kiln_tensor_decl *d);
/* --- end surgeon --- */

struct kiln_op_schema;

typedef struct kiln_node {
    char *name;
    char *op_type;
    char *domain;       /* "" for the default ONNX domain */
    int n_in, n_out;
    int *in;            /* tensor indices; -1 for an omitted optional input */
    int *out;           /* tensor indices; -1 for an omitted optional output */
    int n_attrs;
    kiln_attr *attrs;
    int64_t opset;      /* opset of the node's domain in the model */
    const struct kiln_op_schema *schema;
    void *params;       /* schema->params_size bytes, filled by parse_attrs */
    char *doc_string;   /* surgeon (issue 5): NodeProto.doc_string, owned; NULL: none */
} kiln_node;

struct kiln_network {
    kiln_tensor *tensors;
    int n_tensors, cap_tensors;
    kiln_node *nodes;
    int n_nodes, cap_nodes;
    int *inputs, n_inputs;   /* tensor indices of graph inputs (no initializers) */
    int *outputs, n_outputs; /* tensor indices of graph outputs */
    char **syms;             /* names of symbolic dims */
    int n_syms;
    int64_t opset;
    /* name -> tensor index, open addressing */
    int *hash;
    int hash_cap;
    char *producer_name;
    int64_t ir_version;
    char last_error[1024];
    /* --- surgeon (issue 5): ModelProto/GraphProto metadata kept for the writer (owned) --- */
    char *producer_version, *model_doc, *model_domain, *graph_name, *graph_doc;
    int64_t model_version;
    int n_meta;
    char **meta_keys, **meta_values;       /* metadata_props */
    int n_opsets;
    char **opset_domains;                  /* opset_import, every domain ("" default) */
    int64_t *opset_versions;
    /* --- end surgeon --- */
};
/* surgeon (issue 5): copies the metadata above (and producer/ir_version) from src; false on OOM. */
bool kiln__net_copy_meta(kiln_network *dst, const kiln_network *src);

/* Tensor lookup by name; -1 if absent. */
int kiln__net_find_tensor(const kiln_network *net, const char *name);
/* Finds or creates a tensor (activation, unknown type) by name; -1 on OOM. */
int kiln__net_tensor(kiln_network *net, const char *name);
/* Index of a symbol by name, created if new. */
int32_t kiln__net_symbol(kiln_network *net, const char *name);
/* Human text of a dim / shape ("2*height+1", "[1,3,h,w]") into buf. */
void kiln__dim_str(const kiln_network *net, kiln_dim d, char *buf, size_t len);
void kiln__shape_str(const kiln_network *net, const kiln_shape *s, char *buf, size_t len);

/* Attribute lookup on a node; NULL if absent. Getters return the default when absent
 * and fail (return false) when present with the wrong type. */
const kiln_attr *kiln__node_attr(const kiln_node *n, const char *name);
int64_t kiln__attr_int(const kiln_node *n, const char *name, int64_t def);
float kiln__attr_float(const kiln_node *n, const char *name, float def);
const char *kiln__attr_string(const kiln_node *n, const char *name, const char *def);
/* INTS: returns count (or -1 if absent), *vals points into the attribute. */
int64_t kiln__attr_ints(const kiln_node *n, const char *name, const int64_t **vals);
/* Validates the attribute's type if present: "node 'x': attribute 'axis' must be INT". */
kiln_status kiln__attr_expect(const kiln_node *n, const char *name, kiln_attr_type t, kiln_err *err);
/* Frees what a node / an attribute owns and zeroes it (network.c; every node and attribute
 * goes through these, so a new owned field is freed in one place). */
void kiln__node_free(kiln_node *n);
void kiln__attr_free(kiln_attr *a);
/* "FLOAT", "INTS", ... as ONNX spells attribute types. */
const char *kiln__attr_type_name(kiln_attr_type t);

/*
 * One schema per op. parse_attrs validates the node's attributes (for the
 * node's opset) into `params` (params_size bytes, zeroed first). infer
 * computes each output's dtype and shape from the inputs' values; it runs
 * both statically (symbolic dims, data only for constants) and at run time
 * (every input concrete, data set) — so the CPU executor never needs a second
 * copy of shape logic. in[i] is NULL for an omitted optional input.
 * Errors name the node and the expected vs got.
 */
typedef struct kiln_op_schema {
    const char *op_type;
    const char *domain; /* "" default ONNX domain */
    int since_version;
    int min_inputs, max_inputs;
    int min_outputs, max_outputs;
    size_t params_size;
    kiln_status (*parse_attrs)(const kiln_node *node, void *params, kiln_err *err);
    kiln_status (*infer)(const kiln_node *node, const void *params, const kiln_value *const *in,
                         kiln_value *out, kiln_err *err);
} kiln_op_schema;

/* Looks up the schema for (domain, op_type); NULL if kiln does not know the op. */
const kiln_op_schema *kiln__op_schema_find(const char *domain, const char *op_type);

/* Each op family file exports a table ending with a zeroed entry. */
extern const kiln_op_schema kiln__ops_elementwise[];
extern const kiln_op_schema kiln__ops_activation[];
extern const kiln_op_schema kiln__ops_conv[];
extern const kiln_op_schema kiln__ops_pool[];
extern const kiln_op_schema kiln__ops_matmul[];
extern const kiln_op_schema kiln__ops_shape[];
extern const kiln_op_schema kiln__ops_movement[];
extern const kiln_op_schema kiln__ops_resize[];
extern const kiln_op_schema kiln__ops_reduce[];
extern const kiln_op_schema kiln__ops_norm[];
extern const kiln_op_schema kiln__ops_sampling[];
extern const kiln_op_schema kiln__ops_lrn[];
extern const kiln_op_schema kiln__ops_indexing[];
extern const kiln_op_schema kiln__ops_fused[]; /* kiln:: ops made by graph passes */

/* Static shape inference over the whole graph, in topological order. */
kiln_status kiln__net_infer_shapes(kiln_network *net, kiln_err *err);
/* Evaluates one node whose inputs are all known: out[] carry type and shape from infer;
 * the evaluator allocates and fills out[i].data/nbytes. Used to fold shape computations. */
typedef kiln_status (*kiln__node_eval_fn)(const kiln_node *node, const kiln_value *const *in, kiln_value *out);
kiln_status kiln__net_infer_shapes_eval(kiln_network *net, kiln__node_eval_fn eval, kiln_err *err);
/* Node indices in topological order (caller frees); fails on cycles / dangling names. */
kiln_status kiln__net_toposort(const kiln_network *net, int **order, kiln_err *err);

/* Deep copy through the network API (attributes re-parsed); node order kept. */
kiln_status kiln__net_clone(const kiln_network *src, kiln_network **out, kiln_err *err);
/* Converts a node's attributes to the network API form (pointers into the node). */
kiln_attr_value *kiln__node_attr_values(const kiln_node *n, kiln_host_tensor *tensors);

/* Helper for infer functions: set out to dtype + shape, no data. */
void kiln__value_set_type(kiln_value *out, kiln_dtype dt, const kiln_shape *s);

#endif
