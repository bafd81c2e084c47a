/*
 * The seam between plain-C layers (builder, runtime) and the GPU. Implemented
 * by the files of src/cuda when kiln is built with CUDA, and by src/no_cuda/no_cuda.c
 * (every call fails with KILN_ERR_UNSUPPORTED and says why) when it is not.
 */
#ifndef KILN_GPU_H
#define KILN_GPU_H

#include "cuda_backend.h"

typedef struct kiln_gpu_info {
    char name[256];
    int cc_major, cc_minor;
    int sm_count;
    size_t total_mem;
    int cuda_runtime_version; /* e.g. 13000 */
    int cudnn_version;        /* e.g. 91400 */
    int cublas_version;
} kiln_gpu_info;

/* Initializes device 0 once; fills info. Fails with the reason when no GPU can be used. */
kiln_status kiln__gpu_init(kiln_gpu_info *info, kiln_err *err);

kiln_status kiln__gpu_malloc(void **ptr, size_t bytes, kiln_err *err);
void kiln__gpu_free(void *ptr);
kiln_status kiln__gpu_memcpy_h2d(void *dst, const void *src, size_t bytes, void *stream, kiln_err *err);
kiln_status kiln__gpu_memcpy_d2h(void *dst, const void *src, size_t bytes, void *stream, kiln_err *err);
kiln_status kiln__gpu_memcpy_d2d(void *dst, const void *src, size_t bytes, void *stream, kiln_err *err);
kiln_status kiln__gpu_memset(void *dst, int value, size_t bytes, void *stream, kiln_err *err);
kiln_status kiln__gpu_sync(void *stream, kiln_err *err);
kiln_status kiln__gpu_malloc_host(void **ptr, size_t bytes, kiln_err *err);
void kiln__gpu_free_host(void *ptr);

kiln_status kiln__gpu_stream_create(void **stream, kiln_err *err);
void kiln__gpu_stream_destroy(void *stream);

/* Events for timing (CUDA events; ms between two recorded events). */
kiln_status kiln__gpu_event_create(void **ev, kiln_err *err);
void kiln__gpu_event_destroy(void *ev);
kiln_status kiln__gpu_event_record(void *ev, void *stream, kiln_err *err);
kiln_status kiln__gpu_event_elapsed(void *start, void *stop, float *ms, kiln_err *err);

/* Library handles, bound to a stream. */
kiln_status kiln__gpu_exec_create(kiln_cuda_exec *ex, void *stream, kiln_err *err);
void kiln__gpu_exec_destroy(kiln_cuda_exec *ex);
kiln_status kiln__gpu_exec_set_stream(kiln_cuda_exec *ex, void *stream, kiln_err *err);

/* CUDA graph capture of everything enqueued on stream between begin and end. */
kiln_status kiln__gpu_graph_begin(void *stream, kiln_err *err);
kiln_status kiln__gpu_graph_end(void *stream, void **graph_exec, kiln_err *err);
kiln_status kiln__gpu_graph_launch(void *graph_exec, void *stream, kiln_err *err);
void kiln__gpu_graph_destroy(void *graph_exec);

/* Converts between float32 and float16 on the device (n elements). */
kiln_status kiln__gpu_convert(void *dst, kiln_dtype dst_dt, const void *src, kiln_dtype src_dt, int64_t n,
                              void *stream, kiln_err *err);

#endif
