#!/bin/sh
# Run HERE before a device call: builds the binaries the GPU machine needs (protobuf-c static)
# and copies them with the test data into .device/ (git-ignored; pass it as `carry`).
set -eu
cd "$(dirname "$0")/.."
SHARED="${KILN_SHARED_DIR:-$(pwd)/../shared}"
cmake -S . -B build-device -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_STATIC_DEPS=OFF -DKILN_SHARED_LIB=ON -DKILN_CUDA_PTX=OFF -DKILN_WERROR=OFF -DKILN_SHARED_DIR="$SHARED" >/dev/null
cmake --build build-device -j"$(nproc)" >/dev/null
rm -rf .device && mkdir -p .device/bin .device/shared/onnx-tests/node .device/shared/onnx-tests
# the commit the binaries come from (bench.py records it; "+dirty" when the tree had changes)
{ git rev-parse --short HEAD 2>/dev/null || echo unknown; } | tr -d '\n' > .device/COMMIT
git diff --quiet HEAD 2>/dev/null || printf '+dirty' >> .device/COMMIT
cp build-device/libkiln.so build-device/kiln build-device/tests/kiln_gpu_ops_test build-device/tests/kiln_engine_test build-device/tests/kiln_conformance build-device/tests/kiln_deform_conv_test \
   .device/bin/
cp build-device/tests/kiln_weights_test .device/bin/ # weights in run-time form (issue 3, owner: wts)
cp -r "$SHARED/sr-fixtures" .device/shared/
cp -r "$SHARED/onnx-tests/light" "$SHARED/onnx-tests/pytorch-operator" "$SHARED/onnx-tests/pytorch-converted" .device/shared/onnx-tests/
# node tests of the ops the GPU backend has (the whole folder is too big to carry)
for d in "$SHARED"/onnx-tests/node/test_*; do
    n=$(basename "$d")
    case "$n" in
    *string*|*float8*|*FLOAT8*|*int4*|*INT4*|*e8m0*|*FLOAT4*|*uint4*|*UINT4*) continue ;;
    esac
    case "$n" in
    test_conv*|test_add*|test_sub*|test_mul*|test_div*|test_relu*|test_leakyrelu*|test_prelu*|test_sigmoid*|\
    test_tanh*|test_clip*|test_concat*|test_split*|test_slice*|test_gather_*|test_reshape*|test_flatten*|\
    test_transpose*|test_squeeze*|test_unsqueeze*|test_expand*|test_depthtospace*|test_spacetodepth*|test_resize*|\
    test_pad*|test_edge_pad*|test_reflect_pad*|test_wrap_pad*|test_constant_pad*|test_maxpool*|test_averagepool*|\
    test_globalaveragepool*|test_globalmaxpool*|test_reduce_mean*|test_reduce_sum*|test_gemm*|test_matmul*|\
    test_softmax*|test_batchnorm*|test_cast_*|test_where*|test_pow*|test_sqrt*|test_exp*|test_log_*|test_abs*|\
    test_neg*|test_reciprocal*|test_floor*|test_ceil*|test_round*|test_max_*|test_min_*|test_sum_*|test_mean_*|\
    test_elu*|test_selu*|test_hardsigmoid*|test_hardswish*|test_softplus*|test_gelu*|test_mish*|test_erf*|\
    test_equal*|test_less*|test_greater*|test_not*|test_and*|test_or*|test_identity*|test_tile*|test_upsample*|\
    test_instancenorm*|test_layer_norm*|test_log|test_basic_conv*|test_basic_deform_conv*|test_deform_conv*|test_gridsample*)
        cp -r "$d" .device/shared/onnx-tests/node/ ;;
    esac
done
cp -L /usr/lib/x86_64-linux-gnu/libprotobuf-c.so.1 .device/bin/
# plugin GPU test files (example plugin, broken plugins, models): .device/plugin
sh tests/plugin/prepare-device-plugin.sh >/dev/null
mv .device/bin/kiln_engine_test .device/bin/kiln_engine_test.dbg && ln -s kiln_engine_test.dbg .device/bin/kiln_engine_test
for f in .device/bin/*; do case $f in *.dbg) ;; *) strip $f ;; esac; done
du -sh .device
