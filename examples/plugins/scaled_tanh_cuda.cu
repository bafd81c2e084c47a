// GPU side of the ScaledTanh example plugin: one strided elementwise kernel
// (any layout, float or half), two block sizes as tactics.
#include "kiln_plugin.h"
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdio.h>

struct st_geom {
    int rank;
    long long dims[KILN_PLUGIN_MAX_DIMS];
    long long sin[KILN_PLUGIN_MAX_DIMS];
    long long sout[KILN_PLUGIN_MAX_DIMS];
};

template <typename T> __device__ float ld(const T *p);
template <> __device__ float ld<float>(const float *p) { return *p; }
template <> __device__ float ld<__half>(const __half *p) { return __half2float(*p); }
template <typename T> __device__ void st(T *p, float v);
template <> __device__ void st<float>(float *p, float v) { *p = v; }
template <> __device__ void st<__half>(__half *p, float v) { *p = __float2half_rn(v); }

template <typename T>
__global__ void scaled_tanh_kernel(const T *x, T *y, long long n, st_geom g, float alpha, float beta)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        long long r = i, oi = 0, oo = 0;
        for (int d = g.rank - 1; d >= 0; d--) {
            long long c = r % g.dims[d];
            r /= g.dims[d];
            oi += c * g.sin[d];
            oo += c * g.sout[d];
        }
        st(y + oo, alpha * tanhf(beta * ld(x + oi)));
    }
}

extern "C" int example_scaled_tanh_launch(const kiln_plugin_tensor *in, const kiln_plugin_tensor *out, float alpha, float beta,
                                          int tactic, void *stream, char *msg, size_t len)
{
    st_geom g;
    g.rank = in->rank;
    long long n = 1;
    for (int d = 0; d < in->rank; d++) {
        g.dims[d] = in->dims[d];
        g.sin[d] = in->strides[d];
        g.sout[d] = out->strides[d];
        n *= in->dims[d];
    }
    if (n == 0) return 0;
    int block = tactic == 1 ? 128 : 256;
    long long blocks = (n + block - 1) / block;
    if (blocks > 65535LL * 16) blocks = 65535LL * 16;
    cudaStream_t s = (cudaStream_t)stream;
    if (in->dtype == KILN_PLUGIN_DT_FLOAT)
        scaled_tanh_kernel<float><<<(unsigned)blocks, block, 0, s>>>((const float *)in->data, (float *)out->data, n, g, alpha, beta);
    else
        scaled_tanh_kernel<__half><<<(unsigned)blocks, block, 0, s>>>((const __half *)in->data, (__half *)out->data, n, g, alpha, beta);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) snprintf(msg, len, "ScaledTanh kernel launch: %s", cudaGetErrorString(e));
    return (int)e;
}
