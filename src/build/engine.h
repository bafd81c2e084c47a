/*
 * Internal shape of a built engine: the optimized network plus, per node, the
 * builder's decisions (GPU or CPU, compute precision, tactic) and the device
 * state prepared from its weights. Shared by the builder, the engine file and
 * the runtime.
 */
#ifndef KILN_ENGINE_H
#define KILN_ENGINE_H

#include "../cuda/gpu.h"

/* 2: plugin records per node (issue 4); 3: weights in run-time form (issue 3), word-wise checksum */
#define KILN_ENGINE_FORMAT_VERSION 3

/* kiln_layer_plan.on_gpu bits (0: the layer runs on the CPU) */
#define KILN_PLAN_GPU 1
#define KILN_PLAN_STRICT_FP32 2 /* fp32 math without TF32 (fp16_keep.c's accuracy rules) */

typedef struct kiln_layer_plan {
    int32_t on_gpu;      /* KILN_PLAN_* bits; 0: runs on the CPU (host) */
    int32_t compute;     /* kiln_dtype of float math: FLOAT or FLOAT16 */
    int32_t tactic;      /* index into the op's tactics, chosen by timing */
    float tactic_ms;     /* its measured time at the opt shapes, 0 if not timed */
} kiln_layer_plan;

typedef struct kiln_shape_profile {
    char name[256];
    int rank;
    int64_t min[KILN_MAX_DIMS], opt[KILN_MAX_DIMS], max[KILN_MAX_DIMS];
} kiln_shape_profile;

typedef struct kiln_engine_header {
    uint32_t format_version;
    char kiln_version[32];
    char gpu_name[256];
    int32_t cc_major, cc_minor;
    int32_t cuda_runtime;
    int32_t cudnn;
    int32_t cublas;
    int32_t precision; /* kiln_precision */
    int32_t layout;    /* kiln_layout of 4-D float activations */
    uint64_t options_hash;
} kiln_engine_header;

/* --- weights in run-time form (engine file v3) ---------------------------------------------
 * Every constant a GPU op reads is converted ONCE, by the builder, into the form the op reads
 * (dtype, layout, transform) and kept in one blob: the engine file stores the blob, loading
 * uploads it as it is (one allocation, one copy) and every context of the engine reads the same
 * device copy. A constant whose every reader is a GPU op with prepare_packed keeps no original
 * (fp32, ONNX layout) copy; the others (CPU-fallback layers, host-evaluated shapes, ops reading
 * host values) keep it too. */
enum { KILN_WFORM_COPY = 0, KILN_WFORM_ONE_MINUS = 1 /* 1 - x: FusedConv's PRelu complement */ };
#define KILN_WBLOB_ALIGN 256

typedef struct kiln_wform {
    int32_t tensor;    /* constant tensor index */
    int32_t dtype;     /* kiln_dtype as the op reads it */
    int32_t layout;    /* kiln_layout: strides over the tensor's own dims (NHWC only for 4-D) */
    int32_t transform; /* KILN_WFORM_* */
    uint64_t offset;   /* in the blob, KILN_WBLOB_ALIGN-aligned */
    uint64_t nbytes;
} kiln_wform;

typedef struct kiln_weights {
    kiln_wform *forms;
    int n_forms;
    const uint8_t *blob; /* bytes of every form, exactly as uploaded */
    uint64_t bytes;
    void *mem;           /* allocation holding blob (free()) */
    bool *no_host;       /* n_tensors entries, or NULL: constant kept only in run-time form */
} kiln_weights;

void kiln__weights_free(kiln_weights *w);

/* The run-time form a GPU op reads constant input j of node i in (dtype, layout). */
void kiln__wform_want(const kiln_engine *eng, int node, int j, kiln_dtype *dt, kiln_layout *layout);
/* Index of the form (tensor, dt, layout, transform), or -1. */
int kiln__wform_find(const kiln_engine *eng, int tensor, kiln_dtype dt, kiln_layout layout, int transform);
/* The device view of form k: dims of the tensor, strides of its layout, ptr into the shared copy. */
void kiln__wform_view(const kiln_engine *eng, int k, kiln_cuda_tensor *t);
/* Builder: converts every constant GPU ops read into run-time form (eng->w), on the host, and
 * frees the originals no one else reads. Needs plan[] final. */
kiln_status kiln__weights_pack(kiln_engine *eng, kiln_err *err);
/* --- end weights in run-time form --- */

struct kiln_engine {
    kiln_engine_header hdr;
    kiln_network *net;        /* optimized graph; constants in host memory (original form, when kept) */
    kiln_layer_plan *plan;    /* net->n_nodes entries, by node index */
    void **state;             /* net->n_nodes entries: op->prepare / prepare_packed results */
    kiln_weights w;           /* constants in run-time form (host bytes) */
    void *w_dev;              /* their device copy (w.bytes), shared by every context */
    kiln_shape_profile *profiles;
    int n_profiles;
    int *order;               /* topological order of nodes */
    kiln_gpu_info gpu;
    char *build_log;          /* build warnings ("[W] ..." lines), NULL when none or loaded */
    char last_error[1024];
};

/* fp16 builds: whether a layer keeps fp32 for range (precision.c); why says which rule. */
bool kiln__fp16_needs_fp32(const kiln_node *nd, const kiln_value *const *in, const kiln_value *out, char *why, size_t n);
/* fp16 builds: layers that keep fp32 for accuracy (long residual chains, the image skip), marked
 * in keep[net->n_nodes] on the network before the passes (fp16_keep.c); -1 when out of memory. */
int kiln__fp16_keep_fp32(const kiln_network *net, bool *keep, int *n_chain, int *n_skip, int *n_first);

/* fp16 form of conv weights: groups of `taps` values each rounded to fp16 neighbours so that
 * each group's sum stays within one ulp (fp16_round.c); dst gets the fp16 values as floats. */
void kiln__f16_round_groups(const float *src, float *dst, int64_t groups, int64_t taps);

/* Engine file: header + network + plans + profiles + weights in run-time form, checksummed.
 * Pure C (no GPU needed). w may be NULL (no run-time forms: every constant in original form). */
kiln_status kiln__engine_file_write_w(const char *path, const kiln_engine_header *h, const kiln_network *net,
                                      const kiln_layer_plan *plan, const kiln_shape_profile *prof, int n_prof,
                                      const kiln_weights *w, kiln_err *err);
/* Reads and validates structure and checksum; does not compare with the current GPU. w may be
 * NULL (the run-time forms are then dropped). A constant kept only in run-time form comes back
 * with its dtype and shape and no data (w->no_host says which). */
kiln_status kiln__engine_file_read_w(const char *path, kiln_engine_header *h, kiln_network **net,
                                     kiln_layer_plan **plan, kiln_shape_profile **prof, int *n_prof,
                                     kiln_weights *w, kiln_err *err);
/* Recomputes the checksum of an engine file image in memory (b, n bytes) after a test patched
 * it on purpose; no-op when the image is too short or its header length is out of range. */
void kiln__engine_file_reseal(uint8_t *b, size_t n);
/* The same without run-time forms (tests and tools that need only the graph). */
kiln_status kiln__engine_file_write(const char *path, const kiln_engine_header *h, const kiln_network *net,
                                    const kiln_layer_plan *plan, const kiln_shape_profile *prof, int n_prof,
                                    kiln_err *err);
kiln_status kiln__engine_file_read(const char *path, kiln_engine_header *h, kiln_network **net,
                                   kiln_layer_plan **plan, kiln_shape_profile **prof, int *n_prof,
                                   kiln_err *err);

/* Device state of every GPU node and device copies of constants GPU ops read (engine.c). */
kiln_status kiln__engine_prepare(kiln_engine *eng, kiln_err *err);

/* Memory planner: tensors with sizes and lifetimes [first, last] (step indices)
 * placed best-fit in one arena; offsets aligned to 256 bytes. */
typedef struct kiln_mem_request {
    size_t bytes;
    int first, last;
    size_t offset; /* out */
} kiln_mem_request;
/* Returns the arena size; *lower_bound gets the largest sum of sizes alive at one step. */
size_t kiln__plan_memory(kiln_mem_request *req, int n, size_t *lower_bound);

#endif
