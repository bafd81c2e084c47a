#!/bin/sh
# Runs ON THE GPU MACHINE (repo root, binaries in .device/bin from bench/prepare-device.sh): views
# without copies (src/runtime/view_alias.c, helper "alias"). Whole-engine tests against the CPU
# reference with views on (default) and off (KILN_NO_VIEW_ALIAS=1), the view ops' node tests on the
# cuda backend, the GPU CLI test, then EDVR-M fp16 timing A/B on one engine (the decision is made
# when a context resolves, so the same engine file serves both). Logs under $OUT, a summary last.
# PARTS="engine conf cli edvr" (default all), in that order.
set -u
export LD_LIBRARY_PATH="$(pwd)/.device/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
B=.device/bin
S=.device/shared
OUT="${OUT:-/tmp/out}"
PARTS="${PARTS:-engine conf cli edvr}"
mkdir -p "$OUT"
has() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }
T0=$(date +%s)
if has engine; then
    : > "$OUT/alias_engine.log"
    for fx in edvr_tiny srvgg_tiny_x2 srvgg_tiny_x4_dynamo rrdb_tiny_x4 resize_opset11_unfolded; do
        for p in fp32 tf32 fp16; do
            echo "## $fx $p views on" >> "$OUT/alias_engine.log"
            timeout 120 $B/kiln_engine_test $S/sr-fixtures/$fx/model.onnx $S/sr-fixtures/$fx/test_data_set_0/input_0.pb \
                --precision $p --save /tmp/alias_e.kiln >> "$OUT/alias_engine.log" 2>&1
            echo "exit $?" >> "$OUT/alias_engine.log"
        done
    done
    for p in fp32 fp16; do
        echo "## edvr_tiny $p views OFF (KILN_NO_VIEW_ALIAS=1)" >> "$OUT/alias_engine.log"
        KILN_NO_VIEW_ALIAS=1 timeout 120 $B/kiln_engine_test $S/sr-fixtures/edvr_tiny/model.onnx \
            $S/sr-fixtures/edvr_tiny/test_data_set_0/input_0.pb --precision $p >> "$OUT/alias_engine.log" 2>&1
        echo "exit $?" >> "$OUT/alias_engine.log"
    done
    for lm in resnet50 squeezenet densenet121 vgg19; do
        for p in fp32 fp16; do
            echo "## light $lm $p" >> "$OUT/alias_engine.log"
            timeout 120 $B/kiln_engine_test --light $S/onnx-tests/light/light_$lm.onnx --precision $p >> "$OUT/alias_engine.log" 2>&1
            echo "exit $?" >> "$OUT/alias_engine.log"
        done
    done
    echo "engine part done at $(( $(date +%s) - T0 )) s" >> "$OUT/alias_engine.log"
fi
if has conf; then
    : > "$OUT/alias_conf.log"
    for f in reshape squeeze unsqueeze flatten identity gather slice; do
        timeout 120 $B/kiln_conformance --backend cuda --filter $f --dir $S/onnx-tests/node \
            --dir $S/onnx-tests/pytorch-converted --dir $S/onnx-tests/pytorch-operator >> "$OUT/alias_conf.log" 2>&1
        echo "conformance --filter $f exit $?" >> "$OUT/alias_conf.log"
    done
fi
if has cli; then
    timeout 300 sh tests/cli/gpu_cli_test.sh $B/kiln $S > "$OUT/alias_gpu_cli.log" 2>&1
    echo "gpu_cli exit $?" >> "$OUT/alias_gpu_cli.log"
fi
if has edvr; then
    # One EDVR-M fp16 engine (built by bench/device-profile.py unless an earlier call on this machine
    # left one), run with views off and on: timing, then per-layer profiles.
    ENG=/tmp/kiln-profile/logs/edvr-m_fp16.kiln
    if [ ! -f "$ENG" ]; then
        PYTHONUNBUFFERED=1 timeout 420 python3 bench/device-profile.py edvr-m:fp16 > "$OUT/alias_edvr_build.txt" 2>&1
    else
        echo "reusing $ENG ($(ls -la $ENG))" > "$OUT/alias_edvr_build.txt"
    fi
    if [ -f "$ENG" ]; then
        for v in 1 0; do
            KILN_NO_VIEW_ALIAS=$v timeout 200 $B/kiln exec --loadEngine=$ENG --shapes=input:1x5x3x180x320 --noDataTransfers \
                --iterations=300 --duration=0 --warmUp=300 > "$OUT/alias_edvr_exec_$v.txt" 2>&1
            KILN_NO_VIEW_ALIAS=$v timeout 200 $B/kiln exec --loadEngine=$ENG --shapes=input:1x5x3x180x320 --noDataTransfers \
                --iterations=100 --duration=0 --dumpProfile --exportProfile=/tmp/kiln-profile/logs/edvr_views_$v.json \
                > /dev/null 2>&1
        done
        python3 - /tmp/kiln-profile/logs/edvr_views_0.json /tmp/kiln-profile/logs/edvr_views_1.json \
            > "$OUT/alias_edvr_ops.txt" 2>&1 <<'EOF'
import json, sys
def by_op(path):
    p = json.load(open(path))
    layers = p if isinstance(p, list) else p.get("layers", p)
    by, n = {}, {}
    for L in layers:
        if not isinstance(L, dict) or "name" not in L:
            continue
        first = L["name"].split(",")[0]
        op = first.rsplit("/", 1)[-1].split("_")[0] if "/" in first else first
        by[op] = by.get(op, 0.0) + L.get("medianMs", L.get("averageMs", 0.0))
        n[op] = n.get(op, 0) + 1
    return by, n
on, non = by_op(sys.argv[1])
off, noff = by_op(sys.argv[2])
print("%-16s %16s %16s" % ("op", "views off ms (n)", "views on ms (n)"))
for k in sorted(set(on) | set(off), key=lambda k: -off.get(k, 0)):
    print("%-16s %10.3f (%3d) %10.3f (%3d)" % (k, off.get(k, 0), noff.get(k, 0), on.get(k, 0), non.get(k, 0)))
print("%-16s %10.3f       %10.3f" % ("sum", sum(off.values()), sum(on.values())))
EOF
    fi
fi
echo "== engine tests (views on unless marked)"
grep -E "^## |PASS|FAIL|rror|exit [1-9]" "$OUT/alias_engine.log" 2>/dev/null | cut -c1-200 | head -80
echo "== conformance (cuda backend, view ops)"
grep -E "^FAIL|exit|passed|cases" "$OUT/alias_conf.log" 2>/dev/null | cut -c1-200 | head -40
echo "== gpu cli"; grep -iE "fail|exit" "$OUT/alias_gpu_cli.log" 2>/dev/null | head -20; tail -2 "$OUT/alias_gpu_cli.log" 2>/dev/null
echo "== EDVR-M fp16 (same engine): GPU Compute Time, views off then on"
grep -h "GPU Compute Time" "$OUT/alias_edvr_exec_1.txt" "$OUT/alias_edvr_exec_0.txt" 2>/dev/null | cut -c1-200
grep -h "==== \|rror\|reusing" "$OUT/alias_edvr_build.txt" 2>/dev/null | cut -c1-200 | head -5
cat "$OUT/alias_edvr_ops.txt" 2>/dev/null
echo "total $(( $(date +%s) - T0 )) s"
