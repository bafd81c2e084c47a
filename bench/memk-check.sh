#!/bin/sh
# Runs ON THE GPU MACHINE from the repo root (carry [".device"], built by bench/prepare-device.sh):
# checks and timings of the memory-bound fast paths (helper "memk": Cast reformat transpose, Resize
# NHWC / row-major, dense elementwise).
#   PARTS="cases ops bench" (default all), e.g. PARTS=cases sh bench/memk-check.sh
#   cases: kiln_gpu_ops_test --memk-cases (hand-made Resize / elementwise / reformat cases vs CPU)
#   ops:   kiln_gpu_ops_test over the ONNX node tests (every op, as device-run.sh), 4 configs
#   bench: python3 bench/op_bench.py (single-op engines; generic kernels vs fast paths)
set -u
B=.device/bin
S=.device/shared
export LD_LIBRARY_PATH="$(pwd)/.device/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
OUT="${OUT:-/tmp/out}"
mkdir -p "$OUT"
PARTS="${PARTS:-cases ops bench}"
CFGS="fp32_nchw fp16_nhwc fp32_nhwc fp16_nchw"
for part in $PARTS; do
    case $part in
    cases)
        echo "== memk cases (hand-made, vs CPU)"
        for cfg in $CFGS; do
            p=${cfg%_*} l=${cfg#*_}
            timeout 300 $B/kiln_gpu_ops_test --memk-cases --precision $p --layout $l > "$OUT/memk_cases_$cfg.log" 2>&1
            echo "$cfg exit $?: $(tail -1 "$OUT/memk_cases_$cfg.log")"
            grep -E "^FAIL" "$OUT/memk_cases_$cfg.log" | cut -c1-220 | head -15
        done ;;
    ops)
        echo "== gpu ops test, node tests"
        for cfg in $CFGS; do
            p=${cfg%_*} l=${cfg#*_}
            timeout 400 $B/kiln_gpu_ops_test --dir $S/onnx-tests/node --dir $S/onnx-tests/pytorch-converted \
                --dir $S/onnx-tests/pytorch-operator --precision $p --layout $l > "$OUT/memk_ops_$cfg.log" 2>&1
            echo "$cfg exit $?: $(tail -1 "$OUT/memk_ops_$cfg.log")"
            grep -E "^FAIL" "$OUT/memk_ops_$cfg.log" | cut -c1-220 | head -15
        done ;;
    bench)
        echo "== op bench"
        timeout 500 python3 bench/op_bench.py --keep /tmp/op-bench 2>&1 | tee "$OUT/op_bench.txt" ;;
    esac
done
