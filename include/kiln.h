/*
 * kiln — public C API.
 *
 * Every fallible call returns a kiln_status (KILN_OK == 0, errors negative).
 * The detail text of the last failure is kept on the handle that failed
 * (kiln_network_last_error) or, for calls that have no handle yet, in a
 * thread-local buffer read with kiln_last_error(). The library never prints
 * and never exits.
 *
 * Thread safety: a kiln_network may be read by several threads at once
 * (kiln_reference_run only reads it); building or editing it needs one thread.
 */
#ifndef KILN_H
#define KILN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_VERSION_MAJOR 0
#define KILN_VERSION_MINOR 1
#define KILN_VERSION_PATCH 0
#define KILN_MAX_DIMS 8

/* One X-macro list gives the enum and kiln_status_str(). */
#define KILN_STATUS_LIST(X)                                                   \
    X(KILN_OK, 0, "ok")                                                       \
    X(KILN_ERR_INVALID_ARG, -1, "invalid argument")                           \
    X(KILN_ERR_OUT_OF_MEMORY, -2, "out of memory")                            \
    X(KILN_ERR_IO, -3, "input/output error")                                  \
    X(KILN_ERR_PARSE, -4, "malformed model file")                             \
    X(KILN_ERR_UNSUPPORTED, -5, "unsupported")                                \
    X(KILN_ERR_SHAPE, -6, "shape mismatch")                                   \
    X(KILN_ERR_DTYPE, -7, "data type mismatch")                               \
    X(KILN_ERR_NOT_FOUND, -8, "not found")                                    \
    X(KILN_ERR_GRAPH, -9, "invalid graph")                                    \
    X(KILN_ERR_LIMIT, -10, "size limit exceeded")                             \
    X(KILN_ERR_BACKEND, -11, "backend failure")                               \
    X(KILN_ERR_INTERNAL, -12, "internal error")

typedef enum kiln_status {
#define KILN_STATUS_ENUM(name, value, text) name = value,
    KILN_STATUS_LIST(KILN_STATUS_ENUM)
#undef KILN_STATUS_ENUM
} kiln_status;

/* A short fixed text for a status code; never NULL. */
const char *kiln_status_str(kiln_status s);

/* Text of the last failure on this thread (calls without a handle). */
const char *kiln_last_error(void);

/* Element types, numbered as ONNX's TensorProto.DataType. */
typedef enum kiln_dtype {
    KILN_DT_UNDEFINED = 0,
    KILN_DT_FLOAT = 1,
    KILN_DT_UINT8 = 2,
    KILN_DT_INT8 = 3,
    KILN_DT_UINT16 = 4,
    KILN_DT_INT16 = 5,
    KILN_DT_INT32 = 6,
    KILN_DT_INT64 = 7,
    KILN_DT_STRING = 8,
    KILN_DT_BOOL = 9,
    KILN_DT_FLOAT16 = 10,
    KILN_DT_DOUBLE = 11,
    KILN_DT_UINT32 = 12,
    KILN_DT_UINT64 = 13,
    KILN_DT_COMPLEX64 = 14,
    KILN_DT_COMPLEX128 = 15,
    KILN_DT_BFLOAT16 = 16
} kiln_dtype;

/* Name ("float32", "int64", ...) and element size in bytes (0 if unsupported). */
const char *kiln_dtype_name(kiln_dtype dt);
size_t kiln_dtype_size(kiln_dtype dt);

/*
 * A tensor in host memory with concrete dims. Used for run-time inputs and
 * outputs of the reference backend and for test-data files. When the library
 * fills one (outputs, file readers), it owns `data` until
 * kiln_host_tensor_release(); when the caller fills one, the caller owns it.
 */
typedef struct kiln_host_tensor {
    char name[256];
    kiln_dtype dtype;
    int rank;
    int64_t dims[KILN_MAX_DIMS];
    void *data;
    size_t nbytes;
} kiln_host_tensor;

/* Frees data filled by the library and zeroes the struct. */
void kiln_host_tensor_release(kiln_host_tensor *t);
/* Number of elements (1 for rank 0, 0 when a dim is 0); -1 for a negative dim, a bad rank or overflow. */
int64_t kiln_host_tensor_numel(const kiln_host_tensor *t);

/* Reads an ONNX TensorProto (.pb) or a NumPy .npy file into `out`. */
kiln_status kiln_tensor_read_pb(const char *path, kiln_host_tensor *out);
kiln_status kiln_tensor_read_npy(const char *path, kiln_host_tensor *out);
/* Writes an .npy (format 1.0, C order, the tensor's dtype); no partial file on failure. */
kiln_status kiln_tensor_write_npy(const char *path, const kiln_host_tensor *t);

/* ---------------------------------------------------------------------------
 * Network definition: a graph in kiln's IR. The ONNX importer builds it through
 * these same calls; a C program can build one by hand.
 * ------------------------------------------------------------------------ */
typedef struct kiln_network kiln_network;

kiln_status kiln_network_create(kiln_network **out);
void kiln_network_free(kiln_network *net);
const char *kiln_network_last_error(const kiln_network *net);

/* Opset of the default ONNX domain that node semantics follow (default 21). */
kiln_status kiln_network_set_opset(kiln_network *net, int64_t opset);
int64_t kiln_network_opset(const kiln_network *net);

/*
 * A dimension given to add_input: >= 0 is fixed; KILN_DIM_SYMBOLIC means
 * "named by sym_names[i]" (e.g. "height"); the network keeps it symbolic.
 */
#define KILN_DIM_SYMBOLIC (-1)

kiln_status kiln_network_add_input(kiln_network *net, const char *name, kiln_dtype dt, int rank,
                                   const int64_t *dims, const char *const *sym_names);
/* Copies `data` (nbytes must equal numel * dtype size). */
kiln_status kiln_network_add_constant(kiln_network *net, const char *name, kiln_dtype dt, int rank,
                                      const int64_t *dims, const void *data, size_t nbytes);
kiln_status kiln_network_mark_output(kiln_network *net, const char *name);
/*
 * Marks every intermediate tensor as a graph output too (debugging: compare a
 * backend tensor by tensor, as Polygraphy's --mark-all). Added in node order
 * (topological when the graph is), after the existing outputs; skipped: graph
 * inputs, constants, outputs of Constant nodes, values computed from
 * constants only, and tensors whose inferred type is not floating point
 * (shape computations). *n_marked (may be NULL) gets the number added.
 */
kiln_status kiln_network_mark_all_outputs(kiln_network *net, int *n_marked);

/* Attribute value for kiln_network_add_node. */
typedef enum kiln_attr_type {
    KILN_ATTR_FLOAT = 1,
    KILN_ATTR_INT = 2,
    KILN_ATTR_STRING = 3,
    KILN_ATTR_TENSOR = 4,
    KILN_ATTR_FLOATS = 6,
    KILN_ATTR_INTS = 7,
    KILN_ATTR_STRINGS = 8
} kiln_attr_type;

typedef struct kiln_attr_value {
    const char *name;
    kiln_attr_type type;
    int64_t i;
    float f;
    const char *s;              /* STRING: bytes, s_len long (may hold NULs) */
    size_t s_len;
    const int64_t *ints;        /* INTS */
    const float *floats;        /* FLOATS */
    const char *const *strings; /* STRINGS */
    int64_t n;                  /* count for INTS/FLOATS/STRINGS */
    const kiln_host_tensor *t;  /* TENSOR */
} kiln_attr_value;

/*
 * Generic node: op_type in the default ONNX domain (domain NULL or "") or a
 * custom domain. Inputs/outputs are tensor names; an empty name "" marks an
 * omitted optional input. Attributes are copied. Fails with the node name and
 * reason when the op is unknown or an attribute is wrong.
 */
kiln_status kiln_network_add_node(kiln_network *net, const char *node_name, const char *op_type,
                                  const char *domain, int n_inputs, const char *const *inputs,
                                  int n_outputs, const char *const *outputs, int n_attrs,
                                  const kiln_attr_value *attrs);

/* Convenience builders for common layers; each adds one node. */
typedef enum kiln_activation {
    KILN_ACT_RELU,
    KILN_ACT_LEAKY_RELU, /* alpha */
    KILN_ACT_SIGMOID,
    KILN_ACT_TANH,
    KILN_ACT_PRELU       /* slope tensor name in kiln_network_add_prelu */
} kiln_activation;

kiln_status kiln_network_add_conv(kiln_network *net, const char *name, const char *input,
                                  const char *weight, const char *bias /* may be NULL */,
                                  int kh, int kw, int stride, int pad, int dilation, int groups,
                                  const char *output);
kiln_status kiln_network_add_activation(kiln_network *net, const char *name, const char *input,
                                        kiln_activation act, float alpha, const char *output);
kiln_status kiln_network_add_prelu(kiln_network *net, const char *name, const char *input,
                                   const char *slope, const char *output);
kiln_status kiln_network_add_elementwise(kiln_network *net, const char *name, const char *op_type,
                                         const char *a, const char *b, const char *output);
kiln_status kiln_network_add_concat(kiln_network *net, const char *name, int n,
                                    const char *const *inputs, int axis, const char *output);
kiln_status kiln_network_add_pixel_shuffle(kiln_network *net, const char *name,
                                           const char *input, int upscale, const char *output);
kiln_status kiln_network_add_resize_nearest(kiln_network *net, const char *name,
                                            const char *input, float scale, const char *output);

/* Inspection. */
int kiln_network_node_count(const kiln_network *net);
const char *kiln_network_node_name(const kiln_network *net, int i);
const char *kiln_network_node_op(const kiln_network *net, int i);
const char *kiln_network_node_domain(const kiln_network *net, int i);
int kiln_network_input_count(const kiln_network *net);
int kiln_network_output_count(const kiln_network *net);
const char *kiln_network_input_name(const kiln_network *net, int i);
const char *kiln_network_output_name(const kiln_network *net, int i);
/* Declared type and dims of graph input i; symbolic dims come back as KILN_DIM_SYMBOLIC. */
kiln_status kiln_network_input_shape(const kiln_network *net, int i, kiln_dtype *dt, int *rank,
                                     int64_t dims[KILN_MAX_DIMS]);
/*
 * Static shape inference (symbolic dims kept; shape computations on
 * constants folded). Fails with the node and reason on inconsistent shapes.
 */
kiln_status kiln_network_infer_shapes(kiln_network *net);
/*
 * Writes a readable description of tensor `name`'s type and shape
 * ("float32[1,3,height,width]") into buf. Shapes come from static inference.
 */
kiln_status kiln_network_describe_tensor(const kiln_network *net, const char *name, char *buf,
                                         size_t len);

/* ---------------------------------------------------------------------------
 * ONNX import.
 * ------------------------------------------------------------------------ */
typedef struct kiln_onnx_options {
    /* Largest model file accepted, bytes (0: default 4 GiB). */
    uint64_t max_file_bytes;
} kiln_onnx_options;

/*
 * Parses an ONNX model file (external data is read from beside it) into a new
 * network. On failure *out is NULL and kiln_last_error() names the problem.
 */
kiln_status kiln_onnx_parse(const char *path, const kiln_onnx_options *opts, kiln_network **out);

/* --- begin surgeon (issue 5): ONNX writer, sanitize, pass dumps -------------------------- */

/* Options of kiln_onnx_write; zero-initialise and set struct_size = sizeof(kiln_onnx_write_options). */
typedef struct kiln_onnx_write_options {
    size_t struct_size;
    /* 1: initializers of at least external_threshold bytes go to one data file beside the model
     * (TensorProto external data: location, offset, length). */
    int external_data;
    size_t external_threshold;   /* bytes; 0: 1024 */
    const char *external_file;   /* data file name, relative to the model's folder; NULL: "<model file>.data" */
} kiln_onnx_write_options;

/*
 * Writes the network as an ONNX model (opts may be NULL). Keeps what the importer
 * read: ir_version, opset imports of every domain (nodes of a domain with no import,
 * e.g. kiln's fused ops in domain "kiln", get version 1), producer, doc strings,
 * metadata_props, names, attributes, declared value_info and input/output shapes
 * with their symbolic dim names. The file is written atomically (a temporary file
 * beside it, fsync, rename): on failure no partial output is left behind.
 */
kiln_status kiln_onnx_write(const kiln_network *net, const char *path, const kiln_onnx_write_options *opts);

/* kiln surgeon sanitize: options (zero-initialise, struct_size = sizeof) and report. */
typedef struct kiln_sanitize_options {
    size_t struct_size;
    int fold_constants;      /* evaluate every subgraph whose leaves are constants on the CPU */
    int cleanup;             /* remove dead nodes, unused initializers and unused graph inputs */
    int toposort;            /* put nodes in topological order */
    int num_passes;          /* rounds of the above; 0: repeat until nothing changes */
    size_t fold_max_bytes;   /* largest folded constant; 0: 64 MiB */
} kiln_sanitize_options;

#define KILN_SANITIZE_MAX_OPS 64
typedef struct kiln_sanitize_report {
    int nodes_before, nodes_after;
    int rounds;                  /* rounds run */
    int folded_nodes;            /* nodes replaced by constants */
    int removed_nodes;           /* dead nodes removed by cleanup */
    int removed_tensors;         /* unused initializers and graph inputs removed by cleanup */
    int n_ops;                   /* folded nodes by op type */
    char op_type[KILN_SANITIZE_MAX_OPS][64];
    int op_count[KILN_SANITIZE_MAX_OPS];
} kiln_sanitize_report;

kiln_status kiln_network_sanitize(kiln_network *net, const kiln_sanitize_options *opts, kiln_sanitize_report *report);

/*
 * Runs kiln's graph passes (the ones kiln_build runs) on a copy of net and writes
 * the graph after pass `pass` (a pass name, or "all" for every pass) to
 * DIR/PASS.onnx. static_shapes: the input shapes are fixed (Shape/Size fold), as
 * kiln_build treats inputs whose profile is one shape; precision as the build's.
 * *n_written (may be NULL) gets the number of files written.
 */
kiln_status kiln_network_dump_passes(const kiln_network *net, const char *pass, const char *dir, int static_shapes,
                                     int precision /* kiln_precision */, int *n_written);
/* 1 when `name` is one of kiln's pass names (or "all"); else 0 and *list (may be NULL) gets them comma separated. */
int kiln_pass_name_valid(const char *name, const char **list);

/* --- end surgeon ------------------------------------------------------------------------- */

/* ---------------------------------------------------------------------------
 * Reference (CPU) backend: the oracle every fast path is checked against.
 * ------------------------------------------------------------------------ */

/*
 * Runs the network on host tensors. inputs[i] are matched to graph inputs by
 * name (or by position when name is empty). outputs must have room for
 * kiln_network_output_count() entries; each is filled and owned by the caller
 * afterwards (release with kiln_host_tensor_release).
 */
kiln_status kiln_reference_run(kiln_network *net, int n_inputs, const kiln_host_tensor *inputs,
                               int n_outputs, kiln_host_tensor *outputs);

/*
 * Capability report: writes to `buf` one line per op type the CPU backend can
 * not run ("OpType: N node(s): name1, name2, ..."), all of them at once.
 * Returns the number of unsupported nodes.
 */
int kiln_network_unsupported_report(const kiln_network *net, char *buf, size_t len);


/* ---------------------------------------------------------------------------
 * Engine builder (GPU). A build optimizes a network for one GPU: constant
 * folding, dead-node removal, BatchNormalization folded into Conv, bias and
 * activation fused into the conv, precision per layer, tactic timing, memory
 * planning. The result is an engine that can be saved, loaded and run.
 * ------------------------------------------------------------------------ */
typedef enum kiln_precision {
    KILN_PREC_FP32 = 0, /* strict float32: no TF32 */
    KILN_PREC_TF32 = 1, /* float32 storage, TF32 tensor-core math (default, as TensorRT) */
    KILN_PREC_FP16 = 2  /* float16 storage and math, fp32 accumulation; fp32 where range needs it */
} kiln_precision;

typedef struct kiln_builder_config kiln_builder_config;
typedef struct kiln_engine kiln_engine;
typedef struct kiln_context kiln_context;

kiln_status kiln_builder_config_create(kiln_builder_config **out);
void kiln_builder_config_free(kiln_builder_config *cfg);
kiln_status kiln_builder_config_set_precision(kiln_builder_config *cfg, kiln_precision p);
/* Pins one layer (ONNX node name) to a precision, like trtexec's --layerPrecisions. */
kiln_status kiln_builder_config_set_layer_precision(kiln_builder_config *cfg, const char *node,
                                                    kiln_precision p);
/* Shape range for a dynamic input; min <= opt <= max elementwise, same rank as the input. */
kiln_status kiln_builder_config_set_shape_range(kiln_builder_config *cfg, const char *input, int rank,
                                                const int64_t *min, const int64_t *opt,
                                                const int64_t *max);
/* Timing cache file: read before the build if it exists, written after. NULL: none. */
kiln_status kiln_builder_config_set_timing_cache(kiln_builder_config *cfg, const char *path);
/* Writes the graph after the named pass as ONNX-like text into dir (debugging). */
kiln_status kiln_builder_config_set_verbose(kiln_builder_config *cfg, int verbose);
const char *kiln_builder_config_last_error(const kiln_builder_config *cfg);

/* Builds an engine for GPU 0. The network is not modified. Warnings (nodes
 * that run on the CPU, precision fallbacks) go to the log callback if set. */
kiln_status kiln_build(const kiln_network *net, const kiln_builder_config *cfg, kiln_engine **out);
kiln_status kiln_engine_save(const kiln_engine *eng, const char *path);
/* Loads an engine file; a file built for another GPU, library version or a
 * damaged file fails naming the field and both values. */
kiln_status kiln_engine_load(const char *path, kiln_engine **out);
void kiln_engine_free(kiln_engine *eng);
/* Human-readable summary: header, layers, tactics, precisions, memory plan. */
kiln_status kiln_engine_describe(const kiln_engine *eng, char **text /* free() it */);
/* Warnings of the build that made this engine, one "[W] ..." line each: layers
 * that run on the CPU (no GPU kernel for their types or shapes) and layers of an
 * fp16 build kept in fp32 for range. "" when none, and for a loaded engine. */
const char *kiln_engine_build_log(const kiln_engine *eng);
int kiln_engine_io_count(const kiln_engine *eng);
const char *kiln_engine_io_name(const kiln_engine *eng, int i);
int kiln_engine_io_is_input(const kiln_engine *eng, int i);

/*
 * Execution context: per-run state (activation memory, shapes, CUDA graph).
 * Several contexts share one engine's weights. A context is used by one
 * thread at a time; distinct contexts may run concurrently on distinct streams.
 */
kiln_status kiln_context_create(kiln_engine *eng, kiln_context **out);
void kiln_context_free(kiln_context *ctx);
const char *kiln_context_last_error(const kiln_context *ctx);
kiln_status kiln_context_set_input_shape(kiln_context *ctx, const char *name, int rank,
                                         const int64_t *dims);
/* Output shape for the current input shapes. */
kiln_status kiln_context_get_shape(kiln_context *ctx, const char *name, int *rank, int64_t *dims);
/* Element type of a binding (graph inputs/outputs keep the model's dtype). */
kiln_dtype kiln_context_get_dtype(kiln_context *ctx, const char *name);
/* Device pointer for an input or output (no copies are made). */
kiln_status kiln_context_set_tensor_address(kiln_context *ctx, const char *name, void *device_ptr);
/* Enqueues one inference on a cudaStream_t (passed as void*); asynchronous.
 * Replays a captured CUDA graph while shapes and addresses stay the same. */
kiln_status kiln_context_enqueue(kiln_context *ctx, void *cuda_stream);
/* CUDA graph capture and replay of enqueue (on by default). Off: every enqueue
 * launches each layer (what trtexec's --noCudaGraph measures). */
kiln_status kiln_context_set_cuda_graph(kiln_context *ctx, int on);
/* Per-layer times of the last enqueue with profiling on (ms), by layer name. */
kiln_status kiln_context_set_profiling(kiln_context *ctx, int on);
int kiln_context_profile_count(const kiln_context *ctx);
kiln_status kiln_context_profile_get(const kiln_context *ctx, int i, const char **layer, double *ms);

/* Activation memory for the current input shapes (resolves them if needed): the arena the
 * planner placed every intermediate tensor in, and the lower bound (largest sum of tensors
 * alive at one time). Workspace is the scratch the chosen tactics need. */
kiln_status kiln_context_memory(kiln_context *ctx, size_t *arena_bytes, size_t *lower_bound_bytes,
                                size_t *workspace_bytes);

/* Describes an engine file without loading it on a GPU (header, layers, tactics, profiles). */
kiln_status kiln_engine_describe_file(const char *path, char **text /* free() it */);

/* 1 when the file starts like a kiln engine (so tools can tell engines from ONNX models). */
int kiln_engine_file_probe(const char *path);

/* 1 when a CUDA device can be used; otherwise 0 and the reason in *why. */
int kiln_cuda_available(const char **why);

/* ---------------------------------------------------------------------------
 * Device memory, streams and events: thin helpers so a program can feed an
 * execution context without including the CUDA runtime itself. Streams and
 * events are cudaStream_t / cudaEvent_t passed as void*; a NULL stream is the
 * default stream. Every call fails with KILN_ERR_UNSUPPORTED (reason in
 * kiln_last_error()) when kiln was built without CUDA or no GPU can be used.
 * The caller owns what it allocates or creates and frees it with the matching
 * call; the free/destroy calls accept NULL. Safe from any thread (they are
 * CUDA runtime calls on device 0).
 * ------------------------------------------------------------------------ */
kiln_status kiln_device_malloc(void **ptr, size_t bytes);
void kiln_device_free(void *ptr);
/* Page-locked host memory: copies from and to it run asynchronously at full speed. */
kiln_status kiln_host_malloc_pinned(void **ptr, size_t bytes);
void kiln_host_free_pinned(void *ptr);
/* Asynchronous copies on `stream` (synchronize before reading the destination). */
kiln_status kiln_memcpy_htod(void *dst_device, const void *src_host, size_t bytes, void *stream);
kiln_status kiln_memcpy_dtoh(void *dst_host, const void *src_device, size_t bytes, void *stream);
kiln_status kiln_stream_create(void **stream);
void kiln_stream_destroy(void *stream);
kiln_status kiln_stream_synchronize(void *stream);
/* Timing events: record on a stream; elapsed waits for `stop` and gives the ms between them. */
kiln_status kiln_event_create(void **event);
void kiln_event_destroy(void *event);
kiln_status kiln_event_record(void *event, void *stream);
kiln_status kiln_event_elapsed_ms(void *start, void *stop, float *ms);

/* ---- begin: plugins (issue 4; ABI and author's guide in kiln_plugin.h) ----
 * A process-wide registry of plugin classes: kiln's built-in ones (registered
 * at first use) plus those an application registers or loads. Thread-safe:
 * any thread may load, register and look up at any time. Registration is
 * permanent for the process (a loaded library is never unloaded).
 * A node whose op kiln does not know gets the plugin class named by its
 * op_type, `plugin_version` and `plugin_namespace` attributes (namespace
 * default: the node's ONNX domain, then ""), when the node is added to a
 * network: load plugins BEFORE parsing a model or loading an engine. */
struct kiln_plugin_class;
/* dlopen(path, RTLD_NOW | RTLD_LOCAL), call its kiln_plugin_entry and register
 * its classes (all or none). Failure text in kiln_last_error(). */
kiln_status kiln_plugin_load(const char *path);
/* Registers one class linked into the program (must stay valid forever). */
kiln_status kiln_plugin_register(const struct kiln_plugin_class *cls);
/* Registered classes, in registration order. */
int kiln_plugin_count(void);
kiln_status kiln_plugin_get(int i, const char **name, const char **version, const char **plugin_namespace);
/* ---- end: plugins ---- */

#ifdef __cplusplus
}
#endif
#endif
