#!/bin/sh
# The example plugin on the GPU: build an engine with --plugins (fp32 and fp16), reload it, run it,
# compare with the CPU reference; an engine loaded without the plugin names it; a plugin whose
# enqueue fails is reported. Exit 77 (SKIPPED) without a GPU.
#   plugin_gpu_test.sh KILN MAKE_MODEL|MODELS_DIR EXAMPLE_LIB BAD_LIB_DIR WORK_DIR
# (MODELS_DIR: models already written by make_model, as carried to the GPU machine)
KILN=$1 MAKE_MODEL=$2 EX=$3 BAD=$4 WORK=$5
mkdir -p "$WORK" || exit 1
if [ -d "$MAKE_MODEL" ]; then cp -r "$MAKE_MODEL"/. "$WORK"/; else "$MAKE_MODEL" "$WORK"; fi || { echo "FAIL: cannot write models"; exit 1; }
M=$WORK/scaled_tanh/model.onnx
out=$("$KILN" build --plugins="$EX" "$M" --saveEngine="$WORK/st32.kiln" --shapes=X:1x3x64x64 2>&1); rc=$?
case "$out" in *"no CUDA device"*) echo "SKIPPED: $out"; exit 77;; esac
fails=0
check() { # name rc output want
  if [ "$2" -eq 0 ] && echo "$3" | grep -q -- "$4"; then echo "PASS $1"; else echo "FAIL $1 (exit $2): $3"; fails=$((fails + 1)); fi
}
check build_fp32 $rc "$out" ""
out=$("$KILN" build --plugins="$EX" "$M" --saveEngine="$WORK/st16.kiln" --shapes=X:1x3x64x64 --fp16 2>&1); check build_fp16 $? "$out" ""
out=$("$KILN" exec --plugins="$EX" --loadEngine="$WORK/st32.kiln" --shapes=X:1x3x64x64 --iterations=5 2>&1); check exec_fp32 $? "$out" ""
out=$("$KILN" compare --plugins="$EX" "$M" --engine="$WORK/st32.kiln" --shapes=X:1x3x64x64 2>&1); check compare_fp32 $? "$out" ""
out=$("$KILN" compare --plugins="$EX" "$M" --engine="$WORK/st16.kiln" --shapes=X:1x3x64x64 --atol=2e-3 --rtol=2e-3 2>&1); check compare_fp16 $? "$out" ""
out=$("$KILN" compare --plugins="$EX" "$M" --shapes=X:1x3x64x64 2>&1); check compare_build $? "$out" ""
out=$("$KILN" exec --loadEngine="$WORK/st32.kiln" --shapes=X:1x3x64x64 2>&1); rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q "needs plugin ScaledTanh.*--plugins"; then echo "PASS engine_without_plugin: $out"; else echo "FAIL engine_without_plugin (exit $rc): $out"; fails=$((fails + 1)); fi
echo "$out" | sed -n 1p
# a plugin whose enqueue fails (and that has no host execute): one clear line, exit 1
out=$("$KILN" exec --plugins="$BAD/libkiln_bad_enqueue_only.so" --onnx="$M" --shapes=X:1x3x64x64 2>&1); rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q "enqueue fails on purpose"; then echo "PASS enqueue_error: $out"; else echo "FAIL enqueue_error (exit $rc): $out"; fails=$((fails + 1)); fi
# a plugin with only a host execute runs on the CPU inside a GPU engine; its error comes through
out=$("$KILN" exec --plugins="$BAD/libkiln_bad_execute_error.so" --onnx="$M" --shapes=X:1x3x64x64 2>&1); rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q "execute fails on purpose"; then echo "PASS execute_error_in_engine: $out"; else echo "FAIL execute_error_in_engine (exit $rc): $out"; fails=$((fails + 1)); fi
echo "plugin_gpu_test: $fails failed"
[ "$fails" -eq 0 ]
