#!/bin/sh
# Runs ON THE GPU MACHINE (carry [".device"]): the session's integration check of every
# engineer's GPU work in one call, each part bounded in time; all logs packed into
# $OUT/logs.tgz (the device returns few files), summaries on stdout.
#   sh bench/device-mid.sh check   correctness: hand-made op cases (memk, mov, conv), the node
#                                  suite in 4 configs, DeformConv test, engine tests, plugin, CLI
#   sh bench/device-mid.sh perf    speed: EDVR-M fp16 profile + runtime A/B switches, op benches,
#                                  conv tactic table
set -u
export LD_LIBRARY_PATH="$(pwd)/.device/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
B=.device/bin
S=.device/shared
TOP="${OUT:-/tmp/out}"
L="$TOP/logs"
mkdir -p "$L"
T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
part() { echo "---- $1 (at $(el) s)"; }
case "${1:-check}" in
check)
    part "memk cases"; OUT=$L PARTS=cases timeout 60 sh bench/memk-check.sh 2>&1 | cut -c1-200 | tail -12
    part "mov cases"; OUT=$L PARTS=cases timeout 90 sh bench/mov-check.sh 2>&1 | cut -c1-200 | tail -14
    part "deform"; OUT=$L timeout 100 sh bench/dcn-check.sh 2>&1 | cut -c1-250 | tail -30
    part "engines"; OUT=$L PARTS=engine timeout 150 sh bench/alias-check.sh >/dev/null 2>&1
    grep -hE "^## |PASS|FAIL|exit [1-9]|rror" "$L/alias_engine.log" | cut -c1-160 | paste - - | cut -c1-230 | head -40
    part "node suite"
    for cfg in fp16:nhwc fp32:nchw fp32:nhwc fp16:nchw; do
        p=${cfg%:*} l=${cfg#*:}
        timeout 75 $B/kiln_gpu_ops_test --dir $S/onnx-tests/node --dir $S/onnx-tests/pytorch-converted \
            --dir $S/onnx-tests/pytorch-operator --precision $p --layout $l > "$L/ops_${p}_$l.log" 2>&1
        echo "$p $l exit $?: $(tail -1 "$L/ops_${p}_$l.log")"
    done
    grep -h "^FAIL" "$L"/ops_*.log | cut -c1-200 | sort | uniq | head -25
    part "conv ops"; OUT=$L PARTS=ops BUDGET=100 timeout 110 sh bench/conv-check.sh 2>&1 | cut -c1-200 | tail -12
    part "gpu cli"; timeout 120 sh tests/cli/gpu_cli_test.sh $B/kiln $S > "$L/gpu_cli.log" 2>&1; echo "gpu_cli exit $?"
    grep -E "^FAIL" -A2 "$L/gpu_cli.log" | head -12; tail -1 "$L/gpu_cli.log"
    ;;
perf)
    ENG=/tmp/kiln-profile/logs/edvr-m_fp16.kiln
    part "EDVR-M fp16 build + profile"
    PYTHONUNBUFFERED=1 timeout 330 python3 bench/device-profile.py edvr-m:fp16 > "$L/edvr_profile.txt" 2>&1
    grep -vE "^\[torch|^$" "$L/edvr_profile.txt" | cut -c1-200 | tail -16
    if [ -f "$ENG" ]; then
        for sw in NONE KILN_NO_VIEW_ALIAS KILN_MEMK_GENERIC KILN_MOVE_GENERIC; do
            env $sw=1 timeout 60 $B/kiln exec --loadEngine=$ENG --shapes=input:1x5x3x180x320 --noDataTransfers \
                --iterations=200 --duration=0 --warmUp=200 > "$L/edvr_exec_$sw.txt" 2>&1
            echo "EDVR-M fp16 with $sw=1: $(grep 'GPU Compute Time' "$L/edvr_exec_$sw.txt" | sed 's/.*median = \([0-9.]*\) ms.*/median \1 ms/')"
        done
        grep -E "Activation memory|layers" "$L/edvr_exec_NONE.txt" | head -3
    fi
    part "op bench (memk)"; timeout 100 python3 bench/op_bench.py --keep /tmp/op-bench > "$L/op_bench.txt" 2>&1
    cut -c1-200 "$L/op_bench.txt" | tail -22
    part "op bench (mov)"; KILN_NO_VIEW_ALIAS=1 timeout 100 python3 bench/op_bench_movement.py --kiln $B/kiln --keep /tmp/op-bench-mov > "$L/op_bench_movement.txt" 2>&1
    cut -c1-200 "$L/op_bench_movement.txt" | tail -24
    part "conv small-channel tactics"
    for f in "srvgg first" "edvr first" "edvr last"; do
        timeout 40 $B/kiln_gpu_ops_test --conv-bench --bench-filter "$f" --precision fp16 --layout nhwc > "$L/conv_small_$(echo $f | tr ' ' _).log" 2>&1
        grep -E "default|direct|best" "$L/conv_small_$(echo $f | tr ' ' _).log" | head -4
    done
    ;;
final)
    # the session's last call: a bounded correctness pass, then EDVR-M against PyTorch
    C="${2:-unknown}"
    part "memk cases"; OUT=$L PARTS=cases timeout 60 sh bench/memk-check.sh 2>&1 | grep -E "exit|^FAIL" | cut -c1-200 | head -12
    part "mov cases"
    for cfg in fp16:nhwc fp32:nchw fp32:nhwc fp16:nchw; do
        p=${cfg%:*} l=${cfg#*:}
        timeout 30 $B/kiln_gpu_ops_test --move-cases --precision $p --layout $l > "$L/mov_${p}_$l.log" 2>&1
        echo "$p $l exit $?: $(tail -1 "$L/mov_${p}_$l.log")"
    done
    part "node suite"
    for cfg in fp16:nhwc fp32:nchw fp32:nhwc fp16:nchw; do
        p=${cfg%:*} l=${cfg#*:}
        timeout 60 $B/kiln_gpu_ops_test --dir $S/onnx-tests/node --dir $S/onnx-tests/pytorch-converted \
            --dir $S/onnx-tests/pytorch-operator --precision $p --layout $l > "$L/ops_${p}_$l.log" 2>&1
        echo "$p $l exit $?: $(tail -1 "$L/ops_${p}_$l.log")"
    done
    grep -h "^FAIL" "$L"/ops_*.log "$L"/mov_*.log | cut -c1-200 | sort | uniq | head -20
    part "deform + plugin"; OUT=$L timeout 100 sh bench/dcn-check.sh 2>&1 | grep -E "^FAIL|cases|exit|PASS .*edvr|FAIL .*edvr" | cut -c1-220 | head -14
    grep -E "^timing.*(fp16 nhwc).*180x320" "$L/dcn_test.log" | cut -c1-300 | head -3
    part "engines"
    : > "$L/engine.log"
    for fx in srvgg_tiny_x2 srvgg_tiny_x4_dynamo rrdb_tiny_x4 resize_opset11_unfolded; do
        for p in fp32 fp16; do
            timeout 60 $B/kiln_engine_test $S/sr-fixtures/$fx/model.onnx $S/sr-fixtures/$fx/test_data_set_0/input_0.pb \
                --precision $p --save /tmp/fe.kiln >> "$L/engine.log" 2>&1 || echo "FAIL exit $? $fx $p" >> "$L/engine.log"
        done
    done
    for lm in resnet50 densenet121; do
        timeout 60 $B/kiln_engine_test --light $S/onnx-tests/light/light_$lm.onnx --precision fp32 >> "$L/engine.log" 2>&1 || echo "FAIL exit $? $lm" >> "$L/engine.log"
    done
    grep -E "^PASS|^FAIL" "$L/engine.log" | sed 's#.device/shared/##' | cut -c1-150
    part "weights in run-time form (3 contexts on one engine)"
    for c in "rrdb_tiny_x4 fp16" "srvgg_tiny_x2 fp32" "edvr_tiny fp32"; do
        set -- $c
        timeout 60 $B/kiln_weights_test $S/sr-fixtures/$1/model.onnx $S/sr-fixtures/$1/test_data_set_0/input_0.pb \
            --precision $2 --contexts 3 --file /tmp/w.kiln > "$L/weights_$1_$2.log" 2>&1
        echo "$1 $2 exit $?: $(grep -E 'PASS|FAIL|load' "$L/weights_$1_$2.log" | tail -2 | cut -c1-200 | tr '\n' ' ')"
    done
    part "gpu cli"; timeout 90 sh tests/cli/gpu_cli_test.sh $B/kiln $S > "$L/gpu_cli.log" 2>&1; echo "gpu_cli exit $?"
    grep -E "^FAIL" -A2 "$L/gpu_cli.log" | head -8; tail -1 "$L/gpu_cli.log"
    left=$((560 - $(el)))
    part "EDVR-M bench ($left s)"
    PYTHONUNBUFFERED=1 timeout $left python3 bench/bench.py --kiln $B/kiln --commit="$C" --quick --stages eager,kiln \
        --cases edvr-m --kiln-precisions fp16,fp32 --budget $((left - 15)) --out "$L/bench-edvr" > "$L/bench-edvr.txt" 2>&1
    tail -32 "$L/bench-edvr.txt" | cut -c1-220
    ;;
esac
part "end"
tar czf "$TOP/logs.tgz" -C "$TOP" logs 2>/dev/null
