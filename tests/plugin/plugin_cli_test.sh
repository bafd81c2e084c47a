#!/bin/sh
# Plugins through the CLI on the CPU: the example plugin runs with --plugins; without it the
# error names op and node; every deliberately broken library gives ONE clear line and exit 1.
#   plugin_cli_test.sh KILN MAKE_MODEL EXAMPLE_LIB BAD_LIB_DIR WORK_DIR [ENGINE]
# ENGINE: an engine file with a ScaledTanh node (written by kiln_plugin_test, no GPU needed).
KILN=$1 MAKE_MODEL=$2 EX=$3 BAD=$4 WORK=$5 ENGINE=${6:-}
fails=0 n=0
mkdir -p "$WORK" && "$MAKE_MODEL" "$WORK" || { echo "FAIL: cannot write models"; exit 1; }
M=$WORK/scaled_tanh/model.onnx IN=$WORK/scaled_tanh/test_data_set_0

# expect_fail NAME EXPECTED_SUBSTRING -- kiln args...
expect_fail() {
  name=$1 want=$2; shift 3
  n=$((n + 1))
  "$KILN" "$@" >"$WORK/out.txt" 2>"$WORK/err.txt"; rc=$?
  lines=$(wc -l <"$WORK/err.txt")
  msg=$(cat "$WORK/err.txt")
  if [ "$rc" -ne 1 ] || [ "$lines" -ne 1 ] || ! grep -q -- "$want" "$WORK/err.txt" || ! grep -q "^kiln: " "$WORK/err.txt"; then
    echo "FAIL $name: exit $rc, $lines stderr line(s), want '$want': $msg"
    fails=$((fails + 1))
  else
    echo "PASS $name: $msg"
  fi
}
expect_ok() {
  name=$1 want=$2; shift 3
  n=$((n + 1))
  if "$KILN" "$@" >"$WORK/out.txt" 2>"$WORK/err.txt" && grep -q -- "$want" "$WORK/out.txt"; then
    echo "PASS $name: $(head -1 "$WORK/out.txt")"
  else
    echo "FAIL $name: $(cat "$WORK/err.txt" "$WORK/out.txt")"
    fails=$((fails + 1))
  fi
}

expect_ok run_with_plugin "output 'Z'" -- run --plugins="$EX" "$M" --inputs "$IN"
expect_ok run_with_plugin_sep "output 'Z'" -- run --plugins "$EX" "$M" --inputs "$IN"
expect_ok inspect_with_plugin "every node runs on the cpu" -- inspect --plugins="$EX" "$M"
expect_fail run_without_plugin "node 'tanh_plugin': op example::ScaledTanh is not a kiln op" -- run "$M" --inputs "$IN"
expect_fail unknown_op_lists_plugins "mmcv::NoSuchOp.*ScaledTanh/1" -- run --plugins="$EX" "$WORK/unknown_op/model.onnx" --inputs "$IN"
expect_fail build_without_plugin "kiln: " -- build "$M" --saveEngine="$WORK/x.kiln" --shapes=X:1x3x5x7
expect_fail loaded_twice "already registered" -- run --plugins="$EX" --plugins="$EX" "$M" --inputs "$IN"
expect_fail no_such_file "cannot be loaded" -- run --plugins="$WORK/nonexistent.so" "$M" --inputs "$IN"
expect_fail empty_flag "needs a library path" -- run --plugins= "$M" --inputs "$IN"
expect_fail not_a_library "cannot be loaded" -- run --plugins="$M" "$M" --inputs "$IN"

if [ -n "$ENGINE" ]; then
  expect_ok inspect_engine_with_plugin "plugin ScaledTanh/1" -- inspect --plugins="$EX" "$ENGINE"
  expect_fail inspect_engine_without_plugin "needs plugin ScaledTanh version 1 for node 'tanh_plugin'.*--plugins" -- inspect "$ENGINE"
fi

for spec in \
  "no_symbol:has no 'kiln_plugin_entry' function" \
  "entry_abi:refused to register.*ABI 42" \
  "class_abi:ABI version 99" \
  "entry_error:entry point fails on purpose" \
  "count:registers 0 classes" \
  "null_callback:lacks the required callback get_output_shapes" \
  "struct_size:struct_size 0" \
  "duplicate:registered twice" \
  "create_error:create refuses on purpose" \
  "types:data type 999" \
  "shape_rank:rank 99" \
  "shape_neg:dim 0 is -5" \
  "shape_sym:output 0 dim 0" \
  "shape_error:shape function fails on purpose" \
  "execute_error:execute fails on purpose" \
  "enqueue_only:has no host execute"; do
  v=${spec%%:*} want=${spec#*:}
  lib=$BAD/libkiln_bad_$v.so
  expect_fail "bad_$v" "$want" -- run --plugins="$lib" "$M" --inputs "$IN"
done
echo "plugin_cli_test: $n checks, $fails failed"
[ "$fails" -eq 0 ]
