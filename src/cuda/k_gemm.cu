/*
 * Kernels around cuBLASLt GEMMs: a strided, broadcasting copy with a scale,
 * used to place Gemm's C (broadcast to M x N) in the output before the GEMM
 * accumulates into it, to fill empty-K results, and to repack operands whose
 * strides cuBLASLt cannot describe.
 */
#include "cuda_tensor.h"
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

#define THREADS 256
#define MAX_BLOCKS 8192

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
template <typename T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_f<__half>(float x) { return __float2half_rn(x); }

struct FillArgs {
    int rank;
    int64_t dims[KILN_MAX_DIMS], ds[KILN_MAX_DIMS], ss[KILN_MAX_DIMS];
    const void *src;
    void *dst;
    float scale;
};

template <typename T>
__global__ void fill_kernel(FillArgs p, int64_t total)
{
    int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
        int64_t rem = i, dof = 0, sof = 0;
        for (int d = p.rank - 1; d >= 0; d--) {
            int64_t q = rem % p.dims[d];
            rem /= p.dims[d];
            dof += q * p.ds[d];
            sof += q * p.ss[d];
        }
        float v = p.src ? to_f(static_cast<const T *>(p.src)[sof]) * p.scale : 0.f;
        static_cast<T *>(p.dst)[dof] = from_f<T>(v);
    }
}

/*
 * dst = scale * src over dst's dims; src has dst's rank and dims, with stride 0
 * on broadcast dims; src NULL writes zeros. FLOAT or FLOAT16, same on both sides.
 */
extern "C" int kiln__cuda_gemm_fill(const kiln_cuda_tensor *dst, const kiln_cuda_tensor *src, float scale,
                                    void *stream)
{
    if (dst->rank < 0 || dst->rank > KILN_MAX_DIMS || (src && (src->rank != dst->rank || src->dtype != dst->dtype)))
        return (int)cudaErrorInvalidValue;
    FillArgs p;
    memset(&p, 0, sizeof p);
    p.rank = dst->rank;
    int64_t total = 1;
    for (int d = 0; d < dst->rank; d++) {
        p.dims[d] = dst->dims[d];
        p.ds[d] = dst->strides[d];
        p.ss[d] = src ? src->strides[d] : 0;
        total *= dst->dims[d];
    }
    if (total <= 0) return (int)cudaSuccess;
    p.src = src ? src->ptr : NULL;
    p.dst = dst->ptr;
    p.scale = scale;
    int64_t blocks = (total + THREADS - 1) / THREADS;
    if (blocks > MAX_BLOCKS) blocks = MAX_BLOCKS;
    cudaStream_t st = (cudaStream_t)stream;
    if (dst->dtype == KILN_DT_FLOAT) fill_kernel<float><<<(unsigned)blocks, THREADS, 0, st>>>(p, total);
    else if (dst->dtype == KILN_DT_FLOAT16) fill_kernel<__half><<<(unsigned)blocks, THREADS, 0, st>>>(p, total);
    else return (int)cudaErrorInvalidValue;
    return (int)cudaGetLastError();
}
