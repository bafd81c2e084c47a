/*
 * kiln_plugin.h — the C plugin ABI of kiln (ABI version 1).
 *
 * This header is the whole contract between kiln and a plugin, and the plugin
 * author's manual. A plugin library includes ONLY this header (it needs no
 * kiln.h, no kiln symbols and no C++), is built as a shared library, and is
 * loaded at run time with `kiln ... --plugins=libfoo.so` or
 * kiln_plugin_load("libfoo.so"). kiln itself uses the same ABI for its
 * built-in plugins (e.g. DeformConv on the GPU).
 *
 * ===========================================================================
 * 1. The model: classes and instances (like TensorRT's IPluginV3 creator and
 *    plugin, without C++)
 * ===========================================================================
 * A *class* (kiln_plugin_class, a static const table of function pointers
 * the plugin fills) implements one custom op. Its identity is
 *     (name, version, plugin_namespace)
 * e.g. ("ScaledTanh", "1", "") or ("MMCVModulatedDeformConv2d", "1", "mmcv").
 * An *instance* (an opaque `void *` the plugin allocates) is one node of a
 * network: the class's `create` builds it from the node's ONNX attributes,
 * and everything the op needs later (attribute values, precomputed tables,
 * chosen tactic...) lives in it. There is no global state: two networks, two
 * threads, two engines never share an instance unless kiln says so below.
 *
 * How an ONNX node finds a class (done by kiln, like TensorRT's ONNX parser):
 *   - name      == the node's op_type;
 *   - version   == the node's string attribute `plugin_version`  (absent: any
 *                  version; the class registered first wins);
 *   - namespace == the node's string attribute `plugin_namespace` (absent: the
 *                  node's ONNX domain is tried first — e.g. "mmcv" for
 *                  mmcv::MMCVModulatedDeformConv2d — then "").
 *   `plugin_version` and `plugin_namespace` are consumed by kiln and NOT
 *   passed to `create`. The node's domain itself is not part of the match
 *   otherwise: a node of any domain may match a plugin by op_type.
 *   A node whose op kiln knows natively (e.g. ONNX DeformConv) keeps kiln's
 *   shape inference and CPU kernel; a class with that name then only provides
 *   the GPU implementation (enqueue), and kiln creates a short-lived instance
 *   from the node's attributes around each supports/workspace/enqueue call
 *   (so create must be cheap and host-only for such classes). For any other
 *   op the class provides everything.
 *
 * ===========================================================================
 * 2. The library entry point
 * ===========================================================================
 * A plugin library exports exactly one function (declare it with
 * KILN_PLUGIN_EXPORT so it stays visible under -fvisibility=hidden):
 *
 *   KILN_PLUGIN_EXPORT int kiln_plugin_entry(uint32_t host_abi_version,
 *                                            const kiln_plugin_class *const **classes,
 *                                            int *count, char *err, size_t err_len);
 *
 * kiln calls it once, right after dlopen (RTLD_NOW | RTLD_LOCAL), on the
 * thread that loads the library. host_abi_version is KILN_PLUGIN_ABI_VERSION
 * of the kiln that loads you. Return KILN_PLUGIN_OK and set *classes to a
 * static array of *count class pointers (1 <= count <= 256); the array and
 * the classes must stay valid until the process exits (kiln never dlcloses a
 * library whose classes it registered). Return an error code (and a message
 * in err, NUL-terminated, at most err_len bytes) to refuse, e.g. when
 * host_abi_version is older than the version you were written for.
 * Do no allocation, no CUDA calls and no printing in the entry point.
 *
 * kiln rejects (one error line, nothing registered from that library):
 *   a missing entry symbol; a non-zero return; count out of range; a NULL
 *   class; a class whose abi_version is 0 or newer than kiln's, whose
 *   struct_size is smaller than KILN_PLUGIN_CLASS_V1_SIZE, whose name is
 *   empty, that lacks a required callback (create, destroy,
 *   get_output_types, get_output_shapes, and at least one of execute and
 *   enqueue), or that has serialize without deserialize; a class whose
 *   (name, version, namespace) is already registered.
 *
 * ===========================================================================
 * 3. Versioning rules
 * ===========================================================================
 * Structs the plugin fills for kiln (kiln_plugin_class) and structs kiln
 * fills for the plugin with callbacks in them (kiln_plugin_host) begin with
 * `abi_version` and `struct_size` and are APPEND-ONLY: later ABI versions add
 * fields at the end only, and each side reads a field only when the other
 * side's struct_size covers it. Fill struct_size with sizeof(your struct).
 * The plain data structs (kiln_plugin_dim, _shape, _tensor, _attr, _format)
 * are frozen for ABI version 1 (they are passed in arrays, so their size is
 * part of the ABI); changing them would mean a new abi_version.
 *
 * ===========================================================================
 * 4. Threading
 * ===========================================================================
 * create, deserialize, clone, destroy and serialize are called on the thread
 * that builds, edits or loads the network/engine owning the node, never
 * concurrently for one instance. All other callbacks take a `const void *`
 * instance and may run concurrently from several threads and several
 * execution contexts on the SAME instance: they must not modify it (put
 * scratch data in the workspace, or on the stack). The host struct's
 * callbacks are thread-safe.
 *
 * ===========================================================================
 * 5. Errors
 * ===========================================================================
 * Callbacks return KILN_PLUGIN_OK (0) or a negative KILN_PLUGIN_ERR_* code and
 * write one line of text (no newline needed, NUL-terminated, truncated to
 * err_len) into `err`. kiln prefixes it with the node and the plugin name.
 * Never exit, abort or print: kiln's caller decides what to do. A plugin bug
 * that corrupts memory cannot be contained (a plugin runs in the process).
 *
 * ===========================================================================
 * 6. Shapes
 * ===========================================================================
 * get_output_shapes runs in two situations with the SAME code:
 *   (a) at build/analysis time, when dims may be symbolic (kiln_plugin_dim
 *       with sym >= 0) or unknown (sym == KILN_PLUGIN_SYM_UNKNOWN), and a
 *       rank may be unknown (-1);
 *   (b) at run time, when every dim is constant (sym == KILN_PLUGIN_SYM_CONST,
 *       value in `add`).
 * Compute output dims with the kiln_plugin_dim_* helpers below so symbolic
 * H/W propagate (e.g. out_h = div(add(h, 2*pad - k), stride) then add 1).
 * Never fail only because something is unknown: produce an unknown dim (or
 * rank -1). Do fail (KILN_PLUGIN_ERR_SHAPE) on inputs that are certainly
 * wrong (a constant dim that does not fit), so bad models stop at build time.
 * kiln checks the declared outputs: rank 0..8, no negative constant dim, and
 * at run time every dim constant; a plugin that declares anything else is
 * refused with an error naming it. The execute/enqueue callbacks get exactly
 * the shapes (b) produced, with buffers allocated for them.
 *
 * ===========================================================================
 * 7. Writing one, step by step (examples/plugins/scaled_tanh.c is complete)
 * ===========================================================================
 *   1. Pick the identity: name = the ONNX op_type your exporter writes.
 *   2. Write create (parse and validate attributes into a malloc'd struct),
 *      destroy, get_output_types, get_output_shapes (kiln_plugin_dim_*).
 *   3. Write execute (host, row-major) so `kiln run` and CI work without a
 *      GPU, and/or enqueue with supports_format (reuse your CUDA kernels:
 *      call an extern "C" launcher in a .cu file; index through strides).
 *   4. If the instance holds more than its attributes say (or you want the
 *      engine independent of attribute parsing), write serialize and
 *      deserialize (validate every byte on the way in).
 *   5. Export kiln_plugin_entry returning a static array of your classes.
 *   6. Build:  cc -shared -fPIC -fvisibility=hidden -I<kiln>/include foo.c -o libfoo.so
 *      with CUDA: compile the .cu with nvcc -Xcompiler=-fPIC, link
 *      cudart_static and -Wl,--exclude-libs,ALL (keeps your CUDA runtime
 *      copy private; kiln and the plugin share the device's primary context).
 *   7. Use:    kiln run|build|exec|compare --plugins=./libfoo.so model.onnx
 */
#ifndef KILN_PLUGIN_H
#define KILN_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_PLUGIN_ABI_VERSION 1u
#define KILN_PLUGIN_MAX_DIMS 8
#define KILN_PLUGIN_ENTRY_SYMBOL "kiln_plugin_entry"

#if defined(_WIN32)
#define KILN_PLUGIN_EXPORT __declspec(dllexport)
#else
#define KILN_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

/* Status codes (same values as kiln's kiln_status). */
#define KILN_PLUGIN_OK 0
#define KILN_PLUGIN_ERR_INVALID_ARG (-1)
#define KILN_PLUGIN_ERR_OUT_OF_MEMORY (-2)
#define KILN_PLUGIN_ERR_UNSUPPORTED (-5)
#define KILN_PLUGIN_ERR_SHAPE (-6)
#define KILN_PLUGIN_ERR_DTYPE (-7)
#define KILN_PLUGIN_ERR_BACKEND (-11) /* a CUDA call failed */
#define KILN_PLUGIN_ERR_INTERNAL (-12)
#define KILN_PLUGIN_ERR_ABI (-13) /* entry point: host ABI too old/new */

/* Element types: ONNX TensorProto.DataType numbers (as kiln_dtype). */
#define KILN_PLUGIN_DT_FLOAT 1
#define KILN_PLUGIN_DT_UINT8 2
#define KILN_PLUGIN_DT_INT8 3
#define KILN_PLUGIN_DT_INT32 6
#define KILN_PLUGIN_DT_INT64 7
#define KILN_PLUGIN_DT_BOOL 9 /* 1 byte, 0 or 1 */
#define KILN_PLUGIN_DT_FLOAT16 10 /* IEEE half, stored as 16 bits */
#define KILN_PLUGIN_DT_DOUBLE 11

/* Physical layouts. Row-major is ONNX order (NCHW for 4-D). NHWC applies to
 * rank-4 tensors only: dims stay logical [N,C,H,W], strides say C is
 * innermost. Tensors always carry explicit strides (in elements). */
#define KILN_PLUGIN_LAYOUT_ROW_MAJOR 0
#define KILN_PLUGIN_LAYOUT_NHWC 1

/* --------------------------------------------------------------------------
 * Dimensions: floor((mul * S + add) / div) of a symbol S, kiln's symbolic
 * form (the same as kiln's internal kiln_dim).
 *   sym == KILN_PLUGIN_SYM_CONST   (-1): constant, the value is `add`;
 *   sym == KILN_PLUGIN_SYM_UNKNOWN (-2): not known statically;
 *   sym >= 0: symbol number sym of the network (a named input dim such as
 *             "height"), div >= 1.
 * Use the helpers; they keep the form normalized (as kiln does) and give an
 * unknown dim when the result cannot be expressed.
 * ------------------------------------------------------------------------ */
#define KILN_PLUGIN_SYM_CONST (-1)
#define KILN_PLUGIN_SYM_UNKNOWN (-2)

typedef struct kiln_plugin_dim {
    int32_t sym;
    int32_t reserved; /* 0 */
    int64_t mul;
    int64_t add;
    int64_t div;
} kiln_plugin_dim;

typedef struct kiln_plugin_shape {
    int32_t rank; /* -1: not known */
    int32_t reserved;
    kiln_plugin_dim d[KILN_PLUGIN_MAX_DIMS];
} kiln_plugin_shape;

/* What get_output_shapes gets per input: dtype, (symbolic) shape, and for an
 * input whose contents are known at that point (a constant such as a weight
 * or a shape tensor) the row-major contents; else host_data is NULL. */
typedef struct kiln_plugin_shape_input {
    int32_t dtype; /* 0 when not known statically */
    int32_t present; /* 0: an omitted optional input (everything else zero) */
    kiln_plugin_shape shape;
    const void *host_data;
    size_t nbytes;
} kiln_plugin_shape_input;

static inline kiln_plugin_dim kiln_plugin_dim_const(int64_t v)
{
    kiln_plugin_dim d = {KILN_PLUGIN_SYM_CONST, 0, 0, v, 1};
    return d;
}
static inline kiln_plugin_dim kiln_plugin_dim_unknown(void)
{
    kiln_plugin_dim d = {KILN_PLUGIN_SYM_UNKNOWN, 0, 0, 0, 1};
    return d;
}
static inline int kiln_plugin_dim_is_const(kiln_plugin_dim d) { return d.sym == KILN_PLUGIN_SYM_CONST; }
static inline int64_t kiln_plugin__floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}
/* Keeps coefficients within +-2^48, as kiln does (absurd dims become unknown). */
static inline int kiln_plugin__big(int64_t v) { return v > ((int64_t)1 << 48) || v < -((int64_t)1 << 48); }
/* a*b within +-2^48, without overflowing on the way */
static inline int kiln_plugin__mul_ok(int64_t a, int64_t b, int64_t *r)
{
    if (kiln_plugin__big(a) || kiln_plugin__big(b)) return 0;
    int64_t ua = a < 0 ? -a : a, ub = b < 0 ? -b : b;
    if (ua != 0 && ub > ((int64_t)1 << 48) / ua) return 0;
    *r = a * b;
    return 1;
}
/* d + c */
static inline kiln_plugin_dim kiln_plugin_dim_add(kiln_plugin_dim d, int64_t c)
{
    int64_t cd;
    if (d.sym == KILN_PLUGIN_SYM_UNKNOWN) return d;
    if (kiln_plugin__big(c) || kiln_plugin__big(d.add)) return kiln_plugin_dim_unknown();
    if (d.sym == KILN_PLUGIN_SYM_CONST) return kiln_plugin__big(d.add + c) ? kiln_plugin_dim_unknown() : kiln_plugin_dim_const(d.add + c);
    /* floor(x/q) + c == floor((x + c*q)/q) */
    if (!kiln_plugin__mul_ok(c, d.div, &cd) || kiln_plugin__big(d.add + cd)) return kiln_plugin_dim_unknown();
    d.add += cd;
    return d;
}
/* d * c (c >= 0; exact only when d has div 1 or div divides mul and add) */
static inline kiln_plugin_dim kiln_plugin_dim_mul(kiln_plugin_dim d, int64_t c)
{
    int64_t rm, ra;
    if (d.sym == KILN_PLUGIN_SYM_UNKNOWN) return d;
    if (d.sym == KILN_PLUGIN_SYM_CONST) return kiln_plugin__mul_ok(d.add, c, &ra) ? kiln_plugin_dim_const(ra) : kiln_plugin_dim_unknown();
    if (c == 0) return kiln_plugin_dim_const(0);
    if (c < 0 || d.div < 1) return kiln_plugin_dim_unknown();
    if (d.div == 1 || (d.mul % d.div == 0 && d.add % d.div == 0)) {
        if (!kiln_plugin__mul_ok(d.mul / d.div, c, &rm) || !kiln_plugin__mul_ok(d.add / d.div, c, &ra)) return kiln_plugin_dim_unknown();
        d.mul = rm;
        d.add = ra;
        d.div = 1;
        return d;
    }
    return kiln_plugin_dim_unknown();
}
/* floor(d / c), c > 0 */
static inline kiln_plugin_dim kiln_plugin_dim_div(kiln_plugin_dim d, int64_t c)
{
    if (c <= 0 || kiln_plugin__big(c)) return kiln_plugin_dim_unknown();
    if (d.sym == KILN_PLUGIN_SYM_UNKNOWN) return d;
    if (d.sym == KILN_PLUGIN_SYM_CONST) return kiln_plugin_dim_const(kiln_plugin__floor_div(d.add, c));
    int64_t nd;
    if (d.div < 1 || !kiln_plugin__mul_ok(d.div, c, &nd)) return kiln_plugin_dim_unknown();
    d.div = nd;
    if (d.mul % d.div == 0) {
        d.mul /= d.div;
        d.add = kiln_plugin__floor_div(d.add, d.div);
        d.div = 1;
    }
    return d;
}
/* The value for a concrete symbol value s (or the constant). */
static inline int64_t kiln_plugin_dim_eval(kiln_plugin_dim d, int64_t s)
{
    return d.sym == KILN_PLUGIN_SYM_CONST ? d.add : kiln_plugin__floor_div(d.mul * s + d.add, d.div < 1 ? 1 : d.div);
}

/* --------------------------------------------------------------------------
 * Attributes: the node's ONNX attributes (minus plugin_version and
 * plugin_namespace), with ONNX AttributeProto type numbers. Pointers are
 * valid only during the `create` call: copy what you keep.
 * ------------------------------------------------------------------------ */
#define KILN_PLUGIN_ATTR_FLOAT 1
#define KILN_PLUGIN_ATTR_INT 2
#define KILN_PLUGIN_ATTR_STRING 3
#define KILN_PLUGIN_ATTR_TENSOR 4
#define KILN_PLUGIN_ATTR_FLOATS 6
#define KILN_PLUGIN_ATTR_INTS 7
#define KILN_PLUGIN_ATTR_STRINGS 8

typedef struct kiln_plugin_attr {
    const char *name;
    int32_t type;          /* KILN_PLUGIN_ATTR_* */
    int32_t reserved;
    int64_t i;             /* INT */
    float f;               /* FLOAT */
    const char *s;         /* STRING: s_len bytes (NUL-terminated too, may contain NULs) */
    size_t s_len;
    int64_t n;             /* INTS / FLOATS / STRINGS: element count */
    const int64_t *ints;
    const float *floats;
    const char *const *strings;
    /* TENSOR (a constant attribute tensor, row-major host data): */
    int32_t t_dtype;
    int32_t t_rank;
    int64_t t_dims[KILN_PLUGIN_MAX_DIMS];
    const void *t_data;
    size_t t_nbytes;
} kiln_plugin_attr;

/* --------------------------------------------------------------------------
 * Concrete tensors, given to execute / enqueue / workspace_size /
 * tactic_count. dims are logical (ONNX order); strides are in ELEMENTS and
 * describe the physical layout (row-major or NHWC); always index through
 * them unless your supports_format only accepts one layout. `data` is host
 * memory for execute, device memory for enqueue, and NULL when kiln asks
 * for sizes only (workspace_size/tactic_count at planning time) or for an
 * omitted optional input (then present == 0).
 * ------------------------------------------------------------------------ */
typedef struct kiln_plugin_tensor {
    void *data;
    int32_t dtype;
    int32_t rank;
    int64_t dims[KILN_PLUGIN_MAX_DIMS];
    int64_t strides[KILN_PLUGIN_MAX_DIMS];
    int32_t layout;  /* KILN_PLUGIN_LAYOUT_*: a summary of strides */
    int32_t present; /* 0: omitted optional input */
} kiln_plugin_tensor;

/* One position's type and layout, for supports_format. */
typedef struct kiln_plugin_format {
    int32_t dtype;
    int32_t layout;
} kiln_plugin_format;

/* --------------------------------------------------------------------------
 * What kiln gives a plugin instance: an opaque context plus services. Filled
 * by kiln, passed to create/deserialize/clone; an instance may keep the
 * pointer (valid for the process lifetime). All callbacks are optional to
 * the plugin (it may ignore the struct) and thread-safe.
 * ------------------------------------------------------------------------ */
#define KILN_PLUGIN_LOG_ERROR 0
#define KILN_PLUGIN_LOG_WARNING 1
#define KILN_PLUGIN_LOG_INFO 2

typedef struct kiln_plugin_host {
    uint32_t abi_version; /* KILN_PLUGIN_ABI_VERSION of kiln */
    uint32_t struct_size; /* sizeof(kiln_plugin_host) as kiln was built */
    void *ctx;            /* pass back to the callbacks below */
    /* Host memory (malloc-like; NULL on failure; free accepts NULL). */
    void *(*alloc)(void *ctx, size_t bytes);
    void (*free)(void *ctx, void *p);
    /* A diagnostic line; kiln shows it when verbose. */
    void (*log)(void *ctx, int level, const char *msg);
    /* 1 when kiln was built with its CUDA backend (a GPU may still be absent). */
    int cuda_available;
} kiln_plugin_host;

/* --------------------------------------------------------------------------
 * The class: a static vtable the plugin fills. Required callbacks are marked
 * REQUIRED; every other one may be NULL (the default is said for each).
 * In each callback `inst` is the instance from create/deserialize/clone,
 * n_in / n_out are the node's input/output counts (omitted optional inputs
 * included, as `present == 0` entries), and err/err_len a message buffer.
 * ------------------------------------------------------------------------ */
typedef struct kiln_plugin_class {
    uint32_t abi_version; /* KILN_PLUGIN_ABI_VERSION you compiled against */
    uint32_t struct_size; /* sizeof(kiln_plugin_class) */

    /* Identity. name = the ONNX op_type; version (NULL = "1"); plugin_namespace (NULL = ""). */
    const char *name;
    const char *version;
    const char *plugin_namespace;

    /* Node arity accepted (kiln refuses other nodes at import with a clear
     * error). max_* = -1: no upper bound. */
    int32_t min_inputs, max_inputs;
    int32_t min_outputs, max_outputs;

    /* REQUIRED. Builds an instance for one node from its attributes; called
     * when the node is added to a network (ONNX import, network API) and when
     * a network is copied if clone is NULL. Validate attributes here and
     * fail with KILN_PLUGIN_ERR_INVALID_ARG naming the bad one. */
    int (*create)(const kiln_plugin_host *host, const kiln_plugin_attr *attrs, int n_attrs, void **inst, char *err,
                  size_t err_len);
    /* REQUIRED. Frees an instance (never NULL). */
    void (*destroy)(void *inst);
    /* Optional. A copy of an instance (kiln copies networks when optimizing
     * and loading engines). NULL: kiln calls create again with the node's
     * attributes, or deserialize with serialized state when serialize is set. */
    int (*clone)(const kiln_plugin_host *host, const void *inst, void **out, char *err, size_t err_len);

    /* REQUIRED. out_dtypes[j] for each output from the input dtypes
     * (in_dtypes[i] == 0: omitted optional input, or not known yet). */
    int (*get_output_types)(const void *inst, const int32_t *in_dtypes, int n_in, int32_t *out_dtypes, int n_out, char *err,
                            size_t err_len);
    /* REQUIRED. out[j] for each output from the inputs' shapes (section 6).
     * out[] is zeroed by kiln before the call. */
    int (*get_output_shapes)(const void *inst, const kiln_plugin_shape_input *in, int n_in, kiln_plugin_shape *out, int n_out,
                             char *err, size_t err_len);

    /* Optional (GPU). Like TensorRT's supportsFormatCombination: whether the
     * type/layout at position `pos` (inputs 0..n_in-1, then outputs) is
     * supported given the formats of positions < pos (formats[] holds all
     * n_in + n_out entries; those >= pos are kiln's tentative choice). Return
     * 1 yes, 0 no. kiln only asks about FLOAT and FLOAT16 activations in
     * ROW_MAJOR or NHWC; integer inputs come row-major in their own type.
     * NULL: FLOAT row-major only.
     * What kiln does today: the engine's precision picks FLOAT or FLOAT16 for
     * every float position of the node. The node runs on the GPU when the
     * plugin accepts the all-FLOAT and the all-FLOAT16 row-major combinations
     * (and has enqueue); otherwise it runs on the CPU through execute (with
     * copies), or the build fails if there is none. Tensors come ROW_MAJOR,
     * except in NHWC engines (fp16 builds): when the plugin accepts NHWC at
     * every rank-4 float position (asked with those positions NHWC, the rest
     * row-major), those positions come NHWC, so no reformats surround it. */
    int (*supports_format)(const void *inst, int pos, const kiln_plugin_format *formats, int n_in, int n_out);

    /* Optional (GPU). Number of alternative implementations ("tactics") the
     * builder may time at the optimization shapes; the fastest index is
     * stored in the engine and passed to enqueue. NULL or <= 1: one (0). */
    int (*tactic_count)(const void *inst, const kiln_plugin_tensor *in, int n_in, const kiln_plugin_tensor *out, int n_out);
    /* Optional (GPU). Device scratch bytes enqueue needs for these concrete
     * shapes and tactic (data pointers may be NULL). NULL: 0. */
    size_t (*workspace_size)(const void *inst, const kiln_plugin_tensor *in, int n_in, const kiln_plugin_tensor *out,
                             int n_out, int tactic);
    /* Optional (GPU; this or execute is REQUIRED). Enqueues the computation
     * (in[i].present == 0 for an omitted optional input; constant inputs such
     * as weights come as device tensors in the node's float type, like the
     * activations)
     * on `stream` (a cudaStream_t): device pointers in/out, formats as
     * accepted by supports_format, `workspace` (ws_bytes, 256-byte aligned,
     * uninitialized) valid until the work completes. Do not synchronize, do
     * not allocate, do not call cudaDeviceSynchronize; kiln may capture the
     * stream into a CUDA graph. Return KILN_PLUGIN_ERR_BACKEND with the
     * cudaGetErrorString text when a launch fails. */
    int (*enqueue)(const void *inst, const kiln_plugin_tensor *in, int n_in, const kiln_plugin_tensor *out, int n_out,
                   void *workspace, size_t ws_bytes, int tactic, void *stream, char *err, size_t err_len);
    /* Optional (CPU; this or enqueue is REQUIRED). Computes on host memory:
     * every tensor row-major and contiguous, floats as FLOAT (FLOAT16 only
     * when the model's tensors are FLOAT16), outputs zeroed beforehand. Used
     * by kiln's CPU reference backend (`kiln run`), by the GPU runtime for a
     * node the GPU cannot take, and by CI without a GPU. */
    int (*execute)(const void *inst, const kiln_plugin_tensor *in, int n_in, const kiln_plugin_tensor *out, int n_out,
                   char *err, size_t err_len);

    /* Optional. The instance state stored in an engine file: called with
     * buf == NULL to get *size, then with a buffer of that size. NULL: the
     * engine keeps the node's attributes and calls create on load. */
    int (*serialize)(const void *inst, void *buf, size_t cap, size_t *size, char *err, size_t err_len);
    /* Optional (REQUIRED with serialize). An instance from serialize's bytes
     * (engine load). The bytes may be damaged: validate them (sizes, ranges)
     * and fail with KILN_PLUGIN_ERR_INVALID_ARG rather than trust them. */
    int (*deserialize)(const kiln_plugin_host *host, const void *data, size_t size, void **inst, char *err, size_t err_len);
    /* ---- ABI version 1 ends here; later versions append below. ---- */
} kiln_plugin_class;

/* The smallest struct_size kiln accepts for an ABI-1 class. */
#define KILN_PLUGIN_CLASS_V1_SIZE (offsetof(kiln_plugin_class, deserialize) + sizeof(void (*)(void)))

/* The entry point every plugin library exports (section 2). */
typedef int (*kiln_plugin_entry_fn)(uint32_t host_abi_version, const kiln_plugin_class *const **classes, int *count,
                                    char *err, size_t err_len);

/* Helper for plugins: row-major strides for dims (elements). */
static inline void kiln_plugin_row_major_strides(int rank, const int64_t *dims, int64_t *strides)
{
    int64_t s = 1;
    for (int i = rank - 1; i >= 0; i--) {
        strides[i] = s;
        s *= dims[i];
    }
}

#ifdef __cplusplus
}
#endif

#endif
