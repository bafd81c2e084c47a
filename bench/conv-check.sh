#!/bin/sh
# Conv device check (cuDNN backend-API convolutions, issue 3). Runs ON THE GPU MACHINE from the
# repo root, with the binaries `sh bench/prepare-device.sh` put in .device/ (carry [".device"]):
#     sh bench/conv-check.sh                     # ~2-4 min, bounded by BUDGET seconds (default 300)
#     PARTS="ops ab" sh bench/conv-check.sh      # a subset of: ops ab bench engine
# ops:    GPU op tests of the conv nodes (ONNX node tests + pytorch-converted/-operator Conv cases)
#         plus the hand-made Conv/FusedConv cases (--conv-cases: odd sizes, groups, dilation,
#         stride 2, 1x1, every epilogue, residual, activation after the residual); every tactic
#         of each node is compared with the CPU reference (fp32 NCHW, tf32 NHWC, fp16 NHWC);
# ab:     best tactic time, legacy API (KILN_CONV_LEGACY=1) vs backend API, for animevideov3's
#         64->64 3x3 270x480 + PReLU (fp16 NHWC), ResNet-50's 1x1 1024->256 14x14 (fp16 NHWC)
#         and RRDBNet's 64->32 3x3 180x320 + LeakyReLU (tf32 NCHW);
# bench:  every tactic's time for ResNet-50 / RRDBNet / Real-ESRGAN layers (fp16 NHWC);
# engine: whole-model engine tests (SR fixtures, light ResNet-50).
# Full logs in $OUT (default /tmp/out); stdout is a compact summary.
set -u
B="${KILN_DEVICE_BIN:-.device/bin}"
S="${KILN_DEVICE_SHARED:-.device/shared}"
export LD_LIBRARY_PATH="$(cd "$B" 2>/dev/null && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
OUT="${OUT:-/tmp/out}"
PARTS="${PARTS:-ops ab engine bench}"
BUDGET="${BUDGET:-300}"
mkdir -p "$OUT"
START=$(date +%s)
left() { echo $((BUDGET - ($(date +%s) - START))); }
# run LIMIT CMD...: with a timeout no longer than what is left of the budget
run() {
    lim=$1; shift
    l=$(left)
    [ "$l" -lt 10 ] && { echo "SKIPPED (time budget): $*"; return 124; }
    [ "$l" -lt "$lim" ] && lim=$l
    timeout "$lim" "$@"
}
has() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
if has ops; then
    summary=""
    for cfg in fp32:nchw tf32:nhwc fp16:nhwc; do
        p=${cfg%:*}; lay=${cfg#*:}
        run 80 $B/kiln_gpu_ops_test --dir $S/onnx-tests/node --dir $S/onnx-tests/pytorch-converted \
            --dir $S/onnx-tests/pytorch-operator --filter onv --conv-cases --precision $p --layout $lay -v \
            > "$OUT/conv_ops_${p}_$lay.log" 2>&1
        echo "exit $?" >> "$OUT/conv_ops_${p}_$lay.log"
        summary="$summary\n$p $lay: $(grep 'gpu ops' "$OUT/conv_ops_${p}_$lay.log" | tail -1) ($(tail -1 "$OUT/conv_ops_${p}_$lay.log"))"
    done
    echo "== conv op failures (first 30)"
    grep -h "^FAIL" "$OUT"/conv_ops_*.log | cut -c1-220 | head -30
    echo "== cuDNN refusals seen in the conv cases (most frequent first)"
    grep -h "last cuDNN refusal" "$OUT"/conv_ops_*.log | sort | uniq -c | sort -rn | head -6 | cut -c1-300
    printf "== conv op summary%b\n" "$summary"
fi
if has ab; then
    echo "== A/B: best tactic, legacy API vs backend API"
    k=0
    for c in "fp16 nhwc animev3" "fp16 nhwc resnet50 1x1 1024" "tf32 nchw rrdb 3x3 64->32"; do
        set -- $c
        p=$1; lay=$2; shift 2; f="$*"; k=$((k + 1))
        for mode in legacy graph; do
            if [ $mode = legacy ]; then lg=1; else lg=0; fi
            run 60 env KILN_CONV_LEGACY=$lg $B/kiln_gpu_ops_test --conv-bench --bench-filter "$f" --precision $p \
                --layout $lay > "$OUT/conv_ab_${k}_$mode.log" 2>&1
            printf "  %-30s %s %s %-6s: %s\n" "$f" $p $lay $mode \
                "$(grep -E 'best:|error|FAIL' "$OUT/conv_ab_${k}_$mode.log" | head -2 | tr '\n' ' ')"
        done
        grep -h "refusal" "$OUT/conv_ab_${k}_graph.log" | head -1 | cut -c1-250
    done
fi
if has engine; then
    : > "$OUT/conv_engine.log"
    for t in "srvgg_tiny_x2 fp16" "srvgg_tiny_x2 tf32" "srvgg_tiny_x2 fp32" "rrdb_tiny_x4 fp16" "rrdb_tiny_x4 tf32"; do
        set -- $t
        run 60 $B/kiln_engine_test $S/sr-fixtures/$1/model.onnx $S/sr-fixtures/$1/test_data_set_0/input_0.pb \
            --precision $2 --save /tmp/conv_e.kiln >> "$OUT/conv_engine.log" 2>&1
        echo "exit $? ($1 $2)" >> "$OUT/conv_engine.log"
    done
    run 90 $B/kiln_engine_test --light $S/onnx-tests/light/light_resnet50.onnx --precision fp32 >> "$OUT/conv_engine.log" 2>&1
    echo "exit $? (light resnet50 fp32)" >> "$OUT/conv_engine.log"
    echo "== engine tests"
    grep -E "PASS|FAIL|exit |rror" "$OUT/conv_engine.log" | cut -c1-200 | head -30
fi
if has bench; then
    echo "== conv tactic timings (fp16 nhwc)"
    run 90 $B/kiln_gpu_ops_test --conv-bench --precision fp16 --layout nhwc > "$OUT/conv_bench_fp16_nhwc.log" 2>&1
    grep -vE "^device:|^gpu ops" "$OUT/conv_bench_fp16_nhwc.log" | cut -c1-200
fi
echo "== total $(( $(date +%s) - START )) s"
