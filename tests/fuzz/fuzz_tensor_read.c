/*
 * libFuzzer target for the input-file readers: the bytes are read both as .npy
 * and as a TensorProto .pb. A tensor that reads must be self-consistent (its
 * byte count matches dims x element size, every byte readable), and must
 * survive a write_npy / read_npy round trip unchanged.
 */
#include "kiln.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char work_dir[4096], in_path[4200], out_path[4200];

static void remove_work_dir(void)
{
    unlink(in_path);
    unlink(out_path);
    rmdir(work_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    snprintf(work_dir, sizeof work_dir, "%s/kiln-fuzz-tensor.XXXXXX", base);
    if (!mkdtemp(work_dir)) {
        perror("fuzz_tensor_read: mkdtemp");
        abort();
    }
    snprintf(in_path, sizeof in_path, "%s/in", work_dir);
    snprintf(out_path, sizeof out_path, "%s/out.npy", work_dir);
    atexit(remove_work_dir);
    return 0;
}

static void check_tensor(const kiln_host_tensor *t)
{
    if (t->rank < 0 || t->rank > KILN_MAX_DIMS) abort();
    size_t es = kiln_dtype_size(t->dtype);
    if (!es) abort();
    int64_t n = kiln_host_tensor_numel(t);
    if (n < 0 || (uint64_t)n * es != t->nbytes) abort();
    if (t->nbytes && !t->data) abort();
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < t->nbytes; i++) sink ^= ((const uint8_t *)t->data)[i];
    (void)sink;

    /* bfloat16 has no NumPy type, so it may be refused; everything else must round-trip. */
    kiln_status st = kiln_tensor_write_npy(out_path, t);
    if (st) {
        if (t->dtype != KILN_DT_BFLOAT16) abort();
        return;
    }
    kiln_host_tensor back;
    if (kiln_tensor_read_npy(out_path, &back)) abort();
    if (back.dtype != t->dtype || back.rank != t->rank || back.nbytes != t->nbytes) abort();
    for (int i = 0; i < t->rank; i++)
        if (back.dims[i] != t->dims[i]) abort();
    if (t->nbytes && memcmp(back.data, t->data, t->nbytes)) abort();
    kiln_host_tensor_release(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fopen(in_path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();

    kiln_host_tensor t;
    if (kiln_tensor_read_npy(in_path, &t) == KILN_OK) {
        check_tensor(&t);
        kiln_host_tensor_release(&t);
    } else if (!kiln_last_error()[0]) {
        abort();
    }
    if (kiln_tensor_read_pb(in_path, &t) == KILN_OK) {
        check_tensor(&t);
        kiln_host_tensor_release(&t);
    } else if (!kiln_last_error()[0]) {
        abort();
    }
    return 0;
}
