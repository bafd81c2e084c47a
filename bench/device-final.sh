#!/bin/sh
# Runs ON THE GPU MACHINE (device tool, carry [".device"], after `sh bench/prepare-device.sh`
# here): a session's closing checks in two calls of < 10 minutes each.
#   sh bench/device-final.sh tests         conv op + engine tests and the legacy/backend A/B
#                                          (bench/conv-check.sh), EDVR fixture, DeformConv test,
#                                          plugin GPU test, GPU CLI test
#   sh bench/device-final.sh bench COMMIT  bench.py: kiln stages of the issue-3 cases, then EDVR-M
#                                          with PyTorch eager (set KILN_CONV_LEGACY=1 to time the
#                                          legacy cuDNN path)
set -u
B=.device/bin
S=.device/shared
export LD_LIBRARY_PATH="$(pwd)/.device/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
OUT="${OUT:-/tmp/out}"
mkdir -p "$OUT"
T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
case "${1:-tests}" in
tests)
    PARTS="ops ab engine" BUDGET=200 timeout 210 sh bench/conv-check.sh > "$OUT/conv-check.txt" 2>&1
    echo "conv-check done at $(el) s" >> "$OUT/conv-check.txt"
    for p in fp32 fp16; do
        timeout 60 $B/kiln_engine_test $S/sr-fixtures/edvr_tiny/model.onnx $S/sr-fixtures/edvr_tiny/test_data_set_0/input_0.pb \
            --precision $p > "$OUT/edvr_tiny_$p.log" 2>&1; echo "exit $?" >> "$OUT/edvr_tiny_$p.log"
    done
    timeout 60 $B/kiln_engine_test --light $S/onnx-tests/light/light_densenet121.onnx --precision tf32 > "$OUT/densenet.log" 2>&1
    timeout 90 $B/kiln_deform_conv_test > "$OUT/deform.log" 2>&1; echo "kiln_deform_conv_test exit $?" >> "$OUT/deform.log"
    timeout 90 sh tests/plugin/plugin_gpu_test.sh $B/kiln .device/plugin/models .device/plugin/libkiln_scaled_tanh.so .device/plugin \
        /tmp/plugin_gpu > "$OUT/plugin_gpu.log" 2>&1; echo "plugin_gpu_test exit $?" >> "$OUT/plugin_gpu.log"
    timeout 120 sh tests/cli/gpu_cli_test.sh $B/kiln $S > "$OUT/gpu_cli.log" 2>&1; echo "gpu_cli exit $?" >> "$OUT/gpu_cli.log"
    echo "== conv-check"; grep -vE "^PASS" "$OUT/conv-check.txt" | cut -c1-200 | tail -45
    echo "== edvr_tiny"; grep -hE "PASS|FAIL|exit" "$OUT"/edvr_tiny_*.log | cut -c1-200
    echo "== densenet tf32"; grep -E "PASS|FAIL" "$OUT/densenet.log" | cut -c1-200
    echo "== deform"; grep -E "^FAIL|cases|exit|180x320" "$OUT/deform.log" | cut -c1-220 | head -16
    echo "== plugin gpu"; grep -vE "^PASS" "$OUT/plugin_gpu.log" | tail -8
    echo "== gpu cli"; grep -E "^FAIL" -A3 "$OUT/gpu_cli.log" | head -20; tail -2 "$OUT/gpu_cli.log"
    ;;
bench)
    C="${2:-unknown}"
    TOTAL="${TOTAL:-560}"
    PYTHONUNBUFFERED=1 timeout $((TOTAL * 45 / 100)) python3 bench/bench.py --kiln $B/kiln --commit="$C" --quick --stages kiln \
        --cases animevideov3,general-x4v3,rrdbnet-x4plus,resnet50-b64,resnet50-b1 --budget $((TOTAL * 45 / 100 - 10)) \
        --out "$OUT/bench" > "$OUT/bench.txt" 2>&1
    left=$((TOTAL - $(el)))
    PYTHONUNBUFFERED=1 timeout $left python3 bench/bench.py --kiln $B/kiln --commit="$C" --quick \
        --stages eager,kiln --cases edvr-m --budget $((left - 10)) --out "$OUT/bench-edvr" > "$OUT/bench-edvr.txt" 2>&1
    echo "== bench (issue-3 cases, kiln)"; tail -24 "$OUT/bench.txt"
    echo "== bench (edvr-m)"; tail -30 "$OUT/bench-edvr.txt"
    ;;
esac
echo "== total $(el) s"
