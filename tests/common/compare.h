/*
 * Shared by the model tests (models/model_test.c, surgeon/roundtrip_test.c, unit/test_passes.c):
 * inputs for a model, a run on the CPU reference, and its output against a stored one.
 */
#ifndef KILN_TEST_COMPARE_H
#define KILN_TEST_COMPARE_H

#include "kiln.h"

/* Prints "FAIL what: detail"; returns 1. */
int test_fail(const char *what, const char *detail);

/* float32 outputs of the same shape, |got - exp| <= max_abs + rtol*|exp| everywhere; prints
 * PASS or FAIL with the largest error. 0 or 1. */
int test_compare(const char *what, const kiln_host_tensor *got, const kiln_host_tensor *exp, double max_abs,
                 double rtol);

/* Graph input i's declared type and dims, symbolic dims set to 1 (as ONNX's test runner does). */
void test_input_shape(const kiln_network *net, int i, kiln_dtype *dt, int *rank, int64_t dims[KILN_MAX_DIMS]);

/* net (freed here) on DIR/test_data_set_0/input_0.pb against output_0.pb, within max_abs. 0 or 1. */
int test_run_fixture(kiln_network *net, const char *dir, double max_abs);

/* net (freed here; the model at `what`) on ONNX's light-model input, arange(n).reshape(shape) / n
 * as float32, against the tensor in expected_pb. 0 or 1. */
int test_run_light(kiln_network *net, const char *what, const char *expected_pb);

#endif
