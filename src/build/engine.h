/*
 * Internal shape of a built engine: the optimized network plus, per node, the
 * builder's decisions (GPU or CPU, compute precision, tactic) and the device
 * state prepared from its weights. Shared by the builder, the engine file and
 * the runtime.
 */
#ifndef KILN_ENGINE_H
#define KILN_ENGINE_H

#include "../cuda/gpu.h"

#define KILN_ENGINE_FORMAT_VERSION 2 /* 2: plugin records per node (issue 4) */

typedef struct kiln_layer_plan {
    int32_t on_gpu;      /* 1: runs on the GPU; 0: on the CPU (host) */
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

struct kiln_engine {
    kiln_engine_header hdr;
    kiln_network *net;        /* optimized graph; constants in host memory */
    kiln_layer_plan *plan;    /* net->n_nodes entries, by node index */
    void **state;             /* net->n_nodes entries: op->prepare results */
    void **const_dev;         /* net->n_tensors entries: device copies of constants GPU ops read */
    kiln_dtype *const_dev_dt; /* dtype of each device copy */
    kiln_shape_profile *profiles;
    int n_profiles;
    int *order;               /* topological order of nodes */
    kiln_gpu_info gpu;
    char *build_log;          /* build warnings ("[W] ..." lines), NULL when none or loaded */
    char last_error[1024];
};

/* fp16 builds: whether a layer keeps fp32 for range (precision.c); why says which rule. */
bool kiln__fp16_needs_fp32(const kiln_node *nd, const kiln_value *const *in, const kiln_value *out, char *why, size_t n);

/* Engine file: header + network + plans + profiles, checksummed. Pure C (no GPU needed). */
kiln_status kiln__engine_file_write(const char *path, const kiln_engine_header *h, const kiln_network *net,
                                    const kiln_layer_plan *plan, const kiln_shape_profile *prof, int n_prof,
                                    kiln_err *err);
/* Reads and validates structure and checksum; does not compare with the current GPU. */
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
