#!/bin/sh
# Runs ON THE GPU MACHINE from the repo root (device tool, carry [".device"], after
# `sh bench/prepare-device.sh` here): the built-in DeformConv plugin (kernel correctness in
# fp32/fp16 x NCHW/NHWC/mixed vs the CPU reference, EDVR-M timings), the ONNX node tests of
# DeformConv and GridSample through the GPU op harness and the CUDA conformance runner, and
# edvr_tiny through the GPU engine. Full logs in $OUT/dc_*.log; a compact summary on stdout.
set -u
B=.device/bin
S=.device/shared
export LD_LIBRARY_PATH="$(pwd)/.device/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
OUT="${OUT:-/tmp/out}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
timeout 300 $B/kiln_deform_conv_test -v > "$OUT/dc_test.log" 2>&1; echo "kiln_deform_conv_test exit $?" >> "$OUT/dc_test.log"
for f in deform_conv gridsample; do
    for cfg in "fp32 nchw" "fp32 nhwc" "fp16 nchw" "fp16 nhwc"; do
        set -- $cfg
        timeout 120 $B/kiln_gpu_ops_test --dir $S/onnx-tests/node --filter $f --precision $1 --layout $2 -v \
            > "$OUT/dc_ops_${f}_$1_$2.log" 2>&1
        timeout 120 $B/kiln_gpu_ops_test --dir $S/onnx-tests/node --filter $f --precision $1 --layout $2 --random \
            > "$OUT/dc_ops_${f}_$1_$2_random.log" 2>&1
    done
    timeout 200 $B/kiln_conformance --backend cuda --dir $S/onnx-tests/node --filter $f -v > "$OUT/dc_conf_$f.log" 2>&1
done
for p in fp32 fp16; do
    timeout 300 $B/kiln_engine_test $S/sr-fixtures/edvr_tiny/model.onnx $S/sr-fixtures/edvr_tiny/test_data_set_0/input_0.pb \
        --precision $p > "$OUT/dc_engine_edvr_tiny_$p.log" 2>&1
    echo "exit $?" >> "$OUT/dc_engine_edvr_tiny_$p.log"
done
echo "== deform conv test: failures (first 30), summary, timings"
grep -E "^FAIL" "$OUT/dc_test.log" | cut -c1-250 | head -30
grep -vE "^(PASS|FAIL)" "$OUT/dc_test.log" | cut -c1-250 | tail -40
echo "== gpu ops harness (node tests): failures (first 30)"
grep -h "^FAIL" "$OUT"/dc_ops_*.log | cut -c1-250 | head -30
echo "== gpu ops harness summaries"
for f in "$OUT"/dc_ops_*.log; do echo "$(basename "$f" .log): $(tail -1 "$f" | cut -c1-200)"; done
for f in deform_conv gridsample; do
    echo "== conformance cuda $f"
    grep -E "^FAIL" "$OUT/dc_conf_$f.log" | cut -c1-250 | head -10
    tail -3 "$OUT/dc_conf_$f.log" | cut -c1-200
done
for p in fp32 fp16; do
    echo "== engine edvr_tiny $p"
    grep -iE "fail|pass|error|rel|psnr|exit|layers" "$OUT/dc_engine_edvr_tiny_$p.log" | cut -c1-250 | tail -8
done
echo "== done"
