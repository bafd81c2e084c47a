#!/bin/sh
# Runs ON THE GPU MACHINE: the PyTorch-vs-kiln benchmark (bench/bench.py) after a short check
# run of the GPU tests. Usage: sh bench/device-bench.sh COMMIT [bench.py flags]
set -u
export LD_LIBRARY_PATH="$(pwd)/.device/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
OUT="${OUT:-/tmp/out}"
mkdir -p "$OUT"
C="$1"
shift
S=.device/shared
timeout 200 .device/bin/kiln_conformance --backend cuda --dir $S/onnx-tests/node --dir $S/onnx-tests/pytorch-converted \
    --dir $S/onnx-tests/pytorch-operator > "$OUT/conformance_cuda.log" 2>&1
timeout 200 sh tests/cli/gpu_cli_test.sh .device/bin/kiln $S > "$OUT/gpu_cli.log" 2>&1
PYTHONUNBUFFERED=1 timeout 400 python3 bench/bench.py --kiln .device/bin/kiln --commit="$C" "$@" 2>&1 | tail -60
echo "== conformance cuda"; grep "^FAIL" "$OUT/conformance_cuda.log" | cut -c1-160 | head -20; tail -2 "$OUT/conformance_cuda.log"
echo "== gpu cli"; grep "^FAIL" -A2 "$OUT/gpu_cli.log" | head -20; tail -1 "$OUT/gpu_cli.log"
