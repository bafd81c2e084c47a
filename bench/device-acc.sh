#!/bin/sh
# Runs ON THE GPU MACHINE (carry [".device"]): fp16 accuracy of the SR bench models with the
# builder's accuracy measures on and off, each built once and then compared against PyTorch's
# fp32 output (bench.py's files) and timed. Not a test.
#   sh bench/device-acc.sh [CASES]   CASES: case:shape list (default the issue-3 SR cases);
#                                    VARIANTS="default KILN_FP16_PLAIN" picks variants
# Variants: default; KILN_FP16_PLAIN=1 (no fp32 residual chain / image skip); KILN_CONV_NO_WINOGRAD=1;
# both. Filter rounding that keeps sums is always on (it is how fp16 weights are written).
set -u
export LD_LIBRARY_PATH="$(pwd)/.device/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
B=.device/bin
TOP="${OUT:-/tmp/out}"
L="$TOP/logs"
W=/tmp/kiln-bench
mkdir -p "$L" "$W"
T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
CASES="${1:-general-x4v3:1x3x270x480 rrdbnet-x4plus:1x3x180x320 animevideov3:1x3x270x480}"
names=$(for c in $CASES; do printf '%s,' "${c%%:*}"; done | sed 's/,$//')
echo "---- bench.py (PyTorch eager + kiln fp16, new defaults) at $(el) s"
PYTHONUNBUFFERED=1 timeout 330 python3 bench/bench.py --quick --stages eager,kiln --cases "$names" \
    --kiln-precisions fp16 --workdir $W --out "$L/bench" > "$L/bench.txt" 2>&1
grep -E "kiln fp16|eager|mean rel" "$L/bench.txt" | cut -c1-200 | tail -16
for c in $CASES; do
    n=${c%%:*} shp=${c#*:}
    m=$W/$n/model.onnx
    [ -f "$m" ] || { echo "$n: no model at $m"; continue; }
    for v in ${VARIANTS:-default KILN_FP16_PLAIN KILN_CONV_NO_WINOGRAD both}; do
        case $v in
        default) envs="" ;;
        both) envs="KILN_FP16_PLAIN=1 KILN_CONV_NO_WINOGRAD=1" ;;
        *) envs="$v=1" ;;
        esac
        tc=$W/acc-timing.cache
        case "$envs" in *WINOGRAD*) tc=$W/acc-timing-nowino.cache ;; esac
        e=/tmp/acc_${n}_${v}.kiln
        env $envs timeout 240 $B/kiln build "$m" --fp16 --shapes=input:$shp --timingCacheFile=$tc --saveEngine=$e \
            > "$L/acc_${n}_${v}_build.txt" 2>&1 || { echo "$n $v: build failed: $(tail -1 "$L/acc_${n}_${v}_build.txt")"; continue; }
        timeout 120 $B/kiln compare "$m" --engine=$e --loadInputs=input:$W/$n/in.npy --loadRefOutputs=$W/$n/ref \
            --check-error-stat=mean --atol=1 --rtol=1 > "$L/acc_${n}_${v}_compare.txt" 2>&1
        timeout 60 $B/kiln exec --loadEngine=$e --shapes=input:$shp --noDataTransfers --iterations=300 --duration=0 \
            --warmUp=300 > "$L/acc_${n}_${v}_exec.txt" 2>&1
        rel=$(grep -o 'sum|a-b|/sum|b|: [^ ,]*' "$L/acc_${n}_${v}_compare.txt" | head -1 | sed 's/.*: //')
        psnr=$(grep -o 'PSNR: [^ ,]*' "$L/acc_${n}_${v}_compare.txt" | head -1 | sed 's/.*: //')
        ms=$(grep 'GPU Compute Time:' "$L/acc_${n}_${v}_exec.txt" | grep median | head -1 | sed 's/.*median = \([0-9.]*\) ms.*/\1/')
        printf '%-16s %-22s mean rel %-10s PSNR %-7s GPU median %s ms  (at %s s)\n' "$n" "$v" "$rel" "$psnr" "$ms" "$(el)"
    done
    grep -h "^\[I\]" "$L/acc_${n}_default_build.txt" | head -2
done
cd "$TOP" && tar czf logs.tgz logs && rm -rf logs
