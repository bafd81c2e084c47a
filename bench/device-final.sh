#!/bin/sh
# Runs ON THE GPU MACHINE (device tool, carry [".device"], after `sh bench/prepare-device.sh`
# here): the one-call check of a session's end — conv op tests + engine tests (bench/conv-check.sh),
# EDVR fixture, plugin GPU test, GPU CLI test, then the benchmark (kiln stages of the issue-3 cases,
# EDVR-M with PyTorch eager). Bounded to ~560 s. Usage: sh bench/device-final.sh COMMIT
set -u
C="${1:-unknown}"
B=.device/bin
S=.device/shared
export LD_LIBRARY_PATH="$(pwd)/.device/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
OUT="${OUT:-/tmp/out}"
mkdir -p "$OUT"
T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
PARTS="ops ab engine" BUDGET=170 timeout 180 sh bench/conv-check.sh > "$OUT/conv-check.txt" 2>&1
echo "conv-check done at $(el) s" >> "$OUT/conv-check.txt"
# a conv failure on the new cuDNN backend-API path: time the benchmark on the legacy path instead, and say so
if grep -qE "^FAIL" "$OUT/conv-check.txt" || grep -q "^FAIL" "$OUT"/conv_engine.log 2>/dev/null; then
    export KILN_CONV_LEGACY=1
    echo "NOTE: conv failures above: the benchmark below ran with KILN_CONV_LEGACY=1" >> "$OUT/conv-check.txt"
fi
for p in fp32 fp16; do
    timeout 60 $B/kiln_engine_test $S/sr-fixtures/edvr_tiny/model.onnx $S/sr-fixtures/edvr_tiny/test_data_set_0/input_0.pb \
        --precision $p > "$OUT/edvr_tiny_$p.log" 2>&1; echo "exit $?" >> "$OUT/edvr_tiny_$p.log"
done
timeout 60 $B/kiln_engine_test --light $S/onnx-tests/light/light_densenet121.onnx --precision tf32 > "$OUT/densenet.log" 2>&1
timeout 90 sh tests/plugin/plugin_gpu_test.sh $B/kiln .device/plugin/models .device/plugin/libkiln_scaled_tanh.so .device/plugin \
    /tmp/plugin_gpu > "$OUT/plugin_gpu.log" 2>&1; echo "plugin_gpu_test exit $?" >> "$OUT/plugin_gpu.log"
timeout 120 sh tests/cli/gpu_cli_test.sh $B/kiln $S > "$OUT/gpu_cli.log" 2>&1; echo "gpu_cli exit $?" >> "$OUT/gpu_cli.log"
echo "tests done at $(el) s"
left=$((540 - $(el)))
[ $left -gt 60 ] && PYTHONUNBUFFERED=1 timeout $((left / 2)) python3 bench/bench.py --kiln $B/kiln --commit="$C" --quick \
    --stages kiln --cases animevideov3,general-x4v3,rrdbnet-x4plus,resnet50-b64,resnet50-b1 --budget $((left / 2 - 10)) \
    --out "$OUT/bench" > "$OUT/bench.txt" 2>&1
left=$((550 - $(el)))
[ $left -gt 60 ] && PYTHONUNBUFFERED=1 timeout $left python3 bench/bench.py --kiln $B/kiln --commit="$C" --quick \
    --stages eager,kiln --cases edvr-m --budget $((left - 10)) --out "$OUT/bench-edvr" > "$OUT/bench-edvr.txt" 2>&1
echo "== conv-check"; grep -vE "^PASS" "$OUT/conv-check.txt" | cut -c1-200 | tail -40
echo "== edvr_tiny"; grep -hE "PASS|FAIL|exit" "$OUT"/edvr_tiny_*.log | cut -c1-200
echo "== densenet tf32"; grep -E "PASS|FAIL" "$OUT/densenet.log" | cut -c1-200
echo "== plugin gpu"; grep -vE "^PASS" "$OUT/plugin_gpu.log" | tail -8
echo "== gpu cli"; grep -E "^FAIL" -A3 "$OUT/gpu_cli.log" | head -20; tail -2 "$OUT/gpu_cli.log"
echo "== bench (issue-3 cases, kiln)"; tail -22 "$OUT/bench.txt"
echo "== bench (edvr-m)"; tail -22 "$OUT/bench-edvr.txt"
echo "== total $(el) s"
