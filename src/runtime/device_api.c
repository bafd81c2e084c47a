/*
 * Public device-memory, stream and event helpers: thin wrappers over the GPU
 * seam (src/cuda/gpu.h), so programs that use the runtime API (the kiln CLI
 * among them) need not include or link the CUDA runtime themselves. Built
 * without CUDA, every call fails with the reason, as the seam does.
 */
#include "../cuda/gpu.h"

/* Keeps the detail text for kiln_last_error() and passes the status on. */
static kiln_status done(kiln_status s, const kiln_err *err)
{
    if (s) kiln__set_last_error(err->msg[0] ? err->msg : kiln_status_str(s));
    return s;
}

static kiln_status bad_arg(const char *what)
{
    kiln__set_last_error(what);
    return KILN_ERR_INVALID_ARG;
}

kiln_status kiln_device_malloc(void **ptr, size_t bytes)
{
    if (!ptr) return bad_arg("kiln_device_malloc: ptr is NULL");
    *ptr = NULL;
    kiln_err err = {{0}};
    return done(kiln__gpu_malloc(ptr, bytes, &err), &err);
}

void kiln_device_free(void *ptr) { kiln__gpu_free(ptr); }

kiln_status kiln_host_malloc_pinned(void **ptr, size_t bytes)
{
    if (!ptr) return bad_arg("kiln_host_malloc_pinned: ptr is NULL");
    *ptr = NULL;
    kiln_err err = {{0}};
    kiln_status s = kiln__gpu_malloc_host(ptr, bytes, &err);
    if (s) *ptr = NULL;
    return done(s, &err);
}

void kiln_host_free_pinned(void *ptr) { kiln__gpu_free_host(ptr); }

kiln_status kiln_memcpy_htod(void *dst, const void *src, size_t bytes, void *stream)
{
    if ((!dst || !src) && bytes) return bad_arg("kiln_memcpy_htod: NULL pointer");
    kiln_err err = {{0}};
    return done(kiln__gpu_memcpy_h2d(dst, src, bytes, stream, &err), &err);
}

kiln_status kiln_memcpy_dtoh(void *dst, const void *src, size_t bytes, void *stream)
{
    if ((!dst || !src) && bytes) return bad_arg("kiln_memcpy_dtoh: NULL pointer");
    kiln_err err = {{0}};
    return done(kiln__gpu_memcpy_d2h(dst, src, bytes, stream, &err), &err);
}

kiln_status kiln_stream_create(void **stream)
{
    if (!stream) return bad_arg("kiln_stream_create: stream is NULL");
    *stream = NULL;
    kiln_err err = {{0}};
    return done(kiln__gpu_stream_create(stream, &err), &err);
}

void kiln_stream_destroy(void *stream) { kiln__gpu_stream_destroy(stream); }

kiln_status kiln_stream_synchronize(void *stream)
{
    kiln_err err = {{0}};
    return done(kiln__gpu_sync(stream, &err), &err);
}

kiln_status kiln_event_create(void **event)
{
    if (!event) return bad_arg("kiln_event_create: event is NULL");
    *event = NULL;
    kiln_err err = {{0}};
    return done(kiln__gpu_event_create(event, &err), &err);
}

void kiln_event_destroy(void *event) { kiln__gpu_event_destroy(event); }

kiln_status kiln_event_record(void *event, void *stream)
{
    if (!event) return bad_arg("kiln_event_record: event is NULL");
    kiln_err err = {{0}};
    return done(kiln__gpu_event_record(event, stream, &err), &err);
}

kiln_status kiln_event_elapsed_ms(void *start, void *stop, float *ms)
{
    if (!start || !stop || !ms) return bad_arg("kiln_event_elapsed_ms: NULL argument");
    kiln_err err = {{0}};
    return done(kiln__gpu_event_elapsed(start, stop, ms, &err), &err);
}
