#!/bin/sh
# Runs ON THE GPU MACHINE from the repo root (carry [".device"], after `sh bench/prepare-device.sh`
# here): DeformConv in NHWC engines (helper dcn). 1) kiln_deform_conv_test: every tactic (0-5 the
# strided kernels, 6-8 the fast channel-contiguous kernel) in fp32/fp16 x NCHW/NHWC/mixed against the
# CPU reference, the plugin-layout checks, EDVR-M timings old vs new; 2) edvr_tiny engines fp32/fp16
# (built, saved, reloaded); 3) the example plugin on the GPU (row-major-only plugin unchanged);
# 4) optionally (DCN_PROFILE=1) EDVR-M fp16 end to end with a per-layer profile.
# Full logs in $OUT/dcn_*.log; a compact summary on stdout.
set -u
B=.device/bin
S=.device/shared
export LD_LIBRARY_PATH="$(pwd)/.device/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
OUT="${OUT:-/tmp/out}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 300 $B/kiln_deform_conv_test -v > "$OUT/dcn_test.log" 2>&1; echo "kiln_deform_conv_test exit $?" >> "$OUT/dcn_test.log"
for p in fp32 fp16; do
    timeout 300 $B/kiln_engine_test $S/sr-fixtures/edvr_tiny/model.onnx $S/sr-fixtures/edvr_tiny/test_data_set_0/input_0.pb \
        --precision $p --save /tmp/dcn_e_$p.kiln > "$OUT/dcn_edvr_tiny_$p.log" 2>&1
    echo "exit $?" >> "$OUT/dcn_edvr_tiny_$p.log"
done
timeout 200 sh tests/plugin/plugin_gpu_test.sh $B/kiln .device/plugin/models .device/plugin/libkiln_scaled_tanh.so .device/plugin \
    /tmp/dcn_plugin_gpu > "$OUT/dcn_plugin_gpu.log" 2>&1; echo "plugin_gpu_test exit $?" >> "$OUT/dcn_plugin_gpu.log"
echo "== deform conv test: failures (first 30), summary"
grep -E "^FAIL" "$OUT/dcn_test.log" | cut -c1-250 | head -30
grep -E "cases|exit|takes NHWC" "$OUT/dcn_test.log" | cut -c1-200 | head -8
echo "== timings (us per tactic; old = best of t0-5, new = best of t6-18)"
grep -E "^timing" "$OUT/dcn_test.log" | cut -c1-600
for p in fp32 fp16; do
    echo "== engine edvr_tiny $p"
    grep -iE "fail|pass|error|rel|psnr|exit|layers" "$OUT/dcn_edvr_tiny_$p.log" | cut -c1-250 | tail -8
done
echo "== plugin gpu (example plugin)"
grep -E "^FAIL|exit" "$OUT/dcn_plugin_gpu.log" | cut -c1-250 | head -10
if [ -n "${DCN_PROFILE:-}" ]; then
    echo "== EDVR-M fp16 profile"
    PYTHONUNBUFFERED=1 timeout 400 python3 bench/device-profile.py edvr-m:fp16 > "$OUT/dcn_profile.txt" 2>&1
    cut -c1-200 "$OUT/dcn_profile.txt" | tail -20
fi
echo "== done"
