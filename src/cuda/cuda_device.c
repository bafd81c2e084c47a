/* The GPU seam (gpu.h) over the CUDA runtime, cuDNN and cuBLASLt. */
#include "gpu.h"
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stdio.h>
#include <string.h>

kiln_status kiln__cuda_check(int rc, const kiln_node *node, const char *what, kiln_err *err)
{
    if (rc == cudaSuccess) return KILN_OK;
    cudaError_t e = (cudaError_t)rc;
    kiln_status s = e == cudaErrorMemoryAllocation ? KILN_ERR_OUT_OF_MEMORY : KILN_ERR_BACKEND;
    if (node)
        return kiln__fail(err, s, "node '%s' (%s): %s: CUDA error %d (%s)", node->name, node->op_type, what, rc, cudaGetErrorString(e));
    return kiln__fail(err, s, "%s: CUDA error %d (%s)", what, rc, cudaGetErrorString(e));
}

#define CK(call, what)                                                  \
    do {                                                                \
        cudaError_t rc_ = (call);                                       \
        if (rc_ != cudaSuccess) return kiln__cuda_check(rc_, NULL, what, err); \
    } while (0)

kiln_status kiln__gpu_init(kiln_gpu_info *info, kiln_err *err)
{
    int n = 0;
    cudaError_t rc = cudaGetDeviceCount(&n);
    if (rc != cudaSuccess || n == 0) {
        cudaGetLastError();
        return kiln__fail(err, KILN_ERR_UNSUPPORTED, "no CUDA device: %s",
                          rc != cudaSuccess ? cudaGetErrorString(rc) : "none found");
    }
    CK(cudaSetDevice(0), "cudaSetDevice");
    struct cudaDeviceProp p;
    CK(cudaGetDeviceProperties(&p, 0), "cudaGetDeviceProperties");
    if (info) {
        memset(info, 0, sizeof *info);
        snprintf(info->name, sizeof info->name, "%s", p.name);
        info->cc_major = p.major;
        info->cc_minor = p.minor;
        info->sm_count = p.multiProcessorCount;
        info->total_mem = p.totalGlobalMem;
        cudaRuntimeGetVersion(&info->cuda_runtime_version);
        info->cudnn_version = (int)cudnnGetVersion();
        info->cublas_version = (int)cublasLtGetVersion();
    }
    return KILN_OK;
}

kiln_status kiln__gpu_malloc(void **ptr, size_t bytes, kiln_err *err)
{
    *ptr = NULL;
    cudaError_t rc = cudaMalloc(ptr, bytes ? bytes : 1);
    if (rc != cudaSuccess) {
        cudaGetLastError();
        *ptr = NULL;
        return kiln__fail(err, rc == cudaErrorMemoryAllocation ? KILN_ERR_OUT_OF_MEMORY : KILN_ERR_BACKEND,
                          "cannot allocate %zu bytes of device memory: %s", bytes, cudaGetErrorString(rc));
    }
    return KILN_OK;
}

void kiln__gpu_free(void *ptr)
{
    if (ptr) cudaFree(ptr);
}

kiln_status kiln__gpu_malloc_host(void **ptr, size_t bytes, kiln_err *err)
{
    CK(cudaMallocHost(ptr, bytes ? bytes : 1), "cudaMallocHost");
    return KILN_OK;
}

void kiln__gpu_free_host(void *ptr)
{
    if (ptr) cudaFreeHost(ptr);
}

kiln_status kiln__gpu_memcpy_h2d(void *dst, const void *src, size_t bytes, void *stream, kiln_err *err)
{
    if (!bytes) return KILN_OK;
    CK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, (cudaStream_t)stream), "copy to device");
    return KILN_OK;
}

kiln_status kiln__gpu_memcpy_d2h(void *dst, const void *src, size_t bytes, void *stream, kiln_err *err)
{
    if (!bytes) return KILN_OK;
    CK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, (cudaStream_t)stream), "copy to host");
    return KILN_OK;
}

kiln_status kiln__gpu_memcpy_d2d(void *dst, const void *src, size_t bytes, void *stream, kiln_err *err)
{
    if (!bytes) return KILN_OK;
    CK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, (cudaStream_t)stream), "device copy");
    return KILN_OK;
}

kiln_status kiln__gpu_memset(void *dst, int value, size_t bytes, void *stream, kiln_err *err)
{
    if (!bytes) return KILN_OK;
    CK(cudaMemsetAsync(dst, value, bytes, (cudaStream_t)stream), "device memset");
    return KILN_OK;
}

kiln_status kiln__gpu_sync(void *stream, kiln_err *err)
{
    CK(cudaStreamSynchronize((cudaStream_t)stream), "stream synchronize");
    return KILN_OK;
}

kiln_status kiln__gpu_stream_create(void **stream, kiln_err *err)
{
    CK(cudaStreamCreateWithFlags((cudaStream_t *)stream, cudaStreamNonBlocking), "cudaStreamCreate");
    return KILN_OK;
}

void kiln__gpu_stream_destroy(void *stream)
{
    if (stream) cudaStreamDestroy((cudaStream_t)stream);
}

kiln_status kiln__gpu_event_create(void **ev, kiln_err *err)
{
    CK(cudaEventCreate((cudaEvent_t *)ev), "cudaEventCreate");
    return KILN_OK;
}

void kiln__gpu_event_destroy(void *ev)
{
    if (ev) cudaEventDestroy((cudaEvent_t)ev);
}

kiln_status kiln__gpu_event_record(void *ev, void *stream, kiln_err *err)
{
    CK(cudaEventRecord((cudaEvent_t)ev, (cudaStream_t)stream), "cudaEventRecord");
    return KILN_OK;
}

kiln_status kiln__gpu_event_elapsed(void *start, void *stop, float *ms, kiln_err *err)
{
    CK(cudaEventSynchronize((cudaEvent_t)stop), "cudaEventSynchronize");
    CK(cudaEventElapsedTime(ms, (cudaEvent_t)start, (cudaEvent_t)stop), "cudaEventElapsedTime");
    return KILN_OK;
}

kiln_status kiln__gpu_exec_create(kiln_cuda_exec *ex, void *stream, kiln_err *err)
{
    memset(ex, 0, sizeof *ex);
    cudnnHandle_t h;
    cudnnStatus_t cs = cudnnCreate(&h);
    if (cs != CUDNN_STATUS_SUCCESS) return kiln__fail(err, KILN_ERR_BACKEND, "cudnnCreate: %s", cudnnGetErrorString(cs));
    ex->cudnn = h;
    cublasLtHandle_t lt;
    cublasStatus_t bs = cublasLtCreate(&lt);
    if (bs != CUBLAS_STATUS_SUCCESS) {
        cudnnDestroy(h);
        ex->cudnn = NULL;
        return kiln__fail(err, KILN_ERR_BACKEND, "cublasLtCreate failed (%d)", (int)bs);
    }
    ex->cublaslt = lt;
    return kiln__gpu_exec_set_stream(ex, stream, err);
}

void kiln__gpu_exec_destroy(kiln_cuda_exec *ex)
{
    if (ex->cudnn) cudnnDestroy((cudnnHandle_t)ex->cudnn);
    if (ex->cublaslt) cublasLtDestroy((cublasLtHandle_t)ex->cublaslt);
    ex->cudnn = ex->cublaslt = NULL;
}

kiln_status kiln__gpu_exec_set_stream(kiln_cuda_exec *ex, void *stream, kiln_err *err)
{
    ex->stream = stream;
    cudnnStatus_t cs = cudnnSetStream((cudnnHandle_t)ex->cudnn, (cudaStream_t)stream);
    if (cs != CUDNN_STATUS_SUCCESS) return kiln__fail(err, KILN_ERR_BACKEND, "cudnnSetStream: %s", cudnnGetErrorString(cs));
    return KILN_OK;
}

kiln_status kiln__gpu_graph_begin(void *stream, kiln_err *err)
{
    CK(cudaStreamBeginCapture((cudaStream_t)stream, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
    return KILN_OK;
}

kiln_status kiln__gpu_graph_end(void *stream, void **graph_exec, kiln_err *err)
{
    cudaGraph_t g = NULL;
    *graph_exec = NULL;
    CK(cudaStreamEndCapture((cudaStream_t)stream, &g), "cudaStreamEndCapture");
    cudaGraphExec_t ge = NULL;
    cudaError_t rc = cudaGraphInstantiate(&ge, g, 0);
    cudaGraphDestroy(g);
    if (rc != cudaSuccess) return kiln__cuda_check(rc, NULL, "cudaGraphInstantiate", err);
    *graph_exec = ge;
    return KILN_OK;
}

kiln_status kiln__gpu_graph_launch(void *graph_exec, void *stream, kiln_err *err)
{
    CK(cudaGraphLaunch((cudaGraphExec_t)graph_exec, (cudaStream_t)stream), "cudaGraphLaunch");
    return KILN_OK;
}

void kiln__gpu_graph_destroy(void *graph_exec)
{
    if (graph_exec) cudaGraphExecDestroy((cudaGraphExec_t)graph_exec);
}
