#!/bin/sh
# Runs ON THE GPU MACHINE (device tool, carry [".device"]): the checks of the engine file
# format 3 (weights stored in run-time form, issue 3; owner: wts). Short summary on stdout.
#   1. build -> save -> load -> run -> compare on every SR fixture in fp32/tf32/fp16 and the
#      light models (kiln_engine_test --save: the reloaded engine must give identical bits)
#   2. several contexts on one loaded engine: identical outputs, every device constant in
#      the engine's one shared copy (kiln_weights_test)
#   3. tests/cli/gpu_cli_test.sh (incl. format-2 refusal, damaged weight blob) and
#      tests/plugin/plugin_gpu_test.sh
#   4. load time, format 3 vs converting at load (bench/load-time.sh, RRDBNet-x4plus)
# Pass "quick" to skip 4.
set -u
B=.device/bin
S=.device/shared
export LD_LIBRARY_PATH="$(pwd)/.device/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
L=/tmp/wts-logs
mkdir -p $L
echo "== 1. engine_test --save"
for fx in srvgg_tiny_x2 srvgg_tiny_x4_dynamo rrdb_tiny_x4 resize_opset11_unfolded edvr_tiny; do
    for p in fp32 tf32 fp16; do
        timeout 150 $B/kiln_engine_test $S/sr-fixtures/$fx/model.onnx $S/sr-fixtures/$fx/test_data_set_0/input_0.pb \
            --precision $p --save /tmp/wts-e.kiln > $L/engine_${fx}_$p.log 2>&1
        echo "$fx $p exit $?: $(grep -cE '^PASS' $L/engine_${fx}_$p.log) PASS, $(grep -cE '^FAIL' $L/engine_${fx}_$p.log) FAIL"
        grep -E "^FAIL" $L/engine_${fx}_$p.log | cut -c1-220 | head -3
    done
done
for lm in resnet50 squeezenet densenet121 vgg19; do
    timeout 200 $B/kiln_engine_test --light $S/onnx-tests/light/light_$lm.onnx --precision fp32 > $L/light_$lm.log 2>&1
    echo "light $lm exit $?: $(grep -E '^(PASS|FAIL)' $L/light_$lm.log | cut -c1-160 | tr '\n' ' ')"
done
echo "== 2. weights_test (contexts share the engine's weights)"
for fx in rrdb_tiny_x4 srvgg_tiny_x2 edvr_tiny; do
    for p in fp32 fp16; do
        timeout 150 $B/kiln_weights_test $S/sr-fixtures/$fx/model.onnx $S/sr-fixtures/$fx/test_data_set_0/input_0.pb \
            --precision $p --contexts 3 --file /tmp/wts-w.kiln 2>&1 | grep -vE "^  context" | cut -c1-260
    done
done
echo "== 3. gpu_cli_test.sh, plugin_gpu_test.sh"
timeout 300 sh tests/cli/gpu_cli_test.sh $B/kiln $S > $L/gpu_cli.log 2>&1
echo "gpu_cli exit $?: $(tail -1 $L/gpu_cli.log)"
grep -A8 "^FAIL" $L/gpu_cli.log | cut -c1-200 | head -40
grep -E "format 2|weight blob|run-time form|load and context" $L/gpu_cli.log | cut -c1-160
timeout 200 sh tests/plugin/plugin_gpu_test.sh $B/kiln .device/plugin/models .device/plugin/libkiln_scaled_tanh.so .device/plugin \
    /tmp/wts-plugin > $L/plugin_gpu.log 2>&1
echo "plugin_gpu exit $?: $(grep -c '^PASS' $L/plugin_gpu.log) PASS"
grep "^FAIL" $L/plugin_gpu.log | cut -c1-200 | head
[ "${1:-}" = quick ] && exit 0
echo "== 4. load time (bench/load-time.sh)"
timeout 420 sh bench/load-time.sh
