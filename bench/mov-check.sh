#!/bin/sh
# Runs ON THE GPU MACHINE (repo root, binaries in .device/bin from bench/prepare-device.sh): checks
# and times the movement kernels (helper "mov": src/cuda/k_movement.cu, cuda_ops_movement.c).
#   cases: kiln_gpu_ops_test --move-cases in the four configurations, with the fast paths and again
#          with KILN_MOVE_GENERIC=1 (the general strided copy only, as before)
#   ops:   the ONNX node tests (node, pytorch-converted, pytorch-operator) in the four configurations
#          (skip it when another check already ran them on the same build: PARTS="cases bench")
#   bench: python3 bench/op_bench_movement.py (generic vs fast at EDVR-M shapes)
# Logs under $OUT (mov_*.log, op_bench_movement.txt); the summary on stdout.
set -u
export LD_LIBRARY_PATH="$(pwd)/.device/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
B=.device/bin
S=.device/shared
OUT="${OUT:-/tmp/out}"
PARTS="${PARTS:-cases ops bench}"
mkdir -p "$OUT"
summary=""
for cfg in "fp16 nhwc" "fp32 nchw" "fp32 nhwc" "fp16 nchw"; do
    set -- $cfg
    case " $PARTS " in *" cases "*)
        timeout 60 $B/kiln_gpu_ops_test --move-cases --precision $1 --layout $2 > "$OUT/mov_cases_$1_$2.log" 2>&1
        summary="$summary\ncases fast    $1 $2: $(tail -1 "$OUT/mov_cases_$1_$2.log")"
        KILN_MOVE_GENERIC=1 timeout 60 $B/kiln_gpu_ops_test --move-cases --precision $1 --layout $2 \
            > "$OUT/mov_cases_generic_$1_$2.log" 2>&1
        summary="$summary\ncases generic $1 $2: $(tail -1 "$OUT/mov_cases_generic_$1_$2.log")" ;;
    esac
    case " $PARTS " in *" ops "*)
        timeout 150 $B/kiln_gpu_ops_test --dir $S/onnx-tests/node --dir $S/onnx-tests/pytorch-converted \
            --dir $S/onnx-tests/pytorch-operator --precision $1 --layout $2 > "$OUT/mov_ops_$1_$2.log" 2>&1
        summary="$summary\nops           $1 $2: $(tail -1 "$OUT/mov_ops_$1_$2.log")" ;;
    esac
done
case " $PARTS " in *" bench "*)
    timeout 420 python3 bench/op_bench_movement.py --kiln $B/kiln --keep /tmp/op-bench-mov > "$OUT/op_bench_movement.txt" 2>&1
    echo "op_bench_movement exit $?" >> "$OUT/op_bench_movement.txt" ;;
esac
echo "== failures (first 40)"; grep -h "^FAIL" "$OUT"/mov_*.log 2>/dev/null | cut -c1-220 | head -40
echo "== op bench"; cat "$OUT/op_bench_movement.txt" 2>/dev/null | cut -c1-220
printf "== summary%b\n" "$summary"
