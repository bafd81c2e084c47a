#!/bin/sh
# Runs ON THE GPU MACHINE: where the time goes (per-layer profiles, bench/device-profile.py) and
# which fp32 pins bring fp16 error under 1e-3 (bench/fp16-accuracy.py). Not a test, not a bench.
# Usage: sh bench/device-probe.sh [CASE:PREC,...]   (default: EDVR-M fp16, general-x4v3 fp16,
# rrdbnet tf32, resnet50-b64 tf32)
set -u
export LD_LIBRARY_PATH="$(pwd)/.device/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
OUT="${OUT:-/tmp/out}"
mkdir -p "$OUT"
SPECS="${1:-edvr-m:fp16,general-x4v3:fp16,rrdbnet-x4plus:tf32,resnet50-b64:tf32}"
T0=$(date +%s)
PYTHONUNBUFFERED=1 timeout 470 python3 bench/device-profile.py "$SPECS" > "$OUT/profile.txt" 2>&1
echo "profile done at $(( $(date +%s) - T0 )) s" >> "$OUT/profile.txt"
if [ -f /tmp/kiln-profile/general-x4v3_sr.onnx ] && [ -z "${NO_ACC:-}" ]; then
    timeout 100 python3 bench/fp16-accuracy.py /tmp/kiln-profile/general-x4v3_sr.onnx 1x3x64x64 > "$OUT/fp16-accuracy.txt" 2>&1
fi
ls /tmp/kiln-profile >> "$OUT/profile.txt"
cat "$OUT/profile.txt" | cut -c1-200
echo "== fp16 accuracy"; cat "$OUT/fp16-accuracy.txt" 2>/dev/null
