#!/bin/sh
# Runs ON THE GPU MACHINE (device tool, carry [".device"]): engine load time with the weights
# stored in run-time form (engine format 3) against the same engine built with
# KILN_WEIGHTS_AT_LOAD=1 (no run-time forms: every load converts the weights, as format 2 did),
# for RRDBNet-x4plus (16.7 M weights, 351 convs). Not a test.
#   sh bench/load-time.sh [PRECISIONS]     (default "fp16 fp32")
set -u
B=.device/bin
export LD_LIBRARY_PATH="$(pwd)/.device/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
W=/tmp/kiln-load
mkdir -p $W
[ -s $W/rrdb.onnx ] || python3 - <<'PY'
import sys
import torch
sys.path.insert(0, "bench")
import bench
from models import make_model
log = lambda *a, **k: None
log.raw = log
m = make_model("rrdbnet-x4plus", "cuda", seed=0).float().eval()
bench.export_onnx(m, torch.rand(1, 3, 64, 64, device="cuda"), "/tmp/kiln-load/rrdb.onnx", True, log)
PY
for p in ${1:-fp16 fp32}; do
    flag=--noTF32
    [ $p = fp16 ] && flag=--fp16
    for f in new old; do
        ab=0
        [ $f = old ] && ab=1
        t0=$(date +%s.%N)
        KILN_WEIGHTS_AT_LOAD=$ab $B/kiln build $W/rrdb.onnx $flag --shapes=input:1x3x64x64 --timingCacheFile=$W/tc_$p \
            --saveEngine=$W/${f}_$p.kiln > $W/build_${f}_$p.log 2>&1 || { echo "build $f $p failed:"; tail -3 $W/build_${f}_$p.log; }
        echo "$p $f: build $(awk "BEGIN{print $(date +%s.%N) - $t0}") s, file $(stat -c %s $W/${f}_$p.kiln) bytes"
    done
    for k in 1 2 3; do
        for f in new old; do
            echo "$p $f load $k: $($B/kiln exec --loadEngine=$W/${f}_$p.kiln --iterations=1 --warmUp=0 --duration=0 2>&1 |
                grep -E 'Engine loaded|Context created|kiln:' | sed 's/^\[I\] //' | tr '\n' ';')"
        done
    done
done
$B/kiln inspect $W/new_fp16.kiln | sed -n 1,5p
