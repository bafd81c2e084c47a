/* The GPU seam when kiln is built without CUDA: every call fails and says why. */
#include "../cuda/gpu.h"

#define NO_CUDA "kiln was built without the CUDA backend (nvcc or cuDNN not found at build time)"

kiln_status kiln__gpu_init(kiln_gpu_info *info, kiln_err *err)
{
    (void)info;
    return kiln__fail(err, KILN_ERR_UNSUPPORTED, NO_CUDA);
}

const kiln_cuda_op *kiln__cuda_op_find(const char *domain, const char *op_type) { return NULL; }

kiln_status kiln__cuda_check(int rc, const kiln_node *node, const char *what, kiln_err *err)
{
    return rc ? kiln__fail(err, KILN_ERR_BACKEND, NO_CUDA) : KILN_OK;
}

#define FAIL_ALL return kiln__fail(err, KILN_ERR_UNSUPPORTED, NO_CUDA)
kiln_status kiln__gpu_malloc(void **ptr, size_t bytes, kiln_err *err) { *ptr = NULL; FAIL_ALL; }
void kiln__gpu_free(void *ptr) {}
kiln_status kiln__gpu_memcpy_h2d(void *d, const void *s, size_t n, void *st, kiln_err *err) { FAIL_ALL; }
kiln_status kiln__gpu_memcpy_d2h(void *d, const void *s, size_t n, void *st, kiln_err *err) { FAIL_ALL; }
kiln_status kiln__gpu_memcpy_d2d(void *d, const void *s, size_t n, void *st, kiln_err *err) { FAIL_ALL; }
kiln_status kiln__gpu_memset(void *d, int v, size_t n, void *st, kiln_err *err) { FAIL_ALL; }
kiln_status kiln__gpu_sync(void *stream, kiln_err *err) { FAIL_ALL; }
kiln_status kiln__gpu_malloc_host(void **ptr, size_t bytes, kiln_err *err) { *ptr = NULL; FAIL_ALL; }
void kiln__gpu_free_host(void *ptr) {}
kiln_status kiln__gpu_stream_create(void **stream, kiln_err *err) { *stream = NULL; FAIL_ALL; }
void kiln__gpu_stream_destroy(void *stream) {}
kiln_status kiln__gpu_event_create(void **ev, kiln_err *err) { *ev = NULL; FAIL_ALL; }
void kiln__gpu_event_destroy(void *ev) {}
kiln_status kiln__gpu_event_record(void *ev, void *stream, kiln_err *err) { FAIL_ALL; }
kiln_status kiln__gpu_event_elapsed(void *a, void *b, float *ms, kiln_err *err) { FAIL_ALL; }
kiln_status kiln__gpu_exec_create(kiln_cuda_exec *ex, void *stream, kiln_err *err) { FAIL_ALL; }
void kiln__gpu_exec_destroy(kiln_cuda_exec *ex) {}
kiln_status kiln__gpu_exec_set_stream(kiln_cuda_exec *ex, void *stream, kiln_err *err) { FAIL_ALL; }
kiln_status kiln__gpu_graph_begin(void *stream, kiln_err *err) { FAIL_ALL; }
kiln_status kiln__gpu_graph_end(void *stream, void **g, kiln_err *err) { *g = NULL; FAIL_ALL; }
kiln_status kiln__gpu_graph_launch(void *g, void *stream, kiln_err *err) { FAIL_ALL; }
void kiln__gpu_graph_destroy(void *g) {}
kiln_status kiln__gpu_convert(void *dst, kiln_dtype ddt, const void *src, kiln_dtype sdt, int64_t n, void *st,
                              kiln_err *err)
{
    FAIL_ALL;
}
