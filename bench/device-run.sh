#!/bin/sh
# Runs ON THE GPU MACHINE (device tool, `carry: [".device"]`): GPU op tests against the CPU
# reference, whole-model engine tests, logs under $OUT, a short table last.
set -u
B=.device/bin
export LD_LIBRARY_PATH="$(pwd)/.device/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
S=.device/shared
OUT="${OUT:-/tmp/out}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
summary=""
for cfg in "fp32 nchw" "fp16 nhwc" "fp32 nhwc" "fp16 nchw"; do
    set -- $cfg
    $B/kiln_gpu_ops_test --dir $S/onnx-tests/node --dir $S/onnx-tests/pytorch-converted --dir $S/onnx-tests/pytorch-operator \
        --precision $1 --layout $2 > "$OUT/ops_$1_$2.log" 2>&1
    summary="$summary\n$(tail -1 "$OUT/ops_$1_$2.log")"
done
for fx in srvgg_tiny_x2 srvgg_tiny_x4_dynamo rrdb_tiny_x4 resize_opset11_unfolded; do
    for p in fp32 tf32 fp16; do
        timeout 300 $B/kiln_engine_test.dbg $S/sr-fixtures/$fx/model.onnx $S/sr-fixtures/$fx/test_data_set_0/input_0.pb \
            --precision $p --save /tmp/e.kiln >> "$OUT/engine.log" 2>&1
    done
done
if grep -q "Segmentation fault\|Aborted" "$OUT/engine.log" || ! grep -q PASS "$OUT/engine.log"; then
    cuda-gdb -batch -ex run -ex bt --args $B/kiln_engine_test.dbg $S/sr-fixtures/srvgg_tiny_x2/model.onnx \
        $S/sr-fixtures/srvgg_tiny_x2/test_data_set_0/input_0.pb --precision fp32 2>&1 | tail -30 > "$OUT/gdb.log"
fi
for lm in resnet50 squeezenet densenet121 vgg19; do
    timeout 300 $B/kiln_engine_test.dbg --light $S/onnx-tests/light/light_$lm.onnx --precision fp32 >> "$OUT/engine.log" 2>&1
done
for p in fp32 fp16; do
    timeout 300 $B/kiln_engine_test.dbg $S/sr-fixtures/edvr_tiny/model.onnx $S/sr-fixtures/edvr_tiny/test_data_set_0/input_0.pb \
        --precision $p --save /tmp/e.kiln >> "$OUT/engine.log" 2>&1
done
timeout 200 $B/kiln_deform_conv_test > "$OUT/deform_conv_test.log" 2>&1; echo "kiln_deform_conv_test exit $?" >> "$OUT/deform_conv_test.log"
timeout 200 sh tests/plugin/plugin_gpu_test.sh $B/kiln .device/plugin/models .device/plugin/libkiln_scaled_tanh.so .device/plugin \
    /tmp/plugin_gpu > "$OUT/plugin_gpu.log" 2>&1; echo "plugin_gpu_test exit $?" >> "$OUT/plugin_gpu.log"
timeout 300 python3 tests/surgeon/onnx_check.py --kiln $B/kiln --shared $S --out /tmp/surgeon-check > "$OUT/surgeon_check.log" 2>&1
echo "onnx_check exit $?" >> "$OUT/surgeon_check.log"
timeout 400 $B/kiln_conformance --backend cuda --dir $S/onnx-tests/node --dir $S/onnx-tests/pytorch-converted --dir $S/onnx-tests/pytorch-operator > "$OUT/conformance_cuda.log" 2>&1
timeout 300 sh tests/cli/gpu_cli_test.sh $B/kiln $S > "$OUT/gpu_cli.log" 2>&1; echo "gpu_cli exit $?" >> "$OUT/gpu_cli.log"
echo "== gpu cli"; grep -iE "fail|error|exit" "$OUT/gpu_cli.log" | head -20; tail -3 "$OUT/gpu_cli.log"
echo "== conformance cuda"; grep -E "^FAIL" "$OUT/conformance_cuda.log" | cut -c1-200 | head -30; tail -2 "$OUT/conformance_cuda.log"
echo "== deform conv"; grep -E "^FAIL|cases|exit" "$OUT/deform_conv_test.log" | head -10
echo "== plugin gpu"; grep -E "^FAIL|passed|exit" "$OUT/plugin_gpu.log" | head -10
echo "== surgeon onnx check"; grep -vE "^PASS" "$OUT/surgeon_check.log" | tail -8
echo "== failures (first 40)"
grep -h "^FAIL" "$OUT"/ops_*.log | head -40
echo "== gdb"; cat "$OUT/gdb.log" 2>/dev/null | tail -25
echo "== engine"
cut -c1-230 "$OUT/engine.log"
printf "== summary%b\n" "$summary"
